/*
 * format.c - the registry of containers: the one table that lists the
 * formats, and every question about a format that is not the container's
 * own (which one a name, a file name or a file's first bytes means).
 *
 * A container is one object (pp_container_ops, container.h) defined in its
 * own file.  Adding a format adds its line below; nothing else in the
 * library or the tools names a format.
 */
#include "format.h"
#include "container.h"

#include <stdio.h>
#include <string.h>

extern const pp_container_ops pp_xz_container, pp_gz_container,
	pp_zstd_container;

/* In order of preference: the first is the default, and probing tries
 * them in this order. */
static const pp_container_ops *const containers[] = {
	&pp_xz_container,
	&pp_gz_container,
	&pp_zstd_container,
};

#define CONTAINER_COUNT (sizeof containers / sizeof *containers)

const pp_container_ops *pp_container_of(enum pp_format format)
{
	for (size_t i = 0; i < CONTAINER_COUNT; i++)
		if (containers[i]->format == format)
			return containers[i];
	return NULL;
}

const pp_container_ops *pp_container_probe(const uint8_t *head, size_t len)
{
	for (size_t i = 0; i < CONTAINER_COUNT; i++)
		if (containers[i]->probe(head, len))
			return containers[i];
	return NULL;
}

void pp_container_names(char *text, size_t size)
{
	size_t used = 0;
	text[0] = '\0';
	for (size_t i = 0; i < CONTAINER_COUNT && used < size; i++) {
		const char *separator = i == 0 ? "" :
			i + 1 == CONTAINER_COUNT ? " or " : ", ";
		int n = snprintf(text + used, size - used, "%s%s", separator,
				 containers[i]->names[0]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* ---- the public questions (partpack.h) --------------------------------- */

const char *pp_format_name(enum pp_format format)
{
	const pp_container_ops *c = pp_container_of(format);
	return c ? c->names[0] : "unknown";
}

enum pp_format pp_format_at(size_t index)
{
	return index < CONTAINER_COUNT ? containers[index]->format :
					 (enum pp_format)0;
}

enum pp_format pp_format_from_name(const char *name)
{
	for (size_t i = 0; i < CONTAINER_COUNT; i++)
		for (const char *const *n = containers[i]->names; *n; n++)
			if (strcmp(name, *n) == 0)
				return containers[i]->format;
	return (enum pp_format)0;
}

enum pp_format pp_format_from_path(const char *path)
{
	size_t len = strlen(path);
	for (size_t i = 0; i < CONTAINER_COUNT; i++) {
		for (const char *const *s = containers[i]->suffixes; *s; s++) {
			/* A suffix alone ("x/.gz") names no file of it. */
			size_t suffix_len = strlen(*s);
			if (len > suffix_len &&
			    strcmp(path + len - suffix_len, *s) == 0)
				return containers[i]->format;
		}
	}
	return (enum pp_format)0;
}

enum pp_format pp_format_of_head(const void *head, size_t len)
{
	const pp_container_ops *c = pp_container_probe(head, len);
	return c ? c->format : (enum pp_format)0;
}

const char *pp_format_suffix(enum pp_format format)
{
	const pp_container_ops *c = pp_container_of(format);
	return c ? c->suffixes[0] : NULL;
}

int pp_format_levels(enum pp_format format, int *min, int *max,
		     int *default_level)
{
	const pp_container_ops *c = pp_container_of(format);
	if (!c)
		return PP_ERR_USAGE;
	*min = c->level_min;
	*max = c->level_max;
	*default_level = c->level_default;
	return 0;
}

enum pp_check pp_format_default_check(enum pp_format format)
{
	const pp_container_ops *c = pp_container_of(format);
	return c ? c->default_check : PP_CHECK_NONE;
}
