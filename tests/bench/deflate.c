/*
 * bench-deflate FILE OFFSET - zlib against libdeflate on what partpack's
 * gzip writer does: raw deflate of whole 16 MiB blocks, one fresh stream or
 * compressor per block.  Compresses 8 blocks of FILE from OFFSET at levels
 * 1, 6 and 9 and prints bytes and seconds for both; tests/bench/pack.sh runs it.
 */
#include <libdeflate.h>
#include <zlib.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BLOCK (16u << 20)
#define BLOCKS 8

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t zlib_deflate(int level, const unsigned char *in, size_t len,
			   unsigned char *out, size_t room)
{
	z_stream strm = { 0 };
	if (deflateInit2(&strm, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY))
		return 0;
	strm.next_in = (unsigned char *)in;
	strm.avail_in = (uInt)len;
	strm.next_out = out;
	strm.avail_out = (uInt)room;
	size_t written = deflate(&strm, Z_FINISH) == Z_STREAM_END ?
		strm.total_out : 0;
	deflateEnd(&strm);
	return written;
}

static size_t libdeflate_deflate(int level, const unsigned char *in,
				 size_t len, unsigned char *out, size_t room)
{
	struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
	size_t written = c ? libdeflate_deflate_compress(c, in, len, out, room) : 0;
	libdeflate_free_compressor(c);
	return written;
}

int main(int argc, char **argv)
{
	FILE *file = argc == 3 ? fopen(argv[1], "rb") : NULL;
	if (!file || fseek(file, atol(argv[2]), SEEK_SET)) {
		fprintf(stderr, "usage: bench-deflate FILE OFFSET\n");
		return 2;
	}
	size_t room = 2 * (size_t)BLOCK;
	unsigned char *in = malloc((size_t)BLOCK * BLOCKS), *out = malloc(room);
	size_t len = in && out ? fread(in, 1, (size_t)BLOCK * BLOCKS, file) : 0;
	fclose(file);
	if (len == 0)
		return 1;
	printf("| level | zlib | libdeflate | time ratio | size ratio |\n"
	       "|---|---|---|---|---|\n");
	static const int levels[] = { 1, 6, 9 };
	for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
		size_t zlib_bytes = 0, ld_bytes = 0;
		double zlib_time = 0, ld_time = 0;
		for (size_t off = 0; off < len; off += BLOCK) {
			size_t n = len - off < BLOCK ? len - off : BLOCK;
			double t0 = seconds();
			zlib_bytes += zlib_deflate(levels[l], in + off, n, out, room);
			double t1 = seconds();
			ld_bytes += libdeflate_deflate(levels[l], in + off, n, out,
						       room);
			double t2 = seconds();
			zlib_time += t1 - t0;
			ld_time += t2 - t1;
		}
		printf("| %d | %zu B, %.2f s | %zu B, %.2f s | %.3f | %.4f |\n",
		       levels[l], zlib_bytes, zlib_time, ld_bytes, ld_time,
		       ld_time / zlib_time, (double)ld_bytes / (double)zlib_bytes);
	}
	free(in);
	free(out);
	return 0;
}
