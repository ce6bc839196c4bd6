// SPDX-License-Identifier: GPL-2.0
/*
 * An emulated device's access to an IOAS, the path of VFIO mdev drivers
 * (vfio_pin_pages(), vfio_dma_rw() on iommufd): iommufd_access pins the
 * struct pages behind IOVAs or copies through them. The tests check that
 * it works for a memfd and is refused for a dma-buf of device memory,
 * which has no struct page.
 */
#include <linux/highmem.h>
#include <linux/iommufd.h>
#include "p2pt_internal.h"

/* Pins are given back before the ioctl returns: nothing is held here. */
static void p2pt_access_unmap(void *data, unsigned long iova,
			      unsigned long length)
{
}

static const struct iommufd_access_ops p2pt_access_ops = {
	.needs_pin_pages = 1,
	.unmap = p2pt_access_unmap,
};

static int p2pt_access_pin(struct iommufd_access *access, u64 iova, void *buf,
			   u64 len)
{
	struct page *page;
	void *va;
	int ret;

	ret = iommufd_access_pin_pages(access, iova, PAGE_SIZE, &page,
				       IOMMUFD_ACCESS_RW_READ);
	if (ret)
		return ret;
	va = kmap_local_page(page);
	memcpy(buf, va, len);
	kunmap_local(va);
	iommufd_access_unpin_pages(access, iova, PAGE_SIZE);
	return 0;
}

int p2pt_ioctl_iommufd_access(void __user *uarg)
{
	struct p2pt_iommufd_access args;
	struct iommufd_access *access;
	struct iommufd_ctx *ictx;
	void *buf;
	u32 id;
	int ret;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.pad || !args.len || args.len > PAGE_SIZE ||
	    args.op > P2PT_ACCESS_READ ||
	    (args.op == P2PT_ACCESS_PIN && !PAGE_ALIGNED(args.iova)))
		return -EINVAL;

	buf = kzalloc(args.len, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	ictx = iommufd_ctx_from_fd(args.iommufd);
	if (IS_ERR(ictx)) {
		ret = PTR_ERR(ictx);
		goto out_free;
	}
	access = iommufd_access_create(ictx, &p2pt_access_ops, NULL, &id);
	if (IS_ERR(access)) {
		ret = PTR_ERR(access);
		goto out_put;
	}
	ret = iommufd_access_attach(access, args.ioas_id);
	if (ret)
		goto out_destroy;

	if (args.op == P2PT_ACCESS_PIN)
		ret = p2pt_access_pin(access, args.iova, buf, args.len);
	else
		ret = iommufd_access_rw(access, args.iova, buf, args.len,
					IOMMUFD_ACCESS_RW_READ);
	if (!ret && copy_to_user(u64_to_user_ptr(args.user_ptr), buf, args.len))
		ret = -EFAULT;

	iommufd_access_detach(access);
out_destroy:
	iommufd_access_destroy(access);
out_put:
	iommufd_ctx_put(ictx);
out_free:
	kfree(buf);
	return ret;
}
