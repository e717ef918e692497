# fsedit.sh - file edits without an appliance.  partpatch's --write,
# --upload, --mkdir, --delete and --copy-in on ext2, ext3, ext4 (with and
# without metadata_csum and a journal) and vfat (FAT16, FAT32, long
# names), in process; fsck, stock decoders and bmaptool on every result; a
# nearly full filesystem and a write outside the stored ranges changing
# nothing; --exec; label:, uuid: and /MOUNTPOINT (from an ext root's
# fstab) found while an appliance cannot start; and the tree an in-process
# edit makes against the appliance's (one launch, skipped with
# PP_TEST_QUICK=1).

require_cmd partpack partpatch partcat partinfo xz xzcat cmp sfdisk debugfs \
	e2fsck dumpe2fs mkfs.ext4 mkfs.vfat fsck.vfat mcopy mtype mdir bmaptool

P1=$((1 * PP_MIB)) S1=$((40 * PP_MIB)) TOP=$PWD
EXT_UUID=0b0a0b0a-1111-4222-8333-0000000000f5
FAT_SERIAL=1234ABCD FAT_UUID=1234-ABCD

# The files every image starts with, and what the edits bring.
mkdir -p tree/grub tree/old/a
echo "set timeout=5" >tree/grub/grub.cfg
echo "an old kernel" >tree/old/a/vmlinuz-old
echo "stamp" >tree/old/STAMP
echo "long names stay" >"tree/Long File Name.txt"
find tree -exec touch -h -d "@$PP_FAKE_TIME" {} +
head -c 300000 /usr/bin/bash >kernel
mkdir -p overlay/sub
printf '#!/bin/sh\necho hi\n' >overlay/script.sh
chmod 0750 overlay/script.sh
echo "a copied config" >"overlay/sub/Long Name File.cfg"
ln -s script.sh overlay/link
CFG='set timeout=1
linux /vmlinuz-new console=ttyS0'

# make_image IMG KIND: a GPT disk, partition 1 "boot" of KIND holding tree/,
# partition 2 "root" a small ext4.
make_image() {
	local img=$1 kind=$2 k=$((S1 / 1024))
	rm -f "$img"
	truncate -s 48M "$img"
	printf 'label: gpt\nstart=2048, size=%d, name=boot\nstart=%d, size=10240, name=root\n' \
		$((S1 / 512)) $(((P1 + S1) / 512)) | sfdisk -q "$img" || return 1
	local ext="-q -F -L boot -U $EXT_UUID -E offset=$P1,root_owner=0:0 -d $TOP/tree"
	case $kind in
	ext2) mkfs.ext2 $ext "$img" $k ;;
	ext3) mkfs.ext3 $ext "$img" $k ;;
	ext4) mkfs.ext4 $ext "$img" $k ;;
	ext4-plain) mkfs.ext4 -O ^metadata_csum,^has_journal $ext "$img" $k ;;
	vfat16 | vfat32)
		mkfs.vfat -F "${kind#vfat}" -n ESP -i $FAT_SERIAL --offset $((P1 / 512)) \
			"$img" $k >/dev/null 2>&1 &&
			MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "$img@@$P1" "$TOP"/tree/* ::/ ;;
	esac || return 1
	mkfs.ext4 -q -F -L root -E offset=$((P1 + S1)) "$img" 5120
}

# fs_cat PART PATH: a file of a partition image; fs_has PART PATH: whether
# it exists; fs_check PART: its fsck, read-only.
fs_cat() {
	case $KIND in
	vfat*) MTOOLS_SKIP_CHECK=1 mtype -i "$1" "::$2" ;;
	*) debugfs -R "cat \"$2\"" "$1" 2>/dev/null ;;
	esac
}
fs_has() {
	case $KIND in
	vfat*) MTOOLS_SKIP_CHECK=1 mdir -i "$1" -b "::$2" >/dev/null 2>&1 ;;
	*) debugfs -R "stat \"$2\"" "$1" 2>&1 | grep -q "Inode:" ;;
	esac
}
fs_check() {
	case $KIND in
	vfat*) fsck.vfat -n "$1" ;;
	*) e2fsck -fn "$1" ;;
	esac
}

# part1 ARCHIVE OUT: partition 1 of the archive's image, by partcat.
part1() { partcat -q "$1" --partition part1 -o "$2" -f; }

# ---- every operation, on every filesystem ------------------------------------
for KIND in ext2 ext3 ext4 ext4-plain vfat16 vfat32; do
	rm -rf "$KIND" && mkdir "$KIND" && cd "$KIND" || bail "cd $KIND"
	make_image img $KIND || bail "$KIND: building the image failed"
	check "$KIND: pack keeping partition 1, with a bmap" partpack -q -1 \
		--block-size=1MiB --keep-raw part1 --bmap base.bmap -o base.xz img
	cp base.xz base.orig
	check "$KIND: every file operation, in process, into --output with --bmap" \
		partpatch base.xz --partition part1 --write "/grub/grub.cfg:$CFG" \
		--upload ../kernel:/vmlinuz-new --mkdir /extra/deep/dir \
		--delete /old --copy-in ../overlay:/extra --output out.xz \
		--bmap base.bmap --bmap-output out.bmap
	check_cmp "$KIND: the base is untouched" base.orig base.xz
	part1 out.xz p.img
	check "$KIND: fsck finds the stamped filesystem clean" fs_check p.img
	check_eq "$KIND: grub.cfg holds the new text" "$CFG" "$(fs_cat p.img /grub/grub.cfg)"
	fs_cat p.img /vmlinuz-new >got-kernel
	check_cmp "$KIND: the uploaded file" ../kernel got-kernel
	check "$KIND: the made directory" fs_has p.img /extra/deep/dir
	check "$KIND: the deleted tree is gone" bash -c '! fs_has p.img /old/a/vmlinuz-old && ! fs_has p.img /old'
	check_eq "$KIND: the copied tree, long names kept" "a copied config" \
		"$(fs_cat p.img "/extra/overlay/sub/Long Name File.cfg")"
	check_eq "$KIND: a file the edit left alone" "long names stay" \
		"$(fs_cat p.img "/Long File Name.txt")"
	case $KIND in
	ext*) check "$KIND: the copied script keeps mode 0750" bash -c \
		'debugfs -R "stat /extra/overlay/script.sh" p.img 2>/dev/null | grep -q "Mode:  0750"'
	      check_eq "$KIND: the copied link stays a link" "script.sh" \
		"$(debugfs -R "stat /extra/overlay/link" p.img 2>/dev/null | sed -n 's/^Fast link dest: "\(.*\)"/\1/p')" ;;
	esac
	xzcat out.xz >full.raw
	dd if=full.raw of=stock.img bs=1M skip=1 count=40 status=none
	check_cmp "$KIND: xzcat gives the same partition" p.img stock.img
	check "$KIND: nothing before partition 1 changed" cmp -n "$P1" img full.raw
	check "$KIND: nothing after it changed" cmp -i $((P1 + S1)) img full.raw
	check "$KIND: bmaptool copy with the new bmap" bmaptool -q copy --bmap out.bmap out.xz copy.raw
	check_cmp "$KIND: ... gives the stamped image" full.raw copy.raw
	rm -f full.raw copy.raw stock.img
	cd .. || bail "cd .."
done

# ---- local operands checked first ----------------------------------------
cd ext4 || bail "cd ext4"
# With an appliance that cannot start: the file is named, not the launch.
check_fails "a missing --upload file: status 1, before any work" 1 \
	env LIBGUESTFS_BACKEND=direct LIBGUESTFS_HV=/bin/false partpatch \
	base.orig --appliance --partition part1 --write /x:y \
	--upload no-such:/x --output early.xz
case $CHECK_STDERR in
*no-such*"No such file"*) ok "... naming the file, not a failed launch" ;;
*) not_ok "... naming the file, not a failed launch" "$CHECK_STDERR" ;;
esac
check_fails "a missing --copy-in directory: status 1" 1 \
	partpatch base.orig --partition part1 --copy-in no-such-dir:/ --output early.xz
cd .. || bail "cd .."

# ---- a nearly full filesystem, a write outside the stored ranges -----------
for KIND in ext4 vfat32; do
	cd "$KIND" || bail "cd $KIND"
	part1 base.xz p.img
	case $KIND in
	vfat*) free=$(MTOOLS_SKIP_CHECK=1 mdir -i p.img ::/ | tr -d ' ' | sed -n 's/^\([0-9]*\)bytesfree$/\1/p') ;;
	*) free=$(dumpe2fs -h p.img 2>/dev/null | awk '/^Free blocks:/ { f = $3 } /^Block size:/ { b = $3 } END { print f * b }') ;;
	esac
	head -c $((free - 1048576)) /dev/zero | tr '\0' 'x' >filler
	check "$KIND: filled up to 1 MiB free" partpatch base.xz --partition part1 \
		--upload filler:/filler --output full.xz
	cp full.xz full.orig
	head -c $((2 * 1048576)) /dev/zero | tr "\0" z >two-mib
	check_fails "$KIND: 2 MiB into 1 MiB free: status 1, one line" 1 \
		partpatch full.xz --partition part1 --write /small:x --upload two-mib:/big
	case $CHECK_STDERR in
	*"no space left"* | *"Disk full"*) ok "$KIND: ... the message says there is no space" ;;
	*) not_ok "$KIND: ... the message says there is no space" "$CHECK_STDERR" ;;
	esac
	check_cmp "$KIND: ... and the archive is unchanged, the small file too" full.orig full.xz
	check "$KIND: a 4 KiB file still fits" partpatch full.xz --partition part1 \
		--upload ../kernel:/k4 --delete /k4 --write /small:x
	part1 full.xz p.img
	check "$KIND: ... and fsck finds it clean" fs_check p.img

	check "$KIND: pack keeping only the first half of partition 1" partpack -q -1 \
		--block-size=1MiB --keep-raw "$P1+$((S1 / 2))" -o half.xz img
	cp half.xz half.orig
	head -c $((30 * 1048576)) /dev/zero | tr "\0" y >big
	check_fails "$KIND: an edit writing outside the stored ranges: status 3" 3 \
		partpatch half.xz --partition part1 --write /small:x --upload big:/big
	case $CHECK_STDERR in
	*"not stored data"*"outside the stored ranges"*"offset"*) ok "$KIND: ... the message names the offset" ;;
	*) not_ok "$KIND: ... the message names the offset" "$CHECK_STDERR" ;;
	esac
	check_cmp "$KIND: ... and nothing was written" half.orig half.xz
	check "$KIND: ... and no undo record is left" test ! -e .half.xz.partpatch-undo
	rm -f filler big two-mib
	cd .. || bail "cd .."
done

# ---- --exec: any tool on the partition's bytes ----------------------------
cd vfat32 || bail "cd vfat32"
KIND=vfat32
echo "saved_entry=1" >grubenv
cp base.orig base.xz
check "--exec: mcopy into the ESP" partpatch base.xz --partition label:ESP \
	--exec 'mcopy -o -i "$PARTITION" grubenv ::/grubenv'
part1 base.xz p.img
check_eq "... the file is there" "saved_entry=1" "$(fs_cat p.img /grubenv)"
check "... and fsck.vfat finds it clean" fs_check p.img
cp base.xz exec.orig
check_fails "--exec: a failing command changes nothing: status 1" 1 \
	partpatch base.xz --partition part1 \
	--exec 'mcopy -o -i "$PARTITION" grubenv ::/grubenv2; exit 7'
check_cmp "... the archive is unchanged" exec.orig base.xz
check_fails "--exec: a command that resizes the file changes nothing" 1 \
	partpatch base.xz --partition part1 --exec 'truncate -s +1M "$PARTITION"'
check_cmp "... the archive is unchanged" exec.orig base.xz
cd ../ext4 || bail "cd ext4"
KIND=ext4
cp base.orig base.xz
check "--exec: debugfs -w on an ext4 /boot" partpatch base.xz --partition part1 \
	--exec 'debugfs -w -R "mkdir /viaexec" "$PARTITION"'
part1 base.xz p.img
check "... the directory is there" fs_has p.img /viaexec
check "... and e2fsck finds it clean" fs_check p.img
cd .. || bail "cd .."

# ---- label: and uuid: with an appliance that cannot start ------------------
cd ext4 || bail "cd ext4"
# An appliance whose hypervisor is /bin/false fails at once.
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_HV=/bin/false
# (libguestfs's launch error path passes strndup a NULL string of length
# 0, harmless in glibc, which ASan's strict_string_checks would fault on.)
check "with the appliance broken, a label no partition holds fails" \
	env ASAN_OPTIONS="${ASAN_OPTIONS:-}:strict_string_checks=0" \
	bash -c '! partpack -q --keep-raw label:nowhere -o mnt.xz img 2>mnt.err'
check "... because the appliance could not start" \
	grep -q "appliance failed to start" mnt.err
check "... but partpack --keep-raw label:boot packs" \
	partpack -q -1 --block-size=1MiB --keep-raw label:boot -o lab.xz img
check_cmp "... exactly as --keep-raw part1" base.orig lab.xz
check "... and --keep-raw uuid:UUID too" \
	partpack -q -1 --block-size=1MiB --keep-raw "uuid:${EXT_UUID^^}" -o uu.xz img
check_cmp "... exactly as --keep-raw part1" base.orig uu.xz
check "partpatch --partition uuid:UUID --write, no appliance" \
	partpatch base.orig --partition "uuid:$EXT_UUID" --write /x:y --output u2.xz
check "partpatch --partition label:ESP on a vfat partition" \
	partpatch ../vfat32/base.orig --partition label:ESP --write /x:y --output e2.xz
check_fails "a label no partition has: status 1, one line" 1 \
	partpatch base.orig --partition label:nowhere --write /x:y
case $CHECK_STDERR in
*"label:nowhere"*"part1 ext4 label boot"*) ok "... naming what the partitions hold" ;;
*) not_ok "... naming what the partitions hold" "$CHECK_STDERR" ;;
esac
cd .. || bail "cd .."
# A mountpoint: the guest's /etc/fstab read from its ext root, in process.
make_gpt_image gpt.img || bail "make_gpt_image failed"
check "partpack --keep-raw /boot, the appliance broken" \
	partpack -q -1 --block-size=1MiB --keep-raw /boot -o mnt.xz gpt.img
check "... the same as --keep-raw part1" \
	partpack -q -1 --block-size=1MiB --keep-raw part1 -o p1.xz gpt.img
check_cmp "... byte for byte" p1.xz mnt.xz
check "partpatch --partition /boot --write, the appliance broken" \
	partpatch mnt.xz --partition /boot --write /hostname:mnt
partcat -q mnt.xz --partition part1 -o mnt.img
check_eq "... the file is in /boot" "mnt" "$(debugfs -R "cat /hostname" mnt.img 2>/dev/null)"
check_fails "a mountpoint not in the guest's fstab: status 1, one line" 1 \
	partpatch mnt.xz --partition /srv --write /x:y
case $CHECK_STDERR in
*/srv*fstab*"/boot"*) ok "... naming the mountpoints there" ;;
*) not_ok "... naming the mountpoints there" "$CHECK_STDERR" ;;
esac
unset LIBGUESTFS_BACKEND LIBGUESTFS_HV

# ---- the same tree as the appliance makes (one launch) ---------------------
if [ "${PP_TEST_QUICK:-0}" = 1 ]; then
	skip "the tree against the appliance's" "PP_TEST_QUICK=1 (no appliance launch)"
	exit 0
fi
require_cmd guestfish nbdkit
cd ext4 || bail "cd ext4"
KIND=ext4
unset LIBGUESTFS_BACKEND_SETTINGS
check "ext4: the same operations by the appliance (--appliance)" \
	partpatch base.orig --appliance --partition part1 --write "/grub/grub.cfg:$CFG" \
	--upload ../kernel:/vmlinuz-new --mkdir /extra/deep/dir \
	--delete /old --copy-in ../overlay:/extra --output app.xz
part1 app.xz app.img
part1 out.xz p.img
check "... e2fsck finds the appliance's result clean" e2fsck -fn app.img
mkdir -p tree-app tree-ours
debugfs -R "rdump / tree-app" app.img 2>/dev/null
debugfs -R "rdump / tree-ours" p.img 2>/dev/null
listing() { (cd "$1" && find . -printf '%p %M %U:%G %s %l\n' | LC_ALL=C sort); }
check_eq "the in-process tree has the appliance's names, modes, owners, sizes" \
	"$(listing tree-app)" "$(listing tree-ours)"
check "... and the same contents" diff -r --no-dereference tree-app tree-ours
cd .. || bail "cd .."
