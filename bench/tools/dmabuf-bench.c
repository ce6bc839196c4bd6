// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-bench: the lab measures behind bench/export-cost and bench/scaling.
 * Runs in the lab with the test module loaded; one line of "key=value"
 * pairs per measure on stdout, for the host scripts.
 *
 *   dmabuf-bench cost [K [STEP]]
 *	ivshmem's whole BAR 2 as dma-bufs exported by vfio-pci: the readings'
 *	noise (nothing done), the first export (vfio-pci's claim of the BAR),
 *	then K (default 1024) dma-bufs of the whole BAR held at once,
 *	exported only, then exported, imported and mapped by the test
 *	importer, one reading after every STEP (64); then the BAR as struct-page P2P memory
 *	(pci_p2pdma_add_resource() through the test module). A reading is the
 *	kernel's exact memory counters against a base (see struct mem).
 *   dmabuf-bench [-r R] map N...
 *	a dma-buf of N 4 KiB ranges of BAR 2 (never adjacent, so nothing
 *	merges; a BAR smaller than N pages repeats them): time to export,
 *	map and unmap it, and the DMA entries of the mapping. R rounds
 *	(default 3) over every N, each starting at another N, one line per
 *	measure.
 *   dmabuf-bench [-r R] revoke K...
 *	one dma-buf of 64 KiB, K test importers each with a mapping: time
 *	of the revoke by memory decoding off (a PCI_COMMAND write through
 *	VFIO) and of VFIO_DEVICE_RESET, R times each, one line per round.
 *   dmabuf-bench [-r R] revoke-rxe K...
 *	the same with K rxe dma-buf MRs, each accessed once (mapped) by an
 *	RDMA WRITE before each revoke.
 *
 * Exit status 0, or 1 with a message on stderr.
 */
#include <sys/resource.h>
#include <time.h>
#include "rxe_rc.h"
#include "vfio_dmabuf_ops.h"
#define TOOL_NAME "dmabuf-bench"
#include "tool.h"

#define MR_IOVA		0x7f0000000000ULL
#define REV_LEN		0x10000
static struct vdb_lab l;
static int repeat = 3;

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

/* --- memory ------------------------------------------------------------- */

/*
 * What the kernel holds, from the counters 6.12 keeps: slab objects
 * (/proc/slabinfo: active objects times object size, summed over caches;
 * objects in a CPU's slab count as active, so single readings move by up to
 * a slab and only a fit over many steps is exact), vmalloc'ed pages, per-CPU
 * areas, kernel stacks, page tables (user, and secondary: IOMMU and KVM),
 * IOMMU page-table pages and the memmap pages allocated for hot-added
 * memory (ZONE_DEVICE included). Free memory, the cross-check that sees
 * every page (kernel page tables too, which no counter has): MemFree plus
 * the pages on the per-CPU lists (/proc/zoneinfo), which MemFree misses.
 */
enum {
	C_MEMFREE, C_FREE, C_SLAB, C_SLAB_OBJ, C_VMALLOC, C_PERCPU, C_KSTACK,
	C_PAGETABLES, C_SECPT, C_IOMMU, C_MEMMAP, NR_C
};
static const char *const cname[NR_C] = {
	[C_MEMFREE] = "memfree_kb",		/* taken: MemFree's drop */
	[C_FREE] = "free_kb",			/* taken: free pages' drop */
	[C_PERCPU] = "percpu_kb",
	[C_KSTACK] = "kernelstack_kb",
	[C_SLAB] = "slab_kb",
	[C_SLAB_OBJ] = "slab_obj_b",
	[C_VMALLOC] = "vmalloc_kb",
	[C_PAGETABLES] = "pagetables_kb",
	[C_SECPT] = "secpagetables_kb",
	[C_IOMMU] = "iommu_pages",
	[C_MEMMAP] = "memmap_pages",
};

struct mem {
	long long c[NR_C];
};

static void read_meminfo(struct mem *m)
{
	static const struct { const char *key; int c; } keys[] = {
		{ "MemFree:", C_MEMFREE }, { "Slab:", C_SLAB },
		{ "VmallocUsed:", C_VMALLOC }, { "PageTables:", C_PAGETABLES },
		{ "SecPageTables:", C_SECPT }, { "Percpu:", C_PERCPU },
		{ "KernelStack:", C_KSTACK },
	};
	char key[64];
	long long val;
	unsigned int i;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		die("/proc/meminfo: %s", strerror(errno));
	while (fscanf(f, "%63s %lld%*[^\n]\n", key, &val) == 2)
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strcmp(key, keys[i].key))
				m->c[keys[i].c] = val;
	fclose(f);
}

static void read_vmstat(struct mem *m)
{
	char key[64];
	long long val;
	FILE *f = fopen("/proc/vmstat", "re");

	if (!f)
		die("/proc/vmstat: %s", strerror(errno));
	while (fscanf(f, "%63s %lld\n", key, &val) == 2) {
		if (!strcmp(key, "nr_iommu_pages"))
			m->c[C_IOMMU] = val;
		else if (!strcmp(key, "nr_memmap_pages"))
			m->c[C_MEMMAP] = val;
	}
	fclose(f);
}

static void read_slabinfo(struct mem *m)
{
	char line[512], name[128];
	long long active, total, size;
	FILE *f = fopen("/proc/slabinfo", "re");

	if (!f)
		die("/proc/slabinfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %lld %lld %lld", name, &active, &total, &size) == 4)
			m->c[C_SLAB_OBJ] += active * size;
	fclose(f);
}

/* Pages on the per-CPU free lists ("count:" of every zone's pagesets), in kB. */
static long long pcp_kb(void)
{
	char line[256];
	long long n, kb = 0;
	FILE *f = fopen("/proc/zoneinfo", "re");

	if (!f)
		die("/proc/zoneinfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " count: %lld", &n) == 1)
			kb += n * (sysconf(_SC_PAGESIZE) / 1024);
	fclose(f);
	return kb;
}

static void mem_read(struct mem *m)
{
	/* Page cache and slab caches that can go, so that they do not move. */
	sync();
	lab_sysfs_write("/proc/sys/vm/drop_caches", "3");
	memset(m, 0, sizeof(*m));
	read_meminfo(m);
	m->c[C_FREE] = m->c[C_MEMFREE] + pcp_kb();
	read_vmstat(m);
	read_slabinfo(m);
}

/* Print @what: its time and what the kernel took since @a (MemFree: its drop). */
static void mem_report(const char *what, const struct mem *a, double us)
{
	struct mem b;
	int i;

	mem_read(&b);
	printf("%s", what);
	if (us >= 0)
		printf(" us=%.1f", us);
	for (i = 0; i < NR_C; i++)
		printf(" %s=%lld", cname[i], i == C_MEMFREE || i == C_FREE ?
		       a->c[i] - b.c[i] : b.c[i] - a->c[i]);
	putchar('\n');
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

#define NULL_READINGS	8
/*
 * IOVA space the mapped dma-bufs may take at once: the test importer's
 * IOMMU domain in the lab ends at 2^39 (AMD's three-level page table).
 */
#define IOVA_BUDGET	(256ULL << 30)

/*
 * Hold @k dma-bufs of the whole BAR at once, each exported and, with
 * @import, imported and mapped by the test importer; one reading after every
 * @step (against @base, taken before the first), then all given back and one more
 * reading, which must be back at @base. The host fits the bytes per dma-buf
 * over the readings.
 */
/*
 * Let what earlier steps left to RCU and to workers go, before a base
 * reading: until free memory holds still for half a second (at most 10 s).
 */
static void settle(void)
{
	struct mem a, b;
	int i;

	mem_read(&a);
	for (i = 0; i < 20; i++) {
		usleep(500000);
		mem_read(&b);
		if (b.c[C_FREE] == a.c[C_FREE])
			return;
		a = b;
	}
}

static void cost_hold(const char *series, int k, int step, bool import)
{
	int *fd = calloc(k, sizeof(*fd)), *h = calloc(k, sizeof(*h));
	double te = 0, ti = 0, tm = 0, t;
	char what[96];
	struct p2pt_map m;
	struct mem base;
	int i, err;

	if (!fd || !h)
		die("out of memory");
	settle();
	mem_read(&base);
	mem_report(series, &base, -1);	/* k = 0 */
	for (i = 0; i < k; i++) {
		if (!strcmp(series, "hold_null")) {
			/* The same readings with nothing done: the noise of a series. */
			fd[i] = -1;
			goto reading;
		}
		t = now_us();
		fd[i] = vdb_export1(l.v.device, IVSHMEM_BAR, 0, l.lab.bar_size);
		te += now_us() - t;
		if (fd[i] < 0)
			die("VFIO_DEVICE_FEATURE_DMA_BUF %d: %s", i, strerror(-fd[i]));
		if (import) {
			t = now_us();
			h[i] = import_map(fd[i], NULL);
			ti += now_us() - t;
			t = now_us();
			err = p2pt_map(l.lab.dev, h[i], P2PT_DIR_BIDIRECTIONAL, &m);
			tm += now_us() - t;
			if (err)
				die("map %d: %s", i, strerror(-err));
		}
reading:
		if ((i + 1) % step && i + 1 != k)
			continue;
		snprintf(what, sizeof(what), "%s k=%d", series, i + 1);
		mem_report(what, &base, -1);
	}
	printf("%s_time k=%d export_us=%.1f import_us=%.1f map_us=%.1f", series, k,
	       te / k, ti / k, tm / k);
	if (import)
		printf(" route=%s nents=%u importer=%s", p2pt_route_name(l.route), m.nents,
		       l.imp);
	putchar('\n');
	for (i = 0; i < k; i++) {
		if (import)
			p2pt_release(l.lab.dev, h[i]);
		if (fd[i] >= 0)
			close(fd[i]);
	}
	/* Files, dentries and inodes go after an RCU grace period. */
	settle();
	snprintf(what, sizeof(what), "%s_released", series);
	mem_report(what, &base, -1);
	free(fd);
	free(h);
}

/* The ioremap areas of at least @size in /proc/vmallocinfo (@when: "before", "after"). */
static void ioremap_areas(const char *when, uint64_t size)
{
	char line[512], caller[128];
	unsigned long long area;
	FILE *f = fopen("/proc/vmallocinfo", "re");

	if (!f)
		die("/proc/vmallocinfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (strstr(line, " ioremap") &&
		    sscanf(line, "%*s %llu %127s", &area, caller) == 2 && area >= size)
			printf("first_export_ioremap when=%s area_b=%llu caller=%s\n", when, area,
			       caller);
	fclose(f);
}

static void cost(int hold, int step)
{
	struct p2pt_p2pmem pm = { .bar = IVSHMEM_BAR };
	struct rlimit fds;
	struct mem a;
	double t;
	int i, fd, err;

	/* One file per dma-buf held, and a few more. */
	if (hold < 1 || step < 1 || getrlimit(RLIMIT_NOFILE, &fds))
		die("bad hold count or step");
	if (fds.rlim_max < (rlim_t)hold + 64)
		fds.rlim_max = hold + 64;	/* root may raise it */
	fds.rlim_cur = fds.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &fds))
		die("cannot hold %d files open: %s", hold + 64, strerror(errno));
	setup_vfio();
	printf("bar bytes=%llu\n", (unsigned long long)l.lab.bar_size);
	/* The readings' noise: nothing done between two readings, then a series. */
	settle();
	for (i = 0; i < NULL_READINGS; i++) {
		mem_read(&a);
		mem_report("null", &a, -1);
	}
	cost_hold("hold_null", hold, step, false);
	/*
	 * The first dma-buf of a BAR claims it for vfio-pci
	 * (vfio_pci_core_setup_barmap()), once for the device's life: what
	 * stays after the dma-buf is closed is that claim.
	 */
	settle();
	ioremap_areas("before", l.lab.bar_size);
	mem_read(&a);
	t = now_us();
	fd = vdb_export1(l.v.device, IVSHMEM_BAR, 0, l.lab.bar_size);
	t = now_us() - t;
	if (fd < 0)
		die("VFIO_DEVICE_FEATURE_DMA_BUF: %s", strerror(-fd));
	close(fd);
	mem_report("first_export", &a, t);
	ioremap_areas("after", l.lab.bar_size);
	cost_hold("hold_export", hold, step, false);
	/* Each mapping takes the BAR's size of the importer's IOVA space. */
	if ((uint64_t)hold * l.lab.bar_size > IOVA_BUDGET) {
		hold = IOVA_BUDGET / l.lab.bar_size;
		step = hold / 16 ? hold / 16 : 1;
	}
	if (hold)
		cost_hold("hold_mapped", hold, step, true);
	vdb_lab_restore(&l);

	err = p2pt_lab_setup(&l.lab);
	if (err)
		die("lab set-up (ivshmem on the test exporter): %s", strerror(-err));
	snprintf(pm.bdf, sizeof(pm.bdf), "%s", l.lab.ivshmem);
	settle();
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
	mem_report("p2pmem_released", &a, t);
	p2pt_lab_restore(&l.lab);
}

/* --- map scaling -------------------------------------------------------- */

/* One export, map and unmap of a dma-buf of @n ranges; one line. */
static void map_once(uint64_t n, uint64_t pages, int rep)
{
	struct vfio_region_dma_range *r = calloc(n, sizeof(*r));
	double te, tm, tu, t;
	struct p2pt_map m;
	int fd, h, err;
	uint64_t i;

	if (!r)
		die("out of memory for %llu ranges", (unsigned long long)n);
	for (i = 0; i < n; i++) {
		r[i].offset = (2 * i % pages) * 4096;
		r[i].length = 4096;
	}
	t = now_us();
	fd = vdb_export(l.v.device, IVSHMEM_BAR, r, n);
	te = now_us() - t;
	if (fd < 0)
		die("export of %llu ranges: %s", (unsigned long long)n, strerror(-fd));
	h = import_map(fd, NULL);
	t = now_us();
	err = p2pt_map(l.lab.dev, h, P2PT_DIR_BIDIRECTIONAL, &m);
	tm = now_us() - t;
	if (err)
		die("map of %llu ranges: %s", (unsigned long long)n, strerror(-err));
	t = now_us();
	err = p2pt_unmap(l.lab.dev, h);
	tu = now_us() - t;
	if (err)
		die("unmap: %s", strerror(-err));
	p2pt_release(l.lab.dev, h);
	close(fd);
	free(r);
	printf("map ranges=%llu rep=%d export_us=%.1f map_us=%.1f unmap_us=%.1f nents=%u route=%s\n",
	       (unsigned long long)n, rep, te, tm, tu, m.nents, p2pt_route_name(l.route));
}

static void map_scaling(int argc, char **argv)
{
	uint64_t pages;
	int k, a;

	setup_vfio();
	pages = l.lab.bar_size / 4096;
	for (a = 0; a < argc; a++)
		if (!strtoull(argv[a], NULL, 0))
			die("bad range count %s", argv[a]);
	/*
	 * Repeats interleaved, each round starting at another count: a drift
	 * of the machine, and what one count leaves to the next, spread over
	 * every count.
	 */
	for (k = 0; k < repeat; k++)
		for (a = 0; a < argc; a++)
			map_once(strtoull(argv[(a + k) % argc], NULL, 0), pages, k);
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
	double toff = 0, treset, t0, t1;
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
		if (n < 0)
			die("bad importer count %s", argv[a]);
		mrs = calloc(n + 1, sizeof(*mrs));
		h = calloc(n + 1, sizeof(*h));
		if (!mrs || !h)
			die("out of memory for %d importers", n);
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
		printf("attach importers=%d kind=%s us=%.1f\n", n,
		       rxe ? "rxe_mr" : "test_importer", t1);
		for (k = 0; k < 2 * repeat; k++) {
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
			if (!(k % 2)) {
				toff = time_memory_off();
				continue;
			}
			treset = time_reset();
			printf("revoke importers=%d kind=%s rep=%d memoff_us=%.1f reset_us=%.1f\n",
			       n, rxe ? "rxe_mr" : "test_importer", k / 2, toff, treset);
		}
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
	if (argc >= 3 && !strcmp(argv[1], "-r")) {
		repeat = atoi(argv[2]);
		if (repeat < 1)
			die("bad repeat count %s", argv[2]);
		argc -= 2;
		argv += 2;
	}
	if (argc >= 2 && !strcmp(argv[1], "cost"))
		cost(argc >= 3 ? atoi(argv[2]) : 1024, argc >= 4 ? atoi(argv[3]) : 64);
	else if (argc >= 3 && !strcmp(argv[1], "map"))
		map_scaling(argc - 2, argv + 2);
	else if (argc >= 3 && !strcmp(argv[1], "revoke"))
		revoke_scaling(argc - 2, argv + 2, false);
	else if (argc >= 3 && !strcmp(argv[1], "revoke-rxe"))
		revoke_scaling(argc - 2, argv + 2, true);
	else
		die("usage: dmabuf-bench cost [K [STEP]] | [-r R] {map N... | revoke K... | revoke-rxe K...}");
	return 0;
}
