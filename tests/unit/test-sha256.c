/* test-sha256.c - SHA-256 against the FIPS 180-4 examples and padding edges. */
#include "sha256.h"
#include "unit.h"

#include <string.h>

static void to_hex(const uint8_t digest[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 15];
	}
	hex[64] = '\0';
}

static void hash_once(const void *data, size_t len, char hex[65])
{
	pp_sha256 ctx;
	uint8_t digest[32];
	pp_sha256_init(&ctx);
	pp_sha256_update(&ctx, data, len);
	pp_sha256_final(&ctx, digest);
	to_hex(digest, hex);
}

static void check_vector(const char *message, const char *expected,
			 const char *label)
{
	char hex[65];
	hash_once(message, strlen(message), hex);
	CHECK(strcmp(hex, expected) == 0, "%s: %s", label, hex);
}

/* One million 'a's in pieces of 1, 2, 3, ... 127 bytes, then again, so
 * the partial-block path meets every fill level. */
static void check_million_a(void)
{
	static uint8_t piece[127];
	memset(piece, 'a', sizeof piece);
	pp_sha256 ctx;
	uint8_t digest[32];
	char hex[65];
	size_t left = 1000000, size = 1;

	pp_sha256_init(&ctx);
	while (left > 0) {
		size_t take = PP_MIN(size, left);
		pp_sha256_update(&ctx, piece, take);
		left -= take;
		size = size % sizeof piece + 1;
	}
	pp_sha256_final(&ctx, digest);
	to_hex(digest, hex);
	CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
			  "f1809a48a497200e046d39ccc7112cd0") == 0,
	      "one million 'a' in odd pieces: %s", hex);
}

/* Lengths around the 56-byte limit where padding spills into a second
 * block; digests from sha256sum. */
static void check_padding_edges(void)
{
	static const struct {
		size_t length;
		const char *digest;
	} cases[] = {
		{ 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
		{ 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
		{ 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
		{ 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
		{ 65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0" },
		{ 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
		{ 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
	};
	uint8_t message[120];
	memset(message, 'a', sizeof message);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char hex[65];
		hash_once(message, cases[i].length, hex);
		CHECK(strcmp(hex, cases[i].digest) == 0, "%zu 'a's", cases[i].length);
	}
}

/* Feeding a buffer byte by byte, or split at every point, changes nothing. */
static void check_split_invariance(void)
{
	uint8_t message[300];
	unsigned long long seed = 0x5eed;
	for (size_t i = 0; i < sizeof message; i++)
		message[i] = (uint8_t)unit_random(&seed);
	char whole[65];
	hash_once(message, sizeof message, whole);

	int mismatches = 0;
	for (size_t split = 0; split <= sizeof message; split++) {
		pp_sha256 ctx;
		uint8_t digest[32];
		char hex[65];
		pp_sha256_init(&ctx);
		pp_sha256_update(&ctx, message, split);
		pp_sha256_update(&ctx, NULL, 0);
		pp_sha256_update(&ctx, message + split, sizeof message - split);
		pp_sha256_final(&ctx, digest);
		to_hex(digest, hex);
		mismatches += strcmp(hex, whole) != 0;
	}
	CHECK(mismatches == 0, "every split point gives the one-shot digest");
}

static void check_reuse_after_final(void)
{
	pp_sha256 ctx;
	uint8_t digest[32];
	char hex[65];
	pp_sha256_init(&ctx);
	pp_sha256_update(&ctx, "junk", 4);
	pp_sha256_final(&ctx, digest);
	pp_sha256_update(&ctx, "abc", 3);
	pp_sha256_final(&ctx, digest);
	to_hex(digest, hex);
	CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223"
			  "b00361a396177a9cb410ff61f20015ad") == 0,
	      "a finished context starts afresh");
}

/* ---- the portable compression on its own -------------------------------- */

/* A message's digest through pp_sha256_compress_portable alone, padded
 * here as FIPS 180-4 5.1.1 says; the initial state is 5.3.3's. */
static void portable_digest(const uint8_t *message, size_t len, char hex[65])
{
	uint32_t state[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};
	size_t whole = len / 64, rest = len % 64;
	pp_sha256_compress_portable(state, message, whole);
	uint8_t tail[128] = { 0 };
	if (rest > 0)
		memcpy(tail, message + whole * 64, rest);
	tail[rest] = 0x80;
	size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
	uint64_t bits = (uint64_t)len * 8;
	for (int i = 0; i < 8; i++)
		tail[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));
	pp_sha256_compress_portable(state, tail, tail_len / 64);
	uint8_t digest[32];
	for (int i = 0; i < 32; i++)
		digest[i] = (uint8_t)(state[i / 4] >> (24 - 8 * (i % 4)));
	to_hex(digest, hex);
}

/* The FIPS 180-4 examples through the portable path, whatever path
 * pp_sha256 takes on this processor. */
static void check_portable_vectors(void)
{
	static const struct {
		const char *message;
		const char *digest;
	} cases[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
		{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		  "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char hex[65];
		portable_digest((const uint8_t *)cases[i].message,
				strlen(cases[i].message), hex);
		CHECK(strcmp(hex, cases[i].digest) == 0,
		      "portable compression: FIPS 180-4 example %zu", i + 1);
	}
	uint8_t *million = malloc(1000000);
	CHECK(million != NULL, "1 MB for the million 'a's");
	if (!million)
		return;
	memset(million, 'a', 1000000);
	char hex[65];
	portable_digest(million, 1000000, hex);
	CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
			  "f1809a48a497200e046d39ccc7112cd0") == 0,
	      "portable compression: one million 'a's");
	free(million);
}

/* Random messages of every length up to 1 KiB and a few of 1 MiB: the
 * portable compression and pp_sha256 (which takes the SHA extensions
 * where the processor has them) agree on each. */
static void check_portable_agrees(void)
{
	enum { BIG = 1 << 20 };
	uint8_t *message = malloc(BIG);
	CHECK(message != NULL, "1 MiB for the random messages");
	if (!message)
		return;
	unsigned long long seed = 0x5a256;
	for (size_t i = 0; i < BIG; i++)
		message[i] = (uint8_t)unit_random(&seed);
	int mismatches = 0;
	for (size_t len = 0; len <= 1024 + 4; len++) {
		size_t at = (size_t)(unit_random(&seed) % (BIG - len));
		char ours[65], theirs[65];
		portable_digest(message + at, len, ours);
		hash_once(message + at, len, theirs);
		mismatches += strcmp(ours, theirs) != 0;
	}
	for (size_t len = BIG - 3; len <= BIG; len++) {
		char ours[65], theirs[65];
		portable_digest(message + (BIG - len), len, ours);
		hash_once(message + (BIG - len), len, theirs);
		mismatches += strcmp(ours, theirs) != 0;
	}
	CHECK(mismatches == 0, "the portable compression and pp_sha256 (SHA "
	      "extensions used here: %s) agree on 1033 messages up to 1 MiB",
	      pp_sha256_accelerated() ? "yes" : "no");
	free(message);
}

int main(void)
{
	check_vector("",
		     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		     "empty message");
	check_vector("abc",
		     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		     "\"abc\"");
	check_vector("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
		     "448-bit message");
	check_vector("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		     "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
		     "896-bit message");
	check_million_a();
	check_padding_edges();
	check_split_invariance();
	check_reuse_after_final();
	check_portable_vectors();
	check_portable_agrees();
	return unit_done();
}
