/*
 * test-conformance.c - every format the registry lists (pp_format_at),
 * with every check it carries, keeps the promises of partpack.h: an image
 * with two kept ranges packs, opens and reads back byte for byte; pp_map
 * and pp_list_blocks describe it as pp_get_info does, stored extents
 * lying verbatim in the file; a transaction of several ranges patches the
 * kept ranges in place; patches outside them are refused; and one flipped
 * byte, in a compressed block or in a stored one, is found.
 *
 * Through the public API only, so that a container is held to all of it
 * by being registered.  The format-specific tests (test-xz.c, test-gz.c,
 * test-zstd.c) look at the bytes each container writes.
 */
#include "unit.h"

#define IMAGE_SIZE (1536u << 10)
#define BLOCK_SIZE (64u << 10)
#define ZEROS_AT (1u << 20)         /* four whole blocks of zeros */
#define ZEROS_LEN (256u << 10)

/* Kept: one range on no block edge, over text, and one of noise on
 * block edges.  The rest compresses (text and zeros), so that no format
 * stores more than the kept ranges (bytes that do not compress are stored
 * too, and xz and zstd do not tell them from kept ones). */
static const pp_range kept[] = {
	{ 200000, 300000 },
	{ 10 * BLOCK_SIZE, 2 * BLOCK_SIZE },
};
#define KEPT_COUNT (sizeof kept / sizeof *kept)

static uint8_t image[IMAGE_SIZE];
static char name[64];           /* of the archive under test: "crc64.xz" */

/* Text, with the second kept range noise, then zeros, then text. */
static void make_image(void)
{
	static const char *const words[] = { "conformance ", "block ",
					     "stored ", "kept ", "range ",
					     "\n" };
	unsigned long long seed = 7;
	unit_text(image, ZEROS_AT, &seed, words);
	unit_noise(image + kept[1].offset, kept[1].length, &seed);
	memset(image + ZEROS_AT, 0, ZEROS_LEN);
	unit_text(image + ZEROS_AT + ZEROS_LEN,
		  IMAGE_SIZE - ZEROS_AT - ZEROS_LEN, &seed, words);
	unit_write_file("image", image, IMAGE_SIZE);
}

static bool is_kept(uint64_t offset)
{
	for (size_t i = 0; i < KEPT_COUNT; i++)
		if (offset - kept[i].offset < kept[i].length)
			return true;
	return false;
}

static int pack(enum pp_format format, enum pp_check check)
{
	pp_pack_options options = unit_options(format, check, BLOCK_SIZE,
					       kept, KEPT_COUNT);
	int max, level;
	pp_format_levels(format, &options.level, &max, &level);
	options.threads = 2;
	pp_error err;
	int status = unit_pack("image", name, &options, &err);
	CHECK(status == 0, "%s: pack (%s)", name,
	      status ? err.message : "ok");
	return status;
}

static pp_archive *open_archive(int flags)
{
	pp_archive *a = NULL;
	pp_error err;
	if (pp_open(unit_path(name), flags, &a, &err) != 0) {
		CHECK(false, "%s: open: %s", name, err.message);
		return NULL;
	}
	return a;
}

/* pp_get_info: the format, the check, the size, the kept ranges. */
static void check_info(pp_archive *a, enum pp_format format,
		       enum pp_check check)
{
	pp_info info;
	enum pp_format found = 0;
	CHECK(pp_get_format(a, &found, NULL) == 0 && found == format,
	      "%s: pp_get_format finds %s", name, pp_format_name(format));
	if (pp_get_info(a, &info, NULL) != 0) {
		CHECK(false, "%s: pp_get_info", name);
		return;
	}
	bool same_ranges = info.stored_count == KEPT_COUNT;
	for (size_t i = 0; same_ranges && i < KEPT_COUNT; i++)
		same_ranges = info.stored[i].offset == kept[i].offset &&
			      info.stored[i].length == kept[i].length;
	CHECK(info.format == format && info.check == check &&
	      !info.mixed_checks && info.uncompressed_size == IMAGE_SIZE &&
	      info.block_size <= BLOCK_SIZE,
	      "%s: pp_get_info: format, check %s, size", name,
	      pp_check_name(info.check));
	CHECK(same_ranges, "%s: the stored ranges are the kept ranges", name);
	pp_info_free(&info);
}

/* pp_pread: the whole image at once, then pieces of every length up to
 * three blocks at pseudo-random offsets, with and without a cache. */
static void check_reads(pp_archive *a)
{
	uint8_t *buf = malloc(IMAGE_SIZE);
	CHECK(pp_pread(a, buf, IMAGE_SIZE, 0, NULL) == 0 &&
	      memcmp(buf, image, IMAGE_SIZE) == 0,
	      "%s: pp_pread of every byte", name);
	unsigned long long seed = 11;
	bool same = true;
	for (int i = 0; same && i < 400; i++) {
		if (i == 200)
			pp_set_cache_size(a, 0, NULL);
		uint64_t at = unit_random(&seed) % IMAGE_SIZE;
		size_t len = (size_t)(unit_random(&seed) % (3 * BLOCK_SIZE));
		len = len > IMAGE_SIZE - at ? IMAGE_SIZE - at : len;
		same = pp_pread(a, buf, len, at, NULL) == 0 &&
		       memcmp(buf, image + at, len) == 0;
	}
	CHECK(same, "%s: 400 pp_preads of pieces, cached and not", name);
	CHECK(pp_pread(a, buf, 1, IMAGE_SIZE, NULL) == PP_ERR_USAGE,
	      "%s: a read past the end is refused", name);
	pp_set_cache_size(a, PP_DEFAULT_CACHE_SIZE, NULL);
	CHECK(pp_verify(a, NULL, NULL, NULL) == 0, "%s: pp_verify", name);
	free(buf);
}

/* One extent of pp_map against the image and the archive file. */
static bool extent_holds(const pp_map_extent *e, const unit_buffer *file)
{
	switch (e->kind) {
	case PP_EXTENT_STORED:
		return e->file_offset + e->length <= file->len &&
		       memcmp(file->data + e->file_offset,
			      image + e->offset, e->length) == 0;
	case PP_EXTENT_ZERO:
		for (uint64_t i = 0; i < e->length; i++)
			if (image[e->offset + i] != 0)
				return false;
		return e->file_offset < file->len;
	default:
		return e->kind == PP_EXTENT_DATA &&
		       e->file_offset < file->len;
	}
}

/* pp_map: extents in order over the whole image, the stored ones exactly
 * the kept ranges and verbatim in the file, the zero ones zeros (found
 * only where blocks have a check: lib/map.md). */
static void check_map(pp_archive *a, enum pp_check check)
{
	pp_map_extent *extents = NULL;
	size_t count = 0;
	unit_buffer file = unit_read_path(unit_path(name));
	if (pp_map(a, 0, IMAGE_SIZE, &extents, &count, NULL) != 0) {
		CHECK(false, "%s: pp_map", name);
		free(file.data);
		return;
	}
	uint64_t at = 0, stored = 0, zeros = 0;
	bool in_order = true, hold = true, kinds_right = true;
	for (size_t i = 0; i < count; i++) {
		const pp_map_extent *e = &extents[i];
		in_order &= e->offset == at && e->length > 0;
		hold &= extent_holds(e, &file);
		kinds_right &= (e->kind == PP_EXTENT_STORED) ==
			       is_kept(e->offset);
		stored += e->kind == PP_EXTENT_STORED ? e->length : 0;
		zeros += e->kind == PP_EXTENT_ZERO ? e->length : 0;
		at = e->offset + e->length;
	}
	CHECK(in_order && at == IMAGE_SIZE,
	      "%s: pp_map covers the image in order (%zu extents)", name,
	      count);
	CHECK(kinds_right && stored == kept[0].length + kept[1].length,
	      "%s: ... its stored extents are the kept ranges", name);
	CHECK(hold, "%s: ... stored bytes lie verbatim at their file "
	      "offsets, zero extents are zeros", name);
	CHECK(zeros >= (check == PP_CHECK_NONE ? 0 : ZEROS_LEN),
	      "%s: ... the zero blocks are zero extents (%llu bytes)", name,
	      (unsigned long long)zeros);
	free(extents);
	free(file.data);
}

/* pp_list_blocks tells the story pp_get_info and the file tell. */
static void check_blocks(pp_archive *a)
{
	pp_block_info *blocks = NULL;
	size_t count = 0;
	pp_info info;
	if (pp_list_blocks(a, &blocks, &count, NULL) != 0 ||
	    pp_get_info(a, &info, NULL) != 0) {
		CHECK(false, "%s: pp_list_blocks and pp_get_info", name);
		free(blocks);
		return;
	}
	uint64_t uat = 0, fend = 0, largest = 0, stored = 0;
	bool contiguous = true, in_file = true, checks = true;
	for (size_t i = 0; i < count; i++) {
		const pp_block_info *b = &blocks[i];
		contiguous &= b->uoffset == uat && b->usize > 0;
		in_file &= b->foffset >= fend && b->fsize > 0 &&
			   b->foffset + b->fsize <= info.compressed_size;
		checks &= b->check == info.check &&
			  b->stored_bytes <= b->usize;
		largest = b->usize > largest ? b->usize : largest;
		stored += b->stored_bytes;
		uat = b->uoffset + b->usize;
		fend = b->foffset + b->fsize;
	}
	uint64_t info_stored = 0;
	for (size_t i = 0; i < info.stored_count; i++)
		info_stored += info.stored[i].length;
	CHECK(count == info.block_count && contiguous &&
	      uat == info.uncompressed_size && largest == info.block_size,
	      "%s: pp_list_blocks: %zu blocks, one after another, as "
	      "pp_get_info counts them", name, count);
	CHECK(in_file && checks, "%s: ... in file order inside the file, "
	      "each with the archive's check", name);
	CHECK(stored == info_stored, "%s: ... their stored bytes add up to "
	      "the stored ranges", name);
	uint64_t run = 0;
	CHECK(pp_stored_run(a, kept[0].offset + 10, &run, NULL) == 0 &&
	      run == kept[0].length - 10 &&
	      pp_stored_run(a, 0, &run, NULL) == 0 && run == 0,
	      "%s: pp_stored_run inside a kept range and outside", name);
	pp_info_free(&info);
	free(blocks);
}

/* The ranges of the transaction: across a block edge and to the last
 * byte of the first kept range, and inside the second, overlapping
 * (the later wins). */
static const pp_range patched[] = {
	{ 262144 - 3000, 6000 },
	{ 200000 + 300000 - 5000, 5000 },
	{ 10 * BLOCK_SIZE + 100, 70000 },
	{ 10 * BLOCK_SIZE + 60000, 100 },
};
#define PATCHED_COUNT (sizeof patched / sizeof *patched)

/* A transaction of several ranges inside the kept ranges: committed in
 * place, the archive keeps its size and layout and reads as the image
 * with the new bytes; image becomes that image. */
static void check_patch(void)
{
	size_t before_len;
	uint8_t *before = unit_read_file(name, &before_len);
	unsigned long long seed = 13;
	uint8_t data[70000];
	pp_archive *a = open_archive(PP_OPEN_WRITE);
	pp_patch_txn *txn = NULL;
	pp_patch_report report = { 0 };
	pp_error err = { .message = "" };
	int status = a ? pp_patch_begin(a, 0, &txn, &err) : PP_ERR_IO;
	for (size_t i = 0; status == 0 && i < PATCHED_COUNT; i++) {
		unit_noise(data, patched[i].length, &seed);
		status = pp_patch_add(txn, patched[i].offset, data,
				      patched[i].length, &err);
		memcpy(image + patched[i].offset, data, patched[i].length);
	}
	if (status == 0)
		status = pp_patch_commit(txn, &report, &err);
	else if (txn)
		pp_patch_abort(txn);
	pp_close(a);
	CHECK(status == 0 && report.blocks_touched >= 4,
	      "%s: a transaction of %zu ranges in the kept ranges commits, "
	      "touching %llu blocks %s", name, PATCHED_COUNT,
	      (unsigned long long)report.blocks_touched, err.message);
	size_t after_len;
	uint8_t *after = unit_read_file(name, &after_len);
	CHECK(after_len == before_len && memcmp(after, before, after_len),
	      "%s: ... in place: the same size, other bytes", name);
	free(before);
	free(after);
	a = open_archive(PP_OPEN_READ);
	if (!a)
		return;
	check_reads(a);
	pp_close(a);
}

/* Dry runs that must be refused: compressed bytes, a range that starts or
 * ends one byte outside a kept range, bytes past the image's end; the
 * file is left as it was. */
static void check_refusals(void)
{
	static const struct {
		uint64_t offset, length;
		int status;
	} refused[] = {
		{ 0, 100, PP_ERR_NOT_STORED },
		{ 200000 - 1, 2, PP_ERR_NOT_STORED },
		{ 200000 + 300000 - 1, 2, PP_ERR_NOT_STORED },
		{ 12 * BLOCK_SIZE - 10, 11, PP_ERR_NOT_STORED },
		{ ZEROS_AT, 10, PP_ERR_NOT_STORED },
		{ IMAGE_SIZE - 1, 2, PP_ERR_USAGE },
	};
	size_t before_len;
	uint8_t *before = unit_read_file(name, &before_len);
	uint8_t data[100] = { 0 };
	pp_archive *a = open_archive(PP_OPEN_READ);
	bool all = a != NULL;
	for (size_t i = 0; a && i < sizeof refused / sizeof *refused; i++)
		all &= pp_patch(a, refused[i].offset, data,
				(size_t)refused[i].length, PP_PATCH_DRY_RUN,
				NULL, NULL) == refused[i].status;
	CHECK(all, "%s: dry runs outside the kept ranges are refused", name);
	CHECK(a && pp_patch(a, kept[0].offset, data, sizeof data,
			    PP_PATCH_DRY_RUN, NULL, NULL) == 0,
	      "%s: ... and one inside is not", name);
	pp_close(a);
	CHECK(unit_same_file(name, before, before_len),
	      "%s: ... and the file is unchanged", name);
	free(before);
}

/* name with one byte flipped at file offset at, as "bad-NAME". */
static const char *flipped_copy(uint64_t at)
{
	static char bad[80];
	size_t len;
	uint8_t *file = unit_read_file(name, &len);
	snprintf(bad, sizeof bad, "bad-%s", name);
	if (at < len)
		file[at] ^= 0x55;
	unit_write_file(bad, file, len);
	free(file);
	return bad;
}

/* A flipped byte in the compressed block at image offset 0: pp_verify and
 * a pp_pread inside the block fail, other blocks still read. */
static void check_damaged_compressed(const pp_block_info *block)
{
	const char *bad = flipped_copy(block->foffset + block->fsize / 2);
	pp_archive *a;
	uint8_t buf[1000];
	int open_status = pp_open(unit_path(bad), PP_OPEN_READ, &a, NULL);
	if (open_status != 0) {
		CHECK(open_status == PP_ERR_FORMAT,
		      "%s: a flipped compressed byte: the open fails as a "
		      "format error", name);
		return;
	}
	int verify = pp_verify(a, NULL, NULL, NULL);
	int read = pp_pread(a, buf, sizeof buf, block->uoffset + 100, NULL);
	CHECK((verify == PP_ERR_CHECK || verify == PP_ERR_FORMAT) &&
	      (read == PP_ERR_CHECK || read == PP_ERR_FORMAT),
	      "%s: a flipped compressed byte: pp_verify (%d) and pp_pread "
	      "(%d) fail", name, verify, read);
	CHECK(pp_pread(a, buf, sizeof buf, kept[1].offset, NULL) == 0 &&
	      memcmp(buf, image + kept[1].offset, sizeof buf) == 0,
	      "%s: ... another block still reads", name);
	pp_close(a);
}

/* A flipped stored byte of the first kept range: pp_verify fails with a
 * check error, pp_pread gives the byte as the file has it (stored data is
 * read without its check, partpack.h says), pp_extract of the range fails,
 * and so does a patch of its block. */
static void check_damaged_stored(uint64_t file_offset)
{
	const char *bad = flipped_copy(file_offset + 1000);
	pp_archive *a;
	uint8_t byte, data[10] = { 0 };
	if (pp_open(unit_path(bad), PP_OPEN_WRITE, &a, NULL) != 0) {
		CHECK(false, "%s: open with a flipped stored byte", name);
		return;
	}
	CHECK(pp_verify(a, NULL, NULL, NULL) == PP_ERR_CHECK,
	      "%s: a flipped stored byte: pp_verify finds a bad check", name);
	CHECK(pp_pread(a, &byte, 1, kept[0].offset + 1000, NULL) == 0 &&
	      byte == (image[kept[0].offset + 1000] ^ 0x55),
	      "%s: ... pp_pread reads it unchecked", name);
	int out = open(unit_path("extracted"), O_WRONLY | O_CREAT | O_TRUNC,
		       0644);
	pp_extract_options options;
	pp_extract_options_init(&options);
	CHECK(pp_extract(a, kept[0].offset, 4096, out, "extracted", &options,
			 NULL) == PP_ERR_CHECK,
	      "%s: ... pp_extract finds the bad check", name);
	close(out);
	CHECK(pp_patch(a, kept[0].offset + 2000, data, sizeof data, 0, NULL,
		       NULL) == PP_ERR_CHECK,
	      "%s: ... and a patch of its block is refused", name);
	pp_close(a);
}

/* The blocks to damage, from pp_list_blocks and pp_map. */
static void check_damage(enum pp_check check)
{
	if (check == PP_CHECK_NONE)
		return;   /* nothing to find a flipped stored byte by */
	pp_archive *a = open_archive(PP_OPEN_READ);
	pp_block_info *blocks = NULL;
	pp_map_extent *extents = NULL;
	size_t count = 0, extent_count = 0;
	if (!a || pp_list_blocks(a, &blocks, &count, NULL) != 0 ||
	    pp_map(a, kept[0].offset, 1, &extents, &extent_count, NULL) != 0 ||
	    count == 0 || extent_count != 1) {
		CHECK(false, "%s: the blocks to damage", name);
	} else {
		pp_block_info first = blocks[0];
		uint64_t stored_at = extents[0].file_offset;
		pp_close(a);
		a = NULL;
		check_damaged_compressed(&first);
		check_damaged_stored(stored_at);
	}
	pp_close(a);
	free(blocks);
	free(extents);
}

int main(void)
{
	unit_mkdir("test-conformance");
	size_t formats = 0;
	for (; pp_format_at(formats) != 0; formats++) {
		enum pp_format format = pp_format_at(formats);
		enum pp_check checks[32];
		size_t count = formats_checks(format, checks);
		for (size_t c = 0; c < count; c++) {
			snprintf(name, sizeof name, "%s%s",
				 pp_check_name(checks[c]),
				 pp_format_suffix(format));
			make_image();   /* check_patch changed it */
			if (pack(format, checks[c]) != 0)
				continue;
			pp_archive *a = open_archive(PP_OPEN_READ);
			if (!a)
				continue;
			check_info(a, format, checks[c]);
			check_reads(a);
			check_map(a, checks[c]);
			check_blocks(a);
			pp_close(a);
			check_refusals();
			check_damage(checks[c]);
			check_patch();
		}
	}
	CHECK(formats >= 3, "%zu formats were held to the API", formats);
	if (unit_rmdir() != 0)
		return EXIT_FAILURE;
	return unit_done();
}
