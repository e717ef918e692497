/* ptable.h - reading an image's partition table (ptable.c). */
#ifndef PARTPACK_PTABLE_H
#define PARTPACK_PTABLE_H

#include "io.h"

/* What partpack.h hands out as pp_partition_info. */
typedef pp_partition_info pp_partition;

/* Reads the GPT (or, failing that, the MBR) of an image.  *parts is
 * malloc'd; entries are in partition-number order, empty slots skipped. */
int pp_read_partitions(pp_read_fn read_at, void *opaque, uint64_t image_size,
		       const char *image_name, pp_partition **parts,
		       size_t *count, pp_error *err);

#endif
