// SPDX-License-Identifier: GPL-2.0-only
/*
 * Exporter core for dma-bufs of MMIO that the exporter can revoke.
 *
 * A device's BAR is only usable while the device decodes it: a reset, a
 * memory decode disable, a low power state, an unbind or the end of the
 * object that owned the pages take it away. The driver that owns the
 * memory then revokes its dma-bufs: importers are told with move_notify,
 * must stop their device and give back what they hold, and cannot map
 * again until the owner restores the buffer. A revoke returns only when no
 * importer holds a mapping, so the owner can reset or hand over the device
 * safely. vfio-pci and the uverbs exporter both use this; the owner keeps
 * only what is its own (which memory, when to revoke).
 *
 * Importers must be peer-to-peer capable and revocable (they have a
 * move_notify): a revoke would wait forever for one it cannot tell. There
 * is no vmap for the same reason: a vmap needs no attachment, so nothing
 * could tell its user to stop. Importers that need CPU or IOMMU access
 * attach revocably and ask for the physical ranges instead
 * (dma_buf_attachment_get_phys()), with the memory type to map them with.
 *
 * Locking: the owner serializes revoke and restore of one buffer with a
 * lock of its own, taken outside the reservation lock. The reservation
 * lock protects @revoked; importers take users (mappings, physical-range
 * answers) under it and give them back under it too. The revoke waits for
 * the last user without it: the kref and completion in struct dma_buf_mmio.
 * kref_put() orders the count before complete(), and the completion's lock
 * orders it before the waiter: no wake-up is missed.
 */
#include <linux/dma-buf.h>
#include <linux/dma-buf-mapping.h>
#include <linux/dma-resv.h>
#include <linux/iosys-map.h>

static int dma_buf_mmio_attach(struct dma_buf *dmabuf,
			       struct dma_buf_attachment *attach)
{
	struct dma_buf_mmio *mmio = dmabuf->priv;

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
	if (READ_ONCE(mmio->revoked))
		return -ENODEV;

	return 0;
}

/*
 * A pin cannot keep the memory usable across a reset or an unbind, and
 * grants nothing: only revocable importers get this far (see attach), and
 * they give their mappings back on move_notify whether pinned or not. The
 * callback makes the dma-buf dynamic; without CONFIG_DMABUF_MOVE_NOTIFY the
 * dma-buf core also calls it around every mapping.
 */
static int dma_buf_mmio_pin(struct dma_buf_attachment *attach)
{
	if (!dma_buf_attach_revocable(attach))
		return -EOPNOTSUPP;

	return 0;
}

static void dma_buf_mmio_unpin(struct dma_buf_attachment *attach)
{
}

static void dma_buf_mmio_users_done(struct kref *kref)
{
	struct dma_buf_mmio *mmio = container_of(kref, struct dma_buf_mmio,
						 users);

	complete(&mmio->users_done);
}

/* A user may start: under the reservation lock, not revoked. */
static int dma_buf_mmio_get_user(struct dma_buf_mmio *mmio)
{
	dma_resv_assert_held(mmio->dmabuf->resv);

	if (mmio->revoked)
		return -ENODEV;

	kref_get(&mmio->users);
	return 0;
}

static void dma_buf_mmio_put_user(struct dma_buf_mmio *mmio)
{
	kref_put(&mmio->users, dma_buf_mmio_users_done);
}

static struct sg_table *dma_buf_mmio_map(struct dma_buf_attachment *attach,
					 enum dma_data_direction dir)
{
	struct dma_buf_mmio *mmio = attach->dmabuf->priv;
	struct sg_table *sgt;
	int ret;

	ret = dma_buf_mmio_get_user(mmio);
	if (ret)
		return ERR_PTR(ret);

	sgt = dma_buf_phys_vec_to_sgt(attach, mmio->provider, mmio->phys_vec,
				      mmio->nr_ranges, mmio->size, dir);
	if (IS_ERR(sgt))
		dma_buf_mmio_put_user(mmio);

	return sgt;
}

static void dma_buf_mmio_unmap(struct dma_buf_attachment *attach,
			       struct sg_table *sgt,
			       enum dma_data_direction dir)
{
	struct dma_buf_mmio *mmio = attach->dmabuf->priv;

	dma_buf_free_sgt(attach, sgt, dir);
	dma_buf_mmio_put_user(mmio);
}

static int dma_buf_mmio_get_phys(struct dma_buf_attachment *attach,
				 struct dma_buf_phys *phys)
{
	struct dma_buf_mmio *mmio = attach->dmabuf->priv;
	int ret;

	ret = dma_buf_mmio_get_user(mmio);
	if (ret)
		return ret;

	phys->provider = mmio->provider;
	phys->ranges = mmio->phys_vec;
	phys->nr_ranges = mmio->nr_ranges;
	phys->mem_type = mmio->mem_type;
	return 0;
}

static void dma_buf_mmio_put_phys(struct dma_buf_attachment *attach)
{
	dma_buf_mmio_put_user(attach->dmabuf->priv);
}

/*
 * Refused: a vmap needs no attachment, so its user could never be told to
 * stop and the next revoke would wait for it forever. CPU importers use
 * dma_buf_attachment_get_phys() on a revocable attachment instead.
 */
static int dma_buf_mmio_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	return -EOPNOTSUPP;
}

static void dma_buf_mmio_release(struct dma_buf *dmabuf)
{
	struct dma_buf_mmio *mmio = dmabuf->priv;

	mmio->ops->release(mmio);
}

static const struct dma_buf_ops dma_buf_mmio_dmabuf_ops = {
	.attach = dma_buf_mmio_attach,
	.pin = dma_buf_mmio_pin,
	.unpin = dma_buf_mmio_unpin,
	.map_dma_buf = dma_buf_mmio_map,
	.unmap_dma_buf = dma_buf_mmio_unmap,
	.get_phys = dma_buf_mmio_get_phys,
	.put_phys = dma_buf_mmio_put_phys,
	.vmap = dma_buf_mmio_vmap,
	.release = dma_buf_mmio_release,
};

/**
 * __dma_buf_mmio_export - export MMIO ranges as a revocable dma-buf
 * @mmio: the exporter's description: @provider, @phys_vec, @nr_ranges,
 *	@size and @mem_type filled in, the rest zeroed
 * @ops: the owner's callbacks
 * @flags: file flags of the dma-buf (O_RDWR, O_CLOEXEC)
 * @name: the exporter's name, shown in the dma-buf's debugfs and fdinfo
 * @owner: module that implements @ops, kept loaded while the file is open
 *
 * Use dma_buf_mmio_export(), which passes the calling module. The buffer
 * starts usable; an owner whose memory is not usable now revokes it before
 * handing the file out, which returns at once since nobody is attached.
 * On success @mmio->dmabuf holds the file's reference: the owner installs
 * it with dma_buf_fd() or drops it with dma_buf_put(), and @ops->release
 * is called when the file goes away.
 *
 * Context: process context.
 * Return: 0; -EINVAL (and a warning) if @ops has no release or @mmio no
 * provider or ranges; or a negative error code from dma_buf_export().
 */
int __dma_buf_mmio_export(struct dma_buf_mmio *mmio,
			  const struct dma_buf_mmio_ops *ops, int flags,
			  const char *name, struct module *owner)
{
	struct dma_buf_export_info exp_info = {
		.exp_name = name,
		.owner = owner,
		.ops = &dma_buf_mmio_dmabuf_ops,
		.size = mmio->size,
		.flags = flags,
		.priv = mmio,
	};
	struct dma_buf *dmabuf;

	if (WARN_ON(!ops->release || !mmio->provider || !mmio->nr_ranges))
		return -EINVAL;

	mmio->ops = ops;
	mmio->revoked = false;
	kref_init(&mmio->users);
	init_completion(&mmio->users_done);

	dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);

	mmio->dmabuf = dmabuf;
	return 0;
}
EXPORT_SYMBOL_NS_GPL(__dma_buf_mmio_export, DMA_BUF);

/**
 * dma_buf_mmio_revoke - take the memory away from every importer
 * @mmio: the exported buffer
 *
 * Marks the buffer revoked, tells the importers with move_notify, waits for
 * their fences, then waits until every mapping and physical-range answer
 * has been given back. When this returns no importer can reach the memory
 * through this dma-buf, and attach, map and dma_buf_attachment_get_phys()
 * fail with -ENODEV until dma_buf_mmio_restore(). Revoking a revoked
 * buffer does nothing.
 *
 * Context: process context; sleeps for as long as importers take to give
 * their mappings back. Takes the reservation lock. Calls for one buffer
 * must be serialized by the owner.
 */
void dma_buf_mmio_revoke(struct dma_buf_mmio *mmio)
{
	struct dma_buf *dmabuf = mmio->dmabuf;

	dma_resv_lock(dmabuf->resv, NULL);
	if (mmio->revoked) {
		dma_resv_unlock(dmabuf->resv);
		return;
	}
	WRITE_ONCE(mmio->revoked, true);
	dma_buf_move_notify(dmabuf);
	dma_resv_wait_timeout(dmabuf->resv, DMA_RESV_USAGE_BOOKKEEP, false,
			      MAX_SCHEDULE_TIMEOUT);
	dma_resv_unlock(dmabuf->resv);

	/*
	 * Importers may give their mappings back after move_notify, from
	 * another context: wait for the last one.
	 */
	dma_buf_mmio_put_user(mmio);
	wait_for_completion(&mmio->users_done);
}
EXPORT_SYMBOL_NS_GPL(dma_buf_mmio_revoke, DMA_BUF);

/**
 * dma_buf_mmio_restore - let importers map a revoked buffer again
 * @mmio: the exported buffer
 *
 * Tells the importers with move_notify, as the dma-buf core has no other
 * call: those that map ahead of use (an IOMMU page table) map again from
 * it, those that map on access (ODP-style MRs) see nothing mapped to drop
 * and map on their next access. Restoring a buffer that is not revoked
 * does nothing.
 *
 * Context: process context. Takes the reservation lock. Calls for one
 * buffer must be serialized by the owner.
 */
void dma_buf_mmio_restore(struct dma_buf_mmio *mmio)
{
	struct dma_buf *dmabuf = mmio->dmabuf;

	dma_resv_lock(dmabuf->resv, NULL);
	if (mmio->revoked) {
		/* Every user is gone: take the live reference again. */
		kref_init(&mmio->users);
		reinit_completion(&mmio->users_done);
		WRITE_ONCE(mmio->revoked, false);
		dma_buf_move_notify(dmabuf);
	}
	dma_resv_unlock(dmabuf->resv);
}
EXPORT_SYMBOL_NS_GPL(dma_buf_mmio_restore, DMA_BUF);
