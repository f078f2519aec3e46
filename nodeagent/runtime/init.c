/*
 * orch-init: a container's birth, and exec into a running container.
 *
 * The runtime (a large Python process) posix_spawns this small static
 * binary, which costs it a vfork and an exec instead of a copy of its whole
 * address space per container. Usage:
 *
 *     orch-init init|exec CONFIG_FD
 *
 * CONFIG_FD carries the plan the runtime built (nodeagent/runtime/init.py):
 * NUL-terminated "key=value" entries, read to EOF. Every list key repeats.
 * Every fd named in it is inherited at its number.
 *
 * init: the spawned process I clones C with CLONE_PARENT straight into new
 * mount, uts, ipc, pid and (unless host networking) net namespaces. C is the
 * runtime's own child and PID 1 of its pid namespace. I reports "P<pid>" and
 * exits. C then runs PID 1's checklist: it joins its cgroup, unshares the
 * cgroup namespace, waits for the runtime's "N" (veth attached, bridge mode)
 * and configures the network. Next come the staging tmpfs, overlay, /proc,
 * /sys, /dev, the /etc binds, pivot_root, masked and read-only paths, and the
 * process checklist. It reports "R", waits for "S" (unless start_now) and
 * execs.
 *
 * exec: I joins the container's cgroup and enters PID 1's namespaces (mount
 * last), clones E (CLONE_PARENT, so E lands in the pid namespace as the
 * runtime's child), reports "P<pid>" and exits. E runs the process
 * checklist and execs.
 *
 * Both die with the runtime. The runtime owns what they cannot do without:
 * their output pipes' read ends and their exit status (only a parent can
 * wait for it). So C and E set PR_SET_PDEATHSIG to SIGKILL as the last step
 * before execve (step parent_death): any euid/egid/fsuid change, as the
 * process checklist makes, clears the setting. The runtime may die before
 * that prctl, and a dead parent sends no signal: so I first opens a pidfd
 * for the runtime the plan names and checks it is still its parent
 * (watch_runtime), and C or E, right after the prctl, polls that pidfd and
 * the report pipe without waiting: a readable pidfd, or a report pipe with
 * no reader left (the runtime holds the read end until the exec), means the
 * runtime is gone, and it exits.
 *
 * Any failure writes E{"step", "args", "detail", "errno"} on the report pipe
 * and _exit(127)s: the exec never happens after a failed step. The report
 * pipe is close-on-exec, so EOF after the last message means the exec
 * happened. Step names are the ones the runtime documents (SetupError.step).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define EXIT_SETUP_FAILED 127
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* --- growable buffers and lists ---------------------------------------- */

struct buf {
	char *p;
	size_t n, cap;
};

static void die_oom(void) { _exit(EXIT_SETUP_FAILED); }

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			die_oom();
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A JSON string literal of s. */
static void buf_json(struct buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\') {
			char esc[2] = {'\\', (char)*c};
			buf_add(b, esc, 2);
		} else if (*c < 0x20) {
			buf_printf(b, "\\u%04x", *c);
		} else {
			buf_add(b, (const char *)c, 1);
		}
	}
	buf_add(b, "\"", 1);
}

struct list {
	char **v;
	size_t n, cap;
};

static void list_push(struct list *l, char *s)
{
	if (l->n + 2 > l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = realloc(l->v, l->cap * sizeof(char *));
		if (!l->v)
			die_oom();
	}
	l->v[l->n++] = s;
	l->v[l->n] = NULL;
}

/* --- the plan ------------------------------------------------------------ */

struct plan {
	/* process (both modes) */
	struct list args, env, capdrop, rlimits;
	const char *cwd, *user, *seccomp_hex;
	unsigned long long capmask;
	int nnp, stdio[3], report;
	/* init */
	unsigned long flags;
	int control, start_now, cgroupns, readonly;
	struct list cgfiles, masked, ro, etc; /* etc: "name=content" */
	const char *net, *ifname, *address, *netmask, *gateway;
	const char *staging, *overlay, *hostname;
	/* exec */
	int target;
	/* both: the runtime's pid (0: not watched) and, once open, its pidfd */
	int runtime, runtime_fd;
};

static struct plan P = {.stdio = {-1, -1, -1}, .report = -1, .control = -1, .runtime_fd = -1};

/* --- reporting ----------------------------------------------------------- */

static void report_raw(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(P.report, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Report a failed step and end. args_json is a JSON value or NULL. */
static void fail(const char *step, const char *args_json, const char *detail, int err)
{
	struct buf b = {0};
	buf_str(&b, "E{\"step\": ");
	buf_json(&b, step);
	buf_str(&b, ", \"args\": ");
	buf_str(&b, args_json ? args_json : "null");
	buf_str(&b, ", \"detail\": ");
	buf_json(&b, detail && *detail ? detail : "failed");
	buf_printf(&b, ", \"errno\": %d}\n", err);
	report_raw(b.p, b.n);
	_exit(EXIT_SETUP_FAILED);
}

/* A failed call: args describes it, errno says why. */
static void fail_call(const char *step, const char *fmt, ...)
{
	int err = errno;
	char call[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(call, sizeof(call), fmt, ap);
	va_end(ap);
	struct buf a = {0};
	buf_json(&a, call);
	char detail[256];
	snprintf(detail, sizeof(detail), "[Errno %d] %s", err, strerror(err));
	fail(step, a.p, detail, err);
}

/* A failed step on one named object: {"key": value}. */
static void fail_on(const char *step, const char *key, const char *value, int err)
{
	struct buf a = {0};
	buf_str(&a, "{");
	buf_json(&a, key);
	buf_str(&a, ": ");
	buf_json(&a, value);
	buf_str(&a, "}");
	fail(step, a.p, strerror(err), err);
}

static void report_line(const char *fmt, ...)
{
	char line[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	report_raw(line, (size_t)n);
}

/* --- reading the plan ---------------------------------------------------- */

static char *read_all(int fd, size_t *len)
{
	struct buf b = {0};
	char chunk[65536];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		buf_add(&b, chunk, (size_t)r);
	}
	*len = b.n;
	return b.p ? b.p : calloc(1, 1);
}

static unsigned long long num(const char *s) { return strtoull(s, NULL, 0); }

static void parse_plan(char *data, size_t len)
{
	for (char *e = data, *next; e < data + len; e = next) {
		next = e + strlen(e) + 1;
		char *v = strchr(e, '=');
		if (!v)
			continue;
		*v++ = '\0';
		if (!strcmp(e, "arg")) list_push(&P.args, v);
		else if (!strcmp(e, "env")) list_push(&P.env, v);
		else if (!strcmp(e, "capdrop")) list_push(&P.capdrop, v);
		else if (!strcmp(e, "rlimit")) list_push(&P.rlimits, v);
		else if (!strcmp(e, "cgfile")) list_push(&P.cgfiles, v);
		else if (!strcmp(e, "masked")) list_push(&P.masked, v);
		else if (!strcmp(e, "ro")) list_push(&P.ro, v);
		else if (!strcmp(e, "etc")) list_push(&P.etc, v);
		else if (!strcmp(e, "cwd")) P.cwd = v;
		else if (!strcmp(e, "user")) P.user = v;
		else if (!strcmp(e, "seccomp")) P.seccomp_hex = v;
		else if (!strcmp(e, "capmask")) P.capmask = num(v);
		else if (!strcmp(e, "nnp")) P.nnp = (int)num(v);
		else if (!strcmp(e, "stdin")) P.stdio[0] = (int)strtol(v, NULL, 10);
		else if (!strcmp(e, "stdout")) P.stdio[1] = (int)strtol(v, NULL, 10);
		else if (!strcmp(e, "stderr")) P.stdio[2] = (int)strtol(v, NULL, 10);
		else if (!strcmp(e, "report")) P.report = (int)num(v);
		else if (!strcmp(e, "flags")) P.flags = (unsigned long)num(v);
		else if (!strcmp(e, "control")) P.control = (int)num(v);
		else if (!strcmp(e, "start_now")) P.start_now = (int)num(v);
		else if (!strcmp(e, "cgroupns")) P.cgroupns = (int)num(v);
		else if (!strcmp(e, "readonly")) P.readonly = (int)num(v);
		else if (!strcmp(e, "net")) P.net = v;
		else if (!strcmp(e, "ifname")) P.ifname = v;
		else if (!strcmp(e, "address")) P.address = v;
		else if (!strcmp(e, "netmask")) P.netmask = v;
		else if (!strcmp(e, "gateway")) P.gateway = v;
		else if (!strcmp(e, "staging")) P.staging = v;
		else if (!strcmp(e, "overlay")) P.overlay = v;
		else if (!strcmp(e, "hostname")) P.hostname = v;
		else if (!strcmp(e, "target")) P.target = (int)num(v);
		else if (!strcmp(e, "runtime")) P.runtime = (int)num(v);
	}
	if (!P.cwd) P.cwd = "/";
	if (!P.user) P.user = "";
}

/* --- small helpers ------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
	struct buf p = {0};
	buf_str(&p, a);
	if (p.n == 0 || p.p[p.n - 1] != '/')
		buf_str(&p, "/");
	buf_str(&p, b[0] == '/' ? b + 1 : b);
	return p.p;
}

static void do_mount(const char *step, const char *src, const char *target, const char *type,
		     unsigned long flags, const char *data)
{
	if (mount(src, target, type, flags, data) < 0)
		fail_call(step, "mount(%s, %s, %s, 0x%lx, %s)", src ? src : "None", target,
			  type ? type : "None", flags, data ? data : "None");
}

static void write_file(const char *step, const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_call(step, "open(%s)", path);
	if (n && write(fd, data, n) != (ssize_t)n)
		fail_call(step, "write(%s)", path);
	close(fd);
}

static void make_dir(const char *step, const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0)
		fail_call(step, "mkdir(%s)", path);
}

/* --- PID 1's checklist --------------------------------------------------- */

/* Close every inherited fd but ours (stdio targets, the pipes). */
static void close_inherited(void)
{
	int keep[8], n = 0;
	int cand[] = {P.report, P.control, P.stdio[0], P.stdio[1], P.stdio[2], P.runtime_fd};
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		if (cand[i] < 3)
			continue;
		int dup = 0;
		for (int j = 0; j < n; j++)
			dup |= keep[j] == cand[i];
		if (!dup)
			keep[n++] = cand[i];
	}
	for (int i = 1; i < n; i++) /* insertion sort */
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	unsigned int low = 3;
	for (int i = 0; i < n; i++) {
		if ((unsigned int)keep[i] > low)
			syscall(SYS_close_range, low, keep[i] - 1, 0);
		low = keep[i] + 1;
	}
	syscall(SYS_close_range, low, ~0U, 0);
	/* The report and control pipes close at exec; spawn's dup2 cleared that. */
	if (P.report >= 0)
		fcntl(P.report, F_SETFD, FD_CLOEXEC);
	if (P.control >= 0)
		fcntl(P.control, F_SETFD, FD_CLOEXEC);
}

static void join_cgroup(void)
{
	for (size_t i = 0; i < P.cgfiles.n; i++) {
		int fd = open(P.cgfiles.v[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			fail_call("join_cgroup", "open/write(%s)", P.cgfiles.v[i]);
		close(fd);
	}
}

static void expect(const char *step, char message)
{
	char got = 0;
	ssize_t r;
	do
		r = read(P.control, &got, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1 || got != message) {
		/* EOF: the runtime went away or gave up on this container. */
		char detail[96];
		snprintf(detail, sizeof(detail), "expected '%c' from the runtime, got %s", message,
			 r == 1 ? "another byte" : "EOF");
		fail(step, NULL, detail, 0);
	}
}

static void link_up(int sock, const char *step, const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		fail_on(step, "ifname", name, errno);
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
			fail_on(step, "ifname", name, errno);
	}
}

static void set_inet(struct sockaddr *sa, const char *ip)
{
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &in->sin_addr);
}

static void if_ioctl(int sock, unsigned long request, const char *step, const char *ip,
		     const char *key)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, P.ifname, IFNAMSIZ - 1);
	set_inet(&ifr.ifr_addr, ip);
	if (ioctl(sock, request, &ifr) < 0) {
		int err = errno;
		struct buf a = {0};
		buf_str(&a, "{\"ifname\": ");
		buf_json(&a, P.ifname);
		buf_printf(&a, ", \"%s\": ", key);
		buf_json(&a, ip);
		buf_str(&a, "}");
		fail(step, a.p, strerror(err), err);
	}
}

/* Turn IPv6 off on the container's interface before it is up. A kernel
 * without IPv6 has nothing to turn off. */
static void disable_ipv6(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return;
		fail_on("disable_ipv6", "ifname", name, errno);
	}
	if (write(fd, "1", 1) != 1)
		fail_on("disable_ipv6", "ifname", name, errno);
	close(fd);
}

/* lo up; in bridge mode also eth0's address, eth0 up and the default route. */
static void configure_network(void)
{
	if (!P.net || !strcmp(P.net, "host"))
		return;
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		fail_call("configure_network", "socket(AF_INET, SOCK_DGRAM)");
	link_up(sock, "loopback_up", "lo");
	if (!strcmp(P.net, "bridge")) {
		disable_ipv6(P.ifname);
		if_ioctl(sock, SIOCSIFADDR, "eth0_address", P.address, "address");
		if_ioctl(sock, SIOCSIFNETMASK, "eth0_netmask", P.netmask, "netmask");
		link_up(sock, "eth0_up", P.ifname);
		struct rtentry rt;
		memset(&rt, 0, sizeof(rt));
		set_inet(&rt.rt_dst, "0.0.0.0");
		set_inet(&rt.rt_gateway, P.gateway);
		set_inet(&rt.rt_genmask, "0.0.0.0");
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		if (ioctl(sock, SIOCADDRT, &rt) < 0)
			fail_on("default_route", "gateway", P.gateway, errno);
	}
	close(sock);
}

static char *rootfs_dir(void) { return join(P.staging, "root"); }

static const char *const ETC_FILES[] = {"hosts", "hostname", "resolv.conf"};
static const char *const MOUNTPOINT_DIRS[] = {"proc", "sys", "dev", "etc"};

static const char *etc_content(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < P.etc.n; i++)
		if (!strncmp(P.etc.v[i], name, n) && P.etc.v[i][n] == '=')
			return P.etc.v[i] + n + 1;
	return "";
}

/* The staging tmpfs: init layer, generated /etc files, overlay mountpoint. */
static void mount_staging(void)
{
	const char *step = "mount_staging";
	do_mount(step, "tmpfs", P.staging, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m");
	char *init = join(P.staging, "init");
	make_dir(step, rootfs_dir(), 0755);
	make_dir(step, init, 0755);
	for (size_t i = 0; i < 4; i++)
		make_dir(step, join(init, MOUNTPOINT_DIRS[i]), 0755);
	char *etc = join(init, "etc");
	for (size_t i = 0; i < 3; i++) {
		write_file(step, join(etc, ETC_FILES[i]), "", 0);
		const char *content = etc_content(ETC_FILES[i]);
		write_file(step, join(P.staging, ETC_FILES[i]), content, strlen(content));
	}
}

static void mount_dev(void)
{
	const char *step = "mount_dev";
	static const struct { const char *name; int major, minor; } devices[] = {
		{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
		{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
	};
	static const char *const links[][2] = {
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	};
	char *dev = join(rootfs_dir(), "dev");
	do_mount(step, "tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
	mode_t old = umask(0);
	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
		char *path = join(dev, devices[i].name);
		if (mknod(path, 0666 | S_IFCHR, makedev(devices[i].major, devices[i].minor)) < 0)
			fail_call(step, "mknod(%s)", path);
	}
	make_dir(step, join(dev, "pts"), 0755);
	make_dir(step, join(dev, "shm"), 01777);
	umask(old);
	do_mount(step, "devpts", join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
		 "newinstance,ptmxmode=0666,mode=0620,gid=5");
	do_mount(step, "shm", join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV,
		 "mode=1777,size=65536k");
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		char *path = join(dev, links[i][1]);
		if (symlink(links[i][0], path) < 0)
			fail_call(step, "symlink(%s, %s)", links[i][0], path);
	}
}

static void build_rootfs(void)
{
	char *root = rootfs_dir();
	mount_staging();
	do_mount("mount_rootfs", "overlay", root, "overlay", 0, P.overlay);
	do_mount("mount_proc", "proc", join(root, "proc"), "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV,
		 NULL);
	do_mount("mount_sysfs", "sysfs", join(root, "sys"), "sysfs",
		 MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, NULL);
	mount_dev();
	for (size_t i = 0; i < 3; i++)
		do_mount("bind_etc_files", join(P.staging, ETC_FILES[i]),
			 join(join(root, "etc"), ETC_FILES[i]), NULL, MS_BIND, NULL);
	const char *host = P.hostname ? P.hostname : "";
	if (sethostname(host, strlen(host)) < 0)
		fail_call("sethostname", "sethostname(%s)", host);
	/* pivot_root(".", ".") stacks the old root on the new one; detaching it
	 * leaves only the container's tree: the host is unreachable from here. */
	if (chdir(root) < 0)
		fail_call("pivot_root", "chdir(%s)", root);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail_call("pivot_root", "pivot_root(., .)");
	if (umount2(".", MNT_DETACH) < 0)
		fail_call("pivot_root", "umount2(., MNT_DETACH)");
	if (chdir("/") < 0)
		fail_call("pivot_root", "chdir(/)");
	for (size_t i = 0; i < P.masked.n; i++) {
		const char *path = P.masked.v[i];
		struct stat st;
		if (stat(path, &st) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			fail_call("masked_paths", "stat(%s)", path);
		}
		if (S_ISDIR(st.st_mode))
			do_mount("masked_paths", "tmpfs", path, "tmpfs", MS_RDONLY, "size=0");
		else
			do_mount("masked_paths", "/dev/null", path, NULL, MS_BIND, NULL);
	}
	for (size_t i = 0; i < P.ro.n; i++) {
		const char *path = P.ro.v[i];
		if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			fail_call("readonly_paths", "mount(%s, %s, None, MS_BIND|MS_REC)", path, path);
		}
		do_mount("readonly_paths", path, path, NULL, MS_BIND | MS_REC | MS_REMOUNT | MS_RDONLY,
			 NULL);
	}
	if (P.readonly)
		do_mount("readonly_rootfs", NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
}

/* --- users: the container's own /etc/passwd and /etc/group --------------- */

/* Lines of a colon file, each split into fields (NULL-terminated). */
struct db {
	char ***rows;
	size_t n;
};

static struct db read_db(const char *path)
{
	struct db db = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return db;
	size_t len;
	char *text = read_all(fd, &len);
	close(fd);
	size_t cap = 0;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t l = strlen(line);
		if (l && line[l - 1] == '\r')
			line[--l] = '\0';
		int blank = 1;
		for (char *c = line; *c; c++)
			blank &= *c == ' ' || *c == '\t';
		if (blank || line[0] == '#')
			continue;
		struct list fields = {0};
		for (char *f = line;;) {
			char *colon = strchr(f, ':');
			list_push(&fields, f);
			if (!colon)
				break;
			*colon = '\0';
			f = colon + 1;
		}
		if (db.n + 1 > cap) {
			cap = cap ? cap * 2 : 64;
			db.rows = realloc(db.rows, cap * sizeof(char **));
			if (!db.rows)
				die_oom();
		}
		db.rows[db.n++] = fields.v;
	}
	return db;
}

static size_t nfields(char **row)
{
	size_t n = 0;
	while (row[n])
		n++;
	return n;
}

static int is_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static char **lookup(struct db *db, const char *key, size_t min_fields)
{
	int numeric = is_digits(key);
	for (size_t i = 0; i < db->n; i++) {
		char **row = db->rows[i];
		if (nfields(row) >= min_fields && !strcmp(numeric ? row[2] : row[0], key))
			return row;
	}
	return NULL;
}

struct resolved {
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	size_t ngroups;
	const char *home;
};

static void not_found(const char *what, const char *name, const char *path)
{
	struct buf a = {0}, d = {0};
	buf_json(&a, P.user);
	buf_printf(&d, "%s '%s': no matching entries in %s", what, name, path);
	fail("resolve_user", a.p, d.p, 0);
}

/* key's entry (a name or a number) in db, and its id (field 2) in *id; for
 * a number the file lacks, NULL and the number itself. */
static char **find_id(struct db *db, const char *key, size_t min_fields, const char *what,
		      const char *path, unsigned long *id)
{
	char **row = lookup(db, key, min_fields);
	if (!row && !is_digits(key))
		not_found(what, key, path);
	*id = strtoul(row ? row[2] : key, NULL, 10);
	return row;
}

/* Docker's forms: "", uid, uid:gid, name, name:group (either side numeric
 * or a name). A name not in the files is an error; a number need not be. */
static struct resolved resolve_user(void)
{
	struct resolved r = {.home = "/"};
	char *spec = strdup(*P.user ? P.user : "0");
	char *group = strchr(spec, ':');
	if (group)
		*group++ = '\0';
	const char *name = "";
	unsigned long id;
	struct db users = read_db("/etc/passwd");
	char **entry = find_id(&users, spec, 6, "user", "/etc/passwd", &id);
	r.uid = (uid_t)id;
	if (entry) {
		r.gid = (gid_t)strtoul(entry[3], NULL, 10);
		name = entry[0];
		r.home = *entry[5] ? entry[5] : "/";
	}
	struct db groups = read_db("/etc/group");
	if (group && *group) {
		find_id(&groups, group, 3, "group", "/etc/group", &id);
		r.gid = (gid_t)id;
	}
	r.groups[r.ngroups++] = r.gid;
	if (*name && !(group && *group)) {
		for (size_t i = 0; i < groups.n && r.ngroups < 64; i++) {
			char **g = groups.rows[i];
			if (nfields(g) < 4 || !is_digits(g[2]))
				continue;
			char *members = strdup(g[3]), *save = NULL;
			for (char *m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
				if (strcmp(m, name))
					continue;
				gid_t gid = (gid_t)strtoul(g[2], NULL, 10);
				int seen = 0;
				for (size_t k = 0; k < r.ngroups; k++)
					seen |= r.groups[k] == gid;
				if (!seen)
					r.groups[r.ngroups++] = gid;
				break;
			}
		}
	}
	return r;
}

/* --- the process checklist (both modes) ---------------------------------- */

static const char *env_get(const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < P.env.n; i++)
		if (!strncmp(P.env.v[i], key, n) && P.env.v[i][n] == '=')
			return P.env.v[i] + n + 1;
	return NULL;
}

static void connect_stdio(void)
{
	/* Move every source above the others first, so swapped fds survive. */
	int null = -1, sources[3];
	for (int i = 0; i < 3; i++) {
		int fd = P.stdio[i];
		if (fd < 0) {
			if (null < 0 && (null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
				fail_call("stdio", "open(/dev/null)");
			fd = null;
		}
		if (fd < 3 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
			fail_call("stdio", "dup(%d)", P.stdio[i]);
		sources[i] = fd;
	}
	for (int i = 0; i < 3; i++)
		if (dup2(sources[i], i) < 0)
			fail_call("stdio", "dup2(%d, %d)", sources[i], i);
}

static void load_seccomp(void)
{
	const char *hex = P.seccomp_hex;
	size_t n = strlen(hex) / 2;
	if (n % sizeof(struct sock_filter))
		fail("seccomp", NULL, "seccomp program is not whole instructions", 0);
	unsigned char *code = malloc(n ? n : 1);
	if (!code)
		die_oom();
	for (size_t i = 0; i < n; i++) {
		unsigned int byte;
		sscanf(hex + 2 * i, "%2x", &byte);
		code[i] = (unsigned char)byte;
	}
	struct sock_fprog prog = {
		.len = (unsigned short)(n / sizeof(struct sock_filter)),
		.filter = (struct sock_filter *)code,
	};
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		fail_call("seccomp", "prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, <%u insns>)", prog.len);
}

/* execvpe with PATH from the container's env, as Python's os.execvpe: the
 * first error that is not "not found" wins, else the last. */
static void exec_process(void)
{
	const char *file = P.args.v[0];
	int saved = 0, last = ENOENT;
	if (strchr(file, '/')) {
		execve(file, P.args.v, P.env.v);
		last = errno;
	} else {
		const char *path = env_get("PATH");
		char *dirs = strdup(path ? path : ":/bin:/usr/bin");
		for (char *d = dirs, *next; d; d = next) {
			next = strchr(d, ':');
			if (next)
				*next++ = '\0';
			char *full = *d ? join(d, file) : (char *)file;
			execve(full, P.args.v, P.env.v);
			last = errno;
			if (!saved && errno != ENOENT && errno != ENOTDIR)
				saved = errno;
		}
	}
	int err = saved ? saved : last;
	struct buf a = {0};
	buf_str(&a, "[");
	for (size_t i = 0; i < P.args.n; i++) {
		if (i)
			buf_str(&a, ", ");
		buf_json(&a, P.args.v[i]);
	}
	buf_str(&a, "]");
	fail("exec", a.p, strerror(err), err);
}

/* Order matters: the bounding set is dropped and seccomp loaded while we
 * still have CAP_SYS_ADMIN (loading without no_new_privs needs it); groups
 * and gid before uid; PR_SET_KEEPCAPS around setuid so capset can restore
 * the permitted set for root and non-root alike (execve then clears a
 * non-root user's capabilities, as in Docker). */
static void finalize(void)
{
	for (size_t i = 0; i < P.rlimits.n; i++) {
		unsigned long long n, soft, hard;
		if (sscanf(P.rlimits.v[i], "%llu:%llu:%llu", &n, &soft, &hard) != 3)
			fail("rlimits", NULL, "bad rlimit entry", 0);
		struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};
		if (setrlimit((int)n, &rl) < 0)
			fail_call("rlimits", "setrlimit(%llu, %llu, %llu)", n, soft, hard);
	}
	struct resolved user = resolve_user();
	if (!env_get("HOME")) {
		struct buf home = {0};
		buf_str(&home, "HOME=");
		buf_str(&home, user.home);
		list_push(&P.env, home.p);
	}
	if (chdir(P.cwd) < 0) {
		/* Docker creates a missing workdir. */
		if (errno != ENOENT)
			fail_call("cwd", "chdir(%s)", P.cwd);
		char *path = strdup(P.cwd);
		for (char *s = path + 1; *s; s++) {
			if (*s != '/')
				continue;
			*s = '\0';
			if (mkdir(path, 0755) < 0 && errno != EEXIST)
				fail_call("cwd", "mkdir(%s)", path);
			*s = '/';
		}
		if ((mkdir(path, 0755) < 0 && errno != EEXIST) || chdir(path) < 0)
			fail_call("cwd", "mkdir/chdir(%s)", path);
	}
	connect_stdio();
	for (size_t i = 0; i < P.capdrop.n; i++) {
		int cap = (int)num(P.capdrop.v[i]);
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			fail_call("drop_bounding_caps", "prctl(PR_CAPBSET_DROP, %d)", cap);
	}
	if (P.nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail_call("no_new_privs", "prctl(PR_SET_NO_NEW_PRIVS, 1)");
	if (P.seccomp_hex)
		load_seccomp();
	if (setgroups(user.ngroups, user.groups) < 0)
		fail_call("setgroups", "setgroups(<%zu groups>)", user.ngroups);
	if (setresgid(user.gid, user.gid, user.gid) < 0)
		fail_call("setgroups", "setresgid(%u)", user.gid);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setresuid(user.uid, user.uid, user.uid) < 0 ||
	    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail_call("setuid", "setresuid(%u)", user.uid);
	struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	for (int i = 0; i < 2; i++) {
		uint32_t word = (uint32_t)(P.capmask >> (32 * i));
		data[i].effective = data[i].permitted = data[i].inheritable = word;
	}
	if (syscall(SYS_capset, &header, data) < 0)
		fail_call("capset", "capset(0x%llx)", P.capmask);
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		fail_call("close_fds", "close_range(3, ~0, CLOSE_RANGE_CLOEXEC)");
}

/* --- dying with the runtime ---------------------------------------------- */

/* In I, before it clones: a pidfd for the runtime the plan names, which
 * must still be I's parent (it spawned I). A pidfd opened before the check
 * cannot name a later process that reused the pid: the check shows the
 * runtime was alive, as I's parent, after the open. The fd is kept above
 * 0..2 (those become the process's stdio) and closes at exec. */
static void watch_runtime(void)
{
	if (P.runtime <= 0)
		return;
	char detail[128];
	int fd = (int)syscall(SYS_pidfd_open, P.runtime, 0);
	if (fd < 0 && errno == ESRCH) {
		snprintf(detail, sizeof(detail), "the runtime (pid %d) is gone", P.runtime);
		fail("watch_runtime", NULL, detail, ESRCH);
	}
	if (fd < 0)
		fail_call("watch_runtime", "pidfd_open(%d)", P.runtime);
	if (fd < 3) {
		int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (high < 0)
			fail_call("watch_runtime", "fcntl(%d, F_DUPFD_CLOEXEC, 3)", fd);
		close(fd);
		fd = high;
	}
	pid_t parent = getppid();
	if (parent != P.runtime) {
		snprintf(detail, sizeof(detail), "the runtime (pid %d) is gone: orch-init's parent is %d",
			 P.runtime, (int)parent);
		fail("watch_runtime", NULL, detail, ESRCH);
	}
	P.runtime_fd = fd;
}

/* In C or E, the last step before execve (after every credential change,
 * which would clear it): SIGKILL when the runtime dies. If the runtime died
 * before the prctl, no signal will come; then its pidfd is readable, or the
 * report pipe has lost its only reader (an exiting process closes its files
 * before it signals its children, so a prctl too late for the signal finds
 * the pipe so), and the process ends here instead of running unowned. */
static void parent_death(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail_call("parent_death", "prctl(PR_SET_PDEATHSIG, SIGKILL)");
	struct pollfd pfd[2] = {{.fd = P.runtime_fd, .events = POLLIN}, {.fd = P.report}};
	int r;
	do
		r = poll(pfd, 2, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail_call("parent_death", "poll(pidfd of %d, report pipe)", P.runtime);
	char detail[96];
	if (pfd[0].revents & (POLLIN | POLLHUP)) {
		snprintf(detail, sizeof(detail), "the runtime (pid %d) exited", P.runtime);
		fail("parent_death", NULL, detail, ESRCH);
	}
	if (pfd[1].revents & POLLERR) {
		snprintf(detail, sizeof(detail), "the runtime (pid %d) closed the report pipe", P.runtime);
		fail("parent_death", NULL, detail, EPIPE);
	}
}

/* --- the two modes ------------------------------------------------------- */

/* Clone onto the runtime (CLONE_PARENT) and report the child's pid; the
 * caller, the spawned process, then exits. Returns only in the child. */
static void clone_child(unsigned long flags, const char *step)
{
	long pid = syscall(SYS_clone, flags | CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		fail_call(step, "clone(0x%lx)", flags);
	if (pid > 0) {
		report_line("P%ld\n", pid);
		_exit(0);
	}
}

static void container_init(void)
{
	clone_child(P.flags, "clone");
	close_inherited();
	join_cgroup();
	if (P.cgroupns && unshare(CLONE_NEWCGROUP) < 0)
		fail_call("cgroup_namespace", "unshare(CLONE_NEWCGROUP)");
	do_mount("make_root_private", NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (P.net && !strcmp(P.net, "bridge"))
		expect("wait_network", 'N');
	configure_network();
	build_rootfs();
	finalize();
	if (!P.start_now) {
		report_line("R\n");
		expect("wait_start", 'S');
	}
	parent_death();
	exec_process();
}

static void enter_container(void)
{
	static const char *const order[][2] = {
		{"ipc", "ipc"}, {"uts", "uts"}, {"net", "net"},
		{"pid", "pid"}, {"cgroup", "cgroup"}, {"mount", "mnt"},
	};
	int fds[6];
	join_cgroup();
	/* Open them all first: /proc stops resolving once in the mount ns. */
	for (int i = 0; i < 6; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", P.target, order[i][1]);
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			fail_call("open_namespace", "open(%s)", path);
	}
	for (int i = 0; i < 6; i++) {
		char step[32];
		snprintf(step, sizeof(step), "setns_%s", order[i][0]);
		if (setns(fds[i], 0) < 0)
			fail_call(step, "setns(%d)", fds[i]);
		close(fds[i]);
	}
	clone_child(0, "fork");
	finalize();
	parent_death();
	exec_process();
}

/* Every disposition to the default and nothing blocked: an ignored signal
 * stays ignored across execve, and the runtime's process ignores some
 * (Python: SIGPIPE; glibc's spawn: its internal ones, which its sigaction
 * refuses to touch, hence the raw call). A zeroed kernel sigaction is
 * SIG_DFL with no flags on every architecture. */
static void reset_signals(void)
{
	static const char dfl[64];
	static const unsigned long empty[2];
	for (int sig = 1; sig < 65; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, dfl, NULL, 8);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, empty, NULL, 8);
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "init") && strcmp(argv[1], "exec"))) {
		fprintf(stderr, "usage: orch-init init|exec CONFIG_FD (run by the orch runtime)\n");
		return 2;
	}
	int cfg = atoi(argv[2]);
	size_t len;
	char *data = read_all(cfg, &len);
	close(cfg);
	parse_plan(data, len);
	if (P.report < 0 || P.args.n == 0) {
		fprintf(stderr, "orch-init: the plan lacks a report fd or arguments\n");
		return 2;
	}
	fcntl(P.report, F_SETFD, FD_CLOEXEC);
	reset_signals();
	watch_runtime();
	if (!strcmp(argv[1], "init"))
		container_init();
	else
		enter_container();
	return EXIT_SETUP_FAILED;
}
