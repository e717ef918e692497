/* unpack.h - whole blocks decoded in order on worker threads (unpack.c;
 * pp_extract is public). */
#ifndef PARTPACK_UNPACK_H
#define PARTPACK_UNPACK_H

#include "base.h"

/*
 * Whole blocks in order, for unpacking (pp_extract) and digests: blocks
 * [first, end) are decoded on `threads` workers (pool.c, 0: one per
 * online core) and handed to the sink in order, each as its image offset,
 * bytes and length.  Blocks known to be all zeros (pp_map_block_is_zero)
 * are not decoded: the sink gets data NULL and is_zero true.  A block
 * larger than PP_DECODE_BUFFER_MAX is not buffered whole but decoded on
 * the calling thread, its bytes fed to the sink in pieces as they come
 * (with a notice, once): an archive made of one huge block (a foreign
 * single-block .xz) still unpacks in bounded memory.  Workers read
 * through pp_archive_read, so the archive's pread must allow concurrent
 * calls (pp_io says so).
 */
typedef int (*pp_block_sink_fn)(void *opaque, uint64_t uoffset,
				const uint8_t *data, size_t len, bool is_zero,
				pp_error *err);
int pp_decode_blocks(pp_archive *archive, size_t first, size_t end,
		     unsigned threads, pp_block_sink_fn sink, void *opaque,
		     pp_error *err);

#endif
