/*
 * gzscan.h - the scanner of gzip files partpack did not write (gzscan.c),
 * for gz.c, which calls it for a file with no partpack index.
 */
#ifndef PARTPACK_GZSCAN_H
#define PARTPACK_GZSCAN_H

#include "blocks.h"

/*
 * One pass over the whole file: adds one block per member to the
 * archive's table, and appends to stored (the caller's, in file order,
 * which is uncompressed order too) the bytes of stored deflate blocks that
 * no later compressed data copies from.  On failure both may hold part of
 * what was found.
 */
int pp_gz_scan(pp_archive *archive, pp_extent_list *stored, pp_error *err);

#endif
