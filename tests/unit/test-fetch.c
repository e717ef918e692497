/*
 * test-fetch.c - where pp_fetch takes each block from: the stored layout a
 * block table implies against the one the chunks say, for every format;
 * and fetches from a local archive with seeds of every kind, judged by the
 * report (what was seeded, fetched, verified) and by the bytes written.
 */
#include "archive.h"
#include "blocks.h"
#include "sha256.h"
#include "unit.h"

#define MIB (1u << 20)
#define IMAGE (6 * MIB)
#define BLOCK MIB

static const char *const words[6] = { "disk ", "image ", "block ", "stored ",
				      "range ", "\n" };

/* Text blocks, a noise block (does not compress), a zero block, and a
 * kept range with unaligned edges. */
static uint8_t *make_image(unsigned long long seed)
{
	uint8_t *image = calloc(1, IMAGE);
	unit_text(image, 2 * MIB, &seed, words);
	unit_noise(image + 2 * MIB, MIB, &seed);
	unit_text(image + 4 * MIB, 2 * MIB, &seed, words);
	return image;
}

static const pp_range keep[] = { { 4 * MIB + 4096, MIB + 12345 } };

static void pack(const char *name, const uint8_t *image, enum pp_format format,
		 enum pp_check check)
{
	pp_pack_options o;
	pp_pack_options_init(&o);
	o.format = format;
	o.check = check;
	o.level = format == PP_FORMAT_ZSTD ? 3 : 1;
	o.block_size = BLOCK;
	o.keep = keep;
	o.keep_count = 1;
	unit_write_file("image.raw", image, IMAGE);
	pp_error err;
	if (unit_pack("image.raw", name, &o, &err))
		printf("# pack: %s\n", err.message);
}

/* ---- stored_layout against stored_extents ----------------------------------- */

static bool same_extents(const pp_extent_list *a, const pp_extent_list *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (a->items[i].uoffset != b->items[i].uoffset ||
		    a->items[i].length != b->items[i].length ||
		    a->items[i].foffset != b->items[i].foffset)
			return false;
	return true;
}

static void check_layouts(const char *what, enum pp_format format,
			  enum pp_check check, const uint8_t *image)
{
	pack("layout.pp", image, format, check);
	pp_archive *a;
	if (pp_open(unit_path("layout.pp"), PP_OPEN_READ, &a, NULL)) {
		CHECK(false, "%s: opened", what);
		return;
	}
	size_t agree = 0, kept = 0, guessed_kept = 0;
	for (size_t i = 0; i < a->block_count; i++) {
		pp_extent_list real = { 0 }, guess = { 0 };
		const pp_block *b = &a->blocks[i];
		a->ops->stored_extents(a, i, &real, NULL);
		a->ops->stored_layout(a, i, &guess, NULL);
		/* A guess, when there is one, is exactly the chunks' layout;
		 * a block that did not compress may have none (zstd frames it
		 * otherwise), and then it is fetched whole. */
		if (guess.count == 0 || same_extents(&real, &guess))
			agree++;
		bool in_keep = b->uoffset >= keep[0].offset &&
			b->uoffset + b->usize <= keep[0].offset + keep[0].length;
		kept += in_keep;
		guessed_kept += in_keep && guess.count > 0;
		pp_extent_list_free(&real);
		pp_extent_list_free(&guess);
	}
	CHECK(agree == a->block_count && kept >= 2 && guessed_kept == kept,
	      "%s: the layout the sizes imply is the chunks' (%zu of %zu "
	      "blocks; %zu of %zu kept blocks guessed)", what, agree,
	      a->block_count, guessed_kept, kept);
	pp_close(a);
}

/* ---- fetching from a local archive ---------------------------------------- */

static int fetch(const char *target, const char *out, const char *const *seeds,
		 size_t count, uint64_t flags, const char *sha256,
		 pp_fetch_report *report, pp_error *err)
{
	pp_fetch_options o;
	pp_fetch_options_init(&o);
	o.seeds = seeds;
	o.seed_count = count;
	o.flags = flags | PP_FETCH_FORCE;
	o.sha256 = sha256;
	o.threads = 2;
	o.report = report;
	return pp_fetch(unit_path(target), unit_path(out), &o, err);
}

/* The SHA-256 of len bytes as 64 hex digits (hex holds 65). */
static void sha256_hex(const uint8_t *bytes, size_t len, char *hex)
{
	uint8_t digest[32];
	pp_sha256 sha;
	pp_sha256_init(&sha);
	pp_sha256_update(&sha, bytes, len);
	pp_sha256_final(&sha, digest);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

/*
 * The digest is made while blocks land, in any order (fetchdigest.c):
 * each fetch below gives it, seeded blocks and fetched ones interleaved,
 * so a block hashed before it is written, or out of order, fails here.
 */
static void check_seeds(const uint8_t *old_image, enum pp_format format)
{
	const char *name = pp_format_name(format);
	uint8_t *image = malloc(IMAGE);
	memcpy(image, old_image, IMAGE);
	memset(image + MIB + 5000, 'x', 100);            /* a text block */
	memset(image + 4 * MIB + 300000, 'y', 10);       /* the kept range */
	pack("old.pp", old_image, format, pp_format_default_check(format));
	pack("new.pp", image, format, pp_format_default_check(format));
	unit_write_file("old.raw", old_image, IMAGE);
	pp_fetch_report r;
	pp_error err;
	/* unit_path's buffers are reused: the seeds' paths are copied. */
	char old_pp[256], old_raw[256];
	snprintf(old_pp, sizeof old_pp, "%s", unit_path("old.pp"));
	snprintf(old_raw, sizeof old_raw, "%s", unit_path("old.raw"));
	const char *archive_seed[] = { old_pp };
	char image_sha[65], archive_sha[65];
	sha256_hex(image, IMAGE, image_sha);
	int status = fetch("new.pp", "out.raw", archive_seed, 1, 0, image_sha,
			   &r, &err);
	CHECK(status == 0 && unit_same_file("out.raw", image, IMAGE) &&
	      r.fetched_blocks == 2 && r.seeded_blocks + 2 + 1 >= 7,
	      "%s: an archive seed: the two changed blocks fetched, the others "
	      "seeded or zeros (%llu fetched, %llu seeded)%s%s", name,
	      (unsigned long long)r.fetched_blocks,
	      (unsigned long long)r.seeded_blocks, status ? ": " : "",
	      status ? err.message : "");
	const char *raw_seed[] = { old_raw };
	status = fetch("new.pp", "out.raw", raw_seed, 1, 0, image_sha, &r,
		       &err);
	CHECK(status == 0 && unit_same_file("out.raw", image, IMAGE) &&
	      r.fetched_blocks == 2, "%s: a raw seed: the same (%llu fetched)",
	      name, (unsigned long long)r.fetched_blocks);
	size_t want_len;
	uint8_t *want = unit_read_file("new.pp", &want_len);
	sha256_hex(want, want_len, archive_sha);
	status = fetch("new.pp", "out.pp", archive_seed, 1, PP_FETCH_ARCHIVE,
		       archive_sha, &r, &err);
	CHECK(status == 0 && unit_same_file("out.pp", want, want_len) &&
	      r.seeded_blocks >= 4, "%s: --archive: the served file byte for "
	      "byte, %llu blocks copied from the seed", name,
	      (unsigned long long)r.seeded_blocks);
	free(want);
	free(image);
}

/* A seed whose block has the right check but damaged data is not used. */
static void check_bad_seed(const uint8_t *image)
{
	pack("new.pp", image, PP_FORMAT_XZ, PP_CHECK_CRC64);
	pack("bad.pp", image, PP_FORMAT_XZ, PP_CHECK_CRC64);
	pp_archive *a;
	size_t len;
	uint8_t *bytes = unit_read_file("bad.pp", &len);
	CHECK(pp_open(unit_path("bad.pp"), PP_OPEN_READ, &a, NULL) == 0,
	      "the seed opens");
	/* The middle of block 0's compressed data. */
	bytes[a->blocks[0].foffset + a->blocks[0].fsize / 2] ^= 0x55;
	pp_close(a);
	unit_write_file("bad.pp", bytes, len);
	free(bytes);
	pp_fetch_report r;
	pp_error err;
	char bad[256];
	snprintf(bad, sizeof bad, "%s", unit_path("bad.pp"));
	const char *seeds[] = { bad };
	char image_sha[65];
	sha256_hex(image, IMAGE, image_sha);
	int status = fetch("new.pp", "out.raw", seeds, 1, 0, image_sha, &r,
			   &err);
	CHECK(status == 0 && unit_same_file("out.raw", image, IMAGE) &&
	      r.fetched_blocks == 1, "a seed block that fails to decode is "
	      "fetched instead, in a second round the digest waits for "
	      "(%llu fetched)%s%s", (unsigned long long)r.fetched_blocks,
	      status ? ": " : "", status ? err.message : "");
}

static void check_digest(const uint8_t *image)
{
	pack("new.pp", image, PP_FORMAT_GZIP, PP_CHECK_CRC32);
	char hex[65];
	sha256_hex(image, IMAGE, hex);
	pp_fetch_report r;
	pp_error err;
	unlink(unit_path("out2.raw"));
	CHECK(fetch("new.pp", "out2.raw", NULL, 0, 0, hex, &r, &err) == 0 &&
	      unit_same_file("out2.raw", image, IMAGE), "the image's SHA-256 verified");
	hex[10] ^= 1;
	unlink(unit_path("out2.raw"));
	int status = fetch("new.pp", "out2.raw", NULL, 0, 0, hex, &r, &err);
	struct stat st;
	CHECK(status == PP_ERR_CHECK && stat(unit_path("out2.raw"), &st) != 0 &&
	      stat(unit_path(".out2.raw.partcat-partial"), &st) != 0 &&
	      stat(unit_path(".out2.raw.partcat-state"), &st) != 0,
	      "another SHA-256: PP_ERR_CHECK, nothing left behind (%s)",
	      err.message);
}

int main(void)
{
	unit_mkdir("test-fetch");
	uint8_t *image = make_image(42);
	check_layouts("xz crc64", PP_FORMAT_XZ, PP_CHECK_CRC64, image);
	check_layouts("xz sha256", PP_FORMAT_XZ, PP_CHECK_SHA256, image);
	check_layouts("xz none", PP_FORMAT_XZ, PP_CHECK_NONE, image);
	check_layouts("gzip", PP_FORMAT_GZIP, PP_CHECK_CRC32, image);
	check_layouts("zstd xxh64", PP_FORMAT_ZSTD, PP_CHECK_XXH64, image);
	check_layouts("zstd none", PP_FORMAT_ZSTD, PP_CHECK_NONE, image);
	for (size_t i = 0; pp_format_at(i); i++)
		check_seeds(image, pp_format_at(i));
	check_bad_seed(image);
	check_digest(image);
	free(image);
	CHECK(unit_rmdir() == 0, "scratch directory removed");
	return unit_done();
}
