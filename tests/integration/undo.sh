# undo.sh - the undo record is replayed only onto the archive it was made
# for: not after a repack to the same name (partpack -f), not with an entry
# past the end, not from an older format, never when another user owns it
# or it is a symbolic link; a read error on it keeps it.  Each refusal
# leaves the archive byte-identical.

require_cmd partpack partpatch partinfo xz cmp python3 stat
inject_faults partpatch

# A 3 MiB image kept raw over 1 MiB+1 MiB in 256 KiB blocks, and a patch of
# 300 KB in the kept range: a patch with a dozen interruption points.
python3 -c 'import random, sys; r = random.Random(7); sys.stdout.buffer.write(bytes(r.choice(b"undo record \n") for _ in range(3 << 20)))' >img
python3 -c 'import random, sys; r = random.Random(8); sys.stdout.buffer.write(bytes(r.choice(b"another image\n") for _ in range(3 << 20)))' >img2
head -c 300000 /dev/urandom >patch.bin
AT=1100000
check "pack" partpack -1 --block-size=256KiB --keep-raw 1MiB+1MiB -o orig.xz img
# same_as ARCHIVE IMAGE: the archive decodes to the image.
same_as() { xz -dc "$1" | cmp -s - "$2"; }
cp img new.img
replace_range new.img $AT patch.bin

# half_patch NAME: NAME.xz, a copy of orig.xz, with a patch stopped after
# its record is complete and some of its bytes are written; the record is
# .NAME.xz.partpatch-undo.
half_patch() {
	local k
	for k in $(seq 1 60); do
		rm -f ".$1.xz.partpatch-undo"
		cp orig.xz "$1.xz"
		PARTPACK_FAULT_AFTER=$k partpatch "$1.xz" --offset $AT --input patch.bin 2>/dev/null
		[ -e ".$1.xz.partpatch-undo" ] && ! cmp -s orig.xz "$1.xz" && return 0
	done
	return 1
}
half_patch h || bail "no interruption point leaves a half-written archive"
check "a record bound to its archive is replayed" partpatch --recover h.xz
check_cmp "... restoring the archive as it was" orig.xz h.xz

# ---- a repack to the same name -----------------------------------------
half_patch r || bail "no half-written archive"
cp .r.xz.partpatch-undo r.undo
partpack -f -1 --block-size=256KiB --keep-raw 1MiB+1MiB -o r.xz img2 2>err.txt
check_eq "partpack -f over an archive with a pending record: status 0" 0 $?
check "... says it removed the record beside its output" grep -q "removed .*partpatch-undo" err.txt
check "... which is gone" test ! -e .r.xz.partpatch-undo
cp r.xz repacked.xz
# A crash between partpack's rename and that removal leaves the record.
cp r.undo .r.xz.partpatch-undo
check_fails "--recover with the record of the file the repack replaced: status 1" 1 \
	partpatch --recover r.xz
check "... naming the record and why" grep -q "undo record .*r.xz.partpatch-undo was made for another file" <<<"$CHECK_STDERR"
check_cmp "... the new archive is untouched" repacked.xz r.xz
check "... the record is kept" test -e .r.xz.partpatch-undo
check "... the new archive decodes to its image" same_as r.xz img2
check_fails "partinfo refuses it alike: status 1" 1 partinfo r.xz
check_fails "a patch refuses it alike: status 1" 1 partpatch r.xz --offset $AT --input patch.bin
check_cmp "... untouched" repacked.xz r.xz
# The same inode with other bytes: written over in place.
half_patch i || bail "no half-written archive"
cat repacked.xz >i.xz
check_fails "the same file, repacked in place to another size: status 1" 1 partpatch --recover i.xz
check "... the record was made for a file of another size" grep -q "for a file of [0-9]* bytes" <<<"$CHECK_STDERR"
check_cmp "... untouched" repacked.xz i.xz
# Same inode, same size, other contents: everything kept raw, so two
# images of one size pack to archives of one size and one index.
partpack -1 --block-size=256KiB --keep-raw 0:3MiB -o s1.xz img
partpack -1 --block-size=256KiB --keep-raw 0:3MiB -o s2.xz img2
check_eq "two all-raw archives of the same size" "$(size_of s1.xz)" "$(size_of s2.xz)"
cp s1.xz s.xz
half_s() {
	local k
	for k in $(seq 1 60); do
		rm -f .s.xz.partpatch-undo
		cat s1.xz >s.xz
		PARTPACK_FAULT_AFTER=$k partpatch s.xz --offset $AT --input patch.bin 2>/dev/null
		[ -e .s.xz.partpatch-undo ] && ! cmp -s s1.xz s.xz && return 0
	done
	return 1
}
half_s || bail "no half-written all-raw archive"
cat s2.xz >s.xz
check_fails "the same file and size, other contents: status 1" 1 partpatch --recover s.xz
check "... the bytes it does not restore differ" grep -q "made for other contents" <<<"$CHECK_STDERR"
check_cmp "... untouched" s2.xz s.xz
rm -f .s.xz.partpatch-undo

# ---- hand-made records -----------------------------------------------------
# rewrite_record IN OUT PYTHON: OUT is IN with PYTHON run on its entries
# (a list of [offset, length, data]), the CRC made right.
rewrite_record() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"PPUNDO02", "not a PPUNDO02 record"
header, at, entries = data[:40], 40, []
while int.from_bytes(data[at:at + 8], "little") != (1 << 64) - 1:
    assert at + 12 <= len(data), "no end marker"
    offset = int.from_bytes(data[at:at + 8], "little")
    length = int.from_bytes(data[at + 8:at + 12], "little")
    entries.append([offset, length, data[at + 12:at + 12 + length]])
    at += 12 + length
trailer = data[at:-4]
exec(sys.argv[3])
out = header + b"".join(o.to_bytes(8, "little") + n.to_bytes(4, "little") + d
                        for o, n, d in entries) + trailer
open(sys.argv[2], "wb").write(out + zlib.crc32(out).to_bytes(4, "little"))
PY
}
size=$(size_of orig.xz)
half_patch b || bail "no half-written archive"
cp b.xz half.xz
cp .b.xz.partpatch-undo half.undo
rewrite_record half.undo .b.xz.partpatch-undo "entries[0][0] = $size + 4096"
check_fails "a record with an entry past the end of the archive: status 1" 1 partpatch --recover b.xz
check "... naming the entry" grep -q "entry 1 ([0-9]*+[0-9]*) lies past the end" <<<"$CHECK_STDERR"
check_cmp "... the archive is untouched" half.xz b.xz
rewrite_record half.undo .b.xz.partpatch-undo "entries[-1][0] = $size - 10"
check_fails "... an entry running over the end: status 1" 1 partpatch --recover b.xz
check_cmp "... untouched" half.xz b.xz
rewrite_record half.undo .b.xz.partpatch-undo "entries[-1][0] = 100"
check_fails "... an entry moved to the head of the archive: status 1" 1 partpatch --recover b.xz
check "... the ends no longer match" grep -q "made for other contents" <<<"$CHECK_STDERR"
check_cmp "... untouched" half.xz b.xz
rewrite_record half.undo .b.xz.partpatch-undo ""
check "... while the record as written recovers" partpatch --recover b.xz
check_cmp "... the archive" orig.xz b.xz

# The format before the binding: header, entries, end marker, CRC.
python3 - "$size" <<'PY'
import sys, zlib
size = int(sys.argv[1])
body = b"PPUNDO01" + size.to_bytes(8, "little")
body += (1100000).to_bytes(8, "little") + (100).to_bytes(4, "little") + b"U" * 100
body += ((1 << 64) - 1).to_bytes(8, "little") + (1).to_bytes(4, "little")
open(".o.xz.partpatch-undo", "wb").write(body + zlib.crc32(body).to_bytes(4, "little"))
PY
cp orig.xz o.xz
check_fails "an old-format (PPUNDO01) record is refused: status 1" 1 partpatch --recover o.xz
check "... saying so" grep -q "PPUNDO01" <<<"$CHECK_STDERR"
check_cmp "... untouched" orig.xz o.xz
check "... the record is kept" test -e .o.xz.partpatch-undo

# ---- read errors: only a clean end of file makes a record incomplete ------
half_patch e || bail "no half-written archive"
cp e.xz e.half
PARTPACK_FAULT_EIO=.partpatch-undo check_fails "a read error on the record: status 1" 1 partpatch --recover e.xz
check "... the record is kept" test -e .e.xz.partpatch-undo
check_cmp "... the archive is untouched" e.half e.xz
check "... and once it reads, recovery restores the archive" partpatch --recover e.xz
check_cmp "... as it was" orig.xz e.xz

# ---- symbolic links and other users' files --------------------------------
cp orig.xz l.xz
ln -s victim .l.xz.partpatch-undo
partpatch l.xz --offset $AT --input patch.bin 2>err.txt
check_eq "a symbolic link at the record's name stops a patch: status 1" 1 $?
check "... saying what is there" grep -q "ignoring .*symbolic link" err.txt
check "... the link's target is not created" test ! -e victim
check_cmp "... the archive is untouched" orig.xz l.xz
echo precious >victim
cp victim victim.orig
partpatch l.xz --offset $AT --input patch.bin 2>/dev/null
check_cmp "... nor a file it points to written" victim.orig victim
check_cmp "... the archive still untouched" orig.xz l.xz
check "... the link is left alone" test -L .l.xz.partpatch-undo

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	# A record made for f.xz, planted after the patch completed: bound
	# (same file, size and ends), so only its owner tells it apart.
	half_patch f || bail "no half-written archive"
	cp .f.xz.partpatch-undo f.undo
	partpatch --recover f.xz 2>/dev/null
	partpatch f.xz --offset $AT --input patch.bin
	cp f.xz patched.xz
	cp f.undo .f.xz.partpatch-undo
	chown nobody .f.xz.partpatch-undo
	partpatch --recover f.xz 2>err.txt
	check_eq "a record owned by another user: --recover succeeds" 0 $?
	check "... ignoring it with a notice" grep -q "belongs to uid [0-9]*, not to the archive's owner" err.txt
	check_cmp "... never replaying it" patched.xz f.xz
	check "... nor removing it" test -e .f.xz.partpatch-undo
	check "... partinfo reads the archive" partinfo f.xz
	rm -f .f.xz.partpatch-undo

	# A patch by a user who does not own the archive (it is writable to
	# all) is refused: recovery would ignore its record.
	chmod 1777 . && cp orig.xz w.xz && chmod 666 w.xz
	check_fails "a patch by another user than the archive's owner: status 1" 1 \
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		partpatch w.xz --offset $AT --input patch.bin
	check_cmp "... untouched" orig.xz w.xz
	check "... no record left" test ! -e .w.xz.partpatch-undo
	# A patch by root of an archive someone else owns: the record is theirs.
	chown nobody w.xz
	PARTPACK_FAULT_AFTER=4 partpatch w.xz --offset $AT --input patch.bin 2>/dev/null
	check_eq "root's record of another user's archive belongs to the archive's owner" \
		"$(id -u nobody)" "$(stat -c %u .w.xz.partpatch-undo)"
	check "... and recovers" partpatch --recover w.xz
	check_cmp "... the archive" orig.xz w.xz
	chmod 755 .
else
	skip "records of other users" "needs root and setpriv"
fi
