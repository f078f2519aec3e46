/* PID 1's extras: the container's sysctls, and --init.
 *
 * Sysctls are written by C in its own namespaces, right after the network
 * is configured and before the root is built: /proc is still the node's
 * mount then, and /proc/sys resolves namespaced entries (net.*, the IPC
 * ones) for the process that opens them, so the values land in the
 * container's namespaces, never the node's. Only namespaced names reach
 * here (nodeagent/agent/specbuild.py checks them).
 *
 * --init (run_reaper): a process that is PID 1 gets no default action for
 * signals, and inherits every orphan of its namespace. So C stays PID 1 and
 * forks the process: clone with CLONE_VFORK (without CLONE_VM: the child has
 * its own copy) resumes C only once the child has exec'd, or failed and
 * reported (step exec) and exited. C then closes every fd but stdio (the
 * report pipe's EOF tells the runtime the exec happened), and waits for
 * signals, all blocked: SIGCHLD reaps every zombie; any other is forwarded
 * to the child. When the child is reaped C exits with its status (128+N
 * for a death by signal N), and the kernel ends the rest of the namespace.
 */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void apply_sysctls(void)
{
	for (size_t i = 0; i < P.sysctls.n; i++) {
		char *entry = P.sysctls.v[i];
		char *tab = strchr(entry, '\t');
		if (!tab)
			fail_on("sysctl", "sysctl", entry, EINVAL);
		*tab = '\0';
		const char *value = tab + 1;
		size_t n = strlen(value);
		int fd = open(entry, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			fail_call("sysctl", "open(%s)", entry);
		if (write(fd, value, n) != (ssize_t)n)
			fail_call("sysctl", "write(%s, %s)", entry, value);
		close(fd);
	}
}

void run_reaper(void)
{
	sigset_t all, none;
	sigfillset(&all);
	sigemptyset(&none);
	/* Blocked before the fork: no signal is lost between it and the wait. */
	if (sigprocmask(SIG_SETMASK, &all, NULL) < 0)
		fail_call("init_fork", "sigprocmask(SIG_SETMASK, <all>)");
	long child = syscall(SYS_clone, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0);
	if (child < 0)
		fail_call("init_fork", "clone(CLONE_VFORK)");
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &none, NULL);
		exec_process();
	}
	syscall(SYS_close_range, 3U, ~0U, 0);
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info);
		if (sig < 0)
			continue; /* EINTR */
		if (sig != SIGCHLD) {
			kill((pid_t)child, sig);
			continue;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (pid == child)
				_exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
	}
}
