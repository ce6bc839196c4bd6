// SPDX-License-Identifier: GPL-2.0
/*
 * The importer paths mlx5 uses, run for real: dma-buf MRs of the test RDMA
 * driver p2p_test_rdma (tests/modules/p2pt_rdma_mr.c), whose "NIC" is an
 * edu's DMA engine, registered through raw uverbs (the driver has no
 * rdma-core provider):
 *
 *  - dynamic, on-demand-paging style: move_notify zaps the MR, the next
 *    access faults and maps again under the reservation lock; a fault the
 *    exporter refuses (revoked) fails that access with ENODEV;
 *  - pinned and revocable, data-direct style, registered with the protocol
 *    mlx5 follows (the MR made and its revoke callback set, with the MR,
 *    under the reservation lock of the registration): a revoke is final,
 *    accesses fail with EACCES.
 *
 * Each against the vfio-pci exporter (ivshmem BAR 2, revoked by memory
 * decode off and a reset, restored after) and the uverbs exporter (the
 * driver's own "device memory", exported from a second ucontext and
 * revoked for good when that is closed), with the bytes checked in the
 * host files behind the BARs, and a bounded race of DMA loops against
 * revokes.
 */
#include <pthread.h>
#include "kselftest_harness.h"
#include "vfio_dmabuf.h"
#include "p2pt_rdma.h"
#include "uverbs_raw.h"

#define PAGE		4096ULL
#define VFIO_OFF	0x600000	/* the slice of ivshmem BAR 2 exported */
#define MR_LEN		(16 * PAGE)
#define MR_IOVA		0x10000000ULL
#define MR_ACCESS	(IB_UVERBS_ACCESS_LOCAL_WRITE | IB_UVERBS_ACCESS_REMOTE_WRITE | \
			 IB_UVERBS_ACCESS_REMOTE_READ)
#define PARAM(name)	"/sys/module/p2p_test_rdma/parameters/" name
#define RACE_ROUNDS	16

enum exporter { EXP_VFIO, EXP_UVERBS };

FIXTURE(mr) {
	struct vdb_lab l;	/* l.lab for the uverbs exporter too */
	bool vfio;		/* l is set up through VFIO */
	char rdma[LAB_BDF_LEN];	/* ivshmem2 */
	int host;		/* the host file behind the exported memory */
	uint64_t host_off;	/* where the dma-buf starts in it */
	int uv;			/* p2p_test_rdma's uverbs file: the MR */
	int uv2;		/* another one: the uverbs exporter */
	struct p2pt_rdma_ucontext_resp resp;
	int pd;
	int dmabuf;
	struct uvr_mr mr;
	bool registered;
};

FIXTURE_VARIANT(mr) {
	enum exporter exporter;
	bool pinned;
};

FIXTURE_VARIANT_ADD(mr, vfio_dynamic) { .exporter = EXP_VFIO };
FIXTURE_VARIANT_ADD(mr, vfio_pinned) { .exporter = EXP_VFIO, .pinned = true };
FIXTURE_VARIANT_ADD(mr, uverbs_dynamic) { .exporter = EXP_UVERBS };
FIXTURE_VARIANT_ADD(mr, uverbs_pinned) { .exporter = EXP_UVERBS, .pinned = true };

/*
 * Bind ivshmem2 to p2p_test_rdma afresh with @engine as its DMA engine, and
 * open its uverbs file with a ucontext and a PD.
 */
static void rdma_setup(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self,
		       const char *engine, bool pinned)
{
	int err;

	snprintf(self->rdma, sizeof(self->rdma), "%s", p2pt_orig_bdf("ivshmem2"));
	ASSERT_NE(0, self->rdma[0]) TH_LOG("no ivshmem2 in this lab");
	ASSERT_EQ(0, lab_sysfs_write(PARAM("dma_engine"), engine));
	ASSERT_EQ(0, lab_sysfs_write(PARAM("mr_mode"), pinned ? "pinned" : "dynamic"));
	ASSERT_EQ(0, lab_pci_bind(self->rdma, ""));
	ASSERT_EQ(0, lab_pci_bind(self->rdma, P2PT_RDMA_DRIVER));
	self->uv = uvr_open(P2PT_RDMA_IBDEV);
	ASSERT_LE(0, self->uv) TH_LOG("uverbs of %s: %s", P2PT_RDMA_IBDEV, strerror(-self->uv));
	err = uvr_get_context(self->uv, &self->resp, sizeof(self->resp));
	ASSERT_EQ(0, err) TH_LOG("ucontext: %s", strerror(-err));
	self->pd = uvr_alloc_pd(self->uv);
	ASSERT_LE(0, self->pd) TH_LOG("PD: %s", strerror(-self->pd));
}

FIXTURE_SETUP(mr)
{
	const char *engine;

	self->uv = self->uv2 = self->host = self->dmabuf = self->pd = -1;
	if (variant->exporter == EXP_VFIO) {
		ASSERT_EQ(0, vdb_lab_setup(&self->l, false));
		self->vfio = true;
		if (!self->l.dma)
			SKIP(return, "%s's DMA does not reach ivshmem here", self->l.imp);
		engine = self->l.imp;
		self->host = self->l.lab.host;
		self->host_off = VFIO_OFF;
		self->dmabuf = vdb_export1(self->l.v.device, IVSHMEM_BAR, VFIO_OFF, MR_LEN);
		ASSERT_LE(0, self->dmabuf) TH_LOG("export: %s", strerror(-self->dmabuf));
		rdma_setup(_metadata, self, engine, variant->pinned);
	} else {
		const char *path = getenv("LAB_IVSHMEM2");

		ASSERT_EQ(0, p2pt_lab_setup(&self->l.lab));
		if (!self->l.lab.host_bridge_p2p)
			SKIP(return, "no P2P route to ivshmem2 here (host bridge not allow-listed)");
		if (!path)
			SKIP(return, "no ivshmem2 in this lab");
		self->host = open(path, O_RDWR | O_CLOEXEC);
		ASSERT_LE(0, self->host);
		self->host_off = P2PT_RDMA_MEM_OFF;
		struct p2pt_rdma_ucontext_resp resp2;
		int err;

		rdma_setup(_metadata, self, self->l.lab.edu2, variant->pinned);
		self->uv2 = uvr_open(P2PT_RDMA_IBDEV);
		ASSERT_LE(0, self->uv2);
		err = uvr_get_context(self->uv2, &resp2, sizeof(resp2));
		ASSERT_EQ(0, err) TH_LOG("second ucontext: %s", strerror(-err));
		self->dmabuf = uvr_export_dmabuf(self->uv2, resp2.memory_offset);
		ASSERT_LE(0, self->dmabuf) TH_LOG("export: %s", strerror(-self->dmabuf));
	}
	ASSERT_EQ(0, uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN, MR_IOVA, self->dmabuf,
				       MR_ACCESS, &self->mr));
	self->registered = true;
}

FIXTURE_TEARDOWN(mr)
{
	if (self->registered)
		uvr_dereg_mr(self->uv, self->mr.handle);
	if (self->uv >= 0)
		close(self->uv);
	if (self->uv2 >= 0)
		close(self->uv2);
	if (self->dmabuf >= 0)
		close(self->dmabuf);
	if (!self->vfio && self->host >= 0)
		close(self->host);
	lab_sysfs_write(PARAM("dma_engine"), "none");
	if (self->rdma[0])
		lab_pci_bind(self->rdma, "");
	if (self->vfio)
		vdb_lab_restore(&self->l);
	else
		p2pt_lab_restore(&self->l.lab);
}

/* The "NIC" writes @len bytes of @byte at @off of the MR ('w'), or reads and checks them. */
static int mr_dma(FIXTURE_DATA(mr) *self, char op, uint64_t off, uint64_t len, uint8_t byte)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "%u %llu %llu %c %x", self->mr.lkey,
		 (unsigned long long)off, (unsigned long long)len, op, byte);
	return lab_sysfs_write(PARAM("mr_dma"), cmd);
}

/* The MR's counts from the driver: invalidations, faults, revoked. */
static void mr_counts(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self,
		      unsigned int *inval, unsigned int *faults, int *revoked)
{
	char buf[4096], kind[16], *line;
	unsigned int key;
	FILE *f;

	f = fopen(PARAM("mrs"), "re");
	ASSERT_NE(NULL, f);
	ASSERT_LT(0, (int)fread(buf, 1, sizeof(buf) - 1, f));
	fclose(f);
	buf[sizeof(buf) - 1] = '\0';
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (sscanf(line, "%u %15s %u %u %d", &key, kind, inval, faults, revoked) == 5 &&
		    key == self->mr.lkey)
			return;
	}
	ASSERT_TRUE(false) TH_LOG("MR %u not listed", self->mr.lkey);
}

static void host_fill(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self,
		      uint64_t off, size_t len, uint8_t byte)
{
	uint8_t buf[MR_LEN];

	memset(buf, byte, len);
	ASSERT_EQ((ssize_t)len, pwrite(self->host, buf, len, self->host_off + off));
}

/* Every byte of [@off, @off + @len) of the memory behind the MR is @byte. */
static void host_expect(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self,
			uint64_t off, size_t len, uint8_t byte, const char *what)
{
	uint8_t buf[MR_LEN];
	size_t i;

	ASSERT_EQ((ssize_t)len, pread(self->host, buf, len, self->host_off + off));
	for (i = 0; i < len && buf[i] == byte; i++)
		;
	EXPECT_EQ(len, i) TH_LOG("%s: byte 0x%llx is 0x%02x, not 0x%02x", what,
				 (unsigned long long)(off + i), i < len ? buf[i] : 0, byte);
}

/* The engine writes through the MR and reads back what the host put there. */
TEST_F(mr, dma_lands_and_reads_back)
{
	unsigned int inval, faults;
	int revoked;

	host_fill(_metadata, self, 0, MR_LEN, 0x11);
	EXPECT_EQ(0, mr_dma(self, 'w', 2 * PAGE, 3 * PAGE, 0x3c));
	host_expect(_metadata, self, 2 * PAGE, 3 * PAGE, 0x3c, "the write");
	host_expect(_metadata, self, 0, 2 * PAGE, 0x11, "before it");
	host_expect(_metadata, self, 5 * PAGE, MR_LEN - 5 * PAGE, 0x11, "after it");
	host_fill(_metadata, self, 8 * PAGE, PAGE, 0x77);
	EXPECT_EQ(0, mr_dma(self, 'r', 8 * PAGE, PAGE, 0x77));
	EXPECT_EQ(-EILSEQ, mr_dma(self, 'r', 8 * PAGE, PAGE, 0x78)) TH_LOG("a read that cannot match");
	EXPECT_EQ(-EINVAL, mr_dma(self, 'w', MR_LEN - PAGE, 2 * PAGE, 0)) TH_LOG("beyond the MR");
	mr_counts(_metadata, self, &inval, &faults, &revoked);
	EXPECT_EQ(0, inval);
	EXPECT_EQ(0, faults);
	EXPECT_EQ(0, revoked);
}

/* Take the memory away the exporter's way; true if it can come back. */
static bool take_away(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self)
{
	if (self->vfio) {
		EXPECT_EQ(0, vdb_memory(&self->l.v, false));
		return true;
	}
	/* The exporting ucontext goes (not a module parameter: no lock shared with mr_dma). */
	close(self->uv2);
	self->uv2 = -1;
	return false;
}

/*
 * Revoked: the dynamic MR was zapped once and its next access faults, which
 * the revoked exporter refuses (ENODEV); the pinned MR was revoked once
 * and refuses (EACCES). Nothing reaches the memory, which decodes again
 * behind its driver's back. Given back (vfio-pci): the dynamic MR faults
 * and works again, the pinned one stays revoked.
 */
TEST_F(mr, revoke_then_access)
{
	int want = variant->pinned ? -EACCES : -ENODEV;
	unsigned int inval, faults;
	bool back;
	int revoked;

	EXPECT_EQ(0, mr_dma(self, 'w', 0, PAGE, 0x01));
	back = take_away(_metadata, self);
	mr_counts(_metadata, self, &inval, &faults, &revoked);
	EXPECT_EQ(1, inval) TH_LOG("told of the revoke");
	EXPECT_EQ(variant->pinned, revoked);

	ASSERT_EQ(0, lab_pci_decode_on(self->vfio ? self->l.lab.ivshmem : self->rdma));
	host_fill(_metadata, self, 0, MR_LEN, 0xa5);
	EXPECT_EQ(want, mr_dma(self, 'w', 0, MR_LEN, 0x5a));
	EXPECT_EQ(want, mr_dma(self, 'r', PAGE, PAGE, 0xa5));
	host_expect(_metadata, self, 0, MR_LEN, 0xa5, "after the revoke");

	if (back) {
		ASSERT_EQ(0, vdb_memory(&self->l.v, true));
		if (variant->pinned) {
			EXPECT_EQ(-EACCES, mr_dma(self, 'w', 0, PAGE, 0x5a)) TH_LOG("final");
			host_expect(_metadata, self, 0, MR_LEN, 0xa5, "after the restore");
		} else {
			EXPECT_EQ(0, mr_dma(self, 'w', 0, PAGE, 0x5a));
			host_expect(_metadata, self, 0, PAGE, 0x5a, "after the fault");
			mr_counts(_metadata, self, &inval, &faults, &revoked);
			EXPECT_EQ(1, faults) TH_LOG("mapped again on the first access");
		}
	}
	EXPECT_EQ(0, uvr_dereg_mr(self->uv, self->mr.handle));
	self->registered = false;
}

/* A reset (vfio-pci) zaps the dynamic MR, which faults back; revokes the pinned one. */
TEST_F(mr, reset_then_access)
{
	unsigned int inval, faults;
	int revoked;

	if (!self->vfio)
		SKIP(return, "a vfio-pci trigger");
	if (!vdb_reset_works(&self->l.v))
		SKIP(return, "VFIO cannot reset ivshmem here");
	ASSERT_EQ(0, vdb_device_reset(&self->l.v));
	mr_counts(_metadata, self, &inval, &faults, &revoked);
	EXPECT_EQ(1, inval);
	host_fill(_metadata, self, 0, PAGE, 0);
	EXPECT_EQ(variant->pinned ? -EACCES : 0, mr_dma(self, 'w', 0, PAGE, 0x6b));
	host_expect(_metadata, self, 0, PAGE, variant->pinned ? 0 : 0x6b, "after the reset");
}

struct dma_loop {
	FIXTURE_DATA(mr) *self;
	int refused_err;
	volatile bool stop;
	volatile unsigned int ok, refused, other;
	volatile int last_other;
};

static void *dma_loop(void *arg)
{
	struct dma_loop *d = arg;
	int err;

	while (!d->stop) {
		err = mr_dma(d->self, 'w', (d->ok % 16) * PAGE, PAGE, 0x42);
		if (!err) {
			d->ok++;
		} else if (err == d->refused_err) {
			d->refused++;
		} else {
			d->other++;
			d->last_other = err;
		}
	}
	return NULL;
}

/*
 * DMA through the MR in a loop against revokes (decode off and on,
 * RACE_ROUNDS times; the uverbs exporter: its entry removed once): every
 * access succeeds or is refused as the MR's kind says, nothing else; the
 * counts add up. KASAN, lockdep and kmemleak watch.
 */
TEST_F_TIMEOUT(mr, dma_races_revokes, 300)
{
	struct dma_loop d = { .self = self, .refused_err = variant->pinned ? -EACCES : -ENODEV };
	unsigned int inval, faults, i, rounds = self->vfio ? RACE_ROUNDS : 1;
	pthread_t thr;
	int revoked;

	srand(self->l.lab.seed);
	ASSERT_EQ(0, pthread_create(&thr, NULL, dma_loop, &d));
	/* One access through before the first revoke, however slow the guest. */
	for (i = 0; i < 60000 && !d.ok && !d.other; i++)
		usleep(1000);
	for (i = 0; i < rounds; i++) {
		usleep(1000 * (20 + rand() % 80));
		take_away(_metadata, self);
		usleep(1000 * (rand() % 50));
		if (self->vfio)
			EXPECT_EQ(0, vdb_memory(&self->l.v, true));
	}
	usleep(100 * 1000);
	d.stop = true;
	pthread_join(thr, NULL);
	TH_LOG("%u accesses, %u refused, %u failed otherwise", d.ok, d.refused, d.other);
	EXPECT_EQ(0, d.other) TH_LOG("last other error: %s", strerror(-d.last_other));
	EXPECT_LT(0, d.ok);
	mr_counts(_metadata, self, &inval, &faults, &revoked);
	/* Pinned: revoked once, for good. Dynamic: zapped at most each round. */
	if (variant->pinned) {
		EXPECT_EQ(1, inval);
		EXPECT_EQ(0, faults);
	} else {
		EXPECT_LE(1, inval);
		EXPECT_GE(rounds, inval);
		EXPECT_GE(inval, faults) TH_LOG("a fault without an invalidation");
		/* Given back each round: the loop faulted its way back in. */
		if (self->vfio)
			EXPECT_LE(1, faults);
	}
	EXPECT_EQ(0, uvr_dereg_mr(self->uv, self->mr.handle));
	self->registered = false;
}

/* Registration: bad requests and the exporter's refusal come back. */
TEST_F(mr, registration_errors)
{
	struct uvr_mr m;

	EXPECT_EQ(-EINVAL, uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN + PAGE, MR_IOVA,
					     self->dmabuf, MR_ACCESS, &m)) TH_LOG("beyond the dma-buf");
	EXPECT_EQ(-EBADF, uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN, MR_IOVA, 9999,
					    MR_ACCESS, &m));
	take_away(_metadata, self);
	EXPECT_EQ(-ENODEV, uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN, MR_IOVA,
					     self->dmabuf, MR_ACCESS, &m)) TH_LOG("revoked");
	if (self->vfio)
		ASSERT_EQ(0, vdb_memory(&self->l.v, true));
}

TEST_HARNESS_MAIN
