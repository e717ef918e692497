/*
 * formats.h - which checks each format of the registry carries, asked of
 * the library through its public API, for the tests that loop over every
 * format and check (tests/formats.c prints them for the scripts; unit.h
 * gives them to the unit tests).
 *
 * partpack.h names the check kinds but not which of them a format takes:
 * pp_pack says.  An image of 4 KiB is packed with each check pp_check_name
 * knows, into a memfd, and the check counts when the archive carries it
 * (pp_get_info): pp_pack refuses a check a format cannot carry, and a
 * format with a single check writes that one whatever is asked (gzip's
 * CRC-32).
 */
#ifndef PARTPACK_TESTS_FORMATS_H
#define PARTPACK_TESTS_FORMATS_H

#include "partpack.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Whether an archive of FORMAT packed with CHECK carries CHECK. */
static inline bool formats_carries(enum pp_format format, enum pp_check check)
{
	static const uint8_t image[4096] = "a format carrying a check\n";
	int in = memfd_create("formats-image", MFD_CLOEXEC);
	int out = memfd_create("formats-archive", MFD_CLOEXEC);
	bool carries = false;
	if (in >= 0 && out >= 0 &&
	    pwrite(in, image, sizeof image, 0) == (ssize_t)sizeof image) {
		pp_pack_options options;
		pp_pack_options_init(&options);
		options.format = format;
		pp_format_levels(format, &(int){ 0 }, &(int){ 0 },
				 &options.level);
		options.check = check;
		options.threads = 1;
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", out);
		pp_archive *archive;
		pp_info info;
		if (pp_pack(in, "image", out, path, &options, NULL) == 0 &&
		    pp_open(path, PP_OPEN_READ, &archive, NULL) == 0) {
			carries = pp_get_info(archive, &info, NULL) == 0 &&
				  info.check == check;
			if (carries)
				pp_info_free(&info);
			pp_close(archive);
		}
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return carries;
}

/* The checks FORMAT carries, its default first, into checks (room for
 * 32: the check IDs are under 32); returns how many. */
static inline size_t formats_checks(enum pp_format format,
				    enum pp_check checks[32])
{
	enum pp_check first = pp_format_default_check(format);
	size_t count = 0;
	checks[count++] = first;
	for (int id = 0; id < 32; id++) {
		enum pp_check check = (enum pp_check)id;
		if (check != first &&
		    strcmp(pp_check_name(check), "unknown") != 0 &&
		    formats_carries(format, check))
			checks[count++] = check;
	}
	return count;
}

#endif
