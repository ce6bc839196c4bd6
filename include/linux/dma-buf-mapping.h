/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DMA mapping of MMIO ranges exported through dma-buf.
 *
 * Exporters of device memory (a PCI BAR slice) describe their buffer as a
 * list of physical ranges and use dma_buf_phys_vec_to_sgt() in their
 * &dma_buf_ops.map_dma_buf callback to produce the DMA addresses for the
 * importing device. See Documentation/driver-api/pci/p2pdma.rst.
 */
#ifndef __DMA_BUF_MAPPING_H__
#define __DMA_BUF_MAPPING_H__

#include <linux/dma-direction.h>
#include <linux/err.h>
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

#ifdef CONFIG_DMABUF_MAPPING
struct sg_table *dma_buf_phys_vec_to_sgt(struct dma_buf_attachment *attach,
					 struct p2pdma_provider *provider,
					 struct dma_buf_phys_vec *phys_vec,
					 size_t nr_ranges, size_t size,
					 enum dma_data_direction dir);
void dma_buf_free_sgt(struct dma_buf_attachment *attach, struct sg_table *sgt,
		      enum dma_data_direction dir);
#else
static inline struct sg_table *
dma_buf_phys_vec_to_sgt(struct dma_buf_attachment *attach,
			struct p2pdma_provider *provider,
			struct dma_buf_phys_vec *phys_vec, size_t nr_ranges,
			size_t size, enum dma_data_direction dir)
{
	return ERR_PTR(-EOPNOTSUPP);
}

static inline void dma_buf_free_sgt(struct dma_buf_attachment *attach,
				    struct sg_table *sgt,
				    enum dma_data_direction dir)
{
}
#endif /* CONFIG_DMABUF_MAPPING */

#endif /* __DMA_BUF_MAPPING_H__ */
