/* read.h - random reads of the image through a handle's cache (read.c;
 * pp_pread is public). */
#ifndef PARTPACK_READ_H
#define PARTPACK_READ_H

#include "base.h"

/* Read.c's state of a handle: _invalidate forgets blocks [first, end),
 * which the patcher is about to write; _release frees it all (at pp_close,
 * through the handle's slot, or before a pass that would only add to it). */
void pp_read_invalidate(pp_archive *archive, size_t first, size_t end);
void pp_read_release(pp_archive *archive);

#endif
