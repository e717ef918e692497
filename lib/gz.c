/*
 * gz.c - the gzip container: one gzip member per block, an index of member
 * sizes hidden in empty members at the end, and a scanner for gzip files
 * that partpack did not write.
 *
 * docs/gzip-layout.md is the specification; this is the tour.
 *
 * A gzip file is a series of members, and every gzip reader decodes them one
 * after the other into one output.  So an image cut into blocks, each
 * compressed into a member of its own, is still one ordinary .gz file, and
 * each block decodes alone and carries its own CRC-32 and ISIZE (the idea of
 * BGZF).  A block that must stay patchable is written by hand as deflate
 * stored blocks: its bytes then lie verbatim in the file, 65535 at a time,
 * at places that follow from the member's size alone.
 *
 * gzip has no index, so we add one that every gzip reader skips: empty
 * members whose header carries an FEXTRA subfield "PI" listing each data
 * member's sizes, then one last empty member of fixed size with a subfield
 * "PT" saying where the index starts.  Opening such an archive takes two
 * reads and no inflating.
 *
 * Any other gzip file is scanned once: inflate stops at every deflate block
 * header (Z_TREES), and for each stored block we note where its raw bytes
 * lie.  That is how a file written by zlib with deflateParams() switching to
 * level 0 around a region can be patched too.  Compressed data after stored
 * data may copy from it, so the scan traces those copies and offers only the
 * stored bytes that nothing copies from.
 */
#include "internal.h"

#define ZLIB_CONST
#include <libdeflate.h>
#include <zlib.h>

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- the format's numbers --------------------------------------------- */

#define GZ_HEADER_SIZE 10       /* ID1 ID2 CM FLG MTIME(4) XFL OS */
#define GZ_TRAILER_SIZE 8       /* CRC-32, ISIZE */
#define GZ_ID1 0x1f
#define GZ_ID2 0x8b
#define GZ_CM_DEFLATE 8
#define GZ_OS_UNKNOWN 255

#define GZ_FLG_FHCRC 0x02
#define GZ_FLG_FEXTRA 0x04
#define GZ_FLG_FNAME 0x08
#define GZ_FLG_FCOMMENT 0x10
#define GZ_FLG_RESERVED 0xe0

#define GZ_STORED_MAX 65535u    /* LEN of a deflate stored block is 16 bits */
#define GZ_STORED_HEADER 5      /* BFINAL/BTYPE byte, LEN, NLEN */

/* The smallest member: a header, an empty fixed-Huffman block, a trailer. */
#define GZ_MIN_MEMBER (GZ_HEADER_SIZE + 2 + GZ_TRAILER_SIZE)

/*
 * The index lives in "frames": empty members whose header has FEXTRA with
 * one subfield.  Before the subfield's payload come the member header, XLEN
 * and the subfield's SI1 SI2 LEN; after it the empty deflate data and the
 * trailer.
 */
#define GZ_FRAME_HEAD (GZ_HEADER_SIZE + 2 + 4)
#define GZ_FRAME_TAIL (2 + GZ_TRAILER_SIZE)
#define GZ_FRAME (GZ_FRAME_HEAD + GZ_FRAME_TAIL)
#define GZ_SI1 'P'
#define GZ_SI2_INDEX 'I'
#define GZ_SI2_TAIL 'T'

#define GZ_ENTRY_SIZE 9         /* LE32 usize, LE32 member size, flags */
#define GZ_ENTRY_STORED 0x01
/* XLEN = 4 + 9n must fit in 16 bits. */
#define GZ_ENTRIES_PER_FRAME 7281u

#define GZ_TAIL_PAYLOAD 30      /* version, flags, 3 x LE64, LE32 */
#define GZ_TAIL_SIZE (GZ_FRAME + GZ_TAIL_PAYLOAD)
#define GZ_TAIL_VERSION 1

_Static_assert(4 + GZ_ENTRY_SIZE * GZ_ENTRIES_PER_FRAME <= 0xffff &&
	       4 + GZ_ENTRY_SIZE * (GZ_ENTRIES_PER_FRAME + 1) > 0xffff,
	       "an index frame holds as many entries as XLEN allows");
_Static_assert(GZ_TAIL_SIZE == 56, "the tail member is 56 bytes");

/*
 * Index entries hold sizes as LE32, so members must stay under 4 GiB.  A
 * block of this size compresses (compressBound) or stores into well under
 * that; the 64 MiB of slack covers deflate's worst-case growth.
 */
#define GZ_MAX_BLOCK_SIZE ((uint64_t)4032 << 20)

/* Reads and inflate output go 1 MiB at a time: files can be many GiB. */
#define GZ_CHUNK ((size_t)1 << 20)
/* Bytes a reader keeps from before its current chunk; see reader_fill. */
#define GZ_HISTORY 8

/* strm->data_type after inflate() with Z_BLOCK or Z_TREES (zlib.h). */
#define INFLATE_UNUSED_BITS 63
#define INFLATE_AT_BLOCK_END 128
#define INFLATE_AT_HEADER_END 256

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- member framing, shared by writer and reader ---------------------- */

/* No name, no time, "unknown" OS: the same image gives the same bytes. */
static void put_member_header(uint8_t *p, uint8_t flags)
{
	static const uint8_t fixed[GZ_HEADER_SIZE] = {
		GZ_ID1, GZ_ID2, GZ_CM_DEFLATE, 0, 0, 0, 0, 0, 0, GZ_OS_UNKNOWN
	};
	memcpy(p, fixed, sizeof fixed);
	p[3] = flags;
}

static void put_member_trailer(uint8_t *p, uint32_t crc, uint64_t usize)
{
	pp_put_le32(p, crc);
	pp_put_le32(p + 4, (uint32_t)usize);   /* ISIZE is the size mod 2^32 */
}

static void put_frame_head(uint8_t *p, uint8_t si2, size_t payload_len)
{
	put_member_header(p, GZ_FLG_FEXTRA);
	put_le16(p + GZ_HEADER_SIZE, (uint16_t)(4 + payload_len));
	p[GZ_HEADER_SIZE + 2] = GZ_SI1;
	p[GZ_HEADER_SIZE + 3] = si2;
	put_le16(p + GZ_HEADER_SIZE + 4, (uint16_t)payload_len);
}

static void put_frame_tail(uint8_t *p)
{
	/* One final fixed-Huffman block holding only its end-of-block code:
	 * bits 1 (BFINAL), 1 0 (BTYPE 01), 0000000 (code 256) -> 03 00. */
	p[0] = 0x03;
	p[1] = 0x00;
	put_member_trailer(p + 2, 0, 0);       /* CRC-32 and size of nothing */
}

/* Whether frame holds exactly our framing around payload_len bytes. */
static bool is_frame(const uint8_t *frame, uint8_t si2, size_t payload_len)
{
	uint8_t head[GZ_FRAME_HEAD], tail[GZ_FRAME_TAIL];
	put_frame_head(head, si2, payload_len);
	put_frame_tail(tail);
	return memcmp(frame, head, sizeof head) == 0 &&
	       memcmp(frame + GZ_FRAME_HEAD + payload_len, tail,
		      sizeof tail) == 0;
}

static uint64_t stored_block_count(uint64_t usize)
{
	/* An empty member still needs one (empty) final block. */
	return usize == 0 ? 1 : (usize + GZ_STORED_MAX - 1) / GZ_STORED_MAX;
}

static uint64_t stored_member_size(uint64_t usize)
{
	return GZ_HEADER_SIZE + GZ_STORED_HEADER * stored_block_count(usize) +
	       usize + GZ_TRAILER_SIZE;
}

static uint64_t index_frame_count(uint64_t members)
{
	/* Even no members get one frame, so the tail always points at one. */
	return members == 0 ? 1 :
	       (members + GZ_ENTRIES_PER_FRAME - 1) / GZ_ENTRIES_PER_FRAME;
}

static uint64_t index_size(uint64_t members)
{
	return members * GZ_ENTRY_SIZE + index_frame_count(members) * GZ_FRAME;
}

/* What the tail member says. */
typedef struct gz_tail {
	uint64_t usize;         /* of the whole image */
	uint64_t members;       /* data members */
	uint64_t index_offset;  /* of the first index frame */
	uint32_t index_crc;     /* CRC-32 of all index entries, concatenated */
} gz_tail;

static void put_tail(uint8_t *member, const gz_tail *tail)
{
	uint8_t *p = member + GZ_FRAME_HEAD;
	put_frame_head(member, GZ_SI2_TAIL, GZ_TAIL_PAYLOAD);
	p[0] = GZ_TAIL_VERSION;
	p[1] = 0;                              /* flags: none defined */
	pp_put_le64(p + 2, tail->usize);
	pp_put_le64(p + 10, tail->members);
	pp_put_le64(p + 18, tail->index_offset);
	pp_put_le32(p + 26, tail->index_crc);
	put_frame_tail(p + GZ_TAIL_PAYLOAD);
}

/* ---- writing ---------------------------------------------------------- */

static size_t gz_block_bound(const pp_pack_options *options, size_t usize)
{
	(void)options;
	/* libdeflate's bound does not depend on the compressor's level. */
	uint64_t deflated = GZ_HEADER_SIZE +
		(uint64_t)libdeflate_deflate_compress_bound(NULL, usize) +
		GZ_TRAILER_SIZE;
	uint64_t stored = stored_member_size(usize);
	return (size_t)PP_MAX(deflated, stored);
}

/* Deflate stored blocks by hand, so their places follow from usize alone. */
static size_t put_stored_blocks(uint8_t *out, const uint8_t *in, size_t usize)
{
	uint8_t *p = out;
	size_t done = 0;
	do {
		size_t len = PP_MIN(usize - done, (size_t)GZ_STORED_MAX);
		/* BFINAL on the last block, BTYPE 00, then padding to the
		 * byte boundary: the header is one whole byte. */
		p[0] = done + len == usize ? 1 : 0;
		put_le16(p + 1, (uint16_t)len);
		put_le16(p + 3, (uint16_t)~len);
		if (len > 0)   /* in may be NULL for an empty block */
			memcpy(p + GZ_STORED_HEADER, in + done, len);
		p += GZ_STORED_HEADER + len;
		done += len;
	} while (done < usize);
	return (size_t)(p - out);
}

/*
 * Raw deflate of a whole block with libdeflate, which on disk images is
 * about 2.7 times as fast as zlib at level 6 and slightly smaller (see the
 * README).  A fresh compressor per block keeps this pure and repeatable.
 */
static int put_deflated(const pp_pack_options *options, const uint8_t *in,
			size_t usize, uint8_t *out, size_t room,
			size_t *written, pp_error *err)
{
	/* libdeflate goes to 12; partpack's levels are gzip's. */
	if (options->level < 0 || options->level > 9)
		return pp_fail(err, PP_ERR_USAGE,
			       "gzip: compression level %d is not in 0..9",
			       options->level);
	struct libdeflate_compressor *compressor =
		libdeflate_alloc_compressor(options->level);
	if (!compressor)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	*written = libdeflate_deflate_compress(compressor, in, usize, out, room);
	libdeflate_free_compressor(compressor);
	if (*written == 0)
		return pp_fail(err, PP_ERR_USAGE,
			       "gzip: deflate of a %zu-byte block did not fit "
			       "its output space", usize);
	return 0;
}

static int gz_encode_block(const pp_pack_options *options, const uint8_t *in,
			   size_t usize, bool stored, uint8_t *out,
			   size_t *out_len, pp_block_record *record,
			   pp_error *err)
{
	if ((uint64_t)usize > GZ_MAX_BLOCK_SIZE)
		return pp_fail(err, PP_ERR_USAGE,
			       "gzip: a block of %zu bytes is too large: "
			       "gzip blocks hold at most %" PRIu64 " bytes",
			       usize, GZ_MAX_BLOCK_SIZE);
	/* On entry *out_len is out's capacity, as for the xz writer (pack.c
	 * passes block_bound() of its largest block). */
	size_t capacity = *out_len;
	uint64_t needed = stored ? stored_member_size(usize) :
			  GZ_HEADER_SIZE + GZ_TRAILER_SIZE;
	if (capacity < needed)
		return pp_fail(err, PP_ERR_USAGE, "gzip: %zu bytes of output "
			       "space cannot hold a member of %zu bytes",
			       capacity, usize);
	uint8_t *body = out + GZ_HEADER_SIZE;
	size_t body_len = 0;
	put_member_header(out, 0);
	if (stored) {
		body_len = put_stored_blocks(body, in, usize);
	} else {
		size_t room = capacity - GZ_HEADER_SIZE - GZ_TRAILER_SIZE;
		int ret = put_deflated(options, in, usize, body, room,
				       &body_len, err);
		if (ret)
			return ret;
	}
	put_member_trailer(body + body_len, pp_crc32(0, in, usize), usize);
	*out_len = GZ_HEADER_SIZE + body_len + GZ_TRAILER_SIZE;
	*record = (pp_block_record){
		.usize = usize,
		.fsize = *out_len,
		.index_size = *out_len,
		.stored = stored,
	};
	return 0;
}

static int gz_write_header(const pp_pack_options *options, int fd,
			   const char *name, pp_error *err)
{
	/* Every member has its own header: nothing precedes the first. */
	(void)options;
	(void)fd;
	(void)name;
	(void)err;
	return 0;
}

/* Every record must fit its LE32 fields; checked before anything is
 * written, so that a refused index leaves no half of itself behind. */
static int check_records(const pp_block_record *records, size_t count,
			 const char *name, pp_error *err)
{
	for (size_t i = 0; i < count; i++) {
		const pp_block_record *record = &records[i];
		if (record->usize > UINT32_MAX || record->fsize > UINT32_MAX)
			return pp_fail(err, PP_ERR_USAGE,
				       "%s: block %zu (%" PRIu64 " bytes, member "
				       "of %" PRIu64 ") is too large for the "
				       "gzip index", name, i, record->usize,
				       record->fsize);
	}
	return 0;
}

/* Fills one frame's entries and adds them up into *tail.  The data
 * members start at byte 0 (write_header writes nothing), so the index
 * starts where their sizes add up to. */
static void put_index_entries(uint8_t *p, const pp_block_record *records,
			      size_t count, gz_tail *tail)
{
	for (size_t i = 0; i < count; i++) {
		const pp_block_record *record = &records[i];
		pp_put_le32(p, (uint32_t)record->usize);
		pp_put_le32(p + 4, (uint32_t)record->fsize);
		p[8] = record->stored ? GZ_ENTRY_STORED : 0;
		p += GZ_ENTRY_SIZE;
		tail->usize += record->usize;
		tail->index_offset += record->fsize;
	}
}

/* The index frames, GZ_ENTRIES_PER_FRAME entries each but the last. */
static int write_index(const pp_block_record *records, size_t count, int fd,
		       const char *name, gz_tail *tail, pp_error *err)
{
	uint8_t *frame = malloc(GZ_FRAME + GZ_ENTRIES_PER_FRAME * GZ_ENTRY_SIZE);
	if (!frame)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	size_t done = 0;
	int ret = 0;
	do {
		size_t entries = PP_MIN(count - done,
					(size_t)GZ_ENTRIES_PER_FRAME);
		size_t payload_len = entries * GZ_ENTRY_SIZE;
		uint8_t *payload = frame + GZ_FRAME_HEAD;
		put_index_entries(payload, records + done, entries, tail);
		put_frame_head(frame, GZ_SI2_INDEX, payload_len);
		put_frame_tail(payload + payload_len);
		tail->index_crc = pp_crc32(tail->index_crc, payload,
					   payload_len);
		if (pp_write_full(fd, frame, GZ_FRAME + payload_len) < 0) {
			ret = pp_fail_errno(err, PP_ERR_IO,
					    "%s: cannot write the gzip index",
					    name);
			break;
		}
		done += entries;
	} while (done < count);
	free(frame);
	return ret;
}

static int gz_write_trailer(const pp_pack_options *options,
			    const pp_block_record *records, size_t count,
			    int fd, const char *name, pp_error *err)
{
	(void)options;
	gz_tail tail = { .members = count };
	int ret = check_records(records, count, name, err);
	if (!ret)
		ret = write_index(records, count, fd, name, &tail, err);
	if (ret)
		return ret;
	uint8_t member[GZ_TAIL_SIZE];
	put_tail(member, &tail);
	if (pp_write_full(fd, member, sizeof member) < 0)
		return pp_fail_errno(err, PP_ERR_IO,
				     "%s: cannot write the gzip index tail",
				     name);
	return 0;
}

const pp_writer_ops pp_gz_writer = {
	.name = "gzip",
	.block_bound = gz_block_bound,
	.encode_block = gz_encode_block,
	.write_header = gz_write_header,
	.write_trailer = gz_write_trailer,
};

/* ---- reading our own index -------------------------------------------- */

/* Container-private state: only gzip files from elsewhere need any. */
typedef struct gz_state {
	/* The bytes of stored deflate blocks the scan found, less those
	 * that later compressed data copies from (see end_run), in file
	 * order (which is uncompressed order too). */
	pp_extent_list stored;
} gz_state;

/*
 * Reads the last GZ_TAIL_SIZE bytes.  *found is false if they are not our
 * tail member: the file is then a gzip file from elsewhere.  If they start
 * like one, they must be one: damage there is an error, not a reason to
 * treat our archive as foreign.
 */
static int read_tail(const pp_archive *archive, gz_tail *tail, bool *found,
		     pp_error *err)
{
	*found = false;
	if (archive->file_size < GZ_TAIL_SIZE)
		return 0;
	uint64_t at = archive->file_size - GZ_TAIL_SIZE;
	uint8_t member[GZ_TAIL_SIZE];
	if (pp_pread_full(archive->fd, member, sizeof member, at) < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot read byte %"
				     PRIu64, archive->path, at);
	uint8_t head[GZ_FRAME_HEAD];
	put_frame_head(head, GZ_SI2_TAIL, GZ_TAIL_PAYLOAD);
	if (memcmp(member, head, sizeof head) != 0)
		return 0;
	*found = true;
	const uint8_t *p = member + GZ_FRAME_HEAD;
	if (!is_frame(member, GZ_SI2_TAIL, GZ_TAIL_PAYLOAD))
		return pp_fail(err, PP_ERR_FORMAT, "%s: the index tail member "
			       "at byte %" PRIu64 " is damaged",
			       archive->path, at);
	if (p[0] != GZ_TAIL_VERSION)
		return pp_fail(err, PP_ERR_FORMAT, "%s: gzip index version %u "
			       "is not supported", archive->path, p[0]);
	/* A future flag may change what the index means: a patcher that
	 * guessed could write to the wrong bytes. */
	if (p[1] != 0)
		return pp_fail(err, PP_ERR_FORMAT, "%s: gzip index has unknown "
			       "flags 0x%02x", archive->path, p[1]);
	*tail = (gz_tail){
		.usize = pp_get_le64(p + 2),
		.members = pp_get_le64(p + 10),
		.index_offset = pp_get_le64(p + 18),
		.index_crc = pp_get_le32(p + 26),
	};
	return 0;
}

/*
 * Checks the frames of the index read into buf and moves their entries
 * together at the start of buf, so they can be checked and parsed as one
 * array.  buf holds exactly index_size(members) bytes.
 */
static int unframe_index(const pp_archive *archive, const gz_tail *tail,
			 uint8_t *buf, pp_error *err)
{
	uint64_t left = tail->members;
	size_t from = 0, to = 0;
	do {
		size_t entries = (size_t)PP_MIN(left,
						(uint64_t)GZ_ENTRIES_PER_FRAME);
		size_t payload_len = entries * GZ_ENTRY_SIZE;
		if (!is_frame(buf + from, GZ_SI2_INDEX, payload_len))
			return pp_fail(err, PP_ERR_FORMAT, "%s: the index member "
				       "at byte %" PRIu64 " is damaged",
				       archive->path, tail->index_offset + from);
		memmove(buf + to, buf + from + GZ_FRAME_HEAD, payload_len);
		from += GZ_FRAME + payload_len;
		to += payload_len;
		left -= entries;
	} while (left > 0);
	uint32_t crc = pp_crc32(0, buf, to);
	if (crc != tail->index_crc)
		return pp_fail(err, PP_ERR_FORMAT, "%s: gzip index CRC-32 "
			       "mismatch (stored %08" PRIx32 ", computed %08"
			       PRIx32 ")", archive->path, tail->index_crc, crc);
	return 0;
}

/* Whether an entry's member size can belong to its uncompressed size. */
static bool plausible_member(uint64_t usize, uint64_t fsize, bool stored)
{
	return stored ? fsize == stored_member_size(usize) :
			fsize >= GZ_MIN_MEMBER;
}

static int add_indexed_blocks(pp_archive *archive, const gz_tail *tail,
			      const uint8_t *entries, pp_error *err)
{
	uint64_t uoffset = 0, foffset = 0;
	for (uint64_t i = 0; i < tail->members; i++) {
		const uint8_t *entry = entries + i * GZ_ENTRY_SIZE;
		uint64_t usize = pp_get_le32(entry);
		uint64_t fsize = pp_get_le32(entry + 4);
		uint8_t flags = entry[8];
		bool stored = flags & GZ_ENTRY_STORED;
		if (flags & ~GZ_ENTRY_STORED)
			return pp_fail(err, PP_ERR_FORMAT, "%s: gzip index entry "
				       "%" PRIu64 " has unknown flags 0x%02x",
				       archive->path, i, flags);
		if (!plausible_member(usize, fsize, stored))
			return pp_fail(err, PP_ERR_FORMAT, "%s: gzip index entry "
				       "%" PRIu64 ": a %s member of %" PRIu64
				       " bytes cannot take %" PRIu64 " bytes",
				       archive->path, i,
				       stored ? "stored" : "compressed",
				       usize, fsize);
		if (fsize > tail->index_offset - foffset)
			return pp_fail(err, PP_ERR_FORMAT, "%s: gzip index entry "
				       "%" PRIu64 ": members run into the index "
				       "at byte %" PRIu64, archive->path, i,
				       tail->index_offset);
		pp_block block = {
			.uoffset = uoffset,
			.usize = usize,
			.foffset = foffset,
			.fsize = fsize,
			.check_offset = foffset + fsize - GZ_TRAILER_SIZE,
			.check = PP_CHECK_CRC32,
			.stored_known = true,
			.stored = stored,
		};
		int ret = pp_archive_add_block(archive, &block, err);
		if (ret)
			return ret;
		uoffset += usize;
		foffset += fsize;
	}
	if (foffset != tail->index_offset)
		return pp_fail(err, PP_ERR_FORMAT, "%s: gzip index members end "
			       "at byte %" PRIu64 " but the index starts at %"
			       PRIu64, archive->path, foffset,
			       tail->index_offset);
	if (uoffset != tail->usize)
		return pp_fail(err, PP_ERR_FORMAT, "%s: gzip index members hold "
			       "%" PRIu64 " bytes but the tail says %" PRIu64,
			       archive->path, uoffset, tail->usize);
	return 0;
}

/* Reads the whole index in one read, checks it and fills the block table. */
static int read_index(pp_archive *archive, const gz_tail *tail, pp_error *err)
{
	uint64_t index_end = archive->file_size - GZ_TAIL_SIZE;
	/* Every member takes GZ_MIN_MEMBER bytes at least: that bounds the
	 * count before it sizes anything, and index_size() cannot wrap. */
	if (tail->members > index_end / GZ_MIN_MEMBER ||
	    tail->index_offset > index_end ||
	    index_end - tail->index_offset != index_size(tail->members))
		return pp_fail(err, PP_ERR_FORMAT, "%s: the gzip index tail "
			       "does not match the file (%" PRIu64 " members, "
			       "index at byte %" PRIu64 ")", archive->path,
			       tail->members, tail->index_offset);
	size_t len = (size_t)(index_end - tail->index_offset);
	uint8_t *buf = malloc(len);
	if (!buf)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int ret = 0;
	if (pp_pread_full(archive->fd, buf, len, tail->index_offset) < 0)
		ret = pp_fail_errno(err, PP_ERR_IO, "%s: cannot read the gzip "
				    "index at byte %" PRIu64, archive->path,
				    tail->index_offset);
	if (!ret)
		ret = unframe_index(archive, tail, buf, err);
	if (!ret)
		ret = add_indexed_blocks(archive, tail, buf, err);
	free(buf);
	return ret;
}

/* ---- buffered reading ------------------------------------------------- */

/* Reads [start, end) of the archive sequentially, GZ_CHUNK at a time. */
typedef struct gz_reader {
	const pp_archive *archive;
	uint64_t end;           /* file offset where reading stops */
	uint64_t start;         /* file offset of buf[0] */
	size_t len;             /* bytes in buf */
	size_t pos;             /* the next byte to consume */
	uint8_t *buf;           /* GZ_HISTORY + GZ_CHUNK bytes */
	bool reports_progress;  /* the one long pass over a foreign file */
} gz_reader;

static uint64_t reader_offset(const gz_reader *reader)
{
	return reader->start + reader->pos;
}

static bool reader_at_end(const gz_reader *reader)
{
	return reader_offset(reader) == reader->end;
}

/*
 * Reads the next chunk once every byte in buf is consumed.  The last
 * GZ_HISTORY consumed bytes stay at the front: the scanner looks back at a
 * deflate block header after inflate consumed it (note_block_header).
 * At the end, it leaves pos == len.
 */
static int reader_fill(gz_reader *reader, pp_error *err)
{
	size_t keep = PP_MIN(reader->len, (size_t)GZ_HISTORY);
	memmove(reader->buf, reader->buf + reader->len - keep, keep);
	reader->start += reader->len - keep;
	reader->len = keep;
	reader->pos = keep;
	uint64_t from = reader->start + keep;
	size_t want = (size_t)PP_MIN((uint64_t)GZ_CHUNK, reader->end - from);
	if (want == 0)
		return 0;
	if (pp_pread_full(reader->archive->fd, reader->buf + keep, want,
			  from) < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot read byte %"
				     PRIu64, reader->archive->path, from);
	reader->len += want;
	if (reader->reports_progress)
		pp_progress(from + want, reader->end);
	return 0;
}

static int reader_init(gz_reader *reader, const pp_archive *archive,
		       uint64_t start, uint64_t end, pp_error *err)
{
	*reader = (gz_reader){ .archive = archive, .end = end, .start = start };
	reader->buf = malloc(GZ_HISTORY + GZ_CHUNK);
	if (!reader->buf)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	return 0;
}

static void reader_free(gz_reader *reader)
{
	free(reader->buf);
	reader->buf = NULL;
}

/* Data ran out in the middle of a member. */
static int fail_truncated(const gz_reader *reader, size_t member,
			  pp_error *err)
{
	const pp_archive *archive = reader->archive;
	if (reader->end == archive->file_size)
		return pp_fail(err, PP_ERR_FORMAT, "%s: truncated at byte %"
			       PRIu64 " (in member %zu)", archive->path,
			       reader->end, member);
	return pp_fail(err, PP_ERR_FORMAT, "%s: member %zu runs past its end "
		       "at byte %" PRIu64, archive->path, member, reader->end);
}

/*
 * Consumes n bytes, copying them to dst unless it is NULL and adding them
 * to *crc unless that is NULL.
 */
static int reader_take(gz_reader *reader, size_t member, void *dst, size_t n,
		       uint32_t *crc, pp_error *err)
{
	uint8_t *out = dst;
	while (n > 0) {
		if (reader->pos == reader->len) {
			int ret = reader_fill(reader, err);
			if (ret)
				return ret;
			if (reader->pos == reader->len)
				return fail_truncated(reader, member, err);
		}
		const uint8_t *p = reader->buf + reader->pos;
		size_t piece = PP_MIN(n, reader->len - reader->pos);
		if (crc)
			*crc = pp_crc32(*crc, p, piece);
		if (out) {
			memcpy(out, p, piece);
			out += piece;
		}
		reader->pos += piece;
		n -= piece;
	}
	return 0;
}

/* The consumed bytes [offset, offset + n), or NULL if no longer held. */
static const uint8_t *reader_look_back(const gz_reader *reader,
				       uint64_t offset, size_t n)
{
	if (offset < reader->start || offset + n > reader_offset(reader))
		return NULL;
	return reader->buf + (offset - reader->start);
}

/* ---- gzip members: header, deflate data, trailer ---------------------- */

static int fail_not_member(const gz_reader *reader, size_t member,
			   uint64_t at, pp_error *err)
{
	if (member == 1)
		return pp_fail(err, PP_ERR_FORMAT, "%s: not a gzip file",
			       reader->archive->path);
	return pp_fail(err, PP_ERR_FORMAT, "%s: trailing data at byte %" PRIu64
		       " is not a gzip member", reader->archive->path, at);
}

/* Skips a zero-terminated FNAME or FCOMMENT. */
static int skip_string(gz_reader *reader, size_t member, uint32_t *crc,
		       pp_error *err)
{
	uint8_t c;
	do {
		int ret = reader_take(reader, member, &c, 1, crc, err);
		if (ret)
			return ret;
	} while (c != 0);
	return 0;
}

/* Reads a member header (RFC 1952, 2.3), leaving the reader at its
 * deflate data.  Every optional field is allowed: files come from anywhere. */
static int read_member_header(gz_reader *reader, size_t member, pp_error *err)
{
	const char *path = reader->archive->path;
	uint64_t at = reader_offset(reader);
	uint8_t fixed[GZ_HEADER_SIZE];
	uint32_t crc = 0;    /* FHCRC is the low 16 bits of this */
	/* The magic first, so that short trailing junk is called junk. */
	int ret = reader_take(reader, member, fixed, 2, &crc, err);
	if (ret)
		return ret;
	if (fixed[0] != GZ_ID1 || fixed[1] != GZ_ID2)
		return fail_not_member(reader, member, at, err);
	ret = reader_take(reader, member, fixed + 2, sizeof fixed - 2, &crc,
			  err);
	if (ret)
		return ret;
	if (fixed[2] != GZ_CM_DEFLATE)
		return pp_fail(err, PP_ERR_FORMAT, "%s: member %zu: compression "
			       "method %u is not deflate", path, member,
			       fixed[2]);
	uint8_t flags = fixed[3];
	if (flags & GZ_FLG_RESERVED)
		return pp_fail(err, PP_ERR_FORMAT, "%s: member %zu: reserved "
			       "header flags 0x%02x are set", path, member,
			       flags & GZ_FLG_RESERVED);
	if (flags & GZ_FLG_FEXTRA) {
		uint8_t xlen[2];
		ret = reader_take(reader, member, xlen, 2, &crc, err);
		if (!ret)
			ret = reader_take(reader, member, NULL,
					  get_le16(xlen), &crc, err);
	}
	if (!ret && (flags & GZ_FLG_FNAME))
		ret = skip_string(reader, member, &crc, err);
	if (!ret && (flags & GZ_FLG_FCOMMENT))
		ret = skip_string(reader, member, &crc, err);
	if (ret || !(flags & GZ_FLG_FHCRC))
		return ret;
	uint8_t header_crc[2];
	ret = reader_take(reader, member, header_crc, 2, NULL, err);
	if (ret)
		return ret;
	if (get_le16(header_crc) != (uint16_t)crc)
		return pp_fail(err, PP_ERR_FORMAT, "%s: member %zu: header "
			       "CRC mismatch", path, member);
	return 0;
}

static int read_member_trailer(gz_reader *reader, size_t member,
			       uint32_t *crc, uint32_t *isize, pp_error *err)
{
	uint8_t trailer[GZ_TRAILER_SIZE];
	*crc = 0;
	*isize = 0;
	int ret = reader_take(reader, member, trailer, sizeof trailer, NULL,
			      err);
	if (ret)
		return ret;
	*crc = pp_get_le32(trailer);
	*isize = pp_get_le32(trailer + 4);
	return 0;
}

/* Raw inflate of members' deflate data, with our own header parsing so we
 * know where every byte is. */
typedef struct gz_inflater {
	gz_reader in;
	z_stream strm;
	bool strm_ready;
	uint8_t *out;           /* GZ_CHUNK bytes */
} gz_inflater;

static void inflater_free(gz_inflater *inflater)
{
	if (inflater->strm_ready)
		inflateEnd(&inflater->strm);
	inflater->strm_ready = false;
	free(inflater->out);
	inflater->out = NULL;
	reader_free(&inflater->in);
}

/* Ready to inflate from [start, end) of the archive; free it even if this
 * fails. */
static int inflater_init(gz_inflater *inflater, const pp_archive *archive,
			 uint64_t start, uint64_t end, pp_error *err)
{
	*inflater = (gz_inflater){ 0 };
	int ret = reader_init(&inflater->in, archive, start, end, err);
	if (ret)
		return ret;
	inflater->out = malloc(GZ_CHUNK);
	if (!inflater->out)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	ret = inflateInit2(&inflater->strm, -15);
	if (ret == Z_MEM_ERROR)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (ret != Z_OK)
		return pp_fail(err, PP_ERR_FORMAT, "%s: zlib inflateInit2 "
			       "failed (%d)", archive->path, ret);
	inflater->strm_ready = true;
	return 0;
}

/*
 * One call of inflate(): *produced bytes are then in inflater->out, and
 * *finished says the member's deflate data ended.
 */
static int inflater_step(gz_inflater *inflater, size_t member, int flush,
			 size_t *produced, bool *finished, pp_error *err)
{
	gz_reader *in = &inflater->in;
	z_stream *strm = &inflater->strm;
	*produced = 0;
	*finished = false;
	if (in->pos == in->len) {
		/* Deflate data is always followed by the 8-byte trailer:
		 * no input left before its end means the member is cut. */
		int ret = reader_fill(in, err);
		if (ret)
			return ret;
		if (in->pos == in->len)
			return fail_truncated(in, member, err);
	}
	strm->next_in = in->buf + in->pos;
	strm->avail_in = (uInt)(in->len - in->pos);
	strm->next_out = inflater->out;
	strm->avail_out = (uInt)GZ_CHUNK;
	int ret = inflate(strm, flush);
	in->pos = in->len - strm->avail_in;
	*produced = GZ_CHUNK - strm->avail_out;
	*finished = ret == Z_STREAM_END;
	switch (ret) {
	case Z_OK:
	case Z_STREAM_END:
	/* No progress: inflate stopped at a block boundary (Z_TREES) it
	 * could reach without input.  With input and output room it always
	 * moves on at the next call. */
	case Z_BUF_ERROR:
		return 0;
	case Z_MEM_ERROR:
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	default:
		return pp_fail(err, PP_ERR_FORMAT, "%s: member %zu: bad deflate "
			       "data near byte %" PRIu64 ": %s",
			       in->archive->path, member, reader_offset(in),
			       strm->msg ? strm->msg : "unknown error");
	}
}

/* ---- stored bytes that later data copies from -------------------------- */

/*
 * In a gzip file from elsewhere, a member may hold compressed blocks after
 * stored ones, and those may copy from anything in the last 32 KiB of the
 * member's output: stored bytes included.  Patching a stored byte that is
 * copied from would silently change its copies too, and the CRC arithmetic,
 * which assumes that only the patched bytes change, would then write a
 * CRC-32 that gzip rejects.  So every run of stored data that a compressed
 * block follows is traced (empty stored blocks, the flush markers, do not
 * end a run), and the bytes copied from are taken out of its extents.
 *
 * Every decoded byte is a literal or a copy of one earlier byte, and which
 * one follows from the bit stream alone, never from the data.  So we
 * decode what follows the run twice, from the compressed block on, with
 * the window before it replaced by labels: first the low byte of each
 * window position, then its high byte folded in so that a position's two
 * labels always differ.  An output byte that comes out the same both times
 * owes nothing to the window; one that differs is a copy of the window byte
 * its two values name.  This finds exactly the bytes copied from, at the
 * cost of two decodes per run, where a search by flipping candidate bytes
 * would take one per bit of position.
 *
 * Decoding the first 32 KiB of output after the run is enough: a copy
 * reaches back at most 32768 bytes, so any later byte that depends on the
 * run does so through a byte in that stretch.  Stored bytes of a later run
 * in the stretch are literals here and get traced with their own run; and
 * a run at the end of a member (nothing, or only stored blocks, after it)
 * has nothing to trace: the window starts afresh with every member.
 */

#define GZ_WINDOW 32768u        /* deflate's farthest copy */
#define GZ_TRACE_READ ((size_t)64 << 10)
/* 32 KiB of output take at most about twice that much deflate data, but
 * flush markers can pad it without end: past this much we give up tracing
 * and hold back the run's last 32 KiB instead. */
#define GZ_TRACE_INPUT_MAX ((size_t)4 << 20)

typedef struct gz_tracer {
	z_stream strm;
	bool strm_ready;
	uint64_t input_at;      /* file offset of the compressed block */
	uint8_t *input;         /* deflate data read from there */
	size_t input_len;
	size_t input_cap;
	/* Window position i labelled with its low byte, and with its high
	 * byte (at most 127) xor the complement of the low one, which never
	 * equals the low byte: a copy's two labels differ, and name the
	 * position it copies. */
	uint8_t low_labels[GZ_WINDOW];
	uint8_t high_labels[GZ_WINDOW];
	uint8_t low[GZ_WINDOW];         /* the output after low labels */
	uint8_t high[GZ_WINDOW];        /* the output after high labels */
	uint8_t copied[GZ_WINDOW];      /* 1: the window byte is copied from */
} gz_tracer;

static void tracer_free(gz_tracer *tracer)
{
	if (!tracer)
		return;
	if (tracer->strm_ready)
		inflateEnd(&tracer->strm);
	free(tracer->input);
	free(tracer);
}

static int tracer_new(gz_tracer **out, const pp_archive *archive,
		      pp_error *err)
{
	gz_tracer *tracer = calloc(1, sizeof *tracer);
	*out = tracer;
	if (!tracer)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int ret = inflateInit2(&tracer->strm, -15);
	if (ret == Z_MEM_ERROR)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (ret != Z_OK)
		return pp_fail(err, PP_ERR_FORMAT, "%s: zlib inflateInit2 "
			       "failed (%d)", archive->path, ret);
	tracer->strm_ready = true;
	for (uInt i = 0; i < GZ_WINDOW; i++) {
		tracer->low_labels[i] = (uint8_t)i;
		tracer->high_labels[i] = (uint8_t)((i >> 8) ^ ~i);
	}
	return 0;
}

/* Reads more deflate data after what input holds; *got is 0 at the end of
 * the file or at GZ_TRACE_INPUT_MAX. */
static int tracer_read(gz_tracer *tracer, const pp_archive *archive,
		       size_t *got, pp_error *err)
{
	uint64_t from = tracer->input_at + tracer->input_len;
	size_t want = PP_MIN(GZ_TRACE_READ,
			     GZ_TRACE_INPUT_MAX - tracer->input_len);
	want = (size_t)PP_MIN((uint64_t)want, archive->file_size - from);
	*got = 0;
	if (want == 0)
		return 0;
	if (tracer->input_len + want > tracer->input_cap) {
		size_t cap = PP_MAX(2 * tracer->input_cap, GZ_TRACE_READ);
		cap = PP_MIN(cap, GZ_TRACE_INPUT_MAX);
		uint8_t *input = realloc(tracer->input, cap);
		if (!input)
			return pp_fail(err, PP_ERR_NOMEM, "out of memory");
		tracer->input = input;
		tracer->input_cap = cap;
	}
	if (pp_pread_full(archive->fd, tracer->input + tracer->input_len,
			  want, from) < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot read byte %"
				     PRIu64, archive->path, from);
	tracer->input_len += want;
	*got = want;
	return 0;
}

/*
 * Decodes up to GZ_WINDOW bytes into out, from the block at input_at, after
 * a window of the first window_len labels.  *complete says it got them all,
 * or all that the member has; not if the data ended or went bad first (the
 * scan will report that) or took more than GZ_TRACE_INPUT_MAX bytes.
 */
static int trace_decode(gz_tracer *tracer, const pp_archive *archive,
			const uint8_t *labels, uInt window_len, uint8_t *out,
			size_t *out_len, bool *complete, pp_error *err)
{
	z_stream *strm = &tracer->strm;
	size_t pos = 0;
	*out_len = 0;
	*complete = false;
	int zret = inflateReset(strm);
	if (zret == Z_OK)     /* a raw stream takes a window at any time */
		zret = inflateSetDictionary(strm, labels, window_len);
	strm->next_out = out;
	strm->avail_out = GZ_WINDOW;
	while (strm->avail_out > 0 && zret == Z_OK) {
		if (pos == tracer->input_len) {
			size_t got;
			int ret = tracer_read(tracer, archive, &got, err);
			if (ret)
				return ret;
			if (got == 0)
				break;
		}
		strm->next_in = tracer->input + pos;
		strm->avail_in = (uInt)(tracer->input_len - pos);
		zret = inflate(strm, Z_NO_FLUSH);
		pos = tracer->input_len - strm->avail_in;
	}
	if (zret == Z_MEM_ERROR)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	*out_len = GZ_WINDOW - strm->avail_out;
	*complete = strm->avail_out == 0 || zret == Z_STREAM_END;
	return 0;
}

/* The first position from `from` on where a and b differ, or len. */
static size_t next_difference(const uint8_t *a, const uint8_t *b, size_t from,
			      size_t len)
{
	/* Most of the output owes nothing to the window: skip it by words. */
	while (len - from >= sizeof(uint64_t)) {
		uint64_t a_word, b_word;
		memcpy(&a_word, a + from, sizeof a_word);
		memcpy(&b_word, b + from, sizeof b_word);
		if (a_word != b_word)
			break;
		from += sizeof a_word;
	}
	while (from < len && a[from] == b[from])
		from++;
	return from;
}

/*
 * Fills tracer->copied: which of the window_len window bytes the output of
 * the block at input_at and after copies from.  All of them if the trace
 * could not tell.
 */
static int trace_copies(gz_tracer *tracer, const pp_archive *archive,
			uInt window_len, pp_error *err)
{
	size_t low_len = 0, high_len = 0;
	bool low_complete, high_complete = false;
	int ret = trace_decode(tracer, archive, tracer->low_labels, window_len,
			       tracer->low, &low_len, &low_complete, err);
	/* The second decode reads what the first one did, from memory. */
	if (!ret && low_complete)
		ret = trace_decode(tracer, archive, tracer->high_labels,
				   window_len, tracer->high, &high_len,
				   &high_complete, err);
	if (ret)
		return ret;
	bool known = high_complete && high_len == low_len;
	memset(tracer->copied, 0, window_len);
	for (size_t q = 0; known; q++) {
		/* Bytes the same both times are literals, or copies of them. */
		q = next_difference(tracer->low, tracer->high, q, low_len);
		if (q == low_len)
			break;
		uint8_t low = tracer->low[q], high = tracer->high[q];
		size_t source = low | (size_t)(uint8_t)(high ^ ~low) << 8;
		if (source < window_len)
			tracer->copied[source] = 1;
		else
			known = false;  /* cannot be: trust nothing */
	}
	if (!known)
		memset(tracer->copied, 1, window_len);
	return 0;
}

/* The window before a compressed block, in image offsets. */
typedef struct gz_window {
	uint64_t start;         /* image offset of the window's first byte */
	const uint8_t *copied;  /* per byte: 1 if later data copies from it */
} gz_window;

static bool is_copied(const gz_window *window, uint64_t uoffset)
{
	return uoffset >= window->start && window->copied[uoffset -
							    window->start];
}

/* Where the stretch of bytes from `from` on that are all copied (or all
 * not) ends, at most at end, which is in the window. */
static uint64_t stretch_end(const gz_window *window, uint64_t from,
			    uint64_t end, bool copied)
{
	/* Nothing before the window is copied from. */
	uint64_t at = PP_MAX(from, window->start);
	if (at >= end)
		return end;
	const uint8_t *p = window->copied + (at - window->start);
	const uint8_t *other = memchr(p, copied ? 0 : 1, (size_t)(end - at));
	return other ? at + (uint64_t)(other - p) : end;
}

/* Appends the parts of extent that nothing copies from. */
static int append_uncopied(pp_extent_list *list, const pp_extent *extent,
			   const gz_window *window, pp_error *err)
{
	uint64_t from = extent->uoffset;
	uint64_t end = extent->uoffset + extent->length;
	while (from < end) {
		bool copied = is_copied(window, from);
		uint64_t to = stretch_end(window, from, end, copied);
		if (!copied) {
			int ret = pp_extent_append(list, from, to - from,
						   extent->foffset +
						   (from - extent->uoffset),
						   err);
			if (ret)
				return ret;
		}
		from = to;
	}
	return 0;
}

/* ---- scanning gzip files from elsewhere ------------------------------- */

typedef struct gz_scan {
	pp_archive *archive;
	gz_state *state;
	gz_inflater inflater;
	uint64_t uoffset;       /* of the current member's first byte */
	uint64_t produced;      /* by the current member so far */
	uint64_t block_bit;     /* file position, in bits, of the current
				 * deflate block's header */
	size_t run_first;       /* the stored extents from this one on are
				 * the current member's run since its last
				 * compressed block */
	gz_tracer *tracer;      /* made for the first run that needs it */
} gz_scan;

/* Rewrites the run's extents, the last ones in the list, without the
 * bytes the window marks copied from. */
static int drop_copied(gz_scan *scan, const gz_window *window, pp_error *err)
{
	pp_extent_list *list = &scan->state->stored;
	size_t count = list->count - scan->run_first;
	/* The pieces go where the run's extents were: work from a copy. */
	pp_extent *run = malloc(count * sizeof *run);
	if (!run)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	memcpy(run, list->items + scan->run_first, count * sizeof *run);
	list->count = scan->run_first;
	int ret = 0;
	for (size_t i = 0; !ret && i < count; i++)
		ret = append_uncopied(list, &run[i], window, err);
	free(run);
	return ret;
}

/*
 * A compressed block starts at scan->block_bit: if a run of stored data
 * came before it, takes out of the run's extents the bytes that this block
 * and what follows it copy from.
 */
static int end_run(gz_scan *scan, pp_error *err)
{
	if (scan->state->stored.count == scan->run_first)
		return 0;
	/* The run's last stored block ended on a byte boundary, so the
	 * compressed block starts on one: no bits to feed in by hand. */
	if (scan->block_bit % 8 != 0)
		return pp_fail(err, PP_ERR_FORMAT, "%s: lost the deflate block "
			       "boundary after byte %" PRIu64,
			       scan->archive->path, scan->block_bit / 8);
	if (!scan->tracer) {
		int ret = tracer_new(&scan->tracer, scan->archive, err);
		if (ret)
			return ret;
	}
	gz_tracer *tracer = scan->tracer;
	tracer->input_at = scan->block_bit / 8;
	tracer->input_len = 0;
	/* The window holds the member's output so far, up to 32 KiB. */
	uInt window_len = (uInt)PP_MIN(scan->produced, (uint64_t)GZ_WINDOW);
	int ret = trace_copies(tracer, scan->archive, window_len, err);
	if (ret)
		return ret;
	gz_window window = {
		.start = scan->uoffset + scan->produced - window_len,
		.copied = tracer->copied,
	};
	ret = drop_copied(scan, &window, err);
	scan->run_first = scan->state->stored.count;
	return ret;
}

/*
 * inflate has just read a deflate block header (a Z_TREES stop).  A stored
 * block's header is BFINAL and BTYPE (3 bits), padding to the byte, then
 * LEN and NLEN (4 bytes), so it ends on a byte boundary 35 to 42 bits after
 * it starts.  Only a header of just that length can be one, and then the
 * BTYPE bits decide; those and LEN lie within the last 6 bytes consumed,
 * which the reader still holds.
 */
static int note_block_header(gz_scan *scan, pp_error *err)
{
	const gz_reader *in = &scan->inflater.in;
	int unused_bits = scan->inflater.strm.data_type & INFLATE_UNUSED_BITS;
	uint64_t start = scan->block_bit;
	uint64_t end = reader_offset(in) * 8 - (uint64_t)unused_bits;
	if (end != (start + 3 + 7) / 8 * 8 + 32)
		return end_run(scan, err);     /* too long or short: Huffman */
	const uint8_t *header = reader_look_back(in, start / 8, 2);
	const uint8_t *len_nlen = reader_look_back(in, end / 8 - 4, 4);
	if (!header || !len_nlen)
		return pp_fail(err, PP_ERR_FORMAT, "%s: lost the deflate block "
			       "header at byte %" PRIu64, scan->archive->path,
			       start / 8);
	unsigned bits = header[0] | (unsigned)header[1] << 8;
	if ((bits >> (start % 8 + 1) & 3) != 0)
		return end_run(scan, err);     /* BTYPE 01 or 10: Huffman */
	uint16_t len = get_le16(len_nlen);
	if (len == 0)
		return 0;      /* a flush marker: nothing to patch, the run
				* goes on */
	return pp_extent_append(&scan->state->stored,
				scan->uoffset + scan->produced, len, end / 8,
				err);
}

/* Inflates one member's deflate data, stopping at every block boundary. */
static int scan_deflate(gz_scan *scan, size_t member, pp_error *err)
{
	const gz_reader *in = &scan->inflater.in;
	scan->block_bit = reader_offset(in) * 8;
	for (;;) {
		size_t produced;
		bool finished;
		int ret = inflater_step(&scan->inflater, member, Z_TREES,
					&produced, &finished, err);
		if (ret)
			return ret;
		scan->produced += produced;
		if (finished)
			return 0;
		int type = scan->inflater.strm.data_type;
		if (type & INFLATE_AT_HEADER_END) {
			ret = note_block_header(scan, err);
			if (ret)
				return ret;
		} else if (type & INFLATE_AT_BLOCK_END) {
			/* The next block starts here; fewer than 8 bits of
			 * the last byte are still unused. */
			scan->block_bit = reader_offset(in) * 8 -
					  (uint64_t)(type & 7);
		}
	}
}

static int scan_member(gz_scan *scan, size_t member, pp_error *err)
{
	gz_reader *in = &scan->inflater.in;
	uint64_t foffset = reader_offset(in);
	int ret = read_member_header(in, member, err);
	if (ret)
		return ret;
	/* Cannot fail on a stream inflateInit2 set up. */
	inflateReset(&scan->inflater.strm);
	scan->produced = 0;
	/* The window starts empty: no run of an earlier member can be
	 * copied from, and one at the end of a member is safe as it is. */
	scan->run_first = scan->state->stored.count;
	ret = scan_deflate(scan, member, err);
	if (ret)
		return ret;
	uint32_t crc, isize;
	ret = read_member_trailer(in, member, &crc, &isize, err);
	if (ret)
		return ret;
	if (isize != (uint32_t)scan->produced)
		return pp_fail(err, PP_ERR_FORMAT, "%s: member %zu: ISIZE says %"
			       PRIu32 " bytes but the data decodes to %" PRIu64,
			       scan->archive->path, member, isize,
			       scan->produced);
	/* The CRC-32 is not compared here but by decode (pp_verify): a file
	 * whose CRC went stale when someone edited stored bytes must still
	 * open, so that partpatch can repair it. */
	uint64_t fsize = reader_offset(in) - foffset;
	pp_block block = {
		.uoffset = scan->uoffset,
		.usize = scan->produced,
		.foffset = foffset,
		.fsize = fsize,
		.check_offset = foffset + fsize - GZ_TRAILER_SIZE,
		.check = PP_CHECK_CRC32,
		.stored_known = false,
	};
	ret = pp_archive_add_block(scan->archive, &block, err);
	scan->uoffset += scan->produced;
	return ret;
}

/* One pass over the whole file: one block per member, stored extents kept. */
static int scan_file(pp_archive *archive, pp_error *err)
{
	if (archive->file_size == 0)
		return pp_fail(err, PP_ERR_FORMAT, "%s: empty file, not a gzip "
			       "archive", archive->path);
	gz_state *state = calloc(1, sizeof *state);
	if (!state)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	archive->container = state;
	gz_scan scan = { .archive = archive, .state = state };
	int ret = inflater_init(&scan.inflater, archive, 0, archive->file_size,
				err);
	scan.inflater.in.reports_progress = true;
	for (size_t member = 1; !ret && !reader_at_end(&scan.inflater.in);
	     member++)
		ret = scan_member(&scan, member, err);
	inflater_free(&scan.inflater);
	tracer_free(scan.tracer);
	return ret;
}

/* ---- the container ---------------------------------------------------- */

static bool gz_probe(const uint8_t *head, size_t len)
{
	return len >= 3 && head[0] == GZ_ID1 && head[1] == GZ_ID2 &&
	       head[2] == GZ_CM_DEFLATE;
}

static void gz_release(pp_archive *archive)
{
	gz_state *state = archive->container;
	if (state) {
		pp_extent_list_free(&state->stored);
		free(state);
	}
	archive->container = NULL;
}

/* On failure, leaves no blocks and no state behind. */
static int gz_open(pp_archive *archive, pp_error *err)
{
	gz_tail tail = { 0 };
	bool indexed = false;
	int ret = read_tail(archive, &tail, &indexed, err);
	if (!ret)
		ret = indexed ? read_index(archive, &tail, err) :
				scan_file(archive, err);
	if (ret) {
		free(archive->blocks);
		archive->blocks = NULL;
		archive->block_count = 0;
		archive->block_capacity = 0;
		gz_release(archive);
	}
	return ret;
}

/* A stored member of ours: 65535 bytes after every 5-byte block header. */
static int append_stored_member(const pp_block *block, pp_extent_list *list,
				pp_error *err)
{
	uint64_t uoffset = block->uoffset;
	uint64_t foffset = block->foffset + GZ_HEADER_SIZE;
	uint64_t left = block->usize;
	while (left > 0) {
		uint64_t len = PP_MIN(left, (uint64_t)GZ_STORED_MAX);
		int ret = pp_extent_append(list, uoffset, len,
					   foffset + GZ_STORED_HEADER, err);
		if (ret)
			return ret;
		uoffset += len;
		foffset += GZ_STORED_HEADER + len;
		left -= len;
	}
	return 0;
}

/* The scanned stored blocks that lie in block's uncompressed range. */
static int append_scanned(const gz_state *state, const pp_block *block,
			  pp_extent_list *list, pp_error *err)
{
	const pp_extent_list *all = &state->stored;
	size_t low = 0, high = all->count;
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		if (all->items[mid].uoffset < block->uoffset)
			low = mid + 1;
		else
			high = mid;
	}
	uint64_t end = block->uoffset + block->usize;
	for (size_t i = low; i < all->count && all->items[i].uoffset < end;
	     i++) {
		const pp_extent *extent = &all->items[i];
		int ret = pp_extent_append(list, extent->uoffset,
					   extent->length, extent->foffset,
					   err);
		if (ret)
			return ret;
	}
	return 0;
}

static int gz_stored_extents(pp_archive *archive, size_t which,
			     pp_extent_list *list, pp_error *err)
{
	const pp_block *block = &archive->blocks[which];
	/* Our compressed members count as holding no stored data, even
	 * where deflate chose stored blocks: the index does not say where.
	 * Our stored members hold nothing but stored blocks, and every member
	 * starts with an empty window: no compressed data can copy from their
	 * bytes, so all of them are offered, with no tracing. */
	if (block->stored_known)
		return block->stored ? append_stored_member(block, list, err) :
				       0;
	const gz_state *state = archive->container;
	return state ? append_scanned(state, block, list, err) : 0;
}

/* After the whole member was decoded: sizes, place and checks. */
static int check_member_end(gz_inflater *inflater, const pp_block *block,
			    size_t member, uint64_t decoded, uint32_t crc,
			    pp_error *err)
{
	const char *path = inflater->in.archive->path;
	if (decoded != block->usize)
		return pp_fail(err, PP_ERR_FORMAT, "%s: member %zu decodes to %"
			       PRIu64 " bytes, expected %" PRIu64, path,
			       member, decoded, block->usize);
	uint32_t stored_crc, isize;
	int ret = read_member_trailer(&inflater->in, member, &stored_crc,
				      &isize, err);
	if (ret)
		return ret;
	uint64_t end = reader_offset(&inflater->in);
	if (end != block->foffset + block->fsize)
		return pp_fail(err, PP_ERR_FORMAT, "%s: member %zu ends at byte %"
			       PRIu64 ", expected %" PRIu64, path, member, end,
			       block->foffset + block->fsize);
	if (stored_crc != crc)
		return pp_fail(err, PP_ERR_CHECK, "%s: member %zu: CRC-32 "
			       "mismatch (stored %08" PRIx32 ", data %08" PRIx32
			       ")", path, member, stored_crc, crc);
	if (isize != (uint32_t)decoded)
		return pp_fail(err, PP_ERR_CHECK, "%s: member %zu: ISIZE "
			       "mismatch (stored %" PRIu32 ", data %" PRIu32 ")",
			       path, member, isize, (uint32_t)decoded);
	return 0;
}

/*
 * Feeds the sink up to limit bytes.  A limit that reaches the block's end
 * decodes the whole member, and only then the trailer is compared too.
 */
static int decode_member(gz_inflater *inflater, const pp_block *block,
			 size_t member, uint64_t limit, pp_sink_fn sink,
			 void *opaque, pp_error *err)
{
	bool whole = limit >= block->usize;
	uint64_t decoded = 0;
	uint32_t crc = 0;
	bool finished = false;
	while (!finished && (whole || decoded < limit)) {
		size_t produced;
		int ret = inflater_step(inflater, member, Z_NO_FLUSH,
					&produced, &finished, err);
		if (ret)
			return ret;
		if (produced > block->usize - decoded)
			return pp_fail(err, PP_ERR_FORMAT, "%s: member %zu "
				       "decodes to more than %" PRIu64 " bytes",
				       inflater->in.archive->path, member,
				       block->usize);
		crc = pp_crc32(crc, inflater->out, produced);
		size_t feed = (size_t)PP_MIN((uint64_t)produced,
					     limit - decoded);
		if (feed > 0) {
			ret = sink(opaque, inflater->out, feed, err);
			if (ret)
				return ret;
		}
		decoded += produced;
	}
	/* A partial read compares nothing, even if inflate happened to reach
	 * the end: partpatch reads old bytes of blocks whose CRC it is about
	 * to repair.  Data that ended short of limit is an error either way. */
	if (whole || decoded < limit)
		return check_member_end(inflater, block, member, decoded, crc,
					err);
	return 0;
}

static int gz_decode(pp_archive *archive, size_t which, uint64_t limit,
		     pp_sink_fn sink, void *opaque, pp_error *err)
{
	const pp_block *block = &archive->blocks[which];
	size_t member = which + 1;     /* blocks are members, counted from 1 */
	gz_inflater inflater;
	int ret = inflater_init(&inflater, archive, block->foffset,
				block->foffset + block->fsize, err);
	if (!ret)
		ret = read_member_header(&inflater.in, member, err);
	if (!ret)
		ret = decode_member(&inflater, block, member, limit, sink,
				    opaque, err);
	inflater_free(&inflater);
	return ret;
}

const pp_container_ops pp_gz_container = {
	.format = PP_FORMAT_GZIP,
	.probe = gz_probe,
	.open = gz_open,
	.stored_extents = gz_stored_extents,
	.decode = gz_decode,
	.release = gz_release,
};
