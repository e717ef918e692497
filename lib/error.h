/*
 * error.h - failing with a message, and telling the caller what is not a
 * failure (error.c).
 */
#ifndef PARTPACK_ERROR_H
#define PARTPACK_ERROR_H

#include "base.h"

/* Sets *err (if not NULL) and returns status, for `return pp_fail(...)`. */
int pp_fail(pp_error *err, enum pp_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* As pp_fail, with ": strerror(errno)" appended. */
int pp_fail_errno(pp_error *err, enum pp_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Tells the caller something it should know but that is not an error
 * (the notice handler set with pp_set_notice_handler). */
void pp_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports progress of long work to the handler of pp_set_progress_handler. */
void pp_progress(uint64_t done, uint64_t total);

#endif
