/*
 * journal.c - the undo record that makes an in-place patch recoverable.
 *
 * Before the first byte of an archive is overwritten, the old contents of
 * every range the patch will write (data and checks) go to an undo record
 * (".NAME.partpatch-undo" beside a file, or the caller's undo_path for an
 * archive opened on callbacks), which is fsynced together with its
 * directory.  Only then are the new bytes written; after they are
 * synced, the record is removed.  So at any moment:
 *
 *   no record, or an incomplete one   the archive holds its old bytes
 *                                     (writes start only after the record
 *                                     is complete): drop the record
 *   a complete record                 the archive may be half written:
 *                                     copy the old bytes back, sync, drop
 *
 * and recovery always ends with the complete old archive, checks included.
 * Recovery is itself restartable: the record stays until the archive has
 * been restored and synced.
 *
 * Record layout (little-endian):
 *   "PPUNDO01"  le64 archive size
 *   entries:    le64 file offset, le32 length, old bytes
 *   trailer:    le64 0xFFFFFFFFFFFFFFFF, le32 entry count, le32 CRC-32 of
 *               every byte before this CRC
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOURNAL_MAGIC "PPUNDO01"
#define JOURNAL_END UINT64_MAX
#define JOURNAL_IO_SIZE (1u << 20)

struct pp_journal {
	char *path;
	int fd;
	int dir_fd;
	uint32_t crc;
	uint32_t entries;
	uint8_t *buffer;            /* records are written in big pieces */
	size_t buffered;
};

/* ---- paths ------------------------------------------------------------ */

/* The record's place is the archive's business (archive->undo_path: beside
 * the file, or where the caller of pp_open_io said); the directory that
 * holds it is synced with it. */

/* ---- writing ---------------------------------------------------------- */

static int flush_buffer(pp_journal *journal, pp_error *err)
{
	if (journal->buffered == 0)
		return 0;
	if (pp_write_full(journal->fd, journal->buffer, journal->buffered))
		return pp_fail_errno(err, PP_ERR_IO, "%s: write error",
				     journal->path);
	journal->buffered = 0;
	return 0;
}

static int append(pp_journal *journal, const void *data, size_t len,
		  pp_error *err)
{
	const uint8_t *p = data;
	journal->crc = pp_crc32(journal->crc, data, len);
	while (len > 0) {
		size_t room = JOURNAL_IO_SIZE - journal->buffered;
		size_t piece = PP_MIN(room, len);
		memcpy(journal->buffer + journal->buffered, p, piece);
		journal->buffered += piece;
		p += piece;
		len -= piece;
		if (journal->buffered == JOURNAL_IO_SIZE) {
			int status = flush_buffer(journal, err);
			if (status)
				return status;
		}
	}
	return 0;
}

static void free_journal(pp_journal *journal)
{
	if (journal->fd >= 0)
		close(journal->fd);
	if (journal->dir_fd >= 0)
		close(journal->dir_fd);
	free(journal->buffer);
	free(journal->path);
	free(journal);
}

int pp_journal_begin(pp_archive *archive, pp_journal **out, pp_error *err)
{
	*out = NULL;
	pp_journal *journal = calloc(1, sizeof *journal);
	if (!journal)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	journal->fd = journal->dir_fd = -1;
	journal->path = archive->undo_path ? strdup(archive->undo_path) : NULL;
	journal->buffer = malloc(JOURNAL_IO_SIZE);
	if (!journal->path || !journal->buffer) {
		free_journal(journal);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	journal->dir_fd = pp_open_directory_of(journal->path);
	journal->fd = open(journal->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			   0600);
	if (journal->fd < 0 || journal->dir_fd < 0) {
		int status = pp_fail_errno(err, PP_ERR_IO, "%s: cannot create "
					   "the undo record", journal->path);
		free_journal(journal);
		return status;
	}
	uint8_t header[16];
	memcpy(header, JOURNAL_MAGIC, 8);
	pp_put_le64(header + 8, archive->file_size);
	int status = append(journal, header, sizeof header, err);
	if (status) {
		pp_journal_abort(journal);
		return status;
	}
	*out = journal;
	return 0;
}

int pp_journal_add(pp_journal *journal, uint64_t foffset, const void *old,
		   size_t len, pp_error *err)
{
	uint8_t entry[12];
	pp_put_le64(entry, foffset);
	pp_put_le32(entry + 8, (uint32_t)len);
	journal->entries++;
	int status = append(journal, entry, sizeof entry, err);
	return status ? status : append(journal, old, len, err);
}

int pp_journal_commit(pp_journal *journal, pp_error *err)
{
	uint8_t trailer[12];
	pp_put_le64(trailer, JOURNAL_END);
	pp_put_le32(trailer + 8, journal->entries);
	int status = append(journal, trailer, sizeof trailer, err);
	uint8_t crc[4];
	pp_put_le32(crc, journal->crc);
	if (status == 0)
		status = append(journal, crc, sizeof crc, err);
	if (status == 0)
		status = flush_buffer(journal, err);
	if (status)
		return status;
	if (fsync(journal->fd) || fsync(journal->dir_fd))
		return pp_fail_errno(err, PP_ERR_IO, "%s: sync failed",
				     journal->path);
	return 0;
}

/* Removes the record and makes the removal durable. */
static int remove_record(const char *path, int dir_fd, pp_error *err)
{
	if (unlink(path) && errno != ENOENT)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot remove", path);
	if (fsync(dir_fd))
		return pp_fail_errno(err, PP_ERR_IO, "%s: sync failed", path);
	return 0;
}

int pp_journal_finish(pp_journal *journal, pp_error *err)
{
	int status = remove_record(journal->path, journal->dir_fd, err);
	free_journal(journal);
	return status;
}

void pp_journal_abort(pp_journal *journal)
{
	if (!journal)
		return;
	unlink(journal->path);
	free_journal(journal);
}

/* ---- recovery --------------------------------------------------------- */

/* Sequential reads of the record with a running CRC. */
typedef struct record_reader {
	FILE *file;
	uint32_t crc;
} record_reader;

static bool read_record(record_reader *reader, void *buf, size_t len)
{
	if (fread(buf, 1, len, reader->file) != len)
		return false;
	reader->crc = pp_crc32(reader->crc, buf, len);
	return true;
}

/*
 * Checks that the record is complete (its CRC matches) and, if apply, copies
 * its old bytes back into the archive.  Returns 1 for an incomplete record.
 */
static int replay(pp_archive *archive, const char *path, bool apply,
		  pp_error *err)
{
	FILE *file = fopen(path, "rb");
	if (!file)
		return pp_fail_errno(err, PP_ERR_IO, "%s", path);
	record_reader reader = { .file = file };
	uint8_t header[16], entry[12], crc[4];
	uint8_t *old = malloc(JOURNAL_IO_SIZE);
	int status = old ? 1 : pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 1 && read_record(&reader, header, sizeof header) &&
	    memcmp(header, JOURNAL_MAGIC, 8) == 0) {
		for (uint32_t count = 0; status == 1 &&
		     read_record(&reader, entry, sizeof entry); count++) {
			uint64_t foffset = pp_get_le64(entry);
			uint32_t len = pp_get_le32(entry + 8);
			if (foffset == JOURNAL_END) {
				uint32_t expected = reader.crc;
				if (len == count && fread(crc, 1, 4, file) == 4 &&
				    pp_get_le32(crc) == expected)
					status = 0;
				break;
			}
			while (status == 1 && len > 0) {
				size_t piece = PP_MIN(len, JOURNAL_IO_SIZE);
				if (!read_record(&reader, old, piece))
					goto done;
				if (apply && pp_archive_write(archive, old, piece,
							    foffset))
					status = pp_fail_errno(err, PP_ERR_IO,
							       "%s: write error",
							       archive->path);
				foffset += piece;
				len -= (uint32_t)piece;
			}
		}
	}
done:
	free(old);
	fclose(file);
	return status;
}

int pp_journal_recover(pp_archive *archive, bool may_write, bool *recovered,
		       pp_error *err)
{
	*recovered = false;
	const char *path = archive->undo_path;
	int status = 0;
	if (!path || access(path, F_OK) != 0)
		return 0;  /* nothing pending */
	if (!may_write) {
		status = pp_fail(err, PP_ERR_RECOVERY_PENDING, "%s: an "
				 "interrupted patch is pending (undo record %s)",
				 archive->path, path);
		return status;
	}
	int dir_fd = pp_open_directory_of(path);
	if (dir_fd < 0)
		status = pp_fail_errno(err, PP_ERR_IO, "%s", archive->path);
	/* First check, then write: a record that is incomplete means the
	 * archive was never touched. */
	if (status == 0)
		status = replay(archive, path, false, err);
	if (status == 0) {
		status = replay(archive, path, true, err);
		if (status == 0 && pp_archive_sync(archive))
			status = pp_fail_errno(err, PP_ERR_IO, "%s: sync failed",
					       archive->path);
	}
	if (status == 1)
		status = 0;  /* incomplete: the archive holds its old bytes */
	if (status == 0) {
		status = remove_record(path, dir_fd, err);
		*recovered = status == 0;
		if (status == 0)
			pp_notice("%s: recovered from an interrupted patch: "
				  "the archive holds its contents from before "
				  "that patch", archive->path);
	}
	if (dir_fd >= 0)
		close(dir_fd);
	return status;
}

int pp_journal_rollback(pp_journal *journal, pp_archive *archive,
			pp_error *err)
{
	/* The record on disk is complete: recovery restores from it. */
	free_journal(journal);
	bool recovered;
	return pp_journal_recover(archive, true, &recovered, err);
}
