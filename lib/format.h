/*
 * format.h - the registry of containers (format.c): which container a
 * format, or a file's first bytes, means.  Above the containers: they
 * never ask it.
 */
#ifndef PARTPACK_FORMAT_H
#define PARTPACK_FORMAT_H

#include "container.h"

/* The container of a format, or NULL. */
const pp_container_ops *pp_container_of(enum pp_format format);
/* The container whose probe accepts the first bytes of a file, or NULL. */
const pp_container_ops *pp_container_probe(const uint8_t *head, size_t len);
/* "xz, gzip or zstd": every format's name, for messages. */
void pp_container_names(char *text, size_t size);

#endif
