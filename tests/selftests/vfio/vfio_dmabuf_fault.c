// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection into vfio-pci's dma-buf paths: for N = 1, 2, ... the N-th
 * allocation of the test thread fails (lib/finj.h) while it exports a
 * multi-range dma-buf of ivshmem BAR 2 (VFIO_DEVICE_FEATURE_DMA_BUF), or
 * imports and vmaps one. Each attempt succeeds (the fault was not reached,
 * or was absorbed) or fails cleanly: ENOMEM, or EBUSY where the fault hits
 * the claim of the BAR (the PCI core reports a failed request_region() so).
 * Then the same works without a fault. At the end no fd is left, and the
 * device closes and vfio-pci unbinds from it: a registration reference
 * leaked by a failed export would block that (a hung task, which panics
 * the lab). kmemleak runs after all tests (tests/guest-run).
 */
#include "kselftest_harness.h"
#include "vfio_dmabuf.h"
#include "finj.h"

#define FAULT_MAX_N	1000

static const struct vfio_region_dma_range ranges[] = {
	{ .offset = 0x000000, .length = 0x001000 },
	{ .offset = 0x400000, .length = 0x400000 },
	{ .offset = 0x100000, .length = 0x003000 },
	{ .offset = 0xc00000, .length = 0x002000 },
};
#define NR_RANGES (sizeof(ranges) / sizeof(ranges[0]))

FIXTURE(fault) {
	struct vdb_lab l;
	struct finj fi;
	int fds;			/* open fds at set-up */
};

FIXTURE_SETUP(fault)
{
	int err;

	ASSERT_EQ(0, vdb_lab_setup(&self->l, false));
	err = finj_setup(&self->fi);
	if (err) {
		vdb_lab_restore(&self->l);
		ASSERT_EQ(0, err) TH_LOG("fault injection: %s (CONFIG_FAULT_INJECTION?)",
					 strerror(-err));
	}
	self->fds = lab_fd_state();
}

FIXTURE_TEARDOWN(fault)
{
	EXPECT_EQ(0, finj_teardown(&self->fi));
	vdb_lab_restore(&self->l);
}

/* Nothing left behind: no fd, and the device closes and unbinds. */
static void check_nothing_left(struct __test_metadata *_metadata, FIXTURE_DATA(fault) *self)
{
	struct vdb_lab *l = &self->l;

	EXPECT_EQ(self->fds, lab_fd_state());
	lab_vfio_close(&l->v);
	EXPECT_EQ(0, lab_pci_bind(l->lab.ivshmem, P2PT_EXPORTER_DRIVER));
}

TEST_F_TIMEOUT(fault, export, 300)
{
	struct vdb_lab *l = &self->l;
	struct finj_sweep s;
	int fd;

	finj_sweep_start(&s, &self->fi, FAULT_MAX_N);
	while (finj_sweep_next(&s)) {
		fd = vdb_export(l->v.device, IVSHMEM_BAR, ranges, NR_RANGES);
		ASSERT_EQ(0, finj_sweep_end(&s, fd < 0 ? fd : 0));
		if (fd >= 0) {
			close(fd);
			continue;
		}
		EXPECT_EQ(0, s.left) TH_LOG("N=%d: %s without a fault", s.n, strerror(-fd));
		EXPECT_TRUE(fd == -ENOMEM || fd == -EBUSY)
			TH_LOG("N=%d: export failed with %s", s.n, strerror(-fd));
		fd = vdb_export(l->v.device, IVSHMEM_BAR, ranges, NR_RANGES);
		EXPECT_LE(0, fd) TH_LOG("N=%d: export after the fault: %s", s.n, strerror(-fd));
		if (fd >= 0)
			close(fd);
	}
	ASSERT_EQ(0, s.err);
	TH_LOG("export: %d fault points: %d failures, %d absorbed", s.points, s.failed,
	       s.absorbed);
	EXPECT_TRUE(s.done);
	EXPECT_LT(0, s.failed);
	check_nothing_left(_metadata, self);
}

/* Import and CPU mapping (vmap) of a dma-buf under faults. */
TEST_F_TIMEOUT(fault, import_and_vmap, 300)
{
	struct vdb_lab *l = &self->l;
	struct finj_sweep s;
	int fd, h, ret;

	fd = vdb_export(l->v.device, IVSHMEM_BAR, ranges, NR_RANGES);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	finj_sweep_start(&s, &self->fi, FAULT_MAX_N);
	while (finj_sweep_next(&s)) {
		h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
		ret = h > 0 ? p2pt_vmap(l->lab.dev, h) : h;
		ASSERT_EQ(0, finj_sweep_end(&s, ret));
		if (!ret) {
			vdb_check_cpu_to_peer(_metadata, l, h, 0x1000, 0x400000, 256);
			EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
			continue;
		}
		EXPECT_EQ(0, s.left) TH_LOG("N=%d: %s without a fault", s.n, strerror(-ret));
		EXPECT_EQ(-ENOMEM, ret) TH_LOG("N=%d: %s failed with %s", s.n,
					       h > 0 ? "vmap" : "import", strerror(-ret));
		if (h > 0) {
			/* The failed vmap left nothing behind; the next one works. */
			vdb_check_status(_metadata, l, h, 0, 0);
			EXPECT_EQ(0, p2pt_vmap(l->lab.dev, h)) TH_LOG("N=%d", s.n);
			EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
		}
	}
	ASSERT_EQ(0, s.err);
	TH_LOG("import and vmap: %d fault points: %d failures, %d absorbed", s.points,
	       s.failed, s.absorbed);
	EXPECT_TRUE(s.done);
	EXPECT_LT(0, s.failed);
	/* A revoke does not wait for a vmap that a failure left counted. */
	EXPECT_EQ(0, vdb_memory(&l->v, false));
	EXPECT_EQ(0, vdb_memory(&l->v, true));
	close(fd);
	check_nothing_left(_metadata, self);
}

TEST_HARNESS_MAIN
