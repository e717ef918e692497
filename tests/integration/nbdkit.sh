# nbdkit.sh - the archive as a live disk through nbdkit's partpack filter,
# for every format the library lists: reads (nbdcopy against the image),
# block status (zero extents are zeros), writes inside kept ranges applied
# at flush with every check fixed (qemu-io), refusals that change nothing.
# Then, on .xz: one writer at a time, readers against partpatch's lock and
# a pending undo record, a flush interrupted at every write, sync and
# unlink, a flush failing at each, the memory pending writes hold (in
# place, within partpack-max-pending, streamed when saved), and one
# guestfish session (one appliance launch, skipped with PP_TEST_QUICK=1)
# that writes a file into the kept /boot and is refused in the root
# filesystem.

require_cmd partpack partinfo nbdkit nbdcopy nbdinfo qemu-io xz cmp python3 ss
# Every format the library knows, each judged by its own reference tool.
FORMATS=$(pp_formats) || bail "cannot list the library's formats"
for fmt in $FORMATS; do
	require_cmd "$(pp_format_tool "$fmt")"
done
# Clients that must see each request's result: libnbd's Python binding
# (python3-libnbd), which is the system Python's.
NBD_PYTHON=$(python_with nbd) || bail "no python3 with the nbd module (python3-libnbd)"

FILTER=$PARTPACK_BUILD/nbdkit-partpack-filter.so
[ -f "$FILTER" ] || bail "no $FILTER (is nbdkit-plugin-dev installed?)"

check_eq "the filter exports filter_init and nothing of the library" filter_init \
	"$(nm -D --defined-only "$FILTER" | awk '{ print $3 }' | grep -v '^_' | tr '\n' ' ' | sed 's/ $//')"

make_gpt_image img || bail "make_gpt_image failed"
P1=$(part_offset img 1) && S1=$(part_size img 1) || bail "no partition 1"
P2=$(part_offset img 2) && S2=$(part_size img 2) || bail "no partition 2"

# serve ARCHIVE CMD: runs CMD (bash) with $uri and $unixsocket set, the
# archive served through the filter (nbdkit options in NBDKIT_OPTS, the
# filter's parameters in FILTER_PARAMS).
serve() {
	local archive=$1 script
	shift
	script=$(mktemp "$TESTDIR/serve.XXXXXX")
	printf '%s\n' "$*" >"$script"
	# shellcheck disable=SC2086
	nbdkit_ -U - ${NBDKIT_OPTS:-} --filter="$FILTER" file "$archive" \
		${FILTER_PARAMS:-} --run "env -u LD_PRELOAD uri=\"\$uri\" \
			unixsocket=\"\$unixsocket\" bash $script"
}

# expect IMAGE OFFSET BYTE LENGTH: IMAGE with LENGTH bytes of BYTE at OFFSET.
expect() {
	python3 - "$@" <<'EOF'
import sys
path, offset, byte, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 0), int(sys.argv[4])
with open(path, "r+b") as f:
    f.seek(offset)
    f.write(bytes([byte]) * length)
EOF
}

for fmt in $FORMATS; do
	a=a.$fmt
	tool=$(pp_format_tool "$fmt")
	check "$fmt: pack keeping part1" partpack -q -1 --block-size=1MiB --keep-raw part1 -o "$a" img
	cp "$a" base.$fmt

	# ---- reads ----------------------------------------------------------
	check "$fmt: nbdcopy through the filter gives the image" \
		serve "$a" 'nbdcopy "$uri" out.raw'
	check_cmp "$fmt: ... byte for byte" img out.raw
	check "$fmt: qemu-img convert through the filter gives the image" \
		serve "$a" 'qemu-img convert -f raw -O raw "$uri" conv.raw'
	check_cmp "$fmt: ... byte for byte" img conv.raw
	rm -f out.raw conv.raw

	# ---- block status ---------------------------------------------------
	serve "$a" 'nbdinfo --map --json "$uri"' >map.json 2>map.err
	check "$fmt: nbdinfo --map" test -s map.json
	check "$fmt: block status reports zero extents, and they are zeros" \
		python3 - img map.json <<'EOF'
import json, sys
img = open(sys.argv[1], "rb").read()
extents = json.load(open(sys.argv[2]))
zero = [e for e in extents if e["type"] & 2]
assert zero, "no zero extents reported"
end = 0
for e in extents:
    assert e["offset"] == end, ("gap", e)
    end = e["offset"] + e["length"]
    if e["type"] & 2:
        assert img[e["offset"]:end] == bytes(e["length"]), ("not zero", e)
assert end == len(img), ("map ends at", end)
EOF

	# ---- writes in the kept partition -----------------------------------
	cp img want.raw
	expect want.raw $((P1 + 8192)) 0x5a 65536
	expect want.raw $((P1 + S1 - 4096)) 0xa5 4096
	check "$fmt: qemu-io writes into the kept partition" \
		serve "$a" "qemu-io -f raw -c 'write -P 0x5a $((P1 + 8192)) 64k' \
			-c 'write -P 0xa5 $((P1 + S1 - 4096)) 4k' -c flush \"\$uri\""
	check "$fmt: $tool -t accepts the written archive" "$tool" -t "$a"
	check_stdout_cmp "$fmt: $tool -dc gives the written image" want.raw "$tool" -dc "$a"
	check "$fmt: partinfo --verify" partinfo --verify "$a"
	check "$fmt: no undo record is left" test ! -e ".$a.partpatch-undo"

	# ---- a write touching compressed data --------------------------------
	cp "$a" before.$fmt
	serve "$a" "qemu-io -f raw -c 'write -P 0x11 $((P2 + 4096)) 4k' -c flush \"\$uri\"" \
		>refused.out 2>&1
	check "$fmt: a write into the root partition fails" \
		grep -q "Operation not permitted" refused.out
	check "$fmt: ... the log names its offset" \
		grep -q "at offset $((P2 + 4096)) refused" refused.out
	check_cmp "$fmt: ... and the archive is byte-identical" before.$fmt "$a"
	serve "$a" "qemu-io -f raw -c 'write -P 0x22 $((P1 + S1 - 4096)) 8k' \"\$uri\"" \
		>straddle.out 2>&1
	check_cmp "$fmt: a write straddling the partition's end changes nothing" \
		before.$fmt "$a"

	# ---- read-only ------------------------------------------------------
	NBDKIT_OPTS=-r serve "$a" 'nbdinfo --json "$uri"' >ro.json
	check "$fmt: nbdkit -r: read-only, multi-conn" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
assert e["is_read_only"] and e["can_multi_conn"], e' ro.json
	FILTER_PARAMS=partpack-write=false serve "$a" 'nbdinfo --json "$uri"' >ro2.json
	check "$fmt: partpack-write=false: read-only" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
assert e["is_read_only"], e' ro2.json
	serve "$a" 'nbdinfo --json "$uri"' >rw.json
	check "$fmt: writable: no multi-conn" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
assert not e["is_read_only"] and not e["can_multi_conn"], e' rw.json
done

# ---- one writer at a time ---------------------------------------------------
# The first holds its connection for 3 s; the second, meanwhile, must fail.
serve a.xz '(sleep 3 | qemu-io -f raw "$uri" >/dev/null 2>&1 &) ; sleep 1;
	! nbdinfo "$uri" >/dev/null 2>&1' >second.out 2>&1
check_eq "a second writable connection fails while one is open" 0 $?
check "... and nbdkit logs why" grep -q "another connection is writing" second.out
NBDKIT_OPTS=-r serve a.xz '(sleep 3 | qemu-io -r -f raw "$uri" >/dev/null 2>&1 &) ; sleep 1;
	nbdinfo "$uri" >/dev/null' >ro2conn.out 2>&1
check_eq "two read-only connections at once work" 0 $?

# ---- readers take the shared lock --------------------------------------------
# A reader and a patch exclude each other, as pp_open's readers and writers
# do: a reader is refused while partpatch (here flock(1) on its behalf)
# holds the archive, and partpatch cannot take it while a reader is
# connected, which is what makes multi-conn true for read-only exports.
exec 9<a.xz
flock -x 9
NBDKIT_OPTS=-r serve a.xz 'nbdinfo "$uri"' >locked.out 2>&1
check_eq "a read-only connection is refused while the archive is being patched" \
	1 $?
check "... and nbdkit says why" grep -q "another process is patching this archive" locked.out
flock -u 9
exec 9<&-
cat >connected.py <<'EOF'
# connected.py URI CMD...: runs CMD while connected to URI; its status.
import nbd, subprocess, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
sys.exit(subprocess.call(sys.argv[2:]))
EOF
dd if=img of=same.bin bs=4096 count=1 skip="$P1" iflag=skip_bytes status=none
NBDKIT_OPTS=-r serve a.xz "$NBD_PYTHON connected.py \"\$uri\" partpatch --no-wait -q a.xz \
	--offset $P1 --input same.bin" >patch.out 2>&1
check_eq "partpatch --no-wait cannot patch while a reader is connected: status 5" \
	5 $?
check "... and then it can" partpatch --no-wait -q a.xz --offset "$P1" --input same.bin

# ---- a flush interrupted at every write, sync and unlink -------------------
# faulty_nbdkit ARCHIVE: a fresh copy of base.xz as ARCHIVE (no record
# beside it), served by nbdkit on ./sock in the background (NBDKIT_PID),
# with the fault-injection shim and the PARTPACK_FAULT_* settings of the
# caller; its clients run without it.
# Returns once nbdkit listens (the socket file exists before that, and a
# loaded machine can take seconds): asked of the kernel (ss), not by
# connecting, which would make nbdkit write and pass fault points.  In the
# foreground (-f), not under --run, whose fork would give the command's
# side a copy of the shim's count, and its first write would fail too.
faulty_nbdkit() {
	cp base.xz "$1"
	rm -f sock ".$1.partpatch-undo"
	LD_PRELOAD="$PARTPACK_BUILD/tests/faultinject.so" \
		nbdkit_exec -f -U sock --filter="$FILTER" file "$1" &
	NBDKIT_PID=$!
	for _ in $(seq 600); do
		ss -xl | grep -qF "$PWD/sock" && return 0
		sleep 0.1
	done
}
# stop_nbdkit: stops faulty_nbdkit's server and sets st to its status.
# SIGTERM first, SIGKILL 3 s later: in the sanitizer build, a server whose
# write failed can hang at exit in libp11-kit's destructor (freelocale
# waits for glibc's locale lock; seen with gdb, 2026-12-03), after its
# work is done and its archive closed.  nbdkit_exec makes $! nbdkit's
# own PID: a server that outlives its run keeps its archive locked.
stop_nbdkit() {
	local watchdog
	kill "$NBDKIT_PID" 2>/dev/null
	{ sleep 3; kill -KILL "$NBDKIT_PID"; } >/dev/null 2>&1 &
	watchdog=$!
	wait "$NBDKIT_PID"
	st=$?
	kill "$watchdog" 2>/dev/null
	wait "$watchdog" 2>/dev/null
}
# rerun_unserved: after a run nbdkit did not serve (a client that connected
# in the instant between bind and listen, on a loaded machine), true if
# point k is to run again (twice at most; k is made one less for it).
rerun_unserved() {
	attempts=$((attempts + 1))
	[ "$attempts" -le 2 ] && k=$((k - 1))
}

# One write across a block boundary: two blocks, one transaction (qemu-io
# writes through, so it flushes after the write).
cp base.xz crash.xz
cp img old.raw
cp img new.raw
expect new.raw $((P1 + 1048576 - 8192)) 0x77 16384
completed=0
attempts=0
k=0
while [ "$k" -lt 60 ]; do
	k=$((k + 1))
	PARTPACK_FAULT_AFTER=$k faulty_nbdkit crash.xz
	qemu-io -f raw -c "write -P 0x77 $((P1 + 1048576 - 8192)) 16k" -c flush \
		"nbd+unix:///?socket=$PWD/sock" >/dev/null 2>&1
	client=$?
	stop_nbdkit
	# Not stopped by the fault, yet the write failed: nbdkit never served.
	if [ "$st" -ne 99 ] && [ "$client" -ne 0 ]; then
		rerun_unserved && continue
		not_ok "nbdkit served the interrupted-flush run $k" \
			"nbdkit status $st, qemu-io status $client"
		break
	fi
	attempts=0
	# The first time the archive is half written, with its undo record:
	# a reader must not serve those bytes.
	if [ -z "${refused_pending:-}" ] && [ -e .crash.xz.partpatch-undo ] &&
		! cmp -s base.xz crash.xz; then
		refused_pending=1
		NBDKIT_OPTS=-r serve crash.xz 'nbdcopy "$uri" half.raw' >pending.out 2>&1
		check_eq "a read-only connection is refused while an undo record is pending" \
			1 $?
		check "... and nbdkit says what to do" \
			grep -q "interrupted patch is pending.*partpatch --recover" pending.out
	fi
	partpatch --recover crash.xz >/dev/null 2>&1
	# xzcat checks what xz -t does (every check, the index) as it decodes.
	if ! xzcat crash.xz >got.raw 2>/dev/null ||
		! { cmp -s got.raw old.raw || cmp -s got.raw new.raw; }; then
		not_ok "a flush interrupted at point $k leaves old or new" "nbdkit status $st"
		break
	fi
	if [ "$st" -ne 99 ]; then
		completed=$k
		break
	fi
done
[ -n "${refused_pending:-}" ] || not_ok "some interrupted flush left a half-written archive"
if [ "$completed" -gt 1 ]; then
	ok "a flush interrupted at each of $((completed - 1)) points: old or new every time"
	check_cmp "... and the uninterrupted flush gives the new image" new.raw got.raw
else
	not_ok "the interrupted flushes ran to completion" "completed at $completed"
fi

# ---- a flush that fails ----------------------------------------------------
# nbdkit's k-th write, sync, unlink or rename fails with EIO, once (the
# shim's PARTPACK_FAULT_ERRNO), for k = 1, 2, ... until a run passes them
# all.  The client writes 16 KiB across a block boundary, flushes, flushes
# again and reads back.  The archive must be old or new every time, and no
# flush may report success unless the archive holds the write: a failed
# flush used to drop the writes it held, and the next flush succeeded over
# nothing.
cat >flushfail.py <<'EOF'
# flushfail.py URI OFFSET LENGTH: write, flush, flush, read back; prints
# what each did ("ok", "failed", the read "new").
import nbd, sys
uri, offset, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
h = nbd.NBD()
h.connect_uri(uri)
h.pwrite(b"\x77" * length, offset)
said = []
for step in ("flush", "flush", "read"):
    try:
        if step == "flush":
            h.flush()
            said.append("ok")
        else:
            said.append("new" if h.pread(length, offset) == b"\x77" * length else "other")
    except nbd.Error:
        said.append("failed")
print(" ".join(said))
h.shutdown()
EOF
failed_flushes=0
attempts=0
k=0
while [ "$k" -lt 40 ]; do
	k=$((k + 1))
	PARTPACK_FAULT_AFTER=$k PARTPACK_FAULT_ERRNO=5 faulty_nbdkit fail.xz 2>fail.err
	said=$("$NBD_PYTHON" flushfail.py "nbd+unix:///?socket=$PWD/sock" \
		$((P1 + 1048576 - 8192)) 16384 2>&1)
	stop_nbdkit
	# The client never connected: nbdkit never served.
	case $said in
	*ok* | *failed*) attempts=0 ;;
	*)
		rerun_unserved && continue
		not_ok "nbdkit served the failing-flush run $k" "client: $said"
		break ;;
	esac
	partpatch --recover fail.xz >/dev/null 2>&1
	# xzcat checks what xz -t does (every check, the index) as it decodes.
	if ! xzcat fail.xz >got.raw 2>/dev/null ||
		! { cmp -s got.raw old.raw || cmp -s got.raw new.raw; }; then
		not_ok "a flush failing at point $k leaves old or new" "client: $said"
		break
	fi
	case $said in
	*ok*)
		if ! cmp -s got.raw new.raw; then
			not_ok "a flush that reports success holds the write (point $k)" \
				"client: $said" "$(cat fail.err)"
			break
		fi ;;
	esac
	case $said in
	failed*) failed_flushes=$((failed_flushes + 1)) ;;
	esac
	grep -q "^faultinject: call" fail.err || break
done
if grep -q "^faultinject: call" fail.err || [ "$failed_flushes" -eq 0 ]; then
	not_ok "the failing flushes ran to a clean one" "point $k: client: $said"
else
	ok "a flush failing at each of $((k - 1)) points ($failed_flushes failed flushes): old or new, and no later flush succeeded over lost data"
	check_eq "... and the clean run flushes, then reads the write back" "ok ok new" "$said"
fi

# ---- pending writes: an interval map, within partpack-max-pending ----------
# writes.py writes into partition 1 through the filter, checks every read
# against a model of the partition, and reports how much nbdkit's peak RSS
# (VmHWM) grew.  Each write used to be held as a copy of its own, found by
# scanning them all: 300 writes of the same 1 MiB grew it by 600 MB, 10,000
# writes of 4 KiB at random in the 8 MiB partition by 80 MB.
cat >writes.py <<'EOF'
# writes.py URI PID_FILE P1 S1 MODE...: writes into [P1, P1 + S1) as each
# MODE says, checking reads against a model of those bytes; prints
# "growth KIB" (nbdkit's VmHWM after, less before) and leaves the model in
# model.part.  MODEs: rewrite (the same 1 MiB, 300 times), scatter (10,000
# writes of 4 KiB at random), odd (2,000 unaligned writes over each other's
# edges), refuse=OFFSET (a write there fails with EPERM), fill (100 new
# 4 KiB pages, some refused with ENOSPC, then a rewrite), flush.
import errno, nbd, random, sys

uri, pid_file = sys.argv[1], sys.argv[2]
p1, s1 = int(sys.argv[3]), int(sys.argv[4])

def hwm_kib():
    pid = open(pid_file).read().split()[0]
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

h = nbd.NBD()
h.connect_uri(uri)
model = bytearray(h.pread(s1, p1))
start = hwm_kib()
rng = random.Random(19)
errors = []

def write(offset, data):
    h.pwrite(bytes(data), p1 + offset)
    model[offset:offset + len(data)] = data

def check_reads(n):
    for _ in range(n):
        offset = rng.randrange(0, s1 - 1)
        length = rng.randrange(1, min(s1 - offset, 300000) + 1)
        if h.pread(length, p1 + offset) != model[offset:offset + length]:
            errors.append(f"read {length} at {offset} differs")

def refused_with(code, offset, data):
    try:
        write(offset, data)
    except nbd.Error as e:
        if e.errnum != code:
            errors.append(f"write at {offset}: {e}")
        return True
    return False

for mode in sys.argv[5:]:
    if mode == "rewrite":
        for i in range(300):
            write(1 << 20, bytes([i % 251 + 1]) * (1 << 20))
        check_reads(5)
    elif mode == "scatter":
        for i in range(10000):
            write(rng.randrange(0, s1 // 4096) * 4096, bytes([i % 251 + 1]) * 4096)
            if i % 1000 == 999:
                check_reads(5)
    elif mode == "odd":
        for i in range(2000):
            length = rng.randrange(1, 20000)
            write(rng.randrange(0, s1 - length), rng.randbytes(length))
        check_reads(20)
    elif mode.startswith("refuse="):
        if not refused_with(errno.EPERM, int(mode[7:]) - p1, b"\x11" * 4096):
            errors.append("a write outside the stored ranges was taken")
    elif mode == "fill":
        refused = sum(refused_with(errno.ENOSPC, i * 4096, b"\x33" * 4096)
                      for i in range(100))
        print("fill refused", refused)
        write(0, b"\x55" * 4096)
        check_reads(5)
    elif mode == "flush":
        h.flush()
        check_reads(5)
print("growth", hwm_kib() - start)
for e in errors[:5]:
    print(e)
open("model.part", "wb").write(model)
h.shutdown()
sys.exit(1 if errors else 0)
EOF
# run_writes ARCHIVE FILTER_PARAMS MODE...: writes.py through the filter.
run_writes() {
	local archive=$1 params=$2
	shift 2
	# shellcheck disable=SC2086
	nbdkit_ -U - -P nbdkit.pid --filter="$FILTER" file "$archive" $params \
		--run "env -u LD_PRELOAD $NBD_PYTHON writes.py \"\$uri\" nbdkit.pid $P1 $S1 $*"
}
# check_growth DESC OUTPUT MAX_KIB: the VmHWM growth writes.py reported.
check_growth() {
	local growth
	growth=$(sed -n 's/^growth //p' "$2")
	case ${PP_TEST_CFLAGS:-} in
	*fsanitize=address*)
		skip "$1" "the sanitizer runtime's memory is not the filter's" ;;
	*)
		if [ -n "$growth" ] && [ "$growth" -le "$3" ]; then
			ok "$1 (grew $growth KiB)"
		else
			not_ok "$1" "grew ${growth:-?} KiB, at most $3 expected" "$(cat "$2")"
		fi ;;
	esac
}
# partition1_of ARCHIVE: partition 1's bytes in the image ARCHIVE holds.
partition1_of() {
	"$(pp_format_tool "${1##*.}")" -dc "$1" >whole.raw &&
		dd if=whole.raw bs=1M iflag=skip_bytes,count_bytes skip="$P1" count="$S1" status=none
}

cp base.xz mem.xz
run_writes mem.xz "" rewrite scatter flush >mem.out 2>&1
check "300 rewrites of 1 MiB, then 10,000 writes of 4 KiB pending at once: every read right" \
	test $? = 0
check_growth "... nbdkit grew by the distinct bytes written (8 MiB), twice while flushing" \
	mem.out 24576
check_stdout_cmp "... and the flush wrote them all" model.part partition1_of mem.xz
check "... partinfo --verify" partinfo --verify mem.xz

cp base.xz cap.xz
run_writes cap.xz partpack-max-pending=1M scatter flush >cap.out 2>&1
check "partpack-max-pending=1M: 10,000 writes of 4 KiB, every read right" test $? = 0
check_growth "... nbdkit grew by about twice the cap" cap.out 8192
check_stdout_cmp "... and the archive holds them all" model.part partition1_of cap.xz
check "... partinfo --verify" partinfo --verify cap.xz

# Saved writes stream to the file: memory holds only their bookkeeping, and
# the file holds the distinct bytes written, replayed in order.
cp base.xz save.xz
run_writes save.xz "partpack-save-writes=$PWD/saved" rewrite scatter odd \
	"refuse=$((P2 + 4096))" >save.out 2>&1
check "partpack-save-writes: rewrites, scattered and unaligned writes, every read right" \
	test $? = 0
check_growth "... nbdkit grew by their bookkeeping only" save.out 4096
check_cmp "... the archive is untouched" base.xz save.xz
check "... the save file replays to the bytes written, and names the refusal" \
	python3 - saved img model.part "$P1" "$((P2 + 4096))" "$((P2 + 4096))" <<'EOF'
import sys
saved, image, model = (open(f, "rb").read() for f in sys.argv[1:4])
p1, refused_offset, refused_byte = (int(a) for a in sys.argv[4:7])
disk = bytearray(image)
lines, at, refused = [], 0, None
while True:
    eol = saved.index(b"\n", at)
    line, at = saved[at:eol].decode(), eol + 1
    lines.append(line.split()[0])
    if line.startswith("write "):
        offset, length = (int(x) for x in line.split()[1:])
        disk[offset:offset + length] = saved[at:at + length]
        at += length
    elif line.startswith("refused "):
        refused = tuple(int(x) for x in line.split()[1:])
    if line == "end":
        break
assert lines[0] == "partpack-writes" and at == len(saved), (lines[:2], at, len(saved))
assert refused == (refused_offset, refused_byte), refused
assert disk[p1:p1 + len(model)] == model, "the replayed bytes differ"
assert disk[:p1] == image[:p1] and disk[p1 + len(model):] == image[p1 + len(model):]
EOF
check "... and it is not much larger than the partition" \
	test "$(size_of saved)" -le $((S1 + 1048576))

rm -f saved
run_writes save.xz "partpack-save-writes=$PWD/saved partpack-max-pending=4K" fill \
	>fill.out 2>&1
check "partpack-save-writes at partpack-max-pending: ENOSPC, and rewrites still taken" \
	test $? = 0
check "... some writes were refused" grep -q "^fill refused [1-9]" fill.out
check "... the save file is complete" test "$(tail -c 4 saved)" = end

# ---- guestfish over the filter: one appliance launch -----------------------
if [ "${PP_TEST_QUICK:-0}" = 1 ]; then
	skip "guestfish over the filter" "PP_TEST_QUICK=1 (no appliance launches)"
	exit 0
fi
require_cmd guestfish debugfs
cp base.xz g.xz
# Under TCG straight away: a failed KVM launch costs a minute here.
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
serve g.xz 'guestfish --format=raw -a "nbd://?socket=$unixsocket"' >g.out 2>&1 <<'EOF'
run
mount /dev/sda1 /
write /hello.txt "written through nbdkit\n"
umount-all
-mount /dev/sda2 /
-write /etc/hostname "changed\n"
-umount-all
EOF
check "xz -t accepts the archive guestfish wrote to" xz -t g.xz
xzcat g.xz >g.raw
dd if=g.raw of=g-boot.raw bs=1M iflag=skip_bytes,count_bytes skip="$P1" count="$S1" status=none
check_eq "the kept /boot holds the new file (debugfs)" "written through nbdkit" \
	"$(debugfs -R 'cat /hello.txt' g-boot.raw 2>/dev/null)"
cmp -s <(dd if=g.raw bs=1M iflag=skip_bytes,count_bytes skip="$P2" count="$S2" status=none) \
	<(dd if=img bs=1M iflag=skip_bytes,count_bytes skip="$P2" count="$S2" status=none)
check_eq "the root partition is unchanged (its writes were refused)" 0 $?
check "... and the refusal was logged" grep -q "refused: byte" g.out
