/*
 * test-ptable.c - GPT and MBR reading, on images built in memory, and
 * against sfdisk's own reading of tables it wrote, when sfdisk is there.
 */
#include "crc.h"
#include "io.h"
#include "ptable.h"
#include "unit.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SFDISK
#define SFDISK "/sbin/sfdisk"
#endif
#define MIB (1024 * 1024)
#define GPT_ENTRIES 128
#define GPT_ENTRY_SIZE 128

struct memory_image {
	uint8_t *bytes;
	size_t size;
	bool fail_reads;
};

static int read_memory(void *opaque, void *buf, size_t len, uint64_t offset)
{
	const struct memory_image *image = opaque;
	if (image->fail_reads || offset > image->size ||
	    len > image->size - offset)
		return -1;
	memcpy(buf, image->bytes + offset, len);
	return 0;
}

static struct memory_image new_image(size_t size)
{
	struct memory_image image = { .bytes = calloc(1, size), .size = size };
	if (!image.bytes) {
		perror("calloc");
		exit(EXIT_FAILURE);
	}
	return image;
}

/* Reads the table of a memory image of the given size as "disk.img". */
static int read_table(struct memory_image *image, pp_partition **parts,
		      size_t *count, pp_error *err)
{
	return pp_read_partitions(read_memory, image, image->size, "disk.img",
				  parts, count, err);
}

static void check_partition(const pp_partition *part, unsigned number,
			    uint64_t offset, uint64_t length, const char *name)
{
	CHECK(part->number == number && part->offset == offset &&
	      part->length == length && strcmp(part->name, name) == 0,
	      "partition %u at %llu+%llu named \"%s\" (got %u at %llu+%llu "
	      "\"%s\")", number, (unsigned long long)offset,
	      (unsigned long long)length, name, part->number,
	      (unsigned long long)part->offset,
	      (unsigned long long)part->length, part->name);
}

/* Expects failure with `status` and a message containing each of the
 * NULL-terminated fragments. */
static void check_failure(struct memory_image *image, enum pp_status status,
			  const char *label, ...)
{
	pp_partition *parts = NULL;
	size_t count = 0;
	pp_error err = { 0 };
	int got = read_table(image, &parts, &count, &err);

	bool has_all = true;
	va_list fragments;
	va_start(fragments, label);
	for (const char *f; (f = va_arg(fragments, const char *)) != NULL;)
		has_all = has_all && strstr(err.message, f) != NULL;
	va_end(fragments);

	CHECK(got == (int)status && err.status == status && has_all &&
	      parts == NULL && count == 0,
	      "%s: %d \"%s\"", label, got, err.message);
	CHECK(strchr(err.message, '\n') == NULL, "%s: one line", label);
	free(parts);
}

/* ---- MBR building ---------------------------------------------------- */

static void put_mbr_entry(uint8_t *sector, int slot, uint8_t type,
			  uint32_t start, uint32_t sectors)
{
	uint8_t *p = sector + 446 + 16 * slot;
	p[4] = type;
	pp_put_le32(p + 8, start);
	pp_put_le32(p + 12, sectors);
}

static void put_mbr_signature(uint8_t *sector)
{
	sector[510] = 0x55;
	sector[511] = 0xaa;
}

static void put_protective_mbr(struct memory_image *image, unsigned sector)
{
	uint64_t sectors = image->size / sector - 1;
	memset(image->bytes, 0, 512);
	put_mbr_entry(image->bytes, 0, 0xee, 1,
		      (uint32_t)PP_MIN(sectors, UINT32_MAX));
	put_mbr_signature(image->bytes);
}

/* ---- GPT building ---------------------------------------------------- */

struct gpt_spec {
	unsigned index;         /* in the entry array */
	uint64_t first_lba;
	uint64_t last_lba;
	const uint16_t *name;   /* UTF-16 units, 0-terminated */
};

static const uint16_t name_esp[] = { 'E', 'F', 'I', ' ', 'S', 'y', 's', 't',
				     'e', 'm', 0 };
/* "root-ä😀": a two-byte character and a surrogate pair. */
static const uint16_t name_root[] = { 'r', 'o', 'o', 't', '-', 0x00e4,
				      0xd83d, 0xde00, 0 };
static const uint16_t name_data[] = { 'd', 'a', 't', 'a', 0 };

static void put_gpt_entry(uint8_t *entry, const struct gpt_spec *spec)
{
	/* Linux filesystem data, 0FC63DAF-8483-4772-8E79-3D69D8477DE4. */
	static const uint8_t linux_type[16] = {
		0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
		0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
	};
	memcpy(entry, linux_type, sizeof linux_type);
	memset(entry + 16, 0x40 + (int)spec->index, 16);  /* unique GUID */
	pp_put_le64(entry + 32, spec->first_lba);
	pp_put_le64(entry + 40, spec->last_lba);
	for (int i = 0; spec->name && spec->name[i]; i++) {
		entry[56 + 2 * i] = (uint8_t)spec->name[i];
		entry[57 + 2 * i] = (uint8_t)(spec->name[i] >> 8);
	}
}

/* Fills in both CRCs of the primary GPT from what is there now. */
static void seal_gpt(struct memory_image *image, unsigned sector)
{
	uint8_t *header = image->bytes + sector;
	uint8_t *array = image->bytes + 2 * sector;
	pp_put_le32(header + 88, pp_crc32(0, array,
					  GPT_ENTRIES * GPT_ENTRY_SIZE));
	pp_put_le32(header + 16, 0);
	pp_put_le32(header + 16, pp_crc32(0, header, 92));
}

static void build_gpt(struct memory_image *image, unsigned sector,
		      const struct gpt_spec *specs, size_t count)
{
	uint64_t last_lba = image->size / sector - 1;
	uint64_t array_sectors = GPT_ENTRIES * GPT_ENTRY_SIZE / sector;
	uint8_t *header = image->bytes + sector;

	put_protective_mbr(image, sector);
	memset(header, 0, sector);
	memcpy(header, "EFI PART", 8);
	pp_put_le32(header + 8, 0x00010000);                  /* revision */
	pp_put_le32(header + 12, 92);                         /* header size */
	pp_put_le64(header + 24, 1);                          /* this LBA */
	pp_put_le64(header + 32, last_lba);                   /* backup LBA */
	pp_put_le64(header + 40, 2 + array_sectors);          /* first usable */
	pp_put_le64(header + 48, last_lba - 1 - array_sectors);
	memset(header + 56, 0x5a, 16);                        /* disk GUID */
	pp_put_le64(header + 72, 2);                          /* array LBA */
	pp_put_le32(header + 80, GPT_ENTRIES);
	pp_put_le32(header + 84, GPT_ENTRY_SIZE);

	uint8_t *array = image->bytes + 2 * sector;
	memset(array, 0, GPT_ENTRIES * GPT_ENTRY_SIZE);
	for (size_t i = 0; i < count; i++)
		put_gpt_entry(array + specs[i].index * GPT_ENTRY_SIZE,
			      &specs[i]);
	seal_gpt(image, sector);
}

/* ---- GPT tests ------------------------------------------------------- */

static void test_gpt_with_names(void)
{
	struct memory_image image = new_image(4 * MIB);
	const struct gpt_spec specs[] = {
		{ .index = 0, .first_lba = 34, .last_lba = 2047,
		  .name = name_esp },
		{ .index = 2, .first_lba = 2048, .last_lba = 6143,
		  .name = name_root },
	};
	build_gpt(&image, 512, specs, 2);

	pp_partition *parts;
	size_t count;
	pp_error err = { 0 };
	int status = read_table(&image, &parts, &count, &err);
	CHECK(status == 0 && count == 2, "GPT, 512-byte sectors: %d, %zu "
	      "partitions %s", status, count, err.message);
	if (status == 0 && count == 2) {
		check_partition(&parts[0], 1, 34 * 512, 2014 * 512,
				"EFI System");
		/* Entry 2 is empty: the next partition is number 3. */
		check_partition(&parts[1], 3, MIB, 2 * MIB,
				"root-\xc3\xa4\xf0\x9f\x98\x80");
	}
	free(parts);
	free(image.bytes);
}

static void test_gpt_4096(void)
{
	struct memory_image image = new_image(8 * MIB);
	const struct gpt_spec spec = { .index = 0, .first_lba = 256,
				       .last_lba = 767, .name = name_data };
	build_gpt(&image, 4096, &spec, 1);

	pp_partition *parts;
	size_t count;
	pp_error err = { 0 };
	int status = read_table(&image, &parts, &count, &err);
	CHECK(status == 0 && count == 1, "GPT, 4096-byte sectors: %d, %zu "
	      "partitions %s", status, count, err.message);
	if (status == 0 && count == 1)
		check_partition(&parts[0], 1, MIB, 2 * MIB, "data");
	free(parts);
	free(image.bytes);
}

/* 36 three-byte characters do not fit in 71 bytes: cut at 23 whole ones. */
static void test_gpt_long_name(void)
{
	uint16_t long_name[37];
	for (int i = 0; i < 36; i++)
		long_name[i] = 0x4e2d;  /* 中 */
	long_name[36] = 0;
	struct memory_image image = new_image(MIB);
	const struct gpt_spec spec = { .index = 0, .first_lba = 34,
				       .last_lba = 100, .name = long_name };
	build_gpt(&image, 512, &spec, 1);

	pp_partition *parts;
	size_t count;
	int status = read_table(&image, &parts, &count, NULL);
	char expected[sizeof parts[0].name] = "";
	for (int i = 0; i < 36; i++)
		strcat(expected, "\xe4\xb8\xad");
	CHECK(status == 0 && count == 1 &&
	      strcmp(parts[0].name, expected) == 0,
	      "a name of 36 three-byte characters is kept whole");
	free(parts);
	free(image.bytes);
}

static void test_gpt_corrupt_header(void)
{
	struct memory_image image = new_image(MIB);
	const struct gpt_spec spec = { .index = 0, .first_lba = 34,
				       .last_lba = 100, .name = name_data };
	build_gpt(&image, 512, &spec, 1);
	image.bytes[512 + 60] ^= 1;  /* in the disk GUID */
	check_failure(&image, PP_ERR_FORMAT,
		      "protective MBR, GPT header CRC wrong",
		      "disk.img: ", "GPT", "header CRC", "512-byte", NULL);
	free(image.bytes);
}

static void test_gpt_corrupt_array(void)
{
	struct memory_image image = new_image(MIB);
	const struct gpt_spec spec = { .index = 0, .first_lba = 34,
				       .last_lba = 100, .name = name_data };
	build_gpt(&image, 512, &spec, 1);
	image.bytes[1024 + 56] ^= 1;  /* in the first name */
	check_failure(&image, PP_ERR_FORMAT, "GPT entry array CRC wrong",
		      "disk.img: ", "GPT", "entry array CRC", NULL);
	free(image.bytes);
}

static void test_gpt_bad_entry_size(void)
{
	struct memory_image image = new_image(MIB);
	build_gpt(&image, 512, NULL, 0);
	pp_put_le32(image.bytes + 512 + 84, 100);
	seal_gpt(&image, 512);
	check_failure(&image, PP_ERR_FORMAT, "GPT entry size of 100",
		      "disk.img: ", "entry size", NULL);
	free(image.bytes);
}

static void test_gpt_past_end(void)
{
	struct memory_image image = new_image(MIB);
	const struct gpt_spec specs[] = {
		{ .index = 0, .first_lba = 34, .last_lba = 100 },
		{ .index = 1, .first_lba = 101, .last_lba = 2048 },
	};
	build_gpt(&image, 512, specs, 2);
	check_failure(&image, PP_ERR_FORMAT, "GPT partition past the end",
		      "disk.img: partition 2 ", "past the end", NULL);
	free(image.bytes);
}

static void test_gpt_reversed_entry(void)
{
	struct memory_image image = new_image(MIB);
	const struct gpt_spec spec = { .index = 4, .first_lba = 100,
				       .last_lba = 99 };
	build_gpt(&image, 512, &spec, 1);
	check_failure(&image, PP_ERR_FORMAT, "GPT partition ending early",
		      "disk.img: GPT partition 5 ", NULL);
	free(image.bytes);
}

static void test_protective_mbr_alone(void)
{
	struct memory_image image = new_image(MIB);
	put_protective_mbr(&image, 512);
	check_failure(&image, PP_ERR_FORMAT, "protective MBR, no GPT",
		      "disk.img: ", "protective", "GPT", NULL);
	free(image.bytes);
}

/* LBA 0 holds a real DOS table: a GPT left behind it is stale. */
static void test_stale_gpt_behind_mbr(void)
{
	struct memory_image image = new_image(MIB);
	const struct gpt_spec spec = { .index = 0, .first_lba = 34,
				       .last_lba = 100 };
	build_gpt(&image, 512, &spec, 1);
	put_mbr_entry(image.bytes, 0, 0x83, 1000, 24);

	pp_partition *parts;
	size_t count;
	int status = read_table(&image, &parts, &count, NULL);
	CHECK(status == 0 && count == 1 && parts[0].offset == 1000 * 512,
	      "a DOS table wins over a stale GPT");
	free(parts);
	free(image.bytes);
}

/* Nothing at LBA 0 contradicts the GPT, so it is taken. */
static void test_gpt_without_mbr(void)
{
	struct memory_image image = new_image(MIB);
	const struct gpt_spec spec = { .index = 0, .first_lba = 34,
				       .last_lba = 100 };
	build_gpt(&image, 512, &spec, 1);
	memset(image.bytes, 0, 512);

	pp_partition *parts;
	size_t count;
	int status = read_table(&image, &parts, &count, NULL);
	CHECK(status == 0 && count == 1 && parts[0].offset == 34 * 512,
	      "a GPT without a protective MBR");
	free(parts);
	free(image.bytes);
}

/* ---- MBR tests ------------------------------------------------------- */

/*
 * Primary 1, extended 2 (four EBRs: logical, none, logical, logical),
 * slot 3 empty, primary 4.  The data-less EBR takes no number.
 */
static struct memory_image build_mbr_with_logicals(void)
{
	struct memory_image image = new_image(8 * MIB);
	uint8_t *mbr = image.bytes;
	put_mbr_entry(mbr, 0, 0x83, 2048, 2048);
	put_mbr_entry(mbr, 1, 0x0f, 4096, 8192);
	put_mbr_entry(mbr, 3, 0x07, 12288, 1024);
	mbr[446] = 0x80;  /* bootable */
	put_mbr_signature(mbr);

	/* EBR LBA, its logical partition (relative start, sectors; 0 for
	 * none) and the next EBR's start relative to the extended one. */
	static const struct {
		uint32_t lba, start, sectors, next;
	} chain[] = {
		{ 4096, 2048, 1024, 3072 },
		{ 7168, 0, 0, 3200 },
		{ 7296, 64, 512, 4000 },
		{ 8096, 32, 96, 0 },
	};
	for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
		uint8_t *ebr = image.bytes + (size_t)chain[i].lba * 512;
		if (chain[i].sectors)
			put_mbr_entry(ebr, 0, 0x83, chain[i].start,
				      chain[i].sectors);
		if (chain[i].next)
			put_mbr_entry(ebr, 1, 0x05, chain[i].next, 64);
		put_mbr_signature(ebr);
	}
	return image;
}

static void test_mbr_with_logicals(void)
{
	struct memory_image image = build_mbr_with_logicals();
	pp_partition *parts;
	size_t count;
	pp_error err = { 0 };
	int status = read_table(&image, &parts, &count, &err);
	CHECK(status == 0 && count == 6, "MBR with logical partitions: %d, "
	      "%zu partitions %s", status, count, err.message);
	if (status == 0 && count == 6) {
		check_partition(&parts[0], 1, 2048 * 512, 2048 * 512, "");
		check_partition(&parts[1], 2, 4096 * 512, 8192 * 512, "");
		check_partition(&parts[2], 4, 12288 * 512, 1024 * 512, "");
		check_partition(&parts[3], 5, 6144 * 512, 1024 * 512, "");
		check_partition(&parts[4], 6, 7360 * 512, 512 * 512, "");
		check_partition(&parts[5], 7, 8128 * 512, 96 * 512, "");
	}
	free(parts);
	free(image.bytes);
}

static void test_ebr_loop(void)
{
	struct memory_image image = build_mbr_with_logicals();
	/* The third EBR links back to the first. */
	put_mbr_entry(image.bytes + 7296 * 512, 1, 0x05, 0, 64);
	check_failure(&image, PP_ERR_FORMAT, "EBR loop",
		      "disk.img: extended partition 2", "loop", NULL);
	free(image.bytes);
}

static void test_ebr_link_outside(void)
{
	struct memory_image image = build_mbr_with_logicals();
	put_mbr_entry(image.bytes + 7296 * 512, 1, 0x05, 9000, 64);
	check_failure(&image, PP_ERR_FORMAT, "EBR linking outside",
		      "disk.img: extended partition 2", "outside", NULL);
	free(image.bytes);
}

static void test_ebr_unsigned(void)
{
	struct memory_image image = build_mbr_with_logicals();
	image.bytes[7296 * 512 + 511] = 0;
	check_failure(&image, PP_ERR_FORMAT, "EBR without signature",
		      "disk.img: extended partition 2", "signature", NULL);
	free(image.bytes);
}

static void test_mbr_past_end(void)
{
	struct memory_image image = new_image(MIB);
	put_mbr_entry(image.bytes, 0, 0x83, 100, 10);
	put_mbr_entry(image.bytes, 1, 0x83, 2000, 100);
	put_mbr_signature(image.bytes);
	check_failure(&image, PP_ERR_FORMAT, "MBR partition past the end",
		      "disk.img: partition 2 ", "past the end",
		      "1048576 bytes", NULL);
	free(image.bytes);
}

static void test_empty_mbr(void)
{
	struct memory_image image = new_image(MIB);
	put_mbr_signature(image.bytes);
	pp_partition *parts;
	size_t count;
	int status = read_table(&image, &parts, &count, NULL);
	CHECK(status == 0 && count == 0, "an empty DOS table has no partitions");
	free(parts);
	free(image.bytes);
}

/* ---- no table, bad reads --------------------------------------------- */

static void test_no_table(void)
{
	struct memory_image image = new_image(MIB);
	pp_error err = { 0 };
	pp_partition *parts;
	size_t count;
	int status = read_table(&image, &parts, &count, &err);
	CHECK(status == PP_ERR_FORMAT &&
	      strcmp(err.message,
		     "disk.img: no GPT or MBR partition table found") == 0,
	      "no table: %s", err.message);
	free(parts);
	free(image.bytes);
}

/* A FAT boot sector is signed like an MBR, but its "boot flags" are not. */
static void test_boot_sector_is_no_table(void)
{
	struct memory_image image = new_image(MIB);
	put_mbr_entry(image.bytes, 0, 0x83, 1, 10);
	image.bytes[446] = 0x29;
	put_mbr_signature(image.bytes);
	check_failure(&image, PP_ERR_FORMAT, "boot sector, not a table",
		      "disk.img: no GPT or MBR", NULL);
	free(image.bytes);
}

static void test_tiny_image(void)
{
	struct memory_image image = new_image(100);
	check_failure(&image, PP_ERR_FORMAT, "image smaller than a sector",
		      "disk.img: no GPT or MBR", NULL);
	free(image.bytes);
}

static void test_read_failure(void)
{
	struct memory_image image = new_image(MIB);
	image.fail_reads = true;
	check_failure(&image, PP_ERR_IO, "read failure",
		      "disk.img: cannot read", NULL);
	free(image.bytes);
}

/* ---- against sfdisk -------------------------------------------------- */

static int read_file(void *opaque, void *buf, size_t len, uint64_t offset)
{
	return pp_pread_full(*(const int *)opaque, buf, len, offset);
}

/* The number after "key": in text, or false. */
static bool json_number(const char *text, const char *key, uint64_t *value)
{
	char pattern[32];
	snprintf(pattern, sizeof pattern, "\"%s\":", key);
	const char *p = strstr(text, pattern);
	if (!p)
		return false;
	char *end;
	*value = strtoull(p + strlen(pattern), &end, 10);
	return end != p + strlen(pattern);
}

/* The string after "key": in text (no escapes expected), or "". */
static void json_string(const char *text, const char *key, char *out,
			size_t size)
{
	char pattern[32];
	snprintf(pattern, sizeof pattern, "\"%s\": \"", key);
	const char *p = strstr(text, pattern);
	size_t n = 0;
	if (p) {
		p += strlen(pattern);
		while (p[n] && p[n] != '"' && n + 1 < size)
			n++;
		memcpy(out, p, n);
	}
	out[n] = '\0';
}

/* All a command prints, NUL-terminated, or NULL if it failed. */
static char *read_command_output(const char *command)
{
	FILE *pipe = popen(command, "r");
	if (!pipe)
		return NULL;
	char *text = NULL;
	size_t size = 0, capacity = 0;
	bool ok = true;
	while (ok) {
		if (capacity - size < 2) {
			capacity = capacity ? 2 * capacity : 4096;
			char *bigger = realloc(text, capacity);
			if (!bigger)
				break;
			text = bigger;
		}
		size_t n = fread(text + size, 1, capacity - size - 1, pipe);
		size += n;
		ok = n > 0;
	}
	if (pclose(pipe) != 0 || ok || !text) {
		free(text);  /* failed, or realloc did */
		return NULL;
	}
	text[size] = '\0';
	return text;
}

/*
 * Compares our partitions with sfdisk's JSON, one "node" object at a
 * time: the partition number is the node's trailing digits.
 */
static void compare_with_sfdisk_json(const char *json, const pp_partition *parts,
				     size_t count, const char *label)
{
	uint64_t sector_size = 0;
	json_number(json, "sectorsize", &sector_size);
	size_t matched = 0, seen = 0;
	const char *object = strstr(json, "\"node\":");
	while (object) {
		const char *next = strstr(object + 1, "\"node\":");
		size_t object_len = next ? (size_t)(next - object) : strlen(object);
		char *text = strndup(object, object_len);
		char node[256], name[72];
		uint64_t start = 0, size = 0;
		json_string(text, "node", node, sizeof node);
		json_string(text, "name", name, sizeof name);
		json_number(text, "start", &start);
		json_number(text, "size", &size);
		const char *number_text = node + strlen(node);
		while (number_text > node && number_text[-1] >= '0' &&
		       number_text[-1] <= '9')
			number_text--;
		unsigned number = (unsigned)strtoul(number_text, NULL, 10);

		for (size_t i = 0; i < count; i++)
			if (parts[i].number == number &&
			    parts[i].offset == start * sector_size &&
			    parts[i].length == size * sector_size &&
			    strcmp(parts[i].name, name) == 0)
				matched++;
		seen++;
		free(text);
		object = next;
	}
	CHECK(sector_size == 512 && seen == count && matched == count &&
	      count > 0, "%s: %zu of %zu partitions match sfdisk's %zu",
	      label, matched, count, seen);
}

static void cross_check_sfdisk(const char *label, const char *script)
{
	const char *tmpdir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/pp-ptable-XXXXXX",
		 tmpdir && *tmpdir ? tmpdir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, 16 * MIB) != 0) {
		CHECK(false, "%s: cannot make a sparse image in %s", label,
		      path);
		if (fd >= 0)
			close(fd);
		return;
	}

	char command[4200];
	snprintf(command, sizeof command, SFDISK " --quiet '%s' >/dev/null 2>&1",
		 path);
	FILE *pipe = popen(command, "w");
	bool wrote = pipe && fputs(script, pipe) >= 0;
	wrote = pipe && pclose(pipe) == 0 && wrote;
	snprintf(command, sizeof command, SFDISK " --json '%s' 2>/dev/null",
		 path);
	char *json = wrote ? read_command_output(command) : NULL;
	CHECK(json != NULL, "%s: sfdisk wrote and read the table", label);

	pp_partition *parts = NULL;
	size_t count = 0;
	pp_error err = { 0 };
	int status = pp_read_partitions(read_file, &fd, 16 * MIB, path, &parts,
					&count, &err);
	CHECK(status == 0, "%s: read the table %s", label, err.message);
	if (json && status == 0)
		compare_with_sfdisk_json(json, parts, count, label);
	free(parts);
	free(json);
	close(fd);
	unlink(path);
}

static void test_against_sfdisk(void)
{
	if (access(SFDISK, X_OK) != 0) {
		CHECK(true, "# SKIP %s not found: no cross-check", SFDISK);
		return;
	}
	cross_check_sfdisk("sfdisk GPT",
			   "label: gpt\n"
			   "first-lba: 2048\n"
			   "size=2MiB, name=\"alpha\"\n"
			   "size=3MiB, name=\"beta two\"\n");
	cross_check_sfdisk("sfdisk DOS",
			   "label: dos\n"
			   "size=2MiB, type=83\n"
			   "size=1MiB, type=83\n"
			   "size=1MiB, type=83\n"
			   "type=5\n"
			   "size=1MiB, type=83\n"
			   "size=2MiB, type=82\n");
}

int main(void)
{
	test_gpt_with_names();
	test_gpt_4096();
	test_gpt_long_name();
	test_gpt_corrupt_header();
	test_gpt_corrupt_array();
	test_gpt_bad_entry_size();
	test_gpt_past_end();
	test_gpt_reversed_entry();
	test_protective_mbr_alone();
	test_stale_gpt_behind_mbr();
	test_gpt_without_mbr();
	test_mbr_with_logicals();
	test_ebr_loop();
	test_ebr_link_outside();
	test_ebr_unsigned();
	test_mbr_past_end();
	test_empty_mbr();
	test_no_table();
	test_boot_sector_is_no_table();
	test_tiny_image();
	test_read_failure();
	test_against_sfdisk();
	return unit_done();
}
