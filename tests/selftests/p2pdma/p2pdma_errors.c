// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input to the P2P dma-buf test exporter and importer
 * (p2p_dmabuf_test module): every refusal has its errno and leaves no
 * state behind; a system-memory dma-buf (dma-heap) goes through the same
 * importer as a foreign exporter.
 */
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include "kselftest_harness.h"
#include "p2pt_test.h"

FIXTURE(errors) {
	struct p2pt_lab lab;
};

FIXTURE_SETUP(errors)
{
	ASSERT_EQ(0, p2pt_lab_setup(&self->lab));
}

FIXTURE_TEARDOWN(errors)
{
	EXPECT_EQ(0, p2pt_lab_restore(&self->lab));
}

static int export1(struct p2pt_lab *lab, unsigned int bar, uint64_t off, uint64_t len)
{
	struct p2pt_range r = { .offset = off, .length = len };

	return p2pt_export(lab->dev, lab->ivshmem, bar, &r, 1, NULL);
}

TEST_F(errors, export_bad_ranges)
{
	struct p2pt_lab *lab = &self->lab;
	uint64_t size = lab->bar_size;
	struct p2pt_range many[P2PT_MAX_RANGES + 1];
	struct p2pt_export args;
	unsigned int i;
	int fd;

	EXPECT_EQ(-EINVAL, export1(lab, IVSHMEM_BAR, 0, 0));		/* empty */
	EXPECT_EQ(-EINVAL, export1(lab, IVSHMEM_BAR, 0x800, 0x1000));	/* offset */
	EXPECT_EQ(-EINVAL, export1(lab, IVSHMEM_BAR, 0x1000, 0x1800));	/* length */
	EXPECT_EQ(-EINVAL, export1(lab, IVSHMEM_BAR, size - 0x1000, 0x2000));
	EXPECT_EQ(-EINVAL, export1(lab, IVSHMEM_BAR, size, 0x1000));
	EXPECT_EQ(-EINVAL, export1(lab, IVSHMEM_BAR, 0, size + 0x1000));
	EXPECT_EQ(-EINVAL, export1(lab, IVSHMEM_BAR, ~0xfffULL, 0x1000));	/* wraps */
	EXPECT_EQ(-EINVAL, export1(lab, IVSHMEM_BAR, 0x1000, ~0xfffULL));
	EXPECT_EQ(-EINVAL, export1(lab, 1, 0, 0x1000));		/* no BAR 1 */
	EXPECT_EQ(-EINVAL, export1(lab, 6, 0, 0x1000));		/* no such BAR */
	EXPECT_EQ(-EINVAL, export1(lab, 0, 0, 0x1000));		/* 256-byte BAR 0 */

	for (i = 0; i <= P2PT_MAX_RANGES; i++) {
		many[i].offset = i * 0x2000;
		many[i].length = 0x1000;
	}
	EXPECT_EQ(-EINVAL, p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, many, 0, NULL));
	/* One range too many (the wrapper copies at most P2PT_MAX_RANGES). */
	EXPECT_EQ(-EINVAL, p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, many,
				       P2PT_MAX_RANGES + 1, NULL));
	/* A bad range after good ones. */
	many[5].length = 0;
	EXPECT_EQ(-EINVAL, p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, many, 8, NULL));
	many[5].length = 0x1000;

	/* The limits themselves are accepted. */
	fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, many, P2PT_MAX_RANGES, NULL);
	EXPECT_LE(0, fd);
	close(fd);
	fd = export1(lab, IVSHMEM_BAR, size - 0x1000, 0x1000);
	EXPECT_LE(0, fd);
	close(fd);

	/* Flags, device name. */
	memset(&args, 0, sizeof(args));
	snprintf(args.bdf, sizeof(args.bdf), "%s", lab->ivshmem);
	args.bar = IVSHMEM_BAR;
	args.nr_ranges = 1;
	args.ranges[0].length = 0x1000;
	args.open_flags = O_RDWR | O_APPEND;
	EXPECT_EQ(-EINVAL, p2pt_ioctl(lab->dev, P2PT_IOC_EXPORT, &args));
	args.open_flags = O_RDWR;
	memset(args.bdf, 'x', sizeof(args.bdf));			/* no NUL */
	EXPECT_EQ(-EINVAL, p2pt_ioctl(lab->dev, P2PT_IOC_EXPORT, &args));
	EXPECT_EQ(-ENODEV, p2pt_export(lab->dev, lab->edu, IVSHMEM_BAR, many, 1, NULL));
	EXPECT_EQ(-ENODEV, p2pt_export(lab->dev, "0000:ff:1f.7", IVSHMEM_BAR, many, 1, NULL));
	EXPECT_EQ(-EFAULT, p2pt_ioctl(lab->dev, P2PT_IOC_EXPORT, NULL));
}

/* The dma-buf file carries the requested flags. */
TEST_F(errors, export_open_flags)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_export args;
	int fd, fl;

	memset(&args, 0, sizeof(args));
	snprintf(args.bdf, sizeof(args.bdf), "%s", lab->ivshmem);
	args.bar = IVSHMEM_BAR;
	args.nr_ranges = 1;
	args.ranges[0].length = 0x1000;
	args.open_flags = O_RDWR | O_CLOEXEC;
	fd = p2pt_ioctl(lab->dev, P2PT_IOC_EXPORT, &args);
	ASSERT_LE(0, fd);
	EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD));
	fl = fcntl(fd, F_GETFL);
	EXPECT_EQ(O_RDWR, fl & O_ACCMODE);
	close(fd);
	args.open_flags = O_RDONLY;
	fd = p2pt_ioctl(lab->dev, P2PT_IOC_EXPORT, &args);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, fcntl(fd, F_GETFD));
	close(fd);
}

TEST_F(errors, import_bad_input)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_import args;
	int fd, null;

	fd = export1(lab, IVSHMEM_BAR, 0, 0x1000);
	ASSERT_LE(0, fd);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, null);

	EXPECT_EQ(-EINVAL, p2pt_import(lab->dev, lab->edu, fd, P2PT_IMPORT_UNNOTIFIED + 1, 0));
	EXPECT_EQ(-EINVAL, p2pt_import(lab->dev, lab->edu, fd, P2PT_IMPORT_DYNAMIC,
				       P2PT_IMPORT_FLAGS + 1));
	/* Slow partners: revocable only, a bounded delay, a late write deferred. */
	EXPECT_EQ(-EINVAL, p2pt_import_slow(lab->dev, lab->edu, fd, P2PT_IMPORT_PINNED,
					    P2PT_IMPORT_F_DEFER, 10));
	EXPECT_EQ(-EINVAL, p2pt_import_slow(lab->dev, lab->edu, fd, P2PT_IMPORT_DYNAMIC,
					    P2PT_IMPORT_F_FENCE, P2PT_DELAY_MAX_MS + 1));
	EXPECT_EQ(-EINVAL, p2pt_import_slow(lab->dev, lab->edu, fd, P2PT_IMPORT_DYNAMIC,
					    P2PT_IMPORT_F_LATE_WRITE, 10));
	EXPECT_EQ(-ENODEV, p2pt_import(lab->dev, lab->ivshmem, fd, P2PT_IMPORT_DYNAMIC, 0));
	EXPECT_EQ(-ENODEV, p2pt_import(lab->dev, "0000:ff:1f.7", fd, P2PT_IMPORT_DYNAMIC, 0));
	EXPECT_EQ(-EBADF, p2pt_import(lab->dev, lab->edu, -1, P2PT_IMPORT_DYNAMIC, 0));
	EXPECT_EQ(-EINVAL, p2pt_import(lab->dev, lab->edu, null, P2PT_IMPORT_DYNAMIC, 0));
	EXPECT_EQ(-EINVAL, p2pt_import(lab->dev, lab->edu, lab->dev, P2PT_IMPORT_DYNAMIC, 0));
	memset(&args, 0, sizeof(args));
	memset(args.bdf, '0', sizeof(args.bdf));			/* no NUL */
	args.fd = fd;
	EXPECT_EQ(-EINVAL, p2pt_ioctl(lab->dev, P2PT_IOC_IMPORT, &args));
	EXPECT_EQ(-EFAULT, p2pt_ioctl(lab->dev, P2PT_IOC_IMPORT, (void *)8));
	/* The first valid import gets handle 1: nothing was left allocated. */
	EXPECT_EQ(1, p2pt_import(lab->dev, lab->edu, fd, P2PT_IMPORT_DYNAMIC, 0));
	close(null);
	close(fd);
}

TEST_F(errors, unknown_handles)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_status st;
	struct p2pt_map m;
	uint8_t byte;
	int fd, h;

	fd = export1(lab, IVSHMEM_BAR, 0, 0x1000);
	ASSERT_LE(0, fd);
	h = p2pt_import(lab->dev, lab->edu, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	for (unsigned int bad = 0; bad < 3; bad++) {
		unsigned int hb = bad == 0 ? 0 : bad == 1 ? h + 1 : 0xffffffffu;

		EXPECT_EQ(-ENOENT, p2pt_map(lab->dev, hb, P2PT_DIR_BIDIRECTIONAL, &m));
		EXPECT_EQ(-ENOENT, p2pt_unmap(lab->dev, hb));
		EXPECT_EQ(-ENOENT, p2pt_status(lab->dev, hb, &st));
		EXPECT_EQ(-ENOENT, p2pt_dma(lab->dev, hb, P2PT_DMA_FROM_PEER,
					    lab->bar_start, &byte, 1));
		EXPECT_EQ(-ENOENT, p2pt_release(lab->dev, hb));
	}
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	EXPECT_EQ(-ENOENT, p2pt_release(lab->dev, h));
	EXPECT_EQ(-ENOENT, p2pt_status(lab->dev, h, &st));
	EXPECT_EQ(-ENOTTY, p2pt_ioctl(lab->dev, _IO(P2PT_IOC_MAGIC, 42), NULL));
	close(fd);
}

/* Allocate @len bytes from the system dma-heap; a dma-buf fd or -errno. */
static int heap_alloc(size_t len)
{
	struct dma_heap_allocation_data data = {
		.len = len, .fd_flags = O_RDWR | O_CLOEXEC,
	};
	int heap, ret;

	heap = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);
	if (heap < 0)
		return -errno;
	ret = ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data);
	ret = ret < 0 ? -errno : (int)data.fd;
	close(heap);
	return ret;
}

TEST_F(errors, revoke_foreign_fd)
{
	struct p2pt_lab *lab = &self->lab;
	int heap, null;

	heap = heap_alloc(4096);
	ASSERT_LE(0, heap) TH_LOG("system dma-heap: %s", strerror(-heap));
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, null);
	EXPECT_EQ(-EINVAL, p2pt_revoke(lab->dev, heap));
	EXPECT_EQ(-EINVAL, p2pt_unrevoke(lab->dev, heap));
	EXPECT_EQ(-EINVAL, p2pt_revoke(lab->dev, null));
	EXPECT_EQ(-EINVAL, p2pt_revoke(lab->dev, lab->dev));
	EXPECT_EQ(-EBADF, p2pt_revoke(lab->dev, -1));
	close(null);
	close(heap);
}

TEST_F(errors, map_bad_input)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_map m;
	int fd, h;

	fd = export1(lab, IVSHMEM_BAR, 0x10000, 0x2000);
	ASSERT_LE(0, fd);
	h = p2pt_import(lab->dev, lab->edu, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	EXPECT_EQ(-EINVAL, p2pt_map(lab->dev, h, 3, &m));		/* DMA_NONE */
	EXPECT_EQ(-EINVAL, p2pt_map(lab->dev, h, 0x100, &m));
	EXPECT_EQ(-ENODEV, p2pt_unmap(lab->dev, h));
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	EXPECT_EQ(-EBUSY, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_MAPPED, 0, 1, 0);
	EXPECT_EQ(0, p2pt_unmap(lab->dev, h));
	EXPECT_EQ(-ENODEV, p2pt_unmap(lab->dev, h));
	p2pt_check_status(_metadata, lab, h, 0, 0, 0, 0);
	close(fd);
}

/* DMA outside the mapping, too long, wrong direction: refused, no DMA. */
TEST_F_TIMEOUT(errors, dma_bad_input, 120)
{
	struct p2pt_lab *lab = &self->lab;
	struct p2pt_range r = { .offset = 0x20000, .length = 0x2000 };
	uint8_t buf[P2PT_DMA_MAX + 1];
	const char *imp = p2pt_lab_dma_importer(lab);
	struct p2pt_map m;
	uint64_t a, end;
	int fd, h;

	fd = p2pt_export(lab->dev, lab->ivshmem, IVSHMEM_BAR, &r, 1, NULL);
	ASSERT_LE(0, fd);
	h = p2pt_import(lab->dev, imp ? imp : lab->edu, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	memset(buf, 0, sizeof(buf));
	/* Not mapped yet. */
	EXPECT_EQ(-ENODEV, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, lab->bar_start + r.offset,
				    buf, 16));
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	a = m.entries[0].dma_addr;
	end = a + m.entries[0].len;
	ASSERT_EQ(0, p2pt_host_fill(lab, r.offset - 0x1000, r.length + 0x2000, P2PT_GUARD_BYTE));

	EXPECT_EQ(-EINVAL, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, a - 1, buf, 16));
	EXPECT_EQ(-EINVAL, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, a - 4096, buf, 4096));
	EXPECT_EQ(-EINVAL, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, end - 8, buf, 16));
	EXPECT_EQ(-EINVAL, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, end, buf, 1));
	EXPECT_EQ(-EINVAL, p2pt_dma(lab->dev, h, P2PT_DMA_FROM_PEER, end, buf, 1));
	EXPECT_EQ(-EINVAL, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, ~0ULL - 3, buf, 16));
	EXPECT_EQ(-EINVAL, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, a, buf, 0));
	EXPECT_EQ(-EINVAL, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, a, buf, P2PT_DMA_MAX + 1));
	EXPECT_EQ(-EINVAL, p2pt_dma(lab->dev, h, 2, a, buf, 16));
	EXPECT_EQ(-EFAULT, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, a, NULL, 16));
	/* Nothing reached the BAR. */
	EXPECT_EQ(-1, p2pt_host_find_not(lab, r.offset - 0x1000, r.length + 0x2000,
					 P2PT_GUARD_BYTE));

	/* The mapping's direction limits the DMA's. */
	EXPECT_EQ(0, p2pt_unmap(lab->dev, h));
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_TO_DEVICE, &m));
	EXPECT_EQ(-EPERM, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, m.entries[0].dma_addr,
				   buf, 16));
	EXPECT_EQ(0, p2pt_unmap(lab->dev, h));
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_FROM_DEVICE, &m));
	EXPECT_EQ(-EPERM, p2pt_dma(lab->dev, h, P2PT_DMA_FROM_PEER, m.entries[0].dma_addr,
				   buf, 16));
	EXPECT_EQ(-1, p2pt_host_find_not(lab, r.offset - 0x1000, r.length + 0x2000,
					 P2PT_GUARD_BYTE));

	/* The last bytes of the mapping are inside. */
	if (!imp) {
		TH_LOG("no importer reaches ivshmem by DMA in this boot: in-range DMA left out");
	} else {
		p2pt_check_to_peer(_metadata, lab, h, m.entries[0].dma_addr + m.entries[0].len - 16,
				   r.offset + r.length - 16, 16);
	}
	close(fd);
}

/* Drivers refuse devices they cannot drive. */
TEST_F(errors, importer_refuses_other_devices)
{
	struct p2pt_lab *lab = &self->lab;
	char path[PATH_MAX];

	/* ivshmem is not an edu; driver_override makes the driver try it. */
	ASSERT_EQ(0, lab_pci_unbind(lab->ivshmem));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", lab->ivshmem);
	ASSERT_EQ(0, lab_sysfs_write(path, P2PT_IMPORTER_DRIVER));
	snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s/bind", P2PT_IMPORTER_DRIVER);
	EXPECT_EQ(-ENODEV, lab_sysfs_write(path, lab->ivshmem));
}

/*
 * A system-memory dma-buf (the system dma-heap, not dynamic) through the
 * same importer: route UNKNOWN, edu's DMA lands in the heap pages.
 */
TEST_F_TIMEOUT(errors, foreign_system_heap, 120)
{
	struct p2pt_lab *lab = &self->lab;
	struct dma_buf_sync sync = { 0 };
	uint8_t want[4096];
	struct p2pt_map m;
	uint8_t *cpu;
	int fd, h;

	fd = heap_alloc(2 * 4096);
	ASSERT_LE(0, fd) TH_LOG("system dma-heap: %s", strerror(-fd));
	h = p2pt_import(lab->dev, lab->edu2, fd, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, h);
	ASSERT_EQ(0, p2pt_map(lab->dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	EXPECT_EQ(P2PT_ROUTE_UNKNOWN, m.route);
	ASSERT_LE(1, m.nents);
	TH_LOG("system heap: %u entries, first dma 0x%llx len 0x%llx", m.nents,
	       (unsigned long long)m.entries[0].dma_addr,
	       (unsigned long long)m.entries[0].len);
	p2pt_check_status(_metadata, lab, h, P2PT_STATUS_MAPPED, 0, 0, 0);

	cpu = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, cpu);
	memset(cpu, 0, 2 * 4096);
	lab_pattern(want, sizeof(want), 0, lab->seed);
	ASSERT_EQ(0, p2pt_dma(lab->dev, h, P2PT_DMA_TO_PEER, m.entries[0].dma_addr,
			      want, sizeof(want)));
	sync.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ;
	ASSERT_EQ(0, ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync));
	EXPECT_EQ(0, memcmp(want, cpu, sizeof(want)));
	sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
	ASSERT_EQ(0, ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync));
	munmap(cpu, 2 * 4096);
	EXPECT_EQ(0, p2pt_release(lab->dev, h));
	close(fd);
}

/*
 * Runs last: the lab devices go back to the drivers they had before the
 * tests (vfio-pci at boot) and work there (vfio-pci probes them again).
 */
TEST(lab_devices_restored)
{
	char drv[64];
	int i;

	ASSERT_EQ(0, p2pt_lab_restore_all());
	for (i = 0; i < 3; i++) {
		ASSERT_NE(0, p2pt_orig.bdf[i][0]) TH_LOG("%s not found", p2pt_lab_names[i]);
		lab_pci_driver(p2pt_orig.bdf[i], drv, sizeof(drv));
		EXPECT_STREQ(p2pt_orig.drv[i], drv) TH_LOG("%s", p2pt_lab_names[i]);
		EXPECT_NE(0, strncmp(drv, "p2p_test_", 9)) TH_LOG("%s: %s", p2pt_lab_names[i], drv);
	}
}

TEST_HARNESS_MAIN
