// SPDX-License-Identifier: Apache-2.0
/* The NATS JetStream sink: see sink_nats.h for the contract.
 *
 * Threads: write() and flush() run on the pipeline thread; the ack handler
 * and the connection callbacks run on libnats threads. The retry list is
 * shared between them under `lock`; the counters are atomics.
 */
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/event.h"
#include "sink/format.h"
#include "util/clock.h"
#include "core/options.h"
#include "util/log.h"
#include "sink/sink_nats.h"
#include "util/strbuf.h"
#include "sink/nats_internal.h"

/* ---- retry list (under lock) ---- */

static bool retry_push_locked(struct nats_sink *ns, natsMsg *m)
{
	if (ns->retry_n == ns->retry_cap)
		return false;
	ns->retry[(ns->retry_head + ns->retry_n) % ns->retry_cap] = m;
	ns->retry_n++;
	return true;
}

static natsMsg *retry_pop_locked(struct nats_sink *ns)
{
	natsMsg *m;

	if (!ns->retry_n)
		return NULL;
	m = ns->retry[ns->retry_head];
	ns->retry_head = (ns->retry_head + 1) % ns->retry_cap;
	ns->retry_n--;
	return m;
}

static bool retry_unpop_locked(struct nats_sink *ns, natsMsg *m)
{
	/* Back to the front, to keep the order. */
	if (ns->retry_n == ns->retry_cap)
		return false;
	ns->retry_head = (ns->retry_head + ns->retry_cap - 1) % ns->retry_cap;
	ns->retry[ns->retry_head] = m;
	ns->retry_n++;
	return true;
}

static unsigned msg_attempts(natsMsg *m)
{
	const char *v = NULL;

	if (natsMsgHeader_Get(m, ATTEMPT_HDR, &v) != NATS_OK || !v)
		return 1;
	return (unsigned)strtoul(v, NULL, 10);
}

/* The source and ack token a message carries (ACK_HDR); false without. */
static bool msg_ack(natsMsg *m, unsigned *src, uint32_t *token)
{
	const char *v = NULL;
	char *end;

	if (!m || natsMsgHeader_Get(m, ACK_HDR, &v) != NATS_OK || !v)
		return false;
	unsigned long s = strtoul(v, &end, 10);
	if (*end != '/' || s >= SINK_SOURCES)
		return false;
	*src = (unsigned)s;
	*token = (uint32_t)strtoul(end + 1, NULL, 10);
	return true;
}

/* The message's fate is known: delivered (PubAck) or lost. Counts it for
 * its source and settles its token: a loss while the sink runs is counted
 * and logged, and its source's cursor must not wait for it until a restart.
 * Once the sink closes (closing), a loss is not settled: what never got its
 * ack is read again by its source after a restart. */
static void msg_settled(struct nats_sink *ns, natsMsg *m, bool delivered)
{
	unsigned src;
	uint32_t token;

	if (!msg_ack(m, &src, &token))
		return;
	atomic_fetch_sub(&ns->outstanding[src], 1);
	atomic_fetch_add(delivered ? &ns->base.src_written[src] : &ns->base.src_failed[src], 1);
	if (delivered || !atomic_load(&ns->closing))
		ack_settle_src(src, token);
}

/* Counts a message as lost, says why (rate-limited) and frees it. */
static void count_lost(struct nats_sink *ns, natsMsg *m, const char *why)
{
	const char *id = NULL;
	uint64_t now = mono_ns(), last = atomic_load(&ns->last_loss_log);

	atomic_fetch_add(&ns->lost, 1);
	atomic_fetch_add(&ns->failed, 1);
	atomic_fetch_add(&ns->base.failed, 1);
	msg_settled(ns, m, false);
	if (m)
		natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
	if (now - last > 1000000000ull &&
	    atomic_compare_exchange_strong(&ns->last_loss_log, &last, now))
		tlog(TLOG_ERR, "nats", "event %s lost: %s (lost so far: %" PRIu64 ")",
		     id ? id : "?", why, atomic_load(&ns->lost));
	natsMsg_Destroy(m);
}

/* ---- libnats callbacks ---- */

static bool transient(natsStatus st)
{
	switch (st) {
	case NATS_TIMEOUT:
	case NATS_NO_RESPONDERS:
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_NOT_YET_CONNECTED:
	case NATS_STALE_CONNECTION:
	case NATS_IO_ERROR:
	case NATS_INSUFFICIENT_BUFFER:
		return true;
	default:
		return false;
	}
}

/* JetStream answers that may change by themselves: a server still
 * recovering, a cluster without leader, resources that free up, a stream
 * that is created again. */
static bool transient_js(jsErrCode e)
{
	switch ((int)e) {
	case JSClusterNotAvailErr:
	case JSClusterNotLeaderErr:
	case JSInsufficientResourcesErr:
	case JSMemoryResourcesExceededErr:
	case JSNotEnabledForAccountErr:
	case JSStorageResourcesExceededErr:
	case JSStreamNotFoundErr:
	case JSNotEnabledErr:
	case JSStreamOfflineErr:
		return true;
	default:
		return false;
	}
}

/* A publish failed for a passing reason: the first failure of a round (one
 * after the last wait ended) makes the retry list wait longer. */
static void retry_backoff(struct nats_sink *ns)
{
	uint64_t now = mono_ns();

	if (now < atomic_load(&ns->retry_after))
		return; /* this round's wait is set */
	unsigned r = atomic_fetch_add(&ns->retry_rounds, 1);
	uint64_t ms = (uint64_t)RETRY_BACKOFF_MIN_MS << (r < 6 ? r : 6);

	if (ms > RETRY_BACKOFF_MAX_MS)
		ms = RETRY_BACKOFF_MAX_MS;
	atomic_store(&ns->retry_after, now + ms * 1000000ull);
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	struct nats_sink *ns = closure;
	unsigned attempts;
	bool kept = false;

	(void)js;
	atomic_fetch_sub(&ns->inflight, 1);
	if (pa) {
		atomic_fetch_add(&ns->acked, 1);
		atomic_fetch_add(&ns->base.acked, 1);
		if (pa->Duplicate)
			atomic_fetch_add(&ns->duplicates, 1);
		atomic_store(&ns->retry_rounds, 0);
		msg_settled(ns, msg, true);
		natsMsg_Destroy(msg);
		return;
	}
	if (!pae || !msg) {
		count_lost(ns, msg, "publish failed without a reason");
		return;
	}
	if (pae->ErrCode != 0 ? !transient_js(pae->ErrCode) : !transient(pae->Err)) {
		char why[200];

		snprintf(why, sizeof(why), "refused by the server: %s (%d)",
			 pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err),
			 (int)pae->ErrCode);
		count_lost(ns, msg, why); /* it would be refused again */
		return;
	}
	if (pae->Err == NATS_NO_RESPONDERS || pae->ErrCode == JSStreamNotFoundErr)
		atomic_store(&ns->stream_ready, false); /* the stream may be gone */
	attempts = msg_attempts(msg);
	retry_backoff(ns);
	if (attempts < ns->max_attempts) {
		pthread_mutex_lock(&ns->lock);
		kept = retry_push_locked(ns, msg);
		pthread_mutex_unlock(&ns->lock);
	}
	if (!kept)
		count_lost(ns, msg,
			   attempts >= ns->max_attempts ? "no ack after the last attempt"
							: "retry list full");
}

static void on_connected(natsConnection *nc, void *closure)
{
	struct nats_sink *ns = closure;

	(void)nc;
	atomic_store(&ns->connected, true);
	tlog(TLOG_INFO, "nats", "connected");
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	struct nats_sink *ns = closure;

	(void)nc;
	if (atomic_exchange(&ns->connected, false) && !atomic_load(&ns->closing))
		tlog(TLOG_WARN, "nats", "disconnected; buffering in the queue while reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct nats_sink *ns = closure;

	(void)nc;
	atomic_fetch_add(&ns->reconnects, 1);
	atomic_store(&ns->stream_ready, false); /* check it again: the server may be new */
	atomic_store(&ns->connected, true);
	tlog(TLOG_INFO, "nats", "reconnected");
}

static void on_closed(natsConnection *nc, void *closure)
{
	struct nats_sink *ns = closure;

	(void)nc;
	atomic_store(&ns->connected, false);
	pthread_mutex_lock(&ns->lock);
	ns->closed = true;
	pthread_cond_broadcast(&ns->closed_cv);
	pthread_mutex_unlock(&ns->lock);
}

/* ---- stream ---- */

static int publish(struct nats_sink *ns, natsMsg **m)
{
	jsPubOptions po;
	natsStatus st;

	jsPubOptions_Init(&po);
	po.MaxWait = ACK_TIMEOUT_MS;
	atomic_fetch_add(&ns->inflight, 1);
	st = js_PublishMsgAsync(ns->js, m, &po);
	if (st == NATS_OK)
		return 0;
	atomic_fetch_sub(&ns->inflight, 1);
	if (transient(st))
		return -EAGAIN;
	if (st == NATS_MAX_PAYLOAD)
		return -EMSGSIZE;
	return -EIO;
}

/* Publishes messages from the retry list again (same ids), once its backoff
 * wait is over. 0, or -EAGAIN when some are still waiting. */
static int republish(struct nats_sink *ns, size_t batch)
{
	if (mono_ns() < atomic_load(&ns->retry_after)) {
		pthread_mutex_lock(&ns->lock);
		bool waiting = ns->retry_n != 0;
		pthread_mutex_unlock(&ns->lock);
		return waiting ? -EAGAIN : 0;
	}
	for (size_t i = 0; i < batch; i++) {
		natsMsg *m;
		char n[16];
		int rc;

		pthread_mutex_lock(&ns->lock);
		m = retry_pop_locked(ns);
		pthread_mutex_unlock(&ns->lock);
		if (!m)
			return 0;
		unsigned attempts = msg_attempts(m);
		snprintf(n, sizeof(n), "%u", attempts + 1);
		natsMsgHeader_Set(m, ATTEMPT_HDR, n);
		rc = publish(ns, &m);
		if (rc == 0) {
			atomic_fetch_add(&ns->republished, 1);
			continue;
		}
		if (rc == -EAGAIN) {
			bool kept;

			/* Not sent (a full window, a disconnect): no attempt used. */
			snprintf(n, sizeof(n), "%u", attempts);
			natsMsgHeader_Set(m, ATTEMPT_HDR, n);

			pthread_mutex_lock(&ns->lock);
			kept = retry_unpop_locked(ns, m);
			pthread_mutex_unlock(&ns->lock);
			if (!kept)
				count_lost(ns, m, "retry list full");
			return -EAGAIN;
		}
		count_lost(ns, m, "republish failed");
	}
	pthread_mutex_lock(&ns->lock);
	bool more = ns->retry_n != 0;
	pthread_mutex_unlock(&ns->lock);
	return more ? -EAGAIN : 0;
}

/* write() failed at once: counts it for its source (the sink counts itself);
 * an event that can never be sent is settled (see sink.h). */
static int write_failed(struct nats_sink *ns, const struct tapio_event *ev, int rc)
{
	unsigned src = ev->source < SINK_SOURCES ? ev->source : SINK_SOURCES - 1;

	atomic_fetch_add(&ns->base.src_failed[src], 1);
	atomic_fetch_add(&ns->base.failed, 1);
	if (sink_failed_for_good(rc))
		ack_settle_src(ev->source, ev->ack);
	return rc;
}

/* The subject of an event's (source, type): PREFIX.SOURCE.TYPE, from the
 * cache or built once. NULL when longer than the subject buffer. */
static const char *subject_of(struct nats_sink *ns, const struct tapio_event *ev)
{
	uint32_t key = ((uint32_t)ev->source << 16 | (ev->type & 0xffffu)) + 1;
	size_t slot = (key * 2654435761u) % SUBJECT_CACHE;
	if (ns->subj_cache[slot].key == key)
		return ns->subj_cache[slot].s;
	int n = snprintf(ns->subject, sizeof(ns->subject), "%s.%s.%s", ns->prefix,
			 source_name(ev->source), type_name(ev->source, ev->type));
	if (n < 0 || (size_t)n >= sizeof(ns->subject))
		return NULL;
	memcpy(ns->subj_cache[slot].s, ns->subject, (size_t)n + 1);
	ns->subj_cache[slot].key = key;
	return ns->subj_cache[slot].s;
}

static int nats_write(struct sink *s, const struct tapio_event *ev)
{
	struct nats_sink *ns = to_nats(s);
	natsMsg *m = NULL;
	char id[200], ackv[32];
	unsigned src = ev->source < SINK_SOURCES ? ev->source : SINK_SOURCES - 1;
	int rc, n;

	if (!atomic_load(&ns->connected))
		return -EAGAIN;
	if (nats_ensure_stream(ns))
		return -EAGAIN;
	/* Older messages first: the retry list is bounded by the in-flight
	 * window, so it drains before new events take the window. */
	if (republish(ns, REPUBLISH_BATCH))
		return -EAGAIN;

	sb_reset(&ns->line);
	rc = format_json(ev, &ns->line);
	if (!rc && ns->line.err)
		rc = ns->line.err;
	if (rc)
		return write_failed(ns, ev, rc);
	if (ns->line.len && ns->line.buf[ns->line.len - 1] == '\n')
		ns->line.len--;
	const char *subject = subject_of(ns, ev);
	if (!subject)
		return write_failed(ns, ev, -ENAMETOOLONG);
	/* The source's own id when it has one (stable across re-reads, so
	 * JetStream stores a re-read event once); else one unique to this run. */
	const char *sid = event_meta_get(ev, "id");
	size_t sl = sid ? strlen(sid) : 0;
	if (sl && sl < sizeof(id)) {
		memcpy(id, sid, sl + 1);
	} else {
		memcpy(id, ns->id_prefix, ns->id_prefix_len);
		id[ns->id_prefix_len + u64_put(id + ns->id_prefix_len, ns->seq + 1)] = 0;
	}
	n = (int)u64_put(ackv, src);
	ackv[n++] = '/';
	ackv[n + (int)u64_put(ackv + n, ev->ack)] = 0;
	if (natsMsg_Create(&m, subject, NULL, ns->line.buf, (int)ns->line.len) != NATS_OK)
		return -EAGAIN;
	if (natsMsgHeader_Set(m, "Nats-Msg-Id", id) != NATS_OK ||
	    natsMsgHeader_Set(m, ACK_HDR, ackv) != NATS_OK) {
		natsMsg_Destroy(m);
		return -EAGAIN;
	}
	atomic_fetch_add(&ns->outstanding[src], 1);
	rc = publish(ns, &m);
	natsMsg_Destroy(m); /* no-op when libnats took it */
	if (rc == 0) {
		ns->seq++;
		atomic_fetch_add(&ns->published, 1);
		atomic_fetch_add(&ns->base.written, 1);
		if (sid && *sid)
			atomic_fetch_add(&ns->stable_ids, 1);
		return 0;
	}
	atomic_fetch_sub(&ns->outstanding[src], 1);
	if (rc == -EMSGSIZE) {
		/* Failed for good: the pipeline counts it; say why. */
		atomic_fetch_add(&ns->too_big, 1);
		tlog(TLOG_WARN, "nats",
		     "%s event of %zu bytes is larger than the server's max_payload; not sent",
		     subject, ns->line.len);
	}
	return rc == -EAGAIN ? rc : write_failed(ns, ev, rc);
}

/* Waits up to ack_wait_ms for every outstanding ack, republishing what
 * failed while connected. The agent calls this whenever its queue runs
 * empty and once more at shutdown, so it does not give anything up: what is
 * still unacked stays in flight (and is republished on its ack timeout). It
 * is reported in `unacked` and by -ETIMEDOUT; destroy() counts it as lost. */
static int nats_flush(struct sink *s)
{
	struct nats_sink *ns = to_nats(s);
	uint64_t deadline = mono_ns() + (uint64_t)ns->ack_wait_ms * 1000000ull;
	size_t left_retry;
	uint64_t left;

	for (;;) {
		if (atomic_load(&ns->connected) && nats_ensure_stream(ns) == 0)
			republish(ns, REPUBLISH_BATCH);
		pthread_mutex_lock(&ns->lock);
		left_retry = ns->retry_n;
		pthread_mutex_unlock(&ns->lock);
		left = left_retry + atomic_load(&ns->inflight);
		if (!left || mono_ns() >= deadline)
			break;
		if (!left_retry && atomic_load(&ns->connected)) {
			jsPubOptions po;
			uint64_t ms = (deadline - mono_ns()) / 1000000ull;

			/* Only with publishes outstanding: libnats 3.4 crashes in
			 * these calls before the first async publish. */
			jsPubOptions_Init(&po);
			po.MaxWait = ms > 100 ? 100 : (ms ? (int64_t)ms : 1);
			js_PublishAsyncComplete(ns->js, &po);
		} else {
			usleep(20000);
		}
	}
	atomic_store(&ns->unacked, left);
	if (!left)
		return 0;
	tlog(TLOG_WARN, "nats",
	     "%" PRIu64 " events still without an ack after %u ms (they are sent again when NATS "
	     "answers; lost if tapio stops first)",
	     left, ns->ack_wait_ms);
	return -ETIMEDOUT;
}

static bool nats_connected(struct sink *s)
{
	return atomic_load(&to_nats(s)->connected);
}

static void nats_counters(struct sink *s, counter_fn fn, void *ctx)
{
	struct nats_sink *ns = to_nats(s);

	fn(ctx, "published", "", atomic_load(&ns->published));
	fn(ctx, "republished", "", atomic_load(&ns->republished));
	fn(ctx, "acked", "", atomic_load(&ns->acked));
	fn(ctx, "duplicates", "", atomic_load(&ns->duplicates));
	fn(ctx, "failed", "", atomic_load(&ns->failed));
	fn(ctx, "lost", "", atomic_load(&ns->lost));
	fn(ctx, "unacked_pending", "", atomic_load(&ns->unacked));
	fn(ctx, "inflight", "", atomic_load(&ns->inflight));
	fn(ctx, "reconnects", "", atomic_load(&ns->reconnects));
	fn(ctx, "too_big", "", atomic_load(&ns->too_big));
	fn(ctx, "stable_ids", "", atomic_load(&ns->stable_ids));
}

/* Ends delivery: closes the connection (waiting for libnats' last callback),
 * then counts what never got its ack as lost. The counters are final after it.
 * Returns 0, or -ETIMEDOUT when the connection did not close in 5 s (the sink
 * must then be leaked: a late callback may still use it). Idempotent. */
static int nats_close(struct sink *s)
{
	struct nats_sink *ns = to_nats(s);

	if (ns->settled)
		return ns->leak ? -ETIMEDOUT : 0;
	ns->settled = true;
	/* Close first and wait for the closed callback, the last one libnats
	 * delivers: no callback may run once the sink is freed. */
	if (ns->nc) {
		struct timespec until;
		bool closed;

		atomic_store(&ns->closing, true);
		natsConnection_Close(ns->nc);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		pthread_mutex_lock(&ns->lock);
		while (!ns->closed &&
		       pthread_cond_timedwait(&ns->closed_cv, &ns->lock, &until) == 0)
			;
		closed = ns->closed;
		pthread_mutex_unlock(&ns->lock);
		if (!closed) {
			tlog(TLOG_ERR, "nats",
			     "connection did not close within 5 s; leaking the sink");
			ns->leak = true;
			return -ETIMEDOUT;
		}
	}
	/* What never got its ack is lost now: count it, say it once. */
	uint64_t left = atomic_load(&ns->inflight) + ns->retry_n;

	for (unsigned i = 0; i < SINK_SOURCES; i++)
		atomic_fetch_add(&ns->base.src_failed[i], atomic_exchange(&ns->outstanding[i], 0));
	if (ns->nc && left) {
		atomic_fetch_add(&ns->lost, left);
		atomic_fetch_add(&ns->failed, left);
		atomic_fetch_add(&ns->base.failed, left);
		atomic_store(&ns->inflight, 0);
		tlog(TLOG_ERR, "nats", "%" PRIu64 " events had no ack when the sink closed: lost",
		     left);
	}
	return 0;
}

/* The pipeline ran out of events: send what waits for a retry, if it can,
 * without waiting for acks (flush() waits; this must not stall the queue). */
static int nats_poll(struct sink *s)
{
	struct nats_sink *ns = to_nats(s);

	if (atomic_load(&ns->connected) && nats_ensure_stream(ns) == 0)
		republish(ns, REPUBLISH_BATCH);
	return 0;
}

static void nats_destroy(struct sink *s)
{
	struct nats_sink *ns = to_nats(s);

	if (!ns)
		return;
	if (nats_close(s))
		return; /* leaked on purpose: see nats_close */
	jsCtx_Destroy(ns->js);
	natsConnection_Destroy(ns->nc);
	natsOptions_Destroy(ns->opts);
	if (ns->retry) {
		for (natsMsg *m; (m = retry_pop_locked(ns));)
			natsMsg_Destroy(m);
		free(ns->retry);
	}
	for (size_t i = 0; i < ns->nservers; i++)
		free(ns->servers[i]);
	free(ns->prefix);
	free(ns->stream);
	sb_free(&ns->line);
	pthread_cond_destroy(&ns->closed_cv);
	pthread_mutex_destroy(&ns->lock);
	free(ns);
}

static const struct sink_ops nats_ops = {
    .name = "nats",
    .write = nats_write,
    .flush = nats_flush,
    .poll = nats_poll,
    .close = nats_close,
    .connected = nats_connected,
    .counters = nats_counters,
    .destroy = nats_destroy,
};

uint64_t sink_nats_unacked(struct sink *s)
{
	return s && s->ops == &nats_ops ? atomic_load(&to_nats(s)->unacked) : 0;
}

/* Options -> the sink's fields, the server list and the id prefix. 0, -EINVAL
 * (err set) or -ENOMEM. */
static int nats_init_fields(struct nats_sink *ns, const char *url, const struct nats_options *o,
			    const char *node, char *err, size_t errlen)
{
	char host[128];
	int rc;

	nats_parse_retention(o->retention, &ns->retention);
	rc = sink_nats_parse_url(url, ns->servers, MAX_SERVERS, &ns->nservers, err, errlen);
	if (rc)
		return rc;
	ns->prefix = strdup(o->subject_prefix);
	ns->stream = strdup(o->stream);
	ns->max_inflight = o->max_inflight;
	ns->ack_wait_ms = o->ack_wait_ms;
	ns->max_attempts = o->max_attempts ? o->max_attempts : SINK_NATS_MAX_ATTEMPTS;
	ns->max_age_ns = (int64_t)(o->max_age_s * 1000000000ull);
	ns->dup_window_ns = (int64_t)((o->dup_window_s ? o->dup_window_s : 120) * 1000000000ull);
	ns->replicas = o->replicas ? (int)o->replicas : 1;
	ns->retry_cap = (size_t)o->max_inflight * 2;
	ns->retry = calloc(ns->retry_cap, sizeof(*ns->retry));
	if (!ns->prefix || !ns->stream || !ns->retry)
		return -ENOMEM;
	if (!node || !*node) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "unknown");
		host[sizeof(host) - 1] = '\0';
		node = host;
	}
	snprintf(ns->id_prefix, sizeof(ns->id_prefix), "%.120s-%" PRIu64 "-", node, now_ns());
	ns->id_prefix_len = strlen(ns->id_prefix);
	return 0;
}

/* The connection options: servers, reconnects, pings and the callbacks. */
static natsStatus nats_set_options(struct nats_sink *ns)
{
	natsStatus st = natsOptions_Create(&ns->opts);

	if (st == NATS_OK)
		st =
		    natsOptions_SetServers(ns->opts, (const char **)ns->servers, (int)ns->nservers);
	if (st == NATS_OK)
		st = natsOptions_SetName(ns->opts, "tapio");
	if (st == NATS_OK)
		st = natsOptions_SetMaxReconnect(ns->opts, -1);
	if (st == NATS_OK)
		st = natsOptions_SetReconnectWait(ns->opts, 500);
	if (st == NATS_OK)
		st = natsOptions_SetReconnectJitter(ns->opts, 250, 1000);
	if (st == NATS_OK)
		st = natsOptions_SetTimeout(ns->opts, 2000);
	/* A server that hangs without closing the socket is noticed within
	 * about 30 s (the default is minutes), so /readyz tells the truth. */
	if (st == NATS_OK)
		st = natsOptions_SetPingInterval(ns->opts, 10000);
	if (st == NATS_OK)
		st = natsOptions_SetMaxPingsOut(ns->opts, 3);
	if (st == NATS_OK)
		st = natsOptions_SetRetryOnFailedConnect(ns->opts, true, on_connected, ns);
	if (st == NATS_OK)
		st = natsOptions_SetDisconnectedCB(ns->opts, on_disconnected, ns);
	if (st == NATS_OK)
		st = natsOptions_SetReconnectedCB(ns->opts, on_reconnected, ns);
	if (st == NATS_OK)
		st = natsOptions_SetClosedCB(ns->opts, on_closed, ns);
	return st;
}

/* Connects (or leaves libnats retrying in the background) and makes the
 * JetStream context with the async-publish window. 0 or -EIO (err set). */
static int nats_connect_js(struct nats_sink *ns, const char *url, const struct nats_options *o,
			   char *err, size_t errlen)
{
	jsOptions jo;
	natsStatus st = natsConnection_Connect(&ns->nc, ns->opts);

	if (st == NATS_OK) {
		atomic_store(&ns->connected, true);
	} else if (st == NATS_NOT_YET_CONNECTED) {
		tlog(TLOG_WARN, "nats", "%s is not reachable yet; retrying in the background", url);
	} else {
		nats_errf(err, errlen, "nats: connect %s: %s", url, natsStatus_GetText(st));
		return -EIO;
	}
	jsOptions_Init(&jo);
	jo.Wait = API_WAIT_MS;
	jo.PublishAsync.MaxPending = o->max_inflight;
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.AckHandlerClosure = ns;
	jo.PublishAsync.StallWait = STALL_WAIT_MS;
	st = natsConnection_JetStream(&ns->js, ns->nc, &jo);
	if (st != NATS_OK) {
		nats_errf(err, errlen, "nats: JetStream context: %s", natsStatus_GetText(st));
		return -EIO;
	}
	return 0;
}

struct sink *sink_nats_new(const char *url, const struct nats_options *o, const char *node,
			   char *err, size_t errlen)
{
	struct nats_sink *ns;
	natsStatus st;
	int rc;

	if (nats_options_check(o, err, errlen)) {
		errno = EINVAL;
		return NULL;
	}

	ns = calloc(1, sizeof(*ns));
	if (!ns) {
		nats_errf(err, errlen, "nats: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	ns->base.ops = &nats_ops;
	ns->base.self_counted = true;
	pthread_mutex_init(&ns->lock, NULL);
	pthread_cond_init(&ns->closed_cv, NULL);
	rc = nats_init_fields(ns, url, o, node, err, errlen);
	if (rc)
		goto fail;
	st = nats_set_options(ns);
	if (st != NATS_OK) {
		nats_errf(err, errlen, "nats: options: %s", natsStatus_GetText(st));
		rc = -EIO;
		goto fail;
	}
	rc = nats_connect_js(ns, url, o, err, errlen);
	if (rc)
		goto fail;
	if (atomic_load(&ns->connected))
		nats_ensure_stream(ns); /* best effort now; write() retries */
	return &ns->base;
fail:
	if (rc == -ENOMEM)
		nats_errf(err, errlen, "nats: out of memory");
	nats_destroy(&ns->base);
	errno = -rc;
	return NULL;
}
