/*
 * overlay.c - an in-memory layer of written units over a read function.
 *
 * Units are PP_OVERLAY_UNIT bytes, found by their number in an open
 * addressing hash table (linear probing, kept at most half full), each
 * holding a pointer to its bytes.  A stamp writes a few hundred units; a
 * large upload some tens of thousands: both are a table of a few pages.
 */
#include "overlay.h"
#include "error.h"

#include <stdlib.h>

typedef struct slot {
	uint64_t key;           /* unit number + 1; 0: empty */
	uint8_t *bytes;
} slot;

struct pp_overlay {
	pp_overlay_read_fn read;
	void *opaque;
	slot *slots;
	size_t capacity;        /* a power of two */
	size_t used;
};

pp_overlay *pp_overlay_new(pp_overlay_read_fn read, void *opaque)
{
	pp_overlay *overlay = calloc(1, sizeof *overlay);
	if (!overlay)
		return NULL;
	overlay->read = read;
	overlay->opaque = opaque;
	overlay->capacity = 256;
	overlay->slots = calloc(overlay->capacity, sizeof *overlay->slots);
	if (!overlay->slots) {
		free(overlay);
		return NULL;
	}
	return overlay;
}

void pp_overlay_free(pp_overlay *overlay)
{
	if (!overlay)
		return;
	for (size_t i = 0; i < overlay->capacity; i++)
		free(overlay->slots[i].bytes);
	free(overlay->slots);
	free(overlay);
}

static size_t slot_of(const slot *slots, size_t capacity, uint64_t key)
{
	/* Fibonacci hashing spreads runs of consecutive units. */
	size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) &
		(capacity - 1);
	while (slots[i].key && slots[i].key != key)
		i = (i + 1) & (capacity - 1);
	return i;
}

const uint8_t *pp_overlay_unit(const pp_overlay *overlay, uint64_t unit)
{
	size_t i = slot_of(overlay->slots, overlay->capacity, unit + 1);
	return overlay->slots[i].key ? overlay->slots[i].bytes : NULL;
}

static int grow(pp_overlay *overlay, pp_error *err)
{
	size_t capacity = overlay->capacity * 2;
	slot *slots = calloc(capacity, sizeof *slots);
	if (!slots)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < overlay->capacity; i++) {
		const slot *old = &overlay->slots[i];
		if (old->key)
			slots[slot_of(slots, capacity, old->key)] = *old;
	}
	free(overlay->slots);
	overlay->slots = slots;
	overlay->capacity = capacity;
	return 0;
}

/* *bytes: the unit's, made (and filled from below unless the write
 * covers it whole) if it was not written. */
static int unit_for_write(pp_overlay *overlay, uint64_t unit, bool whole,
			  uint8_t **bytes, pp_error *err)
{
	if (2 * (overlay->used + 1) > overlay->capacity && grow(overlay, err))
		return PP_ERR_NOMEM;
	size_t i = slot_of(overlay->slots, overlay->capacity, unit + 1);
	if (overlay->slots[i].key) {
		*bytes = overlay->slots[i].bytes;
		return 0;
	}
	*bytes = malloc(PP_OVERLAY_UNIT);
	if (!*bytes)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = whole ? 0 : overlay->read(overlay->opaque, *bytes,
					       PP_OVERLAY_UNIT,
					       unit * PP_OVERLAY_UNIT, err);
	if (status) {
		free(*bytes);
		return status;
	}
	overlay->slots[i] = (slot){ .key = unit + 1, .bytes = *bytes };
	overlay->used++;
	return 0;
}

int pp_overlay_write(pp_overlay *overlay, const void *data, size_t len,
		     uint64_t offset, pp_error *err)
{
	const uint8_t *from = data;
	while (len > 0) {
		uint64_t unit = offset / PP_OVERLAY_UNIT;
		size_t at = (size_t)(offset % PP_OVERLAY_UNIT);
		size_t n = PP_MIN(len, PP_OVERLAY_UNIT - at);
		uint8_t *bytes;
		int status = unit_for_write(overlay, unit,
					    n == PP_OVERLAY_UNIT, &bytes, err);
		if (status)
			return status;
		memcpy(bytes + at, from, n);
		from += n;
		offset += n;
		len -= n;
	}
	return 0;
}

int pp_overlay_read(pp_overlay *overlay, void *buf, size_t len,
		    uint64_t offset, pp_error *err)
{
	uint8_t *to = buf;
	/* Runs of units not written are read below in one piece. */
	size_t pending = 0;
	uint64_t pending_offset = offset;
	while (len > 0) {
		uint64_t unit = offset / PP_OVERLAY_UNIT;
		size_t at = (size_t)(offset % PP_OVERLAY_UNIT);
		size_t n = PP_MIN(len, PP_OVERLAY_UNIT - at);
		const uint8_t *bytes = pp_overlay_unit(overlay, unit);
		if (bytes) {
			int status = pending ?
				overlay->read(overlay->opaque, to - pending,
					      pending, pending_offset, err) : 0;
			if (status)
				return status;
			pending = 0;
			memcpy(to, bytes + at, n);
		} else {
			if (!pending)
				pending_offset = offset;
			pending += n;
		}
		to += n;
		offset += n;
		len -= n;
	}
	return pending ? overlay->read(overlay->opaque, to - pending, pending,
				       pending_offset, err) : 0;
}

static int compare_units(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int pp_overlay_units(const pp_overlay *overlay, uint64_t **units,
		     size_t *count, pp_error *err)
{
	*units = NULL;
	*count = 0;
	if (!overlay->used)
		return 0;
	*units = malloc(overlay->used * sizeof **units);
	if (!*units)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < overlay->capacity; i++) {
		if (overlay->slots[i].key)
			(*units)[(*count)++] = overlay->slots[i].key - 1;
	}
	qsort(*units, *count, sizeof **units, compare_units);
	return 0;
}

uint64_t pp_overlay_bytes(const pp_overlay *overlay)
{
	return (uint64_t)overlay->used * PP_OVERLAY_UNIT;
}
