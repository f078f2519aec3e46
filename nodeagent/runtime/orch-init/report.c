/* The report pipe, to the runtime: "P<pid>" (the process it will wait for),
 * "R" (ready to exec), and E{"step", "args", "detail", "errno"} for a failed
 * step, after which the process _exit(127)s. The control pipe, from the
 * runtime: one byte per message ("N": the network is attached; "S": start);
 * EOF means the runtime gave up on the container. nodeagent/runtime/channel.py
 * is the other end. */
#include "init.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
void fail(const char *step, const char *args_json, const char *detail, int err)
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
void fail_call(const char *step, const char *fmt, ...)
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
void fail_on(const char *step, const char *key, const char *value, int err)
{
	struct buf a = {0};
	buf_str(&a, "{");
	buf_json(&a, key);
	buf_str(&a, ": ");
	buf_json(&a, value);
	buf_str(&a, "}");
	fail(step, a.p, strerror(err), err);
}

void report_line(const char *fmt, ...)
{
	char line[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	report_raw(line, (size_t)n);
}

/* Wait for the runtime's one-byte message on the control pipe. */
void expect(const char *step, char message)
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
