// SPDX-License-Identifier: GPL-2.0
/* Slow partners: mappings given back late, fences signalled late. */
#include "p2pt_internal.h"

/* --- slow partners ------------------------------------------------------ */

u64 p2pt_fence_context;
static atomic64_t p2pt_fence_seqno = ATOMIC64_INIT(0);

struct p2pt_fence {
	struct dma_fence base;
	spinlock_t lock;		/* protects @base */
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
int p2pt_fence_add_locked(struct p2pt_imported *im)
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

void p2pt_fence_signal(struct work_struct *work)
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
 * the reservation lock and imp->dma_lock.
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
	if (im->dmabuf->size >= P2PT_LATE_CPU_OFF + P2PT_LATE_LEN)
		p2pt_cpu_copy_locked(im, P2PT_LATE_CPU_OFF, data,
				     P2PT_LATE_LEN, true);
	kfree(data);
}

void p2pt_giveback(struct work_struct *work)
{
	struct p2pt_imported *im = container_of(to_delayed_work(work),
						struct p2pt_imported, giveback);
	struct dma_resv *resv = im->dmabuf->resv;

	dma_resv_lock(resv, NULL);
	if (im->giveback_pending) {
		im->giveback_pending = false;
		if (im->flags & P2PT_IMPORT_F_LATE_WRITE) {
			mutex_lock(&im->imp->dma_lock);
			p2pt_late_write_locked(im);
			mutex_unlock(&im->imp->dma_lock);
		}
		p2pt_import_drop_locked(im);
	}
	dma_resv_unlock(resv);
}

/*
 * Before the import is detached: no more deferred work (@dying), what is
 * pending done now, the fence signalled. No reservation lock held.
 */
void p2pt_import_quiesce(struct p2pt_imported *im)
{
	dma_resv_lock(im->dmabuf->resv, NULL);
	im->dying = true;
	dma_resv_unlock(im->dmabuf->resv);
	flush_delayed_work(&im->giveback);
	cancel_delayed_work_sync(&im->signal);
	p2pt_fence_signal(&im->signal.work);
}
