/*
 * copy.c - stamping a variant: clone the base archive beside its
 * destination, patch the clone, then sync and rename it into place.
 *
 * The clone shares the base's extents where the filesystem supports
 * reflinks (btrfs, XFS), so a variant costs only the blocks the patch
 * writes; elsewhere it is a plain copy (copy_file_range, which the kernel
 * may still accelerate), and where the kernel copies nothing between the
 * two (another filesystem: a tmpfs, an artifacts mount) one by read and
 * write that keeps the source's holes.  Until the rename nobody sees a half-made file,
 * and the clone needs no undo record: a crash leaves the base untouched.
 */
#include "archive.h"
#include "error.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_IO_SIZE ((size_t)1 << 20)

/* What copy_file_range fails with where it cannot copy between these two
 * files at all (another filesystem, one that does not offer it, an old
 * kernel, a filesystem or seccomp that refuses it): a plain copy can. */
static bool kernel_copy_unsupported(int error)
{
	return error == EXDEV || error == EOPNOTSUPP || error == EINVAL ||
	       error == ENOSYS || error == EPERM;
}

/* The copy by read and write: the source's data only, so that its holes
 * stay holes (SEEK_DATA and SEEK_HOLE, as cp finds them), then the size. */
static int copy_by_reading(int from, int to, uint64_t size, const char *dest,
			   pp_error *err)
{
	pp_range *extents = NULL;
	size_t count = 0;
	uint8_t *buf = malloc(COPY_IO_SIZE);
	if (!buf)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = pp_seek_extents(from, size, &extents, &count, err);
	for (size_t i = 0; status == 0 && i < count; i++) {
		const pp_range *x = &extents[i];
		for (uint64_t done = 0; status == 0 && done < x->length;) {
			size_t len = (size_t)PP_MIN(x->length - done,
						    (uint64_t)COPY_IO_SIZE);
			uint64_t at = x->offset + done;
			if (pp_pread_full(from, buf, len, at))
				status = pp_fail_errno(err, PP_ERR_IO, "%s: cannot "
						       "read the source", dest);
			else if (pp_pwrite_full(to, buf, len, at))
				status = pp_fail_errno(err, PP_ERR_IO, "%s: cannot "
						       "write the copy", dest);
			done += len;
		}
	}
	if (status == 0 && ftruncate(to, (off_t)size))
		status = pp_fail_errno(err, PP_ERR_IO, "%s: cannot write the "
				       "copy", dest);
	free(extents);
	free(buf);
	return status;
}

/* A reflink clone (FICLONE), else the kernel's copy (copy_file_range),
 * else, where the kernel copies nothing between the two, read and write. */
static int copy_contents(int from, int to, uint64_t size, const char *dest,
			 pp_error *err)
{
	if (ioctl(to, FICLONE, from) == 0)
		return 0;
	uint64_t copied = 0;
	while (copied < size) {
		ssize_t n = copy_file_range(from, NULL, to, NULL,
					    (size_t)PP_MIN(size - copied, 1u << 30),
					    0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && kernel_copy_unsupported(errno))
			return copy_by_reading(from, to, size, dest, err);
		if (n <= 0)
			return n == 0 ?
				pp_fail(err, PP_ERR_IO, "%s: source shrank "
					"while copying", dest) :
				pp_fail_errno(err, PP_ERR_IO, "%s: cannot "
					      "write the copy", dest);
		copied += (uint64_t)n;
	}
	return 0;
}

/*
 * A new temporary file beside dest with the source's permission bits,
 * set-id bits dropped and the umask applied by the kernel, as cp gives a
 * new file (*mode); the owner may write it until pp_commit gives it *mode,
 * since pp_open_copy opens it again by name for patching.
 */
static int create_beside(const char *dest, const struct stat *source,
			 char *temp_path, mode_t *mode, pp_error *err)
{
	int to = pp_create_new_file(temp_path, source->st_mode & 0777);
	struct stat st;
	if (to < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot create a file "
				     "beside it", dest);
	if (fstat(to, &st) || fchmod(to, (st.st_mode & 0777) | S_IRUSR |
				     S_IWUSR)) {
		int status = pp_fail_errno(err, PP_ERR_IO, "%s", temp_path);
		close(to);
		unlink(temp_path);
		return status;
	}
	*mode = st.st_mode & 0777;
	return to;
}

/*
 * Clones source into a new temporary file beside dest; *temp_path is it,
 * *mode the permission bits pp_commit gives it.  The source is opened as
 * an archive first: that checks it, waits for a patch in progress (shared
 * lock) and refuses one left interrupted, so the copy is never taken of
 * half-written bytes.
 */
static int clone_beside(const char *source, const char *dest,
			char **temp_path, mode_t *mode, pp_error *err)
{
	size_t size = strlen(dest) + sizeof ".XXXXXX";
	*temp_path = malloc(size);
	if (!*temp_path)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	snprintf(*temp_path, size, "%s.XXXXXX", dest);
	pp_archive *from;
	int status = pp_open(source, PP_OPEN_READ, &from, err);
	if (status)
		return status;
	struct stat st;
	int to = -1;
	if (fstat(from->fd, &st))
		status = pp_fail_errno(err, PP_ERR_IO, "%s", source);
	else if ((to = create_beside(dest, &st, *temp_path, mode, err)) < 0)
		status = to;
	else
		status = copy_contents(from->fd, to, from->file_size, dest, err);
	if (to >= 0) {
		close(to);
		if (status)
			unlink(*temp_path);
	}
	pp_close(from);
	return status;
}

int pp_open_copy(const char *source, const char *dest, pp_archive **archive,
		 pp_error *err)
{
	*archive = NULL;
	char *temp_path = NULL;
	char *commit_path = strdup(dest);
	mode_t mode = 0;
	int status = commit_path ? clone_beside(source, dest, &temp_path,
						&mode, err) :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 0) {
		status = pp_archive_open(temp_path,
					 PP_OPEN_WRITE | PP_OPEN_PRIVATE,
					 archive, err);
		if (status)
			unlink(temp_path);
	}
	if (status == 0) {
		(*archive)->commit_path = commit_path;
		(*archive)->commit_mode = mode;
	} else {
		free(commit_path);
	}
	free(temp_path);
	return status;
}

int pp_commit(pp_archive *archive, pp_error *err)
{
	if (!archive->commit_path)
		return 0;  /* patched in place: already durable */
	if (fchmod(archive->fd, archive->commit_mode))
		return pp_fail_errno(err, PP_ERR_IO, "%s", archive->path);
	if (fsync(archive->fd))
		return pp_fail_errno(err, PP_ERR_IO, "%s: sync failed",
				     archive->commit_path);
	if (rename(archive->path, archive->commit_path))
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot rename into "
				     "place", archive->commit_path);
	/* The rename is durable once the directory is. */
	int status = 0;
	int dir_fd = pp_open_directory_of(archive->commit_path);
	if (dir_fd < 0 || fsync(dir_fd))
		status = pp_fail_errno(err, PP_ERR_IO, "%s: sync failed",
				       archive->commit_path);
	if (dir_fd >= 0)
		close(dir_fd);
	free(archive->path);
	archive->path = archive->commit_path;
	archive->commit_path = NULL;
	/* A record beside dest was left by the file the copy replaced. */
	bool removed;
	if (status == 0)
		status = pp_remove_stale_undo(archive->path, &removed, err);
	return status;
}
