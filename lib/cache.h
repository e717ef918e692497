/* cache.h - decoded blocks kept under a byte budget (cache.c). */
#ifndef PARTPACK_CACHE_H
#define PARTPACK_CACHE_H

#include "base.h"

/* An LRU of decoded blocks under a byte budget, keyed by block index. */
typedef struct pp_cache pp_cache;
pp_cache *pp_cache_new(uint64_t budget);
void pp_cache_free(pp_cache *cache);
/* The block's bytes, now the most recently used; NULL if absent. */
const uint8_t *pp_cache_get(pp_cache *cache, size_t block, size_t *len);
/* Takes data (malloc'd, len bytes) for block, evicting the least recently
 * used blocks to stay in budget.  Returns false, leaving data to the
 * caller, if it alone exceeds the budget. */
bool pp_cache_put(pp_cache *cache, size_t block, uint8_t *data, size_t len);
/* Drops blocks [first, end), or everything with pp_cache_clear. */
void pp_cache_invalidate(pp_cache *cache, size_t first, size_t end);
void pp_cache_clear(pp_cache *cache);
/* Evicts down to a new budget. */
void pp_cache_set_budget(pp_cache *cache, uint64_t budget);
/* Bytes and blocks held. */
uint64_t pp_cache_bytes(const pp_cache *cache);
size_t pp_cache_count(const pp_cache *cache);

#endif
