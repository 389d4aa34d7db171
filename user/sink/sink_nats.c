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

#include "core/event.h"
#include "sink/format.h"
#include "util/clock.h"
#include "core/options.h"
#include "util/log.h"
#include "sink/sink_nats.h"
#include "util/strbuf.h"

#define MAX_SERVERS 16
#define ATTEMPT_HDR "Tapio-Attempt"
/* How long an async publish waits for its ack before it is taken back for a
 * republish, and how long JetStream API calls (stream lookup/creation) wait. */
#define ACK_TIMEOUT_MS 5000
#define API_WAIT_MS 2000
/* A full in-flight window waits this long in js_PublishMsgAsync, then write()
 * answers -EAGAIN. */
#define STALL_WAIT_MS 100
/* Republishes per write() call, so the pipeline keeps moving. */
#define REPUBLISH_BATCH 256

struct nats_sink {
	struct sink base; /* first */
	natsOptions *opts;
	natsConnection *nc;
	jsCtx *js;
	char *servers[MAX_SERVERS];
	size_t nservers;
	char *prefix;
	char *stream;
	jsRetentionPolicy retention;
	int64_t max_age_ns;
	unsigned max_inflight;
	unsigned ack_wait_ms;
	char id_prefix[160]; /* "<node>-<start ns>-" */
	uint64_t seq;	     /* ids handed out (pipeline thread only) */

	atomic_bool connected;
	atomic_bool closing; /* destroy() has begun: no more warnings */
	atomic_bool stream_ready;
	uint64_t next_stream_try; /* mono ns; pipeline thread only */
	uint64_t next_stream_log; /* mono ns; stream errors are logged every 10 s */

	pthread_mutex_t lock;
	pthread_cond_t closed_cv; /* signalled by on_closed */
	bool closed;		  /* under lock */
	bool settled;		  /* nats_close() ran (pipeline thread only) */
	bool leak;		  /* the connection never closed: never free */
	natsMsg **retry;	  /* messages waiting for a republish, FIFO */
	size_t retry_cap, retry_head, retry_n;

	struct strbuf line;
	char subject[256];

	_Atomic uint64_t inflight;
	_Atomic uint64_t published, republished, acked, duplicates, failed, lost, unacked,
	    reconnects;
	_Atomic uint64_t too_big;	/* larger than the server's max_payload */
	_Atomic uint64_t last_loss_log; /* mono ns, rate limit for loss messages */
};

static struct nats_sink *to_nats(struct sink *s)
{
	return (struct nats_sink *)s;
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- configuration checks ---- */

static int parse_one_server(const char *item, size_t len, char **out, char *err, size_t errlen)
{
	const char *p = item, *end = item + len, *host, *hend, *port;
	char *url;
	long pv = 0;

	if (len >= 7 && !strncmp(p, "nats://", 7))
		p += 7;
	else if (memchr(p, ':', len) && strstr(p, "://") && strstr(p, "://") < end) {
		errf(err, errlen, "nats: server '%.*s': only the nats:// scheme is supported",
		     (int)len, item);
		return -EINVAL;
	}
	if (p == end) {
		errf(err, errlen, "nats: server '%.*s': empty host", (int)len, item);
		return -EINVAL;
	}
	if (*p == '[') {
		host = p;
		hend = memchr(p, ']', (size_t)(end - p));
		if (!hend || hend == p + 1) {
			errf(err, errlen, "nats: server '%.*s': bad IPv6 address", (int)len, item);
			return -EINVAL;
		}
		hend++;
		if (hend == end || *hend != ':') {
			errf(err, errlen, "nats: server '%.*s': missing :PORT", (int)len, item);
			return -EINVAL;
		}
	} else {
		host = p;
		hend = memchr(p, ':', (size_t)(end - p));
		if (!hend) {
			errf(err, errlen, "nats: server '%.*s': missing :PORT", (int)len, item);
			return -EINVAL;
		}
		if (hend == host) {
			errf(err, errlen, "nats: server '%.*s': empty host", (int)len, item);
			return -EINVAL;
		}
		for (const char *c = host; c < hend; c++) {
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_')) {
				errf(err, errlen, "nats: server '%.*s': bad character in host",
				     (int)len, item);
				return -EINVAL;
			}
		}
	}
	port = hend + 1;
	if (port == end) {
		errf(err, errlen, "nats: server '%.*s': empty port", (int)len, item);
		return -EINVAL;
	}
	for (const char *c = port; c < end; c++) {
		if (*c < '0' || *c > '9' || pv > 65535) {
			errf(err, errlen, "nats: server '%.*s': bad port", (int)len, item);
			return -EINVAL;
		}
		pv = pv * 10 + (*c - '0');
	}
	if (pv < 1 || pv > 65535) {
		errf(err, errlen, "nats: server '%.*s': port out of range", (int)len, item);
		return -EINVAL;
	}
	if (asprintf(&url, "nats://%.*s:%ld", (int)(hend - host), host, pv) < 0)
		return -ENOMEM;
	*out = url;
	return 0;
}

int sink_nats_parse_url(const char *url, char **out, size_t max, size_t *n, char *err,
			size_t errlen)
{
	const char *p = url;
	int rc;

	*n = 0;
	if (!url || !*url) {
		errf(err, errlen, "nats: empty server list");
		return -EINVAL;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (!len) {
			errf(err, errlen, "nats: empty item in server list '%s'", url);
			rc = -EINVAL;
			goto fail;
		}
		if (*n == max) {
			errf(err, errlen, "nats: more than %zu servers in '%s'", max, url);
			rc = -EINVAL;
			goto fail;
		}
		rc = parse_one_server(p, len, &out[*n], err, errlen);
		if (rc)
			goto fail;
		(*n)++;
		if (!comma)
			return 0;
		p = comma + 1;
	}
fail:
	while (*n)
		free(out[--(*n)]);
	return rc;
}

/* A subject prefix: dot-separated non-empty tokens of printable characters
 * without wildcards. */
static bool subject_prefix_ok(const char *s)
{
	bool tok = false;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (!tok)
				return false;
			tok = false;
		} else if (*s <= ' ' || *s == '*' || *s == '>' || (unsigned char)*s >= 0x7f) {
			return false;
		} else {
			tok = true;
		}
	}
	return tok;
}

static bool stream_name_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == '.' || *s == '*' || *s == '>' || *s == '/' || *s == '\\' ||
		    (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

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

/* Counts a message as lost for good and frees it. */
static void count_lost(struct nats_sink *ns, natsMsg *m, const char *why)
{
	const char *id = NULL;
	uint64_t now = mono_ns(), last = atomic_load(&ns->last_loss_log);

	atomic_fetch_add(&ns->lost, 1);
	atomic_fetch_add(&ns->failed, 1);
	atomic_fetch_add(&ns->base.failed, 1);
	if (m)
		natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
	if (now - last > 1000000000ull &&
	    atomic_compare_exchange_strong(&ns->last_loss_log, &last, now))
		tlog(TLOG_ERR, "nats", "event %s lost: %s (lost so far: %" PRIu64 ")", id ? id : "?",
		     why, atomic_load(&ns->lost));
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
		count_lost(ns, msg, why);
		return;
	}
	if (pae->Err == NATS_NO_RESPONDERS || pae->ErrCode == JSStreamNotFoundErr)
		atomic_store(&ns->stream_ready, false); /* the stream may be gone */
	attempts = msg_attempts(msg);
	if (attempts < SINK_NATS_MAX_ATTEMPTS) {
		pthread_mutex_lock(&ns->lock);
		kept = retry_push_locked(ns, msg);
		pthread_mutex_unlock(&ns->lock);
	}
	if (!kept)
		count_lost(ns, msg,
			   attempts >= SINK_NATS_MAX_ATTEMPTS ? "no ack after the last attempt"
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

/* Reports a failed stream lookup or creation, at most every 10 s: the
 * server's own text ("subjects overlap with an existing stream") and the
 * JetStream error code. Events wait in the queue meanwhile. */
static void stream_error(struct nats_sink *ns, const char *what, natsStatus st, jsErrCode jerr)
{
	const char *text = nats_GetLastError(NULL);
	uint64_t now = mono_ns();

	if (now < ns->next_stream_log)
		return;
	ns->next_stream_log = now + 10000000000ull;
	tlog(TLOG_ERR, "nats",
	     "stream %s: %s failed: %s (%s, JetStream error %d); events wait in the queue",
	     ns->stream, what, text && *text ? text : natsStatus_GetText(st),
	     natsStatus_GetText(st), (int)jerr);
}

/* Creates the stream or checks the existing one. Pipeline thread. 0 or -EAGAIN. */
static int ensure_stream(struct nats_sink *ns)
{
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsOptions o;
	jsErrCode jerr = 0;
	natsStatus st;
	char subj[300];
	const char *subjects[1] = {subj};
	uint64_t now = mono_ns();

	if (atomic_load(&ns->stream_ready))
		return 0;
	if (now < ns->next_stream_try)
		return -EAGAIN;
	ns->next_stream_try = now + 500000000ull;
	snprintf(subj, sizeof(subj), "%s.>", ns->prefix);
	jsOptions_Init(&o);
	o.Wait = API_WAIT_MS;
	st = js_GetStreamInfo(&si, ns->js, ns->stream, &o, &jerr);
	if (st == NATS_OK) {
		bool covered = false;

		for (int i = 0; si->Config && i < si->Config->SubjectsLen; i++)
			if (!strcmp(si->Config->Subjects[i], subj))
				covered = true;
		if (!covered)
			tlog(TLOG_WARN, "nats",
			     "stream %s exists without subject %s; publishing anyway", ns->stream,
			     subj);
		jsStreamInfo_Destroy(si);
		atomic_store(&ns->stream_ready, true);
		return 0;
	}
	if (jerr != JSStreamNotFoundErr && st != NATS_NOT_FOUND) {
		stream_error(ns, "lookup", st, jerr);
		return -EAGAIN;
	}
	jsStreamConfig_Init(&sc);
	sc.Name = ns->stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Retention = ns->retention;
	sc.MaxAge = ns->max_age_ns;
	sc.Storage = js_FileStorage;
	sc.Duplicates = 120LL * 1000000000LL; /* dedup window for republished ids */
	jerr = 0;
	st = js_AddStream(&si, ns->js, &sc, &o, &jerr);
	if (st != NATS_OK) {
		stream_error(ns, "create", st, jerr);
		return -EAGAIN;
	}
	jsStreamInfo_Destroy(si);
	tlog(TLOG_INFO, "nats", "created stream %s for %s", ns->stream, subj);
	atomic_store(&ns->stream_ready, true);
	return 0;
}

/* ---- publishing ---- */

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

/* Publishes messages from the retry list again (same ids). 0, or -EAGAIN
 * when some are still waiting. */
static int republish(struct nats_sink *ns, size_t batch)
{
	for (size_t i = 0; i < batch; i++) {
		natsMsg *m;
		char n[16];
		int rc;

		pthread_mutex_lock(&ns->lock);
		m = retry_pop_locked(ns);
		pthread_mutex_unlock(&ns->lock);
		if (!m)
			return 0;
		snprintf(n, sizeof(n), "%u", msg_attempts(m) + 1);
		natsMsgHeader_Set(m, ATTEMPT_HDR, n);
		rc = publish(ns, &m);
		if (rc == 0) {
			atomic_fetch_add(&ns->republished, 1);
			continue;
		}
		if (rc == -EAGAIN) {
			bool kept;

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

static int nats_write(struct sink *s, const struct tapio_event *ev)
{
	struct nats_sink *ns = to_nats(s);
	natsMsg *m = NULL;
	char id[200];
	int rc, n;

	if (!atomic_load(&ns->connected))
		return -EAGAIN;
	if (ensure_stream(ns))
		return -EAGAIN;
	/* Older messages first: the retry list is bounded by the in-flight
	 * window, so it drains before new events take the window. */
	if (republish(ns, REPUBLISH_BATCH))
		return -EAGAIN;

	sb_reset(&ns->line);
	rc = format_json(ev, &ns->line);
	if (rc)
		return rc;
	if (ns->line.err)
		return ns->line.err;
	if (ns->line.len && ns->line.buf[ns->line.len - 1] == '\n')
		ns->line.len--;
	n = snprintf(ns->subject, sizeof(ns->subject), "%s.%s.%s", ns->prefix,
		     source_name(ev->source), type_name(ev->source, ev->type));
	if (n < 0 || (size_t)n >= sizeof(ns->subject))
		return -ENAMETOOLONG;
	snprintf(id, sizeof(id), "%s%" PRIu64, ns->id_prefix, ns->seq + 1);
	if (natsMsg_Create(&m, ns->subject, NULL, ns->line.buf, (int)ns->line.len) != NATS_OK)
		return -ENOMEM;
	if (natsMsgHeader_Set(m, "Nats-Msg-Id", id) != NATS_OK) {
		natsMsg_Destroy(m);
		return -ENOMEM;
	}
	rc = publish(ns, &m);
	natsMsg_Destroy(m); /* no-op when libnats took it */
	if (rc == 0) {
		ns->seq++;
		atomic_fetch_add(&ns->published, 1);
	} else if (rc == -EMSGSIZE) {
		/* Failed for good: the pipeline counts it; say why. */
		atomic_fetch_add(&ns->too_big, 1);
		tlog(TLOG_WARN, "nats",
		     "%s event of %zu bytes is larger than the server's max_payload; not sent",
		     ns->subject, ns->line.len);
	}
	return rc;
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
		if (atomic_load(&ns->connected) && ensure_stream(ns) == 0)
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

	if (atomic_load(&ns->connected) && ensure_stream(ns) == 0)
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

static int parse_retention(const char *r, jsRetentionPolicy *out)
{
	if (!r || !*r || !strcmp(r, "limits"))
		*out = js_LimitsPolicy;
	else if (!strcmp(r, "interest"))
		*out = js_InterestPolicy;
	else if (!strcmp(r, "workqueue"))
		*out = js_WorkQueuePolicy;
	else
		return -EINVAL;
	return 0;
}

#define NO(n, t, f, d, h) OPT_ENTRY(struct nats_options, n, t, f, d, h)

static const struct opt nats_opt_table[] = {
	NO("nats-subject-prefix", OPT_STR, subject_prefix, "tapio.events",
	   "subject prefix: <prefix>.<source>.<type>"),
	NO("nats-stream", OPT_STR, stream, "TAPIO_EVENTS", "JetStream stream name"),
	NO("nats-retention", OPT_STR, retention, "limits", "limits | interest | workqueue"),
	NO("nats-max-age", OPT_U64, max_age_s, "0", "stream max age in seconds, 0 = unlimited"),
	NO("nats-max-inflight", OPT_UINT, max_inflight, "4096", "unacked publishes at most"),
	NO("nats-ack-wait-ms", OPT_UINT, ack_wait_ms, "5000", "on shutdown, how long to wait for acks"),
};

static int nats_options_check(const void *p, char *err, size_t errlen)
{
	const struct nats_options *o = p;
	jsRetentionPolicy rp;
	if (!subject_prefix_ok(o->subject_prefix)) {
		errf(err, errlen,
		     "nats-subject-prefix: '%s' is not a subject (dot-separated tokens, no spaces or "
		     "wildcards)",
		     o->subject_prefix);
		return -EINVAL;
	}
	if (!stream_name_ok(o->stream)) {
		errf(err, errlen,
		     "nats-stream: '%s' is not a stream name (no spaces, '.', '*', '>', '/')",
		     o->stream);
		return -EINVAL;
	}
	if (parse_retention(o->retention, &rp)) {
		errf(err, errlen, "nats-retention: '%s' is not limits, interest or workqueue",
		     o->retention);
		return -EINVAL;
	}
	if (o->max_inflight == 0) {
		errf(err, errlen, "nats-max-inflight: must be at least 1");
		return -EINVAL;
	}
	if (o->max_age_s > (uint64_t)INT64_MAX / 1000000000ull) {
		errf(err, errlen, "nats-max-age: %" PRIu64 " is too large", o->max_age_s);
		return -EINVAL;
	}
	return 0;
}

const struct opt_group nats_options_group =
	OPT_GROUP("nats", struct nats_options, nats_opt_table, nats_options_check);

struct sink *sink_nats_new(const char *url, const struct nats_options *o, const char *node,
			   char *err, size_t errlen)
{
	struct nats_sink *ns;
	char host[128];
	jsOptions jo;
	natsStatus st;
	int rc;

	if (nats_options_check(o, err, errlen)) {
		errno = EINVAL;
		return NULL;
	}

	ns = calloc(1, sizeof(*ns));
	if (!ns) {
		errf(err, errlen, "nats: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	ns->base.ops = &nats_ops;
	pthread_mutex_init(&ns->lock, NULL);
	pthread_cond_init(&ns->closed_cv, NULL);
	parse_retention(o->retention, &ns->retention);
	rc = sink_nats_parse_url(url, ns->servers, MAX_SERVERS, &ns->nservers, err, errlen);
	if (rc)
		goto fail;
	ns->prefix = strdup(o->subject_prefix);
	ns->stream = strdup(o->stream);
	ns->max_inflight = o->max_inflight;
	ns->ack_wait_ms = o->ack_wait_ms;
	ns->max_age_ns = (int64_t)(o->max_age_s * 1000000000ull);
	ns->retry_cap = (size_t)o->max_inflight * 2;
	ns->retry = calloc(ns->retry_cap, sizeof(*ns->retry));
	if (!ns->prefix || !ns->stream || !ns->retry) {
		rc = -ENOMEM;
		goto fail;
	}
	if (!node || !*node) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "unknown");
		host[sizeof(host) - 1] = '\0';
		node = host;
	}
	snprintf(ns->id_prefix, sizeof(ns->id_prefix), "%.120s-%" PRIu64 "-", node, now_ns());

	st = natsOptions_Create(&ns->opts);
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
	if (st != NATS_OK) {
		errf(err, errlen, "nats: options: %s", natsStatus_GetText(st));
		rc = -EIO;
		goto fail;
	}
	st = natsConnection_Connect(&ns->nc, ns->opts);
	if (st == NATS_OK) {
		atomic_store(&ns->connected, true);
	} else if (st == NATS_NOT_YET_CONNECTED) {
		tlog(TLOG_WARN, "nats", "%s is not reachable yet; retrying in the background", url);
	} else {
		errf(err, errlen, "nats: connect %s: %s", url, natsStatus_GetText(st));
		rc = -EIO;
		goto fail;
	}
	jsOptions_Init(&jo);
	jo.Wait = API_WAIT_MS;
	jo.PublishAsync.MaxPending = o->max_inflight;
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.AckHandlerClosure = ns;
	jo.PublishAsync.StallWait = STALL_WAIT_MS;
	st = natsConnection_JetStream(&ns->js, ns->nc, &jo);
	if (st != NATS_OK) {
		errf(err, errlen, "nats: JetStream context: %s", natsStatus_GetText(st));
		rc = -EIO;
		goto fail;
	}
	if (atomic_load(&ns->connected))
		ensure_stream(ns); /* best effort now; write() retries */
	return &ns->base;
fail:
	if (rc == -ENOMEM)
		errf(err, errlen, "nats: out of memory");
	nats_destroy(&ns->base);
	errno = -rc;
	return NULL;
}
