// SPDX-License-Identifier: GPL-2.0-only
/*
 * dma-buf export of PCI BAR ranges (VFIO_DEVICE_FEATURE_DMA_BUF).
 *
 * Userspace picks page-aligned ranges of one memory BAR of a device it owns
 * through vfio-pci and receives a dma-buf fd for them, which it hands to
 * another driver (an RDMA NIC, a GPU, ...) so that device can reach the BAR
 * by peer-to-peer DMA.
 *
 * The BAR stays under the control of vfio-pci. Whenever userspace loses
 * access to the device's MMIO (memory decoding off, low power, reset) the
 * dma-bufs are revoked: importers are told with move_notify, must unmap,
 * and cannot map again until the memory is usable again. Closing the
 * device or unbinding the driver revokes them for good. A revoke returns
 * only once no importer holds a mapping, so the device can be reset or
 * handed over safely when it returns.
 *
 * Locking: vdev->memory_lock (held for write to change the state of the
 * dma-bufs, and to add or remove one from vdev->dmabufs) nests outside
 * each dma-buf's reservation lock, which protects @revoked and under which
 * importers take users (mappings, vmaps). Users are given back with the
 * lock held too, except that the revoke waits for the last of them without
 * it: the kref and completion in struct vfio_pci_dma_buf.
 */
#include <linux/dma-buf.h>
#include <linux/dma-buf-mapping.h>
#include <linux/dma-resv.h>
#include <linux/file.h>
#include <linux/iosys-map.h>
#include <linux/kref.h>
#include <linux/pci-p2pdma.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "vfio_pci_priv.h"

MODULE_IMPORT_NS(DMA_BUF);

struct vfio_pci_dma_buf {
	struct dma_buf *dmabuf;
	/* The exporting device; NULL once revoked for good. */
	struct vfio_pci_core_device *vdev;
	struct list_head dmabufs_elm;	/* in vdev->dmabufs */
	struct p2pdma_provider *provider;
	size_t size;
	int vmap_error;			/* why vmap is refused, or 0 */
	/* Under the reservation lock. */
	bool revoked;
	/*
	 * One reference per live DMA mapping and vmap, plus one while not
	 * revoked. A revoke drops that one and waits for @users_done, which
	 * the release of the last reference completes; a restore re-arms
	 * both. (kref_put() orders the count before complete(), and the
	 * completion's lock orders it before the waiter: no missed wake-up.)
	 */
	struct kref users;
	struct completion users_done;
	u32 nr_ranges;
	struct dma_buf_phys_vec phys_vec[] __counted_by(nr_ranges);
};

static int vfio_pci_dma_buf_attach(struct dma_buf *dmabuf,
				   struct dma_buf_attachment *attach)
{
	struct vfio_pci_dma_buf *priv = dmabuf->priv;

	/* The addresses are MMIO: only peer-to-peer capable importers. */
	if (!attach->peer2peer)
		return -EOPNOTSUPP;

	/*
	 * A revoke waits until every mapping is given back: an importer
	 * that move_notify cannot reach would make it wait forever, whether
	 * it pins or not.
	 */
	if (!dma_buf_attach_revocable(attach))
		return -EOPNOTSUPP;

	/* Unlocked: a revoke that races with us is caught at map time. */
	if (READ_ONCE(priv->revoked))
		return -ENODEV;

	return 0;
}

/*
 * A pin cannot keep the BAR usable across a reset or memory disable, and
 * grants nothing: only revocable importers get this far (see attach), and
 * they give their mapping back on move_notify whether pinned or not. The
 * callback makes the dma-buf dynamic; without CONFIG_DMABUF_MOVE_NOTIFY
 * the core also calls it around every mapping.
 */
static int vfio_pci_dma_buf_pin(struct dma_buf_attachment *attach)
{
	if (!dma_buf_attach_revocable(attach))
		return -EOPNOTSUPP;

	return 0;
}

static void vfio_pci_dma_buf_unpin(struct dma_buf_attachment *attach)
{
}

static void vfio_pci_dma_buf_users_done(struct kref *kref)
{
	struct vfio_pci_dma_buf *priv =
		container_of(kref, struct vfio_pci_dma_buf, users);

	complete(&priv->users_done);
}

/* A mapping or vmap is made; under the reservation lock, not revoked. */
static void vfio_pci_dma_buf_get_user(struct vfio_pci_dma_buf *priv)
{
	dma_resv_assert_held(priv->dmabuf->resv);
	kref_get(&priv->users);
}

static void vfio_pci_dma_buf_put_user(struct vfio_pci_dma_buf *priv)
{
	kref_put(&priv->users, vfio_pci_dma_buf_users_done);
}

static struct sg_table *
vfio_pci_dma_buf_map(struct dma_buf_attachment *attach,
		     enum dma_data_direction dir)
{
	struct vfio_pci_dma_buf *priv = attach->dmabuf->priv;
	struct sg_table *sgt;

	dma_resv_assert_held(priv->dmabuf->resv);

	if (priv->revoked)
		return ERR_PTR(-ENODEV);

	sgt = dma_buf_phys_vec_to_sgt(attach, priv->provider, priv->phys_vec,
				      priv->nr_ranges, priv->size, dir);
	if (!IS_ERR(sgt))
		vfio_pci_dma_buf_get_user(priv);

	return sgt;
}

static void vfio_pci_dma_buf_unmap(struct dma_buf_attachment *attach,
				   struct sg_table *sgt,
				   enum dma_data_direction dir)
{
	struct vfio_pci_dma_buf *priv = attach->dmabuf->priv;

	dma_buf_free_sgt(attach, sgt, dir);
	vfio_pci_dma_buf_put_user(priv);
}

/*
 * CPU access for importers without a DMA engine of their own (rxe): one
 * uncached kernel mapping of all the ranges, in order. The dma-buf core
 * calls this for the first dma_buf_vmap() only and vunmap for the last
 * dma_buf_vunmap(); importers drop their vmap in move_notify, and a revoke
 * waits for that like it waits for DMA mappings. Only ranges of a real BAR
 * are mapped this way (see vfio_pci_dma_buf_vmap_check()).
 */
static int vfio_pci_dma_buf_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct vfio_pci_dma_buf *priv = dmabuf->priv;
	unsigned long npages = priv->size >> PAGE_SHIFT;
	unsigned long *pfns, n = 0, i;
	void *vaddr;
	u32 r;

	dma_resv_assert_held(dmabuf->resv);

	if (priv->revoked)
		return -ENODEV;

	if (priv->vmap_error)
		return priv->vmap_error;

	/* Bounded by the BAR's size, still possibly large: no warning. */
	pfns = kvmalloc_array(npages, sizeof(*pfns),
			      GFP_KERNEL | __GFP_NOWARN);
	if (!pfns)
		return -ENOMEM;

	for (r = 0; r < priv->nr_ranges; r++)
		for (i = 0; i < priv->phys_vec[r].len >> PAGE_SHIFT; i++)
			pfns[n++] = PHYS_PFN(priv->phys_vec[r].paddr) + i;

	vaddr = vmap_pfn(pfns, npages, pgprot_noncached(PAGE_KERNEL));
	kvfree(pfns);
	if (!vaddr)
		return -ENOMEM;

	vfio_pci_dma_buf_get_user(priv);
	iosys_map_set_vaddr_iomem(map, (void __iomem *)vaddr);
	return 0;
}

static void vfio_pci_dma_buf_vunmap(struct dma_buf *dmabuf,
				    struct iosys_map *map)
{
	struct vfio_pci_dma_buf *priv = dmabuf->priv;

	vunmap((__force void *)map->vaddr_iomem);
	vfio_pci_dma_buf_put_user(priv);
}

static void vfio_pci_dma_buf_release(struct dma_buf *dmabuf)
{
	struct vfio_pci_dma_buf *priv = dmabuf->priv;

	/*
	 * vfio_pci_dma_buf_cleanup() skips dma-bufs whose file is already
	 * going away, so if it has not run, unlink here. The registration
	 * reference keeps priv->vdev alive until then.
	 */
	if (priv->vdev) {
		down_write(&priv->vdev->memory_lock);
		list_del_init(&priv->dmabufs_elm);
		up_write(&priv->vdev->memory_lock);
		vfio_device_put_registration(&priv->vdev->vdev);
	}
	kvfree(priv);
}

static const struct dma_buf_ops vfio_pci_dmabuf_ops = {
	.attach = vfio_pci_dma_buf_attach,
	.pin = vfio_pci_dma_buf_pin,
	.unpin = vfio_pci_dma_buf_unpin,
	.map_dma_buf = vfio_pci_dma_buf_map,
	.unmap_dma_buf = vfio_pci_dma_buf_unmap,
	.vmap = vfio_pci_dma_buf_vmap,
	.vunmap = vfio_pci_dma_buf_vunmap,
	.release = vfio_pci_dma_buf_release,
};

/*
 * Where one range of a region [@start, @start + @len) lies in the physical
 * address space: -EOVERFLOW if its start or end wraps, -EINVAL if it is
 * empty or does not fit in the region.
 */
static int vfio_pci_dma_range_to_phys(const struct vfio_region_dma_range *range,
				      phys_addr_t start, phys_addr_t len,
				      struct dma_buf_phys_vec *vec)
{
	phys_addr_t paddr, end;

	if (!range->length)
		return -EINVAL;
	if (check_add_overflow(start, range->offset, &paddr) ||
	    check_add_overflow(paddr, range->length, &end))
		return -EOVERFLOW;
	if (range->offset > len || range->length > len - range->offset)
		return -EINVAL;

	vec->paddr = paddr;
	vec->len = range->length;
	return 0;
}

/**
 * vfio_pci_core_fill_phys_vec - turn user ranges into physical ranges
 * @phys_vec: the physical ranges, @nr_ranges of them, filled in
 * @dma_ranges: the ranges userspace asked for, offsets into the region
 * @nr_ranges: number of ranges
 * @start: physical address of the start of the region
 * @len: length of the region
 *
 * For drivers implementing &vfio_pci_device_ops.get_dmabuf_phys. The
 * ranges have been checked to be non-empty and page aligned.
 *
 * Return: 0, -EOVERFLOW if a range wraps the physical address space, or
 * -EINVAL if a range does not lie inside the region.
 */
int vfio_pci_core_fill_phys_vec(struct dma_buf_phys_vec *phys_vec,
				struct vfio_region_dma_range *dma_ranges,
				size_t nr_ranges, phys_addr_t start,
				phys_addr_t len)
{
	size_t i;
	int ret;

	for (i = 0; i < nr_ranges; i++) {
		ret = vfio_pci_dma_range_to_phys(&dma_ranges[i], start, len,
						 &phys_vec[i]);
		if (ret)
			return ret;
	}
	return 0;
}
EXPORT_SYMBOL_GPL(vfio_pci_core_fill_phys_vec);

/**
 * vfio_pci_core_get_dmabuf_phys - physical ranges of a PCI BAR
 * @vdev: the device
 * @provider: set to the P2PDMA provider of the BAR
 * @region_index: the BAR
 * @phys_vec: the physical ranges, filled in
 * @dma_ranges: the ranges userspace asked for, offsets into the BAR
 * @nr_ranges: number of ranges
 *
 * The &vfio_pci_device_ops.get_dmabuf_phys of drivers whose regions are
 * the device's BARs. Like an mmap of the BAR, claims the BAR for vfio-pci
 * (pci_request_selected_regions()) until the device is closed, so that
 * nothing else in the kernel can take it while importers reach it.
 *
 * Return: 0, -EINVAL if @region_index is not a memory BAR or a range does
 * not lie inside it, -EOVERFLOW if a range wraps, or the error of claiming
 * the BAR (-EBUSY if another driver holds it).
 */
int vfio_pci_core_get_dmabuf_phys(struct vfio_pci_core_device *vdev,
				  struct p2pdma_provider **provider,
				  unsigned int region_index,
				  struct dma_buf_phys_vec *phys_vec,
				  struct vfio_region_dma_range *dma_ranges,
				  size_t nr_ranges)
{
	struct pci_dev *pdev = vdev->pdev;
	int ret;

	*provider = pcim_p2pdma_provider(pdev, region_index);
	if (!*provider)
		return -EINVAL;

	ret = vfio_pci_core_fill_phys_vec(phys_vec, dma_ranges, nr_ranges,
					  pci_resource_start(pdev, region_index),
					  pci_resource_len(pdev, region_index));
	if (ret)
		return ret;

	return vfio_pci_core_setup_barmap(vdev, region_index);
}
EXPORT_SYMBOL_GPL(vfio_pci_core_get_dmabuf_phys);

static int vfio_pci_dma_buf_check_ranges(struct vfio_region_dma_range *ranges,
					 u32 nr_ranges, size_t *size)
{
	u64 total = 0;
	u32 i;

	for (i = 0; i < nr_ranges; i++) {
		if (!ranges[i].length || !PAGE_ALIGNED(ranges[i].offset) ||
		    !PAGE_ALIGNED(ranges[i].length))
			return -EINVAL;

		if (check_add_overflow(total, ranges[i].length, &total))
			return -EINVAL;
	}

	/* The size is also a file size (loff_t): keep the top bit clear. */
	if ((total & BIT_ULL(63)) || total != (size_t)total)
		return -EINVAL;

	*size = total;
	return 0;
}

/*
 * CPU access maps the ranges uncached, which is only right for MMIO: refuse
 * ranges outside the device's BAR @bar (a variant driver's region backed by
 * cacheable memory, such as nvgrace-gpu's). The mapping's size comes from
 * userspace and overlapping ranges can make it far larger than the BAR:
 * a mapping larger than the BAR is refused too.
 */
static int vfio_pci_dma_buf_vmap_check(struct vfio_pci_dma_buf *priv,
				       struct pci_dev *pdev, unsigned int bar)
{
	resource_size_t start = pci_resource_start(pdev, bar);
	resource_size_t len = pci_resource_len(pdev, bar);
	u32 i;

	if (!(pci_resource_flags(pdev, bar) & IORESOURCE_MEM))
		return -EOPNOTSUPP;

	for (i = 0; i < priv->nr_ranges; i++) {
		phys_addr_t paddr = priv->phys_vec[i].paddr;

		if (paddr < start || paddr - start >= len ||
		    priv->phys_vec[i].len > len - (paddr - start))
			return -EOPNOTSUPP;
	}

	return priv->size > len ? -E2BIG : 0;
}

/* Can an importer use the device's MMIO now? Under memory_lock. */
static bool vfio_pci_dma_buf_usable(struct vfio_pci_core_device *vdev)
{
	return !vdev->pm_runtime_engaged && __vfio_pci_memory_enabled(vdev);
}

/*
 * The request of VFIO_DEVICE_FEATURE_DMA_BUF: the header in @get and the
 * ranges, checked in the documented order, with the dma-buf's size. The
 * ranges are freed by the caller.
 */
static struct vfio_region_dma_range *
vfio_pci_dma_buf_copy_request(struct vfio_device_feature_dma_buf __user *arg,
			      struct vfio_device_feature_dma_buf *get,
			      size_t *size)
{
	struct vfio_region_dma_range *ranges;
	int ret;

	if (copy_from_user(get, arg, sizeof(*get)))
		return ERR_PTR(-EFAULT);
	if (!get->nr_ranges || get->flags)
		return ERR_PTR(-EINVAL);
	/* For PCI the region index is the BAR number. */
	if (get->region_index >= VFIO_PCI_ROM_REGION_INDEX)
		return ERR_PTR(-ENODEV);

	ranges = memdup_array_user(&arg->dma_ranges, get->nr_ranges,
				   sizeof(*ranges));
	if (IS_ERR(ranges))
		return ranges;

	ret = vfio_pci_dma_buf_check_ranges(ranges, get->nr_ranges, size);
	if (ret) {
		kfree(ranges);
		return ERR_PTR(ret);
	}
	return ranges;
}

/*
 * The exporter's state for @ranges of region @region_index, translated by
 * the driver; not yet visible to anyone.
 */
static struct vfio_pci_dma_buf *
vfio_pci_dma_buf_alloc(struct vfio_pci_core_device *vdev,
		       unsigned int region_index,
		       struct vfio_region_dma_range *ranges, u32 nr_ranges,
		       size_t size)
{
	struct vfio_pci_dma_buf *priv;
	int ret;

	/* Up to a few MiB for the largest lists memdup_array_user() takes. */
	priv = kvzalloc(struct_size(priv, phys_vec, nr_ranges), GFP_KERNEL);
	if (!priv)
		return ERR_PTR(-ENOMEM);
	priv->nr_ranges = nr_ranges;
	priv->size = size;
	INIT_LIST_HEAD(&priv->dmabufs_elm);
	kref_init(&priv->users);
	init_completion(&priv->users_done);

	ret = vdev->pci_ops->get_dmabuf_phys(vdev, &priv->provider,
					     region_index, priv->phys_vec,
					     ranges, nr_ranges);
	if (ret) {
		kvfree(priv);
		return ERR_PTR(ret);
	}
	priv->vmap_error = vfio_pci_dma_buf_vmap_check(priv, vdev->pdev,
						       region_index);
	return priv;
}

/*
 * Wrap @priv in a dma-buf on the device's list, revoked if the memory is
 * unusable now, and return its new fd. On success the dma-buf owns @priv
 * and a registration reference of the device; on failure @priv is freed.
 */
static int vfio_pci_dma_buf_publish(struct vfio_pci_core_device *vdev,
				    struct vfio_pci_dma_buf *priv,
				    u32 open_flags)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	int ret;

	if (!vfio_device_try_get_registration(&vdev->vdev)) {
		kvfree(priv);
		return -ENODEV;
	}
	priv->vdev = vdev;

	exp_info.ops = &vfio_pci_dmabuf_ops;
	exp_info.size = priv->size;
	exp_info.flags = open_flags;
	exp_info.priv = priv;
	priv->dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(priv->dmabuf)) {
		ret = PTR_ERR(priv->dmabuf);
		vfio_device_put_registration(&vdev->vdev);
		kvfree(priv);
		return ret;
	}

	/* From here on dma_buf_put() releases priv and the registration. */
	down_write(&vdev->memory_lock);
	dma_resv_lock(priv->dmabuf->resv, NULL);
	if (!vfio_pci_dma_buf_usable(vdev)) {
		/* Revoked from the start: no reference for the live state. */
		WRITE_ONCE(priv->revoked, true);
		vfio_pci_dma_buf_put_user(priv);
	}
	list_add_tail(&priv->dmabufs_elm, &vdev->dmabufs);
	dma_resv_unlock(priv->dmabuf->resv);
	up_write(&vdev->memory_lock);

	ret = dma_buf_fd(priv->dmabuf, open_flags);
	if (ret < 0)
		dma_buf_put(priv->dmabuf);
	return ret;
}

int vfio_pci_core_feature_dma_buf(struct vfio_pci_core_device *vdev, u32 flags,
				  struct vfio_device_feature_dma_buf __user *arg,
				  size_t argsz)
{
	struct vfio_device_feature_dma_buf get;
	struct vfio_region_dma_range *ranges;
	struct vfio_pci_dma_buf *priv;
	size_t size;
	int ret;

	if (!vdev->pci_ops || !vdev->pci_ops->get_dmabuf_phys)
		return -EOPNOTSUPP;

	ret = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET,
				 sizeof(get));
	if (ret != 1)
		return ret;

	ranges = vfio_pci_dma_buf_copy_request(arg, &get, &size);
	if (IS_ERR(ranges))
		return PTR_ERR(ranges);

	priv = vfio_pci_dma_buf_alloc(vdev, get.region_index, ranges,
				      get.nr_ranges, size);
	kfree(ranges);
	if (IS_ERR(priv))
		return PTR_ERR(priv);

	return vfio_pci_dma_buf_publish(vdev, priv, get.open_flags);
}

/*
 * Change the state of one dma-buf. A revoke tells the importers, waits for
 * their fences, then waits until they have unmapped everything: when it
 * returns no importer can reach the BAR through this dma-buf. Giving access
 * back tells nobody: importers map again on their next access.
 */
static void vfio_pci_dma_buf_set_revoked(struct vfio_pci_dma_buf *priv,
					 bool revoked)
{
	struct dma_buf *dmabuf = priv->dmabuf;

	dma_resv_lock(dmabuf->resv, NULL);
	if (priv->revoked == revoked) {
		dma_resv_unlock(dmabuf->resv);
		return;
	}
	WRITE_ONCE(priv->revoked, revoked);
	if (!revoked) {
		/* Every user is gone: take the live reference again. */
		kref_init(&priv->users);
		reinit_completion(&priv->users_done);
		dma_resv_unlock(dmabuf->resv);
		return;
	}

	dma_buf_move_notify(dmabuf);
	dma_resv_wait_timeout(dmabuf->resv, DMA_RESV_USAGE_BOOKKEEP, false,
			      MAX_SCHEDULE_TIMEOUT);
	dma_resv_unlock(dmabuf->resv);

	/*
	 * Importers may give their mappings back after move_notify, from
	 * another context: wait for the last one.
	 */
	vfio_pci_dma_buf_put_user(priv);
	wait_for_completion(&priv->users_done);
}

/**
 * vfio_pci_dma_buf_move - revoke or restore every dma-buf of a device
 * @vdev: the device, memory_lock held for write
 * @revoked: true to revoke, false to let importers map again
 */
void vfio_pci_dma_buf_move(struct vfio_pci_core_device *vdev, bool revoked)
{
	struct vfio_pci_dma_buf *priv;

	lockdep_assert_held_write(&vdev->memory_lock);

	list_for_each_entry(priv, &vdev->dmabufs, dmabufs_elm) {
		/* A dma-buf whose file is going away has no importers. */
		if (!get_file_active(&priv->dmabuf->file))
			continue;
		vfio_pci_dma_buf_set_revoked(priv, revoked);
		fput(priv->dmabuf->file);
	}
}

/**
 * vfio_pci_dma_buf_restore - end a temporary revoke if the memory is usable
 * @vdev: the device, memory_lock held for write
 *
 * Called wherever the device's MMIO may have become usable again: memory
 * decoding enabled, back to D0, after a reset, out of runtime low power.
 */
void vfio_pci_dma_buf_restore(struct vfio_pci_core_device *vdev)
{
	lockdep_assert_held_write(&vdev->memory_lock);

	if (vfio_pci_dma_buf_usable(vdev))
		vfio_pci_dma_buf_move(vdev, false);
}

/* Revoked @priv for good: no longer the device's; under memory_lock. */
static void vfio_pci_dma_buf_orphan(struct vfio_pci_dma_buf *priv)
{
	struct vfio_pci_core_device *vdev = priv->vdev;

	dma_resv_lock(priv->dmabuf->resv, NULL);
	list_del_init(&priv->dmabufs_elm);
	priv->vdev = NULL;
	dma_resv_unlock(priv->dmabuf->resv);
	vfio_device_put_registration(&vdev->vdev);
}

/**
 * vfio_pci_dma_buf_cleanup - revoke every dma-buf of a device for good
 * @vdev: the device, being closed
 *
 * The dma-bufs stay valid files; importers can neither attach nor map
 * them any more, and they no longer keep the device registered. A dma-buf
 * whose file is already going away is left to its release, which unlinks
 * it with the registration reference it still holds.
 */
void vfio_pci_dma_buf_cleanup(struct vfio_pci_core_device *vdev)
{
	struct vfio_pci_dma_buf *priv, *tmp;

	down_write(&vdev->memory_lock);
	vfio_pci_dma_buf_move(vdev, true);
	list_for_each_entry_safe(priv, tmp, &vdev->dmabufs, dmabufs_elm) {
		if (!get_file_active(&priv->dmabuf->file))
			continue;
		vfio_pci_dma_buf_orphan(priv);
		fput(priv->dmabuf->file);
	}
	up_write(&vdev->memory_lock);
}
