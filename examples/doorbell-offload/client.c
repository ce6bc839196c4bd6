// SPDX-License-Identifier: GPL-2.0
/*
 * nvme-offload-client: submit NVMe I/O to a remote controller through
 * RDMA alone (see README.md). For each command, on one QP and in this
 * order: RDMA WRITE of the payload into a CMB data slot, RDMA WRITE of the
 * 64-byte SQ entry into the CMB, RDMA WRITE of the new SQ tail (4 bytes)
 * into the doorbell. Then RDMA READs of the CQ entry until its phase tag
 * flips, and an RDMA WRITE of the new CQ head into the doorbell. The
 * target's CPU takes no part.
 *
 *   nvme-offload-client [-p PORT] [-d IBDEV] [-g GIDX] [-n COUNT] [-l LBA]
 *                       [-s SEED] [-r] [-S] [-w] [-B bad-tail|bad-db]
 *                       HOST
 *
 *   -n  commands (1); each writes one data slot (4 KiB) at block -l (0)
 *       onwards, payload pattern -s SEED (1): word i of block b is
 *       SEED * 0x01000193 ^ b * 0x9e3779b1 ^ i (32 bits, little-endian)
 *   -r  after each WRITE, READ the blocks back into the CMB and compare
 *       them there, by RDMA READ
 *   -S  stream: when a command fails (the target was reset), print
 *       "error ...", wait for a line on stdin, connect again and go on from
 *       the failed command with seed SEED + 1
 *   -X  with -S: before going on, try the failed command once more with the
 *       old connection's rkeys and queue state on the new QP, and print
 *       "stale ..." with how that ended (it must fail)
 *   -w  wait for a line on stdin after connecting, before any I/O, and
 *       again after the summary, before hanging up
 *   -B  misuse the doorbell after connecting: a tail beyond the queue
 *       (bad-tail), or a doorbell of a queue that does not exist (bad-db)
 *
 * In via-target mode (the target's -m) the client SENDs each SQ entry to
 * the target, which submits it and SENDs the completion back.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include "nvme.h"
#include "wire.h"

#define TIMEOUT_MS	30000

static struct {
	const char *host, *dev;
	unsigned int port, count, seed;
	int gidx;
	uint64_t lba0;
	bool readback, stream, wait_go, stale_probe;
	const char *misuse;
	/* the connection */
	struct dbo_rdma rdma;
	struct ibv_qp *qp;
	int fd;
	struct dbo_info in;
	uint16_t tail, head;
	uint8_t phase;
	const char *failed_op;	/* the operation a failed completion names */
	/* registered local memory */
	struct ibv_mr *mr;
	struct {
		uint8_t data[4096];
		uint8_t check[4096];
		struct nvme_sqe sqe;
		struct nvme_cqe cqe;
		uint32_t db;
		uint32_t db2;
	} *buf;
} c;

static const char *wc_name(int st)
{
	return st < 0 ? strerror(-st) : ibv_wc_status_str(st);
}

static uint32_t pattern_word(unsigned int seed, uint64_t block, uint32_t i)
{
	return seed * 0x01000193u ^ (uint32_t)block * 0x9e3779b1u ^ i;
}

static void fill(uint8_t *p, size_t len, unsigned int seed, uint64_t block, uint32_t bsize)
{
	uint32_t *w = (uint32_t *)p;
	size_t i;

	for (i = 0; i < len / 4; i++)
		w[i] = pattern_word(seed, block + i * 4 / bsize, i % (bsize / 4));
}

/*
 * Wait for the next completion; a failed one names its operation in
 * c.failed_op (the wr_id of every work request is its name).
 */
static int wait_wc(void)
{
	struct ibv_wc wc;
	int st = dbo_wait_wc(c.rdma.cq, &wc, TIMEOUT_MS);

	if (st > 0)
		c.failed_op = (const char *)(uintptr_t)wc.wr_id;
	return st;
}

/*
 * Post RDMA operation @name on the QP; signalled ones are waited for. An
 * unsignalled one that fails completes too, before the next signalled one.
 */
static int rdma_op(const char *name, enum ibv_wr_opcode op, void *local, uint32_t len,
		   const struct dbo_rbuf *rb, uint64_t off, bool signal)
{
	struct ibv_sge sge = { .addr = (uintptr_t)local, .length = len, .lkey = c.mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = (uintptr_t)name, .opcode = op, .sg_list = &sge, .num_sge = 1,
		.send_flags = signal ? IBV_SEND_SIGNALED : 0,
		.wr.rdma = { .remote_addr = rb->addr + off, .rkey = rb->rkey },
	}, *bad;

	if (ibv_post_send(c.qp, &wr, &bad))
		return -EIO;
	return signal ? wait_wc() : 0;
}

/* Destroy the QP and drop what its failure left in the CQ. */
static void disconnect(void)
{
	struct ibv_wc wc;

	if (c.qp)
		ibv_destroy_qp(c.qp);
	while (ibv_poll_cq(c.rdma.cq, 1, &wc) > 0)
		;
	if (c.fd >= 0)
		close(c.fd);
	c.qp = NULL;
	c.fd = -1;
}

static int connect_target(void)
{
	struct dbo_peer me = { .magic = DBO_MAGIC };
	char ok;
	int err;

	c.fd = dbo_tcp_connect(c.host, c.port);
	if (c.fd < 0)
		return c.fd;
	err = dbo_read_full(c.fd, &c.in, sizeof(c.in));
	if (err)
		return err;
	if (c.in.magic != DBO_MAGIC)
		return -EPROTO;
	c.qp = dbo_qp_create(&c.rdma);
	if (!c.qp)
		return -EIO;
	me.qpn = c.qp->qp_num;
	memcpy(me.gid, c.rdma.gid.raw, 16);
	err = dbo_qp_connect(&c.rdma, c.qp, c.in.qpn, c.in.gid);
	if (!err)
		err = dbo_write_full(c.fd, &me, sizeof(me));
	if (!err)
		err = dbo_read_full(c.fd, &ok, 1);
	if (err)
		return err;
	if (c.in.qsize < 2 || c.in.sq_tail >= c.in.qsize || c.in.cq_head >= c.in.qsize ||
	    !c.in.lba_size || !c.in.qid || !c.in.data_slot ||
	    c.in.data_slot > sizeof(c.buf->data) || c.in.data_slot % c.in.lba_size)
		return -EPROTO;
	c.tail = c.in.sq_tail;
	c.head = c.in.cq_head;
	c.phase = c.in.phase;
	printf("connected mode=%s generation=%u qsize=%u lba_size=%u nsze=%llu tail=%u phase=%u\n",
	       c.in.mode == DBO_OFFLOAD ? "offload" : "via-target", c.in.generation,
	       c.in.qsize, c.in.lba_size, (unsigned long long)c.in.nsze, c.tail, c.phase);
	return 0;
}

/* The data slot of the command about to go into SQ slot c.tail. */
static uint64_t slot_off(void)
{
	return c.in.data_off + (uint64_t)c.tail * c.in.data_slot;
}

/* Offload: SQ entry and doorbell by RDMA WRITE, completion by RDMA READ. */
static int offload_cmd(struct nvme_sqe *sqe, struct nvme_cqe *out)
{
	struct timespec t0, t;
	int st;

	c.buf->sqe = *sqe;
	st = rdma_op("sq-entry", IBV_WR_RDMA_WRITE, &c.buf->sqe, sizeof(*sqe), &c.in.cmb,
		     c.in.sq_off + (uint64_t)c.tail * sizeof(*sqe), false);
	if (st)
		return st;
	c.tail = (c.tail + 1) % c.in.qsize;
	c.buf->db = c.tail;
	/* the doorbell last: the SQ entry is in place when it rings */
	st = rdma_op("sq-doorbell", IBV_WR_RDMA_WRITE, &c.buf->db, 4, &c.in.db, c.in.sq_db_off,
		     true);
	if (st)
		return st;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		st = rdma_op("cq-entry", IBV_WR_RDMA_READ, &c.buf->cqe, sizeof(c.buf->cqe),
			     &c.in.cq, (uint64_t)c.head * sizeof(struct nvme_cqe), true);
		if (st)
			return st;
		if (NVME_CQE_PHASE(&c.buf->cqe) == c.phase)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > TIMEOUT_MS / 1000)
			return -ETIMEDOUT;
	}
	*out = c.buf->cqe;
	if (out->cid != sqe->cid || out->sqid != c.in.qid) {
		printf("foreign completion cid=%u sqid=%u (want %u, %u)\n", out->cid, out->sqid,
		       sqe->cid, c.in.qid);
		return -EPROTO;
	}
	if (++c.head == c.in.qsize) {
		c.head = 0;
		c.phase ^= 1;
	}
	c.buf->db2 = c.head;
	return rdma_op("cq-doorbell", IBV_WR_RDMA_WRITE, &c.buf->db2, 4, &c.in.db,
		       c.in.cq_db_off, true);
}

/* Via the target: SEND the SQ entry, receive the completion. */
static int via_target_cmd(struct nvme_sqe *sqe, struct nvme_cqe *out)
{
	struct ibv_sge rsge = {
		.addr = (uintptr_t)&c.buf->cqe, .length = sizeof(c.buf->cqe), .lkey = c.mr->lkey,
	};
	struct ibv_recv_wr rwr = {
		.wr_id = (uintptr_t)"recv", .sg_list = &rsge, .num_sge = 1,
	}, *rbad;
	struct ibv_sge ssge = {
		.addr = (uintptr_t)&c.buf->sqe, .length = sizeof(*sqe), .lkey = c.mr->lkey,
	};
	struct ibv_send_wr swr = {
		.wr_id = (uintptr_t)"send", .opcode = IBV_WR_SEND, .sg_list = &ssge,
		.num_sge = 1, .send_flags = IBV_SEND_SIGNALED,
	}, *sbad;
	int st, i;

	if (ibv_post_recv(c.qp, &rwr, &rbad))
		return -EIO;
	c.buf->sqe = *sqe;
	if (ibv_post_send(c.qp, &swr, &sbad))
		return -EIO;
	/* two completions: the SEND's, then the RECV of the answer */
	for (i = 0; i < 2; i++) {
		st = wait_wc();
		if (st)
			return st;
	}
	*out = c.buf->cqe;
	c.tail = (c.tail + 1) % c.in.qsize;
	return 0;
}

/* Run one read or write of the data slot at block @lba; 0 or an error. */
static int io_cmd(uint8_t opcode, uint64_t lba)
{
	uint32_t nlb = c.in.data_slot / c.in.lba_size;
	struct nvme_sqe sqe = {
		.opcode = opcode, .cid = c.in.cid_base | c.tail, .nsid = 1,
		.prp1 = c.in.cmb_addr + slot_off(),
		.cdw10 = (uint32_t)lba, .cdw11 = (uint32_t)(lba >> 32), .cdw12 = nlb - 1,
	};
	struct nvme_cqe cqe;
	int st;

	st = c.in.mode == DBO_OFFLOAD ? offload_cmd(&sqe, &cqe) : via_target_cmd(&sqe, &cqe);
	if (st)
		return st;
	if (NVME_CQE_SF(&cqe)) {
		printf("nvme-status lba=%llu opcode=%u sf=0x%x\n", (unsigned long long)lba,
		       opcode, NVME_CQE_SF(&cqe));
		return -EIO;
	}
	return 0;
}

/* Command @seq: write its blocks, and read them back with -r. */
static int one(unsigned int seq, unsigned int seed)
{
	uint32_t nlb = c.in.data_slot / c.in.lba_size;
	uint64_t lba = c.lba0 + (uint64_t)seq * nlb;
	uint64_t off;
	int st;

	fill(c.buf->data, c.in.data_slot, seed, lba, c.in.lba_size);
	st = rdma_op("payload", IBV_WR_RDMA_WRITE, c.buf->data, c.in.data_slot, &c.in.cmb,
		     slot_off(), false);
	if (st)
		return st;
	st = io_cmd(NVME_CMD_WRITE, lba);
	if (st || !c.readback)
		return st;
	/* spoil the slot the read lands in, read, fetch and compare */
	off = slot_off();
	memset(c.buf->check, 0xee, c.in.data_slot);
	st = rdma_op("spoil", IBV_WR_RDMA_WRITE, c.buf->check, c.in.data_slot, &c.in.cmb, off,
		     false);
	if (!st)
		st = io_cmd(NVME_CMD_READ, lba);
	if (!st)
		st = rdma_op("read-data", IBV_WR_RDMA_READ, c.buf->check, c.in.data_slot,
			     &c.in.cmb, off, true);
	if (st)
		return st;
	if (memcmp(c.buf->check, c.buf->data, c.in.data_slot)) {
		printf("mismatch lba=%llu: read back differs from what was written\n",
		       (unsigned long long)lba);
		return -EILSEQ;
	}
	return 0;
}

static void wait_line(const char *what)
{
	char line[64];

	printf("waiting for=%s\n", what);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		exit(3);
}

static int misuse(void)
{
	uint32_t stride = c.in.db_stride;
	uint32_t off = c.in.sq_db_off;
	int st;

	if (!strcmp(c.misuse, "bad-tail")) {
		c.buf->db = c.in.qsize + 3;	/* beyond the queue */
	} else if (!strcmp(c.misuse, "bad-db")) {
		c.buf->db = 1;
		/* SQ 7's tail (no such queue), if it is on the exported page */
		off = c.in.sq_db_off + 2 * (7 - c.in.qid) * stride;
		if (off + 4 > c.in.db.len) {
			fprintf(stderr, "nvme-offload-client: SQ 7's doorbell is off the page\n");
			return -ERANGE;
		}
	} else {
		fprintf(stderr, "nvme-offload-client: -B takes bad-tail or bad-db\n");
		return -EINVAL;
	}
	st = rdma_op("misuse", IBV_WR_RDMA_WRITE, &c.buf->db, 4, &c.in.db, off, true);
	printf("misuse kind=%s value=%u db_off=0x%x wc=%s\n", c.misuse, c.buf->db, off,
	       wc_name(st));
	return st;
}

int main(int argc, char **argv)
{
	unsigned int seq, done = 0, failed = 0, reconnects = 0, seed;
	uint16_t old_tail, old_head;
	struct dbo_info old;
	uint8_t old_phase;
	struct timespec t0, t1;
	int opt, err, st = 0;
	double secs;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	c.port = DBO_PORT;
	c.count = 1;
	c.seed = 1;
	c.fd = -1;
	while ((opt = getopt(argc, argv, "p:d:g:n:l:s:rSXwB:")) != -1) {
		switch (opt) {
		case 'p':
			c.port = atoi(optarg);
			break;
		case 'd':
			c.dev = optarg;
			break;
		case 'g':
			c.gidx = atoi(optarg);
			break;
		case 'n':
			c.count = strtoul(optarg, NULL, 0);
			break;
		case 'l':
			c.lba0 = strtoull(optarg, NULL, 0);
			break;
		case 's':
			c.seed = strtoul(optarg, NULL, 0);
			break;
		case 'r':
			c.readback = true;
			break;
		case 'S':
			c.stream = true;
			break;
		case 'X':
			c.stale_probe = true;
			break;
		case 'w':
			c.wait_go = true;
			break;
		case 'B':
			c.misuse = optarg;
			break;
		default:
			fprintf(stderr, "usage: nvme-offload-client [-p PORT] [-d IBDEV] [-g GIDX] "
				"[-n COUNT] [-l LBA] [-s SEED] [-r] [-S [-X]] [-w] "
				"[-B bad-tail|bad-db] HOST\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "nvme-offload-client: the target's host name is needed\n");
		return 2;
	}
	c.host = argv[optind];
	err = dbo_rdma_open(&c.rdma, c.dev, c.gidx);
	if (err) {
		fprintf(stderr, "nvme-offload-client: RDMA device: %s\n", strerror(-err));
		return 1;
	}
	c.buf = mmap(NULL, sizeof(*c.buf), PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c.buf == MAP_FAILED)
		return 1;
	c.mr = ibv_reg_mr(c.rdma.pd, c.buf, sizeof(*c.buf), IBV_ACCESS_LOCAL_WRITE);
	err = c.mr ? connect_target() : -errno;
	if (err) {
		fprintf(stderr, "nvme-offload-client: connecting to %s: %s\n", c.host,
			strerror(-err));
		return 1;
	}
	if (c.lba0 + (uint64_t)c.count * (c.in.data_slot / c.in.lba_size) > c.in.nsze) {
		fprintf(stderr, "nvme-offload-client: blocks beyond the namespace\n");
		return 1;
	}
	if (c.wait_go)
		wait_line("go");
	if (c.misuse) {
		st = misuse();
		if (st)
			return 1;
	}
	seed = c.seed;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (seq = 0; seq < c.count; seq++) {
		c.failed_op = NULL;
		st = one(seq, seed);
		if (!st) {
			done++;
			if (c.stream && done == 8)
				printf("streaming completed=%u\n", done);
			continue;
		}
		failed++;
		printf("error seq=%u op=%s status=%s completed=%u\n", seq,
		       c.failed_op ?: st == -ETIMEDOUT ? "cq-entry" : "nvme", wc_name(st), done);
		if (!c.stream)
			break;
		/* the target reset its controller: resume on a new QP */
		old = c.in;
		old_tail = c.tail;
		old_head = c.head;
		old_phase = c.phase;
		disconnect();
		wait_line("resume");
		err = connect_target();
		if (!err && c.stale_probe) {
			/* what a client that missed the reset would do */
			c.in.cmb = old.cmb;
			c.in.db = old.db;
			c.in.cq = old.cq;
			c.tail = old_tail;
			c.head = old_head;
			c.phase = old_phase;
			c.failed_op = NULL;
			st = one(seq, seed);
			printf("stale op=%s status=%s\n", c.failed_op ?: "none", wc_name(st));
			disconnect();
			err = connect_target();
		}
		if (err) {
			printf("reconnect failed: %s\n", strerror(-err));
			break;
		}
		reconnects++;
		seed = c.seed + 1;
		seq--;	/* again, on the new queues */
		if (reconnects > 4)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("summary completed=%u failed=%u reconnects=%u generation=%u seconds=%.3f "
	       "cmds_per_s=%.1f\n", done, failed, reconnects, c.in.generation, secs,
	       secs > 0 ? done / secs : 0.0);
	if (c.wait_go)
		wait_line("end");
	disconnect();
	ibv_dereg_mr(c.mr);
	dbo_rdma_close(&c.rdma);
	return done == c.count && (c.stream || !failed) ? 0 : 1;
}
