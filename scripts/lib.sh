# Common shell definitions for the project's scripts. Source it.
# shellcheck shell=bash

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../PINS
. "$TOP/PINS"

BUILD=${BUILD:-$TOP/build}
# The kernel build directory: the lab kernel, or another configuration of
# the same tree (make kernel-nmn).
KBUILD_OUT=${KBUILD_OUT:-$BUILD/kbuild}
CACHE=${P2P_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/p2p-dmabuf}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

sha256_ok() { # file sha256
	[ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

LINUX_DEB=$CACHE/${LINUX_PKG}_${LINUX_VERSION/:/%3a}_all.deb
RDMA_CORE_TAR=$CACHE/${RDMA_CORE_PKG}_${RDMA_CORE_UPSTREAM}.orig.tar.gz
PERFTEST_TAR=$CACHE/${PERFTEST_PKG}_${PERFTEST_UPSTREAM}.orig.tar.gz

# ccache, for every compile of the project (kernel, modules, userspace):
# paths under the checkout are hashed relative to it, so a clone at another
# path hits the same entries; depend mode hashes the headers the compiler
# lists (-MD; Kbuild, cmake and automake all ask for it) instead of running
# the preprocessor once more for each miss, which makes a cold kernel build
# about a sixth faster.
export CCACHE_BASEDIR=$TOP CCACHE_NOHASHDIR=1 CCACHE_DEPEND=1

# make in the kernel tree with the lab build's fixed arguments. Any other
# CC or LOCALVERSION would make Kbuild reconfigure and rebuild everything.
kmake() {
	make -C "$BUILD/linux" O="$KBUILD_OUT" ARCH=x86_64 \
		CC="ccache gcc" HOSTCC="ccache gcc" LOCALVERSION= \
		KBUILD_BUILD_USER=p2p KBUILD_BUILD_HOST=lab "$@"
}

# kbuild_progress DIR: read Kbuild's output on stdin (make without -s);
# count its quiet command lines ("  CC      x.o") and show the count every
# KBUILD_PROGRESS_SECS (default 60) seconds, as a share of the last full
# build's count (kept in DIR/.p2p-build-steps, written when Kbuild says
# the kernel is ready) when there is one; make's directory lines are
# dropped, every other line (warnings, errors) goes to stderr as it came.
kbuild_progress() {
	local dir=$1 line n=0 start=$SECONDS every=${KBUILD_PROGRESS_SECS:-60} next total of=
	local built=
	next=$((SECONDS + every))
	total=$(cat "$dir/.p2p-build-steps" 2>/dev/null || echo 0)
	while IFS= read -r line; do
		case $line in
		"  "[A-Z]*)
			n=$((n + 1))
			[ "$SECONDS" -lt "$next" ] && continue
			[ "$total" -gt 0 ] && of=" of about $total ($((100 * n / total))%)"
			log "kernel: $n build steps$of, $((SECONDS - start)) s"
			next=$((SECONDS + every))
			;;
		"make: "*"ing directory"* | "make["*"]: "*"ing directory"*) ;;
		*)
			case $line in "Kernel: "*" is ready"*) built=1 ;; esac
			printf '%s\n' "$line" >&2
			;;
		esac
	done
	# A build from scratch that got to the end (not a relink: 100 steps
	# at least) sets the scale for the next one.
	[ -z "$built" ] || [ "$n" -lt 100 ] || [ "$n" -lt $((total / 2)) ] ||
		echo "$n" > "$dir/.p2p-build-steps"
}
