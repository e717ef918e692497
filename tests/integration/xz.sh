# xz.sh - issue 2 end to end: pack a GPT disk image to .xz keeping partition 1
# as stored data, check it with stock decoders, stamp a new partition 1 in
# place with partpatch, and check everything again; plus determinism,
# refusals, stdin and output naming.

require_cmd partpack partpatch partinfo xz xzcat python3 sfdisk mkfs.ext4 cmp

XZLIST=$PP_SRCDIR/tests/xzlist.py
INFOCHECK=$PP_SRCDIR/tests/infocheck.py
BS=1MiB
BSB=1048576
FAST=-1 # the preset for packs whose compressed part does not matter

# python3 lzma decodes ARCHIVE and compares with IMAGE.
py_lzma_cmp() {
	python3 - "$1" "$2" <<'EOF'
import lzma, sys
with lzma.open(sys.argv[1]) as f:
    got = f.read()
with open(sys.argv[2], "rb") as f:
    want = f.read()
if got != want:
    n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    print(f"lzma: {len(got)} bytes, image {len(want)} bytes, first difference at {n}")
    sys.exit(1)
EOF
}

robot_check_name() {
	xz --robot -l "$1" | awk -F'\t' '$1 == "file" { print $7 }'
}

# stderr_names FILE: the last check_fails wrote one line naming FILE.
stderr_names() {
	case $CHECK_STDERR in
	*"$1"*) ok "... the message names $1" ;;
	*) not_ok "... the message names $1" "stderr: $CHECK_STDERR" ;;
	esac
}

# ---- the image -------------------------------------------------------------
make_stamp_images
E1=$((P1 + S1))
echo "# image: $SIZE bytes, partition 1 at $P1, $S1 bytes"

# ---- every check type: pack, read with stock tools, stamp, read again -------
declare -A ROBOT_NAME=([crc32]=CRC32 [crc64]=CRC64 [sha256]=SHA-256)
for ck in crc32 crc64 sha256; do
	a=img-$ck.xz
	# The default preset for crc64 (the base of what follows), -1 for speed
	# for the others.
	level=$FAST
	[ $ck = crc64 ] && level=-6
	if ! check "$ck: partpack $level --keep-raw part1 --check=$ck --block-size=$BS" \
		partpack $level --keep-raw part1 --check=$ck --block-size=$BS -o "$a" img; then
		continue
	fi
	check "$ck: the input is left alone" test -f img
	check "$ck: xz -t" xz -t "$a"
	check_stdout_cmp "$ck: xzcat gives the image back" img xzcat "$a"
	check_stdout_cmp "$ck: xz -T2 -d gives the image back" img xz -T2 -d -c "$a"
	check "$ck: Python's lzma gives the image back" py_lzma_cmp "$a" img
	check "$ck: xz --robot -lvv: sizes in every block header, boundaries at partition 1's edges, partition 1 stored" \
		python3 "$XZLIST" "$a" --size "$SIZE" --max-block "$BSB" \
		--edge "$P1" --edge "$E1" --stored "$P1+$S1"
	check_eq "$ck: xz --robot -l names the check" "${ROBOT_NAME[$ck]}" "$(robot_check_name "$a")"
	check "$ck: partinfo --json: stored_ranges is exactly partition 1" \
		python3 "$INFOCHECK" "$a" --format xz --check "$ck" --size "$SIZE" \
		--stored "$P1+$S1" --xz-blocks
	check "$ck: partinfo prints a summary" partinfo "$a"
	check "$ck: partinfo --verify" partinfo --verify "$a"
	if off=$(find_bytes "$a" "PARTPACK-FAKE-KERNEL old"); then
		ok "$ck: partition 1's bytes are in the archive verbatim"
	else
		not_ok "$ck: partition 1's bytes are in the archive verbatim" "the fake kernel's header is not in $a once"
	fi

	cp "$a" stdin.xz
	cp "$a" input.xz
	check "$ck: partpatch --offset P1START < newboot.img" \
		partpatch stdin.xz --offset "$P1" <newboot.img
	check "$ck: partpatch --offset P1START --input newboot.img" \
		partpatch input.xz --offset "$P1" --input newboot.img
	check_cmp "$ck: both ways give the same archive" stdin.xz input.xz
	check_eq "$ck: patching keeps the archive's size" "$(size_of "$a")" "$(size_of stdin.xz)"
	check "$ck: xz -t after the patch" xz -t stdin.xz
	check_stdout_cmp "$ck: xzcat gives the image with the new partition 1" expected.img xzcat stdin.xz
	check_stdout_cmp "$ck: xz -T2 -d too" expected.img xz -T2 -d -c stdin.xz
	check "$ck: Python's lzma too" py_lzma_cmp stdin.xz expected.img
	check "$ck: partinfo --verify after the patch" partinfo --verify stdin.xz
	check "$ck: the layout is unchanged" \
		python3 "$XZLIST" stdin.xz --size "$SIZE" --max-block "$BSB" --stored "$P1+$S1"

	# A byte changed behind the checks' back: --verify must say so.
	if [ -n "${off:-}" ]; then
		cp "$a" bad.xz
		flip_byte bad.xz "$((off + 100))"
		check "$ck: (a flipped byte in stored data fails xz -t)" bash -c '! xz -t "$1" 2>/dev/null' _ bad.xz
		check_fails "$ck: partinfo --verify finds the bad check: status 4" 4 partinfo --verify bad.xz
		stderr_names bad.xz
	fi
	rm -f stdin.xz input.xz bad.xz
done

BASE=img-crc64.xz
[ -f "$BASE" ] || bail "no $BASE to go on with"
# The base at -1, for the comparisons that do not need the default preset.
check "partpack $FAST: the base for the comparisons" \
	partpack $FAST --keep-raw part1 --block-size=$BS -o base1.xz img
BASE1=base1.xz

# ---- determinism -------------------------------------------------------------
check "partpack -T1" partpack -T1 --keep-raw part1 --block-size=$BS -o t1.xz img
check "partpack -T2" partpack -T2 --keep-raw part1 --block-size=$BS -o t2.xz img
check_cmp "-T1 and -T2 write the same bytes" t1.xz t2.xz
check_cmp "... as do the defaults (-T0, --check=crc64)" t1.xz "$BASE"
for sel in "$P1:$E1" "$P1+$S1" "${PP_BOOT_START_MIB}MiB+${PP_BOOT_SIZE_MIB}MiB" \
	"$((P1 / 1024))KiB:$((E1 / 1024))KiB"; do
	check "partpack --keep-raw $sel" partpack $FAST --keep-raw "$sel" --block-size=$BS -o sel.xz img
	check_cmp "--keep-raw $sel writes the same bytes as part1" "$BASE1" sel.xz
	rm -f sel.xz
done
rm -f t1.xz t2.xz

# ---- block boundaries where the block size does not divide the edges --------
check "partpack --block-size=3MiB" partpack $FAST --keep-raw part1 --block-size=3MiB -o bs3.xz img
check "3MiB blocks: boundaries at partition 1's edges, blocks of at most 3 MiB" \
	python3 "$XZLIST" bs3.xz --size "$SIZE" --max-block $((3 * BSB)) --stored "$P1+$S1"
check_stdout_cmp "3MiB blocks: xzcat gives the image back" img xzcat bs3.xz
check "3MiB blocks: stored_ranges is partition 1" \
	python3 "$INFOCHECK" bs3.xz --stored "$P1+$S1" --xz-blocks
rm -f bs3.xz

# An odd byte range, aligned to nothing.
R0=$((P1 + 12345))
RL=3000001
check "partpack --keep-raw $R0+$RL" partpack $FAST --keep-raw "$R0+$RL" --block-size=$BS -o odd.xz img
check "odd range: boundaries at its edges, stored" \
	python3 "$XZLIST" odd.xz --size "$SIZE" --max-block "$BSB" --stored "$R0+$RL"
check "odd range: stored_ranges is exactly it" python3 "$INFOCHECK" odd.xz --stored "$R0+$RL"
head -c "$RL" newboot.img >odd.bin
cp --sparse=always img odd.img
replace_range odd.img "$R0" odd.bin
check "odd range: partpatch the whole range" partpatch odd.xz --offset "$R0" --input odd.bin
check_stdout_cmp "odd range: xzcat after the patch" odd.img xzcat odd.xz
check "odd range: partinfo --verify" partinfo --verify odd.xz
cp odd.xz odd.orig
check_fails "odd range: one byte before it is refused: status 3" 3 \
	partpatch odd.xz --offset $((R0 - 1)) --length 2 --input odd.bin
check_fails "odd range: one byte after it is refused: status 3" 3 \
	partpatch odd.xz --offset $((R0 + RL - 1)) --length 2 --input odd.bin
check_cmp "odd range: the refused patches left the archive byte-identical" odd.orig odd.xz
rm -f odd.xz odd.orig odd.img odd.bin

# Adjacent kept ranges are listed merged.
check "partpack with two adjacent ranges" partpack $FAST --keep-raw "$P1+$((S1 / 2))" \
	--keep-raw "$((P1 + S1 / 2))+$((S1 / 2))" --block-size=$BS -o two.xz img
check "two adjacent ranges: partinfo lists them merged" python3 "$INFOCHECK" two.xz --stored "$P1+$S1"
check_stdout_cmp "two adjacent ranges: xzcat" img xzcat two.xz
rm -f two.xz

# ---- partial patches and refusals ------------------------------------------------
cp "$BASE" len.xz
cp --sparse=always img len.img
head -c 4096 newboot.img >4k.bin
replace_range len.img $((P1 + 4096)) 4k.bin
check "partpatch --length 4096 writes only 4096 bytes of the input" \
	partpatch len.xz --offset $((P1 + 4096)) --length 4096 --input newboot.img
check_stdout_cmp "--length: xzcat gives the expected image" len.img xzcat len.xz
check "--length: partinfo --verify" partinfo --verify len.xz
check "a patch across stored block boundaries (4 KiB each side of $((P1 + BSB)))" \
	partpatch len.xz --offset $((P1 + BSB - 4096)) --length 8192 --input newboot.img
head -c 8192 newboot.img >8k.bin
replace_range len.img $((P1 + BSB - 4096)) 8k.bin
check_stdout_cmp "... xzcat gives the expected image" len.img xzcat len.xz
check "... xz -t" xz -t len.xz
rm -f len.xz len.img 4k.bin 8k.bin

cp "$BASE" refuse.xz
cp "$BASE" refuse.orig
check_fails "patching offset 0 (compressed) is refused: status 3" 3 \
	partpatch refuse.xz --offset 0 --input newboot.img
stderr_names refuse.xz
check_fails "a patch starting 4 KiB before partition 1 is refused" 3 \
	partpatch refuse.xz --offset $((P1 - 4096)) --input newboot.img
check_fails "a patch running past partition 1's end is refused" 3 \
	partpatch refuse.xz --offset $((P1 + 4096)) --input newboot.img
check_fails "a patch in partition 2 is refused (from stdin)" 3 \
	partpatch refuse.xz --offset "$E1" --length 512 <newboot.img
check_cmp "refused patches leave the archive byte-identical" refuse.orig refuse.xz
check "... and it still passes partinfo --verify" partinfo --verify refuse.xz
rm -f refuse.xz refuse.orig

# ---- files partpack did not write --------------------------------------------------
# liblzma stores incompressible data as LZMA2 uncompressed chunks.  Such a
# chunk is patchable only if no LZMA chunk follows it in its block before a
# dictionary reset: an LZMA chunk may copy from it or use its last byte as
# literal context.  Random data at the end of one block, and blocks of
# random data, are patchable; random data followed by zeros is not.
python3 -c 'import random, sys; sys.stdout.buffer.write(bytes(65536) + random.Random(2).randbytes(3 << 20) + bytes(65536))' >mixed.bin
xz -1 -c mixed.bin >mixed.xz
check "stock xz, random data then zeros in one block: nothing offered" \
	python3 -c 'import json, sys; sys.exit(json.load(sys.stdin)["stored_ranges"] != [])' \
	< <(partinfo --json mixed.xz)
cp mixed.xz mixed.orig
check_fails "... patching the random data is refused" 3 \
	partpatch mixed.xz --offset 100000 --length 16 --input mixed.bin
check_cmp "... and leaves the file unchanged" mixed.orig mixed.xz
rm -f mixed.bin mixed.xz mixed.orig
python3 -c 'import random, sys; sys.stdout.buffer.write(bytes(65536) + random.Random(2).randbytes(3 << 20))' >rand.bin
for how in "single:--check=crc32 -T1" "blocks:--check=sha256 -T2 --block-size=1MiB"; do
	name=${how%%:*}
	# shellcheck disable=SC2086
	xz -1 ${how#*:} -c rand.bin >foreign.xz
	if ! check "foreign xz ($name): partinfo lists stored ranges" \
		python3 "$INFOCHECK" foreign.xz --format xz --size "$(size_of rand.bin)"; then
		continue
	fi
	first=$(partinfo --json foreign.xz | python3 -c '
import json, sys
r = [x for x in json.load(sys.stdin)["stored_ranges"] if x["length"] >= 300000]
print(*((r[0]["offset"], r[0]["length"]) if r else ()))')
	if [ -z "$first" ]; then
		not_ok "foreign xz ($name): a stored range of 300000 bytes or more" "$(partinfo --json foreign.xz)"
		continue
	fi
	at=$(( ${first% *} + 777 ))
	head -c 200000 newboot.img >patch.bin
	cp rand.bin rand.expected
	replace_range rand.expected "$at" patch.bin
	check "foreign xz ($name): partpatch 200000 bytes at $at" partpatch foreign.xz --offset "$at" --input patch.bin
	check "foreign xz ($name): xz -t" xz -t foreign.xz
	check_stdout_cmp "foreign xz ($name): xzcat" rand.expected xzcat foreign.xz
	check "foreign xz ($name): partinfo --verify" partinfo --verify foreign.xz
	cp foreign.xz foreign.orig
	check_fails "foreign xz ($name): offset 0 (zeros, compressed) is refused" 3 \
		partpatch foreign.xz --offset 0 --length 16 --input patch.bin
	check_cmp "foreign xz ($name): unchanged after the refusal" foreign.orig foreign.xz
done
rm -f rand.bin rand.expected foreign.xz foreign.orig patch.bin

# ---- stdin and stdout --------------------------------------------------------------
check "partpack -c --keep-raw START+LEN < img" \
	bash -c 'partpack -1 -c --keep-raw "$1" --block-size=1MiB <img >stdin.xz' _ "$P1+$S1"
check_cmp "... writes the same bytes as from the file" "$BASE1" stdin.xz
check "partpack -c --keep-raw part1 < img (a regular file on stdin can seek)" \
	bash -c 'partpack -1 -c --keep-raw part1 --block-size=1MiB - <img >stdin2.xz'
check_cmp "... the same bytes again" "$BASE1" stdin2.xz
rm -f stdin.xz stdin2.xz
check_fails "cat img | partpack -c --keep-raw part1: a usage error, status 2" 2 \
	bash -c 'cat img | partpack -1 -c --keep-raw part1 --block-size=1MiB >pipe.xz'
case $CHECK_STDERR in
*seekable*) ok "... saying that a seekable file is needed" ;;
*) not_ok "... saying that a seekable file is needed" "stderr: $CHECK_STDERR" ;;
esac
check "cat img | partpack -c --keep-raw START+LEN works" \
	bash -c 'cat img | partpack -1 -c --keep-raw "$1" --block-size=1MiB >pipe.xz' _ "$P1+$S1"
check_cmp "... and writes the same bytes" "$BASE1" pipe.xz
rm -f pipe.xz
check "stdin without -c or -o writes standard output, as xz does" \
	bash -c 'cat img | partpack -1 --keep-raw "$1" --block-size=1MiB >stdout.xz && cmp stdout.xz "$2"' _ "$P1+$S1" "$BASE1"
rm -f stdout.xz
check "-c writes what -o writes" bash -c 'partpack -1 -c --keep-raw part1 --block-size=1MiB img >c.xz && cmp c.xz "$1"' _ "$BASE1"
rm -f c.xz "$BASE1"

# ---- output names and overwriting ---------------------------------------------------
mkdir -p sub
cp --sparse=always img sub/disk.raw
check "partpack INPUT writes INPUT.xz" partpack $FAST --keep-raw part1 --block-size=$BS sub/disk.raw
check "... next to the input" test -f sub/disk.raw.xz
check "... and keeps the input" test -f sub/disk.raw
check "... which xzcat reads back" bash -c 'xzcat sub/disk.raw.xz | cmp - img'
check "... and no other file is left behind" test "$(ls sub | sort | tr '\n' ' ')" = "disk.raw disk.raw.xz "
cp sub/disk.raw.xz first.xz
check_fails "running again without -f is refused: status 1" 1 \
	partpack $FAST --keep-raw part1 --block-size=$BS sub/disk.raw
stderr_names sub/disk.raw.xz
check_cmp "... and leaves the existing archive alone" first.xz sub/disk.raw.xz
check_fails "-o onto an existing file is refused too" 1 \
	partpack $FAST --keep-raw part1 --block-size=$BS -o sub/disk.raw.xz sub/disk.raw
check "-f overwrites" partpack -f $FAST --keep-raw part1 --block-size=$BS sub/disk.raw
check_cmp "... with the same bytes" first.xz sub/disk.raw.xz
rm -rf sub first.xz

# ---- errors ------------------------------------------------------------------------
check_fails "--keep-raw part9 (no such partition): status 1" 1 \
	partpack --keep-raw part9 --block-size=$BS -o nine.xz img
check "... leaves no output file" test ! -e nine.xz
check_fails "an unknown --check is a usage error" 2 partpack --check=crc99 -o x.xz img
check_fails "an unknown option is a usage error" 2 partpack --no-such-option img
check_fails "a bad --keep-raw is a usage error" 2 partpack --keep-raw 12:zz -o x.xz img
check "... no output left behind" test ! -e x.xz
check_fails "partinfo on a file that is not an archive: status 1" 1 partinfo img
check_fails "partinfo on a missing file: status 1" 1 partinfo missing.xz
stderr_names missing.xz
check_fails "partpatch on a missing file: status 1" 1 partpatch missing.xz --offset 0 --input newboot.img
VERSION=$(sed -n 's/^#define PP_VERSION "\(.*\)"/\1/p' "$PP_SRCDIR/lib/partpack.h")
check "partpack --version prints $VERSION" bash -c 'partpack --version | grep -qF "$1"' _ "$VERSION"
check "partpatch --version" partpatch --version
check "partinfo --version" partinfo --version
check "partpack --help" bash -c 'partpack --help | grep -q -- --keep-raw'
