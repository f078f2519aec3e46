/* Users: the container's own /etc/passwd and /etc/group, read after
 * pivot_root, so a name means what the image says it means. */
#include "init.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
struct resolved resolve_user(void)
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
