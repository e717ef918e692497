/*
 * edit.c - mountpoint selectors and file edits for partpatch, by guestfish
 * on the archive itself.
 *
 * The archive is served as a disk by nbdkit with the partpack filter, and
 * guestfish (one appliance launch) works on that disk:
 *
 *   nbdkit -U - --filter=partpack file ARCHIVE partpack-save-writes=W \
 *          --run 'exec guestfish --format=raw -a "nbd://?socket=$unixsocket"'
 *
 * nbdkit's --run command inherits our pipes, so we talk to guestfish as a
 * script would, one command at a time, and read each command's output up to
 * a marker we ask it to echo.  guestfish reading a pipe stops at the first
 * failing command, so a failure is the end of the session.
 *
 * The filter never writes the archive here: it takes the guest's writes
 * (those wholly inside stored data; it refuses any other with EPERM) and at
 * disconnect saves them to W.  partpatch then applies them as one patch,
 * the same transaction as any other (undo record, checks, --output), or
 * none of them if the session failed or a write was refused.  So an edit
 * lands whole or not at all, and a crash during the session changes nothing.
 */
#include "edit.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MARKER "--partpatch-done--"

/* Where the filter is: set at build time to the installed path; the
 * PARTPACK_NBDKIT_FILTER environment variable overrides it (the tests use
 * the one in the build directory). */
#ifndef PP_NBDKIT_FILTER
#define PP_NBDKIT_FILTER "partpack"
#endif

typedef struct session {
	pid_t pid;
	FILE *to;               /* guestfish's standard input */
	FILE *from;             /* its standard output */
	char dir[PATH_MAX];     /* private: the log and the saved writes */
	char log_path[PATH_MAX + 8];
	char writes_path[PATH_MAX + 8];
	const char *archive;
	bool verbose;
} session;

bool edit_selector_needs_guest(const char *selector)
{
	return selector[0] == '/' ? strncmp(selector, "/dev/", 5) != 0 :
	       strncmp(selector, "label:", 6) == 0 ||
	       strncmp(selector, "uuid:", 5) == 0;
}

static const char *const option_names[] = {
	[EDIT_UPLOAD] = "--upload", [EDIT_WRITE] = "--write",
	[EDIT_MKDIR] = "--mkdir", [EDIT_DELETE] = "--delete",
	[EDIT_COPY_IN] = "--copy-in", [EDIT_SCRIPT] = "--script",
};

void edit_check_op(const edit_op *op)
{
	bool pair = op->kind == EDIT_UPLOAD || op->kind == EDIT_WRITE ||
		op->kind == EDIT_COPY_IN;
	const char *colon = strchr(op->arg, ':');
	if (op->arg[0] == '\0' || (pair && (!colon || colon == op->arg))) {
		cli_error("%s '%s': expected %s", option_names[op->kind], op->arg,
			  op->kind == EDIT_UPLOAD ? "LOCAL:REMOTE" :
			  op->kind == EDIT_WRITE ? "REMOTE:CONTENT" :
			  op->kind == EDIT_COPY_IN ? "LOCAL:REMOTEDIR" : "a path");
		exit(EXIT_USAGE);
	}
}

/* ---- the session ------------------------------------------------------ */

static const char *filter_path(void)
{
	const char *env = getenv("PARTPACK_NBDKIT_FILTER");
	return env && *env ? env : PP_NBDKIT_FILTER;
}

static int start_session(session *s, bool tcg)
{
	int to_child[2], from_child[2];
	if (pipe2(to_child, O_CLOEXEC) || pipe2(from_child, O_CLOEXEC)) {
		cli_error("pipe: %s", strerror(errno));
		return EXIT_ERROR;
	}
	char filter_arg[PATH_MAX + 16], save_arg[PATH_MAX + 32];
	snprintf(filter_arg, sizeof filter_arg, "--filter=%s", filter_path());
	snprintf(save_arg, sizeof save_arg, "partpack-save-writes=%s",
		 s->writes_path);
	char *argv[] = {
		"nbdkit", "--exit-with-parent", "-U", "-", filter_arg,
		"file", (char *)s->archive, save_arg, "--run",
		"exec guestfish --format=raw -a \"nbd://?socket=$unixsocket\"",
		NULL,
	};
	s->pid = fork();
	if (s->pid < 0) {
		cli_error("fork: %s", strerror(errno));
		return EXIT_ERROR;
	}
	if (s->pid == 0) {
		int log = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (log < 0 || dup2(to_child[0], 0) < 0 ||
		    dup2(from_child[1], 1) < 0 || dup2(log, 2) < 0)
			_exit(127);
		if (tcg)
			setenv("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg", 1);
		execvp(argv[0], argv);
		dprintf(2, "nbdkit: %s\n", strerror(errno));
		_exit(127);
	}
	close(to_child[0]);
	close(from_child[1]);
	s->to = fdopen(to_child[1], "w");
	s->from = fdopen(from_child[0], "r");
	if (!s->to || !s->from) {
		cli_error("fdopen: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return 0;
}

/* Ends the session: closing guestfish's input makes it shut the appliance
 * down and exit, nbdkit exits after it.  Returns nbdkit's exit status. */
static int end_session(session *s)
{
	if (s->to)
		fclose(s->to);
	if (s->from)
		fclose(s->from);
	s->to = s->from = NULL;
	int wstatus = 0;
	if (s->pid > 0 && waitpid(s->pid, &wstatus, 0) < 0)
		wstatus = -1;
	s->pid = 0;
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128;
}

/* The last error guestfish or nbdkit logged, for our one-line message. */
static void last_error(const session *s, char *text, size_t size)
{
	snprintf(text, size, "guestfish failed (no message)");
	FILE *log = fopen(s->log_path, "r");
	if (!log)
		return;
	char line[1024];
	while (fgets(line, sizeof line, log)) {
		line[strcspn(line, "\n")] = '\0';
		const char *at = strstr(line, "error: ");
		if (at)
			snprintf(text, size, "%s", at + 7);
		else if (strstr(line, "partpack:"))
			snprintf(text, size, "%s", strstr(line, "partpack:"));
	}
	fclose(log);
}

/*
 * Sends one command and collects what it prints into out (if not NULL).
 * 0 on success; -1 if guestfish ended instead (the command failed).
 */
static int run_command(session *s, const char *command, char *out,
		       size_t size)
{
	if (s->verbose)
		fprintf(stderr, "%s: guestfish: %s\n", cli_program, command);
	if (fprintf(s->to, "%s\necho " MARKER "\n", command) < 0 ||
	    fflush(s->to) != 0)
		return -1;
	size_t used = 0;
	if (out && size)
		out[0] = '\0';
	char line[4096];
	while (fgets(line, sizeof line, s->from)) {
		if (strcmp(line, MARKER "\n") == 0)
			return 0;
		size_t n = strlen(line);
		if (out && used + n < size) {
			memcpy(out + used, line, n + 1);
			used += n;
		}
	}
	return -1;
}

/* A guestfish string argument: in double quotes, with C-style escapes. */
static char *quote(const char *text)
{
	size_t n = strlen(text);
	char *q = malloc(2 * n + 3), *p = q;
	if (!q) {
		cli_error("out of memory");
		exit(EXIT_ERROR);
	}
	*p++ = '"';
	for (; *text; text++) {
		switch (*text) {
		case '"': *p++ = '\\'; *p++ = '"'; break;
		case '\\': *p++ = '\\'; *p++ = '\\'; break;
		case '\n': *p++ = '\\'; *p++ = 'n'; break;
		case '\t': *p++ = '\\'; *p++ = 't'; break;
		default: *p++ = *text;
		}
	}
	*p++ = '"';
	*p = '\0';
	return q;
}

/* ---- which partition -------------------------------------------------- */

/* The device a mountpoint, label: or uuid: selector names, or "". */
static int find_device(session *s, const char *selector, char *device,
		       size_t size)
{
	char out[8192], command[1024];
	device[0] = '\0';
	if (selector[0] == '/') {
		if (run_command(s, "inspect-os", out, sizeof out))
			return -1;
		for (char *root = strtok(out, "\n"); root && !device[0];
		     root = strtok(NULL, "\n")) {
			char points[8192];
			snprintf(command, sizeof command,
				 "inspect-get-mountpoints %s", root);
			if (run_command(s, command, points, sizeof points))
				return -1;
			/* Lines "MOUNTPOINT: DEVICE". */
			size_t n = strlen(selector);
			for (char *line = points; *line;) {
				char *end = strchr(line, '\n');
				if (end)
					*end = '\0';
				if (strncmp(line, selector, n) == 0 &&
				    strncmp(line + n, ": ", 2) == 0)
					snprintf(device, size, "%s", line + n + 2);
				line = end ? end + 1 : line + strlen(line);
			}
		}
		return 0;
	}
	bool label = strncmp(selector, "label:", 6) == 0;
	char *value = quote(strchr(selector, ':') + 1);
	snprintf(command, sizeof command, "-findfs-%s %s",
		 label ? "label" : "uuid", value);
	free(value);
	if (run_command(s, command, out, sizeof out))
		return -1;
	if (strncmp(out, "/dev/", 5) == 0)
		snprintf(device, size, "%.*s", (int)strcspn(out, "\n"), out);
	return 0;
}

/* part-list's entry for partition number, or for the one starting at
 * start when number is 0: fills range and number. */
static int find_partition(session *s, unsigned *number, uint64_t start,
			  pp_range *range)
{
	char out[16384];
	if (run_command(s, "part-list /dev/sda", out, sizeof out))
		return -1;
	unsigned long long num = 0, pstart = 0, psize = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		sscanf(line, " part_num: %llu", &num);
		sscanf(line, " part_start: %llu", &pstart);
		if (sscanf(line, " part_size: %llu", &psize) == 1 &&
		    (*number ? num == *number : pstart == start)) {
			*number = (unsigned)num;
			*range = (pp_range){ .offset = pstart, .length = psize };
			return 0;
		}
	}
	return 1;
}

/* Resolves the selector to partition N of /dev/sda. */
static int resolve(session *s, const char *selector, pp_archive *archive,
		   edit_result *result)
{
	char device[256], message[512];
	pp_error err;
	unsigned number = 0;
	uint64_t start = 0;
	if (!edit_selector_needs_guest(selector)) {
		if (pp_locate_partition(archive, selector, &result->partition,
					&err))
			return cli_fail(&err);
		start = result->partition.offset;
	} else {
		if (find_device(s, selector, device, sizeof device)) {
			last_error(s, message, sizeof message);
			cli_error("%s: %s", s->archive, message);
			return EXIT_ERROR;
		}
		if (!device[0]) {
			cli_error("%s: selector %s: not found in the image",
				  s->archive, selector);
			return EXIT_ERROR;
		}
		if (sscanf(device, "/dev/sd%*[a-z]%u", &number) != 1 ||
		    strncmp(device, "/dev/sda", 8) != 0) {
			cli_error("%s: selector %s is %s, not a partition of "
				  "the image: only a partition can be patched",
				  s->archive, selector, device);
			return EXIT_ERROR;
		}
	}
	int found = find_partition(s, &number, start, &result->partition);
	if (found != 0) {
		cli_error("%s: selector %s: no such partition in the image",
			  s->archive, selector);
		return EXIT_ERROR;
	}
	result->number = number;
	return 0;
}

/* ---- the edits -------------------------------------------------------- */

/* "A:B" as two quoted guestfish arguments. */
static char *quoted_pair(const char *arg, bool first_is_local)
{
	const char *colon = strchr(arg, ':');
	char *first = strndup(arg, (size_t)(colon - arg));
	char *resolved = first_is_local ? realpath(first, NULL) : NULL;
	char *a = quote(resolved ? resolved : first), *b = quote(colon + 1);
	char *both = malloc(strlen(a) + strlen(b) + 2);
	if (both)
		sprintf(both, "%s %s", a, b);
	free(first);
	free(resolved);
	free(a);
	free(b);
	return both;
}

static int run_script(session *s, const char *path)
{
	FILE *script = fopen(path, "r");
	if (!script) {
		cli_error("%s: %s", path, strerror(errno));
		return EXIT_ERROR;
	}
	char line[8192];
	int status = 0;
	while (status == 0 && fgets(line, sizeof line, script)) {
		line[strcspn(line, "\n")] = '\0';
		const char *text = line + strspn(line, " \t");
		if (*text == '\0' || *text == '#')
			continue;
		status = run_command(s, text, NULL, 0) ? -1 : 0;
	}
	fclose(script);
	return status;
}

static int run_op(session *s, const edit_op *op)
{
	static const char *const commands[] = {
		[EDIT_UPLOAD] = "upload", [EDIT_WRITE] = "write",
		[EDIT_MKDIR] = "mkdir-p", [EDIT_DELETE] = "rm-rf",
		[EDIT_COPY_IN] = "copy-in",
	};
	if (op->kind == EDIT_SCRIPT)
		return run_script(s, op->arg);
	char *args = op->kind == EDIT_MKDIR || op->kind == EDIT_DELETE ?
		quote(op->arg) :
		quoted_pair(op->arg, op->kind != EDIT_WRITE);
	char *command = args ? malloc(strlen(args) + 16) : NULL;
	if (!command) {
		free(args);
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	sprintf(command, "%s %s", commands[op->kind], args);
	int status = run_command(s, command, NULL, 0);
	free(command);
	free(args);
	return status;
}

/* ---- the writes the guest made ---------------------------------------- */

/* Reads the file partpack-save-writes left (its layout is in the filter). */
static int load_writes(session *s, edit_result *result)
{
	int fd = open(s->writes_path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	result->mapping_len = (size_t)st.st_size;
	result->mapping = mmap(NULL, result->mapping_len, PROT_READ,
			       MAP_PRIVATE, fd, 0);
	close(fd);
	if (result->mapping == MAP_FAILED) {
		result->mapping = NULL;
		return -1;
	}
	const char *p = result->mapping, *end = p + result->mapping_len;
	size_t capacity = 0;
	bool complete = false;
	while (p < end && !complete) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;
		unsigned long long a, b;
		char line[128];
		snprintf(line, sizeof line, "%.*s", (int)(eol - p), p);
		p = eol + 1;
		if (strcmp(line, "end") == 0) {
			complete = true;
		} else if (sscanf(line, "refused %llu %llu", &a, &b) == 2) {
			result->refused = true;
			result->refused_offset = a;
			result->refused_byte = b;
		} else if (sscanf(line, "write %llu %llu", &a, &b) == 2) {
			if (b > (uint64_t)(end - p))
				break;
			if (result->write_count == capacity) {
				capacity = capacity ? 2 * capacity : 64;
				edit_write *grown = realloc(result->writes,
					capacity * sizeof *grown);
				if (!grown)
					break;
				result->writes = grown;
			}
			result->writes[result->write_count++] = (edit_write){
				.offset = a, .length = (size_t)b,
				.data = (const uint8_t *)p,
			};
			p += b;
		} else if (strcmp(line, "partpack-writes 1") != 0) {
			break;
		}
	}
	return complete ? 0 : -1;
}

/* ---- one run ---------------------------------------------------------- */

/* Launch, resolve, edit, unmount.  -1: guestfish failed (see the log). */
static int guest_work(session *s, const char *selector, pp_archive *archive,
		      const edit_op *ops, size_t count, edit_result *result,
		      bool *launch_failed)
{
	*launch_failed = false;
	if (run_command(s, "run", NULL, 0)) {
		*launch_failed = true;
		return -1;
	}
	int status = resolve(s, selector, archive, result);
	if (status != 0 || count == 0)
		return status;
	char command[64];
	snprintf(command, sizeof command, "mount /dev/sda%u /", result->number);
	if (run_command(s, command, NULL, 0))
		return -1;
	for (size_t i = 0; i < count; i++) {
		status = run_op(s, &ops[i]);
		if (status)
			return status;
	}
	/* Unmounting writes everything back before the session ends. */
	return run_command(s, "umount-all", NULL, 0) ? -1 : 0;
}

int edit_run(pp_archive *archive, const char *path, const char *selector,
	     const edit_op *ops, size_t count, bool verbose,
	     edit_result *result)
{
	*result = (edit_result){ 0 };
	session s = { .archive = path, .verbose = verbose };
	const char *tmp = getenv("TMPDIR");
	snprintf(s.dir, sizeof s.dir, "%s/partpatch.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(s.dir)) {
		cli_error("%s: %s", s.dir, strerror(errno));
		return EXIT_ERROR;
	}
	snprintf(s.log_path, sizeof s.log_path, "%s/log", s.dir);
	snprintf(s.writes_path, sizeof s.writes_path, "%s/writes", s.dir);

	bool tcg = getenv("LIBGUESTFS_BACKEND_SETTINGS") != NULL, launch_failed;
	int status = start_session(&s, false);
	if (status == 0)
		status = guest_work(&s, selector, archive, ops, count, result,
				    &launch_failed);
	if (status == -1 && launch_failed && !tcg) {
		/* As partpack does: KVM fails on some hosts ("failed to set
		 * MSR"); one retry under TCG. */
		end_session(&s);
		fprintf(stderr, "%s: the appliance failed to launch; retrying "
			"with TCG (LIBGUESTFS_BACKEND_SETTINGS=force_tcg)\n",
			cli_program);
		unlink(s.log_path);
		status = start_session(&s, true);
		if (status == 0)
			status = guest_work(&s, selector, archive, ops, count,
					    result, &launch_failed);
	}
	int session_status = end_session(&s);
	bool saved = count > 0 && load_writes(&s, result) == 0;
	char message[512];
	if (result->refused) {
		/* Whatever else failed, this is why. */
		cli_error("%s: the edit writes outside the stored ranges (at "
			  "image offset %llu, byte %llu is compressed data), so "
			  "nothing was changed; keep the partition raw with "
			  "partpack --keep-raw", path,
			  (unsigned long long)result->refused_offset,
			  (unsigned long long)result->refused_byte);
		status = EXIT_NOT_STORED;
	} else if (status == -1) {
		last_error(&s, message, sizeof message);
		cli_error("%s: %s", path, message);
		status = EXIT_ERROR;
	} else if (status == 0 && count > 0 &&
		   (session_status != 0 || !saved)) {
		last_error(&s, message, sizeof message);
		cli_error("%s: the edit did not finish: %s", path, message);
		status = EXIT_ERROR;
	}
	unlink(s.writes_path);
	unlink(s.log_path);
	rmdir(s.dir);
	return status;
}

void edit_result_free(edit_result *result)
{
	if (result->mapping)
		munmap(result->mapping, result->mapping_len);
	free(result->writes);
	*result = (edit_result){ 0 };
}
