# edit.sh - issue 10: stamping files instead of filesystems.  partpatch
# --upload/--write/--mkdir/--delete/--copy-in/--script edit the filesystem
# of a kept partition inside the archive: the libguestfs appliance works on
# the archive served by nbdkit through the partpack filter, one launch and
# one patch transaction per run (--appliance: ext is edited in process
# otherwise, which fsedit.sh tests).  Also the run flow around the edits:
# local files checked before anything starts, inputs read before the lock,
# the base locked while --output edits a copy, the filter found at run time.
#
# First without an appliance: tests/fake-libguestfs.c, a stand-in
# libguestfs.so.0 found through LD_LIBRARY_PATH, logs every call it
# receives and writes through NBD as a guest would.  Then five launches
# (skipped with PP_TEST_QUICK=1): a /boot edit of an .xz in place with its
# bmap, a label:boot edit of a .gz into --output with a guestfish script,
# an edit of a half-kept partition that must change nothing,
# examples/stamp-variants.sh, and a whole /boot image stamped by uuid:.

require_cmd partpack partpatch partinfo nbdkit xz gzip cmp debugfs python3 cc \
	bmaptool timeout
nbdkit_on_path

make_gpt_image img || bail "make_gpt_image failed"
P1=$(part_offset img 1) && S1=$(part_size img 1) || bail "no partition 1"

# image_at ARCHIVE OFFSET LEN: LEN bytes of its image at OFFSET.
image_at() {
	python3 - "$@" <<'EOF'
import gzip, lzma, sys
path, offset, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
opener = gzip.open if path.endswith(".gz") else lzma.open
with opener(path) as f:
    f.seek(offset)
    sys.stdout.buffer.write(f.read(length))
EOF
}
# boot_file ARCHIVE PATH: a file of partition 1 of the archive's image.
boot_file() {
	image_at "$1" "$P1" "$S1" >boot.raw
	debugfs -R "cat $2" boot.raw 2>/dev/null
}

# ---- refusals that need no appliance --------------------------------------
check "xz: pack keeping /boot's partition, with a bmap" \
	partpack -q -1 --block-size=1MiB --keep-raw part1 --bmap a.bmap -o a.xz img
cp a.xz base.xz
check_fails "file operations without --partition: usage error" 2 \
	partpatch a.xz --write /x:y
check_fails "--upload without LOCAL:REMOTE: usage error" 2 \
	partpatch a.xz --partition part1 --upload nocolon
check_fails "file operations with --input: usage error" 2 \
	partpatch a.xz --partition part1 --input img --write /x:y
check_cmp "... and the archive is unchanged" base.xz a.xz

# ---- the appliance path without an appliance ------------------------------
mkdir -p fake
cc -shared -fPIC -o fake/libguestfs.so.0 "$PP_SRCDIR/tests/fake-libguestfs.c" -ldl ||
	bail "cannot build the stand-in libguestfs"
P2=$(part_offset img 2) && S2=$(part_size img 2) || bail "no partition 2"
# fake CMD...: CMD with the stand-in, which logs to fake.log (emptied) and
# sees partitions 1 and 2 and their labels.
fake() {
	: >fake.log
	env LD_LIBRARY_PATH="$PWD/fake" FAKE_GUESTFS_LOG="$PWD/fake.log" \
		FAKE_GUESTFS_PARTS="$P1:$S1,$P2:$S2" \
		FAKE_GUESTFS_LABELS="/dev/sda1=boot,/dev/sda2=root" "$@"
}
launches() { grep -c '^launch' fake.log; }
AT=$((P1 + 5 * 1048576))  # where the stand-in's uploads land: partition 1

# A btrfs subvolume may be named anything; libguestfs names the root
# "btrfsvol:DEVICE/NAME" unescaped.  It must reach libguestfs as data.
ROOT="btrfsvol:/dev/sda2/root |touch $PWD/pwned"
TEXT='a "quoted" line
|touch pwned-too'
cp base.xz inj.xz
check "a root named '$ROOT': --appliance --partition /boot --write" \
	fake env FAKE_GUESTFS_ROOT="$ROOT" FAKE_GUESTFS_FSTAB="/=$ROOT,/boot=/dev/sda1" \
	FAKE_GUESTFS_WRITE_AT=$AT partpatch inj.xz --appliance --partition /boot \
	--write "/grub/grub.cfg:$TEXT" --mkdir '/a dir|x'
check "... nothing ran" test ! -e pwned -a ! -e pwned-too
check "... the root reached libguestfs whole, as the one argument of a call" \
	grep -qxF "inspect_get_mountpoints	$ROOT" fake.log
check "... the disk is the archive served over NBD on a private socket" \
	grep -qx "add_drive		nbd	unix:.*/partpatch\.[^/]*/nbd" fake.log
check "... /dev/sda1 mounted, the paths passed as they were given" \
	bash -c 'grep -qx "mount	/dev/sda1	/" fake.log && grep -qxF "mkdir_p	/a dir|x" fake.log'
check "... --write's content uploaded from a file" \
	grep -qx "upload	/.*/write-0	/grub/grub.cfg" fake.log
check_eq "... and its bytes are in the archive" "$TEXT" "$(image_at inj.xz $AT ${#TEXT})"
check "... which xz -t accepts" xz -t inj.xz

# The archive goes to nbdkit as file=NAME: not a parameter, not an option.
for name in cache=none.xz -r.xz; do
	cp base.xz "./$name"
	check "an archive named $name is served as a file" fake \
		env FAKE_GUESTFS_WRITE_AT=$AT partpatch --appliance --partition part1 --write /x:named -- "$name"
	check_eq "... and patched" named "$(image_at "./$name" $AT 5)"
done

# ---- finding the filter at run time ----------------------------------------
# bin/partpatch has no filter beside it; fakebin/nbdkit says the filter
# directory is $FILTERDIR and otherwise is nbdkit.
mkdir -p bin fakebin filters nofilters
cp "$PARTPACK_BUILD/partpatch" bin/
cp "$PARTPACK_BUILD/nbdkit-partpack-filter.so" filters/
cat >fakebin/nbdkit <<EOF
#!/bin/sh
if [ "\$1" = --dump-config ]; then echo "filterdir=\$FILTERDIR"; exit 0; fi
exec $(command -v nbdkit) "\$@"
EOF
chmod +x fakebin/nbdkit
cp base.xz f.xz
# served_with PROGRAM FILTERDIR: the filter PROGRAM -v says it serves with.
served_with() {
	fake env -u PARTPACK_NBDKIT_FILTER PATH="$PWD/fakebin:$PATH" FILTERDIR="$2" \
		"$1" -v -n f.xz --appliance --partition part1 --write /x:y 2>&1 |
		sed -n 's/.*served by nbdkit with //p'
}
check_eq "no PARTPACK_NBDKIT_FILTER: the filter in nbdkit's filter directory" \
	"$PWD/filters/nbdkit-partpack-filter.so" "$(served_with bin/partpatch "$PWD/filters")"
check_eq "... else the one beside the program (a build tree)" \
	"$PARTPACK_BUILD/nbdkit-partpack-filter.so" \
	"$(served_with "$PARTPACK_BUILD/partpatch" "$PWD/nofilters")"
check_fails "... and nowhere: one line naming the places, status 1" 1 \
	fake env -u PARTPACK_NBDKIT_FILTER PATH="$PWD/fakebin:$PATH" FILTERDIR="$PWD/nofilters" \
	bin/partpatch f.xz --appliance --partition part1 --write /x:y
case $CHECK_STDERR in
*"not installed"*"$PWD/nofilters"*"$PWD/bin"*) ok "... naming nbdkit's filter directory and the program's" ;;
*) not_ok "... naming nbdkit's filter directory and the program's" "$CHECK_STDERR" ;;
esac
check_eq "... before any launch" 0 "$(launches)"
check_fails "PARTPACK_NBDKIT_FILTER naming no file: status 1" 1 \
	fake env PARTPACK_NBDKIT_FILTER="$PWD/no-such.so" partpatch f.xz --appliance --partition part1 --write /x:y
filterdir=$(nbdkit --dump-config | sed -n 's/^filterdir=//p')
if [ -e "$filterdir/nbdkit-partpack-filter.so" ]; then
	skip "the real nbdkit's filter directory, without the filter" "a filter is installed there"
else
	check_fails "the real nbdkit's filter directory, without the filter: status 1" 1 \
		fake env -u PARTPACK_NBDKIT_FILTER bin/partpatch f.xz --appliance --partition part1 --write /x:y
	case $CHECK_STDERR in
	*"$filterdir"*) ok "... the message names it" ;;
	*) not_ok "... the message names it" "$CHECK_STDERR" ;;
	esac
fi
cmp -s base.xz f.xz || not_ok "... and f.xz was never written" "it was"

# ---- local files are checked before anything starts ----------------------
mkdir -p adir
printf 'write /x "y"\n%09000d\n' 0 >long.fish
for op in "--upload no-such:/x" "--upload adir:/x" "--copy-in no-such:/" \
	"--script no-such.fish" "--script adir" "--script long.fish"; do
	set -- $op
	check_fails "$op: status 1" 1 fake partpatch f.xz --appliance --partition /boot "$@"
	case $CHECK_STDERR in
	*"$1 ${2%%:*}"*) ok "... the message names it: ${CHECK_STDERR#*: }" ;;
	*) not_ok "... the message names it" "$CHECK_STDERR" ;;
	esac
	check_eq "... nothing launched" "" "$(cat fake.log)"
done
case $CHECK_STDERR in
*"line 2 is longer than 8190 bytes"*) ok "... a line too long for guestfish is refused, not split" ;;
*) not_ok "... a line too long for guestfish is refused, not split" "$CHECK_STDERR" ;;
esac
start=${EPOCHREALTIME/./}
fake partpatch f.xz --appliance --partition /boot --upload no-such:/x 2>/dev/null
ran=$?
ms=$(((${EPOCHREALTIME/./} - start) / 1000))
check "... in milliseconds (${ms} ms, status $ran)" test "$ms" -lt 1000 -a "$ran" = 1

# ---- a selector that finds nothing says what inspection found -------------
fstab="/=/dev/sda2,/boot=/dev/sda1"
check_fails "/srv, not in the guest's fstab: status 1" 1 \
	fake env FAKE_GUESTFS_ROOT=/dev/sda2 FAKE_GUESTFS_FSTAB="$fstab" \
	partpatch f.xz --appliance --partition /srv --write /x:y
check_eq "... the message lists the mountpoints" \
	"partpatch: f.xz: /srv is not a mountpoint in the guest's /etc/fstab (mountpoints: /, /boot)" \
	"$CHECK_STDERR"
check_fails "an fstab with no entries: status 1" 1 \
	fake env FAKE_GUESTFS_ROOT=/dev/sda2 partpatch f.xz --appliance --partition /boot --write /x:y
case $CHECK_STDERR in
*"/boot is not a mountpoint"*"it has no entries"*) ok "... the message says so" ;;
*) not_ok "... the message says so" "$CHECK_STDERR" ;;
esac
check_fails "no operating system: status 1" 1 fake partpatch f.xz --appliance --partition /boot --write /x:y
case $CHECK_STDERR in
*"no operating system"*"filesystems: /dev/sda1 ext4, /dev/sda2 ext4)") ok "... the message lists the filesystems" ;;
*) not_ok "... the message lists the filesystems" "$CHECK_STDERR" ;;
esac
check_fails "a label no filesystem has: status 1" 1 fake partpatch f.xz --appliance --partition label:nosuch --write /x:y
case $CHECK_STDERR in
*"label:nosuch"*"labels: boot, root)") ok "... the message lists the labels" ;;
*) not_ok "... the message lists the labels" "$CHECK_STDERR" ;;
esac
check_cmp "... and the archive is unchanged" base.xz f.xz

# ---- the input is read before the archive is locked -----------------------
# partpatch waits on a pipe (a FIFO nobody writes yet): partinfo, a
# reader, must not wait with it.
mkfifo slow.fifo
cp base.xz lk.xz
partpatch lk.xz --offset "$AT" --input slow.fifo &
patcher=$!
for _ in $(seq 500); do
	[ "$(cat /proc/$patcher/wchan 2>/dev/null)" = wait_for_partner ] && break
	sleep 0.01
done
check "a reader while partpatch waits for its input: partinfo does not wait" \
	timeout 5 partinfo lk.xz
printf 'from the pipe' >slow.fifo
wait $patcher
check_eq "... then the patch goes in (status 0)" "0 from the pipe" "$? $(image_at lk.xz $AT 13)"

# ---- a run with a script: guestfish, after the partition is found ----------
# A stand-in guestfish first in PATH logs its arguments and each line it
# reads, answers echo, and reads the disk it is given once (nbdinfo), as
# the appliance would.
cat >fakebin/guestfish <<'EOF'
#!/bin/bash
printf 'argv' >>"$FAKE_GUESTFISH_LOG"
printf '\t%s' "$@" >>"$FAKE_GUESTFISH_LOG"
echo >>"$FAKE_GUESTFISH_LOG"
uri=${3/nbd:\/\//nbd+unix:\/\/\/}
nbdinfo --size "$uri" >/dev/null || exit 1
while IFS= read -r line; do
	printf '%s\n' "$line" >>"$FAKE_GUESTFISH_LOG"
	case $line in "echo "*) printf '%s\n' "${line#echo }" ;; esac
done
EOF
chmod +x fakebin/guestfish
printf '# a comment\nwrite /hostname "b"\n\n  ln-s /hostname /h\n' >ok.fish
# fish_lines: what guestfish read, the private directory's name masked.
fish_lines() {
	grep -v '^argv\|^echo ' fish.log | sed 's/partpatch\.[^/]*/partpatch.XXXXXX/'
}
: >fish.log
cp base.xz sc.xz
check "label:boot --script with --mkdir and --write" \
	fake env PATH="$PWD/fakebin:$PATH" FAKE_GUESTFISH_LOG="$PWD/fish.log" \
	partpatch sc.xz --appliance --partition label:boot --mkdir $'/d\x01"|x' \
	--script ok.fish --write '/f:two words'
check_eq "... label:boot found in process (no launch), guestfish ran the rest" \
	"0 1" "$(launches) $(grep -c '^argv' fish.log)"
check_eq "... which guestfish read as these lines" 'run
mount /dev/sda1 /
mkdir-p "/d\x01\x22\x7cx"
write /hostname "b"
  ln-s /hostname /h
upload "'"${TMPDIR:-/tmp}"'/partpatch.XXXXXX/write-0" "/f"
umount-all' "$(fish_lines)"
check_cmp "... and the archive is unchanged (the guest wrote nothing)" base.xz sc.xz
# With no ext root (partition 2 wiped), only the appliance can read the
# guest's fstab: a session of its own finds /boot, then guestfish runs.
cp img noroot.img
dd if=/dev/zero of=noroot.img bs=1M seek=$((P2 / 1048576)) count=2 conv=notrunc status=none
partpack -q -1 --block-size=1MiB --keep-raw part1 -o noroot.xz noroot.img
: >fish.log
check "/boot --script with no ext root: the appliance finds it, then guestfish" \
	fake env PATH="$PWD/fakebin:$PATH" FAKE_GUESTFISH_LOG="$PWD/fish.log" \
	FAKE_GUESTFS_ROOT=/dev/sda2 FAKE_GUESTFS_FSTAB="/=/dev/sda2,/boot=/dev/sda1" \
	partpatch noroot.xz --partition /boot --script ok.fish
check_eq "... one launch to find it, then guestfish on a second server" \
	"1 1" "$(launches) $(grep -c '^argv' fish.log)"
check_eq "... which read the script's lines" 'run
mount /dev/sda1 /
write /hostname "b"
  ln-s /hostname /h
umount-all' "$(fish_lines)"

# ---- with --output, the base cannot change while the copy is edited --------
cp base.xz lb.xz
head -c 4096 /dev/urandom >block.bin
rm -f gate
fake env FAKE_GUESTFS_GATE="$PWD/gate" FAKE_GUESTFS_WRITE_AT=$AT \
	partpatch lb.xz --appliance --partition part1 --write /x:copy --output lbv.xz &
patcher=$!
for _ in $(seq 1000); do grep -q '^launch' fake.log 2>/dev/null && break; sleep 0.01; done
check_fails "a patch of the base while an --output edit reads it: locked (5)" 5 \
	partpatch --no-wait lb.xz --offset "$AT" --input block.bin
check "... readers are not kept out" timeout 5 partinfo lb.xz
touch gate
wait $patcher
check_eq "... the edit finishes (status 0) into the copy" "0 copy" "$? $(image_at lbv.xz $AT 4)"
check_cmp "... and the base is as it was" base.xz lb.xz

# ---- file edits keep the bmap true ------------------------------------------
check "pack with a bmap" partpack -q -1 --block-size=1MiB --keep-raw part1 \
	--bmap b.bmap -o b.xz img
cp b.bmap b.orig.bmap
check "a file edit with --bmap and --bmap-output" fake env FAKE_GUESTFS_WRITE_AT=$AT \
	partpatch b.xz --appliance --partition part1 --write /x:stamped --output bv.xz \
	--bmap b.bmap --bmap-output bv.bmap
xz -dc bv.xz >bv.raw
check "... bmaptool copy --bmap bv.bmap bv.xz writes the stamped image" \
	bash -c 'bmaptool -q copy --bmap bv.bmap bv.xz out.raw && cmp out.raw bv.raw'
check_cmp "... and the base's bmap is unchanged" b.orig.bmap b.bmap
# The bmap bmaptool finds beside the base (b.bmap for b.xz): the variant
# gets its own (bauto.bmap for bauto.xz), which bmaptool then finds.
check "a file edit with no --bmap, b.bmap beside b.xz" fake env FAKE_GUESTFS_WRITE_AT=$AT \
	bash -c 'partpatch b.xz --appliance --partition part1 --write /x:stamped --output bauto.xz 2>auto.err'
check_eq "... says so in one line" \
	"partpatch: bauto.bmap: updated to match bauto.xz (the bmap bmaptool finds for it; --no-bmap leaves it)" \
	"$(cat auto.err)"
check "... and bmaptool copy finds it and writes the stamped image" \
	bash -c 'rm -f out.raw && bmaptool -q copy bauto.xz out.raw && cmp out.raw bv.raw'
check_cmp "... the base's bmap is unchanged" b.orig.bmap b.bmap
check "--no-bmap: no bmap written" fake env FAKE_GUESTFS_WRITE_AT=$AT \
	partpatch --no-bmap b.xz --appliance --partition part1 --write /x:stamped --output bnone.xz
check "... none" test ! -e bnone.bmap

if [ "${PP_TEST_QUICK:-0}" = 1 ]; then
	skip "file edits" "PP_TEST_QUICK=1 (no appliance launches)"
	exit 0
fi
require_cmd guestfish
unset LIBGUESTFS_BACKEND_SETTINGS

# ---- launch 1: every operation, /boot found by inspection, in place --------
printf 'kernel bytes\n' >vmlinuz-new
mkdir -p tree/sub && echo "copied in" >tree/sub/file
check "xz: --partition /boot with every file operation, in place, --bmap" \
	partpatch -v a.xz --appliance --partition /boot --write '/grub/grub.cfg:set timeout=1
linux /vmlinuz-new console=ttyS0
' --upload vmlinuz-new:/vmlinuz-new --mkdir /extra/dir --delete /STAMP \
	--copy-in tree:/extra --bmap a.bmap
check "xz -t accepts the edited archive" xz -t a.xz
xzcat a.xz >edited.raw
check "bmaptool copy --bmap a.bmap writes the edited image" \
	bash -c 'bmaptool -q copy --bmap a.bmap a.xz copied.raw && cmp copied.raw edited.raw'
check "partinfo --verify accepts it" partinfo --verify a.xz
check_eq "grub.cfg holds the new text" "set timeout=1
linux /vmlinuz-new console=ttyS0" "$(boot_file a.xz /grub/grub.cfg)"
check_eq "the uploaded kernel is there" "kernel bytes" "$(boot_file a.xz /vmlinuz-new)"
check_eq "the copied tree is there" "copied in" "$(boot_file a.xz /extra/tree/sub/file)"
check "the deleted file is gone" bash -c '! debugfs -R "stat /STAMP" boot.raw 2>&1 | grep -q "Inode:"'
check "fsck accepts the edited /boot" e2fsck -fn boot.raw
check "... and nothing outside partition 1 changed" python3 - img edited.raw "$P1" "$S1" <<'EOF'
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
p, s = int(sys.argv[3]), int(sys.argv[4])
assert len(a) == len(b) and a[:p] == b[:p] and a[p + s:] == b[p + s:]
EOF

# ---- launch 2: gzip, label:, --output, a guestfish script -------------------
check "gz: pack keeping part1" partpack -q -1 --block-size=1MiB --keep-raw part1 -o g.gz img
cp g.gz gbase.gz
cat >edit.fish <<'EOF'
# a guestfish script: any command
write /hostname "variant-b\n"
ln-s /hostname /hostname.link
EOF
check "gz: --partition label:boot --script into --output NEW" \
	partpatch g.gz --partition label:boot --script edit.fish --output variant.gz
check_cmp "... the base is untouched" gbase.gz g.gz
check "... gzip -t accepts the variant" gzip -t variant.gz
check_eq "... the script's file is in the variant" "variant-b" "$(boot_file variant.gz /hostname)"

# ---- launch 3: a write outside the stored ranges aborts the whole edit ------
# Only the first half of partition 1 kept: a big file lands partly outside.
check "xz: pack keeping half of partition 1" partpack -q -1 --block-size=1MiB \
	--keep-raw "$P1+$((S1 / 2))" -o half.xz img
cp half.xz halfbase.xz
head -c $((S1 * 3 / 4)) /dev/urandom >big
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg  # one line on stderr: no retry notice
check_fails "an edit writing outside the stored ranges: status 3, one line" 3 \
	partpatch half.xz --appliance --partition part1 --write /small:x --upload big:/big
case $CHECK_STDERR in
*"outside the stored ranges"*"offset"*) ok "... the message names the offset" ;;
*) not_ok "... the message names the offset" "$CHECK_STDERR" ;;
esac
check_cmp "... and nothing was written, not even the small file" halfbase.xz half.xz
check "... and no undo record is left" test ! -e .half.xz.partpatch-undo

# ---- launch 4: examples/stamp-variants.sh, both kinds of variant ------------
unset LIBGUESTFS_BACKEND_SETTINGS
make_boot_fs newboot.img "$S1" || bail "make_boot_fs failed"
check "examples/stamp-variants.sh: a command-line variant and an image variant" \
	sh "$PP_SRCDIR/examples/stamp-variants.sh" img part1 out \
	"serial=root=LABEL=root console=ttyS0" newboot.img
check_eq "... the variant's grub.cfg has the new command line" \
	"	linux /vmlinuz-6.1.0-13-amd64 root=LABEL=root console=ttyS0" \
	"$(boot_file out/serial.xz /grub/grub.cfg | grep linux)"
boot_file out/base.xz /grub/grub.cfg | grep -v linux >base.cfg
boot_file out/serial.xz /grub/grub.cfg | grep -v linux >serial.cfg
check_cmp "... and the rest of grub.cfg is the base's" base.cfg serial.cfg
xzcat out/newboot.img.xz | dd of=nb.raw bs=1M iflag=skip_bytes,count_bytes,fullblock skip="$P1" count="$S1" status=none
check_cmp "... the image variant's partition is the new /boot" newboot.img nb.raw

# ---- launch 5: uuid: found on the archive, a whole /boot image stamped ------
check "xz: --partition uuid:... --input: a whole filesystem, found by UUID" \
	partpatch base.xz --appliance --partition "uuid:$PP_BOOT_FS_UUID" --input newboot.img \
	--output byuuid.xz
xzcat byuuid.xz | dd of=bu.raw bs=1M iflag=skip_bytes,count_bytes,fullblock \
	skip="$P1" count="$S1" status=none
check_cmp "... the partition is the new /boot" newboot.img bu.raw
