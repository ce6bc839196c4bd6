// SPDX-License-Identifier: GPL-2.0
/*
 * Races of vfio-pci dma-buf revokes (PCI_COMMAND memory toggles,
 * VFIO_DEVICE_RESET, closing the device) against importers that map,
 * vmap, move bytes, and against threads that create, import, release and
 * close dma-bufs. Bounded loops; every step either works or fails with
 * ENODEV (revoked), each revoke and each restore is one move_notify for an
 * importer that watches, and at the end nothing is mapped and nothing
 * hangs.
 */
#include <pthread.h>
#include "kselftest_harness.h"
#include "vfio_dmabuf.h"

#define TOGGLES		200	/* COMMAND memory off/on cycles */
#define RESETS		200	/* at most; bounded by RESET_SECS too */
#define RESET_SECS	20

FIXTURE(races) {
	struct vdb_lab l;
	struct vfio_region_dma_range r;
	int fd;				/* the dma-buf */
	int obs;			/* dynamic import that only counts */
};

FIXTURE_VARIANT(races) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(races, group) {
	.cdev = false,
};

FIXTURE_VARIANT_ADD(races, cdev) {
	.cdev = true,
};

FIXTURE_SETUP(races)
{
	const char *why = variant->cdev ? vdb_cdev_unavailable() : NULL;
	struct vdb_lab *l = &self->l;

	self->fd = -1;
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, vdb_lab_setup(l, variant->cdev));
	self->r.offset = 0x500000;
	self->r.length = 0x8000;
	self->fd = vdb_export(l->v.device, IVSHMEM_BAR, &self->r, 1);
	ASSERT_LE(0, self->fd) TH_LOG("export: %s", strerror(-self->fd));
	self->obs = p2pt_import(l->lab.dev, l->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, self->obs);
}

FIXTURE_TEARDOWN(races)
{
	if (self->fd >= 0)
		close(self->fd);
	vdb_lab_restore(&self->l);
}

/* A thread that maps/vmaps and moves bytes through one import. */
struct user {
	struct vdb_lab *l;
	int dev;			/* the module file */
	int fd;				/* the dma-buf */
	unsigned int handle;
	volatile int stop;
	int bad;			/* an unexpected result */
	int bad_op;			/* ... of this step */
	int ok, refused;		/* steps that worked / got ENODEV */
};

#define STEP(u, op, ret) do {						\
	int __r = (ret);						\
	if (!__r || __r > 0)						\
		(u)->ok++;						\
	else if (__r == -ENODEV)					\
		(u)->refused++;						\
	else if (!(u)->bad) {						\
		(u)->bad = __r;						\
		(u)->bad_op = (op);					\
	}								\
} while (0)

enum { OP_MAP = 1, OP_UNMAP, OP_DMA, OP_VMAP, OP_CPU, OP_VUNMAP, OP_EXPORT,
       OP_IMPORT, OP_RELEASE };

static const char *op_name(int op)
{
	static const char * const names[] = {
		"", "map", "unmap", "dma", "vmap", "cpu", "vunmap", "export",
		"import", "release",
	};

	return op > 0 && op <= OP_RELEASE ? names[op] : "?";
}

/*
 * Map (where the route allows) and DMA (where it reaches ivshmem), vmap
 * and copy through the CPU, unmap: each step works or fails with ENODEV.
 * A revoke between MAP and UNMAP leaves nothing to unmap: ENODEV too.
 */
static void *map_thread(void *arg)
{
	struct user *u = arg;
	struct vdb_lab *l = u->l;
	uint8_t buf[256];
	struct p2pt_map m;
	int ret;

	memset(buf, 0x3c, sizeof(buf));
	while (!u->stop && !u->bad) {
		if (l->can_map) {
			ret = p2pt_map(u->dev, u->handle, P2PT_DIR_BIDIRECTIONAL, &m);
			STEP(u, OP_MAP, ret);
			if (!ret && l->dma)
				STEP(u, OP_DMA, p2pt_dma(u->dev, u->handle, P2PT_DMA_TO_PEER,
							 m.entries[0].dma_addr + 0x2000,
							 buf, sizeof(buf)));
			STEP(u, OP_UNMAP, p2pt_unmap(u->dev, u->handle));
		}
		ret = p2pt_vmap(u->dev, u->handle);
		STEP(u, OP_VMAP, ret);
		STEP(u, OP_CPU, p2pt_cpu(u->dev, u->handle, P2PT_DMA_TO_PEER, 0x3000,
					 buf, sizeof(buf)));
		/* Dropped by a revoke meanwhile: nothing to vunmap. */
		STEP(u, OP_VUNMAP, p2pt_vunmap(u->dev, u->handle));
	}
	return NULL;
}

/*
 * Make a dma-buf of the device, import it (dynamic or pinned revocable),
 * map, release, close: each step works or fails with ENODEV.
 */
static void *churn_thread(void *arg)
{
	struct user *u = arg;
	struct vdb_lab *l = u->l;
	struct vfio_region_dma_range r = { .length = 0x4000 };
	struct p2pt_map m;
	unsigned int i;
	int fd, h;

	for (i = 0; !u->stop && !u->bad; i++) {
		r.offset = 0x600000 + (i % 8) * 0x4000;
		fd = vdb_export(l->v.device, IVSHMEM_BAR, &r, 1);
		if (fd < 0) {
			STEP(u, OP_EXPORT, fd);
			continue;
		}
		u->ok++;
		h = p2pt_import(u->dev, l->imp, fd, i & 1 ? P2PT_IMPORT_PINNED_REVOCABLE :
							    P2PT_IMPORT_DYNAMIC, 0);
		STEP(u, OP_IMPORT, h);
		if (h > 0) {
			if (l->can_map)
				STEP(u, OP_MAP, p2pt_map(u->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
			if (i % 3 == 0)
				STEP(u, OP_VMAP, p2pt_vmap(u->dev, h));
			/* Release with whatever is still mapped. */
			STEP(u, OP_RELEASE, p2pt_release(u->dev, h));
		}
		close(fd);
	}
	return NULL;
}

static void user_init(struct user *u, FIXTURE_DATA(races) *self)
{
	memset(u, 0, sizeof(*u));
	u->l = &self->l;
	u->fd = self->fd;
	u->dev = self->l.lab.dev;
}

static void user_report(struct __test_metadata *_metadata, struct user *u, const char *what)
{
	EXPECT_EQ(0, u->bad) TH_LOG("%s: %s failed: %s", what, op_name(u->bad_op),
				    strerror(-u->bad));
	TH_LOG("%s: %d steps worked, %d refused with ENODEV", what, u->ok, u->refused);
	EXPECT_LT(0, u->ok);
}

/*
 * At the end: the watcher counted every revoke and restore, nothing is
 * left mapped.
 */
static void check_end(struct __test_metadata *_metadata, FIXTURE_DATA(races) *self,
		      unsigned int revokes)
{
	struct vdb_lab *l = &self->l;
	int h;

	vdb_check_status(_metadata, l, self->obs, 0, vdb_notified(revokes, true));
	h = p2pt_import(l->lab.dev, l->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h) TH_LOG("import at the end: %s", strerror(-h));
	vdb_check_works(_metadata, l, h, &self->r, 1);
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, self->obs));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
}

/* Memory decode toggled while an importer maps, DMAs, vmaps and copies. */
TEST_F_TIMEOUT(races, toggle_vs_map, 300)
{
	struct vdb_lab *l = &self->l;
	struct user u;
	pthread_t thread;
	int i;

	user_init(&u, self);
	u.handle = p2pt_import(u.dev, l->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, (int)u.handle);
	ASSERT_EQ(0, pthread_create(&thread, NULL, map_thread, &u));
	for (i = 0; i < TOGGLES && !u.bad; i++) {
		ASSERT_EQ(0, vdb_memory(&l->v, false));
		if (i % 4 == 0)
			usleep(2000);
		ASSERT_EQ(0, vdb_memory(&l->v, true));
		usleep(i % 2 ? 1000 : 10000);
	}
	u.stop = 1;
	pthread_join(thread, NULL);
	TH_LOG("%d memory off/on cycles", i);
	user_report(_metadata, &u, "importer");
	vdb_check_status(_metadata, l, u.handle, 0, vdb_notified(i, true));
	check_end(_metadata, self, i);
}

/* VFIO_DEVICE_RESET in a loop while an importer maps and moves bytes. */
TEST_F_TIMEOUT(races, reset_vs_map, 300)
{
	struct vdb_lab *l = &self->l;
	struct timespec t0;
	struct user u;
	pthread_t thread;
	int i;

	if (!vdb_reset_works(&l->v))
		SKIP(return, "VFIO cannot reset ivshmem");
	user_init(&u, self);
	u.handle = p2pt_import(u.dev, l->imp, self->fd, P2PT_IMPORT_PINNED_REVOCABLE, 0);
	ASSERT_LT(0, (int)u.handle);
	ASSERT_EQ(0, pthread_create(&thread, NULL, map_thread, &u));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < RESETS && !u.bad && vdb_elapsed(&t0) < RESET_SECS; i++) {
		ASSERT_EQ(0, vdb_device_reset(&l->v));
		usleep(i % 2 ? 1000 : 20000);
	}
	u.stop = 1;
	pthread_join(thread, NULL);
	TH_LOG("%d resets in %.1f s", i, vdb_elapsed(&t0));
	user_report(_metadata, &u, "importer");
	/* The pin went with the last revoke or stayed with the last map. */
	vdb_check_status(_metadata, l, self->obs, 0, vdb_notified(i, true));
	check_end(_metadata, self, i);
}

/* Memory decode toggled while dma-bufs are made, imported and closed. */
TEST_F_TIMEOUT(races, toggle_vs_churn, 300)
{
	struct vdb_lab *l = &self->l;
	struct user u;
	pthread_t thread;
	int i;

	user_init(&u, self);
	ASSERT_EQ(0, pthread_create(&thread, NULL, churn_thread, &u));
	for (i = 0; i < TOGGLES && !u.bad; i++) {
		ASSERT_EQ(0, vdb_memory(&l->v, false));
		usleep(i % 3 ? 500 : 5000);
		ASSERT_EQ(0, vdb_memory(&l->v, true));
		usleep(i % 2 ? 1000 : 8000);
	}
	u.stop = 1;
	pthread_join(thread, NULL);
	TH_LOG("%d memory off/on cycles", i);
	user_report(_metadata, &u, "churn");
	check_end(_metadata, self, i);
}

/* VFIO_DEVICE_RESET in a loop while dma-bufs are made, imported and closed. */
TEST_F_TIMEOUT(races, reset_vs_churn, 300)
{
	struct vdb_lab *l = &self->l;
	struct timespec t0;
	struct user u;
	pthread_t thread;
	int i;

	if (!vdb_reset_works(&l->v))
		SKIP(return, "VFIO cannot reset ivshmem");
	user_init(&u, self);
	ASSERT_EQ(0, pthread_create(&thread, NULL, churn_thread, &u));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < RESETS && !u.bad && vdb_elapsed(&t0) < RESET_SECS; i++) {
		ASSERT_EQ(0, vdb_device_reset(&l->v));
		usleep(i % 2 ? 1000 : 20000);
	}
	u.stop = 1;
	pthread_join(thread, NULL);
	TH_LOG("%d resets in %.1f s", i, vdb_elapsed(&t0));
	user_report(_metadata, &u, "churn");
	check_end(_metadata, self, i);
}

/*
 * The device closed while an importer maps and vmaps: from then on every
 * map and vmap fails with ENODEV, for good.
 */
TEST_F_TIMEOUT(races, close_vs_map, 300)
{
	struct vdb_lab *l = &self->l;
	struct user u;
	pthread_t thread;
	int refused;

	user_init(&u, self);
	u.handle = p2pt_import(u.dev, l->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, (int)u.handle);
	ASSERT_EQ(0, pthread_create(&thread, NULL, map_thread, &u));
	/* Some steps work before the close, and some are refused after it. */
	EXPECT_TRUE(lab_wait_change(&u.ok, 0, 60)) TH_LOG("nothing mapped within 60 s");
	usleep(100000);
	lab_vfio_close(&l->v);
	refused = u.refused;
	EXPECT_TRUE(lab_wait_change(&u.refused, refused, 60))
		TH_LOG("nothing refused within 60 s of the close");
	usleep(100000);
	u.stop = 1;
	pthread_join(thread, NULL);
	user_report(_metadata, &u, "importer");
	vdb_check_revoked(_metadata, l, u.handle, 1);
	vdb_check_revoked(_metadata, l, self->obs, 1);
	EXPECT_EQ(0, p2pt_release(u.dev, u.handle));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, self->obs));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
}

TEST_HARNESS_MAIN
