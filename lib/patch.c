/*
 * patch.c - overwriting stored bytes of an archive in place.
 *
 * A patch runs in two phases.  The first does not touch the archive: it
 * maps the image range onto stored extents of the file (refusing the patch
 * if any byte is not stored), saves the old bytes to the undo record
 * (journal.c) and computes every touched block's new check.  The second
 * writes the new bytes and the new checks.  Nothing is written before the
 * whole patch is known to be possible, so a refused patch leaves the file
 * as it was, and an interrupted one can be undone.
 *
 * The block's check kind (check.c) says how its check follows: a linear
 * check (CRC) from the changed bytes alone, so the cost is reading the old
 * bytes being replaced, not the block; a hash (SHA-256) by decoding the
 * block and hashing it again with the new bytes laid over it.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATCH_IO_SIZE (1u << 20)

/* A touched block and the part of the patch that lands in it. */
typedef struct touched_block {
	size_t block;
	pp_extent_list pieces;      /* where its part of the patch goes */
	uint8_t new_check[PP_CHECK_SIZE_MAX];
} touched_block;

typedef struct patch {
	pp_archive *archive;
	pp_journal *journal;        /* NULL: a private copy, or a dry run */
	uint64_t undo_bytes;
	uint64_t offset;            /* of the patch in the image */
	const uint8_t *data;
	size_t len;
	touched_block *touched;
	size_t touched_count;
	size_t touched_capacity;
} patch;

/* ---- phase 1: map the range onto stored extents ------------------------ */

/* The stored ranges on either side of offset, for the refusal message. */
static void describe_nearest(pp_archive *archive, uint64_t offset, char *text,
			     size_t size)
{
	pp_info info;
	snprintf(text, size, "the archive has no stored ranges");
	if (pp_get_info(archive, &info, NULL) != 0)
		return;
	if (info.stored_count == 0) {
		pp_info_free(&info);
		return;
	}
	size_t after = 0;
	while (after < info.stored_count && info.stored[after].offset <= offset)
		after++;
	int used = snprintf(text, size, "nearest stored ranges:");
	for (size_t i = after ? after - 1 : 0;
	     i <= after && i < info.stored_count && used > 0 &&
	     (size_t)used < size; i++) {
		const pp_range *r = &info.stored[i];
		used += snprintf(text + used, size - (size_t)used,
				 " %llu+%llu", (unsigned long long)r->offset,
				 (unsigned long long)r->length);
	}
	pp_info_free(&info);
}

static int refuse(patch *p, uint64_t offset, pp_error *err)
{
	char nearest[200];
	describe_nearest(p->archive, offset, nearest, sizeof nearest);
	return pp_fail(err, PP_ERR_NOT_STORED,
		       "%s: byte %llu of the image is not stored data (%s)",
		       p->archive->path, (unsigned long long)offset, nearest);
}

static touched_block *add_touched(patch *p, size_t block, pp_error *err)
{
	touched_block *touched = pp_grow(p->touched, p->touched_count,
					 &p->touched_capacity, sizeof *touched,
					 8);
	if (!touched) {
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
		return NULL;
	}
	p->touched = touched;
	touched[p->touched_count] = (touched_block){ .block = block };
	return &touched[p->touched_count++];
}

/* Appends the pieces of [*cursor, end) that lie in one block. */
static int map_block(patch *p, size_t block, uint64_t *cursor, uint64_t end,
		     pp_error *err)
{
	pp_archive *archive = p->archive;
	const pp_block *b = &archive->blocks[block];
	uint64_t block_end = PP_MIN(end, b->uoffset + b->usize);
	touched_block *t = add_touched(p, block, err);
	if (!t)
		return PP_ERR_NOMEM;
	pp_extent_list extents = { 0 };
	int status = archive->ops->stored_extents(archive, block, &extents, err);
	for (size_t i = 0; status == 0 && i < extents.count &&
	     *cursor < block_end; i++) {
		const pp_extent *x = &extents.items[i];
		if (x->uoffset + x->length <= *cursor)
			continue;
		if (x->uoffset > *cursor)
			break;
		uint64_t piece_end = PP_MIN(block_end, x->uoffset + x->length);
		status = pp_extent_append(&t->pieces, *cursor,
					  piece_end - *cursor,
					  x->foffset + (*cursor - x->uoffset),
					  err);
		*cursor = piece_end;
	}
	pp_extent_list_free(&extents);
	if (status == 0 && *cursor < block_end)
		status = refuse(p, *cursor, err);
	return status;
}

static int map_range(patch *p, pp_error *err)
{
	pp_archive *archive = p->archive;
	uint64_t cursor = p->offset, end = p->offset + p->len;
	for (size_t i = pp_archive_find_block(archive, p->offset);
	     cursor < end && i < archive->block_count; i++) {
		int status = map_block(p, i, &cursor, end, err);
		if (status)
			return status;
	}
	return 0;
}

/* ---- phase 1: the new checks ------------------------------------------ */

/*
 * Reads the old bytes under a block's pieces once, for two uses: the undo
 * record, and, for a linear check, the change of the check: the xor of each
 * piece's delta (which depends on how far the piece lies from the block's
 * end) into *delta, as many bytes as the check has.
 */
static int save_old_bytes(patch *p, const touched_block *t,
			  const pp_check_kind *kind, uint8_t *delta,
			  uint8_t *old_bytes, pp_error *err)
{
	const pp_block *b = &p->archive->blocks[t->block];
	uint64_t block_end = b->uoffset + b->usize;
	uint8_t piece_delta[PP_CHECK_SIZE_MAX];
	for (size_t e = 0; e < t->pieces.count; e++) {
		const pp_extent *x = &t->pieces.items[e];
		for (uint64_t done = 0; done < x->length;) {
			size_t len = (size_t)PP_MIN(PATCH_IO_SIZE, x->length - done);
			const uint8_t *new_bytes =
				p->data + (x->uoffset + done - p->offset);
			uint64_t foffset = x->foffset + done;
			if (pp_archive_read(p->archive, old_bytes, len, foffset))
				return pp_fail_errno(err, PP_ERR_IO,
						     "%s: read error",
						     p->archive->path);
			if (p->journal) {
				int status = pp_journal_add(p->journal, foffset,
							    old_bytes, len, err);
				if (status)
					return status;
			}
			p->undo_bytes += len;
			uint64_t zeros = block_end - (x->uoffset + done + len);
			if (kind->linear_delta) {
				kind->linear_delta(piece_delta, old_bytes,
						   new_bytes, len, zeros);
				for (size_t i = 0; i < kind->size; i++)
					delta[i] ^= piece_delta[i];
			}
			done += len;
		}
	}
	return 0;
}

/* Feeds a block's decoded bytes, with the patch laid over, to a hash. */
typedef struct overlay_sink {
	patch *p;
	const pp_block *block;
	uint64_t seen;              /* block bytes decoded so far */
	uint8_t *scratch;
	const pp_check_kind *kind;
	void *state;                /* the hash's, kind->state_size bytes */
} overlay_sink;

static int hash_with_overlay(void *opaque, const uint8_t *data, size_t len,
			     pp_error *err)
{
	overlay_sink *o = opaque;
	(void)err;
	uint64_t start = o->block->uoffset + o->seen, end = start + len;
	uint64_t from = PP_MAX(start, o->p->offset);
	uint64_t to = PP_MIN(end, o->p->offset + o->p->len);
	const uint8_t *hashed = data;
	if (from < to) {
		memcpy(o->scratch, data, len);
		memcpy(o->scratch + (from - start),
		       o->p->data + (from - o->p->offset), (size_t)(to - from));
		hashed = o->scratch;
	}
	o->kind->update(o->state, hashed, len);
	o->seen += len;
	return 0;
}

static int hash_of_patched(patch *p, touched_block *t,
			   const pp_check_kind *kind, pp_error *err)
{
	overlay_sink o = { .p = p, .block = &p->archive->blocks[t->block],
			   .kind = kind };
	o.scratch = malloc(PATCH_IO_SIZE);
	o.state = malloc(kind->state_size);
	int status = 0;
	if (!o.scratch || !o.state)
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 0) {
		kind->init(o.state);
		status = p->archive->ops->decode(p->archive, t->block,
						 UINT64_MAX, hash_with_overlay,
						 &o, err);
	}
	if (status == 0)
		kind->final(o.state, t->new_check);
	free(o.state);
	free(o.scratch);
	return status;
}

/* Reads a check field about to be overwritten and saves it for undo. */
static int save_check(patch *p, uint64_t offset, size_t size, uint8_t *old,
		      pp_error *err)
{
	if (pp_archive_read(p->archive, old, size, offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     p->archive->path);
	p->undo_bytes += size;
	return p->journal ? pp_journal_add(p->journal, offset, old, size, err) :
			    0;
}

static int prepare_block(patch *p, touched_block *t, uint8_t *io_buf,
			 pp_error *err)
{
	const pp_block *b = &p->archive->blocks[t->block];
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	if (!kind)  /* a reserved xz check ID: its bytes cannot be computed */
		return pp_fail(err, PP_ERR_FORMAT, "%s: block %zu has a check "
			       "of unknown type %d, which cannot be updated",
			       p->archive->path, t->block, (int)b->check);
	uint8_t old_check[PP_CHECK_SIZE_MAX], old_copy[PP_CHECK_SIZE_MAX];
	uint8_t delta[PP_CHECK_SIZE_MAX] = { 0 };
	int status = save_old_bytes(p, t, kind, delta, io_buf, err);
	if (status || kind->size == 0)
		return status;
	status = save_check(p, b->check_offset, kind->size, old_check, err);
	if (status == 0 && b->check_copy_offset)
		status = save_check(p, b->check_copy_offset, kind->size,
				    old_copy, err);
	if (status || !kind->linear_delta)
		return status ? status : hash_of_patched(p, t, kind, err);
	for (size_t i = 0; i < kind->size; i++)
		t->new_check[i] = old_check[i] ^ delta[i];
	return 0;
}

/* ---- phase 2: write --------------------------------------------------- */

static int write_check(pp_archive *archive, const touched_block *t,
		       size_t size, uint64_t offset, pp_error *err)
{
	if (pp_archive_write(archive, t->new_check, size, offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: write error",
				     archive->path);
	return 0;
}

static int write_patch(patch *p, pp_error *err)
{
	pp_archive *archive = p->archive;
	for (size_t i = 0; i < p->touched_count; i++) {
		const touched_block *t = &p->touched[i];
		const pp_block *b = &archive->blocks[t->block];
		for (size_t e = 0; e < t->pieces.count; e++) {
			const pp_extent *x = &t->pieces.items[e];
			if (pp_archive_write(archive,
					   p->data + (x->uoffset - p->offset),
					   (size_t)x->length, x->foffset))
				return pp_fail_errno(err, PP_ERR_IO,
						     "%s: write error",
						     archive->path);
		}
		size_t size = pp_check_kind_of(b->check)->size;
		int status = write_check(archive, t, size, b->check_offset,
					 err);
		if (status == 0 && b->check_copy_offset)
			status = write_check(archive, t, size,
					     b->check_copy_offset, err);
		if (status)
			return status;
	}
	if (pp_archive_sync(archive))
		return pp_fail_errno(err, PP_ERR_IO, "%s: sync failed",
				     archive->path);
	return 0;
}

/* Phase 1 for every touched block, then phase 2 unless it is a dry run. */
static int run_patch(patch *p, int flags, pp_error *err)
{
	uint8_t *io_buf = malloc(PATCH_IO_SIZE);
	int status = io_buf ? map_range(p, err) :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	bool journaled = !(flags & PP_PATCH_DRY_RUN) &&
		!(p->archive->flags & PP_OPEN_PRIVATE);
	if (status == 0 && journaled)
		status = pp_journal_begin(p->archive, &p->journal, err);
	for (size_t i = 0; status == 0 && i < p->touched_count; i++)
		status = prepare_block(p, &p->touched[i], io_buf, err);
	free(io_buf);
	if (p->journal && status == 0)
		status = pp_journal_commit(p->journal, err);
	if (status) {
		pp_journal_abort(p->journal);
		return status;
	}
	if (flags & PP_PATCH_DRY_RUN)
		return 0;
	status = write_patch(p, err);
	if (status && p->journal) {
		/* Put the old bytes back now; if even that fails, the record
		 * stays for the next open to finish the job. */
		pp_error rollback_err;
		pp_journal_rollback(p->journal, p->archive, &rollback_err);
	} else if (p->journal) {
		status = pp_journal_finish(p->journal, err);
	}
	return status;
}

int pp_patch(pp_archive *archive, uint64_t offset, const void *data,
	     size_t len, int flags, pp_patch_report *report, pp_error *err)
{
	if (report)
		*report = (pp_patch_report){ 0 };
	if (!(archive->flags & PP_OPEN_WRITE) && !(flags & PP_PATCH_DRY_RUN))
		return pp_fail(err, PP_ERR_USAGE, "%s: not opened for writing",
			       archive->path);
	uint64_t image_size = pp_archive_image_size(archive);
	if (offset > image_size || len > image_size - offset)
		return pp_fail(err, PP_ERR_USAGE,
			       "%s: bytes %llu..%llu are past the end of the "
			       "image (%llu bytes)", archive->path,
			       (unsigned long long)offset,
			       (unsigned long long)(offset + len),
			       (unsigned long long)image_size);
	if (len == 0)
		return 0;

	patch p = { .archive = archive, .offset = offset, .data = data,
		    .len = len };
	int status = run_patch(&p, flags, err);
	if (status == 0 && report)
		*report = (pp_patch_report){
			.data_bytes = len,
			.blocks_touched = p.touched_count,
			.first_block = p.touched_count ? p.touched[0].block : 0,
			.undo_bytes = p.undo_bytes,
		};
	for (size_t i = 0; i < p.touched_count; i++)
		pp_extent_list_free(&p.touched[i].pieces);
	free(p.touched);
	return status;
}
