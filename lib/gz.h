/*
 * gz.h - what the gzip container (gz.c) and the scanner of gzip files from
 * elsewhere (gzscan.c) share, and nothing else does.
 *
 * gz.c opens a file by its index, or hands it to the scanner, which leaves
 * what it found in a gz_state that gz.c keeps; and gz.c decodes members,
 * its own and others', with the scanner's reader and inflater.
 */
#ifndef PARTPACK_GZ_H
#define PARTPACK_GZ_H

#include "internal.h"

/* Here because gz_inflater holds a z_stream; ZLIB_CONST must come first. */
#define ZLIB_CONST
#include <zlib.h>

/* Member framing (RFC 1952): gz.c writes it, gzscan.c parses it. */
#define GZ_HEADER_SIZE 10       /* ID1 ID2 CM FLG MTIME(4) XFL OS */
#define GZ_TRAILER_SIZE 8       /* CRC-32, ISIZE */
#define GZ_ID1 0x1f
#define GZ_ID2 0x8b
#define GZ_CM_DEFLATE 8
#define GZ_FLG_FEXTRA 0x04

/* Container-private state: only gzip files from elsewhere need any.
 * Shared because the scan fills it and gz.c answers from it and frees it. */
typedef struct gz_state {
	/* The bytes of stored deflate blocks the scan found, less those
	 * that later compressed data copies from (see end_run), in file
	 * order (which is uncompressed order too). */
	pp_extent_list stored;
} gz_state;

/* Reads [start, end) of the archive sequentially, GZ_CHUNK at a time.
 * Shared because gz.c decodes members through it too. */
typedef struct gz_reader {
	const pp_archive *archive;
	uint64_t end;           /* file offset where reading stops */
	uint64_t start;         /* file offset of buf[0] */
	size_t len;             /* bytes in buf */
	size_t pos;             /* the next byte to consume */
	uint8_t *buf;           /* GZ_HISTORY + GZ_CHUNK bytes */
	bool reports_progress;  /* the one long pass over a foreign file */
} gz_reader;

/* Shared because both check where a member ends. */
static inline uint64_t reader_offset(const gz_reader *reader)
{
	return reader->start + reader->pos;
}

/* Raw inflate of members' deflate data, with our own header parsing so we
 * know where every byte is.  Shared: the scan steps it with Z_TREES, gz.c's
 * decode with Z_NO_FLUSH. */
typedef struct gz_inflater {
	gz_reader in;
	z_stream strm;
	bool strm_ready;
	uint8_t *out;           /* GZ_CHUNK bytes */
} gz_inflater;

/* Defined in gzscan.c; shared because gz.c decodes members with them. */
int pp_gz_read_member_header(gz_reader *reader, size_t member, pp_error *err);
int pp_gz_read_member_trailer(gz_reader *reader, size_t member,
			      uint32_t *crc, uint32_t *isize, pp_error *err);
int pp_gz_inflater_init(gz_inflater *inflater, const pp_archive *archive,
			uint64_t start, uint64_t end, pp_error *err);
int pp_gz_inflater_step(gz_inflater *inflater, size_t member, int flush,
			size_t *produced, bool *finished, pp_error *err);
void pp_gz_inflater_free(gz_inflater *inflater);

/* Shared because it is gz.c's way into gzscan.c, for files with no index. */
int pp_gz_scan_file(pp_archive *archive, pp_error *err);

#endif
