/*
 * gzread.h - reading deflate data out of a gzip archive (gzread.c): a
 * buffered sequential reader of the archive's bytes and a raw inflater on
 * top of it.  Used by the member framing (gzmember.c), the scanner of gzip
 * files from elsewhere (gzscan.c) and the container (gz.c).
 */
#ifndef PARTPACK_GZREAD_H
#define PARTPACK_GZREAD_H

#include "base.h"

/* Here because gz_inflater holds a z_stream; ZLIB_CONST must come first. */
#define ZLIB_CONST
#include <zlib.h>

/* Bytes a reader keeps from before its current chunk, so that the scanner
 * can look back at a deflate block header inflate already consumed. */
#define GZ_HISTORY 8

/* Reads [start, end) of the archive sequentially, a chunk at a time. */
typedef struct gz_reader {
	const pp_archive *archive;
	uint64_t end;           /* file offset where reading stops */
	uint64_t start;         /* file offset of buf[0] */
	size_t len;             /* bytes in buf */
	size_t pos;             /* the next byte to consume */
	uint8_t *buf;           /* GZ_HISTORY + a chunk of bytes */
	bool reports_progress;  /* the one long pass over a foreign file */
} gz_reader;

static inline uint64_t reader_offset(const gz_reader *reader)
{
	return reader->start + reader->pos;
}

static inline bool reader_at_end(const gz_reader *reader)
{
	return reader_offset(reader) == reader->end;
}

/* Consumes n bytes of member `member` (for messages), copying them to dst
 * unless it is NULL and adding them to *crc unless that is NULL. */
int pp_gz_reader_take(gz_reader *reader, size_t member, void *dst, size_t n,
		      uint32_t *crc, pp_error *err);
/* The consumed bytes [offset, offset + n), or NULL if no longer held. */
const uint8_t *pp_gz_reader_look_back(const gz_reader *reader,
				      uint64_t offset, size_t n);

/* Sets up strm for raw deflate data; inflateEnd it only if this
 * succeeds. */
int pp_gz_raw_inflate_init(z_stream *strm, const pp_archive *archive,
			   pp_error *err);

/* Raw inflate of members' deflate data, so that we know where every byte
 * is: the scan steps it with Z_TREES, gz.c's decode with Z_NO_FLUSH. */
typedef struct gz_inflater {
	gz_reader in;
	z_stream strm;
	bool strm_ready;
	uint8_t *out;           /* a chunk of bytes */
} gz_inflater;

/* Ready to inflate from [start, end) of the archive; free it even if this
 * fails. */
int pp_gz_inflater_init(gz_inflater *inflater, const pp_archive *archive,
			uint64_t start, uint64_t end, pp_error *err);
/* One call of inflate(): *produced bytes are then in inflater->out, and
 * *finished says the member's deflate data ended. */
int pp_gz_inflater_step(gz_inflater *inflater, size_t member, int flush,
			size_t *produced, bool *finished, pp_error *err);
void pp_gz_inflater_free(gz_inflater *inflater);

#endif
