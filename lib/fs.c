/*
 * fs.c - pp_fs: files inside a partition's filesystem, edited without a
 * virtual machine (partpack.h says what it promises).  This file holds
 * the handle, checks what callers pass, picks the engine of the
 * filesystem's kind (fs.h) and collects the changed runs.
 */
#include "fs.h"
#include "archive.h"
#include "array.h"
#include "blocks.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

void pp_fs_options_init(pp_fs_options *options)
{
	memset(options, 0, sizeof *options);
}

enum pp_fs_kind pp_fs_get_kind(const pp_fs *fs)
{
	return fs->kind;
}

/* pp_read_fn over the archive's image. */
static int read_archive(void *opaque, void *buf, size_t len, uint64_t offset)
{
	return pp_pread(opaque, buf, len, offset, NULL);
}

int pp_probe_filesystem(pp_archive *archive, const pp_range *partition,
			pp_fs_probe *found, pp_error *err)
{
	uint64_t end;
	int status = pp_archive_clip(archive, partition->offset,
				     partition->length, &end, err);
	if (status == 0 && end - partition->offset != partition->length)
		status = pp_fail(err, PP_ERR_USAGE, "%s: the partition at byte "
				 "%llu runs past the end of the image",
				 archive->path,
				 (unsigned long long)partition->offset);
	return status ? status :
		pp_probe_range(read_archive, archive, -1, partition->offset,
			       partition->length, archive->path, found, err);
}

/* The kind of a probed filesystem pp_fs edits, or PP_FS_ANY. */
static enum pp_fs_kind kind_of(const pp_fs_probe *found)
{
	if (!strcmp(found->type, "ext2") || !strcmp(found->type, "ext3") ||
	    !strcmp(found->type, "ext4"))
		return PP_FS_EXT;
	if (!strcmp(found->type, "vfat"))
		return PP_FS_VFAT;
	return PP_FS_ANY;
}

static int choose_engine(pp_fs *fs, enum pp_fs_kind wanted, pp_error *err)
{
	pp_fs_probe found;
	if (wanted != PP_FS_BYTES) {
		int status = pp_probe_filesystem(fs->archive, &fs->partition,
						 &found, err);
		if (status)
			return status;
		enum pp_fs_kind kind = kind_of(&found);
		if (kind == PP_FS_ANY || (wanted && kind != wanted))
			return pp_fail(err, PP_ERR_FORMAT, "%s: the partition at "
				       "byte %llu holds %s, not %s",
				       fs->archive->path,
				       (unsigned long long)fs->partition.offset,
				       found.type[0] ? found.type :
				       "no filesystem blkid knows",
				       wanted == PP_FS_VFAT ? "vfat" :
				       wanted == PP_FS_EXT ? "ext2/3/4" :
				       "ext2/3/4 or vfat");
		wanted = kind;
	}
	fs->kind = wanted;
	fs->engine = wanted == PP_FS_EXT ? &pp_fs_ext_engine :
		wanted == PP_FS_VFAT ? &pp_fs_vfat_engine : &pp_fs_bytes_engine;
	return 0;
}

int pp_fs_open(pp_archive *archive, const pp_range *partition,
	       const pp_fs_options *options, pp_fs **out, pp_error *err)
{
	*out = NULL;
	enum pp_fs_kind wanted = options ? options->kind : PP_FS_ANY;
	if (wanted > PP_FS_BYTES)
		return pp_fail(err, PP_ERR_USAGE, "pp_fs_open: unknown kind %d",
			       (int)wanted);
	const char *tmpdir = options && options->tmpdir ? options->tmpdir :
		getenv("TMPDIR");
	pp_fs *fs = calloc(1, sizeof *fs);
	if (!fs || !(fs->tmpdir = strdup(tmpdir && *tmpdir ? tmpdir : "/tmp"))) {
		free(fs);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	fs->archive = archive;
	fs->partition = *partition;
	int status = choose_engine(fs, wanted, err);
	if (status == 0)
		status = fs->engine->open(fs, err);
	if (status) {
		pp_fs_close(fs);
		return status;
	}
	*out = fs;
	return 0;
}

void pp_fs_close(pp_fs *fs)
{
	if (!fs)
		return;
	if (fs->engine)
		fs->engine->close(fs);
	free(fs->tmpdir);
	free(fs);
}

const char *pp_fs_bytes_path(const pp_fs *fs)
{
	return fs->kind == PP_FS_BYTES ? pp_fs_vfat_file(fs) : NULL;
}

/* ---- operations: checked here, done by the engine --------------------- */

/* A usable handle and an absolute path of sane components; *clean is the
 * path without repeated or trailing slashes (malloc'd). */
static int check_call(pp_fs *fs, const char *path, char **clean,
		      pp_error *err)
{
	if (fs->failed || fs->finished)
		return pp_fail(err, PP_ERR_USAGE, "%s: the filesystem at byte "
			       "%llu is no longer open for edits (%s)",
			       fs->archive->path,
			       (unsigned long long)fs->partition.offset,
			       fs->failed ? "an operation failed" :
			       "its changes were taken");
	if (!path || path[0] != '/')
		return pp_fail(err, PP_ERR_USAGE, "%s: a path inside the "
			       "filesystem must start with /", path ? path : "");
	char *out = malloc(strlen(path) + 1), *to = out;
	if (!out)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (const char *p = path; *p; p++) {
		if (*p == '/' && to > out && to[-1] == '/')
			continue;
		*to++ = *p;
	}
	if (to > out + 1 && to[-1] == '/')
		to--;
	*to = '\0';
	/* "." and ".." would make a path mean something else in each
	 * engine; nobody needs them in a stamp. */
	for (const char *c = out; c; c = strchr(c + 1, '/')) {
		size_t len = strcspn(c + 1, "/");
		if ((len == 1 && c[1] == '.') ||
		    (len == 2 && c[1] == '.' && c[2] == '.')) {
			free(out);
			return pp_fail(err, PP_ERR_USAGE, "%s: a path inside the "
				       "filesystem may not hold . or ..", path);
		}
	}
	*clean = out;
	return 0;
}

/* Every operation ends here: a failure leaves the handle unusable. */
static int done(pp_fs *fs, char *clean, int status)
{
	free(clean);
	if (status)
		fs->failed = true;
	return status;
}

static int put(pp_fs *fs, const char *remote, const pp_fs_source *source,
	       pp_error *err)
{
	char *clean = NULL;
	int status = check_call(fs, remote, &clean, err);
	if (status == 0 && strcmp(clean, "/") == 0)
		status = pp_fail(err, PP_ERR_USAGE, "%s: / is a directory",
				 remote);
	if (status == 0)
		status = fs->engine->put(fs, clean, source, err);
	return done(fs, clean, status);
}

int pp_fs_upload(pp_fs *fs, const char *local, const char *remote,
		 pp_error *err)
{
	pp_fs_source source = { .local = local };
	return put(fs, remote, &source, err);
}

int pp_fs_write(pp_fs *fs, const char *remote, const void *data, size_t len,
		pp_error *err)
{
	pp_fs_source source = { .data = data, .len = len };
	return put(fs, remote, &source, err);
}

int pp_fs_mkdir(pp_fs *fs, const char *path, pp_error *err)
{
	char *clean = NULL;
	int status = check_call(fs, path, &clean, err);
	if (status == 0 && strcmp(clean, "/") != 0)
		status = fs->engine->mkdir(fs, clean, err);
	return done(fs, clean, status);
}

int pp_fs_delete(pp_fs *fs, const char *path, pp_error *err)
{
	char *clean = NULL;
	int status = check_call(fs, path, &clean, err);
	if (status == 0 && strcmp(clean, "/") == 0)
		status = pp_fail(err, PP_ERR_USAGE, "%s: refusing to delete "
				 "the whole filesystem (/)", fs->archive->path);
	if (status == 0)
		status = fs->engine->remove(fs, clean, err);
	return done(fs, clean, status);
}

int pp_fs_copy_in(pp_fs *fs, const char *local, const char *remotedir,
		  pp_error *err)
{
	char *clean = NULL;
	int status = check_call(fs, remotedir, &clean, err);
	if (status == 0 && (!local || !*local))
		status = pp_fail(err, PP_ERR_USAGE, "copy-in: no local path");
	if (status == 0)
		status = fs->engine->copy_in(fs, local, clean, err);
	return done(fs, clean, status);
}

/* ---- the changes ------------------------------------------------------- */

/* Collects the ranges emitted, and passes each run on. */
typedef struct collector {
	pp_fs_change_fn fn;
	void *opaque;
	pp_range *ranges;
	size_t count;
	size_t capacity;
} collector;

static int collect(void *opaque, uint64_t offset, const void *data,
		   size_t len, pp_error *err)
{
	collector *c = opaque;
	pp_range *ranges = pp_grow(c->ranges, c->count, &c->capacity,
				   sizeof *ranges, 16);
	if (!ranges)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	c->ranges = ranges;
	/* Runs come in image order: merge the touching ones. */
	if (c->count && ranges[c->count - 1].offset +
	    ranges[c->count - 1].length == offset)
		ranges[c->count - 1].length += len;
	else
		ranges[c->count++] = (pp_range){ offset, len };
	return c->fn(c->opaque, offset, data, len, err);
}

int pp_fs_changes(pp_fs *fs, pp_fs_change_fn fn, void *opaque,
		  pp_range **written, size_t *count, pp_error *err)
{
	if (written)
		*written = NULL;
	if (count)
		*count = 0;
	if (fs->failed || fs->finished)
		return pp_fail(err, PP_ERR_USAGE, "%s: the filesystem at byte "
			       "%llu has %s: nothing to apply", fs->archive->path,
			       (unsigned long long)fs->partition.offset,
			       fs->failed ? "an operation that failed" :
			       "handed back its changes already");
	fs->finished = true;
	collector c = { .fn = fn, .opaque = opaque };
	int status = fs->engine->changes(fs, collect, &c, err);
	if (status || !written)
		free(c.ranges);
	else
		*written = c.ranges;
	if (status == 0 && count)
		*count = c.count;
	if (status)
		fs->failed = true;
	return status;
}

static int add_to_patch(void *opaque, uint64_t offset, const void *data,
			size_t len, pp_error *err)
{
	return pp_patch_add(opaque, offset, data, len, err);
}

int pp_fs_add_to_patch(pp_fs *fs, pp_patch_txn *txn, pp_range **written,
		       size_t *count, pp_error *err)
{
	return pp_fs_changes(fs, add_to_patch, txn, written, count, err);
}
