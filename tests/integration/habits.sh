# habits.sh - what users of xz, gzip and zstd expect of the tools, and the
# surprises a new user met (one case each): streams, operands, suffixes,
# levels, holes, block numbers, refusals that say the way out.

require_cmd partpack partpatch partinfo partcat sfdisk xz gzip zstd python3 script

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
