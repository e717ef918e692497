# cli.sh - what a user of xz and gzip expects of the three tools: --help and
# --version, one-line usage errors, a progress line only on a terminal and
# not with -q; and the traps such a user falls into, closed (issue 14).

require_cmd partpack partpatch partinfo partcat script sfdisk xz python3

for tool in partpack partpatch partinfo partcat; do
	check "$tool --help exits 0 and says Usage" bash -c "$tool --help | grep -q '^Usage: $tool'"
	check_eq "$tool --version" "$tool (partpack) $(sed -n 's/^#define PP_VERSION "\(.*\)"/\1/p' "$PP_SRCDIR/lib/partpack.h")" \
		"$($tool --version)"
	check_fails "$tool --no-such-option: status 2, one line" 2 $tool --no-such-option x
	case $CHECK_STDERR in
	"$tool: "*"--help"*) ok "... it names the tool and points to --help" ;;
	*) not_ok "... it names the tool and points to --help" "$CHECK_STDERR" ;;
	esac
done
check_fails "partpack -o without its argument: status 2" 2 partpack -o
check_fails "partinfo without an archive: status 2" 2 partinfo
check_fails "partpatch without --offset or --partition: status 2" 2 partpatch x.xz

# Every short option --help shows is in the man page, and the reverse
# holds for the long ones.
for tool in partpack partpatch partinfo; do
	man=$PP_SRCDIR/tools/man/$tool.1
	missing=""
	for opt in $($tool --help | sed -n 's/^  \(-[A-Za-z0-9]\), --\([a-z-]*\).*/\1 --\2/p'); do
		grep -q -- "$(printf '%s' "$opt" | sed 's/-/\\\\-/g')" "$man" || missing+=" $opt"
	done
	check_eq "$tool: the man page has every option --help shows" "" "$missing"
done
check "partpack --help names every kind of selector" bash -c \
	'h=$(partpack --help); for s in START:END START+LENGTH partN /dev/sdaN name: /MOUNTPOINT label: uuid:; do
	 grep -qF -- "$s" <<<"$h" || { echo "missing $s"; exit 1; }; done'
check "--help of partpack says K/M/G are binary and kB/MB/GB decimal" bash -c \
	'partpack --help | grep -q "powers of 1024" && partpack --help | grep -q "kB, MB, GB, TB powers of 1000"'

# The line is drawn after the first block and then at most 4 times a second.
head -c 8M /dev/urandom | base64 >img
script -qec "partpack -1 -B 1MiB -o tty.xz img" /dev/null >tty.out </dev/null
if grep -aq 'partpack: packing: .*B (.*%), .*B/s' tty.out; then
	ok "a progress line on a terminal (bytes, %, rate, ETA)"
else
	not_ok "a progress line on a terminal" "$(tr '\r' '\n' <tty.out | tail -3)"
fi
script -qec "partpack -q -1 -B 1MiB -o quiet.xz img" /dev/null >quiet.out </dev/null
check_eq "none with -q" "" "$(cat quiet.out)"
partpack -1 -B 1MiB -o pipe.xz img 2>pipe.err
check_eq "none when stderr is not a terminal" "" "$(cat pipe.err)"
check_cmp "the progress line does not change the output" tty.xz pipe.xz

# ---- option arity comes from each tool's option table ------------------------
check "partpack --bmap -9: -9 is the bmap's name, not a level" \
	partpack -q --bmap -9 -o arity.xz img
check "... which is written" test -s ./-9
check "partpack -F zstd -19 -o FILE INPUT: the level is taken out, one INPUT stays" \
	partpack -q -F zstd -19 -o l19.zst img

# ---- a disk with a partition table, no filesystems needed -------------------
truncate -s 16M disk.img
printf 'label: gpt\nstart=2048, size=8192, name=boot\nstart=10240, size=12288, name=root\n' |
	sfdisk -q disk.img || bail "sfdisk"
P1=1048576 S1=4194304 P2=5242880 S2=6291456
head -c $S1 img | dd of=disk.img bs=1M seek=1 conv=notrunc status=none

# ---- -k is xz's --keep; --keep-raw is -K ------------------------------------
check "partpack -K part1 (the short --keep-raw)" partpack -q -1 -B 1MiB -K part1 -o K.xz disk.img
check "partpack --keep-raw part1" partpack -q -1 -B 1MiB --keep-raw part1 -o keepraw.xz disk.img
check_cmp "... the same bytes" K.xz keepraw.xz
check "partpack -k -K part1 (xz's keep-the-input)" partpack -q -k -1 -B 1MiB -K part1 -o k.xz disk.img
check "partpack --keep -K part1" partpack -q --keep -1 -B 1MiB -K part1 -o keep.xz disk.img
check_cmp "... -k changes nothing" K.xz k.xz
check_cmp "... --keep changes nothing" K.xz keep.xz
check "... and the input is still there" test -s disk.img

# ---- --block-size has limits ----------------------------------------------
for bs in 1 4095 1025MiB 2GiB; do
	check_fails "partpack -B $bs: status 2" 2 partpack -B $bs -o bs.xz img
	case $CHECK_STDERR in
	*"4KiB"*"1GiB"*) ok "... the message says the limits" ;;
	*) not_ok "... the message says the limits" "$CHECK_STDERR" ;;
	esac
done
check "... and nothing is written" test ! -e bs.xz
check "partpack -B 4KiB, the smallest, works" partpack -q -1 -B 4KiB -o bs4k.xz disk.img

# ---- an output name agrees with the format; an existing one needs --force ---
check_fails "partpack -F gzip -o mis.xz: status 2" 2 partpack -F gzip -o mis.xz disk.img
check "... nothing written" test ! -e mis.xz
check_fails "partpack -F xz -o mis.gz: status 2" 2 partpack -F xz -o mis.gz disk.img
check "partpack -o name.gz writes gzip" bash -c 'partpack -q -1 -K part1 -o name.gz disk.img && gzip -t name.gz'
check "partpack -o name.txz writes xz" bash -c 'partpack -q -1 -K part1 -o name.txz disk.img && xz -t name.txz'
check "partpack -o name.img writes xz (no format suffix)" bash -c 'partpack -q -1 -B 1MiB -o name.img disk.img && xz -t name.img'
head -c 4096 /dev/urandom >patch.bin
check_fails "partpatch -o out.gz of an xz archive: status 2" 2 \
	partpatch K.xz --offset $P1 --input patch.bin --output out.gz
check "... nothing written" test ! -e out.gz
echo precious >exists.xz
check_fails "partpatch -o EXISTING: status 1" 1 partpatch K.xz --offset $P1 --input patch.bin --output exists.xz
case $CHECK_STDERR in
*--force*) ok "... the message points to --force" ;;
*) not_ok "... the message points to --force" "$CHECK_STDERR" ;;
esac
check_eq "... the existing file is untouched" precious "$(cat exists.xz)"
check "partpatch -o EXISTING --force replaces it" partpatch K.xz --offset $P1 --input patch.bin --output exists.xz --force
check "... with the patched archive" bash -c 'xz -dc exists.xz | cmp -s -i '$P1':0 -n 4096 - patch.bin'
check_fails "partpack onto an existing output: status 1" 1 partpack -1 -K part1 -o K.xz disk.img

# ---- partpatch's input: - is stdin; empty data and a terminal are refused ---
cp K.xz in.xz && cp K.xz in.orig
check_fails "partpatch with empty standard input: status 2" 2 partpatch in.xz --offset $P1
check_fails "partpatch --input EMPTY-FILE: status 2" 2 partpatch in.xz --offset $P1 --input /dev/null
check_cmp "... the archive is unchanged" in.orig in.xz
script -qec "partpatch in.xz --offset $P1; echo status=\$?" /dev/null >tty-in.out </dev/null
case $(tr -d '\r' <tty-in.out) in
*"is a terminal"*status=2*) ok "partpatch with a terminal on standard input: status 2, at once" ;;
*) not_ok "partpatch with a terminal on standard input: status 2, at once" "$(cat tty-in.out)" ;;
esac
check "partpatch --input - reads standard input" bash -c 'partpatch in.xz --offset '$P1' --input - <patch.bin'
check "... and writes it" bash -c 'xz -dc in.xz | cmp -s -i '$P1':0 -n 4096 - patch.bin'
mkdir -p adir
check_fails "partpatch --input DIRECTORY: status 1, as the man page says" 1 partpatch in.xz --offset $P1 --input adir

# ---- messages say the way out ---------------------------------------------
cp K.xz ro.xz
check_fails "a patch of compressed bytes: status 3" 3 partpatch ro.xz --offset $P2 --input patch.bin
case $CHECK_STDERR in
*"partpack --keep-raw $P2+4096"*) ok "... the message says how to make them patchable" ;;
*) not_ok "... the message says how to make them patchable" "$CHECK_STDERR" ;;
esac
check_fails "... by partition: status 3" 3 partpatch ro.xz --partition part2 --input patch.bin
case $CHECK_STDERR in
*"partpack --keep-raw part2"*) ok "... the message names the partition to keep raw" ;;
*) not_ok "... the message names the partition to keep raw" "$CHECK_STDERR" ;;
esac
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	mkdir -p rodir && cp K.xz rodir/a.xz && chmod 666 rodir/a.xz && chmod 555 rodir && chmod 755 .
	check_fails "a directory where the undo record cannot go: status 1" 1 \
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		partpatch rodir/a.xz --offset $P1 --input patch.bin
	case $CHECK_STDERR in
	*"undo record"*--output*) ok "... the message points to --output" ;;
	*) not_ok "... the message points to --output" "$CHECK_STDERR" ;;
	esac
	check_cmp "... the archive is unchanged" K.xz rodir/a.xz
else
	skip "a directory where the undo record cannot go" "needs root and setpriv"
fi

# ---- sizes: K/M/G are powers of 1024, kB/MB/GB powers of 1000 ----------------
check_eq "--dry-run: 0+1MB is 10^6 bytes, 0+1M and 0+1MiB 2^20" \
	"0+1MB: bytes 0..1000000|0+1M: bytes 0..1048576|0+1MiB: bytes 0..1048576" \
	"$(partpack -n -K 0+1MB -K 0+1M -K 0+1MiB disk.img | head -3 | sed 's/ (.*//' | paste -sd'|')"

# ---- --dry-run --------------------------------------------------------------
check "partpack --dry-run -K part1 -K name:root" bash -c 'partpack --dry-run -K part1 -K name:root disk.img >dry.out'
check_eq "... the kept ranges by partition and what they cost" \
"part1: bytes $P1..$((P1 + S1)) ($S1 bytes, 4.0 MiB); partition 1 \"boot\"
name:root: bytes $P2..$((P2 + S2)) ($S2 bytes, 6.0 MiB); partition 2 \"root\"
kept raw: $((S1 + S2)) bytes (10.0 MiB) of a 16.0 MiB image, stored uncompressed; nothing written" "$(cat dry.out)"
check "... and writes nothing" test ! -e disk.img.xz
check_eq "--dry-run: a range inside a partition" \
	"0+4KiB: bytes 0..4096 (4096 bytes, 4.0 KiB); in no partition|$((P1 + 4096))+4096: bytes $((P1 + 4096))..$((P1 + 8192)) (4096 bytes, 4.0 KiB); in partition 1 \"boot\"" \
	"$(partpack -n -K 0+4KiB -K $((P1 + 4096))+4096 disk.img | head -2 | paste -sd'|')"

# ---- progress: ends at 100 %; -v prints xz-style totals -------------------------
last=$(tr '\r' '\n' <tty.out | grep 'partpack: packing' | tail -1)
case $last in
*"(100%)"*) ok "the progress line ends at 100 %" ;;
*) not_ok "the progress line ends at 100 %" "$last" ;;
esac
partpack -v -1 -B 1MiB -K part1 -o v.xz disk.img 2>v.err
case $(tail -1 v.err) in
"partpack: disk.img: 100 %, 16.0 MiB -> "*" = 0."*", "*"/s, "*:[0-5][0-9]) ok "-v ends with totals: in, out, ratio, speed, time" ;;
*) not_ok "-v ends with totals: in, out, ratio, speed, time" "$(cat v.err)" ;;
esac
check_cmp "... -v changes no output byte" K.xz v.xz

# ---- partpack keeps the input's times -----------------------------------------
touch -d @1600000000 disk.img
partpack -q -1 -K part1 -o mtime.xz disk.img
check_eq "the output has the input's mtime, as with xz and gzip" 1600000000 "$(stat -c %Y mtime.xz)"

# ---- already-compressed input gets a warning -----------------------------------
head -c 64K img >small.img
xz -1 -c small.img >small.img.xz
partpack -1 -o twice.xz small.img.xz 2>twice.err
case $(cat twice.err) in
"partpack: small.img.xz: warning: already xz-compressed"*) ok "an .xz input gets a warning" ;;
*) not_ok "an .xz input gets a warning" "$(cat twice.err)" ;;
esac
gzip -c small.img >small.img.gz
check "... so does a .gz (and -q silences it)" bash -c \
	'partpack -1 -o gz.xz small.img.gz 2>&1 | grep -q "already gzip-compressed" &&
	 [ -z "$(partpack -q -f -1 -o gz.xz small.img.gz 2>&1)" ]'
printf '\x28\xb5\x2f\xfd rest' >fake.zst
check "... so does zstd data" bash -c 'partpack -1 -o zst.xz fake.zst 2>&1 | grep -q "already zstd-compressed"'

# ---- partinfo: units, ratio, partitions, blocks, JSON -----------------------------
partinfo K.xz >info.txt
check "partinfo: no trailing spaces" bash -c '! grep -n " $" info.txt'
check "partinfo: sizes with units and the ratio" bash -c \
	'grep -q "^Uncompressed size: 16777216 (16.0 MiB)$" info.txt && grep -q "^Ratio:             0\.[0-9][0-9][0-9]$" info.txt'
check "partinfo: the partition table, with what is patchable" bash -c \
	'grep -Eq "^ +1 +'$P1' +'$S1' +4\.0 MiB +yes +boot$" info.txt && grep -Eq "^ +2 +'$P2' +'$S2' +6\.0 MiB +no +root$" info.txt'
check_eq "partinfo --json: a partitions array" \
	"[{'number': 1, 'name': 'boot', 'offset': $P1, 'length': $S1, 'patchable': True}, {'number': 2, 'name': 'root', 'offset': $P2, 'length': $S2, 'patchable': False}]" \
	"$(partinfo --json K.xz | python3 -c 'import json, sys; print(json.load(sys.stdin)["partitions"])')"
check_eq "partinfo --json on an image without a partition table: []" "[]" \
	"$(partinfo --json pipe.xz | python3 -c 'import json, sys; print(json.load(sys.stdin)["partitions"])')"
check_eq "partinfo --json --verify: file and verified" "K.xz True crc64" \
	"$(partinfo --json --verify K.xz | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["file"], d["verified"], d["check"])')"
weird=$(printf 'w\xff\xfe"\\\001.xz')
cp K.xz "$weird"
check "partinfo --json: a file name that is not UTF-8 still gives valid JSON" bash -c \
	'partinfo --json "$1" >weird.json && python3 -m json.tool weird.json >/dev/null' _ "$weird"
check "partinfo --blocks numbers blocks as xz -lvv does" bash -c '
	partinfo --blocks K.xz | sed -n "/^Block table:/,\$p" | awk "NR > 2 { print \$1, \$2, \$3, \$4, \$5 }" >ours.txt
	xz --robot -lvv K.xz | awk -F"\t" "\$1 == \"block\" { print \$4, \$5, \$6, \$7, \$8 }" >xz.txt
	[ -s xz.txt ] && cmp ours.txt xz.txt'
check_eq "partinfo --blocks: stored blocks are the kept partition's" "$S1" \
	"$(partinfo --json --blocks K.xz | python3 -c 'import json, sys; print(sum(b["stored"] for b in json.load(sys.stdin)["block_list"]))')"

# ---- formats come from the library's registry -------------------------------
# Formats come from the library's registry: output suffixes and -F names
# pick one, and partpatch refuses an archive whose name says another
# format, naming both.
head -c 300000 /dev/urandom >small
check "partpack -o NAME.tgz writes gzip" \
	bash -c 'partpack -q -o s.tgz small && partinfo s.tgz | grep -q "^Format: *gzip$"'
check_fails "partpack -F zip: status 2" 2 partpack -F zip -o s.zip small
check_eq "... listing the formats" \
	"partpack: --format: unknown format 'zip' (xz, gzip, zstd)" "$CHECK_STDERR"
cp s.tgz s.xz
check_fails "a gzip archive named .xz is refused: status 1" 1 \
	partpatch s.xz --offset 0 --input patch.bin
check_eq "... naming both formats" \
	"partpatch: s.xz: is a gzip file, but its name says xz" "$CHECK_STDERR"
partpack -q -o x.xz small && cp x.xz x.gzip
check_fails "an xz archive named .gzip is refused: status 1" 1 \
	partpatch x.gzip --offset 0 --input patch.bin
check_eq "... naming both formats" \
	"partpatch: x.gzip: is a xz file, but its name says gzip" "$CHECK_STDERR"
check_cmp "... and left as it was" x.xz x.gzip
