/*
 * appliance.h - what partpack and partpatch ask of the libguestfs appliance
 * (guestfs.c): the partition a mountpoint, label or UUID names, and file
 * edits on a partition's filesystem.
 *
 * Every string goes to libguestfs as one argument of a C call: nothing here
 * is ever parsed as a command, whatever an image or a user puts in it.
 * libguestfs itself is loaded (dlopen) on the first open, so that neither
 * the library nor the tools depend on it.  One handle is for one thread.
 */
#ifndef PARTPACK_APPLIANCE_H
#define PARTPACK_APPLIANCE_H

#include "base.h"

typedef struct pp_guestfs pp_guestfs;

/* Launches the appliance on the image file (format: qemu's name for it,
 * "raw" for a plain file), read-only, falling back to TCG once when the
 * user has not chosen a backend (a notice says so). */
int pp_guestfs_open(const char *image_path, const char *format,
		    pp_guestfs **handle, pp_error *err);

/* The same on a raw image served by an NBD server on the unix socket at
 * socket_path, read-write; image_name labels messages. */
int pp_guestfs_open_nbd(const char *socket_path, const char *image_name,
			pp_guestfs **handle, pp_error *err);

/* Whether the handle runs under TCG because the first launch failed: a
 * later launch of the same run can start there. */
bool pp_guestfs_retried_tcg(const pp_guestfs *handle);

/* /MOUNTPOINT, /dev/..., label:L or uuid:U to the partition holding it.
 * When nothing matches, the message says what inspection found. */
int pp_guestfs_resolve(pp_guestfs *handle, const char *selector,
		       pp_range *range, pp_error *err);

/* Mounts the filesystem of the partition starting at image offset
 * partition_offset on /; *number is its N in /dev/sdaN. */
int pp_guestfs_mount(pp_guestfs *handle, uint64_t partition_offset,
		     unsigned *number, pp_error *err);

/* File operations on what is mounted, as virt-customize's. */
int pp_guestfs_upload(pp_guestfs *handle, const char *local,
		      const char *remote, pp_error *err);
int pp_guestfs_mkdir(pp_guestfs *handle, const char *dir, pp_error *err);
int pp_guestfs_remove(pp_guestfs *handle, const char *path, pp_error *err);
int pp_guestfs_copy_in(pp_guestfs *handle, const char *local,
		       const char *remote_dir, pp_error *err);

/* Unmounts everything and shuts the appliance down, so that every write
 * has reached the disk; after it the handle can only be closed. */
int pp_guestfs_finish(pp_guestfs *handle, pp_error *err);

void pp_guestfs_close(pp_guestfs *handle);

#endif
