/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the P2P dma-buf kselftests (tests/selftests/p2pdma): putting
 * the lab devices on the test drivers and restoring them (with lab.h's
 * lab_pci_bind()), the route the lab should give, and wrappers of the test
 * module's ioctls
 * (tests/modules/p2p_dmabuf_test.h). Functions return 0 (or a value) on
 * success and -errno on failure, and print what went wrong as a KTAP
 * comment ("# ...").
 */
#ifndef P2P_P2PT_H
#define P2P_P2PT_H

#include <stdbool.h>
#include <sys/syscall.h>
#include <time.h>
#include "lab.h"
#include "p2p_dmabuf_test.h"

#define P2PT_MODULE	"p2p_dmabuf_test"
#define IVSHMEM_BAR	2

/* Open the test module's device, loading the module if needed; fd or -errno. */
static inline int p2pt_dev_open(void)
{
	const char *top = getenv("LAB_TOP");
	char path[PATH_MAX];
	int fd, mod;

	fd = open(P2PT_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || !top)
		return fd < 0 ? -errno : fd;
	/* Not loaded (tests/guest-run loads it): load it from the build. */
	snprintf(path, sizeof(path), "%s/build/tests/modules/%s.ko", top, P2PT_MODULE);
	mod = open(path, O_RDONLY | O_CLOEXEC);
	if (mod < 0) {
		lab_note("%s: %s", path, strerror(errno));
		return -ENOENT;
	}
	if (syscall(SYS_finit_module, mod, "", 0) && errno != EEXIST) {
		lab_note("loading %s: %s", path, strerror(errno));
		close(mod);
		return -ENOENT;
	}
	close(mod);
	fd = open(P2PT_DEVICE, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* --- ioctl wrappers: 0 (or an fd) or -errno ---------------------------- */

static inline int p2pt_ioctl(int dev, unsigned long cmd, void *arg)
{
	int ret = ioctl(dev, cmd, arg);

	return ret < 0 ? -errno : ret;
}

/* Export @n ranges of BAR @bar of @bdf; the dma-buf fd or -errno. */
static inline int p2pt_export(int dev, const char *bdf, unsigned int bar,
			      const struct p2pt_range *ranges, unsigned int n,
			      struct p2pt_export *out)
{
	struct p2pt_export args = { .bar = bar, .nr_ranges = n,
				    .open_flags = O_RDWR | O_CLOEXEC };
	unsigned int i;
	int ret;

	snprintf(args.bdf, sizeof(args.bdf), "%s", bdf);
	for (i = 0; i < n && i < P2PT_MAX_RANGES; i++)
		args.ranges[i] = ranges[i];
	ret = p2pt_ioctl(dev, P2PT_IOC_EXPORT, &args);
	if (out)
		*out = args;
	return ret;
}

static inline int p2pt_revoke(int dev, int fd)
{
	struct p2pt_revoke args = { .fd = fd };

	return p2pt_ioctl(dev, P2PT_IOC_REVOKE, &args);
}

static inline int p2pt_unrevoke(int dev, int fd)
{
	struct p2pt_revoke args = { .fd = fd };

	return p2pt_ioctl(dev, P2PT_IOC_UNREVOKE, &args);
}

/*
 * Import dma-buf @fd into importer @bdf, a slow partner after @delay_ms
 * (P2PT_IMPORT_F_DEFER, _FENCE); the handle (> 0) or -errno.
 */
static inline int p2pt_import_slow(int dev, const char *bdf, int fd, unsigned int mode,
				   unsigned int flags, unsigned int delay_ms)
{
	struct p2pt_import args = {
		.fd = fd, .mode = mode, .flags = flags, .delay_ms = delay_ms,
	};
	int ret;

	snprintf(args.bdf, sizeof(args.bdf), "%s", bdf);
	ret = p2pt_ioctl(dev, P2PT_IOC_IMPORT, &args);
	return ret < 0 ? ret : (int)args.handle;
}

/* Import dma-buf @fd into importer @bdf; the handle (> 0) or -errno. */
static inline int p2pt_import(int dev, const char *bdf, int fd, unsigned int mode,
			      unsigned int flags)
{
	return p2pt_import_slow(dev, bdf, fd, mode, flags, 0);
}

/* Set importer @bdf's streaming DMA mask to @bits bits; 0 or -errno. */
static inline int p2pt_dma_mask(int dev, const char *bdf, unsigned int bits)
{
	struct p2pt_dma_mask args = { .bits = bits };

	snprintf(args.bdf, sizeof(args.bdf), "%s", bdf);
	return p2pt_ioctl(dev, P2PT_IOC_DMA_MASK, &args);
}

static inline int p2pt_map(int dev, unsigned int handle, unsigned int dir,
			   struct p2pt_map *map)
{
	memset(map, 0, sizeof(*map));
	map->handle = handle;
	map->dir = dir;
	return p2pt_ioctl(dev, P2PT_IOC_MAP, map);
}

/*
 * DMA address of dma-buf offset @off in mapping @m, if [@off, @off + @len)
 * lies in one of the reported entries; 0 otherwise.
 */
static inline uint64_t p2pt_map_dma_addr(const struct p2pt_map *m, uint64_t off, uint64_t len)
{
	uint64_t start = 0;
	unsigned int i;

	for (i = 0; i < m->nr_entries; start += m->entries[i++].len)
		if (off >= start && off + len <= start + m->entries[i].len)
			return m->entries[i].dma_addr + (off - start);
	return 0;
}

static inline int p2pt_unmap(int dev, unsigned int handle)
{
	struct p2pt_handle args = { .handle = handle };

	return p2pt_ioctl(dev, P2PT_IOC_UNMAP, &args);
}

static inline int p2pt_release(int dev, unsigned int handle)
{
	struct p2pt_handle args = { .handle = handle };

	return p2pt_ioctl(dev, P2PT_IOC_RELEASE, &args);
}

static inline int p2pt_status(int dev, unsigned int handle, struct p2pt_status *st)
{
	memset(st, 0, sizeof(*st));
	st->handle = handle;
	return p2pt_ioctl(dev, P2PT_IOC_STATUS, st);
}

static inline int p2pt_dma(int dev, unsigned int handle, unsigned int dir,
			   uint64_t dma_addr, void *buf, size_t len)
{
	struct p2pt_dma args = {
		.handle = handle, .dir = dir, .dma_addr = dma_addr,
		.len = len, .user_ptr = (uintptr_t)buf,
	};

	return p2pt_ioctl(dev, P2PT_IOC_DMA, &args);
}

/*
 * CPU access to the dma-buf of @handle, through the physical ranges of its
 * attachment, as rxe maps them; 0 or -errno.
 */
static inline int p2pt_vmap(int dev, unsigned int handle)
{
	struct p2pt_handle args = { .handle = handle };

	return p2pt_ioctl(dev, P2PT_IOC_VMAP, &args);
}

static inline int p2pt_vunmap(int dev, unsigned int handle)
{
	struct p2pt_handle args = { .handle = handle };

	return p2pt_ioctl(dev, P2PT_IOC_VUNMAP, &args);
}

/*
 * dma_buf_vmap() of dma-buf @fd without attaching it, held until @dev is
 * closed if the exporter allows it; 0 or -errno.
 */
static inline int p2pt_vmap_unattached(int dev, int fd)
{
	struct p2pt_fd args = { .fd = fd };

	return p2pt_ioctl(dev, P2PT_IOC_VMAP_UNATTACHED, &args);
}

/* Copy @len bytes between @buf and offset @off of the CPU mapping of @handle. */
static inline int p2pt_cpu(int dev, unsigned int handle, unsigned int dir,
			   uint64_t off, void *buf, size_t len)
{
	struct p2pt_cpu args = {
		.handle = handle, .dir = dir, .offset = off,
		.len = len, .user_ptr = (uintptr_t)buf,
	};

	return p2pt_ioctl(dev, P2PT_IOC_CPU, &args);
}

static inline const char *p2pt_route_name(unsigned int route)
{
	switch (route) {
	case P2PT_ROUTE_NOT_SUPPORTED: return "NOT_SUPPORTED";
	case P2PT_ROUTE_BUS_ADDR: return "BUS_ADDR";
	case P2PT_ROUTE_THRU_HOST_BRIDGE: return "THRU_HOST_BRIDGE";
	default: return "UNKNOWN";
	}
}

/*
 * DMA-API debugging's record of the resource mappings (dma_map_resource())
 * @bdf holds: the number of them, printing each as a comment when @show;
 * -errno without CONFIG_DMA_API_DEBUG (or with it disabled).
 */
static inline int p2pt_dma_debug_resources(const char *bdf, bool show)
{
	char line[512], drv[64], dev[64], type[32];
	bool failed = false;
	int n = 0;
	FILE *f;

	f = fopen("/sys/kernel/debug/dma-api/dump", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %63s %31s", drv, dev, type) != 3 ||
		    strcmp(dev, bdf) || strcmp(type, "resource"))
			continue;
		n++;
		if (show)
			lab_note("dma-debug: %.*s", (int)strcspn(line, "\n"), line);
		if (strstr(line, " D=ffffffffffffffff "))
			failed = true;
	}
	fclose(f);
	/* Linux 6.12's debug_dma_map_resource() does not check for errors. */
	if (show && failed)
		lab_note("dma-debug: D=ffffffffffffffff is DMA_MAPPING_ERROR: DMA-API debugging recorded a failed dma_map_resource() (a kernel/dma/debug.c bug, not a leak of the caller)");
	return n;
}

/* --- the lab set-up shared by the p2pdma tests ------------------------- */

/*
 * The lab devices the tests use (the first three by every p2pdma test, the
 * others by the VFIO tests), and their drivers when the test program
 * started (vfio-pci or their own driver at boot), recorded before the
 * first test and put back when the program ends (or by
 * p2pt_lab_restore_all()). From one test to the next the devices stay on
 * the test drivers: rebinding a device costs about half a second under TCG
 * with the debug kernel.
 */
#define P2PT_LAB_NDEV	6
static const char * const p2pt_lab_names[P2PT_LAB_NDEV] = {
	"ivshmem", "edu", "edu2", "nvme", "testdev", "ivshmem2",
};
static struct {
	pid_t pid;			/* the harness's main process */
	char bdf[P2PT_LAB_NDEV][LAB_BDF_LEN];
	char drv[P2PT_LAB_NDEV][64];
} p2pt_orig;

static void __attribute__((constructor)) p2pt_orig_save(void)
{
	int i;

	p2pt_orig.pid = getpid();
	for (i = 0; i < P2PT_LAB_NDEV; i++) {
		if (lab_pci_find(p2pt_lab_names[i], p2pt_orig.bdf[i]))
			p2pt_orig.bdf[i][0] = '\0';
		else
			lab_pci_driver(p2pt_orig.bdf[i], p2pt_orig.drv[i],
				       sizeof(p2pt_orig.drv[i]));
	}
}

/* Address of lab device @name ("" if absent or unknown). */
static inline const char *p2pt_orig_bdf(const char *name)
{
	int i;

	for (i = 0; i < P2PT_LAB_NDEV; i++)
		if (!strcmp(name, p2pt_lab_names[i]))
			return p2pt_orig.bdf[i];
	return "";
}

/* Put the lab devices back on their drivers; 0 or the first -errno. */
static inline int p2pt_lab_restore_all(void)
{
	int i, err, ret = 0;

	for (i = 0; i < P2PT_LAB_NDEV; i++) {
		if (!p2pt_orig.bdf[i][0])
			continue;
		err = lab_pci_bind(p2pt_orig.bdf[i], p2pt_orig.drv[i]);
		if (err && !ret)
			ret = err;
	}
	return ret;
}

static void __attribute__((destructor)) p2pt_orig_restore(void)
{
	if (getpid() == p2pt_orig.pid && p2pt_lab_restore_all())
		lab_note("could not put the lab devices back on their drivers");
}

/*
 * One test's view of the lab: ivshmem bound to p2p_test_exporter, edu and
 * edu2 to p2p_test_importer, the test module open, the host file behind
 * BAR 2 open.
 */
struct p2pt_lab {
	int dev;			/* /dev/p2p_dmabuf_test */
	int host;			/* $LAB_IVSHMEM */
	char ivshmem[LAB_BDF_LEN], edu[LAB_BDF_LEN], edu2[LAB_BDF_LEN];
	uint64_t bar_start, bar_size;	/* ivshmem BAR 2 (bus address) */
	bool iommu;			/* an IOMMU translates DMA */
	bool host_bridge_p2p;		/* the host bridge is allow-listed */
	/*
	 * The dma-buf core pins a dynamic exporter around every mapping
	 * (CONFIG_DMABUF_MOVE_NOTIFY off): each live mapping is a pin too.
	 */
	bool core_pins_maps;
	uint32_t seed;
	int dma_debug_base[3];		/* resource mappings seen at set-up */
};

static inline char *p2pt_lab_bdf(struct p2pt_lab *lab, int i)
{
	return i == 0 ? lab->ivshmem : i == 1 ? lab->edu : lab->edu2;
}

/*
 * Close what p2pt_lab_setup() opened (which releases everything the test
 * imported; dma-bufs are released with their fds). The devices stay bound
 * to the test drivers for the next test. Returns 0.
 */
static inline int p2pt_lab_restore(struct p2pt_lab *lab)
{
	if (lab->dev >= 0)
		close(lab->dev);
	if (lab->host >= 0)
		close(lab->host);
	lab->dev = lab->host = -1;
	return 0;
}

/*
 * Set up with ivshmem, edu and edu2 bound to the drivers @drv[0..2] (a
 * driver "" leaves the device unbound); 0 or -errno, and on failure the
 * files opened are closed again.
 */
static inline int p2pt_lab_setup_drivers(struct p2pt_lab *lab, const char * const drv[3])
{
	struct timespec ts;
	int i, err;

	memset(lab, 0, sizeof(*lab));
	lab->dev = lab->host = -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lab->seed = (uint32_t)(ts.tv_nsec ^ ts.tv_sec ^ getpid());
	lab->iommu = lab_iommu_present();
	lab->host_bridge_p2p = lab_host_bridge_p2p();
	lab->core_pins_maps = lab_read_bool(P2PT_PARAM_CORE_PINS_MAPS);

	for (i = 0; i < 3; i++) {
		if (!p2pt_orig.bdf[i][0]) {
			lab_note("lab device %s not found", p2pt_lab_names[i]);
			return -ENODEV;
		}
		strcpy(p2pt_lab_bdf(lab, i), p2pt_orig.bdf[i]);
	}
	err = lab_pci_bar(lab->ivshmem, IVSHMEM_BAR, &lab->bar_start, &lab->bar_size);
	if (err) {
		lab_note("ivshmem BAR %d: %s", IVSHMEM_BAR, strerror(-err));
		goto fail;
	}
	lab->dev = p2pt_dev_open();
	if (lab->dev < 0) {
		err = lab->dev;
		lab_note("%s: %s", P2PT_DEVICE, strerror(-err));
		goto fail;
	}
	lab->host = lab_ivshmem_host_open();
	if (lab->host < 0) {
		err = lab->host;
		lab_note("$LAB_IVSHMEM: %s", strerror(-err));
		goto fail;
	}
	err = 0;
	for (i = 0; i < 3 && !err; i++)
		err = lab_pci_bind(p2pt_lab_bdf(lab, i), drv[i]);
	if (err)
		goto fail;
	/* Left by earlier tests (a leak there is reported there). */
	for (i = 0; i < 3; i++)
		lab->dma_debug_base[i] = p2pt_dma_debug_resources(p2pt_lab_bdf(lab, i), false);
	return 0;
fail:
	p2pt_lab_restore(lab);
	return err;
}

/* The p2pdma tests' set-up: the test exporter on ivshmem, importers on edu, edu2. */
static inline int p2pt_lab_setup(struct p2pt_lab *lab)
{
	static const char * const drv[3] = {
		P2PT_EXPORTER_DRIVER, P2PT_IMPORTER_DRIVER, P2PT_IMPORTER_DRIVER,
	};

	return p2pt_lab_setup_drivers(lab, drv);
}

/* Resource mappings of lab device @bdf that appeared since set-up. */
static inline int p2pt_lab_new_resources(struct p2pt_lab *lab, const char *bdf)
{
	int i, n = p2pt_dma_debug_resources(bdf, false);

	for (i = 0; i < 3 && n > 0; i++)
		if (!strcmp(bdf, p2pt_lab_bdf(lab, i)) && lab->dma_debug_base[i] > 0)
			n -= lab->dma_debug_base[i];
	return n;
}

/* The route the lab gives between ivshmem and importer @bdf. */
static inline unsigned int p2pt_lab_route(const struct p2pt_lab *lab, const char *bdf)
{
	if (!strcmp(bdf, lab->edu))
		return P2PT_ROUTE_BUS_ADDR;	/* same switch, no ACS */
	return lab->host_bridge_p2p ? P2PT_ROUTE_THRU_HOST_BRIDGE :
				      P2PT_ROUTE_NOT_SUPPORTED;
}

/*
 * Can edu's DMA reach ivshmem through a mapping of @route? QEMU sends
 * every DMA through the emulated IOMMU: a bus address (BUS_ADDR, no IOVA
 * mapping) only reaches the BAR when there is no IOMMU.
 */
static inline bool p2pt_lab_dma_works(const struct p2pt_lab *lab, unsigned int route)
{
	return route == P2PT_ROUTE_THRU_HOST_BRIDGE ||
	       (route == P2PT_ROUTE_BUS_ADDR && !lab->iommu);
}

/* An importer whose DMA reaches ivshmem in this boot, or NULL. */
static inline const char *p2pt_lab_dma_importer(const struct p2pt_lab *lab)
{
	if (!lab->iommu)
		return lab->edu;
	if (lab->host_bridge_p2p)
		return lab->edu2;
	return NULL;
}

/* pread/pwrite the whole buffer from/to the host file; 0 or -errno. */
static inline int p2pt_host_read(const struct p2pt_lab *lab, uint64_t off, void *buf,
				 size_t len)
{
	ssize_t n = pread(lab->host, buf, len, off);

	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

static inline int p2pt_host_write(const struct p2pt_lab *lab, uint64_t off,
				  const void *buf, size_t len)
{
	ssize_t n = pwrite(lab->host, buf, len, off);

	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

/* Fill [@off, @off + @len) of the host file with byte @val; 0 or -errno. */
static inline int p2pt_host_fill(const struct p2pt_lab *lab, uint64_t off,
				 size_t len, uint8_t val)
{
	uint8_t *buf = malloc(len);
	int err;

	if (!buf)
		return -ENOMEM;
	memset(buf, val, len);
	err = p2pt_host_write(lab, off, buf, len);
	free(buf);
	return err;
}

/*
 * First offset in [@off, @off + @len) of the host file whose byte is not
 * @val, or -1 if all are (or -2 on a read error).
 */
static inline int64_t p2pt_host_find_not(const struct p2pt_lab *lab, uint64_t off,
					 size_t len, uint8_t val)
{
	uint8_t *buf = malloc(len);
	int64_t ret = -1;
	size_t i;

	if (!buf || p2pt_host_read(lab, off, buf, len)) {
		free(buf);
		return -2;
	}
	for (i = 0; i < len; i++) {
		if (buf[i] != val) {
			ret = off + i;
			break;
		}
	}
	free(buf);
	return ret;
}

#endif /* P2P_P2PT_H */
