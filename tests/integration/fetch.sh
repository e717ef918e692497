# fetch.sh - issue 23: partcat URL --seed OLD over http, https and S3,
# fetching only what changed, against real servers on 127.0.0.1: nginx
# (with an access log of every request's Range and body bytes, from which
# the bytes and requests are counted), Python's http.server (no Range),
# s3rver (S3, SigV4); partinfo URL; resuming; nbdkit curl with the filter.

require_cmd partpack partpatch partcat partinfo nginx python3 cmp curl \
	debugfs openssl sha256sum ss

MIB=1048576
WWW=$TESTDIR/www
mkdir -p "$WWW" seeds bare
# nginx's workers run as another user: they must reach the files.
chmod o+x "$TESTDIR"
chmod 755 "$WWW"
SERVER_PIDS=()

stop_servers() {
	local pid
	for pid in "${SERVER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for dir in "$TESTDIR"/nginx-*; do
		[ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null
	done
	return 0
}
trap 'st=$?; stop_servers; (exit $st); _pp_end' EXIT

# ---- servers ---------------------------------------------------------------

# nginx_start NAME [SERVER_DIRECTIVES] [LISTEN_FLAGS]: nginx serving $WWW
# on a port it picks; its access log records status, body bytes sent, the
# Range header and the path.  Sets PORT.
nginx_start() {
	local dir=$TESTDIR/nginx-$1 try
	mkdir -p "$dir/tmp"
	for try in 1 2 3 4 5 6 7 8 9 10; do
		PORT=$((20000 + RANDOM % 30000))
		nginx_conf "$dir" "$PORT" "${2:-}" "${3:-}"
		nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" \
			2>>"$dir/start.log" && return 0
	done
	return 1
}

nginx_conf() {
	cat >"$1/nginx.conf" <<EOF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 64; }
http {
	log_format ranges '\$status \$body_bytes_sent "\$http_range" \$uri';
	access_log $1/access.log ranges;
	client_body_temp_path $1/tmp;
	proxy_temp_path $1/tmp;
	fastcgi_temp_path $1/tmp;
	uwsgi_temp_path $1/tmp;
	scgi_temp_path $1/tmp;
	server {
		listen 127.0.0.1:$2 $4;
		root $WWW;
		$3
	}
}
EOF
}

# nginx_reload NAME PORT [SERVER_DIRECTIVES]: the same server, new settings.
nginx_reload() {
	local dir=$TESTDIR/nginx-$1
	nginx_conf "$dir" "$2" "${3:-}" ""
	nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" -s reload
	sleep 0.5
}

# wait_listening PORT: until something listens there (5 s at most).
wait_listening() {
	local i
	for i in $(seq 50); do
		ss -ltn "sport = :$1" | grep -q LISTEN && return 0
		sleep 0.1
	done
	return 1
}

LOG=$TESTDIR/nginx-main/access.log
log_reset() { : >"$LOG"; }
# log_requests / log_bytes: requests and body bytes in the log, the
# documents (bmaps) included.
log_requests() { wc -l <"$LOG"; }
log_bytes() { awk '{ s += $2 } END { print s + 0 }' "$LOG"; }

nginx_start main || bail "nginx does not start"
MAIN=$PORT
URL=http://127.0.0.1:$MAIN

# ---- images: v1; v2 = /boot restamped in place; v3 = 1 MiB of root changed --
make_gpt_image v1.img || bail "make_gpt_image failed"
P1=$(part_offset v1.img 1) && S1=$(part_size v1.img 1) || bail "no partition 1"
P2=$(part_offset v1.img 2) || bail "no partition 2"
dd if=v1.img of=boot2.img bs=1M iflag=skip_bytes,count_bytes skip="$P1" \
	count="$S1" status=none
echo "variant 2" >stamp.txt
printf 'set default=0\nmenuentry v2 { linux /vmlinuz console=ttyS0 }\n' >grub.cfg
printf 'rm STAMP\nwrite stamp.txt STAMP\nrm grub/grub.cfg\nwrite grub.cfg grub/grub.cfg\n' >stamp.cmds
debugfs -w -f stamp.cmds boot2.img >/dev/null 2>&1 || bail "debugfs failed"
cp --sparse=always v1.img v2.img
replace_range v2.img "$P1" boot2.img
cp --sparse=always v1.img v3.img
head -c $MIB /dev/urandom | dd of=v3.img bs=1M seek=$((P2 / MIB + 20)) \
	conv=notrunc status=none

partpack -q -1 --keep-raw part1 --bmap "$WWW/v1.img.bmap" -o "$WWW/v1.img.xz" v1.img ||
	bail "partpack v1"
partpatch -q "$WWW/v1.img.xz" --partition part1 --input boot2.img \
	--output "$WWW/v2.img.xz" --bmap "$WWW/v1.img.bmap" \
	--bmap-output "$WWW/v2.img.bmap" || bail "partpatch v2"
partpack -q -1 --keep-raw part1 --reuse "$WWW/v1.img.xz" --bmap "$WWW/v3.img.bmap" \
	-o "$WWW/v3.img.xz" v3.img || bail "partpack v3"
# Seeds: v1 in every format, each with its bmap beside it, and bare copies
# without one; and the raw image.
cp "$WWW/v1.img.xz" "$WWW/v1.img.bmap" seeds/
cp "$WWW/v1.img.xz" bare/
for f in gz zst; do
	partpack -q -1 -F $f --keep-raw part1 --bmap seeds/v1.img.$f.bmap \
		-o seeds/v1.img.$f v1.img || bail "partpack -F $f"
done

# ---- the bmap: ranges of stored data on the 256 KiB grid ----------------------
check "partpack --bmap cuts ranges of the kept /boot on a 256 KiB grid" python3 - \
	"$WWW/v1.img.bmap" "$P1" "$S1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
p1, s1 = int(sys.argv[2]) // 4096, int(sys.argv[3]) // 4096
inside = 0
for first, last in re.findall(r'<Range[^>]*>\s*(\d+)(?:-(\d+))?\s*</Range>', text):
    first = int(first); last = int(last or first)
    if first >= p1 and last < p1 + s1:
        inside += 1
        assert first // 64 == last // 64, (first, last)
assert inside > 4, inside
EOF
if command -v bmaptool >/dev/null; then
	rm -f bmapcopy.img
	check "bmaptool copy reads it and writes v1" bash -c \
		"bmaptool -q copy --bmap '$WWW/v1.img.bmap' '$WWW/v1.img.xz' bmapcopy.img && cmp bmapcopy.img v1.img"
fi

# ---- partinfo URL -------------------------------------------------------------
log_reset
partinfo "$WWW/v1.img.xz" | sed 1d >info.local
check_stdout_cmp "partinfo URL prints what it prints for the file" info.local \
	bash -c "partinfo '$URL/v1.img.xz' | sed 1d"
check_eq "... in two range requests (the first and last 64 KiB)" 2 "$(log_requests)"
# Without a kept partition the partition table is in the first block,
# compressed: the .zst's first frame is decoded, asked for in one request
# (not 128 KiB at a time, as libzstd reads it, through read-ahead windows).
partpack -q -1 -F zst -o "$WWW/whole.img.zst" v1.img || bail "partpack -F zst"
partinfo "$WWW/whole.img.zst" | sed 1d >info.zst.local
log_reset
check_stdout_cmp "partinfo URL of a .zst whose partition table is compressed" \
	info.zst.local bash -c "partinfo '$URL/whole.img.zst' | sed 1d"
check_eq "... in three requests (the ends, the first frame)" 3 "$(log_requests)"
partinfo --json "$WWW/v1.img.xz" | sed 's/"file": "[^"]*"//' >json.local
check_stdout_cmp "partinfo --json URL too" json.local \
	bash -c "partinfo --json '$URL/v1.img.xz' | sed 's/\"file\": \"[^\"]*\"//'"

# ---- (c) no seed: the whole archive, once ----------------------------------------
log_reset
check "no seed: partcat URL -o writes v1" partcat "$URL/v1.img.xz" -o c.img
check_cmp "... the image" v1.img c.img
size=$(size_of "$WWW/v1.img.xz")
check "... fetching at most the archive and the bmap, plus what opening reads ($(log_bytes) of $size bytes)" \
	test "$(log_bytes)" -le $((size + 2 * 65536 + $(size_of "$WWW/v1.img.bmap")))
rm -f c.img
check_stdout_cmp "... to standard output" v1.img partcat "$URL/v1.img.xz" --seed v3.img
mkfifo c.pipe
timeout 60 cat c.pipe >c.img &
check "... into a named pipe with --force: written in place" \
	partcat "$URL/v1.img.xz" --seed v3.img -f -o c.pipe
wait
check_cmp "... the image" v1.img c.img
check "... and the pipe is still a pipe" test -p c.pipe
rm -f c.img c.pipe

# ---- (a) /boot restamped: the changed ranges only ----------------------------------
# The ranges of v2's bmap whose bytes differ from v1's, their bytes and
# their runs (ranges that touch make one run): what a fetch by ranges
# needs at least.
read -r changed_bytes changed_runs < <(python3 - v1.img v2.img "$WWW/v2.img.bmap" <<'EOF'
import re, sys
a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
total, runs, end = 0, 0, None
for first, last in re.findall(r'<Range[^>]*>\s*(\d+)(?:-(\d+))?\s*</Range>', open(sys.argv[3]).read()):
    first = int(first); last = int(last or first)
    a.seek(first * 4096); b.seek(first * 4096)
    n = (last - first + 1) * 4096
    if a.read(n) == b.read(n):
        continue
    total += n
    runs += end is None or first != end + 1
    end = last
print(total, runs)
EOF
)
log_reset
check "restamped /boot: partcat URL --seed v1.img.xz writes v2" \
	partcat "$URL/v2.img.xz" --seed seeds/v1.img.xz -o a.img
check_cmp "... the image" v2.img a.img
bmap_bytes=$(size_of "$WWW/v2.img.bmap")
limit=$((changed_bytes * 105 / 100 + 65536 + 2 * 65536 + bmap_bytes))
check "... fetching $(log_bytes) bytes for $changed_bytes changed in /boot (at most $limit)" \
	test "$(log_bytes)" -le "$limit"
check "... in $(log_requests) requests for $changed_runs runs (at most runs + 4)" \
	test "$(log_requests)" -le $((changed_runs + 4))
# Ranges of stored data end on a 256 KiB grid: at most a grid cell per
# cell that changed (and what merging across gaps adds).
cells=$(python3 - v1.img v2.img "$P1" "$S1" <<'EOF'
import sys
a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
start, size, cell = int(sys.argv[3]), int(sys.argv[4]), 256 << 10
a.seek(start); b.seek(start)
print(sum(a.read(cell) != b.read(cell) for _ in range(size // cell)))
EOF
)
boot_fetched=$(grep -v '\.bmap$' "$LOG" | awk '$3 != "\"bytes=0-65535\"" { s += $2 } END { print s + 0 }')
check "... no more than the $cells changed 256 KiB cells of /boot ($boot_fetched bytes)" \
	test "$boot_fetched" -le $((cells * 262144 + 65536))
rm -f a.img

# Seeds of every kind and format.
for seed in seeds/v1.img.gz seeds/v1.img.zst bare/v1.img.xz v1.img; do
	check "restamped /boot, seed $seed: v2" partcat "$URL/v2.img.xz" --seed "$seed" -o a.img
	check_cmp "... the image" v2.img a.img
	rm -f a.img
done
log_reset
check "two seeds, the first unrelated: v2" partcat "$URL/v2.img.xz" --seed v3.img \
	--seed seeds/v1.img.zst -v -o a.img
check_cmp "... the image" v2.img a.img
rm -f a.img

# ---- (b) 1 MiB changed in root, repacked ---------------------------------------------
# The blocks that differ between v1.img.xz and v3.img.xz, their compressed
# bytes and runs.
blocks() { partinfo --json --blocks "$1" | python3 -c '
import json, sys
for b in json.load(sys.stdin)["block_list"]:
    print(b["uncompressed_offset"], b["uncompressed_size"], b["total_size"])'; }
blocks "$WWW/v1.img.xz" >v1.blocks
blocks "$WWW/v3.img.xz" >v3.blocks
read -r diff_bytes diff_runs < <(python3 - v1.img v3.img v3.blocks <<'EOF'
import sys
a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
total, runs, last = 0, 0, False
for line in open(sys.argv[3]):
    off, size, fsize = map(int, line.split())
    a.seek(off); b.seek(off)
    differs = a.read(size) != b.read(size)
    if differs:
        total += fsize
        runs += not last
    last = differs
print(total, runs)
EOF
)
blocks_count=$(wc -l <v3.blocks)
index=$((2 * 65536))
for bmap in "" --no-bmap; do
	log_reset
	check "root changed and repacked ${bmap:-with bmaps}: v3" \
		partcat "$URL/v3.img.xz" --seed seeds/v1.img.xz $bmap -o b.img
	check_cmp "... the image" v3.img b.img
	extra=$(grep '\.bmap' "$LOG" | awk '{ s += $2 } END { print s + 0 }')
	limit=$((diff_bytes * 105 / 100 + index + 65536 + extra))
	check "... fetching $(log_bytes) bytes for $diff_bytes of changed blocks (at most $limit)" \
		test "$(log_bytes)" -le "$limit"
	# Without bmaps, a block's check is read where it is not in what
	# opening read: a request each at most.
	reads=$([ -n "$bmap" ] && echo "$blocks_count" || echo 0)
	check "... in $(log_requests) requests for $diff_runs runs (at most runs + 4${bmap:+ + $reads check reads})" \
		test "$(log_requests)" -le $((diff_runs + 4 + reads))
	rm -f b.img
done

# ---- --archive: the served file, byte for byte, in every format -----------------------
for fmt in xz gz zst; do
	F=$(case $fmt in gz) echo gzip ;; zst) echo zstd ;; *) echo xz ;; esac)
	[ $fmt = xz ] || partpack -q -1 -F $F --keep-raw part1 -o "$WWW/v2.img.$fmt" v2.img ||
		bail "partpack v2 $fmt"
	seed=$([ $fmt = xz ] && echo seeds/v1.img.xz || echo seeds/v1.img.$fmt)
	log_reset
	check "--archive, $fmt, seed $seed" partcat "$URL/v2.img.$fmt" --seed "$seed" \
		--archive -o a.$fmt
	check_cmp "... equals the served file" "$WWW/v2.img.$fmt" a.$fmt
	check "... fetching less than half of it ($(log_bytes) bytes)" \
		test "$(log_bytes)" -lt $(($(size_of "$WWW/v2.img.$fmt") / 2))
	rm -f a.$fmt
done
sha256sum "$WWW/v2.img.xz" | sed "s|$WWW/||" >SHA256SUMS
echo "0000000000000000000000000000000000000000000000000000000000000000  other.xz" >>SHA256SUMS
check "--archive --sha256 SHA256SUMS: verified" partcat "$URL/v2.img.xz" \
	--seed seeds/v1.img.xz --archive --sha256 SHA256SUMS -o v2.img.xz
check_cmp "... the served file" "$WWW/v2.img.xz" v2.img.xz
check_fails "a wrong --sha256: status 4, one line" 4 partcat "$URL/v2.img.xz" \
	--seed seeds/v1.img.xz --sha256 "$(sha256sum v1.img | cut -d' ' -f1)" -o wrong.img
check "... nothing at OUT, nothing beside it" bash -c \
	'! ls -a | grep -q "wrong.img"'

# A seed whose kept /boot has bytes in a 256 KiB cell the target's bmap
# leaves unmapped (a hole in the target: zeros), both neighbours unmapped
# too: every range the target maps is the seed's, cut alike, yet the
# seed's block is not the target's.  --archive must not copy it.
cell=$(python3 - "$WWW/v1.img.bmap" "$P1" "$S1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
p1, s1, grid = int(sys.argv[2]), int(sys.argv[3]), 256 * 1024
mapped = set()
for first, last in re.findall(r'<Range[^>]*>\s*(\d+)(?:-(\d+))?\s*</Range>', text):
    for b in range(int(first), int(last or first) + 1):
        mapped.add(b * 4096 // grid)
for c in range(p1 // grid + 1, (p1 + s1) // grid - 1):
    if not {c - 1, c, c + 1} & mapped:
        print(c * grid)
        break
EOF
)
[ -n "$cell" ] || bail "no unmapped cell in /boot's free space"
mkdir -p dirty
cp --sparse=always v1.img dirty.img
head -c 4096 /dev/urandom | dd of=dirty.img bs=4096 seek=$((cell / 4096)) \
	conv=notrunc status=none
partpack -q -1 --keep-raw part1 --bmap dirty/v1.img.xz.bmap -o dirty/v1.img.xz \
	dirty.img || bail "partpack dirty"
for sum in "" "$(sha256sum <"$WWW/v1.img.xz" | cut -d' ' -f1)"; do
	check "--archive${sum:+ --sha256}, a seed with bytes in the target's hole" \
		partcat "$URL/v1.img.xz" --seed dirty/v1.img.xz --archive \
		${sum:+--sha256 "$sum"} -o dirty.xz
	check_cmp "... equals the served file" "$WWW/v1.img.xz" dirty.xz
	rm -f dirty.xz
done

# ---- a server without Range, 404, a damaged block -------------------------------------
PYPORT=$((20000 + RANDOM % 30000))
python3 -m http.server "$PYPORT" --bind 127.0.0.1 --directory "$WWW" \
	>python-http.log 2>&1 </dev/null &
SERVER_PIDS+=($!)
wait_listening "$PYPORT" || bail "http.server does not start"
partcat "http://127.0.0.1:$PYPORT/v2.img.xz" --seed seeds/v1.img.xz -o n.img 2>n.err
check_cmp "a server that ignores Range: the right image" v2.img n.img
check_eq "... said once" 1 "$(grep -c 'ignores Range' n.err)"
check_fails "404: status 1, one line" 1 partcat "$URL/missing.img.xz" -o m.img
check "... naming the URL and the status" grep -q "$URL/missing.img.xz: HTTP 404" <<<"$CHECK_STDERR"
check "... nothing at OUT" test ! -e m.img

cp "$WWW/v3.img.xz" "$WWW/bad.img.xz"
bad_block=3
flip_byte "$WWW/bad.img.xz" "$(sed -n "$((bad_block + 1))p" <(partinfo --json --blocks \
	"$WWW/v3.img.xz" | python3 -c '
import json, sys
for b in json.load(sys.stdin)["block_list"]:
    print(b["compressed_offset"] + b["total_size"] // 2)'))"
check_fails "a damaged served block: status 4, one line" 4 \
	partcat "$URL/bad.img.xz" --no-bmap -o d.img
check "... naming the block (numbered from 1)" grep -q "block $((bad_block + 1)) " <<<"$CHECK_STDERR"
check "... nothing at OUT" test ! -e d.img
# With --archive and --sha256, blocks are decoded only when the digest
# fails: then to name the one at fault.
check_fails "--archive --sha256 of the damaged file: status 4, one line" 4 \
	partcat "$URL/bad.img.xz" --seed seeds/v1.img.xz --archive \
	--sha256 "$(sha256sum "$WWW/v3.img.xz" | cut -d' ' -f1)" -o d.xz
check "... naming the block (numbered from 1)" grep -q "block $((bad_block + 1)) " <<<"$CHECK_STDERR"
check "... nothing at OUT, nothing beside it" bash -c '! ls -a | grep -q "d.xz"'

# ---- interrupted, then resumed ------------------------------------------------------------
# A slow server; the fetch is stopped with SIGTERM once two blocks are in,
# then, resumed, by the server going away part way, then resumed again to
# the end.
done_lines() { local n; n=$(grep -c '^done' .r.img.partcat-state 2>/dev/null); echo "${n:-0}"; }
wait_done() { # COUNT PID: until COUNT blocks are done (or PID ended)
	local i
	for i in $(seq 200); do
		[ "$(done_lines)" -ge "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
nginx_reload main "$MAIN" "limit_rate 1m;"
log_reset
partcat "$URL/v3.img.xz" -o r.img 2>r1.err &
pid=$!
wait_done 2 $pid
kill -TERM $pid
wait $pid
check "SIGTERM: nothing at OUT" test ! -e r.img
check "... the partial output and its state beside it" \
	test -f .r.img.partcat-partial -a -f .r.img.partcat-state
# At 128 KiB/s what is left takes seconds: a second in, the server goes.
nginx_reload main "$MAIN" "limit_rate 128k;"
partcat "$URL/v3.img.xz" -o r.img 2>r2.err &
pid=$!
sleep 1
nginx -c "$TESTDIR/nginx-main/nginx.conf" -p "$TESTDIR/nginx-main" -s stop
wait $pid
check_eq "the server gone part way: status 1" 1 $?
check "... one line naming the URL" test "$(grep -c "$URL/v3.img.xz" r2.err)" = 1 \
	-a "$(wc -l <r2.err)" = 1
check "... nothing at OUT" test ! -e r.img
nginx_conf "$TESTDIR/nginx-main" "$MAIN" "" ""
sleep 0.2
nginx -c "$TESTDIR/nginx-main/nginx.conf" -p "$TESTDIR/nginx-main" -e "$TESTDIR/nginx-main/error.log" ||
	bail "nginx does not restart"
wait_listening "$MAIN"
log_reset
# With the image's digest: the blocks kept from the earlier runs are
# hashed with the rest (fetchdigest.c hashes as blocks land).
partcat -v "$URL/v3.img.xz" --sha256 "$(sha256sum <v3.img | cut -d' ' -f1)" \
	-o r.img 2>r3.err
check_eq "rerun with --sha256: completes" 0 $?
check_cmp "... the image" v3.img r.img
check "... taking what the earlier runs fetched: $(grep -o '[^,;]* kept from an earlier run' r3.err)" \
	grep -q 'KiB kept from\|MiB kept from' r3.err
check "... and fetching only the rest ($(log_bytes) bytes of $(size_of "$WWW/v3.img.xz"))" \
	test "$(log_bytes)" -lt "$(size_of "$WWW/v3.img.xz")"
check "... leaving nothing beside OUT" test ! -e .r.img.partcat-state -a ! -e .r.img.partcat-partial
ln -s /etc/passwd .s.img.partcat-state
check_fails "a symbolic link where the state goes: refused" 1 partcat "$URL/v1.img.xz" -o s.img
check "... its target untouched" test ! -e s.img

# ---- https ----------------------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout tls.key -out tls.crt -days 1 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 ||
	bail "openssl req failed"
nginx_start tls "ssl_certificate $TESTDIR/tls.crt; ssl_certificate_key $TESTDIR/tls.key;" ssl ||
	bail "nginx with TLS does not start"
TLS=https://127.0.0.1:$PORT
check "https: partcat with the server's certificate authority" \
	env CURL_CA_BUNDLE="$TESTDIR/tls.crt" partcat "$TLS/v2.img.xz" --seed seeds/v1.img.xz -o h.img
check_cmp "... the image" v2.img h.img
check_fails "https with an unknown certificate: status 1, one line" 1 \
	env -u CURL_CA_BUNDLE -u SSL_CERT_FILE partcat "$TLS/v2.img.xz" -o h2.img
check "... naming the URL" grep -q "$TLS/v2.img.xz" <<<"$CHECK_STDERR"

# ---- nbdkit curl URL --filter=partpack ----------------------------------------------
FILTER=$PARTPACK_BUILD/nbdkit-partpack-filter.so
if [ -f "$FILTER" ] && command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null; then
	case ${PP_TEST_CFLAGS:-} in
	*fsanitize=address*) skip "nbdkit curl --filter=partpack" "sanitizer build" ;;
	*)
		check "nbdkit curl URL --filter=partpack: nbdcopy reads v2" \
			nbdkit -U - curl "$URL/v2.img.xz" --filter="$FILTER" \
			--run 'nbdcopy "$uri" nbd.img'
		check_cmp "... the image" v2.img nbd.img ;;
	esac
else
	skip "nbdkit curl URL --filter=partpack" "no filter, nbdkit or nbdcopy"
fi

# ---- S3 (s3rver from npm, in the build directory) --------------------------------------
S3RVER_VERSION=3.7.1
s3rver=$PARTPACK_BUILD/npm/node_modules/.bin/s3rver
if [ ! -x "$s3rver" ] && command -v npm >/dev/null; then
	npm install --silent --no-audit --no-fund --prefix "$PARTPACK_BUILD/npm" \
		"s3rver@$S3RVER_VERSION" >npm.log 2>&1 || cat npm.log | _pp_diag
fi
if [ ! -x "$s3rver" ]; then
	skip "S3 through s3rver" "npm is missing (s3rver $S3RVER_VERSION comes from the npm registry)"
else
	S3PORT=$((20000 + RANDOM % 30000))
	mkdir -p s3data
	"$s3rver" -d s3data -a 127.0.0.1 -p "$S3PORT" -s --configure-bucket images \
		>s3rver.log 2>&1 </dev/null &
	SERVER_PIDS+=($!)
	wait_listening "$S3PORT" || bail "s3rver does not start"
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
		AWS_ENDPOINT_URL=http://127.0.0.1:$S3PORT AWS_REGION=us-east-1
	put() {
		curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
			-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -T "$1" \
			"$AWS_ENDPOINT_URL/images/$2" -o /dev/null
	}
	put "$WWW/v2.img.xz" v42/v2.img.xz && put "$WWW/v2.img.bmap" v42/v2.img.bmap ||
		bail "uploading to s3rver failed"
	check_eq "s3rver refuses a signed GET without x-amz-content-sha256" 400 \
		"$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 \
			--user S3RVER:S3RVER "$AWS_ENDPOINT_URL/images/v42/v2.img.xz")"
	check "S3: partcat s3://images/v42/v2.img.xz --seed v1 writes v2" \
		partcat s3://images/v42/v2.img.xz --seed seeds/v1.img.xz -o s3.img
	check_cmp "... the image" v2.img s3.img
	partinfo "$WWW/v2.img.xz" | sed 1d >info2.local
	check_stdout_cmp "S3: partinfo s3://..." info2.local \
		bash -c "partinfo s3://images/v42/v2.img.xz | sed 1d"
	check_fails "S3: a missing key: status 1, one line" 1 partcat s3://images/v42/none.xz -o s3b.img
	check "... with S3's error code" grep -q "HTTP 404.*NoSuchKey" <<<"$CHECK_STDERR"
fi
