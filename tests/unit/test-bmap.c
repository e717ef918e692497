/* test-bmap.c - the bmap document: ranges placed and hashed block by block
 * as packing does (unaligned archive blocks, data extents meeting inside a
 * 4 KiB block, a pipe), written and parsed back, updated after a patch. */
#include "bmap.h"
#include "sha256.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BS PP_BMAP_BLOCK_SIZE

static uint8_t *image;
static uint64_t image_size;

static void sha_of(uint64_t offset, uint64_t length, uint8_t digest[32])
{
	pp_sha256 sha;
	pp_sha256_init(&sha);
	pp_sha256_update(&sha, image + offset, (size_t)length);
	pp_sha256_final(&sha, digest);
}

/* Every range's digest is the SHA-256 of its bytes. */
static bool digests_match(const pp_bmap *bmap)
{
	for (size_t i = 0; i < bmap->count; i++) {
		const pp_bmap_range *r = &bmap->ranges[i];
		uint64_t start = r->first * BS;
		uint64_t end = PP_MIN((r->last + 1) * BS, image_size);
		uint8_t digest[32];
		sha_of(start, end - start, digest);
		if (memcmp(digest, r->sha256, 32) != 0 || r->dirty)
			return false;
	}
	return true;
}

/* No range crosses an archive block edge, unless it is one 4 KiB block. */
static bool split_at_edges(const pp_bmap *bmap, const uint64_t *edges,
			   size_t count)
{
	for (size_t i = 0; i < bmap->count; i++) {
		const pp_bmap_range *r = &bmap->ranges[i];
		for (size_t e = 0; e < count && r->first != r->last; e++)
			if (r->first * BS < edges[e] &&
			    edges[e] < (r->last + 1) * BS)
				return false;
	}
	return true;
}

/* Packs the image as pack.c does: blocks ending at edges[], each planned
 * in order, hashed (out of order, here: backwards), stored in order. */
static int build(pp_bmap *bmap, const pp_range *data, size_t data_count,
		 bool all_data, const uint64_t *edges, size_t count)
{
	pp_bmap_share *shares = calloc(count, sizeof *shares);
	pp_bmap_init(bmap, data, data_count, all_data);
	int status = 0;
	uint64_t start = 0;
	for (size_t i = 0; status == 0 && i < count; i++) {
		status = pp_bmap_plan(bmap, &shares[i], start, edges[i] - start,
				      i + 1 == count && !all_data, NULL);
		start = edges[i];
	}
	for (size_t i = count; status == 0 && i-- > 0;)
		pp_bmap_hash_share(&shares[i], image + shares[i].offset);
	for (size_t i = 0; status == 0 && i < count; i++)
		pp_bmap_store_share(bmap, &shares[i], image + shares[i].offset);
	pp_bmap_finish(bmap, image_size);
	for (size_t i = 0; i < count; i++)
		pp_bmap_share_free(&shares[i]);
	free(shares);
	return status;
}

static bool is_mapped_expected(const pp_range *data, size_t count,
			       uint64_t block)
{
	for (size_t i = 0; i < count; i++)
		if (data[i].offset < (block + 1) * BS &&
		    block * BS < data[i].offset + data[i].length)
			return true;
	return false;
}

static int read_mem(void *opaque, void *buf, size_t len, uint64_t offset,
		    pp_error *err)
{
	(void)opaque, (void)err;
	memcpy(buf, image + offset, len);
	return 0;
}

static const uint64_t *source_edges;
static size_t source_edge_count;

static uint64_t edge_after(void *opaque, uint64_t offset)
{
	(void)opaque;
	for (size_t i = 0; i < source_edge_count; i++)
		if (source_edges[i] > offset)
			return source_edges[i];
	return image_size;
}

static bool same(const pp_bmap *a, const pp_bmap *b)
{
	if (a->count != b->count || a->image_size != b->image_size ||
	    a->block_size != b->block_size)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (a->ranges[i].first != b->ranges[i].first ||
		    a->ranges[i].last != b->ranges[i].last ||
		    memcmp(a->ranges[i].sha256, b->ranges[i].sha256, 32))
			return false;
	return true;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *text = malloc(1 << 20);
	*len = fread(text, 1, 1 << 20, f);
	fclose(f);
	return text;
}

int main(void)
{
	unsigned long long seed = 13;
	image_size = 300 * BS + 1234;  /* ends inside a 4 KiB block */
	image = calloc(1, (size_t)image_size);
	/* Data extents, some unaligned, two meeting inside block 40. */
	const pp_range data[] = {
		{ 0, 3 * BS }, { 10 * BS + 100, 50 }, { 40 * BS + 10, 20 },
		{ 40 * BS + 3000, 5 * BS }, { 100 * BS, 90 * BS },
		{ 299 * BS, image_size - 299 * BS },
	};
	const size_t data_count = sizeof data / sizeof *data;
	for (size_t i = 0; i < data_count; i++)
		for (uint64_t b = 0; b < data[i].length; b++)
			image[data[i].offset + b] = (uint8_t)unit_random(&seed) | 1;
	/* Archive blocks: aligned ones, unaligned ones, tiny ones inside one
	 * 4 KiB block, and the end of the image. */
	const uint64_t edges[] = {
		16 * BS, 41 * BS + 7, 41 * BS + 9, 41 * BS + 4000, 64 * BS,
		120 * BS + 1, 150 * BS, 200 * BS - 5, image_size,
	};
	const size_t edge_count = sizeof edges / sizeof *edges;

	pp_bmap bmap;
	CHECK(build(&bmap, data, data_count, false, edges, edge_count) == 0,
	      "packing places and hashes the ranges");
	bool mapped_ok = true;
	for (uint64_t k = 0; k * BS < image_size; k++)
		if (pp_bmap_is_mapped(&bmap, k) !=
		    is_mapped_expected(data, data_count, k))
			mapped_ok = false;
	CHECK(mapped_ok, "mapped: exactly the 4 KiB blocks meeting data");
	CHECK(digests_match(&bmap), "every range's digest is of its bytes");
	CHECK(split_at_edges(&bmap, edges, edge_count),
	      "no range crosses an archive block edge but one-block ones");

	pp_bmap pipe;
	CHECK(build(&pipe, NULL, 0, true, edges, edge_count) == 0 &&
	      pipe.ranges[pipe.count - 1].last == image_size / BS &&
	      digests_match(&pipe), "a pipe maps every block, the last one cut");
	uint64_t mapped = 0;
	for (size_t i = 0; i < pipe.count; i++)
		mapped += pipe.ranges[i].last - pipe.ranges[i].first + 1;
	CHECK(mapped == (image_size + BS - 1) / BS, "... all %llu of them",
	      (unsigned long long)mapped);
	pp_bmap_release(&pipe);

	/* Written and parsed back. */
	char path[] = "test-bmap.XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	pp_error err;
	CHECK(pp_bmap_write(&bmap, path, &err) == 0, "written");
	size_t len;
	char *text = slurp(path, &len);
	pp_bmap parsed;
	CHECK(text && pp_bmap_parse(&parsed, text, len, path, &err) == 0,
	      "parsed back");
	CHECK(same(&bmap, &parsed), "... the same ranges and digests");
	pp_bmap_release(&parsed);
	char *bad = text ? strstr(text, "<BlockSize>") : NULL;
	if (bad)
		bad[-2] = 'X';  /* inside a comment: only the checksum sees it */
	CHECK(bad && pp_bmap_parse(&parsed, text, len, path, &err) ==
	      PP_ERR_FORMAT && strstr(err.message, "BmapFileChecksum"),
	      "an edit anywhere breaks BmapFileChecksum: %s", err.message);
	free(text);
	unlink(path);

	/* A patch into a hole and across a mapped range. */
	source_edges = edges;
	source_edge_count = edge_count;
	pp_bmap_source source = { .read = read_mem, .block_end = edge_after };
	uint64_t at = 60 * BS + 77, length = 70 * BS;  /* 60..130 */
	for (uint64_t b = 0; b < length; b++)
		image[at + b] = (uint8_t)unit_random(&seed);
	CHECK(pp_bmap_touch(&bmap, at, length, true, &source, &err) == 0 &&
	      pp_bmap_hash_dirty(&bmap, &source, &err) == 0, "a patch");
	mapped_ok = true;
	for (uint64_t k = 60; k <= 130; k++)
		mapped_ok = mapped_ok && pp_bmap_is_mapped(&bmap, k);
	CHECK(mapped_ok, "... maps the blocks it wrote");
	CHECK(digests_match(&bmap), "... and every digest is right again");
	CHECK(split_at_edges(&bmap, edges, edge_count),
	      "... new ranges split at archive block edges too");
	bool ordered = true;
	for (size_t i = 1; i < bmap.count; i++)
		ordered = ordered && bmap.ranges[i - 1].last < bmap.ranges[i].first;
	CHECK(ordered, "... ranges stay in order, not overlapping");
	pp_bmap_release(&bmap);
	free(image);
	return unit_done();
}
