// SPDX-License-Identifier: GPL-2.0
/*
 * rxe dma-buf MRs (ibv_reg_dmabuf_mr() on Soft-RoCE): bytes moved by RDMA
 * WRITE, READ and SEND into and out of a dma-buf, checked at the other end
 * (the memfd behind a udmabuf, the system heap buffer's own mmap, the host
 * file behind ivshmem BAR 2 for a vfio-pci export, the NVMe's CMB through
 * VFIO), and what an RDMA user sees when vfio-pci revokes the BAR under
 * traffic (decode off, reset: a bus reset for ivshmem, an FLR for the NVMe).
 *
 * Loopback RC QPs on rxe0 over the lab's virtio-net interface, addressed by
 * GID 0 (the interface's IPv6 link-local address); nothing leaves QEMU.
 */
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <sys/wait.h>
#include <infiniband/verbs.h>
#include <rdma/ib_user_verbs.h>
#include "kselftest_harness.h"
#include "lab.h"
#include "vfio_dmabuf.h"
#include "rxe_rc.h"

#define BUF_SIZE	(256 * 1024)
#define BAR_OFF		0x400000	/* ivshmem BAR 2 slice exported */
#define NVME_CMB_BAR	2		/* the NVMe's CMB, exported from 0 */
#define MR_IOVA		0x7f0000000000ULL
#define ACCESS_RW	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
			 IBV_ACCESS_REMOTE_READ)

/* SRC_VFIO: ivshmem BAR 2, checked in the host file; SRC_NVME: the CMB. */
enum source { SRC_UDMABUF, SRC_HEAP, SRC_VFIO, SRC_NVME };

/* vfio-pci exports: I/O memory that the exporter revokes. */
static bool vfio_src(enum source src)
{
	return src == SRC_VFIO || src == SRC_NVME;
}

static size_t count_not(const uint8_t *p, size_t n, uint8_t b)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += p[i] != b;
	return c;
}

FIXTURE(rxe) {
	struct rc rc;
	enum source src;
	int dmabuf;		/* the dma-buf fd */
	int memfd;		/* udmabuf: its memfd */
	int host;		/* vfio: the host file behind BAR 2 */
	uint8_t *view;		/* the buffer as the test checks it */
	struct vdb_lab l;
	bool vfio_open;
	struct vfio_region_info bar;
	uint8_t *bar_map;	/* vfio: BAR 2 through VFIO */
	uint8_t *buf;		/* plain host memory */
	struct ibv_mr *plain;
};

FIXTURE_VARIANT(rxe) {
	enum source src;
};

FIXTURE_VARIANT_ADD(rxe, udmabuf) { .src = SRC_UDMABUF };
FIXTURE_VARIANT_ADD(rxe, system_heap) { .src = SRC_HEAP };
FIXTURE_VARIANT_ADD(rxe, vfio_bar) { .src = SRC_VFIO };
/* Reset is an FLR there (ivshmem's is a bus reset). */
FIXTURE_VARIANT_ADD(rxe, vfio_nvme_cmb) { .src = SRC_NVME };

static int make_udmabuf(FIXTURE_DATA(rxe) *self)
{
	struct udmabuf_create c = { .flags = UDMABUF_FLAGS_CLOEXEC, .size = BUF_SIZE };
	int dev, fd;

	self->memfd = memfd_create("rxe_dmabuf", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (self->memfd < 0 || ftruncate(self->memfd, BUF_SIZE) ||
	    fcntl(self->memfd, F_ADD_SEALS, F_SEAL_SHRINK))
		return -errno;
	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	c.memfd = self->memfd;
	fd = ioctl(dev, UDMABUF_CREATE, &c);
	close(dev);
	if (fd < 0)
		return -errno;
	self->view = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, self->memfd, 0);
	return self->view == MAP_FAILED ? -errno : fd;
}

static int make_heap(FIXTURE_DATA(rxe) *self)
{
	struct dma_heap_allocation_data a = {
		.len = BUF_SIZE, .fd_flags = O_RDWR | O_CLOEXEC,
	};
	int heap = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);

	if (heap < 0)
		return -errno;
	if (ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &a)) {
		close(heap);
		return -errno;
	}
	close(heap);
	self->view = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, a.fd, 0);
	return self->view == MAP_FAILED ? -errno : (int)a.fd;
}

static int make_vfio(FIXTURE_DATA(rxe) *self)
{
	bool nvme = self->src == SRC_NVME;
	unsigned int bar = nvme ? NVME_CMB_BAR : IVSHMEM_BAR;
	uint64_t off = nvme ? 0 : BAR_OFF;
	int err = vdb_lab_setup_dev(&self->l, false, nvme ? "nvme" : "ivshmem");

	if (err)
		return err;
	self->vfio_open = true;
	if (!nvme) {
		self->host = lab_ivshmem_host_open();
		if (self->host < 0)
			return self->host;
	}
	err = lab_vfio_region(&self->l.v, bar, &self->bar);
	if (err)
		return err;
	if (self->bar.size < off + BUF_SIZE)
		return -ENOSPC;
	/* The guest's view of the BAR (the host file is checked with pread). */
	self->bar_map = mmap(NULL, self->bar.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			     self->l.v.device, self->bar.offset);
	if (self->bar_map == MAP_FAILED)
		return -errno;
	self->view = self->bar_map + off;
	return vdb_export1(self->l.v.device, bar, off, BUF_SIZE);
}

FIXTURE_SETUP(rxe)
{
	int fd;

	memset(self, 0, sizeof(*self));
	self->memfd = self->host = self->dmabuf = -1;
	self->view = self->bar_map = MAP_FAILED;
	self->src = variant->src;
	fd = rc_open(&self->rc);
	ASSERT_EQ(0, fd) TH_LOG("rxe0 loopback RC pair: %s", strerror(-fd));

	self->buf = aligned_alloc(4096, BUF_SIZE);
	ASSERT_NE(NULL, self->buf);
	self->plain = ibv_reg_mr(self->rc.pd, self->buf, BUF_SIZE, ACCESS_RW);
	ASSERT_NE(NULL, self->plain);

	switch (variant->src) {
	case SRC_UDMABUF:
		fd = make_udmabuf(self);
		break;
	case SRC_HEAP:
		fd = make_heap(self);
		break;
	default:
		fd = make_vfio(self);
		break;
	}
	ASSERT_LE(0, fd) TH_LOG("dma-buf: %s", strerror(-fd));
	self->dmabuf = fd;
}

FIXTURE_TEARDOWN(rxe)
{
	if (self->plain)
		ibv_dereg_mr(self->plain);
	free(self->buf);
	rc_close(&self->rc);
	if (self->bar_map != MAP_FAILED)
		munmap(self->bar_map, self->bar.size);
	else if (self->view != MAP_FAILED)
		munmap(self->view, BUF_SIZE);
	if (self->dmabuf >= 0)
		close(self->dmabuf);
	if (self->memfd >= 0)
		close(self->memfd);
	if (self->host >= 0)
		close(self->host);
	if (self->vfio_open)
		vdb_lab_restore(&self->l);
}

static struct ibv_mr *reg_dmabuf(FIXTURE_DATA(rxe) *self, int access)
{
	return ibv_reg_dmabuf_mr(self->rc.pd, 0, BUF_SIZE, MR_IOVA, self->dmabuf, access);
}

/* An RDMA WRITE from host memory lands in the dma-buf. */
TEST_F(rxe, write_lands)
{
	struct ibv_mr *mr = reg_dmabuf(self, ACCESS_RW);

	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	lab_pattern(self->buf, BUF_SIZE, 0, 0x1234 + self->src);
	memset(self->view, 0, BUF_SIZE);
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf,
					  MR_IOVA, mr->rkey, BUF_SIZE));
	EXPECT_EQ(0, memcmp(self->view, self->buf, BUF_SIZE));
	if (self->host >= 0) {
		uint8_t *file = malloc(BUF_SIZE);

		ASSERT_NE(NULL, file);
		ASSERT_EQ(BUF_SIZE, pread(self->host, file, BUF_SIZE, BAR_OFF));
		EXPECT_EQ(0, memcmp(file, self->buf, BUF_SIZE)) TH_LOG("host file");
		free(file);
	}
	EXPECT_EQ(0, ibv_dereg_mr(mr));
}

/*
 * A dma-buf of several ranges, as a BAR around an MSI-X table would be:
 * the third quarter of the slice, then the first, so that the dma-buf's
 * order is not the BAR's. An RDMA WRITE across the ranges lands in each,
 * and nothing in the quarters between them (which rxe does not even map).
 */
TEST_F(rxe, write_lands_in_ranges)
{
	const uint64_t q = BUF_SIZE / 4;
	struct vfio_region_dma_range r[] = {
		{ .offset = BAR_OFF + 2 * q, .length = q },
		{ .offset = BAR_OFF, .length = q },
	};
	struct ibv_mr *mr;
	uint8_t *file;
	int fd;

	if (self->src != SRC_VFIO)
		SKIP(return, "a vfio-pci export of ivshmem's BAR");
	fd = vdb_export(self->l.v.device, IVSHMEM_BAR, r, 2);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	mr = ibv_reg_dmabuf_mr(self->rc.pd, 0, 2 * q, MR_IOVA, fd, ACCESS_RW);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	memset(self->view, 0xee, BUF_SIZE);
	lab_pattern(self->buf, 2 * q, 0, 0x4321);
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf,
					  MR_IOVA, mr->rkey, 2 * q));

	file = malloc(BUF_SIZE);
	ASSERT_NE(NULL, file);
	ASSERT_EQ(BUF_SIZE, pread(self->host, file, BUF_SIZE, BAR_OFF));
	EXPECT_EQ(0, memcmp(file + 2 * q, self->buf, q)) TH_LOG("first range");
	EXPECT_EQ(0, memcmp(file, self->buf + q, q)) TH_LOG("second range");
	EXPECT_EQ(0, count_not(file + q, q, 0xee)) TH_LOG("between the ranges");
	EXPECT_EQ(0, count_not(file + 3 * q, q, 0xee)) TH_LOG("after the ranges");
	free(file);

	/* And back: an RDMA READ across the ranges returns both. */
	memset(self->buf, 0, 2 * q);
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_READ, self->plain, self->buf,
					  MR_IOVA, mr->rkey, 2 * q));
	EXPECT_EQ(0, memcmp(self->buf, self->view + 2 * q, q));
	EXPECT_EQ(0, memcmp(self->buf + q, self->view, q));
	EXPECT_EQ(0, ibv_dereg_mr(mr));
	close(fd);
}

/* An RDMA READ returns the bytes that the other side put in the dma-buf. */
TEST_F(rxe, read_returns)
{
	struct ibv_mr *mr = reg_dmabuf(self, ACCESS_RW);

	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	lab_pattern(self->view, BUF_SIZE, 0, 0x5678 + self->src);
	memset(self->buf, 0, BUF_SIZE);
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_READ, self->plain, self->buf,
					  MR_IOVA + 4096, mr->rkey, BUF_SIZE - 4096));
	EXPECT_EQ(0, memcmp(self->view + 4096, self->buf, BUF_SIZE - 4096));
	EXPECT_EQ(0, ibv_dereg_mr(mr));
}

/* SEND into a receive buffer in the dma-buf, and from a dma-buf source. */
TEST_F(rxe, send_recv_both_ways)
{
	struct ibv_mr *mr = reg_dmabuf(self, ACCESS_RW);
	struct ibv_sge sge = { .addr = MR_IOVA + 8192, .length = 16384 };
	struct ibv_recv_wr rwr = { .sg_list = &sge, .num_sge = 1 }, *bad;
	struct ibv_wc wc;

	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	sge.lkey = mr->lkey;
	ASSERT_EQ(0, ibv_post_recv(self->rc.qb, &rwr, &bad));
	lab_pattern(self->buf, 16384, 0, 0x9abc);
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_SEND, self->plain, self->buf,
					  0, 0, 16384));
	ASSERT_EQ(IBV_WC_SUCCESS, rc_wait(self->rc.rcq, &wc));	/* the receive */
	EXPECT_EQ(IBV_WC_RECV, wc.opcode);
	EXPECT_EQ(0, memcmp(self->view + 8192, self->buf, 16384));

	/* The dma-buf MR as the local source of an RDMA WRITE. */
	lab_pattern(self->view, 65536, 0, 0xdef0);
	memset(self->buf, 0, BUF_SIZE);
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_WRITE, mr,
					  (void *)(uintptr_t)MR_IOVA, (uintptr_t)self->buf,
					  self->plain->rkey, 65536));
	EXPECT_EQ(0, memcmp(self->view, self->buf, 65536));
	EXPECT_EQ(0, ibv_dereg_mr(mr));
}

/* Registration: what an RDMA user gets for bad or unsupported requests. */
TEST_F(rxe, registration_errors)
{
	int notdmabuf = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* The uverbs core takes only LW, RR, RW, RA and RO for dma-buf MRs. */
	const struct { uint64_t off, len, iova; int fd, access, err; const char *what; } bad[] = {
		{ 0, BUF_SIZE + 4096, MR_IOVA, self->dmabuf, ACCESS_RW, EINVAL, "length past the end" },
		{ 4096, BUF_SIZE, MR_IOVA, self->dmabuf, ACCESS_RW, EINVAL, "offset + length past the end" },
		{ 0, 0, MR_IOVA, self->dmabuf, ACCESS_RW, EINVAL, "zero length" },
		{ 100, 5000, MR_IOVA + 7, self->dmabuf, ACCESS_RW, EINVAL, "iova at another page offset" },
		{ 0, BUF_SIZE, MR_IOVA, -1, ACCESS_RW, EBADF, "fd -1" },
		{ 0, BUF_SIZE, MR_IOVA, notdmabuf, ACCESS_RW, EINVAL, "not a dma-buf" },
		{ 0, BUF_SIZE, MR_IOVA, self->dmabuf, ACCESS_RW | IBV_ACCESS_ON_DEMAND, EINVAL, "on-demand" },
		{ 0, BUF_SIZE, MR_IOVA, self->dmabuf, ACCESS_RW | IBV_ACCESS_FLUSH_GLOBAL, EINVAL, "flush global" },
		{ 0, BUF_SIZE, MR_IOVA, self->dmabuf, ACCESS_RW | IBV_ACCESS_FLUSH_PERSISTENT, EINVAL, "flush persistent" },
		{ 0, BUF_SIZE, MR_IOVA, self->dmabuf, ACCESS_RW | IBV_ACCESS_MW_BIND, EINVAL, "MW bind" },
		/* Remote write needs local write (IBTA). */
		{ 0, BUF_SIZE, MR_IOVA, self->dmabuf, IBV_ACCESS_REMOTE_WRITE, EINVAL, "remote write alone" },
	};
	struct ibv_mr *mr;
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mr = ibv_reg_dmabuf_mr(self->rc.pd, bad[i].off, bad[i].len, bad[i].iova, bad[i].fd,
				       bad[i].access);
		EXPECT_EQ(NULL, mr) TH_LOG("%s: registered", bad[i].what);
		if (mr)
			ibv_dereg_mr(mr);
		else
			EXPECT_EQ(bad[i].err, errno) TH_LOG("%s: %s", bad[i].what, strerror(errno));
	}
	mr = reg_dmabuf(self, ACCESS_RW | IBV_ACCESS_RELAXED_ORDERING);
	EXPECT_NE(NULL, mr) TH_LOG("relaxed ordering: %s", strerror(errno));
	if (mr)
		EXPECT_EQ(0, ibv_dereg_mr(mr));
	/* Remote write needs local write (IBTA). */
	/* Atomics only on system memory. */
	mr = reg_dmabuf(self, ACCESS_RW | IBV_ACCESS_REMOTE_ATOMIC);
	if (vfio_src(self->src)) {
		EXPECT_EQ(NULL, mr);
		EXPECT_EQ(EOPNOTSUPP, errno) TH_LOG("atomics on a BAR: %s", strerror(errno));
	} else {
		EXPECT_NE(NULL, mr) TH_LOG("atomics on system memory: %s", strerror(errno));
	}
	if (mr)
		EXPECT_EQ(0, ibv_dereg_mr(mr));
	/* An offset inside the dma-buf: iova maps to that offset. */
	mr = ibv_reg_dmabuf_mr(self->rc.pd, 8192, 8192, MR_IOVA, self->dmabuf, ACCESS_RW);
	ASSERT_NE(NULL, mr) TH_LOG("offset 8192: %s", strerror(errno));
	lab_pattern(self->buf, 8192, 0, 0x4321);
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf,
					  MR_IOVA, mr->rkey, 8192));
	EXPECT_EQ(0, memcmp(self->view + 8192, self->buf, 8192));
	/* Past the MR's end: a remote access error. */
	EXPECT_EQ(IBV_WC_REM_ACCESS_ERR,
		  rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf,
			  MR_IOVA + 4096, mr->rkey, 8192));
	EXPECT_EQ(0, ibv_dereg_mr(mr));
	close(notdmabuf);
}

/*
 * Offsets need no alignment: the MR starts at any byte of the dma-buf. The
 * uverbs core wants the iova at the same offset within its page.
 */
TEST_F(rxe, unaligned_offset_and_iova)
{
	static const struct { uint64_t off, len, iova; } c[] = {
		{ 100, 5000, MR_IOVA + 100 },
		{ 4095, 1, 4095 },
		{ BUF_SIZE - 3, 3, MR_IOVA + 4093 },
		{ 1, BUF_SIZE - 1, 0x1001 },
	};
	struct ibv_mr *mr;
	unsigned int i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		mr = ibv_reg_dmabuf_mr(self->rc.pd, c[i].off, c[i].len, c[i].iova, self->dmabuf,
				       ACCESS_RW);
		ASSERT_NE(NULL, mr) TH_LOG("offset %#llx length %#llx: %s",
					   (unsigned long long)c[i].off,
					   (unsigned long long)c[i].len, strerror(errno));
		memset(self->view, 0, BUF_SIZE);
		lab_pattern(self->buf, c[i].len, 0, 0x700 + i);
		ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain,
						  self->buf, c[i].iova, mr->rkey, c[i].len));
		EXPECT_EQ(0, memcmp(self->view + c[i].off, self->buf, c[i].len)) TH_LOG("case %u", i);
		EXPECT_EQ(0, count_not(self->view, c[i].off, 0)) TH_LOG("case %u: before", i);
		EXPECT_EQ(0, count_not(self->view + c[i].off + c[i].len,
				       BUF_SIZE - c[i].off - c[i].len, 0)) TH_LOG("case %u: after", i);
		/* One byte before the MR's iova is outside it. */
		if (c[i].iova)
			EXPECT_EQ(IBV_WC_REM_ACCESS_ERR,
				  rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf,
					  c[i].iova - 1, mr->rkey, 1));
		EXPECT_EQ(0, ibv_dereg_mr(mr));
		if (c[i].iova)	/* the error moved the QPs to the error state */
			ASSERT_EQ(0, rc_pair(&self->rc));
	}
}

/*
 * vfio-pci revokes the BAR (memory decode off, reset) while the MR is
 * registered: RDMA WRITEs get a remote access error and nothing reaches the
 * BAR; after the BAR comes back, a fresh QP writes through the same MR.
 */
TEST_F(rxe, revoke)
{
	static const char * const how[] = { "memory off", "device reset" };
	struct ibv_mr *mr;
	int i, st;

	if (!vfio_src(self->src))
		SKIP(return, "only vfio-pci exports are revoked");
	mr = reg_dmabuf(self, ACCESS_RW);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	for (i = 0; i < 2; i++) {
		if (i == 1 && !vdb_reset_works(&self->l.v))
			break;
		memset(self->view, 0x5a, BUF_SIZE);
		lab_pattern(self->buf, BUF_SIZE, 0, 0x1111 * (i + 1));
		if (i == 0) {
			ASSERT_EQ(0, vdb_memory(&self->l.v, false));
		} else {
			ASSERT_EQ(0, vdb_device_reset(&self->l.v));
		}
		if (i == 0) {
			st = rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf,
				     MR_IOVA, mr->rkey, BUF_SIZE);
			EXPECT_EQ(IBV_WC_REM_ACCESS_ERR, st) TH_LOG("%s: %s", how[i],
				ibv_wc_status_str(st));
			/*
			 * The requester's QP goes to the error state (IBTA), and
			 * rxe's responder, having detected the access error,
			 * too.
			 */
			EXPECT_EQ(IBV_QPS_ERR, qp_state_reaches(self->rc.qa, IBV_QPS_ERR));
			EXPECT_EQ(IBV_QPS_ERR, qp_state_reaches(self->rc.qb, IBV_QPS_ERR));
			/* The MR as the local source: a local protection error. */
			ASSERT_EQ(0, rc_pair(&self->rc));
			st = rc_post(&self->rc, IBV_WR_RDMA_WRITE, mr, (void *)(uintptr_t)MR_IOVA,
				     (uintptr_t)self->buf, self->plain->rkey, 4096);
			EXPECT_EQ(IBV_WC_LOC_PROT_ERR, st) TH_LOG("%s, local: %s", how[i],
				ibv_wc_status_str(st));
			EXPECT_EQ(IBV_QPS_ERR, qp_state_reaches(self->rc.qa, IBV_QPS_ERR));
			ASSERT_EQ(0, vdb_memory(&self->l.v, true));
			EXPECT_EQ(0, count_not(self->view, BUF_SIZE, 0x5a))
				TH_LOG("%s: bytes landed after the revoke", how[i]);
		}
		ASSERT_EQ(0, rc_pair(&self->rc));
		st = rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf, MR_IOVA,
			     mr->rkey, BUF_SIZE);
		EXPECT_EQ(IBV_WC_SUCCESS, st) TH_LOG("after %s: %s", how[i],
						    ibv_wc_status_str(st));
		EXPECT_EQ(0, memcmp(self->view, self->buf, BUF_SIZE)) TH_LOG("after %s", how[i]);
	}
	EXPECT_EQ(0, ibv_dereg_mr(mr));
}

/*
 * A revoked MR in every other role it can have: the target of an RDMA READ,
 * the local sink of a READ and a receive buffer. Each fails as
 * Documentation/infiniband/dmabuf.rst says, and nothing reaches the BAR or
 * comes back from it.
 */
TEST_F(rxe, revoked_mr_in_every_role)
{
	struct ibv_sge sge = { .addr = MR_IOVA + 8192, .length = 4096 };
	struct ibv_recv_wr rwr = { .sg_list = &sge, .num_sge = 1 }, *bad;
	struct ibv_mr *mr;
	struct ibv_wc wc;
	int st;

	if (!vfio_src(self->src))
		SKIP(return, "only vfio-pci exports are revoked");
	mr = reg_dmabuf(self, ACCESS_RW);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	sge.lkey = mr->lkey;
	lab_pattern(self->view, BUF_SIZE, 0, 0x2468);
	ASSERT_EQ(0, vdb_memory(&self->l.v, false));

	/* The target of a READ: a remote access error, nothing read. */
	memset(self->buf, 0x77, BUF_SIZE);
	st = rc_post(&self->rc, IBV_WR_RDMA_READ, self->plain, self->buf, MR_IOVA, mr->rkey,
		     4096);
	EXPECT_EQ(IBV_WC_REM_ACCESS_ERR, st) TH_LOG("READ from it: %s", ibv_wc_status_str(st));
	EXPECT_EQ(0, count_not(self->buf, 4096, 0x77)) TH_LOG("a READ returned bytes");

	/* The local sink of a READ: a local protection error. */
	ASSERT_EQ(0, rc_pair(&self->rc));
	st = rc_post(&self->rc, IBV_WR_RDMA_READ, mr, (void *)(uintptr_t)MR_IOVA,
		     (uintptr_t)self->buf, self->plain->rkey, 4096);
	EXPECT_EQ(IBV_WC_LOC_PROT_ERR, st) TH_LOG("READ into it: %s", ibv_wc_status_str(st));
	EXPECT_EQ(IBV_QPS_ERR, qp_state_reaches(self->rc.qa, IBV_QPS_ERR));

	/*
	 * A receive buffer: the responder cannot place the SEND, completes the
	 * receive with a local QP operation error and NAKs with a remote
	 * operational error (IBTA 9.7.5.2.4, 10.7.3.1); both QPs go to error.
	 */
	ASSERT_EQ(0, rc_pair(&self->rc));
	ASSERT_EQ(0, ibv_post_recv(self->rc.qb, &rwr, &bad));
	st = rc_post(&self->rc, IBV_WR_SEND, self->plain, self->buf, 0, 0, 4096);
	EXPECT_EQ(IBV_WC_REM_OP_ERR, st) TH_LOG("SEND into it: %s", ibv_wc_status_str(st));
	st = rc_wait(self->rc.rcq, &wc);
	EXPECT_EQ(IBV_WC_LOC_QP_OP_ERR, st) TH_LOG("the receive: %s", ibv_wc_status_str(st));
	EXPECT_EQ(IBV_QPS_ERR, qp_state_reaches(self->rc.qa, IBV_QPS_ERR));
	EXPECT_EQ(IBV_QPS_ERR, qp_state_reaches(self->rc.qb, IBV_QPS_ERR));

	/* Decoding again: the BAR holds what it held before, to the byte. */
	ASSERT_EQ(0, vdb_memory(&self->l.v, true));
	lab_pattern(self->buf, BUF_SIZE, 0, 0x2468);
	EXPECT_EQ(0, memcmp(self->view, self->buf, BUF_SIZE)) TH_LOG("the BAR changed");
	EXPECT_EQ(0, ibv_dereg_mr(mr));
}

/* Remote atomics on a dma-buf of system memory: the 8 bytes change. */
TEST_F(rxe, atomics_on_system_memory)
{
	struct ibv_sge sge = { .length = 8 };
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .send_flags = IBV_SEND_SIGNALED,
	}, *bad;
	uint64_t *target = (uint64_t *)(self->view + 64);
	uint64_t *orig = (uint64_t *)self->buf;
	struct ibv_mr *mr;
	struct ibv_wc wc;

	if (vfio_src(self->src))
		SKIP(return, "atomics are refused on I/O memory (registration_errors)");
	mr = reg_dmabuf(self, ACCESS_RW | IBV_ACCESS_REMOTE_ATOMIC);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	sge.addr = (uintptr_t)orig;
	sge.lkey = self->plain->lkey;
	wr.wr.atomic.remote_addr = MR_IOVA + 64;
	wr.wr.atomic.rkey = mr->rkey;
	*target = 1000;

	wr.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
	wr.wr.atomic.compare_add = 234;
	ASSERT_EQ(0, ibv_post_send(self->rc.qa, &wr, &bad));
	ASSERT_EQ(IBV_WC_SUCCESS, rc_wait(self->rc.cq, &wc));
	EXPECT_EQ(1000, *orig);
	EXPECT_EQ(1234, *target);

	wr.opcode = IBV_WR_ATOMIC_CMP_AND_SWP;
	wr.wr.atomic.compare_add = 1234;
	wr.wr.atomic.swap = 0xfeedfacecafebeefULL;
	ASSERT_EQ(0, ibv_post_send(self->rc.qa, &wr, &bad));
	ASSERT_EQ(IBV_WC_SUCCESS, rc_wait(self->rc.cq, &wc));
	EXPECT_EQ(1234, *orig);
	EXPECT_EQ(0xfeedfacecafebeefULL, *target);

	/* Misaligned: the provider refuses it at post. */
	wr.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
	wr.wr.atomic.remote_addr = MR_IOVA + 68;
	EXPECT_EQ(EINVAL, ibv_post_send(self->rc.qa, &wr, &bad));
	EXPECT_EQ(0xfeedfacecafebeefULL, *target);
	EXPECT_EQ(0, ibv_dereg_mr(mr));
}

/* Closing the VFIO device revokes for good; the MR still deregisters. */
TEST_F(rxe, device_close_is_permanent)
{
	struct ibv_mr *mr;
	int st;

	if (!vfio_src(self->src))
		SKIP(return, "only vfio-pci exports are revoked");
	mr = reg_dmabuf(self, ACCESS_RW);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	munmap(self->bar_map, self->bar.size);
	self->bar_map = self->view = MAP_FAILED;
	lab_vfio_close(&self->l.v);
	lab_pattern(self->buf, 4096, 0, 0x2468);
	st = rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf, MR_IOVA, mr->rkey,
		     4096);
	EXPECT_EQ(IBV_WC_REM_ACCESS_ERR, st) TH_LOG("after close: %s", ibv_wc_status_str(st));
	EXPECT_EQ(0, ibv_dereg_mr(mr));
	/* A new registration on the dead dma-buf is refused. */
	mr = reg_dmabuf(self, ACCESS_RW);
	EXPECT_EQ(NULL, mr);
	EXPECT_EQ(ENODEV, errno) TH_LOG("registration after close: %s", strerror(errno));
}

/*
 * rereg through the uverbs write command, as rdma-core's rxe provider has
 * no rereg_mr of its own (ibv_rereg_mr() stops there with EOPNOTSUPP).
 * 0 or -errno.
 */
static int rereg_cmd(struct ibv_context *ctx, struct ibv_mr *mr, struct ibv_pd *pd,
		     uint32_t flags, uint32_t access)
{
	struct ib_uverbs_rereg_mr_resp resp;
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_rereg_mr cmd;
	} req = {
		.hdr = { .command = IB_USER_VERBS_CMD_REREG_MR,
			 .in_words = sizeof(req) / 4, .out_words = sizeof(resp) / 4 },
		.cmd = { .response = (uintptr_t)&resp, .mr_handle = mr->handle,
			 .flags = flags, .pd_handle = pd->handle, .access_flags = access },
	};

	return write(ctx->cmd_fd, &req, sizeof(req)) == sizeof(req) ? 0 : -errno;
}

/* rereg may move a dma-buf MR to another PD, not change its access. */
TEST_F(rxe, rereg_keeps_access)
{
	struct ibv_mr *mr = reg_dmabuf(self, ACCESS_RW);
	struct ibv_pd *pd2 = ibv_alloc_pd(self->rc.ctx);

	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	ASSERT_NE(NULL, pd2);
	/* The same command changes a plain MR's access. */
	EXPECT_EQ(0, rereg_cmd(self->rc.ctx, self->plain, self->rc.pd, IBV_REREG_MR_CHANGE_ACCESS,
			       ACCESS_RW | IBV_ACCESS_REMOTE_ATOMIC));
	EXPECT_EQ(-EOPNOTSUPP, rereg_cmd(self->rc.ctx, mr, self->rc.pd, IBV_REREG_MR_CHANGE_ACCESS,
					 ACCESS_RW | IBV_ACCESS_REMOTE_ATOMIC));
	EXPECT_EQ(-EOPNOTSUPP, rereg_cmd(self->rc.ctx, mr, self->rc.pd, IBV_REREG_MR_CHANGE_ACCESS,
					 IBV_ACCESS_LOCAL_WRITE));
	/* Still writable from the wire, so the access did not change. */
	lab_pattern(self->buf, 4096, 0, 0x1357);
	EXPECT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf,
					  MR_IOVA, mr->rkey, 4096));
	EXPECT_EQ(0, memcmp(self->view, self->buf, 4096));
	/* To another PD and back. */
	EXPECT_EQ(0, rereg_cmd(self->rc.ctx, mr, pd2, IBV_REREG_MR_CHANGE_PD, 0));
	EXPECT_EQ(0, rereg_cmd(self->rc.ctx, mr, self->rc.pd, IBV_REREG_MR_CHANGE_PD, 0));
	EXPECT_EQ(0, ibv_dereg_mr(mr));
	EXPECT_EQ(0, ibv_dealloc_pd(pd2));
}

/*
 * Memory windows cannot reach a dma-buf MR: the uverbs core does not take
 * IBV_ACCESS_MW_BIND for dma-buf MRs, and rxe refuses to bind a window to
 * an MR without it.
 */
TEST_F(rxe, memory_window_refused)
{
	struct ibv_mw *mw = ibv_alloc_mw(self->rc.pd, IBV_MW_TYPE_2);
	struct ibv_send_wr wr = { .opcode = IBV_WR_BIND_MW, .send_flags = IBV_SEND_SIGNALED },
		*bad;
	struct ibv_mr *mr;
	struct ibv_wc wc;

	/* (IBV_ACCESS_MW_BIND itself: registration_errors.) */
	ASSERT_NE(NULL, mw) TH_LOG("ibv_alloc_mw: %s", strerror(errno));
	mr = reg_dmabuf(self, ACCESS_RW);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	wr.bind_mw.mw = mw;
	wr.bind_mw.rkey = ibv_inc_rkey(mw->rkey);
	wr.bind_mw.bind_info.mr = mr;
	wr.bind_mw.bind_info.addr = MR_IOVA;
	wr.bind_mw.bind_info.length = 4096;
	wr.bind_mw.bind_info.mw_access_flags = IBV_ACCESS_REMOTE_WRITE;
	ASSERT_EQ(0, ibv_post_send(self->rc.qb, &wr, &bad));
	EXPECT_EQ(IBV_WC_MW_BIND_ERR, rc_wait(self->rc.rcq, &wc))
		TH_LOG("bind: %s", ibv_wc_status_str(wc.status));
	EXPECT_EQ(0, ibv_dealloc_mw(mw));
	EXPECT_EQ(0, ibv_dereg_mr(mr));
}

/*
 * RDMA FLUSH needs IBV_ACCESS_FLUSH_* on the target MR, which a dma-buf MR
 * cannot have: a global-visibility FLUSH into it gets a remote access
 * error, while the same FLUSH into a plain MR with the access succeeds.
 */
TEST_F(rxe, flush_refused)
{
	struct ibv_qp_init_attr_ex init = {
		.send_cq = self->rc.cq, .recv_cq = self->rc.cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 8, .max_recv_wr = 8, .max_send_sge = 1,
			 .max_recv_sge = 1 },
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.pd = self->rc.pd, .send_ops_flags = IBV_QP_EX_WITH_FLUSH,
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = ACCESS_RW | IBV_ACCESS_FLUSH_GLOBAL,
	};
	struct ibv_qp_attr reset = { .qp_state = IBV_QPS_RESET };
	struct ibv_mr *mr = reg_dmabuf(self, ACCESS_RW), *fmr;
	struct ibv_qp *qp;
	struct ibv_qp_ex *qpx;
	struct ibv_wc wc;
	int i, st[2];

	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	fmr = ibv_reg_mr(self->rc.pd, self->buf, BUF_SIZE, ACCESS_RW | IBV_ACCESS_FLUSH_GLOBAL);
	if (!fmr)
		SKIP(goto out, "no FLUSH on this device: %s", strerror(errno));
	for (i = 0; i < 2; i++) {
		uint32_t rkey = i ? mr->rkey : fmr->rkey;
		uint64_t addr = i ? MR_IOVA : (uintptr_t)self->buf;

		/* A requester that can post FLUSH; qb, reset, takes it. */
		qp = ibv_create_qp_ex(self->rc.ctx, &init);
		ASSERT_NE(NULL, qp) TH_LOG("ibv_create_qp_ex: %s", strerror(errno));
		qpx = ibv_qp_to_qp_ex(qp);
		ASSERT_EQ(0, ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
					   IBV_QP_PORT | IBV_QP_ACCESS_FLAGS));
		ASSERT_EQ(0, ibv_modify_qp(self->rc.qb, &reset, IBV_QP_STATE));
		ASSERT_EQ(0, ibv_modify_qp(self->rc.qb, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
					   IBV_QP_PORT | IBV_QP_ACCESS_FLAGS));
		ASSERT_EQ(0, rc_connect(&self->rc, qp, self->rc.qb->qp_num));
		ASSERT_EQ(0, rc_connect(&self->rc, self->rc.qb, qp->qp_num));
		ibv_wr_start(qpx);
		qpx->wr_id = i;
		qpx->wr_flags = IBV_SEND_SIGNALED;
		ibv_wr_flush(qpx, rkey, addr, 4096, IBV_FLUSH_GLOBAL, IBV_FLUSH_RANGE);
		ASSERT_EQ(0, ibv_wr_complete(qpx));
		st[i] = rc_wait(self->rc.cq, &wc);
		ASSERT_EQ(0, ibv_destroy_qp(qp));
	}
	EXPECT_EQ(IBV_WC_SUCCESS, st[0]) TH_LOG("plain MR: %s", ibv_wc_status_str(st[0]));
	EXPECT_EQ(IBV_WC_REM_ACCESS_ERR, st[1]) TH_LOG("dma-buf MR: %s",
						       ibv_wc_status_str(st[1]));
	EXPECT_EQ(0, ibv_dereg_mr(fmr));
out:
	EXPECT_EQ(0, ibv_dereg_mr(mr));
}

/*
 * Teardown in the middle of traffic: a QP destroyed with WRITEs into the
 * dma-buf MR still queued, then a process killed while it streams WRITEs
 * (the kernel tears down its QPs, MRs and context). The dma-buf stays
 * usable: a new registration takes WRITEs again.
 */
TEST_F_TIMEOUT(rxe, teardown_during_traffic, 120)
{
	struct ibv_mr *mr = reg_dmabuf(self, ACCESS_RW);
	struct ibv_sge sge = { .addr = (uintptr_t)self->buf, .length = 4096,
			       .lkey = self->plain->lkey };
	struct ibv_send_wr wr = { .opcode = IBV_WR_RDMA_WRITE, .sg_list = &sge, .num_sge = 1,
				  .wr.rdma = { .remote_addr = MR_IOVA } }, *bad;
	int i, sig, status;
	sigset_t usr1;
	pid_t pid;

	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	wr.wr.rdma.rkey = mr->rkey;
	for (i = 0; i < 48; i++) {
		wr.wr.rdma.remote_addr = MR_IOVA + (i % 64) * 4096;
		ASSERT_EQ(0, ibv_post_send(self->rc.qa, &wr, &bad));
	}
	ASSERT_EQ(0, ibv_destroy_qp(self->rc.qa));
	self->rc.qa = NULL;
	ASSERT_EQ(0, ibv_dereg_mr(mr));

	/* Blocked before the fork: the child may signal before we wait. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	ASSERT_EQ(0, sigprocmask(SIG_BLOCK, &usr1, NULL));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rc rc = { .gid = self->rc.gid };
		struct ibv_device **l = ibv_get_device_list(NULL);
		struct ibv_mr *src, *dst;

		rc.ctx = l && l[0] ? ibv_open_device(l[0]) : NULL;
		if (!rc.ctx)
			_exit(2);
		rc.pd = ibv_alloc_pd(rc.ctx);
		rc.cq = ibv_create_cq(rc.ctx, 128, NULL, NULL, 0);
		rc.rcq = ibv_create_cq(rc.ctx, 128, NULL, NULL, 0);
		if (!rc.pd || !rc.cq || !rc.rcq || rc_pair(&rc))
			_exit(3);
		src = ibv_reg_mr(rc.pd, self->buf, BUF_SIZE, ACCESS_RW);
		dst = ibv_reg_dmabuf_mr(rc.pd, 0, BUF_SIZE, MR_IOVA, self->dmabuf, ACCESS_RW);
		if (!src || !dst)
			_exit(4);
		sge.lkey = src->lkey;
		wr.wr.rdma.rkey = dst->rkey;
		for (i = 0;; i++) {
			struct ibv_wc wc[16];

			wr.send_flags = i % 16 ? 0 : IBV_SEND_SIGNALED;
			wr.wr.rdma.remote_addr = MR_IOVA + (i % 64) * 4096;
			while (ibv_post_send(rc.qa, &wr, &bad))
				if (ibv_poll_cq(rc.cq, 16, wc) < 0)
					_exit(5);
			if (i == 64)	/* the stream is running */
				kill(getppid(), SIGUSR1);
		}
	}
	/* The stream is running, or the child gave up (its status says why). */
	for (i = 0; i < 60; i++) {
		struct timespec one_second = { .tv_sec = 1 };

		sig = sigtimedwait(&usr1, NULL, &one_second);
		if (sig == SIGUSR1 || waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	if (sig == SIGUSR1) {
		usleep(200000);
		ASSERT_EQ(0, kill(pid, SIGKILL));
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
	} else if (i == 60) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		ASSERT_TRUE(0) TH_LOG("the child did not stream WRITEs within 60 s");
	} else {
		ASSERT_TRUE(0) TH_LOG("the child ended before streaming: status %#x", status);
	}
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		TH_LOG("child status %#x", status);

	ASSERT_EQ(0, rc_pair(&self->rc));
	mr = reg_dmabuf(self, ACCESS_RW);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	lab_pattern(self->buf, BUF_SIZE, 0, 0x9753 + self->src);
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf,
					  MR_IOVA, mr->rkey, BUF_SIZE));
	EXPECT_EQ(0, memcmp(self->view, self->buf, BUF_SIZE));
	EXPECT_EQ(0, ibv_dereg_mr(mr));
}

/* RDMA WRITEs in a loop; a new QP pair after each error. */
struct traffic {
	FIXTURE_DATA(rxe) *self;
	struct ibv_mr *mr;
	volatile int stop;
	volatile int ok, refused;
	int other, other_status;
};

static void *traffic_thread(void *arg)
{
	struct traffic *t = arg;
	FIXTURE_DATA(rxe) *self = t->self;
	int st;

	while (!t->stop) {
		st = rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf, MR_IOVA,
			     t->mr->rkey, 65536);
		if (st == IBV_WC_SUCCESS) {
			t->ok++;
			continue;
		}
		if (st == IBV_WC_REM_ACCESS_ERR) {
			t->refused++;
		} else if (!t->other++) {
			t->other_status = st;
		}
		if (rc_pair(&self->rc))
			break;
	}
	return NULL;
}

/*
 * Memory decode toggled, and every fourth round a VFIO_DEVICE_RESET (an
 * FLR on the NVMe), while a stream of RDMA WRITEs targets the BAR: each
 * WRITE lands or gets a remote access error, and once the revoke has
 * returned nothing lands (ivshmem: bytes written into the host file while
 * the decode is off stay as they are).
 */
TEST_F_TIMEOUT(rxe, revoke_under_traffic, 300)
{
	struct traffic t = { .self = self };
	uint8_t *poison, *check;
	pthread_t thread;
	int i, ok, refused, changed = 0;
	bool resets;

	if (!vfio_src(self->src))
		SKIP(return, "only vfio-pci exports are revoked");
	t.mr = reg_dmabuf(self, ACCESS_RW);
	ASSERT_NE(NULL, t.mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));
	poison = malloc(65536);
	check = malloc(65536);
	ASSERT_NE(NULL, poison);
	ASSERT_NE(NULL, check);
	memset(poison, 0xa5, 65536);
	lab_pattern(self->buf, 65536, 0, 0x7777);
	ASSERT_EQ(0, pthread_create(&thread, NULL, traffic_thread, &t));
	resets = vdb_reset_works(&self->l.v);
	for (i = 0; i < 40; i++) {
		if (resets && i % 4 == 3) {
			/* Revoke and restore inside the ioctl, under the stream. */
			ASSERT_EQ(0, vdb_device_reset(&self->l.v));
			usleep(5000);
			continue;
		}
		ASSERT_EQ(0, vdb_memory(&self->l.v, false));
		if (self->host >= 0)
			ASSERT_EQ(65536, pwrite(self->host, poison, 65536, BAR_OFF));
		usleep(10000 + (i % 4) * 5000);
		/* Every window of a revoke sees a WRITE refused. */
		refused = t.refused;
		if (!lab_wait_change(&t.refused, refused, 60)) {
			EXPECT_TRUE(0) TH_LOG("round %d: no WRITE refused while revoked", i);
			EXPECT_EQ(0, vdb_memory(&self->l.v, true));
			break;
		}
		if (self->host >= 0) {
			ASSERT_EQ(65536, pread(self->host, check, 65536, BAR_OFF));
			changed += !!memcmp(check, poison, 65536);
		}
		ASSERT_EQ(0, vdb_memory(&self->l.v, true));
		usleep(i % 2 ? 2000 : 15000);
	}
	/* The stream lands again once the last revoke is undone. */
	ok = t.ok;
	EXPECT_TRUE(lab_wait_change(&t.ok, ok, 60)) TH_LOG("no WRITE landed after the last revoke");
	t.stop = 1;
	pthread_join(thread, NULL);
	TH_LOG("%d revokes: %d WRITEs landed, %d refused", i, t.ok, t.refused);
	EXPECT_EQ(0, changed) TH_LOG("bytes landed while revoked in %d of %d rounds", changed, i);
	EXPECT_EQ(0, t.other) TH_LOG("%d other completions, first %s", t.other,
				     ibv_wc_status_str(t.other_status));
	EXPECT_LT(0, t.ok);
	EXPECT_LT(0, t.refused);
	/* Afterwards the MR works again. */
	ASSERT_EQ(0, rc_pair(&self->rc));
	EXPECT_EQ(IBV_WC_SUCCESS, rc_post(&self->rc, IBV_WR_RDMA_WRITE, self->plain, self->buf,
					  MR_IOVA, t.mr->rkey, 65536));
	EXPECT_EQ(0, memcmp(self->view, self->buf, 65536));
	EXPECT_EQ(0, ibv_dereg_mr(t.mr));
	free(poison);
	free(check);
}

/* Deregistration while the exporter revokes, in a loop. */
struct dereg_race {
	FIXTURE_DATA(rxe) *self;
	volatile int stop;
	int toggles;
};

static void *toggle_thread(void *arg)
{
	struct dereg_race *r = arg;

	while (!r->stop) {
		if (vdb_memory(&r->self->l.v, false) || vdb_memory(&r->self->l.v, true))
			break;
		r->toggles++;
	}
	return NULL;
}

TEST_F_TIMEOUT(rxe, dereg_races_revoke, 300)
{
	struct dereg_race r = { .self = self };
	struct ibv_mr *mr;
	pthread_t thread;
	int i, regs = 0;

	if (!vfio_src(self->src))
		SKIP(return, "only vfio-pci exports are revoked");
	ASSERT_EQ(0, pthread_create(&thread, NULL, toggle_thread, &r));
	for (i = 0; i < 200; i++) {
		mr = reg_dmabuf(self, ACCESS_RW);
		if (!mr) {
			/* Registration maps once: a revoked BAR says so. */
			EXPECT_EQ(ENODEV, errno) TH_LOG("registration: %s", strerror(errno));
			continue;
		}
		regs++;
		EXPECT_EQ(0, ibv_dereg_mr(mr));
	}
	r.stop = 1;
	pthread_join(thread, NULL);
	TH_LOG("%d registrations, %d decode toggles", regs, r.toggles);
	EXPECT_LT(0, regs);
	EXPECT_LT(0, r.toggles);
}

/* QEMU's edu: registers in BAR 0, 32-bit only below 0x80, 32/64-bit above. */
#define EDU_BAR		0
#define EDU_LIVENESS	0x04	/* reads back the inverse of a 32-bit write */
#define EDU_DMA_SRC	0x80	/* the DMA source address, read and written whole */
#define EDU_DMA_DST	0x88	/* the DMA destination address, the same */

/*
 * One IBV_WR_ATOMIC_WRITE of @value to @raddr from a QP made for it (the
 * verbs of rc_post() cannot post one), to a new qb; the completion status.
 */
static int atomic_write(struct rc *rc, uint64_t raddr, uint32_t rkey, uint64_t value)
{
	struct ibv_qp_init_attr_ex init = {
		.send_cq = rc->cq, .recv_cq = rc->cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1,
			 .max_recv_sge = 1 },
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.pd = rc->pd, .send_ops_flags = IBV_QP_EX_WITH_ATOMIC_WRITE,
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1, .qp_access_flags = RC_ACCESS,
	};
	struct ibv_qp_ex *qpx;
	struct ibv_qp *qp;
	struct ibv_wc wc;
	int st = -1;

	qp = ibv_create_qp_ex(rc->ctx, &init);
	if (!qp)
		return -1;
	ibv_destroy_qp(rc->qb);
	rc->qb = rc_qp(rc, rc->rcq);
	if (!rc->qb)
		goto out;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
			  IBV_QP_ACCESS_FLAGS) ||
	    rc_connect(rc, qp, rc->qb->qp_num) || rc_connect(rc, rc->qb, qp->qp_num))
		goto out;
	qpx = ibv_qp_to_qp_ex(qp);
	ibv_wr_start(qpx);
	qpx->wr_id = 1;
	qpx->wr_flags = IBV_SEND_SIGNALED;
	ibv_wr_atomic_write(qpx, rkey, raddr, &value);
	if (!ibv_wr_complete(qpx))
		st = rc_wait(rc->cq, &wc);
out:
	ibv_destroy_qp(qp);
	return st;
}

/*
 * rxe writes a BAR as a NIC would: an aligned 4- or 8-byte RDMA WRITE into
 * a register page is one store of that width, and an RDMA READ one load.
 * edu ignores every access of another width (a torn store, or bytes), so
 * the values it reads back show the width of what reached it.
 */
TEST(rxe_register_accesses_are_single_width)
{
	uint32_t live = 0x13572468 ^ (uint32_t)getpid(), live_back = 0;
	uint64_t src = 0x0000123456789ab0ULL ^ ((uint64_t)getpid() << 12), src_back = 0;
	struct vdb_lab l;
	struct rc rc;
	struct ibv_mr *mr, *plain;
	uint64_t buf[2];
	int fd, err;

	err = vdb_lab_setup_dev(&l, false, "edu");
	ASSERT_EQ(0, err) TH_LOG("edu through VFIO: %s", strerror(-err));
	fd = vdb_export1(l.v.device, EDU_BAR, 0, 4096);
	ASSERT_LE(0, fd) TH_LOG("export of edu's registers: %s", strerror(-fd));
	ASSERT_EQ(0, rc_open(&rc));
	plain = ibv_reg_mr(rc.pd, buf, sizeof(buf), ACCESS_RW);
	ASSERT_NE(NULL, plain);
	mr = ibv_reg_dmabuf_mr(rc.pd, 0, 4096, MR_IOVA, fd, ACCESS_RW);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));

	memcpy(buf, &live, sizeof(live));
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&rc, IBV_WR_RDMA_WRITE, plain, buf,
					  MR_IOVA + EDU_LIVENESS, mr->rkey, sizeof(live)));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&rc, IBV_WR_RDMA_READ, plain, buf,
					  MR_IOVA + EDU_LIVENESS, mr->rkey, sizeof(live_back)));
	memcpy(&live_back, buf, sizeof(live_back));
	EXPECT_EQ(~live, live_back) TH_LOG("liveness 0x%08x after writing 0x%08x: "
					   "not one 32-bit store and load", live_back, live);

	memcpy(buf, &src, sizeof(src));
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&rc, IBV_WR_RDMA_WRITE, plain, buf,
					  MR_IOVA + EDU_DMA_SRC, mr->rkey, sizeof(src)));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&rc, IBV_WR_RDMA_READ, plain, buf,
					  MR_IOVA + EDU_DMA_SRC, mr->rkey, sizeof(src_back)));
	memcpy(&src_back, buf, sizeof(src_back));
	EXPECT_EQ(src, src_back) TH_LOG("DMA source 0x%016llx after writing 0x%016llx: "
					"not one 64-bit store and load",
					(unsigned long long)src_back, (unsigned long long)src);

	/* ATOMIC_WRITE: one 64-bit store, read back whole (on a new pair). */
	src ^= 0x0000fedc00000000ULL;
	ASSERT_EQ(IBV_WC_SUCCESS, atomic_write(&rc, MR_IOVA + EDU_DMA_DST, mr->rkey, src));
	ASSERT_EQ(0, rc_pair(&rc));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(IBV_WC_SUCCESS, rc_post(&rc, IBV_WR_RDMA_READ, plain, buf,
					  MR_IOVA + EDU_DMA_DST, mr->rkey, sizeof(src_back)));
	memcpy(&src_back, buf, sizeof(src_back));
	EXPECT_EQ(src, src_back) TH_LOG("DMA destination 0x%016llx after an ATOMIC_WRITE of "
					"0x%016llx: not one 64-bit store",
					(unsigned long long)src_back, (unsigned long long)src);

	EXPECT_EQ(0, ibv_dereg_mr(mr));
	EXPECT_EQ(0, ibv_dereg_mr(plain));
	rc_close(&rc);
	close(fd);
	vdb_lab_restore(&l);
}

TEST_HARNESS_MAIN
