# cli.sh - what a user of xz and gzip expects of the three tools: --help and
# --version, one-line usage errors, a progress line only on a terminal and
# not with -q.

require_cmd partpack partpatch partinfo script

for tool in partpack partpatch partinfo; do
	check "$tool --help exits 0 and says Usage" bash -c "$tool --help | grep -q '^Usage: $tool'"
	check_eq "$tool --version" "$tool (partpack) $(sed -n 's/^#define PP_VERSION "\(.*\)"/\1/p' "$PP_SRCDIR/lib/partpack.h")" \
		"$($tool --version)"
	check_fails "$tool --no-such-option: status 2, one line" 2 $tool --no-such-option x
	case $CHECK_STDERR in
	"$tool: "*"--help"*) ok "... it names the tool and points to --help" ;;
	*) not_ok "... it names the tool and points to --help" "$CHECK_STDERR" ;;
	esac
done
check_fails "partpack -o without its argument: status 2" 2 partpack -o
check_fails "partinfo without an archive: status 2" 2 partinfo
check_fails "partpatch without --offset or --partition: status 2" 2 partpatch x.xz

# The line is drawn after the first block and then at most 4 times a second.
head -c 8M /dev/urandom | base64 >img
script -qec "partpack -1 -B 1MiB -o tty.xz img" /dev/null >tty.out </dev/null
if grep -aq 'partpack: packing: .*B (.*%), .*B/s' tty.out; then
	ok "a progress line on a terminal (bytes, %, rate, ETA)"
else
	not_ok "a progress line on a terminal" "$(tr '\r' '\n' <tty.out | tail -3)"
fi
script -qec "partpack -q -1 -B 1MiB -o quiet.xz img" /dev/null >quiet.out </dev/null
check_eq "none with -q" "" "$(cat quiet.out)"
partpack -1 -B 1MiB -o pipe.xz img 2>pipe.err
check_eq "none when stderr is not a terminal" "" "$(cat pipe.err)"
check_cmp "the progress line does not change the output" tty.xz pipe.xz
