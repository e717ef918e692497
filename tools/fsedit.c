/*
 * fsedit.c - partpatch's file operations in process (see fsedit.h).
 *
 * The library does the work (lib/fs.c and its engines); this file maps
 * partpatch's operations onto it, runs --exec, and says what happened.
 * Either way nothing is written here: the changed bytes go into the one
 * transaction partpatch commits, with its undo record, checks, --output
 * and --bmap.
 */
#include "fsedit.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

bool fsedit_selector_needs_guest(const char *selector)
{
	/* label: and uuid: are probed in process; a mountpoint is read from
	 * an ext root's fstab when there is one (pp_locate_partition says
	 * PP_ERR_USAGE when not); a device name only the appliance knows. */
	enum pp_selector_kind kind = pp_classify_selector(selector);
	return kind == PP_SELECTOR_MOUNTPOINT || kind == PP_SELECTOR_DEVICE;
}

bool fsedit_can_run(const edit_op *ops, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (ops[i].kind == EDIT_SCRIPT)
			return false;
	}
	return true;
}

/* LOCAL of LOCAL:REMOTE, malloc'd. */
static char *local_part(const edit_op *op)
{
	const char *colon = strchr(op->arg, ':');
	char *local = colon ? strndup(op->arg, (size_t)(colon - op->arg)) :
		strdup(op->arg);
	if (!local) {
		cli_error("out of memory");
		exit(EXIT_ERROR);
	}
	return local;
}

static int run_op(pp_fs *fs, const edit_op *op, pp_error *err)
{
	const char *colon = strchr(op->arg, ':');
	char *local = NULL;
	int status;
	switch (op->kind) {
	case EDIT_UPLOAD:
		local = local_part(op);
		status = pp_fs_upload(fs, local, colon + 1, err);
		break;
	case EDIT_COPY_IN:
		local = local_part(op);
		status = pp_fs_copy_in(fs, local, colon + 1, err);
		break;
	case EDIT_WRITE:
		local = local_part(op);    /* here REMOTE */
		status = pp_fs_write(fs, local, colon + 1, strlen(colon + 1),
				     err);
		break;
	case EDIT_MKDIR:
		status = pp_fs_mkdir(fs, op->arg, err);
		break;
	case EDIT_DELETE:
		status = pp_fs_delete(fs, op->arg, err);
		break;
	default:
		err->status = status = PP_ERR_INTERNAL;
		snprintf(err->message, sizeof err->message, "%s: cannot run "
			 "in process", op->arg);
	}
	free(local);
	return status;
}

/* pp_patch_add, remembering where a refused run starts. */
typedef struct adder {
	pp_patch_txn *txn;
	uint64_t refused_at;
} adder;

static int add_run(void *opaque, uint64_t offset, const void *data,
		   size_t len, pp_error *err)
{
	adder *a = opaque;
	int status = pp_patch_add(a->txn, offset, data, len, err);
	if (status == PP_ERR_NOT_STORED)
		a->refused_at = offset;
	return status;
}

/* The changes into the transaction; a run outside the stored ranges
 * refuses the whole edit (exit 3), naming the offset. */
static int apply(pp_fs *fs, const char *selector, pp_patch_txn *txn,
		 bool verbose, fsedit_written *written)
{
	pp_error err;
	adder a = { .txn = txn };
	int status = pp_fs_changes(fs, add_run, &a, &written->ranges,
				   &written->count, &err);
	if (status == PP_ERR_NOT_STORED)
		return cli_fail_advice(&err, "the edit writes outside the "
				       "stored ranges (a write at image offset "
				       "%llu), so nothing was changed; keep the "
				       "whole partition raw with 'partpack "
				       "--keep-raw %s'",
				       (unsigned long long)a.refused_at, selector);
	if (status)
		return cli_fail(&err);
	if (verbose) {
		uint64_t bytes = 0;
		for (size_t i = 0; i < written->count; i++)
			bytes += written->ranges[i].length;
		fprintf(stderr, "%s: the edit changed %llu bytes in %zu "
			"run(s)\n", cli_program, (unsigned long long)bytes,
			written->count);
	}
	return 0;
}

int fsedit_run(pp_archive *archive, const char *selector,
	       const pp_range *partition, const edit_op *ops, size_t count,
	       bool verbose, pp_patch_txn *txn, fsedit_written *written)
{
	pp_fs_probe found;
	pp_error err;
	if (pp_probe_filesystem(archive, partition, &found, &err))
		return cli_fail(&err);
	if (strcmp(found.type, "vfat") && strncmp(found.type, "ext", 3)) {
		if (verbose)
			fprintf(stderr, "%s: the partition holds %s: editing "
				"it with the appliance\n", cli_program,
				found.type[0] ? found.type : "nothing blkid knows");
		return FSEDIT_ELSEWHERE;
	}
	if (verbose)
		fprintf(stderr, "%s: editing %s%s%s in process\n", cli_program,
			found.type, found.version[0] ? " " : "", found.version);
	pp_fs *fs;
	if (pp_fs_open(archive, partition, NULL, &fs, &err))
		return cli_fail(&err);
	int status = 0;
	for (size_t i = 0; status == 0 && i < count; i++) {
		if (run_op(fs, &ops[i], &err))
			status = cli_fail(&err);
	}
	if (status == 0)
		status = apply(fs, selector, txn, verbose, written);
	pp_fs_close(fs);
	return status;
}

/* environ with PARTITION=path in place of any PARTITION it has. */
static char **exec_environment(const char *path)
{
	size_t count = 0;
	while (environ[count])
		count++;
	char **env = calloc(count + 2, sizeof *env);
	char *partition = malloc(strlen(path) + 16);
	if (!env || !partition) {
		cli_error("out of memory");
		exit(EXIT_ERROR);
	}
	size_t used = 0;
	for (size_t i = 0; i < count; i++) {
		if (strncmp(environ[i], "PARTITION=", 10) != 0)
			env[used++] = environ[i];
	}
	sprintf(partition, "PARTITION=%s", path);
	env[used] = partition;
	return env;
}

/* Runs the user's command (trusted: it is theirs) through /bin/sh. */
static int run_command(const char *command, const char *path)
{
	char **env = exec_environment(path);
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	pid_t pid;
	int failed = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, env);
	int wstatus = 0;
	while (!failed && waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	for (size_t i = 0; env[i]; i++) {
		if (strncmp(env[i], "PARTITION=", 10) == 0)
			free(env[i]);
	}
	free(env);
	if (failed) {
		cli_error("/bin/sh: %s", strerror(failed));
		return EXIT_ERROR;
	}
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
		return 0;
	if (WIFEXITED(wstatus))
		cli_error("--exec: the command failed (exit status %d), so "
			  "nothing was changed", WEXITSTATUS(wstatus));
	else
		cli_error("--exec: the command was killed by signal %d, so "
			  "nothing was changed", WTERMSIG(wstatus));
	return EXIT_ERROR;
}

int fsedit_exec(pp_archive *archive, const char *selector,
		const pp_range *partition, const char *command, bool verbose,
		pp_patch_txn *txn, fsedit_written *written)
{
	pp_fs_options options;
	pp_fs_options_init(&options);
	options.kind = PP_FS_BYTES;
	pp_fs *fs;
	pp_error err;
	if (pp_fs_open(archive, partition, &options, &fs, &err))
		return cli_fail(&err);
	if (verbose)
		fprintf(stderr, "%s: running the command with PARTITION=%s\n",
			cli_program, pp_fs_bytes_path(fs));
	int status = run_command(command, pp_fs_bytes_path(fs));
	if (status == 0)
		status = apply(fs, selector, txn, verbose, written);
	pp_fs_close(fs);
	return status;
}
