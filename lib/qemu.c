/*
 * qemu.c - qemu-img and qemu-io, run as argv arrays, their answers read.
 *
 * Each command runs with its standard output and error in two memory files
 * (memfd), read once it has exited: no pipe to drain while waiting, and
 * nothing of it reaches the caller's terminal.  qemu's messages start with
 * the program's name ("qemu-img: Could not open 'x': ..."); that prefix is
 * dropped and the first line kept, for a one-line error.
 *
 * `qemu-img info --output=json` answers with one JSON object per image
 * (json-c reads it): "format" is the driver that opened it, and
 * "full-backing-filename" with "backing-filename-format" name the next file
 * of its chain.  info opens a file without its backing file, so the chain
 * is walked here one file at a time and checked before qemu-nbd opens the
 * whole of it.
 */
#include "qemu.h"
#include "error.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Longer chains are refused: qemu's own limit is in this range, and a
 * loop of backing files must end. */
#define CHAIN_MAX 64
/* What is read of a command's output. */
#define OUTPUT_MAX ((size_t)1 << 20)

bool pp_qemu_format_ok(const char *name)
{
	size_t len = strlen(name);
	return len > 0 && len < PP_QEMU_FORMAT_MAX &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

char *pp_qemu_file_name(const char *path)
{
	bool plain = path[0] == '/' || strncmp(path, "./", 2) == 0;
	size_t size = strlen(path) + 3;
	char *name = malloc(size);
	if (name)
		snprintf(name, size, "%s%s", plain ? "" : "./", path);
	return name;
}

/* A command's outcome: exit status and what it printed (NUL-ended). */
typedef struct command_result {
	int status;                 /* exit status; -1 if killed */
	char *out;
	char *errors;
} command_result;

static void result_free(command_result *result)
{
	free(result->out);
	free(result->errors);
}

/* The contents of a memory file, NUL-ended, at most OUTPUT_MAX bytes. */
static char *read_memfd(int fd)
{
	struct stat st;
	size_t len = fstat(fd, &st) == 0 ?
		PP_MIN((size_t)st.st_size, OUTPUT_MAX) : 0;
	char *text = malloc(len + 1);
	if (!text)
		return NULL;
	ssize_t got = len ? pp_pread_upto(fd, text, len, 0) : 0;
	text[got > 0 ? (size_t)got : 0] = '\0';
	return text;
}

/*
 * Runs argv (found on PATH) with stdin from /dev/null, its output kept,
 * and the descriptors of inherit[] (-1 ends it) as its 3, 4...  Returns
 * 0, PP_ERR_NOMEM, or 1 when argv[0] is not installed.
 */
static int run_command(char *const argv[], const int *inherit,
		       command_result *result, pp_error *err)
{
	*result = (command_result){ .status = -1 };
	int out = memfd_create("qemu-out", MFD_CLOEXEC);
	int errors = memfd_create("qemu-err", MFD_CLOEXEC);
	posix_spawn_file_actions_t actions;
	int status = out < 0 || errors < 0 ||
		posix_spawn_file_actions_init(&actions) ?
		pp_fail_errno(err, PP_ERR_IO, "cannot run %s", argv[0]) : 0;
	pid_t pid = -1;
	if (status == 0) {
		posix_spawn_file_actions_addopen(&actions, 0, "/dev/null",
						 O_RDONLY, 0);
		posix_spawn_file_actions_adddup2(&actions, out, 1);
		posix_spawn_file_actions_adddup2(&actions, errors, 2);
		for (int i = 0; inherit && inherit[i] >= 0; i++)
			posix_spawn_file_actions_adddup2(&actions, inherit[i],
							 3 + i);
		int failed = posix_spawnp(&pid, argv[0], &actions, NULL, argv,
					  environ);
		posix_spawn_file_actions_destroy(&actions);
		if (failed == ENOENT)
			status = 1;
		else if (failed)
			status = pp_fail(err, PP_ERR_IO, "cannot run %s: %s",
					 argv[0], strerror(failed));
	}
	int wait_status = 0;
	while (status == 0 && waitpid(pid, &wait_status, 0) < 0)
		if (errno != EINTR)
			status = pp_fail_errno(err, PP_ERR_IO, "%s", argv[0]);
	if (status == 0) {
		result->status = WIFEXITED(wait_status) ?
			WEXITSTATUS(wait_status) : -1;
		result->out = read_memfd(out);
		result->errors = read_memfd(errors);
		if (!result->out || !result->errors)
			status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	if (out >= 0)
		close(out);
	if (errors >= 0)
		close(errors);
	return status;
}

/* The first line of what a command said, without its "program: " prefix
 * (for a message of ours), into line. */
static void first_line(const char *text, const char *program, char *line,
		       size_t size)
{
	while (*text == '\n')
		text++;
	size_t prefix = strlen(program);
	if (strncmp(text, program, prefix) == 0 && text[prefix] == ':')
		text += prefix + 1 + (text[prefix + 1] == ' ');
	snprintf(line, size, "%.*s", (int)strcspn(text, "\n"), text);
}

/* A command that failed on path: "PATH: what it said first". */
static int command_failed(const command_result *result, const char *program,
			  const char *path, pp_error *err)
{
	char line[PP_ERROR_MAX / 2];
	first_line(result->errors, program, line, sizeof line);
	return pp_fail(err, PP_ERR_FORMAT, "%s: %s", path, line);
}

/* "needs qemu-img (Debian package qemu-utils)" for a missing program. */
static int missing_qemu(const char *path, const char *program, pp_error *err)
{
	return pp_fail(err, PP_ERR_IO, "%s: reading this image needs %s "
		       "(Debian package qemu-utils), which is not installed",
		       path, program);
}

/* One file of a chain, as qemu-img info describes it. */
typedef struct image_facts {
	char format[PP_QEMU_FORMAT_MAX];
	char backing_format[PP_QEMU_FORMAT_MAX];   /* "" when not said */
	char *backing;              /* its full name, or NULL */
} image_facts;

/* A string member of a JSON object, or NULL. */
static const char *json_string(json_object *object, const char *key)
{
	json_object *value;
	if (!json_object_object_get_ex(object, key, &value) ||
	    !json_object_is_type(value, json_type_string))
		return NULL;
	return json_object_get_string(value);
}

static int parse_info(const char *path, const char *json, image_facts *facts,
		      pp_error *err)
{
	json_object *root = json_tokener_parse(json);
	const char *format = root && json_object_is_type(root, json_type_object)
		? json_string(root, "format") : NULL;
	const char *backing = format ?
		json_string(root, "full-backing-filename") : NULL;
	const char *backing_format = format ?
		json_string(root, "backing-filename-format") : NULL;
	int status = 0;
	if (!format || !pp_qemu_format_ok(format) ||
	    (backing_format && !pp_qemu_format_ok(backing_format)))
		status = pp_fail(err, PP_ERR_FORMAT, "%s: qemu-img info gave no "
				 "format this can use", path);
	else {
		snprintf(facts->format, sizeof facts->format, "%s", format);
		snprintf(facts->backing_format, sizeof facts->backing_format,
			 "%s", backing_format ? backing_format : "");
		if (backing && !(facts->backing = strdup(backing)))
			status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	json_object_put(root);
	return status;
}

/* qemu-img info of one file (format NULL: probed).  1 without qemu-img. */
static int image_info(const char *path, const char *format,
		      image_facts *facts, pp_error *err)
{
	*facts = (image_facts){ 0 };
	char *file = pp_qemu_file_name(path);
	if (!file)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	char *argv[10];
	size_t n = 0;
	argv[n++] = "qemu-img";
	argv[n++] = "info";
	/* No lock: a raw image a VM has open packed before qemu-img was
	 * asked, and still does; qemu-nbd takes qemu's locks for the rest. */
	argv[n++] = "--force-share";
	argv[n++] = "--output=json";
	if (format) {
		argv[n++] = "-f";
		argv[n++] = (char *)format;
	}
	argv[n++] = "--";
	argv[n++] = file;
	argv[n] = NULL;
	command_result result;
	int status = run_command(argv, NULL, &result, err);
	if (status == 0 && result.status != 0)
		status = command_failed(&result, "qemu-img", path, err);
	else if (status == 0)
		status = parse_info(path, result.out, facts, err);
	result_free(&result);
	free(file);
	return status;
}

/*
 * qemu-img check: 0 no errors, 2 corruption, 3 leaked clusters only (no
 * harm to reading), 63 a format it cannot check, 1 it could not finish.
 */
static int check_image(const char *path, const char *format, pp_error *err)
{
	char *file = pp_qemu_file_name(path);
	if (!file)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	char *argv[] = { "qemu-img", "check", "-q", "-f", (char *)format,
			 "--", file, NULL };
	command_result result;
	int status = run_command(argv, NULL, &result, err);
	char line[PP_ERROR_MAX / 2];
	if (status == 0 && result.status == 2) {
		/* The errors are "ERROR ..." lines on stdout or stderr. */
		const char *said = strstr(result.out, "ERROR") ?
			strstr(result.out, "ERROR") : result.errors[0] ?
			result.errors : result.out;
		first_line(said, "qemu-img", line, sizeof line);
		status = pp_fail(err, PP_ERR_FORMAT, "%s: corrupt %s image "
				 "(qemu-img check: %s)", path, format, line);
	} else if (status == 0 && result.status != 0 && result.status != 3 &&
		   result.status != 63) {
		/* It could not open the image (an encrypted one, say). */
		status = command_failed(&result, "qemu-img", path, err);
	}
	result_free(&result);
	free(file);
	return status == 1 ? missing_qemu(path, "qemu-img", err) : status;
}

/*
 * Whether a backing file name is a plain local file qemu may open.  qemu
 * names it relative to the name it was given for the image above, which
 * was absolute or "./..." (pp_qemu_file_name); a URL ("nbd://...",
 * "http://...") or a json: description starts otherwise.
 */
static bool local_file(const char *name)
{
	struct stat st;
	return (name[0] == '/' || strncmp(name, "./", 2) == 0) &&
	       stat(name, &st) == 0 &&
	       (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

/* Checks every file of the chain that starts at path, described by facts
 * (whose backing name it frees). */
static int walk_chain(const char *path, image_facts facts, pp_error *err)
{
	char *file = NULL;          /* the backing file being looked at */
	int status = 0;
	for (int depth = 0; status == 0; depth++) {
		const char *name = file ? file : path;
		/* Before qemu-img check, which opens the backing file too. */
		if (facts.backing && depth == CHAIN_MAX)
			status = pp_fail(err, PP_ERR_FORMAT, "%s: more than %d "
					 "backing files", path, CHAIN_MAX);
		else if (facts.backing && !local_file(facts.backing))
			status = pp_fail(err, PP_ERR_FORMAT, "%s: its backing "
					 "file %s is not a local file (only "
					 "local backing files are followed)",
					 name, facts.backing);
		if (status == 0 && strcmp(facts.format, "raw") != 0)
			status = check_image(name, facts.format, err);
		if (status || !facts.backing)
			break;
		free(file);
		file = facts.backing;
		char format[PP_QEMU_FORMAT_MAX];
		snprintf(format, sizeof format, "%s", facts.backing_format);
		status = image_info(file, format[0] ? format : NULL, &facts,
				    err);
		if (status == 1)
			status = missing_qemu(file, "qemu-img", err);
	}
	free(facts.backing);
	free(file);
	return status;
}

int pp_qemu_probe(const char *path, const char *format, char *format_out,
		  bool *have_qemu, pp_error *err)
{
	*have_qemu = true;
	if (format && !pp_qemu_format_ok(format))
		return pp_fail(err, PP_ERR_USAGE, "%s: '%s' is not an image "
			       "format name", path, format);
	image_facts facts;
	int status = image_info(path, format, &facts, err);
	if (status == 1) {
		*have_qemu = false;
		if (format && strcmp(format, "raw") != 0)
			return missing_qemu(path, "qemu-img", err);
		snprintf(format_out, PP_QEMU_FORMAT_MAX, "raw");
		return 0;
	}
	if (status)
		return status;
	snprintf(format_out, PP_QEMU_FORMAT_MAX, "%s", facts.format);
	return walk_chain(path, facts, err);
}

int pp_qemu_open_error(const char *path, const char *format, pp_error *err)
{
	char *file = pp_qemu_file_name(path);
	if (!file)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	char *argv[] = { "qemu-io", "-r", "-f", (char *)format, "-c", "quit",
			 "--", file, NULL };
	command_result result;
	int status = run_command(argv, NULL, &result, err);
	if (status == 0 && result.status != 0)
		status = command_failed(&result, "qemu-io", path, err);
	result_free(&result);
	free(file);
	return status == 1 ? 0 : status;
}

int pp_qemu_convert(int raw_fd, int out_fd, const char *out_name,
		    const char *format, pp_error *err)
{
	if (!pp_qemu_format_ok(format))
		return pp_fail(err, PP_ERR_USAGE, "'%s' is not an image format "
			       "name", format);
	/* The two files are the child's descriptors 3 and 4, opened again
	 * by qemu through /dev/fd: neither needs a name of its own. */
	const int inherit[] = { raw_fd, out_fd, -1 };
	char *argv[] = { "qemu-img", "convert", "-f", "raw", "-O",
			 (char *)format, "--", "/dev/fd/3", "/dev/fd/4", NULL };
	command_result result;
	int status = run_command(argv, inherit, &result, err);
	if (status == 0 && result.status != 0) {
		char line[PP_ERROR_MAX / 2];
		first_line(result.errors, "qemu-img", line, sizeof line);
		status = pp_fail(err, PP_ERR_IO, "%s: qemu-img convert: %s",
				 out_name, line);
	}
	result_free(&result);
	return status == 1 ? missing_qemu(out_name, "qemu-img", err) : status;
}
