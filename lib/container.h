/*
 * container.h - the seam between the library and the formats: what a
 * container (xz.c, gz.c, zstd.c) offers as pp_container_ops, and what the
 * containers share below it (container.c).
 *
 * The library is format-blind above this seam: a container, found through
 * the registry (format.h), describes an archive as a table of blocks
 * (blocks.h), each with its uncompressed range, its place in the file and
 * its check, and can list the stored extents of a block and decode a
 * block.  Patching, reading and verifying work on that table and on the
 * check kinds (check.h) alone.  Writing has the mirror seam: a container
 * encodes one block at a time as a pure function, so the thread pool
 * (pool.h) can run blocks in any order and still emit the same bytes.
 */
#ifndef PARTPACK_CONTAINER_H
#define PARTPACK_CONTAINER_H

#include "blocks.h"

/* What one encoded block tells the container's index. */
typedef struct pp_block_record {
	uint64_t usize;         /* uncompressed bytes */
	uint64_t fsize;         /* bytes written to the file */
	uint64_t index_size;    /* format's own size (xz: unpadded size) */
	bool stored;
	/* The block's check as written (its first 8 bytes), for an index
	 * that repeats it (zstd's seek table). */
	uint8_t check[8];
} pp_block_record;

/* What the framing of a block says about encoding its bytes anew. */
enum pp_reuse_fit {
	PP_REUSE_NO,            /* it would come out framed otherwise */
	PP_REUSE_YES,           /* framed alike: the data decides */
	/* Framed alike only if the bytes do not compress: the encoder then
	 * writes them as a stored block would, and the two look the same
	 * (a base block stored because it was kept looks like this too). */
	PP_REUSE_IF_INCOMPRESSIBLE,
};

/* Receives decoded data in order; returns 0 or a pp_status. */
typedef int (*pp_sink_fn)(void *opaque, const uint8_t *data, size_t len,
			  pp_error *err);

/* A sink that copies what it gets to dest, up to room bytes (container.c):
 * a block that decodes to more than its size fails in the container's
 * decode, and this keeps the copy inside dest until it does. */
typedef struct pp_fill_sink {
	uint8_t *dest;
	size_t filled;
	size_t room;
} pp_fill_sink;
int pp_fill_sink_fn(void *opaque, const uint8_t *data, size_t len,
		    pp_error *err);

/*
 * A format: everything the rest of the library may ask about it.  Each
 * container file (xz.c, gz.c) defines one and the registry (format.c)
 * lists them; nothing else names a format.
 *
 * The read side describes an archive as a table of blocks and can list the
 * stored extents of a block and decode one.  The write side encodes one
 * block at a time as a pure function, so the thread pool (pool.c) can run
 * blocks in any order and still emit the same bytes.
 */
typedef struct pp_container_ops {
	enum pp_format format;
	/* What the user calls it: names[0] is pp_format_name, any of them
	 * selects it (partpack -F); NULL-terminated. */
	const char *const *names;
	/* File name suffixes that say this format: suffixes[0] is what
	 * partpack appends; NULL-terminated. */
	const char *const *suffixes;
	int level_min, level_max, level_default;
	/* Bit 1 << id for each check kind the writer can write.  A format
	 * with one kind (gzip) always writes it, whatever options->check. */
	uint32_t checks;
	enum pp_check default_check;

	/* ---- writing ---- */
	/* Upper bound of an encoded block of usize bytes. */
	size_t (*block_bound)(const pp_pack_options *options, size_t usize);
	/* Encodes one block; pure and thread-safe. */
	int (*encode_block)(const pp_pack_options *options, const uint8_t *in,
			    size_t usize, bool stored, uint8_t *out,
			    size_t *out_len, pp_block_record *record,
			    pp_error *err);
	/* Writes what precedes the first block and what follows the last. */
	int (*write_header)(const pp_pack_options *options, int fd,
			    const char *name, pp_error *err);
	int (*write_trailer)(const pp_pack_options *options,
			     const pp_block_record *records, size_t count,
			     int fd, const char *name, pp_error *err);

	/* ---- reading ---- */
	/* Whether the first bytes of a file look like this format. */
	bool (*probe)(const uint8_t *head, size_t len);
	/* Parses the index and fills archive->blocks; on failure leaves no
	 * blocks (pp_archive_drop_blocks) and no state behind. */
	int (*open)(pp_archive *archive, pp_error *err);
	/* Appends the stored extents of one block, in order, to list. */
	int (*stored_extents)(pp_archive *archive, size_t block,
			      pp_extent_list *list, pp_error *err);
	/* Decodes one block from its start, feeding sink; stops early
	 * (returning 0) once `limit` bytes were fed.  Checks the stored
	 * check, and that the block decodes to exactly usize bytes
	 * (PP_ERR_FORMAT if not), only if it decoded the whole block. */
	int (*decode)(pp_archive *archive, size_t block, uint64_t limit,
		      pp_sink_fn sink, void *opaque, pp_error *err);
	/* Optional: decode with no limit, straight into buf (usize bytes),
	 * with the same verdicts.  For a format whose fast decoder wants
	 * the whole output buffer at once: pp_decode_block's callers (the
	 * workers of pp_decode_blocks, the read cache) have one already, and
	 * a second one per worker would double their memory.  Without it,
	 * pp_decode_block feeds decode's pieces into buf. */
	int (*decode_whole)(pp_archive *archive, size_t block, uint8_t *buf,
			    pp_error *err);
	/*
	 * For copying blocks of an earlier archive (reuse.c): how a block is
	 * framed against what encode_block writes for a compressed (not
	 * stored) block of its size under options -- headers, filters,
	 * dictionary, as far as the file shows them without decoding (the
	 * check kind is the caller's to compare).  Unless *fit is
	 * PP_REUSE_NO, fills *record as encode_block would have.  Whether
	 * the data is what the encoder would write is for the caller to
	 * establish.
	 */
	int (*reuse_record)(pp_archive *archive, size_t block,
			    const pp_pack_options *options,
			    pp_block_record *record, enum pp_reuse_fit *fit,
			    pp_error *err);
	/*
	 * Optional, for an archive far away (remote.c), where listing stored
	 * extents by hopping from chunk header to chunk header would cost a
	 * request per LZMA2 chunk or zstd block: the stored extents the block
	 * has if it is framed as encode_block frames a stored block of its
	 * size, from the block table alone, reading nothing.  Appends nothing
	 * when the sizes say otherwise.  The sizes back the guess but do not
	 * prove it: whoever uses bytes read by it verifies them (the block's
	 * check, a bmap's digests).
	 */
	int (*stored_layout)(pp_archive *archive, size_t block,
			     pp_extent_list *list, pp_error *err);
	/*
	 * Optional: the reader decodes every block it takes whole, which
	 * proves the block's sizes and check, so comparisons of the index
	 * with the blocks that cost a read per block (zstd's frame headers
	 * against its seek table) may be skipped.  Read-only archives only.
	 */
	void (*trust_index)(pp_archive *archive);
	/* Container-private state, freed at close. */
	void (*release)(pp_archive *archive);
} pp_container_ops;

/* write_header for a format whose blocks frame themselves, so that nothing
 * precedes the first (gzip's members, zstd's frames): writes nothing. */
int pp_write_no_header(const pp_pack_options *options, int fd,
		       const char *name, pp_error *err);
/*
 * For a container's reuse_record whose index counts a compressed block by
 * its file size (gzip, zstd): the block fits as it stands, and its record
 * is what encode_block would write for it.  Returns 0.
 */
int pp_reuse_fits_as_is(const pp_block *block, pp_block_record *record,
			enum pp_reuse_fit *fit);
/* Decodes a whole block into buf (usize bytes), comparing its check: the
 * one way the library decodes a block whole. */
int pp_decode_block(pp_archive *archive, size_t block, uint8_t *buf,
		    pp_error *err);
/* The largest block a reader decodes whole into a buffer (the workers of
 * pp_decode_blocks, the read cache, a container's decode_whole); a larger
 * one is decoded as a stream, in pieces. */
#define PP_DECODE_BUFFER_MAX ((uint64_t)32 << 20)
/* Whether the container writes one check kind only, whatever is asked. */
static inline bool pp_container_check_fixed(const pp_container_ops *c)
{
	return c->checks == (uint32_t)1 << c->default_check;
}

#endif
