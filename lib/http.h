/*
 * http.h - a remote file read by single byte-range requests over http,
 * https or S3, through libcurl (http.c).
 *
 * One pp_http is one remote file: its size and its validator (ETag or
 * Last-Modified, to notice that it changed), the first and last bytes of
 * it kept from opening (where every container keeps its header and its
 * index), and a few kept-alive connections.  Every request asks for one
 * range ("Range: bytes=A-B"), which plain web servers, CDNs, S3 and MinIO
 * all serve.  A server that ignores Range answers the first request with
 * the whole body: that body is streamed to a spill file and every later
 * read is served from it, with one notice.
 *
 * s3://BUCKET/KEY is fetched from AWS_ENDPOINT_URL/BUCKET/KEY when that is
 * set (path style, as MinIO and other S3-compatible servers want), else
 * from https://BUCKET.s3.REGION.amazonaws.com/KEY, and signed with SigV4
 * when AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set (with
 * AWS_SESSION_TOKEN, AWS_REGION or AWS_DEFAULT_REGION, us-east-1 by
 * default); unsigned otherwise, for public buckets.
 *
 * Threads: pp_http_read and pp_http_fetch may run on several threads at
 * once (each takes one of the connections, or waits for one); open and
 * close may not run with anything else on the same pp_http.
 */
#ifndef PARTPACK_HTTP_H
#define PARTPACK_HTTP_H

#include "base.h"

typedef struct pp_http pp_http;

#define PP_HTTP_DEFAULT_CONNECTIONS 4
#define PP_HTTP_MAX_CONNECTIONS 64

typedef struct pp_http_options {
	unsigned connections;      /* 0: PP_HTTP_DEFAULT_CONNECTIONS */
	/* Where the body of a server that ignores Range is kept (an unnamed
	 * file there); NULL: TMPDIR, else /tmp. */
	const char *spill_dir;
} pp_http_options;

/* Whether text names a remote file (http://, https://, s3://). */
bool pp_http_is_url(const char *text);

/*
 * Opens url: one request for its first bytes, which also gives its size
 * (Content-Range), and one for its last bytes.  Errors name the URL and the
 * HTTP status ("https://h/x.xz: HTTP 404 Not Found"), PP_ERR_IO.
 */
int pp_http_open(const char *url, const pp_http_options *options,
		 pp_http **http, pp_error *err);
void pp_http_close(pp_http *http);

uint64_t pp_http_size(const pp_http *http);
/* The ETag, else the Last-Modified date, of the first answer; "" if none. */
const char *pp_http_validator(const pp_http *http);

/* Reads exactly len bytes at offset: from what opening kept, the spill, a
 * recent read-ahead window, or one request (which reads ahead when reads
 * follow each other). */
int pp_http_read(pp_http *http, void *buf, size_t len, uint64_t offset,
		 pp_error *err);

/* Copies bytes kept from earlier requests (opening, read-ahead, a server
 * that ignores Range), if they are all there: no request is made. */
bool pp_http_cached(pp_http *http, void *buf, size_t len, uint64_t offset);
/* The caller is about to read [offset, offset + len) through: a read
 * missing inside it asks for the rest of it in one request (up to 64 MiB)
 * instead of read-ahead windows doubling from 64 KiB.  A hint: one is
 * kept, the latest. */
void pp_http_advise(pp_http *http, uint64_t offset, uint64_t len);

/*
 * Fetches ranges, one request each, up to the connection count at once,
 * handing their bytes to sink in order within each range (ranges finish in
 * any order).  A connection that fails part way is asked again for the
 * rest, twice at most.  sink runs on the calling thread; a non-zero return
 * stops everything and is returned.
 */
typedef int (*pp_http_sink_fn)(void *opaque, size_t range, uint64_t offset,
			       const uint8_t *data, size_t len, pp_error *err);
int pp_http_fetch(pp_http *http, const pp_range *ranges, size_t count,
		  pp_http_sink_fn sink, void *opaque, pp_error *err);

/*
 * A small document at url (a bmap, a SHA256SUMS file), at most max bytes,
 * signed as http's own requests are.  *found is false, with 0 returned,
 * when the server says it is not there (404, 403, 410).  *text is
 * malloc'd and NUL-terminated.
 */
int pp_http_get_document(pp_http *http, const char *url, size_t max,
			 char **text, size_t *len, bool *found, pp_error *err);

/* Requests made and body bytes received so far. */
void pp_http_stats(pp_http *http, uint64_t *requests, uint64_t *bytes);

#endif
