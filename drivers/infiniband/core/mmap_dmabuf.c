// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * dma-buf export of the pages behind a user mmap entry.
 *
 * An RDMA driver describes what userspace may mmap() (doorbell pages,
 * on-device memory) with rdma_user_mmap_entry objects. The same pages can
 * be handed to another device as a dma-buf, so that device reaches them by
 * peer-to-peer DMA: a GPU ringing the NIC's doorbell, an NVMe controller
 * writing into the NIC's memory. UVERBS_OBJECT_DMABUF creates such a
 * dma-buf from an entry; this file is its exporter.
 *
 * The pages are the driver's only as long as the entry is: when the driver
 * removes the entry or when the owner's object is destroyed (the uobject:
 * its ucontext closed, the device disassociated, its file released), the
 * dma-buf is revoked for good. Importers are told with move_notify, must unmap,
 * and cannot attach or map again (-ENODEV); the file itself stays valid. A
 * revoke returns only once no importer holds a mapping. The importers' side
 * (attach policy, mappings, physical ranges for importers without a DMA
 * engine, such as rxe, the wait) is the dma-buf core's revocable MMIO
 * exporter, struct dma_buf_mmio.
 *
 * The entry's reference is dropped by the owner's destroy, never by the
 * release of the dma-buf's file as such: the owner destroys its object
 * under its own locks (the uverbs file's hw_destroy_rwsem), which keep the
 * ucontext, whose mmap_xa the entry's last put touches, alive meanwhile.
 *
 * Locking: mdb->lock serializes the revoke for good with the release of the
 * dma-buf and protects @released and @entry; it nests outside the entry's
 * dmabufs_lock (the list of its dma-bufs) and outside the reservation lock.
 */
#include <linux/dma-buf.h>
#include <linux/dma-buf-mapping.h>
#include <linux/kref.h>
#include <linux/slab.h>
#include <rdma/ib_verbs.h>

#include "core_priv.h"

MODULE_IMPORT_NS(DMA_BUF);

struct rdma_user_mmap_dmabuf {
	/* The importers' side: attach, map, revoke. */
	struct dma_buf_mmio mmio;
	/* One for the dma-buf, until its release; one for the owner. */
	struct kref ref;
	struct mutex lock;		/* see the locking comment above */
	/* The dma-buf's file is released: mmio.dmabuf is gone. */
	bool released;
	/* Referenced; NULL once revoked for good. */
	struct rdma_user_mmap_entry *entry;
	struct list_head entry_elm;	/* in entry->dmabufs */
	struct dma_buf_phys_vec phys;
	/* Told when the dma-buf's file is released. */
	void (*file_released)(void *priv);
	void *priv;
};

static void rdma_user_mmap_dmabuf_free(struct kref *kref)
{
	kfree(container_of(kref, struct rdma_user_mmap_dmabuf, ref));
}

/**
 * rdma_user_mmap_dmabuf_put - drop the owner's reference
 * @mdb: the export
 *
 * The owner must have revoked it (rdma_user_mmap_dmabuf_revoke()) or been
 * told of its release first.
 */
void rdma_user_mmap_dmabuf_put(struct rdma_user_mmap_dmabuf *mdb)
{
	kref_put(&mdb->ref, rdma_user_mmap_dmabuf_free);
}
EXPORT_SYMBOL(rdma_user_mmap_dmabuf_put);

/**
 * rdma_user_mmap_dmabuf_revoke - take the pages away from the importers
 * @mdb: the export
 *
 * Revokes the dma-buf for good and lets go of its mmap entry. When this
 * returns no importer holds a mapping; attach and map fail with -ENODEV
 * from now on. Calling it again does nothing. The owner calls it when it
 * destroys its object, under locks that keep the entry's ucontext alive.
 *
 * Context: process context, may sleep for as long as importers take to
 * unmap. Takes the dma-buf's reservation lock.
 */
void rdma_user_mmap_dmabuf_revoke(struct rdma_user_mmap_dmabuf *mdb)
{
	struct rdma_user_mmap_entry *entry;

	mutex_lock(&mdb->lock);
	if (!mdb->released)
		dma_buf_mmio_revoke(&mdb->mmio);
	entry = mdb->entry;
	mdb->entry = NULL;
	if (entry) {
		mutex_lock(&entry->dmabufs_lock);
		list_del_init(&mdb->entry_elm);
		mutex_unlock(&entry->dmabufs_lock);
	}
	mutex_unlock(&mdb->lock);

	if (entry)
		rdma_user_mmap_entry_put(entry);
}
EXPORT_SYMBOL(rdma_user_mmap_dmabuf_revoke);

static void rdma_user_mmap_dmabuf_release(struct dma_buf_mmio *mmio)
{
	struct rdma_user_mmap_dmabuf *mdb =
		container_of(mmio, struct rdma_user_mmap_dmabuf, mmio);

	/* The dma-buf goes away: nothing may revoke it from now on. */
	mutex_lock(&mdb->lock);
	mdb->released = true;
	mutex_unlock(&mdb->lock);

	/*
	 * The owner destroys its object, which lets go of the entry under
	 * the owner's locks (see the comment at the top). Without an owner
	 * (an export that failed) there is no entry.
	 */
	if (mdb->file_released)
		mdb->file_released(mdb->priv);
	else
		rdma_user_mmap_dmabuf_revoke(mdb);
	rdma_user_mmap_dmabuf_put(mdb);
}

static const struct dma_buf_mmio_ops rdma_user_mmap_dmabuf_ops = {
	.release = rdma_user_mmap_dmabuf_release,
};

/* As the driver's mmap of the entry; uncached if it does not say. */
static enum dma_buf_mem_type
rdma_user_mmap_dmabuf_mem_type(struct rdma_user_mmap_entry *entry)
{
	struct ib_device *ibdev = entry->ucontext->device;

	if (ibdev->ops.mmap_get_mem_type)
		return ibdev->ops.mmap_get_mem_type(entry);

	return DMA_BUF_MEM_UC;
}

/**
 * __rdma_user_mmap_dmabuf_export - export the pages of an mmap entry
 * @entry: the entry, referenced by the caller
 * @released: called when the dma-buf's file is released: the owner then
 *	destroys its object (rdma_user_mmap_dmabuf_revoke()) under its locks
 * @priv: passed to @released
 * @name: name of @module, shown as the dma-buf's exporter
 * @module: the owner's module, which @released is in: kept loaded while
 *	the dma-buf's file is open
 *
 * Asks the driver where the entry's pages are (&ib_device_ops.mmap_get_pfns)
 * and makes a dma-buf of them that importers map through the BAR's P2PDMA
 * provider. On success the dma-buf keeps the caller's reference on @entry
 * until it is revoked, and the caller owns the file
 * (rdma_user_mmap_dmabuf_file()) and a reference on the result, dropped
 * with rdma_user_mmap_dmabuf_put().
 *
 * Context: process context.
 * Return: the export, or ERR_PTR(): -EOPNOTSUPP if the driver cannot export
 * the entry, -ENODEV if the driver has removed it, another negative error
 * code from the driver's &ib_device_ops.mmap_get_pfns (e.g. -EINVAL) or
 * from dma_buf_export() (e.g. -ENOMEM).
 */
struct rdma_user_mmap_dmabuf *
__rdma_user_mmap_dmabuf_export(struct rdma_user_mmap_entry *entry,
			       void (*released)(void *priv), void *priv,
			       const char *name, struct module *module)
{
	struct ib_device *ibdev = entry->ucontext->device;
	struct rdma_user_mmap_dmabuf *mdb;
	struct dma_buf *dmabuf;
	int ret;

	if (!ibdev->ops.mmap_get_pfns)
		return ERR_PTR(-EOPNOTSUPP);

	mdb = kzalloc(sizeof(*mdb), GFP_KERNEL);
	if (!mdb)
		return ERR_PTR(-ENOMEM);

	ret = ibdev->ops.mmap_get_pfns(entry, &mdb->phys, &mdb->mmio.provider);
	if (ret)
		goto err_free;
	/* The driver must describe the whole entry, in one P2PDMA BAR. */
	if (WARN_ON_ONCE(!mdb->mmio.provider ||
			 mdb->phys.len != entry->npages << PAGE_SHIFT)) {
		ret = -EINVAL;
		goto err_free;
	}

	kref_init(&mdb->ref);
	mutex_init(&mdb->lock);
	INIT_LIST_HEAD(&mdb->entry_elm);

	mdb->mmio.phys_vec = &mdb->phys;
	mdb->mmio.nr_ranges = 1;
	mdb->mmio.size = mdb->phys.len;
	mdb->mmio.mem_type = rdma_user_mmap_dmabuf_mem_type(entry);
	ret = __dma_buf_mmio_export(&mdb->mmio, &rdma_user_mmap_dmabuf_ops,
				    O_RDWR, name, module);
	if (ret)
		goto err_free;
	dmabuf = mdb->mmio.dmabuf;

	/*
	 * rdma_user_mmap_entry_remove() marks the entry before it revokes
	 * what is on the list: either we see the mark, or it sees us.
	 */
	mutex_lock(&entry->dmabufs_lock);
	if (READ_ONCE(entry->driver_removed)) {
		mutex_unlock(&entry->dmabufs_lock);
		/* The release frees mdb; the caller keeps its entry. */
		dma_buf_put(dmabuf);
		return ERR_PTR(-ENODEV);
	}
	list_add_tail(&mdb->entry_elm, &entry->dmabufs);
	mdb->entry = entry;
	mutex_unlock(&entry->dmabufs_lock);

	mdb->file_released = released;
	mdb->priv = priv;
	kref_get(&mdb->ref);
	return mdb;

err_free:
	kfree(mdb);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL(__rdma_user_mmap_dmabuf_export);

/**
 * rdma_user_mmap_dmabuf_file - the file of an export
 * @mdb: the export, as returned by rdma_user_mmap_dmabuf_export()
 *
 * Return: the dma-buf's file, whose reference belongs to the exporter's
 * caller until it installs it as an fd or puts it.
 */
struct file *rdma_user_mmap_dmabuf_file(struct rdma_user_mmap_dmabuf *mdb)
{
	return mdb->mmio.dmabuf->file;
}
EXPORT_SYMBOL(rdma_user_mmap_dmabuf_file);

/**
 * rdma_user_mmap_entry_revoke_dmabufs - revoke the dma-bufs of an entry
 * @entry: the entry, being removed by its driver
 *
 * Context: process context; may sleep until importers have unmapped.
 */
void rdma_user_mmap_entry_revoke_dmabufs(struct rdma_user_mmap_entry *entry)
{
	struct rdma_user_mmap_dmabuf *mdb;

	/*
	 * Only drivers with mmap_get_pfns have exported entries: the others'
	 * rdma_user_mmap_entry_remove() takes no lock and does not sleep.
	 */
	if (!entry->ucontext->device->ops.mmap_get_pfns)
		return;

	for (;;) {
		mutex_lock(&entry->dmabufs_lock);
		mdb = list_first_entry_or_null(&entry->dmabufs,
					       struct rdma_user_mmap_dmabuf,
					       entry_elm);
		/*
		 * Listed: its owner's reference is still held (the owner
		 * drops it only after a revoke has unlisted it), though the
		 * dma-buf's own may be gone already.
		 */
		if (mdb) {
			list_del_init(&mdb->entry_elm);
			kref_get(&mdb->ref);
		}
		mutex_unlock(&entry->dmabufs_lock);
		if (!mdb)
			return;

		rdma_user_mmap_dmabuf_revoke(mdb);
		rdma_user_mmap_dmabuf_put(mdb);
	}
}
