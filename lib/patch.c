/*
 * patch.c - overwriting stored bytes of an archive in place, as
 * transactions.
 *
 * A transaction (pp_patch_begin) gathers ranges of new image bytes
 * (pp_patch_add).  Each range is checked when it is added: every byte must
 * be stored data, or the range is refused and nothing of it is kept.  The
 * accepted ranges form a layer over the image, a sorted list of disjoint
 * runs in which a later range replaces what it covers of earlier ones.
 * pp_patch_commit applies the whole layer at once; pp_patch_abort drops
 * it.  pp_patch is the transaction of one range.
 *
 * Commit runs in two phases.  The first does not write to the archive.
 * For each block the layer touches it checks that the block's present
 * bytes still match its stored check: CRC arithmetic carries an old error
 * along, so patching a block that is already corrupt would hide the damage
 * under a fresh check (a wholly stored block is read straight from the file,
 * one block read; a block with compressed parts is decoded).  Then it saves
 * the old bytes of every piece it will write, checks included, to one undo
 * record (journal.c) and computes each touched block's new check once, over
 * its final bytes.  The second phase writes the new bytes and checks, syncs
 * once and drops the record.  Nothing is written before the whole
 * transaction is known to be possible, so a refused one leaves the file as
 * it was, and an interrupted one can be undone.
 *
 * The block's check kind (check.c) says how its check follows: a linear
 * check (CRC) from the changed bytes alone, so the cost is reading the old
 * bytes being replaced, besides the verifying read of the block; a hash
 * (SHA-256) by hashing the block again with the final bytes laid over,
 * which the verifying pass over its present bytes does at the same time.
 * A block whose check is also kept in a second place (check_copy_offset)
 * has both written, and both saved for undo.
 */
#include "archio.h"
#include "archive.h"
#include "array.h"
#include "blocks.h"
#include "check.h"
#include "error.h"
#include "journal.h"
#include "map.h"
#include "read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATCH_IO_SIZE (1u << 20)

/* ---- the transaction ------------------------------------------------------ */

/* A run of final image bytes, from the range that won there. */
typedef struct layer_run {
	uint64_t uoffset;
	uint64_t length;
	const uint8_t *data;
} layer_run;

/* The stored extents of a block, listed once per transaction. */
typedef struct block_extents {
	size_t block;
	pp_extent_list stored;
} block_extents;

/* Final bytes that go to one place in the file. */
typedef struct piece {
	uint64_t uoffset;
	uint64_t length;
	uint64_t foffset;
	const uint8_t *data;
} piece;

/* A block the layer touches, and what commit learns about it. */
typedef struct touched_block {
	size_t block;
	piece *pieces;
	size_t piece_count;
	size_t piece_capacity;
	uint8_t old_check[PP_CHECK_SIZE_MAX];
	uint8_t new_check[PP_CHECK_SIZE_MAX];
} touched_block;

struct pp_patch_txn {
	pp_archive *archive;
	int flags;
	layer_run *runs;            /* sorted, disjoint */
	size_t run_count;
	size_t run_capacity;
	uint8_t **copies;           /* the added bytes, owned */
	size_t copy_count;
	size_t copy_capacity;
	block_extents *extents;     /* sorted by block */
	size_t extents_count;
	size_t extents_capacity;
	touched_block *touched;     /* at commit, in block order */
	size_t touched_count;
	size_t touched_capacity;
	pp_journal *journal;        /* NULL: a private copy, or a dry run */
	uint64_t undo_bytes;
};

/* Makes room for one more item at position at of a sorted array. */
static void *insert_at(void *items, size_t *count, size_t *capacity,
		       size_t item_size, size_t at, pp_error *err)
{
	uint8_t *grown = pp_grow(items, *count, capacity, item_size, 16);
	if (!grown) {
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
		return NULL;
	}
	memmove(grown + (at + 1) * item_size, grown + at * item_size,
		(*count - at) * item_size);
	(*count)++;
	return grown;
}

int pp_patch_begin(pp_archive *archive, int flags, pp_patch_txn **out,
		   pp_error *err)
{
	*out = NULL;
	if (flags & ~PP_PATCH_DRY_RUN)
		return pp_fail(err, PP_ERR_USAGE, "%s: unknown patch flags 0x%x",
			       archive->path, (unsigned)flags);
	if (!(archive->flags & PP_OPEN_WRITE) && !(flags & PP_PATCH_DRY_RUN))
		return pp_fail(err, PP_ERR_USAGE, "%s: not opened for writing",
			       archive->path);
	pp_patch_txn *txn = calloc(1, sizeof *txn);
	if (!txn)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	txn->archive = archive;
	txn->flags = flags;
	*out = txn;
	return 0;
}

void pp_patch_abort(pp_patch_txn *txn)
{
	if (!txn)
		return;
	for (size_t i = 0; i < txn->copy_count; i++)
		free(txn->copies[i]);
	for (size_t i = 0; i < txn->extents_count; i++)
		pp_extent_list_free(&txn->extents[i].stored);
	for (size_t i = 0; i < txn->touched_count; i++)
		free(txn->touched[i].pieces);
	free(txn->copies);
	free(txn->runs);
	free(txn->extents);
	free(txn->touched);
	free(txn);
}

/* ---- adding a range: is it stored? ----------------------------------------- */

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

static int refuse(pp_archive *archive, uint64_t offset, pp_error *err)
{
	char nearest[200];
	describe_nearest(archive, offset, nearest, sizeof nearest);
	return pp_fail(err, PP_ERR_NOT_STORED,
		       "%s: byte %llu of the image is not stored data (%s)",
		       archive->path, (unsigned long long)offset, nearest);
}

static bool extents_reach(const void *item, const void *key)
{
	return ((const block_extents *)item)->block >= *(const size_t *)key;
}

/* The stored extents of a block, listed on first use. */
static int stored_extents(pp_patch_txn *txn, size_t block,
			  const pp_extent_list **list, pp_error *err)
{
	size_t low = pp_search_first(txn->extents, txn->extents_count,
				     sizeof *txn->extents, extents_reach,
				     &block);
	if (low == txn->extents_count || txn->extents[low].block != block) {
		pp_extent_list stored = { 0 };
		int status = txn->archive->ops->stored_extents(txn->archive,
							       block, &stored,
							       err);
		block_extents *grown = status ? NULL :
			insert_at(txn->extents, &txn->extents_count,
				  &txn->extents_capacity, sizeof *grown, low,
				  err);
		if (!grown) {
			pp_extent_list_free(&stored);
			return status ? status : PP_ERR_NOMEM;
		}
		txn->extents = grown;
		grown[low] = (block_extents){ .block = block, .stored = stored };
	}
	*list = &txn->extents[low].stored;
	return 0;
}

/*
 * Calls visit for each stored piece of image bytes [offset, end), in order,
 * or refuses at the first byte that is not stored.
 */
typedef int (*visit_fn)(pp_patch_txn *txn, size_t block, const pp_extent *x,
			void *opaque, pp_error *err);

static int walk_stored(pp_patch_txn *txn, uint64_t offset, uint64_t end,
		       visit_fn visit, void *opaque, pp_error *err)
{
	pp_archive *archive = txn->archive;
	uint64_t cursor = offset;
	for (size_t i = pp_archive_find_block(archive, offset);
	     cursor < end && i < archive->block_count; i++) {
		const pp_block *b = &archive->blocks[i];
		uint64_t block_end = PP_MIN(end, b->uoffset + b->usize);
		const pp_extent_list *list;
		int status = stored_extents(txn, i, &list, err);
		for (size_t e = 0; status == 0 && e < list->count &&
		     cursor < block_end; e++) {
			const pp_extent *x = &list->items[e];
			if (x->uoffset + x->length <= cursor)
				continue;
			if (x->uoffset > cursor)
				break;
			uint64_t piece_end = PP_MIN(block_end,
						    x->uoffset + x->length);
			pp_extent part = {
				.uoffset = cursor,
				.length = piece_end - cursor,
				.foffset = x->foffset + (cursor - x->uoffset),
			};
			if (visit)
				status = visit(txn, i, &part, opaque, err);
			cursor = piece_end;
		}
		if (status)
			return status;
		if (cursor < block_end)
			return refuse(archive, cursor, err);
	}
	return 0;
}

static bool run_ends_after(const void *item, const void *key)
{
	const layer_run *r = item;
	return r->uoffset + r->length > *(const uint64_t *)key;
}

/* Lays [offset, offset + len) over the layer: what it covers of earlier
 * runs goes, what sticks out on either side stays. */
static int lay_over(pp_patch_txn *txn, uint64_t offset, const uint8_t *data,
		    uint64_t len, pp_error *err)
{
	uint64_t end = offset + len;
	size_t first = pp_search_first(txn->runs, txn->run_count,
				       sizeof *txn->runs, run_ends_after,
				       &offset);
	size_t last = first;    /* one past the last run starting before end */
	while (last < txn->run_count && txn->runs[last].uoffset < end)
		last++;
	layer_run replace[3];
	size_t n = 0;
	if (first < last && txn->runs[first].uoffset < offset) {
		replace[n] = txn->runs[first];
		replace[n++].length = offset - txn->runs[first].uoffset;
	}
	replace[n++] = (layer_run){ .uoffset = offset, .length = len,
				    .data = data };
	if (first < last) {
		const layer_run *r = &txn->runs[last - 1];
		if (r->uoffset + r->length > end)
			replace[n++] = (layer_run){
				.uoffset = end,
				.length = r->uoffset + r->length - end,
				.data = r->data + (end - r->uoffset),
			};
	}
	size_t removed = last - first;
	while (txn->run_count - removed + n > txn->run_capacity) {
		layer_run *grown = pp_grow(txn->runs, txn->run_capacity,
					   &txn->run_capacity, sizeof *grown,
					   16);
		if (!grown)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		txn->runs = grown;
	}
	memmove(txn->runs + first + n, txn->runs + last,
		(txn->run_count - last) * sizeof *txn->runs);
	memcpy(txn->runs + first, replace, n * sizeof *replace);
	txn->run_count = txn->run_count - removed + n;
	return 0;
}

/* Adds a range whose bytes are copied (copy) or outlive the commit. */
static int add_range(pp_patch_txn *txn, uint64_t offset, const void *data,
		     size_t len, bool copy, pp_error *err)
{
	pp_archive *archive = txn->archive;
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
	int status = walk_stored(txn, offset, offset + len, NULL, NULL, err);
	if (status)
		return status;
	const uint8_t *bytes = data;
	if (copy) {
		uint8_t **copies = pp_grow(txn->copies, txn->copy_count,
					   &txn->copy_capacity, sizeof *copies,
					   8);
		uint8_t *owned = copies ? malloc(len) : NULL;
		if (copies)
			txn->copies = copies;
		if (!owned)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		memcpy(owned, data, len);
		txn->copies[txn->copy_count++] = owned;
		bytes = owned;
	}
	return lay_over(txn, offset, bytes, len, err);
}

int pp_patch_add(pp_patch_txn *txn, uint64_t offset, const void *data,
		 size_t len, pp_error *err)
{
	return add_range(txn, offset, data, len, true, err);
}

/* ---- commit, phase 1: where the final bytes go ----------------------------- */

/* Records one piece of a run, in the touched block it lands in. */
static int add_piece(pp_patch_txn *txn, size_t block, const pp_extent *x,
		     void *opaque, pp_error *err)
{
	const layer_run *run = opaque;
	touched_block *t = txn->touched_count ?
		&txn->touched[txn->touched_count - 1] : NULL;
	if (!t || t->block != block) {
		t = pp_grow(txn->touched, txn->touched_count,
			    &txn->touched_capacity, sizeof *t, 8);
		if (!t)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		txn->touched = t;
		t = &t[txn->touched_count++];
		*t = (touched_block){ .block = block };
	}
	piece *pieces = pp_grow(t->pieces, t->piece_count, &t->piece_capacity,
				sizeof *pieces, 8);
	if (!pieces)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	t->pieces = pieces;
	pieces[t->piece_count++] = (piece){
		.uoffset = x->uoffset,
		.length = x->length,
		.foffset = x->foffset,
		.data = run->data + (x->uoffset - run->uoffset),
	};
	return 0;
}

/* The layer's runs, split into touched blocks and file pieces. */
static int map_layer(pp_patch_txn *txn, pp_error *err)
{
	for (size_t i = 0; i < txn->run_count; i++) {
		layer_run *run = &txn->runs[i];
		int status = walk_stored(txn, run->uoffset,
					 run->uoffset + run->length, add_piece,
					 run, err);
		if (status)
			return status;
	}
	return 0;
}

/* ---- commit, phase 1: the present bytes match the check -------------------- */

/* Follows a touched block's present bytes in order: their check, and for a
 * kind with no linear arithmetic, the check of the final bytes too. */
typedef struct block_scan {
	const pp_check_kind *kind;
	const touched_block *t;
	uint64_t seen;              /* image offset reached */
	size_t next_piece;          /* the first piece not passed yet */
	uint8_t *scratch;           /* present bytes with final ones laid over */
	void *present;              /* kind->state_size bytes each */
	void *final;                /* NULL for a linear kind */
} block_scan;

static int scan_bytes(void *opaque, const uint8_t *data, size_t len,
		      pp_error *err)
{
	block_scan *s = opaque;
	for (; len > PATCH_IO_SIZE; data += PATCH_IO_SIZE, len -= PATCH_IO_SIZE)
		scan_bytes(opaque, data, PATCH_IO_SIZE, err);  /* scratch's size */
	s->kind->update(s->present, data, len);
	if (s->final) {
		uint64_t start = s->seen, end = start + len;
		const uint8_t *hashed = data;
		for (size_t i = s->next_piece; i < s->t->piece_count; i++) {
			const piece *x = &s->t->pieces[i];
			uint64_t from = PP_MAX(start, x->uoffset);
			uint64_t to = PP_MIN(end, x->uoffset + x->length);
			if (x->uoffset >= end)
				break;
			if (from < to) {
				if (hashed == data)
					hashed = memcpy(s->scratch, data, len);
				memcpy(s->scratch + (from - start),
				       x->data + (from - x->uoffset),
				       (size_t)(to - from));
			}
			if (x->uoffset + x->length <= end)
				s->next_piece = i + 1;
		}
		s->kind->update(s->final, hashed, len);
	}
	s->seen += len;
	return 0;
}

/* Feeds a wholly stored block's bytes, read straight from the file. */
static int read_stored_block(pp_patch_txn *txn, const pp_extent_list *stored,
			     block_scan *s, uint8_t *io_buf, pp_error *err)
{
	for (size_t e = 0; e < stored->count; e++) {
		const pp_extent *x = &stored->items[e];
		for (uint64_t done = 0; done < x->length;) {
			size_t len = (size_t)PP_MIN(PATCH_IO_SIZE,
						    x->length - done);
			if (pp_archive_read(txn->archive, io_buf, len,
					    x->foffset + done))
				return pp_fail_errno(err, PP_ERR_IO,
						     "%s: read error",
						     txn->archive->path);
			scan_bytes(s, io_buf, len, err);
			done += len;
		}
	}
	return 0;
}

static int corrupt_block(pp_patch_txn *txn, size_t block, pp_error *err)
{
	const pp_block *b = &txn->archive->blocks[block];
	/* Numbered from 1 in file order, as xz -lvv numbers blocks. */
	return pp_fail(err, PP_ERR_CHECK,
		       "%s: block %zu (file offset %llu, image bytes "
		       "%llu..%llu) is already corrupt: its %s check does not "
		       "match; nothing was written", txn->archive->path,
		       block + 1, (unsigned long long)b->foffset,
		       (unsigned long long)b->uoffset,
		       (unsigned long long)(b->uoffset + b->usize),
		       pp_check_name(b->check));
}

/* A reserved xz check ID: its bytes cannot be computed. */
static int unknown_kind(pp_patch_txn *txn, size_t block, pp_error *err)
{
	return pp_fail(err, PP_ERR_FORMAT, "%s: block %zu has a check of "
		       "unknown type %d, which cannot be updated",
		       txn->archive->path, block + 1,
		       (int)txn->archive->blocks[block].check);
}

/* Feeds a touched block's present bytes to the scan: straight from the
 * file when it is all stored, else by decoding it. */
static int scan_block(pp_patch_txn *txn, touched_block *t, block_scan *s,
		      uint8_t *io_buf, pp_error *err)
{
	pp_archive *archive = txn->archive;
	const pp_block *b = &archive->blocks[t->block];
	const pp_extent_list *stored;
	int status = stored_extents(txn, t->block, &stored, err);
	if (status)
		return status;
	uint64_t stored_bytes = 0;
	for (size_t e = 0; e < stored->count; e++)
		stored_bytes += stored->items[e].length;
	if (stored_bytes == b->usize)
		return read_stored_block(txn, stored, s, io_buf, err);
	/* Compressed parts: the container compares the check itself as it
	 * decodes, and a mismatch is refused the same way. */
	status = archive->ops->decode(archive, t->block, UINT64_MAX,
				      scan_bytes, s, err);
	return status == PP_ERR_CHECK ? corrupt_block(txn, t->block, err) :
					status;
}

/*
 * Checks a touched block's present bytes against its stored check (kept in
 * t->old_check) and, for a hash, computes the check of its final bytes.
 * A copy of the check elsewhere (check_copy_offset) is written, not read.
 */
static int verify_block(pp_patch_txn *txn, touched_block *t, uint8_t *io_buf,
			pp_error *err)
{
	pp_archive *archive = txn->archive;
	const pp_block *b = &archive->blocks[t->block];
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	if (!kind)
		return unknown_kind(txn, t->block, err);
	if (kind->size == 0)
		return 0;
	if (pp_archive_read(archive, t->old_check, kind->size,
			    b->check_offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     archive->path);
	block_scan s = { .kind = kind, .t = t, .seen = b->uoffset };
	bool hash = !kind->linear_delta;
	s.present = malloc(kind->state_size);
	s.final = hash ? malloc(kind->state_size) : NULL;
	s.scratch = hash ? malloc(PATCH_IO_SIZE) : NULL;
	int status = 0;
	if (!s.present || (hash && (!s.final || !s.scratch)))
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 0) {
		kind->init(s.present);
		if (hash)
			kind->init(s.final);
		status = scan_block(txn, t, &s, io_buf, err);
	}
	uint8_t present[PP_CHECK_SIZE_MAX];
	if (status == 0) {
		kind->final(s.present, present);
		if (memcmp(present, t->old_check, kind->size) != 0)
			status = corrupt_block(txn, t->block, err);
	}
	if (status == 0 && hash)
		kind->final(s.final, t->new_check);
	free(s.present);
	free(s.final);
	free(s.scratch);
	return status;
}

/* ---- commit, phase 1: the undo record and the new checks ------------------- */

/*
 * Reads the old bytes under a block's pieces once, for two uses: the undo
 * record, and for a linear check the change the piece makes to it.
 */
static int save_old_bytes(pp_patch_txn *txn, const touched_block *t,
			  uint8_t *delta, uint8_t *old_bytes, pp_error *err)
{
	const pp_block *b = &txn->archive->blocks[t->block];
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	uint64_t block_end = b->uoffset + b->usize;
	uint8_t piece_delta[PP_CHECK_SIZE_MAX];
	for (size_t i = 0; i < t->piece_count; i++) {
		const piece *x = &t->pieces[i];
		for (uint64_t done = 0; done < x->length;) {
			size_t len = (size_t)PP_MIN(PATCH_IO_SIZE, x->length - done);
			uint64_t foffset = x->foffset + done;
			if (pp_archive_read(txn->archive, old_bytes, len, foffset))
				return pp_fail_errno(err, PP_ERR_IO,
						     "%s: read error",
						     txn->archive->path);
			if (txn->journal) {
				int status = pp_journal_add(txn->journal,
							    foffset, old_bytes,
							    len, err);
				if (status)
					return status;
			}
			txn->undo_bytes += len;
			if (kind->linear_delta) {
				kind->linear_delta(piece_delta, old_bytes,
						   x->data + done, len,
						   block_end - (x->uoffset +
								done + len));
				for (size_t k = 0; k < kind->size; k++)
					delta[k] ^= piece_delta[k];
			}
			done += len;
		}
	}
	return 0;
}

/*
 * The new check of a touched block: the stored one changed by each piece
 * (a linear check), or the hash of the final bytes the verifying pass
 * computed.
 */
static void new_check(touched_block *t, const pp_check_kind *kind,
		      const uint8_t *delta)
{
	if (!kind->linear_delta)
		return;  /* verify_block left it in t->new_check */
	for (size_t i = 0; i < kind->size; i++)
		t->new_check[i] = t->old_check[i] ^ delta[i];
}

/* Reads a check field about to be overwritten and saves it for undo. */
static int save_check(pp_patch_txn *txn, uint64_t offset, size_t size,
		      uint8_t *old, pp_error *err)
{
	if (pp_archive_read(txn->archive, old, size, offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     txn->archive->path);
	txn->undo_bytes += size;
	return txn->journal ?
		pp_journal_add(txn->journal, offset, old, size, err) : 0;
}

static int prepare_block(pp_patch_txn *txn, touched_block *t, uint8_t *io_buf,
			 pp_error *err)
{
	const pp_block *b = &txn->archive->blocks[t->block];
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	uint8_t delta[PP_CHECK_SIZE_MAX] = { 0 };
	uint8_t old_copy[PP_CHECK_SIZE_MAX];
	int status = save_old_bytes(txn, t, delta, io_buf, err);
	if (status || kind->size == 0)
		return status;
	status = save_check(txn, b->check_offset, kind->size, t->old_check,
			    err);
	if (status == 0 && b->check_copy_offset)
		status = save_check(txn, b->check_copy_offset, kind->size,
				    old_copy, err);
	if (status == 0)
		new_check(t, kind, delta);
	return status;
}

/* ---- commit, phase 2: write ------------------------------------------------ */

static int write_check(pp_archive *archive, const touched_block *t,
		       size_t size, uint64_t offset, pp_error *err)
{
	if (pp_archive_write(archive, t->new_check, size, offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: write error",
				     archive->path);
	return 0;
}

/* Blocks [first, end) are about to change: every handle forgets them, this
 * one's read cache and zero verdicts now, the others' when they see the
 * new generation. */
static void invalidate(pp_archive *archive, size_t first, size_t end)
{
	pp_archive_new_generation(archive);
	pp_read_invalidate(archive, first, end);
	pp_map_invalidate(archive, first, end);
}

static int write_all(pp_patch_txn *txn, pp_error *err)
{
	pp_archive *archive = txn->archive;
	/* Readers of this archive must not keep the bytes about to change. */
	size_t first = SIZE_MAX, last = 0;
	for (size_t i = 0; i < txn->touched_count; i++) {
		first = PP_MIN(first, txn->touched[i].block);
		last = PP_MAX(last, txn->touched[i].block);
	}
	if (txn->touched_count > 0)
		invalidate(archive, first, last + 1);
	for (size_t i = 0; i < txn->touched_count; i++) {
		const touched_block *t = &txn->touched[i];
		const pp_block *b = &archive->blocks[t->block];
		for (size_t e = 0; e < t->piece_count; e++) {
			const piece *x = &t->pieces[e];
			if (pp_archive_write(archive, x->data, (size_t)x->length,
					     x->foffset))
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

/*
 * The one place that knows the bytes of txn->touched's blocks have changed
 * (or, after a failed write and its rollback, may have): whatever is
 * derived from a block's bytes is dropped here.  Nothing in the library
 * keeps such state yet.
 */
static void touched_blocks_changed(const pp_patch_txn *txn)
{
	(void)txn;
}

/* Phase 1 for every touched block, then phase 2 unless it is a dry run. */
static int commit(pp_patch_txn *txn, pp_error *err)
{
	bool dry_run = txn->flags & PP_PATCH_DRY_RUN;
	if (txn->run_count == 0)
		return 0;  /* nothing to write: no record either */
	uint8_t *io_buf = malloc(PATCH_IO_SIZE);
	int status = io_buf ? map_layer(txn, err) :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; status == 0 && i < txn->touched_count; i++)
		status = verify_block(txn, &txn->touched[i], io_buf, err);
	if (status == 0 && !dry_run &&
	    !(txn->archive->flags & PP_OPEN_PRIVATE))
		status = pp_journal_begin(txn->archive, &txn->journal, err);
	for (size_t i = 0; status == 0 && i < txn->touched_count; i++)
		status = prepare_block(txn, &txn->touched[i], io_buf, err);
	free(io_buf);
	if (txn->journal && status == 0)
		status = pp_journal_commit(txn->journal, err);
	if (status) {
		pp_journal_abort(txn->journal);
		return status;
	}
	if (dry_run)
		return 0;
	status = write_all(txn, err);
	touched_blocks_changed(txn);
	if (status && txn->journal) {
		/* Put the old bytes back now; if even that fails, the record
		 * stays for the next open to finish the job. */
		pp_error rollback_err;
		pp_journal_rollback(txn->journal, txn->archive, &rollback_err);
	} else if (txn->journal) {
		status = pp_journal_finish(txn->journal, err);
	}
	return status;
}

int pp_patch_commit(pp_patch_txn *txn, pp_patch_report *report,
		    pp_error *err)
{
	if (report)
		*report = (pp_patch_report){ 0 };
	int status = commit(txn, err);
	if (status == 0 && report) {
		uint64_t data_bytes = 0;
		for (size_t i = 0; i < txn->run_count; i++)
			data_bytes += txn->runs[i].length;
		*report = (pp_patch_report){
			.data_bytes = data_bytes,
			.blocks_touched = txn->touched_count,
			.first_block = txn->touched_count ?
				txn->touched[0].block : 0,
			.undo_bytes = txn->undo_bytes,
		};
	}
	pp_patch_abort(txn);
	return status;
}

int pp_patch(pp_archive *archive, uint64_t offset, const void *data,
	     size_t len, int flags, pp_patch_report *report, pp_error *err)
{
	if (report)
		*report = (pp_patch_report){ 0 };
	pp_patch_txn *txn;
	int status = pp_patch_begin(archive, flags, &txn, err);
	if (status)
		return status;
	/* The caller's bytes outlive the commit: no copy. */
	status = add_range(txn, offset, data, len, false, err);
	if (status) {
		pp_patch_abort(txn);
		return status;
	}
	return pp_patch_commit(txn, report, err);
}
