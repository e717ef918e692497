/*
 * test-threads.c - the handles of one archive used by several threads at
 * once, as partpack.h allows: each thread reads through its own pp_dup
 * handle (pp_pread, pp_stored_run, pp_map) while another runs pp_extract,
 * whose pp_decode_blocks workers decode blocks in parallel, all from a
 * fresh open so that the state the handles share is built while they race
 * (the zstd container's count of frames checked against the seek table).
 *
 * Run plainly it checks that every thread reads the image's bytes.
 * tests/integration/tsan.sh builds it with ThreadSanitizer, which makes
 * any data race on that shared state a failure.
 */
#include "unit.h"

#include <pthread.h>
#include <sys/mman.h>

#define SIZE (4u << 20)
#define BLOCK (16u << 10)       /* 256 blocks: a long way to check */
#define READERS 3
#define ROUNDS 6
#define READ_LEN 3000

/* A thread's part in one round: its handle, and what went wrong. */
typedef struct job {
	const uint8_t *image;
	int round;
	int index;
	pp_archive *handle;
	int failures;
} job;

/* Reads far into the image first, so the first read checks every block
 * before it, then here and there. */
static void *read_around(void *arg)
{
	job *j = arg;
	unsigned long long seed = 0x9e3779b97f4a7c15ull *
		(unsigned)(j->round * 8 + j->index + 1);
	uint8_t buf[READ_LEN];
	for (int i = 0; i < 24; i++) {
		uint64_t at = i == 0 ? SIZE - READ_LEN :
			unit_random(&seed) % (SIZE - READ_LEN);
		uint64_t run;
		if (pp_pread(j->handle, buf, READ_LEN, at, NULL) ||
		    memcmp(buf, j->image + at, READ_LEN) != 0 ||
		    pp_stored_run(j->handle, at, &run, NULL))
			j->failures++;
	}
	pp_map_extent *extents;
	size_t count;
	if (pp_map(j->handle, 0, SIZE, &extents, &count, NULL) == 0)
		free(extents);
	else
		j->failures++;
	return NULL;
}

/* The whole image through pp_extract's workers, compared. */
static void *extract_all(void *arg)
{
	job *j = arg;
	int fd = memfd_create("extract", MFD_CLOEXEC);
	pp_extract_options options;
	pp_extract_options_init(&options);
	options.threads = 3;
	uint8_t *out = malloc(SIZE);
	if (fd < 0 || !out ||
	    pp_extract(j->handle, 0, SIZE, fd, "memfd", &options, NULL) ||
	    pread(fd, out, SIZE, 0) != (ssize_t)SIZE ||
	    memcmp(out, j->image, SIZE) != 0)
		j->failures++;
	free(out);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* One round: a fresh open, READERS readers and an extractor at once. */
static int race_once(const char *archive, const uint8_t *image, int round)
{
	pp_archive *base;
	if (pp_open(unit_path(archive), PP_OPEN_READ, &base, NULL))
		return 1;
	job jobs[READERS + 1];
	pthread_t threads[READERS + 1];
	int started = 0, failures = 0;
	for (int i = 0; i <= READERS; i++) {
		jobs[i] = (job){ .image = image, .round = round, .index = i };
		if (pp_dup(base, &jobs[i].handle, NULL))
			break;
		if (pthread_create(&threads[i], NULL,
				   i == READERS ? extract_all : read_around,
				   &jobs[i])) {
			pp_close(jobs[i].handle);
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(threads[i], NULL);
		failures += jobs[i].failures;
		pp_close(jobs[i].handle);
	}
	pp_close(base);
	return failures + (READERS + 1 - started);
}

/* The format at its fastest level, with its default check. */
static void test_format(enum pp_format format, const uint8_t *image)
{
	const char *name = pp_format_suffix(format) + 1;
	char archive[32];
	snprintf(archive, sizeof archive, "image.%s", name);
	pp_range keep = { 1u << 20, 1u << 20 };
	pp_pack_options options = unit_options(format,
					       pp_format_default_check(format),
					       BLOCK, &keep, 1);
	int max, level;
	pp_format_levels(format, &options.level, &max, &level);
	CHECK(unit_pack("image", archive, &options, NULL) == 0, "%s: pack", name);
	int failures = 0;
	for (int round = 0; round < ROUNDS; round++)
		failures += race_once(archive, image, round);
	CHECK(failures == 0, "%s: %d rounds of %d readers and pp_extract on "
	      "handles of one fresh open read the image (%d failures)", name,
	      ROUNDS, READERS, failures);
}

int main(void)
{
	static const char *const words[6] = {
		"thread ", "handle ", "frame ", "seek ", "table\n", "race "
	};
	unit_mkdir("test-threads");
	unsigned long long seed = 11;
	uint8_t *image = malloc(SIZE);
	unit_text(image, SIZE, &seed, words);
	unit_noise(image + (1u << 20), 1u << 20, &seed);
	memset(image + (3u << 20), 0, 1u << 19);
	unit_write_file("image", image, SIZE);
	for (size_t f = 0; pp_format_at(f) != 0; f++)
		test_format(pp_format_at(f), image);
	free(image);
	if (unit_rmdir() != 0)
		return 1;
	return unit_done();
}
