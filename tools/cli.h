/* cli.h - what the three tools share: messages, exit statuses, progress. */
#ifndef PARTPACK_CLI_H
#define PARTPACK_CLI_H

#include "partpack.h"

#include <stdbool.h>

/* Exit statuses, documented in every man page. */
enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,         /* I/O, corrupt archive, selector not found,
				 * interrupted patch pending, internal error */
	EXIT_USAGE = 2,
	EXIT_NOT_STORED = 3,    /* patch refused; the archive is unchanged */
	EXIT_INTEGRITY = 4,     /* --verify found a bad check */
	EXIT_LOCKED = 5,        /* another partpatch holds the archive */
};

extern const char *cli_program;

void cli_init(const char *argv0);
/* "PROGRAM: message" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints err's message and returns the exit status for its status. */
int cli_fail(const pp_error *err);
int cli_exit_status(enum pp_status status);
/* As cli_fail, for a failed open of archive: adds what the user can do
 * about a pending recovery or a lock held by another process. */
int cli_open_failed(const pp_error *err, const char *archive);
/* Parses a size option or exits with a usage error. */
uint64_t cli_size_arg(const char *option, const char *text);
void cli_version(void);
/* For getopt_long's '?' and ':': one line, then exit with EXIT_USAGE.
 * The option strings start with ':' and opterr is 0, so getopt is quiet. */
void cli_option_error(int c, char **argv) __attribute__((noreturn));

/* A progress line on stderr, redrawn at most a few times a second, and only
 * when stderr is a terminal and the user did not ask for quiet. */
typedef struct cli_progress {
	bool enabled;
	const char *label;
	double started;
	double last_drawn;
} cli_progress;

void cli_progress_init(cli_progress *progress, const char *label, bool quiet);
void cli_progress_update(void *opaque, uint64_t done, uint64_t total);
void cli_progress_end(cli_progress *progress);

/* Shows progress of long work inside library calls (the scan of a foreign
 * gzip file when it is opened) until cli_background_progress_end(). */
void cli_background_progress_begin(cli_progress *progress, const char *label,
				   bool quiet);
void cli_background_progress_end(cli_progress *progress);

#endif
