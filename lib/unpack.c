/*
 * unpack.c - whole blocks decoded in parallel and delivered in order
 * (pp_decode_blocks), and writing a range of the image to a file with
 * holes where it is zeros (pp_extract).
 *
 * Decoding is the pack pipeline run backwards on the same pool (pool.c):
 * the calling thread picks the next block and asks the map whether it is
 * one of the all-zero blocks the index reveals (those are not decoded at
 * all); workers decode the others, each into its slot; the calling thread
 * hands slots to the sink in block order.  Each decode depends only on the
 * block's bytes, so the output is the same for any number of workers.
 * With `threads` workers there are threads + 1 slots of one block each.
 * A block that is all stored data is read straight into its slot and its
 * check computed over it: the same verdict as decoding, without the
 * decoder's copies (and its dictionary).
 *
 * A block too large to buffer is the exception: an .xz file written by
 * single-threaded xz is one block, and a gzip file from gzip is one
 * member.  Such a block is decoded on the calling thread, its bytes going
 * to the sink as they come: no random access into it, but bounded memory.
 *
 * pp_decode_pieces runs the same pool for a consumer that can take bytes
 * in any order (pp_extract into a regular file, with pwrite): workers
 * hand each decoded piece on as it comes out of the decoder, while it is
 * still in the processor's cache, and the calling thread only counts
 * blocks off in order.  No slot holds a whole block, so more blocks may
 * be in flight than workers, and a worker never waits for an older block
 * to be written before it starts the next.
 */
#include "unpack.h"
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "check.h"
#include "container.h"
#include "error.h"
#include "io.h"
#include "map.h"
#include "pool.h"
#include "read.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- pp_decode_blocks ------------------------------------------------ */

typedef struct decode_job {
	size_t block;
	bool zero;
	uint8_t *buf;
	size_t capacity;
} decode_job;

typedef struct decode_run {
	pp_archive *archive;
	size_t next;                /* the next block to fill */
	size_t end;
	pp_piece_fn piece;          /* NULL: whole blocks to the sink */
	pp_block_sink_fn sink;
	void *opaque;
} decode_run;

static int fill_job(void *opaque, size_t job_number, void *slot, pp_error *err)
{
	decode_run *run = opaque;
	decode_job *job = slot;
	(void)job_number;
	if (run->next == run->end)
		return 1;
	job->block = run->next++;
	return pp_map_block_is_zero(run->archive, job->block, &job->zero, err);
}

/* The job's buffer, grown to len bytes. */
static int job_buffer(decode_job *job, size_t len, pp_error *err)
{
	if (job->capacity >= len)
		return 0;
	uint8_t *buf = realloc(job->buf, len);
	if (!buf)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory for a block of "
			       "%zu bytes", len);
	job->buf = buf;
	job->capacity = len;
	return 0;
}

/*
 * A block that is stored data from end to end is read, not decoded: its
 * extents are read with pread, a piece at a time, and its check is
 * computed over them and compared, as decoding would.  Each piece goes to
 * `deliver` as it is read: into buf whole (pp_decode_blocks), or to the
 * caller's piece function through a small buffer (pp_decode_pieces).
 * Returns 1 if the block is not wholly stored (then it must be decoded).
 */
typedef struct stored_reader {
	pp_archive *archive;
	size_t block;
	uint8_t *buf;               /* the whole block, or a piece's room */
	size_t room;
	bool whole;                 /* buf holds the whole block */
	const decode_run *run;      /* !whole: where pieces go */
} stored_reader;

static int read_stored_piece(stored_reader *r, const pp_check_kind *kind,
			     void *state, uint64_t uoffset, size_t len,
			     uint64_t foffset, pp_error *err)
{
	const pp_block *b = &r->archive->blocks[r->block];
	uint8_t *dest = r->whole ? r->buf + (uoffset - b->uoffset) : r->buf;
	if (pp_archive_read(r->archive, dest, len, foffset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     r->archive->path);
	if (kind)
		kind->update(state, dest, len);
	return r->whole ? 0 :
		r->run->piece(r->run->opaque, uoffset, dest, len, err);
}

static int compare_stored_check(stored_reader *r, const pp_check_kind *kind,
				void *state, pp_error *err)
{
	const pp_block *b = &r->archive->blocks[r->block];
	uint8_t want[PP_CHECK_SIZE_MAX], have[PP_CHECK_SIZE_MAX];
	kind->final(state, want);
	if (pp_archive_read(r->archive, have, kind->size, b->check_offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     r->archive->path);
	if (memcmp(want, have, kind->size) != 0)
		return pp_fail(err, PP_ERR_CHECK, "%s: block %zu (uncompressed "
			       "offset %llu): its %s check does not match its "
			       "stored data", r->archive->path, r->block + 1,
			       (unsigned long long)b->uoffset, kind->name);
	return 0;
}

static int read_stored_block(stored_reader *r, pp_error *err)
{
	pp_extent_list list = { 0 };
	bool all;
	int status = pp_archive_stored_extents(r->archive, r->block, &list,
					       &all, err);
	if (status == 0 && !all)
		status = 1;
	const pp_block *b = &r->archive->blocks[r->block];
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	/* Every kind's state fits here, as in pp_check_compute. */
	_Alignas(max_align_t) uint8_t state[256];
	if (kind && (!kind->init || kind->state_size > sizeof state))
		kind = NULL;  /* "none", or one not computed here */
	if (kind)
		kind->init(state);
	for (size_t i = 0; status == 0 && i < list.count; i++) {
		const pp_extent *x = &list.items[i];
		for (uint64_t at = 0; status == 0 && at < x->length;) {
			size_t len = (size_t)PP_MIN(x->length - at,
						    (uint64_t)r->room);
			status = read_stored_piece(r, kind, state,
						   x->uoffset + at, len,
						   x->foffset + at, err);
			at += len;
		}
	}
	pp_extent_list_free(&list);
	if (status == 0 && kind)
		status = compare_stored_check(r, kind, state, err);
	return status;
}

static int decode_job_work(void *opaque, void *slot, pp_error *err)
{
	decode_run *run = opaque;
	decode_job *job = slot;
	if (job->zero)
		return 0;
	size_t usize = (size_t)run->archive->blocks[job->block].usize;
	int status = job_buffer(job, usize, err);
	stored_reader r = { .archive = run->archive, .block = job->block,
			    .buf = job->buf, .room = usize, .whole = true };
	if (status == 0)
		status = read_stored_block(&r, err);
	return status == 1 ?
		pp_decode_block(run->archive, job->block, job->buf, err) :
		status;
}

/* Forwards a block's pieces as they are decoded, with their image
 * offsets: to the piece function, or else to the sink. */
typedef struct stream_sink {
	const decode_run *run;
	uint64_t uoffset;
} stream_sink;

static int forward(void *opaque, const uint8_t *data, size_t len,
		   pp_error *err)
{
	stream_sink *s = opaque;
	const decode_run *run = s->run;
	int status = run->piece ?
		run->piece(run->opaque, s->uoffset, data, len, err) :
		run->sink(run->opaque, s->uoffset, data, len, false, err);
	s->uoffset += len;
	return status;
}

/*
 * pp_decode_pieces' work: the block's bytes to the piece function as they
 * come, on this worker.  Decoding streams (even where the container has
 * decode_whole), so that each piece is handed on while it is still in
 * the processor's cache, and no buffer of a block's size is needed.
 */
static int piece_job_work(void *opaque, void *slot, pp_error *err)
{
	decode_run *run = opaque;
	decode_job *job = slot;
	pp_archive *archive = run->archive;
	const pp_block *b = &archive->blocks[job->block];
	if (job->zero)
		return run->piece(run->opaque, b->uoffset, NULL,
				  (size_t)b->usize, err);
	int status = job_buffer(job, PP_DECODE_PIECE, err);
	stored_reader r = { .archive = archive, .block = job->block,
			    .buf = job->buf, .room = PP_DECODE_PIECE,
			    .run = run };
	if (status == 0)
		status = read_stored_block(&r, err);
	if (status != 1)
		return status;
	stream_sink s = { .run = run, .uoffset = b->uoffset };
	return archive->ops->decode(archive, job->block, UINT64_MAX, forward,
				    &s, err);
}

static int drain_job(void *opaque, size_t job_number, void *slot, pp_error *err)
{
	decode_run *run = opaque;
	decode_job *job = slot;
	const pp_block *b = &run->archive->blocks[job->block];
	(void)job_number;
	bool data = !job->zero && !run->piece;
	return run->sink(run->opaque, b->uoffset, data ? job->buf : NULL,
			 (size_t)b->usize, job->zero, err);
}

static const pp_pool_ops decode_pool_ops = {
	.fill = fill_job,
	.work = decode_job_work,
	.drain = drain_job,
};

static const pp_pool_ops piece_pool_ops = {
	.fill = fill_job,
	.work = piece_job_work,
	.drain = drain_job,
};

/*
 * Whole blocks take a buffer each: one per worker and one being drained.
 * Pieces take none of a block's size, and their drain only reports, so
 * more blocks may be in flight: a worker that finished its block goes on
 * with the next while another still decodes an older one (a slow block,
 * or a worker the scheduler put aside on a busy machine).
 */
static int decode_in_pool(decode_run *run, unsigned threads, pp_error *err)
{
	size_t window = (size_t)threads * (run->piece ? 4 : 1) + 1;
	decode_job *jobs = calloc(window, sizeof *jobs);
	if (!jobs)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = pp_pool_run(run->piece ? &piece_pool_ops :
				 &decode_pool_ops, run, threads, window, jobs,
				 sizeof *jobs, err);
	for (size_t i = 0; i < window; i++)
		free(jobs[i].buf);
	free(jobs);
	return status;
}

/* A block too large to buffer, decoded on the calling thread. */
static int decode_streamed(const decode_run *run, size_t block, bool *told,
			   pp_error *err)
{
	pp_archive *archive = run->archive;
	const pp_block *b = &archive->blocks[block];
	if (!*told)
		pp_notice("%s: block %zu holds %llu bytes and no index inside "
			  "it: cannot seek in it, decoding it as a stream",
			  archive->path, block + 1, (unsigned long long)b->usize);
	*told = true;
	stream_sink s = { .run = run, .uoffset = b->uoffset };
	int status = archive->ops->decode(archive, block, UINT64_MAX, forward,
					  &s, err);
	if (status == 0 && run->piece)
		status = run->sink(run->opaque, b->uoffset, NULL,
				   (size_t)b->usize, false, err);
	return status;
}

static int decode_range(pp_archive *archive, size_t first, size_t end,
			unsigned threads, decode_run *run, pp_error *err)
{
	if (threads == 0)
		threads = pp_online_cores();
	bool told = false;
	int status = 0;
	while (status == 0 && first < end) {
		/* The blocks up to the next one too large to buffer... */
		size_t big = first;
		while (big < end &&
		       archive->blocks[big].usize <= PP_DECODE_BUFFER_MAX)
			big++;
		run->next = first;
		run->end = big;
		if (big > first)
			status = decode_in_pool(run, threads, err);
		if (status || big == end)
			break;
		/* ... and that one, as a stream. */
		status = decode_streamed(run, big, &told, err);
		first = big + 1;
	}
	return status;
}

int pp_decode_blocks(pp_archive *archive, size_t first, size_t end,
		     unsigned threads, pp_block_sink_fn sink, void *opaque,
		     pp_error *err)
{
	decode_run run = { .archive = archive, .sink = sink,
			   .opaque = opaque };
	return decode_range(archive, first, end, threads, &run, err);
}

int pp_decode_pieces(pp_archive *archive, size_t first, size_t end,
		     unsigned threads, pp_piece_fn piece,
		     pp_block_sink_fn done, void *opaque, pp_error *err)
{
	decode_run run = { .archive = archive, .piece = piece, .sink = done,
			   .opaque = opaque };
	return decode_range(archive, first, end, threads, &run, err);
}

/* ---- pp_extract ---------------------------------------------------------- */

#define HOLE_GRAIN 4096         /* the smallest hole worth making */

void pp_extract_options_init(pp_extract_options *options)
{
	*options = (pp_extract_options){ .sparse = PP_SPARSE_AUTO };
}

typedef struct extract {
	pp_archive *archive;
	const pp_extract_options *options;
	int fd;
	const char *name;
	uint64_t from, to;          /* the image range wanted */
	bool direct;                /* a regular file, written with pwrite */
	bool holes;                 /* ... skipping zeros, decoded ones too */
	uint64_t base;              /* file offset of image byte `from` */
	uint64_t done;              /* image bytes delivered, in order */
	struct writer *writer;      /* direct: takes the workers' pieces */
} extract;

/* Writes at file offset `at` (direct), or else at the file position
 * (a pipe, a device, a file opened O_APPEND: always in order). */
static int write_at(const extract *x, const uint8_t *data, size_t len,
		    uint64_t at, pp_error *err)
{
	int failed = x->direct ? pp_pwrite_full(x->fd, data, len, at) :
		pp_write_full(x->fd, data, len);
	if (failed)
		return pp_fail_errno(err, PP_ERR_IO, "%s: write error",
				     x->name);
	return 0;
}

static int write_zeros_at(const extract *x, uint64_t len, uint64_t at,
			  pp_error *err)
{
	static const uint8_t zeros[65536];
	if (x->holes)
		return 0;
	while (len > 0) {
		size_t piece = (size_t)PP_MIN(len, sizeof zeros);
		int status = write_at(x, zeros, piece, at, err);
		if (status)
			return status;
		len -= piece;
		at += piece;
	}
	return 0;
}

/* Writes the data at `at` but its all-zero HOLE_GRAIN pieces aligned in
 * the output file, which stay holes.  Only with holes: the file was cut
 * first, so it reads zeros wherever nothing is written, and a zero piece
 * shorter than a grain (a decoder's piece need not end on a grain) is
 * skipped too; the grain it shares with a neighbour's data is then
 * allocated by that write alone, and the filesystem fills the rest with
 * zeros. */
static int write_sparse_at(const extract *x, const uint8_t *data, size_t len,
			   uint64_t at, pp_error *err)
{
	size_t pos = 0;
	while (pos < len) {
		/* Up to the next grain boundary of the file. */
		size_t piece = (size_t)PP_MIN((uint64_t)len - pos,
					      HOLE_GRAIN - at % HOLE_GRAIN);
		bool zero = pp_all_zero(data + pos, piece);
		size_t run = piece;
		/* Gather a run of the same kind, for one write. */
		while (pos + run < len) {
			size_t next = (size_t)PP_MIN((uint64_t)len - pos - run,
						     HOLE_GRAIN);
			bool next_zero = pp_all_zero(data + pos + run, next);
			if (next_zero != zero)
				break;
			run += next;
		}
		int status = zero ? 0 : write_at(x, data + pos, run, at, err);
		if (status)
			return status;
		pos += run;
		at += run;
	}
	return 0;
}

/* The part of [uoffset, uoffset + len) in the range wanted: false if
 * none, else where it starts in the piece and how long it is. */
static bool clip_piece(const extract *x, uint64_t uoffset, size_t len,
		       size_t *skip, size_t *kept)
{
	uint64_t start = PP_MAX(uoffset, x->from);
	uint64_t end = PP_MIN(uoffset + len, x->to);
	if (start >= end)
		return false;
	*skip = (size_t)(start - uoffset);
	*kept = (size_t)(end - start);
	return true;
}

/* Writes a piece of the image (data NULL: zeros) where it belongs. */
static int write_piece(const extract *x, uint64_t uoffset, const uint8_t *data,
		       size_t len, pp_error *err)
{
	size_t skip, kept;
	if (!clip_piece(x, uoffset, len, &skip, &kept))
		return 0;
	uint64_t at = x->base + (uoffset + skip - x->from);
	if (!data)
		return write_zeros_at(x, kept, at, err);
	if (x->holes)  /* zeros found in decoded data too, as cp --sparse=auto */
		return write_sparse_at(x, data + skip, kept, at, err);
	return write_at(x, data + skip, kept, at, err);
}

/* ---- the writer: pieces decoded by the workers, into the file ---------- */

/*
 * Workers do not write.  A write may wait: for the filesystem's journal,
 * for memory, for the inode's lock that another writer holds, and on a
 * busy machine for a writer the scheduler put aside while it held that
 * lock.  A worker that waits decodes nothing.  So a worker copies each
 * piece, while it is still in the cache, into a buffer of a small pool
 * and goes on; one writer thread empties the pool into the file, at each
 * piece's offset, in whatever order pieces come.  Up to WRITE_AHEAD bytes
 * per worker may wait to be written; a worker waits only when they do.
 * Free buffers are reused last in, first out: the one just written is
 * the one still in the cache, and a pool that is never full touches (and
 * so costs the memory of) only as many buffers as it needs.
 */
#define WRITE_AHEAD ((size_t)8 << 20)

typedef struct piece {
	struct piece *next;
	uint64_t uoffset;
	size_t len;
	uint8_t *data;              /* NULL: len zeros */
	uint8_t *room;              /* PP_DECODE_PIECE bytes of its own */
} piece;

typedef struct writer {
	extract *x;
	pthread_mutex_t lock;
	pthread_cond_t has_work;    /* a piece was queued, or closing */
	pthread_cond_t has_room;    /* a piece was freed, or failed */
	piece *queue, *queue_tail;  /* to write, oldest first */
	piece *free;                /* to fill, last freed first */
	bool closing;
	int status;                 /* the first write's failure */
	pp_error error;
	piece *pieces;
	uint8_t *memory;
	pthread_t thread;
	bool started;
} writer;

static piece *next_to_write(writer *w)
{
	pthread_mutex_lock(&w->lock);
	while (!w->queue && !w->closing)
		pthread_cond_wait(&w->has_work, &w->lock);
	piece *p = w->queue;
	if (p && !(w->queue = p->next))
		w->queue_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	return p;
}

/* After a failure, pieces are taken and dropped, so that no worker waits
 * for room forever; the workers see the failure and stop. */
static void *write_pieces(void *opaque)
{
	writer *w = opaque;
	piece *p;
	while ((p = next_to_write(w))) {
		pp_error err;
		int status = w->status ? 0 :
			write_piece(w->x, p->uoffset, p->data, p->len, &err);
		pthread_mutex_lock(&w->lock);
		if (status && !w->status) {
			w->status = status;
			w->error = err;
		}
		p->next = w->free;
		w->free = p;
		pthread_cond_broadcast(&w->has_room);
		pthread_mutex_unlock(&w->lock);
	}
	return NULL;
}

/* A free piece, or NULL once the writer failed (*err then says why). */
static piece *take_room(writer *w, int *status, pp_error *err)
{
	pthread_mutex_lock(&w->lock);
	while (!w->free && !w->status)
		pthread_cond_wait(&w->has_room, &w->lock);
	piece *p = w->status ? NULL : w->free;
	if (p)
		w->free = p->next;
	*status = w->status;
	if (*status && err)
		*err = w->error;
	pthread_mutex_unlock(&w->lock);
	return p;
}

static void queue_piece(writer *w, piece *p)
{
	pthread_mutex_lock(&w->lock);
	p->next = NULL;
	if (w->queue_tail)
		w->queue_tail->next = p;
	else
		w->queue = p;
	w->queue_tail = p;
	pthread_cond_signal(&w->has_work);
	pthread_mutex_unlock(&w->lock);
}

/* pp_decode_pieces' piece function, on the workers: the part of the
 * piece in the range wanted, copied for the writer. */
static int extract_piece(void *opaque, uint64_t uoffset, const uint8_t *data,
			 size_t len, pp_error *err)
{
	extract *x = opaque;
	writer *w = x->writer;
	size_t skip, kept;
	if (!clip_piece(x, uoffset, len, &skip, &kept) ||
	    (!data && x->holes))
		return 0;
	for (size_t at = 0; at < kept;) {
		int status;
		piece *p = take_room(w, &status, err);
		if (!p)
			return status;
		/* Zeros take no room, however many. */
		size_t n = data ? PP_MIN(kept - at, PP_DECODE_PIECE) : kept;
		*p = (piece){ .uoffset = uoffset + skip + at, .len = n,
			      .room = p->room, .data = data ? p->room : NULL };
		if (data)
			memcpy(p->room, data + skip + at, n);
		queue_piece(w, p);
		at += n;
	}
	return 0;
}

/* Waits for the queued pieces to be written; the writer's failure, if
 * status says none. */
static int writer_finish(writer *w, int status, pp_error *err)
{
	pthread_mutex_lock(&w->lock);
	w->closing = true;
	pthread_cond_signal(&w->has_work);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thread, NULL);
	if (status == 0 && w->status) {
		status = w->status;
		if (err)
			*err = w->error;
	}
	pthread_cond_destroy(&w->has_room);
	pthread_cond_destroy(&w->has_work);
	pthread_mutex_destroy(&w->lock);
	free(w->pieces);
	free(w->memory);
	return status;
}

static int writer_start(writer *w, extract *x, unsigned threads,
			pp_error *err)
{
	size_t count = (size_t)threads * (WRITE_AHEAD / PP_DECODE_PIECE);
	*w = (writer){ .x = x };
	w->pieces = calloc(count, sizeof *w->pieces);
	w->memory = malloc(count * PP_DECODE_PIECE);
	if (!w->pieces || !w->memory) {
		free(w->pieces);
		free(w->memory);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	for (size_t i = count; i-- > 0;) {
		w->pieces[i] = (piece){ .next = w->free,
					.room = w->memory + i * PP_DECODE_PIECE };
		w->free = &w->pieces[i];
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->has_work, NULL);
	pthread_cond_init(&w->has_room, NULL);
	w->started = pthread_create(&w->thread, NULL, write_pieces, w) == 0;
	if (!w->started)
		return writer_finish(w, pp_fail(err, PP_ERR_NOMEM, "cannot "
						"start the writer thread"),
				     err);
	x->writer = w;
	return 0;
}


/* Each block in order, on the calling thread: written here unless the
 * workers wrote it, then counted for progress. */
static int extract_block(void *opaque, uint64_t uoffset, const uint8_t *data,
			 size_t len, bool is_zero, pp_error *err)
{
	extract *x = opaque;
	size_t skip, kept;
	if (!clip_piece(x, uoffset, len, &skip, &kept))
		return 0;
	int status = x->direct ? 0 :
		write_piece(x, uoffset, is_zero ? NULL : data, len, err);
	if (status)
		return status;
	x->done += kept;
	if (x->options->progress)
		x->options->progress(x->options->progress_opaque, x->done,
				     x->to - x->from);
	return 0;
}

/*
 * A regular file (not opened O_APPEND) is written with pwrite at known
 * offsets: by the workers, in any order, and with holes unless told
 * otherwise.  For holes the file is cut at the start first, so that no
 * old byte shows through one.
 */
static int prepare_output(extract *x, pp_error *err)
{
	struct stat st;
	int flags = fcntl(x->fd, F_GETFL);
	off_t pos = lseek(x->fd, 0, SEEK_CUR);
	x->direct = fstat(x->fd, &st) == 0 && S_ISREG(st.st_mode) &&
		flags >= 0 && !(flags & O_APPEND) && pos >= 0;
	if (!x->direct)
		return 0;
	x->base = (uint64_t)pos;
	x->holes = x->options->sparse != PP_SPARSE_NEVER;
	if (x->holes && (uint64_t)st.st_size > x->base && ftruncate(x->fd, pos))
		return pp_fail_errno(err, PP_ERR_IO, "%s", x->name);
	return 0;
}

/* The file position ends where the image range does; with holes, the
 * file too, as it would after writing every byte. */
static int finish_output(extract *x, pp_error *err)
{
	off_t end = (off_t)(x->base + x->done);
	if ((x->holes && ftruncate(x->fd, end)) ||
	    lseek(x->fd, end, SEEK_SET) < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", x->name);
	return 0;
}

int pp_extract(pp_archive *archive, uint64_t offset, uint64_t length,
	       int out_fd, const char *out_name,
	       const pp_extract_options *options, pp_error *err)
{
	pp_extract_options defaults;
	if (!options) {
		pp_extract_options_init(&defaults);
		options = &defaults;
	}
	uint64_t to;
	int status = pp_archive_clip(archive, offset, length, &to, err);
	if (status)
		return status;
	extract x = {
		.archive = archive, .options = options, .fd = out_fd,
		.name = out_name, .from = offset, .to = to,
	};
	/* Decoded blocks kept for pp_pread (the partition table, say) would
	 * only add to the memory the workers' buffers take. */
	pp_read_release(archive);
	status = prepare_output(&x, err);
	size_t first = pp_archive_find_block(archive, x.from);
	size_t end = x.to == x.from ? first :
		pp_archive_find_block(archive, x.to - 1) + 1;
	if (status || !x.direct)
		return status ? status :
			pp_decode_blocks(archive, first, end, options->threads,
					 extract_block, &x, err);
	unsigned threads = options->threads ? options->threads :
		pp_online_cores();
	writer w;
	status = writer_start(&w, &x, threads, err);
	if (status)
		return status;
	status = pp_decode_pieces(archive, first, end, threads, extract_piece,
				  extract_block, &x, err);
	status = writer_finish(&w, status, err);
	return status ? status : finish_output(&x, err);
}
