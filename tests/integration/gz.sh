# gz.sh - issue 3 end to end: pack a GPT disk image to .gz keeping partition 1
# as stored deflate blocks, read it with every gzip decoder at hand, stamp a
# new partition 1 in place, read it again; patch a foreign gzip file whose
# stored blocks a zlib deflateParams() switch made; refusals; determinism.

require_cmd partpack partpatch partinfo gzip zcat pigz busybox python3 sfdisk mkfs.ext4 cmp

INFOCHECK=$PP_SRCDIR/tests/infocheck.py
BS=1MiB

# decoders_agree ARCHIVE IMAGE DESC: every decoder gives IMAGE, with no
# warning on stderr.
decoders_agree() {
	local a=$1 img=$2 what=$3 out
	out=$(gzip -t "$a" 2>&1) && [ -z "$out" ] && ok "$what: gzip -t, silent" ||
		not_ok "$what: gzip -t, silent" "$out"
	check_stdout_cmp "$what: zcat" "$img" zcat "$a"
	check_stdout_cmp "$what: pigz -dc" "$img" pigz -dc "$a"
	check_stdout_cmp "$what: busybox gunzip -c" "$img" busybox gunzip -c "$a"
	check "$what: Python's gzip" python3 -c '
import gzip, sys
if gzip.open(sys.argv[1]).read() != open(sys.argv[2], "rb").read():
    sys.exit("python gzip: output differs")' "$a" "$img"
	check "$what: partinfo --verify" partinfo --verify "$a"
}

# ---- the image -------------------------------------------------------------
make_stamp_images

# ---- pack, read, stamp, read ---------------------------------------------------
check "partpack -o img.gz --keep-raw part1" \
	partpack --keep-raw part1 --block-size=$BS -o img.gz img
check "--format=gzip -c writes the same bytes as -o NAME.gz" \
	bash -c 'partpack --format=gzip --keep-raw part1 --block-size=1MiB -c img | cmp - img.gz'
decoders_agree img.gz img "packed"
check "partinfo --json: gzip, crc32, stored_ranges exactly partition 1" \
	python3 "$INFOCHECK" img.gz --format gzip --check crc32 --size "$SIZE" --stored "$P1+$S1"
check "each block is a gzip member: partition 1's bytes are in the file verbatim" \
	python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
sys.exit(data.count(b"PARTPACK-FAKE-KERNEL old") != 1)' img.gz

cp img.gz stamped.gz
check "partpatch --offset P1START < newboot.img" partpatch stamped.gz --offset "$P1" <newboot.img
check_eq "patching keeps the archive's size" "$(size_of img.gz)" "$(size_of stamped.gz)"
decoders_agree stamped.gz expected.img "stamped"
cp img.gz bypart.gz
check "partpatch --partition name:boot --input newboot.img" \
	partpatch bypart.gz --partition name:boot --input newboot.img
check_cmp "--partition and --offset give the same archive" stamped.gz bypart.gz

# ---- determinism and layout ------------------------------------------------------
check "partpack -T1" partpack -T1 -F gzip --keep-raw part1 --block-size=$BS -o t1.gz img
check "partpack -T2" partpack -T2 -F gzip --keep-raw "$P1+$S1" --block-size=$BS -o t2.gz img
check_cmp "-T1 and -T2, part1 and START+LEN: the same bytes" t1.gz t2.gz
check_cmp "... and the same as the default thread count" t1.gz img.gz
if command -v strace >/dev/null; then
	# -y names each descriptor's file: count only reads of the archive.
	# Opening it takes 3 (magic, tail, index); the partition table partinfo
	# shows is in the first block, and nothing else is read: the member
	# read whole from byte 0 (decoding it), and before that its CRC-32 (is
	# it a zero block? lib/map.md), which lies inside it.
	strace -y -e trace=pread64,read partinfo img.gz 2>&1 >/dev/null |
		grep 'img.gz>' | sed 's/.*, \([0-9]*\), \([0-9]*\)) = .*/\2 \1/' >offsets.txt
	check_eq "partinfo reads the archive 3 times to open it: magic, tail, index" \
		"magic end end" "$(head -3 offsets.txt |
			awk '{ print ((NR == 1 && $1 == 0) ? "magic" : ($1 > 0) ? "end" : $1) }' | paste -sd' ')"
	check_eq "... then only the first block, for the partition table" "" \
		"$(tail -n +4 offsets.txt | awk '
			{ off[NR] = $1; end[NR] = $1 + $2 }
			$1 == 0 && $1 + $2 > first { first = $1 + $2 }
			END { for (i = 1; i <= NR; i++) if (!first || end[i] > first) print off[i] }')"
else
	skip "partinfo reads the archive 3 times" "no strace"
fi

# ---- refusals -------------------------------------------------------------------
cp img.gz refuse.gz
cp img.gz refuse.orig
check_stamp_refusals refuse.gz
check_fails "data longer than the partition named by --partition: status 2" 2 \
	partpatch refuse.gz --partition part1 --input img
check_fails "... also from a pipe" 2 \
	bash -c 'cat img | partpatch refuse.gz --partition name:boot'
check_fails "a partition the image does not have: status 1" 1 \
	partpatch refuse.gz --partition part7 --input newboot.img
check_cmp "refused patches leave the archive byte-identical" refuse.orig refuse.gz
rm -f refuse.gz refuse.orig t1.gz t2.gz

# ---- a gzip file partpack did not write ----------------------------------------
# One member: deflate, then partition 1 as stored blocks, then deflate again,
# the shape earlier "partial deflate" experiments made with zlib's
# deflateParams().  (tests/unit/test-gz.c makes such files with
# deflateParams itself, including ones whose later data copies from the
# region.)  Here the compressor after the region starts afresh, so nothing
# copies from it and all of partition 1 must be offered.
python3 - img foreign.gz "$P1" "$S1" <<'EOF'
import sys, zlib
img, out, p1, s1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = open(img, "rb").read()
# Raw deflate before the region ends on a full flush (byte-aligned); the
# region is written as stored blocks by hand; the whole is one member with
# the true CRC-32.
def raw(level, chunk, final):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = c.compress(chunk) + (c.flush(zlib.Z_FINISH) if final else c.flush(zlib.Z_FULL_FLUSH))
    return body
head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
region = data[p1:p1 + s1]
stored = bytearray()
for i in range(0, len(region), 65535):
    piece = region[i:i + 65535]
    stored += bytes([0]) + len(piece).to_bytes(2, "little") + (len(piece) ^ 0xffff).to_bytes(2, "little") + piece
body = raw(6, data[:p1], False) + bytes(stored) + raw(6, data[p1 + s1:], True)
trailer = zlib.crc32(data).to_bytes(4, "little") + (len(data) & 0xffffffff).to_bytes(4, "little")
open(out, "wb").write(head + body + trailer)
EOF
check "foreign: a single-member gzip with a stored region passes gzip -t" gzip -t foreign.gz
check "foreign: partinfo lists partition 1 as stored" \
	python3 "$INFOCHECK" foreign.gz --format gzip --stored "$P1+$S1"
cp foreign.gz foreign.orig
check "foreign: partpatch stamps partition 1" partpatch foreign.gz --offset "$P1" --input newboot.img
decoders_agree foreign.gz expected.img "foreign, stamped"
check_fails "foreign: a patch in compressed data is refused" 3 \
	partpatch foreign.orig --offset 0 --length 16 --input newboot.img
rm -f foreign.gz foreign.orig

# ---- a foreign gzip of 100,000 stored/compressed transitions ----------------
# Each stored run would be traced for copies, decoding 64 KiB twice: the
# scan's budget (4 times the file, at least 64 MiB) holds the later runs
# back instead, so the file opens in bounded time; every byte still reads.
python3 - runs.gz runs.img runs.at <<'PY'
import random, struct, sys, zlib
r = random.Random(1)
words = [b"alpha ", b"beta ", b"gamma ", b"delta\n", b"kappa ", b"omega "]
out = bytearray(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
image, runs = bytearray(), []
c = zlib.compressobj(6, zlib.DEFLATED, -15)
for i in range(100000):
    # A stored block by hand, then a compressed one that a full flush ends
    # on a byte boundary (with an empty stored block, a flush marker).
    stored = r.randbytes(24)
    runs.append(len(image))
    out += b"\x00" + struct.pack("<HH", 24, 0xffff ^ 24) + stored
    text = b"".join(r.choice(words) for _ in range(3))
    out += c.compress(text) + c.flush(zlib.Z_FULL_FLUSH)
    image += stored + text
out += b"\x01\x00\x00\xff\xff" + struct.pack("<II", zlib.crc32(image), len(image))
open(sys.argv[1], "wb").write(out)
open(sys.argv[2], "wb").write(image)
open(sys.argv[3], "w").write("%d %d\n" % (runs[0], runs[-2]))
PY
read -r FIRST_RUN LATE_RUN <runs.at
check "runs: $(($(size_of runs.gz) / 1000)) kB with 100,000 stored runs, gzip -t passes" gzip -t runs.gz
start=$(date +%s%N)
timeout 60 partinfo runs.gz >runs.info 2>runs.err
status=$?
ms=$((($(date +%s%N) - start) / 1000000))
check_eq "runs: partinfo opens it" 0 $status
# 2 s; a sanitizer build runs several times slower, and unbudgeted the
# scan takes minutes either way.
limit=2000
case ${PP_TEST_CFLAGS:-} in *-fsanitize*) limit=10000 ;; esac
check "runs: ... in at most $((limit / 1000)) s ($ms ms)" test $ms -le $limit
check "runs: ... saying that runs are held back" grep -q "runs of stored data are held back from patching" runs.err
check "runs: ... the first run is listed as stored" grep -q "^  $FIRST_RUN\.\.$((FIRST_RUN + 24)) " runs.info
cp runs.gz runs.orig
head -c 24 /dev/urandom >run.bin
partpatch runs.gz --offset "$LATE_RUN" --input run.bin 2>err.txt
check_eq "runs: a held-back run is refused for patching: status 3" 3 $?
check "runs: ... as not stored data (after the notice)" \
	grep -q "byte $LATE_RUN of the image is not stored data" err.txt
check_cmp "runs: ... the archive is unchanged" runs.orig runs.gz
check "runs: a traced run is patched" partpatch runs.gz --offset "$FIRST_RUN" --input run.bin
cp runs.img runs-new.img
replace_range runs-new.img "$FIRST_RUN" run.bin
check "runs: ... gzip -t passes" gzip -t runs.gz
check_stdout_cmp "runs: ... and partcat reads every byte of the patched image" runs-new.img partcat runs.gz
