/*
 * partpack.h - standard .xz, .gz and .zst archives of disk images that
 * stay editable in place.
 *
 * An archive written by pp_pack() is an ordinary .xz, .gz or .zst file made
 * of fixed-size, independently decodable blocks.  Byte ranges the caller
 * asks to keep raw (a /boot partition, say) are written as stored data:
 * LZMA2 uncompressed chunks in .xz, deflate stored blocks in .gz, raw
 * blocks in .zst, with block boundaries on the range edges.  pp_patch()
 * later overwrites bytes of the uncompressed image inside such a range, in
 * place, and fixes the checks the format carries (CRC-32, CRC-64, SHA-256
 * or XXH64) from the changed bytes alone.
 *
 * All functions that can fail return 0 on success and a negative
 * enum pp_status on failure, with a one-line message in *err (which may be
 * NULL if the caller does not want it).  Messages say what happened to
 * which file; what a user should do about it is the caller's to add.
 *
 * ABI.  libpartpack.so.0 exports exactly the functions declared here
 * (marked PP_API), under the symbol version PARTPACK_0.1.  The structs the
 * caller allocates and the library fills or reads (pp_pack_options,
 * pp_info, pp_patch_report) end in reserved room: a later version takes new
 * fields from it, so their size and the offsets of existing fields never
 * change within soname 0.  Initialise pp_pack_options with
 * pp_pack_options_init(), which zeroes the reserved room (the library
 * ignores it today; zero means "not set" for any field that replaces it).
 *
 * Threads.  Functions that take no pp_archive may be called from any
 * thread at any time.  Functions that take a pp_archive may run at the same
 * time on different archives; one pp_archive must not be used by two
 * threads at once (a handle may keep per-handle state between calls), so
 * serialise calls on it or give each thread its own handle (pp_dup, or
 * another pp_open()).  The notice
 * and progress handlers are process-wide; setting them is thread-safe
 * (see pp_set_notice_handler).  Each function below says when it differs.
 */
#ifndef PARTPACK_H
#define PARTPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The export marker of the library's functions. */
#if defined(__GNUC__) || defined(__clang__)
#define PP_API __attribute__((visibility("default")))
#else
#define PP_API
#endif

/* The version this header belongs to.  PP_VERSION_NUMBER is
 * major * 1000000 + minor * 1000 + patch, so versions compare as numbers. */
#define PP_VERSION "0.1.0"
#define PP_VERSION_MAJOR 0
#define PP_VERSION_MINOR 1
#define PP_VERSION_PATCH 0
#define PP_VERSION_NUMBER (PP_VERSION_MAJOR * 1000000u + \
			   PP_VERSION_MINOR * 1000u + PP_VERSION_PATCH)

/* The version of the library actually loaded, which may be newer than the
 * header a program was built with: the string ("0.1.0") and the number, as
 * PP_VERSION and PP_VERSION_NUMBER. */
PP_API const char *pp_version(void);
PP_API unsigned pp_version_number(void);

enum pp_status {
	PP_OK = 0,
	PP_ERR_USAGE = -1,      /* a bad argument from the caller */
	PP_ERR_IO = -2,         /* a read, write, open or sync failed */
	PP_ERR_FORMAT = -3,     /* the archive is corrupt or not supported */
	PP_ERR_NOT_STORED = -4, /* a patch range is not entirely stored data */
	PP_ERR_NOMEM = -5,
	PP_ERR_LOCATE = -6,     /* a selector could not be resolved */
	PP_ERR_CHECK = -7,      /* an integrity check does not match */
	PP_ERR_BUSY = -8,       /* another process holds the archive's lock */
	PP_ERR_RECOVERY_PENDING = -9, /* opened for reading while an interrupted
				       * patch awaits recovery (pp_recover) */
	PP_ERR_INTERNAL = -10,  /* a bug in libpartpack or a library it uses:
				 * an impossible state, not the caller's fault */
	PP_ERR_REUSE = -11,     /* PP_REUSE_STRICT: the reuse base cannot be
				 * trusted (pp_pack_options.reuse_path) */
};

/* A short description of a status ("I/O error"); "unknown status" for a
 * value not in enum pp_status.  Never NULL; a static string. */
PP_API const char *pp_strerror(int status);

#define PP_ERROR_MAX 512
typedef struct pp_error {
	enum pp_status status;
	char message[PP_ERROR_MAX];
} pp_error;

enum pp_format { PP_FORMAT_XZ = 1, PP_FORMAT_GZIP = 2, PP_FORMAT_ZSTD = 3 };

/* Integrity checks.  xz offers the first four; gzip always uses CRC-32;
 * zstd offers XXH64 (default) and none. */
enum pp_check {
	PP_CHECK_NONE = 0,
	PP_CHECK_CRC32 = 1,
	PP_CHECK_CRC64 = 4,
	PP_CHECK_SHA256 = 10,   /* the values are xz's check IDs */
	/* zstd's content checksum: the low 32 bits of XXH64, little-endian.
	 * Past xz's 4-bit IDs (0..15), so the two can never clash, and under
	 * 32, so a format's set of checks fits one uint32_t bit mask. */
	PP_CHECK_XXH64 = 16,
};

/* A half-open byte range [offset, offset + length) of the uncompressed image. */
typedef struct pp_range {
	uint64_t offset;
	uint64_t length;
} pp_range;

/* Called now and then during long work; total is 0 when unknown. */
typedef void (*pp_progress_fn)(void *opaque, uint64_t done, uint64_t total);

/* Receives one-line notices (e.g. "retrying with TCG"); by default they
 * are dropped.  Process-wide.  Thread-safe: the handler and its opaque
 * are replaced together, and once this returns no call of the previous
 * handler is still running, so its opaque may be freed.  Handlers may be
 * called from any thread calling into the library, at the same time when
 * several do; they must not set a handler themselves.  NULL removes it. */
typedef void (*pp_notice_fn)(void *opaque, const char *message);
PP_API void pp_set_notice_handler(pp_notice_fn handler, void *opaque);

/* Receives progress of long work that happens inside other calls: the one
 * scanning pass pp_open makes over a gzip file partpack did not write.
 * Process-wide and thread-safe, like the notice handler. */
PP_API void pp_set_progress_handler(pp_progress_fn handler, void *opaque);

/* ---- selectors: what to keep raw ------------------------------------- */

/*
 * Resolves selectors to byte ranges of the image:
 *   START:END, START+LENGTH   byte ranges (decimal, K/M/G/T and KiB.. suffixes)
 *   partN, /dev/sdaN, name:N  a partition of the image's GPT or MBR
 *   label:L, uuid:U           the partition whose filesystem libblkid finds
 *                             with that label or UUID; when no partition
 *                             of the table holds it, libguestfs looks
 *   /MOUNTPOINT               found with libguestfs
 * image_fd reads the partition table; pass -1 for a pipe, and then only
 * byte ranges resolve.  image_path names the image in messages and is what
 * libguestfs opens (NULL for a pipe).  One libguestfs handle serves all
 * selectors, launched only if some selector needs it; libguestfs itself
 * (libguestfs.so.0) is loaded then, not before, and its absence fails with
 * PP_ERR_LOCATE.  *ranges (free() it) has one entry per selector, in order.
 * Thread-safe.
 */
PP_API int pp_resolve_selectors(const char *image_path, int image_fd,
				uint64_t image_size,
				const char *const *selectors, size_t count,
				pp_range **ranges, pp_error *err);

/*
 * What a selector names, and so what resolves it: the one rule
 * pp_resolve_selectors, pp_locate_partition and the tools follow.
 *   PP_SELECTOR_BYTES       START:END, START+LENGTH (a malformed end is
 *                           still this kind, and refused when resolved)
 *   PP_SELECTOR_TABLE       partN, /dev/sdaN (also vda, hda), name:NAME:
 *                           an entry of the partition table
 *   PP_SELECTOR_LABEL       label:L, uuid:U: the partition whose
 *                           filesystem has it, found by probing the
 *                           partitions (libblkid), else by libguestfs
 *   PP_SELECTOR_MOUNTPOINT  /PATH outside /dev: the partition the guest's
 *                           fstab mounts there, read from an ext root,
 *                           else by libguestfs
 *   PP_SELECTOR_DEVICE      any other /dev/ path (/dev/sdb1,
 *                           /dev/mapper/...): libguestfs alone
 *   PP_SELECTOR_INVALID     none of these
 * Thread-safe.
 */
enum pp_selector_kind {
	PP_SELECTOR_INVALID = 0,
	PP_SELECTOR_BYTES = 1,
	PP_SELECTOR_TABLE = 2,
	PP_SELECTOR_LABEL = 3,
	PP_SELECTOR_MOUNTPOINT = 4,
	PP_SELECTOR_DEVICE = 5,
};
PP_API enum pp_selector_kind pp_classify_selector(const char *selector);

/* Parses "16MiB", "4k", "1000" into bytes.  Returns 0 or PP_ERR_USAGE.
 * Thread-safe. */
PP_API int pp_parse_size(const char *text, uint64_t *bytes);

/* ---- writing ---------------------------------------------------------- */

/* What pp_pack did, block by block (pp_pack_options.report). */
typedef struct pp_pack_report {
	uint64_t blocks;           /* blocks written */
	uint64_t bytes;            /* uncompressed bytes written */
	uint64_t reused_blocks;    /* copied from the reuse base */
	uint64_t reused_bytes;
	uint64_t encoded_blocks;   /* encoded here (the rest: all-zero blocks
				      that copied an earlier block's encoding) */
	uint64_t encoded_bytes;
	bool reuse_trusted;        /* the base passed its checks and probe */
	/* Room for new fields (see "ABI" above); zero today. */
	uint64_t reserved_int[8];
} pp_pack_report;

enum pp_reuse_flags {
	PP_REUSE_STRICT = 1,       /* an untrusted base fails the pack */
};

typedef struct pp_pack_options {
	enum pp_format format;     /* PP_FORMAT_XZ (default), _GZIP or _ZSTD */
	enum pp_check check;       /* xz: CRC32, CRC64 (default), SHA256;
	                              zstd: XXH64 (default) or NONE */
	int level;                 /* 0..9, default 6; zstd 1..19, default 3 */
	bool extreme;              /* xz -e */
	uint64_t block_size;       /* default 16 MiB */
	unsigned threads;          /* 0: one per online core */
	const pp_range *keep;      /* ranges to store uncompressed; any order */
	size_t keep_count;
	pp_progress_fn progress;
	void *progress_opaque;
	/* If set, also write a bmap file here (bmap-tools' format 2.0, see
	 * pp_bmap_open): the image's mapped 4 KiB blocks with a SHA-256 per
	 * range, the ranges split at the archive's block boundaries.  It took
	 * the first pointer slot of the reserved room. */
	const char *bmap_path;
	/* Room for new options (see "ABI" above): zeroed by
	 * pp_pack_options_init; a new field replaces a slot of its kind
	 * (reuse_flags, reuse_path and report took three). */
	uint64_t reuse_flags;      /* enum pp_reuse_flags */
	uint64_t reserved_int[7];
	/*
	 * An archive packed earlier from a similar image with the same
	 * options (NULL: none).  Each block whose range and bytes equal a
	 * block of it is copied from it instead of encoded; the output is
	 * still byte-identical to a pack without it.  A base written with
	 * other options or by another encoder is detected: a notice, then
	 * those blocks are encoded, or with PP_REUSE_STRICT in reuse_flags
	 * pp_pack fails with PP_ERR_REUSE.  The base is opened for reading
	 * (pp_open) for the length of the call.  Keep the same ranges: an
	 * .xz base records none, and its kept blocks are told from blocks
	 * that did not compress by their bytes alone.
	 */
	const char *reuse_path;
	pp_pack_report *report;    /* if not NULL, filled by pp_pack */
	void *reserved_ptr[1];
} pp_pack_options;

#define PP_DEFAULT_BLOCK_SIZE (16u << 20)
/*
 * The block sizes pp_pack accepts.  Below 4 KiB (a filesystem block) each
 * block's header, check and index record outweigh its data and an image
 * turns into millions of blocks; above 1 GiB a block no longer fits in
 * memory once per worker thread, and a patch re-hashes (SHA-256) or reads
 * back that much.
 */
#define PP_MIN_BLOCK_SIZE (4u << 10)
#define PP_MAX_BLOCK_SIZE (1u << 30)

/* Sets every field to its default and the reserved room to zero. */
PP_API void pp_pack_options_init(pp_pack_options *options);

/*
 * Reads the image from in_fd to its end and writes the archive to out_fd.
 * in_name and out_name only label error messages.  The output is the same
 * bytes for any thread count.  Thread-safe (it runs its own worker
 * threads; options->progress is called on the calling thread).
 */
PP_API int pp_pack(int in_fd, const char *in_name, int out_fd,
		   const char *out_name, const pp_pack_options *options,
		   pp_error *err);

/* ---- reading and patching -------------------------------------------- */

typedef struct pp_archive pp_archive;

enum pp_open_flags {
	PP_OPEN_READ = 0,
	PP_OPEN_WRITE = 1,        /* for pp_patch */
	PP_OPEN_NO_WAIT = 2,      /* fail with PP_ERR_BUSY instead of waiting */
};

/*
 * Opens an .xz, .gz or .zst archive (format found from its content).  It takes
 * a lock (shared for reading, exclusive for writing) held until pp_close.
 * An interrupted patch is undone first when opening for writing; opening
 * for reading fails with PP_ERR_RECOVERY_PENDING while one is pending.
 * Flags other than those of enum pp_open_flags fail with PP_ERR_USAGE.
 * Thread-safe; the lock is per open file description, so two handles on
 * one archive in one process exclude each other as two processes would.
 * The undo record of a patch is ".NAME.partpatch-undo" beside the file.
 * pp_open is pp_open_io on the file's descriptor, plus the lock and that
 * record's place.
 */
PP_API int pp_open(const char *path, int flags, pp_archive **archive,
		   pp_error *err);
/* Releases the handle; no other call on it may be running. */
PP_API void pp_close(pp_archive *archive);

/*
 * An archive whose bytes live elsewhere: the lower layer of an nbdkit
 * filter, an HTTP range reader, memory.  Every callback returns 0 on
 * success and -1 on failure, preferably with errno set.
 *
 *   pread    required; reads exactly len bytes at offset (fewer is a
 *            failure).  It may be called from several threads at once
 *            (pp_decode_blocks' workers, and handles made with pp_dup).
 *   pwrite   required for PP_OPEN_WRITE; writes exactly len bytes.
 *   flush    makes the writes so far durable; NULL if pwrite already is.
 *   size     the archive's size in bytes.  NULL: found with 1-byte preads
 *            (a binary search), which needs pread to fail past the end.
 *
 * undo_path names the file that holds the undo record of a patch (see
 * pp_patch): writable archives are journaled like files are, so opening
 * for writing without one is refused (PP_ERR_USAGE).  With one, opening
 * undoes an interrupted patch first (for writing) or fails while one is
 * pending (for reading), as pp_open does.  There is no lock: keeping two
 * writers apart is the caller's business.  The struct is copied; opaque
 * must stay valid until pp_close.  Set version to PP_IO_VERSION and the
 * reserved fields to zero (later versions may give them a meaning).
 */
#define PP_IO_VERSION 1
typedef struct pp_io {
	unsigned version;
	void *opaque;
	int (*pread)(void *opaque, void *buf, size_t len, uint64_t offset);
	int (*pwrite)(void *opaque, const void *buf, size_t len,
		      uint64_t offset);
	int (*flush)(void *opaque);
	int (*size)(void *opaque, uint64_t *size);
	const char *undo_path;
	/* Room for new fields (see "ABI" above): set them to zero. */
	uint64_t reserved_int[4];
	void *reserved_ptr[4];
} pp_io;

/* name labels messages ("nbd:export", a URL ...).  Flags as pp_open's.
 * Thread-safe. */
PP_API int pp_open_io(const pp_io *io, const char *name, int flags,
		      pp_archive **archive, pp_error *err);

/*
 * A handle is for one thread at a time (see "Threads": its block cache is
 * not locked).  pp_dup gives another handle on the same archive, for
 * another thread, sharing the block table and the I/O (no second open,
 * no second scan of a foreign gzip file), with a cache of its own; the
 * archive is released when the last of its handles is closed.  A
 * duplicate is read-only.  After a patch through one handle the others
 * see the new bytes: the patch makes every handle drop what it decoded
 * before (readers and the patcher must still take turns: no handle may be
 * reading while another patches).  No other call on archive may run
 * during pp_dup.
 */
PP_API int pp_dup(pp_archive *archive, pp_archive **copy, pp_error *err);

/* Undoes an interrupted patch of the archive at path, if there is one,
 * without parsing the archive.  *recovered says whether there was.
 * A record is replayed only onto the file it was made for: one that names
 * another file, another size or other contents (a repack to the same
 * name), or an entry past the end, fails with PP_ERR_FORMAT and changes
 * nothing; one not owned by the archive's owner, or not a regular file,
 * is ignored with a notice.  A read error on the record fails and keeps
 * it.  Thread-safe (it takes the archive's exclusive lock). */
PP_API int pp_recover(const char *path, bool *recovered, pp_error *err);

/*
 * Removes the undo record beside the file at path (".NAME.partpatch-undo",
 * see pp_open), if there is one, without reading it: for a program that
 * has just put a new archive at path (a pack renamed into place), beside
 * which a record can only be stale, left by the file that was replaced.
 * A notice names what was removed; *removed says whether anything was.
 * Never call it for an archive that may have an interrupted patch of its
 * own.  Thread-safe.
 */
PP_API int pp_remove_stale_undo(const char *path, bool *removed,
				pp_error *err);

typedef struct pp_info {
	enum pp_format format;
	enum pp_check check;       /* of the first block; gzip: CRC32 */
	bool mixed_checks;         /* xz streams with different check types */
	uint64_t uncompressed_size;
	uint64_t compressed_size;  /* the archive file's size */
	uint64_t block_count;
	uint64_t block_size;       /* the largest block's uncompressed size */
	pp_range *stored;          /* patchable ranges, merged where adjacent */
	size_t stored_count;
	/* Room for new fields (see "ABI" above); zero today. */
	uint64_t reserved_int[8];
	void *reserved_ptr[4];
} pp_info;

/* From here on, every function taking a pp_archive follows the rule under
 * "Threads" above: concurrent on different archives, one thread at a time
 * on any one archive. */

/* The archive's format, found from its content. */
PP_API int pp_get_format(pp_archive *archive, enum pp_format *format,
			 pp_error *err);

/* Fills *info; free it with pp_info_free(). */
PP_API int pp_get_info(pp_archive *archive, pp_info *info, pp_error *err);
PP_API void pp_info_free(pp_info *info);

/* Static strings ("xz", "crc64"); thread-safe. */
PP_API const char *pp_format_name(enum pp_format format);
PP_API const char *pp_check_name(enum pp_check check);

/* One block of an archive, as `xz -lvv` lists them. */
typedef struct pp_block_info {
	uint64_t uoffset;          /* in the uncompressed image */
	uint64_t usize;
	uint64_t foffset;          /* of its first byte in the archive file */
	uint64_t fsize;            /* all of its bytes, headers and check */
	enum pp_check check;
	uint64_t stored_bytes;     /* how many of usize are patchable */
	/* Room for new fields (see "ABI" above): an array element's size
	 * never changes; zero today. */
	uint64_t reserved_int[4];
} pp_block_info;

/* The archive's blocks in file order; *blocks is malloc'd (free() it). */
PP_API int pp_list_blocks(pp_archive *archive, pp_block_info **blocks,
			  size_t *count, pp_error *err);

/*
 * The formats partpack knows, for callers that must not name them: each
 * answers from the library's one table of formats.  0 means no format.
 * Thread-safe: they read constant tables.
 */
/* The index-th format (0 is the default, PP_FORMAT_XZ); 0 past the last. */
PP_API enum pp_format pp_format_at(size_t index);
/* The format a name selects ("xz", "gzip", "gz"), or 0. */
PP_API enum pp_format pp_format_from_name(const char *name);
/* The format a file name's suffix says (".xz", ".gz", ".tgz"), or 0. */
PP_API enum pp_format pp_format_from_path(const char *path);
/* The format whose signature the first bytes of a file carry, or 0. */
PP_API enum pp_format pp_format_of_head(const void *head, size_t len);
/* The suffix to append for a format (".xz"), or NULL. */
PP_API const char *pp_format_suffix(enum pp_format format);
/* A format's compression levels: 0, or PP_ERR_USAGE if it is unknown. */
PP_API int pp_format_levels(enum pp_format format, int *min, int *max,
			    int *default_level);
/* The check a format writes by default (gzip: its only one, CRC32). */
PP_API enum pp_check pp_format_default_check(enum pp_format format);

/* Decodes every block and compares every check, sizes and the index;
 * progress is called on the calling thread. */
PP_API int pp_verify(pp_archive *archive, pp_progress_fn progress,
		     void *opaque, pp_error *err);

/*
 * Reads uncompressed bytes.  Stored data is read straight from the archive
 * (no decoding, and no check is compared); other blocks are decoded whole,
 * their check compared, and kept in the handle's cache, so that the next
 * read inside them costs a copy.
 */
PP_API int pp_pread(pp_archive *archive, void *buf, size_t len,
		    uint64_t offset, pp_error *err);

/* The byte budget of the handle's cache of decoded blocks (default
 * PP_DEFAULT_CACHE_SIZE; 0 keeps nothing).  A block larger than the budget
 * is decoded for each read. */
#define PP_DEFAULT_CACHE_SIZE (64u << 20)
PP_API int pp_set_cache_size(pp_archive *archive, uint64_t bytes,
			     pp_error *err);

/*
 * The image as extents, from the index alone (no decoding), the way
 * SEEK_DATA or NBD block status see it:
 *   PP_EXTENT_STORED  stored data: its bytes lie verbatim at file_offset
 *                     (and can be patched)
 *   PP_EXTENT_DATA    compressed data; file_offset is its block's start
 *   PP_EXTENT_ZERO    all zeros, known without decoding (lib/map.md says
 *                     how); file_offset is its block's start
 * Extents cover [offset, offset + length) clipped to the image, in order,
 * adjacent ones of a kind merged.  *extents is malloc'd (free() it).
 */
enum pp_extent_kind {
	PP_EXTENT_DATA = 0,
	PP_EXTENT_STORED = 1,
	PP_EXTENT_ZERO = 2,
};
typedef struct pp_map_extent {
	uint64_t offset;
	uint64_t length;
	enum pp_extent_kind kind;
	uint64_t file_offset;
	/* Room for new fields (see "ABI" above); zero today. */
	uint64_t reserved_int[2];
} pp_map_extent;
PP_API int pp_map(pp_archive *archive, uint64_t offset, uint64_t length,
		  pp_map_extent **extents, size_t *count, pp_error *err);

/* How pp_extract treats runs of zeros in its output (as cp --sparse).
 * AUTO and ALWAYS both leave holes where the index says zeros (those
 * blocks are not even decoded) and for every aligned 4 KiB of zeros in
 * decoded data, as cp --sparse=auto does for a sparse source (a disk
 * image is one); ALWAYS is cp's other spelling of it. */
enum pp_sparse {
	PP_SPARSE_AUTO = 0,       /* holes for zeros, found or known */
	PP_SPARSE_ALWAYS = 1,     /* the same */
	PP_SPARSE_NEVER = 2,      /* write every byte */
};

typedef struct pp_extract_options {
	unsigned threads;          /* decoding workers; 0: one per online core */
	enum pp_sparse sparse;     /* holes only ever in a regular file */
	pp_progress_fn progress;   /* called on the calling thread */
	void *progress_opaque;
	/* Room for new options (see "ABI" above): zeroed by
	 * pp_extract_options_init. */
	uint64_t reserved_int[8];
	void *reserved_ptr[4];
} pp_extract_options;

/* Sets every field to its default and the reserved room to zero. */
PP_API void pp_extract_options_init(pp_extract_options *options);

/*
 * Writes bytes [offset, offset + length) of the image (clipped to its end)
 * to out_fd from its current position, decoding only the blocks that hold
 * them, in parallel, and writing them in order: the bytes are the same for
 * any thread count.  On a regular file (not opened O_APPEND) runs of zeros
 * may become holes, and the file is cut to the end of what was written.
 * A block too large to buffer (a foreign .xz of one block, a gzip file of
 * one member) is decoded as a stream, with a notice.  out_name labels
 * messages.
 */
PP_API int pp_extract(pp_archive *archive, uint64_t offset, uint64_t length,
		      int out_fd, const char *out_name,
		      const pp_extract_options *options, pp_error *err);

/*
 * pp_extract into an image file of another format: format is qemu's name
 * ("qcow2", "vmdk", "vdi", "vhdx"; "raw" or NULL is pp_extract itself).
 * The bytes are written with holes to an unlinked temporary file in
 * $TMPDIR (default /var/tmp), then converted by `qemu-img convert` into
 * out_fd, a regular file that is replaced whole; blocks of zeros stay
 * unallocated in the image.  Needs qemu-img (Debian package qemu-utils).
 */
PP_API int pp_extract_image(pp_archive *archive, uint64_t offset,
			    uint64_t length, int out_fd, const char *out_name,
			    const char *format,
			    const pp_extract_options *options, pp_error *err);

enum pp_patch_flags {
	PP_PATCH_DRY_RUN = 1,     /* check and report, write nothing */
};

/* What a patch did (or, with PP_PATCH_DRY_RUN, would do), summed over
 * all the ranges of a transaction. */
typedef struct pp_patch_report {
	uint64_t data_bytes;       /* image bytes overwritten (each counted
	                              once where ranges overlap) */
	uint64_t blocks_touched;   /* blocks whose check was updated */
	uint64_t first_block;      /* index of the first of them */
	uint64_t undo_bytes;       /* old bytes saved to the undo record */
	/* Room for new fields (see "ABI" above); zero today. */
	uint64_t reserved_int[4];
} pp_patch_report;

/*
 * A patch transaction: any number of ranges of the uncompressed image,
 * written in place all at once, or not at all.
 *
 * pp_patch_begin starts one on an archive opened with PP_OPEN_WRITE (or,
 * with PP_PATCH_DRY_RUN in flags, any archive); flags other than those of
 * enum pp_patch_flags are refused (PP_ERR_USAGE), for pp_patch too.  pp_patch_add copies
 * [offset, offset + len) of new bytes into it; a range with any byte that
 * is not stored data is refused (PP_ERR_NOT_STORED, PP_ERR_USAGE past the
 * end of the image) and nothing of it is kept, while the ranges added
 * before stay.  Where ranges overlap, the one added later wins.
 *
 * pp_patch_commit first checks every block the transaction touches
 * against its stored check (one read of each such block; a block holding
 * compressed data is decoded): a block that is already corrupt refuses the
 * whole transaction with PP_ERR_CHECK naming it, and nothing is written.
 * It then saves the old bytes of everything it will overwrite, checks
 * included, to one undo record beside the archive, writes all ranges,
 * updates each touched block's check once, and syncs once.  An interrupted
 * commit is undone by the next pp_open for writing (or pp_recover): the
 * archive ends with all of the transaction or none of it.  With
 * PP_PATCH_DRY_RUN it checks everything and fills report, writing nothing.
 * report may be NULL.  Commit frees the transaction, whatever it returns;
 * pp_patch_abort frees one without writing anything.  A transaction uses
 * its archive: the archive's thread rules cover it, and the archive must
 * stay open until the transaction is committed or aborted.
 */
typedef struct pp_patch_txn pp_patch_txn;

PP_API int pp_patch_begin(pp_archive *archive, int flags,
			  pp_patch_txn **txn, pp_error *err);
PP_API int pp_patch_add(pp_patch_txn *txn, uint64_t offset, const void *data,
			size_t len, pp_error *err);
PP_API int pp_patch_commit(pp_patch_txn *txn, pp_patch_report *report,
			   pp_error *err);
PP_API void pp_patch_abort(pp_patch_txn *txn);

/*
 * Overwrites [offset, offset + len) of the uncompressed image with data,
 * in place: the transaction of that one range (data is not copied).  Every
 * byte of the range must be stored data, or nothing is written and
 * PP_ERR_NOT_STORED is returned; a touched block that is already corrupt
 * gives PP_ERR_CHECK.  The checks of the touched blocks are updated.  The
 * old bytes are saved to an undo record before the first write, so an
 * interrupted patch can be undone (pp_open does it on the next open for
 * writing).  report may be NULL.
 */
PP_API int pp_patch(pp_archive *archive, uint64_t offset, const void *data,
		    size_t len, int flags, pp_patch_report *report,
		    pp_error *err);

/*
 * Copies source to a temporary file beside dest (a reflink clone where the
 * filesystem can, else a copy) and opens the copy for patching.  Nothing is
 * visible at dest until pp_commit(); pp_close() without it removes the
 * copy.  This is how one base archive is stamped into many variants.
 * Thread-safe, as pp_open.
 */
PP_API int pp_open_copy(const char *source, const char *dest,
			pp_archive **archive, pp_error *err);
/* Syncs a copy made by pp_open_copy and renames it to its destination. */
PP_API int pp_commit(pp_archive *archive, pp_error *err);

/*
 * Finds a partition (partN, /dev/sdaN, name:NAME) in the partition table
 * of the archive's image, decoding only the blocks that hold the table;
 * label:LABEL and uuid:UUID name the partition whose filesystem libblkid
 * finds with that label or UUID (pp_probe_filesystem on each partition:
 * no appliance).
 */
PP_API int pp_locate_partition(pp_archive *archive, const char *selector,
			       pp_range *range, pp_error *err);

/* A partition of an image's GPT or MBR partition table. */
typedef struct pp_partition_info {
	unsigned number;        /* 1-based, as in /dev/sda1 */
	uint64_t offset;        /* bytes */
	uint64_t length;
	char name[112];         /* GPT name in UTF-8 (36 UTF-16 units), "" for MBR */
	/* Room for new fields (see "ABI" above); zero today. */
	uint64_t reserved_int[4];
} pp_partition_info;

/*
 * Lists the partitions of the archive's image in number order, decoding
 * only the blocks that hold the table; *parts is malloc'd (free() it) and
 * NULL when there are none.  An image without a partition table fails
 * with PP_ERR_FORMAT.
 */
PP_API int pp_list_partitions(pp_archive *archive, pp_partition_info **parts,
			      size_t *count, pp_error *err);
/* The same for a seekable image file of image_size bytes (image_name
 * labels messages). */
PP_API int pp_list_image_partitions(int image_fd, uint64_t image_size,
				    const char *image_name,
				    pp_partition_info **parts, size_t *count,
				    pp_error *err);

/*
 * The length of the stored run that starts at offset (0 if offset is not
 * stored), so a caller can bound how much data it accepts.
 */
PP_API int pp_stored_run(pp_archive *archive, uint64_t offset,
			 uint64_t *length, pp_error *err);

/* ---- sources: images of any format qemu reads ------------------------- */

/*
 * An image to pack, opened by path: a raw file or block device, read
 * directly (holes found with SEEK_DATA), or any image qemu reads (qcow2,
 * vmdk, vhdx, vdi ...): qemu-nbd (Debian package qemu-utils) serves the
 * guest's disk read-only and libnbd reads it, over several connections
 * when the server allows multi-conn, with holes from NBD block status
 * (base:allocation).  Packing one gives the same bytes as packing its raw
 * image.
 *
 * format NULL: the format is qemu-img's answer (`qemu-img info`), never
 * the name's suffix; without qemu-img installed, raw.  Otherwise format is
 * qemu's name for it, forced ("raw" reads the file as it is, whatever it
 * holds).  A backing chain is followed read-only as qemu does, local
 * backing files only, and every file of it must pass `qemu-img check`: a
 * corrupt or truncated image, or one qemu cannot open (encrypted, a
 * backing file missing), fails with PP_ERR_FORMAT and qemu's words.
 * flags must be 0 (room for later).
 *
 * Threads: pp_source_open is thread-safe.  The calls that take a source
 * may run on several threads at once on one source (its reads are
 * independent); pp_source_close must not run with any of them.
 */
typedef struct pp_source pp_source;

PP_API int pp_source_open(const char *path, const char *format, int flags,
			  pp_source **source, pp_error *err);
/* Stops qemu-nbd, if it was started; no other call on source may run. */
PP_API void pp_source_close(pp_source *source);

typedef struct pp_source_info {
	const char *format;        /* qemu's name: "raw", "qcow2"; valid
				      until pp_source_close */
	uint64_t size;             /* of the guest's disk, in bytes */
	bool direct;               /* read from the file itself (raw), not
				      through qemu-nbd */
	/* Room for new fields (see "ABI" above); zero today. */
	uint64_t reserved_int[8];
	void *reserved_ptr[4];
} pp_source_info;

PP_API int pp_source_get_info(pp_source *source, pp_source_info *info,
			      pp_error *err);
/* Reads exactly len bytes of the guest's disk at offset. */
PP_API int pp_source_pread(pp_source *source, void *buf, size_t len,
			   uint64_t offset, pp_error *err);
/* pp_resolve_selectors on a source: the partition table is read through
 * it, and libguestfs opens the file with its format. */
PP_API int pp_source_resolve_selectors(pp_source *source,
				       const char *const *selectors,
				       size_t count, pp_range **ranges,
				       pp_error *err);
/* pp_list_image_partitions on a source. */
PP_API int pp_source_list_partitions(pp_source *source,
				     pp_partition_info **parts, size_t *count,
				     pp_error *err);
/*
 * pp_pack reading source: the same archive as pp_pack of its raw image.
 * Blocks are read on the worker threads, each through a connection of
 * its own.  Thread rules as pp_pack's; the source must stay open.
 */
PP_API int pp_pack_source(pp_source *source, int out_fd, const char *out_name,
			  const pp_pack_options *options, pp_error *err);

/* ---- files inside a partition's filesystem --------------------------- */

/*
 * What libblkid finds at the start of a partition: the filesystem type as
 * blkid names it ("ext4", "vfat", "xfs", "crypto_LUKS"; "" for nothing
 * known), its label and UUID ("" when it has none).
 */
typedef struct pp_fs_probe {
	char type[32];
	char version[32];       /* "FAT32", "1.0"; "" when blkid says none */
	char label[256];
	char uuid[64];
	/* Room for new fields (see "ABI" above); zero today. */
	uint64_t reserved_int[4];
	void *reserved_ptr[2];
} pp_fs_probe;

/*
 * Probes the filesystem in [partition->offset, + length) of the archive's
 * image with libblkid.  Only the first MiB of the partition is read
 * (through pp_pread, so the block cache serves it), into a sparse
 * temporary file of the partition's size that blkid probes.  Nothing
 * found is not an error: found->type is "".
 */
PP_API int pp_probe_filesystem(pp_archive *archive, const pp_range *partition,
			       pp_fs_probe *found, pp_error *err);

/*
 * Editing files in the filesystem of a partition of an archive, with no
 * virtual machine, and handing back the changed bytes of the image:
 *
 *   pp_fs_open(archive, &partition, &options, &fs)
 *   pp_fs_upload(fs, "grub-a.cfg", "/grub/grub.cfg"), pp_fs_mkdir(...)...
 *   pp_fs_changes(fs, callback)   each changed run of the image, once
 *   pp_fs_close(fs)
 *
 * Nothing reaches the archive: the caller adds the runs to a patch
 * transaction (pp_fs_add_to_patch does exactly that), hands them to its
 * own writer, or drops them, so an edit lands whole or not at all, in one
 * transaction with whatever else the caller writes.
 *
 * ext2, ext3 and ext4 are edited in process by libext2fs (e2fsprogs'
 * library), reading the image through pp_pread and keeping every write in
 * memory; the writes are those the kernel would make (only the primary
 * superblock and group descriptors are rewritten).  A filesystem whose
 * journal needs recovery, that has errors recorded or that uses
 * multi-mount protection is refused.  vfat (FAT12/16/32, long names) is
 * edited by mtools on a copy of the partition's bytes in a temporary file,
 * the changed bytes found by comparing.  PP_FS_BYTES gives only that copy
 * (pp_fs_bytes_path) for a program of the caller's to edit.
 *
 * Paths inside the filesystem are absolute ("/grub/grub.cfg").  An
 * operation that fails (no such directory, no space left) leaves the
 * handle unusable: pp_fs_changes refuses it, so nothing of a failed edit
 * can be applied.  A handle uses its archive: the archive's thread rules
 * cover it, and the archive must stay open until pp_fs_close.  The vfat
 * and bytes kinds run processes (mtools) with argument vectors, never a
 * shell.
 */
enum pp_fs_kind {
	PP_FS_ANY = 0,          /* pp_fs_open: ext or vfat, as probed */
	PP_FS_EXT = 1,          /* ext2, ext3, ext4 */
	PP_FS_VFAT = 2,         /* FAT12, FAT16, FAT32 */
	PP_FS_BYTES = 3,        /* any bytes: a temporary file to edit */
};

typedef struct pp_fs_options {
	enum pp_fs_kind kind;
	const char *tmpdir;     /* for temporary files; NULL: $TMPDIR or /tmp */
	/* Room for new options (see "ABI" above): zeroed by
	 * pp_fs_options_init. */
	uint64_t reserved_int[8];
	void *reserved_ptr[4];
} pp_fs_options;

typedef struct pp_fs pp_fs;

/* Sets every field to its default and the reserved room to zero. */
PP_API void pp_fs_options_init(pp_fs_options *options);
/* Opens the filesystem in the partition; PP_ERR_FORMAT when it is not of
 * the kind asked for (with PP_FS_ANY: neither ext nor vfat), naming what
 * blkid found.  options may be NULL. */
PP_API int pp_fs_open(pp_archive *archive, const pp_range *partition,
		      const pp_fs_options *options, pp_fs **fs, pp_error *err);
/* The kind opened (never PP_FS_ANY). */
PP_API enum pp_fs_kind pp_fs_get_kind(const pp_fs *fs);
/* Copies the local file local to remote (replacing its content if it
 * exists, keeping its mode and owner; else mode 0644, owner 0:0). */
PP_API int pp_fs_upload(pp_fs *fs, const char *local, const char *remote,
			pp_error *err);
/* Writes len bytes of data to the file remote, as pp_fs_upload does. */
PP_API int pp_fs_write(pp_fs *fs, const char *remote, const void *data,
		       size_t len, pp_error *err);
/* Makes the directory path and its parents (mode 0755, owner 0:0); an
 * existing directory is not an error. */
PP_API int pp_fs_mkdir(pp_fs *fs, const char *path, pp_error *err);
/* Removes path, recursively; a path that does not exist is not an error
 * (rm -rf).  "/" is refused. */
PP_API int pp_fs_delete(pp_fs *fs, const char *path, pp_error *err);
/* Copies the local file or directory local (recursively: files,
 * directories and symbolic links, with their modes, owners and
 * modification times) into the existing directory remotedir. */
PP_API int pp_fs_copy_in(pp_fs *fs, const char *local, const char *remotedir,
			 pp_error *err);
/* PP_FS_BYTES: the temporary file holding the partition's bytes, which
 * may be edited in place (not resized) until pp_fs_changes.  NULL for the
 * other kinds. */
PP_API const char *pp_fs_bytes_path(const pp_fs *fs);

/*
 * Finishes the edit and hands each changed run of the image to fn, in
 * image order, once: offset in the image (not the partition), the new
 * bytes, their length.  fn returns 0 to go on, else a pp_status that
 * pp_fs_changes returns.  Refused after a failed operation, and for
 * PP_FS_BYTES when the file's size changed.  *written (if not NULL) gets
 * the runs' ranges (malloc'd, free() it) and *count their number, for a
 * bmap (pp_bmap_patched).  Call it once; afterwards only pp_fs_close.
 */
typedef int (*pp_fs_change_fn)(void *opaque, uint64_t offset,
			       const void *data, size_t len, pp_error *err);
PP_API int pp_fs_changes(pp_fs *fs, pp_fs_change_fn fn, void *opaque,
			 pp_range **written, size_t *count, pp_error *err);
/* pp_fs_changes adding every run to txn (pp_patch_add): a run that is
 * not stored data fails with PP_ERR_NOT_STORED naming its offset. */
PP_API int pp_fs_add_to_patch(pp_fs *fs, pp_patch_txn *txn,
			      pp_range **written, size_t *count,
			      pp_error *err);
/* Releases the handle and its temporary files; the archive is untouched. */
PP_API void pp_fs_close(pp_fs *fs);

/* ---- bmap files and digests ------------------------------------------- */

/*
 * A bmap file (bmap-tools' format 2.0, what `bmaptool copy --bmap` reads)
 * lists the mapped 4 KiB blocks of an image with a SHA-256 per range.
 * pp_pack writes one (pp_pack_options.bmap_path); these keep it true as
 * the archive is patched:
 *
 *   pp_bmap_open(archive, path, &bmap)     parse and check it (the file's
 *                                          own checksum, the image size)
 *   pp_patch(...), pp_commit(...)
 *   pp_bmap_patched(bmap, archive, ranges) the image ranges written: they
 *                                          become mapped, and the ranges
 *                                          there are hashed again
 *   pp_bmap_save(bmap, path)               write it atomically
 *
 * Open it before patching, so a bad bmap stops the run before the archive
 * changes; save it after the archive is committed.  After an interrupted
 * patch, once the archive is recovered (old or new), pp_bmap_recovered
 * brings a bmap back in line with it from the stored ranges alone (the only
 * bytes a patch can change): it hashes again every range meeting them and
 * maps the non-zero blocks there.
 */
typedef struct pp_bmap pp_bmap;

PP_API int pp_bmap_open(pp_archive *archive, const char *path,
			pp_bmap **bmap, pp_error *err);
PP_API int pp_bmap_patched(pp_bmap *bmap, pp_archive *archive,
			   const pp_range *ranges, size_t count, pp_error *err);
/* *changed says whether the bmap did not match the archive. */
PP_API int pp_bmap_recovered(pp_bmap *bmap, pp_archive *archive,
			     bool *changed, pp_error *err);
PP_API int pp_bmap_save(pp_bmap *bmap, const char *path, pp_error *err);
PP_API void pp_bmap_close(pp_bmap *bmap);

/*
 * The SHA-256 of the uncompressed image (decoding every block) and of the
 * archive file itself, as sha256sum would print them for the decompressed
 * image and for the file.  Either pointer may be NULL.
 */
PP_API int pp_digest(pp_archive *archive, uint8_t image_sha256[32],
		     uint8_t file_sha256[32], pp_progress_fn progress,
		     void *opaque, pp_error *err);

/* ---- remote archives and fetching -------------------------------------- */

/*
 * Opens the archive at an http://, https:// or s3:// URL for reading, as
 * pp_open opens a file, in a few range requests: the file's first and
 * last bytes (where every format keeps its header and index), then what
 * the calls made on it need.  Stored extents are the ones the index's
 * sizes imply (see pp_fetch), so pp_get_info reads nothing more.  Only
 * PP_OPEN_READ (and PP_OPEN_NO_WAIT, which changes nothing: there is no
 * lock) is accepted.  s3://BUCKET/KEY is signed with AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) for AWS_REGION (or
 * AWS_DEFAULT_REGION, else us-east-1), at AWS_ENDPOINT_URL/BUCKET/KEY
 * when that is set.  Errors name the URL and the HTTP status.  The
 * archive's reads may run on several threads, as pp_dup allows.
 * Thread-safe.
 */
PP_API int pp_open_url(const char *url, int flags, pp_archive **archive,
		       pp_error *err);

/* What pp_fetch did. */
typedef struct pp_fetch_report {
	uint64_t requests;         /* HTTP requests, the index's included */
	uint64_t fetched_bytes;    /* bytes received */
	uint64_t seeded_bytes;     /* output bytes taken from the seeds */
	uint64_t zero_bytes;       /* image bytes known to be zeros, not
				      fetched (raw output) */
	uint64_t resumed_bytes;    /* kept from an interrupted run */
	uint64_t fetched_blocks;   /* blocks fetched whole or in part */
	uint64_t seeded_blocks;
	uint64_t output_bytes;     /* the size of the result */
	/* Room for new fields (see "ABI" above); zero today. */
	uint64_t reserved_int[8];
} pp_fetch_report;

/* Where a fetch stands, for a progress line. */
typedef struct pp_fetch_progress {
	uint64_t done_bytes;       /* output bytes in place */
	uint64_t total_bytes;      /* the output's size */
	uint64_t seeded_bytes;
	uint64_t fetched_bytes;
	uint64_t requests;
	/* Room for new fields (see "ABI" above); zero today. */
	uint64_t reserved_int[4];
} pp_fetch_progress;
typedef void (*pp_fetch_progress_fn)(void *opaque,
				     const pp_fetch_progress *progress);

enum pp_fetch_flags {
	PP_FETCH_ARCHIVE = 1,      /* write the archive itself, byte for
				      byte, instead of its image */
	PP_FETCH_NO_BMAP = 2,      /* do not look for IMAGE.bmap beside it */
	PP_FETCH_FORCE = 4,        /* replace an existing output */
};

typedef struct pp_fetch_options {
	uint64_t flags;            /* enum pp_fetch_flags */
	/* Older images: archives of any format, raw images, block devices.
	 * Tried in order for each block (or bmap range). */
	const char *const *seeds;
	size_t seed_count;
	/* A bmap of the image (URL or path); NULL: the one beside the
	 * archive, if any, as bmaptool finds it (ARCHIVE.bmap, then with
	 * one suffix after another removed). */
	const char *bmap;
	/* 64 hex digits: the SHA-256 the result must have (the image's,
	 * or the archive file's with PP_FETCH_ARCHIVE); NULL: none. */
	const char *sha256;
	unsigned connections;      /* at once; 0: 4 */
	unsigned threads;          /* decoding; 0: one per online core */
	enum pp_sparse sparse;     /* holes in a raw output file */
	/* The image bytes wanted (not with PP_FETCH_ARCHIVE); length
	 * UINT64_MAX: to the end, as pp_pack_options_init sets it. */
	uint64_t offset;
	uint64_t length;
	pp_fetch_progress_fn progress;   /* called on the calling thread */
	void *progress_opaque;
	pp_fetch_report *report;   /* if not NULL, filled */
	/* Room for new options (see "ABI" above): zeroed by
	 * pp_fetch_options_init. */
	uint64_t reserved_int[8];
	void *reserved_ptr[4];
} pp_fetch_options;

/* Sets every field to its default and the reserved room to zero. */
PP_API void pp_fetch_options_init(pp_fetch_options *options);

/*
 * Writes the image of the archive at location (a URL or a path) to
 * out_path, fetching only what the seeds do not already hold.
 *
 * Identity.  A block of the archive is taken from a seed when the seed's
 * bytes at the same image offset have the block's check (CRC-32, CRC-64,
 * SHA-256 or XXH64, read from the archive: from its index where the format
 * keeps it there, else in a small request) and size; a seed that is an
 * archive with the same block there compares its own stored check, without
 * decoding.  With a bmap (options->bmap, or the one found beside the
 * archive) the SHA-256 of each range decides instead where it can: in
 * stored blocks, range by range, so a block with a few changed ranges
 * costs those ranges; in compressed blocks, when the seed's own bmap (beside
 * it) or its raw bytes say the ranges are the same.  Unmapped ranges are
 * zeros.  Every byte written is verified first: a fetched block by its own
 * check (decoding it), a seeded one against the target's check or the
 * bmap's digests; a seed that fails is not used and the block is fetched.
 * options->sha256 verifies the whole result.  A fetched block whose check
 * fails is PP_ERR_CHECK, naming the block; nothing of it is written.
 *
 * Requests.  Runs of needed bytes become single-range requests, merged
 * across small gaps, up to options->connections at once over kept-alive
 * connections.  A server that ignores Range is read whole, with a notice.
 *
 * Output.  The image with holes where it is zeros (options->sparse), or
 * with PP_FETCH_ARCHIVE the archive file itself, byte for byte, blocks
 * of an archive seed of the same format copied without decoding when its
 * block is the same (with options->sha256 no block is decoded: the
 * file's digest verifies them, and only when it does not match are they
 * decoded, to name the one at fault).  It is assembled in ".NAME.partcat-partial"
 * beside out_path, with ".NAME.partcat-state" saying what of it is done,
 * both created exclusively (never through a symbolic link), and renamed to
 * out_path when complete and verified: a failure leaves nothing at
 * out_path.  An interrupted or failed fetch leaves the two files, and the
 * same call later takes what they hold (verified again) and fetches the
 * rest; they are removed when the archive they describe has changed.
 * out_path is not replaced unless PP_FETCH_FORCE.
 *
 * Thread-safe; it runs its own threads, and progress on the calling
 * thread.
 */
PP_API int pp_fetch(const char *location, const char *out_path,
		    const pp_fetch_options *options, pp_error *err);
/* The same, writing the image to fd (a pipe, a device: holes are written
 * as zeros; nothing to resume); out_name labels messages. */
PP_API int pp_fetch_to_fd(const char *location, int fd, const char *out_name,
			  const pp_fetch_options *options, pp_error *err);

#ifdef __cplusplus
}
#endif
#endif
