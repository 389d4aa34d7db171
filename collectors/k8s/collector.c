/* SPDX-License-Identifier: Apache-2.0 */
/* The Kubernetes API collector. One thread per resource: each runs LIST
 * (paged) then WATCH from the list's resourceVersion, with its own cursor,
 * backoff and health, so that one slow or failing resource (a huge events
 * list, a 403 on secrets) never holds up the others. watch_run() blocks for
 * the life of a stream, which is what makes a thread per stream the simple
 * shape here. See README.md for the protocol and the guarantees.
 *
 * This file has the ops, the per-resource threads, the options and the
 * constructor; auth.c, list.c and stream.c the rest (internal.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectors/k8s/internal.h"
#include "core/config.h"
#include "core/event.h"
#include "core/options.h"
#include "core/state.h"
#include "util/fileio.h"
#include "util/backoff.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/strlist.h"

static const struct res_def res_defs[] = {
    {"pods", "/api/v1/pods", "Pod", "v1", false, true},
    {"services", "/api/v1/services", "Service", "v1", false, false},
    {"nodes", "/api/v1/nodes", "Node", "v1", false, false},
    {"events", "/api/v1/events", "Event", "v1", false, false},
    {"deployments", "/apis/apps/v1/deployments", "Deployment", "apps/v1", false, false},
    {"replicasets", "/apis/apps/v1/replicasets", "ReplicaSet", "apps/v1", false, false},
    {"configmaps", "/api/v1/configmaps", "ConfigMap", "v1", true, false},
    {"secrets", "/api/v1/secrets", "Secret", "v1", true, false},
};
#define NDEFS (sizeof(res_defs) / sizeof(res_defs[0]))

/* A resourceVersion as stored: printable, no blank, not empty. The API
 * server judges the rest (a 400 relists). */
static bool plausible_rv(const char *v)
{
	if (!*v)
		return false;
	for (; *v; v++)
		if ((unsigned char)*v <= ' ' || (unsigned char)*v >= 0x7f)
			return false;
	return true;
}

/* Loads the resource's resourceVersion cursor and its seen map. A cursor
 * that cannot be read back is reported by name and means "unknown": a
 * relist (the seen map keeps what was delivered from repeating). */
static void load_state(struct k8s_res *r)
{
	struct k8s *k = r->k;
	bool legacy;
	/* A decimal resourceVersion cut short is an older one: a re-read or a
	 * 410 and a relist, never a skip. */
	int n = cursor_load_legacy(&r->cur, cursor_decimal_whole, &legacy);
	if (legacy)
		collector_error(&k->base,
				"%s: %s/%s has no final newline (from an older tapio, or cut "
				"short); resuming from it",
				r->def->name, k->state_dir, r->cur.name);
	if (n > 0)
		cursor_get(&r->cur, r->rv, sizeof(r->rv));
	if (n == -EBADMSG || (n > 0 && !plausible_rv(r->rv))) {
		atomic_fetch_add(&k->base.n.errors, 1);
		collector_error(&k->base, "%s: %s/%s %s; the resourceVersion is unknown: relisting",
				r->def->name, k->state_dir, r->cur.name,
				n == -EBADMSG ? "is empty or cut short"
					      : "is not a resourceVersion");
		r->rv[0] = '\0';
	} else if (n < 0) {
		atomic_fetch_add(&k->base.n.errors, 1);
		collector_error(&k->base, "%s: reading %s/%s: %s; relisting", r->def->name,
				k->state_dir, r->cur.name, strerror(-n));
		r->rv[0] = '\0';
	}
	if (!k->state_dir || !*k->state_dir)
		return;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", k->state_dir, r->seen_file);
	/* relative to the state directory's fd, no symlink followed */
	int dfd = state_dir_open(k->state_dir, NULL, 0);
	if (dfd < 0)
		return;
	struct strbuf sb = STRBUF_INIT;
	int rc =
	    file_read_all(dfd, r->seen_file, 512u << 20, FILE_NOFOLLOW | FILE_REGULAR, &sb, NULL);
	close(dfd);
	if (rc) {
		if (rc != -ENOENT)
			collector_error(&k->base, "%s: %s: %s", r->def->name, path, strerror(-rc));
		sb_free(&sb);
		return;
	}
	char *s = sb.buf;
	size_t len = sb.len;
	uint64_t bad = 0, cbad = 0;
	rc = s ? seen_parse(&r->seen, s, len, &bad) : 0;
	if (rc == 0 && s) {
		pthread_mutex_lock(&r->cseen_lock);
		seen_parse(&r->cseen, s, len, &cbad);
		pthread_mutex_unlock(&r->cseen_lock);
	}
	if (rc == -EINVAL || bad)
		collector_error(&k->base, "%s: %s: %s; %llu bad lines skipped", r->def->name, path,
				rc == -EINVAL ? "not a tapio-k8s-seen file" : "loaded",
				(unsigned long long)bad);
	free(s);
}

static void *res_main(void *arg)
{
	struct k8s_res *r = arg;
	struct k8s *k = r->k;
	unsigned attempt = 0;
	bool need_list, first = true;

	load_state(r);
	if (r->cluster && k->use_lease && r->lease_rv[0]) {
		/* The cluster role's cursor is the lease's, not this node's; a lease
		 * that carries none yet (a first holder, or one killed before its
		 * first renew) leaves this node's acknowledged cursor in place. */
		snprintf(r->rv, sizeof(r->rv), "%s", r->lease_rv);
		(void)cursor_update(&r->cur, r->rv);
	}
	need_list = r->rv[0] == '\0';
	if (!need_list)
		k8s_prime_pods(r); /* a failure is logged; the watch goes on */

	while (!k8s_res_stopped(r)) {
		long http = 0;
		if (need_list) {
			int rc = k8s_do_list(r, &http);
			if (rc == -ECANCELED)
				break;
			if (rc == 0) {
				need_list = false;
				attempt = 0;
				atomic_store(&r->healthy, true);
			} else {
				if (http == 401 && k8s_on_unauthorized(r, "list"))
					continue;
				atomic_store(&r->healthy, false);
				if (sleep_or_stop(backoff_ms(attempt++, K8S_BACKOFF_BASE_MS,
							     K8S_BACKOFF_CAP_MS),
						  &r->stop))
					break;
				continue;
			}
		}
		if (!first)
			atomic_fetch_add(&k->base.n.reconnects, 1);
		first = false;
		enum k8s_outcome out = k8s_do_watch(r, &http);
		if (out == OUT_STOP)
			break;
		if (r->got_msg)
			attempt = 0;
		if (out == OUT_AGAIN) {
			atomic_store(&r->healthy, true);
			continue;
		}
		if (out == OUT_RELIST) {
			need_list = true;
			if (((!r->got_msg && (http == 410 || http == 400)) || r->refused) &&
			    sleep_or_stop(
				backoff_ms(attempt++, K8S_BACKOFF_BASE_MS, K8S_BACKOFF_CAP_MS),
				&r->stop))
				break;
			continue;
		}
		if (http == 401 && k8s_on_unauthorized(r, "watch"))
			continue;
		atomic_store(&r->healthy, false);
		if (sleep_or_stop(backoff_ms(attempt++, K8S_BACKOFF_BASE_MS, K8S_BACKOFF_CAP_MS),
				  &r->stop))
			break;
	}
	cursor_flush(&r->cur);
	k8s_save_seen(r, true);
	return NULL;
}

int k8s_res_start(struct k8s_res *r)
{
	if (r->started)
		return 0;
	atomic_store(&r->stop, atomic_load(&r->k->stop));
	atomic_store(&r->healthy, false);
	int rc = -pthread_create(&r->thr, NULL, res_main, r);
	if (!rc) {
		char comm[16];
		snprintf(comm, sizeof(comm), "k8s-%s", r->def->name);
		pthread_setname_np(r->thr, comm);
	}
	if (rc)
		collector_error(&r->k->base, "%s: cannot start a thread: %s", r->def->name,
				strerror(-rc));
	r->started = rc == 0;
	return rc;
}

void k8s_res_stop(struct k8s_res *r)
{
	atomic_store(&r->stop, true);
	watch_stop_notify();
	if (r->started) {
		pthread_join(r->thr, NULL);
		r->started = false;
	}
	atomic_store(&r->healthy, false);
}

/* ---- collector ops ---- */

static void k8s_stop(struct collector *c);

static int k8s_start(struct collector *c, struct queue *q)
{
	struct k8s *k = (struct k8s *)c;
	k->q = q;
	atomic_store(&k->stop, false);
	ack_register(c->source, &k->ack);
	int rc = watch_global_init();
	if (rc)
		return rc;
	if (k->state_dir && *k->state_dir) {
		rc = state_mkdir(k->state_dir);
		if (rc) {
			collector_error(c, "cannot create the state directory %s: %s", k->state_dir,
					strerror(-rc));
			return rc;
		}
	}
	rc = k8s_role_start(k);
	if (rc)
		k8s_stop(c);
	return rc;
}

static void k8s_stop(struct collector *c)
{
	struct k8s *k = (struct k8s *)c;
	atomic_store(&k->stop, true);
	watch_stop_notify();
	k8s_role_stop(k);
}

/* Healthy when every resource this agent runs now is; a follower's cluster
 * resources are not its to run. An agent that cannot reach the lease (a 403
 * from RBAC, ...) is unhealthy: it can never take the cluster role. */
static bool k8s_healthy(struct collector *c)
{
	struct k8s *k = (struct k8s *)c;
	size_t n = 0;
	if (k->use_lease && !atomic_load(&k->lease.reachable))
		return false;
	for (size_t i = 0; i < k->nres; i++) {
		struct k8s_res *r = &k->res[i];
		if (r->cluster && k->use_lease && !atomic_load(&k->lease.leader))
			continue;
		n++;
		if (!atomic_load(&r->healthy))
			return false;
	}
	return n > 0 || k->use_lease;
}

static void k8s_counters(struct collector *c, counter_fn fn, void *ctx)
{
	struct k8s *k = (struct k8s *)c;
	for (size_t i = 0; i < k->nres; i++) {
		struct k8s_res *r = &k->res[i];
		char labels[64];
		snprintf(labels, sizeof(labels), "resource=\"%s\"", r->def->name);
		fn(ctx, "lists", labels, atomic_load(&r->relists));
		fn(ctx, "duplicates_skipped", labels, atomic_load(&r->duplicates));
		fn(ctx, "data_stripped", labels, atomic_load(&r->stripped));
		fn(ctx, "vanished_deleted", labels, atomic_load(&r->tombstones));
		fn(ctx, "up", labels, atomic_load(&r->healthy));
	}
	k8s_role_counters(k, fn, ctx);
}

static void k8s_destroy(struct collector *c)
{
	struct k8s *k = (struct k8s *)c;
	if (k->ack_ok) {
		/* What the sink acknowledged after the threads ended. */
		ack_unregister(c->source, &k->ack);
		for (size_t i = 0; k->res && i < k->nres; i++) {
			cursor_flush(&k->res[i].cur);
			k8s_save_seen(&k->res[i], true);
		}
	}
	k8s_ack_destroy(k);
	for (size_t i = 0; k->res && i < k->nres; i++) {
		cursor_destroy(&k->res[i].cur);
		seen_free(&k->res[i].seen);
		seen_free(&k->res[i].cseen);
		pthread_mutex_destroy(&k->res[i].cseen_lock);
		free(k->res[i].list_cont);
	}
	free(k->res);
	k8s_token_free(k->token);
	free(k->token_file);
	free(k->server);
	free(k->source);
	free(k->ca_file);
	free(k->ca_pem);
	free(k->cert_file);
	free(k->cert_pem);
	free(k->key_file);
	k8s_token_free(k->key_pem);
	free(k->node_sel);
	free(k->state_dir);
	k8s_lease_free(&k->lease);
	pthread_mutex_destroy(&k->role_lock);
	pthread_mutex_destroy(&k->tok_lock);
	free(k);
}

static const struct collector_ops k8s_ops = {
    .name = "k8s",
    .start = k8s_start,
    .stop = k8s_stop,
    .healthy = k8s_healthy,
    .destroy = k8s_destroy,
    .counters = k8s_counters,
};

#define KO(n, t, f, d, h) OPT_ENTRY(struct k8s_options, n, t, f, d, h)

static const struct opt k8s_opt_table[] = {
    KO("k8s-kubeconfig", OPT_STR, kubeconfig, "",
       "kubeconfig file (else KUBECONFIG, else in-cluster)"),
    KO("k8s-resources", OPT_STR, resources, "",
       "comma list of resources to watch, empty = the default set"),
    KO("k8s-insecure", OPT_BOOL, insecure, "false", "do not verify the API server's certificate"),
    KO("k8s-role", OPT_STR, role, "auto",
       "node (this node's pods), cluster (the cluster-wide resources, under the lease) or auto "
       "(node, and cluster while holding the lease)"),
    KO("k8s-lease-name", OPT_STR, lease_name, "tapio-cluster", "the Lease of the cluster role"),
    KO("k8s-lease-namespace", OPT_STR, lease_ns, "",
       "the Lease's namespace (else POD_NAMESPACE, else the serviceaccount's, else default)"),
    KO("k8s-lease-renew", OPT_UINT, lease_renew_s, "10", "seconds between renews of the lease"),
    KO("k8s-lease-duration", OPT_UINT, lease_duration_s, "15",
       "seconds the lease holds without a renew"),
};

static const char *const k8s_type_names[K8S_NTYPES] = {[TYPE_K8S_WATCH] = "k8s.watch"};

const struct source_desc k8s_source = {
    .name = "k8s",
    .types = k8s_type_names,
    .ntypes = K8S_NTYPES,
};

bool k8s_collector_available(const struct collector_env *env)
{
	bool ex;
	char *p = k8s_kubeconfig_path(env->opts, &ex);
	if (p) {
		bool ok = ex || access(p, R_OK) == 0;
		free(p);
		return ok;
	}
	const char *h = getenv("KUBERNETES_SERVICE_HOST");
	return h && *h;
}

static const struct res_def *find_def(const char *name)
{
	for (size_t i = 0; i < NDEFS; i++)
		if (!strcmp(res_defs[i].name, name))
			return &res_defs[i];
	return NULL;
}

/* The resources to watch: the option's list, or the default set. */
static int split_resources(const struct k8s_options *o, struct strlist *l)
{
	const char *list =
	    o && o->resources && *o->resources ? o->resources : K8S_DEFAULT_RESOURCES;
	return strlist_split(l, list);
}

static int k8s_check(const void *opts, char *err, size_t errlen)
{
	struct strlist l;
	if (split_resources(opts, &l)) {
		err_printf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = 0;
	for (size_t i = 0; i < l.n && !rc; i++)
		if (!find_def(l.v[i])) {
			err_printf(err, errlen,
				   "--k8s-resources: unknown resource '%.64s' (known: %s)", l.v[i],
				   K8S_DEFAULT_RESOURCES);
			rc = -EINVAL;
		}
	if (!rc && l.n == 0) {
		err_printf(err, errlen, "--k8s-resources names no resource");
		rc = -EINVAL;
	}
	const struct k8s_options *o = opts;
	enum k8s_role role;
	if (!rc && o && k8s_role_parse(o->role, &role)) {
		err_printf(err, errlen, "--k8s-role: '%.32s' is not node, cluster or auto",
			   o->role);
		rc = -EINVAL;
	}
	if (!rc && o && o->lease_renew_s && o->lease_duration_s &&
	    o->lease_renew_s >= o->lease_duration_s) {
		err_printf(err, errlen,
			   "--k8s-lease-renew: %u s is not shorter than the %u s duration",
			   o->lease_renew_s, o->lease_duration_s);
		rc = -EINVAL;
	}
	strlist_free(&l);
	return rc;
}

const struct opt_group k8s_options_group =
    OPT_GROUP("k8s", struct k8s_options, k8s_opt_table, k8s_check);

/* Sets up one thread's worth of state per resource (k8s_check has passed). */
static int add_resources(struct k8s *k, const struct k8s_options *o)
{
	struct strlist l;
	if (split_resources(o, &l))
		return -ENOMEM;
	k->res = calloc(NDEFS, sizeof(*k->res));
	int rc = k->res ? 0 : -ENOMEM;
	for (size_t j = 0; j < l.n && !rc; j++) {
		const struct res_def *d = find_def(l.v[j]);
		bool dup = false;
		for (size_t i = 0; i < k->nres; i++)
			dup |= k->res[i].def == d;
		if (!d || dup || !k8s_role_runs(k, d))
			continue;
		struct k8s_res *r = &k->res[k->nres++];
		r->k = k;
		r->def = d;
		r->cluster = k8s_role_is_cluster(k, d);
		atomic_init(&r->stop, false);
		atomic_init(&r->healthy, false);
		char cname[64];
		snprintf(cname, sizeof(cname), "k8s-%s.rv", d->name);
		snprintf(r->seen_file, sizeof(r->seen_file), "k8s-%s.seen", d->name);
		cursor_init(&r->cur, k->state_dir, cname, CURSOR_DEFAULT_INTERVAL_MS);
		pthread_mutex_init(&r->cseen_lock, NULL);
		if (seen_init(&r->seen, 0) || seen_init(&r->cseen, 0))
			rc = -ENOMEM;
	}
	strlist_free(&l);
	return rc;
}

/* The URL-encoded "spec.nodeName=NODE" field selector for node-scoped
 * resources; NULL node_sel when no node name is set. */
static int set_node_selector(struct k8s *k, const char *node)
{
	if (!node || !*node)
		return 0;
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "spec.nodeName=");
	sb_puts(&sb, node);
	struct strbuf enc = STRBUF_INIT;
	k8s_url_escape(&enc, sb.buf ? sb.buf : "");
	sb_free(&sb);
	if (enc.err) {
		sb_free(&enc);
		return -ENOMEM;
	}
	k->node_sel = enc.buf;
	return 0;
}

struct collector *k8s_collector_new(const struct collector_env *env, char *err, size_t errlen)
{
	const struct tapio_config *cfg = env->cfg;
	const struct k8s_options *o = env->opts;
	struct k8s *k = calloc(1, sizeof(*k));
	int rc;
	if (!k) {
		errno = ENOMEM;
		err_printf(err, errlen, "out of memory");
		return NULL;
	}
	collector_init(&k->base, &k8s_ops, env->source);
	k->hooks = env->hooks;
	pthread_mutex_init(&k->tok_lock, NULL);
	pthread_mutex_init(&k->role_lock, NULL);
	atomic_init(&k->stop, false);
	k->max_msg = cfg->max_event_size ? cfg->max_event_size : (16u << 20);
	if (cfg->state_dir && *cfg->state_dir && !(k->state_dir = strdup(cfg->state_dir))) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = k8s_setup_auth(k, o, err, errlen)) ||
	    (rc = set_node_selector(k, cfg->node_name)) || (rc = k8s_check(o, err, errlen)))
		goto fail;
	if (k8s_role_parse(o ? o->role : NULL, &k->role) == 0 && (rc = add_resources(k, o)) == 0)
		rc = k8s_role_setup(k, o, cfg->node_name, err, errlen);
	if (!rc)
		rc = k8s_ack_init(k);
	if (rc)
		goto fail;
	return &k->base;

fail:
	if (rc == -ENOMEM && err && errlen && !err[0])
		err_printf(err, errlen, "out of memory");
	collector_destroy(&k->base);
	errno = -rc;
	return NULL;
}
