/* partcat - write the image inside an .xz or .gz archive, or a part of it. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(void)
{
	printf("Usage: %s [OPTION]... ARCHIVE\n"
	       "Write the uncompressed disk image inside ARCHIVE (.xz or .gz) to\n"
	       "standard output or to --output, or only a partition or byte range\n"
	       "of it, decoding only the blocks that hold those bytes.  Blocks are\n"
	       "decoded in parallel; the output is the same for any -T.\n"
	       "\n"
	       "  -o, --output=OUT      write OUT (a temporary file beside it, renamed\n"
	       "                        into place when complete)\n"
	       "  -p, --partition=SEL   only partition SEL (partN, /dev/sdaN,\n"
	       "                        name:NAME) of the image's own partition table\n"
	       "  -O, --output-format=FMT  raw (default), or an image format qemu-img\n"
	       "                        writes (qcow2, vmdk, vdi, vhdx), for --output;\n"
	       "                        zero blocks stay unallocated\n"
	       "      --offset=N        start at image byte N (K, M, G, KiB... suffixes;\n"
	       "                        -O N, a number, is --offset too)\n"
	       "  -l, --length=L        write at most L bytes (default: to the end)\n"
	       "  -T, --threads=N       decoding threads (default: one per online core)\n"
	       "      --sparse=WHEN     holes in a regular output file: auto (where the\n"
	       "                        archive says zeros), always (also every 4 KiB of\n"
	       "                        decoded zeros), never\n"
	       "  -f, --force           overwrite OUT if it exists\n"
	       "  -q, --quiet           no progress line\n"
	       "  -h, --help            show this help and exit\n"
	       "  -V, --version         show the version and exit\n"
	       "\n"
	       "Exit status: 0 success, 1 error (unreadable or corrupt archive,\n"
	       "partition not found), 2 usage error, 4 a block's check does not match.\n",
	       cli_program);
}

typedef struct cat_args {
	const char *archive;
	const char *output;
	const char *partition;
	const char *output_format;  /* NULL: raw */
	uint64_t offset;
	uint64_t length;
	bool offset_given;
	bool length_given;
	bool force;
	bool quiet;
	pp_extract_options options;
} cat_args;

static enum pp_sparse sparse_arg(const char *text)
{
	static const char *const names[] = {
		[PP_SPARSE_AUTO] = "auto",
		[PP_SPARSE_ALWAYS] = "always",
		[PP_SPARSE_NEVER] = "never",
	};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strcmp(text, names[i]) == 0)
			return (enum pp_sparse)i;
	cli_error("--sparse: '%s' is not auto, always or never", text);
	exit(EXIT_USAGE);
}

static unsigned threads_arg(const char *text)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(text, &end, 10);
	if (errno || end == text || *end || n > 1024 || text[0] == '-') {
		cli_error("--threads: '%s' is not a number from 0 to 1024", text);
		exit(EXIT_USAGE);
	}
	return (unsigned)n;
}

static void parse_args(int argc, char **argv, cat_args *args)
{
	enum { OPT_SPARSE = 256, OPT_OFFSET };
	static const struct option long_options[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "partition", required_argument, NULL, 'p' },
		{ "offset", required_argument, NULL, OPT_OFFSET },
		{ "output-format", required_argument, NULL, 'O' },
		{ "length", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 'T' },
		{ "sparse", required_argument, NULL, OPT_SPARSE },
		{ "force", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	pp_extract_options_init(&args->options);
	int c;
	while ((c = getopt_long(argc, argv, ":o:p:O:l:T:fqhV", long_options,
				NULL)) != -1) {
		switch (c) {
		case 'o': args->output = optarg; break;
		case 'p': args->partition = optarg; break;
		case 'O':
			/* qemu-img's -O FORMAT; a number is the offset that
			 * -O has always been. */
			if (!isdigit((unsigned char)optarg[0])) {
				args->output_format = optarg;
				break;
			}
			/* fall through */
		case OPT_OFFSET:
			args->offset = cli_size_arg("--offset", optarg);
			args->offset_given = true;
			break;
		case 'l':
			args->length = cli_size_arg("--length", optarg);
			args->length_given = true;
			break;
		case 'T': args->options.threads = threads_arg(optarg); break;
		case OPT_SPARSE: args->options.sparse = sparse_arg(optarg); break;
		case 'f': args->force = true; break;
		case 'q': args->quiet = true; break;
		case 'h': usage(); exit(EXIT_OK);
		case 'V': cli_version(); exit(EXIT_OK);
		default:
			cli_option_error(c, argv);
		}
	}
	args->archive = cli_one_archive(optind, argc, argv);
	if (args->partition && (args->offset_given || args->length_given)) {
		cli_error("give --partition or --offset/--length, not both");
		exit(EXIT_USAGE);
	}
	if (!args->length_given)
		args->length = UINT64_MAX;
	if (args->output_format && strcmp(args->output_format, "raw") == 0)
		args->output_format = NULL;
	if (args->output_format && !args->output) {
		cli_error("-O %s needs --output: qemu-img writes the image to "
			  "a file", args->output_format);
		exit(EXIT_USAGE);
	}
}

/* --partition: the range of that partition. */
static int locate(pp_archive *archive, cat_args *args)
{
	pp_error err;
	pp_range range;
	if (pp_locate_partition(archive, args->partition, &range, &err))
		return cli_fail(&err);
	args->offset = range.offset;
	args->length = range.length;
	return 0;
}

static int extract(pp_archive *archive, cat_args *args, int fd,
		   const char *name)
{
	cli_progress progress;
	cli_progress_init(&progress, "writing", args->quiet);
	args->options.progress = cli_progress_update;
	args->options.progress_opaque = &progress;
	pp_error err;
	int status = pp_extract_image(archive, args->offset, args->length, fd,
				      name, args->output_format,
				      &args->options, &err);
	cli_progress_end(&progress);
	return status ? cli_fail(&err) : 0;
}

/* Checks OUT before any work: no clobbering without --force. */
static int check_output(const cat_args *args)
{
	struct stat st;
	if (!args->output) {
		if (isatty(STDOUT_FILENO)) {
			cli_error("image data not written to a terminal "
				  "(use --output or a pipe)");
			return EXIT_USAGE;
		}
		return 0;
	}
	if (lstat(args->output, &st) != 0)
		return 0;
	if (!args->force) {
		cli_error("%s: already exists (use --force to overwrite)",
			  args->output);
		return EXIT_ERROR;
	}
	if (S_ISDIR(st.st_mode)) {
		cli_error("%s: is a directory", args->output);
		return EXIT_ERROR;
	}
	return 0;
}

/* OUT is a device or a pipe (with --force): written in place, since
 * renaming a file over it would replace the device node. */
static bool written_in_place(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

static int extract_in_place(pp_archive *archive, cat_args *args)
{
	int fd = open(args->output, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_error("%s: %s", args->output, strerror(errno));
		return EXIT_ERROR;
	}
	int status = extract(archive, args, fd, args->output);
	if (close(fd) && status == 0) {
		cli_error("%s: %s", args->output, strerror(errno));
		status = EXIT_ERROR;
	}
	return status;
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	cat_args args = { 0 };
	parse_args(argc, argv, &args);
	int status = check_output(&args);
	if (status)
		return status;

	pp_archive *archive;
	pp_error err;
	cli_progress scanning;
	cli_background_progress_begin(&scanning, "scanning", args.quiet);
	int opened = pp_open(args.archive, PP_OPEN_READ, &archive, &err);
	cli_background_progress_end(&scanning);
	if (opened)
		return cli_open_failed(&err, args.archive);
	if (args.partition)
		status = locate(archive, &args);
	if (status == 0 && !args.output) {
		status = extract(archive, &args, STDOUT_FILENO, "(stdout)");
	} else if (status == 0 && written_in_place(args.output)) {
		status = extract_in_place(archive, &args);
	} else if (status == 0) {
		int fd = cli_output_open(args.output, 0666);
		if (fd < 0)
			status = EXIT_ERROR;
		else if ((status = extract(archive, &args, fd, args.output)))
			cli_output_discard(fd);
		else if (cli_output_commit(fd, args.output, args.force, false))
			status = EXIT_ERROR;
	}
	pp_close(archive);
	return status;
}
