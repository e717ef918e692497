/*
 * sha256.c - SHA-256 as specified in FIPS 180-4, for xz's SHA-256 check.
 *
 * Portable C with no dependencies: the message is read as big-endian words
 * byte by byte, so neither alignment nor host byte order matters.  Where
 * the processor has the SHA extensions (x86 SHA-NI, found with CPUID at run
 * time), blocks go through them instead, about seven times as fast (1.23
 * GB/s against 0.12-0.17 portable; 2026-12-03, AMD EPYC): bmap files,
 * digests and --sha256 hash whole images.
 */
#include "sha256.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1
#endif

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t round_constants[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* FIPS 180-4 5.3.3: the first 32 bits of the fractional parts of the square
 * roots of the first 8 primes. */
static const uint32_t initial_state[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t rotr32(uint32_t x, unsigned n)
{
	return x >> n | x << (32 - n);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* The six logical functions of FIPS 180-4 4.1.2. */
static inline uint32_t choose(uint32_t x, uint32_t y, uint32_t z)
{
	return (x & y) ^ (~x & z);
}

static inline uint32_t majority(uint32_t x, uint32_t y, uint32_t z)
{
	return (x & y) ^ (x & z) ^ (y & z);
}

static inline uint32_t big_sigma0(uint32_t x)
{
	return rotr32(x, 2) ^ rotr32(x, 13) ^ rotr32(x, 22);
}

static inline uint32_t big_sigma1(uint32_t x)
{
	return rotr32(x, 6) ^ rotr32(x, 11) ^ rotr32(x, 25);
}

static inline uint32_t small_sigma0(uint32_t x)
{
	return rotr32(x, 7) ^ rotr32(x, 18) ^ (x >> 3);
}

static inline uint32_t small_sigma1(uint32_t x)
{
	return rotr32(x, 17) ^ rotr32(x, 19) ^ (x >> 10);
}

/* FIPS 180-4 6.2.2: folds one 64-byte block into the hash state. */
static void compress(uint32_t state[8], const uint8_t block[64])
{
	uint32_t schedule[64];
	for (int t = 0; t < 16; t++)
		schedule[t] = get_be32(block + 4 * t);
	for (int t = 16; t < 64; t++)
		schedule[t] = small_sigma1(schedule[t - 2]) + schedule[t - 7] +
			      small_sigma0(schedule[t - 15]) + schedule[t - 16];

	uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
	uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
	for (int t = 0; t < 64; t++) {
		uint32_t t1 = h + big_sigma1(e) + choose(e, f, g) +
			      round_constants[t] + schedule[t];
		uint32_t t2 = big_sigma0(a) + majority(a, b, c);
		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
	state[4] += e;
	state[5] += f;
	state[6] += g;
	state[7] += h;
}

#ifdef HAVE_SHA_NI
/*
 * The same compression with SHA256RNDS2, SHA256MSG1 and SHA256MSG2 (Intel
 * SHA extensions).  The instructions keep the eight working variables as
 * two vectors, {A, B, E, F} and {C, D, G, H} from the high lane down, and
 * do two rounds at a time with W[t] + K[t] in the low lanes of a third.
 * The schedule is built four words at a time in four rolling vectors:
 * W[t..t+3] = MSG2(MSG1(W[t-16..], W[t-12..]) + W[t-7..t-4], W[t-4..t-1]).
 */
__attribute__((target("sha,ssse3,sse4.1")))
static void compress_sha_ni(uint32_t state[8], const uint8_t *p, size_t blocks)
{
	/* Byte order: each 32-bit word of the message is big-endian. */
	const __m128i swap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11,
					  4, 5, 6, 7, 0, 1, 2, 3);
	__m128i abef = _mm_set_epi32((int)state[0], (int)state[1],
				     (int)state[4], (int)state[5]);
	__m128i cdgh = _mm_set_epi32((int)state[2], (int)state[3],
				     (int)state[6], (int)state[7]);
	for (; blocks > 0; blocks--, p += 64) {
		__m128i saved_abef = abef, saved_cdgh = cdgh, w[4];
		/* Unrolled, the four schedule vectors stay in registers and the
		 * schedule interleaves with the rounds: 1.23 GB/s against 0.76-0.91
		 * rolled (256 MiB, 2026-12-03, AMD EPYC), as fast as libcrypto. */
#pragma GCC unroll 16
		for (int g = 0; g < 16; g++) {
			__m128i *m = &w[g % 4];
			if (g < 4) {
				*m = _mm_shuffle_epi8(_mm_loadu_si128(
					(const __m128i *)(p + 16 * g)), swap);
			} else {
				__m128i older = _mm_sha256msg1_epu32(
					*m, w[(g + 1) % 4]);
				older = _mm_add_epi32(older, _mm_alignr_epi8(
					w[(g + 3) % 4], w[(g + 2) % 4], 4));
				*m = _mm_sha256msg2_epu32(older, w[(g + 3) % 4]);
			}
			__m128i wk = _mm_add_epi32(*m, _mm_loadu_si128(
				(const __m128i *)(round_constants + 4 * g)));
			cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
			wk = _mm_shuffle_epi32(wk, 0x0e);
			abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);
		}
		abef = _mm_add_epi32(abef, saved_abef);
		cdgh = _mm_add_epi32(cdgh, saved_cdgh);
	}
	uint32_t out[8];
	_mm_storeu_si128((__m128i *)out, abef);       /* F, E, B, A */
	_mm_storeu_si128((__m128i *)(out + 4), cdgh); /* H, G, D, C */
	state[0] = out[3];
	state[1] = out[2];
	state[2] = out[7];
	state[3] = out[6];
	state[4] = out[1];
	state[5] = out[0];
	state[6] = out[5];
	state[7] = out[4];
}

/* CPUID: leaf 7 EBX bit 29 is SHA; leaf 1 ECX bits 9 and 19 are SSSE3 and
 * SSE4.1.  Asked once; the answer never changes. */
static bool have_sha_ni(void)
{
	static int known;  /* 0 unknown, 1 no, 2 yes */
	int answer = __atomic_load_n(&known, __ATOMIC_RELAXED);
	if (answer == 0) {
		unsigned a, b, c, d;
		bool yes = __get_cpuid(1, &a, &b, &c, &d) &&
			(c & (1u << 9)) && (c & (1u << 19)) &&
			__get_cpuid_count(7, 0, &a, &b, &c, &d) &&
			(b & (1u << 29));
		answer = yes ? 2 : 1;
		__atomic_store_n(&known, answer, __ATOMIC_RELAXED);
	}
	return answer == 2;
}
#endif

void pp_sha256_compress_portable(uint32_t state[8], const uint8_t *p,
				 size_t blocks)
{
	for (; blocks > 0; blocks--, p += 64)
		compress(state, p);
}

bool pp_sha256_accelerated(void)
{
#ifdef HAVE_SHA_NI
	return have_sha_ni();
#else
	return false;
#endif
}

/* Folds whole 64-byte blocks into the state. */
static void compress_blocks(uint32_t state[8], const uint8_t *p, size_t blocks)
{
#ifdef HAVE_SHA_NI
	if (have_sha_ni()) {
		compress_sha_ni(state, p, blocks);
		return;
	}
#endif
	pp_sha256_compress_portable(state, p, blocks);
}

void pp_sha256_init(pp_sha256 *ctx)
{
	memcpy(ctx->state, initial_state, sizeof ctx->state);
	ctx->length = 0;
	ctx->fill = 0;
}

void pp_sha256_update(pp_sha256 *ctx, const void *data, size_t len)
{
	const uint8_t *p = data;
	if (len == 0)
		return;  /* data may be NULL then, which memcpy must not see */
	ctx->length += len;

	/* Top up a partial block first, so whole blocks can be hashed from
	 * the caller's buffer without copying. */
	if (ctx->fill > 0) {
		size_t take = PP_MIN(len, sizeof ctx->block - ctx->fill);
		memcpy(ctx->block + ctx->fill, p, take);
		ctx->fill += take;
		p += take;
		len -= take;
		if (ctx->fill < sizeof ctx->block)
			return;
		compress_blocks(ctx->state, ctx->block, 1);
		ctx->fill = 0;
	}
	size_t blocks = len / sizeof ctx->block;
	compress_blocks(ctx->state, p, blocks);
	p += blocks * sizeof ctx->block;
	len -= blocks * sizeof ctx->block;
	if (len > 0)
		memcpy(ctx->block, p, len);
	ctx->fill = len;
}

void pp_sha256_zeros(pp_sha256 *ctx, uint64_t len)
{
	static const uint8_t zeros[4096];
	while (len > 0) {
		size_t piece = (size_t)PP_MIN(sizeof zeros, len);
		pp_sha256_update(ctx, zeros, piece);
		len -= piece;
	}
}

void pp_sha256_final(pp_sha256 *ctx, uint8_t digest[32])
{
	/* FIPS 180-4 5.1.1: a 1 bit, zeros up to 56 mod 64 bytes, then the
	 * message length in bits as a 64-bit big-endian number. */
	uint64_t bits = ctx->length * 8;
	const size_t length_field = sizeof ctx->block - 8;

	ctx->block[ctx->fill++] = 0x80;
	if (ctx->fill > length_field) {
		memset(ctx->block + ctx->fill, 0, sizeof ctx->block - ctx->fill);
		compress_blocks(ctx->state, ctx->block, 1);
		ctx->fill = 0;
	}
	memset(ctx->block + ctx->fill, 0, length_field - ctx->fill);
	put_be32(ctx->block + length_field, (uint32_t)(bits >> 32));
	put_be32(ctx->block + length_field + 4, (uint32_t)bits);
	compress_blocks(ctx->state, ctx->block, 1);

	for (int i = 0; i < 8; i++)
		put_be32(digest + 4 * i, ctx->state[i]);
	pp_sha256_init(ctx);  /* a finished context is ready for reuse */
}
