/*
 * remote.h - an archive read from elsewhere: a URL (http.c), or a local
 * file read the same way, for fetching (fetch.c) and for pp_open_url.
 *
 * The archive is opened with pp_open_io on the remote's reads.  Two things
 * change for a URL, where every read may cost a request: the container's
 * stored extents are the layout its sizes imply (stored_layout, reading
 * nothing), and checks of the index that cost a read per block are
 * skipped (trust_index): the fetcher decodes every block it takes and so
 * proves it.  Bytes the fetcher has already brought in can be staged: a
 * file holding them at their own offsets, from which reads are then served.
 *
 * Threads: reads (through the archive) and pp_remote_fetch may run on
 * several threads at once; staging is locked.
 */
#ifndef PARTPACK_REMOTE_H
#define PARTPACK_REMOTE_H

#include "http.h"

typedef struct pp_remote pp_remote;

typedef struct pp_remote_options {
	unsigned connections;       /* for a URL; 0: the default */
	const char *spill_dir;      /* see pp_http_options */
} pp_remote_options;

/* Opens the archive at location (a URL or a path) for reading.  The remote
 * belongs to the archive and goes with pp_close. */
int pp_remote_open(const char *location, const pp_remote_options *options,
		   pp_archive **archive, pp_error *err);
/* The remote of an archive opened by pp_remote_open, else NULL. */
pp_remote *pp_remote_of(const pp_archive *archive);
/* The connection of a URL; NULL for a local file. */
pp_http *pp_remote_http(const pp_remote *remote);
/* The validator (see pp_http_validator), "" for a local file. */
const char *pp_remote_validator(const pp_remote *remote);

/* Bytes [offset, offset + length) of the archive lie at the same offsets
 * in fd (which must stay open until the archive is closed): reads there are
 * served from it from now on. */
int pp_remote_stage(pp_remote *remote, int fd, uint64_t offset,
		    uint64_t length, pp_error *err);

/* Whether [offset, offset + length) is all staged. */
bool pp_remote_is_staged(pp_remote *remote, uint64_t offset, uint64_t length);

/* Reads bytes without a request: staged, kept by the connection, or
 * from a local file.  false (nothing read) when that would take one. */
bool pp_remote_cached(pp_remote *remote, void *buf, size_t len,
		      uint64_t offset);

/* As pp_http_fetch; for a local file the ranges are read in pieces. */
int pp_remote_fetch(pp_remote *remote, const pp_range *ranges, size_t count,
		    pp_http_sink_fn sink, void *opaque, pp_error *err);

/* A document beside the archive (see pp_http_get_document); for a local
 * file, a file of at most max bytes; *found false when there is none. */
int pp_remote_get_document(pp_remote *remote, const char *location,
			   size_t max, char **text, size_t *len, bool *found,
			   pp_error *err);

/* Requests made and bytes received; zeros for a local file. */
void pp_remote_stats(const pp_remote *remote, uint64_t *requests,
		     uint64_t *bytes);

#endif
