// SPDX-License-Identifier: Apache-2.0
/* The etcd collector: one thread that keeps a watch on the key prefix open on
 * one of the endpoints, emits one event per key change, and keeps the last
 * revision it has fully handed to the queue in the state directory.
 *
 * rev_done means: every event with mod_revision <= rev_done has been
 * accepted by the queue (or skipped for good: malformed or oversized, each
 * counted). A watch always restarts at rev_done + 1, so an event the queue
 * refused is fetched again rather than lost. The stored cursor is behind it:
 * each event is tracked (core/ack.h) and the file holds the highest revision
 * whose events the sink has all acknowledged, so a crash re-reads, never
 * skips; the event ids (etcd-<cluster>-<revision>-<key hash>) stay the same. etcd can put several
 * events in one revision (a transaction); pend_rev/pend_n remember how many
 * of a revision's events were already enqueued, so that a reconnect in the
 * middle of a revision does not repeat them. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectors/etcd/internal.h"
#include "core/config.h"
#include "core/event.h"
#include "core/options.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/hash.h"

#define EO(n, t, f, d, h) OPT_ENTRY(struct etcd_options, n, t, f, d, h)

static const struct opt etcd_opt_table[] = {
    EO("etcd-endpoints", OPT_STR, endpoints, "", "comma list of etcd URLs"),
    EO("etcd-prefix", OPT_STR, prefix, "/registry/", "key prefix to watch"),
    EO("etcd-cacert", OPT_STR, cacert, "", "CA bundle for etcd"),
    EO("etcd-cert", OPT_STR, cert, "", "client certificate for etcd"),
    EO("etcd-key", OPT_STR, key, "", "client key for etcd"),
};

static const char *const etcd_type_names[ETCD_NTYPES] = {
    [TYPE_ETCD_WATCH] = "etcd.watch",
    [TYPE_ETCD_COMPACTED] = "etcd.compacted",
};

const struct source_desc etcd_source = {
    .name = "etcd",
    .types = etcd_type_names,
    .ntypes = ETCD_NTYPES,
};

bool etcd_collector_available(const struct collector_env *env)
{
	const struct etcd_options *o = env->opts;
	return o && o->endpoints && *o->endpoints;
}

static int etcd_start(struct collector *c, struct queue *q)
{
	struct etcd_collector *e = to_etcd(c);
	if (c->thread.started)
		return -EALREADY;
	int rc = watch_global_init();
	if (rc)
		return rc;
	e->q = q;
	ack_register(c->source, &e->ack);
	return collector_spawn(c, etcd_thread);
}

static void etcd_stop(struct collector *c)
{
	worker_signal_stop(&c->thread); /* the flag its watch and sleeps look at */
	watch_stop_notify();
	collector_join(c);
}

static void etcd_destroy(struct collector *c)
{
	struct etcd_collector *e = to_etcd(c);
	if (e->ack_ok) {
		ack_unregister(c->source, &e->ack);
		cursor_flush(&e->cur); /* what the sink acknowledged after the thread ended */
		ack_destroy(&e->ack);
	}
	strlist_free(&e->endpoints);
	free(e->beta);
	free(e->prefix);
	free(e->cacert);
	free(e->cert);
	free(e->key);
	sb_free(&e->data);
	cursor_destroy(&e->cur);
	free(e);
}

static const struct collector_ops etcd_ops = {
    .name = "etcd",
    .start = etcd_start,
    .stop = etcd_stop,
    .destroy = etcd_destroy,
};

static char *dup_opt(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

/* Checks that a TLS file is readable now, for a clear error at start. */
static int check_file(const char *flag, const char *path, char *err, size_t errlen)
{
	if (path && access(path, R_OK) != 0) {
		int rc = errno;
		snprintf(err, errlen, "%s: %s: %s", flag, path, strerror(rc));
		return -rc;
	}
	return 0;
}

static int check_endpoints(const char *csv, bool required, char *err, size_t errlen)
{
	struct strlist l;
	if (strlist_split(&l, csv)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = 0;
	if (l.n == 0 && required) {
		snprintf(err, errlen,
			 "etcd-endpoints: no endpoint given (e.g. https://127.0.0.1:2379)");
		rc = -EINVAL;
	}
	for (size_t i = 0; i < l.n && !rc; i++) {
		const char *u = l.v[i];
		if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) {
			snprintf(err, errlen,
				 "etcd-endpoints: '%s' is not an http:// or https:// URL", u);
			rc = -EINVAL;
		} else if (strlen(u) > 1024) {
			snprintf(err, errlen,
				 "etcd-endpoints: an endpoint is longer than 1024 bytes");
			rc = -EINVAL;
		}
	}
	strlist_free(&l);
	return rc;
}

static bool opt_set(const char *s)
{
	return s && *s;
}

/* The option group's check: endpoints, prefix and the client key pair. No
 * endpoint is fine here (the collector is then not available); the
 * constructor requires one. */
static int etcd_check(const void *opts, char *err, size_t errlen)
{
	const struct etcd_options *o = opts;
	int rc = check_endpoints(o->endpoints, false, err, errlen);
	if (rc)
		return rc;
	if (o->prefix && strlen(o->prefix) > 4000) {
		snprintf(err, errlen, "etcd-prefix: longer than 4000 bytes");
		return -EINVAL;
	}
	if (opt_set(o->cert) != opt_set(o->key)) {
		snprintf(err, errlen, "etcd-cert and etcd-key: give both or neither");
		return -EINVAL;
	}
	return 0;
}

const struct opt_group etcd_options_group =
    OPT_GROUP("etcd", struct etcd_options, etcd_opt_table, etcd_check);

/* Copies the options (etcd_check has passed). Returns 0 or -ENOMEM. */
static int copy_options(struct etcd_collector *e, const struct etcd_options *o)
{
	if (strlist_split(&e->endpoints, o->endpoints))
		return -ENOMEM;
	for (size_t i = 0; i < e->endpoints.n; i++) {
		char *u = e->endpoints.v[i];
		size_t l = strlen(u);
		while (l > 0 && u[l - 1] == '/')
			u[--l] = '\0';
	}
	e->beta = calloc(e->endpoints.n, sizeof(*e->beta));
	const char *prefix = o->prefix ? o->prefix : "/registry/";
	e->prefix_len = strlen(prefix);
	e->prefix = strdup(prefix);
	e->cacert = dup_opt(o->cacert);
	e->cert = dup_opt(o->cert);
	e->key = dup_opt(o->key);
	if (!e->beta || !e->prefix || (opt_set(o->cacert) && !e->cacert) ||
	    (opt_set(o->cert) && !e->cert) || (opt_set(o->key) && !e->key))
		return -ENOMEM;
	e->tls.ca_file = e->cacert;
	e->tls.cert_file = e->cert;
	e->tls.key_file = e->key;
	return 0;
}

uint64_t etcd_fnv1a(const void *p, size_t n)
{
	return fnv1a64(p, n);
}

void etcd_set_scope(struct etcd_collector *e, uint64_t cluster_id)
{
	if (!cluster_id || cluster_id == e->id_scope)
		return;
	e->id_scope = cluster_id;
	snprintf(e->id_scope_s, sizeof(e->id_scope_s), "%016" PRIx64, cluster_id);
}

/* Until etcd names its cluster: the endpoint list (a cluster's members). */
static void scope_from_endpoints(struct etcd_collector *e)
{
	uint64_t h = 0;
	for (size_t i = 0; i < e->endpoints.n; i++)
		h ^= etcd_fnv1a(e->endpoints.v[i], strlen(e->endpoints.v[i])); /* any order */
	snprintf(e->id_scope_s, sizeof(e->id_scope_s), "e%015" PRIx64, h >> 4);
}

/* The tracker's commit: the sink has every event up to revision safe. */
static void commit_rev(void *ctx, uint64_t safe)
{
	struct etcd_collector *e = ctx;
	char v[32];
	snprintf(v, sizeof(v), "%" PRIu64, safe);
	int rc = cursor_update(&e->cur, v);
	if (rc) {
		atomic_fetch_add(&e->base.n.errors, 1);
		collector_report(&e->base, &e->rl[RL_CURSOR], "writing %s/%s: %s", e->cur.dir,
				 ETCD_CURSOR_FILE, strerror(-rc));
	}
}

/* Parses the stored revision: decimal digits, then optional newlines or
 * spaces. Returns false for anything else. */
static bool parse_revision(const char *val, int64_t *out)
{
	char buf[64];
	size_t n = strlen(val);
	while (n > 0 && (val[n - 1] == '\n' || val[n - 1] == ' '))
		n--;
	if (n == 0 || n >= sizeof(buf) || val[0] < '0' || val[0] > '9' ||
	    (n > 1 && (val[1] == 'x' || val[1] == 'X')))
		return false;
	memcpy(buf, val, n);
	buf[n] = '\0';
	uint64_t v;
	if (parse_u64(buf, INT64_MAX, &v))
		return false;
	*out = (int64_t)v;
	return true;
}

/* Creates the state directory and loads the stored revision. */
static int load_cursor(struct etcd_collector *e, const char *dir, char *err, size_t errlen)
{
	int rc;
	if (dir && *dir) {
		rc = state_mkdir(dir);
		if (rc) {
			snprintf(err, errlen, "state-dir: %s: %s", dir, strerror(-rc));
			return rc;
		}
	}
	bool legacy;
	rc = cursor_load_legacy(&e->cur, cursor_decimal_whole, &legacy);
	if (legacy) {
		/* A prefix of a revision is an older one: at worst a re-read. */
		collector_error(&e->base,
				"state-dir: %s/%s has no final newline (from an older tapio, or "
				"cut short); resuming from it",
				dir, ETCD_CURSOR_FILE);
	}
	if (rc < 0 && rc != -EBADMSG) {
		snprintf(err, errlen, "state-dir: reading %s/%s: %s", dir, ETCD_CURSOR_FILE,
			 strerror(-rc));
		return rc;
	}
	if (rc == 0)
		return 0; /* none stored: a first start, from now */
	if (rc > 0 && parse_revision(e->cur.val, &e->rev_done)) {
		e->have_rev = true;
		return 0;
	}
	/* Unknown: starting from "now" would lose what was written while the
	 * agent was down. Start from the oldest revision etcd keeps: a compacted
	 * history gives the compaction record naming the gap. */
	/* The message names the file, never its content (it may be a secret). */
	collector_error(&e->base,
			"state-dir: %s/%s %s; the revision is unknown: reading from the "
			"oldest revision etcd keeps",
			dir, ETCD_CURSOR_FILE,
			rc == -EBADMSG ? "is empty or cut short" : "does not hold a revision");
	atomic_fetch_add(&e->base.n.errors, 1);
	e->rev_done = 0;
	e->have_rev = true;
	e->cur.val[0] = '\0';
	return 0;
}

struct collector *etcd_collector_new(const struct collector_env *env, char *err, size_t errlen)
{
	const struct tapio_config *cfg = env->cfg;
	const struct etcd_options *o = env->opts;
	struct etcd_collector *e = calloc(1, sizeof(*e));
	int rc;

	if (!e) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	collector_init(&e->base, &etcd_ops, env->source);
	cursor_init(&e->cur, cfg->state_dir, ETCD_CURSOR_FILE, CURSOR_DEFAULT_INTERVAL_MS);
	if (ack_init(&e->ack, 0, commit_rev, e)) {
		cursor_destroy(&e->cur);
		free(e);
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	e->ack_ok = true;
	for (size_t i = 0; i < RL__MAX; i++)
		e->rl[i].interval_ns = 1000000000ull;

	if ((rc = check_endpoints(o->endpoints, true, err, errlen)) ||
	    (rc = etcd_check(o, err, errlen)))
		goto fail;
	if ((rc = copy_options(e, o))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	scope_from_endpoints(e);
	if ((rc = check_file("etcd-cacert", e->cacert, err, errlen)) ||
	    (rc = check_file("etcd-cert", e->cert, err, errlen)) ||
	    (rc = check_file("etcd-key", e->key, err, errlen)))
		goto fail;

	e->max_event = cfg->max_event_size ? cfg->max_event_size : ETCD_DEFAULT_MAX_EVENT;
	/* One response carries an event's value and its previous value, base64
	 * encoded (4/3), plus the rest; etcd splits larger batches (fragment). */
	uint64_t mm = e->max_event / 3 * 8 + (1u << 20);
	e->max_msg = mm > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)mm;

	if ((rc = load_cursor(e, cfg->state_dir, err, errlen)))
		goto fail;
	return &e->base;

fail:
	pthread_mutex_destroy(&e->base.err_lock);
	etcd_destroy(&e->base);
	errno = -rc;
	return NULL;
}
