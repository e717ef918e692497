/*
 * edit.h - partpatch's guest-side work: mountpoint selectors and file edits,
 * done by the libguestfs appliance on the archive itself, served by nbdkit
 * through the partpack filter.  One appliance launch per run.
 */
#ifndef PARTPACK_EDIT_H
#define PARTPACK_EDIT_H

#include "partpack.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The file operations, modelled on virt-customize's. */
typedef enum edit_kind {
	EDIT_UPLOAD,            /* --upload LOCAL:REMOTE */
	EDIT_WRITE,             /* --write REMOTE:CONTENT */
	EDIT_MKDIR,             /* --mkdir DIR (with parents) */
	EDIT_DELETE,            /* --delete PATH (recursively) */
	EDIT_COPY_IN,           /* --copy-in LOCAL:REMOTEDIR */
	EDIT_SCRIPT,            /* --script FILE: guestfish commands */
} edit_kind;

typedef struct edit_op {
	edit_kind kind;
	const char *arg;        /* the option's argument, as given */
} edit_op;

/* One write the edit made to the image, to apply as part of a patch. */
typedef struct edit_write {
	uint64_t offset;
	size_t length;
	const uint8_t *data;
} edit_write;

typedef struct edit_result {
	pp_range partition;     /* the partition the selector names */
	unsigned number;        /* its number, as in /dev/sdaN */
	edit_write *writes;     /* in the order the guest made them */
	size_t write_count;
	bool refused;           /* a write touched compressed data: */
	uint64_t refused_offset;        /* the write's offset */
	uint64_t refused_byte;          /* its first byte not stored */
	void *mapping;          /* private */
	size_t mapping_len;
} edit_result;

/* Whether a --partition selector needs the appliance when it is asked
 * for (--appliance): a mountpoint, label:, uuid: or another /dev/ name,
 * as pp_classify_selector tells them; the rest is the partition table's. */
bool edit_selector_needs_guest(const char *selector);

/* Checks an operation's argument (LOCAL:REMOTE and the like); exits with a
 * usage error naming the option if it is malformed. */
void edit_check_op(const edit_op *op);

/*
 * Checks the local files the operations name, before anything is opened
 * or launched: each exists, can be read and is of the right kind (a file
 * for --upload and --script, a file or directory for --copy-in), and a
 * script's lines are whole lines guestfish reads as such.  Returns an exit
 * status (cli.h), having printed a message on failure.
 */
int edit_check_files(const edit_op *ops, size_t count);

/*
 * Resolves selector to a partition of the archive at path (open as
 * archive, whose lock the caller holds throughout, or with --output a
 * clone of it while the caller holds a shared lock on path) and, if
 * count > 0, mounts that partition's filesystem at / and runs the
 * operations on it, in one appliance launch (two for a --script with a
 * selector the appliance resolves).  The archive is never written: the
 * writes the guest made come back in *result, to be applied as one patch.
 * Returns an exit status (cli.h), having printed a message on failure.
 */
int edit_run(pp_archive *archive, const char *path, const char *selector,
	     const edit_op *ops, size_t count, bool verbose,
	     edit_result *result);
void edit_result_free(edit_result *result);

#endif
