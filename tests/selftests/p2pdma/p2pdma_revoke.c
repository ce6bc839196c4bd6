// SPDX-License-Identifier: GPL-2.0
/*
 * Revoke and importer modes of MMIO dma-bufs (p2p_dmabuf_test module):
 * dynamic importers are told by move_notify and unmap, pinned revocable
 * importers are accepted and unpinned by a revoke, non-revocable importers
 * cannot pin, nothing attaches or maps while revoked, unbinding the
 * exporter revokes for good, and unbinding the importer or closing its
 * file tears its mappings down.
 *
 * Mappings use edu under the switch (BUS_ADDR: always maps); DMA checks
 * use the importer whose DMA reaches ivshmem in this boot (edu without an
 * IOMMU, edu2 with one on an AMD CPU model) and are left out where there
 * is none (Intel CPU model with the IOMMU on).
 */
#include <pthread.h>
#include "kselftest_harness.h"
#include "p2pt_test.h"

FIXTURE(revoke) {
	struct p2pt_lab lab;
	const char *dma_imp;		/* NULL: no DMA path in this boot */
	struct p2pt_range r;
	int fd;				/* the dma-buf */
};

FIXTURE_SETUP(revoke)
{
	self->fd = -1;
	ASSERT_EQ(0, p2pt_lab_setup(&self->lab));
	self->dma_imp = p2pt_lab_dma_importer(&self->lab);
	if (!self->dma_imp)
		TH_LOG("no importer reaches ivshmem by DMA in this boot: DMA checks left out");
	self->r.offset = 0x400000;
	self->r.length = 0x8000;
	self->fd = p2pt_export(self->lab.dev, self->lab.ivshmem, IVSHMEM_BAR,
			       &self->r, 1, NULL);
	if (self->fd < 0)
		p2pt_lab_restore(&self->lab);
	ASSERT_LE(0, self->fd) TH_LOG("export: %s", strerror(-self->fd));
}

FIXTURE_TEARDOWN(revoke)
{
	if (self->fd >= 0)
		close(self->fd);
	EXPECT_EQ(0, p2pt_lab_restore(&self->lab));
}

/* DMA both ways through @h, mapped at @m, at offset 0x1000 of the range. */
static void check_dma(struct __test_metadata *_metadata, FIXTURE_DATA(revoke) *self,
		      unsigned int h, const struct p2pt_map *m)
{
	p2pt_check_to_peer(_metadata, &self->lab, h, m->entries[0].dma_addr + 0x1000,
			   self->r.offset + 0x1000, 4096);
	p2pt_check_from_peer(_metadata, &self->lab, h, m->entries[0].dma_addr + 0x3000,
			     self->r.offset + 0x3000, 4096);
}

TEST_F_TIMEOUT(revoke, dynamic, 120)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m, m2, again;
	int h, h2 = 0, maps = 1;
	uint8_t byte = 0;

	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	if (self->dma_imp) {
		h2 = p2pt_import(lab->dev, self->dma_imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
		ASSERT_LT(0, h2);
		ASSERT_EQ(0, p2pt_map(lab->dev, h2, P2PT_DIR_BIDIRECTIONAL, &m2));
		check_dma(_metadata, self, h2, &m2);
		maps = 2;
	}
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_MAPPED, 0, maps, 0);

	/* Revoke: every importer is told once and has unmapped on return. */
	ASSERT_EQ(0, p2pt_revoke(lab->dev, self->fd));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_REVOKED, 1, 0, 0);
	if (h2) {
		p2pt_check_status(_metadata, lab, h2, P2PT_STATUS_REVOKED, 1, 0, 0);
	}

	/* Nothing maps or moves bytes while revoked. */
	EXPECT_EQ(-ENODEV, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &again));
	EXPECT_EQ(-ENODEV, p2pt_unmap(lab->dev, h));
	EXPECT_EQ(-ENODEV, p2pt_dma(lab->dev, h, P2PT_DMA_FROM_PEER,
				    m.entries[0].dma_addr, &byte, 1));
	if (h2) {
		EXPECT_EQ(-ENODEV, p2pt_dma(lab->dev, h2, P2PT_DMA_TO_PEER,
					    m2.entries[0].dma_addr, &byte, 1));
	}
	/* A second revoke has nothing left to tell. */
	ASSERT_EQ(0, p2pt_revoke(lab->dev, self->fd));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_REVOKED, 1, 0, 0);

	/* Unrevoke: importers map again on their own. */
	ASSERT_EQ(0, p2pt_unrevoke(lab->dev, self->fd));
	p2pt_check_status(_metadata, lab, h, 0, 1, 0, 0);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &again));
	EXPECT_EQ(m.nents, again.nents);
	EXPECT_EQ(m.entries[0].dma_addr, again.entries[0].dma_addr);	/* BUS_ADDR */
	EXPECT_EQ(m.entries[0].len, again.entries[0].len);
	if (h2) {
		ASSERT_EQ(0, p2pt_map(lab->dev, h2, P2PT_DIR_BIDIRECTIONAL, &m2));
		check_dma(_metadata, self, h2, &m2);
	}
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_MAPPED, 1, maps, 0);
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	if (h2) {
		EXPECT_EQ(0, p2pt_release(lab->dev, h2));
	}
}

/* An importer without a mapping is told too. */
TEST_F(revoke, unmapped_importer_is_notified)
{
	struct p2pt_lab *lab = &self->lab;
	int h;

	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_revoke(lab->dev, self->fd));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_REVOKED, 1, 0, 0);
	ASSERT_EQ(0, p2pt_unrevoke(lab->dev, self->fd));
	ASSERT_EQ(0, p2pt_revoke(lab->dev, self->fd));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_REVOKED, 2, 0, 0);
}

TEST_F(revoke, pinned_revocable)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m;
	int h, obs;

	/* A dynamic importer that only watches the dma-buf's counters. */
	obs = p2pt_import(lab->dev, lab->edu2, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, obs);
	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_PINNED_REVOCABLE, 0);
	ASSERT_LT(0, h) TH_LOG("import: %s", strerror(-h));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_PINNED, 0, 0, 1);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_PINNED | P2PT_STATUS_MAPPED, 0, 1, 1);

	/* Revoke reaches pinned importers: unmapped and unpinned. */
	ASSERT_EQ(0, p2pt_revoke(lab->dev, self->fd));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_REVOKED, 1, 0, 0);
	p2pt_check_status(_metadata, lab, obs, P2PT_STATUS_REVOKED, 1, 0, 0);
	/* A map refused while revoked leaves no pin behind. */
	EXPECT_EQ(-ENODEV, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_REVOKED, 1, 0, 0);

	ASSERT_EQ(0, p2pt_unrevoke(lab->dev, self->fd));
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_PINNED | P2PT_STATUS_MAPPED, 1, 1, 1);
	/* Release drops the mapping and the pin. */
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	p2pt_check_status(_metadata, lab, obs, 0, 1, 0, 0);
}

/*
 * An importer without move_notify cannot attach to an MMIO dma-buf, whether
 * it would pin it or map it unpinned: a revoke could not take it back.
 */
TEST_F(revoke, pinned_non_revocable_refused)
{
	struct p2pt_lab *lab = &self->lab;
	int h, obs;

	obs = p2pt_import(lab->dev, lab->edu2, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, obs);
	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_PINNED, 0);
	EXPECT_EQ(-EOPNOTSUPP, h);
	p2pt_check_status(_metadata, lab, obs, 0, 0, 0, 0);
	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_UNNOTIFIED, 0);
	EXPECT_EQ(-EOPNOTSUPP, h);
	p2pt_check_status(_metadata, lab, obs, 0, 0, 0, 0);
	/* Refused the same way again: no state left by the first try. */
	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_PINNED, 0);
	EXPECT_EQ(-EOPNOTSUPP, h);
	p2pt_check_status(_metadata, lab, obs, 0, 0, 0, 0);
}

/* The exporter refuses importers that cannot do peer-to-peer. */
TEST_F(revoke, attach_without_peer2peer_refused)
{
	struct p2pt_lab *lab = &self->lab;

	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(lab->dev, lab->edu, self->fd,
					   P2PT_IMPORT_DYNAMIC, P2PT_IMPORT_F_NO_P2P));
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(lab->dev, lab->edu, self->fd,
					   P2PT_IMPORT_PINNED_REVOCABLE, P2PT_IMPORT_F_NO_P2P));
}

TEST_F(revoke, attach_after_revoke)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m;
	int h;

	ASSERT_EQ(0, p2pt_revoke(lab->dev, self->fd));
	EXPECT_EQ(-ENODEV, p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_DYNAMIC, 0));
	EXPECT_EQ(-ENODEV, p2pt_import(lab->dev, lab->edu, self->fd,
				       P2PT_IMPORT_PINNED_REVOCABLE, 0));
	ASSERT_EQ(0, p2pt_unrevoke(lab->dev, self->fd));
	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	EXPECT_EQ(lab->bar_start + self->r.offset, m.entries[0].dma_addr);
}

/*
 * Unbinding the exporter revokes its dma-bufs for good; the fds stay
 * valid, nothing maps again, a rebound exporter exports anew.
 */
TEST_F_TIMEOUT(revoke, exporter_unbind, 120)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m;
	int h, fd2, h2;

	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));

	ASSERT_EQ(0, lab_pci_unbind(lab->ivshmem));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_REVOKED, 1, 0, 0);
	EXPECT_EQ(-ENODEV, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	EXPECT_EQ(-ENODEV, p2pt_unrevoke(lab->dev, self->fd));
	EXPECT_EQ(0, p2pt_revoke(lab->dev, self->fd));
	EXPECT_EQ(-ENODEV, p2pt_import(lab->dev, lab->edu2, self->fd, P2PT_IMPORT_DYNAMIC, 0));
	EXPECT_EQ(-ENODEV, p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, &self->r, 1, NULL));

	/* Bound again: the old dma-buf stays dead, a new one works. */
	ASSERT_EQ(0, lab_pci_bind(lab->ivshmem, P2PT_EXPORTER_DRIVER));
	EXPECT_EQ(-ENODEV, p2pt_unrevoke(lab->dev, self->fd));
	EXPECT_EQ(-ENODEV, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	fd2 = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, &self->r, 1, NULL);
	ASSERT_LE(0, fd2);
	h2 = p2pt_import(lab->dev, self->dma_imp ? self->dma_imp : lab->edu, fd2,
			 P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h2);
	ASSERT_EQ(0, p2pt_map(lab->dev, h2, P2PT_DIR_BIDIRECTIONAL, &m));
	if (self->dma_imp)
		check_dma(_metadata, self, h2, &m);
	EXPECT_EQ(0, p2pt_release(lab->dev, h2));
	close(fd2);
}

/* Unbinding the importer unmaps and detaches what it imported. */
TEST_F(revoke, importer_unbind)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m;
	int h, hp, obs;

	obs = p2pt_import(lab->dev, lab->edu2, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, obs);
	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	hp = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_PINNED_REVOCABLE, 0);
	ASSERT_LT(0, hp);
	p2pt_check_status(_metadata, lab, obs, 0, 0, 1, 1);

	ASSERT_EQ(0, lab_pci_unbind(lab->edu));
	p2pt_check_status(_metadata, lab, obs, 0, 0, 0, 0);
	EXPECT_EQ(-ENODEV, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	EXPECT_EQ(-ENODEV, p2pt_unmap(lab->dev, h));
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	EXPECT_EQ(0, p2pt_release(lab->dev, hp));
	EXPECT_EQ(-ENODEV, p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_DYNAMIC, 0));

	ASSERT_EQ(0, lab_pci_bind(lab->edu, P2PT_IMPORTER_DRIVER));
	h = p2pt_import(lab->dev, lab->edu, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	p2pt_check_status(_metadata, lab, obs, 0, 0, 1, 0);
}

/* Closing the importer's file releases everything it imported. */
TEST_F(revoke, close_releases)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m;
	int dev2, h, hp, obs;

	obs = p2pt_import(lab->dev, lab->edu2, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, obs);
	dev2 = p2pt_dev_open();
	ASSERT_LE(0, dev2);
	h = p2pt_import(dev2, lab->edu, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(dev2, h, P2PT_DIR_FROM_DEVICE, &m));
	hp = p2pt_import(dev2, lab->edu, self->fd, P2PT_IMPORT_PINNED_REVOCABLE, 0);
	ASSERT_LT(0, hp);
	ASSERT_EQ(0, p2pt_map(dev2, hp, P2PT_DIR_TO_DEVICE, &m));
	p2pt_check_status(_metadata, lab, obs, 0, 0, 2, 1);
	/* Handles are per file. */
	EXPECT_EQ(-ENOENT, p2pt_unmap(lab->dev, obs + 1));

	close(dev2);
	p2pt_check_status(_metadata, lab, obs, 0, 0, 0, 0);
}

struct race {
	struct p2pt_lab *lab;
	unsigned int handle;
	uint64_t dma_addr;
	volatile int stop;
	int bad;			/* an unexpected result */
	int dmas;			/* DMAs that ran */
	int refused;			/* DMAs refused with ENODEV */
};

static void *race_importer(void *arg)
{
	struct race *r = arg;
	struct p2pt_map m;
	uint8_t buf[512];
	int i, ret;

	memset(buf, 0x5a, sizeof(buf));
	for (i = 0; !r->stop && !r->bad; i++) {
		/* With an IOMMU each mapping may get another IOVA. */
		ret = p2pt_map(r->lab->dev, r->handle, P2PT_DIR_BIDIRECTIONAL, &m);
		if (!ret)
			r->dma_addr = m.entries[0].dma_addr + 0x2000;
		else if (ret != -ENODEV && ret != -EBUSY)
			r->bad = ret;
		ret = p2pt_dma(r->lab->dev, r->handle, P2PT_DMA_TO_PEER,
			       r->dma_addr, buf, sizeof(buf));
		if (!ret)
			r->dmas++;
		else if (ret == -ENODEV)
			r->refused++;
		else
			r->bad = ret;
	}
	return NULL;
}

/*
 * Revoke and unrevoke while the importer maps and DMAs: every DMA either
 * runs on a live mapping or fails with ENODEV, every revoke returns with
 * nothing mapped.
 */
TEST_F_TIMEOUT(revoke, revoke_races_dma, 300)
{
	struct p2pt_lab *lab = &self->lab;
	struct race r = { .lab = lab };
	struct p2pt_status st;
	struct p2pt_map m;
	pthread_t thread;
	int i, h;

	if (!self->dma_imp)
		SKIP(return, "no importer reaches ivshmem by DMA in this boot");
	h = p2pt_import(lab->dev, self->dma_imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	r.handle = h;
	r.dma_addr = m.entries[0].dma_addr + 0x2000;
	ASSERT_EQ(0, pthread_create(&thread, NULL, race_importer, &r));
	for (i = 0; i < 8 && !r.bad; i++) {
		usleep(400000);
		ASSERT_EQ(0, p2pt_revoke(lab->dev, self->fd));
		/* Revoke returned: nothing of the dma-buf is mapped. */
		ASSERT_EQ(0, p2pt_status(lab->dev, h, &st));
		EXPECT_EQ(0, st.exporter_maps);
		EXPECT_EQ(P2PT_STATUS_REVOKED, st.flags);
		usleep(50000);
		ASSERT_EQ(0, p2pt_unrevoke(lab->dev, self->fd));
	}
	r.stop = 1;
	pthread_join(thread, NULL);
	EXPECT_EQ(0, r.bad) TH_LOG("unexpected result %s", strerror(-r.bad));
	TH_LOG("%d revokes, %d move_notify calls, %d DMAs ran, %d refused with ENODEV",
	       i, st.move_notify_count, r.dmas, r.refused);
	/* Each revoke follows an unrevoke: one notification each. */
	EXPECT_EQ(i, st.move_notify_count);
}

struct churn {
	struct p2pt_lab *lab;
	int fd;
	volatile int stop;
	int bad;			/* an unexpected result */
	int mapped;			/* imports that mapped */
};

static void *churn_importer(void *arg)
{
	struct churn *c = arg;
	struct p2pt_map m;
	int h, ret;

	while (!c->stop && !c->bad) {
		h = p2pt_import(c->lab->dev, c->lab->edu, c->fd, P2PT_IMPORT_PINNED_REVOCABLE, 0);
		if (h == -ENODEV)
			continue;
		if (h < 0) {
			c->bad = h;
			break;
		}
		ret = p2pt_map(c->lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
		if (!ret)
			c->mapped++;
		else if (ret != -ENODEV)
			c->bad = ret;
		ret = p2pt_release(c->lab->dev, h);
		if (ret)
			c->bad = ret;
	}
	return NULL;
}

/*
 * Revoke and unrevoke while another thread attaches, pins, maps and
 * detaches: each step either works or fails with ENODEV, and nothing of
 * the dma-buf is left mapped or pinned at the end.
 */
TEST_F_TIMEOUT(revoke, revoke_races_import, 300)
{
	struct p2pt_lab *lab = &self->lab;
	struct churn c = { .lab = lab, .fd = self->fd };
	pthread_t thread;
	int i, obs;

	obs = p2pt_import(lab->dev, lab->edu2, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, obs);
	/* The churning thread shares the file: its own, to not wait on it. */
	c.lab = malloc(sizeof(*c.lab));
	ASSERT_NE(NULL, c.lab);
	*c.lab = *lab;
	c.lab->dev = p2pt_dev_open();
	ASSERT_LE(0, c.lab->dev);
	ASSERT_EQ(0, pthread_create(&thread, NULL, churn_importer, &c));
	for (i = 0; i < 20 && !c.bad; i++) {
		usleep(20000);
		ASSERT_EQ(0, p2pt_revoke(lab->dev, self->fd));
		usleep(5000);
		ASSERT_EQ(0, p2pt_unrevoke(lab->dev, self->fd));
	}
	c.stop = 1;
	pthread_join(thread, NULL);
	EXPECT_EQ(0, c.bad) TH_LOG("unexpected result %s", strerror(-c.bad));
	TH_LOG("%d revokes, %d imports mapped", i, c.mapped);
	p2pt_check_status(_metadata, lab, obs, 0, i, 0, 0);
	close(c.lab->dev);
	free(c.lab);
}

TEST_HARNESS_MAIN
