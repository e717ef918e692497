/* partpack - compress a disk image into an .xz, .gz or .zst that stays
 * patchable. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct pack_args {
	const char *input;
	const char *output;
	bool to_stdout;
	bool force;
	bool verbose;
	bool quiet;
	bool keep;              /* -k: the input is kept anyway */
	bool format_given;
	bool dry_run;
	bool level_given;
	bool check_given;
	const char *input_format;
	const char **selectors;
	size_t selector_count;
	pp_pack_options options;
} pack_args;

/* What was not given follows from the format: -F, else the output's
 * suffix, else the default. */
static void settle_format(pack_args *args)
{
	pp_pack_options *options = &args->options;
	enum pp_format named = args->output ?
		pp_format_from_path(args->output) : 0;
	if (!args->format_given && named)
		options->format = named;
	int min, max, level;
	if (!args->level_given &&
	    pp_format_levels(options->format, &min, &max, &level) == 0)
		options->level = level;
	if (!args->check_given)
		options->check = pp_format_default_check(options->format);
}

/* -C NAME: the library names the check kinds (IDs under 32, the bits of
 * a format's set of checks); which of them a format takes, pp_pack says. */
static void set_check(void *opaque, const cli_option *option, const char *arg)
{
	pack_args *args = opaque;
	(void)option;
	for (int id = 0; id < 32; id++) {
		if (strcmp(pp_check_name((enum pp_check)id), arg) == 0 &&
		    strcmp(arg, "unknown") != 0) {
			args->options.check = (enum pp_check)id;
			args->check_given = true;
			return;
		}
	}
	char known[200];
	cli_expand(known, sizeof known, "{checks}");
	cli_error("--check: unknown check '%s' (%s)", arg, known);
	exit(EXIT_USAGE);
}

static void set_format(void *opaque, const cli_option *option,
		       const char *arg)
{
	pack_args *args = opaque;
	(void)option;
	args->options.format = cli_format_arg("--format", arg);
	args->format_given = true;
}

static void add_selector(void *opaque, const cli_option *option,
			 const char *arg)
{
	pack_args *args = opaque;
	(void)option;
	const char **grown = realloc(args->selectors, (args->selector_count + 1) *
				     sizeof *grown);
	if (!grown) {
		cli_error("out of memory");
		exit(EXIT_ERROR);
	}
	args->selectors = grown;
	args->selectors[args->selector_count++] = arg;
}

static void set_block_size(void *opaque, const cli_option *option,
			   const char *arg)
{
	pack_args *args = opaque;
	uint64_t size = cli_size_arg("--block-size", arg);
	(void)option;
	if (size < PP_MIN_BLOCK_SIZE || size > PP_MAX_BLOCK_SIZE) {
		cli_error("--block-size: %s is not between 4KiB and 1GiB "
			  "(smaller blocks cost more than they hold, larger "
			  "ones too much memory)", arg);
		exit(EXIT_USAGE);
	}
	args->options.block_size = size;
}

static void set_reuse_strict(void *opaque, const cli_option *option,
			     const char *arg)
{
	pack_args *args = opaque;
	(void)option, (void)arg;
	args->options.reuse_flags |= PP_REUSE_STRICT;
}

/* -6, -19: the level (its range is the format's, pp_pack checks it). */
static void set_level(void *opaque, const char *digits)
{
	pack_args *args = opaque;
	args->options.level = atoi(digits);
	args->level_given = true;
}

#define FIELD(name) offsetof(pack_args, name)

static const cli_option option_table[] = {
	{ "output", 'o', "FILE", cli_set_text, FIELD(output),
	  "write FILE instead of INPUT.xz; its suffix must agree with the "
	  "format ({suffixes})" },
	{ "stdout", 'c', NULL, cli_set_flag, FIELD(to_stdout),
	  "write to standard output" },
	{ "format", 'F', "FORMAT", set_format, 0,
	  "{formats} (default: from the output name, else {default_format})" },
	{ "keep-raw", 'K', "SEL", add_selector, 0,
	  "store SEL uncompressed; repeatable.  SEL is START:END or "
	  "START+LENGTH (bytes), partN, /dev/sdaN, name:GPT-NAME (from the "
	  "partition table), label:LABEL, uuid:UUID (the partition libblkid "
	  "finds them in), /MOUNTPOINT (from the guest's fstab: read in "
	  "process from an ext root, else by libguestfs, started only then)" },
	{ "keep", 'k', NULL, cli_set_flag, FIELD(keep),
	  "keep INPUT (as xz\t-k; always the case)" },
	{ "input-format", 0, "FMT", cli_set_text, FIELD(input_format),
	  "read INPUT as FMT (raw, qcow2, vmdk, vhdx, vdi or another qemu "
	  "format) instead of asking qemu-img info" },
	{ "block-size", 'B', "SIZE", set_block_size, 0,
	  "uncompressed block size, 4KiB to 1GiB (default 16MiB): smaller "
	  "blocks cost more headers and index records than they hold; larger "
	  "ones more memory per thread and per patch" },
	{ NULL, 0, "{level_span}", NULL, 0, "compression level: {levels}" },
	{ "extreme", 'e', NULL, cli_set_flag, FIELD(options.extreme),
	  "slower xz compression for a little less size" },
	{ "check", 'C', "CHECK", set_check, 0,
	  "the check of each block: {checks}, as the format allows (default: "
	  "{default_checks})" },
	{ "threads", 'T', "N", cli_set_threads, FIELD(options.threads),
	  "worker threads, at most {max_threads}; 0 means one per core "
	  "(default)" },
	{ "reuse", 0, "BASE", cli_set_text, FIELD(options.reuse_path),
	  "copy each block that is unchanged from BASE, an archive packed "
	  "earlier with the same options" },
	{ "reuse-strict", 0, NULL, set_reuse_strict, 0,
	  "fail (status 6) if BASE cannot be trusted, instead of encoding "
	  "those blocks" },
	{ "dry-run", 'n', NULL, cli_set_flag, FIELD(dry_run),
	  "resolve the selectors, print the kept ranges by partition and what "
	  "they cost; write nothing" },
	{ "bmap", 0, "FILE", cli_set_text, FIELD(options.bmap_path),
	  "also write a bmap file of the image (bmap-tools' format 2.0: its "
	  "mapped blocks, a SHA-256 per range) for bmaptool copy" },
	{ "force", 'f', NULL, cli_set_flag, FIELD(force),
	  "overwrite an existing output file" },
	{ "verbose", 'v', NULL, cli_set_flag, FIELD(verbose),
	  "print the resolved ranges and, at the end, the sizes, ratio, speed "
	  "and time (with --reuse, also the blocks reused and encoded)" },
	{ "quiet", 'q', NULL, cli_set_flag, FIELD(quiet),
	  "no progress line, no warnings" },
	{ "help", 'h', NULL, cli_show_help, 0, "show this help and exit" },
	{ "version", 'V', NULL, cli_show_version, 0,
	  "show the version and exit" },
	CLI_END,
};

static const cli_tool tool = {
	.synopsis = "[OPTION]... [INPUT]",
	.about = "Compress the disk image INPUT into a standard {suffixes} file "
		"whose chosen ranges stay uncompressed, so partpatch can "
		"overwrite them in place.  Writes INPUT with the format's suffix "
		"added (INPUT.xz); INPUT is always kept.  Without INPUT, or when "
		"INPUT is -, reads standard input.  INPUT may be any image qemu "
		"reads (qcow2, vmdk, vhdx, vdi ...): its guest disk is packed, "
		"and NAME.qcow2 writes NAME.img.xz.",
	.options = option_table,
	.footer = "Sizes are bytes with an optional suffix: K, M, G, T (or KiB, "
		"MiB, GiB, TiB) are powers of 1024, kB, MB, GB, TB powers of "
		"1000, as in dd.\n"
		"Exit status: 0 success, 1 error, 2 usage error, 6 "
		"--reuse-strict refused BASE.  The output is the same bytes for "
		"every thread count, with or without --reuse.",
	.number = set_level,
};

static void parse_args(int argc, char **argv, pack_args *args)
{
	pp_pack_options_init(&args->options);
	int first = cli_parse(&tool, &argc, argv, args);
	if (first + 1 < argc) {
		cli_error("too many arguments: only one INPUT");
		exit(EXIT_USAGE);
	}
	if (first < argc && strcmp(argv[first], "-") != 0)
		args->input = argv[first];
	if (args->to_stdout && args->output) {
		cli_error("--stdout and --output exclude each other");
		exit(EXIT_USAGE);
	}
	if (!args->input && args->input_format &&
	    strcmp(args->input_format, "raw") != 0) {
		cli_error("--input-format=%s: standard input is read as raw; "
			  "name the file", args->input_format);
		exit(EXIT_USAGE);
	}
	if (!args->input && !args->to_stdout && !args->output &&
	    !args->dry_run) {
		cli_error("reading standard input: use --stdout or --output");
		exit(EXIT_USAGE);
	}
	settle_format(args);
	if ((args->options.reuse_flags & PP_REUSE_STRICT) &&
	    !args->options.reuse_path) {
		cli_error("--reuse-strict needs --reuse");
		exit(EXIT_USAGE);
	}
}

/* ---- output: a temporary file renamed into place, or stdout ---------- */

/*
 * INPUT.xz for a raw image.  An image read through qemu is packed as its
 * guest disk, a raw image: NAME.qcow2 (.qcow, .vmdk, .vhdx, .vhd, .vdi,
 * .qed) becomes NAME.img.xz, and a name without such a suffix gets .img
 * too unless it ends in .img or .raw already (an Ubuntu cloud image is a
 * qcow2 named .img).
 */
static char *default_output(const pack_args *args, bool through_qemu)
{
	static const char *const containers[] = {
		".qcow2", ".qcow", ".vmdk", ".vhdx", ".vhd", ".vdi", ".qed",
	};
	const char *suffix = pp_format_suffix(args->options.format);
	size_t stem = strlen(args->input);
	const char *img = "";
	if (through_qemu) {
		img = ".img";
		for (size_t i = 0; i < sizeof containers / sizeof *containers;
		     i++) {
			size_t len = strlen(containers[i]);
			if (stem > len && strcasecmp(args->input + stem - len,
						     containers[i]) == 0) {
				stem -= len;
				break;
			}
		}
		if (stem == strlen(args->input) && stem > 4 &&
		    (strcmp(args->input + stem - 4, ".img") == 0 ||
		     strcmp(args->input + stem - 4, ".raw") == 0))
			img = "";
	}
	size_t size = stem + strlen(img) + strlen(suffix) + 1;
	char *name = malloc(size);
	if (name)
		snprintf(name, size, "%.*s%s%s", (int)stem, args->input, img,
			 suffix);
	return name;
}

/* Gives the output the input's times, as xz and gzip do; then fsync and
 * rename over output (refusing to replace it unless forced). */
static int commit_output(int fd, const char *output, bool force,
			 const struct stat *in_stat)
{
	const struct timespec times[2] = { in_stat->st_atim, in_stat->st_mtim };
	if (S_ISREG(in_stat->st_mode) && futimens(fd, times)) {
		cli_error("%s: cannot set its time: %s", output, strerror(errno));
		cli_output_discard(fd);
		return -1;
	}
	return cli_output_commit(fd, output, force, true);
}

/* An undo record beside the new archive was left for the file it replaced
 * (or for none): replayed, it would corrupt the new one.  Removed, with a
 * notice, once the new archive is in place: until then it still belongs
 * with the old one. */
static int remove_stale_undo(const char *output)
{
	bool removed;
	pp_error err;
	return pp_remove_stale_undo(output, &removed, &err) ? cli_fail(&err) : 0;
}

/* ---- input ----------------------------------------------------------- */

/* The image: a source opened by name (any format), or standard input. */
typedef struct pack_input {
	int fd;
	pp_source *source;          /* NULL: standard input, read from fd */
	bool seekable;
	uint64_t size;              /* if seekable */
} pack_input;

static int resolve_ranges(pack_args *args, const pack_input *in,
			  pp_range **ranges)
{
	pp_error err;
	int status = in->source ?
		pp_source_resolve_selectors(in->source, args->selectors,
					    args->selector_count, ranges, &err) :
		pp_resolve_selectors(args->input, in->seekable ? in->fd : -1,
				     in->size, args->selectors,
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

/* The bytes written to out_fd, or UINT64_MAX for a pipe. */
static uint64_t output_size(int out_fd)
{
	off_t end = lseek(out_fd, 0, SEEK_CUR);
	return end < 0 ? UINT64_MAX : (uint64_t)end;
}

static int compare_ranges(const void *a, const void *b)
{
	const pp_range *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The bytes the ranges cover, overlaps counted once. */
static uint64_t covered_bytes(const pp_range *ranges, size_t count)
{
	pp_range *sorted = malloc((count ? count : 1) * sizeof *sorted);
	uint64_t covered = 0, end = 0;
	if (!sorted)
		return 0;
	memcpy(sorted, ranges, count * sizeof *sorted);
	qsort(sorted, count, sizeof *sorted, compare_ranges);
	for (size_t i = 0; i < count; i++) {
		uint64_t from = sorted[i].offset > end ? sorted[i].offset : end;
		uint64_t to = sorted[i].offset + sorted[i].length;
		if (to > from)
			covered += to - from;
		if (to > end)
			end = to;
	}
	free(sorted);
	return covered;
}

/* --dry-run: each kept range with the partitions it lies in, then what
 * they cost: kept bytes are stored as they are, so they cost their size. */
static int dry_run(const pack_args *args, const pack_input *in,
		   const pp_range *ranges)
{
	pp_partition_info *parts = NULL;
	size_t part_count = 0;
	pp_error err;
	bool seekable = in->seekable;
	uint64_t image_size = in->size;
	if (seekable && args->selector_count &&
	    (in->source ?
	     pp_source_list_partitions(in->source, &parts, &part_count, &err) :
	     pp_list_image_partitions(in->fd, image_size, args->input, &parts,
				      &part_count, &err)) != 0)
		part_count = 0;  /* no table: the ranges are only bytes */
	for (size_t i = 0; i < args->selector_count; i++) {
		const pp_range *r = &ranges[i];
		char size_text[32];
		cli_format_size(size_text, sizeof size_text, r->length);
		printf("%s: bytes %llu..%llu (%llu bytes, %s)", args->selectors[i],
		       (unsigned long long)r->offset,
		       (unsigned long long)(r->offset + r->length),
		       (unsigned long long)r->length, size_text);
		size_t shown = 0;
		for (size_t p = 0; p < part_count; p++) {
			const pp_partition_info *part = &parts[p];
			if (part->offset >= r->offset + r->length ||
			    r->offset >= part->offset + part->length)
				continue;
			bool whole = part->offset == r->offset &&
				part->length == r->length;
			printf("%s%s partition %u%s%s%s", shown++ ? "," : ";",
			       whole ? "" : " in", part->number,
			       part->name[0] ? " \"" : "", part->name,
			       part->name[0] ? "\"" : "");
		}
		if (part_count && !shown)
			printf("; in no partition");
		putchar('\n');
	}
	free(parts);
	uint64_t kept = covered_bytes(ranges, args->selector_count);
	char kept_text[32], image_text[32] = "?";
	cli_format_size(kept_text, sizeof kept_text, kept);
	if (seekable)
		cli_format_size(image_text, sizeof image_text, image_size);
	printf("kept raw: %llu bytes (%s) of a %s image, stored uncompressed; "
	       "nothing written\n", (unsigned long long)kept, kept_text,
	       image_text);
	return EXIT_OK;
}

static void print_reuse(const pp_pack_options *options,
			const pp_pack_report *report)
{
	uint64_t zero = report->blocks - report->reused_blocks -
		report->encoded_blocks;
	fprintf(stderr, "%s: %llu blocks: %llu reused from %s (%llu bytes), "
		"%llu encoded (%llu bytes), %llu all-zero\n", cli_program,
		(unsigned long long)report->blocks,
		(unsigned long long)report->reused_blocks, options->reuse_path,
		(unsigned long long)report->reused_bytes,
		(unsigned long long)report->encoded_blocks,
		(unsigned long long)report->encoded_bytes,
		(unsigned long long)zero);
}

/* Standard input: seekable when it is a file or a device. */
static void stdin_input(pack_input *in, const struct stat *in_stat)
{
	in->seekable = S_ISREG(in_stat->st_mode) || S_ISBLK(in_stat->st_mode);
	if (in->seekable) {
		off_t end = lseek(in->fd, 0, SEEK_END);
		if (end < 0 || lseek(in->fd, 0, SEEK_SET) < 0)
			in->seekable = false;
		else
			in->size = (uint64_t)end;
	}
}

static int pack(pack_args *args, pack_input *in, const struct stat *in_stat)
{
	pp_source_info info = { .direct = true };
	pp_error err;
	if (in->source && pp_source_get_info(in->source, &info, &err) == 0) {
		in->seekable = true;
		in->size = info.size;
	} else if (!in->source) {
		stdin_input(in, in_stat);
	}
	pp_range *ranges = NULL;
	int status = resolve_ranges(args, in, &ranges);
	if (status)
		return status;
	if (args->dry_run) {
		status = dry_run(args, in, ranges);
		free(ranges);
		return status;
	}
	args->options.keep = ranges;
	args->options.keep_count = args->selector_count;

	char *output = args->output ? strdup(args->output) :
		args->to_stdout ? NULL : default_output(args, !info.direct);
	if (!args->to_stdout && !output) {
		free(ranges);
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	const char *out_name = output ? output : "(stdout)";
	int out_fd = STDOUT_FILENO;
	if (!output && isatty(STDOUT_FILENO)) {
		cli_error("compressed data not written to a terminal");
		status = EXIT_USAGE;
	} else if (output && (status = cli_check_output(output,
						       args->options.format,
						       args->force))) {
		/* cli_check_output said why */
	} else if (output) {
		out_fd = cli_output_open(output, S_ISREG(in_stat->st_mode) ?
					 in_stat->st_mode : 0666);
		if (out_fd < 0)
			status = EXIT_ERROR;
	}
	if (status == 0) {
		cli_progress progress;
		cli_progress_init(&progress, "packing", args->quiet);
		args->options.progress = cli_progress_update;
		args->options.progress_opaque = &progress;
		pp_pack_report report;
		args->options.report = &report;
		int packed = in->source ?
			pp_pack_source(in->source, out_fd, out_name,
				       &args->options, &err) :
			pp_pack(in->fd, "(stdin)", out_fd, out_name,
				&args->options, &err);
		cli_progress_end(&progress);
		if (packed)
			status = cli_fail(&err);
		else if (args->verbose)
			cli_progress_summary(&progress, args->input ?
					     args->input : "(stdin)",
					     output_size(out_fd));
		if (status == 0 && args->verbose && args->options.reuse_path)
			print_reuse(&args->options, &report);
	}
	if (output && out_fd >= 0 && out_fd != STDOUT_FILENO) {
		if (status == 0 && commit_output(out_fd, output, args->force,
						 in_stat))
			status = EXIT_ERROR;
		else if (status != 0)
			cli_output_discard(out_fd);
		else
			status = remove_stale_undo(output);
	}
	free(output);
	free(ranges);
	return status;
}

/*
 * An image that is already compressed is someone's mistake (partpack of a
 * .xz): it packs, but nothing in it is patchable.  The library knows the
 * signatures of its own formats (xz, gzip and zstd: pp_format_of_head);
 * these are the other compressors people feed it by accident.
 */
static void warn_if_compressed(int in_fd, const char *name)
{
	static const struct {
		const char *name;
		size_t len;
		unsigned char magic[6];
	} compressed[] = {
		{ "bzip2", 3, { 'B', 'Z', 'h' } },
	};
	unsigned char head[6];
	off_t at = lseek(in_fd, 0, SEEK_CUR);
	ssize_t got = at < 0 ? -1 : pread(in_fd, head, sizeof head, at);
	if (got <= 0)
		return;
	enum pp_format format = pp_format_of_head(head, (size_t)got);
	const char *kind = format ? pp_format_name(format) : NULL;
	for (size_t i = 0; !kind && i < sizeof compressed / sizeof *compressed;
	     i++)
		if ((size_t)got >= compressed[i].len &&
		    memcmp(head, compressed[i].magic, compressed[i].len) == 0)
			kind = compressed[i].name;
	if (kind)
		cli_error("%s: warning: already %s-compressed; partpack "
			  "expects a raw disk image (decompress it first)",
			  name, kind);
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
	pack_input in = { .fd = in_fd };
	pp_error err;
	/* A named image is probed, and read through qemu unless raw. */
	if (args.input && pp_source_open(args.input, args.input_format, 0,
					 &in.source, &err)) {
		close(in_fd);
		free(args.selectors);
		return cli_fail(&err);
	}
	pp_source_info info = { .direct = true };
	if (in.source)
		pp_source_get_info(in.source, &info, &err);
	if (!args.quiet && S_ISREG(in_stat.st_mode) && info.direct)
		warn_if_compressed(in_fd, args.input ? args.input : "(stdin)");
	int status = pack(&args, &in, &in_stat);
	pp_source_close(in.source);
	if (args.input)
		close(in_fd);
	free(args.selectors);
	return status;
}
