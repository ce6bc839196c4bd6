// SPDX-License-Identifier: GPL-2.0
/* p2p_test_exporter: MMIO dma-bufs of BAR ranges, revocable. */
#include "p2pt_internal.h"

static const struct dma_buf_ops p2pt_dmabuf_ops;

/* --- exporter ---------------------------------------------------------- */

static void p2pt_exporter_free(struct kref *kref)
{
	struct p2pt_exporter *exp = container_of(kref, struct p2pt_exporter, kref);

	pci_dev_put(exp->pdev);
	kfree(exp);
}

/* The exporter bound to @bdf, referenced, or NULL. */
static struct p2pt_exporter *p2pt_exporter_get(const char *bdf)
{
	struct p2pt_exporter *exp;

	guard(mutex)(&p2pt_lock);
	list_for_each_entry(exp, &p2pt_exporters, node) {
		if (!strcmp(pci_name(exp->pdev), bdf)) {
			kref_get(&exp->kref);
			return exp;
		}
	}
	return NULL;
}

static int p2pt_exp_attach(struct dma_buf *dmabuf,
			   struct dma_buf_attachment *attach)
{
	struct p2pt_buf *buf = dmabuf->priv;
	bool revoked;

	/* Revoke waits for every mapping: only revocable importers. */
	if (!attach->peer2peer || !dma_buf_attach_revocable(attach))
		return -EOPNOTSUPP;

	dma_resv_lock(dmabuf->resv, NULL);
	revoked = buf->revoked;
	dma_resv_unlock(dmabuf->resv);
	return revoked ? -ENODEV : 0;
}

static int p2pt_exp_pin(struct dma_buf_attachment *attach)
{
	struct p2pt_buf *buf = attach->dmabuf->priv;

	/* Only importers that can be revoked may pin. */
	if (!dma_buf_attach_revocable(attach))
		return -EOPNOTSUPP;
	buf->nr_pins++;
	return 0;
}

static void p2pt_exp_unpin(struct dma_buf_attachment *attach)
{
	struct p2pt_buf *buf = attach->dmabuf->priv;

	buf->nr_pins--;
}

static struct sg_table *p2pt_exp_map(struct dma_buf_attachment *attach,
				     enum dma_data_direction dir)
{
	struct p2pt_buf *buf = attach->dmabuf->priv;
	struct sg_table *sgt;

	dma_resv_assert_held(attach->dmabuf->resv);

	if (buf->revoked)
		return ERR_PTR(-ENODEV);

	sgt = dma_buf_phys_vec_to_sgt(attach, buf->provider, buf->phys,
				      buf->nr_ranges, buf->size, dir);
	if (!IS_ERR(sgt))
		atomic_inc(&buf->nr_maps);
	return sgt;
}

static void p2pt_exp_unmap(struct dma_buf_attachment *attach,
			   struct sg_table *sgt, enum dma_data_direction dir)
{
	struct p2pt_buf *buf = attach->dmabuf->priv;

	dma_buf_free_sgt(attach, sgt, dir);
	if (atomic_dec_and_test(&buf->nr_maps))
		wake_up(&buf->unmapped);
}

static void p2pt_exp_release(struct dma_buf *dmabuf)
{
	struct p2pt_buf *buf = dmabuf->priv;
	struct p2pt_exporter *exp = buf->exp;

	mutex_lock(&exp->lock);
	list_del(&buf->node);
	mutex_unlock(&exp->lock);
	kref_put(&exp->kref, p2pt_exporter_free);
	kfree(buf);
}

/* The test exporter's buffer behind @dmabuf, or NULL for another exporter's. */
struct p2pt_buf *p2pt_buf_of(struct dma_buf *dmabuf)
{
	return dmabuf->ops == &p2pt_dmabuf_ops ? dmabuf->priv : NULL;
}

static const struct dma_buf_ops p2pt_dmabuf_ops = {
	.attach = p2pt_exp_attach,
	.pin = p2pt_exp_pin,
	.unpin = p2pt_exp_unpin,
	.map_dma_buf = p2pt_exp_map,
	.unmap_dma_buf = p2pt_exp_unmap,
	.release = p2pt_exp_release,
};

/*
 * Revoke: no importer may map, and none holds a mapping, when this
 * returns. @permanent: the exporter device is going away.
 */
static void p2pt_buf_revoke(struct p2pt_buf *buf, bool permanent)
{
	struct dma_buf *dmabuf = buf->dmabuf;

	dma_resv_lock(dmabuf->resv, NULL);
	if (permanent)
		buf->dead = true;
	if (!buf->revoked) {
		buf->revoked = true;
		dma_buf_move_notify(dmabuf);
		dma_resv_wait_timeout(dmabuf->resv, DMA_RESV_USAGE_BOOKKEEP,
				      false, MAX_SCHEDULE_TIMEOUT);
	}
	dma_resv_unlock(dmabuf->resv);
	wait_event(buf->unmapped, !atomic_read(&buf->nr_maps));
}

static int p2pt_buf_unrevoke(struct p2pt_buf *buf)
{
	struct dma_buf *dmabuf = buf->dmabuf;
	int ret = 0;

	dma_resv_lock(dmabuf->resv, NULL);
	if (buf->dead)
		ret = -ENODEV;
	else
		buf->revoked = false;
	dma_resv_unlock(dmabuf->resv);
	return ret;
}

/* Check @args against BAR @bar and fill @buf's ranges. */
static int p2pt_buf_set_ranges(struct p2pt_buf *buf, struct pci_dev *pdev,
			       const struct p2pt_export *args)
{
	resource_size_t bar_len = pci_resource_len(pdev, args->bar);
	resource_size_t bar_start = pci_resource_start(pdev, args->bar);
	size_t size = 0;
	unsigned int i;

	for (i = 0; i < args->nr_ranges; i++) {
		const struct p2pt_range *r = &args->ranges[i];
		u64 end;

		if (!r->length || !PAGE_ALIGNED(r->offset) ||
		    !PAGE_ALIGNED(r->length))
			return -EINVAL;
		if (check_add_overflow(r->offset, r->length, &end) ||
		    end > bar_len)
			return -EINVAL;
		if (check_add_overflow(size, (size_t)r->length, &size))
			return -EINVAL;
		buf->phys[i].paddr = bar_start + r->offset;
		buf->phys[i].len = r->length;
	}
	buf->nr_ranges = args->nr_ranges;
	buf->size = size;
	return 0;
}

int p2pt_ioctl_export(void __user *uarg)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	struct p2pt_exporter *exp;
	struct p2pt_export *args;
	struct dma_buf *dmabuf;
	struct p2pt_buf *buf;
	int ret;

	args = memdup_user(uarg, sizeof(*args));
	if (IS_ERR(args))
		return PTR_ERR(args);

	ret = -EINVAL;
	if (args->open_flags & ~(O_CLOEXEC | O_ACCMODE) || args->pad ||
	    !args->nr_ranges || args->nr_ranges > P2PT_MAX_RANGES ||
	    args->bar >= PCI_STD_NUM_BARS ||
	    strnlen(args->bdf, P2PT_BDF_LEN) == P2PT_BDF_LEN)
		goto out_args;

	ret = -ENODEV;
	exp = p2pt_exporter_get(args->bdf);
	if (!exp)
		goto out_args;

	ret = -ENOMEM;
	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		goto out_exp;
	buf->exp = exp;
	atomic_set(&buf->nr_maps, 0);
	init_waitqueue_head(&buf->unmapped);

	mutex_lock(&exp->lock);
	ret = -ENODEV;
	if (exp->gone)
		goto out_unlock;
	ret = -EINVAL;
	buf->provider = pcim_p2pdma_provider(exp->pdev, args->bar);
	if (!buf->provider)
		goto out_unlock;
	ret = p2pt_buf_set_ranges(buf, exp->pdev, args);
	if (ret)
		goto out_unlock;

	args->bar_size = pci_resource_len(exp->pdev, args->bar);
	args->bar_bus_addr = pci_bus_address(exp->pdev, args->bar);
	ret = -EFAULT;
	if (copy_to_user(uarg, args, sizeof(*args)))
		goto out_unlock;

	exp_info.ops = &p2pt_dmabuf_ops;
	exp_info.size = buf->size;
	exp_info.flags = args->open_flags;
	exp_info.priv = buf;
	dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(dmabuf)) {
		ret = PTR_ERR(dmabuf);
		goto out_unlock;
	}
	buf->dmabuf = dmabuf;
	/* From here on the dma-buf owns @buf and the reference on @exp. */
	list_add(&buf->node, &exp->bufs);
	mutex_unlock(&exp->lock);

	ret = dma_buf_fd(dmabuf, args->open_flags);
	if (ret < 0)
		dma_buf_put(dmabuf);
	kfree(args);
	return ret;

out_unlock:
	mutex_unlock(&exp->lock);
	kfree(buf);
out_exp:
	kref_put(&exp->kref, p2pt_exporter_free);
out_args:
	kfree(args);
	return ret;
}

int p2pt_ioctl_revoke(void __user *uarg, bool revoke)
{
	struct p2pt_revoke args;
	struct dma_buf *dmabuf;
	struct p2pt_buf *buf;
	int ret = 0;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.pad)
		return -EINVAL;

	dmabuf = dma_buf_get(args.fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	buf = p2pt_buf_of(dmabuf);
	if (!buf)
		ret = -EINVAL;
	else if (revoke)
		p2pt_buf_revoke(buf, false);
	else
		ret = p2pt_buf_unrevoke(buf);
	dma_buf_put(dmabuf);
	return ret;
}

int p2pt_ioctl_p2pmem(void __user *uarg)
{
	struct p2pt_exporter *exp;
	struct p2pt_p2pmem args;
	int ret;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.pad || args.bar >= PCI_STD_NUM_BARS ||
	    strnlen(args.bdf, P2PT_BDF_LEN) == P2PT_BDF_LEN)
		return -EINVAL;
	exp = p2pt_exporter_get(args.bdf);
	if (!exp)
		return -ENODEV;
	mutex_lock(&exp->lock);
	ret = -ENODEV;
	if (!exp->gone)
		ret = pci_p2pdma_add_resource(exp->pdev, args.bar, args.size, args.offset);
	mutex_unlock(&exp->lock);
	kref_put(&exp->kref, p2pt_exporter_free);
	return ret;
}

static int p2pt_exporter_probe(struct pci_dev *pdev,
			       const struct pci_device_id *id)
{
	struct p2pt_exporter *exp;
	int ret;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = pcim_p2pdma_init(pdev);
	if (ret)
		return ret;

	exp = kzalloc(sizeof(*exp), GFP_KERNEL);
	if (!exp)
		return -ENOMEM;
	exp->pdev = pci_dev_get(pdev);
	kref_init(&exp->kref);
	mutex_init(&exp->lock);
	INIT_LIST_HEAD(&exp->bufs);
	pci_set_drvdata(pdev, exp);

	mutex_lock(&p2pt_lock);
	list_add(&exp->node, &p2pt_exporters);
	mutex_unlock(&p2pt_lock);
	return 0;
}

static void p2pt_exporter_remove(struct pci_dev *pdev)
{
	struct p2pt_exporter *exp = pci_get_drvdata(pdev);
	struct p2pt_buf *buf;

	mutex_lock(&p2pt_lock);
	list_del(&exp->node);
	mutex_unlock(&p2pt_lock);

	/* The providers go with the binding: no dma-buf may map again. */
	mutex_lock(&exp->lock);
	exp->gone = true;
	list_for_each_entry(buf, &exp->bufs, node)
		p2pt_buf_revoke(buf, true);
	mutex_unlock(&exp->lock);
	kref_put(&exp->kref, p2pt_exporter_free);
}

struct pci_driver p2pt_exporter_driver = {
	.name = P2PT_EXPORTER_DRIVER,
	.probe = p2pt_exporter_probe,
	.remove = p2pt_exporter_remove,
};
