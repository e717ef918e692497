/*
 * fuzz-patch.c - libFuzzer harness for the patch-range logic: mapping an
 * image range onto stored extents, refusing ranges that are not stored,
 * and fixing the checks of the touched blocks.
 *
 * At startup it packs one image seven ways into a private temporary
 * directory: xz with CRC-32, CRC-64 and SHA-256, partpack's gzip, a gzip
 * file as zlib writes it when switched to level 0 around the kept ranges
 * (no index: pp_open scans it), and zstd with and without checksums (the
 * checksum is re-hashed and written twice, frame and seek table).  Each input picks one of them, a
 * range and the bytes to write; the harness patches a fresh copy and holds
 * pp_patch to its promises:
 *
 *   refused (PP_ERR_NOT_STORED, PP_ERR_USAGE) or a dry run
 *                     the copy is byte for byte the original
 *   done              the archive verifies and reads back as the image
 *                     with the new bytes laid over it
 *   either way        no undo record is left behind, and a range wholly
 *                     inside a stored range partinfo lists is never
 *                     refused
 *
 * partpack's own archives must list every kept range as stored.  The
 * zlib-made file may list only parts of them: compressed data after a kept
 * range may copy from its tail, and those bytes are not patchable.
 *
 * Input layout (missing bytes read as zero): archive choice (1), mode (1),
 * delta (LE16, signed), raw offset (LE64), length (LE24); the rest is the
 * data, repeated to the length.  The mode picks where the offset is
 * measured from (see choose_offset) so most inputs land near the edges of
 * stored data, where the mistakes would be.
 */
#include "partpack.h"
#include "fuzz.h"

#define ZLIB_CONST
#include <zlib.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGE_SIZE (300u * 1024)
#define BLOCK_SIZE (64u * 1024)
#define PATCH_MAX 200000u       /* covers a whole kept range and beyond */
#define MODE_DRY_RUN 0x80


/* Neither range is block aligned; the first spans three block edges and
 * a run of zeros (which the packer treats specially), the second sits in
 * the last block. */
static const pp_range kept[] = {
	{ .offset = 70000, .length = 150000 },
	{ .offset = 290000, .length = 4096 },
};
#define KEPT_COUNT (sizeof kept / sizeof *kept)

typedef struct base_archive {
	const char *name;
	uint8_t *bytes;
	size_t size;
	pp_range stored[64];    /* what pp_get_info offers for patching */
	size_t stored_count;
} base_archive;

#define BASE_COUNT 7
#define BASE_ZLIB 4           /* the one partpack did not write */
static base_archive bases[BASE_COUNT];
static uint8_t image[IMAGE_SIZE];
static char temp_dir[256], copy_path[300], undo_path[320];

static void die(const char *what)
{
	fprintf(stderr, "fuzz-patch: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- setup: the image and its archives -------------------------------- */

/* Text, then noise, then zeros, then noise: every kind of block. */
static void make_image(void)
{
	size_t pos = 0;
	for (unsigned line = 0; pos < 70000; line++)
		pos += (size_t)snprintf((char *)image + pos, 70000 - pos + 1,
					"line %u of the fuzzing image\n", line);
	uint64_t state = 0x9E3779B97F4A7C15ULL;
	for (pos = 70000; pos < IMAGE_SIZE; pos++) {
		state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
		bool zero = pos >= 180000 && pos < 262144;
		image[pos] = zero ? 0 : (uint8_t)(state * 2685821657736338717ULL >> 56);
	}
}

static void read_whole(const char *path, base_archive *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st))
		die(path);
	out->size = (size_t)st.st_size;
	out->bytes = malloc(out->size);
	if (!out->bytes || pread(fd, out->bytes, out->size, 0) != st.st_size)
		die(path);
	close(fd);
}

static void write_whole(const char *path, const uint8_t *bytes, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, bytes, size) != (ssize_t)size || close(fd))
		die(path);
}

static void pack_one(const char *image_path, enum pp_format format,
		     enum pp_check check, base_archive *out)
{
	pp_pack_options options;
	pp_pack_options_init(&options);
	options.format = format;
	options.check = check;
	options.block_size = BLOCK_SIZE;
	options.threads = 1;
	options.keep = kept;
	options.keep_count = KEPT_COUNT;
	char out_path[300];
	snprintf(out_path, sizeof out_path, "%s/base", temp_dir);
	int in_fd = open(image_path, O_RDONLY | O_CLOEXEC);
	int out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			  0600);
	if (in_fd < 0 || out_fd < 0)
		die("open");
	pp_error err;
	if (pp_pack(in_fd, image_path, out_fd, out_path, &options, &err)) {
		fprintf(stderr, "fuzz-patch: pp_pack: %s\n", err.message);
		exit(1);
	}
	close(in_fd);
	close(out_fd);
	read_whole(out_path, out);
	unlink(out_path);
}

static void deflate_piece(z_stream *z, const uint8_t *data, size_t len,
			  int flush)
{
	z->next_in = data;
	z->avail_in = (uInt)len;
	int status = deflate(z, flush);
	if (status != (flush == Z_FINISH ? Z_STREAM_END : Z_OK) || z->avail_in)
		die("deflate");
}

/* deflateParams() flushes what came before and switches level, so each
 * kept range becomes deflate stored blocks, as a careful tool would do. */
static void build_zlib_gzip(base_archive *out)
{
	z_stream z = { 0 };
	size_t capacity = 2 * IMAGE_SIZE;
	out->bytes = malloc(capacity);
	if (!out->bytes || deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8,
					Z_DEFAULT_STRATEGY) != Z_OK)
		die("deflateInit2");
	z.next_out = out->bytes;
	z.avail_out = (uInt)capacity;
	size_t pos = 0;
	for (size_t i = 0; i < KEPT_COUNT; i++) {
		deflate_piece(&z, image + pos, kept[i].offset - pos, Z_NO_FLUSH);
		if (deflateParams(&z, 0, Z_DEFAULT_STRATEGY) != Z_OK)
			die("deflateParams");
		deflate_piece(&z, image + kept[i].offset, kept[i].length,
			      Z_NO_FLUSH);
		if (deflateParams(&z, 6, Z_DEFAULT_STRATEGY) != Z_OK)
			die("deflateParams");
		pos = kept[i].offset + kept[i].length;
	}
	deflate_piece(&z, image + pos, IMAGE_SIZE - pos, Z_FINISH);
	out->size = z.total_out;
	deflateEnd(&z);
}

static void remove_temp_dir(void)
{
	unlink(undo_path);
	unlink(copy_path);
	rmdir(temp_dir);
}

/* Per process, so parallel jobs (-jobs, -fork) never share a file.  On
 * tmpfs when there is one: a patch fsyncs several times. */
static void make_temp_dir(void)
{
	const char *parent = getenv("TMPDIR");
	if (!parent || !*parent)
		parent = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(temp_dir, sizeof temp_dir, "%s/partpack-fuzz-XXXXXX", parent);
	if (!mkdtemp(temp_dir))
		die(temp_dir);
	snprintf(copy_path, sizeof copy_path, "%s/copy", temp_dir);
	snprintf(undo_path, sizeof undo_path, "%s/.copy.partpatch-undo",
		 temp_dir);
	atexit(remove_temp_dir);
}

static bool inside(const pp_range *ranges, size_t count, uint64_t offset,
		   uint64_t len)
{
	for (size_t i = 0; i < count; i++)
		if (offset >= ranges[i].offset && len <= ranges[i].length &&
		    offset - ranges[i].offset <= ranges[i].length - len)
			return true;
	return false;
}

/* Asks partinfo's question of a base.  Ours must offer every kept range
 * (and may offer more: stock LZMA2 stores noise as uncompressed chunks,
 * which are patchable when nothing after them in the block copies them). */
static void learn_stored_ranges(base_archive *base, bool ours)
{
	write_whole(copy_path, base->bytes, base->size);
	pp_archive *archive;
	pp_info info;
	REQUIRE(pp_open(copy_path, PP_OPEN_READ, &archive, NULL) == 0);
	REQUIRE(pp_get_info(archive, &info, NULL) == 0);
	REQUIRE(info.stored_count <= sizeof base->stored / sizeof *base->stored);
	memcpy(base->stored, info.stored, info.stored_count * sizeof *info.stored);
	base->stored_count = info.stored_count;
	for (size_t i = 0; ours && i < KEPT_COUNT; i++)
		REQUIRE(inside(base->stored, base->stored_count, kept[i].offset,
			       kept[i].length));
	pp_info_free(&info);
	pp_close(archive);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	make_temp_dir();
	make_image();
	char image_path[300];
	snprintf(image_path, sizeof image_path, "%s/image", temp_dir);
	write_whole(image_path, image, IMAGE_SIZE);
	bases[0].name = "xz-crc32";
	pack_one(image_path, PP_FORMAT_XZ, PP_CHECK_CRC32, &bases[0]);
	bases[1].name = "xz-crc64";
	pack_one(image_path, PP_FORMAT_XZ, PP_CHECK_CRC64, &bases[1]);
	bases[2].name = "xz-sha256";
	pack_one(image_path, PP_FORMAT_XZ, PP_CHECK_SHA256, &bases[2]);
	bases[3].name = "gzip";
	pack_one(image_path, PP_FORMAT_GZIP, PP_CHECK_CRC32, &bases[3]);
	bases[BASE_ZLIB].name = "zlib-gzip";
	build_zlib_gzip(&bases[BASE_ZLIB]);
	bases[5].name = "zstd-xxh64";
	pack_one(image_path, PP_FORMAT_ZSTD, PP_CHECK_XXH64, &bases[5]);
	bases[6].name = "zstd-none";
	pack_one(image_path, PP_FORMAT_ZSTD, PP_CHECK_NONE, &bases[6]);
	unlink(image_path);
	for (size_t i = 0; i < BASE_COUNT; i++)
		learn_stored_ranges(&bases[i], i != BASE_ZLIB);
	return 0;
}

/* ---- one input --------------------------------------------------------- */

typedef struct cursor {
	const uint8_t *next;
	size_t left;
} cursor;

/* The next n bytes as a little-endian number; zeros past the end. */
static uint64_t take(cursor *c, size_t n)
{
	uint64_t value = 0;
	for (size_t i = 0; i < n && c->left > 0; i++, c->left--)
		value |= (uint64_t)*c->next++ << (8 * i);
	return value;
}

/* Near a kept range's start or end, near a block edge, or anywhere at
 * all (which is how offsets near 2^64 get tried). */
static uint64_t choose_offset(unsigned mode, uint64_t delta, uint64_t raw)
{
	const pp_range *r = &kept[(mode >> 2) % KEPT_COUNT];
	switch (mode & 3) {
	case 0: return r->offset + delta;
	case 1: return r->offset + r->length + delta;
	case 2: return raw % (IMAGE_SIZE / BLOCK_SIZE + 2) * BLOCK_SIZE + delta;
	default: return raw;
	}
}

static bool file_holds(const char *path, const uint8_t *bytes, size_t size)
{
	static uint8_t buf[2 * IMAGE_SIZE];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(path);
	ssize_t got = pread(fd, buf, sizeof buf, 0);
	close(fd);
	return got == (ssize_t)size && memcmp(buf, bytes, size) == 0;
}

/* After a patch: the archive verifies and holds the image with data over
 * [offset, offset + len). */
static void check_patched(const uint8_t *data, size_t len, uint64_t offset)
{
	static uint8_t expected[IMAGE_SIZE], actual[IMAGE_SIZE];
	REQUIRE(offset <= IMAGE_SIZE && len <= IMAGE_SIZE - offset);
	memcpy(expected, image, IMAGE_SIZE);
	memcpy(expected + offset, data, len);
	pp_archive *archive;
	pp_error err;
	int status = pp_open(copy_path, PP_OPEN_READ, &archive, &err);
	if (status == 0 && (status = pp_verify(archive, NULL, NULL, &err)) == 0)
		status = pp_pread(archive, actual, IMAGE_SIZE, 0, &err);
	if (status)
		fprintf(stderr, "fuzz-patch: after the patch: %s\n", err.message);
	REQUIRE(status == 0);
	REQUIRE(memcmp(actual, expected, IMAGE_SIZE) == 0);
	pp_close(archive);
}

static int patch_copy(uint64_t offset, const uint8_t *data, size_t len,
		      int flags, pp_patch_report *report, pp_error *err)
{
	pp_archive *archive;
	int status = pp_open(copy_path, PP_OPEN_WRITE | PP_OPEN_NO_WAIT,
			     &archive, err);
	if (status)
		fprintf(stderr, "fuzz-patch: open: %s\n", err->message);
	REQUIRE(status == 0);
	status = pp_patch(archive, offset, data, len, flags, report, err);
	pp_close(archive);
	return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size)
{
	cursor c = { .next = input, .left = size };
	const base_archive *base = &bases[take(&c, 1) % BASE_COUNT];
	unsigned mode = (unsigned)take(&c, 1);
	uint64_t delta = (uint64_t)(int64_t)(int16_t)take(&c, 2);
	uint64_t raw = take(&c, 8);
	size_t len = (size_t)(take(&c, 3) % (PATCH_MAX + 1));
	uint64_t offset = choose_offset(mode, delta, raw);
	int flags = (mode & MODE_DRY_RUN) ? PP_PATCH_DRY_RUN : 0;
	uint8_t *data = malloc(len);  /* exactly len: ASan sees any over-read */
	REQUIRE(data != NULL || len == 0);
	for (size_t i = 0; i < len; i++)
		data[i] = c.left ? c.next[i % c.left] : (uint8_t)(i * 131 + 7);

	write_whole(copy_path, base->bytes, base->size);
	pp_patch_report report;
	pp_error err;
	int status = patch_copy(offset, data, len, flags, &report, &err);

	REQUIRE(access(undo_path, F_OK) != 0);
	if (inside(base->stored, base->stored_count, offset, len))
		REQUIRE(status == 0);
	if (status == 0 && !(flags & PP_PATCH_DRY_RUN)) {
		REQUIRE(report.data_bytes == len);
		check_patched(data, len, offset);
	} else if (status == 0 || status == PP_ERR_NOT_STORED ||
		   status == PP_ERR_USAGE) {
		REQUIRE(file_holds(copy_path, base->bytes, base->size));
	} else {
		fprintf(stderr, "fuzz-patch: %s: unexpected failure: %s\n",
			base->name, err.message);
		REQUIRE(!"pp_patch failed on a valid archive");
	}
	free(data);
	return 0;
}
