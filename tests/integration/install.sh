# install.sh - make install honours PREFIX and DESTDIR, installs what it
# should (the nbdkit filter where nbdkit looks for filters, not under
# PREFIX, or where NBDKIT_FILTERDIR says), and a program builds against the
# installed library with pkg-config (examples/read-at.c) and reads an
# archive through it.  PP_TEST_CFLAGS: the flags the library was built
# with, if a program needs them too (the sanitizer build).

require_cmd make pkg-config cc partpack nbdkit

root=$TESTDIR/root
check "make install PREFIX=/opt/pp DESTDIR=..." \
	make -s -C "$PP_SRCDIR" O="$PARTPACK_BUILD" install PREFIX=/opt/pp DESTDIR="$root"
for f in bin/partpack bin/partpatch bin/partinfo bin/partcat lib/libpartpack.a \
	lib/libpartpack.so.0 lib/libpartpack.so include/partpack.h \
	lib/pkgconfig/partpack.pc share/man/man1/partpack.1 \
	share/man/man1/partpatch.1 share/man/man1/partinfo.1 \
	share/man/man1/partcat.1 share/man/man1/nbdkit-partpack-filter.1; do
	check "installed /opt/pp/$f" test -e "$root/opt/pp/$f"
done
# Where nbdkit itself looks: `nbdkit --filter=partpack` must find it.
filterdir=$(nbdkit --dump-config | sed -n 's/^filterdir=//p')
check "the filter is installed in nbdkit's filter directory ($filterdir)" \
	test -f "$root$filterdir/nbdkit-partpack-filter.so"
check "nothing else outside PREFIX, all of it inside DESTDIR" bash -c '
	cd "$1" && [ "$(find . -type f ! -path "./opt/pp/*")" = ".$2/nbdkit-partpack-filter.so" ]' \
	_ "$root" "$filterdir"
check "nbdkit loads the installed filter" \
	nbdkit_ --filter="$root$filterdir/nbdkit-partpack-filter.so" null --dump-plugin
check "make install NBDKIT_FILTERDIR=/opt/nbd-filters puts the filter there" \
	make -s -C "$PP_SRCDIR" O="$PARTPACK_BUILD" install PREFIX=/opt/pp \
	DESTDIR="$TESTDIR/root2" NBDKIT_FILTERDIR=/opt/nbd-filters
check "... and only there" bash -c '
	cd "$1" && [ "$(find . -type f ! -path "./opt/pp/*")" = "./opt/nbd-filters/nbdkit-partpack-filter.so" ]' \
	_ "$TESTDIR/root2"
rm -rf "$TESTDIR/root2"
check_eq "partpack.pc names the PREFIX" "prefix=/opt/pp" \
	"$(grep '^prefix=' "$root/opt/pp/lib/pkgconfig/partpack.pc")"
check "the installed partpack runs" "$root/opt/pp/bin/partpack" --version
check "man pages format without warnings" bash -c '
	for m in "$1"/*.1; do
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null) || exit 1
		[ -z "$out" ] || { echo "$m: $out"; exit 1; }
	done' _ "$root/opt/pp/share/man/man1"

export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$root/opt/pp/lib/pkgconfig
check "examples/read-at.c builds against the shared library with pkg-config" bash -c \
	'cc ${PP_TEST_CFLAGS:-} -o read-at "$1" $(pkg-config --cflags --libs partpack)' \
	_ "$PP_SRCDIR/examples/read-at.c"
# What partpack.pc lists for a static link is all the archive needs.
check "... and against the static library, with what pkg-config --static lists" bash -c \
	'cc ${PP_TEST_CFLAGS:-} -o read-at-static "$1" $(pkg-config --cflags partpack) "$2" \
	 $(pkg-config --libs --static partpack | sed "s/-lpartpack//")' \
	_ "$PP_SRCDIR/examples/read-at.c" "$root/opt/pp/lib/libpartpack.a"
export LD_LIBRARY_PATH=$root/opt/pp/lib
head -c 1048576 /dev/zero >img
printf 'EFI PART' | dd of=img bs=1 seek=512 conv=notrunc status=none
check "pack an image for it" partpack -q -1 --keep-raw 0+4KiB -o img.xz img
check_stdout_cmp "read-at prints the bytes and says they are patchable" <(cat <<'OUT'
000000000200  45 46 49 20 50 41 52 54  EFI PART
patchable in place: all of it is stored data
OUT
) ./read-at img.xz 512 8
check "the static build reads it too" ./read-at-static img.xz 512 8
check "neither build loads libguestfs to read" \
	bash -c '! ldd ./read-at ./read-at-static | grep -q libguestfs'
check "partpack.pc requires no libguestfs" \
	bash -c '! pkg-config --print-requires-private --libs --static partpack | grep -q guestfs'
for example in map random-read; do
	check "examples/$example.c builds against the installed library" bash -c \
		'cc ${PP_TEST_CFLAGS:-} -o "$2" "$1" $(pkg-config --cflags --libs partpack)' \
		_ "$PP_SRCDIR/examples/$example.c" "$example"
done
check_eq "map lists the stored 4 KiB, then zeros" "0 4096 stored|4096 1044480 zero" \
	"$(./map img.xz | cut -d' ' -f1-3 | paste -sd'|')"
