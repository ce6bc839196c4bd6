// SPDX-License-Identifier: GPL-2.0
/*
 * P2PDMA routes through the dma-buf mapping helper, in the lab: a dma-buf
 * of ivshmem BAR 2 ranges (p2p_test_exporter) mapped for an edu device
 * (p2p_test_importer) and used by edu's DMA engine, bytes checked in the
 * host file behind the BAR.
 *
 *   variant "switch":      edu under the same PCIe switch as ivshmem (no
 *                          ACS): BUS_ADDR, DMA address = BAR bus address +
 *                          offset exactly.
 *   variant "host_bridge": edu2 behind another root port: THRU_HOST_BRIDGE
 *                          on an AMD Zen CPU model (IOVAs from
 *                          dma_map_resource() with the IOMMU on),
 *                          NOT_SUPPORTED (MAP fails with EINVAL) on Intel.
 *
 * QEMU sends every DMA through the emulated IOMMU, so BUS_ADDR DMA is run
 * only in boots without the IOMMU (lab/run --iommu off); with the IOMMU
 * the addresses are still checked.
 */
#include "kselftest_harness.h"
#include "p2pt_test.h"

FIXTURE(route) {
	struct p2pt_lab lab;
	const char *importer;
	unsigned int route;		/* expected */
};

FIXTURE_VARIANT(route) {
	int importer;			/* 1: edu, 2: edu2 */
};

FIXTURE_VARIANT_ADD(route, switch) {
	.importer = 1,
};

FIXTURE_VARIANT_ADD(route, host_bridge) {
	.importer = 2,
};

FIXTURE_SETUP(route)
{
	ASSERT_EQ(0, p2pt_lab_setup(&self->lab));
	self->importer = variant->importer == 1 ? self->lab.edu : self->lab.edu2;
	self->route = p2pt_lab_route(&self->lab, self->importer);
	TH_LOG("importer %s, expected route %s, IOMMU %s", self->importer,
	       p2pt_route_name(self->route), self->lab.iommu ? "on" : "off");
}

FIXTURE_TEARDOWN(route)
{
	EXPECT_EQ(0, p2pt_lab_restore(&self->lab));
}

/* Skip a DMA test where the lab has no working DMA path for the route. */
#define SKIP_WITHOUT_DMA(self)							\
	do {									\
		if ((self)->route == P2PT_ROUTE_NOT_SUPPORTED)			\
			SKIP(return, "no P2P route (NOT_SUPPORTED): checked by map_addresses"); \
		if (!p2pt_lab_dma_works(&(self)->lab, (self)->route))		\
			SKIP(return, "IOMMU on: QEMU translates every DMA, a BUS_ADDR bus address does not reach the BAR (runs with --iommu off)"); \
	} while (0)

/* Check the entries of a mapping of @n ranges against the expected route. */
static void check_entries(struct __test_metadata *_metadata, struct p2pt_lab *lab,
			  unsigned int route, const struct p2pt_map *m,
			  const struct p2pt_range *r, unsigned int n)
{
	unsigned int i, j;

	EXPECT_EQ(route, m->route) TH_LOG("route %s", p2pt_route_name(m->route));
	ASSERT_EQ(n, m->nents);
	ASSERT_EQ(n, m->nr_entries);
	for (i = 0; i < n; i++) {
		uint64_t bus = lab->bar_start + r[i].offset;
		uint64_t addr = m->entries[i].dma_addr;

		TH_LOG("%s entry %u: dma 0x%llx len 0x%llx (BAR bus address 0x%llx + 0x%llx)",
		       p2pt_route_name(m->route), i, (unsigned long long)addr,
		       (unsigned long long)m->entries[i].len,
		       (unsigned long long)lab->bar_start, (unsigned long long)r[i].offset);
		EXPECT_EQ(r[i].length, m->entries[i].len) TH_LOG("entry %u", i);
		EXPECT_EQ(0, addr & 4095) TH_LOG("entry %u not page aligned", i);
		if (route == P2PT_ROUTE_BUS_ADDR || !lab->iommu) {
			EXPECT_EQ(bus, addr) TH_LOG("entry %u", i);
		} else {
			EXPECT_NE(bus, addr) TH_LOG("entry %u: not an IOVA", i);
		}
		for (j = 0; j < i; j++)
			EXPECT_FALSE(addr < m->entries[j].dma_addr + m->entries[j].len &&
				     m->entries[j].dma_addr < addr + m->entries[i].len)
				TH_LOG("entries %u and %u overlap", j, i);
	}
}

/* One range: the route and the DMA address, in every direction. */
TEST_F(route, map_addresses)
{
	static const unsigned int dirs[] = {
		P2PT_DIR_BIDIRECTIONAL, P2PT_DIR_TO_DEVICE, P2PT_DIR_FROM_DEVICE,
	};
	struct p2pt_range r = { .offset = 0x100000, .length = 0x10000 };
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_export ex;
	struct p2pt_map m;
	unsigned int i;
	int fd, h, ret;

	fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, &r, 1, &ex);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	EXPECT_EQ(lab->bar_size, ex.bar_size);
	/* On x86 the sysfs resource start is the bus address. */
	EXPECT_EQ(lab->bar_start, ex.bar_bus_addr);
	h = p2pt_import(lab->dev, self->importer, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h) TH_LOG("import: %s", strerror(-h));

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		ret = p2pt_map(lab->dev, h, dirs[i], &m);
		if (self->route == P2PT_ROUTE_NOT_SUPPORTED) {
			/* Fails cleanly, leaves nothing mapped, and again. */
			EXPECT_EQ(-EINVAL, ret) TH_LOG("dir %u: map %s", dirs[i], strerror(-ret));
			p2pt_check_status(_metadata, lab, h, 0, 0, 0, 0);
			EXPECT_EQ(-EINVAL, p2pt_map(lab->dev, h, dirs[i], &m));
			p2pt_check_status(_metadata, lab, h, 0, 0, 0, 0);
			EXPECT_EQ(-ENODEV, p2pt_unmap(lab->dev, h));
			EXPECT_EQ(-ENODEV, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER,
						    lab->bar_start + r.offset, &ret, 4));
			continue;
		}
		ASSERT_EQ(0, ret) TH_LOG("dir %u: map %s", dirs[i], strerror(-ret));
		check_entries(_metadata, lab, self->route, &m, &r, 1);
		p2pt_check_status(_metadata, lab, h, P2PT_STATUS_MAPPED, 0, 1, 0);
		EXPECT_EQ(0, p2pt_unmap(lab->dev, h));
		p2pt_check_status(_metadata, lab, h, 0, 0, 0, 0);
		p2pt_check_no_resource_maps(_metadata, lab, self->importer);
	}
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	close(fd);
}

/* edu writes into the BAR: bytes land at the right offset, nowhere else. */
TEST_F_TIMEOUT(route, dma_to_peer, 120)
{
	struct p2pt_range r = { .offset = 0x200000, .length = 0x4000 };
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m;
	uint64_t base;
	int fd, h;

	SKIP_WITHOUT_DMA(self);
	fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, &r, 1, NULL);
	ASSERT_LE(0, fd);
	h = p2pt_import(lab->dev, self->importer, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	ASSERT_EQ(1, m.nents);
	base = m.entries[0].dma_addr;

	/* A page, an unaligned chunk, and the last page of the range. */
	p2pt_check_to_peer(_metadata, lab, h, base + 0x1000, r.offset + 0x1000, 4096);
	p2pt_check_to_peer(_metadata, lab, h, base + 0x2345, r.offset + 0x2345, 1000);
	p2pt_check_to_peer(_metadata, lab, h, base + r.length - 4096,
			   r.offset + r.length - 4096, 4096);
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	close(fd);
}

/* edu reads from the BAR what the host wrote into the file. */
TEST_F_TIMEOUT(route, dma_from_peer, 120)
{
	struct p2pt_range r = { .offset = 0x600000, .length = 0x3000 };
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m;
	uint64_t base;
	int fd, h;

	SKIP_WITHOUT_DMA(self);
	fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, &r, 1, NULL);
	ASSERT_LE(0, fd);
	h = p2pt_import(lab->dev, self->importer, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_TO_DEVICE, &m));
	base = m.entries[0].dma_addr;

	p2pt_check_from_peer(_metadata, lab, h, base, r.offset, 4096);
	p2pt_check_from_peer(_metadata, lab, h, base + 0x1789, r.offset + 0x1789, 3000);
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	close(fd);
}

/* Three discontiguous ranges, out of BAR order: one entry each, in order. */
TEST_F_TIMEOUT(route, multi_range, 120)
{
	static const struct p2pt_range r[] = {
		{ .offset = 0x300000, .length = 0x3000 },
		{ .offset = 0x010000, .length = 0x5000 },
		{ .offset = 0x800000, .length = 0x1000 },
	};
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m;
	int fd, h, ret;

	fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, r, 3, NULL);
	ASSERT_LE(0, fd);
	h = p2pt_import(lab->dev, self->importer, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ret = p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
	if (self->route == P2PT_ROUTE_NOT_SUPPORTED) {
		EXPECT_EQ(-EINVAL, ret);
		p2pt_check_status(_metadata, lab, h, 0, 0, 0, 0);
		close(fd);
		return;
	}
	ASSERT_EQ(0, ret) TH_LOG("map: %s", strerror(-ret));
	check_entries(_metadata, lab, self->route, &m, r, 3);
	/* dma_map_resource() per range on THRU_HOST_BRIDGE only. */
	ret = p2pt_lab_new_resources(lab, self->importer);
	if (ret >= 0) {
		EXPECT_EQ(self->route == P2PT_ROUTE_THRU_HOST_BRIDGE ? 3 : 0, ret);
	}

	if (!p2pt_lab_dma_works(lab, self->route)) {
		TH_LOG("IOMMU on: BUS_ADDR DMA not run (QEMU translates every DMA)");
	} else {
		/* Into the second range, and back from the third. */
		p2pt_check_to_peer(_metadata, lab, h, m.entries[1].dma_addr + 0x1800,
				   r[1].offset + 0x1800, 2048);
		p2pt_check_to_peer(_metadata, lab, h, m.entries[1].dma_addr + 0x4000,
				   r[1].offset + 0x4000, 4096);
		p2pt_check_from_peer(_metadata, lab, h, m.entries[2].dma_addr + 0x100,
				     r[2].offset + 0x100, 3840);
	}
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	p2pt_check_no_resource_maps(_metadata, lab, self->importer);
	close(fd);
}

/* A range spanning the whole BAR maps as one entry. */
TEST_F(route, whole_bar)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_range r = { .offset = 0, .length = lab->bar_size };
	struct p2pt_map m;
	int fd, h, ret;

	fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, &r, 1, NULL);
	ASSERT_LE(0, fd);
	h = p2pt_import(lab->dev, self->importer, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ret = p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
	if (self->route == P2PT_ROUTE_NOT_SUPPORTED) {
		EXPECT_EQ(-EINVAL, ret);
	} else {
		ASSERT_EQ(0, ret);
		check_entries(_metadata, lab, self->route, &m, &r, 1);
	}
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	close(fd);
}

TEST_HARNESS_MAIN
