/*
 * fetch.c - pp_fetch: where each block of a remote archive comes from.
 *
 * A block's identity is what says that a seed already holds it:
 *
 *   by the bmap   (one is given, or lies beside the archive) for a block
 *                 whose ranges all lie inside it: each range's SHA-256,
 *                 compared with the seed's bmap when the seed is an archive
 *                 with one beside it (no decoding), else with the SHA-256
 *                 of the seed's bytes there.  A stored block is then taken
 *                 range by range: the ranges no seed holds are fetched from
 *                 the places the block's stored layout gives them, and the
 *                 rest of the block is zeros (unmapped);
 *   by its check  otherwise: the target's check (read from the index when
 *                 the format keeps it there, else with a small request,
 *                 merged with its neighbours), against the seed's stored
 *                 check when the seed has a block of the same range and
 *                 kind (no decoding), else the check of the seed's bytes.
 *                 The check of zeros says zeros.
 *
 * Whatever decides, the bytes written are verified when they are taken
 * (fetchrun.c): a fetched block is decoded (its own check), a seeded one is
 * compared with the target's check or the bmap's digests, and a seed that
 * fails is not used: the block is fetched in a second round.
 *
 * With PP_FETCH_ARCHIVE the output is the archive file itself: a block
 * comes from a seed only as that seed's encoded bytes (an archive of the
 * same format with a block of the same range, sizes and check), and a
 * stored block taken range by range borrows its framing from such a block.
 */
#include "fetch.h"
#include "archive.h"
#include "array.h"
#include "beside.h"
#include "blocks.h"
#include "bmap.h"
#include "check.h"
#include "container.h"
#include "error.h"
#include "fetchdigest.h"
#include "fetchplan.h"
#include "io.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void pp_fetch_options_init(pp_fetch_options *options)
{
	*options = (pp_fetch_options){ .sparse = PP_SPARSE_AUTO,
				       .length = UINT64_MAX };
}

/* ---- opening everything ---------------------------------------------------- */

static int remote_document(void *opaque, const char *location, size_t max,
			   char **text, size_t *len, bool *found,
			   pp_error *err)
{
	return pp_remote_get_document(opaque, location, max, text, len, found,
				      err);
}

static int load_bmap(fetch *f, pp_error *err)
{
	uint64_t image_size = pp_archive_image_size(f->target);
	const pp_fetch_options *o = f->options;
	if (o->flags & PP_FETCH_NO_BMAP)
		return 0;
	if (o->bmap) {
		int status = pp_bmap_load(o->bmap, remote_document, f->remote,
					  image_size, &f->bmap, err);
		f->have_bmap = status == 0;
		return status;
	}
	char *found_at = NULL;
	int status = pp_bmap_find(f->location, remote_document, f->remote,
				  image_size, &f->bmap, &found_at, err);
	f->have_bmap = status == 0 && found_at;
	free(found_at);
	return status;
}

static int open_seeds(fetch *f, pp_error *err)
{
	const pp_fetch_options *o = f->options;
	if (o->seed_count == 0)
		return 0;
	f->seeds = calloc(o->seed_count, sizeof *f->seeds);
	if (!f->seeds)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < o->seed_count; i++) {
		int status = pp_seed_open(o->seeds[i], &f->seeds[i], err);
		if (status)
			return status;
		f->seed_count++;
	}
	return 0;
}

/* The blocks wanted and, for raw output, the image bytes. */
static int choose_range(fetch *f, pp_error *err)
{
	const pp_fetch_options *o = f->options;
	pp_archive *a = f->target;
	if (f->archive_out) {
		if (o->offset != 0 || o->length != UINT64_MAX)
			return pp_fail(err, PP_ERR_USAGE, "an archive is "
				       "fetched whole: no offset or length");
		f->first = 0;
		f->end = a->block_count;
		f->out_size = a->file_size;
		return 0;
	}
	int status = pp_archive_clip(a, o->offset, o->length, &f->to, err);
	if (status)
		return status;
	f->from = o->offset;
	f->first = pp_archive_find_block(a, f->from);
	f->end = f->to == f->from ? f->first :
		pp_archive_find_block(a, f->to - 1) + 1;
	f->out_size = f->to - f->from;
	return 0;
}

/* Each block's stored extents: for a URL, the layout its sizes imply. */
static int list_layouts(fetch *f, pp_error *err)
{
	size_t n = f->target->block_count;
	f->plans = calloc(n + 1, sizeof *f->plans);
	f->layouts = calloc(n + 1, sizeof *f->layouts);
	f->wholly_stored = calloc(n + 1, sizeof *f->wholly_stored);
	if (!f->plans || !f->layouts || !f->wholly_stored)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = f->first; i < f->end; i++) {
		f->plans[i] = (block_plan){ .seed = -1, .donor = -1,
					    .seed_block = SIZE_MAX,
					    .donor_block = SIZE_MAX };
		int status = pp_archive_stored_extents(f->target, i,
						       &f->layouts[i],
						       &f->wholly_stored[i],
						       err);
		if (status)
			return status;
	}
	return 0;
}

/* ---- identity by the bmap ---------------------------------------------------- */

/* An archive seed's block of the same encoding, size and kind of check. */
static bool same_encoding(fetch *f, size_t i, size_t s, size_t sbi)
{
	const pp_block *b = &f->target->blocks[i];
	pp_archive *sa = pp_seed_archive(f->seeds[s]);
	return sa && sbi != SIZE_MAX && sa->ops->format == f->target->ops->format &&
	       sa->blocks[sbi].fsize == b->fsize && sa->blocks[sbi].check == b->check;
}

static uint64_t range_start(const pp_bmap *bmap, const pp_bmap_range *r)
{
	return r->first * bmap->block_size;
}

static uint64_t range_end(const pp_bmap *bmap, const pp_bmap_range *r)
{
	return PP_MIN((r->last + 1) * bmap->block_size, bmap->image_size);
}

/* The first range ending after offset. */
static size_t range_from(const pp_bmap *bmap, uint64_t offset)
{
	size_t low = 0, high = bmap->count;
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		if (range_end(bmap, &bmap->ranges[mid]) <= offset)
			low = mid + 1;
		else
			high = mid;
	}
	return low;
}

static int add_piece(block_plan *p, size_t *capacity, uint64_t offset,
		     uint64_t length, const uint8_t *sha256, pp_error *err)
{
	if (length == 0)
		return 0;
	piece *pieces = pp_grow(p->pieces, p->piece_count, capacity,
				sizeof *pieces, 8);
	if (!pieces)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	p->pieces = pieces;
	pieces[p->piece_count++] = (piece){
		.offset = offset, .length = length,
		.source = sha256 ? PIECE_FETCH : PIECE_ZERO, .sha256 = sha256,
	};
	return 0;
}

/* The block as pieces: its ranges and the gaps between them.  *inside is
 * false (and no pieces are left) when a range crosses its edges. */
static int cut_pieces(fetch *f, size_t i, bool *inside, pp_error *err)
{
	const pp_block *b = &f->target->blocks[i];
	const pp_bmap *bmap = &f->bmap;
	block_plan *p = &f->plans[i];
	uint64_t at = b->uoffset, end = b->uoffset + b->usize;
	size_t capacity = 0;
	int status = 0;
	*inside = true;
	for (size_t r = range_from(bmap, at); status == 0 && r < bmap->count;
	     r++) {
		const pp_bmap_range *range = &bmap->ranges[r];
		uint64_t start = range_start(bmap, range);
		if (start >= end)
			break;
		if (start < b->uoffset || range_end(bmap, range) > end) {
			*inside = false;
			break;
		}
		status = add_piece(p, &capacity, at, start - at, NULL, err);
		if (status == 0)
			status = add_piece(p, &capacity, start,
					   range_end(bmap, range) - start,
					   range->sha256, err);
		at = range_end(bmap, range);
	}
	if (status == 0 && *inside)
		status = add_piece(p, &capacity, at, end - at, NULL, err);
	if (status || !*inside) {
		free(p->pieces);
		p->pieces = NULL;
		p->piece_count = 0;
	}
	return status;
}

/* Whether a bmap maps any of [offset, offset + length). */
static bool bmap_maps_any(const pp_bmap *bmap, uint64_t offset,
			  uint64_t length)
{
	size_t r = range_from(bmap, offset);
	return r < bmap->count &&
	       range_start(bmap, &bmap->ranges[r]) < offset + length;
}

/*
 * Whether a range holds zeros: its digest is that of zeros of its length.
 * A patch maps all it wrote, zeros too, where a seed's bmap left the
 * same zeros unmapped; a seed whose bmap maps nothing there holds them,
 * with nothing read.  Ranges of the stored grid's size and less are
 * tried (one digest of zeros is kept, for the last length asked), as a
 * longer one would cost its length in hashing.
 */
static bool range_of_zeros(fetch *f, const piece *pc)
{
	if (pc->length > PP_BMAP_STORED_GRID)
		return false;
	if (f->zeros_length != pc->length) {
		pp_sha256 sha;
		pp_sha256_init(&sha);
		pp_sha256_zeros(&sha, pc->length);
		pp_sha256_final(&sha, f->zeros_sha256);
		f->zeros_length = pc->length;
	}
	return memcmp(f->zeros_sha256, pc->sha256, 32) == 0;
}

/* Whether the seed's bmap has the very range [offset, length) with sha. */
static bool seed_bmap_has(const pp_bmap *bmap, uint64_t offset,
			  uint64_t length, const uint8_t *sha256)
{
	size_t r = range_from(bmap, offset);
	if (r == bmap->count)
		return false;
	const pp_bmap_range *range = &bmap->ranges[r];
	return range_start(bmap, range) == offset &&
	       range_end(bmap, range) - offset == length &&
	       memcmp(range->sha256, sha256, 32) == 0;
}

static int hash_seed(pp_seed *seed, uint64_t offset, uint64_t length,
		     uint8_t digest[32], uint8_t *buf, size_t buf_size,
		     pp_error *err)
{
	pp_sha256 sha;
	pp_sha256_init(&sha);
	for (uint64_t at = 0; at < length;) {
		size_t len = (size_t)PP_MIN((uint64_t)buf_size, length - at);
		int status = pp_seed_read(seed, buf, len, offset + at, err);
		if (status)
			return status;
		pp_sha256_update(&sha, buf, len);
		at += len;
	}
	pp_sha256_final(&sha, digest);
	return 0;
}

/*
 * Which seed holds a range: one whose bmap lists it, or whose bytes hash
 * to it.  Hashing an archive seed's bytes decodes them: done for stored
 * target blocks only (whose seeds are mostly stored too), as a compressed
 * block is decided by its check instead.
 */
static int find_piece_seed(fetch *f, const piece *pc, bool stored,
			   uint8_t *buf, size_t buf_size, pp_error *err)
{
	bool zeros = range_of_zeros(f, pc);
	for (size_t s = 0; s < f->seed_count; s++) {
		pp_seed *seed = f->seeds[s];
		const pp_bmap *sb = pp_seed_bmap(seed);
		if (sb && (seed_bmap_has(sb, pc->offset, pc->length, pc->sha256) ||
			   (zeros && !bmap_maps_any(sb, pc->offset, pc->length))))
			return (int)s;
		/* Ranges cut otherwise (a patch maps all it wrote) are
		 * hashed, where that costs no decoding. */
		if (pp_seed_archive(seed) && !stored)
			continue;
		uint8_t digest[32];
		int status = hash_seed(seed, pc->offset, pc->length, digest,
				       buf, buf_size, err);
		if (status)
			return status;
		if (memcmp(digest, pc->sha256, 32) == 0)
			return (int)s;
	}
	return PIECE_FETCH;
}

/* A seed's stored block with the target block's range and sizes, whose
 * framing a stored block rebuilt range by range can borrow. */
static bool find_donor(fetch *f, size_t i)
{
	const pp_block *b = &f->target->blocks[i];
	block_plan *p = &f->plans[i];
	for (size_t s = 0; s < f->seed_count; s++) {
		pp_archive *sa = pp_seed_archive(f->seeds[s]);
		size_t sbi = pp_seed_block_at(f->seeds[s], b->uoffset, b->usize);
		if (!sa || sbi == SIZE_MAX ||
		    sa->ops->format != f->target->ops->format)
			continue;
		const pp_block *sb = &sa->blocks[sbi];
		if (sb->fsize == b->fsize && sb->check == b->check) {
			p->donor = (int)s;
			p->donor_block = sbi;
			return true;
		}
	}
	return false;
}

/* Whether a bmap's ranges over the block are cut as the pieces are:
 * the same ranges, whatever their digests. */
static bool cut_alike(const pp_bmap *bmap, const block_plan *p)
{
	size_t ranges = 0, alike = 0;
	for (size_t k = 0; k < p->piece_count; k++) {
		const piece *pc = &p->pieces[k];
		if (!pc->sha256)
			continue;
		size_t r = range_from(bmap, pc->offset);
		ranges++;
		alike += r < bmap->count &&
			range_start(bmap, &bmap->ranges[r]) == pc->offset &&
			range_end(bmap, &bmap->ranges[r]) == pc->offset + pc->length;
	}
	/* ... and no range of the seed's between them. */
	uint64_t start = p->piece_count ? p->pieces[0].offset : 0;
	uint64_t end = p->piece_count ? p->pieces[p->piece_count - 1].offset +
		p->pieces[p->piece_count - 1].length : 0;
	size_t seed_ranges = 0;
	for (size_t r = range_from(bmap, start);
	     r < bmap->count && range_start(bmap, &bmap->ranges[r]) < end; r++)
		seed_ranges++;
	return alike == ranges && seed_ranges == ranges;
}

/* Whether seed s's bmap maps nothing where the block's pieces are gaps:
 * the seed's bytes there are zeros, as the target's are. */
static bool seed_maps_no_gap(fetch *f, int s, const block_plan *p)
{
	const pp_bmap *sb = pp_seed_bmap(f->seeds[s]);
	if (!sb)
		return false;
	for (size_t k = 0; k < p->piece_count; k++) {
		const piece *gap = &p->pieces[k];
		if (!gap->sha256 && bmap_maps_any(sb, gap->offset, gap->length))
			return false;
	}
	return true;
}

/*
 * All pieces from one seed whose block there has the same encoding, and
 * whose bmap maps nothing in the block's gaps: a seed holding every range
 * the target maps may still hold other bytes where the target has a hole,
 * and its block is the target's only if it does not.
 */
static bool encoded_copy(fetch *f, size_t i, int seed)
{
	const pp_block *b = &f->target->blocks[i];
	size_t sbi = pp_seed_block_at(f->seeds[seed], b->uoffset, b->usize);
	if (!same_encoding(f, i, (size_t)seed, sbi) ||
	    !seed_maps_no_gap(f, seed, &f->plans[i]))
		return false;
	f->plans[i].seed_block = sbi;
	return true;
}

/* What the pieces found says about the whole block. */
static void settle_pieces(fetch *f, size_t i, size_t matched, size_t mapped,
			  int only_seed)
{
	block_plan *p = &f->plans[i];
	bool stored = f->wholly_stored[i];
	p->by_bmap = true;
	if (matched == mapped && !f->archive_out) {
		p->take = mapped ? TAKE_SEED : TAKE_ZERO;
	} else if (matched == mapped && only_seed >= 0 &&
		   encoded_copy(f, i, only_seed)) {
		p->take = TAKE_SEED;
		p->seed = only_seed;
		p->copy_encoded = true;
	} else if (stored && (!f->archive_out || find_donor(f, i))) {
		p->take = TAKE_PIECES;
	} else {
		p->take = TAKE_FETCH;
	}
	if (p->take == TAKE_FETCH || p->copy_encoded) {
		free(p->pieces);
		p->pieces = NULL;
		p->piece_count = 0;
		p->by_bmap = false;
	}
}

/*
 * Whether some seed may hold a compressed block whose ranges it did not
 * match: an archive, whose bytes are not hashed, unless its own bmap cuts
 * the block's ranges alike (then other digests are other bytes); a bmap
 * may map the same bytes otherwise (a copy of an image made sparse again
 * maps fewer zeros).  A raw seed whose bytes do not hash to the ranges
 * does not hold the block.
 */
static bool untried_seeds(const fetch *f, const block_plan *p)
{
	for (size_t s = 0; s < f->seed_count; s++) {
		const pp_bmap *sb = pp_seed_bmap(f->seeds[s]);
		if (pp_seed_archive(f->seeds[s]) && !(sb && cut_alike(sb, p)))
			return true;
	}
	return false;
}

/* By the bmap, if the block allows: *decided false leaves it to checks. */
static int plan_by_bmap(fetch *f, size_t i, uint8_t *buf, size_t buf_size,
			bool *decided, pp_error *err)
{
	bool stored = f->wholly_stored[i], inside;
	*decided = false;
	int status = cut_pieces(f, i, &inside, err);
	if (status || !inside)
		return status;
	block_plan *p = &f->plans[i];
	size_t mapped = 0, matched = 0;
	int only_seed = -1;
	for (size_t k = 0; status == 0 && k < p->piece_count; k++) {
		piece *pc = &p->pieces[k];
		if (!pc->sha256)
			continue;
		mapped++;
		int found = find_piece_seed(f, pc, stored, buf, buf_size, err);
		if (found < PIECE_ZERO) {
			status = found;
			break;
		}
		pc->source = found;
		if (found >= 0) {
			matched++;
			only_seed = only_seed == -1 || only_seed == found ?
				found : -2;
		}
	}
	if (status)
		return status;
	/* A compressed block some of whose ranges no seed holds is fetched
	 * whole anyway, unless its check finds it whole in an archive seed. */
	/* So is one whose ranges a seed all holds, with more mapped in the
	 * gaps: the seed's block is the target's if its check is. */
	bool more_in_seed = f->archive_out && matched == mapped &&
		only_seed >= 0 && !seed_maps_no_gap(f, only_seed, p);
	if (!stored && ((matched < mapped && untried_seeds(f, p)) ||
			more_in_seed)) {
		free(p->pieces);
		p->pieces = NULL;
		p->piece_count = 0;
		return 0;
	}
	settle_pieces(f, i, matched, mapped, only_seed);
	*decided = true;
	return 0;
}

/* ---- identity by the check ---------------------------------------------------- */

/* Where the target keeps a block's check: a copy in the index if any. */
static uint64_t check_place(const pp_block *b)
{
	return b->check_copy_offset ? b->check_copy_offset : b->check_offset;
}

typedef struct check_reads {
	fetch *f;
	const size_t *blocks;       /* the blocks whose checks are read */
	size_t count;
	const pp_range *requests;
	uint8_t **bytes;            /* per request */
} check_reads;

static int keep_check_bytes(void *opaque, size_t request, uint64_t offset,
			    const uint8_t *data, size_t len, pp_error *err)
{
	check_reads *c = opaque;
	(void)err;
	const pp_range *r = &c->requests[request];
	memcpy(c->bytes[request] + (offset - r->offset), data, len);
	return 0;
}

/* Takes each block's check out of the requests' bytes. */
static void spread_checks(check_reads *c, size_t request_count)
{
	for (size_t k = 0; k < c->count; k++) {
		size_t i = c->blocks[k];
		const pp_block *b = &c->f->target->blocks[i];
		const pp_check_kind *kind = pp_check_kind_of(b->check);
		uint64_t at = check_place(b);
		for (size_t r = 0; r < request_count; r++) {
			const pp_range *q = &c->requests[r];
			if (at < q->offset || at + kind->size > q->offset + q->length)
				continue;
			memcpy(c->f->plans[i].check, c->bytes[r] + (at - q->offset),
			       kind->size);
			c->f->plans[i].check_known = true;
			break;
		}
	}
}

/* Reads the checks of blocks[0..count): from what is already here where
 * it can, the others in merged requests. */
static int read_checks(fetch *f, const size_t *blocks, size_t count,
		       pp_error *err)
{
	pp_range *wants = calloc(count + 1, sizeof *wants);
	size_t *missing = calloc(count + 1, sizeof *missing);
	size_t want_count = 0;
	int status = wants && missing ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t k = 0; status == 0 && k < count; k++) {
		const pp_block *b = &f->target->blocks[blocks[k]];
		size_t size = pp_check_kind_of(b->check)->size;
		block_plan *p = &f->plans[blocks[k]];
		p->check_known = pp_remote_cached(f->remote, p->check, size,
						  check_place(b));
		if (!p->check_known) {
			missing[want_count] = blocks[k];
			wants[want_count++] = (pp_range){ check_place(b), size };
		}
	}
	pp_range *requests = NULL;
	size_t request_count = 0;
	pp_request_rules rules = { .merge_gap = PP_FETCH_MERGE_GAP,
				   .split_min = UINT64_MAX,
				   .connections = f->options->connections };
	if (status == 0)
		status = pp_plan_requests(wants, want_count, &rules, &requests,
					  &request_count, err);
	uint8_t **bytes = calloc(request_count + 1, sizeof *bytes);
	if (status == 0 && !bytes)
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t r = 0; status == 0 && r < request_count; r++)
		if (!(bytes[r] = malloc(requests[r].length)))
			status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	check_reads c = { .f = f, .blocks = missing, .count = want_count,
			  .requests = requests, .bytes = bytes };
	if (status == 0)
		status = pp_remote_fetch(f->remote, requests, request_count,
					 keep_check_bytes, &c, err);
	if (status == 0)
		spread_checks(&c, request_count);
	for (size_t r = 0; bytes && r < request_count; r++)
		free(bytes[r]);
	free(bytes);
	free(requests);
	free(wants);
	free(missing);
	return status;
}

/* The zero rule of a fetch: a block whose check is the check of zeros. */
static bool check_says_zeros(const pp_block *b, const block_plan *p)
{
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	uint8_t zeros[PP_CHECK_SIZE_MAX];
	if (!kind->of_zeros)
		return false;
	kind->of_zeros(zeros, b->usize);
	return memcmp(zeros, p->check, kind->size) == 0;
}

static int plan_by_check(fetch *f, size_t i, pp_error *err)
{
	const pp_block *b = &f->target->blocks[i];
	block_plan *p = &f->plans[i];
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	p->take = TAKE_FETCH;
	if (!p->check_known)
		return 0;
	bool zeros = check_says_zeros(b, p);
	if (zeros && !f->archive_out) {
		p->take = TAKE_ZERO;
		return 0;
	}
	for (size_t s = 0; s < f->seed_count; s++) {
		uint8_t check[PP_CHECK_SIZE_MAX];
		size_t sbi;
		int status = pp_seed_check(f->seeds[s], kind, b->uoffset,
					   b->usize, check, &sbi, err);
		if (status)
			return status;
		if (memcmp(check, p->check, kind->size) != 0)
			continue;
		if (!f->archive_out) {
			p->take = TAKE_SEED;
			p->seed = (int)s;
			p->seed_block = sbi;
			return 0;
		}
		if (same_encoding(f, i, s, sbi)) {
			p->take = TAKE_SEED;
			p->seed = (int)s;
			p->seed_block = sbi;
			p->copy_encoded = true;
			return 0;
		}
		if (f->wholly_stored[i] && find_donor(f, i)) {
			/* One step, the whole block, from this seed. */
			size_t capacity = 0;
			int added = add_piece(p, &capacity, b->uoffset, b->usize,
					      NULL, err);
			if (added)
				return added;
			p->pieces[0].source = (int)s;
			p->take = TAKE_PIECES;
			return 0;
		}
	}
	return 0;
}

/* ---- the plan ------------------------------------------------------------------ */

/*
 * Archive output takes a compressed block from a seed only as that seed's
 * own encoded bytes (a raw seed's, or other encodings', would have to be
 * encoded again, and need not come out the same).  A block no seed holds
 * in its encoding is fetched without hashing any seed's bytes for it.
 */
static bool may_copy_encoded(fetch *f, size_t i)
{
	const pp_block *b = &f->target->blocks[i];
	for (size_t s = 0; s < f->seed_count; s++)
		if (same_encoding(f, i, s, pp_seed_block_at(f->seeds[s],
							    b->uoffset,
							    b->usize)))
			return true;
	return false;
}

static bool checkable(const pp_block *b)
{
	const pp_check_kind *kind = pp_check_kind_of(b->check);
	return kind && kind->size > 0;
}

static int plan_blocks(fetch *f, pp_error *err)
{
	enum { HASH_PIECE = 1 << 20 };
	size_t n = f->end - f->first;
	size_t *by_check = calloc(n + 1, sizeof *by_check), count = 0;
	uint8_t *buf = malloc(HASH_PIECE);
	int status = by_check && buf ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	/* With nothing to compare with, everything is fetched: no checks. */
	bool compare = f->seed_count > 0;
	for (size_t i = f->first; status == 0 && i < f->end; i++) {
		block_plan *p = &f->plans[i];
		/* A block too large to hold is fetched as a stream. */
		bool decided = p->take == TAKE_DONE ||
			f->target->blocks[i].usize > PP_FETCH_BUFFERED_MAX ||
			(f->archive_out && !f->wholly_stored[i] &&
			 !may_copy_encoded(f, i));
		if (!decided && f->have_bmap &&
		    (compare || (f->wholly_stored[i] && !f->archive_out)))
			status = plan_by_bmap(f, i, buf, HASH_PIECE, &decided,
					      err);
		if (status == 0 && !decided && compare &&
		    checkable(&f->target->blocks[i]))
			by_check[count++] = i;
	}
	if (status == 0 && count > 0)
		status = read_checks(f, by_check, count, err);
	for (size_t k = 0; status == 0 && k < count; k++)
		status = plan_by_check(f, by_check[k], err);
	free(by_check);
	free(buf);
	return status;
}

/* ---- resuming ------------------------------------------------------------------ */

/* What the partial copies: the archive (where, what version, its block
 * table) and what is written of it. */
static void identity_of(const fetch *f, uint8_t digest[32])
{
	pp_sha256 sha;
	pp_sha256_init(&sha);
	const char *validator = pp_remote_validator(f->remote);
	pp_sha256_update(&sha, f->location, strlen(f->location) + 1);
	pp_sha256_update(&sha, validator, strlen(validator) + 1);
	uint64_t numbers[4] = { f->target->file_size, f->archive_out,
				f->from, f->to };
	pp_sha256_update(&sha, numbers, sizeof numbers);
	for (size_t i = 0; i < f->target->block_count; i++) {
		const pp_block *b = &f->target->blocks[i];
		uint64_t row[5] = { b->uoffset, b->usize, b->foffset, b->fsize,
				    (uint64_t)b->check };
		pp_sha256_update(&sha, row, sizeof row);
	}
	pp_sha256_final(&sha, digest);
}

/* An earlier run's block is taken when its bytes still hash to what that
 * run recorded. */
static int verify_done(fetch *f, size_t i, pp_error *err)
{
	const pp_fetch_done *d = &f->done[i];
	if (!d->done || d->check_len != PP_FETCH_RECORD_SIZE)
		return 0;
	uint64_t at, len;
	uint8_t record[PP_FETCH_RECORD_SIZE];
	pp_fetch_output_span(f, i, &at, &len);
	int status = pp_fetch_record_of_file(f->out_fd, at, len, record, err);
	if (status)
		return status;
	if (memcmp(record, d->check, PP_FETCH_RECORD_SIZE) == 0) {
		f->plans[i].take = TAKE_DONE;
		atomic_fetch_add(&f->resumed_bytes, len);
		atomic_fetch_add(&f->done_bytes, len);
	}
	return 0;
}

static int take_done_blocks(fetch *f, pp_error *err)
{
	int status = 0;
	for (size_t i = f->first; status == 0 && i < f->end; i++)
		status = verify_done(f, i, err);
	return status;
}

/* ---- the output ----------------------------------------------------------------- */

static char *directory_of(const char *path)
{
	char *copy = strdup(path);
	char *dir = copy ? strdup(dirname(copy)) : NULL;
	free(copy);
	return dir;
}

/* An unnamed file in dir for bytes nobody keeps. */
static int unnamed_file(const char *dir, pp_error *err)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		size_t size = strlen(dir) + sizeof "/.partcat.XXXXXX";
		char *path = malloc(size);
		if (path) {
			snprintf(path, size, "%s/.partcat.XXXXXX", dir);
			fd = mkostemp(path, O_CLOEXEC);
			if (fd >= 0)
				unlink(path);
		}
		free(path);
	}
	if (fd < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot create a "
				     "temporary file", dir);
	return fd;
}

static int open_output(fetch *f, const char *out_path, const char *dir,
		       pp_error *err)
{
	if (!out_path) {
		f->out_fd = unnamed_file(dir, err);
		if (f->out_fd < 0)
			return PP_ERR_IO;
		if (ftruncate(f->out_fd, (off_t)f->out_size))
			return pp_fail_errno(err, PP_ERR_IO, "temporary file");
	} else {
		uint8_t identity[32];
		identity_of(f, identity);
		int status = pp_fetch_state_open(out_path, identity, f->out_size,
						 f->target->block_count,
						 &f->state, &f->out_fd, &f->done,
						 &f->resumed, err);
		if (status)
			return status;
		if (f->resumed && (status = take_done_blocks(f, err)))
			return status;
	}
	f->holes = f->options->sparse != PP_SPARSE_NEVER;
	if (f->archive_out) {
		f->spill_fd = f->out_fd;
		return 0;
	}
	f->spill_fd = unnamed_file(dir, err);
	return f->spill_fd < 0 ? PP_ERR_IO : 0;
}

/* ---- the whole result's digest ---------------------------------------------- */

static int parse_sha256(const char *hex, uint8_t digest[32], pp_error *err)
{
	for (int i = 0; i < 32; i++) {
		unsigned byte;
		if (!hex[2 * i] || !hex[2 * i + 1] ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2x", &byte) != 1)
			return pp_fail(err, PP_ERR_USAGE, "'%s' is not a SHA-256 "
				       "(64 hex digits)", hex);
		digest[i] = (uint8_t)byte;
	}
	if (hex[64])
		return pp_fail(err, PP_ERR_USAGE, "'%s' is not a SHA-256 (64 "
			       "hex digits)", hex);
	return 0;
}

/* The output's spans, one per block of [first, end), go to a thread that
 * hashes them in order as the run marks them written (fetchdigest.c);
 * blocks an earlier run left are written already. */
static int start_digest(fetch *f, pp_error *err)
{
	size_t n = f->end - f->first;
	pp_range *spans = calloc(n + 1, sizeof *spans);
	if (!spans)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = f->first; i < f->end; i++)
		pp_fetch_output_span(f, i, &spans[i - f->first].offset,
				     &spans[i - f->first].length);
	int status = pp_fetch_digest_start(f->out_fd, f->out_size, spans, n,
					   &f->digest, err);
	free(spans);
	for (size_t i = f->first; status == 0 && i < f->end; i++)
		if (f->plans[i].take == TAKE_DONE)
			pp_fetch_digest_written(f->digest, i - f->first);
	return status;
}

static int verify_digest(fetch *f, const char *name, pp_error *err)
{
	uint8_t want[32], have[32];
	int status = parse_sha256(f->options->sha256, want, err);
	if (status == 0)
		status = pp_fetch_digest_finish(f->digest, have, err);
	if (status)
		return status;
	if (memcmp(want, have, 32) != 0) {
		char hex[65];
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", have[i]);
		f->digest_failed = true;
		return pp_fail(err, PP_ERR_CHECK, "%s: the SHA-256 of the "
			       "result is %s, not %s", name, hex,
			       f->options->sha256);
	}
	return 0;
}

/*
 * The archive written does not have the SHA-256 given; its blocks were
 * not decoded on the way (the digest was to verify them).  Decoding them
 * now from the output names the first whose check fails, if one does.
 */
static int name_bad_block(fetch *f, pp_error *err)
{
	pp_error digest_err = *err;
	uint8_t *buf = NULL;
	size_t size = 0;
	int status = pp_remote_stage(f->remote, f->out_fd, 0, f->out_size, err);
	for (size_t i = 0; status == 0 && i < f->target->block_count; i++) {
		uint64_t usize = f->target->blocks[i].usize;
		if (usize > PP_FETCH_BUFFERED_MAX)
			continue;
		if (size < usize) {
			uint8_t *grown = realloc(buf, (size_t)usize);
			if (!grown) {
				status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
				break;
			}
			buf = grown;
			size = (size_t)usize;
		}
		status = pp_decode_block(f->target, i, buf, err);
	}
	free(buf);
	if (status == 0)
		*err = digest_err;
	return status ? status : digest_err.status;
}

/* ---- from start to end ------------------------------------------------------------ */

static void fetch_free(fetch *f)
{
	for (size_t i = 0; f->plans && i < f->target->block_count; i++)
		free(f->plans[i].pieces);
	for (size_t i = 0; f->layouts && i < f->target->block_count; i++)
		pp_extent_list_free(&f->layouts[i]);
	free(f->plans);
	free(f->layouts);
	free(f->wholly_stored);
	free(f->done);
	for (size_t i = 0; i < f->seed_count; i++)
		pp_seed_close(f->seeds[i]);
	free(f->seeds);
	if (f->have_bmap)
		pp_bmap_release(&f->bmap);
	pp_fetch_digest_free(f->digest);
	if (f->spill_fd >= 0 && f->spill_fd != f->out_fd)
		close(f->spill_fd);
	pp_close(f->target);
}

static void fill_report(fetch *f, pp_fetch_report *r)
{
	*r = (pp_fetch_report){
		.seeded_bytes = atomic_load(&f->seeded_bytes),
		.zero_bytes = atomic_load(&f->zero_bytes),
		.resumed_bytes = atomic_load(&f->resumed_bytes),
		.fetched_blocks = atomic_load(&f->fetched_blocks),
		.seeded_blocks = atomic_load(&f->seeded_blocks),
		.output_bytes = f->out_size,
	};
	if (f->remote)
		pp_remote_stats(f->remote, &r->requests, &r->fetched_bytes);
}

/* Everything up to a complete result in f->out_fd. */
static int assemble(fetch *f, const char *location, const char *out_path,
		    const char *dir, pp_error *err)
{
	pp_remote_options ro = { .connections = f->options->connections,
				 .spill_dir = dir };
	int status = pp_remote_open(location, &ro, &f->target, err);
	if (status == 0)
		f->remote = pp_remote_of(f->target);
	if (status == 0)
		status = choose_range(f, err);
	if (status == 0)
		status = open_seeds(f, err);
	if (status == 0)
		status = load_bmap(f, err);
	if (status == 0)
		status = list_layouts(f, err);
	if (status == 0)
		status = open_output(f, out_path, dir, err);
	if (status == 0)
		status = plan_blocks(f, err);
	if (status == 0 && f->options->sha256)
		status = start_digest(f, err);
	if (status == 0)
		status = pp_fetch_run(f, err);
	if (status == 0 && f->options->sha256)
		status = verify_digest(f, out_path ? out_path : location, err);
	if (status == PP_ERR_CHECK && f->digest_failed && f->archive_out &&
	    !f->verify_copies)
		status = name_bad_block(f, err);
	return status;
}

/* Copies the assembled image to fd, holes as zeros. */
static int copy_to_fd(fetch *f, int fd, const char *name, pp_error *err)
{
	enum { PIECE = 1 << 20 };
	uint8_t *buf = malloc(PIECE);
	int status = buf ? 0 : pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (uint64_t at = 0; status == 0 && at < f->out_size;) {
		size_t len = (size_t)PP_MIN((uint64_t)PIECE, f->out_size - at);
		if (pp_pread_full(f->out_fd, buf, len, at))
			status = pp_fail_errno(err, PP_ERR_IO, "temporary file");
		else if (pp_write_full(fd, buf, len))
			status = pp_fail_errno(err, PP_ERR_IO, "%s: write error",
					       name);
		at += len;
	}
	free(buf);
	return status;
}

static int fetch_main(const char *location, const char *out_path, int out_fd,
		      const char *out_name, const pp_fetch_options *options,
		      pp_error *err)
{
	pp_fetch_options defaults;
	if (!options) {
		pp_fetch_options_init(&defaults);
		options = &defaults;
	}
	fetch f = {
		.location = location, .options = options,
		.archive_out = options->flags & PP_FETCH_ARCHIVE,
		.verify_copies = !options->sha256,
		.out_fd = -1, .spill_fd = -1,
	};
	struct stat st;
	if (out_path && !(options->flags & PP_FETCH_FORCE) &&
	    lstat(out_path, &st) == 0)
		return pp_fail(err, PP_ERR_IO, "%s: already exists (use "
			       "--force to overwrite)", out_path);
	const char *tmp = getenv("TMPDIR");
	char *dir = out_path ? directory_of(out_path) :
		strdup(tmp && *tmp ? tmp : "/tmp");
	if (!dir)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = assemble(&f, location, out_path, dir, err);
	if (status == 0 && out_path)
		status = pp_fetch_state_commit(f.state, options->flags &
					       PP_FETCH_FORCE, err);
	else if (status == 0)
		status = copy_to_fd(&f, out_fd, out_name, err);
	else if (f.digest_failed)
		pp_fetch_state_discard(f.state);   /* complete, and wrong */
	else
		pp_fetch_state_close(f.state);
	f.state = NULL;
	if (!out_path && f.out_fd >= 0)
		close(f.out_fd);
	if (options->report)
		fill_report(&f, options->report);
	fetch_free(&f);
	free(dir);
	return status;
}

int pp_fetch(const char *location, const char *out_path,
	     const pp_fetch_options *options, pp_error *err)
{
	if (!out_path)
		return pp_fail(err, PP_ERR_USAGE, "pp_fetch needs an output "
			       "path (pp_fetch_to_fd writes to a descriptor)");
	return fetch_main(location, out_path, -1, NULL, options, err);
}

int pp_fetch_to_fd(const char *location, int fd, const char *out_name,
		   const pp_fetch_options *options, pp_error *err)
{
	if (options && (options->flags & PP_FETCH_ARCHIVE))
		return pp_fail(err, PP_ERR_USAGE, "%s: an archive is fetched "
			       "to a file (pp_fetch)", location);
	return fetch_main(location, NULL, fd, out_name, options, err);
}
