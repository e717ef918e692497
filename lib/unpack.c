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

/*
 * A block that is stored data from end to end is read, not decoded: its
 * extents are copied into buf with pread, and its check is computed over
 * them and compared, as decoding would.  Returns 1 if the block is not
 * wholly stored (then it must be decoded).
 */
static int read_stored_block(pp_archive *archive, size_t block, uint8_t *buf,
			     pp_error *err)
{
	const pp_block *b = &archive->blocks[block];
	pp_extent_list list = { 0 };
	bool all;
	int status = pp_archive_stored_extents(archive, block, &list, &all,
					       err);
	if (status == 0 && !all)
		status = 1;
	for (size_t i = 0; status == 0 && i < list.count; i++) {
		const pp_extent *x = &list.items[i];
		if (pp_archive_read(archive, buf + (x->uoffset - b->uoffset),
				    (size_t)x->length, x->foffset))
			status = pp_fail_errno(err, PP_ERR_IO, "%s: read error",
					       archive->path);
	}
	pp_extent_list_free(&list);
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	uint8_t want[PP_CHECK_SIZE_MAX], have[PP_CHECK_SIZE_MAX];
	if (status || !kind ||
	    !pp_check_compute(kind, buf, (size_t)b->usize, want))
		return status;
	if (pp_archive_read(archive, have, kind->size, b->check_offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     archive->path);
	if (memcmp(want, have, kind->size) != 0)
		return pp_fail(err, PP_ERR_CHECK, "%s: block %zu (uncompressed "
			       "offset %llu): its %s check does not match its "
			       "stored data", archive->path, block + 1,
			       (unsigned long long)b->uoffset, kind->name);
	return 0;
}

static int decode_job_work(void *opaque, void *slot, pp_error *err)
{
	decode_run *run = opaque;
	decode_job *job = slot;
	if (job->zero)
		return 0;
	size_t usize = (size_t)run->archive->blocks[job->block].usize;
	if (job->capacity < usize) {
		uint8_t *buf = realloc(job->buf, usize);
		if (!buf)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory for a "
				       "block of %zu bytes", usize);
		job->buf = buf;
		job->capacity = usize;
	}
	int status = read_stored_block(run->archive, job->block, job->buf, err);
	return status == 1 ?
		pp_decode_block(run->archive, job->block, job->buf, err) :
		status;
}

static int drain_job(void *opaque, size_t job_number, void *slot, pp_error *err)
{
	decode_run *run = opaque;
	decode_job *job = slot;
	const pp_block *b = &run->archive->blocks[job->block];
	(void)job_number;
	return run->sink(run->opaque, b->uoffset, job->zero ? NULL : job->buf,
			 (size_t)b->usize, job->zero, err);
}

static const pp_pool_ops decode_pool_ops = {
	.fill = fill_job,
	.work = decode_job_work,
	.drain = drain_job,
};

static int decode_in_pool(decode_run *run, unsigned threads, pp_error *err)
{
	size_t window = (size_t)threads + 1;
	decode_job *jobs = calloc(window, sizeof *jobs);
	if (!jobs)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = pp_pool_run(&decode_pool_ops, run, threads, window, jobs,
				 sizeof *jobs, err);
	for (size_t i = 0; i < window; i++)
		free(jobs[i].buf);
	free(jobs);
	return status;
}

/* Forwards a streamed block's pieces with their image offsets. */
typedef struct stream_sink {
	pp_block_sink_fn sink;
	void *opaque;
	uint64_t uoffset;
} stream_sink;

static int forward(void *opaque, const uint8_t *data, size_t len,
		   pp_error *err)
{
	stream_sink *s = opaque;
	int status = s->sink(s->opaque, s->uoffset, data, len, false, err);
	s->uoffset += len;
	return status;
}

int pp_decode_blocks(pp_archive *archive, size_t first, size_t end,
		     unsigned threads, pp_block_sink_fn sink, void *opaque,
		     pp_error *err)
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
		decode_run run = { .archive = archive, .next = first,
				   .end = big, .sink = sink, .opaque = opaque };
		if (big > first)
			status = decode_in_pool(&run, threads, err);
		if (status || big == end)
			break;
		/* ... and that one, as a stream. */
		const pp_block *b = &archive->blocks[big];
		if (!told)
			pp_notice("%s: block %zu holds %llu bytes and no index "
				  "inside it: cannot seek in it, decoding it as "
				  "a stream", archive->path, big + 1,
				  (unsigned long long)b->usize);
		told = true;
		stream_sink s = { .sink = sink, .opaque = opaque,
				  .uoffset = b->uoffset };
		status = archive->ops->decode(archive, big, UINT64_MAX,
					      forward, &s, err);
		first = big + 1;
	}
	return status;
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
	bool holes;                 /* skip zeros instead of writing them */
	uint64_t base;              /* file offset of image byte `from` */
	uint64_t done;              /* image bytes delivered */
} extract;

static int write_out(extract *x, const uint8_t *data, size_t len,
		     pp_error *err)
{
	int failed = x->holes ?
		pp_pwrite_full(x->fd, data, len, x->base + x->done) :
		pp_write_full(x->fd, data, len);
	if (failed)
		return pp_fail_errno(err, PP_ERR_IO, "%s: write error",
				     x->name);
	x->done += len;
	return 0;
}

static int write_zeros(extract *x, uint64_t len, pp_error *err)
{
	static const uint8_t zeros[65536];
	if (x->holes) {
		x->done += len;
		return 0;
	}
	while (len > 0) {
		size_t piece = (size_t)PP_MIN(len, sizeof zeros);
		int status = write_out(x, zeros, piece, err);
		if (status)
			return status;
		len -= piece;
	}
	return 0;
}

/* Writes data, leaving holes for the all-zero HOLE_GRAIN pieces that are
 * aligned in the output file, as cp --sparse does.  The test is a memcmp
 * of each piece on the writing thread, which costs a small fraction of
 * the decode that made the data (lib/unpack.c's caller, partcat, was timed
 * on a 512 MiB image: see the commit that made it the default). */
static int write_sparse(extract *x, const uint8_t *data, size_t len,
			pp_error *err)
{
	size_t pos = 0;
	while (pos < len) {
		/* Up to the next grain boundary of the file. */
		uint64_t at = x->base + x->done;
		size_t piece = (size_t)PP_MIN((uint64_t)len - pos,
					      HOLE_GRAIN - at % HOLE_GRAIN);
		bool zero = piece == HOLE_GRAIN && pp_all_zero(data + pos, piece);
		size_t run = piece;
		/* Gather a run of the same kind, for one write. */
		while (pos + run < len) {
			size_t next = (size_t)PP_MIN((uint64_t)len - pos - run,
						     HOLE_GRAIN);
			bool next_zero = next == HOLE_GRAIN &&
				pp_all_zero(data + pos + run, next);
			if (next_zero != zero)
				break;
			run += next;
		}
		int status = zero ? write_zeros(x, run, err) :
			write_out(x, data + pos, run, err);
		if (status)
			return status;
		pos += run;
	}
	return 0;
}

static int extract_sink(void *opaque, uint64_t uoffset, const uint8_t *data,
			size_t len, bool is_zero, pp_error *err)
{
	extract *x = opaque;
	uint64_t start = PP_MAX(uoffset, x->from);
	uint64_t end = PP_MIN(uoffset + len, x->to);
	if (start >= end)
		return 0;
	size_t skip = (size_t)(start - uoffset), piece = (size_t)(end - start);
	int status;
	if (is_zero)
		status = write_zeros(x, piece, err);
	else if (x->holes)
		status = write_sparse(x, data + skip, piece, err);
	else
		status = write_out(x, data + skip, piece, err);
	if (status == 0 && x->options->progress)
		x->options->progress(x->options->progress_opaque, x->done,
				     x->to - x->from);
	return status;
}

/*
 * Holes need a regular file written with pwrite at known offsets, not in
 * append mode; the file is cut at the start first, so that no old byte
 * shows through a hole.
 */
static int prepare_holes(extract *x, pp_error *err)
{
	struct stat st;
	int flags = fcntl(x->fd, F_GETFL);
	off_t pos = lseek(x->fd, 0, SEEK_CUR);
	x->holes = x->options->sparse != PP_SPARSE_NEVER &&
		fstat(x->fd, &st) == 0 && S_ISREG(st.st_mode) && flags >= 0 &&
		!(flags & O_APPEND) && pos >= 0;
	if (!x->holes)
		return 0;
	x->base = (uint64_t)pos;
	if ((uint64_t)st.st_size > x->base && ftruncate(x->fd, pos))
		return pp_fail_errno(err, PP_ERR_IO, "%s", x->name);
	return 0;
}

/* The file ends where the image range does, holes included. */
static int finish_holes(extract *x, pp_error *err)
{
	off_t end = (off_t)(x->base + x->done);
	if (ftruncate(x->fd, end) || lseek(x->fd, end, SEEK_SET) < 0)
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
	status = prepare_holes(&x, err);
	size_t first = pp_archive_find_block(archive, x.from);
	size_t end = x.to == x.from ? first :
		pp_archive_find_block(archive, x.to - 1) + 1;
	if (status == 0)
		status = pp_decode_blocks(archive, first, end, options->threads,
					  extract_sink, &x, err);
	if (status == 0 && x.holes)
		status = finish_holes(&x, err);
	return status;
}
