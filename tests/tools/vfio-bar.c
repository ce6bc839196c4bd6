// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-bar: read or write a BAR of a lab device through a VFIO mmap.
 *
 *   vfio-bar NAME|BDF BAR read OFFSET LEN   BAR bytes to stdout
 *   vfio-bar NAME|BDF BAR write OFFSET      stdin to the BAR
 *   vfio-bar NAME|BDF BAR info              region size and flags
 *
 * NAME is a lab device name (lab/devices); the device must be bound to
 * vfio-pci. Used by the demo and handy in the lab shell.
 */
#include "lab.h"

static int usage(void)
{
	fprintf(stderr, "usage: vfio-bar NAME|BDF BAR read OFFSET LEN | write OFFSET | info\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct vfio_region_info info;
	char bdf[LAB_BDF_LEN];
	unsigned long long off = 0, len = 0, i;
	struct lab_vfio v;
	volatile uint8_t *bar;
	void *map;
	int err, c;

	if (argc < 4)
		return usage();
	if (strchr(argv[1], ':'))
		snprintf(bdf, sizeof(bdf), "%s", argv[1]);
	else if (lab_pci_find(argv[1], bdf)) {
		fprintf(stderr, "vfio-bar: no lab device %s\n", argv[1]);
		return 1;
	}
	err = lab_vfio_open_group(&v, bdf);
	if (err) {
		fprintf(stderr, "vfio-bar: %s: %s\n", bdf, strerror(-err));
		return 1;
	}
	err = lab_vfio_region(&v, strtoul(argv[2], NULL, 0), &info);
	if (err) {
		fprintf(stderr, "vfio-bar: region %s: %s\n", argv[2], strerror(-err));
		return 1;
	}
	if (!strcmp(argv[3], "info")) {
		printf("%s BAR %s: size 0x%llx flags 0x%x%s\n", bdf, argv[2],
		       (unsigned long long)info.size, info.flags,
		       info.flags & VFIO_REGION_INFO_FLAG_MMAP ? " (mmap)" : "");
		return 0;
	}
	if (argc < 5)
		return usage();
	off = strtoull(argv[4], NULL, 0);
	if (!strcmp(argv[3], "read")) {
		if (argc < 6)
			return usage();
		len = strtoull(argv[5], NULL, 0);
	} else if (strcmp(argv[3], "write")) {
		return usage();
	}
	if (off > info.size || len > info.size - off) {
		fprintf(stderr, "vfio-bar: range beyond the BAR (size 0x%llx)\n",
			(unsigned long long)info.size);
		return 1;
	}
	map = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, v.device, info.offset);
	if (map == MAP_FAILED) {
		fprintf(stderr, "vfio-bar: mmap: %s\n", strerror(errno));
		return 1;
	}
	bar = map;
	if (len) {
		for (i = 0; i < len; i++)
			putchar(bar[off + i]);
	} else {
		for (i = off; i < info.size && (c = getchar()) != EOF; i++)
			bar[i] = c;
	}
	munmap(map, info.size);
	lab_vfio_close(&v);
	return 0;
}
