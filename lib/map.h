/* map.h - the zero blocks the index reveals, remembered per handle
 * (map.c; pp_map is public). */
#ifndef PARTPACK_MAP_H
#define PARTPACK_MAP_H

#include "base.h"

/* Map.c's state of a handle: _invalidate forgets the verdicts of blocks
 * [first, end), which the patcher is about to write; _release frees it all
 * (at pp_close, through the handle's slot). */
void pp_map_invalidate(pp_archive *archive, size_t first, size_t end);
void pp_map_release(pp_archive *archive);

/*
 * Whether a block is one of the all-zero blocks the index alone reveals
 * (lib/map.md), from the handle's memory of earlier verdicts or by
 * reading the block's encoded bytes, and decoding at most one block per
 * distinct encoding.
 */
int pp_map_block_is_zero(pp_archive *archive, size_t block, bool *zero,
			 pp_error *err);

#endif
