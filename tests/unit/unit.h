/*
 * unit.h - the smallest test harness that does the job.  Each CHECK prints
 * "ok N - what" or "not ok N - what (file:line)", TAP style, so tests/run
 * can count results across binaries; unit_done() exits non-zero on failure.
 */
#ifndef PARTPACK_UNIT_H
#define PARTPACK_UNIT_H

#include "partpack.h"
#include "../formats.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
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
 * Scratch files: unit_mkdir("test-x") makes a fresh directory in the
 * test's $TESTDIR (tests/run gives each test one; else $TMPDIR or /tmp),
 * the test then names its files in it by bare names, and unit_rmdir()
 * removes it all before unit_done().
 */
static char unit_dir[256];

static inline void unit_mkdir(const char *test)
{
	const char *base = getenv("TESTDIR");
	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base || strlen(base) > 150)
		base = "/tmp";
	snprintf(unit_dir, sizeof unit_dir, "%s/partpack-%s-XXXXXX", base,
		 test);
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

/* system() of a printf-formatted command line: its exit status, as
 * system() returns it. */
__attribute__((format(printf, 1, 2)))
static inline int unit_shell(const char *format, ...)
{
	char command[2048];
	va_list args;
	va_start(args, format);
	int n = vsnprintf(command, sizeof command, format, args);
	va_end(args);
	if (n < 0 || (size_t)n >= sizeof command)
		abort();
	return system(command);
}

/* The path of NAME in the scratch directory, into path. */
static inline char *unit_path_to(char *path, size_t size, const char *name)
{
	snprintf(path, size, "%s/%s", unit_dir, name);
	return path;
}

/* The same in a buffer of its own; four stay valid at a time, so one call
 * can take a source and a destination. */
static inline char *unit_path(const char *name)
{
	static char buf[4][512];
	static int next;
	return unit_path_to(buf[next++ % 4], sizeof buf[0], name);
}

/* A byte buffer that grows as bytes are added; free(data) when done. */
typedef struct unit_buffer {
	uint8_t *data;
	size_t len, cap;
} unit_buffer;

static inline void unit_buffer_add(unit_buffer *b, const void *data,
				   size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->data = realloc(b->data, b->cap);
		if (!b->data)
			abort();
	}
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

/* Writes the file at path whole (any failure aborts the test). */
static inline void unit_write_path(const char *path, const void *data,
				   size_t len)
{
	const uint8_t *p = data;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		abort();
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n <= 0)
			abort();
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) != 0)
		abort();
}

/* The whole file at path (one spare byte, so an empty file's data is not
 * NULL); data NULL and len 0 when there is no such file. */
static inline unit_buffer unit_read_path(const char *path)
{
	unit_buffer b = { 0 };
	struct stat st;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return b;
	if (fstat(fd, &st))
		abort();
	b.len = b.cap = (size_t)st.st_size;
	b.data = malloc(b.len + 1);
	for (size_t done = 0; b.data && done < b.len;) {
		ssize_t n = pread(fd, b.data + done, b.len - done, (off_t)done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	if (!b.data)
		abort();
	close(fd);
	return b;
}

static inline void unit_write_file(const char *name, const void *data,
				   size_t len)
{
	unit_write_path(unit_path(name), data, len);
}

/* The scratch file NAME, malloc'ed, or NULL with *len 0 when there is no
 * such file. */
static inline uint8_t *unit_read_file(const char *name, size_t *len)
{
	unit_buffer b = unit_read_path(unit_path(name));
	*len = b.len;
	return b.data;
}

/* The scratch file NAME holds exactly len bytes of data. */
static inline bool unit_same_file(const char *name, const uint8_t *data,
				  size_t len)
{
	size_t got;
	uint8_t *now = unit_read_file(name, &got);
	bool same = now && got == len && (len == 0 ||
					  memcmp(now, data, len) == 0);
	free(now);
	return same;
}

/* Options for FORMAT at its default level with CHECK, blocks of
 * block_size bytes, keeping the keep_count ranges of keep. */
static inline pp_pack_options unit_options(enum pp_format format,
					   enum pp_check check,
					   uint64_t block_size,
					   const pp_range *keep,
					   size_t keep_count)
{
	pp_pack_options options;
	int min, max;
	pp_pack_options_init(&options);
	options.format = format;
	pp_format_levels(format, &min, &max, &options.level);
	options.check = check;
	options.block_size = block_size;
	options.keep = keep;
	options.keep_count = keep_count;
	return options;
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
