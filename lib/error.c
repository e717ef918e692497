/* error.c - what the library tells its caller besides return values:
 * one-line errors, notices, and progress of long work inside a call. */
#include "error.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail_v(pp_error *err, enum pp_status status, const char *suffix,
		  const char *fmt, va_list args)
{
	if (err) {
		int n = vsnprintf(err->message, sizeof err->message, fmt, args);
		if (suffix && n >= 0 && (size_t)n < sizeof err->message)
			snprintf(err->message + n, sizeof err->message - (size_t)n,
				 ": %s", suffix);
		err->status = status;
	}
	return status;
}

int pp_fail(pp_error *err, enum pp_status status, const char *fmt, ...)
{
	va_list args;
	va_start(args, fmt);
	fail_v(err, status, NULL, fmt, args);
	va_end(args);
	return status;
}

int pp_fail_errno(pp_error *err, enum pp_status status, const char *fmt, ...)
{
	const char *reason = strerror(errno);
	va_list args;
	va_start(args, fmt);
	fail_v(err, status, reason, fmt, args);
	va_end(args);
	return status;
}

const char *pp_strerror(int status)
{
	switch ((enum pp_status)status) {
	case PP_OK: return "success";
	case PP_ERR_USAGE: return "invalid argument";
	case PP_ERR_IO: return "I/O error";
	case PP_ERR_FORMAT: return "corrupt or unsupported archive";
	case PP_ERR_NOT_STORED: return "range not entirely stored data";
	case PP_ERR_NOMEM: return "out of memory";
	case PP_ERR_LOCATE: return "selector not found";
	case PP_ERR_CHECK: return "integrity check mismatch";
	case PP_ERR_BUSY: return "archive locked by another process";
	case PP_ERR_RECOVERY_PENDING: return "interrupted patch pending recovery";
	case PP_ERR_INTERNAL: return "internal error";
	case PP_ERR_REUSE: return "reuse base not trusted";
	}
	return "unknown status";
}

/*
 * The handlers are process-wide and any thread may report through them.
 * A handler is called with the lock held for reading, so that setting one
 * (which takes it for writing) waits for calls of the old one to end: once
 * pp_set_*_handler returns, the old opaque is free to go.
 */
typedef struct handler {
	pthread_rwlock_t lock;
	pp_notice_fn notice;
	void *notice_opaque;
	pp_progress_fn progress;
	void *progress_opaque;
} handler;

static handler handlers = { .lock = PTHREAD_RWLOCK_INITIALIZER };

void pp_set_notice_handler(pp_notice_fn notice, void *opaque)
{
	pthread_rwlock_wrlock(&handlers.lock);
	handlers.notice = notice;
	handlers.notice_opaque = opaque;
	pthread_rwlock_unlock(&handlers.lock);
}

void pp_notice(const char *fmt, ...)
{
	char message[PP_ERROR_MAX];
	va_list args;
	va_start(args, fmt);
	vsnprintf(message, sizeof message, fmt, args);
	va_end(args);
	pthread_rwlock_rdlock(&handlers.lock);
	if (handlers.notice)
		handlers.notice(handlers.notice_opaque, message);
	pthread_rwlock_unlock(&handlers.lock);
}

void pp_set_progress_handler(pp_progress_fn progress, void *opaque)
{
	pthread_rwlock_wrlock(&handlers.lock);
	handlers.progress = progress;
	handlers.progress_opaque = opaque;
	pthread_rwlock_unlock(&handlers.lock);
}

void pp_progress(uint64_t done, uint64_t total)
{
	pthread_rwlock_rdlock(&handlers.lock);
	if (handlers.progress)
		handlers.progress(handlers.progress_opaque, done, total);
	pthread_rwlock_unlock(&handlers.lock);
}
