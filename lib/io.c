/* io.c - reads and writes that finish the job or say why not. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pp_pread_full(int fd, void *buf, size_t len, uint64_t offset)
{
	ssize_t got = pp_pread_upto(fd, buf, len, (off_t)offset);
	if (got >= 0 && (size_t)got < len)
		errno = EIO;  /* the file ended early: treat as unreadable */
	return got >= 0 && (size_t)got == len ? 0 : -1;
}

/* Writes all of buf at offset, or at the file position if it is negative. */
static int write_all(int fd, const uint8_t *p, size_t len, off_t offset)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = offset < 0 ? write(fd, p + done, len - done) :
			pwrite(fd, p + done, len - done, offset + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

int pp_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset)
{
	return write_all(fd, buf, len, (off_t)offset);
}

int pp_write_full(int fd, const void *buf, size_t len)
{
	return write_all(fd, buf, len, -1);
}

ssize_t pp_pread_upto(int fd, void *buf, size_t len, off_t offset)
{
	uint8_t *p = buf;
	size_t done = 0;
	while (done < len) {
		ssize_t n = offset < 0 ? read(fd, p + done, len - done) :
			pread(fd, p + done, len - done, offset + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int pp_open_directory_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	return fd;
}
