/*
 * bmapsync.c - keeping a bmap file true to an archive as it is patched.
 *
 * A patch changes stored bytes only, so a bmap needs new digests only for
 * its ranges that meet what was written, and those bytes lie verbatim in
 * the archive file: they are read straight from it, without decoding.
 * Only a one-block range that reaches into a compressed neighbour decodes
 * (part of) that block.
 */
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "bmap.h"
#include "error.h"
#include "io.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bmap files of real images are kilobytes to a few megabytes. */
#define BMAP_MAX_FILE (256u << 20)

/* Reads image bytes for the bmap, stored extents straight from the file. */
typedef struct image_reader {
	pp_archive *archive;
	size_t block;               /* whose stored extents are below */
	pp_extent_list extents;
	bool cached;
} image_reader;

static const pp_extent *stored_extent(image_reader *reader, size_t block,
				      uint64_t offset, uint64_t length,
				      int *status, pp_error *err)
{
	pp_archive *archive = reader->archive;
	if (!reader->cached || reader->block != block) {
		pp_extent_list_free(&reader->extents);
		reader->cached = false;
		*status = archive->ops->stored_extents(archive, block,
						       &reader->extents, err);
		if (*status)
			return NULL;
		reader->cached = true;
		reader->block = block;
	}
	for (size_t i = 0; i < reader->extents.count; i++) {
		const pp_extent *x = &reader->extents.items[i];
		if (x->uoffset <= offset &&
		    offset + length <= x->uoffset + x->length)
			return x;
	}
	return NULL;
}

static int read_image(void *opaque, void *buf, size_t len, uint64_t offset,
		      pp_error *err)
{
	image_reader *reader = opaque;
	pp_archive *archive = reader->archive;
	uint8_t *dest = buf;
	while (len > 0) {
		size_t i = pp_archive_find_block(archive, offset);
		if (i == archive->block_count)
			return pp_pread(archive, dest, len, offset, err);
		const pp_block *b = &archive->blocks[i];
		size_t piece = (size_t)PP_MIN(len, b->uoffset + b->usize - offset);
		int status = 0;
		const pp_extent *x = stored_extent(reader, i, offset, piece,
						   &status, err);
		if (status)
			return status;
		if (!x)
			status = pp_pread(archive, dest, piece, offset, err);
		else if (pp_archive_read(archive, dest, piece,
					 x->foffset + (offset - x->uoffset)))
			status = pp_fail_errno(err, PP_ERR_IO, "%s: read error",
					       archive->path);
		if (status)
			return status;
		dest += piece;
		offset += piece;
		len -= piece;
	}
	return 0;
}

static uint64_t block_end(void *opaque, uint64_t offset)
{
	const image_reader *reader = opaque;
	const pp_archive *archive = reader->archive;
	size_t i = pp_archive_find_block(archive, offset);
	if (i == archive->block_count)
		return pp_archive_image_size(archive);
	return archive->blocks[i].uoffset + archive->blocks[i].usize;
}

static pp_bmap_source source_for(image_reader *reader)
{
	return (pp_bmap_source){ .opaque = reader, .read = read_image,
				 .block_end = block_end };
}

int pp_bmap_open(pp_archive *archive, const char *path, pp_bmap **out,
		 pp_error *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		int status = pp_fail_errno(err, PP_ERR_IO, "%s", path);
		if (fd >= 0)
			close(fd);
		return status;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > BMAP_MAX_FILE) {
		close(fd);
		return pp_fail(err, PP_ERR_FORMAT, "%s: not a bmap file (%s)",
			       path, S_ISREG(st.st_mode) ? "too large" :
			       "not a regular file");
	}
	size_t len = (size_t)st.st_size;
	char *text = malloc(len ? len : 1);
	pp_bmap *bmap = malloc(sizeof *bmap);
	int status = 0;
	if (!text || !bmap)
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	else if (pp_pread_full(fd, text, len, 0))
		status = pp_fail_errno(err, PP_ERR_IO, "%s: read error", path);
	close(fd);
	if (status == 0)
		status = pp_bmap_parse(bmap, text, len, path, err);
	free(text);
	uint64_t image_size = pp_archive_image_size(archive);
	if (status == 0 && bmap->image_size != image_size) {
		status = pp_fail(err, PP_ERR_USAGE, "%s: a bmap of a %" PRIu64
				 "-byte image, not of %s (%" PRIu64 " bytes)",
				 path, bmap->image_size, archive->path,
				 image_size);
		pp_bmap_release(bmap);
	}
	if (status) {
		free(bmap);
		return status;
	}
	*out = bmap;
	return 0;
}

int pp_bmap_patched(pp_bmap *bmap, pp_archive *archive,
		    const pp_range *ranges, size_t count, pp_error *err)
{
	image_reader reader = { .archive = archive };
	pp_bmap_source source = source_for(&reader);
	int status = 0;
	for (size_t i = 0; status == 0 && i < count; i++)
		status = pp_bmap_touch(bmap, ranges[i].offset, ranges[i].length,
				       true, &source, err);
	if (status == 0)
		status = pp_bmap_hash_dirty(bmap, &source, err);
	pp_extent_list_free(&reader.extents);
	return status;
}

/* Maps the runs of non-zero blocks of [offset, offset + length) that the
 * bmap does not map. */
static int map_written(pp_bmap *bmap, uint64_t offset, uint64_t length,
		       const pp_bmap_source *source, uint8_t *buf,
		       pp_error *err)
{
	uint64_t bs = bmap->block_size;
	uint64_t first = offset / bs;
	uint64_t end = (PP_MIN(offset + length, bmap->image_size) + bs - 1) / bs;
	uint64_t run = UINT64_MAX;  /* first block of a run of non-zero ones */
	int status = 0;
	for (uint64_t k = first; status == 0 && k <= end; k++) {
		bool written = false;
		if (k < end && !pp_bmap_is_mapped(bmap, k)) {
			uint64_t at = k * bs;
			size_t len = (size_t)PP_MIN(bs, bmap->image_size - at);
			status = source->read(source->opaque, buf, len, at, err);
			written = status == 0 && !pp_all_zero(buf, len);
		}
		if (written && run == UINT64_MAX)
			run = k;
		if (!written && run != UINT64_MAX && status == 0) {
			status = pp_bmap_touch(bmap, run * bs, (k - run) * bs,
					       true, source, err);
			run = UINT64_MAX;
		}
	}
	return status;
}

static bool same_ranges(const pp_bmap_range *a, size_t a_count,
			const pp_bmap *b)
{
	if (a_count != b->count)
		return false;
	for (size_t i = 0; i < a_count; i++)
		if (a[i].first != b->ranges[i].first ||
		    a[i].last != b->ranges[i].last ||
		    memcmp(a[i].sha256, b->ranges[i].sha256, 32) != 0)
			return false;
	return true;
}

int pp_bmap_recovered(pp_bmap *bmap, pp_archive *archive, bool *changed,
		      pp_error *err)
{
	*changed = false;
	pp_info info;
	int status = pp_get_info(archive, &info, err);
	if (status)
		return status;
	size_t before_count = bmap->count;
	pp_bmap_range *before = malloc((before_count ? before_count : 1) *
				       sizeof *before);
	uint8_t *buf = malloc(bmap->block_size);
	if (!before || !buf)
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	else
		memcpy(before, bmap->ranges, before_count * sizeof *before);
	image_reader reader = { .archive = archive };
	pp_bmap_source source = source_for(&reader);
	for (size_t i = 0; status == 0 && i < info.stored_count; i++) {
		const pp_range *s = &info.stored[i];
		status = pp_bmap_touch(bmap, s->offset, s->length, false,
				       &source, err);
		if (status == 0)
			status = map_written(bmap, s->offset, s->length, &source,
					     buf, err);
	}
	if (status == 0)
		status = pp_bmap_hash_dirty(bmap, &source, err);
	if (status == 0)
		*changed = !same_ranges(before, before_count, bmap);
	pp_extent_list_free(&reader.extents);
	pp_info_free(&info);
	free(before);
	free(buf);
	return status;
}

int pp_bmap_save(pp_bmap *bmap, const char *path, pp_error *err)
{
	return pp_bmap_write(bmap, path, err);
}

void pp_bmap_close(pp_bmap *bmap)
{
	if (!bmap)
		return;
	pp_bmap_release(bmap);
	free(bmap);
}
