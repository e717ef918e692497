# tests/bench/pack.sh - writing archives: partpack against xz -T, pigz and
# zstd -T on the bench image, the same settings on both sides.

row_pack_xz() {
	need_image
	local t_xz t_pp0 t_pp s_xz rss_xz rss_pp0
	rm -f stock.xz pp0.xz pp.xz
	timed_rss t_xz rss_xz xz -T"$threads" -6 --block-size=16MiB -k -c disk.img >stock.xz
	timed_rss t_pp0 rss_pp0 partpack -q -T"$threads" -6 --block-size=16MiB \
		-o pp0.xz disk.img
	s_xz=$(size_of stock.xz)
	remember t_xz "$t_xz"
	remember rss_xz "$rss_xz"
	remember rss_pp0 "$rss_pp0"
	emit "pack to xz -6, 16 MiB blocks, -T$threads (nothing kept): time" \
		"$t_pp0 s" "xz: $t_xz s" "$(ratio "$t_pp0" "$t_xz")" "<= 1.0"
	emit "... its size" "$(size_of pp0.xz) B" "xz: $s_xz B" \
		"$(ratio "$(size_of pp0.xz)" "$s_xz")" "<= 1.005"
	timed t_pp partpack -q -T"$threads" -6 --block-size=16MiB --keep-raw part1 \
		-o pp.xz disk.img
	remember t_pp "$t_pp"
	emit "the same keeping /boot raw: time" "$t_pp s, $(size_of pp.xz) B" \
		"xz: $t_xz s" "$(ratio "$t_pp" "$t_xz")" ""
	rm -f stock.xz
}

# The peak RSS of the two packs the pack-xz row timed (measured again
# only when that row did not run).
row_pack_xz_rss() {
	need_image
	local ours theirs
	theirs=$(recall rss_xz)
	ours=$(recall rss_pp0)
	if [ -z "$theirs" ] || [ -z "$ours" ]; then
		theirs=$(peak_rss_kib xz -T"$threads" -6 --block-size=16MiB -k -c disk.img)
		ours=$(peak_rss_kib partpack -q -T"$threads" -6 --block-size=16MiB -c disk.img)
	fi
	emit "peak RSS of partpack -T$threads -6, 16 MiB blocks" "$ours KiB" \
		"xz -T$threads: $theirs KiB" "$(ratio "$ours" "$theirs")" "<= 1.0"
}

row_pack_bmap() {
	need_pp_xz
	local t_ppb t_pp
	t_pp=$(recall t_pp)
	[ -n "$t_pp" ] || { rm -f pp.xz; timed t_pp partpack -q -T"$threads" -6 \
		--block-size=16MiB --keep-raw part1 -o pp.xz disk.img; }
	rm -f ppb.xz pp.bmap
	timed t_ppb partpack -q -T"$threads" -6 --block-size=16MiB --keep-raw part1 \
		--bmap pp.bmap -o ppb.xz disk.img
	cmp pp.xz ppb.xz
	rm -f ppb.xz
	emit "partpack --bmap, xz keeping /boot" "$t_ppb s" "without: $t_pp s" \
		"$(ratio "$t_ppb" "$t_pp")" "<= 1.05"
}

row_pack_gz() {
	need_image
	local t_pigz t_ppgz t_ppgzb s_pigz
	rm -f pp0.gz ppb.gz pp0.gz.bmap
	timed t_pigz pigz -p "$threads" -6 -k -c disk.img >stock.gz
	timed t_ppgz partpack -q -T"$threads" -6 --format=gzip -o pp0.gz disk.img
	s_pigz=$(size_of stock.gz)
	rm -f stock.gz
	emit "pack to gz -6, -T$threads: time" "$t_ppgz s" "pigz -p$threads: $t_pigz s" \
		"$(ratio "$t_ppgz" "$t_pigz")" "<= 0.8"
	emit "... its size" "$(size_of pp0.gz) B" "pigz: $s_pigz B" \
		"$(ratio "$(size_of pp0.gz)" "$s_pigz")" "<= 1.01"
	timed t_ppgzb partpack -q -T"$threads" -6 --format=gzip --bmap pp0.gz.bmap \
		-o ppb.gz disk.img
	rm -f ppb.gz pp0.gz.bmap
	emit "partpack --bmap, gz as above" "$t_ppgzb s" "without: $t_ppgz s" \
		"$(ratio "$t_ppgzb" "$t_ppgz")" "<= 1.05"
	echo "zlib against libdeflate, raw deflate of 8 blocks of 16 MiB:" >&2
	"$build/bench-deflate" disk.img $(($(root_start_mib) * MIB)) >&2
}

# zstd at one level, nothing kept, so the sizes compare compression alone.
# Both write to standard output: partpack -o syncs the file before renaming
# it into place, which at zstd's speed would weigh as much as compressing.
pack_zstd_at() {
	local level=$1 t_zst t_pp s_zst s_pp
	need_image
	timed t_zst sh -c "zstd -q -T$threads -$level -c disk.img >stock$level.zst"
	timed t_pp sh -c "partpack -q -T$threads -$level --format=zstd \
		--block-size=16MiB -c disk.img >pp$level.zst"
	s_zst=$(size_of "stock$level.zst")
	s_pp=$(size_of "pp$level.zst")
	zstd -qt "pp$level.zst"
	rm -f "stock$level.zst"
	[ "$level" = 3 ] || rm -f "pp$level.zst"
	emit "pack to zstd -$level, 16 MiB blocks, -T$threads (nothing kept): time" \
		"$t_pp s" "zstd -T$threads -$level: $t_zst s" "$(ratio "$t_pp" "$t_zst")" "<= 1.0"
	emit "... its size" "$s_pp B" "zstd: $s_zst B" "$(ratio "$s_pp" "$s_zst")" "<= 1.03"
}
row_pack_zstd3() { rm -f pp3.zst; pack_zstd_at 3; }
row_pack_zstd19() { pack_zstd_at 19; }

# 8 GiB (BENCH_SPARSE_GIB) holding 512 MiB of the bench image's root.
need_sparse() {
	need_image
	[ -e sparse.img ] && return 0
	local i r
	r=$(root_start_mib)
	truncate -s "${sparse_gib}G" sparse.tmp
	for i in 0 1 2 3; do
		dd if=disk.img of=sparse.tmp bs=1M count=128 skip=$((r + i * 128)) \
			seek=$((i * sparse_gib * 256 + 100)) conv=notrunc status=none
	done
	mv sparse.tmp sparse.img
}

row_pack_sparse() {
	need_sparse
	local t_sxz t_spp t_data i
	timed t_sxz sh -c "xz -T$threads -6 --block-size=16MiB -k -c sparse.img >/dev/null"
	rm -f sparse.pp.xz
	timed t_spp partpack -q -T"$threads" -6 --block-size=16MiB -o sparse.pp.xz sparse.img
	emit "pack ${sparse_gib} GiB sparse image, 512 MiB data" "$t_spp s" "xz: $t_sxz s" \
		"$(ratio "$t_spp" "$t_sxz")" "<= 0.25"
	for i in 0 1 2 3; do
		dd if=sparse.img bs=1M count=128 skip=$((i * sparse_gib * 256 + 100)) status=none
	done >data.img
	rm -f data.xz
	timed t_data partpack -q -T"$threads" -6 --block-size=16MiB -o data.xz data.img
	rm -f data.img data.xz
	remember t_sparse_pack "$t_spp"
	emit "... against packing its 512 MiB of data alone" "$t_spp s" "partpack: $t_data s" \
		"$(ratio "$t_spp" "$t_data")" "<= 1.1"
}

# A variant with 1 MiB of new bytes in root, packed afresh and with
# --reuse of the base's pack (same options): time, and identical bytes.
reuse_row() {
	local name=$1 img=$2 base=$3 target=$4 t_fresh t_reuse same r
	r=$(awk -v s="$(size_of "$img")" 'BEGIN { printf "%d", s / 1048576 / 2 }')
	cp --sparse=always "$img" changed.img
	head -c $MIB /dev/urandom | dd of=changed.img bs=1M seek="$r" conv=notrunc status=none
	rm -f changed.xz changed.reuse.xz
	timed t_fresh partpack -q -T"$threads" -6 --block-size=16MiB -o changed.xz changed.img
	timed t_reuse partpack -q -T"$threads" -6 --block-size=16MiB --reuse "$base" \
		-o changed.reuse.xz changed.img
	if cmp -s changed.xz changed.reuse.xz; then same="bytes identical"; else same="BYTES DIFFER"; fi
	rm -f changed.img changed.xz changed.reuse.xz
	emit "$name" "$t_reuse s, $same" "fresh partpack: $t_fresh s" \
		"$(ratio "$t_reuse" "$t_fresh")" "$target"
	[ "$same" = "bytes identical" ]
}
row_reuse() {
	need_pp0_xz
	reuse_row "repack with 1 MiB changed in root, --reuse of the first pack" \
		disk.img pp0.xz "<= 0.1"
}
row_reuse_small() {
	once small.img build_image small.img 384 64
	once small.xz partpack -q -T"$threads" -6 --block-size=16MiB -o small.xz small.img
	reuse_row "... the same on a 384 MiB image" small.img small.xz "<= 0.15"
}
