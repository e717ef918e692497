# habits.sh - what users of xz, gzip and zstd expect of the tools, and the
# surprises a new user met (one case each): streams, operands, suffixes,
# levels, holes, block numbers, refusals that say the way out.

require_cmd partpack partpatch partinfo partcat sfdisk xz gzip zstd python3 script qemu-img

# A 16 MiB GPT disk with partition 1 (1 MiB..5 MiB, "boot") full of text
# and partition 2 (5 MiB..11 MiB, "root") mostly empty.
truncate -s 16M disk.img
printf 'label: gpt\nstart=2048, size=8192, name=boot\nstart=10240, size=12288, name=root\n' |
	sfdisk -q disk.img || bail "sfdisk"
P1=1048576 S1=4194304 P2=5242880
head -c 3M /dev/urandom | base64 -w 76 | head -c $S1 |
	dd of=disk.img bs=1M seek=1 conv=notrunc status=none
partpack -q -1 -B 1MiB -K part1 -o disk.xz disk.img || bail "partpack disk.img"

# ---- one block numbering: xz -lvv's, from 1 ----------------------------------
# Block 2 is the first of partition 1 (1 MiB blocks); every tool names it so.
check_eq "partinfo --blocks: block 2 starts at image byte $P1" "2 $P1" \
	"$(partinfo --blocks disk.xz | sed -n '/^Block table:/,$p' |
		awk -v p=$P1 '$3 == p { print $1, $3 }')"
head -c 100 /dev/urandom >patch.bin
cp disk.xz num.xz
check "partpatch -v names the block it touched" bash -c \
	"partpatch -v num.xz --offset $P1 --input patch.bin 2>&1 | grep -q 'from block 2;'"
cp disk.xz bad.xz
stored=$(partinfo --json --blocks bad.xz | python3 -c '
import json, sys
b = [b for b in json.load(sys.stdin)["block_list"] if b["number"] == 2][0]
print(b["compressed_offset"] + 4096)')
flip_byte bad.xz "$stored"
check_fails "partinfo --verify of a flipped byte in block 2: status 4" 4 partinfo --verify bad.xz
case $CHECK_STDERR in
*"block 2 "*) ok "... it names block 2" ;;
*) not_ok "... it names block 2" "$CHECK_STDERR" ;;
esac
check_fails "partcat of it: status 4" 4 partcat -o bad.img bad.xz
case $CHECK_STDERR in
*"block 2 "*) ok "... it names block 2 too" ;;
*) not_ok "... it names block 2 too" "$CHECK_STDERR" ;;
esac

# ---- partinfo --json --verify of a damaged archive still prints the JSON ------
block4=$(partinfo --json --blocks bad.xz | python3 -c '
import json, sys
print([b for b in json.load(sys.stdin)["block_list"] if b["number"] == 4][0]["compressed_offset"] + 9000)')
flip_byte bad.xz "$block4"
check_fails "partinfo --json --verify of two damaged blocks: status 4, one line" 4 \
	partinfo --json --verify bad.xz
check_eq "... and the JSON says verified: false, bad blocks 2 and 4" "False [2, 4] $P1" \
	"$(partinfo --json --verify bad.xz 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["verified"], [b["number"] for b in d["bad_blocks"]], d["bad_blocks"][0]["uncompressed_offset"])')"
check "... the text report lists them too" bash -c \
	'partinfo --verify bad.xz 2>/dev/null | grep -q "^Verified: *no: 2 bad blocks$"'

# ---- an empty image packs and shows like any other ----------------------------
: >empty.img
for format in xz gzip zstd; do
	check "partpack -F $format of a 0-byte image" partpack -q -F $format -o empty.$format empty.img
	check_eq "... partinfo shows it: no partitions, 0 bytes" "0 []" \
		"$(partinfo --json empty.$format | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["uncompressed_size"], d["partitions"])')"
	check "... partinfo in text too" bash -c "partinfo empty.$format | grep -q '^Partitions: *none$'"
done

# ---- a GPT name from the image cannot drive the terminal ----------------------
truncate -s 4M esc.img
printf 'label: gpt\nstart=2048, size=2048, name="a\033[31mb\001c"\n' | sfdisk -q esc.img ||
	bail "sfdisk esc.img"
partpack -q -o esc.xz esc.img || bail "partpack esc.img"
check_eq "partinfo escapes control characters of a GPT name, as --json does" \
	'a\u001b[31mb\u0001c' "$(partinfo esc.xz | awk '$1 == 1 { print $NF }')"
check_eq "... --json still gives the name itself" "$(printf 'a\033[31mb\001c')" \
	"$(partinfo --json esc.xz | python3 -c 'import json, sys; print(json.load(sys.stdin)["partitions"][0]["name"])')"

# ---- -o DIRECTORY is a usage error that says so --------------------------------
mkdir -p outdir
for force in "" -f; do
	check_fails "partcat $force -o DIRECTORY: status 2" 2 partcat $force -o outdir disk.xz
	case $CHECK_STDERR in
	*"outdir: is a directory"*) ok "... it says it is a directory" ;;
	*) not_ok "... it says it is a directory" "$CHECK_STDERR" ;;
	esac
	check_fails "partpack $force -o DIRECTORY: status 2" 2 partpack -q $force -o outdir disk.img
	check_fails "partpatch --output DIRECTORY $force: status 2" 2 \
		partpatch disk.xz $force --output outdir --offset $P1 --input patch.bin
done
check "... and the directory is left empty" test -z "$(ls -A outdir)"

# ---- a refusal's remedy covers the whole write --------------------------------
# 5 bytes at 1000 from a pipe: the tool reads only as far as the stored run
# goes (1 byte), but the remedy must cover all 5, in whole 4 KiB blocks.
cp disk.xz remedy.xz
check_fails "5 bytes from a pipe at compressed byte 1000: status 3" 3 \
	bash -c 'printf hello | partpatch remedy.xz --offset 1000'
remedy=$(sed -n "s/.*'partpack --keep-raw \([0-9+]*\)'.*/\1/p" <<<"$CHECK_STDERR")
check_eq "... the remedy keeps the 4 KiB block holding all of it" "0+4096" "$remedy"
check "... packing with it" partpack -q -1 -B 1MiB -K part1 -K "$remedy" -o remedied.xz disk.img
check "... makes the same write patchable" bash -c 'printf hello | partpatch remedied.xz --offset 1000'
check_eq "... and written" hello "$(partcat --offset 1000 --length 5 remedied.xz)"
# 8 KiB across the end of partition 1: half stored, half not.
head -c 8192 /dev/urandom >across.bin
check_fails "8 KiB across the end of partition 1: status 3" 3 \
	partpatch remedy.xz --offset $((P1 + S1 - 4096)) --input across.bin
remedy=$(sed -n "s/.*'partpack --keep-raw \([0-9+]*\)'.*/\1/p" <<<"$CHECK_STDERR")
check_eq "... the remedy covers all 8 KiB" "$((P1 + S1 - 4096))+8192" "$remedy"
check "... and packing with it makes the write patchable" bash -c \
	"partpack -q -1 -B 1MiB -K part1 -K $remedy -o across.xz disk.img &&
	 partpatch across.xz --offset $((P1 + S1 - 4096)) --input across.bin"

# ---- --sparse=auto: holes for zeros inside decoded blocks, as xz -dc > f -----
# One 16 MiB block: 4 MiB of text in partition 1, zeros around it.
partpack -q -1 -o oneblock.xz disk.img || bail "partpack oneblock.xz"
check "partcat -o (--sparse=auto)" partcat -o auto.raw oneblock.xz
check_cmp "... the image" disk.img auto.raw
xz -dc oneblock.xz >xzdc.raw
auto_kib=$(du -k auto.raw | cut -f1) xz_kib=$(du -k xzdc.raw | cut -f1)
check "... allocates no more than xz -dc > f ($auto_kib KiB, xz $xz_kib KiB)" \
	test "$auto_kib" -le "$xz_kib"

# ---- a .zst written by zstd from a pipe (no content size) ---------------------
cat disk.img | zstd -q -3 >piped.zst
check "partcat of a .zst without content sizes" partcat -o piped.raw piped.zst
check_cmp "... is the image" disk.img piped.raw
check_eq "partinfo of it: its size" 16777216 \
	"$(partinfo --json piped.zst | python3 -c 'import json, sys; print(json.load(sys.stdin)["uncompressed_size"])')"
cmp_part1=$(partcat -p part1 disk.xz | sha256sum)
check_eq "... and partcat --partition reads its table" "$cmp_part1" \
	"$(partcat -p part1 piped.zst | sha256sum)"
cat piped.zst piped.zst >twice.zst
check "two such frames back to back" bash -c 'partcat twice.zst | cmp - <(cat disk.img disk.img)'
check "partinfo --verify of them" partinfo --verify twice.zst

# ---- partpack: standard input and output, as xz ------------------------------
partpack -q -1 -K 1M+4M -c disk.img >ref.xz || bail "partpack -c"
check "partpack < IMAGE > ARCHIVE (a file on stdin)" bash -c 'partpack -q -1 -K 1M+4M <disk.img >stdin.xz'
check_cmp "... the archive -c writes" ref.xz stdin.xz
check "cat IMAGE | partpack > ARCHIVE (a pipe)" bash -c 'cat disk.img | partpack -q -1 -K 1M+4M >pipe.xz'
check_cmp "... the same bytes" ref.xz pipe.xz
check "partpack - (stdin named)" bash -c 'partpack -q -1 -K 1M+4M - <disk.img >dash-in.xz'
check_cmp "... the same bytes" ref.xz dash-in.xz
check "partpack -o - writes standard output" bash -c 'partpack -q -1 -K 1M+4M -o - disk.img >dash.xz'
check_cmp "... the same bytes" ref.xz dash.xz
check "... and no file named -" test ! -e ./-
script -qec "partpack -q -1 -o tty.xz; echo status=\$?" /dev/null </dev/null >tty-in.out
case $(tr -d '\r' <tty-in.out) in
*"is a terminal"*status=2*) ok "the image from a terminal is refused: status 2" ;;
*) not_ok "the image from a terminal is refused: status 2" "$(cat tty-in.out)" ;;
esac
script -qec "partpack -q -1 <disk.img; echo status=\$?" /dev/null >tty-out.out </dev/null
case $(tr -d '\r' <tty-out.out) in
*"not written to a terminal"*status=2*) ok "... and the archive to one: status 2" ;;
*) not_ok "... and the archive to one: status 2" "$(cat tty-out.out)" ;;
esac

# ---- several INPUTs, and those already compressed -----------------------------
cp disk.img one.img && cp disk.img two.img && cp ref.xz three.img.xz
check_fails "partpack one.img three.img.xz two.img: status 2 (a warning), one line" 2 \
	partpack -1 one.img three.img.xz two.img
check_eq "... xz's warning" "partpack: three.img.xz: File already has \`.xz' suffix, skipping" "$CHECK_STDERR"
check "... one.img and two.img packed each to its own file" bash -c \
	'xz -t one.img.xz && cmp one.img.xz two.img.xz && partcat one.img.xz | cmp - disk.img'
check "... and no .xz.xz" test ! -e three.img.xz.xz
check_fails "partpack -o with two INPUTs: status 2" 2 partpack -o both.xz one.img two.img
check_fails "partpack -c with two INPUTs: status 2" 2 partpack -c one.img two.img
check "partpack -o FILE of a .xz still packs it (the warning says it is compressed)" \
	bash -c 'partpack -1 -o again.xz three.img.xz 2>&1 | grep -q "already xz-compressed"'

# ---- -d, -t, -l name the tool; --fast and --best are the format's ends --------
for mode in "-d partcat" "--decompress partcat" "-t partinfo --verify" "-l partinfo"; do
	check_fails "partpack ${mode%% *}: status 2" 2 partpack ${mode%% *} ref.xz
	case $CHECK_STDERR in
	*"'${mode#* }"*) ok "... naming ${mode#* }" ;;
	*) not_ok "... naming ${mode#* }" "$CHECK_STDERR" ;;
	esac
done
dd if=disk.img of=levels.img bs=64K skip=16 count=8 status=none   # 512 KiB of text
for f in "xz 0 9" "zstd 1 19"; do
	set -- $f
	partpack -q -F $1 -$2 -o lo.$1 levels.img && partpack -q -F $1 -$3 -o hi.$1 levels.img ||
		bail "partpack -F $1 -$2, -$3"
	check "partpack -F $1 --fast is -$2" bash -c "partpack -q -F $1 --fast -o fast.$1 levels.img && cmp lo.$1 fast.$1"
	check "partpack -F $1 --best is -$3" bash -c "partpack -q -F $1 --best -o best.$1 levels.img && cmp hi.$1 best.$1"
done
check "... the last of --best and -N wins" bash -c 'partpack -q --best -0 -o last.xz levels.img && cmp lo.xz last.xz'

# ---- partcat and partinfo read - ----------------------------------------------
check_stdout_cmp "partcat - < ARCHIVE" disk.img partcat - <disk.xz
check "cat ARCHIVE | partcat - (a pipe: read to a temporary file first)" \
	bash -c 'cat disk.xz | partcat - | cmp - disk.img'
check "... a .gz and a .zst too" bash -c 'for f in gzip zstd; do partpack -q -F $f -o d.$f disk.img &&
	cat d.$f | partcat -q - | cmp - disk.img || exit 1; done'
check "partcat -o - is standard output" bash -c 'partcat -o - disk.xz | cmp - disk.img && test ! -e ./-'
check_eq "partinfo - < ARCHIVE" "$(partinfo disk.xz | sed 1d)" "$(partinfo - <disk.xz | sed 1d)"
check_fails "cat ARCHIVE | partinfo -: status 2" 2 bash -c 'cat disk.xz | partinfo -'
case $CHECK_STDERR in
*"a pipe"*"index is at the end"*) ok "... saying why" ;;
*) not_ok "... saying why" "$CHECK_STDERR" ;;
esac

# ---- several INPUTs, raw and read through qemu --------------------------------
qemu-img convert -f raw -O qcow2 disk.img "my disk.qcow2" || bail "qemu-img convert"
rm -f one.img.xz
check "partpack one.img 'my disk.qcow2': each to its own file" \
	partpack -q -1 one.img "my disk.qcow2"
check "... one.img.xz and 'my disk.img.xz' hold the image" bash -c \
	'partcat one.img.xz | cmp - disk.img && partcat "my disk.img.xz" | cmp - disk.img'

# ---- the progress line has an ETA --------------------------------------------
script -qec "partcat -f -T1 -o tty.raw disk.xz" /dev/null </dev/null >cat-tty.out
if tr '\r' '\n' <cat-tty.out | grep -aEq 'partcat: writing: .*B \([0-9]+%\), .*B/s, ETA [0-9]+:[0-9][0-9]'; then
	ok "partcat's progress line on a terminal has an ETA"
else
	not_ok "partcat's progress line on a terminal has an ETA" "$(tr '\r' '\n' <cat-tty.out | tail -3)"
fi
