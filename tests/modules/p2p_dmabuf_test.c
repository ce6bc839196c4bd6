// SPDX-License-Identifier: GPL-2.0
/*
 * Test exporter and test importer of MMIO dma-bufs, for the lab kselftests
 * (tests/selftests/p2pdma, tests/selftests/vfio). The uAPI is in
 * p2p_dmabuf_test.h.
 *
 * p2p_test_exporter wraps page-aligned ranges of a PCI BAR in a dma-buf
 * and maps them with dma_buf_phys_vec_to_sgt(). It follows the revoke
 * contract of the exporters: mark revoked under the reservation lock,
 * dma_buf_move_notify(), wait for fences, unlock, then wait until every
 * importer has unmapped. Unbinding the exporter revokes its dma-bufs for
 * good; the dma-buf files stay valid.
 *
 * p2p_test_importer drives QEMU's edu device: it imports a dma-buf as a
 * dynamic, pinned revocable, pinned non-revocable or unpinned non-revocable
 * importer, maps it,
 * reports the DMA entries and moves bytes between the user and a mapped
 * DMA address through edu's DMA engine (user buffer <-> coherent bounce
 * buffer <-> edu's internal buffer <-> peer). It also takes a CPU mapping
 * of the whole dma-buf with dma_buf_vmap() and copies through it, as a
 * software importer (rxe) does; move_notify drops that mapping too.
 *
 * Slow partners: an import can give its mappings back later than
 * move_notify (from a workqueue, after a last write to the buffer), or hold
 * an unsignalled fence until some time after move_notify, so that tests
 * see whether an exporter's revoke really waits for its importers.
 *
 * Neither driver has an ID table: tests bind them with driver_override.
 */
#include <linux/dma-buf.h>
#include <linux/dma-buf-mapping.h>
#include <linux/dma-fence.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/fs.h>
#include <linux/iopoll.h>
#include <linux/iosys-map.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/overflow.h>
#include <linux/pci.h>
#include <linux/pci-p2pdma.h>
#include <linux/rwsem.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "p2p_dmabuf_test.h"

/* QEMU's edu device (hw/misc/edu.c). */
#define EDU_VENDOR		0x1234
#define EDU_DEVICE		0x11e8
#define EDU_REG_ID		0x00
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_CNT		0x90
#define EDU_REG_DMA_CMD		0x98
#define EDU_DMA_RUN		BIT(0)
#define EDU_DMA_TO_PCI		BIT(1)	/* edu buffer -> PCI address */
#define EDU_BUF_ADDR		0x40000	/* edu's buffer, in its DMA space */
#define EDU_BUF_SIZE		4096
/*
 * Bytes per transfer. QEMU (7.2) aborts on a transfer that ends exactly at
 * the end of edu's buffer (its range check is off by one), so a 4 KiB DMA
 * is done as two.
 */
#define EDU_DMA_CHUNK		2048
#define EDU_DMA_POLL_US		1000
#define EDU_DMA_TIMEOUT_US	(10 * USEC_PER_SEC)

/* For the tests' expectations of pin counts: a fact of the kernel build. */
static bool core_pins_maps = !IS_ENABLED(CONFIG_DMABUF_MOVE_NOTIFY);
module_param(core_pins_maps, bool, 0444);
MODULE_PARM_DESC(core_pins_maps,
		 "the dma-buf core pins dynamic exporters around each mapping");

static DEFINE_MUTEX(p2pt_lock);		/* the two device lists */
static LIST_HEAD(p2pt_exporters);
static LIST_HEAD(p2pt_importers);

/* A device bound to p2p_test_exporter. */
struct p2pt_exporter {
	struct pci_dev *pdev;
	struct list_head node;		/* in p2pt_exporters */
	struct kref kref;		/* the binding and each dma-buf */
	struct mutex lock;		/* protects @bufs and @gone */
	struct list_head bufs;
	bool gone;			/* unbound: its dma-bufs are dead */
};

/* One exported dma-buf. */
struct p2pt_buf {
	struct p2pt_exporter *exp;
	struct list_head node;		/* in exp->bufs */
	struct dma_buf *dmabuf;
	struct p2pdma_provider *provider;
	size_t size;
	unsigned int nr_ranges;
	struct dma_buf_phys_vec phys[P2PT_MAX_RANGES];
	atomic_t nr_maps;		/* live mappings over all attachments */
	wait_queue_head_t unmapped;	/* woken when @nr_maps drops to 0 */
	/* Under dmabuf->resv: */
	unsigned int nr_pins;
	bool revoked;
	bool dead;			/* revoked for good */
};

/* A device bound to p2p_test_importer. */
struct p2pt_importer {
	struct pci_dev *pdev;
	struct list_head node;		/* in p2pt_importers */
	struct kref kref;		/* the binding and each import */
	/* Read: users of the device; write: unbind, which sets @gone. */
	struct rw_semaphore rwsem;
	bool gone;
	struct mutex lock;		/* protects @imports for readers */
	struct list_head imports;
	struct mutex dma_lock;		/* the DMA engine, @bounce */
	void __iomem *regs;
	void *bounce;
	dma_addr_t bounce_dma;
};

/* One dma-buf attached to an importer, owned by an open file. */
struct p2pt_imported {
	struct p2pt_importer *imp;
	struct list_head node;		/* in imp->imports */
	u32 mode;
	u32 flags;			/* P2PT_IMPORT_F_* */
	unsigned long delay;		/* jiffies, F_DEFER and F_FENCE */
	struct delayed_work giveback;	/* F_DEFER */
	struct delayed_work signal;	/* F_FENCE */
	/* Set at import, cleared under imp->rwsem held for write. */
	struct dma_buf *dmabuf;
	struct dma_buf_attachment *attach;
	/* Under dmabuf->resv: */
	struct sg_table *sgt;
	enum dma_data_direction dir;
	bool pinned;
	bool giveback_pending;		/* F_DEFER: move_notify seen */
	bool dying;			/* being detached: nothing deferred */
	struct iosys_map vmap;		/* P2PT_IOC_VMAP, if set */
	struct dma_fence *fence;	/* F_FENCE: the last one added */
	u32 move_notify_count;
};

/* An open /dev/p2p_dmabuf_test. */
struct p2pt_file {
	struct mutex lock;		/* serializes the file's ioctls */
	struct xarray imports;		/* handle -> struct p2pt_imported */
};

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

static int p2pt_ioctl_export(void __user *uarg)
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

static int p2pt_ioctl_revoke(void __user *uarg, bool revoke)
{
	struct p2pt_revoke args;
	struct dma_buf *dmabuf;
	int ret = 0;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.pad)
		return -EINVAL;

	dmabuf = dma_buf_get(args.fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	if (dmabuf->ops != &p2pt_dmabuf_ops)
		ret = -EINVAL;
	else if (revoke)
		p2pt_buf_revoke(dmabuf->priv, false);
	else
		ret = p2pt_buf_unrevoke(dmabuf->priv);
	dma_buf_put(dmabuf);
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

static struct pci_driver p2pt_exporter_driver = {
	.name = P2PT_EXPORTER_DRIVER,
	.probe = p2pt_exporter_probe,
	.remove = p2pt_exporter_remove,
};

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

static void p2pt_import_vunmap_locked(struct p2pt_imported *im)
{
	dma_resv_assert_held(im->dmabuf->resv);
	if (!iosys_map_is_set(&im->vmap))
		return;
	dma_buf_vunmap(im->dmabuf, &im->vmap);
	iosys_map_clear(&im->vmap);
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

static int p2pt_dma_locked(struct p2pt_imported *im, const struct p2pt_dma *args,
			   void *data)
{
	struct p2pt_importer *imp = im->imp;
	u64 done, chunk;
	int ret;

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

	if (args->dir == P2PT_DMA_TO_PEER)
		memcpy(imp->bounce, data, args->len);
	for (done = 0; done < args->len; done += chunk) {
		u64 peer = args->dma_addr + done;
		u64 bounce = imp->bounce_dma + done;

		chunk = min_t(u64, args->len - done, EDU_DMA_CHUNK);
		if (args->dir == P2PT_DMA_TO_PEER) {
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
	if (args->dir == P2PT_DMA_FROM_PEER)
		memcpy(data, imp->bounce, args->len);
	return 0;
}

/* Give the mapping, the vmap and the pin back; under the reservation lock. */
static void p2pt_import_drop_locked(struct p2pt_imported *im)
{
	p2pt_import_unmap_locked(im);
	p2pt_import_vunmap_locked(im);
	if (im->pinned) {
		dma_buf_unpin(im->attach);
		im->pinned = false;
	}
}

/* --- slow partners ------------------------------------------------------ */

static u64 p2pt_fence_context;
static atomic64_t p2pt_fence_seqno = ATOMIC64_INIT(0);

struct p2pt_fence {
	struct dma_fence base;
	spinlock_t lock;
};

static const char *p2pt_fence_name(struct dma_fence *fence)
{
	return "p2p_dmabuf_test";
}

static const struct dma_fence_ops p2pt_fence_ops = {
	.get_driver_name = p2pt_fence_name,
	.get_timeline_name = p2pt_fence_name,
};

/* F_FENCE: a fence for the "work" of a new mapping; under the resv lock. */
static int p2pt_fence_add_locked(struct p2pt_imported *im)
{
	struct dma_resv *resv = im->dmabuf->resv;
	struct p2pt_fence *f;
	int ret;

	if (im->fence)		/* still busy with the last one */
		return 0;
	ret = dma_resv_reserve_fences(resv, 1);
	if (ret)
		return ret;
	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	spin_lock_init(&f->lock);
	dma_fence_init(&f->base, &p2pt_fence_ops, &f->lock, p2pt_fence_context,
		       atomic64_inc_return(&p2pt_fence_seqno));
	dma_resv_add_fence(resv, &f->base, DMA_RESV_USAGE_BOOKKEEP);
	im->fence = &f->base;
	return 0;
}

static void p2pt_fence_signal(struct work_struct *work)
{
	struct p2pt_imported *im = container_of(to_delayed_work(work),
						struct p2pt_imported, signal);
	struct dma_fence *fence = xchg(&im->fence, NULL);

	if (fence) {
		dma_fence_signal(fence);
		dma_fence_put(fence);
	}
}

/*
 * F_LATE_WRITE: the transfers still in flight when a slow importer was
 * told to stop, landing right before it gives the buffer back. Under
 * imp->dma_lock and the reservation lock.
 */
static void p2pt_late_write_locked(struct p2pt_imported *im)
{
	u8 *data = kmalloc(P2PT_LATE_LEN, GFP_KERNEL);

	if (!data)
		return;
	memset(data, P2PT_LATE_BYTE, P2PT_LATE_LEN);
	if (im->sgt) {
		struct p2pt_dma args = {
			.dir = P2PT_DMA_TO_PEER,
			.dma_addr = sg_dma_address(im->sgt->sgl),
			.len = P2PT_LATE_LEN,
		};

		if (p2pt_dma_locked(im, &args, data))
			pci_info(im->imp->pdev, "late DMA write failed\n");
	}
	if (iosys_map_is_set(&im->vmap) &&
	    im->dmabuf->size >= P2PT_LATE_CPU_OFF + P2PT_LATE_LEN)
		iosys_map_memcpy_to(&im->vmap, P2PT_LATE_CPU_OFF, data,
				    P2PT_LATE_LEN);
	kfree(data);
}

static void p2pt_giveback(struct work_struct *work)
{
	struct p2pt_imported *im = container_of(to_delayed_work(work),
						struct p2pt_imported, giveback);
	struct dma_resv *resv = im->dmabuf->resv;

	mutex_lock(&im->imp->dma_lock);
	dma_resv_lock(resv, NULL);
	if (im->giveback_pending) {
		im->giveback_pending = false;
		if (im->flags & P2PT_IMPORT_F_LATE_WRITE)
			p2pt_late_write_locked(im);
		p2pt_import_drop_locked(im);
	}
	dma_resv_unlock(resv);
	mutex_unlock(&im->imp->dma_lock);
}

/*
 * Before the import is detached: no more deferred work (@dying), what is
 * pending done now, the fence signalled. No reservation lock held.
 */
static void p2pt_import_quiesce(struct p2pt_imported *im)
{
	dma_resv_lock(im->dmabuf->resv, NULL);
	im->dying = true;
	dma_resv_unlock(im->dmabuf->resv);
	flush_delayed_work(&im->giveback);
	cancel_delayed_work_sync(&im->signal);
	p2pt_fence_signal(&im->signal.work);
}

static void p2pt_move_notify(struct dma_buf_attachment *attach)
{
	struct p2pt_imported *im = attach->importer_priv;

	im->move_notify_count++;
	if (im->fence && !im->dying)
		schedule_delayed_work(&im->signal, im->delay);
	if ((im->flags & P2PT_IMPORT_F_DEFER) && !im->dying) {
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

static void p2pt_import_free(struct p2pt_imported *im)
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

static int p2pt_ioctl_import(struct p2pt_file *pf, void __user *uarg)
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
static struct p2pt_imported *p2pt_import_get(struct p2pt_file *pf, u32 handle)
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

static void p2pt_import_put(struct p2pt_imported *im)
{
	up_read(&im->imp->rwsem);
}

/* Fill @args with the mapping of @im; under the reservation lock. */
static void p2pt_map_report(struct p2pt_imported *im, struct p2pt_map *args)
{
	struct scatterlist *sg;
	unsigned int i;

	args->route = P2PT_ROUTE_UNKNOWN;
	/* Mapped, so not revoked: the provider is alive. */
	if (im->dmabuf->ops == &p2pt_dmabuf_ops) {
		struct p2pt_buf *buf = im->dmabuf->priv;

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

static int p2pt_ioctl_map(struct p2pt_file *pf, void __user *uarg)
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

static int p2pt_ioctl_unmap(struct p2pt_file *pf, void __user *uarg)
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

static int p2pt_ioctl_status(struct p2pt_file *pf, void __user *uarg)
{
	struct p2pt_status args;
	struct p2pt_imported *im;
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
	if (iosys_map_is_set(&im->vmap))
		args.flags |= P2PT_STATUS_VMAPPED |
			      (im->vmap.is_iomem ? P2PT_STATUS_VMAP_IOMEM : 0);
	if (im->giveback_pending)
		args.flags |= P2PT_STATUS_GIVEBACK;
	if (READ_ONCE(im->fence))
		args.flags |= P2PT_STATUS_FENCE;
	args.move_notify_count = im->move_notify_count;
	args.exporter_maps = 0;
	args.exporter_pins = 0;
	if (im->dmabuf->ops == &p2pt_dmabuf_ops) {
		struct p2pt_buf *buf = im->dmabuf->priv;

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

static int p2pt_ioctl_release(struct p2pt_file *pf, void __user *uarg)
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
static void *p2pt_xfer_buf_get(u32 dir, u64 user_ptr, u64 len)
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
static int p2pt_xfer_buf_put(void *data, u32 dir, u64 user_ptr, u64 len,
			     int ret)
{
	if (!ret && dir == P2PT_DMA_FROM_PEER &&
	    copy_to_user(u64_to_user_ptr(user_ptr), data, len))
		ret = -EFAULT;
	kfree(data);
	return ret;
}

static int p2pt_ioctl_dma(struct p2pt_file *pf, void __user *uarg)
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
	mutex_lock(&im->imp->dma_lock);
	/* Holding the lock keeps the mapping: a revoke waits for the DMA. */
	ret = dma_resv_lock_interruptible(im->dmabuf->resv, NULL);
	if (!ret) {
		ret = p2pt_dma_locked(im, &args, data);
		dma_resv_unlock(im->dmabuf->resv);
	}
	mutex_unlock(&im->imp->dma_lock);
	p2pt_import_put(im);
out:
	return p2pt_xfer_buf_put(data, args.dir, args.user_ptr, args.len, ret);
}

/* P2PT_IOC_VMAP (@vmap true) and P2PT_IOC_VUNMAP. */
static int p2pt_ioctl_vmap(struct p2pt_file *pf, void __user *uarg, bool vmap)
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
		if (vmap && iosys_map_is_set(&im->vmap))
			ret = -EBUSY;
		else if (vmap)
			ret = dma_buf_vmap(im->dmabuf, &im->vmap);
		else if (iosys_map_is_set(&im->vmap))
			p2pt_import_vunmap_locked(im);
		else
			ret = -ENODEV;
		dma_resv_unlock(im->dmabuf->resv);
	}
	p2pt_import_put(im);
	return ret;
}

/* P2PT_IOC_CPU: copy through the vmap, as a software importer would. */
static int p2pt_ioctl_cpu(struct p2pt_file *pf, void __user *uarg)
{
	struct p2pt_imported *im;
	struct p2pt_cpu args;
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
	ret = dma_resv_lock_interruptible(im->dmabuf->resv, NULL);
	if (!ret) {
		if (!iosys_map_is_set(&im->vmap) || im->giveback_pending)
			ret = -ENODEV;
		else if (args.offset > im->dmabuf->size ||
			 args.len > im->dmabuf->size - args.offset)
			ret = -EINVAL;
		else if (args.dir == P2PT_DMA_TO_PEER)
			iosys_map_memcpy_to(&im->vmap, args.offset, data,
					    args.len);
		else
			iosys_map_memcpy_from(data, &im->vmap, args.offset,
					      args.len);
		dma_resv_unlock(im->dmabuf->resv);
	}
	p2pt_import_put(im);
out:
	return p2pt_xfer_buf_put(data, args.dir, args.user_ptr, args.len, ret);
}

/* P2PT_IOC_DMA_MASK: make the importer address less (or all again). */
static int p2pt_ioctl_dma_mask(void __user *uarg)
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

static struct pci_driver p2pt_importer_driver = {
	.name = P2PT_IMPORTER_DRIVER,
	.probe = p2pt_importer_probe,
	.remove = p2pt_importer_remove,
};

/* --- the misc device --------------------------------------------------- */

static int p2pt_open(struct inode *inode, struct file *file)
{
	struct p2pt_file *pf;

	pf = kzalloc(sizeof(*pf), GFP_KERNEL);
	if (!pf)
		return -ENOMEM;
	mutex_init(&pf->lock);
	xa_init_flags(&pf->imports, XA_FLAGS_ALLOC1);
	file->private_data = pf;
	return 0;
}

static int p2pt_release(struct inode *inode, struct file *file)
{
	struct p2pt_file *pf = file->private_data;
	struct p2pt_imported *im;
	unsigned long handle;

	xa_for_each(&pf->imports, handle, im) {
		xa_erase(&pf->imports, handle);
		p2pt_import_free(im);
	}
	xa_destroy(&pf->imports);
	mutex_destroy(&pf->lock);
	kfree(pf);
	return 0;
}

static long p2pt_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct p2pt_file *pf = file->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	switch (cmd) {
	case P2PT_IOC_EXPORT:
		return p2pt_ioctl_export(uarg);
	case P2PT_IOC_REVOKE:
		return p2pt_ioctl_revoke(uarg, true);
	case P2PT_IOC_UNREVOKE:
		return p2pt_ioctl_revoke(uarg, false);
	case P2PT_IOC_DMA_MASK:
		return p2pt_ioctl_dma_mask(uarg);
	}

	mutex_lock(&pf->lock);
	switch (cmd) {
	case P2PT_IOC_IMPORT:
		ret = p2pt_ioctl_import(pf, uarg);
		break;
	case P2PT_IOC_MAP:
		ret = p2pt_ioctl_map(pf, uarg);
		break;
	case P2PT_IOC_UNMAP:
		ret = p2pt_ioctl_unmap(pf, uarg);
		break;
	case P2PT_IOC_STATUS:
		ret = p2pt_ioctl_status(pf, uarg);
		break;
	case P2PT_IOC_RELEASE:
		ret = p2pt_ioctl_release(pf, uarg);
		break;
	case P2PT_IOC_DMA:
		ret = p2pt_ioctl_dma(pf, uarg);
		break;
	case P2PT_IOC_VMAP:
		ret = p2pt_ioctl_vmap(pf, uarg, true);
		break;
	case P2PT_IOC_VUNMAP:
		ret = p2pt_ioctl_vmap(pf, uarg, false);
		break;
	case P2PT_IOC_CPU:
		ret = p2pt_ioctl_cpu(pf, uarg);
		break;
	default:
		ret = -ENOTTY;
		break;
	}
	mutex_unlock(&pf->lock);
	return ret;
}

static const struct file_operations p2pt_fops = {
	.owner = THIS_MODULE,
	.open = p2pt_open,
	.release = p2pt_release,
	.unlocked_ioctl = p2pt_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice p2pt_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "p2p_dmabuf_test",
	.fops = &p2pt_fops,
	.mode = 0600,
};

static int __init p2pt_init(void)
{
	int ret;

	BUILD_BUG_ON(P2PT_ROUTE_NOT_SUPPORTED != PCI_P2PDMA_MAP_NOT_SUPPORTED);
	BUILD_BUG_ON(P2PT_ROUTE_BUS_ADDR != PCI_P2PDMA_MAP_BUS_ADDR);
	BUILD_BUG_ON(P2PT_ROUTE_THRU_HOST_BRIDGE !=
		     PCI_P2PDMA_MAP_THRU_HOST_BRIDGE);
	BUILD_BUG_ON(P2PT_DIR_TO_DEVICE != DMA_TO_DEVICE);
	BUILD_BUG_ON(P2PT_DIR_FROM_DEVICE != DMA_FROM_DEVICE);
	BUILD_BUG_ON(P2PT_DMA_MAX > EDU_BUF_SIZE);
	BUILD_BUG_ON(P2PT_LATE_LEN > EDU_DMA_CHUNK);

	p2pt_fence_context = dma_fence_context_alloc(1);

	ret = pci_register_driver(&p2pt_exporter_driver);
	if (ret)
		return ret;
	ret = pci_register_driver(&p2pt_importer_driver);
	if (ret)
		goto err_exporter;
	ret = misc_register(&p2pt_misc);
	if (ret)
		goto err_importer;
	return 0;

err_importer:
	pci_unregister_driver(&p2pt_importer_driver);
err_exporter:
	pci_unregister_driver(&p2pt_exporter_driver);
	return ret;
}

static void __exit p2pt_exit(void)
{
	misc_deregister(&p2pt_misc);
	pci_unregister_driver(&p2pt_importer_driver);
	pci_unregister_driver(&p2pt_exporter_driver);
}

module_init(p2pt_init);
module_exit(p2pt_exit);

MODULE_DESCRIPTION("Test exporter and importer of PCI P2P dma-bufs (QEMU lab)");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(DMA_BUF);
