/* fuzz.h - what the harnesses share. */
#ifndef PARTPACK_FUZZ_H
#define PARTPACK_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

/* A property the library promises; abort() makes libFuzzer keep the input. */
#define REQUIRE(cond)                                                        \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: broken promise: %s\n",       \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

#endif
