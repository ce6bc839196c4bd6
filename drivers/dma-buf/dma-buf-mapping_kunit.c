// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests for the pure logic of the dma-buf MMIO mapping helper: range
 * checks, entry counting, splitting at the maximum entry length and bus
 * address arithmetic. Included by dma-buf-mapping.c to reach its static
 * functions; only the BUS_ADDR route is built here, since it needs no
 * IOMMU, only a device's DMA mask (the other routes are covered by the
 * lab's kselftests).
 */
#include <kunit/test.h>
#include <linux/sizes.h>

#define MAX_SEG	((size_t)DMA_BUF_MAX_SEG)

static void count_rejects_bad_ranges(struct kunit *test)
{
	struct dma_buf_phys_vec v[2] = {
		{ .paddr = SZ_1M, .len = SZ_4K },
		{ .paddr = SZ_2M, .len = SZ_8K },
	};
	unsigned int nents = 0xdead;

	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 0, 0, &nents), -EINVAL);

	v[1].len = 0;
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 2, SZ_4K, &nents), -EINVAL);
	v[1].len = SZ_4K + 1;
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 2, SZ_8K + 1, &nents),
			-EINVAL);
	v[1].len = SZ_8K;
	v[1].paddr = SZ_2M + 512;
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 2, SZ_4K + SZ_8K, &nents),
			-EINVAL);
	/* Nothing is written on failure. */
	KUNIT_EXPECT_EQ(test, nents, 0xdead);

	v[1].paddr = SZ_2M;
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 2, SZ_4K + SZ_8K, &nents),
			0);
	KUNIT_EXPECT_EQ(test, nents, 2);
}

static void count_checks_size(struct kunit *test)
{
	struct dma_buf_phys_vec v[2] = {
		{ .paddr = SZ_1M, .len = SZ_4K },
		{ .paddr = SZ_2M, .len = SZ_8K },
	};
	unsigned int nents;

	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 2, SZ_8K, &nents),
			-EMSGSIZE);
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 2, SZ_16K, &nents),
			-EMSGSIZE);
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 2, 0, &nents), -EMSGSIZE);
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 1, SZ_4K, &nents), 0);
	KUNIT_EXPECT_EQ(test, nents, 1);
}

static void count_overflows(struct kunit *test)
{
	size_t big = ALIGN_DOWN(SIZE_MAX, PAGE_SIZE);
	struct dma_buf_phys_vec v[2] = {
		{ .paddr = 0, .len = SIZE_MAX / 2 + 1 },
		{ .paddr = 0, .len = SIZE_MAX / 2 + 1 },
	};
	unsigned int nents = 0xdead;

	/* Total length wraps. */
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 2, 0, &nents),
			-EOVERFLOW);

	/* A range that wraps the physical address space. */
	v[0].paddr = ALIGN_DOWN((phys_addr_t)~0, PAGE_SIZE);
	v[0].len = SZ_8K;
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 1, SZ_8K, &nents),
			-EOVERFLOW);
	/* Ending exactly at the top is fine. */
	v[0].len = SZ_4K;
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 1, SZ_4K, &nents), 0);
	KUNIT_EXPECT_EQ(test, nents, 1);

	/* More entries than an sg_table can count. */
	v[0].paddr = 0;
	v[0].len = big;
	KUNIT_EXPECT_GT(test, dma_buf_range_nents(big), (size_t)UINT_MAX);
	nents = 0xdead;
	KUNIT_EXPECT_EQ(test, dma_buf_count_nents(v, 1, big, &nents),
			-EOVERFLOW);
	KUNIT_EXPECT_EQ(test, nents, 0xdead);
}

static void count_splits_at_max_entry(struct kunit *test)
{
	static const struct {
		size_t len;
		unsigned int nents;
	} cases[] = {
		{ PAGE_SIZE, 1 },
		{ SZ_2M, 1 },
		{ MAX_SEG - PAGE_SIZE, 1 },
		{ MAX_SEG, 1 },
		{ MAX_SEG + PAGE_SIZE, 2 },
		{ 2 * MAX_SEG, 2 },
		{ 2 * MAX_SEG + PAGE_SIZE, 3 },
		{ SZ_4G, 2 },
		{ 16ULL * SZ_1G, 5 },
	};
	struct dma_buf_phys_vec v;
	unsigned int nents;
	int i;

	/* The longest page-aligned length an entry can describe. */
	KUNIT_EXPECT_TRUE(test, PAGE_ALIGNED(MAX_SEG));
	KUNIT_EXPECT_LE(test, MAX_SEG, (size_t)UINT_MAX);
	KUNIT_EXPECT_GT(test, MAX_SEG + PAGE_SIZE, (size_t)UINT_MAX);
	/* Lengths near SIZE_MAX must not wrap the count to a small number. */
	KUNIT_EXPECT_GT(test, dma_buf_range_nents(SIZE_MAX - PAGE_SIZE + 1),
			(size_t)UINT_MAX);
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		v.paddr = SZ_1G;
		v.len = cases[i].len;
		KUNIT_EXPECT_EQ(test, dma_buf_count_nents(&v, 1, v.len, &nents),
				0);
		KUNIT_EXPECT_EQ_MSG(test, nents, cases[i].nents,
				    "length %#zx", cases[i].len);
	}
}

/* An importing device: only its DMA mask and bus limit are looked at. */
struct fake_importer {
	struct device dev;
	u64 dma_mask;
};

static struct device *fake_importer(struct kunit *test, u64 dma_mask,
				    u64 bus_limit)
{
	struct fake_importer *f = kunit_kzalloc(test, sizeof(*f), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, f);
	f->dma_mask = dma_mask;
	f->dev.dma_mask = &f->dma_mask;
	f->dev.bus_dma_limit = bus_limit;
	return &f->dev;
}

static struct sg_table *build_bus_for(struct device *dev, u64 bus_offset,
				      const struct dma_buf_phys_vec *v,
				      size_t nr, size_t size)
{
	struct p2pdma_provider provider = { .bus_offset = bus_offset };

	return dma_buf_build_sgt(dev, PCI_P2PDMA_MAP_BUS_ADDR, &provider, v,
				 nr, size, DMA_BIDIRECTIONAL);
}

static struct sg_table *build_bus(struct kunit *test, u64 bus_offset,
				  const struct dma_buf_phys_vec *v, size_t nr,
				  size_t size)
{
	return build_bus_for(fake_importer(test, DMA_BIT_MASK(64), 0),
			     bus_offset, v, nr, size);
}

static void free_bus(struct sg_table *sgt)
{
	dma_buf_release_dma(NULL, container_of(sgt, struct dma_buf_dma, sgt),
			    0, DMA_BIDIRECTIONAL);
}

/* Expect the table to describe @v at @bus_offset, split at MAX_SEG. */
static void expect_entries(struct kunit *test, struct sg_table *sgt,
			   u64 bus_offset, const struct dma_buf_phys_vec *v,
			   size_t nr)
{
	struct scatterlist *sg = sgt->sgl;
	size_t i, off;
	int n = 0;

	for (i = 0; i < nr; i++) {
		for (off = 0; off < v[i].len; off += MAX_SEG) {
			size_t len = min(v[i].len - off, MAX_SEG);

			KUNIT_ASSERT_NOT_NULL(test, sg);
			KUNIT_EXPECT_EQ_MSG(test, sg_dma_address(sg),
					    v[i].paddr + bus_offset + off,
					    "range %zu offset %#zx", i, off);
			KUNIT_EXPECT_EQ(test, sg_dma_len(sg), len);
			KUNIT_EXPECT_TRUE(test, PAGE_ALIGNED(sg_dma_address(sg)));
			KUNIT_EXPECT_NULL(test, sg_page(sg));
			KUNIT_EXPECT_EQ(test, sg->offset, 0);
			KUNIT_EXPECT_EQ(test, sg->length, 0);
			sg = sg_next(sg);
			n++;
		}
	}
	KUNIT_EXPECT_EQ(test, sgt->nents, n);
	KUNIT_EXPECT_EQ(test, sgt->orig_nents, 0);
}

static void bus_addr_one_page(struct kunit *test)
{
	struct dma_buf_phys_vec v = { .paddr = 0xfe000000, .len = PAGE_SIZE };
	struct sg_table *sgt = build_bus(test, 0, &v, 1, PAGE_SIZE);

	KUNIT_ASSERT_FALSE(test, IS_ERR(sgt));
	KUNIT_EXPECT_EQ(test, sgt->nents, 1);
	KUNIT_EXPECT_EQ(test, sg_dma_address(sgt->sgl), 0xfe000000);
	KUNIT_EXPECT_EQ(test, sg_dma_len(sgt->sgl), PAGE_SIZE);
	free_bus(sgt);
}

static void bus_addr_offset_arithmetic(struct kunit *test)
{
	static const u64 offsets[] = {
		0, 0x100000000ULL, 0x8000000000ULL,
		/* Bus addresses below the CPU's: a wrapping offset. */
		(u64)-0x40000000LL,
	};
	struct dma_buf_phys_vec v[2] = {
		{ .paddr = 0x80000000, .len = SZ_64K },
		{ .paddr = 0x80100000, .len = SZ_4K },
	};
	int i;

	for (i = 0; i < ARRAY_SIZE(offsets); i++) {
		struct sg_table *sgt = build_bus(test, offsets[i], v, 2,
						 SZ_64K + SZ_4K);

		KUNIT_ASSERT_FALSE(test, IS_ERR(sgt));
		expect_entries(test, sgt, offsets[i], v, 2);
		free_bus(sgt);
	}
}

/*
 * A bus address the importer cannot reach fails the mapping: nothing is
 * truncated to the mask, whichever range is out of reach.
 */
static void bus_addr_beyond_dma_mask(struct kunit *test)
{
	struct device *dev32 = fake_importer(test, DMA_BIT_MASK(32), 0);
	struct dma_buf_phys_vec v[2] = {
		{ .paddr = 0x80000000, .len = SZ_4K },
		{ .paddr = 0xffffe000, .len = SZ_8K },
	};
	struct sg_table *sgt;

	/* Ending exactly at the mask is fine. */
	sgt = build_bus_for(dev32, 0, v, 2, SZ_4K + SZ_8K);
	KUNIT_ASSERT_FALSE(test, IS_ERR(sgt));
	expect_entries(test, sgt, 0, v, 2);
	free_bus(sgt);

	/* One page beyond, in the second range only. */
	v[1].paddr += PAGE_SIZE;
	KUNIT_EXPECT_EQ(test, PTR_ERR(build_bus_for(dev32, 0, v, 2,
						    SZ_4K + SZ_8K)), -EINVAL);

	/* Within the CPU's 32 bits, beyond them on the bus. */
	v[1].paddr = 0x90000000;
	KUNIT_EXPECT_EQ(test, PTR_ERR(build_bus_for(dev32, 0x80000000, v, 2,
						    SZ_4K + SZ_8K)), -EINVAL);
	sgt = build_bus_for(dev32, 0x10000000, v, 2, SZ_4K + SZ_8K);
	KUNIT_ASSERT_FALSE(test, IS_ERR(sgt));
	expect_entries(test, sgt, 0x10000000, v, 2);
	free_bus(sgt);

	/* A bus limit below the mask wins. */
	KUNIT_EXPECT_EQ(test,
			PTR_ERR(build_bus_for(fake_importer(test,
							    DMA_BIT_MASK(64),
							    0x8fffffff),
					      0, v, 2, SZ_4K + SZ_8K)),
			-EINVAL);
}

static void bus_addr_large_ranges(struct kunit *test)
{
	static const size_t lens[] = {
		SZ_2M, MAX_SEG, MAX_SEG + PAGE_SIZE, SZ_4G, 8ULL * SZ_1G,
		64ULL * SZ_1G,
	};
	struct dma_buf_phys_vec v;
	int i;

	for (i = 0; i < ARRAY_SIZE(lens); i++) {
		struct sg_table *sgt;

		v.paddr = 0x10000000000ULL;
		v.len = lens[i];
		sgt = build_bus(test, 0, &v, 1, v.len);
		KUNIT_ASSERT_FALSE(test, IS_ERR(sgt));
		KUNIT_EXPECT_EQ(test, sgt->nents, dma_buf_range_nents(v.len));
		expect_entries(test, sgt, 0, &v, 1);
		free_bus(sgt);
	}
}

/* Enough ranges to need a chained scatterlist. */
static void bus_addr_many_ranges(struct kunit *test)
{
	const size_t nr = 4 * SG_MAX_SINGLE_ALLOC + 3;
	struct dma_buf_phys_vec *v;
	struct sg_table *sgt;
	size_t i, size = 0;

	v = kunit_kcalloc(test, nr, sizeof(*v), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, v);
	for (i = 0; i < nr; i++) {
		v[i].paddr = 0x200000000ULL + i * SZ_2M;
		v[i].len = (i % 3 + 1) * PAGE_SIZE;
		size += v[i].len;
	}

	sgt = build_bus(test, 0x1000000, v, nr, size);
	KUNIT_ASSERT_FALSE(test, IS_ERR(sgt));
	KUNIT_EXPECT_EQ(test, sgt->nents, nr);
	expect_entries(test, sgt, 0x1000000, v, nr);
	free_bus(sgt);
}

static long build_err(enum pci_p2pdma_map_type map, size_t size)
{
	struct dma_buf_phys_vec v = { .paddr = SZ_1G, .len = SZ_4K };
	struct p2pdma_provider provider = { };

	return PTR_ERR(dma_buf_build_sgt(NULL, map, &provider, &v, 1, size,
					 DMA_TO_DEVICE));
}

static void build_rejects_other_routes(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, build_err(PCI_P2PDMA_MAP_NOT_SUPPORTED, SZ_4K),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, build_err(PCI_P2PDMA_MAP_UNKNOWN, SZ_4K),
			-EINVAL);
	/* Bad input is reported before the route. */
	KUNIT_EXPECT_EQ(test, build_err(PCI_P2PDMA_MAP_NOT_SUPPORTED, SZ_8K),
			-EMSGSIZE);
	KUNIT_EXPECT_EQ(test, build_err(PCI_P2PDMA_MAP_BUS_ADDR, SZ_8K),
			-EMSGSIZE);
}

static struct kunit_case dma_buf_mapping_cases[] = {
	KUNIT_CASE(count_rejects_bad_ranges),
	KUNIT_CASE(count_checks_size),
	KUNIT_CASE(count_overflows),
	KUNIT_CASE(count_splits_at_max_entry),
	KUNIT_CASE(bus_addr_one_page),
	KUNIT_CASE(bus_addr_offset_arithmetic),
	KUNIT_CASE(bus_addr_beyond_dma_mask),
	KUNIT_CASE(bus_addr_large_ranges),
	KUNIT_CASE(bus_addr_many_ranges),
	KUNIT_CASE(build_rejects_other_routes),
	{}
};

static struct kunit_suite dma_buf_mapping_suite = {
	.name = "dma-buf-mapping",
	.test_cases = dma_buf_mapping_cases,
};

kunit_test_suite(dma_buf_mapping_suite);
