/* array.h - growing an array and searching a sorted one (array.c). */
#ifndef PARTPACK_ARRAY_H
#define PARTPACK_ARRAY_H

#include "base.h"

/*
 * Returns items with room for at least count + 1 of them, doubling
 * *capacity (starting at first) when full; NULL, with items untouched,
 * when memory runs out.
 */
void *pp_grow(void *items, size_t count, size_t *capacity, size_t item_size,
	      size_t first);
/*
 * The first of count sorted items for which reached(item, key) holds,
 * where it is false for some first items and true for all after them (a
 * lower bound); count when it holds for none.  The one binary search of
 * the library's sorted tables (blocks, ranges, extents, runs).
 */
size_t pp_search_first(const void *items, size_t count, size_t item_size,
		       bool (*reached)(const void *item, const void *key),
		       const void *key);
/* The first of sorted, disjoint ranges that ends after pos, or count. */
size_t pp_first_range_after(const pp_range *ranges, size_t count,
			    uint64_t pos);

#endif
