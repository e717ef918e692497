# partcat.sh - partcat writes the image, a partition or a byte range out of
# partpack's archives of every format and out of foreign files;
# sparse output (du shows the holes, cmp the bytes); the same bytes for
# every -T; refusals and a truncated archive leave nothing at OUT; and,
# through the examples, pp_map's extents against the image (zero extents
# really are zeros) and random pp_preads against it.

FORMATS=$(pp_formats) || bail "cannot list the library's formats"
for fmt in $FORMATS; do
	require_cmd "$(pp_format_tool "$fmt")"
done
require_cmd partcat partpack xz gzip cmp du dd python3 sfdisk mkfs.ext4 script

MAP=$PARTPACK_BUILD/examples/map
RANDOM_READ=$PARTPACK_BUILD/examples/random-read
[ -x "$MAP" ] && [ -x "$RANDOM_READ" ] || bail "build the examples first: $MAP, $RANDOM_READ"

# allocated FILE: bytes the file takes on disk (holes take none).
allocated() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1"))); }
# extract FILE OFFSET LENGTH: those bytes of FILE on stdout.
extract() { dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none; }

make_gpt_image img || bail "make_gpt_image failed"
P1=$(part_offset img 1) && S1=$(part_size img 1) &&
	P2=$(part_offset img 2) && S2=$(part_size img 2) || bail "no partitions"
SIZE=$(size_of img)
extract img "$P1" "$S1" >part1.img
extract img "$P2" "$S2" >part2.img
for fmt in $FORMATS; do
	check "pack .$fmt keeping part1" \
		partpack -q -1 -B 1MiB -F "$(pp_format_tool "$fmt")" --keep-raw part1 -o img.$fmt img
done

for a in $(printf 'img.%s ' $FORMATS); do
	# ---- every selector -------------------------------------------------
	check_stdout_cmp "$a: the whole image to stdout" img partcat "$a"
	check_stdout_cmp "$a: --partition part1" part1.img partcat --partition part1 "$a"
	check_stdout_cmp "$a: --partition name:root" part2.img partcat --partition name:root "$a"
	check_stdout_cmp "$a: --partition /dev/sda1" part1.img partcat -p /dev/sda1 "$a"
	# Across block edges and from compressed into stored data.
	off=$((P1 - 300000)) len=$((1048576 + 600001))
	extract img "$off" "$len" >range.img
	check_stdout_cmp "$a: --offset --length across blocks and kinds" range.img \
		partcat --offset "$off" --length "$len" "$a"
	extract img $((SIZE - 12345)) 12345 >tail.img
	check_stdout_cmp "$a: --offset alone runs to the end" tail.img partcat -O $((SIZE - 12345)) "$a"
	check_stdout_cmp "$a: --length past the end stops at the end" tail.img \
		partcat -O $((SIZE - 12345)) -l 1G "$a"
	check_stdout_cmp "$a: --length 0 writes nothing" /dev/null partcat -O 4096 -l 0 "$a"

	# ---- files, holes, threads ------------------------------------------
	check "$a: -o out.raw" partcat "$a" -o out.raw
	check_cmp "$a: out.raw is the image" img out.raw
	check "$a: auto makes holes: out.raw takes less than its size ($(allocated out.raw) < $SIZE)" \
		test "$(allocated out.raw)" -lt "$SIZE"
	check "$a: --sparse=never" partcat --sparse=never "$a" -o never.raw
	check_cmp "$a: ... the same bytes" img never.raw
	check "$a: ... and no holes" test "$(allocated never.raw)" -ge "$SIZE"
	check "$a: --sparse=always" partcat --sparse=always "$a" -o always.raw
	check_cmp "$a: ... the same bytes" img always.raw
	check "$a: ... and auto left as many holes: zeros inside decoded blocks too ($(allocated out.raw) <= $(allocated always.raw))" \
		test "$(allocated out.raw)" -le "$(allocated always.raw)"
	check "$a: stdout redirected to a file gets holes too" \
		bash -c 'partcat "$1" >redirect.raw && cmp "$2" redirect.raw &&
			test "$(stat -c %b redirect.raw)" -lt "$(stat -c %b never.raw)"' _ "$a" img
	check "$a: a partition to a file" partcat -p part1 "$a" -o p1.raw
	check_cmp "$a: ... is the partition" part1.img p1.raw
	check "$a: a range across blocks and kinds to a file, -T3" \
		partcat -T3 --offset "$off" --length "$len" "$a" -o range.raw
	check_cmp "$a: ... is the range" range.img range.raw
	for t in 1 2 3; do
		check "$a: -T$t" partcat -T$t --sparse=never "$a" -o t$t.raw
	done
	check_cmp "$a: -T1 and -T2 write the same bytes" t1.raw t2.raw
	check_cmp "$a: -T1 and -T3 write the same bytes" t1.raw t3.raw
	rm -f out.raw never.raw always.raw redirect.raw p1.raw range.raw t1.raw t2.raw t3.raw

	# ---- the map and pp_pread through the examples ------------------------
	"$MAP" "$a" >map.txt
	check_eq "$a: the map covers the image" "$SIZE" \
		"$(awk 'BEGIN { at = 0 } $1 != at { exit 1 } { at += $2 } END { print at }' map.txt)"
	check_eq "$a: its stored bytes are partition 1" "$S1" \
		"$(awk '$3 == "stored" { s += $2 } END { print s + 0 }' map.txt)"
	check "$a: it has zero extents" grep -q ' zero ' map.txt
	check "$a: every zero extent is zeros in the image, every other one is the image's bytes" \
		python3 - img "$a" map.txt <<'EOF'
import subprocess, sys
img, archive, listing = sys.argv[1:4]
data = open(img, "rb").read()
for line in open(listing):
    offset, length, kind, _ = line.split()
    offset, length = int(offset), int(length)
    if kind == "zero" and data[offset:offset + length].count(0) != length:
        sys.exit(f"zero extent {offset}+{length} holds data")
    got = subprocess.run(["partcat", "-O", str(offset), "-l", str(length), archive],
                         capture_output=True, check=True).stdout
    if got != data[offset:offset + length]:
        sys.exit(f"{kind} extent {offset}+{length}: partcat gives other bytes")
EOF
	for kind in stored data zero; do
		check "$a: random pp_preads in $kind extents, cold cache, match the image" \
			"$RANDOM_READ" --only $kind --cache 0 --compare img "$a" 300
	done
	check "$a: 3000 random pp_preads anywhere, default cache, match the image" \
		"$RANDOM_READ" --compare img "$a" 3000
	check "$a: random 1 MiB pp_preads across blocks match the image" \
		"$RANDOM_READ" --size 1MiB --compare img "$a" 50
done

# ---- refusals ---------------------------------------------------------------
echo old >exists.raw
check_fails "OUT exists: refused without -f, status 1" 1 partcat img.xz -o exists.raw
check_eq "... and OUT is untouched" old "$(cat exists.raw)"
check "with -f it is replaced" partcat -f img.xz -o exists.raw
check_cmp "... by the image" img exists.raw
mkfifo fifo
cmp fifo img >fifo.cmp 2>&1 &
check "-f -o FIFO writes into the pipe, no temporary file" partcat -f img.xz -o fifo
wait $! && ok "... and the reader gets the image" || not_ok "... and the reader gets the image" "$(cat fifo.cmp)"
check "-f -o /dev/null" partcat -f img.xz -o /dev/null
check "... leaves /dev/null a character device" test -c /dev/null
check_fails "-o a directory: status 2, a usage error" 2 partcat -f img.xz -o .
rm -f fifo fifo.cmp
check_fails "--partition with --offset: status 2" 2 partcat -p part1 -O 0 img.xz
check_fails "--sparse=sometimes: status 2" 2 partcat --sparse=sometimes img.xz
check_fails "-T x: status 2" 2 partcat -T x img.xz
check_fails "--offset past the end: status 2" 2 partcat -O $((SIZE + 1)) img.xz
check_fails "a partition the image does not have: status 1" 1 partcat -p part7 img.xz
check_fails "not an archive: status 1" 1 partcat img
cp img.xz pending.xz
echo incomplete >.pending.xz.partpatch-undo
check_fails "an interrupted patch pending: status 1" 1 partcat pending.xz -o pending.raw
case $CHECK_STDERR in
*"partpatch --recover pending.xz"*) ok "... saying how to recover" ;;
*) not_ok "... saying how to recover" "$CHECK_STDERR" ;;
esac
rm -f pending.xz .pending.xz.partpatch-undo
script -qec "partcat img.xz" /dev/null >tty.out </dev/null
check_eq "image data is not written to a terminal" \
	"partcat: image data not written to a terminal (use --output or a pipe)" \
	"$(tr -d '\r' <tty.out)"
script -qec "partcat img.xz -o tty.raw" /dev/null >tty.out </dev/null
if grep -aq 'partcat: writing: .*B (.*%), .*B/s' tty.out; then
	ok "a progress line on a terminal"
else
	not_ok "a progress line on a terminal" "$(tr '\r' '\n' <tty.out | tail -3)"
fi
check_cmp "... and the output is the image" img tty.raw
partcat -q img.xz -o quiet.raw 2>quiet.err
check_eq "-q: nothing on stderr" "" "$(cat quiet.err)"
rm -f exists.raw tty.raw quiet.raw

# ---- a truncated or damaged archive: an error and nothing at OUT --------------
no_output() {
	local out=$1
	if [ -e "$out" ] || compgen -G "$out.*" >/dev/null; then
		not_ok "... nothing left at $out" "$(ls -la "$out"* 2>&1)"
	else
		ok "... nothing left at $out"
	fi
}
head -c $(($(size_of img.xz) - 100)) img.xz >trunc.xz
check_fails "a truncated .xz: status 1, one line" 1 partcat trunc.xz -o trunc.raw
no_output trunc.raw
head -c $(($(size_of img.gz) / 2)) img.gz >trunc.gz
check_fails "a .gz cut in half: status 1, one line" 1 partcat trunc.gz -o trunc.raw
no_output trunc.raw
# Damage in the last compressed block: found while decoding, after
# earlier blocks were written to the temporary file.
cp img.xz bad.xz
data_at=$(awk '$3 == "data" { at = $4 } END { print at }' <("$MAP" img.xz))
flip_byte bad.xz $((data_at + 200)) 0x55
check_fails "a damaged block found half way: status 1 or 4, one line" "1|4" \
	partcat -T2 bad.xz -o bad.raw
no_output bad.raw

# A flipped byte in stored data (read, not decoded): its check still counts.
cp img.xz bad.xz
stored_at=$(awk '$3 == "stored" { print $4; exit }' <("$MAP" img.xz))
flip_byte bad.xz $((stored_at + 5000)) 0x01
check_fails "a flipped byte in stored data: status 4, one line" 4 \
	partcat -T2 -p part1 bad.xz -o bad.raw
no_output bad.raw
rm -f bad.xz

# A write that fails (a file size limit; SIGXFSZ ignored, so pwrite says
# EFBIG) on the thread that writes the workers' pieces: it stops the
# workers, and is the error.
for a in $(printf 'img.%s ' $FORMATS); do
	check_fails "$a: a write error: status 1, one line" 1 \
		bash -c 'trap "" XFSZ; ulimit -f 1024; partcat -q -T2 "$1" -o limited.raw' _ "$a"
	check "... naming OUT" grep -q "limited.raw" <<<"$CHECK_STDERR"
	no_output limited.raw
done

# ---- foreign files ------------------------------------------------------------
# Each format's own tool, in one block (xz from 5.6 on uses threads, and
# so blocks, unless told -T1).
for fmt in $FORMATS; do
	XZ_DEFAULTS=-T1 "$(pp_format_tool "$fmt")" -q -1 -c img >single.$fmt
done
xz -T2 -1 --block-size=4MiB -k -c img >multi.xz
for f in $(printf 'single.%s ' $FORMATS); do
	partcat "$f" >foreign.raw 2>foreign.err
	check_cmp "$f (one block): partcat writes the image" img foreign.raw
	check_eq "$f: says once that it cannot seek" 1 "$(grep -c 'cannot seek' foreign.err)"
	check_stdout_cmp "$f: --partition part1 still works" part1.img partcat -q -p part1 "$f"
	check "$f: -o with holes" partcat "$f" -o foreign.raw.2
	check_cmp "$f: ... the image" img foreign.raw.2
	rm -f foreign.raw.2
done
partcat multi.xz >foreign.raw 2>foreign.err
check_cmp "an xz -T2 file of 4 MiB blocks: the image" img foreign.raw
check_eq "... decoded block by block, no notice" "" "$(cat foreign.err)"
check_stdout_cmp "... and a partition out of it" part2.img partcat -p part2 multi.xz
rm -f foreign.raw foreign.err single.* multi.xz

# ---- memory: no buffer of a block's size per worker --------------------------
# Into a regular file the workers hand each decoded piece to one writer
# thread, which holds at most 8 MiB of pieces per worker: three 16 MiB
# blocks decoded by two workers take much less than the three block
# buffers of decoding whole blocks (48 MiB, 57 MiB of RSS in all).
peak_rss_kib() {
	python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}
yes 'partpack: no buffer of a block per worker' | head -c 48M >big.img
check "pack 48 MiB in 16 MiB blocks" partpack -q -0 -T2 -B 16MiB -o big.xz big.img
rss=$(peak_rss_kib partcat -q -T2 big.xz -o big.raw)
check_cmp "partcat -T2 -o: the image" big.img big.raw
check "... in less memory than three blocks take (${rss} KiB < 40960 KiB)" \
	test "${rss:-99999999}" -lt 40960
rm -f big.img big.xz big.raw
