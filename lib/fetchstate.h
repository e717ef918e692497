/*
 * fetchstate.h - what a fetch keeps beside its output while it works
 * (fetchstate.c): ".NAME.partcat-partial", the result being assembled at
 * its final offsets, and ".NAME.partcat-state", a few lines saying what it
 * is a partial copy of and which blocks of it are done.  Both are created
 * exclusively and never opened through a symbolic link; the state file is
 * locked while a fetch works, so two runs never share them.
 *
 * One thread at a time per state.
 */
#ifndef PARTPACK_FETCHSTATE_H
#define PARTPACK_FETCHSTATE_H

#include "check.h"

typedef struct pp_fetch_state pp_fetch_state;

/* A block an earlier run finished, and the check of its bytes as that run
 * recorded it (check_len 0: none recorded). */
typedef struct pp_fetch_done {
	bool done;
	uint8_t check[PP_CHECK_SIZE_MAX];
	size_t check_len;
} pp_fetch_done;

/*
 * Takes over the files beside out_path when the state's identity (a
 * digest of what the partial is a copy of) is this one, else starts both
 * afresh (the partial cut to size bytes).  *done (calloc'd, block_count
 * entries) says which blocks an earlier run finished; *resumed whether
 * there was such a run.  PP_ERR_BUSY when another fetch holds them.
 */
int pp_fetch_state_open(const char *out_path, const uint8_t identity[32],
			uint64_t size, size_t block_count,
			pp_fetch_state **state, int *partial_fd,
			pp_fetch_done **done, bool *resumed, pp_error *err);
/* What a block's record says of its bytes: a 128-bit XXH3, enough to
 * notice bytes a crash kept from the disk (the result as a whole is what
 * --sha256 verifies), and ten times as fast as SHA-256. */
#define PP_FETCH_RECORD_SIZE 16
void pp_fetch_record_of(const void *data, size_t len,
			uint8_t record[PP_FETCH_RECORD_SIZE]);
/* The same of bytes [at, at + len) of fd. */
int pp_fetch_record_of_file(int fd, uint64_t at, uint64_t len,
			    uint8_t record[PP_FETCH_RECORD_SIZE],
			    pp_error *err);

/* Records a finished block (and the check of its bytes, if any). */
int pp_fetch_state_done(pp_fetch_state *state, size_t block,
			const uint8_t *check, size_t check_len,
			pp_error *err);
/* The result is complete: the partial becomes out_path (an existing one
 * replaced only with force) with the mode a new file gets, and the state
 * goes.  The state is freed whatever happens. */
int pp_fetch_state_commit(pp_fetch_state *state, bool force, pp_error *err);
/* Keeps both files for a later run, and frees the state. */
void pp_fetch_state_close(pp_fetch_state *state);
/* Removes both files (the result was wrong), and frees the state. */
void pp_fetch_state_discard(pp_fetch_state *state);

#endif
