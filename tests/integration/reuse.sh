# reuse.sh - partpack --reuse BASE copies the encoded bytes of
# unchanged blocks from an archive packed earlier, and its output is always
# byte-identical to a fresh pack: for variants of a base image changed in
# the root partition, in a kept range, in the partition table and not at
# all; every format; -T1 and -T2; from a pipe; and against bases that must
# not be trusted (another level, format or block size, corrupt blocks).

require_cmd partpack partinfo sfdisk mkfs.ext4 cmp python3
FORMATS=$(pp_formats) || bail "cannot list the library's formats"

BS=1MiB

make_gpt_image img || bail "make_gpt_image failed"
P1=$(part_offset img 1) && S1=$(part_size img 1) || bail "no partition 1"
P2=$(part_offset img 2) || bail "no partition 2"
MIB=1048576

# ---- the variants -------------------------------------------------------------
# 1 MiB of new bytes over data in the root partition (the files start near
# its beginning), over data in the kept partition 1, and a renamed GPT
# partition (both the primary and the backup table change).
head -c $MIB /dev/urandom >new.bin
cp --sparse=always img v-same
cp --sparse=always img v-root
replace_range v-root $((P2 + 3 * MIB + 4096)) new.bin
cp --sparse=always img v-kept
replace_range v-kept $((P1 + 2 * MIB)) new.bin
cp --sparse=always img v-table
sfdisk -q --no-reread --no-tell-kernel --part-label v-table 2 rootfs-b >/dev/null 2>&1 ||
	bail "sfdisk --part-label failed"
head -c $((4 * MIB)) /dev/urandom >rand.img
check "the variants differ from the base" \
	bash -c '! cmp -s img v-root && ! cmp -s img v-kept && ! cmp -s img v-table'

# pack NAME FORMAT [OPTION...] INPUT: partpack with this test's layout, at
# level 1 to keep the test fast (a later -N wins).
pack() {
	local out=$1 format=$2
	shift 2
	partpack -q -1 -F "$format" -B $BS -K "$P1+$S1" -f -o "$out" "$@"
}

# reused FILE: the blocks reused, from a -v summary on stderr.
reused() {
	sed -n 's/.*blocks: \([0-9]*\) reused from .*/\1/p' "$1"
}

for ext in $FORMATS; do
	fmt=$(pp_format_tool "$ext")
	check "$fmt: base packed" pack base.$ext $fmt img || continue
	for v in same root kept table; do
		check "$fmt: $v: fresh pack" pack fresh-$v.$ext $fmt v-$v || continue
		for t in 1 2; do
			pack reused-$v-$t.$ext $fmt -T$t -v --reuse base.$ext v-$v 2>summary-$v-$t
			check_eq "$fmt: $v: --reuse -T$t: exit 0" 0 $?
			check_cmp "$fmt: $v: --reuse -T$t is byte-identical to the fresh pack" \
				fresh-$v.$ext reused-$v-$t.$ext
		done
		# (How many all-zero blocks are encoded rather than copied from
		# the first one may vary with -T; the output does not.)
		check_eq "$fmt: $v: -T1 and -T2 reuse the same blocks" \
			"$(reused summary-$v-1)" "$(reused summary-$v-2)"
	done
	# What was reused: every compressed block the variant did not change.
	# Stored blocks are always encoded again (it costs no more than
	# reading them), all-zero blocks copy the first one's encoding.
	same=$(reused summary-same-1) root=$(reused summary-root-1)
	kept=$(reused summary-kept-1) table=$(reused summary-table-1)
	check "$fmt: an unchanged image reuses blocks ($same)" test "${same:-0}" -ge 3
	check "$fmt: ... and the base raises no notice" \
		bash -c '! grep -v -e "blocks: .* reused from" -e " -> " -e "keep raw" summary-same-1'
	check_eq "$fmt: 1 MiB changed in root encodes one or two blocks more" 1 \
		$(((same - root) >= 1 && (same - root) <= 2))
	check_eq "$fmt: a change in the kept range reuses as much as no change" \
		"$same" "$kept"
	check_eq "$fmt: a renamed partition encodes the two table blocks at most" 1 \
		$(((same - table) >= 0 && (same - table) <= 2))

	# From a pipe: the same bytes.
	check "$fmt: --reuse reading a pipe" \
		bash -c "cat v-root | partpack -q -1 -F $fmt -B $BS -K $P1+$S1 --reuse base.$ext -c >pipe.$ext"
	check_cmp "$fmt: ... is byte-identical to the fresh pack" fresh-root.$ext pipe.$ext

	# A base packed at another level: the framing may look the same (with
	# 1 MiB blocks the dictionary is capped at the block size at -1 and
	# -2 alike), so only the probe can tell.
	check "$fmt: base packed at -2" pack base1.$ext $fmt -2 img
	partpack -1 -F $fmt -B $BS -K "$P1+$S1" --reuse base1.$ext -f -o other.$ext v-root 2>other.err
	check_eq "$fmt: a base at another level: exit 0" 0 $?
	check "$fmt: ... with a notice that says so" grep -q "another level" other.err
	check_eq "$fmt: ... and the notice is one line" 1 "$(wc -l <other.err)"
	check_cmp "$fmt: ... output still identical to the fresh pack" fresh-root.$ext other.$ext
	check_fails "$fmt: --reuse-strict refuses it: status 6" 6 \
		partpack -1 -F $fmt -B $BS -K "$P1+$S1" --reuse base1.$ext --reuse-strict -f -o strict.$ext v-root
	check "$fmt: ... naming the base" grep -q "base1.$ext" <<<"$CHECK_STDERR"
	check "$fmt: ... and leaves no output" test ! -e strict.$ext
	check "$fmt: --reuse-strict with a good base" \
		pack strict.$ext $fmt --reuse base.$ext --reuse-strict v-root
	check_cmp "$fmt: ... byte-identical to the fresh pack" fresh-root.$ext strict.$ext

	# Another block size: the layout differs, said in one notice.
	check "$fmt: base with 2 MiB blocks" \
		partpack -q -1 -F $fmt -B 2MiB -K "$P1+$S1" -o base2.$ext img
	partpack -1 -F $fmt -B $BS -K "$P1+$S1" --reuse base2.$ext -f -o bs.$ext v-root 2>bs.err
	check "$fmt: a base with another block size: a notice" grep -q "another block size" bs.err
	check_cmp "$fmt: ... output identical to the fresh pack" fresh-root.$ext bs.$ext
	# Other kept ranges on the same grid: the notice, and correct output.
	check "$fmt: base keeping nothing" partpack -q -1 -F $fmt -B $BS -o base0.$ext img
	partpack -1 -F $fmt -B $BS -K "$P1+$S1" --reuse base0.$ext -f -o kept.$ext v-root 2>kept.err
	check "$fmt: a base with other kept ranges: a notice" grep -q "other kept ranges" kept.err
	check_cmp "$fmt: ... output identical to the fresh pack" fresh-root.$ext kept.$ext
	# The other way round: the base kept partition 1, this pack does not.
	# An xz base cannot show it (a kept block looks like one whose bytes
	# did not compress), but those bytes do compress, and are encoded.
	check "$fmt: fresh pack keeping nothing" partpack -q -1 -F $fmt -B $BS -o fresh0.$ext v-root
	check "$fmt: ... and with --reuse of a base that kept partition 1" \
		partpack -q -1 -F $fmt -B $BS --reuse base.$ext -o nokeep.$ext v-root
	check_cmp "$fmt: ... output identical to the fresh pack" fresh0.$ext nokeep.$ext

	# Bytes that do not compress are stored by the encoder too, framed as
	# a kept block would be: still reused, and still identical.
	check "$fmt: base of random bytes" partpack -q -1 -F $fmt -B $BS -o rand.$ext rand.img
	partpack -1 -F $fmt -B $BS -v --reuse rand.$ext -o rand2.$ext rand.img 2>rand.err
	check_eq "$fmt: ... every block of it reused" 4 "$(reused rand.err)"
	check_cmp "$fmt: ... output identical to the base" rand.$ext rand2.$ext
done

# ---- bases that are not what the options say ----------------------------------
partpack -1 -F xz -B $BS -K "$P1+$S1" --reuse base.gz -o fmt.xz v-root 2>fmt.err
check "a gzip base for an xz pack: a notice" grep -q "format is gzip" fmt.err
check_cmp "... output identical to the fresh pack" fresh-root.xz fmt.xz
check_fails "... --reuse-strict refuses it: status 6" 6 \
	partpack -1 -F xz -B $BS -K "$P1+$S1" --reuse base.gz --reuse-strict -o fmt2.xz v-root
check "xz: base with crc32 checks" pack base32.xz xz -C crc32 img
partpack -1 -F xz -B $BS -K "$P1+$S1" --reuse base32.xz -o crc.xz v-root 2>crc.err
check "a base with another check: a notice" grep -q "level or check" crc.err
check_cmp "... output identical to the fresh pack" fresh-root.xz crc.xz
check "sha256 checks: base" pack base256.xz xz -C sha256 img
check "sha256 checks: fresh" pack fresh256.xz xz -C sha256 v-root
check "sha256 checks: reused" pack reused256.xz xz -C sha256 --reuse base256.xz v-root
check_cmp "sha256 checks: byte-identical" fresh256.xz reused256.xz
cp base.xz self.xz
check "the base may be the output being replaced" \
	pack self.xz xz --reuse self.xz v-root
check_cmp "... and the output is still identical to the fresh pack" fresh-root.xz self.xz
check_fails "a missing base: status 1, one line" 1 \
	partpack -F xz -B $BS --reuse nothing.xz -o missing.xz v-root
check_fails "--reuse-strict without --reuse: usage error" 2 \
	partpack --reuse-strict -o x.xz v-root

# ---- corrupt bases never leak -------------------------------------------------
# blocks ARCHIVE: "uoffset usize foffset fsize stored" per block, from
# partinfo --json --blocks.
blocks() {
	partinfo --json --blocks "$1" | python3 -c '
import json, sys
for b in json.load(sys.stdin)["block_list"]:
    print(b["uncompressed_offset"], b["uncompressed_size"],
          b["compressed_offset"], b["total_size"], b["stored"])'
}
for ext in $FORMATS; do
	fmt=$(pp_format_tool "$ext")
	# The compressed block of root with the most encoded bytes, and a
	# stored block of partition 1; a byte in the middle of each flipped.
	read -r _ _ cofs csize _ <<<"$(blocks base.$ext |
		awk -v p2="$P2" '$1 >= p2 && $2 > 0 && $5 == 0' | sort -k4 -n | tail -1)"
	read -r _ _ sofs ssize _ <<<"$(blocks base.$ext |
		awk -v p1="$P1" -v s1="$S1" '$1 >= p1 && $1 < p1 + s1 && $5 == $2' | head -1)"
	for what in compressed stored; do
		if [ $what = compressed ]; then at=$((cofs + csize / 2)); else at=$((sofs + ssize / 2)); fi
		cp base.$ext bad-$what.$ext
		flip_byte bad-$what.$ext $at 0x55
		check "$ext: a flipped byte in a $what block breaks the base" \
			bash -c "! partinfo -q --verify bad-$what.$ext 2>/dev/null"
		for t in 1 2; do
			partpack -1 -F $fmt -B $BS -K "$P1+$S1" -T$t --reuse bad-$what.$ext \
				-f -o from-bad.$ext v-same 2>bad.err
			check_eq "$ext: corrupt $what block, -T$t: exit 0" 0 $?
			check_cmp "$ext: corrupt $what block, -T$t: output identical to the fresh pack" \
				fresh-same.$ext from-bad.$ext
		done
		if [ $what = compressed ]; then
			check "$ext: ... and a notice names the damaged block" grep -q "damaged" bad.err
			check_fails "$ext: ... which --reuse-strict refuses: status 6" 6 \
				partpack -1 -F $fmt -B $BS -K "$P1+$S1" --reuse-strict \
				--reuse bad-$what.$ext -f -o from-bad.$ext v-same
		fi
	done
done
