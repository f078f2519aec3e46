/* The container's root, built by PID 1 in its mount namespace: the staging
 * tmpfs (init layer, generated /etc files, the binds' mountpoints), the
 * overlay, /proc, /sys, /dev, the /etc binds, the plan's binds (a task's
 * secrets and configs) and the hostname; then pivot_root, masked and
 * read-only paths, and a read-only root if asked for
 * (nodeagent/runtime/rootfs.py plans it). */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

void do_mount(const char *step, const char *src, const char *target, const char *type,
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

static char *rootfs_dir(void) { return join(P.staging, "root"); }

/* A mount of the plan: "SOURCE\tTARGET\tro|rw[\tKIND[\tDATA]]". KIND: none, a
 * secret's bind (read-only also nosuid, nodev, noexec); "rbind", a user's
 * bind or volume (recursive; read-only is just that, as Docker's); "tmpfs",
 * a new tmpfs with DATA as its mount data (SOURCE unused). */
enum bind_kind { BIND_SECRET, BIND_RBIND, BIND_TMPFS };

struct bind {
	const char *source, *target, *data;
	int readonly;
	enum bind_kind kind;
};

/* The plan's binds, split once (in place) on first use. */
static struct bind *binds(void)
{
	static struct bind *parsed;
	if (parsed || !P.binds.n)
		return parsed;
	parsed = calloc(P.binds.n, sizeof(*parsed));
	if (!parsed)
		die_oom();
	for (size_t i = 0; i < P.binds.n; i++) {
		char *entry = P.binds.v[i];
		struct bind *b = &parsed[i];
		char *tab = strchr(entry, '\t');
		if (!tab)
			fail_on("bind_mounts", "bind", entry, EINVAL);
		*tab = '\0';
		b->source = entry;
		b->target = tab + 1;
		b->readonly = 1;
		tab = strchr(tab + 1, '\t');
		if (tab) {
			*tab = '\0';
			char *kind = strchr(tab + 1, '\t');
			if (kind) {
				*kind++ = '\0';
				char *data = strchr(kind, '\t');
				if (data)
					*data++ = '\0';
				b->data = data;
				if (!strcmp(kind, "rbind"))
					b->kind = BIND_RBIND;
				else if (!strcmp(kind, "tmpfs"))
					b->kind = BIND_TMPFS;
				else
					fail_on("bind_mounts", "kind", kind, EINVAL);
			}
			b->readonly = strcmp(tab + 1, "rw") != 0;
		}
		if (b->target[0] != '/' || b->source[0] != '/')
			fail_on("bind_mounts", "target", b->target, EINVAL);
	}
	return parsed;
}

/* mkdir -p of path's parent directories below base (which exists). */
static void make_parents(const char *step, const char *base, const char *path)
{
	struct buf dir = {0};
	buf_str(&dir, base);
	const char *p = path[0] == '/' ? path + 1 : path;
	for (const char *slash; (slash = strchr(p, '/')); p = slash + 1) {
		buf_str(&dir, "/");
		buf_add(&dir, p, (size_t)(slash - p));
		if (mkdir(dir.p, 0755) < 0 && errno != EEXIST)
			fail_call(step, "mkdir(%s)", dir.p);
	}
}

/* Whether bind i's target lies inside another bind's (a config file bound
 * into a volume's directory): its mountpoint is then made in that mount,
 * once it is mounted (nested_point). The plan lists a mount after every
 * mount it lies inside. */
static int nested(size_t i)
{
	struct bind *all = binds();
	size_t n = strlen(all[i].target);
	for (size_t j = 0; j < P.binds.n; j++) {
		size_t m = strlen(all[j].target);
		if (j != i && m < n && !strncmp(all[j].target, all[i].target, m) &&
		    (all[i].target[m] == '/' || m == 1))
			return 1;
	}
	return 0;
}

/* Each bind's mountpoint in the init layer: an empty file (or directory, for
 * a directory source) with its parent directories. The init layer is the
 * overlay's topmost lower layer: every component of the path is then the
 * init layer's, so no symlink of the image's is followed to the target. */
static void make_bind_points(const char *init)
{
	const char *step = "bind_mounts";
	struct bind *all = binds();
	for (size_t i = 0; i < P.binds.n; i++) {
		struct bind b = all[i];
		if (nested(i))
			continue;
		struct stat st = {.st_mode = S_IFDIR}; /* a tmpfs: a directory */
		if (b.kind != BIND_TMPFS && stat(b.source, &st) < 0)
			fail_call(step, "stat(%s)", b.source);
		make_parents(step, init, b.target);
		char *point = join(init, b.target);
		if (S_ISDIR(st.st_mode)) {
			if (mkdir(point, 0755) < 0 && errno != EEXIST)
				fail_call(step, "mkdir(%s)", point);
		} else {
			write_file(step, point, "", 0);
		}
	}
}

/* A nested bind's mountpoint, made in the mount it lies in (a volume's or a
 * host directory's files, as Docker makes it): each directory on the way
 * opened with O_NOFOLLOW from the container's root (made if missing), so a
 * symlink among those files never leads out of the container; refused if
 * the path goes through one. Returns an O_PATH fd of the mountpoint. */
static int nested_point(const char *step, const char *root, const char *target, int dir)
{
	int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fail_call(step, "open(%s)", root);
	char *rest = join("", target); /* a copy to cut: "/a/b/c" */
	char *part = rest + 1;
	for (char *slash; part; part = slash) {
		slash = strchr(part, '/');
		if (slash)
			*slash++ = '\0';
		if (!*part)
			continue;
		int last = slash == NULL;
		if (!last || dir) {
			if (mkdirat(fd, part, 0755) < 0 && errno != EEXIST)
				fail_call(step, "mkdir(%s) for the mount at %s", part, target);
		} else {
			int file = openat(fd, part, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (file < 0 && errno != EISDIR)
				fail_call(step, "create(%s) for the mount at %s", part, target);
			if (file >= 0)
				close(file);
		}
		int next = openat(fd, part, O_PATH | O_NOFOLLOW | O_CLOEXEC | (last && !dir ? 0 : O_DIRECTORY));
		if (next < 0)
			fail_call(step, "open(%s) for the mount at %s (a symlink on the way is not followed)",
				  part, target);
		close(fd);
		fd = next;
	}
	return fd;
}

/* The plan's mounts, on the mountpoints made above (a nested one's made in
 * its parent mount, once that is mounted): secrets read-only without set-id,
 * devices or exec, as Docker mounts them; a user's binds and volumes
 * recursive, read-only if asked; tmpfs mounts without set-id, devices or
 * exec, as Docker's --tmpfs. Read-only remounts come after every mount, so
 * a read-only mount can still have mountpoints made in it. */
static void bind_mounts(const char *root)
{
	const char *step = "bind_mounts";
	struct bind *all = binds();
	for (size_t i = 0; i < P.binds.n; i++) {
		struct bind b = all[i];
		char *point = join(root, b.target);
		int point_fd = -1;
		if (nested(i)) {
			struct stat st = {.st_mode = S_IFDIR};
			if (b.kind != BIND_TMPFS && stat(b.source, &st) < 0)
				fail_call(step, "stat(%s)", b.source);
			point_fd = nested_point(step, root, b.target, S_ISDIR(st.st_mode));
			char fd_path[32];
			snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%d", point_fd);
			point = join("", fd_path);
		}
		unsigned long ro = b.readonly ? MS_RDONLY : 0;
		if (b.kind == BIND_TMPFS)
			do_mount(step, "tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | ro,
				 b.data ? b.data : "");
		else
			do_mount(step, b.source, point, NULL,
				 MS_BIND | (b.kind == BIND_RBIND ? MS_REC : 0), NULL);
		if (point_fd >= 0)
			close(point_fd);
	}
	/* The mount's own path: an fd's path above is the directory beneath it. */
	for (size_t i = 0; i < P.binds.n; i++) {
		struct bind b = all[i];
		if (!b.readonly || b.kind == BIND_TMPFS)
			continue;
		unsigned long extra = b.kind == BIND_SECRET ? MS_NOSUID | MS_NODEV | MS_NOEXEC : 0;
		do_mount(step, NULL, join(root, b.target), NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | extra,
			 NULL);
	}
}

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
	make_bind_points(init);
}

/* The plan's devices (--device, --privileged): "PATH\tc|b\tMAJOR\tMINOR\t
 * MODE\tUID\tGID", PATH under /dev, made under dev (the new /dev tmpfs)
 * with its parent directories, replacing a node of that name. */
static void make_devices(const char *dev)
{
	const char *step = "devices";
	for (size_t i = 0; i < P.devices.n; i++) {
		char *f[7], *entry = strdup(P.devices.v[i]);
		if (!entry)
			die_oom();
		size_t n = 0;
		for (char *s = entry; n < 7 && s; n++) {
			f[n] = s;
			if ((s = strchr(s, '\t')))
				*s++ = '\0';
		}
		if (n != 7 || strncmp(f[0], "/dev/", 5) || (f[1][0] != 'c' && f[1][0] != 'b'))
			fail_on(step, "device", P.devices.v[i], EINVAL);
		const char *rel = f[0] + 4; /* "/name" below /dev */
		make_parents(step, dev, rel);
		char *path = join(dev, rel);
		mode_t mode = (mode_t)num(f[4]) & 07777;
		if (unlink(path) < 0 && errno != ENOENT)
			fail_call(step, "unlink(%s)", path);
		if (mknod(path, mode | (f[1][0] == 'b' ? S_IFBLK : S_IFCHR),
			  makedev((unsigned int)num(f[2]), (unsigned int)num(f[3]))) < 0)
			fail_call(step, "mknod(%s, %s %s:%s)", path, f[1], f[2], f[3]);
		if (chown(path, (uid_t)num(f[5]), (gid_t)num(f[6])) < 0 || chmod(path, mode) < 0)
			fail_call(step, "chown/chmod(%s, %s:%s, 0%o)", path, f[5], f[6], (unsigned int)mode);
		free(entry);
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
	char shm[64];
	snprintf(shm, sizeof(shm), "mode=1777,size=%llu", P.shmsize ? P.shmsize : 64ULL << 20);
	do_mount(step, "shm", join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, shm);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		char *path = join(dev, links[i][1]);
		if (symlink(links[i][0], path) < 0)
			fail_call(step, "symlink(%s, %s)", links[i][0], path);
	}
	make_devices(dev);
}

void build_rootfs(void)
{
	char *root = rootfs_dir();
	mount_staging();
	do_mount("mount_rootfs", "overlay", root, "overlay", 0, P.overlay);
	do_mount("mount_proc", "proc", join(root, "proc"), "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV,
		 NULL);
	/* Read-only but for a privileged container (Docker's rule). */
	do_mount("mount_sysfs", "sysfs", join(root, "sys"), "sysfs",
		 MS_NOSUID | MS_NOEXEC | MS_NODEV | (P.sysfs_rw ? 0 : MS_RDONLY), NULL);
	mount_dev();
	for (size_t i = 0; i < 3; i++)
		do_mount("bind_etc_files", join(P.staging, ETC_FILES[i]),
			 join(join(root, "etc"), ETC_FILES[i]), NULL, MS_BIND, NULL);
	bind_mounts(root);
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
