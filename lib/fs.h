/*
 * fs.h - the pieces behind pp_fs (partpack.h: files inside a partition's
 * filesystem).  fs.c holds the handle and the public calls and hands each
 * operation to the engine of the filesystem's kind:
 *
 *   fsext.c    ext2/3/4 by libext2fs, writes kept in an overlay (overlay.c)
 *   fsvfat.c   FAT by mtools on the partition's bytes in a file (fsbytes.c)
 *   fsbytes.c  the partition's bytes in a temporary file, and the runs
 *              where that file now differs from the archive
 *   probe.c    what libblkid says a partition holds
 *   fsdiff.c   the runs where new bytes differ from old ones, for both
 *              engines
 */
#ifndef PARTPACK_FS_H
#define PARTPACK_FS_H

#include "io.h"

#include <sys/stat.h>

typedef struct pp_fs_engine pp_fs_engine;

struct pp_fs {
	pp_archive *archive;
	pp_range partition;
	enum pp_fs_kind kind;
	const pp_fs_engine *engine;
	void *state;            /* the engine's */
	char *tmpdir;
	bool failed;            /* an operation failed: nothing to apply */
	bool finished;          /* pp_fs_changes ran */
};

/* What a file's content comes from: a local file or bytes in memory. */
typedef struct pp_fs_source {
	const char *local;      /* NULL: data */
	const void *data;
	size_t len;
} pp_fs_source;

/* Each engine's operations; paths are absolute and checked by fs.c. */
struct pp_fs_engine {
	int (*open)(pp_fs *fs, pp_error *err);
	int (*put)(pp_fs *fs, const char *remote, const pp_fs_source *source,
		   pp_error *err);
	int (*mkdir)(pp_fs *fs, const char *path, pp_error *err);
	int (*remove)(pp_fs *fs, const char *path, pp_error *err);
	int (*copy_in)(pp_fs *fs, const char *local, const char *remotedir,
		       pp_error *err);
	/* Finishes and hands the changed runs to emit (fs.c's collector). */
	int (*changes)(pp_fs *fs, pp_fs_change_fn emit, void *opaque,
		       pp_error *err);
	void (*close)(pp_fs *fs);
};

extern const pp_fs_engine pp_fs_ext_engine;
extern const pp_fs_engine pp_fs_vfat_engine;
extern const pp_fs_engine pp_fs_bytes_engine;
/* The file the vfat and bytes engines edit. */
const char *pp_fs_vfat_file(const pp_fs *fs);

/* ---- fsdiff.c: the runs that differ ------------------------------------ */

/*
 * Compares new bytes with old ones, both len bytes at image offset, and
 * emits each run of differing bytes; runs less than PP_FS_DIFF_GAP apart
 * are emitted as one (a patch range costs more than a few equal bytes).
 */
#define PP_FS_DIFF_GAP 32
int pp_fs_emit_diff(const uint8_t *old, const uint8_t *new_bytes, size_t len,
		    uint64_t offset, pp_fs_change_fn emit, void *opaque,
		    pp_error *err);

/* ---- fsbytes.c: the partition's bytes in a temporary file ------------- */

typedef struct pp_fs_bytes pp_fs_bytes;

/* Copies the partition into a new file in tmpdir (holes where the image
 * is zeros: read as zeros, they cost nothing to compare). */
int pp_fs_bytes_open(pp_archive *archive, const pp_range *partition,
		     const char *tmpdir, pp_fs_bytes **bytes, pp_error *err);
const char *pp_fs_bytes_file(const pp_fs_bytes *bytes);
/* The runs where the file differs from the archive; PP_ERR_FORMAT if its
 * size changed. */
int pp_fs_bytes_changes(pp_fs_bytes *bytes, pp_fs_change_fn emit,
			void *opaque, pp_error *err);
void pp_fs_bytes_close(pp_fs_bytes *bytes);

/* ---- fsext.c: a look inside without a pp_fs --------------------------- */

/* The file path of the ext filesystem in [offset, offset + length) of an
 * image read through read_at: its first max bytes in *data (malloc'd, a
 * NUL after them).  1 when there is no such file. */
int pp_ext_read_file(pp_read_fn read_at, void *opaque, uint64_t offset,
		     uint64_t length, const char *image_name, const char *path,
		     size_t max, char **data, size_t *len, pp_error *err);

/* ---- probe.c ---------------------------------------------------------- */

/* Probes bytes [offset, offset + length): of the file fd when fd >= 0
 * (blkid reads it directly), else read through read_at into a sparse
 * temporary file. */
int pp_probe_range(pp_read_fn read_at, void *opaque, int fd, uint64_t offset,
		   uint64_t length, const char *image_name, pp_fs_probe *found,
		   pp_error *err);
/* label:LABEL or uuid:UUID against what a probe found. */
bool pp_probe_matches(const pp_fs_probe *found, const char *selector);

#endif
