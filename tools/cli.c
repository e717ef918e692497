/* cli.c - messages, exit statuses and the progress line of the tools. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *cli_program = "partpack";

static void print_notice(void *opaque, const char *message)
{
	(void)opaque;
	fprintf(stderr, "%s: %s\n", cli_program, message);
}

void cli_init(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');
	cli_program = slash ? slash + 1 : argv0;
	opterr = 0;
	pp_set_notice_handler(print_notice, NULL);
}

void cli_error(const char *fmt, ...)
{
	va_list args;
	fprintf(stderr, "%s: ", cli_program);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
}

int cli_exit_status(enum pp_status status)
{
	switch (status) {
	case PP_OK: return EXIT_OK;
	case PP_ERR_USAGE: return EXIT_USAGE;
	case PP_ERR_NOT_STORED: return EXIT_NOT_STORED;
	case PP_ERR_CHECK: return EXIT_INTEGRITY;
	case PP_ERR_BUSY: return EXIT_LOCKED;
	case PP_ERR_REUSE: return EXIT_REUSE;
	case PP_ERR_IO:
	case PP_ERR_FORMAT:
	case PP_ERR_NOMEM:
	case PP_ERR_LOCATE:
	case PP_ERR_RECOVERY_PENDING:
	case PP_ERR_INTERNAL:
		break;
	}
	return EXIT_ERROR;
}

int cli_fail(const pp_error *err)
{
	cli_error("%s", err->message);
	return cli_exit_status(err->status);
}

int cli_fail_advice(const pp_error *err, const char *fmt, ...)
{
	va_list args;
	fprintf(stderr, "%s: %s; ", cli_program, err->message);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
	return cli_exit_status(err->status);
}

int cli_open_failed(const pp_error *err, const char *archive)
{
	if (err->status == PP_ERR_RECOVERY_PENDING)
		return cli_fail_advice(err, "run 'partpatch --recover %s' to "
				       "undo it", archive);
	if (err->status == PP_ERR_BUSY)
		return cli_fail_advice(err, "another partpatch may be "
				       "patching it");
	return cli_fail(err);
}

uint64_t cli_size_arg(const char *option, const char *text)
{
	uint64_t value;
	if (pp_parse_size(text, &value) != 0) {
		cli_error("%s: invalid size '%s' (a number with an optional "
			  "suffix: K, M, G, T or KiB... are powers of 1024, "
			  "kB, MB, GB, TB powers of 1000)", option, text);
		exit(EXIT_USAGE);
	}
	return value;
}

/* ---- formats and file names ------------------------------------------- */

enum pp_format cli_format_arg(const char *option, const char *name)
{
	enum pp_format format = pp_format_from_name(name);
	if (format)
		return format;
	char known[200] = "";
	size_t used = 0;
	for (size_t i = 0; pp_format_at(i) && used < sizeof known; i++)
		used += (size_t)snprintf(known + used, sizeof known - used,
					 "%s%s", i ? ", " : "",
					 pp_format_name(pp_format_at(i)));
	cli_error("%s: unknown format '%s' (%s)", option, name, known);
	exit(EXIT_USAGE);
}

int cli_check_output(const char *path, enum pp_format format, bool force)
{
	enum pp_format named = pp_format_from_path(path);
	if (named && named != format) {
		cli_error("%s: the name says %s, but the archive is %s "
			  "(name it *%s)", path, pp_format_name(named),
			  pp_format_name(format), pp_format_suffix(format));
		return EXIT_USAGE;
	}
	struct stat st;
	if (!force && lstat(path, &st) == 0) {
		cli_error("%s: already exists (use --force to overwrite)", path);
		return EXIT_ERROR;
	}
	return 0;
}

void cli_option_error(int c, char **argv)
{
	const char *arg = argv[optind - 1];
	if (c == ':')
		cli_error("option '%s' needs an argument (try '%s --help')", arg,
			  cli_program);
	else if (optopt && strncmp(arg, "--", 2) != 0)
		cli_error("unknown option '-%c' (try '%s --help')", optopt,
			  cli_program);
	else
		cli_error("unknown option '%s' (try '%s --help')", arg,
			  cli_program);
	exit(EXIT_USAGE);
}

const char *cli_one_archive(int argc, char **argv)
{
	if (optind + 1 != argc) {
		cli_error(optind == argc ? "missing ARCHIVE" :
			  "too many arguments: only one ARCHIVE");
		exit(EXIT_USAGE);
	}
	return argv[optind];
}

void cli_version(void)
{
	printf("%s (partpack) %s\n", cli_program, PP_VERSION);
}

/* ---- output files renamed into place --------------------------------- */

/* The temporary output, removed if the tool stops before it is complete. */
static char *temp_path;

static void remove_temp_and_exit(int signal_number)
{
	if (temp_path)
		unlink(temp_path);
	signal(signal_number, SIG_DFL);
	raise(signal_number);
}

static void catch_signals(void)
{
	static const int signals[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
	struct sigaction action = { .sa_handler = remove_temp_and_exit };
	sigemptyset(&action.sa_mask);
	for (size_t i = 0; i < sizeof signals / sizeof *signals; i++)
		sigaction(signals[i], &action, NULL);
}

int cli_output_open(const char *path, mode_t mode)
{
	size_t size = strlen(path) + sizeof ".XXXXXX";
	temp_path = malloc(size);
	if (!temp_path) {
		cli_error("%s: out of memory", path);
		return -1;
	}
	snprintf(temp_path, size, "%s.XXXXXX", path);
	catch_signals();
	int fd = mkostemp(temp_path, O_CLOEXEC);
	if (fd < 0) {
		cli_error("%s: cannot create: %s", path, strerror(errno));
		free(temp_path);
		temp_path = NULL;
		return -1;
	}
	mode_t mask = umask(0);
	umask(mask);
	/* If this fails, mkstemp's 0600 stays, which is safe. */
	(void)fchmod(fd, mode & ~mask & 0666);
	return fd;
}

int cli_output_commit(int fd, const char *path, bool force, bool sync)
{
	if ((sync && fsync(fd)) || close(fd)) {
		cli_error("%s: %s", path, strerror(errno));
		cli_output_discard(-1);
		return -1;
	}
	int renamed = force ? rename(temp_path, path) :
		renameat2(AT_FDCWD, temp_path, AT_FDCWD, path,
			  RENAME_NOREPLACE);
	if (renamed) {
		cli_error("%s: %s%s", path, strerror(errno),
			  errno == EEXIST ? " (use --force to overwrite)" : "");
		cli_output_discard(-1);
		return -1;
	}
	free(temp_path);
	temp_path = NULL;
	return 0;
}

void cli_output_discard(int fd)
{
	if (fd >= 0)
		close(fd);
	if (temp_path)
		unlink(temp_path);
	free(temp_path);
	temp_path = NULL;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_init(cli_progress *progress, const char *label, bool quiet)
{
	*progress = (cli_progress){
		.enabled = !quiet && isatty(STDERR_FILENO),
		.label = label,
		.started = now_seconds(),
	};
}

static void format_bytes(char *text, size_t size, double bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int unit = 0;
	while (bytes >= 1024 && unit < 4) {
		bytes /= 1024;
		unit++;
	}
	snprintf(text, size, unit ? "%.1f %s" : "%.0f %s", bytes, units[unit]);
}

void cli_format_size(char *text, size_t size, uint64_t bytes)
{
	format_bytes(text, size, (double)bytes);
}

static void draw(cli_progress *progress, double now)
{
	uint64_t done = progress->done, total = progress->total;
	progress->last_drawn = now;
	double elapsed = now - progress->started;
	double rate = elapsed > 0 ? (double)done / elapsed : 0;
	/* Without an ETA, spaces wipe the one the line last showed. */
	char done_text[32], rate_text[32], eta_text[32] = "           ";
	format_bytes(done_text, sizeof done_text, (double)done);
	format_bytes(rate_text, sizeof rate_text, rate);
	if (total > done && rate > 0) {
		unsigned long eta = (unsigned long)((double)(total - done) / rate);
		snprintf(eta_text, sizeof eta_text, ", ETA %lu:%02lu",
			 eta / 60, eta % 60);
	}
	if (total)
		fprintf(stderr, "\r%s: %s: %s (%.0f%%), %s/s%s   ", cli_program,
			progress->label, done_text,
			100.0 * (double)done / (double)total, rate_text,
			eta_text);
	else
		fprintf(stderr, "\r%s: %s: %s, %s/s   ", cli_program,
			progress->label, done_text, rate_text);
}

void cli_progress_update(void *opaque, uint64_t done, uint64_t total)
{
	cli_progress *progress = opaque;
	progress->done = done;
	progress->total = total;
	double now = now_seconds();
	if (progress->enabled && now - progress->last_drawn >= 0.25)
		draw(progress, now);
}

void cli_progress_end(cli_progress *progress)
{
	if (!progress->enabled || progress->last_drawn == 0)
		return;
	/* The work is done: the last line says so, whatever the last
	 * update managed to draw. */
	if (progress->total > progress->done)
		progress->done = progress->total;
	draw(progress, now_seconds());
	fputc('\n', stderr);
}

void cli_progress_summary(const cli_progress *progress, const char *name,
			  uint64_t out_bytes)
{
	double elapsed = now_seconds() - progress->started;
	char in_text[32], out_text[32], rate_text[32], ratio_text[48] = "";
	format_bytes(in_text, sizeof in_text, (double)progress->done);
	format_bytes(rate_text, sizeof rate_text,
		     elapsed > 0 ? (double)progress->done / elapsed : 0);
	if (out_bytes == UINT64_MAX) {
		snprintf(out_text, sizeof out_text, "?");
	} else {
		format_bytes(out_text, sizeof out_text, (double)out_bytes);
		if (progress->done)
			snprintf(ratio_text, sizeof ratio_text, " = %.3f",
				 (double)out_bytes / (double)progress->done);
	}
	unsigned long seconds = (unsigned long)(elapsed + 0.5);
	fprintf(stderr, "%s: %s: 100 %%, %s -> %s%s, %s/s, %lu:%02lu\n",
		cli_program, name, in_text, out_text, ratio_text, rate_text,
		seconds / 60, seconds % 60);
}

void cli_background_progress_begin(cli_progress *progress, const char *label,
				   bool quiet)
{
	cli_progress_init(progress, label, quiet);
	pp_set_progress_handler(cli_progress_update, progress);
}

void cli_background_progress_end(cli_progress *progress)
{
	pp_set_progress_handler(NULL, NULL);
	cli_progress_end(progress);
}
