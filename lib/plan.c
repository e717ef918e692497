/*
 * plan.c - where blocks begin and end.
 *
 * Blocks lie on one global grid of block_size, and every kept range adds a
 * boundary at its start and its end.  The grid is global rather than
 * restarted after each range so that the layout depends only on the set of
 * kept bytes: "part1", "1M:9M" and "1M+8M" give the same file.  Because a
 * block's end depends only on its start, the planner needs no image size
 * and works on a pipe.
 */
#include "plan.h"
#include "array.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

static int compare_offsets(const void *a, const void *b)
{
	const pp_range *ra = a, *rb = b;
	return ra->offset < rb->offset ? -1 : ra->offset > rb->offset;
}

int pp_plan_init(pp_plan *plan, const pp_range *keep, size_t count,
		 uint64_t block_size, pp_error *err)
{
	*plan = (pp_plan){ .block_size = block_size };
	if (block_size == 0)
		return pp_fail(err, PP_ERR_USAGE, "block size must not be zero");
	if (count == 0)
		return 0;
	pp_range *sorted = malloc(count * sizeof *sorted);
	if (!sorted)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	size_t used = 0;
	for (size_t i = 0; i < count; i++) {
		if (keep[i].length == 0)
			continue;
		if (keep[i].offset > UINT64_MAX - keep[i].length) {
			free(sorted);
			return pp_fail(err, PP_ERR_USAGE,
				       "range at %llu overflows 64 bits",
				       (unsigned long long)keep[i].offset);
		}
		sorted[used++] = keep[i];
	}
	qsort(sorted, used, sizeof *sorted, compare_offsets);
	/* Merge overlapping and touching ranges. */
	size_t merged = 0;
	for (size_t i = 0; i < used; i++) {
		pp_range *last = merged ? &sorted[merged - 1] : NULL;
		if (last && sorted[i].offset <= last->offset + last->length) {
			uint64_t end = PP_MAX(last->offset + last->length,
					      sorted[i].offset + sorted[i].length);
			last->length = end - last->offset;
		} else {
			sorted[merged++] = sorted[i];
		}
	}
	plan->stored = sorted;
	plan->stored_count = merged;
	return 0;
}

void pp_plan_free(pp_plan *plan)
{
	free(plan->stored);
	*plan = (pp_plan){ 0 };
}

void pp_plan_block(const pp_plan *plan, uint64_t pos, uint64_t *length,
		   bool *stored)
{
	/* The first kept range that ends after pos. */
	size_t low = pp_first_range_after(plan->stored, plan->stored_count,
					  pos);
	uint64_t limit = UINT64_MAX;
	*stored = false;
	if (low < plan->stored_count) {
		const pp_range *r = &plan->stored[low];
		*stored = r->offset <= pos;
		limit = *stored ? r->offset + r->length : r->offset;
	}
	uint64_t grid = pos - pos % plan->block_size;
	if (grid <= UINT64_MAX - plan->block_size)
		limit = PP_MIN(limit, grid + plan->block_size);
	*length = limit - pos;
}

uint64_t pp_plan_end(const pp_plan *plan)
{
	if (plan->stored_count == 0)
		return 0;
	const pp_range *last = &plan->stored[plan->stored_count - 1];
	return last->offset + last->length;
}
