/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fault injection for the lab kselftests: fail the N-th allocation of the
 * test thread (/proc/thread-self/fail-nth with failslab and fail_page_alloc,
 * sleeping allocations included), and set the debugfs attributes of the
 * fault-injection framework, each restored at teardown. Include after
 * kselftest_harness.h and lab.h.
 */
#ifndef P2P_FINJ_H
#define P2P_FINJ_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEBUGFS			"/sys/kernel/debug"
#define FINJ_MAX_SAVED		24

struct finj {
	struct {
		char path[96];
		char old[32];
	} saved[FINJ_MAX_SAVED];	/* settings to restore */
	unsigned int nr_saved;
	int nth;			/* /proc/thread-self/fail-nth */
};

/*
 * The text of a kernel function: from its address to the next text symbol
 * in /proc/kallsyms, for the fault-injection stack filters. With @prefix
 * set, from the lowest to the end of the highest function whose name
 * starts with @name. 0 or -errno.
 */
static inline int finj_kernel_text(const char *name, bool prefix, unsigned long long *start,
				    unsigned long long *end)
{
	unsigned long long addr, lo = ~0ULL, hi = 0, next = ~0ULL;
	char line[512], type, sym[256];
	size_t len = strlen(name);
	FILE *f;

	f = fopen("/proc/kallsyms", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* Kernel text only: module symbols have a "[module]" field. */
		if (sscanf(line, "%llx %c %255s", &addr, &type, sym) != 3 ||
		    (type != 't' && type != 'T') || strchr(line, '['))
			continue;
		if (prefix ? !strncmp(sym, name, len) : !strcmp(sym, name)) {
			if (addr < lo)
				lo = addr;
			if (addr > hi)
				hi = addr;
		}
	}
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %255s", &addr, &type, sym) == 3 &&
		    addr > hi && addr < next && !strchr(line, '['))
			next = addr;
	}
	fclose(f);
	if (!hi || lo == ~0ULL || next == ~0ULL)
		return -ENOENT;
	*start = lo;
	*end = next;
	return 0;
}

static inline int finj_read_attr(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static inline long finj_read_long(const char *path)
{
	char buf[32];

	return finj_read_attr(path, buf, sizeof(buf)) ? -1 : strtol(buf, NULL, 0);
}

/* Set debugfs attribute @attr (under DEBUGFS) to @val, saving the old value. */
static inline int finj_set_attr(struct finj *fi, const char *attr, const char *val)
{
	char path[96];
	unsigned int i;
	int err;

	snprintf(path, sizeof(path), "%s/%s", DEBUGFS, attr);
	for (i = 0; i < fi->nr_saved; i++)
		if (!strcmp(fi->saved[i].path, path))
			break;
	if (i == fi->nr_saved) {
		if (i == FINJ_MAX_SAVED)
			return -ENOSPC;
		err = finj_read_attr(path, fi->saved[i].old, sizeof(fi->saved[i].old));
		if (err) {
			lab_note("%s: %s", path, strerror(-err));
			return err;
		}
		strcpy(fi->saved[i].path, path);
		fi->nr_saved++;
	}
	err = lab_sysfs_write(path, val);
	if (err)
		lab_note("%s = %s: %s", path, val, strerror(-err));
	return err;
}

/* Put every attribute back; 0 or the first error. */
static inline int finj_restore_attrs(struct finj *fi)
{
	int err, ret = 0;

	while (fi->nr_saved) {
		fi->nr_saved--;
		err = lab_sysfs_write(fi->saved[fi->nr_saved].path,
				      fi->saved[fi->nr_saved].old);
		if (err && !ret)
			ret = err;
	}
	return ret;
}

/*
 * Fault injection for fail-nth: sleeping allocations included, silent, and
 * kept out of DMA-API debugging (reject-start/end: the text of
 * debug_dma_*(), on the stack of its every allocation), which would switch
 * itself off for the rest of the boot when one of its allocations fails.
 * 0 or -errno, with nothing left changed on error.
 */
static inline int finj_setup(struct finj *fi)
{
	static const char * const attrs[] = { "failslab", "fail_page_alloc" };
	unsigned long long start = 0, end = 0;
	char rs[32], re[32], a[64];
	unsigned int i;
	int err;

	memset(fi, 0, sizeof(*fi));
	fi->nth = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	if (fi->nth < 0)
		return -errno;
	err = finj_kernel_text("debug_dma_", true, &start, &end);
	if (err) {
		lab_note("debug_dma_* in /proc/kallsyms: %s", strerror(-err));
		goto fail;
	}
	snprintf(rs, sizeof(rs), "%llu", start);
	snprintf(re, sizeof(re), "%llu", end);
	for (i = 0; i < 2; i++) {
		const char *names[] = { "ignore-gfp-wait", "verbose", "reject-start",
					"reject-end", "min-order" };
		const char *vals[] = { "N", "0", rs, re, "0" };
		unsigned int j;

		/* min-order is fail_page_alloc's only. */
		for (j = 0; j < (i ? 5 : 4); j++) {
			snprintf(a, sizeof(a), "%s/%s", attrs[i], names[j]);
			err = finj_set_attr(fi, a, vals[j]);
			if (err)
				goto fail;
		}
	}
	return 0;
fail:
	finj_restore_attrs(fi);
	close(fi->nth);
	fi->nth = -1;
	return err;
}

static inline int finj_teardown(struct finj *fi)
{
	if (fi->nth >= 0) {
		if (pwrite(fi->nth, "0", 1, 0) != 1)
			lab_note("fail-nth: %s", strerror(errno));
		close(fi->nth);
		fi->nth = -1;
	}
	return finj_restore_attrs(fi);
}

/* Arm fail-nth: the @n-th fault point of this thread fails. */
static inline int finj_arm(struct finj *fi, int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", n);

	return pwrite(fi->nth, buf, len, 0) == len ? 0 : -errno;
}

/* Disarm; the fault points left before the armed one (0: it fired). */
static inline int finj_disarm(struct finj *fi)
{
	char buf[16] = "";
	ssize_t n;

	n = pread(fi->nth, buf, sizeof(buf) - 1, 0);
	if (pwrite(fi->nth, "0", 1, 0) != 1 || n <= 0)
		return -1;
	return atoi(buf);
}

/*
 * A sweep over the fault points of one operation: run it with its first,
 * second, ... fault point failing, until a run passes all of its fault
 * points without reaching the armed one, or @max runs.
 *
 *	finj_sweep_start(&s, fi, max);
 *	while (finj_sweep_next(&s)) {
 *		ret = the operation, nothing else;
 *		ASSERT_LE(0, finj_sweep_end(&s, ret));
 *		... check the success or the failure of run s.n ...
 *	}
 *	ASSERT_EQ(0, s.err);
 */
struct finj_sweep {
	struct finj *fi;
	int max;
	int n;		/* the fault point armed in this run */
	int left;	/* fault points left before it (0: it fired) */
	int points;	/* fault points of the operation, once done */
	int failed;	/* runs in which the operation failed */
	int absorbed;	/* runs that succeeded although the fault fired */
	bool done;	/* a run passed every fault point */
	int err;	/* arming or disarming failed */
};

static inline void finj_sweep_start(struct finj_sweep *s, struct finj *fi, int max)
{
	memset(s, 0, sizeof(*s));
	s->fi = fi;
	s->max = max;
}

/* Arm the next fault point; false when the sweep is over (or s->err). */
static inline bool finj_sweep_next(struct finj_sweep *s)
{
	if (s->done || s->err || s->n >= s->max)
		return false;
	s->err = finj_arm(s->fi, ++s->n);
	return !s->err;
}

/* Disarm and count the run whose operation returned @ret (0 or -errno). */
static inline int finj_sweep_end(struct finj_sweep *s, int ret)
{
	s->left = finj_disarm(s->fi);
	if (s->left < 0) {
		s->err = -EIO;
		return s->err;
	}
	if (ret < 0) {
		s->failed++;
	} else if (s->left > 0) {
		s->done = true;
		s->points = s->n - 1;
	} else {
		s->absorbed++;
	}
	return 0;
}

#endif /* P2P_FINJ_H */
