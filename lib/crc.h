/* crc.h - CRC-32 and CRC-64 as xz and gzip compute them, and the change
 * of a CRC when zeros follow the changed bytes (crc.c). */
#ifndef PARTPACK_CRC_H
#define PARTPACK_CRC_H

#include "base.h"

uint32_t pp_crc32(uint32_t crc, const void *buf, size_t len);
uint64_t pp_crc64(uint64_t crc, const void *buf, size_t len);
/* crc0 (zero init, no final xor) multiplied by x^(8 * zeros) mod P: the
 * change in a CRC when `zeros` bytes follow the changed bytes. */
uint32_t pp_crc32_shift(uint32_t crc0, uint64_t zeros);
uint64_t pp_crc64_shift(uint64_t crc0, uint64_t zeros);

#endif
