// SPDX-License-Identifier: GPL-2.0
/*
 * cpucount: a QEMU TCG plugin that counts what the guest's CPUs do, for
 * bench/datapath: instructions executed, and bytes loaded and stored,
 * split by where they go (guest RAM, or any other guest-physical address:
 * device memory, the BARs) and by who executes them (the kernel: code at
 * addresses with bit 63 set; user space: the others).
 *
 *   -plugin build/bench/plugin/libcpucount.so,out=FILE,ram=BYTES
 *
 * BYTES is the guest's RAM size (lab/run: -m). QEMU 7.2 gives a plugin the
 * address of a RAM access as an offset in its own RAM space, not the
 * guest-physical address: it tells the guest's RAM from the BARs' memory
 * backends only when the RAM is the first block there, which lab/run sees
 * to (memory-backend-ram pc.ram, created first); MMIO is always device
 * memory. The guest asks
 * for a reading by executing the marker instruction "xchg %bx,%bx" (66 87
 * db, a no-op on any x86 CPU; bench/tools/cpucount-mark): each one appends
 * "mark" and, for the kernel then user space, "INSNS RAM_LOADED RAM_STORED
 * DEV_LOADED DEV_STORED": the totals since the start, to FILE. Differences
 * of readings are the counts between marks.
 *
 * The counters are plain globals: the plugin needs QEMU's single-threaded
 * TCG (lab/run's default), where only one vCPU runs at a time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static const uint8_t marker[] = { 0x66, 0x87, 0xdb };

enum { C_INSNS, C_RAM_LD, C_RAM_ST, C_DEV_LD, C_DEV_ST, NR_C };

/* [0]: the kernel, [1]: user space */
static uint64_t count[2][NR_C];
static uint64_t ram_size;
static FILE *out;

static void mem_cb(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr,
		   void *udata)
{
	struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
	uint64_t *c = udata;
	bool dev = !hw || qemu_plugin_hwaddr_is_io(hw) ||
		   qemu_plugin_hwaddr_phys_addr(hw) >= ram_size;

	c[qemu_plugin_mem_is_store(info) ? (dev ? C_DEV_ST : C_RAM_ST) :
	  (dev ? C_DEV_LD : C_RAM_LD)] += 1ULL << qemu_plugin_mem_size_shift(info);
}

static void mark_cb(unsigned int vcpu, void *udata)
{
	int who, i;

	fputs("mark", out);
	for (who = 0; who < 2; who++)
		for (i = 0; i < NR_C; i++)
			fprintf(out, " %" PRIu64, count[who][i]);
	fputc('\n', out);
	fflush(out);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t i, n = qemu_plugin_tb_n_insns(tb);
	uint64_t *c = count[!(qemu_plugin_tb_vaddr(tb) >> 63)];

	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &c[C_INSNS], n);
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

		qemu_plugin_register_vcpu_mem_cb(insn, mem_cb, QEMU_PLUGIN_CB_NO_REGS,
						 QEMU_PLUGIN_MEM_RW, c);
		if (qemu_plugin_insn_size(insn) == sizeof(marker) &&
		    !memcmp(qemu_plugin_insn_data(insn), marker, sizeof(marker)))
			qemu_plugin_register_vcpu_insn_exec_cb(insn, mark_cb,
							       QEMU_PLUGIN_CB_NO_REGS, NULL);
	}
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
	fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
					   int argc, char **argv)
{
	const char *path = NULL;
	int i;

	for (i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
		else if (!strncmp(argv[i], "ram=", 4))
			ram_size = strtoull(argv[i] + 4, NULL, 0);
		else {
			fprintf(stderr, "cpucount: unknown argument %s\n", argv[i]);
			return -1;
		}
	}
	if (!path || !ram_size) {
		fprintf(stderr, "cpucount: needs out=FILE,ram=BYTES\n");
		return -1;
	}
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
