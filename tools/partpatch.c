/* partpatch - overwrite stored bytes of an .xz, .gz or .zst archive in
 * place. */
#include "cli.h"
#include "edit.h"
#include "fsedit.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The bytes to write: a mapping of a regular file, or what a pipe gave. */
typedef struct patch_data {
	uint8_t *bytes;
	size_t len;
	void *mapping;
	size_t mapping_len;
	bool capped;                /* a pipe with more than was read */
	uint64_t input_len;         /* all a capped pipe held: the write a
				     * refusal's remedy covers */
} patch_data;

/* One range of the transaction: where it goes and where its bytes come from. */
typedef struct range_arg {
	const char *input;          /* NULL: standard input */
	bool input_given;
	const char *partition;
	uint64_t offset;
	uint64_t limit;             /* most bytes accepted (the partition) */
	uint64_t length;
	bool offset_given;
	bool length_given;
	patch_data data;            /* read before the archive is locked */
} range_arg;

typedef struct patch_args {
	const char *archive;
	const char *output;
	const char *bmap;
	const char *bmap_output;
	bool bmap_found;            /* bmap and bmap_output found, not given */
	bool no_bmap;
	range_arg *ranges;
	size_t range_count;
	bool verbose;
	bool quiet;
	bool dry_run;
	bool no_wait;
	bool recover;
	bool force;
	edit_op *edits;             /* file operations, in order */
	size_t edit_count;
	const char *exec;           /* --exec: a command on the partition */
	bool appliance;             /* --appliance: file edits by libguestfs */
	fsedit_written edit_written;    /* what the file edits wrote */
	pp_range *written;          /* what the transaction wrote, for the bmap */
	size_t written_count;
} patch_args;

/* items (count of them, size bytes each) with room for one more, or exit:
 * the options are read before anything is opened, so nothing is lost. */
static void *grow_by_one(void *items, size_t count, size_t size)
{
	void *grown = realloc(items, (count + 1) * size);
	if (!grown) {
		cli_error("out of memory");
		exit(EXIT_ERROR);
	}
	return grown;
}

static void add_edit(void *opaque, const cli_option *option, const char *arg)
{
	patch_args *args = opaque;
	edit_op *edits = grow_by_one(args->edits, args->edit_count,
				     sizeof *edits);
	args->edits = edits;
	edits[args->edit_count] = (edit_op){ .kind = (edit_kind)option->field,
					     .arg = arg };
	edit_check_op(&edits[args->edit_count++]);
}

static range_arg *new_range(patch_args *args)
{
	range_arg *ranges = grow_by_one(args->ranges, args->range_count,
					sizeof *ranges);
	args->ranges = ranges;
	ranges[args->range_count] = (range_arg){ .limit = UINT64_MAX };
	return &ranges[args->range_count++];
}

/* The range an --offset or --partition starts. */
static range_arg *located_range(patch_args *args)
{
	range_arg *r = args->range_count ?
		&args->ranges[args->range_count - 1] : NULL;
	if (!r || r->offset_given || r->partition)
		r = new_range(args);
	return r;
}

/* The range an --input or --length belongs to: the latest one, or the
 * first, not yet located, if it comes before any --offset.  taken says
 * whether the option was given for that range already. */
static range_arg *current_range(patch_args *args, const char *option,
				bool (*taken)(const range_arg *))
{
	range_arg *r = args->range_count ?
		&args->ranges[args->range_count - 1] : new_range(args);
	if (taken(r)) {
		cli_error("%s given twice for one range (each --offset or "
			  "--partition starts a range)", option);
		exit(EXIT_USAGE);
	}
	return r;
}

static bool length_taken(const range_arg *r)
{
	return r->length_given;
}

static bool input_taken(const range_arg *r)
{
	return r->input_given;
}

static void set_offset(void *opaque, const cli_option *option,
		       const char *arg)
{
	range_arg *r = located_range(opaque);
	(void)option;
	r->offset = cli_size_arg("--offset", arg);
	r->offset_given = true;
}

static void set_partition(void *opaque, const cli_option *option,
			  const char *arg)
{
	(void)option;
	located_range(opaque)->partition = arg;
}

static void set_length(void *opaque, const cli_option *option,
		       const char *arg)
{
	range_arg *r = current_range(opaque, "--length", length_taken);
	(void)option;
	r->length = cli_size_arg("--length", arg);
	r->length_given = true;
}

static void set_input(void *opaque, const cli_option *option, const char *arg)
{
	range_arg *r = current_range(opaque, "--input", input_taken);
	(void)option;
	r->input = strcmp(arg, "-") == 0 ? NULL : arg;
	r->input_given = true;
}

#define FIELD(name) offsetof(patch_args, name)

static const cli_option option_table[] = {
	{ "offset", 'O', "N", set_offset, 0,
	  "image offset to write at (K, M, G, KiB... are powers of 1024, kB, "
	  "MB, GB powers of 1000)" },
	{ "partition", 'p', "SEL", set_partition, 0,
	  "write at the start of partition SEL (partN, /dev/sdaN, name:NAME, "
	  "found in the archive's own partition table; label:LABEL, "
	  "uuid:UUID, the partition libblkid finds them in; /MOUNTPOINT, from "
	  "the guest's fstab, read in process from an ext root, else by "
	  "libguestfs on the archive itself); the data must fit in it" },
	{ "length", 'l', "L", set_length, 0,
	  "write exactly L bytes (default: all of the input)" },
	{ "input", 'i', "FILE", set_input, 0,
	  "read the data from FILE instead of standard input (-\tis standard "
	  "input, which may not be a terminal)" },
	{ "output", 'o', "NEW", cli_set_text, FIELD(output),
	  "leave ARCHIVE as it is: write the patched archive to NEW (a reflink "
	  "clone where possible); its suffix must agree with ARCHIVE's format" },
	{ "force", 'f', NULL, cli_set_flag, FIELD(force),
	  "let --output replace an existing file" },
	{ "dry-run", 'n', NULL, cli_set_flag, FIELD(dry_run),
	  "check the patch and say what it would change" },
	{ "no-wait", 0, NULL, cli_set_flag, FIELD(no_wait),
	  "fail at once if another partpatch holds ARCHIVE" },
	{ "bmap", 0, "FILE", cli_set_text, FIELD(bmap),
	  "keep the bmap FILE (written by partpack --bmap) true: new digests "
	  "where the patch wrote, blocks written in holes mapped; replaced "
	  "atomically after the archive is committed" },
	{ "bmap-output", 0, "NEW", cli_set_text, FIELD(bmap_output),
	  "write the updated bmap to NEW and leave FILE as it is (needed with "
	  "--output: FILE is the base's)" },
	{ "no-bmap", 0, NULL, cli_set_flag, FIELD(no_bmap),
	  "without --bmap, the bmap bmaptool would find for ARCHIVE "
	  "(ARCHIVE.bmap, IMAGE.bmap for IMAGE.xz) is kept true too (with "
	  "--output, NEW's is written); --no-bmap leaves it" },
	{ "recover", 0, NULL, cli_set_flag, FIELD(recover),
	  "undo an interrupted patch of ARCHIVE and exit; with --bmap, also "
	  "bring FILE in line with it" },
	{ "quiet", 'q', NULL, cli_set_flag, FIELD(quiet), "no progress line" },
	{ "verbose", 'v', NULL, cli_set_flag, FIELD(verbose),
	  "say what was written" },
	CLI_HELP_AND_VERSION,
	{ NULL, 0, NULL, NULL, 0,
	  "File operations on the filesystem of the --partition (paths inside "
	  "that filesystem: /grub/grub.cfg on /boot), in the order given, in "
	  "one transaction:" },
	{ "upload", 0, "LOCAL:REMOTE", add_edit, EDIT_UPLOAD,
	  "copy the local file LOCAL to REMOTE" },
	{ "write", 0, "REMOTE:CONTENT", add_edit, EDIT_WRITE,
	  "write CONTENT to the file REMOTE" },
	{ "mkdir", 0, "DIR", add_edit, EDIT_MKDIR, "make DIR and its parents" },
	{ "delete", 0, "PATH", add_edit, EDIT_DELETE,
	  "remove PATH (recursively)" },
	{ "copy-in", 0, "LOCAL:REMOTEDIR", add_edit, EDIT_COPY_IN,
	  "copy a local file or directory in" },
	{ "script", 0, "FILE", add_edit, EDIT_SCRIPT,
	  "run FILE's guestfish commands" },
	{ NULL, 0, NULL, NULL, 0,
	  "ext2/3/4 and vfat are edited in process, with no appliance; other "
	  "filesystems and --script use the appliance." },
	{ "appliance", 0, NULL, cli_set_flag, FIELD(appliance),
	  "use the appliance for every filesystem" },
	{ "exec", 0, "CMD", cli_set_text, FIELD(exec),
	  "run CMD with /bin/sh, $PARTITION naming a temporary file of the "
	  "partition's bytes; then apply the bytes it changed (nothing if CMD "
	  "fails or changes the file's size)" },
	CLI_END,
};

static const cli_tool tool = {
	.synopsis = "[OPTION]... ARCHIVE --offset=N\n"
		"[OPTION]... ARCHIVE --partition=SEL\n"
		"[OPTION]... ARCHIVE --offset=N --input=FILE "
		"[--offset=N --input=FILE]...\n"
		"[OPTION]... ARCHIVE --partition=SEL FILE-OPERATION...",
	.about = "Overwrite bytes of the uncompressed image inside ARCHIVE "
		"({suffixes}) in place, starting at image offset N, with data "
		"from standard input or --input.  Every byte written must lie in "
		"stored (uncompressed) data; otherwise nothing is written.  The "
		"checks of the touched blocks are verified first and then "
		"updated, so stock tools accept the result.\n\n"
		"Each --offset or --partition starts a range; the --input and "
		"--length after it (or, for the first range, before it) belong "
		"to that range.  All ranges are written as one transaction: all "
		"of them or none; where they overlap, the later one wins.  At "
		"most one reads standard input.",
	.options = option_table,
	.footer = "Exit status: 0 success, 1 error, 2 usage error, 3 range not "
		"stored (the archive is unchanged), 4 a touched block is already "
		"corrupt (the archive is unchanged), 5 ARCHIVE is locked "
		"(--no-wait).  An interrupted patch leaves an undo record beside "
		"ARCHIVE; the next partpatch, or --recover, restores the archive "
		"from it.",
};

/* The rules between options that the table cannot say. */
static void check_args(patch_args *args)
{
	if (args->bmap_output && !args->bmap) {
		cli_error("--bmap-output needs --bmap (the bmap to start from)");
		exit(EXIT_USAGE);
	}
	if (args->no_bmap && args->bmap) {
		cli_error("--no-bmap and --bmap contradict each other");
		exit(EXIT_USAGE);
	}
	if (args->recover)
		return;
	if (args->output && strcmp(args->output, "-") == 0) {
		cli_error("--output -: the patched archive is a file renamed "
			  "into place, not a stream: name the file");
		exit(EXIT_USAGE);
	}
	if (args->output && args->bmap && !args->bmap_output) {
		cli_error("with --output, give --bmap-output for the new archive's "
			  "bmap (--bmap is the base's, left as it is)");
		exit(EXIT_USAGE);
	}
	size_t from_stdin = 0;
	for (size_t i = 0; i < args->range_count; i++) {
		if (!args->ranges[i].input)
			from_stdin++;
	}
	if (args->range_count == 0 ||
	    (!args->ranges[0].offset_given && !args->ranges[0].partition)) {
		cli_error("give exactly one of --offset and --partition");
		exit(EXIT_USAGE);
	}
	if (args->edit_count > 0 &&
	    (args->range_count != 1 || !args->ranges[0].partition ||
	     args->ranges[0].input_given || args->ranges[0].length_given)) {
		cli_error("file operations need one --partition, and no "
			  "--offset, --input or --length");
		exit(EXIT_USAGE);
	}
	if (args->exec && (args->edit_count > 0 || args->range_count != 1 ||
			   !args->ranges[0].partition ||
			   args->ranges[0].input_given ||
			   args->ranges[0].length_given)) {
		cli_error("--exec needs one --partition, and no file operation, "
			  "--offset, --input or --length");
		exit(EXIT_USAGE);
	}
	if (from_stdin > 1) {
		cli_error("%zu ranges would read standard input: give each "
			  "range but one an --input", from_stdin);
		exit(EXIT_USAGE);
	}
}

static void parse_args(int argc, char **argv, patch_args *args)
{
	int first = cli_parse(&tool, &argc, argv, args);
	args->archive = cli_one_archive(first, argc, argv);
	check_args(args);
}

static void release_data(patch_data *data)
{
	if (data->mapping)
		munmap(data->mapping, data->mapping_len);
	else
		free(data->bytes);
}

static int map_regular_input(int fd, const char *name, const range_arg *args,
			     const struct stat *st, patch_data *data)
{
	off_t pos = lseek(fd, 0, SEEK_CUR);
	uint64_t available = pos < 0 || pos > st->st_size ? 0 :
		(uint64_t)(st->st_size - pos);
	uint64_t want = args->length_given ? args->length : available;
	if (want > available) {
		cli_error("%s: input has %llu bytes, shorter than --length %llu",
			  name, (unsigned long long)available,
			  (unsigned long long)want);
		return EXIT_USAGE;
	}
	if (want == 0)
		return 0;
	if (want > SIZE_MAX - (uint64_t)pos) {
		cli_error("%s: input too large", name);
		return EXIT_USAGE;
	}
	data->mapping_len = (size_t)pos + (size_t)want;
	data->mapping = mmap(NULL, data->mapping_len, PROT_READ, MAP_PRIVATE,
			     fd, 0);
	if (data->mapping == MAP_FAILED) {
		data->mapping = NULL;
		cli_error("%s: %s", name, strerror(errno));
		return EXIT_ERROR;
	}
	data->bytes = (uint8_t *)data->mapping + pos;
	data->len = (size_t)want;
	return 0;
}

/* The input goes past what can be written: the rest is only counted, so
 * that the refusal can say what would make all of it patchable. */
static void count_rest(int fd, patch_data *data)
{
	uint8_t scrap[65536];
	ssize_t n;
	data->input_len = data->len;
	while ((n = read(fd, scrap, sizeof scrap)) > 0 ||
	       (n < 0 && errno == EINTR))
		data->input_len += n > 0 ? (uint64_t)n : 0;
}

/* Reads a pipe to its end (or to --length), but never more than `cap`
 * bytes: past the stored run the patch is refused anyway. */
static int read_stream_input(int fd, const char *name, const range_arg *args,
			     uint64_t cap, patch_data *data)
{
	uint64_t want = args->length_given ? args->length : cap;
	size_t capacity = 0;
	for (;;) {
		if (data->len == want)
			break;
		if (data->len == capacity) {
			size_t grown = capacity ? 2 * capacity : 1 << 20;
			if (grown > want)
				grown = (size_t)want;
			uint8_t *bytes = realloc(data->bytes, grown);
			if (!bytes) {
				cli_error("%s: out of memory", name);
				return EXIT_ERROR;
			}
			data->bytes = bytes;
			capacity = grown;
		}
		ssize_t n = read(fd, data->bytes + data->len, capacity - data->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_error("%s: %s", name, strerror(errno));
			return EXIT_ERROR;
		}
		if (n == 0)
			break;
		data->len += (size_t)n;
	}
	data->capped = !args->length_given && data->len == want;
	if (data->capped)
		count_rest(fd, data);
	if (args->length_given && data->len < args->length) {
		cli_error("%s: input has %zu bytes, shorter than --length %llu",
			  name, data->len, (unsigned long long)args->length);
		return EXIT_USAGE;
	}
	return 0;
}

/*
 * The archive, opened to read for a moment while the inputs are read: how
 * much of a pipe is worth reading.  It is closed before the reading, so a
 * slow pipe holds no lock.  An interrupted patch is recovered first, as
 * opening to patch in place would.
 */
static int peek_archive(const patch_args *args, pp_archive **peek)
{
	pp_error err;
	int flags = PP_OPEN_READ | (args->no_wait ? PP_OPEN_NO_WAIT : 0);
	int status = pp_open(args->archive, flags, peek, &err);
	bool recovered;
	if (status == PP_ERR_RECOVERY_PENDING && !args->output &&
	    !args->dry_run) {
		status = pp_recover(args->archive, &recovered, &err);
		if (status == 0)
			status = pp_open(args->archive, flags, peek, &err);
	}
	return status ? cli_open_failed(&err, args->archive) : 0;
}

/* One byte more than a pipe may usefully give a range: its stored run (in
 * its partition), or the longest stored run where the appliance must find
 * the partition. */
static int stream_cap(pp_archive *peek, const range_arg *range,
		      uint64_t *cap)
{
	pp_error err;
	pp_range where = { range->offset, UINT64_MAX };
	pp_info info;
	uint64_t run = 0;
	int status = 0;
	if (range->partition && edit_selector_needs_guest(range->partition)) {
		status = pp_get_info(peek, &info, &err);
		for (size_t i = 0; status == 0 && i < info.stored_count; i++)
			run = info.stored[i].length > run ?
				info.stored[i].length : run;
		if (status == 0)
			pp_info_free(&info);
	} else {
		if (range->partition)
			status = pp_locate_partition(peek, range->partition,
						     &where, &err);
		if (status == 0)
			status = pp_stored_run(peek, where.offset, &run, &err);
		run = run < where.length ? run : where.length;
	}
	*cap = run + 1;
	return status ? cli_fail(&err) : 0;
}

/* Reads (a pipe) or maps (a file) one range's input, before the archive is
 * locked; *peek is opened the first time a pipe needs its cap. */
static int load_data(const patch_args *args, range_arg *range,
		     pp_archive **peek)
{
	const char *name = range->input ? range->input : "(stdin)";
	int fd = STDIN_FILENO;
	if (range->input && (fd = open(range->input, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_error("%s: %s", range->input, strerror(errno));
		return EXIT_ERROR;
	}
	struct stat st;
	uint64_t cap = 0;
	int status = 0;
	if (fstat(fd, &st)) {
		cli_error("%s: %s", name, strerror(errno));
		status = EXIT_ERROR;
	} else if (S_ISDIR(st.st_mode)) {
		cli_error("%s: is a directory", name);
		status = EXIT_ERROR;
	} else if (isatty(fd)) {
		/* As partpack -c refuses a terminal for its output. */
		cli_error("%s: is a terminal: give the data with --input FILE "
			  "or through a pipe", name);
		status = EXIT_USAGE;
	} else if (S_ISREG(st.st_mode)) {
		status = map_regular_input(fd, name, range, &st, &range->data);
	} else {
		if (!range->length_given && !*peek)
			status = peek_archive(args, peek);
		if (status == 0 && !range->length_given)
			status = stream_cap(*peek, range, &cap);
		if (status == 0)
			status = read_stream_input(fd, name, range, cap,
						   &range->data);
	}
	if (range->input)
		close(fd);
	if (status == 0 && range->data.len == 0) {
		cli_error("%s: no data to write (the input is empty)", name);
		status = EXIT_USAGE;
	}
	return status;
}

/* Every range's input, read before the archive is locked: a slow pipe
 * keeps no reader of the archive waiting. */
static int read_inputs(patch_args *args)
{
	pp_archive *peek = NULL;
	int status = 0;
	if (args->edit_count > 0 || args->exec)
		return 0;  /* the one range's bytes are the edit's */
	for (size_t i = 0; status == 0 && i < args->range_count; i++)
		status = load_data(args, &args->ranges[i], &peek);
	pp_close(peek);
	return status;
}

/* After the range is located: its data must fit in the partition. */
static int check_fits(const range_arg *range)
{
	if (range->data.len <= range->limit)
		return 0;
	cli_error("%s: %zu bytes%s do not fit in partition %s (%llu bytes)",
		  range->input ? range->input : "(stdin)", range->data.len,
		  range->data.capped ? " or more" : "", range->partition,
		  (unsigned long long)range->limit);
	return EXIT_USAGE;
}

/* After the archive is recovered (old or new), the bmap is brought in line
 * with whichever it is: an interrupted run may have stopped before or
 * after replacing it. */
static int recover_bmap(const patch_args *args)
{
	pp_archive *archive;
	pp_bmap *bmap = NULL;
	pp_error err;
	bool changed = false;
	if (pp_open(args->archive, PP_OPEN_READ, &archive, &err))
		return cli_fail(&err);
	int status = pp_bmap_open(archive, args->bmap, &bmap, &err);
	if (status == 0)
		status = pp_bmap_recovered(bmap, archive, &changed, &err);
	if (status == 0 && (changed || args->bmap_output))
		status = pp_bmap_save(bmap, args->bmap_output ? args->bmap_output :
				      args->bmap, &err);
	if (status == 0 && changed)
		fprintf(stderr, "%s: %s: updated to match %s\n", cli_program,
			args->bmap_output ? args->bmap_output : args->bmap,
			args->archive);
	pp_bmap_close(bmap);
	pp_close(archive);
	return status ? cli_fail(&err) : EXIT_OK;
}

static int recover(const patch_args *args)
{
	bool recovered;
	pp_error err;
	if (pp_recover(args->archive, &recovered, &err))
		return cli_fail(&err);
	if (!recovered && (!args->bmap || args->bmap_found))
		fprintf(stderr, "%s: %s: no interrupted patch to recover\n",
			cli_program, args->archive);
	return args->bmap ? recover_bmap(args) : EXIT_OK;
}

/* What the transaction wrote, for the bmap. */
static int add_written(patch_args *args, uint64_t offset, uint64_t length)
{
	pp_range *written = realloc(args->written, (args->written_count + 1) *
				    sizeof *written);
	if (!written) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	args->written = written;
	written[args->written_count++] = (pp_range){ offset, length };
	return 0;
}

static int by_offset(const void *a, const void *b)
{
	const pp_range *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The written ranges in order, overlapping and touching ones merged: a file
 * edit makes thousands of small writes, many to the same blocks. */
static size_t merge_written(pp_range *ranges, size_t count)
{
	qsort(ranges, count, sizeof *ranges, by_offset);
	size_t merged = 0;
	for (size_t i = 0; i < count; i++) {
		pp_range *last = merged ? &ranges[merged - 1] : NULL;
		if (last && ranges[i].offset <= last->offset + last->length) {
			uint64_t end = ranges[i].offset + ranges[i].length;
			if (end > last->offset + last->length)
				last->length = end - last->offset;
		} else {
			ranges[merged++] = ranges[i];
		}
	}
	return merged;
}

/* The transaction is committed: the bmap follows every range of it. */
static int update_bmap(patch_args *args, pp_bmap *bmap, pp_archive *archive)
{
	pp_error err;
	const char *target = args->output ? args->output : args->archive;
	const char *saved = args->bmap_output ? args->bmap_output : args->bmap;
	/* An in-process edit (fsedit.c) recorded its writes apart. */
	const fsedit_written *edited = &args->edit_written;
	for (size_t i = 0; i < edited->count; i++)
		if (add_written(args, edited->ranges[i].offset,
				edited->ranges[i].length))
			return EXIT_ERROR;
	size_t count = merge_written(args->written, args->written_count);
	if (pp_bmap_patched(bmap, archive, args->written, count, &err) ||
	    pp_bmap_save(bmap, saved, &err)) {
		/* One line: what failed, and how to finish the job. */
		cli_error("%s (the archive is patched but its bmap is not: run "
			  "'%s --recover --bmap %s%s%s %s')", err.message,
			  cli_program, args->bmap, args->bmap_output ?
			  " --bmap-output " : "", args->bmap_output ?
			  args->bmap_output : "", target);
		return EXIT_ERROR;
	}
	if (args->bmap_found && !args->quiet)
		fprintf(stderr, "%s: %s: updated to match %s (the bmap "
			"bmaptool finds for it; --no-bmap leaves it)\n",
			cli_program, saved, target);
	return 0;
}

/* Whether path names a regular file (following links, as bmaptool does). */
static bool regular_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * The bmap bmaptool copy uses for an image it is given no bmap for:
 * PATH.bmap, then the same with one extension after another taken off
 * (a.img.xz: a.img.xz.bmap, a.img.bmap, a.bmap), as Python's splitext
 * takes them (the leading dots of a name are not an extension).  NULL if
 * none exists; malloc'd.
 */
static char *bmap_bmaptool_finds(const char *path)
{
	char *stem = strdup(path), *candidate = NULL;
	while (stem) {
		if (asprintf(&candidate, "%s.bmap", stem) < 0)
			break;
		if (regular_file(candidate))
			break;
		free(candidate);
		candidate = NULL;
		char *slash = strrchr(stem, '/');
		char *name = slash ? slash + 1 : stem;
		char *dot = strrchr(name + strspn(name, "."), '.');
		if (!dot)
			break;
		*dot = '\0';
	}
	free(stem);
	return candidate;
}

/* Where the bmap of --output NEW goes: NEW.bmap if it exists (bmaptool
 * looks there first, so it must not stay stale), else NEW without its
 * format's suffix, plus .bmap (IMAGE.bmap beside IMAGE.xz). */
static char *bmap_for_output(const char *output)
{
	char *path = NULL;
	if (asprintf(&path, "%s.bmap", output) < 0)
		return NULL;
	if (regular_file(path))
		return path;
	const char *suffix = pp_format_suffix(pp_format_from_path(output));
	size_t len = strlen(output), cut = suffix ? strlen(suffix) : 0;
	if (cut && len > cut && strcmp(output + len - cut, suffix) == 0)
		snprintf(path + len - cut, cut + 6, ".bmap");
	return path;
}

/* With no --bmap: the one bmaptool would find for the archive, kept true
 * too, unless --no-bmap.  With --output, the variant's goes beside it. */
static void find_bmap(patch_args *args)
{
	if (args->bmap || args->no_bmap)
		return;
	char *found = bmap_bmaptool_finds(args->archive);
	if (!found)
		return;
	char *output_bmap = args->output && !args->recover ?
		bmap_for_output(args->output) : NULL;
	if ((args->output && !args->recover && !output_bmap) ||
	    (output_bmap && strcmp(output_bmap, found) == 0)) {
		/* The variant's would replace the base's: leave both. */
		free(found);
		free(output_bmap);
		return;
	}
	args->bmap = found;
	args->bmap_output = output_bmap;
	args->bmap_found = true;
}

static int open_target(const patch_args *args, pp_archive **archive,
		       pp_error *err)
{
	if (args->output && !args->dry_run)
		return pp_open_copy(args->archive, args->output, archive, err);
	int flags = args->dry_run ? PP_OPEN_READ : PP_OPEN_WRITE;
	if (args->no_wait)
		flags |= PP_OPEN_NO_WAIT;
	return pp_open(args->archive, flags, archive, err);
}

static void report(const patch_args *args, const pp_patch_report *done)
{
	char where[80];
	if (args->range_count == 1)
		snprintf(where, sizeof where, "at image offset %llu",
			 (unsigned long long)args->ranges[0].offset);
	else
		snprintf(where, sizeof where, "in %zu ranges",
			 args->range_count);
	fprintf(stderr, "%s: %s: %s %llu bytes %s, "
		"updating the checks of %llu block(s) from block %llu; "
		"undo record %llu bytes\n", cli_program,
		args->output && !args->dry_run ? args->output : args->archive,
		args->dry_run ? "would write" : "wrote",
		(unsigned long long)done->data_bytes, where,
		(unsigned long long)done->blocks_touched,
		/* The report's index, numbered from 1 as xz -lvv does. */
		(unsigned long long)done->first_block + 1,
		(unsigned long long)done->undo_bytes);
}

/* Whether the directory holding path lets us create files in it. */
static bool directory_writable(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return access(".", W_OK) == 0;
	if (slash == path)
		return access("/", W_OK) == 0;
	char *dir = strndup(path, (size_t)(slash - path));
	bool writable = !dir || access(dir, W_OK) == 0;
	free(dir);
	return writable;
}

/* A .gz named .xz (or the reverse) is someone's mistake: refuse it rather
 * than patch a file whose name will mislead the next tool.  The new file
 * of --output follows the rule partpack's output does. */
static int check_names(pp_archive *archive, const patch_args *args)
{
	enum pp_format format, named = pp_format_from_path(args->archive);
	pp_error err;
	if (pp_get_format(archive, &format, &err))
		return cli_fail(&err);
	if (named && named != format) {
		cli_error("%s: is a %s file, but its name says %s",
			  args->archive, pp_format_name(format),
			  pp_format_name(named));
		return EXIT_ERROR;
	}
	return args->output ? cli_check_output(args->output, format,
					       args->force) : 0;
}

/* Keeping whole 4 KiB blocks (what filesystems write) costs nothing
 * worth saving and covers the writes near this one. */
#define REMEDY_GRAIN 4096

/* The way out of a failed patch, after the library's problem; range is
 * the one refused when adding it, NULL for a failed commit; len is all
 * of the write, however much of it was read. */
static int patch_failed(pp_archive *archive, const patch_args *args,
			const range_arg *range, const pp_error *err,
			uint64_t len)
{
	if (err->status == PP_ERR_NOT_STORED && range) {
		if (range->partition)
			return cli_fail_advice(err, "to make it patchable, pack "
					       "the image with 'partpack "
					       "--keep-raw %s'", range->partition);
		pp_info info;
		pp_error ignored;
		uint64_t start = range->offset / REMEDY_GRAIN * REMEDY_GRAIN;
		uint64_t end = range->offset + len;
		end = end > UINT64_MAX - REMEDY_GRAIN ? end :
			(end + REMEDY_GRAIN - 1) / REMEDY_GRAIN * REMEDY_GRAIN;
		if (pp_get_info(archive, &info, &ignored) == 0) {
			end = PP_CLI_MIN(end, info.uncompressed_size);
			pp_info_free(&info);
		}
		return cli_fail_advice(err, "to make all of the write patchable, "
				       "pack the image with 'partpack "
				       "--keep-raw %llu+%llu'",
				       (unsigned long long)start,
				       (unsigned long long)(end - start));
	}
	if (err->status == PP_ERR_IO && !args->output && !args->dry_run &&
	    !directory_writable(args->archive))
		return cli_fail_advice(err, "use --output NEW to write a "
				       "patched copy elsewhere");
	return cli_fail(err);
}

/* A mountpoint, label: or uuid: is found by libguestfs on the archive
 * itself (edit.c); the rest in its partition table. */
static int locate(pp_archive *archive, const patch_args *args,
		  range_arg *range)
{
	pp_range partition;
	pp_error err;
	/* In process first (a mountpoint too, when the guest's root is ext);
	 * the appliance for what only it can find, or with --appliance. */
	bool guest = args->appliance ?
		edit_selector_needs_guest(range->partition) :
		fsedit_selector_needs_guest(range->partition);
	int located = guest && args->appliance ? PP_ERR_USAGE :
		pp_locate_partition(archive, range->partition, &partition,
				    &err);
	if (located == PP_ERR_USAGE && guest) {
		edit_result found;
		int status = edit_run(archive, args->archive, range->partition,
				      NULL, 0, args->verbose, &found);
		partition = found.partition;
		edit_result_free(&found);
		if (status)
			return status;
	} else if (located) {
		return cli_fail(&err);
	}
	range->offset = partition.offset;
	range->limit = partition.length;
	return 0;
}

/* Adds each range's bytes, read before the archive was locked, to the
 * transaction, which keeps its own copy. */
static int add_ranges(pp_archive *archive, patch_args *args,
		      pp_patch_txn *txn)
{
	int status = 0;
	for (size_t i = 0; status == 0 && i < args->range_count; i++) {
		range_arg *range = &args->ranges[i];
		pp_error err;
		if (range->partition)
			status = locate(archive, args, range);
		if (status == 0)
			status = check_fits(range);
		if (status == 0 && pp_patch_add(txn, range->offset,
						range->data.bytes,
						range->data.len, &err))
			status = patch_failed(archive, args, range, &err,
					      PP_CLI_MAX(range->data.len,
							 range->data.input_len));
		if (status == 0)
			status = add_written(args, range->offset,
					     range->data.len);
		release_data(&range->data);
		range->data = (patch_data){ 0 };
	}
	return status;
}

/* Runs the file operations (one appliance session that writes nothing)
 * and adds the writes they made to the transaction. */
static int add_appliance_edits(pp_archive *archive, patch_args *args,
			       pp_patch_txn *txn)
{
	edit_result edited;
	range_arg *range = &args->ranges[0];
	int status = edit_run(archive, args->archive, range->partition,
			      args->edits, args->edit_count, args->verbose,
			      &edited);
	range->offset = edited.partition.offset;
	for (size_t i = 0; status == 0 && i < edited.write_count; i++) {
		const edit_write *w = &edited.writes[i];
		pp_error err;
		if (pp_patch_add(txn, w->offset, w->data, w->length, &err))
			status = patch_failed(archive, args, range, &err,
					      w->length);
		else
			status = add_written(args, w->offset, w->length);
	}
	if (status == 0 && args->verbose)
		fprintf(stderr, "%s: %s: the edit made %zu writes to partition "
			"%u\n", cli_program, args->archive, edited.write_count,
			edited.number);
	edit_result_free(&edited);
	return status;
}

/* File operations in process where the filesystem allows (ext2/3/4,
 * vfat) and --exec; the appliance for the rest and with --appliance. */
static int add_edits(pp_archive *archive, patch_args *args,
		     pp_patch_txn *txn)
{
	range_arg *range = &args->ranges[0];
	int status = 0;
	if (args->exec || (!args->appliance &&
			   fsedit_can_run(args->edits, args->edit_count))) {
		status = locate(archive, args, range);
		pp_range partition = { range->offset, range->limit };
		if (status == 0)
			status = args->exec ?
				fsedit_exec(archive, range->partition,
					    &partition, args->exec,
					    args->verbose, txn,
					    &args->edit_written) :
				fsedit_run(archive, range->partition,
					   &partition, args->edits,
					   args->edit_count, args->verbose, txn,
					   &args->edit_written);
		if (status != FSEDIT_ELSEWHERE)
			return status;
		status = 0;
	}
	return status ? status : add_appliance_edits(archive, args, txn);
}

static int run_patch(pp_archive *archive, patch_args *args,
		     pp_patch_report *done)
{
	pp_patch_txn *txn;
	pp_error err;
	if (pp_patch_begin(archive, args->dry_run ? PP_PATCH_DRY_RUN : 0,
			   &txn, &err))
		return cli_fail(&err);
	int status = args->edit_count || args->exec ?
		add_edits(archive, args, txn) :
		add_ranges(archive, args, txn);
	if (status) {
		pp_patch_abort(txn);
		return status;
	}
	if (pp_patch_commit(txn, done, &err))
		return patch_failed(archive, args, NULL, &err, 0);
	return 0;
}

/*
 * With --output, the appliance (a file edit, or a selector it resolves)
 * reads the base itself, served by nbdkit, while the copy is patched: a
 * shared lock on the base, held to the end, keeps another partpatch from
 * changing it meanwhile.  In place, the archive's own lock does.
 */
static int guard_base(const patch_args *args, pp_archive **guard)
{
	bool appliance = args->edit_count > 0;
	for (size_t i = 0; i < args->range_count; i++)
		appliance = appliance || (args->ranges[i].partition &&
			edit_selector_needs_guest(args->ranges[i].partition));
	*guard = NULL;
	if (!args->output || args->dry_run || !appliance)
		return 0;
	pp_error err;
	int flags = PP_OPEN_READ | (args->no_wait ? PP_OPEN_NO_WAIT : 0);
	if (pp_open(args->archive, flags, guard, &err))
		return cli_open_failed(&err, args->archive);
	return 0;
}

/* A bmap that cannot be used stops the run before the archive changes. */
static int open_bmap(const patch_args *args, pp_archive *archive,
		     pp_bmap **bmap)
{
	pp_error err;
	*bmap = NULL;
	if (!args->bmap || pp_bmap_open(archive, args->bmap, bmap, &err) == 0)
		return 0;
	if (args->bmap_found)
		return cli_fail_advice(&err, "it is the bmap bmaptool finds for "
				       "%s; --no-bmap patches without it",
				       args->archive);
	return cli_fail(&err);
}

/* Opens the archive (or the copy) and patches it, bmap and all. */
static int patch_archive(patch_args *args)
{
	pp_archive *archive;
	pp_error err;
	cli_progress scanning;
	cli_background_progress_begin(&scanning, "scanning", args->quiet);
	int opened = open_target(args, &archive, &err);
	cli_background_progress_end(&scanning);
	if (opened)
		return cli_open_failed(&err, args->archive);
	pp_patch_report done;
	pp_bmap *bmap = NULL;
	int status = check_names(archive, args);
	if (status == 0)
		status = open_bmap(args, archive, &bmap);
	if (status == 0)
		status = run_patch(archive, args, &done);
	if (status == 0 && pp_commit(archive, &err))
		status = cli_fail(&err);
	if (status == 0 && bmap && !args->dry_run)
		status = update_bmap(args, bmap, archive);
	if (status == 0 && (args->verbose || args->dry_run))
		report(args, &done);
	pp_bmap_close(bmap);
	pp_close(archive);
	return status;
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	patch_args args = { 0 };
	parse_args(argc, argv, &args);
	find_bmap(&args);
	int status;
	if (args.recover) {
		status = recover(&args);
	} else {
		/* The local files and the inputs first: nothing is locked or
		 * launched for a run that cannot finish. */
		pp_archive *guard = NULL;
		status = edit_check_files(args.edits, args.edit_count);
		if (status == 0)
			status = read_inputs(&args);
		if (status == 0)
			status = guard_base(&args, &guard);
		if (status == 0)
			status = patch_archive(&args);
		pp_close(guard);
	}
	for (size_t i = 0; i < args.range_count; i++)
		release_data(&args.ranges[i].data);
	if (args.bmap_found) {
		free((char *)args.bmap);
		free((char *)args.bmap_output);
	}
	free(args.ranges);
	free(args.edits);
	free(args.edit_written.ranges);
	free(args.written);
	return status;
}
