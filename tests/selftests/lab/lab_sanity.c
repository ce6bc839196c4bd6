// SPDX-License-Identifier: GPL-2.0
/*
 * Lab sanity: the lab devices are owned by vfio-pci, and bytes move both
 * ways between the guest (through a VFIO mmap of ivshmem BAR 2) and the
 * host file that backs that BAR. If this fails, no P2P test result from
 * the lab can be trusted.
 */
#include <pthread.h>
#include <time.h>
#include "kselftest_harness.h"
#include "lab.h"

#define IVSHMEM_BAR 2
#define EDU_BAR 0
#define EDU_REG_ID 0x00
#define EDU_REG_LIVENESS 0x04

static uint32_t test_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)(ts.tv_nsec ^ ts.tv_sec ^ getpid());
}

TEST(devices_bound_to_vfio_pci)
{
	static const char * const names[] = { "ivshmem", "edu" };
	char bdf[LAB_BDF_LEN], drv[64];
	unsigned int i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ASSERT_EQ(0, lab_pci_find(names[i], bdf)) TH_LOG("%s not found", names[i]);
		lab_pci_driver(bdf, drv, sizeof(drv));
		EXPECT_STREQ("vfio-pci", drv) TH_LOG("%s (%s)", names[i], bdf);
		EXPECT_LE(0, lab_iommu_group(bdf)) TH_LOG("%s has no IOMMU group", names[i]);
	}
}

TEST(edu_registers_through_vfio)
{
	struct vfio_region_info bar;
	struct lab_vfio v;
	char bdf[LAB_BDF_LEN];
	uint32_t id, val = 0x5a5aa5a5 ^ test_seed(), back;

	ASSERT_EQ(0, lab_pci_find("edu", bdf));
	ASSERT_EQ(0, lab_vfio_open_group(&v, bdf));
	ASSERT_EQ(0, lab_vfio_region(&v, EDU_BAR, &bar));
	ASSERT_EQ(sizeof(id), pread(v.device, &id, sizeof(id), bar.offset + EDU_REG_ID));
	/* Identification: 0xRRrr00ed, major/minor revision and 0xed. */
	EXPECT_EQ(0xed, id & 0xffff) TH_LOG("edu id register 0x%08x", id);
	/* The liveness register reads back the bitwise inverse of a write. */
	ASSERT_EQ(sizeof(val), pwrite(v.device, &val, sizeof(val), bar.offset + EDU_REG_LIVENESS));
	ASSERT_EQ(sizeof(back), pread(v.device, &back, sizeof(back), bar.offset + EDU_REG_LIVENESS));
	EXPECT_EQ(~val, back);
	lab_vfio_close(&v);
}

/* The CPU model lab/run was asked for decides the P2PDMA host-bridge route. */
TEST(cpu_model_matches_lab_cpu)
{
	const char *want = getenv("LAB_CPU");
	char line[256], vendor[64] = "";
	int family = -1;
	FILE *f;

	if (!want || !*want)
		SKIP(return, "LAB_CPU not set (not started by lab/run)");
	f = fopen("/proc/cpuinfo", "re");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f) && (family < 0 || !vendor[0])) {
		sscanf(line, "vendor_id : %63s", vendor);
		sscanf(line, "cpu family : %d", &family);
	}
	fclose(f);
	if (!strcmp(want, "amd")) {
		EXPECT_STREQ("AuthenticAMD", vendor);
		/* 6.12's allow-list accepts AMD family 17h (Zen) and later. */
		EXPECT_LE(0x17, family);
	} else {
		EXPECT_STREQ("GenuineIntel", vendor);
	}
}

/* The NVMe CMB is published as p2pmem by the struct-page P2PDMA layer. */
TEST(nvme_cmb_is_published_p2pmem)
{
	char bdf[LAB_BDF_LEN], path[PATH_MAX];
	unsigned long long size = 0;
	int published = 0;
	FILE *f;

	ASSERT_EQ(0, lab_pci_find("nvme", bdf));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/p2pmem/size", bdf);
	f = fopen(path, "re");
	ASSERT_NE(NULL, f) TH_LOG("%s: %s", path, strerror(errno));
	ASSERT_EQ(1, fscanf(f, "%llu", &size));
	fclose(f);
	EXPECT_EQ(16ULL << 20, size);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/p2pmem/published", bdf);
	f = fopen(path, "re");
	ASSERT_NE(NULL, f);
	ASSERT_EQ(1, fscanf(f, "%d", &published));
	fclose(f);
	EXPECT_EQ(1, published);
}

/*
 * edu2's registers, read by one vCPU while another toggles ivshmem's
 * memory decode. Every toggle changes QEMU's memory map; QEMU 7.2's
 * multi-threaded TCG then routes some of the reader's MMIO accesses to the
 * wrong region for a moment (the liveness register reads back a wrong
 * value; the guest's own LAPIC accesses are misrouted the same way, and
 * QEMU may crash). lab/run runs TCG single-threaded to avoid it; with
 * LAB_TCG_THREAD=multi this test fails.
 */
#define DECODE_TOGGLES 1000

struct mmio_reader {
	volatile uint32_t *regs;
	volatile int stop;
	unsigned long reads, wrong, cpu;
};

static void *mmio_reader(void *arg)
{
	struct mmio_reader *r = arg;
	cpu_set_t cpus;
	uint32_t v;

	CPU_ZERO(&cpus);
	CPU_SET(r->cpu, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);
	while (!r->stop) {
		v = (uint32_t)r->reads * 2654435761u;
		r->regs[EDU_REG_LIVENESS / 4] = v;
		if (r->regs[EDU_REG_LIVENESS / 4] != ~v ||
		    (r->regs[EDU_REG_ID / 4] & 0xffff) != 0xed)
			r->wrong++;
		r->reads++;
	}
	return NULL;
}

/*
 * Harness TEST()s have the default timeout of 30 s; this one has a fixture
 * only to declare its own: a thousand decode toggles, each rebuilding
 * QEMU's memory map, against a vCPU that spins on MMIO, take seconds and
 * far longer on a busy host.
 */
FIXTURE(decode) {};
FIXTURE_SETUP(decode) {}
FIXTURE_TEARDOWN(decode) {}

TEST_F_TIMEOUT(decode, mmio_routing_survives_decode_toggles, 300)
{
	struct mmio_reader r = { .cpu = 1 };
	char ivshmem[LAB_BDF_LEN], edu2[LAB_BDF_LEN];
	struct vfio_region_info bar;
	struct lab_vfio iv, e2;
	uint16_t cmd;
	cpu_set_t cpus;
	pthread_t thread;
	void *map;
	int i;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		SKIP(return, "needs two CPUs");
	ASSERT_EQ(0, lab_pci_find("ivshmem", ivshmem));
	ASSERT_EQ(0, lab_pci_find("edu2", edu2));
	ASSERT_EQ(0, lab_vfio_open_group(&iv, ivshmem));
	ASSERT_EQ(0, lab_vfio_open_group(&e2, edu2));
	ASSERT_EQ(0, lab_vfio_region(&e2, EDU_BAR, &bar));
	map = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, e2.device, bar.offset);
	ASSERT_NE(MAP_FAILED, map) TH_LOG("mmap of edu2 BAR 0: %s", strerror(errno));
	r.regs = map;
	ASSERT_EQ(0, lab_vfio_config_read16(&iv, PCI_COMMAND, &cmd));
	ASSERT_TRUE(cmd & PCI_COMMAND_MEMORY);
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpus), &cpus));
	ASSERT_EQ(0, pthread_create(&thread, NULL, mmio_reader, &r));
	for (i = 0; i < DECODE_TOGGLES; i++) {
		if (lab_vfio_config_write16(&iv, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY) ||
		    lab_vfio_config_write16(&iv, PCI_COMMAND, cmd))
			break;
	}
	r.stop = 1;
	pthread_join(thread, NULL);
	EXPECT_EQ(DECODE_TOGGLES, i) TH_LOG("a PCI_COMMAND write failed");
	EXPECT_EQ(0, lab_vfio_config_write16(&iv, PCI_COMMAND, cmd));
	TH_LOG("%d decode toggles, %lu edu2 register round trips", i, r.reads);
	EXPECT_LT(0, r.reads);
	EXPECT_EQ(0, r.wrong) TH_LOG("edu2 register reads routed elsewhere");
	munmap(map, bar.size);
	lab_vfio_close(&e2);
	lab_vfio_close(&iv);
}

FIXTURE(ivshmem) {
	struct lab_vfio v;
	struct vfio_region_info bar;
	volatile uint8_t *map;
	int host;
	uint32_t seed;
};

FIXTURE_SETUP(ivshmem)
{
	char bdf[LAB_BDF_LEN];
	struct stat st;
	void *map;

	self->map = NULL;
	self->host = -1;
	self->seed = test_seed();
	ASSERT_EQ(0, lab_pci_find("ivshmem", bdf));
	ASSERT_EQ(0, lab_vfio_open_group(&self->v, bdf));
	ASSERT_EQ(0, lab_vfio_region(&self->v, IVSHMEM_BAR, &self->bar));
	ASSERT_TRUE(self->bar.flags & VFIO_REGION_INFO_FLAG_MMAP);
	self->host = lab_ivshmem_host_open();
	ASSERT_LE(0, self->host) TH_LOG("cannot open $LAB_IVSHMEM: %s", strerror(-self->host));
	/* The BAR is exactly the host file. */
	ASSERT_EQ(0, fstat(self->host, &st));
	ASSERT_EQ((uint64_t)st.st_size, self->bar.size);
	map = mmap(NULL, self->bar.size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   self->v.device, self->bar.offset);
	ASSERT_NE(MAP_FAILED, map) TH_LOG("mmap of BAR 2: %s", strerror(errno));
	self->map = map;
}

FIXTURE_TEARDOWN(ivshmem)
{
	if (self->map)
		munmap((void *)self->map, self->bar.size);
	if (self->host >= 0)
		close(self->host);
	lab_vfio_close(&self->v);
}

/* Offsets probed: both ends of the BAR and a page-crossing chunk inside. */
static uint64_t probe_offsets(uint64_t size, int i)
{
	switch (i) {
	case 0: return 0;
	case 1: return size / 2 - 2048;
	default: return size - 4096;
	}
}

TEST_F(ivshmem, guest_writes_host_reads)
{
	uint8_t want[4096], got[4096];
	int i;

	for (i = 0; i < 3; i++) {
		uint64_t off = probe_offsets(self->bar.size, i);
		size_t j;

		lab_pattern(want, sizeof(want), off, self->seed);
		for (j = 0; j < sizeof(want); j++)
			self->map[off + j] = want[j];
		ASSERT_EQ(sizeof(got), pread(self->host, got, sizeof(got), off));
		ASSERT_EQ(0, memcmp(want, got, sizeof(want)))
			TH_LOG("host file differs at BAR offset 0x%llx", (unsigned long long)off);
	}
}

TEST_F(ivshmem, host_writes_guest_reads)
{
	uint8_t want[4096], got[4096];
	int i;

	for (i = 0; i < 3; i++) {
		uint64_t off = probe_offsets(self->bar.size, i);
		size_t j;

		lab_pattern(want, sizeof(want), off, ~self->seed);
		ASSERT_EQ(sizeof(want), pwrite(self->host, want, sizeof(want), off));
		for (j = 0; j < sizeof(got); j++)
			got[j] = self->map[off + j];
		ASSERT_EQ(0, memcmp(want, got, sizeof(want)))
			TH_LOG("BAR differs from host file at offset 0x%llx", (unsigned long long)off);
	}
}

TEST_HARNESS_MAIN
