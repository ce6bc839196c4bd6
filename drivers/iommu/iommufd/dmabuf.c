// SPDX-License-Identifier: GPL-2.0
/*
 * dma-bufs of device memory in an IOAS: the iopt_pages of a dma-buf.
 *
 * IOMMU_IOAS_MAP_FILE with a dma-buf fd maps the buffer's physical ranges
 * (a BAR slice exported by vfio-pci, the doorbell pages of an RDMA device)
 * into every domain of the IOAS, so that the devices attached to it reach
 * that memory peer to peer. Nothing is pinned and nothing is accounted:
 * the memory belongs to the exporter, which takes it back with move_notify
 * when its device stops decoding it (reset, memory decode off, close).
 *
 * The pages attach to the dma-buf revocably and hold one answer of
 * dma_buf_attachment_get_phys() while the buffer is usable ("live"). Each
 * (area, domain) pair that should map the pages is recorded in @maps; while
 * live every recorded pair is mapped, while not live none is. move_notify
 * unmaps every pair, flushing the IOTLB, and gives the answer back: DMA to
 * those IOVAs then faults in the IOMMU. It asks again at once, and if the
 * exporter answers (a restore also calls move_notify), maps every pair
 * again: the user does nothing. A buffer revoked for good (the exporting
 * device was closed) never answers again; its areas stay, mapping nothing,
 * until the user unmaps them.
 *
 * Every device attached to the IOAS must reach the memory peer to peer
 * through the IOMMU: checked when the buffer is mapped or copied, when a
 * device is attached, and when the buffer is restored.
 *
 * Locking: @lock protects @live, @phys, @maps and @dying. It is taken after
 * the iopt locks and pages->mutex on the iopt side, after the dma-buf's
 * reservation lock in move_notify, and before only the iopt's devices_lock.
 * @live and @phys change with both the reservation lock and @lock held. The
 * reservation lock is never taken under @lock or pages->mutex.
 *
 * move_notify can come as soon as dma_buf_dynamic_attach() put the
 * attachment on the dma-buf's list, before the pages know their attachment
 * and until dma_buf_detach() took it off: it uses the attachment it is
 * given, and does nothing once the pages are @dying.
 */
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/iommu.h>
#include <linux/pci-p2pdma.h>
#include <linux/slab.h>

#include "io_pagetable.h"

/* An (area, domain) pair that maps the pages while they are live */
struct iopt_dmabuf_map {
	struct list_head node;
	struct iopt_area *area;
	struct iommu_domain *domain;
};

static int iopt_dmabuf_prot(struct iopt_pages *pages, struct iopt_area *area)
{
	/* I/O memory is device memory to IOMMUs that tell the difference */
	if (pages->dmabuf.phys.mem_type == DMA_BUF_MEM_WB)
		return area->iommu_prot;
	return area->iommu_prot | IOMMU_MMIO;
}

static void iopt_dmabuf_unmap_range(struct iommu_domain *domain,
				    unsigned long iova, size_t length)
{
	size_t unmapped = iommu_unmap(domain, iova, length);

	/* What was mapped can be unmapped: anything else is a driver bug. */
	WARN_ON(unmapped != length);
}

/* Map the area's slice of the buffer at the area's IOVA in @domain */
static int iopt_dmabuf_map_area(struct iopt_pages *pages,
				struct iopt_area *area,
				struct iommu_domain *domain)
{
	const struct dma_buf_phys *phys = &pages->dmabuf.phys;
	unsigned long offset = pages->dmabuf.start +
			       iopt_area_index(area) * PAGE_SIZE;
	unsigned long start_iova = iopt_area_iova(area);
	unsigned long left = iopt_area_length(area);
	unsigned long iova = start_iova;
	int prot = iopt_dmabuf_prot(pages, area);
	size_t i;
	int rc;

	lockdep_assert_held(&pages->dmabuf.lock);

	for (i = 0; i < phys->nr_ranges && left; i++) {
		const struct dma_buf_phys_vec *range = &phys->ranges[i];
		size_t len;

		if (offset >= range->len) {
			offset -= range->len;
			continue;
		}
		len = min(range->len - offset, left);
		rc = iommu_map(domain, iova, range->paddr + offset, len, prot,
			       GFP_KERNEL_ACCOUNT);
		if (rc)
			goto err_unmap;
		iova += len;
		left -= len;
		offset = 0;
	}
	/* The ranges were checked to cover the buffer when it was imported */
	if (WARN_ON(left)) {
		rc = -EINVAL;
		goto err_unmap;
	}
	return 0;

err_unmap:
	if (iova != start_iova)
		iopt_dmabuf_unmap_range(domain, start_iova, iova - start_iova);
	return rc;
}

static void iopt_dmabuf_unmap_area(struct iopt_area *area,
				   struct iommu_domain *domain)
{
	iopt_dmabuf_unmap_range(domain, iopt_area_iova(area),
				iopt_area_length(area));
}

/*
 * Whether @dev reaches the memory peer to peer. Its DMA is translated by
 * the IOMMU, so its requests go up to the root complex whatever lies
 * between the two devices (a common switch would route on the IOVA, not
 * on the memory's address): the host bridge must forward them.
 */
static int iopt_dmabuf_route(struct iopt_pages *pages, struct device *dev)
{
	struct p2pdma_provider *provider = pages->dmabuf.phys.provider;

	lockdep_assert_held(&pages->dmabuf.lock);

	if (!pci_p2pdma_host_bridge_forwards(provider, dev))
		return -EREMOTEIO;
	return 0;
}

/* Whether every device attached through @iopt reaches the live pages */
static int iopt_dmabuf_route_iopt(struct iopt_pages *pages,
				  struct io_pagetable *iopt)
{
	struct iopt_device *idev;
	int rc = 0;

	mutex_lock(&iopt->devices_lock);
	list_for_each_entry(idev, &iopt->devices, node) {
		rc = iopt_dmabuf_route(pages, idev->dev);
		if (rc)
			break;
	}
	mutex_unlock(&iopt->devices_lock);
	return rc;
}

/**
 * iopt_dmabuf_check_devices() - May @pages be mapped into @iopt?
 * @iopt: the io_pagetable
 * @pages: dma-buf pages
 *
 * Return: 0 if every device attached through @iopt reaches the memory peer
 * to peer, -EREMOTEIO if one does not, -ENODEV if the buffer is revoked.
 */
int iopt_dmabuf_check_devices(struct io_pagetable *iopt,
			      struct iopt_pages *pages)
{
	int rc = -ENODEV;

	mutex_lock(&pages->dmabuf.lock);
	if (pages->dmabuf.live)
		rc = iopt_dmabuf_route_iopt(pages, iopt);
	mutex_unlock(&pages->dmabuf.lock);
	return rc;
}

/**
 * iopt_dmabuf_check_device() - May @dev be attached through @iopt?
 * @iopt: the io_pagetable, iova_rwsem held
 * @dev: a device being attached, in @iopt's device list already
 *
 * A revoked dma-buf is checked when it is restored.
 *
 * Return: 0 if @dev reaches every live dma-buf mapped in @iopt peer to
 * peer, -EREMOTEIO otherwise.
 */
int iopt_dmabuf_check_device(struct io_pagetable *iopt, struct device *dev)
{
	struct iopt_area *area;
	int rc = 0;

	lockdep_assert_held(&iopt->iova_rwsem);

	for (area = iopt_area_iter_first(iopt, 0, ULONG_MAX); area && !rc;
	     area = iopt_area_iter_next(area, 0, ULONG_MAX)) {
		struct iopt_pages *pages = area->pages;

		if (!pages || pages->type != IOPT_ADDRESS_DMABUF)
			continue;
		mutex_lock(&pages->dmabuf.lock);
		if (pages->dmabuf.live)
			rc = iopt_dmabuf_route(pages, dev);
		mutex_unlock(&pages->dmabuf.lock);
	}
	return rc;
}

/* Map every recorded pair; on failure none is mapped */
static int iopt_dmabuf_map_all(struct iopt_pages *pages)
{
	struct iopt_dmabuf_map *map, *undo;
	int rc;

	list_for_each_entry(map, &pages->dmabuf.maps, node) {
		/* Devices may have been attached while it was revoked */
		rc = iopt_dmabuf_route_iopt(pages, map->area->iopt);
		if (!rc)
			rc = iopt_dmabuf_map_area(pages, map->area, map->domain);
		if (rc)
			goto err_unmap;
	}
	return 0;

err_unmap:
	list_for_each_entry(undo, &pages->dmabuf.maps, node) {
		if (undo == map)
			break;
		iopt_dmabuf_unmap_area(undo->area, undo->domain);
	}
	return rc;
}

/* Called with the reservation lock and @lock held */
static int iopt_dmabuf_get_phys(struct iopt_pages *pages,
				struct dma_buf_attachment *attach)
{
	const struct dma_buf_phys *phys = &pages->dmabuf.phys;
	unsigned long end = pages->dmabuf.start + pages->npages * PAGE_SIZE;
	unsigned long total = 0;
	size_t i;
	int rc;

	rc = dma_buf_attachment_get_phys(attach, &pages->dmabuf.phys);
	if (rc)
		return rc;

	/* The IOMMU maps whole pages: ranges must be made of them */
	for (i = 0; i < phys->nr_ranges; i++) {
		if (!PAGE_ALIGNED(phys->ranges[i].paddr) ||
		    !PAGE_ALIGNED(phys->ranges[i].len) ||
		    check_add_overflow(total, phys->ranges[i].len, &total)) {
			rc = -EOPNOTSUPP;
			goto err_put;
		}
	}
	if (total < end) {
		rc = -EINVAL;
		goto err_put;
	}
	pages->dmabuf.live = true;
	return 0;

err_put:
	dma_buf_attachment_put_phys(attach);
	return rc;
}

static void iopt_dmabuf_put_phys(struct iopt_pages *pages,
				 struct dma_buf_attachment *attach)
{
	dma_buf_attachment_put_phys(attach);
	pages->dmabuf.live = false;
}

/*
 * The exporter revokes the buffer, or restores it: unmap everything and
 * give the ranges back, then map again if the exporter answers. Called
 * with the reservation lock held.
 */
static void iopt_dmabuf_move_notify(struct dma_buf_attachment *attach)
{
	struct iopt_pages *pages = attach->importer_priv;
	struct iopt_dmabuf_map *map;
	int rc;

	mutex_lock(&pages->dmabuf.lock);
	if (pages->dmabuf.dying)
		goto out_unlock;
	if (pages->dmabuf.live) {
		list_for_each_entry(map, &pages->dmabuf.maps, node)
			iopt_dmabuf_unmap_area(map->area, map->domain);
		iopt_dmabuf_put_phys(pages, attach);
	}

	/* -ENODEV while revoked: nothing to do until the next notify */
	if (iopt_dmabuf_get_phys(pages, attach))
		goto out_unlock;

	rc = iopt_dmabuf_map_all(pages);
	if (rc) {
		/* Stay unmapped: DMA faults, as while revoked */
		iopt_dmabuf_put_phys(pages, attach);
		pr_warn_ratelimited("iommufd: dma-buf %s not mapped again after a restore: %d\n",
				    attach->dmabuf->exp_name, rc);
	}
out_unlock:
	mutex_unlock(&pages->dmabuf.lock);
}

static const struct dma_buf_attach_ops iopt_dmabuf_attach_ops = {
	.allow_peer2peer = true,
	.move_notify = iopt_dmabuf_move_notify,
};

/**
 * iopt_alloc_dmabuf_pages() - Pages of a dma-buf of device memory
 * @dmabuf: the dma-buf; the pages take a reference of their own
 * @start: byte offset into @dmabuf of the first byte, page aligned
 * @length: number of bytes, page aligned
 * @writable: whether the pages may be mapped for DMA writes
 *
 * Attaches to @dmabuf revocably and asks for its physical ranges.
 *
 * Return: the pages; ERR_PTR(-EINVAL) for an unaligned or out of bounds
 * @start or @length, -EPERM for writable pages of a dma-buf not open for
 * writing, -ENODEV if the buffer is revoked, -EOPNOTSUPP if the exporter
 * cannot describe it by physical ranges of whole pages (a buffer of system
 * memory, a dynamic exporter without the answer), or another error of the
 * attach.
 */
struct iopt_pages *iopt_alloc_dmabuf_pages(struct dma_buf *dmabuf,
					   unsigned long start,
					   unsigned long length, bool writable)
{
	struct dma_buf_attachment *attach;
	struct iopt_pages *pages;
	unsigned long end;
	int rc = 0;

	if (!PAGE_ALIGNED(start) || !PAGE_ALIGNED(length) || !length ||
	    check_add_overflow(start, length, &end) || end > dmabuf->size)
		return ERR_PTR(-EINVAL);
	/*
	 * Exporters of device memory are dynamic. Attaching to any other one
	 * would make the dma-buf core map its buffer for iommufd's device,
	 * which does no DMA, only to find that it has no physical ranges.
	 */
	if (!dma_buf_is_dynamic(dmabuf))
		return ERR_PTR(-EOPNOTSUPP);
	if (writable && !(dmabuf->file->f_mode & FMODE_WRITE))
		return ERR_PTR(-EPERM);

	pages = iopt_alloc_pages(start, length, writable);
	if (IS_ERR(pages))
		return pages;
	/* Device memory: nothing is pinned, nothing is accounted */
	pages->account_mode = IOPT_PAGES_ACCOUNT_NONE;
	pages->type = IOPT_ADDRESS_DMABUF;
	pages->dmabuf.start = start;
	mutex_init(&pages->dmabuf.lock);
	INIT_LIST_HEAD(&pages->dmabuf.maps);

	attach = dma_buf_dynamic_attach(dmabuf, iommufd_global_device(),
					&iopt_dmabuf_attach_ops, pages);
	if (IS_ERR(attach)) {
		rc = PTR_ERR(attach);
		goto err_free;
	}
	get_dma_buf(dmabuf);
	pages->dmabuf.attach = attach;

	/* Unless a revoke and restore since the attach already asked */
	dma_resv_lock(dmabuf->resv, NULL);
	mutex_lock(&pages->dmabuf.lock);
	if (!pages->dmabuf.live)
		rc = iopt_dmabuf_get_phys(pages, attach);
	mutex_unlock(&pages->dmabuf.lock);
	dma_resv_unlock(dmabuf->resv);
	if (rc)
		goto err_put;
	return pages;

err_put:
	/* Detaches and frees the pages */
	iopt_put_pages(pages);
	return ERR_PTR(rc);
err_free:
	iopt_put_pages(pages);
	return ERR_PTR(rc);
}

/* From iopt_release_pages(): no area uses the pages any more */
void iopt_dmabuf_release(struct iopt_pages *pages)
{
	struct dma_buf *dmabuf;

	WARN_ON(!list_empty(&pages->dmabuf.maps));
	if (!pages->dmabuf.attach)
		goto out;
	dmabuf = pages->dmabuf.attach->dmabuf;

	/* No move_notify may ask for the ranges again until the detach */
	dma_resv_lock(dmabuf->resv, NULL);
	mutex_lock(&pages->dmabuf.lock);
	pages->dmabuf.dying = true;
	if (pages->dmabuf.live)
		iopt_dmabuf_put_phys(pages, pages->dmabuf.attach);
	mutex_unlock(&pages->dmabuf.lock);
	dma_resv_unlock(dmabuf->resv);

	dma_buf_detach(dmabuf, pages->dmabuf.attach);
	dma_buf_put(dmabuf);
out:
	mutex_destroy(&pages->dmabuf.lock);
}

/**
 * iopt_dmabuf_map_domain() - Record that @domain maps @area
 * @pages: dma-buf pages
 * @area: an area of @pages (area->pages may not be set yet)
 * @domain: a domain of the area's iopt
 *
 * Maps the area's slice of the buffer now if the buffer is live, or when
 * the exporter restores it. Called with pages->mutex held.
 *
 * Return: 0, or -ENOMEM or an error of iommu_map() with nothing changed.
 */
int iopt_dmabuf_map_domain(struct iopt_pages *pages, struct iopt_area *area,
			   struct iommu_domain *domain)
{
	struct iopt_dmabuf_map *map;
	int rc = 0;

	lockdep_assert_held(&pages->mutex);

	map = kzalloc(sizeof(*map), GFP_KERNEL_ACCOUNT);
	if (!map)
		return -ENOMEM;
	map->area = area;
	map->domain = domain;

	mutex_lock(&pages->dmabuf.lock);
	if (pages->dmabuf.live)
		rc = iopt_dmabuf_map_area(pages, area, domain);
	if (rc)
		kfree(map);
	else
		list_add_tail(&map->node, &pages->dmabuf.maps);
	mutex_unlock(&pages->dmabuf.lock);
	return rc;
}

/**
 * iopt_dmabuf_unmap_domain() - Undo iopt_dmabuf_map_domain()
 * @pages: dma-buf pages
 * @area: an area of @pages (area->pages may be cleared already)
 * @domain: a domain the area was recorded for
 *
 * Unmaps the area from @domain if the buffer is live. Cannot fail.
 */
void iopt_dmabuf_unmap_domain(struct iopt_pages *pages, struct iopt_area *area,
			      struct iommu_domain *domain)
{
	struct iopt_dmabuf_map *map;

	mutex_lock(&pages->dmabuf.lock);
	list_for_each_entry(map, &pages->dmabuf.maps, node) {
		if (map->area != area || map->domain != domain)
			continue;
		if (pages->dmabuf.live)
			iopt_dmabuf_unmap_area(area, domain);
		list_del(&map->node);
		kfree(map);
		goto out_unlock;
	}
	WARN_ON(true);
out_unlock:
	mutex_unlock(&pages->dmabuf.lock);
}

/**
 * iopt_dmabuf_fill_domains() - Record a new area in every domain of its iopt
 * @pages: dma-buf pages
 * @area: the new area, area->pages not set yet
 *
 * Called with the iopt's domains_rwsem and pages->mutex held.
 *
 * Return: 0, or an error of iopt_dmabuf_map_domain() with nothing changed.
 */
int iopt_dmabuf_fill_domains(struct iopt_pages *pages, struct iopt_area *area)
{
	struct iommu_domain *domain, *undo;
	unsigned long index, undo_index;
	int rc;

	xa_for_each(&area->iopt->domains, index, domain) {
		rc = iopt_dmabuf_map_domain(pages, area, domain);
		if (rc)
			goto err_unmap;
	}
	return 0;

err_unmap:
	xa_for_each(&area->iopt->domains, undo_index, undo) {
		if (undo_index == index)
			break;
		iopt_dmabuf_unmap_domain(pages, area, undo);
	}
	return rc;
}
