/* The process checklist (both modes), after the container is built or
 * entered: rlimits, the user, HOME, the working directory, a tty's pty
 * (console), stdio, the bounding set, no_new_privs, seccomp, groups and
 * ids, capabilities, fds closed at exec; then the parent-death signal and
 * the exec. */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static const char *env_get(const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < P.env.n; i++)
		if (!strncmp(P.env.v[i], key, n) && P.env.v[i][n] == '=')
			return P.env.v[i] + n + 1;
	return NULL;
}

/* A tty process: a pty from the container's own devpts (/dev/ptmx is its
 * pts/ptmx, in the mount namespace this process is in by now), its master
 * sent to the runtime over the console socket (SCM_RIGHTS), its slave the
 * process's stdin, stdout and stderr. */
static void open_console(void)
{
	const char *step = "console";
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		fail_call(step, "open(/dev/ptmx)");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		fail_call(step, "ioctl(ptmx, TIOCSPTLCK)");
	if (P.rows && P.cols) {
		struct winsize ws = {.ws_row = P.rows, .ws_col = P.cols};
		if (ioctl(master, TIOCSWINSZ, &ws) < 0)
			fail_call(step, "ioctl(ptmx, TIOCSWINSZ, %ux%u)", P.rows, P.cols);
	}
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		fail_call(step, "ioctl(ptmx, TIOCGPTPEER)");
	char byte = 'T';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &master, sizeof(int));
	ssize_t sent;
	do
		sent = sendmsg(P.console, &msg, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent != 1)
		fail_call(step, "sendmsg(%d, <pty master>)", P.console);
	close(master);
	close(P.console);
	P.console = -1;
	for (int i = 0; i < 3; i++)
		P.stdio[i] = slave;
}

/* With a tty: a session of its own, the pty as its controlling terminal,
 * owned by the process's user (so a non-root user can open /dev/tty). */
static void own_console(uid_t uid)
{
	if (setsid() < 0)
		fail_call("stdio", "setsid()");
	if (ioctl(0, TIOCSCTTY, 0) < 0)
		fail_call("stdio", "ioctl(0, TIOCSCTTY)");
	if (fchown(0, uid, (gid_t)-1) < 0)
		fail_call("stdio", "fchown(0, %u)", (unsigned int)uid);
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
void exec_process(void)
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
void finalize(void)
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
	int tty = P.console >= 0;
	if (tty)
		open_console();
	connect_stdio();
	if (tty)
		own_console(user.uid);
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
void watch_runtime(void)
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
void parent_death(void)
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
