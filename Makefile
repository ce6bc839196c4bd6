# p2p dma-buf for Linux 6.12: build, lab and tests. See README.md.
#
#   make check [T=substring]  build everything, boot the lab, run all tests
#   make demo                 build, boot the lab, show the P2P setup
#   make tree | kernel | userspace | tests | fetch | deps | clean

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD ?= $(TOP)/build
export BUILD T

CC := gcc

.PHONY: all deps fetch tree kernel userspace tests check demo shell clean distclean

all: kernel userspace tests

deps:
	$(TOP)/scripts/deps

fetch:
	$(TOP)/scripts/fetch

tree:
	$(TOP)/scripts/mktree

kernel: tree
	$(TOP)/scripts/mkkernel

userspace:
	$(TOP)/scripts/mkuserspace

include $(TOP)/tests/Makefile

$(BUILD)/kbuild/.headers-stamp:
	$(TOP)/scripts/mktree
	$(TOP)/scripts/mkkernel

tests: | kernel

check: kernel userspace tests
	$(TOP)/tests/check

demo: kernel userspace tests
	$(TOP)/lab/demo

shell: kernel
	$(TOP)/lab/run --shell

clean:
	rm -rf $(BUILD)/kbuild $(BUILD)/tests $(BUILD)/lab

distclean:
	rm -rf $(BUILD)
