/*
 * fake-libguestfs.c - a stand-in for libguestfs.so.0 that logs each call
 * it receives, for the tests of partpatch's appliance path without an
 * appliance.  Built by the tests only (tests/integration/edit.sh) and found
 * by the dynamic loader through LD_LIBRARY_PATH, the way any library is:
 * nothing in the library or the tools knows it exists.
 *
 * Each call is one line of $FAKE_GUESTFS_LOG: the function's name and its
 * string arguments, separated by tabs, with tab, newline and backslash
 * written \t, \n and \\.  What the "guest" holds comes from the
 * environment:
 *
 *   FAKE_GUESTFS_ROOT    the root filesystem inspect_os finds (none if unset)
 *   FAKE_GUESTFS_FSTAB   its mountpoints, "MP=DEVICE,MP=DEVICE"
 *   FAKE_GUESTFS_LABELS  filesystems and labels, "DEVICE=LABEL,..."
 *   FAKE_GUESTFS_PARTS   /dev/sda's partitions, "START:SIZE,..." from 1
 *   FAKE_GUESTFS_WRITE_AT  if set, upload writes the local file's bytes to
 *                        the disk at this offset, over NBD (libnbd), so
 *                        that the partpack filter saves a real write
 *   FAKE_GUESTFS_GATE    if set, launch waits (up to a minute) until this
 *                        file exists, so a test can act meanwhile
 */
#include <guestfs.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct guestfs_h {
	guestfs_error_handler_cb error_cb;
	void *error_data;
	char last_error[256];
	char server[4096];          /* "unix:PATH" of the NBD drive */
	void *nbd;                  /* the connection, once launched */
};

/* ---- the log ------------------------------------------------------------ */

static void log_escaped(FILE *log, const char *text)
{
	for (; *text; text++) {
		if (*text == '\t')
			fputs("\\t", log);
		else if (*text == '\n')
			fputs("\\n", log);
		else if (*text == '\\')
			fputs("\\\\", log);
		else
			fputc(*text, log);
	}
}

/* name, then up to three string arguments (NULL ends them). */
static void log_call(const char *name, const char *a, const char *b,
		     const char *c)
{
	const char *path = getenv("FAKE_GUESTFS_LOG");
	FILE *log = path ? fopen(path, "a") : NULL;
	if (!log)
		return;
	fputs(name, log);
	const char *args[] = { a, b, c };
	for (int i = 0; i < 3 && args[i]; i++) {
		fputc('\t', log);
		log_escaped(log, args[i]);
	}
	fputc('\n', log);
	fclose(log);
}

static int fail(guestfs_h *g, const char *message)
{
	snprintf(g->last_error, sizeof g->last_error, "%s", message);
	if (g->error_cb)
		g->error_cb(g, g->error_data, message);
	return -1;
}

/* The comma-separated items of an environment variable, as a list that
 * ends in NULL; each item split at its first sep into two entries if sep. */
static char **env_list(const char *name, char sep)
{
	const char *value = getenv(name);
	char *copy = strdup(value ? value : "");
	char **list = calloc(2 * strlen(copy) + 2, sizeof *list);
	size_t n = 0;
	for (char *item = strtok(copy, ","); item; item = strtok(NULL, ",")) {
		char *at = sep ? strchr(item, sep) : NULL;
		if (at)
			*at = '\0';
		list[n++] = strdup(item);
		if (at)
			list[n++] = strdup(at + 1);
	}
	free(copy);
	return list;
}

/* ---- NBD, through libnbd, loaded only when a test asks for writes -------- */

static struct {
	void *(*create)(void);
	int (*connect_unix)(void *, const char *);
	int (*pwrite)(void *, const void *, size_t, uint64_t, uint32_t);
	int (*shutdown)(void *, uint32_t);
	void (*close)(void *);
} nbd;

static int nbd_connect(guestfs_h *g)
{
	void *lib = dlopen("libnbd.so.0", RTLD_NOW);
	if (!lib || strncmp(g->server, "unix:", 5) != 0)
		return fail(g, "fake: no libnbd or no unix: server");
	nbd.create = (void *(*)(void))dlsym(lib, "nbd_create");
	nbd.connect_unix = (int (*)(void *, const char *))
		dlsym(lib, "nbd_connect_unix");
	nbd.pwrite = (int (*)(void *, const void *, size_t, uint64_t,
			      uint32_t))dlsym(lib, "nbd_pwrite");
	nbd.shutdown = (int (*)(void *, uint32_t))dlsym(lib, "nbd_shutdown");
	nbd.close = (void (*)(void *))dlsym(lib, "nbd_close");
	g->nbd = nbd.create();
	if (!g->nbd || nbd.connect_unix(g->nbd, g->server + 5) == -1)
		return fail(g, "fake: cannot connect to the NBD server");
	return 0;
}

static void nbd_disconnect(guestfs_h *g)
{
	if (!g->nbd)
		return;
	nbd.shutdown(g->nbd, 0);
	nbd.close(g->nbd);
	g->nbd = NULL;
}

/* ---- the handle --------------------------------------------------------- */

guestfs_h *guestfs_create(void)
{
	log_call("create", NULL, NULL, NULL);
	return calloc(1, sizeof(guestfs_h));
}

void guestfs_close(guestfs_h *g)
{
	log_call("close", NULL, NULL, NULL);
	if (g)
		nbd_disconnect(g);
	free(g);
}

const char *guestfs_last_error(guestfs_h *g)
{
	return g->last_error[0] ? g->last_error : NULL;
}

void guestfs_set_error_handler(guestfs_h *g, guestfs_error_handler_cb cb,
			       void *opaque)
{
	g->error_cb = cb;
	g->error_data = opaque;
}

int guestfs_set_backend_settings(guestfs_h *g, char *const *settings)
{
	(void)g;
	log_call("set_backend_settings", settings[0], NULL, NULL);
	return 0;
}

int guestfs_add_drive_opts_argv(guestfs_h *g, const char *filename,
				const struct guestfs_add_drive_opts_argv *o)
{
	const char *server = (o->bitmask & GUESTFS_ADD_DRIVE_OPTS_SERVER_BITMASK)
		&& o->server ? o->server[0] : "";
	snprintf(g->server, sizeof g->server, "%s", server);
	log_call("add_drive", filename,
		 o->bitmask & GUESTFS_ADD_DRIVE_OPTS_PROTOCOL_BITMASK ?
		 o->protocol : "file", server);
	return 0;
}

int guestfs_launch(guestfs_h *g)
{
	log_call("launch", NULL, NULL, NULL);
	const char *gate = getenv("FAKE_GUESTFS_GATE");
	for (int i = 0; gate && i < 6000 && access(gate, F_OK) != 0; i++)
		usleep(10000);
	return getenv("FAKE_GUESTFS_WRITE_AT") && g->server[0] ?
		nbd_connect(g) : 0;
}

int guestfs_shutdown(guestfs_h *g)
{
	log_call("shutdown", NULL, NULL, NULL);
	nbd_disconnect(g);
	return 0;
}

/* ---- inspection and partitions ----------------------------------------- */

char **guestfs_inspect_os(guestfs_h *g)
{
	(void)g;
	log_call("inspect_os", NULL, NULL, NULL);
	const char *root = getenv("FAKE_GUESTFS_ROOT");
	char **roots = calloc(2, sizeof *roots);
	if (root && *root)
		roots[0] = strdup(root);
	return roots;
}

char **guestfs_inspect_get_mountpoints(guestfs_h *g, const char *root)
{
	(void)g;
	log_call("inspect_get_mountpoints", root, NULL, NULL);
	return env_list("FAKE_GUESTFS_FSTAB", '=');
}

char **guestfs_list_filesystems(guestfs_h *g)
{
	(void)g;
	char **list = env_list("FAKE_GUESTFS_LABELS", '=');
	for (size_t i = 1; list[i - 1]; i += 2) {
		free(list[i]);
		list[i] = strdup("ext4");
	}
	return list;
}

/* The label (odd) or device (even entries) paired with key. */
static char *labels_lookup(const char *key, int want_label)
{
	char **list = env_list("FAKE_GUESTFS_LABELS", '=');
	char *found = NULL;
	for (size_t i = 0; list[i] && list[i + 1]; i += 2) {
		if (!found && strcmp(list[i + !want_label], key) == 0)
			found = strdup(list[i + want_label]);
	}
	for (size_t i = 0; list[i]; i++)
		free(list[i]);
	free(list);
	return found;
}

char *guestfs_findfs_label(guestfs_h *g, const char *label)
{
	log_call("findfs_label", label, NULL, NULL);
	char *device = labels_lookup(label, 0);
	if (!device)
		fail(g, "findfs_label: unable to resolve");
	return device;
}

char *guestfs_findfs_uuid(guestfs_h *g, const char *uuid)
{
	log_call("findfs_uuid", uuid, NULL, NULL);
	fail(g, "findfs_uuid: unable to resolve");
	return NULL;
}

char *guestfs_vfs_label(guestfs_h *g, const char *device)
{
	(void)g;
	char *label = labels_lookup(device, 1);
	return label ? label : strdup("");
}

char *guestfs_vfs_uuid(guestfs_h *g, const char *device)
{
	(void)g;
	(void)device;
	return strdup("");
}

char *guestfs_vfs_type(guestfs_h *g, const char *device)
{
	(void)g;
	(void)device;
	return strdup("ext4");
}

int guestfs_is_lv(guestfs_h *g, const char *device)
{
	(void)g;
	(void)device;
	return 0;
}

char *guestfs_part_to_dev(guestfs_h *g, const char *device)
{
	if (strncmp(device, "/dev/sda", 8) != 0 || !device[8]) {
		fail(g, "part_to_dev: not a partition");
		return NULL;
	}
	return strdup("/dev/sda");
}

int guestfs_part_to_partnum(guestfs_h *g, const char *device)
{
	(void)g;
	return atoi(device + 8);
}

struct guestfs_partition_list *guestfs_part_list(guestfs_h *g,
						 const char *device)
{
	log_call("part_list", device, NULL, NULL);
	char **list = env_list("FAKE_GUESTFS_PARTS", ':');
	struct guestfs_partition_list *parts = calloc(1, sizeof *parts);
	size_t n = 0;
	while (list[n])
		n++;
	parts->val = calloc(n / 2 + 1, sizeof *parts->val);
	for (size_t i = 0; i + 1 < n; i += 2) {
		struct guestfs_partition *p = &parts->val[parts->len++];
		p->part_num = (int32_t)(i / 2 + 1);
		p->part_start = strtoull(list[i], NULL, 10);
		p->part_size = strtoull(list[i + 1], NULL, 10);
		p->part_end = p->part_start + p->part_size - 1;
	}
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
	(void)g;
	return parts;
}

void guestfs_free_partition_list(struct guestfs_partition_list *parts)
{
	free(parts->val);
	free(parts);
}

/* ---- file operations ---------------------------------------------------- */

int guestfs_mount(guestfs_h *g, const char *device, const char *mountpoint)
{
	(void)g;
	log_call("mount", device, mountpoint, NULL);
	return 0;
}

int guestfs_upload(guestfs_h *g, const char *local, const char *remote)
{
	log_call("upload", local, remote, NULL);
	const char *at = getenv("FAKE_GUESTFS_WRITE_AT");
	if (!at || !g->nbd)
		return 0;
	FILE *file = fopen(local, "rb");
	char buf[65536];
	size_t n = file ? fread(buf, 1, sizeof buf, file) : 0;
	if (file)
		fclose(file);
	if (!file || nbd.pwrite(g->nbd, buf, n, strtoull(at, NULL, 10), 0))
		return fail(g, "write: Operation not permitted");
	return 0;
}

int guestfs_mkdir_p(guestfs_h *g, const char *path)
{
	(void)g;
	log_call("mkdir_p", path, NULL, NULL);
	return 0;
}

int guestfs_rm_rf(guestfs_h *g, const char *path)
{
	(void)g;
	log_call("rm_rf", path, NULL, NULL);
	return 0;
}

int guestfs_copy_in(guestfs_h *g, const char *local, const char *remote)
{
	(void)g;
	log_call("copy_in", local, remote, NULL);
	return 0;
}

int guestfs_umount_all(guestfs_h *g)
{
	(void)g;
	log_call("umount_all", NULL, NULL, NULL);
	return 0;
}
