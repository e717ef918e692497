/*
 * fetchrun.c - bringing a fetch's bytes in and writing the result
 * (pp_fetch_run, fetch.h).
 *
 * Two things run at once.  A fetching thread asks the server for the
 * planned ranges (pp_remote_fetch: single-range requests over a few
 * kept-alive connections) and writes what comes into a spill file at the
 * archive's own offsets - the partial output itself when the output is the
 * archive; each range, once complete, is staged, so that the archive's own
 * reads (a container decoding a block) are served from it, and the blocks
 * it completes are queued.  The calling thread hands blocks to workers
 * (pool.c): first every block that needs nothing from the server, in
 * order, then the fetched ones as the queue gives them.  A worker takes a
 * block from where the plan says, verifies it and writes it at its offset;
 * the calling thread records it in the state file.  A seed that fails
 * verification is not an error: the block is fetched in a second round.
 */
#include "fetch.h"
#include "archio.h"
#include "archive.h"
#include "array.h"
#include "blocks.h"
#include "check.h"
#include "container.h"
#include "error.h"
#include "fetchdigest.h"
#include "fetchplan.h"
#include "fetchstate.h"
#include "http.h"
#include "io.h"
#include "pool.h"
#include "remote.h"
#include "seed.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HOLE_GRAIN 4096

typedef struct job {
	size_t block;
	pp_archive *handle;         /* this slot's own handle on the target */
	uint8_t *buf;               /* the block's image bytes */
	size_t buf_size;
	uint8_t *enc;               /* archive output: its encoded bytes */
	size_t enc_size;
	uint8_t *scratch;           /* seed bytes read over a span */
	size_t scratch_size;
	bool demoted;
	bool unrecorded;            /* in place, but not in the state file */
	uint8_t record[PP_FETCH_RECORD_SIZE];  /* of the output bytes */
	uint64_t out_len;
} job;

typedef struct run {
	fetch *f;
	const size_t *local;        /* blocks needing nothing fetched */
	size_t local_count;
	size_t local_next;
	pthread_mutex_t state_lock; /* the state file, between workers */
	pthread_mutex_t lock;       /* what follows, shared with the fetcher */
	pthread_cond_t changed;
	size_t *ready;              /* fetched blocks, as they complete */
	size_t ready_count;
	size_t ready_next;
	size_t awaited;             /* blocks waiting for the server */
	bool fetched_all;
	int fetch_status;
	pp_error fetch_err;
	const pp_range *requests;
	size_t request_count;
} run;

/* ---- what a block needs from the server ------------------------------------ */

int pp_fetch_wants(const fetch *f, size_t i, pp_range **wants, size_t *count,
		   size_t *capacity, pp_error *err)
{
	const pp_block *b = &f->target->blocks[i];
	const block_plan *p = &f->plans[i];
	if (p->take == TAKE_FETCH) {
		pp_range *grown = pp_grow(*wants, *count, capacity,
					  sizeof *grown, 16);
		if (!grown)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		*wants = grown;
		grown[(*count)++] = (pp_range){ b->foffset, b->fsize };
		return 0;
	}
	if (p->take != TAKE_PIECES)
		return 0;
	const pp_extent_list *layout = &f->layouts[i];
	for (size_t k = 0; k < p->piece_count; k++) {
		const piece *pc = &p->pieces[k];
		if (pc->source != PIECE_FETCH)
			continue;
		int status = pp_plan_file_ranges(layout->items, layout->count,
						 pc->offset, pc->length, wants,
						 count, capacity, err);
		if (status)
			return status;
	}
	return 0;
}

static bool needs_server(const block_plan *p)
{
	if (p->take == TAKE_FETCH)
		return true;
	for (size_t k = 0; p->take == TAKE_PIECES && k < p->piece_count; k++)
		if (p->pieces[k].source == PIECE_FETCH)
			return true;
	return false;
}

/* ---- the fetching thread ------------------------------------------------------- */

/* The first block whose bytes end after offset (blocks lie in file order). */
static size_t block_from(const pp_archive *a, uint64_t offset)
{
	size_t low = 0, high = a->block_count;
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		const pp_block *b = &a->blocks[mid];
		if (b->foffset + b->fsize <= offset)
			low = mid + 1;
		else
			high = mid;
	}
	return low;
}

/* Queues the blocks of [offset, end) of the file whose bytes are all in.
 * Called with the lock held. */
static int queue_complete(run *r, uint64_t offset, uint64_t end,
			  pp_error *err)
{
	fetch *f = r->f;
	pp_range *wants = NULL;
	size_t capacity = 0;
	int status = 0;
	for (size_t i = block_from(f->target, offset);
	     status == 0 && i < f->target->block_count &&
	     f->target->blocks[i].foffset < end; i++) {
		block_plan *p = &f->plans[i];
		if (i < f->first || i >= f->end || p->queued || !needs_server(p))
			continue;
		size_t count = 0;
		status = pp_fetch_wants(f, i, &wants, &count, &capacity, err);
		bool all = true;
		for (size_t k = 0; status == 0 && k < count; k++)
			all = all && pp_remote_is_staged(f->remote,
							 wants[k].offset,
							 wants[k].length);
		if (status == 0 && all) {
			p->queued = true;
			r->ready[r->ready_count++] = i;
		}
	}
	free(wants);
	if (status == 0)
		pthread_cond_broadcast(&r->changed);
	return status;
}

static int spill(void *opaque, size_t request, uint64_t offset,
		 const uint8_t *data, size_t len, pp_error *err)
{
	run *r = opaque;
	fetch *f = r->f;
	if (pp_pwrite_full(f->spill_fd, data, len, offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot keep the "
				     "fetched bytes", f->location);
	(void)request;
	/* Staged as it comes, so that the blocks a request completes are
	 * written (and kept, if the run is interrupted) before it ends. */
	int status = pp_remote_stage(f->remote, f->spill_fd, offset, len, err);
	pthread_mutex_lock(&r->lock);
	if (status == 0)
		status = queue_complete(r, offset, offset + len, err);
	pthread_mutex_unlock(&r->lock);
	return status;
}

static void *fetching(void *opaque)
{
	run *r = opaque;
	pp_error err = { 0 };
	int status = pp_remote_fetch(r->f->remote, r->requests,
				     r->request_count, spill, r, &err);
	pthread_mutex_lock(&r->lock);
	r->fetched_all = true;
	r->fetch_status = status;
	r->fetch_err = err;
	pthread_cond_broadcast(&r->changed);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ---- writing raw image bytes ------------------------------------------------- */

static int write_at(fetch *f, const uint8_t *data, uint64_t len, uint64_t at,
		    pp_error *err)
{
	if (pp_pwrite_full(f->out_fd, data, (size_t)len, at))
		return pp_fail_errno(err, PP_ERR_IO, "output: write error");
	return 0;
}

/* Writes len bytes at at; with --sparse=always, aligned zero grains of
 * the file are left as holes (the file holds zeros there). */
static int write_image(fetch *f, const uint8_t *data, uint64_t len,
		       uint64_t at, pp_error *err)
{
	if (f->options->sparse != PP_SPARSE_ALWAYS)
		return write_at(f, data, len, at, err);
	uint64_t done = 0;
	while (done < len) {
		uint64_t step = PP_MIN(len - done,
					HOLE_GRAIN - (at + done) % HOLE_GRAIN);
		bool zero = step == HOLE_GRAIN &&
			pp_all_zero(data + done, (size_t)step);
		int status = zero ? 0 : write_at(f, data + done, step,
						 at + done, err);
		if (status)
			return status;
		done += step;
	}
	return 0;
}

static int put_zeros(fetch *f, uint64_t len, uint64_t at, pp_error *err)
{
	static const uint8_t zeros[65536];
	for (uint64_t done = 0; done < len;) {
		uint64_t step = PP_MIN(len - done, (uint64_t)sizeof zeros);
		int status = write_at(f, zeros, step, at + done, err);
		if (status)
			return status;
		done += step;
	}
	return 0;
}

/* Zeros the output holds already (a new file's holes), unless holes are
 * not wanted. */
static int write_zeros(fetch *f, uint64_t len, uint64_t at, pp_error *err)
{
	return f->holes ? 0 : put_zeros(f, len, at, err);
}

/* An interrupted run may have written part of this block: its span is
 * made zeros again (a hole, where the filesystem can) before holes are
 * left in it. */
static int clear_span(fetch *f, uint64_t at, uint64_t len, pp_error *err)
{
	if (!f->resumed || len == 0 ||
	    fallocate(f->out_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)at, (off_t)len) == 0)
		return 0;
	return put_zeros(f, len, at, err);
}

/* ---- taking a block -------------------------------------------------------------- */

static int room_for(uint8_t **buf, size_t *size, uint64_t want, pp_error *err)
{
	if (*size >= want)
		return 0;
	uint8_t *grown = realloc(*buf, (size_t)want);
	if (!grown)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory for a block "
			       "of %" PRIu64 " bytes", want);
	*buf = grown;
	*size = (size_t)want;
	return 0;
}

static bool piece_matches(const piece *pc, const uint8_t *bytes)
{
	if (!pc->sha256)
		return true;
	uint8_t digest[32];
	pp_sha256 sha;
	pp_sha256_init(&sha);
	pp_sha256_update(&sha, bytes, (size_t)pc->length);
	pp_sha256_final(&sha, digest);
	return memcmp(digest, pc->sha256, 32) == 0;
}

/* Reads a fetched piece from where the block's layout puts it. */
static int read_fetched_piece(fetch *f, job *j, const piece *pc, uint8_t *to,
			      pp_error *err)
{
	pp_range *ranges = NULL;
	size_t count = 0, capacity = 0;
	const pp_extent_list *layout = &f->layouts[j->block];
	int status = pp_plan_file_ranges(layout->items, layout->count,
					 pc->offset, pc->length, &ranges,
					 &count, &capacity, err);
	for (size_t q = 0; status == 0 && q < count; q++) {
		status = pp_archive_read_or_fail(j->handle, to,
						 (size_t)ranges[q].length,
						 ranges[q].offset, err);
		to += ranges[q].length;
	}
	free(ranges);
	return status;
}

/*
 * Reads the pieces seed s gives: one read over their span into scratch
 * (an archive seed decodes each of its blocks there once, not once per
 * piece), then each piece copied into place.
 */
static int read_seed_pieces(fetch *f, job *j, int s, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	const block_plan *p = &f->plans[j->block];
	uint64_t first = UINT64_MAX, end = 0;
	for (size_t k = 0; k < p->piece_count; k++) {
		if (p->pieces[k].source != s)
			continue;
		first = PP_MIN(first, p->pieces[k].offset);
		end = PP_MAX(end, p->pieces[k].offset + p->pieces[k].length);
	}
	if (first >= end)
		return 0;
	int status = room_for(&j->scratch, &j->scratch_size, end - first, err);
	if (status == 0)
		status = pp_seed_read(f->seeds[s], j->scratch,
				      (size_t)(end - first), first, err);
	for (size_t k = 0; status == 0 && k < p->piece_count; k++) {
		const piece *pc = &p->pieces[k];
		if (pc->source == s)
			memcpy(j->buf + (pc->offset - b->uoffset),
			       j->scratch + (pc->offset - first),
			       (size_t)pc->length);
	}
	return status;
}

/* Fills buf with the block's pieces, each verified by its digest;
 * *bad says one was not what the bmap says. */
static int fill_pieces(fetch *f, job *j, bool *bad, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	const block_plan *p = &f->plans[j->block];
	int status = 0;
	*bad = false;
	for (size_t s = 0; status == 0 && s < f->seed_count; s++)
		status = read_seed_pieces(f, j, (int)s, err);
	for (size_t k = 0; status == 0 && k < p->piece_count && !*bad; k++) {
		const piece *pc = &p->pieces[k];
		uint8_t *at = j->buf + (pc->offset - b->uoffset);
		if (pc->source == PIECE_ZERO)
			memset(at, 0, (size_t)pc->length);
		else if (pc->source == PIECE_FETCH)
			status = read_fetched_piece(f, j, pc, at, err);
		if (status == 0)
			*bad = !piece_matches(pc, at);
	}
	return status;
}

/* Whether buf has the target's check, when that is known. */
static bool check_matches(fetch *f, const job *j)
{
	const pp_block *b = &f->target->blocks[j->block];
	const block_plan *p = &f->plans[j->block];
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	uint8_t check[PP_CHECK_SIZE_MAX];
	if (!p->check_known || !kind)
		return true;
	return pp_check_compute(kind, j->buf, (size_t)b->usize, check) &&
	       memcmp(check, p->check, kind->size) == 0;
}

/* A seed's block in buf: decoded (its check, equal to the target's, is
 * compared on the way) or read and checked here.  *bad: not the block. */
static int seed_block(fetch *f, job *j, bool *bad, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	const block_plan *p = &f->plans[j->block];
	*bad = false;
	if (p->by_bmap)
		return fill_pieces(f, j, bad, err);
	pp_seed *seed = f->seeds[p->seed];
	if (p->seed_block != SIZE_MAX) {
		pp_error seed_err;
		if (pp_seed_decode_block(seed, p->seed_block, j->buf,
					 &seed_err) == 0)
			return 0;
		pp_notice("%s", seed_err.message);
		*bad = true;
		return 0;
	}
	int status = pp_seed_read(seed, j->buf, (size_t)b->usize, b->uoffset,
				  err);
	*bad = status == 0 && !check_matches(f, j);
	return status;
}

/* The block's image bytes in j->buf, from wherever the plan says. */
static int take_image(fetch *f, job *j, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	block_plan *p = &f->plans[j->block];
	int status = room_for(&j->buf, &j->buf_size, b->usize, err);
	bool bad = false;
	if (status)
		return status;
	switch (p->take) {
	case TAKE_ZERO:
		memset(j->buf, 0, (size_t)b->usize);
		return 0;
	case TAKE_SEED:
		status = seed_block(f, j, &bad, err);
		break;
	case TAKE_PIECES:
		status = fill_pieces(f, j, &bad, err);
		bad = bad || !check_matches(f, j);
		break;
	case TAKE_FETCH:
		return pp_decode_block(j->handle, j->block, j->buf, err);
	case TAKE_DONE:
		return 0;
	}
	j->demoted = status == 0 && bad;
	return status;
}

void pp_fetch_output_span(const fetch *f, size_t i, uint64_t *at,
			  uint64_t *len)
{
	const pp_block *b = &f->target->blocks[i];
	if (f->archive_out) {
		*at = b->foffset;
		*len = b->fsize;
		return;
	}
	uint64_t start = PP_MAX(b->uoffset, f->from);
	uint64_t end = PP_MIN(b->uoffset + b->usize, f->to);
	*at = start - f->from;
	*len = end > start ? end - start : 0;
}

/* Writes the block's share of the image range, holes where the plan knows
 * zeros, and its digest for the state file. */
static int put_image(fetch *f, job *j, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	const block_plan *p = &f->plans[j->block];
	uint64_t at, len;
	pp_fetch_output_span(f, j->block, &at, &len);
	uint64_t skip = b->uoffset < f->from ? f->from - b->uoffset : 0;
	const uint8_t *data = j->buf + skip;
	int status = clear_span(f, at, len, err);
	if (status) {
		return status;
	} else if (p->take == TAKE_ZERO) {
		status = write_zeros(f, len, at, err);
		atomic_fetch_add(&f->zero_bytes, len);
	} else if (p->piece_count > 0) {
		/* Unmapped pieces are zeros the bmap knows: holes. */
		for (size_t k = 0; status == 0 && k < p->piece_count; k++) {
			const piece *pc = &p->pieces[k];
			uint64_t start = PP_MAX(pc->offset, b->uoffset + skip);
			uint64_t end = PP_MIN(pc->offset + pc->length,
					      b->uoffset + skip + len);
			if (start >= end)
				continue;
			uint64_t where = at + (start - b->uoffset - skip);
			status = pc->source == PIECE_ZERO ?
				write_zeros(f, end - start, where, err) :
				write_image(f, data + (start - b->uoffset - skip),
					    end - start, where, err);
		}
	} else if (p->take == TAKE_FETCH && f->holes &&
		   pp_all_zero(data, (size_t)len)) {
		/* A block of zeros (what partcat leaves a hole for). */
		atomic_fetch_add(&f->zero_bytes, len);
	} else {
		status = write_image(f, data, len, at, err);
	}
	pp_fetch_record_of(data, (size_t)len, j->record);
	j->out_len = len;
	return status;
}

/* A block too large to hold, fetched: decoded as a stream to the output. */
typedef struct stream_out {
	fetch *f;
	uint64_t uoffset;           /* of the next byte */
} stream_out;

static int stream_sink(void *opaque, const uint8_t *data, size_t len,
		       pp_error *err)
{
	stream_out *s = opaque;
	fetch *f = s->f;
	uint64_t start = PP_MAX(s->uoffset, f->from);
	uint64_t end = PP_MIN(s->uoffset + len, f->to);
	int status = start < end ?
		write_image(f, data + (start - s->uoffset), end - start,
			    start - f->from, err) : 0;
	s->uoffset += len;
	return status;
}

static int stream_block(fetch *f, job *j, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	stream_out s = { .f = f, .uoffset = b->uoffset };
	pp_notice("%s: block %zu holds %" PRIu64 " bytes: decoding it as a "
		  "stream", f->location, j->block + 1, b->usize);
	j->out_len = 0;   /* not recorded: a rerun decodes it again */
	return j->handle->ops->decode(j->handle, j->block, UINT64_MAX,
				      stream_sink, &s, err);
}

/* ---- taking a block: the archive's bytes ---------------------------------------- */

static int read_back(fetch *f, job *j, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	if (pp_pread_full(f->out_fd, j->enc, (size_t)b->fsize, b->foffset))
		return pp_fail_errno(err, PP_ERR_IO, "partial output");
	return 0;
}

/* A stored block rebuilt: the donor's framing, the image bytes where the
 * layout puts them, and the check of those bytes. */
static int rebuild_stored(fetch *f, job *j, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	const block_plan *p = &f->plans[j->block];
	pp_seed *donor = f->seeds[p->donor];
	const pp_block *db = &pp_seed_archive(donor)->blocks[p->donor_block];
	int status = pp_seed_read_file(donor, j->enc, (size_t)b->fsize,
				       db->foffset, err);
	const pp_extent_list *layout = &f->layouts[j->block];
	for (size_t k = 0; status == 0 && k < layout->count; k++) {
		const pp_extent *x = &layout->items[k];
		memcpy(j->enc + (x->foffset - b->foffset),
		       j->buf + (x->uoffset - b->uoffset), (size_t)x->length);
	}
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	uint8_t check[PP_CHECK_SIZE_MAX];
	if (status == 0 && kind &&
	    pp_check_compute(kind, j->buf, (size_t)b->usize, check))
		memcpy(j->enc + (b->check_offset - b->foffset), check,
		       kind->size);
	return status;
}

/* Decodes the block as written to the output (staged there first). */
static int decode_written(fetch *f, job *j, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	int status = pp_remote_stage(f->remote, f->out_fd, b->foffset, b->fsize,
				     err);
	return status ? status : pp_decode_block(j->handle, j->block, j->buf,
						 err);
}

/*
 * A seed's encoded block copied as it is, by the kernel (a reflink where
 * the filesystem shares extents): with a --sha256 to verify the file it
 * is neither decoded nor read here.  It gets no record in the state file
 * (copying it again costs little).
 */
static int copy_encoded_block(fetch *f, job *j, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	const block_plan *p = &f->plans[j->block];
	pp_archive *sa = pp_seed_archive(f->seeds[p->seed]);
	loff_t from = (loff_t)sa->blocks[p->seed_block].foffset;
	loff_t to = (loff_t)b->foffset;
	uint64_t left = b->fsize;
	while (left > 0 && sa->fd >= 0) {
		ssize_t n = copy_file_range(sa->fd, &from, f->out_fd, &to,
					    (size_t)left, 0);
		if (n <= 0)
			break;
		left -= (uint64_t)n;
	}
	if (left > 0) {
		/* No copy_file_range here (or across filesystems): by hand. */
		uint64_t done = b->fsize - left;
		int status = pp_seed_read_file(f->seeds[p->seed], j->enc,
					       (size_t)left,
					       sa->blocks[p->seed_block].foffset +
					       done, err);
		if (status == 0)
			status = write_at(f, j->enc, left, b->foffset + done,
					  err);
		if (status)
			return status;
	}
	j->out_len = b->fsize;
	j->unrecorded = true;
	return 0;
}

static int take_encoded(fetch *f, job *j, pp_error *err)
{
	const pp_block *b = &f->target->blocks[j->block];
	const block_plan *p = &f->plans[j->block];
	int status = room_for(&j->buf, &j->buf_size, b->usize, err);
	if (status == 0)
		status = room_for(&j->enc, &j->enc_size, b->fsize, err);
	if (status)
		return status;
	if (p->take == TAKE_FETCH) {
		/* Already in place: fetched into the output itself.  With a
		 * --sha256 to verify the file, it is decoded only if that
		 * fails (to name the block). */
		if (f->verify_copies)
			status = pp_decode_block(j->handle, j->block, j->buf,
						 err);
		return status ? status : read_back(f, j, err);
	}
	bool bad = false;
	if (p->take == TAKE_SEED && !f->verify_copies)
		return copy_encoded_block(f, j, err);
	if (p->take == TAKE_SEED) {
		const pp_block *sb = &pp_seed_archive(f->seeds[p->seed])->
			blocks[p->seed_block];
		status = pp_seed_read_file(f->seeds[p->seed], j->enc,
					   (size_t)b->fsize, sb->foffset, err);
		if (status == 0 && f->verify_copies) {
			pp_error seed_err;
			bad = pp_seed_decode_block(f->seeds[p->seed],
						   p->seed_block, j->buf,
						   &seed_err) != 0;
			if (bad)
				pp_notice("%s", seed_err.message);
		}
	} else if (p->take == TAKE_PIECES) {
		status = fill_pieces(f, j, &bad, err);
		bad = bad || !check_matches(f, j);
		if (status == 0 && !bad)
			status = rebuild_stored(f, j, err);
	}
	if (status == 0 && !bad)
		status = write_at(f, j->enc, b->fsize, b->foffset, err);
	if (status == 0 && !bad && p->take == TAKE_PIECES && f->verify_copies) {
		pp_error decode_err;
		bad = decode_written(f, j, &decode_err) != 0;
	}
	j->demoted = bad;
	return status;
}

/* ---- the workers ------------------------------------------------------------------- */

/* The block is in place: counted, and recorded in the state file at
 * once (not when the calling thread drains it: it may be waiting for the
 * server, and an interruption then would lose the record). */
static int finished(run *r, job *j, pp_error *err)
{
	fetch *f = r->f;
	block_plan *p = &f->plans[j->block];
	if (p->take == TAKE_FETCH || p->take == TAKE_PIECES)
		atomic_fetch_add(&f->fetched_blocks, 1);
	if (p->take == TAKE_SEED) {
		atomic_fetch_add(&f->seeded_blocks, 1);
		atomic_fetch_add(&f->seeded_bytes, j->out_len);
	}
	atomic_fetch_add(&f->done_bytes, j->out_len);
	if (!f->state || j->out_len == 0 || j->unrecorded)
		return 0;
	pthread_mutex_lock(&r->state_lock);
	int status = pp_fetch_state_done(f->state, j->block, j->record,
					 PP_FETCH_RECORD_SIZE, err);
	pthread_mutex_unlock(&r->state_lock);
	return status;
}

static int work(void *opaque, void *slot, pp_error *err)
{
	run *r = opaque;
	fetch *f = r->f;
	job *j = slot;
	const pp_block *b = &f->target->blocks[j->block];
	j->demoted = false;
	j->out_len = 0;
	if (f->plans[j->block].take == TAKE_DONE)
		return 0;
	int status;
	j->unrecorded = false;
	if (f->archive_out) {
		status = take_encoded(f, j, err);
		if (status == 0 && !j->demoted && !j->unrecorded) {
			pp_fetch_record_of(j->enc, (size_t)b->fsize, j->record);
			j->out_len = b->fsize;
		}
	} else if (b->usize > PP_FETCH_BUFFERED_MAX) {
		status = stream_block(f, j, err);
	} else {
		status = take_image(f, j, err);
		if (status == 0 && !j->demoted)
			status = put_image(f, j, err);
	}
	return status || j->demoted ? status : finished(r, j, err);
}

static int fill(void *opaque, size_t job_number, void *slot, pp_error *err)
{
	run *r = opaque;
	job *j = slot;
	(void)job_number;
	if (!j->handle) {
		int status = pp_dup(r->f->target, &j->handle, err);
		if (status)
			return status;
	}
	/* A fetched block that is here goes first: the output's digest
	 * (fetchdigest.c) follows the written prefix, and waits at the first
	 * block not written. */
	pthread_mutex_lock(&r->lock);
	if (r->ready_next == r->ready_count && r->local_next < r->local_count) {
		j->block = r->local[r->local_next++];
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	while (r->ready_next == r->ready_count && !r->fetched_all) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 250000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&r->changed, &r->lock, &until);
		pthread_mutex_unlock(&r->lock);
		pp_fetch_report_progress(r->f);
		pthread_mutex_lock(&r->lock);
	}
	int status = 1;
	if (r->ready_next < r->ready_count) {
		j->block = r->ready[r->ready_next++];
		status = 0;
	} else if (r->fetch_status) {
		*err = r->fetch_err;
		status = r->fetch_status;
	} else if (r->ready_count < r->awaited) {
		status = pp_fail(err, PP_ERR_INTERNAL, "%s: %zu blocks never "
				 "arrived", r->f->location,
				 r->awaited - r->ready_count);
	}
	pthread_mutex_unlock(&r->lock);
	return status;
}

static int drain(void *opaque, size_t job_number, void *slot, pp_error *err)
{
	run *r = opaque;
	fetch *f = r->f;
	job *j = slot;
	(void)job_number;
	block_plan *p = &f->plans[j->block];
	(void)err;
	if (p->take == TAKE_DONE)
		return 0;
	if (j->demoted) {
		p->demoted = true;
	} else {
		p->take = TAKE_DONE;
		if (f->digest)
			pp_fetch_digest_written(f->digest, j->block - f->first);
	}
	pp_fetch_report_progress(f);
	return 0;
}

static const pp_pool_ops run_ops = { .fill = fill, .work = work,
				     .drain = drain };

/* ---- one round ------------------------------------------------------------------ */

static int plan_requests(run *r, pp_range **requests, pp_error *err)
{
	fetch *f = r->f;
	pp_range *wants = NULL;
	size_t count = 0, capacity = 0;
	int status = 0;
	for (size_t i = f->first; status == 0 && i < f->end; i++)
		if (needs_server(&f->plans[i]))
			status = pp_fetch_wants(f, i, &wants, &count, &capacity,
						err);
	pp_request_rules rules = {
		.merge_gap = PP_FETCH_MERGE_GAP,
		.split_min = PP_FETCH_SPLIT_MIN,
		.connections = f->options->connections ?
			f->options->connections : PP_HTTP_DEFAULT_CONNECTIONS,
	};
	if (status == 0)
		status = pp_plan_requests(wants, count, &rules, requests,
					  &r->request_count, err);
	free(wants);
	return status;
}

static int run_pool(run *r, pp_error *err)
{
	fetch *f = r->f;
	unsigned threads = f->options->threads ? f->options->threads :
		pp_online_cores();
	size_t window = (size_t)threads + 1;
	job *jobs = calloc(window, sizeof *jobs);
	if (!jobs)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = pp_pool_run(&run_ops, r, threads, window, jobs,
				 sizeof *jobs, err);
	for (size_t i = 0; i < window; i++) {
		free(jobs[i].buf);
		free(jobs[i].enc);
		free(jobs[i].scratch);
		pp_close(jobs[i].handle);
	}
	free(jobs);
	return status;
}

/* Every block of [first, end) not yet done: the local ones, then the
 * fetched ones as they arrive. */
static int run_round(fetch *f, pp_error *err)
{
	size_t n = f->end - f->first;
	run r = { .f = f };
	size_t *local = calloc(n + 1, sizeof *local);
	r.ready = calloc(n + 1, sizeof *r.ready);
	pp_range *requests = NULL;
	int status = local && r.ready ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = f->first; status == 0 && i < f->end; i++) {
		block_plan *p = &f->plans[i];
		p->queued = false;
		if (p->take == TAKE_DONE)
			continue;
		if (needs_server(p))
			r.awaited++;
		else
			local[r.local_count++] = i;
	}
	r.local = local;
	if (status == 0)
		status = plan_requests(&r, &requests, err);
	r.requests = requests;
	pthread_mutex_init(&r.lock, NULL);
	pthread_mutex_init(&r.state_lock, NULL);
	pthread_cond_init(&r.changed, NULL);
	pthread_t thread;
	bool started = false;
	r.fetched_all = r.request_count == 0;
	if (status == 0 && r.request_count > 0) {
		started = pthread_create(&thread, NULL, fetching, &r) == 0;
		if (!started)
			status = pp_fail(err, PP_ERR_NOMEM, "cannot start a "
					 "thread");
	}
	if (status == 0)
		status = run_pool(&r, err);
	if (started)
		pthread_join(thread, NULL);
	if (status == 0 && r.fetch_status) {
		*err = r.fetch_err;
		status = r.fetch_status;
	}
	pthread_cond_destroy(&r.changed);
	pthread_mutex_destroy(&r.state_lock);
	pthread_mutex_destroy(&r.lock);
	free(requests);
	free(r.ready);
	free(local);
	return status;
}

/* ---- the framing of an archive ---------------------------------------------------- */

/* Copies the bytes that lie in no block (headers, index, footer). */
static int write_framing(fetch *f, pp_error *err)
{
	const pp_archive *a = f->target;
	uint64_t at = 0;
	uint8_t *buf = NULL;
	size_t size = 0;
	int status = 0;
	for (size_t i = 0; status == 0 && i <= a->block_count; i++) {
		uint64_t end = i < a->block_count ? a->blocks[i].foffset :
			a->file_size;
		if (end > at) {
			status = room_for(&buf, &size, end - at, err);
			if (status == 0)
				status = pp_archive_read_or_fail(a, buf,
						(size_t)(end - at), at, err);
			if (status == 0)
				status = write_at(f, buf, end - at, at, err);
		}
		if (i < a->block_count)
			at = PP_MAX(at, a->blocks[i].foffset + a->blocks[i].fsize);
	}
	free(buf);
	return status;
}

int pp_fetch_run(fetch *f, pp_error *err)
{
	int status = f->archive_out ? write_framing(f, err) : 0;
	if (status == 0)
		status = run_round(f, err);
	/* Blocks whose seed failed verification: fetched instead. */
	bool again = false;
	for (size_t i = f->first; status == 0 && i < f->end; i++) {
		block_plan *p = &f->plans[i];
		if (!p->demoted)
			continue;
		p->take = TAKE_FETCH;
		p->demoted = false;
		free(p->pieces);
		p->pieces = NULL;
		p->piece_count = 0;
		p->by_bmap = false;
		p->copy_encoded = false;
		again = true;
	}
	if (status == 0 && again)
		status = run_round(f, err);
	for (size_t i = f->first; status == 0 && i < f->end; i++)
		if (f->plans[i].take != TAKE_DONE)
			status = pp_fail(err, PP_ERR_CHECK, "%s: block %zu "
					 "could not be verified",
					 f->location, i + 1);
	pp_fetch_report_progress(f);
	return status;
}

void pp_fetch_report_progress(fetch *f)
{
	if (!f->options->progress)
		return;
	pp_fetch_progress progress = {
		.done_bytes = atomic_load(&f->done_bytes),
		.total_bytes = f->out_size,
		.seeded_bytes = atomic_load(&f->seeded_bytes),
	};
	pp_remote_stats(f->remote, &progress.requests,
			&progress.fetched_bytes);
	f->options->progress(f->options->progress_opaque, &progress);
}
