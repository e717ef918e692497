/*
 * fetchplan.c - wanted bytes into requests (fetchplan.h).
 *
 * Only single-range requests: plain S3, MinIO, nginx and CDNs serve a
 * range per GET (multipart/byteranges is optional for a server, and S3
 * does not offer it).  So the plan is a list of ranges of the archive file,
 * one per request, merged where the bytes between two wanted ranges cost
 * less than another request, and cut only to give an idle connection work.
 */
#include "fetchplan.h"
#include "array.h"
#include "blocks.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

static int by_offset(const void *a, const void *b)
{
	const pp_range *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Sorts and joins ranges closer than gap, in place; returns the count. */
static size_t merge(pp_range *ranges, size_t count, uint64_t gap)
{
	qsort(ranges, count, sizeof *ranges, by_offset);
	size_t out = 0;
	for (size_t i = 0; i < count; i++) {
		if (ranges[i].length == 0)
			continue;
		uint64_t end = ranges[i].offset + ranges[i].length;
		if (out > 0) {
			pp_range *last = &ranges[out - 1];
			uint64_t last_end = last->offset + last->length;
			if (ranges[i].offset <= last_end ||
			    ranges[i].offset - last_end < gap) {
				last->length = PP_MAX(last_end, end) -
					last->offset;
				continue;
			}
		}
		ranges[out++] = ranges[i];
	}
	return out;
}

/* Cuts the largest request in two while connections would sit idle and
 * the halves stay at least split_min long. */
static size_t split_for_connections(pp_range *ranges, size_t count,
				    size_t room, const pp_request_rules *rules)
{
	while (count > 0 && count < rules->connections && count < room) {
		size_t largest = 0;
		for (size_t i = 1; i < count; i++)
			if (ranges[i].length > ranges[largest].length)
				largest = i;
		pp_range *r = &ranges[largest];
		if (r->length / 2 < rules->split_min)
			break;
		uint64_t half = r->length / 2;
		memmove(r + 2, r + 1, (count - largest - 1) * sizeof *r);
		r[1] = (pp_range){ .offset = r->offset + half,
				   .length = r->length - half };
		r->length = half;
		count++;
	}
	return count;
}

int pp_plan_requests(const pp_range *wants, size_t count,
		     const pp_request_rules *rules, pp_range **requests,
		     size_t *request_count, pp_error *err)
{
	*requests = NULL;
	*request_count = 0;
	if (count == 0)
		return 0;
	size_t room = PP_MAX(count, (size_t)rules->connections);
	pp_range *ranges = malloc(room * sizeof *ranges);
	if (!ranges)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	memcpy(ranges, wants, count * sizeof *ranges);
	size_t n = merge(ranges, count, rules->merge_gap);
	n = split_for_connections(ranges, n, room, rules);
	if (n == 0) {
		free(ranges);
		return 0;
	}
	*requests = ranges;
	*request_count = n;
	return 0;
}

int pp_plan_file_ranges(const pp_extent *extents, size_t count,
			uint64_t offset, uint64_t length, pp_range **ranges,
			size_t *range_count, size_t *capacity, pp_error *err)
{
	size_t first = *range_count;
	uint64_t at = offset, end = offset + length;
	for (size_t i = 0; i < count && at < end; i++) {
		const pp_extent *x = &extents[i];
		if (x->uoffset + x->length <= at)
			continue;
		if (x->uoffset > at)
			break;   /* a byte in no extent */
		uint64_t stop = PP_MIN(end, x->uoffset + x->length);
		pp_range *grown = pp_grow(*ranges, *range_count, capacity,
					  sizeof **ranges, 16);
		if (!grown)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		*ranges = grown;
		grown[(*range_count)++] = (pp_range){
			.offset = x->foffset + (at - x->uoffset),
			.length = stop - at,
		};
		at = stop;
	}
	if (at < end) {
		*range_count = first;
		return pp_fail(err, PP_ERR_NOT_STORED, "image byte %llu is not "
			       "stored data", (unsigned long long)at);
	}
	return 0;
}
