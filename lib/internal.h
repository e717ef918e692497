/*
 * internal.h - what the pieces of libpartpack share and nothing else does.
 *
 * The library is format-blind above one seam: a container (xz.c, gz.c),
 * found through the registry (format.c), describes an archive as a table of
 * blocks, each with its uncompressed range, its place in the file and its
 * check, and can list the stored extents of a block and decode a block.
 * Patching, reading and verifying (patch.c, archive.c) work on that table
 * and on the check kinds (check.c) alone.  Writing has the mirror seam: a
 * container encodes one block at a time as a pure function, so the thread
 * pool (pool.c) can run blocks in any order and still emit the same bytes.
 */
#ifndef PARTPACK_INTERNAL_H
#define PARTPACK_INTERNAL_H

#include "partpack.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/types.h>

#define PP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PP_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- errors (error.c) ------------------------------------------------- */

/* Sets *err (if not NULL) and returns status, for `return pp_fail(...)`. */
int pp_fail(pp_error *err, enum pp_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* As pp_fail, with ": strerror(errno)" appended. */
int pp_fail_errno(pp_error *err, enum pp_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Tells the caller something it should know but that is not an error
 * (the notice handler set with pp_set_notice_handler). */
void pp_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports progress of long work to the handler of pp_set_progress_handler. */
void pp_progress(uint64_t done, uint64_t total);

/* ---- growable arrays (array.c) --------------------------------------- */

/*
 * Returns items with room for at least count + 1 of them, doubling
 * *capacity (starting at first) when full; NULL, with items untouched,
 * when memory runs out.
 */
void *pp_grow(void *items, size_t count, size_t *capacity, size_t item_size,
	      size_t first);
/*
 * The first of count sorted items for which reached(item, key) holds,
 * where it is false for some first items and true for all after them (a
 * lower bound); count when it holds for none.  The one binary search of
 * the library's sorted tables (blocks, ranges, extents, runs).
 */
size_t pp_search_first(const void *items, size_t count, size_t item_size,
		       bool (*reached)(const void *item, const void *key),
		       const void *key);
/* The first of sorted, disjoint ranges that ends after pos, or count. */
size_t pp_first_range_after(const pp_range *ranges, size_t count,
			    uint64_t pos);

/* ---- whole-buffer I/O (io.c) ------------------------------------------ */

/* Read or write exactly len bytes; -1 with errno set otherwise (EIO at EOF). */
int pp_pread_full(int fd, void *buf, size_t len, uint64_t offset);
int pp_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset);
int pp_write_full(int fd, const void *buf, size_t len);
/* An O_DIRECTORY descriptor of the directory holding path, for fsync. */
int pp_open_directory_of(const char *path);
/* "DIR/.BASE.SUFFIX" for path DIR/BASE: a hidden file beside it (the undo
 * record, a temporary file), malloc'd; NULL when out of memory. */
char *pp_hidden_path_beside(const char *path, const char *suffix);
/*
 * Creates a file that did not exist, never through a symbolic link
 * (O_CREAT | O_EXCL | O_NOFOLLOW), opened for reading and writing, and
 * checks with fstat that it is a regular file of one link owned by this
 * process.  A path ending in "XXXXXX" is a template: those characters are
 * replaced at random (path is modified) until a new name is found, as
 * mkostemp does, but with mode (before the umask) instead of 0600.
 * Returns the descriptor, or -1 with errno set (EEXIST: the name is taken).
 */
int pp_create_new_file(char *path, mode_t mode);
/* Reads up to len bytes, stopping early only at end of input, at offset
 * (or, if it is negative, at the file position). */
ssize_t pp_pread_upto(int fd, void *buf, size_t len, off_t offset);

/* The allocated extents of a regular file's bytes [base, base + size),
 * relative to base, merged: its map of holes as bmaptool create sees it
 * (FIEMAP, else SEEK_DATA and SEEK_HOLE). */
int pp_data_extents(int fd, uint64_t base, uint64_t size, pp_range **extents,
		    size_t *count, pp_error *err);
/* The data of a file's first size bytes as SEEK_DATA and SEEK_HOLE say
 * (what reads as data, as cp copies it; all of it where the filesystem
 * has no holes), merged. */
int pp_seek_extents(int fd, uint64_t size, pp_range **extents, size_t *count,
		    pp_error *err);

/* Whether len bytes are all zero: the first is, and each equals the next. */
static inline bool pp_all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static inline void pp_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline uint16_t pp_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static inline void pp_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t pp_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static inline void pp_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t pp_get_le64(const uint8_t *p)
{
	return (uint64_t)pp_get_le32(p) | (uint64_t)pp_get_le32(p + 4) << 32;
}

/* ---- CRC arithmetic (crc.c) ------------------------------------------- */

uint32_t pp_crc32(uint32_t crc, const void *buf, size_t len);
uint64_t pp_crc64(uint64_t crc, const void *buf, size_t len);
/* crc0 (zero init, no final xor) multiplied by x^(8 * zeros) mod P: the
 * change in a CRC when `zeros` bytes follow the changed bytes. */
uint32_t pp_crc32_shift(uint32_t crc0, uint64_t zeros);
uint64_t pp_crc64_shift(uint64_t crc0, uint64_t zeros);

/* ---- SHA-256 (sha256.c) ----------------------------------------------- */

typedef struct pp_sha256 {
	uint32_t state[8];
	uint64_t length;
	uint8_t block[64];
	size_t fill;
} pp_sha256;

void pp_sha256_init(pp_sha256 *ctx);
void pp_sha256_update(pp_sha256 *ctx, const void *data, size_t len);
void pp_sha256_final(pp_sha256 *ctx, uint8_t digest[32]);
/* Hashes len zero bytes (a hole, an all-zero block). */
void pp_sha256_zeros(pp_sha256 *ctx, uint64_t len);

/* ---- check kinds (check.c) ------------------------------------------- */

/* The largest check field of any format (xz reserves IDs of 64 bytes). */
#define PP_CHECK_SIZE_MAX 64

/*
 * A kind of integrity check and how a patch brings it up to date.  Every
 * function produces the bytes as stored in the file.
 */
typedef struct pp_check_kind {
	enum pp_check id;
	const char *name;           /* pp_check_name */
	size_t size;                /* bytes of the stored field */
	/* Linear checks (CRC-32, CRC-64): the change of the check when
	 * old_bytes become new_bytes, `zeros` bytes before the end of the
	 * checked data.  new check = old check xor delta, byte by byte.
	 * NULL for hashes. */
	void (*linear_delta)(uint8_t *delta, const uint8_t *old_bytes,
			     const uint8_t *new_bytes, size_t len,
			     uint64_t zeros);
	/* The check computed over a block's bytes, for every kind with a
	 * size: to verify a block before patching it, and for a hash (no
	 * linear_delta) to hash the patched block again. */
	size_t state_size;
	void (*init)(void *state);
	void (*update)(void *state, const void *data, size_t len);
	void (*final)(void *state, uint8_t *check);
	/* The check of len zero bytes, as stored (map.c's zero rule); NULL
	 * where it is not known. */
	void (*of_zeros)(uint8_t *check, uint64_t len);
} pp_check_kind;

/* The check of len bytes as stored, whatever the kind; false for "none". */
bool pp_check_compute(const pp_check_kind *kind, const uint8_t *data,
		      size_t len, uint8_t *check);
/* The kind with that ID, or NULL if it is not one partpack computes. */
const pp_check_kind *pp_check_kind_of(enum pp_check check);

/* ---- bmap files (bmap.c) --------------------------------------------- */

/*
 * A bmap (bmap-tools' format 2.0) lists the mapped blocks of an image, in
 * ranges, each with the SHA-256 of its bytes.  partpack's ranges never
 * cross a boundary of the archive's blocks, except that a 4 KiB block
 * holding such a boundary is a range of its own: so a patch re-hashes only
 * the ranges it touches, and while packing every range but those one-block
 * ones lies inside one archive block and is hashed on that block's worker.
 */
#define PP_BMAP_BLOCK_SIZE 4096
/* Ranges in stored data also end on a grid of this many bytes, so that a
 * fetch of a stored block whose bytes changed in a few places (a restamped
 * /boot) costs those ranges, not the block (fetch.c). */
#define PP_BMAP_STORED_GRID ((uint64_t)256 << 10)

typedef struct pp_bmap_range {
	uint64_t first;             /* block numbers, inclusive */
	uint64_t last;
	uint8_t sha256[32];
	bool dirty;                 /* to hash again */
} pp_bmap_range;

struct pp_bmap {
	uint64_t image_size;
	uint64_t block_size;
	pp_bmap_range *ranges;      /* in order, not overlapping */
	size_t count;
	size_t capacity;
	/* While packing: the data extents of the input (its hole map) ... */
	const pp_range *data;
	size_t data_count;
	size_t data_next;           /* the first that may meet what is left */
	bool all_data;              /* a pipe: no holes */
	bool stored;                /* the block being placed is stored */
	uint64_t next_block;        /* blocks below are placed */
	/* ... and the one-block range that spans two archive blocks, whose
	 * bytes arrive from both. */
	bool carrying;
	size_t carry_range;
	uint64_t carry_len;
	uint8_t carry[PP_BMAP_BLOCK_SIZE];
};

/* One archive block's share of the ranges, while packing. */
typedef struct pp_bmap_piece {
	size_t range;               /* index in the bmap's ranges */
	uint64_t offset;            /* the range's bytes in this block */
	uint64_t length;
	bool whole;                 /* all of the range: hashed on a worker */
	uint8_t sha256[32];
} pp_bmap_piece;

typedef struct pp_bmap_share {
	uint64_t offset;            /* of the archive block in the image */
	pp_bmap_piece *pieces;
	size_t count;
	size_t capacity;
} pp_bmap_share;

/* Starts a bmap for packing an image whose data extents (pp_data_extents)
 * are data[0..count), sorted; all_data for a pipe. */
void pp_bmap_init(pp_bmap *bmap, const pp_range *data, size_t count,
		  bool all_data);
/* Places the ranges of archive block [offset, offset + length), in image
 * order, and lists them in share.  last: the image ends with this block. */
int pp_bmap_plan(pp_bmap *bmap, pp_bmap_share *share, uint64_t offset,
		 uint64_t length, bool last, pp_error *err);
/* Hashes the ranges wholly inside the block (data: its bytes, NULL for
 * zeros).  Touches only share: safe on a worker. */
void pp_bmap_hash_share(pp_bmap_share *share, const uint8_t *data);
/* Stores the share's digests, in block order, and hashes the one-block
 * ranges that span archive blocks. */
void pp_bmap_store_share(pp_bmap *bmap, const pp_bmap_share *share,
			 const uint8_t *data);
void pp_bmap_share_free(pp_bmap_share *share);
/* The image ended at image_size: finishes the last range. */
void pp_bmap_finish(pp_bmap *bmap, uint64_t image_size);

/* Where a bmap update reads image bytes and finds archive block edges. */
typedef struct pp_bmap_source {
	void *opaque;
	int (*read)(void *opaque, void *buf, size_t len, uint64_t offset,
		    pp_error *err);
	/* The end of the archive block holding offset. */
	uint64_t (*block_end)(void *opaque, uint64_t offset);
} pp_bmap_source;

/* Makes every block meeting [offset, offset + length) mapped (new ranges
 * split at archive block edges) and marks the ranges there dirty. */
int pp_bmap_touch(pp_bmap *bmap, uint64_t offset, uint64_t length,
		  bool map, const pp_bmap_source *source, pp_error *err);
/* Whether block is in some range. */
bool pp_bmap_is_mapped(const pp_bmap *bmap, uint64_t block);
/* Hashes the dirty ranges again. */
int pp_bmap_hash_dirty(pp_bmap *bmap, const pp_bmap_source *source,
		       pp_error *err);
/* Parses the text of a bmap file (name labels messages). */
int pp_bmap_parse(pp_bmap *bmap, const char *text, size_t len,
		  const char *name, pp_error *err);
/* Writes the bmap to path atomically: a temporary file beside it,
 * fsync, rename, fsync of the directory. */
int pp_bmap_write(const pp_bmap *bmap, const char *path, pp_error *err);
/* Whether pp_bmap_write could create its temporary file beside path: a
 * pack checks before it starts, not after an hour of compressing. */
int pp_bmap_check_path(const char *path, pp_error *err);
void pp_bmap_release(pp_bmap *bmap);

/* ---- layout planning (plan.c) ----------------------------------------- */

/* Kept ranges sorted and merged, plus the block size: enough to say where
 * each block ends without knowing the image size (stdin works). */
typedef struct pp_plan {
	pp_range *stored;
	size_t stored_count;
	uint64_t block_size;
} pp_plan;

int pp_plan_init(pp_plan *plan, const pp_range *keep, size_t count,
		 uint64_t block_size, pp_error *err);
void pp_plan_free(pp_plan *plan);
/* The block that starts at pos: its length and whether it is stored. */
void pp_plan_block(const pp_plan *plan, uint64_t pos, uint64_t *length,
		   bool *stored);
/* The end of the last kept range, for checking it against the image. */
uint64_t pp_plan_end(const pp_plan *plan);

/* Random access to a disk image, for reading its partition table:
 * 0 on success, non-zero on failure. */
typedef int (*pp_read_fn)(void *opaque, void *buf, size_t len, uint64_t offset);

/* ---- partition tables (ptable.c) -------------------------------------- */

/* What partpack.h hands out as pp_partition_info. */
typedef pp_partition_info pp_partition;

/* Reads the GPT (or, failing that, the MBR) of an image.  *parts is
 * malloc'd; entries are in partition-number order, empty slots skipped. */
int pp_read_partitions(pp_read_fn read_at, void *opaque, uint64_t image_size,
		       const char *image_name, pp_partition **parts,
		       size_t *count, pp_error *err);

/* ---- containers: one object per format ------------------------------- */

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

/* One independently decodable unit with its own check. */
typedef struct pp_block {
	uint64_t uoffset;       /* in the uncompressed image */
	uint64_t usize;
	uint64_t foffset;       /* of the block's first byte in the file */
	uint64_t fsize;         /* all of its bytes, padding included */
	uint64_t check_offset;  /* file offset of its check field */
	uint64_t check_copy_offset; /* 0: none; else a second place holding
				     * the same check (zstd's seek table) */
	enum pp_check check;
	bool stored_known;      /* the index says: wholly stored (or not) */
	bool stored;
} pp_block;

/* Uncompressed bytes [uoffset, uoffset + length) lie verbatim at foffset. */
typedef struct pp_extent {
	uint64_t uoffset;
	uint64_t length;
	uint64_t foffset;
} pp_extent;

typedef struct pp_extent_list {
	pp_extent *items;
	size_t count;
	size_t capacity;
} pp_extent_list;

int pp_extent_append(pp_extent_list *list, uint64_t uoffset, uint64_t length,
		     uint64_t foffset, pp_error *err);
void pp_extent_list_free(pp_extent_list *list);

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

/* ---- helpers the containers share (container.c) ---------------------- */

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

/* ---- the registry of containers (format.c) ----------------------------- */

/* The container of a format, or NULL. */
const pp_container_ops *pp_container_of(enum pp_format format);
/* The container whose probe accepts the first bytes of a file, or NULL. */
const pp_container_ops *pp_container_probe(const uint8_t *head, size_t len);
/* "xz or gzip": every format's name, for messages. */
void pp_container_names(char *text, size_t size);
/* Whether the container writes one check kind only, whatever is asked. */
static inline bool pp_container_check_fixed(const pp_container_ops *c)
{
	return c->checks == (uint32_t)1 << c->default_check;
}

/* What the handles of one archive share (pp_dup); archive.c owns it. */
typedef struct pp_archive_shared {
	atomic_uint handles;
	atomic_ulong generation;
} pp_archive_shared;
/*
 * What a layer above the archive keeps per handle (read.c's cache, map.c's
 * zero verdicts): made on first use and put in its slot with the function
 * that frees it, so that pp_close frees it without archive.c naming its
 * owner.  A handle made by pp_dup starts with empty slots.
 */
enum pp_handle_slot { PP_SLOT_READ, PP_SLOT_MAP, PP_SLOT_COUNT };
typedef struct pp_handle_state {
	void *data;
	void (*release)(pp_archive *archive);
} pp_handle_state;

struct pp_archive {
	char *path;                 /* names the archive in messages */
	int fd;                     /* opened by path: the file; else -1 */
	int flags;
	char *commit_path;          /* pp_open_copy: where pp_commit renames to */
	mode_t commit_mode;         /* ... and the permission bits it gives */
	char *undo_path;            /* where a patch's undo record goes */
	pp_io io;                   /* where the bytes live */
	uint64_t file_size;
	const pp_container_ops *ops;
	void *container;        /* owned by ops */
	pp_block *blocks;
	size_t block_count;
	size_t block_capacity;
	pp_archive_shared *shared;  /* NULL: a bare archive of a unit test */
	pp_handle_state state[PP_SLOT_COUNT]; /* empty until first used */
};

/* A flag of pp_archive_open beside enum pp_open_flags, not offered to
 * callers: the file is a private copy (pp_open_copy), patched without an
 * undo record because a crash leaves only a temporary file behind. */
#define PP_OPEN_PRIVATE 0x10000

/* pp_open without the check of flags, so PP_OPEN_PRIVATE may be set. */
int pp_archive_open(const char *path, int flags, pp_archive **archive,
		    pp_error *err);
int pp_archive_add_block(pp_archive *archive, const pp_block *block,
			 pp_error *err);
/* Empties the block table, for a container whose open failed. */
void pp_archive_drop_blocks(pp_archive *archive);
/* Makes fd the archive's bytes (what pp_open does after opening a path);
 * unit tests use it to open a container by hand. */
void pp_archive_use_fd(pp_archive *archive, int fd);
/*
 * The archive's bytes, for the containers, the patcher and the undo record:
 * every access to the archive goes through these three, to the callbacks
 * of archive->io (a file descriptor's, or the caller's: pp_open_io).
 * 0 on success; -1 with errno set otherwise (EIO at end of file).
 * Reads may run on several threads at once.
 */
int pp_archive_read(const pp_archive *archive, void *buf, size_t len,
		    uint64_t offset);
/* pp_archive_read that fails as "PATH: cannot read byte OFFSET" (what
 * the containers say of a header, a footer or a check they must read):
 * 0 on success, else PP_ERR_IO with *err set. */
int pp_archive_read_or_fail(const pp_archive *archive, void *buf, size_t len,
			    uint64_t offset, pp_error *err);
int pp_archive_write(pp_archive *archive, const void *buf, size_t len,
		     uint64_t offset);
/* Makes the writes so far durable. */
int pp_archive_sync(pp_archive *archive);
/* What names the file an archive was opened from, for binding an undo
 * record to it (journal.c).  An archive on callbacks has no file: zero
 * device, inode and filesystem, and its owner is this process's user. */
typedef struct pp_file_id {
	uint64_t device;
	uint64_t inode;
	uint64_t filesystem;        /* statfs's f_fsid; 0 if there is none */
	uint32_t owner;             /* uid */
} pp_file_id;
int pp_archive_file_id(const pp_archive *archive, pp_file_id *id,
		       pp_error *err);
/* The size of the uncompressed image. */
uint64_t pp_archive_image_size(const pp_archive *archive);
/* The index of the block holding uncompressed offset, or block_count. */
size_t pp_archive_find_block(const pp_archive *archive, uint64_t offset);
/* Whether the container offers every byte of a block as stored data. */
int pp_archive_wholly_stored(pp_archive *archive, size_t block, bool *all,
			     pp_error *err);
/* The same, keeping the block's stored extents in *list (the caller
 * frees it, whatever the answer) for a caller that reads them. */
int pp_archive_stored_extents(pp_archive *archive, size_t block,
			      pp_extent_list *list, bool *all, pp_error *err);
/*
 * For a request of length bytes at uncompressed offset: *to is where it
 * ends, cut at the end of the image.  An offset past that end is the
 * caller's mistake (PP_ERR_USAGE); one at the end asks for nothing.
 */
int pp_archive_clip(const pp_archive *archive, uint64_t offset,
		    uint64_t length, uint64_t *to, pp_error *err);

/*
 * A patch is about to give some blocks new bytes: the generation moves,
 * so that every handle of the archive whose reading state predates it
 * drops that state (handles made by pp_dup see each other's patches).
 * Called by the patcher before its first write, which then has its own
 * handle forget those blocks (pp_read_invalidate, pp_map_invalidate).
 */
void pp_archive_new_generation(pp_archive *archive);
unsigned long pp_archive_generation(const pp_archive *archive);

/* ---- reading (read.c, cache.c, map.c, unpack.c) ------------------------ */

/* An LRU of decoded blocks under a byte budget, keyed by block index. */
typedef struct pp_cache pp_cache;
pp_cache *pp_cache_new(uint64_t budget);
void pp_cache_free(pp_cache *cache);
/* The block's bytes, now the most recently used; NULL if absent. */
const uint8_t *pp_cache_get(pp_cache *cache, size_t block, size_t *len);
/* Takes data (malloc'd, len bytes) for block, evicting the least recently
 * used blocks to stay in budget.  Returns false, leaving data to the
 * caller, if it alone exceeds the budget. */
bool pp_cache_put(pp_cache *cache, size_t block, uint8_t *data, size_t len);
/* Drops blocks [first, end), or everything with pp_cache_clear. */
void pp_cache_invalidate(pp_cache *cache, size_t first, size_t end);
void pp_cache_clear(pp_cache *cache);
/* Evicts down to a new budget. */
void pp_cache_set_budget(pp_cache *cache, uint64_t budget);
/* Bytes and blocks held. */
uint64_t pp_cache_bytes(const pp_cache *cache);
size_t pp_cache_count(const pp_cache *cache);

/* Read.c's and map.c's state of a handle: _invalidate forgets blocks
 * [first, end), which the patcher is about to write; _release frees it
 * all (at pp_close, through the handle's slot). */
void pp_read_invalidate(pp_archive *archive, size_t first, size_t end);
void pp_read_release(pp_archive *archive);
void pp_map_invalidate(pp_archive *archive, size_t first, size_t end);
void pp_map_release(pp_archive *archive);

/*
 * Whether a block is one of the all-zero blocks the index alone reveals
 * (lib/map.md), from the handle's memory of earlier verdicts or by
 * reading the block's encoded bytes, and decoding at most one block per
 * distinct encoding.
 */
int pp_map_block_is_zero(pp_archive *archive, size_t block, bool *zero,
			 pp_error *err);

/*
 * Whole blocks in order, for unpacking (pp_extract) and digests: blocks
 * [first, end) are decoded on `threads` workers (pool.c, 0: one per
 * online core) and handed to the sink in order, each as its image offset,
 * bytes and length.  Blocks known to be all zeros (pp_map_block_is_zero)
 * are not decoded: the sink gets data NULL and is_zero true.  A block
 * larger than PP_DECODE_BUFFER_MAX is not buffered whole but decoded on
 * the calling thread, its bytes fed to the sink in pieces as they come
 * (with a notice, once): an archive made of one huge block (a foreign
 * single-block .xz) still unpacks in bounded memory.  Workers read
 * through pp_archive_read, so the archive's pread must allow concurrent
 * calls (pp_io says so).
 */
#define PP_DECODE_BUFFER_MAX ((uint64_t)32 << 20)
typedef int (*pp_block_sink_fn)(void *opaque, uint64_t uoffset,
				const uint8_t *data, size_t len, bool is_zero,
				pp_error *err);
int pp_decode_blocks(pp_archive *archive, size_t first, size_t end,
		     unsigned threads, pp_block_sink_fn sink, void *opaque,
		     pp_error *err);
/* One worker per online core. */
unsigned pp_online_cores(void);

/* ---- copying blocks from an earlier archive (reuse.c) ----------------- */

typedef struct pp_reuse pp_reuse;

/*
 * Opens options->reuse_path as the base of a pack that writes with
 * container on plan's layout, and checks that its blocks can be trusted
 * (see reuse.c).  *reuse is NULL when nothing can be reused: a notice said
 * why, or, with PP_REUSE_STRICT, PP_ERR_REUSE is returned instead.
 */
int pp_reuse_open(const pp_pack_options *options,
		  const pp_container_ops *container, const pp_plan *plan,
		  pp_reuse **reuse, pp_error *err);
/*
 * For a block about to be encoded (thread-safe, called by the workers):
 * if the base holds a block with the same range and kind and the same
 * bytes, copies its encoded bytes into out (room for out_room bytes),
 * sets *out_len and *record as encode_block would, and *reused.
 */
int pp_reuse_block(pp_reuse *reuse, uint64_t uoffset, const uint8_t *in,
		   size_t usize, bool stored, uint8_t *out, size_t out_room,
		   size_t *out_len, pp_block_record *record, bool *reused,
		   pp_error *err);
/* After the last block: waits for the probe; *trusted says whether it
 * passed, a status its failure (with PP_REUSE_STRICT, PP_ERR_REUSE). */
int pp_reuse_finish(pp_reuse *reuse, bool *trusted, pp_error *err);
/* Tells what went wrong on the way (corrupt blocks), then closes. */
void pp_reuse_close(pp_reuse *reuse);

/* ---- the undo record (journal.c) ------------------------------------- */

typedef struct pp_journal pp_journal;

/* ".NAME.partpatch-undo" beside path: where a file's record goes;
 * malloc'd, NULL when out of memory. */
char *pp_undo_path_beside(const char *path);
/* The SHA-256 that binds a record to its archive (see journal.c): of the
 * first and last 64 KiB of the archive's size bytes, each byte that one
 * of the entries covers read as zero. */
int pp_journal_hash_ends(const pp_archive *archive, uint64_t size,
			 const pp_range *entries, size_t count,
			 uint8_t digest[32], pp_error *err);

int pp_journal_begin(pp_archive *archive, pp_journal **journal,
		     pp_error *err);
/* Saves the old bytes of a range about to be overwritten. */
int pp_journal_add(pp_journal *journal, uint64_t foffset, const void *old,
		   size_t len, pp_error *err);
/* Makes the record complete and durable: writes may begin after this. */
int pp_journal_commit(pp_journal *journal, pp_error *err);
/* The writes are durable: drops the record. */
int pp_journal_finish(pp_journal *journal, pp_error *err);
/* Drops a record that was never committed. */
void pp_journal_abort(pp_journal *journal);
/* Undoes a committed patch that failed half way: restores, drops. */
int pp_journal_rollback(pp_journal *journal, pp_archive *archive,
			pp_error *err);
/* Undoes an interrupted patch found beside the archive, if any, when its
 * record is bound to the archive; refuses one that is not, and ignores
 * (with a notice) one that is not the archive owner's.  archive->file_size
 * must be known. */
int pp_journal_recover(pp_archive *archive, bool may_write, bool *recovered,
		       pp_error *err);

/* ---- threads (pool.c) ------------------------------------------------- */

/*
 * Runs jobs through `threads` workers, with at most `window` jobs in
 * flight.  fill() runs on the calling thread in job order and prepares a
 * job's input, returning 1 when there is no more input; work() runs on a
 * worker; drain() runs on the calling thread in job order.  `slots` holds
 * `window` job states of slot_size bytes each.  The status of the first
 * failure, in job order, is returned.
 */
typedef struct pp_pool_ops {
	int (*fill)(void *opaque, size_t job, void *slot, pp_error *err);
	int (*work)(void *opaque, void *slot, pp_error *err);
	int (*drain)(void *opaque, size_t job, void *slot, pp_error *err);
} pp_pool_ops;

int pp_pool_run(const pp_pool_ops *ops, void *opaque, unsigned threads,
		size_t window, void *slots, size_t slot_size, pp_error *err);

#endif
