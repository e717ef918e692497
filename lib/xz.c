/*
 * xz.c - the .xz container: writing blocks, reading the index, and finding
 * the LZMA2 uncompressed chunks that a patch may overwrite.
 *
 * An .xz file is one or more streams, each a 12-byte header, blocks, an
 * index and a 12-byte footer, optionally followed by zero padding.  The
 * index lists every block's unpadded and uncompressed size but no checks,
 * so rewriting a block's data and its check in place, without changing any
 * size, leaves the index, footer and every header CRC valid.
 *
 * A block is a header, LZMA2 data, padding to four bytes, and the check of
 * its uncompressed data.  LZMA2 data is a chain of chunks, each introduced
 * by a control byte:
 *
 *   0x00                  end of data
 *   0x01, 0x02            uncompressed chunk (with / without dictionary
 *                         reset): 2 bytes big-endian size-1, then the bytes
 *   0x80..0xFF            LZMA chunk: 5 bits of uncompressed size-1 in the
 *                         control, 2 more bytes of it, 2 bytes of
 *                         compressed size-1, a properties byte if the
 *                         control is 0xC0 or more, then compressed bytes
 *
 * Every chunk says how long it is, so the stored bytes of any block can be
 * found by hopping from chunk header to chunk header without decoding.
 */
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "container.h"
#include "error.h"
#include "io.h"

#include <lzma.h>
#include <stdlib.h>
#include <string.h>

#define XZ_STREAM_HEADER_SIZE LZMA_STREAM_HEADER_SIZE
#define XZ_IO_SIZE (1u << 20)

/* ---- writing ---------------------------------------------------------- */

static int lzma_failure(pp_error *err, enum pp_status status,
			const char *what, lzma_ret ret)
{
	const char *reason = ret == LZMA_MEM_ERROR ? "out of memory" :
		ret == LZMA_OPTIONS_ERROR ? "unsupported options" :
		ret == LZMA_DATA_ERROR ? "corrupt data" :
		ret == LZMA_BUF_ERROR ? "data ends early" :
		"internal liblzma error";
	return pp_fail(err, ret == LZMA_MEM_ERROR ? PP_ERR_NOMEM : status,
		       "%s: %s", what, reason);
}

static size_t xz_block_bound(const pp_pack_options *options, size_t usize)
{
	(void)options;
	return lzma_block_buffer_bound(usize);
}

/* The LZMA2 options of a compressed block of usize bytes. */
static int lzma2_options(const pp_pack_options *options, size_t usize,
			 lzma_options_lzma *lzma2, pp_error *err)
{
	uint32_t preset = (uint32_t)options->level |
		(options->extreme ? LZMA_PRESET_EXTREME : 0);
	if (lzma_lzma_preset(lzma2, preset))
		return pp_fail(err, PP_ERR_INTERNAL, "unsupported preset %d",
			       options->level);
	/* A dictionary larger than the block finds nothing more, but every
	 * decoder must allocate what the header asks for: xz -T0 -d once per
	 * thread.  Ask for no more than the block needs. */
	if (lzma2->dict_size > usize)
		lzma2->dict_size = (uint32_t)PP_MAX(usize, LZMA_DICT_SIZE_MIN);
	return 0;
}

/*
 * The block framing xz_encode_block writes: one LZMA2 filter (options in
 * lzma2) and the stream's check.  expected_header builds the same, so that
 * what it compares with a base's header is this encoder's by construction.
 * filters must outlive the block.
 */
static lzma_block our_block(const pp_pack_options *options,
			    lzma_options_lzma *lzma2, lzma_filter filters[2])
{
	filters[0] = (lzma_filter){ .id = LZMA_FILTER_LZMA2,
				    .options = lzma2 };
	filters[1] = (lzma_filter){ .id = LZMA_VLI_UNKNOWN };
	return (lzma_block){
		.version = 0,
		.check = (lzma_check)options->check,
		.filters = filters,
	};
}

static int xz_encode_block(const pp_pack_options *options, const uint8_t *in,
			   size_t usize, bool stored, uint8_t *out,
			   size_t *out_len, pp_block_record *record,
			   pp_error *err)
{
	lzma_options_lzma lzma2;
	int status = lzma2_options(options, usize, &lzma2, err);
	if (status)
		return status;
	lzma_filter filters[2];
	lzma_block block = our_block(options, &lzma2, filters);
	size_t out_pos = 0;
	/* Both encoders write the compressed and the uncompressed size into
	 * the block header, which is what lets xz -T0 -d decode blocks in
	 * parallel. */
	lzma_ret ret = stored ?
		lzma_block_uncomp_encode(&block, in, usize, out, &out_pos,
					 *out_len) :
		lzma_block_buffer_encode(&block, NULL, in, usize, out,
					 &out_pos, *out_len);
	if (ret != LZMA_OK)
		return lzma_failure(err, PP_ERR_INTERNAL, "encoding a block",
				    ret);
	*out_len = out_pos;
	*record = (pp_block_record){
		.usize = usize,
		.fsize = out_pos,
		.index_size = lzma_block_unpadded_size(&block),
		.stored = stored,
	};
	return 0;
}

static int xz_write_header(const pp_pack_options *options, int fd,
			   const char *name, pp_error *err)
{
	lzma_stream_flags flags = { .version = 0,
				    .check = (lzma_check)options->check };
	uint8_t header[XZ_STREAM_HEADER_SIZE];
	if (lzma_stream_header_encode(&flags, header) != LZMA_OK)
		return pp_fail(err, PP_ERR_USAGE, "unsupported check type");
	if (pp_write_full(fd, header, sizeof header))
		return pp_fail_errno(err, PP_ERR_IO, "%s: write error", name);
	return 0;
}

static int xz_write_trailer(const pp_pack_options *options,
			    const pp_block_record *records, size_t count,
			    int fd, const char *name, pp_error *err)
{
	lzma_index *index = lzma_index_init(NULL);
	if (!index)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = 0;
	for (size_t i = 0; status == 0 && i < count; i++) {
		lzma_ret ret = lzma_index_append(index, NULL,
						 records[i].index_size,
						 records[i].usize);
		if (ret != LZMA_OK)
			status = lzma_failure(err, PP_ERR_INTERNAL,
					      "building the index", ret);
	}
	size_t index_size = (size_t)lzma_index_size(index);
	uint8_t *trailer = status ? NULL :
		malloc(index_size + LZMA_STREAM_HEADER_SIZE);
	if (status == 0 && !trailer)
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	size_t pos = 0;
	if (status == 0) {
		lzma_ret ret = lzma_index_buffer_encode(index, trailer, &pos,
							index_size);
		lzma_stream_flags flags = {
			.version = 0,
			.backward_size = index_size,
			.check = (lzma_check)options->check,
		};
		if (ret == LZMA_OK)
			ret = lzma_stream_footer_encode(&flags, trailer + pos);
		if (ret != LZMA_OK)
			status = lzma_failure(err, PP_ERR_INTERNAL,
					      "writing the index", ret);
	}
	if (status == 0 &&
	    pp_write_full(fd, trailer, index_size + LZMA_STREAM_HEADER_SIZE))
		status = pp_fail_errno(err, PP_ERR_IO, "%s: write error", name);
	free(trailer);
	lzma_index_end(index, NULL);
	return status;
}

/* ---- reading the index ------------------------------------------------ */

static bool xz_probe(const uint8_t *head, size_t len)
{
	static const uint8_t magic[6] = { 0xFD, '7', 'z', 'X', 'Z', 0x00 };
	return len >= sizeof magic && memcmp(head, magic, sizeof magic) == 0;
}

static int read_at(pp_archive *archive, void *buf, size_t len,
		   uint64_t offset, pp_error *err)
{
	if (offset > archive->file_size || len > archive->file_size - offset)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: truncated: needs bytes up to %llu, file "
			       "has %llu", archive->path,
			       (unsigned long long)(offset + len),
			       (unsigned long long)archive->file_size);
	if (pp_archive_read(archive, buf, len, offset))
		return pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				     archive->path);
	return 0;
}

/*
 * The file is walked from its end: padding, footer, index, header, then
 * the stream before.  liblzma parses every one of those pieces here; only
 * the stepping between them is ours.  lzma_file_info_decoder (liblzma 5.4)
 * would do the stepping too, with padding and several streams, but it would
 * lose two things this walk has:
 *
 *  - A memory limit per index.  liblzma's index decoder allocates for the
 *    record count an index declares, and a record takes at least 2 bytes,
 *    so a limit from each index's own size refuses a lying count cheaply
 *    as corrupt data (the fuzz finding test-xz replays).  The file info
 *    decoder takes one limit for all streams together; the tightest one we
 *    could give it grows with the file, so in a large archive a lying
 *    count would become a huge allocation (or "out of memory") again.
 *  - Errors that say what is wrong and where: it returns LZMA_DATA_ERROR
 *    with no position, where this walk names the footer, index or header
 *    at fault and its byte offset.
 */

/* One stream's blocks, collected while walking the file backwards. */
typedef struct xz_stream {
	uint64_t start;             /* file offset of its header */
	lzma_index *index;
	lzma_check check;
} xz_stream;

/* Skips zero stream padding backwards from *end (a multiple of four). */
static int skip_stream_padding(pp_archive *archive, uint64_t *end,
			       pp_error *err)
{
	uint8_t word[4];
	while (*end >= 2 * XZ_STREAM_HEADER_SIZE) {
		int status = read_at(archive, word, 4, *end - 4, err);
		if (status)
			return status;
		if (memcmp(word, "\0\0\0\0", 4) != 0)
			return 0;
		*end -= 4;
	}
	return pp_fail(err, PP_ERR_FORMAT, "%s: no xz stream footer found",
		       archive->path);
}

/* Reads the stream that ends at end (its footer's last byte). */
static int read_stream(pp_archive *archive, uint64_t end, xz_stream *stream,
		       pp_error *err)
{
	uint8_t footer[XZ_STREAM_HEADER_SIZE], header[XZ_STREAM_HEADER_SIZE];
	lzma_stream_flags footer_flags, header_flags;
	int status = read_at(archive, footer, sizeof footer,
			     end - sizeof footer, err);
	if (status)
		return status;
	if (lzma_stream_footer_decode(&footer_flags, footer) != LZMA_OK)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: corrupt xz stream footer at byte %llu",
			       archive->path,
			       (unsigned long long)(end - sizeof footer));
	uint64_t index_size = footer_flags.backward_size;
	if (index_size > end - 2 * XZ_STREAM_HEADER_SIZE)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: xz index size %llu does not fit the file",
			       archive->path, (unsigned long long)index_size);
	uint64_t index_offset = end - sizeof footer - index_size;
	uint8_t *index_bytes = malloc(index_size);
	if (!index_bytes)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	status = read_at(archive, index_bytes, index_size, index_offset, err);
	/* liblzma allocates for the record count the index declares; a
	 * record takes at least 2 bytes, so more than index_size / 2 is a
	 * lie, and a memory limit for that many refuses it cheaply. */
	uint64_t memlimit = lzma_index_memusage(1, index_size / 2 + 1);
	size_t in_pos = 0;
	if (status == 0 &&
	    lzma_index_buffer_decode(&stream->index, &memlimit, NULL,
				     index_bytes, &in_pos, index_size) != LZMA_OK)
		status = pp_fail(err, PP_ERR_FORMAT,
				 "%s: corrupt xz index at byte %llu",
				 archive->path,
				 (unsigned long long)index_offset);
	free(index_bytes);
	if (status)
		return status;

	uint64_t blocks_size = lzma_index_total_size(stream->index);
	if (blocks_size > index_offset - XZ_STREAM_HEADER_SIZE)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: xz index lists more data than the file holds",
			       archive->path);
	stream->start = index_offset - blocks_size - XZ_STREAM_HEADER_SIZE;
	status = read_at(archive, header, sizeof header, stream->start, err);
	if (status)
		return status;
	if (lzma_stream_header_decode(&header_flags, header) != LZMA_OK ||
	    lzma_stream_flags_compare(&header_flags, &footer_flags) != LZMA_OK)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: xz stream header at byte %llu is corrupt or "
			       "does not match its footer", archive->path,
			       (unsigned long long)stream->start);
	stream->check = header_flags.check;
	return 0;
}

static int add_stream_blocks(pp_archive *archive, const xz_stream *stream,
			     uint64_t *uoffset, pp_error *err)
{
	enum pp_check check = (enum pp_check)stream->check;
	/* liblzma knows the field size of every check ID, the reserved ones
	 * too (xz file format 2.1.1.2): a block whose check nobody here can
	 * compute still has its place known, for reading. */
	uint32_t check_size = lzma_check_size(stream->check);
	if (check_size == UINT32_MAX)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: unsupported xz check type %d",
			       archive->path, (int)stream->check);
	lzma_index_iter iter;
	lzma_index_iter_init(&iter, stream->index);
	while (!lzma_index_iter_next(&iter, LZMA_INDEX_ITER_BLOCK)) {
		/* Offsets in a lone stream's index count from its header. */
		uint64_t foffset = stream->start +
			iter.block.compressed_file_offset;
		pp_block block = {
			.uoffset = *uoffset,
			.usize = iter.block.uncompressed_size,
			.foffset = foffset,
			.fsize = iter.block.total_size,
			.check_offset = foffset + iter.block.total_size -
				check_size,
			.check = check,
		};
		int status = pp_archive_add_block(archive, &block, err);
		if (status)
			return status;
		*uoffset += block.usize;
	}
	return 0;
}

typedef struct xz_stream_list {
	xz_stream *items;
	size_t count;
} xz_stream_list;

static void free_streams(xz_stream_list *streams)
{
	for (size_t i = 0; i < streams->count; i++)
		lzma_index_end(streams->items[i].index, NULL);
	free(streams->items);
}

static int xz_open(pp_archive *archive, pp_error *err)
{
	if (archive->file_size % 4 != 0)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: size is not a multiple of four: not a "
			       "complete xz file", archive->path);
	/* Streams are found from the end, so collect them, then number the
	 * blocks front to back. */
	xz_stream_list streams = { 0 };
	uint64_t end = archive->file_size;
	int status = 0;
	while (status == 0 && end > 0) {
		status = skip_stream_padding(archive, &end, err);
		if (status)
			break;
		xz_stream *items = realloc(streams.items,
					   (streams.count + 1) * sizeof *items);
		if (!items) {
			status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
			break;
		}
		streams.items = items;
		xz_stream *stream = &items[streams.count];
		*stream = (xz_stream){ 0 };
		status = read_stream(archive, end, stream, err);
		if (stream->index)
			streams.count++;
		end = stream->start;
	}
	uint64_t uoffset = 0;
	for (size_t i = streams.count; status == 0 && i-- > 0;)
		status = add_stream_blocks(archive, &streams.items[i],
					   &uoffset, err);
	free_streams(&streams);
	return status;
}

/* ---- reading blocks --------------------------------------------------- */

/* A decoded block header with its filter chain. */
typedef struct xz_block_header {
	lzma_block block;
	lzma_filter filters[LZMA_FILTERS_MAX + 1];
	uint8_t raw[LZMA_BLOCK_HEADER_SIZE_MAX];
} xz_block_header;

static void free_block_header(xz_block_header *header)
{
	for (size_t i = 0; i < LZMA_FILTERS_MAX; i++) {
		if (header->filters[i].id == LZMA_VLI_UNKNOWN)
			break;
		free(header->filters[i].options);
		header->filters[i].options = NULL;
	}
}

static int read_block_header(pp_archive *archive, size_t block_index,
			     xz_block_header *header, pp_error *err)
{
	const pp_block *b = &archive->blocks[block_index];
	*header = (xz_block_header){ 0 };
	header->filters[0].id = LZMA_VLI_UNKNOWN;
	int status = read_at(archive, header->raw, 1, b->foffset, err);
	if (status)
		return status;
	header->block.version = 1;
	header->block.check = (lzma_check)b->check;
	header->block.filters = header->filters;
	header->block.header_size = lzma_block_header_size_decode(header->raw[0]);
	if (header->raw[0] == 0 ||
	    header->block.header_size > b->check_offset - b->foffset)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: block %zu: bad block header size",
			       archive->path, block_index + 1);
	status = read_at(archive, header->raw + 1,
			 header->block.header_size - 1, b->foffset + 1, err);
	if (status)
		return status;
	lzma_ret ret = lzma_block_header_decode(&header->block, NULL,
						header->raw);
	if (ret != LZMA_OK)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: block %zu: corrupt or unsupported block "
			       "header", archive->path, block_index + 1);
	/* The index's sizes win; a header that disagrees is corrupt. */
	lzma_vli compressed = header->block.compressed_size;
	lzma_vli uncompressed = header->block.uncompressed_size;
	uint64_t data_room = b->check_offset - b->foffset -
		header->block.header_size;
	if ((compressed != LZMA_VLI_UNKNOWN &&
	     (compressed + 3) / 4 * 4 != data_room) ||
	    (uncompressed != LZMA_VLI_UNKNOWN && uncompressed != b->usize)) {
		free_block_header(header);
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: block %zu: header sizes disagree with the "
			       "index", archive->path, block_index + 1);
	}
	return 0;
}

/* Small positioned reads over a block, for hopping between chunk headers. */
typedef struct chunk_cursor {
	pp_archive *archive;
	uint64_t limit;             /* no chunk header reaches past this */
	uint64_t window_offset;
	size_t window_len;
	uint8_t window[512];
} chunk_cursor;

/* Points *bytes at [offset, offset + len) of the file, len <= 8. */
static int cursor_peek(chunk_cursor *cursor, uint64_t offset, size_t len,
		       const uint8_t **bytes, pp_error *err)
{
	if (offset + len > cursor->limit)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: LZMA2 chunk runs past its block at byte %llu",
			       cursor->archive->path, (unsigned long long)offset);
	if (offset < cursor->window_offset ||
	    offset + len > cursor->window_offset + cursor->window_len) {
		size_t want = (size_t)PP_MIN(sizeof cursor->window,
					     cursor->limit - offset);
		int status = read_at(cursor->archive, cursor->window, want,
				     offset, err);
		if (status)
			return status;
		cursor->window_offset = offset;
		cursor->window_len = want;
	}
	*bytes = cursor->window + (offset - cursor->window_offset);
	return 0;
}

/*
 * Lists the uncompressed chunks whose bytes can be overwritten without
 * changing anything else.  An uncompressed chunk also fills the LZMA
 * dictionary, so an LZMA chunk after it, before the next dictionary reset,
 * may copy its bytes: patching them would change that chunk's output too.
 * Such chunks are left out.  Dictionary resets are control 0x01 and LZMA
 * controls 0xE0 and up.
 */
static int xz_stored_extents(pp_archive *archive, size_t block_index,
			     pp_extent_list *list, pp_error *err)
{
	const pp_block *b = &archive->blocks[block_index];
	xz_block_header header;
	int status = read_block_header(archive, block_index, &header, err);
	if (status)
		return status;
	bool plain_lzma2 = header.filters[0].id == LZMA_FILTER_LZMA2 &&
		header.filters[1].id == LZMA_VLI_UNKNOWN;
	uint64_t data_start = b->foffset + header.block.header_size;
	free_block_header(&header);
	if (!plain_lzma2)
		return 0;  /* BCJ, delta...: stored bytes are not image bytes */

	chunk_cursor cursor = { .archive = archive, .limit = b->check_offset };
	uint64_t pos = data_start, produced = 0;
	size_t segment_first = list->count;
	for (;;) {
		const uint8_t *h;
		if ((status = cursor_peek(&cursor, pos, 1, &h, err)))
			return status;
		uint8_t control = h[0];
		if (control == 0x00)
			break;
		if (control == 0x01 || control >= 0xE0)
			segment_first = list->count;
		if (control == 0x01 || control == 0x02) {
			if ((status = cursor_peek(&cursor, pos, 3, &h, err)))
				return status;
			uint64_t size = ((uint64_t)h[1] << 8 | h[2]) + 1;
			if (produced + size > b->usize)
				break;
			status = pp_extent_append(list, b->uoffset + produced,
						  size, pos + 3, err);
			if (status)
				return status;
			produced += size;
			pos += 3 + size;
		} else if (control >= 0x80) {
			size_t header_len = control >= 0xC0 ? 6 : 5;
			if ((status = cursor_peek(&cursor, pos, header_len, &h,
						  err)))
				return status;
			uint64_t usize = ((uint64_t)(control & 0x1F) << 16 |
					  (uint64_t)h[1] << 8 | h[2]) + 1;
			uint64_t csize = ((uint64_t)h[3] << 8 | h[4]) + 1;
			if (control < 0xE0)
				list->count = segment_first;
			produced += usize;
			pos += header_len + csize;
		} else {
			break;  /* invalid control byte */
		}
	}
	uint64_t data_end = pos + 1;
	if (produced != b->usize || data_end > b->check_offset ||
	    b->check_offset - data_end >= 4)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: block %zu: LZMA2 chunks do not add up to "
			       "the sizes in the index", archive->path,
			       block_index + 1);
	return 0;
}

static int xz_decode(pp_archive *archive, size_t block_index, uint64_t limit,
		     pp_sink_fn sink, void *opaque, pp_error *err)
{
	const pp_block *b = &archive->blocks[block_index];
	xz_block_header header;
	int status = read_block_header(archive, block_index, &header, err);
	if (status)
		return status;
	uint64_t in_pos = b->foffset + header.block.header_size;
	uint64_t in_end = b->foffset + b->fsize;
	lzma_stream strm = LZMA_STREAM_INIT;
	lzma_ret ret = lzma_block_decoder(&strm, &header.block);
	uint8_t *in_buf = malloc(XZ_IO_SIZE), *out_buf = malloc(XZ_IO_SIZE);
	if (!in_buf || !out_buf)
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	else if (ret != LZMA_OK)
		status = lzma_failure(err, PP_ERR_FORMAT, archive->path, ret);
	uint64_t produced = 0;
	while (status == 0 && ret == LZMA_OK && produced < limit) {
		if (strm.avail_in == 0 && in_pos < in_end) {
			size_t want = (size_t)PP_MIN(XZ_IO_SIZE, in_end - in_pos);
			status = read_at(archive, in_buf, want, in_pos, err);
			strm.next_in = in_buf;
			strm.avail_in = want;
			in_pos += want;
		}
		strm.next_out = out_buf;
		strm.avail_out = XZ_IO_SIZE;
		ret = lzma_code(&strm, strm.avail_in || in_pos < in_end ?
				LZMA_RUN : LZMA_FINISH);
		size_t got = XZ_IO_SIZE - strm.avail_out;
		got = (size_t)PP_MIN(got, limit - produced);
		if (status == 0 && got > 0)
			status = sink(opaque, out_buf, got, err);
		produced += got;
	}
	if (status == 0 && ret != LZMA_OK && ret != LZMA_STREAM_END)
		status = pp_fail(err, ret == LZMA_MEM_ERROR ? PP_ERR_NOMEM :
				 PP_ERR_CHECK,
				 "%s: block %zu (uncompressed offset %llu): "
				 "data is corrupt or its %s check does not "
				 "match", archive->path, block_index + 1,
				 (unsigned long long)b->uoffset,
				 pp_check_name(b->check));
	else if (status == 0 && limit >= b->usize &&
		 (ret != LZMA_STREAM_END || produced != b->usize ||
		  in_pos != in_end || strm.avail_in))
		status = pp_fail(err, PP_ERR_FORMAT,
				 "%s: block %zu: size disagrees with the index",
				 archive->path, block_index + 1);
	lzma_end(&strm);
	free(in_buf);
	free(out_buf);
	free_block_header(&header);
	return status;
}

/* ---- blocks for reuse ------------------------------------------------- */

/* The size of usize bytes written as LZMA2 uncompressed chunks: 64 KiB
 * each behind a 3-byte header, and the end marker. */
static uint64_t uncompressed_chunks_size(uint64_t usize)
{
	return usize + (usize + 0xFFFF) / 0x10000 * 3 + 1;
}

/*
 * The header xz_encode_block writes for a block of usize bytes whose LZMA2
 * data takes compressed bytes, asking for dictionary dict_size.  liblzma
 * sizes the header before it encodes, for the largest compressed size it
 * will accept (the data as uncompressed chunks), and pads the header when
 * the data came out smaller: so must this.
 */
static int expected_header(const pp_pack_options *options, uint64_t usize,
			   lzma_vli compressed, uint32_t dict_size,
			   uint8_t raw[LZMA_BLOCK_HEADER_SIZE_MAX],
			   uint32_t *size)
{
	lzma_options_lzma lzma2 = { .dict_size = dict_size };
	lzma_filter filters[2];
	lzma_block want = our_block(options, &lzma2, filters);
	want.compressed_size = uncompressed_chunks_size(usize);
	want.uncompressed_size = usize;
	if (lzma_block_header_size(&want) != LZMA_OK)
		return -1;
	want.compressed_size = compressed;
	if (lzma_block_header_encode(&want, raw) != LZMA_OK)
		return -1;
	*size = want.header_size;
	return 0;
}

/*
 * A block of ours is framed by its header alone: xz_encode_block writes
 * both sizes, one LZMA2 filter whose dictionary follows from the preset
 * and the block's size, and the stream's check.  So the header this
 * encoder would write, given the block's compressed size, is compared
 * byte for byte with the one in the file.
 *
 * One case is ambiguous.  When a block's bytes do not compress,
 * lzma_block_buffer_encode writes them as lzma_block_uncomp_encode does
 * for a stored block: uncompressed chunks under a header asking for the
 * smallest dictionary.  Such a block is what encode_block writes now only
 * if its bytes still do not compress, which only the caller can judge.
 */
static int xz_reuse_record(pp_archive *archive, size_t block_index,
			   const pp_pack_options *options,
			   pp_block_record *record, enum pp_reuse_fit *fit,
			   pp_error *err)
{
	const pp_block *b = &archive->blocks[block_index];
	*fit = PP_REUSE_NO;
	xz_block_header found;
	int status = read_block_header(archive, block_index, &found, err);
	if (status)
		return status;
	/* The filters' options are not needed: the raw header says all. */
	free_block_header(&found);
	lzma_vli compressed = found.block.compressed_size;
	uint32_t found_size = found.block.header_size;
	if (compressed == LZMA_VLI_UNKNOWN ||
	    found.block.uncompressed_size == LZMA_VLI_UNKNOWN)
		return 0;
	lzma_options_lzma lzma2;
	status = lzma2_options(options, (size_t)b->usize, &lzma2, err);
	if (status)
		return status;
	uint8_t raw[LZMA_BLOCK_HEADER_SIZE_MAX];
	uint32_t size;
	bool normal = false, smallest = false;
	if (expected_header(options, b->usize, compressed, lzma2.dict_size,
			    raw, &size) == 0)
		normal = size == found_size &&
			memcmp(raw, found.raw, size) == 0;
	if (expected_header(options, b->usize, compressed,
			    LZMA_DICT_SIZE_MIN, raw, &size) == 0)
		smallest = size == found_size &&
			memcmp(raw, found.raw, size) == 0;
	if (smallest) {
		/* Uncompressed chunks alone: stored, or did not compress.
		 * LZMA chunks: compressed, if that dictionary is ours. */
		bool all;
		status = pp_archive_wholly_stored(archive, block_index, &all,
						  err);
		if (status)
			return status;
		*fit = all ? PP_REUSE_IF_INCOMPRESSIBLE :
			normal ? PP_REUSE_YES : PP_REUSE_NO;
	} else if (normal) {
		*fit = PP_REUSE_YES;
	}
	*record = (pp_block_record){
		.usize = b->usize,
		.fsize = b->fsize,
		.index_size = found_size + compressed +
			lzma_check_size((lzma_check)b->check),
		.stored = false,
	};
	return 0;
}

/*
 * A stored block as xz_encode_block writes it: a header with both sizes
 * and one LZMA2 filter (whose one-byte dictionary property leaves the
 * header's size alone), the bytes as uncompressed chunks of 64 KiB behind
 * 3-byte headers, the end marker, padding to 4 bytes, the check.  When
 * the index's sizes are exactly that, the chunks are where that layout
 * puts them.
 */
static int xz_stored_layout(pp_archive *archive, size_t block_index,
			    pp_extent_list *list, pp_error *err)
{
	const pp_block *b = &archive->blocks[block_index];
	pp_pack_options options = { .check = b->check };
	uint64_t chunks = uncompressed_chunks_size(b->usize);
	uint8_t raw[LZMA_BLOCK_HEADER_SIZE_MAX];
	uint32_t header_size;
	uint32_t check_size = lzma_check_size((lzma_check)b->check);
	if (b->usize == 0 || check_size == UINT32_MAX ||
	    expected_header(&options, b->usize, chunks, LZMA_DICT_SIZE_MIN,
			    raw, &header_size) ||
	    b->fsize != header_size + (chunks + 3) / 4 * 4 + check_size)
		return 0;
	uint64_t at = b->foffset + header_size, done = 0;
	while (done < b->usize) {
		uint64_t len = PP_MIN(b->usize - done, (uint64_t)0x10000);
		int status = pp_extent_append(list, b->uoffset + done, len,
					      at + 3, err);
		if (status)
			return status;
		done += len;
		at += 3 + len;
	}
	return 0;
}

/* The container, listed by the registry (format.c). */
const pp_container_ops pp_xz_container = {
	.format = PP_FORMAT_XZ,
	.names = (const char *const[]){ "xz", NULL },
	.suffixes = (const char *const[]){ ".xz", ".txz", NULL },
	/* xz's presets, 6 its default; -e is options->extreme. */
	.level_min = 0,
	.level_max = 9,
	.level_default = 6,
	/* The check IDs liblzma computes; CRC64 is xz's default. */
	.checks = 1u << PP_CHECK_NONE | 1u << PP_CHECK_CRC32 |
		  1u << PP_CHECK_CRC64 | 1u << PP_CHECK_SHA256,
	.default_check = PP_CHECK_CRC64,
	.block_bound = xz_block_bound,
	.encode_block = xz_encode_block,
	.write_header = xz_write_header,
	.write_trailer = xz_write_trailer,
	.probe = xz_probe,
	.open = xz_open,
	.stored_extents = xz_stored_extents,
	.decode = xz_decode,
	.reuse_record = xz_reuse_record,
	.stored_layout = xz_stored_layout,
	.release = NULL,  /* the block table says all there is */
};
