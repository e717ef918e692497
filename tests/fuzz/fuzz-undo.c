/*
 * fuzz-undo.c - libFuzzer harness for the undo-record reader: whatever the
 * bytes at ".NAME.partpatch-undo", recovery (pp_recover, which replays a
 * record onto the file beside it) either succeeds or fails with a status
 * and a message, never crashes, hangs or leaks, and keeps journal.c's
 * promises:
 *
 *   refused           the archive is byte for byte as it was, and the
 *                     record is still there
 *   recovered         the record is gone, the archive has its size, and
 *                     only bytes that an entry of the record covers differ
 *   never             a record not bound to the archive (the fuzzer's bytes
 *                     as they come: nobody can guess the SHA-256 of the
 *                     archive's ends) changes a byte of it
 *
 * Each input is tried twice: as it comes, then, if it parses as far as its
 * end marker, with the binding made right (the archive's size, device,
 * inode and filesystem ID written into its header, the entry count, the
 * hash of the ends and the CRC recomputed), so that the replay itself is
 * reached and must stay inside the entries' ranges.
 *
 * The archive is ARCHIVE_SIZE bytes of a pattern in a private temporary
 * directory (on /dev/shm where it can: recovery syncs); it need not be an
 * archive, as pp_recover does not parse it.
 * tests/fuzz/make-seeds.sh writes seed records for that size.
 */
#include "archio.h"
#include "archive.h"
#include "journal.h"
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <zlib.h>

#define ARCHIVE_SIZE (192u * 1024 + 123)   /* make-seeds.sh knows it */
#define HEADER_SIZE 40
#define END_MARKER UINT64_MAX

static uint8_t pattern[ARCHIVE_SIZE];
static uint8_t after[ARCHIVE_SIZE];
static char temp_dir[256], archive_path[300], record_path[320];
static int archive_fd = -1;

static void die(const char *what)
{
	fprintf(stderr, "fuzz-undo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void set_up(void)
{
	/* In memory where there is a tmpfs: recovery syncs, and a sync of a
	 * disk file would cost more than the rest of a run. */
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
		getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(temp_dir, sizeof temp_dir, "%s/fuzz-undo.XXXXXX", base);
	if (!mkdtemp(temp_dir))
		die("mkdtemp");
	snprintf(archive_path, sizeof archive_path, "%s/a.xz", temp_dir);
	snprintf(record_path, sizeof record_path, "%s/.a.xz.partpatch-undo",
		 temp_dir);
	uint64_t state = 0x9E3779B97F4A7C15ULL;
	for (size_t i = 0; i < ARCHIVE_SIZE; i++) {
		state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
		pattern[i] = (uint8_t)(state * 2685821657736338717ULL >> 56);
	}
	archive_fd = open(archive_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
			  0600);
	if (archive_fd < 0)
		die(archive_path);
}

static void tear_down(void)
{
	unlink(record_path);
	unlink(archive_path);
	rmdir(temp_dir);
}

/* The archive as the pattern, in place (same inode), and the record. */
static void reset(const uint8_t *record, size_t size)
{
	if (pwrite(archive_fd, pattern, ARCHIVE_SIZE, 0) != ARCHIVE_SIZE ||
	    ftruncate(archive_fd, ARCHIVE_SIZE))
		die(archive_path);
	int fd = open(record_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		      0600);
	if (fd < 0 || (size && write(fd, record, size) != (ssize_t)size) ||
	    close(fd))
		die(record_path);
}

/* Where the record's entries lie, for the binding and for the promise
 * that the replay stays inside them: false if no end marker is reached. */
static bool list_entries(const uint8_t *data, size_t size, pp_range *entries,
			 size_t max, size_t *count, size_t *end_at)
{
	size_t at = HEADER_SIZE;
	*count = 0;
	while (at + 12 <= size) {
		uint64_t offset = pp_get_le64(data + at);
		uint32_t len = pp_get_le32(data + at + 8);
		if (offset == END_MARKER) {
			*end_at = at;
			return true;
		}
		if (*count == max || len > size - at - 12)
			return false;
		entries[(*count)++] = (pp_range){ offset, len };
		at += 12 + (size_t)len;
	}
	return false;
}

/* The record with its binding made right; NULL if it cannot be. */
static uint8_t *bind(const uint8_t *data, size_t size, pp_range *entries,
		     size_t max, size_t *count, size_t *bound_len)
{
	size_t end_at;
	if (size < HEADER_SIZE || memcmp(data, "PPUNDO02", 8) != 0 ||
	    !list_entries(data, size, entries, max, count, &end_at))
		return NULL;
	size_t bound_size = end_at + 12 + 32 + 4;
	*bound_len = bound_size;
	uint8_t *bound = malloc(bound_size);
	if (!bound)
		return NULL;
	memcpy(bound, data, PP_MIN(size, end_at + 12));
	struct stat st;
	struct statfs fs;
	if (fstat(archive_fd, &st) || fstatfs(archive_fd, &fs))
		die(archive_path);
	pp_put_le64(bound + 8, ARCHIVE_SIZE);
	pp_put_le64(bound + 16, (uint64_t)st.st_dev);
	pp_put_le64(bound + 24, (uint64_t)st.st_ino);
	pp_put_le64(bound + 32, (uint64_t)(uint32_t)fs.f_fsid.__val[0] |
		    (uint64_t)(uint32_t)fs.f_fsid.__val[1] << 32);
	pp_put_le32(bound + end_at + 8, (uint32_t)*count);
	/* The hash of the ends through the library's own function, over
	 * the archive as the pattern. */
	pp_archive archive = { .path = archive_path, .file_size = ARCHIVE_SIZE };
	pp_archive_use_fd(&archive, archive_fd);
	if (pp_journal_hash_ends(&archive, ARCHIVE_SIZE, entries, *count,
				 bound + end_at + 12, NULL))
		die("hash");
	uint32_t crc = (uint32_t)crc32(0, bound, (uInt)(bound_size - 4));
	pp_put_le32(bound + bound_size - 4, crc);
	return bound;
}

/* Whether after differs from the pattern only where an entry lies: the
 * pattern laid over every entry's range must give the pattern back. */
static bool only_entries_changed(const pp_range *entries, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		uint64_t from = PP_MIN(entries[i].offset, ARCHIVE_SIZE);
		uint64_t to = PP_MIN(from + PP_MIN(entries[i].length,
						   ARCHIVE_SIZE), ARCHIVE_SIZE);
		memcpy(after + from, pattern + from, (size_t)(to - from));
	}
	return memcmp(after, pattern, ARCHIVE_SIZE) == 0;
}

/* Recovery on the record, and its promises; entries NULL: the record is
 * not bound, so the archive must not change. */
static void recover(const uint8_t *record, size_t size,
		    const pp_range *entries, size_t count)
{
	reset(record, size);
	bool recovered = false;
	pp_error err = { 0 };
	int status = pp_recover(archive_path, &recovered, &err);
	struct stat st;
	if (fstat(archive_fd, &st) ||
	    pread(archive_fd, after, ARCHIVE_SIZE, 0) != ARCHIVE_SIZE)
		die(archive_path);
	REQUIRE(st.st_size == ARCHIVE_SIZE);
	bool record_left = access(record_path, F_OK) == 0;
	if (status != 0) {
		REQUIRE(status < 0 && err.status == status && err.message[0]);
		REQUIRE(memcmp(after, pattern, ARCHIVE_SIZE) == 0);
		REQUIRE(record_left);
		return;
	}
	REQUIRE(recovered && !record_left);
	REQUIRE(only_entries_changed(entries, entries ? count : 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static pp_range entries[4096];
	if (!ready) {
		set_up();
		atexit(tear_down);
		ready = true;
	}
	recover(data, size, NULL, 0);
	size_t count, bound_len;
	uint8_t *bound = bind(data, size, entries, 4096, &count, &bound_len);
	if (bound) {
		recover(bound, bound_len, entries, count);
		free(bound);
	}
	return 0;
}
