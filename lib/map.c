/*
 * map.c - the image as stored, compressed and zero extents, from the
 * index alone (pp_map), and the rule that recognises an all-zero block
 * without decoding it (lib/map.md is the reference).
 *
 * Stored extents come from the container (the same list a patch uses).
 * Zero blocks: partpack encodes every all-zero block of a size and kind
 * once and writes the same bytes for each (pack.c), and an encoding is a
 * pure function of the block's bytes.  So a block is all zeros when
 *
 *   1. it holds no stored extent, its check kind is not "none", and its
 *      encoded size is at most ZERO_ENCODING_MAX (zeros compress to a few
 *      KiB; anything larger is never taken for zeros);
 *   2. its check field equals the check of usize zero bytes (the check
 *      kind's of_zeros, check.c: CRCs by the CRC shift, hashes by hashing
 *      zeros once per size; a kind without it is never zero) - a cheap
 *      filter, not a proof;
 *   3. its encoded bytes equal, byte for byte, those of a block with the
 *      same uncompressed size, encoded size and check kind that was
 *      decoded and found all zeros.  Equal bytes decode to equal bytes,
 *      so this is exact; the first block of each distinct encoding is
 *      the one decoded (one per size and kind in partpack's archives).
 *
 * A handle remembers each verdict and the encodings it decoded, so a
 * block's verdict costs one small read once; a patch forgets the
 * verdicts of the blocks it touches (pp_map_invalidate).
 */
#include "map.h"
#include "archio.h"
#include "archive.h"
#include "array.h"
#include "blocks.h"
#include "check.h"
#include "container.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

/* Zero blocks of 16 MiB encode to about 2.5 KiB (xz) or 16 KiB (gzip);
 * a larger encoding is not worth reading or remembering. */
#define ZERO_ENCODING_MAX ((uint64_t)1 << 20)
/* Distinct encodings remembered per handle; more are decoded each time. */
#define KNOWN_ENCODINGS_MAX 16

enum verdict { VERDICT_UNKNOWN = 0, VERDICT_ZERO, VERDICT_DATA };

/* An encoding decoded once, and what it decoded to. */
typedef struct known_encoding {
	uint64_t usize;
	uint64_t fsize;
	enum pp_check check;
	uint8_t *bytes;
	bool zero;
} known_encoding;

/* The check of usize zero bytes, computed once per size and kind. */
typedef struct zero_digest {
	uint64_t usize;
	enum pp_check check;
	uint8_t digest[PP_CHECK_SIZE_MAX];
} zero_digest;

typedef struct pp_map_state {
	unsigned long generation;
	uint8_t *verdicts;          /* enum verdict per block */
	known_encoding known[KNOWN_ENCODINGS_MAX];
	size_t known_count;
	zero_digest digests[KNOWN_ENCODINGS_MAX];
	size_t digest_count;
} pp_map_state;

static int map_state(pp_archive *archive, pp_map_state **out, pp_error *err)
{
	pp_map_state *state = archive->state[PP_SLOT_MAP].data;
	if (!state) {
		state = calloc(1, sizeof *state);
		if (state && !(state->verdicts = calloc(archive->block_count + 1,
							 1))) {
			free(state);
			state = NULL;
		}
		if (!state)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		state->generation = pp_archive_generation(archive);
		archive->state[PP_SLOT_MAP] = (pp_handle_state){
			.data = state, .release = pp_map_release,
		};
	}
	unsigned long generation = pp_archive_generation(archive);
	if (state->generation != generation) {
		/* Another handle patched: verdicts may be stale, encodings
		 * and what they decode to are not. */
		memset(state->verdicts, VERDICT_UNKNOWN, archive->block_count);
		state->generation = generation;
	}
	*out = state;
	return 0;
}

void pp_map_invalidate(pp_archive *archive, size_t first, size_t end)
{
	pp_map_state *state = archive->state[PP_SLOT_MAP].data;
	if (!state)
		return;
	for (size_t i = first; i < end && i < archive->block_count; i++)
		state->verdicts[i] = VERDICT_UNKNOWN;
	state->generation = pp_archive_generation(archive);
}

void pp_map_release(pp_archive *archive)
{
	pp_map_state *state = archive->state[PP_SLOT_MAP].data;
	if (!state)
		return;
	for (size_t i = 0; i < state->known_count; i++)
		free(state->known[i].bytes);
	free(state->verdicts);
	free(state);
	archive->state[PP_SLOT_MAP] = (pp_handle_state){ 0 };
}

/* ---- the check of usize zero bytes ---------------------------------- */

/* From the check kind's table (check.c); remembered per size and kind,
 * since hashing zeros costs what hashing a block does. */
static bool zero_check(pp_map_state *state, const pp_check_kind *kind,
		       uint64_t usize, uint8_t *out)
{
	if (!kind->of_zeros)
		return false;
	for (size_t i = 0; i < state->digest_count; i++) {
		if (state->digests[i].usize == usize &&
		    state->digests[i].check == kind->id) {
			memcpy(out, state->digests[i].digest, kind->size);
			return true;
		}
	}
	kind->of_zeros(out, usize);
	if (state->digest_count < KNOWN_ENCODINGS_MAX) {
		zero_digest *d = &state->digests[state->digest_count++];
		*d = (zero_digest){ .usize = usize, .check = kind->id };
		memcpy(d->digest, out, kind->size);
	}
	return true;
}

/* ---- the verdict ------------------------------------------------------- */

/* Decodes a block whose encoding is new and remembers what it gave. */
/* Notes whether every decoded piece is zeros (no block-sized buffer). */
static int zeros_sink(void *opaque, const uint8_t *data, size_t len,
		      pp_error *err)
{
	bool *zero = opaque;
	(void)err;
	*zero = *zero && pp_all_zero(data, len);
	return 0;
}

static int decode_encoding(pp_archive *archive, pp_map_state *state,
			   size_t block, uint8_t *bytes, bool *zero,
			   pp_error *err)
{
	const pp_block *b = &archive->blocks[block];
	/* The whole block, so that its check is compared too. */
	*zero = true;
	int status = archive->ops->decode(archive, block, UINT64_MAX,
					  zeros_sink, zero, err);
	*zero = *zero && status == 0;
	if (status) {
		free(bytes);
		return status;
	}
	if (state->known_count < KNOWN_ENCODINGS_MAX) {
		state->known[state->known_count++] = (known_encoding){
			.usize = b->usize, .fsize = b->fsize,
			.check = b->check, .bytes = bytes, .zero = *zero,
		};
	} else {
		free(bytes);
	}
	return 0;
}

static int judge(pp_archive *archive, pp_map_state *state, size_t block,
		 bool *zero, pp_error *err)
{
	const pp_block *b = &archive->blocks[block];
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	size_t check_size = kind ? kind->size : 0;
	uint8_t want[PP_CHECK_SIZE_MAX], have[PP_CHECK_SIZE_MAX];
	*zero = false;
	if (check_size == 0 || b->usize == 0 || b->fsize > ZERO_ENCODING_MAX ||
	    b->usize > PP_DECODE_BUFFER_MAX ||
	    b->check_offset + check_size > b->foffset + b->fsize ||
	    !zero_check(state, kind, b->usize, want))
		return 0;
	if (pp_archive_read(archive, have, check_size, b->check_offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     archive->path);
	if (memcmp(want, have, check_size) != 0)
		return 0;
	pp_extent_list extents = { 0 };
	int status = archive->ops->stored_extents(archive, block, &extents, err);
	bool stored = extents.count > 0;
	pp_extent_list_free(&extents);
	if (status || stored)
		return status;
	uint8_t *bytes = malloc((size_t)b->fsize);
	if (!bytes)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (pp_archive_read(archive, bytes, (size_t)b->fsize, b->foffset)) {
		free(bytes);
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     archive->path);
	}
	for (size_t i = 0; i < state->known_count; i++) {
		const known_encoding *k = &state->known[i];
		if (k->usize == b->usize && k->fsize == b->fsize &&
		    k->check == b->check &&
		    memcmp(k->bytes, bytes, (size_t)b->fsize) == 0) {
			*zero = k->zero;
			free(bytes);
			return 0;
		}
	}
	return decode_encoding(archive, state, block, bytes, zero, err);
}

int pp_map_block_is_zero(pp_archive *archive, size_t block, bool *zero,
			 pp_error *err)
{
	pp_map_state *state = NULL;
	int status = map_state(archive, &state, err);
	if (status)
		return status;
	if (state->verdicts[block] != VERDICT_UNKNOWN) {
		*zero = state->verdicts[block] == VERDICT_ZERO;
		return 0;
	}
	status = judge(archive, state, block, zero, err);
	if (status == 0)
		state->verdicts[block] = *zero ? VERDICT_ZERO : VERDICT_DATA;
	return status;
}

/* ---- pp_map -------------------------------------------------------------- */

typedef struct map_list {
	pp_map_extent *items;
	size_t count;
	size_t capacity;
	uint64_t from, to;          /* the window asked for */
} map_list;

/* Appends [offset, offset + length) clipped to the window, merging. */
static int add(map_list *list, uint64_t offset, uint64_t length,
	       enum pp_extent_kind kind, uint64_t file_offset, pp_error *err)
{
	uint64_t start = PP_MAX(offset, list->from);
	uint64_t end = PP_MIN(offset + length, list->to);
	if (start >= end)
		return 0;
	if (kind == PP_EXTENT_STORED)
		file_offset += start - offset;
	if (list->count > 0) {
		pp_map_extent *last = &list->items[list->count - 1];
		if (last->kind == kind && last->offset + last->length == start &&
		    (kind != PP_EXTENT_STORED ||
		     last->file_offset + last->length == file_offset)) {
			last->length += end - start;
			return 0;
		}
	}
	pp_map_extent *items = pp_grow(list->items, list->count,
				       &list->capacity, sizeof *items, 16);
	if (!items)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	list->items = items;
	items[list->count++] = (pp_map_extent){
		.offset = start, .length = end - start, .kind = kind,
		.file_offset = file_offset,
	};
	return 0;
}

/* One block: its stored extents and the data between them, or zeros. */
static int map_block(pp_archive *archive, size_t block, map_list *list,
		     pp_error *err)
{
	const pp_block *b = &archive->blocks[block];
	pp_extent_list extents = { 0 };
	int status = archive->ops->stored_extents(archive, block, &extents,
						  err);
	uint64_t cursor = b->uoffset, end = b->uoffset + b->usize;
	for (size_t i = 0; status == 0 && i < extents.count; i++) {
		const pp_extent *x = &extents.items[i];
		status = add(list, cursor, x->uoffset - cursor, PP_EXTENT_DATA,
			     b->foffset, err);
		if (status == 0)
			status = add(list, x->uoffset, x->length,
				     PP_EXTENT_STORED, x->foffset, err);
		cursor = x->uoffset + x->length;
	}
	bool zero = false;
	if (status == 0 && extents.count == 0)
		status = pp_map_block_is_zero(archive, block, &zero, err);
	if (status == 0)
		status = add(list, cursor, end - cursor,
			     zero ? PP_EXTENT_ZERO : PP_EXTENT_DATA, b->foffset,
			     err);
	pp_extent_list_free(&extents);
	return status;
}

int pp_map(pp_archive *archive, uint64_t offset, uint64_t length,
	   pp_map_extent **extents, size_t *count, pp_error *err)
{
	*extents = NULL;
	*count = 0;
	map_list list = { .from = offset };
	int status = pp_archive_clip(archive, offset, length, &list.to, err);
	if (status)
		return status;
	for (size_t i = pp_archive_find_block(archive, offset);
	     status == 0 && i < archive->block_count &&
	     archive->blocks[i].uoffset < list.to; i++)
		status = map_block(archive, i, &list, err);
	if (status) {
		free(list.items);
		return status;
	}
	*extents = list.items;
	*count = list.count;
	return 0;
}
