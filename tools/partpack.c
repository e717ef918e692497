/* partpack - compress a disk image into an .xz or .gz that stays patchable. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(void)
{
	printf("Usage: %s [OPTION]... [INPUT]\n"
	       "Compress the disk image INPUT into a standard .xz or .gz file whose\n"
	       "chosen ranges stay uncompressed, so partpatch can overwrite them in\n"
	       "place.  Writes INPUT.xz (or INPUT.gz); INPUT is kept.  Without INPUT,\n"
	       "or when INPUT is -, reads standard input.\n"
	       "\n"
	       "  -o, --output=FILE      write FILE instead of INPUT.xz\n"
	       "  -c, --stdout           write to standard output\n"
	       "  -F, --format=FORMAT    xz or gzip (default: from the output name, else xz)\n"
	       "  -k, --keep-raw=SEL     store SEL uncompressed; repeatable.  SEL is\n"
	       "                         START:END or START+LENGTH (bytes; K, M, G,\n"
	       "                         KiB, MiB, GiB suffixes), partN, /dev/sdaN,\n"
	       "                         name:GPT-NAME\n"
	       "  -B, --block-size=SIZE  uncompressed block size (default 16MiB)\n"
	       "  -0 ... -9              compression level (default 6)\n"
	       "  -e, --extreme          slower xz compression for a little less size\n"
	       "  -C, --check=CHECK      xz block check: crc32, crc64 (default), sha256\n"
	       "  -T, --threads=N        worker threads; 0 means one per core (default)\n"
	       "  -f, --force            overwrite an existing output file\n"
	       "  -v, --verbose          print the resolved ranges\n"
	       "  -q, --quiet            no progress line\n"
	       "  -h, --help             show this help and exit\n"
	       "  -V, --version          show the version and exit\n"
	       "\n"
	       "Exit status: 0 success, 1 error, 2 usage error.\n"
	       "The output is the same bytes for every thread count.\n",
	       cli_program);
}

typedef struct pack_args {
	const char *input;
	const char *output;
	bool to_stdout;
	bool force;
	bool verbose;
	bool quiet;
	bool format_given;
	const char **selectors;
	size_t selector_count;
	pp_pack_options options;
} pack_args;

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);
	return n > s && strcmp(name + n - s, suffix) == 0;
}

static enum pp_check parse_check(const char *text)
{
	if (strcmp(text, "crc32") == 0)
		return PP_CHECK_CRC32;
	if (strcmp(text, "crc64") == 0)
		return PP_CHECK_CRC64;
	if (strcmp(text, "sha256") == 0)
		return PP_CHECK_SHA256;
	cli_error("--check: unknown check '%s' (crc32, crc64, sha256)", text);
	exit(EXIT_USAGE);
}

static unsigned parse_threads(const char *text)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(text, &end, 10);
	if (!*text || *end || errno || n > 4096 || text[0] == '-') {
		cli_error("--threads: '%s' is not a number from 0 to 4096", text);
		exit(EXIT_USAGE);
	}
	return (unsigned)n;
}

static void parse_args(int argc, char **argv, pack_args *args)
{
	static const struct option long_options[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "stdout", no_argument, NULL, 'c' },
		{ "format", required_argument, NULL, 'F' },
		{ "keep-raw", required_argument, NULL, 'k' },
		{ "block-size", required_argument, NULL, 'B' },
		{ "extreme", no_argument, NULL, 'e' },
		{ "check", required_argument, NULL, 'C' },
		{ "threads", required_argument, NULL, 'T' },
		{ "force", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	pp_pack_options_init(&args->options);
	args->selectors = calloc((size_t)argc, sizeof *args->selectors);
	if (!args->selectors) {
		cli_error("out of memory");
		exit(EXIT_ERROR);
	}
	int c;
	while ((c = getopt_long(argc, argv, ":o:cF:k:B:eC:T:fvqhV0123456789",
				long_options, NULL)) != -1) {
		switch (c) {
		case 'o': args->output = optarg; break;
		case 'c': args->to_stdout = true; break;
		case 'F':
			args->format_given = true;
			if (strcmp(optarg, "xz") == 0) {
				args->options.format = PP_FORMAT_XZ;
			} else if (strcmp(optarg, "gzip") == 0 ||
				   strcmp(optarg, "gz") == 0) {
				args->options.format = PP_FORMAT_GZIP;
			} else {
				cli_error("--format: unknown format '%s' (xz, gzip)",
					  optarg);
				exit(EXIT_USAGE);
			}
			break;
		case 'k': args->selectors[args->selector_count++] = optarg; break;
		case 'B':
			args->options.block_size = cli_size_arg("--block-size",
								optarg);
			break;
		case 'e': args->options.extreme = true; break;
		case 'C': args->options.check = parse_check(optarg); break;
		case 'T': args->options.threads = parse_threads(optarg); break;
		case 'f': args->force = true; break;
		case 'v': args->verbose = true; break;
		case 'q': args->quiet = true; break;
		case 'h': usage(); exit(EXIT_OK);
		case 'V': cli_version(); exit(EXIT_OK);
		case '0': case '1': case '2': case '3': case '4':
		case '5': case '6': case '7': case '8': case '9':
			args->options.level = c - '0';
			break;
		default:
			cli_option_error(c, argv);
		}
	}
	if (optind + 1 < argc) {
		cli_error("too many arguments: only one INPUT");
		exit(EXIT_USAGE);
	}
	if (optind < argc && strcmp(argv[optind], "-") != 0)
		args->input = argv[optind];
	if (args->to_stdout && args->output) {
		cli_error("--stdout and --output exclude each other");
		exit(EXIT_USAGE);
	}
	if (!args->input && !args->to_stdout && !args->output) {
		cli_error("reading standard input: use --stdout or --output");
		exit(EXIT_USAGE);
	}
	if (!args->format_given && args->output &&
	    (has_suffix(args->output, ".gz") || has_suffix(args->output, ".gzip")))
		args->options.format = PP_FORMAT_GZIP;
}

/* ---- output: a temporary file renamed into place, or stdout ---------- */

/* The temporary output, removed if partpack stops before it is complete. */
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

static char *default_output(const pack_args *args)
{
	const char *suffix = args->options.format == PP_FORMAT_GZIP ? ".gz" : ".xz";
	size_t size = strlen(args->input) + strlen(suffix) + 1;
	char *name = malloc(size);
	if (name)
		snprintf(name, size, "%s%s", args->input, suffix);
	return name;
}

static int open_temp_output(const char *output, mode_t mode)
{
	size_t size = strlen(output) + sizeof ".XXXXXX";
	temp_path = malloc(size);
	if (!temp_path)
		return -1;
	snprintf(temp_path, size, "%s.XXXXXX", output);
	int fd = mkstemp(temp_path);
	if (fd < 0) {
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

/* fsync, then rename over output (refusing to replace it unless forced). */
static int commit_output(int fd, const char *output, bool force)
{
	if (fsync(fd) || close(fd)) {
		cli_error("%s: %s", output, strerror(errno));
		return -1;
	}
	int renamed = force ? rename(temp_path, output) :
		renameat2(AT_FDCWD, temp_path, AT_FDCWD, output,
			  RENAME_NOREPLACE);
	if (renamed) {
		cli_error("%s: %s%s", output, strerror(errno),
			  errno == EEXIST ? " (use --force to overwrite)" : "");
		return -1;
	}
	free(temp_path);
	temp_path = NULL;
	return 0;
}

static void discard_output(int fd)
{
	close(fd);
	if (temp_path)
		unlink(temp_path);
	free(temp_path);
	temp_path = NULL;
}

/* ---- input ----------------------------------------------------------- */

static int resolve_ranges(pack_args *args, int in_fd, bool seekable,
			  uint64_t image_size, pp_range **ranges)
{
	pp_error err;
	int status = pp_resolve_selectors(args->input, seekable ? in_fd : -1,
					  image_size, args->selectors,
					  args->selector_count, ranges, &err);
	if (status)
		return cli_fail(&err);
	for (size_t i = 0; args->verbose && i < args->selector_count; i++)
		fprintf(stderr, "%s: keep raw %s: bytes %llu..%llu (%llu bytes)\n",
			cli_program, args->selectors[i],
			(unsigned long long)(*ranges)[i].offset,
			(unsigned long long)((*ranges)[i].offset +
					     (*ranges)[i].length),
			(unsigned long long)(*ranges)[i].length);
	return 0;
}

static int pack(pack_args *args, int in_fd, const struct stat *in_stat)
{
	bool seekable = S_ISREG(in_stat->st_mode) || S_ISBLK(in_stat->st_mode);
	uint64_t image_size = 0;
	if (seekable) {
		off_t end = lseek(in_fd, 0, SEEK_END);
		if (end < 0 || lseek(in_fd, 0, SEEK_SET) < 0)
			seekable = false;
		else
			image_size = (uint64_t)end;
	}
	pp_range *ranges = NULL;
	int status = resolve_ranges(args, in_fd, seekable, image_size, &ranges);
	if (status)
		return status;
	args->options.keep = ranges;
	args->options.keep_count = args->selector_count;

	char *output = args->output ? strdup(args->output) :
		args->to_stdout ? NULL : default_output(args);
	if (!args->to_stdout && !output) {
		free(ranges);
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	const char *out_name = output ? output : "(stdout)";
	struct stat out_stat;
	int out_fd = STDOUT_FILENO;
	if (!output && isatty(STDOUT_FILENO)) {
		cli_error("compressed data not written to a terminal");
		status = EXIT_USAGE;
	} else if (output && !args->force && lstat(output, &out_stat) == 0) {
		cli_error("%s: already exists (use --force to overwrite)", output);
		status = EXIT_ERROR;
	} else if (output) {
		out_fd = open_temp_output(output, S_ISREG(in_stat->st_mode) ?
					  in_stat->st_mode : 0666);
		if (out_fd < 0) {
			cli_error("%s: cannot create: %s", output, strerror(errno));
			status = EXIT_ERROR;
		}
	}
	if (status == 0) {
		cli_progress progress;
		cli_progress_init(&progress, "packing", args->quiet);
		args->options.progress = cli_progress_update;
		args->options.progress_opaque = &progress;
		pp_error err;
		int packed = pp_pack(in_fd, args->input ? args->input : "(stdin)",
				     out_fd, out_name, &args->options, &err);
		cli_progress_end(&progress);
		if (packed)
			status = cli_fail(&err);
	}
	if (output && out_fd >= 0 && out_fd != STDOUT_FILENO) {
		if (status == 0 && commit_output(out_fd, output, args->force))
			status = EXIT_ERROR;
		else if (status != 0)
			discard_output(out_fd);
	}
	free(output);
	free(ranges);
	return status;
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	pack_args args = { 0 };
	parse_args(argc, argv, &args);
	int in_fd = STDIN_FILENO;
	if (args.input) {
		in_fd = open(args.input, O_RDONLY | O_CLOEXEC);
		if (in_fd < 0) {
			cli_error("%s: %s", args.input, strerror(errno));
			return EXIT_ERROR;
		}
	}
	struct stat in_stat;
	if (fstat(in_fd, &in_stat)) {
		cli_error("%s: %s", args.input ? args.input : "(stdin)",
			  strerror(errno));
		return EXIT_ERROR;
	}
	if (S_ISDIR(in_stat.st_mode)) {
		cli_error("%s: is a directory", args.input);
		return EXIT_ERROR;
	}
	catch_signals();
	int status = pack(&args, in_fd, &in_stat);
	if (args.input)
		close(in_fd);
	free(args.selectors);
	return status;
}
