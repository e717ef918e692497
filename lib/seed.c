/*
 * seed.c - older images a fetch takes bytes from (seed.h).
 *
 * A seed is opened as an archive when a container's probe accepts its
 * first bytes, and read through pp_pread (stored data straight from the
 * file, other blocks decoded and their checks compared); anything else is
 * raw bytes, a regular file or a block device, read with pread.  Readers
 * on several threads each borrow one of the archive's handles (pp_dup):
 * a handle's block cache is for one thread at a time.
 */
#include "seed.h"
#include "archio.h"
#include "archive.h"
#include "beside.h"
#include "blocks.h"
#include "bmap.h"
#include "check.h"
#include "container.h"
#include "error.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HANDLES_MAX 16
/* A block of a seed archive decoded for pp_pread stays cached: enough
 * for the block each borrower works in. */
#define SEED_CACHE ((uint64_t)32 << 20)

struct pp_seed {
	char *path;
	int fd;                     /* raw bytes, else -1 */
	uint64_t size;
	pp_archive *archive;        /* an archive, else NULL */
	pp_bmap bmap;
	bool have_bmap;
	pthread_mutex_t lock;       /* the handles below */
	pthread_cond_t returned;
	pp_archive *handles[HANDLES_MAX];
	bool lent[HANDLES_MAX];
	size_t handle_count;
};

const char *pp_seed_name(const pp_seed *seed)
{
	return seed->path;
}

pp_archive *pp_seed_archive(const pp_seed *seed)
{
	return seed->archive;
}

const pp_bmap *pp_seed_bmap(const pp_seed *seed)
{
	return seed->have_bmap ? &seed->bmap : NULL;
}

uint64_t pp_seed_size(const pp_seed *seed)
{
	return seed->size;
}

static int open_raw(pp_seed *seed, pp_error *err)
{
	struct stat st;
	seed->fd = open(seed->path, O_RDONLY | O_CLOEXEC);
	if (seed->fd < 0 || fstat(seed->fd, &st))
		return pp_fail_errno(err, PP_ERR_IO, "%s", seed->path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return pp_fail(err, PP_ERR_USAGE, "%s: a seed must be a file "
			       "or a block device", seed->path);
	off_t end = lseek(seed->fd, 0, SEEK_END);
	if (end < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", seed->path);
	seed->size = (uint64_t)end;
	return 0;
}

/* An archive when its first bytes say so, else raw bytes. */
static int open_seed(pp_seed *seed, pp_error *err)
{
	uint8_t head[16];
	int fd = open(seed->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", seed->path);
	ssize_t got = pp_pread_upto(fd, head, sizeof head, 0);
	close(fd);
	if (got < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", seed->path);
	if (!pp_format_of_head(head, (size_t)got))
		return open_raw(seed, err);
	int status = pp_open(seed->path, PP_OPEN_READ, &seed->archive, err);
	if (status)
		return status;
	seed->size = pp_archive_image_size(seed->archive);
	seed->handles[0] = seed->archive;
	seed->handle_count = 1;
	char *found_at = NULL;
	status = pp_bmap_find(seed->path, pp_local_document, NULL, seed->size,
			      &seed->bmap, &found_at, err);
	seed->have_bmap = status == 0 && found_at;
	free(found_at);
	return status;
}

int pp_seed_open(const char *path, pp_seed **out, pp_error *err)
{
	*out = NULL;
	pp_seed *seed = calloc(1, sizeof *seed);
	if (!seed)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	seed->fd = -1;
	pthread_mutex_init(&seed->lock, NULL);
	pthread_cond_init(&seed->returned, NULL);
	int status = (seed->path = strdup(path)) ? open_seed(seed, err) :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status) {
		pp_seed_close(seed);
		return status;
	}
	*out = seed;
	return 0;
}

void pp_seed_close(pp_seed *seed)
{
	if (!seed)
		return;
	for (size_t i = 0; i < seed->handle_count; i++)
		pp_close(seed->handles[i]);
	if (seed->fd >= 0)
		close(seed->fd);
	if (seed->have_bmap)
		pp_bmap_release(&seed->bmap);
	pthread_mutex_destroy(&seed->lock);
	pthread_cond_destroy(&seed->returned);
	free(seed->path);
	free(seed);
}

/* ---- handles for several threads ----------------------------------------- */

static int borrow(pp_seed *seed, pp_archive **handle, pp_error *err)
{
	int status = 0;
	pthread_mutex_lock(&seed->lock);
	for (;;) {
		for (size_t i = 0; i < seed->handle_count; i++) {
			if (!seed->lent[i]) {
				seed->lent[i] = true;
				*handle = seed->handles[i];
				pthread_mutex_unlock(&seed->lock);
				return 0;
			}
		}
		if (seed->handle_count < HANDLES_MAX)
			break;
		pthread_cond_wait(&seed->returned, &seed->lock);
	}
	size_t i = seed->handle_count;
	status = pp_dup(seed->archive, &seed->handles[i], err);
	if (status == 0)
		status = pp_set_cache_size(seed->handles[i], SEED_CACHE, err);
	if (status == 0) {
		seed->lent[i] = true;
		seed->handle_count++;
		*handle = seed->handles[i];
	} else if (seed->handles[i]) {
		pp_close(seed->handles[i]);
		seed->handles[i] = NULL;
	}
	pthread_mutex_unlock(&seed->lock);
	return status;
}

static void give_back(pp_seed *seed, pp_archive *handle)
{
	pthread_mutex_lock(&seed->lock);
	for (size_t i = 0; i < seed->handle_count; i++)
		if (seed->handles[i] == handle)
			seed->lent[i] = false;
	pthread_cond_signal(&seed->returned);
	pthread_mutex_unlock(&seed->lock);
}

/* ---- reads --------------------------------------------------------------- */

int pp_seed_read(pp_seed *seed, void *buf, size_t len, uint64_t offset,
		 pp_error *err)
{
	/* Past the seed's end the image reads as zeros. */
	size_t have = offset >= seed->size ? 0 :
		(size_t)PP_MIN((uint64_t)len, seed->size - offset);
	memset((uint8_t *)buf + have, 0, len - have);
	if (have == 0)
		return 0;
	if (!seed->archive)
		return pp_pread_full(seed->fd, buf, have, offset) ?
			pp_fail_errno(err, PP_ERR_IO, "%s: read error",
				      seed->path) : 0;
	pp_archive *handle;
	int status = borrow(seed, &handle, err);
	if (status)
		return status;
	status = pp_pread(handle, buf, have, offset, err);
	give_back(seed, handle);
	return status;
}

size_t pp_seed_block_at(const pp_seed *seed, uint64_t uoffset,
			uint64_t usize)
{
	if (!seed->archive)
		return SIZE_MAX;
	size_t i = pp_archive_find_block(seed->archive, uoffset);
	if (i == seed->archive->block_count)
		return SIZE_MAX;
	const pp_block *b = &seed->archive->blocks[i];
	return b->uoffset == uoffset && b->usize == usize ? i : SIZE_MAX;
}

int pp_seed_read_file(pp_seed *seed, void *buf, size_t len, uint64_t offset,
		      pp_error *err)
{
	return pp_archive_read_or_fail(seed->archive, buf, len, offset, err);
}

int pp_seed_decode_block(pp_seed *seed, size_t block, uint8_t *buf,
			 pp_error *err)
{
	pp_archive *handle;
	int status = borrow(seed, &handle, err);
	if (status)
		return status;
	status = pp_decode_block(handle, block, buf, err);
	give_back(seed, handle);
	return status;
}

int pp_seed_check(pp_seed *seed, const pp_check_kind *kind, uint64_t uoffset,
		  uint64_t usize, uint8_t *check, size_t *index,
		  pp_error *err)
{
	*index = pp_seed_block_at(seed, uoffset, usize);
	if (*index != SIZE_MAX &&
	    seed->archive->blocks[*index].check == kind->id) {
		const pp_block *b = &seed->archive->blocks[*index];
		return pp_archive_read_or_fail(seed->archive, check, kind->size,
					       b->check_offset, err);
	}
	*index = SIZE_MAX;
	/* Hashed in pieces: a block may be large. */
	enum { PIECE = 1 << 20 };
	uint8_t *buf = malloc(PIECE);
	void *state = malloc(kind->state_size);
	int status = buf && state ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 0)
		kind->init(state);
	for (uint64_t at = 0; status == 0 && at < usize;) {
		size_t len = (size_t)PP_MIN((uint64_t)PIECE, usize - at);
		status = pp_seed_read(seed, buf, len, uoffset + at, err);
		if (status == 0)
			kind->update(state, buf, len);
		at += len;
	}
	if (status == 0)
		kind->final(state, check);
	free(buf);
	free(state);
	return status;
}
