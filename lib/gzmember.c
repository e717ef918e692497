/*
 * gzmember.c - the framing of a gzip member (RFC 1952, 2.3), both ways.
 *
 * A member is a header (10 fixed bytes, then optional fields the flags
 * announce), deflate data, and a trailer: the CRC-32 and the size mod 2^32
 * of the member's uncompressed data, both little-endian.  partpack writes
 * only the fixed header, and reads any: files come from anywhere.
 */
#include "gzmember.h"
#include "archive.h"
#include "error.h"
#include "gzread.h"

#include <inttypes.h>
#include <string.h>

/* Header flags that only other writers set (FEXTRA is in gzmember.h). */
#define GZ_FLG_FHCRC 0x02
#define GZ_FLG_FNAME 0x08
#define GZ_FLG_FCOMMENT 0x10
#define GZ_FLG_RESERVED 0xe0

#define GZ_OS_UNKNOWN 255

/* ---- writing ---------------------------------------------------------- */

void pp_gz_put_member_header(uint8_t *p, uint8_t flags)
{
	static const uint8_t fixed[GZ_HEADER_SIZE] = {
		GZ_ID1, GZ_ID2, GZ_CM_DEFLATE, 0, 0, 0, 0, 0, 0, GZ_OS_UNKNOWN
	};
	memcpy(p, fixed, sizeof fixed);
	p[3] = flags;
}

void pp_gz_put_member_trailer(uint8_t *p, uint32_t crc, uint64_t usize)
{
	pp_put_le32(p, crc);
	pp_put_le32(p + 4, (uint32_t)usize);   /* ISIZE is the size mod 2^32 */
}

/* ---- reading ---------------------------------------------------------- */

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
		int ret = pp_gz_reader_take(reader, member, &c, 1, crc, err);
		if (ret)
			return ret;
	} while (c != 0);
	return 0;
}

int pp_gz_read_member_header(gz_reader *reader, size_t member,
			     pp_error *err)
{
	const char *path = reader->archive->path;
	uint64_t at = reader_offset(reader);
	uint8_t fixed[GZ_HEADER_SIZE];
	uint32_t crc = 0;    /* FHCRC is the low 16 bits of this */
	/* The magic first, so that short trailing junk is called junk. */
	int ret = pp_gz_reader_take(reader, member, fixed, 2, &crc, err);
	if (ret)
		return ret;
	if (fixed[0] != GZ_ID1 || fixed[1] != GZ_ID2)
		return fail_not_member(reader, member, at, err);
	ret = pp_gz_reader_take(reader, member, fixed + 2, sizeof fixed - 2,
				&crc, err);
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
		ret = pp_gz_reader_take(reader, member, xlen, 2, &crc, err);
		if (!ret)
			ret = pp_gz_reader_take(reader, member, NULL,
						pp_get_le16(xlen), &crc, err);
	}
	if (!ret && (flags & GZ_FLG_FNAME))
		ret = skip_string(reader, member, &crc, err);
	if (!ret && (flags & GZ_FLG_FCOMMENT))
		ret = skip_string(reader, member, &crc, err);
	if (ret || !(flags & GZ_FLG_FHCRC))
		return ret;
	uint8_t header_crc[2];
	ret = pp_gz_reader_take(reader, member, header_crc, 2, NULL, err);
	if (ret)
		return ret;
	if (pp_get_le16(header_crc) != (uint16_t)crc)
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
	int ret = pp_gz_reader_take(reader, member, trailer, sizeof trailer,
				    NULL, err);
	if (ret)
		return ret;
	*crc = pp_get_le32(trailer);
	*isize = pp_get_le32(trailer + 4);
	return 0;
}
