/*
 * test-check-copy.c - a block whose check is kept in two places (zstd's
 * seek table repeats each frame's): the patcher writes the new check to
 * both and its undo record restores both, wherever a patch is cut short.
 *
 * No container has such blocks yet, so the test gives one to an xz
 * archive: zero stream padding after the stream is a valid place to put
 * the copy, and stock readers ignore it.  Likewise a block whose check is
 * of no kind partpack computes (a reserved xz check ID) must be refused
 * with nothing written.
 */
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "io.h"
#include "unit.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define IMAGE_SIZE (64u << 10)
#define BLOCK_SIZE (16u << 10)
#define PADDING 16
#define ARCHIVE "image.xz"      /* in the scratch directory */

/* The archive's path: in the scratch directory, or the one a child
 * patching it (--patch PATH) is given. */
static char archive_path[512];

/* An xz archive of random bytes, all stored, with zero padding after. */
static void make_archive(void)
{
	unsigned long long seed = 42;
	uint8_t *image = malloc(IMAGE_SIZE);
	unit_noise(image, IMAGE_SIZE, &seed);
	unit_write_file("image", image, IMAGE_SIZE);
	pp_range keep = { 0, IMAGE_SIZE };
	pp_pack_options options = unit_options(PP_FORMAT_XZ, PP_CHECK_CRC64,
					       BLOCK_SIZE, &keep, 1);
	options.threads = 1;
	if (unit_pack("image", ARCHIVE, &options, NULL))
		abort();
	size_t len;
	uint8_t *archive = unit_read_file(ARCHIVE, &len);
	archive = realloc(archive, len + PADDING);
	memset(archive + len, 0, PADDING);
	unit_write_file(ARCHIVE, archive, len + PADDING);
	free(archive);
	free(image);
}

/* Opens the archive for patching, block 1's check copied into the
 * padding; returns the copy's offset. */
static pp_archive *open_with_copy(uint64_t *copy_offset)
{
	pp_archive *archive;
	pp_error err;
	if (pp_open(archive_path, PP_OPEN_WRITE, &archive, &err))
		return NULL;
	*copy_offset = archive->file_size - PADDING;
	archive->blocks[1].check_copy_offset = *copy_offset;
	return archive;
}

static int patch_block_1(pp_archive *archive, pp_patch_report *report)
{
	uint8_t data[100];
	memset(data, 0xa5, sizeof data);
	pp_error err;
	return pp_patch(archive, BLOCK_SIZE + 1000, data, sizeof data, 0,
			report, &err);
}

static void test_both_written(void)
{
	uint64_t copy_offset;
	pp_archive *archive = open_with_copy(&copy_offset);
	pp_patch_report report;
	CHECK(archive && patch_block_1(archive, &report) == 0,
	      "a patch of a block with a check copy succeeds");
	if (!archive)
		return;
	const pp_block *b = &archive->blocks[1];
	uint8_t check[8], copy[8];
	CHECK(pp_archive_read(archive, check, 8, b->check_offset) == 0 &&
	      pp_archive_read(archive, copy, 8, copy_offset) == 0 &&
	      memcmp(check, copy, 8) == 0,
	      "the new check is written to both places");
	CHECK(report.undo_bytes == 100 + 2 * 8,
	      "the undo record saves the data and both old checks");
	pp_error err;
	CHECK(pp_verify(archive, NULL, NULL, &err) == 0,
	      "the archive verifies after the patch");
	pp_close(archive);
}

/*
 * Cuts the patch short at its k-th write, sync or unlink: runs this test
 * again as a child that only patches, with the crash tests' shim
 * (tests/faultinject.c, built beside this binary) preloaded.  99 if it was
 * cut, 0 if the patch finished first.
 */
static int run_cut_short(int k)
{
	pid_t pid = fork();
	if (pid == 0) {
		char self[PATH_MAX], shim[PATH_MAX + 32], preload[2 * PATH_MAX];
		char setting[16], asan[512];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n < 0)
			_exit(1);
		self[n] = '\0';
		char *copy = strdup(self);
		snprintf(shim, sizeof shim, "%s/faultinject.so", dirname(copy));
		/* A sanitizer runtime wants to be loaded first. */
		const char *old = getenv("LD_PRELOAD");
		snprintf(preload, sizeof preload, "%s%s%s", shim,
			 old ? ":" : "", old ? old : "");
		const char *options = getenv("ASAN_OPTIONS");
		snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0",
			 options ? options : "", options ? ":" : "");
		snprintf(setting, sizeof setting, "%d", k);
		setenv("LD_PRELOAD", preload, 1);
		setenv("ASAN_OPTIONS", asan, 1);
		setenv("PARTPACK_FAULT_AFTER", setting, 1);
		execl(self, self, "--patch", archive_path, (char *)NULL);
		_exit(1);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static bool recover(void)
{
	bool recovered;
	pp_error err;
	return pp_recover(archive_path, &recovered, &err) == 0;
}

/* Old or new, never between: the crash tests' rule (crash.sh). */
static void test_undo_restores_both(void)
{
	size_t old_len, new_len;
	uint8_t *old = unit_read_file(ARCHIVE, &old_len);
	bool ran = run_cut_short(0) == 0;
	uint8_t *new = unit_read_file(ARCHIVE, &new_len);
	CHECK(ran && !unit_same_file(ARCHIVE, old, old_len),
	      "an uninterrupted patch changes the archive");
	int cuts = 0, exit_status = 99;
	bool all_whole = true, some_restored = false;
	for (int k = 1; exit_status == 99 && k < 100; k++) {
		unit_write_file(ARCHIVE, old, old_len);
		exit_status = run_cut_short(k);
		if (exit_status != 99)
			break;
		cuts++;
		bool recovered = recover();
		bool is_old = recovered && unit_same_file(ARCHIVE, old, old_len);
		bool is_new = recovered && unit_same_file(ARCHIVE, new, new_len);
		some_restored |= is_old;
		all_whole &= is_old || is_new;
	}
	CHECK(cuts > 3 && exit_status == 0,
	      "the patch was cut short at each of its %d steps, then ran "
	      "through", cuts);
	CHECK(all_whole && some_restored, "wherever the patch stopped, "
	      "recovery leaves the old archive, check and copy, or the new");
	free(old);
	free(new);
}

static void test_unknown_kind_refused(void)
{
	size_t old_len;
	uint8_t *old = unit_read_file(ARCHIVE, &old_len);
	pp_archive *archive;
	pp_error err;
	int status = pp_open(archive_path, PP_OPEN_WRITE, &archive, &err);
	if (status == 0) {
		archive->blocks[1].check = (enum pp_check)7;   /* 16 bytes */
		uint8_t data[100] = { 0 };
		status = pp_patch(archive, BLOCK_SIZE + 1000, data,
				  sizeof data, 0, NULL, &err);
		pp_close(archive);
	}
	CHECK(status == PP_ERR_FORMAT && strstr(err.message, "unknown type"),
	      "a check of unknown kind is refused: %s", err.message);
	CHECK(unit_same_file(ARCHIVE, old, old_len),
	      "... with nothing written");
	free(old);
}

/* The child of run_cut_short: patches, nothing else. */
static int patch_only(const char *path)
{
	snprintf(archive_path, sizeof archive_path, "%s", path);
	uint64_t copy_offset;
	pp_archive *archive = open_with_copy(&copy_offset);
	pp_patch_report report;
	int status = archive && patch_block_1(archive, &report) == 0 ? 0 : 1;
	pp_close(archive);
	return status;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--patch") == 0)
		return patch_only(argv[2]);
	unit_mkdir("test-check-copy");
	unit_path_to(archive_path, sizeof archive_path, ARCHIVE);
	make_archive();
	test_undo_restores_both();
	make_archive();
	test_both_written();
	make_archive();
	test_unknown_kind_refused();
	return unit_rmdir() == 0 ? unit_done() : EXIT_FAILURE;
}
