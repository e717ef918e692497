# lib-sh.sh - tests tests/lib.sh, the integration scripts' helpers: the GPT
# image builder, the boot filesystem builder, the partition offset helpers
# and the TAP helpers.  Needs only stock tools (sfdisk, mke2fs, e2fsck,
# dumpe2fs, debugfs).

require_cmd sfdisk mkfs.ext4 e2fsck dumpe2fs debugfs dd cmp

MIB=1048576

# extract IMAGE OFFSET LENGTH OUT: copies a byte range of IMAGE to OUT.
extract() {
	dd if="$1" of="$4" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none
}

# fs_bytes FILE: the ext4 filesystem's size (block count x block size).
fs_bytes() {
	dumpe2fs -h "$1" 2>/dev/null | awk -F: '
		/^Block count:/ { c = $2 + 0 }
		/^Block size:/  { s = $2 + 0 }
		END { print c * s }'
}

fs_label() {
	dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Filesystem volume name: *//p'
}

# fs_cat FS PATH: prints a file of an ext4 image (debugfs, no mount).
fs_cat() {
	debugfs -R "cat $2" "$1" 2>/dev/null
}

check "make_gpt_image builds disk.img" make_gpt_image disk.img || bail "no image to check"
check_eq "image is $PP_IMG_SIZE_MIB MiB" "$((PP_IMG_SIZE_MIB * MIB))" "$(stat -c %s disk.img)"
check "image is sparse" test "$(($(stat -c %b disk.img) * 512))" -lt "$(stat -c %s disk.img)"
check "sfdisk --verify accepts the GPT" sfdisk --verify disk.img
check_eq "partition table is GPT" gpt "$(sfdisk --json disk.img | sed -n 's/.*"label": "\(.*\)",/\1/p')"

p1=$(part_offset disk.img 1)
s1=$(part_size disk.img 1)
p2=$(part_offset disk.img 2)
s2=$(part_size disk.img 2)
check_eq "part_offset 1" "$((PP_BOOT_START_MIB * MIB))" "$p1"
check_eq "part_size 1" "$((PP_BOOT_SIZE_MIB * MIB))" "$s1"
check_eq "part_offset 2 follows partition 1" "$((p1 + s1))" "$p2"
check_eq "part_size 2" "$((PP_ROOT_SIZE_MIB * MIB))" "$s2"
check "partition 2 ends before the backup GPT" test $((p2 + s2)) -le $(((PP_IMG_SIZE_MIB - 1) * MIB))
check_fails "part_offset of a missing partition fails" 1 part_offset disk.img 3
check "partition names are boot and root" \
	bash -c 'sfdisk --json "$1" | grep -q "\"name\": \"boot\"" && sfdisk --json "$1" | grep -q "\"name\": \"root\""' _ disk.img

extract disk.img "$p1" "$s1" part1.img
extract disk.img "$p2" "$s2" part2.img
check "e2fsck -fn passes on partition 1" e2fsck -fn part1.img
check "e2fsck -fn passes on partition 2" e2fsck -fn part2.img
check_eq "filesystem 1 ends exactly at the partition end" "$s1" "$(fs_bytes part1.img)"
check_eq "filesystem 2 ends exactly at the partition end" "$s2" "$(fs_bytes part2.img)"
check_eq "filesystem 1 label" boot "$(fs_label part1.img)"
check_eq "filesystem 2 label" root "$(fs_label part2.img)"
check_eq "/boot holds the old STAMP" old "$(fs_cat part1.img /STAMP)"
check "/boot holds a grub.cfg" bash -c 'debugfs -R "cat /grub/grub.cfg" "$1" 2>/dev/null | grep -q menuentry' _ part1.img
check "/boot holds a few hundred KiB" test "$(fs_cat part1.img /vmlinuz-6.1.0-13-amd64 | wc -c)" -ge 262144
check "root /etc/fstab mounts LABEL=boot on /boot" \
	bash -c 'debugfs -R "cat /etc/fstab" "$1" 2>/dev/null | grep -Eq "^LABEL=boot[[:space:]]+/boot[[:space:]]"' _ part2.img
check "root has /etc/os-release and /etc/debian_version" \
	bash -c 'debugfs -R "cat /etc/os-release" "$1" 2>/dev/null | grep -q ^ID=debian &&
		 test -n "$(debugfs -R "cat /etc/debian_version" "$1" 2>/dev/null)"' _ part2.img
check "root has a dpkg database (for virt-inspector)" \
	bash -c 'debugfs -R "cat /var/lib/dpkg/status" "$1" 2>/dev/null | grep -q "^Package: "' _ part2.img
check "root /bin/ls is a real binary" \
	bash -c 'debugfs -R "cat /bin/ls" "$1" 2>/dev/null | head -c 4 | grep -q ELF' _ part2.img
check "root holds several MiB of data" \
	test "$(dumpe2fs -h part2.img 2>/dev/null | awk -F: '/^Free blocks:/{f=$2} /^Block count:/{c=$2} /^Block size:/{s=$2} END{print (c-f)*s}')" -ge $((4 * MIB))
check "gaps outside the partitions are zero except the GPT" \
	bash -c 'cmp -s <(dd if="$1" bs=512 skip=34 count=$(( $2 / 512 - 34 )) status=none) <(head -c $(( $2 - 34 * 512 )) /dev/zero)' _ disk.img "$p1"

check "make_gpt_image runs again over an existing file" make_gpt_image disk2.img
check "the second build has the same layout" \
	bash -c 'cmp <(sfdisk -d "$1" | sed 1,3d) <(sfdisk -d "$2" | sed 1,3d | sed s/disk2/disk/)' _ disk.img disk2.img
rm -f disk2.img

check "make_boot_fs builds newboot.img" make_boot_fs newboot.img "$s1" boot
check_eq "newboot.img is partition 1's size" "$s1" "$(stat -c %s newboot.img)"
check "e2fsck -fn passes on newboot.img" e2fsck -fn newboot.img
check_eq "newboot.img filesystem fills it" "$s1" "$(fs_bytes newboot.img)"
check_eq "newboot.img label" boot "$(fs_label newboot.img)"
check_eq "newboot.img holds the new STAMP" new "$(fs_cat newboot.img /STAMP)"
check "newboot.img differs from the old partition 1" bash -c '! cmp -s "$1" "$2"' _ newboot.img part1.img
check "make_boot_fs takes a MiB suffix" make_boot_fs small.img 4MiB small
check_eq "4MiB is 4194304 bytes" 4194304 "$(stat -c %s small.img)"
check_eq "its label" small "$(fs_label small.img)"

cp disk.img stamped.img
replace_range stamped.img "$p1" newboot.img
extract stamped.img "$p1" "$s1" stamped1.img
check_cmp "replace_range writes partition 1" newboot.img stamped1.img
check "replace_range keeps the size" test "$(stat -c %s stamped.img)" -eq "$(stat -c %s disk.img)"
check "replace_range leaves the rest alone" cmp -n "$p1" disk.img stamped.img
check "... also after partition 1" \
	cmp -i "$((p1 + s1))" disk.img stamped.img

check_eq "pp_bytes 8MiB" 8388608 "$(pp_bytes 8MiB)"
check_eq "pp_bytes 4K" 4096 "$(pp_bytes 4K)"
check_eq "pp_bytes 1G" 1073741824 "$(pp_bytes 1G)"
check_eq "pp_bytes 512" 512 "$(pp_bytes 512)"

# ---- the registry's formats, as partpack and their own tools see them -----
# json_field FILE KEY: a top-level string of partinfo --json.
json_field() { partinfo --json "$1" | sed -n 's/.*"'"$2"'": "\([^"]*\)".*/\1/p'; }
formats=$(pp_formats) || bail "pp_formats failed"
check "pp_formats lists the default format, xz, first, then others" \
	bash -c '[[ "$1" == "xz "?* ]]' _ "$formats"
head -c 65536 disk.img >head.img
for fmt in $formats; do
	tool=$(pp_format_tool "$fmt")
	check "$fmt: partpack -F $tool (pp_format_tool) writes a .$fmt" \
		partpack -q -F "$tool" -o "head.$fmt" head.img
	check_eq "$fmt: ... which partinfo calls $tool" "$tool" "$(json_field "head.$fmt" format)"
	check "$fmt: test_archive runs $tool -t on it" test_archive "head.$fmt"
	check_stdout_cmp "$fmt: decode_archive gives the image" head.img decode_archive "head.$fmt"
	checks=$(pp_format_checks "$fmt")
	check_eq "$fmt: pp_format_checks names the default check first" \
		"$(json_field "head.$fmt" check)" "${checks%% *}"
	for ck in $checks; do
		partpack -q -f -F "$tool" -C "$ck" -o "head.$fmt" head.img &&
			check_eq "$fmt: ... --check $ck is carried" "$ck" "$(json_field "head.$fmt" check)" ||
			not_ok "$fmt: ... --check $ck is carried" "partpack -C $ck failed"
	done
done
check_fails "pp_format_tool of no format: status 1, one line" 1 pp_format_tool bz2

# The TAP helpers, run in a child bash so their failures stay there.
tap() {
	bash -c '. "$PP_SRCDIR/tests/lib.sh"; '"$1" 2>&1
}
check_eq "check_fails: right status and one line" "ok 1 - x" \
	"$(tap 'check_fails x 3 bash -c "echo one >&2; exit 3"' | head -1)"
check_eq "check_fails: a pattern of statuses" "ok 1 - x" \
	"$(tap 'check_fails x "1|2" bash -c "echo one >&2; exit 2"' | head -1)"
check_eq "check_fails: two lines of stderr fail" "not ok 1 - x" \
	"$(tap 'check_fails x 3 bash -c "printf \"a\nb\n\" >&2; exit 3"' | head -1)"
check_eq "check_fails: no newline at the end fails" "not ok 1 - x" \
	"$(tap 'check_fails x 3 bash -c "printf a >&2; exit 3"' | head -1)"
check_eq "check_fails: wrong status fails" "not ok 1 - x" \
	"$(tap 'check_fails x 3 bash -c "echo one >&2; exit 1"' | head -1)"
check_eq "check_fails: sets CHECK_STDERR" "one" \
	"$(tap 'check_fails x 3 bash -c "echo one >&2; exit 3" >/dev/null; echo "$CHECK_STDERR"' | sed -n 1p)"
check_eq "check: failure shows the output" "#   boom" \
	"$(tap 'check x bash -c "echo boom; exit 1"' | grep '^#   boom$')"
check_eq "check_stdout_cmp: a failing command fails" "not ok 1 - x" \
	"$(tap 'check_stdout_cmp x /dev/null false' | head -1)"
check_eq "a script with a failure exits 1" "1" \
	"$(tap 'not_ok x' >/dev/null; echo $?)"
check_eq "plan line at exit" "1..2" \
	"$(tap 'ok a; skip b why' | tail -1)"
