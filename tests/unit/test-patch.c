/*
 * test-patch.c - patch transactions on archives of every format and check
 * kind the registry lists (xz's three, gzip's CRC-32, zstd's XXH64 with its
 * copy in the seek table): ranges laid over each other (the later wins),
 * refused ranges that leave the rest queued, abort and dry run writing
 * nothing, one report for the whole transaction, and the check of a
 * touched block verified before anything is written.
 */
#include "partpack.h"
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGE_SIZE (1u << 20)
#define BLOCK_SIZE (64u << 10)
#define KEPT_OFFSET 200000u     /* not on a block edge */
#define KEPT_LENGTH 600000u

static uint8_t image[IMAGE_SIZE];

static bool no_undo_record(const char *name)
{
	char undo[300];
	snprintf(undo, sizeof undo, "%s/.%s.partpatch-undo", unit_dir, name);
	return access(undo, F_OK) != 0;
}

/* The archive decodes to expected and every check holds. */
static bool reads_as(const char *name, const uint8_t *expected)
{
	pp_archive *a;
	uint8_t *got = malloc(IMAGE_SIZE);
	bool same = pp_open(unit_path(name), PP_OPEN_READ, &a, NULL) == 0;
	if (same) {
		same = pp_verify(a, NULL, NULL, NULL) == 0 &&
			pp_pread(a, got, IMAGE_SIZE, 0, NULL) == 0 &&
			memcmp(got, expected, IMAGE_SIZE) == 0;
		pp_close(a);
	}
	free(got);
	return same;
}

static void pack(const char *name, enum pp_format format, enum pp_check check)
{
	pp_range keep = { KEPT_OFFSET, KEPT_LENGTH };
	pp_pack_options options;
	pp_pack_options_init(&options);
	options.format = format;
	options.check = check;
	options.level = 1;
	options.block_size = BLOCK_SIZE;
	options.keep = &keep;
	options.keep_count = 1;
	pp_error err;
	int status = unit_pack("image", name, &options, &err);
	CHECK(status == 0, "%s: pack (%s)", name, status ? err.message : "ok");
}

typedef struct test_range {
	uint64_t offset;
	size_t len;
} test_range;

/* Overlapping, adjacent and nested ranges over several blocks, in an
 * order where later ones cut earlier ones at both ends. */
static const test_range ranges[] = {
	{ 240000, 40000 },          /* spans the block edge at 262144 */
	{ 250000, 5000 },           /* inside the first: wins there */
	{ 280000, 1000 },           /* adjacent to the first */
	{ 235000, 10000 },          /* cuts the first's head */
	{ 400000, 3000 },
	{ 399000, 6000 },           /* covers the previous one wholly */
	{ 600000, 100 },
	{ 600050, 100 },
	{ 600000, 20 },
	{ 780000, 19999 },          /* ends at the kept range's last byte */
};
#define RANGE_COUNT (sizeof ranges / sizeof *ranges)

static void test_transaction(const char *name, unsigned long long *seed)
{
	size_t base_len;
	uint8_t *base = unit_read_file(name, &base_len);
	uint8_t *expected = malloc(IMAGE_SIZE);
	memcpy(expected, image, IMAGE_SIZE);
	uint8_t data[RANGE_COUNT][40000];
	for (size_t i = 0; i < RANGE_COUNT; i++)
		for (size_t j = 0; j < ranges[i].len; j++)
			data[i][j] = (uint8_t)unit_random(seed);

	/* Abort: nothing is written, no record is left. */
	pp_archive *a;
	pp_patch_txn *txn;
	pp_error err;
	CHECK(pp_open(unit_path(name), PP_OPEN_WRITE, &a, &err) == 0 &&
	      pp_patch_begin(a, 0x100, &txn, &err) == PP_ERR_USAGE &&
	      txn == NULL, "%s: unknown flags are refused", name);
	CHECK(pp_patch_begin(a, 0, &txn, &err) == 0, "%s: begin", name);
	for (size_t i = 0; i < RANGE_COUNT; i++)
		pp_patch_add(txn, ranges[i].offset, data[i], ranges[i].len, &err);
	pp_patch_abort(txn);
	pp_close(a);
	CHECK(unit_same_file(name, base, base_len) && no_undo_record(name),
	      "%s: abort writes nothing", name);

	/* A dry run checks and reports, and writes nothing either. */
	pp_patch_report report;
	CHECK(pp_open(unit_path(name), PP_OPEN_READ, &a, &err) == 0 &&
	      pp_patch_begin(a, PP_PATCH_DRY_RUN, &txn, &err) == 0 &&
	      pp_patch_add(txn, ranges[0].offset, data[0], ranges[0].len,
			   &err) == 0 &&
	      pp_patch_commit(txn, &report, &err) == 0,
	      "%s: dry run", name);
	pp_close(a);
	CHECK(unit_same_file(name, base, base_len) && no_undo_record(name) &&
	      report.data_bytes == ranges[0].len && report.blocks_touched == 2 &&
	      report.first_block == 4, "%s: ... writes nothing and reports "
	      "two blocks from block 4 (%llu from %llu)", name,
	      (unsigned long long)report.blocks_touched,
	      (unsigned long long)report.first_block);

	/* The transaction: later ranges win; a refused range drops out and
	 * the others stay queued. */
	CHECK(pp_open(unit_path(name), PP_OPEN_WRITE, &a, &err) == 0 &&
	      pp_patch_begin(a, 0, &txn, &err) == 0, "%s: begin", name);
	for (size_t i = 0; i < RANGE_COUNT; i++) {
		CHECK(pp_patch_add(txn, ranges[i].offset, data[i],
				   ranges[i].len, &err) == 0,
		      "%s: add range %zu", name, i);
		memcpy(expected + ranges[i].offset, data[i], ranges[i].len);
		memset(data[i], 0, ranges[i].len);  /* it was copied */
		if (i == 3) {
			CHECK(pp_patch_add(txn, KEPT_OFFSET + KEPT_LENGTH - 10,
					   data[0], 20, &err) ==
			      PP_ERR_NOT_STORED, "%s: a range running past "
			      "the stored data is refused", name);
			CHECK(pp_patch_add(txn, IMAGE_SIZE - 10, data[0], 20,
					   &err) == PP_ERR_USAGE,
			      "%s: a range past the end is refused", name);
		}
	}
	int status = pp_patch_commit(txn, &report, &err);
	CHECK(status == 0, "%s: commit (%s)", name,
	      status ? err.message : "ok");
	pp_close(a);
	CHECK(reads_as(name, expected) && no_undo_record(name),
	      "%s: every range applied, the later one winning, and every "
	      "check holds", name);
	/* Distinct bytes: 235000..281000, 399000..405000, 600000..600150,
	 * 780000..799999, in blocks 4 and 5 (the grid's 196608.. starts
	 * again at the kept range's edge, 200000), 7, 9, 11 and 12. */
	uint64_t distinct = 46000 + 6000 + 150 + 19999;
	CHECK(report.data_bytes == distinct && report.blocks_touched == 6 &&
	      report.first_block == 4 && report.undo_bytes >= distinct,
	      "%s: one report sums it all (%llu bytes, %llu blocks)", name,
	      (unsigned long long)report.data_bytes,
	      (unsigned long long)report.blocks_touched);
	free(expected);
	free(base);
}

/* A stored block whose bytes no longer match its check refuses any
 * transaction that touches it, whole; others still go through. */
static void test_corrupt_block(const char *name, unsigned long long *seed)
{
	size_t len;
	uint8_t *file = unit_read_file(name, &len);
	/* Image bytes 500000.. lie verbatim in the file, in the block
	 * numbered 9 (index 8: 458752..524288). */
	uint8_t *at = memmem(file, len, image + 500000, 64);
	CHECK(at != NULL, "%s: stored bytes found in the file", name);
	if (!at) {
		free(file);
		return;
	}
	at[10] ^= 0x20;
	unit_write_file(name, file, len);
	uint8_t data[3000];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)unit_random(seed);

	pp_archive *a;
	pp_patch_txn *txn;
	pp_error err = { 0 };
	int status = -1;
	if (pp_open(unit_path(name), PP_OPEN_WRITE, &a, NULL) == 0) {
		if (pp_patch_begin(a, 0, &txn, NULL) == 0 &&
		    pp_patch_add(txn, 300000, data, sizeof data, NULL) == 0 &&
		    pp_patch_add(txn, 520000, data, sizeof data, NULL) == 0)
			status = pp_patch_commit(txn, NULL, &err);
		pp_close(a);
	}
	CHECK(status == PP_ERR_CHECK && strstr(err.message, "block 9 ") &&
	      unit_same_file(name, file, len) && no_undo_record(name),
	      "%s: a transaction touching a corrupt block is refused whole, "
	      "naming it (%s)", name, err.message);
	status = -1;
	if (pp_open(unit_path(name), PP_OPEN_WRITE, &a, NULL) == 0) {
		status = pp_patch(a, 300000, data, sizeof data, 0, NULL, &err);
		pp_close(a);
	}
	CHECK(status == 0, "%s: a patch of another block goes through", name);
	free(file);
}

/* A block holding compressed data too is decoded to verify it: stock xz
 * writes the noise after the text as trailing uncompressed chunks (which
 * are patchable) in the same block as the LZMA chunks before them. */
static void test_corrupt_mixed_block(unsigned long long *seed)
{
	size_t half = 300000;
	uint8_t *data = malloc(2 * half);
	memcpy(data, image, half);
	for (size_t i = half; i < 2 * half; i++)
		data[i] = (uint8_t)unit_random(seed);
	unit_write_file("mixed", data, 2 * half);
	CHECK(unit_shell("xz -k -6 %s", unit_path("mixed")) == 0,
	      "stock xz on text then noise");
	size_t len;
	uint8_t *file = unit_read_file("mixed.xz", &len);
	file[100] ^= 0x55;          /* inside the LZMA data of block 1 */
	unit_write_file("mixed.xz", file, len);
	uint8_t patch[1000] = { 1 };
	pp_archive *a;
	pp_error err = { 0 };
	int status = -1;
	if (pp_open(unit_path("mixed.xz"), PP_OPEN_WRITE, &a, NULL) == 0) {
		status = pp_patch(a, 2 * half - 5000, patch, sizeof patch, 0,
				  NULL, &err);
		pp_close(a);
	}
	CHECK(status == PP_ERR_CHECK && strstr(err.message, "block 1 ") &&
	      unit_same_file("mixed.xz", file, len),
	      "a patch of a block whose compressed part is corrupt is refused "
	      "(%s)", err.message);
	free(file);
	free(data);
}

int main(void)
{
	unit_mkdir("test-patch");
	unsigned long long seed = 42;
	for (size_t i = 0; i < IMAGE_SIZE; i++)
		image[i] = (uint8_t)"patch \n"[unit_random(&seed) % 7] ^
			(uint8_t)(unit_random(&seed) % 3 == 0 ? i : 0);
	unit_write_file("image", image, IMAGE_SIZE);

	/* Every check of every format the registry lists ("none" has nothing
	 * to find a corrupt block with). */
	for (size_t f = 0; pp_format_at(f) != 0; f++) {
		enum pp_format format = pp_format_at(f);
		enum pp_check checks[32];
		size_t count = formats_checks(format, checks);
		for (size_t c = 0; c < count; c++) {
			if (checks[c] == PP_CHECK_NONE)
				continue;
			char name[64];
			snprintf(name, sizeof name, "%s%s",
				 pp_check_name(checks[c]),
				 pp_format_suffix(format));
			pack(name, format, checks[c]);
			test_transaction(name, &seed);
			test_corrupt_block(name, &seed);
		}
	}
	test_corrupt_mixed_block(&seed);
	if (unit_rmdir() != 0)
		return 1;
	return unit_done();
}
