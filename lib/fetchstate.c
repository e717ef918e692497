/*
 * fetchstate.c - the partial output and its state file (fetchstate.h).
 *
 * The state file is text:
 *
 *     partcat-state 1 IDENTITY
 *     done BLOCK [CHECK]
 *     ...
 *
 * IDENTITY is the hex SHA-256 the caller makes of what the partial is a
 * copy of (the archive's location, size, validator and block table, and
 * what is written); a "done" line is appended after a block's bytes are in
 * the partial, with the hex XXH3-128 of those bytes.  Lines
 * are not synced: a line lost in a crash costs that block again, and a
 * line whose bytes were lost is caught when the next run verifies the
 * block before taking it.  Nothing in the file is trusted beyond that: the
 * numbers are bounded, anything malformed ends the list.
 */
#include "fetchstate.h"
#include "check.h"
#include "error.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* libxxhash's own code, inlined, as check.c has it. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define MAGIC "partcat-state 1 "
#define STATE_MAX ((size_t)64 << 20)

struct pp_fetch_state {
	char *out_path;
	char *partial_path;
	char *state_path;
	int state_fd;
	int partial_fd;
};

static void to_hex(const uint8_t *bytes, size_t len, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		hex[2 * i] = digits[bytes[i] >> 4];
		hex[2 * i + 1] = digits[bytes[i] & 15];
	}
	hex[2 * len] = '\0';
}

static int hex_value(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ?
		c - 'a' + 10 : -1;
}

/* Opens one of our files that is there: a regular file of ours with one
 * name, never through a symbolic link.  -1 with errno ENOENT if absent. */
static int open_ours(const char *path)
{
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_uid != geteuid()) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

static int create_ours(const char *path)
{
	return open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
}

/* Parses "done N [HEX]" lines after the first into done[]. */
static void parse_lines(const char *text, size_t block_count,
			pp_fetch_done *done)
{
	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		if (!end)
			break;   /* a line cut by a crash */
		unsigned long long block;
		char hex[2 * PP_CHECK_SIZE_MAX + 2] = "";
		int n = 0;
		if (sscanf(line, "done %llu %n", &block, &n) < 1 || n == 0 ||
		    block >= block_count)
			break;
		size_t len = (size_t)(end - (line + n));
		if (len % 2 || len > 2 * PP_CHECK_SIZE_MAX)
			break;
		memcpy(hex, line + n, len);
		pp_fetch_done *d = &done[block];
		d->check_len = len / 2;
		for (size_t i = 0; i < d->check_len; i++) {
			int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return;
			d->check[i] = (uint8_t)(hi << 4 | lo);
		}
		d->done = true;
		line = end + 1;
	}
}

/* Reads the state there: whether it is for identity, and what is done. */
static int read_state(pp_fetch_state *s, const char *identity_hex,
		      size_t block_count, pp_fetch_done *done, bool *same,
		      pp_error *err)
{
	struct stat st;
	*same = false;
	if (fstat(s->state_fd, &st))
		return pp_fail_errno(err, PP_ERR_IO, "%s", s->state_path);
	if ((uint64_t)st.st_size > STATE_MAX)
		return 0;
	char *text = malloc((size_t)st.st_size + 1);
	if (!text)
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	ssize_t got = pp_pread_upto(s->state_fd, text, (size_t)st.st_size, 0);
	text[got > 0 ? got : 0] = '\0';
	size_t head = strlen(MAGIC) + 64;
	if (got > 0 && strlen(text) > head && text[head] == '\n' &&
	    strncmp(text, MAGIC, strlen(MAGIC)) == 0 &&
	    strncmp(text + strlen(MAGIC), identity_hex, 64) == 0) {
		*same = true;
		parse_lines(text + head + 1, block_count, done);
	}
	free(text);
	return 0;
}

/* Starts both files afresh: the state's first line, the partial cut. */
static int start_afresh(pp_fetch_state *s, const char *identity_hex,
			uint64_t size, pp_error *err)
{
	char line[sizeof MAGIC + 66];
	int len = snprintf(line, sizeof line, "%s%s\n", MAGIC, identity_hex);
	if (ftruncate(s->state_fd, 0) ||
	    pp_pwrite_full(s->state_fd, line, (size_t)len, 0))
		return pp_fail_errno(err, PP_ERR_IO, "%s", s->state_path);
	if (s->partial_fd >= 0) {
		close(s->partial_fd);
		unlink(s->partial_path);
	}
	s->partial_fd = create_ours(s->partial_path);
	if (s->partial_fd < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", s->partial_path);
	if (ftruncate(s->partial_fd, (off_t)size))
		return pp_fail_errno(err, PP_ERR_IO, "%s", s->partial_path);
	return 0;
}

static void state_free(pp_fetch_state *s)
{
	if (s->state_fd >= 0)
		close(s->state_fd);   /* and its lock */
	if (s->partial_fd >= 0)
		close(s->partial_fd);
	free(s->out_path);
	free(s->partial_path);
	free(s->state_path);
	free(s);
}

/* Opens or creates the state file, locked; *fresh if it was created. */
static int take_state_file(pp_fetch_state *s, bool *fresh, pp_error *err)
{
	*fresh = false;
	s->state_fd = open_ours(s->state_path);
	if (s->state_fd < 0 && errno == ENOENT) {
		s->state_fd = create_ours(s->state_path);
		*fresh = true;
	}
	if (s->state_fd < 0)
		return pp_fail_errno(err, PP_ERR_IO, "%s", s->state_path);
	if (flock(s->state_fd, LOCK_EX | LOCK_NB))
		return errno == EWOULDBLOCK ?
			pp_fail(err, PP_ERR_BUSY, "%s: another partcat is "
				"writing it", s->out_path) :
			pp_fail_errno(err, PP_ERR_IO, "%s", s->state_path);
	/* A state file created by a run that then vanished before writing
	 * anything, and one from an older run, look alike: both are read. */
	return 0;
}

int pp_fetch_state_open(const char *out_path, const uint8_t identity[32],
			uint64_t size, size_t block_count,
			pp_fetch_state **out, int *partial_fd,
			pp_fetch_done **done, bool *resumed, pp_error *err)
{
	*out = NULL;
	*resumed = false;
	pp_fetch_state *s = calloc(1, sizeof *s);
	*done = calloc(block_count + 1, sizeof **done);
	if (!s || !*done) {
		free(s);
		free(*done);
		*done = NULL;
		return pp_fail(err, PP_ERR_NOMEM, "out of memory");
	}
	s->state_fd = s->partial_fd = -1;
	s->out_path = strdup(out_path);
	s->partial_path = pp_hidden_path_beside(out_path, "partcat-partial");
	s->state_path = pp_hidden_path_beside(out_path, "partcat-state");
	char identity_hex[65];
	to_hex(identity, 32, identity_hex);
	bool fresh = true, same = false;
	int status = s->out_path && s->partial_path && s->state_path ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 0)
		status = take_state_file(s, &fresh, err);
	if (status == 0 && !fresh)
		status = read_state(s, identity_hex, block_count, *done, &same,
				    err);
	if (status == 0 && same) {
		s->partial_fd = open_ours(s->partial_path);
		struct stat st;
		same = s->partial_fd >= 0 && fstat(s->partial_fd, &st) == 0 &&
			(uint64_t)st.st_size == size;
	}
	if (status == 0 && !same) {
		memset(*done, 0, (block_count + 1) * sizeof **done);
		if (!fresh)
			pp_notice("%s: what an earlier run left is of another "
				  "archive or another output: starting again",
				  out_path);
		if (s->partial_fd < 0 && access(s->partial_path, F_OK) == 0 &&
		    (s->partial_fd = open_ours(s->partial_path)) < 0)
			status = pp_fail_errno(err, PP_ERR_IO, "%s",
					       s->partial_path);
		if (status == 0)
			status = start_afresh(s, identity_hex, size, err);
	}
	if (status) {
		free(*done);
		*done = NULL;
		state_free(s);
		return status;
	}
	*resumed = same;
	*partial_fd = s->partial_fd;
	*out = s;
	return 0;
}

static void put_record(XXH128_hash_t hash, uint8_t *record)
{
	XXH128_canonical_t canonical;
	XXH128_canonicalFromHash(&canonical, hash);
	memcpy(record, canonical.digest, PP_FETCH_RECORD_SIZE);
}

void pp_fetch_record_of(const void *data, size_t len,
			uint8_t record[PP_FETCH_RECORD_SIZE])
{
	put_record(XXH3_128bits(data, len), record);
}

int pp_fetch_record_of_file(int fd, uint64_t at, uint64_t len,
			    uint8_t record[PP_FETCH_RECORD_SIZE], pp_error *err)
{
	enum { PIECE = 1 << 20 };
	XXH3_state_t *state = XXH3_createState();
	uint8_t *buf = malloc(PIECE);
	int status = state && buf ? 0 :
		pp_fail(err, PP_ERR_NOMEM, "out of memory");
	if (status == 0)
		XXH3_128bits_reset(state);
	for (uint64_t done = 0; status == 0 && done < len;) {
		size_t step = (size_t)PP_MIN((uint64_t)PIECE, len - done);
		if (pp_pread_full(fd, buf, step, at + done))
			status = pp_fail_errno(err, PP_ERR_IO, "partial output");
		else
			XXH3_128bits_update(state, buf, step);
		done += step;
	}
	if (status == 0)
		put_record(XXH3_128bits_digest(state), record);
	XXH3_freeState(state);
	free(buf);
	return status;
}

int pp_fetch_state_done(pp_fetch_state *s, size_t block, const uint8_t *check,
			size_t check_len, pp_error *err)
{
	char line[64 + 2 * PP_CHECK_SIZE_MAX];
	char hex[2 * PP_CHECK_SIZE_MAX + 1];
	to_hex(check, check_len, hex);
	int len = snprintf(line, sizeof line, "done %zu %s\n", block, hex);
	off_t end = lseek(s->state_fd, 0, SEEK_END);
	if (end < 0 || pp_pwrite_full(s->state_fd, line, (size_t)len,
				      (uint64_t)end))
		return pp_fail_errno(err, PP_ERR_IO, "%s", s->state_path);
	return 0;
}

int pp_fetch_state_commit(pp_fetch_state *s, bool force, pp_error *err)
{
	mode_t mask = umask(0);
	umask(mask);
	int status = 0;
	if (fchmod(s->partial_fd, 0666 & ~mask))
		status = pp_fail_errno(err, PP_ERR_IO, "%s", s->partial_path);
	int renamed = status ? -1 : force ?
		rename(s->partial_path, s->out_path) :
		renameat2(AT_FDCWD, s->partial_path, AT_FDCWD, s->out_path,
			  RENAME_NOREPLACE);
	if (status == 0 && renamed)
		status = errno == EEXIST ?
			pp_fail(err, PP_ERR_IO, "%s: already exists (use "
				"--force to overwrite)", s->out_path) :
			pp_fail_errno(err, PP_ERR_IO, "%s", s->out_path);
	if (status == 0)
		unlink(s->state_path);
	state_free(s);
	return status;
}

void pp_fetch_state_close(pp_fetch_state *s)
{
	if (s)
		state_free(s);
}

void pp_fetch_state_discard(pp_fetch_state *s)
{
	if (!s)
		return;
	unlink(s->partial_path);
	unlink(s->state_path);
	state_free(s);
}
