#!/bin/sh
# stamp-variants.sh - a CI job: compress the base image once, then make one
# archive per variant by writing that variant's /boot filesystem into a
# copy of the base archive.  Each variant costs a copy (a reflink clone on
# btrfs or XFS) and the write of one partition, not a compression.
#
#   stamp-variants.sh BASE.img BOOT-PARTITION OUTDIR VARIANT.img...
#
# BOOT-PARTITION is a selector for partpack and partpatch: part1, name:boot.
# Each VARIANT.img is a filesystem image of at most the partition's size;
# OUTDIR/VARIANT.img.xz is written for each.
set -eu

[ $# -ge 4 ] || { echo "usage: $0 BASE.img PARTITION OUTDIR VARIANT.img..." >&2; exit 2; }
base=$1 partition=$2 outdir=$3
shift 3
mkdir -p "$outdir"

# Once: the expensive part.  The partition stays stored, all else compressed.
partpack --force --keep-raw "$partition" -o "$outdir/base.xz" "$base"

for variant in "$@"; do
	name=$(basename "$variant")
	# The partition is found in the archive's own partition table; the
	# base archive is not touched, and the variant appears atomically.
	partpatch "$outdir/base.xz" --partition "$partition" \
		--input "$variant" --output "$outdir/$name.xz" --force
	# Stock xz must accept what we publish.
	xz -t "$outdir/$name.xz"
	echo "$outdir/$name.xz"
done
