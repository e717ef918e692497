/* error.c - what the library tells its caller besides return values:
 * one-line errors, notices, and progress of long work inside a call. */
#include "internal.h"

#include <errno.h>
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

static pp_notice_fn notice_handler;
static void *notice_opaque;

void pp_set_notice_handler(pp_notice_fn handler, void *opaque)
{
	notice_handler = handler;
	notice_opaque = opaque;
}

void pp_notice(const char *fmt, ...)
{
	if (!notice_handler)
		return;
	char message[PP_ERROR_MAX];
	va_list args;
	va_start(args, fmt);
	vsnprintf(message, sizeof message, fmt, args);
	va_end(args);
	notice_handler(notice_opaque, message);
}

static pp_progress_fn progress_handler;
static void *progress_opaque;

void pp_set_progress_handler(pp_progress_fn handler, void *opaque)
{
	progress_handler = handler;
	progress_opaque = opaque;
}

void pp_progress(uint64_t done, uint64_t total)
{
	if (progress_handler)
		progress_handler(progress_opaque, done, total);
}
