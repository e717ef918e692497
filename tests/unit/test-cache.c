/*
 * test-cache.c - the read side: the LRU of decoded blocks (eviction order,
 * budget, invalidation), pp_pread through it on an archive in memory
 * opened with pp_open_io (cache hits read nothing, a patch drops what it
 * touches, in this handle and in a pp_dup), and pp_map's zero rule on
 * partpack archives of every check kind, including a zero block whose
 * bytes were tampered with, which must never be called zero.
 */
#include "archive.h"
#include "cache.h"
#include "check.h"
#include "crc.h"
#include "io.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIB 1024u

/* ---- the LRU itself -------------------------------------------------- */

static uint8_t *filled(size_t len, uint8_t value)
{
	uint8_t *p = malloc(len);
	memset(p, value, len);
	return p;
}

static void test_lru(void)
{
	pp_cache *cache = pp_cache_new(300);
	size_t len;
	CHECK(pp_cache_put(cache, 1, filled(100, 1), 100), "put block 1");
	CHECK(pp_cache_put(cache, 2, filled(100, 2), 100), "put block 2");
	CHECK(pp_cache_put(cache, 3, filled(100, 3), 100), "put block 3");
	CHECK(pp_cache_bytes(cache) == 300 && pp_cache_count(cache) == 3,
	      "three blocks fill the 300-byte budget");
	const uint8_t *p = pp_cache_get(cache, 1, &len);
	CHECK(p && len == 100 && p[0] == 1 && p[99] == 1,
	      "get returns the block's bytes");
	CHECK(pp_cache_put(cache, 4, filled(100, 4), 100), "put block 4");
	CHECK(pp_cache_get(cache, 2, &len) == NULL,
	      "the least recently used block (2) was evicted");
	CHECK(pp_cache_get(cache, 1, &len) && pp_cache_get(cache, 3, &len) &&
	      pp_cache_get(cache, 4, &len), "1 (used), 3 and 4 stay");
	CHECK(pp_cache_bytes(cache) <= 300, "the budget holds");

	uint8_t *big = filled(301, 9);
	CHECK(!pp_cache_put(cache, 5, big, 301),
	      "a block larger than the budget is refused");
	CHECK(pp_cache_count(cache) == 3, "... and evicts nothing");
	free(big);

	CHECK(pp_cache_put(cache, 3, filled(50, 7), 50),
	      "putting a block again replaces it");
	p = pp_cache_get(cache, 3, &len);
	CHECK(p && len == 50 && p[0] == 7 && pp_cache_bytes(cache) == 250,
	      "... its new bytes, counted once");

	pp_cache_invalidate(cache, 3, 5);
	CHECK(!pp_cache_get(cache, 3, &len) && !pp_cache_get(cache, 4, &len) &&
	      pp_cache_get(cache, 1, &len), "invalidate drops [3, 5) only");
	CHECK(pp_cache_bytes(cache) == 100 && pp_cache_count(cache) == 1,
	      "... and their bytes");

	pp_cache_put(cache, 2, filled(100, 2), 100);
	pp_cache_put(cache, 6, filled(100, 6), 100);
	pp_cache_get(cache, 1, &len);
	pp_cache_set_budget(cache, 150);
	CHECK(pp_cache_count(cache) == 1 && pp_cache_get(cache, 1, &len),
	      "a smaller budget evicts the least recently used first");
	pp_cache_set_budget(cache, 0);
	CHECK(pp_cache_count(cache) == 0 && pp_cache_bytes(cache) == 0,
	      "budget 0 keeps nothing");
	pp_cache_free(cache);
}

/* ---- an archive in memory ---------------------------------------------- */

typedef struct memory {
	uint8_t *data;
	size_t size;
	uint64_t bytes_read;
	unsigned flushes;
} memory;

static int mem_pread(void *opaque, void *buf, size_t len, uint64_t offset)
{
	memory *m = opaque;
	if (offset > m->size || len > m->size - offset) {
		errno = EIO;
		return -1;
	}
	memcpy(buf, m->data + offset, len);
	/* Threads read at once in test_threads. */
	__atomic_fetch_add(&m->bytes_read, len, __ATOMIC_RELAXED);
	return 0;
}

static int mem_pwrite(void *opaque, const void *buf, size_t len,
		      uint64_t offset)
{
	memory *m = opaque;
	if (offset > m->size || len > m->size - offset) {
		errno = ENOSPC;
		return -1;
	}
	memcpy(m->data + offset, buf, len);
	return 0;
}

static int mem_flush(void *opaque)
{
	((memory *)opaque)->flushes++;
	return 0;
}

static int mem_size(void *opaque, uint64_t *size)
{
	*size = ((memory *)opaque)->size;
	return 0;
}

static pp_io mem_io(memory *m, const char *undo_path)
{
	return (pp_io){
		.version = PP_IO_VERSION, .opaque = m, .pread = mem_pread,
		.pwrite = mem_pwrite, .flush = mem_flush, .size = mem_size,
		.undo_path = undo_path,
	};
}

static void fill_text(uint8_t *p, size_t len)
{
	static const char words[] = "the quick brown fox jumps over lazy dogs ";
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)words[(i * 7 + i / 41) % (sizeof words - 1)];
}

static void fill_random(uint8_t *p, size_t len, unsigned long long seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(unit_random(&seed) >> 56);
}

/*
 * One xz block as stock xz writes it: 64 KiB of text (LZMA chunks) and
 * then 64 KiB of random bytes, which the encoder stores as uncompressed
 * chunks with no LZMA chunk after them: patchable, inside a block that
 * reads must decode.
 */
#define MIXED_TEXT (64 * KIB)
#define MIXED_SIZE (128 * KIB)

static int mixed_archive(memory *m, uint8_t *image)
{
	fill_text(image, MIXED_TEXT);
	fill_random(image + MIXED_TEXT, MIXED_SIZE - MIXED_TEXT, 42);
	size_t bound = lzma_stream_buffer_bound(MIXED_SIZE), pos = 0;
	m->data = malloc(bound);
	if (!m->data || lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL,
						image, MIXED_SIZE, m->data,
						&pos, bound) != LZMA_OK)
		return -1;
	m->size = pos;
	return 0;
}

static void test_pread_cache(const char *dir)
{
	static uint8_t image[MIXED_SIZE], got[MIXED_SIZE];
	memory m = { 0 };
	if (mixed_archive(&m, image)) {
		CHECK(0, "building the mixed xz archive");
		return;
	}
	char undo[512];
	snprintf(undo, sizeof undo, "%s/mixed.undo", dir);
	pp_io io = mem_io(&m, NULL);
	pp_archive *archive = NULL, *reader = NULL;
	pp_error err;

	CHECK(pp_open_io(&io, "mem", PP_OPEN_WRITE, &archive, &err) ==
	      PP_ERR_USAGE, "opening for writing without undo_path: usage error");
	io.undo_path = undo;
	io.pwrite = NULL;
	CHECK(pp_open_io(&io, "mem", PP_OPEN_WRITE, &archive, &err) ==
	      PP_ERR_USAGE, "... and without pwrite");
	io = mem_io(&m, undo);
	io.size = NULL;
	int status = pp_open_io(&io, "mem", PP_OPEN_WRITE, &archive, &err);
	CHECK(status == 0, "pp_open_io for writing, size found by reads: %s",
	      status ? err.message : "ok");
	if (status)
		return;
	CHECK(archive->file_size == m.size, "the size found is the size");

	pp_map_extent *extents;
	size_t count;
	uint64_t stored = 0;
	CHECK(pp_map(archive, 0, UINT64_MAX, &extents, &count, &err) == 0,
	      "pp_map of the mixed block");
	for (size_t i = 0; i < count; i++)
		if (extents[i].kind == PP_EXTENT_STORED)
			stored += extents[i].length;
	CHECK(count >= 2 && extents[0].kind == PP_EXTENT_DATA &&
	      extents[count - 1].kind == PP_EXTENT_STORED && stored > 0 &&
	      stored <= MIXED_SIZE - MIXED_TEXT,
	      "its text is data, its random tail stored (%llu bytes)",
	      (unsigned long long)stored);
	free(extents);

	m.bytes_read = 0;
	CHECK(pp_pread(archive, got, 100, 1000, &err) == 0 &&
	      memcmp(got, image + 1000, 100) == 0 && m.bytes_read >= m.size / 2,
	      "a read in the text decodes the block (%llu bytes read)",
	      (unsigned long long)m.bytes_read);
	m.bytes_read = 0;
	CHECK(pp_pread(archive, got, 5000, 20000, &err) == 0 &&
	      memcmp(got, image + 20000, 5000) == 0 && m.bytes_read == 0,
	      "a second read in the block is a copy from the cache");
	uint64_t tail = MIXED_SIZE - 1000;
	m.bytes_read = 0;
	CHECK(pp_pread(archive, got, 1000, tail, &err) == 0 &&
	      memcmp(got, image + tail, 1000) == 0,
	      "a read of stored bytes gives them");

	/* A patch of the stored tail: the cached block must go. */
	uint8_t patch[1000];
	fill_random(patch, sizeof patch, 7);
	status = pp_patch(archive, tail, patch, sizeof patch, 0, NULL, &err);
	CHECK(status == 0, "patching the stored tail through the io: %s",
	      status ? err.message : "ok");
	memcpy(image + tail, patch, sizeof patch);
	CHECK(access(undo, F_OK) != 0 && m.flushes > 0,
	      "the undo record is gone and the io was flushed");
	m.bytes_read = 0;
	CHECK(pp_pread(archive, got, MIXED_SIZE, 0, &err) == 0 &&
	      memcmp(got, image, MIXED_SIZE) == 0 && m.bytes_read > 0,
	      "after the patch a read decodes again and sees the new bytes "
	      "(the check was fixed: decoding compares it)");

	/* A second handle sees the first one's patches. */
	CHECK(pp_dup(archive, &reader, &err) == 0, "pp_dup");
	CHECK(pp_pread(reader, got, 100, 1000, &err) == 0 &&
	      memcmp(got, image + 1000, 100) == 0, "the copy reads (and caches)");
	CHECK(pp_patch(reader, tail, patch, 10, 0, NULL, &err) == PP_ERR_USAGE,
	      "the copy is read-only");
	fill_random(patch, sizeof patch, 8);
	CHECK(pp_patch(archive, tail, patch, sizeof patch, 0, NULL, &err) == 0,
	      "patching again through the first handle");
	memcpy(image + tail, patch, sizeof patch);
	CHECK(pp_pread(reader, got, MIXED_SIZE, 0, &err) == 0 &&
	      memcmp(got, image, MIXED_SIZE) == 0,
	      "the copy's cache was dropped: it sees the new bytes");
	pp_close(archive);
	CHECK(pp_pread(reader, got, 100, tail, &err) == 0 &&
	      memcmp(got, image + tail, 100) == 0,
	      "the copy outlives the handle it was made from");

	CHECK(pp_set_cache_size(reader, 0, &err) == 0, "cache size 0");
	m.bytes_read = 0;
	pp_pread(reader, got, 100, 1000, &err);
	uint64_t first = m.bytes_read;
	pp_pread(reader, got, 100, 1000, &err);
	CHECK(first > 0 && m.bytes_read == 2 * first,
	      "without a cache every read decodes");
	pp_close(reader);
	free(m.data);
}

/* ---- the map's zero rule ----------------------------------------------- */

#define ZB (64 * KIB)           /* block size of the packed images */
#define ZBLOCKS 6

/* zeros, text, zeros, stored random, stored zeros, zeros */
static void zero_image(uint8_t *image)
{
	memset(image, 0, ZB * ZBLOCKS);
	fill_text(image + ZB, ZB);
	fill_random(image + 3 * ZB, ZB, 99);
}

static int pack_to_memory(const char *dir, const uint8_t *image,
			  enum pp_format format, enum pp_check check,
			  memory *m)
{
	char in_path[512], out_path[512];
	snprintf(in_path, sizeof in_path, "%s/zero.img", dir);
	snprintf(out_path, sizeof out_path, "%s/zero.pack", dir);
	int in = open(in_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	int out = open(out_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	pp_range keep = { .offset = 3 * ZB, .length = 2 * ZB };
	pp_pack_options options;
	pp_pack_options_init(&options);
	options.format = format;
	options.check = check;
	options.level = 1;
	options.block_size = ZB;
	options.threads = 2;
	options.keep = &keep;
	options.keep_count = 1;
	pp_error err;
	int status = in < 0 || out < 0 ||
		pp_write_full(in, image, ZB * ZBLOCKS) ||
		lseek(in, 0, SEEK_SET) != 0 ||
		pp_pack(in, in_path, out, out_path, &options, &err);
	off_t size = status ? -1 : lseek(out, 0, SEEK_END);
	if (size > 0) {
		m->size = (size_t)size;
		m->data = malloc(m->size);
		status = !m->data || pp_pread_full(out, m->data, m->size, 0);
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return status || size <= 0 ? -1 : 0;
}

/* The zero test image, packed to memory M as FORMAT with CHECK and opened
 * from there for reading as NAME.  False, with a failing check, when either
 * step fails. */
static bool open_zero_image(const char *dir, uint8_t *image,
			    enum pp_format format, enum pp_check check,
			    const char *name, memory *m, pp_archive **archive)
{
	zero_image(image);
	if (pack_to_memory(dir, image, format, check, m)) {
		CHECK(0, "%s: packing the zero test image", name);
		return false;
	}
	pp_io io = mem_io(m, NULL);
	pp_error err;
	if (pp_open_io(&io, name, PP_OPEN_READ, archive, &err)) {
		CHECK(0, "%s: open: %s", name, err.message);
		free(m->data);
		return false;
	}
	return true;
}

static void test_zero_rule(const char *dir, enum pp_format format,
			   enum pp_check check)
{
	static uint8_t image[ZB * ZBLOCKS], got[ZB];
	char name[64];
	snprintf(name, sizeof name, "%s%s", pp_check_name(check),
		 pp_format_suffix(format));
	memory m = { 0 };
	pp_archive *archive;
	if (!open_zero_image(dir, image, format, check, name, &m, &archive))
		return;
	pp_io io = mem_io(&m, NULL);
	pp_error err;
	pp_map_extent *x;
	size_t count;
	uint64_t by_kind[3] = { 0 };
	bool true_to_image = true, covered = true;
	uint64_t at = 0;
	int status = pp_map(archive, 0, UINT64_MAX, &x, &count, &err);
	for (size_t i = 0; status == 0 && i < count; i++) {
		covered = covered && x[i].offset == at;
		at = x[i].offset + x[i].length;
		by_kind[x[i].kind] += x[i].length;
		for (uint64_t o = x[i].offset; o < at; o += ZB) {
			size_t n = (size_t)PP_MIN(ZB, at - o);
			bool zero = pp_all_zero(image + o, n);
			if ((x[i].kind == PP_EXTENT_ZERO && !zero) ||
			    pp_pread(archive, got, n, o, &err) ||
			    memcmp(got, image + o, n) != 0)
				true_to_image = false;
		}
	}
	CHECK(status == 0 && covered && at == ZB * ZBLOCKS,
	      "%s: the map covers the image in order", name);
	CHECK(by_kind[PP_EXTENT_ZERO] == 3 * ZB &&
	      by_kind[PP_EXTENT_DATA] == ZB &&
	      by_kind[PP_EXTENT_STORED] == 2 * ZB,
	      "%s: three zero blocks, one of data, two stored (%llu/%llu/%llu)",
	      name, (unsigned long long)by_kind[PP_EXTENT_ZERO],
	      (unsigned long long)by_kind[PP_EXTENT_DATA],
	      (unsigned long long)by_kind[PP_EXTENT_STORED]);
	CHECK(true_to_image, "%s: zero extents are zeros, and pp_pread of "
	      "every extent gives the image", name);
	uint64_t second_zero = 0, next = 0;
	for (size_t i = 0; status == 0 && i < count; i++)
		if (x[i].offset == 2 * ZB && x[i].kind == PP_EXTENT_ZERO) {
			second_zero = x[i].file_offset;
			next = x[i + 1].file_offset;
		}
	free(x);
	pp_close(archive);

	/* A tampered copy of the second zero block: same sizes, same check,
	 * other bytes.  It must not be reported as zeros. */
	if (second_zero && next > second_zero + 20) {
		m.data[second_zero + 20] ^= 0x5a;
		pp_open_io(&io, name, PP_OPEN_READ, &archive, &err);
		status = pp_map(archive, 0, UINT64_MAX, &x, &count, &err);
		bool called_zero = false;
		for (size_t i = 0; status == 0 && i < count; i++)
			if (x[i].offset <= 2 * ZB &&
			    2 * ZB < x[i].offset + x[i].length &&
			    x[i].kind == PP_EXTENT_ZERO)
				called_zero = true;
		CHECK(!called_zero, "%s: a zero block whose bytes differ from the "
		      "known zero encoding is never called zero (%s)", name,
		      status ? err.message : "reported as data");
		if (status == 0)
			free(x);
		pp_close(archive);
	} else {
		CHECK(0, "%s: no second zero block to tamper with", name);
	}
	free(m.data);
}

static void test_map_window(const char *dir)
{
	static uint8_t image[ZB * ZBLOCKS];
	memory m = { 0 };
	pp_archive *archive;
	if (!open_zero_image(dir, image, PP_FORMAT_XZ, PP_CHECK_CRC64, "window",
			     &m, &archive))
		return;
	pp_map_extent *x;
	size_t count;
	pp_error err;
	CHECK(pp_map(archive, ZB / 2, ZB, &x, &count, &err) == 0 &&
	      count == 2 && x[0].offset == ZB / 2 &&
	      x[0].length == ZB / 2 && x[0].kind == PP_EXTENT_ZERO &&
	      x[1].offset == ZB && x[1].length == ZB / 2 &&
	      x[1].kind == PP_EXTENT_DATA,
	      "a window of the map is clipped to it");
	free(x);
	CHECK(pp_map(archive, ZB * ZBLOCKS + 1, 1, &x, &count, &err) ==
	      PP_ERR_USAGE, "a map past the end is a usage error");
	pp_close(archive);
	free(m.data);
}

/* ---- the check of zeros ---------------------------------------------- */

/* of_zeros (check.c) against the check computed over real zeros. */
static void test_of_zeros(void)
{
	static const uint8_t zeros[200000];
	static const uint64_t lengths[] = { 0, 1, 7, 4096, 65536, 200000 };
	static const enum pp_check checks[] = {
		PP_CHECK_CRC32, PP_CHECK_CRC64, PP_CHECK_SHA256, PP_CHECK_XXH64,
	};
	for (size_t c = 0; c < sizeof checks / sizeof *checks; c++) {
		const pp_check_kind *kind = pp_check_kind_of(checks[c]);
		bool same = kind && kind->of_zeros;
		for (size_t i = 0; same && i < 6; i++) {
			uint8_t want[PP_CHECK_SIZE_MAX], got[PP_CHECK_SIZE_MAX];
			size_t n = (size_t)lengths[i];
			if (checks[c] == PP_CHECK_CRC32) {
				pp_put_le32(want, pp_crc32(0, zeros, n));
			} else if (checks[c] == PP_CHECK_CRC64) {
				pp_put_le64(want, pp_crc64(0, zeros, n));
			} else {
				/* A hash: the kind's own functions. */
				uint64_t state[128];  /* aligned */
				if (kind->state_size > sizeof state || !kind->init) {
					same = false;
					break;
				}
				kind->init(state);
				kind->update(state, zeros, n);
				kind->final(state, want);
			}
			kind->of_zeros(got, lengths[i]);
			same = memcmp(want, got, kind->size) == 0;
		}
		CHECK(same, "%s of_zeros is the %s of that many zero bytes",
		      pp_check_name(checks[c]), pp_check_name(checks[c]));
	}
}

/* ---- one handle per thread (pp_dup) ------------------------------------ */

typedef struct reader_job {
	pp_archive *handle;
	const uint8_t *image;
	unsigned long long seed;
	bool same;
} reader_job;

static void *read_randomly(void *arg)
{
	reader_job *job = arg;
	uint8_t got[3000];
	job->same = true;
	for (int i = 0; i < 400 && job->same; i++) {
		uint64_t offset = unit_random(&job->seed) % (ZB * ZBLOCKS -
							     sizeof got);
		pp_error err;
		job->same = pp_pread(job->handle, got, sizeof got, offset,
				     &err) == 0 &&
			memcmp(got, job->image + offset, sizeof got) == 0;
	}
	return NULL;
}

static void test_threads(const char *dir)
{
	static uint8_t image[ZB * ZBLOCKS];
	memory m = { 0 };
	pp_archive *archive;
	if (!open_zero_image(dir, image, PP_FORMAT_GZIP, PP_CHECK_CRC32,
			     "threads", &m, &archive))
		return;
	pp_error err;
	enum { THREADS = 4 };
	reader_job jobs[THREADS];
	pthread_t threads[THREADS];
	bool duplicated = true, same = true;
	for (int i = 0; i < THREADS; i++) {
		jobs[i] = (reader_job){ .image = image, .seed = 1000 + i };
		duplicated = duplicated &&
			pp_dup(archive, &jobs[i].handle, &err) == 0;
	}
	CHECK(duplicated, "pp_dup, once per thread");
	pp_close(archive);  /* the copies keep the archive */
	for (int i = 0; duplicated && i < THREADS; i++)
		pthread_create(&threads[i], NULL, read_randomly, &jobs[i]);
	for (int i = 0; duplicated && i < THREADS; i++) {
		pthread_join(threads[i], NULL);
		same = same && jobs[i].same;
		pp_close(jobs[i].handle);
	}
	CHECK(duplicated && same, "four threads read at random through their "
	      "own handles and get the image");
	free(m.data);
}

int main(void)
{
	const char *dir = getenv("TESTDIR");
	if (!dir)
		dir = ".";
	test_lru();
	test_of_zeros();
	test_pread_cache(dir);
	/* Every check of every format: the zero rule needs one (map.md). */
	for (size_t f = 0; pp_format_at(f) != 0; f++) {
		enum pp_check checks[32];
		size_t count = formats_checks(pp_format_at(f), checks);
		for (size_t c = 0; c < count; c++)
			if (checks[c] != PP_CHECK_NONE)
				test_zero_rule(dir, pp_format_at(f), checks[c]);
	}
	test_map_window(dir);
	test_threads(dir);
	return unit_done();
}
