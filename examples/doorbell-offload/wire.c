// SPDX-License-Identifier: GPL-2.0
/* RDMA and TCP helpers of the doorbell-offload example (see wire.h). */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include "wire.h"

/* Open RDMA device @dev (NULL: the first one), a PD and a CQ. 0 or -errno. */
int dbo_rdma_open(struct dbo_rdma *r, const char *dev, int gid_index)
{
	struct ibv_device **list;
	int i, n = 0;

	memset(r, 0, sizeof(*r));
	list = ibv_get_device_list(&n);
	if (!list)
		return -errno;
	for (i = 0; i < n && !r->ctx; i++)
		if (!dev || !strcmp(ibv_get_device_name(list[i]), dev))
			r->ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	if (!r->ctx)
		return -ENODEV;
	r->gid_index = gid_index;
	r->pd = ibv_alloc_pd(r->ctx);
	r->cq = ibv_create_cq(r->ctx, 256, NULL, NULL, 0);
	if (!r->pd || !r->cq || ibv_query_gid(r->ctx, 1, gid_index, &r->gid)) {
		dbo_rdma_close(r);
		return -EIO;
	}
	return 0;
}

void dbo_rdma_close(struct dbo_rdma *r)
{
	if (r->cq)
		ibv_destroy_cq(r->cq);
	if (r->pd)
		ibv_dealloc_pd(r->pd);
	if (r->ctx)
		ibv_close_device(r->ctx);
	memset(r, 0, sizeof(*r));
}

/* An RC QP in INIT that lets its peer read and write this end's MRs. */
struct ibv_qp *dbo_qp_create(struct dbo_rdma *r)
{
	struct ibv_qp_init_attr init = {
		.send_cq = r->cq, .recv_cq = r->cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 128, .max_recv_wr = 64,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				   IBV_ACCESS_REMOTE_READ,
	};
	struct ibv_qp *qp = ibv_create_qp(r->pd, &init);

	if (qp && ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)) {
		ibv_destroy_qp(qp);
		qp = NULL;
	}
	return qp;
}

/* Move @qp to RTS, connected to QP @qpn at @gid. 0 or -errno. */
int dbo_qp_connect(struct dbo_rdma *r, struct ibv_qp *qp, uint32_t qpn, const uint8_t gid[16])
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_RTR, .path_mtu = IBV_MTU_1024,
		.dest_qp_num = qpn, .max_dest_rd_atomic = 4, .min_rnr_timer = 12,
		.ah_attr = { .is_global = 1, .port_num = 1,
			     .grh = { .hop_limit = 1, .sgid_index = r->gid_index } },
	};

	memcpy(a.ah_attr.grh.dgid.raw, gid, 16);
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		return -errno;
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 17;		/* 0.5 s per try: a busy host is no error */
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 4;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			  IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC))
		return -errno;
	return 0;
}

/*
 * Wait up to @timeout_ms for one completion on @cq (busy polling: the
 * latency path). Its status, or -ETIMEDOUT, -EIO.
 */
int dbo_wait_wc(struct ibv_cq *cq, struct ibv_wc *wc, int timeout_ms)
{
	struct timespec t0, t;
	unsigned long spins = 0;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		n = ibv_poll_cq(cq, 1, wc);
		if (n < 0)
			return -EIO;
		if (n)
			return wc->status;
		if (++spins % 1024)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
			return -ETIMEDOUT;
	}
}

int dbo_tcp_listen(uint16_t port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				  .sin6_addr = IN6ADDR_ANY_INIT };
	int fd, one = 1;

	/* non-blocking: a connection aborted before accept() blocks nothing */
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4)) {
		close(fd);
		return -errno;
	}
	return fd;
}

int dbo_tcp_connect(const char *host, uint16_t port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char svc[8];
	int fd = -ECONNREFUSED, one = 1;

	snprintf(svc, sizeof(svc), "%u", port);
	if (getaddrinfo(host, svc, &hints, &res))
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		close(fd);
		fd = -errno;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/*
 * Read exactly @len bytes within @timeout_ms in all (< 0: no limit);
 * 0, -ETIMEDOUT, -ECONNRESET, -errno.
 */
int dbo_read_deadline(int fd, void *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct timespec t0, t;
	char *p = buf;
	ssize_t n;
	int left;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (len) {
		left = -1;
		if (timeout_ms >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			left = timeout_ms - (int)((t.tv_sec - t0.tv_sec) * 1000 +
						  (t.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0)
				return -ETIMEDOUT;
		}
		if (poll(&pfd, 1, left) <= 0)
			return -ETIMEDOUT;
		n = read(fd, p, len);
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		p += n;
		len -= n;
	}
	return 0;
}

int dbo_read_full(int fd, void *buf, size_t len)
{
	return dbo_read_deadline(fd, buf, len, -1);
}

int dbo_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n <= 0)
			return -errno;
		p += n;
		len -= n;
	}
	return 0;
}
