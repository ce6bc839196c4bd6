// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO_DEVICE_FEATURE_DMA_BUF of vfio-pci: the feature flags, every bad
 * input with its errno in the documented order of checks, the shapes that
 * are accepted (last page, whole BAR, overlapping and adjacent ranges),
 * open_flags, the dma-buf's size, and which importers the exporter takes
 * (the test importer of p2p_dmabuf_test). Each test runs with ivshmem
 * opened through the VFIO group and through the device cdev.
 */
#include <sys/resource.h>
#include "kselftest_harness.h"
#include "vfio_dmabuf.h"

#define DMA_BUF_FEATURE		VFIO_DEVICE_FEATURE_DMA_BUF
#define GET			VFIO_DEVICE_FEATURE_GET
#define SET			VFIO_DEVICE_FEATURE_SET
#define PROBE			VFIO_DEVICE_FEATURE_PROBE
#define PAGE			4096ULL

FIXTURE(errors) {
	struct vdb_lab l;
};

FIXTURE_VARIANT(errors) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(errors, group) {
	.cdev = false,
};

FIXTURE_VARIANT_ADD(errors, cdev) {
	.cdev = true,
};

FIXTURE_SETUP(errors)
{
	const char *why = variant->cdev ? vdb_cdev_unavailable() : NULL;

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, vdb_lab_setup(&self->l, variant->cdev));
}

FIXTURE_TEARDOWN(errors)
{
	vdb_lab_restore(&self->l);
}

static int export1(struct vdb_lab *l, uint32_t region, uint64_t off, uint64_t len)
{
	return vdb_export1(l->v.device, region, off, len);
}

/* Size of the dma-buf @fd by fstat() and by lseek(SEEK_END); checks both agree. */
static void check_size(struct __test_metadata *_metadata, int fd, uint64_t want)
{
	struct stat st;

	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(want, (uint64_t)st.st_size);
	EXPECT_EQ((off_t)want, lseek(fd, 0, SEEK_END));
}

/* PROBE answers 0 and creates nothing; with SET it is refused. */
TEST_F(errors, probe)
{
	struct {
		struct vfio_device_feature_dma_buf d;
		struct vfio_region_dma_range r;
	} buf = { .d = { .region_index = IVSHMEM_BAR, .nr_ranges = 1 },
		  .r = { .offset = 0, .length = PAGE } };
	int dev = self->l.v.device, n = lab_fd_state();

	ASSERT_LT(0, n);
	EXPECT_EQ(0, vdb_feature(dev, PROBE | DMA_BUF_FEATURE, NULL, 0));
	EXPECT_EQ(0, vdb_feature(dev, PROBE | GET | DMA_BUF_FEATURE, NULL, 0));
	/* A complete, valid request with PROBE still makes no dma-buf. */
	EXPECT_EQ(0, vdb_feature(dev, PROBE | GET | DMA_BUF_FEATURE, &buf, sizeof(buf)));
	EXPECT_EQ(-EINVAL, vdb_feature(dev, PROBE | SET | DMA_BUF_FEATURE, NULL, 0));
	EXPECT_EQ(-EINVAL, vdb_feature(dev, PROBE | SET | DMA_BUF_FEATURE, &buf, sizeof(buf)));
	EXPECT_EQ(n, lab_fd_state());
}

/* GET only: SET, no operation, GET|SET and a short argsz are refused. */
TEST_F(errors, feature_flags)
{
	struct {
		struct vfio_device_feature_dma_buf d;
		struct vfio_region_dma_range r;
	} buf = { .d = { .region_index = IVSHMEM_BAR, .nr_ranges = 1 },
		  .r = { .offset = 0, .length = PAGE } };
	int dev = self->l.v.device, n = lab_fd_state(), fd;

	EXPECT_EQ(-EINVAL, vdb_feature(dev, SET | DMA_BUF_FEATURE, &buf, sizeof(buf)));
	EXPECT_EQ(-EINVAL, vdb_feature(dev, DMA_BUF_FEATURE, &buf, sizeof(buf)));
	EXPECT_EQ(-EINVAL, vdb_feature(dev, GET | SET | DMA_BUF_FEATURE, &buf, sizeof(buf)));
	/* argsz too short for struct vfio_device_feature_dma_buf. */
	EXPECT_EQ(-EINVAL, vdb_feature(dev, GET | DMA_BUF_FEATURE, &buf, 0));
	EXPECT_EQ(-EINVAL, vdb_feature(dev, GET | DMA_BUF_FEATURE, &buf,
				       sizeof(buf.d) - 1));
	EXPECT_EQ(n, lab_fd_state());

	/* The same request with GET works, also with a larger argsz. */
	fd = vdb_feature(dev, GET | DMA_BUF_FEATURE, &buf, sizeof(buf));
	check_size(_metadata, fd, PAGE);
	close(fd);
	{
		uint8_t big[sizeof(buf) + 64] = { 0 };

		memcpy(big, &buf, sizeof(buf));
		fd = vdb_feature(dev, GET | DMA_BUF_FEATURE, big, sizeof(big));
		check_size(_metadata, fd, PAGE);
		close(fd);
	}
	EXPECT_EQ(n, lab_fd_state());
}

/*
 * Unreadable input: the feature data, the ranges (also when nr_ranges
 * claims more than there is), the argument itself. The region index is
 * checked before the ranges are read.
 */
TEST_F(errors, efault)
{
	struct vfio_device_feature *f;
	struct vfio_device_feature_dma_buf *d;
	int dev = self->l.v.device, n = lab_fd_state();
	uint8_t *mem, *end;

	mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(0, mprotect(mem + PAGE, PAGE, PROT_NONE));
	end = mem + PAGE;

	/* The header is readable, the dma-buf request behind it is not. */
	f = (void *)(end - sizeof(*f));
	f->argsz = sizeof(*f) + sizeof(*d) + sizeof(d->dma_ranges[0]);
	f->flags = GET | DMA_BUF_FEATURE;
	EXPECT_EQ(-1, ioctl(dev, VFIO_DEVICE_FEATURE, f));
	EXPECT_EQ(EFAULT, errno);

	/* The request is readable, its only range is not. */
	f = (void *)(end - sizeof(*f) - sizeof(*d));
	d = (void *)f->data;
	f->argsz = sizeof(*f) + sizeof(*d) + sizeof(d->dma_ranges[0]);
	f->flags = GET | DMA_BUF_FEATURE;
	*d = (struct vfio_device_feature_dma_buf){ .region_index = IVSHMEM_BAR,
						   .nr_ranges = 1 };
	EXPECT_EQ(-1, ioctl(dev, VFIO_DEVICE_FEATURE, f));
	EXPECT_EQ(EFAULT, errno);
	/* ... but a bad region index is found first. */
	d->region_index = VFIO_PCI_ROM_REGION_INDEX;
	EXPECT_EQ(-1, ioctl(dev, VFIO_DEVICE_FEATURE, f));
	EXPECT_EQ(ENODEV, errno);
	/* ... and nr_ranges 0 before that. */
	d->nr_ranges = 0;
	EXPECT_EQ(-1, ioctl(dev, VFIO_DEVICE_FEATURE, f));
	EXPECT_EQ(EINVAL, errno);

	/* One good range, nr_ranges says two: the second is unreadable. */
	f = (void *)(end - sizeof(*f) - sizeof(*d) - sizeof(d->dma_ranges[0]));
	d = (void *)f->data;
	f->argsz = sizeof(*f) + sizeof(*d) + 2 * sizeof(d->dma_ranges[0]);
	f->flags = GET | DMA_BUF_FEATURE;
	*d = (struct vfio_device_feature_dma_buf){ .region_index = IVSHMEM_BAR,
						   .nr_ranges = 2 };
	d->dma_ranges[0].offset = 0;
	d->dma_ranges[0].length = PAGE;
	EXPECT_EQ(-1, ioctl(dev, VFIO_DEVICE_FEATURE, f));
	EXPECT_EQ(EFAULT, errno);
	/* The same with nr_ranges 1 is a good request. */
	d->nr_ranges = 1;
	f->argsz = sizeof(*f) + sizeof(*d) + sizeof(d->dma_ranges[0]);
	{
		int fd = ioctl(dev, VFIO_DEVICE_FEATURE, f);

		check_size(_metadata, fd < 0 ? -errno : fd, PAGE);
		close(fd);
	}

	/* The argument itself. */
	EXPECT_EQ(-1, ioctl(dev, VFIO_DEVICE_FEATURE, end));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(dev, VFIO_DEVICE_FEATURE, NULL));
	EXPECT_EQ(EFAULT, errno);
	munmap(mem, 2 * PAGE);
	EXPECT_EQ(n, lab_fd_state());
}

/* nr_ranges, flags and region_index, and the order they are checked in. */
TEST_F(errors, bad_request)
{
	struct vfio_region_dma_range r = { .offset = 0, .length = PAGE };
	static const uint32_t bad_regions[] = {
		VFIO_PCI_ROM_REGION_INDEX, VFIO_PCI_VGA_REGION_INDEX,
		VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_NUM_REGIONS, 0xffffffff,
	};
	int dev = self->l.v.device, n = lab_fd_state(), ret;
	unsigned int i;

	EXPECT_EQ(-EINVAL, vdb_export_raw(dev, IVSHMEM_BAR, O_CLOEXEC, 0, &r, 0));
	EXPECT_EQ(-EINVAL, vdb_export_raw(dev, IVSHMEM_BAR, O_CLOEXEC, 1, &r, 1));
	EXPECT_EQ(-EINVAL, vdb_export_raw(dev, IVSHMEM_BAR, O_CLOEXEC, 0x80000000, &r, 1));
	for (i = 0; i < sizeof(bad_regions) / sizeof(bad_regions[0]); i++) {
		EXPECT_EQ(-ENODEV, vdb_export_raw(dev, bad_regions[i], O_CLOEXEC, 0, &r, 1))
			TH_LOG("region %u", bad_regions[i]);
	}
	/* nr_ranges and flags come before the region index. */
	EXPECT_EQ(-EINVAL, vdb_export_raw(dev, VFIO_PCI_ROM_REGION_INDEX, O_CLOEXEC, 0, &r, 0));
	EXPECT_EQ(-EINVAL, vdb_export_raw(dev, VFIO_PCI_ROM_REGION_INDEX, O_CLOEXEC, 2, &r, 1));
	/* The region index comes before the ranges. */
	r.length = 0;
	EXPECT_EQ(-ENODEV, vdb_export_raw(dev, VFIO_PCI_ROM_REGION_INDEX, O_CLOEXEC, 0, &r, 1));
	r.length = PAGE;

	/*
	 * nr_ranges far beyond what is supplied: the array cannot be
	 * allocated (64 GiB); refused quietly, without an allocation warning
	 * (the guest log check would see one).
	 */
	{
		struct {
			struct vfio_device_feature_dma_buf d;
			struct vfio_region_dma_range r;
		} buf = { .d = { .region_index = IVSHMEM_BAR, .nr_ranges = 0xffffffff },
			  .r = { .offset = 0, .length = PAGE } };

		EXPECT_EQ(-ENOMEM, vdb_feature(dev, GET | DMA_BUF_FEATURE, &buf, sizeof(buf)));
		buf.d.region_index = VFIO_PCI_ROM_REGION_INDEX;
		EXPECT_EQ(-ENODEV, vdb_feature(dev, GET | DMA_BUF_FEATURE, &buf, sizeof(buf)));
		/* 16 MiB of ranges: not allocatable, or unreadable. */
		buf.d.region_index = IVSHMEM_BAR;
		buf.d.nr_ranges = 1 << 20;
		ret = vdb_feature(dev, GET | DMA_BUF_FEATURE, &buf, sizeof(buf));
		EXPECT_TRUE(ret == -ENOMEM || ret == -EFAULT) TH_LOG("got %d", ret);
	}
	EXPECT_EQ(n, lab_fd_state());
}

/* Bad ranges of ivshmem BAR 2 (16 MiB) and of its other BARs. */
TEST_F(errors, bad_ranges)
{
	struct vdb_lab *l = &self->l;
	uint64_t size = l->lab.bar_size;
	struct vfio_region_dma_range r[3];
	int dev = l->v.device, n = lab_fd_state();

	ASSERT_EQ(16ULL << 20, size);
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, 0, 0));		/* empty */
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, 0x800, PAGE));	/* offset */
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, PAGE, 0x1800));	/* length */
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, PAGE, 0x800));
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, 0, 1ULL << 63));	/* bit 63 */
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, size, PAGE));	/* beyond */
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, size - PAGE, 2 * PAGE));
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, 0, size + PAGE));
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, size << 1, PAGE));
	/* BAR start + offset wraps. */
	EXPECT_EQ(-EOVERFLOW, export1(l, IVSHMEM_BAR, 0xfffffffffffff000ULL, PAGE));
	/* Not MEM BARs: unimplemented (1, 4, 5; 3 is BAR 2's upper half). */
	EXPECT_EQ(-EINVAL, export1(l, 1, 0, PAGE));
	EXPECT_EQ(-EINVAL, export1(l, 3, 0, PAGE));
	EXPECT_EQ(-EINVAL, export1(l, 4, 0, PAGE));
	EXPECT_EQ(-EINVAL, export1(l, 5, 0, PAGE));
	/* BAR 0 is a MEM BAR of 256 bytes: a page does not fit. */
	EXPECT_EQ(-EINVAL, export1(l, 0, 0, PAGE));

	/* A bad range after good ones. */
	r[0] = (struct vfio_region_dma_range){ 0, PAGE };
	r[1] = (struct vfio_region_dma_range){ 2 * PAGE, PAGE };
	r[2] = (struct vfio_region_dma_range){ 4 * PAGE, 0 };
	EXPECT_EQ(-EINVAL, vdb_export(dev, IVSHMEM_BAR, r, 3));
	r[2] = (struct vfio_region_dma_range){ size - PAGE, 2 * PAGE };
	EXPECT_EQ(-EINVAL, vdb_export(dev, IVSHMEM_BAR, r, 3));
	r[2] = (struct vfio_region_dma_range){ 0xfffffffffffff000ULL, PAGE };
	EXPECT_EQ(-EOVERFLOW, vdb_export(dev, IVSHMEM_BAR, r, 3));

	/*
	 * Every range is checked for alignment and the total length before
	 * any range is checked against the BAR: range 0 alone would be
	 * EOVERFLOW.
	 */
	r[0] = (struct vfio_region_dma_range){ 0xfffffffffffff000ULL, PAGE };
	r[1] = (struct vfio_region_dma_range){ 0, PAGE };
	r[2] = (struct vfio_region_dma_range){ 0x1800, PAGE };
	EXPECT_EQ(-EINVAL, vdb_export(dev, IVSHMEM_BAR, r, 3));
	r[2] = (struct vfio_region_dma_range){ 0, 0 };
	EXPECT_EQ(-EINVAL, vdb_export(dev, IVSHMEM_BAR, r, 3));
	/* Total length with bit 63 set. */
	r[1] = (struct vfio_region_dma_range){ 0, 0x7ffffffffffff000ULL };
	r[2] = (struct vfio_region_dma_range){ 0, 0x7ffffffffffff000ULL };
	EXPECT_EQ(-EINVAL, vdb_export(dev, IVSHMEM_BAR, r, 3));
	/* Total length overflowing. */
	r[1] = (struct vfio_region_dma_range){ 0, 1ULL << 63 };
	r[2] = (struct vfio_region_dma_range){ 0, 1ULL << 63 };
	EXPECT_EQ(-EINVAL, vdb_export(dev, IVSHMEM_BAR, r, 3));
	EXPECT_EQ(-EINVAL, vdb_export(dev, IVSHMEM_BAR, &r[1], 2));
	EXPECT_EQ(n, lab_fd_state());
}

/* What is accepted, and the size of the dma-buf (the sum of the lengths). */
TEST_F(errors, accepted_shapes)
{
	struct vdb_lab *l = &self->l;
	uint64_t size = l->lab.bar_size;
	struct vfio_region_dma_range r[256];
	int dev = l->v.device, n = lab_fd_state(), fd, fds[32];
	unsigned int i;

	/* The last page of the BAR, the whole BAR. */
	fd = export1(l, IVSHMEM_BAR, size - PAGE, PAGE);
	check_size(_metadata, fd, PAGE);
	close(fd);
	fd = export1(l, IVSHMEM_BAR, 0, size);
	check_size(_metadata, fd, size);
	close(fd);

	/* Overlapping, identical and adjacent ranges are each a part. */
	r[0] = (struct vfio_region_dma_range){ PAGE, 3 * PAGE };
	r[1] = (struct vfio_region_dma_range){ 2 * PAGE, 3 * PAGE };
	r[2] = (struct vfio_region_dma_range){ 2 * PAGE, 3 * PAGE };
	fd = vdb_export(dev, IVSHMEM_BAR, r, 3);
	check_size(_metadata, fd, 9 * PAGE);
	close(fd);
	r[0] = (struct vfio_region_dma_range){ 0, PAGE };
	r[1] = (struct vfio_region_dma_range){ PAGE, PAGE };
	fd = vdb_export(dev, IVSHMEM_BAR, r, 2);
	check_size(_metadata, fd, 2 * PAGE);
	close(fd);
	/* The whole BAR twice. */
	r[0] = (struct vfio_region_dma_range){ 0, size };
	r[1] = (struct vfio_region_dma_range){ 0, size };
	fd = vdb_export(dev, IVSHMEM_BAR, r, 2);
	check_size(_metadata, fd, 2 * size);
	close(fd);

	/* Many ranges: every other page of the first 2 MiB, backwards. */
	for (i = 0; i < 256; i++)
		r[i] = (struct vfio_region_dma_range){ (510 - 2 * i) * PAGE, PAGE };
	fd = vdb_export(dev, IVSHMEM_BAR, r, 256);
	check_size(_metadata, fd, 256 * PAGE);
	close(fd);

	/*
	 * The largest list the kernel copies in (4 MiB: 262144 ranges): the
	 * per-range state is then too big for kmalloc and must not warn.
	 */
	{
		uint32_t nr = 4 * 1024 * 1024 / sizeof(struct vfio_region_dma_range);
		struct vfio_region_dma_range *big = calloc(nr, sizeof(*big));

		ASSERT_NE(NULL, big);
		for (i = 0; i < nr; i++)
			big[i] = (struct vfio_region_dma_range){ (i % 4096) * PAGE, PAGE };
		fd = vdb_export(dev, IVSHMEM_BAR, big, nr);
		free(big);
		check_size(_metadata, fd, (uint64_t)nr * PAGE);
		close(fd);
	}

	/* Many dma-bufs of one device at once, closed in another order. */
	for (i = 0; i < 32; i++) {
		fds[i] = export1(l, IVSHMEM_BAR, i * 0x10000, 0x10000);
		ASSERT_LE(0, fds[i]) TH_LOG("dma-buf %u: %s", i, strerror(-fds[i]));
	}
	for (i = 0; i < 32; i += 2)
		close(fds[i]);
	for (i = 1; i < 32; i += 2)
		close(fds[i]);
	EXPECT_EQ(n, lab_fd_state());
}

/* open_flags reach the new fd: O_CLOEXEC or not. */
TEST_F(errors, open_flags)
{
	struct vfio_region_dma_range r = { .offset = 0, .length = PAGE };
	int dev = self->l.v.device, fd;

	fd = vdb_export_raw(dev, IVSHMEM_BAR, O_CLOEXEC, 0, &r, 1);
	ASSERT_LE(0, fd);
	EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fd = vdb_export_raw(dev, IVSHMEM_BAR, O_RDWR | O_CLOEXEC, 0, &r, 1);
	ASSERT_LE(0, fd);
	EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fd = vdb_export_raw(dev, IVSHMEM_BAR, 0, 0, &r, 1);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fd = vdb_export_raw(dev, IVSHMEM_BAR, O_RDWR, 0, &r, 1);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
}

/* No fd left for the dma-buf: EMFILE, and nothing leaks. */
TEST_F(errors, no_fd_left)
{
	struct rlimit old, lim;
	int n = lab_fd_state(), fd, ret;

	ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
	/* Room for lab_fd_state()'s own directory fd, not for a dma-buf. */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	close(fd);
	lim = old;
	lim.rlim_cur = fd;
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &lim));
	ret = export1(&self->l, IVSHMEM_BAR, 0, PAGE);
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
	EXPECT_EQ(-EMFILE, ret);
	if (ret >= 0)
		close(ret);
	EXPECT_EQ(n, lab_fd_state());
}

/*
 * Importers: peer-to-peer capable and revocable only. A pinned importer
 * that cannot give its pin back (no move_notify) and one without peer2peer
 * are refused; dynamic and pinned-revocable importers are taken, and their
 * mapping has the addresses the route gives.
 */
TEST_F_TIMEOUT(errors, importer_policy, 120)
{
	struct vdb_lab *l = &self->l;
	struct vfio_region_dma_range r = { .offset = 0x100000, .length = 0x10000 };
	struct p2pt_map m;
	int fd, h, hp, ret;

	fd = vdb_export(l->v.device, IVSHMEM_BAR, &r, 1);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC,
					   P2PT_IMPORT_F_NO_P2P));
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(l->lab.dev, l->imp, fd,
					   P2PT_IMPORT_PINNED_REVOCABLE, P2PT_IMPORT_F_NO_P2P));
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_PINNED, 0));
	/*
	 * Without move_notify and without a pin: refused at attach, since a
	 * revoke could never take its mapping back.
	 */
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_UNNOTIFIED, 0));
	/* Refused the same way again: no state left by the first tries. */
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_PINNED, 0));
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_UNNOTIFIED, 0));

	hp = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_PINNED_REVOCABLE, 0);
	ASSERT_LT(0, hp) TH_LOG("import pinned revocable: %s", strerror(-hp));
	vdb_check_status(_metadata, l, hp, P2PT_STATUS_PINNED, 0);
	h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h) TH_LOG("import dynamic: %s", strerror(-h));
	vdb_check_status(_metadata, l, h, 0, 0);

	ret = p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
	if (l->can_map) {
		ASSERT_EQ(0, ret) TH_LOG("map: %s", strerror(-ret));
		vdb_check_map(_metadata, l, &m, &r, 1);
		vdb_check_status(_metadata, l, h, P2PT_STATUS_MAPPED, 0);
		ret = p2pt_map(l->lab.dev, hp, P2PT_DIR_TO_DEVICE, &m);
		ASSERT_EQ(0, ret) TH_LOG("map pinned: %s", strerror(-ret));
		vdb_check_map(_metadata, l, &m, &r, 1);
		vdb_check_status(_metadata, l, hp, P2PT_STATUS_PINNED | P2PT_STATUS_MAPPED, 0);
	} else {
		TH_LOG("%s cannot reach ivshmem (%s): mappings refused", l->imp,
		       p2pt_route_name(l->route));
		EXPECT_EQ(-EINVAL, ret);
		vdb_check_status(_metadata, l, h, 0, 0);
		EXPECT_EQ(-EINVAL, p2pt_map(l->lab.dev, hp, P2PT_DIR_TO_DEVICE, &m));
		vdb_check_status(_metadata, l, hp, P2PT_STATUS_PINNED, 0);
	}
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, hp));
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
	/* The dma-buf fd outlives nothing it should not: close it last. */
	EXPECT_EQ(0, close(fd));
}

/* An I/O-port BAR (pci-testdev BAR 1) is not exported; its MEM BAR 0 is. */
/*
 * Is [@start, @start + @len) claimed by "vfio" in /proc/iomem (a busy
 * region under the BAR's own entry)? 1, 0, or -errno.
 */
static int iomem_claimed(uint64_t start, uint64_t len)
{
	unsigned long long s, e;
	char line[256], name[64];
	FILE *f = fopen("/proc/iomem", "re");
	int found = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %llx-%llx : %63[^\n]", &s, &e, name) != 3)
			continue;
		if (s == start && e == start + len - 1 && !strcmp(name, "vfio"))
			found = 1;
	}
	fclose(f);
	return found;
}

/*
 * Exporting claims the BAR for vfio-pci, as an mmap of it does: from the
 * first dma-buf until the device is closed, nothing else can request it.
 */
TEST_F(errors, bar_claimed)
{
	struct vdb_lab *l = &self->l;
	uint64_t start = l->lab.bar_start, size = l->lab.bar_size;
	int fd;

	ASSERT_EQ(0, iomem_claimed(start, size)) TH_LOG("BAR claimed before any export");
	/* Bad input claims nothing. */
	EXPECT_EQ(-EINVAL, export1(l, IVSHMEM_BAR, size, PAGE));
	EXPECT_EQ(0, iomem_claimed(start, size));

	fd = export1(l, IVSHMEM_BAR, 0, PAGE);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	EXPECT_EQ(1, iomem_claimed(start, size)) TH_LOG("BAR not claimed by the export");
	/* Like an mmap's claim, it lasts until the device is closed. */
	close(fd);
	EXPECT_EQ(1, iomem_claimed(start, size));
	fd = export1(l, IVSHMEM_BAR, PAGE, PAGE);
	ASSERT_LE(0, fd) TH_LOG("second export: %s", strerror(-fd));
	close(fd);
	lab_vfio_close(&l->v);
	EXPECT_EQ(0, iomem_claimed(start, size)) TH_LOG("BAR still claimed after close");
}

/*
 * CPU access maps each range the exporter gives: overlapping ranges map
 * the same bytes twice, and a copy that spans two ranges is split between
 * their mappings. The largest list (262144 x the BAR, 4 TiB here) still
 * exports; mapping it all for the CPU is the importer's choice to make.
 */
TEST_F_TIMEOUT(errors, cpu_overlapping_ranges, 180)
{
	struct vdb_lab *l = &self->l;
	uint64_t size = l->lab.bar_size;
	uint32_t nr = 4 * 1024 * 1024 / sizeof(struct vfio_region_dma_range), i;
	struct vfio_region_dma_range r[2] = { { 0, size }, { 0, size } };
	struct vfio_region_dma_range *big;
	uint8_t want[512], got[512];
	int fd, h;

	/* The whole BAR. */
	fd = vdb_export(l->v.device, IVSHMEM_BAR, r, 1);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	EXPECT_EQ(0, p2pt_vmap(l->lab.dev, h));
	vdb_check_cpu_to_peer(_metadata, l, h, size - PAGE, size - PAGE, 512);
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	close(fd);

	/* Twice the BAR: both halves reach the same bytes. */
	fd = vdb_export(l->v.device, IVSHMEM_BAR, r, 2);
	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	h = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_vmap(l->lab.dev, h));
	vdb_check_status(_metadata, l, h, P2PT_STATUS_VMAPPED | P2PT_STATUS_VMAP_IOMEM, 0);
	vdb_check_cpu_to_peer(_metadata, l, h, size + 0x1000, 0x1000, 512);
	vdb_check_cpu_from_peer(_metadata, l, h, 0x1000, 0x1000, 512);
	/* Across the end of the first range: the BAR's end, then its start. */
	lab_pattern(want, sizeof(want), 0, l->lab.seed ^ 0x5a);
	ASSERT_EQ(0, p2pt_cpu(l->lab.dev, h, P2PT_DMA_TO_PEER, size - 256,
			      want, sizeof(want)));
	ASSERT_EQ(0, p2pt_host_read(&l->lab, size - 256, got, 256));
	EXPECT_EQ(0, memcmp(want, got, 256));
	ASSERT_EQ(0, p2pt_host_read(&l->lab, 0, got, 256));
	EXPECT_EQ(0, memcmp(want + 256, got, 256));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	close(fd);

	/* The largest list, each range the whole BAR. */
	big = calloc(nr, sizeof(*big));
	ASSERT_NE(NULL, big);
	for (i = 0; i < nr; i++)
		big[i] = r[0];
	fd = vdb_export(l->v.device, IVSHMEM_BAR, big, nr);
	free(big);
	check_size(_metadata, fd, (uint64_t)nr * size);
	close(fd);
}

/*
 * An importer that cannot address the BAR: where nothing translates (bus
 * addresses, or the host bridge without an IOMMU) the map fails with
 * EINVAL instead of truncating the address or warning; behind an IOMMU
 * the IOVA is made to fit the mask. The full mask makes it work again.
 */
static void check_dma_mask(struct __test_metadata *_metadata, struct vdb_lab *l,
			   const char *imp, int fd)
{
	unsigned int route = p2pt_lab_route(&l->lab, imp);
	unsigned int bits = 63 - __builtin_clzll(l->lab.bar_start);
	uint64_t mask = (1ULL << bits) - 1;
	struct p2pt_map m;
	int h, ret;

	if (route == P2PT_ROUTE_NOT_SUPPORTED)
		return;
	h = p2pt_import(l->lab.dev, imp, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_dma_mask(l->lab.dev, imp, bits));
	ret = p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
	if (!l->lab.iommu) {
		EXPECT_EQ(-EINVAL, ret) TH_LOG("%s (%s) with a %u-bit mask, BAR at 0x%llx",
					       imp, p2pt_route_name(route), bits,
					       (unsigned long long)l->lab.bar_start);
		vdb_check_status(_metadata, l, h, 0, 0);
	} else {
		ASSERT_EQ(0, ret) TH_LOG("%s behind the IOMMU: %s", imp, strerror(-ret));
		EXPECT_GE(mask, m.entries[0].dma_addr + m.entries[0].len - 1);
		EXPECT_EQ(0, p2pt_unmap(l->lab.dev, h));
	}
	ASSERT_EQ(0, p2pt_dma_mask(l->lab.dev, imp, 64));
	ret = p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
	EXPECT_EQ(0, ret) TH_LOG("%s with the full mask: %s", imp, strerror(-ret));
	if (!ret && !l->lab.iommu)
		EXPECT_EQ(l->lab.bar_start, m.entries[0].dma_addr);
	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	p2pt_check_no_resource_maps(_metadata, &l->lab, imp);
}

TEST_F_TIMEOUT(errors, dma_mask, 120)
{
	struct vdb_lab *l = &self->l;
	int fd = export1(l, IVSHMEM_BAR, 0, 0x10000);

	ASSERT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	check_dma_mask(_metadata, l, l->imp, fd);
	/* Without an IOMMU, edu2 reaches ivshmem through the host bridge. */
	if (!l->lab.iommu)
		check_dma_mask(_metadata, l, l->lab.edu2, fd);
	close(fd);
}

TEST_F_TIMEOUT(errors, io_port_bar, 120)
{
	const char *bdf = p2pt_orig_bdf("testdev");
	struct lab_vfio v;
	uint64_t start, len;
	int fd, err;

	if (!bdf[0])
		SKIP(return, "no pci-testdev in the lab");
	ASSERT_EQ(0, lab_pci_bar(bdf, 0, &start, &len));
	ASSERT_EQ(PAGE, len);
	ASSERT_EQ(0, lab_pci_bind(bdf, VFIO_PCI_DRIVER));
	err = lab_vfio_open(&v, bdf, variant->cdev);
	ASSERT_EQ(0, err) TH_LOG("VFIO open of %s: %s", bdf, strerror(-err));
	EXPECT_EQ(-EINVAL, vdb_export1(v.device, 1, 0, PAGE));
	EXPECT_EQ(-EINVAL, vdb_export1(v.device, 1, 0, 256));
	fd = vdb_export1(v.device, 0, 0, PAGE);
	check_size(_metadata, fd, PAGE);
	close(fd);
	EXPECT_EQ(-EINVAL, vdb_export1(v.device, 0, PAGE, PAGE));
	lab_vfio_close(&v);
}

TEST_HARNESS_MAIN
