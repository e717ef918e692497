/* plan.h - where the blocks of a pack begin and end, and which are stored
 * (plan.c). */
#ifndef PARTPACK_PLAN_H
#define PARTPACK_PLAN_H

#include "base.h"

/* Kept ranges sorted and merged, plus the block size: enough to say where
 * each block ends without knowing the image size (stdin works). */
typedef struct pp_plan {
	pp_range *stored;
	size_t stored_count;
	uint64_t block_size;
} pp_plan;

int pp_plan_init(pp_plan *plan, const pp_range *keep, size_t count,
		 uint64_t block_size, pp_error *err);
void pp_plan_free(pp_plan *plan);
/* The block that starts at pos: its length and whether it is stored. */
void pp_plan_block(const pp_plan *plan, uint64_t pos, uint64_t *length,
		   bool *stored);
/* The end of the last kept range, for checking it against the image. */
uint64_t pp_plan_end(const pp_plan *plan);

#endif
