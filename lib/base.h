/*
 * base.h - what every piece of libpartpack uses and none owns: the public
 * types (partpack.h), PP_MIN and PP_MAX, and the loads and stores of the
 * little-endian fields the formats are made of.  Macros and inline
 * functions only, so including it adds no dependency between files.
 */
#ifndef PARTPACK_BASE_H
#define PARTPACK_BASE_H

#include "partpack.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define PP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PP_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Whether len bytes are all zero: the first is, and each equals the next. */
static inline bool pp_all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static inline void pp_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline uint16_t pp_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static inline void pp_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t pp_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static inline void pp_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t pp_get_le64(const uint8_t *p)
{
	return (uint64_t)pp_get_le32(p) | (uint64_t)pp_get_le32(p + 4) << 32;
}

#endif
