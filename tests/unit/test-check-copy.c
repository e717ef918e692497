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
#include "internal.h"
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

static char dir[] = "/tmp/partpack-test-check-copy-XXXXXX";
static char image_path[256], archive_path[256];

static uint8_t *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	off_t size = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);
	uint8_t *data = size < 0 ? NULL : malloc((size_t)size + 1);
	if (!data || pp_pread_full(fd, data, (size_t)size, 0))
		abort();
	close(fd);
	*len = (size_t)size;
	return data;
}

/* An xz archive of random bytes, all stored, with zero padding after. */
static void make_archive(void)
{
	unsigned long long seed = 42;
	uint8_t *image = malloc(IMAGE_SIZE);
	for (size_t i = 0; i < IMAGE_SIZE; i++)
		image[i] = (uint8_t)unit_random(&seed);
	int in = open(image_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int out = open(archive_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (in < 0 || out < 0 || pp_write_full(in, image, IMAGE_SIZE) ||
	    lseek(in, 0, SEEK_SET) != 0)
		abort();
	pp_range keep = { 0, IMAGE_SIZE };
	pp_pack_options options;
	pp_pack_options_init(&options);
	options.block_size = BLOCK_SIZE;
	options.keep = &keep;
	options.keep_count = 1;
	options.threads = 1;
	pp_error err;
	uint8_t zeros[PADDING] = { 0 };
	if (pp_pack(in, image_path, out, archive_path, &options, &err) ||
	    pp_write_full(out, zeros, sizeof zeros))
		abort();
	close(in);
	close(out);
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

static void write_all(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0 || pp_write_full(fd, data, len))
		abort();
	close(fd);
}

static bool same(const uint8_t *a, size_t a_len, const uint8_t *b,
		 size_t b_len)
{
	return a && b && a_len == b_len && memcmp(a, b, a_len) == 0;
}

/* Old or new, never between: the crash tests' rule (crash.sh). */
static void test_undo_restores_both(void)
{
	size_t old_len, new_len;
	uint8_t *old = read_all(archive_path, &old_len);
	bool ran = run_cut_short(0) == 0;
	uint8_t *new = read_all(archive_path, &new_len);
	CHECK(ran && !same(old, old_len, new, new_len),
	      "an uninterrupted patch changes the archive");
	int cuts = 0, exit_status = 99;
	bool all_whole = true, some_restored = false;
	for (int k = 1; exit_status == 99 && k < 100; k++) {
		write_all(archive_path, old, old_len);
		exit_status = run_cut_short(k);
		if (exit_status != 99)
			break;
		cuts++;
		size_t now_len;
		uint8_t *now = recover() ? read_all(archive_path, &now_len) :
					   NULL;
		bool is_old = same(now, now_len, old, old_len);
		some_restored |= is_old;
		all_whole &= is_old || same(now, now_len, new, new_len);
		free(now);
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
	size_t old_len, now_len;
	uint8_t *old = read_all(archive_path, &old_len);
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
	uint8_t *now = read_all(archive_path, &now_len);
	CHECK(status == PP_ERR_FORMAT && strstr(err.message, "unknown type"),
	      "a check of unknown kind is refused: %s", err.message);
	CHECK(same(old, old_len, now, now_len), "... with nothing written");
	free(old);
	free(now);
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
	if (!mkdtemp(dir))
		abort();
	snprintf(image_path, sizeof image_path, "%s/image", dir);
	snprintf(archive_path, sizeof archive_path, "%s/image.xz", dir);
	make_archive();
	test_undo_restores_both();
	make_archive();
	test_both_written();
	make_archive();
	test_unknown_kind_refused();
	char command[512];
	snprintf(command, sizeof command, "rm -rf %s", dir);
	return system(command) == 0 ? unit_done() : EXIT_FAILURE;
}
