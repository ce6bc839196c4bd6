/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * uAPI of the p2p_dmabuf_test module (tests/modules/p2pt_*.c),
 * shared with the lab kselftests. Ioctls on the misc device
 * /dev/p2p_dmabuf_test.
 *
 * Exporter ("p2p_test_exporter", any PCI device with a MEM BAR, in the lab
 * ivshmem): EXPORT wraps page-aligned ranges of one BAR in a dma-buf and
 * returns its fd; REVOKE and UNREVOKE act on such an fd.
 *
 * Importer ("p2p_test_importer", QEMU's edu device): IMPORT attaches a
 * dma-buf to an edu device and returns a handle local to the open file;
 * MAP, UNMAP, STATUS, DMA and RELEASE act on a handle. Closing the file
 * releases every handle it holds. Imports can be slow partners of a revoke
 * (give the mapping back later, hold a fence) to test that exporters wait.
 *
 * Both drivers have no ID table: bind them with driver_override.
 */
#ifndef _P2P_DMABUF_TEST_H
#define _P2P_DMABUF_TEST_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define P2PT_DEVICE		"/dev/p2p_dmabuf_test"
/* "Y" when the dma-buf core pins around mappings (no DMABUF_MOVE_NOTIFY). */
#define P2PT_PARAM_CORE_PINS_MAPS \
	"/sys/module/p2p_dmabuf_test/parameters/core_pins_maps"
#define P2PT_EXPORTER_DRIVER	"p2p_test_exporter"
#define P2PT_IMPORTER_DRIVER	"p2p_test_importer"

#define P2PT_BDF_LEN		16	/* "0000:03:00.0" + NUL, padded */
#define P2PT_MAX_RANGES		16	/* ranges per exported dma-buf */
#define P2PT_MAX_ENTRIES	32	/* DMA entries reported by MAP */
#define P2PT_DMA_MAX		4096	/* bytes per DMA (edu's buffer) */

/* Routes; the values of enum pci_p2pdma_map_type. */
#define P2PT_ROUTE_UNKNOWN		0	/* not one of our dma-bufs */
#define P2PT_ROUTE_NOT_SUPPORTED	1
#define P2PT_ROUTE_BUS_ADDR		2
#define P2PT_ROUTE_THRU_HOST_BRIDGE	3

/* DMA directions of a mapping; the values of enum dma_data_direction. */
#define P2PT_DIR_BIDIRECTIONAL	0
#define P2PT_DIR_TO_DEVICE	1	/* the importer only reads */
#define P2PT_DIR_FROM_DEVICE	2	/* the importer only writes */

struct p2pt_range {
	__u64 offset;	/* into the BAR, page aligned */
	__u64 length;	/* page aligned, non-zero */
};

/*
 * P2PT_IOC_EXPORT: wrap @nr_ranges ranges of BAR @bar of @bdf (bound to
 * p2p_test_exporter) in a dma-buf. Returns the new fd.
 * Errors: ENODEV no such exporter; EINVAL bad flags, no MEM BAR @bar,
 * nr_ranges 0 or > P2PT_MAX_RANGES, a range empty, unaligned or not inside
 * the BAR. @open_flags: O_CLOEXEC and the access mode, given to the file.
 */
struct p2pt_export {
	char bdf[P2PT_BDF_LEN];		/* in */
	__u32 bar;			/* in */
	__u32 open_flags;		/* in */
	__u32 nr_ranges;		/* in */
	__u32 pad;
	__u64 bar_size;			/* out: length of the BAR */
	__u64 bar_bus_addr;		/* out: bus address of the BAR */
	struct p2pt_range ranges[P2PT_MAX_RANGES];	/* in */
};

/*
 * P2PT_IOC_REVOKE / P2PT_IOC_UNREVOKE: @fd is a dma-buf made by
 * P2PT_IOC_EXPORT (EINVAL otherwise). REVOKE returns once every importer
 * has unmapped; UNREVOKE allows mapping again (ENODEV once the exporter
 * device is gone: its dma-bufs stay revoked).
 */
struct p2pt_revoke {
	__s32 fd;
	__u32 pad;
};

/* Import modes. */
#define P2PT_IMPORT_DYNAMIC		0	/* move_notify unmaps */
#define P2PT_IMPORT_PINNED_REVOCABLE	1	/* pins; move_notify unmaps, unpins */
#define P2PT_IMPORT_PINNED		2	/* no move_notify, pins */
#define P2PT_IMPORT_UNNOTIFIED		3	/* no move_notify, maps unpinned */

/* Import flags. */
#define P2PT_IMPORT_F_NO_P2P		0x1	/* allow_peer2peer = false */
/*
 * A slow partner: move_notify stops new transfers at once but gives the
 * mapping, vmap and pin back @delay_ms later, from a workqueue.
 */
#define P2PT_IMPORT_F_DEFER		0x2
/*
 * A busy partner: each map adds an unsignalled fence to the dma-buf's
 * reservation object (DMA_RESV_USAGE_BOOKKEEP), signalled @delay_ms after
 * the next move_notify (or at release).
 */
#define P2PT_IMPORT_F_FENCE		0x4
/*
 * With P2PT_IMPORT_F_DEFER, the last transfers in flight: right before the
 * deferred give-back, P2PT_LATE_LEN bytes of P2PT_LATE_BYTE are written by
 * DMA at dma-buf offset 0 (if mapped) and through the CPU at dma-buf
 * offset P2PT_LATE_CPU_OFF (if vmapped).
 */
#define P2PT_IMPORT_F_LATE_WRITE	0x8
#define P2PT_IMPORT_FLAGS		0xf
#define P2PT_LATE_BYTE			0x5a
#define P2PT_LATE_LEN			2048
#define P2PT_LATE_CPU_OFF		4096
#define P2PT_DELAY_MAX_MS		10000

/*
 * P2PT_IOC_IMPORT: attach dma-buf @fd to @bdf (bound to p2p_test_importer).
 * Errors: ENODEV no such importer, or the exporter is revoked; EINVAL bad
 * mode or flags, @delay_ms above P2PT_DELAY_MAX_MS, @fd not a dma-buf;
 * EBADF; EOPNOTSUPP the exporter refuses the attachment (no peer2peer, or
 * a non-revocable importer) or the pin.
 */
struct p2pt_import {
	char bdf[P2PT_BDF_LEN];		/* in */
	__s32 fd;			/* in */
	__u32 mode;			/* in */
	__u32 flags;			/* in */
	__u32 handle;			/* out, never 0 */
	__u32 delay_ms;			/* in: F_DEFER, F_FENCE */
	__u32 pad;
};

struct p2pt_entry {
	__u64 dma_addr;
	__u64 len;
};

/*
 * P2PT_IOC_MAP: map the dma-buf of @handle for the importer, direction
 * @dir. Reports the route the exporter took, the number of DMA entries and
 * the first P2PT_MAX_ENTRIES of them.
 * Errors: ENOENT unknown handle; EINVAL bad dir or no P2P route; EBUSY
 * already mapped; ENODEV revoked or the importer device gone.
 */
struct p2pt_map {
	__u32 handle;			/* in */
	__u32 dir;			/* in: P2PT_DIR_* */
	__u32 route;			/* out: P2PT_ROUTE_* */
	__u32 nents;			/* out: DMA entries of the mapping */
	__u32 nr_entries;		/* out: entries filled in below */
	__u32 pad;
	struct p2pt_entry entries[P2PT_MAX_ENTRIES];	/* out */
};

/* P2PT_IOC_UNMAP, P2PT_IOC_RELEASE. UNMAP: ENODEV if not mapped. */
struct p2pt_handle {
	__u32 handle;
	__u32 pad;
};

#define P2PT_STATUS_MAPPED	0x1
#define P2PT_STATUS_PINNED	0x2
#define P2PT_STATUS_REVOKED	0x4	/* our exporter's dma-bufs only */
#define P2PT_STATUS_VMAPPED	0x8	/* P2PT_IOC_VMAP holds a CPU mapping */
#define P2PT_STATUS_VMAP_IOMEM	0x10	/* ... of I/O memory */
#define P2PT_STATUS_GIVEBACK	0x20	/* F_DEFER: give-back pending */
#define P2PT_STATUS_FENCE	0x40	/* F_FENCE: a fence not signalled */
#define P2PT_STATUS_VMAP_WC	0x80	/* ... mapped write-combining */

/*
 * P2PT_IOC_STATUS. @exporter_maps and @exporter_pins: live mappings and
 * pins of the dma-buf over all its attachments (our exporter only).
 */
struct p2pt_status {
	__u32 handle;			/* in */
	__u32 flags;			/* out: P2PT_STATUS_* */
	__u32 move_notify_count;	/* out */
	__u32 exporter_maps;		/* out */
	__u32 exporter_pins;		/* out */
	__u32 pad;
};

#define P2PT_DMA_TO_PEER	0	/* user buffer -> edu -> peer address */
#define P2PT_DMA_FROM_PEER	1	/* peer address -> edu -> user buffer */

/*
 * P2PT_IOC_DMA: run edu's DMA engine between its buffer and the DMA
 * address @dma_addr, which with @len must lie inside one entry of the
 * current mapping of @handle. Returns when the bytes have moved.
 * Errors: ENOENT unknown handle; ENODEV not mapped (or revoked, importer
 * gone); EINVAL bad dir, @len 0 or > P2PT_DMA_MAX, range outside the
 * mapping; EPERM the mapping's direction forbids it; EFAULT; ETIMEDOUT
 * the engine did not finish.
 */
struct p2pt_dma {
	__u32 handle;
	__u32 dir;			/* P2PT_DMA_* */
	__u64 dma_addr;
	__u64 len;
	__u64 user_ptr;			/* buffer of @len bytes */
};

/*
 * P2PT_IOC_VMAP: map the whole dma-buf of @handle for the CPU the way a
 * software importer such as rxe does: each physical range its attachment
 * gives (dma_buf_attachment_get_phys()) mapped with the exporter's memory
 * type (ioremap(), ioremap_wc(), memremap()), held until P2PT_IOC_VUNMAP,
 * a move_notify or the release of the handle.
 * Errors: ENOENT unknown handle; EBUSY already mapped; EINVAL the import
 * is not revocable; EOPNOTSUPP the exporter gives no physical ranges; the
 * exporter's error otherwise (ENODEV while revoked).
 *
 * P2PT_IOC_CPU: copy @len bytes between @user_ptr and offset @offset of
 * that mapping (memcpy_toio()/memcpy_fromio() for I/O memory), @dir is
 * P2PT_DMA_TO_PEER (user -> dma-buf) or P2PT_DMA_FROM_PEER.
 * Errors: ENOENT; ENODEV not vmapped (or dropped by a revoke); EINVAL bad
 * dir, @len 0 or > P2PT_DMA_MAX, range beyond the dma-buf; EFAULT.
 */
struct p2pt_cpu {
	__u32 handle;
	__u32 dir;			/* P2PT_DMA_* */
	__u64 offset;
	__u64 len;
	__u64 user_ptr;			/* buffer of @len bytes */
};

/*
 * P2PT_IOC_VMAP_UNATTACHED: dma_buf_vmap() of dma-buf @fd without any
 * attachment, as videobuf2-vmalloc does for a V4L2 DMABUF import. Nothing
 * could take such a vmap back: exporters that revoke must refuse it. If
 * one does not, the vmap is held until this file is closed.
 * Errors: EBUSY one is held already; EINVAL @pad; EBADF/EINVAL not a
 * dma-buf; the error of dma_buf_vmap().
 */
struct p2pt_fd {
	__s32 fd;
	__u32 pad;
};

/*
 * P2PT_IOC_DMA_MASK: give importer @bdf a streaming DMA mask @bits wide
 * (its coherent buffer stays where it is). Restore 64 when done.
 * Errors: ENODEV no such importer; EINVAL @bits not in 1..64; EIO the
 * mask is not supported.
 */
struct p2pt_dma_mask {
	char bdf[P2PT_BDF_LEN];
	__u32 bits;
	__u32 pad;
};

/*
 * P2PT_IOC_P2PMEM: register @size bytes at @offset of BAR @bar of @bdf
 * (bound to p2p_test_exporter) as struct-page P2P memory with
 * pci_p2pdma_add_resource(), for the benchmarks (the cost the dma-buf
 * exporters avoid). @size 0: the rest of the BAR. The memory stays until
 * the device is unbound (devres). Errors: ENODEV no such exporter;
 * EINVAL bad @bar, @pad or range; what pci_p2pdma_add_resource() returns.
 */
struct p2pt_p2pmem {
	char bdf[P2PT_BDF_LEN];
	__u32 bar;
	__u32 pad;
	__u64 size;
	__u64 offset;
};

/*
 * P2PT_IOC_IOMMUFD_ACCESS: what an emulated device (a VFIO mdev) does
 * through iommufd_access: attach to IOAS @ioas_id of iommufd @iommufd, and
 * pin the pages of (@op P2PT_ACCESS_PIN, iommufd_access_pin_pages()) or
 * read (P2PT_ACCESS_READ, iommufd_access_rw()) @len bytes at @iova, copying
 * them to @user_ptr. For PIN @iova is page aligned and @len at most a
 * page; the pages are unpinned before the ioctl returns. Errors: EINVAL
 * bad @op, @len or @pad; EFAULT; what the iommufd calls return.
 */
struct p2pt_iommufd_access {
	__s32 iommufd;
	__u32 ioas_id;
	__u64 iova;
	__u64 len;
	__u64 user_ptr;
	__u32 op;
	__u32 pad;
};

#define P2PT_ACCESS_PIN		0
#define P2PT_ACCESS_READ	1

#define P2PT_IOC_MAGIC		0xd7
#define P2PT_IOC_EXPORT		_IOWR(P2PT_IOC_MAGIC, 0, struct p2pt_export)
#define P2PT_IOC_REVOKE		_IOW(P2PT_IOC_MAGIC, 1, struct p2pt_revoke)
#define P2PT_IOC_UNREVOKE	_IOW(P2PT_IOC_MAGIC, 2, struct p2pt_revoke)
#define P2PT_IOC_IMPORT		_IOWR(P2PT_IOC_MAGIC, 3, struct p2pt_import)
#define P2PT_IOC_MAP		_IOWR(P2PT_IOC_MAGIC, 4, struct p2pt_map)
#define P2PT_IOC_UNMAP		_IOW(P2PT_IOC_MAGIC, 5, struct p2pt_handle)
#define P2PT_IOC_STATUS		_IOWR(P2PT_IOC_MAGIC, 6, struct p2pt_status)
#define P2PT_IOC_RELEASE	_IOW(P2PT_IOC_MAGIC, 7, struct p2pt_handle)
#define P2PT_IOC_DMA		_IOW(P2PT_IOC_MAGIC, 8, struct p2pt_dma)
#define P2PT_IOC_VMAP		_IOW(P2PT_IOC_MAGIC, 9, struct p2pt_handle)
#define P2PT_IOC_VUNMAP		_IOW(P2PT_IOC_MAGIC, 10, struct p2pt_handle)
#define P2PT_IOC_CPU		_IOW(P2PT_IOC_MAGIC, 11, struct p2pt_cpu)
#define P2PT_IOC_DMA_MASK	_IOW(P2PT_IOC_MAGIC, 12, struct p2pt_dma_mask)
#define P2PT_IOC_P2PMEM		_IOW(P2PT_IOC_MAGIC, 13, struct p2pt_p2pmem)
#define P2PT_IOC_VMAP_UNATTACHED _IOW(P2PT_IOC_MAGIC, 14, struct p2pt_fd)
#define P2PT_IOC_IOMMUFD_ACCESS	_IOW(P2PT_IOC_MAGIC, 15, struct p2pt_iommufd_access)

#endif /* _P2P_DMABUF_TEST_H */
