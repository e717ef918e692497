# tests/bench/read.sh - reading archives back: stock decoders on
# partpack's output, partcat against them, digests, pp_pread.

row_xz_decode() {
	need_pp0_xz
	local t_d1 t_d2
	timed t_d1 sh -c 'xz -T1 -dc pp0.xz >/dev/null'
	timed t_d2 sh -c "xz -T$threads -dc pp0.xz >/dev/null"
	emit "stock xz -T$threads -d of partpack output" "$t_d2 s" "xz -T1 -d: $t_d1 s" \
		"$(ratio "$t_d2" "$t_d1")" "<= 0.7"
}

# partcat ARCHIVE -o out.raw against a stock decoder writing out.raw, each
# into a file made afresh; the stock tools write sparse files too.
cat_row() {
	local name=$1 archive=$2 theirs_label=$3 theirs_cmd=$4 target=$5 t_theirs t_ours
	rm -f out.raw
	timed t_theirs sh -c "$theirs_cmd"
	rm -f out.raw
	timed t_ours partcat -q -T"$threads" "$archive" -o out.raw
	cmp out.raw disk.img
	rm -f out.raw
	emit "$name" "$t_ours s" "$theirs_label: $t_theirs s" "$(ratio "$t_ours" "$t_theirs")" \
		"$target"
}
row_cat_xz() {
	need_pp_xz
	cat_row "partcat -T$threads of the .xz (/boot kept) -o out.raw" pp.xz \
		"xz -T$threads -dc > out.raw" "xz -T$threads -dc pp.xz >out.raw" "<= 1.0"
}
row_cat_gz() {
	need_pp0_gz
	cat_row "partcat -T$threads of the .gz -o out.raw" pp0.gz "pigz -dc > out.raw" \
		"pigz -dc pp0.gz >out.raw" "<= 0.4"
}
row_cat_zst() {
	need_pp3_zst
	cat_row "partcat -T$threads of the .zst (-3) -o out.raw" pp3.zst \
		"zstd -dc > out.raw" "zstd -qdc pp3.zst >out.raw" "<= 0.8"
}

row_cat_partition() {
	need_pp_xz
	local t_dd t_cat
	rm -f boot.raw
	timed t_dd dd if=disk.img of=boot.raw bs=1M skip=1 count="$boot_mib" status=none
	rm -f boot.raw
	timed t_cat partcat -q --partition part1 pp.xz -o boot.raw
	cmp boot.raw <(dd if=disk.img bs=1M skip=1 count="$boot_mib" status=none)
	rm -f boot.raw
	emit "partcat --partition part1 (stored ${boot_mib} MiB /boot)" "$t_cat s" \
		"dd from the raw image: $t_dd s" "$(ratio "$t_cat" "$t_dd")" "<= 1.5"
}

row_cat_rss() {
	need_pp_xz
	local rss limit
	rm -f out.raw
	rss=$(peak_rss_kib partcat -q -T"$threads" pp.xz -o out.raw)
	rm -f out.raw
	limit=$(((threads + 2) * 16 * 1024 + 32 * 1024))
	emit "peak RSS of partcat -T$threads" "$rss KiB" \
		"(threads + 2) x 16 MiB + 32 MiB: $limit KiB" "$(ratio "$rss" "$limit")" "<= 1.0"
}

row_digest() {
	need_pp_xz
	local t_sum t_file t_digest
	timed t_sum sh -c "xz -T$threads -dc pp.xz | sha256sum >stock.sum"
	timed t_file sh -c 'sha256sum pp.xz >file.sum'
	timed t_digest sh -c 'partinfo -q --digest pp.xz >pp.sum'
	[ "$(cut -d' ' -f1 stock.sum)" = "$(sed -n 's/^Image SHA-256: *//p' pp.sum)" ]
	emit "partinfo --digest (image and file)" "$t_digest s" \
		"xz -T$threads -dc | sha256sum + sha256sum: $(calc "$t_sum + $t_file") s" \
		"$(ratio "$t_digest" "$(calc "$t_sum + $t_file")")" "<= 0.7"
}

# Random 4 KiB pp_preads (examples/random-read, fixed seed): the whole
# image with a cache that holds it, warmed by one pass; stored data alone,
# and compressed data alone, with no cache (every read decodes its block).
row_preads() {
	need_pp_xz
	local rr=$build/examples/random-read warm stored cold
	rate() { awk '{ print $NF == "reads/s" ? $(NF - 1) : "?" }'; }
	warm=$("$rr" --cache 4GiB --warm pp.xz "$reads" | rate)
	stored=$("$rr" --only stored --cache 0 pp.xz "$reads" | rate)
	cold=$("$rr" --only data --cache 0 pp.xz "$cold_reads" | rate)
	emit "random 4 KiB pp_preads, warm cache, whole image" "$warm reads/s" "" "" ""
	emit "... stored data, no cache" "$stored reads/s" \
		"compressed data, no cache: $cold reads/s" "$(ratio "$stored" "$cold")" ">= 20"
}
