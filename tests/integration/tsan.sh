# tsan.sh - the library under ThreadSanitizer: tests/unit/test-threads.c
# (handles of one archive made with pp_dup, read by several threads while
# pp_extract's workers decode) built with -fsanitize=thread from the
# sources, so that a data race on what the handles share fails the test
# even where the bytes come out right.  About 15 s on two cores, most of
# it compiling.

require_cmd cc pkg-config
if [ -n "${PP_TEST_CFLAGS:-}" ]; then
	skip "ThreadSanitizer build" "not in the sanitizer run (ASan and TSan do not mix)"
	exit 0
fi
src=$PP_SRCDIR
# The packages the GNUmakefile builds with (PKGS): every lib/*.c is linked.
pkgs=$(sed -n 's/^PKGS := //p' "$src/GNUmakefile")
flags="-std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -pthread -O1 -g -fsanitize=thread -I$src/lib $(pkg-config --cflags $pkgs libguestfs 2>/dev/null)"
mkdir -p obj
# shellcheck disable=SC2086  # flags is a list
if printf '%s\n' "$src"/lib/*.c "$src"/tests/unit/test-threads.c |
	xargs -P 2 -I{} sh -c 'cc '"$flags"' -c -o obj/$(basename {} .c).o {}' 2>cc.err &&
	cc -fsanitize=thread -pthread -o test-threads obj/*.o \
		$(pkg-config --libs $pkgs) -ldl 2>>cc.err; then
	ok "built with -fsanitize=thread"
else
	bail "the ThreadSanitizer build failed: $(head -n 5 cc.err)"
fi
TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" ./test-threads >tsan.out 2>tsan.err
status=$?
if [ $status -eq 0 ]; then
	ok "test-threads under ThreadSanitizer: no data race ($(grep -c '^ok' tsan.out) checks pass)"
else
	not_ok "test-threads under ThreadSanitizer: exit status $status" \
		"$(grep -v '^ok' tsan.out)" "$(head -n 40 tsan.err)"
fi
