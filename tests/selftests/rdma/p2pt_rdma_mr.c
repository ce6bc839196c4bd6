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
 *    mlx5 follows (the MR made, enabled and its revoke callback set, with
 *    the MR, under the reservation lock of the registration; a revoke in
 *    the middle of a registration waits for it): a revoke is final,
 *    accesses fail with EACCES; mapped for the ib_device's DMA device, or
 *    (data_direct variants) for an engine that is another device, as
 *    mlx5's data-direct MRs are.
 *
 * Each against the vfio-pci exporter (ivshmem BAR 2) and the uverbs
 * exporter (the driver's own "device memory", exported from a second
 * ucontext), with the bytes checked in the host files behind the BARs:
 * every revoke trigger of the two exporters (the trigger fixture), and a
 * bounded race of DMA loops against revokes.
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
	bool data_direct;	/* pinned, mapped for an engine that is not the ib DMA device */
};

FIXTURE_VARIANT_ADD(mr, vfio_dynamic) { .exporter = EXP_VFIO };
FIXTURE_VARIANT_ADD(mr, vfio_pinned) { .exporter = EXP_VFIO, .pinned = true };
FIXTURE_VARIANT_ADD(mr, uverbs_dynamic) { .exporter = EXP_UVERBS };
FIXTURE_VARIANT_ADD(mr, uverbs_pinned) { .exporter = EXP_UVERBS, .pinned = true };
FIXTURE_VARIANT_ADD(mr, vfio_data_direct) {
	.exporter = EXP_VFIO, .pinned = true, .data_direct = true };
FIXTURE_VARIANT_ADD(mr, uverbs_data_direct) {
	.exporter = EXP_UVERBS, .pinned = true, .data_direct = true };

/*
 * Bind ivshmem2 to p2p_test_rdma afresh with @engine as its DMA engine
 * (the ib_device's, or a data-direct one beside it), and open its uverbs
 * file with a ucontext and a PD.
 */
static void rdma_setup(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self,
		       const char *engine, bool pinned, bool data_direct)
{
	int err;

	snprintf(self->rdma, sizeof(self->rdma), "%s", p2pt_orig_bdf("ivshmem2"));
	ASSERT_NE(0, self->rdma[0]) TH_LOG("no ivshmem2 in this lab");
	ASSERT_EQ(0, lab_sysfs_write(PARAM("dma_engine"), engine));
	ASSERT_EQ(0, lab_sysfs_write(PARAM("mr_mode"), pinned ? "pinned" : "dynamic"));
	ASSERT_EQ(0, lab_sysfs_write(PARAM("data_direct"), data_direct ? "Y" : "N"));
	ASSERT_EQ(0, lab_pci_bind(self->rdma, ""));
	ASSERT_EQ(0, lab_pci_bind(self->rdma, P2PT_RDMA_DRIVER));
	self->uv = uvr_open(P2PT_RDMA_IBDEV);
	ASSERT_LE(0, self->uv) TH_LOG("uverbs of %s: %s", P2PT_RDMA_IBDEV, strerror(-self->uv));
	err = uvr_get_context(self->uv, &self->resp, sizeof(self->resp));
	ASSERT_EQ(0, err) TH_LOG("ucontext: %s", strerror(-err));
	self->pd = uvr_alloc_pd(self->uv);
	ASSERT_LE(0, self->pd) TH_LOG("PD: %s", strerror(-self->pd));
}

/* uverbs: a fresh exporting ucontext (uv2) and a dma-buf of its memory entry. */
static void uverbs_export(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self)
{
	struct p2pt_rdma_ucontext_resp resp2;
	int err;

	self->uv2 = uvr_open(P2PT_RDMA_IBDEV);
	ASSERT_LE(0, self->uv2);
	err = uvr_get_context(self->uv2, &resp2, sizeof(resp2));
	ASSERT_EQ(0, err) TH_LOG("second ucontext: %s", strerror(-err));
	self->dmabuf = uvr_export_dmabuf(self->uv2, resp2.memory_offset);
	ASSERT_LE(0, self->dmabuf) TH_LOG("export: %s", strerror(-self->dmabuf));
}

static void mr_open(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self,
		    enum exporter exporter, bool pinned, bool data_direct)
{
	const char *engine;

	self->uv = self->uv2 = self->host = self->dmabuf = self->pd = -1;
	if (exporter == EXP_VFIO) {
		ASSERT_EQ(0, vdb_lab_setup(&self->l, false));
		self->vfio = true;
		if (!self->l.dma)
			SKIP(return, "%s's DMA does not reach ivshmem here", self->l.imp);
		engine = self->l.imp;
		self->host = self->l.lab.host;
		self->host_off = VFIO_OFF;
		self->dmabuf = vdb_export1(self->l.v.device, IVSHMEM_BAR, VFIO_OFF, MR_LEN);
		ASSERT_LE(0, self->dmabuf) TH_LOG("export: %s", strerror(-self->dmabuf));
		rdma_setup(_metadata, self, engine, pinned, data_direct);
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
		rdma_setup(_metadata, self, self->l.lab.edu2, pinned, data_direct);
		uverbs_export(_metadata, self);
	}
	ASSERT_EQ(0, uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN, MR_IOVA, self->dmabuf,
				       MR_ACCESS, &self->mr));
	self->registered = true;
}

static void mr_close(FIXTURE_DATA(mr) *self)
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
	lab_sysfs_write(PARAM("data_direct"), "N");
	lab_sysfs_write(PARAM("reg_delay_ms"), "0");
	if (self->rdma[0])
		lab_pci_bind(self->rdma, "");
	if (self->vfio)
		vdb_lab_restore(&self->l);
	else
		p2pt_lab_restore(&self->l.lab);
}

FIXTURE_SETUP(mr)
{
	mr_open(_metadata, self, variant->exporter, variant->pinned, variant->data_direct);
}

FIXTURE_TEARDOWN(mr)
{
	mr_close(self);
}

/* The "NIC" writes @len bytes of @byte at @off of the MR ('w'), or reads and checks them. */
static int mr_dma(FIXTURE_DATA(mr) *self, char op, uint64_t off, uint64_t len, uint8_t byte)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "%u %llu %llu %c %x", self->mr.lkey,
		 (unsigned long long)off, (unsigned long long)len, op, byte);
	return lab_sysfs_write(P2PT_RDMA_DEBUGFS "mr_dma", cmd);
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

enum trigger {
	T_MEMORY_OFF,		/* vfio-pci: PCI_COMMAND memory decode cleared */
	T_LOW_POWER,		/* vfio-pci: LOW_POWER_ENTRY */
	T_RESET,		/* vfio-pci: VFIO_DEVICE_RESET */
	T_CLOSE,		/* vfio-pci: the device fd closed */
	T_IMPORTER_UNBIND,	/* p2p_test_rdma unbound: its MRs destroyed */
	T_UCONTEXT_CLOSE,	/* uverbs: the exporting ucontext closed */
	T_ENTRY_REMOVAL,	/* uverbs: the driver removes the memory entry */
	T_UNBIND,		/* uverbs: exporter (and importer) unbound */
};

/* Pull @t; the ones that can be undone are undone by give_back(). */
static void pull(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *m, enum trigger t)
{
	switch (t) {
	case T_MEMORY_OFF:
		ASSERT_EQ(0, vdb_memory(&m->l.v, false));
		break;
	case T_LOW_POWER:
		ASSERT_EQ(0, vdb_low_power(&m->l.v, true));
		break;
	case T_RESET:
		ASSERT_EQ(0, vdb_device_reset(&m->l.v));
		break;
	case T_CLOSE:
		close(m->l.v.device);
		m->l.v.device = -1;
		break;
	case T_IMPORTER_UNBIND:
	case T_UNBIND:
		ASSERT_EQ(0, lab_pci_bind(m->rdma, ""));
		m->registered = false;
		break;
	case T_UCONTEXT_CLOSE:
		close(m->uv2);
		m->uv2 = -1;
		break;
	case T_ENTRY_REMOVAL:
		ASSERT_EQ(0, lab_sysfs_write(P2PT_RDMA_REMOVE, "memory"));
		break;
	}
}

static void give_back(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *m, enum trigger t)
{
	if (t == T_MEMORY_OFF)
		ASSERT_EQ(0, vdb_memory(&m->l.v, true));
	if (t == T_LOW_POWER)
		ASSERT_EQ(0, vdb_low_power(&m->l.v, false));
}

/*
 * The trigger the other tests pull: memory decode off (vfio-pci, given
 * back by memory on) or the exporting ucontext's close (uverbs, for good).
 */
static enum trigger take_away(FIXTURE_DATA(mr) *self)
{
	return self->vfio ? T_MEMORY_OFF : T_UCONTEXT_CLOSE;
}

/* Is the MR in the driver's list (and if so, its counts)? */
static bool mr_listed(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self,
		      unsigned int *inval, unsigned int *faults, int *revoked)
{
	char buf[4096], kind[16], *line;
	unsigned int key;
	FILE *f;
	int n;

	f = fopen(P2PT_RDMA_DEBUGFS "mrs", "re");
	ASSERT_NE(NULL, f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n > 0 ? n : 0] = '\0';
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (sscanf(line, "%u %15s %u %u %d", &key, kind, inval, faults, revoked) == 5 &&
		    key == self->mr.lkey)
			return true;
	}
	return false;
}

/* The MR's counts from the driver: invalidations, faults, revoked. */
static void mr_counts(struct __test_metadata *_metadata, FIXTURE_DATA(mr) *self,
		      unsigned int *inval, unsigned int *faults, int *revoked)
{
	ASSERT_TRUE(mr_listed(_metadata, self, inval, faults, revoked))
		TH_LOG("MR %u not listed", self->mr.lkey);
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

/* --- every revoke trigger --------------------------------------------- */

/*
 * What a trigger does to the MR: revokes until the exporter restores it
 * (dynamic MRs fault back in, pinned ones stay revoked), revokes and
 * restores in one step (a reset), revokes for good, or takes the
 * importing device, and with it the MR, away.
 */
enum after { RESTORED_LATER, RESTORED_AT_ONCE, FINAL, MR_GONE };

FIXTURE(trigger) {
	FIXTURE_DATA(mr) m;
};

FIXTURE_VARIANT(trigger) {
	enum exporter exporter;
	bool pinned;
	enum trigger trigger;
	enum after after;
};

#define TRIGGER(name, exp, trig, aft) \
	FIXTURE_VARIANT_ADD(trigger, name##_dynamic) { \
		.exporter = exp, .trigger = trig, .after = aft }; \
	FIXTURE_VARIANT_ADD(trigger, name##_pinned) { \
		.exporter = exp, .pinned = true, .trigger = trig, .after = aft }

TRIGGER(vfio_memory_off, EXP_VFIO, T_MEMORY_OFF, RESTORED_LATER);
TRIGGER(vfio_low_power, EXP_VFIO, T_LOW_POWER, RESTORED_LATER);
TRIGGER(vfio_reset, EXP_VFIO, T_RESET, RESTORED_AT_ONCE);
TRIGGER(vfio_close, EXP_VFIO, T_CLOSE, FINAL);
TRIGGER(vfio_importer_unbind, EXP_VFIO, T_IMPORTER_UNBIND, MR_GONE);
TRIGGER(uverbs_ucontext_close, EXP_UVERBS, T_UCONTEXT_CLOSE, FINAL);
TRIGGER(uverbs_entry_removal, EXP_UVERBS, T_ENTRY_REMOVAL, FINAL);
TRIGGER(uverbs_unbind, EXP_UVERBS, T_UNBIND, MR_GONE);

FIXTURE_SETUP(trigger)
{
	mr_open(_metadata, &self->m, variant->exporter, variant->pinned, false);
}

FIXTURE_TEARDOWN(trigger)
{
	mr_close(&self->m);
}

/*
 * Each way an exporter can revoke, for each kind of MR, the memory
 * decoding again behind its driver's back where it can (not in low
 * power: a config access would wake the device up) so that a write
 * which got through would land:
 *  - the dynamic MR is zapped once; its next access faults and is
 *    refused (ENODEV) while revoked, maps again and works once restored;
 *  - the pinned MR is revoked once, for good: EACCES, restored or not;
 *  - unbinding the importing driver destroys its MRs (ENOENT), and the
 *    exporter goes on without it: nothing to wait for.
 * Nothing reaches the memory while revoked.
 */
TEST_F(trigger, revoke_then_access)
{
	FIXTURE_DATA(mr) *m = &self->m;
	int want = variant->pinned ? -EACCES : -ENODEV;
	unsigned int inval = 0, faults = 0;
	int revoked = 0;
	bool listed;

	if (variant->trigger == T_RESET && !vdb_reset_works(&m->l.v))
		SKIP(return, "VFIO cannot reset ivshmem here");
	EXPECT_EQ(0, mr_dma(m, 'w', 0, PAGE, 0x01));
	pull(_metadata, m, variant->trigger);
	listed = mr_listed(_metadata, m, &inval, &faults, &revoked);
	if (variant->after == MR_GONE) {
		EXPECT_FALSE(listed) TH_LOG("the MR outlived its device");
		want = -ENOENT;
		/* Detached: a revoke has no importer left to wait for. */
		if (m->vfio) {
			pull(_metadata, m, T_MEMORY_OFF);
			give_back(_metadata, m, T_MEMORY_OFF);
		}
	} else {
		ASSERT_TRUE(listed);
		EXPECT_EQ(1, inval) TH_LOG("told of the revoke once");
		EXPECT_EQ(variant->pinned, revoked);
		EXPECT_EQ(0, faults);
	}
	if (variant->after == RESTORED_AT_ONCE)
		want = variant->pinned ? -EACCES : 0;

	if (variant->trigger != T_LOW_POWER)
		ASSERT_EQ(0, lab_pci_decode_on(m->vfio ? m->l.lab.ivshmem : m->rdma));
	host_fill(_metadata, m, 0, MR_LEN, 0xa5);
	EXPECT_EQ(want, mr_dma(m, 'w', 0, MR_LEN, 0x5a));
	EXPECT_EQ(want ? want : -EILSEQ, mr_dma(m, 'r', PAGE, PAGE, 0xa5))
		TH_LOG("the read sees the write (or nothing)");
	host_expect(_metadata, m, 0, MR_LEN, want ? 0xa5 : 0x5a, "after the trigger");
	if (variant->after != RESTORED_LATER)
		return;

	give_back(_metadata, m, variant->trigger);
	host_fill(_metadata, m, 0, PAGE, 0xa5);
	EXPECT_EQ(variant->pinned ? -EACCES : 0, mr_dma(m, 'w', 0, PAGE, 0x5a));
	host_expect(_metadata, m, 0, PAGE, variant->pinned ? 0xa5 : 0x5a, "after the restore");
	ASSERT_TRUE(mr_listed(_metadata, m, &inval, &faults, &revoked));
	EXPECT_EQ(!variant->pinned, faults) TH_LOG("mapped again on the first access");
	EXPECT_EQ(1, inval);
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

/* The loop's thread: started, and stopped with its counts kept. */
static void dma_loop_start(struct __test_metadata *_metadata, struct dma_loop *d,
			   pthread_t *thr)
{
	unsigned int ok = d->ok, other = d->other;
	int i;

	d->stop = false;
	ASSERT_EQ(0, pthread_create(thr, NULL, dma_loop, d));
	/* One access through before the revoke, however slow the guest. */
	for (i = 0; i < 60000 && d->ok == ok && d->other == other; i++)
		usleep(1000);
	EXPECT_NE(ok, d->ok) TH_LOG("no access went through in a minute");
}

static void dma_loop_stop(struct dma_loop *d, pthread_t thr)
{
	d->stop = true;
	pthread_join(thr, NULL);
}

/*
 * DMA through the MR in a loop against revokes, RACE_ROUNDS of them: the
 * vfio-pci exporter's decode turned off and on under one MR; the uverbs
 * exporter's ucontext closed, which is for good, so each round is a fresh
 * ucontext, dma-buf and MR. Every access succeeds or is refused as the
 * MR's kind says, nothing else; the counts add up. KASAN, lockdep and
 * kmemleak watch.
 */
TEST_F_TIMEOUT(mr, dma_races_revokes, 300)
{
	struct dma_loop d = { .self = self, .refused_err = variant->pinned ? -EACCES : -ENODEV };
	unsigned int inval, faults, i;
	pthread_t thr;
	int revoked;

	srand(self->l.lab.seed);
	dma_loop_start(_metadata, &d, &thr);
	for (i = 0; i < RACE_ROUNDS; i++) {
		if (!self->vfio && i) {
			/* The last round's MR: revoked once, for good. */
			dma_loop_stop(&d, thr);
			mr_counts(_metadata, self, &inval, &faults, &revoked);
			EXPECT_EQ(1, inval) TH_LOG("round %u", i);
			EXPECT_EQ(0, faults) TH_LOG("round %u", i);
			ASSERT_EQ(0, uvr_dereg_mr(self->uv, self->mr.handle));
			self->registered = false;
			close(self->dmabuf);
			self->dmabuf = -1;
			uverbs_export(_metadata, self);
			ASSERT_EQ(0, uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN, MR_IOVA,
						       self->dmabuf, MR_ACCESS, &self->mr));
			self->registered = true;
			dma_loop_start(_metadata, &d, &thr);
		}
		usleep(1000 * (20 + rand() % 80));
		pull(_metadata, self, take_away(self));
		usleep(1000 * (rand() % 50));
		give_back(_metadata, self, take_away(self));
	}
	usleep(100 * 1000);
	dma_loop_stop(&d, thr);
	TH_LOG("%u accesses, %u refused, %u failed otherwise", d.ok, d.refused, d.other);
	EXPECT_EQ(0, d.other) TH_LOG("last other error: %s", strerror(-d.last_other));
	EXPECT_LT(0, d.ok);
	mr_counts(_metadata, self, &inval, &faults, &revoked);
	/* Pinned or uverbs: revoked once, for good. Dynamic vfio: zapped at most each round. */
	if (variant->pinned || !self->vfio) {
		EXPECT_EQ(1, inval);
		EXPECT_EQ(0, faults);
	} else {
		EXPECT_LE(1, inval);
		EXPECT_GE(RACE_ROUNDS, inval);
		EXPECT_GE(inval, faults) TH_LOG("a fault without an invalidation");
		/* Given back each round: the loop faulted its way back in. */
		EXPECT_LE(1, faults);
	}
	EXPECT_EQ(0, uvr_dereg_mr(self->uv, self->mr.handle));
	self->registered = false;
}

/* A module parameter holding an unsigned number; -1 if unreadable. */
static long param_uint(const char *name)
{
	unsigned int val;
	long ret = -1;
	FILE *f = fopen(name, "re");

	if (f) {
		if (fscanf(f, "%u", &val) == 1)
			ret = val;
		fclose(f);
	}
	return ret;
}

struct slow_reg {
	FIXTURE_DATA(mr) *self;
	volatile int done;
	int err;
};

static void *slow_reg(void *arg)
{
	struct slow_reg *r = arg;
	FIXTURE_DATA(mr) *self = r->self;

	r->err = uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN, MR_IOVA, self->dmabuf,
				   MR_ACCESS, &self->mr);
	__atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * A revoke in the middle of a registration (the driver sleeps there,
 * reg_delay_ms, between the import and the MR's first map: mlx5's window).
 * Pinned: the registration holds the reservation lock from the import
 * until the MR is enabled and its callback set, so the revoke waits for
 * it: the registration succeeds and the MR is then revoked (EACCES from
 * then on). A revoke let in before the MR was enabled would fail the
 * registration's map (EINVAL) and WARN in the driver's callback, as
 * mlx5's UMR revoke of that mkey would fail. Dynamic: the revoke does not
 * wait, and the registration's map meets the revoked exporter (ENODEV),
 * or, on a guest too slow to revoke within the sleep, the MR is zapped
 * after.
 */
TEST_F_TIMEOUT(mr, revoke_during_registration, 120)
{
	struct slow_reg r = { .self = self };
	unsigned int inval, faults;
	int revoked;
	long before;
	pthread_t thr;

	ASSERT_EQ(0, uvr_dereg_mr(self->uv, self->mr.handle));
	self->registered = false;
	before = param_uint(PARAM("reg_delays"));
	ASSERT_LE(0, before);
	ASSERT_EQ(0, lab_sysfs_write(PARAM("reg_delay_ms"), "2000"));
	ASSERT_EQ(0, pthread_create(&thr, NULL, slow_reg, &r));
	/* Generous: only a registration that never gets there stops us. */
	for (int i = 0; i < 60000 && param_uint(PARAM("reg_delays")) == before && !r.done; i++)
		usleep(1000);
	pull(_metadata, self, take_away(self));
	pthread_join(thr, NULL);
	lab_sysfs_write(PARAM("reg_delay_ms"), "0");
	ASSERT_NE(before, param_uint(PARAM("reg_delays"))) TH_LOG("no registration slept");

	if (variant->pinned) {
		ASSERT_EQ(0, r.err) TH_LOG("registration: %s", strerror(-r.err));
		self->registered = true;
		mr_counts(_metadata, self, &inval, &faults, &revoked);
		EXPECT_EQ(1, inval);
		EXPECT_EQ(1, revoked);
		EXPECT_EQ(-EACCES, mr_dma(self, 'w', 0, PAGE, 0x5a));
	} else if (r.err) {
		EXPECT_EQ(-ENODEV, r.err) TH_LOG("registration: %s", strerror(-r.err));
	} else {
		lab_note("the revoke came after the registration: a slow guest");
		self->registered = true;
		mr_counts(_metadata, self, &inval, &faults, &revoked);
		EXPECT_EQ(1, inval);
		EXPECT_EQ(-ENODEV, mr_dma(self, 'w', 0, PAGE, 0x5a));
	}
	give_back(_metadata, self, take_away(self));
}

/* Registration: bad requests and the exporter's refusal come back. */
TEST_F(mr, registration_errors)
{
	struct uvr_mr m;

	EXPECT_EQ(-EINVAL, uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN + PAGE, MR_IOVA,
					     self->dmabuf, MR_ACCESS, &m)) TH_LOG("beyond the dma-buf");
	EXPECT_EQ(-EBADF, uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN, MR_IOVA, 9999,
					    MR_ACCESS, &m));
	pull(_metadata, self, take_away(self));
	EXPECT_EQ(-ENODEV, uvr_reg_dmabuf_mr(self->uv, self->pd, 0, MR_LEN, MR_IOVA,
					     self->dmabuf, MR_ACCESS, &m)) TH_LOG("revoked");
	give_back(_metadata, self, take_away(self));
}

TEST_HARNESS_MAIN
