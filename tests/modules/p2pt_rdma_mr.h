/* SPDX-License-Identifier: GPL-2.0 */
/* p2p_test_rdma's MRs (p2pt_rdma_mr.c), for its ib_device_ops. */
#ifndef P2PT_RDMA_MR_H
#define P2PT_RDMA_MR_H

#include <rdma/ib_verbs.h>

struct dentry;

struct p2pt_rdma_pd {
	struct ib_pd ibpd;
};

int p2pt_rdma_alloc_pd(struct ib_pd *pd, struct ib_udata *udata);
int p2pt_rdma_dealloc_pd(struct ib_pd *pd, struct ib_udata *udata);
struct ib_mr *p2pt_rdma_reg_user_mr_dmabuf(struct ib_pd *pd, u64 offset,
					   u64 length, u64 virt_addr, int fd,
					   int access,
					   struct uverbs_attr_bundle *attrs);
int p2pt_rdma_dereg_mr(struct ib_mr *ibmr, struct ib_udata *udata);
void p2pt_rdma_mr_debugfs_init(struct dentry *dir);

/* In p2pt_rdma.c. */
struct device *p2pt_rdma_data_direct(struct ib_device *ibdev);

#endif /* P2PT_RDMA_MR_H */
