/*
 * fsbytes.c - a partition's bytes in a temporary file, and afterwards the
 * runs where the file differs from the archive.
 *
 * This is how anything that edits a filesystem image in a file (mtools,
 * a user's command) edits a partition of an archive: the file is the
 * partition as it is, the tool changes it, and the bytes that differ
 * become the patch.  Runs of zeros are left as holes, so a mostly empty
 * partition costs little disk, and reading a hole back is free.
 */
#include "fs.h"
#include "archive.h"
#include "error.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHUNK ((size_t)1 << 20)

struct pp_fs_bytes {
	pp_archive *archive;
	pp_range partition;
	char *path;
	int fd;
};

static int copy_partition(pp_fs_bytes *bytes, uint8_t *buf, pp_error *err)
{
	if (ftruncate(bytes->fd, (off_t)bytes->partition.length))
		return pp_fail_errno(err, PP_ERR_IO, "%s", bytes->path);
	for (uint64_t done = 0; done < bytes->partition.length;) {
		size_t n = (size_t)PP_MIN(CHUNK, bytes->partition.length - done);
		int status = pp_pread(bytes->archive, buf, n,
				      bytes->partition.offset + done, err);
		if (status)
			return status;
		if (!pp_all_zero(buf, n) &&
		    pp_pwrite_full(bytes->fd, buf, n, done))
			return pp_fail_errno(err, PP_ERR_IO, "%s", bytes->path);
		done += n;
	}
	return 0;
}

int pp_fs_bytes_open(pp_archive *archive, const pp_range *partition,
		     const char *tmpdir, pp_fs_bytes **out, pp_error *err)
{
	*out = NULL;
	pp_fs_bytes *bytes = calloc(1, sizeof *bytes);
	uint8_t *buf = malloc(CHUNK);
	if (bytes)
		bytes->path = malloc(strlen(tmpdir) + 32);
	if (!bytes || !buf || !bytes->path) {
		free(buf);
		if (bytes)
			free(bytes->path);
		free(bytes);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	bytes->archive = archive;
	bytes->partition = *partition;
	sprintf(bytes->path, "%s/partpack-partition.XXXXXX", tmpdir);
	bytes->fd = mkostemp(bytes->path, O_CLOEXEC);
	int status = bytes->fd < 0 ?
		pp_fail_errno(err, PP_ERR_IO, "%s", bytes->path) :
		copy_partition(bytes, buf, err);
	free(buf);
	if (status) {
		pp_fs_bytes_close(bytes);
		return status;
	}
	*out = bytes;
	return 0;
}

const char *pp_fs_bytes_file(const pp_fs_bytes *bytes)
{
	return bytes->path;
}

int pp_fs_bytes_changes(pp_fs_bytes *bytes, pp_fs_change_fn emit,
			void *opaque, pp_error *err)
{
	struct stat st;
	/* By name: a tool may have replaced the file rather than edit it. */
	if (stat(bytes->path, &st))
		return pp_fail_errno(err, PP_ERR_IO, "%s", bytes->path);
	if ((uint64_t)st.st_size != bytes->partition.length)
		return pp_fail(err, PP_ERR_FORMAT, "%s: the partition's file "
			       "changed size (%llu bytes, now %llu): nothing "
			       "was changed", bytes->archive->path,
			       (unsigned long long)bytes->partition.length,
			       (unsigned long long)st.st_size);
	int fd = open(bytes->path, O_RDONLY | O_CLOEXEC);
	uint8_t *old = malloc(CHUNK), *now = malloc(CHUNK);
	int status = fd < 0 ? pp_fail_errno(err, PP_ERR_IO, "%s", bytes->path) :
		!old || !now ? pp_fail(err, PP_ERR_NOMEM, "out of memory") : 0;
	for (uint64_t done = 0; status == 0 && done < bytes->partition.length;) {
		size_t n = (size_t)PP_MIN(CHUNK, bytes->partition.length - done);
		uint64_t offset = bytes->partition.offset + done;
		if (pp_pread_full(fd, now, n, done))
			status = pp_fail_errno(err, PP_ERR_IO, "%s", bytes->path);
		if (status == 0)
			status = pp_pread(bytes->archive, old, n, offset, err);
		if (status == 0)
			status = pp_fs_emit_diff(old, now, n, offset, emit,
						 opaque, err);
		done += n;
	}
	if (fd >= 0)
		close(fd);
	free(old);
	free(now);
	return status;
}

void pp_fs_bytes_close(pp_fs_bytes *bytes)
{
	if (!bytes)
		return;
	if (bytes->fd >= 0) {
		unlink(bytes->path);
		close(bytes->fd);
	}
	free(bytes->path);
	free(bytes);
}
