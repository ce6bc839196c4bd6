// SPDX-License-Identifier: GPL-2.0
/*
 * UVERBS_OBJECT_DMABUF: an RDMA driver exports pages of its own BAR as a
 * dma-buf. The lab has no RDMA NIC, so the driver is the test driver
 * p2p_test_rdma (tests/modules/p2pt_rdma.c) on ivshmem2, driven with raw
 * uverbs ioctls built as rdma-core's ibv_cmd_export_dmabuf_fd() builds them.
 *
 * - The export gives a dma-buf of exactly the entry; its errno table.
 * - edu's DMA engine, importing it through the test importer, writes the
 *   "NIC's" doorbell page and memory (the GPU-to-NIC stand-in) and reads
 *   them back: bytes checked in the host file behind ivshmem2's BAR 2.
 *   rxe imports it as a dma-buf MR and an RDMA WRITE lands there.
 * - Each revoke trigger (the driver removes the entry, the ucontext is
 *   closed, the process exits, the driver is unbound) with a fast, a
 *   deferred, a fenced and a pinned importer: one move_notify, nothing
 *   mapped or fenced when the trigger returns, ENODEV afterwards, and no
 *   byte arrives after it.
 * - Races, bounded: map loops against close and unbind, exports against
 *   unbind.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "kselftest_harness.h"
#include "p2pt.h"
#include "p2pt_test.h"
#include "p2pt_rdma.h"
#include "rxe_rc.h"
#include "uverbs_raw.h"

#define PAGE		4096ULL
#define DELAY_MS	300		/* the slow importers' delay */
#define RACE_ROUNDS	8

struct udb_lab {
	struct p2pt_lab lab;
	char rdma[LAB_BDF_LEN];		/* ivshmem2, on p2p_test_rdma */
	int host2;			/* $LAB_IVSHMEM2 */
	int uv;				/* uverbs file with a ucontext */
	struct p2pt_rdma_ucontext_resp resp;
	const char *imp;		/* importer whose DMA reaches ivshmem2 */
	uint64_t bar2, bar2_size;	/* ivshmem2 BAR 2 (bus address) */
};

/* Open the test driver's uverbs device and make a ucontext; 0 or -errno. */
static int udb_open(struct udb_lab *l, int *uv, struct p2pt_rdma_ucontext_resp *resp)
{
	int err;

	*uv = uvr_open(P2PT_RDMA_IBDEV);
	if (*uv < 0)
		return *uv;
	memset(resp, 0, sizeof(*resp));
	err = uvr_get_context(*uv, resp, sizeof(*resp));
	if (err) {
		close(*uv);
		*uv = -1;
	}
	return err;
}

static void udb_lab_setup(struct __test_metadata *_metadata, struct udb_lab *l)
{
	const char *path = getenv("LAB_IVSHMEM2");
	int err;

	l->uv = l->host2 = -1;
	ASSERT_EQ(0, p2pt_lab_setup(&l->lab));
	snprintf(l->rdma, sizeof(l->rdma), "%s", p2pt_orig_bdf("ivshmem2"));
	if (!l->rdma[0] || !path)
		SKIP(return, "no ivshmem2 in this lab (lab/run older than the test)");
	ASSERT_EQ(0, lab_pci_bar(l->rdma, P2PT_RDMA_BAR, &l->bar2, &l->bar2_size));
	ASSERT_EQ(0, lab_pci_bind(l->rdma, P2PT_RDMA_DRIVER));
	l->host2 = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, l->host2) TH_LOG("%s: %s", path, strerror(errno));
	err = udb_open(l, &l->uv, &l->resp);
	ASSERT_EQ(0, err) TH_LOG("uverbs of %s: %s", P2PT_RDMA_IBDEV, strerror(-err));
	ASSERT_EQ(P2PT_RDMA_MEM_PAGES * PAGE, l->resp.memory_len);
	l->imp = l->lab.host_bridge_p2p ? l->lab.edu2 : NULL;
}

static void udb_lab_teardown(struct udb_lab *l)
{
	if (l->rdma[0])		/* a test that stopped early left it slow */
		lab_sysfs_write(P2PT_RDMA_PARAM_DELAY, "0");
	if (l->uv >= 0)
		close(l->uv);
	if (l->host2 >= 0)
		close(l->host2);
	p2pt_lab_restore(&l->lab);
}

static void host2_fill(struct __test_metadata *_metadata, struct udb_lab *l,
		       uint64_t off, size_t len, uint8_t val)
{
	uint8_t buf[P2PT_RDMA_MEM_PAGES * PAGE];

	ASSERT_GE(sizeof(buf), len);
	memset(buf, val, len);
	ASSERT_EQ((ssize_t)len, pwrite(l->host2, buf, len, off));
}

/* Every byte of [@off, @off + @len) of the host file is @val. */
static void host2_expect(struct __test_metadata *_metadata, struct udb_lab *l,
			 uint64_t off, size_t len, uint8_t val, const char *what)
{
	uint8_t buf[P2PT_RDMA_MEM_PAGES * PAGE];
	size_t i;

	ASSERT_GE(sizeof(buf), len);
	ASSERT_EQ((ssize_t)len, pread(l->host2, buf, len, off));
	for (i = 0; i < len && buf[i] == val; i++)
		;
	EXPECT_EQ(len, i) TH_LOG("%s: byte 0x%llx is 0x%02x, not 0x%02x", what,
				 (unsigned long long)(off + i), i < len ? buf[i] : 0, val);
}

FIXTURE(udb) {
	struct udb_lab l;
};

FIXTURE_SETUP(udb)
{
	udb_lab_setup(_metadata, &self->l);
}

FIXTURE_TEARDOWN(udb)
{
	udb_lab_teardown(&self->l);
}

/* Each exportable entry becomes a dma-buf of exactly its pages. */
TEST_F(udb, exports_are_dma_bufs_of_the_entries)
{
	struct udb_lab *l = &self->l;
	struct stat st, st2;
	int db, mem, mem2;
	char v[64];

	db = uvr_export_dmabuf(l->uv, l->resp.doorbell_offset);
	ASSERT_LE(0, db) TH_LOG("doorbell: %s", strerror(-db));
	lab_fdinfo(db, "size", v, sizeof(v));
	EXPECT_STREQ("4096", v);
	/* Owned by ib_uverbs, whose code the dma-buf's release calls. */
	lab_fdinfo(db, "exp_name", v, sizeof(v));
	EXPECT_STREQ("ib_uverbs", v);
	EXPECT_EQ(O_RDWR, fcntl(db, F_GETFL) & O_ACCMODE);

	mem = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
	ASSERT_LE(0, mem) TH_LOG("memory: %s", strerror(-mem));
	lab_fdinfo(mem, "size", v, sizeof(v));
	EXPECT_EQ(P2PT_RDMA_MEM_PAGES * PAGE, strtoull(v, NULL, 0));

	/* The same entry twice: two dma-bufs, two files. */
	mem2 = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
	ASSERT_LE(0, mem2);
	ASSERT_EQ(0, fstat(mem, &st));
	ASSERT_EQ(0, fstat(mem2, &st2));
	EXPECT_NE(st.st_ino, st2.st_ino) TH_LOG("one dma-buf behind both fds");
	EXPECT_TRUE(fcntl(mem2, F_GETFD) & FD_CLOEXEC);

	/* No CPU mapping of the dma-buf itself. */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ, MAP_SHARED, db, 0));
	EXPECT_EQ(EINVAL, errno);

	close(mem2);
	close(mem);
	close(db);
}

/* Bad requests: the errno of docs/uverbs-dmabuf.md, and nothing made. */
TEST_F(udb, export_errno_table)
{
	struct udb_lab *l = &self->l;
	struct ib_uverbs_attr *a;
	struct uvr_cmd c;
	int fds, bare;

	fds = lab_fd_state();
	EXPECT_EQ(-EINVAL, uvr_export_dmabuf(l->uv, l->resp.doorbell_offset + 1));
	EXPECT_EQ(-EINVAL, uvr_export_dmabuf(l->uv, l->resp.memory_offset + PAGE))
		TH_LOG("an offset inside an entry, not its start");
	EXPECT_EQ(-EINVAL, uvr_export_dmabuf(l->uv, 0x7ff0000ULL * PAGE))
		TH_LOG("no entry there");
	EXPECT_EQ(-EINVAL, uvr_export_dmabuf(l->uv, (1ULL << 32) * PAGE))
		TH_LOG("page offset beyond 32 bits");
	EXPECT_EQ(-EINVAL, uvr_export_dmabuf(l->uv, ~0ULL & ~(PAGE - 1)));
	EXPECT_EQ(-EOPNOTSUPP, uvr_export_dmabuf(l->uv, l->resp.private_offset))
		TH_LOG("an entry the driver does not export");

	/* Malformed commands. */
	uvr_init(&c, UVERBS_OBJECT_DMABUF, UVERBS_METHOD_DMABUF_ALLOC);
	uvr_out_fd(&c, UVERBS_ATTR_ALLOC_DMABUF_HANDLE);
	EXPECT_EQ(-EINVAL, uvr_ioctl(l->uv, &c)) TH_LOG("no offset");
	uvr_init(&c, UVERBS_OBJECT_DMABUF, UVERBS_METHOD_DMABUF_ALLOC);
	uvr_in_u64(&c, UVERBS_ATTR_ALLOC_DMABUF_PGOFF, l->resp.doorbell_offset);
	EXPECT_EQ(-EINVAL, uvr_ioctl(l->uv, &c)) TH_LOG("no fd attribute");
	uvr_init(&c, UVERBS_OBJECT_DMABUF, UVERBS_METHOD_DMABUF_ALLOC);
	uvr_out_fd(&c, UVERBS_ATTR_ALLOC_DMABUF_HANDLE);
	a = uvr_attr(&c, UVERBS_ATTR_ALLOC_DMABUF_PGOFF);
	a->len = 4;
	a->data = l->resp.doorbell_offset;
	EXPECT_EQ(-EINVAL, uvr_ioctl(l->uv, &c)) TH_LOG("a 4-byte offset");
	uvr_init(&c, UVERBS_OBJECT_DMABUF, UVERBS_METHOD_DMABUF_ALLOC + 1);
	EXPECT_EQ(-EPROTONOSUPPORT, uvr_ioctl(l->uv, &c)) TH_LOG("no method 1");

	/* A uverbs file without a ucontext. */
	bare = uvr_open(P2PT_RDMA_IBDEV);
	ASSERT_LE(0, bare);
	EXPECT_EQ(-EINVAL, uvr_export_dmabuf(bare, l->resp.doorbell_offset));
	close(bare);

	/* An entry the driver removed. */
	ASSERT_EQ(0, lab_sysfs_write(P2PT_RDMA_REMOVE, "memory"));
	EXPECT_EQ(-EINVAL, uvr_export_dmabuf(l->uv, l->resp.memory_offset));
	EXPECT_EQ(-EINVAL, lab_sysfs_write(P2PT_RDMA_REMOVE, "nonsense"));

	EXPECT_EQ(fds, lab_fd_state()) TH_LOG("a failed export left an fd");
}

/* A device without the two ops (rxe) has no DMABUF object. */
TEST_F(udb, no_object_without_the_driver_ops)
{
	struct uvr_cmd c;
	int rxe;

	rxe = uvr_open("rxe0");
	if (rxe == -ENOENT &&
	    !system("ip link set eth0 up && rdma link add rxe0 type rxe netdev eth0"))
		rxe = uvr_open("rxe0");
	ASSERT_LE(0, rxe) TH_LOG("rxe0: %s", strerror(-rxe));
	/* rxe's own driver id: any other is refused before the lookup. */
	uvr_init(&c, UVERBS_OBJECT_DMABUF, UVERBS_METHOD_DMABUF_ALLOC);
	uvr_out_fd(&c, UVERBS_ATTR_ALLOC_DMABUF_HANDLE);
	uvr_in_u64(&c, UVERBS_ATTR_ALLOC_DMABUF_PGOFF, 0);
	c.hdr.driver_id = RDMA_DRIVER_RXE;
	EXPECT_EQ(-EPROTONOSUPPORT, uvr_ioctl(rxe, &c));
	close(rxe);
}

/* Importers that could not be told of a revoke are refused. */
TEST_F(udb, unrevocable_importers_are_refused)
{
	struct udb_lab *l = &self->l;
	int fd;

	fd = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(l->lab.dev, l->lab.edu2, fd,
					   P2PT_IMPORT_DYNAMIC, P2PT_IMPORT_F_NO_P2P))
		TH_LOG("without peer2peer");
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(l->lab.dev, l->lab.edu2, fd,
					   P2PT_IMPORT_PINNED, 0));
	EXPECT_EQ(-EOPNOTSUPP, p2pt_import(l->lab.dev, l->lab.edu2, fd,
					   P2PT_IMPORT_UNNOTIFIED, 0));
	close(fd);
}

/*
 * Import dma-buf @fd of the pages at BAR offset @offset into the DMA
 * importer and map it: the handle.
 */
static int udb_import(struct __test_metadata *_metadata, struct udb_lab *l, int dev,
		      int fd, uint64_t offset, unsigned int mode, unsigned int flags,
		      struct p2pt_map *m)
{
	int h;

	h = p2pt_import_slow(dev, l->imp, fd, mode, flags, DELAY_MS);
	EXPECT_LT(0, h) TH_LOG("import: %s", strerror(-h));
	if (h <= 0)
		return h;
	EXPECT_EQ(0, p2pt_map(dev, h, P2PT_DIR_BIDIRECTIONAL, m));
	EXPECT_EQ(1, m->nr_entries);
	/* Without an IOMMU the importer gets the BAR's bus address. */
	if (!l->lab.iommu)
		EXPECT_EQ(l->bar2 + offset, m->entries[0].dma_addr);
	return h;
}

/*
 * The GPU-to-NIC stand-in: edu's DMA engine writes a doorbell value into
 * the doorbell page and a pattern into the device memory, and reads the
 * memory back, through dma-bufs exported by the RDMA driver.
 */
TEST_F(udb, dma_reaches_doorbell_and_memory)
{
	struct udb_lab *l = &self->l;
	uint8_t buf[2 * PAGE], back[2 * PAGE];
	uint64_t bell = 0x1122334455667788ULL, got = 0;
	struct p2pt_map m;
	int db, mem, hd, hm;

	if (!l->imp)
		SKIP(return, "no P2P route to ivshmem2 here (host bridge not allow-listed)");
	host2_fill(_metadata, l, P2PT_RDMA_DOORBELL_OFF, PAGE, 0);
	host2_fill(_metadata, l, P2PT_RDMA_MEM_OFF, P2PT_RDMA_MEM_PAGES * PAGE, 0x5a);

	db = uvr_export_dmabuf(l->uv, l->resp.doorbell_offset);
	ASSERT_LE(0, db);
	hd = udb_import(_metadata, l, l->lab.dev, db, P2PT_RDMA_DOORBELL_OFF,
			P2PT_IMPORT_DYNAMIC, 0, &m);
	ASSERT_LT(0, hd);
	EXPECT_EQ(PAGE, m.entries[0].len);
	ASSERT_EQ(0, p2pt_dma(l->lab.dev, hd, P2PT_DMA_TO_PEER, m.entries[0].dma_addr,
			      &bell, sizeof(bell)));
	ASSERT_EQ((ssize_t)sizeof(got), pread(l->host2, &got, sizeof(got),
					      P2PT_RDMA_DOORBELL_OFF));
	EXPECT_EQ(bell, got) TH_LOG("the doorbell write did not land");

	mem = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
	ASSERT_LE(0, mem);
	hm = udb_import(_metadata, l, l->lab.dev, mem, P2PT_RDMA_MEM_OFF,
			P2PT_IMPORT_DYNAMIC, 0, &m);
	ASSERT_LT(0, hm);
	/* Two pages in the middle of the memory, guards around them. */
	lab_pattern(buf, sizeof(buf), 0, l->lab.seed);
	ASSERT_EQ(0, p2pt_dma(l->lab.dev, hm, P2PT_DMA_TO_PEER,
			      m.entries[0].dma_addr + 4 * PAGE, buf, PAGE));
	ASSERT_EQ(0, p2pt_dma(l->lab.dev, hm, P2PT_DMA_TO_PEER,
			      m.entries[0].dma_addr + 5 * PAGE, buf + PAGE, PAGE));
	ASSERT_EQ((ssize_t)sizeof(back), pread(l->host2, back, sizeof(back),
					       P2PT_RDMA_MEM_OFF + 4 * PAGE));
	EXPECT_EQ(0, memcmp(buf, back, sizeof(buf))) TH_LOG("DMA into the memory");
	host2_expect(_metadata, l, P2PT_RDMA_MEM_OFF, 4 * PAGE, 0x5a, "guard before");
	host2_expect(_metadata, l, P2PT_RDMA_MEM_OFF + 6 * PAGE, 10 * PAGE, 0x5a,
		     "guard after");

	/* And back: the host writes, edu reads through the dma-buf. */
	lab_pattern(buf, PAGE, 1, l->lab.seed);
	ASSERT_EQ((ssize_t)PAGE, pwrite(l->host2, buf, PAGE, P2PT_RDMA_MEM_OFF + 15 * PAGE));
	ASSERT_EQ(0, p2pt_dma(l->lab.dev, hm, P2PT_DMA_FROM_PEER,
			      m.entries[0].dma_addr + 15 * PAGE, back, PAGE));
	EXPECT_EQ(0, memcmp(buf, back, PAGE)) TH_LOG("DMA from the memory");

	EXPECT_EQ(0, p2pt_release(l->lab.dev, hm));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, hd));
	close(mem);
	close(db);
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
}

/*
 * A CPU importer maps each entry as the driver's own mmap does: the
 * doorbell uncached, the device memory write-combining (mmap_get_mem_type,
 * as mlx5's MEMIC and WC UAR pages). Bytes written through the mapping
 * land in the BAR. A dma_buf_vmap() without attachment is refused: nothing
 * could revoke it.
 */
TEST_F(udb, cpu_mapping_has_the_drivers_memory_type)
{
	struct udb_lab *l = &self->l;
	uint8_t buf[256], back[256];
	struct p2pt_status st;
	int db, mem, hd, hm;

	host2_fill(_metadata, l, P2PT_RDMA_MEM_OFF, P2PT_RDMA_MEM_PAGES * PAGE, 0x5a);
	db = uvr_export_dmabuf(l->uv, l->resp.doorbell_offset);
	ASSERT_LE(0, db);
	mem = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
	ASSERT_LE(0, mem);
	EXPECT_EQ(-EOPNOTSUPP, p2pt_vmap_unattached(l->lab.dev, mem));

	hd = p2pt_import(l->lab.dev, l->lab.edu2, db, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, hd);
	hm = p2pt_import(l->lab.dev, l->lab.edu2, mem, P2PT_IMPORT_DYNAMIC, 0);
	ASSERT_LT(0, hm);
	ASSERT_EQ(0, p2pt_vmap(l->lab.dev, hd));
	ASSERT_EQ(0, p2pt_vmap(l->lab.dev, hm));
	ASSERT_EQ(0, p2pt_status(l->lab.dev, hd, &st));
	EXPECT_EQ(P2PT_STATUS_VMAPPED | P2PT_STATUS_VMAP_IOMEM, st.flags)
		TH_LOG("doorbell: flags 0x%x, want uncached I/O memory", st.flags);
	ASSERT_EQ(0, p2pt_status(l->lab.dev, hm, &st));
	EXPECT_EQ(P2PT_STATUS_VMAPPED | P2PT_STATUS_VMAP_IOMEM | P2PT_STATUS_VMAP_WC,
		  st.flags) TH_LOG("memory: flags 0x%x, want write-combining", st.flags);

	lab_pattern(buf, sizeof(buf), 7, l->lab.seed);
	ASSERT_EQ(0, p2pt_cpu(l->lab.dev, hm, P2PT_DMA_TO_PEER, 3 * PAGE + 64, buf,
			      sizeof(buf)));
	ASSERT_EQ((ssize_t)sizeof(back), pread(l->host2, back, sizeof(back),
					       P2PT_RDMA_MEM_OFF + 3 * PAGE + 64));
	EXPECT_EQ(0, memcmp(buf, back, sizeof(buf))) TH_LOG("CPU write into the memory");
	host2_expect(_metadata, l, P2PT_RDMA_MEM_OFF, 3 * PAGE + 64, 0x5a, "guard before");

	EXPECT_EQ(0, p2pt_release(l->lab.dev, hm));
	EXPECT_EQ(0, p2pt_release(l->lab.dev, hd));
	close(mem);
	close(db);
}

/* --- revoke triggers against fast and slow importers -------------------- */

enum trigger { REMOVE_ENTRY, CLOSE_UCONTEXT, PROCESS_EXIT, UNBIND };

/* Revoke the memory's dma-bufs through @trigger (not PROCESS_EXIT); 0 or -errno. */
static int fire(struct udb_lab *l, enum trigger trigger)
{
	switch (trigger) {
	case REMOVE_ENTRY:
		return lab_sysfs_write(P2PT_RDMA_REMOVE, "memory");
	case CLOSE_UCONTEXT:
		close(l->uv);
		l->uv = -1;
		return 0;
	case UNBIND:
		return lab_pci_bind(l->rdma, "");
	default:
		return -EINVAL;
	}
}

/*
 * rxe imports the memory (a dma-buf MR; rxe maps the physical range of its
 * attachment, write-combining): an RDMA WRITE lands in the "NIC's" BAR.
 * When @trigger revokes the dma-buf, the MR is revoked with it: the next
 * WRITE fails with a remote access error, nothing lands, and the MR still
 * deregisters.
 */
static void rxe_revoked_by(struct __test_metadata *_metadata, struct udb_lab *l,
			   enum trigger trigger)
{
	uint8_t *src, back[PAGE];
	struct ibv_mr *plain, *mr;
	struct rc rc;
	int fd, err;

	err = rc_open(&rc);
	ASSERT_EQ(0, err) TH_LOG("rxe0 loopback RC pair: %s", strerror(-err));
	src = aligned_alloc(PAGE, PAGE);
	ASSERT_NE(NULL, src);
	lab_pattern(src, PAGE, 2, l->lab.seed);
	plain = ibv_reg_mr(rc.pd, src, PAGE, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_NE(NULL, plain);
	host2_fill(_metadata, l, P2PT_RDMA_MEM_OFF, P2PT_RDMA_MEM_PAGES * PAGE, 0x5a);

	fd = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
	ASSERT_LE(0, fd);
	mr = ibv_reg_dmabuf_mr(rc.pd, 0, P2PT_RDMA_MEM_PAGES * PAGE, 0x10000000, fd,
			       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	ASSERT_NE(NULL, mr) TH_LOG("ibv_reg_dmabuf_mr: %s", strerror(errno));

	EXPECT_EQ(IBV_WC_SUCCESS, rc_post(&rc, IBV_WR_RDMA_WRITE, plain, src,
					  0x10000000 + 3 * PAGE, mr->rkey, PAGE));
	ASSERT_EQ((ssize_t)PAGE, pread(l->host2, back, PAGE, P2PT_RDMA_MEM_OFF + 3 * PAGE));
	EXPECT_EQ(0, memcmp(src, back, PAGE)) TH_LOG("the WRITE did not land");
	host2_expect(_metadata, l, P2PT_RDMA_MEM_OFF, 3 * PAGE, 0x5a, "guard before");

	ASSERT_EQ(0, fire(l, trigger)) TH_LOG("trigger %d", trigger);
	ASSERT_EQ(0, lab_pci_decode_on(l->rdma));
	host2_fill(_metadata, l, P2PT_RDMA_MEM_OFF, P2PT_RDMA_MEM_PAGES * PAGE, 0xa5);
	EXPECT_EQ(IBV_WC_REM_ACCESS_ERR, rc_post(&rc, IBV_WR_RDMA_WRITE, plain, src,
						 0x10000000, mr->rkey, PAGE));
	host2_expect(_metadata, l, P2PT_RDMA_MEM_OFF, P2PT_RDMA_MEM_PAGES * PAGE, 0xa5,
		     "after the revoke");

	EXPECT_EQ(0, ibv_dereg_mr(mr));
	EXPECT_EQ(0, ibv_dereg_mr(plain));
	close(fd);
	free(src);
	rc_close(&rc);
}

TEST_F_TIMEOUT(udb, rxe_revoked_on_entry_removal, 120)
{
	rxe_revoked_by(_metadata, &self->l, REMOVE_ENTRY);
}

TEST_F_TIMEOUT(udb, rxe_revoked_on_ucontext_close, 120)
{
	rxe_revoked_by(_metadata, &self->l, CLOSE_UCONTEXT);
}

TEST_F_TIMEOUT(udb, rxe_revoked_on_driver_unbind, 120)
{
	rxe_revoked_by(_metadata, &self->l, UNBIND);
}

FIXTURE(revoke) {
	struct udb_lab l;
};

FIXTURE_VARIANT(revoke) {
	unsigned int mode;		/* P2PT_IMPORT_* */
	unsigned int flags;		/* P2PT_IMPORT_F_* */
};

FIXTURE_VARIANT_ADD(revoke, dynamic) {
	.mode = P2PT_IMPORT_DYNAMIC,
};

/* Gives the mapping back late, after one last DMA write into it. */
FIXTURE_VARIANT_ADD(revoke, deferred) {
	.mode = P2PT_IMPORT_DYNAMIC,
	.flags = P2PT_IMPORT_F_DEFER | P2PT_IMPORT_F_LATE_WRITE,
};

FIXTURE_VARIANT_ADD(revoke, fenced) {
	.mode = P2PT_IMPORT_DYNAMIC,
	.flags = P2PT_IMPORT_F_FENCE,
};

FIXTURE_VARIANT_ADD(revoke, pinned) {
	.mode = P2PT_IMPORT_PINNED_REVOCABLE,
};

FIXTURE_SETUP(revoke)
{
	udb_lab_setup(_metadata, &self->l);
	if (!self->l.imp)
		SKIP(return, "no P2P route to ivshmem2 here (host bridge not allow-listed)");
}

FIXTURE_TEARDOWN(revoke)
{
	udb_lab_teardown(&self->l);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * In a child process: its own ucontext, an export of the memory, imported
 * and mapped through the shared test-module file, then exit without
 * closing anything. The handle, or -errno.
 */
static int import_and_exit(struct __test_metadata *_metadata, struct udb_lab *l,
			   const FIXTURE_VARIANT(revoke) *variant)
{
	int pipefd[2], status, h = -EIO;
	pid_t pid;

	if (pipe(pipefd))
		return -errno;
	pid = fork();
	if (pid == 0) {
		struct p2pt_rdma_ucontext_resp resp;
		struct p2pt_map m;
		int uv, fd;

		h = udb_open(l, &uv, &resp);
		fd = h ? h : uvr_export_dmabuf(uv, resp.memory_offset);
		h = fd < 0 ? fd : p2pt_import_slow(l->lab.dev, l->imp, fd, variant->mode,
						   variant->flags, DELAY_MS);
		if (h > 0) {
			int err = p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m);

			h = err ? err : h;
		}
		if (write(pipefd[1], &h, sizeof(h)) != sizeof(h))
			_exit(2);
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &h, sizeof(h)) != sizeof(h))
		h = -EIO;
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		h = -ECHILD;
	return h;
}

/*
 * Revoke through @trigger a dma-buf of the memory that an importer of the
 * variant has mapped: when the trigger returns, the importer was told once
 * and holds nothing, it cannot map again, and nothing it sends lands.
 */
static void revoke_by(struct __test_metadata *_metadata, struct udb_lab *l,
		      const FIXTURE_VARIANT(revoke) *variant, enum trigger trigger)
{
	bool slow = variant->flags & (P2PT_IMPORT_F_DEFER | P2PT_IMPORT_F_FENCE);
	struct p2pt_status st;
	struct p2pt_map m;
	int fd = -1, h;
	double t;

	host2_fill(_metadata, l, P2PT_RDMA_MEM_OFF, P2PT_RDMA_MEM_PAGES * PAGE, 0);
	if (trigger == PROCESS_EXIT) {
		t = now();
		h = import_and_exit(_metadata, l, variant);
		t = now() - t;
		ASSERT_LT(0, h) TH_LOG("child: %s", strerror(-h));
	} else {
		fd = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
		ASSERT_LE(0, fd);
		h = udb_import(_metadata, l, l->lab.dev, fd, P2PT_RDMA_MEM_OFF,
			       variant->mode, variant->flags, &m);
		ASSERT_LT(0, h);
		ASSERT_EQ(0, p2pt_status(l->lab.dev, h, &st));
		EXPECT_TRUE(st.flags & P2PT_STATUS_MAPPED);

		t = now();
		ASSERT_EQ(0, fire(l, trigger)) TH_LOG("trigger %d", trigger);
		t = now() - t;
	}
	if (slow)
		EXPECT_LE(DELAY_MS / 1000.0 - 0.02, t)
			TH_LOG("returned after %.3f s, before the importer's %u ms", t,
			       DELAY_MS);

	/* Told once, nothing held, nothing pending. */
	ASSERT_EQ(0, p2pt_status(l->lab.dev, h, &st));
	EXPECT_EQ(0, st.flags) TH_LOG("status flags after the revoke");
	EXPECT_EQ(1, st.move_notify_count);
	/* The slow importer's last write landed before the trigger returned. */
	if (variant->flags & P2PT_IMPORT_F_LATE_WRITE)
		host2_expect(_metadata, l, P2PT_RDMA_MEM_OFF, P2PT_LATE_LEN, P2PT_LATE_BYTE,
			     "last DMA write");

	/*
	 * No way back, and the fd is still a dma-buf of the same size, which
	 * a new importer finds revoked (not EBADF or EINVAL: not a dma-buf);
	 * nothing lands later.
	 */
	EXPECT_EQ(-ENODEV, p2pt_map(l->lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m));
	if (fd >= 0) {
		char v[64];

		lab_fdinfo(fd, "size", v, sizeof(v));
		EXPECT_EQ(P2PT_RDMA_MEM_PAGES * PAGE, strtoull(v, NULL, 0));
		EXPECT_EQ(-ENODEV, p2pt_import(l->lab.dev, l->lab.edu2, fd,
					       P2PT_IMPORT_DYNAMIC, 0));
	}
	/* ivshmem2 decodes, whatever the trigger did, so a late write would land. */
	ASSERT_EQ(0, lab_pci_decode_on(l->rdma));
	host2_fill(_metadata, l, P2PT_RDMA_MEM_OFF, P2PT_RDMA_MEM_PAGES * PAGE, 0xa5);
	usleep(DELAY_MS * 1500);
	host2_expect(_metadata, l, P2PT_RDMA_MEM_OFF, P2PT_RDMA_MEM_PAGES * PAGE, 0xa5,
		     "guard after the revoke");

	/* The source of the revoke is gone for new exports too. */
	switch (trigger) {
	case REMOVE_ENTRY:
		EXPECT_EQ(-EINVAL, uvr_export_dmabuf(l->uv, l->resp.memory_offset));
		break;
	case UNBIND:
		EXPECT_EQ(-EIO, uvr_export_dmabuf(l->uv, l->resp.doorbell_offset))
			TH_LOG("the ucontext of an unbound driver");
		break;
	default:
		break;
	}

	EXPECT_EQ(0, p2pt_release(l->lab.dev, h));
	if (fd >= 0)
		close(fd);
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
}

TEST_F_TIMEOUT(revoke, on_entry_removal, 120)
{
	revoke_by(_metadata, &self->l, variant, REMOVE_ENTRY);
}

TEST_F_TIMEOUT(revoke, on_ucontext_close, 120)
{
	revoke_by(_metadata, &self->l, variant, CLOSE_UCONTEXT);
}

TEST_F_TIMEOUT(revoke, on_process_exit, 120)
{
	revoke_by(_metadata, &self->l, variant, PROCESS_EXIT);
}

TEST_F_TIMEOUT(revoke, on_driver_unbind, 120)
{
	revoke_by(_metadata, &self->l, variant, UNBIND);
}

/* --- races, bounded ------------------------------------------------------ */

struct map_loop {
	int dev;
	unsigned int handle;
	volatile bool stop;
	volatile unsigned int maps, refused, other;
};

static void *map_loop(void *arg)
{
	struct map_loop *ml = arg;
	struct p2pt_map m;
	int err;

	while (!ml->stop) {
		err = p2pt_map(ml->dev, ml->handle, P2PT_DIR_BIDIRECTIONAL, &m);
		if (!err) {
			ml->maps++;
			p2pt_unmap(ml->dev, ml->handle);
		} else if (err == -ENODEV) {
			ml->refused++;
		} else {
			ml->other++;
		}
	}
	return NULL;
}

/*
 * Two dma-bufs of one entry: the driver's removal of the entry revokes
 * both, each importer told once and holding nothing afterwards.
 */
TEST_F(udb, both_dmabufs_of_an_entry_are_revoked)
{
	struct udb_lab *l = &self->l;
	struct p2pt_status st;
	int fd[2], h[2], i;

	for (i = 0; i < 2; i++) {
		fd[i] = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
		ASSERT_LE(0, fd[i]);
		h[i] = p2pt_import(l->lab.dev, l->lab.edu2, fd[i], P2PT_IMPORT_DYNAMIC, 0);
		ASSERT_LT(0, h[i]);
		ASSERT_EQ(0, p2pt_vmap(l->lab.dev, h[i]));
	}
	ASSERT_EQ(0, lab_sysfs_write(P2PT_RDMA_REMOVE, "memory"));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, p2pt_status(l->lab.dev, h[i], &st));
		EXPECT_EQ(0, st.flags) TH_LOG("dma-buf %d: still mapped", i);
		EXPECT_EQ(1, st.move_notify_count) TH_LOG("dma-buf %d", i);
		EXPECT_EQ(-ENODEV, p2pt_vmap(l->lab.dev, h[i]));
		EXPECT_EQ(0, p2pt_release(l->lab.dev, h[i]));
		close(fd[i]);
	}
}

#define EXPORT_MAX	512		/* below the default RLIMIT_NOFILE */

struct exporter_loop {
	int uv;
	uint64_t offset;
	volatile bool stop;
	int fds[EXPORT_MAX];
	int nr;				/* dma-bufs made */
	int refused;			/* the entry was gone: EINVAL, or
					 * ENODEV if it went during the call */
	int other;			/* any other result */
};

static void *exporter_loop(void *arg)
{
	struct exporter_loop *e = arg;
	int fd;

	while (!e->stop && e->nr < EXPORT_MAX) {
		fd = uvr_export_dmabuf(e->uv, e->offset);
		if (fd >= 0)
			e->fds[e->nr++] = fd;
		else if (fd == -EINVAL || fd == -ENODEV)
			e->refused++;
		else
			e->other++;
	}
	return NULL;
}

/*
 * Exports against the driver removing the entry: each export either makes
 * a dma-buf, which the removal revokes (an importer then gets ENODEV), or
 * fails, with EINVAL once the entry is gone or ENODEV if it went during
 * the call; none escapes the revoke.
 */
TEST_F_TIMEOUT(udb, exports_race_entry_removal, 300)
{
	struct udb_lab *l = &self->l;
	struct exporter_loop *e;
	pthread_t thr;
	int i, j, made = 0, refused = 0;

	e = calloc(1, sizeof(*e));
	ASSERT_NE(NULL, e);
	srand(l->lab.seed);
	for (i = 0; i < RACE_ROUNDS; i++) {
		if (l->uv < 0)
			ASSERT_EQ(0, udb_open(l, &l->uv, &l->resp));
		memset(e, 0, sizeof(*e));
		e->uv = l->uv;
		e->offset = l->resp.memory_offset;
		ASSERT_EQ(0, pthread_create(&thr, NULL, exporter_loop, e));
		usleep(1000 * (rand() % 50));
		ASSERT_EQ(0, lab_sysfs_write(P2PT_RDMA_REMOVE, "memory"));
		usleep(10000);
		e->stop = true;
		pthread_join(thr, NULL);
		EXPECT_EQ(0, e->other) TH_LOG("round %d: exports failing otherwise", i);
		for (j = 0; j < e->nr; j++) {
			EXPECT_EQ(-ENODEV, p2pt_import(l->lab.dev, l->lab.edu2, e->fds[j],
						       P2PT_IMPORT_DYNAMIC, 0))
				TH_LOG("round %d: dma-buf %d of %d not revoked", i, j, e->nr);
			close(e->fds[j]);
		}
		made += e->nr;
		refused += e->refused;
		close(l->uv);
		l->uv = -1;
	}
	free(e);
	TH_LOG("%d dma-bufs made and revoked, %d exports refused", made, refused);
	EXPECT_LT(0, refused) TH_LOG("no export ever met the removed entry");
}

struct slow_export {
	int uv;
	uint64_t offset;
	int ret;
};

static void *slow_export(void *arg)
{
	struct slow_export *x = arg;

	x->ret = uvr_export_dmabuf(x->uv, x->offset);
	return NULL;
}

/*
 * The entry removed while an export is inside the driver (which sleeps in
 * mmap_get_pfns): the export has made its dma-buf but must not hand it
 * out, since the removal did not see it: ENODEV, and no fd left behind.
 */
TEST_F_TIMEOUT(udb, export_meets_removal_midway, 60)
{
	struct udb_lab *l = &self->l;
	struct slow_export x = { .uv = l->uv, .offset = l->resp.memory_offset };
	pthread_t thr;
	int fds;

	fds = lab_fd_state();
	ASSERT_EQ(0, lab_sysfs_write(P2PT_RDMA_PARAM_DELAY, "500"));
	ASSERT_EQ(0, pthread_create(&thr, NULL, slow_export, &x));
	usleep(150 * 1000);
	EXPECT_EQ(0, lab_sysfs_write(P2PT_RDMA_REMOVE, "memory"));
	pthread_join(thr, NULL);
	EXPECT_EQ(0, lab_sysfs_write(P2PT_RDMA_PARAM_DELAY, "0"));
	EXPECT_EQ(-ENODEV, x.ret) TH_LOG("an export that met the removal: %s",
					 strerror(x.ret < 0 ? -x.ret : 0));
	if (x.ret >= 0)
		close(x.ret);
	EXPECT_EQ(fds, lab_fd_state()) TH_LOG("the refused export left an fd");
	/* And afterwards the entry is simply gone. */
	EXPECT_EQ(-EINVAL, uvr_export_dmabuf(l->uv, l->resp.memory_offset));
}

#define CLOSE_ROUNDS	200

struct closer {
	pthread_barrier_t *go;
	int fd;
};

static void *close_at_go(void *arg)
{
	struct closer *c = arg;

	pthread_barrier_wait(c->go);
	close(c->fd);
	return NULL;
}

/*
 * The last close of a dma-buf against the close of its uverbs file: the
 * dma-buf's release lets go of the mmap entry while the file's close
 * destroys the ucontext the entry's last put touches. The release must
 * not put the entry outside the uverbs file's locks (KASAN, or the WARN on
 * a ucontext freed with a non-empty mmap_xa, would show it). Either
 * order leaves nothing behind: a new ucontext exports again.
 */
TEST_F_TIMEOUT(udb, dmabuf_close_races_ucontext_close, 300)
{
	struct udb_lab *l = &self->l;
	pthread_barrier_t go;
	struct closer c[2];
	pthread_t thr[2];
	int i, j, fds;

	ASSERT_EQ(0, pthread_barrier_init(&go, NULL, 3));
	close(l->uv);
	l->uv = -1;
	fds = lab_fd_state();
	for (i = 0; i < CLOSE_ROUNDS; i++) {
		ASSERT_EQ(0, udb_open(l, &l->uv, &l->resp));
		c[0].fd = uvr_export_dmabuf(l->uv, i & 1 ? l->resp.memory_offset :
							    l->resp.doorbell_offset);
		ASSERT_LE(0, c[0].fd) TH_LOG("round %d: %s", i, strerror(-c[0].fd));
		c[1].fd = l->uv;
		l->uv = -1;
		for (j = 0; j < 2; j++) {
			c[j].go = &go;
			ASSERT_EQ(0, pthread_create(&thr[j], NULL, close_at_go, &c[j]));
		}
		pthread_barrier_wait(&go);
		for (j = 0; j < 2; j++)
			pthread_join(thr[j], NULL);
	}
	pthread_barrier_destroy(&go);
	EXPECT_EQ(fds, lab_fd_state());
	ASSERT_EQ(0, udb_open(l, &l->uv, &l->resp));
	c[0].fd = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
	EXPECT_LE(0, c[0].fd);
	close(c[0].fd);
}

/*
 * Map loops against the ucontext's close and the driver's unbind: every
 * map succeeds or fails with ENODEV, and after the revoke nothing is
 * mapped and every map fails.
 */
TEST_F_TIMEOUT(udb, map_loops_race_close_and_unbind, 300)
{
	struct udb_lab *l = &self->l;
	struct p2pt_status st;
	struct map_loop ml;
	struct p2pt_map m;
	pthread_t thr;
	int i, fd;

	if (!l->imp)
		SKIP(return, "no P2P route to ivshmem2 here (host bridge not allow-listed)");
	srand(l->lab.seed);
	for (i = 0; i < RACE_ROUNDS; i++) {
		bool unbind = i % 4 == 3;

		if (l->uv < 0) {
			ASSERT_EQ(0, lab_pci_bind(l->rdma, P2PT_RDMA_DRIVER));
			ASSERT_EQ(0, udb_open(l, &l->uv, &l->resp));
		}
		fd = uvr_export_dmabuf(l->uv, l->resp.memory_offset);
		ASSERT_LE(0, fd);
		memset(&ml, 0, sizeof(ml));
		ml.dev = l->lab.dev;
		ml.handle = p2pt_import(l->lab.dev, l->imp, fd, P2PT_IMPORT_DYNAMIC, 0);
		ASSERT_LT(0, (int)ml.handle);
		ASSERT_EQ(0, pthread_create(&thr, NULL, map_loop, &ml));
		usleep(1000 * (rand() % 50));
		if (unbind)
			ASSERT_EQ(0, lab_pci_bind(l->rdma, ""));
		close(l->uv);
		l->uv = -1;
		ASSERT_EQ(0, p2pt_status(l->lab.dev, ml.handle, &st));
		EXPECT_FALSE(st.flags & P2PT_STATUS_MAPPED);
		EXPECT_EQ(-ENODEV, p2pt_map(l->lab.dev, ml.handle, P2PT_DIR_BIDIRECTIONAL, &m));
		ml.stop = true;
		pthread_join(thr, NULL);
		EXPECT_EQ(0, ml.other) TH_LOG("round %d: maps failing otherwise than ENODEV", i);
		EXPECT_EQ(0, p2pt_release(l->lab.dev, ml.handle));
		close(fd);
	}
	p2pt_check_no_resource_maps(_metadata, &l->lab, l->imp);
}

struct export_loop {
	int uv;
	uint64_t offset;
	volatile bool stop;
	volatile unsigned int made, gone, other;
};

static void *export_loop(void *arg)
{
	struct export_loop *el = arg;
	int fd;

	while (!el->stop) {
		fd = uvr_export_dmabuf(el->uv, el->offset);
		if (fd >= 0) {
			el->made++;
			close(fd);
		} else if (fd == -EIO) {
			el->gone++;
		} else {
			el->other++;
		}
	}
	return NULL;
}

/* Exports against the driver's unbind: made, or EIO once it is gone. */
TEST_F_TIMEOUT(udb, exports_race_unbind, 300)
{
	struct udb_lab *l = &self->l;
	struct export_loop el;
	pthread_t thr;
	int i, j;

	for (i = 0; i < RACE_ROUNDS / 2; i++) {
		if (l->uv < 0) {
			ASSERT_EQ(0, lab_pci_bind(l->rdma, P2PT_RDMA_DRIVER));
			ASSERT_EQ(0, udb_open(l, &l->uv, &l->resp));
		}
		memset(&el, 0, sizeof(el));
		el.uv = l->uv;
		el.offset = l->resp.doorbell_offset;
		ASSERT_EQ(0, pthread_create(&thr, NULL, export_loop, &el));
		usleep(1000 * (10 + rand() % 50));
		ASSERT_EQ(0, lab_pci_bind(l->rdma, ""));
		/* Let the loop see the unbind (bounded, for a hang only: 60 s). */
		for (j = 0; j < 6000 && !el.gone; j++)
			usleep(10000);
		el.stop = true;
		pthread_join(thr, NULL);
		EXPECT_EQ(0, el.other) TH_LOG("round %d: exports failing otherwise than EIO", i);
		EXPECT_LT(0, el.gone) TH_LOG("round %d: no export saw the unbind", i);
		close(l->uv);
		l->uv = -1;
	}
}

TEST_HARNESS_MAIN
