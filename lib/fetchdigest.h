/*
 * fetchdigest.h - the SHA-256 of a fetch's output, made while the output
 * is written (fetchdigest.c).
 */
#ifndef PARTPACK_FETCHDIGEST_H
#define PARTPACK_FETCHDIGEST_H

#include "base.h"
#include "error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pp_fetch_digest pp_fetch_digest;

/*
 * Starts a thread that hashes fd's bytes [0, size) in order, as far as the
 * spans written allow.  spans[0..count) are the places the output's pieces
 * go, in order and apart; the bytes between and after them are written
 * before any span is marked (they are read as they are then).  The spans
 * are copied.
 */
int pp_fetch_digest_start(int fd, uint64_t size, const pp_range *spans,
			  size_t count, pp_fetch_digest **out, pp_error *err);
/* Span number span is written and will not change. */
void pp_fetch_digest_written(pp_fetch_digest *d, size_t span);
/* Waits for the hash to reach the end: every span must be marked. */
int pp_fetch_digest_finish(pp_fetch_digest *d, uint8_t digest[32],
			   pp_error *err);
/* Stops the thread where it is (after an error); NULL is ignored. */
void pp_fetch_digest_free(pp_fetch_digest *d);

#endif
