/*
 * fuzz-bmap.c - libFuzzer harness for the bmap parser: whatever the bytes
 * of a bmap file given to partpatch --bmap, pp_bmap_parse either accepts
 * them or fails with a status and a message, and never crashes, hangs or
 * leaks.  What it accepts is what the updater relies on: ranges in order,
 * not overlapping, inside the image, with a sane block size.
 *
 * Nearly every mutation breaks BmapFileChecksum, so the harness also feeds
 * the parser the input with that checksum made right, to get past it.
 *
 * And the reader as partpatch --bmap uses it: the bytes are written to a
 * file and read with pp_bmap_open against an archive of the image size
 * the text declares, which must accept exactly what the parser accepted;
 * what it read is written back with pp_bmap_save (a temporary file beside
 * it, renamed) and read again, giving the same ranges.
 */
#include "archive.h"
#include "blocks.h"
#include "bmap.h"
#include "sha256.h"
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static char temp_dir[256], bmap_path[300], saved_path[300];

static void set_up(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(temp_dir, sizeof temp_dir, "%s/fuzz-bmap.XXXXXX", base);
	if (!mkdtemp(temp_dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(bmap_path, sizeof bmap_path, "%s/in.bmap", temp_dir);
	snprintf(saved_path, sizeof saved_path, "%s/saved.bmap", temp_dir);
}

static void tear_down(void)
{
	unlink(bmap_path);
	unlink(saved_path);
	rmdir(temp_dir);
}

/* The file's ranges, as the reader of partpatch --bmap sees them against an
 * image of image_size bytes (an archive of one block of that size). */
static int open_file(const char *path, uint64_t image_size, pp_bmap **bmap)
{
	pp_block block = { .usize = image_size };
	pp_archive archive = { .path = "fuzz.xz", .fd = -1, .blocks = &block,
			       .block_count = 1 };
	pp_error err = { 0 };
	int status = pp_bmap_open(&archive, path, bmap, &err);
	REQUIRE(status == 0 || (err.status == status && err.message[0]));
	return status;
}

static bool same_ranges(const pp_bmap *a, const pp_bmap *b)
{
	if (a->count != b->count || a->image_size != b->image_size)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (a->ranges[i].first != b->ranges[i].first ||
		    a->ranges[i].last != b->ranges[i].last ||
		    memcmp(a->ranges[i].sha256, b->ranges[i].sha256, 32) != 0)
			return false;
	return true;
}

/* Through files: pp_bmap_open agrees with the parser, and what it read
 * survives pp_bmap_save and a second pp_bmap_open. */
static void check_file(const char *text, size_t len, const pp_bmap *parsed)
{
	int fd = open(bmap_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (len && write(fd, text, len) != (ssize_t)len) || close(fd)) {
		perror(bmap_path);
		exit(1);
	}
	pp_bmap *bmap = NULL, *again = NULL;
	int status = open_file(bmap_path, parsed->image_size, &bmap);
	REQUIRE(status == 0 && same_ranges(bmap, parsed));
	pp_error err = { 0 };
	REQUIRE(pp_bmap_save(bmap, saved_path, &err) == 0);
	REQUIRE(open_file(saved_path, parsed->image_size, &again) == 0);
	REQUIRE(same_ranges(bmap, again));
	pp_bmap_close(bmap);
	pp_bmap_close(again);
}

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
	check_file(text, len, &bmap);
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
	static bool ready;
	if (!ready) {
		set_up();
		atexit(tear_down);
		ready = true;
	}
	check_parse((const char *)data, size);
	check_with_checksum_fixed(data, size);
	return 0;
}
