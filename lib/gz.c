/*
 * gz.c - the gzip container: one gzip member per block and an index of
 * member sizes hidden in empty members at the end.  gzip files that
 * partpack did not write are scanned by gzscan.c.
 *
 * lib/gzip-layout.md is the specification; this is the tour.
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
 * Any other gzip file has no such index: gzscan.c reads it once, one block
 * per member, and fills the list of stored extents this file keeps for the
 * archive.  Members of either kind are decoded here, with the member
 * framing of gzmember.c and the inflater of gzread.c.
 */
#include "gzmember.h"
#include "gzread.h"
#include "gzscan.h"
#include "archio.h"
#include "archive.h"
#include "array.h"
#include "blocks.h"
#include "container.h"
#include "crc.h"
#include "error.h"
#include "io.h"

#include <libdeflate.h>

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- the format's numbers --------------------------------------------- */

/* The member header's and trailer's fields and sizes are in gzmember.h. */
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

/* ---- index frames, shared by writer and reader ------------------------ */

static void put_frame_head(uint8_t *p, uint8_t si2, size_t payload_len)
{
	pp_gz_put_member_header(p, GZ_FLG_FEXTRA);
	pp_put_le16(p + GZ_HEADER_SIZE, (uint16_t)(4 + payload_len));
	p[GZ_HEADER_SIZE + 2] = GZ_SI1;
	p[GZ_HEADER_SIZE + 3] = si2;
	pp_put_le16(p + GZ_HEADER_SIZE + 4, (uint16_t)payload_len);
}

static void put_frame_tail(uint8_t *p)
{
	/* One final fixed-Huffman block holding only its end-of-block code:
	 * bits 1 (BFINAL), 1 0 (BTYPE 01), 0000000 (code 256) -> 03 00. */
	p[0] = 0x03;
	p[1] = 0x00;
	pp_gz_put_member_trailer(p + 2, 0, 0);  /* CRC-32, size of nothing */
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

/* The largest member we write for a block of usize bytes. */
static uint64_t member_bound(size_t usize)
{
	/* libdeflate's bound does not depend on the compressor's level. */
	uint64_t deflated = GZ_HEADER_SIZE +
		(uint64_t)libdeflate_deflate_compress_bound(NULL, usize) +
		GZ_TRAILER_SIZE;
	uint64_t stored = stored_member_size(usize);
	return PP_MAX(deflated, stored);
}

static size_t gz_block_bound(const pp_pack_options *options, size_t usize)
{
	(void)options;
	return (size_t)member_bound(usize);
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
		pp_put_le16(p + 1, (uint16_t)len);
		pp_put_le16(p + 3, (uint16_t)~len);
		if (len > 0)   /* in may be NULL for an empty block */
			memcpy(p + GZ_STORED_HEADER, in + done, len);
		p += GZ_STORED_HEADER + len;
		done += len;
	} while (done < usize);
	return (size_t)(p - out);
}

/*
 * Raw deflate of a whole block with libdeflate, which on disk images is
 * about 2.7 times as fast as zlib at level 6 and slightly smaller (see
 * lib/design.md, "Why libdeflate").  A fresh compressor per block keeps
 * this pure and repeatable.
 */
static int put_deflated(const pp_pack_options *options, const uint8_t *in,
			size_t usize, uint8_t *out, size_t room,
			size_t *written, pp_error *err)
{
	/* libdeflate goes to 12; partpack's levels are gzip's. */
	if (options->level < 0 || options->level > 9)
		return pp_fail(err, PP_ERR_INTERNAL,
			       "gzip: compression level %d is not in 0..9",
			       options->level);
	struct libdeflate_compressor *compressor =
		libdeflate_alloc_compressor(options->level);
	if (!compressor)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	*written = libdeflate_deflate_compress(compressor, in, usize, out, room);
	libdeflate_free_compressor(compressor);
	if (*written == 0)
		return pp_fail(err, PP_ERR_INTERNAL,
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
		return pp_fail(err, PP_ERR_INTERNAL,
			       "gzip: a block of %zu bytes is too large: "
			       "gzip blocks hold at most %" PRIu64 " bytes",
			       usize, GZ_MAX_BLOCK_SIZE);
	/* On entry *out_len is out's capacity, as for the xz writer (pack.c
	 * passes block_bound() of its largest block). */
	size_t capacity = *out_len;
	uint64_t needed = stored ? stored_member_size(usize) :
			  GZ_HEADER_SIZE + GZ_TRAILER_SIZE;
	if (capacity < needed)
		return pp_fail(err, PP_ERR_INTERNAL, "gzip: %zu bytes of output "
			       "space cannot hold a member of %zu bytes",
			       capacity, usize);
	uint8_t *body = out + GZ_HEADER_SIZE;
	size_t body_len = 0;
	pp_gz_put_member_header(out, 0);
	if (stored) {
		body_len = put_stored_blocks(body, in, usize);
	} else {
		size_t room = capacity - GZ_HEADER_SIZE - GZ_TRAILER_SIZE;
		int ret = put_deflated(options, in, usize, body, room,
				       &body_len, err);
		if (ret)
			return ret;
	}
	pp_gz_put_member_trailer(body + body_len, pp_crc32(0, in, usize),
				 usize);
	*out_len = GZ_HEADER_SIZE + body_len + GZ_TRAILER_SIZE;
	*record = (pp_block_record){
		.usize = usize,
		.fsize = *out_len,
		.index_size = *out_len,
		.stored = stored,
	};
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
			return pp_fail(err, PP_ERR_INTERNAL,
				       "%s: block %zu (%" PRIu64 " bytes, member "
				       "of %" PRIu64 ") is too large for the "
				       "gzip index", name, i + 1, record->usize,
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

/* ---- reading our own index -------------------------------------------- */

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
	if (pp_archive_read_or_fail(archive, member, sizeof member, at, err))
		return PP_ERR_IO;
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
	if (pp_archive_read(archive, buf, len, tail->index_offset) < 0)
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

/* ---- the container ---------------------------------------------------- */

/* Container-private state: only gzip files from elsewhere need any. */
typedef struct gz_state {
	/* The bytes of stored deflate blocks the scan found, less those
	 * that later compressed data copies from (gzscan.c), in file order
	 * (which is uncompressed order too). */
	pp_extent_list stored;
} gz_state;

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

/* A file with no index of ours: the scan finds the blocks, and the stored
 * extents that only this file keeps. */
static int scan_foreign(pp_archive *archive, pp_error *err)
{
	gz_state *state = calloc(1, sizeof *state);
	if (!state)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	archive->container = state;
	return pp_gz_scan(archive, &state->stored, err);
}

/* On failure, leaves no blocks and no state behind. */
static int gz_open(pp_archive *archive, pp_error *err)
{
	gz_tail tail = { 0 };
	bool indexed = false;
	int ret = read_tail(archive, &tail, &indexed, err);
	if (!ret)
		ret = indexed ? read_index(archive, &tail, err) :
				scan_foreign(archive, err);
	if (ret) {
		pp_archive_drop_blocks(archive);
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

static bool extent_starts_from(const void *item, const void *key)
{
	return ((const pp_extent *)item)->uoffset >= *(const uint64_t *)key;
}

/* The scanned stored blocks that lie in block's uncompressed range. */
static int append_scanned(const gz_state *state, const pp_block *block,
			  pp_extent_list *list, pp_error *err)
{
	const pp_extent_list *all = &state->stored;
	size_t low = pp_search_first(all->items, all->count, sizeof *all->items,
				     extent_starts_from, &block->uoffset);
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
	int ret = pp_gz_read_member_trailer(&inflater->in, member,
					    &stored_crc, &isize, err);
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
		int ret = pp_gz_inflater_step(inflater, member, Z_NO_FLUSH,
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

/* Decodes with zlib, a chunk at a time: any member, any limit. */
static int decode_streaming(pp_archive *archive, size_t which, uint64_t limit,
			    pp_sink_fn sink, void *opaque, pp_error *err)
{
	const pp_block *block = &archive->blocks[which];
	size_t member = which + 1;     /* blocks are members, counted from 1 */
	gz_inflater inflater;
	int ret = pp_gz_inflater_init(&inflater, archive, block->foffset,
				      block->foffset + block->fsize, err);
	if (!ret)
		ret = pp_gz_read_member_header(&inflater.in, member, err);
	if (!ret)
		ret = decode_member(&inflater, block, member, limit, sink,
				    opaque, err);
	pp_gz_inflater_free(&inflater);
	return ret;
}

/*
 * ---- a whole member in one call ----
 *
 * zlib inflates a member a chunk at a time, which any member allows (a
 * member from gzip is as long as its file) and a partial read needs.
 * libdeflate inflates a whole member from one buffer into another, two to
 * three times as fast, and computes the CRC-32 faster too.  Our members
 * are blocks whose two sizes the index gives: when the whole block is
 * wanted, the member is read in one piece and libdeflate does the rest.
 *
 * libdeflate's result is taken only if the member decoded exactly: our
 * header, usize bytes, the CRC-32 and ISIZE matching, the trailer ending
 * the member.  Anything else (damage above all) is decoded again by zlib,
 * whose verdict and message (check_member_end) are the ones reported:
 * damage costs a second decode, and keeps one set of messages.
 */

/*
 * Whether a member goes through libdeflate.  Only ours: a gzip file from
 * elsewhere may be one member of any size.  Only with sizes our writer
 * produces, so that a damaged index cannot make us read or allocate more
 * than a block of ours takes (PP_MAX_BLOCK_SIZE at most); an empty member
 * gains nothing.
 */
static bool whole_in_one(const pp_block *block)
{
	return block->stored_known && block->usize > 0 &&
	       block->usize <= PP_MAX_BLOCK_SIZE &&
	       block->fsize <= member_bound((size_t)block->usize);
}

/* Inflates block's member into out (usize bytes) with libdeflate: true
 * if it decoded exactly, else out holds anything.  The member's bytes
 * (about a third of a block on disk images) are all the memory it adds
 * to the output's: zlib's path holds 2 MiB of chunks instead. */
static bool inflate_whole(const pp_archive *archive, const pp_block *block,
			  uint8_t *out)
{
	size_t fsize = (size_t)block->fsize;
	uint8_t *in = malloc(fsize);
	struct libdeflate_decompressor *decompressor =
		libdeflate_alloc_decompressor();
	uint8_t ours[GZ_HEADER_SIZE];
	pp_gz_put_member_header(ours, 0);
	size_t in_used = 0, out_used = 0;
	/* libdeflate skips any optional header field but checks no FHCRC:
	 * the header must be the one we write (fsize >= GZ_MIN_MEMBER). */
	bool exact = in && decompressor &&
		pp_archive_read(archive, in, fsize, block->foffset) == 0 &&
		memcmp(in, ours, sizeof ours) == 0 &&
		libdeflate_gzip_decompress_ex(decompressor, in, fsize, out,
					      (size_t)block->usize, &in_used,
					      &out_used) == LIBDEFLATE_SUCCESS &&
		in_used == fsize && out_used == block->usize;
	libdeflate_free_decompressor(decompressor);
	free(in);
	return exact;
}

static int gz_decode(pp_archive *archive, size_t which, uint64_t limit,
		     pp_sink_fn sink, void *opaque, pp_error *err)
{
	const pp_block *block = &archive->blocks[which];
	/* The sink takes the block in one piece from a buffer of ours, but
	 * only one as large as pp_decode_blocks would hold: it streams the
	 * larger blocks through here to keep its memory bounded. */
	if (limit >= block->usize && block->usize <= PP_DECODE_BUFFER_MAX &&
	    whole_in_one(block)) {
		size_t usize = (size_t)block->usize;
		uint8_t *out = malloc(usize);
		if (out && inflate_whole(archive, block, out)) {
			int ret = sink(opaque, out, usize, err);
			free(out);
			return ret;
		}
		free(out);
	}
	return decode_streaming(archive, which, limit, sink, opaque, err);
}

/* Straight into the caller's buffer: the workers of pp_decode_blocks and
 * the read cache hold one per block already. */
static int gz_decode_whole(pp_archive *archive, size_t which, uint8_t *buf,
			   pp_error *err)
{
	const pp_block *block = &archive->blocks[which];
	if (whole_in_one(block) && inflate_whole(archive, block, buf))
		return 0;
	pp_fill_sink fill = { .dest = buf, .room = (size_t)block->usize };
	return decode_streaming(archive, which, UINT64_MAX, pp_fill_sink_fn,
				&fill, err);
}

/*
 * A compressed member of ours is our fixed member header and raw deflate;
 * the index says which members are compressed.  The level leaves no trace
 * in the member (XFL is always 0), so only re-encoding can tell it.
 */
static int gz_reuse_record(pp_archive *archive, size_t which,
			   const pp_pack_options *options,
			   pp_block_record *record, enum pp_reuse_fit *fit,
			   pp_error *err)
{
	const pp_block *block = &archive->blocks[which];
	(void)options;
	*fit = PP_REUSE_NO;
	if (!block->stored_known || block->stored ||
	    block->fsize < GZ_MIN_MEMBER)
		return 0;
	uint8_t want[GZ_HEADER_SIZE], found[GZ_HEADER_SIZE];
	pp_gz_put_member_header(want, 0);
	if (pp_archive_read_or_fail(archive, found, sizeof found,
				    block->foffset, err))
		return PP_ERR_IO;
	if (memcmp(want, found, sizeof want) != 0)
		return 0;
	/* The index says which members are stored: never in doubt. */
	return pp_reuse_fits_as_is(block, record, fit);
}

/* The container, listed by the registry (format.c). */
const pp_container_ops pp_gz_container = {
	.format = PP_FORMAT_GZIP,
	.names = (const char *const[]){ "gzip", "gz", NULL },
	.suffixes = (const char *const[]){ ".gz", ".tgz", ".gzip", NULL },
	/* gzip's levels; libdeflate's 10..12 are not offered. */
	.level_min = 0,
	.level_max = 9,
	.level_default = 6,
	/* Every member carries a CRC-32, and nothing else. */
	.checks = 1u << PP_CHECK_CRC32,
	.default_check = PP_CHECK_CRC32,
	.block_bound = gz_block_bound,
	.encode_block = gz_encode_block,
	/* Every member has its own header: nothing precedes the first. */
	.write_header = pp_write_no_header,
	.write_trailer = gz_write_trailer,
	.probe = gz_probe,
	.open = gz_open,
	.stored_extents = gz_stored_extents,
	.decode = gz_decode,
	.decode_whole = gz_decode_whole,
	.reuse_record = gz_reuse_record,
	/* The index says which members are stored and the layout of ours
	 * follows from their size; a foreign file's were found when it was
	 * opened: listing them reads nothing either way. */
	.stored_layout = gz_stored_extents,
	.release = gz_release,
};
