/*
 * range.c - turning what the user names ("part1", "1MiB+8MiB", "/boot")
 * into byte ranges of the image.
 *
 * Each selector is classified first, so that the expensive resolvers run
 * at most once per run: the partition table is read once, and libguestfs
 * (guestfs.c) is launched once, only if some selector needs it.  label:
 * and uuid: are looked for first in the partitions of the table, probed
 * with libblkid (probe.c), which costs no launch; only when no partition
 * holds the filesystem (it may be on the whole disk, or in LVM) does
 * libguestfs look, and say what it is.
 */
#include "appliance.h"
#include "fs.h"
#include "source.h"
#include "archive.h"
#include "blocks.h"
#include "error.h"
#include "io.h"
#include "ptable.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct size_suffix {
	const char *name;
	uint64_t factor;
} size_suffixes[] = {
	{ "", 1 },
	{ "K", 1ULL << 10 }, { "KiB", 1ULL << 10 }, { "k", 1ULL << 10 },
	{ "M", 1ULL << 20 }, { "MiB", 1ULL << 20 },
	{ "G", 1ULL << 30 }, { "GiB", 1ULL << 30 },
	{ "T", 1ULL << 40 }, { "TiB", 1ULL << 40 },
	{ "kB", 1000ULL }, { "KB", 1000ULL }, { "MB", 1000000ULL },
	{ "GB", 1000000000ULL }, { "TB", 1000000000000ULL },
};

/* Parses a size at the start of text; *end points past it. */
static int parse_size_prefix(const char *text, uint64_t *bytes,
			     const char **end)
{
	if (!isdigit((unsigned char)text[0]))
		return PP_ERR_USAGE;
	uint64_t value = 0;
	const char *p = text;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned digit = (unsigned)(*p - '0');
		if (value > (UINT64_MAX - digit) / 10)
			return PP_ERR_USAGE;
		value = value * 10 + digit;
	}
	size_t suffix_len = 0;
	while (isalpha((unsigned char)p[suffix_len]))
		suffix_len++;
	for (size_t i = 0; i < sizeof size_suffixes / sizeof *size_suffixes; i++) {
		const struct size_suffix *s = &size_suffixes[i];
		if (strlen(s->name) != suffix_len ||
		    strncmp(p, s->name, suffix_len) != 0)
			continue;
		if (value > UINT64_MAX / s->factor)
			return PP_ERR_USAGE;
		*bytes = value * s->factor;
		*end = p + suffix_len;
		return 0;
	}
	return PP_ERR_USAGE;
}

int pp_parse_size(const char *text, uint64_t *bytes)
{
	const char *end;
	if (parse_size_prefix(text, bytes, &end) != 0 || *end != '\0')
		return PP_ERR_USAGE;
	return 0;
}

/* START:END or START+LENGTH.  Returns 1 if text is not of that shape. */
static int parse_byte_range(const char *text, pp_range *range, pp_error *err)
{
	uint64_t start, second;
	const char *p;
	if (parse_size_prefix(text, &start, &p) != 0 ||
	    (*p != ':' && *p != '+'))
		return 1;
	char separator = *p;
	const char *end;
	if (parse_size_prefix(p + 1, &second, &end) != 0 || *end != '\0')
		return pp_fail(err, PP_ERR_USAGE,
			       "%s: bad byte range (START:END or START+LENGTH)",
			       text);
	if (separator == ':') {
		if (second < start)
			return pp_fail(err, PP_ERR_USAGE,
				       "%s: range ends before it starts", text);
		second -= start;
	} else if (second > UINT64_MAX - start) {
		return pp_fail(err, PP_ERR_USAGE, "%s: range overflows", text);
	}
	*range = (pp_range){ .offset = start, .length = second };
	return 0;
}

/* The partition-table selectors, resolved without an appliance:
 * partN, /dev/sdXN (the image is the guest's first disk) and name:NAME. */
typedef struct table_selector {
	unsigned number;            /* 0: match by name */
	const char *name;
} table_selector;

static bool parse_table_selector(const char *text, table_selector *sel)
{
	const char *digits = NULL;
	if (strncmp(text, "part", 4) == 0)
		digits = text + 4;
	else if (strncmp(text, "/dev/", 5) == 0 &&
		 (text[5] == 's' || text[5] == 'v' || text[5] == 'h') &&
		 text[6] == 'd' && text[7] == 'a')
		digits = text + 8;
	if (digits) {
		char *end;
		errno = 0;
		unsigned long n = strtoul(digits, &end, 10);
		if (!isdigit((unsigned char)*digits) || *end || errno ||
		    n == 0 || n > 1024)
			return false;
		*sel = (table_selector){ .number = (unsigned)n };
		return true;
	}
	if (strncmp(text, "name:", 5) == 0 && text[5]) {
		*sel = (table_selector){ .name = text + 5 };
		return true;
	}
	return false;
}

/* START:END or START+LENGTH by its shape: a size, then ':' or '+'. */
static bool looks_like_byte_range(const char *text)
{
	uint64_t start;
	const char *p;
	return parse_size_prefix(text, &start, &p) == 0 &&
	       (*p == ':' || *p == '+');
}

enum pp_selector_kind pp_classify_selector(const char *selector)
{
	table_selector sel;
	if (looks_like_byte_range(selector))
		return PP_SELECTOR_BYTES;
	if (parse_table_selector(selector, &sel))
		return PP_SELECTOR_TABLE;
	if (strncmp(selector, "/dev/", 5) == 0)
		return selector[5] ? PP_SELECTOR_DEVICE : PP_SELECTOR_INVALID;
	if (selector[0] == '/')
		return PP_SELECTOR_MOUNTPOINT;
	if ((strncmp(selector, "label:", 6) == 0 && selector[6]) ||
	    (strncmp(selector, "uuid:", 5) == 0 && selector[5]))
		return PP_SELECTOR_LABEL;
	return PP_SELECTOR_INVALID;
}

/* The partition table, read on first use. */
typedef struct table_cache {
	bool loaded;
	pp_partition *parts;
	size_t count;
} table_cache;

static int load_table(const char *text, const char *image_name,
		      pp_read_fn read_at, void *opaque, uint64_t image_size,
		      table_cache *table, pp_error *err)
{
	if (!read_at)
		return pp_fail(err, PP_ERR_USAGE,
			       "%s: selector %s needs the partition table, "
			       "so the image must be a seekable file, not a pipe",
			       image_name, text);
	if (!table->loaded) {
		int status = pp_read_partitions(read_at, opaque, image_size,
						image_name, &table->parts,
						&table->count, err);
		if (status)
			return status;
		table->loaded = true;
	}
	return 0;
}

static int resolve_table_selector(const char *text, const table_selector *sel,
				  const char *image_name, pp_read_fn read_at,
				  void *opaque, uint64_t image_size,
				  table_cache *table, pp_range *range,
				  pp_error *err)
{
	int status = load_table(text, image_name, read_at, opaque, image_size,
				table, err);
	if (status)
		return status;
	for (size_t i = 0; i < table->count; i++) {
		const pp_partition *part = &table->parts[i];
		if (sel->number ? part->number == sel->number :
		    strcmp(part->name, sel->name) == 0) {
			*range = (pp_range){ .offset = part->offset,
					     .length = part->length };
			return 0;
		}
	}
	return pp_fail(err, PP_ERR_LOCATE, "%s: no partition matches %s",
		       image_name, text);
}

/* Where the selectors are looked for: the partition table through
 * read_at, libguestfs on path in its format. */
typedef struct image_ref {
	const char *name;           /* in messages */
	const char *path;           /* for libguestfs; NULL: a pipe */
	const char *format;         /* qemu's name, for libguestfs */
	pp_read_fn read_at;         /* NULL: a pipe */
	void *opaque;
	int fd;                     /* the raw image file, for blkid; or -1 */
	uint64_t size;
} image_ref;

/* What the partitions hold, for the message when none matches. */
static void describe(char *text, size_t size, size_t *used,
		     const pp_partition *part, const pp_fs_probe *found)
{
	if (*used >= size)
		return;
	int n = snprintf(text + *used, size - *used, "%spart%u %s%s%s",
			 *used ? ", " : "", part->number,
			 found->type[0] ? found->type : "(nothing known)",
			 found->label[0] ? " label " : "", found->label);
	*used += n > 0 ? (size_t)n : 0;
}

/*
 * Reads the table (once) and probes every partition with blkid: 0 and
 * *probes (malloc'd, one per partition, in table order); 1 when there is
 * no table to probe (*err says why); an error status otherwise.
 */
static int probe_partitions(const char *text, const image_ref *image,
			    table_cache *table, pp_fs_probe **probes,
			    pp_error *err)
{
	pp_error table_err;
	*probes = NULL;
	if (!image->read_at || load_table(text, image->name, image->read_at,
					  image->opaque, image->size, table,
					  &table_err)) {
		pp_fail(err, PP_ERR_LOCATE, "%s: no partition table to look for "
			"%s in (%s)", image->name, text,
			image->read_at ? table_err.message : "a pipe");
		return 1;
	}
	*probes = calloc(table->count ? table->count : 1, sizeof **probes);
	if (!*probes)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = 0;
	for (size_t i = 0; status == 0 && i < table->count; i++)
		status = pp_probe_range(image->read_at, image->opaque, image->fd,
					table->parts[i].offset,
					table->parts[i].length, image->name,
					&(*probes)[i], err);
	if (status) {
		free(*probes);
		*probes = NULL;
	}
	return status;
}

/* label:L or uuid:U: the partition whose filesystem blkid finds with it.
 * 0 and *range when found; 1 when no partition holds it (*err says what
 * they hold); an error status otherwise. */
static int resolve_probe_selector(const char *text, const image_ref *image,
				  table_cache *table, pp_range *range,
				  pp_error *err)
{
	pp_fs_probe *probes;
	int status = probe_partitions(text, image, table, &probes, err);
	if (status)
		return status;
	char seen[256] = "";
	size_t used = 0;
	for (size_t i = 0; i < table->count; i++) {
		const pp_partition *part = &table->parts[i];
		if (pp_probe_matches(&probes[i], text)) {
			*range = (pp_range){ .offset = part->offset,
					     .length = part->length };
			free(probes);
			return 0;
		}
		describe(seen, sizeof seen, &used, part, &probes[i]);
	}
	free(probes);
	pp_fail(err, PP_ERR_LOCATE, "%s: no partition holds a filesystem with "
		"%s (%s)", image->name, text, seen[0] ? seen : "no partitions");
	return 1;
}

/* ---- /MOUNTPOINT from an ext root's /etc/fstab, read in process ------- */

/* The partition an fstab line's first field names, among the probed
 * partitions: 0 and *range; 1 when it cannot be told here (PARTUUID=, a
 * device-mapper path, a filesystem no partition holds). */
static int partition_of_spec(const char *spec, const table_cache *table,
			     const pp_fs_probe *probes, pp_range *range)
{
	static const struct { const char *prefix; char kind; } forms[] = {
		{ "LABEL=", 'l' }, { "/dev/disk/by-label/", 'l' },
		{ "UUID=", 'u' }, { "/dev/disk/by-uuid/", 'u' },
		{ "PARTLABEL=", 'n' }, { "/dev/disk/by-partlabel/", 'n' },
	};
	table_selector sel = { 0 };
	char kind = 0;
	const char *value = spec;
	for (size_t i = 0; i < sizeof forms / sizeof *forms && !kind; i++) {
		size_t n = strlen(forms[i].prefix);
		if (strncmp(spec, forms[i].prefix, n) == 0) {
			kind = forms[i].kind;
			value = spec + n;
		}
	}
	if (!kind && parse_table_selector(spec, &sel) && sel.number)
		kind = '#';
	for (size_t i = 0; kind && i < table->count; i++) {
		const pp_partition *part = &table->parts[i];
		bool match = kind == 'l' ? strcmp(probes[i].label, value) == 0 :
			kind == 'u' ? strcasecmp(probes[i].uuid, value) == 0 :
			kind == 'n' ? strcmp(part->name, value) == 0 :
			part->number == sel.number;
		if (match && (kind == '#' || kind == 'n' || *value)) {
			*range = (pp_range){ part->offset, part->length };
			return 0;
		}
	}
	return 1;
}

/* The fstab line mounting mountpoint: 0 and *range, 1 when the line's
 * device cannot be told here, PP_ERR_LOCATE when no line mounts it. */
static int match_fstab(char *fstab, const char *mountpoint,
		       const char *image_name, const table_cache *table,
		       const pp_fs_probe *probes, pp_range *range,
		       pp_error *err)
{
	char seen[200] = "", *save = NULL;
	size_t used = 0;
	for (char *line = strtok_r(fstab, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char spec[256], point[256];
		line += strspn(line, " \t");
		if (*line == '#' ||
		    sscanf(line, "%255s %255s", spec, point) != 2)
			continue;
		if (strcmp(point, mountpoint) == 0)
			return partition_of_spec(spec, table, probes, range);
		if (used < sizeof seen)
			used += (size_t)snprintf(seen + used, sizeof seen - used,
						 "%s%s", used ? ", " : "", point);
	}
	return pp_fail(err, PP_ERR_LOCATE, "%s: %s is not a mountpoint in the "
		       "guest's /etc/fstab (mountpoints: %s)", image_name,
		       mountpoint, seen);
}

/*
 * /MOUNTPOINT without an appliance: the first ext partition holding
 * /etc/fstab is taken for the root (read by libext2fs, fsext.c), and the
 * line for the mountpoint names its partition by LABEL=, UUID=,
 * PARTLABEL=, /dev/disk/by-*, or /dev/sdaN.  0 and *range; 1 when this
 * cannot tell (no such root, a device named another way): libguestfs
 * inspection then looks.
 */
static int resolve_fstab_selector(const char *text, const image_ref *image,
				  table_cache *table, pp_range *range,
				  pp_error *err)
{
	pp_fs_probe *probes;
	int status = probe_partitions(text, image, table, &probes, err);
	int result = status ? status : 1;
	for (size_t i = 0; result == 1 && i < table->count; i++) {
		const pp_partition *part = &table->parts[i];
		char *fstab;
		size_t len;
		pp_error ignored;
		if (strncmp(probes[i].type, "ext", 3) != 0 ||
		    pp_ext_read_file(image->read_at, image->opaque, part->offset,
				     part->length, image->name, "/etc/fstab",
				     1 << 16, &fstab, &len, &ignored) != 0)
			continue;
		result = match_fstab(fstab, text, image->name, table, probes,
				     range, err);
		free(fstab);
	}
	free(probes);
	return result;
}

static int resolve_guestfs_selector(const char *text, const image_ref *image,
				    pp_guestfs **guestfs, pp_range *range,
				    pp_error *err)
{
	const char *image_path = image->path;
	if (!image_path)
		return pp_fail(err, PP_ERR_USAGE,
			       "(stdin): selector %s needs libguestfs, so the "
			       "image must be a file, not a pipe", text);
	if (!*guestfs) {
		int status = pp_guestfs_open(image_path, image->format,
					     guestfs, err);
		if (status)
			return status;
	}
	return pp_guestfs_resolve(*guestfs, text, range, err);
}

/* pp_read_fn over an image file descriptor. */
static int read_image_fd(void *opaque, void *buf, size_t len, uint64_t offset)
{
	return pp_pread_full(*(const int *)opaque, buf, len, offset);
}

/*
 * One selector, by its kind: label: and uuid: are looked for first in the
 * partitions (libblkid), a mountpoint in an ext root's fstab; libguestfs,
 * launched once, finds what those cannot, and any other /dev/ path.
 */
static int resolve_one(const char *text, const image_ref *image,
		       table_cache *table, pp_guestfs **guestfs,
		       pp_range *range, pp_error *err)
{
	table_selector sel;
	int status = 1;
	switch (pp_classify_selector(text)) {
	case PP_SELECTOR_BYTES:
		return parse_byte_range(text, range, err);
	case PP_SELECTOR_TABLE:
		parse_table_selector(text, &sel);
		return resolve_table_selector(text, &sel, image->name,
					      image->read_at, image->opaque,
					      image->size, table, range, err);
	case PP_SELECTOR_LABEL:
		status = resolve_probe_selector(text, image, table, range, err);
		break;
	case PP_SELECTOR_MOUNTPOINT:
		status = resolve_fstab_selector(text, image, table, range, err);
		break;
	case PP_SELECTOR_DEVICE:
		break;
	case PP_SELECTOR_INVALID:
		return pp_fail(err, PP_ERR_USAGE, "%s: unknown selector (try "
			       "START:END, START+LENGTH, partN, /MOUNTPOINT, "
			       "/dev/sdaN, label:L, uuid:U, name:N)", text);
	}
	/* 1: not found in process (or not tried): libguestfs looks. */
	return status != 1 ? status :
		resolve_guestfs_selector(text, image, guestfs, range, err);
}

/* Each selector to its range, then every range checked against the end
 * of the image. */
static int resolve_all(const image_ref *image, const char *const *selectors,
		       size_t count, pp_range **ranges, pp_error *err)
{
	*ranges = calloc(count ? count : 1, sizeof **ranges);
	if (!*ranges)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	table_cache table = { 0 };
	pp_guestfs *guestfs = NULL;
	int status = 0;
	for (size_t i = 0; status == 0 && i < count; i++) {
		const char *text = selectors[i];
		status = resolve_one(text, image, &table, &guestfs,
				     &(*ranges)[i], err);
	}
	for (size_t i = 0; status == 0 && image->size && i < count; i++) {
		const pp_range *r = &(*ranges)[i];
		if (r->offset > image->size ||
		    r->length > image->size - r->offset)
			status = pp_fail(err, PP_ERR_USAGE,
					 "%s: %s ends at byte %llu, past the "
					 "end of the image (%llu bytes)",
					 image->name, selectors[i],
					 (unsigned long long)(r->offset + r->length),
					 (unsigned long long)image->size);
	}
	free(table.parts);
	pp_guestfs_close(guestfs);
	if (status) {
		free(*ranges);
		*ranges = NULL;
	}
	return status;
}

int pp_resolve_selectors(const char *image_path, int image_fd,
			 uint64_t image_size, const char *const *selectors,
			 size_t count, pp_range **ranges, pp_error *err)
{
	const image_ref image = {
		.name = image_path ? image_path : "(stdin)",
		.path = image_path,
		.format = "raw",
		.read_at = image_fd >= 0 ? read_image_fd : NULL,
		.opaque = &image_fd,
		.fd = image_fd,
		.size = image_size,
	};
	return resolve_all(&image, selectors, count, ranges, err);
}

/* pp_read_fn over a source's guest disk. */
static int read_source(void *opaque, void *buf, size_t len, uint64_t offset)
{
	return pp_source_pread(opaque, buf, len, offset, NULL);
}

int pp_source_resolve_selectors(pp_source *source,
				const char *const *selectors, size_t count,
				pp_range **ranges, pp_error *err)
{
	const image_ref image = {
		.name = source->name,
		.path = source->path,
		.format = source->format,
		.read_at = source->seekable ? read_source : NULL,
		.opaque = source,
		.fd = -1,
		.size = source->size,
	};
	return resolve_all(&image, selectors, count, ranges, err);
}

int pp_source_list_partitions(pp_source *source, pp_partition_info **parts,
			      size_t *count, pp_error *err)
{
	return pp_read_partitions(source->seekable ? read_source : NULL,
				  source, source->size, source->name, parts,
				  count, err);
}

/* pp_read_fn over the archive's uncompressed image. */
static int read_archive(void *opaque, void *buf, size_t len, uint64_t offset)
{
	return pp_pread(opaque, buf, len, offset, NULL);
}

int pp_locate_partition(pp_archive *archive, const char *selector,
			pp_range *range, pp_error *err)
{
	table_selector sel;
	table_cache table = { 0 };
	int status;
	const image_ref image = {
		.name = archive->path,
		.read_at = read_archive,
		.opaque = archive,
		.fd = -1,
		.size = pp_archive_image_size(archive),
	};
	enum pp_selector_kind kind = pp_classify_selector(selector);
	if (kind == PP_SELECTOR_LABEL) {
		status = resolve_probe_selector(selector, &image, &table, range,
						err);
		free(table.parts);
		return status == 1 ? PP_ERR_LOCATE : status;
	}
	if (kind == PP_SELECTOR_MOUNTPOINT) {
		status = resolve_fstab_selector(selector, &image, &table, range,
						err);
		free(table.parts);
		if (status == 1)
			status = pp_fail(err, PP_ERR_USAGE, "%s: %s: no ext root "
					 "filesystem whose /etc/fstab names its "
					 "partition: it needs libguestfs",
					 archive->path, selector);
		return status;
	}
	if (kind != PP_SELECTOR_TABLE || !parse_table_selector(selector, &sel))
		return pp_fail(err, PP_ERR_USAGE,
			       "%s: a partition in an archive is named partN, "
			       "/dev/sdaN, name:NAME, label:LABEL or uuid:UUID",
			       selector);
	status = resolve_table_selector(selector, &sel, archive->path,
					read_archive, archive,
					pp_archive_image_size(archive),
					&table, range, err);
	free(table.parts);
	return status;
}

int pp_list_partitions(pp_archive *archive, pp_partition_info **parts,
		       size_t *count, pp_error *err)
{
	return pp_read_partitions(read_archive, archive,
				  pp_archive_image_size(archive), archive->path,
				  parts, count, err);
}

int pp_list_image_partitions(int image_fd, uint64_t image_size,
			     const char *image_name, pp_partition_info **parts,
			     size_t *count, pp_error *err)
{
	return pp_read_partitions(image_fd >= 0 ? read_image_fd : NULL,
				  &image_fd, image_size, image_name, parts,
				  count, err);
}
