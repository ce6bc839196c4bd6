// SPDX-License-Identifier: GPL-2.0-only
/*
 * DMA mapping of MMIO ranges exported through dma-buf.
 *
 * An exporter of device memory (a slice of a PCI BAR) has no struct pages
 * to put in a scatterlist. It describes its buffer as a list of physical
 * ranges and maps them here for the importing device, routed by the PCI
 * P2PDMA provider of the BAR.
 */
#include <linux/dma-buf.h>
#include <linux/dma-buf-mapping.h>
#include <linux/dma-map-ops.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/iommu-dma.h>
#include <linux/overflow.h>
#include <linux/pci-p2pdma.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>

/*
 * Longest DMA entry emitted: the largest page-aligned length that fits the
 * unsigned int length of a scatterlist entry. Longer ranges are split.
 */
#define DMA_BUF_MAX_SEG		ALIGN_DOWN(UINT_MAX, PAGE_SIZE)

/*
 * MMIO is not cached by the CPU: there is nothing to sync. Saying so also
 * tells DMA-API debugging that several importers may map the same range.
 */
#define DMA_BUF_MAP_ATTRS	DMA_ATTR_SKIP_CPU_SYNC

/*
 * The sg_table handed to the importer, with what dma_buf_free_sgt() needs to
 * undo the mapping: the route, and each range's length so that every
 * dma_map_resource() is undone by exactly one dma_unmap_resource().
 */
struct dma_buf_dma {
	struct sg_table sgt;
	enum pci_p2pdma_map_type map;
	size_t nr_ranges;
	size_t len[] __counted_by(nr_ranges);
};

/* Entries for a range of @len bytes; no DIV_ROUND_UP(), it could wrap. */
static size_t dma_buf_range_nents(size_t len)
{
	return len / DMA_BUF_MAX_SEG + !!(len % DMA_BUF_MAX_SEG);
}

/*
 * Check the ranges and count the scatterlist entries they need. Every range
 * must be non-empty, page aligned and must not wrap the physical address
 * space; the lengths must add up to @size. Returns 0 and the entry count in
 * @nents, -EINVAL for a bad range, -EMSGSIZE if the lengths do not add up
 * to @size, -EOVERFLOW if a sum or the entry count overflows.
 */
static int dma_buf_count_nents(const struct dma_buf_phys_vec *phys_vec,
			       size_t nr_ranges, size_t size,
			       unsigned int *nents)
{
	size_t total = 0, count = 0, i;
	phys_addr_t last;

	if (!nr_ranges)
		return -EINVAL;

	for (i = 0; i < nr_ranges; i++) {
		size_t len = phys_vec[i].len;

		if (!len || !PAGE_ALIGNED(len) ||
		    !PAGE_ALIGNED(phys_vec[i].paddr))
			return -EINVAL;
		if (check_add_overflow(phys_vec[i].paddr, (phys_addr_t)len - 1,
				       &last))
			return -EOVERFLOW;
		if (check_add_overflow(total, len, &total) ||
		    check_add_overflow(count, dma_buf_range_nents(len), &count))
			return -EOVERFLOW;
	}

	if (total != size)
		return -EMSGSIZE;
	if (count > UINT_MAX)
		return -EOVERFLOW;

	*nents = count;
	return 0;
}

/*
 * Describe @len bytes at DMA address @addr with as many entries as needed,
 * starting at @sg. Returns the entry after the last one written (NULL when
 * the table is full).
 */
static struct scatterlist *dma_buf_fill_entries(struct scatterlist *sg,
						dma_addr_t addr, size_t len,
						bool bus_addr)
{
	while (len) {
		unsigned int seg = min_t(size_t, len, DMA_BUF_MAX_SEG);

		sg_dma_address(sg) = addr;
		sg_dma_len(sg) = seg;
		if (bus_addr)
			sg_dma_mark_bus_address(sg);
		addr += seg;
		len -= seg;
		sg = sg_next(sg);
	}
	return sg;
}

/*
 * Does @dev reach [@addr, @addr + @len) untranslated, within its DMA mask
 * and bus limit? A peer's BAR can sit above what a device can address;
 * the address must then fail the mapping rather than be truncated.
 */
static bool dma_buf_dev_addressable(struct device *dev, dma_addr_t addr,
				    size_t len)
{
	u64 limit = min_not_zero(dma_get_mask(dev), dev->bus_dma_limit);

	return addr <= limit && len - 1 <= limit - addr;
}

/*
 * Will dma_map_resource() hand @dev the physical address itself (dma-direct:
 * no IOMMU translation, no DMA ops)? dma-direct then refuses an address
 * beyond the mask with a warning; the helper checks first.
 */
static bool dma_buf_dev_untranslated(struct device *dev)
{
	return !use_dma_iommu(dev) && !get_dma_ops(dev);
}

/*
 * The DMA address of one range for @dev on route @map: the bus address, or
 * a dma_map_resource() (undone by dma_buf_unmap_ranges()). 0 or -errno.
 */
static int dma_buf_map_range(struct device *dev, enum pci_p2pdma_map_type map,
			     const struct p2pdma_provider *provider,
			     phys_addr_t paddr, size_t len,
			     enum dma_data_direction dir, dma_addr_t *addr)
{
	if (map == PCI_P2PDMA_MAP_BUS_ADDR) {
		*addr = paddr + provider->bus_offset;
		return dma_buf_dev_addressable(dev, *addr, len) ? 0 : -EINVAL;
	}

	if (dma_buf_dev_untranslated(dev) &&
	    !dma_buf_dev_addressable(dev, paddr, len))
		return -EINVAL;

	*addr = dma_map_resource(dev, paddr, len, dir, DMA_BUF_MAP_ATTRS);
	return dma_mapping_error(dev, *addr) ? -ENOMEM : 0;
}

/* Undo the dma_map_resource() of the first @nr_mapped ranges. */
static void dma_buf_unmap_ranges(struct device *dev, struct dma_buf_dma *dma,
				 size_t nr_mapped, enum dma_data_direction dir)
{
	struct scatterlist *sg = dma->sgt.sgl;
	size_t i, n;

	if (dma->map != PCI_P2PDMA_MAP_THRU_HOST_BRIDGE)
		return;

	for (i = 0; i < nr_mapped; i++) {
		dma_unmap_resource(dev, sg_dma_address(sg), dma->len[i], dir,
				   DMA_BUF_MAP_ATTRS);
		for (n = dma_buf_range_nents(dma->len[i]); n; n--)
			sg = sg_next(sg);
	}
}

static void dma_buf_release_dma(struct device *dev, struct dma_buf_dma *dma,
				size_t nr_mapped, enum dma_data_direction dir)
{
	dma_buf_unmap_ranges(dev, dma, nr_mapped, dir);
	/* The entries were allocated with orig_nents, which the table hides. */
	dma->sgt.orig_nents = dma->sgt.nents;
	sg_free_table(&dma->sgt);
	kvfree(dma);
}

/*
 * Build the table for a known route. @dev is only used to map through the
 * host bridge; @provider only for its bus offset.
 */
static struct sg_table *
dma_buf_build_sgt(struct device *dev, enum pci_p2pdma_map_type map,
		  const struct p2pdma_provider *provider,
		  const struct dma_buf_phys_vec *phys_vec, size_t nr_ranges,
		  size_t size, enum dma_data_direction dir)
{
	struct scatterlist *sg;
	struct dma_buf_dma *dma;
	unsigned int nents;
	size_t i;
	int ret;

	ret = dma_buf_count_nents(phys_vec, nr_ranges, size, &nents);
	if (ret)
		return ERR_PTR(ret);

	if (map != PCI_P2PDMA_MAP_BUS_ADDR &&
	    map != PCI_P2PDMA_MAP_THRU_HOST_BRIDGE)
		return ERR_PTR(-EINVAL);

	/* One length per range: many ranges need more than a few pages. */
	dma = kvzalloc(struct_size(dma, len, nr_ranges), GFP_KERNEL);
	if (!dma)
		return ERR_PTR(-ENOMEM);
	dma->nr_ranges = nr_ranges;
	dma->map = map;

	ret = sg_alloc_table(&dma->sgt, nents, GFP_KERNEL);
	if (ret) {
		kvfree(dma);
		return ERR_PTR(ret);
	}

	sg = dma->sgt.sgl;
	for (i = 0; i < nr_ranges; i++) {
		size_t len = phys_vec[i].len;
		dma_addr_t addr;

		ret = dma_buf_map_range(dev, map, provider, phys_vec[i].paddr,
					len, dir, &addr);
		if (ret) {
			dma_buf_release_dma(dev, dma, i, dir);
			return ERR_PTR(ret);
		}
		dma->len[i] = len;
		sg = dma_buf_fill_entries(sg, addr, len,
					  map == PCI_P2PDMA_MAP_BUS_ADDR);
	}

	/* DMA addresses only: no CPU list for importers to walk. */
	dma->sgt.orig_nents = 0;
	return &dma->sgt;
}

/**
 * dma_buf_phys_vec_to_sgt - map MMIO ranges of a dma-buf for an importer
 * @attach: the importer's attachment; its device does the DMA
 * @provider: P2PDMA provider of the BAR that holds every range
 *	(pcim_p2pdma_provider())
 * @phys_vec: the ranges, in buffer order, by CPU physical address
 * @nr_ranges: number of entries in @phys_vec
 * @size: size of the dma-buf; must be the sum of the range lengths
 * @dir: DMA direction of the mapping
 *
 * For exporters of device memory without struct pages, to be called from
 * &dma_buf_ops.map_dma_buf with the dma-buf's reservation lock held. The
 * route from @attach->dev to the BAR decides the addresses:
 *
 * - %PCI_P2PDMA_MAP_BUS_ADDR (same PCI switch): PCI bus addresses
 *   (physical address plus the provider's bus offset), no IOMMU mapping;
 * - %PCI_P2PDMA_MAP_THRU_HOST_BRIDGE: each range is mapped with
 *   dma_map_resource(), giving an IOVA when the device is behind an IOMMU.
 *
 * The returned table holds DMA addresses only: no pages, no CPU entries
 * (&sg_table.orig_nents is 0), so importers walk it with
 * for_each_sgtable_dma_sg(). Entries are page aligned and at most
 * ALIGN_DOWN(UINT_MAX, PAGE_SIZE) bytes long; longer ranges are split over
 * several entries. Free it with dma_buf_free_sgt().
 *
 * Return: the table, or an ERR_PTR(): -EINVAL if the devices cannot reach
 * each other (no P2P route, or an untranslated address beyond the
 * importer's DMA mask or bus limit), a range is empty or not page aligned, or the lengths do not
 * add up to @size (which also warns: an exporter bug); -EOVERFLOW if the
 * ranges overflow; -ENOMEM if an allocation or a mapping fails. Nothing
 * stays mapped on error.
 */
struct sg_table *dma_buf_phys_vec_to_sgt(struct dma_buf_attachment *attach,
					 struct p2pdma_provider *provider,
					 const struct dma_buf_phys_vec *phys_vec,
					 size_t nr_ranges, size_t size,
					 enum dma_data_direction dir)
{
	struct sg_table *sgt;

	dma_resv_assert_held(attach->dmabuf->resv);

	if (!provider)
		return ERR_PTR(-EINVAL);

	sgt = dma_buf_build_sgt(attach->dev,
				pci_p2pdma_map_type(provider, attach->dev),
				provider, phys_vec, nr_ranges, size, dir);
	if (WARN_ON_ONCE(sgt == ERR_PTR(-EMSGSIZE)))
		return ERR_PTR(-EINVAL);
	return sgt;
}
EXPORT_SYMBOL_NS_GPL(dma_buf_phys_vec_to_sgt, DMA_BUF);

/**
 * dma_buf_free_sgt - unmap and free a table from dma_buf_phys_vec_to_sgt()
 * @attach: the attachment the table was mapped for
 * @sgt: the table
 * @dir: the DMA direction it was mapped with
 *
 * For &dma_buf_ops.unmap_dma_buf, with the dma-buf's reservation lock held.
 */
void dma_buf_free_sgt(struct dma_buf_attachment *attach, struct sg_table *sgt,
		      enum dma_data_direction dir)
{
	struct dma_buf_dma *dma = container_of(sgt, struct dma_buf_dma, sgt);

	dma_resv_assert_held(attach->dmabuf->resv);

	dma_buf_release_dma(attach->dev, dma, dma->nr_ranges, dir);
}
EXPORT_SYMBOL_NS_GPL(dma_buf_free_sgt, DMA_BUF);

#if IS_ENABLED(CONFIG_DMABUF_MAPPING_KUNIT_TEST)
#include "dma-buf-mapping_kunit.c"
#endif
