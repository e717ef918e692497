# output.sh - partpatch --output: onto another filesystem (a tmpfs, where
# neither FICLONE nor copy_file_range copies) by read and write, keeping the
# base's holes; the copy gets the base's permission bits as cp gives them
# (no set-id bits, the umask applied), and a read-only base can be stamped.

require_cmd partpack partpatch xz cmp python3 stat

# 6 MiB: text, 4 MiB of zeros kept raw (stored, so the archive holds them
# as zeros and, copied sparsely, as holes), text.  The patch lands in them.
python3 -c 'import random, sys; r = random.Random(3); t = lambda: bytes(r.choice(b"output \n") for _ in range(1 << 20)); sys.stdout.buffer.write(t() + bytes(4 << 20) + t())' >img
head -c 4096 /dev/urandom >patch.bin
AT=$(((1 << 20) + 100000))
cp img new.img
replace_range new.img $AT patch.bin
partpack -q -F zstd -B 1MiB --keep-raw 1MiB+4MiB -o dense.zst img || bail "pack failed"
cp --sparse=always dense.zst base.zst
same_as() { zstd -qdc "$1" | cmp -s - "$2"; }
# allocated FILE: its allocated KiB.
allocated() { du -k "$1" | cut -f1; }
check "the base archive has holes (its stored zeros)" \
	test "$(allocated base.zst)" -lt $(($(size_of base.zst) / 1024 / 2))

mkdir -p mnt
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64M tmpfs mnt 2>/dev/null; then
	trap 'umount mnt 2>/dev/null; _pp_end' EXIT
	cp base.zst base.orig
	check "--output onto a tmpfs (another filesystem)" \
		partpatch base.zst --offset $AT --input patch.bin --output mnt/out.zst
	check "... the copy decodes to the patched image" same_as mnt/out.zst new.img
	check_cmp "... the base is unchanged" base.orig base.zst
	out_kib=$(allocated mnt/out.zst 2>/dev/null) || out_kib=none
	out_size=$(size_of mnt/out.zst 2>/dev/null) || out_size=0
	check "... the base's holes stay holes ($out_kib KiB allocated of $((out_size / 1024)))" \
		test "$out_kib" -lt $((out_size / 1024 / 2))
	check "... nothing else is left there" test "$(ls -A mnt)" = out.zst
	umount mnt
	trap _pp_end EXIT
else
	skip "--output onto a tmpfs" "mounting a tmpfs needs root (mount -t tmpfs refused)"
fi

# ---- permission bits ----------------------------------------------------
cp base.zst suid.zst
chmod 4755 suid.zst
check "--output of a set-uid base" \
	partpatch suid.zst --offset $AT --input patch.bin --output s1.zst
check_eq "... the copy has the base's bits without set-uid, less the umask ($(umask))" \
	"$(printf %o $((0755 & ~$(umask))))" "$(stat -c %a s1.zst)"
(umask 077 && partpatch suid.zst --offset $AT --input patch.bin --output s2.zst)
check_eq "... under umask 077: 700" 700 "$(stat -c %a s2.zst)"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 . && mkdir -p shared && chmod 1777 shared
	cp base.zst shared/ro.zst && cp patch.bin shared/ && chmod 444 shared/ro.zst
	check "a read-only base stamped by a user who may not write it" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		bash -c 'cd shared && umask 022 && exec partpatch ro.zst --offset '$AT' --input patch.bin --output out.zst'
	check_eq "... the copy is read-only too" 444 "$(stat -c %a shared/out.zst)"
	check "... and patched" same_as shared/out.zst new.img
else
	skip "a read-only base stamped by another user" "needs root and setpriv"
fi
