/* reuse.h - copying the blocks of an earlier archive while packing
 * (reuse.c). */
#ifndef PARTPACK_REUSE_H
#define PARTPACK_REUSE_H

#include "container.h"
#include "plan.h"

typedef struct pp_reuse pp_reuse;

/*
 * Opens options->reuse_path as the base of a pack that writes with
 * container on plan's layout, and checks that its blocks can be trusted
 * (see reuse.c).  *reuse is NULL when nothing can be reused: a notice said
 * why, or, with PP_REUSE_STRICT, PP_ERR_REUSE is returned instead.
 */
int pp_reuse_open(const pp_pack_options *options,
		  const pp_container_ops *container, const pp_plan *plan,
		  pp_reuse **reuse, pp_error *err);
/*
 * For a block about to be encoded (thread-safe, called by the workers):
 * if the base holds a block with the same range and kind and the same
 * bytes, copies its encoded bytes into out (room for out_room bytes),
 * sets *out_len and *record as encode_block would, and *reused.
 */
int pp_reuse_block(pp_reuse *reuse, uint64_t uoffset, const uint8_t *in,
		   size_t usize, bool stored, uint8_t *out, size_t out_room,
		   size_t *out_len, pp_block_record *record, bool *reused,
		   pp_error *err);
/* After the last block: waits for the probe; *trusted says whether it
 * passed, a status its failure (with PP_REUSE_STRICT, PP_ERR_REUSE). */
int pp_reuse_finish(pp_reuse *reuse, bool *trusted, pp_error *err);
/* Tells what went wrong on the way (corrupt blocks), then closes. */
void pp_reuse_close(pp_reuse *reuse);

#endif
