// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-dmabuf: export ranges of a BAR through VFIO as a dma-buf
 * (VFIO_DEVICE_FEATURE_DMA_BUF), import it into the test module's edu
 * importer, DMA into it and show the revoke. Used by the demo
 * (lab/demo-guest); handy in the lab shell.
 *
 *   vfio-dmabuf [EXPORTER [IMPORTER]]     default: ivshmem edu2
 *
 * EXPORTER and IMPORTER are lab device names (lab/devices) or addresses.
 * The exporter must be bound to vfio-pci; the importer is put on
 * p2p_test_importer (driver_override) and given back to its driver at the
 * end. The module p2p_dmabuf_test must be loaded.
 *
 * Steps (one line of output each, or more):
 *  1. export BAR 2 ranges 0x200000+0x2000 and 0x100000+0x2000 (in this
 *     order: the dma-buf's first 8 KiB are BAR offset 0x200000);
 *  2. import into the importer (dynamic: move_notify unmaps), map it and
 *     print the DMA addresses;
 *  3. DMA a message with the importer's engine into each range; for each
 *     a line "dma-buf message at BAR 2 offset 0xOFF: TEXT" that lab/demo
 *     checks in the host file; the bytes are also read back through the
 *     VFIO BAR region in the guest;
 *  4. revoke: VFIO_DEVICE_RESET (the importer is told and unmaps), then
 *     memory decoding off in PCI_COMMAND (map fails with ENODEV), on again
 *     (map works, the first message is read back by DMA).
 * Without a DMA path between the two devices (P2PDMA route
 * NOT_SUPPORTED: Intel CPU model) step 3 is skipped with a line
 * "dma-buf DMA: skipped: REASON" and step 4 checks what it still can.
 * Exit status 0 when every check passed, 1 otherwise.
 */
#include <time.h>
#include "lab.h"
#define TOOL_NAME "vfio-dmabuf"
#include "tool.h"
#include "p2p_dmabuf_test.h"

#define BAR		2
#define NR_RANGES	2
#define RANGE_LEN	0x2000

static const struct vfio_region_dma_range ranges[NR_RANGES] = {
	{ .offset = 0x200000, .length = RANGE_LEN },
	{ .offset = 0x100000, .length = RANGE_LEN },
};

/* Where the messages go: dma-buf offsets, one in each range. */
static const uint64_t msg_off[NR_RANGES] = { 0x100, RANGE_LEN + 0x200 };

static struct {
	char exp[LAB_BDF_LEN], imp[LAB_BDF_LEN];
	const char *exp_name, *imp_name;
	char imp_drv[64];		/* the importer's driver before us */
	bool imp_moved;
	struct lab_vfio v;
	struct vfio_region_info bar;
	uint64_t bar_bus, bar_len;	/* BAR's bus address (sysfs) */
	int dmabuf, dev;
	unsigned int handle;
	bool cmd_saved;
	uint16_t cmd;			/* PCI_COMMAND before we touched it */
} s = { .dmabuf = -1, .dev = -1, .v = { -1, -1, -1, -1 } };

static void cleanup(void)
{
	uint16_t cmd;

	if (s.cmd_saved && !lab_vfio_config_read16(&s.v, PCI_COMMAND, &cmd) &&
	    cmd != s.cmd && lab_vfio_config_write16(&s.v, PCI_COMMAND, s.cmd))
		printf("cleanup: cannot restore PCI_COMMAND 0x%04x\n", s.cmd);
	if (s.dev >= 0)
		close(s.dev);		/* releases the import */
	if (s.dmabuf >= 0)
		close(s.dmabuf);
	lab_vfio_close(&s.v);
	if (s.imp_moved) {
		if (lab_pci_bind(s.imp, s.imp_drv))
			printf("cleanup: cannot give %s back to %s\n", s.imp,
			       s.imp_drv[0] ? s.imp_drv : "no driver");
		else
			printf("cleanup: %s %s back on %s\n", s.imp_name, s.imp,
			       s.imp_drv[0] ? s.imp_drv : "no driver");
	}
	s.dev = s.dmabuf = -1;
	s.imp_moved = false;
}

static void find(const char *arg, char bdf[LAB_BDF_LEN])
{
	int err;

	if (strchr(arg, ':')) {
		snprintf(bdf, LAB_BDF_LEN, "%s", arg);
		return;
	}
	err = lab_pci_find(arg, bdf);
	if (err)
		die("lab device %s: %s", arg, strerror(-err));
}

static const char *route_name(unsigned int route)
{
	switch (route) {
	case P2PT_ROUTE_NOT_SUPPORTED: return "NOT_SUPPORTED";
	case P2PT_ROUTE_BUS_ADDR: return "BUS_ADDR";
	case P2PT_ROUTE_THRU_HOST_BRIDGE: return "THRU_HOST_BRIDGE";
	default: return "UNKNOWN";
	}
}

static const char *errname(int err)
{
	switch (err) {
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case EBUSY: return "EBUSY";
	case ENOENT: return "ENOENT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EPERM: return "EPERM";
	default: return "errno";
	}
}

/* The feature ioctl with a dma_buf payload of NR_RANGES ranges. */
static int feature_dma_buf(uint32_t flags)
{
	union {
		struct vfio_device_feature f;
		uint64_t align;
		uint8_t raw[sizeof(struct vfio_device_feature) +
			    sizeof(struct vfio_device_feature_dma_buf) +
			    sizeof(ranges)];
	} buf;
	struct vfio_device_feature_dma_buf *db = (void *)buf.f.data;

	memset(&buf, 0, sizeof(buf));
	buf.f.argsz = sizeof(buf.raw);
	buf.f.flags = flags | VFIO_DEVICE_FEATURE_DMA_BUF;
	db->region_index = VFIO_PCI_BAR0_REGION_INDEX + BAR;
	db->open_flags = O_RDWR | O_CLOEXEC;
	db->flags = 0;
	db->nr_ranges = NR_RANGES;
	memcpy(db->dma_ranges, ranges, sizeof(ranges));
	return ioctl(s.v.device, VFIO_DEVICE_FEATURE, &buf);
}

static uint64_t bar_off_of(uint64_t off);

static void status(const char *when, struct p2pt_status *st)
{
	memset(st, 0, sizeof(*st));
	st->handle = s.handle;
	if (ioctl(s.dev, P2PT_IOC_STATUS, st))
		die("P2PT_IOC_STATUS: %s", strerror(errno));
	printf("status %s: %s, move_notify count %u\n", when,
	       st->flags & P2PT_STATUS_MAPPED ? "mapped" : "not mapped",
	       st->move_notify_count);
}

/* Map; 0 (and the entries printed) or -errno. */
static int map(struct p2pt_map *m)
{
	unsigned int i;
	uint64_t off = 0;

	memset(m, 0, sizeof(*m));
	m->handle = s.handle;
	m->dir = P2PT_DIR_BIDIRECTIONAL;
	if (ioctl(s.dev, P2PT_IOC_MAP, m))
		return -errno;
	/* The test module reports routes for its own exporter's dma-bufs only. */
	if (m->route == P2PT_ROUTE_UNKNOWN)
		printf("map: mapped for %s, %u DMA entr%s:\n", s.imp_name, m->nents,
		       m->nents == 1 ? "y" : "ies");
	else
		printf("map: mapped for %s, route %s, %u DMA entr%s:\n", s.imp_name,
		       route_name(m->route), m->nents, m->nents == 1 ? "y" : "ies");
	for (i = 0; i < m->nr_entries; i++) {
		printf("  [%u] dma 0x%llx len 0x%llx = dma-buf 0x%llx..0x%llx, from BAR %d offset 0x%llx (bus 0x%llx)\n",
		       i, (unsigned long long)m->entries[i].dma_addr,
		       (unsigned long long)m->entries[i].len, (unsigned long long)off,
		       (unsigned long long)(off + m->entries[i].len), BAR,
		       (unsigned long long)bar_off_of(off),
		       (unsigned long long)(s.bar_bus + bar_off_of(off)));
		off += m->entries[i].len;
	}
	if (m->nr_entries && m->entries[0].dma_addr == s.bar_bus + ranges[0].offset)
		printf("map: the DMA addresses are the BAR's bus addresses (no IOMMU translation)\n");
	else if (m->nr_entries)
		printf("map: the DMA addresses are IOVAs in %s's IOMMU domain, mapped to the BAR through the host bridge\n",
		       s.imp_name);
	return 0;
}

static void unmap(void)
{
	struct p2pt_handle h = { .handle = s.handle };

	if (ioctl(s.dev, P2PT_IOC_UNMAP, &h))
		die("P2PT_IOC_UNMAP: %s", strerror(errno));
}

/* The DMA address of dma-buf offset @off (and @len bytes) in mapping @m. */
static uint64_t dma_addr_of(const struct p2pt_map *m, uint64_t off, uint64_t len)
{
	uint64_t start = 0;
	unsigned int i;

	for (i = 0; i < m->nr_entries; start += m->entries[i++].len)
		if (off >= start && off + len <= start + m->entries[i].len)
			return m->entries[i].dma_addr + off - start;
	die("dma-buf offset 0x%llx not in one entry of the mapping", (unsigned long long)off);
}

/* The BAR offset of dma-buf offset @off. */
static uint64_t bar_off_of(uint64_t off)
{
	unsigned int i;

	for (i = 0; i < NR_RANGES; off -= ranges[i++].length)
		if (off < ranges[i].length)
			return ranges[i].offset + off;
	return ~0ULL;
}

static int dma(unsigned int dir, uint64_t addr, void *buf, size_t len)
{
	struct p2pt_dma d = {
		.handle = s.handle, .dir = dir, .dma_addr = addr,
		.len = len, .user_ptr = (uintptr_t)buf,
	};

	return ioctl(s.dev, P2PT_IOC_DMA, &d) ? -errno : 0;
}

static void set_memory(bool on)
{
	uint16_t cmd, want;
	int err;

	err = lab_vfio_config_read16(&s.v, PCI_COMMAND, &cmd);
	if (err)
		die("read PCI_COMMAND: %s", strerror(-err));
	want = on ? cmd | PCI_COMMAND_MEMORY : cmd & ~PCI_COMMAND_MEMORY;
	err = lab_vfio_config_write16(&s.v, PCI_COMMAND, want);
	if (err)
		die("write PCI_COMMAND: %s", strerror(-err));
	err = lab_vfio_config_read16(&s.v, PCI_COMMAND, &cmd);
	if (err)
		die("read PCI_COMMAND: %s", strerror(-err));
	printf("revoke: PCI_COMMAND := 0x%04x through the VFIO config region, reads 0x%04x (memory decoding %s)\n",
	       want, cmd, cmd & PCI_COMMAND_MEMORY ? "on" : "off");
	check(cmd == want, "PCI_COMMAND reads 0x%04x, wrote 0x%04x", cmd, want);
}

int main(int argc, char **argv)
{
	struct vfio_device_info dinfo = { .argsz = sizeof(dinfo) };
	struct p2pt_import imp = { .mode = P2PT_IMPORT_DYNAMIC };
	char msg[NR_RANGES][160], got[160], drv[64];
	bool mapped = false, dma_path;
	struct p2pt_status st;
	struct p2pt_map m;
	struct stat sb;
	unsigned int i;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 3 || (argc > 1 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: vfio-dmabuf [EXPORTER [IMPORTER]]  (default: ivshmem edu2)\n");
		return 2;
	}
	s.exp_name = argc > 1 ? argv[1] : "ivshmem";
	s.imp_name = argc > 2 ? argv[2] : "edu2";
	find(s.exp_name, s.exp);
	find(s.imp_name, s.imp);
	lab_pci_driver(s.exp, drv, sizeof(drv));
	printf("exporter: %s %s (driver %s, IOMMU group %d); importer: %s %s (IOMMU group %d); IOMMU %s\n",
	       s.exp_name, s.exp, drv[0] ? drv : "none", lab_iommu_group(s.exp),
	       s.imp_name, s.imp, lab_iommu_group(s.imp),
	       lab_iommu_present() ? "on" : "off (no-IOMMU VFIO)");

	/* 1. Export. */
	err = lab_vfio_open_group(&s.v, s.exp);
	if (err)
		die("open %s through VFIO: %s", s.exp, strerror(-err));
	err = lab_vfio_region(&s.v, VFIO_PCI_BAR0_REGION_INDEX + BAR, &s.bar);
	if (err)
		die("BAR %d region: %s", BAR, strerror(-err));
	err = lab_pci_bar(s.exp, BAR, &s.bar_bus, &s.bar_len);
	if (err)
		die("BAR %d of %s in sysfs: %s", BAR, s.exp, strerror(-err));
	if (feature_dma_buf(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET))
		die("VFIO_DEVICE_FEATURE_DMA_BUF not supported by %s: %s", s.exp,
		    strerror(errno));
	s.dmabuf = feature_dma_buf(VFIO_DEVICE_FEATURE_GET);
	if (s.dmabuf < 0)
		die("VFIO_DEVICE_FEATURE_DMA_BUF: %s", strerror(errno));
	if (fstat(s.dmabuf, &sb))
		die("fstat: %s", strerror(errno));
	printf("export: VFIO_DEVICE_FEATURE_DMA_BUF on BAR %d (bus address 0x%llx, size 0x%llx), ranges 0x%llx+0x%llx, 0x%llx+0x%llx\n",
	       BAR, (unsigned long long)s.bar_bus, (unsigned long long)s.bar.size,
	       (unsigned long long)ranges[0].offset, (unsigned long long)ranges[0].length,
	       (unsigned long long)ranges[1].offset, (unsigned long long)ranges[1].length);
	printf("export: dma-buf fd %d, size 0x%llx (fstat)\n", s.dmabuf,
	       (unsigned long long)sb.st_size);
	check(sb.st_size == NR_RANGES * RANGE_LEN, "dma-buf size 0x%llx, want 0x%x",
	      (unsigned long long)sb.st_size, NR_RANGES * RANGE_LEN);

	/* 2. Import and map. */
	s.dev = open(P2PT_DEVICE, O_RDWR | O_CLOEXEC);
	if (s.dev < 0)
		die("%s: %s (load build/tests/modules/p2p_dmabuf_test.ko)", P2PT_DEVICE,
		    strerror(errno));
	lab_pci_driver(s.imp, s.imp_drv, sizeof(s.imp_drv));
	if (strcmp(s.imp_drv, P2PT_IMPORTER_DRIVER)) {
		s.imp_moved = true;
		err = lab_pci_bind(s.imp, P2PT_IMPORTER_DRIVER);
		if (err)
			die("bind %s to %s: %s", s.imp, P2PT_IMPORTER_DRIVER, strerror(-err));
	}
	printf("import: %s %s on %s (was %s)\n", s.imp_name, s.imp, P2PT_IMPORTER_DRIVER,
	       s.imp_drv[0] ? s.imp_drv : "no driver");
	snprintf(imp.bdf, sizeof(imp.bdf), "%s", s.imp);
	imp.fd = s.dmabuf;
	if (ioctl(s.dev, P2PT_IOC_IMPORT, &imp))
		die("P2PT_IOC_IMPORT: %s", strerror(errno));
	s.handle = imp.handle;
	printf("import: attached, handle %u (dynamic importer: unmaps on move_notify)\n",
	       s.handle);
	err = map(&m);
	if (!err) {
		mapped = true;
	} else if (err == -EINVAL) {
		printf("map: EINVAL: no P2P route from %s to %s\n", s.imp_name, s.exp_name);
	} else {
		die("P2PT_IOC_MAP: %s", strerror(-err));
	}
	dma_path = mapped && m.route != P2PT_ROUTE_NOT_SUPPORTED;

	/* 3. DMA a message into each range. */
	if (!dma_path) {
		if (lab_host_bridge_p2p())
			printf("dma-buf DMA: skipped: the kernel found no P2P route from %s to %s\n",
			       s.imp_name, s.exp_name);
		else
			printf("dma-buf DMA: skipped: %s's path to %s crosses the host bridge, which 6.12's P2PDMA allow-list refuses for this CPU model (not AMD Zen)\n",
			       s.imp_name, s.exp_name);
	}
	for (i = 0; dma_path && i < NR_RANGES; i++) {
		uint64_t addr = dma_addr_of(&m, msg_off[i], sizeof(msg[i]));
		uint64_t bar_off = bar_off_of(msg_off[i]);
		ssize_t n;

		memset(msg[i], 0, sizeof(msg[i]));
		snprintf(msg[i], sizeof(msg[i]),
			 "dma-buf range %u, written by %s's DMA engine at 0x%llx, %ld",
			 i, s.imp_name, (unsigned long long)addr, (long)time(NULL));
		err = dma(P2PT_DMA_TO_PEER, addr, msg[i], strlen(msg[i]) + 1);
		if (err)
			die("DMA to 0x%llx: %s", (unsigned long long)addr, strerror(-err));
		printf("dma: %s -> dma 0x%llx = dma-buf offset 0x%llx = BAR %d offset 0x%llx, %zu bytes\n",
		       s.imp_name, (unsigned long long)addr, (unsigned long long)msg_off[i],
		       BAR, (unsigned long long)bar_off, strlen(msg[i]) + 1);
		printf("dma-buf message at BAR %d offset 0x%llx: %s\n", BAR,
		       (unsigned long long)bar_off, msg[i]);
		/* The guest's own view: the BAR through VFIO's region. */
		memset(got, 0, sizeof(got));
		n = pread(s.v.device, got, sizeof(got) - 1, s.bar.offset + bar_off);
		check(n > 0 && !strcmp(got, msg[i]),
		      "BAR %d offset 0x%llx through VFIO reads \"%s\"", BAR,
		      (unsigned long long)bar_off, n > 0 ? got : strerror(errno));
		if (n > 0 && !strcmp(got, msg[i]))
			printf("check: BAR %d offset 0x%llx read through VFIO: same bytes\n",
			       BAR, (unsigned long long)bar_off);
	}

	/* 4. Revoke: reset, then memory decoding off and on. */
	if (ioctl(s.v.device, VFIO_DEVICE_GET_INFO, &dinfo))
		die("VFIO_DEVICE_GET_INFO: %s", strerror(errno));
	status("before the reset", &st);
	check(!!(st.flags & P2PT_STATUS_MAPPED) == mapped && !st.move_notify_count,
	      "status before the reset: flags 0x%x, move_notify %u", st.flags,
	      st.move_notify_count);
	if (!(dinfo.flags & VFIO_DEVICE_FLAGS_RESET)) {
		printf("revoke: %s has no reset (VFIO_DEVICE_FLAGS_RESET clear): reset step skipped\n",
		       s.exp);
	} else {
		if (ioctl(s.v.device, VFIO_DEVICE_RESET))
			die("VFIO_DEVICE_RESET: %s", strerror(errno));
		printf("revoke: VFIO_DEVICE_RESET on %s done (the dma-buf was revoked during the reset)\n",
		       s.exp);
		status("after the reset", &st);
		check(!(st.flags & P2PT_STATUS_MAPPED),
		      "the importer is still mapped after the reset (flags 0x%x)", st.flags);
		/* told twice: the revoke, then the restore (it may map again) */
		check(st.move_notify_count == 2, "move_notify count %u after the reset, want 2",
		      st.move_notify_count);
		if (!(st.flags & P2PT_STATUS_MAPPED) && st.move_notify_count == 2)
			printf("check: the importer was told (move_notify) of the revoke%s and of the restore\n",
			       mapped ? ", unmapped," : "");
	}
	if (st.flags & P2PT_STATUS_MAPPED)
		unmap();

	err = lab_vfio_config_read16(&s.v, PCI_COMMAND, &s.cmd);
	if (err)
		die("read PCI_COMMAND: %s", strerror(-err));
	s.cmd_saved = true;
	set_memory(false);
	status("with memory decoding off", &st);
	err = map(&m);
	printf("map with memory decoding off: %s%s\n", err ? errname(-err) : "succeeded",
	       err == -ENODEV ? " (revoked)" : "");
	check(err == -ENODEV, "map with memory decoding off: %s, want ENODEV",
	      err ? strerror(-err) : "succeeded");
	if (!err)
		unmap();
	set_memory(true);
	err = map(&m);
	if (err)
		printf("map with memory decoding on: %s\n", errname(-err));
	if (dma_path) {
		check(!err, "map with memory decoding on again: %s", strerror(-err));
		if (!err) {
			uint64_t addr = dma_addr_of(&m, msg_off[0], strlen(msg[0]) + 1);

			memset(got, 0, sizeof(got));
			err = dma(P2PT_DMA_FROM_PEER, addr, got, strlen(msg[0]) + 1);
			check(!err && !strcmp(got, msg[0]), "DMA back from 0x%llx: %s",
			      (unsigned long long)addr, err ? strerror(-err) : got);
			if (!err && !strcmp(got, msg[0]))
				printf("check: mapped again; %s's DMA reads the range 0 message back from 0x%llx\n",
				       s.imp_name, (unsigned long long)addr);
		}
	} else {
		/* No route: the map fails as it did before the revoke. */
		check(err == (mapped ? 0 : -EINVAL),
		      "map with memory decoding on again: %s", err ? strerror(-err) : "succeeded");
		if (err == -EINVAL)
			printf("check: no longer revoked (EINVAL = no P2P route, as before)\n");
	}
	status("at the end", &st);

	cleanup();
	if (tool_failures) {
		fprintf(stderr, "vfio-dmabuf: %d check(s) FAILED\n", tool_failures);
		return 1;
	}
	printf("vfio-dmabuf: all checks passed\n");
	return 0;
}
