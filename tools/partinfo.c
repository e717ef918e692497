/* partinfo - describe an .xz, .gz or .zst archive and its patchable ranges. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct info_args {
	bool blocks;
	bool json;
	bool verify;
	bool digest;
	bool quiet;
} info_args;

#define FIELD(name) offsetof(info_args, name)

static const cli_option option_table[] = {
	{ "blocks", 'b', NULL, cli_set_flag, FIELD(blocks),
	  "also print one line per block, numbered from 1 as xz\t-lvv numbers "
	  "them" },
	{ "json", 'j', NULL, cli_set_flag, FIELD(json),
	  "print one JSON object (see partinfo(1) for its keys)" },
	{ "verify", 't', NULL, cli_set_flag, FIELD(verify),
	  "decode every block and compare every check" },
	{ "digest", 'd', NULL, cli_set_flag, FIELD(digest),
	  "print the SHA-256 of the uncompressed image and of the archive file "
	  "(as sha256sum would)" },
	{ "quiet", 'q', NULL, cli_set_flag, FIELD(quiet), "no progress line" },
	CLI_HELP_AND_VERSION,
	CLI_END,
};

static const cli_tool tool = {
	.synopsis = "[OPTION]... ARCHIVE",
	.about = "Print the format, check type, block count and size, sizes and "
		"ratio, the stored (patchable) ranges of an {suffixes} archive, "
		"and the partition table of its image with what of each "
		"partition is patchable.  ARCHIVE - is standard input, when it "
		"is a file (not a pipe).  ARCHIVE may be an http://, https:// or "
		"s3:// URL: its first and last 64 KiB are read, in two range "
		"requests.",
	.options = option_table,
	.footer = "Exit status: 0 success, 1 error (unreadable or corrupt "
		"archive), 2 usage error, 4 --verify found a block whose check "
		"does not match.",
};

/* A block whose decode or check failed, numbered from 1. */
typedef struct bad_block {
	size_t number;
	uint64_t uoffset;
	char message[PP_ERROR_MAX];
} bad_block;

/* What partinfo prints besides pp_info. */
typedef struct report {
	const char *path;
	bool verified;              /* --verify ran: bad_count says how */
	struct bad_block *bad;      /* the blocks --verify found bad */
	size_t bad_count;
	bool digested;              /* --digest: the two below are set */
	char image_sha256[65];
	char file_sha256[65];
	pp_partition_info *parts;   /* NULL when the image has no table */
	bool *patchable;            /* per partition: all of it stored */
	size_t part_count;
	pp_block_info *blocks;      /* only with --blocks */
	size_t block_count;
} report;

/* ---- JSON ------------------------------------------------------------- */

/* The length of the well-formed UTF-8 sequence at p, or 0. */
static size_t utf8_length(const unsigned char *p)
{
	size_t len = *p < 0x80 ? 1 : *p >= 0xc2 && *p < 0xe0 ? 2 :
		*p >= 0xe0 && *p < 0xf0 ? 3 : *p >= 0xf0 && *p < 0xf5 ? 4 : 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if ((len == 3 && *p == 0xe0 && p[1] < 0xa0) ||
	    (len == 3 && *p == 0xed && p[1] >= 0xa0) ||
	    (len == 4 && *p == 0xf0 && p[1] < 0x90) ||
	    (len == 4 && *p == 0xf4 && p[1] >= 0x90))
		return 0;
	return len;
}

/*
 * Strings from the file name or the image (a GPT name) are bytes; output is
 * UTF-8.  A control character becomes \u00XX and a backslash \\, so no
 * byte of an image can move the terminal's cursor or fake a line; a byte
 * that is not part of a UTF-8 sequence becomes U+FFFD, so the output stays
 * valid.  In JSON a quote is escaped too, and U+FFFD written \ufffd.
 * Returns a malloc'd string, NULL when out of memory.
 */
static char *escaped(const char *text, bool json)
{
	/* At most 6 bytes for each byte of text. */
	size_t size = 6 * strlen(text) + 1, used = 0;
	char *out = malloc(size);
	for (const unsigned char *p = (const unsigned char *)text; out && *p;) {
		size_t len = utf8_length(p);
		if (*p == '\\' || (json && *p == '"'))
			used += (size_t)snprintf(out + used, size - used, "\\%c",
						 *p);
		else if (*p < 0x20 || *p == 0x7f)
			used += (size_t)snprintf(out + used, size - used,
						 "\\u%04x", *p);
		else if (len == 0)
			used += (size_t)snprintf(out + used, size - used, "%s",
						 json ? "\\ufffd" : "\xef\xbf\xbd");
		else
			used += (size_t)snprintf(out + used, size - used, "%.*s",
						 (int)len, (const char *)p);
		p += len ? len : 1;
	}
	if (out)
		out[used] = '\0';
	return out;
}

/* A JSON string. */
static void print_json_string(const char *text)
{
	char *safe = escaped(text, true);
	printf("\"%s\"", safe ? safe : "");
	free(safe);
}

static const char *check_name(const pp_info *info)
{
	return info->mixed_checks ? "mixed" : pp_check_name(info->check);
}

static void print_json(const report *r, const pp_info *info)
{
	printf("{\"file\": ");
	print_json_string(r->path);
	printf(", \"format\": \"%s\", \"check\": \"%s\", "
	       "\"uncompressed_size\": %llu, \"compressed_size\": %llu, "
	       "\"blocks\": %llu, \"block_size\": %llu, \"stored_ranges\": [",
	       pp_format_name(info->format), check_name(info),
	       (unsigned long long)info->uncompressed_size,
	       (unsigned long long)info->compressed_size,
	       (unsigned long long)info->block_count,
	       (unsigned long long)info->block_size);
	for (size_t i = 0; i < info->stored_count; i++)
		printf("%s{\"offset\": %llu, \"length\": %llu}", i ? ", " : "",
		       (unsigned long long)info->stored[i].offset,
		       (unsigned long long)info->stored[i].length);
	printf("], \"partitions\": [");
	for (size_t i = 0; i < r->part_count; i++) {
		const pp_partition_info *p = &r->parts[i];
		printf("%s{\"number\": %u, \"name\": ", i ? ", " : "", p->number);
		print_json_string(p->name);
		printf(", \"offset\": %llu, \"length\": %llu, \"patchable\": %s}",
		       (unsigned long long)p->offset,
		       (unsigned long long)p->length,
		       r->patchable[i] ? "true" : "false");
	}
	printf("]");
	if (r->blocks) {
		printf(", \"block_list\": [");
		for (size_t i = 0; i < r->block_count; i++) {
			const pp_block_info *b = &r->blocks[i];
			printf("%s{\"number\": %zu, \"compressed_offset\": %llu, "
			       "\"uncompressed_offset\": %llu, "
			       "\"total_size\": %llu, "
			       "\"uncompressed_size\": %llu, \"check\": \"%s\", "
			       "\"stored\": %llu}", i ? ", " : "", i + 1,
			       (unsigned long long)b->foffset,
			       (unsigned long long)b->uoffset,
			       (unsigned long long)b->fsize,
			       (unsigned long long)b->usize,
			       pp_check_name(b->check),
			       (unsigned long long)b->stored_bytes);
		}
		printf("]");
	}
	if (r->verified)
		printf(", \"verified\": %s", r->bad_count ? "false" : "true");
	if (r->bad_count) {
		printf(", \"bad_blocks\": [");
		for (size_t i = 0; i < r->bad_count; i++) {
			printf("%s{\"number\": %zu, \"uncompressed_offset\": "
			       "%llu, \"error\": ", i ? ", " : "",
			       r->bad[i].number,
			       (unsigned long long)r->bad[i].uoffset);
			print_json_string(r->bad[i].message);
			printf("}");
		}
		printf("]");
	}
	if (r->digested)
		printf(", \"image_sha256\": \"%s\", \"file_sha256\": \"%s\"",
		       r->image_sha256, r->file_sha256);
	printf("}\n");
}

/* ---- text ------------------------------------------------------------- */

/* One line of text output, without trailing spaces. */
static void put_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void put_line(const char *fmt, ...)
{
	char line[1024];
	va_list args;
	va_start(args, fmt);
	vsnprintf(line, sizeof line, fmt, args);
	va_end(args);
	size_t len = strlen(line);
	while (len && line[len - 1] == ' ')
		line[--len] = '\0';
	puts(line);
}

/* "67108864 (64.0 MiB)": exact for scripts, readable for people. */
static const char *sized(char *text, size_t size, uint64_t bytes)
{
	char unit[32];
	cli_format_size(unit, sizeof unit, bytes);
	if (bytes < 1024)
		snprintf(text, size, "%llu B", (unsigned long long)bytes);
	else
		snprintf(text, size, "%llu (%s)", (unsigned long long)bytes,
			 unit);
	return text;
}

static void print_blocks(const report *r)
{
	put_line("Block table:");
	put_line("  %6s %12s %12s %12s %12s %6s  %-7s %s", "Number",
		 "CompOffset", "UncompOffset", "TotalSize", "UncompSize",
		 "Ratio", "Check", "Stored");
	for (size_t i = 0; i < r->block_count; i++) {
		const pp_block_info *b = &r->blocks[i];
		const char *stored = b->stored_bytes == 0 ? "no" :
			b->stored_bytes == b->usize ? "all" : "part";
		char ratio[16] = "---";
		if (b->usize)
			snprintf(ratio, sizeof ratio, "%.3f",
				 (double)b->fsize / (double)b->usize);
		put_line("  %6zu %12llu %12llu %12llu %12llu %6s  %-7s %s", i + 1,
			 (unsigned long long)b->foffset,
			 (unsigned long long)b->uoffset,
			 (unsigned long long)b->fsize,
			 (unsigned long long)b->usize, ratio,
			 pp_check_name(b->check), stored);
	}
}

static void print_text(const report *r, const pp_info *info)
{
	char a[64];
	put_line("File:              %s", r->path);
	put_line("Format:            %s", pp_format_name(info->format));
	put_line("Check:             %s", check_name(info));
	put_line("Blocks:            %llu", (unsigned long long)info->block_count);
	put_line("Block size:        %s", sized(a, sizeof a, info->block_size));
	put_line("Uncompressed size: %s",
		 sized(a, sizeof a, info->uncompressed_size));
	put_line("Compressed size:   %s",
		 sized(a, sizeof a, info->compressed_size));
	if (info->uncompressed_size)
		put_line("Ratio:             %.3f",
			 (double)info->compressed_size /
			 (double)info->uncompressed_size);
	else
		put_line("Ratio:             ---");
	put_line("Stored ranges:     %s", info->stored_count ? "" : "none");
	for (size_t i = 0; i < info->stored_count; i++) {
		char unit[32];
		cli_format_size(unit, sizeof unit, info->stored[i].length);
		put_line("  %llu..%llu (%llu bytes, %s)",
			 (unsigned long long)info->stored[i].offset,
			 (unsigned long long)(info->stored[i].offset +
					      info->stored[i].length),
			 (unsigned long long)info->stored[i].length, unit);
	}
	put_line("Partitions:        %s", r->part_count ? "" : "none");
	if (r->part_count)
		put_line("  %6s %12s %12s %10s  %-9s %s", "Number", "Offset",
			 "Length", "Size", "Patchable", "Name");
	for (size_t i = 0; i < r->part_count; i++) {
		const pp_partition_info *p = &r->parts[i];
		char unit[32];
		cli_format_size(unit, sizeof unit, p->length);
		char *name = escaped(p->name, false);
		put_line("  %6u %12llu %12llu %10s  %-9s %s", p->number,
			 (unsigned long long)p->offset,
			 (unsigned long long)p->length, unit,
			 r->patchable[i] ? "yes" : "no", name ? name : "");
		free(name);
	}
	if (r->blocks)
		print_blocks(r);
	if (r->verified && !r->bad_count)
		put_line("Verified:          every check matches");
	else if (r->verified)
		put_line("Verified:          no: %zu bad block%s", r->bad_count,
			 r->bad_count == 1 ? "" : "s");
	for (size_t i = 0; i < r->bad_count; i++) {
		char *message = escaped(r->bad[i].message, false);
		put_line("  %s", message ? message : "");
		free(message);
	}
	if (r->digested) {
		put_line("Image SHA-256:     %s", r->image_sha256);
		put_line("File SHA-256:      %s", r->file_sha256);
	}
}

/* ---- gathering -------------------------------------------------------- */

/* Each block decoded alone (written to /dev/null), to list every bad one
 * once pp_verify, which stops at the first, found one. */
static int find_bad_blocks(pp_archive *archive, report *r)
{
	pp_block_info *blocks;
	size_t count;
	pp_error err;
	if (pp_list_blocks(archive, &blocks, &count, &err))
		return cli_fail(&err);
	int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	r->bad = calloc(count ? count : 1, sizeof *r->bad);
	int status = null_fd < 0 || !r->bad ? EXIT_ERROR : 0;
	pp_extract_options options;
	pp_extract_options_init(&options);
	options.threads = 1;
	for (size_t i = 0; status == 0 && i < count; i++) {
		if (pp_extract(archive, blocks[i].uoffset, blocks[i].usize,
			       null_fd, "/dev/null", &options, &err) == 0)
			continue;
		bad_block *b = &r->bad[r->bad_count++];
		*b = (bad_block){ .number = i + 1, .uoffset = blocks[i].uoffset };
		snprintf(b->message, sizeof b->message, "%s", err.message);
	}
	if (status)
		cli_error("cannot list the bad blocks: %s", strerror(errno));
	if (null_fd >= 0)
		close(null_fd);
	free(blocks);
	return status;
}

/* --verify: every check.  A bad block is one line on stderr and the exit
 * status, and the report still comes, listing the bad blocks. */
static int verify(pp_archive *archive, report *r, bool quiet)
{
	pp_error err;
	cli_progress progress;
	cli_progress_init(&progress, "verifying", quiet);
	int verified = pp_verify(archive, cli_progress_update, &progress, &err);
	cli_progress_end(&progress);
	if (verified == 0)
		return 0;
	int status = cli_fail(&err);
	/* A check that does not match: the blocks are listed.  An index or
	 * a table that does not add up is the one line alone. */
	if (verified != PP_ERR_CHECK)
		return status;
	/* None bad alone (the index or the sizes were): no report. */
	return find_bad_blocks(archive, r) ? EXIT_ERROR : status;
}

static void to_hex(const uint8_t digest[32], char hex[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

/* --digest: the image's SHA-256 and the file's. */
static int digest_archive(pp_archive *archive, report *r, bool quiet)
{
	uint8_t image_sha256[32], file_sha256[32];
	pp_error err;
	cli_progress progress;
	cli_progress_init(&progress, "hashing", quiet);
	int hashed = pp_digest(archive, image_sha256, file_sha256,
			       cli_progress_update, &progress, &err);
	cli_progress_end(&progress);
	if (hashed)
		return cli_fail(&err);
	r->digested = true;
	to_hex(image_sha256, r->image_sha256);
	to_hex(file_sha256, r->file_sha256);
	return 0;
}

/* The image's partitions and, for each, whether one stored run covers
 * it.  An image without a partition table simply has none, and neither
 * has one whose table lies in a block --verify found bad (said already).
 * Returns an exit status. */
static int read_partitions(pp_archive *archive, report *r)
{
	pp_error err;
	int status = pp_list_partitions(archive, &r->parts, &r->part_count,
					&err);
	if (status == PP_ERR_FORMAT || (status && r->bad_count)) {
		r->part_count = 0;
		return 0;
	}
	if (status)
		return cli_fail(&err);
	r->patchable = calloc(r->part_count ? r->part_count : 1,
			      sizeof *r->patchable);
	if (!r->patchable) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	for (size_t i = 0; i < r->part_count; i++) {
		uint64_t run;
		if (pp_stored_run(archive, r->parts[i].offset, &run, &err))
			return cli_fail(&err);
		r->patchable[i] = run >= r->parts[i].length;
	}
	return 0;
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	info_args args = { 0 };
	int first = cli_parse(&tool, &argc, argv, &args);
	report r = { .verified = args.verify };
	pp_archive *archive;
	pp_error err;
	int opened = cli_open_archive(cli_one_archive(first, argc, argv), false,
				      args.quiet, &archive, &r.path);
	if (opened)
		return opened;
	/* A failed --verify still reports, with the bad blocks. */
	int verified = args.verify ? verify(archive, &r, args.quiet) : 0;
	int status = verified && !r.bad_count ? verified : 0;
	if (status == 0 && args.digest)
		status = digest_archive(archive, &r, args.quiet);
	pp_info info = { 0 };
	if (status == 0 && pp_get_info(archive, &info, &err))
		status = cli_fail(&err);
	if (status == 0)
		status = read_partitions(archive, &r);
	if (status == 0 && args.blocks &&
	    pp_list_blocks(archive, &r.blocks, &r.block_count, &err))
		status = cli_fail(&err);
	if (status == 0 && args.json)
		print_json(&r, &info);
	else if (status == 0)
		print_text(&r, &info);
	if (status == 0)
		status = verified;
	pp_info_free(&info);
	free(r.parts);
	free(r.patchable);
	free(r.blocks);
	free(r.bad);
	pp_close(archive);
	return status;
}
