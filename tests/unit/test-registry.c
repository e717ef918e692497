/*
 * test-registry.c - the registry of formats: every question a caller may ask
 * about formats without naming one gets the answer the containers give,
 * and the answers agree with each other.
 */
#include "container.h"
#include "format.h"
#include "unit.h"

#include <string.h>

/* Every registered format: its names and suffixes lead back to it. */
static void test_round_trips(void)
{
	size_t count = 0;
	bool names_ok = true, suffixes_ok = true, probes_ok = true;
	for (; pp_format_at(count); count++) {
		enum pp_format format = pp_format_at(count);
		const pp_container_ops *c = pp_container_of(format);
		if (!c) {
			names_ok = false;
			continue;
		}
		names_ok &= strcmp(pp_format_name(format), c->names[0]) == 0;
		for (const char *const *n = c->names; *n; n++)
			names_ok &= pp_format_from_name(*n) == format;
		for (const char *const *s = c->suffixes; *s; s++) {
			char path[64];
			snprintf(path, sizeof path, "dir/disk%s", *s);
			suffixes_ok &= pp_format_from_path(path) == format;
		}
		suffixes_ok &= strcmp(pp_format_suffix(format),
				      c->suffixes[0]) == 0;
		probes_ok &= c->probe != NULL && c->open != NULL &&
			     c->encode_block != NULL;
	}
	CHECK(count >= 2 && pp_format_at(count) == 0,
	      "%zu formats are registered, then none", count);
	CHECK(names_ok, "every name of a format selects it");
	CHECK(suffixes_ok, "every suffix of a format says it");
	CHECK(probes_ok, "every format has both sides");
}

static void test_answers(void)
{
	CHECK(pp_format_at(0) == PP_FORMAT_XZ, "xz is the default");
	CHECK(pp_format_from_name("gz") == PP_FORMAT_GZIP &&
	      pp_format_from_name("gzip") == PP_FORMAT_GZIP &&
	      pp_format_from_name("xz") == PP_FORMAT_XZ &&
	      pp_format_from_name("zip") == 0 &&
	      pp_format_from_name("") == 0, "names");
	CHECK(pp_format_from_path("a.xz") == PP_FORMAT_XZ &&
	      pp_format_from_path("a.tar.gz") == PP_FORMAT_GZIP &&
	      pp_format_from_path("a.tgz") == PP_FORMAT_GZIP &&
	      pp_format_from_path("a.gzip") == PP_FORMAT_GZIP &&
	      pp_format_from_path("a.img") == 0 &&
	      pp_format_from_path(".xz") == 0 &&
	      pp_format_from_path("a.xz.bak") == 0, "file name suffixes");
	CHECK(strcmp(pp_format_suffix(PP_FORMAT_XZ), ".xz") == 0 &&
	      strcmp(pp_format_suffix(PP_FORMAT_GZIP), ".gz") == 0 &&
	      pp_format_suffix((enum pp_format)9) == NULL,
	      "the suffix partpack appends");
	CHECK(strcmp(pp_format_name(PP_FORMAT_GZIP), "gzip") == 0 &&
	      strcmp(pp_format_name((enum pp_format)9), "unknown") == 0,
	      "format names");
	int min = -1, max = -1, level = -1;
	CHECK(pp_format_levels(PP_FORMAT_GZIP, &min, &max, &level) == 0 &&
	      min == 0 && max == 9 && level == 6 &&
	      pp_format_levels((enum pp_format)9, &min, &max, &level) ==
	      PP_ERR_USAGE, "level ranges");
	CHECK(pp_format_default_check(PP_FORMAT_XZ) == PP_CHECK_CRC64 &&
	      pp_format_default_check(PP_FORMAT_GZIP) == PP_CHECK_CRC32,
	      "default checks");
}

/* The options a caller starts from are the default format's. */
static void test_defaults(void)
{
	pp_pack_options options;
	pp_pack_options_init(&options);
	int min, max, level;
	pp_format_levels(pp_format_at(0), &min, &max, &level);
	CHECK(options.format == pp_format_at(0) && options.level == level &&
	      options.check == pp_format_default_check(options.format),
	      "pp_pack_options_init gives the default format's defaults");
}

/* The registry finds a format by its first bytes, and only then. */
static void test_probe(void)
{
	static const uint8_t xz_head[] = { 0xFD, '7', 'z', 'X', 'Z', 0 };
	static const uint8_t gz_head[] = { 0x1f, 0x8b, 8, 0 };
	static const uint8_t text[] = "hello, world";
	const pp_container_ops *xz = pp_container_probe(xz_head,
							sizeof xz_head);
	const pp_container_ops *gz = pp_container_probe(gz_head,
							sizeof gz_head);
	CHECK(xz && xz->format == PP_FORMAT_XZ && gz &&
	      gz->format == PP_FORMAT_GZIP &&
	      !pp_container_probe(text, sizeof text), "probing");
	CHECK(pp_format_of_head(xz_head, sizeof xz_head) == PP_FORMAT_XZ &&
	      pp_format_of_head(gz_head, sizeof gz_head) == PP_FORMAT_GZIP &&
	      pp_format_of_head(xz_head, 3) == 0 &&
	      pp_format_of_head(text, sizeof text) == 0,
	      "pp_format_of_head answers the same");
	char names[200];
	pp_container_names(names, sizeof names);
	CHECK(strncmp(names, "xz", 2) == 0 && strstr(names, "gzip") &&
	      strlen(names) < sizeof names - 1,
	      "the formats named for messages: %s", names);
	char short_text[4];
	pp_container_names(short_text, sizeof short_text);
	CHECK(strlen(short_text) == 3 && strncmp(short_text, names, 3) == 0,
	      "a short buffer gets a cut, terminated list");
}

int main(void)
{
	test_round_trips();
	test_answers();
	test_defaults();
	test_probe();
	return unit_done();
}
