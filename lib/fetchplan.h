/*
 * fetchplan.h - what a fetch asks a server for (fetchplan.c): the bytes of
 * the archive file it needs, as few single-range requests.
 *
 * Pure functions of their arguments: thread-safe.
 */
#ifndef PARTPACK_FETCHPLAN_H
#define PARTPACK_FETCHPLAN_H

#include "blocks.h"

/*
 * A request costs a round trip and a few hundred bytes of headers both
 * ways; reading the bytes between two wanted ranges instead costs those
 * bytes.  Ranges closer than this become one request.
 */
#define PP_FETCH_MERGE_GAP ((uint64_t)32 << 10)
/* A request is cut for idle connections into parts of at least this. */
#define PP_FETCH_SPLIT_MIN ((uint64_t)32 << 20)

typedef struct pp_request_rules {
	uint64_t merge_gap;
	uint64_t split_min;
	unsigned connections;       /* requests in flight at once */
} pp_request_rules;

/*
 * Merges wanted file ranges (any order; overlapping and touching ones
 * allowed; empty ones ignored) into requests, in file order: ranges closer
 * than rules->merge_gap join.  When there are fewer requests than
 * connections, the largest are cut into parts of at least split_min until
 * every connection has one.  *requests is malloc'd (NULL when none).
 */
int pp_plan_requests(const pp_range *wants, size_t count,
		     const pp_request_rules *rules, pp_range **requests,
		     size_t *request_count, pp_error *err);

/*
 * The file ranges holding image bytes [offset, offset + length) of a block
 * whose stored extents are extents[0..count) (in image order): appended to
 * *ranges (a pp_grow array of *range_count, *capacity).  Returns
 * PP_ERR_NOT_STORED, appending nothing, when a byte is in no extent.
 */
int pp_plan_file_ranges(const pp_extent *extents, size_t count,
			uint64_t offset, uint64_t length, pp_range **ranges,
			size_t *range_count, size_t *capacity, pp_error *err);

#endif
