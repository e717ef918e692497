/*
 * check.c - the kinds of integrity check a block may carry, and how each
 * is brought up to date when a patch changes some of the block's bytes.
 *
 * There are two ways.  A linear check (CRC-32, CRC-64) changes by an amount
 * that depends only on the changed bytes and on how far from the end of the
 * block they lie (crc.c): the patcher reads the old bytes it replaces, not
 * the block.  A hash (SHA-256) has no such algebra: the patcher hashes the
 * block again with the new bytes laid over.
 *
 * Every kind can also be computed over a block's bytes (init, update,
 * final): before a patch, the patcher checks each block it touches against
 * its stored check, since CRC arithmetic would carry an existing error into
 * a fresh-looking check.
 *
 * Every function here produces the check's bytes as the containers store
 * them: CRCs little-endian (xz and gzip both), SHA-256 in its own byte
 * order.  So for a linear kind the new field is the old one xor the delta,
 * byte by byte, and for a hash it is what `final` writes, whatever the
 * kind.  A container whose field differs from this would say so in its own
 * file.
 */
#include "check.h"
#include "crc.h"
#include "sha256.h"

#include <stddef.h>
#include <stdlib.h>

/* libxxhash's own code, inlined: so XXH64's state can live where the
 * patcher puts a hash's state (state_size bytes), which the shared
 * library's opaque type does not allow. */
#define XXH_INLINE_ALL
#include <xxhash.h>

static void crc32_delta(uint8_t *delta, const uint8_t *old_bytes,
			const uint8_t *new_bytes, size_t len, uint64_t zeros)
{
	/* crc(old) ^ crc(new) is crc0(old ^ new) for equal lengths. */
	uint32_t d = pp_crc32(0, old_bytes, len) ^ pp_crc32(0, new_bytes, len);
	pp_put_le32(delta, pp_crc32_shift(d, zeros));
}

static void crc32_init(void *state)
{
	*(uint32_t *)state = 0;
}

static void crc32_update(void *state, const void *data, size_t len)
{
	*(uint32_t *)state = pp_crc32(*(uint32_t *)state, data, len);
}

static void crc32_final(void *state, uint8_t *check)
{
	pp_put_le32(check, *(uint32_t *)state);
}

static void crc64_delta(uint8_t *delta, const uint8_t *old_bytes,
			const uint8_t *new_bytes, size_t len, uint64_t zeros)
{
	uint64_t d = pp_crc64(0, old_bytes, len) ^ pp_crc64(0, new_bytes, len);
	pp_put_le64(delta, pp_crc64_shift(d, zeros));
}

static void crc64_init(void *state)
{
	*(uint64_t *)state = 0;
}

static void crc64_update(void *state, const void *data, size_t len)
{
	*(uint64_t *)state = pp_crc64(*(uint64_t *)state, data, len);
}

static void crc64_final(void *state, uint8_t *check)
{
	pp_put_le64(check, *(uint64_t *)state);
}

static void sha256_init(void *state)
{
	pp_sha256_init(state);
}

static void sha256_update(void *state, const void *data, size_t len)
{
	pp_sha256_update(state, data, len);
}

static void sha256_final(void *state, uint8_t *check)
{
	pp_sha256_final(state, check);
}

/* zstd's content checksum: the low 32 bits of XXH64 (seed 0),
 * little-endian. */
static void xxh64_init(void *state)
{
	XXH64_reset(state, 0);
}

static void xxh64_update(void *state, const void *data, size_t len)
{
	XXH64_update(state, data, len);
}

static void xxh64_final(void *state, uint8_t *check)
{
	pp_put_le32(check, (uint32_t)XXH64_digest(state));
}

/*
 * The check of n zero bytes.  A CRC register starts at all ones and the
 * result is xored with all ones; n zero bytes multiply the register by
 * x^(8n) (crc.c), so the CRC of n zeros is shift(~0, n) ^ ~0.  A hash has
 * no shortcut: the zeros are hashed.
 */
static void crc32_of_zeros(uint8_t *check, uint64_t len)
{
	pp_put_le32(check, pp_crc32_shift(UINT32_MAX, len) ^ UINT32_MAX);
}

static void crc64_of_zeros(uint8_t *check, uint64_t len)
{
	pp_put_le64(check, pp_crc64_shift(UINT64_MAX, len) ^ UINT64_MAX);
}

static void sha256_of_zeros(uint8_t *check, uint64_t len)
{
	pp_sha256 sha;
	pp_sha256_init(&sha);
	pp_sha256_zeros(&sha, len);
	pp_sha256_final(&sha, check);
}

static void xxh64_of_zeros(uint8_t *check, uint64_t len)
{
	static const uint8_t zeros[65536];
	XXH64_state_t state;
	xxh64_init(&state);
	for (uint64_t done = 0; done < len;) {
		size_t piece = (size_t)PP_MIN(len - done, sizeof zeros);
		xxh64_update(&state, zeros, piece);
		done += piece;
	}
	xxh64_final(&state, check);
}

/* The sizes agree with lzma_check_size() for these xz check IDs
 * (tests/unit/test-check.c holds them to it). */
static const pp_check_kind kinds[] = {
	{ .id = PP_CHECK_NONE, .name = "none", .size = 0 },
	{ .id = PP_CHECK_CRC32, .name = "crc32", .size = 4,
	  .linear_delta = crc32_delta, .state_size = sizeof(uint32_t),
	  .init = crc32_init, .update = crc32_update, .final = crc32_final,
	  .of_zeros = crc32_of_zeros },
	{ .id = PP_CHECK_CRC64, .name = "crc64", .size = 8,
	  .linear_delta = crc64_delta, .state_size = sizeof(uint64_t),
	  .init = crc64_init, .update = crc64_update, .final = crc64_final,
	  .of_zeros = crc64_of_zeros },
	{ .id = PP_CHECK_SHA256, .name = "sha256", .size = 32,
	  .state_size = sizeof(pp_sha256), .init = sha256_init,
	  .update = sha256_update, .final = sha256_final,
	  .of_zeros = sha256_of_zeros },
	{ .id = PP_CHECK_XXH64, .name = "xxh64", .size = 4,
	  .state_size = sizeof(XXH64_state_t), .init = xxh64_init,
	  .update = xxh64_update, .final = xxh64_final,
	  .of_zeros = xxh64_of_zeros },
};

bool pp_check_compute(const pp_check_kind *kind, const uint8_t *data,
		      size_t len, uint8_t *check)
{
	/* Every kind's state fits here (the largest, SHA-256's, is ~112 B). */
	_Alignas(max_align_t) uint8_t state[256];
	if (!kind->init || kind->state_size > sizeof state)
		return false;
	kind->init(state);
	kind->update(state, data, len);
	kind->final(state, check);
	return true;
}

const pp_check_kind *pp_check_kind_of(enum pp_check check)
{
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
		if (kinds[i].id == check)
			return &kinds[i];
	return NULL;
}

const char *pp_check_name(enum pp_check check)
{
	const pp_check_kind *kind = pp_check_kind_of(check);
	return kind ? kind->name : "unknown";
}
