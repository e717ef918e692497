/*
 * crc.c - CRC arithmetic that makes a patch cost what it writes.
 *
 * CRC-32 (gzip, xz) and CRC-64/ECMA-182 (xz) are affine over GF(2).  For two
 * messages A and B of the same length, crc(A) ^ crc(B) depends only on
 * A ^ B: it is crc0(A ^ B), the CRC with zero initial value and no final
 * xor.  crc0 ignores leading zero bytes, and each trailing zero byte
 * multiplies it by x^8 modulo the polynomial.  So when bytes [p, p + L) of
 * an N-byte message change,
 *
 *     new_crc = old_crc ^ shift(crc(old bytes) ^ crc(new bytes), N - p - L)
 *
 * where shift(c, n) = c * x^(8n) mod P.  That costs O(L + log n) instead of
 * re-reading the whole message.  zlib computes the CRC-32 shift
 * (crc32_combine with a zero second CRC is exactly that product); liblzma
 * has no CRC-64 combine, so the CRC-64 shift is done here.
 *
 * Both CRCs are "reflected": bit 63 (or 31) of the register holds the
 * coefficient of x^0, and bit 0 that of x^63.  In that representation a
 * multiplication by x is a right shift with a conditional xor of the
 * reversed polynomial.
 */
#include "crc.h"

#include <lzma.h>
#include <pthread.h>
#include <zlib.h>

#define CRC64_POLY_REFLECTED 0xC96C5795D7870F42ULL
#define CRC64_ONE (1ULL << 63)  /* the polynomial 1 */

uint32_t pp_crc32(uint32_t crc, const void *buf, size_t len)
{
	/* zlib takes uInt lengths: feed large buffers in pieces. */
	const uint8_t *p = buf;
	while (len > 0) {
		uInt piece = (uInt)PP_MIN(len, (size_t)1 << 30);
		crc = (uint32_t)crc32(crc, p, piece);
		p += piece;
		len -= piece;
	}
	return crc;
}

uint64_t pp_crc64(uint64_t crc, const void *buf, size_t len)
{
	return lzma_crc64(buf, len, crc);
}

uint32_t pp_crc32_shift(uint32_t crc0, uint64_t zeros)
{
	return (uint32_t)crc32_combine64(crc0, 0, (z_off64_t)zeros);
}

/* a * b mod P, both reflected. */
static uint64_t crc64_multiply(uint64_t a, uint64_t b)
{
	uint64_t product = 0;
	for (uint64_t bit = CRC64_ONE; bit != 0; bit >>= 1) {
		if (a & bit)
			product ^= b;
		/* b *= x */
		b = (b & 1) ? (b >> 1) ^ CRC64_POLY_REFLECTED : b >> 1;
	}
	return product;
}

/* x^(2^k) mod P for k = 0..63, so x^n needs one product per set bit of n. */
static uint64_t crc64_x_pow2[64];
static pthread_once_t crc64_table_once = PTHREAD_ONCE_INIT;

static void crc64_table_init(void)
{
	uint64_t power = CRC64_ONE >> 1;  /* x^1 */
	for (int k = 0; k < 64; k++) {
		crc64_x_pow2[k] = power;
		power = crc64_multiply(power, power);
	}
}

uint64_t pp_crc64_shift(uint64_t crc0, uint64_t zeros)
{
	pthread_once(&crc64_table_once, crc64_table_init);
	/* x^(8 * zeros): the bits of zeros, starting at 2^3. */
	int k = 3;
	for (uint64_t n = zeros; n != 0; n >>= 1, k++) {
		if (n & 1)
			crc0 = crc64_multiply(crc64_x_pow2[k & 63], crc0);
	}
	return crc0;
}
