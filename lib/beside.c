/*
 * beside.c - the bmap beside an archive or an image (beside.h).
 *
 * bmaptool copy looks for IMAGE.bmap, then strips one suffix after
 * another ("v42.img.xz.bmap", "v42.img.bmap", "v42.bmap") until the last
 * path component has no dot left; a fetch looks in the same places, so
 * that what bmaptool would use for an image is what partcat uses for it.
 */
#include "beside.h"
#include "bmap.h"
#include "error.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where the suffix of the last path component starts (its last dot, not
 * a leading one), or NULL.  A URL's query, if any, is not part of it. */
static char *suffix_of(char *location, size_t len)
{
	char *start = location;
	for (size_t i = 0; i < len; i++)
		if (location[i] == '/')
			start = location + i + 1;
	char *dot = NULL;
	for (char *p = start; p < location + len; p++)
		if (*p == '.' && p > start)
			dot = p;
	/* "..bmap", a name of dots only, has no suffix to strip. */
	while (dot && dot > start && dot[-1] == '.')
		dot--;
	return dot && dot > start ? dot : NULL;
}

int pp_local_document(void *opaque, const char *path, size_t max,
		      char **text, size_t *len, bool *found, pp_error *err)
{
	(void)opaque;
	*text = NULL;
	*len = 0;
	*found = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == EACCES))
		return 0;
	if (fd < 0 || fstat(fd, &st)) {
		int status = pp_fail_errno(err, PP_ERR_IO, "%s", path);
		if (fd >= 0)
			close(fd);
		return status;
	}
	int status = 0;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max)
		status = pp_fail(err, PP_ERR_FORMAT, "%s: not a regular file "
				 "of at most %zu bytes", path, max);
	else if (!(*text = malloc((size_t)st.st_size + 1)))
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	else if (pp_pread_full(fd, *text, (size_t)st.st_size, 0))
		status = pp_fail_errno(err, PP_ERR_IO, "%s", path);
	close(fd);
	if (status) {
		free(*text);
		*text = NULL;
		return status;
	}
	(*text)[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	*found = true;
	return 0;
}

int pp_bmap_load(const char *location, pp_document_fn get, void *opaque,
		 uint64_t image_size, pp_bmap *bmap, pp_error *err)
{
	char *text;
	size_t len;
	bool found;
	int status = get(opaque, location, PP_BMAP_TEXT_MAX, &text, &len,
			 &found, err);
	if (status)
		return status;
	if (!found)
		return pp_fail(err, PP_ERR_IO, "%s: no such bmap", location);
	status = pp_bmap_parse(bmap, text, len, location, err);
	free(text);
	if (status == 0 && bmap->image_size != image_size) {
		pp_bmap_release(bmap);
		status = pp_fail(err, PP_ERR_FORMAT, "%s: a bmap of a %llu-byte "
				 "image, not of this one (%llu bytes)", location,
				 (unsigned long long)bmap->image_size,
				 (unsigned long long)image_size);
	}
	return status;
}

int pp_bmap_find(const char *location, pp_document_fn get, void *opaque,
		 uint64_t image_size, pp_bmap *bmap, char **found_at,
		 pp_error *err)
{
	*found_at = NULL;
	/* The query of a URL stays at the end: "x.xz?a=b" -> "x.xz.bmap?a=b". */
	const char *query = strchr(location, '?');
	size_t len = query ? (size_t)(query - location) : strlen(location);
	const char *tail = query ? query : "";
	char *base = strndup(location, len);
	char *candidate = malloc(len + strlen(tail) + sizeof ".bmap");
	int status = base && candidate ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	for (char *dot = base; status == 0 && dot;) {
		sprintf(candidate, "%s.bmap%s", base, tail);
		char *text;
		size_t text_len;
		bool found = false;
		status = get(opaque, candidate, PP_BMAP_TEXT_MAX, &text,
			     &text_len, &found, err);
		if (status == 0 && found) {
			status = pp_bmap_parse(bmap, text, text_len, candidate,
					       err);
			free(text);
			if (status == 0 && bmap->image_size == image_size) {
				*found_at = candidate;
				candidate = NULL;
				break;
			}
			if (status == 0)
				pp_bmap_release(bmap);
			/* Not this image's: as if there were none. */
			pp_notice("%s: not used: %s", candidate, status ?
				  err->message : "it describes another image");
			status = 0;
			break;
		}
		if ((dot = suffix_of(base, strlen(base))))
			*dot = '\0';
	}
	free(base);
	free(candidate);
	return status;
}
