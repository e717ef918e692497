#!/usr/bin/env python3
"""Checks `partinfo --json ARCHIVE` against what the test expects.

usage: infocheck.py ARCHIVE [--format xz|gzip] [--check NAME] [--size N]
                            [--stored O+L[,O+L...]] [--no-stored] [--xz-blocks]

  --format F     "format" must be F
  --check NAME   "check" must name NAME (case, "-" and "_" ignored: crc64,
                 CRC64, sha-256 all match their spelling)
  --size N       "uncompressed_size" must be N
  --stored LIST  "stored_ranges" must be exactly these {offset, length}
  --no-stored    "stored_ranges" must be empty
  --xz-blocks    "blocks" and "block_size" must match xz --robot -lvv (the
                 block count and the largest block's uncompressed size)

Always: partinfo exits 0, prints one JSON object with the keys format,
check, uncompressed_size, compressed_size (= the file's size), blocks,
block_size and stored_ranges, and the stored ranges are sorted, inside the
data and not adjacent (merged).  Prints each problem; exits 1 if any.
"""
import json
import os
import subprocess
import sys


def norm(s):
    return str(s).lower().replace("-", "").replace("_", "")


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[0]
    want = {}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("--no-stored", "--xz-blocks"):
            want[a] = True
            i += 1
            continue
        if i + 1 >= len(argv):
            print(f"infocheck.py: {a} needs a value", file=sys.stderr)
            return 2
        want[a] = argv[i + 1]
        i += 2

    r = subprocess.run(["partinfo", "--json", path], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        print(f"partinfo --json {path} exited {r.returncode}: {r.stderr.strip()}")
        return 1
    try:
        info = json.loads(r.stdout)
    except ValueError as e:
        print(f"partinfo --json printed no valid JSON ({e}):")
        print(r.stdout[:2000])
        return 1
    problems = []
    if not isinstance(info, dict):
        print("partinfo --json did not print an object")
        return 1
    for k in ("format", "check", "uncompressed_size", "compressed_size",
              "blocks", "block_size", "stored_ranges"):
        if k not in info:
            problems.append(f"key {k!r} missing")
    if problems:
        problems.append(f"got: {json.dumps(info)[:2000]}")
        print("\n".join(problems))
        return 1

    def expect(key, value):
        if info[key] != value:
            problems.append(f"{key}: expected {value!r}, got {info[key]!r}")

    if "--format" in want:
        expect("format", want["--format"])
    if "--check" in want and norm(info["check"]) != norm(want["--check"]):
        problems.append(f"check: expected {want['--check']!r}, got {info['check']!r}")
    if "--size" in want:
        expect("uncompressed_size", int(want["--size"]))
    expect("compressed_size", os.path.getsize(path))

    ranges = info["stored_ranges"]
    try:
        got = [(int(x["offset"]), int(x["length"])) for x in ranges]
    except (TypeError, KeyError, ValueError):
        problems.append(f"stored_ranges is not a list of {{offset, length}}: {ranges!r}")
        got = []
    if "--stored" in want:
        exp = [tuple(int(v) for v in s.split("+")) for s in want["--stored"].split(",")]
        if got != exp:
            problems.append(f"stored_ranges: expected {[{'offset': o, 'length': l} for o, l in exp]}, got {ranges}")
    if want.get("--no-stored") and got:
        problems.append(f"stored_ranges: expected none, got {ranges}")
    end = -1
    for o, l in got:
        if l <= 0:
            problems.append(f"stored range {o}+{l} is empty")
        if o <= end:
            problems.append(f"stored range {o}+{l} is not after the previous one, or adjacent to it (not merged)")
        end = o + l
    if got and end > info["uncompressed_size"]:
        problems.append(f"stored range ends at {end}, past the data ({info['uncompressed_size']})")

    if want.get("--xz-blocks"):
        r = subprocess.run(["xz", "--robot", "--list", "-v", path],
                           capture_output=True, text=True)
        sizes = [int(l.split("\t")[7]) for l in r.stdout.splitlines()
                 if l.startswith("block\t")]
        expect("blocks", len(sizes))
        if sizes:
            expect("block_size", max(sizes))

    if problems:
        problems.append(f"partinfo --json printed: {json.dumps(info)[:2000]}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
