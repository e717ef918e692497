# tests/bench/lib.sh - what every benchmark row shares: timing, ratios,
# artefacts built once and shared between rows, and `emit`, which prints a
# row the moment it is measured and appends it to the results file.
#
# A row is a shell function run in a subshell under `set -e`: a command
# that fails inside it fails that row (one FAILED line, its log kept) and
# the run goes on with the next row.  Rows share their inputs through
# files in the work directory, made by the `need_*` functions on first use
# (so `ROWS=pattern` can run any subset), and share measurements through
# `remember`/`recall`, so a row can compare with a time another row took
# without measuring it twice.

MIB=1048576

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }
# timed VAR CMD...: runs CMD, stores its wall time in seconds in VAR.
timed() {
	local var=$1 start end
	shift
	start=$(now)
	"$@"
	end=$(now)
	printf -v "$var" '%.3f' "$(calc "$end - $start")"
}
ratio() { printf '%.3f' "$(calc "$1 / $2")"; }
# median N...: the middle of the numbers (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
size_of() { stat -c %s "$1"; }
# timed_rss VAR RSS_VAR CMD...: as timed, and CMD's peak resident set in
# KiB into RSS_VAR, from the same run (the clock starts and stops around
# CMD alone, not the interpreter that waits for it).
timed_rss() {
	local var=$1 rss_var=$2 measured=$work/.measured/.timed_rss out
	shift 2
	python3 -c '
import resource, subprocess, sys, time
start = time.monotonic()
status = subprocess.run(sys.argv[2:]).returncode
wall = time.monotonic() - start
with open(sys.argv[1], "w") as f:
    f.write("%.3f %d\n" % (wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(status)' "$measured" "$@" || return 1
	read -r out <"$measured"
	printf -v "$var" '%s' "${out% *}"
	printf -v "$rss_var" '%s' "${out#* }"
}

# peak_rss_kib CMD...: runs CMD (its output discarded) and prints its peak
# resident set in KiB.
peak_rss_kib() {
	local t rss
	timed_rss t rss "$@" >/dev/null || return 1
	echo "$rss"
}

# remember NAME VALUE / recall NAME: measurements kept for later rows.
remember() { echo "$2" >"$work/.measured/$1"; }
recall() { cat "$work/.measured/$1" 2>/dev/null; }
# once NAME CMD...: runs CMD unless NAME was made by an earlier row; NAME
# is a file CMD creates.  A failing CMD leaves no NAME behind.
once() {
	local name=$1
	shift
	[ -e "$name" ] && return 0
	if ! "$@"; then
		rm -rf "$name"
		return 1
	fi
}

# The verdict of a ratio against a target "<= X" or ">= X" (or none).
verdict() {
	local r=$1 target=$2 op limit
	read -r op limit <<<"$target"
	case $op in
	"<=") awk -v r="$r" -v l="$limit" 'BEGIN {
		if (r <= l) print "met"; else printf "missed by %.1f %%\n", (r / l - 1) * 100 }' ;;
	">=") awk -v r="$r" -v l="$limit" 'BEGIN {
		if (r >= l) print "met"; else printf "missed by %.1f %%\n", (1 - r / l) * 100 }' ;;
	*) echo "" ;;
	esac
}

# emit ROW OURS THEIRS RATIO TARGET: one measured row, printed now and kept
# as TSV (date, machine, row, ours, theirs, ratio, target, verdict).
emit() {
	local row=$1 ours=$2 theirs=${3:-} r=${4:-} target=${5:-} v=""
	[ -z "$r" ] || v=$(verdict "$r" "$target")
	printf '| %s | %s | %s | %s | %s | %s |\n' "$row" "$ours" "$theirs" "$r" "$target" "$v"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run_date" "$machine" "$row" "$ours" \
		"$theirs" "$r" "$target" "$v" >>"$results"
}

# row NAME FUNCTION: runs one row if NAME matches $ROWS; a failure is a
# FAILED line naming the log, and the run goes on.
row() {
	local name=$1 fn=$2 log status
	[[ $name =~ ${ROWS:-.} ]] || return 0
	log=$logdir/$name.log
	echo "  ... $name" >&2
	(
		set -eo pipefail
		cd "$work"
		"$fn"
	) 2>"$log"
	status=$?
	if [ $status -ne 0 ]; then
		emit "$name" "FAILED (exit $status): $(tail -n 1 "$log" | cut -c1-120)" "" "" "" 
		echo "bench: row $name failed, log: $log" >&2
	fi
	return 0
}
