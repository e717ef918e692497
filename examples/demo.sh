#!/usr/bin/env bash
# examples/demo.sh BUILD_DIR - what `make demo` shows: build a GPT disk image
# in BUILD_DIR/demo/, pack it to .xz keeping partition 1 (/boot) raw, stamp a new
# /boot into the archive in place with partpatch, and show that stock xz
# still reads it and that it decodes to the image with the new /boot.
# Every command is printed before it runs.

set -u
set -o pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "usage: examples/demo.sh BUILD_DIR" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for t in partpack partpatch partinfo; do
	if [ ! -x "$build/$t" ]; then
		echo "demo: $build/$t is missing: run make first" >&2
		exit 1
	fi
done
export PATH="$build:$PATH"

# Beside the build, not in the source tree's top level.
demo=${1%/}/demo
rm -rf -- "$demo"
mkdir -p "$demo"
TESTDIR=$(cd "$demo" && pwd)
export TESTDIR
PP_LIB_TAP=0
# shellcheck source=tests/lib.sh
. "$srcdir/tests/lib.sh"

bold=""
plain=""
if [ -t 1 ]; then
	bold=$(printf '\033[1m')
	plain=$(printf '\033[0m')
fi

step() {
	echo
	echo "${bold}== $*${plain}"
}

# timed CMD...: runs CMD, keeps its time in LAST_SECS, stops the demo if
# it fails.
LAST_SECS=0
timed() {
	local t0=$EPOCHREALTIME
	"$@"
	local st=$?
	LAST_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	if [ $st -ne 0 ]; then
		echo "demo: that failed (exit status $st)" >&2
		exit 1
	fi
}

# run CMD...: prints the command, then runs it.
run() {
	echo "${bold}\$ $(_pp_quote "$@")${plain}"
	timed "$@"
}

# run_sh 'pipeline': the same for a shell pipeline.
run_sh() {
	echo "${bold}\$ $1${plain}"
	timed bash -o pipefail -c "$1"
}

human() {
	awk -v n="$1" 'BEGIN {
		split("B KiB MiB GiB", u); i = 1
		while (n >= 1024 && i < 4) { n /= 1024; i++ }
		printf(i == 1 ? "%d %s" : "%.1f %s", n, u[i]) }'
}

img=$demo/disk.img
step "1. A ${PP_IMG_SIZE_MIB} MiB GPT disk image, no root needed: sfdisk, then mkfs.ext4 -E offset= -d for each partition"
echo "\$ make_gpt_image $img        # tests/lib.sh"
make_gpt_image "$img" || { echo "demo: building the image failed" >&2; exit 1; }
run sfdisk -l "$img"
P1=$(part_offset "$img" 1)
S1=$(part_size "$img" 1)
SIZE=$(stat -c %s "$img")

step "2. Pack it, keeping partition 1 (/boot) as stored data"
run partpack -v -f --keep-raw part1 --block-size=1MiB "$img"
PACK_SECS=$LAST_SECS
run partinfo "$img.xz"
run_sh "xz -T0 -6 --block-size=1MiB -c $img > $demo/plain.xz    # for comparison"
XZ_SECS=$LAST_SECS

step "3. A new /boot filesystem, and the image we expect after stamping it"
echo "\$ make_boot_fs $demo/newboot.img $S1 boot        # tests/lib.sh"
make_boot_fs "$demo/newboot.img" "$S1" boot || { echo "demo: building newboot.img failed" >&2; exit 1; }
run cp --sparse=always "$img" "$demo/expected.img"
run dd if="$demo/newboot.img" of="$demo/expected.img" bs=1M seek="$P1" oflag=seek_bytes conv=notrunc status=none

step "4. Stamp it into a copy of the archive, in place"
run cp "$img.xz" "$demo/stamped.img.xz"
run partpatch "$demo/stamped.img.xz" --offset "$P1" --input "$demo/newboot.img"
PATCH_SECS=$LAST_SECS

step "5. Stock xz accepts the stamped archive, and it holds the new /boot"
run xz -t "$demo/stamped.img.xz"
echo "xz -t: OK"
run_sh "xzcat $demo/stamped.img.xz | cmp - $demo/expected.img"
echo "xzcat | cmp: identical to the image with the new /boot"
run partinfo --verify "$demo/stamped.img.xz"
VERIFY_SECS=$LAST_SECS
echo "partinfo --verify: every check matches"

step "Summary"
printf '  %-36s %10s\n' "image (apparent size)" "$(human "$SIZE")"
printf '  %-36s %10s\n' "image (allocated)" "$(human $(($(stat -c %b "$img") * 512)))"
printf '  %-36s %10s   %ss\n' "partpack, /boot kept raw" "$(human "$(stat -c %s "$img.xz")")" "$PACK_SECS"
printf '  %-36s %10s   %ss\n' "xz -T0 -6, all compressed" "$(human "$(stat -c %s "$demo/plain.xz")")" "$XZ_SECS"
printf '  %-36s %10s\n' "partition 1 (/boot), stored raw" "$(human "$S1")"
printf '  %-36s %10s   %ss\n' "partpatch of the new /boot" "$(human "$S1")" "$PATCH_SECS"
printf '  %-36s %10s   %ss\n' "partinfo --verify" "" "$VERIFY_SECS"
echo
echo "The files are in $demo/."
