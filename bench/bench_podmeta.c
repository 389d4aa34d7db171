/* SPDX-License-Identifier: Apache-2.0 */
/* podmeta_lookup cost on the kernel collector's path: a cache hit (with the
 * pod name), a cached host cgroup, and a miss resolved by a walk of a small
 * directory tree. Prints ns per lookup. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "enrich/podmeta.h"

#define UID "4f6d2a1e-9b3c-4d5e-8f70-a1b2c3d4e5f6"

static uint64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t dir_ino(const char *root, const char *rel)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	struct stat st;
	if (stat(path, &st)) {
		perror(path);
		exit(1);
	}
	return st.st_ino;
}

int main(void)
{
	char tree[] = "/tmp/tapio-bench-podmeta-XXXXXX";
	if (!mkdtemp(tree)) {
		perror("mkdtemp");
		return 1;
	}
	char path[512];
	const char *dirs[] = {"kubepods",
			      "kubepods/burstable",
			      "kubepods/burstable/pod" UID,
			      "kubepods/burstable/pod" UID "/"
			      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			      "system.slice",
			      "system.slice/sshd.service"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tree, dirs[i]);
		mkdir(path, 0755);
	}
	uint64_t ctr = dir_ino(tree, dirs[3]), host = dir_ino(tree, dirs[5]);
	struct podmeta *pm = podmeta_new(tree, 1024);
	if (!pm) {
		perror("podmeta_new");
		return 1;
	}
	podmeta_pod_update(pm, UID, "default", "web-0", false);
	struct podmeta_entry e;
	const int n = 2000000;
	struct {
		const char *name;
		uint64_t id;
		int want;
	} cases[] = {{"hit, container with pod name", ctr, 0}, {"hit, host cgroup", host, -ENOENT}};
	printf("podmeta bench: one thread\n");
	for (size_t c = 0; c < 2; c++) {
		if (podmeta_lookup(pm, cases[c].id, &e) != cases[c].want) {
			fprintf(stderr, "bench_podmeta: unexpected lookup result\n");
			return 1;
		}
		uint64_t t0 = mono();
		for (int i = 0; i < n; i++)
			podmeta_lookup(pm, cases[c].id, &e);
		uint64_t dt = mono() - t0;
		printf("  %-32s %8.1f ns/lookup\n", cases[c].name, (double)dt / n);
	}
	const int misses = 2000;
	uint64_t t0 = mono();
	for (int i = 0; i < misses; i++) {
		podmeta_forget(pm, ctr);
		podmeta_lookup(pm, ctr, &e);
	}
	uint64_t dt = mono() - t0;
	printf("  %-32s %8.1f ns/lookup\n", "miss, resolved by a walk", (double)dt / misses);
	podmeta_free(pm);

	/* the real cgroup2 tree, by file handle (root only) */
	pm = geteuid() == 0 ? podmeta_new(NULL, 1024) : NULL;
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[1024], mine[1024] = "";
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = 0;
			snprintf(mine, sizeof(mine), "%s", line + 3);
		}
	if (f)
		fclose(f);
	uint64_t id = 0;
	const char *mounts[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
	for (size_t m = 0; m < 2 && !id && mine[0]; m++) {
		char full[2100];
		struct stat st;
		snprintf(full, sizeof(full), "%s%s", mounts[m], mine);
		if (!stat(full, &st) && !stat(mounts[m], &st))
			id = dir_ino(mounts[m], mine);
	}
	char got[1024];
	if (pm && id && podmeta_cgroup_path(pm, id, got, sizeof(got)) == 0) {
		const int k = 20000;
		t0 = mono();
		for (int i = 0; i < k; i++)
			podmeta_cgroup_path(pm, id, got, sizeof(got));
		dt = mono() - t0;
		printf("  %-32s %8.1f ns/resolve (%s)\n", "cgroup2 id -> path, by handle",
		       (double)dt / k, got);
	} else {
		printf("  (cgroup2 id -> path by handle: needs root and cgroup2)\n");
	}
	if (pm)
		podmeta_free(pm);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
	return system(cmd) ? 1 : 0;
}
