// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests for the dynamic dma-buf attachment contract that revocable
 * MMIO exporters (vfio-pci, RDMA) build on: a dynamic importer is told to
 * drop its mappings through move_notify, with the reservation lock held,
 * and, with CONFIG_DMABUF_MOVE_NOTIFY, mapping it does not pin the
 * exporter. A static importer of a dynamic exporter pins at attach time
 * and is never notified. Only importers with move_notify are revocable;
 * those without must pin. An exporter may refuse a CPU mapping (vmap),
 * e.g. while revoked: the caller gets the error, the log no warning.
 */
#include <kunit/device.h>
#include <kunit/test.h>
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/file.h>
#include <linux/iosys-map.h>
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>

MODULE_IMPORT_NS(DMA_BUF);

#define TEST_BUF_SIZE	(4 * PAGE_SIZE)
#define TEST_DMA_ADDR	((dma_addr_t)0x100000)
#define TEST_MAX_ATTACH	3

struct test_exporter {
	int pins;
	int maps;
	int unmaps;
	int vmaps;
	bool refuse_vmap;
	bool *released;
	u8 backing[64];		/* what vmap hands out */
};

struct test_importer {
	int move_notify;
	bool resv_held;
};

static int test_pin(struct dma_buf_attachment *attach)
{
	struct test_exporter *exp = attach->dmabuf->priv;

	exp->pins++;
	return 0;
}

static void test_unpin(struct dma_buf_attachment *attach)
{
	struct test_exporter *exp = attach->dmabuf->priv;

	exp->pins--;
}

/* An MMIO-style mapping: DMA addresses only, no struct page. */
static struct sg_table *test_map(struct dma_buf_attachment *attach,
				 enum dma_data_direction dir)
{
	struct test_exporter *exp = attach->dmabuf->priv;
	struct sg_table *sgt;
	int ret;

	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt)
		return ERR_PTR(-ENOMEM);
	ret = sg_alloc_table(sgt, 1, GFP_KERNEL);
	if (ret) {
		kfree(sgt);
		return ERR_PTR(ret);
	}
	sg_dma_address(sgt->sgl) = TEST_DMA_ADDR;
	sg_dma_len(sgt->sgl) = TEST_BUF_SIZE;
	exp->maps++;
	return sgt;
}

static void test_unmap(struct dma_buf_attachment *attach,
		       struct sg_table *sgt, enum dma_data_direction dir)
{
	struct test_exporter *exp = attach->dmabuf->priv;

	exp->unmaps++;
	sg_free_table(sgt);
	kfree(sgt);
}

static int test_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct test_exporter *exp = dmabuf->priv;

	if (exp->refuse_vmap)
		return -ENODEV;
	iosys_map_set_vaddr(map, exp->backing);
	exp->vmaps++;
	return 0;
}

static void test_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct test_exporter *exp = dmabuf->priv;

	exp->vmaps--;
}

static void test_release(struct dma_buf *dmabuf)
{
	struct test_exporter *exp = dmabuf->priv;

	*exp->released = true;
	kfree(exp);
}

static const struct dma_buf_ops test_dynamic_ops = {
	.pin = test_pin,
	.unpin = test_unpin,
	.map_dma_buf = test_map,
	.unmap_dma_buf = test_unmap,
	.vmap = test_vmap,
	.vunmap = test_vunmap,
	.release = test_release,
};

static void test_move_notify(struct dma_buf_attachment *attach)
{
	struct test_importer *imp = attach->importer_priv;

	imp->move_notify++;
	imp->resv_held = dma_resv_is_locked(attach->dmabuf->resv);
}

static const struct dma_buf_attach_ops test_importer_ops = {
	.allow_peer2peer = true,
	.move_notify = test_move_notify,
};

/* A dynamic importer that cannot be notified: it pins instead. */
static const struct dma_buf_attach_ops test_pinned_importer_ops = {
	.allow_peer2peer = true,
};

struct test_ctx {
	struct device *dev;
	struct dma_buf *dmabuf;
	struct test_exporter *exp;
	/* Live attachments, detached by the exit hook if a test aborts. */
	struct dma_buf_attachment *attach[TEST_MAX_ATTACH];
	bool released;
};

static int dynamic_test_init(struct kunit *test)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	struct test_ctx *ctx;

	ctx = kunit_kzalloc(test, sizeof(*ctx), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, ctx);
	ctx->dev = kunit_device_register(test, "dma-buf-dynamic-test");
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, ctx->dev);

	ctx->exp = kzalloc(sizeof(*ctx->exp), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, ctx->exp);
	ctx->exp->released = &ctx->released;
	exp_info.ops = &test_dynamic_ops;
	exp_info.size = TEST_BUF_SIZE;
	exp_info.flags = O_RDWR;
	exp_info.priv = ctx->exp;
	ctx->dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(ctx->dmabuf))
		kfree(ctx->exp);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, ctx->dmabuf);
	test->priv = ctx;
	return 0;
}

/* Dropping the last reference releases the exporter's object. */
static void dynamic_test_exit(struct kunit *test)
{
	struct test_ctx *ctx = test->priv;

	unsigned int i;

	if (!ctx)
		return;
	for (i = 0; i < TEST_MAX_ATTACH; i++)
		if (ctx->attach[i])
			dma_buf_detach(ctx->dmabuf, ctx->attach[i]);
	dma_buf_put(ctx->dmabuf);
	flush_delayed_fput();
	KUNIT_EXPECT_TRUE(test, ctx->released);
}

/* Attach an importer with @ops (NULL: a static importer). */
static struct dma_buf_attachment *
test_attach_ops(struct kunit *test, const struct dma_buf_attach_ops *ops,
		struct test_importer *imp)
{
	struct test_ctx *ctx = test->priv;
	struct dma_buf_attachment *attach;
	unsigned int i;

	for (i = 0; i < TEST_MAX_ATTACH && ctx->attach[i]; i++)
		;
	KUNIT_ASSERT_LT(test, i, TEST_MAX_ATTACH);
	attach = dma_buf_dynamic_attach(ctx->dmabuf, ctx->dev, ops, imp);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, attach);
	ctx->attach[i] = attach;
	return attach;
}

/* Attach a dynamic importer (@imp) or, with @imp NULL, a static one. */
static struct dma_buf_attachment *test_attach(struct kunit *test,
					      struct test_importer *imp)
{
	return test_attach_ops(test, imp ? &test_importer_ops : NULL, imp);
}

static void test_detach(struct kunit *test, struct dma_buf_attachment *attach)
{
	struct test_ctx *ctx = test->priv;
	unsigned int i;

	for (i = 0; i < TEST_MAX_ATTACH; i++)
		if (ctx->attach[i] == attach)
			ctx->attach[i] = NULL;
	dma_buf_detach(ctx->dmabuf, attach);
}

static void dynamic_attach_is_dynamic(struct kunit *test)
{
	struct test_ctx *ctx = test->priv;
	struct test_importer imp = {};
	struct dma_buf_attachment *attach;

	KUNIT_EXPECT_TRUE(test, dma_buf_is_dynamic(ctx->dmabuf));
	attach = test_attach(test, &imp);
	KUNIT_EXPECT_TRUE(test, dma_buf_attachment_is_dynamic(attach));
	KUNIT_EXPECT_TRUE(test, attach->peer2peer);
	/* Attaching maps and pins nothing for a dynamic importer. */
	KUNIT_EXPECT_EQ(test, ctx->exp->pins, 0);
	KUNIT_EXPECT_EQ(test, ctx->exp->maps, 0);
	test_detach(test, attach);
}

static void dynamic_map_does_not_pin(struct kunit *test)
{
	struct test_ctx *ctx = test->priv;
	struct test_importer imp = {};
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;

	attach = test_attach(test, &imp);
	dma_resv_lock(ctx->dmabuf->resv, NULL);
	sgt = dma_buf_map_attachment(attach, DMA_BIDIRECTIONAL);
	KUNIT_EXPECT_NOT_ERR_OR_NULL(test, sgt);
	KUNIT_EXPECT_EQ(test, ctx->exp->maps, 1);
	/* Revocable exporters rely on this: no pin behind their back. */
	KUNIT_EXPECT_EQ(test, ctx->exp->pins,
			IS_ENABLED(CONFIG_DMABUF_MOVE_NOTIFY) ? 0 : 1);
	if (!IS_ERR_OR_NULL(sgt)) {
		KUNIT_EXPECT_EQ(test, sg_dma_address(sgt->sgl), TEST_DMA_ADDR);
		KUNIT_EXPECT_EQ(test, sg_dma_len(sgt->sgl), TEST_BUF_SIZE);
		dma_buf_unmap_attachment(attach, sgt, DMA_BIDIRECTIONAL);
	}
	dma_resv_unlock(ctx->dmabuf->resv);
	KUNIT_EXPECT_EQ(test, ctx->exp->unmaps, 1);
	KUNIT_EXPECT_EQ(test, ctx->exp->pins, 0);
	test_detach(test, attach);
}

static void move_notify_reaches_each_dynamic_importer(struct kunit *test)
{
	struct test_ctx *ctx = test->priv;
	struct test_importer a = {}, b = {};
	struct dma_buf_attachment *att_a, *att_b;

	att_a = test_attach(test, &a);
	att_b = test_attach(test, &b);

	dma_resv_lock(ctx->dmabuf->resv, NULL);
	dma_buf_move_notify(ctx->dmabuf);
	dma_resv_unlock(ctx->dmabuf->resv);
	KUNIT_EXPECT_EQ(test, a.move_notify, 1);
	KUNIT_EXPECT_EQ(test, b.move_notify, 1);
	KUNIT_EXPECT_TRUE(test, a.resv_held);
	KUNIT_EXPECT_TRUE(test, b.resv_held);

	/* A detached importer is no longer notified. */
	test_detach(test, att_a);
	dma_resv_lock(ctx->dmabuf->resv, NULL);
	dma_buf_move_notify(ctx->dmabuf);
	dma_resv_unlock(ctx->dmabuf->resv);
	KUNIT_EXPECT_EQ(test, a.move_notify, 1);
	KUNIT_EXPECT_EQ(test, b.move_notify, 2);
	test_detach(test, att_b);
}

static void static_importer_pins_and_is_not_notified(struct kunit *test)
{
	struct test_ctx *ctx = test->priv;
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;

	attach = test_attach(test, NULL);
	KUNIT_EXPECT_FALSE(test, dma_buf_attachment_is_dynamic(attach));
	KUNIT_EXPECT_FALSE(test, attach->peer2peer);
	/* The core pins and caches the mapping at attach time. */
	KUNIT_EXPECT_EQ(test, ctx->exp->pins, 1);
	KUNIT_EXPECT_EQ(test, ctx->exp->maps, 1);

	sgt = dma_buf_map_attachment_unlocked(attach, DMA_BIDIRECTIONAL);
	KUNIT_EXPECT_NOT_ERR_OR_NULL(test, sgt);
	KUNIT_EXPECT_EQ(test, ctx->exp->maps, 1);

	dma_resv_lock(ctx->dmabuf->resv, NULL);
	dma_buf_move_notify(ctx->dmabuf);	/* must not touch it */
	dma_resv_unlock(ctx->dmabuf->resv);

	if (!IS_ERR_OR_NULL(sgt))
		dma_buf_unmap_attachment_unlocked(attach, sgt, DMA_BIDIRECTIONAL);
	test_detach(test, attach);
	KUNIT_EXPECT_EQ(test, ctx->exp->pins, 0);
	KUNIT_EXPECT_EQ(test, ctx->exp->unmaps, 1);
}

static void revocable_only_with_move_notify(struct kunit *test)
{
	struct test_ctx *ctx = test->priv;
	struct test_importer dyn = {}, pinned = {};
	struct dma_buf_attachment *att_dyn, *att_pin, *att_static;

	att_dyn = test_attach(test, &dyn);
	att_pin = test_attach_ops(test, &test_pinned_importer_ops, &pinned);
	att_static = test_attach(test, NULL);
	KUNIT_EXPECT_EQ(test, ctx->exp->pins, 1);	/* the static one */

	KUNIT_EXPECT_TRUE(test, dma_buf_attach_revocable(att_dyn));
	KUNIT_EXPECT_FALSE(test, dma_buf_attach_revocable(att_pin));
	KUNIT_EXPECT_FALSE(test, dma_buf_attach_revocable(att_static));
	KUNIT_EXPECT_TRUE(test, dma_buf_attachment_is_dynamic(att_pin));
	KUNIT_EXPECT_TRUE(test, att_pin->peer2peer);

	dma_resv_lock(ctx->dmabuf->resv, NULL);
	KUNIT_EXPECT_EQ(test, dma_buf_pin(att_pin), 0);
	KUNIT_EXPECT_EQ(test, ctx->exp->pins, 2);
	/* Skips the importer without a callback instead of crashing. */
	dma_buf_move_notify(ctx->dmabuf);
	KUNIT_EXPECT_EQ(test, dyn.move_notify, 1);
	KUNIT_EXPECT_EQ(test, pinned.move_notify, 0);
	dma_buf_unpin(att_pin);
	dma_resv_unlock(ctx->dmabuf->resv);
	KUNIT_EXPECT_EQ(test, ctx->exp->pins, 1);

	test_detach(test, att_static);
	test_detach(test, att_pin);
	test_detach(test, att_dyn);
	KUNIT_EXPECT_EQ(test, ctx->exp->pins, 0);
}

/*
 * A refused vmap is an error for the caller, not a kernel bug: no warning
 * (6.12 warned once, which taints the kernel; the guest log scan of the
 * lab would catch it too).
 */
static void vmap_refused_by_exporter(struct kunit *test)
{
	bool warned_before = test_taint(TAINT_WARN);
	struct test_ctx *ctx = test->priv;
	struct iosys_map map;
	int ret;

	dma_resv_lock(ctx->dmabuf->resv, NULL);
	ctx->exp->refuse_vmap = true;
	ret = dma_buf_vmap(ctx->dmabuf, &map);
	KUNIT_EXPECT_EQ(test, ret, -ENODEV);
	KUNIT_EXPECT_TRUE(test, iosys_map_is_null(&map));
	KUNIT_EXPECT_EQ(test, ctx->exp->vmaps, 0);

	/* Nothing is left behind: the next vmap reaches the exporter. */
	ctx->exp->refuse_vmap = false;
	ret = dma_buf_vmap(ctx->dmabuf, &map);
	KUNIT_EXPECT_EQ(test, ret, 0);
	KUNIT_EXPECT_PTR_EQ(test, map.vaddr, (void *)ctx->exp->backing);
	KUNIT_EXPECT_EQ(test, ctx->exp->vmaps, 1);
	if (!ret)
		dma_buf_vunmap(ctx->dmabuf, &map);
	KUNIT_EXPECT_EQ(test, ctx->exp->vmaps, 0);
	dma_resv_unlock(ctx->dmabuf->resv);

	if (warned_before)
		kunit_mark_skipped(test,
				   "kernel tainted by an earlier warning: cannot tell");
	else
		KUNIT_EXPECT_FALSE_MSG(test, test_taint(TAINT_WARN),
				       "the refused vmap warned");
}

static struct kunit_case dma_buf_dynamic_cases[] = {
	KUNIT_CASE(dynamic_attach_is_dynamic),
	KUNIT_CASE(dynamic_map_does_not_pin),
	KUNIT_CASE(move_notify_reaches_each_dynamic_importer),
	KUNIT_CASE(static_importer_pins_and_is_not_notified),
	KUNIT_CASE(revocable_only_with_move_notify),
	KUNIT_CASE(vmap_refused_by_exporter),
	{}
};

static struct kunit_suite dma_buf_dynamic_suite = {
	.name = "dma-buf-dynamic",
	.init = dynamic_test_init,
	.exit = dynamic_test_exit,
	.test_cases = dma_buf_dynamic_cases,
};

kunit_test_suite(dma_buf_dynamic_suite);

MODULE_DESCRIPTION("KUnit tests for dynamic dma-buf attachments and move_notify");
MODULE_LICENSE("GPL");
