/*
 * probe.c - what a partition holds, as libblkid (util-linux) sees it:
 * the filesystem type, label and UUID that label: and uuid: selectors
 * match and that decides how files in it are edited.
 *
 * libblkid probes a file descriptor; it has no public way to probe bytes
 * in memory.  An image file is probed directly (blkid_probe_set_device
 * with the partition's offset and size).  A partition of an archive is
 * copied, its first MiB only, into a sparse memfd of the partition's size:
 * every superblock blkid knows lies there (ext at 1 KiB, FAT and NTFS at
 * 0, btrfs at 64 KiB, xfs at 0, LUKS at 0, swap at the end of its first
 * page), and the rest reads as zeros.  One exception: FAT keeps its label
 * in the root directory too, which blkid prefers and which may lie past
 * the first MiB, so for FAT the copy is stretched to the root directory's
 * first cluster, found from the boot sector.
 */
#include "fs.h"
#include "error.h"
#include "io.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define PROBE_HEAD ((size_t)1 << 20)
#define PROBE_MAX ((uint64_t)64 << 20)

static void copy_value(blkid_probe probe, const char *name, char *to,
		       size_t size)
{
	const char *value;
	if (blkid_probe_lookup_value(probe, name, &value, NULL) == 0)
		snprintf(to, size, "%s", value);
}

static int probe_fd(int fd, uint64_t offset, uint64_t length,
		    const char *image_name, pp_fs_probe *found, pp_error *err)
{
	blkid_probe probe = blkid_new_probe();
	if (!probe)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = 0;
	if (blkid_probe_set_device(probe, fd, (blkid_loff_t)offset,
				   (blkid_loff_t)length) != 0) {
		status = pp_fail(err, PP_ERR_IO, "%s: blkid cannot probe the "
				 "bytes at %llu", image_name,
				 (unsigned long long)offset);
	} else {
		blkid_probe_enable_superblocks(probe, 1);
		blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_TYPE |
			BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID |
			BLKID_SUBLKS_VERSION);
		/* 0: found; 1: nothing; -2: two signatures disagree, which
		 * is as good as nothing for choosing how to edit it. */
		if (blkid_do_safeprobe(probe) == 0) {
			copy_value(probe, "TYPE", found->type, sizeof found->type);
			copy_value(probe, "VERSION", found->version,
				   sizeof found->version);
			copy_value(probe, "LABEL", found->label,
				   sizeof found->label);
			copy_value(probe, "UUID", found->uuid, sizeof found->uuid);
		}
	}
	blkid_free_probe(probe);
	return status;
}

/* Where FAT's root directory's first cluster ends, from the boot sector
 * (0 when the sector does not look like FAT's). */
static uint64_t fat_root_end(const uint8_t *boot)
{
	uint64_t sector = pp_get_le16(boot + 11), per_cluster = boot[13];
	uint64_t reserved = pp_get_le16(boot + 14), fats = boot[16];
	uint64_t root_entries = pp_get_le16(boot + 17);
	uint64_t fat_size = pp_get_le16(boot + 22);
	if (sector < 512 || sector > 4096 || per_cluster == 0)
		return 0;
	if (fat_size == 0)  /* FAT32: the size and the root's cluster */
		fat_size = pp_get_le32(boot + 36);
	uint64_t data = (reserved + fats * fat_size) * sector +
		root_entries * 32;
	uint64_t root_cluster = root_entries ? 2 : pp_get_le32(boot + 44);
	if (root_cluster < 2)
		return 0;
	return data + root_cluster * per_cluster * sector;
}

int pp_probe_range(pp_read_fn read_at, void *opaque, int fd, uint64_t offset,
		   uint64_t length, const char *image_name, pp_fs_probe *found,
		   pp_error *err)
{
	memset(found, 0, sizeof *found);
	if (fd >= 0) {
		/* blkid reads with lseek and read: the caller's file offset
		 * (partpack reads its input from there) is put back. */
		off_t position = lseek(fd, 0, SEEK_CUR);
		int status = probe_fd(fd, offset, length, image_name, found,
				      err);
		if (position >= 0 && lseek(fd, position, SEEK_SET) < 0 &&
		    status == 0)
			status = pp_fail_errno(err, PP_ERR_IO, "%s", image_name);
		return status;
	}
	int mem = memfd_create("partpack-probe", MFD_CLOEXEC);
	size_t head = (size_t)PP_MIN(length, PROBE_HEAD);
	uint8_t *buf = malloc(head);
	int status = mem < 0 ? pp_fail_errno(err, PP_ERR_IO, "memfd_create") :
		!buf ? pp_fail(err, PP_ERR_NOMEM, "out of memory") : 0;
	if (status == 0 && ftruncate(mem, (off_t)length))
		status = pp_fail_errno(err, PP_ERR_IO, "memfd");
	if (status == 0 && read_at(opaque, buf, head, offset))
		status = pp_fail(err, PP_ERR_IO, "%s: cannot read the partition "
				 "at byte %llu", image_name,
				 (unsigned long long)offset);
	if (status == 0 && pp_pwrite_full(mem, buf, head, 0))
		status = pp_fail_errno(err, PP_ERR_IO, "memfd");
	if (status == 0)
		status = probe_fd(mem, 0, length, image_name, found, err);
	uint64_t root_end = status == 0 && !strcmp(found->type, "vfat") ?
		PP_MIN(PP_MIN(fat_root_end(buf), length), PROBE_MAX) : 0;
	uint8_t *more = root_end > head ? malloc(root_end - head) : NULL;
	if (more && read_at(opaque, more, root_end - head, offset + head) == 0 &&
	    pp_pwrite_full(mem, more, root_end - head, head) == 0)
		status = probe_fd(mem, 0, length, image_name,
				  memset(found, 0, sizeof *found), err);
	free(more);
	free(buf);
	if (mem >= 0)
		close(mem);
	return status;
}

bool pp_probe_matches(const pp_fs_probe *found, const char *selector)
{
	if (strncmp(selector, "label:", 6) == 0)
		return found->label[0] && strcmp(found->label, selector + 6) == 0;
	if (strncmp(selector, "uuid:", 5) == 0)
		return found->uuid[0] && strcasecmp(found->uuid, selector + 5) == 0;
	return false;
}
