/* partcat - write the image inside an .xz, .gz or .zst archive, or a part
 * of it. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static void set_offset(void *opaque, const cli_option *option,
		       const char *arg)
{
	cat_args *args = opaque;
	cli_set_size(args, option, arg);
	args->offset_given = true;
}

static void set_length(void *opaque, const cli_option *option,
		       const char *arg)
{
	cat_args *args = opaque;
	cli_set_size(args, option, arg);
	args->length_given = true;
}

/* -O FORMAT, qemu-img's; a number is the offset -O has always been. */
static void set_output_format(void *opaque, const cli_option *option,
			      const char *arg)
{
	cat_args *args = opaque;
	(void)option;
	if (isdigit((unsigned char)arg[0])) {
		args->offset = cli_size_arg("--offset", arg);
		args->offset_given = true;
	} else {
		args->output_format = arg;
	}
}

static void set_sparse(void *opaque, const cli_option *option,
		       const char *arg)
{
	static const char *const names[] = {
		[PP_SPARSE_AUTO] = "auto",
		[PP_SPARSE_ALWAYS] = "always",
		[PP_SPARSE_NEVER] = "never",
	};
	cat_args *args = opaque;
	(void)option;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		if (strcmp(arg, names[i]) == 0) {
			args->options.sparse = (enum pp_sparse)i;
			return;
		}
	}
	cli_error("--sparse: '%s' is not auto, always or never", arg);
	exit(EXIT_USAGE);
}

#define FIELD(name) offsetof(cat_args, name)

static const cli_option option_table[] = {
	{ "output", 'o', "OUT", cli_set_text, FIELD(output),
	  "write OUT (a temporary file beside it, renamed into place when "
	  "complete); - is standard output" },
	{ "partition", 'p', "SEL", cli_set_text, FIELD(partition),
	  "only partition SEL (partN, /dev/sdaN, name:NAME) of the image's own "
	  "partition table" },
	{ "output-format", 'O', "FMT", set_output_format, 0,
	  "raw (default), or an image format qemu-img writes (qcow2, vmdk, "
	  "vdi, vhdx), for --output; zero blocks stay unallocated" },
	{ "offset", 0, "N", set_offset, FIELD(offset),
	  "start at image byte N (K, M, G, KiB... suffixes; -O\tN, a number, "
	  "is --offset too)" },
	{ "length", 'l', "L", set_length, FIELD(length),
	  "write at most L bytes (default: to the end)" },
	{ "threads", 'T', "N", cli_set_threads, FIELD(options.threads),
	  "decoding threads (default: one per online core)" },
	{ "sparse", 0, "WHEN", set_sparse, 0,
	  "holes in a regular output file: auto (where the archive says "
	  "zeros, and for every 4 KiB of decoded zeros, as cp and xz do), "
	  "always (the same), never" },
	{ "force", 'f', NULL, cli_set_flag, FIELD(force),
	  "overwrite OUT if it exists" },
	{ "quiet", 'q', NULL, cli_set_flag, FIELD(quiet), "no progress line" },
	CLI_HELP_AND_VERSION,
	CLI_END,
};

static const cli_tool tool = {
	.synopsis = "[OPTION]... ARCHIVE",
	.about = "Write the uncompressed disk image inside ARCHIVE ({suffixes}) "
		"to standard output or to --output, or only a partition or byte "
		"range of it, decoding only the blocks that hold those bytes.  "
		"Blocks are decoded in parallel; the output is the same for any "
		"-T.  ARCHIVE - is standard input (a pipe is read to a temporary "
		"file first: the index is at the end).",
	.options = option_table,
	.footer = "Exit status: 0 success, 1 error (unreadable or corrupt "
		"archive, partition not found), 2 usage error, 4 a block's check "
		"does not match.",
};

static void parse_args(int argc, char **argv, cat_args *args)
{
	pp_extract_options_init(&args->options);
	int first = cli_parse(&tool, &argc, argv, args);
	args->archive = cli_one_archive(first, argc, argv);
	if (args->output && strcmp(args->output, "-") == 0)
		args->output = NULL;       /* -o - is standard output */
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
	if (!args->output) {
		if (isatty(STDOUT_FILENO)) {
			cli_error("image data not written to a terminal "
				  "(use --output or a pipe)");
			return EXIT_USAGE;
		}
		return 0;
	}
	return cli_check_output_path(args->output, args->force);
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
	status = cli_open_archive(args.archive, true, args.quiet, &archive,
				  &args.archive);
	if (status)
		return status;
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
