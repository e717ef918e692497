# tests/bench/fetch.sh - `partcat URL --seed OLD`, fetching only what
# changed, from nginx and s3rver on 127.0.0.1, against curl of the whole
# archive and against the delta downloaders zsync, casync and zchunk, on
# three targets:
#   boot       /boot restamped in place (two files written into it with
#              debugfs, the partition patched in with partpatch --bmap);
#   root       1 MiB of new bytes among root's files, repacked with --reuse;
#   unrelated  the image itself against a seed of random bytes.
# The archives are pp.xz's (-6, 16 MiB blocks, /boot kept raw) with their
# bmaps beside them, where bmaptool looks.  Bytes and requests are nginx's
# access log (body bytes sent, every request, control files and bmaps
# included); over S3, partcat -v's totals.  Each server is started by its
# row on a port it picks and stopped when the row ends.

fetch_dir() { echo "$work/fetch"; }

# ---- the inputs ------------------------------------------------------------
# In fetch/: www/ (what nginx serves: the archives, their bmaps and the
# anchors' files), seeds/ (v1's archive and bmap), the raw images v1.img
# (the bench image), v2.img, v3.img and other.img.
need_fetch_v1() {
	need_pp_bmap
	local d
	d=$(fetch_dir)
	mkdir -p "$d/www" "$d/seeds"
	# nginx's workers run as another user: they must reach the files.
	chmod o+x "$work" "$d"
	chmod 755 "$d/www"
	[ -e "$d/v1.img" ] || ln disk.img "$d/v1.img"
	[ -e "$d/www/v1.img.xz" ] || ln pp.xz "$d/www/v1.img.xz"
	[ -e "$d/www/v1.img.xz.bmap" ] || cp pp.bmap "$d/www/v1.img.xz.bmap"
	[ -e "$d/seeds/v1.img.xz" ] || ln pp.xz "$d/seeds/v1.img.xz"
	[ -e "$d/seeds/v1.img.xz.bmap" ] || cp pp.bmap "$d/seeds/v1.img.xz.bmap"
}

# v2: a new STAMP file and a rewritten grub.cfg in /boot, as a CI job
# stamping variants would, patched into v1's archive.
make_fetch_v2() {
	dd if=v1.img of=boot2.img bs=1M skip=1 count="$boot_mib" status=none || return 1
	echo "variant 2" >stamp.txt
	printf 'set default=0\nset timeout=5\nmenuentry variant-2 { linux /vmlinuz root=LABEL=root }\n' \
		>grub.cfg
	printf '%s\n' "write stamp.txt STAMP" "mkdir grub" "rm grub/grub.cfg" \
		"write grub.cfg grub/grub.cfg" >stamp.cmds
	debugfs -w -f stamp.cmds boot2.img >/dev/null 2>&1 || return 1
	rm -f www/v2.img.xz www/v2.img.xz.bmap
	cp --sparse=always v1.img v2.tmp &&
		dd if=boot2.img of=v2.tmp bs=1M seek=1 conv=notrunc,sparse status=none &&
		partpatch -q www/v1.img.xz --partition part1 --input boot2.img \
			--output www/v2.img.xz --bmap www/v1.img.xz.bmap \
			--bmap-output www/v2.img.xz.bmap || return 1
	rm -f boot2.img
	mv v2.tmp v2.img
}

# v3: 1 MiB of random bytes a quarter into root, packed with --reuse of v1.
make_fetch_v3() {
	local root_mib=$((img_mib - $(root_start_mib) - 1))
	rm -f www/v3.img.xz www/v3.img.xz.bmap
	cp --sparse=always v1.img v3.tmp &&
		head -c "$MIB" /dev/urandom | dd of=v3.tmp bs=1M conv=notrunc status=none \
			seek=$(($(root_start_mib) + root_mib / 4)) &&
		partpack -q -T"$threads" -6 --block-size=16MiB --keep-raw part1 \
			--reuse www/v1.img.xz --bmap www/v3.img.xz.bmap -o www/v3.img.xz v3.tmp ||
		return 1
	mv v3.tmp v3.img
}

need_fetch_variant() { # need_fetch_variant v1|v2|v3
	need_fetch_v1
	cd "$(fetch_dir)"
	case $1 in
	v2) once v2.img make_fetch_v2 ;;
	v3) once v3.img make_fetch_v3 ;;
	esac
	cd "$work"
}

need_fetch_other() {
	need_fetch_v1
	once "$(fetch_dir)/other.img" sh -c \
		"head -c $((img_mib * MIB)) /dev/urandom >'$(fetch_dir)/other.tmp' &&
			mv '$(fetch_dir)/other.tmp' '$(fetch_dir)/other.img'"
}

# ---- nginx -----------------------------------------------------------------
# serve_www: nginx serving fetch/www on a port it picks, until the row's
# shell exits; sets URL and LOG (status, body bytes sent, Range, path).
serve_www() {
	local ng try port
	ng=$(fetch_dir)/nginx
	rm -rf "$ng"
	mkdir -p "$ng/tmp"
	for try in 1 2 3 4 5 6 7 8 9 10; do
		port=$((20000 + RANDOM % 30000))
		cat >"$ng/nginx.conf" <<EOF
worker_processes 2;
pid $ng/nginx.pid;
error_log $ng/error.log;
events { worker_connections 256; }
http {
	log_format ranges '\$status \$body_bytes_sent "\$http_range" \$uri';
	access_log $ng/access.log ranges;
	client_body_temp_path $ng/tmp;
	proxy_temp_path $ng/tmp;
	fastcgi_temp_path $ng/tmp;
	uwsgi_temp_path $ng/tmp;
	scgi_temp_path $ng/tmp;
	server { listen 127.0.0.1:$port; root $(fetch_dir)/www; }
}
EOF
		if nginx -c "$ng/nginx.conf" -p "$ng" -e "$ng/error.log" 2>>"$ng/start.log"; then
			trap 'kill "$(cat "'"$ng"'/nginx.pid")" 2>/dev/null || true' EXIT
			URL=http://127.0.0.1:$port
			LOG=$ng/access.log
			return 0
		fi
	done
	echo "nginx does not start: $(tail -n 1 "$ng/start.log")" >&2
	return 1
}
log_reset() { : >"$LOG"; }
log_requests() { wc -l <"$LOG"; }
log_bytes() { awk '{ s += $2 } END { print s + 0 }' "$LOG"; }

# differing TARGET SEED_RAW: the compressed bytes of the blocks of
# www/TARGET.img.xz whose image bytes differ from SEED_RAW's, and their runs.
differing() {
	partinfo --json --blocks "www/$1.img.xz" | python3 -c '
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

# ---- partcat ---------------------------------------------------------------
# fetch_partcat CASE TARGET SEED SEED_RAW: partcat's bytes, requests and
# wall time for www/TARGET.img.xz with SEED (an archive or raw), then with
# the raw seed the anchors take, then --archive against curl of the whole
# archive.  Remembers the raw-seed figures for the anchor rows.
fetch_partcat() {
	local c=$1 v=$2 seed=$3 raw=$4 diff runs t b r bound index tc
	cd "$(fetch_dir)"
	serve_www
	read -r diff runs < <(differing "$v" "$raw")
	log_reset
	rm -f out.img
	timed t partcat -q -T"$threads" "$URL/$v.img.xz" --seed "$seed" -o out.img
	cmp out.img "$v.img"
	b=$(log_bytes) r=$(log_requests)
	# What opening reads (the index) and the bmap.
	index=$((2 * 65536 + $(size_of "www/$v.img.xz.bmap")))
	bound=$((diff * 105 / 100 + index + 65536))
	emit "fetch $c: bytes, partcat URL --seed $(basename "$seed")" "$b B in $t s" \
		"1.05 x $diff B of changed blocks + index + 64 KiB: $bound B" \
		"$(ratio "$b" "$bound")" "<= 1"
	emit "... requests" "$r" "$runs runs of changed blocks + 4: $((runs + 4))" \
		"$(ratio "$r" "$((runs + 4))")" "<= 1"
	log_reset
	rm -f out.img
	timed t partcat -q -T"$threads" "$URL/$v.img.xz" --seed "$raw" -o out.img
	cmp out.img "$v.img"
	rm -f out.img
	b=$(log_bytes) r=$(log_requests)
	remember "fetch_${c}_bytes" "$b"
	remember "fetch_${c}_requests" "$r"
	remember "fetch_${c}_time" "$t"
	emit "... with the raw seed $(basename "$raw")" "$b B, $r requests, $t s" "" "" ""
	archive_against_curl "$v" "$seed"
	emit "... --archive --sha256: wall time, median of 3 ($b B, $r requests)" \
		"$t s" "curl of the archive: $tc s" "$(ratio "$t" "$tc")" "<= 1"
}

# archive_against_curl TARGET SEED: into t and tc, the medians of three
# runs each, alternating, of partcat --archive --sha256 and of curl of the
# whole archive; b and r, the bytes and requests of partcat's last run.
# One run of either varies by half on the loopback (curl of the same
# 200 MB took 0.22 to 0.53 s in one bench run, 2026-12-03).
archive_against_curl() {
	local v=$1 seed=$2 sum k ts=() tcs=()
	sum=$(sha256sum "www/$v.img.xz" | cut -d' ' -f1)
	for k in 1 2 3; do
		log_reset
		rm -f out.xz whole.xz
		timed t partcat -q -T"$threads" "$URL/$v.img.xz" --seed "$seed" \
			--archive --sha256 "$sum" -o out.xz
		cmp out.xz "www/$v.img.xz"
		b=$(log_bytes) r=$(log_requests)
		timed tc curl -sf -o whole.xz "$URL/$v.img.xz"
		cmp whole.xz "www/$v.img.xz"
		ts+=("$t") tcs+=("$tc")
	done
	rm -f out.xz whole.xz
	t=$(median "${ts[@]}") tc=$(median "${tcs[@]}")
}

row_fetch_boot() {
	need_fetch_variant v2
	fetch_partcat boot v2 seeds/v1.img.xz v1.img
}
row_fetch_root() {
	need_fetch_variant v3
	fetch_partcat root v3 seeds/v1.img.xz v1.img
}
row_fetch_unrelated() {
	need_fetch_other
	fetch_partcat unrelated v1 other.img other.img
}

# ---- the anchors -----------------------------------------------------------
# Each on the raw images (zsync, casync) or its own file (zchunk), with the
# raw seed, from the same nginx; against partcat with the same raw seed.

# anchor_missing ROW TOOL...: emits a skipped row when a TOOL is missing.
anchor_missing() {
	local name=$1 tool
	shift
	for tool; do
		command -v "$tool" >/dev/null && continue
		emit "$name" "skipped: $tool not installed" "" "" ""
		return 0
	done
	return 1
}

# anchor_emit CASE TOOL SECONDS [TARGET]: partcat's remembered figures
# against TOOL's, in the log.
anchor_emit() {
	local c=$1 tool=$2 t=$3 target=${4:-} b r pb pr pt
	b=$(log_bytes) r=$(log_requests)
	pb=$(recall "fetch_${c}_bytes") pr=$(recall "fetch_${c}_requests")
	pt=$(recall "fetch_${c}_time")
	if [ -z "$pb" ]; then
		emit "fetch $c: $tool" "(row fetch-$c not run)" "$b B, $r requests, $t s" "" ""
		return 0
	fi
	emit "fetch $c: bytes, partcat --seed RAW against $tool" "$pb B" "$tool: $b B" \
		"$(ratio "$pb" "$b")" "$target"
	emit "... requests" "$pr" "$tool: $r" "$(ratio "$pr" "$r")" ""
	emit "... wall time" "$pt s" "$tool: $t s" "$(ratio "$pt" "$t")" ""
}

# The raw target where zsync's control file names it, and its control file.
need_zsync() { # need_zsync TARGET
	[ -e "www/$1.img" ] || ln "$1.img" "www/$1.img"
	once "www/$1.img.zsync" zsyncmake -o "www/$1.img.zsync" -u "$1.img" "$1.img" \
		>/dev/null 2>&1
}

# anchor_zsync CASE TARGET SEED_RAW [TARGET]
anchor_zsync() {
	local t
	anchor_missing "fetch $1: zsync" zsync zsyncmake && return 0
	cd "$(fetch_dir)"
	need_zsync "$2"
	serve_www
	log_reset
	rm -f z.out z.out.part
	timed t zsync -q -i "$3" -o z.out "$URL/$2.img.zsync"
	cmp z.out "$2.img"
	rm -f z.out
	anchor_emit "$1" zsync "$t" "${4:-}"
}

# One chunk store for every target: casync extract fetches only the chunks
# the target's index names and the seed lacks.
anchor_casync() { # anchor_casync CASE TARGET SEED_RAW
	local t
	anchor_missing "fetch $1: casync" casync && return 0
	cd "$(fetch_dir)"
	once "www/$2.caibx" casync make --store=www/img.castr "www/$2.caibx" "$2.img" \
		>/dev/null 2>&1
	chmod -R o+rX www/img.castr
	serve_www
	log_reset
	rm -f c.out
	timed t casync extract --store="$URL/img.castr" --seed="$3" "$URL/$2.caibx" c.out \
		>/dev/null 2>&1
	cmp c.out "$2.img"
	rm -f c.out
	anchor_emit "$1" casync "$t"
}

# zchunk: its own file of the target, the seed's own .zck.
need_zck() { # need_zck RAW: www/RAW.zck
	once "www/$1.zck" zck -o "www/$1.zck" "$1" >/dev/null 2>&1
}
anchor_zchunk() { # anchor_zchunk CASE TARGET SEED_RAW
	local t
	anchor_missing "fetch $1: zchunk" zck zckdl && return 0
	cd "$(fetch_dir)"
	need_zck "$2.img"
	need_zck "$3"
	serve_www
	log_reset
	rm -rf zdl && mkdir zdl
	timed t sh -c "cd zdl && zckdl -q -s '../www/$3.zck' '$URL/$2.img.zck' >/dev/null"
	cmp "zdl/$2.img.zck" "www/$2.img.zck"
	rm -rf zdl
	anchor_emit "$1" zchunk "$t"
}

row_fetch_boot_zsync() {
	need_fetch_variant v2
	# A restamped /boot with the bmap: at most twice what zsync fetches.
	anchor_zsync boot v2 v1.img "<= 2"
}
row_fetch_boot_casync() { need_fetch_variant v2; anchor_casync boot v2 v1.img; }
row_fetch_boot_zchunk() { need_fetch_variant v2; anchor_zchunk boot v2 v1.img; }
row_fetch_root_zsync() { need_fetch_variant v3; anchor_zsync root v3 v1.img; }
# casync and zchunk only for boot, zsync for root too, none for unrelated
# (where each fetches everything): their files of a 1 GiB image and
# casync's extraction (about a minute) would take the fetch rows past five
# minutes on two cores.

# ---- S3 ----------------------------------------------------------------------
S3RVER_VERSION=3.7.1

# s3rver (from the npm registry, into BUILD/npm) serving bucket "images"
# on a port it picks, until the row's shell exits; sets AWS_* for partcat.
serve_s3() {
	local s3rver=$build/npm/node_modules/.bin/s3rver try port pid
	if [ ! -x "$s3rver" ]; then
		command -v npm >/dev/null || return 1
		npm install --silent --no-audit --no-fund --prefix "$build/npm" \
			"s3rver@$S3RVER_VERSION" >&2 || return 1
	fi
	rm -rf s3data && mkdir s3data
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 30000))
		"$s3rver" -d s3data -a 127.0.0.1 -p "$port" -s --configure-bucket images \
			>s3rver.log 2>&1 </dev/null &
		pid=$!
		trap 'kill '"$pid"' 2>/dev/null || true' EXIT
		for _ in $(seq 50); do
			ss -ltn "sport = :$port" | grep -q LISTEN && break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null && ss -ltn "sport = :$port" | grep -q LISTEN; then
			export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
				AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1
			return 0
		fi
		kill "$pid" 2>/dev/null || true
	done
	echo "s3rver does not start: $(tail -n 1 s3rver.log)" >&2
	return 1
}
# s3_curl ARGS...: a SigV4-signed request to s3rver.
s3_curl() {
	curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

# The boot target from S3: --archive against a signed curl of the object,
# bytes and requests from partcat -v.
row_fetch_s3() {
	need_fetch_variant v2
	cd "$(fetch_dir)"
	if ! serve_s3; then
		emit "fetch boot from S3" "skipped: no s3rver (npm missing or failing)" "" "" ""
		return 0
	fi
	local t tc totals
	s3_curl -T www/v2.img.xz "$AWS_ENDPOINT_URL/images/v2.img.xz" -o /dev/null
	s3_curl -T www/v2.img.xz.bmap "$AWS_ENDPOINT_URL/images/v2.img.xz.bmap" -o /dev/null
	local sum k ts=() tcs=()
	sum=$(sha256sum www/v2.img.xz | cut -d' ' -f1)
	for k in 1 2 3; do   # medians of 3, alternating, as archive_against_curl
		rm -f out.xz whole.xz
		timed t partcat -v -T"$threads" s3://images/v2.img.xz \
			--seed seeds/v1.img.xz --archive --sha256 "$sum" -o out.xz \
			2>s3.totals
		cmp out.xz www/v2.img.xz
		totals=$(tail -n 1 s3.totals)
		timed tc s3_curl -o whole.xz "$AWS_ENDPOINT_URL/images/v2.img.xz"
		cmp whole.xz www/v2.img.xz
		ts+=("$t") tcs+=("$tc")
	done
	rm -f out.xz whole.xz
	t=$(median "${ts[@]}") tc=$(median "${tcs[@]}")
	emit "fetch boot from S3 (s3rver): --archive --sha256, wall time, median of 3" \
		"$t s" "signed curl of the object: $tc s" "$(ratio "$t" "$tc")" "<= 1"
	emit "... partcat -v" "${totals#partcat: }" "" "" ""
}
