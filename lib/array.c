/* array.c - the one way the library grows an array. */
#include "internal.h"

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
