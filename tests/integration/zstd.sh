# zstd.sh - issue 12 end to end: pack a GPT disk image to .zst keeping
# partition 1 as frames of raw blocks, read it with every zstd decoder at
# hand, stamp a new partition 1 in place, read it again; the seek table;
# determinism; refusals; .zst files partpack did not write.

require_cmd partpack partpatch partinfo zstd zstdcat python3 sfdisk mkfs.ext4 cmp

INFOCHECK=$PP_SRCDIR/tests/infocheck.py
BS=1MiB

# The Python with the zstandard module, if any.
PYZSTD=$(python_with zstandard)

# py_zstd_cmp ARCHIVE IMAGE: python's zstandard, reading across frames,
# gives IMAGE.
py_zstd_cmp() {
	"$PYZSTD" - "$1" "$2" <<'EOF'
import sys, zstandard
with open(sys.argv[1], "rb") as f:
    got = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
want = open(sys.argv[2], "rb").read()
if got != want:
    sys.exit(f"zstandard: {len(got)} bytes, image {len(want)} bytes, differ")
EOF
}

# decoders_agree ARCHIVE IMAGE DESC: every decoder gives IMAGE.
decoders_agree() {
	local a=$1 img=$2 what=$3
	check "$what: zstd -t" zstd -qt "$a"
	check_stdout_cmp "$what: zstd -dc" "$img" zstd -qdc "$a"
	check_stdout_cmp "$what: zstdcat" "$img" zstdcat -q "$a"
	check_stdout_cmp "$what: zstd -T2 -d" "$img" zstd -qT2 -dc "$a"
	if [ -n "$PYZSTD" ]; then
		check "$what: Python's zstandard" py_zstd_cmp "$a" "$img"
	else
		skip "$what: Python's zstandard" "no python3 with the zstandard module"
	fi
	check "$what: partinfo --verify" partinfo --verify "$a"
}

# seek_table ARCHIVE: checks the seekable format's table against the frames
# themselves (each frame's size, content size and checksum) and prints the
# frame count.
seek_table() {
	python3 - "$1" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
n, desc, magic = struct.unpack("<IBI", data[-9:])
assert magic == 0x8F92EAB1, "no seekable footer"
assert desc & 0x7C == 0, "reserved bits"
entry = 12 if desc & 0x80 else 8
size = n * entry + 9
start = len(data) - size - 8
m, body = struct.unpack("<II", data[start:start + 8])
assert m == 0x184D2A5E and body == size, "skippable frame header"
at = 0
for i in range(n):
    e = data[start + 8 + i * entry: start + 8 + (i + 1) * entry]
    csize, dsize = struct.unpack("<II", e[:8])
    frame = data[at:at + csize]
    assert struct.unpack("<I", frame[:4])[0] == 0xFD2FB528, f"frame {i} magic"
    fhd = frame[4]
    assert fhd & 0xC0, f"frame {i}: no content size"
    if entry == 12:
        assert fhd & 0x04, f"frame {i}: no checksum"
        assert frame[-4:] == e[8:], f"frame {i}: the table's checksum differs"
    at += csize
assert at == start, "frames do not end where the table starts"
print(n)
EOF
}

# ---- the image -------------------------------------------------------------
make_stamp_images

# ---- pack, read, stamp, read ---------------------------------------------------
check "partpack -o img.zst --keep-raw part1" \
	partpack --keep-raw part1 --block-size=$BS -o img.zst img
check "--format=zstd -c writes the same bytes as -o NAME.zst" \
	bash -c 'partpack --format=zstd --keep-raw part1 --block-size=1MiB -c img | cmp - img.zst'
check "... and the same as INPUT.zst from --format=zstd" \
	bash -c 'cp img in && partpack -F zstd --keep-raw part1 --block-size=1MiB in && cmp in.zst img.zst'
decoders_agree img.zst img "packed"
check "partinfo --json: zstd, xxh64, stored_ranges exactly partition 1" \
	python3 "$INFOCHECK" img.zst --format zstd --check xxh64 --size "$SIZE" --stored "$P1+$S1"
frames=$(seek_table img.zst) && ok "the seek table lists every frame, with its checksum" ||
	not_ok "the seek table lists every frame, with its checksum"
check_eq "one frame per 1 MiB block" "$((SIZE / 1048576))" "${frames:-0}"
if off=$(find_bytes img.zst "PARTPACK-FAKE-KERNEL old"); then
	ok "partition 1's bytes are in the archive verbatim"
else
	not_ok "partition 1's bytes are in the archive verbatim"
fi

cp img.zst stamped.zst
check "partpatch --offset P1START < newboot.img" partpatch stamped.zst --offset "$P1" <newboot.img
check_eq "patching keeps the archive's size" "$(size_of img.zst)" "$(size_of stamped.zst)"
decoders_agree stamped.zst expected.img "stamped"
check "stamped: the seek table's checksums follow the frames'" seek_table stamped.zst
cp img.zst bypart.zst
check "partpatch --partition part1 --input newboot.img" \
	partpatch bypart.zst --partition part1 --input newboot.img
check_cmp "--partition and --offset give the same archive" stamped.zst bypart.zst
check "patching back the old partition 1 gives the packed archive again" \
	bash -c 'dd if=img bs=1M iflag=skip_bytes,count_bytes skip='"$P1"' count='"$S1"' status=none |
		partpatch bypart.zst --offset '"$P1"' && cmp bypart.zst img.zst'

# ---- checks, levels ------------------------------------------------------------
check "--check none" partpack -1 --check none --keep-raw part1 --block-size=$BS -o none.zst img
check "--check none: partinfo says none" python3 "$INFOCHECK" none.zst --check none --stored "$P1+$S1"
check "--check none: no checksums in the seek table" \
	python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.exit(d[-5] & 0x80)' none.zst
check "--check none: partpatch" partpatch none.zst --offset "$P1" --input newboot.img
decoders_agree none.zst expected.img "--check none, stamped"
check_fails "--check crc64 is not a zstd check: status 2" 2 \
	partpack -F zstd --check crc64 -c img
check_fails "--check xxh64 is not an xz check: status 2" 2 \
	partpack -F xz --check xxh64 -c img
check_fails "-20 is past zstd's levels: status 2" 2 partpack -F zstd -20 -c img
check_fails "-12 is past xz's levels: status 2" 2 partpack -F xz -12 -c img
check "-19 and -1 both read back" bash -c '
	partpack -19 -F zstd --block-size=1MiB -c img | zstd -qdc | cmp - img &&
	partpack -1 -F zstd --block-size=1MiB -c img | zstd -qdc | cmp - img'
check "-19 is level 19, not -1 then -9 (which is -9)" bash -c '
	partpack -1 -9 -F zstd --block-size=1MiB -c img >a.zst &&
	partpack -9 -F zstd --block-size=1MiB -c img | cmp -s - a.zst &&
	! partpack -19 -F zstd --block-size=1MiB -c img | cmp -s - a.zst'

# ---- determinism ----------------------------------------------------------------
check "partpack -T1" partpack -T1 -F zstd --keep-raw part1 --block-size=$BS -o t1.zst img
check "partpack -T2" partpack -T2 -F zstd --keep-raw "$P1+$S1" --block-size=$BS -o t2.zst img
check_cmp "-T1 and -T2, part1 and START+LEN: the same bytes" t1.zst t2.zst
check_cmp "... and the same as the defaults (-3, xxh64)" t1.zst img.zst
check "the image from a pipe" bash -c 'cat img | partpack -F zstd --keep-raw "$1" --block-size=1MiB -c >pipe.zst' _ "$P1+$S1"
check_cmp "... gives the same bytes" pipe.zst img.zst
rm -f t1.zst t2.zst pipe.zst

# ---- refusals -------------------------------------------------------------------
cp img.zst refuse.zst
cp img.zst refuse.orig
check_stamp_refusals refuse.zst
check_fails "data longer than the partition: status 2" 2 \
	partpatch refuse.zst --partition part1 --input img
check_fails "a partition the image does not have: status 1" 1 \
	partpatch refuse.zst --partition part7 --input newboot.img
check_cmp "refused patches leave the archive byte-identical" refuse.orig refuse.zst
rm -f refuse.zst refuse.orig

# ---- .zst files partpack did not write --------------------------------------------
# Stock zstd: one frame with its content size, no seek table.  Readable
# (scanned), but partition 1 is compressed: refused.
check "stock zstd -3 of the image" zstd -q -3 -o stock.zst img
check "stock: partinfo --verify" partinfo --verify stock.zst
check "stock: partinfo --json" python3 "$INFOCHECK" stock.zst --format zstd --size "$SIZE"
cp stock.zst stock.orig
check_fails "stock: patching partition 1 is refused: status 3" 3 \
	partpatch stock.zst --partition part1 --input newboot.img
check_cmp "stock: ... and the file is byte-identical" stock.orig stock.zst
# From a pipe zstd does not record the content size: the frame is decoded
# once when opened to learn it; it reads like any other, and patches nothing.
check "stock zstd from a pipe" bash -c 'cat img | zstd -q -1 >pipe.zst'
check_eq "no content size: partinfo gives the image's size" "$SIZE" \
	"$(partinfo --json pipe.zst | python3 -c 'import json, sys; print(json.load(sys.stdin)["uncompressed_size"])')"
check_stdout_cmp "... partcat gives the image" img partcat pipe.zst
cp pipe.zst pipe.orig
check_fails "... a patch of it is refused: status 3" 3 \
	partpatch pipe.zst --partition part1 --input newboot.img
check_cmp "... and the file is byte-identical" pipe.orig pipe.zst

# Hand-made: zstd frames around partition 1, which is one frame of raw
# blocks in the other header shape (Single_Segment, 4-byte content size, no
# window descriptor) and with a skippable frame in the middle; then the
# same with a compressed block after the raw ones in partition 1's frame,
# which later matches may copy from: refused.
if [ -n "$PYZSTD" ]; then
	"$PYZSTD" - img foreign.zst foreign-tail.zst "$P1" "$S1" <<'EOF'
import struct, sys, zstandard
img, out, out_tail, p1, s1 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
data = open(img, "rb").read()
region = data[p1:p1 + s1]
def zframe(chunk):
    return zstandard.ZstdCompressor(level=1, write_checksum=True, write_content_size=True).compress(chunk)
def checksum(chunk):
    # The last 4 bytes of a checksummed frame of the same content.
    return zframe(chunk)[-4:]
def raw_blocks(chunk, last):
    out = bytearray()
    for i in range(0, len(chunk), 131072):
        piece = chunk[i:i + 131072]
        end = last and i + 131072 >= len(chunk)
        out += struct.pack("<I", int(end) | 0 << 1 | len(piece) << 3)[:3] + piece
    return bytes(out)
# Single_Segment, FCS 4 bytes (flag 2), checksum: 0x80 | 0x20 | 0x04
head = struct.pack("<IB", 0xFD2FB528, 0xA4) + struct.pack("<I", len(region))
raw = head + raw_blocks(region, True) + checksum(region)
skip = struct.pack("<II", 0x184D2A53, 5) + b"hello"
open(out, "wb").write(zframe(data[:p1]) + skip + raw + zframe(data[p1 + s1:]))
# The tail variant: the raw blocks, then one compressed block of 64 KiB of
# the data after the partition, taken from a frame of its own.
more = data[p1 + s1:p1 + s1 + 65536]
f = zstandard.ZstdCompressor(level=1, write_checksum=False, write_content_size=True).compress(more)
params = zstandard.get_frame_parameters(f)
hsize = zstandard.frame_header_size(f)
block = f[hsize:]
bh = int.from_bytes(block[:3], "little")
assert bh & 1 and (bh >> 1) & 3 == 2 and 3 + (bh >> 3) == len(block), "one compressed last block"
content = region + more
head = struct.pack("<IBB", 0xFD2FB528, 0xC4, 16 << 3) + struct.pack("<Q", len(content))
mixed = head + raw_blocks(region, False) + block + checksum(content)
open(out_tail, "wb").write(zframe(data[:p1]) + mixed + zframe(data[p1 + s1 + 65536:]))
EOF
	check "foreign: zstd -t accepts the hand-made file" zstd -qt foreign.zst
	check "foreign: partinfo lists partition 1 as stored" \
		python3 "$INFOCHECK" foreign.zst --format zstd --stored "$P1+$S1"
	cp foreign.zst foreign.orig
	check "foreign: partpatch stamps partition 1" partpatch foreign.zst --partition part1 --input newboot.img
	decoders_agree foreign.zst expected.img "foreign, stamped"
	check_fails "foreign: a patch in compressed data is refused" 3 \
		partpatch foreign.orig --offset 0 --length 16 --input newboot.img
	check "foreign with a compressed block after the raw ones: zstd -t" zstd -qt foreign-tail.zst
	check "... partinfo --verify" partinfo --verify foreign-tail.zst
	check "... partinfo offers nothing" python3 "$INFOCHECK" foreign-tail.zst --no-stored
	cp foreign-tail.zst tail.orig
	check_fails "... partpatch refuses partition 1: status 3" 3 \
		partpatch foreign-tail.zst --partition part1 --input newboot.img
	check_cmp "... and the file is byte-identical" tail.orig foreign-tail.zst
else
	skip "foreign hand-made .zst files" "no python3 with the zstandard module"
fi
