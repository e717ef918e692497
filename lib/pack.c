/*
 * pack.c - the partpack pipeline: plan a block, read it, encode it on a
 * worker, write it in order, then let the container write its index.
 *
 * The image comes from a source (source.c): a raw file, a pipe, or what
 * qemu-nbd serves of a qcow2 or any image qemu reads.  A source that can
 * be read at random is read by the workers, each block by the worker that
 * encodes it (several qemu-nbd connections at once); a pipe is read in
 * order by the calling thread.
 *
 * Disk images are mostly empty.  Holes of a sparse input (SEEK_DATA, or
 * NBD block status) are not read at all, and every all-zero block, hole or real zeros, reuses
 * the encoding of the first zero block of its size and kind: encoding is
 * a pure function of the bytes, so the reuse changes nothing in the
 * output, only the time.  For the same reason a block whose bytes equal
 * those of the same block of an archive packed earlier can be copied from
 * it (pp_pack_options.reuse_path, reuse.c).
 *
 * With a bmap asked for, each block's share of the bmap's ranges is placed
 * when the block is read, hashed on the worker that encodes the block, and
 * stored when the block is written (bmap.c): the digests cost a worker's
 * time, not the pipeline's.
 */
#include "array.h"
#include "bmap.h"
#include "container.h"
#include "error.h"
#include "format.h"
#include "io.h"
#include "plan.h"
#include "pool.h"
#include "reuse.h"
#include "source.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The default format's defaults. */
void pp_pack_options_init(pp_pack_options *options)
{
	const pp_container_ops *container = pp_container_of(pp_format_at(0));
	*options = (pp_pack_options){
		.format = container->format,
		.check = container->default_check,
		.level = container->level_default,
		.block_size = PP_DEFAULT_BLOCK_SIZE,
	};
}

/* How a job's output came to be, for the report. */
enum job_source { JOB_ENCODED, JOB_ZERO_COPY, JOB_REUSED };

/* One block on its way through the pool. */
typedef struct pack_job {
	uint8_t *input;
	uint8_t *output;
	uint64_t uoffset;           /* of the block in the image */
	size_t input_len;
	size_t output_len;
	bool stored;
	bool hole;                  /* not read: all zeros */
	bool unread;                /* the worker reads it */
	enum job_source source;
	pp_block_record record;
	pp_bmap_share bmap;         /* its ranges of the bmap */
} pack_job;

/* Encodings of all-zero blocks, by size and kind. */
#define ZERO_CACHE_SIZE 8
typedef struct zero_encoding {
	size_t usize;
	bool stored;
	uint8_t *output;
	size_t output_len;
	pp_block_record record;
} zero_encoding;

typedef struct pack_state {
	const pp_pack_options *options;
	const pp_container_ops *container;
	pp_plan plan;
	pp_source *source;
	const char *in_name;
	int out_fd;
	const char *out_name;
	size_t output_capacity;     /* of each job's output buffer */
	size_t input_release;       /* whole pages of each input buffer */
	uint64_t read_pos;          /* uncompressed bytes read so far */
	uint64_t written_pos;       /* ... and encoded and written */
	bool input_ended;
	bool seekable;              /* read at random, holes skipped */
	uint64_t image_size;        /* if seekable, else 0 */
	uint64_t next_data;         /* no data in [read_pos, next_data) */
	pthread_mutex_t zero_lock;
	zero_encoding zeros[ZERO_CACHE_SIZE];
	size_t zero_count;
	pp_block_record *records;
	size_t record_count;
	size_t record_capacity;
	bool with_bmap;
	pp_bmap bmap;
	pp_range *data_extents;     /* the input's hole map, for the bmap */
	size_t data_extent_count;
	pp_reuse *reuse;            /* the base to copy from, or NULL */
	pp_pack_report report;
} pack_state;

/* Whether [pos, pos + length) of a sparse input is one hole. */
static bool is_hole(pack_state *state, uint64_t pos, uint64_t length)
{
	if (pos >= state->next_data)
		state->next_data = pp_source_next_data(state->source, pos);
	return pos + length <= state->next_data;
}

/* A block of a seekable source is only planned here (its worker reads
 * it); a stream is read now, in order. */
static ssize_t take_input(pack_state *state, pack_job *job, uint64_t length)
{
	job->unread = state->seekable && !job->hole;
	if (state->seekable)
		return (ssize_t)length;
	return pp_source_read_stream(state->source, job->input,
				     (size_t)length);
}

static int fill_job(void *opaque, size_t job_number, void *slot, pp_error *err)
{
	pack_state *state = opaque;
	pack_job *job = slot;
	(void)job_number;
	if (state->input_ended)
		return 1;
	uint64_t length;
	pp_plan_block(&state->plan, state->read_pos, &length, &job->stored);
	if (state->seekable)
		length = PP_MIN(length, state->image_size - state->read_pos);
	job->hole = state->seekable && length > 0 &&
		is_hole(state, state->read_pos, length);
	ssize_t got = take_input(state, job, length);
	if (got < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     state->in_name);
	if ((uint64_t)got < length || (state->seekable &&
	    state->read_pos + (uint64_t)got == state->image_size))
		state->input_ended = true;
	if (got == 0)
		return 1;
	if (state->with_bmap) {
		state->bmap.stored = job->stored;
		int status = pp_bmap_plan(&state->bmap, &job->bmap,
					  state->read_pos, (uint64_t)got,
					  state->input_ended, err);
		if (status)
			return status;
	}
	job->input_len = (size_t)got;
	job->uoffset = state->read_pos;
	state->read_pos += (uint64_t)got;
	return 0;
}

static const zero_encoding *find_zero(pack_state *state, const pack_job *job)
{
	for (size_t i = 0; i < state->zero_count; i++)
		if (state->zeros[i].usize == job->input_len &&
		    state->zeros[i].stored == job->stored)
			return &state->zeros[i];
	return NULL;
}

/* Copies a remembered encoding; returns false if there is none. */
static bool reuse_zero(pack_state *state, pack_job *job)
{
	pthread_mutex_lock(&state->zero_lock);
	const zero_encoding *z = find_zero(state, job);
	if (z) {
		memcpy(job->output, z->output, z->output_len);
		job->output_len = z->output_len;
		job->record = z->record;
	}
	pthread_mutex_unlock(&state->zero_lock);
	return z != NULL;
}

static void remember_zero(pack_state *state, const pack_job *job)
{
	pthread_mutex_lock(&state->zero_lock);
	if (!find_zero(state, job) && state->zero_count < ZERO_CACHE_SIZE) {
		uint8_t *copy = malloc(job->output_len);
		if (copy) {  /* without memory, just no reuse */
			memcpy(copy, job->output, job->output_len);
			state->zeros[state->zero_count++] = (zero_encoding){
				.usize = job->input_len, .stored = job->stored,
				.output = copy, .output_len = job->output_len,
				.record = job->record,
			};
		}
	}
	pthread_mutex_unlock(&state->zero_lock);
}

static int encode_block(pack_state *state, pack_job *job, pp_error *err)
{
	if (job->unread) {
		int status = pp_source_read(state->source, job->input,
					    job->input_len, job->uoffset, err);
		if (status)
			return status;
	}
	if (state->with_bmap)
		pp_bmap_hash_share(&job->bmap, job->hole ? NULL : job->input);
	bool zero = job->hole || pp_all_zero(job->input, job->input_len);
	job->source = JOB_ZERO_COPY;
	if (zero && reuse_zero(state, job))
		return 0;
	if (job->hole)
		memset(job->input, 0, job->input_len);
	job->source = JOB_REUSED;
	bool reused = false;
	int status = zero || !state->reuse ? 0 :
		pp_reuse_block(state->reuse, job->uoffset, job->input,
			       job->input_len, job->stored, job->output,
			       state->output_capacity, &job->output_len,
			       &job->record, &reused, err);
	if (status || reused)
		return status;
	job->source = JOB_ENCODED;
	job->output_len = state->output_capacity;
	status = state->container->encode_block(state->options, job->input,
					     job->input_len, job->stored,
					     job->output, &job->output_len,
					     &job->record, err);
	if (status == 0 && zero)
		remember_zero(state, job);
	return status;
}

/*
 * Once encoded, a block's input is needed again only for a bmap's ranges
 * (drain_job hashes the bytes a range carries into the next block).
 * Otherwise its pages go back to the kernel now: a slot whose output
 * waits for an older block to be written then holds its output alone,
 * and the pack's peak memory is the workers' blocks and encoders, as
 * xz -T's is, not one more input block.  Faulting the pages in again costs
 * about a millisecond per 16 MiB block, against seconds of encoding.
 */
static int encode_job(void *opaque, void *slot, pp_error *err)
{
	pack_state *state = opaque;
	pack_job *job = slot;
	int status = encode_block(state, job, err);
	if (!state->with_bmap)
		(void)madvise(job->input, state->input_release, MADV_DONTNEED);
	return status;
}

static int remember_record(pack_state *state, const pp_block_record *record,
			   pp_error *err)
{
	pp_block_record *records = pp_grow(state->records, state->record_count,
					   &state->record_capacity,
					   sizeof *records, 256);
	if (!records)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	state->records = records;
	state->records[state->record_count++] = *record;
	return 0;
}

static void count_job(pp_pack_report *report, const pack_job *job)
{
	report->blocks++;
	report->bytes += job->input_len;
	if (job->source == JOB_REUSED) {
		report->reused_blocks++;
		report->reused_bytes += job->input_len;
	} else if (job->source == JOB_ENCODED) {
		report->encoded_blocks++;
		report->encoded_bytes += job->input_len;
	}
}

static int drain_job(void *opaque, size_t job_number, void *slot, pp_error *err)
{
	pack_state *state = opaque;
	pack_job *job = slot;
	(void)job_number;
	if (pp_write_full(state->out_fd, job->output, job->output_len))
		return pp_fail_errno(err, PP_ERR_IO, "%s: write error",
				     state->out_name);
	int status = remember_record(state, &job->record, err);
	if (state->with_bmap)
		pp_bmap_store_share(&state->bmap, &job->bmap,
				    job->hole ? NULL : job->input);
	count_job(&state->report, job);
	/* Progress counts blocks written, not read: reading runs ahead. */
	state->written_pos += job->input_len;
	if (status == 0 && state->options->progress)
		state->options->progress(state->options->progress_opaque,
					 state->written_pos, state->image_size);
	return status;
}

static const pp_pool_ops pack_pool_ops = {
	.fill = fill_job,
	.work = encode_job,
	.drain = drain_job,
};

static int run_pool(pack_state *state, pp_error *err)
{
	const pp_pack_options *options = state->options;
	unsigned threads = options->threads ? options->threads : pp_online_cores();
	/* One slot per worker plus one being read or written: about
	 * threads x 2 x block size of buffers, plus the encoders' own. */
	size_t window = (size_t)threads + 1;
	size_t input_size = (size_t)options->block_size;
	size_t output_size = state->container->block_bound(options, input_size);
	state->output_capacity = output_size;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	state->input_release = input_size / page * page;
	pack_job *jobs = calloc(window, sizeof *jobs);
	int status = jobs ? 0 : pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; status == 0 && i < window; i++) {
		/* Page-aligned, for encode_job's madvise. */
		if (posix_memalign((void **)&jobs[i].input, page, input_size))
			jobs[i].input = NULL;
		jobs[i].output = malloc(output_size);
		if (!jobs[i].input || !jobs[i].output)
			status = pp_fail(err, PP_ERR_NOMEM,
					 "out of memory for %zu blocks of %zu bytes",
					 window, input_size);
	}
	if (status == 0)
		status = pp_pool_run(&pack_pool_ops, state, threads, window,
				     jobs, sizeof *jobs, err);
	for (size_t i = 0; jobs && i < window; i++) {
		free(jobs[i].input);
		free(jobs[i].output);
		pp_bmap_share_free(&jobs[i].bmap);
	}
	free(jobs);
	return status;
}

static int check_options(const pp_pack_options *options,
			 const pp_container_ops *container, pp_error *err)
{
	if (!container)
		return pp_fail(err, PP_ERR_USAGE, "unknown output format");
	if (options->level < container->level_min ||
	    options->level > container->level_max)
		return pp_fail(err, PP_ERR_USAGE,
			       "compression level %d is not in %d..%d",
			       options->level, container->level_min,
			       container->level_max);
	if (!pp_container_check_fixed(container) &&
	    ((unsigned)options->check >= 32 ||
	     !(container->checks & (uint32_t)1 << options->check)))
		return pp_fail(err, PP_ERR_USAGE, "%s archives cannot carry "
			       "a %s check", container->names[0],
			       pp_check_name(options->check));
	if (options->block_size < PP_MIN_BLOCK_SIZE ||
	    options->block_size > PP_MAX_BLOCK_SIZE)
		return pp_fail(err, PP_ERR_USAGE,
			       "block size must be between 4 KiB and 1 GiB");
	return 0;
}

/* The pack of whatever source: pp_pack's and pp_pack_source's. */
static int pack_from(pp_source *source, const char *in_name, int out_fd,
		     const char *out_name, const pp_pack_options *options,
		     pp_error *err)
{
	const pp_container_ops *container = pp_container_of(options->format);
	int status = check_options(options, container, err);
	if (status != 0)
		return status;
	pack_state state = {
		.options = options,
		.container = container,
		.source = source, .in_name = in_name,
		.out_fd = out_fd, .out_name = out_name,
		.seekable = source->seekable,
		.image_size = source->seekable ? source->size : 0,
	};
	if (options->bmap_path) {
		state.with_bmap = true;
		status = pp_bmap_check_path(options->bmap_path, err);
		if (status == 0 && state.seekable)
			status = pp_source_data_extents(source,
							&state.data_extents,
							&state.data_extent_count,
							err);
		if (status)
			return status;
		pp_bmap_init(&state.bmap, state.data_extents,
			     state.data_extent_count, !state.seekable);
	}
	pthread_mutex_init(&state.zero_lock, NULL);
	status = pp_plan_init(&state.plan, options->keep, options->keep_count,
			      options->block_size, err);
	if (status == 0 && options->reuse_path)
		status = pp_reuse_open(options, state.container, &state.plan,
				       &state.reuse, err);
	if (status == 0)
		status = state.container->write_header(options, out_fd, out_name, err);
	if (status == 0)
		status = run_pool(&state, err);
	if (status == 0 && state.reuse)
		status = pp_reuse_finish(state.reuse,
					 &state.report.reuse_trusted, err);
	if (status == 0 && state.read_pos < pp_plan_end(&state.plan))
		status = pp_fail(err, PP_ERR_USAGE,
				 "%s: a kept range ends at byte %llu, past the "
				 "end of the image (%llu bytes)", in_name,
				 (unsigned long long)pp_plan_end(&state.plan),
				 (unsigned long long)state.read_pos);
	if (status == 0)
		status = state.container->write_trailer(options, state.records,
						     state.record_count, out_fd,
						     out_name, err);
	if (status == 0 && state.with_bmap) {
		pp_bmap_finish(&state.bmap, state.read_pos);
		status = pp_bmap_write(&state.bmap, options->bmap_path, err);
	}
	pp_bmap_release(&state.bmap);
	free(state.data_extents);
	pp_reuse_close(state.reuse);
	if (status == 0 && options->report)
		*options->report = state.report;
	for (size_t i = 0; i < state.zero_count; i++)
		free(state.zeros[i].output);
	pthread_mutex_destroy(&state.zero_lock);
	free(state.records);
	pp_plan_free(&state.plan);
	return status;
}

int pp_pack(int in_fd, const char *in_name, int out_fd, const char *out_name,
	    const pp_pack_options *options, pp_error *err)
{
	pp_source source;
	pp_source_of_fd(&source, in_fd, in_name);
	int status = pack_from(&source, in_name, out_fd, out_name, options, err);
	pp_source_release(&source);
	return status;
}

int pp_pack_source(pp_source *source, int out_fd, const char *out_name,
		   const pp_pack_options *options, pp_error *err)
{
	return pack_from(source, source->name, out_fd, out_name, options, err);
}
