/*
 * container.c - what the containers share below the seam
 * (pp_container_ops, container.h): helpers a container may put in its
 * ops, and the one way to decode a whole block, which every reader of
 * whole blocks (read.c, unpack.c, reuse.c) goes through.  In the formats
 * layer of lib/LAYERS, under every container: nothing here names a format
 * or calls a container but through its ops, so the containers never
 * depend on the pieces that use them (pack.c, reuse.c, read.c).
 */
#include "container.h"
#include "archive.h"
#include "blocks.h"

#include <string.h>

int pp_write_no_header(const pp_pack_options *options, int fd,
		       const char *name, pp_error *err)
{
	(void)options;
	(void)fd;
	(void)name;
	(void)err;
	return 0;
}

int pp_reuse_fits_as_is(const pp_block *block, pp_block_record *record,
			enum pp_reuse_fit *fit)
{
	*record = (pp_block_record){
		.usize = block->usize,
		.fsize = block->fsize,
		.index_size = block->fsize,
		.stored = false,
	};
	*fit = PP_REUSE_YES;
	return 0;
}

int pp_fill_sink_fn(void *opaque, const uint8_t *data, size_t len,
		    pp_error *err)
{
	pp_fill_sink *f = opaque;
	(void)err;
	size_t piece = PP_MIN(len, f->room - f->filled);
	memcpy(f->dest + f->filled, data, piece);
	f->filled += piece;
	return 0;
}

int pp_decode_block(pp_archive *archive, size_t block, uint8_t *buf,
		    pp_error *err)
{
	if (archive->ops->decode_whole)
		return archive->ops->decode_whole(archive, block, buf, err);
	pp_fill_sink f = { .dest = buf,
			   .room = (size_t)archive->blocks[block].usize };
	return archive->ops->decode(archive, block, UINT64_MAX,
				    pp_fill_sink_fn, &f, err);
}
