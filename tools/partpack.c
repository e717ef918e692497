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

/* Which level: -N, or --fast or --best (the format's lowest or highest,
 * as xz has them), or the format's default. */
enum level_pick { LEVEL_DEFAULT, LEVEL_GIVEN, LEVEL_FAST, LEVEL_BEST };

typedef struct pack_args {
	const char *input;      /* the one being packed; NULL: stdin */
	char **inputs;          /* the INPUT operands */
	size_t input_count;
	const char *output;
	bool to_stdout;
	bool force;
	bool verbose;
	bool quiet;
	bool keep;              /* -k: the input is kept anyway */
	bool format_given;
	bool dry_run;
	enum level_pick level_pick;
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
	if (args->level_pick != LEVEL_GIVEN &&
	    pp_format_levels(options->format, &min, &max, &level) == 0)
		options->level = args->level_pick == LEVEL_FAST ? min :
			args->level_pick == LEVEL_BEST ? max : level;
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
	args->level_pick = LEVEL_GIVEN;
}

/* --fast, --best; the last of these and -N wins, as in xz. */
static void set_level_pick(void *opaque, const cli_option *option,
			   const char *arg)
{
	pack_args *args = opaque;
	(void)arg;
	args->level_pick = (enum level_pick)option->field;
}

/* xz's -d, -t and -l: other tools' work here.  Names the one to use. */
static void refuse_mode(void *opaque, const cli_option *option,
			const char *arg)
{
	(void)opaque, (void)arg;
	cli_error("-%c, --%s: partpack only compresses; %s",
		  (char)option->field, option->name,
		  option->field == 'd' ? "to decompress, use 'partcat ARCHIVE "
		  "-o IMAGE' (or xz -d, gzip -d, zstd -d)" :
		  option->field == 't' ? "to test an archive, use 'partinfo "
		  "--verify ARCHIVE'" : "to list an archive, use 'partinfo "
		  "ARCHIVE'");
	exit(EXIT_USAGE);
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
	{ "fast", 0, NULL, set_level_pick, LEVEL_FAST,
	  "the format's fastest level (xz -0, gzip -0, zstd -1)" },
	{ "best", 0, NULL, set_level_pick, LEVEL_BEST,
	  "the format's best level (-9, zstd -19)" },
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
	{ "decompress", 'd', NULL, refuse_mode, 'd',
	  "not partpack's work: exits with status 2 naming partcat, which "
	  "decompresses" },
	{ "uncompress", 0, NULL, refuse_mode, 'd', NULL },
	{ "test", 't', NULL, refuse_mode, 't',
	  "likewise, naming partinfo --verify" },
	{ "list", 'l', NULL, refuse_mode, 'l', "likewise, naming partinfo" },
	CLI_HELP_AND_VERSION,
	CLI_END,
};

static const cli_tool tool = {
	.synopsis = "[OPTION]... [INPUT]...",
	.about = "Compress each disk image INPUT into a standard {suffixes} "
		"file whose chosen ranges stay uncompressed, so partpatch can "
		"overwrite them in place.  Writes INPUT with the format's suffix "
		"added (INPUT.xz); INPUT is always kept, and one that already "
		"has such a suffix is skipped.  Without INPUT, or when INPUT is "
		"-, reads standard input and writes standard output, which may "
		"not be a terminal.  INPUT may be any image qemu reads (qcow2, "
		"vmdk, vhdx, vdi ...): its guest disk is packed, and NAME.qcow2 "
		"writes NAME.img.xz.",
	.options = option_table,
	.footer = "Sizes are bytes with an optional suffix: K, M, G, T (or KiB, "
		"MiB, GiB, TiB) are powers of 1024, kB, MB, GB, TB powers of "
		"1000, as in dd.\n"
		"Exit status: 0 success, 1 error, 2 usage error, 6 "
		"--reuse-strict refused BASE.  The output is the same bytes for "
		"every thread count, with or without --reuse.",
	.number = set_level,
};

/* The rules between options and operands that the table cannot say. */
static void check_args(pack_args *args)
{
	if (args->output && strcmp(args->output, "-") == 0) {
		args->output = NULL;       /* -o - is standard output */
		args->to_stdout = true;
	}
	const char *one = args->output ? "--output" : args->to_stdout ?
		"--stdout" : args->options.bmap_path ? "--bmap" : NULL;
	if (one && args->input_count > 1) {
		cli_error("%s takes one INPUT, not %zu", one, args->input_count);
		exit(EXIT_USAGE);
	}
	if (args->to_stdout && args->output) {
		cli_error("--stdout and --output exclude each other");
		exit(EXIT_USAGE);
	}
	bool from_stdin = args->input_count == 0;
	for (size_t i = 0; i < args->input_count; i++)
		from_stdin |= strcmp(args->inputs[i], "-") == 0;
	if (from_stdin && args->input_format &&
	    strcmp(args->input_format, "raw") != 0) {
		cli_error("--input-format=%s: standard input is read as raw; "
			  "name the file", args->input_format);
		exit(EXIT_USAGE);
	}
	if ((args->options.reuse_flags & PP_REUSE_STRICT) &&
	    !args->options.reuse_path) {
		cli_error("--reuse-strict needs --reuse");
		exit(EXIT_USAGE);
	}
}

static void parse_args(int argc, char **argv, pack_args *args)
{
	pp_pack_options_init(&args->options);
	int first = cli_parse(&tool, &argc, argv, args);
	args->inputs = argv + first;
	args->input_count = (size_t)(argc - first);
	check_args(args);
	settle_format(args);
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

/*
 * Where the archive goes: -o FILE, else stdout with -c or for an image
 * read from stdin (as xz does), else INPUT with the format's suffix (see
 * default_output).
 * Sets *output (malloc'd; NULL for stdout) and *out_fd.  Returns an exit
 * status, having said why on failure.
 */
static int open_output(const pack_args *args, const struct stat *in_stat,
		       bool through_qemu, char **output, int *out_fd)
{
	*out_fd = STDOUT_FILENO;
	*output = args->output ? strdup(args->output) :
		args->to_stdout || !args->input ? NULL :
		default_output(args, through_qemu);
	if ((args->output || (!args->to_stdout && args->input)) && !*output) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	if (!*output && isatty(STDOUT_FILENO)) {
		cli_error("compressed data not written to a terminal (give "
			  "INPUT, --output or a pipe)");
		return EXIT_USAGE;
	}
	if (!*output)
		return 0;
	int status = cli_check_output(*output, args->options.format,
				      args->force);
	if (status)
		return status;
	*out_fd = cli_output_open(*output, S_ISREG(in_stat->st_mode) ?
				  in_stat->st_mode : 0666);
	return *out_fd < 0 ? EXIT_ERROR : 0;
}

/* pp_pack (or pp_pack_source) with the progress line and, with -v, the
 * totals. */
static int run_pack(pack_args *args, const pack_input *in, int out_fd,
		    const char *out_name)
{
	const char *in_name = args->input ? args->input : "(stdin)";
	cli_progress progress;
	cli_progress_init(&progress, "packing", args->quiet);
	args->options.progress = cli_progress_update;
	args->options.progress_opaque = &progress;
	pp_error err;
	pp_pack_report report;
	args->options.report = &report;
	int packed = in->source ?
		pp_pack_source(in->source, out_fd, out_name, &args->options,
			       &err) :
		pp_pack(in->fd, in_name, out_fd, out_name, &args->options, &err);
	cli_progress_end(&progress);
	if (packed)
		return cli_fail(&err);
	if (args->verbose)
		cli_progress_summary(&progress, in_name, output_size(out_fd));
	if (args->verbose && args->options.reuse_path)
		print_reuse(&args->options, &report);
	return 0;
}

static int write_archive(pack_args *args, const pack_input *in,
			 const struct stat *in_stat, bool through_qemu)
{
	char *output;
	int out_fd;
	int status = open_output(args, in_stat, through_qemu, &output,
				 &out_fd);
	if (status == 0)
		status = run_pack(args, in, out_fd,
				  output ? output : "(stdout)");
	if (output && out_fd >= 0) {
		if (status == 0 && commit_output(out_fd, output, args->force,
						 in_stat))
			status = EXIT_ERROR;
		else if (status != 0)
			cli_output_discard(out_fd);
		else
			status = remove_stale_undo(output);
	}
	free(output);
	return status;
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
	} else {
		args->options.keep = ranges;
		args->options.keep_count = args->selector_count;
		status = write_archive(args, in, in_stat, !info.direct);
	}
	free(ranges);
	return status;
}

/* ---- what the input is ------------------------------------------------- */

/* The first bytes of a seekable input, without moving its position. */
static size_t read_head(int in_fd, uint8_t *head, size_t size)
{
	off_t at = lseek(in_fd, 0, SEEK_CUR);
	ssize_t got = at < 0 ? -1 : pread(in_fd, head, size, at);
	return got > 0 ? (size_t)got : 0;
}

/*
 * The other compressors people feed partpack by accident: the library
 * knows the signatures and suffixes of its own formats (xz, gzip and
 * zstd: pp_format_of_head, pp_format_from_path); these are the rest.
 */
static const struct foreign_compressor {
	const char *name;
	const char *suffix;
	size_t len;
	unsigned char magic[6];
} foreign[] = {
	{ "bzip2", ".bz2", 3, { 'B', 'Z', 'h' } },
	{ "lz4", ".lz4", 4, { 0x04, 0x22, 0x4d, 0x18 } },
	{ "lzip", ".lz", 4, { 'L', 'Z', 'I', 'P' } },
};

#define FOREIGN_COUNT (sizeof foreign / sizeof *foreign)

/* The suffix of name that says it is compressed (".xz", ".bz2"), or
 * NULL. */
static const char *compressed_suffix(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (!dot || strchr(dot, '/'))
		return NULL;
	if (pp_format_from_path(name))
		return dot;
	for (size_t i = 0; i < FOREIGN_COUNT; i++)
		if (strcmp(dot, foreign[i].suffix) == 0)
			return dot;
	return NULL;
}

/*
 * An image that is already compressed is someone's mistake (partpack of a
 * .xz): it packs, but nothing in it is patchable.  A warning, unless -q.
 */
static void warn_if_compressed(const uint8_t *head, size_t got,
			       const char *name)
{
	enum pp_format format = pp_format_of_head(head, got);
	const char *kind = format ? pp_format_name(format) : NULL;
	for (size_t i = 0; !kind && i < FOREIGN_COUNT; i++)
		if (got >= foreign[i].len &&
		    memcmp(head, foreign[i].magic, foreign[i].len) == 0)
			kind = foreign[i].name;
	if (kind)
		cli_error("%s: warning: already %s-compressed; partpack "
			  "expects a raw disk image (decompress it first)",
			  name, kind);
}

/* ---- each INPUT ------------------------------------------------------ */

/* Opens INPUT (or takes stdin) and says what stops it being packed. */
static int open_input(const pack_args *args, int *in_fd, struct stat *st)
{
	const char *name = args->input ? args->input : "(stdin)";
	*in_fd = STDIN_FILENO;
	if (args->input && (*in_fd = open(args->input, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_error("%s: %s", args->input, strerror(errno));
		return EXIT_ERROR;
	}
	if (fstat(*in_fd, st)) {
		cli_error("%s: %s", name, strerror(errno));
		return EXIT_ERROR;
	}
	if (S_ISDIR(st->st_mode)) {
		cli_error("%s: is a directory", name);
		return EXIT_ERROR;
	}
	if (isatty(*in_fd)) {
		cli_error("%s: is a terminal: give INPUT, or the image through "
			  "a pipe", name);
		return EXIT_USAGE;
	}
	return 0;
}

/* A named image is probed, and read through qemu unless raw. */
static int open_source(const pack_args *args, pack_input *in,
		       bool *direct)
{
	pp_error err;
	pp_source_info info = { .direct = true };
	if (args->input && pp_source_open(args->input, args->input_format, 0,
					  &in->source, &err))
		return cli_fail(&err);
	if (in->source)
		pp_source_get_info(in->source, &info, &err);
	*direct = info.direct;
	return 0;
}

static int pack_one(pack_args *args, const char *input)
{
	args->input = input && strcmp(input, "-") != 0 ? input : NULL;
	const char *suffix = args->input && !args->output && !args->to_stdout ?
		compressed_suffix(args->input) : NULL;
	if (suffix) {
		/* xz's words, and its status for a warning. */
		if (!args->quiet)
			cli_error("%s: File already has `%s' suffix, skipping",
				  args->input, suffix);
		return EXIT_USAGE;
	}
	pack_input in = { .fd = -1 };
	struct stat in_stat;
	bool direct = true;
	int status = open_input(args, &in.fd, &in_stat);
	if (status == 0)
		status = open_source(args, &in, &direct);
	uint8_t head[6];
	size_t got = status == 0 && direct && S_ISREG(in_stat.st_mode) ?
		read_head(in.fd, head, sizeof head) : 0;
	if (status == 0 && !args->quiet)
		warn_if_compressed(head, got, args->input ? args->input :
				   "(stdin)");
	if (status == 0)
		status = pack(args, &in, &in_stat);
	pp_source_close(in.source);
	if (args->input && in.fd >= 0)
		close(in.fd);
	return status;
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	pack_args args = { 0 };
	parse_args(argc, argv, &args);
	/* As xz: every INPUT is tried; the status is the first failure's. */
	int status = args.input_count ? 0 : pack_one(&args, NULL);
	for (size_t i = 0; i < args.input_count; i++) {
		int one = pack_one(&args, args.inputs[i]);
		if (status == 0)
			status = one;
	}
	free(args.selectors);
	return status;
}
