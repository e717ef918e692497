#!/usr/bin/env bash
# tests/bench.sh BUILD_DIR - partpack against xz -T, pigz and zstd -T, side
# by side in one run, on a realistic disk image.  Prints the table of issue 6 with
# measured ratios; it is a measurement, not a test: nothing here fails on a
# slow number.
#
# The image: a GPT disk of BENCH_IMG_MIB (default 1024) MiB with an ext4
# /boot of BENCH_BOOT_MIB (128) MiB holding the machine's /boot, and an ext4
# root filled with real binaries (/usr/bin, /usr/lib/x86_64-linux-gnu) up to
# about 80 % of the partition.  BENCH_THREADS (2), BENCH_VARIANTS (3),
# BENCH_READS (10000 random 4 KiB pp_preads), BENCH_COLD_READS (100 of them
# with no cache, each decoding a 16 MiB block).  A small run to try the
# script: BENCH_IMG_MIB=256 BENCH_BOOT_MIB=32 BENCH_VARIANTS=1 BENCH_SPARSE_GIB=1
# The nbdkit rows need the filter (nbdkit-plugin-dev), nbdkit, nbdcopy,
# qemu-io and guestfish.
# (BENCH_SPARSE_GIB: the sparse image's size, default 8).
# Work files go to BENCH_DIR (default: a temporary directory, removed).
set -euo pipefail

build=$(cd "${1:?usage: tests/bench.sh BUILD_DIR}" && pwd)
srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$build:$PATH"
threads=${BENCH_THREADS:-2}
img_mib=${BENCH_IMG_MIB:-1024}
boot_mib=${BENCH_BOOT_MIB:-128}
variants=${BENCH_VARIANTS:-3}
sparse_gib=${BENCH_SPARSE_GIB:-8}
work=${BENCH_DIR:-$(mktemp -d /var/tmp/partpack-bench.XXXXXX)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
cd "$work"
MIB=1048576

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }
# timed VAR CMD...: runs CMD, stores its wall time in seconds in VAR.
timed() {
	local var=$1 start end
	shift
	start=$(now)
	"$@"
	end=$(now)
	printf -v "$var" '%.3f' "$(calc "$end - $start")"
}
ratio() { printf '%.3f' "$(calc "$1 / $2")"; }
size_of() { stat -c %s "$1"; }

# ---- the image -------------------------------------------------------------
echo "building a ${img_mib} MiB GPT image in $work ..." >&2
root_start=$((1 + boot_mib))
root_mib=$((img_mib - root_start - 1))
truncate -s 0 disk.img
truncate -s "${img_mib}M" disk.img
sfdisk -q --no-reread --no-tell-kernel disk.img >/dev/null <<EOF
label: gpt
unit: sectors
start=2048, size=$((boot_mib * 2048)), name="boot"
start=$((root_start * 2048)), size=$((root_mib * 2048)), name="root"
EOF
rm -rf tree && mkdir -p tree/boot tree/root/etc tree/root/usr
cp -rL /boot/. tree/boot/ 2>/dev/null || true
printf 'LABEL=root / ext4 defaults 0 1\nLABEL=boot /boot ext4 defaults 0 2\n' >tree/root/etc/fstab
cp /etc/os-release tree/root/etc/
budget=$((root_mib * MIB * 8 / 10))
# Hard links make the copy instant; mkfs.ext4 -d reads the files.
used=0
for dir in /usr/bin /usr/lib/x86_64-linux-gnu /usr/share; do
	while IFS= read -r -d '' f; do
		s=$(stat -c %s "$f")
		[ $((used + s)) -lt "$budget" ] || break 2
		mkdir -p "tree/root$(dirname "$f")"
		ln "$f" "tree/root$f" 2>/dev/null || cp "$f" "tree/root$f"
		used=$((used + s))
	done < <(find "$dir" -type f -print0 | sort -z)
done
mkfs.ext4 -q -F -L boot -E offset=$MIB -d tree/boot disk.img $((boot_mib * 1024))
mkfs.ext4 -q -F -L root -E offset=$((root_start * MIB)) -d tree/root disk.img $((root_mib * 1024))
rm -rf tree
img_size=$(size_of disk.img)
echo "image: $img_size bytes, $((used / MIB)) MiB of files in root" >&2

# ---- pack to xz ---------------------------------------------------------------
timed t_xz xz -T"$threads" -6 --block-size=16MiB -k -c disk.img >stock.xz
timed t_pp partpack -q -T"$threads" -6 --block-size=16MiB --keep-raw part1 -o pp.xz disk.img
s_xz=$(size_of stock.xz)
s_pp=$(size_of pp.xz)
# The kept /boot is stored, so compare sizes also without it: pack the same
# image with nothing kept.
timed t_pp0 partpack -q -T"$threads" -6 --block-size=16MiB -o pp0.xz disk.img
s_pp0=$(size_of pp0.xz)
# The same pack writing a bmap too: its digests are computed on the workers.
timed t_ppb partpack -q -T"$threads" -6 --block-size=16MiB --keep-raw part1 \
	--bmap pp.bmap -o ppb.xz disk.img
cmp pp.xz ppb.xz
rm -f ppb.xz

# ---- pack to gz ---------------------------------------------------------------
timed t_pigz pigz -p "$threads" -6 -k -c disk.img >stock.gz
timed t_ppgz partpack -q -T"$threads" -6 --format=gzip -o pp0.gz disk.img
s_pigz=$(size_of stock.gz)
s_ppgz=$(size_of pp0.gz)
timed t_ppgzb partpack -q -T"$threads" -6 --format=gzip --bmap pp0.gz.bmap -o ppb.gz disk.img
rm -f ppb.gz pp0.gz.bmap

# zlib against libdeflate on the same blocks, for the gzip writer's choice.
deflate_table=$("$build/bench-deflate" disk.img $((root_start * MIB)))

# ---- pack to zstd, at -3 and -19 ------------------------------------------------
# Nothing kept, so the sizes compare the compression alone.  Both write to
# standard output: partpack -o syncs the file before renaming it into
# place, which at zstd's speed would weigh as much as compressing.
for level in 3 19; do
	timed "t_zst$level" zstd -q -T"$threads" -$level -k -c disk.img >stock$level.zst
	timed "t_ppzst$level" sh -c "partpack -q -T$threads -$level --format=zstd \
		--block-size=16MiB -c disk.img >pp$level.zst"
	printf -v "s_zst$level" '%s' "$(size_of stock$level.zst)"
	printf -v "s_ppzst$level" '%s' "$(size_of pp$level.zst)"
	rm -f stock$level.zst
done
zstd -qt pp3.zst
# Reading it back whole: partcat (when built) against stock zstd, both
# writing the image to a file.
if command -v partcat >/dev/null; then
	timed t_zcat sh -c 'zstd -qdc pp3.zst >cat.img'
	timed t_pcat sh -c "partcat -T$threads pp3.zst >cat.img"
	zstd_cat_row="| partcat -T$threads of partpack's .zst | ${t_pcat} s | zstd -dc: ${t_zcat} s | $(ratio "$t_pcat" "$t_zcat") | <= 0.6 |"
	rm -f cat.img
else
	zstd_cat_row="| partcat -T$threads of partpack's .zst | (no partcat) | | | <= 0.6 |"
fi

# ---- decoding partpack output with stock xz --------------------------------
timed t_d1 sh -c 'xz -T1 -dc pp0.xz >/dev/null'
timed t_d2 sh -c "xz -T$threads -dc pp0.xz >/dev/null"
# Both digests of partpack output against stock xz piped to sha256sum.
timed t_sum sh -c "xz -T$threads -dc pp.xz | sha256sum >stock.sum"
timed t_digest sh -c "partinfo -q --digest pp.xz >pp.sum"
[ "$(cut -d' ' -f1 stock.sum)" = "$(sed -n 's/^Image SHA-256: *//p' pp.sum)" ]

# ---- repacking a changed image with --reuse --------------------------------
# 1 MiB of new bytes among the root partition's files; the variant packed
# afresh and with --reuse of pp0.xz (the base image, same options).
cp --sparse=always disk.img changed.img
head -c $MIB /dev/urandom | dd of=changed.img bs=1M seek=$((root_start + root_mib / 4)) \
	conv=notrunc status=none
timed t_fresh partpack -q -T"$threads" -6 --block-size=16MiB -o changed.xz changed.img
timed t_reuse partpack -q -T"$threads" -6 --block-size=16MiB --reuse pp0.xz \
	-o changed.reuse.xz changed.img
if cmp -s changed.xz changed.reuse.xz; then reuse_same="bytes identical"; else reuse_same="BYTES DIFFER"; fi
rm -f changed.img changed.xz changed.reuse.xz

# ---- an 8 GiB sparse image holding 512 MiB of data --------------------------
truncate -s 0 sparse.img
truncate -s "${sparse_gib}G" sparse.img
for i in 0 1 2 3; do
	dd if=disk.img of=sparse.img bs=1M count=128 skip=$((root_start + i * 128)) \
		seek=$((i * sparse_gib * 256 + 100)) conv=notrunc status=none
done
timed t_sxz xz -T"$threads" -6 --block-size=16MiB -k -c sparse.img >sparse.stock.xz
timed t_spp partpack -q -T"$threads" -6 --block-size=16MiB -o sparse.pp.xz sparse.img
rm -f sparse.stock.xz
# The floor: the same 512 MiB of data packed on its own.
for i in 0 1 2 3; do
	dd if=sparse.img bs=1M count=128 skip=$((i * sparse_gib * 256 + 100)) status=none
done >data.img
timed t_data partpack -q -T"$threads" -6 --block-size=16MiB -o data.xz data.img
rm -f data.img data.xz

# ---- 1 MiB patch: 64 GiB image vs 1 GiB image ------------------------------
head -c $MIB /dev/urandom >patch.bin
for gib in 1 64; do
	truncate -s 0 big$gib.img
	truncate -s ${gib}G big$gib.img
	partpack -q -T"$threads" --keep-raw 512MiB+64MiB --bmap big$gib.bmap \
		-o big$gib.xz big$gib.img
	partpack -q -T"$threads" --keep-raw 512MiB+64MiB -o big$gib.zst big$gib.img
done
best_patch() { # best of 5 runs, in seconds; more partpatch options after
	local best=999 t i archive=$1
	shift
	for i in 1 2 3 4 5; do
		timed t partpatch "$archive" --offset 520MiB --input patch.bin "$@"
		best=$(calc "($t < $best) ? $t : $best")
	done
	printf '%.4f' "$best"
}
t_p1=$(best_patch big1.xz)
t_p64=$(best_patch big64.xz)
t_p64b=$(best_patch big64.xz --bmap big64.bmap)
xz -t big1.xz
t_pz1=$(best_patch big1.zst)
t_pz64=$(best_patch big64.zst)
zstd -qt big1.zst

# ---- stamping N variants ------------------------------------------------------
truncate -s 0 newboot.img
truncate -s "${boot_mib}M" newboot.img
mkdir -p nb && cp -rL /boot/. nb/ 2>/dev/null || true
echo variant >nb/STAMP
mkfs.ext4 -q -F -L boot -d nb newboot.img
rm -rf nb
t_stamp=0
for i in $(seq 1 "$variants"); do
	timed t partpatch pp.xz --partition part1 --input newboot.img --output v$i.xz
	t_stamp=$(calc "$t_stamp + $t")
done
xz -t v1.xz

# ---- reading: partcat and pp_pread ------------------------------------------
# Each unpack writes out.raw afresh; xz and pigz write sparse files too.
rm -f out.raw
timed t_xzcat sh -c "xz -T$threads -dc pp.xz >out.raw"
rm -f out.raw
timed t_catxz partcat -q -T"$threads" pp.xz -o out.raw
cmp out.raw disk.img
rm -f out.raw
timed t_pigzcat sh -c 'pigz -dc pp0.gz >out.raw'
rm -f out.raw
timed t_catgz partcat -q -T"$threads" pp0.gz -o out.raw
cmp out.raw disk.img
rm -f out.raw
timed t_dd dd if=disk.img of=boot.raw bs=1M skip=1 count="$boot_mib" status=none
rm -f boot.raw
timed t_catp1 partcat -q --partition part1 pp.xz -o boot.raw
rm -f boot.raw
# Peak RSS of partcat -T (KiB), measured by its parent.
rss_kib=$(python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' \
	partcat -q -T"$threads" pp.xz -o out.raw)
rm -f out.raw
rss_limit_kib=$(((threads + 2) * 16 * 1024 + 32 * 1024))
# Random 4 KiB pp_preads (examples/random-read, fixed seed): the whole
# image with a cache that holds it, warmed by one pass; stored data alone,
# and compressed data alone, with no cache (every read decodes its block).
rr=$build/examples/random-read
reads=${BENCH_READS:-10000}
cold_reads=${BENCH_COLD_READS:-100}
rate() { awk '{ print $NF == "reads/s" ? $(NF - 1) : "?" }'; }
r_warm=$("$rr" --cache 4GiB --warm pp.xz "$reads" | rate)
r_stored=$("$rr" --only stored --cache 0 pp.xz "$reads" | rate)
r_cold=$("$rr" --only data --cache 0 pp.xz "$cold_reads" | rate)

# ---- the archive as a disk: nbdkit's partpack filter against its xz filter --
# Both serve pp.xz read-only from the file plugin.  The whole image with
# nbdcopy (which skips what block status calls holes); then random 4 KiB
# reads in one qemu-io session each, with caches that hold the whole image
# on both sides (xz-max-depth counts 16 MiB blocks), so that both decode
# each block once and the rest is serving.
filter=$build/nbdkit-partpack-filter.so
rm -f out.raw
timed t_nbdxz nbdkit -U - -r file pp.xz --filter=xz --run 'nbdcopy "$uri" out.raw'
rm -f out.raw
timed t_nbdpp nbdkit -U - -r file pp.xz --filter="$filter" --run 'nbdcopy "$uri" out.raw'
cmp out.raw disk.img
rm -f out.raw
python3 -c '
import random, sys
rng, blocks, n = random.Random(1), int(sys.argv[1]) // 4096, int(sys.argv[2])
for _ in range(n):
    print("read -q %d 4k" % (rng.randrange(blocks) * 4096))' "$img_size" "$reads" >reads.qemu-io
depth=$(( (img_size + 16 * MIB - 1) / (16 * MIB) ))
timed t_rndxz nbdkit -U - -r file pp.xz --filter=xz xz-max-depth="$depth" \
	--run 'qemu-io -r -f raw "$uri" <reads.qemu-io >/dev/null'
timed t_rndpp nbdkit -U - -r file pp.xz --filter="$filter" partpack-cache="$img_size" \
	--run 'qemu-io -r -f raw "$uri" <reads.qemu-io >/dev/null'
# A file-level stamp: a 4 KiB grub.cfg into the kept /boot of a copy, one
# appliance launch (under TCG, as this machine needs) against a launch alone.
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg PARTPACK_NBDKIT_FILTER=$filter
timed t_launch guestfish -a /dev/null run
head -c 4096 /dev/urandom | base64 -w 76 | head -c 4096 >grub.cfg
cp pp.xz stamp.xz
timed t_fstamp partpatch -q stamp.xz --partition part1 --mkdir /grub \
	--upload grub.cfg:/grub/grub.cfg
xz -t stamp.xz
stamp_bytes=$( (cmp -l pp.xz stamp.xz || true) | wc -l)
rm -f stamp.xz
unset LIBGUESTFS_BACKEND_SETTINGS

# ---- report -------------------------------------------------------------------
cat <<EOF

partpack $(partpack --version | awk '{print $3}') on $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d)
image: ${img_mib} MiB GPT disk, /boot ${boot_mib} MiB kept raw, root with $((used / MIB)) MiB of binaries

| what | partpack | against | ratio | target |
|---|---|---|---|---|
| pack to xz -6, 16 MiB blocks, -T$threads (nothing kept) | ${t_pp0} s, $s_pp0 B | xz: ${t_xz} s, $s_xz B | time $(ratio "$t_pp0" "$t_xz"), size $(ratio "$s_pp0" "$s_xz") | <= 1.0, <= 1.005 |
| the same keeping /boot raw | ${t_pp} s, $s_pp B | | time $(ratio "$t_pp" "$t_xz"), size $(ratio "$s_pp" "$s_xz") | |
| pack to gz -6, -T$threads | ${t_ppgz} s, $s_ppgz B | pigz -p$threads: ${t_pigz} s, $s_pigz B | time $(ratio "$t_ppgz" "$t_pigz"), size $(ratio "$s_ppgz" "$s_pigz") | <= 0.8, <= 1.01 |
| stock xz -T$threads -d of partpack output | ${t_d2} s | xz -T1 -d: ${t_d1} s | $(ratio "$t_d2" "$t_d1") | <= 0.7 |
| repack with 1 MiB changed in root, --reuse of the first pack | ${t_reuse} s | fresh partpack: ${t_fresh} s | time $(ratio "$t_reuse" "$t_fresh"), $reuse_same | <= 0.1, identical |
| pack ${sparse_gib} GiB sparse image, 512 MiB data | ${t_spp} s | xz: ${t_sxz} s | $(ratio "$t_spp" "$t_sxz") | <= 0.25 |
| ... against packing its 512 MiB of data alone | ${t_spp} s | partpack: ${t_data} s | $(ratio "$t_spp" "$t_data") | about 1 |
| 1 MiB partpatch, 64 GiB image (best of 5; includes verifying the touched 16 MiB block's check, one block read) | ${t_p64} s | 1 GiB image: ${t_p1} s | $(ratio "$t_p64" "$t_p1") | <= 1.5, < 0.1 s |
| ... with --bmap (into a hole: maps it) | ${t_p64b} s | without: ${t_p64} s | $(ratio "$t_p64b" "$t_p64") | < 0.1 s |
| partpack --bmap, xz as above keeping /boot | ${t_ppb} s | without: ${t_pp} s | $(ratio "$t_ppb" "$t_pp") | <= 1.05 |
| partpack --bmap, gz as above | ${t_ppgzb} s | without: ${t_ppgz} s | $(ratio "$t_ppgzb" "$t_ppgz") | <= 1.05 |
| partinfo --digest (image and file) | ${t_digest} s | xz -T$threads -dc \| sha256sum: ${t_sum} s | $(ratio "$t_digest" "$t_sum") | <= 0.7 |
| pack to zstd -3, 16 MiB blocks, -T$threads (nothing kept) | ${t_ppzst3} s, $s_ppzst3 B | zstd -T$threads -3: ${t_zst3} s, $s_zst3 B | time $(ratio "$t_ppzst3" "$t_zst3"), size $(ratio "$s_ppzst3" "$s_zst3") | <= 1.0, <= 1.03 |
| pack to zstd -19, the same | ${t_ppzst19} s, $s_ppzst19 B | zstd -T$threads -19: ${t_zst19} s, $s_zst19 B | time $(ratio "$t_ppzst19" "$t_zst19"), size $(ratio "$s_ppzst19" "$s_zst19") | <= 1.0, <= 1.03 |
$zstd_cat_row
| 1 MiB partpatch, 64 GiB .zst (best of 5) | ${t_pz64} s | 1 GiB .zst: ${t_pz1} s | $(ratio "$t_pz64" "$t_pz1") | <= 1.5 |
| stamp $variants variants (pack once + $variants partpatch --output) | $(calc "$t_pp + $t_stamp") s | $variants x xz: $(calc "$variants * $t_xz") s | $(ratio "$(calc "$t_pp + $t_stamp")" "$(calc "$variants * $t_xz")") | |
| partcat -T$threads of the .xz (/boot kept) -o out.raw | ${t_catxz} s | xz -T$threads -dc > out.raw: ${t_xzcat} s | $(ratio "$t_catxz" "$t_xzcat") | <= 0.6 |
| partcat -T$threads of the .gz -o out.raw | ${t_catgz} s | pigz -dc > out.raw: ${t_pigzcat} s | $(ratio "$t_catgz" "$t_pigzcat") | <= 0.4 |
| partcat --partition part1 (stored /boot) | ${t_catp1} s | dd from the raw image: ${t_dd} s | $(ratio "$t_catp1" "$t_dd") | <= 1.5 |
| peak RSS of partcat -T$threads | $rss_kib KiB | (threads + 2) x 16 MiB + 32 MiB: $rss_limit_kib KiB | $(ratio "$rss_kib" "$rss_limit_kib") | < 1 |
| random 4 KiB pp_preads, warm cache, whole image | $r_warm reads/s | | | |
| ... stored data, no cache | $r_stored reads/s | compressed data, no cache: $r_cold reads/s | $(ratio "$r_stored" "$r_cold") | >= 20 |
| whole image through nbdkit --filter=partpack, nbdcopy | ${t_nbdpp} s | --filter=xz: ${t_nbdxz} s | $(ratio "$t_nbdpp" "$t_nbdxz") | <= 0.5 |
| $reads random 4 KiB reads through --filter=partpack, qemu-io (throughput) | ${t_rndpp} s | --filter=xz: ${t_rndxz} s | $(ratio "$t_rndxz" "$t_rndpp") | >= 1 |
| file-level stamp of a 4 KiB grub.cfg (partpatch --upload, one launch) | ${t_fstamp} s, $stamp_bytes archive bytes changed | one appliance launch: ${t_launch} s | +$(calc "$t_fstamp - $t_launch") s | <= launch + 2 s, <= 1 MiB |

(The $variants x xz column is $variants times the xz time measured above on the same image:
the variants differ only in /boot, so each would compress in the same time.)

Raw deflate of 8 blocks of 16 MiB from the root partition, zlib against libdeflate:

$deflate_table
EOF
