/*
 * orch-init's parts (one static binary; see main.c for what it does):
 *
 *   main.c     the two modes (init, exec), the clones, the cgroup, the order
 *              of the steps
 *   plan.c     the plan: NUL-terminated "key=value" entries, read into P
 *   report.c   the report pipe (P<pid>, R, E{...} for a failed step) and the
 *              control pipe (N, S)
 *   net.c      the container's side of its network (lo, eth0, the route,
 *              the overlay interfaces)
 *   rootfs.c   the staging tmpfs, overlay, /proc, /sys, /dev, the /etc
 *              binds, pivot_root, masked and read-only paths
 *   user.c     the user and groups, from the image's /etc/passwd and /group
 *   process.c  the process checklist (rlimits, cwd, console, stdio,
 *              capabilities, seccomp, credentials), dying with the runtime,
 *              and the exec
 *   reaper.c   --init: PID 1 forks the process, reaps zombies, forwards
 *              signals; and the container's sysctls
 *   buf.c      growable buffers and lists, JSON strings, path joining
 *
 * Every file includes this one first. A step that fails reports and exits
 * (fail, fail_call, fail_on): it never returns to its caller.
 */
#ifndef ORCH_INIT_H
#define ORCH_INIT_H

#define _GNU_SOURCE
#include <stddef.h>
#include <sys/types.h>

#define EXIT_SETUP_FAILED 127

#define NORETURN __attribute__((noreturn))
#define PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* --- buf.c: growable buffers and lists ---------------------------------- */

struct buf {
	char *p;
	size_t n, cap;
};

struct list {
	char **v;
	size_t n, cap;
};

NORETURN void die_oom(void);
void buf_add(struct buf *b, const char *s, size_t n);
void buf_str(struct buf *b, const char *s);
PRINTF(2, 3) void buf_printf(struct buf *b, const char *fmt, ...);
void buf_json(struct buf *b, const char *s);
void list_push(struct list *l, char *s);
char *join(const char *a, const char *b);

/* --- plan.c: the plan ---------------------------------------------------- */

struct plan {
	/* process (both modes) */
	struct list args, env, capdrop, rlimits;
	const char *cwd, *user, *seccomp_hex;
	unsigned long long capmask;
	int nnp, stdio[3], report;
	int console;                 /* tty: the unix socket the pty master goes over (-1: none) */
	unsigned short rows, cols;   /* the pty's first size (0: the kernel's) */
	/* init */
	unsigned long flags;
	int control, start_now, cgroupns, readonly;
	struct list cgfiles, masked, ro, etc, links; /* etc: "name=content"; links: "ethK IP LEN" */
	struct list binds; /* "SOURCE\tTARGET\tro|rw[\tKIND[\tDATA]]": secrets, volumes, binds, tmpfs (rootfs.c) */
	struct list sysctls; /* "/proc/sys/PATH\tVALUE" */
	struct list devices; /* "PATH\tc|b\tMAJOR\tMINOR\tMODE\tUID\tGID" */
	int reaper;          /* --init: stay PID 1, fork the process */
	int sysfs_rw;        /* --privileged: /sys read-write */
	unsigned long long shmsize; /* bytes of /dev/shm */
	const char *net, *ifname, *address, *netmask, *gateway;
	const char *staging, *overlay, *hostname;
	/* exec */
	int target;
	/* both: the runtime's pid (0: not watched) and, once open, its pidfd */
	int runtime, runtime_fd;
};

extern struct plan P;

char *read_all(int fd, size_t *len);
unsigned long long num(const char *s);
void parse_plan(char *data, size_t len);

/* --- report.c: the report and control pipes ------------------------------ */

NORETURN void fail(const char *step, const char *args_json, const char *detail, int err);
NORETURN PRINTF(2, 3) void fail_call(const char *step, const char *fmt, ...);
NORETURN void fail_on(const char *step, const char *key, const char *value, int err);
PRINTF(1, 2) void report_line(const char *fmt, ...);
void expect(const char *step, char message);

/* --- net.c, rootfs.c ----------------------------------------------------- */

void configure_network(void);
void do_mount(const char *step, const char *src, const char *target, const char *type,
	      unsigned long flags, const char *data);
void build_rootfs(void);

/* --- user.c -------------------------------------------------------------- */

struct resolved {
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	size_t ngroups;
	const char *home;
};

struct resolved resolve_user(void);

/* --- process.c ----------------------------------------------------------- */

void finalize(void);
NORETURN void exec_process(void);
void watch_runtime(void);
void parent_death(void);

/* --- reaper.c ------------------------------------------------------------ */

void apply_sysctls(void);
NORETURN void run_reaper(void);

#endif
