#!/usr/bin/env bash
# tests/bench-fsedit.sh BUILD_DIR WORKDIR - file stamps in process against
# the appliance, side by side in one run.  Prints one TSV row per figure:
#
#     row<TAB>ours<TAB>theirs<TAB>ratio<TAB>target
#
# (to be wired into `make bench`).  A measurement, not a test: nothing here
# fails on a slow number.
#
# The image: a 1 GiB GPT disk (BENCH_IMG_MIB) with an ext4 /boot of 128 MiB
# (BENCH_BOOT_MIB) holding the machine's /boot, kept raw, and an ext4 root
# holding BENCH_ROOT_MIB (200) MiB of /usr/bin and /usr/lib, packed at -1
# (the root's contents change nothing below: the stamps touch /boot only).
# WORKDIR keeps the image and the archive between runs (they are reused
# when present); BENCH_VARIANTS (50) variants, BENCH_APPLIANCE_RUNS (3)
# appliance stamps, extrapolated to the variants.  The appliance runs under
# TCG, as this machine needs.
set -euo pipefail

build=$(cd "${1:?usage: tests/bench-fsedit.sh BUILD_DIR WORKDIR}" && pwd)
work=${2:?usage: tests/bench-fsedit.sh BUILD_DIR WORKDIR}
export PATH="$build:$PATH"
export PARTPACK_NBDKIT_FILTER=${PARTPACK_NBDKIT_FILTER:-$build/nbdkit-partpack-filter.so}
img_mib=${BENCH_IMG_MIB:-1024}
boot_mib=${BENCH_BOOT_MIB:-128}
root_data_mib=${BENCH_ROOT_MIB:-200}
variants=${BENCH_VARIANTS:-50}
appliance_runs=${BENCH_APPLIANCE_RUNS:-3}
mkdir -p "$work"
cd "$work"
MIB=1048576

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }
timed() { # timed VAR CMD...: CMD's wall time in seconds into VAR
	local var=$1 start end
	shift
	start=$(now)
	"$@"
	end=$(now)
	printf -v "$var" '%.3f' "$(calc "$end - $start")"
}
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@"; }
changed_bytes() { (cmp -l "$1" "$2" || true) | wc -l; }

# ---- the image and its archive (reused when present) -------------------------
if [ ! -s pp.xz ] || [ ! -s disk.img ]; then
	echo "building a ${img_mib} MiB GPT image in $work ..." >&2
	root_start=$((1 + boot_mib))
	root_mib=$((img_mib - root_start - 1))
	rm -f disk.img pp.xz
	truncate -s "${img_mib}M" disk.img
	sfdisk -q --no-reread --no-tell-kernel disk.img >/dev/null <<EOF
label: gpt
unit: sectors
start=2048, size=$((boot_mib * 2048)), name="boot"
start=$((root_start * 2048)), size=$((root_mib * 2048)), name="root"
EOF
	rm -rf tree && mkdir -p tree/boot/grub tree/root/etc
	cp -rL /boot/. tree/boot/ 2>/dev/null || true
	printf 'LABEL=root / ext4 defaults 0 1\nLABEL=boot /boot ext4 defaults 0 2\n' >tree/root/etc/fstab
	used=0
	for dir in /usr/bin /usr/lib/x86_64-linux-gnu; do
		while IFS= read -r -d '' f; do
			s=$(stat -c %s "$f")
			[ $((used + s)) -lt $((root_data_mib * MIB)) ] || break 2
			mkdir -p "tree/root$(dirname "$f")"
			ln "$f" "tree/root$f" 2>/dev/null || cp "$f" "tree/root$f"
			used=$((used + s))
		done < <(find "$dir" -type f -print0 | sort -z)
	done
	mkfs.ext4 -q -F -L boot -E offset=$MIB -d tree/boot disk.img $((boot_mib * 1024))
	mkfs.ext4 -q -F -L root -E offset=$((root_start * MIB)) -d tree/root disk.img $((root_mib * 1024))
	rm -rf tree
	partpack -q -1 --block-size=16MiB --keep-raw part1 -o pp.xz disk.img
fi

# ---- one stamp of a 4 KiB grub.cfg, --output ------------------------------------
# About 4 KiB of text (no head -c on a pipe: SIGPIPE under pipefail).
head -c 3000 /dev/urandom >grub.bin
base64 -w 76 grub.bin >grub.cfg
stamp() { # stamp OUT [OPTION...]
	local out=$1
	shift
	rm -f "$out"
	partpatch -q pp.xz --partition part1 "$@" --mkdir /grub \
		--upload grub.cfg:/grub/grub.cfg --output "$out"
}
# The median of 5 in-process stamps (the machine is shared).
times=()
for i in 1 2 3 4 5; do
	timed t stamp ours.xz
	times+=("$t")
done
t_ours=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
xz -t ours.xz
b_ours=$(changed_bytes pp.xz ours.xz)
unset LIBGUESTFS_BACKEND_SETTINGS
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
timed t_app stamp app.xz --appliance
xz -t app.xz
b_app=$(changed_bytes pp.xz app.xz)
row "in-process stamp of a 4 KiB grub.cfg into the kept 128 MiB ext4 /boot of a ${img_mib} MiB image, --output, wall s (median of 5)" \
	"$t_ours" "$t_app" "$(calc "$t_ours / $t_app")" "<= 0.3 s"
row "... archive bytes changed" "$b_ours" "$b_app" \
	"$(calc "$b_ours / ($b_app > 0 ? $b_app : 1)")" "<= 262144"
rm -f ours.xz app.xz
# Where the time of --output goes without reflinks: the copy of the
# archive (cp, the floor here), and the same stamp in place.
cp pp.xz inplace.xz
timed t_inplace partpatch -q inplace.xz --partition part1 --mkdir /grub \
	--upload grub.cfg:/grub/grub.cfg
sync
timed t_cp cp --reflink=auto pp.xz copy.xz
rm -f inplace.xz copy.xz
row "... the same stamp in place (no --output), wall s" "$t_inplace" "" "" "<= 0.3 s"
row "... cp --reflink=auto of the archive alone ($(stat -c %s pp.xz) B), wall s" "$t_cp" "" "" ""

# ---- variants: a different grub.cfg and a 300 KiB file each -------------------
for ((i = 1; i <= variants; i++)); do
	head -c 3000 /dev/urandom >grub.bin
	{ echo "# variant $i"; base64 -w 76 grub.bin; } >"grub-$i.cfg"
	head -c 307200 /dev/urandom >"blob-$i"
done
variant() { # variant I [OPTION...]
	local i=$1
	shift
	partpatch -q pp.xz --partition part1 "$@" --mkdir /grub \
		--upload "grub-$i.cfg:/grub/grub.cfg" --upload "blob-$i:/blob" \
		--output "v-$i.xz"
}
t_all=0
for ((i = 1; i <= variants; i++)); do
	timed t variant "$i"
	t_all=$(calc "$t_all + $t")
	rm -f "v-$i.xz"  # a CI job uploads each and moves on
done
t_apps=0
for ((i = 1; i <= appliance_runs; i++)); do
	timed t variant "$i" --appliance
	t_apps=$(calc "$t_apps + $t")
	rm -f "v-$i.xz"
done
t_app50=$(calc "$t_apps * $variants / $appliance_runs")
row "$variants variants (each a 4 KiB grub.cfg and a 300 KiB file, --output), total wall s; theirs: $appliance_runs appliance stamps ($t_apps s) x $variants/$appliance_runs" \
	"$t_all" "$t_app50" "$(calc "$t_all / $t_app50")" ""
rm -f grub-*.cfg blob-* grub.bin
unset LIBGUESTFS_BACKEND_SETTINGS
