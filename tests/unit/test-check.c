/*
 * test-check.c - the check kinds: sizes as liblzma has them, and the update
 * each kind offers producing exactly the bytes a fresh check would store.
 */
#include "check.h"
#include "crc.h"
#include "sha256.h"
#include "unit.h"

#include <lzma.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 5000

/* A kind's check of data, as stored: computed afresh, not by a delta. */
static void stored_check(const pp_check_kind *kind, const uint8_t *data,
			 size_t len, uint8_t *check)
{
	if (kind->id == PP_CHECK_CRC32)
		pp_put_le32(check, pp_crc32(0, data, len));
	else if (kind->id == PP_CHECK_CRC64)
		pp_put_le64(check, pp_crc64(0, data, len));
}

static void test_table(void)
{
	static const struct {
		enum pp_check id;
		const char *name;
	} known[] = {
		{ PP_CHECK_NONE, "none" },
		{ PP_CHECK_CRC32, "crc32" },
		{ PP_CHECK_CRC64, "crc64" },
		{ PP_CHECK_SHA256, "sha256" },
	};
	for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
		const pp_check_kind *kind = pp_check_kind_of(known[i].id);
		CHECK(kind && kind->id == known[i].id &&
		      strcmp(kind->name, known[i].name) == 0 &&
		      strcmp(pp_check_name(known[i].id), known[i].name) == 0,
		      "%s: a kind with its name", known[i].name);
		CHECK(kind && kind->size ==
		      lzma_check_size((lzma_check)known[i].id) &&
		      kind->size <= PP_CHECK_SIZE_MAX,
		      "%s: the size liblzma gives its xz check ID",
		      known[i].name);
		bool linear = known[i].id == PP_CHECK_CRC32 ||
			known[i].id == PP_CHECK_CRC64;
		CHECK(kind && (kind->size == 0 ||
			       ((kind->linear_delta != NULL) == linear &&
				kind->state_size > 0 && kind->init &&
				kind->update && kind->final)),
		      "%s: updated one way, %s, and computable over a "
		      "block's bytes", known[i].name,
		      linear ? "linear" : "by re-hashing");
	}
	CHECK(pp_check_kind_of((enum pp_check)7) == NULL &&
	      pp_check_kind_of((enum pp_check)15) == NULL &&
	      pp_check_kind_of((enum pp_check)17) == NULL,
	      "reserved and impossible IDs have no kind");
	CHECK(strcmp(pp_check_name((enum pp_check)7), "unknown") == 0,
	      "and are called unknown");
}

/* Every linear kind: old check xor the pieces' deltas is the new check. */
static void test_linear(enum pp_check id)
{
	const pp_check_kind *kind = pp_check_kind_of(id);
	unsigned long long seed = 0x5eed + (unsigned)id;
	uint8_t *block = malloc(BLOCK), *fresh = malloc(BLOCK);
	uint8_t old_check[PP_CHECK_SIZE_MAX], new_check[PP_CHECK_SIZE_MAX];
	uint8_t delta[PP_CHECK_SIZE_MAX];
	bool all_match = true;
	for (size_t i = 0; i < BLOCK; i++)
		block[i] = (uint8_t)unit_random(&seed);
	for (int round = 0; round < 200; round++) {
		size_t pos = (size_t)(unit_random(&seed) % BLOCK);
		size_t len = (size_t)(unit_random(&seed) % (BLOCK - pos + 1));
		for (size_t i = 0; i < len; i++)
			fresh[i] = (uint8_t)unit_random(&seed);
		stored_check(kind, block, BLOCK, old_check);
		kind->linear_delta(delta, block + pos, fresh, len,
				   BLOCK - pos - len);
		memcpy(block + pos, fresh, len);
		stored_check(kind, block, BLOCK, new_check);
		for (size_t i = 0; i < kind->size; i++)
			all_match &= (uint8_t)(old_check[i] ^ delta[i]) ==
				     new_check[i];
	}
	CHECK(all_match, "%s: old xor delta is the new stored check, byte by "
	      "byte, for 200 random changes", kind->name);
	/* Computed over the bytes in pieces, as a patch verifies a block. */
	void *state = malloc(kind->state_size);
	stored_check(kind, block, BLOCK, old_check);
	kind->init(state);
	kind->update(state, block, 1234);
	kind->update(state, block + 1234, BLOCK - 1234);
	kind->final(state, new_check);
	CHECK(memcmp(new_check, old_check, kind->size) == 0,
	      "%s: init, update and final give the stored check", kind->name);
	free(state);
	free(block);
	free(fresh);
}

static void test_hash(void)
{
	const pp_check_kind *kind = pp_check_kind_of(PP_CHECK_SHA256);
	void *state = malloc(kind->state_size);
	uint8_t digest[PP_CHECK_SIZE_MAX], expect[32];
	pp_sha256 sha;
	pp_sha256_init(&sha);
	pp_sha256_update(&sha, "abcdef", 6);
	pp_sha256_final(&sha, expect);
	kind->init(state);
	kind->update(state, "abc", 3);
	kind->update(state, "def", 3);
	kind->final(state, digest);
	CHECK(memcmp(digest, expect, 32) == 0,
	      "sha256: init, update and final hash as SHA-256 does");
	free(state);
}

/* zstd's content checksum: the low 32 bits of XXH64, little-endian.
 * XXH64 of nothing is 0xEF46DB3751D8E999 (xxHash's own test vector). */
static void test_xxh64(void)
{
	const pp_check_kind *kind = pp_check_kind_of(PP_CHECK_XXH64);
	CHECK(kind && kind->size == 4 && !kind->linear_delta && kind->init &&
	      strcmp(kind->name, "xxh64") == 0 &&
	      strcmp(pp_check_name(PP_CHECK_XXH64), "xxh64") == 0,
	      "xxh64: 4 bytes, updated by re-hashing");
	if (!kind)
		return;
	void *state = malloc(kind->state_size);
	uint8_t check[PP_CHECK_SIZE_MAX];
	kind->init(state);
	kind->final(state, check);
	static const uint8_t empty[4] = { 0x99, 0xE9, 0xD8, 0x51 };
	CHECK(memcmp(check, empty, 4) == 0,
	      "xxh64 of nothing: the low half of 0xEF46DB3751D8E999, LE");
	/* Fed in two pieces, as a decoder feeds it, or in one. */
	uint8_t data[1000], whole[4];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7);
	kind->init(state);
	kind->update(state, data, 1000);
	kind->final(state, whole);
	kind->init(state);
	kind->update(state, data, 333);
	kind->update(state, data + 333, 667);
	kind->final(state, check);
	CHECK(memcmp(check, whole, 4) == 0, "xxh64: pieces hash as the whole");
	free(state);
}

int main(void)
{
	test_table();
	test_linear(PP_CHECK_CRC32);
	test_linear(PP_CHECK_CRC64);
	test_hash();
	test_xxh64();
	return unit_done();
}
