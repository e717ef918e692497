/*
 * io.h - whole-buffer reads and writes of file descriptors, new files made
 * safely, and the data extents of a file (io.c).
 */
#ifndef PARTPACK_IO_H
#define PARTPACK_IO_H

#include "base.h"

#include <sys/types.h>

/* Read or write exactly len bytes; -1 with errno set otherwise (EIO at EOF). */
int pp_pread_full(int fd, void *buf, size_t len, uint64_t offset);
int pp_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset);
int pp_write_full(int fd, const void *buf, size_t len);
/* An O_DIRECTORY descriptor of the directory holding path, for fsync. */
int pp_open_directory_of(const char *path);
/* "DIR/.BASE.SUFFIX" for path DIR/BASE: a hidden file beside it (the undo
 * record, a temporary file), malloc'd; NULL when out of memory. */
char *pp_hidden_path_beside(const char *path, const char *suffix);
/*
 * Creates a file that did not exist, never through a symbolic link
 * (O_CREAT | O_EXCL | O_NOFOLLOW), opened for reading and writing, and
 * checks with fstat that it is a regular file of one link owned by this
 * process.  A path ending in "XXXXXX" is a template: those characters are
 * replaced at random (path is modified) until a new name is found, as
 * mkostemp does, but with mode (before the umask) instead of 0600.
 * Returns the descriptor, or -1 with errno set (EEXIST: the name is taken).
 */
int pp_create_new_file(char *path, mode_t mode);
/* Reads up to len bytes, stopping early only at end of input, at offset
 * (or, if it is negative, at the file position). */
ssize_t pp_pread_upto(int fd, void *buf, size_t len, off_t offset);

/* The allocated extents of a regular file's bytes [base, base + size),
 * relative to base, merged: its map of holes as bmaptool create sees it
 * (FIEMAP, else SEEK_DATA and SEEK_HOLE). */
int pp_data_extents(int fd, uint64_t base, uint64_t size, pp_range **extents,
		    size_t *count, pp_error *err);
/* The data of a file's first size bytes as SEEK_DATA and SEEK_HOLE say
 * (what reads as data, as cp copies it; all of it where the filesystem
 * has no holes), merged. */
int pp_seek_extents(int fd, uint64_t size, pp_range **extents, size_t *count,
		    pp_error *err);

/* Random access to a disk image, for reading its partition table:
 * 0 on success, non-zero on failure. */
typedef int (*pp_read_fn)(void *opaque, void *buf, size_t len, uint64_t offset);

#endif
