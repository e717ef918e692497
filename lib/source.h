/*
 * source.h - the image a pack reads (source.c).
 *
 * A source is a raw file or block device read directly (its holes found
 * with SEEK_DATA), a pipe read once in order, or any image qemu reads,
 * served by qemu-nbd (nbdsource.c).  The packer and the selectors read a
 * source, never a path: the same bytes whatever the image's format, so the
 * pack of a qcow2 is the pack of its raw image, byte for byte.
 */
#ifndef PARTPACK_SOURCE_H
#define PARTPACK_SOURCE_H

#include "nbdsource.h"
#include "qemu.h"

#include <sys/types.h>

struct pp_source {
	char *name;                 /* names the image in messages */
	char *path;                 /* what libguestfs opens; NULL: a pipe */
	char format[PP_QEMU_FORMAT_MAX];    /* qemu's name: "raw", "qcow2" */
	bool seekable;              /* random access; else read in order */
	uint64_t size;              /* if seekable */
	int fd;                     /* a raw image's descriptor, or -1 */
	bool owns_fd;
	uint64_t base;              /* file offset of image byte 0 */
	pp_nbd *nbd;                /* through qemu-nbd, or NULL */
	pp_range *data;             /* qemu's data extents, on first use */
	size_t data_count;
	bool data_known;
};

/*
 * The source of an image on fd from its current position, as pp_pack has
 * always read it: a regular file is read at random and its holes skipped,
 * anything else is a stream.  fd stays the caller's.
 */
void pp_source_of_fd(pp_source *source, int fd, const char *name);
/* Releases what pp_source_of_fd set up. */
void pp_source_release(pp_source *source);

/* Reads exactly len bytes at offset of a seekable source; thread-safe. */
int pp_source_read(pp_source *source, void *buf, size_t len, uint64_t offset,
		   pp_error *err);
/* Reads up to len bytes of a stream, fewer only at its end (-1: error). */
ssize_t pp_source_read_stream(pp_source *source, void *buf, size_t len);
/* Where data may start at or after pos (size if nowhere): the bytes before
 * are zeros.  Errors answer pos: all data.  Not thread-safe. */
uint64_t pp_source_next_data(pp_source *source, uint64_t pos);
/* Its data extents, as pp_data_extents; *extents is malloc'd. */
int pp_source_data_extents(pp_source *source, pp_range **extents,
			   size_t *count, pp_error *err);

#endif
