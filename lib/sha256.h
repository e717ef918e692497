/* sha256.h - SHA-256 (sha256.c). */
#ifndef PARTPACK_SHA256_H
#define PARTPACK_SHA256_H

#include "base.h"

typedef struct pp_sha256 {
	uint32_t state[8];
	uint64_t length;
	uint8_t block[64];
	size_t fill;
} pp_sha256;

void pp_sha256_init(pp_sha256 *ctx);
void pp_sha256_update(pp_sha256 *ctx, const void *data, size_t len);
void pp_sha256_final(pp_sha256 *ctx, uint8_t digest[32]);
/* Hashes len zero bytes (a hole, an all-zero block). */
void pp_sha256_zeros(pp_sha256 *ctx, uint64_t len);

/*
 * The portable compression (FIPS 180-4 6.2.2) of `blocks` whole 64-byte
 * blocks at p into state, which the functions above use where the
 * processor lacks the SHA extensions (pp_sha256_accelerated: it has them
 * here).  For test-sha256, which holds the two paths to the same answers.
 */
void pp_sha256_compress_portable(uint32_t state[8], const uint8_t *p,
				 size_t blocks);
bool pp_sha256_accelerated(void);

#endif
