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
/*
 * The same blocks, their bytes handed to piece on the worker that decodes
 * them, in pieces as they are decoded (PP_DECODE_PIECE bytes is what the
 * decoders aim at; data NULL for a zero block: len zeros in one call).
 * Blocks go in any order, several at once; each block's pieces in order.
 * done runs on the calling thread in block order once a block was handed
 * on whole (data NULL; is_zero as for pp_decode_blocks), and may report
 * progress.  For a consumer that puts bytes where they belong whatever
 * the order (pwrite into a file): no buffer of a block's size (but what a
 * container's decode holds), and each piece is consumed while it is still
 * in the processor's cache.
 */
#define PP_DECODE_PIECE ((size_t)256 << 10)
typedef int (*pp_piece_fn)(void *opaque, uint64_t uoffset,
			   const uint8_t *data, size_t len, pp_error *err);
int pp_decode_pieces(pp_archive *archive, size_t first, size_t end,
		     unsigned threads, pp_piece_fn piece,
		     pp_block_sink_fn done, void *opaque, pp_error *err);

#endif
