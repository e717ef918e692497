#!/usr/bin/env bash
# tests/bench-qemu.sh BUILD_DIR WORKDIR - images qemu reads, against raw
# ones and against qemu-img: one TSV row per measurement, printed as soon
# as it is measured,
#
#     row <TAB> ours <TAB> theirs <TAB> ratio <TAB> target
#
# with times in seconds and ratio = ours / theirs.  A measurement, not a
# test: nothing fails on a slow number (a pack that differs from the raw
# one does fail: the rows would compare different work).
#
#   pack qcow2/raw     partpack of a qcow2 of the bench image against
#                      partpack of the raw image (-T BENCH_THREADS, default
#                      2; level BENCH_LEVEL, default 6: 1 makes the reading
#                      weigh more); the outputs must be identical
#   pack sparse qcow2  an 8 GiB (BENCH_SPARSE_GIB) qcow2 holding 512 MiB
#                      (BENCH_SPARSE_DATA_MIB) of the bench image's bytes,
#                      against its raw sparse form
#   partcat -O qcow2   against xz -dc into a temporary raw file, then
#                      qemu-img convert -O qcow2 of it
#
# The bench image: a GPT disk of BENCH_IMG_MIB (default 1024) MiB, an ext4
# /boot of 128 MiB with the machine's /boot, and an ext4 root filled to
# about 80 % with real binaries, as tests/bench.sh builds it.  WORKDIR
# keeps the files (it is created; nothing is removed).
set -euo pipefail

build=$(cd "${1:?usage: tests/bench-qemu.sh BUILD_DIR WORKDIR}" && pwd)
srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${2:?usage: tests/bench-qemu.sh BUILD_DIR WORKDIR}
export PATH="$build:$PATH"
threads=${BENCH_THREADS:-2}
level=-${BENCH_LEVEL:-6}
img_mib=${BENCH_IMG_MIB:-1024}
boot_mib=${BENCH_BOOT_MIB:-128}
sparse_gib=${BENCH_SPARSE_GIB:-8}
sparse_data_mib=${BENCH_SPARSE_DATA_MIB:-512}
mkdir -p "$work"
cd "$work"
MIB=1048576

# timed VAR CMD...: CMD's wall time in seconds, into VAR.
timed() {
	local var=$1 t0=$EPOCHREALTIME
	shift
	"$@"
	printf -v "$var" '%s' "$(awk -v a="$t0" -v b="$EPOCHREALTIME" \
		'BEGIN { printf "%.3f", b - a }')"
}
row() {
	awk -v r="$1" -v a="$2" -v b="$3" -v t="$4" \
		'BEGIN { printf "%s\t%s\t%s\t%.3f\t%s\n", r, a, b, a / b, t }'
}

# ---- the bench image: tests/bench/image.sh's, and a qcow2 of it ---------------
echo "building a ${img_mib} MiB GPT image in $work ..." >&2
. "$srcdir/tests/bench/image.sh"
[ -s disk.img ] || build_image disk.img "$img_mib" "$boot_mib"
qemu-img convert -f raw -O qcow2 disk.img disk.qcow2
echo "image: $(stat -c %s disk.img) bytes, $(cat disk.img.used-mib) MiB of files" >&2

# ---- pack a qcow2 against the same image raw ----------------------------------
sync
timed t_raw partpack -q -f -T"$threads" "$level" --keep-raw part1 -o raw.xz disk.img
timed t_qcow2 partpack -q -f -T"$threads" "$level" --keep-raw part1 -o qcow2.xz disk.qcow2
cmp raw.xz qcow2.xz
row "pack qcow2/raw (${img_mib} MiB, identical)" "$t_qcow2" "$t_raw" "<= 1.1"

# ---- an 8 GiB qcow2 holding 512 MiB, against its raw sparse form ---------------
# The data: the bench image's bytes, in 64 MiB pieces spread over the disk.
rm -f sparse.raw
truncate -s "${sparse_gib}G" sparse.raw
pieces=$((sparse_data_mib / 64))
for ((i = 0; i < pieces; i++)); do
	dd if=disk.img of=sparse.raw bs=1M skip=$((i * 64 % img_mib)) \
		seek=$((i * sparse_gib * 1024 / pieces)) count=64 conv=notrunc,sparse \
		status=none
done
qemu-img convert -f raw -O qcow2 sparse.raw sparse.qcow2
sync
timed t_sraw partpack -q -f -T"$threads" "$level" -o sparse.raw.xz sparse.raw
timed t_sqcow2 partpack -q -f -T"$threads" "$level" -o sparse.qcow2.xz sparse.qcow2
cmp sparse.raw.xz sparse.qcow2.xz
row "pack sparse qcow2/raw (${sparse_gib} GiB, ${sparse_data_mib} MiB data)" \
	"$t_sqcow2" "$t_sraw" "<= 1.1"

# ---- partcat -O qcow2 against xz -dc and qemu-img convert -----------------------
rm -f out.qcow2 stock.qcow2 stock.raw
timed t_cat partcat -q -T"$threads" raw.xz -O qcow2 -o out.qcow2
stock() {
	xz -dc raw.xz >stock.raw
	qemu-img convert -f raw -O qcow2 stock.raw stock.qcow2
	rm -f stock.raw
}
timed t_stock stock
qemu-img compare -q -f qcow2 -F qcow2 out.qcow2 stock.qcow2
row "partcat -O qcow2 / xz -dc + qemu-img convert" "$t_cat" "$t_stock" "< 1"
