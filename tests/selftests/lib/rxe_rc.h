/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A loopback RC QP pair on the lab's Soft-RoCE device (rxe0 over eth0,
 * added when missing), for the RDMA kselftests and tools: qa sends, qb
 * receives, both on one PD, addressed by GID 0 (the interface's IPv6
 * link-local address), so nothing leaves QEMU. Functions return 0 (or a
 * completion status) or -errno / -1.
 */
#ifndef P2P_RXE_RC_H
#define P2P_RXE_RC_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <infiniband/verbs.h>

/* What the QPs allow their peer: every remote access rxe has. */
#define RC_ACCESS	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
			 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC)

/* Loopback RC pair on rxe0; qa sends, qb receives. */
struct rc {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;	/* qa's completions */
	struct ibv_cq *rcq;	/* qb's completions */
	struct ibv_qp *qa, *qb;
	union ibv_gid gid;
};

static inline int rxe_up(void)
{
	struct ibv_device **l;
	int n = 0;

	l = ibv_get_device_list(&n);
	if (l)
		ibv_free_device_list(l);
	if (n > 0)
		return 0;
	if (system("ip link set eth0 up && rdma link add rxe0 type rxe netdev eth0"))
		return -ENODEV;
	return 0;
}

static inline struct ibv_qp *rc_qp(struct rc *rc, struct ibv_cq *cq)
{
	struct ibv_qp_init_attr init = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 64, .max_recv_wr = 64,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = RC_ACCESS,
	};
	struct ibv_qp *qp = ibv_create_qp(rc->pd, &init);

	if (qp && ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)) {
		ibv_destroy_qp(qp);
		qp = NULL;
	}
	return qp;
}

static inline int rc_connect(struct rc *rc, struct ibv_qp *qp, uint32_t dest)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_RTR, .path_mtu = IBV_MTU_1024,
		.dest_qp_num = dest, .max_dest_rd_atomic = 4, .min_rnr_timer = 12,
		.ah_attr = { .is_global = 1, .port_num = 1,
			     .grh = { .dgid = rc->gid, .hop_limit = 1 } },
	};

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		return -errno;
	a.qp_state = IBV_QPS_RTS;
	/* 0.5 s per try (4.096 us << 17), 4 s in all: a busy host, not a hang */
	a.timeout = 17;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 4;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			  IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC))
		return -errno;
	return 0;
}

/* (Re)create and connect the QP pair. 0 or -errno. */
static inline int rc_pair(struct rc *rc)
{
	if (rc->qa)
		ibv_destroy_qp(rc->qa);
	if (rc->qb)
		ibv_destroy_qp(rc->qb);
	rc->qa = rc_qp(rc, rc->cq);
	rc->qb = rc_qp(rc, rc->rcq);
	if (!rc->qa || !rc->qb)
		return -errno;
	if (rc_connect(rc, rc->qa, rc->qb->qp_num) ||
	    rc_connect(rc, rc->qb, rc->qa->qp_num))
		return -errno;
	return 0;
}

/* Wait for one completion on @cq; its status, or -1. */
static inline int rc_wait(struct ibv_cq *cq, struct ibv_wc *wc)
{
	int n, i;

	for (i = 0; i < 20000000; i++) {
		n = ibv_poll_cq(cq, 1, wc);
		if (n)
			return n < 0 ? -1 : (int)wc->status;
		if (i > 1000)
			usleep(100);
	}
	return -1;
}

/* One signalled work request on qa; the completion's status. */
static inline int rc_post(struct rc *rc, enum ibv_wr_opcode op, struct ibv_mr *mr, void *laddr,
		   uint64_t raddr, uint32_t rkey, uint32_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)laddr, .length = len, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.opcode = op, .sg_list = &sge, .num_sge = 1,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = raddr, .rkey = rkey },
	}, *bad;
	struct ibv_wc wc;

	if (ibv_post_send(rc->qa, &wr, &bad))
		return -1;
	return rc_wait(rc->cq, &wc);
}

static inline int qp_state(struct ibv_qp *qp)
{
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr a;

	return ibv_query_qp(qp, &a, IBV_QP_STATE, &init) ? -1 : (int)a.qp_state;
}

/* The QP's state once it is @want, or after 30 s; rxe moves it after the CQE. */
static inline int qp_state_reaches(struct ibv_qp *qp, int want)
{
	int i, st = -1;

	for (i = 0; i < 30000 && st != want; i++) {
		st = qp_state(qp);
		if (st != want)
			usleep(1000);
	}
	return st;
}

/* Close what rc_open() made (any part of it). */
static inline void rc_close(struct rc *rc)
{
	if (rc->qa)
		ibv_destroy_qp(rc->qa);
	if (rc->qb)
		ibv_destroy_qp(rc->qb);
	if (rc->cq)
		ibv_destroy_cq(rc->cq);
	if (rc->rcq)
		ibv_destroy_cq(rc->rcq);
	if (rc->pd)
		ibv_dealloc_pd(rc->pd);
	if (rc->ctx)
		ibv_close_device(rc->ctx);
	memset(rc, 0, sizeof(*rc));
}

/* Open the first RDMA device (adding rxe0 if there is none) and a pair. */
static inline int rc_open(struct rc *rc)
{
	struct ibv_device **l;
	int err;

	memset(rc, 0, sizeof(*rc));
	err = rxe_up();
	if (err)
		return err;
	l = ibv_get_device_list(NULL);
	if (!l)
		return -errno;
	if (l[0])
		rc->ctx = ibv_open_device(l[0]);
	ibv_free_device_list(l);
	if (!rc->ctx)
		return -ENODEV;
	rc->pd = ibv_alloc_pd(rc->ctx);
	rc->cq = ibv_create_cq(rc->ctx, 128, NULL, NULL, 0);
	rc->rcq = ibv_create_cq(rc->ctx, 128, NULL, NULL, 0);
	if (!rc->pd || !rc->cq || !rc->rcq)
		goto fail;
	if (ibv_query_gid(rc->ctx, 1, 0, &rc->gid))
		goto fail;
	err = rc_pair(rc);
	if (err)
		goto fail_err;
	return 0;
fail:
	err = errno ? -errno : -ENOMEM;
fail_err:
	rc_close(rc);
	return err;
}

#endif /* P2P_RXE_RC_H */
