// SPDX-License-Identifier: Apache-2.0
#include "util/cgroupfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>

#include "util/fileio.h"
#include "util/strbuf.h"

int cgroup2_find_mount(char *buf, size_t len)
{
	static const char *const cands[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		struct statfs sf;
		if (!statfs(cands[i], &sf) && sf.f_type == CGROUP2_SUPER_MAGIC) {
			snprintf(buf, len, "%s", cands[i]);
			return 0;
		}
	}
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -ENOENT;
	char line[4096];
	int rc = -ENOENT;
	while (rc && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8))
			continue;
		char *save = NULL, *tok = strtok_r(line, " ", &save);
		for (int k = 0; tok && k < 4; k++)
			tok = strtok_r(NULL, " ", &save);
		if (tok && strlen(tok) < len) {
			snprintf(buf, len, "%s", tok);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

/* True when the comma list list (n bytes) has item. */
static bool list_has(const char *list, size_t n, const char *item)
{
	size_t il = strlen(item);

	for (size_t i = 0; i < n;) {
		const char *c = memchr(list + i, ',', n - i);
		size_t e = c ? (size_t)(c - list) : n;

		if (e - i == il && !memcmp(list + i, item, il))
			return true;
		i = e + 1;
	}
	return false;
}

int cgroup_v1_hierarchy_parse(const char *proc_cgroup, const char *controller,
			      unsigned *hierarchy_id)
{
	if (!proc_cgroup || !controller || !hierarchy_id)
		return -EINVAL;
	for (const char *l = proc_cgroup; *l;) {
		const char *nl = strchr(l, '\n');
		const char *end = nl ? nl : l + strlen(l);
		const char *c1 = memchr(l, ':', (size_t)(end - l));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
		unsigned id = 0;
		bool digits = c1 && c1 > l && c1 - l < 10;

		for (const char *p = l; digits && p < c1; p++) {
			if (*p < '0' || *p > '9')
				digits = false;
			else
				id = id * 10 + (unsigned)(*p - '0');
		}
		/* "0::/path" is cgroup2; a v1 line has a nonzero id. */
		if (digits && c2 && id > 0 && list_has(c1 + 1, (size_t)(c2 - c1 - 1), controller)) {
			*hierarchy_id = id;
			return 0;
		}
		l = nl ? nl + 1 : end;
	}
	return -ENOENT;
}

int cgroup_v1_mount_parse(const char *mountinfo, const char *controller, char *buf, size_t len)
{
	if (!mountinfo || !controller || !buf || !len)
		return -EINVAL;
	for (const char *l = mountinfo; *l;) {
		const char *nl = strchr(l, '\n');
		const char *end = nl ? nl : l + strlen(l);
		const char *sep = strstr(l, " - ");

		if (sep && sep < end && !strncmp(sep + 3, "cgroup ", 7)) {
			/* " - cgroup SOURCE OPTS": the options are the last field. */
			const char *src = sep + 10, *opts = memchr(src, ' ', (size_t)(end - src));
			/* ID PARENT MAJ:MIN ROOT MOUNTPOINT: the fifth field. */
			const char *mp = l;

			for (int k = 0; k < 4 && mp; k++) {
				mp = memchr(mp, ' ', (size_t)(sep - mp));
				if (mp)
					mp++;
			}
			/* The mount point ends at a space before the separator. */
			const char *mpe =
			    mp && mp < sep ? memchr(mp, ' ', (size_t)(sep - mp)) : NULL;

			if (opts && mpe &&
			    list_has(opts + 1, (size_t)(end - opts - 1), controller)) {
				if ((size_t)(mpe - mp) >= len)
					return -ENAMETOOLONG;
				memcpy(buf, mp, (size_t)(mpe - mp));
				buf[mpe - mp] = '\0';
				return 0;
			}
		}
		l = nl ? nl + 1 : end;
	}
	return -ENOENT;
}

int cgroup_v1_find(const char *controller, unsigned *hierarchy_id, char *buf, size_t len)
{
	struct strbuf text = {0};
	int rc = file_read_all(AT_FDCWD, "/proc/self/cgroup", 1 << 20, 0, &text, NULL);

	if (!rc)
		rc = cgroup_v1_hierarchy_parse(text.buf, controller, hierarchy_id);
	if (!rc)
		rc = file_read_all(AT_FDCWD, "/proc/self/mountinfo", 1 << 24, 0, &text, NULL);
	if (!rc)
		rc = cgroup_v1_mount_parse(text.buf, controller, buf, len);
	sb_free(&text);
	return rc;
}
