/*
 * fsext.c - ext2, ext3 and ext4 edited in process by libext2fs.
 *
 * libext2fs opens a filesystem through an io_manager: here one whose
 * reads come from the archive (pp_pread within the partition, so stored
 * data is read straight from the file and other blocks through the cache)
 * and whose writes are kept in an overlay (overlay.c) that later reads
 * see.  The operations are libext2fs's own: lookups, directory entries
 * (htree directories included), inode and block allocation, extents,
 * metadata checksums.  Closing the filesystem writes the superblock, the
 * group descriptors and the bitmaps back as the kernel would, with
 * EXT2_FLAG_MASTER_SB_ONLY: only the primary copies, not the backups of
 * every group (the kernel leaves those to resize2fs and e2fsck), so a
 * one-file stamp changes a handful of blocks.
 *
 * The journal is left alone.  Writing metadata in place is what e2fsck and
 * debugfs -w do, and it is consistent while the journal holds nothing to
 * replay; a filesystem whose journal needs recovery (not cleanly
 * unmounted) is refused, as is one with errors recorded or with
 * multi-mount protection (someone may have it mounted).
 *
 * Any failure leaves the filesystem half-edited in memory; fs.c then
 * refuses to hand back its changes, so nothing of it reaches the archive.
 */
#include "fs.h"
#include "overlay.h"
#include "archive.h"
#include "array.h"
#include "error.h"
#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct ext_state {
	pp_fs *fs;              /* NULL: a read-only look (pp_ext_read_file) */
	const char *name;       /* the image, for messages */
	uint64_t offset;        /* the filesystem's bytes in the image */
	uint64_t length;
	pp_read_fn read_at;     /* where they are read */
	void *read_opaque;
	ext2_filsys e2;
	pp_overlay *overlay;
	pp_error io_err;        /* why a read below failed */
	bool io_failed;
	uint32_t now;           /* for the times we set */
} ext_state;

/* ---- the io_manager: the archive below, the overlay on top ------------ */

static int read_below(void *opaque, void *buf, size_t len, uint64_t offset,
		      pp_error *err)
{
	ext_state *state = opaque;
	if (state->fs)      /* the archive's own message on failure */
		return pp_pread(state->fs->archive, buf, len,
				state->offset + offset, err);
	if (state->read_at(state->read_opaque, buf, len, state->offset + offset))
		return pp_fail(err, PP_ERR_IO, "%s: cannot read byte %llu of the "
			       "image", state->name,
			       (unsigned long long)(state->offset + offset));
	return 0;
}

static struct struct_io_manager partpack_io_manager;

/* The channel's name carries the state ("partpack:0x..."): ext2fs_open2
 * has no other way to hand the manager an argument. */
static errcode_t io_open(const char *name, int flags, io_channel *channel)
{
	void *state = NULL;
	(void)flags;
	if (!name || sscanf(name, "partpack:%p", &state) != 1 || !state)
		return EXT2_ET_BAD_DEVICE_NAME;
	io_channel io = calloc(1, sizeof *io);
	char *copy = strdup(name);
	if (!io || !copy) {
		free(io);
		free(copy);
		return EXT2_ET_NO_MEMORY;
	}
	io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	io->manager = &partpack_io_manager;
	io->name = copy;
	io->block_size = 1024;
	io->refcount = 1;
	io->private_data = state;
	*channel = io;
	return 0;
}

static errcode_t io_close(io_channel io)
{
	if (--io->refcount > 0)
		return 0;
	free(io->name);
	free(io);
	return 0;
}

static errcode_t io_set_blksize(io_channel io, int blksize)
{
	io->block_size = blksize;
	return 0;
}

/* count > 0 counts blocks, count < 0 bytes (libext2fs's convention). */
static bool io_span(io_channel io, unsigned long long block, int count,
		    uint64_t *offset, size_t *len)
{
	const ext_state *state = io->private_data;
	*len = count < 0 ? (size_t)-(int64_t)count :
		(size_t)count * (size_t)io->block_size;
	*offset = block * (uint64_t)io->block_size;
	uint64_t size = state->length;
	return *offset <= size && *len <= size - *offset;
}

static errcode_t io_read64(io_channel io, unsigned long long block,
			   int count, void *data)
{
	ext_state *state = io->private_data;
	uint64_t offset;
	size_t len;
	if (!io_span(io, block, count, &offset, &len))
		return EXT2_ET_LLSEEK_FAILED;
	if (pp_overlay_read(state->overlay, data, len, offset,
			    &state->io_err)) {
		state->io_failed = true;
		return EXT2_ET_SHORT_READ;
	}
	return 0;
}

static errcode_t io_write_at(io_channel io, uint64_t offset, size_t len,
			     const void *data)
{
	ext_state *state = io->private_data;
	uint64_t size = state->length;
	if (offset > size || len > size - offset)
		return EXT2_ET_LLSEEK_FAILED;
	if (pp_overlay_write(state->overlay, data, len, offset,
			     &state->io_err)) {
		state->io_failed = true;
		return EXT2_ET_SHORT_WRITE;
	}
	return 0;
}

static errcode_t io_write64(io_channel io, unsigned long long block,
			    int count, const void *data)
{
	uint64_t offset;
	size_t len;
	if (!io_span(io, block, count, &offset, &len))
		return EXT2_ET_LLSEEK_FAILED;
	return io_write_at(io, offset, len, data);
}

static errcode_t io_read(io_channel io, unsigned long block, int count,
			 void *data)
{
	return io_read64(io, block, count, data);
}

static errcode_t io_write(io_channel io, unsigned long block, int count,
			  const void *data)
{
	return io_write64(io, block, count, data);
}

static errcode_t io_write_byte(io_channel io, unsigned long offset, int count,
			       const void *data)
{
	return count < 0 ? EXT2_ET_INVALID_ARGUMENT :
		io_write_at(io, offset, (size_t)count, data);
}

static errcode_t io_flush(io_channel io)
{
	(void)io;
	return 0;
}

static errcode_t io_set_option(io_channel io, const char *option,
			       const char *arg)
{
	(void)io;
	(void)option;
	(void)arg;
	return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager partpack_io_manager = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "partpack archive",
	.open = io_open,
	.close = io_close,
	.set_blksize = io_set_blksize,
	.read_blk = io_read,
	.write_blk = io_write,
	.flush = io_flush,
	.write_byte = io_write_byte,
	.set_option = io_set_option,
	.read_blk64 = io_read64,
	.write_blk64 = io_write64,
};

/* ---- errors ------------------------------------------------------------ */

static bool out_of_space(errcode_t code)
{
	return code == EXT2_ET_BLOCK_ALLOC_FAIL ||
	       code == EXT2_ET_INODE_ALLOC_FAIL || code == EXT2_ET_DIR_NO_SPACE ||
	       code == ENOSPC;
}

/* "ARCHIVE: ext filesystem at byte N: WHAT: why", or the archive's own
 * read failure when that is what went wrong below libext2fs. */
static int ext_fail(ext_state *state, errcode_t code, pp_error *err,
		    const char *what)
{
	if (state->io_failed) {
		if (err)
			*err = state->io_err;
		return state->io_err.status;
	}
	if (out_of_space(code) && state->e2) {
		uint64_t free_kib = ext2fs_free_blocks_count(state->e2->super) *
			state->e2->blocksize / 1024;
		return pp_fail(err, PP_ERR_IO, "%s: ext filesystem at byte %llu: "
			       "%s: no space left (%llu KiB, %u inodes free); "
			       "nothing was changed", state->name,
			       (unsigned long long)state->offset, what,
			       (unsigned long long)free_kib,
			       state->e2->super->s_free_inodes_count);
	}
	return pp_fail(err, code == EXT2_ET_NO_MEMORY ? PP_ERR_NOMEM :
		       PP_ERR_FORMAT, "%s: ext filesystem at byte %llu: %s: %s",
		       state->name,
		       (unsigned long long)state->offset, what,
		       error_message(code));
}

/* ---- opening ----------------------------------------------------------- */

static int refuse_unsafe(ext_state *state, pp_error *err)
{
	struct ext2_super_block *super = state->e2->super;
	const char *why =
		ext2fs_has_feature_journal_needs_recovery(super) ?
			"its journal needs recovery (not cleanly unmounted: "
			"run e2fsck on it first)" :
		super->s_state & EXT2_ERROR_FS ?
			"it has errors recorded (run e2fsck on it first)" :
		ext2fs_has_feature_mmp(super) ?
			"it uses multi-mount protection" : NULL;
	if (!why)
		return 0;
	return pp_fail(err, PP_ERR_FORMAT, "%s: ext filesystem at byte %llu: "
		       "not edited in process: %s", state->name,
		       (unsigned long long)state->offset, why);
}

static pthread_once_t error_table_once = PTHREAD_ONCE_INIT;

/* com_err's table of libext2fs's messages, for error_message(). */
static void add_error_table_once(void)
{
	initialize_ext2_error_table();
}

/* Opens the filesystem described by state (read-write or not). */
static int open_filesystem(ext_state *state, bool writable, pp_error *err)
{
	pthread_once(&error_table_once, add_error_table_once);
	state->overlay = pp_overlay_new(read_below, state);
	if (!state->overlay)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	char name[64];
	snprintf(name, sizeof name, "partpack:%p", (void *)state);
	/* SKIP_MMP: opening read-write would otherwise write the MMP block
	 * and sleep; such filesystems are refused below instead. */
	errcode_t code = ext2fs_open2(name, NULL, (writable ? EXT2_FLAG_RW : 0) |
				      EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0,
				      0, &partpack_io_manager, &state->e2);
	if (code) {
		state->e2 = NULL;
		return ext_fail(state, code, err, "cannot open it");
	}
	return 0;
}

static int ext_open(pp_fs *fs, pp_error *err)
{
	ext_state *state = calloc(1, sizeof *state);
	if (!state)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	fs->state = state;
	*state = (ext_state){ .fs = fs, .name = fs->archive->path,
			      .offset = fs->partition.offset,
			      .length = fs->partition.length };
	int status = open_filesystem(state, true, err);
	if (status == 0)
		status = refuse_unsafe(state, err);
	if (status)
		return status;
	errcode_t code = ext2fs_read_bitmaps(state->e2);
	if (code)
		return ext_fail(state, code, err, "cannot read its bitmaps");
	/* SOURCE_DATE_EPOCH (reproducible builds) sets every time we write. */
	const char *epoch = getenv("SOURCE_DATE_EPOCH");
	char *end;
	unsigned long long when = epoch ? strtoull(epoch, &end, 10) : 0;
	if (epoch && *epoch && !*end && when <= UINT32_MAX)
		state->e2->now = (time_t)when;
	state->now = (uint32_t)(state->e2->now ? state->e2->now : time(NULL));
	return 0;
}

/* A file's first max bytes, read-only (fs.h). */
static int read_whole(ext_state *state, const char *path, size_t max,
		      char **data, size_t *len, pp_error *err)
{
	ext2_ino_t ino;
	errcode_t code = ext2fs_namei_follow(state->e2, EXT2_ROOT_INO,
					     EXT2_ROOT_INO, path, &ino);
	if (code == EXT2_ET_FILE_NOT_FOUND || code == EXT2_ET_NO_DIRECTORY)
		return 1;
	ext2_file_t file = NULL;
	if (!code)
		code = ext2fs_file_open(state->e2, ino, 0, &file);
	*data = code ? NULL : malloc(max + 1);
	unsigned got = 0;
	if (!code && !*data)
		code = EXT2_ET_NO_MEMORY;
	if (!code)
		code = ext2fs_file_read(file, *data, (unsigned)max, &got);
	if (file)
		ext2fs_file_close(file);
	if (code) {
		free(*data);
		*data = NULL;
		return ext_fail(state, code, err, path);
	}
	(*data)[got] = '\0';
	*len = got;
	return 0;
}

int pp_ext_read_file(pp_read_fn read_at, void *opaque, uint64_t offset,
		     uint64_t length, const char *image_name, const char *path,
		     size_t max, char **data, size_t *len, pp_error *err)
{
	ext_state state = { .name = image_name, .offset = offset,
			    .length = length, .read_at = read_at,
			    .read_opaque = opaque };
	*data = NULL;
	*len = 0;
	int status = open_filesystem(&state, false, err);
	if (status == 0)
		status = read_whole(&state, path, max, data, len, err);
	if (state.e2)
		ext2fs_free(state.e2);
	pp_overlay_free(state.overlay);
	return status;
}

/* ---- inodes and directory entries -------------------------------------- */

static int read_inode(ext_state *state, ext2_ino_t ino,
		      struct ext2_inode *inode, pp_error *err)
{
	errcode_t code = ext2fs_read_inode(state->e2, ino, inode);
	return code ? ext_fail(state, code, err, "cannot read an inode") : 0;
}

static int write_inode(ext_state *state, ext2_ino_t ino,
		       struct ext2_inode *inode, pp_error *err)
{
	errcode_t code = ext2fs_write_inode(state->e2, ino, inode);
	return code ? ext_fail(state, code, err, "cannot write an inode") : 0;
}

/* Sets what a copy keeps (or a new file gets): mode bits, owner, mtime. */
static int set_attributes(ext_state *state, ext2_ino_t ino, unsigned mode,
			  uint32_t uid, uint32_t gid, uint32_t mtime,
			  pp_error *err)
{
	struct ext2_inode inode;
	int status = read_inode(state, ino, &inode, err);
	if (status)
		return status;
	inode.i_mode = (uint16_t)((inode.i_mode & LINUX_S_IFMT) |
				  (mode & 07777));
	inode.i_uid = (uint16_t)uid;
	inode.osd2.linux2.l_i_uid_high = (uint16_t)(uid >> 16);
	inode.i_gid = (uint16_t)gid;
	inode.osd2.linux2.l_i_gid_high = (uint16_t)(gid >> 16);
	inode.i_mtime = mtime;
	inode.i_ctime = state->now;
	return write_inode(state, ino, &inode, err);
}

/* A directory entry's file type, from the inode's mode. */
static int entry_type(unsigned mode)
{
	switch (mode & LINUX_S_IFMT) {
	case LINUX_S_IFREG: return EXT2_FT_REG_FILE;
	case LINUX_S_IFDIR: return EXT2_FT_DIR;
	case LINUX_S_IFLNK: return EXT2_FT_SYMLINK;
	default: return EXT2_FT_UNKNOWN;
	}
}

/* The inode changed (a directory's entries, a file's bytes): its times,
 * as the kernel keeps them. */
static int touch_inode(ext_state *state, ext2_ino_t dir, pp_error *err)
{
	struct ext2_inode inode;
	int status = read_inode(state, dir, &inode, err);
	if (status)
		return status;
	inode.i_mtime = inode.i_ctime = state->now;
	return write_inode(state, dir, &inode, err);
}

/* Adds name -> ino to dir, growing dir by a block when it is full. */
static int link_entry(ext_state *state, ext2_ino_t dir, const char *name,
		      ext2_ino_t ino, unsigned mode, pp_error *err)
{
	errcode_t code = ext2fs_link(state->e2, dir, name, ino,
				     entry_type(mode));
	if (code == EXT2_ET_DIR_NO_SPACE) {
		code = ext2fs_expand_dir(state->e2, dir);
		if (!code)
			code = ext2fs_link(state->e2, dir, name, ino,
					   entry_type(mode));
	}
	if (code)
		return ext_fail(state, code, err, name);
	return touch_inode(state, dir, err);
}

/* A new inode of a regular file, not yet linked anywhere. */
static int new_file_inode(ext_state *state, ext2_ino_t dir, unsigned mode,
			  ext2_ino_t *ino, pp_error *err)
{
	ext2_filsys e2 = state->e2;
	errcode_t code = ext2fs_new_inode(e2, dir, (int)mode, NULL, ino);
	if (code)
		return ext_fail(state, code, err, "cannot allocate an inode");
	struct ext2_inode inode = { 0 };
	inode.i_mode = (uint16_t)mode;
	inode.i_links_count = 1;
	inode.i_atime = inode.i_ctime = inode.i_mtime = state->now;
	if (ext2fs_has_feature_extents(e2->super)) {
		/* Opening an extent handle on an empty inode writes the
		 * extent header into it (and sets EXT4_EXTENTS_FL). */
		ext2_extent_handle_t handle;
		code = ext2fs_extent_open2(e2, *ino, &inode, &handle);
		if (code)
			return ext_fail(state, code, err, "cannot set up extents");
		ext2fs_extent_free(handle);
	}
	code = ext2fs_write_new_inode(e2, *ino, &inode);
	if (code)
		return ext_fail(state, code, err, "cannot write an inode");
	ext2fs_inode_alloc_stats2(e2, *ino, +1, 0);
	return 0;
}

/* ---- paths ------------------------------------------------------------- */

/* The directory path names (symbolic links followed), or an error. */
static int find_directory(ext_state *state, const char *path, ext2_ino_t *dir,
			  pp_error *err)
{
	errcode_t code = ext2fs_namei_follow(state->e2, EXT2_ROOT_INO,
					     EXT2_ROOT_INO, path, dir);
	struct ext2_inode inode;
	if (code == EXT2_ET_FILE_NOT_FOUND || code == EXT2_ET_NO_DIRECTORY)
		return pp_fail(err, PP_ERR_USAGE, "%s: no directory %s in the "
			       "filesystem at byte %llu",
			       state->name, path,
			       (unsigned long long)state->offset);
	if (code)
		return ext_fail(state, code, err, path);
	int status = read_inode(state, *dir, &inode, err);
	if (status == 0 && !LINUX_S_ISDIR(inode.i_mode))
		status = pp_fail(err, PP_ERR_USAGE, "%s: %s is not a directory "
				 "in the filesystem at byte %llu",
				 state->name, path,
				 (unsigned long long)state->offset);
	return status;
}

/* Splits "/a/b/c" into "/a/b" and "c" (in place); "/c" gives "/". */
static const char *split_path(char *path, const char **base)
{
	char *slash = strrchr(path, '/');
	*base = slash + 1;
	if (slash == path)
		return "/";
	*slash = '\0';
	return path;
}

/* Looks name up in dir: 0 and *ino, 1 when absent, or an error. */
static int look_up(ext_state *state, ext2_ino_t dir, const char *name,
		   ext2_ino_t *ino, pp_error *err)
{
	errcode_t code = ext2fs_lookup(state->e2, dir, name, (int)strlen(name),
				       NULL, ino);
	if (code == EXT2_ET_FILE_NOT_FOUND)
		return 1;
	return code ? ext_fail(state, code, err, name) : 0;
}

/* ---- file content ------------------------------------------------------ */

/* Refuses early, before anything is allocated, a file that cannot fit:
 * its blocks plus one in a hundred for extent tree blocks. */
static int check_space(ext_state *state, const char *remote, uint64_t len,
		       uint64_t freed_blocks, pp_error *err)
{
	uint64_t block = state->e2->blocksize;
	uint64_t needed = (len + block - 1) / block;
	needed += needed / 100 + 1;
	uint64_t available = ext2fs_free_blocks_count(state->e2->super) +
		freed_blocks;
	if (needed <= available)
		return 0;
	return pp_fail(err, PP_ERR_IO, "%s: ext filesystem at byte %llu: %s: "
		       "no space left (%llu KiB needed, %llu KiB free); "
		       "nothing was changed", state->name,
		       (unsigned long long)state->offset, remote,
		       (unsigned long long)(needed * block / 1024),
		       (unsigned long long)(available * block / 1024));
}

static int write_all(ext_state *state, ext2_file_t file, const void *data,
		     size_t len, const char *remote, pp_error *err)
{
	const char *from = data;
	while (len > 0) {
		unsigned chunk = (unsigned)PP_MIN(len, (size_t)1 << 30), done;
		errcode_t code = ext2fs_file_write(file, from, chunk, &done);
		if (code)
			return ext_fail(state, code, err, remote);
		if (done == 0)
			return ext_fail(state, EXT2_ET_SHORT_WRITE, err, remote);
		from += done;
		len -= done;
	}
	return 0;
}

static int copy_fd(ext_state *state, ext2_file_t file, int fd,
		   const char *local, const char *remote, pp_error *err)
{
	size_t size = 1 << 20;
	char *buf = malloc(size);
	if (!buf)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = 0;
	for (;;) {
		ssize_t n = pp_pread_upto(fd, buf, size, -1);
		if (n < 0)
			status = pp_fail_errno(err, PP_ERR_IO, "%s", local);
		if (n <= 0 || status)
			break;
		status = write_all(state, file, buf, (size_t)n, remote, err);
		if (status)
			break;
	}
	free(buf);
	return status;
}

/* Replaces the content of inode ino with the source's bytes. */
static int write_content(ext_state *state, ext2_ino_t ino, const char *remote,
			 const pp_fs_source *source, pp_error *err)
{
	int fd = -1;
	uint64_t len = source->len;
	struct stat st;
	if (source->local) {
		fd = open(source->local, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st)) {
			int status = pp_fail_errno(err, PP_ERR_IO, "%s",
						   source->local);
			if (fd >= 0)
				close(fd);
			return status;
		}
		len = (uint64_t)st.st_size;
	}
	struct ext2_inode inode;
	int status = read_inode(state, ino, &inode, err);
	if (status == 0)
		status = check_space(state, remote, len,
				     ext2fs_get_stat_i_blocks(state->e2, &inode) *
				     512 / state->e2->blocksize, err);
	ext2_file_t file = NULL;
	errcode_t code = status ? 0 :
		ext2fs_file_open(state->e2, ino, EXT2_FILE_WRITE, &file);
	if (code)
		status = ext_fail(state, code, err, remote);
	if (status == 0 && (code = ext2fs_file_set_size2(file, 0)))
		status = ext_fail(state, code, err, remote);
	if (status == 0)
		status = fd >= 0 ?
			copy_fd(state, file, fd, source->local, remote, err) :
			write_all(state, file, source->data, source->len,
				  remote, err);
	if (file && (code = ext2fs_file_close(file)) && status == 0)
		status = ext_fail(state, code, err, remote);
	if (fd >= 0)
		close(fd);
	return status;
}

/* ---- the operations ----------------------------------------------------- */

static int ext_put(pp_fs *fs, const char *remote, const pp_fs_source *source,
		   pp_error *err)
{
	ext_state *state = fs->state;
	char *path = strdup(remote);
	if (!path)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	const char *base, *parent = split_path(path, &base);
	ext2_ino_t dir, ino = 0;
	int status = find_directory(state, parent, &dir, err);
	int absent = status ? 0 : look_up(state, dir, base, &ino, err);
	if (absent < 0) {
		status = absent;
	} else if (status == 0 && absent == 0) {
		/* As open(O_TRUNC) would: the same inode (symbolic links
		 * followed), its mode and owner kept. */
		errcode_t code = ext2fs_namei_follow(state->e2, EXT2_ROOT_INO,
						     dir, base, &ino);
		struct ext2_inode inode;
		status = code ? ext_fail(state, code, err, remote) :
			read_inode(state, ino, &inode, err);
		if (status == 0 && !LINUX_S_ISREG(inode.i_mode))
			status = pp_fail(err, PP_ERR_USAGE, "%s: %s is not a "
					 "regular file in the filesystem at "
					 "byte %llu", fs->archive->path, remote,
					 (unsigned long long)fs->partition.offset);
	} else if (status == 0) {
		unsigned mode = LINUX_S_IFREG | 0644;
		status = new_file_inode(state, dir, mode, &ino, err);
		if (status == 0)
			status = link_entry(state, dir, base, ino, mode, err);
	}
	if (status == 0)
		status = write_content(state, ino, remote, source, err);
	if (status == 0)
		status = touch_inode(state, ino, err);
	free(path);
	return status;
}

/* A new directory name in dir, with the given attributes. */
static int make_directory(ext_state *state, ext2_ino_t dir, const char *name,
			  const struct stat *attributes, ext2_ino_t *ino,
			  pp_error *err)
{
	errcode_t code = ext2fs_mkdir(state->e2, dir, 0, name);
	if (code == EXT2_ET_DIR_NO_SPACE) {
		code = ext2fs_expand_dir(state->e2, dir);
		if (!code)
			code = ext2fs_mkdir(state->e2, dir, 0, name);
	}
	if (code)
		return ext_fail(state, code, err, name);
	int status = look_up(state, dir, name, ino, err);
	if (status > 0)
		status = ext_fail(state, EXT2_ET_FILE_NOT_FOUND, err, name);
	if (status == 0)
		status = set_attributes(state, *ino, attributes->st_mode,
					attributes->st_uid, attributes->st_gid,
					(uint32_t)attributes->st_mtime, err);
	return status ? status : touch_inode(state, dir, err);
}

/* The directory name in dir, made if absent; an error if it is there but
 * is not a directory (nor a link to one). */
static int need_directory(ext_state *state, ext2_ino_t dir, const char *name,
			  const struct stat *attributes, ext2_ino_t *ino,
			  pp_error *err)
{
	int absent = look_up(state, dir, name, ino, err);
	if (absent > 0)
		return make_directory(state, dir, name, attributes, ino, err);
	if (absent < 0)
		return absent;
	errcode_t code = ext2fs_namei_follow(state->e2, EXT2_ROOT_INO, dir,
					     name, ino);
	struct ext2_inode inode;
	int status = code ? ext_fail(state, code, err, name) :
		read_inode(state, *ino, &inode, err);
	if (status == 0 && !LINUX_S_ISDIR(inode.i_mode))
		status = pp_fail(err, PP_ERR_USAGE, "%s: %s exists and is not a "
				 "directory (filesystem at byte %llu)",
				 state->name, name,
				 (unsigned long long)state->offset);
	return status;
}

static int ext_mkdir(pp_fs *fs, const char *path, pp_error *err)
{
	ext_state *state = fs->state;
	struct stat attributes = { .st_mode = 0755, .st_mtime = state->now };
	char *copy = strdup(path), *save = NULL;
	if (!copy)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	ext2_ino_t dir = EXT2_ROOT_INO;
	int status = 0;
	for (char *name = strtok_r(copy, "/", &save); name && status == 0;
	     name = strtok_r(NULL, "/", &save))
		status = need_directory(state, dir, name, &attributes, &dir,
					err);
	free(copy);
	return status;
}

/* ---- removing ---------------------------------------------------------- */

typedef struct name_list {
	char **names;
	size_t count;
	size_t capacity;
	bool failed;
} name_list;

static int collect_name(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent,
			int offset, int blocksize, char *buf, void *opaque)
{
	name_list *list = opaque;
	(void)dir, (void)entry, (void)offset, (void)blocksize, (void)buf;
	int len = ext2fs_dirent_name_len(dirent);
	if ((len == 1 && dirent->name[0] == '.') ||
	    (len == 2 && dirent->name[0] == '.' && dirent->name[1] == '.'))
		return 0;
	char **names = pp_grow(list->names, list->count, &list->capacity,
			       sizeof *names, 16);
	char *name = names ? strndup(dirent->name, (size_t)len) : NULL;
	if (names)
		list->names = names;
	if (!name) {
		list->failed = true;
		return DIRENT_ABORT;
	}
	list->names[list->count++] = name;
	return 0;
}

static void free_names(name_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->names[i]);
	free(list->names);
}

/* Frees an inode no entry names any more: its blocks, its extended
 * attribute block's reference, the inode itself. */
static int release_inode(ext_state *state, ext2_ino_t ino,
			 struct ext2_inode *inode, pp_error *err)
{
	ext2_filsys e2 = state->e2;
	errcode_t code = 0;
	if (ext2fs_inode_has_valid_blocks2(e2, inode) ||
	    (inode->i_flags & EXT4_INLINE_DATA_FL))
		code = ext2fs_punch(e2, ino, inode, NULL, 0, ~0ULL);
	blk64_t xattr = code ? 0 : ext2fs_file_acl_block(e2, inode);
	if (xattr) {
		__u32 count = 1;
		code = ext2fs_adjust_ea_refcount3(e2, xattr, NULL, -1, &count,
						  ino);
		if (!code && count == 0)
			ext2fs_block_alloc_stats2(e2, xattr, -1);
		ext2fs_file_acl_block_set(e2, inode, 0);
	}
	if (code)
		return ext_fail(state, code, err, "cannot free an inode");
	inode->i_links_count = 0;
	inode->i_dtime = state->now;
	int status = write_inode(state, ino, inode, err);
	if (status == 0)
		ext2fs_inode_alloc_stats2(e2, ino, -1,
					  LINUX_S_ISDIR(inode->i_mode));
	return status;
}

static int remove_entry(ext_state *state, ext2_ino_t dir, const char *name,
			ext2_ino_t ino, pp_error *err);

static int remove_children(ext_state *state, ext2_ino_t ino,
			   const struct ext2_inode *inode, pp_error *err)
{
	name_list list = { 0 };
	/* The inline flag is for inline directories only: on a directory
	 * of blocks libext2fs then reports it corrupted. */
	int flags = inode->i_flags & EXT4_INLINE_DATA_FL ?
		DIRENT_FLAG_INCLUDE_INLINE_DATA : 0;
	errcode_t code = ext2fs_dir_iterate2(state->e2, ino, flags, NULL,
					     collect_name, &list);
	int status = list.failed ? pp_fail(err, PP_ERR_NOMEM, "out of memory") :
		code ? ext_fail(state, code, err, "cannot list a directory") : 0;
	for (size_t i = 0; status == 0 && i < list.count; i++) {
		ext2_ino_t child;
		int absent = look_up(state, ino, list.names[i], &child, err);
		status = absent < 0 ? absent : absent ? 0 :
			remove_entry(state, ino, list.names[i], child, err);
	}
	free_names(&list);
	return status;
}

/* Removes name (inode ino) from dir, and everything under it. */
static int remove_entry(ext_state *state, ext2_ino_t dir, const char *name,
			ext2_ino_t ino, pp_error *err)
{
	struct ext2_inode inode;
	int status = read_inode(state, ino, &inode, err);
	bool is_dir = status == 0 && LINUX_S_ISDIR(inode.i_mode);
	if (is_dir && (status = remove_children(state, ino, &inode, err)) == 0)
		status = read_inode(state, ino, &inode, err);
	if (status)
		return status;
	errcode_t code = ext2fs_unlink(state->e2, dir, name, ino, 0);
	if (code)
		return ext_fail(state, code, err, name);
	if (is_dir) {
		/* Its ".." no longer counts as a link of dir. */
		struct ext2_inode parent;
		status = read_inode(state, dir, &parent, err);
		if (status == 0 && parent.i_links_count > 1)
			parent.i_links_count--;
		if (status == 0)
			status = write_inode(state, dir, &parent, err);
		if (status == 0)
			status = release_inode(state, ino, &inode, err);
	} else if (inode.i_links_count > 1) {
		inode.i_links_count--;
		inode.i_ctime = state->now;
		status = write_inode(state, ino, &inode, err);
	} else {
		status = release_inode(state, ino, &inode, err);
	}
	return status ? status : touch_inode(state, dir, err);
}

static int ext_remove(pp_fs *fs, const char *remote, pp_error *err)
{
	ext_state *state = fs->state;
	char *path = strdup(remote);
	if (!path)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	const char *base, *parent = split_path(path, &base);
	ext2_ino_t dir, ino;
	/* rm -rf: a path that is not there is already removed. */
	errcode_t code = ext2fs_namei_follow(state->e2, EXT2_ROOT_INO,
					     EXT2_ROOT_INO, parent, &dir);
	int status = code == EXT2_ET_FILE_NOT_FOUND ||
		code == EXT2_ET_NO_DIRECTORY ? 1 :
		code ? ext_fail(state, code, err, parent) :
		look_up(state, dir, base, &ino, err);
	if (status == 0)
		status = remove_entry(state, dir, base, ino, err);
	free(path);
	return status > 0 ? 0 : status;
}

/* ---- copying in -------------------------------------------------------- */

static int copy_entry(ext_state *state, ext2_ino_t dir, const char *local,
		      const char *name, pp_error *err);

static int copy_directory(ext_state *state, ext2_ino_t dir, const char *local,
			  const char *name, const struct stat *st,
			  pp_error *err)
{
	ext2_ino_t ino;
	int status = need_directory(state, dir, name, st, &ino, err);
	struct dirent **entries = NULL;
	/* In name order, so that the same tree gives the same bytes. */
	int count = status ? 0 : scandir(local, &entries, NULL, alphasort);
	if (count < 0)
		status = pp_fail_errno(err, PP_ERR_IO, "%s", local);
	for (int i = 0; i < count; i++) {
		const char *child = entries[i]->d_name;
		if (status == 0 && strcmp(child, ".") && strcmp(child, "..")) {
			char *path = malloc(strlen(local) + strlen(child) + 2);
			if (!path)
				status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
			else {
				sprintf(path, "%s/%s", local, child);
				status = copy_entry(state, ino, path, child, err);
			}
			free(path);
		}
		free(entries[i]);
	}
	free(entries);
	/* Last, as tar does: the children changed the directory's times. */
	return status ? status :
		set_attributes(state, ino, st->st_mode, st->st_uid, st->st_gid,
			       (uint32_t)st->st_mtime, err);
}

static int copy_symlink(ext_state *state, ext2_ino_t dir, const char *local,
			const char *name, const struct stat *st, pp_error *err)
{
	char target[4096];
	ssize_t len = readlink(local, target, sizeof target - 1);
	if (len < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", local);
	target[len] = '\0';
	errcode_t code = ext2fs_symlink(state->e2, dir, 0, name, target);
	if (code == EXT2_ET_DIR_NO_SPACE) {
		code = ext2fs_expand_dir(state->e2, dir);
		if (!code)
			code = ext2fs_symlink(state->e2, dir, 0, name, target);
	}
	ext2_ino_t ino;
	int status = code ? ext_fail(state, code, err, name) :
		look_up(state, dir, name, &ino, err);
	if (status > 0)
		status = ext_fail(state, EXT2_ET_FILE_NOT_FOUND, err, name);
	if (status == 0)
		status = set_attributes(state, ino, 0777, st->st_uid,
					st->st_gid, (uint32_t)st->st_mtime, err);
	return status ? status : touch_inode(state, dir, err);
}

static int copy_file(ext_state *state, ext2_ino_t dir, const char *local,
		     const char *name, const struct stat *st, pp_error *err)
{
	unsigned mode = LINUX_S_IFREG | (st->st_mode & 07777);
	ext2_ino_t ino;
	pp_fs_source source = { .local = local };
	int status = new_file_inode(state, dir, mode, &ino, err);
	if (status == 0)
		status = link_entry(state, dir, name, ino, mode, err);
	if (status == 0)
		status = write_content(state, ino, name, &source, err);
	if (status == 0)
		status = set_attributes(state, ino, st->st_mode, st->st_uid,
					st->st_gid, (uint32_t)st->st_mtime, err);
	return status;
}

/* Copies local into dir as name; what is there already is replaced,
 * except that a directory is merged into a directory (as tar does). */
static int copy_entry(ext_state *state, ext2_ino_t dir, const char *local,
		      const char *name, pp_error *err)
{
	struct stat st;
	if (lstat(local, &st))
		return pp_fail_errno(err, PP_ERR_IO, "%s", local);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
		return pp_fail(err, PP_ERR_USAGE, "%s: not a regular file, "
			       "directory or symbolic link", local);
	ext2_ino_t old;
	struct ext2_inode inode;
	int absent = look_up(state, dir, name, &old, err);
	if (absent < 0)
		return absent;
	int status = absent ? 0 : read_inode(state, old, &inode, err);
	if (status == 0 && !absent &&
	    !(S_ISDIR(st.st_mode) && LINUX_S_ISDIR(inode.i_mode)))
		status = remove_entry(state, dir, name, old, err);
	if (status)
		return status;
	if (S_ISDIR(st.st_mode))
		return copy_directory(state, dir, local, name, &st, err);
	if (S_ISLNK(st.st_mode))
		return copy_symlink(state, dir, local, name, &st, err);
	return copy_file(state, dir, local, name, &st, err);
}

static int ext_copy_in(pp_fs *fs, const char *local, const char *remotedir,
		       pp_error *err)
{
	ext_state *state = fs->state;
	ext2_ino_t dir;
	int status = find_directory(state, remotedir, &dir, err);
	if (status)
		return status;
	char *copy = strdup(local);
	if (!copy)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	/* The last component of local names the copy ("dir/" too). */
	size_t len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	const char *slash = strrchr(copy, '/');
	const char *name = slash && slash[1] ? slash + 1 : copy;
	if (!strcmp(name, "/") || !strcmp(name, ".") || !strcmp(name, ".."))
		status = pp_fail(err, PP_ERR_USAGE, "%s: name the directory to "
				 "copy in by its name, not %s", local, name);
	else
		status = copy_entry(state, dir, copy, name, err);
	free(copy);
	return status;
}

/* ---- the changes ------------------------------------------------------- */

/* The overlay's units [first, first + count) against the archive. */
static int emit_run(ext_state *state, uint64_t first, size_t count,
		    pp_fs_change_fn emit, void *opaque, pp_error *err)
{
	size_t len = count * PP_OVERLAY_UNIT;
	uint8_t *old = malloc(len), *new_bytes = malloc(len);
	uint64_t offset = state->offset + first * PP_OVERLAY_UNIT;
	int status = old && new_bytes ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 0)
		status = pp_pread(state->fs->archive, old, len, offset, err);
	for (size_t i = 0; status == 0 && i < count; i++)
		memcpy(new_bytes + i * PP_OVERLAY_UNIT,
		       pp_overlay_unit(state->overlay, first + i),
		       PP_OVERLAY_UNIT);
	if (status == 0)
		status = pp_fs_emit_diff(old, new_bytes, len, offset, emit,
					 opaque, err);
	free(old);
	free(new_bytes);
	return status;
}

static int ext_changes(pp_fs *fs, pp_fs_change_fn emit, void *opaque,
		       pp_error *err)
{
	ext_state *state = fs->state;
	ext2_filsys e2 = state->e2;
	/* What the kernel writes: the primary superblock and descriptors. */
	e2->flags |= EXT2_FLAG_MASTER_SB_ONLY;
	errcode_t code = ext2fs_close2(e2, 0);
	if (code) {
		int status = ext_fail(state, code, err, "cannot write it back");
		ext2fs_free(e2);
		state->e2 = NULL;
		return status;
	}
	state->e2 = NULL;
	uint64_t *units;
	size_t count;
	int status = pp_overlay_units(state->overlay, &units, &count, err);
	/* Runs of consecutive units, at most 1 MiB at a time. */
	for (size_t i = 0, run; status == 0 && i < count; i += run) {
		for (run = 1; i + run < count && run < 1024 &&
		     units[i + run] == units[i] + run;)
			run++;
		status = emit_run(state, units[i], run, emit, opaque, err);
	}
	free(units);
	return status;
}

static void ext_close(pp_fs *fs)
{
	ext_state *state = fs->state;
	if (!state)
		return;
	if (state->e2)
		ext2fs_free(state->e2);
	pp_overlay_free(state->overlay);
	free(state);
	fs->state = NULL;
}

const pp_fs_engine pp_fs_ext_engine = {
	.open = ext_open,
	.put = ext_put,
	.mkdir = ext_mkdir,
	.remove = ext_remove,
	.copy_in = ext_copy_in,
	.changes = ext_changes,
	.close = ext_close,
};
