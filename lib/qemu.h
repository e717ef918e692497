/*
 * qemu.h - asking qemu's own tools about a disk image (qemu.c).
 *
 * partpack reads no image format but raw itself: qemu-img says what a file
 * is and whether it is sound, qemu-nbd (nbdsource.c) serves its guest
 * disk.  Every command is an argv array run without a shell; a file name
 * reaches qemu as a path, never as an option or a protocol ("nbd:...",
 * "json:{...}").
 */
#ifndef PARTPACK_QEMU_H
#define PARTPACK_QEMU_H

#include "base.h"

/* The longest format name taken (qemu's driver names are short words). */
#define PP_QEMU_FORMAT_MAX 32

/* Whether name can be a qemu format: 1..31 of [a-z0-9_-]. */
bool pp_qemu_format_ok(const char *name);

/*
 * What the image at path is, in qemu's words: its format (forced, when
 * format is not NULL, else probed by qemu-img info) into format_out
 * (PP_QEMU_FORMAT_MAX bytes).  For a format other than raw it also walks
 * the backing chain one file at a time, before qemu opens the whole of it:
 * each backing file must be a local file (a backing "file" that is a URL
 * or a json: description is refused, with its name), and each file of the
 * chain passes `qemu-img check` (corruption, such as a truncated qcow2,
 * fails with qemu's message).  Without qemu-img, probing answers raw and
 * *have_qemu is false; a forced format other than raw then fails.
 */
int pp_qemu_probe(const char *path, const char *format, char *format_out,
		  bool *have_qemu, pp_error *err);

/*
 * Why qemu cannot open the image (an encrypted qcow2 without its key, a
 * missing backing file): qemu-io opens it read-only as qemu-nbd does and
 * its first line of complaint becomes *err; 0 if it opens fine.
 */
int pp_qemu_open_error(const char *path, const char *format, pp_error *err);

/*
 * Writes the raw image in raw_fd (its holes read as zeros) as an image of
 * format at out_fd with qemu-img convert: zero blocks are left
 * unallocated.  Both are regular files; out_fd is replaced whole.
 * out_name labels messages.
 */
int pp_qemu_convert(int raw_fd, int out_fd, const char *out_name,
		    const char *format, pp_error *err);

/* A path qemu takes as a file: "./NAME" for a relative name, so that
 * "nbd:x" or "json:{...}" is never read as a protocol.  malloc'd. */
char *pp_qemu_file_name(const char *path);

#endif
