/*
 * fsedit.h - partpatch's file operations without an appliance: ext2/3/4
 * and vfat partitions edited in process by the library (pp_fs), and
 * --exec, a command of the user's run on the partition's bytes in a file.
 * The appliance (edit.c) stays for every other filesystem, for --script
 * and behind --appliance.
 */
#ifndef PARTPACK_FSEDIT_H
#define PARTPACK_FSEDIT_H

#include "edit.h"

/* fsedit_run's answer when the partition holds neither ext nor vfat: the
 * caller takes the appliance path. */
#define FSEDIT_ELSEWHERE (-1)

/* Whether a --partition selector may need the appliance: a mountpoint
 * (the library reads the guest's fstab in process from an ext root, else
 * the appliance does) or a /dev/ name outside the partition table's
 * (/dev/sdb1, /dev/mapper/...); label: and uuid: are probed in process,
 * the rest is the table's.  pp_classify_selector tells the kinds. */
bool fsedit_selector_needs_guest(const char *selector);
/* Whether every operation can run in process (not --script). */
bool fsedit_can_run(const edit_op *ops, size_t count);

/* What an in-process edit wrote, for the bmap. */
typedef struct fsedit_written {
	pp_range *ranges;
	size_t count;
} fsedit_written;

/*
 * Runs the operations on the filesystem in partition (which selector
 * named, for messages) and adds the bytes they changed to txn.  Returns an exit status (a message printed), or
 * FSEDIT_ELSEWHERE with nothing done when the filesystem is not ext or
 * vfat.
 */
int fsedit_run(pp_archive *archive, const char *selector,
	       const pp_range *partition, const edit_op *ops, size_t count,
	       bool verbose, pp_patch_txn *txn, fsedit_written *written);
/*
 * Runs command through /bin/sh with $PARTITION naming a temporary file of
 * the partition's bytes, then adds the bytes that differ to txn.  A
 * command that fails, or a file whose size changed, adds nothing.
 */
int fsedit_exec(pp_archive *archive, const char *selector,
		const pp_range *partition, const char *command, bool verbose,
		pp_patch_txn *txn, fsedit_written *written);

#endif
