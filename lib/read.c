/*
 * read.c - random reads of the uncompressed image (pp_pread).
 *
 * Three kinds of bytes, three costs:
 *   stored data     lies verbatim in the archive: read straight from it
 *                   (the block's stored extents are listed once per handle
 *                   and remembered; they change with no patch)
 *   zero blocks     recognised from the index (map.c): filled with zeros
 *   anything else   the block is decoded whole, its check compared, and
 *                   kept in the handle's cache (cache.c), so that the next
 *                   read inside it is a copy
 * A patch drops the cached blocks it touches (pp_read_invalidate); a
 * handle that finds the archive's generation moved (a patch through
 * another handle, see pp_dup) drops its whole cache.
 */
#include "read.h"
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "cache.h"
#include "container.h"
#include "error.h"
#include "map.h"

#include <stdlib.h>
#include <string.h>

typedef struct pp_read_state {
	pp_cache *cache;
	unsigned long generation;   /* of the archive when cache was filled */
	pp_extent_list *stored;     /* per block, once listed */
	bool *stored_known;
} pp_read_state;

static int read_state(pp_archive *archive, pp_read_state **out,
		      pp_error *err)
{
	pp_read_state *state = archive->state[PP_SLOT_READ].data;
	if (!state) {
		state = calloc(1, sizeof *state);
		if (state) {
			state->cache = pp_cache_new(PP_DEFAULT_CACHE_SIZE);
			state->stored = calloc(archive->block_count + 1,
					       sizeof *state->stored);
			state->stored_known = calloc(archive->block_count + 1,
						     sizeof *state->stored_known);
			state->generation = pp_archive_generation(archive);
		}
		archive->state[PP_SLOT_READ] = (pp_handle_state){
			.data = state, .release = pp_read_release,
		};
		if (!state || !state->cache || !state->stored ||
		    !state->stored_known) {
			pp_read_release(archive);
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		}
	}
	unsigned long generation = pp_archive_generation(archive);
	if (state->generation != generation) {
		pp_cache_clear(state->cache);
		state->generation = generation;
	}
	*out = state;
	return 0;
}

void pp_read_invalidate(pp_archive *archive, size_t first, size_t end)
{
	pp_read_state *state = archive->state[PP_SLOT_READ].data;
	if (!state)
		return;
	pp_cache_invalidate(state->cache, first, end);
	/* This handle's own patch: its cache is current again. */
	state->generation = pp_archive_generation(archive);
}

void pp_read_release(pp_archive *archive)
{
	pp_read_state *state = archive->state[PP_SLOT_READ].data;
	if (!state)
		return;
	pp_cache_free(state->cache);
	for (size_t i = 0; state->stored && i < archive->block_count; i++)
		pp_extent_list_free(&state->stored[i]);
	free(state->stored);
	free(state->stored_known);
	free(state);
	archive->state[PP_SLOT_READ] = (pp_handle_state){ 0 };
}

int pp_set_cache_size(pp_archive *archive, uint64_t bytes, pp_error *err)
{
	pp_read_state *state = NULL;
	int status = read_state(archive, &state, err);
	if (status == 0)
		pp_cache_set_budget(state->cache, bytes);
	return status;
}

static int stored_extents(pp_archive *archive, pp_read_state *state,
			  size_t block, const pp_extent_list **out,
			  pp_error *err)
{
	if (!state->stored_known[block]) {
		int status = archive->ops->stored_extents(archive, block,
							  &state->stored[block],
							  err);
		if (status) {
			pp_extent_list_free(&state->stored[block]);
			return status;
		}
		state->stored_known[block] = true;
	}
	*out = &state->stored[block];
	return 0;
}

/* Reads [offset, offset + len) from the stored extents, if they hold all
 * of it; *done says whether they did. */
static int read_stored(pp_archive *archive, const pp_extent_list *extents,
		       uint8_t *dest, size_t len, uint64_t offset, bool *done,
		       pp_error *err)
{
	uint64_t end = offset + len, cursor = offset;
	*done = false;
	for (size_t i = 0; i < extents->count && cursor < end; i++) {
		const pp_extent *x = &extents->items[i];
		if (x->uoffset <= cursor && cursor < x->uoffset + x->length)
			cursor = PP_MIN(end, x->uoffset + x->length);
	}
	if (cursor < end)
		return 0;  /* some of it is not stored */
	cursor = offset;
	for (size_t i = 0; i < extents->count && cursor < end; i++) {
		const pp_extent *x = &extents->items[i];
		if (!(x->uoffset <= cursor && cursor < x->uoffset + x->length))
			continue;
		size_t piece = (size_t)(PP_MIN(end, x->uoffset + x->length) -
					cursor);
		if (pp_archive_read(archive, dest + (cursor - offset), piece,
				    x->foffset + (cursor - x->uoffset)))
			return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
					     archive->path);
		cursor += piece;
	}
	*done = true;
	return 0;
}

/* The decoded block, from the cache or decoded now (and then cached if it
 * fits; else *owned is the caller's to free). */
static int decoded_block(pp_archive *archive, pp_read_state *state,
			 size_t block, const uint8_t **data, uint8_t **owned,
			 pp_error *err)
{
	size_t len;
	*owned = NULL;
	if ((*data = pp_cache_get(state->cache, block, &len)))
		return 0;
	const pp_block *b = &archive->blocks[block];
	uint8_t *buf = malloc(b->usize ? (size_t)b->usize : 1);
	if (!buf)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory for a block "
			       "of %llu bytes", (unsigned long long)b->usize);
	int status = pp_decode_block(archive, block, buf, err);
	if (status) {
		free(buf);
		return status;
	}
	if (!pp_cache_put(state->cache, block, buf, (size_t)b->usize))
		*owned = buf;
	*data = buf;
	return 0;
}

/* Copies the decoded bytes that fall in [skip, skip + want) of a block. */
typedef struct window_sink {
	uint8_t *dest;
	uint64_t skip;
	uint64_t want;
	uint64_t seen;
} window_sink;

static int copy_window(void *opaque, const uint8_t *data, size_t len,
		       pp_error *err)
{
	window_sink *w = opaque;
	(void)err;
	uint64_t start = w->seen, end = w->seen + len;
	w->seen = end;
	uint64_t from = PP_MAX(start, w->skip);
	uint64_t to = PP_MIN(end, w->skip + w->want);
	if (from < to)
		memcpy(w->dest + (from - w->skip), data + (from - start),
		       (size_t)(to - from));
	return 0;
}

/*
 * A block too large to hold whole (its index may also simply lie about
 * its size): decoded from its start as a stream, up to the end of the
 * read, keeping only the bytes read, and not cached.
 */
static int read_streamed(pp_archive *archive, size_t block, uint8_t *dest,
			 size_t len, uint64_t offset, pp_error *err)
{
	const pp_block *b = &archive->blocks[block];
	/* More than any block partpack writes: a lie of the index, or a file
	 * better read with partcat, which streams it once. */
	if (b->usize > PP_MAX_BLOCK_SIZE)
		return pp_fail(err, PP_ERR_FORMAT, "%s: block %zu declares "
			       "%llu bytes, more than pp_pread decodes (1 GiB)",
			       archive->path, block + 1,
			       (unsigned long long)b->usize);
	window_sink w = { .dest = dest, .want = len,
			  .skip = offset - b->uoffset };
	return archive->ops->decode(archive, block, w.skip + len, copy_window,
				    &w, err);
}

/* One block's part of a read. */
static int read_piece(pp_archive *archive, pp_read_state *state, size_t block,
		      uint8_t *dest, size_t len, uint64_t offset, pp_error *err)
{
	const pp_block *b = &archive->blocks[block];
	size_t cached_len;
	const uint8_t *cached = pp_cache_get(state->cache, block, &cached_len);
	if (cached) {
		memcpy(dest, cached + (offset - b->uoffset), len);
		return 0;
	}
	const pp_extent_list *extents;
	bool done;
	int status = stored_extents(archive, state, block, &extents, err);
	if (status == 0)
		status = read_stored(archive, extents, dest, len, offset,
				     &done, err);
	if (status || done)
		return status;
	bool zero;
	if ((status = pp_map_block_is_zero(archive, block, &zero, err)))
		return status;
	if (zero) {
		memset(dest, 0, len);
		return 0;
	}
	if (b->usize > PP_DECODE_BUFFER_MAX)
		return read_streamed(archive, block, dest, len, offset, err);
	const uint8_t *data;
	uint8_t *owned;
	if ((status = decoded_block(archive, state, block, &data, &owned, err)))
		return status;
	memcpy(dest, data + (offset - b->uoffset), len);
	free(owned);
	return 0;
}

int pp_pread(pp_archive *archive, void *buf, size_t len, uint64_t offset,
	     pp_error *err)
{
	uint8_t *dest = buf;
	pp_read_state *state = NULL;
	int status = len ? read_state(archive, &state, err) : 0;
	while (status == 0 && len > 0) {
		size_t i = pp_archive_find_block(archive, offset);
		if (i == archive->block_count)
			return pp_fail(err, PP_ERR_USAGE,
				       "%s: offset %llu is past the end of the "
				       "image", archive->path,
				       (unsigned long long)offset);
		const pp_block *b = &archive->blocks[i];
		size_t piece = (size_t)PP_MIN(len, b->usize -
					      (offset - b->uoffset));
		status = read_piece(archive, state, i, dest, piece, offset,
				    err);
		dest += piece;
		offset += piece;
		len -= piece;
	}
	return status;
}
