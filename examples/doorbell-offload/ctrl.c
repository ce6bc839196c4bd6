// SPDX-License-Identifier: GPL-2.0
/*
 * A small user-space NVMe driver over VFIO (see ctrl.h).
 *
 * Bring-up, as NVMe base specification 2.0 section 3.5 orders it: disable
 * (CC.EN = 0, wait for CSTS.RDY = 0), admin queue attributes and bases,
 * enable, wait for CSTS.RDY = 1; then Identify, Set Features (number of
 * queues), Create I/O Completion Queue (host memory), Create I/O Submission
 * Queue (CMB), and one Asynchronous Event Request kept outstanding so that
 * the controller can report doorbell misuse.
 *
 * The CMB is addressed by the controller through its controller memory
 * space (CMBMSC.CMSE): the host picks the controller base address (CBA);
 * this driver picks the BAR's bus address, so that an address in a command
 * means the same thing to the controller and on the bus. Queue and PRP
 * addresses inside [CBA, CBA + CMBSZ) never leave the controller.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include "ctrl.h"

/* Host memory for the controller: admin SQ, admin CQ, I/O CQ, a buffer. */
#define MEM_ASQ		(0 * DBO_PAGE)
#define MEM_ACQ		(1 * DBO_PAGE)
#define MEM_IOCQ	(2 * DBO_PAGE)
#define MEM_BUF		(3 * DBO_PAGE)
#define MEM_LEN		(4 * DBO_PAGE)
#define TYPE1_IOVA	0x10000000ull	/* where a type1 container maps it */

/* --- registers --------------------------------------------------------- */

static uint32_t rd32(struct dbo_ctrl *c, uint32_t off)
{
	return *(volatile uint32_t *)(c->regs + off);
}

static void wr32(struct dbo_ctrl *c, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(c->regs + off) = v;
}

static uint64_t rd64(struct dbo_ctrl *c, uint32_t off)
{
	return rd32(c, off) | (uint64_t)rd32(c, off + 4) << 32;
}

/* High half first: a controller may act on the write of the low half. */
static void wr64(struct dbo_ctrl *c, uint32_t off, uint64_t v)
{
	wr32(c, off + 4, v >> 32);
	wr32(c, off, (uint32_t)v);
}

uint32_t dbo_csts(struct dbo_ctrl *c)
{
	return c->memory_off ? 0xffffffff : rd32(c, NVME_REG_CSTS);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

/*
 * Wait for CSTS.RDY to become @rdy: CAP.TO bounds it on hardware; an
 * emulated controller on a busy host gets 10 s more. 0, -EIO on a fatal
 * status while enabling (disabling is how a fatal controller recovers),
 * -ETIMEDOUT.
 */
static int wait_ready(struct dbo_ctrl *c, bool rdy)
{
	uint64_t end = now_ms() + NVME_CAP_TO(c->cap) * 500ull + 10000;
	uint32_t csts;

	do {
		csts = dbo_csts(c);
		if (csts == 0xffffffff || (rdy && (csts & NVME_CSTS_CFS)))
			return -EIO;
		if (!!(csts & NVME_CSTS_RDY) == rdy)
			return 0;
		usleep(1000);
	} while (now_ms() < end);
	return -ETIMEDOUT;
}

/* --- VFIO ---------------------------------------------------------------- */

static int region(struct dbo_ctrl *c, uint32_t index, struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	return ioctl(c->device, VFIO_DEVICE_GET_REGION_INFO, ri) ? -errno : 0;
}

static int config_rw(struct dbo_ctrl *c, bool wr, uint32_t off, void *buf, size_t len)
{
	struct vfio_region_info ri;
	ssize_t n;
	int err;

	err = region(c, VFIO_PCI_CONFIG_REGION_INDEX, &ri);
	if (err)
		return err;
	n = wr ? pwrite(c->device, buf, len, ri.offset + off) :
		 pread(c->device, buf, len, ri.offset + off);
	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

/* The bus address of memory BAR @bar, from its (virtualised) register. */
static int bar_bus_addr(struct dbo_ctrl *c, uint32_t bar, uint64_t *addr)
{
	uint32_t lo, hi = 0;
	int err;

	err = config_rw(c, false, PCI_BASE_ADDRESS_0 + 4 * bar, &lo, 4);
	if (err)
		return err;
	if (lo & PCI_BASE_ADDRESS_SPACE_IO)
		return -EINVAL;
	if ((lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64) {
		err = config_rw(c, false, PCI_BASE_ADDRESS_0 + 4 * (bar + 1), &hi, 4);
		if (err)
			return err;
	}
	*addr = ((uint64_t)hi << 32) | (lo & PCI_BASE_ADDRESS_MEM_MASK);
	return 0;
}

static void *map_bar(struct dbo_ctrl *c, uint32_t bar, size_t *len)
{
	struct vfio_region_info ri;
	void *p;

	if (region(c, VFIO_PCI_BAR0_REGION_INDEX + bar, &ri))
		return NULL;
	if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || !ri.size) {
		errno = EINVAL;
		return NULL;
	}
	p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, c->device, ri.offset);
	if (p == MAP_FAILED)
		return NULL;
	*len = ri.size;
	return p;
}

/* The device's cdev (/dev/vfio/devices/vfioN) bound to a new iommufd. */
static int open_cdev(struct dbo_ctrl *c)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	char path[PATH_MAX], name[64] = "";
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", c->bdf);
	dir = opendir(path);
	if (!dir)
		return -ENOENT;	/* no cdev (no-IOMMU, or an older kernel) */
	while ((d = readdir(dir)))
		if (!strncmp(d->d_name, "vfio", 4))
			snprintf(name, sizeof(name), "%.60s", d->d_name);
	closedir(dir);
	if (!name[0])
		return -ENOENT;
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	c->device = open(path, O_RDWR | O_CLOEXEC);
	if (c->device < 0)
		return errno == ENOENT ? -ENODEV : -errno;
	c->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (c->iommufd < 0)
		return errno == ENOENT ? -ENODEV : -errno;
	if (ioctl(c->iommufd, IOMMU_IOAS_ALLOC, &alloc))
		return -errno;
	c->ioas = alloc.out_ioas_id;
	bind.iommufd = c->iommufd;
	if (ioctl(c->device, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return -errno;
	attach.pt_id = c->ioas;
	if (ioctl(c->device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		return -errno;
	return 0;
}

/* The legacy way: the device's group in a type1 container. */
static int open_group(struct dbo_ctrl *c)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", c->bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = '\0';
	snprintf(path, sizeof(path), "/dev/vfio/%s", strrchr(link, '/') + 1);
	c->group = open(path, O_RDWR | O_CLOEXEC);
	if (c->group < 0)
		return -errno;	/* no-IOMMU groups are noiommu-N: not for us */
	c->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (c->container < 0)
		return -errno;
	if (ioctl(c->group, VFIO_GROUP_GET_STATUS, &st))
		return -errno;
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		return -EBUSY;
	if (ioctl(c->group, VFIO_GROUP_SET_CONTAINER, &c->container) ||
	    ioctl(c->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return -errno;
	c->device = ioctl(c->group, VFIO_GROUP_GET_DEVICE_FD, c->bdf);
	return c->device < 0 ? -errno : 0;
}

/* Map c->mem for the controller's DMA; sets c->mem_iova. */
static int dma_map(struct dbo_ctrl *c)
{
	if (c->iommufd >= 0) {
		struct iommu_ioas_map map = {
			.size = sizeof(map), .ioas_id = c->ioas,
			.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
			.user_va = (uintptr_t)c->mem, .length = c->mem_len,
		};

		if (ioctl(c->iommufd, IOMMU_IOAS_MAP, &map))
			return -errno;
		c->mem_iova = map.iova;
	} else {
		struct vfio_iommu_type1_dma_map map = {
			.argsz = sizeof(map),
			.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
			.vaddr = (uintptr_t)c->mem, .iova = TYPE1_IOVA, .size = c->mem_len,
		};

		if (ioctl(c->container, VFIO_IOMMU_MAP_DMA, &map))
			return -errno;
		c->mem_iova = TYPE1_IOVA;
	}
	return 0;
}

/* Set or clear @bits of the device's PCI command register. */
static int command_bits(struct dbo_ctrl *c, uint16_t bits, bool on)
{
	uint16_t cmd;
	int err;

	err = config_rw(c, false, PCI_COMMAND, &cmd, 2);
	if (err)
		return err;
	cmd = on ? cmd | bits : cmd & ~bits;
	return config_rw(c, true, PCI_COMMAND, &cmd, 2);
}

/* Memory decoding and bus mastering on (a reset restores them). */
static int enable_device(struct dbo_ctrl *c)
{
	return command_bits(c, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, true);
}

/**
 * dbo_memory() - turn the device's memory decoding off or on
 * @c: the controller
 * @on: the new state
 *
 * Off revokes every dma-buf of the device's BARs until it is on again;
 * the controller keeps its state. Neither this process nor an importer
 * may touch the BARs meanwhile.
 *
 * Return: 0 or -errno.
 */
int dbo_memory(struct dbo_ctrl *c, bool on)
{
	int err = command_bits(c, PCI_COMMAND_MEMORY, on);

	if (!err)
		c->memory_off = !on;
	return err;
}

/**
 * dbo_open() - claim NVMe controller @bdf through VFIO
 * @c: the controller, filled in
 * @bdf: its PCI address; it must be bound to vfio-pci
 *
 * Opens the device's VFIO cdev with iommufd, or its group with a type1
 * container where the cdev is missing; maps BAR 0 and the host memory the
 * controller uses. Without an IOMMU (no-IOMMU VFIO) user space has no DMA
 * addresses for its memory: -ENODEV.
 *
 * Return: 0 or -errno, c->step naming what failed; on failure, dbo_close()
 * undoes what was done.
 */
int dbo_open(struct dbo_ctrl *c, const char *bdf)
{
	int err;

	memset(c, 0, sizeof(*c));
	c->device = c->iommufd = c->container = c->group = -1;
	snprintf(c->bdf, sizeof(c->bdf), "%s", bdf);
	c->step = "VFIO device cdev and iommufd";
	err = open_cdev(c);
	if (err == -ENOENT) {
		c->step = "VFIO group (no IOMMU: no DMA addresses for user memory)";
		err = open_group(c);
		if (err == -ENOENT)
			err = -ENODEV;
	}
	if (err)
		return err;
	c->step = "PCI command register";
	err = enable_device(c);
	if (err)
		return err;
	c->step = "BAR 0 mmap";
	c->regs = map_bar(c, 0, &c->regs_len);
	if (!c->regs)
		return -errno;
	c->step = "host memory";
	c->mem_len = MEM_LEN;
	c->mem = mmap(NULL, c->mem_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->mem == MAP_FAILED) {
		c->mem = NULL;
		return -errno;
	}
	c->step = "DMA mapping of host memory";
	err = dma_map(c);
	if (!err)
		c->step = NULL;
	return err;
}

/* --- the CMB --------------------------------------------------------------- */

/*
 * Enable the CMB's registers, check that SQs may live in it, map it for the
 * CPU and enable its controller memory space at the BAR's bus address.
 */
static int cmb_enable(struct dbo_ctrl *c)
{
	uint32_t loc, sz;
	uint64_t unit, bus;
	int err;

	if (!NVME_CAP_CMBS(c->cap))
		return -EOPNOTSUPP;
	wr64(c, NVME_REG_CMBMSC, NVME_CMBMSC_CRE);
	loc = rd32(c, NVME_REG_CMBLOC);
	sz = rd32(c, NVME_REG_CMBSZ);
	if (!(sz & NVME_CMBSZ_SQS) || !(sz & NVME_CMBSZ_RDS) || !(sz & NVME_CMBSZ_WDS))
		return -EOPNOTSUPP;
	unit = 4096ull << (4 * NVME_CMBSZ_SZU(sz));
	c->cmb_bar = NVME_CMBLOC_BIR(loc);
	c->cmb_off = NVME_CMBLOC_OFST(loc) * unit;
	c->cmb_len = NVME_CMBSZ_SZ(sz) * unit;
	if (c->cmb_bar == 0 || c->cmb_bar > 5 || c->cmb_len < dbo_cmb_used(DBO_MAX_QSIZE))
		return -EOPNOTSUPP;
	if (!c->cmb) {
		volatile uint8_t *p = map_bar(c, c->cmb_bar, &c->cmb_map_len);

		if (!p)
			return -errno;
		if (c->cmb_off + c->cmb_len > c->cmb_map_len) {
			munmap((void *)p, c->cmb_map_len);
			return -EINVAL;
		}
		c->cmb = p + c->cmb_off;
	}
	err = bar_bus_addr(c, c->cmb_bar, &bus);
	if (err)
		return err;
	c->cmb_addr = bus + c->cmb_off;
	wr64(c, NVME_REG_CMBMSC, c->cmb_addr | NVME_CMBMSC_CMSE | NVME_CMBMSC_CRE);
	/* refused (CBAI), or cut short by a controller that took half of it */
	if ((rd32(c, NVME_REG_CMBSTS) & NVME_CMBSTS_CBAI) ||
	    (rd64(c, NVME_REG_CMBMSC) & ~0xfffull) != c->cmb_addr)
		return -EINVAL;
	return 0;
}

/* --- queues ---------------------------------------------------------------- */

static void queue_init(struct dbo_queue *q, uint16_t qid, uint16_t size,
		       volatile void *sq, volatile void *cq)
{
	q->qid = qid;
	q->size = size;
	q->sq = sq;
	q->cq = cq;
	q->sq_tail = q->cq_head = 0;
	q->phase = 1;
	memset((void *)cq, 0, size * sizeof(struct nvme_cqe));
}

/* Copy @cmd into @q's next SQ slot and ring its tail doorbell. */
static void queue_submit(struct dbo_ctrl *c, struct dbo_queue *q, const struct nvme_sqe *cmd)
{
	volatile uint32_t *dst = (volatile uint32_t *)&q->sq[q->sq_tail];
	uint32_t w[sizeof(*cmd) / 4];
	unsigned int i;

	/* 32-bit stores: the SQ may be MMIO (the CMB); memcpy, not a cast */
	memcpy(w, cmd, sizeof(w));
	for (i = 0; i < sizeof(w) / 4; i++)
		dst[i] = w[i];
	q->sq_tail = (q->sq_tail + 1) % q->size;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	wr32(c, nvme_sq_db(q->qid, c->dstrd), q->sq_tail);
}

/* The next completion of @q if the controller posted one; advances. */
static bool queue_reap(struct dbo_ctrl *c, struct dbo_queue *q, struct nvme_cqe *out)
{
	volatile struct nvme_cqe *e = &q->cq[q->cq_head];

	if ((e->status & 1) != q->phase)
		return false;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	out->dw0 = e->dw0;
	out->dw1 = e->dw1;
	out->sqhd = e->sqhd;
	out->sqid = e->sqid;
	out->cid = e->cid;
	out->status = e->status;
	if (++q->cq_head == q->size) {
		q->cq_head = 0;
		q->phase ^= 1;
	}
	wr32(c, nvme_cq_db(q->qid, c->dstrd), q->cq_head);
	return true;
}

/* The outstanding AER completed: an event, or refused (no event). */
static void record_event(struct dbo_ctrl *c, const struct nvme_cqe *cqe)
{
	c->aer_armed = false;
	if (NVME_CQE_SF(cqe)) {
		c->aer_failed++;
		return;
	}
	if (c->nr_events < sizeof(c->events) / sizeof(c->events[0]))
		c->events[c->nr_events] = cqe->dw0;
	c->nr_events++;
	c->last_event = cqe->dw0;
	c->log_pending = true;
}

/*
 * Run admin command @cmd and wait for its completion (its CQE in @out if
 * not NULL). An asynchronous event that completes meanwhile is recorded.
 * 0, -EIO with the status in @out, -ETIMEDOUT.
 */
static int admin(struct dbo_ctrl *c, struct nvme_sqe *cmd, struct nvme_cqe *out)
{
	uint64_t end = now_ms() + 30000;
	struct nvme_cqe cqe;

	cmd->cid = c->next_cid++;
	c->admin_cmds++;
	queue_submit(c, &c->admin, cmd);
	while (now_ms() < end) {
		if (!queue_reap(c, &c->admin, &cqe)) {
			usleep(100);
			continue;
		}
		if (c->aer_armed && cqe.cid == c->aer_cid) {
			record_event(c, &cqe);
			continue;
		}
		if (cqe.cid != cmd->cid)
			continue;	/* a stale completion: cannot happen */
		if (out)
			*out = cqe;
		return NVME_CQE_SF(&cqe) ? -EIO : 0;
	}
	return -ETIMEDOUT;
}

/* Keep one Asynchronous Event Request outstanding. */
static void arm_aer(struct dbo_ctrl *c)
{
	struct nvme_sqe cmd = { .opcode = NVME_ADM_ASYNC_EVENT };

	if (c->aer_armed)
		return;
	cmd.cid = c->aer_cid = c->next_cid++;
	c->admin_cmds++;
	queue_submit(c, &c->admin, &cmd);
	c->aer_armed = true;
}

/**
 * dbo_poll_events() - collect asynchronous events the controller posted
 * @c: the controller
 *
 * Reaps the outstanding Asynchronous Event Request if it completed, reads
 * the log page it names (which lets the controller report the next event
 * of that type) and arms a new request. The events are in c->events.
 *
 * Return: the number of events seen so far, or -errno.
 */
int dbo_poll_events(struct dbo_ctrl *c)
{
	struct nvme_sqe log = { .opcode = NVME_ADM_GET_LOG_PAGE, .nsid = 0xffffffff };
	struct nvme_cqe cqe;
	int err;

	if (c->memory_off)
		return -ENODEV;
	while (queue_reap(c, &c->admin, &cqe)) {
		if (c->aer_armed && cqe.cid == c->aer_cid)
			record_event(c, &cqe);
	}
	if (c->log_pending) {
		/* one entry of the log, 64 bytes: NUMDL = 16 dwords - 1 */
		log.prp1 = c->mem_iova + MEM_BUF;
		log.cdw10 = NVME_AER_LOG(c->last_event) | (15u << 16);
		err = admin(c, &log, NULL);
		if (err)
			return err;
		c->log_pending = false;
	}
	if (!c->aer_armed && c->aer_failed < 4)
		arm_aer(c);
	return c->nr_events;
}

static int identify(struct dbo_ctrl *c)
{
	struct nvme_sqe cmd = {
		.opcode = NVME_ADM_IDENTIFY, .nsid = 1,
		.prp1 = c->mem_iova + MEM_BUF, .cdw10 = NVME_ID_CNS_NS,
	};
	const uint8_t *id = c->mem + MEM_BUF;
	uint32_t lbaf, lbads;
	int err;

	err = admin(c, &cmd, NULL);
	if (err)
		return err;
	memcpy(&c->nsze, id + NVME_ID_NS_NSZE, 8);
	memcpy(&lbaf, id + NVME_ID_NS_LBAF + 4 * (id[NVME_ID_NS_FLBAS] & 0xf), 4);
	lbads = (lbaf >> 16) & 0xff;
	/* 512 B to one data slot, no separate metadata (MPTR stays 0) */
	if (!c->nsze || lbads < 9 || lbads > 12 || (lbaf & 0xffff))
		return -EOPNOTSUPP;
	c->lba_size = 1u << lbads;
	return 0;
}

static int create_io_queues(struct dbo_ctrl *c, uint16_t qsize)
{
	struct nvme_sqe cmd = {
		.opcode = NVME_ADM_SET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES,
		.cdw11 = 0,	/* one SQ and one CQ (0's based) */
	};
	int err;

	err = admin(c, &cmd, NULL);
	if (err)
		return err;
	c->io_sq_off = 0;
	queue_init(&c->io, DBO_IO_QID, qsize, c->cmb + c->io_sq_off, c->mem + MEM_IOCQ);
	cmd = (struct nvme_sqe){
		.opcode = NVME_ADM_CREATE_CQ, .prp1 = c->mem_iova + MEM_IOCQ,
		.cdw10 = (uint32_t)(qsize - 1) << 16 | DBO_IO_QID,
		.cdw11 = NVME_Q_PC,	/* interrupts off: polled */
	};
	err = admin(c, &cmd, NULL);
	if (err)
		return err;
	cmd = (struct nvme_sqe){
		.opcode = NVME_ADM_CREATE_SQ, .prp1 = c->cmb_addr + c->io_sq_off,
		.cdw10 = (uint32_t)(qsize - 1) << 16 | DBO_IO_QID,
		.cdw11 = (uint32_t)DBO_IO_QID << 16 | NVME_Q_PC,
	};
	return admin(c, &cmd, NULL);
}

/**
 * dbo_init() - bring the controller up with one I/O queue pair
 * @c: a controller dbo_open() opened
 * @io_qsize: I/O queue entries, 2 to DBO_MAX_QSIZE
 *
 * Disables the controller, sets up the admin queue, enables the CMB and the
 * controller, identifies namespace 1 and creates I/O queue pair
 * DBO_IO_QID: the CQ in host memory, the SQ at the start of the CMB.
 *
 * Return: 0, -EINVAL, -EOPNOTSUPP (no usable CMB or namespace), -EIO (a
 * command failed or the controller is fatal), -ETIMEDOUT.
 */
int dbo_init(struct dbo_ctrl *c, uint16_t io_qsize)
{
	int err;

	if (io_qsize < 2 || io_qsize > DBO_MAX_QSIZE)
		return -EINVAL;
	if (c->memory_off)
		return -ENODEV;
	c->cap = rd64(c, NVME_REG_CAP);
	c->dstrd = NVME_CAP_DSTRD(c->cap);
	if (NVME_CAP_MQES(c->cap) + 1u < io_qsize)
		return -EINVAL;
	if (nvme_cq_db(DBO_IO_QID, c->dstrd) + 4 > c->regs_len)
		return -EINVAL;
	wr32(c, NVME_REG_CC, 0);
	err = wait_ready(c, false);
	if (err)
		return err;
	c->aer_armed = false;
	queue_init(&c->admin, 0, DBO_ADMIN_QSIZE, (void *)(c->mem + MEM_ASQ),
		   (void *)(c->mem + MEM_ACQ));
	wr32(c, NVME_REG_AQA, (DBO_ADMIN_QSIZE - 1) << 16 | (DBO_ADMIN_QSIZE - 1));
	wr64(c, NVME_REG_ASQ, c->mem_iova + MEM_ASQ);
	wr64(c, NVME_REG_ACQ, c->mem_iova + MEM_ACQ);
	err = cmb_enable(c);
	if (err)
		return err;
	/* the controller would take host memory in [CBA, CBA + CMB) for its own */
	if (c->mem_iova < c->cmb_addr + c->cmb_len && c->cmb_addr < c->mem_iova + c->mem_len)
		return -EADDRINUSE;
	/* 4 KiB pages, NVM command set, 64-byte SQ and 16-byte CQ entries */
	wr32(c, NVME_REG_CC, NVME_CC_IOSQES(6) | NVME_CC_IOCQES(4) | NVME_CC_EN);
	err = wait_ready(c, true);
	if (err)
		return err;
	err = identify(c);
	if (!err)
		err = create_io_queues(c, io_qsize);
	if (err)
		return err;
	arm_aer(c);
	c->io_broken = false;
	c->generation++;
	return 0;
}

/**
 * dbo_reset() - reset the controller's function (VFIO_DEVICE_RESET)
 * @c: the controller
 *
 * The reset revokes every dma-buf exported from the device while it runs;
 * they are usable again when it returns. The controller is then disabled
 * (its queues are gone): dbo_init() brings it up again.
 *
 * Return: 0 or -errno.
 */
int dbo_reset(struct dbo_ctrl *c)
{
	int err;

	if (ioctl(c->device, VFIO_DEVICE_RESET))
		return -errno;
	err = enable_device(c);
	if (!err)
		c->memory_off = false;
	return err;
}

/**
 * dbo_export() - export bytes [@off, @off + @len) of BAR @bar as a dma-buf
 * @c: the controller
 * @bar: a memory BAR
 * @off: page-aligned offset in the BAR
 * @len: page-aligned length
 *
 * Return: the dma-buf fd (O_RDWR, close-on-exec) or -errno.
 */
int dbo_export(struct dbo_ctrl *c, uint32_t bar, uint64_t off, uint64_t len)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_dma_buf db;
		struct vfio_region_dma_range r;
	} __attribute__((packed)) req = {
		.f = {
			.argsz = sizeof(req),
			.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF,
		},
		.db = {
			.region_index = VFIO_PCI_BAR0_REGION_INDEX + bar,
			.open_flags = O_RDWR | O_CLOEXEC, .nr_ranges = 1,
		},
		.r = { .offset = off, .length = len },
	};
	int fd;

	fd = ioctl(c->device, VFIO_DEVICE_FEATURE, &req);
	return fd < 0 ? -errno : fd;
}

/**
 * dbo_submit() - submit I/O command @cmd through the host CPU and wait
 * @c: the controller
 * @cmd: the command; its cid is set here
 * @out: its completion
 *
 * The path the offload avoids: this process writes the SQ entry into the
 * CMB and rings the SQ tail doorbell. Not to be mixed with a peer
 * submitting on the same queue.
 *
 * Return: 0, -EIO (the status is in @out, or the queue is broken by an
 * earlier timeout), -ETIMEDOUT, -ENODEV (memory decoding is off).
 */
int dbo_submit(struct dbo_ctrl *c, const struct nvme_sqe *cmd, struct nvme_cqe *out)
{
	uint64_t end = now_ms() + 30000;
	struct nvme_sqe sqe = *cmd;

	if (c->memory_off)
		return -ENODEV;
	if (c->io_broken)
		return -EIO;
	sqe.cid = c->io.sq_tail;
	c->io_submissions++;
	queue_submit(c, &c->io, &sqe);
	while (!queue_reap(c, &c->io, out)) {
		if (now_ms() > end) {
			/* still outstanding: the queue is out of step until a reset */
			c->io_broken = true;
			return -ETIMEDOUT;
		}
	}
	return NVME_CQE_SF(out) ? -EIO : 0;
}

/**
 * dbo_io_idle_state() - where the next I/O completion goes, read from the CQ
 * @c: the controller
 * @cq_head: the CQ slot of the next completion
 * @phase: its phase tag
 *
 * For a peer that takes over the I/O queue pair from another that left it
 * idle (every command completed, every completion consumed): the SQ tail is
 * then the CQ head. The controller writes entries in order, flipping the
 * phase tag on each pass over a CQ that started zeroed, so the first entry
 * whose tag differs from entry 0's is where the current pass stopped.
 */
void dbo_io_idle_state(struct dbo_ctrl *c, uint16_t *cq_head, uint8_t *phase)
{
	uint8_t p0 = c->io.cq[0].status & 1;
	uint16_t i;

	for (i = 1; i < c->io.size; i++)
		if ((c->io.cq[i].status & 1) != p0)
			break;
	*cq_head = i % c->io.size;
	*phase = i == c->io.size ? !p0 : p0;
}

/**
 * dbo_close() - give the controller back: disable it, unmap, close VFIO
 * @c: the controller; any state dbo_open() left
 */
void dbo_close(struct dbo_ctrl *c)
{
	if (c->regs) {
		if (!c->memory_off)	/* the BAR mmap faults while it is off */
			wr32(c, NVME_REG_CC, 0);
		munmap((void *)c->regs, c->regs_len);
	}
	if (c->cmb)
		munmap((void *)(c->cmb - c->cmb_off), c->cmb_map_len);
	if (c->device >= 0)
		close(c->device);
	if (c->group >= 0)
		close(c->group);
	if (c->container >= 0)
		close(c->container);
	if (c->iommufd >= 0)
		close(c->iommufd);
	if (c->mem)
		munmap(c->mem, c->mem_len);
	memset(c, 0, sizeof(*c));
	c->device = c->iommufd = c->container = c->group = -1;
}
