// SPDX-License-Identifier: GPL-2.0
/*
 * Doorbell-write offload without RDMA ("GPU-initiated storage"): a DMA
 * engine submits NVMe I/O. nvme-offload-target (examples/doorbell-offload,
 * run with -n: no RDMA) brings the lab's NVMe up through VFIO with its I/O
 * SQ in the CMB and exports the CMB and the doorbell page as dma-bufs; this
 * program takes both fds from it (pidfd_getfd()), imports them into the
 * test importer for edu2 (a dynamic importer: move_notify unmaps) and lets
 * edu2's DMA engine write the payload and the SQ entry into the CMB and the
 * new tail into the SQ doorbell, then the CQ head into the CQ doorbell.
 * The completion is read from the target's memory (/proc/PID/mem), the
 * written blocks from the NVMe's backing file on the host, and the data a
 * READ put into the CMB by edu2's DMA. The target never submits.
 *
 * edu2 and the NVMe sit on different root ports: the route crosses the
 * host bridge, which the P2PDMA core allows only for AMD Zen CPU models;
 * elsewhere the cases skip, and say why.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "kselftest_harness.h"
#include "p2pt.h"
#include "../../../examples/doorbell-offload/nvme.h"

#define SEED		0x5eed0021u
#define LBA0		80000		/* blocks this program writes, onwards */
#define SLOT		4096		/* one data slot: one command's data */

struct target {
	pid_t pid;
	FILE *out;
	int mem;			/* /proc/PID/mem */
	int cmb_fd, db_fd;		/* the dma-bufs, in this process */
	uint64_t cq_addr, cmb_addr, sq_off, data_off;
	unsigned int qsize, sq_db, cq_db, lba_size;
	char line[1024];
};

static uint64_t field(const char *line, const char *key)
{
	char want[64];
	const char *p;

	snprintf(want, sizeof(want), " %s=", key);
	p = strstr(line, want);
	return p ? strtoull(p + strlen(want), NULL, 0) : 0;
}

/* The target's next output line starting with @prefix; false at its end. */
static bool target_line(struct target *t, const char *prefix)
{
	while (fgets(t->line, sizeof(t->line), t->out))
		if (!strncmp(t->line, prefix, strlen(prefix)))
			return true;
	return false;
}

/* Start nvme-offload-target -n on @bdf and take its dma-bufs; 0 or -errno. */
static int target_start(struct target *t, const char *bdf)
{
	const char *top = getenv("LAB_TOP") ?: "/work/main";
	char path[PATH_MAX];
	int pfd[2], pidfd, tfd;

	if (getenv("LAB_BUILD"))
		snprintf(path, sizeof(path), "%s/examples/doorbell-offload/nvme-offload-target",
			 getenv("LAB_BUILD"));
	else
		snprintf(path, sizeof(path), "%s/build/examples/doorbell-offload/nvme-offload-target",
			 top);
	if (access(path, X_OK))
		return -ENOENT;
	if (pipe(pfd))
		return -errno;
	t->pid = fork();
	if (t->pid == 0) {
		/*
		 * Gone with its parent: 6.12's harness skips the fixture's
		 * teardown after a failed ASSERT (its "child" is not volatile
		 * across the longjmp).
		 */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl(path, path, "-n", "-q", "16", bdf, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	t->out = fdopen(pfd[0], "r");
	if (!target_line(t, "ready"))
		return -EIO;
	t->cq_addr = field(t->line, "cq_addr");
	t->cmb_addr = field(t->line, "cmb_addr");
	t->sq_off = field(t->line, "sq_off");
	t->data_off = field(t->line, "data_off");
	t->qsize = field(t->line, "qsize");
	t->sq_db = field(t->line, "sq_db");
	t->cq_db = field(t->line, "cq_db");
	t->lba_size = field(t->line, "lba_size");
	pidfd = syscall(SYS_pidfd_open, t->pid, 0);
	if (pidfd < 0)
		return -errno;
	t->cmb_fd = syscall(SYS_pidfd_getfd, pidfd, (int)field(t->line, "cmb_fd"), 0);
	t->db_fd = syscall(SYS_pidfd_getfd, pidfd, (int)field(t->line, "db_fd"), 0);
	close(pidfd);
	snprintf(path, sizeof(path), "/proc/%d/mem", t->pid);
	t->mem = open(path, O_RDONLY | O_CLOEXEC);
	tfd = t->cmb_fd < 0 || t->db_fd < 0 || t->mem < 0;
	return tfd ? -errno : 0;
}

/* SIGTERM the target; its count of I/O submissions, or -1. */
static long target_stop(struct target *t)
{
	long n = -1;

	if (t->pid <= 0)
		return -1;
	kill(t->pid, SIGTERM);
	if (target_line(t, "stats"))
		n = field(t->line, "io_submissions");
	waitpid(t->pid, NULL, 0);
	t->pid = 0;
	return n;
}

FIXTURE(engine) {
	int dev;
	char nvme[LAB_BDF_LEN], edu2[LAB_BDF_LEN];
	struct target t;
	unsigned int cmb_h, db_h;
	struct p2pt_map cmb_map, db_map;
	uint16_t tail, head;
	uint8_t phase;
};

FIXTURE_SETUP(engine)
{
	int err;

	memset(&self->t, 0, sizeof(self->t));
	self->dev = -1;
	self->t.cmb_fd = self->t.db_fd = self->t.mem = -1;
	if (!p2pt_orig_bdf("nvme")[0] || !p2pt_orig_bdf("edu2")[0])
		SKIP(return, "no NVMe or no edu2 in the lab");
	if (!lab_iommu_present())
		SKIP(return, "no IOMMU: the target needs DMA addresses for its host memory");
	if (!lab_host_bridge_p2p())
		SKIP(return, "no P2P route from edu2 to the NVMe: it crosses the host bridge, which the P2PDMA core allows only for AMD Zen CPUs");
	strcpy(self->nvme, p2pt_orig_bdf("nvme"));
	strcpy(self->edu2, p2pt_orig_bdf("edu2"));
	ASSERT_EQ(0, lab_pci_bind(self->nvme, "vfio-pci"));
	ASSERT_EQ(0, lab_pci_bind(self->edu2, P2PT_IMPORTER_DRIVER));
	self->dev = p2pt_dev_open();
	ASSERT_LE(0, self->dev);
	err = target_start(&self->t, self->nvme);
	ASSERT_EQ(0, err) TH_LOG("nvme-offload-target: %s", strerror(-err));
	ASSERT_EQ(512, self->t.lba_size);
	self->cmb_h = p2pt_import(self->dev, self->edu2, self->t.cmb_fd, P2PT_IMPORT_DYNAMIC, 0);
	self->db_h = p2pt_import(self->dev, self->edu2, self->t.db_fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, (int)self->cmb_h);
	ASSERT_LT(0, (int)self->db_h);
	ASSERT_EQ(0, p2pt_map(self->dev, self->cmb_h, P2PT_DIR_BIDIRECTIONAL, &self->cmb_map));
	ASSERT_EQ(0, p2pt_map(self->dev, self->db_h, P2PT_DIR_FROM_DEVICE, &self->db_map));
	EXPECT_EQ(P2PT_ROUTE_UNKNOWN, self->cmb_map.route);
	self->phase = 1;
}

FIXTURE_TEARDOWN(engine)
{
	if (self->t.pid > 0)
		target_stop(&self->t);
	if (self->dev >= 0)
		close(self->dev);
	if (self->t.cmb_fd >= 0)
		close(self->t.cmb_fd);
	if (self->t.db_fd >= 0)
		close(self->t.db_fd);
	if (self->t.mem >= 0)
		close(self->t.mem);
	if (self->t.out)
		fclose(self->t.out);
}

/* edu2 writes @len bytes to CMB offset @off (or the doorbell page: @db). */
static int engine_write(FIXTURE_DATA(engine) *self, bool db, uint64_t off, void *buf,
			size_t len)
{
	const struct p2pt_map *m = db ? &self->db_map : &self->cmb_map;
	uint64_t a = p2pt_map_dma_addr(m, off, len);

	if (!a)
		return -ERANGE;
	return p2pt_dma(self->dev, db ? self->db_h : self->cmb_h, P2PT_DMA_TO_PEER, a, buf, len);
}

/*
 * Submit @opcode for blocks @lba onwards with data slot @slot, by edu2's
 * DMA alone, and wait for its completion in the target's CQ. 0 or -errno,
 * the completion's status field in @sf.
 */
static int engine_cmd(FIXTURE_DATA(engine) *self, uint8_t opcode, uint64_t lba,
		      unsigned int slot, unsigned int *sf)
{
	struct nvme_sqe sqe = {
		.opcode = opcode, .cid = self->tail, .nsid = 1,
		.prp1 = self->t.cmb_addr + self->t.data_off + (uint64_t)slot * SLOT,
		.cdw10 = (uint32_t)lba, .cdw11 = (uint32_t)(lba >> 32),
		.cdw12 = SLOT / self->t.lba_size - 1,
	};
	struct nvme_cqe cqe;
	uint32_t v;
	int i, err;

	err = engine_write(self, false, self->t.sq_off + self->tail * sizeof(sqe), &sqe,
			   sizeof(sqe));
	if (err)
		return err;
	self->tail = (self->tail + 1) % self->t.qsize;
	v = self->tail;
	/* the tail last: the entry is in place when the doorbell rings */
	err = engine_write(self, true, self->t.sq_db, &v, sizeof(v));
	if (err)
		return err;
	for (i = 0; i < 30000; i++) {
		if (pread(self->t.mem, &cqe, sizeof(cqe),
			  self->t.cq_addr + self->head * sizeof(cqe)) != sizeof(cqe))
			return -errno;
		if (NVME_CQE_PHASE(&cqe) == self->phase)
			break;
		usleep(1000);
	}
	if (NVME_CQE_PHASE(&cqe) != self->phase)
		return -ETIMEDOUT;
	*sf = NVME_CQE_SF(&cqe);
	if (++self->head == self->t.qsize) {
		self->head = 0;
		self->phase ^= 1;
	}
	v = self->head;
	return engine_write(self, true, self->t.cq_db, &v, sizeof(v));
}

static void pattern(uint8_t *buf, uint64_t lba, uint32_t seed)
{
	lab_pattern(buf, SLOT, lba * 512, seed);
}

/* The NVMe's backing file on the host: @len bytes at block @lba. */
static int image_read(uint64_t lba, void *buf, size_t len)
{
	const char *path = getenv("LAB_NVME_IMG");
	ssize_t n;
	int fd;

	if (!path)
		return -ENOENT;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, lba * 512);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/*
 * Four WRITEs and four READs submitted by edu2's DMA engine: the blocks are
 * in the image, the READs bring them back into the CMB (read by edu2's DMA),
 * and the target submitted nothing.
 */
TEST_F_TIMEOUT(engine, write_read_by_dma_engine, 300)
{
	uint8_t want[SLOT], got[SLOT], junk[SLOT];
	unsigned int i, sf, slot;
	uint64_t lba;

	memset(junk, 0xee, sizeof(junk));
	for (i = 0; i < 4; i++) {
		lba = LBA0 + i * (SLOT / 512);
		slot = self->tail;
		pattern(want, lba, SEED);
		ASSERT_EQ(0, engine_write(self, false, self->t.data_off + slot * SLOT, want, SLOT));
		ASSERT_EQ(0, engine_cmd(self, NVME_CMD_WRITE, lba, slot, &sf));
		ASSERT_EQ(0, sf) TH_LOG("WRITE of block %llu: status 0x%x",
					(unsigned long long)lba, sf);
		ASSERT_EQ(0, image_read(lba, got, SLOT));
		EXPECT_EQ(0, memcmp(want, got, SLOT))
			TH_LOG("block %llu in the image differs", (unsigned long long)lba);

		slot = self->tail;
		ASSERT_EQ(0, engine_write(self, false, self->t.data_off + slot * SLOT, junk, SLOT));
		ASSERT_EQ(0, engine_cmd(self, NVME_CMD_READ, lba, slot, &sf));
		ASSERT_EQ(0, sf);
		ASSERT_EQ(0, p2pt_dma(self->dev, self->cmb_h, P2PT_DMA_FROM_PEER,
				      p2pt_map_dma_addr(&self->cmb_map, self->t.data_off + slot * SLOT, SLOT),
				      got, SLOT));
		EXPECT_EQ(0, memcmp(want, got, SLOT))
			TH_LOG("READ of block %llu into the CMB differs", (unsigned long long)lba);
	}
	EXPECT_EQ(0, target_stop(&self->t));
}

/*
 * Memory decoding off (SIGHUP to the target) revokes both dma-bufs: the
 * importer is told to unmap, edu2's next DMA into either is refused
 * (ENODEV) and mapping either fails (ENODEV); decoding on, the importer maps again and its
 * DMA engine submits as before, the controller untouched meanwhile.
 */
TEST_F_TIMEOUT(engine, revoke_stops_the_engine, 300)
{
	uint8_t want[SLOT], got[SLOT];
	struct p2pt_map m;
	unsigned int sf;
	uint64_t lba = LBA0 + 64;
	uint32_t v = 1;

	kill(self->t.pid, SIGHUP);
	ASSERT_TRUE(target_line(&self->t, "memory off err=0"));
	EXPECT_EQ(-ENODEV, engine_write(self, true, self->t.sq_db, &v, sizeof(v)));
	EXPECT_EQ(-ENODEV, engine_write(self, false, self->t.sq_off, &v, sizeof(v)));
	EXPECT_EQ(-ENODEV, p2pt_map(self->dev, self->db_h, P2PT_DIR_FROM_DEVICE, &m));
	EXPECT_EQ(-ENODEV, p2pt_map(self->dev, self->cmb_h, P2PT_DIR_BIDIRECTIONAL, &m));
	kill(self->t.pid, SIGHUP);
	ASSERT_TRUE(target_line(&self->t, "memory on err=0"));
	ASSERT_EQ(0, p2pt_map(self->dev, self->cmb_h, P2PT_DIR_BIDIRECTIONAL, &self->cmb_map));
	ASSERT_EQ(0, p2pt_map(self->dev, self->db_h, P2PT_DIR_FROM_DEVICE, &self->db_map));
	pattern(want, lba, SEED + 1);
	ASSERT_EQ(0, engine_write(self, false, self->t.data_off, want, SLOT));
	ASSERT_EQ(0, engine_cmd(self, NVME_CMD_WRITE, lba, 0, &sf));
	ASSERT_EQ(0, sf);
	ASSERT_EQ(0, image_read(lba, got, SLOT));
	EXPECT_EQ(0, memcmp(want, got, SLOT));
	EXPECT_EQ(0, target_stop(&self->t));
}

TEST_HARNESS_MAIN
