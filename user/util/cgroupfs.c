// SPDX-License-Identifier: Apache-2.0
#include "util/cgroupfs.h"

#include <errno.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>

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
