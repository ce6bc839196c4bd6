// SPDX-License-Identifier: GPL-2.0
/*
 * Test exporter and test importer of MMIO dma-bufs, for the lab kselftests
 * (tests/selftests/p2pdma, tests/selftests/vfio). The uAPI is in
 * p2p_dmabuf_test.h.
 *
 * p2p_test_exporter (p2pt_exporter.c) wraps page-aligned ranges of a PCI
 * BAR in a dma-buf and maps them with dma_buf_phys_vec_to_sgt(). It follows the revoke
 * contract of the exporters: mark revoked under the reservation lock,
 * dma_buf_move_notify(), wait for fences, unlock, then wait until every
 * importer has unmapped. Unbinding the exporter revokes its dma-bufs for
 * good; the dma-buf files stay valid.
 *
 * p2p_test_importer (p2pt_importer.c) drives QEMU's edu device: it
 * imports a dma-buf as a dynamic, pinned revocable, pinned non-revocable
 * or unpinned non-revocable importer, maps it, reports the DMA entries and
 * moves bytes between the user and a mapped DMA address through edu's DMA
 * engine (user buffer <-> coherent bounce buffer <-> edu's internal buffer
 * <-> peer). It also maps the whole dma-buf for the CPU from the physical
 * ranges its attachment gives (p2pt_cpu.c), as a software importer (rxe)
 * does, and copies through that; move_notify drops that mapping too. And
 * it can vmap a dma-buf without attaching, which MMIO exporters must
 * refuse.
 *
 * Slow partners (p2pt_slow.c): an import can give its mappings back later
 * than move_notify (from a workqueue, after a last write to the buffer),
 * or hold an unsignalled fence until some time after move_notify, so that
 * tests see whether an exporter's revoke really waits for its importers.
 *
 * Neither driver has an ID table: tests bind them with driver_override.
 * This file has the misc device /dev/p2p_dmabuf_test, whose ioctls drive
 * both, and the module's setup.
 */
#include "p2pt_internal.h"

/* For the tests' expectations of pin counts: a fact of the kernel build. */
static bool core_pins_maps = !IS_ENABLED(CONFIG_DMABUF_MOVE_NOTIFY);
module_param(core_pins_maps, bool, 0444);
MODULE_PARM_DESC(core_pins_maps,
		 "the dma-buf core pins dynamic exporters around each mapping");

DEFINE_MUTEX(p2pt_lock);		/* the two device lists */
LIST_HEAD(p2pt_exporters);
LIST_HEAD(p2pt_importers);

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
	p2pt_cpu_file_release(pf);
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
	case P2PT_IOC_P2PMEM:
		return p2pt_ioctl_p2pmem(uarg);
	case P2PT_IOC_IOMMUFD_ACCESS:
		return p2pt_ioctl_iommufd_access(uarg);
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
	case P2PT_IOC_VMAP_UNATTACHED:
		ret = p2pt_ioctl_vmap_unattached(pf, uarg);
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
MODULE_IMPORT_NS(IOMMUFD);
