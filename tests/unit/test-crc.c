/* test-crc.c - CRC update arithmetic against brute force on random data. */
#include "crc.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static void fill_random(uint8_t *buf, size_t len, unsigned long long *seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)unit_random(seed);
}

/* Replaces [pos, pos + len) of message and checks that the arithmetic
 * update equals the CRC of the whole new message. */
static bool update_matches(uint8_t *message, size_t size, size_t pos,
			   size_t len, unsigned long long *seed)
{
	uint32_t old32 = pp_crc32(0, message, size);
	uint64_t old64 = pp_crc64(0, message, size);
	uint8_t *fresh = malloc(len ? len : 1);
	fill_random(fresh, len, seed);
	uint32_t d32 = pp_crc32(0, message + pos, len) ^ pp_crc32(0, fresh, len);
	uint64_t d64 = pp_crc64(0, message + pos, len) ^ pp_crc64(0, fresh, len);
	memcpy(message + pos, fresh, len);
	free(fresh);
	uint64_t zeros = size - pos - len;
	uint32_t new32 = old32 ^ pp_crc32_shift(d32, zeros);
	uint64_t new64 = old64 ^ pp_crc64_shift(d64, zeros);
	return new32 == pp_crc32(0, message, size) &&
	       new64 == pp_crc64(0, message, size);
}

static void test_known_values(void)
{
	const char *text = "123456789";
	CHECK(pp_crc32(0, text, 9) == 0xCBF43926, "CRC-32 check value");
	CHECK(pp_crc64(0, text, 9) == 0x995DC9BBDF1939FAULL,
	      "CRC-64/XZ check value");
}

static void test_shift_is_appending_zeros(void)
{
	unsigned long long seed = 7;
	uint8_t buf[300] = { 0 };
	bool ok = true;
	for (size_t zeros = 0; zeros < 200 && ok; zeros += 13) {
		fill_random(buf, 100, &seed);
		memset(buf + 100, 0, zeros);
		/* crc0(M || 0^n) computed directly versus shifted: crc0 is
		 * crc(M) ^ crc(0^len(M)) for equal lengths. */
		uint8_t zero_msg[300] = { 0 };
		uint64_t crc0_long = pp_crc64(0, buf, 100 + zeros) ^
			pp_crc64(0, zero_msg, 100 + zeros);
		uint64_t crc0_short = pp_crc64(0, buf, 100) ^
			pp_crc64(0, zero_msg, 100);
		uint32_t c32_long = pp_crc32(0, buf, 100 + zeros) ^
			pp_crc32(0, zero_msg, 100 + zeros);
		uint32_t c32_short = pp_crc32(0, buf, 100) ^
			pp_crc32(0, zero_msg, 100);
		ok = pp_crc64_shift(crc0_short, zeros) == crc0_long &&
			pp_crc32_shift(c32_short, zeros) == c32_long;
	}
	CHECK(ok, "shift(crc0(M), n) == crc0(M followed by n zero bytes)");
	CHECK(pp_crc64_shift(0x1234, 0) == 0x1234 &&
	      pp_crc32_shift(0x1234, 0) == 0x1234, "shift by 0 is identity");
}

static void test_random_updates(void)
{
	unsigned long long seed = 12345;
	size_t size = 1 << 20;
	uint8_t *message = malloc(size);
	fill_random(message, size, &seed);
	bool ok = true;
	int rounds = 0;
	for (; rounds < 300 && ok; rounds++) {
		size_t pos = unit_random(&seed) % size;
		size_t len = unit_random(&seed) % (size - pos + 1);
		if (rounds % 3 == 0)
			len %= 64;  /* many small patches too */
		ok = update_matches(message, size, pos, len, &seed);
	}
	CHECK(ok, "CRC-32 and CRC-64 updates equal brute force (%d random "
	      "patches of a 1 MiB message)", rounds);
	ok = update_matches(message, size, 0, size, &seed) &&
		update_matches(message, size, size - 1, 1, &seed) &&
		update_matches(message, size, 0, 1, &seed) &&
		update_matches(message, size, 5, 0, &seed);
	CHECK(ok, "edge cases: whole message, last byte, first byte, empty");
	free(message);
}

static void test_large_shift(void)
{
	/* The shift must work for image-sized distances: compare x^(8n)
	 * computed as one shift with two half shifts. */
	bool ok = true;
	unsigned long long seed = 99;
	for (int i = 0; i < 50 && ok; i++) {
		uint64_t c = unit_random(&seed);
		uint64_t n = unit_random(&seed) >> 20;  /* up to 2^44 bytes */
		uint64_t half = n / 2;
		ok = pp_crc64_shift(c, n) ==
			pp_crc64_shift(pp_crc64_shift(c, half), n - half) &&
			pp_crc32_shift((uint32_t)c, n) ==
			pp_crc32_shift(pp_crc32_shift((uint32_t)c, half),
				       n - half);
	}
	CHECK(ok, "shifts by up to 16 TiB compose");
}

int main(void)
{
	test_known_values();
	test_shift_is_appending_zeros();
	test_random_updates();
	test_large_shift();
	return unit_done();
}
