# crash.sh - issue 5: a patch never loses an image.  Interrupt a patch, and
# a transaction of 50 ranges (issue 9), at every write, sync and unlink
# (PARTPACK_FAULT_AFTER=k, with the test-only shim of inject_faults in
# tests/lib.sh) for every format and check old-or-new after recovery; a real
# SIGKILL; locking; --output and --dry-run; a touched block that is already
# corrupt (issue 14); and bad input, each refused with one line, a
# documented status and an unchanged archive.

FORMATS=$(pp_formats) || bail "cannot list the library's formats"
for fmt in $FORMATS; do
	require_cmd "$(pp_format_tool "$fmt")"
done
require_cmd partpack partpatch partinfo cmp python3 flock
inject_faults partpatch

# A 6 MiB image with a kept range over blocks of 256 KiB: the patch below
# spans three blocks, so it has many write points.
python3 -c 'import random, sys; r = random.Random(5); sys.stdout.buffer.write(bytes(r.choice(b"partpack \n") for _ in range(6 << 20)))' >img
head -c 600000 /dev/urandom >patch.bin
AT=$((2 << 20))
RANGE=1MiB+4MiB
cp img new.img
replace_range new.img $AT patch.bin

# 50 ranges of 1 to 6 KiB over the kept range's 16 blocks, some of them
# overlapping an earlier one (the later wins), as one transaction.
python3 - <<'PY'
import random
r = random.Random(9)
image = bytearray(open("img", "rb").read())
args = []
for i in range(50):
    n = r.randrange(1024, 6 * 1024)
    if i % 7 == 6:
        at = prev + r.randrange(-n + 1, 2000)   # overlaps range i - 1
    else:
        at = r.randrange(1 << 20, (5 << 20) - n)
    prev = at
    data = bytes(r.randrange(256) for _ in range(n))
    open("r%d.bin" % i, "wb").write(data)
    image[at:at + n] = data
    args += ["--offset", str(at), "--input", "r%d.bin" % i]
open("new50.img", "wb").write(image)
open("ranges50.args", "w").write("\n".join(args) + "\n")
PY
mapfile -t RANGES50 <ranges50.args

# same_as FILE IMAGE: FILE decodes to IMAGE.
same_as() { decode_archive "$1" | cmp -s - "$2"; }

# interrupt_everywhere ARCHIVE BASE NEW-IMAGE PARTPATCH-ARGS...: runs the
# patch on a fresh copy of BASE stopped before its k-th write, sync or
# unlink, for k = 1, 2, ... until it runs to the end, recovering after each
# stop and checking old-or-new.  Sets k (the run that completed), old, new,
# bad and refused_reads.
interrupt_everywhere() {
	local f=$1 base=$2 new_image=$3 status
	shift 3
	k=1 old=0 new=0 bad=0 refused_reads=0
	while [ $k -lt 500 ]; do
		cp $base $f
		PARTPACK_FAULT_AFTER=$k partpatch $f "$@" 2>/dev/null
		status=$?
		[ $status -eq 0 ] && break
		if [ $status -ne 99 ]; then
			bad=$((bad + 1))
			echo "# k=$k: partpatch exited $status, not 99"
		fi
		if [ -e .$f.partpatch-undo ]; then
			if partinfo $f >/dev/null 2>err.txt; then
				bad=$((bad + 1))
				echo "# k=$k: partinfo read an archive with a pending patch"
			elif grep -q -- --recover err.txt; then
				refused_reads=$((refused_reads + 1))
			fi
		fi
		partpatch --recover $f 2>/dev/null || { bad=$((bad + 1)); echo "# k=$k: --recover failed"; }
		if ! test_archive $f 2>/dev/null || ! decode_archive $f >decoded.img; then
			bad=$((bad + 1))
			echo "# k=$k: integrity check fails after recovery"
		elif cmp -s decoded.img img; then
			old=$((old + 1))
		elif cmp -s decoded.img $new_image; then
			new=$((new + 1))
		else
			bad=$((bad + 1))
			echo "# k=$k: neither old nor new after recovery"
		fi
		k=$((k + 1))
	done
}

for fmt in $FORMATS; do
	base=base.$fmt
	check "$fmt: pack" partpack -1 --block-size=256KiB --keep-raw $RANGE -o $base img

	# ---- every interruption point, then recovery -------------------------
	interrupt_everywhere f.$fmt $base new.img --offset $AT --input patch.bin
	check_eq "$fmt: interrupted at each of $((k - 1)) points, recovery gives old or new ($old old, $new new)" 0 $bad
	check "$fmt: the uninterrupted run (k=$k) gives the new image" same_as f.$fmt new.img
	[ $refused_reads -gt 0 ] && ok "$fmt: partinfo refuses a pending patch, pointing to --recover" ||
		not_ok "$fmt: partinfo refuses a pending patch, pointing to --recover"
	[ $old -gt 5 ] && ok "$fmt: the undo record is written and synced before any in-place write" ||
		not_ok "$fmt: too few interruption points ($old) ended old"
	points=$k

	# The same for a transaction of 50 ranges: one undo record, so any
	# interruption gives all of them or none.
	interrupt_everywhere t.$fmt $base new50.img "${RANGES50[@]}"
	check_eq "$fmt: a 50-range transaction interrupted at each of $((k - 1)) points, recovery gives old or new ($old old, $new new)" 0 $bad
	check "$fmt: ... the uninterrupted run (k=$k) gives the new image, the later of overlapping ranges winning" same_as t.$fmt new50.img
	# Stops before the record is complete or the archive synced give old;
	# only the stop after the record's removal gives new.
	[ $k -gt 50 ] && [ $old -gt 50 ] && [ $new -ge 1 ] &&
		ok "$fmt: ... every range's write was a separate interruption point" ||
		not_ok "$fmt: ... too few interruption points: k=$k, $old old, $new new"

	# The next partpatch finishes an interrupted one by itself.
	cp $base g.$fmt
	PARTPACK_FAULT_AFTER=$((points / 2)) partpatch g.$fmt --offset $AT --input patch.bin 2>/dev/null
	check "$fmt: a later partpatch recovers first, then patches" \
		bash -c 'partpatch g.'$fmt' --offset '$AT' --input patch.bin 2>err.txt && grep -q recovered err.txt'
	check "$fmt: ... giving the new image" same_as g.$fmt new.img

	# A real SIGKILL at an unknown moment of a large patch: old or new.
	head -c $((4 << 20)) /dev/urandom >big.bin
	cp img big.img
	replace_range big.img $((1 << 20)) big.bin
	cp $base h.$fmt
	partpatch h.$fmt --offset 1MiB --input big.bin &
	pid=$!
	sleep 0.05
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	partpatch --recover h.$fmt 2>/dev/null
	if test_archive h.$fmt && { same_as h.$fmt img || same_as h.$fmt big.img; }; then
		ok "$fmt: SIGKILL during a 4 MiB patch, then --recover: old or new"
	else
		not_ok "$fmt: SIGKILL during a 4 MiB patch, then --recover: old or new"
	fi

	# ---- --output and --dry-run --------------------------------------------
	cp $base keep.$fmt
	check "$fmt: --output writes a patched copy" \
		partpatch $base --offset $AT --input patch.bin --output out.$fmt
	check_cmp "$fmt: ... and leaves the base byte-identical" keep.$fmt $base
	check "$fmt: ... the copy decodes to the new image" same_as out.$fmt new.img
	check "$fmt: ... no temporary file is left" bash -c "! ls out.$fmt.* 2>/dev/null"
	check "$fmt: --dry-run succeeds" partpatch $base --dry-run --offset $AT --input patch.bin
	check_cmp "$fmt: ... and writes nothing" keep.$fmt $base
	check "$fmt: ... nor leaves an undo record" bash -c "! ls .$base.* 2>/dev/null"

	# ---- locking ----------------------------------------------------------------
	cp $base l.$fmt
	flock -x l.$fmt sleep 3 &
	holder=$!
	# Wait until the holder really has the lock, however busy the machine.
	while flock -n l.$fmt true; do sleep 0.05; done
	check_fails "$fmt: --no-wait on a locked archive: status 5" 5 \
		partpatch --no-wait l.$fmt --offset $AT --input patch.bin
	check "$fmt: without --no-wait it waits for the lock, then patches" \
		partpatch l.$fmt --offset $AT --input patch.bin
	wait $holder
	check "$fmt: ... correctly" same_as l.$fmt new.img
done

# ---- a touched block that is already corrupt ---------------------------------
# CRC arithmetic would carry the error into a fresh check: the patch must
# verify each touched block first and refuse, whole, with status 4: for
# every check of every format (none has nothing to verify with).
CORRUPT_AT=$(((2 << 20) + 100000))   # in the stored block 2 MiB..2.25 MiB
# patched_and_whole ARCHIVE: passes its tool's test and holds expected.img.
patched_and_whole() { test_archive "$1" && same_as "$1" expected.img; }
# CHECK.SUFFIX of every check of every format ("crc64.xz ... xxh64.zst").
KINDS=$(for fmt in $FORMATS; do
	for check in $(pp_format_checks "$fmt"); do
		[ "$check" = none ] || echo "$check.$fmt"
	done
done)
for kind in $KINDS; do
	check=${kind%.*} fmt=${kind#*.}
	c=corrupt-$check.$fmt
	check "$kind: pack" partpack -1 -F "$(pp_format_tool "$fmt")" -C "$check" \
		--block-size=256KiB --keep-raw $RANGE -o $c img
	# Where the stored copy of image byte CORRUPT_AT lies in the file.
	where=$(python3 - $c $CORRUPT_AT <<'PY'
import sys
path, at = sys.argv[1], int(sys.argv[2])
image = open("img", "rb").read()
archive = open(path, "rb").read()
where = archive.find(image[at:at + 64])
assert where > 0 and archive.find(image[at:at + 64], where + 1) < 0
print(where)
PY
)
	flip_byte $c $where 1
	cp $c $c.orig
	check_fails "$kind: a patch elsewhere in a corrupt block: status 4" 4 \
		partpatch $c --offset $((CORRUPT_AT + 50000)) --input r0.bin
	check_eq "... naming the block as xz -lvv numbers it" 1 \
		"$(grep -c "block [0-9]* (file offset [0-9]*, image bytes 2097152\.\." <<<"$CHECK_STDERR")"
	check_cmp "... $kind: the archive is byte-identical" $c.orig $c
	check_fails "$kind: a transaction with one range in it: status 4" 4 \
		partpatch $c --offset 3MiB --input r1.bin --offset $((CORRUPT_AT - 20000)) --input r2.bin
	check_cmp "... $kind: the archive is byte-identical" $c.orig $c
	check "$kind: a patch in another block works" partpatch $c --offset 3MiB --input r1.bin
	# Undo the damage: the archive is then whole and patched.
	flip_byte $c $where 1
	cp img expected.img
	replace_range expected.img $((3 << 20)) r1.bin
	check "... and once the flipped byte is restored, $kind is whole and patched" \
		patched_and_whole $c
done

# ---- bad input: one line, a documented status, the archive unchanged -------
cp base.xz a.xz
cp base.xz a.orig
# refuse_on ARCHIVE ORIG LABEL STATUS DESC ARGS...: partpatch ARGS fails
# with STATUS, and ARCHIVE still has ORIG's bytes; LABEL starts both checks'
# descriptions.
refuse_on() {
	local archive=$1 orig=$2 label=$3 status=$4 desc=$5
	shift 5
	check_fails "$label$desc: status $status" "$status" partpatch "$@"
	check_cmp "... $label$desc: the archive is unchanged" "$orig" "$archive"
}
refuse() { refuse_on a.xz a.orig "" "$@"; } # refuse STATUS DESC ARGS...
refuse 2 "offset past the end" a.xz --offset 7MiB --input patch.bin
refuse 2 "a negative offset" a.xz --offset -5 --input patch.bin
refuse 2 "a non-numeric offset" a.xz --offset twelve --input patch.bin
refuse 2 "an overflowing offset" a.xz --offset 99999999999999999999999 --input patch.bin
refuse 2 "an overflowing length" a.xz --offset 2MiB --length 18446744073709551615 --input patch.bin
refuse 2 "an input shorter than --length" a.xz --offset 2MiB --length 700000 --input patch.bin
refuse 3 "a range not entirely stored" a.xz --offset 4MiB --length 2MiB --input img
refuse 1 "a missing input file" a.xz --offset 2MiB --input no-such-file
refuse 2 "two ranges reading standard input" a.xz --offset 2MiB --offset 3MiB
refuse 2 "--input twice for one range" a.xz --offset 2MiB --input patch.bin --input r1.bin
refuse 2 "--input without --offset" a.xz --input patch.bin
refuse 3 "a transaction with one range not stored" a.xz --offset 2MiB --input patch.bin --offset 5MiB --input r1.bin
refuse 1 "a transaction with one input missing" a.xz --offset 2MiB --input patch.bin --offset 3MiB --input no-such-file
check_fails "a missing archive: status 1" 1 partpatch no-such.xz --offset 0 --input patch.bin
: >empty.xz
check_fails "an empty archive: status 1" 1 partpatch empty.xz --offset 0 --input patch.bin
head -c 100000 base.xz >trunc.xz
check_fails "a truncated archive: status 1" 1 partpatch trunc.xz --offset $AT --input patch.bin
check_cmp "... unchanged" trunc.xz <(head -c 100000 base.xz)
head -c 100000 /dev/urandom >random.xz
check_fails "a random file: status 1" 1 partpatch random.xz --offset $AT --input patch.bin
cp base.xz flip.xz
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(-20, 2); b = f.read(1); f.seek(-20, 2); f.write(bytes([b[0] ^ 1]))' flip.xz
cp flip.xz flip.orig
check_fails "a bit flip in the index: status 1" 1 partpatch flip.xz --offset $AT --input patch.bin
check_cmp "... unchanged" flip.orig flip.xz
cp base.gz looks-like.xz
cp base.gz looks-like.orig
check_fails "a gzip archive named .xz: status 1" 1 partpatch looks-like.xz --offset $AT --input patch.bin
check_cmp "... unchanged" looks-like.orig looks-like.xz
mkdir -p dir.xz
check_fails "a directory: status 1" 1 partpatch dir.xz --offset 0 --input patch.bin
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	chmod 755 . && chmod 644 a.xz
	check_fails "a read-only archive: status 1" 1 \
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		partpatch a.xz --offset $AT --input patch.bin
	check_cmp "... unchanged" a.orig a.xz
else
	skip "a read-only archive" "needs root and setpriv to drop privileges"
fi
if [ "$(id -u)" = 0 ] && mkdir -p small && mount -t tmpfs -o size=1M tmpfs small 2>/dev/null; then
	check_fails "--output on a full filesystem: status 1" 1 \
		partpatch base.xz --offset $AT --input patch.bin --output small/out.xz
	check "... leaves nothing behind in it" bash -c '[ -z "$(ls -A small)" ]'
	umount small
else
	skip "--output on a full filesystem" "needs root to mount a small tmpfs"
fi

# ---- bad input on .zst ---------------------------------------------------------
cp base.zst z.zst
cp base.zst z.orig
refuse_zst() { refuse_on z.zst z.orig "zst: " "$@"; } # refuse_zst STATUS DESC ARGS...
refuse_zst 2 "offset past the end" z.zst --offset 7MiB --input patch.bin
refuse_zst 2 "an input shorter than --length" z.zst --offset 2MiB --length 700000 --input patch.bin
refuse_zst 3 "a range not entirely stored" z.zst --offset 4MiB --length 2MiB --input img
size=$(size_of base.zst)
head -c $((size - 5)) base.zst >trunc.zst
check_fails "zst: a truncated archive (no footer): status 1" 1 partpatch trunc.zst --offset $AT --input patch.bin
check_cmp "... unchanged" trunc.zst <(head -c $((size - 5)) base.zst)
head -c 100000 /dev/urandom >random.zst
check_fails "zst: a random file: status 1" 1 partpatch random.zst --offset $AT --input patch.bin
# The seek table's first entry's Decompressed_Size: every later frame would
# shift in the image, so the frame headers before a patched frame are read.
cp base.zst flip.zst
python3 -c '
import sys
f = open(sys.argv[1], "r+b")
f.seek(-9, 2)
n = int.from_bytes(f.read(4), "little")
at = -9 - 12 * n + 4
f.seek(at, 2); b = f.read(1); f.seek(at, 2); f.write(bytes([b[0] ^ 1]))' flip.zst
cp flip.zst flip.orig
check_fails "zst: a bit flip in the seek table's first size: status 1" 1 partpatch flip.zst --offset $AT --input patch.bin
check_cmp "... unchanged" flip.orig flip.zst
check_fails "zst: ... and partinfo --verify refuses it: status 1" 1 partinfo --verify flip.zst
cp base.zst footer.zst
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(-5, 2); f.write(b"\xff")' footer.zst
cp footer.zst footer.orig
check_fails "zst: reserved bits in the seek table descriptor: status 1" 1 partpatch footer.zst --offset $AT --input patch.bin
check_cmp "... unchanged" footer.orig footer.zst
# A bit flip in the data of a stored frame: patching another frame works,
# and partinfo --verify finds the damage (status 4).
cp base.zst data.zst
python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); i = d.index(open(sys.argv[2], "rb").read()[(3 << 20) + 10:(3 << 20) + 50]); f = open(sys.argv[1], "r+b"); f.seek(i); f.write(bytes([d[i] ^ 1]))' data.zst img
check_fails "zst: partinfo --verify finds a flipped stored byte: status 4" 4 partinfo --verify data.zst
cp base.xz looks-like.zst
cp base.xz looks-like.orig
check_fails "zst: an xz archive named .zst: status 1" 1 partpatch looks-like.zst --offset $AT --input patch.bin
check_cmp "... unchanged" looks-like.orig looks-like.zst
cp base.zst looks-like2.xz
cp base.zst looks-like2.orig
check_fails "zst: a zstd archive named .xz: status 1" 1 partpatch looks-like2.xz --offset $AT --input patch.bin
check_cmp "... unchanged" looks-like2.orig looks-like2.xz
