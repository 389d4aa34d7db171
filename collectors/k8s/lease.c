/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster role's Lease: record parsing and building, the requests, and
 * the election thread (lease.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collectors/k8s/internal.h"
#include "collectors/k8s/lease.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/strbuf.h"

/* ---- the record ---- */

static void copy_str(char *dst, size_t size, const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	dst[0] = '\0';
	if (cJSON_IsString(v) && v->valuestring)
		snprintf(dst, size, "%s", v->valuestring);
}

int k8s_lease_parse(const char *json, size_t len, struct k8s_lease_rec *rec, char *why,
		    size_t whylen)
{
	memset(rec, 0, sizeof(*rec));
	cJSON *root = cJSON_ParseWithLength(json, len);
	if (!root) {
		snprintf(why, whylen, "not JSON");
		return -EBADMSG;
	}
	int rc = 0;
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
	if (!cJSON_IsObject(root) || !cJSON_IsObject(md)) {
		snprintf(why, whylen, "no metadata");
		rc = -EBADMSG;
		goto out;
	}
	copy_str(rec->rv, sizeof(rec->rv), md, "resourceVersion");
	if (!rec->rv[0]) {
		snprintf(why, whylen, "no metadata.resourceVersion");
		rc = -EBADMSG;
		goto out;
	}
	if (cJSON_IsObject(spec)) {
		copy_str(rec->holder, sizeof(rec->holder), spec, "holderIdentity");
		copy_str(rec->acquire, sizeof(rec->acquire), spec, "acquireTime");
		copy_str(rec->renew, sizeof(rec->renew), spec, "renewTime");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(spec, "leaseDurationSeconds");
		if (cJSON_IsNumber(d) && d->valuedouble > 0 && d->valuedouble < 1e6)
			rec->duration = (unsigned)d->valuedouble;
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions");
		if (cJSON_IsNumber(t) && t->valuedouble >= 0 && t->valuedouble < 4e9)
			rec->transitions = (unsigned)t->valuedouble;
	}
	const cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
	const cJSON *a;
	size_t plen = strlen(K8S_LEASE_ANNOTATION);
	cJSON_ArrayForEach(a, ann)
	{
		if (!a->string || strncmp(a->string, K8S_LEASE_ANNOTATION, plen) ||
		    !cJSON_IsString(a) || !a->valuestring)
			continue;
		(void)k8s_lease_set_cursor(rec, a->string + plen, a->valuestring);
	}
out:
	cJSON_Delete(root);
	return rc;
}

const char *k8s_lease_cursor(const struct k8s_lease_rec *rec, const char *res)
{
	for (size_t i = 0; i < rec->ncur; i++)
		if (!strcmp(rec->cur[i].res, res))
			return rec->cur[i].rv;
	return NULL;
}

int k8s_lease_set_cursor(struct k8s_lease_rec *rec, const char *res, const char *rv)
{
	if (strlen(res) >= sizeof(rec->cur[0].res) || strlen(rv) >= sizeof(rec->cur[0].rv))
		return -ENAMETOOLONG;
	size_t i = 0;
	while (i < rec->ncur && strcmp(rec->cur[i].res, res))
		i++;
	if (i == rec->ncur) {
		if (rec->ncur == K8S_LEASE_MAX_CURSORS)
			return -ENOSPC;
		rec->ncur++;
	}
	snprintf(rec->cur[i].res, sizeof(rec->cur[i].res), "%s", res);
	snprintf(rec->cur[i].rv, sizeof(rec->cur[i].rv), "%s", rv);
	return 0;
}

void k8s_lease_microtime(uint64_t ns, char *buf, size_t size)
{
	time_t s = (time_t)(ns / 1000000000ull);
	struct tm tm;
	gmtime_r(&s, &tm);
	char day[32];
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%06uZ", day, (unsigned)(ns % 1000000000ull / 1000));
}

int k8s_lease_body(struct strbuf *sb, const char *name, const char *ns,
		   const struct k8s_lease_rec *rec)
{
	sb_puts(sb, "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
		    "\"metadata\":{\"name\":");
	sb_json_cstr(sb, name);
	sb_puts(sb, ",\"namespace\":");
	sb_json_cstr(sb, ns);
	if (rec->rv[0]) {
		sb_puts(sb, ",\"resourceVersion\":");
		sb_json_cstr(sb, rec->rv);
	}
	if (rec->ncur) {
		sb_puts(sb, ",\"annotations\":{");
		for (size_t i = 0; i < rec->ncur; i++) {
			char key[64];
			snprintf(key, sizeof(key), "%s%s", K8S_LEASE_ANNOTATION, rec->cur[i].res);
			if (i)
				sb_putc(sb, ',');
			sb_json_cstr(sb, key);
			sb_putc(sb, ':');
			sb_json_cstr(sb, rec->cur[i].rv);
		}
		sb_putc(sb, '}');
	}
	sb_puts(sb, "},\"spec\":{\"holderIdentity\":");
	sb_json_cstr(sb, rec->holder);
	sb_puts(sb, ",\"leaseDurationSeconds\":");
	sb_u64(sb, rec->duration);
	if (rec->acquire[0]) {
		sb_puts(sb, ",\"acquireTime\":");
		sb_json_cstr(sb, rec->acquire);
	}
	if (rec->renew[0]) {
		sb_puts(sb, ",\"renewTime\":");
		sb_json_cstr(sb, rec->renew);
	}
	sb_puts(sb, ",\"leaseTransitions\":");
	sb_u64(sb, rec->transitions);
	sb_puts(sb, "}}");
	return sb->err;
}

/* ---- requests ---- */

struct body {
	char *p;
	size_t len;
};

static int take_body(void *ctx, const char *msg, size_t len)
{
	struct body *b = ctx;
	free(b->p);
	b->p = malloc(len + 1);
	if (!b->p)
		return -ENOMEM;
	memcpy(b->p, msg, len);
	b->p[len] = '\0';
	b->len = len;
	return 0;
}

/* The longest a request on the lease may take: while held, no longer than
 * the time left until the give-up point (0: none left). */
static unsigned request_ms(const struct k8s_lease *l, bool holding)
{
	unsigned ms = l->renew_ms < 5000 ? l->renew_ms : 5000;
	if (holding) {
		uint64_t until = atomic_load(&l->until_mono), now = mono_ns();
		uint64_t left = until > now ? (until - now) / 1000000ull : 0;
		if (left < ms)
			ms = (unsigned)left;
	}
	return ms;
}

/* One request on the Lease, taking at most to_ms. Returns the HTTP status (0
 * when none came) and the parsed record of a 2xx answer in *rec; -ECANCELED
 * when stopping. */
static long lease_request(struct k8s_lease *l, const char *method, const char *url,
			  const char *body, struct k8s_lease_rec *rec, char *err, size_t errlen,
			  atomic_bool *stop, unsigned to_ms)
{
	struct k8s *k = l->k;
	struct body b = {0};
	char *tok = k8s_token_get(k, false);
	struct watch_req req = {
	    .url = url,
	    .method = method,
	    .body = body,
	    .content_type = body ? "application/json" : NULL,
	    .accept = ACCEPT_JSON,
	    .bearer_token = tok,
	    .tls = &k->tls,
	    .framing = FRAME_WHOLE,
	    .max_msg = 1u << 20,
	    .connect_timeout_ms = to_ms,
	    .idle_timeout_s = to_ms / 1000 ? to_ms / 1000 : 1,
	    .timeout_ms = to_ms,
	    .on_msg = take_body,
	    .ctx = &b,
	    .stop = stop,
	    .conn = &l->conn, /* a renew every few seconds: no handshake each */
	};
	struct watch_result res;
	int rc = watch_run(&req, &res);
	k8s_token_free(tok);
	long http = res.http_status;
	err[0] = '\0';
	if (rc == -ECANCELED || res.stopped) {
		http = -ECANCELED;
	} else if (rc == 0) {
		char why[96];
		int prc = b.p ? k8s_lease_parse(b.p, b.len, rec, why, sizeof(why)) : -EBADMSG;
		if (prc) {
			snprintf(err, errlen, "%s %s: a malformed Lease: %s", method, url,
				 b.p ? why : "an empty body");
			http = 0;
		}
	} else if (http == 0 || !(http == 404 || http == 409)) {
		snprintf(err, errlen, "%s %s: %s%s", method, url, res.error,
			 http == 403 ? " (RBAC: this Lease needs get, create and update for the "
				       "agent's service account)"
				     : "");
	}
	if (err[0])
		atomic_fetch_add(&k->base.n.errors, 1);
	/* A 403 (RBAC), 401, 5xx, a timeout or a malformed answer: this agent
	 * cannot take part in the election, and is unhealthy until it can. */
	if (http != -ECANCELED)
		atomic_store(&l->reachable, !err[0]);
	watch_result_free(&res);
	free(b.p);
	return http;
}

/* ---- the election ---- */

static void report(struct k8s_lease *l, int code, const char *msg)
{
	if (code == l->last_err)
		return;
	l->last_err = code;
	if (msg && *msg)
		collector_error(&l->k->base, "lease %s/%s: %s", l->ns, l->name, msg);
}

/* Notes the record read; its holder or renewTime changing restarts the
 * expiry clock. */
static void observe(struct k8s_lease *l, const struct k8s_lease_rec *rec, uint64_t now)
{
	if (!l->have_obs || strcmp(l->obs.holder, rec->holder) || strcmp(l->obs.renew, rec->renew))
		l->obs_mono = now;
	l->obs = *rec;
	l->have_obs = true;
}

/* Writes the lease as ours (create when absent). Returns true when held. */
static bool try_write(struct k8s_lease *l, bool renewing)
{
	char err[512];
	struct k8s_lease_rec cur, want;
	uint64_t t0 = mono_ns();
	long http = 0;

	if (renewing && !request_ms(l, true))
		return false; /* the give-up point has come */
	if (!renewing || !l->have_obs) {
		http = lease_request(l, "GET", l->url, NULL, &cur, err, sizeof(err), &l->stop,
				     request_ms(l, renewing));
		if (http == -ECANCELED)
			return false;
		if (http == 200) {
			observe(l, &cur, t0);
		} else if (http != 404) {
			report(l, http ? (int)http : -EIO, err);
			return false;
		}
	} else {
		cur = l->obs;
	}
	bool absent = http == 404;
	if (!absent) {
		bool free_ = !cur.holder[0];
		bool mine = !strcmp(cur.holder, l->holder);
		unsigned dur_ms = (cur.duration ? cur.duration * 1000u : l->duration_ms);
		bool expired = t0 - l->obs_mono >= (uint64_t)dur_ms * 1000000ull;
		/* someone else holds it (a holder that renews never takes it back) */
		if (!free_ && !mine && (renewing || !expired))
			return false;
	}

	memset(&want, 0, sizeof(want));
	if (!absent)
		want = cur;
	char now[40];
	k8s_lease_microtime(now_ns(), now, sizeof(now));
	bool was_mine = !absent && !strcmp(cur.holder, l->holder);
	if (!was_mine) {
		snprintf(want.acquire, sizeof(want.acquire), "%s", now);
		if (!absent)
			want.transitions++;
	}
	snprintf(want.holder, sizeof(want.holder), "%s", l->holder);
	snprintf(want.renew, sizeof(want.renew), "%s", now);
	want.duration = (l->duration_ms + 999) / 1000;
	if (renewing)
		k8s_role_cursors(l->k, &want);
	if (absent)
		want.rv[0] = '\0';

	struct strbuf sb = STRBUF_INIT;
	if (k8s_lease_body(&sb, l->name, l->ns, &want)) {
		sb_free(&sb);
		return false;
	}
	struct k8s_lease_rec got;
	unsigned to_ms = request_ms(l, renewing);
	http = to_ms ? lease_request(l, absent ? "POST" : "PUT", absent ? l->coll_url : l->url,
				     sb.buf, &got, err, sizeof(err), &l->stop, to_ms)
		     : 0;
	sb_free(&sb);
	if (http == -ECANCELED || !to_ms)
		return false;
	if (http == 200 || http == 201) {
		observe(l, &got, t0);
		l->ok_mono = t0;
		atomic_store(&l->until_mono,
			     t0 + (uint64_t)k8s_lease_deadline_ms(l->duration_ms, l->renew_ms) *
				      1000000ull);
		report(l, 0, NULL);
		return true;
	}
	l->have_obs = false; /* re-read before the next try */
	if (http == 409) {
		report(l, 409,
		       renewing ? "renew lost to a concurrent update (409 Conflict)" : NULL);
		return false;
	}
	report(l, http ? (int)http : -EIO, err);
	return false;
}

/* Becomes the holder: the cluster role starts from the lease's cursors. */
static void won(struct k8s_lease *l)
{
	atomic_store(&l->leader, true);
	atomic_fetch_add(&l->acquired, 1);
	tlog(TLOG_INFO, "k8s", "lease %s/%s acquired as %s", l->ns, l->name, l->holder);
	k8s_role_cluster_start(l->k, &l->obs);
}

static void lost(struct k8s_lease *l, const char *why)
{
	k8s_role_cluster_stop(l->k);
	atomic_store(&l->leader, false);
	atomic_store(&l->until_mono, 0);
	atomic_store(&l->expired, false);
	atomic_fetch_add(&l->lost, 1);
	l->have_obs = false;
	tlog(TLOG_INFO, "k8s", "lease %s/%s given up: %s", l->ns, l->name, why);
}

/* The holder's release on stop: an empty holder, so that the next agent
 * takes over at its next try instead of after the lease duration. */
/* Gives the Lease up (holder "", duration 1 s) with the cursors. A 409
 * means the Lease changed since it was last seen: a renew the stop cut
 * short may have been applied without its answer. The Lease is then read
 * again, and released once more while it is still ours. */
static void release(struct k8s_lease *l)
{
	if (!l->have_obs)
		return;
	struct strbuf sb = STRBUF_INIT;
	char err[512];
	struct k8s_lease_rec got;
	atomic_bool never = false; /* the stop flag is set: it would cancel this request */
	long http = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct k8s_lease_rec want = l->obs;
		want.holder[0] = '\0';
		want.duration = 1;
		char now[40];
		k8s_lease_microtime(now_ns(), now, sizeof(now));
		snprintf(want.renew, sizeof(want.renew), "%s", now);
		k8s_role_cursors(l->k, &want);
		err[0] = '\0';
		sb_reset(&sb);
		if (k8s_lease_body(&sb, l->name, l->ns, &want))
			break;
		http = lease_request(l, "PUT", l->url, sb.buf, &got, err, sizeof(err), &never,
				     request_ms(l, false));
		if (http != 409 || attempt)
			break;
		struct k8s_lease_rec cur;
		if (lease_request(l, "GET", l->url, NULL, &cur, err, sizeof(err), &never,
				  request_ms(l, false)) != 200 ||
		    strcmp(cur.holder, l->holder))
			break; /* gone, or someone else's now: nothing to give up */
		l->obs = cur;
	}
	if (http == 200)
		tlog(TLOG_INFO, "k8s", "lease %s/%s released", l->ns, l->name);
	else if (http)
		collector_error(&l->k->base, "lease %s/%s: release failed: %s", l->ns, l->name,
				err[0] ? err : "409 Conflict");
	sb_free(&sb);
}

/* A renew that came back only past the give-up point (the role emitted
 * nothing since): the role restarts from the cursors just written. */
static void renewed(struct k8s_lease *l)
{
	if (!atomic_exchange(&l->expired, false))
		return;
	lost(l, "a renew answered only after the give-up point");
}

bool k8s_lease_may_emit(struct k8s_lease *l)
{
	if (mono_ns() < atomic_load(&l->until_mono))
		return true;
	atomic_store(&l->expired, true);
	return false;
}

/* Whether the sink has acknowledged cursors of the cluster role that the
 * lease does not carry yet. */
static bool cursors_moved(struct k8s_lease *l)
{
	struct k8s_lease_rec want = l->obs;
	k8s_role_cursors(l->k, &want);
	for (size_t i = 0; i < want.ncur; i++) {
		const char *on = k8s_lease_cursor(&l->obs, want.cur[i].res);
		if (!on || strcmp(on, want.cur[i].rv))
			return true;
	}
	return false;
}

/* Waits on moved_cv until a cursor moved, a stop, or until (monotonic ns).
 * Returns true when stopping. */
static bool wait_moved(struct k8s_lease *l, uint64_t until)
{
	struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull),
			      .tv_nsec = (long)(until % 1000000000ull)};
	pthread_mutex_lock(&l->moved_lock);
	while (!l->moved && !atomic_load(&l->stop) && mono_ns() < until)
		pthread_cond_timedwait(&l->moved_cv, &l->moved_lock, &ts);
	pthread_mutex_unlock(&l->moved_lock);
	return atomic_load(&l->stop);
}

void k8s_lease_cursor_moved(struct k8s_lease *l)
{
	if (!l->moved_ok)
		return;
	pthread_mutex_lock(&l->moved_lock);
	l->moved = true;
	pthread_cond_signal(&l->moved_cv);
	pthread_mutex_unlock(&l->moved_lock);
}

/* The holder's wait for its next write: the renew period, or sooner once
 * the cursors moved, but at most one write per K8S_LEASE_CURSOR_DIV-th of
 * the renew period. It waits for the acknowledgement that moves a cursor
 * (k8s_lease_cursor_moved) or the renew; a move before that point waits
 * for it. Returns true when stopping. */
static bool wait_write(struct k8s_lease *l)
{
	uint64_t renew = (uint64_t)l->renew_ms * 1000000ull;
	uint64_t soon = l->ok_mono + renew / K8S_LEASE_CURSOR_DIV, next = l->ok_mono + renew;
	for (;;) {
		pthread_mutex_lock(&l->moved_lock);
		l->moved = false; /* before the look: a later move wakes the wait */
		pthread_mutex_unlock(&l->moved_lock);
		uint64_t now = mono_ns();
		if (now >= next)
			return false;
		if (cursors_moved(l)) {
			if (now >= soon)
				return false;
			if (sleep_or_stop((unsigned)((soon - now + 999999ull) / 1000000ull),
					  &l->stop))
				return true;
			continue;
		}
		if (wait_moved(l, next))
			return true;
	}
}

static void *lease_main(void *arg)
{
	struct k8s_lease *l = arg;
	unsigned deadline = k8s_lease_deadline_ms(l->duration_ms, l->renew_ms);
	unsigned retry = l->renew_ms / 4 ? l->renew_ms / 4 : 1;
	while (!atomic_load(&l->stop)) {
		if (!atomic_load(&l->leader)) {
			if (try_write(l, false))
				won(l);
			else if (sleep_or_stop(l->renew_ms, &l->stop))
				break;
			continue;
		}
		if (wait_write(l))
			break;
		if (try_write(l, true)) {
			renewed(l);
			continue;
		}
		if (atomic_load(&l->stop))
			break;
		atomic_fetch_add(&l->renew_failures, 1);
		/* Retries until the deadline; stops the role before the lease can
		 * expire for anyone else. */
		while (!atomic_load(&l->stop)) {
			uint64_t held_ms = (mono_ns() - l->ok_mono) / 1000000ull;
			if (held_ms + retry >= deadline) {
				lost(l, "no renew within the deadline");
				break;
			}
			if (sleep_or_stop(retry, &l->stop))
				break;
			if (try_write(l, true)) {
				renewed(l);
				break;
			}
			if (atomic_load(&l->stop))
				break;
			if (l->have_obs && l->obs.holder[0] && strcmp(l->obs.holder, l->holder)) {
				lost(l, "held by another agent");
				break;
			}
			atomic_fetch_add(&l->renew_failures, 1);
		}
	}
	if (atomic_load(&l->leader)) {
		k8s_role_cluster_stop(l->k);
		atomic_store(&l->leader, false);
		release(l);
	}
	watch_conn_close(&l->conn);
	return NULL;
}

int k8s_lease_start(struct k8s_lease *l)
{
	atomic_store(&l->stop, false);
	atomic_store(&l->leader, false);
	atomic_store(&l->until_mono, 0);
	atomic_store(&l->expired, false);
	atomic_store(&l->reachable, false);
	l->have_obs = false;
	l->last_err = 0;
	if (!l->moved_ok) {
		pthread_condattr_t a;
		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&l->moved_cv, &a);
		pthread_condattr_destroy(&a);
		pthread_mutex_init(&l->moved_lock, NULL);
		l->moved_ok = true;
	}
	int rc = -pthread_create(&l->thr, NULL, lease_main, l);
	if (!rc)
		pthread_setname_np(l->thr, "k8s-lease");
	l->started = rc == 0;
	return rc;
}

void k8s_lease_stop(struct k8s_lease *l)
{
	if (!l->started)
		return;
	atomic_store(&l->stop, true);
	watch_stop_notify();
	pthread_mutex_lock(&l->moved_lock);
	pthread_cond_signal(&l->moved_cv);
	pthread_mutex_unlock(&l->moved_lock);
	pthread_join(l->thr, NULL);
	l->started = false;
}

void k8s_lease_free(struct k8s_lease *l)
{
	if (l->moved_ok) {
		pthread_cond_destroy(&l->moved_cv);
		pthread_mutex_destroy(&l->moved_lock);
		l->moved_ok = false;
	}
	free(l->name);
	free(l->ns);
	free(l->holder);
	free(l->url);
	free(l->coll_url);
}
