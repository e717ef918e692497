/*
 * seed.h - older images a fetch takes bytes from (seed.c): an archive of
 * any format partpack reads, a raw image, a block device.  Bytes are read
 * at image offsets, zeros past the seed's end.
 *
 * Threads: pp_seed_read and pp_seed_block may run on several threads at
 * once (an archive seed lends each caller a handle of its own, pp_dup).
 */
#ifndef PARTPACK_SEED_H
#define PARTPACK_SEED_H

#include "bmap.h"
#include "check.h"

typedef struct pp_seed pp_seed;

/* Opens path: an archive when a container's probe accepts its first
 * bytes, else raw bytes (a regular file or a block device). */
int pp_seed_open(const char *path, pp_seed **seed, pp_error *err);
void pp_seed_close(pp_seed *seed);
const char *pp_seed_name(const pp_seed *seed);
/* The archive, or NULL for raw bytes. */
pp_archive *pp_seed_archive(const pp_seed *seed);
/* The bmap found beside an archive seed (as bmaptool finds one), or
 * NULL; never for raw seeds (their bytes are hashed instead). */
const pp_bmap *pp_seed_bmap(const pp_seed *seed);
/* The seed's image size. */
uint64_t pp_seed_size(const pp_seed *seed);

/* Image bytes [offset, offset + len); zeros past the end.  Decoding
 * verifies an archive seed's blocks as it goes. */
int pp_seed_read(pp_seed *seed, void *buf, size_t len, uint64_t offset,
		 pp_error *err);

/*
 * The check (of kind, as stored) of the seed's bytes [uoffset, uoffset +
 * usize): an archive seed with a block of exactly that range and kind
 * gives its stored check without decoding (*index is that block, else
 * SIZE_MAX); otherwise the bytes are read and hashed.
 */
int pp_seed_check(pp_seed *seed, const pp_check_kind *kind, uint64_t uoffset,
		  uint64_t usize, uint8_t *check, size_t *index,
		  pp_error *err);

/* The seed's block at exactly [uoffset, uoffset + usize), or SIZE_MAX. */
size_t pp_seed_block_at(const pp_seed *seed, uint64_t uoffset,
			uint64_t usize);

/* Decodes the seed's block whole into buf, comparing its check. */
int pp_seed_decode_block(pp_seed *seed, size_t block, uint8_t *buf,
			 pp_error *err);

/* Bytes [offset, offset + len) of the seed's archive file. */
int pp_seed_read_file(pp_seed *seed, void *buf, size_t len, uint64_t offset,
		      pp_error *err);

#endif
