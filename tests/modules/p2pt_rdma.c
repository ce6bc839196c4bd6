// SPDX-License-Identifier: GPL-2.0
/*
 * p2p_test_rdma: a test-only RDMA driver for the QEMU lab, never part of
 * the product. No QEMU device is an RDMA NIC, so this binds a plain PCI
 * device with a memory BAR (the lab's second ivshmem, by driver_override)
 * and registers an ib_device whose only business is mmap entries over
 * pages of that BAR: a "doorbell" page, "device memory" and a page it does
 * not export. With &ib_device_ops.pgoff_to_mmap_entry and .mmap_get_pfns
 * it gets UVERBS_OBJECT_DMABUF, so the lab runs the generic uverbs export
 * of a driver's BAR for real; the uAPI is in p2pt_rdma.h.
 *
 * Its only verbs are PDs and dma-buf MRs (p2pt_rdma_mr.c), reached by
 * edu's DMA engine when dma_engine= names an edu bound to
 * p2p_test_importer: the ib_device's DMA device, or with data_direct=Y
 * a second DMA device beside it, as mlx5's data-direct function; no QP.
 * Its raw-packet port has empty GID and P_Key tables, so the MAD and CM
 * layers leave it alone. Its test controls that act (remove_entry, and the
 * MRs' mr_dma and mrs) are debugfs files in P2PT_RDMA_DEBUGFS, not module
 * parameters, whose one lock would serialise them with every parameter.
 */
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/pci-p2pdma.h>
#include <linux/dma-buf-mapping.h>
#include <linux/uaccess.h>
#include <rdma/ib_verbs.h>

#include "p2pt_rdma.h"
#include "p2pt_rdma_mr.h"

enum p2pt_rdma_kind {
	P2PT_RDMA_DOORBELL,
	P2PT_RDMA_MEMORY,
	P2PT_RDMA_PRIVATE,
	P2PT_RDMA_NR_KINDS,
};

static const char * const p2pt_rdma_kind_names[P2PT_RDMA_NR_KINDS] = {
	[P2PT_RDMA_DOORBELL] = "doorbell",
	[P2PT_RDMA_MEMORY] = "memory",
	[P2PT_RDMA_PRIVATE] = "private",
};

struct p2pt_rdma_dev {
	struct ib_device ibdev;
	struct pci_dev *pdev;
	struct device *engine;		/* the MRs' DMA device, or NULL */
	bool data_direct;		/* @engine is not the ib_device's */
};

/* Read at probe: the PCI address of the edu whose engine the MRs use. */
static char *dma_engine;
module_param(dma_engine, charp, 0644);
MODULE_PARM_DESC(dma_engine,
		 "PCI address of an edu bound to p2p_test_importer: the DMA engine of the MRs, or none (read at probe)");

/*
 * Read at probe: the engine is a data-direct device (mlx5's name for a
 * second PCI function that does the DMA of some MRs) and not the
 * ib_device's DMA device, which stays the ivshmem itself.
 */
static bool data_direct;
module_param(data_direct, bool, 0644);
MODULE_PARM_DESC(data_direct,
		 "the engine is a data-direct device beside the ib_device's DMA device: MRs are pinned and mapped for it (read at probe)");

struct p2pt_rdma_entry {
	struct rdma_user_mmap_entry rdma_entry;
	resource_size_t bar_off;
	enum p2pt_rdma_kind kind;
	bool exportable;
};

struct p2pt_rdma_ucontext {
	struct ib_ucontext ibuc;
	struct list_head elm;		/* in p2pt_rdma_ucontexts */
	/* Under p2pt_rdma_lock; NULL once removed. */
	struct rdma_user_mmap_entry *entries[P2PT_RDMA_NR_KINDS];
};

/* The live ucontexts, for remove_entry. */
static DEFINE_MUTEX(p2pt_rdma_lock);
static LIST_HEAD(p2pt_rdma_ucontexts);

static struct p2pt_rdma_dev *to_p2pt_dev(struct ib_device *ibdev)
{
	return container_of(ibdev, struct p2pt_rdma_dev, ibdev);
}

/**
 * p2pt_rdma_data_direct - the data-direct DMA device of an ib_device
 * @ibdev: a p2p_test_rdma device
 *
 * Return: the engine when it is a data-direct device (data_direct=Y at
 * probe), else NULL.
 */
struct device *p2pt_rdma_data_direct(struct ib_device *ibdev)
{
	struct p2pt_rdma_dev *dev = to_p2pt_dev(ibdev);

	return dev->data_direct ? dev->engine : NULL;
}

static struct p2pt_rdma_entry *to_p2pt_entry(struct rdma_user_mmap_entry *e)
{
	return container_of(e, struct p2pt_rdma_entry, rdma_entry);
}

static struct p2pt_rdma_ucontext *to_p2pt_uc(struct ib_ucontext *ibuc)
{
	return container_of(ibuc, struct p2pt_rdma_ucontext, ibuc);
}

static int p2pt_rdma_add_entry(struct p2pt_rdma_ucontext *uc,
			       enum p2pt_rdma_kind kind,
			       resource_size_t bar_off, size_t len)
{
	struct p2pt_rdma_entry *e;
	int ret;

	e = kzalloc(sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	e->bar_off = bar_off;
	e->kind = kind;
	e->exportable = kind != P2PT_RDMA_PRIVATE;
	ret = rdma_user_mmap_entry_insert(&uc->ibuc, &e->rdma_entry, len);
	if (ret) {
		kfree(e);
		return ret;
	}
	uc->entries[kind] = &e->rdma_entry;
	return 0;
}

/* Under p2pt_rdma_lock once @uc is listed. */
static void p2pt_rdma_remove_entries(struct p2pt_rdma_ucontext *uc)
{
	int kind;

	for (kind = 0; kind < P2PT_RDMA_NR_KINDS; kind++) {
		rdma_user_mmap_entry_remove(uc->entries[kind]);
		uc->entries[kind] = NULL;
	}
}

static int p2pt_rdma_alloc_ucontext(struct ib_ucontext *ibuc,
				    struct ib_udata *udata)
{
	struct p2pt_rdma_ucontext *uc = to_p2pt_uc(ibuc);
	struct p2pt_rdma_ucontext_resp resp = {
		.memory_len = P2PT_RDMA_MEM_PAGES * PAGE_SIZE,
	};
	int ret;

	ret = p2pt_rdma_add_entry(uc, P2PT_RDMA_DOORBELL,
				  P2PT_RDMA_DOORBELL_OFF, PAGE_SIZE);
	if (!ret)
		ret = p2pt_rdma_add_entry(uc, P2PT_RDMA_MEMORY,
					  P2PT_RDMA_MEM_OFF,
					  P2PT_RDMA_MEM_PAGES * PAGE_SIZE);
	if (!ret)
		ret = p2pt_rdma_add_entry(uc, P2PT_RDMA_PRIVATE,
					  P2PT_RDMA_PRIVATE_OFF, PAGE_SIZE);
	if (ret)
		goto err;

	resp.doorbell_offset =
		rdma_user_mmap_get_offset(uc->entries[P2PT_RDMA_DOORBELL]);
	resp.memory_offset =
		rdma_user_mmap_get_offset(uc->entries[P2PT_RDMA_MEMORY]);
	resp.private_offset =
		rdma_user_mmap_get_offset(uc->entries[P2PT_RDMA_PRIVATE]);
	ret = ib_copy_to_udata(udata, &resp, min(udata->outlen, sizeof(resp)));
	if (ret)
		goto err;

	mutex_lock(&p2pt_rdma_lock);
	list_add_tail(&uc->elm, &p2pt_rdma_ucontexts);
	mutex_unlock(&p2pt_rdma_lock);
	return 0;

err:
	p2pt_rdma_remove_entries(uc);
	return ret;
}

static void p2pt_rdma_dealloc_ucontext(struct ib_ucontext *ibuc)
{
	struct p2pt_rdma_ucontext *uc = to_p2pt_uc(ibuc);

	mutex_lock(&p2pt_rdma_lock);
	list_del(&uc->elm);
	p2pt_rdma_remove_entries(uc);
	mutex_unlock(&p2pt_rdma_lock);
}

/* Nothing to stop: the core zaps the mmaps and revokes the dma-bufs. */
static void p2pt_rdma_disassociate_ucontext(struct ib_ucontext *ibuc)
{
}

static int p2pt_rdma_mmap(struct ib_ucontext *ibuc, struct vm_area_struct *vma)
{
	struct p2pt_rdma_dev *dev = to_p2pt_dev(ibuc->device);
	struct rdma_user_mmap_entry *entry;
	phys_addr_t paddr;
	int ret;

	entry = rdma_user_mmap_entry_get(ibuc, vma);
	if (!entry)
		return -EINVAL;
	paddr = pci_resource_start(dev->pdev, P2PT_RDMA_BAR) +
		to_p2pt_entry(entry)->bar_off;
	/* Device memory write-combining, registers uncached, as mlx5 does. */
	ret = rdma_user_mmap_io(ibuc, vma, PHYS_PFN(paddr),
				entry->npages * PAGE_SIZE,
				to_p2pt_entry(entry)->kind == P2PT_RDMA_MEMORY ?
				pgprot_writecombine(vma->vm_page_prot) :
				pgprot_noncached(vma->vm_page_prot), entry);
	rdma_user_mmap_entry_put(entry);
	return ret;
}

static void p2pt_rdma_mmap_free(struct rdma_user_mmap_entry *entry)
{
	kfree(to_p2pt_entry(entry));
}

static struct rdma_user_mmap_entry *
p2pt_rdma_pgoff_to_mmap_entry(struct ib_ucontext *ibuc, off_t pg_off)
{
	return rdma_user_mmap_entry_get_pgoff(ibuc, pg_off >> PAGE_SHIFT);
}

/* A slow driver: lets a test remove an entry in the middle of an export. */
static unsigned int get_pfns_delay_ms;
module_param(get_pfns_delay_ms, uint, 0600);
MODULE_PARM_DESC(get_pfns_delay_ms,
		 "sleep this long in mmap_get_pfns before answering (ms)");

static int p2pt_rdma_mmap_get_pfns(struct rdma_user_mmap_entry *entry,
				   struct dma_buf_phys_vec *phys_vec,
				   struct p2pdma_provider **provider)
{
	struct p2pt_rdma_dev *dev = to_p2pt_dev(entry->ucontext->device);
	struct p2pt_rdma_entry *e = to_p2pt_entry(entry);
	unsigned int delay_ms = READ_ONCE(get_pfns_delay_ms);
	struct p2pdma_provider *p;

	if (delay_ms)
		msleep(delay_ms);
	if (!e->exportable)
		return -EOPNOTSUPP;
	p = pcim_p2pdma_provider(dev->pdev, P2PT_RDMA_BAR);
	if (!p)
		return -EOPNOTSUPP;

	phys_vec->paddr = pci_resource_start(dev->pdev, P2PT_RDMA_BAR) +
			  e->bar_off;
	phys_vec->len = entry->npages * PAGE_SIZE;
	*provider = p;
	return 0;
}

/* As p2pt_rdma_mmap() maps the entry. */
static enum dma_buf_mem_type
p2pt_rdma_mmap_get_mem_type(struct rdma_user_mmap_entry *entry)
{
	return to_p2pt_entry(entry)->kind == P2PT_RDMA_MEMORY ?
	       DMA_BUF_MEM_WC : DMA_BUF_MEM_UC;
}

static int p2pt_rdma_query_device(struct ib_device *ibdev,
				  struct ib_device_attr *attr,
				  struct ib_udata *udata)
{
	struct p2pt_rdma_dev *dev = to_p2pt_dev(ibdev);

	if (udata->inlen || udata->outlen)
		return -EINVAL;
	memset(attr, 0, sizeof(*attr));
	attr->vendor_id = dev->pdev->vendor;
	attr->vendor_part_id = dev->pdev->device;
	return 0;
}

static int p2pt_rdma_query_port(struct ib_device *ibdev, u32 port,
				struct ib_port_attr *attr)
{
	attr->state = IB_PORT_ACTIVE;
	attr->phys_state = IB_PORT_PHYS_STATE_LINK_UP;
	attr->max_mtu = IB_MTU_4096;
	attr->active_mtu = IB_MTU_4096;
	return 0;
}

static int p2pt_rdma_get_port_immutable(struct ib_device *ibdev, u32 port,
					struct ib_port_immutable *immutable)
{
	immutable->core_cap_flags = RDMA_CORE_PORT_RAW_PACKET;
	return 0;
}

static enum rdma_link_layer p2pt_rdma_get_link_layer(struct ib_device *ibdev,
						     u32 port)
{
	return IB_LINK_LAYER_ETHERNET;
}

static const struct ib_device_ops p2pt_rdma_ops = {
	.owner = THIS_MODULE,
	.driver_id = RDMA_DRIVER_UNKNOWN,
	.uverbs_abi_ver = 1,

	.alloc_pd = p2pt_rdma_alloc_pd,
	.alloc_ucontext = p2pt_rdma_alloc_ucontext,
	.dealloc_pd = p2pt_rdma_dealloc_pd,
	.dealloc_ucontext = p2pt_rdma_dealloc_ucontext,
	.dereg_mr = p2pt_rdma_dereg_mr,
	.disassociate_ucontext = p2pt_rdma_disassociate_ucontext,
	.get_link_layer = p2pt_rdma_get_link_layer,
	.get_port_immutable = p2pt_rdma_get_port_immutable,
	.mmap = p2pt_rdma_mmap,
	.mmap_free = p2pt_rdma_mmap_free,
	.mmap_get_mem_type = p2pt_rdma_mmap_get_mem_type,
	.mmap_get_pfns = p2pt_rdma_mmap_get_pfns,
	.pgoff_to_mmap_entry = p2pt_rdma_pgoff_to_mmap_entry,
	.query_device = p2pt_rdma_query_device,
	.query_port = p2pt_rdma_query_port,
	.reg_user_mr_dmabuf = p2pt_rdma_reg_user_mr_dmabuf,

	INIT_RDMA_OBJ_SIZE(ib_pd, p2pt_rdma_pd, ibpd),
	INIT_RDMA_OBJ_SIZE(ib_ucontext, p2pt_rdma_ucontext, ibuc),
};

static int p2pt_rdma_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct p2pt_rdma_dev *dev;
	int ret;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	if (!(pci_resource_flags(pdev, P2PT_RDMA_BAR) & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, P2PT_RDMA_BAR) <
	    P2PT_RDMA_MEM_OFF + P2PT_RDMA_MEM_PAGES * PAGE_SIZE)
		return -ENODEV;
	ret = pcim_p2pdma_init(pdev);
	if (ret)
		return ret;

	dev = ib_alloc_device(p2pt_rdma_dev, ibdev);
	if (!dev)
		return -ENOMEM;
	dev->pdev = pdev;
	kernel_param_lock(THIS_MODULE);
	if (dma_engine && *dma_engine && !sysfs_streq(dma_engine, "none"))
		dev->engine = bus_find_device_by_name(&pci_bus_type, NULL,
						      dma_engine);
	dev->data_direct = dev->engine && data_direct;
	kernel_param_unlock(THIS_MODULE);
	dev->ibdev.node_type = RDMA_NODE_UNSPECIFIED;
	dev->ibdev.phys_port_cnt = 1;
	dev->ibdev.num_comp_vectors = 1;
	dev->ibdev.dev.parent = &pdev->dev;
	ib_set_device_ops(&dev->ibdev, &p2pt_rdma_ops);

	/* The MRs are mapped for the engine, which does their DMA. */
	ret = ib_register_device(&dev->ibdev, "p2pt_rdma%d",
				 dev->engine && !dev->data_direct ?
				 dev->engine : &pdev->dev);
	if (ret) {
		put_device(dev->engine);
		ib_dealloc_device(&dev->ibdev);
		return ret;
	}
	pci_set_drvdata(pdev, dev);
	return 0;
}

/*
 * Unregistering disassociates every ucontext: the core revokes their
 * dma-bufs, waiting for the importers, before the BAR's provider goes.
 */
static void p2pt_rdma_remove(struct pci_dev *pdev)
{
	struct p2pt_rdma_dev *dev = pci_get_drvdata(pdev);

	ib_unregister_device(&dev->ibdev);
	put_device(dev->engine);
	ib_dealloc_device(&dev->ibdev);
}

static struct pci_driver p2pt_rdma_driver = {
	.name = P2PT_RDMA_DRIVER,
	.probe = p2pt_rdma_probe,
	.remove = p2pt_rdma_remove,
};

/* remove_entry: write <kind> to remove that entry from every live ucontext. */
static ssize_t p2pt_rdma_remove_entry_write(struct file *file,
					    const char __user *ubuf,
					    size_t count, loff_t *ppos)
{
	struct p2pt_rdma_ucontext *uc;
	char val[16];
	int kind;

	if (count >= sizeof(val))
		return -EINVAL;
	if (copy_from_user(val, ubuf, count))
		return -EFAULT;
	val[count] = '\0';
	kind = sysfs_match_string(p2pt_rdma_kind_names, val);
	if (kind < 0)
		return kind;

	mutex_lock(&p2pt_rdma_lock);
	list_for_each_entry(uc, &p2pt_rdma_ucontexts, elm) {
		rdma_user_mmap_entry_remove(uc->entries[kind]);
		uc->entries[kind] = NULL;
	}
	mutex_unlock(&p2pt_rdma_lock);
	return count;
}

static const struct file_operations p2pt_rdma_remove_entry_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = p2pt_rdma_remove_entry_write,
	.llseek = noop_llseek,
};

static struct dentry *p2pt_rdma_debugfs;

static int __init p2pt_rdma_init(void)
{
	int ret;

	p2pt_rdma_debugfs = debugfs_create_dir(P2PT_RDMA_DRIVER, NULL);
	debugfs_create_file("remove_entry", 0200, p2pt_rdma_debugfs, NULL,
			    &p2pt_rdma_remove_entry_fops);
	p2pt_rdma_mr_debugfs_init(p2pt_rdma_debugfs);
	ret = pci_register_driver(&p2pt_rdma_driver);
	if (ret)
		debugfs_remove_recursive(p2pt_rdma_debugfs);
	return ret;
}
module_init(p2pt_rdma_init);

/* The controls first: removing them waits for the writes in flight. */
static void __exit p2pt_rdma_exit(void)
{
	debugfs_remove_recursive(p2pt_rdma_debugfs);
	pci_unregister_driver(&p2pt_rdma_driver);
}
module_exit(p2pt_rdma_exit);

MODULE_DESCRIPTION("Test RDMA driver exporting pages of a BAR (QEMU lab)");
MODULE_LICENSE("GPL");
