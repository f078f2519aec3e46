/* The plan the runtime built (nodeagent/runtime/init.py for init, enter.py
 * for exec; native.py sends it): NUL-terminated "key=value" entries, read to
 * EOF. Every list key repeats; a key this file does not know is ignored. */
#include "init.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct plan P = {.stdio = {-1, -1, -1}, .report = -1, .control = -1, .runtime_fd = -1,
		 .console = -1};

char *read_all(int fd, size_t *len)
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

unsigned long long num(const char *s) { return strtoull(s, NULL, 0); }

void parse_plan(char *data, size_t len)
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
		else if (!strcmp(e, "bind")) list_push(&P.binds, v);
		else if (!strcmp(e, "link")) list_push(&P.links, v);
		else if (!strcmp(e, "sysctl")) list_push(&P.sysctls, v);
		else if (!strcmp(e, "device")) list_push(&P.devices, v);
		else if (!strcmp(e, "reaper")) P.reaper = (int)num(v);
		else if (!strcmp(e, "sysfs_rw")) P.sysfs_rw = (int)num(v);
		else if (!strcmp(e, "shmsize")) P.shmsize = num(v);
		else if (!strcmp(e, "cwd")) P.cwd = v;
		else if (!strcmp(e, "user")) P.user = v;
		else if (!strcmp(e, "seccomp")) P.seccomp_hex = v;
		else if (!strcmp(e, "capmask")) P.capmask = num(v);
		else if (!strcmp(e, "nnp")) P.nnp = (int)num(v);
		else if (!strcmp(e, "stdin")) P.stdio[0] = (int)strtol(v, NULL, 10);
		else if (!strcmp(e, "stdout")) P.stdio[1] = (int)strtol(v, NULL, 10);
		else if (!strcmp(e, "stderr")) P.stdio[2] = (int)strtol(v, NULL, 10);
		else if (!strcmp(e, "report")) P.report = (int)num(v);
		else if (!strcmp(e, "console")) P.console = (int)strtol(v, NULL, 10);
		else if (!strcmp(e, "winsize")) {
			char *end;
			P.rows = (unsigned short)strtoul(v, &end, 10);
			P.cols = (unsigned short)strtoul(end, NULL, 10);
		}
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
