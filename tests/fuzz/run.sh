#!/usr/bin/env bash
# tests/fuzz/run.sh HARNESS SECONDS CORPUS_DIR [SEED_DIR...] - runs one libFuzzer
# harness for SECONDS and prints one line: runs, time, corpus size, findings.
#
# New inputs go to CORPUS_DIR; the seed directories are only read.  Crashes,
# leaks, timeouts and out-of-memory inputs are written to
# DIR/findings/NAME-{crash,leak,timeout,oom}-SHA1 (DIR holding HARNESS), the
# full output to DIR/logs/NAME.log.  The exit status is 1 when this run
# found anything, so make fails; replay a finding with `HARNESS FILE`.
#
# Environment: FUZZ_ARGS, extra libFuzzer flags (e.g. -jobs=2, -dict=...).

set -u

[ $# -ge 3 ] || { echo "usage: tests/fuzz/run.sh HARNESS SECONDS CORPUS_DIR [SEED_DIR...]" >&2; exit 2; }
harness=$1 seconds=$2 corpus=$3
shift 3
name=$(basename "$harness")
dir=$(dirname "$harness")
findings=$dir/findings
log=$dir/logs/$name.log
mkdir -p "$corpus" "$findings" "$dir/logs"

marker=$(mktemp "$dir/logs/.start.XXXXXX")
trap 'rm -f "$marker"' EXIT
start=$(date +%s)
# -timeout: one input taking this long is a hang worth a report.
# shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
"$harness" -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
	-artifact_prefix="$findings/$name-" ${FUZZ_ARGS:-} \
	"$corpus" "$@" >"$log" 2>&1
status=$?
elapsed=$(($(date +%s) - start))

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
new=$(find "$findings" -type f -name "$name-*" -newer "$marker" | sort)
count=$(printf '%s' "$new" | grep -c . || true)
inputs=$(find "$corpus" -type f | wc -l)
printf '%-14s %10s runs in %4ss (%s/s), corpus %s inputs, %s findings\n' \
	"$name" "${runs:-?}" "$elapsed" "${rate:-?}" "$inputs" "$count"

if [ "$count" -gt 0 ] || [ $status -ne 0 ]; then
	[ -n "$new" ] && printf '%s\n' "$new" | sed 's/^/    /'
	echo "    exit status $status; the end of $log:"
	grep -v '^#\|^INFO\|^stat::' "$log" | tail -n 40 | sed 's/^/    /'
	exit 1
fi
