# guestfs.sh - issue 4: keeping partitions named by what they are, found with
# libguestfs.  Each appliance launch costs 20-60 s here, so this script
# launches it six times in all: once for the selectors that work (with the
# KVM-to-TCG fallback left to partpack), four times for the errors and once
# to make an LVM image (with TCG forced, as a user may).  PP_TEST_QUICK=1
# skips the launches.

require_cmd partpack partpatch partinfo xz sfdisk mkfs.ext4 cmp python3 guestfish

INFOCHECK=$PP_SRCDIR/tests/infocheck.py

make_gpt_image img || bail "make_gpt_image failed"
P1=$(part_offset img 1) && S1=$(part_size img 1) || bail "no partition 1"

# ---- selectors that need no appliance never launch it -----------------------
# With a backend that does not exist, any launch would fail.
check "part1, /dev/sda1, name:boot and a byte range resolve without libguestfs" \
	env LIBGUESTFS_BACKEND=no-such-backend partpack -1 --block-size=1MiB \
	--keep-raw part1 --keep-raw /dev/sda1 --keep-raw name:boot \
	--keep-raw "$P1+4096" -o noappliance.xz img
check "... stored_ranges is exactly partition 1" \
	python3 "$INFOCHECK" noappliance.xz --stored "$P1+$S1"

if [ "${PP_TEST_QUICK:-0}" = 1 ]; then
	skip "libguestfs selectors" "PP_TEST_QUICK=1 (no appliance launches)"
	exit 0
fi

# ---- one launch for every libguestfs selector of a run ---------------------------
unset LIBGUESTFS_BACKEND_SETTINGS
check "partpack --keep-raw /boot --keep-raw label:boot --keep-raw uuid:... -v" \
	bash -c 'partpack -1 -v --block-size=1MiB --keep-raw /boot --keep-raw label:boot \
	--keep-raw "uuid:$1" -o guest.xz img 2>guest.err' _ "$PP_BOOT_FS_UUID"
launches=$(grep -c "retrying with TCG" guest.err || true)
case $launches in
0|1) ok "at most one fallback to TCG ($launches): one handle for all selectors" ;;
*) not_ok "at most one fallback to TCG" "$(cat guest.err)" ;;
esac
for sel in /boot label:boot "uuid:$PP_BOOT_FS_UUID"; do
	if grep -qF "keep raw $sel: bytes $P1..$((P1 + S1)) " guest.err; then
		ok "-v prints $sel as partition 1"
	else
		not_ok "-v prints $sel as partition 1" "$(cat guest.err)"
	fi
done
check "stored_ranges is exactly partition 1" python3 "$INFOCHECK" guest.xz --stored "$P1+$S1"
check "... and xz -t accepts the file" xz -t guest.xz

# ---- errors: one line naming the selector, no output left behind -----------
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
check_fails "a mountpoint the guest does not have: status 1" 1 \
	partpack -1 --keep-raw /srv -o missing.xz img
case $CHECK_STDERR in
*/srv*fstab*) ok "... the message names /srv and says where it looked" ;;
*) not_ok "... the message names /srv and says where it looked" "$CHECK_STDERR" ;;
esac
check "... no output file is left" bash -c '! ls missing.xz* 2>/dev/null'

# A filesystem on the whole disk: no partition table, no OS.
truncate -s 32M whole.img
mkfs.ext4 -q -F -L whole whole.img
check_fails "a filesystem on the whole disk cannot be kept raw: status 1" 1 \
	partpack -1 --keep-raw label:whole -o whole.xz whole.img
case $CHECK_STDERR in
*label:whole*"whole disk"*) ok "... the message says what it found" ;;
*) not_ok "... the message says what it found" "$CHECK_STDERR" ;;
esac
check_fails "a mountpoint in an image with no OS: status 1" 1 \
	partpack -1 --keep-raw /boot -o whole.xz whole.img
case $CHECK_STDERR in
*/boot*"no operating system"*) ok "... the message says there is no OS" ;;
*) not_ok "... the message says there is no OS" "$CHECK_STDERR" ;;
esac
check "... no output file is left" bash -c '! ls whole.xz* 2>/dev/null'

# An LVM logical volume, made by libguestfs itself (no root, no loop
# devices): one more launch to make it, one to be refused.
if guestfish -N lvm.img=lvfs:/dev/VG/LV:ext4:64M set-label /dev/VG/LV lvtest 2>/dev/null; then
	check_fails "a logical volume cannot be kept raw: status 1" 1 \
		partpack -1 --keep-raw label:lvtest -o lvm.xz lvm.img
	case $CHECK_STDERR in
	*label:lvtest*"LVM logical volume"*) ok "... the message says it is an LVM logical volume" ;;
	*) not_ok "... the message says it is an LVM logical volume" "$CHECK_STDERR" ;;
	esac
else
	not_ok "guestfish -N made an LVM image"
fi

# Unreadable images fail before any launch.
check_fails "a missing image: status 1" 1 partpack --keep-raw /boot -o x.xz no-such.img
check_fails "a directory: status 1" 1 partpack --keep-raw /boot -o x.xz .
