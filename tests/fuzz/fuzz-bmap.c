/*
 * fuzz-bmap.c - libFuzzer harness for the bmap parser: whatever the bytes
 * of a bmap file given to partpatch --bmap, pp_bmap_parse either accepts
 * them or fails with a status and a message, and never crashes, hangs or
 * leaks.  What it accepts is what the updater relies on: ranges in order,
 * not overlapping, inside the image, with a sane block size.
 *
 * Nearly every mutation breaks BmapFileChecksum, so the harness also feeds
 * the parser the input with that checksum made right, to get past it.
 */
#include "internal.h"
#include "fuzz.h"

#include <string.h>

static const char hex_digits[] = "0123456789abcdef";

static void check_parse(const char *text, size_t len)
{
	pp_bmap bmap;
	pp_error err = { 0 };
	int status = pp_bmap_parse(&bmap, text, len, "fuzz.bmap", &err);
	if (status != 0) {
		REQUIRE(status < 0 && err.status == status && err.message[0]);
		return;
	}
	REQUIRE(bmap.block_size > 0);
	uint64_t blocks = (bmap.image_size + bmap.block_size - 1) /
		bmap.block_size;
	for (size_t i = 0; i < bmap.count; i++) {
		const pp_bmap_range *r = &bmap.ranges[i];
		REQUIRE(r->first <= r->last && r->last < blocks && !r->dirty);
		REQUIRE(i == 0 || bmap.ranges[i - 1].last < r->first);
	}
	pp_bmap_release(&bmap);
}

/* The input with its BmapFileChecksum value set as bmap-tools computes it:
 * the SHA-256 of the text with the value zeroed. */
static void check_with_checksum_fixed(const uint8_t *data, size_t size)
{
	static const char tag[] = "<BmapFileChecksum>";
	char *text = malloc(size ? size : 1);
	if (!text)
		return;
	memcpy(text, data, size);
	char *at = size > sizeof tag ? memmem(text, size, tag, sizeof tag - 1) :
		NULL;
	if (at) {
		at += sizeof tag - 1;
		while (at < text + size && *at == ' ')
			at++;
	}
	if (at && text + size - at >= 64) {
		memset(at, '0', 64);
		pp_sha256 sha;
		uint8_t digest[32];
		pp_sha256_init(&sha);
		pp_sha256_update(&sha, text, size);
		pp_sha256_final(&sha, digest);
		for (int i = 0; i < 32; i++) {
			at[2 * i] = hex_digits[digest[i] >> 4];
			at[2 * i + 1] = hex_digits[digest[i] & 15];
		}
		check_parse(text, size);
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parse((const char *)data, size);
	check_with_checksum_fixed(data, size);
	return 0;
}
