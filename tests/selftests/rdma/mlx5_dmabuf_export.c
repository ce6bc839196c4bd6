// SPDX-License-Identifier: GPL-2.0
/*
 * mlx5 exports its own pages as dma-bufs (UVERBS_OBJECT_DMABUF), through
 * rdma-core: a UAR doorbell page (mlx5dv_devx_uar_export_dmabuf_fd()) and
 * MEMIC device memory (ibv_dm_export_dmabuf_fd()). Needs a ConnectX device
 * with device memory; skips where there is none, as in the QEMU lab.
 *
 * - Both exports give a dma-buf of the object's pages.
 * - The device memory's dma-buf is registered as an MR on another
 *   ucontext of the same device (mlx5 as importer).
 * - Destroying the exporting ucontext revokes the dma-bufs: registering
 *   them again fails with ENODEV, and the existing MR can still be
 *   deregistered.
 *
 * Optionally, with P2PT_HW_IMPORTER=<BDF> of a device bound to the test
 * importer (p2p_test_importer), the dma-bufs are imported and mapped
 * there as well, and the revoke is seen as one move_notify.
 */
#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>
#include "kselftest_harness.h"
#include "p2pt.h"

#define DM_LEN	4096

static struct ibv_device *find_mlx5(struct ibv_device **list, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (mlx5dv_is_supported(list[i]))
			return list[i];
	return NULL;
}

/* The size of dma-buf @fd, from fdinfo; -1 if unknown. */
static long fdinfo_size(int fd)
{
	char size[32];

	lab_fdinfo(fd, "size", size, sizeof(size));
	return size[0] ? strtol(size, NULL, 0) : -1;
}

FIXTURE(mlx5) {
	struct ibv_device **list;
	struct ibv_context *exp, *imp;	/* exporting, importing ucontexts */
	struct ibv_pd *pd;		/* on @imp */
};

FIXTURE_SETUP(mlx5)
{
	struct ibv_device *dev;
	int n = 0;

	self->list = ibv_get_device_list(&n);
	dev = self->list ? find_mlx5(self->list, n) : NULL;
	if (!dev)
		SKIP(return, "no mlx5 device (needs a ConnectX NIC; the lab has none)");
	self->exp = ibv_open_device(dev);
	self->imp = ibv_open_device(dev);
	ASSERT_NE(NULL, self->exp);
	ASSERT_NE(NULL, self->imp);
	self->pd = ibv_alloc_pd(self->imp);
	ASSERT_NE(NULL, self->pd);
}

FIXTURE_TEARDOWN(mlx5)
{
	if (self->pd)
		ibv_dealloc_pd(self->pd);
	if (self->imp)
		ibv_close_device(self->imp);
	if (self->exp)
		ibv_close_device(self->exp);
	if (self->list)
		ibv_free_device_list(self->list);
}

TEST_F(mlx5, uar_and_memic_export_import_revoke)
{
	struct ibv_alloc_dm_attr dm_attr = { .length = DM_LEN };
	const char *imp_bdf = getenv("P2PT_HW_IMPORTER");
	int uar_fd, dm_fd, dev = -1, h = 0;
	struct mlx5dv_devx_uar *uar;
	struct p2pt_status st;
	struct p2pt_map m;
	struct ibv_mr *mr;
	struct ibv_dm *dm;

	uar = mlx5dv_devx_alloc_uar(self->exp, MLX5DV_UAR_ALLOC_TYPE_NC);
	ASSERT_NE(NULL, uar) TH_LOG("mlx5dv_devx_alloc_uar: %s", strerror(errno));
	uar_fd = mlx5dv_devx_uar_export_dmabuf_fd(uar);
	if (uar_fd < 0 && errno == EPROTONOSUPPORT)
		SKIP(return, "this kernel has no UVERBS_OBJECT_DMABUF");
	ASSERT_LE(0, uar_fd) TH_LOG("UAR export: %s", strerror(errno));
	EXPECT_EQ(sysconf(_SC_PAGESIZE), fdinfo_size(uar_fd));

	dm = ibv_alloc_dm(self->exp, &dm_attr);
	if (!dm)
		SKIP(return, "no MEMIC device memory on this device: %s", strerror(errno));
	dm_fd = ibv_dm_export_dmabuf_fd(dm);
	ASSERT_LE(0, dm_fd) TH_LOG("MEMIC export: %s", strerror(errno));
	EXPECT_LE(DM_LEN, fdinfo_size(dm_fd));

	/* mlx5 imports its own device memory on another ucontext. */
	mr = ibv_reg_dmabuf_mr(self->pd, 0, DM_LEN, 0, dm_fd,
			       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr of MEMIC: %s", strerror(errno));

	if (imp_bdf) {
		dev = p2pt_dev_open();
		ASSERT_LE(0, dev);
		h = p2pt_import(dev, imp_bdf, dm_fd, P2PT_IMPORT_DYNAMIC, 0);
		ASSERT_LT(0, h) TH_LOG("test importer: %s", strerror(-h));
		ASSERT_EQ(0, p2pt_map(dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	}

	/* Destroying the exporting ucontext revokes both dma-bufs. */
	ibv_close_device(self->exp);
	self->exp = NULL;
	EXPECT_EQ(NULL, ibv_reg_dmabuf_mr(self->pd, 0, DM_LEN, 0, dm_fd,
					  IBV_ACCESS_LOCAL_WRITE));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(0, ibv_dereg_mr(mr));
	if (imp_bdf) {
		ASSERT_EQ(0, p2pt_status(dev, h, &st));
		EXPECT_EQ(1, st.move_notify_count);
		EXPECT_FALSE(st.flags & P2PT_STATUS_MAPPED);
		EXPECT_EQ(-ENODEV, p2pt_map(dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
		close(dev);
	}
	close(dm_fd);
	close(uar_fd);
}

TEST_HARNESS_MAIN
