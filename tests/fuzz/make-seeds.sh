#!/usr/bin/env bash
# tests/fuzz/make-seeds.sh BUILD_DIR OUT_DIR - writes the fuzzers' seed corpora.
#
# Seeds are generated, never committed: small archives made with
# BUILD_DIR/partpack (every format and check, stored ranges, one block or
# many), with xz, gzip and zstd themselves, multi-stream and multi-member
# files, and gzip streams from zlib at level 0 (stored blocks).  Images are a few
# KiB with small blocks, so the fuzzers start from inputs that already reach
# the index, the stored-extent lists and the checks.
#
#   OUT_DIR/xz-open for fuzz-xz-open
#   OUT_DIR/gz-open for fuzz-gz-open
#   OUT_DIR/zstd-open for fuzz-zstd-open
#   OUT_DIR/patch   for fuzz-patch (its own input layout; see fuzz-patch.c)
#   OUT_DIR/bmap    for fuzz-bmap (bmap files partpack --bmap wrote)
#   OUT_DIR/undo    for fuzz-undo (undo records, PPUNDO02 and the older
#                   PPUNDO01, for the harness's archive of 196731 bytes)
#
# Needs python3 for deterministic noise and the zlib streams.

set -eu

[ $# -eq 2 ] || { echo "usage: tests/fuzz/make-seeds.sh BUILD_DIR OUT_DIR" >&2; exit 2; }
partpack=$1/partpack
out=$2
[ -x "$partpack" ] || { echo "make-seeds: $partpack: not built" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/partpack-seeds.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -rf "$out/xz-open" "$out/gz-open" "$out/zstd-open" "$out/patch" "$out/bmap" "$out/undo"
mkdir -p "$out/xz-open" "$out/gz-open" "$out/zstd-open" "$out/patch" "$out/bmap" "$out/undo"

# ---- images: text, noise and zeros, so blocks of every kind appear -------
python3 - "$work" <<'EOF'
import random, sys
random.seed(5)
text = b"".join(b"line %d of a seed image\n" % i for i in range(400))
noise = random.randbytes(8192)
with open(sys.argv[1] + "/image", "wb") as f:
    f.write(text[:8192] + noise + bytes(8192) + noise[:4096])  # 28 KiB
with open(sys.argv[1] + "/noise", "wb") as f:
    f.write(noise)
with open(sys.argv[1] + "/text", "wb") as f:
    f.write(text)
EOF
: >"$work/empty"

pack() {  # pack NAME IMAGE OPTION...
	local name=$1 image=$2
	shift 2
	"$partpack" -q -f -T 1 "$@" -o "$name" "$image"
}

# pack_set DIR FORMAT EXT [CHECK...]: the archives every format's seeds
# start with: per CHECK (none named: the format's default, and no prefix)
# CHECK-kept (two kept ranges across small blocks) and CHECK-plain; then
# one block with a kept range, all kept, and an empty image.
pack_set() {
	local dir=$1 format=$2 ext=$3 check prefix
	local -a copt
	shift 3
	for check in "${@:-}"; do
		prefix=${check:+$check-}
		copt=()
		[ -z "$check" ] || copt=(-C "$check")
		pack "$dir/${prefix}kept.$ext" "$work/image" -F "$format" "${copt[@]}" \
			-B 4KiB -K 5000+6000 -K 20480+2048
		pack "$dir/${prefix}plain.$ext" "$work/image" -F "$format" "${copt[@]}" -B 8KiB
	done
	pack "$dir/one-block.$ext" "$work/image" -F "$format" -B 1MiB -K 100:200
	pack "$dir/all-kept.$ext" "$work/noise" -F "$format" -B 4KiB -K 0:8192
	pack "$dir/empty.$ext" "$work/empty" -F "$format"
}

# ---- xz ---------------------------------------------------------------------
pack_set "$out/xz-open" xz xz crc32 crc64 sha256
cat "$out/xz-open/crc32-kept.xz" "$out/xz-open/sha256-kept.xz" >"$out/xz-open/multi-stream.xz"
{ cat "$out/xz-open/crc64-plain.xz"; printf '\0\0\0\0'; cat "$out/xz-open/one-block.xz"; } \
	>"$out/xz-open/stream-padding.xz"
xz -c -6 "$work/text" >"$out/xz-open/xz-tool.xz"
xz -c -0 --check=none --block-size=2KiB "$work/image" >"$out/xz-open/xz-tool-blocks.xz"
xz -c --check=sha256 "$work/noise" >"$out/xz-open/xz-tool-noise.xz"

# ---- gzip -------------------------------------------------------------------
pack_set "$out/gz-open" gzip gz
cat "$out/gz-open/kept.gz" "$out/gz-open/plain.gz" >"$out/gz-open/multi-archive.gz"
gzip -c -n "$work/text" >"$out/gz-open/gzip-tool.gz"
gzip -c -n "$work/noise" >"$out/gz-open/gzip-tool-noise.gz"
gzip -c "$work/image" >"$out/gz-open/gzip-tool-name.gz"  # FNAME, MTIME set
gzip -c -n <"$work/empty" >"$out/gz-open/gzip-tool-empty.gz"
cat "$out/gz-open/gzip-tool.gz" "$out/gz-open/gzip-tool-noise.gz" >"$out/gz-open/gzip-members.gz"
python3 - "$work" "$out/gz-open" <<'EOF'
import sys, zlib
work, out = sys.argv[1], sys.argv[2]
image = open(work + "/image", "rb").read()
def gzip_stream(data, level, wbits=31):
    z = zlib.compressobj(level, zlib.DEFLATED, wbits)
    return z.compress(data) + z.flush()
# All stored blocks, one member.
open(out + "/zlib-level0.gz", "wb").write(gzip_stream(image, 0))
# Compressed, stored, compressed: members, as zlib cannot switch level here.
mixed = (gzip_stream(image[:5000], 6) + gzip_stream(image[5000:11000], 0)
         + gzip_stream(image[11000:], 9))
open(out + "/zlib-mixed.gz", "wb").write(mixed)
# A zlib (RFC 1950) stream is not gzip: it must be refused cleanly.
open(out + "/zlib-wrapper.gz", "wb").write(gzip_stream(image, 0, 15))
EOF

# ---- zstd -------------------------------------------------------------------
pack_set "$out/zstd-open" zstd zst xxh64 none
# Without a seek table: stock zstd (one frame with its content size, or
# none when reading a pipe), and several frames with a skippable one.
zstd -q -c -3 --check "$work/image" >"$out/zstd-open/zstd-tool.zst"
zstd -q -c -1 --no-check "$work/noise" >"$out/zstd-open/zstd-tool-noise.zst"
zstd -q -c -1 <"$work/text" >"$out/zstd-open/zstd-tool-pipe.zst"
{ cat "$out/zstd-open/zstd-tool.zst"; printf '\x50\x2a\x4d\x18\x02\0\0\0hi'; \
	cat "$out/zstd-open/zstd-tool-noise.zst"; } >"$out/zstd-open/zstd-frames.zst"

# ---- patch inputs: archive, mode, delta, raw offset, length, data ---------
# Modes 0 and 1 measure from the start and end of kept range 0, 4 and 5 of
# range 1, 2 from a block edge, 3 take the raw offset; 0x80 is a dry run.
zero7='\0\0\0\0\0\0\0'
for archive in 0 1 2 3 4 5 6; do
	a="\\x0$archive"
	for mode in 00 01 02 04 05 80; do
		printf '%b' "$a\\x$mode\\x10\\x00\\x01$zero7\\x00\\x10\\x00patched by a seed" \
			>"$out/patch/a$archive-m$mode"
	done
	# Straddles the start of range 0: must be refused.
	printf '%b' "$a\\x00\\xf0\\xff\\0$zero7\\x00\\x02\\x00x" >"$out/patch/a$archive-straddle"
	# Offset near 2^64: past the end, however it is added up.
	printf '%b' "$a\\x03\\0\\0\\xf0\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\x01\\x00y" \
		>"$out/patch/a$archive-overflow"
done

# ---- bmap files: sparse and dense images, a pipe ---------------------------
truncate -s 64K "$work/sparse"
dd if="$work/image" of="$work/sparse" bs=4096 seek=5 conv=notrunc status=none
"$partpack" -q -f -T 1 -B 8KiB -K 20000+9000 --bmap "$out/bmap/sparse.bmap" \
	-o "$work/sparse.xz" "$work/sparse"
"$partpack" -q -f -T 1 -B 4KiB --bmap "$out/bmap/dense.bmap" -o "$work/image.xz" "$work/image"
"$partpack" -q -f -T 1 --bmap "$out/bmap/pipe.bmap" -c <"$work/text" >"$work/text.xz"
"$partpack" -q -f -T 1 --bmap "$out/bmap/empty.bmap" -o "$work/empty.xz" "$work/empty"

# ---- undo records: entries at the head, the tail, across the 64 KiB edge --
# Written as journal.c lays them out, with a zero binding (fuzz-undo makes
# it right) and a right CRC; and broken ones: cut short, an entry past the
# end, the older format, an empty file.
python3 - "$out/undo" <<'EOF'
import random, struct, sys, zlib
out = sys.argv[1]
size = 192 * 1024 + 123        # fuzz-undo.c's ARCHIVE_SIZE
r = random.Random(9)
END = (1 << 64) - 1
def record(entries, magic=b"PPUNDO02", cut=None):
    body = magic + struct.pack("<QQQQ", size, 0, 0, 0)
    for offset, length in entries:
        body += struct.pack("<QI", offset, length) + r.randbytes(length)
    body += struct.pack("<QI", END, len(entries)) + bytes(32)
    body += struct.pack("<I", zlib.crc32(body))
    return body[:cut] if cut else body
def write(name, data):
    open("%s/%s" % (out, name), "wb").write(data)
write("one", record([(1000, 100)]))
write("ends", record([(0, 64), (size - 50, 50), (100000, 4096), (5, 0)]))
write("across-64k", record([(65536 - 30, 60), (size - 65536 - 10, 20)]))
write("many", record([(i * 1900, 17) for i in range(100)]))
write("cut-short", record([(0, 64), (100000, 4096)], cut=2000))
write("past-end", record([(size - 10, 100)]))
old = b"PPUNDO01" + struct.pack("<Q", size) + struct.pack("<QI", 1000, 8) + b"U" * 8
old += struct.pack("<QI", END, 1)
write("ppundo01", old + struct.pack("<I", zlib.crc32(old)))
write("header-only", b"PPUNDO02" + struct.pack("<QQQQ", size, 0, 0, 0))
write("empty", b"")
EOF
