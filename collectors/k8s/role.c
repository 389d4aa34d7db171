/* SPDX-License-Identifier: Apache-2.0 */
/* The k8s collector's two roles. The node role (every agent) watches the
 * node-scoped resources of this node (pods, spec.nodeName); the cluster role
 * watches everything else, once per cluster: only the holder of the Lease
 * runs it (lease.c), and it resumes from the cursors the lease carries. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/k8s/internal.h"
#include "collectors/k8s/lease.h"
#include "util/log.h"
#include "util/strbuf.h"

int k8s_role_parse(const char *s, enum k8s_role *out)
{
	if (!s || !*s || !strcmp(s, "auto"))
		*out = K8S_ROLE_AUTO;
	else if (!strcmp(s, "node"))
		*out = K8S_ROLE_NODE;
	else if (!strcmp(s, "cluster"))
		*out = K8S_ROLE_CLUSTER;
	else
		return -EINVAL;
	return 0;
}

bool k8s_role_is_cluster(const struct k8s *k, const struct res_def *d)
{
	return !(d->node_scoped && k->node_sel);
}

bool k8s_role_runs(const struct k8s *k, const struct res_def *d)
{
	bool cluster = k8s_role_is_cluster(k, d);
	switch (k->role) {
	case K8S_ROLE_NODE:
		return !cluster;
	case K8S_ROLE_CLUSTER:
		return cluster;
	default:
		return true;
	}
}

/* The namespace of the lease: the option, POD_NAMESPACE, the serviceaccount's
 * namespace file, or "default". malloc'd. */
static char *lease_namespace(const struct k8s_options *o)
{
	if (o && o->lease_ns && *o->lease_ns)
		return strdup(o->lease_ns);
	const char *e = getenv("POD_NAMESPACE");
	if (e && *e)
		return strdup(e);
	const char *dir = getenv("TAPIO_K8S_SA_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/namespace", dir && *dir ? dir : K8S_SA_DIR);
	size_t len = 0;
	char *s = k8s_read_file(path, 4096, &len);
	if (s) {
		while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
			s[--len] = '\0';
		if (len)
			return s;
		free(s);
	}
	return strdup("default");
}

/* A DNS-1123 label (what a namespace and a lease name are). */
static bool dns_label(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (!n || n > max || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      (max > 63 && s[i] == '.')))
			return false;
	return true;
}

int k8s_role_setup(struct k8s *k, const struct k8s_options *o, const char *node, char *err,
		   size_t errlen)
{
	struct k8s_lease *l = &k->lease;
	l->k = k;
	bool any_cluster = false, any = false;
	for (size_t i = 0; i < k->nres; i++) {
		any = true;
		any_cluster |= k->res[i].cluster;
	}
	if (!any) {
		err_printf(err, errlen,
			   "--k8s-role %s: none of the configured resources is in this role%s",
			   o && o->role && *o->role ? o->role : "auto",
			   k->node_sel ? "" : " (the node role needs --node-name / NODE_NAME)");
		return -EINVAL;
	}
	k->use_lease = any_cluster;
	if (!any_cluster)
		return 0;
	unsigned renew = o && o->lease_renew_s ? o->lease_renew_s : 10;
	unsigned dur = o && o->lease_duration_s ? o->lease_duration_s : 15;
	if (renew >= dur) {
		err_printf(
		    err, errlen,
		    "--k8s-lease-renew (%u s) must be shorter than --k8s-lease-duration (%u s)",
		    renew, dur);
		return -EINVAL;
	}
	l->renew_ms = renew * 1000u;
	l->duration_ms = dur * 1000u;
	const char *name = o && o->lease_name && *o->lease_name ? o->lease_name : "tapio-cluster";
	l->name = strdup(name);
	l->ns = lease_namespace(o);
	const char *pod = getenv("POD_NAME");
	struct strbuf h = STRBUF_INIT;
	sb_puts(&h, node && *node ? node : "unknown-node");
	if (pod && *pod) {
		sb_putc(&h, '/');
		sb_puts(&h, pod);
	}
	l->holder = h.buf;
	if (!l->name || !l->ns || !l->holder || h.err)
		return -ENOMEM;
	if (!dns_label(l->name, 253)) {
		err_printf(err, errlen, "--k8s-lease-name '%.64s' is not a DNS subdomain name",
			   name);
		return -EINVAL;
	}
	if (!dns_label(l->ns, 63)) {
		err_printf(err, errlen, "the lease namespace '%.64s' is not a DNS label", l->ns);
		return -EINVAL;
	}
	struct strbuf u = STRBUF_INIT;
	sb_printf(&u, "%s/apis/coordination.k8s.io/v1/namespaces/%s/leases", k->server, l->ns);
	l->coll_url = u.err ? NULL : strdup(u.buf);
	sb_printf(&u, "/%s", l->name);
	l->url = u.err ? NULL : strdup(u.buf);
	sb_free(&u);
	if (!l->coll_url || !l->url)
		return -ENOMEM;
	return 0;
}

int k8s_role_start(struct k8s *k)
{
	for (size_t i = 0; i < k->nres; i++) {
		struct k8s_res *r = &k->res[i];
		if (r->cluster)
			continue;
		int rc = k8s_res_start(r);
		if (rc)
			return rc;
	}
	if (k->use_lease)
		return k8s_lease_start(&k->lease);
	return 0;
}

void k8s_role_stop(struct k8s *k)
{
	if (k->use_lease)
		k8s_lease_stop(&k->lease); /* stops the cluster role, then releases */
	for (size_t i = 0; i < k->nres; i++)
		k8s_res_stop(&k->res[i]);
}

void k8s_role_cluster_start(struct k8s *k, const struct k8s_lease_rec *rec)
{
	pthread_mutex_lock(&k->role_lock);
	if (!k->cluster_running) {
		size_t n = 0, resumed = 0;
		for (size_t i = 0; i < k->nres; i++) {
			struct k8s_res *r = &k->res[i];
			if (!r->cluster)
				continue;
			const char *cur = rec ? k8s_lease_cursor(rec, r->def->name) : NULL;
			snprintf(r->lease_rv, sizeof(r->lease_rv), "%s", cur ? cur : "");
			resumed += cur && *cur;
			if (k8s_res_start(r) == 0)
				n++;
		}
		k->cluster_running = true;
		tlog(TLOG_INFO, "k8s", "cluster role: %zu resources, %zu resumed from the lease", n,
		     resumed);
	}
	pthread_mutex_unlock(&k->role_lock);
}

void k8s_role_cluster_stop(struct k8s *k)
{
	pthread_mutex_lock(&k->role_lock);
	for (size_t i = 0; i < k->nres; i++)
		if (k->res[i].cluster)
			atomic_store(&k->res[i].stop, true); /* all at once, then join */
	watch_stop_notify();
	for (size_t i = 0; i < k->nres; i++)
		if (k->res[i].cluster)
			k8s_res_stop(&k->res[i]);
	k->cluster_running = false;
	pthread_mutex_unlock(&k->role_lock);
}

void k8s_role_cursors(struct k8s *k, struct k8s_lease_rec *rec)
{
	for (size_t i = 0; i < k->nres; i++) {
		struct k8s_res *r = &k->res[i];
		if (!r->cluster)
			continue;
		char rv[64];
		cursor_get(&r->cur, rv, sizeof(rv));
		if (rv[0])
			(void)k8s_lease_set_cursor(rec, r->def->name, rv);
	}
}

void k8s_role_counters(struct k8s *k, counter_fn fn, void *ctx)
{
	if (!k->use_lease)
		return;
	struct k8s_lease *l = &k->lease;
	fn(ctx, "k8s_leader", "", atomic_load(&l->leader));
	fn(ctx, "k8s_lease_up", "", atomic_load(&l->reachable));
	fn(ctx, "k8s_lease_acquired", "", atomic_load(&l->acquired));
	fn(ctx, "k8s_lease_lost", "", atomic_load(&l->lost));
	fn(ctx, "k8s_lease_renew_failures", "", atomic_load(&l->renew_failures));
}
