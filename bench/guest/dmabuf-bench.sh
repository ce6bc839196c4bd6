#!/bin/bash
# Guest half of bench/export-cost and bench/scaling: load the test module,
# run build/bench/tools/dmabuf-bench with each argument list (separated by
# "--"), output into $LAB_RUN/bench.out.
set -euo pipefail
BUILD=$LAB_TOP/build
mod=p2p_dmabuf_test
# The modules built for the booted kernel (bench/lib/lab.py: LAB_MODULES).
[ -d "/sys/module/$mod" ] || insmod "${LAB_MODULES:-$BUILD/tests/modules}/$mod.ko"
args=()
run() {
	echo "# dmabuf-bench ${args[*]}" >> "$LAB_RUN/bench.out"
	"$BUILD/bench/tools/dmabuf-bench" "${args[@]}" | tee -a "$LAB_RUN/bench.out"
	args=()
}
echo "kernel release=$(uname -r) date=$(date +%F)" > "$LAB_RUN/bench.out"
for a in "$@"; do
	if [ "$a" = -- ]; then run; else args+=("$a"); fi
done
[ ${#args[@]} = 0 ] || run
