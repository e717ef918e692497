/*
 * ptable.c - the partition table of a disk image: GPT, else MBR.
 *
 * Which table counts follows what Linux, libblkid and fdisk do, so that
 * "partN" names the partition the user sees as /dev/sdXN:
 *
 *   - LBA 0 is read first.  A DOS partition table there with no protective
 *     (0xEE) entry is the table, even if a stale GPT lingers behind it.
 *   - Otherwise a GPT is looked for at LBA 1, with 512-byte and then
 *     4096-byte logical sectors.  A GPT is accepted behind a protective or
 *     hybrid MBR, or when LBA 0 holds no partition table at all.
 *   - A protective entry without a valid GPT is an error, not a reason to
 *     fall back: the DOS entries of a hybrid MBR are numbered differently
 *     from the GPT's, so guessing could silently pick another partition.
 *     The backup GPT is not consulted, for the same reason: a damaged
 *     primary is for a partitioning tool to repair, not for us to guess.
 *
 * References: UEFI Specification 2.10, section 5 (GPT), and the classic
 * IBM PC partition table layout for MBR and EBR chains.
 */
#include "ptable.h"
#include "array.h"
#include "crc.h"
#include "error.h"
#include "io.h"

#include <stdlib.h>
#include <string.h>

#define MBR_SECTOR_SIZE 512
#define MBR_TABLE_OFFSET 446
#define MBR_ENTRY_SIZE 16
#define MBR_ENTRY_COUNT 4
#define MBR_SIGNATURE_OFFSET 510
#define MBR_TYPE_EMPTY 0x00
#define MBR_TYPE_PROTECTIVE 0xee
#define MBR_FIRST_LOGICAL 5     /* Linux numbers logical partitions from 5 */
#define MBR_MAX_EBRS 128        /* a longer chain is taken to be a loop */

#define GPT_SIGNATURE "EFI PART"
#define GPT_HEADER_LBA 1
#define GPT_HEADER_MIN_SIZE 92
#define GPT_ENTRY_MIN_SIZE 128
#define GPT_NAME_OFFSET 56
#define GPT_NAME_UNITS 36       /* UTF-16 code units in an entry's name */
#define GPT_ARRAY_MAX_SIZE (16u << 20)  /* 128 times the usual 16 KiB */
#define GPT_MAX_SECTOR_SIZE 4096

/* Where the table comes from, for reads and messages. */
struct image {
	pp_read_fn read_at;
	void *opaque;
	uint64_t size;          /* 0 when unknown */
	const char *name;
};

struct partition_list {
	pp_partition *items;
	size_t count;
	size_t capacity;
};

/* ---- helpers --------------------------------------------------------- */

static int read_image(const struct image *image, void *buf, size_t len,
		      uint64_t offset, const char *what, pp_error *err)
{
	if (image->read_at(image->opaque, buf, len, offset) != 0)
		return pp_fail(err, PP_ERR_IO, "%s: cannot read %s at byte %llu",
			       image->name, what, (unsigned long long)offset);
	return 0;
}

/* Whether [offset, offset + len) runs past the image's end (an empty
 * image has no byte to read: no table). */
static bool beyond_image(const struct image *image, uint64_t offset,
			 uint64_t len)
{
	return offset > image->size || len > image->size - offset;
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static int add_partition(const struct image *image,
			 struct partition_list *list,
			 const pp_partition *partition, pp_error *err)
{
	if (beyond_image(image, partition->offset, partition->length))
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: partition %u (bytes %llu to %llu) extends "
			       "past the end of the image (%llu bytes)",
			       image->name, partition->number,
			       (unsigned long long)partition->offset,
			       (unsigned long long)(partition->offset +
						    partition->length),
			       (unsigned long long)image->size);
	pp_partition *items = pp_grow(list->items, list->count, &list->capacity,
				      sizeof *items, 8);
	if (!items)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	list->items = items;
	list->items[list->count++] = *partition;
	return 0;
}

/* ---- UTF-16LE names -------------------------------------------------- */

static size_t encode_utf8(uint32_t code_point, char out[4])
{
	if (code_point < 0x80) {
		out[0] = (char)code_point;
		return 1;
	}
	if (code_point < 0x800) {
		out[0] = (char)(0xc0 | code_point >> 6);
		out[1] = (char)(0x80 | (code_point & 0x3f));
		return 2;
	}
	if (code_point < 0x10000) {
		out[0] = (char)(0xe0 | code_point >> 12);
		out[1] = (char)(0x80 | (code_point >> 6 & 0x3f));
		out[2] = (char)(0x80 | (code_point & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | code_point >> 18);
	out[1] = (char)(0x80 | (code_point >> 12 & 0x3f));
	out[2] = (char)(0x80 | (code_point >> 6 & 0x3f));
	out[3] = (char)(0x80 | (code_point & 0x3f));
	return 4;
}

/* The code point starting at units[*i], advancing *i past a surrogate
 * pair; a lone surrogate becomes U+FFFD rather than invalid UTF-8. */
static uint32_t decode_utf16le(const uint8_t *units, size_t count, size_t *i)
{
	uint32_t unit = get_le16(units + 2 * *i);
	if (unit >= 0xd800 && unit <= 0xdbff && *i + 1 < count) {
		uint32_t low = get_le16(units + 2 * (*i + 1));
		if (low >= 0xdc00 && low <= 0xdfff) {
			++*i;
			return 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
		}
	}
	if (unit >= 0xd800 && unit <= 0xdfff)
		return 0xfffd;
	return unit;
}

/*
 * Converts a NUL-padded UTF-16LE name to UTF-8.  Thirty-six UTF-16 units
 * can need up to 108 bytes of UTF-8, more than out holds, so a long name
 * is cut at a character boundary: the result is always valid UTF-8.
 */
static void utf16le_to_utf8(const uint8_t *units, size_t count, char *out,
			    size_t out_size)
{
	size_t used = 0;
	for (size_t i = 0; i < count; i++) {
		uint32_t code_point = decode_utf16le(units, count, &i);
		if (code_point == 0)
			break;
		char bytes[4];
		size_t n = encode_utf8(code_point, bytes);
		if (used + n >= out_size)
			break;
		memcpy(out + used, bytes, n);
		used += n;
	}
	out[used] = '\0';
}

/* ---- MBR ------------------------------------------------------------- */

struct mbr_entry {
	uint8_t boot_flag;
	uint8_t type;
	uint32_t start;         /* in sectors, from a base that depends */
	uint32_t sectors;
};

enum mbr_kind {
	MBR_NONE,               /* no DOS partition table at LBA 0 */
	MBR_EMPTY,              /* a signed table with no entries */
	MBR_PROTECTIVE,         /* an 0xEE entry: the disk is GPT */
	MBR_PLAIN,              /* a DOS partition table */
};

static struct mbr_entry mbr_entry_at(const uint8_t *sector, int slot)
{
	const uint8_t *p = sector + MBR_TABLE_OFFSET + MBR_ENTRY_SIZE * slot;
	return (struct mbr_entry){
		.boot_flag = p[0],
		.type = p[4],
		.start = pp_get_le32(p + 8),
		.sectors = pp_get_le32(p + 12),
	};
}

static bool mbr_entry_unused(const struct mbr_entry *entry)
{
	return entry->type == MBR_TYPE_EMPTY || entry->sectors == 0;
}

static bool mbr_type_extended(uint8_t type)
{
	return type == 0x05 || type == 0x0f || type == 0x85;
}

static bool has_mbr_signature(const uint8_t *sector)
{
	return sector[MBR_SIGNATURE_OFFSET] == 0x55 &&
	       sector[MBR_SIGNATURE_OFFSET + 1] == 0xaa;
}

static enum mbr_kind classify_mbr(const uint8_t *sector)
{
	if (!has_mbr_signature(sector))
		return MBR_NONE;
	bool any_used = false, protective = false;
	for (int slot = 0; slot < MBR_ENTRY_COUNT; slot++) {
		struct mbr_entry entry = mbr_entry_at(sector, slot);
		/* As Linux does: other boot flags mean a boot sector that
		 * is not a partition table, such as a bare FAT volume. */
		if (entry.boot_flag != 0x00 && entry.boot_flag != 0x80)
			return MBR_NONE;
		if (entry.type == MBR_TYPE_PROTECTIVE)
			protective = true;
		if (!mbr_entry_unused(&entry))
			any_used = true;
	}
	if (protective)
		return MBR_PROTECTIVE;
	return any_used ? MBR_PLAIN : MBR_EMPTY;
}

static pp_partition mbr_partition(unsigned number, uint64_t start_lba,
				  uint32_t sectors)
{
	return (pp_partition){
		.number = number,
		.offset = start_lba * MBR_SECTOR_SIZE,
		.length = (uint64_t)sectors * MBR_SECTOR_SIZE,
	};
}

/*
 * The logical partition and the link to the next EBR that one EBR holds;
 * either may be unused.  The first entry of each kind counts, as fdisk
 * reads it: any others are left-over garbage.
 */
static void parse_ebr(const uint8_t *sector, struct mbr_entry *logical,
		      struct mbr_entry *link)
{
	*logical = *link = (struct mbr_entry){ 0 };
	for (int slot = 0; slot < MBR_ENTRY_COUNT; slot++) {
		struct mbr_entry entry = mbr_entry_at(sector, slot);
		if (mbr_entry_unused(&entry))
			continue;
		struct mbr_entry *kind = mbr_type_extended(entry.type) ?
			link : logical;
		if (mbr_entry_unused(kind))
			*kind = entry;
	}
}

/*
 * Follows the EBR chain of one extended partition.  An EBR places its
 * logical partition relative to itself and the next EBR relative to the
 * extended partition.  Logical partitions are numbered on from
 * *next_number; an EBR without one takes no number, as in Linux.
 */
static int read_logical_partitions(const struct image *image,
				   const struct mbr_entry *extended,
				   unsigned extended_number,
				   unsigned *next_number,
				   struct partition_list *list, pp_error *err)
{
	uint64_t extended_end = (uint64_t)extended->start + extended->sectors;
	uint64_t ebr_lba = extended->start;

	for (int links = 0; links < MBR_MAX_EBRS; links++) {
		uint8_t sector[MBR_SECTOR_SIZE];
		uint64_t ebr_offset = ebr_lba * MBR_SECTOR_SIZE;
		int status = read_image(image, sector, sizeof sector,
					ebr_offset, "an extended boot record",
					err);
		if (status)
			return status;
		if (!has_mbr_signature(sector))
			return pp_fail(err, PP_ERR_FORMAT,
				       "%s: extended partition %u: no signature "
				       "in the boot record at byte %llu",
				       image->name, extended_number,
				       (unsigned long long)ebr_offset);

		struct mbr_entry logical, link;
		parse_ebr(sector, &logical, &link);
		if (!mbr_entry_unused(&logical)) {
			pp_partition partition = mbr_partition(
				(*next_number)++, ebr_lba + logical.start,
				logical.sectors);
			status = add_partition(image, list, &partition, err);
			if (status)
				return status;
		}
		if (mbr_entry_unused(&link))
			return 0;
		/* Kept inside the extended partition, which was checked
		 * against the image's end, so EBRs are never read past it. */
		ebr_lba = (uint64_t)extended->start + link.start;
		if (ebr_lba >= extended_end)
			return pp_fail(err, PP_ERR_FORMAT,
				       "%s: extended partition %u: boot record "
				       "at byte %llu links outside the partition",
				       image->name, extended_number,
				       (unsigned long long)ebr_offset);
	}
	return pp_fail(err, PP_ERR_FORMAT,
		       "%s: extended partition %u: more than %d linked boot "
		       "records (a loop?)", image->name, extended_number,
		       MBR_MAX_EBRS);
}

/* Primary partitions are 1 to 4 by slot; then the logical partitions of
 * each extended partition, in slot order, from 5. */
static int read_mbr(const struct image *image, const uint8_t *sector,
		    struct partition_list *list, pp_error *err)
{
	for (int slot = 0; slot < MBR_ENTRY_COUNT; slot++) {
		struct mbr_entry entry = mbr_entry_at(sector, slot);
		if (mbr_entry_unused(&entry))
			continue;
		/* An extended partition is listed whole, as fdisk shows it:
		 * keeping it keeps every logical partition inside. */
		pp_partition partition = mbr_partition((unsigned)slot + 1,
						       entry.start,
						       entry.sectors);
		int status = add_partition(image, list, &partition, err);
		if (status)
			return status;
	}

	unsigned next_number = MBR_FIRST_LOGICAL;
	for (int slot = 0; slot < MBR_ENTRY_COUNT; slot++) {
		struct mbr_entry entry = mbr_entry_at(sector, slot);
		if (mbr_entry_unused(&entry) || !mbr_type_extended(entry.type))
			continue;
		int status = read_logical_partitions(image, &entry,
						     (unsigned)slot + 1,
						     &next_number, list, err);
		if (status)
			return status;
	}
	return 0;
}

/* ---- GPT ------------------------------------------------------------- */

/* What the header says about the partition entry array. */
struct gpt_header {
	uint64_t array_lba;
	uint32_t entry_count;
	uint32_t entry_size;
	uint32_t array_crc;
};

/* Why a GPT was not accepted; why == NULL while no header was seen. */
struct gpt_verdict {
	const char *why;
	unsigned sector_size;
};

static uint32_t gpt_header_crc(const uint8_t *header, uint32_t header_size)
{
	/* The CRC covers the header with its own CRC field taken as zero. */
	static const uint8_t zero_crc[4];
	uint32_t crc = pp_crc32(0, header, 16);
	crc = pp_crc32(crc, zero_crc, sizeof zero_crc);
	return pp_crc32(crc, header + 20, header_size - 20);
}

/* Checks the header in one logical sector; NULL if it is sound. */
static const char *parse_gpt_header(const uint8_t *sector,
				    unsigned sector_size,
				    struct gpt_header *header)
{
	uint32_t header_size = pp_get_le32(sector + 12);
	if (header_size < GPT_HEADER_MIN_SIZE || header_size > sector_size)
		return "impossible header size";
	if (gpt_header_crc(sector, header_size) != pp_get_le32(sector + 16))
		return "header CRC mismatch";
	if (pp_get_le64(sector + 24) != GPT_HEADER_LBA)
		return "header does not say it is at LBA 1";

	header->array_lba = pp_get_le64(sector + 72);
	header->entry_count = pp_get_le32(sector + 80);
	header->entry_size = pp_get_le32(sector + 84);
	header->array_crc = pp_get_le32(sector + 88);

	/* UEFI fixes the entry size at 128 times a power of two. */
	if (header->entry_size < GPT_ENTRY_MIN_SIZE ||
	    header->entry_size % GPT_ENTRY_MIN_SIZE != 0 ||
	    (header->entry_size & (header->entry_size - 1)) != 0)
		return "impossible partition entry size";
	if ((uint64_t)header->entry_count * header->entry_size >
	    GPT_ARRAY_MAX_SIZE)
		return "partition entry array too large";
	/* After the header, and where offset + size cannot overflow. */
	if (header->array_lba <= GPT_HEADER_LBA ||
	    header->array_lba > (UINT64_MAX - GPT_ARRAY_MAX_SIZE) / sector_size)
		return "impossible partition entry array location";
	return NULL;
}

static int add_gpt_partition(const struct image *image,
			     struct partition_list *list,
			     const uint8_t *entry, unsigned number,
			     unsigned sector_size, pp_error *err)
{
	uint64_t first_lba = pp_get_le64(entry + 32);
	uint64_t last_lba = pp_get_le64(entry + 40);
	if (first_lba > last_lba)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: GPT partition %u ends before it starts",
			       image->name, number);
	/* (last_lba + 1) * sector_size must fit in 64 bits. */
	if (last_lba >= UINT64_MAX / sector_size)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: GPT partition %u lies beyond any disk",
			       image->name, number);

	pp_partition partition = {
		.number = number,
		.offset = first_lba * sector_size,
		.length = (last_lba - first_lba + 1) * sector_size,
	};
	utf16le_to_utf8(entry + GPT_NAME_OFFSET, GPT_NAME_UNITS,
			partition.name, sizeof partition.name);
	return add_partition(image, list, &partition, err);
}

static int add_gpt_partitions(const struct image *image,
			      struct partition_list *list,
			      const struct gpt_header *header,
			      const uint8_t *array, unsigned sector_size,
			      pp_error *err)
{
	for (uint32_t i = 0; i < header->entry_count; i++) {
		const uint8_t *entry = array + (size_t)i * header->entry_size;
		if (pp_all_zero(entry, 16))
			continue;  /* no partition type: an unused entry */
		int status = add_gpt_partition(image, list, entry, i + 1,
					       sector_size, err);
		if (status)
			return status;
	}
	return 0;
}

/* Reads and checks the entry array, then lists its partitions.  Sets
 * verdict->why instead of failing when the array is not sound. */
static int read_gpt_array(const struct image *image,
			  const struct gpt_header *header,
			  unsigned sector_size, struct partition_list *list,
			  struct gpt_verdict *verdict, pp_error *err)
{
	size_t array_size = (size_t)header->entry_count * header->entry_size;
	uint64_t array_offset = header->array_lba * sector_size;
	if (beyond_image(image, array_offset, array_size)) {
		verdict->why = "partition entry array past the end of the image";
		return 0;
	}

	uint8_t *array = malloc(array_size ? array_size : 1);
	if (!array)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = read_image(image, array, array_size, array_offset,
				"the GPT partition entries", err);
	if (status == 0 &&
	    pp_crc32(0, array, array_size) != header->array_crc)
		verdict->why = "partition entry array CRC mismatch";
	else if (status == 0)
		status = add_gpt_partitions(image, list, header, array,
					    sector_size, err);
	free(array);
	return status;
}

/*
 * Looks for a GPT with one logical sector size.  Returns 0 with *found
 * set if it was read, 0 with the verdict filled in if there is no sound
 * GPT of that sector size, or an error status.
 */
static int try_gpt(const struct image *image, unsigned sector_size,
		   struct partition_list *list, bool *found,
		   struct gpt_verdict *verdict, pp_error *err)
{
	uint8_t sector[GPT_MAX_SECTOR_SIZE];
	uint64_t header_offset = (uint64_t)GPT_HEADER_LBA * sector_size;
	*found = false;
	if (beyond_image(image, header_offset, sector_size))
		return 0;
	int status = read_image(image, sector, sector_size, header_offset,
				"the GPT header", err);
	if (status)
		return status;
	if (memcmp(sector, GPT_SIGNATURE, strlen(GPT_SIGNATURE)) != 0)
		return 0;

	struct gpt_verdict mine = { .sector_size = sector_size };
	struct gpt_header header;
	mine.why = parse_gpt_header(sector, sector_size, &header);
	if (!mine.why) {
		status = read_gpt_array(image, &header, sector_size, list,
					&mine, err);
		if (status)
			return status;
	}
	if (!mine.why)
		*found = true;
	else if (!verdict->why)
		*verdict = mine;  /* the first broken header says most */
	return 0;
}

/* ---- choosing the table ---------------------------------------------- */

static int fail_without_gpt(const struct image *image, enum mbr_kind kind,
			    const struct gpt_verdict *verdict, pp_error *err)
{
	if (!verdict->why && kind == MBR_PROTECTIVE)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: the MBR is protective but there is no GPT "
			       "header (\"EFI PART\") at LBA 1", image->name);
	if (!verdict->why)
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: no GPT or MBR partition table found",
			       image->name);
	return pp_fail(err, PP_ERR_FORMAT,
		       "%s: %s GPT: %s with %u-byte sectors", image->name,
		       kind == MBR_PROTECTIVE ? "the MBR is protective but "
						"there is no valid" :
						"invalid",
		       verdict->why, verdict->sector_size);
}

static int read_table(const struct image *image, struct partition_list *list,
		      pp_error *err)
{
	uint8_t mbr[MBR_SECTOR_SIZE];
	if (beyond_image(image, 0, sizeof mbr))
		return pp_fail(err, PP_ERR_FORMAT,
			       "%s: no GPT or MBR partition table found "
			       "(the image is smaller than one sector)",
			       image->name);
	int status = read_image(image, mbr, sizeof mbr, 0, "the MBR", err);
	if (status)
		return status;

	enum mbr_kind kind = classify_mbr(mbr);
	if (kind == MBR_PLAIN)
		return read_mbr(image, mbr, list, err);

	static const unsigned sector_sizes[] = { 512, 4096 };
	struct gpt_verdict verdict = { 0 };
	for (size_t i = 0; i < sizeof sector_sizes / sizeof *sector_sizes; i++) {
		bool found;
		status = try_gpt(image, sector_sizes[i], list, &found,
				 &verdict, err);
		if (status || found)
			return status;
	}
	/* A signed but empty DOS table is a valid table of no partitions,
	 * unless a GPT header was seen: then that was meant and is broken. */
	if (kind == MBR_EMPTY && !verdict.why)
		return 0;
	return fail_without_gpt(image, kind, &verdict, err);
}

int pp_read_partitions(pp_read_fn read_at, void *opaque, uint64_t image_size,
		       const char *image_name, pp_partition **parts,
		       size_t *count, pp_error *err)
{
	const struct image image = {
		.read_at = read_at,
		.opaque = opaque,
		.size = image_size,
		.name = image_name ? image_name : "image",
	};
	struct partition_list list = { 0 };

	*parts = NULL;
	*count = 0;
	if (!read_at)
		return pp_fail(err, PP_ERR_USAGE,
			       "%s: cannot read a partition table without "
			       "random access", image.name);
	int status = read_table(&image, &list, err);
	if (status) {
		free(list.items);
		return status;
	}
	*parts = list.items;  /* NULL when there are no partitions */
	*count = list.count;
	return 0;
}
