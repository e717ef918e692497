/*
 * journal.c - the undo record that makes an in-place patch recoverable.
 *
 * Before the first byte of an archive is overwritten, the old contents of
 * every range the patch will write (data and checks) go to an undo record
 * (".NAME.partpatch-undo" beside a file, or the caller's undo_path for an
 * archive opened on callbacks), which is fsynced together with its
 * directory.  Only then are the new bytes written; after they are
 * synced, the record is removed.
 *
 * A record lies beside its archive by name only, and names outlive files:
 * a repack to the same name (partpack -f renames a new file there), or
 * anyone who may create files in the directory, can leave a record beside
 * an archive it was never made for, and replaying it would write one
 * file's old bytes into another.  So the record is bound to its archive,
 * and recovery checks the binding before it writes a byte:
 *
 *   identity  the device, inode and filesystem ID (statfs) of the file;
 *             the inode must match, and the device or the filesystem ID,
 *             since a device number may change across a reboot (btrfs,
 *             LVM) where the filesystem ID does not.  An archive opened
 *             on callbacks has none (zeros): its record is bound by the
 *             rest, and so is a record checked from there.
 *   size      the archive's size, which a patch never changes; every
 *             entry must lie inside it.
 *   the ends  the SHA-256 of the archive's first and last 64 KiB, with
 *             every byte that an entry of the record covers read as zero.
 *
 * Why the ends, masked: a patch writes exactly the ranges it saves to the
 * record (its data pieces, each touched block's check, and the copy of
 * that check which a zstd seek table keeps near the end of the file,
 * pp_block.check_copy_offset), and a replay writes exactly those ranges
 * back.  With the entries masked, the hashed bytes are therefore the same
 * before the patch, at every moment of it and of its replay, so the hash
 * taken when the record is committed holds at recovery however far either
 * got.  A hash of "the index and footer" would not hold (the seek table
 * carries checks a patch rewrites), and one of the whole file would cost a
 * pass over gigabytes per patch.  The ends are what tells archives apart:
 * the head holds the stream header and the first blocks, the tail the
 * index, seek table or gzip index, where every block's sizes are written,
 * so another pack of another image at the same name and size differs
 * there.  64 KiB of tail hold the whole index of an xz or gzip archive of
 * up to about 7,000 blocks, or the seek table of 5,000 zstd frames; the
 * ends cost 128 KiB of reading at commit and again at recovery.
 *
 * And the record must be its archive owner's: a regular file of one link,
 * owned by the archive's owner (for an archive on callbacks, by this
 * process's user).  Anything else at that name was not written by a patch
 * of this archive: it is ignored with a notice, never replayed nor
 * removed, and no patch can start until someone removes it.  A patch run
 * by root gives its record to the archive's owner; one run by any other
 * user who does not own the archive is refused before it writes, since
 * recovery would ignore its record.  The record is created with O_EXCL
 * and O_NOFOLLOW, so nothing planted at its name beforehand (a symbolic
 * link, a file) is ever written through or truncated.
 *
 * So at any moment, what recovery finds, and does:
 *
 *   no record, or an incomplete one    the archive holds its old bytes
 *   (the file ends before the end of   (writes start only after the
 *   its trailer, or the CRC fails)     record is complete): drop the record
 *   a complete record bound to the     the archive may be half written:
 *   archive                            copy the old bytes back, sync, drop
 *   a complete record not bound to it  not this archive's: refuse
 *   (identity, size, the ends, or an   (PP_ERR_FORMAT, naming the record
 *   entry past the recorded size)      and why), touching neither file
 *   a "PPUNDO01" record (the format    cannot be checked: refused alike,
 *   before the binding)                never replayed blindly
 *   a record not the owner's, or not   ignored with a notice
 *   a regular file of one link
 *   a read error on the record         fail (PP_ERR_IO), keep the record:
 *                                      only a clean end of file makes a
 *                                      record incomplete
 *
 * and recovery ends with the complete old archive, checks included, or
 * touches nothing.  It is itself restartable: the record stays until the
 * archive has been restored and synced.  Opening for reading only looks:
 * a pending record (complete or not) fails with PP_ERR_RECOVERY_PENDING,
 * one that cannot be replayed as the table says.
 *
 * Record layout (little-endian):
 *   header:   "PPUNDO02", le64 archive size, le64 device, le64 inode,
 *             le64 filesystem ID
 *   entries:  le64 file offset, le32 length, old bytes
 *   trailer:  le64 0xFFFFFFFFFFFFFFFF, le32 entry count, the SHA-256 of
 *             the ends (32 bytes), le32 CRC-32 of every byte before it
 */
#include "journal.h"
#include "archio.h"
#include "archive.h"
#include "array.h"
#include "crc.h"
#include "error.h"
#include "io.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_MAGIC "PPUNDO02"
#define JOURNAL_MAGIC_V1 "PPUNDO01"
#define JOURNAL_MAGIC_SIZE 8
#define JOURNAL_HEADER_SIZE 40
#define JOURNAL_ENTRY_SIZE 12
#define JOURNAL_END UINT64_MAX
#define JOURNAL_IO_SIZE (1u << 20)
#define JOURNAL_ENDS_SIZE ((uint64_t)64 << 10)

struct pp_journal {
	pp_archive *archive;
	char *path;
	int fd;
	int dir_fd;
	uint32_t crc;
	pp_range *entries;          /* where each entry lies, for the ends */
	size_t entry_count;
	size_t entry_capacity;
	uint8_t *buffer;            /* records are written in big pieces */
	size_t buffered;
};

char *pp_undo_path_beside(const char *path)
{
	return pp_hidden_path_beside(path, "partpatch-undo");
}

/* ---- the ends ----------------------------------------------------------- */

/* Hashes [start, start + len) of the file, held in buf, reading every byte
 * an entry covers as zero. */
static void hash_region(pp_sha256 *sha, uint8_t *buf, uint64_t start,
			uint64_t len, const pp_range *entries, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		uint64_t from = PP_MAX(entries[i].offset, start);
		uint64_t to = PP_MIN(entries[i].offset + entries[i].length,
				     start + len);
		if (from < to)
			memset(buf + (from - start), 0, (size_t)(to - from));
	}
	pp_sha256_update(sha, buf, (size_t)len);
}

int pp_journal_hash_ends(const pp_archive *archive, uint64_t size,
			 const pp_range *entries, size_t count,
			 uint8_t digest[32], pp_error *err)
{
	uint64_t head_len = PP_MIN(size, JOURNAL_ENDS_SIZE);
	uint64_t tail_start = PP_MAX(head_len, size - head_len);
	const uint64_t starts[2] = { 0, tail_start };
	const uint64_t lens[2] = { head_len, size - tail_start };
	uint8_t *buf = malloc(JOURNAL_ENDS_SIZE);
	if (!buf)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	pp_sha256 sha;
	pp_sha256_init(&sha);
	int status = 0;
	for (int i = 0; i < 2 && status == 0; i++) {
		if (lens[i] == 0)
			continue;
		status = pp_archive_read_or_fail(archive, buf, (size_t)lens[i],
						 starts[i], err);
		if (status == 0)
			hash_region(&sha, buf, starts[i], lens[i], entries,
				    count);
	}
	pp_sha256_final(&sha, digest);
	free(buf);
	return status;
}

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
	free(journal->entries);
	free(journal->buffer);
	free(journal->path);
	free(journal);
}

/*
 * Creates the record, never through anything already at its name, and
 * gives it to the archive's owner; a patch by another user (not root)
 * is refused, since recovery would ignore its record.
 */
static int create_record(pp_journal *journal, const pp_file_id *id,
			 pp_error *err)
{
	const char *name = journal->archive->path;
	journal->dir_fd = pp_open_directory_of(journal->path);
	journal->fd = pp_create_new_file(journal->path, 0600);
	if (journal->fd < 0 || journal->dir_fd < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot create the undo "
				     "record %s%s", name, journal->path,
				     errno == EEXIST ? " (something else has "
				     "that name: remove it)" : "");
	uid_t user = geteuid();
	if (id->owner == user)
		return 0;
	if (user == 0 && fchown(journal->fd, id->owner, (gid_t)-1) == 0)
		return 0;
	return pp_fail(err, PP_ERR_IO, "%s: cannot patch in place as uid %u: "
		       "the undo record would not belong to the archive's "
		       "owner (uid %" PRIu32 "), and recovery ignores such a "
		       "record", name, (unsigned)user, id->owner);
}

int pp_journal_begin(pp_archive *archive, pp_journal **out, pp_error *err)
{
	*out = NULL;
	pp_journal *journal = calloc(1, sizeof *journal);
	if (!journal)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	journal->archive = archive;
	journal->fd = journal->dir_fd = -1;
	journal->path = archive->undo_path ? strdup(archive->undo_path) : NULL;
	journal->buffer = malloc(JOURNAL_IO_SIZE);
	if (!journal->path || !journal->buffer) {
		free_journal(journal);
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	pp_file_id id;
	int status = pp_archive_file_id(archive, &id, err);
	if (status == 0)
		status = create_record(journal, &id, err);
	if (status) {
		/* Remove only what this call created. */
		if (journal->fd >= 0)
			unlink(journal->path);
		free_journal(journal);
		return status;
	}
	uint8_t header[JOURNAL_HEADER_SIZE];
	memcpy(header, JOURNAL_MAGIC, JOURNAL_MAGIC_SIZE);
	pp_put_le64(header + 8, archive->file_size);
	pp_put_le64(header + 16, id.device);
	pp_put_le64(header + 24, id.inode);
	pp_put_le64(header + 32, id.filesystem);
	status = append(journal, header, sizeof header, err);
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
	pp_range *entries = pp_grow(journal->entries, journal->entry_count,
				    &journal->entry_capacity, sizeof *entries,
				    64);
	if (!entries || journal->entry_count >= UINT32_MAX)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	journal->entries = entries;
	entries[journal->entry_count++] = (pp_range){ foffset, len };
	uint8_t entry[JOURNAL_ENTRY_SIZE];
	pp_put_le64(entry, foffset);
	pp_put_le32(entry + 8, (uint32_t)len);
	int status = append(journal, entry, sizeof entry, err);
	return status ? status : append(journal, old, len, err);
}

int pp_journal_commit(pp_journal *journal, pp_error *err)
{
	uint8_t trailer[8 + 4 + 32];
	pp_put_le64(trailer, JOURNAL_END);
	pp_put_le32(trailer + 8, (uint32_t)journal->entry_count);
	/* Nothing is written yet: the ends are as the patch found them. */
	int status = pp_journal_hash_ends(journal->archive,
					  journal->archive->file_size,
					  journal->entries,
					  journal->entry_count, trailer + 12,
					  err);
	if (status == 0)
		status = append(journal, trailer, sizeof trailer, err);
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

/* What parse_record found. */
enum record_state {
	RECORD_COMPLETE = 0,
	RECORD_INCOMPLETE = 1,      /* ends early, or its CRC fails */
	RECORD_OLD_FORMAT = 2,      /* PPUNDO01 */
};

/* A record as read: its header, its entries, and the first entry that
 * does not fit in the recorded size (bad_entry > 0: its number, from 1). */
typedef struct record {
	const char *path;
	int fd;
	uint64_t at;                /* the next byte to read */
	uint32_t crc;               /* of every byte read so far */
	uint64_t size, device, inode, filesystem;
	pp_range *entries;
	size_t count;
	size_t capacity;
	size_t bad_entry;
	uint8_t ends[32];
} record;

/* Reads the next len bytes: 0, or RECORD_INCOMPLETE if the file ends
 * first; a read error is an error, never the end of the record. */
static int read_record(record *rec, void *buf, size_t len, pp_error *err)
{
	ssize_t got = pp_pread_upto(rec->fd, buf, len, (off_t)rec->at);
	if (got < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot read the undo "
				     "record", rec->path);
	if ((size_t)got < len)
		return RECORD_INCOMPLETE;
	rec->at += len;
	rec->crc = pp_crc32(rec->crc, buf, len);
	return 0;
}

static int read_header(record *rec, pp_error *err)
{
	uint8_t header[JOURNAL_HEADER_SIZE];
	int status = read_record(rec, header, JOURNAL_MAGIC_SIZE, err);
	if (status)
		return status;
	if (memcmp(header, JOURNAL_MAGIC_V1, JOURNAL_MAGIC_SIZE) == 0)
		return RECORD_OLD_FORMAT;
	/* Anything else was never committed (a crash can leave zeros). */
	if (memcmp(header, JOURNAL_MAGIC, JOURNAL_MAGIC_SIZE) != 0)
		return RECORD_INCOMPLETE;
	status = read_record(rec, header + JOURNAL_MAGIC_SIZE,
			     sizeof header - JOURNAL_MAGIC_SIZE, err);
	if (status)
		return status;
	rec->size = pp_get_le64(header + 8);
	rec->device = pp_get_le64(header + 16);
	rec->inode = pp_get_le64(header + 24);
	rec->filesystem = pp_get_le64(header + 32);
	return 0;
}

/* Reads len bytes of an entry's old data into buf, piece by piece. */
static int skip_data(record *rec, uint8_t *buf, uint32_t len, pp_error *err)
{
	for (uint32_t done = 0; done < len;) {
		size_t piece = PP_MIN(len - done, JOURNAL_IO_SIZE);
		int status = read_record(rec, buf, piece, err);
		if (status)
			return status;
		done += (uint32_t)piece;
	}
	return 0;
}

/* After the end marker: the count, the hash of the ends, the CRC. */
static int read_trailer(record *rec, uint32_t count, pp_error *err)
{
	uint8_t hash[32], crc[4];
	int status = read_record(rec, hash, sizeof hash, err);
	uint32_t expected = rec->crc;
	if (status == 0)
		status = read_record(rec, crc, sizeof crc, err);
	if (status)
		return status;
	if (count != rec->count || pp_get_le32(crc) != expected)
		return RECORD_INCOMPLETE;
	memcpy(rec->ends, hash, sizeof hash);
	return RECORD_COMPLETE;
}

static int note_entry(record *rec, uint64_t foffset, uint32_t len,
		      pp_error *err)
{
	pp_range *entries = pp_grow(rec->entries, rec->count, &rec->capacity,
				    sizeof *entries, 64);
	if (!entries)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	rec->entries = entries;
	entries[rec->count++] = (pp_range){ foffset, len };
	if (rec->bad_entry == 0 &&
	    (foffset > rec->size || len > rec->size - foffset))
		rec->bad_entry = rec->count;
	return 0;
}

/* Reads the whole record: its state, and its entries into rec. */
static int parse_record(record *rec, pp_error *err)
{
	uint8_t *buf = malloc(JOURNAL_IO_SIZE);
	if (!buf)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	int status = read_header(rec, err);
	while (status == 0) {
		uint8_t entry[JOURNAL_ENTRY_SIZE];
		status = read_record(rec, entry, sizeof entry, err);
		if (status)
			break;
		uint64_t foffset = pp_get_le64(entry);
		uint32_t len = pp_get_le32(entry + 8);
		if (foffset == JOURNAL_END) {
			status = read_trailer(rec, len, err);
			break;
		}
		status = note_entry(rec, foffset, len, err);
		if (status == 0)
			status = skip_data(rec, buf, len, err);
	}
	free(buf);
	return status;
}

static const char *old_format_refusal =
	"%s: undo record %s is in the format of an older partpack "
	"(PPUNDO01), which does not say what file it belongs to: not "
	"replayed (remove it if the archive was replaced since)";

/* Whether the complete record rec was made for this archive (see the
 * binding at the top); PP_ERR_FORMAT saying why not. */
static int check_binding(const pp_archive *archive, const record *rec,
			 pp_error *err)
{
	const char *name = archive->path, *path = rec->path;
	pp_file_id id;
	int status = pp_archive_file_id(archive, &id, err);
	if (status)
		return status;
	if (rec->bad_entry)
		return pp_fail(err, PP_ERR_FORMAT, "%s: undo record %s: entry "
			       "%zu (%" PRIu64 "+%" PRIu64 ") lies past the "
			       "end of the archive it names (%" PRIu64 " bytes):"
			       " not replayed", name, path, rec->bad_entry,
			       rec->entries[rec->bad_entry - 1].offset,
			       rec->entries[rec->bad_entry - 1].length,
			       rec->size);
	bool both_files = (rec->device || rec->inode) &&
		(id.device || id.inode);
	if (both_files && (rec->inode != id.inode ||
			   (rec->device != id.device &&
			    (rec->filesystem == 0 ||
			     rec->filesystem != id.filesystem))))
		return pp_fail(err, PP_ERR_FORMAT, "%s: undo record %s was made "
			       "for another file (device %#" PRIx64 ", inode %"
			       PRIu64 "; this is %#" PRIx64 ", %" PRIu64 "): "
			       "not replayed (remove it if the archive was "
			       "replaced)", name, path, rec->device, rec->inode,
			       id.device, id.inode);
	if (rec->size != archive->file_size)
		return pp_fail(err, PP_ERR_FORMAT, "%s: undo record %s was made "
			       "for a file of %" PRIu64 " bytes, this one has %"
			       PRIu64 ": not replayed (remove it if the archive "
			       "was replaced)", name, path, rec->size,
			       archive->file_size);
	uint8_t ends[32];
	status = pp_journal_hash_ends(archive, rec->size, rec->entries,
				      rec->count, ends, err);
	if (status == 0 && memcmp(ends, rec->ends, sizeof ends) != 0)
		status = pp_fail(err, PP_ERR_FORMAT, "%s: undo record %s was made "
				 "for other contents (the bytes it does not "
				 "restore differ at the start or end of the "
				 "file): not replayed (remove it if the archive "
				 "was replaced)", name, path);
	return status;
}

/* Copies the old bytes of every entry back: a second pass over the
 * record, which must list the entries the first pass checked. */
static int apply_record(pp_archive *archive, record *rec, pp_error *err)
{
	uint8_t *buf = malloc(JOURNAL_IO_SIZE);
	if (!buf)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	rec->at = JOURNAL_HEADER_SIZE;
	int status = 0;
	for (size_t i = 0; status == 0 && i < rec->count; i++) {
		uint8_t entry[JOURNAL_ENTRY_SIZE];
		status = read_record(rec, entry, sizeof entry, err);
		uint64_t foffset = pp_get_le64(entry);
		uint64_t len = pp_get_le32(entry + 8);
		if (status == 0 && (foffset != rec->entries[i].offset ||
				    len != rec->entries[i].length))
			status = RECORD_INCOMPLETE;
		for (uint64_t done = 0; status == 0 && done < len;) {
			size_t piece = (size_t)PP_MIN(len - done, JOURNAL_IO_SIZE);
			status = read_record(rec, buf, piece, err);
			if (status == 0 && pp_archive_write(archive, buf, piece,
							    foffset + done))
				status = pp_fail_errno(err, PP_ERR_IO, "%s: write "
						       "error", archive->path);
			done += piece;
		}
	}
	if (status == RECORD_INCOMPLETE)
		status = pp_fail(err, PP_ERR_FORMAT, "%s: undo record %s changed "
				 "while it was replayed", archive->path,
				 rec->path);
	if (status == 0 && pp_archive_sync(archive))
		status = pp_fail_errno(err, PP_ERR_IO, "%s: sync failed",
				       archive->path);
	free(buf);
	return status;
}

/*
 * Opens the record at path if it is one this archive's patches could have
 * written: *fd is -1 when there is nothing there, and when what is there
 * is ignored (with a notice naming it and why).
 */
static int open_record(const pp_archive *archive, const char *path, int *fd,
		       pp_error *err)
{
	/* O_NONBLOCK: a FIFO planted there must not hang the open. */
	*fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (*fd < 0 && errno == ENOENT)
		return 0;  /* nothing pending */
	if (*fd < 0 && errno != ELOOP)
		return pp_fail_errno(err, PP_ERR_IO, "%s: cannot open the undo "
				     "record %s", archive->path, path);
	pp_file_id id;
	struct stat st;
	int status = pp_archive_file_id(archive, &id, err);
	if (status == 0 && *fd >= 0 && fstat(*fd, &st))
		status = pp_fail_errno(err, PP_ERR_IO, "%s", path);
	char why[100] = "";
	if (status == 0 && *fd < 0)
		snprintf(why, sizeof why, "is a symbolic link");
	else if (status == 0 && !S_ISREG(st.st_mode))
		snprintf(why, sizeof why, "is not a regular file");
	else if (status == 0 && st.st_nlink != 1)
		snprintf(why, sizeof why, "has %ju links", (uintmax_t)st.st_nlink);
	else if (status == 0 && st.st_uid != id.owner)
		snprintf(why, sizeof why, "belongs to uid %u, not to the "
			 "archive's owner (uid %" PRIu32 ")",
			 (unsigned)st.st_uid, id.owner);
	if (status || why[0]) {
		if (why[0])
			pp_notice("%s: ignoring %s, which %s: not an undo record "
				  "of this archive, never replayed", archive->path,
				  path, why);
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	return status;
}

/* What a read-only open says of a record it will not touch. */
static int refuse_pending(const pp_archive *archive, const char *path,
			  pp_error *err)
{
	return pp_fail(err, PP_ERR_RECOVERY_PENDING, "%s: an interrupted patch "
		       "is pending (undo record %s)", archive->path, path);
}

/* The state of the record: complete and bound (0), incomplete (1), or a
 * refusal; then, with may_write, the replay of a complete one. */
static int settle_record(pp_archive *archive, record *rec, bool may_write,
			 pp_error *err)
{
	int status = parse_record(rec, err);
	if (status == RECORD_OLD_FORMAT)
		return pp_fail(err, PP_ERR_FORMAT, old_format_refusal,
			       archive->path, rec->path);
	if (status == RECORD_COMPLETE)
		status = check_binding(archive, rec, err);
	if (status >= 0 && !may_write)
		return refuse_pending(archive, rec->path, err);
	if (status == RECORD_COMPLETE)
		status = apply_record(archive, rec, err);
	return status;
}

int pp_journal_recover(pp_archive *archive, bool may_write, bool *recovered,
		       pp_error *err)
{
	*recovered = false;
	const char *path = archive->undo_path;
	int fd = -1;
	int status = path ? open_record(archive, path, &fd, err) : 0;
	if (status || fd < 0)
		return status;
	record rec = { .path = path, .fd = fd };
	int dir_fd = pp_open_directory_of(path);
	if (dir_fd < 0)
		status = pp_fail_errno(err, PP_ERR_IO, "%s", path);
	if (status == 0)
		status = settle_record(archive, &rec, may_write, err);
	if (status == RECORD_INCOMPLETE)
		status = 0;  /* the archive holds its old bytes */
	if (status == 0) {
		status = remove_record(path, dir_fd, err);
		*recovered = status == 0;
		if (status == 0)
			pp_notice("%s: recovered from an interrupted patch: "
				  "the archive holds its contents from before "
				  "that patch", archive->path);
	}
	free(rec.entries);
	close(fd);
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

int pp_remove_stale_undo(const char *path, bool *removed, pp_error *err)
{
	*removed = false;
	char *record_path = pp_undo_path_beside(path);
	if (!record_path)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	struct stat st;
	int status = 0;
	if (lstat(record_path, &st) == 0) {
		int dir_fd = pp_open_directory_of(record_path);
		if (dir_fd < 0)
			status = pp_fail_errno(err, PP_ERR_IO, "%s", record_path);
		else
			status = remove_record(record_path, dir_fd, err);
		if (dir_fd >= 0)
			close(dir_fd);
		*removed = status == 0;
		if (status == 0)
			pp_notice("%s: removed %s, an undo record left by the "
				  "file this one replaced", path, record_path);
	} else if (errno != ENOENT) {
		status = pp_fail_errno(err, PP_ERR_IO, "%s", record_path);
	}
	free(record_path);
	return status;
}
