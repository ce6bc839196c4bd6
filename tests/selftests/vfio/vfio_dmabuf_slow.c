// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-pci revokes against slow importers. A revoke must not return while
 * an importer can still reach the BAR: these importers give their mapping
 * and vmap back only some time after move_notify (from a workqueue, after
 * one last write to the buffer, as a device finishing the transfers in
 * flight would), or hold an unsignalled fence on the dma-buf until some
 * time after move_notify.
 *
 * For VFIO_DEVICE_RESET, PCI_COMMAND memory decode off and closing the
 * device: the call returns no earlier than the importer's delay, the
 * importer holds nothing when it returns, the last writes are in the host
 * file behind ivshmem BAR 2, and a guard pattern written there after the
 * call stays intact (no byte arrives later, with the BAR decoding again
 * behind vfio-pci's back so that a late write would land). Then many short revokes in a
 * row with random delays: the same every time, and nothing hangs.
 */
#include <time.h>
#include "kselftest_harness.h"
#include "vfio_dmabuf.h"

#define PAGE		4096ULL
#define DELAY_MS	400		/* the slow importer's delay */
#define SLACK_S		0.02		/* clock granularity */
#define ROUNDS		40		/* short revokes in a row */

enum trigger { DEVICE_RESET, MEMORY_OFF, CLOSE_DEVICE };

FIXTURE(slow) {
	struct vdb_lab l;
	struct vfio_region_dma_range r;
	int fd;				/* the dma-buf */
};

FIXTURE_VARIANT(slow) {
	enum trigger trigger;
	unsigned int flags;		/* P2PT_IMPORT_F_* */
	unsigned int mode;		/* P2PT_IMPORT_* */
};

FIXTURE_VARIANT_ADD(slow, reset_deferred) {
	.trigger = DEVICE_RESET,
	.flags = P2PT_IMPORT_F_DEFER | P2PT_IMPORT_F_LATE_WRITE,
};

FIXTURE_VARIANT_ADD(slow, reset_fence) {
	.trigger = DEVICE_RESET,
	.flags = P2PT_IMPORT_F_FENCE,
};

FIXTURE_VARIANT_ADD(slow, memory_off_deferred) {
	.trigger = MEMORY_OFF,
	.flags = P2PT_IMPORT_F_DEFER | P2PT_IMPORT_F_LATE_WRITE,
};

FIXTURE_VARIANT_ADD(slow, memory_off_deferred_pinned) {
	.trigger = MEMORY_OFF,
	.flags = P2PT_IMPORT_F_DEFER | P2PT_IMPORT_F_LATE_WRITE,
	.mode = P2PT_IMPORT_PINNED_REVOCABLE,
};

FIXTURE_VARIANT_ADD(slow, memory_off_fence) {
	.trigger = MEMORY_OFF,
	.flags = P2PT_IMPORT_F_FENCE,
};

FIXTURE_VARIANT_ADD(slow, close_deferred) {
	.trigger = CLOSE_DEVICE,
	.flags = P2PT_IMPORT_F_DEFER | P2PT_IMPORT_F_LATE_WRITE,
};

FIXTURE_VARIANT_ADD(slow, close_fence) {
	.trigger = CLOSE_DEVICE,
	.flags = P2PT_IMPORT_F_FENCE,
};

FIXTURE_SETUP(slow)
{
	struct vdb_lab *l = &self->l;

	self->fd = -1;
	ASSERT_EQ(0, vdb_lab_setup(l, false));
	if (variant->trigger == DEVICE_RESET && !vdb_reset_works(&l->v))
		SKIP(return, "VFIO cannot reset ivshmem here");
	/* Fences come with mappings: none where the route refuses them. */
	if ((variant->flags & P2PT_IMPORT_F_FENCE) && !l->can_map)
		SKIP(return, "%s cannot map ivshmem (route %s): no fence to wait for",
		     l->imp, p2pt_route_name(l->route));
	self->r.offset = 0x600000;
	self->r.length = 0x10000;
	self->fd = vdb_export(l->v.device, IVSHMEM_BAR, &self->r, 1);
	ASSERT_LE(0, self->fd) TH_LOG("export: %s", strerror(-self->fd));
}

FIXTURE_TEARDOWN(slow)
{
	if (self->fd >= 0)
		close(self->fd);
	vdb_lab_restore(&self->l);
}

/* Take the BAR away with @t; the seconds it took. */
static double take_away(struct __test_metadata *_metadata, struct vdb_lab *l, enum trigger t)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	switch (t) {
	case DEVICE_RESET:
		EXPECT_EQ(0, vdb_device_reset(&l->v));
		break;
	case MEMORY_OFF:
		EXPECT_EQ(0, vdb_memory(&l->v, false));
		break;
	case CLOSE_DEVICE:
		lab_vfio_close(&l->v);
		break;
	}
	return vdb_elapsed(&t0);
}

/* Give the BAR back after take_away(@t) (a reset gives it back itself). */
/*
 * The move_notify calls after one take_away(): the revoke, and the restore
 * that a reset does by itself when it is done.
 */
static unsigned int taken_notified(enum trigger t)
{
	return vdb_notified(1, t == DEVICE_RESET);
}

static void restore(struct __test_metadata *_metadata, struct vdb_lab *l, enum trigger t)
{
	if (t == MEMORY_OFF)
		ASSERT_EQ(0, vdb_memory(&l->v, true));
}

/* Are @len bytes at @off of the host file all @byte? */
static void expect_bytes(struct __test_metadata *_metadata, struct vdb_lab *l,
			 uint64_t off, size_t len, uint8_t byte, const char *what)
{
	int64_t bad = p2pt_host_find_not(&l->lab, off, len, byte);

	EXPECT_EQ(-1, bad) TH_LOG("%s: byte at BAR offset 0x%llx is not 0x%02x", what,
				  (long long)bad, byte);
}

/* Import as the variant's slow partner, map (where possible) and vmap. */
static int arm(struct __test_metadata *_metadata, FIXTURE_DATA(slow) *self,
	       const FIXTURE_VARIANT(slow) *variant, unsigned int delay_ms)
{
	struct vdb_lab *l = &self->l;
	struct p2pt_map m;
	int h;

	h = p2pt_import_slow(l->lab.dev, l->imp, self->fd, variant->mode, variant->flags,
			     delay_ms);
	if (h <= 0)
		return h;
	if (l->can_map)
		EXPECT_EQ(0, p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	EXPECT_EQ(0, p2pt_vmap(l->lab.dev, h));
	return h;
}

/*
 * One revoke against the slow partner: it waits for the delay, leaves
 * nothing mapped, the last writes landed before it returned and nothing
 * lands afterwards.
 */
TEST_F_TIMEOUT(slow, revoke_waits, 180)
{
	struct vdb_lab *l = &self->l;
	bool late = variant->flags & P2PT_IMPORT_F_LATE_WRITE;
	uint64_t base = self->r.offset;
	double secs;
	int h;

	ASSERT_EQ(0, p2pt_host_fill(&l->lab, base, self->r.length, 0));
	h = arm(_metadata, self, variant, DELAY_MS);
	ASSERT_LT(0, h) TH_LOG("import: %s", strerror(-h));
	vdb_check_status(_metadata, l, h,
			 (l->can_map ? P2PT_STATUS_MAPPED : 0) |
			 (variant->mode == P2PT_IMPORT_PINNED_REVOCABLE ?
			  P2PT_STATUS_PINNED : 0) |
			 ((variant->flags & P2PT_IMPORT_F_FENCE) ? P2PT_STATUS_FENCE : 0) |
			 P2PT_STATUS_VMAPPED | P2PT_STATUS_VMAP_IOMEM, 0);

	secs = take_away(_metadata, l, variant->trigger);
	EXPECT_LE(DELAY_MS / 1000.0 - SLACK_S, secs)
		TH_LOG("the revoke returned after %.3f s, before the importer's %u ms", secs,
		       DELAY_MS);
	/* Nothing held, no give-back or fence pending, told once (twice: reset). */
	vdb_check_status(_metadata, l, h, 0, taken_notified(variant->trigger));

	if (late) {
		/* The transfers in flight landed before the revoke returned. */
		if (l->dma)
			expect_bytes(_metadata, l, base, P2PT_LATE_LEN, P2PT_LATE_BYTE,
				     "last DMA write");
		expect_bytes(_metadata, l, base + P2PT_LATE_CPU_OFF, P2PT_LATE_LEN,
			     P2PT_LATE_BYTE, "last CPU write");
	}
	/*
	 * And nothing arrives after it returned, though the BAR decodes: the
	 * trigger may have left decoding off (memory off, a reset), where
	 * QEMU would drop a late write.
	 */
	ASSERT_EQ(0, lab_pci_decode_on(l->lab.ivshmem));
	ASSERT_EQ(0, p2pt_host_fill(&l->lab, base, self->r.length, P2PT_GUARD_BYTE));
	usleep(DELAY_MS * 1500);
	expect_bytes(_metadata, l, base, self->r.length, P2PT_GUARD_BYTE,
		     "guard after the revoke");

	if (variant->trigger != CLOSE_DEVICE) {
		restore(_metadata, l, variant->trigger);
		vdb_check_works(_metadata, l, h, &self->r, 1);
	} else {
		vdb_check_revoked(_metadata, l, h, 1);
	}
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
}

/*
 * Many revokes in a row, each against freshly armed slow partners with
 * random short delays (one slow, one fast): each returns no earlier than
 * the slowest, with nothing left mapped.
 */
TEST_F_TIMEOUT(slow, many_revokes, 300)
{
	struct vdb_lab *l = &self->l;
	unsigned int i, delay, most = 0;
	double secs;
	int h, fast;

	if (variant->trigger == CLOSE_DEVICE)
		SKIP(return, "one close per open: revoke_waits covers it");
	srand(l->lab.seed);
	for (i = 0; i < ROUNDS; i++) {
		delay = 1 + rand() % 60;
		most = delay > most ? delay : most;
		h = arm(_metadata, self, variant, delay);
		ASSERT_LT(0, h) TH_LOG("round %u: import: %s", i, strerror(-h));
		fast = p2pt_import(l->lab.dev, l->imp, self->fd, P2PT_IMPORT_DYNAMIC, 0);
		ASSERT_LT(0, fast);
		EXPECT_EQ(0, p2pt_vmap(l->lab.dev, fast));

		secs = take_away(_metadata, l, variant->trigger);
		EXPECT_LE(delay / 1000.0 - SLACK_S, secs)
			TH_LOG("round %u: returned after %.3f s, delay %u ms", i, secs, delay);
		vdb_check_status(_metadata, l, h, 0, taken_notified(variant->trigger));
		vdb_check_status(_metadata, l, fast, 0, taken_notified(variant->trigger));
		restore(_metadata, l, variant->trigger);
		EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
		EXPECT_EQ(0, p2pt_release(l->lab.dev, fast));
		if (_metadata->exit_code)
			break;
	}
	TH_LOG("%u rounds, delays up to %u ms", i, most);
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
}

TEST_HARNESS_MAIN
