/*
 * random-read - random reads of the image inside an .xz, .gz or .zst archive
 * through pp_pread, timed: how fast a disk served from an archive would
 * answer.  Offsets come from a fixed seed, so runs compare.
 *
 *   cc random-read.c $(pkg-config --cflags --libs partpack) -o random-read
 *   ./random-read [OPTION]... ARCHIVE COUNT
 *
 *   --size N        bytes per read (default 4096)
 *   --only KIND     only inside extents of KIND (stored, data, zero), as
 *                   pp_map lists them; default: anywhere in the image
 *   --cache BYTES   the handle's cache budget (pp_set_cache_size); 0 is
 *                   cold: every read of compressed data decodes its block
 *   --warm          read every offset once, untimed, before timing
 *   --compare RAW   check every read against the raw image RAW
 *
 * Prints "COUNT reads of N bytes in S s: R reads/s".
 */
#include <partpack.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t next_random(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ULL;
}

/* The extents reads may start in: all of the image, or one kind. */
static int pick_extents(pp_archive *archive, const char *only,
			pp_map_extent **extents, size_t *count, uint64_t size,
			pp_error *err)
{
	static const char *const kinds[] = {
		[PP_EXTENT_DATA] = "data",
		[PP_EXTENT_STORED] = "stored",
		[PP_EXTENT_ZERO] = "zero",
	};
	int status = pp_map(archive, 0, UINT64_MAX, extents, count, err);
	size_t kept = 0;
	for (size_t i = 0; status == 0 && i < *count; i++) {
		pp_map_extent *x = &(*extents)[i];
		if ((!only || strcmp(only, kinds[x->kind]) == 0) &&
		    x->length >= size)
			(*extents)[kept++] = *x;
	}
	*count = kept;
	return status;
}

int main(int argc, char **argv)
{
	uint64_t size = 4096, cache = PP_DEFAULT_CACHE_SIZE;
	const char *only = NULL, *compare = NULL;
	bool warm = false;
	int i = 1;
	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--warm") == 0)
			warm = true;
		else if (strcmp(argv[i], "--size") == 0 &&
			 pp_parse_size(argv[i + 1], &size) == 0 && size > 0)
			i++;
		else if (strcmp(argv[i], "--cache") == 0 &&
			 pp_parse_size(argv[i + 1], &cache) == 0)
			i++;
		else if (strcmp(argv[i], "--only") == 0)
			only = argv[++i];
		else if (strcmp(argv[i], "--compare") == 0)
			compare = argv[++i];
		else
			break;
	}
	if (i + 2 != argc || size > (64u << 20)) {
		fprintf(stderr, "usage: random-read [--size N] [--only KIND] "
			"[--cache BYTES] [--warm] [--compare RAW] ARCHIVE COUNT\n");
		return 2;
	}
	unsigned long count = strtoul(argv[i + 1], NULL, 10);
	pp_archive *archive;
	pp_error err;
	if (pp_open(argv[i], PP_OPEN_READ, &archive, &err) ||
	    pp_set_cache_size(archive, cache, &err)) {
		fprintf(stderr, "random-read: %s\n", err.message);
		return 1;
	}
	pp_map_extent *extents = NULL;
	size_t extent_count = 0;
	int raw = compare ? open(compare, O_RDONLY) : -1;
	uint8_t *buf = malloc(size), *want = malloc(size);
	uint64_t *offsets = malloc((count ? count : 1) * sizeof *offsets);
	int status = 1;
	if (!buf || !want || !offsets || (compare && raw < 0)) {
		fprintf(stderr, "random-read: out of memory or no %s\n",
			compare ? compare : "memory");
		goto out;
	}
	if (pick_extents(archive, only, &extents, &extent_count, size, &err)) {
		fprintf(stderr, "random-read: %s\n", err.message);
		goto out;
	}
	if (extent_count == 0) {
		fprintf(stderr, "random-read: no %s extent of %llu bytes\n",
			only ? only : "", (unsigned long long)size);
		goto out;
	}
	uint64_t seed = 0x9E3779B97F4A7C15ULL;
	for (unsigned long n = 0; n < count; n++) {
		const pp_map_extent *x =
			&extents[next_random(&seed) % extent_count];
		offsets[n] = x->offset +
			next_random(&seed) % (x->length - size + 1);
	}
	for (int pass = warm ? 0 : 1; pass < 2; pass++) {
		double start = now();
		for (unsigned long n = 0; n < count; n++) {
			if (pp_pread(archive, buf, size, offsets[n], &err)) {
				fprintf(stderr, "random-read: %s\n", err.message);
				goto out;
			}
			if (raw >= 0 && (pread(raw, want, size, (off_t)offsets[n]) !=
					 (ssize_t)size ||
					 memcmp(buf, want, size) != 0)) {
				fprintf(stderr, "random-read: %llu bytes at %llu "
					"differ from %s\n",
					(unsigned long long)size,
					(unsigned long long)offsets[n], compare);
				goto out;
			}
		}
		double seconds = now() - start;
		if (pass == 1)
			printf("%lu reads of %llu bytes in %.3f s: %.0f reads/s\n",
			       count, (unsigned long long)size, seconds,
			       seconds > 0 ? (double)count / seconds : 0.0);
	}
	status = 0;
out:
	if (raw >= 0)
		close(raw);
	free(offsets);
	free(buf);
	free(want);
	free(extents);
	pp_close(archive);
	return status;
}
