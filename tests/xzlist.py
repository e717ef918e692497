#!/usr/bin/env python3
"""Checks the block layout of an .xz file from `xz --robot --list -vv`.

usage: xzlist.py ARCHIVE [--size N] [--max-block N] [--edge N]...
                         [--stored OFFSET+LENGTH]... [--print]

  --size N          the uncompressed size must be N
  --max-block N     no block may hold more than N uncompressed bytes
  --edge N          some block must start at uncompressed offset N (or N is
                    the end of the data)
  --stored O+L      [O, O+L) must be made of whole blocks whose data is LZMA2
                    uncompressed chunks: a block boundary at O and at O+L, and
                    each block inside with U < data size <= U + 3 per 4 KiB
                    + 1, i.e. chunk headers (3 bytes per chunk of up to
                    64 KiB; liblzma's own are a little under 64 KiB) and the
                    end marker, nothing compressed
  --print           print the block table

Every block must have both sizes in its header (flags "cu"), so that
`xz -T0 -d` can decode blocks in parallel.  Exits 0 when all holds, else
prints each problem and exits 1.
"""
import subprocess
import sys


def fail(problems, msg):
    problems.append(msg)


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[0]
    size = max_block = None
    edges, stored, show = [], [], False
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--print":
            show = True
            i += 1
            continue
        if i + 1 >= len(argv):
            print(f"xzlist.py: {a} needs a value", file=sys.stderr)
            return 2
        v = argv[i + 1]
        if a == "--size":
            size = int(v)
        elif a == "--max-block":
            max_block = int(v)
        elif a == "--edge":
            edges.append(int(v))
        elif a == "--stored":
            o, l = v.split("+")
            stored.append((int(o), int(l)))
        else:
            print(f"xzlist.py: unknown option {a}", file=sys.stderr)
            return 2
        i += 2

    r = subprocess.run(["xz", "--robot", "--list", "-vv", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"xz --robot -lvv {path} failed ({r.returncode}): {r.stderr.strip()}")
        return 1
    blocks = []
    for line in r.stdout.splitlines():
        f = line.split("\t")
        if f[0] != "block":
            continue
        # 2 stream, 3 block in stream, 4 block in file, 5 compressed start,
        # 6 uncompressed start, 7 total compressed size, 8 uncompressed size,
        # 9 ratio, 10 check, 11 check value, 12 header size, 13 flags,
        # 14 compressed data size, 15 memory, 16 filter chain
        if len(f) < 16:
            print(f"unexpected block line (xz too old for -vv?): {line}")
            return 1
        blocks.append({
            "n": int(f[3]), "cstart": int(f[4]), "ustart": int(f[5]),
            "csize": int(f[6]), "usize": int(f[7]), "check": f[9],
            "hsize": int(f[11]), "flags": f[12], "dsize": int(f[13]),
            "filters": f[15],
        })

    problems = []
    if show or not blocks:
        print("block  ustart      usize     dsize     flags  check   filters")
        for b in blocks:
            print(f"{b['n']:5} {b['ustart']:10} {b['usize']:9} {b['dsize']:9} "
                  f"{b['flags']:6} {b['check']:7} {b['filters']}")
    if not blocks:
        fail(problems, "no block lines in xz --robot -lvv output")

    pos = 0
    for b in blocks:
        if not b["flags"].startswith("cu"):
            fail(problems, f"block {b['n']} at {b['ustart']}: header flags "
                           f"{b['flags']!r}, expected both sizes ('cu')")
        if b["ustart"] != pos:
            fail(problems, f"block {b['n']} starts at {b['ustart']}, expected {pos}")
        pos = b["ustart"] + b["usize"]
        if max_block is not None and b["usize"] > max_block:
            fail(problems, f"block {b['n']} at {b['ustart']} holds {b['usize']} "
                           f"bytes, more than the block size {max_block}")
    total = pos
    if size is not None and total != size:
        fail(problems, f"uncompressed size {total}, expected {size}")

    starts = {b["ustart"] for b in blocks}
    for e in edges:
        if e not in starts and e != total:
            fail(problems, f"no block boundary at {e}")

    for o, l in stored:
        for e in (o, o + l):
            if e not in starts and e != total:
                fail(problems, f"stored range {o}+{l}: no block boundary at {e}")
        inside = [b for b in blocks if b["ustart"] >= o and b["ustart"] < o + l]
        if not inside:
            fail(problems, f"stored range {o}+{l}: no block in it")
        for b in inside:
            u, d = b["usize"], b["dsize"]
            limit = u + 3 * ((u + 4095) // 4096) + 1
            if not (u < d <= limit):
                fail(problems, f"stored range {o}+{l}: block {b['n']} at "
                               f"{b['ustart']} has {d} bytes of data for {u} "
                               f"bytes (stored chunks: {u} < size <= {limit})")

    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
