// SPDX-License-Identifier: GPL-2.0
/*
 * p2p_dmabuf_test: CPU access to an imported dma-buf, the way a software
 * importer (rxe) reaches MMIO: through the physical ranges its revocable
 * attachment gives (dma_buf_attachment_get_phys()), each mapped with the
 * exporter's memory type, dropped in move_notify. And the misuse MMIO
 * exporters must refuse: a vmap taken without any attachment, which no
 * move_notify could ever take back.
 */
#include <linux/io.h>

#include "p2pt_internal.h"

/* One range of the dma-buf, mapped for the CPU. */
struct p2pt_cpu_range {
	struct iosys_map map;
	size_t len;
};

struct p2pt_cpu_map {
	enum dma_buf_mem_type type;
	size_t nr;
	struct p2pt_cpu_range r[] __counted_by(nr);
};

static void p2pt_cpu_unmap_range(struct p2pt_cpu_range *r)
{
	if (r->map.is_iomem)
		iounmap(r->map.vaddr_iomem);
	else
		memunmap(r->map.vaddr);
}

static int p2pt_cpu_map_range(struct p2pt_cpu_range *r,
			      const struct dma_buf_phys_vec *vec,
			      enum dma_buf_mem_type type)
{
	void __iomem *io = NULL;
	void *va;

	switch (type) {
	case DMA_BUF_MEM_UC:
		io = ioremap(vec->paddr, vec->len);
		break;
	case DMA_BUF_MEM_WC:
		io = ioremap_wc(vec->paddr, vec->len);
		break;
	case DMA_BUF_MEM_WB:
		va = memremap(vec->paddr, vec->len, MEMREMAP_WB);
		if (!va)
			return -ENOMEM;
		iosys_map_set_vaddr(&r->map, va);
		r->len = vec->len;
		return 0;
	default:
		return -EOPNOTSUPP;
	}
	if (!io)
		return -ENOMEM;
	iosys_map_set_vaddr_iomem(&r->map, io);
	r->len = vec->len;
	return 0;
}

/* P2PT_IOC_VMAP: map every range of the dma-buf; under its reservation lock. */
static int p2pt_cpu_map_locked(struct p2pt_imported *im)
{
	struct p2pt_cpu_map *cpu;
	struct dma_buf_phys phys;
	size_t i;
	int ret;

	dma_resv_assert_held(im->dmabuf->resv);
	if (im->cpu)
		return -EBUSY;

	ret = dma_buf_attachment_get_phys(im->attach, &phys);
	if (ret)
		return ret;

	cpu = kvzalloc(struct_size(cpu, r, phys.nr_ranges), GFP_KERNEL);
	if (!cpu) {
		ret = -ENOMEM;
		goto err_put;
	}
	cpu->nr = phys.nr_ranges;
	cpu->type = phys.mem_type;
	for (i = 0; i < cpu->nr; i++) {
		ret = p2pt_cpu_map_range(&cpu->r[i], &phys.ranges[i],
					 phys.mem_type);
		if (ret)
			goto err_unmap;
	}
	im->cpu = cpu;
	return 0;

err_unmap:
	while (i--)
		p2pt_cpu_unmap_range(&cpu->r[i]);
	kvfree(cpu);
err_put:
	dma_buf_attachment_put_phys(im->attach);
	return ret;
}

/**
 * p2pt_cpu_unmap_locked - drop the CPU mapping, give the ranges back
 * @im: the import, its dma-buf's reservation lock held
 */
void p2pt_cpu_unmap_locked(struct p2pt_imported *im)
{
	struct p2pt_cpu_map *cpu = im->cpu;
	size_t i;

	dma_resv_assert_held(im->dmabuf->resv);
	if (!cpu)
		return;
	for (i = 0; i < cpu->nr; i++)
		p2pt_cpu_unmap_range(&cpu->r[i]);
	kvfree(cpu);
	im->cpu = NULL;
	dma_buf_attachment_put_phys(im->attach);
}

/* The P2PT_STATUS_* flags of the CPU mapping. */
u32 p2pt_cpu_status_locked(struct p2pt_imported *im)
{
	if (!im->cpu)
		return 0;
	switch (im->cpu->type) {
	case DMA_BUF_MEM_UC:
		return P2PT_STATUS_VMAPPED | P2PT_STATUS_VMAP_IOMEM;
	case DMA_BUF_MEM_WC:
		return P2PT_STATUS_VMAPPED | P2PT_STATUS_VMAP_IOMEM |
		       P2PT_STATUS_VMAP_WC;
	default:
		return P2PT_STATUS_VMAPPED;
	}
}

/**
 * p2pt_cpu_copy_locked - copy between @data and the dma-buf at @offset
 * @im: the import, its dma-buf's reservation lock held
 * @offset: offset in the dma-buf
 * @data: kernel buffer of @len bytes
 * @len: bytes to copy
 * @to_peer: from @data into the dma-buf, else the other way
 *
 * Return: 0; -ENODEV if not mapped (or dropped by a revoke); -EINVAL if
 * the range is beyond the dma-buf.
 */
int p2pt_cpu_copy_locked(struct p2pt_imported *im, u64 offset, void *data,
			 u64 len, bool to_peer)
{
	struct p2pt_cpu_map *cpu = im->cpu;
	struct iosys_map map;
	size_t i, n;

	dma_resv_assert_held(im->dmabuf->resv);
	if (!cpu || im->giveback_pending)
		return -ENODEV;
	if (offset > im->dmabuf->size || len > im->dmabuf->size - offset)
		return -EINVAL;

	for (i = 0; i < cpu->nr && len; i++) {
		if (offset >= cpu->r[i].len) {
			offset -= cpu->r[i].len;
			continue;
		}
		map = cpu->r[i].map;
		iosys_map_incr(&map, offset);
		n = min_t(u64, len, cpu->r[i].len - offset);
		if (to_peer)
			iosys_map_memcpy_to(&map, 0, data, n);
		else
			iosys_map_memcpy_from(data, &map, 0, n);
		data += n;
		len -= n;
		offset = 0;
	}
	return 0;
}

/* P2PT_IOC_VMAP (@vmap true) and P2PT_IOC_VUNMAP. */
int p2pt_ioctl_vmap(struct p2pt_file *pf, void __user *uarg, bool vmap)
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
		if (vmap)
			ret = p2pt_cpu_map_locked(im);
		else if (im->cpu)
			p2pt_cpu_unmap_locked(im);
		else
			ret = -ENODEV;
		dma_resv_unlock(im->dmabuf->resv);
	}
	p2pt_import_put(im);
	return ret;
}

/* P2PT_IOC_CPU: copy through the CPU mapping, as a software importer would. */
int p2pt_ioctl_cpu(struct p2pt_file *pf, void __user *uarg)
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
		ret = p2pt_cpu_copy_locked(im, args.offset, data, args.len,
					   args.dir == P2PT_DMA_TO_PEER);
		dma_resv_unlock(im->dmabuf->resv);
	}
	p2pt_import_put(im);
out:
	return p2pt_xfer_buf_put(data, args.dir, args.user_ptr, args.len, ret);
}

/*
 * P2PT_IOC_VMAP_UNATTACHED: what videobuf2-vmalloc does with a DMABUF
 * import, dma_buf_vmap() without any attachment. Nothing could tell us to
 * give it back, so a revocable exporter must refuse it; if one does not,
 * the vmap is held until the file is closed, and its next revoke waits.
 */
int p2pt_ioctl_vmap_unattached(struct p2pt_file *pf, void __user *uarg)
{
	struct p2pt_fd args;
	struct dma_buf *dmabuf;
	int ret;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.pad)
		return -EINVAL;
	if (pf->unattached)
		return -EBUSY;
	dmabuf = dma_buf_get(args.fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	ret = dma_buf_vmap_unlocked(dmabuf, &pf->unattached_map);
	if (ret) {
		dma_buf_put(dmabuf);
		return ret;
	}
	pf->unattached = dmabuf;
	return 0;
}

/* The file is closing: give back a vmap the exporter should have refused. */
void p2pt_cpu_file_release(struct p2pt_file *pf)
{
	if (!pf->unattached)
		return;
	dma_buf_vunmap_unlocked(pf->unattached, &pf->unattached_map);
	dma_buf_put(pf->unattached);
	pf->unattached = NULL;
}
