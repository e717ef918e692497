/*
 * overlay.h - writes kept in memory over bytes read from elsewhere
 * (overlay.c).  The ext engine (fsext.c) gives libext2fs a disk whose
 * reads come from the archive and whose writes stay here; reads see the
 * writes.  Afterwards the written units are listed in order, so that the
 * engine can compare them with the archive and hand back what changed.
 */
#ifndef PARTPACK_OVERLAY_H
#define PARTPACK_OVERLAY_H

#include "base.h"

/* The unit of the overlay: ext's smallest block, and the superblock's
 * size and offset, so a write of any block size covers whole units. */
#define PP_OVERLAY_UNIT 1024

/* Where bytes not written come from: 0, or a pp_status with *err set. */
typedef int (*pp_overlay_read_fn)(void *opaque, void *buf, size_t len,
				  uint64_t offset, pp_error *err);

typedef struct pp_overlay pp_overlay;

pp_overlay *pp_overlay_new(pp_overlay_read_fn read, void *opaque);
void pp_overlay_free(pp_overlay *overlay);
/* Reads len bytes at offset: written units from memory, the rest from
 * below, in as few reads below as the runs allow. */
int pp_overlay_read(pp_overlay *overlay, void *buf, size_t len,
		    uint64_t offset, pp_error *err);
/* Keeps len bytes at offset; a unit written in part is read first. */
int pp_overlay_write(pp_overlay *overlay, const void *data, size_t len,
		     uint64_t offset, pp_error *err);
/* The written units' numbers (offset / PP_OVERLAY_UNIT), sorted;
 * malloc'd, NULL with *count 0 when nothing was written. */
int pp_overlay_units(const pp_overlay *overlay, uint64_t **units,
		     size_t *count, pp_error *err);
/* A written unit's bytes (PP_OVERLAY_UNIT of them), or NULL. */
const uint8_t *pp_overlay_unit(const pp_overlay *overlay, uint64_t unit);
/* Bytes held. */
uint64_t pp_overlay_bytes(const pp_overlay *overlay);

#endif
