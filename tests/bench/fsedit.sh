# tests/bench/fsedit.sh - stamping files into the kept /boot of pp.xz: in
# process (libext2fs) against the libguestfs appliance (under TCG, as this
# machine needs), one grub.cfg and BENCH_STAMP_VARIANTS (50) variants.

changed_bytes() { (cmp -l "$1" "$2" || true) | wc -l; }
# About 4 KiB of text (no head -c on a pipe: SIGPIPE under pipefail).
make_grub_cfg() { # make_grub_cfg FILE [HEADER]
	head -c 3000 /dev/urandom >grub.bin
	{ [ -z "${2:-}" ] || echo "$2"; base64 -w 76 grub.bin; } >"$1"
	rm -f grub.bin
}
stamp_grub() { # stamp_grub OUT [OPTION...]
	local out=$1
	shift
	rm -f "$out"
	partpatch -q pp.xz --partition part1 "$@" --mkdir /grub \
		--upload grub.cfg:/grub/grub.cfg --output "$out"
}
with_appliance() {
	LIBGUESTFS_BACKEND_SETTINGS=force_tcg \
		PARTPACK_NBDKIT_FILTER="$build/nbdkit-partpack-filter.so" "$@" --appliance
}

row_stamp() {
	need_pp_xz
	local t t_ours t_app t_inplace t_cp t_cpsync times=() i
	make_grub_cfg grub.cfg
	for i in 1 2 3 4 5; do
		timed t stamp_grub ours.xz
		times+=("$t")
	done
	t_ours=$(median "${times[@]}")
	xz -t ours.xz
	timed t_app with_appliance stamp_grub app.xz
	xz -t app.xz
	emit "stamp a 4 KiB grub.cfg into the kept /boot, --output, in process (median of 5)" \
		"$t_ours s" "through the appliance: $t_app s" "$(ratio "$t_ours" 0.3)" "<= 1.0"
	emit "... archive bytes changed" "$(changed_bytes pp.xz ours.xz) B" \
		"through the appliance: $(changed_bytes pp.xz app.xz) B" \
		"$(ratio "$(changed_bytes pp.xz ours.xz)" 262144)" "<= 1.0"
	rm -f ours.xz app.xz
	# Where the time of --output goes without reflinks: the same stamp in
	# place (on a copy already on disk, or its fsyncs would write the
	# whole copy), a copy of the archive alone, and a copy made durable,
	# as --output must before the new name appears.
	cp pp.xz inplace.xz
	sync inplace.xz
	timed t_inplace partpatch -q inplace.xz --partition part1 --mkdir /grub \
		--upload grub.cfg:/grub/grub.cfg
	sync
	timed t_cp cp --reflink=auto pp.xz copy.xz
	rm -f copy.xz
	timed t_cpsync sh -c 'cp --reflink=auto pp.xz copy.xz && sync copy.xz'
	rm -f inplace.xz copy.xz
	emit "... the same stamp in place (no --output)" "$t_inplace s" \
		"cp --reflink=auto of the archive: $t_cp s" "" ""
	emit "... --output against a durable copy of the archive" "$t_ours s" \
		"cp --reflink=auto and sync: $t_cpsync s" "$(ratio "$t_ours" "$t_cpsync")" ""
}

row_stamp_variants() {
	need_pp_xz
	local n=${BENCH_STAMP_VARIANTS:-50} runs=3 i t t_all=0 t_apps=0 t_app_all
	variant() { # variant I [OPTION...]
		local i=$1
		shift
		partpatch -q pp.xz --partition part1 "$@" --mkdir /grub \
			--upload "grub-$i.cfg:/grub/grub.cfg" --upload "blob-$i:/blob" \
			--output "v-$i.xz"
	}
	for ((i = 1; i <= n; i++)); do
		make_grub_cfg "grub-$i.cfg" "# variant $i"
		head -c 307200 /dev/urandom >"blob-$i"
	done
	for ((i = 1; i <= n; i++)); do
		timed t variant "$i"
		t_all=$(calc "$t_all + $t")
		rm -f "v-$i.xz"
	done
	for ((i = 1; i <= runs; i++)); do
		timed t with_appliance variant "$i"
		t_apps=$(calc "$t_apps + $t")
		rm -f "v-$i.xz"
	done
	rm -f grub-*.cfg blob-*
	t_app_all=$(calc "$t_apps * $n / $runs")
	emit "$n variants (a 4 KiB grub.cfg and a 300 KiB file each), --output, in process" \
		"$t_all s" "$runs appliance stamps x $n/$runs: $t_app_all s" \
		"$(ratio "$t_all" "$t_app_all")" ""
}
