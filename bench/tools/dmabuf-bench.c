// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-bench: the lab measures behind bench/export-cost and bench/scaling.
 * Runs in the lab with the test module loaded; one line of "key=value"
 * pairs per measure on stdout, for the host scripts.
 *
 *   dmabuf-bench cost
 *	ivshmem's whole BAR 2 as struct-page P2P memory
 *	(pci_p2pdma_add_resource() through the test module), then as one
 *	dma-buf exported by vfio-pci, imported and mapped by the test
 *	importer: time and /proc/meminfo deltas (MemFree, Slab, VmallocUsed,
 *	PageTables) of each step.
 *   dmabuf-bench map N...
 *	a dma-buf of N 4 KiB ranges of BAR 2 (never adjacent, so nothing
 *	merges; a BAR smaller than N pages repeats them): time to export,
 *	map and unmap it, and the DMA entries of the mapping. Median of 3.
 *   dmabuf-bench revoke K...
 *	one dma-buf of 64 KiB, K test importers each with a mapping: time
 *	of the revoke by memory decoding off (a PCI_COMMAND write through
 *	VFIO) and of VFIO_DEVICE_RESET. Median of 3.
 *   dmabuf-bench revoke-rxe K...
 *	the same with K rxe dma-buf MRs, each accessed once (mapped) by an
 *	RDMA WRITE before each revoke.
 *
 * Exit status 0, or 1 with a message on stderr.
 */
#include <time.h>
#include "rxe_rc.h"
#include "vfio_dmabuf_ops.h"
#define TOOL_NAME "dmabuf-bench"
#include "tool.h"

#define MR_IOVA		0x7f0000000000ULL
#define REV_LEN		0x10000
#define REPEAT		3

static struct vdb_lab l;

/* Nothing to undo: the lab devices go back to their drivers at exit (p2pt.h). */
static void cleanup(void)
{
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* --- memory ------------------------------------------------------------- */

struct mem {
	long free, slab, vmalloc, pagetables;	/* kB */
};

static void mem_read(struct mem *m)
{
	char key[64];
	long val;
	FILE *f;

	/* Page cache and slab caches that can go, so that they do not move. */
	sync();
	lab_sysfs_write("/proc/sys/vm/drop_caches", "3");
	memset(m, 0, sizeof(*m));
	f = fopen("/proc/meminfo", "re");
	if (!f)
		die("/proc/meminfo: %s", strerror(errno));
	while (fscanf(f, "%63s %ld kB\n", key, &val) == 2) {
		if (!strcmp(key, "MemFree:"))
			m->free = val;
		else if (!strcmp(key, "Slab:"))
			m->slab = val;
		else if (!strcmp(key, "VmallocUsed:"))
			m->vmalloc = val;
		else if (!strcmp(key, "PageTables:"))
			m->pagetables = val;
	}
	fclose(f);
}

/* Print what @what cost since @a (kB taken: MemFree's drop, the others' rise). */
static void mem_report(const char *what, const struct mem *a, double us)
{
	struct mem b;

	mem_read(&b);
	printf("%s us=%.1f memfree_kb=%ld slab_kb=%ld vmalloc_kb=%ld pagetables_kb=%ld\n",
	       what, us, a->free - b.free, b.slab - a->slab, b.vmalloc - a->vmalloc,
	       b.pagetables - a->pagetables);
}

/* --- set-up ------------------------------------------------------------- */

static void setup_vfio(void)
{
	int err = vdb_lab_setup(&l, lab_iommu_present());

	if (err)
		die("lab set-up (ivshmem on vfio-pci, importers): %s", strerror(-err));
	if (!l.can_map)
		die("no P2P route from ivshmem to %s in this boot (use an AMD CPU model)", l.imp);
}

static int import_map(int fd, struct p2pt_map *m)
{
	int h = p2pt_import(l.lab.dev, l.imp, fd, P2PT_IMPORT_DYNAMIC, 0);

	if (h < 0)
		die("import: %s", strerror(-h));
	if (m) {
		int err = p2pt_map(l.lab.dev, h, P2PT_DIR_BIDIRECTIONAL, m);

		if (err)
			die("map: %s", strerror(-err));
	}
	return h;
}

/* --- cost --------------------------------------------------------------- */

/* The dma-buf side of cost(): export, import, map; @tag names the round. */
static void cost_dmabuf(const char *tag)
{
	char what[64];
	struct p2pt_map m;
	struct mem a;
	double t;
	int err, fd, h;

	mem_read(&a);
	t = now_us();
	fd = vdb_export1(l.v.device, IVSHMEM_BAR, 0, l.lab.bar_size);
	t = now_us() - t;
	if (fd < 0)
		die("VFIO_DEVICE_FEATURE_DMA_BUF: %s", strerror(-fd));
	snprintf(what, sizeof(what), "dmabuf_export%s", tag);
	mem_report(what, &a, t);
	mem_read(&a);
	t = now_us();
	h = import_map(fd, NULL);
	t = now_us() - t;
	snprintf(what, sizeof(what), "dmabuf_import%s", tag);
	mem_report(what, &a, t);
	mem_read(&a);
	t = now_us();
	err = p2pt_map(l.lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
	t = now_us() - t;
	if (err)
		die("map: %s", strerror(-err));
	snprintf(what, sizeof(what), "dmabuf_map%s", tag);
	mem_report(what, &a, t);
	printf("dmabuf_route%s route=%s nents=%u importer=%s\n", tag, p2pt_route_name(l.route),
	       m.nents, l.imp);
	p2pt_release(l.lab.dev, h);
	close(fd);
}

static void cost(void)
{
	struct p2pt_p2pmem pm = { .bar = IVSHMEM_BAR };
	struct mem a;
	double t;
	int err;

	setup_vfio();
	printf("bar bytes=%llu\n", (unsigned long long)l.lab.bar_size);
	/* The first round pays one-time costs (see the report); the second is the measure. */
	cost_dmabuf("_first");
	cost_dmabuf("");
	vdb_lab_restore(&l);

	err = p2pt_lab_setup(&l.lab);
	if (err)
		die("lab set-up (ivshmem on the test exporter): %s", strerror(-err));
	snprintf(pm.bdf, sizeof(pm.bdf), "%s", l.lab.ivshmem);
	mem_read(&a);
	t = now_us();
	err = p2pt_ioctl(l.lab.dev, P2PT_IOC_P2PMEM, &pm);
	t = now_us() - t;
	if (err)
		die("pci_p2pdma_add_resource: %s", strerror(-err));
	mem_report("p2pmem_register", &a, t);
	t = now_us();
	err = lab_pci_unbind(l.lab.ivshmem);
	t = now_us() - t;
	if (err)
		die("unbind: %s", strerror(-err));
	printf("p2pmem_release_unbind us=%.1f\n", t);
	p2pt_lab_restore(&l.lab);
}

/* --- map scaling -------------------------------------------------------- */

static void map_scaling(int argc, char **argv)
{
	uint64_t pages, i, n;
	struct vfio_region_dma_range *r;
	double te[REPEAT], tm[REPEAT], tu[REPEAT], t;
	struct p2pt_map m;
	int k, a, fd, h, err;

	setup_vfio();
	pages = l.lab.bar_size / 4096;
	for (a = 0; a < argc; a++) {
		n = strtoull(argv[a], NULL, 0);
		r = calloc(n, sizeof(*r));
		if (!n || !r)
			die("bad range count %s", argv[a]);
		for (i = 0; i < n; i++) {
			r[i].offset = (2 * i % pages) * 4096;
			r[i].length = 4096;
		}
		for (k = 0; k < REPEAT; k++) {
			t = now_us();
			fd = vdb_export(l.v.device, IVSHMEM_BAR, r, n);
			te[k] = now_us() - t;
			if (fd < 0)
				die("export of %llu ranges: %s", (unsigned long long)n,
				    strerror(-fd));
			h = import_map(fd, NULL);
			t = now_us();
			err = p2pt_map(l.lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
			tm[k] = now_us() - t;
			if (err)
				die("map of %llu ranges: %s", (unsigned long long)n,
				    strerror(-err));
			t = now_us();
			err = p2pt_unmap(l.lab.dev, h);
			tu[k] = now_us() - t;
			if (err)
				die("unmap: %s", strerror(-err));
			p2pt_release(l.lab.dev, h);
			close(fd);
		}
		printf("map ranges=%llu export_us=%.1f map_us=%.1f unmap_us=%.1f nents=%u route=%s\n",
		       (unsigned long long)n, median(te, REPEAT), median(tm, REPEAT),
		       median(tu, REPEAT), m.nents, p2pt_route_name(l.route));
		free(r);
	}
	vdb_lab_restore(&l);
}

/* --- revoke scaling ----------------------------------------------------- */

/* Time a revoke by memory decoding off (turned on again right after). */
static double time_memory_off(void)
{
	double t = now_us();
	int err = vdb_memory(&l.v, false);

	t = now_us() - t;
	if (err || (err = vdb_memory(&l.v, true)))
		die("PCI_COMMAND through VFIO: %s", strerror(-err));
	return t;
}

static double time_reset(void)
{
	double t = now_us();
	int err = vdb_device_reset(&l.v);

	t = now_us() - t;
	if (err)
		die("VFIO_DEVICE_RESET: %s", strerror(-err));
	return t;
}

static void revoke_scaling(int argc, char **argv, bool rxe)
{
	double toff[REPEAT], treset[REPEAT], t0, t1;
	struct ibv_mr **mrs = NULL;
	struct p2pt_map m;
	struct rc rc = {};
	int *h = NULL;
	char *buf = NULL;
	struct ibv_mr *plain = NULL;
	int a, k, i, n, fd, err, st;

	setup_vfio();
	if (!vdb_reset_works(&l.v))
		die("ivshmem cannot be reset through VFIO");
	fd = vdb_export1(l.v.device, IVSHMEM_BAR, 0, REV_LEN);
	if (fd < 0)
		die("VFIO_DEVICE_FEATURE_DMA_BUF: %s", strerror(-fd));
	if (rxe) {
		err = rc_open(&rc);
		if (err)
			die("rxe0: %s", strerror(-err));
		buf = aligned_alloc(4096, 4096);
		plain = buf ? ibv_reg_mr(rc.pd, buf, 4096, RC_ACCESS) : NULL;
		if (!plain)
			die("plain MR: %s", strerror(errno));
	}
	for (a = 0; a < argc; a++) {
		n = atoi(argv[a]);
		mrs = calloc(n + 1, sizeof(*mrs));
		h = calloc(n + 1, sizeof(*h));
		if (n < 0 || !mrs || !h)
			die("bad importer count %s", argv[a]);
		t0 = now_us();
		for (i = 0; i < n; i++) {
			if (!rxe) {
				h[i] = import_map(fd, &m);
				continue;
			}
			mrs[i] = ibv_reg_dmabuf_mr(rc.pd, 0, REV_LEN, MR_IOVA, fd,
						   IBV_ACCESS_LOCAL_WRITE |
						   IBV_ACCESS_REMOTE_WRITE);
			if (!mrs[i])
				die("MR %d: %s", i, strerror(errno));
		}
		t1 = now_us() - t0;
		for (k = 0; k < 2 * REPEAT; k++) {
			/* Every importer holds a mapping when the revoke comes. */
			for (i = 0; i < n; i++) {
				if (!rxe) {
					if (k && (err = p2pt_map(l.lab.dev, h[i],
							P2PT_DIR_BIDIRECTIONAL, &m)))
						die("map: %s", strerror(-err));
					continue;
				}
				/* One WRITE per MR maps it (rxe maps on access). */
				st = rc_post(&rc, IBV_WR_RDMA_WRITE, plain, buf, MR_IOVA,
					     mrs[i]->rkey, 64);
				if (st != IBV_WC_SUCCESS)
					die("WRITE into MR %d: %s", i, ibv_wc_status_str(st));
			}
			if (k % 2)
				treset[k / 2] = time_reset();
			else
				toff[k / 2] = time_memory_off();
		}
		printf("revoke importers=%d kind=%s attach_us=%.1f memoff_us=%.1f reset_us=%.1f\n",
		       n, rxe ? "rxe_mr" : "test_importer", t1, median(toff, REPEAT),
		       median(treset, REPEAT));
		for (i = 0; i < n; i++) {
			if (rxe)
				ibv_dereg_mr(mrs[i]);
			else
				p2pt_release(l.lab.dev, h[i]);
		}
		free(mrs);
		free(h);
	}
	if (rxe) {
		ibv_dereg_mr(plain);
		free(buf);
		rc_close(&rc);
	}
	close(fd);
	vdb_lab_restore(&l);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "cost"))
		cost();
	else if (argc >= 3 && !strcmp(argv[1], "map"))
		map_scaling(argc - 2, argv + 2);
	else if (argc >= 3 && !strcmp(argv[1], "revoke"))
		revoke_scaling(argc - 2, argv + 2, false);
	else if (argc >= 3 && !strcmp(argv[1], "revoke-rxe"))
		revoke_scaling(argc - 2, argv + 2, true);
	else
		die("usage: dmabuf-bench cost | map N... | revoke K... | revoke-rxe K...");
	return 0;
}
