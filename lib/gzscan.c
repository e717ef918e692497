/*
 * gzscan.c - gzip files that partpack did not write: one pass over the file
 * finds every member, each of which becomes one block, and where the raw
 * bytes of its stored deflate blocks lie.  gz.c calls it for a file that
 * has no partpack index (docs/gzip-layout.md, section 8).
 *
 * Such a file is scanned once: inflate stops at every deflate block header
 * (Z_TREES), and for each stored block we note where its raw bytes lie.
 * That is how a file written by zlib with deflateParams() switching to
 * level 0 around a region can be patched too.  Compressed data after stored
 * data may copy from it, so the scan traces those copies and offers only the
 * stored bytes that nothing copies from.
 *
 * Members are read with our own header parsing, since any optional field
 * may turn up, and raw inflate, so that we know where every byte is.  gz.c
 * decodes members, ours and others', through the same reader and inflater.
 */
#include "internal.h"
#include "gz.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Header flags that only other writers set (FEXTRA is in gz.h). */
#define GZ_FLG_FHCRC 0x02
#define GZ_FLG_FNAME 0x08
#define GZ_FLG_FCOMMENT 0x10
#define GZ_FLG_RESERVED 0xe0

/* Reads and inflate output go 1 MiB at a time: files can be many GiB. */
#define GZ_CHUNK ((size_t)1 << 20)
/* Bytes a reader keeps from before its current chunk; see reader_fill. */
#define GZ_HISTORY 8

/* strm->data_type after inflate() with Z_BLOCK or Z_TREES (zlib.h). */
#define INFLATE_UNUSED_BITS 63
#define INFLATE_AT_BLOCK_END 128
#define INFLATE_AT_HEADER_END 256

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- buffered reading ------------------------------------------------- */

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
	if (pp_archive_read(reader->archive, reader->buf + keep, want,
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
int pp_gz_read_member_header(gz_reader *reader, size_t member,
			     pp_error *err)
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

int pp_gz_read_member_trailer(gz_reader *reader, size_t member,
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

void pp_gz_inflater_free(gz_inflater *inflater)
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
int pp_gz_inflater_init(gz_inflater *inflater, const pp_archive *archive,
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
int pp_gz_inflater_step(gz_inflater *inflater, size_t member, int flush,
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
	if (pp_archive_read(archive, tracer->input + tracer->input_len,
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
		int ret = pp_gz_inflater_step(&scan->inflater, member,
					      Z_TREES, &produced, &finished,
					      err);
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
	int ret = pp_gz_read_member_header(in, member, err);
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
	ret = pp_gz_read_member_trailer(in, member, &crc, &isize, err);
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
int pp_gz_scan_file(pp_archive *archive, pp_error *err)
{
	if (archive->file_size == 0)
		return pp_fail(err, PP_ERR_FORMAT, "%s: empty file, not a gzip "
			       "archive", archive->path);
	gz_state *state = calloc(1, sizeof *state);
	if (!state)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	archive->container = state;
	gz_scan scan = { .archive = archive, .state = state };
	int ret = pp_gz_inflater_init(&scan.inflater, archive, 0,
				      archive->file_size, err);
	scan.inflater.in.reports_progress = true;
	for (size_t member = 1; !ret && !reader_at_end(&scan.inflater.in);
	     member++)
		ret = scan_member(&scan, member, err);
	pp_gz_inflater_free(&scan.inflater);
	tracer_free(scan.tracer);
	return ret;
}
