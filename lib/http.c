/*
 * http.c - a remote file read by single byte-range requests (http.h),
 * through libcurl.
 *
 * The protocol as this file walks it.  Every request is a GET with one
 * "Range: bytes=FIRST-LAST" header.  A server that honours it answers
 * "206 Partial Content" with "Content-Range: bytes FIRST-LAST/TOTAL" and
 * exactly those bytes: the answer is checked against the question (the
 * range and the total), so a server that sends other bytes is an error,
 * never data.  A server that does not honour Range answers "200 OK" with
 * the whole body.  Suffix ranges ("bytes=-N") are never asked: some
 * S3-compatible servers answer them with the wrong bytes.  So opening asks
 * for the first bytes, learns the total from Content-Range, then asks for
 * the last bytes: both ends of an archive are where formats keep their
 * headers and indexes.  A 200 to the first request is streamed to a spill
 * file, and the file is read from there from then on.
 *
 * Connections are libcurl's, kept alive and shared (a CURLSH connection
 * cache) by a fixed set of easy handles, one per connection; a request
 * takes a free handle or waits for one.  Requests that fail on the way
 * (a reset connection, a 5xx) are asked again for what is still missing,
 * twice at most.
 */
#include "http.h"
#include "error.h"
#include "io.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEAD_BYTES ((uint64_t)64 << 10)   /* kept from the first request */
#define TAIL_BYTES ((uint64_t)64 << 10)   /* ... and from the second */
#define AHEAD_MIN ((uint64_t)64 << 10)    /* read-ahead of a lone read */
#define AHEAD_MAX ((uint64_t)8 << 20)     /* ... doubling while reads follow */
#define WINDOWS 4                         /* read-ahead windows kept */
#define ADVISED_MAX ((uint64_t)64 << 20)  /* read at once when advised */
#define RETRIES 2
#define ERROR_BODY_MAX 1024

/* A stretch of the file kept in memory. */
typedef struct window {
	uint64_t offset;
	size_t len;
	uint8_t *data;
	unsigned long used;         /* for least-recently-used eviction */
} window;

struct pp_http {
	char *url;                  /* as given: names the file in messages */
	char *request_url;          /* what is fetched (s3:// resolved) */
	char *sigv4;                /* CURLOPT_AWS_SIGV4, or NULL: unsigned */
	char *user, *password;
	struct curl_slist *headers;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	unsigned connections;
	CURL **easy;
	bool *busy;
	pthread_mutex_t lock;       /* the fields below */
	pthread_cond_t freed;
	uint64_t size;
	char validator[128];
	window head, tail;
	window windows[WINDOWS];
	unsigned long clock;
	uint64_t last_end, last_ahead;
	uint64_t advised_offset, advised_end;   /* pp_http_advise */
	int spill_fd;               /* the whole body; -1 while Range works */
	char *spill_dir;
	atomic_uint_fast64_t requests, bytes;
};

/* ---- URLs and S3 ---------------------------------------------------------- */

bool pp_http_is_url(const char *text)
{
	return strncmp(text, "http://", 7) == 0 ||
	       strncmp(text, "https://", 8) == 0 ||
	       strncmp(text, "s3://", 5) == 0;
}

static const char *env(const char *name)
{
	const char *value = getenv(name);
	return value && *value ? value : NULL;
}

/* An S3 key in a URL path: unreserved bytes and '/' as they are, every
 * other byte percent-encoded, as SigV4's canonical URI wants. */
static char *encode_key(const char *key)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(3 * strlen(key) + 1), *o = out;
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~/", *p)) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static char *joined(const char *a, const char *b, const char *c,
		    const char *d)
{
	size_t len = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 1;
	char *out = malloc(len);
	if (out)
		snprintf(out, len, "%s%s%s%s", a, b, c, d);
	return out;
}

/* The https or endpoint URL of s3://BUCKET/KEY. */
static int resolve_s3(const char *url, char **out, pp_error *err)
{
	const char *bucket = url + 5, *slash = strchr(bucket, '/');
	if (!slash || slash == bucket || !slash[1])
		return pp_fail(err, PP_ERR_USAGE, "%s: not s3://BUCKET/KEY", url);
	char *name = strndup(bucket, (size_t)(slash - bucket));
	char *key = encode_key(slash + 1);
	const char *endpoint = env("AWS_ENDPOINT_URL");
	const char *region = env("AWS_REGION") ? env("AWS_REGION") :
		env("AWS_DEFAULT_REGION") ? env("AWS_DEFAULT_REGION") :
		"us-east-1";
	*out = NULL;
	if (name && key && endpoint) {
		size_t len = strlen(endpoint);
		while (len > 0 && endpoint[len - 1] == '/')
			len--;
		char *base = strndup(endpoint, len);
		if (base)
			*out = joined(base, "/", name, "/");
		free(base);
	} else if (name && key) {
		char host[512];
		/* Dotted bucket names break the certificate of
		 * virtual-hosted names: path style for them. */
		if (strchr(name, '.'))
			snprintf(host, sizeof host, "https://s3.%s.amazonaws.com/"
				 "%s/", region, name);
		else
			snprintf(host, sizeof host, "https://%s.s3.%s."
				 "amazonaws.com/", name, region);
		*out = strdup(host);
	}
	char *full = *out ? joined(*out, key, "", "") : NULL;
	free(*out);
	*out = full;
	free(name);
	free(key);
	return full ? 0 : pp_fail(err, PP_ERR_NOMEM, "out of memory");
}

/* SigV4 from the standard variables, for s3:// URLs. */
static int setup_signing(pp_http *http, pp_error *err)
{
	const char *id = env("AWS_ACCESS_KEY_ID");
	const char *secret = env("AWS_SECRET_ACCESS_KEY");
	const char *token = env("AWS_SESSION_TOKEN");
	const char *region = env("AWS_REGION") ? env("AWS_REGION") :
		env("AWS_DEFAULT_REGION") ? env("AWS_DEFAULT_REGION") :
		"us-east-1";
	if (!id || !secret)
		return 0;
	char *token_header = token ? joined("x-amz-security-token: ", token,
					    "", "") : NULL;
	http->sigv4 = joined("aws:amz:", region, ":s3", "");
	http->user = strdup(id);
	http->password = strdup(secret);
	/* S3 wants the payload's hash signed; a GET has none to send. */
	struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: "
						 "UNSIGNED-PAYLOAD");
	if (h && token_header)
		h = curl_slist_append(h, token_header) ? h : NULL;
	free(token_header);
	http->headers = h;
	if (!http->sigv4 || !http->user || !http->password || !h ||
	    (token && !h->next))
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	return 0;
}

/* The URL to request for url (a sibling document or the file itself). */
static int request_url_of(const char *url, char **out, pp_error *err)
{
	if (strncmp(url, "s3://", 5) == 0)
		return resolve_s3(url, out, err);
	*out = strdup(url);
	return *out ? 0 : pp_fail(err, PP_ERR_NOMEM, "out of memory");
}

/* ---- one request ----------------------------------------------------------- */

typedef struct transfer transfer;
typedef int (*deliver_fn)(transfer *t, const uint8_t *data, size_t len);

struct transfer {
	pp_http *http;
	const char *url;            /* for messages */
	const char *request_url;
	uint64_t offset;            /* the range asked, first time */
	uint64_t length;            /* 0: no Range header (a document) */
	uint64_t received;          /* body bytes delivered, all attempts */
	bool accept_whole;          /* a 200 with the whole body is fine */
	bool whole;                 /* ... and that is what came */
	long status;
	char reason[64];
	bool has_range;
	uint64_t range_first, range_last, range_total;
	bool has_total;
	char etag[96], modified[64];
	bool checked;               /* the answer's range was compared */
	char error_body[ERROR_BODY_MAX];
	size_t error_len;
	deliver_fn deliver;
	void *opaque;
	size_t index;
	unsigned attempts;
	int failed;                 /* a pp_status set by the callbacks */
	pp_error err;
	char curl_error[CURL_ERROR_SIZE];
};

/* Keeps printable ASCII of a header value, trimmed. */
static void keep_value(char *out, size_t size, const char *value, size_t len)
{
	while (len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		len--;
	}
	while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' ||
			   value[len - 1] == ' '))
		len--;
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < size; i++)
		if (value[i] >= 0x20 && value[i] < 0x7f)
			out[n++] = value[i];
	out[n] = '\0';
}

static bool header_is(const char *line, size_t len, const char *name,
		      const char **value, size_t *value_len)
{
	size_t n = strlen(name);
	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return false;
	*value = line + n + 1;
	*value_len = len - n - 1;
	return true;
}

/* "bytes FIRST-LAST/TOTAL" or "bytes * /TOTAL" (RFC 9110, 14.4). */
static void parse_content_range(transfer *t, const char *value, size_t len)
{
	char text[128];
	keep_value(text, sizeof text, value, len);
	unsigned long long first, last, total;
	char star;
	if (sscanf(text, "bytes %llu-%llu/%llu", &first, &last, &total) == 3) {
		t->has_range = t->has_total = true;
		t->range_first = first;
		t->range_last = last;
		t->range_total = total;
	} else if (sscanf(text, "bytes %c/%llu", &star, &total) == 2 &&
		   star == '*') {
		t->has_total = true;
		t->range_total = total;
	}
}

static size_t on_header(char *line, size_t size, size_t count, void *opaque)
{
	transfer *t = opaque;
	size_t len = size * count;
	const char *value;
	size_t value_len;
	if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new answer (after a redirect or a 100): forget the last. */
		const char *space = memchr(line, ' ', len);
		t->status = space ? strtol(space + 1, NULL, 10) : 0;
		const char *reason = space ? memchr(space + 1, ' ',
				len - (size_t)(space + 1 - line)) : NULL;
		t->reason[0] = '\0';
		if (reason)
			keep_value(t->reason, sizeof t->reason, reason + 1,
				   len - (size_t)(reason + 1 - line));
		t->has_range = t->has_total = false;
	} else if (header_is(line, len, "Content-Range", &value, &value_len)) {
		parse_content_range(t, value, value_len);
	} else if (header_is(line, len, "ETag", &value, &value_len)) {
		keep_value(t->etag, sizeof t->etag, value, value_len);
	} else if (header_is(line, len, "Last-Modified", &value, &value_len)) {
		keep_value(t->modified, sizeof t->modified, value, value_len);
	}
	return len;
}

/* The first byte of this attempt. */
static uint64_t attempt_first(const transfer *t)
{
	return t->offset + t->received;
}

/* The file's size: known after opening, and from the answer while opening. */
static uint64_t known_size(const transfer *t)
{
	return t->http->size ? t->http->size :
		t->has_total ? t->range_total : 0;
}

/* One past the last byte the range asks for, cut at the end of the file. */
static uint64_t asked_end(const transfer *t)
{
	uint64_t size = known_size(t), end = t->offset + t->length;
	return size ? PP_MIN(end, size) : end;
}

/* Compares a 206's Content-Range with what was asked. */
static bool range_answers(transfer *t)
{
	pp_http *http = t->http;
	uint64_t first = attempt_first(t);
	uint64_t last = asked_end(t) - 1;
	bool ok = t->has_range && t->range_first == first &&
		  t->range_last == last && t->range_last >= t->range_first &&
		  (!http->size || t->range_total == http->size);
	if (!ok)
		t->failed = pp_fail(&t->err, PP_ERR_IO, "%s: the server answered "
				    "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64
				    " when asked for %" PRIu64 "-%" PRIu64,
				    t->url, t->range_first, t->range_last,
				    t->range_total, first, last);
	return ok;
}

static size_t on_body(char *data, size_t size, size_t count, void *opaque)
{
	transfer *t = opaque;
	size_t len = size * count;
	bool partial = t->length && t->status == 206;
	bool whole = t->status == 200 && (!t->length || t->accept_whole);
	if (!partial && !whole) {
		/* An error's body: S3 names the problem in <Code>. */
		size_t room = sizeof t->error_body - 1 - t->error_len;
		size_t n = PP_MIN(room, len);
		memcpy(t->error_body + t->error_len, data, n);
		t->error_len += n;
		return len;
	}
	if (!t->checked) {
		t->checked = true;
		t->whole = whole;
		if (partial && !range_answers(t))
			return 0;
	}
	uint64_t room = t->length && partial ?
		t->range_last - t->range_first + 1 -
		(t->received - (t->range_first - t->offset)) : UINT64_MAX;
	if (len > room) {
		t->failed = pp_fail(&t->err, PP_ERR_IO, "%s: the server sent "
				    "more bytes than it announced", t->url);
		return 0;
	}
	atomic_fetch_add(&t->http->bytes, len);
	if (t->deliver(t, (const uint8_t *)data, len))
		return 0;
	t->received += len;
	return len;
}

/* Sets up an easy handle for one attempt of t. */
static void prepare(CURL *easy, transfer *t)
{
	pp_http *http = t->http;
	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_URL, t->request_url);
	curl_easy_setopt(easy, CURLOPT_SHARE, http->share);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "partpack/" PP_VERSION);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 30L);
	/* No byte for a minute: the connection is taken for dead. */
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->curl_error);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
	/* A private certificate authority, as curl and OpenSSL take it. */
	const char *ca = env("CURL_CA_BUNDLE") ? env("CURL_CA_BUNDLE") :
		env("SSL_CERT_FILE");
	if (ca)
		curl_easy_setopt(easy, CURLOPT_CAINFO, ca);
	if (http->sigv4) {
		curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, http->sigv4);
		curl_easy_setopt(easy, CURLOPT_USERNAME, http->user);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, http->password);
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, http->headers);
	}
	char range[64];
	if (t->length) {
		snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64,
			 attempt_first(t), t->offset + t->length - 1);
		curl_easy_setopt(easy, CURLOPT_RANGE, range);
	}
	t->status = 0;
	t->reason[0] = '\0';
	t->checked = false;
	t->has_range = t->has_total = false;
	t->error_len = 0;
	t->curl_error[0] = '\0';
	atomic_fetch_add(&http->requests, 1);
}

/* "NoSuchKey" from an S3 error body, or "". */
static void s3_code(const transfer *t, char *code, size_t size)
{
	char body[ERROR_BODY_MAX];
	memcpy(body, t->error_body, t->error_len);
	body[t->error_len] = '\0';
	const char *start = strstr(body, "<Code>"), *end;
	code[0] = '\0';
	if (start && (end = strstr(start + 6, "</Code>")))
		keep_value(code, size, start + 6, (size_t)(end - start - 6));
}

enum outcome { DONE, RETRY, FAILED };

/* What an attempt that curl finished with code amounts to. */
static enum outcome judge(transfer *t, CURLcode code, pp_error *err)
{
	if (t->failed) {
		*err = t->err;
		return FAILED;
	}
	bool answered = t->status == 206 || (t->status == 200 && t->whole);
	bool transient = code == CURLE_COULDNT_CONNECT ||
		code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR ||
		code == CURLE_PARTIAL_FILE || code == CURLE_GOT_NOTHING ||
		code == CURLE_OPERATION_TIMEDOUT ||
		(code == CURLE_OK && t->status >= 500);
	if (transient && t->attempts < RETRIES) {
		t->attempts++;
		/* A whole body starts again from its first byte. */
		if (t->whole)
			t->received = 0;
		return RETRY;
	}
	if (code != CURLE_OK) {
		pp_fail(err, PP_ERR_IO, "%s: %s", t->url, t->curl_error[0] ?
			t->curl_error : curl_easy_strerror(code));
		return FAILED;
	}
	if (t->status == 200 && t->length && !t->accept_whole) {
		pp_fail(err, PP_ERR_IO, "%s: the server ignored a Range "
			"request it had honoured before", t->url);
		return FAILED;
	}
	if (!answered && !(t->status == 200 && !t->length)) {
		char code_text[64];
		s3_code(t, code_text, sizeof code_text);
		pp_fail(err, PP_ERR_IO, "%s: HTTP %ld%s%s%s%s%s", t->url,
			t->status, t->reason[0] ? " " : "", t->reason,
			code_text[0] ? " (" : "", code_text,
			code_text[0] ? ")" : "");
		return FAILED;
	}
	uint64_t want = t->length ? asked_end(t) - t->offset : 0;
	if (t->status == 206 && t->received != want) {
		if (t->attempts < RETRIES) {
			t->attempts++;
			return RETRY;
		}
		pp_fail(err, PP_ERR_IO, "%s: the answer for bytes %" PRIu64
			"-%" PRIu64 " was cut short", t->url, t->offset,
			t->offset + want - 1);
		return FAILED;
	}
	return DONE;
}

/* ---- the connections ---------------------------------------------------- */

static CURL *take_connection(pp_http *http)
{
	pthread_mutex_lock(&http->lock);
	for (;;) {
		for (unsigned i = 0; i < http->connections; i++) {
			if (!http->busy[i]) {
				http->busy[i] = true;
				pthread_mutex_unlock(&http->lock);
				return http->easy[i];
			}
		}
		pthread_cond_wait(&http->freed, &http->lock);
	}
}

/* As take_connection, without waiting: NULL when all are busy. */
static CURL *try_take_connection(pp_http *http)
{
	CURL *easy = NULL;
	pthread_mutex_lock(&http->lock);
	for (unsigned i = 0; !easy && i < http->connections; i++) {
		if (!http->busy[i]) {
			http->busy[i] = true;
			easy = http->easy[i];
		}
	}
	pthread_mutex_unlock(&http->lock);
	return easy;
}

static void give_back(pp_http *http, CURL *easy)
{
	pthread_mutex_lock(&http->lock);
	for (unsigned i = 0; i < http->connections; i++)
		if (http->easy[i] == easy)
			http->busy[i] = false;
	pthread_cond_signal(&http->freed);
	pthread_mutex_unlock(&http->lock);
}

/* Runs t to its end on one connection, asking again when that helps. */
static int perform(pp_http *http, transfer *t, pp_error *err)
{
	CURL *easy = take_connection(http);
	enum outcome outcome;
	do {
		prepare(easy, t);
		CURLcode code = curl_easy_perform(easy);
		outcome = judge(t, code, err);
		if (outcome == RETRY)
			usleep(200000u * t->attempts);
	} while (outcome == RETRY);
	give_back(http, easy);
	return outcome == DONE ? 0 : err->status;
}

static void lock_share(CURL *easy, curl_lock_data data,
		       curl_lock_access access, void *opaque)
{
	pp_http *http = opaque;
	(void)easy, (void)access;
	pthread_mutex_lock(&http->share_locks[data]);
}

static void unlock_share(CURL *easy, curl_lock_data data, void *opaque)
{
	pp_http *http = opaque;
	(void)easy;
	pthread_mutex_unlock(&http->share_locks[data]);
}

static int make_connections(pp_http *http, pp_error *err)
{
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&http->share_locks[i], NULL);
	http->share = curl_share_init();
	if (!http->share)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	curl_share_setopt(http->share, CURLSHOPT_LOCKFUNC, lock_share);
	curl_share_setopt(http->share, CURLSHOPT_UNLOCKFUNC, unlock_share);
	curl_share_setopt(http->share, CURLSHOPT_USERDATA, http);
	curl_share_setopt(http->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(http->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(http->share, CURLSHOPT_SHARE,
			  CURL_LOCK_DATA_SSL_SESSION);
	http->easy = calloc(http->connections, sizeof *http->easy);
	http->busy = calloc(http->connections, sizeof *http->busy);
	if (!http->easy || !http->busy)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (unsigned i = 0; i < http->connections; i++)
		if (!(http->easy[i] = curl_easy_init()))
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	return 0;
}

/* ---- what opening keeps: both ends, or the whole body ------------------ */

static int deliver_to_window(transfer *t, const uint8_t *data, size_t len)
{
	window *w = t->opaque;
	if (t->received + len > w->len) {
		t->failed = pp_fail(&t->err, PP_ERR_IO, "%s: the server sent "
				    "more bytes than asked", t->url);
		return -1;
	}
	memcpy(w->data + t->received, data, len);
	return 0;
}

static int open_spill(pp_http *http, transfer *t)
{
	const char *dir = http->spill_dir ? http->spill_dir :
		env("TMPDIR") ? env("TMPDIR") : "/tmp";
	http->spill_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (http->spill_fd < 0) {
		char *path = joined(dir, "/.partpack-spill.XXXXXX", "", "");
		http->spill_fd = path ? mkostemp(path, O_CLOEXEC) : -1;
		if (http->spill_fd >= 0)
			unlink(path);
		free(path);
	}
	if (http->spill_fd < 0)
		t->failed = pp_fail_errno(&t->err, PP_ERR_IO, "%s: cannot "
					  "create a spill file in %s", t->url,
					  dir);
	return http->spill_fd < 0 ? -1 : 0;
}

/* The first bytes: into the head window, or, from a server that ignores
 * Range, the whole body into the spill file. */
static int deliver_head(transfer *t, const uint8_t *data, size_t len)
{
	pp_http *http = t->http;
	if (!t->whole)
		return deliver_to_window(t, data, len);
	if (http->spill_fd < 0 && open_spill(http, t))
		return -1;
	if (pp_pwrite_full(http->spill_fd, data, len, t->received)) {
		t->failed = pp_fail_errno(&t->err, PP_ERR_IO, "%s: cannot "
					  "write the spill file", t->url);
		return -1;
	}
	return 0;
}

static int fetch_window(pp_http *http, window *w, uint64_t offset,
			size_t len, deliver_fn deliver, bool accept_whole,
			transfer *t, pp_error *err)
{
	w->offset = offset;
	w->len = len;
	w->data = malloc(len ? len : 1);
	if (!w->data)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	*t = (transfer){
		.http = http, .url = http->url, .request_url = http->request_url,
		.offset = offset, .length = len, .accept_whole = accept_whole,
		.deliver = deliver, .opaque = w,
	};
	return perform(http, t, err);
}

static void keep_validator(pp_http *http, const transfer *t)
{
	snprintf(http->validator, sizeof http->validator, "%s",
		 t->etag[0] ? t->etag : t->modified);
}

/* The first request: the head, and the size from its Content-Range. */
static int open_head(pp_http *http, pp_error *err)
{
	transfer t;
	int status = fetch_window(http, &http->head, 0, HEAD_BYTES,
				  deliver_head, true, &t, err);
	if (status && t.status == 416 && t.has_total && t.range_total == 0) {
		http->head.len = 0;   /* an empty file */
		return 0;
	}
	if (status)
		return status;
	keep_validator(http, &t);
	if (t.whole) {
		http->size = t.received;
		http->head.len = 0;
		if (t.received > HEAD_BYTES)
			pp_notice("%s: the server ignores Range requests: "
				  "downloading the whole file (%" PRIu64
				  " bytes)", http->url, t.received);
		return 0;
	}
	http->size = t.range_total;
	http->head.len = (size_t)t.received;
	return 0;
}

static int open_tail(pp_http *http, pp_error *err)
{
	uint64_t start = http->size > TAIL_BYTES ? http->size - TAIL_BYTES : 0;
	start = PP_MAX(start, http->head.len);
	if (http->spill_fd >= 0 || start >= http->size)
		return 0;
	transfer t;
	return fetch_window(http, &http->tail, start,
			    (size_t)(http->size - start), deliver_to_window,
			    false, &t, err);
}

static void http_free(pp_http *http)
{
	for (unsigned i = 0; http->easy && i < http->connections; i++)
		if (http->easy[i])
			curl_easy_cleanup(http->easy[i]);
	if (http->share)
		curl_share_cleanup(http->share);
	for (int i = 0; http->share && i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&http->share_locks[i]);
	free(http->easy);
	free(http->busy);
	curl_slist_free_all(http->headers);
	free(http->sigv4);
	free(http->user);
	free(http->password);
	free(http->head.data);
	free(http->tail.data);
	for (int i = 0; i < WINDOWS; i++)
		free(http->windows[i].data);
	if (http->spill_fd >= 0)
		close(http->spill_fd);
	free(http->spill_dir);
	free(http->request_url);
	free(http->url);
	pthread_mutex_destroy(&http->lock);
	pthread_cond_destroy(&http->freed);
	free(http);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_status;

static void init_curl(void)
{
	curl_init_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int pp_http_open(const char *url, const pp_http_options *options,
		 pp_http **out, pp_error *err)
{
	*out = NULL;
	pthread_once(&curl_once, init_curl);
	if (curl_init_status != CURLE_OK)
		return pp_fail(err, PP_ERR_INTERNAL, "libcurl: %s",
			       curl_easy_strerror(curl_init_status));
	pp_http *http = calloc(1, sizeof *http);
	if (!http)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&http->lock, NULL);
	pthread_cond_init(&http->freed, NULL);
	http->spill_fd = -1;
	unsigned n = options && options->connections ? options->connections :
		PP_HTTP_DEFAULT_CONNECTIONS;
	http->connections = PP_MIN(n, PP_HTTP_MAX_CONNECTIONS);
	int status = 0;
	if (!(http->url = strdup(url)) ||
	    (options && options->spill_dir &&
	     !(http->spill_dir = strdup(options->spill_dir))))
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 0)
		status = request_url_of(url, &http->request_url, err);
	if (status == 0 && strncmp(url, "s3://", 5) == 0)
		status = setup_signing(http, err);
	if (status == 0)
		status = make_connections(http, err);
	if (status == 0)
		status = open_head(http, err);
	if (status == 0)
		status = open_tail(http, err);
	if (status) {
		http_free(http);
		return status;
	}
	*out = http;
	return 0;
}

void pp_http_close(pp_http *http)
{
	if (http)
		http_free(http);
}

uint64_t pp_http_size(const pp_http *http)
{
	return http->size;
}

const char *pp_http_validator(const pp_http *http)
{
	return http->validator;
}

void pp_http_stats(pp_http *http, uint64_t *requests, uint64_t *bytes)
{
	*requests = atomic_load(&http->requests);
	*bytes = atomic_load(&http->bytes);
}

/* ---- reads ------------------------------------------------------------------ */

static bool copy_from(const window *w, void *buf, size_t len, uint64_t offset)
{
	if (!w->data || offset < w->offset || len > w->len ||
	    offset - w->offset > w->len - len)
		return false;
	memcpy(buf, w->data + (offset - w->offset), len);
	return true;
}

/* Under the lock: a copy from whatever holds the bytes, if anything. */
static bool cached(pp_http *http, void *buf, size_t len, uint64_t offset)
{
	if (copy_from(&http->head, buf, len, offset) ||
	    copy_from(&http->tail, buf, len, offset))
		return true;
	for (int i = 0; i < WINDOWS; i++) {
		if (copy_from(&http->windows[i], buf, len, offset)) {
			http->windows[i].used = ++http->clock;
			return true;
		}
	}
	return false;
}

/* Under the lock: how far to read ahead, doubling while reads follow
 * each other (a decoder or a scanner walking the file). */
static size_t ahead_for(pp_http *http, size_t len, uint64_t offset)
{
	uint64_t ahead = offset == http->last_end ?
		PP_MIN(2 * http->last_ahead, AHEAD_MAX) : AHEAD_MIN;
	ahead = PP_MAX(ahead, AHEAD_MIN);
	http->last_ahead = ahead;
	if (offset >= http->advised_offset && offset < http->advised_end)
		ahead = PP_MAX(ahead, PP_MIN(http->advised_end - offset,
					     ADVISED_MAX));
	uint64_t want = PP_MAX((uint64_t)len, ahead);
	return (size_t)PP_MIN(want, http->size - offset);
}

static void keep_window(pp_http *http, window *fresh)
{
	pthread_mutex_lock(&http->lock);
	window *victim = &http->windows[0];
	for (int i = 1; i < WINDOWS; i++)
		if (http->windows[i].used < victim->used)
			victim = &http->windows[i];
	free(victim->data);
	*victim = *fresh;
	victim->used = ++http->clock;
	http->last_end = fresh->offset + fresh->len;
	pthread_mutex_unlock(&http->lock);
}

void pp_http_advise(pp_http *http, uint64_t offset, uint64_t len)
{
	pthread_mutex_lock(&http->lock);
	http->advised_offset = offset;
	http->advised_end = offset + len;
	pthread_mutex_unlock(&http->lock);
}

bool pp_http_cached(pp_http *http, void *buf, size_t len, uint64_t offset)
{
	if (offset > http->size || len > http->size - offset)
		return false;
	if (http->spill_fd >= 0)
		return pp_pread_full(http->spill_fd, buf, len, offset) == 0;
	pthread_mutex_lock(&http->lock);
	bool hit = cached(http, buf, len, offset);
	pthread_mutex_unlock(&http->lock);
	return hit;
}

int pp_http_read(pp_http *http, void *buf, size_t len, uint64_t offset,
		 pp_error *err)
{
	if (offset > http->size || len > http->size - offset) {
		errno = EIO;
		return pp_fail(err, PP_ERR_IO, "%s: no bytes %" PRIu64 "-%"
			       PRIu64 " in a file of %" PRIu64, http->url,
			       offset, offset + len, http->size);
	}
	if (len == 0)
		return 0;
	if (http->spill_fd >= 0)
		return pp_pread_full(http->spill_fd, buf, len, offset) ?
			pp_fail_errno(err, PP_ERR_IO, "%s: spill file",
				      http->url) : 0;
	pthread_mutex_lock(&http->lock);
	bool hit = cached(http, buf, len, offset);
	size_t want = hit ? 0 : ahead_for(http, len, offset);
	pthread_mutex_unlock(&http->lock);
	if (hit)
		return 0;
	window fresh;
	transfer t;
	int status = fetch_window(http, &fresh, offset, want,
				  deliver_to_window, false, &t, err);
	if (status) {
		free(fresh.data);
		return status;
	}
	memcpy(buf, fresh.data, len);
	keep_window(http, &fresh);
	return 0;
}

/* ---- many ranges at once --------------------------------------------------- */

typedef struct fetch_run {
	pp_http_sink_fn sink;
	void *opaque;
} fetch_run;

static int deliver_to_sink(transfer *t, const uint8_t *data, size_t len)
{
	fetch_run *run = t->opaque;
	int status = run->sink(run->opaque, t->index, t->offset + t->received,
			       data, len, &t->err);
	if (status)
		t->failed = status;
	return status ? -1 : 0;
}

/* Without Range: every range is read from the spill file. */
static int fetch_spilled(pp_http *http, const pp_range *ranges, size_t count,
			 pp_http_sink_fn sink, void *opaque, pp_error *err)
{
	enum { PIECE = 1 << 20 };
	uint8_t *buf = malloc(PIECE);
	int status = buf ? 0 : pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; status == 0 && i < count; i++) {
		for (uint64_t at = ranges[i].offset;
		     status == 0 && at < ranges[i].offset + ranges[i].length;) {
			size_t len = (size_t)PP_MIN((uint64_t)PIECE,
				ranges[i].offset + ranges[i].length - at);
			status = pp_http_read(http, buf, len, at, err);
			if (status == 0)
				status = sink(opaque, i, at, buf, len, err);
			at += len;
		}
	}
	free(buf);
	return status;
}

typedef struct slot {
	CURL *easy;
	transfer t;
	bool active;
} slot;

static void start(CURLM *multi, slot *s)
{
	prepare(s->easy, &s->t);
	curl_multi_add_handle(multi, s->easy);
	s->active = true;
}

/* A finished attempt: done, asked again, or the end of everything. */
static int finish(CURLM *multi, slot *s, CURLcode code, pp_error *err)
{
	curl_multi_remove_handle(multi, s->easy);
	s->active = false;
	enum outcome outcome = judge(&s->t, code, err);
	if (outcome == RETRY) {
		usleep(200000u * s->t.attempts);
		start(multi, s);
	}
	return outcome == FAILED ? err->status : 0;
}

static int run_slots(pp_http *http, CURLM *multi, slot *slots, size_t nslots,
		     const pp_range *ranges, size_t count, fetch_run *run,
		     pp_error *err)
{
	size_t next = 0, active = 0;
	int status = 0;
	while (status == 0 && (next < count || active > 0)) {
		for (size_t i = 0; i < nslots && next < count; i++) {
			if (slots[i].active)
				continue;
			slots[i].t = (transfer){
				.http = http, .url = http->url,
				.request_url = http->request_url,
				.offset = ranges[next].offset,
				.length = ranges[next].length,
				.deliver = deliver_to_sink, .opaque = run,
				.index = next,
			};
			next++;
			start(multi, &slots[i]);
		}
		int running;
		curl_multi_perform(multi, &running);
		CURLMsg *msg;
		int left;
		while (status == 0 && (msg = curl_multi_info_read(multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			for (size_t i = 0; i < nslots; i++)
				if (slots[i].active && slots[i].easy == msg->easy_handle)
					status = finish(multi, &slots[i],
							msg->data.result, err);
		}
		active = 0;
		for (size_t i = 0; i < nslots; i++)
			active += slots[i].active;
		if (status == 0 && active > 0)
			curl_multi_poll(multi, NULL, 0, 1000, NULL);
	}
	return status;
}

int pp_http_fetch(pp_http *http, const pp_range *ranges, size_t count,
		  pp_http_sink_fn sink, void *opaque, pp_error *err)
{
	if (count == 0)
		return 0;
	if (http->spill_fd >= 0)
		return fetch_spilled(http, ranges, count, sink, opaque, err);
	slot *slots = calloc(http->connections, sizeof *slots);
	CURLM *multi = curl_multi_init();
	if (!slots || !multi) {
		free(slots);
		if (multi)
			curl_multi_cleanup(multi);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	/* At least one connection (waiting for it), then whatever else is
	 * free: readers on other threads keep theirs. */
	size_t nslots = 0;
	size_t want = PP_MIN(count, (size_t)http->connections);
	slots[nslots++].easy = take_connection(http);
	while (nslots < want && (slots[nslots].easy = try_take_connection(http)))
		nslots++;
	fetch_run run = { .sink = sink, .opaque = opaque };
	int status = run_slots(http, multi, slots, nslots, ranges, count, &run,
			       err);
	for (size_t i = 0; i < nslots; i++) {
		if (slots[i].active)
			curl_multi_remove_handle(multi, slots[i].easy);
		give_back(http, slots[i].easy);
	}
	curl_multi_cleanup(multi);
	free(slots);
	return status;
}

/* ---- documents beside the file ---------------------------------------------- */

typedef struct document {
	char *text;
	size_t len;
	size_t max;
} document;

static int deliver_document(transfer *t, const uint8_t *data, size_t len)
{
	document *d = t->opaque;
	if (len > d->max - d->len) {
		t->failed = pp_fail(&t->err, PP_ERR_FORMAT, "%s: larger than "
				    "%zu bytes", t->url, d->max);
		return -1;
	}
	char *text = realloc(d->text, d->len + len + 1);
	if (!text) {
		t->failed = pp_fail(&t->err, PP_ERR_NOMEM, "out of memory");
		return -1;
	}
	memcpy(text + d->len, data, len);
	d->text = text;
	d->len += len;
	d->text[d->len] = '\0';
	return 0;
}

int pp_http_get_document(pp_http *http, const char *url, size_t max,
			 char **text, size_t *len, bool *found, pp_error *err)
{
	*text = NULL;
	*len = 0;
	*found = false;
	char *request_url;
	int status = request_url_of(url, &request_url, err);
	if (status)
		return status;
	document d = { .max = max };
	transfer t = {
		.http = http, .url = url, .request_url = request_url,
		.deliver = deliver_document, .opaque = &d,
	};
	status = perform(http, &t, err);
	free(request_url);
	if (status && (t.status == 404 || t.status == 403 || t.status == 410)) {
		free(d.text);
		return 0;
	}
	if (status) {
		free(d.text);
		return status;
	}
	if (!d.text && !(d.text = calloc(1, 1)))
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	*text = d.text;
	*len = d.len;
	*found = true;
	return 0;
}
