# abi.sh - issue 11: libpartpack.so.0 exports exactly the functions of
# partpack.h, all under the version node PARTPACK_0.1, and nothing else
# (no internal pp_ function, no test hook); a program built against the
# header and the shared library sees the header's version at run time; and
# libguestfs is loaded only when a selector needs it.

require_cmd nm cc python3 grep ldd partpack

LIB=$PARTPACK_BUILD/libpartpack.so.0
HEADER=$PP_SRCDIR/lib/partpack.h

# The functions partpack.h declares, from the preprocessed header so that
# a declaration over several lines counts: a name followed by "(" (a
# function pointer type, "(*name)(", has ")" after its name).
cc -E -P "$HEADER" | python3 -c '
import re, sys
text = sys.stdin.read()
names = set(re.findall(r"\b(pp_\w+)\s*\(", text))
print("\n".join(sorted(names)))' >declared.txt
nm -D --defined-only "$LIB" >nm.txt
# The version node itself is an absolute symbol; every other is code or data.
grep -v ' A PARTPACK_0\.1$' nm.txt | awk '{ print $3 }' | sort >exported-versioned.txt
sed 's/@.*//' exported-versioned.txt | sort >exported.txt

check "partpack.h declares functions (found $(wc -l <declared.txt))" \
	test "$(wc -l <declared.txt)" -ge 20
check "... pp_version among them" grep -qx pp_version declared.txt
missing=$(comm -23 declared.txt exported.txt | tr '\n' ' ')
extra=$(comm -13 declared.txt exported.txt | tr '\n' ' ')
check_eq "every function of partpack.h is exported (missing: ${missing:-none})" "" "$missing"
check_eq "nothing else is exported (extra: ${extra:-none})" "" "$extra"
check_eq "every export is versioned PARTPACK_0.1" "" \
	"$(grep -v '@@PARTPACK_0\.1$' exported-versioned.txt | tr '\n' ' ')"
check "the version node PARTPACK_0.1 is defined" grep -q ' A PARTPACK_0\.1$' nm.txt
check "no test hook in the library or the tools" \
	bash -c '! grep -l PARTPACK_FAULT_AFTER "$@"' _ "$LIB" \
	"$PARTPACK_BUILD/partpack" "$PARTPACK_BUILD/partpatch" "$PARTPACK_BUILD/partinfo"
# The portable SHA-256 is tested through the static library (test-sha256),
# not by an environment variable the shipped library would read.
check_eq "the library reads no PARTPACK_ variable" "" \
	"$(grep -a -o 'PARTPACK_[A-Z][A-Z_]*' "$LIB" | sort -u | tr '\n' ' ')"

# A program linked with the shared library: the runtime version is the
# header's, and the public open flags are all pp_open takes.
cat >version.c <<'C'
#include <partpack.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	pp_archive *archive;
	int same = strcmp(pp_version(), PP_VERSION) == 0 &&
		pp_version_number() == PP_VERSION_NUMBER;
	int refused = pp_open("/nonexistent", 4, &archive, NULL) == PP_ERR_USAGE;
	printf("%s %d %d\n", pp_version(), same, refused);
	return !(same && refused);
}
C
check "a program builds against partpack.h and libpartpack.so.0" \
	cc ${PP_TEST_CFLAGS:-} -I"$PP_SRCDIR/lib" -o version version.c \
	"$LIB" -Wl,-rpath,"$PARTPACK_BUILD"
check_eq "... and sees the header's version at run time; pp_open refuses flag 4" \
	"$(sed -n 's/^#define PP_VERSION "\(.*\)"$/\1/p' "$HEADER") 1 1" \
	"$(./version)"

# ---- libguestfs: loaded when a selector needs it, not linked ----------------
for f in "$LIB" ./version "$PARTPACK_BUILD/partpack" "$PARTPACK_BUILD/partinfo" \
	"$PARTPACK_BUILD/partpatch"; do
	check "ldd ${f##*/}: no libguestfs" bash -c '! ldd "$1" | grep -q libguestfs' _ "$f"
done
check "... but the library is not blind to it: it names libguestfs.so.0" \
	grep -q 'libguestfs\.so\.0' "$LIB"

# Without libguestfs, byte ranges and partitions still work and a selector
# that needs it fails with one line naming the package.  "Without" is a
# libguestfs.so.0 earlier on the search path that is not a library, or one
# that lacks the functions.
head -c 1048576 /dev/zero >img
mkdir -p broken empty
: >broken/libguestfs.so.0
echo 'int unrelated;' >empty.c
cc -shared -fPIC -o empty/libguestfs.so.0 empty.c
for dir in broken empty; do
	check "$dir libguestfs: byte ranges still pack" \
		env LD_LIBRARY_PATH=$dir partpack -q -1 --keep-raw 0+4KiB -o img-$dir.xz img
	check_fails "$dir libguestfs: label:boot fails with status 1" 1 \
		env LD_LIBRARY_PATH=$dir partpack -q --keep-raw label:boot -o lab-$dir.xz img
	check "... saying it needs the package libguestfs0" \
		grep -q "needs libguestfs (Debian package libguestfs0)" <<<"$CHECK_STDERR"
	check "... and writing nothing" test ! -e lab-$dir.xz
done
