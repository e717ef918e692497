/*
 * unit.h - the smallest test harness that does the job.  Each CHECK prints
 * "ok N - what" or "not ok N - what (file:line)", TAP style, so tests/run
 * can count results across binaries; unit_done() exits non-zero on failure.
 */
#ifndef PARTPACK_UNIT_H
#define PARTPACK_UNIT_H

#include "partpack.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int unit_count, unit_failed;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		unit_count++;                                                \
		if (cond) {                                                  \
			printf("ok %d - ", unit_count);                      \
		} else {                                                     \
			unit_failed++;                                       \
			printf("not ok %d - (%s:%d) ", unit_count, __FILE__, \
			       __LINE__);                                    \
		}                                                            \
		printf(__VA_ARGS__);                                         \
		putchar('\n');                                               \
	} while (0)

static inline int unit_done(void)
{
	printf("1..%d\n", unit_count);
	return unit_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Deterministic pseudo-random bytes (xorshift64*), so failures replay. */
static inline unsigned long long unit_random(unsigned long long *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ULL;
}

/* Text-like data that compresses (the six words, at random), and noise that
 * does not: the two kinds of block an archive writer must handle. */
static inline void unit_text(uint8_t *p, size_t len, unsigned long long *seed,
			     const char *const words[6])
{
	for (size_t i = 0; i < len;) {
		const char *w = words[unit_random(seed) % 6];
		for (; *w && i < len; w++)
			p[i++] = (uint8_t)*w;
	}
}

static inline void unit_noise(uint8_t *p, size_t len,
			      unsigned long long *seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)unit_random(seed);
}

/*
 * Scratch files: unit_mkdir("test-x") makes a fresh directory under /tmp,
 * the test then names its files in it by bare names, and unit_rmdir()
 * removes it all before unit_done().
 */
static char unit_dir[64];

static inline void unit_mkdir(const char *test)
{
	snprintf(unit_dir, sizeof unit_dir, "/tmp/partpack-%s-XXXXXX", test);
	if (!mkdtemp(unit_dir)) {
		perror("mkdtemp");
		exit(EXIT_FAILURE);
	}
}

/* 0 when the directory and everything in it is gone. */
static inline int unit_rmdir(void)
{
	char command[300];
	snprintf(command, sizeof command, "rm -rf '%s'", unit_dir);
	return system(command);
}

/* The path of NAME in the scratch directory; four stay valid at a time, so
 * one call can take a source and a destination. */
static inline char *unit_path(const char *name)
{
	static char buf[4][256];
	static int next;
	char *p = buf[next++ % 4];
	snprintf(p, 256, "%s/%s", unit_dir, name);
	return p;
}

static inline void unit_write_file(const char *name, const uint8_t *data,
				   size_t len)
{
	int fd = open(unit_path(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		abort();
	close(fd);
}

/* The whole file, malloc'ed (one spare byte, so an empty file is not NULL),
 * or NULL with *len 0 when there is no such file. */
static inline uint8_t *unit_read_file(const char *name, size_t *len)
{
	struct stat st;
	int fd = open(unit_path(name), O_RDONLY);
	*len = 0;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st))
		abort();
	*len = (size_t)st.st_size;
	uint8_t *data = malloc(*len + 1);
	if (!data || read(fd, data, *len) != (ssize_t)*len)
		abort();
	close(fd);
	return data;
}

/* Whether the scratch file NAME holds exactly len bytes of data. */
static inline bool unit_file_equals(const char *name, const uint8_t *data,
				    size_t len)
{
	size_t got;
	uint8_t *now = unit_read_file(name, &got);
	bool same = now && got == len && memcmp(now, data, len) == 0;
	free(now);
	return same;
}

/* pp_pack from the scratch file IN to the scratch file OUT. */
static inline int unit_pack(const char *in, const char *out,
			    const pp_pack_options *options, pp_error *err)
{
	int in_fd = open(unit_path(in), O_RDONLY);
	int out_fd = open(unit_path(out), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int status = pp_pack(in_fd, in, out_fd, out, options, err);
	close(in_fd);
	close(out_fd);
	return status;
}

/* Three checks on an open archive of IMAGE (SIZE bytes): pp_pread gives the
 * whole image, and 1000 bytes from AT (pick AT so they cross a block edge),
 * and pp_verify passes. */
static inline void unit_check_reads(pp_archive *a, const uint8_t *image,
				    size_t size, uint64_t at)
{
	uint8_t *buf = malloc(size);
	CHECK(buf && pp_pread(a, buf, size, 0, NULL) == 0 &&
	      memcmp(buf, image, size) == 0, "pread of the whole image");
	CHECK(buf && pp_pread(a, buf, 1000, at, NULL) == 0 &&
	      memcmp(buf, image + at, 1000) == 0,
	      "pread across a block boundary");
	CHECK(pp_verify(a, NULL, NULL, NULL) == 0, "verify passes");
	free(buf);
}

#endif
