/* SPDX-License-Identifier: Apache-2.0 */
/* The Kubernetes API collector. One thread per resource: each runs LIST
 * (paged) then WATCH from the list's resourceVersion, with its own cursor,
 * backoff and health, so that one slow or failing resource (a huge events
 * list, a 403 on secrets) never holds up the others. watch_run() blocks for
 * the life of a stream, which is what makes a thread per stream the simple
 * shape here. See README.md for the protocol and the guarantees. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/collector.h"
#include "collectors/k8s/k8s.h"
#include "collectors/k8s/k8s_parse.h"
#include "collectors/k8s/kubeconfig.h"
#include "collectors/k8s/seen.h"
#include "core/config.h"
#include "core/options.h"
#include "core/event.h"
#include "util/clock.h"
#include "util/log.h"
#include "core/state.h"
#include "util/strbuf.h"
#include "http/watch.h"

#define K8S_BACKOFF_BASE_MS 800
#define K8S_BACKOFF_CAP_MS 30000
#define K8S_LIST_LIMIT 500
#define K8S_LIST_MAX_BODY (64u << 20)
#define K8S_TOKEN_MAX (64u << 10)
#define K8S_TOKEN_REREAD_NS (60ull * 1000000000ull)
#define K8S_GARBAGE_LINES 8 /* malformed lines in a row that mean "reconnect" */
#define K8S_SEEN_SAVE_NS (10ull * 1000000000ull)
#define K8S_DEFAULT_RESOURCES                                                                      \
	"pods,services,nodes,events,deployments,replicasets,configmaps,secrets"

#define ACCEPT_JSON "application/json"
#define ACCEPT_META "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
#define ACCEPT_META_LIST                                                                           \
	"application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"

struct res_def {
	const char *name, *path, *kind, *api_version;
	bool meta_only;	  /* fetched as PartialObjectMetadata */
	bool node_scoped; /* filtered by spec.nodeName when a node name is set */
};

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

struct k8s;

struct k8s_res {
	struct k8s *k;
	const struct res_def *def;
	pthread_t thr;
	bool started;
	atomic_bool healthy;
	struct cursor cur;
	char rv[64];
	struct seen_map seen;
	uint32_t gen;
	uint64_t seen_saved_ns;
	char seen_file[128];
	/* state of the request in progress */
	unsigned bad_streak;
	bool got_msg;
	int list_err;
	char list_rv[64];
	char *list_cont;
	/* counters */
	_Atomic uint64_t relists, duplicates, stripped, tombstones;
	uint64_t parse_logged;
};

struct k8s {
	struct collector base;
	struct queue *q;
	const struct collector_hooks *hooks; /* pod_update for the pod cache */
	atomic_bool stop;
	char *server;
	char *source; /* "kubeconfig FILE (context C)" or "in-cluster" */
	struct watch_tls tls;
	char *ca_file, *ca_pem, *cert_file, *cert_pem, *key_file, *key_pem;
	pthread_mutex_t tok_lock;
	char *token;
	char *token_file;
	uint64_t token_ns;
	char *node_sel; /* URL-encoded "spec.nodeName=NODE", or NULL */
	char *state_dir;
	size_t max_msg;
	struct k8s_res *res;
	size_t nres;
};


/* ---- small helpers ---- */

/* Percent-encodes everything but RFC 3986 unreserved characters. */
static void url_escape(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			sb_putc(sb, (char)c);
		} else {
			sb_putc(sb, '%');
			sb_putc(sb, hex[c >> 4]);
			sb_putc(sb, hex[c & 15]);
		}
	}
}

/* Reads a whole small file. Returns a malloc'd NUL-terminated copy or NULL
 * with errno (EFBIG when over max). */
static char *read_file(const char *path, size_t max, size_t *lenp)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	char buf[8192];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			sb_free(&sb);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		if (sb.len + (size_t)n > max) {
			close(fd);
			sb_free(&sb);
			errno = EFBIG;
			return NULL;
		}
		sb_add(&sb, buf, (size_t)n);
	}
	close(fd);
	if (sb.err || !sb.buf) {
		sb_free(&sb);
		if (!sb.err) {
			char *e = strdup("");
			if (lenp)
				*lenp = 0;
			return e;
		}
		errno = ENOMEM;
		return NULL;
	}
	if (lenp)
		*lenp = sb.len;
	return sb.buf;
}

static void trim(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

/* A token file's content; NULL with errno on error (EINVAL: a control byte). */
static char *read_token(const char *path)
{
	char *t = read_file(path, K8S_TOKEN_MAX, NULL);
	if (!t)
		return NULL;
	trim(t);
	for (const char *p = t; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f) {
			explicit_bzero(t, strlen(t));
			free(t);
			errno = EINVAL;
			return NULL;
		}
	return t;
}

/* The current bearer token (malloc'd copy; NULL when none). Re-reads the
 * token file when force is set or a minute has passed. */
static char *token_get(struct k8s *k, bool force)
{
	pthread_mutex_lock(&k->tok_lock);
	if (k->token_file &&
	    (force || !k->token || mono_ns() - k->token_ns >= K8S_TOKEN_REREAD_NS)) {
		char *t = read_token(k->token_file);
		if (t) {
			if (k->token) {
				explicit_bzero(k->token, strlen(k->token));
				free(k->token);
			}
			k->token = t;
		} else {
			collector_error(
			    &k->base, "cannot read token file %s: %s (keeping the previous token)",
			    k->token_file, strerror(errno));
		}
		k->token_ns = mono_ns();
	}
	char *c = k->token ? strdup(k->token) : NULL;
	pthread_mutex_unlock(&k->tok_lock);
	return c;
}

/* The token in use now, without re-reading (malloc'd copy or NULL). */
static char *token_peek(struct k8s *k)
{
	pthread_mutex_lock(&k->tok_lock);
	char *c = k->token ? strdup(k->token) : NULL;
	pthread_mutex_unlock(&k->tok_lock);
	return c;
}

static void token_free(char *t)
{
	if (t) {
		explicit_bzero(t, strlen(t));
		free(t);
	}
}

static bool is_stopped(struct k8s *k)
{
	return atomic_load(&k->stop);
}

/* ---- emitting ---- */

static void log_parse_error(struct k8s_res *r, const char *what, const char *why)
{
	struct k8s *k = r->k;
	atomic_fetch_add(&k->base.n.parse_errors, 1);
	uint64_t n = ++r->parse_logged;
	if ((n & (n - 1)) == 0) /* 1, 2, 4, 8, ...: enough to notice, never a flood */
		collector_error(&k->base, "%s: skipped a malformed %s from %s: %s (%llu so far)",
				r->def->name, what, k->server, why, (unsigned long long)n);
}

/* Tells the pod metadata cache of a pod event. */
static void pod_hook(struct k8s *k, const struct k8s_res *r, const char *type,
		     const struct k8s_objmeta *m)
{
	const struct collector_hooks *h = k->hooks;
	if (!h || !h->pod_update || strcmp(r->def->name, "pods") || !m->uid[0] || !m->name[0])
		return;
	bool deleted = !strcmp(type, "DELETED");
	if (deleted || !strcmp(type, "ADDED") || !strcmp(type, "MODIFIED"))
		h->pod_update(h->ctx, m->uid, m->ns, m->name, deleted);
}

/* Emits one object. Returns 0 when it was passed on (or refused for good and
 * counted, e.g. too big for the queue), 1 when it was skipped as malformed,
 * -EAGAIN when the queue stayed full (the caller resumes from its cursor),
 * -ECANCELED when the queue is closed, -ENOMEM. */
static int emit(struct k8s_res *r, const char *type, const char *obj, size_t len,
		const struct k8s_objmeta *m, const char *origin)
{
	struct k8s *k = r->k;
	char *strip = NULL;
	size_t sl = 0;
	if (r->def->meta_only) {
		int s = k8s_metadata_only(obj, len, &strip, &sl);
		if (s == -ENOMEM)
			return -ENOMEM;
		if (s < 0) {
			log_parse_error(r, "object", "not a JSON object with metadata");
			return 1;
		}
		if (s == 1) {
			obj = strip;
			len = sl;
			atomic_fetch_add(&r->stripped, 1);
		}
	}
	struct meta_kv kv[] = {
	    {"type", type},	{"resource", r->def->name},  {"namespace", m->ns[0] ? m->ns : NULL},
	    {"name", m->name},	{"resource_version", m->rv}, {"uid", m->uid},
	    {"origin", origin},
	};
	pod_hook(k, r, type, m);
	int rc = event_emit(k->q, k->base.source, TYPE_K8S_WATCH, FMT_JSON, now_ns(), kv,
			    sizeof(kv) / sizeof(kv[0]), obj, len);
	if (strip) {
		explicit_bzero(strip, sl);
		free(strip);
	}
	collector_count_emit_resumable(&k->base, rc);
	if (rc == 0)
		return 0;
	if (rc == -ESHUTDOWN)
		return -ECANCELED;
	if (rc == -ENOSPC || rc == -ETIMEDOUT)
		return -EAGAIN;
	collector_error(&k->base, "%s: %s %s/%s (%zu bytes) dropped: %s", r->def->name, type, m->ns,
			m->name, len, strerror(-rc));
	return 0;
}

static void set_rv(struct k8s_res *r, const char *rv)
{
	if (!strcmp(r->rv, rv))
		return;
	snprintf(r->rv, sizeof(r->rv), "%s", rv);
	int rc = cursor_update(&r->cur, rv);
	if (rc && rc != -ENAMETOOLONG && r->cur.last_err != rc)
		collector_error(&r->k->base, "%s: cannot save the resourceVersion in %s: %s",
				r->def->name, r->k->state_dir, strerror(-rc));
}

static void save_seen(struct k8s_res *r, bool force)
{
	struct k8s *k = r->k;
	if (!k->state_dir || !*k->state_dir || !r->seen.dirty)
		return;
	uint64_t now = mono_ns();
	if (!force && now - r->seen_saved_ns < K8S_SEEN_SAVE_NS)
		return;
	r->seen_saved_ns = now;
	struct strbuf sb = STRBUF_INIT;
	int rc = seen_serialize(&r->seen, &sb);
	if (!rc)
		rc = state_write(k->state_dir, r->seen_file, sb.buf, sb.len);
	if (rc) {
		r->seen.dirty = true;
		collector_error(&k->base, "%s: cannot save %s/%s: %s", r->def->name, k->state_dir,
				r->seen_file, strerror(-rc));
	}
	sb_free(&sb);
}

static void remember(struct k8s_res *r, const struct k8s_objmeta *m, bool deleted)
{
	int rc = seen_put(&r->seen, m->uid, m->ns, m->name, m->rv, deleted, r->gen);
	if (rc == -ENOSPC && r->seen.overflow == 1)
		collector_error(
		    &r->k->base,
		    "%s: more than %zu objects: the ones past that may repeat after a relist",
		    r->def->name, r->seen.max);
}

/* ---- requests ---- */

static void build_url(struct k8s_res *r, struct strbuf *sb, bool watch, unsigned limit,
		      unsigned timeout)
{
	struct k8s *k = r->k;
	sb_reset(sb);
	sb_puts(sb, k->server);
	sb_puts(sb, r->def->path);
	if (watch) {
		sb_puts(sb, "?watch=1&allowWatchBookmarks=true&timeoutSeconds=");
		sb_u64(sb, timeout);
		sb_puts(sb, "&resourceVersion=");
		url_escape(sb, r->rv);
	} else {
		sb_puts(sb, "?limit=");
		sb_u64(sb, limit);
		if (r->list_cont) {
			sb_puts(sb, "&continue=");
			url_escape(sb, r->list_cont);
		}
	}
	if (r->def->node_scoped && k->node_sel) {
		sb_puts(sb, "&fieldSelector=");
		sb_puts(sb, k->node_sel);
	}
}

static int run(struct k8s_res *r, const char *url, bool watch, unsigned timeout, frame_fn fn,
	       char *token, struct watch_result *res)
{
	struct k8s *k = r->k;
	struct watch_req req = {
	    .url = url,
	    .accept = r->def->meta_only ? (watch ? ACCEPT_META : ACCEPT_META_LIST) : ACCEPT_JSON,
	    .bearer_token = token,
	    .tls = &k->tls,
	    .framing = watch ? FRAME_LINES : FRAME_WHOLE,
	    .max_msg = watch ? k->max_msg
			     : (k->max_msg > K8S_LIST_MAX_BODY ? k->max_msg : K8S_LIST_MAX_BODY),
	    .connect_timeout_ms = 10000,
	    .idle_timeout_s = watch ? (long)timeout + 60 : 60,
	    .on_msg = fn,
	    .ctx = r,
	    .stop = &k->stop,
	};
	return watch_run(&req, res);
}

/* ---- LIST ---- */

static int list_item(void *ctx, const char *obj, size_t len, const struct k8s_objmeta *m)
{
	struct k8s_res *r = ctx;
	struct seen_entry *e = seen_get(&r->seen, m->uid);
	if (e)
		e->gen = r->gen; /* still there */
	if (seen_has(&r->seen, m->uid, m->rv)) {
		atomic_fetch_add(&r->duplicates, 1);
		return 0;
	}
	if (len > r->k->max_msg) {
		/* The same limit as for a watch line: skipped and counted. */
		atomic_fetch_add(&r->k->base.n.oversize, 1);
		collector_error(&r->k->base,
				"%s: skipped %s/%s from the list: %zu bytes is over %zu",
				r->def->name, m->ns, m->name, len, r->k->max_msg);
		remember(r, m, false);
		return 0;
	}
	int rc = emit(r, e && !e->deleted ? "MODIFIED" : "ADDED", obj, len, m, "list");
	if (rc < 0)
		return rc;
	if (rc == 0)
		remember(r, m, false);
	return 0;
}

static int list_page(void *ctx, const char *msg, size_t len)
{
	struct k8s_res *r = ctx;
	struct k8s_list_info info;
	char why[160];
	int rc = k8s_parse_list(msg, len, list_item, r, &info, why, sizeof(why));
	if (rc == -EBADMSG) {
		log_parse_error(r, "list response", why);
		r->list_err = -EBADMSG;
		return rc;
	}
	if (rc) {
		r->list_err = rc;
		return rc;
	}
	if (info.bad_items)
		atomic_fetch_add(&r->k->base.n.parse_errors, info.bad_items);
	if (!r->list_rv[0])
		snprintf(r->list_rv, sizeof(r->list_rv), "%s", info.rv);
	free(r->list_cont);
	r->list_cont = info.cont;
	r->got_msg = true;
	return 0;
}

struct sweep_ctx {
	struct k8s_res *r;
	int rc;
};

/* Emits a DELETED for every object that a complete relist did not return
 * and whose deletion was not seen. Returns 0 or emit()'s error. */
static int emit_vanished(struct k8s_res *r)
{
	struct seen_map *m = &r->seen;
	struct strbuf sb = STRBUF_INIT;
	int rc = 0;
	for (size_t i = 0; m->b && i < m->nb && !rc; i++)
		for (struct seen_entry *e = m->b[i]; e && !rc; e = e->next) {
			if (e->gen == r->gen || e->deleted)
				continue;
			struct k8s_objmeta om;
			snprintf(om.name, sizeof(om.name), "%s", e->name);
			snprintf(om.ns, sizeof(om.ns), "%s", e->ns);
			snprintf(om.uid, sizeof(om.uid), "%s", e->uid);
			snprintf(om.rv, sizeof(om.rv), "%s", r->list_rv);
			sb_reset(&sb);
			sb_puts(&sb, "{\"kind\":");
			sb_json_cstr(&sb,
				     r->def->meta_only ? "PartialObjectMetadata" : r->def->kind);
			sb_puts(&sb, ",\"apiVersion\":");
			sb_json_cstr(&sb,
				     r->def->meta_only ? "meta.k8s.io/v1" : r->def->api_version);
			sb_puts(&sb, ",\"metadata\":{\"name\":");
			sb_json_cstr(&sb, e->name);
			if (e->ns[0]) {
				sb_puts(&sb, ",\"namespace\":");
				sb_json_cstr(&sb, e->ns);
			}
			sb_puts(&sb, ",\"uid\":");
			sb_json_cstr(&sb, e->uid);
			sb_puts(&sb, ",\"resourceVersion\":");
			sb_json_cstr(&sb, r->list_rv);
			sb_puts(&sb, "}}");
			if (sb.err) {
				rc = sb.err;
				break;
			}
			int erc = emit(r, "DELETED", sb.buf, sb.len, &om, "list");
			if (erc < 0) {
				rc = erc;
				break;
			}
			e->deleted = true;
			m->dirty = true;
			atomic_fetch_add(&r->tombstones, 1);
		}
	sb_free(&sb);
	return rc;
}

/* One complete paged LIST. Returns 0 (r->rv set to the list's version),
 * -ECANCELED when stopping, -EAGAIN (queue full), or another negative errno
 * after reporting it. *http gets the status of a failed request. */
static int do_list(struct k8s_res *r, long *http)
{
	struct k8s *k = r->k;
	struct strbuf url = STRBUF_INIT;
	unsigned limit = K8S_LIST_LIMIT;
	int rc = 0;
	*http = 0;
	r->gen++;
	r->list_rv[0] = '\0';
	free(r->list_cont);
	r->list_cont = NULL;
	atomic_fetch_add(&r->relists, 1);
	do {
		build_url(r, &url, false, limit, 0);
		if (url.err) {
			rc = url.err;
			break;
		}
		struct watch_result res;
		char *tok = token_get(k, false);
		r->list_err = 0;
		r->got_msg = false;
		rc = run(r, url.buf, false, 0, list_page, tok, &res);
		token_free(tok);
		*http = res.http_status;
		if (rc == 0 && res.oversize && !r->got_msg) {
			if (limit > 1) {
				limit /= 2; /* the page was too big: ask for fewer items */
				watch_result_free(&res);
				continue;
			}
			collector_error(&k->base,
					"%s: one object is larger than %zu bytes; cannot list",
					r->def->name, (size_t)K8S_LIST_MAX_BODY);
			rc = -EFBIG;
		} else if (rc == 0 && !r->got_msg) {
			log_parse_error(r, "list response", "an empty body");
			rc = -EBADMSG;
		} else if (rc && rc != -ECANCELED && rc != -EAGAIN && r->list_err != -EBADMSG) {
			atomic_fetch_add(&k->base.n.errors, 1);
			if (res.http_status != 401 && res.http_status != 410)
				collector_error(&k->base, "%s: list %s%s: %s", r->def->name,
						k->server, r->def->path, res.error);
		}
		watch_result_free(&res);
		if (rc)
			break;
	} while (r->list_cont && !is_stopped(k));
	sb_free(&url);
	if (rc == 0 && is_stopped(k))
		rc = -ECANCELED;
	if (rc == 0)
		rc = emit_vanished(r);
	if (rc == 0) {
		seen_sweep(&r->seen, r->gen, NULL, NULL);
		set_rv(r, r->list_rv);
		cursor_flush(&r->cur);
		save_seen(r, true);
	}
	free(r->list_cont);
	r->list_cont = NULL;
	return rc;
}

/* ---- WATCH ---- */

static int watch_line(void *ctx, const char *msg, size_t len)
{
	struct k8s_res *r = ctx;
	struct k8s *k = r->k;
	struct k8s_watch_event ev;
	char why[128];
	int rc = k8s_parse_watch_line(msg, len, &ev, why, sizeof(why));
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		log_parse_error(r, "watch line", why);
		if (++r->bad_streak >= K8S_GARBAGE_LINES)
			return -EBADMSG;
		return 0;
	}
	r->bad_streak = 0;
	if (!r->got_msg) {
		r->got_msg = true;
		atomic_store(&r->healthy, true);
	}
	switch (ev.type) {
	case K8S_EV_ERROR:
		if (ev.code == 410 || !strcmp(ev.reason, "Expired") || !strcmp(ev.reason, "Gone"))
			return -ESTALE;
		atomic_fetch_add(&k->base.n.errors, 1);
		collector_error(&k->base, "%s: watch ERROR from %s: code %ld %s: %s", r->def->name,
				k->server, ev.code, ev.reason, ev.message);
		return -EPROTO;
	case K8S_EV_BOOKMARK:
		set_rv(r, ev.meta.rv);
		return 0;
	default:
		break;
	}
	if (seen_has(&r->seen, ev.meta.uid, ev.meta.rv)) {
		atomic_fetch_add(&r->duplicates, 1);
	} else {
		rc = emit(r, k8s_ev_name(ev.type), ev.obj, ev.obj_len, &ev.meta, "watch");
		if (rc < 0)
			return rc;
		if (rc == 0)
			remember(r, &ev.meta, ev.type == K8S_EV_DELETED);
	}
	set_rv(r, ev.meta.rv);
	save_seen(r, false);
	return 0;
}

enum outcome { OUT_AGAIN, OUT_RELIST, OUT_FAIL, OUT_STOP };

static enum outcome do_watch(struct k8s_res *r, long *http)
{
	struct k8s *k = r->k;
	struct strbuf url = STRBUF_INIT;
	unsigned timeout =
	    backoff_ms(0, 600, 600); /* 300..600 s, spread so agents do not rewatch in step */
	build_url(r, &url, true, 0, timeout);
	if (url.err) {
		sb_free(&url);
		return OUT_FAIL;
	}
	struct watch_result res;
	char *tok = token_get(k, false);
	r->got_msg = false;
	r->bad_streak = 0;
	uint64_t t0 = mono_ns();
	int rc = run(r, url.buf, true, timeout, watch_line, tok, &res);
	token_free(tok);
	*http = res.http_status;
	if (res.oversize) {
		atomic_fetch_add(&k->base.n.oversize, res.oversize);
		collector_error(&k->base, "%s: skipped %llu watch events over %zu bytes",
				r->def->name, (unsigned long long)res.oversize, k->max_msg);
	}
	enum outcome out;
	if (rc == -ECANCELED || res.stopped) {
		out = OUT_STOP;
	} else if (rc == -ESTALE || res.http_status == 410) {
		out = OUT_RELIST;
	} else if (rc == 0) {
		/* The server ended the stream (timeoutSeconds or a restart). A
		 * stream that closes at once with nothing in it is a failure, so
		 * that a broken proxy is not hammered. */
		out = (r->got_msg || mono_ns() - t0 > 1000000000ull) ? OUT_AGAIN : OUT_FAIL;
		if (out == OUT_FAIL)
			collector_error(&k->base, "%s: watch %s%s closed at once with no data",
					r->def->name, k->server, r->def->path);
	} else if (rc == -EAGAIN) {
		out = OUT_FAIL; /* queue full: retry from the cursor after a pause */
	} else if (rc == -EBADMSG) {
		atomic_fetch_add(&k->base.n.errors, 1);
		collector_error(&k->base, "%s: %s sent %d malformed lines in a row; reconnecting",
				r->def->name, k->server, K8S_GARBAGE_LINES);
		out = OUT_FAIL;
	} else {
		/* An in-band ERROR (the callback's -EPROTO) was counted and
		 * reported where it was read; a 401 is reported by on_unauthorized. */
		bool inband = res.cb_err == -EPROTO;
		if (res.http_status != 401 && !inband) {
			atomic_fetch_add(&k->base.n.errors, 1);
			collector_error(&k->base, "%s: watch %s%s: %s", r->def->name, k->server,
					r->def->path, res.error);
		}
		out = OUT_FAIL;
	}
	watch_result_free(&res);
	sb_free(&url);
	return out;
}

/* A 401: re-reads the token. Returns true when it changed (retry at once). */
static bool on_unauthorized(struct k8s_res *r, const char *what)
{
	struct k8s *k = r->k;
	char *before = token_peek(k);
	char *after = token_get(k, true);
	bool changed =
	    (before == NULL) != (after == NULL) || (before && after && strcmp(before, after));
	token_free(before);
	token_free(after);
	collector_error(&k->base, "%s: %s: HTTP 401 Unauthorized from %s%s", r->def->name, what,
			k->server,
			!k->token_file ? "; no token file to re-read"
			: changed      ? "; re-read the token file, it changed"
				       : "; re-read the token file, it did not change");
	return changed;
}

static void *res_main(void *arg)
{
	struct k8s_res *r = arg;
	struct k8s *k = r->k;
	unsigned attempt = 0;
	bool need_list, first = true;

	int n = cursor_load(&r->cur);
	if (n > 0)
		cursor_get(&r->cur, r->rv, sizeof(r->rv));
	need_list = r->rv[0] == '\0';
	if (k->state_dir && *k->state_dir) {
		size_t len = 0;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", k->state_dir, r->seen_file);
		char *s = read_file(path, 512u << 20, &len);
		if (s) {
			uint64_t bad = 0;
			int rc = seen_parse(&r->seen, s, len, &bad);
			if (rc == -EINVAL || bad)
				collector_error(
				    &k->base, "%s: %s: %s; %llu bad lines skipped", r->def->name,
				    path, rc == -EINVAL ? "not a tapio-k8s-seen file" : "loaded",
				    (unsigned long long)bad);
			free(s);
		}
	}

	while (!is_stopped(k)) {
		long http = 0;
		if (need_list) {
			int rc = do_list(r, &http);
			if (rc == -ECANCELED)
				break;
			if (rc == 0) {
				need_list = false;
				attempt = 0;
				atomic_store(&r->healthy, true);
			} else {
				if (http == 401 && on_unauthorized(r, "list"))
					continue;
				atomic_store(&r->healthy, false);
				if (sleep_or_stop(backoff_ms(attempt++, K8S_BACKOFF_BASE_MS,
							     K8S_BACKOFF_CAP_MS),
						  &k->stop))
					break;
				continue;
			}
		}
		if (!first)
			atomic_fetch_add(&k->base.n.reconnects, 1);
		first = false;
		enum outcome out = do_watch(r, &http);
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
			if (!r->got_msg && http == 410 &&
			    sleep_or_stop(
				backoff_ms(attempt++, K8S_BACKOFF_BASE_MS, K8S_BACKOFF_CAP_MS),
				&k->stop))
				break;
			continue;
		}
		if (http == 401 && on_unauthorized(r, "watch"))
			continue;
		atomic_store(&r->healthy, false);
		if (sleep_or_stop(backoff_ms(attempt++, K8S_BACKOFF_BASE_MS, K8S_BACKOFF_CAP_MS),
				  &k->stop))
			break;
	}
	cursor_flush(&r->cur);
	save_seen(r, true);
	return NULL;
}

/* ---- collector ops ---- */

static void k8s_stop(struct collector *c);

static int k8s_start(struct collector *c, struct queue *q)
{
	struct k8s *k = (struct k8s *)c;
	k->q = q;
	atomic_store(&k->stop, false);
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
	for (size_t i = 0; i < k->nres; i++) {
		struct k8s_res *r = &k->res[i];
		rc = -pthread_create(&r->thr, NULL, res_main, r);
		if (rc) {
			k8s_stop(c);
			return rc;
		}
		r->started = true;
	}
	return 0;
}

static void k8s_stop(struct collector *c)
{
	struct k8s *k = (struct k8s *)c;
	atomic_store(&k->stop, true);
	for (size_t i = 0; i < k->nres; i++)
		if (k->res[i].started) {
			pthread_join(k->res[i].thr, NULL);
			k->res[i].started = false;
		}
}

static bool k8s_healthy(struct collector *c)
{
	struct k8s *k = (struct k8s *)c;
	for (size_t i = 0; i < k->nres; i++)
		if (!atomic_load(&k->res[i].healthy))
			return false;
	return k->nres > 0;
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
}

static void k8s_destroy(struct collector *c)
{
	struct k8s *k = (struct k8s *)c;
	for (size_t i = 0; k->res && i < k->nres; i++) {
		cursor_destroy(&k->res[i].cur);
		seen_free(&k->res[i].seen);
		free(k->res[i].list_cont);
	}
	free(k->res);
	token_free(k->token);
	free(k->token_file);
	free(k->server);
	free(k->source);
	free(k->ca_file);
	free(k->ca_pem);
	free(k->cert_file);
	free(k->cert_pem);
	free(k->key_file);
	token_free(k->key_pem);
	free(k->node_sel);
	free(k->state_dir);
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

/* ---- construction ---- */

/* The kubeconfig path to use, or NULL for in-cluster / none. malloc'd.
 * The order is controller-runtime's: --k8s-kubeconfig, KUBECONFIG, in-cluster,
 * ~/.kube/config. */
static char *kubeconfig_path(const struct k8s_options *o, bool *explicit_)
{
	*explicit_ = false;
	if (o && o->kubeconfig && *o->kubeconfig) {
		*explicit_ = true;
		return strdup(o->kubeconfig);
	}
	const char *kc = getenv("KUBECONFIG");
	if (kc && *kc) {
		*explicit_ = true;
		return strndup(kc, strcspn(kc, ":"));
	}
	if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST"))
		return NULL;
	const char *home = getenv("HOME");
	if (!home || !*home)
		return NULL;
	char *p;
	if (asprintf(&p, "%s/.kube/config", home) < 0)
		return NULL;
	if (access(p, R_OK)) {
		free(p);
		return NULL;
	}
	return p;
}

#define KO(n, t, f, d, h) OPT_ENTRY(struct k8s_options, n, t, f, d, h)

static const struct opt k8s_opt_table[] = {
	KO("k8s-kubeconfig", OPT_STR, kubeconfig, "",
	   "kubeconfig file (else KUBECONFIG, else in-cluster)"),
	KO("k8s-resources", OPT_STR, resources, "",
	   "comma list of resources to watch, empty = the default set"),
	KO("k8s-insecure", OPT_BOOL, insecure, "false", "do not verify the API server's certificate"),
};

const struct opt_group k8s_options_group = OPT_GROUP("k8s", struct k8s_options, k8s_opt_table, NULL);

static const char *const k8s_type_names[K8S_NTYPES] = {[TYPE_K8S_WATCH] = "k8s.watch"};

const struct source_desc k8s_source = {
	.name = "k8s",
	.types = k8s_type_names,
	.ntypes = K8S_NTYPES,
};

bool k8s_collector_available(const struct collector_env *env)
{
	bool ex;
	char *p = kubeconfig_path(env->opts, &ex);
	if (p) {
		bool ok = ex || access(p, R_OK) == 0;
		free(p);
		return ok;
	}
	const char *h = getenv("KUBERNETES_SERVICE_HOST");
	return h && *h;
}

static bool loopback_url(const char *u)
{
	const char *h = strstr(u, "://");
	h = h ? h + 3 : u;
	return !strncmp(h, "127.", 4) || !strncmp(h, "localhost", 9) || !strncmp(h, "[::1]", 5);
}

static int from_kubeconfig(struct k8s *k, const struct k8s_options *o, const char *path,
			   char *err, size_t errlen)
{
	size_t len = 0;
	char *y = read_file(path, KUBECONFIG_MAX, &len);
	if (!y) {
		int e = errno;
		err_printf(err, errlen, "cannot read kubeconfig %s: %s", path, strerror(e));
		return e == EFBIG ? -EINVAL : -e;
	}
	struct kubeconfig kc;
	char why[256];
	int rc = kubeconfig_parse(y, len, NULL, &kc, why, sizeof(why));
	explicit_bzero(y, len);
	free(y);
	if (rc) {
		err_printf(err, errlen, "%s: %s", path, why);
		return rc;
	}
	char *pc = strdup(path);
	if (!pc || kubeconfig_resolve_paths(&kc, dirname(pc))) {
		free(pc);
		kubeconfig_free(&kc);
		return -ENOMEM;
	}
	free(pc);
	if (asprintf(&k->source, "kubeconfig %s (context %s)", path, kc.context) < 0)
		k->source = NULL;
	k->server = kc.server, kc.server = NULL;
	k->ca_file = kc.ca_file, kc.ca_file = NULL;
	k->ca_pem = kc.ca_pem, kc.ca_pem = NULL;
	k->cert_file = kc.cert_file, kc.cert_file = NULL;
	k->cert_pem = kc.cert_pem, kc.cert_pem = NULL;
	k->key_file = kc.key_file, kc.key_file = NULL;
	k->key_pem = kc.key_pem, kc.key_pem = NULL;
	k->token = kc.token, kc.token = NULL;
	k->token_file = kc.token_file, kc.token_file = NULL;
	if (kc.insecure_skip_tls_verify && !o->insecure)
		tlog(TLOG_WARN, "k8s",
		     "%s: insecure-skip-tls-verify is ignored: TLS verification stays on unless "
		     "--k8s-insecure is given",
		     path);
	kubeconfig_free(&kc);
	if (k->token && k->token_file) {
		/* kubectl prefers token; so do we, and the file is not re-read. */
		free(k->token_file);
		k->token_file = NULL;
	}
	return 0;
}

static int in_cluster(struct k8s *k, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *sa = getenv("TAPIO_K8S_SA_DIR");
	if (!sa || !*sa)
		sa = K8S_SA_DIR;
	if (!port || !*port)
		port = "443";
	if (strpbrk(host, "/?#@ \t\r\n") || strpbrk(port, "/?#@ \t\r\n")) {
		err_printf(err, errlen, "KUBERNETES_SERVICE_HOST/PORT is not a host and port");
		return -EINVAL;
	}
	bool v6 = strchr(host, ':') != NULL;
	if (asprintf(&k->server, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port) <
		0 ||
	    asprintf(&k->token_file, "%s/token", sa) < 0 ||
	    asprintf(&k->ca_file, "%s/ca.crt", sa) < 0 ||
	    !(k->source = strdup("in-cluster serviceaccount")))
		return -ENOMEM;
	return 0;
}

static int add_resources(struct k8s *k, const char *list, char *err, size_t errlen)
{
	char *copy = strdup(list && *list ? list : K8S_DEFAULT_RESOURCES);
	if (!copy)
		return -ENOMEM;
	k->res = calloc(NDEFS, sizeof(*k->res));
	if (!k->res) {
		free(copy);
		return -ENOMEM;
	}
	int rc = 0;
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ' || *t == '\t')
			t++;
		trim(t);
		if (!*t)
			continue;
		const struct res_def *d = NULL;
		for (size_t i = 0; i < NDEFS; i++)
			if (!strcmp(res_defs[i].name, t))
				d = &res_defs[i];
		if (!d) {
			err_printf(err, errlen, "--k8s-resources: unknown resource '%.64s' (known: %s)",
			       t, K8S_DEFAULT_RESOURCES);
			rc = -EINVAL;
			break;
		}
		bool dup = false;
		for (size_t i = 0; i < k->nres; i++)
			dup |= k->res[i].def == d;
		if (dup)
			continue;
		struct k8s_res *r = &k->res[k->nres++];
		r->k = k;
		r->def = d;
		atomic_init(&r->healthy, false);
		char cname[64];
		snprintf(cname, sizeof(cname), "k8s-%s.rv", d->name);
		snprintf(r->seen_file, sizeof(r->seen_file), "k8s-%s.seen", d->name);
		cursor_init(&r->cur, k->state_dir, cname, CURSOR_DEFAULT_INTERVAL_MS);
		if (seen_init(&r->seen, 0)) {
			rc = -ENOMEM;
			break;
		}
	}
	free(copy);
	if (!rc && k->nres == 0) {
		err_printf(err, errlen, "--k8s-resources names no resource");
		rc = -EINVAL;
	}
	return rc;
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
	atomic_init(&k->stop, false);
	k->max_msg = cfg->max_event_size ? cfg->max_event_size : (16u << 20);
	if (cfg->state_dir && *cfg->state_dir && !(k->state_dir = strdup(cfg->state_dir))) {
		rc = -ENOMEM;
		goto fail;
	}

	bool ex;
	char *path = kubeconfig_path(o, &ex);
	if (path) {
		rc = from_kubeconfig(k, o, path, err, errlen);
		free(path);
	} else if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST")) {
		rc = in_cluster(k, err, errlen);
	} else {
		err_printf(err, errlen,
		       "k8s: no cluster to watch: give --k8s-kubeconfig, set KUBECONFIG, or run in "
		       "a pod "
		       "(KUBERNETES_SERVICE_HOST)");
		rc = -ENOENT;
	}
	if (rc)
		goto fail;

	const char *files[][2] = {{k->ca_file, "certificate authority"},
				  {k->cert_file, "client certificate"},
				  {k->key_file, "client key"}};
	for (size_t i = 0; i < 3; i++)
		if (files[i][0] && access(files[i][0], R_OK)) {
			rc = -errno;
			err_printf(err, errlen, "%s: %s %s: %s", k->source, files[i][1], files[i][0],
			       strerror(errno));
			goto fail;
		}
	if (k->token_file) {
		char *t = read_token(k->token_file);
		if (!t) {
			rc = -errno;
			err_printf(err, errlen, "%s: token file %s: %s", k->source, k->token_file,
			       errno == EINVAL ? "has a control character" : strerror(errno));
			goto fail;
		}
		k->token = t;
		k->token_ns = mono_ns();
	}
	if (!strncmp(k->server, "http://", 7) && (k->token || k->token_file) &&
	    !loopback_url(k->server)) {
		err_printf(err, errlen, "%s: refusing to send a bearer token over plain http to %s",
		       k->source, k->server);
		rc = -EINVAL;
		goto fail;
	}
	k->tls = (struct watch_tls){
	    .ca_file = k->ca_file,
	    .ca_pem = k->ca_pem,
	    .cert_file = k->cert_file,
	    .cert_pem = k->cert_pem,
	    .key_file = k->key_file,
	    .key_pem = k->key_pem,
	    .insecure = o->insecure,
	};
	if (cfg->node_name && *cfg->node_name) {
		struct strbuf sb = STRBUF_INIT;
		sb_puts(&sb, "spec.nodeName=");
		sb_puts(&sb, cfg->node_name);
		struct strbuf enc = STRBUF_INIT;
		url_escape(&enc, sb.buf ? sb.buf : "");
		sb_free(&sb);
		if (enc.err) {
			sb_free(&enc);
			rc = -ENOMEM;
			goto fail;
		}
		k->node_sel = enc.buf;
	}
	rc = add_resources(k, o->resources, err, errlen);
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
