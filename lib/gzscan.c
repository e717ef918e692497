/*
 * gzscan.c - gzip files that partpack did not write: one pass over the file
 * finds every member, each of which becomes one block, and where the raw
 * bytes of its stored deflate blocks lie.  gz.c calls it for a file that
 * has no partpack index (lib/gzip-layout.md, section 8) and keeps the
 * list of stored extents it fills.
 *
 * Such a file is scanned once: inflate stops at every deflate block header
 * (Z_TREES), and for each stored block we note where its raw bytes lie.
 * That is how a file written by zlib with deflateParams() switching to
 * level 0 around a region can be patched too.  Compressed data after stored
 * data may copy from it, so the scan traces those copies and offers only the
 * stored bytes that nothing copies from.
 *
 * Members are read with our own header parsing (gzmember.c), since any
 * optional field may turn up, and raw inflate (gzread.c), so that we know
 * where every byte is.
 */
#include "gzscan.h"
#include "gzmember.h"
#include "gzread.h"
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "error.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* strm->data_type after inflate() with Z_BLOCK or Z_TREES (zlib.h). */
#define INFLATE_UNUSED_BITS 63
#define INFLATE_AT_BLOCK_END 128
#define INFLATE_AT_HEADER_END 256

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

/*
 * And the traces of one file share a budget.  A file can alternate stored
 * and compressed blocks without end (100,000 runs in 5 MB), and each trace
 * decodes up to 32 KiB twice, up to 4 MiB of input: unbounded, that made
 * opening such a file take minutes, and every nbdkit connection pays for
 * the open.  A trace costs what it inflates, input and output, both
 * times; all of them together may cost GZ_TRACE_BUDGET_FACTOR times the
 * file's size (at least GZ_TRACE_BUDGET_MIN), about as much work again as
 * the scan itself does.  Once that is spent, each later run is held back
 * as an unfinished trace is: its last 32 KiB, all that a later copy can
 * reach, are not offered for patching (a notice says how many runs).
 * Files that keep a few regions raw (a partition, zlib's deflateParams
 * around it) never come near it.
 */
#define GZ_TRACE_BUDGET_FACTOR 4u
#define GZ_TRACE_BUDGET_MIN ((uint64_t)64 << 20)

typedef struct gz_tracer {
	z_stream strm;
	bool strm_ready;
	uint64_t input_at;      /* file offset of the compressed block */
	uint8_t *input;         /* deflate data read from there */
	size_t input_len;
	size_t input_cap;
	size_t input_max;       /* this trace's part of the budget */
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
	int ret = pp_gz_raw_inflate_init(&tracer->strm, archive, err);
	if (ret)
		return ret;
	tracer->strm_ready = true;
	for (uInt i = 0; i < GZ_WINDOW; i++) {
		tracer->low_labels[i] = (uint8_t)i;
		tracer->high_labels[i] = (uint8_t)((i >> 8) ^ ~i);
	}
	return 0;
}

/* Reads more deflate data after what input holds; *got is 0 at the end of
 * the file or at input_max. */
static int tracer_read(gz_tracer *tracer, const pp_archive *archive,
		       size_t *got, pp_error *err)
{
	uint64_t from = tracer->input_at + tracer->input_len;
	size_t want = PP_MIN(GZ_TRACE_READ,
			     tracer->input_max - tracer->input_len);
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
	if (pp_archive_read_or_fail(archive, tracer->input + tracer->input_len,
				    want, from, err))
		return PP_ERR_IO;
	tracer->input_len += want;
	*got = want;
	return 0;
}

/*
 * Decodes up to GZ_WINDOW bytes into out, from the block at input_at, after
 * a window of the first window_len labels.  *complete says it got them all,
 * or all that the member has; not if the data ended or went bad first (the
 * scan will report that) or took more than input_max bytes.
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
	pp_extent_list *stored;     /* the caller's */
	gz_inflater inflater;
	uint64_t uoffset;       /* of the current member's first byte */
	uint64_t produced;      /* by the current member so far */
	uint64_t block_bit;     /* file position, in bits, of the current
				 * deflate block's header */
	size_t run_first;       /* the stored extents from this one on are
				 * the current member's run since its last
				 * compressed block */
	gz_tracer *tracer;      /* made for the first run that needs it */
	uint64_t budget;        /* what traces may still inflate, bytes */
	size_t held_back;       /* runs not traced for want of budget */
} gz_scan;

/* Rewrites the run's extents, the last ones in the list, without the
 * bytes the window marks copied from. */
static int drop_copied(gz_scan *scan, const gz_window *window, pp_error *err)
{
	pp_extent_list *list = scan->stored;
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
	if (scan->stored->count == scan->run_first)
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
	int ret = 0;
	if (scan->budget <= 2 * GZ_WINDOW) {
		/* Spent: held back as an unfinished trace would be. */
		memset(tracer->copied, 1, window_len);
		scan->held_back++;
	} else {
		/* Two decodes of the input and of 32 KiB out each. */
		tracer->input_max = (size_t)PP_MIN((uint64_t)GZ_TRACE_INPUT_MAX,
						   scan->budget / 2 - GZ_WINDOW);
		ret = trace_copies(tracer, scan->archive, window_len, err);
		uint64_t cost = 2 * ((uint64_t)tracer->input_len + GZ_WINDOW);
		scan->budget -= PP_MIN(cost, scan->budget);
	}
	if (ret)
		return ret;
	gz_window window = {
		.start = scan->uoffset + scan->produced - window_len,
		.copied = tracer->copied,
	};
	ret = drop_copied(scan, &window, err);
	scan->run_first = scan->stored->count;
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
	const uint8_t *header = pp_gz_reader_look_back(in, start / 8, 2);
	const uint8_t *len_nlen = pp_gz_reader_look_back(in, end / 8 - 4, 4);
	if (!header || !len_nlen)
		return pp_fail(err, PP_ERR_FORMAT, "%s: lost the deflate block "
			       "header at byte %" PRIu64, scan->archive->path,
			       start / 8);
	unsigned bits = header[0] | (unsigned)header[1] << 8;
	if ((bits >> (start % 8 + 1) & 3) != 0)
		return end_run(scan, err);     /* BTYPE 01 or 10: Huffman */
	uint16_t len = pp_get_le16(len_nlen);
	if (len == 0)
		return 0;      /* a flush marker: nothing to patch, the run
				* goes on */
	return pp_extent_append(scan->stored,
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
	scan->run_first = scan->stored->count;
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

/* What the traces of a file of file_size bytes may inflate together. */
static uint64_t trace_budget(uint64_t file_size)
{
	return PP_MAX(GZ_TRACE_BUDGET_MIN, GZ_TRACE_BUDGET_FACTOR *
		      PP_MIN(file_size, UINT64_MAX / GZ_TRACE_BUDGET_FACTOR));
}

int pp_gz_scan(pp_archive *archive, pp_extent_list *stored, pp_error *err)
{
	if (archive->file_size == 0)
		return pp_fail(err, PP_ERR_FORMAT, "%s: empty file, not a gzip "
			       "archive", archive->path);
	gz_scan scan = {
		.archive = archive,
		.stored = stored,
		.budget = trace_budget(archive->file_size),
	};
	int ret = pp_gz_inflater_init(&scan.inflater, archive, 0,
				      archive->file_size, err);
	scan.inflater.in.reports_progress = true;
	for (size_t member = 1; !ret && !reader_at_end(&scan.inflater.in);
	     member++)
		ret = scan_member(&scan, member, err);
	if (ret == 0 && scan.held_back > 0)
		pp_notice("%s: the last 32 KiB of %zu runs of stored data are "
			  "held back from patching (later data may copy from "
			  "them): tracing so many would cost over %" PRIu64
			  " MiB of decoding", archive->path,
			  scan.held_back, trace_budget(archive->file_size) >> 20);
	pp_gz_inflater_free(&scan.inflater);
	tracer_free(scan.tracer);
	return ret;
}
