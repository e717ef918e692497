/*
 * pending.c - the writes a connection has taken and not yet applied, as an
 * interval map over the image.
 *
 * The map is a set of runs that never overlap, in a red-black tree ordered
 * by offset (the BSD <sys/tree.h> macros, from libbsd's headers: nothing to
 * link).  A write first overwrites in place whatever runs it meets, then
 * adds one run for each stretch between them.  Runs are never split nor
 * merged, so a run is at most one write long and there are at most as many
 * runs as writes; the bytes held are the distinct bytes written, however
 * often a guest rewrites the same blocks (a filesystem's journal, its
 * superblock).  Reads and block status find the runs over a range in
 * logarithmic time, then visit only those.
 *
 * The runs' bytes live in memory, just after each run's node, or, for
 * partpack-save-writes, in the save file: then memory holds only the nodes,
 * and each run's node remembers where its bytes are in the file.  The save
 * file is what a program reads back to apply the writes itself (partpatch
 * does, as one transaction):
 *
 *   "partpack-writes 1\n"         first
 *   "write OFFSET LENGTH\n"       and LENGTH bytes: a run, added as
 *                                 writes come (its bytes may be rewritten
 *                                 in place later: replaying the records in
 *                                 order gives the map, since a later record
 *                                 holds only bytes no earlier live run has)
 *   "refused OFFSET BYTE\n"       where a write was refused: the first
 *                                 one's offset, and its first byte not
 *                                 stored (anywhere between the records)
 *   "end\n"                       last: the file is complete
 */
#include "pending.h"

#include <bsd/sys/tree.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct run {
	RB_ENTRY(run) link;
	uint64_t offset;            /* in the image */
	uint64_t file_offset;       /* of its bytes in the save file */
	uint32_t length;
	uint8_t data[];             /* its bytes, when held in memory */
} run;

static int compare_runs(const run *a, const run *b)
{
	return a->offset < b->offset ? -1 : a->offset > b->offset;
}

RB_HEAD(run_tree, run);
RB_PROTOTYPE(run_tree, run, link, compare_runs)
RB_GENERATE(run_tree, run, link, compare_runs)

/* A node and malloc's own few words for it. */
#define RUN_COST (sizeof(run) + 2 * sizeof(void *))

struct pending {
	struct run_tree runs;
	size_t count;
	uint64_t held;
	int save_fd;                /* -1: the bytes are in memory */
	uint64_t save_end;          /* where the next record goes */
};

/* ---- the save file ---------------------------------------------------- */

/* Reads (read_to) or writes (write_from) exactly len bytes at offset. */
static int transfer_at(int fd, uint8_t *read_to, const uint8_t *write_from,
		       size_t len, uint64_t offset)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = read_to ?
			pread(fd, read_to + done, len - done,
			      (off_t)(offset + done)) :
			pwrite(fd, write_from + done, len - done,
			       (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? (errno = EIO, -1) : -1;
		done += (size_t)n;
	}
	return 0;
}

static int write_at(int fd, const void *buf, size_t len, uint64_t offset)
{
	return transfer_at(fd, NULL, buf, len, offset);
}

static int read_at(int fd, void *buf, size_t len, uint64_t offset)
{
	return transfer_at(fd, buf, NULL, len, offset);
}

/* Appends a text line to the save file. */
static int save_line(pending *set, const char *line)
{
	size_t len = strlen(line);
	if (write_at(set->save_fd, line, len, set->save_end))
		return -1;
	set->save_end += len;
	return 0;
}

int pending_save_refused(pending *set, uint64_t offset, uint64_t byte)
{
	char line[64];
	snprintf(line, sizeof line, "refused %" PRIu64 " %" PRIu64 "\n",
		 offset, byte);
	return save_line(set, line);
}

int pending_save_end(pending *set)
{
	return save_line(set, "end\n");
}

/* ---- the set ---------------------------------------------------------- */

pending *pending_new(int save_fd)
{
	pending *set = calloc(1, sizeof *set);
	if (!set)
		return NULL;
	RB_INIT(&set->runs);
	set->save_fd = save_fd;
	if (save_fd >= 0 && save_line(set, "partpack-writes 1\n")) {
		free(set);
		return NULL;
	}
	return set;
}

void pending_clear(pending *set)
{
	run *r, *after;
	RB_FOREACH_SAFE(r, run_tree, &set->runs, after) {
		RB_REMOVE(run_tree, &set->runs, r);
		free(r);
	}
	set->count = 0;
	set->held = 0;
}

void pending_free(pending *set)
{
	if (!set)
		return;
	pending_clear(set);
	free(set);
}

uint64_t pending_held(const pending *set)
{
	return set->held;
}

size_t pending_count(const pending *set)
{
	return set->count;
}

int pending_each(pending *set,
		 int (*apply)(void *opaque, uint64_t offset, const void *data,
			      uint32_t length),
		 void *opaque)
{
	run *r;
	RB_FOREACH(r, run_tree, &set->runs) {
		int status = apply(opaque, r->offset, r->data, r->length);
		if (status)
			return status;
	}
	return 0;
}

/* ---- walking a range -------------------------------------------------- */

/* A walk over [at, end) cuts it into pieces, each inside one run or
 * outside them all.  next is the first run ending after at, if any. */
typedef struct walk {
	pending *set;
	uint64_t at, end;
	run *next;
} walk;

typedef struct piece {
	uint64_t offset;
	uint64_t length;
	run *run;                   /* NULL: no run holds these bytes */
} piece;

static walk walk_start(pending *set, uint64_t offset, uint64_t length)
{
	/* The run starting at or after offset, or the one before it if that
	 * reaches past offset. */
	run key = { .offset = offset };
	run *after = RB_NFIND(run_tree, &set->runs, &key);
	run *before = after ? RB_PREV(run_tree, &set->runs, after) :
		RB_MAX(run_tree, &set->runs);
	bool covers = before && before->offset + before->length > offset;
	return (walk){ .set = set, .at = offset, .end = offset + length,
		       .next = covers ? before : after };
}

static bool walk_next(walk *w, piece *out)
{
	if (w->at >= w->end)
		return false;
	run *r = w->next;
	uint64_t end;
	if (r && r->offset <= w->at) {
		end = r->offset + r->length < w->end ?
			r->offset + r->length : w->end;
		w->next = RB_NEXT(run_tree, &w->set->runs, r);
	} else {
		end = r && r->offset < w->end ? r->offset : w->end;
		r = NULL;
	}
	*out = (piece){ .offset = w->at, .length = end - w->at, .run = r };
	w->at = end;
	return true;
}

/* ---- requests --------------------------------------------------------- */

uint64_t pending_cost(pending *set, uint64_t offset, uint32_t count)
{
	uint64_t cost = 0;
	piece p;
	for (walk w = walk_start(set, offset, count); walk_next(&w, &p);)
		if (!p.run)
			cost += RUN_COST + (set->save_fd < 0 ? p.length : 0);
	return cost;
}

bool pending_overlaps(pending *set, uint64_t offset, uint64_t length)
{
	piece p;
	for (walk w = walk_start(set, offset, length); walk_next(&w, &p);)
		if (p.run)
			return true;
	return false;
}

/* Overwrites part of a run in place. */
static int overwrite(pending *set, const piece *p, const uint8_t *from)
{
	uint64_t within = p->offset - p->run->offset;
	if (set->save_fd < 0) {
		memcpy(p->run->data + within, from, (size_t)p->length);
		return 0;
	}
	return write_at(set->save_fd, from, (size_t)p->length,
			p->run->file_offset + within);
}

/* Adds a run of bytes no run holds yet. */
static int add_run(pending *set, const piece *p, const uint8_t *from)
{
	bool in_memory = set->save_fd < 0;
	run *r = malloc(sizeof *r + (in_memory ? p->length : 0));
	if (!r)
		return -1;
	*r = (run){ .offset = p->offset, .length = (uint32_t)p->length };
	if (in_memory) {
		memcpy(r->data, from, (size_t)p->length);
	} else {
		char line[64];
		snprintf(line, sizeof line, "write %" PRIu64 " %" PRIu32 "\n",
			 r->offset, r->length);
		if (save_line(set, line) ||
		    write_at(set->save_fd, from, r->length, set->save_end)) {
			free(r);
			return -1;
		}
		r->file_offset = set->save_end;
		set->save_end += r->length;
	}
	RB_INSERT(run_tree, &set->runs, r);
	set->count++;
	set->held += RUN_COST + (in_memory ? r->length : 0);
	return 0;
}

int pending_write(pending *set, const void *buf, uint32_t count,
		  uint64_t offset)
{
	const uint8_t *bytes = buf;
	piece p;
	/* A run added for a gap lies before w.next: the walk goes on. */
	for (walk w = walk_start(set, offset, count); walk_next(&w, &p);) {
		const uint8_t *from = bytes + (p.offset - offset);
		if (p.run ? overwrite(set, &p, from) : add_run(set, &p, from))
			return -1;
	}
	return 0;
}

int pending_read(pending *set, void *buf, uint32_t count, uint64_t offset)
{
	uint8_t *bytes = buf;
	piece p;
	for (walk w = walk_start(set, offset, count); walk_next(&w, &p);) {
		if (!p.run)
			continue;
		uint8_t *to = bytes + (p.offset - offset);
		uint64_t within = p.offset - p.run->offset;
		if (set->save_fd < 0)
			memcpy(to, p.run->data + within, (size_t)p.length);
		else if (read_at(set->save_fd, to, (size_t)p.length,
				 p.run->file_offset + within))
			return -1;
	}
	return 0;
}
