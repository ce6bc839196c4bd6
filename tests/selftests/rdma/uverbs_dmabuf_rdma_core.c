// SPDX-License-Identifier: GPL-2.0
/*
 * rdma-core 65 against UVERBS_OBJECT_DMABUF: the ioctl that
 * ibv_cmd_export_dmabuf_fd() builds (it is under ibv_dm_export_dmabuf_fd()
 * and mlx5dv_devx_uar_export_dmabuf_fd() too) is the one this kernel
 * answers.
 *
 * rdma-core only runs commands on a device with a provider, and the lab's
 * exporter, the test RDMA driver, has none. So rdma-core runs on rxe0's
 * context, and this program's own ioctl() (which libibverbs' calls resolve
 * to) records the command and sends it, unchanged but for the driver id,
 * to the test driver's uverbs file. The test checks the command's bytes
 * against the kernel's uAPI header and that the kernel made a dma-buf of
 * the right entry from it.
 */
#include <stdarg.h>
#include <sys/syscall.h>
#include <infiniband/verbs.h>
#include "kselftest_harness.h"
#include "p2pt.h"
#include "p2pt_rdma.h"
#include "uverbs_raw.h"

/* libibverbs' private command (driver.h, not installed). */
int ibv_cmd_export_dmabuf_fd(struct ibv_context *ctx, off_t pg_off);

static struct {
	int to;				/* redirect RDMA_VERBS_IOCTL here, if >= 0 */
	struct uvr_cmd seen;		/* the last command redirected */
} redirect = { .to = -1 };

int ioctl(int fd, unsigned long req, ...)
{
	struct ib_uverbs_ioctl_hdr *hdr;
	unsigned int n;
	va_list ap;
	__u32 drv;
	long ret;

	va_start(ap, req);
	hdr = va_arg(ap, void *);
	va_end(ap);
	if (redirect.to < 0 || req != RDMA_VERBS_IOCTL)
		return syscall(SYS_ioctl, fd, req, hdr);

	n = hdr->num_attrs < UVR_MAX_ATTRS ? hdr->num_attrs : UVR_MAX_ATTRS;
	memcpy(&redirect.seen.hdr, hdr, sizeof(*hdr));
	memcpy(redirect.seen.attrs, hdr->attrs, n * sizeof(hdr->attrs[0]));
	drv = hdr->driver_id;
	hdr->driver_id = 0;		/* RDMA_DRIVER_UNKNOWN: the test driver */
	ret = syscall(SYS_ioctl, redirect.to, req, hdr);
	hdr->driver_id = drv;
	return ret;
}

FIXTURE(rc) {
	char rdma[LAB_BDF_LEN];
	struct ibv_context *ctx;	/* rxe0 */
	int uv;				/* the test driver, with a ucontext */
	struct p2pt_rdma_ucontext_resp resp;
};

FIXTURE_SETUP(rc)
{
	struct ibv_device **list;
	int i, n = 0, err;

	self->uv = -1;
	snprintf(self->rdma, sizeof(self->rdma), "%s", p2pt_orig_bdf("ivshmem2"));
	if (!self->rdma[0])
		SKIP(return, "no ivshmem2 in this lab");
	ASSERT_EQ(0, lab_pci_bind(self->rdma, P2PT_RDMA_DRIVER));
	err = uvr_open(P2PT_RDMA_IBDEV);
	ASSERT_LE(0, err) TH_LOG("uverbs of %s: %s", P2PT_RDMA_IBDEV, strerror(-err));
	self->uv = err;
	ASSERT_EQ(0, uvr_get_context(self->uv, &self->resp, sizeof(self->resp)));

	if (access("/sys/class/infiniband/rxe0", F_OK))
		ASSERT_EQ(0, system("ip link set eth0 up && "
				    "rdma link add rxe0 type rxe netdev eth0"));
	list = ibv_get_device_list(&n);
	ASSERT_NE(NULL, list);
	for (i = 0; i < n && strcmp(ibv_get_device_name(list[i]), "rxe0"); i++)
		;
	ASSERT_LT(i, n) TH_LOG("rdma-core does not list rxe0");
	self->ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	ASSERT_NE(NULL, self->ctx);
}

FIXTURE_TEARDOWN(rc)
{
	redirect.to = -1;
	if (self->ctx)
		ibv_close_device(self->ctx);
	if (self->uv >= 0)
		close(self->uv);
}

/* The command's bytes are those of the kernel's uAPI, and it works. */
TEST_F(rc, export_command_matches_the_kernel)
{
	const struct ib_uverbs_attr *a = redirect.seen.attrs;
	char size[32];
	int fd;

	redirect.to = self->uv;
	fd = ibv_cmd_export_dmabuf_fd(self->ctx, self->resp.memory_offset);
	redirect.to = -1;
	ASSERT_LE(0, fd) TH_LOG("ibv_cmd_export_dmabuf_fd: %s", strerror(errno));

	EXPECT_EQ(UVERBS_OBJECT_DMABUF, redirect.seen.hdr.object_id);
	EXPECT_EQ(18, redirect.seen.hdr.object_id);
	EXPECT_EQ(UVERBS_METHOD_DMABUF_ALLOC, redirect.seen.hdr.method_id);
	ASSERT_EQ(2, redirect.seen.hdr.num_attrs);
	EXPECT_EQ(UVERBS_ATTR_ALLOC_DMABUF_HANDLE, a[0].attr_id);
	EXPECT_EQ(0, a[0].len) TH_LOG("the fd attribute carries no data in");
	EXPECT_EQ(UVERBS_ATTR_ALLOC_DMABUF_PGOFF, a[1].attr_id);
	EXPECT_EQ(8, a[1].len);
	EXPECT_EQ(self->resp.memory_offset, a[1].data)
		TH_LOG("the offset is the mmap() byte offset, inline");

	/* The kernel made a dma-buf of the memory entry from it. */
	lab_fdinfo(fd, "size", size, sizeof(size));
	EXPECT_EQ(self->resp.memory_len, strtoull(size, NULL, 0));
	close(fd);
}

/* rdma-core reports the kernel's errno as it is. */
TEST_F(rc, export_errors_reach_the_caller)
{
	redirect.to = self->uv;
	errno = 0;
	EXPECT_EQ(-1, ibv_cmd_export_dmabuf_fd(self->ctx, self->resp.doorbell_offset + 1));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, ibv_cmd_export_dmabuf_fd(self->ctx, self->resp.private_offset));
	EXPECT_EQ(EOPNOTSUPP, errno);
	redirect.to = -1;

	/* And on rxe itself, which cannot export: no such object. */
	errno = 0;
	EXPECT_EQ(-1, ibv_cmd_export_dmabuf_fd(self->ctx, 0));
	EXPECT_EQ(EPROTONOSUPPORT, errno);
}

TEST_HARNESS_MAIN
