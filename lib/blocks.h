/*
 * blocks.h - the block table of an archive (blocks.c): its blocks as the
 * container lists them, each block's stored extents, the image size, and
 * the generation that moves when a patch gives blocks new bytes.
 */
#ifndef PARTPACK_BLOCKS_H
#define PARTPACK_BLOCKS_H

#include "base.h"

/* One independently decodable unit with its own check. */
typedef struct pp_block {
	uint64_t uoffset;       /* in the uncompressed image */
	uint64_t usize;
	uint64_t foffset;       /* of the block's first byte in the file */
	uint64_t fsize;         /* all of its bytes, padding included */
	uint64_t check_offset;  /* file offset of its check field */
	uint64_t check_copy_offset; /* 0: none; else a second place holding
				     * the same check (zstd's seek table) */
	enum pp_check check;
	bool stored_known;      /* the index says: wholly stored (or not) */
	bool stored;
} pp_block;

/* Uncompressed bytes [uoffset, uoffset + length) lie verbatim at foffset. */
typedef struct pp_extent {
	uint64_t uoffset;
	uint64_t length;
	uint64_t foffset;
} pp_extent;

typedef struct pp_extent_list {
	pp_extent *items;
	size_t count;
	size_t capacity;
} pp_extent_list;

int pp_extent_append(pp_extent_list *list, uint64_t uoffset, uint64_t length,
		     uint64_t foffset, pp_error *err);
void pp_extent_list_free(pp_extent_list *list);

int pp_archive_add_block(pp_archive *archive, const pp_block *block,
			 pp_error *err);
/* Empties the block table, for a container whose open failed. */
void pp_archive_drop_blocks(pp_archive *archive);
/* The size of the uncompressed image. */
uint64_t pp_archive_image_size(const pp_archive *archive);
/* The index of the block holding uncompressed offset, or block_count. */
size_t pp_archive_find_block(const pp_archive *archive, uint64_t offset);
/* Whether the container offers every byte of a block as stored data. */
int pp_archive_wholly_stored(pp_archive *archive, size_t block, bool *all,
			     pp_error *err);
/* The same, keeping the block's stored extents in *list (the caller
 * frees it, whatever the answer) for a caller that reads them. */
int pp_archive_stored_extents(pp_archive *archive, size_t block,
			      pp_extent_list *list, bool *all, pp_error *err);
/*
 * For a request of length bytes at uncompressed offset: *to is where it
 * ends, cut at the end of the image.  An offset past that end is the
 * caller's mistake (PP_ERR_USAGE); one at the end asks for nothing.
 */
int pp_archive_clip(const pp_archive *archive, uint64_t offset,
		    uint64_t length, uint64_t *to, pp_error *err);

/*
 * A patch is about to give some blocks new bytes: the generation moves,
 * so that every handle of the archive whose reading state predates it
 * drops that state (handles made by pp_dup see each other's patches).
 * Called by the patcher before its first write, which then has its own
 * handle forget those blocks (pp_read_invalidate, pp_map_invalidate).
 */
void pp_archive_new_generation(pp_archive *archive);
unsigned long pp_archive_generation(const pp_archive *archive);

#endif
