/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for user/enrich/podmeta.c: the cgroup path parser on real-world and
 * hostile paths, the caches over a directory tree (resolved by a walk), the
 * k8s pod feed, and, as root, a real kubelet-shaped cgroup2 directory with a
 * process in it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/event.h"
#include "core/collector.h"
#include "enrich/podmeta.h"
#include "tests/lib/tmpdir.h"

#define UID "4f6d2a1e-9b3c-4d5e-8f70-a1b2c3d4e5f6"
#define UID_ "4f6d2a1e_9b3c_4d5e_8f70_a1b2c3d4e5f6"
#define CID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define CID2 "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define STATIC_UID "8cf4c4ab1d0be0a1aa2e0db5d1a4bf7b"

struct pcase {
	const char *path;
	int rc;
	const char *cid, *uid, *runtime;
};

static const struct pcase good[] = {
    /* systemd driver, cgroup v2 (what /proc/<pid>/cgroup shows) */
    {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
     ".slice/cri-containerd-" CID ".scope",
     0, CID, UID, "containerd"},
    {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_ ".slice/crio-" CID
     ".scope",
     0, CID, UID, "cri-o"},
    {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
     ".slice/crio-conmon-" CID ".scope",
     0, CID, UID, "cri-o"},
    /* crun's nested cgroup inside the scope */
    {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_ ".slice/crio-" CID
     ".scope/container",
     0, CID, UID, "cri-o"},
    {"/kubepods.slice/kubepods-pod" UID_ ".slice/docker-" CID ".scope", 0, CID, UID, "docker"},
    /* guaranteed QoS: no qos slice */
    {"/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope", 0, CID, UID,
     "containerd"},
    /* the pod cgroup itself (no container) */
    {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_ ".slice", 0, "", UID,
     ""},
    /* static pod: the uid is a 32-digit hash */
    {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" STATIC_UID
     ".slice/cri-containerd-" CID ".scope",
     0, CID, STATIC_UID, "containerd"},
    /* kind: kubelet nested under its own slice */
    {"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
     "kubelet-kubepods-besteffort-pod" UID_ ".slice/cri-containerd-" CID ".scope",
     0, CID, UID, "containerd"},
    /* cgroupfs driver, v1 and v2 */
    {"/kubepods/burstable/pod" UID "/" CID, 0, CID, UID, ""},
    {"/kubepods/besteffort/pod" UID "/" CID, 0, CID, UID, ""},
    {"/kubepods/pod" UID "/" CID, 0, CID, UID, ""},
    {"/kubepods/burstable/pod" UID "/crio-" CID, 0, CID, UID, "cri-o"},
    {"/kubepods/burstable/pod" UID, 0, "", UID, ""},
    /* v1 hierarchy as mounted */
    {"/sys/fs/cgroup/memory/kubepods/burstable/pod" UID "/" CID, 0, CID, UID, ""},
    {"/sys/fs/cgroup/unified/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
     ".slice/cri-containerd-" CID ".scope",
     0, CID, UID, "containerd"},
    /* the systemd driver's colon form on some cgroup v1 setups */
    {"/system.slice/containerd.service/kubepods-burstable-pod" UID_ ".slice:cri-containerd:" CID, 0,
     CID, UID, "containerd"},
    {"/kubepods-besteffort-pod" UID_ ".slice:crio:" CID, 0, CID, UID, "cri-o"},
    /* docker outside kubernetes */
    {"/system.slice/docker-" CID ".scope", 0, CID, "", "docker"},
    {"/docker/" CID, 0, CID, "", "docker"},
    /* docker-in-docker: the innermost container wins */
    {"/docker/" CID2 "/kubepods/burstable/pod" UID "/" CID, 0, CID, UID, ""},
    {"/system.slice/cri-containerd-" CID ".scope", 0, CID, "", "containerd"},
    /* untidy but valid */
    {"//kubepods///burstable//pod" UID "//" CID "//", 0, CID, UID, ""},
    {"/kubepods/burstable/pod" UID "/" CID "\n", 0, CID, UID, ""},
};

static void check_case(const struct pcase *c, size_t len)
{
	struct cgroup_ids ids;
	memset(&ids, 0x55, sizeof(ids));
	int rc = cgroup_path_parse(c->path, len, &ids);
	cr_assert_eq(rc, c->rc, "%s: rc %d, want %d", c->path, rc, c->rc);
	cr_assert_str_eq(ids.container_id, c->cid, "%s: container %s", c->path, ids.container_id);
	cr_assert_str_eq(ids.pod_uid, c->uid, "%s: pod %s", c->path, ids.pod_uid);
	cr_assert_str_eq(ids.runtime, c->runtime, "%s: runtime %s", c->path, ids.runtime);
}

Test(cgroup_path_parse, real_world_shapes)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		check_case(&good[i], strlen(good[i].path));
}

static const struct pcase bad[] = {
    /* host cgroups */
    {"/", -ENOENT, "", "", ""},
    {"/init.scope", -ENOENT, "", "", ""},
    {"/user.slice/user-1000.slice/session-3.scope", -ENOENT, "", "", ""},
    {"/system.slice/containerd.service", -ENOENT, "", "", ""},
    {"/kubepods.slice/kubepods-besteffort.slice", -ENOENT, "", "", ""},
    {"/kubepods/burstable", -ENOENT, "", "", ""},
    /* missing or broken pieces */
    {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod.slice", -ENOENT, "", "",
     ""},
    {"/kubepods.slice/kubepods-besteffort-pod4f6d2a1e_9b3c_4d5e_8f70_a1b2c3d4e5.slice", -ENOENT, "",
     "", ""},
    {"/kubepods.slice/kubepods-besteffort-pod4f6d2a1e-9b3c_4d5e_8f70_a1b2c3d4e5f6.slice", -ENOENT,
     "", "", ""},
    {"/kubepods.slice/kubepods-besteffort-pod4F6D2A1E_9B3C_4D5E_8F70_A1B2C3D4E5F6.slice", -ENOENT,
     "", "", ""},
    {"/kubepods.slice/kubepods-besteffort-pod4f6d2a1e_9b3c_4d5e_8f70_a1b2c3d4e5fg.slice", -ENOENT,
     "", "", ""},
    {"/kubepods.slice/kubepods-besteffort-pod" UID_ ".slice.old", -ENOENT, "", "", ""},
    /* a pod-looking name outside kubepods */
    {"/foo/pod" UID "/" CID, -ENOENT, "", "", ""},
    {"/system.slice/pod" UID_ ".slice", -ENOENT, "", "", ""},
    /* bad container ids: the pod still shows */
    {"/kubepods/burstable/pod" UID
     "/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
     0, "", UID, ""},
    {"/kubepods/burstable/pod" UID
     "/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
     0, "", UID, ""},
    {"/kubepods/burstable/pod" UID "/" CID "0", 0, "", UID, ""},
    {"/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope.bak", 0, "", UID, ""},
    {"/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-.scope", 0, "", UID, ""},
    {"/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-ABCDEF", 0, "", UID, ""},
    {"/kubepods-besteffort-pod" UID_ ".slice:cri-containerd:", 0, "", UID, ""},
    {"/kubepods-besteffort-pod" UID_ ".slice:unknown:" CID, 0, "", UID, ""},
    {"/kubepods-besteffort-pod" UID_ ".slice:cri-containerd", -ENOENT, "", "", ""},
    {"/system.slice/docker-" CID "x.scope", -ENOENT, "", "", ""},
    /* a bare id outside a pod or docker */
    {"/lxc/" CID, -ENOENT, "", "", ""},
    {"/" CID, -ENOENT, "", "", ""},
};

Test(cgroup_path_parse, host_and_broken_paths)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_case(&bad[i], strlen(bad[i].path));
}

Test(cgroup_path_parse, bad_input)
{
	struct cgroup_ids ids;
	memset(&ids, 0x55, sizeof(ids));
	cr_assert_eq(cgroup_path_parse(NULL, 5, &ids), -EINVAL);
	cr_assert_eq(ids.container_id[0], 0, "out is cleared on error");
	cr_assert_eq(cgroup_path_parse("/x", 0, &ids), -EINVAL);
	cr_assert_eq(cgroup_path_parse("/x", 2, NULL), -EINVAL);
	/* an embedded NUL */
	const char nul[] = "/kubepods/burstable/pod" UID "\0/" CID;
	cr_assert_eq(cgroup_path_parse(nul, sizeof(nul) - 1, &ids), -EINVAL);
	/* overlong */
	size_t n = 5000;
	char *big = malloc(n);
	memset(big, 'a', n);
	big[0] = '/';
	cr_assert_eq(cgroup_path_parse(big, n, &ids), -EINVAL);
	/* a long component of garbage, within the limit */
	cr_assert_eq(cgroup_path_parse(big, 4000, &ids), -ENOENT);
	/* a valid path padded with deep junk: the ids still come out */
	int k = snprintf(big, n, "/kubepods/burstable/pod%s/%s", UID, CID);
	while (k < 4000)
		k += snprintf(big + k, n - (size_t)k, "/junk");
	cr_assert_eq(cgroup_path_parse(big, (size_t)k, &ids), 0);
	cr_assert_str_eq(ids.container_id, CID);
	free(big);
}

Test(cgroup_path_parse, every_truncation_is_safe)
{
	/* A path cut anywhere never yields a partial id: either nothing, or the
	 * full uid / container id. */
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const char *p = good[i].path;
		size_t n = strlen(p);
		for (size_t cut = 1; cut <= n; cut++) {
			struct cgroup_ids ids;
			int rc = cgroup_path_parse(p, cut, &ids);
			cr_assert(rc == 0 || rc == -ENOENT, "%.*s: rc %d", (int)cut, p, rc);
			/* (docker-in-docker has two whole ids) */
			cr_assert(!ids.container_id[0] || (strlen(ids.container_id) == 64 &&
							   strstr(p, ids.container_id)),
				  "%.*s: partial container %s", (int)cut, p, ids.container_id);
			cr_assert(!ids.pod_uid[0] || !strcmp(ids.pod_uid, good[i].uid),
				  "%.*s: partial pod %s", (int)cut, p, ids.pod_uid);
			cr_assert_eq(rc == 0, ids.container_id[0] || ids.pod_uid[0]);
		}
	}
}

Test(cgroup_path_parse, random_bytes_do_not_crash)
{
	unsigned x = 12345;
	char buf[600];
	static const char alphabet[] = "/-_.:abcdef0123456789kubepodsslicescopecri-containerd";
	for (int round = 0; round < 20000; round++) {
		size_t n = 1 + (x % sizeof(buf));
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (round & 1) ? (char)((x >> 16) & 0xff ? (x >> 16) & 0xff : 1)
					     : alphabet[(x >> 16) % (sizeof(alphabet) - 1)];
		}
		struct cgroup_ids ids;
		int rc = cgroup_path_parse(buf, n, &ids);
		cr_assert(rc == 0 || rc == -ENOENT || rc == -EINVAL, "rc %d", rc);
		cr_assert(memchr(ids.container_id, 0, sizeof(ids.container_id)));
		cr_assert(memchr(ids.pod_uid, 0, sizeof(ids.pod_uid)));
		cr_assert(strlen(ids.container_id) == 0 || strlen(ids.container_id) == 64);
	}
}

/* ---- the caches, over a plain directory tree (resolved by the walk) ---- */

static char tree[256];

static uint64_t mkdirs(const char *rel)
{
	char path[1024], *p;
	snprintf(path, sizeof(path), "%s/%s", tree, rel);
	for (p = path + strlen(tree) + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		mkdir(path, 0755);
		*p = '/';
	}
	mkdir(path, 0755);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	return st.st_ino;
}

static void tree_setup(void)
{
	cr_assert_not_null(tl_mkdtemp(tree, sizeof(tree), "podmeta"));
}

static void tree_teardown(void)
{
	if (tl_rmtree(tree) != 0)
		fprintf(stderr, "could not remove %s\n", tree);
}

#define POD_SCOPE                                                                                  \
	"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_                      \
	".slice/cri-containerd-" CID ".scope"

TestSuite(podmeta, .init = tree_setup, .fini = tree_teardown);

Test(podmeta, lookup_caches_and_names_pods)
{
	uint64_t scope = mkdirs(POD_SCOPE);
	uint64_t host = mkdirs("system.slice/sshd.service");
	struct podmeta *pm = podmeta_new(tree, 64);
	cr_assert_not_null(pm, "podmeta_new: %s", strerror(errno));

	char path[512];
	cr_assert_eq(podmeta_cgroup_path(pm, scope, path, sizeof(path)), 0);
	cr_assert_str_eq(path, "/" POD_SCOPE);

	struct podmeta_entry e;
	cr_assert_eq(podmeta_lookup(pm, scope, &e), 0);
	cr_assert_str_eq(e.ids.container_id, CID);
	cr_assert_str_eq(e.ids.pod_uid, UID);
	cr_assert_str_eq(e.ids.runtime, "containerd");
	cr_assert_str_eq(e.pod_name, "");
	cr_assert_eq(podmeta_lookup(pm, host, &e), -ENOENT);
	cr_assert_eq(podmeta_lookup(pm, 0, &e), -ENOENT);
	cr_assert_eq(podmeta_lookup(pm, 999999999999ull, &e), -ENOENT); /* no such cgroup */

	struct podmeta_stats st;
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.misses, 4);
	cr_assert_eq(st.resolves, 1);
	cr_assert_eq(st.hits, 0);

	/* now from the cache, even after the directory is gone */
	char full[512];
	snprintf(full, sizeof(full), "%s/%s", tree, POD_SCOPE);
	cr_assert_eq(rmdir(full), 0);
	cr_assert_eq(podmeta_lookup(pm, scope, &e), 0);
	cr_assert_str_eq(e.ids.container_id, CID);
	cr_assert_eq(podmeta_lookup(pm, host, &e), -ENOENT);
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.hits, 2);
	cr_assert_eq(st.misses, 4);

	/* the pod feed names it */
	podmeta_pod_update(pm, UID, "shop", "web-0", false);
	cr_assert_eq(podmeta_lookup(pm, scope, &e), 0);
	cr_assert_str_eq(e.pod_name, "web-0");
	cr_assert_str_eq(e.pod_namespace, "shop");
	podmeta_pod_update(pm, UID, "shop", "web-0-renamed", false);
	cr_assert_eq(podmeta_lookup(pm, scope, &e), 0);
	cr_assert_str_eq(e.pod_name, "web-0-renamed");
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.pods, 1);
	podmeta_pod_update(pm, UID, "shop", "web-0", true);
	cr_assert_eq(podmeta_lookup(pm, scope, &e), 0);
	cr_assert_str_eq(e.pod_name, "");
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.pods, 0);

	/* rmdir: forgotten, and resolving again finds nothing */
	podmeta_forget(pm, scope);
	cr_assert_eq(podmeta_lookup(pm, scope, &e), -ENOENT);
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.misses, 5);
	podmeta_free(pm);
	podmeta_free(NULL);
}

Test(podmeta, bounded_with_eviction)
{
	enum { N = 10 };
	uint64_t ids[N];
	for (int i = 0; i < N; i++) {
		char rel[300];
		snprintf(rel, sizeof(rel), "kubepods/burstable/pod" UID "/%063x%d", i, i % 10);
		ids[i] = mkdirs(rel);
	}
	struct podmeta *pm = podmeta_new(tree, 4);
	cr_assert_not_null(pm);
	struct podmeta_entry e;
	for (int i = 0; i < N; i++) {
		cr_assert_eq(podmeta_lookup(pm, ids[i], &e), 0);
		cr_assert_eq(strlen(e.ids.container_id), 64);
	}
	struct podmeta_stats st;
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.evictions, N - 4);
	/* the last four are cached, the first is not */
	cr_assert_eq(podmeta_lookup(pm, ids[N - 1], &e), 0);
	cr_assert_eq(podmeta_lookup(pm, ids[0], &e), 0);
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.hits, 1);
	cr_assert_eq(st.misses, N + 1);
	/* forgotten slots are reused without an eviction */
	podmeta_forget(pm, ids[0]);
	cr_assert_eq(podmeta_lookup(pm, ids[1], &e), 0);
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.evictions, N - 4 + 1);

	/* the pod cache is bounded too */
	for (int i = 0; i < 6; i++) {
		char uid[40];
		snprintf(uid, sizeof(uid), "00000000-0000-0000-0000-%012d", i);
		podmeta_pod_update(pm, uid, "ns", "p", false);
	}
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.pods, 4);
	podmeta_free(pm);
}

struct got_counters {
	char name[16][32];
	char labels[16][32];
	uint64_t val[16];
	size_t n;
};

static void got_counter(void *ctx, const char *name, const char *labels, uint64_t v)
{
	struct got_counters *g = ctx;
	cr_assert_lt(g->n, 16);
	snprintf(g->name[g->n], sizeof(g->name[0]), "%s", name);
	snprintf(g->labels[g->n], sizeof(g->labels[0]), "%s", labels);
	g->val[g->n++] = v;
}

static uint64_t got(const struct got_counters *g, const char *name)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->name[i], name))
			return g->val[i];
	cr_assert_fail("no counter %s", name);
	return 0;
}

/* podmeta_counters hands out the stats, one unlabelled counter each. */
Test(podmeta, counters_are_the_stats)
{
	uint64_t scope = mkdirs(POD_SCOPE), host = mkdirs("system.slice/cron.service");
	struct podmeta *pm = podmeta_new(tree, 16);
	cr_assert_not_null(pm);
	struct podmeta_entry e;
	cr_assert_eq(podmeta_lookup(pm, scope, &e), 0);
	cr_assert_eq(podmeta_lookup(pm, scope, &e), 0);
	cr_assert_eq(podmeta_lookup(pm, host, &e), -ENOENT);
	podmeta_pod_update(pm, UID, "shop", "web-0", false);

	struct got_counters g = {0};
	podmeta_counters(pm, got_counter, &g);
	cr_assert_eq(g.n, 8);
	for (size_t i = 0; i < g.n; i++)
		cr_assert_str_eq(g.labels[i], "", "%s", g.name[i]);
	struct podmeta_stats st;
	podmeta_get_stats(pm, &st);
	cr_assert_eq(got(&g, "hits"), 1);
	cr_assert_eq(got(&g, "misses"), 2);
	cr_assert_eq(got(&g, "resolves"), 1);
	cr_assert_eq(got(&g, "evictions"), st.evictions);
	cr_assert_eq(got(&g, "queue_full"), 0);
	cr_assert_eq(got(&g, "resolve_errors"), 0);
	cr_assert_eq(got(&g, "resolve_pending"), 0);
	cr_assert_eq(got(&g, "pod_entries"), 1);

	struct got_counters none = {0};
	podmeta_counters(NULL, got_counter, &none);
	cr_assert_eq(none.n, 0);
	podmeta_free(pm);
}

Test(podmeta, bad_arguments)
{
	errno = 0;
	cr_assert_null(podmeta_new(tree, 0));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(podmeta_new("/nonexistent/tapio", 4));
	cr_assert_eq(errno, ENOENT);
	struct podmeta *pm = podmeta_new(tree, 4);
	struct podmeta_entry e;
	cr_assert_eq(podmeta_lookup(NULL, 1, &e), -EINVAL);
	cr_assert_eq(podmeta_lookup(pm, 1, NULL), -EINVAL);
	char small[4];
	uint64_t id = mkdirs("kubepods/burstable");
	cr_assert_eq(podmeta_cgroup_path(pm, id, small, sizeof(small)), -ENOENT,
		     "the path does not fit: not found by the walk");
	podmeta_pod_update(pm, NULL, "a", "b", false);
	podmeta_pod_update(pm, "", "a", "b", false);
	podmeta_pod_update(pm, "0123456789012345678901234567890123456789-too-long", "a", "b",
			   false);
	struct podmeta_stats st;
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.pods, 0);
	podmeta_forget(NULL, 1);
	podmeta_free(pm);
}

Test(podmeta, find_by_id_walk)
{
	uint64_t a = mkdirs("a/b/c");
	uint64_t d = mkdirs("a/d");
	int fd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char buf[256];
	cr_assert_eq(cgroup_find_by_id(fd, a, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/a/b/c");
	cr_assert_eq(cgroup_find_by_id(fd, d, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/a/d");
	struct stat st;
	fstat(fd, &st);
	cr_assert_eq(cgroup_find_by_id(fd, st.st_ino, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/");
	cr_assert_eq(cgroup_find_by_id(fd, 1234567890123ull, buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(cgroup_find_by_id(-1, a, buf, sizeof(buf)), -EINVAL);
	close(fd);
}

Test(podmeta, hooks_feed_and_read_the_cache)
{
	uint64_t scope = mkdirs(POD_SCOPE);
	struct podmeta *pm = podmeta_new(tree, 16);
	struct collector_hooks h;
	podmeta_hooks(pm, &h);
	cr_assert_eq(h.ctx, pm);

	/* the k8s collector's pod events fill the pod names */
	h.pod_update(h.ctx, UID, "shop", "web-1", false);
	struct podmeta_entry e;
	cr_assert_eq(podmeta_lookup(pm, scope, &e), 0);
	cr_assert_str_eq(e.pod_name, "web-1");
	cr_assert_str_eq(e.pod_namespace, "shop");

	/* the kernel collector's meta: container id, pod uid, name, namespace */
	struct meta_kv kv[8];
	char scratch[512];
	size_t n = h.cgroup_meta(h.ctx, scope, kv, 8, scratch, sizeof(scratch));
	cr_assert_eq(n, 4);
	cr_assert_str_eq(kv[0].key, "container_id");
	cr_assert_eq(strlen(kv[0].val), 64);
	cr_assert_str_eq(kv[1].key, "pod_uid");
	cr_assert_str_eq(kv[1].val, UID);
	cr_assert_str_eq(kv[2].key, "pod_name");
	cr_assert_str_eq(kv[2].val, "web-1");
	cr_assert_str_eq(kv[3].key, "pod_namespace");
	cr_assert_str_eq(kv[3].val, "shop");
	/* no room: fewer pairs, never past the scratch space */
	cr_assert_eq(h.cgroup_meta(h.ctx, scope, kv, 8, scratch, 66), 1);
	cr_assert_eq(h.cgroup_meta(h.ctx, scope, kv, 2, scratch, sizeof(scratch)), 2);

	/* a pod deleted: names gone, the ids from the path stay */
	h.pod_update(h.ctx, UID, "shop", "web-1", true);
	cr_assert_eq(podmeta_lookup(pm, scope, &e), 0);
	cr_assert_str_eq(e.pod_name, "");
	cr_assert_eq(h.cgroup_meta(h.ctx, scope, kv, 8, scratch, sizeof(scratch)), 2);

	/* cgroup.rmdir forgets the cgroup */
	h.cgroup_removed(h.ctx, scope);
	struct podmeta_stats st;
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.pods, 0);
	podmeta_free(pm);
}

static size_t meta_of(const struct collector_hooks *h, uint64_t id, struct meta_kv *kv,
		      char *scratch, size_t len)
{
	return h->cgroup_meta(h->ctx, id, kv, 8, scratch, len);
}

static uint64_t resolves(struct podmeta *pm)
{
	struct podmeta_stats st;
	podmeta_get_stats(pm, &st);
	return st.resolves;
}

/* With the resolver thread, a miss is not resolved on the caller's thread:
 * the hook answers at once with pod_meta=pending (no ids: the path was not
 * read), every new cgroup the same however many arrive, and the resolver
 * fills the cache behind it, so that later events carry the ids. */
Test(podmeta, resolver_answers_misses_at_once_and_later_events_carry_the_ids)
{
	enum { N = 200 };
	uint64_t ids[N];
	char rel[512];
	for (int i = 0; i < N; i++) {
		snprintf(rel, sizeof(rel),
			 "kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-%064x.scope",
			 i + 1);
		ids[i] = mkdirs(rel);
	}
	uint64_t host = mkdirs("system.slice/cron.service");
	struct podmeta *pm = podmeta_new(tree, 4 * N);
	cr_assert_not_null(pm);
	cr_assert_eq(podmeta_start_resolver(pm), 0);
	cr_assert_eq(podmeta_start_resolver(pm), -EALREADY);
	struct collector_hooks h;
	podmeta_hooks(pm, &h);
	h.pod_update(h.ctx, UID, "shop", "web-2", false);

	struct meta_kv kv[8];
	char scratch[512];
	for (int i = 0; i < N; i++) {
		cr_assert_eq(meta_of(&h, ids[i], kv, scratch, sizeof(scratch)), 1, "cgroup %d", i);
		cr_assert_str_eq(kv[0].key, "pod_meta");
		cr_assert_str_eq(kv[0].val, "pending");
	}
	cr_assert_eq(meta_of(&h, host, kv, scratch, sizeof(scratch)), 1);
	cr_assert_str_eq(kv[0].val, "pending");
	uint64_t pending_stamp = h.cgroup_meta_stamp(h.ctx, ids[N - 1]);
	struct podmeta_entry e;
	int rc = podmeta_lookup_nowait(pm, ids[0], &e);
	cr_assert(rc == -EINPROGRESS || rc == 0, "rc %d", rc);

	/* the resolver catches up on its own */
	for (int t = 0; t < 500 && resolves(pm) < N; t++)
		usleep(10000);
	cr_assert_eq(resolves(pm), N);
	/* a pending answer's stamp does not outlive the resolve */
	cr_assert(!pending_stamp || h.cgroup_meta_stamp(h.ctx, ids[N - 1]) != pending_stamp,
		  "the pending answer's stamp still holds");
	for (int i = 0; i < N; i++) {
		cr_assert_eq(meta_of(&h, ids[i], kv, scratch, sizeof(scratch)), 4, "cgroup %d", i);
		cr_assert_str_eq(kv[0].key, "container_id");
		cr_assert_str_eq(kv[1].val, UID);
		cr_assert_str_eq(kv[2].val, "web-2");
	}
	/* a host cgroup (queued last) resolves to nothing: no keys, and no
	 * longer pending */
	for (int t = 0; t < 500 && podmeta_lookup_nowait(pm, host, &e) == -EINPROGRESS; t++)
		usleep(10000);
	cr_assert_eq(meta_of(&h, host, kv, scratch, sizeof(scratch)), 0);
	cr_assert_eq(podmeta_lookup_nowait(pm, ids[0], &e), 0);
	cr_assert_str_eq(e.pod_name, "web-2");

	/* rmdir while pending: the late answer is dropped, the next event asks
	 * again and finds no cgroup */
	uint64_t late =
	    mkdirs("kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID2 ".scope");
	cr_assert_eq(podmeta_lookup_nowait(pm, late, &e), -EINPROGRESS);
	h.cgroup_removed(h.ctx, late);
	snprintf(rel, sizeof(rel),
		 "%s/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID2 ".scope",
		 tree);
	cr_assert_eq(rmdir(rel), 0);
	for (int t = 0; t < 500; t++) {
		rc = podmeta_lookup_nowait(pm, late, &e);
		if (rc != -EINPROGRESS)
			break;
		usleep(10000);
	}
	cr_assert_eq(rc, -ENOENT);
	podmeta_free(pm);
}

/* Without the resolver (tapio trace), a miss resolves on the caller's
 * thread, as before: the first event already carries the ids. */
Test(podmeta, without_the_resolver_the_first_event_carries_the_ids)
{
	uint64_t scope = mkdirs(POD_SCOPE);
	struct podmeta *pm = podmeta_new(tree, 16);
	struct collector_hooks h;
	podmeta_hooks(pm, &h);
	struct meta_kv kv[8];
	char scratch[512];
	cr_assert_eq(meta_of(&h, scope, kv, scratch, sizeof(scratch)), 2);
	cr_assert_str_eq(kv[0].key, "container_id");
	podmeta_free(pm);
}

/* The hook reads through a per-thread cache: repeated events of one cgroup
 * take no lock (the shared table sees no more lookups), and every change
 * (a pod renamed, a cgroup removed) shows at the next event. */
Test(podmeta, hook_cache_hits_without_the_table_and_sees_changes)
{
	uint64_t scope = mkdirs(POD_SCOPE);
	struct podmeta *pm = podmeta_new(tree, 16);
	cr_assert_not_null(pm);
	struct collector_hooks h;
	podmeta_hooks(pm, &h);
	h.pod_update(h.ctx, UID, "shop", "web-2", false);

	struct meta_kv kv[8];
	char scratch[512];
	/* the stamp: 0 before the first answer, then one value while the
	 * answer holds (the kernel collector keeps the laid-out pairs) */
	cr_assert_eq(h.cgroup_meta_stamp(h.ctx, scope), 0);
	uint64_t stamp = 0;
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(h.cgroup_meta(h.ctx, scope, kv, 8, scratch, sizeof(scratch)), 4);
		cr_assert_str_eq(kv[2].val, "web-2");
		if (!i)
			stamp = h.cgroup_meta_stamp(h.ctx, scope);
		cr_assert_neq(stamp, 0);
		cr_assert_eq(h.cgroup_meta_stamp(h.ctx, scope), stamp);
	}
	cr_assert_eq(h.cgroup_meta_stamp(h.ctx, scope + 1), 0, "another cgroup's stamp");
	struct podmeta_stats st;
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.hits + st.misses, 1, "the table saw %lu lookups for 100 events",
		     (unsigned long)(st.hits + st.misses));

	h.pod_update(h.ctx, UID, "shop", "web-2-renamed", false);
	cr_assert_eq(h.cgroup_meta_stamp(h.ctx, scope), 0, "a stamp after the tables changed");
	cr_assert_eq(h.cgroup_meta(h.ctx, scope, kv, 8, scratch, sizeof(scratch)), 4);
	cr_assert_str_eq(kv[2].val, "web-2-renamed");
	uint64_t stamp2 = h.cgroup_meta_stamp(h.ctx, scope);
	cr_assert_neq(stamp2, 0);
	cr_assert_neq(stamp2, stamp, "the renamed pod's answer has the old stamp");

	/* removed and gone from the tree: no meta any more */
	char full[512];
	snprintf(full, sizeof(full), "%s/%s", tree, POD_SCOPE);
	cr_assert_eq(rmdir(full), 0);
	h.cgroup_removed(h.ctx, scope);
	cr_assert_eq(h.cgroup_meta_stamp(h.ctx, scope), 0, "a stamp after the cgroup was removed");
	cr_assert_eq(h.cgroup_meta(h.ctx, scope, kv, 8, scratch, sizeof(scratch)), 0);

	/* a new cache at the same address does not see the old one's answers */
	podmeta_free(pm);
	uint64_t scope2 = mkdirs(POD_SCOPE);
	pm = podmeta_new(tree, 16);
	podmeta_hooks(pm, &h);
	cr_assert_eq(h.cgroup_meta(h.ctx, scope2, kv, 8, scratch, sizeof(scratch)), 2);
	podmeta_free(pm);
}

struct hammer {
	struct podmeta *pm;
	uint64_t *ids;
	int n, errors;
};

static void *hammer_lookups(void *arg)
{
	struct hammer *h = arg;
	unsigned x = (unsigned)(uintptr_t)h;
	for (int r = 0; r < 5000; r++) {
		struct podmeta_entry e;
		x = x * 1103515245u + 12345u;
		int i = (int)((x >> 16) % (unsigned)h->n);
		int rc = podmeta_lookup(h->pm, h->ids[i], &e);
		if (rc || strlen(e.ids.container_id) != 64 || strcmp(e.ids.pod_uid, UID) ||
		    (e.pod_name[0] && strcmp(e.pod_name, "web")))
			h->errors++;
		if (r % 97 == 0)
			podmeta_forget(h->pm, h->ids[(i + 1) % h->n]);
	}
	return NULL;
}

Test(podmeta, concurrent_lookups_and_feeds)
{
	enum { N = 12 };
	uint64_t ids[N];
	for (int i = 0; i < N; i++) {
		char rel[300];
		snprintf(rel, sizeof(rel), "kubepods/burstable/pod" UID "/%064x", i + 1);
		ids[i] = mkdirs(rel);
	}
	struct podmeta *pm = podmeta_new(tree, 8); /* smaller than the set: evictions too */
	struct hammer h[3];
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		h[i] = (struct hammer){.pm = pm, .ids = ids, .n = N};
		pthread_create(&th[i], NULL, hammer_lookups, &h[i]);
	}
	for (int r = 0; r < 5000; r++)
		podmeta_pod_update(pm, UID, "ns", "web", r % 2);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(h[i].errors, 0);
	}
	struct podmeta_stats st;
	podmeta_get_stats(pm, &st);
	cr_assert_eq(st.hits + st.misses, 15000);
	cr_assert_gt(st.evictions, 0);
	podmeta_free(pm);
}

/* ---- as root: a real kubelet-shaped cgroup2 directory ---- */

static char cg_root[1024];
static char made[4][1024];
static int nmade;
static pid_t child = -1;

static int find_cgroup2(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int rc = -1;
	while (f && rc && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8))
			continue;
		char mnt[1024];
		if (sscanf(line, "%*s %*s %*s %*s %1023s", mnt) == 1) {
			snprintf(buf, len, "%s", mnt);
			rc = 0;
		}
	}
	if (f)
		fclose(f);
	return rc;
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	ssize_t n = write(fd, s, strlen(s));
	int err = errno;
	close(fd);
	cr_assert_eq(n, (ssize_t)strlen(s), "%s: %s", path, strerror(err));
}

static void cgroup_cleanup(void)
{
	if (child > 0) {
		char procs[1100], pid[32];
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg_root);
		snprintf(pid, sizeof(pid), "%d", child);
		int fd = open(procs, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, pid, strlen(pid)) < 0)
				fprintf(stderr, "moving %d back: %s\n", child, strerror(errno));
			close(fd);
		}
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
	for (int i = nmade - 1; i >= 0; i--)
		if (rmdir(made[i]))
			fprintf(stderr, "rmdir %s: %s\n", made[i], strerror(errno));
	nmade = 0;
}

Test(podmeta_root, kubelet_shaped_cgroup, .fini = cgroup_cleanup)
{
	if (geteuid() != 0) {
		const char *ci = getenv("CI");
		if (ci && (!strcmp(ci, "true") || !strcmp(ci, "1")))
			cr_assert_fail(
			    "needs root to make a cgroup (CI=true: a skip is a failure)");
		cr_skip_test("needs root to make a cgroup2 directory and move a process into it");
	}
	cr_assert_eq(find_cgroup2(cg_root, sizeof(cg_root)), 0, "no cgroup2 mount");

	char cid[65], uid[37], uid_[37];
	snprintf(cid, sizeof(cid), "%016x%016x%016x%016x", (unsigned)getpid(), 0xc0ffeeu, 7u, 9u);
	snprintf(uid, sizeof(uid), "%08x-9b3c-4d5e-8f70-a1b2c3d4e5f6", (unsigned)getpid());
	snprintf(uid_, sizeof(uid_), "%08x_9b3c_4d5e_8f70_a1b2c3d4e5f6", (unsigned)getpid());
	char rel[600];
	snprintf(rel, sizeof(rel),
		 "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/"
		 "cri-containerd-%s.scope",
		 uid_, cid);
	/* make each missing level, remember what to remove */
	char path[1024];
	snprintf(path, sizeof(path), "%s", cg_root);
	for (const char *p = rel + 1; *p;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		size_t l = strlen(path);
		snprintf(path + l, sizeof(path) - l, "/%.*s", (int)n, p);
		if (mkdir(path, 0755) == 0)
			snprintf(made[nmade++], sizeof(made[0]), "%s", path);
		else
			cr_assert_eq(errno, EEXIST, "mkdir %s: %s", path, strerror(errno));
		p += n + (slash ? 1 : 0);
	}

	/* a process that starts before podmeta does, moved into the scope */
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		for (;;)
			pause();
	}
	char procs[1100], pidbuf[32];
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	snprintf(pidbuf, sizeof(pidbuf), "%d", child);
	write_file(procs, pidbuf);

	/* its cgroup, as the kernel reports it */
	char pcg[64], line[1024], mine[1024] = "";
	snprintf(pcg, sizeof(pcg), "/proc/%d/cgroup", child);
	FILE *f = fopen(pcg, "re");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = 0;
			snprintf(mine, sizeof(mine), "%s", line + 3);
		}
	fclose(f);
	cr_assert_str_eq(mine, rel, "the child's cgroup2 path");
	char full[2100];
	snprintf(full, sizeof(full), "%s%s", cg_root, mine);
	struct stat st;
	cr_assert_eq(stat(full, &st), 0);
	uint64_t cgid = st.st_ino;

	struct podmeta *pm = podmeta_new(NULL, 64);
	cr_assert_not_null(pm, "podmeta_new: %s", strerror(errno));
	char got[1024];
	cr_assert_eq(podmeta_cgroup_path(pm, cgid, got, sizeof(got)), 0);
	cr_assert_str_eq(got, rel);
	struct podmeta_entry e;
	cr_assert_eq(podmeta_lookup(pm, cgid, &e), 0);
	cr_assert_str_eq(e.ids.container_id, cid);
	cr_assert_str_eq(e.ids.pod_uid, uid);
	cr_assert_str_eq(e.ids.runtime, "containerd");
	podmeta_pod_update(pm, uid, "default", "nginx-7c5ddbdf54-x2x9q", false);
	cr_assert_eq(podmeta_lookup(pm, cgid, &e), 0);
	cr_assert_str_eq(e.pod_name, "nginx-7c5ddbdf54-x2x9q");
	cr_assert_str_eq(e.pod_namespace, "default");

	/* the same through the walk, as without CAP_DAC_READ_SEARCH */
	int rfd = open(cg_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_eq(cgroup_find_by_id(rfd, cgid, got, sizeof(got)), 0);
	cr_assert_str_eq(got, rel);
	close(rfd);

	/* the host's own cgroup is no container */
	snprintf(full, sizeof(full), "%s", cg_root);
	cr_assert_eq(stat(full, &st), 0);
	cr_assert_eq(podmeta_lookup(pm, st.st_ino, &e), -ENOENT);

	/* rmdir, then forget: the id resolves to nothing */
	cgroup_cleanup();
	podmeta_forget(pm, cgid);
	cr_assert_eq(podmeta_lookup(pm, cgid, &e), -ENOENT);
	podmeta_free(pm);
}
