/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Raw uverbs ioctls, for RDMA devices without an rdma-core provider (the
 * lab's test RDMA driver, tests/modules/p2pt_rdma.c). The commands are
 * built the way rdma-core builds them (libibverbs/cmd_ioctl.h): a header,
 * then one struct ib_uverbs_attr per attribute; data of up to 8 bytes
 * inline, larger data by pointer; an fd that the kernel creates comes back
 * in the attribute's data.
 */
#ifndef P2P_UVERBS_RAW_H
#define P2P_UVERBS_RAW_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <rdma/ib_user_ioctl_cmds.h>
#include <rdma/ib_user_ioctl_verbs.h>
#include <rdma/rdma_user_ioctl.h>

/* The ids rdma-core 65's ibv_cmd_export_dmabuf_fd() sends. */
_Static_assert(UVERBS_OBJECT_DMABUF == 18, "object id of upstream");
_Static_assert(UVERBS_METHOD_DMABUF_ALLOC == 0, "method id");
_Static_assert(UVERBS_ATTR_ALLOC_DMABUF_HANDLE == 0, "fd attribute");
_Static_assert(UVERBS_ATTR_ALLOC_DMABUF_PGOFF == 1, "offset attribute");

#define UVR_MAX_ATTRS 10

struct uvr_cmd {
	struct ib_uverbs_ioctl_hdr hdr;
	struct ib_uverbs_attr attrs[UVR_MAX_ATTRS];
};

static inline void uvr_init(struct uvr_cmd *c, uint16_t object, uint16_t method)
{
	memset(c, 0, sizeof(*c));
	c->hdr.object_id = object;
	c->hdr.method_id = method;
}

static inline struct ib_uverbs_attr *uvr_attr(struct uvr_cmd *c, uint16_t id)
{
	struct ib_uverbs_attr *a = &c->attrs[c->hdr.num_attrs++];

	a->attr_id = id;
	return a;
}

static inline void uvr_in_u64(struct uvr_cmd *c, uint16_t id, uint64_t val)
{
	struct ib_uverbs_attr *a = uvr_attr(c, id);

	a->len = sizeof(val);
	a->data = val;
}

static inline void uvr_out_ptr(struct uvr_cmd *c, uint16_t id, void *p, size_t len)
{
	struct ib_uverbs_attr *a = uvr_attr(c, id);

	a->len = len;
	a->data = (uintptr_t)p;
}

/* An fd the kernel creates (UVERBS_ACCESS_NEW): data 0, length 0. */
static inline struct ib_uverbs_attr *uvr_out_fd(struct uvr_cmd *c, uint16_t id)
{
	return uvr_attr(c, id);
}

/* Run the command on uverbs file @fd; 0 or -errno. */
static inline int uvr_ioctl(int fd, struct uvr_cmd *c)
{
	c->hdr.length = sizeof(c->hdr) + c->hdr.num_attrs * sizeof(c->attrs[0]);
	return ioctl(fd, RDMA_VERBS_IOCTL, &c->hdr) ? -errno : 0;
}

/* Open the uverbs device of RDMA device @ibdev; the fd or -errno. */
static inline int uvr_open(const char *ibdev)
{
	char path[300], name[64];
	struct dirent *d;
	int fd = -ENOENT;
	DIR *dir;
	FILE *f;

	dir = opendir("/sys/class/infiniband_verbs");
	if (!dir)
		return -errno;
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, "uverbs", 6))
			continue;
		snprintf(path, sizeof(path), "/sys/class/infiniband_verbs/%s/ibdev",
			 d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(name, sizeof(name), f))
			name[0] = '\0';
		fclose(f);
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, ibdev))
			continue;
		snprintf(path, sizeof(path), "/dev/infiniband/%s", d->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
		break;
	}
	closedir(dir);
	return fd;
}

/* UVERBS_METHOD_GET_CONTEXT with the driver's response in @resp. */
static inline int uvr_get_context(int fd, void *resp, size_t len)
{
	struct uvr_cmd c;

	uvr_init(&c, UVERBS_OBJECT_DEVICE, UVERBS_METHOD_GET_CONTEXT);
	uvr_out_ptr(&c, UVERBS_ATTR_UHW_OUT, resp, len);
	return uvr_ioctl(fd, &c);
}

/*
 * Export the pages at mmap() offset @offset as a dma-buf, exactly as
 * ibv_cmd_export_dmabuf_fd() does; the dma-buf fd or -errno.
 */
static inline int uvr_export_dmabuf(int fd, uint64_t offset)
{
	struct ib_uverbs_attr *h;
	struct uvr_cmd c;
	int err;

	uvr_init(&c, UVERBS_OBJECT_DMABUF, UVERBS_METHOD_DMABUF_ALLOC);
	h = uvr_out_fd(&c, UVERBS_ATTR_ALLOC_DMABUF_HANDLE);
	uvr_in_u64(&c, UVERBS_ATTR_ALLOC_DMABUF_PGOFF, offset);
	err = uvr_ioctl(fd, &c);
	return err ? err : (int)h->data;
}

/* An object handle (UVERBS_ACCESS_READ/DESTROY): data, length 0. */
static inline void uvr_in_obj(struct uvr_cmd *c, uint16_t id, uint32_t handle)
{
	uvr_attr(c, id)->data = handle;
}

/* IB_USER_VERBS_CMD_ALLOC_PD through the write() interface; the handle or -errno. */
static inline int uvr_alloc_pd(int fd)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_alloc_pd cmd;
	} req = {
		.hdr = { .command = IB_USER_VERBS_CMD_ALLOC_PD,
			 .in_words = sizeof(req) / 4,
			 .out_words = sizeof(struct ib_uverbs_alloc_pd_resp) / 4 },
	};
	struct ib_uverbs_alloc_pd_resp resp = {};

	req.cmd.response = (uintptr_t)&resp;
	if (write(fd, &req, sizeof(req)) != sizeof(req))
		return -errno;
	return (int)resp.pd_handle;
}

/* An MR registered on a dma-buf: its handle and keys. */
struct uvr_mr {
	uint32_t handle, lkey, rkey;
};

/*
 * UVERBS_METHOD_REG_DMABUF_MR, as ibv_reg_dmabuf_mr() sends it: bytes
 * [@offset, @offset + @length) of dma-buf @dmabuf at @iova in PD @pd.
 * 0 or -errno.
 */
static inline int uvr_reg_dmabuf_mr(int fd, uint32_t pd, uint64_t offset, uint64_t length,
				    uint64_t iova, int dmabuf, uint32_t access,
				    struct uvr_mr *mr)
{
	struct ib_uverbs_attr *h, *a;
	struct uvr_cmd c;
	int err;

	uvr_init(&c, UVERBS_OBJECT_MR, UVERBS_METHOD_REG_DMABUF_MR);
	h = uvr_attr(&c, UVERBS_ATTR_REG_DMABUF_MR_HANDLE);
	uvr_in_obj(&c, UVERBS_ATTR_REG_DMABUF_MR_PD_HANDLE, pd);
	uvr_in_u64(&c, UVERBS_ATTR_REG_DMABUF_MR_OFFSET, offset);
	uvr_in_u64(&c, UVERBS_ATTR_REG_DMABUF_MR_LENGTH, length);
	uvr_in_u64(&c, UVERBS_ATTR_REG_DMABUF_MR_IOVA, iova);
	a = uvr_attr(&c, UVERBS_ATTR_REG_DMABUF_MR_FD);	/* a u32, inline */
	a->len = sizeof(uint32_t);
	a->data = (uint32_t)dmabuf;
	uvr_in_u64(&c, UVERBS_ATTR_REG_DMABUF_MR_ACCESS_FLAGS, access);
	uvr_out_ptr(&c, UVERBS_ATTR_REG_DMABUF_MR_RESP_LKEY, &mr->lkey, sizeof(mr->lkey));
	uvr_out_ptr(&c, UVERBS_ATTR_REG_DMABUF_MR_RESP_RKEY, &mr->rkey, sizeof(mr->rkey));
	err = uvr_ioctl(fd, &c);
	if (!err)
		mr->handle = (uint32_t)h->data;
	return err;
}

/* UVERBS_METHOD_MR_DESTROY; 0 or -errno. */
static inline int uvr_dereg_mr(int fd, uint32_t handle)
{
	struct uvr_cmd c;

	uvr_init(&c, UVERBS_OBJECT_MR, UVERBS_METHOD_MR_DESTROY);
	uvr_in_obj(&c, UVERBS_ATTR_DESTROY_MR_HANDLE, handle);
	return uvr_ioctl(fd, &c);
}

#endif /* P2P_UVERBS_RAW_H */
