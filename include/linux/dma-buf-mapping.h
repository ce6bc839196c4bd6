/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dma-bufs of MMIO ranges: DMA mapping, physical ranges, revocable export.
 *
 * Exporters of device memory (a PCI BAR slice) describe their buffer as a
 * list of physical ranges. dma_buf_phys_vec_to_sgt() produces the DMA
 * addresses of such ranges for an importing device; &struct dma_buf_mmio
 * is a whole exporter built on it, which the owner of the memory revokes
 * when the device stops decoding it. Importers that reach the ranges by
 * physical address (CPU copies, IOMMU page tables) ask for them with
 * dma_buf_attachment_get_phys(). See
 * Documentation/driver-api/pci/p2pdma.rst.
 */
#ifndef __DMA_BUF_MAPPING_H__
#define __DMA_BUF_MAPPING_H__

#include <linux/completion.h>
#include <linux/dma-direction.h>
#include <linux/err.h>
#include <linux/kref.h>
#include <linux/module.h>
#include <linux/types.h>

struct dma_buf_attachment;
struct p2pdma_provider;
struct sg_table;

/**
 * struct dma_buf_phys_vec - one physically contiguous range of a dma-buf
 * @paddr: CPU physical address of the start of the range
 * @len: length of the range in bytes
 */
struct dma_buf_phys_vec {
	phys_addr_t paddr;
	size_t len;
};

/**
 * enum dma_buf_mem_type - how the CPU must map a range of a dma-buf
 * @DMA_BUF_MEM_UC: uncached I/O memory, e.g. registers: ioremap()
 * @DMA_BUF_MEM_WC: write-combining I/O memory, e.g. a doorbell written
 *	in bursts or device memory: ioremap_wc()
 * @DMA_BUF_MEM_WB: memory the CPU may cache, coherent with the device:
 *	memremap() with MEMREMAP_WB
 *
 * Mapping a range with another type than its exporter's would create a
 * mismatched alias of the device's memory.
 */
enum dma_buf_mem_type {
	DMA_BUF_MEM_UC,
	DMA_BUF_MEM_WC,
	DMA_BUF_MEM_WB,
};

/**
 * struct dma_buf_phys - a dma-buf described by physical address ranges
 * @provider: P2PDMA provider of the memory
 * @ranges: the ranges, in the order of the dma-buf's bytes
 * @nr_ranges: number of @ranges
 * @mem_type: how the CPU must map every range (the ranges of a dma-buf come
 *	from one BAR or one memory region of its exporter, and share it)
 *
 * The answer of dma_buf_attachment_get_phys(), valid until the importer
 * gives it back with dma_buf_attachment_put_phys().
 */
struct dma_buf_phys {
	struct p2pdma_provider *provider;
	const struct dma_buf_phys_vec *ranges;
	size_t nr_ranges;
	enum dma_buf_mem_type mem_type;
};

struct dma_buf_mmio;

/**
 * struct dma_buf_mmio_ops - what the owner of a revocable MMIO dma-buf does
 * @release: the dma-buf's file is released; no importer is left. The
 *	owner unlinks and frees the structure embedding the &dma_buf_mmio.
 */
struct dma_buf_mmio_ops {
	void (*release)(struct dma_buf_mmio *mmio);
};

/**
 * struct dma_buf_mmio - a dma-buf of MMIO that its exporter can revoke
 * @dmabuf: the dma-buf, set by dma_buf_mmio_export()
 * @ops: the owner's callbacks
 * @provider: P2PDMA provider of the BAR the ranges are in
 * @phys_vec: the ranges, owned by the exporter, constant after export
 * @nr_ranges: number of @phys_vec entries
 * @size: the dma-buf's size, the sum of the range lengths
 * @mem_type: how the CPU must map the ranges
 * @revoked: importers may not map; under the reservation lock
 * @users: one per live mapping and physical-range answer, plus one while
 *	not revoked; a revoke drops that one and waits for @users_done
 * @users_done: completed by the release of the last of @users
 *
 * Embedded by the exporter, which fills in @provider to @mem_type before
 * dma_buf_mmio_export(); the other fields belong to the helper.
 */
struct dma_buf_mmio {
	struct dma_buf *dmabuf;
	const struct dma_buf_mmio_ops *ops;
	struct p2pdma_provider *provider;
	const struct dma_buf_phys_vec *phys_vec;
	size_t nr_ranges;
	size_t size;
	enum dma_buf_mem_type mem_type;
	bool revoked;
	struct kref users;
	struct completion users_done;
};

#ifdef CONFIG_DMABUF_MAPPING
struct sg_table *dma_buf_phys_vec_to_sgt(struct dma_buf_attachment *attach,
					 struct p2pdma_provider *provider,
					 const struct dma_buf_phys_vec *phys_vec,
					 size_t nr_ranges, size_t size,
					 enum dma_data_direction dir);
void dma_buf_free_sgt(struct dma_buf_attachment *attach, struct sg_table *sgt,
		      enum dma_data_direction dir);
int __dma_buf_mmio_export(struct dma_buf_mmio *mmio,
			  const struct dma_buf_mmio_ops *ops, int flags,
			  const char *name, struct module *owner);
void dma_buf_mmio_revoke(struct dma_buf_mmio *mmio);
void dma_buf_mmio_restore(struct dma_buf_mmio *mmio);
#else
static inline struct sg_table *
dma_buf_phys_vec_to_sgt(struct dma_buf_attachment *attach,
			struct p2pdma_provider *provider,
			const struct dma_buf_phys_vec *phys_vec, size_t nr_ranges,
			size_t size, enum dma_data_direction dir)
{
	return ERR_PTR(-EOPNOTSUPP);
}

static inline void dma_buf_free_sgt(struct dma_buf_attachment *attach,
				    struct sg_table *sgt,
				    enum dma_data_direction dir)
{
}

static inline int __dma_buf_mmio_export(struct dma_buf_mmio *mmio,
					const struct dma_buf_mmio_ops *ops,
					int flags, const char *name,
					struct module *owner)
{
	return -EOPNOTSUPP;
}

static inline void dma_buf_mmio_revoke(struct dma_buf_mmio *mmio)
{
}

static inline void dma_buf_mmio_restore(struct dma_buf_mmio *mmio)
{
}
#endif /* CONFIG_DMABUF_MAPPING */

/**
 * dma_buf_mmio_export - export MMIO ranges as a revocable dma-buf
 * @mmio: the exporter's description, embedded in its own structure
 * @ops: the owner's callbacks
 * @flags: file flags of the dma-buf (O_RDWR, O_CLOEXEC)
 *
 * The calling module owns the dma-buf: it stays loaded while the file is
 * open, since the release calls into it. See __dma_buf_mmio_export().
 *
 * Context: process context.
 * Return: 0 with @mmio->dmabuf set; -EOPNOTSUPP without
 * CONFIG_DMABUF_MAPPING; otherwise as __dma_buf_mmio_export().
 */
#define dma_buf_mmio_export(mmio, ops, flags) \
	__dma_buf_mmio_export(mmio, ops, flags, KBUILD_MODNAME, THIS_MODULE)

#endif /* __DMA_BUF_MAPPING_H__ */
