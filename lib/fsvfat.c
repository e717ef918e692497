/*
 * fsvfat.c - FAT12, FAT16 and FAT32 (long names included) edited by
 * mtools on the partition's bytes in a temporary file (fsbytes.c).
 *
 * mtools (Debian's mtools: mcopy, mmd, mdeltree, mdir with -i FILE) is
 * the well-kept FAT implementation a shell user would reach for, works on
 * an image file without mounting or root, and writes long names as
 * Windows and Linux do; the changed bytes are then found by comparing the
 * file with the archive.  Each tool is run with an argument vector (no
 * shell), its input from /dev/null (it never asks about a name clash: -o
 * says overwrite), with no configuration file of the user's
 * (MTOOLSRC=/dev/null) and without its geometry checks, which a
 * partition image need not pass (MTOOLS_SKIP_CHECK=1).
 */
#include "fs.h"
#include "archive.h"
#include "error.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct vfat_state {
	pp_fs_bytes *bytes;
} vfat_state;

/* environ without MTOOLS* settings, plus ours; NULL when out of memory. */
static char **tool_environment(void)
{
	size_t count = 0;
	while (environ[count])
		count++;
	char **env = calloc(count + 3, sizeof *env);
	if (!env)
		return NULL;
	size_t used = 0;
	for (size_t i = 0; i < count; i++) {
		if (strncmp(environ[i], "MTOOLS", 6) != 0)
			env[used++] = environ[i];
	}
	env[used++] = "MTOOLS_SKIP_CHECK=1";
	env[used++] = "MTOOLSRC=/dev/null";
	return env;
}

/* The last non-empty line of what a tool said, for our message. */
static void last_line(char *text)
{
	size_t len = strlen(text);
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	char *start = strrchr(text, '\n');
	if (start)
		memmove(text, start + 1, strlen(start + 1) + 1);
}

/* Runs argv (argv[0] looked up in PATH); its stderr comes back in said. */
static int spawn_tool(char *const argv[], int *exit_status, char *said,
		      size_t size, pp_error *err)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC))
		return pp_fail_errno(err, PP_ERR_IO, "pipe");
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
	char **env = tool_environment();
	pid_t pid;
	int failed = env ? posix_spawnp(&pid, argv[0], &actions, NULL, argv,
					env) : ENOMEM;
	posix_spawn_file_actions_destroy(&actions);
	free(env);
	close(pipefd[1]);
	size_t used = 0;
	ssize_t n;
	while (!failed && (n = read(pipefd[0], said + used,
				    size - 1 - used)) != 0) {
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (used += (size_t)n) == size - 1)
			used = 0;   /* keep reading; the end is what counts */
	}
	said[used] = '\0';
	close(pipefd[0]);
	if (failed) {
		errno = failed;
		return pp_fail_errno(err, PP_ERR_IO, "vfat is edited with "
				     "mtools (Debian package mtools): %s",
				     argv[0]);
	}
	int wstatus;
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	*exit_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128;
	last_line(said);
	return 0;
}

/* Runs an mtools command on the partition's file; any failure is an
 * error naming the archive and what the tool said. */
static int run_tool(pp_fs *fs, const char *tool, const char *const args[],
		    bool quiet_failure, int *exit_status, pp_error *err)
{
	vfat_state *state = fs->state;
	const char *argv[16] = { tool, "-i", pp_fs_bytes_file(state->bytes) };
	size_t argc = 3;
	for (size_t i = 0; args[i] && argc < 15; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	char said[1024];
	int status = spawn_tool((char *const *)argv, exit_status, said,
				sizeof said, err);
	if (status || *exit_status == 0 || quiet_failure)
		return status;
	return pp_fail(err, PP_ERR_IO, "%s: vfat filesystem at byte %llu: %s: "
		       "%s", fs->archive->path,
		       (unsigned long long)fs->partition.offset, tool,
		       said[0] ? said : "failed");
}

/* "::/path", mtools' name of a path in the image. */
static char *image_name(const char *path, pp_error *err)
{
	char *name = malloc(strlen(path) + 3);
	if (!name)
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	else
		sprintf(name, "::%s", path);
	return name;
}

/* FAT names cannot hold these, and mtools would read * and ? as patterns. */
static int check_name(const pp_fs *fs, const char *path, pp_error *err)
{
	for (const char *p = path; *p; p++) {
		if ((unsigned char)*p < 0x20 || strchr("*?<>|\":\\", *p))
			return pp_fail(err, PP_ERR_USAGE, "%s: %s: a FAT name "
				       "cannot hold '%c'", fs->archive->path,
				       path, *p >= 0x20 ? *p : '?');
	}
	return 0;
}

/* Whether path exists in the image: 1, 0, or an error. */
static int exists(pp_fs *fs, const char *path, pp_error *err)
{
	char *name = image_name(path, err);
	if (!name)
		return PP_ERR_NOMEM;
	const char *args[] = { "-b", "-a", name, NULL };
	int exit_status;
	int status = run_tool(fs, "mdir", args, true, &exit_status, err);
	free(name);
	return status ? status : exit_status == 0;
}

static int vfat_open(pp_fs *fs, pp_error *err)
{
	vfat_state *state = calloc(1, sizeof *state);
	if (!state)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	fs->state = state;
	return pp_fs_bytes_open(fs->archive, &fs->partition, fs->tmpdir,
				&state->bytes, err);
}

/* The data of a --write, in a file for mcopy. */
static int data_file(const pp_fs *fs, const pp_fs_source *source, char **path,
		     pp_error *err)
{
	*path = malloc(strlen(fs->tmpdir) + 32);
	if (!*path)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	sprintf(*path, "%s/partpack-data.XXXXXX", fs->tmpdir);
	int fd = mkostemp(*path, O_CLOEXEC);
	int status = fd < 0 || pp_write_full(fd, source->data, source->len) ?
		pp_fail_errno(err, PP_ERR_IO, "%s", *path) : 0;
	if (fd >= 0)
		close(fd);
	if (status && fd >= 0)
		unlink(*path);
	if (status) {
		free(*path);
		*path = NULL;
	}
	return status;
}

static int vfat_put(pp_fs *fs, const char *remote, const pp_fs_source *source,
		    pp_error *err)
{
	char *data_path = NULL, *name = NULL;
	int status = check_name(fs, remote, err);
	if (status == 0 && !source->local)
		status = data_file(fs, source, &data_path, err);
	if (status == 0 && !(name = image_name(remote, err)))
		status = PP_ERR_NOMEM;
	if (status == 0) {
		const char *args[] = { "-o", source->local ? source->local :
				       data_path, name, NULL };
		int exit_status;
		status = run_tool(fs, "mcopy", args, false, &exit_status, err);
	}
	if (data_path)
		unlink(data_path);
	free(data_path);
	free(name);
	return status;
}

static int vfat_mkdir(pp_fs *fs, const char *path, pp_error *err)
{
	int status = check_name(fs, path, err);
	char *prefix = status ? NULL : strdup(path);
	if (status == 0 && !prefix)
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	/* Each ancestor in turn, as mkdir -p: mmd makes one level. */
	for (char *slash = prefix; status == 0 && slash;) {
		slash = strchr(slash + 1, '/');
		if (slash)
			*slash = '\0';
		int found = exists(fs, prefix, err);
		char *name = found == 0 ? image_name(prefix, err) : NULL;
		status = found < 0 ? found : 0;
		if (found == 0 && !name)
			status = PP_ERR_NOMEM;
		if (name) {
			const char *args[] = { name, NULL };
			int exit_status;
			status = run_tool(fs, "mmd", args, false, &exit_status,
					  err);
		}
		free(name);
		if (slash)
			*slash = '/';
	}
	free(prefix);
	return status;
}

static int vfat_remove(pp_fs *fs, const char *path, pp_error *err)
{
	int status = check_name(fs, path, err);
	int found = status ? status : exists(fs, path, err);
	if (found <= 0)
		return found;
	char *name = image_name(path, err);
	if (!name)
		return PP_ERR_NOMEM;
	/* mdeltree removes a file as well as a tree. */
	const char *args[] = { name, NULL };
	int exit_status;
	status = run_tool(fs, "mdeltree", args, false, &exit_status, err);
	free(name);
	return status;
}

static int vfat_copy_in(pp_fs *fs, const char *local, const char *remotedir,
			pp_error *err)
{
	int status = check_name(fs, remotedir, err);
	int found = status ? status : exists(fs, remotedir, err);
	if (found == 0)
		return pp_fail(err, PP_ERR_USAGE, "%s: no directory %s in the "
			       "filesystem at byte %llu", fs->archive->path,
			       remotedir, (unsigned long long)fs->partition.offset);
	if (found < 0)
		return found;
	char *name = malloc(strlen(remotedir) + 4);
	if (!name)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	/* A trailing slash: into the directory, whatever local is. */
	sprintf(name, "::%s%s", remotedir,
		remotedir[strlen(remotedir) - 1] == '/' ? "" : "/");
	/* -s recursive, -m keep modification times, -Q stop at a failure. */
	const char *args[] = { "-s", "-m", "-o", "-Q", local, name, NULL };
	int exit_status;
	status = run_tool(fs, "mcopy", args, false, &exit_status, err);
	free(name);
	return status;
}

static int vfat_changes(pp_fs *fs, pp_fs_change_fn emit, void *opaque,
			pp_error *err)
{
	vfat_state *state = fs->state;
	return pp_fs_bytes_changes(state->bytes, emit, opaque, err);
}

static void vfat_close(pp_fs *fs)
{
	vfat_state *state = fs->state;
	if (!state)
		return;
	pp_fs_bytes_close(state->bytes);
	free(state);
	fs->state = NULL;
}

const pp_fs_engine pp_fs_vfat_engine = {
	.open = vfat_open,
	.put = vfat_put,
	.mkdir = vfat_mkdir,
	.remove = vfat_remove,
	.copy_in = vfat_copy_in,
	.changes = vfat_changes,
	.close = vfat_close,
};

/* ---- PP_FS_BYTES: the file alone, for the caller's own tool ------------ */

static int unsupported(pp_fs *fs, pp_error *err)
{
	return pp_fail(err, PP_ERR_USAGE, "%s: the partition at byte %llu is "
		       "opened as bytes: edit pp_fs_bytes_path's file instead",
		       fs->archive->path,
		       (unsigned long long)fs->partition.offset);
}

static int bytes_put(pp_fs *fs, const char *remote, const pp_fs_source *source,
		     pp_error *err)
{
	(void)remote, (void)source;
	return unsupported(fs, err);
}

static int bytes_path_op(pp_fs *fs, const char *path, pp_error *err)
{
	(void)path;
	return unsupported(fs, err);
}

static int bytes_copy_in(pp_fs *fs, const char *local, const char *remotedir,
			 pp_error *err)
{
	(void)local, (void)remotedir;
	return unsupported(fs, err);
}

const pp_fs_engine pp_fs_bytes_engine = {
	.open = vfat_open,
	.put = bytes_put,
	.mkdir = bytes_path_op,
	.remove = bytes_path_op,
	.copy_in = bytes_copy_in,
	.changes = vfat_changes,
	.close = vfat_close,
};

const char *pp_fs_vfat_file(const pp_fs *fs)
{
	const vfat_state *state = fs->state;
	return state && state->bytes ? pp_fs_bytes_file(state->bytes) : NULL;
}
