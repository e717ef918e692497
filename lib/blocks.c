/*
 * blocks.c - the block table: an archive's blocks as its container listed
 * them (uncompressed range, place in the file, check), the stored extents
 * of a block as the container lists them, and the generation that tells a
 * handle when a patch gave blocks new bytes.  Format-blind, in the table
 * layer of lib/LAYERS: the containers fill it as they open an archive,
 * and every layer above them reads it.
 */
#include "blocks.h"
#include "archive.h"
#include "array.h"
#include "error.h"

#include <stdatomic.h>
#include <stdlib.h>

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
	pp_extent *items = pp_grow(list->items, list->count, &list->capacity,
				   sizeof *items, 16);
	if (!items)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	list->items = items;
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
	pp_block *blocks = pp_grow(archive->blocks, archive->block_count,
				   &archive->block_capacity, sizeof *blocks, 64);
	if (!blocks)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	archive->blocks = blocks;
	archive->blocks[archive->block_count++] = *block;
	return 0;
}

void pp_archive_drop_blocks(pp_archive *archive)
{
	free(archive->blocks);
	archive->blocks = NULL;
	archive->block_count = 0;
	archive->block_capacity = 0;
}

uint64_t pp_archive_image_size(const pp_archive *archive)
{
	if (archive->block_count == 0)
		return 0;
	const pp_block *last = &archive->blocks[archive->block_count - 1];
	return last->uoffset + last->usize;
}

/* Whether a block ends after the offset key (the blocks are in order). */
static bool block_ends_after(const void *item, const void *key)
{
	const pp_block *b = item;
	uint64_t offset = *(const uint64_t *)key;
	return offset < b->uoffset || offset - b->uoffset < b->usize;
}

size_t pp_archive_find_block(const pp_archive *archive, uint64_t offset)
{
	size_t i = pp_search_first(archive->blocks, archive->block_count,
				   sizeof *archive->blocks, block_ends_after,
				   &offset);
	return i < archive->block_count && archive->blocks[i].uoffset <= offset ?
		i : archive->block_count;
}

int pp_archive_stored_extents(pp_archive *archive, size_t block,
			      pp_extent_list *list, bool *all, pp_error *err)
{
	const pp_block *b = &archive->blocks[block];
	int status = archive->ops->stored_extents(archive, block, list, err);
	/* Extents come in order, inside the block, never overlapping. */
	uint64_t covered = 0;
	for (size_t i = 0; status == 0 && i < list->count; i++)
		covered += list->items[i].length;
	*all = status == 0 && covered == b->usize;
	return status;
}

int pp_archive_wholly_stored(pp_archive *archive, size_t block, bool *all,
			     pp_error *err)
{
	pp_extent_list list = { 0 };
	int status = pp_archive_stored_extents(archive, block, &list, all,
					       err);
	pp_extent_list_free(&list);
	return status;
}

int pp_archive_clip(const pp_archive *archive, uint64_t offset,
		    uint64_t length, uint64_t *to, pp_error *err)
{
	uint64_t image_size = pp_archive_image_size(archive);
	if (offset > image_size)
		return pp_fail(err, PP_ERR_USAGE, "%s: offset %llu is past the "
			       "end of the image (%llu bytes)", archive->path,
			       (unsigned long long)offset,
			       (unsigned long long)image_size);
	*to = offset + PP_MIN(length, image_size - offset);
	return 0;
}

void pp_archive_new_generation(pp_archive *archive)
{
	if (archive->shared)
		atomic_fetch_add(&archive->shared->generation, 1);
}

unsigned long pp_archive_generation(const pp_archive *archive)
{
	return archive->shared ? atomic_load(&archive->shared->generation) : 0;
}
