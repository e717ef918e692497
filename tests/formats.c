/*
 * formats.c - prints the formats the library's registry lists, one a line:
 * its name, its suffix and the checks it carries, the default first
 * ("xz .xz crc64 none crc32 sha256").  The integration scripts loop over
 * them (tests/lib.sh: pp_formats, pp_format_checks), so that a format
 * added to lib/format.c is tested everywhere without a script naming it.
 * Built beside the unit tests; never installed.
 */
#include "formats.h"

#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	for (size_t i = 0; pp_format_at(i) != 0; i++) {
		enum pp_format format = pp_format_at(i);
		enum pp_check checks[32];
		size_t count = formats_checks(format, checks);
		printf("%s %s", pp_format_name(format),
		       pp_format_suffix(format));
		for (size_t c = 0; c < count; c++)
			printf(" %s", pp_check_name(checks[c]));
		putchar('\n');
	}
	return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
