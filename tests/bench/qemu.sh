# tests/bench/qemu.sh - images qemu reads: packing a qcow2 against packing
# the same image raw (the time the pack-xz and pack-sparse rows measured
# for the raw form, in this run), and partcat -O qcow2 against xz -dc into
# a raw file, then qemu-img convert.

row_qemu_pack() {
	need_pp_xz
	local t_raw t_qcow2
	t_raw=$(recall t_pp)
	[ -n "$t_raw" ] || { echo "the pack-xz row measures the raw pack" >&2; return 1; }
	once disk.qcow2 qemu-img convert -f raw -O qcow2 disk.img disk.qcow2
	rm -f qcow2.xz
	timed t_qcow2 partpack -q -T"$threads" -6 --block-size=16MiB --keep-raw part1 \
		-o qcow2.xz disk.qcow2
	cmp pp.xz qcow2.xz
	rm -f qcow2.xz disk.qcow2
	emit "pack a qcow2 of the bench image keeping /boot (bytes identical to the raw pack)" \
		"$t_qcow2 s" "the raw image: $t_raw s" "$(ratio "$t_qcow2" "$t_raw")" "<= 1.1"
}

row_qemu_sparse() {
	local t_raw t_qcow2
	t_raw=$(recall t_sparse_pack)
	[ -n "$t_raw" ] && [ -e sparse.pp.xz ] ||
		{ echo "the pack-sparse row measures the raw pack" >&2; return 1; }
	once sparse.qcow2 qemu-img convert -f raw -O qcow2 sparse.img sparse.qcow2
	rm -f sparse.qcow2.xz
	timed t_qcow2 partpack -q -T"$threads" -6 --block-size=16MiB -o sparse.qcow2.xz \
		sparse.qcow2
	cmp sparse.pp.xz sparse.qcow2.xz
	rm -f sparse.qcow2.xz sparse.qcow2
	emit "pack a ${sparse_gib} GiB qcow2 holding 512 MiB (bytes identical to the raw pack)" \
		"$t_qcow2 s" "its raw sparse form: $t_raw s" "$(ratio "$t_qcow2" "$t_raw")" "<= 1.1"
}

row_qemu_cat() {
	need_pp_xz
	local t_cat t_stock
	rm -f out.qcow2 stock.qcow2 stock.raw
	timed t_cat partcat -q -T"$threads" pp.xz -O qcow2 -o out.qcow2
	timed t_stock sh -c 'xz -T'"$threads"' -dc pp.xz >stock.raw &&
		qemu-img convert -f raw -O qcow2 stock.raw stock.qcow2'
	qemu-img compare -q -f qcow2 -F qcow2 out.qcow2 stock.qcow2
	rm -f out.qcow2 stock.qcow2 stock.raw
	emit "partcat -O qcow2" "$t_cat s" "xz -dc > raw, qemu-img convert -O qcow2: $t_stock s" \
		"$(ratio "$t_cat" "$t_stock")" ""
}
