# p2p dma-buf for Linux 6.12: build, lab and tests. See README.md.
#
#   make check [T=substring]  build everything, boot the lab, run all tests
#   make demo                 build, boot the lab, show the P2P setup
#   make tree | kernel | kernel-nmn | userspace | tests | fetch | deps | clean

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD ?= $(TOP)/build
export BUILD T

CC := gcc

.PHONY: all deps fetch tree kernel kernel-nmn userspace tests check demo shell clean distclean

all: kernel userspace tests

deps:
	$(TOP)/scripts/deps

fetch:
	$(TOP)/scripts/fetch

tree:
	$(TOP)/scripts/mktree

kernel: tree
	$(TOP)/scripts/mkkernel

# The lab kernel with DMABUF_MOVE_NOTIFY off (configs/no-move-notify.config).
NMN_KBUILD := $(BUILD)/kbuild-nmn
export NMN_KBUILD
kernel-nmn: tree
	KBUILD_OUT=$(NMN_KBUILD) \
	CONFIG_FRAGMENTS="configs/lab.config configs/debug.config configs/no-move-notify.config" \
		$(TOP)/scripts/mkkernel

userspace:
	$(TOP)/scripts/mkuserspace

include $(TOP)/tests/Makefile

$(BUILD)/kbuild/.headers-stamp:
	$(TOP)/scripts/mktree
	$(TOP)/scripts/mkkernel

tests: | kernel

check: kernel kernel-nmn userspace tests tests-nmn
	$(TOP)/tests/check

demo: kernel userspace tests
	$(TOP)/lab/demo

shell: kernel
	$(TOP)/lab/run --shell

clean:
	rm -rf $(BUILD)/kbuild $(BUILD)/kbuild-nmn $(BUILD)/tests $(BUILD)/lab

distclean:
	rm -rf $(BUILD)
