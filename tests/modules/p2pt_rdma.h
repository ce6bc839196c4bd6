/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uAPI of the lab's test RDMA driver, p2p_test_rdma (p2pt_rdma.c).
 *
 * It binds the lab's second ivshmem (lab/devices: ivshmem2) and stands in
 * for an RDMA NIC that exports pages of its BAR: there is no rdma-core
 * provider for it, so tests talk to /dev/infiniband/uverbsN with raw
 * ioctls. A ucontext (UVERBS_METHOD_GET_CONTEXT) gets three mmap entries,
 * whose mmap() offsets come back in the driver's response (UHW_OUT):
 *
 *   doorbell  one page of BAR 2, like a UAR page: exportable
 *   memory    P2PT_RDMA_MEM_PAGES pages of BAR 2, like device memory:
 *             exportable; mapped write-combining (mmap and importers
 *             told by mmap_get_mem_type), as mlx5's MEMIC
 *   private   one page of BAR 2 the driver refuses to export
 *             (mmap_get_pfns says EOPNOTSUPP), like a legacy UAR
 *
 * Writing an entry's name to P2PT_RDMA_REMOVE (debugfs) removes that entry
 * from every live ucontext, as a driver does when the object behind it is
 * destroyed: the dma-bufs exported from it are revoked. Writing a number
 * of milliseconds to P2PT_RDMA_PARAM_DELAY makes mmap_get_pfns sleep that
 * long, as a slow driver would, so that a test can remove an entry in the
 * middle of an export.
 */
#ifndef _P2PT_RDMA_H
#define _P2PT_RDMA_H

#include <linux/types.h>

#define P2PT_RDMA_DRIVER	"p2p_test_rdma"
#define P2PT_RDMA_IBDEV		"p2pt_rdma0"
#define P2PT_RDMA_DEBUGFS	"/sys/kernel/debug/p2p_test_rdma/"
#define P2PT_RDMA_REMOVE	P2PT_RDMA_DEBUGFS "remove_entry"
#define P2PT_RDMA_PARAM_DELAY	"/sys/module/p2p_test_rdma/parameters/get_pfns_delay_ms"

#define P2PT_RDMA_BAR		2
/* Where the entries are in BAR 2, in bytes. */
#define P2PT_RDMA_DOORBELL_OFF	0x0
#define P2PT_RDMA_PRIVATE_OFF	0x1000
#define P2PT_RDMA_MEM_OFF	0x10000
#define P2PT_RDMA_MEM_PAGES	16

/* The driver's response to GET_CONTEXT (UVERBS_ATTR_UHW_OUT). */
struct p2pt_rdma_ucontext_resp {
	__aligned_u64 doorbell_offset;	/* mmap() offsets of the entries */
	__aligned_u64 memory_offset;
	__aligned_u64 private_offset;
	__aligned_u64 memory_len;	/* bytes */
};

#endif /* _P2PT_RDMA_H */
