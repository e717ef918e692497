/*
 * guestfs.c - the libguestfs appliance: finding partitions by what they are
 * (a mountpoint, a label, a UUID), and editing files on a partition.
 *
 * The appliance is a small VM: slow to start (about 20 s without KVM), so
 * one handle serves every selector of a run and is launched only when some
 * selector needs it; partpatch's file edits use the same handle, on the
 * archive served read-write over NBD.  On some hosts qemu aborts under KVM;
 * when the user has not chosen backend settings, a failed launch is
 * retried once with TCG (software emulation), and the caller is told in
 * one line.
 *
 * Everything goes through the C API: each string, the user's or the
 * image's (a root filesystem named "btrfsvol:/dev/sda2/x |cmd"), is one
 * argument of one call, never text for guestfish to parse.
 *
 * libguestfs and its ~60 libraries are loaded (dlopen) only when a
 * selector needs the appliance, so a program that links libpartpack to
 * read archives never maps them, and a host without libguestfs still packs
 * and patches.  <guestfs.h> gives the types; the functions are looked up
 * once, in the one table below.
 */
#include "appliance.h"
#include "error.h"

#include <dlfcn.h>
#include <guestfs.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- loading libguestfs ------------------------------------------------ */

#define LIBGUESTFS_SONAME "libguestfs.so.0"

/* Every libguestfs function this file calls, as gfs.NAME for guestfs_NAME. */
#define LIBGUESTFS_FUNCTIONS(X)                                               \
	X(create) X(close) X(last_error) X(set_error_handler)                 \
	X(set_backend_settings) X(add_drive_opts_argv) X(launch)              \
	X(inspect_os) X(inspect_get_mountpoints) X(findfs_label)              \
	X(findfs_uuid) X(vfs_type) X(is_lv) X(part_to_dev)                    \
	X(part_to_partnum) X(part_list) X(free_partition_list)                \
	X(list_filesystems) X(vfs_label) X(vfs_uuid) X(mount) X(upload)       \
	X(mkdir_p) X(rm_rf) X(copy_in) X(umount_all) X(shutdown)

#define FUNCTION_POINTER(name) __typeof__(guestfs_##name) *name;
static struct {
	LIBGUESTFS_FUNCTIONS(FUNCTION_POINTER)
} gfs;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256];        /* why loading failed; "" if it did not */

/* Runs once per process.  The library stays loaded: libguestfs registers
 * exit handlers of its own, so it is never unloaded. */
static void load_libguestfs(void)
{
	void *library = dlopen(LIBGUESTFS_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!library) {
		snprintf(load_error, sizeof load_error, "%s", dlerror());
		return;
	}
	const char *missing = NULL;
#define LOOK_UP(name)                                                         \
	if (!(gfs.name = (__typeof__(gfs.name))dlsym(library, "guestfs_" #name)) \
	    && !missing)                                                      \
		missing = "guestfs_" #name;
	LIBGUESTFS_FUNCTIONS(LOOK_UP)
#undef LOOK_UP
	if (missing)
		snprintf(load_error, sizeof load_error, "%s has no %s",
			 LIBGUESTFS_SONAME, missing);
}

/* Loads libguestfs on first use; PP_ERR_LOCATE naming the package and
 * what needed it if it cannot be. */
static int need_libguestfs(const char *image_path, const char *purpose,
			   pp_error *err)
{
	pthread_once(&load_once, load_libguestfs);
	if (load_error[0])
		return pp_fail(err, PP_ERR_LOCATE, "%s: %s needs libguestfs "
			       "(Debian package libguestfs0), which cannot be "
			       "loaded: %s", image_path, purpose, load_error);
	return 0;
}

/* ---- the appliance ----------------------------------------------------- */

/* The one disk of the appliance: a file read-only, in its format (qemu's
 * name: raw, qcow2 ...), or an NBD server's unix socket serving a raw
 * image read-write. */
typedef struct drive {
	const char *path;
	const char *format;
	const char *nbd_socket;
} drive;

struct pp_guestfs {
	guestfs_h *g;
	char launch_errors[256];    /* first lines of the errors of a launch */
	const char *image_name;
	char *root;                 /* inspected root filesystem, or NULL */
	bool inspected;
	bool tcg;                   /* launched after the retry under TCG */
};

/* status with "IMAGE: WHAT: the first line of libguestfs's last error". */
static int guestfs_failure(pp_guestfs *handle, int status, const char *what,
			   pp_error *err)
{
	const char *reason = handle->g ? gfs.last_error(handle->g) : NULL;
	size_t line = reason ? strcspn(reason, "\n") : 0;
	return pp_fail(err, status, "%s: %s: %.*s", handle->image_name, what,
		       (int)line, reason ? reason : "");
}

/*
 * libguestfs reports a failed launch as several errors, each with a
 * paragraph of advice; the first line of each ("qemu ... killed by signal
 * 6") is what says why.  Keep those lines for a one-line message instead of
 * letting libguestfs print to stderr.
 */
static void collect_error(guestfs_h *g, void *opaque, const char *message)
{
	pp_guestfs *handle = opaque;
	(void)g;
	size_t used = strlen(handle->launch_errors);
	size_t line = strcspn(message, "\n");
	if (strncmp(message, "guestfs_launch failed", 21) == 0 ||
	    used + 2 >= sizeof handle->launch_errors)
		return;
	snprintf(handle->launch_errors + used,
		 sizeof handle->launch_errors - used, "%s%.*s",
		 used ? "; " : "", (int)line, message);
}

/* A handle with the drive attached, not yet launched, in handle->g. */
static int new_handle(pp_guestfs *handle, const drive *disk, bool force_tcg,
		      pp_error *err)
{
	handle->g = gfs.create();
	if (!handle->g)
		return pp_fail(err, PP_ERR_LOCATE, "%s: cannot create a "
			       "libguestfs handle", handle->image_name);
	handle->launch_errors[0] = '\0';
	gfs.set_error_handler(handle->g, collect_error, handle);
	char *tcg[] = { "force_tcg", NULL };
	char server[PATH_MAX + 8];
	char *servers[] = { server, NULL };
	struct guestfs_add_drive_opts_argv options = {
		.bitmask = GUESTFS_ADD_DRIVE_OPTS_FORMAT_BITMASK,
		.format = disk->nbd_socket ? "raw" : disk->format,
	};
	if (disk->nbd_socket) {
		/* qemu connects to the server; the export name is "". */
		snprintf(server, sizeof server, "unix:%s", disk->nbd_socket);
		options.bitmask |= GUESTFS_ADD_DRIVE_OPTS_PROTOCOL_BITMASK |
				   GUESTFS_ADD_DRIVE_OPTS_SERVER_BITMASK;
		options.protocol = "nbd";
		options.server = servers;
	} else {
		options.bitmask |= GUESTFS_ADD_DRIVE_OPTS_READONLY_BITMASK;
		options.readonly = 1;
	}
	if ((force_tcg && gfs.set_backend_settings(handle->g, tcg) == -1) ||
	    gfs.add_drive_opts_argv(handle->g, disk->nbd_socket ? "" :
				    disk->path, &options) == -1) {
		int status = guestfs_failure(handle, PP_ERR_LOCATE,
					     "cannot attach the image", err);
		gfs.close(handle->g);
		handle->g = NULL;
		return status;
	}
	return 0;
}

/* One launch; on failure the handle is closed and first_error says why. */
static int launch(pp_guestfs *handle, const drive *disk, bool force_tcg,
		  char *first_error, size_t size, pp_error *err)
{
	int status = new_handle(handle, disk, force_tcg, err);
	if (status)
		return status;
	if (gfs.launch(handle->g) == 0)
		return 0;
	snprintf(first_error, size, "%s", handle->launch_errors[0] ?
		 handle->launch_errors : "libguestfs gave no reason");
	gfs.close(handle->g);
	handle->g = NULL;
	return PP_ERR_LOCATE;
}

static int open_drive(const drive *disk, const char *image_name,
		      const char *purpose, pp_guestfs **out, pp_error *err)
{
	*out = NULL;
	int status = need_libguestfs(image_name, purpose, err);
	if (status)
		return status;
	pp_guestfs *handle = calloc(1, sizeof *handle);
	if (!handle)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	handle->image_name = image_name;
	char why[256] = "";
	status = launch(handle, disk, false, why, sizeof why, err);
	if (status && why[0] && (getenv("LIBGUESTFS_BACKEND_SETTINGS") ||
				 getenv("LIBGUESTFS_BACKEND"))) {
		status = pp_fail(err, PP_ERR_LOCATE, "%s: libguestfs appliance "
				 "failed to start: %s", image_name, why);
	} else if (status && why[0]) {
		pp_notice("libguestfs appliance failed to start (%s); "
			  "retrying with TCG", why);
		status = launch(handle, disk, true, why, sizeof why, err);
		handle->tcg = status == 0;
		if (status && why[0])
			status = pp_fail(err, PP_ERR_LOCATE, "%s: libguestfs "
					 "appliance failed to start under TCG "
					 "too: %s", image_name, why);
	}
	if (status) {
		free(handle);
		return status;
	}
	*out = handle;
	return 0;
}

int pp_guestfs_open(const char *image_path, const char *format,
		    pp_guestfs **out, pp_error *err)
{
	drive disk = { .path = image_path, .format = format };
	return open_drive(&disk, image_path, "finding partitions by "
			  "mountpoint, label or UUID", out, err);
}

int pp_guestfs_open_nbd(const char *socket_path, const char *image_name,
			pp_guestfs **out, pp_error *err)
{
	if (strlen(socket_path) >= PATH_MAX)
		return pp_fail(err, PP_ERR_USAGE, "%s: socket path too long",
			       socket_path);
	drive disk = { .nbd_socket = socket_path };
	return open_drive(&disk, image_name, "editing files or finding "
			  "partitions by mountpoint, label or UUID", out, err);
}

bool pp_guestfs_retried_tcg(const pp_guestfs *handle)
{
	return handle->tcg;
}

void pp_guestfs_close(pp_guestfs *handle)
{
	if (!handle)
		return;
	gfs.close(handle->g);
	free(handle->root);
	free(handle);
}

static void free_strings(char **strings)
{
	for (size_t i = 0; strings && strings[i]; i++)
		free(strings[i]);
	free(strings);
}

/* ---- what inspection found, for messages ------------------------------ */

/* Appends ", item" (or "item" first) to the list, with the bytes a terminal
 * could take as control escaped: item comes from the image. */
static void list_append(char *list, size_t size, const char *item)
{
	size_t used = strlen(list);
	if (used + 4 >= size)
		return;
	if (used)
		used += (size_t)snprintf(list + used, size - used, ", ");
	for (const unsigned char *p = (const unsigned char *)item;
	     *p && used + 5 < size; p++) {
		if (*p < 0x20 || *p == 0x7f)
			used += (size_t)snprintf(list + used, size - used,
						 "\\x%02x", *p);
		else
			list[used++] = (char)*p;
	}
	list[used] = '\0';
	if (used + 5 >= size)
		snprintf(list + size - 5, 5, "...");
}

/* The appliance's filesystems, each with what describe() says of it
 * ("/dev/sda1 ext4" or the label), or "none". */
static void list_filesystems(pp_guestfs *handle, char *(*describe)(guestfs_h *,
			     const char *, const char *), char *list,
			     size_t size)
{
	list[0] = '\0';
	char **pairs = gfs.list_filesystems(handle->g);
	for (size_t i = 0; pairs && pairs[i] && pairs[i + 1]; i += 2) {
		char *text = describe(handle->g, pairs[i], pairs[i + 1]);
		if (text && *text)
			list_append(list, size, text);
		free(text);
	}
	free_strings(pairs);
	if (!list[0])
		snprintf(list, size, "none");
}

static char *device_and_type(guestfs_h *g, const char *device,
			     const char *type)
{
	(void)g;
	char *text = NULL;
	return asprintf(&text, "%s %s", device, type) < 0 ? NULL : text;
}

static char *label_of(guestfs_h *g, const char *device, const char *type)
{
	(void)type;
	return gfs.vfs_label(g, device);
}

static char *uuid_of(guestfs_h *g, const char *device, const char *type)
{
	(void)type;
	return gfs.vfs_uuid(g, device);
}

/* ---- which partition --------------------------------------------------- */

static int no_operating_system(pp_guestfs *handle, const char *mountpoint,
			       pp_error *err)
{
	char seen[200];
	list_filesystems(handle, device_and_type, seen, sizeof seen);
	return pp_fail(err, PP_ERR_LOCATE, "%s: %s: no operating system found "
		       "in the image (inspection needs a root filesystem with "
		       "/etc/fstab and /etc/os-release; filesystems: %s)",
		       handle->image_name, mountpoint, seen);
}

/* The device mounted at mountpoint by the guest's /etc/fstab. */
static char *find_mountpoint(pp_guestfs *handle, const char *mountpoint,
			     pp_error *err)
{
	if (!handle->inspected) {
		handle->inspected = true;
		char **roots = gfs.inspect_os(handle->g);
		if (roots && roots[0])
			handle->root = strdup(roots[0]);
		free_strings(roots);
	}
	if (!handle->root) {
		no_operating_system(handle, mountpoint, err);
		return NULL;
	}
	/* The root's name is the image's ("btrfsvol:/dev/sda2/NAME"): it goes
	 * back to libguestfs as data, one argument of one call. */
	char **pairs = gfs.inspect_get_mountpoints(handle->g, handle->root);
	if (!pairs) {
		guestfs_failure(handle, PP_ERR_LOCATE, mountpoint, err);
		return NULL;
	}
	char *device = NULL;
	char known[200] = "";
	for (size_t i = 0; pairs[i] && pairs[i + 1]; i += 2) {
		if (strcmp(pairs[i], mountpoint) == 0 && !device)
			device = strdup(pairs[i + 1]);
		list_append(known, sizeof known, pairs[i]);
	}
	free_strings(pairs);
	if (!device)
		pp_fail(err, PP_ERR_LOCATE, "%s: %s is not a mountpoint in the "
			"guest's /etc/fstab (%s%s)", handle->image_name,
			mountpoint, known[0] ? "mountpoints: " : "it has no "
			"entries", known);
	return device;
}

/* The device with the label or UUID, or a message listing those seen. */
static char *find_by_id(pp_guestfs *handle, const char *selector,
			pp_error *err)
{
	bool label = strncmp(selector, "label:", 6) == 0;
	const char *id = strchr(selector, ':') + 1;
	char *device = label ? gfs.findfs_label(handle->g, id) :
		gfs.findfs_uuid(handle->g, id);
	if (device)
		return device;
	char seen[200];
	list_filesystems(handle, label ? label_of : uuid_of, seen, sizeof seen);
	pp_fail(err, PP_ERR_LOCATE, "%s: %s: no filesystem in the image has "
		"this %s (%s: %s)", handle->image_name, selector,
		label ? "label" : "UUID", label ? "labels" : "UUIDs", seen);
	return NULL;
}

static char *find_device(pp_guestfs *handle, const char *selector,
			 pp_error *err)
{
	if (strncmp(selector, "label:", 6) == 0 ||
	    strncmp(selector, "uuid:", 5) == 0)
		return find_by_id(handle, selector, err);
	if (strncmp(selector, "/dev/", 5) == 0) {
		char *device = strdup(selector);
		if (!device)
			pp_fail(err, PP_ERR_NOMEM, "out of memory");
		return device;
	}
	return find_mountpoint(handle, selector, err);
}

/* Says why a device that holds the selector is not a plain partition. */
static int not_a_partition(pp_guestfs *handle, const char *selector,
			   const char *device, pp_error *err)
{
	char *type = gfs.vfs_type(handle->g, device);
	const char *what =
		gfs.is_lv(handle->g, device) > 0 ? "an LVM logical volume" :
		type && strcmp(type, "crypto_LUKS") == 0 ?
			"an encrypted (LUKS) container" :
		strncmp(device, "/dev/mapper/", 12) == 0 ?
			"a device-mapper device (LVM or encrypted)" :
		"a filesystem on the whole disk";
	pp_fail(err, PP_ERR_LOCATE, "%s: %s is on %s, %s (%s), not a partition: "
		"only a partition's bytes can be kept raw", handle->image_name,
		selector, device, what, type && *type ? type : "no filesystem");
	free(type);
	return PP_ERR_LOCATE;
}

int pp_guestfs_resolve(pp_guestfs *handle, const char *selector,
		       pp_range *range, pp_error *err)
{
	char *device = find_device(handle, selector, err);
	if (!device)
		return err ? err->status : PP_ERR_LOCATE;
	guestfs_h *g = handle->g;
	int status = 0;
	char *disk = gfs.part_to_dev(g, device);
	int number = disk ? gfs.part_to_partnum(g, device) : -1;
	struct guestfs_partition_list *parts =
		number > 0 ? gfs.part_list(g, disk) : NULL;
	if (!disk || number <= 0) {
		status = not_a_partition(handle, selector, device, err);
	} else if (strcmp(disk, "/dev/sda") != 0) {
		status = pp_fail(err, PP_ERR_LOCATE, "%s: %s is on %s, not on "
				 "the image", handle->image_name, selector, disk);
	} else if (!parts) {
		status = guestfs_failure(handle, PP_ERR_LOCATE, selector, err);
	} else {
		status = pp_fail(err, PP_ERR_LOCATE, "%s: %s: partition %d not "
				 "in the partition list", handle->image_name,
				 selector, number);
		for (uint32_t i = 0; i < parts->len; i++) {
			if (parts->val[i].part_num != number)
				continue;
			*range = (pp_range){ .offset = parts->val[i].part_start,
					     .length = parts->val[i].part_size };
			status = 0;
		}
	}
	if (parts)
		gfs.free_partition_list(parts);
	free(disk);
	free(device);
	return status;
}

/* ---- file edits -------------------------------------------------------- */

int pp_guestfs_mount(pp_guestfs *handle, uint64_t partition_offset,
		     unsigned *number, pp_error *err)
{
	struct guestfs_partition_list *parts =
		gfs.part_list(handle->g, "/dev/sda");
	if (!parts)
		return guestfs_failure(handle, PP_ERR_LOCATE,
				       "reading the partition table", err);
	int found = 0;
	for (uint32_t i = 0; i < parts->len && !found; i++) {
		if (parts->val[i].part_start == partition_offset)
			found = parts->val[i].part_num;
	}
	gfs.free_partition_list(parts);
	if (found <= 0)
		return pp_fail(err, PP_ERR_LOCATE, "%s: libguestfs sees no "
			       "partition starting at byte %llu",
			       handle->image_name,
			       (unsigned long long)partition_offset);
	char device[32];
	snprintf(device, sizeof device, "/dev/sda%d", found);
	if (gfs.mount(handle->g, device, "/") == -1)
		return guestfs_failure(handle, PP_ERR_IO, device, err);
	*number = (unsigned)found;
	return 0;
}

/* status for the result of a call doing what (its first argument). */
static int file_op_done(pp_guestfs *handle, int result, const char *what,
			const char *path, pp_error *err)
{
	if (result != -1)
		return 0;
	const char *reason = gfs.last_error(handle->g);
	size_t line = reason ? strcspn(reason, "\n") : 0;
	return pp_fail(err, PP_ERR_IO, "%s: %s %s: %.*s", handle->image_name,
		       what, path, (int)line, reason ? reason : "");
}

int pp_guestfs_upload(pp_guestfs *handle, const char *local,
		      const char *remote, pp_error *err)
{
	return file_op_done(handle, gfs.upload(handle->g, local, remote),
			    "upload to", remote, err);
}

int pp_guestfs_mkdir(pp_guestfs *handle, const char *dir, pp_error *err)
{
	return file_op_done(handle, gfs.mkdir_p(handle->g, dir), "mkdir", dir,
			    err);
}

int pp_guestfs_remove(pp_guestfs *handle, const char *path, pp_error *err)
{
	return file_op_done(handle, gfs.rm_rf(handle->g, path), "delete", path,
			    err);
}

int pp_guestfs_copy_in(pp_guestfs *handle, const char *local,
		       const char *remote_dir, pp_error *err)
{
	return file_op_done(handle, gfs.copy_in(handle->g, local, remote_dir),
			    "copy into", remote_dir, err);
}

int pp_guestfs_finish(pp_guestfs *handle, pp_error *err)
{
	/* Unmounting writes the filesystem's dirty state back; shutdown
	 * syncs the disk and waits for qemu to exit, which ends its NBD
	 * connection. */
	if (gfs.umount_all(handle->g) == -1)
		return guestfs_failure(handle, PP_ERR_IO, "unmounting", err);
	if (gfs.shutdown(handle->g) == -1)
		return guestfs_failure(handle, PP_ERR_IO, "shutting the "
				       "appliance down", err);
	return 0;
}
