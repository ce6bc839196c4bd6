/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The side channel between target and client (TCP), and the RDMA helpers
 * both use. On connect the target sends struct dbo_info, the client
 * answers with struct dbo_peer, and both move their QPs to RTS. Then the
 * TCP connection only says that the client is still there; in via-target
 * mode the client's commands and their completions travel as RDMA SENDs.
 * Both ends are little-endian and run this same code.
 */
#ifndef DBO_WIRE_H
#define DBO_WIRE_H

#include <stdint.h>
#include <infiniband/verbs.h>

#define DBO_MAGIC	0x44424f31	/* "DBO1" */
#define DBO_PORT	18515

enum dbo_mode {
	DBO_OFFLOAD = 1,	/* the client writes SQ entries and doorbells */
	DBO_VIA_TARGET = 2,	/* the client SENDs commands, the target submits */
};

/* A remote buffer: where, and with which rkey. */
struct dbo_rbuf {
	uint64_t addr;
	uint32_t rkey;
	uint32_t len;
};

struct dbo_info {
	uint32_t magic;
	uint32_t mode;		/* enum dbo_mode */
	uint32_t qpn;
	uint32_t generation;	/* controller bring-ups; a reset adds one */
	uint8_t gid[16];
	uint16_t qsize;		/* I/O SQ and CQ entries */
	uint16_t qid;
	uint32_t lba_size;
	uint64_t nsze;		/* namespace 1, in blocks */
	uint64_t cmb_addr;	/* controller address of CMB offset 0 (PRPs) */
	uint64_t sq_off;	/* CMB offset of the I/O SQ */
	uint64_t data_off;	/* CMB offset of data slot 0 */
	uint32_t data_slot;	/* bytes per data slot (one per SQ entry) */
	uint32_t sq_db_off;	/* offsets in the doorbell buffer */
	uint32_t cq_db_off;
	uint16_t sq_tail;	/* where the client starts: the queue is idle */
	uint16_t cq_head;
	uint8_t phase;		/* phase tag of the next completion */
	uint8_t pad;
	uint16_t cid_base;	/* the client's command ids: cid_base | SQ slot */
	uint32_t db_stride;	/* bytes between doorbells (4 << CAP.DSTRD) */
	/*
	 * The CMB (dma-buf MR; via-target: its data slots only), the doorbell
	 * page (dma-buf MR) and the I/O CQ (host memory MR); via-target
	 * clients get neither of the last two.
	 */
	struct dbo_rbuf cmb;
	struct dbo_rbuf db;
	struct dbo_rbuf cq;
};

_Static_assert(sizeof(struct dbo_info) == 144, "no implicit padding on the wire");

struct dbo_peer {
	uint32_t magic;
	uint32_t qpn;
	uint8_t gid[16];
};

/* RDMA resources of one end */
struct dbo_rdma {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	int gid_index;
	union ibv_gid gid;
};

int dbo_rdma_open(struct dbo_rdma *r, const char *dev, int gid_index);
void dbo_rdma_close(struct dbo_rdma *r);
struct ibv_qp *dbo_qp_create(struct dbo_rdma *r);
int dbo_qp_connect(struct dbo_rdma *r, struct ibv_qp *qp, uint32_t qpn, const uint8_t gid[16]);
int dbo_wait_wc(struct ibv_cq *cq, struct ibv_wc *wc, int timeout_ms);

int dbo_tcp_listen(uint16_t port);
int dbo_tcp_connect(const char *host, uint16_t port);
int dbo_read_full(int fd, void *buf, size_t len);
int dbo_read_deadline(int fd, void *buf, size_t len, int timeout_ms);
int dbo_write_full(int fd, const void *buf, size_t len);

#endif /* DBO_WIRE_H */
