/*
 * archio.c - the archive's bytes: every read and write of an archive (by
 * the containers, the undo record, the patcher, the readers) goes through
 * the pp_io it was opened on, the caller's (pp_open_io) or that of its
 * file descriptor, made here (pp_archive_use_fd).  In the table layer of
 * lib/LAYERS: under the containers and the undo record, over io.c alone.
 */
#include "archio.h"
#include "archive.h"
#include "error.h"
#include "io.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

int pp_archive_read(const pp_archive *archive, void *buf, size_t len,
		    uint64_t offset)
{
	return archive->io.pread(archive->io.opaque, buf, len, offset);
}

int pp_archive_read_or_fail(const pp_archive *archive, void *buf, size_t len,
			    uint64_t offset, pp_error *err)
{
	if (pp_archive_read(archive, buf, len, offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot read byte %"
				     PRIu64, archive->path, offset);
	return 0;
}

int pp_archive_write(pp_archive *archive, const void *buf, size_t len,
		     uint64_t offset)
{
	if (!archive->io.pwrite) {
		errno = EBADF;
		return -1;
	}
	return archive->io.pwrite(archive->io.opaque, buf, len, offset);
}

int pp_archive_sync(pp_archive *archive)
{
	return archive->io.flush ? archive->io.flush(archive->io.opaque) : 0;
}

int pp_archive_file_id(const pp_archive *archive, pp_file_id *id,
		       pp_error *err)
{
	*id = (pp_file_id){ .owner = (uint32_t)geteuid() };
	if (archive->fd < 0)
		return 0;  /* on callbacks: no file */
	struct stat st;
	struct statfs fs;
	if (fstat(archive->fd, &st))
		return pp_fail_errno(err, PP_ERR_IO, "%s", archive->path);
	*id = (pp_file_id){
		.device = (uint64_t)st.st_dev,
		.inode = (uint64_t)st.st_ino,
		.owner = (uint32_t)st.st_uid,
	};
	if (fstatfs(archive->fd, &fs) == 0)
		id->filesystem = (uint64_t)(uint32_t)fs.f_fsid.__val[0] |
			(uint64_t)(uint32_t)fs.f_fsid.__val[1] << 32;
	return 0;
}

/* ---- the I/O of a file descriptor ------------------------------------- */

static int fd_pread(void *opaque, void *buf, size_t len, uint64_t offset)
{
	return pp_pread_full(*(const int *)opaque, buf, len, offset);
}

static int fd_pwrite(void *opaque, const void *buf, size_t len,
		     uint64_t offset)
{
	return pp_pwrite_full(*(const int *)opaque, buf, len, offset);
}

static int fd_flush(void *opaque)
{
	return fdatasync(*(const int *)opaque);
}

static int fd_size(void *opaque, uint64_t *size)
{
	struct stat st;
	if (fstat(*(const int *)opaque, &st))
		return -1;
	*size = (uint64_t)st.st_size;
	return 0;
}

void pp_archive_use_fd(pp_archive *archive, int fd)
{
	archive->fd = fd;
	archive->io = (pp_io){
		.version = PP_IO_VERSION,
		.opaque = &archive->fd,
		.pread = fd_pread,
		.pwrite = fd_pwrite,
		.flush = fd_flush,
		.size = fd_size,
	};
}
