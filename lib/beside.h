/*
 * beside.h - the bmap beside an archive or an image, found as bmaptool
 * finds it (beside.c), for fetching: a path or a URL, read by the
 * caller's function.
 */
#ifndef PARTPACK_BESIDE_H
#define PARTPACK_BESIDE_H

#include "bmap.h"

/* The largest bmap read: a range line is about 100 bytes. */
#define PP_BMAP_TEXT_MAX ((size_t)256 << 20)

/*
 * Finds the bmap beside location as bmaptool does: LOCATION.bmap, then the
 * same with the last suffix removed ("img.xz" -> "img.bmap"), and so on.
 * get reads one candidate (a path or a URL).  *found_at (malloc'd) names
 * the one found, NULL when there is none.  A bmap found that does not
 * describe image_size bytes is ignored, with a notice.
 */
typedef int (*pp_document_fn)(void *opaque, const char *location, size_t max,
			      char **text, size_t *len, bool *found,
			      pp_error *err);
int pp_bmap_find(const char *location, pp_document_fn get, void *opaque,
		 uint64_t image_size, pp_bmap *bmap, char **found_at,
		 pp_error *err);
/* A pp_document_fn for paths: a regular file of at most max bytes; none
 * there (or not ours to read), *found false.  opaque is unused. */
int pp_local_document(void *opaque, const char *path, size_t max,
		      char **text, size_t *len, bool *found, pp_error *err);
/* Reads and parses the bmap at location (which must exist). */
int pp_bmap_load(const char *location, pp_document_fn get, void *opaque,
		 uint64_t image_size, pp_bmap *bmap, pp_error *err);

#endif
