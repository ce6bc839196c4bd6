// SPDX-License-Identifier: GPL-2.0
/*
 * p2p_test_rdma's MRs over dma-bufs, with edu's DMA engine as the NIC that
 * reaches them (p2pt_engine_get() and _copy(); the engine is the edu the
 * dma_engine parameter names). They follow the two protocols an RDMA
 * driver has as a dma-buf importer, the ones mlx5 follows, so that the
 * lab runs the shared core paths mlx5 uses:
 *
 *  - dynamic, on-demand-paging style (ib_umem_dmabuf_get()): move_notify
 *    zaps the MR's translation and unmaps; the next access "faults" and
 *    maps again under the reservation lock, or fails with the exporter's
 *    error once it has revoked the buffer;
 *  - pinned and revocable, data-direct style
 *    (ib_umem_dmabuf_get_pinned_revocable_dma_device_and_lock()): mapped
 *    once, for the ib_device's DMA device or, with a data-direct engine
 *    (p2pt_rdma.c's data_direct=), for that engine, which is another
 *    device; the umem comes back with the reservation lock held, the MR
 *    is made, enabled and its revoke callback set, with the MR, before
 *    the lock is dropped; a revoke is final.
 *
 * mr_mode= chooses the kind of the next registrations (pinned always
 * with a data-direct engine, as mlx5's data-direct MRs are). An access
 * is asked for through mr_dma and runs under the dma-buf's reservation
 * lock, as the hardware's would be fenced by the invalidation: a
 * move_notify or a revoke waits for it, and none starts on a zapped or
 * revoked MR. mrs lists the MRs with their counts.
 */
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>
#include <rdma/ib_umem.h>

#include "p2pt_engine.h"
#include "p2pt_rdma.h"
#include "p2pt_rdma_mr.h"

struct p2pt_rdma_mr {
	struct ib_mr ibmr;
	struct ib_umem_dmabuf *umem;
	bool dynamic;
	/* Under the dma-buf's reservation lock: */
	bool enabled;		/* pinned: translation on, as mlx5's mkey */
	bool revoked;		/* pinned: the revoke callback ran */
	u32 invalidations;	/* zaps (dynamic) or the revoke (pinned) */
	u32 faults;		/* dynamic: maps again after an invalidation */
};

/* MRs by key, for mr_dma and mrs; an access holds the lock. */
static DEFINE_MUTEX(p2pt_rdma_mrs_lock);
static DEFINE_XARRAY_ALLOC1(p2pt_rdma_mrs);

static bool p2pt_rdma_mr_pinned;

static int p2pt_rdma_mr_mode_set(const char *val, const struct kernel_param *kp)
{
	if (sysfs_streq(val, "dynamic"))
		WRITE_ONCE(p2pt_rdma_mr_pinned, false);
	else if (sysfs_streq(val, "pinned"))
		WRITE_ONCE(p2pt_rdma_mr_pinned, true);
	else
		return -EINVAL;
	return 0;
}

static int p2pt_rdma_mr_mode_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n",
			  READ_ONCE(p2pt_rdma_mr_pinned) ? "pinned" : "dynamic");
}

static const struct kernel_param_ops p2pt_rdma_mr_mode_ops = {
	.set = p2pt_rdma_mr_mode_set,
	.get = p2pt_rdma_mr_mode_get,
};
module_param_cb(mr_mode, &p2pt_rdma_mr_mode_ops, NULL, 0644);
MODULE_PARM_DESC(mr_mode, "kind of the next dma-buf MRs: dynamic or pinned");

int p2pt_rdma_alloc_pd(struct ib_pd *pd, struct ib_udata *udata)
{
	return 0;
}

int p2pt_rdma_dealloc_pd(struct ib_pd *pd, struct ib_udata *udata)
{
	return 0;
}

/* Dynamic: the exporter moves or revokes the buffer; zap and unmap. */
static void p2pt_rdma_mr_move_notify(struct dma_buf_attachment *attach)
{
	struct ib_umem_dmabuf *umem = attach->importer_priv;
	struct p2pt_rdma_mr *mr = umem->private;

	dma_resv_assert_held(attach->dmabuf->resv);
	/*
	 * Not an MR yet (registering) or any more (deregistering), or nothing
	 * mapped to zap (revoked, or a restore's notify): as mlx5 returns.
	 */
	if (!mr || !umem->sgt)
		return;
	mr->invalidations++;
	ib_umem_dmabuf_unmap_pages(umem);
}

static const struct dma_buf_attach_ops p2pt_rdma_mr_attach_ops = {
	.allow_peer2peer = true,
	.move_notify = p2pt_rdma_mr_move_notify,
};

/*
 * Pinned: the exporter revokes; under the reservation lock, once. mlx5's
 * UMR revoke of an mkey that was never enabled fails: a registration that
 * lets a revoke in before it enabled the MR is a protocol bug.
 */
static void p2pt_rdma_mr_revoke(void *priv)
{
	struct p2pt_rdma_mr *mr = priv;

	WARN_ON_ONCE(!mr->enabled);
	mr->revoked = true;
	mr->invalidations++;
}

/*
 * A slow registration, for a test that revokes in the middle of one:
 * reg_delay_ms between the import and the MR's first map, where mlx5 has
 * its window; reg_delays counts the registrations that got there.
 */
static unsigned int reg_delay_ms;
module_param(reg_delay_ms, uint, 0600);
MODULE_PARM_DESC(reg_delay_ms,
		 "sleep this long (up to 10 s) in a registration, after the import (ms)");
static unsigned int reg_delays;
module_param(reg_delays, uint, 0444);
MODULE_PARM_DESC(reg_delays, "registrations that have reached reg_delay_ms's sleep");

static void p2pt_rdma_mr_reg_delay(void)
{
	unsigned int ms = min(READ_ONCE(reg_delay_ms), 10000U);

	if (!ms)
		return;
	WRITE_ONCE(reg_delays, READ_ONCE(reg_delays) + 1);
	msleep(ms);
}

static int p2pt_rdma_mr_get_dynamic(struct ib_pd *pd, struct p2pt_rdma_mr *mr,
				    u64 offset, u64 length, int fd, int access)
{
	struct ib_umem_dmabuf *umem;
	struct dma_resv *resv;
	int ret;

	umem = ib_umem_dmabuf_get(pd->device, offset, length, fd, access,
				  &p2pt_rdma_mr_attach_ops);
	if (IS_ERR(umem))
		return PTR_ERR(umem);
	/*
	 * Mapped now: an exporter that refuses (one that revoked in the
	 * delay, too) fails the registration.
	 */
	p2pt_rdma_mr_reg_delay();
	resv = umem->attach->dmabuf->resv;
	dma_resv_lock(resv, NULL);
	ret = ib_umem_dmabuf_map_pages(umem);
	if (!ret)
		umem->private = mr;
	dma_resv_unlock(resv);
	if (ret) {
		ib_umem_release(&umem->umem);
		return ret;
	}
	mr->umem = umem;
	return 0;
}

static int p2pt_rdma_mr_get_pinned(struct ib_pd *pd, struct p2pt_rdma_mr *mr,
				   struct device *dma_device, u64 offset,
				   u64 length, int fd, int access)
{
	struct ib_umem_dmabuf *umem;
	int ret;

	umem = ib_umem_dmabuf_get_pinned_revocable_dma_device_and_lock(pd->device,
								       dma_device,
								       offset, length,
								       fd, access);
	if (IS_ERR(umem))
		return PTR_ERR(umem);
	/*
	 * The MR exists. Enable it while revokes still wait, as mlx5 enables
	 * its mkey (mlx5_ib_init_dmabuf_mr_locked(), whose map is a no-op on
	 * a mapped pinned umem); then give the callback the MR and let
	 * revokes in.
	 */
	p2pt_rdma_mr_reg_delay();
	ret = ib_umem_dmabuf_map_pages(umem);
	if (!ret) {
		mr->enabled = true;
		ib_umem_dmabuf_set_revoke_locked(umem, p2pt_rdma_mr_revoke, mr);
	}
	ib_umem_dmabuf_revoke_unlock(umem);
	if (ret) {
		ib_umem_release(&umem->umem);
		return ret;
	}
	mr->umem = umem;
	return 0;
}

/*
 * Let go of the umem: the callbacks are told the MR is gone under the
 * reservation lock first (mlx5's protocol), so that a move_notify or a
 * revoke racing with us never touches it again.
 */
static void p2pt_rdma_mr_put_umem(struct p2pt_rdma_mr *mr)
{
	struct ib_umem_dmabuf *umem = mr->umem;

	ib_umem_dmabuf_revoke_lock(umem);
	if (mr->dynamic) {
		umem->private = NULL;
		ib_umem_dmabuf_unmap_pages(umem);
	} else {
		ib_umem_dmabuf_set_revoke_locked(umem, NULL, NULL);
	}
	ib_umem_dmabuf_revoke_unlock(umem);
	ib_umem_release(&umem->umem);
}

struct ib_mr *p2pt_rdma_reg_user_mr_dmabuf(struct ib_pd *pd, u64 offset,
					   u64 length, u64 virt_addr, int fd,
					   int access,
					   struct uverbs_attr_bundle *attrs)
{
	struct device *data_direct = p2pt_rdma_data_direct(pd->device);
	struct p2pt_rdma_mr *mr;
	u32 key;
	int ret;

	/* Only with an engine to reach the memory (dma_engine=). */
	if (!data_direct && pd->device->dma_device == pd->device->dev.parent)
		return ERR_PTR(-EOPNOTSUPP);

	mr = kzalloc(sizeof(*mr), GFP_KERNEL);
	if (!mr)
		return ERR_PTR(-ENOMEM);
	mr->dynamic = !data_direct && !READ_ONCE(p2pt_rdma_mr_pinned);
	mr->ibmr.iova = virt_addr;
	mr->ibmr.length = length;
	ret = mr->dynamic ?
	      p2pt_rdma_mr_get_dynamic(pd, mr, offset, length, fd, access) :
	      p2pt_rdma_mr_get_pinned(pd, mr,
				      data_direct ?: pd->device->dma_device,
				      offset, length, fd, access);
	if (ret)
		goto err_free;

	mutex_lock(&p2pt_rdma_mrs_lock);
	ret = xa_alloc(&p2pt_rdma_mrs, &key, mr, xa_limit_31b, GFP_KERNEL);
	mutex_unlock(&p2pt_rdma_mrs_lock);
	if (ret)
		goto err_release;
	mr->ibmr.lkey = key;
	mr->ibmr.rkey = key;
	return &mr->ibmr;

err_release:
	p2pt_rdma_mr_put_umem(mr);
err_free:
	kfree(mr);
	return ERR_PTR(ret);
}

int p2pt_rdma_dereg_mr(struct ib_mr *ibmr, struct ib_udata *udata)
{
	struct p2pt_rdma_mr *mr = container_of(ibmr, struct p2pt_rdma_mr, ibmr);

	/* No access can find it any more, and none is running. */
	mutex_lock(&p2pt_rdma_mrs_lock);
	xa_erase(&p2pt_rdma_mrs, ibmr->lkey);
	mutex_unlock(&p2pt_rdma_mrs_lock);
	p2pt_rdma_mr_put_umem(mr);
	kfree(mr);
	return 0;
}

/*
 * Where byte @pos of the umem (from its first page) is for the engine, and
 * how many bytes are contiguous there; under the reservation lock, mapped.
 */
static size_t p2pt_rdma_mr_dma_addr(struct ib_umem_dmabuf *umem, u64 pos,
				    dma_addr_t *addr)
{
	struct scatterlist *sg;
	unsigned int i;

	for_each_sg(umem->umem.sgt_append.sgt.sgl, sg,
		    umem->umem.sgt_append.sgt.nents, i) {
		if (pos < sg_dma_len(sg)) {
			*addr = sg_dma_address(sg) + pos;
			return sg_dma_len(sg) - pos;
		}
		pos -= sg_dma_len(sg);
	}
	return 0;
}

/*
 * One access of the "NIC" to [@offset, @offset + @len) of @mr: write @data
 * there, or read into it. A dynamic MR whose translation was zapped
 * faults: it maps again, unless the exporter refuses (its error, -ENODEV
 * once revoked). A revoked pinned MR fails with -EACCES, as its mkey
 * would.
 */
static int p2pt_rdma_mr_access(struct p2pt_rdma_mr *mr, u64 offset, u8 *data,
			       size_t len, bool write)
{
	struct ib_umem_dmabuf *umem = mr->umem;
	struct dma_resv *resv = umem->attach->dmabuf->resv;
	u64 pos = (umem->umem.address & ~PAGE_MASK) + offset;
	struct p2pt_engine *engine;
	dma_addr_t addr;
	size_t n;
	int ret;

	if (offset > mr->ibmr.length || len > mr->ibmr.length - offset)
		return -EINVAL;

	/* The engine before the reservation lock, as its owner takes them. */
	engine = p2pt_engine_get(umem->attach->dev);
	if (IS_ERR(engine))
		return PTR_ERR(engine);
	ret = dma_resv_lock_interruptible(resv, NULL);
	if (ret)
		goto out_engine;
	if (mr->revoked) {
		ret = -EACCES;
		goto out;
	}
	if (!umem->sgt) {
		/* Pinned MRs are never zapped: only revoked, above. */
		if (WARN_ON_ONCE(!mr->dynamic)) {
			ret = -EIO;
			goto out;
		}
		ret = ib_umem_dmabuf_map_pages(umem);
		if (ret)
			goto out;
		mr->faults++;
	}
	while (len) {
		n = p2pt_rdma_mr_dma_addr(umem, pos, &addr);
		if (!n) {
			ret = -EFAULT;
			break;
		}
		n = min3(n, len, (size_t)PAGE_SIZE);
		ret = p2pt_engine_copy(engine, addr, data, n, write);
		if (ret)
			break;
		pos += n;
		data += n;
		len -= n;
	}
out:
	dma_resv_unlock(resv);
out_engine:
	p2pt_engine_put(engine);
	return ret;
}

/*
 * mr_dma: write "<key> <offset> <length> <w|r> <byte>", and the engine
 * writes @length bytes of <byte> at <offset> of the MR, or reads them and
 * checks that they are all <byte> (-EILSEQ if not). The write() fails
 * with the access's error.
 */
static int p2pt_rdma_mr_dma(const char *val)
{
	struct p2pt_rdma_mr *mr;
	unsigned int key, byte;
	u64 offset, len, i;
	char op;
	u8 *data;
	int ret;

	if (sscanf(val, "%u %llu %llu %c %x", &key, &offset, &len, &op,
		   &byte) != 5 || (op != 'w' && op != 'r') || byte > 0xff ||
	    !len || len > SZ_64K)
		return -EINVAL;
	data = kvmalloc(len, GFP_KERNEL);
	if (!data)
		return -ENOMEM;
	memset(data, op == 'w' ? byte : ~byte, len);

	mutex_lock(&p2pt_rdma_mrs_lock);
	mr = xa_load(&p2pt_rdma_mrs, key);
	ret = mr ? p2pt_rdma_mr_access(mr, offset, data, len, op == 'w') :
		   -ENOENT;
	mutex_unlock(&p2pt_rdma_mrs_lock);

	for (i = 0; !ret && op == 'r' && i < len; i++)
		if (data[i] != byte)
			ret = -EILSEQ;
	kvfree(data);
	return ret;
}

static ssize_t p2pt_rdma_mr_dma_write(struct file *file,
				      const char __user *ubuf, size_t count,
				      loff_t *ppos)
{
	char *val;
	int ret;

	if (count > 96)
		return -EINVAL;
	val = memdup_user_nul(ubuf, count);
	if (IS_ERR(val))
		return PTR_ERR(val);
	ret = p2pt_rdma_mr_dma(val);
	kfree(val);
	return ret ? ret : count;
}

static const struct file_operations p2pt_rdma_mr_dma_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = p2pt_rdma_mr_dma_write,
	.llseek = noop_llseek,
};

/* mrs: one line per MR, "<key> <dynamic|pinned> <invalidations> <faults> <revoked>". */
static int p2pt_rdma_mrs_show(struct seq_file *m, void *unused)
{
	struct p2pt_rdma_mr *mr;
	unsigned long key;

	mutex_lock(&p2pt_rdma_mrs_lock);
	xa_for_each(&p2pt_rdma_mrs, key, mr) {
		struct dma_resv *resv = mr->umem->attach->dmabuf->resv;

		dma_resv_lock(resv, NULL);
		seq_printf(m, "%lu %s %u %u %d\n", key,
			   mr->dynamic ? "dynamic" : "pinned",
			   mr->invalidations, mr->faults, mr->revoked);
		dma_resv_unlock(resv);
	}
	mutex_unlock(&p2pt_rdma_mrs_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(p2pt_rdma_mrs);

/* The MRs' test controls, mr_dma and mrs, in p2p_test_rdma's @dir. */
void p2pt_rdma_mr_debugfs_init(struct dentry *dir)
{
	debugfs_create_file("mr_dma", 0200, dir, NULL, &p2pt_rdma_mr_dma_fops);
	debugfs_create_file("mrs", 0444, dir, NULL, &p2pt_rdma_mrs_fops);
}
