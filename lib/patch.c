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
 * New CRC checks come from the changed bytes alone (see crc.c): the cost is
 * reading the old bytes being replaced, not the block.  SHA-256 has no such
 * algebra, so a SHA-256 block is decoded and hashed again with the new bytes
 * laid over it.
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
	uint8_t new_check[32];
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
 * record, and the CRC change, which is crc(old) ^ crc(new) over each piece
 * (the crc0 of their xor, see crc.c) shifted past the rest of the block.
 */
static int save_old_bytes(patch *p, const touched_block *t, uint64_t *delta,
			  uint8_t *old_bytes, pp_error *err)
{
	const pp_block *b = &p->archive->blocks[t->block];
	uint64_t block_end = b->uoffset + b->usize;
	*delta = 0;
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
			if (b->check == PP_CHECK_CRC32) {
				uint32_t d = pp_crc32(0, old_bytes, len) ^
					pp_crc32(0, new_bytes, len);
				*delta ^= pp_crc32_shift(d, zeros);
			} else if (b->check == PP_CHECK_CRC64) {
				uint64_t d = pp_crc64(0, old_bytes, len) ^
					pp_crc64(0, new_bytes, len);
				*delta ^= pp_crc64_shift(d, zeros);
			}
			done += len;
		}
	}
	return 0;
}

/* Feeds a block's decoded bytes, with the patch laid over, to SHA-256. */
typedef struct overlay_sink {
	patch *p;
	const pp_block *block;
	uint64_t seen;              /* block bytes decoded so far */
	uint8_t *scratch;
	pp_sha256 sha;
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
	pp_sha256_update(&o->sha, hashed, len);
	o->seen += len;
	return 0;
}

static int sha256_of_patched(patch *p, touched_block *t, pp_error *err)
{
	overlay_sink o = { .p = p, .block = &p->archive->blocks[t->block] };
	o.scratch = malloc(PATCH_IO_SIZE);
	if (!o.scratch)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	pp_sha256_init(&o.sha);
	int status = p->archive->ops->decode(p->archive, t->block, UINT64_MAX,
					     hash_with_overlay, &o, err);
	if (status == 0)
		pp_sha256_final(&o.sha, t->new_check);
	free(o.scratch);
	return status;
}

static int prepare_block(patch *p, touched_block *t, uint8_t *io_buf,
			 pp_error *err)
{
	const pp_block *b = &p->archive->blocks[t->block];
	size_t size = pp_check_size(b->check);
	uint8_t old_check[32];
	uint64_t delta;
	int status = save_old_bytes(p, t, &delta, io_buf, err);
	if (status || size == 0)
		return status;
	if (pp_archive_read(p->archive, old_check, size, b->check_offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     p->archive->path);
	if (p->journal &&
	    (status = pp_journal_add(p->journal, b->check_offset, old_check,
				     size, err)))
		return status;
	p->undo_bytes += size;
	if (b->check == PP_CHECK_SHA256)
		return sha256_of_patched(p, t, err);
	if (b->check == PP_CHECK_CRC32)
		pp_put_le32(t->new_check, pp_get_le32(old_check) ^ (uint32_t)delta);
	else
		pp_put_le64(t->new_check, pp_get_le64(old_check) ^ delta);
	return 0;
}

/* ---- phase 2: write --------------------------------------------------- */

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
		if (pp_archive_write(archive, t->new_check,
				   pp_check_size(b->check), b->check_offset))
			return pp_fail_errno(err, PP_ERR_IO, "%s: write error",
					     archive->path);
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
