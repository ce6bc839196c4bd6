// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection into the import and map paths of MMIO dma-bufs.
 *
 * import_and_map, export: for N = 1, 2, ... the N-th allocation of the
 * test thread fails (/proc/thread-self/fail-nth with failslab and
 * fail_page_alloc, sleeping allocations included) while it imports and
 * maps a multi-range dma-buf (or exports one). Each attempt either
 * succeeds (the fault was not reached, or was absorbed) or fails with
 * ENOMEM/EIO; then the same operations without a fault work and give the
 * same mapping, and the exporter counts no leftover mapping or pin.
 *
 * iova_failure_mid_list: fail-nth fails one allocation, and one failed IOVA
 * allocation is retried by the IOVA allocator (and the page tables of a
 * reused IOVA range already exist), so fail-nth never makes
 * dma_map_resource() fail. This test fails the IOVA allocations of one
 * range in the middle of the list instead, to exercise the helper's unwind.
 *
 * Nothing may leak: kmemleak is read by tests/guest-run after all tests,
 * and DMA-API debugging checks the importer's mappings when it is unbound.
 *
 *   variant "switch":      edu, BUS_ADDR.
 *   variant "host_bridge": edu2, THRU_HOST_BRIDGE (AMD CPU model), IOVAs
 *                          from dma_map_resource() with the IOMMU on.
 */
#include <sched.h>
#include "kselftest_harness.h"
#include "p2pt_test.h"
#include "finj.h"

#define FAULT_MAX_N	1000

/* The buffer of the fail-nth tests. */
static const struct p2pt_range ranges[] = {
	{ .offset = 0x000000, .length = 0x001000 },
	{ .offset = 0x400000, .length = 0x400000 },	/* 4 MiB: no IOVA cache */
	{ .offset = 0x100000, .length = 0x003000 },
	{ .offset = 0xc00000, .length = 0x002000 },
};
#define NR_RANGES (sizeof(ranges) / sizeof(ranges[0]))

FIXTURE(fault) {
	struct p2pt_lab lab;
	struct finj fi;
	const char *importer;
	unsigned int route;
};

FIXTURE_VARIANT(fault) {
	int importer;			/* 1: edu, 2: edu2 */
};

FIXTURE_VARIANT_ADD(fault, switch) {
	.importer = 1,
};

FIXTURE_VARIANT_ADD(fault, host_bridge) {
	.importer = 2,
};

FIXTURE_SETUP(fault)
{
	int err;

	ASSERT_EQ(0, p2pt_lab_setup(&self->lab));
	self->importer = variant->importer == 1 ? self->lab.edu : self->lab.edu2;
	self->route = p2pt_lab_route(&self->lab, self->importer);
	err = finj_setup(&self->fi);
	if (err) {
		p2pt_lab_restore(&self->lab);
		ASSERT_EQ(0, err) TH_LOG("fault injection: %s (CONFIG_FAULT_INJECTION?)",
					 strerror(-err));
	}
	TH_LOG("importer %s, route %s, IOMMU %s", self->importer,
	       p2pt_route_name(self->route), self->lab.iommu ? "on" : "off");
}

FIXTURE_TEARDOWN(fault)
{
	EXPECT_EQ(0, finj_teardown(&self->fi));
	EXPECT_EQ(0, p2pt_lab_restore(&self->lab));
}

static bool same_mapping(unsigned int route, const struct p2pt_map *a,
			 const struct p2pt_map *b)
{
	unsigned int i;

	if (a->nents != b->nents || a->route != b->route)
		return false;
	for (i = 0; i < a->nr_entries; i++) {
		if (a->entries[i].len != b->entries[i].len)
			return false;
		/* Bus addresses are fixed; IOVAs may differ. */
		if (route == P2PT_ROUTE_BUS_ADDR &&
		    a->entries[i].dma_addr != b->entries[i].dma_addr)
			return false;
	}
	return true;
}

static bool clean_errno(int err)
{
	return err == -ENOMEM || err == -EIO;
}

TEST_F_TIMEOUT(fault, import_and_map, 300)
{
	struct p2pt_lab *lab = &self->lab;
	int n, fd, h, ret, leak_n = 0, import_fail = 0, map_fail = 0;
	struct finj_sweep s;
	struct p2pt_map ref, m;
	struct p2pt_status st;

	if (self->route == P2PT_ROUTE_NOT_SUPPORTED)
		SKIP(return, "no P2P route (NOT_SUPPORTED): nothing maps");
	fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, ranges, NR_RANGES, NULL);
	ASSERT_LE(0, fd);

	/* The reference mapping, without faults. */
	h = p2pt_import(lab->dev, self->importer, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &ref));
	ASSERT_EQ(NR_RANGES, ref.nents);
	ASSERT_EQ(0, p2pt_release(lab->dev, h));

	finj_sweep_start(&s, &self->fi, FAULT_MAX_N);
	while (finj_sweep_next(&s)) {
		/* Nothing but the two ioctls between arm and disarm. */
		h = p2pt_import(lab->dev, self->importer, fd, P2PT_IMPORT_DYNAMIC, 0);
		ret = h > 0 ? p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m) : h;
		ASSERT_EQ(0, finj_sweep_end(&s, ret));
		n = s.n;

		if (!ret) {
			EXPECT_TRUE(same_mapping(self->route, &ref, &m)) TH_LOG("N=%d", n);
			EXPECT_EQ(0, p2pt_release(lab->dev, h));
			if (!leak_n && p2pt_lab_new_resources(lab, self->importer) > 0)
				leak_n = n;
			continue;
		}
		/* A failure must come from the injected fault, cleanly. */
		EXPECT_EQ(0, s.left) TH_LOG("N=%d: %s without a fault", n, strerror(-ret));
		EXPECT_TRUE(clean_errno(ret)) TH_LOG("N=%d: %s failed with %s", n,
						     h > 0 ? "map" : "import", strerror(-ret));
		if (h <= 0) {
			import_fail++;
			h = p2pt_import(lab->dev, self->importer, fd, P2PT_IMPORT_DYNAMIC, 0);
			ASSERT_LT(0, h) TH_LOG("N=%d: import after the fault: %s", n, strerror(-h));
		} else {
			map_fail++;
			/* The failed map left nothing mapped in the exporter. */
			ASSERT_EQ(0, p2pt_status(lab->dev, h, &st));
			EXPECT_EQ(0, st.flags) TH_LOG("N=%d", n);
			EXPECT_EQ(0, st.exporter_maps) TH_LOG("N=%d", n);
			EXPECT_EQ(0, st.exporter_pins) TH_LOG("N=%d", n);
		}
		ret = p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
		EXPECT_EQ(0, ret) TH_LOG("N=%d: map after the fault: %s", n, strerror(-ret));
		if (!ret) {
			EXPECT_TRUE(same_mapping(self->route, &ref, &m)) TH_LOG("N=%d", n);
			ASSERT_EQ(0, p2pt_status(lab->dev, h, &st));
			EXPECT_EQ(1, st.exporter_maps) TH_LOG("N=%d", n);
		}
		EXPECT_EQ(0, p2pt_release(lab->dev, h));
		/* Released: nothing is left mapped for the importer. */
		if (!leak_n && p2pt_lab_new_resources(lab, self->importer) > 0)
			leak_n = n;
	}
	ASSERT_EQ(0, s.err);
	TH_LOG("%s: %d fault points: %d import failures, %d map failures, %d absorbed",
	       p2pt_route_name(self->route), s.points, import_fail, map_fail, s.absorbed);
	EXPECT_EQ(0, leak_n) TH_LOG("dma_map_resource() mappings left after N=%d", leak_n);
	p2pt_check_no_resource_maps(_metadata, lab, self->importer);
	EXPECT_TRUE(s.done) TH_LOG("still failing after %d fault points", FAULT_MAX_N);
	EXPECT_LT(0, import_fail);
	EXPECT_LT(0, map_fail);
	close(fd);
}

/*
 * A dma_map_resource() failing in the middle of the range list: the helper
 * must undo the mappings it made. Only IOVA allocations fail (failslab with
 * a stack filter on alloc_iova(), this task only, a few times in a row since
 * alloc_iova_fast() retries); the 4 MiB range is too big for the IOVA
 * caches, the small ones come from them, so the failure hits the 4 MiB
 * range after the ranges before it were mapped. Evidence of the unwind: the
 * map fails with ENOMEM and leaves nothing mapped, the next map gets the
 * IOVAs back that the failed one had taken (the caches are LIFO on one
 * CPU), and DMA-API debugging finds no leaked mapping when edu2 is unbound.
 */
TEST_F_TIMEOUT(fault, iova_failure_mid_list, 300)
{
	static const struct p2pt_range layouts[2][4] = {
		{ { 0x000000, 0x1000 }, { 0x400000, 0x400000 },
		  { 0x100000, 0x3000 }, { 0xc00000, 0x2000 } },
		{ { 0x000000, 0x1000 }, { 0x100000, 0x3000 },
		  { 0xc00000, 0x2000 }, { 0x400000, 0x400000 } },
	};
	static const unsigned int big[2] = { 1, 3 };	/* the 4 MiB range */
	struct p2pt_lab *lab = &self->lab;
	unsigned long long start, end;
	struct p2pt_map ref, m;
	char rs[32], re[32];
	int l, fd, h, ret, fail;
	unsigned int i;
	cpu_set_t cpus;
	long times;

	if (self->route != P2PT_ROUTE_THRU_HOST_BRIDGE || !lab->iommu)
		SKIP(return, "needs THRU_HOST_BRIDGE with the IOMMU (IOVAs)");
	ASSERT_EQ(0, finj_kernel_text("alloc_iova", false, &start, &end));
	snprintf(rs, sizeof(rs), "%llu", start);
	snprintf(re, sizeof(re), "%llu", end);
	/* One CPU: the per-CPU IOVA caches give back what was freed last. */
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpus), &cpus));
	fail = open("/proc/self/make-it-fail", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fail);
	ASSERT_EQ(0, finj_set_attr(&self->fi, "failslab/require-start", rs));
	ASSERT_EQ(0, finj_set_attr(&self->fi, "failslab/require-end", re));
	ASSERT_EQ(0, finj_set_attr(&self->fi, "failslab/task-filter", "Y"));
	ASSERT_EQ(0, finj_set_attr(&self->fi, "failslab/interval", "1"));
	ASSERT_EQ(0, finj_set_attr(&self->fi, "failslab/space", "0"));

	for (l = 0; l < 2; l++) {
		const struct p2pt_range *r = layouts[l];

		fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, r, 4, NULL);
		ASSERT_LE(0, fd);
		h = p2pt_import(lab->dev, self->importer, fd, P2PT_IMPORT_DYNAMIC, 0);
		ASSERT_LT(0, h);
		ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &ref));
		ASSERT_EQ(4, ref.nents);
		ASSERT_EQ(0, p2pt_unmap(lab->dev, h));

		/* 32-bit try, full-range try, retry after flushing the caches. */
		ASSERT_EQ(0, finj_set_attr(&self->fi, "failslab/times", "3"));
		ASSERT_EQ(0, finj_set_attr(&self->fi, "failslab/probability", "100"));
		ASSERT_EQ(1, write(fail, "1", 1));
		ret = p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
		ASSERT_EQ(1, write(fail, "0", 1));
		ASSERT_EQ(0, finj_set_attr(&self->fi, "failslab/probability", "0"));
		times = finj_read_long(DEBUGFS "/failslab/times");

		EXPECT_EQ(-ENOMEM, ret) TH_LOG("layout %d: map %s", l, strerror(-ret));
		EXPECT_GE(1, times) TH_LOG("layout %d: %ld of 3 IOVA faults not used", l, times);
		p2pt_check_status(_metadata, lab, h, 0, 0, 0, 0);
		/* The ranges mapped before the failure were unmapped. */
		p2pt_check_no_resource_maps(_metadata, lab, self->importer);

		ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
		ASSERT_EQ(4, m.nents);
		for (i = 0; i < 4; i++) {
			EXPECT_EQ(r[i].length, m.entries[i].len);
			if (i < big[l]) {
				EXPECT_EQ(ref.entries[i].dma_addr, m.entries[i].dma_addr)
					TH_LOG("layout %d: IOVA of range %u not given back", l, i);
			}
		}
		TH_LOG("layout %d: failed at range %u after %u mapped, IOVAs 0x%llx 0x%llx 0x%llx 0x%llx",
		       l, big[l], big[l], (unsigned long long)m.entries[0].dma_addr,
		       (unsigned long long)m.entries[1].dma_addr,
		       (unsigned long long)m.entries[2].dma_addr,
		       (unsigned long long)m.entries[3].dma_addr);
		EXPECT_EQ(0, p2pt_release(lab->dev, h));
		p2pt_check_no_resource_maps(_metadata, lab, self->importer);
		close(fd);
	}
	close(fail);
}

/* The same for creating the dma-buf. */
TEST_F_TIMEOUT(fault, export, 300)
{
	struct p2pt_lab *lab = &self->lab;
	struct finj_sweep s;
	int fd;

	finj_sweep_start(&s, &self->fi, FAULT_MAX_N);
	while (finj_sweep_next(&s)) {
		fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, ranges, NR_RANGES, NULL);
		ASSERT_EQ(0, finj_sweep_end(&s, fd < 0 ? fd : 0));
		if (fd >= 0) {
			close(fd);
			continue;
		}
		EXPECT_EQ(0, s.left) TH_LOG("N=%d: %s without a fault", s.n, strerror(-fd));
		EXPECT_TRUE(fd == -ENOMEM || fd == -ENFILE || fd == -EMFILE)
			TH_LOG("N=%d: export failed with %s", s.n, strerror(-fd));
		fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, ranges, NR_RANGES, NULL);
		EXPECT_LE(0, fd) TH_LOG("N=%d: export after the fault: %s", s.n, strerror(-fd));
		if (fd >= 0)
			close(fd);
	}
	ASSERT_EQ(0, s.err);
	TH_LOG("export: %d fault points: %d failures, %d absorbed", s.points, s.failed,
	       s.absorbed);
	EXPECT_TRUE(s.done);
	EXPECT_LT(0, s.failed);
}

TEST_HARNESS_MAIN
