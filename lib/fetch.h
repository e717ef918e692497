/*
 * fetch.h - what the two halves of pp_fetch share: fetch.c decides where
 * each block of the archive comes from (a seed, zeros, the server, or
 * stored bytes range by range) and fetchrun.c brings the bytes in and
 * writes the result.
 */
#ifndef PARTPACK_FETCH_H
#define PARTPACK_FETCH_H

#include "blocks.h"
#include "bmap.h"
#include "check.h"
#include "fetchstate.h"
#include "remote.h"
#include "seed.h"

#include <pthread.h>
#include <stdatomic.h>

/* Where a block of the output comes from. */
typedef enum take {
	TAKE_FETCH = 0,   /* fetched whole and decoded */
	TAKE_ZERO,        /* zeros: a hole (raw output only) */
	TAKE_SEED,        /* from a seed (encoded bytes with copy_encoded) */
	TAKE_PIECES,      /* a stored block, bmap range by bmap range */
	TAKE_DONE,        /* an earlier run wrote it */
} take;

#define PIECE_FETCH (-1)
#define PIECE_ZERO (-2)

/* A part of a block: a bmap range's share of it, or a gap between them. */
typedef struct piece {
	uint64_t offset;            /* image bytes, inside the block */
	uint64_t length;
	int source;                 /* a seed, PIECE_FETCH or PIECE_ZERO */
	const uint8_t *sha256;      /* the bmap's digest; NULL: not a range */
} piece;

typedef struct block_plan {
	take take;
	int seed;                   /* TAKE_SEED by check: the seed */
	size_t seed_block;          /* its block at the same place, or SIZE_MAX */
	bool copy_encoded;          /* archive output: that block's bytes */
	int donor;                  /* TAKE_PIECES, archive output: the seed
				       whose stored block lends its framing */
	size_t donor_block;
	bool by_bmap;               /* pieces, each verified by its digest */
	piece *pieces;
	size_t piece_count;
	bool check_known;           /* the target's check, read */
	uint8_t check[PP_CHECK_SIZE_MAX];
	bool queued;                /* handed to the workers */
	bool demoted;               /* a seed failed: fetch it instead */
} block_plan;

typedef struct fetch {
	const char *location;
	const pp_fetch_options *options;
	bool archive_out;
	bool verify_copies;         /* decode copied blocks (no sha256 given) */
	pp_archive *target;
	pp_remote *remote;
	pp_seed **seeds;
	size_t seed_count;
	pp_bmap bmap;
	bool have_bmap;
	uint64_t zeros_length;      /* range_of_zeros: a length, and */
	uint8_t zeros_sha256[32];   /* ... the digest of that many zeros */
	/* What is wanted: blocks [first, end); raw output: image [from, to). */
	size_t first, end;
	uint64_t from, to;
	uint64_t out_size;
	block_plan *plans;          /* indexed by block number */
	pp_extent_list *layouts;    /* stored extents, per block */
	bool *wholly_stored;
	/* The output. */
	int out_fd;                 /* the partial, or a temporary file */
	bool holes;
	bool resumed;
	pp_fetch_state *state;
	pp_fetch_done *done;
	int spill_fd;               /* where fetched bytes land */
	/* Counters for the progress line and the report. */
	atomic_uint_fast64_t done_bytes, seeded_bytes, zero_bytes,
		resumed_bytes, fetched_blocks, seeded_blocks;
	bool digest_failed;         /* complete, and not what was asked */
	struct pp_fetch_digest *digest;  /* --sha256: hashing as blocks land */
} fetch;

/* A block larger than this is never taken from a seed (it would be held
 * whole in memory once per worker): it is fetched and decoded as a stream. */
#define PP_FETCH_BUFFERED_MAX ((uint64_t)64 << 20)

/* Where a block's bytes are in the output, and how many (fetchrun.c,
 * which writes them; fetch.c asks too, to check an earlier run's). */
void pp_fetch_output_span(const fetch *f, size_t block, uint64_t *at,
			  uint64_t *len);

/* fetchrun.c: brings in the bytes the plans need and writes every block
 * of [first, end); blocks whose seed fails are fetched in a second round. */
int pp_fetch_run(fetch *f, pp_error *err);
/* The file ranges a block still needs from the server. */
int pp_fetch_wants(const fetch *f, size_t block, pp_range **wants,
		   size_t *count, size_t *capacity, pp_error *err);
/* Calls the progress function with the counters as they are. */
void pp_fetch_report_progress(fetch *f);

#endif
