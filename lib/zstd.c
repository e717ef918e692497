/*
 * zstd.c - the zstd container: one zstd frame per block, raw frames for
 * the kept ranges, and the seek table of zstd's seekable format at the end.
 *
 * A .zst file is a series of frames, and every zstd decoder outputs their
 * concatenation (RFC 8878, 3.1).  So an image cut into blocks, each its own
 * frame, is one ordinary .zst file whose blocks decode alone.  A frame is
 *
 *   magic FD 2F B5 28 (LE 0xFD2FB528)
 *   Frame_Header_Descriptor: bits 7-6 Frame_Content_Size_flag, bit 5
 *     Single_Segment_flag, bit 4 unused, bit 3 reserved (0), bit 2
 *     Content_Checksum_flag, bits 1-0 Dictionary_ID_flag
 *   Window_Descriptor (1 byte, absent with Single_Segment): exponent in
 *     bits 7-3, mantissa in bits 2-0, window = 2^(10+e) + 2^(10+e)/8 * m
 *   Dictionary_ID (0, 1, 2 or 4 bytes), Frame_Content_Size (0, 1, 2, 4 or 8
 *     bytes; the 2-byte form holds size - 256)
 *   blocks, each behind a 3-byte little-endian header: bit 0 Last_Block,
 *     bits 2-1 Block_Type (0 Raw, 1 RLE, 2 Compressed, 3 reserved), bits
 *     23-3 Block_Size.  A Raw block is Block_Size bytes verbatim; an RLE
 *     block is one byte repeated Block_Size times; a Compressed block is
 *     Block_Size bytes of compressed data.  No block holds more than
 *     min(window, 128 KiB) of content.
 *   Content_Checksum (4 bytes, if flagged): the low 32 bits of XXH64, seed
 *     0, of the frame's whole content, little-endian.
 *
 * Compressed blocks are frames libzstd writes at the chosen level, with the
 * content size and (by default) the checksum.  Kept blocks are frames of Raw
 * blocks written here by hand, so that where each byte lies follows from the
 * frame's size alone: a 14-byte header (8-byte Frame_Content_Size, no
 * Single_Segment, a 128 KiB window: raw blocks need no more whatever the
 * frame's size, and stock decoders refuse windows over 2^27 unless told),
 * then 131072 bytes after every 3-byte block header.
 *
 * The seek table is a skippable frame (magic 0x184D2A5E, then its size) that
 * every decoder skips (contrib/seekable_format in zstd's sources):
 *
 *   per frame: Compressed_Size (LE32), Decompressed_Size (LE32) and, if the
 *     descriptor's bit 7 is set, Checksum (LE32, the frame's content
 *     checksum again)
 *   Number_Of_Frames (LE32), Seek_Table_Descriptor (bit 7 Checksum_Flag,
 *     bits 6-2 reserved, bits 1-0 unused), Seekable_Magic_Number 0x8F92EAB1
 *
 * so opening takes two reads: the footer, then the table.  Each checksum is
 * in two places, the frame and the table; a patch re-hashes the touched
 * frames (XXH64 has no CRC-style algebra) and writes both.
 *
 * Which bytes may be patched is proven by hopping from block header to
 * block header, each saying how long it is, without decoding: a Raw block
 * is offered when no Compressed block follows it in its frame (a later
 * Compressed block may copy from it, so patching it would change bytes
 * after it; an RLE block copies nothing).  Since only Compressed blocks hide
 * their content size, the offered tail of raw and RLE blocks is placed by
 * counting back from the frame's content size.  Files without a seek table
 * are scanned once, frame by frame, the same way; a frame that does not
 * carry its content size (zstd reading a pipe) is decoded then to learn
 * it, and offers nothing to patch.
 */
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "check.h"
#include "container.h"
#include "error.h"
#include "io.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- the format's numbers --------------------------------------------- */

#define ZST_MAGIC 0xFD2FB528u
#define ZST_SKIPPABLE_MAGIC 0x184D2A50u   /* the low 4 bits are free */
#define ZST_SKIPPABLE_MASK 0xFFFFFFF0u
#define ZST_SKIPPABLE_HEADER 8           /* magic, LE32 Frame_Size */

#define ZST_FHD_CHECKSUM 0x04
#define ZST_FHD_RESERVED 0x08
#define ZST_FHD_SINGLE_SEGMENT 0x20
#define ZST_FRAME_HEADER_MAX 18           /* 4 + 1 + 1 + 4 + 8 */
/* Magic, descriptor, window or 1-byte size, one block header. */
#define ZST_FRAME_MIN 9

#define ZST_BLOCK_HEADER 3
#define ZST_BLOCK_MAX (128u << 10)
#define ZST_CHECKSUM_SIZE 4
enum { ZST_RAW = 0, ZST_RLE = 1, ZST_COMPRESSED = 2 };

/* Our raw frames: 8-byte content size, window 2^(10+7) = 128 KiB. */
#define ZST_RAW_FHD 0xC0                  /* Frame_Content_Size_flag 3 */
#define ZST_RAW_WINDOW (7 << 3)
#define ZST_RAW_HEADER 14

#define ZST_SEEK_TABLE_MAGIC 0x184D2A5Eu
#define ZST_SEEKABLE_MAGIC 0x8F92EAB1u
#define ZST_FOOTER_SIZE 9
#define ZST_TABLE_CHECKSUM 0x80
#define ZST_TABLE_RESERVED 0x7C
/* The seekable format caps frames at 1 GiB of content. */
#define ZST_FRAME_USIZE_MAX (1u << 30)

#define ZST_IO_SIZE (1u << 17)

/* ---- checksums -------------------------------------------------------- */

/* The content checksum, the low 32 bits of XXH64 little-endian as zstd
 * stores them, is check.c's XXH64 kind: its state, fed as data arrives. */
typedef struct zst_hash {
	const pp_check_kind *kind;
	void *state;
} zst_hash;

static bool hash_begin(zst_hash *h)
{
	h->kind = pp_check_kind_of(PP_CHECK_XXH64);
	h->state = malloc(h->kind->state_size);
	if (h->state)
		h->kind->init(h->state);
	return h->state != NULL;
}

static void hash_end(zst_hash *h, uint8_t check[ZST_CHECKSUM_SIZE])
{
	if (check)
		h->kind->final(h->state, check);
	free(h->state);
	h->state = NULL;
}

/* ---- writing ---------------------------------------------------------- */

static uint64_t raw_block_count(uint64_t usize)
{
	/* An empty frame still needs one (empty) last block. */
	return usize == 0 ? 1 : (usize + ZST_BLOCK_MAX - 1) / ZST_BLOCK_MAX;
}

static uint64_t raw_frame_size(uint64_t usize, bool checksum)
{
	return ZST_RAW_HEADER + ZST_BLOCK_HEADER * raw_block_count(usize) +
	       usize + (checksum ? ZST_CHECKSUM_SIZE : 0);
}

static void put_block_header(uint8_t *p, bool last, unsigned type,
			     uint32_t size)
{
	uint32_t v = (last ? 1u : 0u) | type << 1 | size << 3;
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
}

/* A frame of Raw blocks, by hand, so its layout follows from usize. */
static size_t put_raw_frame(uint8_t *out, const uint8_t *in, size_t usize,
			    zst_hash *checksum)
{
	uint8_t *p = out;
	pp_put_le32(p, ZST_MAGIC);
	p[4] = ZST_RAW_FHD | (checksum ? ZST_FHD_CHECKSUM : 0);
	p[5] = ZST_RAW_WINDOW;
	pp_put_le64(p + 6, usize);
	p += ZST_RAW_HEADER;
	size_t done = 0;
	do {
		size_t len = PP_MIN(usize - done, (size_t)ZST_BLOCK_MAX);
		put_block_header(p, done + len == usize, ZST_RAW, (uint32_t)len);
		if (len > 0)   /* in may be NULL for an empty block */
			memcpy(p + ZST_BLOCK_HEADER, in + done, len);
		p += ZST_BLOCK_HEADER + len;
		done += len;
	} while (done < usize);
	if (checksum) {
		if (usize > 0)
			checksum->kind->update(checksum->state, in, usize);
		hash_end(checksum, p);
		p += ZST_CHECKSUM_SIZE;
	}
	return (size_t)(p - out);
}

static size_t zst_block_bound(const pp_pack_options *options, size_t usize)
{
	(void)options;
	/* ZSTD_compressBound covers a whole frame, header and checksum. */
	return (size_t)PP_MAX((uint64_t)ZSTD_compressBound(usize),
			      raw_frame_size(usize, true));
}

static int zstd_failure(pp_error *err, const char *what, size_t ret)
{
	return pp_fail(err, ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation ?
		       PP_ERR_NOMEM : PP_ERR_USAGE, "zstd: %s: %s", what,
		       ZSTD_getErrorName(ret));
}

/*
 * One frame at the level, written by libzstd's single-threaded compressor:
 * a fresh context per block keeps this a pure function of the bytes, so
 * blocks may be compressed on any thread in any order.
 */
static int put_compressed_frame(const pp_pack_options *options,
				const uint8_t *in, size_t usize, uint8_t *out,
				size_t room, size_t *written, pp_error *err)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	if (!cctx)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	size_t ret = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
					    options->level);
	if (!ZSTD_isError(ret))
		ret = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
	if (!ZSTD_isError(ret))
		ret = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag,
					     options->check == PP_CHECK_XXH64);
	if (!ZSTD_isError(ret))
		ret = ZSTD_compress2(cctx, out, room, in, usize);
	ZSTD_freeCCtx(cctx);
	if (ZSTD_isError(ret))
		return zstd_failure(err, "compressing a block", ret);
	*written = ret;
	return 0;
}

static int zst_encode_block(const pp_pack_options *options, const uint8_t *in,
			    size_t usize, bool stored, uint8_t *out,
			    size_t *out_len, pp_block_record *record,
			    pp_error *err)
{
	int ret;
	if ((uint64_t)usize > ZST_FRAME_USIZE_MAX)
		return pp_fail(err, PP_ERR_USAGE, "zstd: a block of %zu bytes "
			       "is too large: seekable frames hold at most "
			       "1 GiB", usize);
	bool checksum = options->check == PP_CHECK_XXH64;
	size_t capacity = *out_len;   /* on entry, out's size */
	if (stored) {
		if (capacity < raw_frame_size(usize, checksum))
			return pp_fail(err, PP_ERR_USAGE, "zstd: %zu bytes of "
				       "output space cannot hold a frame of %zu "
				       "bytes", capacity, usize);
		zst_hash hash;
		if (checksum && !hash_begin(&hash))
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		*out_len = put_raw_frame(out, in, usize,
					 checksum ? &hash : NULL);
	} else {
		ret = put_compressed_frame(options, in, usize, out, capacity,
					   out_len, err);
		if (ret)
			return ret;
	}
	*record = (pp_block_record){
		.usize = usize,
		.fsize = *out_len,
		.index_size = *out_len,
		.stored = stored,
	};
	/* The frame ends with its checksum, which the seek table repeats. */
	if (checksum)
		memcpy(record->check, out + *out_len - ZST_CHECKSUM_SIZE,
		       ZST_CHECKSUM_SIZE);
	return 0;
}

static size_t table_entry_size(bool checksum)
{
	return checksum ? 12 : 8;
}

/* The seek table: a skippable frame listing every frame, then the footer.
 * Built whole in memory (12 bytes a frame) and written in one go. */
static int zst_write_trailer(const pp_pack_options *options,
			     const pp_block_record *records, size_t count,
			     int fd, const char *name, pp_error *err)
{
	bool checksum = options->check == PP_CHECK_XXH64;
	size_t entry = table_entry_size(checksum);
	uint64_t body = (uint64_t)count * entry + ZST_FOOTER_SIZE;
	if (count > UINT32_MAX || body > UINT32_MAX)
		return pp_fail(err, PP_ERR_USAGE, "%s: %zu frames are too many "
			       "for a zstd seek table", name, count);
	for (size_t i = 0; i < count; i++)
		if (records[i].usize > ZST_FRAME_USIZE_MAX ||
		    records[i].fsize > UINT32_MAX)
			return pp_fail(err, PP_ERR_USAGE, "%s: frame %zu is "
				       "too large for the zstd seek table",
				       name, i + 1);
	uint8_t *table = malloc((size_t)body + ZST_SKIPPABLE_HEADER);
	if (!table)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	uint8_t *p = table;
	pp_put_le32(p, ZST_SEEK_TABLE_MAGIC);
	pp_put_le32(p + 4, (uint32_t)body);
	p += ZST_SKIPPABLE_HEADER;
	for (size_t i = 0; i < count; i++, p += entry) {
		pp_put_le32(p, (uint32_t)records[i].fsize);
		pp_put_le32(p + 4, (uint32_t)records[i].usize);
		if (checksum)
			memcpy(p + 8, records[i].check, ZST_CHECKSUM_SIZE);
	}
	pp_put_le32(p, (uint32_t)count);
	p[4] = checksum ? ZST_TABLE_CHECKSUM : 0;
	pp_put_le32(p + 5, ZST_SEEKABLE_MAGIC);
	int ret = 0;
	if (pp_write_full(fd, table, (size_t)body + ZST_SKIPPABLE_HEADER) < 0)
		ret = pp_fail_errno(err, PP_ERR_IO, "%s: cannot write the zstd "
				    "seek table", name);
	free(table);
	return ret;
}


/* ---- frame headers and block hopping ---------------------------------- */

typedef struct zst_frame {
	size_t header_size;
	bool has_size;          /* Frame_Content_Size present */
	uint64_t content_size;
	bool checksum;
	uint32_t dictionary;
} zst_frame;

static uint64_t get_le(const uint8_t *p, size_t len)
{
	uint64_t v = 0;
	for (size_t i = len; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/*
 * Parses a frame header from the len bytes at p (the magic included);
 * false if they are not a whole, valid one.
 */
static bool parse_frame_header(const uint8_t *p, size_t len, zst_frame *frame)
{
	if (len < 5 || pp_get_le32(p) != ZST_MAGIC)
		return false;
	uint8_t fhd = p[4];
	bool single = fhd & ZST_FHD_SINGLE_SEGMENT;
	static const uint8_t dict_sizes[4] = { 0, 1, 2, 4 };
	static const uint8_t size_sizes[4] = { 0, 2, 4, 8 };
	size_t dict_len = dict_sizes[fhd & 3];
	size_t size_len = size_sizes[fhd >> 6];
	if (size_len == 0 && single)
		size_len = 1;
	size_t at = 5 + (single ? 0 : 1);
	*frame = (zst_frame){
		.header_size = at + dict_len + size_len,
		.has_size = size_len > 0,
		.checksum = fhd & ZST_FHD_CHECKSUM,
	};
	if ((fhd & ZST_FHD_RESERVED) || frame->header_size > len)
		return false;
	frame->dictionary = (uint32_t)get_le(p + at, dict_len);
	frame->content_size = get_le(p + at + dict_len, size_len) +
		(size_len == 2 ? 256 : 0);
	return true;
}

/* Reads and parses the header of the frame at foffset. */
static int read_frame_header(const pp_archive *archive, uint64_t foffset,
			     uint64_t end, zst_frame *frame, pp_error *err)
{
	uint8_t head[ZST_FRAME_HEADER_MAX];
	size_t len = (size_t)PP_MIN((uint64_t)sizeof head, end - foffset);
	if (pp_archive_read_or_fail(archive, head, len, foffset, err))
		return PP_ERR_IO;
	if (!parse_frame_header(head, len, frame))
		return pp_fail(err, PP_ERR_FORMAT, "%s: no valid zstd frame "
			       "header at byte %" PRIu64, archive->path,
			       foffset);
	return 0;
}

/*
 * Hops over the blocks of the frame at foffset (header already parsed),
 * which must end by `end`.  Sets *frame_end past its checksum.  If tail is
 * not NULL, leaves in it the Raw blocks no Compressed block follows, each
 * as (offset within the tail's content, length, file offset), and in
 * *tail_len the content length of that tail of Raw and RLE blocks.
 */
static int hop_blocks(const pp_archive *archive, uint64_t foffset,
		      uint64_t end, const zst_frame *frame,
		      uint64_t *frame_end, pp_extent_list *tail,
		      uint64_t *tail_len, pp_error *err)
{
	uint64_t at = foffset + frame->header_size;
	uint64_t tail_content = 0;
	for (;;) {
		uint8_t h[ZST_BLOCK_HEADER];
		if (end - at < ZST_BLOCK_HEADER)
			return pp_fail(err, PP_ERR_FORMAT, "%s: the zstd frame "
				       "at byte %" PRIu64 " is cut short",
				       archive->path, foffset);
		if (pp_archive_read(archive, h, sizeof h, at))
			return pp_fail_errno(err, PP_ERR_IO, "%s: cannot read "
					     "byte %" PRIu64, archive->path, at);
		uint32_t v = (uint32_t)get_le(h, sizeof h);
		bool last = v & 1;
		unsigned type = (v >> 1) & 3;
		uint32_t size = v >> 3;
		uint64_t stored_len = type == ZST_RLE ? 1 : size;
		at += ZST_BLOCK_HEADER;
		if (type > ZST_COMPRESSED || size > ZST_BLOCK_MAX ||
		    stored_len > end - at)
			return pp_fail(err, PP_ERR_FORMAT, "%s: bad zstd block "
				       "header at byte %" PRIu64, archive->path,
				       at - ZST_BLOCK_HEADER);
		if (type == ZST_COMPRESSED) {
			tail_content = 0;
			if (tail)
				tail->count = 0;
		} else {
			int ret = type == ZST_RAW && tail && size > 0 ?
				pp_extent_append(tail, tail_content, size, at,
						 err) : 0;
			if (ret)
				return ret;
			tail_content += size;
		}
		at += stored_len;
		if (last)
			break;
	}
	if (frame->checksum) {
		if (end - at < ZST_CHECKSUM_SIZE)
			return pp_fail(err, PP_ERR_FORMAT, "%s: the zstd frame "
				       "at byte %" PRIu64 " is cut short",
				       archive->path, foffset);
		at += ZST_CHECKSUM_SIZE;
	}
	*frame_end = at;
	if (tail_len)
		*tail_len = tail_content;
	return 0;
}

/* ---- opening by the seek table ------------------------------------------ */

/*
 * Reads the footer.  *found is false if the file does not end with one: it
 * is then a plain .zst.  If it does, the seek table must be sound: damage
 * there is an error, not a reason to scan.
 */
static int read_seek_table(pp_archive *archive, bool *found, pp_error *err)
{
	*found = false;
	if (archive->file_size < ZST_SKIPPABLE_HEADER + ZST_FOOTER_SIZE)
		return 0;
	uint8_t footer[ZST_FOOTER_SIZE];
	uint64_t at = archive->file_size - ZST_FOOTER_SIZE;
	if (pp_archive_read_or_fail(archive, footer, sizeof footer, at, err))
		return PP_ERR_IO;
	if (pp_get_le32(footer + 5) != ZST_SEEKABLE_MAGIC)
		return 0;
	*found = true;
	uint64_t frames = pp_get_le32(footer);
	uint8_t descriptor = footer[4];
	if (descriptor & ZST_TABLE_RESERVED)
		return pp_fail(err, PP_ERR_FORMAT, "%s: zstd seek table has "
			       "reserved bits set (0x%02x)", archive->path,
			       descriptor);
	bool checksum = descriptor & ZST_TABLE_CHECKSUM;
	size_t entry = table_entry_size(checksum);
	uint64_t body = frames * entry + ZST_FOOTER_SIZE;
	uint64_t table_size = body + ZST_SKIPPABLE_HEADER;
	if (table_size > archive->file_size ||
	    frames > (archive->file_size - table_size) / ZST_FRAME_MIN)
		return pp_fail(err, PP_ERR_FORMAT, "%s: zstd seek table of %"
			       PRIu64 " frames does not fit the file",
			       archive->path, frames);
	uint64_t table_at = archive->file_size - table_size;
	uint8_t *table = malloc((size_t)table_size);
	if (!table)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int ret = 0;
	if (pp_archive_read(archive, table, (size_t)table_size, table_at))
		ret = pp_fail_errno(err, PP_ERR_IO, "%s: cannot read the zstd "
				    "seek table at byte %" PRIu64,
				    archive->path, table_at);
	else if (pp_get_le32(table) != ZST_SEEK_TABLE_MAGIC ||
		 pp_get_le32(table + 4) != body)
		ret = pp_fail(err, PP_ERR_FORMAT, "%s: the zstd seek table's "
			      "frame at byte %" PRIu64 " is damaged",
			      archive->path, table_at);
	uint64_t uoffset = 0, foffset = 0;
	for (uint64_t i = 0; ret == 0 && i < frames; i++) {
		uint64_t entry_at = ZST_SKIPPABLE_HEADER + i * entry;
		const uint8_t *e = table + entry_at;
		uint64_t fsize = pp_get_le32(e), usize = pp_get_le32(e + 4);
		if (fsize < ZST_FRAME_MIN || fsize > table_at - foffset) {
			ret = pp_fail(err, PP_ERR_FORMAT, "%s: zstd seek table "
				      "entry %" PRIu64 ": frames run into the "
				      "seek table at byte %" PRIu64,
				      archive->path, i, table_at);
			break;
		}
		pp_block block = {
			.uoffset = uoffset,
			.usize = usize,
			.foffset = foffset,
			.fsize = fsize,
			.check = checksum ? PP_CHECK_XXH64 : PP_CHECK_NONE,
			.check_offset = foffset + fsize - ZST_CHECKSUM_SIZE,
			.check_copy_offset = checksum ? table_at + entry_at + 8 : 0,
		};
		ret = pp_archive_add_block(archive, &block, err);
		uoffset += usize;
		foffset += fsize;
	}
	if (ret == 0 && foffset != table_at)
		ret = pp_fail(err, PP_ERR_FORMAT, "%s: zstd frames end at byte "
			      "%" PRIu64 " but the seek table starts at %"
			      PRIu64, archive->path, foffset, table_at);
	free(table);
	return ret;
}

/* ---- opening by scanning -------------------------------------------------- */

/* Decodes [at, frame_end) of the frame at foffset, output discarded,
 * counting the bytes it makes into *produced. */
static int count_content(pp_archive *archive, ZSTD_DCtx *dctx, uint8_t *in,
			 uint8_t *out, uint64_t foffset, uint64_t frame_end,
			 uint64_t *produced, pp_error *err)
{
	uint64_t at = foffset;
	size_t left = 1;   /* libzstd's hint: 0 once the frame is complete */
	ZSTD_inBuffer ib = { in, 0, 0 };
	while (left != 0) {
		if (ib.pos == ib.size) {
			if (at == frame_end)
				return pp_fail(err, PP_ERR_FORMAT, "%s: the zstd "
					       "frame at byte %" PRIu64 " ends "
					       "early", archive->path, foffset);
			size_t len = (size_t)PP_MIN((uint64_t)ZST_IO_SIZE,
						    frame_end - at);
			if (pp_archive_read(archive, in, len, at))
				return pp_fail_errno(err, PP_ERR_IO, "%s: cannot "
						     "read byte %" PRIu64,
						     archive->path, at);
			at += len;
			ib = (ZSTD_inBuffer){ in, len, 0 };
			pp_progress(at, archive->file_size);
		}
		ZSTD_outBuffer ob = { out, ZSTD_DStreamOutSize(), 0 };
		left = ZSTD_decompressStream(dctx, &ob, &ib);
		if (ZSTD_isError(left))
			return pp_fail(err, ZSTD_getErrorCode(left) ==
				       ZSTD_error_checksum_wrong ? PP_ERR_CHECK :
				       PP_ERR_FORMAT, "%s: the zstd frame at byte "
				       "%" PRIu64 ": %s", archive->path, foffset,
				       ZSTD_getErrorName(left));
		*produced += ob.pos;
	}
	if (at != frame_end || ib.pos != ib.size)
		return pp_fail(err, PP_ERR_FORMAT, "%s: the zstd frame at byte %"
			       PRIu64 " does not end where its blocks do",
			       archive->path, foffset);
	return 0;
}

/*
 * zstd writing from a pipe cannot know the content size, and leaves it out
 * of the frame header; the block table needs it.  Such a frame is decoded
 * once, when the file is opened (as a foreign .gz is scanned), its output
 * counted and dropped.  Reads of it then decode it as any frame; patches
 * never touch it (agree_up_to cannot check it).
 */
static int measure_frame(pp_archive *archive, uint64_t foffset,
			 uint64_t frame_end, uint64_t *content_size,
			 pp_error *err)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	uint8_t *in = malloc(ZST_IO_SIZE), *out = malloc(ZSTD_DStreamOutSize());
	*content_size = 0;
	int ret = dctx && in && out ?
		count_content(archive, dctx, in, out, foffset, frame_end,
			      content_size, err) :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	ZSTD_freeDCtx(dctx);
	free(in);
	free(out);
	return ret;
}

/* A .zst with no seek table: every frame's header and block headers, once. */
static int scan_frames(pp_archive *archive, pp_error *err)
{
	uint64_t at = 0, uoffset = 0, end = archive->file_size;
	while (at < end) {
		uint8_t magic[ZST_SKIPPABLE_HEADER];
		size_t len = (size_t)PP_MIN((uint64_t)sizeof magic, end - at);
		if (pp_archive_read(archive, magic, len, at))
			return pp_fail_errno(err, PP_ERR_IO, "%s: cannot read "
					     "byte %" PRIu64, archive->path, at);
		if (len == sizeof magic && (pp_get_le32(magic) &
		    ZST_SKIPPABLE_MASK) == ZST_SKIPPABLE_MAGIC) {
			uint64_t skip = pp_get_le32(magic + 4);
			if (skip > end - at - ZST_SKIPPABLE_HEADER)
				return pp_fail(err, PP_ERR_FORMAT, "%s: the "
					       "skippable frame at byte %" PRIu64
					       " runs past the end",
					       archive->path, at);
			at += ZST_SKIPPABLE_HEADER + skip;
			continue;
		}
		zst_frame frame;
		uint64_t frame_end = 0;
		int ret = read_frame_header(archive, at, end, &frame, err);
		if (ret == 0)
			ret = hop_blocks(archive, at, end, &frame, &frame_end,
					 NULL, NULL, err);
		if (ret == 0 && !frame.has_size)
			ret = measure_frame(archive, at, frame_end,
					    &frame.content_size, err);
		if (ret == 0 && frame.content_size > UINT64_MAX - uoffset)
			ret = pp_fail(err, PP_ERR_FORMAT, "%s: zstd frames hold "
				      "more than 2^64 bytes", archive->path);
		if (ret)
			return ret;
		pp_block block = {
			.uoffset = uoffset,
			.usize = frame.content_size,
			.foffset = at,
			.fsize = frame_end - at,
			.check = frame.checksum ? PP_CHECK_XXH64 : PP_CHECK_NONE,
			.check_offset = frame_end - ZST_CHECKSUM_SIZE,
		};
		ret = pp_archive_add_block(archive, &block, err);
		if (ret)
			return ret;
		uoffset += frame.content_size;
		at = frame_end;
		pp_progress(at, end);
	}
	return 0;
}

/* ---- the container ---------------------------------------------------- */

static bool zst_probe(const uint8_t *head, size_t len)
{
	if (len < 4)
		return false;
	uint32_t magic = pp_get_le32(head);
	return magic == ZST_MAGIC ||
	       (magic & ZST_SKIPPABLE_MASK) == ZST_SKIPPABLE_MAGIC;
}

/*
 * The seek table has no check of its own, and a wrong Decompressed_Size
 * would shift every later frame in the image: a patch would land in the
 * wrong place.  So before a frame is patched or read, the header of every
 * frame up to it must agree with the table (once; the count is kept).
 *
 * The state is shared by every handle of the archive (pp_dup) and read by
 * pp_decode_blocks' workers at once: the count is atomic, so a frame
 * already agreed costs one load, and one thread at a time moves it on,
 * under the lock, publishing it only once the frames below it are read.
 */
typedef struct zst_state {
	pthread_mutex_t lock;   /* held while agreed moves on */
	atomic_size_t agreed;   /* frames [0, agreed) match their headers */
} zst_state;

static void zst_release(pp_archive *archive)
{
	zst_state *state = archive->container;
	if (state)
		pthread_mutex_destroy(&state->lock);
	free(state);
	archive->container = NULL;
}

/* On failure, leaves no blocks and no state behind. */
static int zst_open(pp_archive *archive, pp_error *err)
{
	bool indexed = false;
	zst_state *state = calloc(1, sizeof *state);
	if (state && pthread_mutex_init(&state->lock, NULL)) {
		free(state);
		state = NULL;
	}
	archive->container = state;
	if (state)
		atomic_init(&state->agreed, 0);
	int ret = state ? read_seek_table(archive, &indexed, err) :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (ret == 0 && !indexed) {
		ret = scan_frames(archive, err);
		/* The table was made from the headers themselves. */
		atomic_store(&state->agreed, archive->block_count);
	}
	if (ret) {
		pp_archive_drop_blocks(archive);
		zst_release(archive);
	}
	return ret;
}

/*
 * Checks the frames up to and including `which` against their headers.
 * A frame that does not record its content size (the seekable format
 * allows it) cannot be checked: *sure is then false, and nothing at or
 * after it may be patched.
 */
static int agree_up_to(pp_archive *archive, size_t which, bool *sure,
		       pp_error *err)
{
	zst_state *state = archive->container;
	*sure = true;
	if (atomic_load_explicit(&state->agreed, memory_order_acquire) > which)
		return 0;
	pthread_mutex_lock(&state->lock);
	size_t agreed = atomic_load_explicit(&state->agreed,
					     memory_order_relaxed);
	int ret = 0;
	for (; ret == 0 && *sure && agreed <= which; agreed++) {
		const pp_block *b = &archive->blocks[agreed];
		zst_frame frame;
		ret = read_frame_header(archive, b->foffset,
					b->foffset + b->fsize, &frame, err);
		if (ret == 0 && !frame.has_size)
			*sure = false;
		else if (ret == 0 && frame.content_size != b->usize)
			ret = pp_fail(err, PP_ERR_FORMAT, "%s: frame %zu holds %"
				      PRIu64 " bytes, but the seek table says %"
				      PRIu64, archive->path, agreed + 1,
				      frame.content_size, b->usize);
		if (ret || !*sure)
			break;
	}
	atomic_store_explicit(&state->agreed, agreed, memory_order_release);
	pthread_mutex_unlock(&state->lock);
	return ret;
}

static int zst_stored_extents(pp_archive *archive, size_t which,
			      pp_extent_list *list, pp_error *err)
{
	const pp_block *block = &archive->blocks[which];
	uint64_t end = block->foffset + block->fsize;
	zst_frame frame;
	bool sure;
	int ret = agree_up_to(archive, which, &sure, err);
	if (ret || !sure)
		return ret;
	ret = read_frame_header(archive, block->foffset, end, &frame, err);
	if (ret)
		return ret;
	/*
	 * A patch must be able to fix every check the frame has, where the
	 * block table says it is; and must be able to decode the frame to
	 * re-hash it.  Frames whose checksum the table does not describe, or
	 * that need a dictionary, offer nothing.
	 */
	if (frame.checksum != (block->check == PP_CHECK_XXH64) ||
	    frame.dictionary != 0 || !frame.has_size ||
	    frame.content_size != block->usize)
		return 0;
	pp_extent_list tail = { 0 };
	uint64_t frame_end, tail_len;
	ret = hop_blocks(archive, block->foffset, end, &frame, &frame_end,
			 &tail, &tail_len, err);
	if (ret == 0 && (frame_end != end || tail_len > block->usize))
		ret = pp_fail(err, PP_ERR_FORMAT, "%s: frame %zu does not "
			      "match the block table", archive->path, which + 1);
	uint64_t base = block->uoffset + block->usize - tail_len;
	for (size_t i = 0; ret == 0 && i < tail.count; i++)
		ret = pp_extent_append(list, base + tail.items[i].uoffset,
				       tail.items[i].length,
				       tail.items[i].foffset, err);
	pp_extent_list_free(&tail);
	return ret;
}

/*
 * A stored block as zst_encode_block writes it: a frame of Raw blocks of
 * 128 KiB behind 3-byte headers after a 14-byte frame header, then the
 * checksum if the table describes one.  When the table's sizes are
 * exactly that, the blocks are where that layout puts them.
 */
static int zst_stored_layout(pp_archive *archive, size_t which,
			     pp_extent_list *list, pp_error *err)
{
	const pp_block *b = &archive->blocks[which];
	bool checksum = b->check == PP_CHECK_XXH64;
	if (b->usize == 0 || b->fsize != raw_frame_size(b->usize, checksum))
		return 0;
	uint64_t at = b->foffset + ZST_RAW_HEADER, done = 0;
	while (done < b->usize) {
		uint64_t len = PP_MIN(b->usize - done, (uint64_t)ZST_BLOCK_MAX);
		int ret = pp_extent_append(list, b->uoffset + done, len,
					   at + ZST_BLOCK_HEADER, err);
		if (ret)
			return ret;
		done += len;
		at += ZST_BLOCK_HEADER + len;
	}
	return 0;
}

/* A reader that decodes whole frames proves each one's content size (and
 * checksum) itself: the headers need not be compared with the table. */
static void zst_trust_index(pp_archive *archive)
{
	zst_state *state = archive->container;
	if (state)
		atomic_store(&state->agreed, archive->block_count);
}

/* Streams the frame through libzstd, feeding the sink up to limit bytes. */
typedef struct zst_decoder {
	pp_archive *archive;
	const pp_block *block;
	size_t which;
	ZSTD_DCtx *dctx;
	uint8_t *in;
	uint8_t *out;
	zst_hash hash;          /* state NULL unless decoding the whole frame */
	uint64_t decoded;
	uint64_t read;          /* frame bytes read so far */
} zst_decoder;

static int decode_error(const zst_decoder *d, size_t ret, pp_error *err)
{
	bool check = ZSTD_getErrorCode(ret) == ZSTD_error_checksum_wrong;
	return pp_fail(err, check ? PP_ERR_CHECK : PP_ERR_FORMAT,
		       "%s: frame %zu: %s", d->archive->path, d->which + 1,
		       check ? "content checksum mismatch" :
		       ZSTD_getErrorName(ret));
}

static int decode_frame(zst_decoder *d, uint64_t limit, pp_sink_fn sink,
			void *opaque, pp_error *err)
{
	const pp_block *b = d->block;
	bool whole = limit >= b->usize;
	size_t left = 1;   /* libzstd's hint: 0 once the frame is complete */
	ZSTD_inBuffer in = { d->in, 0, 0 };
	while (left != 0 && (whole || d->decoded < limit)) {
		if (in.pos == in.size) {
			if (d->read == b->fsize)
				return pp_fail(err, PP_ERR_FORMAT, "%s: frame %zu "
					       "ends early", d->archive->path,
					       d->which + 1);
			size_t len = (size_t)PP_MIN((uint64_t)ZST_IO_SIZE,
						    b->fsize - d->read);
			if (pp_archive_read(d->archive, d->in, len,
					    b->foffset + d->read))
				return pp_fail_errno(err, PP_ERR_IO, "%s: cannot "
						     "read frame %zu",
						     d->archive->path, d->which + 1);
			d->read += len;
			in = (ZSTD_inBuffer){ d->in, len, 0 };
		}
		ZSTD_outBuffer out = { d->out, ZSTD_DStreamOutSize(), 0 };
		left = ZSTD_decompressStream(d->dctx, &out, &in);
		if (ZSTD_isError(left))
			return decode_error(d, left, err);
		if (out.pos > b->usize - d->decoded)
			return pp_fail(err, PP_ERR_FORMAT, "%s: frame %zu decodes "
				       "to more than %" PRIu64 " bytes",
				       d->archive->path, d->which + 1, b->usize);
		if (d->hash.state)
			d->hash.kind->update(d->hash.state, d->out, out.pos);
		size_t feed = (size_t)PP_MIN((uint64_t)out.pos,
					     limit - PP_MIN(limit, d->decoded));
		int ret = feed ? sink(opaque, d->out, feed, err) : 0;
		if (ret)
			return ret;
		d->decoded += out.pos;
	}
	if (!whole)
		return 0;
	if (d->decoded != b->usize || in.pos != in.size || d->read != b->fsize)
		return pp_fail(err, PP_ERR_FORMAT, "%s: frame %zu decodes to %"
			       PRIu64 " bytes in %" PRIu64 " of %" PRIu64
			       ", not as the block table says",
			       d->archive->path, d->which + 1, d->decoded,
			       d->read - (in.size - in.pos), b->fsize);
	return 0;
}

/* After a whole frame: the seek table's copy of its checksum. */
static int compare_table_checksum(const zst_decoder *d, pp_error *err)
{
	const pp_block *b = d->block;
	if (!d->hash.state || b->check_copy_offset == 0)
		return 0;
	uint8_t stored[ZST_CHECKSUM_SIZE], computed[ZST_CHECKSUM_SIZE];
	if (pp_archive_read_or_fail(d->archive, stored, sizeof stored,
				    b->check_copy_offset, err))
		return PP_ERR_IO;
	d->hash.kind->final(d->hash.state, computed);
	if (memcmp(stored, computed, sizeof stored) != 0)
		return pp_fail(err, PP_ERR_CHECK, "%s: frame %zu: the seek "
			       "table's checksum %08" PRIx32 " does not match "
			       "the data (%08" PRIx32 ")", d->archive->path,
			       d->which + 1, pp_get_le32(stored),
			       pp_get_le32(computed));
	return 0;
}

static int zst_decode(pp_archive *archive, size_t which, uint64_t limit,
		      pp_sink_fn sink, void *opaque, pp_error *err)
{
	zst_decoder d = {
		.archive = archive,
		.block = &archive->blocks[which],
		.which = which,
		.dctx = ZSTD_createDCtx(),
		.in = malloc(ZST_IO_SIZE),
		.out = malloc(ZSTD_DStreamOutSize()),
	};
	bool whole = limit >= d.block->usize, sure;
	bool hashed = whole && d.block->check == PP_CHECK_XXH64;
	int ret = agree_up_to(archive, which, &sure, err);
	if (ret == 0 && (!d.dctx || !d.in || !d.out ||
			 (hashed && !hash_begin(&d.hash))))
		ret = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (ret == 0)
		ret = decode_frame(&d, limit, sink, opaque, err);
	if (ret == 0 && whole)
		ret = compare_table_checksum(&d, err);
	hash_end(&d.hash, NULL);
	ZSTD_freeDCtx(d.dctx);
	free(d.in);
	free(d.out);
	return ret;
}

/*
 * A compressed frame of ours is what libzstd writes at the level: its
 * header must carry the content size, no dictionary and the checksum flag
 * this pack asks for, and must not be one of our raw frames (an 8-byte
 * content size under a 128 KiB window, which libzstd never writes for a
 * frame under 4 GiB).  The level leaves no trace in the header that could
 * be compared without libzstd's own tables, so the caller's probe tells.
 */
static int zst_reuse_record(pp_archive *archive, size_t which,
			    const pp_pack_options *options,
			    pp_block_record *record, enum pp_reuse_fit *fit,
			    pp_error *err)
{
	const pp_block *block = &archive->blocks[which];
	uint64_t end = block->foffset + block->fsize;
	*fit = PP_REUSE_NO;
	zst_frame frame;
	uint8_t head[6];
	int ret = read_frame_header(archive, block->foffset, end, &frame, err);
	if (ret)
		return ret;
	if (pp_archive_read_or_fail(archive, head, sizeof head,
				    block->foffset, err))
		return PP_ERR_IO;
	bool raw = (head[4] & ~ZST_FHD_CHECKSUM) == ZST_RAW_FHD &&
		head[5] == ZST_RAW_WINDOW;
	if (raw || frame.dictionary != 0 || !frame.has_size ||
	    frame.content_size != block->usize ||
	    frame.checksum != (options->check == PP_CHECK_XXH64))
		return 0;
	return pp_reuse_fits_as_is(block, record, fit);
}

const pp_container_ops pp_zstd_container = {
	.format = PP_FORMAT_ZSTD,
	.names = (const char *const[]){ "zstd", "zst", NULL },
	.suffixes = (const char *const[]){ ".zst", ".tzst", NULL },
	/* zstd's levels without --ultra, 3 its default. */
	.level_min = 1,
	.level_max = 19,
	.level_default = 3,
	/* The frame's content checksum, or none. */
	.checks = 1u << PP_CHECK_NONE | 1u << PP_CHECK_XXH64,
	.default_check = PP_CHECK_XXH64,
	.block_bound = zst_block_bound,
	.encode_block = zst_encode_block,
	/* Every frame has its own header: nothing precedes the first. */
	.write_header = pp_write_no_header,
	.write_trailer = zst_write_trailer,
	.probe = zst_probe,
	.open = zst_open,
	.stored_extents = zst_stored_extents,
	.decode = zst_decode,
	.reuse_record = zst_reuse_record,
	.stored_layout = zst_stored_layout,
	.trust_index = zst_trust_index,
	.release = zst_release,
};
