# tests/bench/image.sh - the inputs the rows share, each made once.
#
# The bench image: a GPT disk of BENCH_IMG_MIB (512) MiB with an ext4
# /boot of BENCH_BOOT_MIB (128) MiB holding the machine's /boot, and an
# ext4 root filled with real binaries (/usr/bin, /usr/lib/x86_64-linux-gnu,
# /usr/share) up to about 80 % of the partition.

build_image() { # build_image FILE IMG_MIB BOOT_MIB
	local out=$1 img_mib=$2 boot_mib=$3 root_start root_mib budget used=0 f s
	root_start=$((1 + boot_mib))
	root_mib=$((img_mib - root_start - 1))
	truncate -s 0 "$out.tmp"
	truncate -s "${img_mib}M" "$out.tmp"
	# (`once` runs this in a condition, where set -e does not act: every
	# step that can fail says so itself.)
	sfdisk -q --no-reread --no-tell-kernel "$out.tmp" >/dev/null <<EOF || return 1
label: gpt
unit: sectors
start=2048, size=$((boot_mib * 2048)), name="boot"
start=$((root_start * 2048)), size=$((root_mib * 2048)), name="root"
EOF
	rm -rf tree && mkdir -p tree/boot tree/root/etc tree/root/usr tree/root/bin
	cp -rL /boot/. tree/boot/ 2>/dev/null || true
	printf 'LABEL=root / ext4 defaults 0 1\nLABEL=boot /boot ext4 defaults 0 2\n' \
		>tree/root/etc/fstab
	cp /etc/os-release tree/root/etc/
	budget=$((root_mib * MIB * 8 / 10))
	# Hard links make the copy instant; mkfs.ext4 -d reads the files.
	for dir in /usr/bin /usr/lib/x86_64-linux-gnu /usr/share; do
		while IFS= read -r -d '' f; do
			s=$(stat -c %s "$f")
			[ $((used + s)) -lt "$budget" ] || break 2
			mkdir -p "tree/root$(dirname "$f")"
			ln "$f" "tree/root$f" 2>/dev/null || cp "$f" "tree/root$f"
			used=$((used + s))
		done < <(find "$dir" -type f -print0 | sort -z)
	done
	mkfs.ext4 -q -F -L boot -E offset=$MIB -d tree/boot "$out.tmp" \
		$((boot_mib * 1024)) || return 1
	mkfs.ext4 -q -F -L root -E offset=$((root_start * MIB)) -d tree/root "$out.tmp" \
		$((root_mib * 1024)) || return 1
	rm -rf tree
	echo "$((used / MIB))" >"$out.used-mib"
	mv "$out.tmp" "$out"
}

need_image() {
	once disk.img build_image disk.img "$img_mib" "$boot_mib"
}
# The root partition's first MiB in the bench image.
root_start_mib() { echo $((1 + boot_mib)); }

# partpack's archives of the bench image: pp.xz keeps /boot (part1) raw,
# pp0.xz keeps nothing; pp0.gz and pp3.zst likewise.  Each is timed where
# a row measures it; a row that only needs one makes it untimed.
need_pp_xz() {
	need_image
	once pp.xz partpack -q -T"$threads" -6 --block-size=16MiB --keep-raw part1 \
		--bmap pp.bmap -o pp.xz disk.img
}
# pp.xz's bmap (the same bytes with or without --bmap, as row pack-bmap
# checks), made by packing again only where pp.xz came without it.
need_pp_bmap() {
	need_pp_xz
	[ -e pp.bmap ] && return 0
	partpack -q -T"$threads" -6 --block-size=16MiB --keep-raw part1 \
		--bmap pp.bmap.tmp -o ppb.xz disk.img
	cmp pp.xz ppb.xz
	rm -f ppb.xz
	mv pp.bmap.tmp pp.bmap
}
need_pp0_xz() {
	need_image
	once pp0.xz partpack -q -T"$threads" -6 --block-size=16MiB -o pp0.xz disk.img
}
need_pp0_gz() {
	need_image
	once pp0.gz partpack -q -T"$threads" -6 --format=gzip -o pp0.gz disk.img
}
need_pp3_zst() {
	need_image
	once pp3.zst partpack -q -T"$threads" -3 --format=zstd --block-size=16MiB \
		-o pp3.zst disk.img
}
