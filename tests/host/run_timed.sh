#!/bin/bash
# Self-test of tests/guest-run's RUN_TIMED, which runs each kselftest
# program in a session of its own: the program's exit status must come
# back, a program past its timeout must be stopped with status 124, and
# whatever a program leaves behind in its session (a helper that outlived
# a failed case, a hung case in a process group of its own) must be killed,
# not waited for by the pipe that carries the output. Output is TAP.
guest_run=$(dirname "$0")/../guest-run
RUN_TIMED=$(sed -n "/^RUN_TIMED='/,/^exit \$rc'\$/p" "$guest_run" |
	sed "1s/^RUN_TIMED='//; \$s/'\$//")
dir=$(mktemp -d)
trap 'pkill -KILL -f "$dir/" 2>/dev/null; rm -rf "$dir"' EXIT
. "$(dirname "$0")/tap.bash"
prog() { # prog NAME BODY: an executable script in $dir
	printf '#!/bin/bash\n%s\n' "$2" > "$dir/$1"
	chmod +x "$dir/$1"
}
# run TIMEOUT NAME: as guest-run does; sets out, rc and took (seconds).
run() {
	local t0=$SECONDS
	out=$(setsid -w bash -c "$RUN_TIMED" guest-run "$1" "$dir/$2" 2>&1 | cat;
	      exit "${PIPESTATUS[0]}")
	rc=$? took=$((SECONDS - t0))
}
echo "TAP version 13"
echo "1..4"

[ -n "$RUN_TIMED" ]
ok $? "RUN_TIMED found in tests/guest-run"

prog plain 'echo fine; exit 3'
run 20 plain
[ "$rc" = 3 ] && [ "$out" = fine ]
ok $? "the program's status and output come back" "rc $rc, output '$out'"

prog leaver "echo start; (exec -a $dir/leaver-child sleep 300) & exit 1"
run 60 leaver
[ "$rc" = 1 ] && [ "$took" -lt 20 ] && ! pgrep -f "$dir/leaver-child" > /dev/null
ok $? "a process left behind holding the output is killed, not waited for" \
	"rc $rc after $took s"

prog hang "echo hang; set -m; (exec -a $dir/hang-child sleep 300) & wait"
run 2 hang
[ "$rc" = 124 ] && [ "$took" -lt 20 ] && ! pgrep -f "$dir/hang-child" > /dev/null
ok $? "a hang is stopped at the timeout with 124, its process groups killed" \
	"rc $rc after $took s"
exit $failed
