// SPDX-License-Identifier: GPL-2.0
/*
 * IOMMU_IOAS_MAP_FILE: a memfd, and a vfio-pci dma-buf of ivshmem BAR 2,
 * mapped into an IOAS that edu2 is attached to, as a VMM maps guest RAM
 * and another assigned device's BAR. edu2's DMA engine, programmed from
 * user space through its VFIO BAR 0, moves the bytes; they are checked in
 * the memfd and in the host file behind ivshmem BAR 2.
 *
 * A revoke of the dma-buf (memory decode off, reset, close of ivshmem's
 * VFIO device) unmaps it: a DMA to its IOVAs then faults in the IOMMU (the
 * fault is read back from the kernel log) and nothing lands. A restore
 * maps it again without the user doing anything; a close is for good.
 *
 * edu2 sits behind its own root port: it reaches ivshmem through the host
 * bridge, which 6.12's P2PDMA allow-list accepts with the AMD CPU model and
 * refuses with the Intel one. In the Intel boot every map of the dma-buf
 * into edu2's IOAS, and every attach of edu2 to an IOAS that maps it,
 * fails with EREMOTEIO, which the tests check instead of moving bytes.
 *
 * The DMAR faults these tests cause are expected (settings:
 * iommufd_dmabuf.iommu_faults=expected); tests/ktap.py fails any other
 * test during which the IOMMU reports a fault.
 */
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <linux/dma-heap.h>
#include "kselftest_harness.h"
#include "edu_vfio.h"
#include "vfio_dmabuf_ops.h"

#define PAGE		4096ULL
#define MEM_PAGES	4		/* the memfd: edu's source and sink */
#define MEM_IOVA	0x10000000ULL
#define BAR_IOVA	0x40000000ULL
#define BAR_IOVA2	0x48000000ULL
#define GUARD		64		/* bytes checked untouched around a DMA */
#define GUARD_BYTE	0xa5
#define FAULT_WAIT_S	10
#define FAULT_TRIES	3
#define RW		(IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)
#define FIXED		IOMMU_IOAS_MAP_FIXED_IOVA

/* IOMMU_IOAS_MAP_FILE of @len bytes of @fd from @start; 0 or -errno. */
static int map_file(int iommufd, uint32_t ioas, int fd, uint64_t start, uint64_t len,
		    uint32_t flags, uint64_t *iova)
{
	struct iommu_ioas_map_file m = {
		.size = sizeof(m),
		.flags = flags,
		.ioas_id = ioas,
		.fd = fd,
		.start = start,
		.length = len,
		.iova = *iova,
	};

	if (ioctl(iommufd, IOMMU_IOAS_MAP_FILE, &m))
		return -errno;
	*iova = m.iova;
	return 0;
}

/* IOMMU_IOAS_UNMAP; the bytes unmapped or -errno. */
static int64_t unmap(int iommufd, uint32_t ioas, uint64_t iova, uint64_t len)
{
	struct iommu_ioas_unmap u = {
		.size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = len,
	};

	return ioctl(iommufd, IOMMU_IOAS_UNMAP, &u) ? -errno : (int64_t)u.length;
}

static int copy_iova(int iommufd, uint32_t src_ioas, uint64_t src, uint32_t dst_ioas,
		     uint64_t dst, uint64_t len)
{
	struct iommu_ioas_copy c = {
		.size = sizeof(c),
		.flags = RW | FIXED,
		.dst_ioas_id = dst_ioas,
		.src_ioas_id = src_ioas,
		.length = len,
		.dst_iova = dst,
		.src_iova = src,
	};

	return ioctl(iommufd, IOMMU_IOAS_COPY, &c) ? -errno : 0;
}

/* Attach (or move) @v to IOAS or HWPT @pt_id; v->hwpt is the HWPT it got. */
static int attach(struct lab_vfio *v, uint32_t pt_id)
{
	struct vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a), .pt_id = pt_id };

	if (ioctl(v->device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a))
		return -errno;
	v->hwpt = a.pt_id;
	return 0;
}

static int detach(struct lab_vfio *v)
{
	struct vfio_device_detach_iommufd_pt d = { .argsz = sizeof(d) };

	return ioctl(v->device, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d) ? -errno : 0;
}

FIXTURE(map_file) {
	char ivshmem[LAB_BDF_LEN], edu[LAB_BDF_LEN], edu2[LAB_BDF_LEN];
	int iommufd;
	uint32_t ioas;		/* edu2 and ivshmem are attached to it */
	struct edu e;		/* edu2 */
	struct lab_vfio ivs;	/* ivshmem */
	int host;		/* the file behind ivshmem BAR 2 */
	uint64_t bar_len;
	int memfd;		/* MEM_PAGES pages at MEM_IOVA */
	bool reach;		/* edu2 has a P2P route to ivshmem */
	int kmsg;
};

FIXTURE_SETUP(map_file)
{
	uint64_t iova = MEM_IOVA, bar_start;
	int64_t ioas;

	self->iommufd = self->host = self->memfd = self->kmsg = -1;
	self->ivs.device = self->ivs.group = self->ivs.container = self->ivs.iommufd = -1;
	self->e.v = self->ivs;
	if (!lab_iommu_present())
		SKIP(return, "no IOMMU in this boot: iommufd maps nothing for devices");
	ASSERT_EQ(0, lab_pci_find("ivshmem", self->ivshmem));
	ASSERT_EQ(0, lab_pci_find("edu", self->edu));
	ASSERT_EQ(0, lab_pci_find("edu2", self->edu2));
	/* edu shares ivshmem's IOMMU group: VFIO needs the whole group */
	ASSERT_EQ(0, lab_pci_bind(self->ivshmem, VFIO_PCI_DRIVER));
	ASSERT_EQ(0, lab_pci_bind(self->edu, VFIO_PCI_DRIVER));
	ASSERT_EQ(0, lab_pci_bind(self->edu2, VFIO_PCI_DRIVER));
	ASSERT_EQ(0, lab_pci_bar(self->ivshmem, 2, &bar_start, &self->bar_len));

	self->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->iommufd);
	ioas = lab_ioas_alloc(self->iommufd);
	ASSERT_LE(0, ioas);
	self->ioas = ioas;
	ASSERT_EQ(0, edu_open(&self->e, self->edu2, self->iommufd, self->ioas));
	/* The exporting device is in the IOAS too, as in a VM */
	ASSERT_EQ(0, lab_vfio_open_cdev_in(&self->ivs, self->ivshmem, self->iommufd,
					   self->ioas));
	ASSERT_EQ(0, vdb_memory(&self->ivs, true));

	self->host = lab_ivshmem_host_open();
	ASSERT_LE(0, self->host);
	self->memfd = memfd_create("edu-ram", MFD_CLOEXEC);
	ASSERT_LE(0, self->memfd);
	ASSERT_EQ(0, ftruncate(self->memfd, MEM_PAGES * PAGE));
	ASSERT_EQ(0, map_file(self->iommufd, self->ioas, self->memfd, 0, MEM_PAGES * PAGE,
			      RW | FIXED, &iova));
	self->reach = lab_host_bridge_p2p();
	self->kmsg = lab_kmsg_open();
	ASSERT_LE(0, self->kmsg);
}

FIXTURE_TEARDOWN(map_file)
{
	if (self->kmsg >= 0)
		close(self->kmsg);
	if (self->memfd >= 0)
		close(self->memfd);
	if (self->host >= 0)
		close(self->host);
	lab_vfio_close(&self->ivs);
	edu_close(&self->e);
	if (self->iommufd >= 0)
		close(self->iommufd);
}

/* A dma-buf of @n ranges of ivshmem BAR 2; the fd. */
static int export(struct __test_metadata *_metadata, FIXTURE_DATA(map_file) *self,
		  const struct vfio_region_dma_range *r, uint32_t n)
{
	int fd = vdb_export(self->ivs.device, VFIO_PCI_BAR2_REGION_INDEX, r, n);

	EXPECT_LE(0, fd) TH_LOG("export: %s", strerror(-fd));
	return fd;
}

/*
 * Map @len bytes of dma-buf @fd from @start at @iova of @ioas. Where edu2
 * (in self->ioas) has no P2P route to ivshmem the map must fail with
 * EREMOTEIO: then false, and the caller skips what needs the DMA.
 */
static bool map_bar(struct __test_metadata *_metadata, FIXTURE_DATA(map_file) *self,
		    uint32_t ioas, int fd, uint64_t start, uint64_t len, uint64_t iova)
{
	int err = map_file(self->iommufd, ioas, fd, start, len, RW | FIXED, &iova);

	if (!self->reach && ioas == self->ioas) {
		EXPECT_EQ(-EREMOTEIO, err);
		return false;
	}
	EXPECT_EQ(0, err) TH_LOG("map of the dma-buf: %s", strerror(-err));
	return !err;
}

/* Fill the host file at @off with @len bytes of @byte. */
static void host_fill(struct __test_metadata *_metadata, FIXTURE_DATA(map_file) *self,
		      uint64_t off, size_t len, uint8_t byte)
{
	uint8_t buf[EDU_DMA_MAX + 2 * GUARD];

	ASSERT_GE(sizeof(buf), len);
	memset(buf, byte, len);
	ASSERT_EQ((ssize_t)len, pwrite(self->host, buf, len, off));
}

/* Is the host file at @off equal to @want for @len bytes? */
static void host_expect(struct __test_metadata *_metadata, FIXTURE_DATA(map_file) *self,
			uint64_t off, const uint8_t *want, size_t len, const char *what)
{
	uint8_t got[EDU_DMA_MAX + 2 * GUARD];
	size_t i;

	ASSERT_GE(sizeof(got), len);
	ASSERT_EQ((ssize_t)len, pread(self->host, got, len, off));
	for (i = 0; i < len && got[i] == want[i]; i++)
		;
	EXPECT_EQ(len, i) TH_LOG("%s: BAR offset 0x%llx holds 0x%02x, not 0x%02x", what,
				 (unsigned long long)(off + i), got[i], want[i]);
}

/* Is the host file at @off all @byte for @len bytes? */
static void host_expect_fill(struct __test_metadata *_metadata,
			     FIXTURE_DATA(map_file) *self, uint64_t off, size_t len,
			     uint8_t byte, const char *what)
{
	uint8_t want[EDU_DMA_MAX + 2 * GUARD];

	memset(want, byte, sizeof(want));
	host_expect(_metadata, self, off, want, len, what);
}

/* Put @len bytes of @want where edu2 copies from (memfd page 0). */
static void stage(struct __test_metadata *_metadata, FIXTURE_DATA(map_file) *self,
		  const uint8_t *want, size_t len)
{
	ASSERT_EQ((ssize_t)len, pwrite(self->memfd, want, len, 0));
}

/*
 * A DMA write of @len pattern bytes (@seed) to @iova lands at BAR offset
 * @bar_off and nowhere around it, and a DMA read of @iova gives them back.
 */
static void expect_lands(struct __test_metadata *_metadata, FIXTURE_DATA(map_file) *self,
			 uint64_t iova, uint64_t bar_off, uint32_t len, uint32_t seed)
{
	uint8_t want[EDU_DMA_MAX], got[EDU_DMA_MAX];

	lab_pattern(want, len, bar_off, seed);
	host_fill(_metadata, self, bar_off - GUARD, len + 2 * GUARD, GUARD_BYTE);
	stage(_metadata, self, want, len);
	ASSERT_EQ(0, edu_copy(&self->e, MEM_IOVA, iova, len));
	host_expect(_metadata, self, bar_off, want, len, "DMA write");
	host_expect_fill(_metadata, self, bar_off - GUARD, GUARD, GUARD_BYTE, "guard before");
	host_expect_fill(_metadata, self, bar_off + len, GUARD, GUARD_BYTE, "guard after");

	/* And back: the BAR's bytes into memfd page 1 */
	ASSERT_EQ(0, edu_copy(&self->e, iova, MEM_IOVA + PAGE, len));
	ASSERT_EQ((ssize_t)len, pread(self->memfd, got, len, PAGE));
	EXPECT_EQ(0, memcmp(want, got, len)) TH_LOG("DMA read of IOVA 0x%llx",
						    (unsigned long long)iova);
}

/*
 * edu2's DMA write of @len staged bytes to @iova faults in the IOMMU. The
 * kernel log may miss a fault: dmar_fault() rate-limits its reports, and
 * QEMU's VT-d reports none for a write through a read-only IOTLB entry. A
 * DMA whose fault was not reported is tried again, up to FAULT_TRIES
 * times; each must leave the memory as it was (the callers check), and
 * one of them must be reported.
 */
static void expect_write_faults(struct __test_metadata *_metadata,
				FIXTURE_DATA(map_file) *self, uint64_t iova, uint32_t len)
{
	char needle[64];
	int try;

	/* The space: 0x201000 is not 0x2010000 (intel-iommu: "fault addr X [fault reason") */
	snprintf(needle, sizeof(needle), "fault addr 0x%llx ",
		 (unsigned long long)(iova & ~0xfffULL));
	for (try = 1; try <= FAULT_TRIES; try++) {
		lseek(self->kmsg, 0, SEEK_END);
		ASSERT_EQ(0, edu_copy(&self->e, MEM_IOVA, iova, len));
		if (lab_kmsg_wait(self->kmsg, needle, FAULT_WAIT_S))
			break;
		TH_LOG("DMA %d to IOVA 0x%llx: no IOMMU fault reported", try,
		       (unsigned long long)iova);
	}
	EXPECT_GE(FAULT_TRIES, try) TH_LOG("no IOMMU fault reported for IOVA 0x%llx",
					   (unsigned long long)iova);
}

/*
 * A DMA write to @iova (meant for BAR offset @bar_off) faults in the IOMMU
 * and nothing lands.
 */
static void expect_faults(struct __test_metadata *_metadata, FIXTURE_DATA(map_file) *self,
			  uint64_t iova, uint64_t bar_off, uint32_t len)
{
	uint8_t want[EDU_DMA_MAX];

	lab_pattern(want, len, bar_off, 0xbad);
	host_fill(_metadata, self, bar_off, len, GUARD_BYTE);
	stage(_metadata, self, want, len);
	expect_write_faults(_metadata, self, iova, len);
	host_expect_fill(_metadata, self, bar_off, len, GUARD_BYTE, "DMA to a revoked IOVA");
}

/*
 * ivshmem's memory decode is off: a DMA write to @iova faults; turned on,
 * the buffer is restored and the write lands, the user doing nothing else.
 */
static void expect_restored_by_memory_on(struct __test_metadata *_metadata,
					 FIXTURE_DATA(map_file) *self, uint64_t iova,
					 uint64_t bar_off, uint32_t seed)
{
	expect_faults(_metadata, self, iova, bar_off, EDU_DMA_MAX);
	ASSERT_EQ(0, vdb_memory(&self->ivs, true));
	expect_lands(_metadata, self, iova, bar_off, EDU_DMA_MAX, seed);
}

TEST(uapi_matches_upstream)
{
	/* Linux 6.13's include/uapi/linux/iommufd.h, field by field */
	EXPECT_EQ(0x8f, IOMMUFD_CMD_IOAS_MAP_FILE);
	EXPECT_EQ(_IO(';', 0x8f), IOMMU_IOAS_MAP_FILE);
	EXPECT_EQ(40, sizeof(struct iommu_ioas_map_file));
	EXPECT_EQ(0, offsetof(struct iommu_ioas_map_file, size));
	EXPECT_EQ(4, offsetof(struct iommu_ioas_map_file, flags));
	EXPECT_EQ(8, offsetof(struct iommu_ioas_map_file, ioas_id));
	EXPECT_EQ(12, offsetof(struct iommu_ioas_map_file, fd));
	EXPECT_EQ(16, offsetof(struct iommu_ioas_map_file, start));
	EXPECT_EQ(24, offsetof(struct iommu_ioas_map_file, length));
	EXPECT_EQ(32, offsetof(struct iommu_ioas_map_file, iova));
}

/*
 * A counter of /proc/vmstat, or -1; the CPUs' pending differences folded
 * into it first (they lag by up to a per-CPU threshold otherwise).
 */
static long long vmstat(const char *name)
{
	char line[128], key[64];
	long long val = -1, v;
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC);
	bool folded = fd >= 0 && write(fd, "1", 1) == 1;
	FILE *f;

	if (fd >= 0)
		close(fd);
	f = folded ? fopen("/proc/vmstat", "re") : NULL;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lld", key, &v) == 2 && !strcmp(key, name))
			val = v;
	fclose(f);
	return val;
}

/*
 * The 6.13 half: DMA to and from a memfd, at an offset into it too; the
 * pins taken for a mapping are all given back by its unmap.
 */
TEST_F(map_file, memfd_dma)
{
	uint8_t want[EDU_DMA_MAX], got[EDU_DMA_MAX];
	uint64_t iova = MEM_IOVA + 0x100000;
	long long acquired, released;

	lab_pattern(want, sizeof(want), 0, 1);
	stage(_metadata, self, want, sizeof(want));
	ASSERT_EQ(0, edu_copy(&self->e, MEM_IOVA, MEM_IOVA + 2 * PAGE + 0x100, sizeof(want)));
	ASSERT_EQ(sizeof(got), pread(self->memfd, got, sizeof(got), 2 * PAGE + 0x100));
	EXPECT_EQ(0, memcmp(want, got, sizeof(want)));

	/* The same memfd from its page 3, at another IOVA */
	acquired = vmstat("nr_foll_pin_acquired");
	released = vmstat("nr_foll_pin_released");
	ASSERT_LE(0, acquired);
	ASSERT_LE(0, released);
	ASSERT_EQ(0, map_file(self->iommufd, self->ioas, self->memfd, 3 * PAGE, PAGE,
			      RW | FIXED, &iova));
	lab_pattern(want, sizeof(want), 0, 2);
	stage(_metadata, self, want, sizeof(want));
	ASSERT_EQ(0, edu_copy(&self->e, MEM_IOVA, iova + 0x200, sizeof(want)));
	ASSERT_EQ(sizeof(got), pread(self->memfd, got, sizeof(got), 3 * PAGE + 0x200));
	EXPECT_EQ(0, memcmp(want, got, sizeof(want)));
	EXPECT_EQ(PAGE, unmap(self->iommufd, self->ioas, iova, PAGE));
	acquired = vmstat("nr_foll_pin_acquired") - acquired;
	released = vmstat("nr_foll_pin_released") - released;
	EXPECT_LE(1, acquired);
	EXPECT_EQ(acquired, released) TH_LOG("pins taken and given back by map and unmap");
}

/*
 * A memfd's write seals hold against devices as against mmap(): a
 * write-sealed memfd is mapped for reads only (and a DMA write to it
 * faults), and F_SEAL_WRITE is refused (EBUSY) while a writable mapping
 * exists, pinned for a device or not, and granted after its unmap, which
 * left no pin behind.
 */
TEST_F(map_file, memfd_seals)
{
	uint8_t want[EDU_DMA_MAX], got[EDU_DMA_MAX], junk[EDU_DMA_MAX];
	uint64_t iova = MEM_IOVA + 0x200000;
	int m = memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int f = memfd_create("bare", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int64_t bare = lab_ioas_alloc(self->iommufd);

	ASSERT_LE(0, m);
	ASSERT_LE(0, f);
	ASSERT_EQ(0, ftruncate(m, 2 * PAGE));
	ASSERT_EQ(0, ftruncate(f, PAGE));
	lab_pattern(want, sizeof(want), 0, 20);
	ASSERT_EQ(sizeof(want), pwrite(m, want, sizeof(want), PAGE));

	ASSERT_EQ(0, map_file(self->iommufd, self->ioas, m, 0, 2 * PAGE, RW | FIXED, &iova));
	EXPECT_EQ(-1, fcntl(m, F_ADD_SEALS, F_SEAL_WRITE));
	EXPECT_EQ(EBUSY, errno) TH_LOG("F_SEAL_WRITE under a writable mapping");
	EXPECT_EQ(2 * PAGE, unmap(self->iommufd, self->ioas, iova, 2 * PAGE));
	ASSERT_EQ(0, fcntl(m, F_ADD_SEALS, F_SEAL_WRITE))
		TH_LOG("F_SEAL_WRITE after the unmap: %s", strerror(errno));

	EXPECT_EQ(-EPERM, map_file(self->iommufd, self->ioas, m, 0, 2 * PAGE, RW | FIXED,
				   &iova));
	ASSERT_EQ(0, map_file(self->iommufd, self->ioas, m, 0, 2 * PAGE,
			      IOMMU_IOAS_MAP_READABLE | FIXED, &iova));
	/*
	 * The write first: QEMU's VT-d reports a fault only when it walks the
	 * page table, not for a write through a read-only IOTLB entry that
	 * the read would leave.
	 */
	lab_pattern(junk, sizeof(junk), 0, 21);
	stage(_metadata, self, junk, sizeof(junk));
	expect_write_faults(_metadata, self, iova + PAGE, sizeof(junk));
	ASSERT_EQ(sizeof(got), pread(m, got, sizeof(got), PAGE));
	EXPECT_EQ(0, memcmp(want, got, sizeof(want))) TH_LOG("the sealed memfd changed");
	ASSERT_EQ(0, edu_copy(&self->e, iova + PAGE, MEM_IOVA + PAGE, sizeof(want)));
	ASSERT_EQ(sizeof(got), pread(self->memfd, got, sizeof(got), PAGE));
	EXPECT_EQ(0, memcmp(want, got, sizeof(want))) TH_LOG("DMA read of the sealed memfd");
	EXPECT_EQ(2 * PAGE, unmap(self->iommufd, self->ioas, iova, 2 * PAGE));

	/*
	 * In an IOAS without devices nothing is pinned: only the writable
	 * mapping's own count refuses the seal, held by the pages that an
	 * IOAS_COPY shares, and not taken by a read-only mapping.
	 */
	ASSERT_LE(0, bare);
	ASSERT_EQ(0, map_file(self->iommufd, bare, f, 0, PAGE, RW | FIXED, &iova));
	ASSERT_EQ(0, copy_iova(self->iommufd, bare, iova, bare, iova + PAGE, PAGE));
	EXPECT_EQ(PAGE, unmap(self->iommufd, bare, iova, PAGE));
	EXPECT_EQ(-1, fcntl(f, F_ADD_SEALS, F_SEAL_WRITE));
	EXPECT_EQ(EBUSY, errno) TH_LOG("F_SEAL_WRITE under the copy of a writable mapping");
	EXPECT_EQ(PAGE, unmap(self->iommufd, bare, iova + PAGE, PAGE));
	ASSERT_EQ(0, map_file(self->iommufd, bare, f, 0, PAGE,
			      IOMMU_IOAS_MAP_READABLE | FIXED, &iova));
	EXPECT_EQ(0, fcntl(f, F_ADD_SEALS, F_SEAL_WRITE))
		TH_LOG("F_SEAL_WRITE under a read-only mapping: %s", strerror(errno));
	EXPECT_EQ(PAGE, unmap(self->iommufd, bare, iova, PAGE));
	close(f);

	/* F_SEAL_FUTURE_WRITE, seen by memfd_check_seals_mmap() alone */
	f = memfd_create("future", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	ASSERT_LE(0, f);
	ASSERT_EQ(0, ftruncate(f, PAGE));
	ASSERT_EQ(0, fcntl(f, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
	EXPECT_EQ(-EPERM, map_file(self->iommufd, self->ioas, f, 0, PAGE, RW | FIXED, &iova));
	EXPECT_EQ(0, map_file(self->iommufd, self->ioas, f, 0, PAGE,
			      IOMMU_IOAS_MAP_READABLE | FIXED, &iova));
	close(f);
	close(m);
}

TEST_F(map_file, one_range)
{
	struct vfio_region_dma_range r = { .offset = 0x100000, .length = 0x10000 };
	int fd = export(_metadata, self, &r, 1);

	if (!map_bar(_metadata, self, self->ioas, fd, 0, r.length, BAR_IOVA))
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");
	expect_lands(_metadata, self, BAR_IOVA + 0x3800, r.offset + 0x3800, EDU_DMA_MAX, 1);
	expect_lands(_metadata, self, BAR_IOVA + r.length - EDU_DMA_MAX,
		     r.offset + r.length - EDU_DMA_MAX, EDU_DMA_MAX, 2);
	EXPECT_EQ(r.length, unmap(self->iommufd, self->ioas, BAR_IOVA, r.length));
out:
	close(fd);
}

/*
 * Three ranges out of the BAR's order, one contiguous IOVA range: a DMA
 * across the seam of two ranges lands in both, nothing lands between.
 */
TEST_F(map_file, several_ranges)
{
	const struct vfio_region_dma_range r[] = {
		{ .offset = 0x400000, .length = 0x10000 },
		{ .offset = 0x100000, .length = 0x2000 },
		{ .offset = 0x800000, .length = 0x1000 },
	};
	uint8_t want[EDU_DMA_MAX];
	uint64_t seam = BAR_IOVA + r[0].length;
	uint32_t half = EDU_DMA_MAX / 2;
	int fd = export(_metadata, self, r, 3);

	if (!map_bar(_metadata, self, self->ioas, fd, 0, 0x13000, BAR_IOVA))
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");

	lab_pattern(want, sizeof(want), 0, 3);
	host_fill(_metadata, self, r[0].offset + r[0].length - half - GUARD,
		  half + 2 * GUARD, GUARD_BYTE);
	host_fill(_metadata, self, r[1].offset - GUARD, half + 2 * GUARD, GUARD_BYTE);
	stage(_metadata, self, want, sizeof(want));
	ASSERT_EQ(0, edu_copy(&self->e, MEM_IOVA, seam - half, sizeof(want)));
	host_expect(_metadata, self, r[0].offset + r[0].length - half, want, half,
		    "end of range 0");
	host_expect(_metadata, self, r[1].offset, want + half, half, "start of range 1");
	host_expect_fill(_metadata, self, r[0].offset + r[0].length, GUARD, GUARD_BYTE,
			 "after range 0");
	host_expect_fill(_metadata, self, r[1].offset - GUARD, GUARD, GUARD_BYTE,
			 "before range 1");

	expect_lands(_metadata, self, BAR_IOVA + 0x12000 + 0x400, r[2].offset + 0x400,
		     EDU_DMA_MAX, 4);
	EXPECT_EQ(0x13000, unmap(self->iommufd, self->ioas, BAR_IOVA, 0x13000));

	/* Part of the buffer: range 1 alone, from its second page */
	ASSERT_TRUE(map_bar(_metadata, self, self->ioas, fd, 0x11000, PAGE, BAR_IOVA2));
	expect_lands(_metadata, self, BAR_IOVA2 + 0x100, r[1].offset + PAGE + 0x100,
		     EDU_DMA_MAX, 5);
	EXPECT_EQ(PAGE, unmap(self->iommufd, self->ioas, BAR_IOVA2, PAGE));
out:
	close(fd);
}

/* Memory decode off revokes: DMA faults; on again, it lands, unasked. */
TEST_F(map_file, revoke_memory_off)
{
	struct vfio_region_dma_range r = { .offset = 0x200000, .length = 0x8000 };
	int fd = export(_metadata, self, &r, 1);

	if (!map_bar(_metadata, self, self->ioas, fd, 0, r.length, BAR_IOVA))
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");
	expect_lands(_metadata, self, BAR_IOVA + 0x1000, r.offset + 0x1000, EDU_DMA_MAX, 6);
	ASSERT_EQ(0, vdb_memory(&self->ivs, false));
	expect_restored_by_memory_on(_metadata, self, BAR_IOVA + 0x1000, r.offset + 0x1000, 7);
	EXPECT_EQ(r.length, unmap(self->iommufd, self->ioas, BAR_IOVA, r.length));
out:
	close(fd);
}

/*
 * VFIO_DEVICE_RESET revokes around the reset and restores after it; with
 * memory decode off the reset leaves the buffer revoked until it is on.
 */
TEST_F(map_file, revoke_reset)
{
	struct vfio_region_dma_range r = { .offset = 0x300000, .length = 0x4000 };
	int fd = export(_metadata, self, &r, 1);

	if (!vdb_reset_works(&self->ivs))
		SKIP(goto out, "VFIO cannot reset ivshmem here");
	if (!map_bar(_metadata, self, self->ioas, fd, 0, r.length, BAR_IOVA))
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");
	ASSERT_EQ(0, vdb_device_reset(&self->ivs));
	expect_lands(_metadata, self, BAR_IOVA + 0x800, r.offset + 0x800, EDU_DMA_MAX, 8);

	ASSERT_EQ(0, vdb_memory(&self->ivs, false));
	ASSERT_EQ(0, vdb_device_reset(&self->ivs));
	expect_restored_by_memory_on(_metadata, self, BAR_IOVA + 0x800, r.offset + 0x800, 9);
out:
	close(fd);
}

/*
 * Closing ivshmem's VFIO device revokes for good: DMA faults, the area
 * stays until unmapped, and the unmap works. A new open and export map
 * again at the same IOVA.
 */
TEST_F(map_file, revoke_close)
{
	struct vfio_region_dma_range r = { .offset = 0x500000, .length = 0x4000 };
	int fd = export(_metadata, self, &r, 1);
	uint64_t iova = BAR_IOVA;

	if (!map_bar(_metadata, self, self->ioas, fd, 0, r.length, BAR_IOVA))
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");
	expect_lands(_metadata, self, BAR_IOVA, r.offset, EDU_DMA_MAX, 10);
	lab_vfio_close(&self->ivs);
	expect_faults(_metadata, self, BAR_IOVA, r.offset, EDU_DMA_MAX);
	/* The IOVA range is still taken */
	EXPECT_EQ(-EEXIST, map_file(self->iommufd, self->ioas, self->memfd, 0, PAGE,
				    RW | FIXED, &iova));
	/* A closed device's dma-buf cannot be mapped again */
	iova = BAR_IOVA2;
	EXPECT_EQ(-ENODEV, map_file(self->iommufd, self->ioas, fd, 0, r.length, RW | FIXED,
				    &iova));
	EXPECT_EQ(r.length, unmap(self->iommufd, self->ioas, BAR_IOVA, r.length));
	close(fd);

	ASSERT_EQ(0, lab_vfio_open_cdev_in(&self->ivs, self->ivshmem, self->iommufd,
					   self->ioas));
	ASSERT_EQ(0, vdb_memory(&self->ivs, true));
	fd = export(_metadata, self, &r, 1);
	ASSERT_TRUE(map_bar(_metadata, self, self->ioas, fd, 0, r.length, BAR_IOVA));
	expect_lands(_metadata, self, BAR_IOVA, r.offset, EDU_DMA_MAX, 11);
out:
	close(fd);
}

/* An area can be unmapped while revoked; its IOVAs are free afterwards. */
TEST_F(map_file, unmap_while_revoked)
{
	struct vfio_region_dma_range r = { .offset = 0x600000, .length = 0x4000 };
	int fd = export(_metadata, self, &r, 1);

	if (!map_bar(_metadata, self, self->ioas, fd, 0, r.length, BAR_IOVA))
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");
	ASSERT_EQ(0, vdb_memory(&self->ivs, false));
	EXPECT_EQ(r.length, unmap(self->iommufd, self->ioas, BAR_IOVA, r.length));
	/* Mapping a revoked buffer is refused */
	EXPECT_EQ(-ENODEV, map_file(self->iommufd, self->ioas, fd, 0, r.length,
				    RW | FIXED, &(uint64_t){ BAR_IOVA }));
	ASSERT_EQ(0, vdb_memory(&self->ivs, true));
	ASSERT_TRUE(map_bar(_metadata, self, self->ioas, fd, 0, r.length, BAR_IOVA));
	expect_lands(_metadata, self, BAR_IOVA + 0x2000, r.offset + 0x2000, EDU_DMA_MAX, 12);
out:
	close(fd);
}

/*
 * IOMMU_IOAS_COPY from an IOAS without devices into edu2's: the copy maps
 * the same memory, is revoked and restored with it, and outlives the
 * source area. A copy of a revoked buffer is refused.
 */
TEST_F(map_file, copy)
{
	struct vfio_region_dma_range r = { .offset = 0x700000, .length = 0x4000 };
	int fd = export(_metadata, self, &r, 1);
	int64_t src = lab_ioas_alloc(self->iommufd);
	int err;

	ASSERT_LE(0, src);
	ASSERT_TRUE(map_bar(_metadata, self, src, fd, 0, r.length, BAR_IOVA2));
	err = copy_iova(self->iommufd, src, BAR_IOVA2, self->ioas, BAR_IOVA, r.length);
	if (!self->reach) {
		EXPECT_EQ(-EREMOTEIO, err);
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");
	}
	ASSERT_EQ(0, err);
	expect_lands(_metadata, self, BAR_IOVA + 0x1000, r.offset + 0x1000, EDU_DMA_MAX, 13);
	ASSERT_EQ(0, vdb_memory(&self->ivs, false));
	expect_faults(_metadata, self, BAR_IOVA + 0x1000, r.offset + 0x1000, EDU_DMA_MAX);
	EXPECT_EQ(-ENODEV, copy_iova(self->iommufd, src, BAR_IOVA2, self->ioas,
				     BAR_IOVA2, r.length));
	ASSERT_EQ(0, vdb_memory(&self->ivs, true));
	EXPECT_EQ(r.length, unmap(self->iommufd, src, BAR_IOVA2, r.length));
	expect_lands(_metadata, self, BAR_IOVA + 0x1000, r.offset + 0x1000, EDU_DMA_MAX, 14);
out:
	close(fd);
}

/*
 * A domain created after the map (edu2 attached to an IOAS that maps the
 * buffer already) gets it, also when the buffer is revoked at the time;
 * where edu2 has no route, its attach is refused.
 */
TEST_F(map_file, attach_after_map)
{
	struct vfio_region_dma_range r = { .offset = 0x900000, .length = 0x4000 };
	int fd = export(_metadata, self, &r, 1);
	int64_t ioas = lab_ioas_alloc(self->iommufd);
	uint64_t iova = MEM_IOVA;

	ASSERT_LE(0, ioas);
	ASSERT_EQ(0, map_file(self->iommufd, ioas, self->memfd, 0, MEM_PAGES * PAGE,
			      RW | FIXED, &iova));
	ASSERT_TRUE(map_bar(_metadata, self, ioas, fd, 0, r.length, BAR_IOVA));
	ASSERT_EQ(0, detach(&self->e.v));
	if (!self->reach) {
		EXPECT_EQ(-EREMOTEIO, attach(&self->e.v, ioas));
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");
	}
	ASSERT_EQ(0, attach(&self->e.v, ioas));
	expect_lands(_metadata, self, BAR_IOVA + 0x400, r.offset + 0x400, EDU_DMA_MAX, 15);

	/* Attached while revoked: mapped by the restore */
	ASSERT_EQ(0, detach(&self->e.v));
	ASSERT_EQ(0, vdb_memory(&self->ivs, false));
	ASSERT_EQ(0, attach(&self->e.v, ioas));
	expect_restored_by_memory_on(_metadata, self, BAR_IOVA + 0x400, r.offset + 0x400, 16);
out:
	close(fd);
}

/* A HWPT of @ioas allocated for device @devid: its id, or -errno. */
static int64_t hwpt_alloc(int iommufd, uint32_t devid, uint32_t ioas)
{
	struct iommu_hwpt_alloc h = { .size = sizeof(h), .dev_id = devid, .pt_id = ioas };

	return ioctl(iommufd, IOMMU_HWPT_ALLOC, &h) ? -errno : h.out_hwpt_id;
}

static int destroy(int iommufd, uint32_t id)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = id };

	return ioctl(iommufd, IOMMU_DESTROY, &d) ? -errno : 0;
}

/*
 * Two domains in one IOAS: ivshmem's, and a HWPT allocated after the map
 * with edu2 attached to it. The new domain gets the buffer, a revoke
 * unmaps it from both and a restore maps it into both; a HWPT destroyed
 * while the buffer is revoked, or live, leaves the other domain's mapping
 * working; the unmap removes it.
 */
TEST_F(map_file, two_domains)
{
	struct vfio_region_dma_range r = { .offset = 0xc00000, .length = 0x4000 };
	int fd = export(_metadata, self, &r, 1);
	uint64_t iova = BAR_IOVA + 0x800, off = r.offset + 0x800;
	int64_t hwpt;

	if (!map_bar(_metadata, self, self->ioas, fd, 0, r.length, BAR_IOVA))
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");
	hwpt = hwpt_alloc(self->iommufd, self->e.v.devid, self->ioas);
	ASSERT_LE(0, hwpt) TH_LOG("IOMMU_HWPT_ALLOC: %s", strerror((int)-hwpt));
	ASSERT_EQ(0, attach(&self->e.v, hwpt));
	expect_lands(_metadata, self, iova, off, EDU_DMA_MAX, 30);
	ASSERT_EQ(0, vdb_memory(&self->ivs, false));
	expect_restored_by_memory_on(_metadata, self, iova, off, 31);

	/* edu2 back in ivshmem's domain, the HWPT destroyed while revoked */
	ASSERT_EQ(0, vdb_memory(&self->ivs, false));
	ASSERT_EQ(0, attach(&self->e.v, self->ioas));
	ASSERT_EQ(self->ivs.hwpt, self->e.v.hwpt) TH_LOG("edu2 not in ivshmem's domain");
	ASSERT_EQ(0, destroy(self->iommufd, hwpt));
	expect_restored_by_memory_on(_metadata, self, iova, off, 32);

	/* One more HWPT, destroyed while the buffer is live */
	hwpt = hwpt_alloc(self->iommufd, self->e.v.devid, self->ioas);
	ASSERT_LE(0, hwpt);
	ASSERT_EQ(0, destroy(self->iommufd, hwpt));
	expect_lands(_metadata, self, iova, off, EDU_DMA_MAX, 33);
	EXPECT_EQ(r.length, unmap(self->iommufd, self->ioas, BAR_IOVA, r.length));
	expect_faults(_metadata, self, iova, off, EDU_DMA_MAX);
out:
	close(fd);
}

/* The errno table of IOMMU_IOAS_MAP_FILE. */
TEST_F(map_file, errors)
{
	struct vfio_region_dma_range r = { .offset = 0xa00000, .length = 0x4000 };
	struct dma_heap_allocation_data heap = {
		.len = 0x10000, .fd_flags = O_RDWR | O_CLOEXEC,
	};
	int fd = export(_metadata, self, &r, 1);
	int other = lab_ioas_alloc(self->iommufd);
	int iommufd = self->iommufd, ro, efd, hfd;
	char path[64];
	uint64_t iova;

#define MAPF(_ioas, _fd, _start, _len, _flags) \
	(iova = BAR_IOVA2, map_file(iommufd, _ioas, _fd, _start, _len, _flags, &iova))

	ASSERT_LE(0, other);
	/* Arguments, as for IOMMU_IOAS_MAP */
	EXPECT_EQ(-EOPNOTSUPP, MAPF(other, fd, 0, PAGE, RW | FIXED | 0x100));
	EXPECT_EQ(-EINVAL, MAPF(other, fd, 0, PAGE, FIXED));
	EXPECT_EQ(-ENOENT, MAPF(other + 100, fd, 0, PAGE, RW | FIXED));
	EXPECT_EQ(-EOVERFLOW, MAPF(other, fd, 0, UINT64_MAX, RW | FIXED));
	EXPECT_EQ(-EOVERFLOW, MAPF(other, fd, UINT64_MAX, PAGE, RW | FIXED));
	/* Not a file that can be mapped */
	EXPECT_EQ(-EBADF, MAPF(other, -1, 0, PAGE, RW | FIXED));
	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	EXPECT_EQ(-EINVAL, MAPF(other, efd, 0, PAGE, RW | FIXED));
	close(efd);
	EXPECT_EQ(-EBADF, MAPF(other, efd, 0, PAGE, RW | FIXED));
	/* A dma-buf of memory, not described by physical ranges */
	hfd = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);
	if (hfd >= 0 && !ioctl(hfd, DMA_HEAP_IOCTL_ALLOC, &heap)) {
		EXPECT_EQ(-EOPNOTSUPP, MAPF(other, heap.fd, 0, PAGE, RW | FIXED));
		close(heap.fd);
	} else {
		TH_LOG("no system heap: its case not checked");
	}
	if (hfd >= 0)
		close(hfd);
	/* start and length of a dma-buf */
	EXPECT_EQ(-EINVAL, MAPF(other, fd, 0, 0, RW | FIXED));
	EXPECT_EQ(-EINVAL, MAPF(other, fd, 0x800, PAGE, RW | FIXED));
	EXPECT_EQ(-EINVAL, MAPF(other, fd, 0, 0x800, RW | FIXED));
	EXPECT_EQ(-EINVAL, MAPF(other, fd, r.length, PAGE, RW | FIXED));
	EXPECT_EQ(-EINVAL, MAPF(other, fd, PAGE, r.length, RW | FIXED));
	EXPECT_EQ(-EINVAL, MAPF(other, fd, 1ULL << 63, 1ULL << 63, RW | FIXED));
	/* A dma-buf file open read-only maps for DMA reads only */
	hfd = vdb_export_raw(self->ivs.device, VFIO_PCI_BAR2_REGION_INDEX,
			     O_RDONLY | O_CLOEXEC, 0, &r, 1);
	ASSERT_LE(0, hfd);
	EXPECT_EQ(-EPERM, MAPF(other, hfd, 0, PAGE, RW | FIXED));
	EXPECT_EQ(0, MAPF(other, hfd, 0, PAGE, IOMMU_IOAS_MAP_READABLE | FIXED));
	EXPECT_EQ(PAGE, unmap(iommufd, other, BAR_IOVA2, PAGE));
	close(hfd);
	/* Overlap */
	ASSERT_EQ(0, MAPF(other, fd, 0, r.length, RW | FIXED));
	iova = BAR_IOVA2 + PAGE;
	EXPECT_EQ(-EEXIST, map_file(iommufd, other, fd, 0, PAGE, RW | FIXED, &iova));
	/* Revoked, and exported while revoked */
	ASSERT_EQ(0, vdb_memory(&self->ivs, false));
	iova = BAR_IOVA;
	EXPECT_EQ(-ENODEV, map_file(iommufd, other, fd, 0, PAGE, RW | FIXED, &iova));
	hfd = export(_metadata, self, &r, 1);
	EXPECT_EQ(-ENODEV, map_file(iommufd, other, hfd, 0, PAGE, RW | FIXED, &iova));
	close(hfd);
	ASSERT_EQ(0, vdb_memory(&self->ivs, true));
	/* memfd: writable needs a file open for writing, the range its size */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", self->memfd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	iova = MEM_IOVA;
	EXPECT_EQ(-EPERM, map_file(iommufd, other, ro, 0, PAGE, RW | FIXED, &iova));
	EXPECT_EQ(0, map_file(iommufd, other, ro, 0, PAGE, IOMMU_IOAS_MAP_READABLE | FIXED,
			      &iova));
	close(ro);
	EXPECT_EQ(-EINVAL, MAPF(other, self->memfd, MEM_PAGES * PAGE, PAGE, RW));
	EXPECT_EQ(-EINVAL, MAPF(other, self->memfd, 0, (MEM_PAGES + 1) * PAGE, RW));
	/* Nothing else is left mapped than the two good maps */
	EXPECT_EQ(r.length + PAGE, unmap(iommufd, other, 0, UINT64_MAX));
#undef MAPF
	close(fd);
}

/*
 * The exporting device's own DMA to its BAR goes through the IOMMU as any
 * other device's: ivshmem attached to an IOAS that maps its BAR needs the
 * host bridge to forward it, though it is below no other bridge than its
 * own switch.
 */
TEST_F(map_file, route_of_the_exporter_itself)
{
	struct vfio_region_dma_range r = { .offset = 0xd00000, .length = 0x4000 };
	int64_t ioas = lab_ioas_alloc(self->iommufd);
	int fd = export(_metadata, self, &r, 1);
	int err;

	ASSERT_LE(0, ioas);
	ASSERT_TRUE(map_bar(_metadata, self, ioas, fd, 0, r.length, BAR_IOVA));
	ASSERT_EQ(0, detach(&self->ivs));
	err = attach(&self->ivs, ioas);
	if (self->reach) {
		EXPECT_EQ(0, err);
		EXPECT_EQ(0, detach(&self->ivs));
	} else {
		EXPECT_EQ(-EREMOTEIO, err);
	}
	ASSERT_EQ(0, attach(&self->ivs, self->ioas));
	close(fd);
}

static int access_ioas(int dev, int iommufd, uint32_t ioas, uint64_t iova, void *buf,
		       uint64_t len, uint32_t op)
{
	struct p2pt_iommufd_access a = {
		.iommufd = iommufd, .ioas_id = ioas, .iova = iova, .len = len,
		.user_ptr = (uintptr_t)buf, .op = op,
	};

	return p2pt_ioctl(dev, P2PT_IOC_IOMMUFD_ACCESS, &a);
}

/*
 * An emulated device (iommufd_access, the path of VFIO mdevs) pins and
 * reads the pages of a memfd, and is refused those of a dma-buf: device
 * memory has no struct page to give it.
 */
TEST_F(map_file, access_refused)
{
	struct vfio_region_dma_range r = { .offset = 0xc00000, .length = 0x4000 };
	int64_t ioas = lab_ioas_alloc(self->iommufd);
	uint8_t want[256], got[0x200];
	uint64_t iova = MEM_IOVA;
	int dev = p2pt_dev_open();
	int fd;

	ASSERT_LE(0, dev);
	ASSERT_LE(0, ioas);
	lab_pattern(want, sizeof(want), 0, 20);
	ASSERT_EQ(sizeof(want), pwrite(self->memfd, want, sizeof(want), 0x100));
	ASSERT_EQ(0, map_file(self->iommufd, ioas, self->memfd, 0, PAGE, RW | FIXED, &iova));
	ASSERT_EQ(0, access_ioas(dev, self->iommufd, ioas, MEM_IOVA, got, sizeof(got),
				 P2PT_ACCESS_PIN));
	EXPECT_EQ(0, memcmp(want, got + 0x100, sizeof(want)));
	memset(got, 0, sizeof(got));
	ASSERT_EQ(0, access_ioas(dev, self->iommufd, ioas, MEM_IOVA + 0x100, got, sizeof(want),
				 P2PT_ACCESS_READ));
	EXPECT_EQ(0, memcmp(want, got, sizeof(want)));

	fd = export(_metadata, self, &r, 1);
	ASSERT_TRUE(map_bar(_metadata, self, ioas, fd, 0, r.length, BAR_IOVA));
	EXPECT_EQ(-EINVAL, access_ioas(dev, self->iommufd, ioas, BAR_IOVA, got, PAGE / 2,
				       P2PT_ACCESS_PIN));
	EXPECT_EQ(-EINVAL, access_ioas(dev, self->iommufd, ioas, BAR_IOVA + 0x100, got, 16,
				       P2PT_ACCESS_READ));
	close(fd);
	close(dev);
}

/* --- accounting: memfds count against RLIMIT_MEMLOCK, device memory not */

/* What the child without CAP_IPC_LOCK saw: 0 or -errno each. */
struct unprivileged {
	int setup;		/* dropping CAP_IPC_LOCK, the limits */
	int memfd_user;		/* memfd into edu2's IOAS, no memlock allowed */
	int dmabuf_user;	/* the dma-buf there, the same limit */
	int option;		/* IOMMU_OPTION_RLIMIT_MODE = mm, new iommufd */
	int pin_mm_none;	/* iommufd_access pin of a memfd, no memlock */
	int pin_mm;		/* the same with 1 MiB allowed */
	int data;		/* the pin read the memfd's bytes */
};

static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	d[0].effective &= ~(1U << CAP_IPC_LOCK);
	d[0].permitted &= ~(1U << CAP_IPC_LOCK);
	d[0].inheritable &= ~(1U << CAP_IPC_LOCK);
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

static void unprivileged(FIXTURE_DATA(map_file) *self, int dmabuf, uint64_t len,
			 int memfd, const uint8_t *want, size_t want_len,
			 struct unprivileged *u)
{
	struct rlimit none = { 0, 0 }, some = { 1 << 20, 1 << 20 };
	struct iommu_option opt = {
		.size = sizeof(opt), .option_id = IOMMU_OPTION_RLIMIT_MODE,
		.op = IOMMU_OPTION_OP_SET, .val64 = 1,
	};
	uint8_t got[256];
	uint64_t iova;
	int64_t ioas;
	int fd, dev;

	u->setup = drop_ipc_lock();
	if (!u->setup && setrlimit(RLIMIT_MEMLOCK, &none))
		u->setup = -errno;
	if (u->setup)
		return;
	/* Accounted to the user (the default): pinned when mapped */
	iova = BAR_IOVA2;
	u->memfd_user = map_file(self->iommufd, self->ioas, memfd, 0, PAGE, RW | FIXED, &iova);
	iova = BAR_IOVA;
	u->dmabuf_user = map_file(self->iommufd, self->ioas, dmabuf, 0, len, RW | FIXED, &iova);

	/* Accounted to the mm (VFIO's way), pinned by an in-kernel access */
	fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	dev = p2pt_dev_open();
	if (fd < 0 || dev < 0) {
		u->option = -ENODEV;
		return;
	}
	u->option = ioctl(fd, IOMMU_OPTION, &opt) ? -errno : 0;
	ioas = lab_ioas_alloc(fd);
	iova = MEM_IOVA;
	if (ioas < 0 || map_file(fd, ioas, memfd, 0, PAGE, RW | FIXED, &iova)) {
		u->option = -EIO;
		return;
	}
	u->pin_mm_none = access_ioas(dev, fd, ioas, MEM_IOVA, got, sizeof(got),
				     P2PT_ACCESS_PIN);
	setrlimit(RLIMIT_MEMLOCK, &some);
	u->pin_mm = access_ioas(dev, fd, ioas, MEM_IOVA, got, sizeof(got), P2PT_ACCESS_PIN);
	u->data = memcmp(got, want, want_len) ? -EIO : 0;
	close(dev);
	close(fd);
}

/*
 * A process without CAP_IPC_LOCK: a memfd counts against RLIMIT_MEMLOCK,
 * accounted to the user or to the mm; a dma-buf of device memory does not
 * count, its DMA lands all the same.
 */
TEST_F(map_file, accounting)
{
	struct vfio_region_dma_range r = { .offset = 0xe00000, .length = 0x4000 };
	struct unprivileged u = { .setup = -EINPROGRESS };
	int fd = export(_metadata, self, &r, 1);
	int memfd = memfd_create("accounted", MFD_CLOEXEC);
	uint8_t want[256];
	int pipefd[2], status;
	pid_t pid;

	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, PAGE));
	lab_pattern(want, sizeof(want), 0, 30);
	ASSERT_EQ(sizeof(want), pwrite(memfd, want, sizeof(want), 0));
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		unprivileged(self, fd, r.length, memfd, want, sizeof(want), &u);
		_exit(write(pipefd[1], &u, sizeof(u)) == sizeof(u) ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(sizeof(u), read(pipefd[0], &u, sizeof(u)));
	close(pipefd[0]);
	close(pipefd[1]);

	ASSERT_EQ(0, u.setup) TH_LOG("dropping CAP_IPC_LOCK: %s", strerror(-u.setup));
	EXPECT_EQ(-ENOMEM, u.memfd_user);
	if (self->reach) {
		EXPECT_EQ(0, u.dmabuf_user);
		expect_lands(_metadata, self, BAR_IOVA + 0x1000, r.offset + 0x1000,
			     EDU_DMA_MAX, 31);
	} else {
		EXPECT_EQ(-EREMOTEIO, u.dmabuf_user);
	}
	EXPECT_EQ(0, u.option);
	EXPECT_EQ(-ENOMEM, u.pin_mm_none);
	EXPECT_EQ(0, u.pin_mm);
	EXPECT_EQ(0, u.data);
	close(memfd);
	close(fd);
}

/* --- races: DMA against revokes and against unmaps --------------------- */

#define RACE_ROUNDS	8
#define RACE_OFF	0xb00000ULL	/* BAR offset of the race's dma-buf */
#define RACE_LEN	0x4000ULL

struct race {
	FIXTURE_DATA(map_file) *self;
	int fd;			/* the dma-buf */
	volatile int stop;
	int rounds;
	int err;		/* first failure of the thread, -errno */
};

/* Memory decode off and on, and a reset every other round. */
static void *race_revoke(void *arg)
{
	struct race *r = arg;
	int err = 0;

	for (r->rounds = 0; r->rounds < RACE_ROUNDS && !err; r->rounds++) {
		usleep(150000);
		err = vdb_memory(&r->self->ivs, false);
		usleep(150000);
		if (!err)
			err = vdb_memory(&r->self->ivs, true);
		if (!err && r->rounds % 2 && vdb_reset_works(&r->self->ivs))
			err = vdb_device_reset(&r->self->ivs);
	}
	r->err = err;
	r->stop = 1;
	return NULL;
}

/* Unmap and map again at the same IOVA. */
static void *race_unmap(void *arg)
{
	struct race *r = arg;
	FIXTURE_DATA(map_file) *self = r->self;
	uint64_t iova;
	int err = 0;

	for (r->rounds = 0; r->rounds < RACE_ROUNDS * 2 && !err; r->rounds++) {
		usleep(100000);
		if (unmap(self->iommufd, self->ioas, BAR_IOVA, RACE_LEN) != RACE_LEN)
			err = -EIO;
		usleep(100000);
		iova = BAR_IOVA;
		if (!err)
			err = map_file(self->iommufd, self->ioas, r->fd, 0, RACE_LEN,
				       RW | FIXED, &iova);
	}
	r->err = err;
	r->stop = 1;
	return NULL;
}

/*
 * DMA writes to the dma-buf while @fn revokes or unmaps it. Each write of
 * a page lands whole or not at all, and never next to its place; once the
 * thread is done, a write lands.
 */
static void race_dma(struct __test_metadata *_metadata, FIXTURE_DATA(map_file) *self,
		     void *(*fn)(void *))
{
	struct vfio_region_dma_range range = { .offset = RACE_OFF, .length = RACE_LEN };
	struct race r = { .self = self };
	uint8_t want[EDU_DMA_MAX], got[EDU_DMA_MAX];
	int landed = 0, missed = 0, i;
	uint64_t off;
	pthread_t t;

	r.fd = export(_metadata, self, &range, 1);
	if (!map_bar(_metadata, self, self->ioas, r.fd, 0, RACE_LEN, BAR_IOVA))
		SKIP(goto out, "edu2 has no P2P route to ivshmem here: EREMOTEIO checked");
	ASSERT_EQ(0, pthread_create(&t, NULL, fn, &r));
	for (i = 0; !r.stop; i++) {
		off = (i % 4) * PAGE + 0x400;
		lab_pattern(want, sizeof(want), off, 100 + i);
		host_fill(_metadata, self, RACE_OFF + off - GUARD, sizeof(want) + 2 * GUARD,
			  GUARD_BYTE);
		stage(_metadata, self, want, sizeof(want));
		ASSERT_EQ(0, edu_copy(&self->e, MEM_IOVA, BAR_IOVA + off, sizeof(want)));
		ASSERT_EQ(sizeof(got), pread(self->host, got, sizeof(got), RACE_OFF + off));
		if (!memcmp(want, got, sizeof(got))) {
			landed++;
		} else {
			missed++;
			host_expect_fill(_metadata, self, RACE_OFF + off, sizeof(want),
					 GUARD_BYTE, "a DMA write that did not land");
		}
		host_expect_fill(_metadata, self, RACE_OFF + off - GUARD, GUARD, GUARD_BYTE,
				 "guard before");
		host_expect_fill(_metadata, self, RACE_OFF + off + sizeof(want), GUARD,
				 GUARD_BYTE, "guard after");
		if (_metadata->exit_code)
			break;
	}
	r.stop = 1;
	pthread_join(t, NULL);
	ASSERT_EQ(0, r.err) TH_LOG("the racing thread: %s", strerror(-r.err));
	TH_LOG("%d rounds: %d DMA writes landed, %d did not", r.rounds, landed, missed);
	ASSERT_EQ(0, vdb_memory(&self->ivs, true));
	expect_lands(_metadata, self, BAR_IOVA + 0x2000, RACE_OFF + 0x2000, EDU_DMA_MAX, 99);
out:
	close(r.fd);
}

/*
 * MAP_FILE and unmap of the dma-buf while revokes and restores come: the
 * attachment is new when a notification may come, and is going away when
 * a restore may ask for the ranges again. Each map works or gets ENODEV.
 */
TEST_F_TIMEOUT(map_file, races_map_revoke, 120)
{
	struct vfio_region_dma_range range = { .offset = RACE_OFF, .length = RACE_LEN };
	int64_t ioas = self->reach ? self->ioas : lab_ioas_alloc(self->iommufd);
	struct race r = { .self = self };
	int maps = 0, refused = 0, err;
	uint64_t iova;
	pthread_t t;

	ASSERT_LE(0, ioas);
	r.fd = export(_metadata, self, &range, 1);
	ASSERT_EQ(0, pthread_create(&t, NULL, race_revoke, &r));
	while (!r.stop && !_metadata->exit_code) {
		iova = BAR_IOVA;
		err = map_file(self->iommufd, ioas, r.fd, 0, RACE_LEN, RW | FIXED, &iova);
		if (!err) {
			maps++;
			EXPECT_EQ(RACE_LEN, unmap(self->iommufd, ioas, BAR_IOVA, RACE_LEN));
		} else {
			refused++;
			EXPECT_EQ(-ENODEV, err);
		}
	}
	r.stop = 1;
	pthread_join(t, NULL);
	ASSERT_EQ(0, r.err) TH_LOG("the racing thread: %s", strerror(-r.err));
	TH_LOG("%d rounds: %d maps, %d refused with ENODEV", r.rounds, maps, refused);
	ASSERT_EQ(0, vdb_memory(&self->ivs, true));
	ASSERT_TRUE(map_bar(_metadata, self, ioas, r.fd, 0, RACE_LEN, BAR_IOVA));
	if (self->reach)
		expect_lands(_metadata, self, BAR_IOVA + 0x1000, RACE_OFF + 0x1000,
			     EDU_DMA_MAX, 98);
	close(r.fd);
}

TEST_F_TIMEOUT(map_file, races_dma_revoke, 120)
{
	race_dma(_metadata, self, race_revoke);
}

TEST_F_TIMEOUT(map_file, races_dma_unmap, 120)
{
	race_dma(_metadata, self, race_unmap);
}

TEST_HARNESS_MAIN
