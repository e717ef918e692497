/*
 * pool.c - worker threads that encode blocks out of order while the caller
 * reads and writes them in order.
 *
 * The calling thread fills job slots from the input and drains finished
 * slots to the output, always in job order; workers take the oldest ready
 * slot.  With `window` slots in flight, memory stays bounded however fast
 * the input is, and because each job's result depends only on its own
 * input, the output is the same for any number of workers.
 */
#include "pool.h"
#include "error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum slot_state { SLOT_FREE, SLOT_READY, SLOT_BUSY, SLOT_DONE, SLOT_FAILED };

typedef struct pool {
	pthread_mutex_t lock;
	pthread_cond_t ready;       /* a slot became READY, or stopping */
	pthread_cond_t finished;    /* a slot became DONE or FAILED */
	const pp_pool_ops *ops;
	void *opaque;
	uint8_t *slots;
	size_t slot_size;
	size_t window;
	enum slot_state *states;
	pp_error *slot_errors;
	int *slot_status;
	size_t next_fill;           /* jobs [next_drain, next_fill) are in flight */
	size_t next_drain;
	bool stopping;
} pool;

static void *slot_at(pool *p, size_t job)
{
	return p->slots + (job % p->window) * p->slot_size;
}

/* The oldest READY job, or SIZE_MAX.  Called with the lock held. */
static size_t oldest_ready_job(const pool *p)
{
	for (size_t job = p->next_drain; job < p->next_fill; job++)
		if (p->states[job % p->window] == SLOT_READY)
			return job;
	return SIZE_MAX;
}

static void *worker_main(void *arg)
{
	pool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		size_t job = oldest_ready_job(p);
		if (job == SIZE_MAX) {
			if (p->stopping)
				break;
			pthread_cond_wait(&p->ready, &p->lock);
			continue;
		}
		size_t slot = job % p->window;
		p->states[slot] = SLOT_BUSY;
		pthread_mutex_unlock(&p->lock);

		int status = p->ops->work(p->opaque, slot_at(p, job),
					  &p->slot_errors[slot]);

		pthread_mutex_lock(&p->lock);
		p->slot_status[slot] = status;
		p->states[slot] = status == 0 ? SLOT_DONE : SLOT_FAILED;
		pthread_cond_broadcast(&p->finished);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Waits for the oldest job and drains it.  Returns 0 or a status. */
static int drain_oldest(pool *p, pp_error *err)
{
	size_t job = p->next_drain, slot = job % p->window;
	pthread_mutex_lock(&p->lock);
	while (p->states[slot] != SLOT_DONE && p->states[slot] != SLOT_FAILED)
		pthread_cond_wait(&p->finished, &p->lock);
	pthread_mutex_unlock(&p->lock);

	if (p->states[slot] == SLOT_FAILED) {
		if (err)
			*err = p->slot_errors[slot];
		return p->slot_status[slot];
	}
	int status = p->ops->drain(p->opaque, job, slot_at(p, job), err);
	if (status != 0)
		return status;
	pthread_mutex_lock(&p->lock);
	p->states[slot] = SLOT_FREE;
	p->next_drain++;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Fills the next slot.  Returns 0, 1 at end of input, or a status. */
static int fill_next(pool *p, pp_error *err)
{
	size_t job = p->next_fill;
	int status = p->ops->fill(p->opaque, job, slot_at(p, job), err);
	if (status != 0)
		return status;
	pthread_mutex_lock(&p->lock);
	p->states[job % p->window] = SLOT_READY;
	p->next_fill++;
	pthread_cond_signal(&p->ready);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int run_jobs(pool *p, pp_error *err)
{
	bool input_done = false;
	for (;;) {
		if (!input_done && p->next_fill - p->next_drain < p->window) {
			int status = fill_next(p, err);
			if (status == 1)
				input_done = true;
			else if (status != 0)
				return status;
		} else if (p->next_drain < p->next_fill) {
			int status = drain_oldest(p, err);
			if (status != 0)
				return status;
		} else {
			return 0;
		}
	}
}

int pp_pool_run(const pp_pool_ops *ops, void *opaque, unsigned threads,
		size_t window, void *slots, size_t slot_size, pp_error *err)
{
	pool p = {
		.ops = ops, .opaque = opaque, .slots = slots,
		.slot_size = slot_size, .window = window,
	};
	if (threads == 0 || window == 0)
		return pp_fail(err, PP_ERR_USAGE, "pool needs threads and slots");
	pthread_t *workers = calloc(threads, sizeof *workers);
	p.states = calloc(window, sizeof *p.states);
	p.slot_errors = calloc(window, sizeof *p.slot_errors);
	p.slot_status = calloc(window, sizeof *p.slot_status);
	if (!workers || !p.states || !p.slot_errors || !p.slot_status) {
		free(workers);
		free(p.states);
		free(p.slot_errors);
		free(p.slot_status);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.ready, NULL);
	pthread_cond_init(&p.finished, NULL);

	int status = 0;
	unsigned started = 0;
	for (; started < threads; started++) {
		if (pthread_create(&workers[started], NULL, worker_main, &p)) {
			status = pp_fail(err, PP_ERR_NOMEM,
					 "cannot start worker thread");
			break;
		}
	}
	if (status == 0)
		status = run_jobs(&p, err);

	pthread_mutex_lock(&p.lock);
	p.stopping = true;
	pthread_cond_broadcast(&p.ready);
	pthread_mutex_unlock(&p.lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i], NULL);

	pthread_cond_destroy(&p.finished);
	pthread_cond_destroy(&p.ready);
	pthread_mutex_destroy(&p.lock);
	free(workers);
	free(p.states);
	free(p.slot_errors);
	free(p.slot_status);
	return status;
}

unsigned pp_online_cores(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	return cores > 0 ? (unsigned)cores : 1;
}
