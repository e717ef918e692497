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
#include <time.h>
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
	bool verbose;
	pp_extract_options options;
	/* Fetching: from a URL, or with seeds. */
	const char **seeds;
	size_t seed_count;
	bool archive_out;
	bool no_bmap;
	const char *bmap;
	const char *sha256;
	unsigned connections;
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

static unsigned connections_arg(const char *text)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(text, &end, 10);
	if (errno || end == text || *end || n < 1 || n > 64 || text[0] == '-') {
		cli_error("--connections: '%s' is not a number from 1 to 64",
			  text);
		exit(EXIT_USAGE);
	}
	return (unsigned)n;
}

static void add_seed(void *opaque, const cli_option *option,
		     const char *path)
{
	cat_args *args = opaque;
	(void)option;
	const char **seeds = realloc(args->seeds, (args->seed_count + 1) *
				     sizeof *seeds);
	if (!seeds) {
		cli_error("out of memory");
		exit(EXIT_ERROR);
	}
	seeds[args->seed_count++] = path;
	args->seeds = seeds;
}

static void set_connections(void *opaque, const cli_option *option,
			    const char *arg)
{
	(void)option;
	((cat_args *)opaque)->connections = connections_arg(arg);
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
	{ "seed", 's', "FILE", add_seed, 0,
	  "an older image to take unchanged blocks from: an archive of any "
	  "format, a raw image or a block device (repeatable; tried in order)" },
	{ "archive", 'A', NULL, cli_set_flag, FIELD(archive_out),
	  "write the archive itself, byte for byte, not its image" },
	{ "bmap", 0, "URL|FILE", cli_set_text, FIELD(bmap),
	  "the image's bmap (default: the one beside ARCHIVE, as bmaptool "
	  "finds it)" },
	{ "no-bmap", 0, NULL, cli_set_flag, FIELD(no_bmap), "use no bmap" },
	{ "sha256", 0, "HEX|FILE", cli_set_text, FIELD(sha256),
	  "the SHA-256 the result must have, or a SHA256SUMS file naming it" },
	{ "connections", 'j', "N", set_connections, 0,
	  "requests at once (default 4)" },
	{ "force", 'f', NULL, cli_set_flag, FIELD(force),
	  "overwrite OUT if it exists" },
	{ "quiet", 'q', NULL, cli_set_flag, FIELD(quiet), "no progress line" },
	{ "verbose", 'v', NULL, cli_set_flag, FIELD(verbose),
	  "print the totals at the end (bytes from seeds, fetched, requests)" },
	CLI_HELP_AND_VERSION,
	CLI_END,
};

static const cli_tool tool = {
	.synopsis = "[OPTION]... ARCHIVE",
	.about = "Write the uncompressed disk image inside ARCHIVE ({suffixes}; "
		"a path, or an http://, https:// or s3:// URL) to standard output "
		"or to --output, or only a partition or byte range of it, "
		"decoding only the blocks that hold those bytes.  Blocks are "
		"decoded in parallel; the output is the same for any -T.  From a "
		"URL, or with --seed, only what the seeds do not already hold is "
		"fetched.  ARCHIVE - is standard input (a pipe is read to a "
		"temporary file first: the index is at the end).",
	.options = option_table,
	.footer = "Exit status: 0 success, 1 error (unreadable or corrupt "
		"archive, partition not found, an HTTP error), 2 usage error, 4 a "
		"block's check or the --sha256 does not match, 5 another partcat "
		"is writing OUT.",
};

/* What fetching takes: --archive is the whole archive, into a file. */
static void check_fetch_args(const cat_args *args)
{
	if (args->archive_out && (args->partition || args->offset_given ||
				  args->length_given || args->output_format)) {
		cli_error("--archive writes the whole archive: no --partition, "
			  "--offset, --length or -O");
		exit(EXIT_USAGE);
	}
	if (args->archive_out && !args->output) {
		cli_error("--archive needs --output");
		exit(EXIT_USAGE);
	}
}

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
	check_fetch_args(args);
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

/* ---- fetching: a URL, or seeds ------------------------------------------- */

static bool is_url(const char *text)
{
	return strstr(text, "://") != NULL;
}

static bool fetching(const cat_args *args)
{
	return is_url(args->archive) || args->seed_count || args->archive_out ||
	       args->bmap || args->sha256 || args->no_bmap;
}

static bool is_hex64(const char *text)
{
	size_t n = strspn(text, "0123456789abcdefABCDEF");
	return n == 64 && text[64] == '\0';
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/*
 * A SHA256SUMS file (sha256sum's lines "HEX  NAME" or "HEX *NAME"): its
 * one line, or the line naming OUT or the archive (last path components).
 * Copies the digest to hex; returns an exit status.
 */
static int sums_digest(const cat_args *args, char hex[65])
{
	FILE *file = fopen(args->sha256, "r");
	if (!file) {
		cli_error("--sha256: '%s' is neither 64 hex digits nor a "
			  "readable file: %s", args->sha256, strerror(errno));
		return EXIT_USAGE;
	}
	const char *names[2] = { args->output ? base_name(args->output) : NULL,
				 base_name(args->archive) };
	char line[4096], only[65] = "";
	size_t lines = 0;
	bool found = false;
	while (!found && fgets(line, sizeof line, file)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strlen(line) < 66 || line[64] != ' ' ||
		    (line[65] != ' ' && line[65] != '*'))
			continue;
		line[64] = '\0';
		if (!is_hex64(line))
			continue;
		lines++;
		memcpy(only, line, 65);
		const char *name = base_name(line + 66);
		for (int i = 0; i < 2; i++)
			if (names[i] && strcmp(name, names[i]) == 0)
				found = true;
	}
	fclose(file);
	if (!found && lines != 1) {
		cli_error("--sha256: %s has no line for %s%s%s", args->sha256,
			  names[1], names[0] ? " or " : "",
			  names[0] ? names[0] : "");
		return EXIT_USAGE;
	}
	memcpy(hex, only, 65);
	return 0;
}

/* The progress line: bytes from seeds, fetched, requests, rate, ETA. */
typedef struct fetch_line {
	cli_progress line;
	pp_fetch_progress last;
} fetch_line;

static void draw_line(fetch_line *f, const pp_fetch_progress *p, bool last)
{
	f->last = *p;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	if (!f->line.enabled || (!last && now - f->line.last_drawn < 0.25))
		return;
	f->line.last_drawn = now;
	double elapsed = now - f->line.started;
	double rate = elapsed > 0 ? (double)p->done_bytes / elapsed : 0;
	char done[32], seeded[32], fetched[32], speed[32], eta[32] = "";
	cli_format_size(done, sizeof done, p->done_bytes);
	cli_format_size(seeded, sizeof seeded, p->seeded_bytes);
	cli_format_size(fetched, sizeof fetched, p->fetched_bytes);
	cli_format_size(speed, sizeof speed, (uint64_t)rate);
	if (rate > 0 && p->total_bytes > p->done_bytes) {
		unsigned long left = (unsigned long)((double)(p->total_bytes -
						       p->done_bytes) / rate);
		snprintf(eta, sizeof eta, ", ETA %lu:%02lu", left / 60,
			 left % 60);
	}
	fprintf(stderr, "\r%s: %s (%.0f%%): %s from seeds, %s fetched in %llu "
		"requests, %s/s%s   ", cli_program, done,
		p->total_bytes ? 100.0 * (double)p->done_bytes /
		(double)p->total_bytes : 100.0, seeded, fetched,
		(unsigned long long)p->requests, speed, eta);
}

static void draw_fetch(void *opaque, const pp_fetch_progress *p)
{
	draw_line(opaque, p, false);
}

static void print_totals(const cat_args *args, const pp_fetch_report *r,
			 double seconds)
{
	char out[32], seeded[32], fetched[32], zeros[32], resumed[32];
	cli_format_size(out, sizeof out, r->output_bytes);
	cli_format_size(seeded, sizeof seeded, r->seeded_bytes);
	cli_format_size(fetched, sizeof fetched, r->fetched_bytes);
	cli_format_size(zeros, sizeof zeros, r->zero_bytes);
	cli_format_size(resumed, sizeof resumed, r->resumed_bytes);
	fprintf(stderr, "%s: %s: %s written: %s from seeds (%llu blocks), %s "
		"zeros, %s kept from an earlier run; %s fetched in %llu "
		"requests (%llu blocks), %.1f s\n", cli_program, args->archive,
		out, seeded, (unsigned long long)r->seeded_blocks, zeros,
		resumed, fetched, (unsigned long long)r->requests,
		(unsigned long long)r->fetched_blocks, seconds);
}

/* --partition of a URL or with seeds: found on the archive first. */
static int locate_remote(cat_args *args)
{
	pp_archive *archive;
	pp_error err;
	int opened = is_url(args->archive) ?
		pp_open_url(args->archive, PP_OPEN_READ, &archive, &err) :
		pp_open(args->archive, PP_OPEN_READ, &archive, &err);
	if (opened)
		return cli_open_failed(&err, args->archive);
	int status = locate(archive, args);
	pp_close(archive);
	return status;
}

/* Into OUT through its partial file, or, for standard output and for a
 * device or a pipe given with --force (see written_in_place), in order
 * into the descriptor, with nothing kept for a rerun. */
static int fetch_to(const cat_args *args, const pp_fetch_options *o,
		    pp_error *err)
{
	if (!args->output)
		return pp_fetch_to_fd(args->archive, STDOUT_FILENO, "(stdout)",
				      o, err);
	if (!written_in_place(args->output))
		return pp_fetch(args->archive, args->output, o, err);
	int fd = open(args->output, O_WRONLY | O_CLOEXEC);
	int status = fd < 0 ? PP_ERR_IO :
		pp_fetch_to_fd(args->archive, fd, args->output, o, err);
	bool closed = fd < 0 || close(fd) == 0;
	if (fd < 0 || (status == 0 && !closed)) {
		status = PP_ERR_IO;
		err->status = status;
		snprintf(err->message, sizeof err->message, "%s: %s",
			 args->output, strerror(errno));
	}
	return status;
}

static int fetch_main(cat_args *args)
{
	char hex[65];
	int status = 0;
	if (args->output_format) {
		cli_error("-O %s: a fetch writes a raw image (convert it "
			  "afterwards)", args->output_format);
		return EXIT_USAGE;
	}
	if (args->sha256 && !is_hex64(args->sha256) &&
	    (status = sums_digest(args, hex)))
		return status;
	if (args->partition && (status = locate_remote(args)))
		return status;
	pp_fetch_report report;
	pp_fetch_options o;
	pp_fetch_options_init(&o);
	o.flags = (args->archive_out ? PP_FETCH_ARCHIVE : 0) |
		(args->no_bmap ? PP_FETCH_NO_BMAP : 0) |
		(args->force ? PP_FETCH_FORCE : 0);
	o.seeds = args->seeds;
	o.seed_count = args->seed_count;
	o.bmap = args->bmap;
	o.sha256 = args->sha256 && !is_hex64(args->sha256) ? hex : args->sha256;
	o.connections = args->connections;
	o.threads = args->options.threads;
	o.sparse = args->options.sparse;
	o.offset = args->offset;
	o.length = args->length;
	o.report = &report;
	fetch_line line = { 0 };
	cli_progress_init(&line.line, "fetching", args->quiet);
	o.progress = draw_fetch;
	o.progress_opaque = &line;
	pp_error err;
	int fetched = fetch_to(args, &o, &err);
	if (line.line.last_drawn > 0) {
		/* The last line says where it ended. */
		draw_line(&line, &line.last, true);
		fputc('\n', stderr);
	}
	if (fetched)
		return cli_fail(&err);
	if (args->verbose) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		print_totals(args, &report, (double)ts.tv_sec +
			     (double)ts.tv_nsec / 1e9 - line.line.started);
	}
	return 0;
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	cat_args args = { 0 };
	parse_args(argc, argv, &args);
	int status = check_output(&args);
	if (status)
		return status;
	if (fetching(&args)) {
		status = fetch_main(&args);
		free(args.seeds);
		return status;
	}

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
