/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Checks shared by the p2pdma kselftests; include after kselftest_harness.h.
 * They assert with the harness (the caller's _metadata) and check bytes in
 * the host file behind ivshmem BAR 2.
 */
#ifndef P2P_P2PT_TEST_H
#define P2P_P2PT_TEST_H

#include "p2pt.h"

#define P2PT_GUARD	4096	/* bytes checked on each side of a DMA */
#define P2PT_GUARD_BYTE	0xa5

/*
 * DMA @len bytes of a fresh pattern through @handle to @dma_addr and check
 * they land at @file_off of the host file, and that the guard bytes around
 * are unchanged.
 */
static inline void p2pt_check_to_peer(struct __test_metadata *_metadata,
				      struct p2pt_lab *lab, unsigned int handle,
				      uint64_t dma_addr, uint64_t file_off, size_t len)
{
	uint64_t g0 = file_off >= P2PT_GUARD ? file_off - P2PT_GUARD : 0;
	uint64_t g1 = file_off + len + P2PT_GUARD;
	uint8_t want[P2PT_DMA_MAX], got[P2PT_DMA_MAX];
	int64_t bad;

	ASSERT_GE(sizeof(want), len);
	if (g1 > lab->bar_size)
		g1 = lab->bar_size;
	ASSERT_EQ(0, p2pt_host_fill(lab, g0, g1 - g0, P2PT_GUARD_BYTE));
	lab_pattern(want, len, file_off, lab->seed ^ (uint32_t)dma_addr);
	ASSERT_EQ(0, p2pt_dma(lab->dev, handle, P2PT_DMA_TO_PEER, dma_addr, want, len))
		TH_LOG("DMA to 0x%llx", (unsigned long long)dma_addr);
	ASSERT_EQ(0, p2pt_host_read(lab, file_off, got, len));
	EXPECT_EQ(0, memcmp(want, got, len))
		TH_LOG("DMA to 0x%llx: bytes at BAR offset 0x%llx differ",
		       (unsigned long long)dma_addr, (unsigned long long)file_off);
	bad = p2pt_host_find_not(lab, g0, file_off - g0, P2PT_GUARD_BYTE);
	EXPECT_EQ(-1, bad) TH_LOG("guard byte changed at BAR offset 0x%llx", (long long)bad);
	bad = p2pt_host_find_not(lab, file_off + len, g1 - file_off - len, P2PT_GUARD_BYTE);
	EXPECT_EQ(-1, bad) TH_LOG("guard byte changed at BAR offset 0x%llx", (long long)bad);
}

/* Put a pattern at @file_off of the host file, DMA it back through @handle. */
static inline void p2pt_check_from_peer(struct __test_metadata *_metadata,
					struct p2pt_lab *lab, unsigned int handle,
					uint64_t dma_addr, uint64_t file_off, size_t len)
{
	uint8_t want[P2PT_DMA_MAX], got[P2PT_DMA_MAX];

	ASSERT_GE(sizeof(want), len);
	lab_pattern(want, len, file_off, ~lab->seed ^ (uint32_t)dma_addr);
	ASSERT_EQ(0, p2pt_host_write(lab, file_off, want, len));
	memset(got, P2PT_GUARD_BYTE, len);
	ASSERT_EQ(0, p2pt_dma(lab->dev, handle, P2PT_DMA_FROM_PEER, dma_addr, got, len))
		TH_LOG("DMA from 0x%llx", (unsigned long long)dma_addr);
	EXPECT_EQ(0, memcmp(want, got, len))
		TH_LOG("DMA from 0x%llx: bytes differ from BAR offset 0x%llx",
		       (unsigned long long)dma_addr, (unsigned long long)file_off);
}

/*
 * Check the status of @handle: flags, move_notify count, exporter counts.
 * @pins are the importers' own pins; a kernel whose dma-buf core pins
 * around every mapping counts each of the @maps as a pin as well.
 */
static inline void p2pt_check_status(struct __test_metadata *_metadata,
				     struct p2pt_lab *lab, unsigned int handle,
				     unsigned int flags, unsigned int notified,
				     unsigned int maps, unsigned int pins)
{
	struct p2pt_status st;

	ASSERT_EQ(0, p2pt_status(lab->dev, handle, &st)) TH_LOG("handle %u", handle);
	EXPECT_EQ(flags, st.flags) TH_LOG("handle %u: status flags", handle);
	EXPECT_EQ(notified, st.move_notify_count) TH_LOG("handle %u: move_notify calls", handle);
	EXPECT_EQ(maps, st.exporter_maps) TH_LOG("handle %u: live mappings of the dma-buf", handle);
	EXPECT_EQ(pins + (lab->core_pins_maps ? maps : 0), st.exporter_pins)
		TH_LOG("handle %u: pins of the dma-buf", handle);
}

/*
 * Nothing of @bdf is left mapped with dma_map_resource(), as DMA-API
 * debugging sees it (checked only where it is built in), beyond what was
 * there at set-up.
 */
static inline void p2pt_check_no_resource_maps(struct __test_metadata *_metadata,
					       struct p2pt_lab *lab, const char *bdf)
{
	int n = p2pt_lab_new_resources(lab, bdf);

	if (n > 0)
		p2pt_dma_debug_resources(bdf, true);
	EXPECT_GE(0, n) TH_LOG("%s: %d dma_map_resource() mappings left (dma-debug)", bdf, n);
}

#endif /* P2P_P2PT_TEST_H */
