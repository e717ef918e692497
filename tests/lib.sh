# tests/lib.sh - helpers for the integration scripts in tests/integration/.
#
# tests/run sources this file, then the script, in bash, with the current
# directory set to a fresh $TESTDIR, PATH starting with $PARTPACK_BUILD and
# stdin from /dev/null.  To run one script by hand:
#
#     tests/run build xz
#
# TAP output: every helper prints "ok N - desc" or "not ok N - desc" on
# stdout, with diagnostics as "# ..." lines after a failure.  At exit the plan
# line "1..N" is printed and the script exits non-zero if anything failed.
#
#   ok DESC / not_ok DESC [DIAG...]   record a result
#   skip DESC REASON                  record "ok N - DESC # SKIP REASON"
#   check DESC CMD...                 ok if CMD exits 0, else not ok + its output
#   check_fails DESC STATUS CMD...    ok if CMD exits with STATUS (3, or
#                                     alternatives: "1|2") and writes exactly
#                                     one line to stderr; sets CHECK_STATUS,
#                                     CHECK_STDERR, CHECK_STDOUT
#   check_stdout_cmp DESC FILE CMD... ok if CMD exits 0 and its stdout equals FILE
#   check_cmp DESC FILE1 FILE2        ok if the files are byte-identical
#   check_eq DESC EXPECTED ACTUAL     ok if the strings are equal
#   bail DESC                         record a failure and stop the script
#   require_cmd CMD...                bail unless every CMD is on PATH
#   pp_formats                        the library's formats by suffix ("xz gz zst")
#   pp_format_tool SUF                its name and reference tool ("gzip")
#   pp_format_checks SUF              the checks it carries, default first
#   decode_archive FILE / test_archive FILE
#                                     FILE's reference tool's -dc / -t
#   python_with MODULE                a python3 that imports MODULE
#
# Disk images (no root, no loop devices; sizes in the PP_* variables below,
# which a script may set before calling):
#   make_gpt_image FILE               sparse GPT disk: part 1 "boot" (ext4,
#                                     label boot), part 2 "root" (ext4, label
#                                     root, a small Debian-like tree)
#   make_boot_fs FILE SIZE [LABEL] [VARIANT]
#                                     standalone ext4 image of SIZE bytes (or
#                                     with a K/M/G/KiB/MiB/GiB suffix) with
#                                     content unlike make_gpt_image's /boot
#   part_offset IMAGE N / part_size IMAGE N
#                                     partition N's start / size in bytes
#
# The images are nearly reproducible: fixed GUIDs, UUIDs, hash seeds and
# timestamps (E2FSPROGS_FAKE_TIME, touch -d); only the inodes' change times
# (mke2fs -d copies the source files' ctime, which touch cannot set) and the
# host binaries copied in differ between builds.

if [ -z "${_PP_LIB_SOURCED:-}" ]; then
_PP_LIB_SOURCED=1

set -o pipefail

# ---- sizes (MiB unless said otherwise) --------------------------------------
: "${PP_IMG_SIZE_MIB:=64}"       # the whole disk
: "${PP_BOOT_START_MIB:=1}"      # partition 1 start
: "${PP_BOOT_SIZE_MIB:=8}"       # partition 1 size
# Partition 2 fills the rest up to the last whole MiB before the backup GPT.
: "${PP_ROOT_SIZE_MIB:=$((PP_IMG_SIZE_MIB - PP_BOOT_START_MIB - PP_BOOT_SIZE_MIB - 1))}"
: "${PP_BOOT_KERNEL_KIB:=384}"   # the fake vmlinuz in /boot
: "${PP_BOOT_CONFIG_KIB:=192}"   # the fake config in /boot
: "${PP_ROOT_EXTRA_COPIES:=0}"   # extra copies of /bin under /usr/lib/pp-N (more data)

# partpatch's file edits run nbdkit with the filter of this build.
export PARTPACK_NBDKIT_FILTER=${PARTPACK_NBDKIT_FILTER:-${PARTPACK_BUILD:-}/nbdkit-partpack-filter.so}

PP_SECTOR=512
PP_MIB=1048576
PP_GPT_LABEL_ID=6B1E0D52-7A1A-4C1B-9A5F-2F0C3D7E8A01
PP_BOOT_PART_UUID=6B1E0D52-7A1A-4C1B-9A5F-2F0C3D7E8A11
PP_ROOT_PART_UUID=6B1E0D52-7A1A-4C1B-9A5F-2F0C3D7E8A12
PP_BOOT_FS_UUID=0b0a0b0a-1111-4222-8333-000000000001
PP_ROOT_FS_UUID=0b0a0b0a-1111-4222-8333-000000000002
PP_NEWBOOT_FS_UUID=0b0a0b0a-1111-4222-8333-000000000003
PP_FAKE_TIME=1700000000
PP_LINUX_FS_TYPE=0FC63DAF-8483-4772-8E79-3D69D8477DE4

# ---- TAP ------------------------------------------------------------------
_pp_n=0
_pp_failed=0

_pp_diag() {
	# Prints its stdin as "#   line" diagnostics, at most 40 lines.
	local lines
	lines=$(cat)
	[ -n "$lines" ] || return 0
	local count
	count=$(printf '%s\n' "$lines" | wc -l)
	if [ "$count" -gt 40 ]; then
		printf '%s\n' "$lines" | head -n 20 | sed 's/^/#   /'
		echo "#   ... ($((count - 40)) lines cut) ..."
		printf '%s\n' "$lines" | tail -n 20 | sed 's/^/#   /'
	else
		printf '%s\n' "$lines" | sed 's/^/#   /'
	fi
}

ok() {
	_pp_n=$((_pp_n + 1))
	echo "ok $_pp_n - $1"
}

not_ok() {
	_pp_n=$((_pp_n + 1))
	_pp_failed=$((_pp_failed + 1))
	echo "not ok $_pp_n - $1"
	shift
	if [ $# -gt 0 ]; then
		printf '%s\n' "$@" | _pp_diag
	fi
	return 0
}

skip() {
	_pp_n=$((_pp_n + 1))
	echo "ok $_pp_n - $1 # SKIP ${2:-}"
}

bail() {
	not_ok "$1" "stopping this script here"
	exit 1
}

_pp_tmp() {
	mktemp "${TESTDIR:-${TMPDIR:-/tmp}}/.pp-check.XXXXXX"
}

_pp_quote() {
	local out="" a
	for a in "$@"; do
		out+="$(printf '%q' "$a") "
	done
	printf '%s' "${out% }"
}

check() {
	local desc=$1
	shift
	local out st
	out=$(_pp_tmp)
	"$@" >"$out" 2>&1
	st=$?
	if [ $st -eq 0 ]; then
		ok "$desc"
	else
		not_ok "$desc" "command: $(_pp_quote "$@")" "exit status: $st"
		_pp_diag <"$out"
	fi
	rm -f "$out"
	return $st
}

check_fails() {
	local desc=$1 want=$2
	shift 2
	local out err
	out=$(_pp_tmp)
	err=$(_pp_tmp)
	"$@" >"$out" 2>"$err"
	CHECK_STATUS=$?
	CHECK_STDERR=$(cat "$err")
	CHECK_STDOUT=$(head -c 4096 "$out")
	local lines problem=""
	lines=$(wc -l <"$err")
	problem="exit status $CHECK_STATUS, expected $want"
	local w
	local -a wants
	IFS='|' read -ra wants <<<"$want"
	for w in "${wants[@]}"; do
		[ "$CHECK_STATUS" = "$w" ] && problem=""
	done
	if [ -z "$problem" ]; then
		if [ ! -s "$err" ]; then
			problem="nothing on stderr, expected one line"
		elif [ "$lines" -ne 1 ] || [ "$(tail -c 1 "$err" | od -An -c | tr -d ' ')" != '\n' ]; then
			problem="stderr is not exactly one line"
		fi
	fi
	if [ -z "$problem" ]; then
		ok "$desc"
	else
		not_ok "$desc" "command: $(_pp_quote "$@")" "$problem" "stderr:"
		_pp_diag <"$err"
	fi
	rm -f "$out" "$err"
	[ -z "$problem" ]
}

check_stdout_cmp() {
	local desc=$1 file=$2
	shift 2
	local err st cmpout
	err=$(_pp_tmp)
	cmpout=$(_pp_tmp)
	"$@" 2>"$err" | cmp - "$file" >"$cmpout" 2>&1
	local -a sts=("${PIPESTATUS[@]}")
	if [ "${sts[0]}" -eq 0 ] && [ "${sts[1]}" -eq 0 ]; then
		ok "$desc"
		st=0
	else
		not_ok "$desc" "command: $(_pp_quote "$@")" "exit status ${sts[0]}; cmp with $file: status ${sts[1]}"
		cat "$cmpout" "$err" | _pp_diag
		st=1
	fi
	rm -f "$err" "$cmpout"
	return $st
}

check_cmp() {
	local out
	if out=$(cmp "$2" "$3" 2>&1); then
		ok "$1"
	else
		not_ok "$1" "$out"
		return 1
	fi
}

check_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1" "expected: $2" "actual:   $3"
		return 1
	fi
}

require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || bail "required command not found: $c"
	done
}

# inject_faults TOOL...: makes PARTPACK_FAULT_AFTER=k TOOL ... stop TOOL
# dead (status 99) just before its k-th write, sync, unlink or rename, as a
# crash would, and PARTPACK_FAULT_EIO=SUFFIX TOOL ... fail its reads of a
# file whose path ends in SUFFIX with EIO: while either variable is set,
# TOOL runs with the test-only shim $PARTPACK_BUILD/tests/faultinject.so
# preloaded (tests/faultinject.c); the library itself has no such hook.
# Only TOOL run by this shell (not by bash -c or another program) is
# wrapped.
inject_faults() {
	local tool
	[ -f "$PARTPACK_BUILD/tests/faultinject.so" ] ||
		bail "$PARTPACK_BUILD/tests/faultinject.so is not built (make it)"
	for tool in "$@"; do
		eval "$tool() { _pp_faulty $tool \"\$@\"; }"
	done
}

_pp_faulty() {
	if [ -z "${PARTPACK_FAULT_AFTER:-}" ] && [ -z "${PARTPACK_FAULT_EIO:-}" ]; then
		command "$@"
		return
	fi
	# A sanitizer runtime wants to be loaded first; the shim only forwards.
	LD_PRELOAD=$PARTPACK_BUILD/tests/faultinject.so${LD_PRELOAD:+:$LD_PRELOAD} \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		command "$@"
}

# pp_formats: the formats the library knows, by suffix without the dot
# ("xz gz zst"), in the registry's order.  Asked of the library itself
# ($PARTPACK_BUILD/tests/formats lists pp_format_at() and the checks each
# format carries), not parsed from a tool's help text, so that a script
# looping over them covers a new format without being edited.
pp_formats() {
	_pp_format_table | awk '{ printf "%s%s", sep, substr($2, 2); sep = " " } END { print "" }'
}

# _pp_format_table: the lister's lines ("xz .xz crc64 none crc32 sha256"),
# asked once per script: kept in $TESTDIR/.pp-formats (the callers run in
# subshells, $(pp_formats), where a variable would not outlive the call).
_pp_format_table() {
	local lister=$PARTPACK_BUILD/tests/formats cache=${TESTDIR:+$TESTDIR/.pp-formats}
	if [ -n "$cache" ] && [ -s "$cache" ]; then
		cat "$cache"
		return
	fi
	[ -x "$lister" ] || { echo "pp_formats: $lister is not built (make it)" >&2; return 1; }
	local table
	table=$("$lister") && [ -n "$table" ] ||
		{ echo "pp_formats: $lister listed nothing" >&2; return 1; }
	[ -z "$cache" ] || printf '%s\n' "$table" >"$cache"
	printf '%s\n' "$table"
}

# _pp_format_fields SUFFIX FIRST: fields FIRST.. of the format's line.
_pp_format_fields() {
	_pp_format_table | awk -v s=".$1" -v first="$2" '$2 == s {
			for (i = first; i <= NF; i++) printf "%s%s", $i, (i < NF ? " " : "\n")
			found = 1
		}
		END { if (!found) { print "pp_format: no format " s > "/dev/stderr"; exit 1 } }'
}

# pp_format_tool SUFFIX: the format's name in the registry, which is also
# the command of its reference implementation (xz, gzip, zstd), the
# independent judge of what we write: each takes -q, -t and -dc.  It is
# also what partpack -F takes.
pp_format_tool() { _pp_format_fields "$1" 1 | cut -d' ' -f1; }

# pp_format_checks SUFFIX: the checks (--check names) an archive of the
# format can carry, its default first ("crc64 none crc32 sha256").
pp_format_checks() { _pp_format_fields "$1" 3; }

# decode_archive FILE: FILE decoded by the reference tool of the format
# its suffix names, on stdout.  test_archive FILE: that tool's -t.
decode_archive() { "$(pp_format_tool "${1##*.}")" -q -dc "$1"; }
test_archive() { "$(pp_format_tool "${1##*.}")" -q -t "$1"; }

# python_with MODULE: the first of python3 and /usr/bin/python3 that
# imports MODULE (Debian's python3-* modules are /usr/bin/python3's, which
# may not be the first python3 on PATH); nothing if neither does.
python_with() {
	local py
	for py in python3 /usr/bin/python3; do
		if "$py" -c "import $1" 2>/dev/null; then
			echo "$py"
			return 0
		fi
	done
	return 1
}

# nbdkit_ ARGS...: nbdkit, with the sanitizer runtime loaded first when
# the build's filter needs it (PP_TEST_CFLAGS with -fsanitize=address;
# nbdkit itself is not ours to leak-check).  Its clients run without it
# (qemu's coroutines hang under a preloaded ASan): a --run command should
# start with `env -u LD_PRELOAD`.
nbdkit_() {
	nbdkit_preload
	LD_PRELOAD=$NBDKIT_PRELOAD nbdkit "$@"
}
# nbdkit_exec ARGS...: as nbdkit_, in place of the shell that runs it.
# Started as `nbdkit_exec ... &`, $! is then nbdkit's own PID: with
# nbdkit_ it is a subshell's, and killing that leaves nbdkit running,
# holding its archive's lock against the next server.
nbdkit_exec() {
	nbdkit_preload
	LD_PRELOAD=$NBDKIT_PRELOAD exec nbdkit "$@"
}
# nbdkit_preload: NBDKIT_PRELOAD, the LD_PRELOAD for nbdkit_ (the
# caller's, after the sanitizer runtime when there is one).
nbdkit_preload() {
	local preload=
	case ${PP_TEST_CFLAGS:-} in
	*fsanitize=address*)
		preload=$(cc -print-file-name=libasan.so)
		export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0
		;;
	esac
	NBDKIT_PRELOAD="$preload${LD_PRELOAD:+${preload:+:}$LD_PRELOAD}"
}

# nbdkit_on_path: for tools of the build that start nbdkit themselves
# (partpatch's appliance edits), an `nbdkit` first on PATH that runs the
# real one as nbdkit_ does, so a sanitizer build's filter loads.  Nothing
# changes for a plain build.
nbdkit_on_path() {
	case ${PP_TEST_CFLAGS:-} in
	*fsanitize=address*) ;;
	*) return 0 ;;
	esac
	local real
	real=$(command -v nbdkit) || return 0
	mkdir -p "$TESTDIR/.nbdkit-bin"
	cat >"$TESTDIR/.nbdkit-bin/nbdkit" <<WRAPPER
#!/bin/sh
LD_PRELOAD="$(cc -print-file-name=libasan.so)\${LD_PRELOAD:+:\$LD_PRELOAD}" \\
ASAN_OPTIONS="\${ASAN_OPTIONS:-}:detect_leaks=0" exec "$real" "\$@"
WRAPPER
	chmod +x "$TESTDIR/.nbdkit-bin/nbdkit"
	PATH=$TESTDIR/.nbdkit-bin:$PATH
}

_pp_end() {
	local st=$?
	echo "1..$_pp_n"
	if [ "$st" -eq 0 ] && [ "$_pp_failed" -gt 0 ]; then
		st=1
	fi
	exit "$st"
}
# PP_LIB_TAP=0 before sourcing: only the image helpers (examples/demo.sh).
if [ "${PP_LIB_TAP:-1}" = 1 ]; then
	trap _pp_end EXIT
fi

# ---- sizes and partitions ---------------------------------------------------

# Prints bytes for 123, 4K, 4KiB, 8M, 8MiB, 1G, 1GiB (powers of 1024).
pp_bytes() {
	local v=$1 n unit
	n=${v%%[!0-9]*}
	unit=${v#"$n"}
	[ -n "$n" ] || { echo "pp_bytes: bad size: $v" >&2; return 1; }
	case $unit in
	"" | B) echo "$n" ;;
	K | k | KiB) echo $((n * 1024)) ;;
	M | MiB) echo $((n * 1048576)) ;;
	G | GiB) echo $((n * 1073741824)) ;;
	*) echo "pp_bytes: bad size: $v" >&2; return 1 ;;
	esac
}

# size_of FILE: its size in bytes.
size_of() { stat -c %s "$1"; }

# _pp_part_field IMAGE N FIELD: FIELD (start or size) of partition N, in
# bytes, from sfdisk --json (parsed with awk: no python or jq needed).
_pp_part_field() {
	local img=$1 n=$2 field=$3 json
	json=$(sfdisk --json "$img") || { echo "part_$field: cannot read the partition table of $img" >&2; return 1; }
	printf '%s\n' "$json" | awk -v n="$n" -v field="$field" '
		function val(line) {
			sub(/^[^:]*:[ \t]*/, "", line)
			sub(/,[ \t]*$/, "", line)
			gsub(/^"|"$/, "", line)
			return line
		}
		/"device":/     { dev = val($0) }
		/"sectorsize":/ { ss = val($0) }
		/"node":/       { node = val($0); inpart = (node == dev n || node == dev "p" n) }
		inpart && $0 ~ "\"" field "\":" { v = val($0); found = 1; inpart = 0 }
		END {
			if (!found) exit 1
			if (ss == "") ss = 512
			printf "%.0f\n", v * ss
		}' || { echo "part_$field: $img has no partition $n" >&2; return 1; }
}

part_offset() { _pp_part_field "$1" "$2" start; }
part_size() { _pp_part_field "$1" "$2" size; }

# ---- image content ----------------------------------------------------------

# _pp_first_file CANDIDATE...: the first one that exists.
_pp_first_file() {
	local f
	for f in "$@"; do
		if [ -f "$f" ]; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

# _pp_text KIB SEED: KIB KiB of compressible but non-trivial text made from
# the machine's licence texts and /etc files, in an order set by SEED.
_pp_text() {
	local kib=$1 seed=$2 files
	files=$(ls /usr/share/common-licenses/* /etc/services /etc/protocols \
		/etc/mke2fs.conf /etc/os-release 2>/dev/null)
	if [ "$seed" = new ]; then
		files=$(printf '%s\n' "$files" | sort -r)
	fi
	local i
	for ((i = 1; i <= 64; i++)); do
		echo "# $seed section $i"
		# shellcheck disable=SC2086
		cat $files 2>/dev/null
	done | head -c $((kib * 1024))
	return 0 # the loop's SIGPIPE once head has enough is expected
}

# _pp_blob KIB SEED: KIB KiB of machine code (a real binary) for a fake kernel.
_pp_blob() {
	local kib=$1 seed=$2 src
	if [ "$seed" = new ]; then
		src=$(_pp_first_file /usr/sbin/mke2fs /usr/bin/tar /usr/bin/grep /usr/bin/bash)
	else
		src=$(_pp_first_file /usr/bin/bash /usr/bin/tar /usr/bin/ls)
	fi
	local i copies
	copies=$((kib * 1024 / $(stat -c %s "$src") + 1))
	{
		printf 'PARTPACK-FAKE-KERNEL %s\n' "$seed"
		for ((i = 0; i < copies; i++)); do cat "$src"; done 2>/dev/null
	} | head -c $((kib * 1024))
	return 0 # as in _pp_text
}

# _pp_boot_tree DIR VARIANT: the files of a /boot ("old" or "new").
_pp_boot_tree() {
	local dir=$1 variant=$2 version
	if [ "$variant" = new ]; then version=6.1.0-99-amd64; else version=6.1.0-13-amd64; fi
	mkdir -p "$dir/grub"
	_pp_blob "$PP_BOOT_KERNEL_KIB" "$variant" >"$dir/vmlinuz-$version"
	_pp_text "$PP_BOOT_CONFIG_KIB" "$variant" >"$dir/config-$version"
	{
		echo "# partpack test /boot ($variant)"
		echo "set default=0"
		echo "set timeout=5"
		echo "menuentry 'Debian GNU/Linux, with Linux $version' {"
		echo "	search --no-floppy --label --set=root boot"
		echo "	linux /vmlinuz-$version root=LABEL=root ro quiet"
		echo "	initrd /initrd.img-$version"
		echo "}"
	} >"$dir/grub/grub.cfg"
	_pp_text 64 "$variant" | sort >"$dir/System.map-$version"
	echo "$variant" >"$dir/STAMP"
}

# _pp_root_tree DIR: a small Debian-like root that libguestfs inspection
# recognises (/etc/fstab, /etc/os-release, /etc/debian_version, /bin).
_pp_root_tree() {
	local dir=$1 b f i
	mkdir -p "$dir/etc" "$dir/bin" "$dir/boot" "$dir/usr/share" "$dir/var/log" "$dir/tmp"
	cat >"$dir/etc/fstab" <<'EOF'
# /etc/fstab: static file system information.
LABEL=root	/	ext4	errors=remount-ro	0	1
LABEL=boot	/boot	ext4	defaults	0	2
EOF
	cat >"$dir/etc/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
EOF
	echo "12.0" >"$dir/etc/debian_version"
	# virt-inspector lists packages from the dpkg database.
	mkdir -p "$dir/var/lib/dpkg"
	cat >"$dir/var/lib/dpkg/status" <<'EOF'
Package: base-files
Status: install ok installed
Priority: required
Section: admin
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

EOF
	echo "partpack-test" >"$dir/etc/hostname"
	printf '127.0.0.1\tlocalhost\n' >"$dir/etc/hosts"
	for b in bash sh ls cat cp echo rm mv tar grep sed gzip; do
		f=$(_pp_first_file "/usr/bin/$b" "/bin/$b") && cp -L "$f" "$dir/bin/$b"
	done
	if [ -d /usr/share/common-licenses ]; then
		cp -rL /usr/share/common-licenses "$dir/usr/share/"
	fi
	i=1
	while [ "$i" -le "$PP_ROOT_EXTRA_COPIES" ]; do
		mkdir -p "$dir/usr/lib/pp-$i"
		cp -L "$dir"/bin/* "$dir/usr/lib/pp-$i/"
		i=$((i + 1))
	done
	_pp_text 512 old >"$dir/var/log/messages"
}

# _pp_mkfs IMAGE OFFSET SIZE LABEL UUID DIR: ext4 over [OFFSET, OFFSET+SIZE)
# of IMAGE, filled from DIR.  SIZE is in bytes; mke2fs's size argument
# without -b is in KiB (power-of-two kilobytes), so the filesystem ends
# exactly at OFFSET+SIZE when SIZE is a multiple of its block size.
_pp_mkfs() {
	local img=$1 offset=$2 size=$3 label=$4 uuid=$5 dir=$6
	if [ $((size % 4096)) -ne 0 ]; then
		echo "_pp_mkfs: size $size is not a multiple of 4 KiB" >&2
		return 1
	fi
	find "$dir" -exec touch -h -d "@$PP_FAKE_TIME" {} + || return 1
	E2FSPROGS_FAKE_TIME=$PP_FAKE_TIME mkfs.ext4 -q -F -L "$label" -U "$uuid" \
		-E "offset=$offset,nodiscard,hash_seed=$uuid,root_owner=0:0" \
		-d "$dir" "$img" "$((size / 1024))" >/dev/null
}

_pp_workdir() {
	mktemp -d "${TESTDIR:-${TMPDIR:-/tmp}}/.pp-tree.XXXXXX"
}

make_gpt_image() {
	local img=$1 work
	local mib=$PP_MIB
	local boot_start=$((PP_BOOT_START_MIB * mib)) boot_size=$((PP_BOOT_SIZE_MIB * mib))
	local root_start=$(((PP_BOOT_START_MIB + PP_BOOT_SIZE_MIB) * mib)) root_size=$((PP_ROOT_SIZE_MIB * mib))
	if [ $((root_start + root_size + mib)) -gt $((PP_IMG_SIZE_MIB * mib)) ]; then
		echo "make_gpt_image: partitions do not fit in $PP_IMG_SIZE_MIB MiB" >&2
		return 1
	fi
	rm -f "$img"
	truncate -s "$((PP_IMG_SIZE_MIB * mib))" "$img" || return 1
	sfdisk -q --no-reread --no-tell-kernel "$img" >/dev/null <<EOF || { echo "make_gpt_image: sfdisk failed" >&2; return 1; }
label: gpt
label-id: $PP_GPT_LABEL_ID
unit: sectors

start=$((boot_start / PP_SECTOR)), size=$((boot_size / PP_SECTOR)), type=$PP_LINUX_FS_TYPE, uuid=$PP_BOOT_PART_UUID, name="boot"
start=$((root_start / PP_SECTOR)), size=$((root_size / PP_SECTOR)), type=$PP_LINUX_FS_TYPE, uuid=$PP_ROOT_PART_UUID, name="root"
EOF
	work=$(_pp_workdir) || return 1
	local st=0
	_pp_boot_tree "$work/boot" old &&
		_pp_mkfs "$img" "$boot_start" "$boot_size" boot "$PP_BOOT_FS_UUID" "$work/boot" &&
		_pp_root_tree "$work/root" &&
		_pp_mkfs "$img" "$root_start" "$root_size" root "$PP_ROOT_FS_UUID" "$work/root" || st=1
	rm -rf "$work"
	[ $st -eq 0 ] || echo "make_gpt_image: building $img failed" >&2
	return $st
}

make_boot_fs() {
	local file=$1 size variant=${4:-new} label=${3:-boot} work st=0
	size=$(pp_bytes "$2") || return 1
	rm -f "$file"
	truncate -s "$size" "$file" || return 1
	work=$(_pp_workdir) || return 1
	_pp_boot_tree "$work/boot" "$variant" &&
		_pp_mkfs "$file" 0 "$size" "$label" "$PP_NEWBOOT_FS_UUID" "$work/boot" || st=1
	rm -rf "$work"
	[ $st -eq 0 ] || echo "make_boot_fs: building $file failed" >&2
	return $st
}

# replace_range IMAGE OFFSET FILE: writes FILE over IMAGE at byte OFFSET.
replace_range() {
	dd if="$3" of="$1" bs=1M seek="$2" oflag=seek_bytes conv=notrunc,fsync status=none
}

# make_stamp_images: what a format's end-to-end test packs and stamps: img
# (make_gpt_image), newboot.img (a new /boot the size of partition 1) and
# expected.img (img with newboot.img over partition 1).  Sets P1 and S1,
# partition 1's offset and size, and SIZE, img's; bails out on failure.
make_stamp_images() {
	make_gpt_image img || bail "make_gpt_image failed"
	P1=$(part_offset img 1) && S1=$(part_size img 1) || bail "no partition 1 in img"
	SIZE=$(size_of img)
	make_boot_fs newboot.img "$S1" boot || bail "make_boot_fs failed"
	cp --sparse=always img expected.img
	replace_range expected.img "$P1" newboot.img
}

# flip_byte FILE OFFSET [MASK]: XORs the byte at OFFSET of FILE, in place,
# with MASK (default 0xFF: every bit inverted).
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1") && [ -n "$b" ] || {
		echo "flip_byte: no byte $2 in $1" >&2
		return 1
	}
	printf "\\$(printf %03o $((b ^ ${3:-0xFF})))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# check_stamp_refusals ARCHIVE: the patches partpatch refuses on any archive
# of make_stamp_images's img with partition 1 kept: one at a compressed
# offset (status 3), one running past partition 1's end (3), one past the
# image's end (2).  The caller checks afterwards that ARCHIVE is unchanged.
check_stamp_refusals() {
	check_fails "patching offset 0 (compressed) is refused: status 3" 3 \
		partpatch "$1" --offset 0 --input newboot.img
	check_fails "a patch running past partition 1's end is refused" 3 \
		partpatch "$1" --offset $((P1 + 4096)) --input newboot.img
	check_fails "a patch past the end of the image is refused: status 2" 2 \
		partpatch "$1" --offset "$SIZE" --length 1 --input newboot.img
}

# find_bytes FILE TEXT: the offset of the only occurrence of TEXT in FILE;
# fails when TEXT is not there or is there twice.
find_bytes() {
	python3 - "$1" "$2" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
needle = sys.argv[2].encode()
i = data.find(needle)
if i < 0 or data.find(needle, i + 1) >= 0:
    sys.exit(1)
print(i)
EOF
}

fi
