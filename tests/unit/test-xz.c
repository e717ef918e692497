/* test-xz.c - the xz container reader on our files, stock xz files with
 * several streams, padding and filters, and corrupt files. */
#include "archive.h"
#include "crc.h"
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Text-like data that compresses, in this test's words. */
static void make_text(uint8_t *p, size_t len, unsigned long long *seed)
{
	static const char *const words[] = { "block ", "stream ", "index ",
					     "chunk ", "check ", "\n" };
	unit_text(p, len, seed, words);
}

static void test_our_file(const uint8_t *image, size_t size)
{
	pp_range keep = { .offset = 300000, .length = 400000 };
	pp_pack_options options = unit_options(PP_FORMAT_XZ, PP_CHECK_CRC64,
					       256 << 10, &keep, 1);
	options.threads = 2;
	CHECK(unit_pack("image", "ours.xz", &options, NULL) == 0,
	      "pack with one kept range");
	pp_archive *a;
	pp_info info;
	CHECK(pp_open(unit_path("ours.xz"), PP_OPEN_READ, &a, NULL) == 0,
	      "open our file");
	CHECK(pp_get_info(a, &info, NULL) == 0 && info.stored_count == 1 &&
	      info.stored[0].offset == 300000 &&
	      info.stored[0].length == 400000 &&
	      info.uncompressed_size == size,
	      "stored ranges are exactly the kept range");
	/* 0-256K | 256K-300000 | 300000-512K S | 512K-700000 S | ... */
	CHECK(a->blocks[1].uoffset == 262144 && a->blocks[2].uoffset == 300000 &&
	      a->blocks[4].uoffset == 700000, "block boundaries at range edges");
	unit_check_reads(a, image, size, 262000);
	pp_info_free(&info);
	pp_close(a);
}

/* pp_pack refuses block sizes the formats and the patcher handle badly,
 * before writing anything. */
static void test_block_size_bounds(void)
{
	static const uint64_t sizes[] = { 1, PP_MIN_BLOCK_SIZE - 1,
					  (uint64_t)PP_MAX_BLOCK_SIZE + 1 };
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		pp_pack_options options;
		pp_pack_options_init(&options);
		options.block_size = sizes[i];
		int in_fd = open(unit_path("image"), O_RDONLY);
		int out_fd = open(unit_path("bounds.xz"),
				  O_WRONLY | O_CREAT | O_TRUNC, 0644);
		pp_error err;
		int status = pp_pack(in_fd, "image", out_fd, "bounds.xz",
				     &options, &err);
		struct stat st;
		CHECK(status == PP_ERR_USAGE && fstat(out_fd, &st) == 0 &&
		      st.st_size == 0 && strstr(err.message, "4 KiB") &&
		      strstr(err.message, "1 GiB"),
		      "block size %llu refused, naming the limits",
		      (unsigned long long)sizes[i]);
		close(in_fd);
		close(out_fd);
	}
}

/* pp_list_blocks hands out the block table, stored bytes included. */
static void test_list_blocks(void)
{
	pp_archive *a;
	pp_block_info *blocks = NULL;
	size_t count = 0;
	CHECK(pp_open(unit_path("ours.xz"), PP_OPEN_READ, &a, NULL) == 0 &&
	      pp_list_blocks(a, &blocks, &count, NULL) == 0 &&
	      count == a->block_count, "pp_list_blocks: one entry per block");
	bool same = true;
	uint64_t stored = 0;
	for (size_t i = 0; i < count; i++) {
		same = same && blocks[i].uoffset == a->blocks[i].uoffset &&
			blocks[i].foffset == a->blocks[i].foffset &&
			blocks[i].fsize == a->blocks[i].fsize &&
			blocks[i].usize == a->blocks[i].usize;
		stored += blocks[i].stored_bytes;
	}
	CHECK(same, "... with each block's place and sizes");
	CHECK(stored == 400000 && blocks[2].stored_bytes == blocks[2].usize &&
	      blocks[0].stored_bytes == 0,
	      "... and the stored bytes of the kept range's blocks only");
	free(blocks);
	pp_close(a);
}

static void test_stock_streams(void)
{
	/* Two streams with padding between them and after, one with the
	 * x86 filter: the reader must number blocks across streams and
	 * never offer filtered bytes as stored. */
	CHECK(unit_shell("head -c 100000 %s/image | xz -0 --check=crc32 "
			 "> %s/a.xz", unit_dir, unit_dir) == 0,
	      "stock xz stream 1");
	CHECK(unit_shell("tail -c 50000 %s/image | xz --x86 --lzma2=preset=0 "
			 "--check=sha256 > %s/b.xz", unit_dir, unit_dir) == 0,
	      "stock xz stream 2 with the x86 filter");
	CHECK(unit_shell("cd %s && { cat a.xz; printf '\\0\\0\\0\\0'; cat b.xz; "
			 "printf '\\0\\0\\0\\0\\0\\0\\0\\0'; } > %s/multi.xz",
			 unit_dir, unit_dir) == 0
	      && unit_shell("xz -t %s/multi.xz", unit_dir) == 0,
	      "two streams with padding pass xz -t");
	pp_archive *a;
	pp_info info;
	CHECK(pp_open(unit_path("multi.xz"), PP_OPEN_READ, &a, NULL) == 0,
	      "open two-stream file");
	CHECK(a->block_count == 2 && a->blocks[1].uoffset == 100000 &&
	      a->blocks[0].check == PP_CHECK_CRC32 &&
	      a->blocks[1].check == PP_CHECK_SHA256,
	      "blocks numbered across streams, each with its stream's check");
	CHECK(pp_get_info(a, &info, NULL) == 0 && info.mixed_checks,
	      "mixed checks reported");
	bool filtered_offered = false;
	for (size_t i = 0; i < info.stored_count; i++)
		filtered_offered |= info.stored[i].offset +
			info.stored[i].length > 100000;
	CHECK(!filtered_offered, "x86-filtered block offers no stored bytes");
	CHECK(pp_verify(a, NULL, NULL, NULL) == 0, "verify two streams");
	pp_info_free(&info);
	pp_close(a);
}

/* Stock xz writes incompressible stretches as uncompressed chunks inside
 * an LZMA2 stream.  Those followed by LZMA chunks may be copied from, so
 * only trailing ones are patchable, and patching them keeps xz -t happy. */
static void test_mixed_chunks(unsigned long long *seed)
{
	size_t half = 300000;
	uint8_t *data = malloc(2 * half);
	unit_noise(data, half, seed);
	make_text(data + half, half, seed);
	unit_write_file("noise-text", data, 2 * half);
	make_text(data, half, seed);
	unit_noise(data + half, half, seed);
	unit_write_file("text-noise", data, 2 * half);
	CHECK(unit_shell("xz -k -6 %s/noise-text && xz -k -6 %s/text-noise",
			 unit_dir, unit_dir) == 0, "stock xz on mixed data");
	pp_archive *a;
	pp_info info;
	CHECK(pp_open(unit_path("noise-text.xz"), PP_OPEN_READ, &a, NULL) == 0 &&
	      pp_get_info(a, &info, NULL) == 0 && info.stored_count == 0,
	      "uncompressed chunks followed by LZMA chunks are not offered");
	pp_info_free(&info);
	pp_close(a);

	CHECK(pp_open(unit_path("text-noise.xz"), PP_OPEN_WRITE, &a, NULL) == 0 &&
	      pp_get_info(a, &info, NULL) == 0 && info.stored_count == 1 &&
	      info.stored[0].offset + info.stored[0].length == 2 * half &&
	      info.stored[0].offset <= half + 70000,
	      "trailing uncompressed chunks are offered");
	uint8_t patch[5000];
	make_text(patch, sizeof patch, seed);
	uint64_t at = 2 * half - 20000;
	CHECK(pp_patch(a, at, patch, sizeof patch, 0, NULL, NULL) == 0,
	      "patch a stock xz file");
	memcpy(data + at, patch, sizeof patch);
	unit_write_file("text-noise.expected", data, 2 * half);
	CHECK(unit_shell("xz -dc %s/text-noise.xz | "
			 "cmp -s - %s/text-noise.expected", unit_dir,
			 unit_dir) == 0, "stock xz decodes the patched bytes");
	pp_info_free(&info);
	pp_close(a);
	free(data);
}

static int open_status(const char *name)
{
	pp_archive *a;
	pp_error err;
	int status = pp_open(unit_path(name), PP_OPEN_READ, &a, &err);
	if (status == 0) {
		status = pp_verify(a, NULL, NULL, &err);
		pp_close(a);
	}
	return status;
}

static void test_corrupt(void)
{
	size_t len = 0;
	uint8_t *good = unit_read_file("ours.xz", &len);
	if (!good || len < 1000) {
		CHECK(false, "our file for corrupting");
		return;
	}
	unit_write_file("empty.xz", good, 0);
	CHECK(open_status("empty.xz") == PP_ERR_FORMAT, "empty file");
	unit_write_file("short.xz", good, len - 4);
	CHECK(open_status("short.xz") == PP_ERR_FORMAT, "truncated file");
	unit_write_file("head.xz", good, 12);
	CHECK(open_status("head.xz") == PP_ERR_FORMAT, "stream header only");

	uint8_t *bad = malloc(len);
	memcpy(bad, good, len);
	bad[len - 20] ^= 0x10;  /* inside the index */
	unit_write_file("index.xz", bad, len);
	CHECK(open_status("index.xz") == PP_ERR_FORMAT, "bit flip in the index");

	memcpy(bad, good, len);
	bad[len - 2] = 'X';  /* footer magic */
	unit_write_file("footer.xz", bad, len);
	CHECK(open_status("footer.xz") == PP_ERR_FORMAT, "bad footer magic");

	memcpy(bad, good, len);
	bad[400000] ^= 0x01;  /* stored data: only the check can tell */
	unit_write_file("data.xz", bad, len);
	CHECK(open_status("data.xz") == PP_ERR_CHECK, "bit flip in stored data");

	unsigned long long seed = 5;
	unit_noise(bad, len, &seed);
	bad[0] = 0xFD; memcpy(bad + 1, "7zXZ", 5);
	unit_write_file("noise.xz", bad, len);
	CHECK(open_status("noise.xz") == PP_ERR_FORMAT, "random bytes after magic");

	/* An index that declares 2^34 records (found by fuzzing): liblzma
	 * must not be allowed to allocate for them.  Under ASan an attempt
	 * aborts the test. */
	memcpy(bad, good, len);
	uint32_t index_size = (pp_get_le32(good + len - 8) + 1) * 4;
	uint8_t *index = bad + len - 12 - index_size;
	memset(index, 0, index_size);
	/* count 2^34, then one plausible record: liblzma allocates for all
	 * the declared records when it appends the first one */
	static const uint8_t huge_count[] = { 0x80, 0x80, 0x80, 0x80, 0x40,
					      0x10, 0x01 };
	memcpy(index + 1, huge_count, sizeof huge_count);
	pp_put_le32(index + index_size - 4,
		    pp_crc32(0, index, index_size - 4));
	unit_write_file("count.xz", bad, len);
	CHECK(open_status("count.xz") == PP_ERR_FORMAT,
	      "an index declaring 2^34 records is refused without allocating");

	/* Every single-byte truncation point of the tail must fail cleanly. */
	bool clean = true;
	for (size_t cut = len - 64; cut < len && clean; cut++) {
		unit_write_file("cut.xz", good, cut);
		int status = open_status("cut.xz");
		clean = status == PP_ERR_FORMAT || status == PP_ERR_CHECK;
	}
	CHECK(clean, "every truncation in the last 64 bytes is refused");
	free(bad);
	free(good);
}

int main(void)
{
	unit_mkdir("test-xz");
	unsigned long long seed = 1;
	size_t size = 1000000;
	uint8_t *image = malloc(size);
	make_text(image, size, &seed);
	unit_noise(image + 350000, 100000, &seed);
	unit_write_file("image", image, size);
	test_our_file(image, size);
	test_list_blocks();
	test_block_size_bounds();
	test_stock_streams();
	test_mixed_chunks(&seed);
	test_corrupt();
	free(image);
	if (unit_rmdir() != 0)
		return 1;
	return unit_done();
}
