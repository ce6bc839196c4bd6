// SPDX-License-Identifier: GPL-2.0
/*
 * rdma-dmabuf: RDMA into a PCI BAR through a vfio-pci dma-buf, and what an
 * RDMA user sees when vfio-pci revokes it. Used by the demo
 * (lab/demo-guest); handy in the lab shell.
 *
 *   rdma-dmabuf [EXPORTER]     default: ivshmem (BAR 2)
 *
 * EXPORTER is a lab device name (lab/devices) or an address, bound to
 * vfio-pci. Steps, each printing what happened:
 *  1. export BAR 2 [0xa00000, +64 KiB) with VFIO_DEVICE_FEATURE_DMA_BUF and
 *     register it on rxe0 with ibv_reg_dmabuf_mr() (a loopback RC pair);
 *  2. RDMA WRITE a message from host memory into it: a line
 *     "rdma message at BAR 2 offset 0xOFF: TEXT" that lab/demo checks in
 *     the host file, also read back here through the VFIO mmap of the BAR;
 *  3. revoke by memory decoding off (a PCI_COMMAND write through VFIO):
 *     the next WRITE completes with a remote access error, both QPs go to
 *     the error state, nothing lands; decoding on, new QPs, a WRITE lands
 *     (a second "rdma message" line);
 *  4. VFIO_DEVICE_RESET under a stream of WRITEs: the completions by
 *     status, then a WRITE on new QPs lands (a third line).
 * Exit status 0 when every check passed, 1 otherwise.
 */
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include "lab.h"
#include "rxe_rc.h"
#include "vfio_dmabuf_ops.h"
#define TOOL_NAME "rdma-dmabuf"
#include "tool.h"

#define BAR		2
#define BAR_OFF		0xa00000
#define LEN		0x10000
#define MR_IOVA		0x7f0000000000ULL
#define STREAM_LEN	4096

static struct {
	const char *name;
	char bdf[LAB_BDF_LEN];
	struct lab_vfio v;
	struct vfio_region_info bar;
	volatile uint8_t *map;		/* the BAR through VFIO */
	int dmabuf;
	struct rc rc;
	char *buf;			/* host memory, the source */
	struct ibv_mr *plain, *mr;
	bool cmd_saved;
	uint16_t cmd;
} s = { .dmabuf = -1, .v = { -1, -1, -1, -1 } };

static void cleanup(void)
{
	uint16_t cmd;

	if (s.mr)
		ibv_dereg_mr(s.mr);
	if (s.plain)
		ibv_dereg_mr(s.plain);
	rc_close(&s.rc);
	free(s.buf);
	if (s.dmabuf >= 0)
		close(s.dmabuf);
	if (s.map)
		munmap((void *)s.map, s.bar.size);
	if (s.cmd_saved && !lab_vfio_config_read16(&s.v, PCI_COMMAND, &cmd) &&
	    cmd != s.cmd && lab_vfio_config_write16(&s.v, PCI_COMMAND, s.cmd))
		printf("cleanup: cannot restore PCI_COMMAND 0x%04x\n", s.cmd);
	lab_vfio_close(&s.v);
}

static const char *qp_state_name(int st)
{
	static const char * const names[] = { "RESET", "INIT", "RTR", "RTS", "SQD", "SQE",
					      "ERR" };

	return st >= 0 && st < 7 ? names[st] : "?";
}

/* RDMA WRITE of a NUL-terminated message to dma-buf offset @off. */
static int write_message(const char *what, uint64_t off)
{
	int st;

	snprintf(s.buf, 256, "RDMA WRITE over rxe0 into %s BAR 2 at 0x%lx, %s, %ld", s.name,
		 (unsigned long)(BAR_OFF + off), what, (long)time(NULL));
	st = rc_post(&s.rc, IBV_WR_RDMA_WRITE, s.plain, s.buf, MR_IOVA + off, s.mr->rkey,
		     strlen(s.buf) + 1);
	printf("%s: RDMA WRITE of %zu bytes: completion \"%s\"\n", what, strlen(s.buf) + 1,
	       st < 0 ? "none" : ibv_wc_status_str(st));
	return st;
}

/* @len bytes at dma-buf offset @off through the VFIO mmap, NUL-terminated. */
static void bar_read(uint64_t off, char *dst, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		dst[i] = s.map[BAR_OFF + off + i];
	dst[len - 1] = 0;
}

/* The message landed: say so for the host, and check the VFIO view. */
static void landed(uint64_t off)
{
	char view[256];

	printf("rdma message at BAR 2 offset 0x%lx: %s\n", (unsigned long)(BAR_OFF + off),
	       s.buf);
	bar_read(off, view, sizeof(view));
	check(!strcmp(view, s.buf), "BAR 2 through VFIO holds \"%s\"", view);
	printf("  read back through the VFIO mmap of BAR 2: %s\n",
	       strcmp(view, s.buf) ? "DIFFERENT" : "the same bytes");
}

static void set_memory(bool on)
{
	uint16_t cmd = 0;
	int err = vdb_memory(&s.v, on);

	if (err)
		die("PCI_COMMAND through VFIO: %s", strerror(-err));
	lab_vfio_config_read16(&s.v, PCI_COMMAND, &cmd);
	printf("revoke: PCI_COMMAND := 0x%04x through VFIO (memory decoding %s)\n", cmd,
	       on ? "on" : "off");
}

struct stream {
	volatile bool stop;
	unsigned long ok, refused, other;
	struct ibv_qp *qp;
};

/* WRITEs in a loop until stopped or the QP fails; counts by status. */
static void *stream_thread(void *arg)
{
	struct stream *t = arg;
	int st;

	while (!t->stop) {
		st = rc_post(&s.rc, IBV_WR_RDMA_WRITE, s.plain, s.buf + 4096,
			     MR_IOVA + 0x8000, s.mr->rkey, STREAM_LEN);
		if (st == IBV_WC_SUCCESS) {
			t->ok++;
			continue;
		}
		if (st == IBV_WC_REM_ACCESS_ERR)
			t->refused++;
		else
			t->other++;
		break;		/* the QP is in the error state now */
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct stream t = {};
	char view[256];
	pthread_t thr;
	int err, st;

	setvbuf(stdout, NULL, _IOLBF, 0);
	s.name = argc > 1 ? argv[1] : "ivshmem";
	if (strchr(s.name, ':'))
		snprintf(s.bdf, sizeof(s.bdf), "%s", s.name);
	else if ((err = lab_pci_find(s.name, s.bdf)))
		die("lab device %s: %s", s.name, strerror(-err));
	err = lab_vfio_open_cdev(&s.v, s.bdf);
	printf("%s %s: opened through its VFIO %s\n", s.name, s.bdf, err ? "group" : "cdev");
	if (err && (err = lab_vfio_open_group(&s.v, s.bdf)))
		die("VFIO open of %s: %s", s.bdf, strerror(-err));
	err = lab_vfio_region(&s.v, BAR, &s.bar);
	if (err || s.bar.size < BAR_OFF + LEN)
		die("BAR 2 of %s: %s", s.bdf, err ? strerror(-err) : "too small");
	s.map = mmap(NULL, s.bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, s.v.device,
		     s.bar.offset);
	if (s.map == MAP_FAILED) {
		s.map = NULL;
		die("mmap of BAR 2: %s", strerror(errno));
	}
	s.cmd_saved = !lab_vfio_config_read16(&s.v, PCI_COMMAND, &s.cmd);

	/* 1. export and register */
	s.dmabuf = vdb_export1(s.v.device, BAR, BAR_OFF, LEN);
	if (s.dmabuf < 0)
		die("VFIO_DEVICE_FEATURE_DMA_BUF: %s", strerror(-s.dmabuf));
	printf("export: BAR 2 [0x%x, +0x%x) as dma-buf fd %d (VFIO_DEVICE_FEATURE_DMA_BUF)\n",
	       BAR_OFF, LEN, s.dmabuf);
	err = rc_open(&s.rc);
	if (err)
		die("rxe0 loopback RC pair: %s", strerror(-err));
	s.buf = aligned_alloc(4096, 2 * 4096);
	if (!s.buf)
		die("out of memory");
	memset(s.buf, 0, 2 * 4096);
	s.plain = ibv_reg_mr(s.rc.pd, s.buf, 2 * 4096, RC_ACCESS);
	s.mr = ibv_reg_dmabuf_mr(s.rc.pd, 0, LEN, MR_IOVA, s.dmabuf, RC_ACCESS &
				 ~IBV_ACCESS_REMOTE_ATOMIC);
	if (!s.plain || !s.mr)
		die("%s: %s", s.plain ? "ibv_reg_dmabuf_mr" : "ibv_reg_mr", strerror(errno));
	printf("import: %s registered it: dma-buf MR lkey 0x%x rkey 0x%x, iova 0x%llx\n",
	       ibv_get_device_name(s.rc.ctx->device), s.mr->lkey, s.mr->rkey, MR_IOVA);

	/* 2. data */
	st = write_message("first write", 0x100);
	check(st == IBV_WC_SUCCESS, "first write: %s", ibv_wc_status_str(st));
	if (st == IBV_WC_SUCCESS)
		landed(0x100);

	/* 3. memory decoding off: revoked; on: traffic resumes on new QPs */
	set_memory(false);
	st = write_message("while revoked", 0x800);
	check(st == IBV_WC_REM_ACCESS_ERR, "while revoked: %s", ibv_wc_status_str(st));
	st = qp_state_reaches(s.rc.qa, IBV_QPS_ERR);
	printf("  requester QP %s, responder QP %s\n", qp_state_name(st),
	       qp_state_name(qp_state_reaches(s.rc.qb, IBV_QPS_ERR)));
	check(st == IBV_QPS_ERR, "requester QP state %d", st);
	set_memory(true);
	bar_read(0x800, view, sizeof(view));
	check(strcmp(view, s.buf), "the refused write landed");
	printf("  %s at 0x%x\n", strcmp(view, s.buf) ? "nothing landed" : "IT LANDED",
	       BAR_OFF + 0x800);
	err = rc_pair(&s.rc);
	if (err)
		die("new QPs: %s", strerror(-err));
	printf("resume: new QP pair; the MR is still registered\n");
	st = write_message("after memory on", 0x1000);
	check(st == IBV_WC_SUCCESS, "after memory on: %s", ibv_wc_status_str(st));
	if (st == IBV_WC_SUCCESS)
		landed(0x1000);

	/* 4. a reset under traffic */
	if (!vdb_reset_works(&s.v)) {
		printf("reset: %s cannot be reset through VFIO, skipped\n", s.bdf);
	} else {
		if (pthread_create(&thr, NULL, stream_thread, &t))
			die("pthread_create");
		usleep(200000);
		err = vdb_device_reset(&s.v);
		printf("revoke: VFIO_DEVICE_RESET: %s\n", err ? strerror(-err) : "done");
		check(!err, "VFIO_DEVICE_RESET: %s", strerror(-err));
		usleep(200000);
		t.stop = true;
		pthread_join(thr, NULL);
		printf("  a stream of %d-byte WRITEs around it: %lu completed, %lu refused (remote access error), %lu other\n",
		       STREAM_LEN, t.ok, t.refused, t.other);
		check(!t.other, "%lu completions with another status", t.other);
		err = rc_pair(&s.rc);
		if (err)
			die("new QPs: %s", strerror(-err));
		st = write_message("after the reset", 0x2000);
		check(st == IBV_WC_SUCCESS, "after the reset: %s", ibv_wc_status_str(st));
		if (st == IBV_WC_SUCCESS)
			landed(0x2000);
	}
	cleanup();
	printf("rdma-dmabuf: %s\n", tool_failures ? "FAILED" : "all checks passed");
	return tool_failures ? 1 : 0;
}
