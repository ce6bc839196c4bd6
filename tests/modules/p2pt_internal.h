/* SPDX-License-Identifier: GPL-2.0 */
/*
 * p2p_dmabuf_test internals: the state shared by its exporter
 * (p2pt_exporter.c), importer (p2pt_importer.c), its CPU access
 * (p2pt_cpu.c), slow-partner modes (p2pt_slow.c) and misc device
 * (p2pt_main.c).
 */
#ifndef P2PT_INTERNAL_H
#define P2PT_INTERNAL_H

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
#include "p2pt_engine.h"

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

extern struct mutex p2pt_lock;		/* the two device lists */
extern struct list_head p2pt_exporters;
extern struct list_head p2pt_importers;

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
	struct p2pt_cpu_map *cpu;	/* P2PT_IOC_VMAP, if mapped */
	struct dma_fence *fence;	/* F_FENCE: the last one added */
	u32 move_notify_count;
};

/* An open /dev/p2p_dmabuf_test. */
struct p2pt_file {
	struct mutex lock;		/* serializes the file's ioctls */
	struct xarray imports;		/* handle -> struct p2pt_imported */
	/* P2PT_IOC_VMAP_UNATTACHED, if an exporter let it happen */
	struct dma_buf *unattached;
	struct iosys_map unattached_map;
};

/* p2pt_exporter.c */
extern struct pci_driver p2pt_exporter_driver;
int p2pt_ioctl_export(void __user *uarg);
int p2pt_ioctl_revoke(void __user *uarg, bool revoke);
int p2pt_ioctl_p2pmem(void __user *uarg);
struct p2pt_buf *p2pt_buf_of(struct dma_buf *dmabuf);

/* p2pt_iommufd.c: an emulated device's access to an IOAS */
int p2pt_ioctl_iommufd_access(void __user *uarg);

/* p2pt_importer.c */
extern struct pci_driver p2pt_importer_driver;
int p2pt_ioctl_import(struct p2pt_file *pf, void __user *uarg);
int p2pt_ioctl_map(struct p2pt_file *pf, void __user *uarg);
int p2pt_ioctl_unmap(struct p2pt_file *pf, void __user *uarg);
int p2pt_ioctl_status(struct p2pt_file *pf, void __user *uarg);
int p2pt_ioctl_release(struct p2pt_file *pf, void __user *uarg);
int p2pt_ioctl_dma(struct p2pt_file *pf, void __user *uarg);
int p2pt_ioctl_dma_mask(void __user *uarg);
void p2pt_import_free(struct p2pt_imported *im);
int p2pt_dma_locked(struct p2pt_imported *im, const struct p2pt_dma *args,
		    void *data);
void p2pt_import_drop_locked(struct p2pt_imported *im);
struct p2pt_imported *p2pt_import_get(struct p2pt_file *pf, u32 handle);
void p2pt_import_put(struct p2pt_imported *im);
void *p2pt_xfer_buf_get(u32 dir, u64 user_ptr, u64 len);
int p2pt_xfer_buf_put(void *data, u32 dir, u64 user_ptr, u64 len, int ret);

/* p2pt_cpu.c */
struct p2pt_cpu_map;
int p2pt_ioctl_vmap(struct p2pt_file *pf, void __user *uarg, bool vmap);
int p2pt_ioctl_cpu(struct p2pt_file *pf, void __user *uarg);
int p2pt_ioctl_vmap_unattached(struct p2pt_file *pf, void __user *uarg);
void p2pt_cpu_unmap_locked(struct p2pt_imported *im);
u32 p2pt_cpu_status_locked(struct p2pt_imported *im);
int p2pt_cpu_copy_locked(struct p2pt_imported *im, u64 offset, void *data,
			 u64 len, bool to_peer);
void p2pt_cpu_file_release(struct p2pt_file *pf);

/* p2pt_slow.c */
extern u64 p2pt_fence_context;
int p2pt_fence_add_locked(struct p2pt_imported *im);
void p2pt_fence_signal(struct work_struct *work);
void p2pt_giveback(struct work_struct *work);
void p2pt_import_quiesce(struct p2pt_imported *im);

#endif /* P2PT_INTERNAL_H */
