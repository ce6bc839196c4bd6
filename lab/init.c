// SPDX-License-Identifier: GPL-2.0
/*
 * lab-init: PID 1 of the lab guest, first stage.
 *
 * Process creation is expensive in the lab (TCG, KASAN, lockdep: about half
 * a second per exec), so everything a boot always needs is done here with
 * plain system calls: the pseudo and tmpfs mounts on the read-only 9p root,
 * the run directory (read-write 9p, mounted at its host path), host name
 * and network links. Then it runs bash on lab/init.sh with LAB_RUN,
 * LAB_MODE and LAB_CPU from the kernel command line (lab.run=, lab.mode=,
 * lab.cpu=) and LAB_TOP (the repository) from its environment, reaps
 * orphans until that script exits, and powers off with reboot(2). PID 1
 * never exits (that would panic the kernel), and nothing but this static
 * binary runs once the devices, the 9p root among them, are shut down.
 *
 * The repository may live under a directory that gets a tmpfs here (a CI
 * checkout in /tmp): it is bind-mounted aside first and moved back on top.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void warn_errno(const char *what, const char *arg)
{
	fprintf(stderr, "lab-init: %s %s: %s\n", what, arg, strerror(errno));
}

static void do_mount(const char *src, const char *dst, const char *type,
		     unsigned long flags, const char *data)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) && errno != EBUSY)
		warn_errno("mount", dst);
}

static void link_up(int sock, const char *name, const char *addr)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (addr) {
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &sin->sin_addr);
		if (ioctl(sock, SIOCSIFADDR, &ifr))
			warn_errno("address", name);
		inet_pton(AF_INET, "255.255.255.0", &sin->sin_addr);
		if (ioctl(sock, SIOCSIFNETMASK, &ifr))
			warn_errno("netmask", name);
	}
	if (ioctl(sock, SIOCGIFFLAGS, &ifr))
		return;		/* no such interface */
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(sock, SIOCSIFFLAGS, &ifr))
		warn_errno("link up", name);
}

/* Value of "key=" on the kernel command line, or "". */
static const char *cmdline_arg(const char *cmdline, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	const char *p = cmdline;

	buf[0] = '\0';
	while ((p = strstr(p, key))) {
		if ((p == cmdline || p[-1] == ' ') && p[klen] == '=') {
			size_t n = strcspn(p + klen + 1, " \n");

			if (n >= len)
				n = len - 1;
			memcpy(buf, p + klen + 1, n);
			buf[n] = '\0';
			break;
		}
		p += klen;
	}
	return buf;
}

/* mkdir -p in a writable place; errors show up at the mount after it. */
static void mkdir_p(const char *path)
{
	char buf[1024];
	char *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	mkdir(buf, 0755);
}

static void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	warn_errno("reboot", "");
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	static const char * const tmpfs_dirs[] = {
		"/tmp", "/run", "/var/tmp", "/var/log", "/root",
	};
	char cmdline[4096] = "", run[1024], mode[64], cpu[64];
	const char *top;
	unsigned int i;
	ssize_t n;
	int fd;

	const char *aside = "/dev/.lab-top";
	char init_sh[1200];
	pid_t child, pid;
	int status;

	if (getpid() != 1) {
		fprintf(stderr, "lab-init: not PID 1\n");
		return 2;
	}
	top = getenv("LAB_TOP");
	if (!top || top[0] != '/') {
		fprintf(stderr, "lab-init: no LAB_TOP=/path on the command line\n");
		power_off();
	}
	snprintf(init_sh, sizeof(init_sh), "%s/lab/init.sh", top);

	do_mount("proc", "/proc", "proc", 0, NULL);
	do_mount("sysfs", "/sys", "sysfs", 0, NULL);
	do_mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	symlink("/proc/self/fd", "/dev/fd");
	symlink("/proc/self/fd/0", "/dev/stdin");
	symlink("/proc/self/fd/1", "/dev/stdout");
	symlink("/proc/self/fd/2", "/dev/stderr");
	do_mount("devpts", "/dev/pts", "devpts", 0, "gid=5,mode=620");
	do_mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777");
	do_mount(top, aside, NULL, MS_BIND | MS_REC, NULL);
	for (i = 0; i < sizeof(tmpfs_dirs) / sizeof(tmpfs_dirs[0]); i++)
		do_mount("tmpfs", tmpfs_dirs[i], "tmpfs", 0, "mode=0755");
	if (access(init_sh, R_OK)) {
		/* Hidden by a tmpfs: put it back at its path. */
		mkdir_p(top);
		if (mount(aside, top, NULL, MS_MOVE, NULL))
			warn_errno("move mount", top);
	} else {
		umount2(aside, MNT_DETACH);
		rmdir(aside);
	}
	chmod("/tmp", 01777);
	chmod("/var/tmp", 01777);
	do_mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);

	fd = open("/proc/cmdline", O_RDONLY);
	if (fd >= 0) {
		n = read(fd, cmdline, sizeof(cmdline) - 1);
		cmdline[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	cmdline_arg(cmdline, "lab.run", run, sizeof(run));
	cmdline_arg(cmdline, "lab.mode", mode, sizeof(mode));
	cmdline_arg(cmdline, "lab.cpu", cpu, sizeof(cpu));
	if (run[0])
		mkdir_p(run);
	if (run[0])
		do_mount("labrun", run, "9p", 0,
			 "trans=virtio,version=9p2000.L,msize=512000,cache=none");

	sethostname("lab", 3);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		link_up(fd, "lo", NULL);
		link_up(fd, "eth0", "10.0.2.15");
		close(fd);
	}

	setenv("LAB_RUN", run, 1);
	setenv("LAB_MODE", mode, 1);
	setenv("LAB_CPU", cpu, 1);
	setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	setenv("HOME", "/root", 1);
	setenv("LANG", "C.UTF-8", 1);
	if (!getenv("TERM"))
		setenv("TERM", "vt220", 1);
	child = fork();
	if (child == 0) {
		execl("/bin/bash", "bash", init_sh, (char *)NULL);
		warn_errno("exec", init_sh);
		_exit(127);
	}
	if (child < 0)
		warn_errno("fork", "");
	/* Reap everything until init.sh itself is gone. */
	while (child > 0) {
		pid = waitpid(-1, &status, 0);
		if (pid == child || (pid < 0 && errno == ECHILD))
			break;
	}
	power_off();
	return 0;
}
