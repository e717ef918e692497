/* test-api.c - the public interface's promises that need no archive:
 * statuses and their names, the version, the open flags a caller may pass,
 * and handlers that threads may set and use at the same time. */
#include "archive.h"
#include "error.h"
#include "unit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static void test_status_names(void)
{
	static const int statuses[] = {
		PP_OK, PP_ERR_USAGE, PP_ERR_IO, PP_ERR_FORMAT,
		PP_ERR_NOT_STORED, PP_ERR_NOMEM, PP_ERR_LOCATE, PP_ERR_CHECK,
		PP_ERR_BUSY, PP_ERR_RECOVERY_PENDING, PP_ERR_INTERNAL,
		PP_ERR_REUSE,
	};
	size_t n = sizeof statuses / sizeof *statuses;
	bool named = true, distinct = true;
	for (size_t i = 0; i < n; i++) {
		const char *name = pp_strerror(statuses[i]);
		named &= name && *name && strcmp(name, "unknown status") != 0;
		for (size_t j = 0; j < i; j++)
			distinct &= strcmp(name, pp_strerror(statuses[j])) != 0;
	}
	CHECK(named, "pp_strerror names every status");
	CHECK(distinct, "... each differently");
	CHECK(strcmp(pp_strerror(-99), "unknown status") == 0 &&
	      strcmp(pp_strerror(1), "unknown status") == 0,
	      "... and says \"unknown status\" for others");
	CHECK(PP_ERR_RECOVERY_PENDING != PP_ERR_IO &&
	      PP_ERR_INTERNAL != PP_ERR_USAGE,
	      "recovery pending and internal errors have their own statuses");
}

static void test_version(void)
{
	char text[32];
	snprintf(text, sizeof text, "%u.%u.%u", PP_VERSION_MAJOR,
		 PP_VERSION_MINOR, PP_VERSION_PATCH);
	CHECK(strcmp(text, PP_VERSION) == 0,
	      "PP_VERSION %s agrees with its parts", PP_VERSION);
	CHECK(strcmp(pp_version(), PP_VERSION) == 0,
	      "pp_version() is the header's %s", PP_VERSION);
	CHECK(pp_version_number() == PP_VERSION_NUMBER &&
	      PP_VERSION_NUMBER == PP_VERSION_MAJOR * 1000000u +
	      PP_VERSION_MINOR * 1000u + PP_VERSION_PATCH,
	      "pp_version_number() is the header's %u", PP_VERSION_NUMBER);
}

static void test_open_flags(void)
{
	/* The flags are checked before the path is touched. */
	pp_archive *archive = (pp_archive *)&archive;
	pp_error err;
	int status = pp_open("/nonexistent", PP_OPEN_WRITE | 4, &archive, &err);
	CHECK(status == PP_ERR_USAGE && err.status == PP_ERR_USAGE &&
	      archive == NULL && strstr(err.message, "flags"),
	      "pp_open refuses an unknown flag bit: %s", err.message);
	CHECK(pp_open("/nonexistent", PP_OPEN_PRIVATE, &archive, NULL) ==
	      PP_ERR_USAGE, "... and the internal PP_OPEN_PRIVATE");
	CHECK(pp_open("/nonexistent", PP_OPEN_WRITE | PP_OPEN_NO_WAIT, &archive,
		      NULL) == PP_ERR_IO, "... but takes the public ones");
}

static void test_options_init(void)
{
	pp_pack_options options;
	memset(&options, 0xa5, sizeof options);
	pp_pack_options_init(&options);
	bool zero = true;
	for (size_t i = 0; i < sizeof options.reserved_int / 8; i++)
		zero &= options.reserved_int[i] == 0;
	for (size_t i = 0; i < sizeof options.reserved_ptr / sizeof (void *); i++)
		zero &= options.reserved_ptr[i] == NULL;
	CHECK(zero, "pp_pack_options_init zeroes the reserved room");
}

/*
 * Two handlers, each with its own opaque: one thread swaps them while
 * others report.  A handler must always see its own opaque (the pair is
 * set as one), and once the swap back to NULL returns, no call runs.
 */
static int opaque_a, opaque_b;
static atomic_long calls, mismatches, running;

static void handler_a(void *opaque, const char *message)
{
	atomic_fetch_add(&running, 1);
	mismatches += opaque != &opaque_a || strcmp(message, "n 7") != 0;
	calls++;
	atomic_fetch_sub(&running, 1);
}

static void handler_b(void *opaque, const char *message)
{
	atomic_fetch_add(&running, 1);
	mismatches += opaque != &opaque_b || strcmp(message, "n 7") != 0;
	calls++;
	atomic_fetch_sub(&running, 1);
}

static void progress_a(void *opaque, uint64_t done, uint64_t total)
{
	mismatches += opaque != &opaque_a || done != 1 || total != 2;
	calls++;
}

static atomic_bool stop;

static void *reporter(void *unused)
{
	(void)unused;
	while (!stop) {
		pp_notice("n %d", 7);
		pp_progress(1, 2);
	}
	return NULL;
}

static void test_handlers(void)
{
	pthread_t threads[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&threads[i], NULL, reporter, NULL);
	/* However the threads are scheduled, until both kinds of call ran. */
	for (long i = 0; i < 20000 || calls < 20000; i++) {
		pp_set_notice_handler(i % 2 ? handler_a : handler_b,
				      i % 2 ? &opaque_a : &opaque_b);
		pp_set_progress_handler(i % 3 ? progress_a : NULL, &opaque_a);
	}
	pp_set_notice_handler(NULL, NULL);
	long left_running = running;
	stop = true;
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
	pp_set_progress_handler(NULL, NULL);
	CHECK(calls > 0 && mismatches == 0,
	      "handlers set while two threads report: %ld calls, each with "
	      "its own opaque (%ld mismatches)", (long)calls, (long)mismatches);
	CHECK(left_running == 0,
	      "... and none runs once the handler is removed");
}

/* One classifier for every selector: what resolves it. */
static void test_selector_kinds(void)
{
	static const struct {
		const char *selector;
		enum pp_selector_kind kind;
	} cases[] = {
		{ "1MiB+8MiB", PP_SELECTOR_BYTES }, { "0:4096", PP_SELECTOR_BYTES },
		{ "1M+x", PP_SELECTOR_BYTES },   /* refused when resolved */
		{ "part1", PP_SELECTOR_TABLE }, { "/dev/sda2", PP_SELECTOR_TABLE },
		{ "/dev/vda1", PP_SELECTOR_TABLE },
		{ "name:boot", PP_SELECTOR_TABLE },
		{ "/boot", PP_SELECTOR_MOUNTPOINT }, { "/", PP_SELECTOR_MOUNTPOINT },
		{ "/dev/sdb1", PP_SELECTOR_DEVICE },
		{ "/dev/mapper/vg-root", PP_SELECTOR_DEVICE },
		{ "label:boot", PP_SELECTOR_LABEL },
		{ "uuid:0b0a", PP_SELECTOR_LABEL },
		{ "part0", PP_SELECTOR_INVALID }, { "name:", PP_SELECTOR_INVALID },
		{ "label:", PP_SELECTOR_INVALID }, { "/dev/", PP_SELECTOR_INVALID },
		{ "boot", PP_SELECTOR_INVALID }, { "", PP_SELECTOR_INVALID },
	};
	size_t wrong = 0;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		enum pp_selector_kind kind =
			pp_classify_selector(cases[i].selector);
		if (kind != cases[i].kind) {
			printf("# %s: kind %d, expected %d\n", cases[i].selector,
			       kind, cases[i].kind);
			wrong++;
		}
	}
	CHECK(wrong == 0, "pp_classify_selector: bytes, table, label, mountpoint, "
	      "device, invalid "
	      "(%zu wrong)", wrong);
}

int main(void)
{
	test_status_names();
	test_version();
	test_open_flags();
	test_options_init();
	test_handlers();
	test_selector_kinds();
	return unit_done();
}
