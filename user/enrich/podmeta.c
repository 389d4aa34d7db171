/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes metadata for kernel events (see podmeta.h).
 *
 * cgroup id -> path: a cgroup2 id is the inode number of its directory, and
 * kernfs exports it as a file handle, so open_by_handle_at() on the cgroup2
 * mount plus readlink(/proc/self/fd/N) gives the path in two syscalls. Without
 * CAP_DAC_READ_SEARCH (or without /proc) we walk the tree and compare d_ino.
 * Both work for cgroups made before the agent started.
 *
 * Two bounded LRU tables behind one mutex: cgroup id -> parsed ids (negative
 * results too, so a host process costs one resolution), and pod uid -> name
 * and namespace.
 */
#include "enrich/podmeta.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "core/collector.h"
#include "core/event.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define CGROUP_PATH_MAX 4096
#define FILEID_KERNFS 0xfe /* include/linux/exportfs.h: a kernfs node id */
#define WALK_MAX_DEPTH 64

/* ---- the path parser ---- */

static bool is_lhex(char c)
{
	return (c >= '0' && c <= 'f' && (c <= '9' || c >= 'a'));
}

static bool all_lhex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_lhex(s[i]))
			return false;
	return true;
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
	size_t pl = strlen(p);
	return n >= pl && !memcmp(s, p, pl);
}

static bool has_suffix(const char *s, size_t n, const char *p)
{
	size_t pl = strlen(p);
	return n >= pl && !memcmp(s + n - pl, p, pl);
}

static bool contains(const char *s, size_t n, const char *p)
{
	return memmem(s, n, p, strlen(p)) != NULL;
}

/* A pod uid as the cgroup path shows it: 8-4-4-4-12 lowercase hex with '-'
 * (cgroupfs) or '_' (systemd escapes '-'), or 32 hex digits (static pods use
 * a hash). Writes it with dashes. */
static bool parse_pod_uid(const char *s, size_t n, char out[40])
{
	if (n == 32 && all_lhex(s, n)) {
		memcpy(out, s, 32);
		out[32] = 0;
		return true;
	}
	if (n != 36)
		return false;
	char sep = s[8];
	if (sep != '-' && sep != '_')
		return false;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != sep)
				return false;
			out[i] = '-';
		} else {
			if (!is_lhex(s[i]))
				return false;
			out[i] = s[i];
		}
	}
	out[36] = 0;
	return true;
}

static bool set_container(struct cgroup_ids *out, const char *id, size_t n, const char *runtime)
{
	if (n != 64 || !all_lhex(id, n))
		return false;
	memcpy(out->container_id, id, 64);
	out->container_id[64] = 0;
	snprintf(out->runtime, sizeof(out->runtime), "%s", runtime);
	return true;
}

/* A runtime's name prefix, in the systemd scope form "<prefix><id>.scope",
 * the cgroupfs form "<prefix><id>" and the "slice:<name>:<id>" form. */
static const struct {
	const char *prefix; /* before the id in a scope name */
	const char *name;   /* between the colons */
	const char *runtime;
} runtimes[] = {
    {"cri-containerd-", "cri-containerd", "containerd"},
    {"crio-conmon-", NULL, "cri-o"}, /* CRI-O's monitor of that container */
    {"crio-", "crio", "cri-o"},
    {"docker-", "docker", "docker"},
};

/* A pod cgroup: systemd "...kubepods[-qos]-pod<uid>.slice", or cgroupfs
 * "pod<uid>" below a kubepods component. */
static void parse_pod(const char *c, size_t n, bool kube, struct cgroup_ids *out)
{
	char uid[40];
	if (has_suffix(c, n, ".slice") && contains(c, n, "kubepods")) {
		size_t sn = n - strlen(".slice");
		/* the last "-pod" starts the uid */
		for (size_t i = sn; i >= 4; i--) {
			if (!memcmp(c + i - 4, "-pod", 4)) {
				if (parse_pod_uid(c + i, sn - i, uid))
					memcpy(out->pod_uid, uid, sizeof(uid));
				return;
			}
		}
		return;
	}
	if (kube && has_prefix(c, n, "pod") && parse_pod_uid(c + 3, n - 3, uid))
		memcpy(out->pod_uid, uid, sizeof(uid));
}

static void parse_component(const char *c, size_t n, bool *kube, bool prev_docker,
			    struct cgroup_ids *out)
{
	/* "kubepods-burstable-pod<uid>.slice:cri-containerd:<id>" (the systemd
	 * driver's name on some cgroup v1 setups) */
	const char *colon = memchr(c, ':', n);
	if (colon) {
		size_t pn = (size_t)(colon - c);
		const char *rest = colon + 1, *colon2 = memchr(rest, ':', n - pn - 1);
		if (!colon2)
			return;
		if (contains(c, pn, "kubepods"))
			*kube = true;
		parse_pod(c, pn, *kube, out);
		size_t rn = (size_t)(colon2 - rest);
		const char *id = colon2 + 1;
		size_t idn = n - pn - 1 - rn - 1;
		for (size_t i = 0; i < sizeof(runtimes) / sizeof(runtimes[0]); i++)
			if (runtimes[i].name && strlen(runtimes[i].name) == rn &&
			    !memcmp(rest, runtimes[i].name, rn))
				set_container(out, id, idn, runtimes[i].runtime);
		return;
	}
	if (contains(c, n, "kubepods"))
		*kube = true;
	parse_pod(c, n, *kube, out);

	size_t sn = has_suffix(c, n, ".scope") ? n - strlen(".scope") : n;
	for (size_t i = 0; i < sizeof(runtimes) / sizeof(runtimes[0]); i++) {
		if (has_prefix(c, sn, runtimes[i].prefix)) {
			size_t pl = strlen(runtimes[i].prefix);
			if (set_container(out, c + pl, sn - pl, runtimes[i].runtime))
				return;
		}
	}
	/* cgroupfs: the bare id below a pod ("/kubepods/burstable/pod<uid>/<id>";
	 * the runtime does not show) or below "docker" ("/docker/<id>") */
	if (n == 64 && (prev_docker || (*kube && out->pod_uid[0])))
		set_container(out, c, n, prev_docker ? "docker" : "");
}

int cgroup_path_parse(const char *path, size_t len, struct cgroup_ids *out)
{
	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!path || !len || len > CGROUP_PATH_MAX || memchr(path, 0, len))
		return -EINVAL;
	while (len && (path[len - 1] == '\n' || path[len - 1] == '\r' || path[len - 1] == ' '))
		len--;
	bool kube = false, prev_docker = false;
	size_t i = 0;
	while (i < len) {
		while (i < len && path[i] == '/')
			i++;
		size_t j = i;
		while (j < len && path[j] != '/')
			j++;
		if (j > i) {
			parse_component(path + i, j - i, &kube, prev_docker, out);
			prev_docker = j - i == 6 && !memcmp(path + i, "docker", 6);
		}
		i = j;
	}
	if (!out->container_id[0] && !out->pod_uid[0]) {
		memset(out, 0, sizeof(*out));
		return -ENOENT;
	}
	return 0;
}

/* ---- cgroup id -> path ---- */

static int walk(int fd0, uint64_t id, char *buf, size_t len, size_t at, int depth)
{
	if (depth > WALK_MAX_DEPTH) {
		close(fd0);
		return -ENOENT;
	}
	DIR *d = fdopendir(fd0);
	if (!d) {
		int err = -errno;
		close(fd0);
		return err;
	}
	int rc = -ENOENT;
	struct dirent *de;
	while (rc == -ENOENT && (de = readdir(d))) {
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		size_t nl = strlen(de->d_name);
		if (at + 1 + nl + 1 > len)
			continue; /* deeper than the buffer: cannot be named */
		buf[at] = '/';
		memcpy(buf + at + 1, de->d_name, nl + 1);
		if ((uint64_t)de->d_ino == id)
			rc = 0;
		else {
			int fd = openat(dirfd(d), de->d_name,
					O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (fd >= 0)
				rc = walk(fd, id, buf, len, at + 1 + nl, depth + 1);
		}
		if (rc)
			buf[at] = 0;
	}
	closedir(d);
	return rc;
}

int cgroup_find_by_id(int root_fd, uint64_t id, char *buf, size_t len)
{
	if (root_fd < 0 || !buf || len < 2)
		return -EINVAL;
	struct stat st;
	if (fstat(root_fd, &st))
		return -errno;
	buf[0] = 0;
	if ((uint64_t)st.st_ino == id) {
		snprintf(buf, len, "/");
		return 0;
	}
	int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return walk(fd, id, buf, len, 0, 0);
}

/* ---- the caches ---- */

struct cg_entry {
	uint64_t id;
	int status; /* 0: ids below; -ENOENT: not a container's cgroup */
	struct cgroup_ids ids;
	struct cg_entry *hnext;	      /* hash chain */
	struct cg_entry *prev, *next; /* LRU, most recent first */
};

struct pod_entry {
	char uid[40];
	char ns[64];
	char name[254];
	struct pod_entry *hnext;
	struct pod_entry *prev, *next;
};

struct podmeta {
	pthread_mutex_t mu;
	char root[PATH_MAX];
	size_t root_len;
	int root_fd;
	atomic_bool use_handles; /* cleared for good when handles are refused */
	int handle_type;
	unsigned handle_bytes;
	size_t max;

	struct cg_entry *cg;
	struct cg_entry *cg_free; /* forgotten slots, linked by next */
	struct cg_entry **cg_hash;
	size_t cg_hmask, cg_used;
	struct cg_entry cg_lru; /* sentinel */

	struct pod_entry **pod_hash;
	size_t pod_hmask, npods;
	struct pod_entry pod_lru;

	struct podmeta_stats st;
};

static size_t pow2_at_least(size_t n)
{
	size_t p = 16;
	while (p < n)
		p <<= 1;
	return p;
}

static size_t hash_id(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)id;
}

static size_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

#define LRU_UNLINK(e)                                                                              \
	do {                                                                                       \
		(e)->prev->next = (e)->next;                                                       \
		(e)->next->prev = (e)->prev;                                                       \
	} while (0)
#define LRU_PUSH(head, e)                                                                          \
	do {                                                                                       \
		(e)->next = (head)->next;                                                          \
		(e)->prev = (head);                                                                \
		(head)->next->prev = (e);                                                          \
		(head)->next = (e);                                                                \
	} while (0)

struct podmeta *podmeta_new(const char *cgroup_root, size_t max_entries)
{
	if (max_entries == 0 || max_entries > (1u << 24)) {
		errno = EINVAL;
		return NULL;
	}
	struct podmeta *pm = calloc(1, sizeof(*pm));
	if (!pm)
		return NULL;
	pm->root_fd = -1;
	int err = 0;
	if (cgroup_root) {
		if (strlen(cgroup_root) >= sizeof(pm->root)) {
			err = ENAMETOOLONG;
			goto fail;
		}
		snprintf(pm->root, sizeof(pm->root), "%s", cgroup_root);
	} else if (cgroup2_find_mount(pm->root, sizeof(pm->root))) {
		err = ENOENT;
		goto fail;
	}
	pm->root_len = strlen(pm->root);
	while (pm->root_len > 1 && pm->root[pm->root_len - 1] == '/')
		pm->root[--pm->root_len] = 0;
	pm->root_fd = open(pm->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pm->root_fd < 0) {
		err = errno;
		goto fail;
	}
	/* learn kernfs's handle format from the root itself */
	struct {
		struct file_handle fh;
		unsigned char bytes[MAX_HANDLE_SZ];
	} h;
	int mnt;
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	if (!name_to_handle_at(pm->root_fd, "", &h.fh, &mnt, AT_EMPTY_PATH) &&
	    h.fh.handle_type == FILEID_KERNFS && h.fh.handle_bytes == sizeof(uint64_t)) {
		uint64_t v;
		struct stat st;
		memcpy(&v, h.fh.f_handle, sizeof(v));
		if (!fstat(pm->root_fd, &st) && v == (uint64_t)st.st_ino) {
			atomic_store(&pm->use_handles, true);
			pm->handle_type = h.fh.handle_type;
			pm->handle_bytes = h.fh.handle_bytes;
		}
	}

	pm->max = max_entries;
	pm->cg = calloc(max_entries, sizeof(*pm->cg));
	size_t hs = pow2_at_least(max_entries);
	pm->cg_hash = calloc(hs, sizeof(*pm->cg_hash));
	pm->cg_hmask = hs - 1;
	pm->pod_hash = calloc(hs, sizeof(*pm->pod_hash));
	pm->pod_hmask = hs - 1;
	if (!pm->cg || !pm->cg_hash || !pm->pod_hash) {
		err = ENOMEM;
		goto fail;
	}
	pm->cg_lru.next = pm->cg_lru.prev = &pm->cg_lru;
	pm->pod_lru.next = pm->pod_lru.prev = &pm->pod_lru;
	pthread_mutex_init(&pm->mu, NULL);
	return pm;
fail:
	if (pm->root_fd >= 0)
		close(pm->root_fd);
	free(pm->cg);
	free(pm->cg_hash);
	free(pm->pod_hash);
	free(pm);
	errno = err;
	return NULL;
}

void podmeta_free(struct podmeta *pm)
{
	if (!pm)
		return;
	for (struct pod_entry *p = pm->pod_lru.next, *n; p != &pm->pod_lru; p = n) {
		n = p->next;
		free(p);
	}
	pthread_mutex_destroy(&pm->mu);
	close(pm->root_fd);
	free(pm->cg);
	free(pm->cg_hash);
	free(pm->pod_hash);
	free(pm);
}

int podmeta_cgroup_path(struct podmeta *pm, uint64_t cgroup_id, char *buf, size_t len)
{
	if (!pm || !buf || len < 2)
		return -EINVAL;
	if (atomic_load(&pm->use_handles)) {
		struct {
			struct file_handle fh;
			unsigned char bytes[sizeof(uint64_t)];
		} h;
		h.fh.handle_bytes = pm->handle_bytes;
		h.fh.handle_type = pm->handle_type;
		memcpy(h.fh.f_handle, &cgroup_id, sizeof(cgroup_id));
		int fd = open_by_handle_at(pm->root_fd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ESTALE || errno == ENOENT || errno == ENOTDIR)
				return -ENOENT; /* no such cgroup (any more) */
			if (errno != EPERM && errno != EOPNOTSUPP && errno != EINVAL)
				return -errno;
			atomic_store(&pm->use_handles, false); /* not allowed: walk from now on */
		} else {
			char proc[64], full[PATH_MAX];
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
			ssize_t n = readlink(proc, full, sizeof(full) - 1);
			close(fd);
			if (n >= (ssize_t)sizeof(full) - 1)
				return -ENAMETOOLONG;
			if (n > 0) {
				full[n] = 0;
				/* removed since: the path it had */
				static const char deleted[] = " (deleted)";
				if ((size_t)n > sizeof(deleted) - 1 &&
				    !strcmp(full + n - (sizeof(deleted) - 1), deleted))
					full[n - (sizeof(deleted) - 1)] = 0;
				const char *rel = full;
				if (!strncmp(full, pm->root, pm->root_len) &&
				    (full[pm->root_len] == '/' || !full[pm->root_len]))
					rel = full + pm->root_len;
				if (strlen(rel) + 1 > len)
					return -ENAMETOOLONG;
				snprintf(buf, len, "%s", *rel ? rel : "/");
				return 0;
			}
			/* no /proc: fall through to the walk */
		}
	}
	return cgroup_find_by_id(pm->root_fd, cgroup_id, buf, len);
}

static struct cg_entry *cg_find(struct podmeta *pm, uint64_t id)
{
	for (struct cg_entry *e = pm->cg_hash[hash_id(id) & pm->cg_hmask]; e; e = e->hnext)
		if (e->id == id)
			return e;
	return NULL;
}

static void cg_unhash(struct podmeta *pm, struct cg_entry *e)
{
	struct cg_entry **pp = &pm->cg_hash[hash_id(e->id) & pm->cg_hmask];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	LRU_UNLINK(e);
}

static struct pod_entry *pod_find(struct podmeta *pm, const char *uid)
{
	for (struct pod_entry *p = pm->pod_hash[hash_str(uid) & pm->pod_hmask]; p; p = p->hnext)
		if (!strcmp(p->uid, uid))
			return p;
	return NULL;
}

static void pod_remove(struct podmeta *pm, struct pod_entry *p)
{
	struct pod_entry **pp = &pm->pod_hash[hash_str(p->uid) & pm->pod_hmask];
	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = p->hnext;
	LRU_UNLINK(p);
	free(p);
	pm->npods--;
}

/* Fills out from a cache entry and the pod table. Called locked. */
static int fill(struct podmeta *pm, const struct cg_entry *e, struct podmeta_entry *out)
{
	memset(out, 0, sizeof(*out));
	if (e->status)
		return e->status;
	out->ids = e->ids;
	if (e->ids.pod_uid[0]) {
		struct pod_entry *p = pod_find(pm, e->ids.pod_uid);
		if (p) {
			memcpy(out->pod_name, p->name, sizeof(out->pod_name));
			memcpy(out->pod_namespace, p->ns, sizeof(out->pod_namespace));
		}
	}
	return 0;
}

int podmeta_lookup(struct podmeta *pm, uint64_t cgroup_id, struct podmeta_entry *out)
{
	if (!pm || !out)
		return -EINVAL;
	pthread_mutex_lock(&pm->mu);
	struct cg_entry *e = cg_find(pm, cgroup_id);
	if (e) {
		LRU_UNLINK(e);
		LRU_PUSH(&pm->cg_lru, e);
		pm->st.hits++;
		int rc = fill(pm, e, out);
		pthread_mutex_unlock(&pm->mu);
		return rc;
	}
	pm->st.misses++;
	pthread_mutex_unlock(&pm->mu);

	/* resolve without the lock: syscalls, maybe a walk */
	char path[CGROUP_PATH_MAX + 1];
	struct cgroup_ids ids;
	int status;
	if (cgroup_id == 0) {
		status = -ENOENT;
	} else {
		int rc = podmeta_cgroup_path(pm, cgroup_id, path, sizeof(path));
		if (rc == -ENAMETOOLONG)
			rc = -ENOENT; /* deeper than any container's cgroup */
		if (rc && rc != -ENOENT) {
			memset(out, 0, sizeof(*out));
			return rc; /* transient: not cached */
		}
		status = rc ? rc : cgroup_path_parse(path, strlen(path), &ids);
		if (status == -EINVAL)
			status = -ENOENT;
	}

	pthread_mutex_lock(&pm->mu);
	if (!status)
		pm->st.resolves++;
	e = cg_find(pm, cgroup_id); /* another thread may have added it */
	if (!e) {
		if (pm->cg_free) {
			e = pm->cg_free;
			pm->cg_free = e->next;
		} else if (pm->cg_used < pm->max) {
			e = &pm->cg[pm->cg_used++];
		} else {
			e = pm->cg_lru.prev; /* the least recently used */
			cg_unhash(pm, e);
			pm->st.evictions++;
		}
		e->id = cgroup_id;
		e->status = status;
		if (!status)
			e->ids = ids;
		else
			memset(&e->ids, 0, sizeof(e->ids));
		size_t b = hash_id(cgroup_id) & pm->cg_hmask;
		e->hnext = pm->cg_hash[b];
		pm->cg_hash[b] = e;
		LRU_PUSH(&pm->cg_lru, e);
	}
	int rc = fill(pm, e, out);
	pthread_mutex_unlock(&pm->mu);
	return rc;
}

void podmeta_forget(struct podmeta *pm, uint64_t cgroup_id)
{
	if (!pm)
		return;
	pthread_mutex_lock(&pm->mu);
	struct cg_entry *e = cg_find(pm, cgroup_id);
	if (e) {
		cg_unhash(pm, e);
		e->next = pm->cg_free;
		pm->cg_free = e;
	}
	pthread_mutex_unlock(&pm->mu);
}

void podmeta_pod_update(struct podmeta *pm, const char *uid, const char *ns, const char *name,
			bool deleted)
{
	if (!pm || !uid || !*uid || strlen(uid) >= sizeof(((struct pod_entry *)0)->uid))
		return;
	pthread_mutex_lock(&pm->mu);
	struct pod_entry *p = pod_find(pm, uid);
	if (deleted) {
		if (p)
			pod_remove(pm, p);
		goto out;
	}
	if (!p) {
		if (pm->npods >= pm->max) {
			pod_remove(pm, pm->pod_lru.prev);
			pm->st.evictions++;
		}
		p = calloc(1, sizeof(*p));
		if (!p)
			goto out;
		snprintf(p->uid, sizeof(p->uid), "%s", uid);
		size_t b = hash_str(uid) & pm->pod_hmask;
		p->hnext = pm->pod_hash[b];
		pm->pod_hash[b] = p;
		pm->npods++;
	} else {
		LRU_UNLINK(p);
	}
	LRU_PUSH(&pm->pod_lru, p);
	snprintf(p->ns, sizeof(p->ns), "%s", ns ? ns : "");
	snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
out:
	pthread_mutex_unlock(&pm->mu);
}

static size_t put_kv(struct meta_kv *kv, size_t n, size_t max, const char *key, const char *val,
		     char **scratch, size_t *left)
{
	size_t len = strlen(val);
	if (n >= max || !len || len + 1 > *left)
		return n;
	memcpy(*scratch, val, len + 1);
	kv[n].key = key;
	kv[n].val = *scratch;
	*scratch += len + 1;
	*left -= len + 1;
	return n + 1;
}

static size_t hook_cgroup_meta(void *ctx, uint64_t cgroup_id, struct meta_kv *kv, size_t max,
			       char *scratch, size_t scratch_len)
{
	struct podmeta_entry e;
	if (podmeta_lookup(ctx, cgroup_id, &e))
		return 0;
	size_t n = 0;
	n = put_kv(kv, n, max, "container_id", e.ids.container_id, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "pod_uid", e.ids.pod_uid, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "pod_name", e.pod_name, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "pod_namespace", e.pod_namespace, &scratch, &scratch_len);
	return n;
}

static void hook_cgroup_removed(void *ctx, uint64_t cgroup_id)
{
	podmeta_forget(ctx, cgroup_id);
}

static void hook_pod_update(void *ctx, const char *uid, const char *ns, const char *name,
			    bool deleted)
{
	podmeta_pod_update(ctx, uid, ns, name, deleted);
}

void podmeta_hooks(struct podmeta *pm, struct collector_hooks *out)
{
	*out = (struct collector_hooks){
		.ctx = pm,
		.cgroup_meta = hook_cgroup_meta,
		.cgroup_removed = hook_cgroup_removed,
		.pod_update = hook_pod_update,
	};
}

void podmeta_get_stats(struct podmeta *pm, struct podmeta_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!pm)
		return;
	pthread_mutex_lock(&pm->mu);
	*out = pm->st;
	out->pods = pm->npods;
	pthread_mutex_unlock(&pm->mu);
}
