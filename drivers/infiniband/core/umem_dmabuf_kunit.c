// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests for CPU dma-buf umems (ib_umem_dmabuf_get_cpu()), included by
 * umem_dmabuf.c: an access reaches the exporter's memory at the umem's
 * offset, through the physical ranges of a revocable exporter (in the
 * exporter's order, split where the ranges are; only their pages mapped,
 * once) or the vmap of a static one; move_notify waits for the accesses in
 * flight and gives the ranges back; the next access maps again, or fails
 * with the exporter's error once it has revoked the buffer.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/dma-buf-mapping.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/kthread.h>

#define UMEM_TEST_SIZE	(4 * PAGE_SIZE)

struct umem_test_exporter {
	u8 *backing;
	/*
	 * The dynamic exporter's ranges: the second half of @backing, then
	 * the first, so that dma-buf offsets and memory differ.
	 */
	struct dma_buf_phys_vec ranges[4];
	unsigned int nr_ranges;
	int users;		/* live vmaps and physical-range answers */
	int calls;		/* vmaps and physical-range answers given */
	bool revoked;
};

static int umem_test_pin(struct dma_buf_attachment *attach)
{
	return 0;
}

static void umem_test_unpin(struct dma_buf_attachment *attach)
{
}

static struct sg_table *umem_test_map(struct dma_buf_attachment *attach,
				      enum dma_data_direction dir)
{
	return ERR_PTR(-EOPNOTSUPP);	/* CPU umems never DMA-map */
}

static void umem_test_unmap(struct dma_buf_attachment *attach,
			    struct sg_table *sgt, enum dma_data_direction dir)
{
}

static int umem_test_get_phys(struct dma_buf_attachment *attach,
			      struct dma_buf_phys *phys)
{
	struct umem_test_exporter *exp = attach->dmabuf->priv;

	if (exp->revoked)
		return -ENODEV;
	/* Kernel memory, so mapped cacheable: memremap() of system RAM. */
	phys->provider = NULL;
	phys->ranges = exp->ranges;
	phys->nr_ranges = exp->nr_ranges;
	phys->mem_type = DMA_BUF_MEM_WB;
	exp->users++;
	exp->calls++;
	return 0;
}

static void umem_test_put_phys(struct dma_buf_attachment *attach)
{
	struct umem_test_exporter *exp = attach->dmabuf->priv;

	exp->users--;
}

static int umem_test_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct umem_test_exporter *exp = dmabuf->priv;

	iosys_map_set_vaddr(map, exp->backing);
	exp->users++;
	exp->calls++;
	return 0;
}

static void umem_test_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct umem_test_exporter *exp = dmabuf->priv;

	exp->users--;
}

static void umem_test_release(struct dma_buf *dmabuf)
{
}

/* Revocable, and described by physical ranges, like the MMIO exporters. */
static const struct dma_buf_ops umem_test_dynamic_ops = {
	.pin = umem_test_pin,
	.unpin = umem_test_unpin,
	.map_dma_buf = umem_test_map,
	.unmap_dma_buf = umem_test_unmap,
	.get_phys = umem_test_get_phys,
	.put_phys = umem_test_put_phys,
	.release = umem_test_release,
};

/* Dynamic with a vmap, but no physical ranges. */
static const struct dma_buf_ops umem_test_opaque_ops = {
	.pin = umem_test_pin,
	.unpin = umem_test_unpin,
	.map_dma_buf = umem_test_map,
	.unmap_dma_buf = umem_test_unmap,
	.vmap = umem_test_vmap,
	.vunmap = umem_test_vunmap,
	.release = umem_test_release,
};

/* No pin: a static exporter, like udmabuf and the dma-heaps. */
static const struct dma_buf_ops umem_test_static_ops = {
	.map_dma_buf = umem_test_map,
	.unmap_dma_buf = umem_test_unmap,
	.vmap = umem_test_vmap,
	.vunmap = umem_test_vunmap,
	.release = umem_test_release,
};

struct umem_test {
	struct umem_test_exporter exp;
	struct ib_device *ibdev;
	struct dma_buf *dmabuf;
	int fd;
};

static int umem_test_setup(struct kunit *test, const struct dma_buf_ops *ops)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	struct umem_test *t = test->priv;

	t->exp.backing = kunit_kzalloc(test, UMEM_TEST_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, t->exp.backing);
	t->exp.ranges[0].paddr = virt_to_phys(t->exp.backing + UMEM_TEST_SIZE / 2);
	t->exp.ranges[0].len = UMEM_TEST_SIZE / 2;
	t->exp.ranges[1].paddr = virt_to_phys(t->exp.backing);
	t->exp.ranges[1].len = UMEM_TEST_SIZE / 2;
	t->exp.nr_ranges = 2;
	/* Only &ibdev->dev is used, as the attachment's device. */
	t->ibdev = kunit_kzalloc(test, sizeof(*t->ibdev), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, t->ibdev);
	exp_info.ops = ops;
	exp_info.size = UMEM_TEST_SIZE;
	exp_info.flags = O_RDWR;
	exp_info.priv = &t->exp;
	t->dmabuf = dma_buf_export(&exp_info);
	KUNIT_ASSERT_FALSE(test, IS_ERR(t->dmabuf));
	t->fd = dma_buf_fd(t->dmabuf, O_CLOEXEC);
	KUNIT_ASSERT_GE(test, t->fd, 0);
	return 0;
}

static int umem_test_init(struct kunit *test)
{
	struct umem_test *t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);

	if (!t)
		return -ENOMEM;
	t->fd = -1;
	test->priv = t;
	return 0;
}

static void umem_test_exit(struct kunit *test)
{
	struct umem_test *t = test->priv;

	if (t->fd >= 0)
		close_fd(t->fd);	/* drops the dma-buf */
	flush_delayed_fput();
}

/* A fresh exporter with @ops and a CPU umem of [@offset, @offset + @size). */
static struct ib_umem_dmabuf *umem_test_get(struct kunit *test,
					    const struct dma_buf_ops *ops,
					    unsigned long offset, size_t size)
{
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf *umem;

	umem_test_setup(test, ops);
	umem = ib_umem_dmabuf_get_cpu(t->ibdev, offset, size, t->fd,
				      IB_ACCESS_LOCAL_WRITE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(umem));
	return umem;
}

/*
 * An access reaches the exporter's memory at the umem's offset: the umem
 * [PAGE_SIZE, 3 * PAGE_SIZE) of the dma-buf is the last page of the first
 * range (the backing's last page), then the first page of the second (the
 * backing's first page).
 */
static void umem_cpu_access_at_offset(struct kunit *test)
{
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf *umem;
	struct iosys_map map;

	umem = umem_test_get(test, &umem_test_dynamic_ops, PAGE_SIZE, 2 * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, t->exp.users, 1);	/* mapped at registration */
	KUNIT_ASSERT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), 0);
	KUNIT_EXPECT_EQ(test, ib_umem_dmabuf_cpu_map(umem, 16, &map),
			PAGE_SIZE - 16);
	KUNIT_EXPECT_FALSE(test, map.is_iomem);
	iosys_map_memset(&map, 0, 0xab, 8);
	KUNIT_EXPECT_EQ(test, ib_umem_dmabuf_cpu_map(umem, PAGE_SIZE + 8, &map),
			PAGE_SIZE - 8);
	iosys_map_memset(&map, 0, 0xcd, 8);
	KUNIT_EXPECT_EQ(test, ib_umem_dmabuf_cpu_map(umem, 2 * PAGE_SIZE, &map),
			0);
	ib_umem_dmabuf_cpu_end(umem);
	KUNIT_EXPECT_EQ(test, t->exp.backing[3 * PAGE_SIZE + 16], 0xab);
	KUNIT_EXPECT_EQ(test, t->exp.backing[8], 0xcd);
	KUNIT_EXPECT_EQ(test, t->exp.backing[PAGE_SIZE + 16], 0);
	KUNIT_EXPECT_EQ(test, t->exp.backing[2 * PAGE_SIZE + 8], 0);
	ib_umem_release(&umem->umem);
	KUNIT_EXPECT_EQ(test, t->exp.users, 0);
}

struct umem_test_notifier {
	struct dma_buf *dmabuf;
	struct completion done;
};

static int umem_test_notify_thread(void *arg)
{
	struct umem_test_notifier *n = arg;

	dma_resv_lock(n->dmabuf->resv, NULL);
	dma_buf_move_notify(n->dmabuf);
	dma_resv_unlock(n->dmabuf->resv);
	complete(&n->done);
	return 0;
}

/*
 * move_notify returns only when the access in flight has ended, and the
 * ranges are given back then; the next access maps again.
 */
static void umem_cpu_move_notify_waits(struct kunit *test)
{
	struct umem_test *t = test->priv;
	struct umem_test_notifier n;
	struct ib_umem_dmabuf *umem;
	struct task_struct *task;

	umem = umem_test_get(test, &umem_test_dynamic_ops, 0, UMEM_TEST_SIZE);
	KUNIT_ASSERT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), 0);

	n.dmabuf = t->dmabuf;
	init_completion(&n.done);
	task = kthread_run(umem_test_notify_thread, &n, "umem-notify");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));
	/* The access is still open: move_notify must not have returned. */
	KUNIT_EXPECT_EQ(test, wait_for_completion_timeout(&n.done, HZ / 2), 0);
	KUNIT_EXPECT_EQ(test, t->exp.users, 1);
	ib_umem_dmabuf_cpu_end(umem);
	KUNIT_EXPECT_NE(test, wait_for_completion_timeout(&n.done, 10 * HZ), 0);
	KUNIT_EXPECT_EQ(test, t->exp.users, 0);

	/* Mapped again on the next access. */
	KUNIT_ASSERT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), 0);
	ib_umem_dmabuf_cpu_end(umem);
	KUNIT_EXPECT_EQ(test, t->exp.users, 1);
	KUNIT_EXPECT_EQ(test, t->exp.calls, 2);
	ib_umem_release(&umem->umem);
}

/*
 * A CPU umem of the whole dynamic exporter's ranges, set to one page each
 * at these backing pages (the exporter set up).
 */
static struct ib_umem_dmabuf *umem_test_get_pages(struct kunit *test,
						  const unsigned int *page,
						  unsigned int n)
{
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf *umem;
	unsigned int i;

	for (i = 0; i < n; i++) {
		t->exp.ranges[i].paddr = virt_to_phys(t->exp.backing +
						      page[i] * PAGE_SIZE);
		t->exp.ranges[i].len = PAGE_SIZE;
	}
	t->exp.nr_ranges = n;
	umem = ib_umem_dmabuf_get_cpu(t->ibdev, 0, n * PAGE_SIZE, t->fd,
				      IB_ACCESS_LOCAL_WRITE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(umem));
	return umem;
}

/*
 * Ranges that repeat and skip memory, one page each: backing pages 2, 0, 2
 * and 3. Each piece of the umem reaches its own page, and the two pieces
 * of page 2 are the same bytes.
 */
static void umem_cpu_repeated_ranges(struct kunit *test)
{
	static const unsigned int page[] = { 2, 0, 2, 3 };
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf *umem;
	struct iosys_map map;
	unsigned int i;
	size_t len;

	umem_test_setup(test, &umem_test_dynamic_ops);
	umem = umem_test_get_pages(test, page, ARRAY_SIZE(page));

	KUNIT_ASSERT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), 0);
	for (i = 0; i < ARRAY_SIZE(page); i++) {
		len = ib_umem_dmabuf_cpu_map(umem, i * PAGE_SIZE + 8, &map);
		KUNIT_EXPECT_EQ(test, len, PAGE_SIZE - 8);
		iosys_map_wr(&map, 0, u8, 0x10 + i);
	}
	/* The second write to page 2 shows through the first piece. */
	KUNIT_EXPECT_EQ(test, ib_umem_dmabuf_cpu_map(umem, 8, &map),
			PAGE_SIZE - 8);
	KUNIT_EXPECT_EQ(test, iosys_map_rd(&map, 0, u8), 0x12);
	ib_umem_dmabuf_cpu_end(umem);
	KUNIT_EXPECT_EQ(test, t->exp.backing[8], 0x11);
	KUNIT_EXPECT_EQ(test, t->exp.backing[PAGE_SIZE + 8], 0);
	KUNIT_EXPECT_EQ(test, t->exp.backing[2 * PAGE_SIZE + 8], 0x12);
	KUNIT_EXPECT_EQ(test, t->exp.backing[3 * PAGE_SIZE + 8], 0x13);
	ib_umem_release(&umem->umem);
	KUNIT_EXPECT_EQ(test, t->exp.users, 0);
}

/*
 * Only the exporter's pages are mapped, each once: ranges at backing pages
 * 3, 1 and 0 are two mappings, of pages 0-1 and of page 3, and page 2,
 * between them, is not mapped (it could be another device's registers,
 * or a hole); ranges at pages 0, 2, 0 and 2 are two one-page mappings.
 */
static void umem_cpu_maps_only_ranges(struct kunit *test)
{
	static const unsigned int apart[] = { 3, 1, 0 };
	static const unsigned int again[] = { 0, 2, 0, 2 };
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf_cpu *cpu;
	struct ib_umem_dmabuf *umem;
	struct iosys_map map;

	umem_test_setup(test, &umem_test_dynamic_ops);
	umem = umem_test_get_pages(test, apart, ARRAY_SIZE(apart));
	KUNIT_ASSERT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), 0);
	cpu = umem->cpu_map;
	KUNIT_EXPECT_EQ(test, cpu->nr_maps, 2);
	KUNIT_EXPECT_EQ(test, cpu->maps[0].start, virt_to_phys(t->exp.backing));
	KUNIT_EXPECT_EQ(test, cpu->maps[0].size, 2 * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, cpu->maps[1].start,
			virt_to_phys(t->exp.backing + 3 * PAGE_SIZE));
	KUNIT_EXPECT_EQ(test, cpu->maps[1].size, PAGE_SIZE);
	/* The umem's last page is backing page 0, through the first mapping. */
	KUNIT_EXPECT_EQ(test, ib_umem_dmabuf_cpu_map(umem, 2 * PAGE_SIZE, &map),
			PAGE_SIZE);
	iosys_map_wr(&map, 0, u8, 0x77);
	ib_umem_dmabuf_cpu_end(umem);
	KUNIT_EXPECT_EQ(test, t->exp.backing[0], 0x77);
	KUNIT_EXPECT_EQ(test, t->exp.backing[2 * PAGE_SIZE], 0);
	ib_umem_release(&umem->umem);

	/* Pages repeated, not next to each other: still one mapping each. */
	umem = umem_test_get_pages(test, again, ARRAY_SIZE(again));
	KUNIT_ASSERT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), 0);
	cpu = umem->cpu_map;
	KUNIT_EXPECT_EQ(test, cpu->nr_maps, 2);
	KUNIT_EXPECT_EQ(test, cpu->maps[0].size, PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, cpu->maps[1].size, PAGE_SIZE);
	ib_umem_dmabuf_cpu_end(umem);
	ib_umem_release(&umem->umem);
	KUNIT_EXPECT_EQ(test, t->exp.users, 0);
}

/*
 * Ranges a careless exporter could give: an empty one between two pages
 * is no piece and maps nothing; one that runs into the last page of the
 * physical address space, whose end cannot be page-aligned up, is
 * refused.
 */
static void umem_cpu_odd_ranges(struct kunit *test)
{
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf_cpu *cpu;
	struct ib_umem_dmabuf *umem;

	umem_test_setup(test, &umem_test_dynamic_ops);
	t->exp.ranges[0].paddr = virt_to_phys(t->exp.backing + 3 * PAGE_SIZE);
	t->exp.ranges[0].len = PAGE_SIZE;
	t->exp.ranges[1].paddr = virt_to_phys(t->exp.backing + 2 * PAGE_SIZE + 8);
	t->exp.ranges[1].len = 0;
	t->exp.ranges[2].paddr = virt_to_phys(t->exp.backing);
	t->exp.ranges[2].len = PAGE_SIZE;
	t->exp.nr_ranges = 3;
	umem = ib_umem_dmabuf_get_cpu(t->ibdev, 0, 2 * PAGE_SIZE, t->fd,
				      IB_ACCESS_LOCAL_WRITE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(umem));
	KUNIT_ASSERT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), 0);
	cpu = umem->cpu_map;
	KUNIT_EXPECT_EQ(test, cpu->nr_pieces, 2);
	KUNIT_EXPECT_EQ(test, cpu->nr_maps, 2);
	ib_umem_dmabuf_cpu_end(umem);
	ib_umem_release(&umem->umem);

	t->exp.ranges[0].paddr = ALIGN_DOWN(PHYS_ADDR_MAX, PAGE_SIZE);
	t->exp.nr_ranges = 1;
	umem = ib_umem_dmabuf_get_cpu(t->ibdev, 0, PAGE_SIZE, t->fd,
				      IB_ACCESS_LOCAL_WRITE);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(umem), -EINVAL);
	KUNIT_EXPECT_EQ(test, t->exp.users, 0);
}

/* A revoked buffer: accesses fail with the exporter's error, then work. */
static void umem_cpu_revoked(struct kunit *test)
{
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf *umem;

	umem = umem_test_get(test, &umem_test_dynamic_ops, 0, UMEM_TEST_SIZE);
	dma_resv_lock(t->dmabuf->resv, NULL);
	t->exp.revoked = true;
	dma_buf_move_notify(t->dmabuf);
	dma_resv_unlock(t->dmabuf->resv);
	KUNIT_EXPECT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), -ENODEV);
	KUNIT_EXPECT_EQ(test, t->exp.users, 0);
	t->exp.revoked = false;
	KUNIT_ASSERT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), 0);
	ib_umem_dmabuf_cpu_end(umem);
	ib_umem_release(&umem->umem);
	KUNIT_EXPECT_EQ(test, t->exp.users, 0);

	/* Registration of a revoked buffer fails the same way. */
	t->exp.revoked = true;
	umem = ib_umem_dmabuf_get_cpu(t->ibdev, 0, UMEM_TEST_SIZE, t->fd,
				      IB_ACCESS_LOCAL_WRITE);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(umem), -ENODEV);
}

/*
 * A static exporter: static attachment, no DMA mapping, reached through
 * its vmap at the umem's offset, clean release.
 */
static void umem_cpu_static_exporter(struct kunit *test)
{
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf *umem;
	struct iosys_map map;

	umem = umem_test_get(test, &umem_test_static_ops, PAGE_SIZE,
			     2 * PAGE_SIZE);
	KUNIT_EXPECT_FALSE(test, dma_buf_attachment_is_dynamic(umem->attach));
	KUNIT_EXPECT_NULL(test, umem->attach->sgt);
	KUNIT_ASSERT_EQ(test, ib_umem_dmabuf_cpu_begin(umem), 0);
	KUNIT_EXPECT_EQ(test, ib_umem_dmabuf_cpu_map(umem, 8, &map),
			2 * PAGE_SIZE - 8);
	iosys_map_memset(&map, 0, 0xef, 8);
	ib_umem_dmabuf_cpu_end(umem);
	KUNIT_EXPECT_EQ(test, t->exp.backing[PAGE_SIZE + 8], 0xef);
	ib_umem_release(&umem->umem);
	KUNIT_EXPECT_EQ(test, t->exp.users, 0);
}

/*
 * A revocable exporter that cannot give physical ranges is refused, even
 * if it has a vmap: a vmap cannot be taken back.
 */
static void umem_cpu_no_phys(struct kunit *test)
{
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf *umem;

	umem_test_setup(test, &umem_test_opaque_ops);
	umem = ib_umem_dmabuf_get_cpu(t->ibdev, 0, UMEM_TEST_SIZE, t->fd,
				      IB_ACCESS_LOCAL_WRITE);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(umem), -EOPNOTSUPP);
	KUNIT_EXPECT_EQ(test, t->exp.calls, 0);
}

/* Bad ranges and fds: errors, no umem. */
static void umem_cpu_bad_requests(struct kunit *test)
{
	struct umem_test *t = test->priv;
	struct ib_umem_dmabuf *umem;

	umem_test_setup(test, &umem_test_dynamic_ops);
	umem = ib_umem_dmabuf_get_cpu(t->ibdev, PAGE_SIZE, UMEM_TEST_SIZE, t->fd, 0);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(umem), -EINVAL);
	umem = ib_umem_dmabuf_get_cpu(t->ibdev, 0, 0, t->fd, 0);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(umem), -EINVAL);
	umem = ib_umem_dmabuf_get_cpu(t->ibdev, 0, UMEM_TEST_SIZE, -1, 0);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(umem), -EBADF);
	KUNIT_EXPECT_EQ(test, t->exp.users, 0);
}

static struct kunit_case umem_dmabuf_cpu_cases[] = {
	KUNIT_CASE(umem_cpu_access_at_offset),
	KUNIT_CASE(umem_cpu_repeated_ranges),
	KUNIT_CASE(umem_cpu_maps_only_ranges),
	KUNIT_CASE(umem_cpu_odd_ranges),
	KUNIT_CASE(umem_cpu_move_notify_waits),
	KUNIT_CASE(umem_cpu_revoked),
	KUNIT_CASE(umem_cpu_static_exporter),
	KUNIT_CASE(umem_cpu_no_phys),
	KUNIT_CASE(umem_cpu_bad_requests),
	{}
};

static struct kunit_suite umem_dmabuf_cpu_suite = {
	.name = "ib-umem-dmabuf-cpu",
	.init = umem_test_init,
	.exit = umem_test_exit,
	.test_cases = umem_dmabuf_cpu_cases,
};

kunit_test_suite(umem_dmabuf_cpu_suite);
