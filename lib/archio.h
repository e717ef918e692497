/*
 * archio.h - the archive's bytes (archio.c): every read and write of an
 * archive goes through these, to the pp_io it was opened on.
 */
#ifndef PARTPACK_ARCHIO_H
#define PARTPACK_ARCHIO_H

#include "base.h"

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

#endif
