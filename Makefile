# p2p dma-buf for Linux 6.12: build, lab and tests. See README.md.
#
#   make check [T=substring]  build everything, boot the lab, run all tests
#   make demo                 build, boot the lab, show P2P RDMA into a BAR
#   make bench-<name>         run one benchmark (bench/README.md)
#   make tree | kernel | kernel-nmn | kernel-bench | userspace | perftest-rdma44 | tests | fetch | deps | clean
#
# Every build starts with scripts/deps (the Debian packages; a second of
# dpkg queries when they are there, apt-get when not), so make demo and
# make check work as the first command on a fresh Debian 12 machine.
# NO_DEPS=1 skips it.

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD ?= $(TOP)/build
export BUILD T

CC := gcc

.PHONY: all deps fetch tree kernel kernel-nmn kernel-bench userspace perftest-rdma44 tests check demo shell clean distclean

all: kernel userspace tests

deps:
ifndef NO_DEPS
	$(TOP)/scripts/deps
endif

fetch: deps
	$(TOP)/scripts/fetch

tree: deps
	$(TOP)/scripts/mktree

kernel: tree
	$(TOP)/scripts/mkkernel

# The lab kernel with DMABUF_MOVE_NOTIFY off (configs/no-move-notify.config),
# first built as a copy of the lab kernel's build (scripts/mkkernel:
# KBUILD_SEED), which only recompiles what the option touches.
NMN_KBUILD := $(BUILD)/kbuild-nmn
export NMN_KBUILD
kernel-nmn: kernel
	KBUILD_OUT=$(NMN_KBUILD) KBUILD_SEED=$(BUILD)/kbuild \
	CONFIG_FRAGMENTS="configs/lab.config configs/debug.config configs/no-move-notify.config" \
		$(TOP)/scripts/mkkernel

# The benchmark kernel (configs/bench.config): the lab configuration with
# the debug checkers off. Its own build directory; nearly every object
# differs from the lab kernel's (KASAN), so it is not seeded from it.
BENCH_KBUILD := $(BUILD)/kbuild-bench
export BENCH_KBUILD
kernel-bench: kernel
	KBUILD_OUT=$(BENCH_KBUILD) \
	CONFIG_FRAGMENTS="configs/lab.config configs/bench.config" \
		$(TOP)/scripts/mkkernel

userspace: deps
	$(TOP)/scripts/mkuserspace

# Compile the patched perftest against Debian 12's own rdma-core 44 (and as
# if without ibv_reg_dmabuf_mr), out of tree; nothing is installed.
perftest-rdma44: deps
	$(TOP)/scripts/mkuserspace rdma44

include $(TOP)/tests/Makefile
include $(TOP)/bench/Makefile

$(BUILD)/kbuild/.headers-stamp:
	$(TOP)/scripts/mktree
	$(TOP)/scripts/mkkernel

tests: | kernel

check: kernel kernel-nmn userspace tests tests-nmn perftest-rdma44
	$(TOP)/tests/check

demo: kernel userspace tests
	$(TOP)/lab/demo

shell: kernel
	$(TOP)/lab/run --shell

clean:
	rm -rf $(BUILD)/kbuild $(BUILD)/kbuild-nmn $(BUILD)/kbuild-bench $(BUILD)/tests $(BUILD)/bench $(BUILD)/lab

distclean:
	rm -rf $(BUILD)
