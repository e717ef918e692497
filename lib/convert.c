/*
 * convert.c - unpacking into an image of another format (qcow2, vmdk ...).
 *
 * The bytes go first to a raw file with holes, then qemu-img convert
 * writes the image from it: qemu's own writer, which leaves unallocated
 * every cluster that reads as zeros (holes by SEEK_DATA, zeros by looking).
 * The other way, qemu-img reading the archive through nbdkit and the
 * partpack filter, took as long (29-36 s both ways for a 512 MiB image of
 * 300 MiB of binaries packed -1, 2 cores shared, load 9, December 2026):
 * the raw file was kept, as it needs neither nbdkit nor the filter, at
 * the cost of room in $TMPDIR for the image's data.  It is unlinked from
 * the start (O_TMPFILE): nothing is left behind by a crash, and qemu-img
 * opens it as /dev/fd/3.
 */
#include "archive.h"
#include "error.h"
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An unlinked file in $TMPDIR (default /var/tmp: large files, as qemu). */
static int open_scratch(pp_error *err)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/var/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR &&
			errno != EINVAL))
		return fd >= 0 ? fd : pp_fail_errno(err, PP_ERR_IO, "%s: cannot "
						    "create a temporary file",
						    dir);
	/* A filesystem without O_TMPFILE: a named file, unlinked at once. */
	char path[4096];
	snprintf(path, sizeof path, "%s/partpack-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot create a "
				     "temporary file", dir);
	unlink(path);
	return fd;
}

int pp_extract_image(pp_archive *archive, uint64_t offset, uint64_t length,
		     int out_fd, const char *out_name, const char *format,
		     const pp_extract_options *options, pp_error *err)
{
	if (!format || strcmp(format, "raw") == 0)
		return pp_extract(archive, offset, length, out_fd, out_name,
				  options, err);
	if (!pp_qemu_format_ok(format))
		return pp_fail(err, PP_ERR_USAGE, "'%s' is not an image format "
			       "name", format);
	struct stat st;
	if (fstat(out_fd, &st) || !S_ISREG(st.st_mode))
		return pp_fail(err, PP_ERR_USAGE, "%s: a %s image is written "
			       "to a regular file only", out_name, format);
	int raw = open_scratch(err);
	if (raw < 0)
		return raw;
	int status = pp_extract(archive, offset, length, raw,
				"(temporary raw image)", options, err);
	if (status == 0)
		status = pp_qemu_convert(raw, out_fd, out_name, format, err);
	close(raw);
	return status;
}
