#!/usr/bin/env bash
# tests/bench-fetch.sh BUILD_DIR WORKDIR - partcat URL --seed OLD against
# zsync, casync and zchunk, fetching the same image from the same nginx on
# 127.0.0.1, three ways: (a) /boot restamped in place (two files written
# into it with debugfs, the partition patched in with partpatch --bmap),
# (b) 1 MiB changed in root and repacked (--reuse), (c) a seed with nothing
# in common (random bytes).  Bytes and requests come from nginx's access
# log (body bytes sent, every request counted, control files included).
#
# Prints TSV rows "row<TAB>ours<TAB>theirs<TAB>ratio<TAB>target" as each is
# measured; a measurement, not a test: nothing here fails on a number.
#
# The image is tests/bench/image.sh's: a GPT disk of BENCH_IMG_MIB (1024) MiB with an
# ext4 /boot of BENCH_BOOT_MIB (128) MiB holding the machine's /boot, kept
# raw, and an ext4 root filled with binaries from /usr to about 80 %;
# packed with partpack -BENCH_LEVEL (6), 16 MiB blocks, -TBENCH_THREADS (2),
# with a bmap.  WORKDIR is kept (images, archives, logs).
set -euo pipefail

build=$(cd "${1:?usage: tests/bench-fetch.sh BUILD_DIR WORKDIR}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${2:?usage: tests/bench-fetch.sh BUILD_DIR WORKDIR}
export PATH="$build:$PATH"
img_mib=${BENCH_IMG_MIB:-1024}
boot_mib=${BENCH_BOOT_MIB:-128}
threads=${BENCH_THREADS:-2}
level=${BENCH_LEVEL:-6}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cd "$work"
for tool in nginx zsync zsyncmake casync zck zckdl debugfs curl partpack; do
	command -v $tool >/dev/null || { echo "bench-fetch: $tool not found" >&2; exit 1; }
done

# Timing and ratios as the other benchmarks take them; the bench image.
. "$here/bench/lib.sh"
. "$here/bench/image.sh"
# One TSV row, printed as it is measured (not bench/lib.sh's runner).
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@"; }

# ---- nginx ---------------------------------------------------------------------
WWW=$work/www
NG=$work/nginx
# The inputs are kept in WORKDIR and made again only for other settings.
inputs=inputs-$img_mib-$boot_mib-$level.made
[ -e "$inputs" ] || rm -rf "$WWW"
rm -rf "$NG"
mkdir -p "$WWW" "$NG/tmp"
chmod o+x "$work"
chmod 755 "$WWW"
port=$((20000 + RANDOM % 30000))
cat >"$NG/nginx.conf" <<EOF
worker_processes 2;
pid $NG/nginx.pid;
error_log $NG/error.log;
events { worker_connections 256; }
http {
	log_format ranges '\$status \$body_bytes_sent "\$http_range" \$uri';
	access_log $NG/access.log ranges;
	client_body_temp_path $NG/tmp;
	proxy_temp_path $NG/tmp;
	fastcgi_temp_path $NG/tmp;
	uwsgi_temp_path $NG/tmp;
	scgi_temp_path $NG/tmp;
	server { listen 127.0.0.1:$port; root $WWW; }
}
EOF
nginx -c "$NG/nginx.conf" -p "$NG" -e "$NG/error.log"
trap 'kill "$(cat "$NG/nginx.pid")" 2>/dev/null || true' EXIT
URL=http://127.0.0.1:$port
LOG=$NG/access.log
log_reset() { : >"$LOG"; }
log_requests() { wc -l <"$LOG"; }
log_bytes() { awk '{ s += $2 } END { print s + 0 }' "$LOG"; }

# ---- the images ------------------------------------------------------------------
root_start=$((1 + boot_mib))
root_mib=$((img_mib - root_start - 1))
make_inputs() {
	echo "building a ${img_mib} MiB GPT image in $work ..." >&2
	build_image v1.img "$img_mib" "$boot_mib"
	# (a) /boot restamped in place: a new STAMP file and a rewritten config
	# file, as a CI job stamping variants would.
	dd if=v1.img of=boot2.img bs=1M skip=1 count="$boot_mib" status=none
	echo "variant 2, built $(date -u +%F)" >stamp.txt
	printf 'set default=0\nset timeout=5\nmenuentry variant-2 { linux /vmlinuz root=LABEL=root console=ttyS0 }\n' >grub.cfg
	{
		echo "write stamp.txt STAMP"
		echo "mkdir grub"
		echo "rm grub/grub.cfg"
		echo "write grub.cfg grub/grub.cfg"
	} >stamp.cmds
	debugfs -w -f stamp.cmds boot2.img >/dev/null 2>&1
	cp --sparse=always v1.img v2.img
	dd if=boot2.img of=v2.img bs=1M seek=1 conv=notrunc,sparse status=none
	# (b) 1 MiB of new bytes among root's files.
	cp --sparse=always v1.img v3.img
	head -c $MIB /dev/urandom | dd of=v3.img bs=1M seek=$((root_start + root_mib / 4)) \
		conv=notrunc status=none
	# (c) a seed with nothing in common.
	head -c $((img_mib * MIB)) /dev/urandom >other.img

	echo "packing ..." >&2
	pack() { partpack -q -T"$threads" -$level --block-size=16MiB --keep-raw part1 "$@"; }
	# Each bmap where bmaptool looks first: ARCHIVE.bmap.
	timed t_pack pack --bmap "$WWW/v1.img.xz.bmap" -o "$WWW/v1.img.xz" v1.img
	partpatch -q "$WWW/v1.img.xz" --partition part1 --input boot2.img \
		--output "$WWW/v2.img.xz" --bmap "$WWW/v1.img.xz.bmap" \
		--bmap-output "$WWW/v2.img.xz.bmap"
	pack --reuse "$WWW/v1.img.xz" --bmap "$WWW/v3.img.xz.bmap" -o "$WWW/v3.img.xz" v3.img
	mkdir -p seeds
	cp "$WWW/v1.img.xz" "$WWW/v1.img.xz.bmap" seeds/
	for v in v2 v3; do cmp <(partcat "$WWW/$v.img.xz") $v.img; done
	echo "the anchors' files ..." >&2
	for v in v1 v2 v3; do
		cp --sparse=always $v.img "$WWW/$v.img"
		zsyncmake -o "$WWW/$v.img.zsync" -u $v.img "$WWW/$v.img" >/dev/null 2>&1
		rm -rf "$WWW/$v.castr"
		casync make --store="$WWW/$v.castr" "$WWW/$v.caibx" $v.img >/dev/null 2>&1
		zck -o "$WWW/$v.img.zck" $v.img >/dev/null 2>&1
	done
	zck -o other.img.zck other.img >/dev/null 2>&1
	cp "$WWW/v1.img.zck" seeds/
	touch "$inputs"
}
t_pack=$(cat pack.seconds 2>/dev/null || echo "?")
[ -e "$inputs" ] || { make_inputs; echo "$t_pack" >pack.seconds; }

# The blocks of TARGET.xz whose bytes differ from SEED's raw image: their
# compressed bytes and runs.
differing() {
	partinfo --json --blocks "$WWW/$1.img.xz" | python3 -c '
import json, sys
a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
total, runs, last = 0, 0, False
for blk in json.load(sys.stdin)["block_list"]:
    a.seek(blk["uncompressed_offset"]); b.seek(blk["uncompressed_offset"])
    n = blk["uncompressed_size"]
    differs = a.read(n) != b.read(n)
    total += blk["total_size"] if differs else 0
    runs += differs and not last
    last = differs
print(total, runs)' "$1.img" "$2"
}

# ---- one case ------------------------------------------------------------------------
# measure NAME TARGET SEED_ARCHIVE SEED_RAW SEED_ZCK
measure() {
	local name=$1 v=$2 seed=$3 raw=$4 zseed=$5
	local b r t diff runs index bound pb pr pt
	read -r diff runs < <(differing "$v" "$raw")
	log_reset
	rm -f out.img
	timed t partcat -q -T"$threads" "$URL/$v.img.xz" --seed "$seed" -o out.img
	cmp out.img $v.img
	b=$(log_bytes) r=$(log_requests)
	# The index: what opening reads and the bmap.
	index=$((2 * 65536 + $(size_of "$WWW/$v.img.xz.bmap")))
	bound=$((diff * 105 / 100 + index + 65536))
	row "$name: bytes, partcat --seed (raw output)" "$b" "$bound" "$(ratio "$b" "$bound")" "<= 1 (1.05 x $diff B of changed blocks + index + 64 KiB)"
	row "$name: requests, partcat --seed" "$r" "$((runs + 4))" "$(ratio "$r" "$((runs + 4))")" "<= 1 ($runs runs of changed blocks + 4)"
	row "$name: wall time, partcat --seed (raw output)" "$t" "" "" ""
	pb=$b pr=$r pt=$t
	# With the raw seed the other tools take (no decoding of a seed).
	log_reset
	rm -f out.img
	timed t partcat -q -T"$threads" "$URL/$v.img.xz" --seed "$raw" -o out.img
	cmp out.img $v.img
	row "$name: partcat --seed RAW: bytes, requests, wall time" "$(log_bytes) B, $(log_requests), $t s" "" "" ""
	# The same fetch with --archive, against downloading the whole archive.
	log_reset
	rm -f out.xz
	timed t partcat -q -T"$threads" "$URL/$v.img.xz" --seed "$seed" --archive \
		--sha256 "$(sha256sum "$WWW/$v.img.xz" | cut -d' ' -f1)" -o out.xz
	cmp out.xz "$WWW/$v.img.xz"
	row "$name: bytes, partcat --archive --seed" "$(log_bytes)" "" "" ""
	local tc
	timed tc curl -s -o whole.xz "$URL/$v.img.xz"
	row "$name: wall time, partcat --archive --seed vs curl of the archive" "$t" "$tc" "$(ratio "$t" "$tc")" "<= 1"
	# zsync: the raw image's control file, the seed's raw bytes.
	log_reset
	rm -f z.out z.out.part
	timed t zsync -q -i "$raw" -o z.out "$URL/$v.img.zsync"
	cmp z.out $v.img
	against zsync "<= 2 (+ 256 KiB)"
	# casync: the blob index and the chunk store, the seed's raw bytes.
	log_reset
	rm -f c.out
	timed t casync extract --store="$URL/$v.castr" --seed="$raw" \
		"$URL/$v.caibx" c.out >/dev/null 2>&1
	cmp c.out $v.img
	against casync ""
	# zchunk: its own file, the seed's .zck.
	log_reset
	rm -rf zdl && mkdir zdl
	timed t bash -c "cd zdl && zckdl -q -s '$work/$zseed' '$URL/$v.img.zck' >/dev/null"
	against zchunk ""
}

# against TOOL TARGET: rows of partcat's bytes, requests and time ($pb, $pr,
# $pt) against TOOL's, from the log and $t.
against() {
	local b r
	b=$(log_bytes) r=$(log_requests)
	row "$name: bytes, partcat against $1" "$pb" "$b" "$(ratio "$pb" "$b")" "$2"
	row "$name: requests, partcat against $1" "$pr" "$r" "$(ratio "$pr" "$r")" ""
	row "$name: wall time, partcat against $1" "$pt" "$t" "$(ratio "$pt" "$t")" ""
}

printf 'row\tours\ttheirs\tratio\ttarget\n'
row "image" "$(size_of v1.img) B" "archive $(size_of "$WWW/v1.img.xz") B" "" "packed in $t_pack s"
measure "(a) /boot restamped" v2 seeds/v1.img.xz v1.img seeds/v1.img.zck
measure "(b) 1 MiB of root, repacked" v3 seeds/v1.img.xz v1.img seeds/v1.img.zck
measure "(c) nothing in common" v1 other.img other.img other.img.zck
