/*
 * digest.c - the SHA-256 of an archive's image and of the archive file,
 * what release pipelines publish beside an image.
 *
 * The image's digest needs every block decoded, in order; the file's needs
 * only its bytes, so it is hashed on a second thread alongside.  Blocks
 * are decoded on the workers of pp_decode_blocks (unpack.c) and hashed in
 * order as they come back; zero blocks are hashed without decoding.
 */
#include "archio.h"
#include "archive.h"
#include "blocks.h"
#include "error.h"
#include "sha256.h"
#include "unpack.h"

#include <pthread.h>
#include <stdlib.h>

#define DIGEST_IO_SIZE (1u << 20)

typedef struct file_hash {
	pp_archive *archive;
	uint8_t *digest;
	int status;
	pp_error err;
} file_hash;

static void *hash_file(void *opaque)
{
	file_hash *f = opaque;
	uint8_t *buf = malloc(DIGEST_IO_SIZE);
	if (!buf) {
		f->status = pp_fail(&f->err, PP_ERR_NOMEM, "out of memory");
		return NULL;
	}
	pp_sha256 sha;
	pp_sha256_init(&sha);
	for (uint64_t at = 0; at < f->archive->file_size;) {
		size_t len = (size_t)PP_MIN(DIGEST_IO_SIZE,
					    f->archive->file_size - at);
		if (pp_archive_read(f->archive, buf, len, at)) {
			f->status = pp_fail_errno(&f->err, PP_ERR_IO,
						  "%s: read error",
						  f->archive->path);
			break;
		}
		pp_sha256_update(&sha, buf, len);
		at += len;
	}
	if (f->status == 0)
		pp_sha256_final(&sha, f->digest);
	free(buf);
	return NULL;
}

/* The image's digest, fed a block at a time, in order. */
typedef struct image_hash {
	pp_sha256 sha;
	uint64_t total;
	pp_progress_fn progress;
	void *opaque;
} image_hash;

static int hash_block(void *opaque, uint64_t uoffset, const uint8_t *data,
		      size_t len, bool is_zero, pp_error *err)
{
	image_hash *h = opaque;
	(void)err;
	if (is_zero)
		pp_sha256_zeros(&h->sha, len);
	else
		pp_sha256_update(&h->sha, data, len);
	if (h->progress)
		h->progress(h->opaque, uoffset + len, h->total);
	return 0;
}

int pp_digest(pp_archive *archive, uint8_t image_sha256[32],
	      uint8_t file_sha256[32], pp_progress_fn progress, void *opaque,
	      pp_error *err)
{
	file_hash f = { .archive = archive, .digest = file_sha256 };
	pthread_t thread;
	bool threaded = file_sha256 &&
		pthread_create(&thread, NULL, hash_file, &f) == 0;
	if (file_sha256 && !threaded)
		hash_file(&f);
	int status = 0;
	if (image_sha256) {
		image_hash h = { .total = pp_archive_image_size(archive),
				 .progress = progress, .opaque = opaque };
		pp_sha256_init(&h.sha);
		status = pp_decode_blocks(archive, 0, archive->block_count, 0,
					  hash_block, &h, err);
		if (status == 0)
			pp_sha256_final(&h.sha, image_sha256);
	}
	if (threaded)
		pthread_join(thread, NULL);
	if (status == 0 && f.status) {
		if (err)
			*err = f.err;
		status = f.status;
	}
	return status;
}
