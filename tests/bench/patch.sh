# tests/bench/patch.sh - patching in place: the cost of a 1 MiB patch as
# the image grows, with and without a bmap, and stamping variants.

# Images of 1 and 64 GiB, empty but for what the patch writes, with
# 512 MiB + 64 MiB kept raw; .xz with a bmap, and .zst.
need_big() {
	local gib=$1
	[ -e "big$gib.zst" ] && return 0
	truncate -s 0 "big$gib.img"
	truncate -s "${gib}G" "big$gib.img"
	rm -f "big$gib.xz" "big$gib.bmap"
	partpack -q -T"$threads" --keep-raw 512MiB+64MiB --bmap "big$gib.bmap" \
		-o "big$gib.xz" "big$gib.img"
	partpack -q -T"$threads" --keep-raw 512MiB+64MiB -o "big$gib.zst.tmp" "big$gib.img"
	rm -f "big$gib.img"
	mv "big$gib.zst.tmp" "big$gib.zst"
}

best_patch() { # best of 5 runs, in seconds; more partpatch options after
	local best=999 t i archive=$1
	shift
	[ -e patch.bin ] || head -c $MIB /dev/urandom >patch.bin
	for i in 1 2 3 4 5; do
		timed t partpatch "$archive" --offset 520MiB --input patch.bin "$@"
		best=$(calc "($t < $best) ? $t : $best")
	done
	printf '%.4f' "$best"
}

row_patch() {
	need_big 1
	need_big 64
	local t1 t64 t64b tz1 tz64
	# big$gib.bmap is the bmap bmaptool finds for both: --no-bmap, or
	# partpatch would keep it true in the runs timed without it.
	t1=$(best_patch big1.xz --no-bmap)
	t64=$(best_patch big64.xz --no-bmap)
	t64b=$(best_patch big64.xz --bmap big64.bmap)
	xz -t big1.xz
	tz1=$(best_patch big1.zst --no-bmap)
	tz64=$(best_patch big64.zst --no-bmap)
	zstd -qt big1.zst
	emit "1 MiB partpatch, 64 GiB image (best of 5; verifies the touched 16 MiB block first)" \
		"$t64 s" "1 GiB image: $t1 s" "$(ratio "$t64" "$t1")" "<= 1.5"
	emit "... in absolute time" "$t64 s" "0.1 s" "$(ratio "$t64" 0.1)" "<= 1.0"
	emit "... with --bmap (into a hole: maps it)" "$t64b s (without: $t64 s)" "0.1 s" \
		"$(ratio "$t64b" 0.1)" "<= 1.0"
	emit "1 MiB partpatch, 64 GiB .zst (best of 5)" "$tz64 s" "1 GiB .zst: $tz1 s" \
		"$(ratio "$tz64" "$tz1")" "<= 1.5"
}

row_variants() {
	need_pp_xz
	local t_pp t_xz t_stamp=0 t i total
	t_xz=$(recall t_xz)
	t_pp=$(recall t_pp)
	if [ -z "$t_xz" ] || [ -z "$t_pp" ]; then
		echo "the pack-xz row measures the times this row compares" >&2
		return 1
	fi
	truncate -s 0 newboot.img
	truncate -s "${boot_mib}M" newboot.img
	mkdir -p nb && cp -rL /boot/. nb/ 2>/dev/null || true
	echo variant >nb/STAMP
	mkfs.ext4 -q -F -L boot -d nb newboot.img
	rm -rf nb
	for i in $(seq 1 "$variants"); do
		rm -f "v$i.xz"
		timed t partpatch pp.xz --partition part1 --input newboot.img --output "v$i.xz"
		t_stamp=$(calc "$t_stamp + $t")
	done
	xz -t v1.xz
	rm -f v*.xz newboot.img
	total=$(calc "$t_pp + $t_stamp")
	emit "stamp $variants variants: pack once + $variants x partpatch --output" "$total s" \
		"$variants x xz: $(calc "$variants * $t_xz") s" \
		"$(ratio "$total" "$(calc "$variants * $t_xz")")" ""
}
