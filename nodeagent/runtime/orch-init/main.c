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
 * cgroup namespace, waits for the runtime's "N" (veths attached: bridge
 * mode, overlay networks) and configures the network. Next come the staging tmpfs, overlay, /proc,
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
 *
 * This file holds the two modes and the order of their steps; init.h lists
 * the other parts.
 */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

/* --- PID 1's checklist --------------------------------------------------- */

/* Close every inherited fd but ours (stdio targets, the pipes, the console
 * socket). */
static void close_inherited(void)
{
	int keep[8], n = 0;
	int cand[] = {P.report, P.control, P.stdio[0], P.stdio[1], P.stdio[2], P.runtime_fd,
		      P.console};
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
	if (P.net && (!strcmp(P.net, "bridge") || P.links.n))
		expect("wait_network", 'N');
	configure_network();
	apply_sysctls();
	build_rootfs();
	finalize();
	if (!P.start_now) {
		report_line("R\n");
		expect("wait_start", 'S');
	}
	parent_death();
	if (P.reaper)
		run_reaper();
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
