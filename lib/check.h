/*
 * check.h - the kinds of integrity check the formats store, each with how
 * a patch brings it up to date (check.c).
 */
#ifndef PARTPACK_CHECK_H
#define PARTPACK_CHECK_H

#include "base.h"

/* The largest check field of any format (xz reserves IDs of 64 bytes). */
#define PP_CHECK_SIZE_MAX 64

/*
 * A kind of integrity check and how a patch brings it up to date.  Every
 * function produces the bytes as stored in the file.
 */
typedef struct pp_check_kind {
	enum pp_check id;
	const char *name;           /* pp_check_name */
	size_t size;                /* bytes of the stored field */
	/* Linear checks (CRC-32, CRC-64): the change of the check when
	 * old_bytes become new_bytes, `zeros` bytes before the end of the
	 * checked data.  new check = old check xor delta, byte by byte.
	 * NULL for hashes. */
	void (*linear_delta)(uint8_t *delta, const uint8_t *old_bytes,
			     const uint8_t *new_bytes, size_t len,
			     uint64_t zeros);
	/* The check computed over a block's bytes, for every kind with a
	 * size: to verify a block before patching it, and for a hash (no
	 * linear_delta) to hash the patched block again. */
	size_t state_size;
	void (*init)(void *state);
	void (*update)(void *state, const void *data, size_t len);
	void (*final)(void *state, uint8_t *check);
	/* The check of len zero bytes, as stored (map.c's zero rule); NULL
	 * where it is not known. */
	void (*of_zeros)(uint8_t *check, uint64_t len);
} pp_check_kind;

/* The check of len bytes as stored, whatever the kind; false for "none". */
bool pp_check_compute(const pp_check_kind *kind, const uint8_t *data,
		      size_t len, uint8_t *check);
/* The kind with that ID, or NULL if it is not one partpack computes. */
const pp_check_kind *pp_check_kind_of(enum pp_check check);

#endif
