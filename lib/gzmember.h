/*
 * gzmember.h - the framing of a gzip member (RFC 1952), both ways
 * (gzmember.c): gz.c writes members and parses them, and so does the
 * scanner of gzip files from elsewhere (gzscan.c).
 */
#ifndef PARTPACK_GZMEMBER_H
#define PARTPACK_GZMEMBER_H

#include "gzread.h"

#define GZ_HEADER_SIZE 10       /* ID1 ID2 CM FLG MTIME(4) XFL OS */
#define GZ_TRAILER_SIZE 8       /* CRC-32, ISIZE */
#define GZ_ID1 0x1f
#define GZ_ID2 0x8b
#define GZ_CM_DEFLATE 8
#define GZ_FLG_FEXTRA 0x04

/* Writes the fixed 10-byte header: no name, no time, "unknown" OS, so the
 * same image gives the same bytes.  flags is FLG (FEXTRA or 0). */
void pp_gz_put_member_header(uint8_t *p, uint8_t flags);
/* Writes the trailer of a member of usize bytes whose CRC-32 is crc. */
void pp_gz_put_member_trailer(uint8_t *p, uint32_t crc, uint64_t usize);

/* Reads a member header, leaving the reader at its deflate data.  Every
 * optional field is allowed: files come from anywhere.  member counts from
 * 1, for messages. */
int pp_gz_read_member_header(gz_reader *reader, size_t member, pp_error *err);
/* Reads a member trailer: the stored CRC-32 and ISIZE. */
int pp_gz_read_member_trailer(gz_reader *reader, size_t member,
			      uint32_t *crc, uint32_t *isize, pp_error *err);

#endif
