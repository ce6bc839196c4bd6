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
 * removes the entry, when the uobject is destroyed (its ucontext closed, the
 * device disassociated) or when the dma-buf's file goes away, the dma-buf is
 * revoked for good. Importers are told with move_notify, must unmap, and
 * cannot attach or map again (-ENODEV); the file itself stays valid. A
 * revoke returns only once no importer holds a mapping. Importers without
 * a DMA engine of their own (rxe) reach the pages through vmap, which a
 * revoke takes back the same way.
 *
 * Locking: mdb->lock serializes the revoke for good with the release of the
 * dma-buf and protects @dmabuf and @entry; it nests outside the entry's
 * dmabufs_lock (the list of its dma-bufs) and outside the reservation lock,
 * which protects @revoked and under which importers take users (mappings).
 * The revoke waits for the last user without it: the kref and completion
 * in struct rdma_user_mmap_dmabuf.
 */
#include <linux/dma-buf.h>
#include <linux/dma-buf-mapping.h>
#include <linux/dma-resv.h>
#include <linux/iosys-map.h>
#include <linux/kref.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <rdma/ib_verbs.h>

#include "core_priv.h"

MODULE_IMPORT_NS(DMA_BUF);

struct rdma_user_mmap_dmabuf {
	/* One for the dma-buf, until its release; one for the owner. */
	struct kref ref;
	struct mutex lock;		/* see the locking comment above */
	/* NULL once the dma-buf is released. */
	struct dma_buf *dmabuf;
	/* Referenced; NULL once revoked for good. */
	struct rdma_user_mmap_entry *entry;
	struct list_head entry_elm;	/* in entry->dmabufs */
	struct p2pdma_provider *provider;
	struct dma_buf_phys_vec phys;
	/* Under the reservation lock. */
	bool revoked;
	/*
	 * One reference per live DMA mapping and vmap plus one while not
	 * revoked: a revoke drops that one and waits for @users_done, which
	 * the last put completes.
	 */
	struct kref users;
	struct completion users_done;
	/* Told when the dma-buf's file is released. */
	void (*released)(void *owner);
	void *owner;
};

static int rdma_user_mmap_dmabuf_attach(struct dma_buf *dmabuf,
					struct dma_buf_attachment *attach)
{
	struct rdma_user_mmap_dmabuf *mdb = dmabuf->priv;

	/* The pages are MMIO: only peer-to-peer capable importers. */
	if (!attach->peer2peer)
		return -EOPNOTSUPP;

	/* A revoke would wait forever for an importer it cannot tell. */
	if (!dma_buf_attach_revocable(attach))
		return -EOPNOTSUPP;

	/* Unlocked: a revoke that races with us is caught at map time. */
	if (READ_ONCE(mdb->revoked))
		return -ENODEV;

	return 0;
}

/*
 * A pin cannot keep the pages beyond the entry's life and grants nothing:
 * only revocable importers attach, and they unmap on move_notify whether
 * pinned or not. Without CONFIG_DMABUF_MOVE_NOTIFY the dma-buf core calls
 * this around every mapping of a dynamic importer.
 */
static int rdma_user_mmap_dmabuf_pin(struct dma_buf_attachment *attach)
{
	if (!dma_buf_attach_revocable(attach))
		return -EOPNOTSUPP;

	return 0;
}

static void rdma_user_mmap_dmabuf_unpin(struct dma_buf_attachment *attach)
{
}

static void rdma_user_mmap_dmabuf_users_done(struct kref *kref)
{
	struct rdma_user_mmap_dmabuf *mdb =
		container_of(kref, struct rdma_user_mmap_dmabuf, users);

	complete(&mdb->users_done);
}

static struct sg_table *
rdma_user_mmap_dmabuf_map(struct dma_buf_attachment *attach,
			  enum dma_data_direction dir)
{
	struct rdma_user_mmap_dmabuf *mdb = attach->dmabuf->priv;
	struct sg_table *sgt;

	dma_resv_assert_held(attach->dmabuf->resv);

	if (mdb->revoked)
		return ERR_PTR(-ENODEV);

	sgt = dma_buf_phys_vec_to_sgt(attach, mdb->provider, &mdb->phys, 1,
				      mdb->phys.len, dir);
	if (!IS_ERR(sgt))
		kref_get(&mdb->users);

	return sgt;
}

static void rdma_user_mmap_dmabuf_unmap(struct dma_buf_attachment *attach,
					struct sg_table *sgt,
					enum dma_data_direction dir)
{
	struct rdma_user_mmap_dmabuf *mdb = attach->dmabuf->priv;

	dma_buf_free_sgt(attach, sgt, dir);
	kref_put(&mdb->users, rdma_user_mmap_dmabuf_users_done);
}

/*
 * CPU access for importers without a DMA engine (rxe): one uncached kernel
 * mapping of the pages. The dma-buf core calls this for the first
 * dma_buf_vmap() only and vunmap for the last dma_buf_vunmap(); importers
 * drop their vmap in move_notify, and a revoke waits for that as it waits
 * for DMA mappings. Pages with a struct page (not MMIO) are refused.
 */
static int rdma_user_mmap_dmabuf_vmap(struct dma_buf *dmabuf,
				      struct iosys_map *map)
{
	struct rdma_user_mmap_dmabuf *mdb = dmabuf->priv;
	unsigned long npages = mdb->phys.len >> PAGE_SHIFT;
	unsigned long first = PHYS_PFN(mdb->phys.paddr);
	unsigned long *pfns, i;
	void *vaddr;

	dma_resv_assert_held(dmabuf->resv);

	if (mdb->revoked)
		return -ENODEV;

	pfns = kvmalloc_array(npages, sizeof(*pfns), GFP_KERNEL);
	if (!pfns)
		return -ENOMEM;
	for (i = 0; i < npages; i++) {
		if (pfn_valid(first + i)) {
			kvfree(pfns);
			return -EOPNOTSUPP;
		}
		pfns[i] = first + i;
	}

	vaddr = vmap_pfn(pfns, npages, pgprot_noncached(PAGE_KERNEL));
	kvfree(pfns);
	if (!vaddr)
		return -ENOMEM;

	kref_get(&mdb->users);
	iosys_map_set_vaddr_iomem(map, (void __iomem *)vaddr);
	return 0;
}

static void rdma_user_mmap_dmabuf_vunmap(struct dma_buf *dmabuf,
					 struct iosys_map *map)
{
	struct rdma_user_mmap_dmabuf *mdb = dmabuf->priv;

	vunmap((__force void *)map->vaddr_iomem);
	kref_put(&mdb->users, rdma_user_mmap_dmabuf_users_done);
}

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

/* Tell the importers, wait for their fences, then for their unmaps. */
static void rdma_user_mmap_dmabuf_set_revoked(struct rdma_user_mmap_dmabuf *mdb)
{
	struct dma_buf *dmabuf = mdb->dmabuf;

	lockdep_assert_held(&mdb->lock);

	dma_resv_lock(dmabuf->resv, NULL);
	if (mdb->revoked) {
		dma_resv_unlock(dmabuf->resv);
		return;
	}
	WRITE_ONCE(mdb->revoked, true);
	dma_buf_move_notify(dmabuf);
	dma_resv_wait_timeout(dmabuf->resv, DMA_RESV_USAGE_BOOKKEEP, false,
			      MAX_SCHEDULE_TIMEOUT);
	dma_resv_unlock(dmabuf->resv);

	/* Importers may unmap after move_notify, from another context. */
	kref_put(&mdb->users, rdma_user_mmap_dmabuf_users_done);
	wait_for_completion(&mdb->users_done);
}

/**
 * rdma_user_mmap_dmabuf_revoke - take the pages away from the importers
 * @mdb: the export
 *
 * Revokes the dma-buf for good and lets go of its mmap entry. When this
 * returns no importer holds a mapping; attach and map fail with -ENODEV
 * from now on. Calling it again does nothing.
 *
 * Context: process context, may sleep for as long as importers take to
 * unmap. Takes the dma-buf's reservation lock.
 */
void rdma_user_mmap_dmabuf_revoke(struct rdma_user_mmap_dmabuf *mdb)
{
	struct rdma_user_mmap_entry *entry;

	mutex_lock(&mdb->lock);
	if (mdb->dmabuf)
		rdma_user_mmap_dmabuf_set_revoked(mdb);
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

static void rdma_user_mmap_dmabuf_release(struct dma_buf *dmabuf)
{
	struct rdma_user_mmap_dmabuf *mdb = dmabuf->priv;

	/* Nobody is attached any more: this only lets go of the entry. */
	rdma_user_mmap_dmabuf_revoke(mdb);

	mutex_lock(&mdb->lock);
	mdb->dmabuf = NULL;
	mutex_unlock(&mdb->lock);

	if (mdb->released)
		mdb->released(mdb->owner);
	rdma_user_mmap_dmabuf_put(mdb);
}

static const struct dma_buf_ops rdma_user_mmap_dmabuf_ops = {
	.attach = rdma_user_mmap_dmabuf_attach,
	.pin = rdma_user_mmap_dmabuf_pin,
	.unpin = rdma_user_mmap_dmabuf_unpin,
	.map_dma_buf = rdma_user_mmap_dmabuf_map,
	.unmap_dma_buf = rdma_user_mmap_dmabuf_unmap,
	.vmap = rdma_user_mmap_dmabuf_vmap,
	.vunmap = rdma_user_mmap_dmabuf_vunmap,
	.release = rdma_user_mmap_dmabuf_release,
};

/**
 * rdma_user_mmap_dmabuf_export - export the pages of an mmap entry
 * @entry: the entry, referenced by the caller
 * @released: called when the dma-buf's file is released
 * @owner: passed to @released
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
 * the entry, -ENODEV if the driver has removed it, -ENOMEM.
 */
struct rdma_user_mmap_dmabuf *
rdma_user_mmap_dmabuf_export(struct rdma_user_mmap_entry *entry,
			     void (*released)(void *owner), void *owner)
{
	struct ib_device *ibdev = entry->ucontext->device;
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	struct rdma_user_mmap_dmabuf *mdb;
	struct dma_buf *dmabuf;
	int ret;

	if (!ibdev->ops.mmap_get_pfns)
		return ERR_PTR(-EOPNOTSUPP);

	mdb = kzalloc(sizeof(*mdb), GFP_KERNEL);
	if (!mdb)
		return ERR_PTR(-ENOMEM);

	ret = ibdev->ops.mmap_get_pfns(entry, &mdb->phys, &mdb->provider);
	if (ret)
		goto err_free;
	/* The driver must describe the whole entry, in one P2PDMA BAR. */
	if (WARN_ON_ONCE(!mdb->provider ||
			 mdb->phys.len != entry->npages << PAGE_SHIFT)) {
		ret = -EINVAL;
		goto err_free;
	}

	kref_init(&mdb->ref);
	mutex_init(&mdb->lock);
	INIT_LIST_HEAD(&mdb->entry_elm);
	kref_init(&mdb->users);
	init_completion(&mdb->users_done);

	exp_info.ops = &rdma_user_mmap_dmabuf_ops;
	exp_info.size = mdb->phys.len;
	exp_info.flags = O_RDWR;
	exp_info.priv = mdb;
	dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(dmabuf)) {
		ret = PTR_ERR(dmabuf);
		goto err_free;
	}
	mdb->dmabuf = dmabuf;

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

	mdb->released = released;
	mdb->owner = owner;
	kref_get(&mdb->ref);
	return mdb;

err_free:
	kfree(mdb);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL(rdma_user_mmap_dmabuf_export);

/**
 * rdma_user_mmap_dmabuf_file - the file of an export
 * @mdb: the export, as returned by rdma_user_mmap_dmabuf_export()
 *
 * Return: the dma-buf's file, whose reference belongs to the exporter's
 * caller until it installs it as an fd or puts it.
 */
struct file *rdma_user_mmap_dmabuf_file(struct rdma_user_mmap_dmabuf *mdb)
{
	return mdb->dmabuf->file;
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
		/* Listed: the dma-buf's own reference is still held. */
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
