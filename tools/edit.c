/*
 * edit.c - mountpoint selectors and file edits for partpatch, by the
 * libguestfs appliance on the archive itself.
 *
 * nbdkit serves the archive's image as a raw disk on a unix socket in a
 * private directory, and the appliance works on that disk:
 *
 *   nbdkit -f -U DIR/nbd -P DIR/pid --filter=FILTER \
 *          file file=ARCHIVE partpack-save-writes=DIR/writes
 *
 * The filter never writes the archive here: it takes the guest's writes
 * (those wholly inside stored data; it refuses any other with EPERM) and at
 * disconnect saves them to DIR/writes.  partpatch then applies them as one
 * patch, the same transaction as any other (undo record, checks, --output),
 * or none of them if the session failed or a write was refused.  So an edit
 * lands whole or not at all, and a crash during the session changes
 * nothing.  file= names the archive as one argument, so a name such as
 * "cache=none.xz" or "-r.xz" is a file, not a parameter or an option.
 *
 * The appliance is driven through libguestfs's C API (lib/guestfs.c loads
 * it with dlopen, so nothing here links it): the disk is added with
 * protocol "nbd" and server "unix:DIR/nbd", and each selector step and
 * each operation is one call whose strings are arguments.  So no string
 * ever becomes text for a command interpreter: not the root filesystem
 * inspection names (a btrfs subvolume is "btrfsvol:/dev/sda2/NAME", NAME
 * the image's, and may read "root |touch /tmp/x"), not the mountpoints of
 * the guest's fstab, not the user's paths.  guestfish's --listen/--remote
 * protocol keeps arguments apart too, but its server forks away from us
 * (it outlives a killed partpatch), lives in a fixed /tmp place, and
 * answers in text to parse back; the C API gives lists and structs, and
 * libguestfs stops the appliance if we die.
 *
 * --script FILE is the exception: its lines are guestfish commands, by
 * definition text for guestfish to parse, so a run with a script talks to
 * guestfish as a script would (one command at a time, reading each
 * command's output up to a marker we ask it to echo).  A script is the
 * user's own, trusted input (it may run host commands: guestfish's !cmd);
 * no string from the image is ever sent there.  The partition is found
 * before that session (in a session of its own when the appliance must
 * find it), and the other operations of such a run are sent with every
 * string quoted, byte by byte.
 */
#include "edit.h"
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "appliance.h"

extern char **environ;

#define FILTER_NAME "nbdkit-partpack-filter.so"

/* What a session returns, besides exit statuses, when guestfish failed
 * (its log says why) or a call of the library did (its pp_error says
 * why). */
#define FISH_FAILED (-1)
#define CALL_FAILED (-2)

/* guestfish reads a script (a pipe) with fgets into 8192 bytes: a longer
 * line would be split, and its tail run as a command of its own. */
#define SCRIPT_LINE_MAX 8190

/* What one appliance session works in. */
typedef struct session {
	char dir[PATH_MAX - 64]; /* private: socket, pid file, logs, writes */
	char socket[PATH_MAX];
	char writes[PATH_MAX];
	char filter[PATH_MAX];
	pid_t server;           /* nbdkit */
	const char *archive;
	bool verbose;
	unsigned temp_files;    /* --write contents, DIR/write-N */
	bool tcg;               /* the appliance needed TCG: start there */
} session;

/* The private directory's file name. */
static void session_path(const session *s, const char *name, char *path,
			 size_t size)
{
	snprintf(path, size, "%s/%s", s->dir, name);
}

bool edit_selector_needs_guest(const char *selector)
{
	enum pp_selector_kind kind = pp_classify_selector(selector);
	return kind == PP_SELECTOR_LABEL || kind == PP_SELECTOR_MOUNTPOINT ||
	       kind == PP_SELECTOR_DEVICE;
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

/* ---- local files ------------------------------------------------------ */

static void free_lines(char **lines, size_t count)
{
	for (size_t i = 0; lines && i < count; i++)
		free(lines[i]);
	free(lines);
}

/* The script's command lines (blank lines and comments left out), each
 * whole; NULL after printing why if it cannot be read or has a line
 * guestfish would not read whole. */
static char **read_script(const char *path, size_t *count)
{
	FILE *file = fopen(path, "r");
	if (!file) {
		cli_error("--script %s: %s", path, strerror(errno));
		return NULL;
	}
	char **lines = NULL, *line = NULL;
	size_t capacity = 0, number = 0;
	bool ok = true;
	ssize_t len;
	*count = 0;
	while (ok && (len = getline(&line, &capacity, file)) >= 0) {
		number++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		const char *text = line + strspn(line, " \t");
		bool nul = strlen(line) != (size_t)len;
		if (nul || len > SCRIPT_LINE_MAX) {
			cli_error("--script %s: line %zu %s", path, number,
				  nul ? "holds a NUL byte: not a text file" :
				  "is longer than 8190 bytes, the most "
				  "guestfish reads as one line");
			ok = false;
		} else if (*text && *text != '#') {
			char **grown = realloc(lines,
					       (*count + 2) * sizeof *grown);
			ok = grown && (grown[*count] = strdup(line));
			lines = grown ? grown : lines;
			if (ok)
				lines[++*count] = NULL;
			else
				cli_error("out of memory");
		}
	}
	if (ok && ferror(file)) {
		cli_error("--script %s: %s", path, strerror(errno));
		ok = false;
	}
	free(line);
	fclose(file);
	if (!ok) {
		free_lines(lines, *count);
		return NULL;
	}
	return lines ? lines : calloc(1, sizeof *lines);
}

/* Exists, is readable, and is a file (or, if dir_ok, a directory). */
static int check_local(const char *option, const char *path, bool dir_ok)
{
	struct stat st;
	if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
		cli_error("%s %s: %s", option, path, strerror(errno));
		return EXIT_ERROR;
	}
	if (S_ISDIR(st.st_mode) && !dir_ok) {
		cli_error("%s %s: is a directory", option, path);
		return EXIT_ERROR;
	}
	if (S_ISDIR(st.st_mode) && access(path, X_OK) != 0) {
		cli_error("%s %s: %s", option, path, strerror(errno));
		return EXIT_ERROR;
	}
	return 0;
}

int edit_check_files(const edit_op *ops, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const edit_op *op = &ops[i];
		bool has_local = op->kind == EDIT_UPLOAD ||
			op->kind == EDIT_COPY_IN;
		char *local = has_local ?
			strndup(op->arg, strcspn(op->arg, ":")) : NULL;
		int status = 0;
		size_t lines = 0;
		if (local)
			status = check_local(option_names[op->kind], local,
					     op->kind == EDIT_COPY_IN);
		else if (op->kind == EDIT_SCRIPT)
			status = check_local("--script", op->arg, false);
		if (op->kind == EDIT_SCRIPT && status == 0) {
			char **text = read_script(op->arg, &lines);
			status = text ? 0 : EXIT_ERROR;
			free_lines(text, lines);
		}
		free(local);
		if (status)
			return status;
	}
	return 0;
}

/* ---- the filter ------------------------------------------------------- */

/* nbdkit's filter directory (nbdkit --dump-config prints filterdir=...),
 * or "" if nbdkit cannot say; -1 if nbdkit cannot be run at all. */
static int nbdkit_filterdir(char *dir, size_t size)
{
	int out[2];
	dir[0] = '\0';
	if (pipe2(out, O_CLOEXEC))
		return -1;
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, out[1], 1);
	posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
	char *argv[] = { "nbdkit", "--dump-config", NULL };
	pid_t pid;
	int failed = posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	close(out[1]);
	FILE *config = failed ? NULL : fdopen(out[0], "r");
	char line[PATH_MAX];
	while (config && fgets(line, sizeof line, config)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "filterdir=", 10) == 0)
			snprintf(dir, size, "%s", line + 10);
	}
	if (config)
		fclose(config);
	else
		close(out[0]);
	int wstatus = 0;
	if (!failed)
		waitpid(pid, &wstatus, 0);
	return failed || (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 127) ?
		-1 : 0;
}

static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Whether DIR holds the filter, its path then in PATH. */
static bool filter_in(char *path, size_t size, const char *dir)
{
	int n = snprintf(path, size, "%s/" FILTER_NAME, dir);
	return n > 0 && (size_t)n < size && is_file(path);
}

/*
 * The filter is found at run time, because the tools and the filter are
 * installed apart (the filter where nbdkit looks for filters): the
 * environment's PARTPACK_NBDKIT_FILTER, then nbdkit's own filter
 * directory, then beside this program (a build tree).
 */
static int find_filter(char *path, size_t size)
{
	const char *env = getenv("PARTPACK_NBDKIT_FILTER");
	if (env && *env) {
		if (is_file(env)) {
			snprintf(path, size, "%s", env);
			return 0;
		}
		cli_error("PARTPACK_NBDKIT_FILTER=%s: %s", env,
			  access(env, F_OK) ? strerror(errno) : "not a file");
		return EXIT_ERROR;
	}
	char filterdir[PATH_MAX], self[PATH_MAX] = "";
	if (nbdkit_filterdir(filterdir, sizeof filterdir) != 0) {
		cli_error("nbdkit cannot be run (Debian package nbdkit): file "
			  "operations and mountpoint, label: and uuid: "
			  "selectors serve the archive with it");
		return EXIT_ERROR;
	}
	if (filterdir[0] && filter_in(path, size, filterdir))
		return 0;
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	if (self[0] && filter_in(path, size, self))
		return 0;
	cli_error("the nbdkit filter " FILTER_NAME " is not installed: "
		  "looked in PARTPACK_NBDKIT_FILTER (not set), nbdkit's filter "
		  "directory (%s) and beside %s (%s)",
		  filterdir[0] ? filterdir : "nbdkit did not say", cli_program,
		  self[0] ? self : "unknown");
	return EXIT_ERROR;
}

/* ---- the server ------------------------------------------------------- */

/* The last error nbdkit or guestfish logged to DIR/name (failing any
 * line that says "error", its last line), for our one-line message. */
static void last_error(const session *s, const char *name, char *text,
		       size_t size)
{
	char path[PATH_MAX], line[512];
	session_path(s, name, path, sizeof path);
	FILE *log = fopen(path, "r");
	bool found = false;
	while (log && fgets(line, sizeof line, log)) {
		line[strcspn(line, "\n")] = '\0';
		const char *at = strstr(line, "error: ");
		const char *said = at ? at + 7 : strstr(line, "partpack:");
		if (said || (!found && line[0]))
			snprintf(text, size, "%s", said ? said : line);
		found = found || said;
	}
	if (log)
		fclose(log);
}

/* Runs argv with stdin from /dev/null and stderr appended to DIR/log. */
static int spawn_logged(const session *s, const char *log, char *const argv[],
			pid_t *pid)
{
	char log_path[PATH_MAX];
	session_path(s, log, log_path, sizeof log_path);
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&actions, 2, log_path,
					 O_WRONLY | O_CREAT | O_APPEND, 0600);
	int failed = posix_spawnp(pid, argv[0], &actions, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	if (failed)
		cli_error("%s: %s", argv[0], strerror(failed));
	return failed ? EXIT_ERROR : 0;
}

/*
 * Starts nbdkit and waits until it serves: it writes its pid file once the
 * socket listens, and exits at once if it cannot start (a filter that does
 * not load, a socket path too long).
 */
static int start_server(session *s)
{
	char filter_arg[PATH_MAX + 16], save_arg[PATH_MAX + 32];
	char pid_path[PATH_MAX], *file_arg = NULL;
	session_path(s, "pid", pid_path, sizeof pid_path);
	snprintf(filter_arg, sizeof filter_arg, "--filter=%s", s->filter);
	snprintf(save_arg, sizeof save_arg, "partpack-save-writes=%s",
		 s->writes);
	if (asprintf(&file_arg, "file=%s", s->archive) < 0) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	char *argv[] = {
		"nbdkit", "-f", "--exit-with-parent", "-U", s->socket,
		"-P", pid_path, filter_arg, "file", file_arg, save_arg, NULL,
	};
	/* A server before this one (a run with a script has two) leaves its
	 * socket and pid file; nbdkit would not bind over the socket. */
	unlink(pid_path);
	unlink(s->socket);
	int status = spawn_logged(s, "nbdkit.log", argv, &s->server);
	free(file_arg);
	if (status)
		return status;
	for (int waited_ms = 0; access(pid_path, F_OK) != 0; waited_ms += 10) {
		int wstatus;
		if (waitpid(s->server, &wstatus, WNOHANG) == s->server ||
		    waited_ms > 60000) {
			char message[512] = "it did not start";
			last_error(s, "nbdkit.log", message, sizeof message);
			if (waited_ms > 60000)
				kill(s->server, SIGTERM);
			else
				s->server = 0;
			cli_error("%s: nbdkit cannot serve it: %s", s->archive,
				  message);
			return EXIT_ERROR;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	if (s->verbose)
		fprintf(stderr, "%s: %s: served by nbdkit with %s\n",
			cli_program, s->archive, s->filter);
	return 0;
}

/* Stops nbdkit once the appliance is gone: nbdkit finishes the ended
 * connection (the filter saves the writes) before it exits. */
static void stop_server(session *s)
{
	if (s->server <= 0)
		return;
	kill(s->server, SIGTERM);
	while (waitpid(s->server, NULL, 0) < 0 && errno == EINTR)
		continue;
	s->server = 0;
}

/* ---- the writes the guest made ---------------------------------------- */

/*
 * Reads the file partpack-save-writes left (the filter documents the
 * layout).  This is the one reader of it: a change of its layout is here.
 */
static int load_writes(const session *s, edit_result *result)
{
	int fd = open(s->writes, O_RDONLY | O_CLOEXEC);
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

/* ---- the appliance, through the C API ----------------------------------- */

/* --write's content, in a file of the private directory to upload. */
static int content_file(session *s, const char *content, char *path,
			size_t size)
{
	char name[32];
	snprintf(name, sizeof name, "write-%u", s->temp_files++);
	session_path(s, name, path, size);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t len = strlen(content);
	bool ok = fd >= 0 && write(fd, content, len) == (ssize_t)len;
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	if (!ok)
		cli_error("%s: %s", path, strerror(errno));
	return ok ? 0 : EXIT_ERROR;
}

/* One operation; "A:B" splits at the first colon. */
static int guest_op(session *s, pp_guestfs *g, const edit_op *op,
		    pp_error *err)
{
	const char *colon = strchr(op->arg, ':');
	char *first = colon ? strndup(op->arg, (size_t)(colon - op->arg)) :
		NULL;
	char temp[PATH_MAX];
	int status = 0;
	if (colon && !first) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	if (s->verbose)
		fprintf(stderr, "%s: %s %s\n", cli_program,
			option_names[op->kind], op->arg);
	switch (op->kind) {
	case EDIT_UPLOAD:
		status = pp_guestfs_upload(g, first, colon + 1, err);
		break;
	case EDIT_WRITE:
		status = content_file(s, colon + 1, temp, sizeof temp);
		if (status)
			break;
		status = pp_guestfs_upload(g, temp, first, err);
		unlink(temp);
		break;
	case EDIT_MKDIR:
		status = pp_guestfs_mkdir(g, op->arg, err);
		break;
	case EDIT_DELETE:
		status = pp_guestfs_remove(g, op->arg, err);
		break;
	case EDIT_COPY_IN:
		status = pp_guestfs_copy_in(g, first, colon + 1, err);
		break;
	case EDIT_SCRIPT:
		break;  /* never here: a run with a script is guestfish's */
	}
	free(first);
	return status;
}

/* The partition selector names, by the appliance or the table. */
static int find_partition(pp_guestfs *g, pp_archive *archive,
			  const char *selector, pp_range *range, pp_error *err)
{
	if (edit_selector_needs_guest(selector))
		return pp_guestfs_resolve(g, selector, range, err);
	return pp_locate_partition(archive, selector, range, err);
}

/* Launch, resolve, mount, edit, shut down: one launch.  An exit status,
 * or CALL_FAILED with *err saying why. */
static int guest_session(session *s, pp_archive *archive,
			 const char *selector, const edit_op *ops,
			 size_t count, edit_result *result, pp_error *err)
{
	pp_guestfs *g = NULL;
	int status = pp_guestfs_open_nbd(s->socket, s->archive, &g, err);
	if (status == 0)
		s->tcg = pp_guestfs_retried_tcg(g);
	if (status == 0)
		status = find_partition(g, archive, selector,
					&result->partition, err);
	if (status == 0 && count > 0)
		status = pp_guestfs_mount(g, result->partition.offset,
					  &result->number, err);
	for (size_t i = 0; status == 0 && i < count; i++)
		status = guest_op(s, g, &ops[i], err);
	if (status == 0 && count > 0)
		status = pp_guestfs_finish(g, err);
	pp_guestfs_close(g);
	return status < 0 ? CALL_FAILED : status;
}

/* ---- the appliance, through guestfish, for a script --------------------- */

typedef struct fish {
	pid_t pid;
	FILE *to;               /* guestfish's standard input */
	FILE *from;             /* its standard output */
	char marker[48];        /* echoed after each command: "--done-N--\n",
				 * N random, so no output can forge it */
} fish;

/* "nbd://?socket=PATH" with PATH percent-encoded: guestfish's -a decodes
 * the query value, so any directory name works. */
static void nbd_uri(const char *socket_path, char *uri, size_t size)
{
	size_t used = (size_t)snprintf(uri, size, "nbd://?socket=");
	for (const unsigned char *p = (const unsigned char *)socket_path;
	     *p && used + 4 < size; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/._-", *p))
			uri[used++] = (char)*p;
		else
			used += (size_t)snprintf(uri + used, size - used,
						 "%%%02X", *p);
	}
	uri[used] = '\0';
}

static int start_fish(const session *s, bool tcg, fish *f)
{
	int to_child[2], from_child[2];
	if (pipe2(to_child, O_CLOEXEC) || pipe2(from_child, O_CLOEXEC)) {
		cli_error("pipe: %s", strerror(errno));
		return EXIT_ERROR;
	}
	char uri[3 * PATH_MAX + 32], log_path[PATH_MAX];
	nbd_uri(s->socket, uri, sizeof uri);
	session_path(s, "guestfish.log", log_path, sizeof log_path);
	char *argv[] = { "guestfish", "--format=raw", "-a", uri, NULL };
	f->pid = fork();
	if (f->pid < 0) {
		cli_error("fork: %s", strerror(errno));
		return EXIT_ERROR;
	}
	if (f->pid == 0) {
		int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (log < 0 || dup2(to_child[0], 0) < 0 ||
		    dup2(from_child[1], 1) < 0 || dup2(log, 2) < 0)
			_exit(127);
		if (tcg)
			setenv("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg", 1);
		execvp(argv[0], argv);
		dprintf(2, "guestfish: %s\n", strerror(errno));
		_exit(127);
	}
	close(to_child[0]);
	close(from_child[1]);
	uint64_t nonce = 0;
	if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce)
		nonce = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	snprintf(f->marker, sizeof f->marker, "--partpatch-done-%016llx--\n",
		 (unsigned long long)nonce);
	f->to = fdopen(to_child[1], "w");
	f->from = fdopen(from_child[0], "r");
	if (!f->to || !f->from) {
		cli_error("fdopen: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return 0;
}

/* Closing guestfish's input makes it shut the appliance down and exit. */
static int end_fish(fish *f)
{
	if (f->to)
		fclose(f->to);
	if (f->from)
		fclose(f->from);
	f->to = f->from = NULL;
	int wstatus = 0;
	if (f->pid > 0 && waitpid(f->pid, &wstatus, 0) < 0)
		wstatus = -1;
	f->pid = 0;
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128;
}

/*
 * Sends one command line and reads what it prints up to the marker.
 * 0 on success; FISH_FAILED if guestfish ended instead (the command failed:
 * guestfish reading a pipe stops at the first failing command).
 */
static int fish_command(const session *s, fish *f, const char *command)
{
	if (s->verbose)
		fprintf(stderr, "%s: guestfish: %s\n", cli_program, command);
	if (fprintf(f->to, "%s\necho %s", command, f->marker) < 0 ||
	    fflush(f->to) != 0)
		return FISH_FAILED;
	char line[4096];
	while (fgets(line, sizeof line, f->from)) {
		if (strcmp(line, f->marker) == 0)
			return 0;
	}
	return FISH_FAILED;
}

/* A guestfish string argument (malloc'd): the user's own text in double
 * quotes, each byte but letters, digits and a few marks as \xHH, so that it
 * reads back as exactly those bytes. */
static char *quote(const char *text)
{
	char *out = malloc(4 * strlen(text) + 3);
	if (!out)
		return NULL;
	size_t used = 0;
	out[used++] = '"';
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/._-+,=@ ", *p))
			out[used++] = (char)*p;
		else
			used += (size_t)sprintf(out + used, "\\x%02x", *p);
	}
	out[used++] = '"';
	out[used] = '\0';
	return out;
}

/* "COMMAND [LOCAL] REMOTE" with both quoted, for guestfish; NULL after
 * printing why. */
static char *fish_line(const char *command, const char *local,
		       const char *remote)
{
	char *a = local ? quote(local) : strdup(""), *b = quote(remote);
	char *line = NULL;
	if (!a || !b || asprintf(&line, "%s %s%s%s", command, a,
				 local ? " " : "", b) < 0) {
		cli_error("out of memory");
		line = NULL;
	} else if (strlen(line) > SCRIPT_LINE_MAX) {
		cli_error("%s %s: too long for a guestfish command line",
			  command, remote);
		free(line);
		line = NULL;
	}
	free(a);
	free(b);
	return line;
}

/* An operation of a script run as one guestfish command.  0, FISH_FAILED if
 * guestfish failed, or an exit status after printing why. */
static int fish_op(session *s, fish *f, const edit_op *op)
{
	static const char *const commands[] = {
		[EDIT_UPLOAD] = "upload", [EDIT_WRITE] = "upload",
		[EDIT_MKDIR] = "mkdir-p", [EDIT_DELETE] = "rm-rf",
		[EDIT_COPY_IN] = "copy-in",
	};
	const char *colon = strchr(op->arg, ':');
	char *before = colon ? strndup(op->arg, (size_t)(colon - op->arg)) :
		NULL;
	const char *remote = !colon ? op->arg :
		op->kind == EDIT_WRITE ? before : colon + 1;
	char local[PATH_MAX];
	int status = 0;
	if (colon && !before) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	if (op->kind == EDIT_WRITE) {
		status = content_file(s, colon + 1, local, sizeof local);
	} else if (colon && !realpath(before, local)) {
		/* Absolute: guestfish reads "-" as its standard input. */
		cli_error("%s %s: %s", option_names[op->kind], before,
			  strerror(errno));
		status = EXIT_ERROR;
	}
	char *line = status ? NULL :
		fish_line(commands[op->kind], colon ? local : NULL, remote);
	if (status == 0)
		status = !line ? EXIT_ERROR :
			fish_command(s, f, line) ? FISH_FAILED : 0;
	if (op->kind == EDIT_WRITE)
		unlink(local);
	free(line);
	free(before);
	return status;
}

/* Launch, mount, the operations and the scripts' lines, unmount.  0,
 * FISH_FAILED if guestfish failed (*launch_failed if at "run"), or an
 * exit status. */
static int fish_work(session *s, fish *f, unsigned number,
		     const edit_op *ops, size_t count, bool *launch_failed)
{
	char command[64];
	*launch_failed = fish_command(s, f, "run") != 0;
	if (*launch_failed)
		return FISH_FAILED;
	snprintf(command, sizeof command, "mount /dev/sda%u /", number);
	int status = fish_command(s, f, command) ? FISH_FAILED : 0;
	for (size_t i = 0; status == 0 && i < count; i++) {
		if (ops[i].kind != EDIT_SCRIPT) {
			status = fish_op(s, f, &ops[i]);
			continue;
		}
		size_t lines = 0;
		char **text = read_script(ops[i].arg, &lines);
		status = text ? 0 : EXIT_ERROR;
		for (size_t k = 0; status == 0 && k < lines; k++)
			status = fish_command(s, f, text[k]) ? FISH_FAILED : 0;
		free_lines(text, lines);
	}
	/* Unmounting writes everything back before the session ends. */
	if (status)
		return status;
	return fish_command(s, f, "umount-all") ? FISH_FAILED : 0;
}

/* The session of a run with a script: guestfish, retried once under TCG
 * if the appliance does not start and the user chose no backend. */
static int fish_session(session *s, unsigned number, const edit_op *ops,
			size_t count)
{
	bool tcg = getenv("LIBGUESTFS_BACKEND_SETTINGS") ||
		getenv("LIBGUESTFS_BACKEND") || s->tcg, launch_failed = false;
	fish f = { 0 };
	/* A guestfish that stopped is seen when its output ends, not by a
	 * signal when we write to it. */
	signal(SIGPIPE, SIG_IGN);
	int status = start_fish(s, s->tcg, &f);
	if (status == 0)
		status = fish_work(s, &f, number, ops, count, &launch_failed);
	if (status == FISH_FAILED && launch_failed && !tcg) {
		end_fish(&f);
		fprintf(stderr, "%s: the appliance failed to launch; retrying "
			"with TCG (LIBGUESTFS_BACKEND_SETTINGS=force_tcg)\n",
			cli_program);
		status = start_fish(s, true, &f);
		if (status == 0)
			status = fish_work(s, &f, number, ops, count,
					   &launch_failed);
	}
	int exit_status = end_fish(&f);
	if (status == 0 && exit_status != 0) {
		cli_error("%s: guestfish exited with status %d", s->archive,
			  exit_status);
		return EXIT_ERROR;
	}
	return status;
}

/* ---- one run ---------------------------------------------------------- */

/* The N of /dev/sdaN for the partition at offset, from the archive's own
 * table (numbered as the kernel numbers them). */
static int partition_number(const session *s, pp_archive *archive,
			    uint64_t offset, unsigned *number)
{
	pp_partition_info *parts;
	size_t count;
	pp_error err;
	if (pp_list_partitions(archive, &parts, &count, &err))
		return cli_fail(&err);
	*number = 0;
	for (size_t i = 0; i < count; i++) {
		if (parts[i].offset == offset)
			*number = parts[i].number;
	}
	free(parts);
	if (*number)
		return 0;
	cli_error("%s: no partition of the table starts at byte %llu",
		  s->archive, (unsigned long long)offset);
	return EXIT_ERROR;
}

/* Removes what the private directory holds (only files of ours), then
 * the directory. */
static void remove_dir(const session *s)
{
	DIR *dir = opendir(s->dir);
	struct dirent *entry;
	while (dir && (entry = readdir(dir)))
		if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, ".."))
			unlinkat(dirfd(dir), entry->d_name, 0);
	if (dir)
		closedir(dir);
	rmdir(s->dir);
}

static int open_session(session *s, const char *path, bool verbose)
{
	*s = (session){ .archive = path, .verbose = verbose };
	int status = find_filter(s->filter, sizeof s->filter);
	if (status)
		return status;
	const char *tmp = getenv("TMPDIR");
	snprintf(s->dir, sizeof s->dir, "%s/partpatch.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(s->dir)) {
		cli_error("%s: %s", s->dir, strerror(errno));
		s->dir[0] = '\0';
		return EXIT_ERROR;
	}
	session_path(s, "nbd", s->socket, sizeof s->socket);
	session_path(s, "writes", s->writes, sizeof s->writes);
	return 0;
}

/*
 * A run with a script: the partition first, then guestfish's session.
 * The library finds it in process where it can (the table, label: and
 * uuid: by probing, a mountpoint in an ext root's fstab); else the
 * appliance does, in a session of its own, whose server is stopped (so its
 * empty save file is complete) and the file removed before the second.
 */
static int script_run(session *s, pp_archive *archive, const char *selector,
		      const edit_op *ops, size_t count, edit_result *result,
		      pp_error *err)
{
	int status = pp_locate_partition(archive, selector, &result->partition,
					 err);
	if (status == PP_ERR_USAGE && edit_selector_needs_guest(selector)) {
		status = start_server(s);
		if (status == 0)
			status = guest_session(s, archive, selector, NULL, 0,
					       result, err);
		stop_server(s);
		unlink(s->writes);
	} else if (status) {
		status = CALL_FAILED;
	}
	if (status == 0)
		status = partition_number(s, archive, result->partition.offset,
					  &result->number);
	if (status == 0)
		status = start_server(s);
	return status ? status : fish_session(s, result->number, ops, count);
}

/* The one line that says how the run ended, whatever failed first: a
 * refused write is why, then the appliance's or guestfish's error. */
static int verdict(const session *s, int status, const pp_error *err,
		   bool saved, size_t count, const edit_result *result)
{
	char message[512] = "guestfish failed (no message)";
	if (result->refused) {
		cli_error("%s: the edit writes outside the stored ranges (at "
			  "image offset %llu, byte %llu is compressed data), so "
			  "nothing was changed; keep the partition raw with "
			  "partpack --keep-raw", s->archive,
			  (unsigned long long)result->refused_offset,
			  (unsigned long long)result->refused_byte);
		return EXIT_NOT_STORED;
	}
	if (status == CALL_FAILED)
		return cli_fail(err);
	if (status == FISH_FAILED) {
		last_error(s, "guestfish.log", message, sizeof message);
		cli_error("%s: %s", s->archive, message);
		return EXIT_ERROR;
	}
	if (status == 0 && count > 0 && !saved) {
		snprintf(message, sizeof message, "the filter saved no writes");
		last_error(s, "nbdkit.log", message, sizeof message);
		cli_error("%s: the edit did not finish: %s", s->archive,
			  message);
		return EXIT_ERROR;
	}
	return status;
}

int edit_run(pp_archive *archive, const char *path, const char *selector,
	     const edit_op *ops, size_t count, bool verbose,
	     edit_result *result)
{
	*result = (edit_result){ 0 };
	session s;
	pp_error err;
	bool script = false;
	for (size_t i = 0; i < count; i++)
		script = script || ops[i].kind == EDIT_SCRIPT;
	int status = open_session(&s, path, verbose);
	if (status == 0 && script) {
		status = script_run(&s, archive, selector, ops, count, result,
				    &err);
	} else if (status == 0) {
		status = start_server(&s);
		if (status == 0)
			status = guest_session(&s, archive, selector, ops,
					       count, result, &err);
	}
	stop_server(&s);
	/* Read even after a failure: a refused write says why. */
	bool saved = count > 0 && load_writes(&s, result) == 0;
	status = verdict(&s, status, &err, saved, count, result);
	if (s.dir[0])
		remove_dir(&s);
	return status;
}

void edit_result_free(edit_result *result)
{
	if (result->mapping)
		munmap(result->mapping, result->mapping_len);
	free(result->writes);
	*result = (edit_result){ 0 };
}
