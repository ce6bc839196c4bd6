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
 * The importers' side (who may attach, mapping, physical ranges, the wait
 * for the last mapping) is the dma-buf core's revocable MMIO exporter,
 * struct dma_buf_mmio; this file decides what is exported and when it is
 * revoked.
 *
 * Locking: vdev->memory_lock, held for write to revoke or restore the
 * dma-bufs and to add or remove one from vdev->dmabufs, serializes the
 * changes of state and nests outside each dma-buf's reservation lock.
 */
#include <linux/dma-buf.h>
#include <linux/dma-buf-mapping.h>
#include <linux/file.h>
#include <linux/pci-p2pdma.h>
#include <linux/slab.h>

#include "vfio_pci_priv.h"

MODULE_IMPORT_NS(DMA_BUF);

struct vfio_pci_dma_buf {
	/* The importers' side: attach, map, revoke and restore. */
	struct dma_buf_mmio mmio;
	/* The exporting device; NULL once revoked for good. */
	struct vfio_pci_core_device *vdev;
	struct list_head dmabufs_elm;	/* in vdev->dmabufs */
	u32 nr_ranges;
	struct dma_buf_phys_vec phys_vec[] __counted_by(nr_ranges);
};

static struct vfio_pci_dma_buf *to_vfio_pci_dma_buf(struct dma_buf_mmio *mmio)
{
	return container_of(mmio, struct vfio_pci_dma_buf, mmio);
}

static void vfio_pci_dma_buf_release(struct dma_buf_mmio *mmio)
{
	struct vfio_pci_dma_buf *priv = to_vfio_pci_dma_buf(mmio);

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

static const struct dma_buf_mmio_ops vfio_pci_dma_buf_ops = {
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
 * How a CPU importer must map the ranges of region @region_index: as the
 * driver's mmap of the region does. The BARs of vfio-pci are mapped
 * uncached.
 */
static enum dma_buf_mem_type
vfio_pci_dma_buf_mem_type(struct vfio_pci_core_device *vdev,
			  unsigned int region_index)
{
	if (vdev->pci_ops->get_dmabuf_mem_type)
		return vdev->pci_ops->get_dmabuf_mem_type(vdev, region_index);

	return DMA_BUF_MEM_UC;
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
	INIT_LIST_HEAD(&priv->dmabufs_elm);

	ret = vdev->pci_ops->get_dmabuf_phys(vdev, &priv->mmio.provider,
					     region_index, priv->phys_vec,
					     ranges, nr_ranges);
	if (ret) {
		kvfree(priv);
		return ERR_PTR(ret);
	}
	priv->mmio.phys_vec = priv->phys_vec;
	priv->mmio.nr_ranges = nr_ranges;
	priv->mmio.size = size;
	priv->mmio.mem_type = vfio_pci_dma_buf_mem_type(vdev, region_index);
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
	struct dma_buf *dmabuf;
	int ret;

	if (!vfio_device_try_get_registration(&vdev->vdev)) {
		kvfree(priv);
		return -ENODEV;
	}
	priv->vdev = vdev;

	ret = dma_buf_mmio_export(&priv->mmio, &vfio_pci_dma_buf_ops,
				  open_flags);
	if (ret) {
		vfio_device_put_registration(&vdev->vdev);
		kvfree(priv);
		return ret;
	}
	dmabuf = priv->mmio.dmabuf;

	/* From here on dma_buf_put() releases priv and the registration. */
	down_write(&vdev->memory_lock);
	/* Revoked from the start: nobody is attached, this does not wait. */
	if (!vfio_pci_dma_buf_usable(vdev))
		dma_buf_mmio_revoke(&priv->mmio);
	list_add_tail(&priv->dmabufs_elm, &vdev->dmabufs);
	up_write(&vdev->memory_lock);

	ret = dma_buf_fd(dmabuf, open_flags);
	if (ret < 0)
		dma_buf_put(dmabuf);
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

/**
 * vfio_pci_dma_buf_move - revoke or restore every dma-buf of a device
 * @vdev: the device, memory_lock held for write
 * @revoked: true to revoke, false to let importers map again
 *
 * A revoke returns when no importer can reach the device's memory through
 * any of its dma-bufs. Giving access back notifies the importers again:
 * those that map ahead of use (iommufd) map again at once, the others on
 * their next access.
 */
void vfio_pci_dma_buf_move(struct vfio_pci_core_device *vdev, bool revoked)
{
	struct vfio_pci_dma_buf *priv;

	lockdep_assert_held_write(&vdev->memory_lock);

	list_for_each_entry(priv, &vdev->dmabufs, dmabufs_elm) {
		struct dma_buf *dmabuf = priv->mmio.dmabuf;

		/* A dma-buf whose file is going away has no importers. */
		if (!get_file_active(&dmabuf->file))
			continue;
		if (revoked)
			dma_buf_mmio_revoke(&priv->mmio);
		else
			dma_buf_mmio_restore(&priv->mmio);
		fput(dmabuf->file);
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

/*
 * Revoked @priv for good: no longer the device's. Under memory_lock, with
 * a reference on the file, so the release cannot run meanwhile.
 */
static void vfio_pci_dma_buf_orphan(struct vfio_pci_dma_buf *priv)
{
	struct vfio_pci_core_device *vdev = priv->vdev;

	list_del_init(&priv->dmabufs_elm);
	priv->vdev = NULL;
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
		struct dma_buf *dmabuf = priv->mmio.dmabuf;

		if (!get_file_active(&dmabuf->file))
			continue;
		vfio_pci_dma_buf_orphan(priv);
		fput(dmabuf->file);
	}
	up_write(&vdev->memory_lock);
}
