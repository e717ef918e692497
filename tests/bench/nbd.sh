# tests/bench/nbd.sh - the archive as a disk: nbdkit's partpack filter
# against partcat and against nbdkit's own xz filter.

filter_so() { echo "$build/nbdkit-partpack-filter.so"; }

# The whole image with nbdcopy (which skips what block status calls
# holes), from the file plugin, read-only.
row_nbdcopy() {
	need_pp_xz
	local filter t_cat t_pp t_xz
	filter=$(filter_so)
	rm -f out.raw
	timed t_cat partcat -q -T"$threads" pp.xz -o out.raw
	rm -f out.raw
	timed t_pp nbdkit -U - -r --filter="$filter" file file=pp.xz \
		--run 'nbdcopy "$uri" out.raw'
	cmp out.raw disk.img
	rm -f out.raw
	timed t_xz nbdkit -U - -r --filter=xz file file=pp.xz --run 'nbdcopy "$uri" out.raw'
	rm -f out.raw
	emit "whole image through nbdkit --filter=partpack, nbdcopy" "$t_pp s" \
		"partcat -T$threads -o: $t_cat s" "$(ratio "$t_pp" "$t_cat")" "<= 1.1"
	emit "... against nbdkit --filter=xz, nbdcopy" "$t_pp s" "--filter=xz: $t_xz s" \
		"$(ratio "$t_pp" "$t_xz")" ""
}

# Random 4 KiB reads in one qemu-io session each, with caches that hold the
# whole image on both sides (xz-max-depth counts 16 MiB blocks), so that
# both decode each block once and the rest is serving.
row_nbd_random() {
	need_pp_xz
	local filter img_size depth t_xz t_pp
	filter=$(filter_so)
	img_size=$(size_of disk.img)
	python3 -c '
import random, sys
rng, blocks, n = random.Random(1), int(sys.argv[1]) // 4096, int(sys.argv[2])
for _ in range(n):
    print("read -q %d 4k" % (rng.randrange(blocks) * 4096))' "$img_size" "$reads" >reads.qemu-io
	depth=$(((img_size + 16 * MIB - 1) / (16 * MIB)))
	timed t_xz nbdkit -U - -r --filter=xz file file=pp.xz xz-max-depth="$depth" \
		--run 'qemu-io -r -f raw "$uri" <reads.qemu-io >/dev/null'
	timed t_pp nbdkit -U - -r --filter="$filter" file file=pp.xz \
		partpack-cache="$img_size" --run 'qemu-io -r -f raw "$uri" <reads.qemu-io >/dev/null'
	emit "$reads random 4 KiB reads through --filter=partpack, qemu-io (throughput)" \
		"$t_pp s" "--filter=xz: $t_xz s" "$(ratio "$t_xz" "$t_pp")" ">= 1"
}
