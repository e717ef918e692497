/* array.c - the one way the library grows an array, and the one way it
 * searches a sorted one. */
#include "array.h"

#include <stdlib.h>

void *pp_grow(void *items, size_t count, size_t *capacity, size_t item_size,
	      size_t first)
{
	if (count < *capacity)
		return items;
	size_t wanted = *capacity ? *capacity : first;
	if (*capacity && wanted > SIZE_MAX / 2 / item_size)
		return NULL;
	if (*capacity)
		wanted *= 2;
	void *grown = realloc(items, wanted * item_size);
	if (grown)
		*capacity = wanted;
	return grown;
}

size_t pp_search_first(const void *items, size_t count, size_t item_size,
		       bool (*reached)(const void *item, const void *key),
		       const void *key)
{
	const uint8_t *base = items;
	size_t low = 0, high = count;
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		if (reached(base + mid * item_size, key))
			high = mid;
		else
			low = mid + 1;
	}
	return low;
}

static bool range_ends_after(const void *item, const void *key)
{
	const pp_range *r = item;
	return r->offset + r->length > *(const uint64_t *)key;
}

size_t pp_first_range_after(const pp_range *ranges, size_t count,
			    uint64_t pos)
{
	return pp_search_first(ranges, count, sizeof *ranges,
			       range_ends_after, &pos);
}
