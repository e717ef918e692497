/*
 * test-fs.c - the pieces of pp_fs that need no filesystem tool: the
 * overlay of written units over a read function, the diff that turns new
 * bytes into changed runs, and the bytes kind (a partition in a file,
 * edited by hand here) handing back exactly what changed, refusing a file
 * whose size changed, and refusing everything after a failed operation.
 * tests/integration/fsedit.sh runs the filesystems themselves.
 */
#include "fs.h"
#include "overlay.h"
#include "unit.h"

#include <stdlib.h>

#define IMAGE_SIZE (1u << 20)
#define PART_OFFSET 65536u
#define PART_LENGTH 262144u

static uint8_t below[8192];

static int read_below(void *opaque, void *buf, size_t len, uint64_t offset,
		      pp_error *err)
{
	(void)opaque, (void)err;
	/* The bytes below, then zeros. */
	memset(buf, 0, len);
	if (offset < sizeof below)
		memcpy(buf, below + offset, PP_MIN(len, sizeof below - offset));
	return 0;
}

static void test_overlay(void)
{
	for (size_t i = 0; i < sizeof below; i++)
		below[i] = (uint8_t)(i * 7);
	pp_overlay *o = pp_overlay_new(read_below, NULL);
	uint8_t data[3000], got[sizeof below], want[sizeof below];
	memcpy(want, below, sizeof want);
	memset(data, 0xAB, sizeof data);
	/* A write starting and ending inside units: both are read first. */
	CHECK(pp_overlay_write(o, data, sizeof data, 1500, NULL) == 0,
	      "overlay: write across three units, two in part");
	memcpy(want + 1500, data, sizeof data);
	CHECK(pp_overlay_read(o, got, sizeof got, 0, NULL) == 0 &&
	      memcmp(got, want, sizeof got) == 0,
	      "overlay: reads see the writes and the bytes below around them");
	CHECK(pp_overlay_read(o, got, 100, 1450, NULL) == 0 &&
	      memcmp(got, want + 1450, 100) == 0,
	      "overlay: a read across a written unit's edge");
	uint64_t *units;
	size_t count;
	CHECK(pp_overlay_units(o, &units, &count, NULL) == 0 && count == 4 &&
	      units[0] == 1 && units[3] == 4, "overlay: units 1..4 written");
	free(units);
	/* Many units: the table grows and keeps them all. */
	for (uint64_t u = 100; u < 5100; u++)
		pp_overlay_write(o, &u, sizeof u, u * PP_OVERLAY_UNIT, NULL);
	uint64_t u = 0;
	const uint8_t *unit = pp_overlay_unit(o, 4321);
	if (unit)
		memcpy(&u, unit, sizeof u);
	CHECK(u == 4321 && pp_overlay_bytes(o) == 5004 * PP_OVERLAY_UNIT,
	      "overlay: 5000 more units, found again after growing");
	pp_overlay_free(o);
}

typedef struct runs {
	uint64_t offset[16];
	size_t len[16];
	size_t count;
} runs;

static int record(void *opaque, uint64_t offset, const void *data, size_t len,
		  pp_error *err)
{
	runs *r = opaque;
	(void)data, (void)err;
	if (r->count < 16) {
		r->offset[r->count] = offset;
		r->len[r->count++] = len;
	}
	return 0;
}

static void test_diff(void)
{
	uint8_t old[1000] = { 0 }, now[1000] = { 0 };
	runs r = { .count = 0 };
	now[10] = 1;
	now[20] = 1;                        /* 9 equal bytes apart: one run */
	now[100] = 1;                       /* far: a run of its own */
	now[999] = 1;                       /* the last byte */
	CHECK(pp_fs_emit_diff(old, now, sizeof old, 5000, record, &r, NULL) == 0 &&
	      r.count == 3 && r.offset[0] == 5010 && r.len[0] == 11 &&
	      r.offset[1] == 5100 && r.len[1] == 1 && r.offset[2] == 5999 &&
	      r.len[2] == 1, "diff: near changes merged, far ones apart");
	r.count = 0;
	CHECK(pp_fs_emit_diff(old, old, sizeof old, 0, record, &r, NULL) == 0 &&
	      r.count == 0, "diff: nothing changed, no run");
}

static int add_run(void *opaque, uint64_t offset, const void *data, size_t len,
		   pp_error *err)
{
	return pp_patch_add(opaque, offset, data, len, err);
}

/* Opens the bytes kind on the partition of the archive packed from the
 * test image, keeping the partition raw. */
static pp_archive *open_archive(int flags)
{
	pp_archive *a = NULL;
	pp_open(unit_path("img.xz"), flags, &a, NULL);
	return a;
}

static void test_bytes(void)
{
	static uint8_t image[IMAGE_SIZE];
	unsigned long long seed = 22;
	for (size_t i = 0; i < IMAGE_SIZE; i++)
		image[i] = (uint8_t)unit_random(&seed);
	unit_write_file("img", image, IMAGE_SIZE);
	pp_pack_options options;
	pp_pack_options_init(&options);
	options.block_size = 65536;
	options.level = 1;
	pp_range keep = { PART_OFFSET, PART_LENGTH };
	options.keep = &keep;
	options.keep_count = 1;
	CHECK(unit_pack("img", "img.xz", &options, NULL) == 0, "pack");

	pp_archive *a = open_archive(PP_OPEN_WRITE);
	pp_fs_options fo;
	pp_fs_options_init(&fo);
	fo.kind = PP_FS_BYTES;
	fo.tmpdir = unit_dir;
	pp_fs *fs = NULL;
	pp_error err;
	CHECK(a && pp_fs_open(a, &keep, &fo, &fs, &err) == 0 &&
	      pp_fs_get_kind(fs) == PP_FS_BYTES && pp_fs_bytes_path(fs),
	      "bytes: the partition in a file");
	int fd = fs ? open(pp_fs_bytes_path(fs), O_RDWR) : -1;
	uint8_t x = 0x5A;
	for (uint64_t at = 4096; fd >= 0 && at < 4140; at += 20) {
		uint8_t flipped = image[PART_OFFSET + at] ^ x;
		pwrite(fd, &flipped, 1, (off_t)at);
	}
	if (fd >= 0)
		close(fd);
	pp_patch_txn *txn = NULL;
	pp_range *written = NULL;
	size_t count = 0;
	pp_patch_begin(a, 0, &txn, NULL);
	CHECK(fs && pp_fs_add_to_patch(fs, txn, &written, &count, &err) == 0 &&
	      count == 1 && written[0].offset == PART_OFFSET + 4096 &&
	      written[0].length == 41,
	      "bytes: three flipped bytes 20 apart are one run of 41");
	CHECK(pp_patch_commit(txn, NULL, &err) == 0, "commit: %s",
	      err.message);
	image[PART_OFFSET + 4096] ^= x;
	image[PART_OFFSET + 4116] ^= x;
	image[PART_OFFSET + 4136] ^= x;
	unit_check_reads(a, image, IMAGE_SIZE, PART_OFFSET + 4000);
	CHECK(fs && pp_fs_changes(fs, add_run, NULL, NULL, NULL, &err) ==
	      PP_ERR_USAGE, "bytes: the changes are handed back once");
	free(written);
	pp_fs_close(fs);

	/* A resized file: nothing at all. */
	fs = NULL;
	CHECK(pp_fs_open(a, &keep, &fo, &fs, &err) == 0 &&
	      truncate(pp_fs_bytes_path(fs), PART_LENGTH + 1) == 0,
	      "bytes: the file made one byte longer");
	pp_patch_begin(a, 0, &txn, NULL);
	CHECK(fs && pp_fs_add_to_patch(fs, txn, NULL, NULL, &err) ==
	      PP_ERR_FORMAT && strstr(err.message, "changed size"),
	      "bytes: a resized file is refused: %s", err.message);
	pp_patch_abort(txn);
	/* The other kinds' operations are not the bytes kind's. */
	pp_fs_close(fs);
	fs = NULL;
	pp_fs_open(a, &keep, &fo, &fs, NULL);
	CHECK(fs && pp_fs_mkdir(fs, "/x", &err) == PP_ERR_USAGE &&
	      pp_fs_changes(fs, add_run, NULL, NULL, NULL, &err) == PP_ERR_USAGE,
	      "bytes: mkdir refused, and then nothing is handed back");
	pp_fs_close(fs);

	/* Random bytes are no filesystem: the probe says so. */
	pp_fs_probe found;
	CHECK(pp_probe_filesystem(a, &keep, &found, &err) == 0 &&
	      found.type[0] == '\0', "probe: random bytes hold nothing");
	CHECK(pp_fs_open(a, &keep, NULL, &fs, &err) == PP_ERR_FORMAT &&
	      strstr(err.message, "not ext2/3/4 or vfat"),
	      "open: neither ext nor vfat is refused: %s", err.message);
	pp_close(a);
}

int main(void)
{
	unit_mkdir("test-fs");
	test_overlay();
	test_diff();
	test_bytes();
	unit_rmdir();
	return unit_done();
}
