/* partinfo - describe an .xz or .gz archive and its patchable ranges. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
	printf("Usage: %s [OPTION]... ARCHIVE\n"
	       "Print the format, check type, block count and size, sizes, and the\n"
	       "stored (patchable) ranges of an .xz or .gz archive.\n"
	       "\n"
	       "  -j, --json       print one JSON object\n"
	       "  -t, --verify     decode every block and compare every check\n"
	       "  -q, --quiet      no progress line\n"
	       "  -h, --help       show this help and exit\n"
	       "  -V, --version    show the version and exit\n"
	       "\n"
	       "Exit status: 0 success, 1 error (unreadable or corrupt archive),\n"
	       "2 usage error, 4 --verify found a block whose check does not match.\n",
	       cli_program);
}

static void print_json_string(const char *text)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void print_json(const char *path, const pp_info *info, bool verified)
{
	printf("{\"file\": ");
	print_json_string(path);
	printf(", \"format\": \"%s\", \"check\": \"%s\", "
	       "\"uncompressed_size\": %llu, \"compressed_size\": %llu, "
	       "\"blocks\": %llu, \"block_size\": %llu, \"stored_ranges\": [",
	       pp_format_name(info->format),
	       info->mixed_checks ? "mixed" : pp_check_name(info->check),
	       (unsigned long long)info->uncompressed_size,
	       (unsigned long long)info->compressed_size,
	       (unsigned long long)info->block_count,
	       (unsigned long long)info->block_size);
	for (size_t i = 0; i < info->stored_count; i++)
		printf("%s{\"offset\": %llu, \"length\": %llu}", i ? ", " : "",
		       (unsigned long long)info->stored[i].offset,
		       (unsigned long long)info->stored[i].length);
	printf("]%s}\n", verified ? ", \"verified\": true" : "");
}

static void print_text(const char *path, const pp_info *info, bool verified)
{
	printf("File:              %s\n", path);
	printf("Format:            %s\n", pp_format_name(info->format));
	printf("Check:             %s\n",
	       info->mixed_checks ? "mixed" : pp_check_name(info->check));
	printf("Blocks:            %llu\n", (unsigned long long)info->block_count);
	printf("Block size:        %llu\n", (unsigned long long)info->block_size);
	printf("Uncompressed size: %llu\n",
	       (unsigned long long)info->uncompressed_size);
	printf("Compressed size:   %llu\n",
	       (unsigned long long)info->compressed_size);
	printf("Stored ranges:     %s\n", info->stored_count ? "" : "none");
	for (size_t i = 0; i < info->stored_count; i++)
		printf("  %llu..%llu (%llu bytes)\n",
		       (unsigned long long)info->stored[i].offset,
		       (unsigned long long)(info->stored[i].offset +
					    info->stored[i].length),
		       (unsigned long long)info->stored[i].length);
	if (verified)
		printf("Verified:          every check matches\n");
}

int main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "verify", no_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	cli_init(argv[0]);
	bool json = false, verify = false, quiet = false;
	int c;
	while ((c = getopt_long(argc, argv, ":jtqhV", long_options, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 't': verify = true; break;
		case 'q': quiet = true; break;
		case 'h': usage(); return EXIT_OK;
		case 'V': cli_version(); return EXIT_OK;
		default:
			cli_option_error(c, argv);
		}
	}
	if (optind + 1 != argc) {
		cli_error(optind == argc ? "missing ARCHIVE" :
			  "too many arguments: only one ARCHIVE");
		return EXIT_USAGE;
	}
	const char *path = argv[optind];
	pp_archive *archive;
	pp_error err;
	cli_progress scanning;
	cli_background_progress_begin(&scanning, "scanning", quiet);
	int opened = pp_open(path, PP_OPEN_READ, &archive, &err);
	cli_background_progress_end(&scanning);
	if (opened)
		return cli_open_failed(&err, path);
	int status = 0;
	if (verify) {
		cli_progress progress;
		cli_progress_init(&progress, "verifying", quiet);
		int verified = pp_verify(archive, cli_progress_update, &progress,
					 &err);
		cli_progress_end(&progress);
		if (verified)
			status = cli_fail(&err);
	}
	pp_info info;
	if (status == 0 && pp_get_info(archive, &info, &err))
		status = cli_fail(&err);
	if (status == 0) {
		if (json)
			print_json(path, &info, verify);
		else
			print_text(path, &info, verify);
		pp_info_free(&info);
	}
	pp_close(archive);
	return status;
}
