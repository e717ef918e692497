/*
 * test-gz.c - the gzip container: archives written through the write side
 * of pp_gz_container read back through its read side, gzip files from elsewhere scanned,
 * damaged files refused with the right status.  Stock gzip must accept
 * what we write.
 */
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "container.h"
#include "error.h"
#include "io.h"
#include "unit.h"

#include <zlib.h>

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The container under test, straight from gz.c rather than the registry. */
extern const pp_container_ops pp_gz_container;

#define TAIL_SIZE 56
#define FRAME 26                /* an index member without its entries */
#define ENTRY 9

/* ---- helpers ---------------------------------------------------------- */

static int collect(void *opaque, const uint8_t *data, size_t len,
		   pp_error *err)
{
	(void)err;
	unit_buffer_add(opaque, data, len);
	return 0;
}

/* Half compressible text, half noise: deflate has something to do and
 * something it cannot squeeze. */
static uint8_t *make_image(size_t len, unsigned long long seed)
{
	static const char *words[] = { "partpack ", "gzip ", "member ",
				       "stored ", "block ", "\n" };
	uint8_t *image = malloc(len ? len : 1);
	if (!image)
		abort();
	size_t i = 0;
	while (i < len) {
		unsigned long long r = unit_random(&seed);
		if ((i / 20000) % 2 == 0) {
			const char *w = words[r % 6];
			for (; *w && i < len; w++)
				image[i++] = (uint8_t)*w;
		} else {
			image[i++] = (uint8_t)(r >> 32);
		}
	}
	return image;
}

typedef struct spec {
	size_t usize;
	bool stored;
} spec;

/* Encodes the image as the given blocks, as pp_pack would. */
static int write_archive(const char *path, const uint8_t *image,
			 const spec *specs, size_t count,
			 pp_block_record *records, pp_error *err)
{
	pp_pack_options options;
	memset(&options, 0, sizeof options);
	options.format = PP_FORMAT_GZIP;
	options.level = 6;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", path);
	int ret = pp_gz_container.write_header(&options, fd, path, err);
	size_t uoffset = 0;
	for (size_t i = 0; !ret && i < count; i++) {
		size_t bound = pp_gz_container.block_bound(&options,
							specs[i].usize);
		uint8_t *out = malloc(bound);
		size_t out_len = bound;        /* in: capacity; out: used */
		ret = pp_gz_container.encode_block(&options, image + uoffset,
						specs[i].usize,
						specs[i].stored, out, &out_len,
						&records[i], err);
		if (!ret && out_len > bound)
			ret = pp_fail(err, PP_ERR_USAGE, "bound exceeded");
		if (!ret && pp_write_full(fd, out, out_len) < 0)
			ret = pp_fail_errno(err, PP_ERR_IO, "%s", path);
		free(out);
		uoffset += specs[i].usize;
	}
	if (!ret)
		ret = pp_gz_container.write_trailer(&options, records, count, fd,
						 path, err);
	close(fd);
	return ret;
}

static int open_archive(pp_archive *archive, const char *path, pp_error *err)
{
	struct stat st;
	memset(archive, 0, sizeof *archive);
	archive->path = strdup(path);
	pp_archive_use_fd(archive, open(path, O_RDONLY));
	if (archive->fd < 0 || fstat(archive->fd, &st) < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", path);
	archive->file_size = (uint64_t)st.st_size;
	archive->ops = &pp_gz_container;
	return archive->ops->open(archive, err);
}

static void close_archive(pp_archive *archive)
{
	archive->ops->release(archive);
	free(archive->blocks);
	if (archive->fd >= 0)
		close(archive->fd);
	free(archive->path);
}

/* Opens path and returns the status, closing again. */
static int open_status(const char *path, pp_error *err)
{
	pp_archive archive;
	int ret = open_archive(&archive, path, err);
	if (ret)
		CHECK(archive.blocks == NULL && archive.block_count == 0 &&
		      archive.container == NULL,
		      "failed open leaves no blocks or state behind");
	close_archive(&archive);
	return ret;
}

static int decode(pp_archive *archive, size_t block, uint64_t limit,
		  unit_buffer *out, pp_error *err)
{
	out->len = 0;
	return archive->ops->decode(archive, block, limit, collect, out, err);
}

static bool gzip_accepts(const char *path)
{
	return unit_shell("gzip -t '%s' 2>/dev/null", path) == 0;
}

static bool zcat_gives(const char *path, const char *expected_path)
{
	return unit_shell("zcat '%s' | cmp -s - '%s'", path, expected_path) == 0;
}

/* Every extent's bytes in the file are the image's bytes. */
static bool extents_match(const pp_extent_list *list, const unit_buffer *file,
			  const uint8_t *image)
{
	for (size_t i = 0; i < list->count; i++) {
		const pp_extent *e = &list->items[i];
		if (e->foffset + e->length > file->len ||
		    memcmp(file->data + e->foffset, image + e->uoffset,
			   e->length) != 0)
			return false;
	}
	return true;
}

static uint64_t extents_total(const pp_extent_list *list)
{
	uint64_t total = 0;
	for (size_t i = 0; i < list->count; i++)
		total += list->items[i].length;
	return total;
}

/* ---- archives we write ------------------------------------------------ */

static const spec mixed[] = {
	{ 100000, false }, { 70000, true }, { 0, true }, { 65535, true },
	{ 131071, true }, { 1, true }, { 50000, false }, { 0, false },
	{ 200000, true },
};
#define MIXED_COUNT (sizeof mixed / sizeof mixed[0])

static size_t specs_total(const spec *specs, size_t count)
{
	size_t total = 0;
	for (size_t i = 0; i < count; i++)
		total += specs[i].usize;
	return total;
}

static uint64_t stored_size(uint64_t usize)
{
	uint64_t blocks = usize == 0 ? 1 : (usize + 65534) / 65535;
	return 18 + 5 * blocks + usize;
}

static void check_records(const pp_block_record *records)
{
	bool ok = true;
	for (size_t i = 0; i < MIXED_COUNT; i++) {
		ok &= records[i].usize == mixed[i].usize;
		ok &= records[i].stored == mixed[i].stored;
		ok &= records[i].index_size == records[i].fsize;
		if (mixed[i].stored)
			ok &= records[i].fsize == stored_size(mixed[i].usize);
	}
	CHECK(ok, "records: sizes, flags, stored member sizes");
}

static void check_file_shape(const unit_buffer *file,
			     const pp_block_record *records)
{
	uint64_t data = 0;
	for (size_t i = 0; i < MIXED_COUNT; i++)
		data += records[i].fsize;
	CHECK(file->len == data + FRAME + ENTRY * MIXED_COUNT + TAIL_SIZE,
	      "file = members + one index member + 56-byte tail (%zu bytes)",
	      file->len);
	const uint8_t *tail = file->data + file->len - TAIL_SIZE;
	CHECK(tail[0] == 0x1f && tail[1] == 0x8b && tail[3] == 0x04 &&
	      tail[12] == 'P' && tail[13] == 'T' && tail[16] == 1 &&
	      pp_get_le64(tail + 34) == data,
	      "tail member: FEXTRA 'PT', version 1, index offset %llu",
	      (unsigned long long)data);
	const uint8_t *index = file->data + data;
	CHECK(index[3] == 0x04 && index[12] == 'P' && index[13] == 'I',
	      "index member: FEXTRA 'PI'");
}

static void check_table(const pp_archive *archive, const uint8_t *image,
			const unit_buffer *file)
{
	bool ok = archive->block_count == MIXED_COUNT;
	uint64_t uoffset = 0, foffset = 0;
	for (size_t i = 0; ok && i < MIXED_COUNT; i++) {
		const pp_block *b = &archive->blocks[i];
		ok &= b->uoffset == uoffset && b->usize == mixed[i].usize;
		ok &= b->foffset == foffset;
		ok &= b->check_offset == foffset + b->fsize - 8;
		ok &= b->check == PP_CHECK_CRC32 && b->stored_known;
		ok &= b->stored == mixed[i].stored;
		uint32_t crc = (uint32_t)crc32(0, image + uoffset,
					       (uInt)b->usize);
		ok &= pp_get_le32(file->data + b->check_offset) == crc;
		uoffset += b->usize;
		foffset += b->fsize;
	}
	CHECK(ok, "block table: %zu blocks, offsets, sizes, CRC places",
	      archive->block_count);
}

static void check_extents(pp_archive *archive, const uint8_t *image,
			  const unit_buffer *file)
{
	for (size_t i = 0; i < MIXED_COUNT; i++) {
		pp_extent_list list = { 0 };
		pp_error err = { 0 };
		int ret = archive->ops->stored_extents(archive, i, &list, &err);
		uint64_t want = mixed[i].stored ? mixed[i].usize : 0;
		size_t chunks = (size_t)((want + 65534) / 65535);
		CHECK(ret == 0 && extents_total(&list) == want &&
		      list.count == chunks &&
		      extents_match(&list, file, image),
		      "block %zu: %zu stored extents, %llu bytes, verbatim",
		      i, list.count, (unsigned long long)want);
		pp_extent_list_free(&list);
	}
}

static void check_decode(pp_archive *archive, const uint8_t *image)
{
	unit_buffer out = { 0 };
	pp_error err = { 0 };
	bool ok = true;
	for (size_t i = 0; i < archive->block_count; i++) {
		const pp_block *b = &archive->blocks[i];
		ok &= decode(archive, i, UINT64_MAX, &out, &err) == 0;
		ok &= out.len == b->usize &&
		      (b->usize == 0 ||
		       memcmp(out.data, image + b->uoffset, b->usize) == 0);
	}
	CHECK(ok, "every block decodes to the image (%s)",
	      ok ? "" : err.message);
	/* pp_decode_block goes through decode_whole, into its buffer. */
	ok = true;
	for (size_t i = 0; i < archive->block_count; i++) {
		const pp_block *b = &archive->blocks[i];
		uint8_t *buf = malloc(b->usize + 1);
		memset(buf, 0xaa, b->usize + 1);
		ok &= pp_decode_block(archive, i, buf, &err) == 0;
		ok &= memcmp(buf, image + b->uoffset, b->usize) == 0 &&
		      buf[b->usize] == 0xaa;
		free(buf);
	}
	CHECK(ok, "every block decodes whole into a buffer (%s)",
	      ok ? "" : err.message);
	int ret = decode(archive, 0, 1000, &out, &err);
	CHECK(ret == 0 && out.len == 1000 && !memcmp(out.data, image, 1000),
	      "decode with a limit gives the first 1000 bytes");
	ret = decode(archive, 0, 0, &out, &err);
	CHECK(ret == 0 && out.len == 0, "decode with limit 0 gives nothing");
	free(out.data);
}

static void test_mixed(void)
{
	char path[512], raw[512];
	unit_path_to(path, sizeof path, "mixed.gz");
	unit_path_to(raw, sizeof raw, "mixed.img");
	size_t total = specs_total(mixed, MIXED_COUNT);
	uint8_t *image = make_image(total, 1);
	unit_write_path(raw, image, total);
	pp_block_record records[MIXED_COUNT];
	pp_error err = { 0 };
	int ret = write_archive(path, image, mixed, MIXED_COUNT, records, &err);
	CHECK(ret == 0, "write a mixed archive (%s)", ret ? err.message : "");
	check_records(records);
	unit_buffer file = unit_read_path(path);
	check_file_shape(&file, records);
	CHECK(gzip_accepts(path), "gzip -t accepts it");
	CHECK(zcat_gives(path, raw), "zcat gives the image back");

	pp_archive archive;
	ret = open_archive(&archive, path, &err);
	CHECK(ret == 0, "open it (%s)", ret ? err.message : "");
	if (ret == 0) {
		check_table(&archive, image, &file);
		check_extents(&archive, image, &file);
		check_decode(&archive, image);
	}
	close_archive(&archive);
	free(file.data);
	free(image);
}

static void test_deterministic(void)
{
	pp_pack_options options;
	memset(&options, 0, sizeof options);
	options.level = 9;
	uint8_t *image = make_image(300000, 2);
	size_t bound = pp_gz_container.block_bound(&options, 300000);
	uint8_t *a = malloc(bound), *b = malloc(bound);
	size_t a_len = bound, b_len = bound;
	pp_block_record record;
	pp_error err;
	int ret = pp_gz_container.encode_block(&options, image, 300000, false, a,
					    &a_len, &record, &err);
	ret |= pp_gz_container.encode_block(&options, image, 300000, false, b,
					 &b_len, &record, &err);
	CHECK(ret == 0 && a_len == b_len && !memcmp(a, b, a_len) &&
	      a_len < 300000, "encoding is repeatable (%zu bytes)", a_len);
	CHECK(a[3] == 0 && a[4] == 0 && a[8] == 0 && a[9] == 255,
	      "data member header: FLG 0, MTIME 0, XFL 0, OS 255");
	free(a);
	free(b);
	free(image);
}

/* More members than one index member holds, and no members at all. */
static void test_index_sizes(void)
{
	enum { COUNT = 7300, SIZE = 3 };
	char path[512];
	unit_path_to(path, sizeof path, "many.gz");
	spec *specs = malloc(COUNT * sizeof *specs);
	pp_block_record *records = malloc(COUNT * sizeof *records);
	for (size_t i = 0; i < COUNT; i++)
		specs[i] = (spec){ SIZE, i % 2 == 0 };
	uint8_t *image = make_image(COUNT * SIZE, 3);
	pp_error err = { 0 };
	int ret = write_archive(path, image, specs, COUNT, records, &err);
	unit_buffer file = unit_read_path(path);
	uint64_t data = 0;
	for (size_t i = 0; i < COUNT; i++)
		data += records[i].fsize;
	CHECK(ret == 0 && file.len == data + 2 * FRAME + ENTRY * COUNT +
				      TAIL_SIZE,
	      "%d members: two index members", COUNT);
	uint8_t *second = file.data + data + FRAME + ENTRY * 7281;
	CHECK(second[12] == 'P' && second[13] == 'I' &&
	      (file.data[data + 10] | file.data[data + 11] << 8) ==
		      4 + 9 * 7281,
	      "first index member full (XLEN %u)", 4 + 9 * 7281);
	CHECK(gzip_accepts(path), "gzip -t accepts it");
	pp_archive archive;
	ret = open_archive(&archive, path, &err);
	unit_buffer out = { 0 };
	CHECK(ret == 0 && archive.block_count == COUNT &&
	      archive.blocks[7290].uoffset == 7290 * SIZE &&
	      !archive.blocks[7291].stored &&
	      decode(&archive, 7290, UINT64_MAX, &out, &err) == 0 &&
	      out.len == SIZE && !memcmp(out.data, image + 7290 * SIZE, SIZE),
	      "open and decode across index members (%s)", err.message);
	close_archive(&archive);
	free(out.data);
	free(file.data);

	unit_path_to(path, sizeof path, "empty.gz");
	ret = write_archive(path, image, specs, 0, records, &err);
	file = unit_read_path(path);
	CHECK(ret == 0 && file.len == FRAME + TAIL_SIZE,
	      "empty image: one empty index member and the tail");
	CHECK(gzip_accepts(path), "gzip -t accepts it");
	ret = open_archive(&archive, path, &err);
	CHECK(ret == 0 && archive.block_count == 0, "and it opens, no blocks");
	close_archive(&archive);
	free(file.data);
	free(image);
	free(records);
	free(specs);
}

static void test_limits(void)
{
	pp_pack_options options;
	memset(&options, 0, sizeof options);
	options.level = 6;
	uint8_t byte = 0, out[64];
	size_t out_len = sizeof out;
	pp_block_record record;
	pp_error err = { 0 };
	size_t largest = (size_t)4032 << 20;
	CHECK(pp_gz_container.block_bound(&options, largest) < UINT32_MAX,
	      "the largest block's bound fits the index's LE32");
	/* encode_block refuses before it touches in or out.  pp_pack never
	 * asks for any of these (it checks options first), so reaching them
	 * is a bug: PP_ERR_INTERNAL, not the caller's usage error. */
	int ret = pp_gz_container.encode_block(&options, &byte, largest + 1, true,
					    out, &out_len, &record, &err);
	CHECK(ret == PP_ERR_INTERNAL, "a block over 4032 MiB is refused (%s)",
	      err.message);
	ret = pp_gz_container.encode_block(&options, &byte, (size_t)1 << 32,
					false, out, &out_len, &record, &err);
	CHECK(ret == PP_ERR_INTERNAL, "a 4 GiB block is refused");
	out_len = 20;
	ret = pp_gz_container.encode_block(&options, &byte, 10, true, out,
					&out_len, &record, &err);
	CHECK(ret == PP_ERR_INTERNAL, "a stored member is not written past the "
	      "output space (%s)", err.message);
	out_len = 20;
	ret = pp_gz_container.encode_block(&options, out, 64, false, out + 20,
					&out_len, &record, &err);
	CHECK(ret == PP_ERR_INTERNAL, "neither is a compressed one (%s)",
	      err.message);
	char path[512];
	unit_path_to(path, sizeof path, "refused.gz");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	pp_block_record records[2] = {
		{ .usize = 10, .fsize = 33, .index_size = 33, .stored = true },
		{ .usize = 10, .fsize = 1ULL << 32, .index_size = 1ULL << 32 },
	};
	ret = pp_gz_container.write_trailer(&options, records, 2, fd, path, &err);
	struct stat st;
	CHECK(ret == PP_ERR_INTERNAL && fstat(fd, &st) == 0 && st.st_size == 0,
	      "an index entry over LE32 is refused, nothing written (%s)",
	      err.message);
	close(fd);
	options.level = 10;
	out_len = sizeof out;
	ret = pp_gz_container.encode_block(&options, &byte, 1, false, out,
					&out_len, &record, &err);
	CHECK(ret == PP_ERR_INTERNAL, "level 10 is refused (%s)", err.message);
}

/* ---- damaged archives ------------------------------------------------- */

static int open_variant(const char *name, const unit_buffer *file, size_t len,
			size_t flip, pp_error *err)
{
	char path[512];
	unit_path_to(path, sizeof path, name);
	uint8_t *copy = malloc(file->len + 16);
	memcpy(copy, file->data, file->len);
	if (flip < len)
		copy[flip] ^= 0x40;
	unit_write_path(path, copy, len);
	free(copy);
	return open_status(path, err);
}

static void test_damage(void)
{
	char path[512];
	unit_path_to(path, sizeof path, "mixed.gz");
	unit_buffer file = unit_read_path(path);
	size_t len = file.len, none = SIZE_MAX;
	size_t index = len - TAIL_SIZE - FRAME - ENTRY * MIXED_COUNT;
	pp_error err = { 0 };

	int ret = open_variant("cut1.gz", &file, len - 1, none, &err);
	CHECK(ret == PP_ERR_FORMAT && strstr(err.message, "truncated"),
	      "tail cut by a byte: %s", err.message);
	ret = open_variant("cut-half.gz", &file, len / 2, none, &err);
	CHECK(ret == PP_ERR_FORMAT, "cut in half: %s", err.message);
	ret = open_variant("entry.gz", &file, len, index + 16 + 4, &err);
	CHECK(ret == PP_ERR_FORMAT && strstr(err.message, "CRC"),
	      "index entry changed: %s", err.message);
	ret = open_variant("offset.gz", &file, len, len - TAIL_SIZE + 34, &err);
	CHECK(ret == PP_ERR_FORMAT, "index offset changed: %s", err.message);
	ret = open_variant("count.gz", &file, len, len - TAIL_SIZE + 26 + 7,
			   &err);
	CHECK(ret == PP_ERR_FORMAT, "member count changed: %s", err.message);
	ret = open_variant("version.gz", &file, len, len - TAIL_SIZE + 16,
			   &err);
	CHECK(ret == PP_ERR_FORMAT && strstr(err.message, "version"),
	      "tail version changed: %s", err.message);
	ret = open_variant("frame.gz", &file, len, index + 9, &err);
	CHECK(ret == PP_ERR_FORMAT && strstr(err.message, "damaged"),
	      "index member header changed: %s", err.message);

	/* Trailing bytes hide the tail: the file is scanned and refused. */
	char junk_path[512];
	unit_path_to(junk_path, sizeof junk_path, "junk.gz");
	unit_buffer junk = { 0 };
	unit_buffer_add(&junk, file.data, file.len);
	unit_buffer_add(&junk, "junk", 4);
	unit_write_path(junk_path, junk.data, junk.len);
	ret = open_status(junk_path, &err);
	CHECK(ret == PP_ERR_FORMAT && strstr(err.message, "trailing"),
	      "trailing junk: %s", err.message);
	free(junk.data);
	free(file.data);
}

/* A byte flipped in stored data opens fine; decoding finds the CRC. */
static void test_flipped_data(void)
{
	char path[512], flipped[512];
	unit_path_to(path, sizeof path, "mixed.gz");
	unit_path_to(flipped, sizeof flipped, "flipped.gz");
	unit_buffer file = unit_read_path(path);
	pp_archive archive;
	pp_error err = { 0 };
	int ret = open_archive(&archive, path, &err);
	CHECK(ret == 0 && archive.block_count == MIXED_COUNT,
	      "reopen the mixed archive");
	if (ret) {
		close_archive(&archive);
		free(file.data);
		return;
	}
	const pp_block *b = &archive.blocks[1];    /* stored, 70000 bytes */
	uint64_t at = b->foffset + 10 + 5 + 40000;
	close_archive(&archive);
	file.data[at] ^= 1;
	unit_write_path(flipped, file.data, file.len);
	ret = open_archive(&archive, flipped, &err);
	CHECK(ret == 0, "flipped stored byte: open still works");
	unit_buffer out = { 0 };
	ret = decode(&archive, 1, UINT64_MAX, &out, &err);
	CHECK(ret == PP_ERR_CHECK && strstr(err.message, "member 2: CRC-32"),
	      "decode reports it: %s", err.message);
	ret = decode(&archive, 1, 100, &out, &err);
	CHECK(ret == 0 && out.len == 100,
	      "a partial decode does not compare the check");
	ret = decode(&archive, 0, UINT64_MAX, &out, &err);
	CHECK(ret == 0, "other blocks still decode");
	close_archive(&archive);
	CHECK(!gzip_accepts(flipped), "gzip -t agrees it is damaged");
	free(out.data);
	free(file.data);
}

/*
 * A whole compressed member of ours is inflated by libdeflate, and only
 * an exact result is taken: damage is decoded again by zlib, so both
 * ways of decoding a block give the statuses and messages they always
 * gave.  Flips byte `at` of block 0 (compressed, 100000 bytes) and
 * checks that both say `status` and `says`.
 */
static void check_damaged_member(const unit_buffer *file, const char *what,
				 size_t at, uint8_t mask, int status,
				 const char *says)
{
	char path[512];
	unit_path_to(path, sizeof path, "member.gz");
	file->data[at] ^= mask;
	unit_write_path(path, file->data, file->len);
	file->data[at] ^= mask;
	pp_archive archive;
	pp_error err = { 0 }, whole_err = { 0 };
	int ret = open_archive(&archive, path, &err);
	CHECK(ret == 0, "%s: open still works (%s)", what,
	      ret ? err.message : "");
	if (ret) {
		close_archive(&archive);
		return;
	}
	unit_buffer out = { 0 };
	ret = decode(&archive, 0, UINT64_MAX, &out, &err);
	CHECK(ret == status && strstr(err.message, says),
	      "%s: decode says %d: %s", what, ret, err.message);
	uint8_t *buf = malloc((size_t)archive.blocks[0].usize);
	int whole = pp_decode_block(&archive, 0, buf, &whole_err);
	CHECK(whole == ret && !strcmp(whole_err.message, err.message),
	      "%s: decoding into a buffer says the same: %s", what,
	      whole_err.message);
	free(buf);
	close_archive(&archive);
	free(out.data);
}

static void test_damaged_members(void)
{
	char path[512];
	unit_path_to(path, sizeof path, "mixed.gz");
	unit_buffer file = unit_read_path(path);
	pp_archive archive;
	pp_error err = { 0 };
	int ret = open_archive(&archive, path, &err);
	CHECK(ret == 0 && !archive.blocks[0].stored,
	      "reopen the mixed archive");
	if (ret) {
		close_archive(&archive);
		free(file.data);
		return;
	}
	size_t end = (size_t)archive.blocks[0].fsize;   /* member 1's */
	close_archive(&archive);
	check_damaged_member(&file, "CRC-32 changed", end - 8, 0x01,
			     PP_ERR_CHECK, "member 1: CRC-32 mismatch (stored ");
	check_damaged_member(&file, "ISIZE changed", end - 1, 0x80,
			     PP_ERR_CHECK, "member 1: ISIZE mismatch (stored ");
	/* The last deflate block's end: inflate ends early, or past the
	 * data, or on a bad code, whichever it meets; zlib names it. */
	check_damaged_member(&file, "deflate data changed", end - 9, 0xff,
			     PP_ERR_FORMAT, "member 1");
	/* An MTIME we never write: libdeflate would take it, but the header
	 * is not ours, so zlib decodes it, and it is fine. */
	check_damaged_member(&file, "MTIME set", 4, 0x01, 0, "");
	free(file.data);
}

static void test_not_gzip(void)
{
	char path[512];
	pp_error err = { 0 };
	unsigned long long seed = 4;
	uint8_t noise[4096];
	for (size_t i = 0; i < sizeof noise; i++)
		noise[i] = (uint8_t)unit_random(&seed);
	unit_path_to(path, sizeof path, "noise");
	unit_write_path(path, noise, sizeof noise);
	int ret = open_status(path, &err);
	CHECK(ret == PP_ERR_FORMAT, "random bytes: %s", err.message);
	noise[0] = 0x1f;
	noise[1] = 0x8b;
	noise[2] = 8;
	noise[3] = 0;
	unit_write_path(path, noise, sizeof noise);
	ret = open_status(path, &err);
	CHECK(ret == PP_ERR_FORMAT, "random bytes after a gzip header: %s",
	      err.message);
	unit_path_to(path, sizeof path, "empty");
	unit_write_path(path, noise, 0);
	ret = open_status(path, &err);
	CHECK(ret == PP_ERR_FORMAT && strstr(err.message, "empty"),
	      "empty file: %s", err.message);
	unit_write_path(path, noise, 2);
	ret = open_status(path, &err);
	CHECK(ret == PP_ERR_FORMAT && strstr(err.message, "truncated"),
	      "bare magic: %s", err.message);
}

/* ---- gzip files from elsewhere ---------------------------------------- */

enum { REGION_A = 300000, REGION_B = 200000, REGION_C = 100000 };

/* A member with every optional header field, deflateParams switching to
 * level 0 for region B, as a user's own tool might write it. */
static size_t zlib_params_file(const uint8_t *image, uint8_t *out, size_t cap)
{
	z_stream strm;
	memset(&strm, 0, sizeof strm);
	if (deflateInit2(&strm, 6, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	static char name[] = "disk.img", comment[] = "a comment";
	static unsigned char extra[] = { 'X', 'Y', 2, 0, 1, 2 };
	gz_header header;
	memset(&header, 0, sizeof header);
	header.name = (Bytef *)name;
	header.comment = (Bytef *)comment;
	header.extra = extra;
	header.extra_len = sizeof extra;
	header.hcrc = 1;
	header.os = 3;
	deflateSetHeader(&strm, &header);
	strm.next_out = out;
	strm.avail_out = (uInt)cap;
	const size_t sizes[] = { REGION_A, REGION_B, REGION_C };
	const int levels[] = { 6, 0, 6 };
	for (int i = 0; i < 3; i++) {
		if (i > 0 && deflateParams(&strm, levels[i],
					   Z_DEFAULT_STRATEGY) != Z_OK)
			abort();
		strm.next_in = (Bytef *)image;
		strm.avail_in = (uInt)sizes[i];
		if (deflate(&strm, i == 2 ? Z_FINISH : Z_NO_FLUSH) < 0)
			abort();
		image += sizes[i];
	}
	size_t len = strm.total_out;
	deflateEnd(&strm);
	return len;
}

/* How much of [from, to) the extents cover. */
static uint64_t extents_cover(const pp_extent_list *list, uint64_t from,
			      uint64_t to)
{
	uint64_t covered = 0;
	for (size_t i = 0; i < list->count; i++) {
		const pp_extent *e = &list->items[i];
		uint64_t start = PP_MAX(e->uoffset, from);
		uint64_t end = PP_MIN(e->uoffset + e->length, to);
		if (end > start)
			covered += end - start;
	}
	return covered;
}

/* The stored extents found cover region B, verbatim, but for what region
 * C may copy from its last 32 KiB.  Returns the file offset of a byte in
 * the middle of them. */
static uint64_t check_region_b(pp_archive *archive, const uint8_t *image,
			       const unit_buffer *file)
{
	pp_extent_list list = { 0 };
	pp_error err = { 0 };
	int ret = archive->ops->stored_extents(archive, 0, &list, &err);
	uint64_t b_end = REGION_A + REGION_B;
	uint64_t covered = extents_cover(&list, REGION_A, b_end);
	uint64_t head = extents_cover(&list, REGION_A, b_end - 32768);
	CHECK(ret == 0 && list.count >= 4 && head == REGION_B - 32768 &&
	      covered <= REGION_B,
	      "scan: %zu stored extents cover region B but %llu bytes of its "
	      "last 32 KiB", list.count,
	      (unsigned long long)(REGION_B - covered));
	CHECK(extents_match(&list, file, image),
	      "their file bytes are the image's bytes");
	uint64_t middle = 0;
	if (list.count > 0) {
		const pp_extent *e = &list.items[list.count / 2];
		middle = e->foffset + e->length / 2;
	}
	pp_extent_list_free(&list);
	return middle;
}

static void test_foreign_params(void)
{
	char path[512], raw[512];
	unit_path_to(path, sizeof path, "params.gz");
	unit_path_to(raw, sizeof raw, "params.img");
	size_t total = REGION_A + REGION_B + REGION_C;
	uint8_t *image = make_image(total, 5);
	unit_write_path(raw, image, total);
	size_t cap = compressBound(total) + 1024;
	uint8_t *out = malloc(cap);
	size_t len = zlib_params_file(image, out, cap);
	unit_write_path(path, out, len);
	CHECK(gzip_accepts(path) && zcat_gives(path, raw),
	      "zlib deflateParams file is valid gzip");

	pp_archive archive;
	pp_error err = { 0 };
	unit_buffer file = unit_read_path(path);
	int ret = open_archive(&archive, path, &err);
	CHECK(ret == 0 && archive.block_count == 1 &&
	      !archive.blocks[0].stored_known &&
	      archive.blocks[0].usize == total &&
	      archive.blocks[0].fsize == len &&
	      archive.blocks[0].check_offset == len - 8,
	      "scanned: one member of %zu bytes (%s)", total, err.message);
	unit_buffer decoded = { 0 };
	uint64_t stored_byte = 0;
	if (ret == 0) {
		stored_byte = check_region_b(&archive, image, &file);
		ret = decode(&archive, 0, UINT64_MAX, &decoded, &err);
		CHECK(ret == 0 && decoded.len == total &&
		      !memcmp(decoded.data, image, total),
		      "decodes to the image");
	}
	close_archive(&archive);

	/* Edit a stored byte by hand, leaving the CRC stale: this must
	 * still open, so partpatch can repair it; decode reports it. */
	file.data[stored_byte] ^= 0x20;
	unit_write_path(path, file.data, file.len);
	ret = open_archive(&archive, path, &err);
	CHECK(ret == 0, "stale CRC: open still works (%s)",
	      ret ? err.message : "");
	if (ret == 0) {
		ret = decode(&archive, 0, UINT64_MAX, &decoded, &err);
		CHECK(ret == PP_ERR_CHECK, "stale CRC: decode says %s",
		      err.message);
	}
	close_archive(&archive);
	free(decoded.data);
	free(file.data);
	free(out);
	free(image);
}

/* gzip's own output (FNAME) followed by a zlib member: two blocks. */
static void test_foreign_members(void)
{
	char raw[512], path[512];
	unit_path_to(raw, sizeof raw, "two.img");
	unit_path_to(path, sizeof path, "two.gz");
	size_t first = 150000, total = first + REGION_A + REGION_B + REGION_C;
	uint8_t *image = make_image(total, 6);
	unit_write_path(raw, image, first);
	CHECK(unit_shell("gzip -c '%s' > '%s'", raw, path) == 0,
	      "gzip -c made a member with FNAME");
	unit_buffer file = unit_read_path(path);
	size_t cap = compressBound(total) + 1024;
	uint8_t *out = malloc(cap);
	size_t len = zlib_params_file(image + first, out, cap);
	size_t first_len = file.len;
	unit_buffer_add(&file, out, len);
	unit_write_path(path, file.data, file.len);

	pp_archive archive;
	pp_error err = { 0 };
	int ret = open_archive(&archive, path, &err);
	CHECK(ret == 0 && archive.block_count == 2 &&
	      archive.blocks[0].usize == first &&
	      archive.blocks[1].uoffset == first &&
	      archive.blocks[1].foffset == first_len,
	      "gzip member + zlib member: two blocks (%s)", err.message);
	unit_buffer decoded = { 0 };
	bool ok = ret == 0;
	for (size_t i = 0; ok && i < 2; i++) {
		const pp_block *b = &archive.blocks[i];
		ok &= decode(&archive, i, UINT64_MAX, &decoded, &err) == 0 &&
		      decoded.len == b->usize &&
		      !memcmp(decoded.data, image + b->uoffset, b->usize);
	}
	CHECK(ok, "both decode to the image");
	close_archive(&archive);

	pp_error e = { 0 };
	ret = open_variant("two-cut.gz", &file, file.len - 3, SIZE_MAX, &e);
	CHECK(ret == PP_ERR_FORMAT && strstr(e.message, "truncated"),
	      "foreign, cut: %s", e.message);
	ret = open_variant("two-isize.gz", &file, file.len, file.len - 2, &e);
	CHECK(ret == PP_ERR_FORMAT && strstr(e.message, "ISIZE"),
	      "foreign, bad ISIZE: %s", e.message);
	ret = open_variant("two-deflate.gz", &file, file.len, first_len + 30,
			   &e);
	CHECK(ret == PP_ERR_FORMAT && strstr(e.message, "member 2"),
	      "foreign, bad header CRC: %s", e.message);
	free(decoded.data);
	free(out);
	free(file.data);
	free(image);
}

/* ---- stored bytes that later compressed data copies from -------------- */

enum { LEAD = 50000, REGION = 200000, AFTER = 100000, WINDOW = 32768 };

/* What comes after the stored region in each kind of test file. */
enum after_kind {
	AFTER_SAME,             /* more of the region's line: copies it */
	AFTER_FOREIGN,          /* letters the region never holds */
	AFTER_FULL_FLUSH,       /* Z_FULL_FLUSH, then more of the line */
	AFTER_FLUSH_FLOOD,      /* a byte, a million flush markers, the line */
};

/* Text at the start, then REGION bytes of one line over and over, then
 * AFTER bytes of the kind asked for. */
static uint8_t *make_region_image(enum after_kind kind)
{
	static const char line[] =
		"partpack keeps this line raw so that it can be patched\n";
	size_t total = LEAD + REGION + AFTER;
	uint8_t *image = make_image(total, 8);
	unsigned long long seed = 9;
	for (size_t i = LEAD; i < total; i++) {
		size_t in_line = (i - LEAD) % (sizeof line - 1);
		bool letters = kind == AFTER_FOREIGN && i >= LEAD + REGION;
		image[i] = letters ? (uint8_t)('A' + unit_random(&seed) % 16) :
				     (uint8_t)line[in_line];
	}
	return image;
}

static void deflate_part(z_stream *strm, const uint8_t *data, size_t len,
			 int flush)
{
	strm->next_in = (Bytef *)data;
	strm->avail_in = (uInt)len;
	if (deflate(strm, flush) < 0 || strm->avail_in != 0)
		abort();
}

/* Appends what deflate wrote to out so far and makes room again. */
static void take_output(z_stream *strm, unit_buffer *out, uint8_t *room,
			size_t room_len)
{
	unit_buffer_add(out, room, room_len - strm->avail_out);
	strm->next_out = room;
	strm->avail_out = (uInt)room_len;
}

/* A gzip file as zlib writes it with deflateParams switching to level 0
 * for the region and back to level 6 after it. */
static unit_buffer region_file(const uint8_t *image, enum after_kind kind)
{
	enum { ROOM = 1 << 20 };
	static uint8_t room[ROOM];
	static const uint8_t flush_marker[] = { 0, 0, 0, 0xff, 0xff };
	unit_buffer out = { 0 };
	z_stream strm;
	memset(&strm, 0, sizeof strm);
	if (deflateInit2(&strm, 6, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	strm.next_out = room;
	strm.avail_out = ROOM;
	deflate_part(&strm, image, LEAD, Z_NO_FLUSH);
	if (deflateParams(&strm, 0, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	deflate_part(&strm, image + LEAD, REGION,
		     kind == AFTER_FULL_FLUSH ? Z_FULL_FLUSH : Z_NO_FLUSH);
	if (deflateParams(&strm, 6, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	const uint8_t *after = image + LEAD + REGION;
	size_t after_len = AFTER;
	if (kind == AFTER_FLUSH_FLOOD) {
		/* One compressed byte, then more flush markers than the
		 * scan will read to trace 32 KiB of output. */
		deflate_part(&strm, after, 1, Z_SYNC_FLUSH);
		take_output(&strm, &out, room, ROOM);
		for (int i = 0; i < 1000000; i++)
			unit_buffer_add(&out, flush_marker, sizeof flush_marker);
		after++;
		after_len--;
	}
	deflate_part(&strm, after, after_len, Z_FINISH);
	take_output(&strm, &out, room, ROOM);
	deflateEnd(&strm);
	return out;
}

/* Decodes a gzip file with zlib, whatever its CRC says. */
static unit_buffer gunzip(const unit_buffer *file)
{
	unit_buffer out = { 0 };
	uint8_t room[1 << 16];
	z_stream strm;
	memset(&strm, 0, sizeof strm);
	if (inflateInit2(&strm, 15 + 16) != Z_OK)
		abort();
	strm.next_in = file->data;
	strm.avail_in = (uInt)file->len;
	int ret;
	do {
		strm.next_out = room;
		strm.avail_out = sizeof room;
		ret = inflate(&strm, Z_NO_FLUSH);
		unit_buffer_add(&out, room, sizeof room - strm.avail_out);
	} while (ret == Z_OK);
	inflateEnd(&strm);
	return out;
}

/* The stored ranges the archive offers, clipped to [from, to). */
static pp_range *offered_in(pp_archive *archive, uint64_t from, uint64_t to,
			    size_t *count)
{
	pp_info info;
	pp_range *ranges = calloc(1, sizeof *ranges);
	*count = 0;
	if (pp_get_info(archive, &info, NULL) != 0)
		return ranges;
	ranges = realloc(ranges, (info.stored_count + 1) * sizeof *ranges);
	for (size_t i = 0; i < info.stored_count; i++) {
		uint64_t start = PP_MAX(info.stored[i].offset, from);
		uint64_t end = PP_MIN(info.stored[i].offset +
				      info.stored[i].length, to);
		if (start < end)
			ranges[(*count)++] = (pp_range){ start, end - start };
	}
	pp_info_free(&info);
	return ranges;
}

static uint64_t ranges_total(const pp_range *ranges, size_t count)
{
	uint64_t total = 0;
	for (size_t i = 0; i < count; i++)
		total += ranges[i].length;
	return total;
}

/* Skips any stored block headers at `at`: the file offset of the next
 * stored byte.  The region holds text, never the 00 or 01 that starts a
 * header. */
static uint64_t skip_headers(const unit_buffer *file, uint64_t at)
{
	while (at + 5 <= file->len && file->data[at] <= 1) {
		const uint8_t *p = file->data + at;
		unsigned len = p[1] | (unsigned)p[2] << 8;
		unsigned nlen = p[3] | (unsigned)p[4] << 8;
		if (len != (~nlen & 0xffff))
			break;
		at += 5;
	}
	return at;
}

/* Whether flipping the stored byte at foffset (image byte u) changes some
 * other byte of the output: whether later data copies from it. */
static bool copied_elsewhere(const unit_buffer *file, uint64_t foffset,
			     const uint8_t *image, uint64_t u, size_t total)
{
	unit_buffer copy = { 0 };
	unit_buffer_add(&copy, file->data, file->len);
	copy.data[foffset] ^= 0xff;
	unit_buffer out = gunzip(&copy);
	bool changed = out.len != total;
	for (size_t i = 0; !changed && i < total; i++)
		changed = i != u && out.data[i] != image[i];
	uint8_t flipped_byte = (uint8_t)~image[u];
	bool flipped = out.len == total && out.data[u] == flipped_byte;
	free(copy.data);
	free(out.data);
	return flipped && changed;
}

/*
 * Every byte of the region held back must be one that later data copies
 * from: flipping it alone changes other output.  Walks the region's stored
 * blocks from its first byte, which is offered, and checks every step-th
 * byte held back, counting them in *checked.  Returns how many of those
 * are not copied from (or 1 if the walk lost its way).
 */
static int count_needlessly_held(pp_archive *archive, const unit_buffer *file,
				 const uint8_t *image, size_t total,
				 uint64_t step, uint64_t *checked)
{
	pp_extent_list list = { 0 };
	pp_error err = { 0 };
	*checked = 0;
	if (archive->ops->stored_extents(archive, 0, &list, &err) != 0)
		return 1;
	size_t e = 0;
	while (e < list.count &&
	       list.items[e].uoffset + list.items[e].length <= LEAD)
		e++;
	int needless = e == list.count || list.items[e].uoffset > LEAD;
	uint64_t at = needless ? 0 :
		      list.items[e].foffset + (LEAD - list.items[e].uoffset);
	uint64_t held = 0;
	for (uint64_t u = LEAD; !needless && u < LEAD + REGION; u++, at++) {
		at = skip_headers(file, at);
		while (e < list.count &&
		       list.items[e].uoffset + list.items[e].length <= u)
			e++;
		const pp_extent *x = e < list.count ? &list.items[e] : NULL;
		bool offered = x && x->uoffset <= u;
		if (at >= file->len || file->data[at] != image[u] ||
		    (offered && x->foffset + (u - x->uoffset) != at))
			needless = 1;   /* lost: not where the bytes are */
		else if (!offered && held++ % step == 0) {
			needless += !copied_elsewhere(file, at, image, u,
						      total);
			++*checked;
		}
	}
	pp_extent_list_free(&list);
	return needless;
}

/* Patches every offered range with changed bytes, recording them in
 * *expected; returns the status of the first failure. */
static int patch_ranges(pp_archive *archive, const pp_range *ranges,
			size_t count, uint8_t *expected, pp_error *err)
{
	for (size_t i = 0; i < count; i++) {
		uint8_t *p = expected + ranges[i].offset;
		for (uint64_t k = 0; k < ranges[i].length; k++)
			p[k] = (uint8_t)(p[k] + 1);
		int ret = pp_patch(archive, ranges[i].offset, p,
				   (size_t)ranges[i].length, 0, NULL, err);
		if (ret)
			return ret;
	}
	return 0;
}

/* Whether the file at path holds exactly want's bytes. */
static bool file_is(const char *path, const unit_buffer *want)
{
	unit_buffer now = unit_read_path(path);
	bool same = now.len == want->len &&
		    !memcmp(now.data, want->data, want->len);
	free(now.data);
	return same;
}

/* Patches all of the region: refused unless all of it is offered, and
 * then nothing of the file changes. */
static void check_whole_region(pp_archive *archive, const char *name,
			       const char *path, const uint8_t *image,
			       bool offered)
{
	unit_buffer before = unit_read_path(path);
	pp_error err = { 0 };
	uint8_t *changed = malloc(REGION);
	for (size_t i = 0; i < REGION; i++)
		changed[i] = (uint8_t)(image[LEAD + i] ^ 0x20);
	int ret = pp_patch(archive, LEAD, changed, REGION, PP_PATCH_DRY_RUN,
			   NULL, &err);
	if (offered) {
		CHECK(ret == 0 && file_is(path, &before), "%s: a dry run over "
		      "the whole region passes (%s)", name,
		      ret ? err.message : "");
	} else {
		CHECK(ret == PP_ERR_NOT_STORED && file_is(path, &before),
		      "%s: a dry run over the whole region is refused: %s",
		      name, err.message);
		ret = pp_patch(archive, LEAD, changed, REGION, 0, NULL, &err);
		CHECK(ret == PP_ERR_NOT_STORED && file_is(path, &before),
		      "%s: so is the patch, and the file is byte for byte "
		      "as it was", name);
	}
	free(before.data);
	free(changed);
}

/*
 * Writes the file, opens it, checks how much of the region it offers (all
 * of it, or all but what the compressed data after it copies from, which
 * must lie in the region's last 32 KiB, or in the flood case exactly the
 * last 32 KiB dropped), then patches all it offers: gzip -t and zcat must
 * agree with the patched image.
 */
static void check_region(const char *name, enum after_kind kind)
{
	char path[512], raw[600];
	unit_path_to(path, sizeof path, name);
	snprintf(raw, sizeof raw, "%s.img", path);
	size_t total = LEAD + REGION + AFTER;
	uint8_t *image = make_region_image(kind);
	unit_buffer file = region_file(image, kind);
	unit_write_path(path, file.data, file.len);
	pp_archive *archive = NULL;
	pp_error err = { 0 };
	int ret = pp_open(path, PP_OPEN_WRITE, &archive, &err);
	CHECK(ret == 0 && archive->block_count == 1 &&
	      archive->blocks[0].usize == total &&
	      !archive->blocks[0].stored_known,
	      "%s: a foreign member of %zu bytes (%s)", name, total,
	      ret ? err.message : "");
	if (ret) {
		free(file.data);
		free(image);
		return;
	}
	/* Compressed data after the region, or there is nothing to trace. */
	size_t after_count;
	free(offered_in(archive, LEAD + REGION, total, &after_count));
	CHECK(after_count == 0, "%s: what follows the region is compressed",
	      name);
	size_t count;
	pp_range *ranges = offered_in(archive, LEAD, LEAD + REGION, &count);
	uint64_t offered = ranges_total(ranges, count);
	size_t head_count;
	pp_range *head = offered_in(archive, LEAD, LEAD + REGION - WINDOW,
				    &head_count);
	bool head_whole = ranges_total(head, head_count) == REGION - WINDOW;
	free(head);
	if (kind == AFTER_SAME) {
		CHECK(offered < REGION && head_whole,
		      "%s: %llu bytes offered: not the %llu the line after "
		      "copies from, all in the last 32 KiB", name,
		      (unsigned long long)offered,
		      (unsigned long long)(REGION - offered));
		/* Each check decodes the file: a sample will do. */
		uint64_t step = (REGION - offered) / 64 + 1, checked = 0;
		int needless = count_needlessly_held(archive, &file, image,
						     total, step, &checked);
		CHECK(needless == 0 && checked > 0,
		      "%s: the bytes held back are copied from (%llu of "
		      "them checked)", name, (unsigned long long)checked);
	} else if (kind == AFTER_FLUSH_FLOOD) {
		CHECK(offered == REGION - WINDOW && count == 1,
		      "%s: too much data to trace: the last 32 KiB held back",
		      name);
	} else {
		CHECK(offered == REGION && count == 1,
		      "%s: all of the region is offered", name);
	}
	check_whole_region(archive, name, path, image, offered == REGION);

	uint8_t *expected = malloc(total);
	memcpy(expected, image, total);
	ret = patch_ranges(archive, ranges, count, expected, &err);
	CHECK(ret == 0, "%s: patch all %zu offered ranges (%s)", name, count,
	      ret ? err.message : "");
	pp_close(archive);
	unit_write_path(raw, expected, total);
	CHECK(gzip_accepts(path) && zcat_gives(path, raw),
	      "%s: gzip -t accepts it, zcat gives the patched image", name);
	free(expected);
	free(ranges);
	free(file.data);
	free(image);
}

static void test_foreign_copies(void)
{
	check_region("copied.gz", AFTER_SAME);
	check_region("not-copied.gz", AFTER_FOREIGN);
	check_region("full-flush.gz", AFTER_FULL_FLUSH);
	check_region("flood.gz", AFTER_FLUSH_FLOOD);
}

/* Appends one member encoded by pp_gz_container, as a bare gzip member. */
static void add_member(unit_buffer *file, const uint8_t *data, size_t len,
		       bool stored)
{
	pp_pack_options options;
	memset(&options, 0, sizeof options);
	options.level = 6;
	size_t out_len = pp_gz_container.block_bound(&options, len);
	uint8_t *out = malloc(out_len);
	pp_block_record record;
	pp_error err;
	if (pp_gz_container.encode_block(&options, data, len, stored, out,
				      &out_len, &record, &err) != 0)
		abort();
	unit_buffer_add(file, out, out_len);
	free(out);
}

/*
 * The scanner reads 1 MiB at a time and looks back at stored block headers
 * inflate has consumed.  Members without our index are scanned as foreign;
 * a first member of the right size puts the 16th stored block header of
 * the second member across the 1 MiB boundary, at every offset.
 */
static void test_chunk_edges(void)
{
	enum { BIG = 1300000 };
	char path[512];
	unit_path_to(path, sizeof path, "edges.gz");
	uint8_t *image = make_image(70000 + BIG, 7);
	bool ok = true;
	pp_error err = { 0 };
	/* 18 + 5 + first, then 10 + 15 stored blocks of 65540 bytes, puts
	 * that header at 1048574 - 65441 + first. */
	for (size_t first = 65441 - 6; ok && first <= 65441 + 6; first++) {
		unit_buffer file = { 0 };
		add_member(&file, image, first, true);
		add_member(&file, image + first, BIG, true);
		unit_write_path(path, file.data, file.len);
		pp_archive archive;
		pp_extent_list list = { 0 };
		ok &= open_archive(&archive, path, &err) == 0 &&
		      archive.block_count == 2 &&
		      archive.ops->stored_extents(&archive, 1, &list,
						  &err) == 0 &&
		      list.count == (BIG + 65534) / 65535 &&
		      extents_total(&list) == BIG &&
		      list.items[0].uoffset == first &&
		      extents_match(&list, &file, image);
		pp_extent_list_free(&list);
		close_archive(&archive);
		free(file.data);
	}
	CHECK(ok, "stored headers across the scanner's 1 MiB reads (%s)",
	      err.message);
	free(image);
}

int main(void)
{
	unit_mkdir("test-gz");
	test_mixed();
	test_deterministic();
	test_index_sizes();
	test_limits();
	test_damage();
	test_flipped_data();
	test_damaged_members();
	test_not_gzip();
	test_foreign_params();
	test_foreign_members();
	test_foreign_copies();
	test_chunk_edges();
	if (unit_rmdir() != 0)
		return EXIT_FAILURE;
	return unit_done();
}
