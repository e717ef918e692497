/* test-zstd.c - the zstd container: our files' layout, seek table and
 * patches; hand-made foreign frames (raw blocks before and after compressed
 * ones, RLE, no seek table); and corrupt files. */
#include "archive.h"
#include "blocks.h"
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>
/* libxxhash's code inlined, as check.c has it: no library to link. */
#define XXH_INLINE_ALL
#include <xxhash.h>

/* Text-like data that compresses, in this test's words. */
static void make_text(uint8_t *p, size_t len, unsigned long long *seed)
{
	static const char *const words[] = { "frame ", "block ", "seek ",
					     "table ", "window ", "\n" };
	unit_text(p, len, seed, words);
}

/* IN packed to OUT as zstd at the default level, in blocks of 256 KiB. */
static int pack_file(const char *in, const char *out, const pp_range *keep,
		     size_t nkeep, enum pp_check check, unsigned threads)
{
	pp_pack_options options = unit_options(PP_FORMAT_ZSTD, check,
					       256 << 10, keep, nkeep);
	options.threads = threads;
	return unit_pack(in, out, &options, NULL);
}

/* libzstd's one-shot decoder over the whole file (all frames, skipping the
 * seek table) gives exactly want. */
static bool libzstd_gives(const char *name, const uint8_t *want, size_t size)
{
	size_t len;
	uint8_t *file = unit_read_file(name, &len);
	uint8_t *out = malloc(size + 1);
	size_t got = ZSTD_decompress(out, size + 1, file, len);
	bool same = !ZSTD_isError(got) && got == size &&
		(size == 0 || memcmp(out, want, size) == 0);
	free(file);
	free(out);
	return same;
}

static uint32_t xxh64_low(const uint8_t *p, size_t len)
{
	return (uint32_t)XXH64(p, len, 0);
}

#define SIZE (1200000)
#define KEEP_AT 300000
#define KEEP_LEN 400000

static void test_our_file(const uint8_t *image)
{
	pp_range keep = { .offset = KEEP_AT, .length = KEEP_LEN };
	CHECK(pack_file("image", "ours.zst", &keep, 1, PP_CHECK_XXH64, 2) == 0,
	      "pack with one kept range");
	CHECK(pack_file("image", "ours1.zst", &keep, 1, PP_CHECK_XXH64, 1) == 0,
	      "pack again with one thread");
	size_t len, len1;
	uint8_t *file = unit_read_file("ours.zst", &len);
	uint8_t *file1 = unit_read_file("ours1.zst", &len1);
	CHECK(len == len1 && memcmp(file, file1, len) == 0,
	      "the same bytes for 1 and 2 threads");
	free(file1);
	CHECK(libzstd_gives("ours.zst", image, SIZE),
	      "libzstd decodes every frame, skipping the seek table");

	pp_archive *a;
	pp_info info;
	CHECK(pp_open(unit_path("ours.zst"), PP_OPEN_READ, &a, NULL) == 0,
	      "open our file");
	CHECK(pp_get_info(a, &info, NULL) == 0 && info.format == PP_FORMAT_ZSTD &&
	      info.check == PP_CHECK_XXH64 && info.stored_count == 1 &&
	      info.stored[0].offset == KEEP_AT &&
	      info.stored[0].length == KEEP_LEN &&
	      info.uncompressed_size == SIZE,
	      "stored ranges are exactly the kept range");
	/* 0-256K | 256K-300000 | 300000-512K S | 512K-700000 S | ... */
	CHECK(a->block_count == 7 && a->blocks[1].uoffset == 262144 &&
	      a->blocks[2].uoffset == KEEP_AT && a->blocks[4].uoffset == 700000,
	      "block boundaries at range edges");

	/* The raw frame of block 2: our header, then 128 KiB raw blocks. */
	const pp_block *b = &a->blocks[2];
	const uint8_t *f = file + b->foffset;
	static const uint8_t head[] = { 0x28, 0xB5, 0x2F, 0xFD, 0xC4, 0x38 };
	uint64_t usize = 524288 - KEEP_AT;
	CHECK(memcmp(f, head, sizeof head) == 0 && pp_get_le64(f + 6) == usize,
	      "a raw frame: magic, content size and checksum flags, 128 KiB "
	      "window, 8-byte content size");
	uint32_t bh0 = (uint32_t)f[14] | (uint32_t)f[15] << 8 |
		(uint32_t)f[16] << 16;
	const uint8_t *h1 = f + 14 + 3 + 131072;
	uint32_t bh1 = (uint32_t)h1[0] | (uint32_t)h1[1] << 8 |
		(uint32_t)h1[2] << 16;
	CHECK(bh0 == (131072u << 3) && bh1 == (((uint32_t)usize - 131072) << 3 | 1),
	      "... a full raw block, then the last one");
	CHECK(memcmp(f + 17, image + KEEP_AT, 131072) == 0 &&
	      memcmp(h1 + 3, image + KEEP_AT + 131072, usize - 131072) == 0,
	      "... holding the image's bytes verbatim");
	CHECK(b->fsize == 14 + 6 + usize + 4 &&
	      pp_get_le32(f + b->fsize - 4) ==
	      xxh64_low(image + KEEP_AT, usize),
	      "... ending with the low 32 bits of XXH64");
	/* The seek table: skippable frame, 7 entries of 12 bytes, footer. */
	const uint8_t *t = file + len - (8 + 7 * 12 + 9);
	CHECK(pp_get_le32(t) == 0x184D2A5E && pp_get_le32(t + 4) == 7 * 12 + 9 &&
	      pp_get_le32(file + len - 9) == 7 && file[len - 5] == 0x80 &&
	      pp_get_le32(file + len - 4) == 0x8F92EAB1,
	      "the seek table: skippable magic, size, frame count, checksum "
	      "flag, seekable magic");
	bool entries_ok = true;
	for (size_t i = 0; i < a->block_count; i++) {
		const uint8_t *e = t + 8 + i * 12;
		const pp_block *bi = &a->blocks[i];
		entries_ok &= pp_get_le32(e) == bi->fsize &&
			pp_get_le32(e + 4) == bi->usize &&
			memcmp(e + 8, file + bi->foffset + bi->fsize - 4, 4) == 0 &&
			bi->check_copy_offset == (uint64_t)(e + 8 - file);
	}
	CHECK(entries_ok, "each entry: frame size, content size, the frame's "
	      "checksum again");

	unit_check_reads(a, image, SIZE, 262000);
	free(file);
	pp_info_free(&info);
	pp_close(a);
}

static void test_patch(const uint8_t *image)
{
	uint8_t *expected = malloc(SIZE);
	memcpy(expected, image, SIZE);
	uint8_t data[300000];
	unsigned long long seed = 99;
	unit_noise(data, sizeof data, &seed);
	uint64_t at = KEEP_AT + 50000;
	memcpy(expected + at, data, sizeof data);
	pp_archive *a;
	pp_patch_report report;
	pp_error err;
	CHECK(pp_open(unit_path("ours.zst"), PP_OPEN_WRITE, &a, NULL) == 0,
	      "open for writing");
	CHECK(pp_patch(a, at, data, sizeof data, 0, &report, &err) == 0 &&
	      report.blocks_touched == 2 && report.undo_bytes ==
	      sizeof data + 2 * 2 * 4, "patch across two raw frames: both "
	      "checksum copies of each are saved");
	CHECK(pp_patch(a, 100, data, 10, 0, NULL, &err) == PP_ERR_NOT_STORED,
	      "a patch in a compressed frame is refused");
	CHECK(pp_verify(a, NULL, NULL, &err) == 0, "verify passes after it");
	pp_close(a);
	CHECK(libzstd_gives("ours.zst", expected, SIZE),
	      "libzstd decodes the patched image, checksums and all");
	size_t len;
	uint8_t *file = unit_read_file("ours.zst", &len);
	const uint8_t *t = file + len - (8 + 7 * 12 + 9);
	CHECK(pp_get_le32(t + 8 + 2 * 12 + 8) ==
	      xxh64_low(expected + KEEP_AT, 524288 - KEEP_AT) &&
	      pp_get_le32(t + 8 + 3 * 12 + 8) ==
	      xxh64_low(expected + 524288, 700000 - 524288),
	      "the seek table holds the new checksums");
	free(file);
	free(expected);
}

static void test_no_check_and_empty(const uint8_t *image)
{
	pp_range keep = { .offset = KEEP_AT, .length = KEEP_LEN };
	CHECK(pack_file("image", "none.zst", &keep, 1, PP_CHECK_NONE, 2) == 0,
	      "pack with --check none");
	pp_archive *a;
	CHECK(pp_open(unit_path("none.zst"), PP_OPEN_WRITE, &a, NULL) == 0 &&
	      a->blocks[2].check == PP_CHECK_NONE &&
	      a->blocks[2].check_copy_offset == 0, "no checks, no copies");
	uint8_t data[1000];
	memset(data, 'x', sizeof data);
	CHECK(pp_patch(a, KEEP_AT, data, sizeof data, 0, NULL, NULL) == 0 &&
	      pp_verify(a, NULL, NULL, NULL) == 0, "patch and verify");
	pp_close(a);
	size_t len;
	uint8_t *file = unit_read_file("none.zst", &len);
	CHECK(file[len - 5] == 0 && pp_get_le32(file + len - 9 - 7 * 8 - 8) ==
	      0x184D2A5E, "seek table entries of 8 bytes, no checksum flag");
	free(file);
	(void)image;

	unit_write_file("empty", NULL, 0);
	CHECK(pack_file("empty", "empty.zst", NULL, 0, PP_CHECK_XXH64, 1) == 0,
	      "pack an empty image");
	file = unit_read_file("empty.zst", &len);
	CHECK(len == 17 && libzstd_gives("empty.zst", NULL, 0),
	      "an empty image is the seek table alone, which libzstd reads");
	free(file);
	pp_info info;
	CHECK(pp_open(unit_path("empty.zst"), PP_OPEN_READ, &a, NULL) == 0 &&
	      a->block_count == 0 && pp_get_info(a, &info, NULL) == 0 &&
	      info.uncompressed_size == 0, "... and partpack opens it");
	pp_info_free(&info);
	pp_close(a);
}

/* ---- hand-made frames ---------------------------------------------------- */

static void put_block_header(unit_buffer *b, bool last, unsigned type,
			     uint32_t size)
{
	uint32_t v = (last ? 1u : 0u) | type << 1 | size << 3;
	uint8_t h[3] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16) };
	unit_buffer_add(b, h, 3);
}

/* Frame header: checksum flag, 8-byte content size, 1 MiB window. */
static void put_frame_header(unit_buffer *b, uint64_t content, bool checksum)
{
	uint8_t h[14] = { 0x28, 0xB5, 0x2F, 0xFD,
			  (uint8_t)(0xC0 | (checksum ? 4 : 0)), 10 << 3 };
	pp_put_le64(h + 6, content);
	unit_buffer_add(b, h, sizeof h);
}

/* The size of the frame header at f (RFC 8878, 3.1.1.1). */
static size_t frame_header_size(const uint8_t *f)
{
	static const size_t dict[4] = { 0, 1, 2, 4 }, fcs[4] = { 0, 2, 4, 8 };
	uint8_t fhd = f[4];
	bool single = fhd & 0x20;
	size_t size_len = fcs[fhd >> 6] ? fcs[fhd >> 6] : single ? 1 : 0;
	return 5 + (single ? 0 : 1) + dict[fhd & 3] + size_len;
}

/* The single compressed block of a frame libzstd makes of len bytes. */
static unit_buffer compressed_block(const uint8_t *data, size_t len)
{
	size_t room = ZSTD_compressBound(len);
	uint8_t *f = malloc(room);
	size_t n = ZSTD_compress(f, room, data, len, 1);
	/* ZSTD_compress writes the content size and no checksum. */
	size_t header = frame_header_size(f);
	unit_buffer b = { 0 };
	uint32_t bh = (uint32_t)f[header] | (uint32_t)f[header + 1] << 8 |
		(uint32_t)f[header + 2] << 16;
	if (ZSTD_isError(n) || (bh >> 1 & 3) != 2 ||
	    !(bh & 1) || header + 3 + (bh >> 3) != n)
		abort();   /* not one compressed block: change the data */
	unit_buffer_add(&b, f + header, n - header);
	free(f);
	return b;
}

/* A raw block (last or not) holding data. */
static void put_raw(unit_buffer *b, bool last, const uint8_t *data,
		    uint32_t len)
{
	put_block_header(b, last, 0, len);
	unit_buffer_add(b, data, len);
}

static void test_foreign(void)
{
	unsigned long long seed = 3;
	uint8_t text[60000], raw[200000];
	make_text(text, sizeof text, &seed);
	unit_noise(raw, sizeof raw, &seed);
	unit_buffer cb = compressed_block(text, sizeof text);
	/* The compressed block must end the frame: clear its Last_Block bit
	 * where another block follows. */
	unit_buffer cb_mid = { 0 };
	unit_buffer_add(&cb_mid, cb.data, cb.len);
	cb_mid.data[0] &= 0xFE;

	/* Frame A: compressed, raw, RLE of 7 x 'R', raw: the raw blocks and
	 * the RLE after the compressed one are the tail: offered, placed by
	 * counting back from the content size. */
	uint8_t rle = 'R';
	uint64_t a_size = sizeof text + 100000 + 7 + 100000;
	unit_buffer f = { 0 };
	put_frame_header(&f, a_size, true);
	unit_buffer_add(&f, cb_mid.data, cb_mid.len);
	size_t raw1_at = f.len + 3;
	put_raw(&f, false, raw, 100000);
	put_block_header(&f, false, 1, 7);
	unit_buffer_add(&f, &rle, 1);
	size_t raw2_at = f.len + 3;
	put_raw(&f, true, raw + 100000, 100000);
	uint8_t *content = malloc(a_size);
	memcpy(content, text, sizeof text);
	memcpy(content + sizeof text, raw, 100000);
	memset(content + sizeof text + 100000, 'R', 7);
	memcpy(content + sizeof text + 100007, raw + 100000, 100000);
	uint8_t sum[4];
	pp_put_le32(sum, xxh64_low(content, a_size));
	unit_buffer_add(&f, sum, 4);
	/* Frame B: raw, then compressed: the raw block may be copied from by
	 * later matches: nothing offered.  No checksum. */
	size_t b_at = f.len;
	put_frame_header(&f, 100000 + sizeof text, false);
	put_raw(&f, false, raw, 100000);
	unit_buffer_add(&f, cb.data, cb.len);
	/* A skippable frame between them, then frame C in the 2-byte
	 * content size form (size - 256) with Single_Segment: raw only. */
	static const uint8_t skip[] = { 0x5A, 0x2A, 0x4D, 0x18, 3, 0, 0, 0,
					1, 2, 3 };
	unit_buffer_add(&f, skip, sizeof skip);
	size_t c_at = f.len;
	uint8_t hc[7] = { 0x28, 0xB5, 0x2F, 0xFD, 0x60 };
	hc[5] = (uint8_t)(5000 - 256);
	hc[6] = (uint8_t)((5000 - 256) >> 8);
	unit_buffer_add(&f, hc, sizeof hc);
	put_raw(&f, true, raw, 5000);
	unit_write_file("foreign.zst", f.data, f.len);

	uint64_t total = a_size + 100000 + sizeof text + 5000;
	uint8_t *want = malloc(total);
	memcpy(want, content, a_size);
	memcpy(want + a_size, raw, 100000);
	memcpy(want + a_size + 100000, text, sizeof text);
	memcpy(want + a_size + 100000 + sizeof text, raw, 5000);
	CHECK(libzstd_gives("foreign.zst", want, total),
	      "libzstd reads the hand-made frames");

	pp_archive *a;
	pp_info info;
	pp_error err;
	CHECK(pp_open(unit_path("foreign.zst"), PP_OPEN_WRITE, &a, &err) == 0 &&
	      a->block_count == 3 && a->blocks[1].foffset == b_at &&
	      a->blocks[2].foffset == c_at && a->blocks[0].check ==
	      PP_CHECK_XXH64 && a->blocks[1].check == PP_CHECK_NONE &&
	      a->blocks[0].check_copy_offset == 0,
	      "scanned: three frames, the skippable one skipped");
	pp_extent_list list = { 0 };
	CHECK(a->ops->stored_extents(a, 0, &list, NULL) == 0 &&
	      list.count == 2 && list.items[0].uoffset == sizeof text &&
	      list.items[0].length == 100000 &&
	      list.items[0].foffset == raw1_at &&
	      list.items[1].uoffset == sizeof text + 100007 &&
	      list.items[1].foffset == raw2_at,
	      "frame A: the raw blocks after its compressed block, placed "
	      "back from the content size");
	pp_extent_list_free(&list);
	CHECK(a->ops->stored_extents(a, 1, &list, NULL) == 0 && list.count == 0,
	      "frame B: a raw block before a compressed one is not offered");
	CHECK(a->ops->stored_extents(a, 2, &list, NULL) == 0 &&
	      list.count == 1 && list.items[0].length == 5000,
	      "frame C (Single_Segment, 2-byte size): offered");
	pp_extent_list_free(&list);
	CHECK(pp_get_info(a, &info, NULL) == 0 && info.stored_count == 3,
	      "partinfo's ranges");
	pp_info_free(&info);
	uint8_t data[50000];
	memset(data, 'p', sizeof data);
	memcpy(want + sizeof text + 100007 + 10, data, sizeof data);
	CHECK(pp_patch(a, sizeof text + 100007 + 10, data, sizeof data, 0, NULL,
		       &err) == 0, "patch frame A's last raw block");
	CHECK(pp_patch(a, a_size + 10, data, 10, 0, NULL, NULL) ==
	      PP_ERR_NOT_STORED, "frame B is refused");
	CHECK(pp_verify(a, NULL, NULL, NULL) == 0, "verify after the patch");
	pp_close(a);
	CHECK(libzstd_gives("foreign.zst", want, total),
	      "libzstd reads the patched file, its checksum fixed");

	/* No content size (zstd reading a pipe): measured by decoding it
	 * when opened; read like any frame, patched never. */
	unit_buffer g = { 0 };
	uint8_t hg[6] = { 0x28, 0xB5, 0x2F, 0xFD, 0x00, 10 << 3 };
	unit_buffer_add(&g, hg, sizeof hg);
	put_raw(&g, true, raw, 1000);
	unit_write_file("nosize.zst", g.data, g.len);
	uint8_t back[1000];
	pp_info nosize_info = { 0 };
	uint64_t run = 1;
	CHECK(pp_open(unit_path("nosize.zst"), PP_OPEN_READ, &a, &err) == 0,
	      "a frame without its content size opens");
	CHECK(pp_get_info(a, &nosize_info, &err) == 0 &&
	      nosize_info.block_count == 1 &&
	      nosize_info.uncompressed_size == 1000 &&
	      nosize_info.stored_count == 0,
	      "... one block of the 1000 bytes it decodes to, none stored");
	CHECK(pp_pread(a, back, sizeof back, 0, &err) == 0 &&
	      memcmp(back, raw, sizeof back) == 0, "... read back");
	CHECK(pp_stored_run(a, 0, &run, &err) == 0 && run == 0,
	      "... and not offered for patching");
	pp_info_free(&nosize_info);
	pp_close(a);
	/* Garbage after the frames. */
	unit_buffer_add(&g, "junk", 4);
	g.data[4] = 0x80;       /* now a 2-byte content size... */
	unit_write_file("junk.zst", g.data, g.len);
	CHECK(pp_open(unit_path("junk.zst"), PP_OPEN_READ, &a, &err) ==
	      PP_ERR_FORMAT, "trailing garbage or a bad frame: format error");
	free(g.data);
	free(f.data);
	free(cb.data);
	free(cb_mid.data);
	free(content);
	free(want);
}

/* ---- corrupt files ---------------------------------------------------------- */

static int open_mutated(const uint8_t *file, size_t len, size_t at,
			uint8_t xor, pp_error *err)
{
	uint8_t *copy = malloc(len);
	memcpy(copy, file, len);
	copy[at] ^= xor;
	unit_write_file("bad.zst", copy, len);
	free(copy);
	pp_archive *a;
	int status = pp_open(unit_path("bad.zst"), PP_OPEN_READ, &a, err);
	if (status == 0) {
		status = pp_verify(a, NULL, NULL, err);
		pp_close(a);
	}
	return status;
}

static void test_corrupt(void)
{
	size_t len;
	uint8_t *file = unit_read_file("ours1.zst", &len);
	pp_error err;
	size_t table = len - (8 + 7 * 12 + 9);
	CHECK(open_mutated(file, len, len - 1, 0, &err) == 0, "(unchanged: fine)");
	CHECK(open_mutated(file, len, len - 5, 0x04, &err) == PP_ERR_FORMAT,
	      "reserved seek table descriptor bits");
	CHECK(open_mutated(file, len, len - 6, 0x80, &err) == PP_ERR_FORMAT,
	      "a frame count of billions: refused before any allocation");
	CHECK(open_mutated(file, len, table, 0x01, &err) == PP_ERR_FORMAT,
	      "a damaged skippable frame magic");
	CHECK(open_mutated(file, len, table + 8, 0x01, &err) == PP_ERR_FORMAT,
	      "a frame size that does not add up");
	CHECK(open_mutated(file, len, table + 8 + 4, 0x01, &err) ==
	      PP_ERR_FORMAT && strstr(err.message, "seek table says"),
	      "a content size the frame header contradicts");
	CHECK(open_mutated(file, len, table + 8 + 8, 0x01, &err) == PP_ERR_CHECK,
	      "a wrong checksum in the seek table: check error");
	CHECK(open_mutated(file, len, table - 1, 0x01, &err) == PP_ERR_CHECK,
	      "a wrong checksum in the frame: check error");
	pp_archive *a;
	CHECK(pp_open(unit_path("ours1.zst"), PP_OPEN_READ, &a, NULL) == 0,
	      "(open the original)");
	size_t raw_at = (size_t)a->blocks[2].foffset + 14 + 3 + 100;
	pp_close(a);
	CHECK(open_mutated(file, len, raw_at, 0x01, &err) == PP_ERR_CHECK &&
	      strstr(err.message, "checksum"),
	      "a flipped stored byte: check error");
	unit_write_file("short.zst", file, len - 1);
	CHECK(pp_open(unit_path("short.zst"), PP_OPEN_READ, &a, &err) ==
	      PP_ERR_FORMAT, "one byte short: no footer, and the scan finds "
	      "the cut seek table");
	/* Every single-byte truncation or flip must fail cleanly or pass. */
	bool clean = true;
	for (size_t at = 0; at < len; at += 997) {
		int status = open_mutated(file, len, at, 0x55, &err);
		clean &= status == 0 || status == PP_ERR_FORMAT ||
			status == PP_ERR_CHECK;
	}
	CHECK(clean, "flips all over the file: format or check errors only");
	free(file);
}

int main(void)
{
	unit_mkdir("test-zstd");
	unsigned long long seed = 1;
	uint8_t *image = malloc(SIZE);
	make_text(image, SIZE, &seed);
	unit_noise(image + KEEP_AT, KEEP_LEN, &seed);
	unit_write_file("image", image, SIZE);
	test_our_file(image);
	test_patch(image);
	test_no_check_and_empty(image);
	test_foreign();
	test_corrupt();
	free(image);
	if (unit_rmdir() != 0)
		return 1;
	return unit_done();
}
