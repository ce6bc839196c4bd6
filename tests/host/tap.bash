# TAP helpers for the host self-tests written in bash. Source it; not a
# test itself (not executable: tests/check runs only executables here).
# shellcheck shell=bash
n=0 failed=0
# ok STATUS NAME [DIAG]: one result, "ok" when STATUS is 0; DIAG lines go
# before a failure as TAP comments. Exit with $failed at the end.
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n $2"
	else
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
		echo "not ok $n $2"
		failed=1
	fi
}
