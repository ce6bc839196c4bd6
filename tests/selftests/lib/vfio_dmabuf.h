/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the VFIO dma-buf kselftests (tests/selftests/vfio): the lab
 * set-up (ivshmem on vfio-pci, the test importer on edu or edu2), the
 * VFIO_DEVICE_FEATURE_DMA_BUF export, config-space triggers, and checks of
 * mappings, revokes and bytes. Include after kselftest_harness.h.
 *
 * Which importer: with an IOMMU, ivshmem and edu are one IOMMU group (no
 * ACS on QEMU's switch), so VFIO owns ivshmem only while edu is on
 * vfio-pci too, and the importer is edu2 (own root port): THRU_HOST_BRIDGE
 * with IOVAs and working DMA on an AMD CPU model, NOT_SUPPORTED on an
 * Intel one (MAP fails with EINVAL; the tests then check revokes through
 * imports and CPU access (vmap) instead). Without an IOMMU (no-IOMMU VFIO,
 * one group per device) edu is the importer: BUS_ADDR, DMA works. The
 * devices go back to their drivers when the program ends (p2pt.h).
 */
#ifndef P2P_VFIO_DMABUF_H
#define P2P_VFIO_DMABUF_H

#include <pthread.h>
#include "p2pt_test.h"
#include "vfio_dmabuf_ops.h"

#define VDB_GUARD		1024	/* guard bytes around a CPU copy */

/* --- mappings ---------------------------------------------------------- */

/*
 * Check mapping @m of a dma-buf of ranges @r[0..@n) of ivshmem BAR 2, made
 * for l->imp: the lengths add up, and each range starts at its bus address
 * (no IOMMU: BUS_ADDR, or THRU_HOST_BRIDGE without translation) or at a
 * page-aligned IOVA that is not the bus address (IOMMU).
 */
static inline void vdb_check_map(struct __test_metadata *_metadata, struct vdb_lab *l,
				 const struct p2pt_map *m,
				 const struct vfio_region_dma_range *r, unsigned int n)
{
	uint64_t total = 0, mapped = 0, off = 0, a;
	unsigned int i;

	/* Only the module's own exporter reports a route. */
	EXPECT_EQ(P2PT_ROUTE_UNKNOWN, m->route);
	ASSERT_LT(0, m->nents);
	for (i = 0; i < n; i++)
		total += r[i].length;
	if (m->nents <= P2PT_MAX_ENTRIES) {
		EXPECT_EQ(m->nents, m->nr_entries);
		for (i = 0; i < m->nr_entries; i++)
			mapped += m->entries[i].len;
		EXPECT_EQ(total, mapped) TH_LOG("bytes mapped in %u entries", m->nents);
	}
	for (i = 0; i < n; off += r[i].length, i++) {
		a = p2pt_map_dma_addr(m, off, 4096);
		if (!a && m->nents > P2PT_MAX_ENTRIES)
			break;			/* beyond the reported entries */
		ASSERT_NE(0, a) TH_LOG("range %u: dma-buf offset 0x%llx not mapped", i,
				       (unsigned long long)off);
		if (!l->lab.iommu) {
			EXPECT_EQ(l->lab.bar_start + r[i].offset, a)
				TH_LOG("range %u: bus address of BAR offset 0x%llx", i,
				       (unsigned long long)r[i].offset);
		} else {
			EXPECT_EQ(0, a & 4095) TH_LOG("range %u: IOVA 0x%llx", i,
						       (unsigned long long)a);
			EXPECT_NE(l->lab.bar_start + r[i].offset, a)
				TH_LOG("range %u: an IOMMU should translate", i);
		}
	}
}

/* --- bytes through the CPU (P2PT_IOC_VMAP / P2PT_IOC_CPU) ------------- */

/*
 * Write a fresh pattern through the vmap of @h at dma-buf offset @off and
 * find it at @file_off of the host file, guard bytes around unchanged.
 */
static inline void vdb_check_cpu_to_peer(struct __test_metadata *_metadata,
					 struct vdb_lab *l, unsigned int h, uint64_t off,
					 uint64_t file_off, size_t len)
{
	uint64_t g0 = file_off >= VDB_GUARD ? file_off - VDB_GUARD : 0;
	uint64_t g1 = file_off + len + VDB_GUARD;
	uint8_t want[P2PT_DMA_MAX], got[P2PT_DMA_MAX];
	int64_t bad;

	ASSERT_GE(sizeof(want), len);
	if (g1 > l->lab.bar_size)
		g1 = l->lab.bar_size;
	ASSERT_EQ(0, p2pt_host_fill(&l->lab, g0, g1 - g0, P2PT_GUARD_BYTE));
	lab_pattern(want, len, file_off, l->lab.seed ^ (uint32_t)off ^ 0xc0);
	ASSERT_EQ(0, p2pt_cpu(l->lab.dev, h, P2PT_DMA_TO_PEER, off, want, len))
		TH_LOG("CPU write at dma-buf offset 0x%llx", (unsigned long long)off);
	ASSERT_EQ(0, p2pt_host_read(&l->lab, file_off, got, len));
	EXPECT_EQ(0, memcmp(want, got, len))
		TH_LOG("CPU write at dma-buf offset 0x%llx: bytes at BAR offset 0x%llx differ",
		       (unsigned long long)off, (unsigned long long)file_off);
	bad = p2pt_host_find_not(&l->lab, g0, file_off - g0, P2PT_GUARD_BYTE);
	EXPECT_EQ(-1, bad) TH_LOG("guard byte changed at BAR offset 0x%llx", (long long)bad);
	bad = p2pt_host_find_not(&l->lab, file_off + len, g1 - file_off - len,
				 P2PT_GUARD_BYTE);
	EXPECT_EQ(-1, bad) TH_LOG("guard byte changed at BAR offset 0x%llx", (long long)bad);
}

/* Put a pattern at @file_off of the host file, read it through the vmap. */
static inline void vdb_check_cpu_from_peer(struct __test_metadata *_metadata,
					   struct vdb_lab *l, unsigned int h, uint64_t off,
					   uint64_t file_off, size_t len)
{
	uint8_t want[P2PT_DMA_MAX], got[P2PT_DMA_MAX];

	ASSERT_GE(sizeof(want), len);
	lab_pattern(want, len, file_off, ~l->lab.seed ^ (uint32_t)off ^ 0xc1);
	ASSERT_EQ(0, p2pt_host_write(&l->lab, file_off, want, len));
	memset(got, P2PT_GUARD_BYTE, len);
	ASSERT_EQ(0, p2pt_cpu(l->lab.dev, h, P2PT_DMA_FROM_PEER, off, got, len))
		TH_LOG("CPU read at dma-buf offset 0x%llx", (unsigned long long)off);
	EXPECT_EQ(0, memcmp(want, got, len))
		TH_LOG("CPU read at dma-buf offset 0x%llx: bytes differ from BAR offset 0x%llx",
		       (unsigned long long)off, (unsigned long long)file_off);
}

/* --- revoke states ----------------------------------------------------- */

/*
 * The move_notify calls an import of a VFIO dma-buf has had after @revokes
 * revokes, the last one lifted again (@restored) or not: each revoke and
 * each restore notifies every importer once (a restore lets the importers
 * that map ahead of use, like iommufd, map again).
 */
static inline unsigned int vdb_notified(unsigned int revokes, bool restored)
{
	return revokes ? 2 * revokes - !restored : 0;
}

/*
 * Import @h of a VFIO dma-buf has status @flags and @notified move_notify
 * calls (the exporter counters are the module's own exporter's only: 0).
 */
static inline void vdb_check_status(struct __test_metadata *_metadata, struct vdb_lab *l,
				    unsigned int h, unsigned int flags, unsigned int notified)
{
	p2pt_check_status(_metadata, &l->lab, h, flags, notified, 0, 0);
}

/*
 * @h (an import of a revoked dma-buf) holds nothing, was told @notified
 * times, and can neither map nor vmap (ENODEV), leaving nothing behind.
 */
static inline void vdb_check_revoked(struct __test_metadata *_metadata, struct vdb_lab *l,
				     unsigned int h, unsigned int notified)
{
	struct p2pt_map m;

	vdb_check_status(_metadata, l, h, 0, notified);
	EXPECT_EQ(-ENODEV, p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	EXPECT_EQ(-ENODEV, p2pt_vmap(l->lab.dev, h));
	vdb_check_status(_metadata, l, h, 0, notified);
}

/*
 * The dma-buf imported as @h (dma-buf offset 0 = BAR offset @file_off, at
 * least 16 KiB long) works: it maps where the route allows (addresses
 * checked against @r, @n), DMA lands in the host file where DMA reaches
 * ivshmem, and the CPU moves bytes through a vmap in every boot. Leaves
 * @h unmapped and not vmapped.
 */
static inline void vdb_check_works(struct __test_metadata *_metadata, struct vdb_lab *l,
				   unsigned int h, const struct vfio_region_dma_range *r,
				   unsigned int n)
{
	uint64_t file_off = r[0].offset;
	struct p2pt_map m;
	int ret;

	ASSERT_LE(0x4000, r[0].length);
	ret = p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
	if (l->can_map) {
		ASSERT_EQ(0, ret) TH_LOG("map: %s", strerror(-ret));
		vdb_check_map(_metadata, l, &m, r, n);
		if (l->dma) {
			p2pt_check_to_peer(_metadata, &l->lab, h, m.entries[0].dma_addr + 0x1000,
					   file_off + 0x1000, 2048);
			p2pt_check_from_peer(_metadata, &l->lab, h,
					     m.entries[0].dma_addr + 0x2000,
					     file_off + 0x2000, 2048);
		}
		ASSERT_EQ(0, p2pt_unmap(l->lab.dev, h));
	} else {
		/* NOT_SUPPORTED: refused, nothing left mapped. */
		EXPECT_EQ(-EINVAL, ret);
	}
	ret = p2pt_vmap(l->lab.dev, h);
	ASSERT_EQ(0, ret) TH_LOG("vmap: %s", strerror(-ret));
	vdb_check_cpu_to_peer(_metadata, l, h, 0x3000, file_off + 0x3000, 512);
	vdb_check_cpu_from_peer(_metadata, l, h, 0x3800, file_off + 0x3800, 512);
	ASSERT_EQ(0, p2pt_vunmap(l->lab.dev, h));
}

/* Elapsed seconds since @t0 (CLOCK_MONOTONIC). */
static inline double vdb_elapsed(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

#endif /* P2P_VFIO_DMABUF_H */
