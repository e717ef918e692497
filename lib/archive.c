/*
 * archive.c - an archive handle's lifetime: open (by path, or on the
 * caller's pp_io), dup, close.
 *
 * Opening finds the size, finishes or refuses an interrupted patch through
 * the undo record (journal.c), asks the registry which container the
 * first bytes mean (format.c) and has it read the index into the block
 * table.  A file opened by path adds only what a path has: the lock and
 * the undo record's place beside the file.  Handles made by pp_dup share
 * everything opening produced; each has its own reading state, which the
 * layers above keep in the handle's slots (archive.h) and pp_close frees
 * through them.  In the archive layer of lib/LAYERS: it calls the
 * registry, the undo record and the layers below, never read.c or map.c.
 */
#include "archive.h"
#include "archio.h"
#include "error.h"
#include "format.h"
#include "journal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int identify(pp_archive *archive, pp_error *err)
{
	uint8_t head[16] = { 0 };
	size_t len = (size_t)PP_MIN(sizeof head, archive->file_size);
	if (len == 0)
		return pp_fail(err, PP_ERR_FORMAT, "%s: file is empty",
			       archive->path);
	if (pp_archive_read(archive, head, len, 0))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     archive->path);
	archive->ops = pp_container_probe(head, len);
	if (archive->ops)
		return 0;
	char names[100];
	pp_container_names(names, sizeof names);
	return pp_fail(err, PP_ERR_FORMAT, "%s: not an %s file", archive->path,
		       names);
}

/* One patcher at a time; readers wait for it (see pp_open). */
static int lock_archive(pp_archive *archive, pp_error *err)
{
	int operation = (archive->flags & PP_OPEN_WRITE) ? LOCK_EX : LOCK_SH;
	if (archive->flags & PP_OPEN_NO_WAIT)
		operation |= LOCK_NB;
	while (flock(archive->fd, operation)) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return pp_fail(err, PP_ERR_BUSY, "%s: locked by another "
				       "process", archive->path);
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot lock",
				     archive->path);
	}
	return 0;
}

/* What only a path has: open, check it is a file, lock, name the record. */
static int open_path(pp_archive *archive, pp_error *err)
{
	int write = archive->flags & PP_OPEN_WRITE;
	pp_archive_use_fd(archive, open(archive->path,
					(write ? O_RDWR : O_RDONLY) | O_CLOEXEC));
	struct stat st;
	if (archive->fd < 0 || fstat(archive->fd, &st))
		return pp_fail_errno(err, PP_ERR_IO, "%s", archive->path);
	if (S_ISDIR(st.st_mode))
		return pp_fail(err, PP_ERR_USAGE, "%s: is a directory",
			       archive->path);
	if (!S_ISREG(st.st_mode))
		return pp_fail(err, PP_ERR_USAGE, "%s: not a regular file",
			       archive->path);
	/* The undo record is ".NAME.partpatch-undo" beside the archive. */
	if (!(archive->flags & PP_OPEN_PRIVATE) &&
	    !(archive->undo_path = pp_undo_path_beside(archive->path)))
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	return lock_archive(archive, err);
}

/* The size from the io, or the first offset a 1-byte read fails at. */
static int find_size(pp_archive *archive, pp_error *err)
{
	if (archive->io.size) {
		if (archive->io.size(archive->io.opaque, &archive->file_size))
			return pp_fail_errno(err, PP_ERR_IO, "%s: cannot get "
					     "the size", archive->path);
		return 0;
	}
	uint8_t byte;
	uint64_t low = 0, high = 1;   /* byte low-1 reads, byte high-1 not */
	while (high < (UINT64_C(1) << 62) &&
	       pp_archive_read(archive, &byte, 1, high - 1) == 0) {
		low = high;
		high *= 2;
	}
	while (high - low > 1) {
		uint64_t mid = low + (high - low) / 2;
		if (pp_archive_read(archive, &byte, 1, mid - 1) == 0)
			low = mid;
		else
			high = mid;
	}
	archive->file_size = low;
	return 0;
}

int pp_recover(const char *path, bool *recovered, pp_error *err)
{
	pp_archive archive = { .flags = PP_OPEN_WRITE, .path = (char *)path };
	*recovered = false;
	int status = open_path(&archive, err);
	if (status == 0)
		status = find_size(&archive, err);
	if (status == 0)
		status = pp_journal_recover(&archive, true, recovered, err);
	if (archive.fd >= 0)
		close(archive.fd);
	free(archive.undo_path);
	return status;
}

static pp_archive *new_archive(const char *name, int flags)
{
	pp_archive *archive = calloc(1, sizeof *archive);
	if (!archive)
		return NULL;
	archive->fd = -1;
	archive->flags = flags;
	archive->path = strdup(name);
	archive->shared = calloc(1, sizeof *archive->shared);
	if (!archive->path || !archive->shared) {
		free(archive->path);
		free(archive->shared);
		free(archive);
		return NULL;
	}
	atomic_init(&archive->shared->handles, 1);
	atomic_init(&archive->shared->generation, 0);
	return archive;
}

/*
 * Everything after the bytes are reachable: finish or refuse an
 * interrupted patch, then find the format and read the index.
 */
static int open_contents(pp_archive *archive, pp_error *err)
{
	bool recovered;
	/* Recovery may rewrite bytes, never the size; its record says what
	 * size the archive has. */
	int status = find_size(archive, err);
	if (status == 0 && archive->undo_path)
		status = pp_journal_recover(archive,
					    archive->flags & PP_OPEN_WRITE,
					    &recovered, err);
	if (status == 0)
		status = identify(archive, err);
	if (status == 0)
		status = archive->ops->open(archive, err);
	return status;
}

/* The end of pp_archive_open and pp_open_io, whose bytes are reachable
 * once status is 0: the contents, then the handle or nothing. */
static int finish_open(pp_archive *archive, int status, pp_archive **out,
		       pp_error *err)
{
	if (status == 0)
		status = open_contents(archive, err);
	if (status) {
		pp_close(archive);
		return status;
	}
	*out = archive;
	return 0;
}

int pp_open(const char *path, int flags, pp_archive **out, pp_error *err)
{
	*out = NULL;
	if (flags & ~(PP_OPEN_WRITE | PP_OPEN_NO_WAIT))
		return pp_fail(err, PP_ERR_USAGE, "%s: unknown open flags 0x%x",
			       path, (unsigned)flags);
	return pp_archive_open(path, flags, out, err);
}

int pp_archive_open(const char *path, int flags, pp_archive **out,
		    pp_error *err)
{
	*out = NULL;
	pp_archive *archive = new_archive(path, flags);
	if (!archive)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = open_path(archive, err);
	return finish_open(archive, status, out, err);
}

int pp_open_io(const pp_io *io, const char *name, int flags,
	       pp_archive **out, pp_error *err)
{
	*out = NULL;
	if (!io || io->version != PP_IO_VERSION || !io->pread)
		return pp_fail(err, PP_ERR_USAGE, "%s: pp_open_io needs a "
			       "pp_io of version %d with pread", name,
			       PP_IO_VERSION);
	if (flags & ~(PP_OPEN_WRITE | PP_OPEN_NO_WAIT))
		return pp_fail(err, PP_ERR_USAGE, "%s: unknown open flags 0x%x",
			       name, (unsigned)flags);
	if ((flags & PP_OPEN_WRITE) && (!io->pwrite || !io->undo_path))
		return pp_fail(err, PP_ERR_USAGE, "%s: opening for writing "
			       "needs pwrite and an undo_path (patches are "
			       "journaled)", name);
	pp_archive *archive = new_archive(name, flags);
	if (!archive)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	archive->io = *io;
	int status = 0;
	if (io->undo_path && !(archive->undo_path = strdup(io->undo_path)))
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	return finish_open(archive, status, out, err);
}

int pp_dup(pp_archive *archive, pp_archive **out, pp_error *err)
{
	*out = NULL;
	pp_archive *copy = malloc(sizeof *copy);
	char *path = strdup(archive->path);
	if (!copy || !path) {
		free(copy);
		free(path);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	*copy = *archive;
	copy->path = path;
	copy->flags &= ~PP_OPEN_WRITE;
	copy->commit_path = NULL;
	memset(copy->state, 0, sizeof copy->state);
	/* The io of a file refers to its descriptor field: the copy's. */
	if (archive->io.opaque == &archive->fd)
		copy->io.opaque = &copy->fd;
	atomic_fetch_add(&archive->shared->handles, 1);
	*out = copy;
	return 0;
}

void pp_close(pp_archive *archive)
{
	if (!archive)
		return;
	for (size_t i = 0; i < PP_SLOT_COUNT; i++)
		if (archive->state[i].release)
			archive->state[i].release(archive);
	if (archive->commit_path)  /* a copy never committed */
		unlink(archive->path);
	free(archive->commit_path);
	free(archive->path);
	if (atomic_fetch_sub(&archive->shared->handles, 1) == 1) {
		if (archive->ops && archive->ops->release)
			archive->ops->release(archive);
		if (archive->fd >= 0)
			close(archive->fd);
		free(archive->undo_path);
		free(archive->blocks);
		free(archive->shared);
	}
	free(archive);
}
