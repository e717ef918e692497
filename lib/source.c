/*
 * source.c - the image a pack reads: a raw file read directly, or what
 * qemu-nbd serves.
 *
 * pp_source_open asks qemu-img what the file is (qemu.c).  Raw stays on
 * the direct path, the one pp_pack has always taken: pread at random, holes
 * from SEEK_DATA, no other process.  Anything else is opened by qemu-nbd
 * (nbdsource.c), one connection per online core when the server offers
 * multi-conn, and its holes are the extents block status says read as
 * zeros, listed once on first use.
 */
#include "source.h"
#include "array.h"
#include "error.h"
#include "io.h"
#include "nbdsource.h"
#include "pool.h"
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The most qemu-nbd connections a source opens. */
#define SOURCE_CONNECTIONS_MAX 8

void pp_source_of_fd(pp_source *source, int fd, const char *name)
{
	*source = (pp_source){ .name = (char *)name, .fd = fd };
	snprintf(source->format, sizeof source->format, "raw");
	struct stat st;
	off_t start = lseek(fd, 0, SEEK_CUR);
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && start >= 0 &&
	    start <= st.st_size) {
		source->seekable = true;
		source->base = (uint64_t)start;
		source->size = (uint64_t)(st.st_size - start);
	}
}

void pp_source_release(pp_source *source)
{
	pp_nbd_close(source->nbd);
	free(source->data);
	if (source->owns_fd && source->fd >= 0)
		close(source->fd);
}

/* A raw file or block device opened by path: seekable, from byte 0. */
static int open_direct(pp_source *source, pp_error *err)
{
	source->fd = open(source->path, O_RDONLY | O_CLOEXEC);
	if (source->fd < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", source->name);
	source->owns_fd = true;
	off_t end = lseek(source->fd, 0, SEEK_END);
	if (end < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot find its size",
				     source->name);
	source->seekable = true;
	source->size = (uint64_t)end;
	return 0;
}

int pp_source_open(const char *path, const char *format, int flags,
		   pp_source **out, pp_error *err)
{
	*out = NULL;
	if (flags != 0 || !path)
		return pp_fail(err, PP_ERR_USAGE, "pp_source_open: %s",
			       path ? "flags must be 0" : "no path");
	pp_source *source = calloc(1, sizeof *source);
	if (!source || !(source->path = strdup(path))) {
		free(source);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	source->name = source->path;
	source->fd = -1;
	bool have_qemu;
	int status = pp_qemu_probe(path, format, source->format, &have_qemu,
				   err);
	if (status == 0 && strcmp(source->format, "raw") == 0) {
		status = open_direct(source, err);
	} else if (status == 0) {
		unsigned connections = PP_MIN(pp_online_cores(),
					      SOURCE_CONNECTIONS_MAX);
		status = pp_nbd_open(path, source->format, connections,
				     &source->nbd, err);
		if (status == 0) {
			source->seekable = true;
			source->size = pp_nbd_size(source->nbd);
		}
	}
	if (status) {
		pp_source_close(source);
		return status;
	}
	*out = source;
	return 0;
}

void pp_source_close(pp_source *source)
{
	if (!source)
		return;
	pp_source_release(source);
	free(source->path);
	free(source);
}

int pp_source_get_info(pp_source *source, pp_source_info *info,
		       pp_error *err)
{
	(void)err;
	*info = (pp_source_info){
		.format = source->format,
		.size = source->size,
		.direct = source->nbd == NULL,
	};
	return 0;
}

int pp_source_read(pp_source *source, void *buf, size_t len, uint64_t offset,
		   pp_error *err)
{
	if (!source->seekable)
		return pp_fail(err, PP_ERR_USAGE, "%s: not seekable",
			       source->name);
	if (source->nbd)
		return pp_nbd_pread(source->nbd, buf, len, offset, err);
	ssize_t got = pp_pread_upto(source->fd, buf, len,
				    (off_t)(source->base + offset));
	if (got < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     source->name);
	if ((size_t)got < len)
		return pp_fail(err, PP_ERR_IO, "%s: ends at byte %llu, before "
			       "byte %llu (did it shrink while being read?)",
			       source->name,
			       (unsigned long long)(offset + (uint64_t)got),
			       (unsigned long long)(offset + len));
	return 0;
}

int pp_source_pread(pp_source *source, void *buf, size_t len,
		    uint64_t offset, pp_error *err)
{
	if (offset > source->size || len > source->size - offset)
		return pp_fail(err, PP_ERR_USAGE, "%s: %zu bytes at %llu are "
			       "past the end of the image (%llu bytes)",
			       source->name, len, (unsigned long long)offset,
			       (unsigned long long)source->size);
	return pp_source_read(source, buf, len, offset, err);
}

ssize_t pp_source_read_stream(pp_source *source, void *buf, size_t len)
{
	return pp_pread_upto(source->fd, buf, len, -1);
}

/* qemu's data extents, listed on first use. */
static int load_data(pp_source *source, pp_error *err)
{
	if (source->data_known)
		return 0;
	int status = pp_nbd_data_extents(source->nbd, &source->data,
					 &source->data_count, err);
	source->data_known = status == 0;
	return status;
}

uint64_t pp_source_next_data(pp_source *source, uint64_t pos)
{
	if (!source->nbd) {
		off_t data = lseek(source->fd, (off_t)(source->base + pos),
				   SEEK_DATA);
		/* ENXIO: only a hole up to the end; other errors: data */
		return data >= 0 ? (uint64_t)data - source->base :
			errno == ENXIO ? source->size : pos;
	}
	if (load_data(source, NULL))
		return pos;
	/* The first extent that ends after pos (they are sorted). */
	size_t low = pp_first_range_after(source->data, source->data_count,
					  pos);
	if (low == source->data_count)
		return source->size;
	return PP_MAX(pos, source->data[low].offset);
}

int pp_source_data_extents(pp_source *source, pp_range **extents,
			   size_t *count, pp_error *err)
{
	if (!source->nbd)
		return pp_data_extents(source->fd, source->base, source->size,
				       extents, count, err);
	int status = load_data(source, err);
	*extents = NULL;
	*count = 0;
	if (status || source->data_count == 0)
		return status;
	*extents = malloc(source->data_count * sizeof **extents);
	if (!*extents)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	memcpy(*extents, source->data, source->data_count * sizeof **extents);
	*count = source->data_count;
	return 0;
}
