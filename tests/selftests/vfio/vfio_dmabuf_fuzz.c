// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO_DEVICE_FEATURE_DMA_BUF with random input: feature flags, argsz,
 * region, open_flags, flags, range counts (up to beyond the largest list
 * the kernel copies in), offsets and lengths (unaligned, empty, beyond the
 * BAR, wrapping, overlapping, the whole BAR many times over).
 *
 * Each call's result is checked against a model of the documented order
 * of checks (Documentation/driver-api/vfio.rst): the same errno, or a
 * dma-buf exactly when the model expects one. Every dma-buf made is
 * imported, and up to MAP_MAX bytes mapped for the CPU (its physical
 * ranges, as rxe maps them) and DMA-mapped by the test importer where the
 * route allows. Afterwards no fd is left
 * and the device closes and unbinds (a leaked registration reference
 * would block that); the run's log must stay free of warnings and
 * kmemleak reports (tests/check). The seed is logged: FUZZ_SEED=<n>
 * repeats a run.
 */
#include "kselftest_harness.h"
#include "vfio_dmabuf.h"

#define PAGE		4096ULL
#define CALLS		10000
#define MAX_LIST	(4 * 1024 * 1024 / sizeof(struct vfio_region_dma_range))
#define MAP_MAX		(64ULL << 20)	/* map dma-bufs up to this size */
#define HDR		sizeof(struct vfio_device_feature)	/* argsz, flags */
#define REQ		sizeof(struct vfio_device_feature_dma_buf)

struct request {
	uint32_t flags;			/* of VFIO_DEVICE_FEATURE */
	uint32_t argsz;
	struct vfio_device_feature_dma_buf d;
	struct vfio_region_dma_range *r;	/* d.nr_ranges of them, or fewer */
	uint32_t nr;			/* ranges in @r */
};

struct bar {
	uint64_t start, len;		/* len 0: not a memory BAR */
};

static uint64_t rnd(void)
{
	return ((uint64_t)random() << 33) ^ ((uint64_t)random() << 11) ^ random();
}

/* True with probability @pct percent. */
static bool chance(unsigned int pct)
{
	return (unsigned int)(random() % 100) < pct;
}

static uint64_t pick_offset(uint64_t size)
{
	switch (random() % 10) {
	case 0:
		return rnd() & ~(PAGE - 1);			/* anywhere, aligned */
	case 1:
		return rnd() % (2 * size);			/* unaligned */
	case 2:
		return size - PAGE * (1 + random() % 4);	/* near the end */
	case 3:
		return -PAGE * (1 + random() % 4);		/* wraps, aligned */
	default:
		return (rnd() % (size / PAGE)) * PAGE;		/* inside */
	}
}

static uint64_t pick_length(uint64_t size)
{
	switch (random() % 12) {
	case 0:
		return 0;
	case 1:
		return 1 + rnd() % PAGE;			/* unaligned */
	case 2:
		return size;					/* whole BAR */
	case 3:
		return (1ULL << 63) + PAGE * (random() % 2);	/* huge */
	case 4:
		return (rnd() | (1ULL << 62)) & ~(PAGE - 1);	/* beyond */
	default:
		return PAGE * (1 + rnd() % (random() % 3 ? 16 : size / PAGE));
	}
}

static void make_request(struct request *q, uint64_t size)
{
	static const uint32_t open_flags[] = {
		O_RDWR | O_CLOEXEC, O_RDONLY, O_WRONLY | O_CLOEXEC, O_RDWR,
	};
	uint32_t i, nr;

	memset(&q->d, 0, sizeof(q->d));
	q->flags = VFIO_DEVICE_FEATURE_GET;
	if (chance(5))
		q->flags = random() & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET |
				       VFIO_DEVICE_FEATURE_PROBE);
	if (chance(1))
		q->flags |= 1U << (19 + random() % 13);		/* unknown flag */
	q->flags |= VFIO_DEVICE_FEATURE_DMA_BUF;

	q->d.region_index = chance(85) ? 2 : random() % 9;
	q->d.open_flags = open_flags[random() % 4];
	q->d.flags = chance(2) ? 1U << (random() % 32) : 0;

	switch (random() % 40) {
	case 0:
		nr = 0;
		break;
	case 1:
		/* The largest lists, now and then (4 MiB copied in). */
		nr = chance(20) ? MAX_LIST - random() % 2 : 1 + random() % 8;
		break;
	case 2:
		nr = MAX_LIST + 1 + random() % 1000;	/* too long to copy in */
		break;
	case 3:
		nr = 17 + random() % 2000;
		break;
	default:
		nr = 1 + random() % 8;
	}
	q->d.nr_ranges = nr;
	q->nr = nr > MAX_LIST ? 0 : nr;		/* never read: ENOMEM first */
	for (i = 0; i < q->nr; i++) {
		if (i && chance(20)) {
			q->r[i] = q->r[random() % i];	/* overlapping, identical */
			continue;
		}
		q->r[i].offset = chance(90) ? (rnd() % (size / PAGE)) * PAGE :
					      pick_offset(size);
		q->r[i].length = chance(85) ? PAGE * (1 + random() % 16) : pick_length(size);
		if (q->r[i].offset < size && q->r[i].length > size - q->r[i].offset &&
		    chance(70))
			q->r[i].length = size - q->r[i].offset;	/* fit it */
	}
	/* The whole BAR over and over: a dma-buf far larger than the BAR. */
	if (q->nr && chance(3))
		for (i = 0; i < q->nr; i++)
			q->r[i] = (struct vfio_region_dma_range){ 0, size };

	q->argsz = HDR + REQ + q->nr * sizeof(*q->r);
	if (chance(3))
		q->argsz = random() % (HDR + REQ);		/* short */
}

/*
 * The documented order of checks (vfio core, then the feature): the errno,
 * 0 for a PROBE, 1 for a new dma-buf.
 */
static int model(const struct request *q, const struct bar *bars, uint64_t *size)
{
	const uint32_t known = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET |
			       VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
	bool probe = q->flags & VFIO_DEVICE_FEATURE_PROBE;
	bool get = q->flags & VFIO_DEVICE_FEATURE_GET;
	bool set = q->flags & VFIO_DEVICE_FEATURE_SET;
	const struct bar *b = &bars[q->d.region_index % 6];
	uint64_t total = 0, end;
	uint32_t i;

	if (q->argsz < HDR || (q->flags & ~known) || (!probe && set && get))
		return -EINVAL;
	if (set)				/* GET only */
		return -EINVAL;
	if (probe)
		return 0;
	if (!get || q->argsz - HDR < REQ)
		return -EINVAL;
	if (!q->d.nr_ranges || q->d.flags)
		return -EINVAL;
	if (q->d.region_index >= VFIO_PCI_ROM_REGION_INDEX)
		return -ENODEV;
	if (q->d.nr_ranges > MAX_LIST)
		return -ENOMEM;			/* the list is not copied in */
	for (i = 0; i < q->nr; i++) {
		if (!q->r[i].length || q->r[i].offset % PAGE || q->r[i].length % PAGE)
			return -EINVAL;
		if (__builtin_add_overflow(total, q->r[i].length, &total))
			return -EINVAL;
	}
	if (total >> 63)
		return -EINVAL;
	if (!b->len)
		return -EINVAL;			/* not a memory BAR */
	for (i = 0; i < q->nr; i++) {
		if (__builtin_add_overflow(b->start, q->r[i].offset, &end) ||
		    __builtin_add_overflow(end, q->r[i].length, &end))
			return -EOVERFLOW;
		if (end > b->start + b->len)
			return -EINVAL;
	}
	*size = total;
	return 1;
}

static int call(int device, const struct request *q)
{
	size_t len = HDR + REQ + q->nr * sizeof(*q->r);
	struct vfio_device_feature *f = calloc(1, len);
	int ret;

	if (!f)
		return -ENOMEM;
	f->argsz = q->argsz;
	f->flags = q->flags;
	memcpy(f->data, &q->d, REQ);
	memcpy(f->data + REQ, q->r, q->nr * sizeof(*q->r));
	ret = ioctl(device, VFIO_DEVICE_FEATURE, f);
	ret = ret < 0 ? -errno : ret;
	free(f);
	return ret;
}

FIXTURE(fuzz) {
	struct vdb_lab l;
};

FIXTURE_SETUP(fuzz)
{
	ASSERT_EQ(0, vdb_lab_setup(&self->l, false));
}

FIXTURE_TEARDOWN(fuzz)
{
	vdb_lab_restore(&self->l);
}

/* Use a dma-buf as importers would; every step must work or be refused as documented. */
static void use(struct __test_metadata *_metadata, struct vdb_lab *l, int fd, uint64_t size,
		unsigned int call_nr)
{
	struct p2pt_map m;
	int h, ret;

	h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h) TH_LOG("call %u: import: %s", call_nr, strerror(-h));
	if (size <= MAP_MAX) {
		ret = p2pt_vmap(l->lab.dev, h);
		EXPECT_EQ(0, ret) TH_LOG("call %u: CPU map of %llu bytes: %s", call_nr,
					 (unsigned long long)size, strerror(-ret));
	}
	if (l->can_map && size <= MAP_MAX) {
		ret = p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
		EXPECT_EQ(0, ret) TH_LOG("call %u: map of %llu bytes: %s", call_nr,
					 (unsigned long long)size, strerror(-ret));
	}
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
}

TEST_F_TIMEOUT(fuzz, feature_dma_buf, 600)
{
	struct vdb_lab *l = &self->l;
	unsigned int seed, i, made = 0, probes = 0, mismatches = 0;
	unsigned int errnos[160] = { 0 };
	struct bar bars[6] = { 0 };
	struct request q;
	uint64_t size = 0;
	int fds = lab_fd_state(), want, got, e;

	seed = getenv("FUZZ_SEED") ? strtoul(getenv("FUZZ_SEED"), NULL, 0) : l->lab.seed;
	srandom(seed);
	TH_LOG("seed %u (FUZZ_SEED=%u repeats this run)", seed, seed);
	for (i = 0; i < 6; i++)
		if (lab_pci_bar(l->lab.ivshmem, i, &bars[i].start, &bars[i].len))
			bars[i].len = 0;
	ASSERT_EQ(l->lab.bar_size, bars[IVSHMEM_BAR].len);
	q.r = calloc(MAX_LIST, sizeof(*q.r));
	ASSERT_NE(NULL, q.r);

	for (i = 0; i < CALLS; i++) {
		make_request(&q, l->lab.bar_size);
		want = model(&q, bars, &size);
		got = call(l->v.device, &q);
		/* Copying a long list in needs a costly allocation, which may fail. */
		if (got == -ENOMEM && q.nr * sizeof(*q.r) > 32768)
			want = -ENOMEM;
		if (got >= 0 && want == 1) {
			made++;
			use(_metadata, l, got, size, i);
			close(got);
		} else if (got != want) {
			if (got > 0)
				close(got);
			if (mismatches++ < 10)
				TH_LOG("call %u: flags 0x%x argsz %u region %u flags 0x%x nr %u: %d, expected %d",
				       i, q.flags, q.argsz, q.d.region_index, q.d.flags,
				       q.d.nr_ranges, got, want);
		} else if (!got) {
			probes++;
		}
		e = got < 0 ? -got : 0;
		errnos[e < 160 ? e : 0]++;
		if (_metadata->exit_code && mismatches > 10)
			break;
	}
	free(q.r);
	EXPECT_EQ(0, mismatches);
	TH_LOG("%u calls: %u dma-bufs, %u probes, EINVAL %u, ENODEV %u, EOVERFLOW %u, ENOMEM %u",
	       i, made, probes, errnos[EINVAL], errnos[ENODEV], errnos[EOVERFLOW],
	       errnos[ENOMEM]);
	/* Every outcome was reached. */
	EXPECT_LT(100, made);
	EXPECT_LT(0, errnos[EINVAL]);
	EXPECT_LT(0, errnos[ENODEV]);
	EXPECT_LT(0, errnos[EOVERFLOW]);
	EXPECT_LT(0, errnos[ENOMEM]);
	EXPECT_EQ(fds, lab_fd_state());
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
	/* Nothing holds the device: it closes and vfio-pci lets it go. */
	lab_vfio_close(&l->v);
	EXPECT_EQ(0, lab_pci_bind(l->lab.ivshmem, P2PT_EXPORTER_DRIVER));
}

TEST_HARNESS_MAIN
