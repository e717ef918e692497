/*
 * bmap.c - the bmap document: the block map bmap-tools reads (format 2.0),
 * built while packing, parsed, updated where a patch wrote, and written
 * atomically.
 *
 * The file is XML: ImageSize, BlockSize, BlocksCount (image size over block
 * size, rounded up), MappedBlocksCount, ChecksumType "sha256",
 * BmapFileChecksum (the SHA-256 of the whole file with this field's value
 * set to 64 ASCII "0"), and a BlockMap of <Range chksum="..."> FIRST-LAST
 * </Range> (block numbers, inclusive; one number for one block), each with
 * the SHA-256 of those blocks' bytes (the last block only up to the end of
 * the image).  `bmaptool copy` writes the mapped ranges and checks each
 * range's digest; the rest of the target is left alone.
 *
 * The text is laid out exactly as `bmaptool create` lays it out, comments
 * and padding included, so that the two differ only in where ranges split.
 * A mapped block is one meeting an extent the source file has allocated
 * (FIEMAP, see pp_data_extents), as bmaptool maps a raw image.
 */
#include "bmap.h"
#include "array.h"
#include "error.h"
#include "io.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BMAP_IO_SIZE (1u << 20)
#define BMAP_HEX_LEN 64

static const uint8_t zero_page[PP_BMAP_BLOCK_SIZE];

static uint64_t blocks_count(const pp_bmap *bmap)
{
	return (bmap->image_size + bmap->block_size - 1) / bmap->block_size;
}

/* Bytes of a range, the last block cut at the end of the image. */
static uint64_t range_start(const pp_bmap *bmap, const pp_bmap_range *r)
{
	return r->first * bmap->block_size;
}

static uint64_t range_end(const pp_bmap *bmap, const pp_bmap_range *r)
{
	return PP_MIN((r->last + 1) * bmap->block_size, bmap->image_size);
}

static int add_range(pp_bmap *bmap, uint64_t first, uint64_t last,
		     pp_error *err)
{
	pp_bmap_range *ranges = pp_grow(bmap->ranges, bmap->count,
					&bmap->capacity, sizeof *ranges, 64);
	if (!ranges)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	bmap->ranges = ranges;
	ranges[bmap->count++] = (pp_bmap_range){ .first = first, .last = last,
						 .dirty = true };
	return 0;
}

void pp_bmap_release(pp_bmap *bmap)
{
	free(bmap->ranges);
	bmap->ranges = NULL;
	bmap->count = bmap->capacity = 0;
}

static bool range_reaches(const void *item, const void *key)
{
	return ((const pp_bmap_range *)item)->last >= *(const uint64_t *)key;
}

/* The first range whose last block is at or after block. */
static size_t first_range_from(const pp_bmap *bmap, uint64_t block)
{
	return pp_search_first(bmap->ranges, bmap->count, sizeof *bmap->ranges,
			       range_reaches, &block);
}

bool pp_bmap_is_mapped(const pp_bmap *bmap, uint64_t block)
{
	size_t i = first_range_from(bmap, block);
	return i < bmap->count && bmap->ranges[i].first <= block;
}

/* ---- building while packing --------------------------------------------- */

void pp_bmap_init(pp_bmap *bmap, const pp_range *data, size_t count,
		  bool all_data)
{
	*bmap = (pp_bmap){
		.block_size = PP_BMAP_BLOCK_SIZE,
		.data = data, .data_count = count, .all_data = all_data,
	};
}

static int add_piece(pp_bmap_share *share, size_t range, uint64_t offset,
		     uint64_t length, bool whole, pp_error *err)
{
	pp_bmap_piece *pieces = pp_grow(share->pieces, share->count,
					&share->capacity, sizeof *pieces, 8);
	if (!pieces)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	share->pieces = pieces;
	pieces[share->count++] = (pp_bmap_piece){
		.range = range, .offset = offset, .length = length,
		.whole = whole,
	};
	return 0;
}

/* Where a range that starts at block first must end at the latest, in
 * stored data: the next line of the PP_BMAP_STORED_GRID grid. */
static uint64_t stored_grid_end(const pp_bmap *bmap, uint64_t first)
{
	uint64_t per = PP_MAX(PP_BMAP_STORED_GRID / bmap->block_size, 1);
	return (first / per + 1) * per;
}

/*
 * A run [first, end) of mapped blocks of archive block [offset, end_byte):
 * one range, or two when the run reaches the 4 KiB block that holds the
 * archive block's unaligned end, which is a range of its own; in a stored
 * block, more, cut on the stored grid.
 */
static int add_run(pp_bmap *bmap, pp_bmap_share *share, uint64_t first,
		   uint64_t end, uint64_t end_byte, bool last, pp_error *err)
{
	uint64_t bs = bmap->block_size;
	uint64_t straddler = end_byte % bs ? end_byte / bs : UINT64_MAX;
	while (first < end) {
		uint64_t stop = first < straddler && straddler < end ?
			straddler : end;
		if (bmap->stored)
			stop = PP_MIN(stop, stored_grid_end(bmap, first));
		int status = add_range(bmap, first, stop - 1, err);
		uint64_t from = PP_MAX(first * bs, share->offset);
		uint64_t to = PP_MIN(stop * bs, end_byte);
		bool whole = last || stop * bs <= end_byte;
		if (status == 0)
			status = add_piece(share, bmap->count - 1, from,
					   to - from, whole, err);
		if (status)
			return status;
		first = stop;
	}
	return 0;
}

int pp_bmap_plan(pp_bmap *bmap, pp_bmap_share *share, uint64_t offset,
		 uint64_t length, bool last, pp_error *err)
{
	uint64_t bs = bmap->block_size, end_byte = offset + length;
	share->offset = offset;
	share->count = 0;
	/* The 4 KiB block holding our start, placed by the block before. */
	if (bmap->count > 0 && offset % bs != 0) {
		const pp_bmap_range *r = &bmap->ranges[bmap->count - 1];
		if (r->last == offset / bs) {
			int status = add_piece(share, bmap->count - 1, offset,
					       PP_MIN(end_byte, (r->last + 1) * bs) -
					       offset, false, err);
			if (status)
				return status;
		}
	}
	uint64_t first = PP_MAX(offset / bs, bmap->next_block);
	uint64_t end = (end_byte + bs - 1) / bs;
	if (first >= end)
		return 0;
	bmap->next_block = end;
	if (bmap->all_data)
		return add_run(bmap, share, first, end, end_byte, last, err);
	/* Runs of blocks meeting data extents; the extents may be unaligned
	 * and several may meet one block. */
	while (bmap->data_next < bmap->data_count) {
		const pp_range *d = &bmap->data[bmap->data_next];
		if (d->offset + d->length > first * bs)
			break;
		bmap->data_next++;
	}
	uint64_t run_first = 0, run_end = 0;
	for (size_t i = bmap->data_next; i < bmap->data_count; i++) {
		const pp_range *d = &bmap->data[i];
		if (d->offset >= end * bs)
			break;
		uint64_t a = PP_MAX(first, d->offset / bs);
		uint64_t b = PP_MIN(end, (d->offset + d->length + bs - 1) / bs);
		if (a >= b)
			continue;
		if (run_end > run_first && a <= run_end) {
			run_end = PP_MAX(run_end, b);
			continue;
		}
		if (run_end > run_first) {
			int status = add_run(bmap, share, run_first, run_end,
					     end_byte, last, err);
			if (status)
				return status;
		}
		run_first = a;
		run_end = b;
	}
	if (run_end > run_first)
		return add_run(bmap, share, run_first, run_end, end_byte, last,
			       err);
	return 0;
}

void pp_bmap_hash_share(pp_bmap_share *share, const uint8_t *data)
{
	for (size_t i = 0; i < share->count; i++) {
		pp_bmap_piece *p = &share->pieces[i];
		if (!p->whole)
			continue;
		pp_sha256 sha;
		pp_sha256_init(&sha);
		if (data)
			pp_sha256_update(&sha, data + (p->offset - share->offset),
					 (size_t)p->length);
		else
			pp_sha256_zeros(&sha, p->length);
		pp_sha256_final(&sha, p->sha256);
	}
}

static void flush_carry(pp_bmap *bmap)
{
	if (!bmap->carrying)
		return;
	pp_sha256 sha;
	pp_sha256_init(&sha);
	pp_sha256_update(&sha, bmap->carry, (size_t)bmap->carry_len);
	pp_sha256_final(&sha, bmap->ranges[bmap->carry_range].sha256);
	bmap->ranges[bmap->carry_range].dirty = false;
	bmap->carrying = false;
}

void pp_bmap_store_share(pp_bmap *bmap, const pp_bmap_share *share,
			 const uint8_t *data)
{
	for (size_t i = 0; i < share->count; i++) {
		const pp_bmap_piece *p = &share->pieces[i];
		pp_bmap_range *r = &bmap->ranges[p->range];
		if (p->whole) {
			memcpy(r->sha256, p->sha256, sizeof r->sha256);
			r->dirty = false;
			continue;
		}
		/* A one-block range whose bytes come from two or more archive
		 * blocks, in order. */
		if (bmap->carrying && bmap->carry_range != p->range)
			flush_carry(bmap);
		bmap->carrying = true;
		bmap->carry_range = p->range;
		uint64_t at = p->offset - range_start(bmap, r);
		memcpy(bmap->carry + at, data ? data + (p->offset - share->offset) :
		       zero_page, (size_t)p->length);
		bmap->carry_len = at + p->length;
		if (bmap->carry_len == bmap->block_size)
			flush_carry(bmap);
	}
}

void pp_bmap_share_free(pp_bmap_share *share)
{
	free(share->pieces);
	*share = (pp_bmap_share){ 0 };
}

void pp_bmap_finish(pp_bmap *bmap, uint64_t image_size)
{
	flush_carry(bmap);
	bmap->image_size = image_size;
}

/* ---- updating after a patch ------------------------------------------- */

static int by_first(const void *a, const void *b)
{
	const pp_bmap_range *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* New ranges over unmapped blocks [first, end), cut where archive blocks
 * end (see add_run) and, as a patch writes only stored data, on the
 * stored grid; appended unsorted. */
static int map_gap(pp_bmap *bmap, uint64_t first, uint64_t end,
		   const pp_bmap_source *source, pp_error *err)
{
	uint64_t bs = bmap->block_size;
	while (first < end) {
		uint64_t block_end = source->block_end(source->opaque, first * bs);
		uint64_t stop = block_end < (first + 1) * bs ? first + 1 :
			block_end / bs;
		stop = PP_MIN(PP_MIN(stop, end), stored_grid_end(bmap, first));
		int status = add_range(bmap, first, stop - 1, err);
		if (status)
			return status;
		first = stop;
	}
	return 0;
}

int pp_bmap_touch(pp_bmap *bmap, uint64_t offset, uint64_t length,
		  bool map, const pp_bmap_source *source, pp_error *err)
{
	uint64_t bs = bmap->block_size;
	if (length == 0 || offset >= bmap->image_size)
		return 0;
	uint64_t first = offset / bs;
	uint64_t end = PP_MIN((offset + length + bs - 1) / bs, blocks_count(bmap));
	size_t existing = bmap->count;
	uint64_t cursor = first;
	for (size_t i = first_range_from(bmap, first);
	     i < existing && bmap->ranges[i].first < end; i++) {
		pp_bmap_range *r = &bmap->ranges[i];
		r->dirty = true;
		if (map && cursor < r->first) {
			int status = map_gap(bmap, cursor, r->first, source, err);
			if (status)
				return status;
			r = &bmap->ranges[i];  /* the array may have moved */
		}
		cursor = r->last + 1;
	}
	if (map && cursor < end) {
		int status = map_gap(bmap, cursor, end, source, err);
		if (status)
			return status;
	}
	if (bmap->count > existing)
		qsort(bmap->ranges, bmap->count, sizeof *bmap->ranges, by_first);
	return 0;
}

int pp_bmap_hash_dirty(pp_bmap *bmap, const pp_bmap_source *source,
		       pp_error *err)
{
	uint8_t *buf = NULL;
	for (size_t i = 0; i < bmap->count; i++) {
		pp_bmap_range *r = &bmap->ranges[i];
		if (!r->dirty)
			continue;
		if (!buf && !(buf = malloc(BMAP_IO_SIZE)))
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		pp_sha256 sha;
		pp_sha256_init(&sha);
		uint64_t end = range_end(bmap, r);
		for (uint64_t at = range_start(bmap, r); at < end;) {
			size_t len = (size_t)PP_MIN(BMAP_IO_SIZE, end - at);
			int status = source->read(source->opaque, buf, len, at,
						  err);
			if (status) {
				free(buf);
				return status;
			}
			pp_sha256_update(&sha, buf, len);
			at += len;
		}
		pp_sha256_final(&sha, r->sha256);
		r->dirty = false;
	}
	free(buf);
	return 0;
}

/* ---- the text ------------------------------------------------------------ */

static void to_hex(const uint8_t digest[32], char hex[BMAP_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 15];
	}
	hex[BMAP_HEX_LEN] = '\0';
}

/* bmap-tools' human_size: "1 byte", "N bytes" below 512, else one decimal
 * of the first unit (KiB, MiB, GiB, TiB, then EiB) below 1024. */
static void human_size(uint64_t size, char *text, size_t text_size)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	if (size == 1) {
		snprintf(text, text_size, "1 byte");
		return;
	}
	if (size < 512) {
		snprintf(text, text_size, "%" PRIu64 " bytes", size);
		return;
	}
	double value = (double)size;
	for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
		value /= 1024.0;
		if (value < 1024) {
			snprintf(text, text_size, "%.1f %s", value, units[i]);
			return;
		}
	}
	snprintf(text, text_size, "%.1f EiB", value);
}

static const char header_comment[] =
	"<?xml version=\"1.0\" ?>\n"
	"<!-- This file contains the block map for an image file, which is basically\n"
	"     a list of useful (mapped) block numbers in the image file. In other words,\n"
	"     it lists only those blocks which contain data (boot sector, partition\n"
	"     table, file-system metadata, files, directories, extents, etc). These\n"
	"     blocks have to be copied to the target device. The other blocks do not\n"
	"     contain any useful data and do not have to be copied to the target\n"
	"     device.\n"
	"\n"
	"     The block map an optimization which allows to copy or flash the image to\n"
	"     the image quicker than copying of flashing the entire image. This is\n"
	"     because with bmap less data is copied: <MappedBlocksCount> blocks instead\n"
	"     of <BlocksCount> blocks.\n"
	"\n"
	"     Besides the machine-readable data, this file contains useful commentaries\n"
	"     which contain human-readable information like image size, percentage of\n"
	"     mapped data, etc.\n"
	"\n"
	"     The 'version' attribute is the block map file format version in the\n"
	"     'major.minor' format. The version major number is increased whenever an\n"
	"     incompatible block map format change is made. The minor number changes\n"
	"     in case of minor backward-compatible changes. -->\n"
	"\n";

/*
 * Renders the file.  bmaptool create writes the header with blanks where
 * the mapped counts go, the ranges, then writes the counts over the blanks
 * (a longer text runs over what follows it) and the file's checksum over
 * its zeros; the same is done here on a buffer.
 */
static char *render(const pp_bmap *bmap, size_t *len)
{
	char *text = NULL;
	FILE *out = open_memstream(&text, len);
	if (!out)
		return NULL;
	uint64_t blocks = blocks_count(bmap), mapped = 0;
	for (size_t i = 0; i < bmap->count; i++)
		mapped += bmap->ranges[i].last - bmap->ranges[i].first + 1;
	char image_human[32], mapped_human[32], blocks_text[24];
	human_size(bmap->image_size, image_human, sizeof image_human);
	human_size(mapped * bmap->block_size, mapped_human, sizeof mapped_human);
	int blocks_len = snprintf(blocks_text, sizeof blocks_text, "%" PRIu64,
				  blocks);

	fputs(header_comment, out);
	fprintf(out, "<bmap version=\"2.0\">\n"
		"    <!-- Image size in bytes: %s -->\n"
		"    <ImageSize> %" PRIu64 " </ImageSize>\n\n"
		"    <!-- Size of a block in bytes -->\n"
		"    <BlockSize> %" PRIu64 " </BlockSize>\n\n"
		"    <!-- Count of blocks in the image file -->\n"
		"    <BlocksCount> %" PRIu64 " </BlocksCount>\n\n"
		"    <!-- Count of mapped blocks: ", image_human,
		bmap->image_size, bmap->block_size, blocks);
	long count_comment_at = ftell(out);
	fprintf(out, "%*s or %*s   -->\n    <MappedBlocksCount> ",
		(int)strlen(image_human), "", (int)strlen("100.0%"), "");
	long count_at = ftell(out);
	fprintf(out, "%*s </MappedBlocksCount>\n\n"
		"    <!-- Type of checksum used in this file -->\n"
		"    <ChecksumType> sha256 </ChecksumType>\n\n"
		"    <!-- The checksum of this bmap file. When it is calculated, the value of\n"
		"         the checksum has be zero (all ASCII \"0\" symbols).  -->\n"
		"    <BmapFileChecksum> ", blocks_len, "");
	long checksum_at = ftell(out);
	fprintf(out, "%0*d </BmapFileChecksum>\n\n"
		"    <!-- The block map which consists of elements which may either be a\n"
		"         range of blocks or a single block. The 'chksum' attribute\n"
		"         (if present) is the checksum of this blocks range. -->\n"
		"    <BlockMap>\n", BMAP_HEX_LEN, 0);
	for (size_t i = 0; i < bmap->count; i++) {
		const pp_bmap_range *r = &bmap->ranges[i];
		char hex[BMAP_HEX_LEN + 1];
		to_hex(r->sha256, hex);
		if (r->first != r->last)
			fprintf(out, "        <Range chksum=\"%s\"> %" PRIu64 "-%"
				PRIu64 " </Range>\n", hex, r->first, r->last);
		else
			fprintf(out, "        <Range chksum=\"%s\"> %" PRIu64
				" </Range>\n", hex, r->first);
	}
	fputs("    </BlockMap>\n</bmap>\n", out);
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}

	char over[64];
	int n = snprintf(over, sizeof over, "%s or %.1f%%", mapped_human,
			 blocks ? (double)mapped * 100.0 / (double)blocks : 0.0);
	memcpy(text + count_comment_at, over, (size_t)n);
	n = snprintf(over, sizeof over, "%" PRIu64, mapped);
	memcpy(text + count_at, over, (size_t)n);
	pp_sha256 sha;
	uint8_t digest[32];
	char hex[BMAP_HEX_LEN + 1];
	pp_sha256_init(&sha);
	pp_sha256_update(&sha, text, *len);
	pp_sha256_final(&sha, digest);
	to_hex(digest, hex);
	memcpy(text + checksum_at, hex, BMAP_HEX_LEN);
	return text;
}

/*
 * A new temporary file beside path, ".NAME.partpack-tmp.XXXXXX": a name
 * nobody can plant a link at beforehand, created exclusively (never
 * through a symbolic link), renamed over path when complete.  Replacing a
 * bmap keeps its permission bits (as sed -i does; never set-id ones); a
 * new one gets 0666 less the umask, as any new file.
 */
static int create_temp(const char *path, char **temp, pp_error *err)
{
	*temp = pp_hidden_path_beside(path, "partpack-tmp.XXXXXX");
	if (!*temp)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	struct stat original;
	bool replacing = stat(path, &original) == 0 &&
		S_ISREG(original.st_mode);
	int fd = pp_create_new_file(*temp, replacing ? 0600 : 0666);
	if (fd < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot write", path);
	if (replacing && fchmod(fd, original.st_mode & 0777)) {
		int status = pp_fail_errno(err, PP_ERR_IO, "%s", *temp);
		close(fd);
		unlink(*temp);
		return status;
	}
	return fd;
}

int pp_bmap_check_path(const char *path, pp_error *err)
{
	char *temp;
	int fd = create_temp(path, &temp, err);
	if (fd >= 0) {
		close(fd);
		unlink(temp);
	}
	free(temp);
	return fd < 0 ? fd : 0;
}

/* Writes, syncs and closes fd, then renames temp over path. */
static int write_temp(int fd, const char *temp, const char *path,
		      const char *text, size_t len, pp_error *err)
{
	int status = 0;
	if (pp_write_full(fd, text, len))
		status = pp_fail_errno(err, PP_ERR_IO, "%s: write error", temp);
	if (status == 0 && fsync(fd))
		status = pp_fail_errno(err, PP_ERR_IO, "%s: sync failed", temp);
	if (close(fd) && status == 0)
		status = pp_fail_errno(err, PP_ERR_IO, "%s", temp);
	if (status == 0 && rename(temp, path))
		status = pp_fail_errno(err, PP_ERR_IO,
				       "%s: cannot rename into place", path);
	if (status)
		unlink(temp);
	return status;
}

int pp_bmap_write(const pp_bmap *bmap, const char *path, pp_error *err)
{
	size_t len;
	char *text = render(bmap, &len);
	if (!text)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	char *temp;
	int fd = create_temp(path, &temp, err);
	int status = fd < 0 ? fd : write_temp(fd, temp, path, text, len, err);
	if (status == 0) {
		/* The rename is durable once the directory is. */
		int dir_fd = pp_open_directory_of(path);
		if (dir_fd < 0 || fsync(dir_fd))
			status = pp_fail_errno(err, PP_ERR_IO, "%s: sync failed",
					       path);
		if (dir_fd >= 0)
			close(dir_fd);
	}
	free(text);
	free(temp);
	return status;
}

/* ---- parsing ------------------------------------------------------------ */

/* A cursor over the XML text: just enough XML for bmap files. */
typedef struct scanner {
	const char *p;
	const char *end;
} scanner;

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *find(const scanner *s, const char *from, const char *what)
{
	size_t n = strlen(what);
	for (const char *p = from; p + n <= s->end; p++)
		if (memcmp(p, what, n) == 0)
			return p;
	return NULL;
}

/*
 * Moves to the next start tag, skipping comments, declarations and end
 * tags.  *name, *attrs are its name and attribute text, *content the text
 * up to the next '<'.  Returns false at the end or on malformed text.
 */
static bool next_element(scanner *s, const char **name, size_t *name_len,
			 const char **attrs, size_t *attrs_len,
			 const char **content, size_t *content_len, bool *bad)
{
	while ((s->p = find(s, s->p, "<")) != NULL) {
		const char *close;
		if (s->end - s->p >= 4 && memcmp(s->p, "<!--", 4) == 0)
			close = find(s, s->p + 4, "-->");
		else
			close = find(s, s->p, ">");
		if (!close) {
			*bad = true;
			return false;
		}
		if (s->p[1] == '!' || s->p[1] == '?' || s->p[1] == '/') {
			s->p = close + 1;
			continue;
		}
		*name = s->p + 1;
		*name_len = 0;
		while (*name + *name_len < close && !is_blank((*name)[*name_len]) &&
		       (*name)[*name_len] != '/')
			(*name_len)++;
		*attrs = *name + *name_len;
		*attrs_len = (size_t)(close - *attrs);
		*content = close + 1;
		const char *next = find(s, *content, "<");
		*content_len = (size_t)((next ? next : s->end) - *content);
		s->p = close + 1;
		return true;
	}
	return false;
}

static bool is_named(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(name, want, len) == 0;
}

/* The text without surrounding blanks, as a bounded copy. */
static void trimmed(const char *text, size_t len, char *out, size_t size)
{
	while (len > 0 && is_blank(*text)) {
		text++;
		len--;
	}
	while (len > 0 && is_blank(text[len - 1]))
		len--;
	if (len >= size)
		len = size - 1;
	memcpy(out, text, len);
	out[len] = '\0';
}

static bool parse_number(const char *text, uint64_t *value)
{
	char *end;
	if (*text < '0' || *text > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end)
		return false;
	*value = v;
	return true;
}

static bool parse_hex(const char *hex, uint8_t digest[32])
{
	if (strlen(hex) != BMAP_HEX_LEN)
		return false;
	for (int i = 0; i < 32; i++) {
		unsigned byte;
		if (sscanf(hex + 2 * i, "%2x", &byte) != 1 ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i + 1]))
			return false;
		digest[i] = (uint8_t)byte;
	}
	return true;
}

/* The value of attribute key in attrs ("chksum"), or false. */
static bool attribute(const char *attrs, size_t len, const char *key,
		      char *out, size_t size)
{
	size_t key_len = strlen(key);
	for (size_t i = 0; i + key_len + 2 <= len; i++) {
		if (memcmp(attrs + i, key, key_len) != 0 ||
		    (i > 0 && !is_blank(attrs[i - 1])))
			continue;
		size_t j = i + key_len;
		while (j < len && is_blank(attrs[j]))
			j++;
		if (j >= len || attrs[j] != '=')
			continue;
		j++;
		while (j < len && is_blank(attrs[j]))
			j++;
		if (j >= len || (attrs[j] != '"' && attrs[j] != '\''))
			return false;
		char quote = attrs[j++];
		size_t k = j;
		while (k < len && attrs[k] != quote)
			k++;
		if (k >= len)
			return false;
		trimmed(attrs + j, k - j, out, size);
		return true;
	}
	return false;
}

static int parse_range(pp_bmap *bmap, const char *attrs, size_t attrs_len,
		       const char *content, size_t content_len,
		       const char *name, pp_error *err)
{
	char text[64], hex[BMAP_HEX_LEN + 2];
	trimmed(content, content_len, text, sizeof text);
	uint64_t first, last;
	char *dash = strchr(text, '-');
	if (dash)
		*dash = '\0';
	char first_text[64], last_text[64];
	trimmed(text, strlen(text), first_text, sizeof first_text);
	trimmed(dash ? dash + 1 : text, strlen(dash ? dash + 1 : text),
		last_text, sizeof last_text);
	if (!parse_number(first_text, &first) || !parse_number(last_text, &last) ||
	    first > last)
		return pp_fail(err, PP_ERR_FORMAT, "%s: a Range is not "
			       "FIRST-LAST block numbers", name);
	if (bmap->count > 0 && first <= bmap->ranges[bmap->count - 1].last)
		return pp_fail(err, PP_ERR_FORMAT, "%s: ranges overlap or are "
			       "out of order at block %" PRIu64, name, first);
	if (!attribute(attrs, attrs_len, "chksum", hex, sizeof hex))
		return pp_fail(err, PP_ERR_FORMAT, "%s: range %" PRIu64 "-%"
			       PRIu64 " has no chksum", name, first, last);
	int status = add_range(bmap, first, last, err);
	if (status)
		return status;
	pp_bmap_range *r = &bmap->ranges[bmap->count - 1];
	r->dirty = false;
	if (!parse_hex(hex, r->sha256))
		return pp_fail(err, PP_ERR_FORMAT, "%s: range %" PRIu64 "-%"
			       PRIu64 " has a malformed sha256 chksum", name,
			       first, last);
	return 0;
}

/* bmap-tools' check of the file: its SHA-256 with the stored value set to
 * zeros (the first place the value appears, as bmaptool does it). */
static int check_file_checksum(const char *text, size_t len, const char *hex,
			       const char *name, pp_error *err)
{
	scanner s = { text, text + len };
	const char *at = find(&s, text, hex);
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	memcpy(copy, text, len);
	memset(copy + (at - text), '0', BMAP_HEX_LEN);
	pp_sha256 sha;
	uint8_t digest[32];
	char computed[BMAP_HEX_LEN + 1];
	pp_sha256_init(&sha);
	pp_sha256_update(&sha, copy, len);
	pp_sha256_final(&sha, digest);
	free(copy);
	to_hex(digest, computed);
	if (strcasecmp(computed, hex) != 0)
		return pp_fail(err, PP_ERR_FORMAT, "%s: BmapFileChecksum does "
			       "not match the file (edited by hand?)", name);
	return 0;
}

int pp_bmap_parse(pp_bmap *bmap, const char *text, size_t len,
		  const char *name, pp_error *err)
{
	*bmap = (pp_bmap){ 0 };
	scanner s = { text, text + len };
	const char *tag, *attrs, *content;
	size_t tag_len, attrs_len, content_len;
	bool bad = false, in_bmap = false, have_size = false, have_count = false;
	uint64_t blocks = 0;
	char value[128], version[32], checksum[BMAP_HEX_LEN + 2] = "";
	char type[32] = "";
	int status = 0;
	while (status == 0 && next_element(&s, &tag, &tag_len, &attrs, &attrs_len,
					   &content, &content_len, &bad)) {
		trimmed(content, content_len, value, sizeof value);
		if (is_named(tag, tag_len, "bmap")) {
			in_bmap = true;
			if (!attribute(attrs, attrs_len, "version", version,
				       sizeof version) ||
			    (strncmp(version, "2.", 2) != 0 &&
			     strcmp(version, "1.4") != 0))
				status = pp_fail(err, PP_ERR_FORMAT, "%s: not a bmap "
						 "of format version 2", name);
		} else if (is_named(tag, tag_len, "ImageSize")) {
			have_size = parse_number(value, &bmap->image_size);
		} else if (is_named(tag, tag_len, "BlockSize")) {
			if (!parse_number(value, &bmap->block_size) ||
			    bmap->block_size == 0 || bmap->block_size > (1u << 30))
				status = pp_fail(err, PP_ERR_FORMAT, "%s: bad "
						 "BlockSize", name);
		} else if (is_named(tag, tag_len, "BlocksCount")) {
			have_count = parse_number(value, &blocks);
		} else if (is_named(tag, tag_len, "ChecksumType")) {
			trimmed(content, content_len, type, sizeof type);
		} else if (is_named(tag, tag_len, "BmapFileChecksum")) {
			trimmed(content, content_len, checksum,
				sizeof checksum);
		} else if (is_named(tag, tag_len, "Range")) {
			status = parse_range(bmap, attrs, attrs_len, content,
					     content_len, name, err);
		}
	}
	if (status == 0 && (bad || !in_bmap || !have_size || !have_count ||
			    bmap->block_size == 0))
		status = pp_fail(err, PP_ERR_FORMAT, "%s: not a bmap file "
				 "(no ImageSize, BlockSize or BlocksCount)", name);
	if (status == 0 && strcmp(type, "sha256") != 0)
		status = pp_fail(err, PP_ERR_FORMAT, "%s: checksum type '%s' is "
				 "not supported (only sha256)", name, type);
	if (status == 0 && blocks != blocks_count(bmap))
		status = pp_fail(err, PP_ERR_FORMAT, "%s: BlocksCount %" PRIu64
				 " does not match ImageSize %" PRIu64, name,
				 blocks, bmap->image_size);
	if (status == 0 && bmap->count > 0 &&
	    bmap->ranges[bmap->count - 1].last >= blocks)
		status = pp_fail(err, PP_ERR_FORMAT, "%s: a range lies past "
				 "the end of the image", name);
	if (status == 0 && strlen(checksum) != BMAP_HEX_LEN)
		status = pp_fail(err, PP_ERR_FORMAT, "%s: no BmapFileChecksum",
				 name);
	if (status == 0)
		status = check_file_checksum(text, len, checksum, name, err);
	if (status)
		pp_bmap_release(bmap);
	return status;
}
