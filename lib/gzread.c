/*
 * gzread.c - reading deflate data out of a gzip archive, a chunk at a time:
 * files can be many GiB.  The reader hands out the archive's bytes in
 * order and remembers where each one was; the inflater runs raw inflate
 * over them, so the caller parses member framing itself (gzmember.c) and
 * knows the file offset of every deflate block.
 */
#include "gzread.h"
#include "archio.h"
#include "archive.h"
#include "crc.h"
#include "error.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Reads and inflate output go 1 MiB at a time. */
#define GZ_CHUNK ((size_t)1 << 20)

/* ---- buffered reading ------------------------------------------------- */

/*
 * Reads the next chunk once every byte in buf is consumed.  The last
 * GZ_HISTORY consumed bytes stay at the front: the scanner looks back at a
 * deflate block header after inflate consumed it (gzscan.c).
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
	if (pp_archive_read_or_fail(reader->archive, reader->buf + keep, want,
				    from, err))
		return PP_ERR_IO;
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

/* Makes at least one unread byte available, reading the next chunk if
 * buf is consumed; no byte left before the end cuts the member short. */
static int reader_need(gz_reader *reader, size_t member, pp_error *err)
{
	if (reader->pos < reader->len)
		return 0;
	int ret = reader_fill(reader, err);
	if (ret)
		return ret;
	if (reader->pos == reader->len)
		return fail_truncated(reader, member, err);
	return 0;
}

int pp_gz_reader_take(gz_reader *reader, size_t member, void *dst, size_t n,
		      uint32_t *crc, pp_error *err)
{
	uint8_t *out = dst;
	while (n > 0) {
		int ret = reader_need(reader, member, err);
		if (ret)
			return ret;
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

const uint8_t *pp_gz_reader_look_back(const gz_reader *reader,
				      uint64_t offset, size_t n)
{
	if (offset < reader->start || offset + n > reader_offset(reader))
		return NULL;
	return reader->buf + (offset - reader->start);
}

/* ---- raw inflate ------------------------------------------------------ */

int pp_gz_raw_inflate_init(z_stream *strm, const pp_archive *archive,
			   pp_error *err)
{
	*strm = (z_stream){ 0 };
	int ret = inflateInit2(strm, -15);    /* no zlib or gzip wrapper */
	if (ret == Z_MEM_ERROR)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (ret != Z_OK)
		return pp_fail(err, PP_ERR_FORMAT, "%s: zlib inflateInit2 "
			       "failed (%d)", archive->path, ret);
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
	ret = pp_gz_raw_inflate_init(&inflater->strm, archive, err);
	inflater->strm_ready = ret == 0;
	return ret;
}

int pp_gz_inflater_step(gz_inflater *inflater, size_t member, int flush,
			size_t *produced, bool *finished, pp_error *err)
{
	gz_reader *in = &inflater->in;
	z_stream *strm = &inflater->strm;
	*produced = 0;
	*finished = false;
	/* Deflate data is always followed by the 8-byte trailer: no input
	 * left before its end means the member is cut. */
	int status = reader_need(in, member, err);
	if (status)
		return status;
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
