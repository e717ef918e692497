/*
 * nbdsource.c - reading a guest disk from qemu-nbd with libnbd.
 *
 * The first connection starts the server: libnbd makes a listening socket
 * in a private directory, forks qemu-nbd with it as LISTEN_FDS (systemd
 * socket activation) and connects.  qemu-nbd runs as
 *
 *     qemu-nbd --read-only --shared=N --format=FMT -- FILE
 *
 * --shared=N lets N clients in at once, and a read-only export then offers
 * multi-conn (NBD_FLAG_CAN_MULTI_CONN: every connection sees the same
 * bytes), so the other connections go to the same socket (libnbd names it
 * in nbd_get_uri).  The server ends when the last one closes.
 *
 * The export negotiates the "base:allocation" meta context: block status
 * then says, per extent, NBD_STATE_HOLE (not allocated) and NBD_STATE_ZERO
 * (reads as zeros).  Only ZERO matters here: an unallocated qcow2 cluster
 * over a backing file is not zero, and qemu already says so.
 *
 * Requests are cut to the server's maximum block size (qemu-nbd: 32 MiB);
 * a reply to block status may cover less than asked, so the walk advances
 * by what each reply described.
 */
#include "nbdsource.h"
#include "qemu.h"
#include "array.h"
#include "error.h"

#include <libnbd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most connections asked of one server. */
#define CONNECTIONS_MAX 16
/* What one block status request asks about (the protocol's length is 32
 * bits). */
#define STATUS_SPAN ((uint64_t)1 << 30)

struct pp_nbd {
	char *name;                 /* the image, for messages */
	struct nbd_handle *handles[CONNECTIONS_MAX];
	bool busy[CONNECTIONS_MAX];
	unsigned count;
	pthread_mutex_t lock;
	pthread_cond_t freed;       /* a connection became free */
	uint64_t size;
	uint64_t max_request;
	bool allocation;            /* base:allocation was negotiated */
};

/* The first connection, starting the server. */
static int connect_server(pp_nbd *nbd, const char *path, const char *format,
			  unsigned connections, pp_error *err)
{
	char *file = pp_qemu_file_name(path);
	char shared[32], format_option[16 + PP_QEMU_FORMAT_MAX];
	snprintf(shared, sizeof shared, "--shared=%u", connections);
	snprintf(format_option, sizeof format_option, "--format=%s", format);
	char *argv[] = { "qemu-nbd", "--read-only", shared, format_option,
			 "--", file, NULL };
	struct nbd_handle *h = file ? nbd_create() : NULL;
	if (!h) {
		free(file);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	nbd->handles[nbd->count++] = h;
	int connected = nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION)
		!= -1 && nbd_connect_systemd_socket_activation(h, argv) != -1;
	free(file);
	if (connected)
		return 0;
	/* qemu-nbd said why on its stderr; qemu-io says it again to us. */
	char reason[PP_ERROR_MAX / 2];
	snprintf(reason, sizeof reason, "%s", nbd_get_error());
	int status = pp_qemu_open_error(path, format, err);
	return status ? status : pp_fail(err, PP_ERR_IO, "%s: qemu-nbd: %s",
					 path, reason);
}

/* More connections to the same server, as far as it takes them. */
static void connect_more(pp_nbd *nbd, unsigned connections)
{
	if (nbd_can_multi_conn(nbd->handles[0]) != 1)
		return;
	char *uri = nbd_get_uri(nbd->handles[0]);
	while (uri && nbd->count < connections) {
		struct nbd_handle *h = nbd_create();
		if (!h || nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION)
		    == -1 || nbd_connect_uri(h, uri) == -1) {
			nbd_close(h);
			break;          /* fewer connections: only slower */
		}
		nbd->handles[nbd->count++] = h;
	}
	free(uri);
}

int pp_nbd_open(const char *path, const char *format, unsigned connections,
		pp_nbd **out, pp_error *err)
{
	*out = NULL;
	connections = PP_MAX(1, PP_MIN(connections, CONNECTIONS_MAX));
	pp_nbd *nbd = calloc(1, sizeof *nbd);
	if (!nbd || !(nbd->name = strdup(path))) {
		free(nbd);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&nbd->lock, NULL);
	pthread_cond_init(&nbd->freed, NULL);
	int status = connect_server(nbd, path, format, connections, err);
	int64_t size = status ? -1 : nbd_get_size(nbd->handles[0]);
	if (status == 0 && size < 0)
		status = pp_fail(err, PP_ERR_IO, "%s: qemu-nbd: %s", path,
				 nbd_get_error());
	if (status) {
		pp_nbd_close(nbd);
		return status;
	}
	nbd->size = (uint64_t)size;
	int64_t max = nbd_get_block_size(nbd->handles[0], LIBNBD_SIZE_MAXIMUM);
	nbd->max_request = max > 0 ? PP_MIN((uint64_t)max, 32u << 20) : 32u << 20;
	nbd->allocation = nbd_can_meta_context(nbd->handles[0],
				LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
	connect_more(nbd, connections);
	*out = nbd;
	return 0;
}

void pp_nbd_close(pp_nbd *nbd)
{
	if (!nbd)
		return;
	/* The first connection owns the server: it goes last. */
	for (unsigned i = nbd->count; i-- > 0;)
		nbd_close(nbd->handles[i]);
	pthread_cond_destroy(&nbd->freed);
	pthread_mutex_destroy(&nbd->lock);
	free(nbd->name);
	free(nbd);
}

uint64_t pp_nbd_size(const pp_nbd *nbd)
{
	return nbd->size;
}

/* A free connection, waiting for one if all are in use. */
static unsigned take_connection(pp_nbd *nbd)
{
	pthread_mutex_lock(&nbd->lock);
	for (;;) {
		for (unsigned i = 0; i < nbd->count; i++) {
			if (!nbd->busy[i]) {
				nbd->busy[i] = true;
				pthread_mutex_unlock(&nbd->lock);
				return i;
			}
		}
		pthread_cond_wait(&nbd->freed, &nbd->lock);
	}
}

static void give_back(pp_nbd *nbd, unsigned i)
{
	pthread_mutex_lock(&nbd->lock);
	nbd->busy[i] = false;
	pthread_cond_signal(&nbd->freed);
	pthread_mutex_unlock(&nbd->lock);
}

int pp_nbd_pread(pp_nbd *nbd, void *buf, size_t len, uint64_t offset,
		 pp_error *err)
{
	if (offset > nbd->size || len > nbd->size - offset)
		return pp_fail(err, PP_ERR_IO, "%s: read past the end of the "
			       "image at byte %llu", nbd->name,
			       (unsigned long long)offset);
	unsigned i = take_connection(nbd);
	int status = 0;
	for (size_t done = 0; status == 0 && done < len;) {
		size_t n = (size_t)PP_MIN(len - done, nbd->max_request);
		if (nbd_pread(nbd->handles[i], (uint8_t *)buf + done, n,
			      offset + done, 0) == -1)
			status = pp_fail(err, PP_ERR_IO, "%s: cannot read byte "
					 "%llu: %s", nbd->name,
					 (unsigned long long)(offset + done),
					 nbd_get_error());
		done += n;
	}
	give_back(nbd, i);
	return status;
}

/* Collects the data extents of block status replies. */
typedef struct status_walk {
	pp_range *extents;
	size_t count;
	size_t capacity;
	uint64_t pos;               /* the end of what replies described */
	bool failed;
} status_walk;

static int add_data(status_walk *walk, uint64_t offset, uint64_t length)
{
	if (walk->count && walk->extents[walk->count - 1].offset +
	    walk->extents[walk->count - 1].length == offset) {
		walk->extents[walk->count - 1].length += length;
		return 0;
	}
	pp_range *grown = pp_grow(walk->extents, walk->count, &walk->capacity,
				  sizeof *grown, 64);
	if (!grown)
		return -1;
	walk->extents = grown;
	walk->extents[walk->count++] = (pp_range){ offset, length };
	return 0;
}

/* libnbd's extent callback: entries are (length, flags) pairs. */
static int on_extents(void *opaque, const char *context, uint64_t offset,
		      uint32_t *entries, size_t count, int *error)
{
	status_walk *walk = opaque;
	(void)error;
	if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
		return 0;
	for (size_t i = 0; i + 1 < count; i += 2) {
		uint64_t length = entries[i];
		if (!(entries[i + 1] & LIBNBD_STATE_ZERO) &&
		    add_data(walk, offset, length))
			walk->failed = true;
		offset += length;
	}
	walk->pos = offset;
	return 0;
}

int pp_nbd_data_extents(pp_nbd *nbd, pp_range **extents, size_t *count,
			pp_error *err)
{
	status_walk walk = { 0 };
	int status = 0;
	unsigned i = take_connection(nbd);
	while (status == 0 && nbd->allocation && walk.pos < nbd->size) {
		uint64_t from = walk.pos;
		nbd_extent_callback callback = { .callback = on_extents,
						 .user_data = &walk };
		if (nbd_block_status(nbd->handles[i],
				     PP_MIN(nbd->size - from, STATUS_SPAN),
				     from, callback, 0) == -1)
			status = pp_fail(err, PP_ERR_IO, "%s: block status at "
					 "byte %llu: %s", nbd->name,
					 (unsigned long long)from,
					 nbd_get_error());
		else if (walk.failed)
			status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
		else if (walk.pos <= from)
			status = pp_fail(err, PP_ERR_IO, "%s: block status at "
					 "byte %llu described nothing",
					 nbd->name, (unsigned long long)from);
	}
	give_back(nbd, i);
	/* Without block status, all of it may be data. */
	if (status == 0 && !nbd->allocation && nbd->size &&
	    add_data(&walk, 0, nbd->size))
		status = pp_fail(err, PP_ERR_NOMEM, "out of memory");
	/* A reply may run past the end; the image ends where it ends. */
	while (status == 0 && walk.count &&
	       walk.extents[walk.count - 1].offset >= nbd->size)
		walk.count--;
	if (status == 0 && walk.count) {
		pp_range *last = &walk.extents[walk.count - 1];
		last->length = PP_MIN(last->length, nbd->size - last->offset);
	}
	if (status) {
		free(walk.extents);
		walk = (status_walk){ 0 };
	}
	*extents = walk.extents;
	*count = walk.count;
	return status;
}
