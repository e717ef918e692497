/*
 * fuzz-open.c - libFuzzer harness for the container parsers, seen from
 * the public API: whatever the bytes of an archive, pp_open, pp_get_info,
 * pp_verify, pp_stored_run and pp_pread either succeed or fail with a
 * status and a message, and never crash, hang or leak.
 *
 * pp_open probes the container by its magic, so this one harness reaches
 * every parser; tests/fuzz/fuzz.mk builds it once per format (fuzz-xz-open,
 * fuzz-gz-open, fuzz-zstd-open) only so each format grows its own corpus
 * from its own seeds.
 *
 * Beyond "no crash", it checks what any caller relies on: a failure sets
 * err to the status it returns; the stored ranges lie sorted inside the
 * image; a read past the end fails; and once pp_verify has decoded every
 * block, reads inside the image succeed and return the same bytes however
 * they are split.
 */
#include "partpack.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Reads are short: the parsers, not the decoders, are under test. */
#define READ_MAX 8192


/* The input lives in a memfd, reopened by path as pp_open wants a path. */
static int input_fd = -1;
static char input_path[64];

static void open_input_file(void)
{
	input_fd = memfd_create("fuzz-archive", MFD_CLOEXEC);
	if (input_fd < 0) {
		perror("memfd_create");
		exit(1);
	}
	snprintf(input_path, sizeof input_path, "/proc/self/fd/%d", input_fd);
}

static void store_input(const uint8_t *data, size_t size)
{
	if (ftruncate(input_fd, 0) ||
	    (size > 0 && pwrite(input_fd, data, size, 0) != (ssize_t)size)) {
		perror("memfd write");
		exit(1);
	}
}

/* A failing call must say why, in a message that fits. */
static void check_failure(int status, const pp_error *err)
{
	REQUIRE(status <= PP_ERR_USAGE && status >= PP_ERR_BUSY);
	REQUIRE(err->status == status);
	REQUIRE(memchr(err->message, '\0', sizeof err->message) != NULL);
	REQUIRE(err->message[0] != '\0');
}

static void check_info(const pp_info *info, size_t file_size)
{
	REQUIRE(info->compressed_size == file_size);
	uint64_t previous_end = 0;
	for (size_t i = 0; i < info->stored_count; i++) {
		const pp_range *r = &info->stored[i];
		REQUIRE(r->length > 0);
		REQUIRE(i == 0 || r->offset >= previous_end);
		REQUIRE(r->offset <= info->uncompressed_size &&
			r->length <= info->uncompressed_size - r->offset);
		previous_end = r->offset + r->length;
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* FNV-1a: read offsets follow the input, so the fuzzer can steer them. */
static uint64_t hash_input(const uint8_t *data, size_t size)
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	return h;
}

/* The same bytes read in two pieces, split where a block window would
 * not be: pp_pread's windowing must not depend on where reads start. */
static void check_split_read(pp_archive *archive, const uint8_t *whole,
			     size_t len, uint64_t offset)
{
	size_t first = len / 3;
	uint8_t *buf = malloc(len);
	REQUIRE(buf != NULL);
	pp_error err;
	REQUIRE(pp_pread(archive, buf, first, offset, &err) == 0);
	REQUIRE(pp_pread(archive, buf + first, len - first, offset + first,
			 &err) == 0);
	REQUIRE(memcmp(buf, whole, len) == 0);
	free(buf);
}

/* One pp_pread; in-image reads of a verified archive must succeed, reads
 * that run past the end never may. */
static void try_read(pp_archive *archive, uint64_t image_size, bool verified,
		     uint64_t offset, size_t len)
{
	uint8_t *buf = malloc(len);  /* exactly len: ASan sees any overrun */
	REQUIRE(buf != NULL || len == 0);
	pp_error err;
	int status = pp_pread(archive, buf, len, offset, &err);
	if (status == 0 && verified && len >= 2)
		check_split_read(archive, buf, len, offset);
	free(buf);
	bool inside = offset <= image_size && len <= image_size - offset;
	if (status)
		check_failure(status, &err);
	if (!inside)
		REQUIRE(status != 0 || len == 0);
	else if (verified)
		REQUIRE(status == 0);
}

static void read_around(pp_archive *archive, const pp_info *info,
			bool verified, uint64_t h)
{
	uint64_t size = info->uncompressed_size;
	size_t len = (size_t)(h >> 40) % READ_MAX;
	try_read(archive, size, verified, size ? h % size : 0, len);
	try_read(archive, size, verified, size - min_u64(size, len), len);
	try_read(archive, size, verified, size - min_u64(size, len / 2), len);
	try_read(archive, size, verified, UINT64_MAX - 1, 4);
	/* Reads that start just before a stored range cross its edges. */
	for (size_t i = 0; i < info->stored_count && i < 4; i++) {
		uint64_t start = info->stored[i].offset;
		try_read(archive, size, verified,
			 start - min_u64(start, len / 2), len);
		uint64_t run;
		pp_error err;
		int status = pp_stored_run(archive, start, &run, &err);
		if (status)
			check_failure(status, &err);
		else
			REQUIRE(run >= info->stored[i].length);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (input_fd < 0)
		open_input_file();
	store_input(data, size);

	pp_archive *archive;
	pp_error err;
	int status = pp_open(input_path, PP_OPEN_READ, &archive, &err);
	if (status) {
		check_failure(status, &err);
		REQUIRE(archive == NULL);
		return 0;
	}
	pp_info info;
	status = pp_get_info(archive, &info, &err);
	if (status) {
		check_failure(status, &err);
		pp_close(archive);
		return 0;
	}
	check_info(&info, size);
	status = pp_verify(archive, NULL, NULL, &err);
	if (status)
		check_failure(status, &err);
	read_around(archive, &info, status == 0, hash_input(data, size));
	pp_info_free(&info);
	pp_close(archive);
	return 0;
}
