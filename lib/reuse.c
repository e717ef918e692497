/*
 * reuse.c - copying the encoded bytes of unchanged blocks from an archive
 * packed earlier (partpack --reuse BASE).
 *
 * A block's encoding is a pure function of its bytes and the options, and
 * block edges depend only on the block size and the kept ranges.  So when a
 * block of the new image has the range and the bytes of a block of an
 * archive packed earlier in the same way, encoding it would give exactly
 * the base's bytes for that block, and they can be copied instead.  Three
 * things must hold for that, each established its own way:
 *
 *   - The same format, layout and framing.  Checked once, at open, block
 *     by block, from what the base shows without decoding: its block table
 *     against the plan, and each block's framing (headers, filters,
 *     dictionary, check kind), which the container compares with what its
 *     encoder writes (reuse_record).
 *   - The same encoder at the same level.  The framing does not always show
 *     them (gzip keeps no trace of the level; another liblzma or libdeflate
 *     may encode the same bytes differently), so one block of the base, the
 *     probe, is decoded and encoded again and must come out byte for byte
 *     the same.  If it does not, nothing is reused.  The probe runs on a
 *     thread of its own while the workers read, decode and compare; a
 *     block is copied only once the probe has passed.
 *   - The same bytes, block by block, checked by the workers.  First the
 *     check of the new bytes against the check the base stores for its
 *     block: a changed block is turned away without decoding anything.
 *     Then the base block is decoded and compared byte for byte.  The check
 *     alone is no proof, not even SHA-256's: a check says what the base's
 *     data should decode to, not what its encoded bytes do decode to (a
 *     flipped byte in compressed data leaves the check as it was), and
 *     CRCs collide.  Decoding proves both, at a small fraction of the cost
 *     of encoding.
 *
 * Stored blocks are never copied: encoding one costs no more than reading
 * it, and a damaged stored block of the base then cannot leak into the
 * output.  All-zero blocks never get here: pack.c encodes one of each size
 * and kind and copies that.
 */
#include "reuse.h"
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "check.h"
#include "container.h"
#include "crc.h"
#include "error.h"
#include "plan.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* How many candidates the probe decodes looking for one that is not all
 * zeros (which prove little about an encoder) before settling for one. */
#define PROBE_TRIES 4

/* What the base's block i offers. */
typedef struct base_block {
	bool candidate;             /* compressed, on the layout, framed as ours */
	bool if_incompressible;     /* ... if its bytes do not compress */
	pp_block_record record;     /* what encode_block would say of it */
} base_block;

struct pp_reuse {
	const pp_pack_options *options;
	pp_archive *base;
	base_block *blocks;         /* one per block of the base */
	const pp_container_ops *container;
	struct probe_order *order;  /* the probe's candidates, best first */
	size_t order_count;
	pthread_t prober;           /* runs the probe, if started */
	bool prober_started;
	pthread_mutex_t lock;       /* for what follows */
	pthread_cond_t verdict_known;
	enum { VERDICT_PENDING, VERDICT_TRUSTED, VERDICT_REFUSED } verdict;
	int probe_status;           /* a failure of the probe (strict refusal) */
	pp_error probe_error;
	size_t corrupt_count;       /* blocks that failed to decode */
	size_t first_corrupt;
	char first_reason[PP_ERROR_MAX];
};

/* ---- saying why not ---------------------------------------------------- */

static bool strict(const pp_reuse *reuse)
{
	return reuse->options->reuse_flags & PP_REUSE_STRICT;
}

/*
 * Something about the base means that some or all of its blocks will be
 * encoded, not copied: a notice, or with PP_REUSE_STRICT an error.
 */
static int refuse(const pp_reuse *reuse, pp_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(const pp_reuse *reuse, pp_error *err, const char *fmt, ...)
{
	char message[PP_ERROR_MAX];
	va_list args;
	va_start(args, fmt);
	vsnprintf(message, sizeof message, fmt, args);
	va_end(args);
	if (strict(reuse))
		return pp_fail(err, PP_ERR_REUSE, "%s", message);
	pp_notice("%s", message);
	return 0;
}

/* Damage is a reason to encode that block, not to stop the pack. */
static bool is_damage(int status)
{
	return status == PP_ERR_FORMAT || status == PP_ERR_CHECK;
}

/* Remembers a block that failed to decode; the notice comes at close. */
static int note_corrupt(pp_reuse *reuse, size_t block, const pp_error *why,
			pp_error *err)
{
	pthread_mutex_lock(&reuse->lock);
	reuse->blocks[block].candidate = false;
	if (reuse->corrupt_count++ == 0 || block < reuse->first_corrupt) {
		reuse->first_corrupt = block;
		snprintf(reuse->first_reason, sizeof reuse->first_reason, "%s",
			 why->message);
	}
	pthread_mutex_unlock(&reuse->lock);
	if (strict(reuse))
		return pp_fail(err, PP_ERR_REUSE, "%s", why->message);
	return 0;
}

/* ---- decoded bytes ----------------------------------------------------- */

/* Compares decoded bytes with the new block's, stopping at a difference. */
typedef struct compare_sink {
	const uint8_t *expected;
	size_t len;
	size_t seen;
	bool differs;
} compare_sink;

static int compare_bytes(void *opaque, const uint8_t *data, size_t len,
			 pp_error *err)
{
	compare_sink *c = opaque;
	if (len > c->len - c->seen ||
	    memcmp(c->expected + c->seen, data, len) != 0) {
		c->differs = true;
		/* Any status stops the decoder; differs says it was this. */
		return pp_fail(err, PP_ERR_CHECK, "the bytes differ");
	}
	c->seen += len;
	return 0;
}

/* Reads a block's encoded bytes, as they would be written. */
static int read_encoded(const pp_reuse *reuse, size_t block, uint8_t *out,
			pp_error *err)
{
	const pp_block *b = &reuse->base->blocks[block];
	if (pp_archive_read(reuse->base, out, (size_t)b->fsize, b->foffset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     reuse->base->path);
	return 0;
}

/* ---- bytes that do not compress ---------------------------------------- */

#define SCREEN_WINDOW (64u << 10)
#define SCREEN_PAGE 4096u
/* Chi-square of a window's byte counts against the uniform distribution:
 * about 255 for random bytes, a few hundred for compressed files; this
 * much leaves room for an order-0 gain of about 0.3 %. */
#define SCREEN_CHI2_MAX 2048u

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * Whether bytes look as if they cannot be compressed, for a block whose
 * framing is PP_REUSE_IF_INCOMPRESSIBLE: such a block is written stored by
 * the encoder when its bytes do not compress, and by a pack that kept its
 * range in any case.  Only encoding can prove which; this screen stops
 * what kept ranges usually hold and encoders do compress (filesystem
 * metadata, zeros, text, code: skewed byte counts in some 64 KiB; the
 * same 4 KiB page twice) and lets through what they give up on
 * (compressed files).  With a base packed with the same kept ranges, as
 * the options require, every such block is one the encoder gave up on,
 * and the screen only decides how much time is saved.
 */
static bool looks_incompressible(const uint8_t *data, size_t len)
{
	if (len < SCREEN_WINDOW)
		return false;  /* cheap to encode anyway */
	for (size_t at = 0; at < len; at += SCREEN_WINDOW) {
		/* The last window overlaps the one before it. */
		const uint8_t *w = data + PP_MIN(at, len - SCREEN_WINDOW);
		uint32_t counts[256] = { 0 };
		for (size_t i = 0; i < SCREEN_WINDOW; i++)
			counts[w[i]]++;
		uint64_t squares = 0;
		for (size_t v = 0; v < 256; v++)
			squares += (uint64_t)counts[v] * counts[v];
		if (squares * 256 / SCREEN_WINDOW - SCREEN_WINDOW >
		    SCREEN_CHI2_MAX)
			return false;
	}
	size_t pages = len / SCREEN_PAGE;
	uint64_t *sums = malloc(pages * sizeof *sums);
	if (!sums)
		return false;
	for (size_t p = 0; p < pages; p++)
		sums[p] = pp_crc64(0, data + p * SCREEN_PAGE, SCREEN_PAGE);
	qsort(sums, pages, sizeof *sums, compare_u64);
	bool repeated = false;
	for (size_t p = 1; p < pages && !repeated; p++)
		repeated = sums[p] == sums[p - 1];
	free(sums);
	return !repeated;
}

/* ---- the layout -------------------------------------------------------- */

/*
 * Whether base block i lies where this pack puts a block, with the same
 * kind, check and framing, in no more bytes than the encoder can write.
 * Stored blocks are never copied, but one that is not stored in the base
 * still says the base was packed differently.
 */
static int classify(pp_reuse *reuse, const pp_container_ops *container,
		    const pp_plan *plan, size_t i, bool *fits, pp_error *err)
{
	pp_archive *base = reuse->base;
	const pp_block *b = &base->blocks[i];
	uint64_t length;
	bool stored, matches = false;
	enum pp_reuse_fit fit = PP_REUSE_NO;
	pp_plan_block(plan, b->uoffset, &length, &stored);
	/* The last block ends where the base's image ended. */
	bool last = i + 1 == base->block_count;
	enum pp_check check = pp_container_check_fixed(container) ?
		container->default_check : reuse->options->check;
	*fits = (b->usize == length || (last && b->usize < length)) &&
		b->fsize <= container->block_bound(reuse->options,
						   (size_t)b->usize) &&
		b->check == check;
	if (!*fits)
		return 0;
	pp_error why;
	int status = stored ?
		pp_archive_wholly_stored(base, i, &matches, &why) :
		base->ops->reuse_record(base, i, reuse->options,
					&reuse->blocks[i].record, &fit, &why);
	if (!stored)
		matches = fit != PP_REUSE_NO;
	reuse->blocks[i].candidate = status == 0 && matches && !stored;
	reuse->blocks[i].if_incompressible = fit == PP_REUSE_IF_INCOMPRESSIBLE;
	*fits = status == 0 && matches;
	if (is_damage(status)) {
		*fits = true;  /* said by note_corrupt instead */
		return note_corrupt(reuse, i, &why, err);
	}
	if (status && err)
		*err = why;
	return status;
}

static int check_layout(pp_reuse *reuse, const pp_container_ops *container,
			const pp_plan *plan, pp_error *err)
{
	pp_archive *base = reuse->base;
	size_t misfits = 0, first_misfit = 0;
	for (size_t i = 0; i < base->block_count; i++) {
		bool fits;
		int status = classify(reuse, container, plan, i, &fits, err);
		if (status)
			return status;
		if (!fits && misfits++ == 0)
			first_misfit = i;
	}
	if (misfits == 0)
		return 0;
	const pp_block *b = &base->blocks[first_misfit];
	return refuse(reuse, err, "%s: %zu of its %zu blocks (the first at "
		      "byte %llu of the image) were packed with another block "
		      "size, other kept ranges, level or check: they are "
		      "encoded, not reused", base->path, misfits,
		      base->block_count, (unsigned long long)b->uoffset);
}

/* ---- the probe --------------------------------------------------------- */

typedef struct probe_order {
	bool ambiguous;             /* if_incompressible */
	bool tiny;                  /* compressed more than 64:1 */
	uint64_t usize;
	uint64_t fsize;
	size_t block;
} probe_order;

/*
 * The probe costs one block's encoding, and the first blocks to be copied
 * wait for it, so it should be cheap and still prove something.  Blocks
 * whose framing is certain first; then the shortest; then, of blocks of
 * one size, those that compress least well but not absurdly well (a block
 * of zeros, or nearly, proves little about an encoder), fewest encoded
 * bytes first (a block that compresses well also encodes fast); then the
 * first.
 */
static int compare_probes(const void *a, const void *b)
{
	const probe_order *x = a, *y = b;
	if (x->ambiguous != y->ambiguous)
		return x->ambiguous ? 1 : -1;
	if (x->usize != y->usize)
		return x->usize < y->usize ? -1 : 1;
	if (x->tiny != y->tiny)
		return x->tiny ? 1 : -1;
	if (x->fsize != y->fsize)
		return x->fsize < y->fsize ? -1 : 1;
	return x->block < y->block ? -1 : x->block > y->block;
}

/* Decodes block i into data (usize bytes); damage is noted, not failed. */
static int decode_probe(pp_reuse *reuse, size_t i, uint8_t *data,
			bool *decoded, pp_error *err)
{
	pp_error why;
	int status = pp_decode_block(reuse->base, i, data, &why);
	*decoded = status == 0;
	if (is_damage(status))
		return note_corrupt(reuse, i, &why, err);
	if (status && err)
		*err = why;
	return status;
}

/* Encodes block i's bytes again; *same says whether they match. */
static int encode_probe(pp_reuse *reuse, const pp_container_ops *container,
			size_t i, const uint8_t *data, bool *same,
			pp_error *err)
{
	const pp_block *b = &reuse->base->blocks[i];
	size_t room = container->block_bound(reuse->options, (size_t)b->usize);
	uint8_t *encoded = malloc(room), *found = malloc((size_t)b->fsize);
	int status = encoded && found ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	size_t len = room;
	pp_block_record record;
	if (status == 0)
		status = container->encode_block(reuse->options, data,
					      (size_t)b->usize, false, encoded,
					      &len, &record, err);
	if (status == 0)
		status = read_encoded(reuse, i, found, err);
	*same = status == 0 && len == b->fsize &&
		memcmp(encoded, found, len) == 0 &&
		record.index_size == reuse->blocks[i].record.index_size;
	free(encoded);
	free(found);
	return status;
}

/*
 * Encodes one candidate block again and compares.  The choice depends on
 * the base alone, never on the new image or the thread count, so the same
 * base and options always probe the same block.  *trusted is false when
 * the probe failed or there is nothing to probe (then nothing can be
 * copied either).
 */
/* The candidates in the order the probe tries them; none: no reuse. */
static int order_probes(pp_reuse *reuse, pp_error *err)
{
	pp_archive *base = reuse->base;
	probe_order *order = malloc((base->block_count + 1) * sizeof *order);
	if (!order)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	size_t count = 0;
	for (size_t i = 0; i < base->block_count; i++)
		if (reuse->blocks[i].candidate)
			order[count++] = (probe_order){
				.ambiguous = reuse->blocks[i].if_incompressible,
				.tiny = base->blocks[i].fsize * 64 <
					base->blocks[i].usize,
				.usize = base->blocks[i].usize,
				.fsize = base->blocks[i].fsize,
				.block = i,
			};
	qsort(order, count, sizeof *order, compare_probes);
	reuse->order = order;
	reuse->order_count = count;
	return 0;
}

static int probe(pp_reuse *reuse, bool *trusted, pp_error *err)
{
	pp_archive *base = reuse->base;
	const probe_order *order = reuse->order;
	size_t count = reuse->order_count;
	*trusted = false;
	uint64_t largest = 0;
	for (size_t k = 0; k < count; k++)
		largest = PP_MAX(largest, order[k].usize);
	uint8_t *data = malloc((size_t)PP_MAX(largest, 1));
	int status = data ? 0 : pp_fail(err, PP_ERR_NOMEM, "out of memory");
	/* The first candidate that decodes (and, if ambiguous, looks
	 * incompressible) and is not all zeros; failing that, the last such
	 * one.  intact: data holds its bytes (a later try may have written
	 * over them).  At most PROBE_TRIES decodes. */
	size_t chosen = SIZE_MAX, tries = 0;
	bool intact = false, decoded = false;
	for (size_t k = 0; status == 0 && k < count && tries < PROBE_TRIES;
	     k++) {
		size_t i = order[k].block;
		status = decode_probe(reuse, i, data, &decoded, err);
		tries++;
		intact = status == 0 && decoded &&
			(!order[k].ambiguous ||
			 looks_incompressible(data, (size_t)order[k].usize));
		if (!intact)
			continue;
		chosen = i;
		if (!pp_all_zero(data, (size_t)base->blocks[i].usize))
			break;
	}
	if (status == 0 && chosen != SIZE_MAX) {
		decoded = true;
		if (!intact)
			status = decode_probe(reuse, chosen, data, &decoded,
					      err);
		if (status == 0 && decoded)
			status = encode_probe(reuse, reuse->container, chosen,
					      data, trusted, err);
		if (status == 0 && decoded && !*trusted)
			status = refuse(reuse, err, "%s: block %zu (byte %llu "
					"of the image) encodes to other bytes "
					"with these options: the base was "
					"packed at another level or by another "
					"encoder, so no block is reused",
					base->path, chosen + 1,
					(unsigned long long)
					base->blocks[chosen].uoffset);
	}
	free(data);
	return status;
}

/* Runs the probe and publishes its verdict. */
static void *run_probe(void *opaque)
{
	pp_reuse *reuse = opaque;
	pp_error err = { 0 };
	bool trusted;
	int status = probe(reuse, &trusted, &err);
	pthread_mutex_lock(&reuse->lock);
	reuse->verdict = status == 0 && trusted ? VERDICT_TRUSTED :
		VERDICT_REFUSED;
	reuse->probe_status = status;
	reuse->probe_error = err;
	pthread_cond_broadcast(&reuse->verdict_known);
	pthread_mutex_unlock(&reuse->lock);
	return NULL;
}

/* Waits for the verdict: whether blocks may be copied, or the probe's
 * failure. */
static int await_verdict(pp_reuse *reuse, bool *trusted, pp_error *err)
{
	pthread_mutex_lock(&reuse->lock);
	while (reuse->verdict == VERDICT_PENDING)
		pthread_cond_wait(&reuse->verdict_known, &reuse->lock);
	*trusted = reuse->verdict == VERDICT_TRUSTED;
	int status = reuse->probe_status;
	if (status && err)
		*err = reuse->probe_error;
	pthread_mutex_unlock(&reuse->lock);
	return status;
}

/* ---- the pack's side --------------------------------------------------- */

int pp_reuse_finish(pp_reuse *reuse, bool *trusted, pp_error *err)
{
	if (reuse->prober_started) {
		pthread_join(reuse->prober, NULL);
		reuse->prober_started = false;
	}
	return await_verdict(reuse, trusted, err);
}

void pp_reuse_close(pp_reuse *reuse)
{
	if (!reuse)
		return;
	if (reuse->prober_started)
		pthread_join(reuse->prober, NULL);
	if (reuse->corrupt_count > 0 && !strict(reuse))
		pp_notice("%s: damaged blocks were encoded, not reused (%zu; "
			  "the first: %s)", reuse->base->path,
			  reuse->corrupt_count, reuse->first_reason);
	pthread_cond_destroy(&reuse->verdict_known);
	pthread_mutex_destroy(&reuse->lock);
	pp_close(reuse->base);
	free(reuse->order);
	free(reuse->blocks);
	free(reuse);
}

int pp_reuse_open(const pp_pack_options *options,
		  const pp_container_ops *container, const pp_plan *plan,
		  pp_reuse **out, pp_error *err)
{
	*out = NULL;
	pp_reuse *reuse = calloc(1, sizeof *reuse);
	if (!reuse)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	reuse->options = options;
	reuse->container = container;
	pthread_mutex_init(&reuse->lock, NULL);
	pthread_cond_init(&reuse->verdict_known, NULL);
	int status = pp_open(options->reuse_path, PP_OPEN_READ, &reuse->base,
			     err);
	if (status) {
		pthread_cond_destroy(&reuse->verdict_known);
		pthread_mutex_destroy(&reuse->lock);
		free(reuse);
		return status;
	}
	pp_archive *base = reuse->base;
	reuse->blocks = calloc(base->block_count + 1, sizeof *reuse->blocks);
	if (!reuse->blocks)
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	else if (!container->reuse_record)
		status = refuse(reuse, err, "%s: blocks of the %s format cannot "
				"be reused", base->path, container->names[0]);
	else if (base->ops != container)
		status = refuse(reuse, err, "%s: its format is %s, this pack "
				"writes %s: no block is reused", base->path,
				pp_format_name(base->ops->format),
				pp_format_name(options->format));
	else if ((status = check_layout(reuse, container, plan, err)) == 0)
		status = order_probes(reuse, err);
	if (status || reuse->order_count == 0) {
		pp_reuse_close(reuse);  /* nothing to copy */
		return status;
	}
	/* The probe costs one block's encoding: beside the workers, unless
	 * the caller asked for one thread. */
	if (options->threads != 1 &&
	    pthread_create(&reuse->prober, NULL, run_probe, reuse) == 0)
		reuse->prober_started = true;
	else
		run_probe(reuse);
	*out = reuse;
	return 0;
}

int pp_reuse_block(pp_reuse *reuse, uint64_t uoffset, const uint8_t *in,
		   size_t usize, bool stored, uint8_t *out, size_t out_room,
		   size_t *out_len, pp_block_record *record, bool *reused,
		   pp_error *err)
{
	pp_archive *base = reuse->base;
	*reused = false;
	size_t i = pp_archive_find_block(base, uoffset);
	if (stored || i == base->block_count)
		return 0;
	pthread_mutex_lock(&reuse->lock);
	bool candidate = reuse->blocks[i].candidate &&
		reuse->verdict != VERDICT_REFUSED;
	pthread_mutex_unlock(&reuse->lock);
	const pp_block *b = &base->blocks[i];
	if (!candidate || b->uoffset != uoffset || b->usize != usize ||
	    b->fsize > out_room)
		return 0;

	/* The checks first: a changed block costs no decoding. */
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	uint8_t ours[PP_CHECK_SIZE_MAX], theirs[PP_CHECK_SIZE_MAX];
	bool checked = kind && pp_check_compute(kind, in, usize, ours);
	if (checked) {
		if (pp_archive_read(base, theirs, kind->size, b->check_offset))
			return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
					     base->path);
		if (memcmp(ours, theirs, kind->size) != 0)
			return 0;
	}

	/* Then the proof: the base's encoded bytes decode to these bytes. */
	compare_sink sink = { .expected = in, .len = usize };
	pp_error why;
	int status = base->ops->decode(base, i, UINT64_MAX, compare_bytes,
				       &sink, &why);
	if (sink.differs && checked)
		/* Its check says these bytes, its data says others. */
		pp_fail(&why, PP_ERR_CHECK, "%s: block %zu (byte %llu of the "
			"image) decodes to bytes its %s check does not match",
			base->path, i + 1, (unsigned long long)b->uoffset,
			kind->name);
	else if (sink.differs)
		return 0;
	if (sink.differs || is_damage(status))
		return note_corrupt(reuse, i, &why, err);
	if (status) {
		if (err)
			*err = why;
		return status;
	}
	if (sink.seen != usize ||
	    (reuse->blocks[i].if_incompressible &&
	     !looks_incompressible(in, usize)))
		return 0;
	bool trusted;
	status = await_verdict(reuse, &trusted, err);
	if (status || !trusted)
		return status;
	status = read_encoded(reuse, i, out, err);
	if (status)
		return status;
	*out_len = (size_t)b->fsize;
	*record = reuse->blocks[i].record;
	/* The check as written, for an index that repeats it. */
	memset(record->check, 0, sizeof record->check);
	if (kind)
		memcpy(record->check, out + (b->check_offset - b->foffset),
		       PP_MIN(kind->size, sizeof record->check));
	*reused = true;
	return 0;
}
