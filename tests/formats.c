/*
 * formats.c - prints the formats the library's registry lists, one a line:
 * its name and its suffix ("xz .xz").  The integration scripts loop over
 * them (tests/lib.sh: pp_formats), so that a format added to lib/format.c
 * is tested everywhere without a script naming it.  Built beside the unit
 * tests; never installed.
 */
#include "partpack.h"

#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	for (size_t i = 0; pp_format_at(i) != 0; i++) {
		enum pp_format format = pp_format_at(i);
		printf("%s %s\n", pp_format_name(format),
		       pp_format_suffix(format));
	}
	return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
