/* journal.h - the undo record of a patch (journal.c). */
#ifndef PARTPACK_JOURNAL_H
#define PARTPACK_JOURNAL_H

#include "base.h"

typedef struct pp_journal pp_journal;

/* ".NAME.partpatch-undo" beside path: where a file's record goes;
 * malloc'd, NULL when out of memory. */
char *pp_undo_path_beside(const char *path);
/* The SHA-256 that binds a record to its archive (see journal.c): of the
 * first and last 64 KiB of the archive's size bytes, each byte that one
 * of the entries covers read as zero. */
int pp_journal_hash_ends(const pp_archive *archive, uint64_t size,
			 const pp_range *entries, size_t count,
			 uint8_t digest[32], pp_error *err);

int pp_journal_begin(pp_archive *archive, pp_journal **journal,
		     pp_error *err);
/* Saves the old bytes of a range about to be overwritten. */
int pp_journal_add(pp_journal *journal, uint64_t foffset, const void *old,
		   size_t len, pp_error *err);
/* Makes the record complete and durable: writes may begin after this. */
int pp_journal_commit(pp_journal *journal, pp_error *err);
/* The writes are durable: drops the record. */
int pp_journal_finish(pp_journal *journal, pp_error *err);
/* Drops a record that was never committed. */
void pp_journal_abort(pp_journal *journal);
/* Undoes a committed patch that failed half way: restores, drops. */
int pp_journal_rollback(pp_journal *journal, pp_archive *archive,
			pp_error *err);
/* Undoes an interrupted patch found beside the archive, if any, when its
 * record is bound to the archive; refuses one that is not, and ignores
 * (with a notice) one that is not the archive owner's.  archive->file_size
 * must be known. */
int pp_journal_recover(pp_archive *archive, bool may_write, bool *recovered,
		       pp_error *err);

#endif
