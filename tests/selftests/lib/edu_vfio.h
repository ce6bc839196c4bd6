/* SPDX-License-Identifier: GPL-2.0 */
/*
 * QEMU's edu device driven from user space through VFIO, as a VMM's guest
 * would drive an assigned device: its DMA engine, programmed through the
 * VFIO mmap of BAR 0, moves bytes between its 4 KiB internal buffer and an
 * IOVA of the IOAS the device is attached to. Each function returns 0 or
 * -errno.
 */
#ifndef P2P_EDU_VFIO_H
#define P2P_EDU_VFIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <linux/pci_regs.h>

#include "lab.h"

#define EDU_REG_ID		0x00
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_CNT		0x90
#define EDU_REG_DMA_CMD		0x98
#define EDU_DMA_RUN		0x1
#define EDU_DMA_TO_PCI		0x2	/* edu's buffer -> IOVA */
#define EDU_BUF_ADDR		0x40000	/* edu's buffer, in its DMA space */
/*
 * QEMU 7.2 stops the whole VM on a transfer that ends exactly at the end
 * of edu's buffer (docs/lab.md): transfers stay in its first half.
 */
#define EDU_DMA_MAX		2048
#define EDU_DMA_TIMEOUT_S	10

struct edu {
	struct lab_vfio v;
	volatile uint8_t *regs;
	size_t regs_len;
};

static inline void edu_close(struct edu *e)
{
	if (e->regs)
		munmap((void *)e->regs, e->regs_len);
	e->regs = NULL;
	lab_vfio_close(&e->v);
}

/*
 * Open edu @bdf (bound to vfio-pci) through its cdev, bound to @iommufd and
 * attached to @pt_id, with memory decoding and bus mastering on and BAR 0
 * mapped.
 */
static inline int edu_open(struct edu *e, const char *bdf, int iommufd, uint32_t pt_id)
{
	struct vfio_region_info info;
	uint16_t cmd;
	void *regs;
	int err;

	memset(e, 0, sizeof(*e));
	err = lab_vfio_open_cdev_in(&e->v, bdf, iommufd, pt_id);
	if (err)
		return err;
	err = lab_vfio_config_read16(&e->v, PCI_COMMAND, &cmd);
	if (!err)
		err = lab_vfio_config_write16(&e->v, PCI_COMMAND,
					      cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	if (!err)
		err = lab_vfio_region(&e->v, VFIO_PCI_BAR0_REGION_INDEX, &info);
	if (err)
		goto fail;
	regs = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, e->v.device,
		    info.offset);
	if (regs == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	e->regs = regs;
	e->regs_len = info.size;
	if ((*(volatile uint32_t *)(e->regs + EDU_REG_ID) & 0xffff) != 0xed) {
		err = -ENODEV;
		goto fail;
	}
	return 0;
fail:
	edu_close(e);
	return err;
}

static inline uint64_t edu_readq(struct edu *e, unsigned int reg)
{
	return *(volatile uint64_t *)(e->regs + reg);
}

static inline void edu_writeq(struct edu *e, unsigned int reg, uint64_t val)
{
	*(volatile uint64_t *)(e->regs + reg) = val;
}

/*
 * One transfer of @len bytes between offset @buf_off of edu's buffer and
 * @iova, towards the IOVA if @to_iova; returns when the engine is done.
 * The engine finishes whether or not the IOMMU let the transfer through: a
 * fault is seen in the kernel log (lab_kmsg_*), not here.
 */
static inline int edu_dma(struct edu *e, uint64_t iova, uint32_t buf_off, uint32_t len,
			  bool to_iova)
{
	struct timespec t0, t;

	if (!len || len > EDU_DMA_MAX || buf_off + len > EDU_DMA_MAX)
		return -EINVAL;
	if (edu_readq(e, EDU_REG_DMA_CMD) & EDU_DMA_RUN)
		return -EBUSY;
	edu_writeq(e, EDU_REG_DMA_SRC, to_iova ? EDU_BUF_ADDR + buf_off : iova);
	edu_writeq(e, EDU_REG_DMA_DST, to_iova ? iova : EDU_BUF_ADDR + buf_off);
	edu_writeq(e, EDU_REG_DMA_CNT, len);
	edu_writeq(e, EDU_REG_DMA_CMD, EDU_DMA_RUN | (to_iova ? EDU_DMA_TO_PCI : 0));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (edu_readq(e, EDU_REG_DMA_CMD) & EDU_DMA_RUN) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > EDU_DMA_TIMEOUT_S)
			return -ETIMEDOUT;
		usleep(1000);
	}
	return 0;
}

/* Copy @len bytes from @src_iova to @dst_iova through edu's buffer. */
static inline int edu_copy(struct edu *e, uint64_t src_iova, uint64_t dst_iova, uint32_t len)
{
	int err = edu_dma(e, src_iova, 0, len, false);

	return err ? err : edu_dma(e, dst_iova, 0, len, true);
}

#endif /* P2P_EDU_VFIO_H */
