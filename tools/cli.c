/* cli.c - messages, exit statuses and the progress line of the tools. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
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
	return cli_check_output_path(path, force);
}

int cli_check_output_path(const char *path, bool force)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		cli_error("%s: is a directory (name the file to write)", path);
		return EXIT_USAGE;
	}
	if (!force && lstat(path, &st) == 0) {
		cli_error("%s: already exists (use --force to overwrite)", path);
		return EXIT_ERROR;
	}
	return 0;
}

/* ---- option tables ----------------------------------------------------- */

/* The tool whose table cli_parse reads, for --help. */
static const cli_tool *current_tool;

/* Options without a letter come back from getopt_long as this plus their
 * index in the table. */
#define LONG_ONLY 0x100

static void *field_of(void *args, const cli_option *option)
{
	return (char *)args + option->field;
}

/* "--name", for messages about an option. */
static const char *dashed(const cli_option *option, char *text, size_t size)
{
	snprintf(text, size, "--%s", option->name);
	return text;
}

void cli_set_flag(void *args, const cli_option *option, const char *arg)
{
	(void)arg;
	*(bool *)field_of(args, option) = true;
}

void cli_set_text(void *args, const cli_option *option, const char *arg)
{
	*(const char **)field_of(args, option) = arg;
}

void cli_set_size(void *args, const cli_option *option, const char *arg)
{
	char name[64];
	*(uint64_t *)field_of(args, option) =
		cli_size_arg(dashed(option, name, sizeof name), arg);
}

void cli_set_threads(void *args, const cli_option *option, const char *arg)
{
	char name[64];
	*(unsigned *)field_of(args, option) =
		cli_threads_arg(dashed(option, name, sizeof name), arg);
}

void cli_show_help(void *args, const cli_option *option, const char *arg)
{
	(void)args, (void)option, (void)arg;
	cli_usage(current_tool);
	exit(EXIT_OK);
}

void cli_show_version(void *args, const cli_option *option, const char *arg)
{
	(void)args, (void)option, (void)arg;
	cli_version();
	exit(EXIT_OK);
}

unsigned cli_threads_arg(const char *option, const char *text)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(text, &end, 10);
	if (!isdigit((unsigned char)text[0]) || *end || errno ||
	    n > CLI_MAX_THREADS) {
		cli_error("%s: '%s' is not a number from 0 to %d", option, text,
			  CLI_MAX_THREADS);
		exit(EXIT_USAGE);
	}
	return (unsigned)n;
}

/* Table entries run up to CLI_END; headings have a help but no name. */
static bool is_entry(const cli_option *option)
{
	return option->name || option->help;
}

static const cli_option *short_option(const cli_tool *tool, int letter)
{
	for (const cli_option *o = tool->options; is_entry(o); o++)
		if (o->name && o->letter && o->letter == letter)
			return o;
	return NULL;
}

/* The option a long word names as getopt_long reads it: its whole name,
 * or the start of only one; NULL otherwise. */
static const cli_option *long_option(const cli_tool *tool, const char *word,
				     size_t len)
{
	const cli_option *found = NULL;
	size_t matches = 0;
	for (const cli_option *o = tool->options; is_entry(o); o++) {
		if (!o->name || strncmp(o->name, word, len) != 0)
			continue;
		if (o->name[len] == '\0')
			return o;
		found = o;
		matches++;
	}
	return matches == 1 ? found : NULL;
}

/* Whether an option word leaves its argument to the next word: -o FILE,
 * -vK SEL, --output FILE (not -oFILE, --output=FILE). */
static bool takes_next_word(const cli_tool *tool, const char *word)
{
	if (word[0] != '-' || word[1] == '\0')
		return false;
	if (word[1] == '-') {
		size_t len = strcspn(word + 2, "=");
		const cli_option *o = word[2 + len] == '=' ? NULL :
			long_option(tool, word + 2, len);
		return o && o->arg;
	}
	for (const char *c = word + 1; *c; c++) {
		const cli_option *o = short_option(tool, *c);
		if (o && o->arg)
			return c[1] == '\0';
	}
	return false;
}

/*
 * Words of digits (-3, -19) would be read by getopt as -1 -9: each is
 * rewritten as "-#19", the short option '#' with its argument, which
 * getopt then hands back in its place among the others (so the last of
 * -19 and --best wins).  Stops at "--"; skips the argument of an option
 * that takes the next word.  The rewritten words live as long as argv.
 */
static void mark_numbers(const cli_tool *tool, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		if (strcmp(w, "--") == 0)
			break;
		if (w[0] == '-' && w[1] &&
		    strspn(w + 1, "0123456789") == strlen(w + 1)) {
			char *marked = malloc(strlen(w) + 2);
			if (!marked) {
				cli_error("out of memory");
				exit(EXIT_ERROR);
			}
			sprintf(marked, "-#%s", w + 1);
			argv[i] = marked;
		} else if (takes_next_word(tool, w)) {
			i++;
		}
	}
}

/* getopt_long's short string and long options, from the table. */
static struct option *getopt_table(const cli_tool *tool, char *shorts,
				   size_t size)
{
	size_t count = 0, used = 0;
	for (const cli_option *o = tool->options; is_entry(o); o++)
		count++;
	struct option *longs = calloc(count + 1, sizeof *longs);
	if (!longs) {
		cli_error("out of memory");
		exit(EXIT_ERROR);
	}
	shorts[used++] = ':';
	for (size_t i = 0, n = 0; i < count; i++) {
		const cli_option *o = &tool->options[i];
		if (!o->name)
			continue;
		longs[n++] = (struct option){
			o->name, o->arg ? required_argument : no_argument, NULL,
			o->letter ? o->letter : LONG_ONLY + (int)i,
		};
		if (o->letter && used + 3 < size) {
			shorts[used++] = o->letter;
			if (o->arg)
				shorts[used++] = ':';
		}
	}
	if (tool->number && used + 13 < size)
		used += (size_t)sprintf(shorts + used, "0123456789#:");
	shorts[used] = '\0';
	return longs;
}

int cli_parse(const cli_tool *tool, int *argc, char **argv, void *args)
{
	current_tool = tool;
	if (tool->number)
		mark_numbers(tool, *argc, argv);
	char shorts[128];
	struct option *longs = getopt_table(tool, shorts, sizeof shorts);
	int c;
	while ((c = getopt_long(*argc, argv, shorts, longs, NULL)) != -1) {
		if (tool->number && c >= '0' && c <= '9') {
			tool->number(args, (const char[]){ (char)c, '\0' });
			continue;
		}
		if (tool->number && c == '#' &&
		    optarg[strspn(optarg, "0123456789")] == '\0') {
			tool->number(args, optarg);
			continue;
		}
		const cli_option *o = c >= LONG_ONLY ?
			&tool->options[c - LONG_ONLY] :
			c == '?' || c == ':' ? NULL : short_option(tool, c);
		if (!o) {
			free(longs);
			cli_option_error(c, argv);
		}
		o->set(args, o, o->arg ? optarg : NULL);
	}
	free(longs);
	return optind;
}

/* ---- --help ------------------------------------------------------------- */

#define HELP_WIDTH 79           /* the last column a line may use */
#define HELP_COLUMN 25          /* where an option's text starts */

/*
 * Prints text with the cursor at column `at`, words wrapped before
 * HELP_WIDTH and every line starting at column indent; a newline in text
 * ends a line (two leave a blank one), and a tab is a space no line breaks
 * at ("xz\t-lvv").  Ends the last line.
 */
static void print_wrapped(const char *text, int at, int indent)
{
	int column = at, gap = 0;
	bool fresh = true;      /* no word on this line yet */
	for (const char *p = text; *p;) {
		if (*p == '\n' || *p == ' ') {
			gap += *p == ' ';
			if (*p++ == '\n') {
				putchar('\n');
				column = 0;
				fresh = true;
			}
			continue;
		}
		/* Two spaces after a sentence, as the text has them. */
		gap = gap >= 2 ? 2 : 1;
		int len = (int)strcspn(p, " \n");
		if (!fresh && column + gap + len > HELP_WIDTH) {
			putchar('\n');
			column = 0;
			fresh = true;
		}
		if (fresh && column < indent)
			column += printf("%*s", indent - column, "");
		else if (!fresh)
			column += printf("%*s", gap, "");
		gap = 0;
		for (int i = 0; i < len; i++)
			putchar(p[i] == '\t' ? ' ' : p[i]);
		column += len;
		fresh = false;
		p += len;
	}
	if (!fresh)
		putchar('\n');
}

static const char *expanded(const char *text, char *out, size_t size)
{
	cli_expand(out, size, text);
	return out;
}

static void print_option(const cli_option *o)
{
	char left[64], text[2048];
	char letter[8] = "    ";
	if (o->letter)
		snprintf(letter, sizeof letter, "-%c, ", o->letter);
	/* A row without a name shows its arg as it is ("-0 ... -9"). */
	int len = o->name ?
		snprintf(left, sizeof left, "  %s--%s%s%s", letter, o->name,
			 o->arg ? "=" : "", o->arg ? o->arg : "") :
		snprintf(left, sizeof left, "  %s", expanded(o->arg, text,
							     sizeof text));
	fputs(left, stdout);
	if (len >= HELP_COLUMN - 1) {
		putchar('\n');
		len = 0;
	}
	cli_expand(text, sizeof text, o->help);
	print_wrapped(text, len, HELP_COLUMN);
}

static void print_paragraphs(const char *text)
{
	char expanded[4096];
	cli_expand(expanded, sizeof expanded, text);
	print_wrapped(expanded, 0, 0);
}

void cli_usage(const cli_tool *tool)
{
	const char *form = tool->synopsis;
	for (int i = 0; *form; i++) {
		int len = (int)strcspn(form, "\n");
		printf("%s%s %.*s\n", i ? "  or:  " : "Usage: ", cli_program,
		       len, form);
		form += len + (form[len] == '\n');
	}
	print_paragraphs(tool->about);
	putchar('\n');
	for (const cli_option *o = tool->options; is_entry(o); o++) {
		if ((o->name || o->arg) && o->help) {
			print_option(o);
		} else if (o->help) {
			putchar('\n');
			print_paragraphs(o->help);
		}
	}
	if (tool->footer) {
		putchar('\n');
		print_paragraphs(tool->footer);
	}
}

/* ---- the registry's answers in --help ---------------------------------- */

typedef struct text_buffer {
	char *text;
	size_t size;
	size_t used;
} text_buffer;

static void append(text_buffer *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void append(text_buffer *b, const char *fmt, ...)
{
	if (b->used + 1 >= b->size)
		return;
	va_list args;
	va_start(args, fmt);
	int n = vsnprintf(b->text + b->used, b->size - b->used, fmt, args);
	va_end(args);
	if (n > 0)
		b->used = PP_CLI_MIN(b->used + (size_t)n, b->size - 1);
}

static size_t format_count(void)
{
	size_t count = 0;
	while (pp_format_at(count))
		count++;
	return count;
}

/* ", " between the items of a list, " or " (or " and ") before the last. */
static const char *separator(size_t i, size_t count, const char *last)
{
	return i == 0 ? "" : i + 1 == count ? last : ", ";
}

static void append_formats(text_buffer *b, bool suffixes)
{
	size_t count = format_count();
	for (size_t i = 0; i < count; i++) {
		enum pp_format f = pp_format_at(i);
		append(b, "%s%s", separator(i, count, " or "),
		       suffixes ? pp_format_suffix(f) : pp_format_name(f));
	}
}

static bool same_levels(enum pp_format a, enum pp_format b)
{
	int a_min, a_max, a_default, b_min, b_max, b_default;
	pp_format_levels(a, &a_min, &a_max, &a_default);
	pp_format_levels(b, &b_min, &b_max, &b_default);
	return a_min == b_min && a_max == b_max && a_default == b_default;
}

/* "-0 ... -9 (default 6) for xz and gzip, -1 ... -19 (default 3) for
 * zstd": formats with the same levels said once. */
static void append_levels(text_buffer *b)
{
	size_t count = format_count();
	bool first = true;
	for (size_t i = 0; i < count; i++) {
		enum pp_format f = pp_format_at(i);
		size_t earlier = 0, alike = 0, said = 0;
		while (earlier < i && !same_levels(pp_format_at(earlier), f))
			earlier++;
		if (earlier < i)
			continue;  /* said with that one */
		for (size_t j = i; j < count; j++)
			alike += same_levels(pp_format_at(j), f);
		int min, max, level;
		pp_format_levels(f, &min, &max, &level);
		append(b, "%s-%d ... -%d (default %d) for ", first ? "" : ", ",
		       min, max, level);
		for (size_t j = i; j < count; j++)
			if (same_levels(pp_format_at(j), f))
				append(b, "%s%s", separator(said++, alike,
							    " and "),
				       pp_format_name(pp_format_at(j)));
		first = false;
	}
}

/* "-0 ... -19": the lowest and highest level of any format. */
static void append_level_span(text_buffer *b)
{
	int low = 0, high = 0;
	for (size_t i = 0; pp_format_at(i); i++) {
		int min, max, level;
		pp_format_levels(pp_format_at(i), &min, &max, &level);
		low = i == 0 || min < low ? min : low;
		high = i == 0 || max > high ? max : high;
	}
	append(b, "-%d ... -%d", low, high);
}

/* The check kinds have IDs under 32 (the bits of a format's set). */
static void append_checks(text_buffer *b)
{
	bool first = true;
	for (int id = 0; id < 32; id++) {
		const char *name = pp_check_name((enum pp_check)id);
		if (strcmp(name, "unknown") != 0) {
			append(b, "%s%s", first ? "" : ", ", name);
			first = false;
		}
	}
}

static void append_default_checks(text_buffer *b)
{
	size_t count = format_count();
	for (size_t i = 0; i < count; i++) {
		enum pp_format f = pp_format_at(i);
		append(b, "%s%s %s", separator(i, count, " and "),
		       pp_format_name(f),
		       pp_check_name(pp_format_default_check(f)));
	}
}

/* Appends the answer for {word}; false if word is not one of them. */
static bool append_answer(text_buffer *b, const char *word, size_t len)
{
#define IS(name) (len == sizeof name - 1 && strncmp(word, name, len) == 0)
	if (IS("formats"))
		append_formats(b, false);
	else if (IS("suffixes"))
		append_formats(b, true);
	else if (IS("levels"))
		append_levels(b);
	else if (IS("checks"))
		append_checks(b);
	else if (IS("default_checks"))
		append_default_checks(b);
	else if (IS("level_span"))
		append_level_span(b);
	else if (IS("default_format"))
		append(b, "%s", pp_format_name(pp_format_at(0)));
	else if (IS("max_threads"))
		append(b, "%d", CLI_MAX_THREADS);
	else
		return false;
	return true;
#undef IS
}

void cli_expand(char *out, size_t size, const char *text)
{
	text_buffer b = { .text = out, .size = size };
	out[0] = '\0';
	for (const char *p = text; *p;) {
		const char *close = *p == '{' ? strchr(p, '}') : NULL;
		if (close && append_answer(&b, p + 1, (size_t)(close - p - 1))) {
			p = close + 1;
			continue;
		}
		append(&b, "%c", *p++);
	}
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

const char *cli_one_archive(int first, int argc, char **argv)
{
	if (first + 1 != argc) {
		cli_error(first == argc ? "missing ARCHIVE" :
			  "too many arguments: only one ARCHIVE");
		exit(EXIT_USAGE);
	}
	return argv[first];
}

void cli_version(void)
{
	printf("%s (partpack) %s\n", cli_program, PP_VERSION);
}

/* ---- archives named on the command line ------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* pp_io over a descriptor: standard input, or the file it was read to. */
static int read_fd(void *opaque, void *buf, size_t len, uint64_t offset)
{
	int fd = *(const int *)opaque;
	for (uint8_t *p = buf; len > 0;) {
		ssize_t n = pread(fd, p, len, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errno = n == 0 ? EIO : errno;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

static int size_fd(void *opaque, uint64_t *size)
{
	struct stat st;
	if (fstat(*(const int *)opaque, &st))
		return -1;
	*size = S_ISBLK(st.st_mode) ? (uint64_t)lseek(*(const int *)opaque, 0,
						    SEEK_END) :
		(uint64_t)st.st_size;
	return 0;
}

/* A temporary file no one else can see: removed when closed. */
static int anonymous_file(void)
{
	const char *dir = getenv("TMPDIR");
	dir = dir && *dir ? dir : "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/partpack.XXXXXX", dir);
		if ((fd = mkostemp(path, O_CLOEXEC)) >= 0)
			unlink(path);
	}
	if (fd < 0)
		cli_error("(stdin): cannot make a temporary file in %s: %s", dir,
			  strerror(errno));
	return fd;
}

/* Copies the pipe on standard input into an anonymous file. */
static int spool_stdin(void)
{
	int fd = anonymous_file();
	uint8_t buf[1 << 16];
	while (fd >= 0) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			break;
		if (n < 0 || write_all(fd, buf, (size_t)n)) {
			cli_error("(stdin): %s %s", n < 0 ? "read:" :
				  "spooling to a temporary file:",
				  strerror(errno));
			close(fd);
			fd = -1;
		}
	}
	return fd;
}

/* The path of the file on standard input, if one names it still. */
static bool stdin_path(char *path, size_t size, const struct stat *st)
{
	struct stat named;
	ssize_t len = readlink("/proc/self/fd/0", path, size - 1);
	if (len <= 0 || path[0] != '/')
		return false;
	path[len] = '\0';
	return stat(path, &named) == 0 && named.st_dev == st->st_dev &&
	       named.st_ino == st->st_ino;
}

/* The descriptor standard input's archive is read through (for pp_io):
 * standard input itself, or the file a pipe was spooled to.  Lives until
 * the tool exits, as the archive does. */
static int stdin_archive_fd = -1;

/* "-": sets *path to open, or stdin_archive_fd for pp_open_io. */
static int open_stdin(bool spool_pipe, char *path, size_t size)
{
	struct stat st;
	if (fstat(STDIN_FILENO, &st)) {
		cli_error("(stdin): %s", strerror(errno));
		return EXIT_ERROR;
	}
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		if (!stdin_path(path, size, &st))
			stdin_archive_fd = STDIN_FILENO;
		return 0;
	}
	if (!spool_pipe || isatty(STDIN_FILENO)) {
		cli_error("(stdin): %s: %s needs to seek in the archive (its "
			  "index is at the end); give it a file", isatty(
			  STDIN_FILENO) ? "a terminal" : "a pipe", cli_program);
		return EXIT_USAGE;
	}
	stdin_archive_fd = spool_stdin();
	return stdin_archive_fd < 0 ? EXIT_ERROR : 0;
}

int cli_open_archive(const char *operand, bool spool_pipe, bool quiet,
		     pp_archive **archive, const char **name)
{
	/* Messages name the archive until the tool exits. */
	static char path[PATH_MAX];
	*name = operand;
	if (strcmp(operand, "-") == 0) {
		int status = open_stdin(spool_pipe, path, sizeof path);
		if (status)
			return status;
		*name = stdin_archive_fd >= 0 ? "(stdin)" : path;
	}
	pp_io io = { .version = PP_IO_VERSION, .opaque = &stdin_archive_fd,
		     .pread = read_fd, .size = size_fd };
	pp_error err;
	cli_progress scanning;
	cli_background_progress_begin(&scanning, "scanning", quiet);
	/* A URL is read by ranges: the footer and index, and what the
	 * partition table needs. */
	int opened = stdin_archive_fd >= 0 && strcmp(operand, "-") == 0 ?
		pp_open_io(&io, *name, PP_OPEN_READ, archive, &err) :
		strstr(*name, "://") ?
		pp_open_url(*name, PP_OPEN_READ, archive, &err) :
		pp_open(*name, PP_OPEN_READ, archive, &err);
	cli_background_progress_end(&scanning);
	return opened ? cli_open_failed(&err, *name) : 0;
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
