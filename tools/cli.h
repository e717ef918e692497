/* cli.h - what the three tools share: messages, exit statuses, progress. */
#ifndef PARTPACK_CLI_H
#define PARTPACK_CLI_H

#include "partpack.h"

#include <stdbool.h>
#include <sys/types.h>

#define PP_CLI_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PP_CLI_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Exit statuses, documented in every man page. */
enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,         /* I/O, corrupt archive, selector not found,
				 * interrupted patch pending, internal error */
	EXIT_USAGE = 2,
	EXIT_NOT_STORED = 3,    /* patch refused; the archive is unchanged */
	EXIT_INTEGRITY = 4,     /* --verify found a bad check */
	EXIT_LOCKED = 5,        /* another partpatch holds the archive */
	EXIT_REUSE = 6,         /* partpack --reuse-strict: base refused */
};

extern const char *cli_program;

void cli_init(const char *argv0);
/* "PROGRAM: message" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints err's message and returns the exit status for its status. */
int cli_fail(const pp_error *err);
/* The same, with the way out after the problem: "message; advice". */
int cli_fail_advice(const pp_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cli_exit_status(enum pp_status status);
/* As cli_fail, for a failed open of archive: adds what the user can do
 * about a pending recovery or a lock held by another process. */
int cli_open_failed(const pp_error *err, const char *archive);
/* Parses a size option or exits with a usage error.  K, M, G, T (and KiB,
 * MiB...) are powers of 1024, kB, MB, GB, TB powers of 1000, as in dd. */
uint64_t cli_size_arg(const char *option, const char *text);
/* "12.3 MiB" (or "512 B"): bytes in the largest binary unit under 1024. */
void cli_format_size(char *text, size_t size, uint64_t bytes);

/* ---- formats and file names ------------------------------------------- */

/* The library's registry knows the formats (pp_format_from_path,
 * pp_format_suffix...); the tools add only these. */

/* The format -F NAME names, or exits with a usage error. */
enum pp_format cli_format_arg(const char *option, const char *name);
/*
 * The one rule partpack and partpatch share for an output file: a name
 * whose suffix says another format is refused (EXIT_USAGE), and an
 * existing file is replaced only with --force (EXIT_ERROR).  Prints the
 * error and returns the exit status, or returns 0.
 */
int cli_check_output(const char *path, enum pp_format format, bool force);
/* The same without a format: a directory is refused (EXIT_USAGE), an
 * existing file without force (EXIT_ERROR). */
int cli_check_output_path(const char *path, bool force);
void cli_version(void);

/* ---- option tables ---------------------------------------------------- */

/*
 * Each tool lists its options in one table, as libdeflate's programs do:
 * cli_parse builds getopt_long's arguments from it (so an option's arity is
 * said once), calls each option's setter, and prints --help from it.
 * Adding an option is one line of the table (and its paragraph in the man
 * page).
 */
typedef struct cli_option cli_option;

/* Stores an option into the tool's arguments: args is what the tool gave
 * cli_parse, arg the option's argument (NULL for an option without one). */
typedef void (*cli_setter)(void *args, const cli_option *option,
			   const char *arg);

struct cli_option {
	const char *name;       /* long name, without "--"; NULL: a heading,
				 * or with arg a row of --help alone */
	char letter;            /* short name, or 0 */
	const char *arg;        /* the argument as --help names it ("FILE"),
				 * NULL when the option takes none */
	cli_setter set;
	size_t field;           /* what the setter fills: offsetof() in args
				 * for the shared setters below, a value of
				 * the tool's own for the others */
	const char *help;       /* --help's text, wrapped, with the registry's
				 * answers for the words in braces (see
				 * cli_expand); NULL: an alias left out */
};
/* The entries every tool has, last, and the one that ends a table. */
#define CLI_HELP_AND_VERSION                                                 \
	{ "help", 'h', NULL, cli_show_help, 0, "show this help and exit" },  \
	{ "version", 'V', NULL, cli_show_version, 0,                         \
	  "show the version and exit" }
#define CLI_END { NULL, 0, NULL, NULL, 0, NULL }

/* The shared setters: the field at offset option->field of args is a
 * bool (set true), a const char * (the argument), a uint64_t (a size, as
 * cli_size_arg reads it) or an unsigned (a thread count, as
 * cli_threads_arg reads it). */
void cli_set_flag(void *args, const cli_option *option, const char *arg);
void cli_set_text(void *args, const cli_option *option, const char *arg);
void cli_set_size(void *args, const cli_option *option, const char *arg);
void cli_set_threads(void *args, const cli_option *option, const char *arg);
/* --help and --version: print and exit 0. */
void cli_show_help(void *args, const cli_option *option, const char *arg);
void cli_show_version(void *args, const cli_option *option, const char *arg);

typedef struct cli_tool {
	const char *synopsis;   /* after "Usage: PROGRAM "; one form a line */
	const char *about;      /* the paragraphs before the options */
	const cli_option *options;  /* ended by CLI_END */
	const char *footer;     /* the paragraphs after them */
	/* Words of digits ("-6", "-19", also zstd's "-#19") are given here
	 * whole, and digits in a cluster ("-9e") one by one, in their place
	 * among the options; NULL: they are unknown options. */
	void (*number)(void *args, const char *digits);
} cli_tool;

/*
 * Parses the options of argv by tool's table into args; exits with a
 * usage error (one line) on a bad one.  Returns the index of the first
 * operand; the operands are argv[that..*argc) (getopt moves them there).
 */
int cli_parse(const cli_tool *tool, int *argc, char **argv, void *args);
/* Prints --help: the synopsis, the about text, the options, the footer. */
void cli_usage(const cli_tool *tool);
/*
 * Copies text into out (size bytes) with the words the registry answers
 * replaced: {formats} "xz, gzip or zstd", {suffixes} ".xz, .gz or .zst",
 * {default_format} "xz", {levels} each format's levels and default,
 * {level_span} "-0 ... -19" (the lowest and highest of any format),
 * {checks} the check names, {default_checks} each format's default check,
 * {max_threads} the --threads limit.
 */
void cli_expand(char *out, size_t size, const char *text);

/* The most threads -T takes, in every tool. */
#define CLI_MAX_THREADS 4096
/* Parses a thread count (0 means one per core) or exits with a usage
 * error. */
unsigned cli_threads_arg(const char *option, const char *text);
/* For getopt_long's '?' and ':': one line, then exit with EXIT_USAGE.
 * The option strings start with ':' and opterr is 0, so getopt is quiet. */
void cli_option_error(int c, char **argv) __attribute__((noreturn));
/* The one ARCHIVE operand that partcat, partinfo and partpatch take, in
 * argv[first..argc), or a usage error (missing, or more than one) and
 * exit. */
const char *cli_one_archive(int first, int argc, char **argv);

/*
 * Opens the ARCHIVE operand for reading, with the "scanning" progress line
 * a foreign file's first read may need.  "-" is standard input: a file
 * (or device) there is opened as itself, by the path the kernel knows it
 * by, so its lock and pending undo record count; a pipe is read to an
 * unlinked temporary file first if spool_pipe (the index of every format
 * is at the end), else refused (EXIT_USAGE) saying so.  *name is what
 * messages call it.  Returns an exit status, having said why on failure.
 */
int cli_open_archive(const char *operand, bool spool_pipe, bool quiet,
		     pp_archive **archive, const char **name);

/*
 * An output file that appears under its name only when complete: written
 * as a temporary file beside it (NAME.XXXXXX, removed if the tool fails or
 * is stopped by a signal) and renamed into place.  One at a time.
 * cli_output_open returns the descriptor, or -1 after printing why.
 * cli_output_commit renames it (refusing to replace an existing file
 * unless force), after an fsync if sync; 0, or -1 after printing why.
 */
int cli_output_open(const char *path, mode_t mode);
int cli_output_commit(int fd, const char *path, bool force, bool sync);
void cli_output_discard(int fd);

/* A progress line on stderr, redrawn at most a few times a second, and only
 * when stderr is a terminal and the user did not ask for quiet. */
typedef struct cli_progress {
	bool enabled;
	const char *label;
	double started;
	double last_drawn;
	uint64_t done;          /* the last update */
	uint64_t total;
} cli_progress;

void cli_progress_init(cli_progress *progress, const char *label, bool quiet);
void cli_progress_update(void *opaque, uint64_t done, uint64_t total);
/* Draws the line a last time, at 100 % when the total was known, and ends
 * it. */
void cli_progress_end(cli_progress *progress);
/* xz -v's totals on one line: "NAME: 100 %, 64.0 MiB -> 9.1 MiB = 0.142,
 * 48.2 MiB/s, 0:01"; out_bytes is UINT64_MAX when unknown (a pipe). */
void cli_progress_summary(const cli_progress *progress, const char *name,
			  uint64_t out_bytes);

/* Shows progress of long work inside library calls (the scan of a foreign
 * gzip file when it is opened) until cli_background_progress_end(). */
void cli_background_progress_begin(cli_progress *progress, const char *label,
				   bool quiet);
void cli_background_progress_end(cli_progress *progress);

#endif
