/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VFIO dma-buf operations without the kselftest harness, for the tests
 * (through vfio_dmabuf.h), the lab's tools and the benchmarks: the lab
 * set-up (ivshmem on vfio-pci, the test importer on edu or edu2: which one
 * is explained in vfio_dmabuf.h), VFIO_DEVICE_FEATURE_DMA_BUF exports and
 * the triggers that revoke them (memory decoding, resets, low power). Each
 * returns 0 (or an fd) or -errno.
 */
#ifndef P2P_VFIO_DMABUF_OPS_H
#define P2P_VFIO_DMABUF_OPS_H

#include "p2pt.h"

#define VFIO_PCI_DRIVER		"vfio-pci"

/* --- the lab -------------------------------------------------------------- */

/* One test's view of the lab for the VFIO exporter. */
struct vdb_lab {
	struct p2pt_lab lab;		/* module fd, host file, BDFs, BAR 2 */
	const char *imp;		/* the importer (edu or edu2) */
	unsigned int route;		/* route ivshmem -> imp */
	bool can_map;			/* the route allows mapping */
	bool dma;			/* imp's DMA reaches ivshmem */
	bool cdev;			/* ivshmem opened through the cdev */
	struct lab_vfio v;		/* ivshmem through VFIO */
};

/*
 * Why the cdev variant cannot run in this boot, or NULL: Linux 6.12 makes
 * no VFIO device cdev for no-IOMMU devices (vfio_device_add()).
 */
static inline const char *vdb_cdev_unavailable(void)
{
	if (!lab_iommu_present())
		return "Linux 6.12 has no VFIO device cdev for no-IOMMU devices";
	return NULL;
}

/*
 * Bind ivshmem (and edu with an IOMMU: same group) to vfio-pci, the
 * importers to the test module, open the module and the host file, and
 * open lab device @name (bound to vfio-pci; NULL: none) through VFIO
 * (cdev or group) into l->v; 0 or -errno.
 */
static inline int vdb_lab_setup_dev(struct vdb_lab *l, bool cdev, const char *name)
{
	bool iommu = lab_iommu_present();
	const char * const drv[3] = {
		VFIO_PCI_DRIVER,
		iommu ? VFIO_PCI_DRIVER : P2PT_IMPORTER_DRIVER,
		P2PT_IMPORTER_DRIVER,
	};
	const char *bdf;
	int err;

	memset(l, 0, sizeof(*l));
	l->v.container = l->v.group = l->v.device = l->v.iommufd = -1;
	err = p2pt_lab_setup_drivers(&l->lab, drv);
	if (err)
		return err;
	l->imp = iommu ? l->lab.edu2 : l->lab.edu;
	l->route = p2pt_lab_route(&l->lab, l->imp);
	l->can_map = l->route != P2PT_ROUTE_NOT_SUPPORTED;
	l->dma = p2pt_lab_dma_works(&l->lab, l->route);
	l->cdev = cdev;
	if (!name)
		return 0;
	bdf = p2pt_orig_bdf(name);
	err = bdf[0] ? lab_pci_bind(bdf, VFIO_PCI_DRIVER) : -ENODEV;
	if (!err)
		err = lab_vfio_open(&l->v, bdf, cdev);
	if (err) {
		lab_note("VFIO %s of %s %s: %s", cdev ? "cdev" : "group", name, bdf,
			 strerror(-err));
		p2pt_lab_restore(&l->lab);
	}
	return err;
}

/* The set-up with ivshmem open through VFIO. */
static inline int vdb_lab_setup(struct vdb_lab *l, bool cdev)
{
	return vdb_lab_setup_dev(l, cdev, "ivshmem");
}

static inline void vdb_lab_restore(struct vdb_lab *l)
{
	lab_vfio_close(&l->v);
	p2pt_lab_restore(&l->lab);
}

/* --- VFIO_DEVICE_FEATURE_DMA_BUF --------------------------------------- */

/* VFIO_DEVICE_FEATURE with @flags and @len bytes of @data; ret or -errno. */
static inline int vdb_feature(int device, uint32_t flags, const void *data, size_t len)
{
	struct vfio_device_feature *f = calloc(1, sizeof(*f) + len);
	int ret;

	if (!f)
		return -ENOMEM;
	f->argsz = sizeof(*f) + len;
	f->flags = flags;
	if (len)
		memcpy(f->data, data, len);
	ret = ioctl(device, VFIO_DEVICE_FEATURE, f);
	ret = ret < 0 ? -errno : ret;
	free(f);
	return ret;
}

/*
 * VFIO_DEVICE_FEATURE_GET of a dma-buf of @n ranges of region @region,
 * with @open_flags and @flags; the fd or -errno.
 */
static inline int vdb_export_raw(int device, uint32_t region, uint32_t open_flags,
				 uint32_t flags, const struct vfio_region_dma_range *r,
				 uint32_t n)
{
	size_t len = sizeof(struct vfio_device_feature_dma_buf) + n * sizeof(*r);
	struct vfio_device_feature_dma_buf *d = calloc(1, len);
	int ret;

	if (!d)
		return -ENOMEM;
	d->region_index = region;
	d->open_flags = open_flags;
	d->flags = flags;
	d->nr_ranges = n;
	if (n)
		memcpy(d->dma_ranges, r, n * sizeof(*r));
	ret = vdb_feature(device, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF,
			  d, len);
	free(d);
	return ret;
}

static inline int vdb_export(int device, uint32_t region,
			     const struct vfio_region_dma_range *r, uint32_t n)
{
	return vdb_export_raw(device, region, O_RDWR | O_CLOEXEC, 0, r, n);
}

static inline int vdb_export1(int device, uint32_t region, uint64_t off, uint64_t len)
{
	struct vfio_region_dma_range r = { .offset = off, .length = len };

	return vdb_export(device, region, &r, 1);
}

/* --- triggers ---------------------------------------------------------- */

/* Set or clear the memory decode bit of PCI_COMMAND through VFIO. */
static inline int vdb_memory(struct lab_vfio *v, bool on)
{
	uint16_t cmd;
	int err;

	err = lab_vfio_config_read16(v, PCI_COMMAND, &cmd);
	if (err)
		return err;
	if (on)
		cmd |= PCI_COMMAND_MEMORY;
	else
		cmd &= ~PCI_COMMAND_MEMORY;
	return lab_vfio_config_write16(v, PCI_COMMAND, cmd);
}

static inline int vdb_device_reset(struct lab_vfio *v)
{
	return ioctl(v->device, VFIO_DEVICE_RESET) ? -errno : 0;
}

/*
 * VFIO_DEVICE_PCI_HOT_RESET of the device's slot or bus: with the group
 * interface the group fd proves ownership, with the cdev the device's
 * iommufd does (zero-length array); 0 or -errno.
 */
static inline int vdb_hot_reset(struct lab_vfio *v)
{
	struct {
		struct vfio_pci_hot_reset hdr;
		int32_t fds[1];
	} r;

	memset(&r, 0, sizeof(r));
	r.hdr.argsz = sizeof(r.hdr);
	if (v->group >= 0) {
		r.hdr.argsz = sizeof(r);
		r.hdr.count = 1;
		r.fds[0] = v->group;
	}
	return ioctl(v->device, VFIO_DEVICE_PCI_HOT_RESET, &r) ? -errno : 0;
}

/* VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY / _EXIT (SET, no data). */
static inline int vdb_low_power(struct lab_vfio *v, bool enter)
{
	return vdb_feature(v->device, VFIO_DEVICE_FEATURE_SET |
			   (enter ? VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY :
				    VFIO_DEVICE_FEATURE_LOW_POWER_EXIT), NULL, 0);
}

/* Can VFIO reset the device (VFIO_DEVICE_GET_INFO)? */
static inline bool vdb_reset_works(struct lab_vfio *v)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };

	return !ioctl(v->device, VFIO_DEVICE_GET_INFO, &info) &&
	       (info.flags & VFIO_DEVICE_FLAGS_RESET);
}

#endif /* P2P_VFIO_DMABUF_OPS_H */
