/* SPDX-License-Identifier: Apache-2.0 */
/* The cgroup path parser (see cgroup_path.h): container id, runtime and pod
 * uid from the path alone. A pure function, fuzzed by fuzz_cgroup_path. */
#include "enrich/cgroup_path.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "util/parse.h"

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
	if (has_suffixn(c, n, ".slice") && contains(c, n, "kubepods")) {
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

	size_t sn = has_suffixn(c, n, ".scope") ? n - strlen(".scope") : n;
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
