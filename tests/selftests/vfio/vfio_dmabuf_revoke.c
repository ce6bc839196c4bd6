// SPDX-License-Identifier: GPL-2.0
/*
 * Revoke of vfio-pci dma-bufs. Temporary, around everything that makes the
 * BAR unusable: PCI_COMMAND memory decode cleared, PM D3hot, PCIe FLR, AF
 * FLR, VFIO_DEVICE_RESET, VFIO_DEVICE_PCI_HOT_RESET, runtime-PM low power.
 * Permanent when the VFIO device is closed or vfio-pci unbound, with the
 * dma-buf fds still open.
 *
 * Each revoke and each restore tells every importer once (move_notify),
 * and when the call that revoked returns nothing is mapped or vmapped;
 * while revoked, map, vmap and import fail with ENODEV; afterwards the
 * importers map again and bytes move (DMA where it reaches the BAR, the CPU through a vmap in
 * every boot, checked in the host file behind ivshmem BAR 2).
 *
 * ivshmem (no capabilities; reset by its switch port's secondary bus reset)
 * carries the COMMAND, reset, hot reset, low power, close and unbind cases.
 * PM D3hot and PCIe FLR need a device with those capabilities: the lab's
 * NVMe (its CMB, BAR 2); no lab device has AF FLR.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include "kselftest_harness.h"
#include "vfio_dmabuf.h"

#define PAGE	4096ULL

FIXTURE(revoke) {
	struct vdb_lab l;
	struct vfio_region_dma_range r;
	int fd;				/* the dma-buf */
	int h;				/* dynamic import: mapped, vmapped */
	int hp;				/* pinned revocable import: mapped */
	int obs;			/* dynamic import that never maps */
	char pm_control[8];		/* ivshmem's runtime PM setting, to restore */
};

FIXTURE_VARIANT(revoke) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(revoke, group) {
	.cdev = false,
};

FIXTURE_VARIANT_ADD(revoke, cdev) {
	.cdev = true,
};

FIXTURE_SETUP(revoke)
{
	const char *why = variant->cdev ? vdb_cdev_unavailable() : NULL;
	struct vdb_lab *l = &self->l;

	self->fd = -1;
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, vdb_lab_setup(l, variant->cdev));
	self->r.offset = 0x400000;
	self->r.length = 0x8000;
	self->fd = vdb_export(l->v.device, IVSHMEM_BAR, &self->r, 1);
	ASSERT_LE(0, self->fd) TH_LOG("export: %s", strerror(-self->fd));
	self->h = p2pt_import(l->lab.dev, l->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, self->h) TH_LOG("import: %s", strerror(-self->h));
	self->hp = p2pt_import(l->lab.dev, l->imp, self->fd, P2PT_IMPORT_PINNED_REVOCABLE, 0);
	ASSERT_LT(0, self->hp) TH_LOG("import pinned: %s", strerror(-self->hp));
	self->obs = p2pt_import(l->lab.dev, l->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, self->obs);
	if (!l->dma)
		TH_LOG("%s: no DMA to ivshmem in this boot (route %s): bytes move by CPU only",
		       l->imp, p2pt_route_name(l->route));
}

/*
 * Runtime PM of ivshmem: allowed ("auto", which vfio-pci sets when it
 * binds) or forbidden ("on", the PCI default); the old value in @old.
 */
static int runtime_pm(struct vdb_lab *l, const char *control, char old[8])
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/power/control",
		 l->lab.ivshmem);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (!fgets(old, 8, f))
		old[0] = '\0';
	old[strcspn(old, "\n")] = '\0';
	fclose(f);
	return lab_sysfs_write(path, control);
}

/* Wait up to @ms for ivshmem's runtime PM status to read @want. */
static bool runtime_status_is(struct vdb_lab *l, const char *want, int ms)
{
	char path[PATH_MAX], buf[32];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/power/runtime_status",
		 l->lab.ivshmem);
	for (; ms >= 0; ms -= 10) {
		f = fopen(path, "re");
		if (f) {
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = '\0';
			fclose(f);
			if (!strncmp(buf, want, strlen(want)))
				return true;
		}
		usleep(10000);
	}
	return false;
}

FIXTURE_TEARDOWN(revoke)
{
	char old[8];

	if (self->fd >= 0)
		close(self->fd);
	if (self->pm_control[0])
		runtime_pm(&self->l, self->pm_control, old);
	vdb_lab_restore(&self->l);
}

/*
 * Map h and hp (where the route allows), vmap h, after @revokes revokes
 * (each lifted again); checks the state.
 */
static void arm(struct __test_metadata *_metadata, FIXTURE_DATA(revoke) *self,
		unsigned int revokes)
{
	unsigned int notified = vdb_notified(revokes, true);
	struct vdb_lab *l = &self->l;
	unsigned int mapped = l->can_map ? P2PT_STATUS_MAPPED : 0;
	struct p2pt_map m;

	if (l->can_map) {
		ASSERT_EQ(0, p2pt_map(l->lab.dev, self->h, P2PT_DIR_BIDIRECTIONAL, &m));
		vdb_check_map(_metadata, l, &m, &self->r, 1);
		ASSERT_EQ(0, p2pt_map(l->lab.dev, self->hp, P2PT_DIR_TO_DEVICE, &m));
	}
	ASSERT_EQ(0, p2pt_vmap(l->lab.dev, self->h));
	vdb_check_status(_metadata, l, self->h, mapped | P2PT_STATUS_VMAPPED |
			 P2PT_STATUS_VMAP_IOMEM, notified);
	/*
	 * hp pinned at import; a revoke drops the pin and only a map takes
	 * it again (check_restored() maps where the route allows).
	 */
	vdb_check_status(_metadata, l, self->hp,
			 l->can_map || !notified ? P2PT_STATUS_PINNED | mapped : 0, notified);
	vdb_check_status(_metadata, l, self->obs, 0, notified);
}

/*
 * Revoked for the @n-th time: every import told of each revoke and of each
 * restore before it, holds nothing, cannot map; the dma-buf (if its fd is
 * still open) cannot be imported.
 */
static void check_revoked(struct __test_metadata *_metadata, FIXTURE_DATA(revoke) *self,
			  unsigned int n)
{
	unsigned int notified = vdb_notified(n, false);
	struct vdb_lab *l = &self->l;

	vdb_check_revoked(_metadata, l, self->h, notified);
	vdb_check_revoked(_metadata, l, self->hp, notified);
	vdb_check_revoked(_metadata, l, self->obs, notified);
	if (self->fd < 0)
		return;			/* the test closed the dma-buf's fd */
	EXPECT_EQ(-ENODEV, p2pt_import(l->lab.dev, l->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0));
	EXPECT_EQ(-ENODEV, p2pt_import(l->lab.dev, l->imp, self->fd,
				       P2PT_IMPORT_PINNED_REVOCABLE, 0));
}

/*
 * Usable again after @n revokes: told of the restore, nothing mapped (the
 * revoke dropped the mappings and the pin, and these importers map on
 * access), and everything works.
 */
static void check_restored(struct __test_metadata *_metadata, FIXTURE_DATA(revoke) *self,
			   unsigned int n)
{
	unsigned int notified = vdb_notified(n, true);
	struct vdb_lab *l = &self->l;
	struct p2pt_map m;
	int h;

	vdb_check_status(_metadata, l, self->h, 0, notified);
	vdb_check_status(_metadata, l, self->hp, 0, notified);
	vdb_check_status(_metadata, l, self->obs, 0, notified);
	vdb_check_works(_metadata, l, self->h, &self->r, 1);
	if (l->can_map) {
		ASSERT_EQ(0, p2pt_map(l->lab.dev, self->hp, P2PT_DIR_TO_DEVICE, &m));
		vdb_check_status(_metadata, l, self->hp, P2PT_STATUS_PINNED | P2PT_STATUS_MAPPED,
				 notified);
		ASSERT_EQ(0, p2pt_unmap(l->lab.dev, self->hp));
	}
	h = p2pt_import(l->lab.dev, l->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	EXPECT_LT(0, h) TH_LOG("import after the revoke: %s", strerror(-h));
	if (h > 0) {
		EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	}
}

/* The end of a test: nothing of the importer left mapped. */
static void check_clean(struct __test_metadata *_metadata, FIXTURE_DATA(revoke) *self)
{
	struct vdb_lab *l = &self->l;

	EXPECT_EQ(0, p2pt_release(l->lab.dev, self->h));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, self->hp));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, self->obs));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
}

/* PCI_COMMAND memory decode off: revoked until it is on again. */
TEST_F_TIMEOUT(revoke, command_memory, 180)
{
	struct vdb_lab *l = &self->l;
	uint16_t cmd;

	arm(_metadata, self, 0);
	ASSERT_EQ(0, vdb_memory(&l->v, false));
	ASSERT_EQ(0, lab_vfio_config_read16(&l->v, PCI_COMMAND, &cmd));
	EXPECT_EQ(0, cmd & PCI_COMMAND_MEMORY);
	check_revoked(_metadata, self, 1);
	/* Writing COMMAND again with memory still off: nothing new. */
	ASSERT_EQ(0, vdb_memory(&l->v, false));
	check_revoked(_metadata, self, 1);
	ASSERT_EQ(0, vdb_memory(&l->v, true));
	check_restored(_metadata, self, 1);

	/* Once more: one more notification. */
	arm(_metadata, self, 1);
	ASSERT_EQ(0, vdb_memory(&l->v, false));
	check_revoked(_metadata, self, 2);
	ASSERT_EQ(0, vdb_memory(&l->v, true));
	check_restored(_metadata, self, 2);
	check_clean(_metadata, self);
}

/* COMMAND writes that leave memory decode on revoke nothing. */
TEST_F_TIMEOUT(revoke, command_other_bits, 120)
{
	struct vdb_lab *l = &self->l;
	unsigned int mapped = l->can_map ? P2PT_STATUS_MAPPED : 0;
	uint16_t cmd;

	arm(_metadata, self, 0);
	ASSERT_EQ(0, lab_vfio_config_read16(&l->v, PCI_COMMAND, &cmd));
	ASSERT_EQ(PCI_COMMAND_MEMORY, cmd & PCI_COMMAND_MEMORY);
	ASSERT_EQ(0, lab_vfio_config_write16(&l->v, PCI_COMMAND, cmd ^ PCI_COMMAND_MASTER));
	ASSERT_EQ(0, lab_vfio_config_write16(&l->v, PCI_COMMAND, cmd));
	ASSERT_EQ(0, vdb_memory(&l->v, true));
	vdb_check_status(_metadata, l, self->h, mapped | P2PT_STATUS_VMAPPED |
			 P2PT_STATUS_VMAP_IOMEM, 0);
	vdb_check_status(_metadata, l, self->hp, P2PT_STATUS_PINNED | mapped, 0);
	vdb_check_status(_metadata, l, self->obs, 0, 0);
	vdb_check_cpu_to_peer(_metadata, l, self->h, 0x100, self->r.offset + 0x100, 256);
	EXPECT_EQ(0, p2pt_vunmap(l->lab.dev, self->h));
	check_clean(_metadata, self);
}

/*
 * A dma-buf made while memory decode is off starts revoked: nothing
 * imports it until memory is on.
 */
TEST_F_TIMEOUT(revoke, created_while_disabled, 120)
{
	struct vdb_lab *l = &self->l;
	struct vfio_region_dma_range r = { .offset = 0x200000, .length = 0x4000 };
	int fd, h;

	ASSERT_EQ(0, vdb_memory(&l->v, false));
	fd = vdb_export(l->v.device, IVSHMEM_BAR, &r, 1);
	ASSERT_LE(0, fd) TH_LOG("export with memory off: %s", strerror(-fd));
	EXPECT_EQ(-ENODEV, p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0));
	EXPECT_EQ(-ENODEV, p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_PINNED_REVOCABLE, 0));
	check_revoked(_metadata, self, 1);
	ASSERT_EQ(0, vdb_memory(&l->v, true));
	h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h) TH_LOG("import with memory on: %s", strerror(-h));
	vdb_check_works(_metadata, l, h, &r, 1);
	vdb_check_status(_metadata, l, h, 0, 0);
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	close(fd);
	check_restored(_metadata, self, 1);
	check_clean(_metadata, self);
}

/* VFIO_DEVICE_RESET: revoked during the reset, usable when it returns. */
TEST_F_TIMEOUT(revoke, device_reset, 180)
{
	struct vdb_lab *l = &self->l;

	if (!vdb_reset_works(&l->v))
		SKIP(return, "VFIO cannot reset ivshmem (no VFIO_DEVICE_FLAGS_RESET)");
	arm(_metadata, self, 0);
	ASSERT_EQ(0, vdb_device_reset(&l->v));
	check_restored(_metadata, self, 1);
	arm(_metadata, self, 1);
	ASSERT_EQ(0, vdb_device_reset(&l->v));
	check_restored(_metadata, self, 2);
	/* A reset with memory off leaves the dma-buf revoked (one notice). */
	ASSERT_EQ(0, vdb_memory(&l->v, false));
	check_revoked(_metadata, self, 3);
	ASSERT_EQ(0, vdb_device_reset(&l->v));
	check_revoked(_metadata, self, 3);
	ASSERT_EQ(0, vdb_memory(&l->v, true));
	check_restored(_metadata, self, 3);
	check_clean(_metadata, self);
}

/*
 * A vmap needs no attachment, so nothing could take one back
 * (videobuf2-vmalloc's DMABUF import vmaps this way): the exporter refuses
 * it, and a revoke then returns. An exporter that gave the vmap would wait
 * in this revoke until the test importer's file is closed.
 */
TEST_F_TIMEOUT(revoke, vmap_unattached_refused, 180)
{
	struct vdb_lab *l = &self->l;

	EXPECT_EQ(-EOPNOTSUPP, p2pt_vmap_unattached(l->lab.dev, self->fd));
	arm(_metadata, self, 0);
	ASSERT_EQ(0, vdb_memory(&l->v, false));
	check_revoked(_metadata, self, 1);
	ASSERT_EQ(0, vdb_memory(&l->v, true));
	check_restored(_metadata, self, 1);
	EXPECT_EQ(-EOPNOTSUPP, p2pt_vmap_unattached(l->lab.dev, self->fd));
	check_clean(_metadata, self);
}

/* VFIO_DEVICE_PCI_HOT_RESET (ivshmem's slot/bus: ivshmem alone). */
TEST_F_TIMEOUT(revoke, hot_reset, 180)
{
	struct vdb_lab *l = &self->l;
	int ret;

	arm(_metadata, self, 0);
	ret = vdb_hot_reset(&l->v);
	ASSERT_EQ(0, ret) TH_LOG("hot reset (%s): %s", l->cdev ? "cdev" : "group",
				 strerror(-ret));
	check_restored(_metadata, self, 1);
	check_clean(_metadata, self);
}

/* Runtime-PM low power: revoked from LOW_POWER_ENTRY to LOW_POWER_EXIT. */
TEST_F_TIMEOUT(revoke, low_power, 180)
{
	struct vdb_lab *l = &self->l;
	int ret;

	arm(_metadata, self, 0);
	ret = vdb_low_power(&l->v, true);
	ASSERT_EQ(0, ret) TH_LOG("LOW_POWER_ENTRY: %s", strerror(-ret));
	check_revoked(_metadata, self, 1);
	ret = vdb_low_power(&l->v, false);
	ASSERT_EQ(0, ret) TH_LOG("LOW_POWER_EXIT: %s", strerror(-ret));
	check_restored(_metadata, self, 1);
	check_clean(_metadata, self);
}

/*
 * Low power with a wake-up eventfd: revoked on entry; once the device has
 * really suspended (runtime PM allowed), any access through VFIO wakes it,
 * which signals the eventfd and ends the low power state, and the dma-bufs
 * are usable again without LOW_POWER_EXIT.
 */
TEST_F_TIMEOUT(revoke, low_power_wakeup, 180)
{
	struct vdb_lab *l = &self->l;
	struct vfio_device_low_power_entry_with_wakeup w = { 0 };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct pollfd pfd;
	uint64_t n = 0;
	int efd, ret;

	/* Runtime PM must be allowed for the device to really suspend. */
	ret = runtime_pm(l, "auto", self->pm_control);
	if (ret == -ENOENT)
		SKIP(return, "no runtime PM in this kernel (CONFIG_PM)");
	ASSERT_EQ(0, ret);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ASSERT_LE(0, efd);
	w.wakeup_eventfd = efd;
	arm(_metadata, self, 0);
	ret = vdb_feature(l->v.device, VFIO_DEVICE_FEATURE_SET |
			  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, &w, sizeof(w));
	ASSERT_EQ(0, ret) TH_LOG("LOW_POWER_ENTRY_WITH_WAKEUP: %s", strerror(-ret));
	/* The runtime suspend may come after the ioctl returns. */
	ASSERT_TRUE(runtime_status_is(l, "suspended", 60000))
		TH_LOG("ivshmem did not runtime-suspend in low power");
	/* Importers do not wake the device. */
	check_revoked(_metadata, self, 1);
	EXPECT_TRUE(runtime_status_is(l, "suspended", 0));
	EXPECT_EQ(-1, read(efd, &n, sizeof(n)));
	EXPECT_EQ(EAGAIN, errno);

	/* An ioctl on the device wakes it. */
	ASSERT_EQ(0, ioctl(l->v.device, VFIO_DEVICE_GET_INFO, &info));
	pfd = (struct pollfd){ .fd = efd, .events = POLLIN };
	ASSERT_EQ(1, poll(&pfd, 1, 5000)) TH_LOG("no wake-up on the eventfd");
	ASSERT_EQ(sizeof(n), read(efd, &n, sizeof(n)));
	EXPECT_EQ(1, n);
	check_restored(_metadata, self, 1);
	/* The wake-up ended low power: an exit now changes nothing. */
	EXPECT_EQ(0, vdb_low_power(&l->v, false));
	vdb_check_status(_metadata, l, self->h, 0, vdb_notified(1, true));
	close(efd);
	check_clean(_metadata, self);
}

/*
 * Closing the VFIO device revokes for good: the old dma-buf stays dead
 * after the device is opened again and memory toggled, its fd closes; a
 * new dma-buf works.
 */
TEST_F_TIMEOUT(revoke, close_device, 180)
{
	struct vdb_lab *l = &self->l;
	int fd, h, err;

	arm(_metadata, self, 0);
	lab_vfio_close(&l->v);
	check_revoked(_metadata, self, 1);

	err = lab_vfio_open(&l->v, l->lab.ivshmem, l->cdev);
	ASSERT_EQ(0, err) TH_LOG("reopen: %s", strerror(-err));
	check_revoked(_metadata, self, 1);
	ASSERT_EQ(0, vdb_memory(&l->v, false));
	ASSERT_EQ(0, vdb_memory(&l->v, true));
	check_revoked(_metadata, self, 1);

	fd = vdb_export(l->v.device, IVSHMEM_BAR, &self->r, 1);
	ASSERT_LE(0, fd) TH_LOG("export after reopening: %s", strerror(-fd));
	h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	vdb_check_works(_metadata, l, h, &self->r, 1);
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	close(fd);
	/* The old handles and fd still release cleanly. */
	check_revoked(_metadata, self, 1);
	EXPECT_EQ(0, close(self->fd));
	self->fd = -1;
	check_revoked(_metadata, self, 1);
	check_clean(_metadata, self);
}

/* Re-bind ivshmem to vfio-pci, open it again, check a new dma-buf. */
static void rebind_and_export(struct __test_metadata *_metadata,
			      FIXTURE_DATA(revoke) *self)
{
	struct vdb_lab *l = &self->l;
	int fd, h, err;

	ASSERT_EQ(0, lab_pci_bind(l->lab.ivshmem, VFIO_PCI_DRIVER));
	err = lab_vfio_open(&l->v, l->lab.ivshmem, l->cdev);
	ASSERT_EQ(0, err) TH_LOG("open after rebinding: %s", strerror(-err));
	check_revoked(_metadata, self, 1);
	fd = vdb_export(l->v.device, IVSHMEM_BAR, &self->r, 1);
	ASSERT_LE(0, fd) TH_LOG("export after rebinding: %s", strerror(-fd));
	h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	vdb_check_works(_metadata, l, h, &self->r, 1);
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	close(fd);
}

/* vfio-pci unbound while dma-bufs are open (the device closed first). */
TEST_F_TIMEOUT(revoke, unbind_after_close, 180)
{
	struct vdb_lab *l = &self->l;

	arm(_metadata, self, 0);
	lab_vfio_close(&l->v);
	check_revoked(_metadata, self, 1);
	ASSERT_EQ(0, lab_pci_unbind(l->lab.ivshmem));
	check_revoked(_metadata, self, 1);
	rebind_and_export(_metadata, self);
	/* Closed after the device was unbound and bound again. */
	EXPECT_EQ(0, close(self->fd));
	self->fd = -1;
	check_revoked(_metadata, self, 1);
	check_clean(_metadata, self);
}

struct unbind {
	const char *bdf;
	volatile int done;
	int ret;
};

static void *unbind_thread(void *arg)
{
	struct unbind *u = arg;

	u->ret = lab_pci_unbind(u->bdf);
	u->done = 1;
	return NULL;
}

/*
 * vfio-pci unbound while the device is still open: the unbind waits for
 * the device fd; closing it revokes, the unbind completes, and the
 * dma-buf fds outlive the driver.
 */
TEST_F_TIMEOUT(revoke, unbind_while_open, 180)
{
	struct vdb_lab *l = &self->l;
	struct unbind u = { .bdf = l->lab.ivshmem };
	pthread_t thread;
	int i;

	arm(_metadata, self, 0);
	ASSERT_EQ(0, pthread_create(&thread, NULL, unbind_thread, &u));
	sleep(2);
	EXPECT_EQ(0, u.done) TH_LOG("the unbind did not wait for the open device");
	close(l->v.device);
	l->v.device = -1;
	for (i = 0; i < 600 && !u.done; i++)
		usleep(100000);
	ASSERT_EQ(1, u.done) TH_LOG("unbind still blocked 60 s after the device was closed");
	pthread_join(thread, NULL);
	EXPECT_EQ(0, u.ret);
	check_revoked(_metadata, self, 1);
	lab_vfio_close(&l->v);
	rebind_and_export(_metadata, self);
	check_clean(_metadata, self);
}

/* --- PM D3hot, PCIe FLR, AF FLR: the NVMe CMB (BAR 2) ------------------ */

#define NVME_CMB_BAR	2

FIXTURE(revoke_pm) {
	struct vdb_lab l;
	const char *name;		/* the lab device exported */
	char bdf[LAB_BDF_LEN];
	unsigned int bar;
	uint64_t bar_start, bar_size;
	struct vfio_region_dma_range r;
	const char *imp;		/* edu2: the path crosses the host bridge */
	bool can_map, dma;
	int fd, h, obs;
};

FIXTURE_VARIANT(revoke_pm) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(revoke_pm, group) {
	.cdev = false,
};

FIXTURE_VARIANT_ADD(revoke_pm, cdev) {
	.cdev = true,
};

FIXTURE_SETUP(revoke_pm)
{
	const char *why = variant->cdev ? vdb_cdev_unavailable() : NULL;

	self->fd = -1;
	if (why)
		SKIP(return, "%s", why);
	/* The device under test is opened by each test (open_target()). */
	ASSERT_EQ(0, vdb_lab_setup_dev(&self->l, variant->cdev, NULL));
	self->imp = self->l.lab.edu2;
	self->can_map = self->l.lab.host_bridge_p2p;	/* THRU_HOST_BRIDGE */
	self->dma = self->can_map;
}

FIXTURE_TEARDOWN(revoke_pm)
{
	if (self->fd >= 0)
		close(self->fd);
	vdb_lab_restore(&self->l);
}

/*
 * Bind lab device @name to vfio-pci, open it, export 64 KiB of its BAR
 * @bar and import it into edu2 twice (one import mapped and vmapped).
 */
static void open_target(struct __test_metadata *_metadata, FIXTURE_DATA(revoke_pm) *self,
			const char *name, unsigned int bar)
{
	struct vdb_lab *l = &self->l;
	int err;

	self->name = name;
	self->bar = bar;
	snprintf(self->bdf, sizeof(self->bdf), "%s", p2pt_orig_bdf(name));
	ASSERT_NE(0, self->bdf[0]);
	ASSERT_EQ(0, lab_pci_bar(self->bdf, bar, &self->bar_start, &self->bar_size));
	ASSERT_LE(0x20000, self->bar_size);
	ASSERT_EQ(0, lab_pci_bind(self->bdf, VFIO_PCI_DRIVER));
	err = lab_vfio_open(&l->v, self->bdf, l->cdev);
	ASSERT_EQ(0, err) TH_LOG("VFIO open of %s: %s", name, strerror(-err));
	self->r.offset = self->bar_size - 0x10000;
	self->r.length = 0x10000;
	self->fd = vdb_export(l->v.device, bar, &self->r, 1);
	ASSERT_LE(0, self->fd) TH_LOG("export of %s BAR %u: %s", name, bar,
				      strerror(-self->fd));
	self->h = p2pt_import(l->lab.dev, self->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, self->h);
	self->obs = p2pt_import(l->lab.dev, self->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, self->obs);
}

/*
 * Bytes through the BAR: written by the CPU through a vmap and read by
 * edu2's DMA, and the other way round (the CPU alone where DMA cannot
 * reach). Leaves h mapped and vmapped when @keep.
 */
static void pm_check_works(struct __test_metadata *_metadata, FIXTURE_DATA(revoke_pm) *self,
			   bool keep)
{
	struct vdb_lab *l = &self->l;
	uint8_t want[1024], got[1024];
	uint64_t a = 0;
	struct p2pt_map m;
	int ret;

	ret = p2pt_map(l->lab.dev, self->h, P2PT_DIR_BIDIRECTIONAL, &m);
	if (self->can_map) {
		ASSERT_EQ(0, ret) TH_LOG("map: %s", strerror(-ret));
		a = m.entries[0].dma_addr;
		if (l->lab.iommu) {
			EXPECT_NE(self->bar_start + self->r.offset, a);
		} else {
			EXPECT_EQ(self->bar_start + self->r.offset, a);
		}
	} else {
		EXPECT_EQ(-EINVAL, ret);
	}
	ret = p2pt_vmap(l->lab.dev, self->h);
	ASSERT_EQ(0, ret) TH_LOG("vmap: %s", strerror(-ret));

	lab_pattern(want, sizeof(want), 0x1000, l->lab.seed ^ 0x5a);
	ASSERT_EQ(0, p2pt_cpu(l->lab.dev, self->h, P2PT_DMA_TO_PEER, 0x1000, want, 1024));
	memset(got, 0, sizeof(got));
	if (self->dma) {
		ASSERT_EQ(0, p2pt_dma(l->lab.dev, self->h, P2PT_DMA_FROM_PEER, a + 0x1000,
				      got, 1024));
	} else {
		ASSERT_EQ(0, p2pt_cpu(l->lab.dev, self->h, P2PT_DMA_FROM_PEER, 0x1000,
				      got, 1024));
	}
	EXPECT_EQ(0, memcmp(want, got, 1024)) TH_LOG("%s BAR %u: CPU write, %s read",
						     self->name, self->bar,
						     self->dma ? "DMA" : "CPU");
	if (self->dma) {
		lab_pattern(want, sizeof(want), 0x3000, ~l->lab.seed);
		ASSERT_EQ(0, p2pt_dma(l->lab.dev, self->h, P2PT_DMA_TO_PEER, a + 0x3000,
				      want, 1024));
		ASSERT_EQ(0, p2pt_cpu(l->lab.dev, self->h, P2PT_DMA_FROM_PEER, 0x3000,
				      got, 1024));
		EXPECT_EQ(0, memcmp(want, got, 1024)) TH_LOG("%s BAR %u: DMA write, CPU read",
							     self->name, self->bar);
	}
	if (!keep) {
		EXPECT_EQ(0, p2pt_vunmap(l->lab.dev, self->h));
		if (self->can_map) {
			EXPECT_EQ(0, p2pt_unmap(l->lab.dev, self->h));
		}
	}
}

static void pm_check_revoked(struct __test_metadata *_metadata,
			     FIXTURE_DATA(revoke_pm) *self, unsigned int n)
{
	struct vdb_lab *l = &self->l;

	vdb_check_revoked(_metadata, l, self->h, vdb_notified(n, false));
	vdb_check_revoked(_metadata, l, self->obs, vdb_notified(n, false));
	EXPECT_EQ(-ENODEV, p2pt_import(l->lab.dev, self->imp, self->fd,
				       P2PT_IMPORT_DYNAMIC, 0));
}

static void pm_check_clean(struct __test_metadata *_metadata, FIXTURE_DATA(revoke_pm) *self)
{
	struct vdb_lab *l = &self->l;

	EXPECT_EQ(0, p2pt_release(l->lab.dev, self->h));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, self->obs));
	p2pt_check_no_resource_maps(_metadata, &l->lab, self->imp);
}

/* PMCSR power state D3hot through the config region, then D0. */
TEST_F_TIMEOUT(revoke_pm, d3hot, 180)
{
	struct vdb_lab *l = &self->l;
	uint16_t pmcsr;
	int pm;

	if (!p2pt_orig_bdf("nvme")[0])
		SKIP(return, "no NVMe in the lab");
	pm = lab_pci_find_cap(p2pt_orig_bdf("nvme"), PCI_CAP_ID_PM);
	if (pm < 0)
		SKIP(return, "the lab's NVMe has no PCI PM capability (D3hot)");
	open_target(_metadata, self, "nvme", NVME_CMB_BAR);
	pm_check_works(_metadata, self, true);
	ASSERT_EQ(0, lab_vfio_config_read16(&l->v, pm + PCI_PM_CTRL, &pmcsr));
	ASSERT_EQ(0, pmcsr & PCI_PM_CTRL_STATE_MASK);
	ASSERT_EQ(0, lab_vfio_config_write16(&l->v, pm + PCI_PM_CTRL,
					     (pmcsr & ~PCI_PM_CTRL_STATE_MASK) | 3));
	ASSERT_EQ(0, lab_vfio_config_read16(&l->v, pm + PCI_PM_CTRL, &pmcsr));
	EXPECT_EQ(3, pmcsr & PCI_PM_CTRL_STATE_MASK);
	pm_check_revoked(_metadata, self, 1);
	ASSERT_EQ(0, lab_vfio_config_write16(&l->v, pm + PCI_PM_CTRL,
					     pmcsr & ~PCI_PM_CTRL_STATE_MASK));
	vdb_check_status(_metadata, l, self->h, 0, vdb_notified(1, true));
	pm_check_works(_metadata, self, false);
	vdb_check_status(_metadata, l, self->obs, 0, vdb_notified(1, true));
	pm_check_clean(_metadata, self);
}

/* PCIe FLR (DEVCTL.BCR_FLR through the config region). */
TEST_F_TIMEOUT(revoke_pm, pcie_flr, 180)
{
	struct vdb_lab *l = &self->l;
	uint32_t devcap = 0;
	uint16_t devctl;
	int exp;

	if (!p2pt_orig_bdf("nvme")[0])
		SKIP(return, "no NVMe in the lab");
	exp = lab_pci_find_cap(p2pt_orig_bdf("nvme"), PCI_CAP_ID_EXP);
	if (exp >= 0) {
		ASSERT_EQ(0, lab_pci_config_read(p2pt_orig_bdf("nvme"), exp + PCI_EXP_DEVCAP,
						 &devcap, sizeof(devcap)));
	}
	if (exp < 0 || !(devcap & PCI_EXP_DEVCAP_FLR))
		SKIP(return, "the lab's NVMe has no PCIe FLR (DEVCAP.FLR)");
	open_target(_metadata, self, "nvme", NVME_CMB_BAR);
	pm_check_works(_metadata, self, true);
	ASSERT_EQ(0, lab_vfio_config_read16(&l->v, exp + PCI_EXP_DEVCTL, &devctl));
	ASSERT_EQ(0, lab_vfio_config_write16(&l->v, exp + PCI_EXP_DEVCTL,
					     devctl | PCI_EXP_DEVCTL_BCR_FLR));
	/* The reset is over when the write returns: usable again. */
	vdb_check_status(_metadata, l, self->h, 0, vdb_notified(1, true));
	vdb_check_status(_metadata, l, self->obs, 0, vdb_notified(1, true));
	pm_check_works(_metadata, self, false);
	pm_check_clean(_metadata, self);
}

/*
 * AF FLR (PCI_AF_CTRL.FLR through the config region) on the first lab
 * device with an Advanced Features capability that can FLR, exporting its
 * first MEM BAR of at least 128 KiB.
 */
TEST_F_TIMEOUT(revoke_pm, af_flr, 180)
{
	struct vdb_lab *l = &self->l;
	const char *name = NULL;
	uint64_t start, len;
	unsigned int i, bar = 0;
	uint8_t afcap = 0, ctrl = PCI_AF_CTRL_FLR;
	int af = -1;

	for (i = 0; i < P2PT_LAB_NDEV && !name; i++) {
		const char *bdf = p2pt_orig.bdf[i];

		if (!bdf[0])
			continue;
		af = lab_pci_find_cap(bdf, PCI_CAP_ID_AF);
		if (af < 0 || lab_pci_config_read(bdf, af + PCI_AF_CAP, &afcap, 1) ||
		    !(afcap & PCI_AF_CAP_FLR))
			continue;
		for (bar = 0; bar < 6; bar++)
			if (!lab_pci_bar(bdf, bar, &start, &len) && len >= 0x20000)
				break;
		if (bar < 6)
			name = p2pt_lab_names[i];
	}
	if (!name)
		SKIP(return, "no lab device (ivshmem, edu, edu2, nvme, pci-testdev) has an Advanced Features capability with FLR (PCI_AF_CAP_FLR)");
	open_target(_metadata, self, name, bar);
	pm_check_works(_metadata, self, true);
	ASSERT_EQ(0, lab_vfio_config(&l->v, true, af + PCI_AF_CTRL, &ctrl, 1));
	vdb_check_status(_metadata, l, self->h, 0, vdb_notified(1, true));
	vdb_check_status(_metadata, l, self->obs, 0, vdb_notified(1, true));
	pm_check_works(_metadata, self, false);
	pm_check_clean(_metadata, self);
}

/* VFIO_DEVICE_RESET of the NVMe (an FLR): the same as ivshmem's bus reset. */
TEST_F_TIMEOUT(revoke_pm, nvme_device_reset, 180)
{
	struct vdb_lab *l = &self->l;

	if (!p2pt_orig_bdf("nvme")[0])
		SKIP(return, "no NVMe in the lab");
	open_target(_metadata, self, "nvme", NVME_CMB_BAR);
	if (!vdb_reset_works(&l->v))
		SKIP(return, "VFIO cannot reset the NVMe");
	pm_check_works(_metadata, self, true);
	ASSERT_EQ(0, vdb_device_reset(&l->v));
	vdb_check_status(_metadata, l, self->h, 0, vdb_notified(1, true));
	vdb_check_status(_metadata, l, self->obs, 0, vdb_notified(1, true));
	pm_check_works(_metadata, self, false);
	pm_check_clean(_metadata, self);
}

TEST_HARNESS_MAIN
