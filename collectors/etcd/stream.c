// SPDX-License-Identifier: Apache-2.0
/* The etcd collector's thread: the watch stream, its events and the cursor
 * (see collector.c for what the cursor means). */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/etcd/internal.h"
#include "core/event.h"
#include "util/backoff.h"
#include "util/clock.h"

/* Hands rev_done on to the tracker, which moves the cursor as far as the
 * sink has acknowledged (collector.c: commit_rev); flush writes it now. */
static void save_cursor(struct etcd_collector *e, bool flush)
{
	if (!e->have_rev)
		return;
	ack_through(&e->ack, (uint64_t)e->rev_done);
	int rc = flush ? cursor_flush(&e->cur) : 0;
	if (rc) {
		atomic_fetch_add(&e->base.n.errors, 1);
		collector_error(&e->base, "writing %s/%s: %s", e->cur.dir, ETCD_CURSOR_FILE,
				strerror(-rc));
	}
}

/* Marks the revision in progress as complete. */
static void finish_pending(struct etcd_collector *e)
{
	if (e->pend_rev > e->rev_done) {
		e->rev_done = e->pend_rev;
		e->have_rev = true;
	}
	e->pend_rev = 0;
	e->pend_n = 0;
}

/* Builds and enqueues one event. Returns 0 when it is done with (enqueued, or
 * skipped for good and counted), or the queue's negative errno when it must
 * be fetched again. */
static int emit_event(struct etcd_collector *e, const struct etcd_event *ev)
{
	struct collector *c = &e->base;

	if (ev->kv.value_len > e->max_event ||
	    (ev->has_prev && ev->prev.value_len > e->max_event)) {
		atomic_fetch_add(&c->n.oversize, 1);
		collector_report(
		    &e->base, &e->rl[RL_OVERSIZE],
		    "skipped revision %" PRId64
		    " of key %.*s: value of %zu bytes is over the %" PRIu64
		    "-byte limit (max-event-size)",
		    ev->kv.mod_rev, (int)(ev->key_len > 200 ? 200 : ev->key_len), ev->key,
		    ev->kv.value_len > ev->prev.value_len ? ev->kv.value_len : ev->prev.value_len,
		    e->max_event);
		return 0;
	}
	sb_reset(&e->data);
	etcd_event_json(&e->data, ev);
	if (e->data.err) {
		atomic_fetch_add(&c->n.errors, 1);
		collector_error(c, "out of memory encoding revision %" PRId64, ev->kv.mod_rev);
		return -ENOMEM;
	}
	char rtype[256], rev[32], id[96];
	etcd_resource_type(ev->key, ev->key_len, rtype, sizeof(rtype));
	snprintf(rev, sizeof(rev), "%" PRId64, ev->kv.mod_rev);
	/* Stable per source event: a re-read event gets the same id (a key is
	 * changed at most once per revision). */
	snprintf(id, sizeof(id), "etcd-%s-%" PRId64 "-%016" PRIx64, e->id_scope_s, ev->kv.mod_rev,
		 etcd_fnv1a(ev->key, ev->key_len));
	struct meta_kv kv[] = {
	    {"operation", ev->op == ETCD_DELETE ? "DELETE" : "PUT"},
	    {"key", ev->key}, /* a key with a NUL byte is cut there; data.key is whole */
	    {"resource_type", rtype[0] ? rtype : NULL},
	    {"revision", rev},
	    {"id", id},
	};
	uint32_t token = ack_track(&e->ack, (uint64_t)ev->kv.mod_rev);
	int rc = token ? event_emit_ack(e->q, e->base.source, TYPE_ETCD_WATCH, FMT_JSON, now_ns(),
					kv, 5, e->data.buf, e->data.len, token)
		       : -ENOSPC; /* too many unacknowledged: wait like a full queue */
	if (rc && token)
		ack_untrack(&e->ack, token);
	collector_count_emit_resumable(c, rc);
	if (rc == -E2BIG) {
		/* Larger than the queue can ever hold: fetching it again will not help. */
		collector_report(&e->base, &e->rl[RL_TOO_BIG],
				 "skipped revision %" PRId64
				 ": event of %zu bytes does not fit the queue",
				 ev->kv.mod_rev, e->data.len);
		return 0;
	}
	return rc;
}

/* After a response was skipped for size, names the revisions it may have
 * held once the stream shows where it went on. */
static void report_skipped(struct etcd_collector *e, int64_t next)
{
	if (e->skipped_after < 0)
		return;
	if (next > e->skipped_after + 1)
		collector_error(&e->base,
				"events of revisions %" PRId64 "..%" PRId64
				" under the prefix may be missing: "
				"their watch response was over the size limit",
				e->skipped_after + 1, next - 1);
	e->skipped_after = -1;
}

static void handle_events(struct etcd_collector *e, const struct etcd_watch_resp *r)
{
	struct collector *c = &e->base;

	if (r->nev)
		report_skipped(e, r->ev[0].kv.mod_rev);

	if (r->bad_events) {
		atomic_fetch_add(&c->n.parse_errors, r->bad_events);
		collector_report(&e->base, &e->rl[RL_MALFORMED],
				 "skipped %zu malformed event(s) in a watch response: %s",
				 r->bad_events, r->bad_reason);
	}
	for (size_t i = 0; i < r->nev; i++) {
		const struct etcd_event *ev = &r->ev[i];
		int64_t m = ev->kv.mod_rev;
		if (m != e->stream_rev) {
			e->stream_rev = m;
			e->stream_idx = 0;
		}
		size_t idx = e->stream_idx++;
		if (e->have_rev && m <= e->rev_done)
			continue; /* already handled */
		if (m < e->pend_rev)
			continue; /* out of order: already past it */
		if (m == e->pend_rev && idx < e->pend_n)
			continue; /* enqueued before a reconnect */
		if (m > e->pend_rev) {
			finish_pending(e);
			e->pend_rev = m;
			e->pend_n = 0;
		}
		int rc = emit_event(e, ev);
		if (rc) {
			e->end = rc == -ESHUTDOWN ? END_CLOSED : END_QUEUE;
			snprintf(e->end_reason, sizeof(e->end_reason),
				 "the queue refused revision %" PRId64 " (%s); fetching it again",
				 m, strerror(-rc));
			return;
		}
		e->pend_n++;
	}
	/* A whole response holds whole revisions; fragments do not. */
	if (!r->fragment)
		finish_pending(e);
	save_cursor(e, false);
}

static void handle_compacted(struct etcd_collector *e, const struct etcd_watch_resp *r)
{
	struct collector *c = &e->base;
	int64_t from = e->have_rev ? e->rev_done + 1 : e->requested;
	int64_t to = r->compact_rev - 1;

	if (from <= 0)
		from = 1;
	if (from <= to) {
		struct strbuf sb = STRBUF_INIT;
		char rev[32], id[80];
		sb_printf(&sb,
			  "{\"requested_revision\":%" PRId64 ",\"compact_revision\":%" PRId64
			  ",\"lost_from\":%" PRId64 ",\"lost_to\":%" PRId64 "}",
			  e->requested, r->compact_rev, from, to);
		snprintf(rev, sizeof(rev), "%" PRId64, r->compact_rev);
		snprintf(id, sizeof(id), "etcd-%s-compacted-%" PRId64 "-%" PRId64, e->id_scope_s,
			 from, r->compact_rev);
		struct meta_kv kv[] = {{"operation", "COMPACTED"}, {"revision", rev}, {"id", id}};
		/* Tracked at `from`: the cursor stays before the gap until the
		 * sink has the record that names it. */
		uint32_t token = sb.err ? 0 : ack_track(&e->ack, (uint64_t)from);
		int rc = sb.err ? sb.err
			 : !token
			     ? -ENOSPC
			     : event_emit_ack(e->q, e->base.source, TYPE_ETCD_COMPACTED, FMT_JSON,
					      now_ns(), kv, 3, sb.buf, sb.len, token);
		if (rc && token)
			ack_untrack(&e->ack, token);
		sb_free(&sb);
		collector_count_emit_resumable(c, rc);
		if (rc) {
			e->end = rc == -ESHUTDOWN ? END_CLOSED : END_QUEUE;
			snprintf(e->end_reason, sizeof(e->end_reason),
				 "the queue refused the compaction event (%s)", strerror(-rc));
			return;
		}
		collector_error(c,
				"revisions %" PRId64 "..%" PRId64
				" were compacted before they were read; continuing from %" PRId64,
				from, to, r->compact_rev);
	}
	if (!e->have_rev || to > e->rev_done)
		e->rev_done = to;
	e->have_rev = true;
	e->pend_rev = 0;
	e->pend_n = 0;
	save_cursor(e, true);
	e->end = END_COMPACTED;
	snprintf(e->end_reason, sizeof(e->end_reason), "compacted at %" PRId64, r->compact_rev);
}

static int on_msg(void *ctx, const char *msg, size_t len)
{
	struct etcd_collector *e = ctx;
	struct collector *c = &e->base;
	struct etcd_watch_resp r;
	char err[200];

	int rc = etcd_watch_parse(msg, len, &r, err, sizeof(err));
	if (rc) {
		atomic_fetch_add(&c->n.parse_errors, 1);
		/* It may have held events: fetch them again from the cursor. */
		e->end = END_ERROR;
		snprintf(e->end_reason, sizeof(e->end_reason), "malformed watch response: %s", err);
		return -EBADMSG;
	}
	etcd_set_scope(e, r.cluster_id);
	switch (r.kind) {
	case ETCD_RESP_CREATED:
		e->created = true;
		atomic_store(&c->healthy, true);
		if (!e->have_rev) {
			/* Watching from now: everything up to here is not wanted. */
			e->rev_done = r.header_rev;
			e->have_rev = true;
			save_cursor(e, true);
		} else if (r.header_rev < e->rev_done) {
			collector_error(c,
					"the endpoint is at revision %" PRId64
					", behind the stored revision %" PRId64
					" (a lagging member, or a restored cluster)",
					r.header_rev, e->rev_done);
		}
		break;
	case ETCD_RESP_EVENTS:
		handle_events(e, &r);
		break;
	case ETCD_RESP_PROGRESS:
		report_skipped(e, r.header_rev + 1);
		if (r.header_rev > 0 && (!e->have_rev || r.header_rev > e->rev_done)) {
			e->rev_done = r.header_rev;
			e->have_rev = true;
			e->pend_rev = 0;
			e->pend_n = 0;
			save_cursor(e, false);
		}
		break;
	case ETCD_RESP_COMPACTED:
		handle_compacted(e, &r);
		break;
	case ETCD_RESP_CANCELED:
		e->end = END_ERROR;
		snprintf(e->end_reason, sizeof(e->end_reason), "watch canceled: %s",
			 r.cancel_reason[0] ? r.cancel_reason : "(no reason given)");
		break;
	case ETCD_RESP_ERROR:
		e->end = END_ERROR;
		snprintf(e->end_reason, sizeof(e->end_reason), "error %" PRId64 ": %s",
			 r.error_code, r.error_msg);
		break;
	}
	etcd_watch_resp_free(&r);
	return e->end == END_NONE ? 0 : -ECONNABORTED;
}

static void on_oversize(void *ctx, size_t len)
{
	struct etcd_collector *e = ctx;
	atomic_fetch_add(&e->base.n.oversize, 1);
	collector_error(&e->base, "skipped a watch response over %zu bytes (see max-event-size)",
			len);
	if (e->skipped_after < 0)
		e->skipped_after = e->pend_rev > e->rev_done ? e->pend_rev : e->rev_done;
}

/* Where the thread is in its round of endpoints. */
struct rotation {
	size_t idx;   /* the endpoint in use */
	size_t tried; /* endpoints failed in a row this round */
	unsigned attempt;
};

/* Resets the per-stream state and builds the request body for endpoint idx. */
static void stream_begin(struct etcd_collector *e, struct strbuf *body)
{
	e->requested = e->have_rev ? e->rev_done + 1 : 0;
	sb_reset(body);
	etcd_watch_body(body, e->prefix, e->prefix_len, e->requested);
	e->created = false;
	e->end = END_NONE;
	e->end_reason[0] = '\0';
	e->stream_rev = 0;
	e->stream_idx = 0;
	e->skipped_after = -1;
}

/* One watch stream on endpoint idx, to its end. *lived tells whether it
 * lasted long enough to count as having worked. */
static int stream_run(struct etcd_collector *e, size_t idx, const struct strbuf *body,
		      struct watch_result *res, bool *lived)
{
	char url[2048];
	snprintf(url, sizeof(url), "%s%s", e->endpoints.v[idx],
		 e->beta[idx] ? "/v3beta/watch" : "/v3/watch");
	struct watch_req req = {
	    .url = url,
	    .method = "POST",
	    .body = body->buf,
	    .content_type = "application/json",
	    .tls = &e->tls,
	    .framing = FRAME_JSON_OBJECTS,
	    .max_msg = e->max_msg,
	    .connect_timeout_ms = 5000,
	    .idle_timeout_s = ETCD_IDLE_TIMEOUT_S,
	    .on_msg = on_msg,
	    .on_oversize = on_oversize,
	    .ctx = e,
	    .stop = &e->base.thread.stop,
	};
	uint64_t t0 = mono_ns();
	int rc = watch_run(&req, res);
	*lived = mono_ns() - t0 >= ETCD_MIN_STREAM_NS;
	return rc;
}

/* After a failed stream: reports it, moves to the next endpoint at once, and
 * backs off after a full round of failures. Returns false when stopping. */
static bool stream_failed(struct etcd_collector *e, struct rotation *rot, int rc,
			  const struct watch_result *res)
{
	struct collector *c = &e->base;
	const char *base = e->endpoints.v[rot->idx];
	if (e->end == END_QUEUE) {
		collector_error(c, "%s", e->end_reason);
	} else {
		atomic_fetch_add(&c->n.errors, 1);
		collector_error(c, "%s: %s", base,
				e->end_reason[0] ? e->end_reason
				: rc		 ? res->error
						 : "the watch stream closed at once");
	}
	if (e->created)
		rot->attempt = 0, rot->tried = 0;
	rot->idx = (rot->idx + 1) % e->endpoints.n;
	if (++rot->tried >= e->endpoints.n || e->end == END_QUEUE) {
		rot->tried = 0;
		if (sleep_or_stop(
			backoff_ms(rot->attempt, ETCD_BACKOFF_BASE_MS, ETCD_BACKOFF_CAP_MS),
			&c->thread.stop))
			return false;
		if (rot->attempt < 16)
			rot->attempt++;
	}
	return true;
}

/* Decides what follows a stream that has ended. Returns false when stopping. */
static bool stream_ended(struct etcd_collector *e, struct rotation *rot, int rc,
			 const struct watch_result *res, bool lived)
{
	struct collector *c = &e->base;
	const char *base = e->endpoints.v[rot->idx];
	if (res->junk) {
		atomic_fetch_add(&c->n.parse_errors, 1);
		collector_error(c, "%s: skipped %" PRIu64 " stray bytes between watch responses",
				base, res->junk);
	}
	if (res->stopped || collector_stopping(c))
		return false;
	if (e->end == END_CLOSED)
		return false; /* the agent is shutting the queue: nothing more can go in */
	if (e->end == END_COMPACTED)
		return true;
	if (rc == -EPROTO && res->http_status == 404 && !e->beta[rot->idx]) {
		e->beta[rot->idx] = true; /* etcd 3.3 serves the gateway at /v3beta */
		return true;
	}
	if (e->created && lived && e->end == END_NONE) {
		/* A stream that worked and ended (etcd restarted, a proxy
		 * closed it): reconnect at once, starting with the same endpoint. */
		collector_error(c, "%s: watch stream ended (%s); resuming from revision %" PRId64,
				base, rc ? res->error : "closed by the server", e->rev_done + 1);
		rot->attempt = 0;
		rot->tried = 0;
		return true;
	}
	return stream_failed(e, rot, rc, res);
}

void *etcd_thread(void *arg)
{
	struct collector *c = arg;
	struct etcd_collector *e = to_etcd(c);
	struct strbuf body = STRBUF_INIT;
	struct rotation rot = {0};
	bool first = true;

	while (!collector_stopping(c)) {
		stream_begin(e, &body);
		if (!first)
			atomic_fetch_add(&c->n.reconnects, 1);
		first = false;
		if (body.err) {
			atomic_store(&c->healthy, false);
			save_cursor(e, true);
			collector_error(c, "out of memory");
			sleep_or_stop(ETCD_BACKOFF_CAP_MS, &c->thread.stop);
			continue;
		}
		struct watch_result res;
		bool lived;
		int rc = stream_run(e, rot.idx, &body, &res, &lived);
		atomic_store(&c->healthy, false);
		save_cursor(e, true);
		watch_result_free(&res);
		if (!stream_ended(e, &rot, rc, &res, lived))
			break;
	}
	atomic_store(&c->healthy, false);
	save_cursor(e, true);
	sb_free(&body);
	return NULL;
}
