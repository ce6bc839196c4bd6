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

# make in the kernel tree with the lab build's fixed arguments. Any other
# CC or LOCALVERSION would make Kbuild reconfigure and rebuild everything.
kmake() {
	CCACHE_BASEDIR=$TOP CCACHE_NOHASHDIR=1 \
	make -C "$BUILD/linux" O="$KBUILD_OUT" ARCH=x86_64 \
		CC="ccache gcc" HOSTCC="ccache gcc" LOCALVERSION= \
		KBUILD_BUILD_USER=p2p KBUILD_BUILD_HOST=lab "$@"
}
