#!/bin/sh
# stamp-variants.sh - a CI job: compress the base image once, then make one
# archive per variant by changing only that variant's /boot in a copy of
# the base archive.  Each variant costs a copy (a reflink clone on btrfs or
# XFS) and the writes of its changes, not a compression.
#
#   stamp-variants.sh BASE.img BOOT-PARTITION OUTDIR VARIANT...
#
# BOOT-PARTITION names the partition in the image's partition table, as
# partpack, partpatch and partcat take it: part1, name:boot.  Each VARIANT
# is either
#
#   FILE.img        a whole filesystem image of at most the partition's size,
#                   written over the partition byte for byte; or
#   NAME=CMDLINE    a variant whose /grub/grub.cfg is the base's with the
#                   kernel command line of every "linux" line replaced by
#                   CMDLINE (the kernel path stays), written as a file into
#                   the archive's /boot filesystem (partpatch --upload: in
#                   process for ext and vfat, no VM and no filesystem image).
#
# OUTDIR/NAME.xz (or OUTDIR/FILE.img.xz) is written for each.
set -eu

[ $# -ge 4 ] || { echo "usage: $0 BASE.img PARTITION OUTDIR VARIANT..." >&2; exit 2; }
base=$1 partition=$2 outdir=$3
shift 3
mkdir -p "$outdir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Once: the expensive part.  The partition stays stored, all else compressed.
partpack --force --keep-raw "$partition" -o "$outdir/base.xz" "$base"

# The base's grub.cfg, read out of the archive: partcat decodes only the
# partition's blocks (stored, so read straight from the file), debugfs reads
# the file from that filesystem image without mounting it.
base_grub_cfg() {
	if [ ! -f "$work/grub.cfg" ]; then
		partcat "$outdir/base.xz" --partition "$partition" -o "$work/boot.img"
		debugfs -R "cat /grub/grub.cfg" "$work/boot.img" >"$work/grub.cfg" 2>/dev/null
	fi
	cat "$work/grub.cfg"
}

for variant in "$@"; do
	case $variant in
	*=*)
		name=${variant%%=*} cmdline=${variant#*=}
		# "linux /vmlinuz-... ARGS" becomes "linux /vmlinuz-... CMDLINE",
		# indented as it was.
		base_grub_cfg | awk -v args="$cmdline" '
			$1 == "linux" {
				match($0, /^[ \t]*/)
				print substr($0, 1, RLENGTH) $1 " " $2 " " args
				next
			}
			{ print }' >"$work/$name.cfg"
		# One appliance launch, one transaction; the base is untouched.
		partpatch "$outdir/base.xz" --partition "$partition" \
			--upload "$work/$name.cfg:/grub/grub.cfg" \
			--output "$outdir/$name.xz" --force
		;;
	*)
		name=$(basename "$variant")
		# The partition is found in the archive's own partition table;
		# the base archive is not touched, and the variant appears
		# atomically.
		partpatch "$outdir/base.xz" --partition "$partition" \
			--input "$variant" --output "$outdir/$name.xz" --force
		;;
	esac
	# Stock xz must accept what we publish.
	xz -t "$outdir/$name.xz"
	echo "$outdir/$name.xz"
done
