/*
 * partpack.h - standard .xz and .gz archives of disk images that stay
 * editable in place.
 *
 * An archive written by pp_pack() is an ordinary .xz or .gz file made of
 * fixed-size, independently decodable blocks.  Byte ranges the caller asks
 * to keep raw (a /boot partition, say) are written as stored data: LZMA2
 * uncompressed chunks in .xz, deflate stored blocks in .gz, with block
 * boundaries on the range edges.  pp_patch() later overwrites bytes of the
 * uncompressed image inside such a range, in place, and fixes the checks the
 * format carries (CRC-32, CRC-64 or SHA-256) from the changed bytes alone.
 *
 * All functions that can fail return 0 on success and a negative
 * enum pp_status on failure, with a one-line message in *err (which may be
 * NULL if the caller does not want it).
 */
#ifndef PARTPACK_H
#define PARTPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PP_VERSION "0.1.0"

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
};

#define PP_ERROR_MAX 512
typedef struct pp_error {
	enum pp_status status;
	char message[PP_ERROR_MAX];
} pp_error;

enum pp_format { PP_FORMAT_XZ = 1, PP_FORMAT_GZIP = 2 };

/* Integrity checks.  xz offers all of these; gzip always uses CRC-32. */
enum pp_check {
	PP_CHECK_NONE = 0,
	PP_CHECK_CRC32 = 1,
	PP_CHECK_CRC64 = 4,
	PP_CHECK_SHA256 = 10,   /* the values are xz's check IDs */
};

/* A half-open byte range [offset, offset + length) of the uncompressed image. */
typedef struct pp_range {
	uint64_t offset;
	uint64_t length;
} pp_range;

/* Called now and then during long work; total is 0 when unknown. */
typedef void (*pp_progress_fn)(void *opaque, uint64_t done, uint64_t total);

/* Receives one-line notices (e.g. "retrying with TCG"); by default they
 * are dropped.  Process-wide; set it before other calls. */
typedef void (*pp_notice_fn)(void *opaque, const char *message);
void pp_set_notice_handler(pp_notice_fn handler, void *opaque);

/* Receives progress of long work that happens inside other calls: the one
 * scanning pass pp_open makes over a gzip file partpack did not write.
 * Process-wide, like the notice handler. */
void pp_set_progress_handler(pp_progress_fn handler, void *opaque);

/* ---- selectors: what to keep raw ------------------------------------- */

/*
 * Resolves selectors to byte ranges of the image:
 *   START:END, START+LENGTH   byte ranges (decimal, K/M/G/T and KiB.. suffixes)
 *   partN, /dev/sdaN, name:N  a partition of the image's GPT or MBR
 *   /MOUNTPOINT, label:L, uuid:U   found with libguestfs
 * image_fd reads the partition table; pass -1 for a pipe, and then only
 * byte ranges resolve.  image_path names the image in messages and is what
 * libguestfs opens (NULL for a pipe).  One libguestfs handle serves all
 * selectors, launched only if some selector needs it.  *ranges (free() it)
 * has one entry per selector, in order.
 */
int pp_resolve_selectors(const char *image_path, int image_fd,
			 uint64_t image_size, const char *const *selectors,
			 size_t count, pp_range **ranges, pp_error *err);

/* Parses "16MiB", "4k", "1000" into bytes.  Returns 0 or PP_ERR_USAGE. */
int pp_parse_size(const char *text, uint64_t *bytes);

/* ---- writing ---------------------------------------------------------- */

typedef struct pp_pack_options {
	enum pp_format format;     /* PP_FORMAT_XZ (default) or PP_FORMAT_GZIP */
	enum pp_check check;       /* xz: CRC32, CRC64 (default), SHA256 */
	int level;                 /* 0..9, default 6 */
	bool extreme;              /* xz -e */
	uint64_t block_size;       /* default 16 MiB */
	unsigned threads;          /* 0: one per online core */
	const pp_range *keep;      /* ranges to store uncompressed; any order */
	size_t keep_count;
	pp_progress_fn progress;
	void *progress_opaque;
} pp_pack_options;

#define PP_DEFAULT_BLOCK_SIZE (16u << 20)

void pp_pack_options_init(pp_pack_options *options);

/*
 * Reads the image from in_fd to its end and writes the archive to out_fd.
 * in_name and out_name only label error messages.  The output is the same
 * bytes for any thread count.
 */
int pp_pack(int in_fd, const char *in_name, int out_fd, const char *out_name,
	    const pp_pack_options *options, pp_error *err);

/* ---- reading and patching -------------------------------------------- */

typedef struct pp_archive pp_archive;

enum pp_open_flags {
	PP_OPEN_READ = 0,
	PP_OPEN_WRITE = 1,        /* for pp_patch */
	PP_OPEN_NO_WAIT = 2,      /* fail with PP_ERR_BUSY instead of waiting */
	PP_OPEN_PRIVATE = 4,      /* set by pp_open_copy: no undo record */
};

/*
 * Opens an .xz or .gz archive (format found from its content).  It takes
 * a lock (shared for reading, exclusive for writing) held until pp_close.
 * An interrupted patch is undone first when opening for writing; opening
 * for reading fails while one is pending.
 */
int pp_open(const char *path, int flags, pp_archive **archive, pp_error *err);
void pp_close(pp_archive *archive);

/* Undoes an interrupted patch of the archive at path, if there is one,
 * without parsing the archive.  *recovered says whether there was. */
int pp_recover(const char *path, bool *recovered, pp_error *err);

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
} pp_info;

/* The archive's format, found from its content. */
int pp_get_format(pp_archive *archive, enum pp_format *format, pp_error *err);

/* Fills *info; free it with pp_info_free(). */
int pp_get_info(pp_archive *archive, pp_info *info, pp_error *err);
void pp_info_free(pp_info *info);

const char *pp_format_name(enum pp_format format);
const char *pp_check_name(enum pp_check check);

/* Decodes every block and compares every check, sizes and the index. */
int pp_verify(pp_archive *archive, pp_progress_fn progress, void *opaque,
	      pp_error *err);

/* Reads uncompressed bytes, decoding only the blocks that hold them. */
int pp_pread(pp_archive *archive, void *buf, size_t len, uint64_t offset,
	     pp_error *err);

enum pp_patch_flags {
	PP_PATCH_DRY_RUN = 1,     /* check and report, write nothing */
};

/* What a patch did (or, with PP_PATCH_DRY_RUN, would do). */
typedef struct pp_patch_report {
	uint64_t data_bytes;       /* image bytes overwritten */
	uint64_t blocks_touched;   /* blocks whose check was updated */
	uint64_t first_block;      /* index of the first of them */
	uint64_t undo_bytes;       /* old bytes saved to the undo record */
} pp_patch_report;

/*
 * Overwrites [offset, offset + len) of the uncompressed image with data,
 * in place.  Every byte of the range must be stored data, or nothing is
 * written and PP_ERR_NOT_STORED is returned.  The checks of the touched
 * blocks are updated.  The old bytes are saved to an undo record before
 * the first write, so an interrupted patch can be undone (pp_open does it
 * on the next open for writing).  report may be NULL.
 */
int pp_patch(pp_archive *archive, uint64_t offset, const void *data,
	     size_t len, int flags, pp_patch_report *report, pp_error *err);

/*
 * Copies source to a temporary file beside dest (a reflink clone where the
 * filesystem can, else a copy) and opens the copy for patching.  Nothing is
 * visible at dest until pp_commit(); pp_close() without it removes the
 * copy.  This is how one base archive is stamped into many variants.
 */
int pp_open_copy(const char *source, const char *dest, pp_archive **archive,
		 pp_error *err);
/* Syncs a copy made by pp_open_copy and renames it to its destination. */
int pp_commit(pp_archive *archive, pp_error *err);

/*
 * Finds a partition (partN, /dev/sdaN, name:NAME) in the partition table
 * of the archive's image, decoding only the blocks that hold the table.
 */
int pp_locate_partition(pp_archive *archive, const char *selector,
			pp_range *range, pp_error *err);

/*
 * The length of the stored run that starts at offset (0 if offset is not
 * stored), so a caller can bound how much data it accepts.
 */
int pp_stored_run(pp_archive *archive, uint64_t offset, uint64_t *length,
		  pp_error *err);

#ifdef __cplusplus
}
#endif
#endif
