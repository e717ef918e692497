/*
 * pending.h - the writes a connection of the partpack filter has taken and
 * not yet applied, laid over what it reads (tools/nbdkit/pending.c).
 *
 * A pending set is used by one connection, whose requests nbdkit
 * serialises: no call is thread-safe.  Functions that can fail return 0,
 * or -1 with errno set.
 */
#ifndef PARTPACK_NBDKIT_PENDING_H
#define PARTPACK_NBDKIT_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pending pending;

/*
 * An empty set that holds the bytes written in memory (save_fd < 0), or
 * streams them to save_fd, an empty file open for reading and writing, in
 * the save file's layout (pending.c), whose first line it writes now.
 */
pending *pending_new(int save_fd);
/* Frees the set; the save file, if any, stays open (the caller's). */
void pending_free(pending *set);

/* The memory the set holds: the bytes written, if they are held in memory,
 * and a little per run. */
uint64_t pending_held(const pending *set);
/* How much pending_write of [offset, offset + count) would add to it. */
uint64_t pending_cost(pending *set, uint64_t offset, uint32_t count);

/* Takes a write: overwrites what the set holds of the range in place,
 * adds the rest.  On failure part of it may have been taken. */
int pending_write(pending *set, const void *buf, uint32_t count,
		  uint64_t offset);
/* Lays what the set holds of [offset, offset + count) over buf. */
int pending_read(pending *set, void *buf, uint32_t count, uint64_t offset);
/* Does the set hold any byte of [offset, offset + length)? */
bool pending_overlaps(pending *set, uint64_t offset, uint64_t length);

/* The runs held, at most one per write taken. */
size_t pending_count(const pending *set);
/* Calls apply on each run in offset order (runs never overlap), until one
 * returns non-zero, which it returns.  Memory only. */
int pending_each(pending *set,
		 int (*apply)(void *opaque, uint64_t offset, const void *data,
			      uint32_t length),
		 void *opaque);
/* Drops every run (they were applied, or cannot be). */
void pending_clear(pending *set);

/* The save file: records the first refused write (its offset and its
 * first byte that is not stored), and marks the file complete. */
int pending_save_refused(pending *set, uint64_t offset, uint64_t byte);
int pending_save_end(pending *set);

#endif
