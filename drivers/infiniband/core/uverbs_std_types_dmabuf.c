// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * UVERBS_OBJECT_DMABUF: the pages userspace could mmap() from an RDMA
 * device (a doorbell page, device memory), exported as a dma-buf for
 * another device to reach by peer-to-peer DMA. The fd returned is the
 * dma-buf's own; its exporter is in mmap_dmabuf.c.
 *
 * The object lives as long as the fd, like other fd objects, and is
 * destroyed early with its ucontext (close of the uverbs file, device
 * disassociation): the dma-buf is then revoked for good and the fd stays a
 * valid, empty dma-buf until closed.
 */
#include <rdma/uverbs_std_types.h>
#include <rdma/uverbs_ioctl.h>
#include "core_priv.h"
#include "rdma_core.h"
#include "uverbs.h"

struct uverbs_dmabuf_object {
	struct ib_uobject uobj;
	struct rdma_user_mmap_dmabuf *mdb;
};

/* The dma-buf's file is released: end the object, as its fd is closed. */
static void uverbs_dmabuf_released(void *owner)
{
	uverbs_uobject_fd_released(owner);
}

static int UVERBS_HANDLER(UVERBS_METHOD_DMABUF_ALLOC)(struct uverbs_attr_bundle *attrs)
{
	struct ib_uobject *uobj =
		uverbs_attr_get_uobject(attrs, UVERBS_ATTR_ALLOC_DMABUF_HANDLE);
	struct uverbs_dmabuf_object *obj =
		container_of(uobj, struct uverbs_dmabuf_object, uobj);
	struct ib_device *ibdev = uobj->context->device;
	struct rdma_user_mmap_entry *entry;
	struct rdma_user_mmap_dmabuf *mdb;
	u64 offset;
	int ret;

	ret = uverbs_copy_from(&offset, attrs, UVERBS_ATTR_ALLOC_DMABUF_PGOFF);
	if (ret)
		return ret;

	/* The offset given to mmap(): whole pages, a valid off_t. */
	if (offset_in_page(offset) || offset > (u64)LLONG_MAX)
		return -EINVAL;

	entry = ibdev->ops.pgoff_to_mmap_entry(uobj->context, offset);
	if (!entry)
		return -EINVAL;

	mdb = rdma_user_mmap_dmabuf_export(entry, uverbs_dmabuf_released,
					   uobj);
	if (IS_ERR(mdb)) {
		rdma_user_mmap_entry_put(entry);
		return PTR_ERR(mdb);
	}
	obj->mdb = mdb;

	/* Nothing may fail from here on: the file now owns uobj. */
	uverbs_uobject_fd_set_file(uobj, rdma_user_mmap_dmabuf_file(mdb));
	uverbs_finalize_uobj_create(attrs, UVERBS_ATTR_ALLOC_DMABUF_HANDLE);
	return 0;
}

static void uverbs_dmabuf_destroy_uobj(struct ib_uobject *uobj,
				       enum rdma_remove_reason why)
{
	struct uverbs_dmabuf_object *obj =
		container_of(uobj, struct uverbs_dmabuf_object, uobj);

	rdma_user_mmap_dmabuf_revoke(obj->mdb);
	rdma_user_mmap_dmabuf_put(obj->mdb);
}

DECLARE_UVERBS_NAMED_METHOD(UVERBS_METHOD_DMABUF_ALLOC,
			    UVERBS_ATTR_FD(UVERBS_ATTR_ALLOC_DMABUF_HANDLE,
					   UVERBS_OBJECT_DMABUF,
					   UVERBS_ACCESS_NEW,
					   UA_MANDATORY),
			    UVERBS_ATTR_PTR_IN(UVERBS_ATTR_ALLOC_DMABUF_PGOFF,
					       UVERBS_ATTR_TYPE(u64),
					       UA_MANDATORY));

DECLARE_UVERBS_NAMED_OBJECT(UVERBS_OBJECT_DMABUF,
			    UVERBS_TYPE_ALLOC_FD_FILE(sizeof(struct uverbs_dmabuf_object),
						      uverbs_dmabuf_destroy_uobj),
			    &UVERBS_METHOD(UVERBS_METHOD_DMABUF_ALLOC));

const struct uapi_definition uverbs_def_obj_dmabuf[] = {
	UAPI_DEF_CHAIN_OBJ_TREE_NAMED(UVERBS_OBJECT_DMABUF,
				      UAPI_DEF_OBJ_NEEDS_FN(pgoff_to_mmap_entry),
				      UAPI_DEF_OBJ_NEEDS_FN(mmap_get_pfns)),
	{}
};
