/*
 * query.c - what an open archive says of itself (partpack.h): its format,
 * sizes and stored ranges (pp_get_info), its blocks (pp_list_blocks),
 * whether every block decodes with a good check (pp_verify), and how far
 * stored data runs from an offset (pp_stored_run).  Questions only: the
 * block table and the container's ops answer them and nothing is kept.
 * In the archive layer of lib/LAYERS, beside the handle's lifetime.
 */
#include "archive.h"
#include "array.h"
#include "blocks.h"
#include "container.h"
#include "error.h"

#include <stdlib.h>

/* Appends the stored extents of blocks [first, end) to list. */
static int collect_stored(pp_archive *archive, size_t first, size_t end,
			  pp_extent_list *list, pp_error *err)
{
	for (size_t i = first; i < end; i++) {
		int status = archive->ops->stored_extents(archive, i, list, err);
		if (status)
			return status;
	}
	return 0;
}

static int append_range(pp_info *info, uint64_t offset, uint64_t length,
			size_t *capacity, pp_error *err)
{
	if (info->stored_count > 0) {
		pp_range *last = &info->stored[info->stored_count - 1];
		if (last->offset + last->length == offset) {
			last->length += length;
			return 0;
		}
	}
	pp_range *ranges = pp_grow(info->stored, info->stored_count, capacity,
				   sizeof *ranges, 16);
	if (!ranges)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	info->stored = ranges;
	info->stored[info->stored_count++] =
		(pp_range){ .offset = offset, .length = length };
	return 0;
}

int pp_get_format(pp_archive *archive, enum pp_format *format, pp_error *err)
{
	(void)err;
	*format = archive->ops->format;
	return 0;
}

int pp_get_info(pp_archive *archive, pp_info *info, pp_error *err)
{
	*info = (pp_info){
		.format = archive->ops->format,
		.compressed_size = archive->file_size,
		.block_count = archive->block_count,
		/* With no block, only a format of one check kind knows it. */
		.check = archive->block_count ? archive->blocks[0].check :
			pp_container_check_fixed(archive->ops) ?
			archive->ops->default_check : PP_CHECK_NONE,
	};
	info->uncompressed_size = pp_archive_image_size(archive);
	for (size_t i = 0; i < archive->block_count; i++) {
		const pp_block *b = &archive->blocks[i];
		info->block_size = PP_MAX(info->block_size, b->usize);
		if (b->check != info->check)
			info->mixed_checks = true;
	}
	pp_extent_list extents = { 0 };
	size_t capacity = 0;
	int status = collect_stored(archive, 0, archive->block_count, &extents,
				    err);
	for (size_t i = 0; status == 0 && i < extents.count; i++)
		status = append_range(info, extents.items[i].uoffset,
				      extents.items[i].length, &capacity, err);
	pp_extent_list_free(&extents);
	if (status)
		pp_info_free(info);
	return status;
}

int pp_list_blocks(pp_archive *archive, pp_block_info **blocks,
		   size_t *count, pp_error *err)
{
	*blocks = calloc(archive->block_count ? archive->block_count : 1,
			 sizeof **blocks);
	*count = 0;
	if (!*blocks)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < archive->block_count; i++) {
		const pp_block *b = &archive->blocks[i];
		pp_block_info *info = &(*blocks)[i];
		*info = (pp_block_info){
			.uoffset = b->uoffset, .usize = b->usize,
			.foffset = b->foffset, .fsize = b->fsize,
			.check = b->check,
		};
		pp_extent_list extents = { 0 };
		int status = collect_stored(archive, i, i + 1, &extents, err);
		for (size_t e = 0; status == 0 && e < extents.count; e++)
			info->stored_bytes += extents.items[e].length;
		pp_extent_list_free(&extents);
		if (status) {
			free(*blocks);
			*blocks = NULL;
			return status;
		}
	}
	*count = archive->block_count;
	return 0;
}

void pp_info_free(pp_info *info)
{
	free(info->stored);
	info->stored = NULL;
	info->stored_count = 0;
}

static int discard_sink(void *opaque, const uint8_t *data, size_t len,
			pp_error *err)
{
	(void)opaque, (void)data, (void)len, (void)err;
	return 0;
}

int pp_verify(pp_archive *archive, pp_progress_fn progress, void *opaque,
	      pp_error *err)
{
	uint64_t total = pp_archive_image_size(archive), done = 0;
	for (size_t i = 0; i < archive->block_count; i++) {
		int status = archive->ops->decode(archive, i, UINT64_MAX,
						  discard_sink, NULL, err);
		if (status)
			return status;
		done += archive->blocks[i].usize;
		if (progress)
			progress(opaque, done, total);
	}
	return 0;
}

int pp_stored_run(pp_archive *archive, uint64_t offset, uint64_t *length,
		  pp_error *err)
{
	*length = 0;
	for (size_t i = pp_archive_find_block(archive, offset);
	     i < archive->block_count; i++) {
		pp_extent_list extents = { 0 };
		int status = collect_stored(archive, i, i + 1, &extents, err);
		uint64_t reached = offset + *length;
		for (size_t e = 0; status == 0 && e < extents.count; e++) {
			const pp_extent *x = &extents.items[e];
			if (x->uoffset <= reached &&
			    reached < x->uoffset + x->length)
				reached = x->uoffset + x->length;
		}
		pp_extent_list_free(&extents);
		if (status)
			return status;
		*length = reached - offset;
		const pp_block *b = &archive->blocks[i];
		if (reached < b->uoffset + b->usize)
			break;  /* the run stops inside this block */
	}
	return 0;
}
