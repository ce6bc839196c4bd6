// SPDX-License-Identifier: GPL-2.0
/*
 * Bytes through dma-bufs that vfio-pci exports of ivshmem BAR 2, checked
 * in the host file behind the BAR: the importer's mapping (DMA addresses
 * per route), edu's DMA engine both ways, multi-range dma-bufs (dma-buf
 * offset -> range -> BAR offset), the whole BAR, and CPU access through
 * dma_buf_vmap() (P2PT_IOC_VMAP/CPU of the test importer).
 *
 * DMA checks need an importer whose DMA reaches ivshmem (edu without an
 * IOMMU, edu2 with one on an AMD CPU model); with the Intel CPU model and
 * the IOMMU the mapping is refused (NOT_SUPPORTED) and only the CPU checks
 * move bytes.
 */
#include "kselftest_harness.h"
#include "vfio_dmabuf.h"

#define PAGE	4096ULL

FIXTURE(data) {
	struct vdb_lab l;
};

FIXTURE_VARIANT(data) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(data, group) {
	.cdev = false,
};

FIXTURE_VARIANT_ADD(data, cdev) {
	.cdev = true,
};

FIXTURE_SETUP(data)
{
	const char *why = variant->cdev ? vdb_cdev_unavailable() : NULL;

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, vdb_lab_setup(&self->l, variant->cdev));
	if (!self->l.dma)
		TH_LOG("%s: no DMA to ivshmem in this boot (route %s): DMA checks left out",
		       self->l.imp, p2pt_route_name(self->l.route));
}

FIXTURE_TEARDOWN(data)
{
	vdb_lab_restore(&self->l);
}

/* Import @fd into l->imp (dynamic) and map it; the handle. */
static int import_map(struct __test_metadata *_metadata, struct vdb_lab *l, int fd,
		      struct p2pt_map *m)
{
	int h, ret;

	h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	if (h <= 0) {
		TH_LOG("import: %s", strerror(-h));
		return -1;
	}
	ret = p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, m);
	if (ret) {
		TH_LOG("map: %s", strerror(-ret));
		return -1;
	}
	return h;
}

/* One range: addresses per route, DMA both ways with guard bytes. */
TEST_F_TIMEOUT(data, one_range, 120)
{
	struct vdb_lab *l = &self->l;
	struct vfio_region_dma_range r = { .offset = 0x100000, .length = 0x10000 };
	struct p2pt_map m;
	int fd, h;

	if (!l->can_map)
		SKIP(return, "%s cannot map ivshmem (%s)", l->imp, p2pt_route_name(l->route));
	fd = vdb_export(l->v.device, IVSHMEM_BAR, &r, 1);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	h = import_map(_metadata, l, fd, &m);
	ASSERT_LT(0, h);
	vdb_check_map(_metadata, l, &m, &r, 1);
	vdb_check_status(_metadata, l, h, P2PT_STATUS_MAPPED, 0);
	if (l->dma) {
		p2pt_check_to_peer(_metadata, &l->lab, h, m.entries[0].dma_addr,
				   r.offset, 4096);
		p2pt_check_to_peer(_metadata, &l->lab, h,
				   p2pt_map_dma_addr(&m, 0x8000 + 100, 1000),
				   r.offset + 0x8000 + 100, 1000);
		p2pt_check_from_peer(_metadata, &l->lab, h,
				     p2pt_map_dma_addr(&m, r.length - 4096, 4096),
				     r.offset + r.length - 4096, 4096);
		uint8_t buf[32] = { 0 };

		/* DMA outside the mapping is refused by the importer. */
		EXPECT_EQ(-EINVAL, p2pt_dma(l->lab.dev, h, P2PT_DMA_TO_PEER,
					    m.entries[0].dma_addr + r.length - 16,
					    buf, sizeof(buf)));
	}
	EXPECT_EQ(0, p2pt_unmap(l->lab.dev, h));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
	close(fd);
}

/*
 * Three discontiguous ranges out of order, one overlapping another: each
 * dma-buf offset lands at its range's BAR offset.
 */
TEST_F_TIMEOUT(data, ranges, 180)
{
	struct vdb_lab *l = &self->l;
	struct vfio_region_dma_range r[3] = {
		{ .offset = 0x600000, .length = 0x3000 },
		{ .offset = 0x080000, .length = 0x1000 },
		{ .offset = 0x601000, .length = 0x2000 },	/* overlaps r[0] */
	};
	uint64_t off = 0, a;
	struct p2pt_map m;
	unsigned int i;
	int fd, h;

	if (!l->can_map)
		SKIP(return, "%s cannot map ivshmem (%s)", l->imp, p2pt_route_name(l->route));
	fd = vdb_export(l->v.device, IVSHMEM_BAR, r, 3);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	h = import_map(_metadata, l, fd, &m);
	ASSERT_LT(0, h);
	vdb_check_map(_metadata, l, &m, r, 3);
	for (i = 0; i < 3 && l->dma; off += r[i].length, i++) {
		/* The last 1 KiB of each range. */
		a = p2pt_map_dma_addr(&m, off + r[i].length - 1024, 1024);
		ASSERT_NE(0, a);
		if (i == 1)
			p2pt_check_from_peer(_metadata, &l->lab, h, a,
					     r[i].offset + r[i].length - 1024, 1024);
		else
			p2pt_check_to_peer(_metadata, &l->lab, h, a,
					   r[i].offset + r[i].length - 1024, 1024);
	}
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
	close(fd);
}

/* The whole BAR: mapped in full, DMA at both ends. */
TEST_F_TIMEOUT(data, whole_bar, 120)
{
	struct vdb_lab *l = &self->l;
	struct vfio_region_dma_range r = { .offset = 0, .length = l->lab.bar_size };
	struct p2pt_map m;
	int fd, h;

	if (!l->can_map)
		SKIP(return, "%s cannot map ivshmem (%s)", l->imp, p2pt_route_name(l->route));
	fd = vdb_export(l->v.device, IVSHMEM_BAR, &r, 1);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	h = import_map(_metadata, l, fd, &m);
	ASSERT_LT(0, h);
	vdb_check_map(_metadata, l, &m, &r, 1);
	if (l->dma) {
		p2pt_check_to_peer(_metadata, &l->lab, h, p2pt_map_dma_addr(&m, 0, 2048), 0, 2048);
		p2pt_check_to_peer(_metadata, &l->lab, h,
				   p2pt_map_dma_addr(&m, r.length - 2048, 2048),
				   r.length - 2048, 2048);
	}
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
	close(fd);
}

/*
 * CPU access (dma_buf_vmap(), as software importers do): an I/O-memory
 * vmap of all ranges back to back; bytes land at each range's BAR offset,
 * also for a copy across the boundary of two ranges; every boot.
 */
TEST_F_TIMEOUT(data, vmap, 120)
{
	struct vdb_lab *l = &self->l;
	struct vfio_region_dma_range r[3] = {
		{ .offset = 0x300000, .length = 0x2000 },
		{ .offset = 0x0a0000, .length = 0x1000 },
		{ .offset = 0xfff000, .length = 0x1000 },	/* the last page */
	};
	uint8_t want[64], got[64];
	uint64_t off = 0;
	unsigned int i;
	int fd, h, ret;

	fd = vdb_export(l->v.device, IVSHMEM_BAR, r, 3);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	EXPECT_EQ(-ENODEV, p2pt_cpu(l->lab.dev, h, P2PT_DMA_TO_PEER, 0, want, 1));
	ret = p2pt_vmap(l->lab.dev, h);
	ASSERT_EQ(0, ret) TH_LOG("vmap: %s", strerror(-ret));
	vdb_check_status(_metadata, l, h, P2PT_STATUS_VMAPPED | P2PT_STATUS_VMAP_IOMEM, 0);
	EXPECT_EQ(-EBUSY, p2pt_vmap(l->lab.dev, h));

	for (i = 0; i < 3; off += r[i].length, i++) {
		vdb_check_cpu_to_peer(_metadata, l, h, off, r[i].offset, 512);
		vdb_check_cpu_from_peer(_metadata, l, h, off + r[i].length - 700,
					r[i].offset + r[i].length - 700, 700);
	}
	/* Across ranges 0 and 1: 32 bytes each side of dma-buf offset 0x2000. */
	lab_pattern(want, sizeof(want), 0x2000, l->lab.seed ^ 0x77);
	ASSERT_EQ(0, p2pt_cpu(l->lab.dev, h, P2PT_DMA_TO_PEER, 0x2000 - 32, want, 64));
	ASSERT_EQ(0, p2pt_host_read(&l->lab, r[0].offset + r[0].length - 32, got, 32));
	ASSERT_EQ(0, p2pt_host_read(&l->lab, r[1].offset, got + 32, 32));
	EXPECT_EQ(0, memcmp(want, got, 64)) TH_LOG("copy across ranges 0 and 1");
	/* Beyond the dma-buf (16 KiB). */
	EXPECT_EQ(-EINVAL, p2pt_cpu(l->lab.dev, h, P2PT_DMA_FROM_PEER, 0x4000 - 8, got, 16));

	/* A mapping next to the vmap, where the route allows. */
	if (l->can_map) {
		struct p2pt_map m;

		ASSERT_EQ(0, p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
		vdb_check_status(_metadata, l, h, P2PT_STATUS_MAPPED | P2PT_STATUS_VMAPPED |
				 P2PT_STATUS_VMAP_IOMEM, 0);
		if (l->dma)
			p2pt_check_from_peer(_metadata, &l->lab, h,
					     p2pt_map_dma_addr(&m, 0x3000, 1024), r[2].offset, 1024);
		EXPECT_EQ(0, p2pt_unmap(l->lab.dev, h));
	}
	EXPECT_EQ(0, p2pt_vunmap(l->lab.dev, h));
	vdb_check_status(_metadata, l, h, 0, 0);
	EXPECT_EQ(-ENODEV, p2pt_cpu(l->lab.dev, h, P2PT_DMA_FROM_PEER, 0, got, 1));
	/* Released with a vmap held: torn down with the handle. */
	ASSERT_EQ(0, p2pt_vmap(l->lab.dev, h));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
	close(fd);
}

/* Two importers of one dma-buf, one pinned revocable; both move bytes. */
TEST_F_TIMEOUT(data, two_importers, 120)
{
	struct vdb_lab *l = &self->l;
	struct vfio_region_dma_range r = { .offset = 0x800000, .length = 0x8000 };
	struct p2pt_map m1, m2;
	int fd, h1, h2;

	if (!l->can_map)
		SKIP(return, "%s cannot map ivshmem (%s)", l->imp, p2pt_route_name(l->route));
	fd = vdb_export(l->v.device, IVSHMEM_BAR, &r, 1);
	ASSERT_LE(0, fd);
	h1 = import_map(_metadata, l, fd, &m1);
	ASSERT_LT(0, h1);
	h2 = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_PINNED_REVOCABLE, 0);
	ASSERT_LT(0, h2);
	ASSERT_EQ(0, p2pt_map(l->lab.dev, h2, P2PT_DIR_FROM_DEVICE, &m2));
	vdb_check_map(_metadata, l, &m2, &r, 1);
	vdb_check_status(_metadata, l, h2, P2PT_STATUS_PINNED | P2PT_STATUS_MAPPED, 0);
	if (l->dma) {
		p2pt_check_to_peer(_metadata, &l->lab, h1, m1.entries[0].dma_addr + 0x1000,
				   r.offset + 0x1000, 2048);
		p2pt_check_to_peer(_metadata, &l->lab, h2, m2.entries[0].dma_addr + 0x5000,
				   r.offset + 0x5000, 2048);
		/* FROM_DEVICE mapping: the importer may not read through it. */
		EXPECT_EQ(-EPERM, p2pt_dma(l->lab.dev, h2, P2PT_DMA_FROM_PEER,
					   m2.entries[0].dma_addr, &m1, 16));
	}
	/* Closing the dma-buf fd keeps the imports working (they hold it). */
	close(fd);
	if (l->dma)
		p2pt_check_from_peer(_metadata, &l->lab, h1, m1.entries[0].dma_addr + 0x7000,
				     r.offset + 0x7000, 2048);
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h1));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h2));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
}

TEST_HARNESS_MAIN
