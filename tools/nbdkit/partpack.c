/*
 * nbdkit-partpack-filter - serves the uncompressed image of a partpack
 * archive (.xz, .gz, .zst) from any plugin, and takes writes into its kept
 * ranges in place.
 *
 *   nbdkit file image.xz --filter=partpack
 *   nbdkit curl https://host/image.xz --filter=partpack      (read-only)
 *
 * The archive is opened on the lower layer's pread/pwrite/flush through the
 * library's I/O callbacks (pp_open_io), so reads go through its block cache
 * (stored bytes straight from the archive, compressed blocks decoded once)
 * and block status comes from its map, computed from the index alone.
 *
 * Writes.  A write is accepted only if every byte lands in stored data: the
 * filter asks pp_stored_run before taking it, and refuses anything else with
 * EPERM, changing nothing.  Accepted writes are held (pending.c: an interval
 * map, rewrites in place, reads laid over) and applied at flush as one
 * patch transaction of the library: one undo record, one set of syncs, each
 * touched block's check fixed once.  So a crash leaves the archive as it
 * was at the last flush, or as the flush made it, never in between (the
 * next open for writing, or `partpatch --recover`, finishes an interrupted
 * flush from the record).  Before the writes held would pass
 * partpack-max-pending bytes, they are applied the same way, as a disk
 * writes its cache back when it likes: memory stays bounded.
 *
 * A flush that fails loses the writes it held: the library has put the
 * archive back as of the last flush (or left the record for the next
 * writable open to do so), and the client was told.  From then on every
 * request of the connection fails (EIO) until it disconnects, so that no
 * later flush can report success over them.
 *
 * With partpack-save-writes=FILE the filter never writes the archive: the
 * writes it takes (and the first it refuses) stream to FILE as they come,
 * completed and renamed into place at disconnect, for a program that
 * applies them as its own transaction.  That is how partpatch's file edits
 * run: one appliance session, then one patch.
 *
 * The undo record needs a place in a filesystem: beside the archive when the
 * lower layer is the file plugin (the same place partpatch uses, so that
 * `partpatch --recover` finds it), else where partpack-undo= says.  Without
 * one the export is read-only.
 *
 * Connections.  Each connection has its own archive handle and cache
 * (requests on one connection are serialised).  Over the file plugin a
 * connection holds partpatch's lock on the archive file while it is open:
 * shared to read, exclusive to write, never waiting (a busy archive refuses
 * the connection), and a reader is refused while an undo record is
 * pending, as pp_open refuses it.  So one connection writes at a time, and
 * the bytes a reader serves cannot change under it: multi-conn is
 * advertised for read-only exports.  Over other plugins the filter sees no
 * file to lock; with partpack-undo= it still refuses a pending record.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

#include "partpack.h"
#include "pending.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* ---- configuration ---------------------------------------------------- */

static uint64_t cache_size = PP_DEFAULT_CACHE_SIZE;
/* No single request of a usual client is larger (qemu sends at most
 * 32 MiB, libnbd 64 MiB), and it is what the cache holds by default. */
static uint64_t max_pending = (uint64_t)64 << 20;
static bool write_allowed = true;   /* partpack-write=false clears it */
static char *save_path;         /* partpack-save-writes= */
static char *undo_path;         /* partpack-undo=, or beside file= */
static char *archive_file;      /* the file plugin's file=, if any */

static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
static bool writer_connected;

static void log_notice(void *opaque, const char *message)
{
	(void)opaque;
	nbdkit_debug("partpack: %s", message);
}

static void partpack_load(void)
{
	pp_set_notice_handler(log_notice, NULL);
}

static void partpack_unload(void)
{
	free(undo_path);
	free(save_path);
	free(archive_file);
}

static int partpack_config(nbdkit_next_config *next, nbdkit_backend *nxdata,
			   const char *key, const char *value)
{
	if (strcmp(key, "partpack-cache") == 0) {
		if (pp_parse_size(value, &cache_size) != 0) {
			nbdkit_error("partpack-cache=%s: not a size", value);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "partpack-max-pending") == 0) {
		if (pp_parse_size(value, &max_pending) != 0) {
			nbdkit_error("partpack-max-pending=%s: not a size", value);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "partpack-write") == 0) {
		int on = nbdkit_parse_bool(value);
		if (on == -1)
			return -1;
		write_allowed = on;
		return 0;
	}
	if (strcmp(key, "partpack-save-writes") == 0) {
		free(save_path);
		save_path = nbdkit_absolute_path(value);
		return save_path ? 0 : -1;
	}
	if (strcmp(key, "partpack-undo") == 0) {
		free(undo_path);
		undo_path = nbdkit_absolute_path(value);
		return undo_path ? 0 : -1;
	}
	/* The file plugin's file=: the undo record goes beside it. */
	if (strcmp(key, "file") == 0) {
		free(archive_file);
		archive_file = nbdkit_absolute_path(value);
		if (!archive_file)
			return -1;
	}
	return next(nxdata, key, value);
}

/* ".NAME.partpatch-undo" beside the archive, where partpatch puts it. */
static char *undo_path_beside(const char *path)
{
	char *dir_copy = strdup(path), *base_copy = strdup(path), *result = NULL;
	if (dir_copy && base_copy &&
	    asprintf(&result, "%s/.%s.partpatch-undo", dirname(dir_copy),
		     basename(base_copy)) < 0)
		result = NULL;
	free(dir_copy);
	free(base_copy);
	return result;
}

static int partpack_config_complete(nbdkit_next_config_complete *next,
				    nbdkit_backend *nxdata)
{
	if (!undo_path && archive_file &&
	    !(undo_path = undo_path_beside(archive_file))) {
		nbdkit_error("partpack: out of memory");
		return -1;
	}
	return next(nxdata);
}

#define partpack_config_help \
	"partpack-cache=SIZE        Bytes of decoded blocks cached per connection.\n" \
	"partpack-max-pending=SIZE  Bytes of writes held before they are applied\n" \
	"                           as at a flush (default 64M).\n" \
	"partpack-write=false       Serve read-only even if the plugin can write.\n" \
	"partpack-save-writes=FILE  Never write the archive: stream the writes to\n" \
	"                           FILE, complete at disconnect (partpatch's\n" \
	"                           file edits).\n" \
	"partpack-undo=PATH         The undo record (needed to write over\n" \
	"                           plugins other than file)."

static int partpack_thread_model(void)
{
	/* A handle's cache is not locked; connections run in parallel. */
	return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
}

/* ---- a connection ----------------------------------------------------- */

typedef struct handle {
	nbdkit_next *next;          /* valid from prepare to finalize */
	pp_archive *archive;
	uint64_t image_size;
	bool writer;                /* holds writer_connected */
	int lock_fd;                /* flock on the archive file */
	pending *pending;           /* writers: taken, not yet applied */
	int save_fd;                /* partpack-save-writes: the file being */
	char *save_temp;            /* written, under this temporary name */
	bool refused;               /* a write was refused (and saved) */
	int failed;                 /* errno: a flush or the save file failed,
	                               every request fails from now on */
} handle;

/* Reads or writes len bytes through the plugin below, in requests of at
 * most 1 GiB (an NBD request's count is 32 bits). */
static int transfer(handle *h, uint8_t *read_to, const uint8_t *write_from,
		    size_t len, uint64_t offset)
{
	for (size_t done = 0; done < len;) {
		uint32_t piece = len - done > (1u << 30) ? (1u << 30) :
			(uint32_t)(len - done);
		int err = 0, status = read_to ?
			h->next->pread(h->next, read_to + done, piece,
				       offset + done, 0, &err) :
			h->next->pwrite(h->next, write_from + done, piece,
					offset + done, 0, &err);
		if (status == -1) {
			errno = err ? err : EIO;
			return -1;
		}
		done += piece;
	}
	return 0;
}

static int io_pread(void *opaque, void *buf, size_t len, uint64_t offset)
{
	return transfer(opaque, buf, NULL, len, offset);
}

static int io_pwrite(void *opaque, const void *buf, size_t len,
		     uint64_t offset)
{
	return transfer(opaque, NULL, buf, len, offset);
}

static int io_flush(void *opaque)
{
	handle *h = opaque;
	int err = 0;
	if (h->next->can_flush(h->next) != 1)
		return 0;
	if (h->next->flush(h->next, 0, &err) == -1) {
		errno = err ? err : EIO;
		return -1;
	}
	return 0;
}

static int io_size(void *opaque, uint64_t *size)
{
	handle *h = opaque;
	int64_t s = h->next->get_size(h->next);
	if (s < 0) {
		errno = EIO;
		return -1;
	}
	*size = (uint64_t)s;
	return 0;
}

static void *partpack_open(nbdkit_next_open *next, nbdkit_context *context,
			   int readonly, const char *exportname, int is_tls)
{
	(void)is_tls;
	if (next(context, readonly, exportname) == -1)
		return NULL;
	handle *h = calloc(1, sizeof *h);
	if (!h) {
		nbdkit_error("partpack: out of memory");
		return NULL;
	}
	h->lock_fd = h->save_fd = -1;
	return h;
}

/* Whether this connection may write: the client allows it, the filter is
 * not told otherwise, and either the writes are only saved, or the plugin
 * can write and there is a place for the undo record. */
static bool wants_write(nbdkit_next *next, int readonly)
{
	if (readonly || !write_allowed)
		return false;
	if (save_path)
		return true;
	if (next->can_write(next) != 1)
		return false;
	if (!undo_path) {
		nbdkit_debug("partpack: read-only: no partpack-undo= for the "
			     "undo record");
		return false;
	}
	return true;
}

/*
 * partpatch's lock on the archive file (pp_open's flock): shared to read,
 * exclusive to write, taken without waiting, so that no connection serves
 * bytes a patch is changing.  Not with partpack-save-writes, whose runner
 * (partpatch) holds the archive open for writing itself; not over other
 * plugins, which have no file here to lock.
 */
static int lock_archive(handle *h, bool exclusive)
{
	if (!archive_file || save_path)
		return 0;
	h->lock_fd = open(archive_file, O_RDONLY | O_CLOEXEC);
	if (h->lock_fd < 0) {
		nbdkit_error("partpack: %s: %m", archive_file);
		return -1;
	}
	if (flock(h->lock_fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
		return 0;
	nbdkit_error("partpack: %s: %s", archive_file, exclusive ?
		     "another process is reading or patching this archive" :
		     "another process is patching this archive; connect "
		     "again when it is done");
	return -1;
}

/* One writer at a time, here and against partpatch (its flock). */
static int claim_writer(handle *h)
{
	pthread_mutex_lock(&writer_lock);
	bool busy = writer_connected;
	if (!busy)
		writer_connected = true;
	pthread_mutex_unlock(&writer_lock);
	if (busy) {
		nbdkit_error("partpack: another connection is writing to this "
			     "archive; connect read-only (nbdkit -r) or one "
			     "at a time");
		return -1;
	}
	h->writer = true;
	return lock_archive(h, true);
}

/* Where a writer's writes go: memory, or a new save file under a
 * temporary name beside FILE (renamed to FILE when complete). */
static int start_pending(handle *h)
{
	if (save_path) {
		if (asprintf(&h->save_temp, "%s.XXXXXX", save_path) < 0) {
			h->save_temp = NULL;
			nbdkit_error("partpack: out of memory");
			return -1;
		}
		h->save_fd = mkostemp(h->save_temp, O_CLOEXEC);
		if (h->save_fd < 0) {
			nbdkit_error("partpack: %s: %m", h->save_temp);
			free(h->save_temp);
			h->save_temp = NULL;
			return -1;
		}
	}
	h->pending = pending_new(h->save_fd);
	if (!h->pending) {
		nbdkit_error("partpack: %s: %m",
			     save_path ? h->save_temp : "pending writes");
		return -1;
	}
	return 0;
}

static int partpack_prepare(nbdkit_next *next, void *hv, int readonly)
{
	handle *h = hv;
	h->next = next;
	bool writable = wants_write(next, readonly);
	if (writable ? claim_writer(h) || start_pending(h) :
	    lock_archive(h, false))
		return -1;
	/* Saving writes touches the archive not at all. */
	bool writes_archive = writable && !save_path;
	/* The undo record's place, for reading too: a reader is refused
	 * while a record is pending, as pp_open refuses one. */
	pp_io io = {
		.version = PP_IO_VERSION,
		.opaque = h,
		.pread = io_pread,
		.pwrite = writes_archive ? io_pwrite : NULL,
		.flush = writes_archive ? io_flush : NULL,
		.size = io_size,
		.undo_path = undo_path,
	};
	pp_error err;
	const char *name = archive_file ? archive_file : "partpack archive";
	if (pp_open_io(&io, name, writes_archive ? PP_OPEN_WRITE : PP_OPEN_READ,
		       &h->archive, &err) != 0 ||
	    pp_set_cache_size(h->archive, cache_size, &err) != 0) {
		nbdkit_error("%s%s", err.message,
			     err.status == PP_ERR_RECOVERY_PENDING ?
			     " (connect once for writing, or run partpatch "
			     "--recover, to finish it)" : "");
		return -1;
	}
	pp_info info;
	if (pp_get_info(h->archive, &info, &err) != 0) {
		nbdkit_error("%s", err.message);
		return -1;
	}
	h->image_size = info.uncompressed_size;
	pp_info_free(&info);
	return 0;
}

/* ---- failing, and applying the writes --------------------------------- */

/* From now on every request of this connection fails with error. */
static int fail_from_now(handle *h, int error, int *errp)
{
	h->failed = error;
	pending_clear(h->pending);
	*errp = error;
	return -1;
}

/* A request after such a failure. */
static bool has_failed(const handle *h, int *errp)
{
	if (!h->failed)
		return false;
	nbdkit_error("partpack: an earlier %s failed, and the writes it held "
		     "are lost: this connection serves nothing more "
		     "(disconnect and connect again)",
		     save_path ? "write to the save file" : "flush");
	*errp = h->failed;
	return true;
}

static int add_to_patch(void *txn, uint64_t offset, const void *data,
			uint32_t length)
{
	pp_error err;
	if (pp_patch_add(txn, offset, data, length, &err) != 0) {
		nbdkit_error("%s", err.message);
		return -1;
	}
	return 0;
}

/* Applies the pending writes as one transaction.  A failure has left the
 * archive as of the last flush, or its undo record for the next writable
 * open to put it back so: the writes are lost, and the connection fails. */
static int commit_pending(handle *h, int *errp)
{
	size_t count = pending_count(h->pending);
	if (count == 0)
		return 0;
	uint64_t held = pending_held(h->pending);
	pp_error err;
	pp_patch_txn *txn;
	if (pp_patch_begin(h->archive, 0, &txn, &err) != 0) {
		nbdkit_error("%s", err.message);
		return fail_from_now(h, EIO, errp);
	}
	if (pending_each(h->pending, add_to_patch, txn) != 0) {
		pp_patch_abort(txn);
		return fail_from_now(h, EIO, errp);
	}
	pp_patch_report report;
	if (pp_patch_commit(txn, &report, &err) != 0) {
		nbdkit_error("%s", err.message);
		return fail_from_now(h, EIO, errp);
	}
	nbdkit_debug("partpack: committed %zu runs (%" PRIu64 " bytes held), "
		     "%" PRIu64 " bytes in %" PRIu64 " blocks", count, held,
		     report.data_bytes, report.blocks_touched);
	pending_clear(h->pending);
	return 0;
}

/* Completes the save file and renames it into place. */
static int finish_save(handle *h)
{
	int status = pending_save_end(h->pending);
	if (close(h->save_fd) != 0)
		status = -1;
	h->save_fd = -1;
	if (status == 0 && rename(h->save_temp, save_path) == 0) {
		free(h->save_temp);
		h->save_temp = NULL;
		return 0;
	}
	nbdkit_error("partpack: %s: %m", save_path);
	return -1;
}

static int partpack_finalize(nbdkit_next *next, void *hv)
{
	(void)next;
	handle *h = hv;
	int err = 0;
	if (!h->writer || h->failed)
		return 0;  /* a failed connection leaves no save file */
	return save_path ? finish_save(h) : commit_pending(h, &err);
}

static void partpack_close(void *hv)
{
	handle *h = hv;
	pending_free(h->pending);
	if (h->save_fd >= 0)
		close(h->save_fd);
	if (h->save_temp)
		unlink(h->save_temp);  /* incomplete: never renamed */
	free(h->save_temp);
	pp_close(h->archive);
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	if (h->writer) {
		pthread_mutex_lock(&writer_lock);
		writer_connected = false;
		pthread_mutex_unlock(&writer_lock);
	}
	free(h);
}

/* ---- what the export offers ------------------------------------------ */

static int64_t partpack_get_size(nbdkit_next *next, void *hv)
{
	(void)next;
	return (int64_t)((handle *)hv)->image_size;
}

/* can_write and can_flush: only the writing connection. */
static int partpack_is_writer(nbdkit_next *next, void *hv)
{
	(void)next;
	return ((handle *)hv)->writer;
}

/* can_trim (a trim would have to write zeros: let clients write them) and
 * can_fast_zero. */
static int partpack_never(nbdkit_next *next, void *hv)
{
	(void)next, (void)hv;
	return 0;
}

static int partpack_can_zero(nbdkit_next *next, void *hv)
{
	(void)next;
	return ((handle *)hv)->writer ? NBDKIT_ZERO_EMULATE : NBDKIT_ZERO_NONE;
}

static int partpack_can_fua(nbdkit_next *next, void *hv)
{
	(void)next;
	return ((handle *)hv)->writer ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE;
}

static int partpack_can_extents(nbdkit_next *next, void *hv)
{
	(void)next, (void)hv;
	return 1;
}

/* A read-only export: no connection of it writes, and over the file
 * plugin each holds the shared lock, so no other process writes either. */
static int partpack_can_multi_conn(nbdkit_next *next, void *hv)
{
	(void)next;
	return !((handle *)hv)->writer;
}

static int partpack_can_cache(nbdkit_next *next, void *hv)
{
	(void)next, (void)hv;
	return NBDKIT_CACHE_NONE;
}

/* ---- requests --------------------------------------------------------- */

static int partpack_pread(nbdkit_next *next, void *hv, void *buf,
			  uint32_t count, uint64_t offset, uint32_t flags,
			  int *errp)
{
	(void)next, (void)flags;
	handle *h = hv;
	pp_error err;
	if (has_failed(h, errp))
		return -1;
	if (pp_pread(h->archive, buf, count, offset, &err) != 0) {
		nbdkit_error("%s", err.message);
		*errp = EIO;
		return -1;
	}
	if (h->pending && pending_read(h->pending, buf, count, offset) != 0) {
		nbdkit_error("partpack: %s: %m", h->save_temp);
		*errp = EIO;
		return -1;
	}
	return 0;
}

/* Any byte of [offset, offset + count) that is not stored data refuses the
 * write; the first refusal goes to the save file. */
static int refuse_unstored(handle *h, uint32_t count, uint64_t offset,
			   int *errp)
{
	pp_error err;
	uint64_t run;
	if (pp_stored_run(h->archive, offset, &run, &err) != 0) {
		nbdkit_error("%s", err.message);
		*errp = EIO;
		return -1;
	}
	if (run >= count)
		return 0;
	nbdkit_error("partpack: write of %" PRIu32 " bytes at offset %" PRIu64
		     " refused: byte %" PRIu64 " is compressed data, only kept "
		     "(stored) ranges can be written", count, offset,
		     offset + run);
	if (save_path && !h->refused &&
	    pending_save_refused(h->pending, offset, offset + run) != 0) {
		int error = errno ? errno : EIO;
		nbdkit_error("partpack: %s: %m", h->save_temp);
		return fail_from_now(h, error, errp);
	}
	h->refused = true;
	*errp = EPERM;
	return -1;
}

/* Keeps the writes held within partpack-max-pending: before a write that
 * would pass it, the writes held are applied, as at a flush.  Saved writes
 * hold only their bookkeeping in memory, and cannot be applied: there the
 * write fails with ENOSPC. */
static int make_room(handle *h, uint32_t count, uint64_t offset, int *errp)
{
	uint64_t held = pending_held(h->pending);
	if (held + pending_cost(h->pending, offset, count) <= max_pending)
		return 0;
	if (!save_path)
		return commit_pending(h, errp);
	nbdkit_error("partpack: write of %" PRIu32 " bytes at offset %" PRIu64
		     " refused: the writes saved so far hold %" PRIu64 " bytes "
		     "of memory, partpack-max-pending=%" PRIu64, count, offset,
		     held, max_pending);
	*errp = ENOSPC;
	return -1;
}

static int partpack_pwrite(nbdkit_next *next, void *hv, const void *buf,
			   uint32_t count, uint64_t offset, uint32_t flags,
			   int *errp)
{
	(void)next;
	handle *h = hv;
	if (has_failed(h, errp) || refuse_unstored(h, count, offset, errp) ||
	    make_room(h, count, offset, errp))
		return -1;
	if (pending_write(h->pending, buf, count, offset) != 0) {
		int error = errno ? errno : EIO;
		if (!save_path) {
			/* Nothing lost but this write (partly taken, as a
			 * failed write may be). */
			nbdkit_error("partpack: out of memory for a write of "
				     "%" PRIu32 " bytes", count);
			*errp = error;
			return -1;
		}
		nbdkit_error("partpack: %s: %m", h->save_temp);
		return fail_from_now(h, error, errp);
	}
	if (save_path)
		return 0;
	/* A single write larger than the cap, or one the client wants
	 * durable now. */
	if (pending_held(h->pending) > max_pending ||
	    (flags & NBDKIT_FLAG_FUA))
		return commit_pending(h, errp);
	return 0;
}

static int partpack_flush(nbdkit_next *next, void *hv, uint32_t flags,
			  int *errp)
{
	(void)next, (void)flags;
	handle *h = hv;
	if (has_failed(h, errp))
		return -1;
	if (save_path)
		return 0;  /* documented: the writes are saved, not applied */
	return commit_pending(h, errp);
}

static int partpack_extents(nbdkit_next *next, void *hv, uint32_t count,
			    uint64_t offset, uint32_t flags,
			    struct nbdkit_extents *extents, int *errp)
{
	(void)next, (void)flags;
	handle *h = hv;
	pp_map_extent *map;
	size_t map_count;
	pp_error err;
	if (has_failed(h, errp))
		return -1;
	if (pp_map(h->archive, offset, count, &map, &map_count, &err) != 0) {
		nbdkit_error("%s", err.message);
		*errp = EIO;
		return -1;
	}
	int status = 0;
	for (size_t i = 0; status == 0 && i < map_count; i++) {
		const pp_map_extent *x = &map[i];
		uint32_t type = 0;
		if (x->kind == PP_EXTENT_ZERO && !(h->pending &&
		    pending_overlaps(h->pending, x->offset, x->length)))
			type = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
		status = nbdkit_add_extent(extents, x->offset, x->length, type);
	}
	free(map);
	if (status == -1)
		*errp = errno ? errno : EIO;
	return status;
}

static struct nbdkit_filter filter = {
	.name = "partpack",
	.longname = "nbdkit partpack filter",
	.description = "Serve and patch partpack archives (.xz, .gz, .zst)",
	.load = partpack_load,
	.unload = partpack_unload,
	.config = partpack_config,
	.config_complete = partpack_config_complete,
	.config_help = partpack_config_help,
	.thread_model = partpack_thread_model,
	.open = partpack_open,
	.prepare = partpack_prepare,
	.finalize = partpack_finalize,
	.close = partpack_close,
	.get_size = partpack_get_size,
	.can_write = partpack_is_writer,
	.can_flush = partpack_is_writer,
	.can_trim = partpack_never,
	.can_zero = partpack_can_zero,
	.can_fast_zero = partpack_never,
	.can_fua = partpack_can_fua,
	.can_extents = partpack_can_extents,
	.can_multi_conn = partpack_can_multi_conn,
	.can_cache = partpack_can_cache,
	.pread = partpack_pread,
	.pwrite = partpack_pwrite,
	.flush = partpack_flush,
	.extents = partpack_extents,
};

NBDKIT_REGISTER_FILTER(filter)
