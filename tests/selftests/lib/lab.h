/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for kselftests that run in the QEMU P2P lab (lab/run).
 *
 * Lab devices are found by name (lab/devices) and bound to a driver with
 * driver_override (lab_pci_bind()). The host file behind the
 * ivshmem BAR 2 is reachable from the guest at $LAB_IVSHMEM: the lab's
 * run directory is shared read-write over 9p, so pread()/pwrite() there go
 * through QEMU to the host file, never through the guest's PCI path.
 */
#ifndef P2P_LAB_H
#define P2P_LAB_H

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#define LAB_BDF_LEN 16

/* Read a sysfs attribute holding one hex number; -1 on error. */
static inline long lab_sysfs_hex(const char *dir, const char *attr)
{
	char path[2 * PATH_MAX];
	long val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%lx", &val) != 1)
		val = -1;
	fclose(f);
	return val;
}

/*
 * Find a lab device by name (lab/devices: NAME VENDOR:DEVICE NTH) among
 * the PCI devices, in address order; 0 and @bdf filled, or -errno.
 */
static inline int lab_pci_find(const char *name, char bdf[LAB_BDF_LEN])
{
	char path[PATH_MAX], line[256], n[64];
	unsigned int vendor, device, nth = 0, seen = 0;
	const char *top = getenv("LAB_TOP");
	struct dirent **list;
	int i, count, ret = -ENODEV;
	FILE *f;

	if (!top)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/lab/devices", top);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %x:%x %u", n, &vendor, &device, &nth) == 4 &&
		    !strcmp(n, name))
			break;
		nth = 0;
	}
	fclose(f);
	if (!nth)
		return -ENOENT;
	count = scandir("/sys/bus/pci/devices", &list, NULL, alphasort);
	if (count < 0)
		return -errno;
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", list[i]->d_name);
		if (ret && list[i]->d_name[0] != '.' &&
		    lab_sysfs_hex(path, "vendor") == vendor &&
		    lab_sysfs_hex(path, "device") == device && ++seen == nth) {
			snprintf(bdf, LAB_BDF_LEN, "%.15s", list[i]->d_name);
			ret = 0;
		}
		free(list[i]);
	}
	free(list);
	return ret;
}

/* Name of the driver bound to a PCI device, or "" when unbound. */
static inline void lab_pci_driver(const char *bdf, char *drv, size_t len)
{
	char path[PATH_MAX], link[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	drv[0] = '\0';
	if (n <= 0)
		return;
	link[n] = '\0';
	base = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
	if (strlen(base) < len)
		strcpy(drv, base);
}

/* IOMMU group number of a PCI device, or -errno. */
static inline int lab_iommu_group(const char *bdf)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return -errno;
	link[n] = '\0';
	return atoi(strrchr(link, '/') + 1);
}

/*
 * A device opened through VFIO: the group/container interface
 * (lab_vfio_open_group(): @container, @group) or the device cdev with
 * iommufd (lab_vfio_open_cdev(): @iommufd); unused fds are -1.
 */
struct lab_vfio {
	int container;
	int group;
	int device;
	int iommufd;
	uint32_t devid;		/* cdev: the device's id in its iommufd */
	uint32_t hwpt;		/* cdev: the HWPT it is attached to */
};

static inline void lab_vfio_close(struct lab_vfio *v)
{
	if (v->device >= 0)
		close(v->device);
	if (v->group >= 0)
		close(v->group);
	if (v->container >= 0)
		close(v->container);
	if (v->iommufd >= 0)
		close(v->iommufd);
	v->device = v->group = v->container = v->iommufd = -1;
}

/*
 * Open @bdf through its VFIO group with a type1 IOMMU, or in no-IOMMU mode
 * when the lab runs without an IOMMU; 0 or -errno.
 */
static inline int lab_vfio_open_group(struct lab_vfio *v, const char *bdf)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	unsigned long type = VFIO_TYPE1v2_IOMMU;
	char path[64];
	int grp, err;

	v->container = v->group = v->device = v->iommufd = -1;
	grp = lab_iommu_group(bdf);
	if (grp < 0)
		return grp;
	v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (v->container < 0)
		goto fail;
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
		errno = EPROTO;
		goto fail;
	}
	/* Without an IOMMU (lab/run --iommu off) the group is no-IOMMU. */
	snprintf(path, sizeof(path), "/dev/vfio/noiommu-%d", grp);
	v->group = open(path, O_RDWR | O_CLOEXEC);
	if (v->group >= 0) {
		type = VFIO_NOIOMMU_IOMMU;
	} else {
		snprintf(path, sizeof(path), "/dev/vfio/%d", grp);
		v->group = open(path, O_RDWR | O_CLOEXEC);
		if (v->group < 0)
			goto fail;
	}
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &status))
		goto fail;
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY;
		goto fail;
	}
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container))
		goto fail;
	if (ioctl(v->container, VFIO_SET_IOMMU, type))
		goto fail;
	v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (v->device < 0)
		goto fail;
	return 0;
fail:
	err = -errno;
	lab_vfio_close(v);
	return err;
}

/*
 * Open @bdf through its VFIO device cdev (/dev/vfio/devices/vfioN, found in
 * the device's sysfs vfio-dev directory), bind it to @iommufd and attach
 * it to IOAS or HWPT @pt_id; 0 or -errno. @iommufd stays the caller's
 * (v->iommufd is -1). Linux 6.12 makes no cdev for no-IOMMU devices
 * (lab/run --iommu off): -ENOENT there.
 */
static inline int lab_vfio_open_cdev_in(struct lab_vfio *v, const char *bdf,
					int iommufd, uint32_t pt_id)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	char path[PATH_MAX], name[64] = "";
	struct dirent *d;
	DIR *dir;
	int err;

	v->container = v->group = v->device = v->iommufd = -1;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((d = readdir(dir)))
		if (!strncmp(d->d_name, "vfio", 4))
			snprintf(name, sizeof(name), "%.60s", d->d_name);
	closedir(dir);
	if (!name[0])
		return -ENOENT;
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	v->device = open(path, O_RDWR | O_CLOEXEC);
	if (v->device < 0)
		goto fail;
	bind.iommufd = iommufd;
	if (ioctl(v->device, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		goto fail;
	v->devid = bind.out_devid;
	attach.pt_id = pt_id;
	if (ioctl(v->device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		goto fail;
	v->hwpt = attach.pt_id;
	return 0;
fail:
	err = -errno;
	lab_vfio_close(v);
	return err;
}

/* A new IOAS of @iommufd: its id, or -errno. */
static inline int64_t lab_ioas_alloc(int iommufd)
{
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };

	return ioctl(iommufd, IOMMU_IOAS_ALLOC, &ioas) ? -errno : ioas.out_ioas_id;
}

/*
 * Open @bdf through its VFIO device cdev, bound to a new iommufd (which
 * v->iommufd owns) and attached to a new IOAS of it; 0 or -errno.
 */
static inline int lab_vfio_open_cdev(struct lab_vfio *v, const char *bdf)
{
	int64_t ioas;
	int fd, err;

	fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ioas = lab_ioas_alloc(fd);
	err = ioas < 0 ? ioas : lab_vfio_open_cdev_in(v, bdf, fd, ioas);
	if (err) {
		close(fd);
		return err;
	}
	v->iommufd = fd;
	return 0;
}

/* Open @bdf through the device cdev (@cdev) or its group; 0 or -errno. */
static inline int lab_vfio_open(struct lab_vfio *v, const char *bdf, bool cdev)
{
	return cdev ? lab_vfio_open_cdev(v, bdf) : lab_vfio_open_group(v, bdf);
}

static inline int lab_vfio_region(struct lab_vfio *v, unsigned int index,
				  struct vfio_region_info *info)
{
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	info->index = index;
	return ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, info) ? -errno : 0;
}

/*
 * Read or write @len bytes at offset @off of the device's config space
 * through VFIO's config region (vfio-pci's virtualisation applies);
 * 0 or -errno.
 */
static inline int lab_vfio_config(struct lab_vfio *v, bool write, unsigned int off,
				  void *buf, size_t len)
{
	struct vfio_region_info info;
	ssize_t n;
	int err;

	err = lab_vfio_region(v, VFIO_PCI_CONFIG_REGION_INDEX, &info);
	if (err)
		return err;
	if (write)
		n = pwrite(v->device, buf, len, info.offset + off);
	else
		n = pread(v->device, buf, len, info.offset + off);
	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

static inline int lab_vfio_config_read16(struct lab_vfio *v, unsigned int off,
					 uint16_t *val)
{
	return lab_vfio_config(v, false, off, val, sizeof(*val));
}

static inline int lab_vfio_config_write16(struct lab_vfio *v, unsigned int off,
					  uint16_t val)
{
	return lab_vfio_config(v, true, off, &val, sizeof(val));
}

/* Read (@write false) or write @len bytes at @off of the config space of @bdf through sysfs. */
static inline int lab_pci_config_rw(const char *bdf, unsigned int off, void *buf,
				    size_t len, bool write)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

/* Read @len bytes at @off of the config space of @bdf from sysfs. */
static inline int lab_pci_config_read(const char *bdf, unsigned int off, void *buf,
				      size_t len)
{
	return lab_pci_config_rw(bdf, off, buf, len, false);
}

/*
 * Offset of the standard capability @id (PCI_CAP_ID_*) in the config space
 * of @bdf (read from sysfs), or -ENOENT if the device has none.
 */
static inline int lab_pci_find_cap(const char *bdf, unsigned int id)
{
	uint8_t cfg[256];
	unsigned int pos, ttl = 48;
	int err;

	err = lab_pci_config_read(bdf, 0, cfg, sizeof(cfg));
	if (err)
		return err;
	if (!(cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST))
		return -ENOENT;
	for (pos = cfg[PCI_CAPABILITY_LIST] & ~3u; pos >= 0x40 && ttl--;
	     pos = cfg[pos + PCI_CAP_LIST_NEXT] & ~3u)
		if (cfg[pos + PCI_CAP_LIST_ID] == id)
			return pos;
	return -ENOENT;
}

/*
 * Turn on memory decoding of @bdf through sysfs, behind its driver's back
 * (vfio-pci's own view of PCI_COMMAND stays as it was): whatever still
 * writes to a BAR afterwards lands. 0 or -errno.
 */
static inline int lab_pci_decode_on(const char *bdf)
{
	uint16_t cmd;	/* little endian, as the guest */
	int err;

	err = lab_pci_config_read(bdf, PCI_COMMAND, &cmd, sizeof(cmd));
	if (err)
		return err;
	cmd |= PCI_COMMAND_MEMORY;
	return lab_pci_config_rw(bdf, PCI_COMMAND, &cmd, sizeof(cmd), true);
}

/* Open the host file behind ivshmem BAR 2 (read-write), or -errno. */
static inline int lab_ivshmem_host_open(void)
{
	const char *path = getenv("LAB_IVSHMEM");
	int fd;

	if (!path)
		return -ENOENT;
	fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Fill @buf with a pattern that depends on @seed and the byte offset. */
static inline void lab_pattern(void *buf, size_t len, uint64_t off, uint32_t seed)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		uint64_t x = (off + i) * 0x9e3779b97f4a7c15ULL ^ seed;

		p[i] = (uint8_t)(x >> 56);
	}
}

/*
 * The value of line "@key:" of /proc/self/fdinfo/@fd (a dma-buf's "size",
 * "exp_name", ...) into @val, or "" if there is none.
 */
static inline void lab_fdinfo(int fd, const char *key, char *val, size_t len)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	FILE *f;

	val[0] = '\0';
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			snprintf(val, len, "%s", line + klen + 1 + strspn(line + klen + 1, " \t"));
			val[strcspn(val, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

/*
 * The state of this process's fd table, to see that a call left no fd
 * behind: the number of open fds, and the number the next open() gets.
 * The second sees what /proc/self/fd cannot: a number the kernel reserved
 * (get_unused_fd_flags()) and never installed nor gave back. Compare the
 * values before and after; (state >> 16) is the next fd, (state & 0xffff)
 * the count.
 */
static inline int lab_fd_state(void)
{
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	int n = 0, next;

	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	next = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (next < 0)
		return -1;
	close(next);
	return (next << 16) | ((n - 1) & 0xffff);	/* not opendir()'s fd */
}

/*
 * Wait until @counter, which another thread counts up, differs from @from:
 * true once it does, false after @secs seconds. The bound only catches a
 * hang (a thread that stopped making progress); it is no speed check, so
 * make it generous: the lab runs under TCG, on a machine that may be busy.
 */
static inline bool lab_wait_change(const volatile int *counter, int from, int secs)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (*counter == from) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec >= secs)
			return false;
		usleep(1000);
	}
	return true;
}

/* A KTAP comment line on stderr: "# ..." */
static inline void lab_note(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Write @val to the sysfs file @path; 0 or -errno. */
static inline int lab_sysfs_write(const char *path, const char *val)
{
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n < 0)
		err = -errno;
	else if ((size_t)n != strlen(val))
		err = -EIO;
	close(fd);
	return err;
}

/* Unbind @bdf from its driver, if any; 0 or -errno. */
static inline int lab_pci_unbind(const char *bdf)
{
	char path[PATH_MAX], drv[64];
	int err;

	lab_pci_driver(bdf, drv, sizeof(drv));
	if (!drv[0])
		return 0;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
	err = lab_sysfs_write(path, bdf);
	if (err)
		lab_note("unbind %s from %s: %s", bdf, drv, strerror(-err));
	return err;
}

/*
 * Bind @bdf to the driver @drv (or leave it unbound if @drv is "") with
 * driver_override; 0 or -errno (e.g. the driver's probe error).
 */
static inline int lab_pci_bind(const char *bdf, const char *drv)
{
	char path[PATH_MAX], cur[64];
	int err;

	lab_pci_driver(bdf, cur, sizeof(cur));
	if (drv[0] && !strcmp(cur, drv))
		return 0;
	err = lab_pci_unbind(bdf);
	if (err)
		return err;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
	err = lab_sysfs_write(path, drv[0] ? drv : "\n");
	if (err) {
		lab_note("driver_override of %s: %s", bdf, strerror(-err));
		return err;
	}
	if (!drv[0])
		return 0;
	snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s/bind", drv);
	err = lab_sysfs_write(path, bdf);
	if (err) {
		lab_note("bind %s to %s: %s", bdf, drv, strerror(-err));
		return err;
	}
	lab_pci_driver(bdf, cur, sizeof(cur));
	if (strcmp(cur, drv)) {
		lab_note("%s bound to '%s', not %s", bdf, cur, drv);
		return -ENODEV;
	}
	return 0;
}

/* Start and length of BAR @bar from sysfs (on x86 the bus address). */
static inline int lab_pci_bar(const char *bdf, int bar, uint64_t *start,
			      uint64_t *len)
{
	unsigned long long s, e, flags;
	char path[PATH_MAX], line[256];
	int i = 0, err = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource", bdf);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (i++ != bar)
			continue;
		if (sscanf(line, "%llx %llx %llx", &s, &e, &flags) == 3 && s) {
			*start = s;
			*len = e - s + 1;
			err = 0;
		}
		break;
	}
	fclose(f);
	return err;
}

/* A "Y"/"N" file such as a module parameter; false if unreadable. */
static inline bool lab_read_bool(const char *path)
{
	char c = 'N';
	FILE *f = fopen(path, "re");

	if (f) {
		if (fread(&c, 1, 1, f) != 1)
			c = 'N';
		fclose(f);
	}
	return c == 'Y' || c == 'y' || c == '1';
}

/* Is there an IOMMU in the guest (lab/run --iommu on)? */
static inline bool lab_iommu_present(void)
{
	struct dirent *d;
	bool found = false;
	DIR *dir;

	dir = opendir("/sys/class/iommu");
	if (!dir)
		return false;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			found = true;
	closedir(dir);
	return found;
}

/*
 * The kernel log from now on: /dev/kmsg, non-blocking, positioned after
 * the last record; the fd or -errno.
 */
static inline int lab_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	lseek(fd, 0, SEEK_END);
	return fd;
}

/*
 * Wait up to @secs seconds for a record of the kernel log read from @fd
 * (lab_kmsg_open()) that contains @needle; true if one came.
 */
static inline bool lab_kmsg_wait(int fd, const char *needle, int secs)
{
	struct timespec t0, t;
	char rec[1024];
	ssize_t n;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n > 0) {
			rec[n] = '\0';
			if (strstr(rec, needle))
				return true;
			continue;
		}
		/* EPIPE: records were overwritten before we read them */
		if (n < 0 && errno != EAGAIN && errno != EPIPE)
			return false;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec >= secs)
			return false;
		usleep(20000);
	}
}

/*
 * Does 6.12's P2PDMA host-bridge allow-list accept this machine? In the lab
 * (q35, whose host bridge is not on the list) only the CPU decides: AMD
 * family 17h (Zen) or later.
 */
static inline bool lab_host_bridge_p2p(void)
{
	char line[256], vendor[64] = "";
	int family = -1;
	FILE *f;

	f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f) && (family < 0 || !vendor[0])) {
		sscanf(line, "vendor_id : %63s", vendor);
		sscanf(line, "cpu family : %d", &family);
	}
	fclose(f);
	return !strcmp(vendor, "AuthenticAMD") && family >= 0x17;
}

#endif /* P2P_LAB_H */
