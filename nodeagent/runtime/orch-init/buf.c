/* Growable buffers and lists (allocation failure ends the set-up), JSON
 * string literals for reports, and path joining. */
#include "init.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void die_oom(void) { _exit(EXIT_SETUP_FAILED); }

void buf_add(struct buf *b, const char *s, size_t n)
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

void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_printf(struct buf *b, const char *fmt, ...)
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
void buf_json(struct buf *b, const char *s)
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

void list_push(struct list *l, char *s)
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

/* a/b, with one slash between them (b may start with one). */
char *join(const char *a, const char *b)
{
	struct buf p = {0};
	buf_str(&p, a);
	if (p.n == 0 || p.p[p.n - 1] != '/')
		buf_str(&p, "/");
	buf_str(&p, b[0] == '/' ? b + 1 : b);
	return p.p;
}
