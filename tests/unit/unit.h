/*
 * unit.h - the smallest test harness that does the job.  Each CHECK prints
 * "ok N - what" or "not ok N - what (file:line)", TAP style, so tests/run
 * can count results across binaries; unit_done() exits non-zero on failure.
 */
#ifndef PARTPACK_UNIT_H
#define PARTPACK_UNIT_H

#include <stdio.h>
#include <stdlib.h>

static int unit_count, unit_failed;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		unit_count++;                                                \
		if (cond) {                                                  \
			printf("ok %d - ", unit_count);                      \
		} else {                                                     \
			unit_failed++;                                       \
			printf("not ok %d - (%s:%d) ", unit_count, __FILE__, \
			       __LINE__);                                    \
		}                                                            \
		printf(__VA_ARGS__);                                         \
		putchar('\n');                                               \
	} while (0)

static inline int unit_done(void)
{
	printf("1..%d\n", unit_count);
	return unit_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Deterministic pseudo-random bytes (xorshift64*), so failures replay. */
static inline unsigned long long unit_random(unsigned long long *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ULL;
}

#endif
