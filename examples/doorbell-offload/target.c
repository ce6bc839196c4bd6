// SPDX-License-Identifier: GPL-2.0
/*
 * nvme-offload-target: claim an NVMe controller through VFIO, put its I/O
 * submission queue in the CMB, export the CMB and the doorbell page as
 * dma-bufs, register them as RDMA MRs (the completion queue too, as plain
 * host memory), hand the rkeys to each client that connects, and sleep:
 * the clients submit I/O themselves (see README.md).
 *
 *   nvme-offload-target [-p PORT] [-q QSIZE] [-d IBDEV] [-g GIDX]
 *                       [-m offload|via-target] [-n] BDF
 *
 *   -p  TCP port of the side channel (18515)
 *   -q  I/O queue entries, 2 to 64 (16)
 *   -d  RDMA device (the first); -g its GID index (0)
 *   -m  offload: clients write SQ entries and doorbells (default);
 *       via-target: clients SEND commands and this process submits them
 *       (the baseline the offload is measured against)
 *   -n  no RDMA: set up and export only, for a local DMA engine that
 *       takes the dma-buf fds from this process (pidfd_getfd())
 *
 * Signals: SIGUSR1 resets the controller (VFIO_DEVICE_RESET: an FLR, which
 * revokes the dma-bufs while it runs), invalidates the old rkeys and
 * brings the controller up again; SIGHUP turns the device's memory
 * decoding off (the dma-bufs stay revoked, the MRs and the controller's
 * state stay) or on again; SIGUSR2 collects asynchronous events (doorbell
 * misuse); SIGTERM and SIGINT end it. Each step prints one line of
 * "key=value" words: "ready ...", "reset ...", "memory ...", "event ...",
 * "stats ...".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include "ctrl.h"
#include "wire.h"

#define MAX_CLIENTS	8
#define RECV_DEPTH	16

struct client {
	int fd;
	struct ibv_qp *qp;
};

static struct {
	struct dbo_ctrl ctrl;
	enum dbo_mode mode;
	bool rdma_on;
	struct dbo_rdma rdma;
	uint16_t qsize;
	int cmb_fd, db_fd, sfd;
	uint64_t cmb_len;
	uint32_t db_page;	/* BAR 0 offset of the exported doorbell page */
	unsigned int connections;
	struct ibv_mr *cmb_mr, *db_mr, *cq_mr, *msg_mr;
	struct client cl[MAX_CLIENTS];
	/* via-target: receive slots for commands, one for the completion */
	struct nvme_sqe cmds[RECV_DEPTH];
	struct nvme_cqe cqe;
} t;

static void die(const char *what, int err)
{
	fprintf(stderr, "nvme-offload-target: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void dereg_mrs(void)
{
	struct ibv_mr **mr[] = { &t.cmb_mr, &t.db_mr, &t.cq_mr };
	unsigned int i;

	for (i = 0; i < sizeof(mr) / sizeof(mr[0]); i++) {
		if (*mr[i])
			ibv_dereg_mr(*mr[i]);
		*mr[i] = NULL;
	}
}

/* The CMB and doorbell dma-bufs and the I/O CQ as MRs: new rkeys each time. */
static int reg_mrs(void)
{
	int rw = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;

	if (t.mode == DBO_VIA_TARGET) {
		/* the data slots only: the SQ and the doorbells stay this process's */
		t.cmb_mr = ibv_reg_dmabuf_mr(t.rdma.pd, DBO_DATA_OFF, t.cmb_len - DBO_DATA_OFF,
					     DBO_DATA_OFF, t.cmb_fd, rw);
		return t.cmb_mr ? 0 : -errno;
	}
	t.cmb_mr = ibv_reg_dmabuf_mr(t.rdma.pd, 0, t.cmb_len, 0, t.cmb_fd, rw);
	if (!t.cmb_mr)
		return -errno;
	t.db_mr = ibv_reg_dmabuf_mr(t.rdma.pd, 0, DBO_PAGE, 0, t.db_fd,
				    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!t.db_mr)
		return -errno;
	t.cq_mr = ibv_reg_mr(t.rdma.pd, (void *)t.ctrl.io.cq,
			     t.qsize * sizeof(struct nvme_cqe), IBV_ACCESS_REMOTE_READ);
	return t.cq_mr ? 0 : -errno;
}

static void print_ready(void)
{
	struct dbo_ctrl *c = &t.ctrl;

	printf("ready pid=%d generation=%u cmb_fd=%d db_fd=%d cq_addr=0x%lx cq_len=%zu "
	       "cmb_addr=0x%llx cmb_bar=%u cmb_off=0x%llx cmb_len=0x%llx sq_off=0x%llx "
	       "data_off=0x%x data_slot=%u qsize=%u qid=%u sq_db=0x%x cq_db=0x%x "
	       "lba_size=%u nsze=%llu\n",
	       getpid(), c->generation, t.cmb_fd, t.db_fd, (unsigned long)c->io.cq,
	       t.qsize * sizeof(struct nvme_cqe), (unsigned long long)c->cmb_addr,
	       c->cmb_bar, (unsigned long long)c->cmb_off, (unsigned long long)t.cmb_len,
	       (unsigned long long)c->io_sq_off, DBO_DATA_OFF, DBO_DATA_SLOT, t.qsize,
	       DBO_IO_QID, nvme_sq_db(DBO_IO_QID, c->dstrd) - t.db_page,
	       nvme_cq_db(DBO_IO_QID, c->dstrd) - t.db_page, c->lba_size,
	       (unsigned long long)c->nsze);
}

static void drop_client(struct client *cl)
{
	if (cl->qp)
		ibv_destroy_qp(cl->qp);
	if (cl->fd >= 0)
		close(cl->fd);
	cl->qp = NULL;
	cl->fd = -1;
}

static int post_recv(struct client *cl, unsigned int i)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)&t.cmds[i], .length = sizeof(t.cmds[i]),
		.lkey = t.msg_mr->lkey,
	};
	struct ibv_recv_wr wr = { .wr_id = i, .sg_list = &sge, .num_sge = 1 }, *bad;

	return ibv_post_recv(cl->qp, &wr, &bad) ? -EIO : 0;
}

/*
 * A client's command, checked before this process submits it: a read or
 * write of namespace 1 whose data is one of the CMB's data slots. Anything
 * else would let the client make the controller DMA where it likes.
 */
static bool command_ok(const struct nvme_sqe *cmd)
{
	uint64_t lo = t.ctrl.cmb_addr + DBO_DATA_OFF;
	uint32_t blocks = (cmd->cdw12 & 0xffff) + 1;
	uint64_t slba = cmd->cdw10 | (uint64_t)cmd->cdw11 << 32;

	if (cmd->opcode != NVME_CMD_READ && cmd->opcode != NVME_CMD_WRITE)
		return false;
	/* no metadata pointer, no protection information or other CDW12 flags */
	if (cmd->nsid != 1 || cmd->flags || cmd->mptr || cmd->cdw12 >> 16 || cmd->prp1 < lo ||
	    cmd->prp1 % DBO_DATA_SLOT || cmd->prp1 - lo >= (uint64_t)t.qsize * DBO_DATA_SLOT)
		return false;
	return (uint64_t)blocks * t.ctrl.lba_size <= DBO_DATA_SLOT &&
	       slba < t.ctrl.nsze && blocks <= t.ctrl.nsze - slba;
}

/*
 * via-target: take commands as they arrive, submit each through this
 * process and SEND its completion back, until the client hangs up or a
 * signal comes (left for the main loop).
 */
static void serve_via_target(struct client *cl)
{
	struct pollfd pfd[2] = {
		{ .fd = cl->fd, .events = POLLIN }, { .fd = t.sfd, .events = POLLIN },
	};
	struct ibv_sge sge = {
		.addr = (uintptr_t)&t.cqe, .length = sizeof(t.cqe), .lkey = t.msg_mr->lkey,
	};
	struct ibv_send_wr wr = {
		.opcode = IBV_WR_SEND, .sg_list = &sge, .num_sge = 1,
		.send_flags = IBV_SEND_SIGNALED,
	}, *bad;
	unsigned long spins = 0;
	struct ibv_wc wc;
	int n, err;

	for (;;) {
		n = ibv_poll_cq(t.rdma.cq, 1, &wc);
		if (n < 0)
			return;
		if (n && wc.qp_num != cl->qp->qp_num)
			continue;	/* an earlier client's flushed work */
		if (n && wc.status != IBV_WC_SUCCESS)
			return;
		if (n && wc.opcode == IBV_WC_RECV) {
			if (wc.byte_len != sizeof(t.cmds[0]) || !command_ok(&t.cmds[wc.wr_id])) {
				memset(&t.cqe, 0, sizeof(t.cqe));
				t.cqe.status = NVME_SC_INVALID_FIELD << 1;
			} else {
				err = dbo_submit(&t.ctrl, &t.cmds[wc.wr_id], &t.cqe);
				if (err && err != -EIO) {	/* no completion */
					memset(&t.cqe, 0, sizeof(t.cqe));
					t.cqe.status = NVME_SC_INTERNAL << 1;
				}
			}
			if (post_recv(cl, wc.wr_id) || ibv_post_send(cl->qp, &wr, &bad))
				return;
			continue;
		}
		if (n || ++spins % 4096)
			continue;
		if (poll(pfd, 2, 0) != 0)
			return;	/* hung up (or wrote, which it must not), or a signal */
	}
}

static void accept_client(int lfd)
{
	struct client *cl = NULL;
	struct dbo_info info = {
		.magic = DBO_MAGIC, .mode = t.mode, .generation = t.ctrl.generation,
		.qsize = t.qsize, .qid = DBO_IO_QID, .lba_size = t.ctrl.lba_size,
		.nsze = t.ctrl.nsze, .cmb_addr = t.ctrl.cmb_addr, .sq_off = t.ctrl.io_sq_off,
		.data_off = DBO_DATA_OFF, .data_slot = DBO_DATA_SLOT,
		.sq_db_off = nvme_sq_db(DBO_IO_QID, t.ctrl.dstrd) - t.db_page,
		.cq_db_off = nvme_cq_db(DBO_IO_QID, t.ctrl.dstrd) - t.db_page,
	};
	struct timeval tmo = { .tv_sec = 10 };
	struct dbo_peer peer;
	bool busy = false;
	unsigned int i;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* a client that stops reading does not stop this process (nor one that
	 * says nothing: the handshake's read has a deadline) */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
	for (i = 0; i < MAX_CLIENTS; i++) {
		if (t.cl[i].fd < 0 && !cl)
			cl = &t.cl[i];
		else if (t.cl[i].fd >= 0)
			busy = true;
	}
	/* the I/O queue pair is one client's in offload mode */
	if (!cl || !t.cmb_mr || (t.mode == DBO_OFFLOAD && (busy || !t.db_mr || !t.cq_mr))) {
		close(fd);
		return;
	}
	cl->fd = fd;
	cl->qp = dbo_qp_create(&t.rdma);
	if (!cl->qp)
		goto fail;
	dbo_io_idle_state(&t.ctrl, &info.cq_head, &info.phase);
	info.sq_tail = info.cq_head;
	info.qpn = cl->qp->qp_num;
	memcpy(info.gid, t.rdma.gid.raw, 16);
	/* each connection its own command ids: a stale completion is foreign */
	info.cid_base = (uint16_t)(++t.connections << 6);
	info.db_stride = 4u << t.ctrl.dstrd;
	info.cmb = (struct dbo_rbuf){ 0, t.cmb_mr->rkey, t.cmb_len };
	if (t.mode == DBO_OFFLOAD) {
		info.db = (struct dbo_rbuf){ 0, t.db_mr->rkey, DBO_PAGE };
		info.cq = (struct dbo_rbuf){ (uintptr_t)t.ctrl.io.cq, t.cq_mr->rkey,
					     t.qsize * sizeof(struct nvme_cqe) };
	}
	if (dbo_write_full(fd, &info, sizeof(info)) ||
	    dbo_read_deadline(fd, &peer, sizeof(peer), 10000) || peer.magic != DBO_MAGIC)
		goto fail;
	if (t.mode == DBO_VIA_TARGET)
		for (i = 0; i < RECV_DEPTH; i++)
			if (post_recv(cl, i))
				goto fail;
	if (dbo_qp_connect(&t.rdma, cl->qp, peer.qpn, peer.gid))
		goto fail;
	/* tell the client its QP is ready: one byte */
	if (dbo_write_full(fd, "", 1))
		goto fail;
	if (t.mode == DBO_VIA_TARGET) {
		serve_via_target(cl);
		goto fail;
	}
	return;
fail:
	drop_client(cl);
}

static void do_reset(void)
{
	int err;

	err = dbo_reset(&t.ctrl);
	/* the reset returned: invalidate what clients of the old queues hold */
	if (t.rdma_on)
		dereg_mrs();
	if (!err)
		err = dbo_init(&t.ctrl, t.qsize);
	if (!err && t.rdma_on)
		err = reg_mrs();
	printf("reset generation=%u err=%d\n", t.ctrl.generation, err);
	if (!err)
		print_ready();
}

static void do_memory(void)
{
	int err = dbo_memory(&t.ctrl, t.ctrl.memory_off);

	printf("memory %s err=%d\n", t.ctrl.memory_off ? "off" : "on", err);
}

static void do_events(void)
{
	int n = dbo_poll_events(&t.ctrl);
	unsigned int i;

	printf("events n=%d csts=0x%x\n", n, dbo_csts(&t.ctrl));
	for (i = 0; n > 0 && i < (unsigned int)n && i < 16; i++)
		printf("event dw0=0x%x type=%u info=0x%x log=0x%x\n", t.ctrl.events[i],
		       NVME_AER_TYPE(t.ctrl.events[i]), NVME_AER_INFO(t.ctrl.events[i]),
		       NVME_AER_LOG(t.ctrl.events[i]));
}

int main(int argc, char **argv)
{
	const char *dev = NULL;
	int opt, err, sfd, lfd = -1, gidx = 0;
	unsigned int port = DBO_PORT, i;
	struct signalfd_siginfo si;
	sigset_t sigs;

	setvbuf(stdout, NULL, _IOLBF, 0);
	t.qsize = 16;
	t.mode = DBO_OFFLOAD;
	t.rdma_on = true;
	while ((opt = getopt(argc, argv, "p:q:d:g:m:n")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'q':
			t.qsize = atoi(optarg);
			break;
		case 'd':
			dev = optarg;
			break;
		case 'g':
			gidx = atoi(optarg);
			break;
		case 'n':
			t.rdma_on = false;
			break;
		case 'm':
			if (!strcmp(optarg, "offload"))
				t.mode = DBO_OFFLOAD;
			else if (!strcmp(optarg, "via-target"))
				t.mode = DBO_VIA_TARGET;
			else
				die("-m takes offload or via-target", EINVAL);
			break;
		default:
			fprintf(stderr,
				"usage: nvme-offload-target [-p PORT] [-q QSIZE] [-d IBDEV] "
				"[-g GIDX] [-m offload|via-target] [-n] BDF\n");
			return 2;
		}
	}
	if (optind != argc - 1)
		die("one PCI address (BDF) is needed", EINVAL);
	for (i = 0; i < MAX_CLIENTS; i++)
		t.cl[i].fd = -1;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	t.sfd = sfd;
	signal(SIGPIPE, SIG_IGN);	/* a client that hangs up is no reason to die */

	err = dbo_open(&t.ctrl, argv[optind]);
	if (err)
		die(t.ctrl.step, err);
	err = dbo_init(&t.ctrl, t.qsize);
	if (err)
		die("controller bring-up", err);
	t.cmb_len = dbo_cmb_used(t.qsize);
	t.cmb_fd = dbo_export(&t.ctrl, t.ctrl.cmb_bar, t.ctrl.cmb_off, t.cmb_len);
	if (t.cmb_fd < 0)
		die("dma-buf of the CMB", t.cmb_fd);
	/* the page with I/O queue pair 1's doorbells (wherever DSTRD puts them) */
	t.db_page = nvme_sq_db(DBO_IO_QID, t.ctrl.dstrd) & ~(DBO_PAGE - 1);
	if ((nvme_cq_db(DBO_IO_QID, t.ctrl.dstrd) & ~(DBO_PAGE - 1)) != t.db_page)
		die("the SQ and CQ doorbells are on two pages", EINVAL);
	t.db_fd = dbo_export(&t.ctrl, 0, t.db_page, DBO_PAGE);
	if (t.db_fd < 0)
		die("dma-buf of the doorbells", t.db_fd);
	if (t.rdma_on) {
		err = dbo_rdma_open(&t.rdma, dev, gidx);
		if (err)
			die("RDMA device", err);
		t.msg_mr = ibv_reg_mr(t.rdma.pd, t.cmds, sizeof(t.cmds) + sizeof(t.cqe),
				      IBV_ACCESS_LOCAL_WRITE);
		err = t.msg_mr ? reg_mrs() : -errno;
		if (err)
			die("MR registration", err);
		lfd = dbo_tcp_listen(port);
		if (lfd < 0)
			die("listen", lfd);
	}
	print_ready();

	for (;;) {
		struct pollfd pfd[MAX_CLIENTS + 2] = {
			{ .fd = sfd, .events = POLLIN }, { .fd = lfd, .events = POLLIN },
		};

		for (i = 0; i < MAX_CLIENTS; i++)
			pfd[i + 2] = (struct pollfd){ .fd = t.cl[i].fd, .events = POLLIN };
		if (poll(pfd, MAX_CLIENTS + 2, -1) < 0)
			continue;
		for (i = 0; i < MAX_CLIENTS; i++)
			if (t.cl[i].fd >= 0 && pfd[i + 2].revents)
				drop_client(&t.cl[i]);	/* hung up */
		if (pfd[1].revents & POLLIN)
			accept_client(lfd);
		if (!(pfd[0].revents & POLLIN) || read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGUSR1)
			do_reset();
		else if (si.ssi_signo == SIGUSR2)
			do_events();
		else if (si.ssi_signo == SIGHUP)
			do_memory();
		else
			break;
	}
	printf("stats io_submissions=%lu admin_cmds=%lu generation=%u\n",
	       t.ctrl.io_submissions, t.ctrl.admin_cmds, t.ctrl.generation);
	for (i = 0; i < MAX_CLIENTS; i++)
		drop_client(&t.cl[i]);
	if (t.rdma_on) {
		dereg_mrs();
		ibv_dereg_mr(t.msg_mr);
		dbo_rdma_close(&t.rdma);
	}
	close(t.cmb_fd);
	close(t.db_fd);
	dbo_close(&t.ctrl);
	return 0;
}
