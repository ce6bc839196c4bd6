#!/bin/bash
# Self-test of kbuild_progress (scripts/lib.sh), which turns the cold
# kernel build's output into a progress line a minute: warnings must still
# show, the count and the share must be right, and an incremental build
# must not become the scale of the next one, nor a failed one. Output is TAP.
. "$(dirname "$0")/../../scripts/lib.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export KBUILD_PROGRESS_SECS=3600
. "$(dirname "$0")/tap.bash"
echo "TAP version 13"
echo "1..7"

build() { # build N: N quiet lines, make's noise and one warning
	local i
	echo "make: Entering directory '/x'"
	echo "make[1]: Entering directory '/x'"
	for ((i = 0; i < $1; i++)); do echo "  CC      f$i.o"; done
	echo "x.c:1:2: warning: unused"
	echo "make[1]: Leaving directory '/x'"
	[ "${2:-}" = failed ] || echo "Kernel: arch/x86/boot/bzImage is ready  (#1)"
}

err=$(build 2 failed | kbuild_progress "$dir" 2>&1 >/dev/null)
[ "$err" = "x.c:1:2: warning: unused" ]
ok $? only_warnings_pass_through "stderr: $err"

build 2 | kbuild_progress "$dir" 2>/dev/null
[ ! -e "$dir/.p2p-build-steps" ]
ok $? a_relink_sets_no_scale "steps file: $(cat "$dir/.p2p-build-steps" 2>&1)"

build 300 failed | kbuild_progress "$dir" 2>/dev/null
[ ! -e "$dir/.p2p-build-steps" ]
ok $? a_failed_build_sets_no_scale "steps file: $(cat "$dir/.p2p-build-steps" 2>&1)"

build 300 | kbuild_progress "$dir" 2>/dev/null
[ "$(cat "$dir/.p2p-build-steps")" = 300 ]
ok $? a_full_build_sets_the_scale "steps file: $(cat "$dir/.p2p-build-steps" 2>&1)"

echo 400 > "$dir/.p2p-build-steps"
err=$( (build 99; sleep 1.2; build 1) |
	KBUILD_PROGRESS_SECS=1 kbuild_progress "$dir" 2>&1 >/dev/null)
[[ $err == *"kernel: 100 build steps of about 400 (25%)"* ]]
ok $? progress_with_share "stderr: $err"

echo 10 > "$dir/.p2p-build-steps"
err=$(printf '  CC      a.o\n' | kbuild_progress "$dir" 2>&1 >/dev/null)
[ -z "$err" ]
ok $? quiet_when_quick "stderr: $err"

[ "$(cat "$dir/.p2p-build-steps")" = 10 ]
ok $? an_incremental_build_keeps_the_scale "steps file: $(cat "$dir/.p2p-build-steps")"
exit $failed
