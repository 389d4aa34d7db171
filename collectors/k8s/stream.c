/* SPDX-License-Identifier: Apache-2.0 */
/* The k8s collector's requests, the WATCH stream and the events it emits. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/k8s/internal.h"
#include "collectors/k8s/k8s.h"
#include "core/event.h"
#include "util/backoff.h"
#include "util/clock.h"
#include "util/strbuf.h"

void k8s_url_escape(struct strbuf *sb, const char *s)
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

/* ---- emitting ---- */

void k8s_log_parse_error(struct k8s_res *r, const char *what, const char *why)
{
	struct k8s *k = r->k;
	atomic_fetch_add(&k->base.n.parse_errors, 1);
	uint64_t n = ++r->parse_logged;
	if ((n & (n - 1)) == 0) /* 1, 2, 4, 8, ...: enough to notice, never a flood */
		collector_error(&k->base, "%s: skipped a malformed %s from %s: %s (%llu so far)",
				r->def->name, what, k->server, why, (unsigned long long)n);
}

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

void k8s_pod_containers(const struct collector_hooks *h, const char *uid, const char *obj,
			size_t len)
{
	cJSON *root = cJSON_ParseWithLength(obj, len);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "status");
	struct pod_container c[32];
	size_t n = 0;
	static const char *const lists[] = {"containerStatuses", "initContainerStatuses"};
	for (size_t l = 0; l < 2 && st; l++) {
		const cJSON *cs = cJSON_GetObjectItemCaseSensitive(st, lists[l]), *e;
		if (!cJSON_IsArray(cs))
			continue;
		cJSON_ArrayForEach(e, cs)
		{
			const char *id = json_str(e, "containerID");
			const char *sep = id ? strstr(id, "://") : NULL;
			if (!id || n == sizeof(c) / sizeof(c[0]))
				continue;
			c[n++] = (struct pod_container){
			    .id = sep ? sep + 3 : id,
			    .name = json_str(e, "name"),
			    .image = json_str(e, "image"),
			    .image_id = json_str(e, "imageID"),
			};
		}
	}
	if (h->pod_containers)
		h->pod_containers(h->ctx, uid, c, n);
	const cJSON *lb = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(root, "metadata"), "labels");
	if (h->pod_labels && cJSON_IsObject(lb)) {
		struct meta_kv kv[64];
		size_t nl = 0;
		const cJSON *e;
		cJSON_ArrayForEach(e, lb)
		{
			if (cJSON_IsString(e) && e->string && nl < sizeof(kv) / sizeof(kv[0]))
				kv[nl++] = (struct meta_kv){e->string, e->valuestring};
		}
		h->pod_labels(h->ctx, uid, kv, nl);
	}
	cJSON_Delete(root);
}

/* Tells the pod metadata cache of a pod event. */
static void pod_hook(struct k8s *k, const struct k8s_res *r, const char *type,
		     const struct k8s_objmeta *m, const char *obj, size_t len)
{
	const struct collector_hooks *h = k->hooks;
	if (!h || !h->pod_update || strcmp(r->def->name, "pods") || !m->uid[0] || !m->name[0])
		return;
	bool deleted = !strcmp(type, "DELETED");
	if (deleted || !strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
		h->pod_update(h->ctx, m->uid, m->ns, m->name, deleted);
		if (!deleted && (h->pod_containers || h->pod_labels))
			k8s_pod_containers(h, m->uid, obj, len);
	}
}

int k8s_emit(struct k8s_res *r, const char *type, const char *obj, size_t len,
	     const struct k8s_objmeta *m, const char *origin, const char *cursor_rv,
	     const char *id_rv)
{
	struct k8s *k = r->k;
	char *strip = NULL;
	size_t sl = 0;
	/* Past the lease's give-up point the cluster role ends here. */
	if (r->cluster && k->use_lease && !k8s_lease_may_emit(&k->lease))
		return -ECANCELED;
	pod_hook(k, r, type, m, obj, len); /* the whole object, before any strip */
	if (r->def->meta_only) {
		int s = k8s_metadata_only(obj, len, &strip, &sl);
		if (s == -ENOMEM)
			return -ENOMEM;
		if (s < 0) {
			k8s_log_parse_error(r, "object", "not a JSON object with metadata");
			return 1;
		}
		if (s == 1) {
			obj = strip;
			len = sl;
			atomic_fetch_add(&r->stripped, 1);
		}
	}
	/* Stable per object version: a version read again after a crash gets
	 * the same id (and Nats-Msg-Id), so JetStream stores it once. */
	char id[sizeof(m->uid) + sizeof(m->rv) + 48];
	snprintf(id, sizeof(id), "k8s-%s-%s-%s", r->def->name, m->uid, id_rv ? id_rv : m->rv);
	struct meta_kv kv[] = {
	    {"type", type},
	    {"resource", r->def->name},
	    {"namespace", m->ns[0] ? m->ns : NULL},
	    {"name", m->name},
	    {"resource_version", m->rv},
	    {"uid", m->uid},
	    {"origin", origin},
	    {"id", id},
	};
	struct k8s_slot slot = {.flags = 0};
	if (cursor_rv && *cursor_rv && strlen(cursor_rv) < sizeof(slot.rv)) {
		slot.flags |= SLOT_CURSOR;
		strcpy(slot.rv, cursor_rv);
	}
	int rc = k8s_slot_obj(&slot, m, !strcmp(type, "DELETED"));
	if (rc) {
		free(strip);
		return rc;
	}
	pthread_mutex_lock(&k->emit_lock);
	uint32_t token = k8s_track(r, &slot);
	if (!token) {
		free(slot.obj); /* too many unacknowledged: wait like a full queue */
		rc = -ENOSPC;
	} else {
		rc = event_emit_ack(k->q, k->base.source, TYPE_K8S_WATCH, FMT_JSON, now_ns(), kv,
				    sizeof(kv) / sizeof(kv[0]), obj, len, token);
		if (rc == 0)
			k8s_tracked(r);
		else
			k8s_untrack(r, token); /* frees slot.obj */
	}
	pthread_mutex_unlock(&k->emit_lock);
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
	/* Refused for good: committed in its turn, as if delivered. */
	struct k8s_slot done = {.flags = slot.flags & SLOT_CURSOR};
	strcpy(done.rv, slot.rv);
	if (k8s_slot_obj(&done, m, !strcmp(type, "DELETED")) == 0 && k8s_mark(r, &done))
		free(done.obj);
	return 0;
}

void k8s_set_rv(struct k8s_res *r, const char *rv)
{
	if (!strcmp(r->rv, rv))
		return;
	snprintf(r->rv, sizeof(r->rv), "%s", rv);
	struct k8s_slot s = {.flags = SLOT_CURSOR};
	if (strlen(rv) >= sizeof(s.rv))
		return;
	strcpy(s.rv, rv);
	k8s_mark(r, &s); /* when full, a later position carries the cursor on */
}

int k8s_list_done(struct k8s_res *r, const char *rv)
{
	snprintf(r->rv, sizeof(r->rv), "%s", rv);
	struct k8s_slot s = {.flags = SLOT_CURSOR | SLOT_LIST_END};
	snprintf(s.rv, sizeof(s.rv), "%s", rv);
	return k8s_mark(r, &s);
}

void k8s_save_seen(struct k8s_res *r, bool force)
{
	struct k8s *k = r->k;
	if (!k->state_dir || !*k->state_dir)
		return;
	uint64_t now = mono_ns();
	if (!force && now - r->seen_saved_ns < K8S_SEEN_SAVE_NS)
		return;
	pthread_mutex_lock(&r->cseen_lock);
	if (!r->cseen.dirty) {
		pthread_mutex_unlock(&r->cseen_lock);
		return;
	}
	r->seen_saved_ns = now;
	struct strbuf sb = STRBUF_INIT;
	int rc = seen_serialize(&r->cseen, &sb);
	pthread_mutex_unlock(&r->cseen_lock);
	if (!rc)
		rc = state_write(k->state_dir, r->seen_file, sb.buf, sb.len);
	if (rc) {
		pthread_mutex_lock(&r->cseen_lock);
		r->cseen.dirty = true;
		pthread_mutex_unlock(&r->cseen_lock);
		collector_error(&k->base, "%s: cannot save %s/%s: %s", r->def->name, k->state_dir,
				r->seen_file, strerror(-rc));
	}
	sb_free(&sb);
}

void k8s_remember(struct k8s_res *r, const struct k8s_objmeta *m, bool deleted)
{
	int rc = seen_put(&r->seen, m->uid, m->ns, m->name, m->rv, deleted, r->gen);
	if (rc == -ENOSPC && r->seen.overflow == 1)
		collector_error(
		    &r->k->base,
		    "%s: more than %zu objects: the ones past that may repeat after a relist",
		    r->def->name, r->seen.max);
}

/* ---- requests ---- */

void k8s_build_url(struct k8s_res *r, struct strbuf *sb, bool watch, unsigned limit,
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
		k8s_url_escape(sb, r->rv);
	} else {
		sb_puts(sb, "?limit=");
		sb_u64(sb, limit);
		if (r->list_cont) {
			sb_puts(sb, "&continue=");
			k8s_url_escape(sb, r->list_cont);
		}
	}
	if (r->def->node_scoped && k->node_sel) {
		sb_puts(sb, "&fieldSelector=");
		sb_puts(sb, k->node_sel);
	}
}

int k8s_run(struct k8s_res *r, const char *url, bool watch, unsigned timeout, frame_fn fn,
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
	    .stop = &r->stop,
	};
	return watch_run(&req, res);
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
		k8s_log_parse_error(r, "watch line", why);
		if (++r->bad_streak >= K8S_GARBAGE_LINES)
			return -EBADMSG;
		return 0;
	}
	r->bad_streak = 0;
	if (ev.type == K8S_EV_ERROR && ev.code == 400) {
		/* The server cannot watch from our resourceVersion (garbage, or from
		 * another cluster): retrying it would never deliver anything. Not a
		 * message: a server that keeps refusing is relisted with backoff. */
		atomic_fetch_add(&k->base.n.errors, 1);
		collector_error(&k->base,
				"%s: watch ERROR from %s: code 400 %s: %s for resourceVersion "
				"'%.63s'; relisting",
				r->def->name, k->server, ev.reason, ev.message, r->rv);
		r->refused = true;
		return -ESTALE;
	}
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
		k8s_set_rv(r, ev.meta.rv);
		return 0;
	default:
		break;
	}
	if (seen_has(&r->seen, ev.meta.uid, ev.meta.rv)) {
		atomic_fetch_add(&r->duplicates, 1);
	} else {
		rc = k8s_emit(r, k8s_ev_name(ev.type), ev.obj, ev.obj_len, &ev.meta, "watch",
			      ev.meta.rv, NULL);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			k8s_remember(r, &ev.meta, ev.type == K8S_EV_DELETED);
			/* the event's slot carries the cursor */
			snprintf(r->rv, sizeof(r->rv), "%s", ev.meta.rv);
		}
	}
	k8s_set_rv(r, ev.meta.rv);
	k8s_save_seen(r, false);
	return 0;
}

/* Sorts how a watch ended, reporting what went wrong. t0 is when it began. */
static enum k8s_outcome watch_outcome(struct k8s_res *r, int rc, const struct watch_result *res,
				      uint64_t t0)
{
	struct k8s *k = r->k;
	if (rc == -ECANCELED || res->stopped)
		return OUT_STOP;
	if (rc == -ESTALE || res->http_status == 410)
		return OUT_RELIST;
	if (res->http_status == 400) {
		/* A stored resourceVersion the server cannot read (garbage, or from
		 * another cluster): retrying it would never deliver anything. */
		atomic_fetch_add(&k->base.n.errors, 1);
		collector_error(&k->base, "%s: %s refused resourceVersion '%.63s' (%s); relisting",
				r->def->name, k->server, r->rv, res->error);
		return OUT_RELIST;
	}
	if (rc == 0) {
		/* The server ended the stream (timeoutSeconds or a restart). A
		 * stream that closes at once with nothing in it is a failure, so
		 * that a broken proxy is not hammered. */
		if (r->got_msg || mono_ns() - t0 > 1000000000ull)
			return OUT_AGAIN;
		collector_error(&k->base, "%s: watch %s%s closed at once with no data",
				r->def->name, k->server, r->def->path);
		return OUT_FAIL;
	}
	if (rc == -EAGAIN)
		return OUT_FAIL; /* queue full: retry from the cursor after a pause */
	if (rc == -EBADMSG) {
		atomic_fetch_add(&k->base.n.errors, 1);
		collector_error(&k->base, "%s: %s sent %d malformed lines in a row; reconnecting",
				r->def->name, k->server, K8S_GARBAGE_LINES);
		return OUT_FAIL;
	}
	/* An in-band ERROR (the callback's -EPROTO) was counted and reported
	 * where it was read; a 401 is reported by k8s_on_unauthorized. */
	bool inband = res->cb_err == -EPROTO;
	if (res->http_status != 401 && !inband) {
		atomic_fetch_add(&k->base.n.errors, 1);
		collector_error(&k->base, "%s: watch %s%s: %s", r->def->name, k->server,
				r->def->path, res->error);
	}
	return OUT_FAIL;
}

enum k8s_outcome k8s_do_watch(struct k8s_res *r, long *http)
{
	struct k8s *k = r->k;
	struct strbuf url = STRBUF_INIT;
	unsigned timeout =
	    backoff_ms(0, 600, 600); /* 300..600 s, spread so agents do not rewatch in step */
	k8s_build_url(r, &url, true, 0, timeout);
	if (url.err) {
		sb_free(&url);
		return OUT_FAIL;
	}
	struct watch_result res;
	char *tok = k8s_token_get(k, false);
	r->got_msg = false;
	r->refused = false;
	r->bad_streak = 0;
	uint64_t t0 = mono_ns();
	int rc = k8s_run(r, url.buf, true, timeout, watch_line, tok, &res);
	k8s_token_free(tok);
	*http = res.http_status;
	if (res.oversize) {
		atomic_fetch_add(&k->base.n.oversize, res.oversize);
		collector_error(&k->base, "%s: skipped %llu watch events over %zu bytes",
				r->def->name, (unsigned long long)res.oversize, k->max_msg);
	}
	enum k8s_outcome out = watch_outcome(r, rc, &res, t0);
	watch_result_free(&res);
	sb_free(&url);
	return out;
}
