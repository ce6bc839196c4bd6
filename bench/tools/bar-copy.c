// SPDX-License-Identifier: GPL-2.0
/*
 * bar-copy: the CPU cost of the bounce a user has without dma-buf MRs
 * (RDMA into host memory, then a copy into the BAR through the VFIO mmap).
 *
 *   bar-copy [-n COUNT] [-r] DEVICE BAR OFFSET SIZE...
 *
 * DEVICE is a lab device name (lab/devices) or an address, bound to
 * vfio-pci; OFFSET is where in the BAR the copies go. For each SIZE, copies
 * SIZE bytes of host memory into the BAR (with -r: out of the BAR into host
 * memory) until at least 0.5 s have passed (at least 10 copies), or COUNT
 * times, and prints "SIZE COPIES USEC_PER_COPY". It writes into the BAR, so
 * it takes only a prefetchable memory BAR (memory, not registers). Exit
 * status 0, or 1 with a message.
 */
#include <time.h>
#include "lab.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct lab_vfio v = { -1, -1, -1, -1 };
	struct vfio_region_info bar;
	char bdf[LAB_BDF_LEN];
	uint64_t off, size, max = 0;
	unsigned long n, count = 0;
	unsigned int barno;
	uint32_t reg;
	bool out = false;
	double t0, t;
	char *map, *src;
	int i, err;

	for (; argc > 1 && argv[1][0] == '-'; argc--, argv++) {
		if (!strcmp(argv[1], "-r")) {
			out = true;
		} else if (!strcmp(argv[1], "-n") && argc > 2) {
			count = strtoul(argv[2], NULL, 0);
			argc--, argv++;
		} else {
			argc = 0;
			break;
		}
	}
	if (argc < 5) {
		fprintf(stderr, "usage: bar-copy [-n COUNT] [-r] DEVICE BAR OFFSET SIZE...\n");
		return 1;
	}
	if (strchr(argv[1], ':'))
		snprintf(bdf, sizeof(bdf), "%s", argv[1]);
	else if ((err = lab_pci_find(argv[1], bdf)))
		goto fail;
	err = lab_vfio_open_cdev(&v, bdf);
	if (err)
		err = lab_vfio_open_group(&v, bdf);
	barno = strtoul(argv[2], NULL, 0);
	if (!err && barno > 5)
		err = -EINVAL;
	if (!err)
		err = lab_vfio_region(&v, barno, &bar);
	if (!err)
		err = lab_vfio_config(&v, false, PCI_BASE_ADDRESS_0 + 4 * barno, &reg,
				      sizeof(reg));
	if (err)
		goto fail;
	if ((reg & PCI_BASE_ADDRESS_SPACE_IO) || !(reg & PCI_BASE_ADDRESS_MEM_PREFETCH)) {
		fprintf(stderr, "bar-copy: BAR %u of %s is not prefetchable memory\n", barno,
			bdf);
		return 1;
	}
	off = strtoull(argv[3], NULL, 0);
	for (i = 4; i < argc; i++)
		if (strtoull(argv[i], NULL, 0) > max)
			max = strtoull(argv[i], NULL, 0);
	if (off + max > bar.size) {
		fprintf(stderr, "bar-copy: %#llx bytes at %#llx do not fit in the BAR (%#llx)\n",
			(unsigned long long)max, (unsigned long long)off,
			(unsigned long long)bar.size);
		return 1;
	}
	map = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, v.device, bar.offset);
	src = aligned_alloc(4096, (max + 4095) & ~4095ULL);
	if (map == MAP_FAILED || !src) {
		err = -errno;
		goto fail;
	}
	lab_pattern(src, max, 0, 0xb0b0);
	if (out)
		memcpy(map + off, src, max);
	for (i = 4; i < argc; i++) {
		size = strtoull(argv[i], NULL, 0);
		n = 0;
		t0 = now();
		do {
			if (out)
				memcpy(src, map + off, size);
			else
				memcpy(map + off, src, size);
			n++;
			t = now() - t0;
		} while (count ? n < count : n < 10 || t < 0.5);
		printf("%llu %lu %.3f\n", (unsigned long long)size, n, t * 1e6 / n);
	}
	if (memcmp(map + off, src, size)) {
		fprintf(stderr, "bar-copy: the BAR does not hold what was copied\n");
		return 1;
	}
	munmap(map, bar.size);
	lab_vfio_close(&v);
	return 0;
fail:
	fprintf(stderr, "bar-copy: %s: %s\n", argv[1], strerror(-err));
	return 1;
}
