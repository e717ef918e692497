/*
 * cache.c - decoded blocks kept for the next read, least recently used
 * first out, under a byte budget.
 *
 * A random read inside a compressed block costs decoding the block from
 * its start; keeping the decoded bytes makes every later read inside it a
 * copy.  Blocks are large (16 MiB by default) and the budget holds a few
 * of them, so the entries are a list in use order, searched from the most
 * recently used end: the block just read is found first.
 */
#include "cache.h"

#include <stdlib.h>

typedef struct cache_entry {
	size_t block;
	uint8_t *data;
	size_t len;
	struct cache_entry *newer;
	struct cache_entry *older;
} cache_entry;

struct pp_cache {
	uint64_t budget;
	uint64_t bytes;
	size_t count;
	cache_entry *newest;
	cache_entry *oldest;
};

pp_cache *pp_cache_new(uint64_t budget)
{
	pp_cache *cache = calloc(1, sizeof *cache);
	if (cache)
		cache->budget = budget;
	return cache;
}

static void unlink_entry(pp_cache *cache, cache_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		cache->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		cache->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void push_newest(pp_cache *cache, cache_entry *e)
{
	e->older = cache->newest;
	e->newer = NULL;
	if (cache->newest)
		cache->newest->newer = e;
	cache->newest = e;
	if (!cache->oldest)
		cache->oldest = e;
}

static void drop_entry(pp_cache *cache, cache_entry *e)
{
	unlink_entry(cache, e);
	cache->bytes -= e->len;
	cache->count--;
	free(e->data);
	free(e);
}

/* Evicts least recently used blocks until `room` more bytes fit. */
static void make_room(pp_cache *cache, uint64_t room)
{
	while (cache->oldest && cache->bytes + room > cache->budget)
		drop_entry(cache, cache->oldest);
}

void pp_cache_free(pp_cache *cache)
{
	if (!cache)
		return;
	pp_cache_clear(cache);
	free(cache);
}

const uint8_t *pp_cache_get(pp_cache *cache, size_t block, size_t *len)
{
	for (cache_entry *e = cache->newest; e; e = e->older) {
		if (e->block != block)
			continue;
		if (e != cache->newest) {
			unlink_entry(cache, e);
			push_newest(cache, e);
		}
		*len = e->len;
		return e->data;
	}
	return NULL;
}

bool pp_cache_put(pp_cache *cache, size_t block, uint8_t *data, size_t len)
{
	if (len > cache->budget)
		return false;
	cache_entry *e = malloc(sizeof *e);
	if (!e)
		return false;
	pp_cache_invalidate(cache, block, block + 1);
	make_room(cache, len);
	*e = (cache_entry){ .block = block, .data = data, .len = len };
	push_newest(cache, e);
	cache->bytes += len;
	cache->count++;
	return true;
}

void pp_cache_invalidate(pp_cache *cache, size_t first, size_t end)
{
	for (cache_entry *e = cache->newest; e;) {
		cache_entry *older = e->older;
		if (e->block >= first && e->block < end)
			drop_entry(cache, e);
		e = older;
	}
}

void pp_cache_clear(pp_cache *cache)
{
	while (cache->oldest)
		drop_entry(cache, cache->oldest);
}

void pp_cache_set_budget(pp_cache *cache, uint64_t budget)
{
	cache->budget = budget;
	make_room(cache, 0);
}

uint64_t pp_cache_bytes(const pp_cache *cache)
{
	return cache->bytes;
}

size_t pp_cache_count(const pp_cache *cache)
{
	return cache->count;
}
