/* io.c - reads and writes that finish the job or say why not. */
#include "io.h"
#include "array.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * The one loop of every read and write here: moves len bytes into `into`
 * (reading) or from `from` (writing) at offset, or at the file position
 * if offset is negative, going on after a signal or a short transfer.
 * Returns the bytes moved, fewer than len only where the file ended (a
 * read) or took nothing (a write), or -1 with errno set.
 */
static ssize_t transfer(int fd, uint8_t *into, const uint8_t *from,
			size_t len, off_t offset)
{
	size_t done = 0;
	while (done < len) {
		size_t left = len - done;
		off_t at = offset + (off_t)done;
		ssize_t n = into ?
			(offset < 0 ? read(fd, into + done, left) :
				      pread(fd, into + done, left, at)) :
			(offset < 0 ? write(fd, from + done, left) :
				      pwrite(fd, from + done, left, at));
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
	ssize_t put = transfer(fd, NULL, p, len, offset);
	if (put >= 0 && (size_t)put < len)
		errno = EIO;  /* nothing more was taken */
	return put >= 0 && (size_t)put == len ? 0 : -1;
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
	return transfer(fd, buf, NULL, len, offset);
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

char *pp_hidden_path_beside(const char *path, const char *suffix)
{
	/* dirname and basename may modify their argument: one copy each. */
	char *copy_dir = strdup(path), *copy_base = strdup(path);
	char *hidden = NULL;
	if (copy_dir && copy_base) {
		const char *dir = dirname(copy_dir), *base = basename(copy_base);
		size_t size = strlen(dir) + strlen(base) + strlen(suffix) +
			sizeof "/..";
		hidden = malloc(size);
		if (hidden)
			snprintf(hidden, size, "%s/.%s.%s", dir, base, suffix);
	}
	free(copy_dir);
	free(copy_base);
	return hidden;
}

/* Six characters of a file name that nobody can guess: from getrandom,
 * else from the clock and the process (O_EXCL keeps either safe). */
static void fill_random_name(char *x)
{
	static const char letters[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint8_t noise[6];
	if (getrandom(noise, sizeof noise, GRND_NONBLOCK) != (ssize_t)sizeof noise) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		uint64_t mix = (uint64_t)now.tv_nsec * 0x9E3779B97F4A7C15u ^
			(uint64_t)getpid() << 20 ^ (uint64_t)(uintptr_t)x;
		for (size_t i = 0; i < sizeof noise; i++, mix >>= 8)
			noise[i] = (uint8_t)mix;
	}
	for (size_t i = 0; i < sizeof noise; i++)
		x[i] = letters[noise[i] % (sizeof letters - 1)];
}

int pp_create_new_file(char *path, mode_t mode)
{
	size_t len = strlen(path);
	bool template = len >= 6 && strcmp(path + len - 6, "XXXXXX") == 0;
	for (int attempt = 0; attempt < 100; attempt++) {
		if (template)
			fill_random_name(path + len - 6);
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
			      O_CLOEXEC, mode);
		if (fd < 0 && errno == EEXIST && template)
			continue;
		if (fd < 0)
			return -1;
		/* O_EXCL made it; what it is now is checked, not assumed. */
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_nlink == 1 && st.st_uid == geteuid())
			return fd;
		close(fd);
		errno = EEXIST;
		return -1;
	}
	errno = EEXIST;
	return -1;
}

static int append_extent(pp_range **extents, size_t *count, size_t *capacity,
			 uint64_t start, uint64_t end, pp_error *err)
{
	if (*count > 0) {
		pp_range *last = &(*extents)[*count - 1];
		if (last->offset + last->length >= start) {
			last->length = PP_MAX(last->offset + last->length, end) -
				last->offset;
			return 0;
		}
	}
	pp_range *grown = pp_grow(*extents, *count, capacity, sizeof *grown, 16);
	if (!grown)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	*extents = grown;
	(*extents)[(*count)++] = (pp_range){ start, end - start };
	return 0;
}

/*
 * FIEMAP lists the extents the filesystem allocated, unwritten
 * (preallocated) ones included, which SEEK_DATA may call holes: bmaptool
 * create maps with FIEMAP, so this does too.  bmaptool syncs the file
 * first; this does not, as data not yet written back is listed anyway
 * (delayed allocation), and a sync of a freshly built image would cost
 * more than the pack.  1: no FIEMAP here.
 */
static int fiemap_extents(int fd, uint64_t base, uint64_t size,
			  pp_range **extents, size_t *count, size_t *capacity,
			  pp_error *err)
{
	enum { BATCH = 512 };
	struct fiemap *map = calloc(1, sizeof *map +
				    BATCH * sizeof(struct fiemap_extent));
	if (!map)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = 0;
	for (uint64_t pos = base; pos < base + size && status == 0;) {
		*map = (struct fiemap){
			.fm_start = pos, .fm_length = base + size - pos,
			.fm_extent_count = BATCH,
		};
		if (ioctl(fd, FS_IOC_FIEMAP, map)) {
			status = 1;
			break;
		}
		if (map->fm_mapped_extents == 0)
			break;
		bool last = false;
		for (unsigned i = 0; i < map->fm_mapped_extents && status == 0; i++) {
			const struct fiemap_extent *x = &map->fm_extents[i];
			uint64_t start = PP_MAX(x->fe_logical, base);
			uint64_t end = PP_MIN(x->fe_logical + x->fe_length,
					      base + size);
			if (start < end)
				status = append_extent(extents, count, capacity,
						       start - base, end - base,
						       err);
			pos = x->fe_logical + x->fe_length;
			last = x->fe_flags & FIEMAP_EXTENT_LAST;
		}
		if (last)
			break;
	}
	free(map);
	return status;
}

/* The same from SEEK_DATA and SEEK_HOLE, where there is no FIEMAP. */
static int seek_extents(int fd, uint64_t base, uint64_t size,
			pp_range **extents, size_t *count, size_t *capacity,
			pp_error *err)
{
	for (uint64_t pos = 0; pos < size;) {
		off_t data = lseek(fd, (off_t)(base + pos), SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;  /* only a hole up to the end */
		off_t hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
		uint64_t start, end;
		if (data < 0 || hole < 0) {
			/* No hole support here: all of the rest is data. */
			start = pos;
			end = size;
		} else {
			start = (uint64_t)data - base;
			end = PP_MIN((uint64_t)hole - base, size);
		}
		if (start >= end)
			break;
		int status = append_extent(extents, count, capacity, start, end,
					   err);
		if (status)
			return status;
		pos = end;
	}
	return 0;
}

int pp_seek_extents(int fd, uint64_t size, pp_range **extents, size_t *count,
		    pp_error *err)
{
	*extents = NULL;
	*count = 0;
	size_t capacity = 0;
	int status = seek_extents(fd, 0, size, extents, count, &capacity, err);
	if (status) {
		free(*extents);
		*extents = NULL;
		*count = 0;
	}
	return status;
}

int pp_data_extents(int fd, uint64_t base, uint64_t size, pp_range **extents,
		    size_t *count, pp_error *err)
{
	*extents = NULL;
	*count = 0;
	size_t capacity = 0;
	int status = fiemap_extents(fd, base, size, extents, count, &capacity,
				    err);
	if (status == 1) {
		*count = 0;
		status = seek_extents(fd, base, size, extents, count, &capacity,
				      err);
	}
	if (status) {
		free(*extents);
		*extents = NULL;
		*count = 0;
	}
	return status;
}
