/* bmap.h - bmap files, made while packing and kept true by patches
 * (bmap.c; bmapsync.c applies them to an archive). */
#ifndef PARTPACK_BMAP_H
#define PARTPACK_BMAP_H

#include "base.h"

/*
 * A bmap (bmap-tools' format 2.0) lists the mapped blocks of an image, in
 * ranges, each with the SHA-256 of its bytes.  partpack's ranges never
 * cross a boundary of the archive's blocks, except that a 4 KiB block
 * holding such a boundary is a range of its own: so a patch re-hashes only
 * the ranges it touches, and while packing every range but those one-block
 * ones lies inside one archive block and is hashed on that block's worker.
 */
#define PP_BMAP_BLOCK_SIZE 4096
/* Ranges in stored data also end on a grid of this many bytes, so that a
 * fetch of a stored block whose bytes changed in a few places (a restamped
 * /boot) costs those ranges, not the block (fetch.c). */
#define PP_BMAP_STORED_GRID ((uint64_t)256 << 10)

typedef struct pp_bmap_range {
	uint64_t first;             /* block numbers, inclusive */
	uint64_t last;
	uint8_t sha256[32];
	bool dirty;                 /* to hash again */
} pp_bmap_range;

struct pp_bmap {
	uint64_t image_size;
	uint64_t block_size;
	pp_bmap_range *ranges;      /* in order, not overlapping */
	size_t count;
	size_t capacity;
	/* While packing: the data extents of the input (its hole map) ... */
	const pp_range *data;
	size_t data_count;
	size_t data_next;           /* the first that may meet what is left */
	bool all_data;              /* a pipe: no holes */
	bool stored;                /* the block being placed is stored */
	uint64_t next_block;        /* blocks below are placed */
	/* ... and the one-block range that spans two archive blocks, whose
	 * bytes arrive from both. */
	bool carrying;
	size_t carry_range;
	uint64_t carry_len;
	uint8_t carry[PP_BMAP_BLOCK_SIZE];
};

/* One archive block's share of the ranges, while packing. */
typedef struct pp_bmap_piece {
	size_t range;               /* index in the bmap's ranges */
	uint64_t offset;            /* the range's bytes in this block */
	uint64_t length;
	bool whole;                 /* all of the range: hashed on a worker */
	uint8_t sha256[32];
} pp_bmap_piece;

typedef struct pp_bmap_share {
	uint64_t offset;            /* of the archive block in the image */
	pp_bmap_piece *pieces;
	size_t count;
	size_t capacity;
} pp_bmap_share;

/* Starts a bmap for packing an image whose data extents (pp_data_extents)
 * are data[0..count), sorted; all_data for a pipe. */
void pp_bmap_init(pp_bmap *bmap, const pp_range *data, size_t count,
		  bool all_data);
/* Places the ranges of archive block [offset, offset + length), in image
 * order, and lists them in share.  last: the image ends with this block. */
int pp_bmap_plan(pp_bmap *bmap, pp_bmap_share *share, uint64_t offset,
		 uint64_t length, bool last, pp_error *err);
/* Hashes the ranges wholly inside the block (data: its bytes, NULL for
 * zeros).  Touches only share: safe on a worker. */
void pp_bmap_hash_share(pp_bmap_share *share, const uint8_t *data);
/* Stores the share's digests, in block order, and hashes the one-block
 * ranges that span archive blocks. */
void pp_bmap_store_share(pp_bmap *bmap, const pp_bmap_share *share,
			 const uint8_t *data);
void pp_bmap_share_free(pp_bmap_share *share);
/* The image ended at image_size: finishes the last range. */
void pp_bmap_finish(pp_bmap *bmap, uint64_t image_size);

/* Where a bmap update reads image bytes and finds archive block edges. */
typedef struct pp_bmap_source {
	void *opaque;
	int (*read)(void *opaque, void *buf, size_t len, uint64_t offset,
		    pp_error *err);
	/* The end of the archive block holding offset. */
	uint64_t (*block_end)(void *opaque, uint64_t offset);
} pp_bmap_source;

/* Makes every block meeting [offset, offset + length) mapped (new ranges
 * split at archive block edges) and marks the ranges there dirty. */
int pp_bmap_touch(pp_bmap *bmap, uint64_t offset, uint64_t length,
		  bool map, const pp_bmap_source *source, pp_error *err);
/* Whether block is in some range. */
bool pp_bmap_is_mapped(const pp_bmap *bmap, uint64_t block);
/* Hashes the dirty ranges again. */
int pp_bmap_hash_dirty(pp_bmap *bmap, const pp_bmap_source *source,
		       pp_error *err);
/* Parses the text of a bmap file (name labels messages). */
int pp_bmap_parse(pp_bmap *bmap, const char *text, size_t len,
		  const char *name, pp_error *err);
/* Writes the bmap to path atomically: a temporary file beside it,
 * fsync, rename, fsync of the directory. */
int pp_bmap_write(const pp_bmap *bmap, const char *path, pp_error *err);
/* Whether pp_bmap_write could create its temporary file beside path: a
 * pack checks before it starts, not after an hour of compressing. */
int pp_bmap_check_path(const char *path, pp_error *err);
void pp_bmap_release(pp_bmap *bmap);

#endif
