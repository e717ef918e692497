/*
 * faultinject.c - stops a process dead at its k-th write, sync, unlink or
 * rename, for the crash tests; loaded with LD_PRELOAD, never linked into
 * the library or the tools (tests/lib.sh: inject_faults).
 *
 * With PARTPACK_FAULT_AFTER=k the k-th call of write, pwrite, fsync,
 * fdatasync, unlink or rename on anything but standard input, output and
 * error ends the process with _exit(99), before the call, as if it were
 * killed there.  A patch makes no such call before it starts writing its
 * undo record, so k = 1, 2, ... interrupts it at every write, sync and
 * unlink in turn; a run that completes with status 0 means every point was
 * tried.  Without the variable (or with k <= 0) every call goes through.
 *
 * With PARTPACK_FAULT_ERRNO=e as well, the k-th call fails instead, with
 * errno e (5 is EIO), as a failing disk would, and says so on standard
 * error ("faultinject: call k (write) of process PID fails"); the process
 * goes on, and every later call goes through.
 *
 * With PARTPACK_FAULT_EIO=SUFFIX, read, pread and fread of a file whose
 * path ends in SUFFIX fail with EIO, as a bad sector would: what a reader
 * makes of a read error, as against the end of the file.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static long remaining = -1, point;
static int fail_errno;

/* Called before each counted call of name: exits at the k-th, or makes
 * it fail (true, errno set). */
static bool fault_point(const char *name)
{
	if (remaining == -1) {
		const char *setting = getenv("PARTPACK_FAULT_AFTER");
		const char *error = getenv("PARTPACK_FAULT_ERRNO");
		remaining = setting ? atol(setting) : 0;
		if (remaining < 0)
			remaining = 0;
		fail_errno = error ? atoi(error) : 0;
	}
	point++;
	if (remaining == 0 || --remaining > 0)
		return false;
	if (fail_errno <= 0)
		_exit(99);
	dprintf(STDERR_FILENO, "faultinject: call %ld (%s) of process %ld "
		"fails\n", point, name, (long)getpid());
	errno = fail_errno;
	return true;
}

/* The next definition of name: libc's, or a sanitizer's in front of it. */
static void *next(const char *name)
{
	void *function = dlsym(RTLD_NEXT, name);
	if (!function)
		_exit(98);
	return function;
}

/* Defines name, which counts a fault point when `counted` holds and then
 * calls the real name, or fails. */
#define COUNTED(ret, name, params, args, counted)                             \
	ret name params                                                       \
	{                                                                     \
		static ret (*real) params;                                    \
		if (!real)                                                    \
			real = (ret (*) params)next(#name);                   \
		if ((counted) && fault_point(#name))                          \
			return -1;                                            \
		return real args;                                             \
	}

/* Writes and syncs of files; the standard streams (messages) do not count. */
COUNTED(ssize_t, write, (int fd, const void *buf, size_t len),
	(fd, buf, len), fd > STDERR_FILENO)
COUNTED(ssize_t, pwrite, (int fd, const void *buf, size_t len, off_t offset),
	(fd, buf, len, offset), fd > STDERR_FILENO)
COUNTED(ssize_t, pwrite64,
	(int fd, const void *buf, size_t len, off64_t offset),
	(fd, buf, len, offset), fd > STDERR_FILENO)
COUNTED(int, fsync, (int fd), (fd), fd > STDERR_FILENO)
COUNTED(int, fdatasync, (int fd), (fd), fd > STDERR_FILENO)
COUNTED(int, unlink, (const char *path), (path), true)
COUNTED(int, rename, (const char *from, const char *to), (from, to), true)

/* Whether fd is a file whose reads PARTPACK_FAULT_EIO makes fail. */
static bool read_fails(int fd)
{
	const char *suffix = getenv("PARTPACK_FAULT_EIO");
	if (!suffix || !*suffix || fd <= STDERR_FILENO)
		return false;
	char link[64], target[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof target - 1);
	size_t len = strlen(suffix);
	if (n < 0 || (size_t)n < len)
		return false;
	target[n] = '\0';
	return strcmp(target + n - len, suffix) == 0;
}

/* Defines name, which fails with EIO (returning failed) when reading fd
 * fails, and otherwise calls the real name. */
#define FAILING(ret, name, params, args, fd, failed)                          \
	ret name params                                                       \
	{                                                                     \
		static ret (*real) params;                                    \
		if (!real)                                                    \
			real = (ret (*) params)next(#name);                   \
		if (read_fails(fd)) {                                         \
			errno = EIO;                                          \
			return failed;                                        \
		}                                                             \
		return real args;                                             \
	}

FAILING(ssize_t, read, (int fd, void *buf, size_t len), (fd, buf, len), fd, -1)
FAILING(ssize_t, pread, (int fd, void *buf, size_t len, off_t offset),
	(fd, buf, len, offset), fd, -1)
FAILING(ssize_t, pread64, (int fd, void *buf, size_t len, off64_t offset),
	(fd, buf, len, offset), fd, -1)
FAILING(size_t, fread, (void *buf, size_t size, size_t n, FILE *file),
	(buf, size, n, file), fileno(file), 0)
