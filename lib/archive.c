/* archive.c - opening an archive and the format-blind block table. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pp_extent_append(pp_extent_list *list, uint64_t uoffset, uint64_t length,
		     uint64_t foffset, pp_error *err)
{
	if (list->count > 0) {
		/* Adjacent in both spaces: one extent, so callers see runs. */
		pp_extent *last = &list->items[list->count - 1];
		if (last->uoffset + last->length == uoffset &&
		    last->foffset + last->length == foffset) {
			last->length += length;
			return 0;
		}
	}
	if (list->count == list->capacity) {
		size_t capacity = list->capacity ? 2 * list->capacity : 16;
		pp_extent *items = realloc(list->items, capacity * sizeof *items);
		if (!items)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		list->items = items;
		list->capacity = capacity;
	}
	list->items[list->count++] =
		(pp_extent){ .uoffset = uoffset, .length = length, .foffset = foffset };
	return 0;
}

void pp_extent_list_free(pp_extent_list *list)
{
	free(list->items);
	*list = (pp_extent_list){ 0 };
}

int pp_archive_add_block(pp_archive *archive, const pp_block *block,
			 pp_error *err)
{
	if (archive->block_count == archive->block_capacity) {
		size_t capacity = archive->block_capacity ?
			2 * archive->block_capacity : 64;
		pp_block *blocks = realloc(archive->blocks,
					   capacity * sizeof *blocks);
		if (!blocks)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		archive->blocks = blocks;
		archive->block_capacity = capacity;
	}
	archive->blocks[archive->block_count++] = *block;
	return 0;
}

size_t pp_archive_find_block(const pp_archive *archive, uint64_t offset)
{
	size_t low = 0, high = archive->block_count;
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		const pp_block *b = &archive->blocks[mid];
		if (offset < b->uoffset)
			high = mid;
		else if (offset - b->uoffset >= b->usize)
			low = mid + 1;
		else
			return mid;
	}
	return archive->block_count;
}
