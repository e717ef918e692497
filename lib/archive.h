/*
 * archive.h - the archive handle (struct pp_archive), which every layer
 * from the containers up reads, and its lifetime (archive.c: open, dup,
 * close).  archive.c sits above the containers and the undo record, which
 * it calls as it opens an archive; the pieces below it include this
 * header for the struct alone.
 */
#ifndef PARTPACK_ARCHIVE_H
#define PARTPACK_ARCHIVE_H

#include "blocks.h"
#include "container.h"

#include <stdatomic.h>
#include <sys/types.h>

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

#endif
