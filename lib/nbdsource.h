/*
 * nbdsource.h - an image served by qemu-nbd, read with libnbd
 * (nbdsource.c).
 *
 * qemu-nbd opens the image read-only, whatever its format and backing
 * chain, and serves the guest's disk over NBD on a socket libnbd made for
 * it (systemd socket activation: no port, no name anyone else sees, no
 * race with the server's start).  Reads may come from several threads at
 * once: each takes a free connection of its own.
 */
#ifndef PARTPACK_NBDSOURCE_H
#define PARTPACK_NBDSOURCE_H

#include "base.h"

typedef struct pp_nbd pp_nbd;

/* Starts qemu-nbd on path (format: qemu's name for it, already probed) and
 * connects up to `connections` times (1 unless the server offers
 * multi-conn).  A server that cannot open the image fails with qemu's
 * reason (qemu.c: pp_qemu_open_error). */
int pp_nbd_open(const char *path, const char *format, unsigned connections,
		pp_nbd **nbd, pp_error *err);
/* Stops the server (closing the last connection ends it). */
void pp_nbd_close(pp_nbd *nbd);
/* The guest disk's size in bytes. */
uint64_t pp_nbd_size(const pp_nbd *nbd);
/* Reads exactly len bytes at offset; thread-safe. */
int pp_nbd_pread(pp_nbd *nbd, void *buf, size_t len, uint64_t offset,
		 pp_error *err);
/* The ranges that may hold data, from block status (base:allocation):
 * everything the server does not say reads as zeros.  Sorted, merged;
 * *extents is malloc'd.  Thread-safe, as reads. */
int pp_nbd_data_extents(pp_nbd *nbd, pp_range **extents, size_t *count,
			pp_error *err);

#endif
