/*
 * remote.c - an archive read from a URL or, the same way, from a local
 * file (remote.h); pp_open_url.
 *
 * The archive is opened on this file's reads with pp_open_io, then given
 * a copy of its container's operations with these changes.  For a URL the
 * stored extents come from stored_layout (the layout the block table's
 * sizes imply, which costs no request) instead of hopping through chunk
 * headers (which costs one per chunk), trust_index skips checks of the
 * index that read every block's header, and a block decoded whole is
 * asked for in one request.  For both, release also frees the remote:
 * pp_close of the last handle is the end of it, as it is for anything
 * else the archive owns.
 */
#include "remote.h"
#include "archive.h"
#include "array.h"
#include "beside.h"
#include "container.h"
#include "error.h"
#include "format.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMATS_MAX 8
#define LOCAL_PIECE (1u << 20)

struct pp_remote {
	pp_http *http;              /* NULL: a local file */
	int fd;                     /* the local file, else -1 */
	char *name;
	uint64_t size;
	pthread_mutex_t lock;       /* the staged ranges */
	int staged_fd;
	pp_range *staged;           /* sorted, merged where they touch */
	size_t staged_count;
	size_t staged_capacity;
};

/* ---- reads ----------------------------------------------------------------- */

/* Whether [offset, offset + len) is staged (under the lock). */
static bool is_staged(const pp_remote *remote, uint64_t offset, uint64_t len)
{
	size_t low = 0, high = remote->staged_count;
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		const pp_range *r = &remote->staged[mid];
		if (offset < r->offset)
			high = mid;
		else if (offset - r->offset >= r->length)
			low = mid + 1;
		else
			return len <= r->length - (offset - r->offset);
	}
	return false;
}

static int remote_pread(void *opaque, void *buf, size_t len, uint64_t offset)
{
	pp_remote *remote = opaque;
	pthread_mutex_lock(&remote->lock);
	int fd = remote->staged_count && is_staged(remote, offset, len) ?
		remote->staged_fd : -1;
	pthread_mutex_unlock(&remote->lock);
	if (fd >= 0)
		return pp_pread_full(fd, buf, len, offset);
	if (!remote->http)
		return pp_pread_full(remote->fd, buf, len, offset);
	pp_error err;
	if (pp_http_read(remote->http, buf, len, offset, &err)) {
		/* The archive says "cannot read": the reason is this one. */
		pp_notice("%s", err.message);
		errno = EIO;
		return -1;
	}
	return 0;
}

bool pp_remote_is_staged(pp_remote *remote, uint64_t offset, uint64_t length)
{
	pthread_mutex_lock(&remote->lock);
	bool staged = length == 0 || is_staged(remote, offset, length);
	pthread_mutex_unlock(&remote->lock);
	return staged;
}

bool pp_remote_cached(pp_remote *remote, void *buf, size_t len,
		      uint64_t offset)
{
	if (pp_remote_is_staged(remote, offset, len) || !remote->http)
		return remote_pread(remote, buf, len, offset) == 0;
	return pp_http_cached(remote->http, buf, len, offset);
}

static int remote_size(void *opaque, uint64_t *size)
{
	*size = ((pp_remote *)opaque)->size;
	return 0;
}

int pp_remote_stage(pp_remote *remote, int fd, uint64_t offset,
		    uint64_t length, pp_error *err)
{
	if (length == 0)
		return 0;
	pthread_mutex_lock(&remote->lock);
	remote->staged_fd = fd;
	/* Insert in order, then merge with the neighbours it touches. */
	size_t at = 0;
	while (at < remote->staged_count &&
	       remote->staged[at].offset < offset)
		at++;
	pp_range *ranges = pp_grow(remote->staged, remote->staged_count,
				   &remote->staged_capacity, sizeof *ranges, 64);
	if (!ranges) {
		pthread_mutex_unlock(&remote->lock);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	remote->staged = ranges;
	memmove(ranges + at + 1, ranges + at,
		(remote->staged_count - at) * sizeof *ranges);
	ranges[at] = (pp_range){ .offset = offset, .length = length };
	remote->staged_count++;
	size_t out = 0;
	for (size_t i = 0; i < remote->staged_count; i++) {
		if (out > 0 && ranges[out - 1].offset + ranges[out - 1].length >=
		    ranges[i].offset) {
			uint64_t end = PP_MAX(ranges[out - 1].offset +
					      ranges[out - 1].length,
					      ranges[i].offset + ranges[i].length);
			ranges[out - 1].length = end - ranges[out - 1].offset;
		} else {
			ranges[out++] = ranges[i];
		}
	}
	remote->staged_count = out;
	pthread_mutex_unlock(&remote->lock);
	return 0;
}

static int fetch_local(pp_remote *remote, const pp_range *ranges,
		       size_t count, pp_http_sink_fn sink, void *opaque,
		       pp_error *err)
{
	uint8_t *buf = malloc(LOCAL_PIECE);
	int status = buf ? 0 : pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; status == 0 && i < count; i++) {
		uint64_t end = ranges[i].offset + ranges[i].length;
		for (uint64_t at = ranges[i].offset; status == 0 && at < end;) {
			size_t len = (size_t)PP_MIN((uint64_t)LOCAL_PIECE,
						    end - at);
			if (pp_pread_full(remote->fd, buf, len, at))
				status = pp_fail_errno(err, PP_ERR_IO, "%s: "
						       "read error",
						       remote->name);
			else
				status = sink(opaque, i, at, buf, len, err);
			at += len;
		}
	}
	free(buf);
	return status;
}

int pp_remote_fetch(pp_remote *remote, const pp_range *ranges, size_t count,
		    pp_http_sink_fn sink, void *opaque, pp_error *err)
{
	return remote->http ?
		pp_http_fetch(remote->http, ranges, count, sink, opaque, err) :
		fetch_local(remote, ranges, count, sink, opaque, err);
}

int pp_remote_get_document(pp_remote *remote, const char *location,
			   size_t max, char **text, size_t *len, bool *found,
			   pp_error *err)
{
	*text = NULL;
	*len = 0;
	*found = false;
	if (pp_http_is_url(location)) {
		if (!remote->http)
			return pp_fail(err, PP_ERR_USAGE, "%s: a URL beside a "
				       "local archive", location);
		return pp_http_get_document(remote->http, location, max, text,
					    len, found, err);
	}
	return pp_local_document(NULL, location, max, text, len, found, err);
}

void pp_remote_stats(const pp_remote *remote, uint64_t *requests,
		     uint64_t *bytes)
{
	*requests = *bytes = 0;
	if (remote->http)
		pp_http_stats(remote->http, requests, bytes);
}

pp_http *pp_remote_http(const pp_remote *remote)
{
	return remote->http;
}

const char *pp_remote_validator(const pp_remote *remote)
{
	return remote->http ? pp_http_validator(remote->http) : "";
}

/* ---- the container's operations, adapted ---------------------------------- */

static void remote_free(pp_remote *remote)
{
	if (!remote)
		return;
	pp_http_close(remote->http);
	if (remote->fd >= 0)
		close(remote->fd);
	pthread_mutex_destroy(&remote->lock);
	free(remote->staged);
	free(remote->name);
	free(remote);
}

/* Per format: the original operations, and the copies for a URL and for
 * a local file. */
static const pp_container_ops *originals[FORMATS_MAX];
static pp_container_ops url_ops[FORMATS_MAX], local_ops[FORMATS_MAX];
static size_t format_count;
static pthread_once_t ops_once = PTHREAD_ONCE_INIT;

static const pp_container_ops *original_of(const pp_container_ops *ops)
{
	for (size_t i = 0; i < format_count; i++)
		if (ops == &url_ops[i] || ops == &local_ops[i])
			return originals[i];
	return NULL;
}

static void remote_release(pp_archive *archive)
{
	const pp_container_ops *original = original_of(archive->ops);
	if (original && original->release)
		original->release(archive);
	remote_free(archive->io.opaque);
}

/*
 * A block decoded whole from a URL is asked for whole, in one request: a
 * decoder reading it piece by piece (libzstd takes 128 KiB at a time)
 * would otherwise be served by read-ahead windows doubling from 64 KiB,
 * eight requests one after another for a 16 MiB frame.
 */
static void advise_block(pp_archive *archive, size_t block)
{
	pp_remote *remote = archive->io.opaque;
	const pp_block *b = &archive->blocks[block];
	if (remote->http && !pp_remote_is_staged(remote, b->foffset, b->fsize))
		pp_http_advise(remote->http, b->foffset, b->fsize);
}

static int remote_decode(pp_archive *archive, size_t block, uint64_t limit,
			 pp_sink_fn sink, void *opaque, pp_error *err)
{
	if (limit >= archive->blocks[block].usize)
		advise_block(archive, block);
	return original_of(archive->ops)->decode(archive, block, limit, sink,
						 opaque, err);
}

static int remote_decode_whole(pp_archive *archive, size_t block,
			       uint8_t *buf, pp_error *err)
{
	advise_block(archive, block);
	return original_of(archive->ops)->decode_whole(archive, block, buf,
						       err);
}

static void make_ops(void)
{
	for (size_t i = 0; i < FORMATS_MAX && pp_format_at(i); i++) {
		const pp_container_ops *c = pp_container_of(pp_format_at(i));
		originals[i] = c;
		local_ops[i] = *c;
		local_ops[i].release = remote_release;
		url_ops[i] = local_ops[i];
		if (c->stored_layout)
			url_ops[i].stored_extents = c->stored_layout;
		url_ops[i].decode = remote_decode;
		if (c->decode_whole)
			url_ops[i].decode_whole = remote_decode_whole;
		format_count = i + 1;
	}
}

/* Gives the archive the adapted operations of its container. */
static void adapt(pp_archive *archive, bool url)
{
	pthread_once(&ops_once, make_ops);
	for (size_t i = 0; i < format_count; i++) {
		if (archive->ops != originals[i])
			continue;
		archive->ops = url ? &url_ops[i] : &local_ops[i];
		if (url && originals[i]->trust_index)
			originals[i]->trust_index(archive);
	}
}

pp_remote *pp_remote_of(const pp_archive *archive)
{
	return archive->ops && original_of(archive->ops) ?
		archive->io.opaque : NULL;
}

static int open_local(pp_remote *remote, const char *path, pp_error *err)
{
	struct stat st;
	remote->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (remote->fd < 0 || fstat(remote->fd, &st))
		return pp_fail_errno(err, PP_ERR_IO, "%s", path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return pp_fail(err, PP_ERR_USAGE, "%s: not a regular file",
			       path);
	off_t end = lseek(remote->fd, 0, SEEK_END);
	if (end < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", path);
	remote->size = (uint64_t)end;
	return 0;
}

int pp_remote_open(const char *location, const pp_remote_options *options,
		   pp_archive **archive, pp_error *err)
{
	*archive = NULL;
	pp_remote *remote = calloc(1, sizeof *remote);
	if (!remote)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	remote->fd = remote->staged_fd = -1;
	pthread_mutex_init(&remote->lock, NULL);
	bool url = pp_http_is_url(location);
	int status = (remote->name = strdup(location)) ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 0 && url) {
		pp_http_options http_options = {
			.connections = options ? options->connections : 0,
			.spill_dir = options ? options->spill_dir : NULL,
		};
		status = pp_http_open(location, &http_options, &remote->http,
				      err);
		if (status == 0)
			remote->size = pp_http_size(remote->http);
	} else if (status == 0) {
		status = open_local(remote, location, err);
	}
	pp_io io = {
		.version = PP_IO_VERSION,
		.opaque = remote,
		.pread = remote_pread,
		.size = remote_size,
	};
	if (status == 0)
		status = pp_open_io(&io, location, PP_OPEN_READ, archive, err);
	if (status) {
		remote_free(remote);
		return status;
	}
	adapt(*archive, url);
	return 0;
}

int pp_open_url(const char *url, int flags, pp_archive **archive,
		pp_error *err)
{
	*archive = NULL;
	if (flags & ~PP_OPEN_NO_WAIT)
		return pp_fail(err, PP_ERR_USAGE, "%s: a remote archive is "
			       "opened for reading only", url);
	if (!pp_http_is_url(url))
		return pp_fail(err, PP_ERR_USAGE, "%s: not an http://, "
			       "https:// or s3:// URL", url);
	return pp_remote_open(url, NULL, archive, err);
}
