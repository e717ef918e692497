/*
 * guestfs.c - finding partitions by what they are (a mountpoint, a label,
 * a UUID) with libguestfs.
 *
 * The appliance is a small VM: slow to start (about 20 s without KVM), so
 * one read-only handle serves every selector of a run and is launched only
 * when some selector needs it.  On some hosts qemu aborts under KVM; when
 * the user has not chosen backend settings, a failed launch is retried once
 * with TCG (software emulation), and the caller is told in one line.
 *
 * libguestfs and its ~60 libraries are loaded (dlopen) only when a
 * selector needs the appliance, so a program that links libpartpack to
 * read archives never maps them, and a host without libguestfs still packs
 * and patches.  <guestfs.h> gives the types; the functions are looked up
 * once, in the one table below.
 */
#include "internal.h"

#include <dlfcn.h>
#include <guestfs.h>
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
	X(part_to_partnum) X(part_list) X(free_partition_list)

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

/* Loads libguestfs on first use; PP_ERR_LOCATE naming the package if it
 * cannot be. */
static int need_libguestfs(const char *image_path, pp_error *err)
{
	pthread_once(&load_once, load_libguestfs);
	if (load_error[0])
		return pp_fail(err, PP_ERR_LOCATE, "%s: finding partitions by "
			       "mountpoint, label or UUID needs libguestfs "
			       "(Debian package libguestfs0), which cannot be "
			       "loaded: %s", image_path, load_error);
	return 0;
}

/* ---- the appliance ----------------------------------------------------- */

struct pp_guestfs {
	guestfs_h *g;
	char launch_errors[256];    /* first lines of the errors of a launch */
	const char *image_name;
	char *root;                 /* inspected root filesystem, or NULL */
	bool inspected;
};

static int guestfs_failure(guestfs_h *g, pp_error *err, const char *image,
			   const char *what)
{
	const char *reason = g ? gfs.last_error(g) : NULL;
	size_t line = reason ? strcspn(reason, "\n") : 0;
	return pp_fail(err, PP_ERR_LOCATE, "%s: %s: %.*s", image, what,
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

/* A handle with the image attached read-only, in its format (qemu's name:
 * raw, qcow2 ...), not yet launched. */
static guestfs_h *new_handle(pp_guestfs *handle, const char *image_path,
			     const char *format, bool force_tcg, pp_error *err)
{
	guestfs_h *g = gfs.create();
	if (!g) {
		pp_fail(err, PP_ERR_LOCATE, "%s: cannot create a libguestfs "
			"handle", image_path);
		return NULL;
	}
	handle->launch_errors[0] = '\0';
	gfs.set_error_handler(g, collect_error, handle);
	char *tcg[] = { "force_tcg", NULL };
	struct guestfs_add_drive_opts_argv drive = {
		.bitmask = GUESTFS_ADD_DRIVE_OPTS_READONLY_BITMASK |
			   GUESTFS_ADD_DRIVE_OPTS_FORMAT_BITMASK,
		.readonly = 1,
		.format = format,
	};
	if ((force_tcg && gfs.set_backend_settings(g, tcg) == -1) ||
	    gfs.add_drive_opts_argv(g, image_path, &drive) == -1) {
		guestfs_failure(g, err, image_path, "cannot attach the image");
		gfs.close(g);
		return NULL;
	}
	return g;
}

int pp_guestfs_open(const char *image_path, const char *format,
		    pp_guestfs **out, pp_error *err)
{
	*out = NULL;
	int status = need_libguestfs(image_path, err);
	if (status)
		return status;
	pp_guestfs *handle = calloc(1, sizeof *handle);
	if (!handle)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	handle->image_name = image_path;
	handle->g = new_handle(handle, image_path, format, false, err);
	if (handle->g && gfs.launch(handle->g) == -1) {
		char first_error[256];
		snprintf(first_error, sizeof first_error, "%s",
			 handle->launch_errors);
		gfs.close(handle->g);
		handle->g = NULL;
		if (getenv("LIBGUESTFS_BACKEND_SETTINGS") ||
		    getenv("LIBGUESTFS_BACKEND")) {
			pp_fail(err, PP_ERR_LOCATE, "%s: libguestfs appliance "
				"failed to start: %s", image_path, first_error);
		} else {
			pp_notice("libguestfs appliance failed to start (%s); "
				  "retrying with TCG", first_error);
			handle->g = new_handle(handle, image_path, format,
					       true, err);
			if (handle->g && gfs.launch(handle->g) == -1) {
				pp_fail(err, PP_ERR_LOCATE, "%s: libguestfs "
					"appliance failed to start under TCG "
					"too: %s", image_path,
					handle->launch_errors);
				gfs.close(handle->g);
				handle->g = NULL;
			}
		}
	}
	if (!handle->g) {
		free(handle);
		return err ? err->status : PP_ERR_LOCATE;
	}
	*out = handle;
	return 0;
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

/* The device mounted at mountpoint by the guest's /etc/fstab. */
static char *find_mountpoint(pp_guestfs *handle, const char *mountpoint,
			     pp_error *err)
{
	const char *image = handle->image_name;
	if (!handle->inspected) {
		handle->inspected = true;
		char **roots = gfs.inspect_os(handle->g);
		if (roots && roots[0])
			handle->root = strdup(roots[0]);
		free_strings(roots);
	}
	if (!handle->root) {
		pp_fail(err, PP_ERR_LOCATE, "%s: %s: no operating system found "
			"in the image (inspection needs a root filesystem with "
			"/etc/fstab and /etc/os-release)", image, mountpoint);
		return NULL;
	}
	char **pairs = gfs.inspect_get_mountpoints(handle->g, handle->root);
	if (!pairs) {
		guestfs_failure(handle->g, err, image, mountpoint);
		return NULL;
	}
	char *device = NULL;
	char known[200] = "";
	size_t used = 0;
	for (size_t i = 0; pairs[i] && pairs[i + 1]; i += 2) {
		if (strcmp(pairs[i], mountpoint) == 0 && !device)
			device = strdup(pairs[i + 1]);
		if (used < sizeof known)
			used += (size_t)snprintf(known + used, sizeof known - used,
						 "%s%s", used ? ", " : "",
						 pairs[i]);
	}
	free_strings(pairs);
	if (!device)
		pp_fail(err, PP_ERR_LOCATE, "%s: %s is not a mountpoint in the "
			"guest's /etc/fstab (mountpoints: %s)", image,
			mountpoint, known);
	return device;
}

static char *find_device(pp_guestfs *handle, const char *selector,
			 pp_error *err)
{
	char *device = NULL;
	if (strncmp(selector, "label:", 6) == 0)
		device = gfs.findfs_label(handle->g, selector + 6);
	else if (strncmp(selector, "uuid:", 5) == 0)
		device = gfs.findfs_uuid(handle->g, selector + 5);
	else if (strncmp(selector, "/dev/", 5) == 0)
		device = strdup(selector);
	else
		return find_mountpoint(handle, selector, err);
	if (!device)
		guestfs_failure(handle->g, err, handle->image_name, selector);
	return device;
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
		return PP_ERR_LOCATE;
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
		status = guestfs_failure(g, err, handle->image_name, selector);
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
