/* pool.h - jobs run on worker threads, drained in order (pool.c). */
#ifndef PARTPACK_POOL_H
#define PARTPACK_POOL_H

#include "base.h"

/*
 * Runs jobs through `threads` workers, with at most `window` jobs in
 * flight.  fill() runs on the calling thread in job order and prepares a
 * job's input, returning 1 when there is no more input; work() runs on a
 * worker; drain() runs on the calling thread in job order.  `slots` holds
 * `window` job states of slot_size bytes each.  The status of the first
 * failure, in job order, is returned.
 */
typedef struct pp_pool_ops {
	int (*fill)(void *opaque, size_t job, void *slot, pp_error *err);
	int (*work)(void *opaque, void *slot, pp_error *err);
	int (*drain)(void *opaque, size_t job, void *slot, pp_error *err);
} pp_pool_ops;

int pp_pool_run(const pp_pool_ops *ops, void *opaque, unsigned threads,
		size_t window, void *slots, size_t slot_size, pp_error *err);

/* One worker per online core. */
unsigned pp_online_cores(void);

#endif
