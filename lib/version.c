/* version.c - the version of the library loaded at run time, for programs
 * that compare it with the header they were built with. */
#include "base.h"

const char *pp_version(void)
{
	return PP_VERSION;
}

unsigned pp_version_number(void)
{
	return PP_VERSION_NUMBER;
}
