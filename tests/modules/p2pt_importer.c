// SPDX-License-Identifier: GPL-2.0
/* p2p_test_importer: imports, maps and moves bytes with edu's DMA engine. */
#include "p2pt_internal.h"

/* --- importer ---------------------------------------------------------- */

static void p2pt_importer_free(struct kref *kref)
{
	struct p2pt_importer *imp = container_of(kref, struct p2pt_importer, kref);

	pci_dev_put(imp->pdev);
	kfree(imp);
}

static struct p2pt_importer *p2pt_importer_get(const char *bdf)
{
	struct p2pt_importer *imp;

	guard(mutex)(&p2pt_lock);
	list_for_each_entry(imp, &p2pt_importers, node) {
		if (!strcmp(pci_name(imp->pdev), bdf)) {
			kref_get(&imp->kref);
			return imp;
		}
	}
	return NULL;
}

/* Unmap, under the reservation lock. */
static void p2pt_import_unmap_locked(struct p2pt_imported *im)
{
	dma_resv_assert_held(im->dmabuf->resv);
	if (!im->sgt)
		return;
	dma_buf_unmap_attachment(im->attach, im->sgt, im->dir);
	im->sgt = NULL;
}

/* Run one transfer of edu's DMA engine; under imp->dma_lock. */
static int p2pt_edu_dma(struct p2pt_importer *imp, u64 src, u64 dst, u64 len,
			u64 cmd)
{
	u64 val;

	if (readq(imp->regs + EDU_REG_DMA_CMD) & EDU_DMA_RUN)
		return -EBUSY;
	writeq(src, imp->regs + EDU_REG_DMA_SRC);
	writeq(dst, imp->regs + EDU_REG_DMA_DST);
	writeq(len, imp->regs + EDU_REG_DMA_CNT);
	writeq(cmd | EDU_DMA_RUN, imp->regs + EDU_REG_DMA_CMD);
	return readq_poll_timeout(imp->regs + EDU_REG_DMA_CMD, val,
				  !(val & EDU_DMA_RUN), EDU_DMA_POLL_US,
				  EDU_DMA_TIMEOUT_US);
}

/* Is [@addr, @addr + @len) inside one DMA entry of @sgt? */
static bool p2pt_sgt_covers(struct sg_table *sgt, u64 addr, u64 len)
{
	struct scatterlist *sg;
	unsigned int i;

	for_each_sgtable_dma_sg(sgt, sg, i) {
		u64 start = sg_dma_address(sg);

		if (addr >= start && addr - start <= sg_dma_len(sg) &&
		    len <= sg_dma_len(sg) - (addr - start))
			return true;
	}
	return false;
}

/*
 * Copy @len bytes (at most EDU_BUF_SIZE) between @data and the DMA address
 * @peer_dma with edu's engine, through the bounce buffer; under
 * imp->dma_lock.
 */
static int p2pt_edu_copy(struct p2pt_importer *imp, u64 peer_dma, void *data,
			 u64 len, bool to_peer)
{
	u64 done, chunk;
	int ret;

	if (to_peer)
		memcpy(imp->bounce, data, len);
	for (done = 0; done < len; done += chunk) {
		u64 peer = peer_dma + done;
		u64 bounce = imp->bounce_dma + done;

		chunk = min_t(u64, len - done, EDU_DMA_CHUNK);
		if (to_peer) {
			ret = p2pt_edu_dma(imp, bounce, EDU_BUF_ADDR, chunk, 0);
			if (!ret)
				ret = p2pt_edu_dma(imp, EDU_BUF_ADDR, peer, chunk,
						   EDU_DMA_TO_PCI);
		} else {
			ret = p2pt_edu_dma(imp, peer, EDU_BUF_ADDR, chunk, 0);
			if (!ret)
				ret = p2pt_edu_dma(imp, EDU_BUF_ADDR, bounce,
						   chunk, EDU_DMA_TO_PCI);
		}
		if (ret)
			return ret;
	}
	if (!to_peer)
		memcpy(data, imp->bounce, len);
	return 0;
}

int p2pt_dma_locked(struct p2pt_imported *im, const struct p2pt_dma *args,
		    void *data)
{
	/* A slow importer told to stop starts nothing new. */
	if (!im->sgt || im->giveback_pending)
		return -ENODEV;
	/* TO_PEER: the device writes to the peer; FROM_PEER: it reads. */
	if (im->dir != DMA_BIDIRECTIONAL &&
	    im->dir != (args->dir == P2PT_DMA_TO_PEER ? DMA_FROM_DEVICE :
							DMA_TO_DEVICE))
		return -EPERM;
	if (!p2pt_sgt_covers(im->sgt, args->dma_addr, args->len))
		return -EINVAL;

	return p2pt_edu_copy(im->imp, args->dma_addr, data, args->len,
			     args->dir == P2PT_DMA_TO_PEER);
}

/**
 * p2pt_engine_get - borrow edu's DMA engine for another test driver
 * @dev: the edu device, bound to p2p_test_importer
 *
 * For p2p_test_rdma, whose MRs use the engine as their "NIC". Holds off
 * the edu's unbind until p2pt_engine_put(). Lock order: take the engine
 * (its importer's rwsem, read) before the reservation lock of any
 * dma-buf, as this module's own paths take the importer before it; the
 * engine's dma_lock (p2pt_engine_copy()) comes after the reservation lock.
 *
 * Return: the engine, or ERR_PTR(-ENODEV) if @dev is not a bound edu.
 */
struct p2pt_engine *p2pt_engine_get(struct device *dev)
{
	struct p2pt_importer *imp, *found = NULL;

	mutex_lock(&p2pt_lock);
	list_for_each_entry(imp, &p2pt_importers, node) {
		if (&imp->pdev->dev == dev) {
			found = imp;
			kref_get(&found->kref);
			break;
		}
	}
	mutex_unlock(&p2pt_lock);
	if (!found)
		return ERR_PTR(-ENODEV);

	down_read(&found->rwsem);
	if (found->gone) {
		up_read(&found->rwsem);
		kref_put(&found->kref, p2pt_importer_free);
		return ERR_PTR(-ENODEV);
	}
	return (struct p2pt_engine *)found;
}
EXPORT_SYMBOL_GPL(p2pt_engine_get);

/**
 * p2pt_engine_put - give back an engine from p2pt_engine_get()
 * @engine: the engine
 */
void p2pt_engine_put(struct p2pt_engine *engine)
{
	struct p2pt_importer *imp = (struct p2pt_importer *)engine;

	up_read(&imp->rwsem);
	kref_put(&imp->kref, p2pt_importer_free);
}
EXPORT_SYMBOL_GPL(p2pt_engine_put);

/**
 * p2pt_engine_copy - one copy of a borrowed engine
 * @engine: from p2pt_engine_get()
 * @dma_addr: where the engine reads or writes, mapped for its device
 * @data: @len bytes to write, or room for the bytes read
 * @len: bytes, at most EDU_BUF_SIZE
 * @to_peer: write to @dma_addr (else read from it)
 *
 * The caller keeps @dma_addr mapped for the whole call (it holds the
 * dma-buf's reservation lock, which comes before the engine's dma_lock,
 * and after the rwsem p2pt_engine_get() took).
 *
 * Return: 0; -EINVAL for a bad @len; -ETIMEDOUT or -EBUSY from the engine.
 */
int p2pt_engine_copy(struct p2pt_engine *engine, dma_addr_t dma_addr,
		     void *data, size_t len, bool to_peer)
{
	struct p2pt_importer *imp = (struct p2pt_importer *)engine;
	int ret;

	if (!len || len > EDU_BUF_SIZE)
		return -EINVAL;
	mutex_lock(&imp->dma_lock);
	ret = p2pt_edu_copy(imp, dma_addr, data, len, to_peer);
	mutex_unlock(&imp->dma_lock);
	return ret;
}
EXPORT_SYMBOL_GPL(p2pt_engine_copy);

/* Give the mapping, the CPU mapping and the pin back; under the reservation lock. */
void p2pt_import_drop_locked(struct p2pt_imported *im)
{
	p2pt_import_unmap_locked(im);
	p2pt_cpu_unmap_locked(im);
	if (im->pinned) {
		dma_buf_unpin(im->attach);
		im->pinned = false;
	}
}

static void p2pt_move_notify(struct dma_buf_attachment *attach)
{
	struct p2pt_imported *im = attach->importer_priv;
	bool holds = im->sgt || im->cpu || im->pinned;

	im->move_notify_count++;
	if (im->fence && !im->dying)
		schedule_delayed_work(&im->signal, im->delay);
	/*
	 * Holding nothing (told of a restore, after the revoke took it all),
	 * there is nothing to give back late: the next map may come at once.
	 */
	if ((im->flags & P2PT_IMPORT_F_DEFER) && !im->dying && holds) {
		/* New transfers stop now: DMA and CPU copies check this. */
		im->giveback_pending = true;
		schedule_delayed_work(&im->giveback, im->delay);
		return;
	}
	p2pt_import_drop_locked(im);
}

static const struct dma_buf_attach_ops p2pt_revocable_ops = {
	.allow_peer2peer = true,
	.move_notify = p2pt_move_notify,
};

static const struct dma_buf_attach_ops p2pt_revocable_nop2p_ops = {
	.allow_peer2peer = false,
	.move_notify = p2pt_move_notify,
};

static const struct dma_buf_attach_ops p2pt_pinned_ops = {
	.allow_peer2peer = true,
};

static const struct dma_buf_attach_ops p2pt_pinned_nop2p_ops = {
	.allow_peer2peer = false,
};

/* Detach; the caller holds imp->rwsem and has unlinked @im. */
static void p2pt_import_teardown(struct p2pt_imported *im)
{
	struct dma_buf *dmabuf = im->dmabuf;

	p2pt_import_quiesce(im);
	dma_resv_lock(dmabuf->resv, NULL);
	p2pt_import_drop_locked(im);
	dma_resv_unlock(dmabuf->resv);
	dma_buf_detach(dmabuf, im->attach);
	dma_buf_put(dmabuf);
	im->attach = NULL;
	im->dmabuf = NULL;
}

void p2pt_import_free(struct p2pt_imported *im)
{
	struct p2pt_importer *imp = im->imp;

	down_read(&imp->rwsem);
	/* Unless the importer's unbind has torn it down already. */
	if (im->attach) {
		mutex_lock(&imp->lock);
		list_del(&im->node);
		mutex_unlock(&imp->lock);
		p2pt_import_teardown(im);
	}
	up_read(&imp->rwsem);
	kref_put(&imp->kref, p2pt_importer_free);
	kfree(im);
}

static const struct dma_buf_attach_ops *p2pt_import_ops(u32 mode, u32 flags)
{
	bool p2p = !(flags & P2PT_IMPORT_F_NO_P2P);

	/* No move_notify: pinned, or (worse) mapping without a pin. */
	if (mode == P2PT_IMPORT_PINNED || mode == P2PT_IMPORT_UNNOTIFIED)
		return p2p ? &p2pt_pinned_ops : &p2pt_pinned_nop2p_ops;
	return p2p ? &p2pt_revocable_ops : &p2pt_revocable_nop2p_ops;
}

/* Does the import pin before mapping? */
static bool p2pt_import_pins(const struct p2pt_imported *im)
{
	return im->mode == P2PT_IMPORT_PINNED_REVOCABLE ||
	       im->mode == P2PT_IMPORT_PINNED;
}

/* Mode, flags and delay of an import request: 0 or -EINVAL. */
static int p2pt_import_check(const struct p2pt_import *args)
{
	u32 slow = P2PT_IMPORT_F_DEFER | P2PT_IMPORT_F_FENCE;

	if (args->mode > P2PT_IMPORT_UNNOTIFIED ||
	    args->flags & ~P2PT_IMPORT_FLAGS || args->pad ||
	    args->delay_ms > P2PT_DELAY_MAX_MS ||
	    strnlen(args->bdf, P2PT_BDF_LEN) == P2PT_BDF_LEN)
		return -EINVAL;
	/* Slow partners are revocable ones; a late write needs F_DEFER. */
	if ((args->flags & slow) && args->mode != P2PT_IMPORT_DYNAMIC &&
	    args->mode != P2PT_IMPORT_PINNED_REVOCABLE)
		return -EINVAL;
	if ((args->flags & P2PT_IMPORT_F_LATE_WRITE) &&
	    !(args->flags & P2PT_IMPORT_F_DEFER))
		return -EINVAL;
	return 0;
}

int p2pt_ioctl_import(struct p2pt_file *pf, void __user *uarg)
{
	struct dma_buf_attachment *attach;
	struct p2pt_importer *imp;
	struct p2pt_import args;
	struct p2pt_imported *im;
	struct dma_buf *dmabuf;
	u32 handle;
	int ret;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	ret = p2pt_import_check(&args);
	if (ret)
		return ret;

	imp = p2pt_importer_get(args.bdf);
	if (!imp)
		return -ENODEV;
	im = kzalloc(sizeof(*im), GFP_KERNEL);
	if (!im) {
		kref_put(&imp->kref, p2pt_importer_free);
		return -ENOMEM;
	}
	im->imp = imp;
	im->mode = args.mode;
	im->flags = args.flags;
	im->delay = msecs_to_jiffies(args.delay_ms);
	INIT_DELAYED_WORK(&im->giveback, p2pt_giveback);
	INIT_DELAYED_WORK(&im->signal, p2pt_fence_signal);

	down_read(&imp->rwsem);
	ret = -ENODEV;
	if (imp->gone)
		goto err_unlock;

	dmabuf = dma_buf_get(args.fd);
	if (IS_ERR(dmabuf)) {
		ret = PTR_ERR(dmabuf);
		goto err_unlock;
	}
	/* A revoke may call move_notify as soon as the attachment exists. */
	im->dmabuf = dmabuf;
	attach = dma_buf_dynamic_attach(dmabuf, &imp->pdev->dev,
					p2pt_import_ops(args.mode, args.flags),
					im);
	if (IS_ERR(attach)) {
		ret = PTR_ERR(attach);
		dma_buf_put(dmabuf);
		goto err_unlock;
	}
	im->attach = attach;

	if (p2pt_import_pins(im)) {
		dma_resv_lock(dmabuf->resv, NULL);
		ret = dma_buf_pin(attach);
		im->pinned = !ret;
		dma_resv_unlock(dmabuf->resv);
		if (ret)
			goto err_teardown;
	}

	ret = xa_alloc(&pf->imports, &handle, im, xa_limit_32b, GFP_KERNEL);
	if (ret)
		goto err_teardown;
	mutex_lock(&imp->lock);
	list_add(&im->node, &imp->imports);
	mutex_unlock(&imp->lock);
	up_read(&imp->rwsem);

	args.handle = handle;
	if (copy_to_user(uarg, &args, sizeof(args))) {
		xa_erase(&pf->imports, handle);
		p2pt_import_free(im);
		return -EFAULT;
	}
	return 0;

err_teardown:
	p2pt_import_teardown(im);
err_unlock:
	up_read(&imp->rwsem);
	kref_put(&imp->kref, p2pt_importer_free);
	kfree(im);
	return ret;
}

/*
 * The import of @handle with its importer's rwsem held for read, or an
 * ERR_PTR (ENOENT unknown handle, ENODEV importer gone). The caller holds
 * pf->lock, so the handle cannot be released meanwhile.
 */
struct p2pt_imported *p2pt_import_get(struct p2pt_file *pf, u32 handle)
{
	struct p2pt_imported *im = xa_load(&pf->imports, handle);

	if (!im)
		return ERR_PTR(-ENOENT);
	down_read(&im->imp->rwsem);
	if (!im->attach) {
		up_read(&im->imp->rwsem);
		return ERR_PTR(-ENODEV);
	}
	return im;
}

void p2pt_import_put(struct p2pt_imported *im)
{
	up_read(&im->imp->rwsem);
}

/* Fill @args with the mapping of @im; under the reservation lock. */
static void p2pt_map_report(struct p2pt_imported *im, struct p2pt_map *args)
{
	struct p2pt_buf *buf;
	struct scatterlist *sg;
	unsigned int i;

	args->route = P2PT_ROUTE_UNKNOWN;
	/* Mapped, so not revoked: the provider is alive. */
	buf = p2pt_buf_of(im->dmabuf);
	if (buf) {
		args->route = pci_p2pdma_map_type(buf->provider,
						  im->attach->dev);
	}
	args->nents = im->sgt->nents;
	args->nr_entries = min_t(unsigned int, im->sgt->nents,
				 P2PT_MAX_ENTRIES);
	for_each_sgtable_dma_sg(im->sgt, sg, i) {
		if (i >= args->nr_entries)
			break;
		args->entries[i].dma_addr = sg_dma_address(sg);
		args->entries[i].len = sg_dma_len(sg);
	}
}

int p2pt_ioctl_map(struct p2pt_file *pf, void __user *uarg)
{
	struct p2pt_imported *im;
	struct p2pt_map *args;
	struct dma_resv *resv;
	struct sg_table *sgt;
	bool pinned = false;
	int ret;

	args = memdup_user(uarg, sizeof(*args));
	if (IS_ERR(args))
		return PTR_ERR(args);
	ret = -EINVAL;
	if (args->dir != DMA_BIDIRECTIONAL && args->dir != DMA_TO_DEVICE &&
	    args->dir != DMA_FROM_DEVICE)
		goto out_args;

	im = p2pt_import_get(pf, args->handle);
	if (IS_ERR(im)) {
		ret = PTR_ERR(im);
		goto out_args;
	}
	resv = im->dmabuf->resv;
	ret = dma_resv_lock_interruptible(resv, NULL);
	if (ret)
		goto out_put;

	ret = -EBUSY;
	if (im->sgt)
		goto out_unlock;
	/* A revoke dropped the pin of a pinned revocable importer. */
	if (p2pt_import_pins(im) && !im->pinned) {
		ret = dma_buf_pin(im->attach);
		if (ret)
			goto out_unlock;
		im->pinned = true;
		pinned = true;
	}
	sgt = dma_buf_map_attachment(im->attach, args->dir);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		if (pinned) {
			dma_buf_unpin(im->attach);
			im->pinned = false;
		}
		goto out_unlock;
	}
	im->sgt = sgt;
	im->dir = args->dir;
	p2pt_map_report(im, args);
	if (im->flags & P2PT_IMPORT_F_FENCE) {
		ret = p2pt_fence_add_locked(im);
		if (ret) {
			p2pt_import_drop_locked(im);
			goto out_unlock;
		}
	}
	dma_resv_unlock(resv);

	/* User memory is touched outside the reservation lock. */
	ret = 0;
	if (copy_to_user(uarg, args, sizeof(*args))) {
		ret = -EFAULT;
		dma_resv_lock(resv, NULL);
		if (im->sgt == sgt)
			p2pt_import_unmap_locked(im);
		dma_resv_unlock(resv);
	}
	goto out_put;

out_unlock:
	dma_resv_unlock(resv);
out_put:
	p2pt_import_put(im);
out_args:
	kfree(args);
	return ret;
}

int p2pt_ioctl_unmap(struct p2pt_file *pf, void __user *uarg)
{
	struct p2pt_handle args;
	struct p2pt_imported *im;
	int ret;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.pad)
		return -EINVAL;
	im = p2pt_import_get(pf, args.handle);
	if (IS_ERR(im))
		return PTR_ERR(im);
	ret = dma_resv_lock_interruptible(im->dmabuf->resv, NULL);
	if (!ret) {
		if (im->sgt)
			p2pt_import_unmap_locked(im);
		else
			ret = -ENODEV;
		dma_resv_unlock(im->dmabuf->resv);
	}
	p2pt_import_put(im);
	return ret;
}

int p2pt_ioctl_status(struct p2pt_file *pf, void __user *uarg)
{
	struct p2pt_status args;
	struct p2pt_imported *im;
	struct p2pt_buf *buf;
	int ret;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	im = p2pt_import_get(pf, args.handle);
	if (IS_ERR(im))
		return PTR_ERR(im);
	ret = dma_resv_lock_interruptible(im->dmabuf->resv, NULL);
	if (ret) {
		p2pt_import_put(im);
		return ret;
	}
	args.flags = 0;
	if (im->sgt)
		args.flags |= P2PT_STATUS_MAPPED;
	if (im->pinned)
		args.flags |= P2PT_STATUS_PINNED;
	args.flags |= p2pt_cpu_status_locked(im);
	if (im->giveback_pending)
		args.flags |= P2PT_STATUS_GIVEBACK;
	if (READ_ONCE(im->fence))
		args.flags |= P2PT_STATUS_FENCE;
	args.move_notify_count = im->move_notify_count;
	args.exporter_maps = 0;
	args.exporter_pins = 0;
	buf = p2pt_buf_of(im->dmabuf);
	if (buf) {
		if (buf->revoked)
			args.flags |= P2PT_STATUS_REVOKED;
		args.exporter_maps = atomic_read(&buf->nr_maps);
		args.exporter_pins = buf->nr_pins;
	}
	args.pad = 0;
	dma_resv_unlock(im->dmabuf->resv);
	p2pt_import_put(im);

	return copy_to_user(uarg, &args, sizeof(args)) ? -EFAULT : 0;
}

int p2pt_ioctl_release(struct p2pt_file *pf, void __user *uarg)
{
	struct p2pt_handle args;
	struct p2pt_imported *im;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.pad)
		return -EINVAL;
	im = xa_erase(&pf->imports, args.handle);
	if (!im)
		return -ENOENT;
	p2pt_import_free(im);
	return 0;
}

/*
 * The kernel copy of the user buffer of a DMA or CPU transfer, filled from
 * it for P2PT_DMA_TO_PEER. User memory is touched outside the reservation
 * lock, so transfers go through this copy.
 */
void *p2pt_xfer_buf_get(u32 dir, u64 user_ptr, u64 len)
{
	void *data;

	if (dir > P2PT_DMA_FROM_PEER || !len || len > P2PT_DMA_MAX)
		return ERR_PTR(-EINVAL);
	data = kzalloc(len, GFP_KERNEL);
	if (!data)
		return ERR_PTR(-ENOMEM);
	if (dir == P2PT_DMA_TO_PEER &&
	    copy_from_user(data, u64_to_user_ptr(user_ptr), len)) {
		kfree(data);
		return ERR_PTR(-EFAULT);
	}
	return data;
}

/* Hand the bytes of a successful P2PT_DMA_FROM_PEER back, free the copy. */
int p2pt_xfer_buf_put(void *data, u32 dir, u64 user_ptr, u64 len, int ret)
{
	if (!ret && dir == P2PT_DMA_FROM_PEER &&
	    copy_to_user(u64_to_user_ptr(user_ptr), data, len))
		ret = -EFAULT;
	kfree(data);
	return ret;
}

int p2pt_ioctl_dma(struct p2pt_file *pf, void __user *uarg)
{
	struct p2pt_imported *im;
	struct p2pt_dma args;
	void *data;
	int ret;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	data = p2pt_xfer_buf_get(args.dir, args.user_ptr, args.len);
	if (IS_ERR(data))
		return PTR_ERR(data);

	im = p2pt_import_get(pf, args.handle);
	if (IS_ERR(im)) {
		ret = PTR_ERR(im);
		goto out;
	}
	/*
	 * Holding the reservation lock keeps the mapping: a revoke waits for
	 * the DMA. Lock order: the reservation lock, then the engine.
	 */
	ret = dma_resv_lock_interruptible(im->dmabuf->resv, NULL);
	if (!ret) {
		mutex_lock(&im->imp->dma_lock);
		ret = p2pt_dma_locked(im, &args, data);
		mutex_unlock(&im->imp->dma_lock);
		dma_resv_unlock(im->dmabuf->resv);
	}
	p2pt_import_put(im);
out:
	return p2pt_xfer_buf_put(data, args.dir, args.user_ptr, args.len, ret);
}

/* P2PT_IOC_DMA_MASK: make the importer address less (or all again). */
int p2pt_ioctl_dma_mask(void __user *uarg)
{
	struct p2pt_importer *imp;
	struct p2pt_dma_mask args;
	int ret;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (!args.bits || args.bits > 64 || args.pad ||
	    strnlen(args.bdf, P2PT_BDF_LEN) == P2PT_BDF_LEN)
		return -EINVAL;
	imp = p2pt_importer_get(args.bdf);
	if (!imp)
		return -ENODEV;
	down_read(&imp->rwsem);
	ret = imp->gone ? -ENODEV :
	      dma_set_mask(&imp->pdev->dev, DMA_BIT_MASK(args.bits));
	up_read(&imp->rwsem);
	kref_put(&imp->kref, p2pt_importer_free);
	return ret;
}

static int p2pt_importer_probe(struct pci_dev *pdev,
			       const struct pci_device_id *id)
{
	struct p2pt_importer *imp;
	void __iomem *regs;
	int ret;

	if (pdev->vendor != EDU_VENDOR || pdev->device != EDU_DEVICE)
		return -ENODEV;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	regs = pcim_iomap_region(pdev, 0, P2PT_IMPORTER_DRIVER);
	if (IS_ERR(regs))
		return PTR_ERR(regs);
	/* Identification register: 0xRRrr00ed. */
	if ((readl(regs + EDU_REG_ID) & 0xffff) != 0xed)
		return -ENODEV;
	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;
	pci_set_master(pdev);

	imp = kzalloc(sizeof(*imp), GFP_KERNEL);
	if (!imp)
		return -ENOMEM;
	imp->bounce = dmam_alloc_coherent(&pdev->dev, EDU_BUF_SIZE,
					  &imp->bounce_dma, GFP_KERNEL);
	if (!imp->bounce) {
		kfree(imp);
		return -ENOMEM;
	}
	imp->regs = regs;
	imp->pdev = pci_dev_get(pdev);
	kref_init(&imp->kref);
	init_rwsem(&imp->rwsem);
	mutex_init(&imp->lock);
	mutex_init(&imp->dma_lock);
	INIT_LIST_HEAD(&imp->imports);
	pci_set_drvdata(pdev, imp);

	mutex_lock(&p2pt_lock);
	list_add(&imp->node, &p2pt_importers);
	mutex_unlock(&p2pt_lock);
	return 0;
}

static void p2pt_importer_remove(struct pci_dev *pdev)
{
	struct p2pt_importer *imp = pci_get_drvdata(pdev);
	struct p2pt_imported *im, *tmp;

	mutex_lock(&p2pt_lock);
	list_del(&imp->node);
	mutex_unlock(&p2pt_lock);

	/* Nothing may stay mapped for, or DMA from, an unbound device. */
	down_write(&imp->rwsem);
	imp->gone = true;
	list_for_each_entry_safe(im, tmp, &imp->imports, node) {
		list_del(&im->node);
		p2pt_import_teardown(im);
	}
	up_write(&imp->rwsem);
	pci_clear_master(pdev);
	kref_put(&imp->kref, p2pt_importer_free);
}

struct pci_driver p2pt_importer_driver = {
	.name = P2PT_IMPORTER_DRIVER,
	.probe = p2pt_importer_probe,
	.remove = p2pt_importer_remove,
};
