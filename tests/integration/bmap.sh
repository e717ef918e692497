# bmap.sh - bmap files that bmaptool copy takes, for every format the
# library lists (pp_formats), before and after a stamp, kept true by
# partpatch (also across interrupted patches), and partinfo --digest.

FORMATS=$(pp_formats) || bail "cannot list the library's formats"
for fmt in $FORMATS; do
	require_cmd "$(pp_format_tool "$fmt")"
done
require_cmd partpack partpatch partinfo bmaptool cmp sha256sum python3
inject_faults partpatch

# field BMAP NAME: the number in <NAME> ... </NAME>.
field() { sed -n "s/.*<$2> *\([0-9]*\) *<\/$2>.*/\1/p" "$1"; }
# mapped_blocks BMAP: its mapped block numbers, one a line.
mapped_blocks() {
	sed -n 's/.*<Range[^>]*> *\([0-9]*\)-*\([0-9]*\) *<\/Range>.*/\1 \2/p' "$1" |
		awk '{ last = $2 == "" ? $1 : $2; for (i = $1; i <= last; i++) print i }'
}
# ranges BMAP: "FIRST LAST" a line.
ranges() {
	sed -n 's/.*<Range[^>]*> *\([0-9]*\)-*\([0-9]*\) *<\/Range>.*/\1 \2/p' "$1" |
		awk '{ print $1, ($2 == "" ? $1 : $2) }'
}
# copies BMAP ARCHIVE IMAGE: bmaptool copy writes exactly IMAGE (the test
# images' unmapped blocks are zeros, which a new target file holds too).
copies() {
	rm -f target.raw
	bmaptool -q copy --bmap "$1" "$2" target.raw && cmp target.raw "$3"
}

make_gpt_image disk.img || bail "no image to pack"
p1=$(part_offset disk.img 1)
s1=$(part_size disk.img 1)
make_boot_fs newboot.img "$s1" boot || bail "no new /boot"
cp disk.img new.img
replace_range new.img "$p1" newboot.img

# ---- partpack --bmap maps what bmaptool create maps ----------------------
bmaptool -q create -o ref.bmap disk.img || bail "bmaptool create failed"
mapped_blocks ref.bmap >ref.blocks
for fmt in $FORMATS; do
	check "$fmt: partpack --bmap" partpack -q -F "$(pp_format_tool "$fmt")" --keep-raw part1 \
		--bmap disk.$fmt.bmap -o disk.$fmt disk.img
	for f in ImageSize BlockSize BlocksCount MappedBlocksCount; do
		check_eq "$fmt: $f as bmaptool create says" "$(field ref.bmap $f)" "$(field disk.$fmt.bmap $f)"
	done
	mapped_blocks disk.$fmt.bmap >disk.$fmt.blocks
	check_cmp "$fmt: the same mapped blocks as bmaptool create" ref.blocks disk.$fmt.blocks
	# Archive blocks: a 16 MiB grid (4096 bmap blocks) and partition 1's edges.
	check_eq "$fmt: no range crosses an archive block boundary" "" "$(ranges disk.$fmt.bmap |
		awk -v a=$((p1 / 4096)) -v b=$(((p1 + s1) / 4096)) '
			{ for (k = $1 + 1; k <= $2; k++) if (k % 4096 == 0 || k == a || k == b) print }')"
	check "$fmt: bmaptool copy writes the image" copies disk.$fmt.bmap disk.$fmt disk.img

	# A stamp in place keeps the bmap true.
	cp disk.$fmt v.$fmt
	cp disk.$fmt.bmap v.$fmt.bmap
	check "$fmt: partpatch --bmap stamps /boot" \
		partpatch v.$fmt --partition part1 --input newboot.img --bmap v.$fmt.bmap
	check "$fmt: ... bmaptool copy then writes the stamped image" copies v.$fmt.bmap v.$fmt new.img
	check_eq "$fmt: ... whose partition 1 is all mapped now" $((s1 / 4096)) \
		"$(mapped_blocks v.$fmt.bmap | awk -v a=$((p1 / 4096)) -v b=$(((p1 + s1) / 4096)) '$1 >= a && $1 < b' | wc -l)"

	# --output: the variant's bmap goes to --bmap-output, the base's stays.
	cp disk.$fmt.bmap keep.bmap
	check "$fmt: --output with --bmap-output" partpatch disk.$fmt --partition part1 \
		--input newboot.img --output o.$fmt --bmap disk.$fmt.bmap --bmap-output o.$fmt.bmap
	check_cmp "$fmt: ... leaves the base's bmap as it was" keep.bmap disk.$fmt.bmap
	check "$fmt: ... the base still copies to the old image" copies disk.$fmt.bmap disk.$fmt disk.img
	check "$fmt: ... the variant's bmap copies to the new image" copies o.$fmt.bmap o.$fmt new.img
done

# ---- a bmap with a wrong range checksum makes bmaptool fail --------------
# wrong_range IN OUT: one hex digit of the first range checksum changed,
# and BmapFileChecksum set again as bmap-tools computes it, so only the
# range is wrong.
wrong_range() {
	python3 - "$1" "$2" <<'EOF'
import hashlib, re, sys
text = open(sys.argv[1]).read()
at = text.index('chksum="') + len('chksum="')
text = text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1:]
text = re.sub(r"<BmapFileChecksum> [0-9a-f]{64} ", "<BmapFileChecksum> " + "0" * 64 + " ", text)
digest = hashlib.sha256(text.encode()).hexdigest()
open(sys.argv[2], "w").write(text.replace("0" * 64, digest, 1))
EOF
}
wrong_range disk.xz.bmap wrong.bmap
check "a bmap with one range checksum changed differs only there" \
	bash -c '[ "$(diff disk.xz.bmap wrong.bmap | grep -c "^[<>].*<Range")" -eq 2 ]'
if bmaptool -q copy --bmap wrong.bmap disk.xz target.raw 2>err.txt; then
	not_ok "... bmaptool copy fails on it" "it succeeded"
elif grep -q "checksum mismatch for blocks range" err.txt; then
	ok "... bmaptool copy fails on it: checksum mismatch"
else
	not_ok "... bmaptool copy fails on it: checksum mismatch" "$(cat err.txt)"
fi
check "the unchanged bmap still copies (the test above can pass)" copies disk.xz.bmap disk.xz disk.img

# ---- bad bmaps and options: one line, a status, the archive unchanged ----
cp disk.xz a.xz
cp disk.xz a.orig
cp disk.xz.bmap hand.bmap
sed -i 's/    <!-- Size of a block/    <!-- size of a block/' hand.bmap
check_fails "a bmap edited by hand (BmapFileChecksum): status 1" 1 \
	partpatch a.xz --partition part1 --input newboot.img --bmap hand.bmap
check_cmp "... the archive is unchanged" a.orig a.xz
echo "not xml" >junk.bmap
check_fails "a file that is not a bmap: status 1" 1 \
	partpatch a.xz --partition part1 --input newboot.img --bmap junk.bmap
check_fails "a missing bmap: status 1" 1 \
	partpatch a.xz --partition part1 --input newboot.img --bmap no-such.bmap
check_cmp "... the archive is unchanged" a.orig a.xz
head -c 5M disk.img >small.img
partpack -q --bmap small.bmap -o small.xz small.img
check_fails "the bmap of another image: status 2" 2 \
	partpatch a.xz --partition part1 --input newboot.img --bmap small.bmap
check_fails "--output with --bmap but no --bmap-output: status 2" 2 \
	partpatch a.xz --partition part1 --input newboot.img --bmap disk.xz.bmap --output b.xz
check_fails "--bmap-output without --bmap: status 2" 2 \
	partpatch a.xz --partition part1 --input newboot.img --bmap-output b.bmap
check_cmp "... the archive is unchanged" a.orig a.xz

check_fails "partpack --bmap into a missing directory: status 1, before packing" 1 \
	partpack -q --bmap no-such-dir/x.bmap -o nb.xz small.img
check "... and no archive is left" test ! -e nb.xz

# ---- temporary files: never through a planted link; the mode kept ----------
# A link at the name the temporary file beside a bmap once had, fixed
# (.NAME.partpack-tmp), to a file the patch must not touch.
cp disk.xz s.xz
cp disk.xz.bmap s.bmap
chmod 640 s.bmap
echo precious >victim
cp victim victim.orig
ln -s victim .s.bmap.partpack-tmp
check "partpatch --bmap with a link planted beside the bmap" \
	partpatch s.xz --partition part1 --input newboot.img --bmap s.bmap
check_cmp "... the file the link points to is unchanged" victim.orig victim
check "... the bmap is a regular file, not the link" test -f s.bmap -a ! -L s.bmap
check_eq "... keeping its permission bits" 640 "$(stat -c %a s.bmap)"
check "... and bmaptool copy takes it" copies s.bmap s.xz new.img
check "... no temporary file is left" bash -c '[ "$(ls -A | grep -c partpack-tmp)" = 1 ]'
ln -s victim .p.bmap.partpack-tmp
check "partpack --bmap with a link planted beside the bmap" \
	partpack -q --bmap p.bmap -o p.xz small.img
check_cmp "... the file the link points to is unchanged" victim.orig victim
check "... the bmap is a regular file" test -f p.bmap -a ! -L p.bmap
check_eq "... a new bmap's mode is 0666 less the umask" \
	"$(printf %o $((0666 & ~$(umask))))" "$(stat -c %a p.bmap)"

# ---- from a pipe: no holes, every block mapped ---------------------------
check "partpack --bmap reading a pipe" \
	bash -c 'partpack -q --bmap pipe.bmap -c <small.img >pipe.xz'
check_eq "... maps every block" "$(field pipe.bmap BlocksCount)" "$(field pipe.bmap MappedBlocksCount)"
check "... and bmaptool copy writes the image" copies pipe.bmap pipe.xz small.img

# ---- a patch into a hole of the source maps it ---------------------------
# 6 MiB, sparse: data at 0, a kept range 1MiB+4MiB with data only in its
# first 512 KiB, blocks of 256 KiB.  The patch lands in the hole.
truncate -s 6M holes.img
head -c 65536 /dev/urandom | dd of=holes.img conv=notrunc status=none
head -c 524288 /dev/urandom | dd of=holes.img bs=1M seek=1 conv=notrunc status=none
head -c 600000 /dev/urandom >patch.bin
AT=$((3 * 1048576 + 1000))
cp holes.img holes-new.img
replace_range holes-new.img $AT patch.bin
first=$((AT / 4096))
last=$(((AT + 600000 - 1) / 4096))
head -c 5000 /dev/urandom >patch2.bin
AT2=$((4 * 1048576 + 100))
cp holes-new.img holes-new2.img
replace_range holes-new2.img $AT2 patch2.bin
for fmt in $FORMATS; do
	partpack -q -F "$(pp_format_tool "$fmt")" -B 256KiB --keep-raw 1MiB+4MiB --bmap h.$fmt.bmap -o h.$fmt holes.img
	check_eq "$fmt: blocks $first-$last are a hole before" "" \
		"$(mapped_blocks h.$fmt.bmap | awk -v a=$first -v b=$last '$1 >= a && $1 <= b')"
	cp h.$fmt hp.$fmt
	cp h.$fmt.bmap hp.$fmt.bmap
	check "$fmt: patch into the hole with --bmap" partpatch hp.$fmt --offset $AT --input patch.bin --bmap hp.$fmt.bmap
	check_eq "$fmt: ... maps exactly the blocks written" "$((last - first + 1))" \
		"$(mapped_blocks hp.$fmt.bmap | awk -v a=$first -v b=$last '$1 >= a && $1 <= b' | wc -l)"
	check "$fmt: ... and bmaptool copy writes the patched image" copies hp.$fmt.bmap hp.$fmt holes-new.img
	check_eq "$fmt: ... MappedBlocksCount counts them" \
		"$(($(field h.$fmt.bmap MappedBlocksCount) + last - first + 1))" "$(field hp.$fmt.bmap MappedBlocksCount)"
	# Two ranges as one transaction (issue 9): the bmap follows both.
	cp h.$fmt hm.$fmt
	cp h.$fmt.bmap hm.$fmt.bmap
	check "$fmt: a two-range transaction with --bmap" partpatch hm.$fmt \
		--offset $AT --input patch.bin --offset $AT2 --input patch2.bin --bmap hm.$fmt.bmap
	check "$fmt: ... bmaptool copy writes the image with both" copies hm.$fmt.bmap hm.$fmt holes-new2.img
done

# ---- the bmap bmaptool finds beside the archive is kept true too ----------
# bmaptool copy IMAGE.xz looks for IMAGE.xz.bmap, then IMAGE.bmap: a patch
# without --bmap must not leave it describing the old bytes (zeros where
# the patch went into a hole).
for fmt in xz gz; do
	cp h.$fmt auto.$fmt
	cp h.$fmt.bmap auto.bmap
	check "$fmt: a patch into a hole with no --bmap, auto.bmap beside" \
		bash -c "partpatch auto.$fmt --offset $AT --input patch.bin 2>auto.err"
	check_eq "$fmt: ... says in one line that it kept auto.bmap true" \
		"partpatch: auto.bmap: updated to match auto.$fmt (the bmap bmaptool finds for it; --no-bmap leaves it)" \
		"$(cat auto.err)"
	check "$fmt: ... bmaptool copy without --bmap writes the patched bytes" \
		bash -c "rm -f target.raw && bmaptool -q copy auto.$fmt target.raw && cmp target.raw holes-new.img"
	cp h.$fmt none.$fmt
	cp h.$fmt.bmap none.$fmt.bmap
	cp h.$fmt quiet.$fmt
	cp h.$fmt.bmap quiet.bmap
	check_eq "$fmt: ... and with -q keeps it true saying nothing, as the man page says" "" \
		"$(partpatch -q quiet.$fmt --offset $AT --input patch.bin 2>&1)"
	check "$fmt: ... (it did keep it true)" bash -c "! cmp -s h.$fmt.bmap quiet.bmap"
	check "$fmt: --no-bmap leaves it" partpatch --no-bmap none.$fmt --offset $AT --input patch.bin
	check_cmp "$fmt: ... as it was" h.$fmt.bmap none.$fmt.bmap
	cp h.$fmt bad.$fmt
	echo "not xml" >bad.bmap
	check_fails "$fmt: a bmap beside that is not one stops the patch: status 1" 1 \
		partpatch bad.$fmt --offset $AT --input patch.bin
	case $CHECK_STDERR in
	*bad.bmap*"--no-bmap"*) ok "$fmt: ... the message names it and --no-bmap" ;;
	*) not_ok "$fmt: ... the message names it and --no-bmap" "$CHECK_STDERR" ;;
	esac
	check_cmp "$fmt: ... and the archive is unchanged" h.$fmt bad.$fmt
done

# ---- archive blocks on odd byte offsets (a one-block range spans two) ----
for fmt in $FORMATS; do
	check "$fmt: partpack --bmap, blocks of 100000 bytes, a kept range on odd offsets" \
		partpack -q -F "$(pp_format_tool "$fmt")" -B 100000 --keep-raw 1000000+3000000 \
		--bmap u.$fmt.bmap -o u.$fmt holes.img
	check "$fmt: ... bmaptool copy writes the image" copies u.$fmt.bmap u.$fmt holes.img
	check "$fmt: ... a patch with --bmap" partpatch u.$fmt --offset $AT --input patch.bin --bmap u.$fmt.bmap
	check "$fmt: ... bmaptool copy writes the patched image" copies u.$fmt.bmap u.$fmt holes-new.img
done

# ---- interrupted at every point: archive and bmap agree after recovery ----
for fmt in $FORMATS; do
	k=1 old=0 new=0 bad=0
	while [ $k -lt 200 ]; do
		cp h.$fmt f.$fmt
		cp h.$fmt.bmap f.bmap
		PARTPACK_FAULT_AFTER=$k partpatch f.$fmt --offset $AT --input patch.bin --bmap f.bmap 2>/dev/null
		status=$?
		[ $status -eq 0 ] && break
		[ $status -eq 99 ] || { bad=$((bad + 1)); echo "# k=$k: partpatch exited $status, not 99"; }
		partpatch --recover --bmap f.bmap f.$fmt 2>/dev/null ||
			{ bad=$((bad + 1)); echo "# k=$k: --recover --bmap failed"; }
		decode_archive f.$fmt >f.raw
		if cmp -s f.raw holes.img; then
			old=$((old + 1))
		elif cmp -s f.raw holes-new.img; then
			new=$((new + 1))
		else
			bad=$((bad + 1))
			echo "# k=$k: neither old nor new after recovery"
		fi
		copies f.bmap f.$fmt f.raw >/dev/null 2>&1 ||
			{ bad=$((bad + 1)); echo "# k=$k: the bmap does not match the recovered archive"; }
		k=$((k + 1))
	done
	check_eq "$fmt: interrupted at each of $((k - 1)) points, archive and bmap agree after --recover --bmap ($old old, $new new)" 0 $bad
	[ $old -gt 3 ] && [ $new -gt 3 ] && ok "$fmt: ... both ways were met" ||
		not_ok "$fmt: ... both ways were met" "old $old, new $new"
	check "$fmt: the uninterrupted run gives the new image" copies f.bmap f.$fmt holes-new.img
done
check "--recover --bmap on a bmap that matches leaves it byte-identical" \
	bash -c 'cp hp.xz.bmap same.bmap && partpatch --recover --bmap same.bmap hp.xz 2>/dev/null && cmp same.bmap hp.xz.bmap'

# ---- partinfo --digest ------------------------------------------------------
for a in disk.xz $(printf 'v.%s ' $FORMATS); do
	want_image=$(decode_archive $a | sha256sum | cut -d' ' -f1)
	want_file=$(sha256sum $a | cut -d' ' -f1)
	check_eq "$a: --digest gives the image's sha256sum" "$want_image" \
		"$(partinfo -q --digest $a | sed -n 's/^Image SHA-256: *//p')"
	check_eq "$a: ... and the file's" "$want_file" \
		"$(partinfo -q --digest $a | sed -n 's/^File SHA-256: *//p')"
	check_eq "$a: --json --digest keys" "$want_image $want_file" \
		"$(partinfo -q --json --digest $a | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["image_sha256"], j["file_sha256"])')"
done
