# qemu.sh - images qemu reads are partpack input: qcow2 (v2 and v3, over a
# backing file), vmdk, vhdx and vdi pack to the same bytes as their raw
# image, with partition-table and libguestfs selectors; a truncated or an
# encrypted qcow2 fails with qemu's words and leaves nothing; holes cost
# nothing; and partcat -O writes qcow2 (vdi ...) images qemu-img compare
# finds equal to the raw one.  One appliance launch (PP_TEST_QUICK=1: none).

require_cmd partpack partcat qemu-img qemu-io qemu-nbd cmp xz python3 sfdisk mkfs.ext4

# Small: every format packs it twice or more.
PP_IMG_SIZE_MIB=32 PP_ROOT_SIZE_MIB=$((32 - PP_BOOT_START_MIB - PP_BOOT_SIZE_MIB - 1))
make_gpt_image img || bail "make_gpt_image failed"
P1=$(part_offset img 1) && S1=$(part_size img 1) || bail "no partition 1"
SIZE=$(size_of img)
dd if=img of=part1.img bs=1M iflag=skip_bytes,count_bytes skip="$P1" \
	count="$S1" status=none
PACK=(partpack -q -1 -B 1MiB --keep-raw part1)
check "pack the raw image (.xz)" "${PACK[@]}" -o raw.xz img
check "pack the raw image (.zst)" "${PACK[@]}" -F zstd -o raw.zst img

# ---- every format: the pack of the guest's disk, byte for byte --------------
qemu-img convert -f raw -O qcow2 -o compat=0.10 img v2.qcow2 &&
	qemu-img convert -f raw -O vmdk img disk.vmdk &&
	qemu-img convert -f raw -O vhdx img disk.vhdx &&
	qemu-img convert -f raw -O vdi img disk.vdi || bail "qemu-img convert failed"
# A v3 qcow2 over the v2 one, with a write of its own in the free MiB
# after the last partition; top.raw is what the guest sees.
FREE_MIB=$((PP_IMG_SIZE_MIB - 1))
qemu-img create -q -f qcow2 -o compat=1.1 -b v2.qcow2 -F qcow2 top.qcow2 &&
	qemu-io -f qcow2 -c "write -q -P 0x5a ${FREE_MIB}M 256K" top.qcow2 >/dev/null ||
	bail "making the backing chain failed"
cp img top.raw && python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]) << 20); f.write(b"\x5a" * (256 << 10))' top.raw "$FREE_MIB"
check "the overlay reads as top.raw (qemu-img compare)" \
	qemu-img compare -q -f raw -F qcow2 top.raw top.qcow2
check "pack top.raw" "${PACK[@]}" -o top.raw.xz top.raw

for f in v2.qcow2 disk.vmdk disk.vhdx disk.vdi; do
	check "$f: pack keeping part1" "${PACK[@]}" -o "$f.xz" "$f"
	check_cmp "... equals the pack of the raw image" raw.xz "$f.xz"
done
check "top.qcow2 (v3 over a v2 backing file): pack" "${PACK[@]}" -o top.xz top.qcow2
check_cmp "... equals the pack of what the guest sees" top.raw.xz top.xz
check "disk.vmdk: pack as zstd, name:boot kept" \
	partpack -q -1 -B 1MiB -F zstd --keep-raw name:boot -o vmdk.zst disk.vmdk
check_cmp "... equals the zstd pack of the raw image" raw.zst vmdk.zst
if command -v bmaptool >/dev/null; then
	check "v2.qcow2: --bmap, its mapped blocks from NBD block status" \
		"${PACK[@]}" --bmap v2.bmap -o bmap.xz v2.qcow2
	check "... bmaptool copy with it writes the raw image" \
		bash -c 'bmaptool -q copy --bmap v2.bmap bmap.xz copied.img && cmp copied.img img'
fi
check "v2.qcow2: --input-format qcow2 forces what the probe found" \
	"${PACK[@]}" --input-format qcow2 -o forced.xz v2.qcow2
check_cmp "... the same bytes" raw.xz forced.xz

# ---- the library: pp_pack_source of a qcow2 = pp_pack of the raw fd ----------
cat >source.c <<'C'
#include <fcntl.h>
#include <partpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	pp_error err;
	pp_pack_options options;
	pp_pack_options_init(&options);
	options.level = 1;
	options.block_size = 1 << 20;
	pp_source *source;
	pp_source_info info;
	if (pp_source_open(argv[1], NULL, 0, &source, &err) ||
	    pp_source_get_info(source, &info, &err)) {
		fprintf(stderr, "%s\n", err.message);
		return 1;
	}
	const char *sel[] = { "name:boot" };
	pp_range *keep;
	int out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (pp_source_resolve_selectors(source, sel, 1, &keep, &err) ||
	    (options.keep = keep, options.keep_count = 1,
	     pp_pack_source(source, out, argv[3], &options, &err))) {
		fprintf(stderr, "%s\n", err.message);
		return 1;
	}
	int in = open(argv[2], O_RDONLY);
	out = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (pp_pack(in, argv[2], out, argv[4], &options, &err)) {
		fprintf(stderr, "%s\n", err.message);
		return 1;
	}
	printf("%s %d %llu\n", info.format, info.direct,
	       (unsigned long long)info.size);
	pp_source_close(source);
	free(keep);
	return 0;
}
C
check "a program builds with pp_source_open and pp_pack_source" \
	cc ${PP_TEST_CFLAGS:-} -I"$PP_SRCDIR/lib" -o source source.c \
	"$PARTPACK_BUILD/libpartpack.so.0" -Wl,-rpath,"$PARTPACK_BUILD"
check_eq "... pp_source_get_info of the qcow2: its format, through qemu, its size" \
	"qcow2 0 $SIZE" "$(./source v2.qcow2 img api-source.xz api-fd.xz)"
check_cmp "... pp_pack_source of it equals pp_pack of the raw image's fd" \
	api-fd.xz api-source.xz

# ---- output names: NAME.qcow2 -> NAME.img.xz ---------------------------------
check "partpack disk.vdi writes disk.img.xz" partpack -q -1 disk.vdi
check "... and xz -dc of it is the raw image" bash -c 'xz -dc disk.img.xz | cmp - img'
cp v2.qcow2 cloud.img
check "a qcow2 named cloud.img writes cloud.img.xz" partpack -q -1 cloud.img
check "... the guest's disk" bash -c 'xz -dc cloud.img.xz | cmp - img'

# ---- raw stays on the direct path; the others go through qemu-nbd -----------
mkdir -p fakebin
cat >fakebin/qemu-nbd <<'SH'
#!/bin/sh
touch "$MARKER"
exec /usr/bin/qemu-nbd "$@"
SH
chmod +x fakebin/qemu-nbd
check "a raw image packs without qemu-nbd" \
	env MARKER="$PWD/nbd-raw" PATH="$PWD/fakebin:$PATH" partpack -q -1 -o direct.xz img
check "... no qemu-nbd was started" test ! -e nbd-raw
check "a qcow2 packs through qemu-nbd" \
	env MARKER="$PWD/nbd-qcow2" PATH="$PWD/fakebin:$PATH" partpack -q -1 -o via.xz v2.qcow2
check "... qemu-nbd was started" test -e nbd-qcow2
check "--input-format raw packs a qcow2 file's own bytes" \
	partpack -q -1 --input-format raw -o container.xz v2.qcow2
check "... xz -dc gives the qcow2 file" bash -c 'xz -dc container.xz | cmp - v2.qcow2'

# ---- images qemu refuses: qemu's words, status 1, nothing left --------------
qemu-img convert -f raw -O qcow2 img whole.qcow2 || bail "convert failed"
head -c $(($(size_of whole.qcow2) / 2)) whole.qcow2 >truncated.qcow2
check_fails "a truncated qcow2: status 1" 1 partpack -q -o truncated.xz truncated.qcow2
case $CHECK_STDERR in
*truncated.qcow2*"qemu-img check"*) ok "... qemu-img check's words, naming the file" ;;
*) not_ok "... qemu-img check's words, naming the file" "$CHECK_STDERR" ;;
esac
check "... nothing at the output" bash -c '! ls truncated.xz* .truncated.xz* 2>/dev/null'
qemu-img create -q -f qcow2 --object secret,id=sec0,data=pass \
	-o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 secret.qcow2 16M ||
	bail "making an encrypted qcow2 failed"
check_fails "an encrypted qcow2: status 1" 1 partpack -q -o secret.xz secret.qcow2
case $CHECK_STDERR in
*secret.qcow2*encrypt*) ok "... qemu's reason, naming the file" ;;
*) not_ok "... qemu's reason, naming the file" "$CHECK_STDERR" ;;
esac
check "... nothing at the output" bash -c '! ls secret.xz* 2>/dev/null'
# A backing "file" that is a server: refused before qemu connects to it.
qemu-img create -q -f qcow2 -b nbd://127.0.0.1:9/x -F raw -u remote.qcow2 16M ||
	bail "making a qcow2 over an NBD URL failed"
check_fails "a backing file that is a URL: status 1" 1 partpack -q -o remote.xz remote.qcow2
case $CHECK_STDERR in
*remote.qcow2*nbd://127.0.0.1:9/x*"not a local file"*) ok "... refused, naming it" ;;
*) not_ok "... refused, naming it" "$CHECK_STDERR" ;;
esac
check_fails "--input-format vmdk on a qcow2: status 1" 1 \
	partpack -q --input-format vmdk -o wrong.xz v2.qcow2
check_fails "--input-format with a name that is no format: status 2" 2 \
	partpack -q --input-format 'qcow2;x' -o wrong.xz v2.qcow2

# ---- holes: an 8 GiB qcow2 with 16 MiB of data packs in the time of its data --
qemu-img create -q -f qcow2 big.qcow2 8G &&
	qemu-io -f qcow2 -c "write -q -P 0x11 1G 8M" -c "write -q -P 0x22 7G 8M" \
	big.qcow2 >/dev/null && qemu-img convert -f qcow2 -O raw big.qcow2 big.raw ||
	bail "making the 8 GiB images failed"
start=$(date +%s%N)
check "pack the sparse raw 8 GiB image" partpack -q -1 -o big.raw.xz big.raw
raw_ms=$((($(date +%s%N) - start) / 1000000))
start=$(date +%s%N)
check "pack the 8 GiB qcow2" partpack -q -1 -o big.xz big.qcow2
qcow2_ms=$((($(date +%s%N) - start) / 1000000))
check_cmp "... the same bytes" big.raw.xz big.xz
check "... in about the time of the raw one (${qcow2_ms} ms against ${raw_ms} ms)" \
	test "$qcow2_ms" -le $((2 * raw_ms + 1500))

# ---- partcat -O: images qemu-img writes --------------------------------------
check "partcat -O qcow2" partcat -q raw.xz -O qcow2 -o out.qcow2
check "... qemu-img says qcow2" bash -c 'qemu-img info out.qcow2 | grep -q "^file format: qcow2"'
check "... qemu-img compare: the raw image" qemu-img compare -q -f raw -F qcow2 img out.qcow2
allocated=$(qemu-img map --output=json out.qcow2 | python3 -c '
import json, sys
print(sum(e["length"] for e in json.load(sys.stdin) if e["data"]))')
check "... zero blocks are unallocated ($allocated of $SIZE bytes allocated)" \
	test "$allocated" -lt "$SIZE"
check "partcat --partition part1 -O qcow2" partcat -q raw.xz -p part1 -O qcow2 -o boot.qcow2
check "... qemu-img compare: the partition" qemu-img compare -q -f raw -F qcow2 part1.img boot.qcow2
check "partcat -O vdi" partcat -q raw.zst -O vdi -o out.vdi
check "... qemu-img compare: the raw image" qemu-img compare -q -f raw -F vdi img out.vdi
check "partcat -O raw is the plain image" partcat -q raw.xz -O raw -o out.raw
check_cmp "... byte for byte" img out.raw
check_stdout_cmp "-O with a number is still --offset" part1.img \
	partcat raw.xz -O "$P1" -l "$S1"
check_fails "-O qcow2 without --output: status 2" 2 partcat raw.xz -O qcow2
check_fails "an existing output without --force: status 1" 1 \
	partcat -q raw.xz -O qcow2 -o out.qcow2

# ---- a libguestfs selector on a qcow2: one appliance launch -------------------
if [ "${PP_TEST_QUICK:-0}" = 1 ]; then
	skip "a libguestfs selector on a qcow2" "PP_TEST_QUICK=1 (no appliance launch)"
	exit 0
fi
check "top.qcow2: --keep-raw /boot (libguestfs opens the qcow2 chain)" \
	env LIBGUESTFS_BACKEND_SETTINGS=force_tcg \
	partpack -q -1 -B 1MiB --keep-raw /boot -o guest.xz top.qcow2
check_cmp "... the same bytes as keeping part1 of top.raw" top.raw.xz guest.xz
