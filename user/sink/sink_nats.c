// SPDX-License-Identifier: Apache-2.0
/* The NATS JetStream sink: see sink_nats.h for the contract.
 *
 * Events go out on a connection of the sink's own (nats_conn.c: the NATS
 * client protocol on a TCP socket, frames batched into few writes, PubAcks
 * read in batches by one reader thread); libnats keeps a second connection
 * for the stream lookup and creation only (nats_stream.c).
 *
 * Threads: write(), poll() and flush() run on the pipeline thread, which
 * buffers frames and writes them; the reader thread settles PubAcks,
 * reconnects and takes back what timed out. The in-flight window (an entry
 * per reply number, slot = number % max_inflight) and the retry list are
 * shared under `lock`; the counters are atomics.
 */
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
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

/* ---- entries (under lock) ---- */

/* Adds to a counter that has one writer at a time (the pipeline thread's
 * own counters; inflight and outstanding, written under lock only): no
 * locked instruction, which costs a cache line round trip per event when the
 * reader thread touches the line too. Readers load it lock-free. */
static inline void add_one_writer(_Atomic uint64_t *p, uint64_t d)
{
	atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + d,
			      memory_order_relaxed);
}

static void msg_free(struct nats_msg *m)
{
	free(m->buf);
	m->buf = NULL;
	m->cap = 0;
}

static void msg_swap(struct nats_msg *a, struct nats_msg *b)
{
	struct nats_msg t = *a;

	*a = *b;
	*b = t;
}

static const char *msg_id(const struct nats_msg *m)
{
	return m->buf + m->payload_len + m->subj_len;
}

/* The entry's fate is known: delivered (PubAck) or lost. Counts it for
 * its source and settles its token: a loss while the sink runs is counted
 * and logged, and its source's cursor must not wait for it until a restart.
 * Once the sink closes (closing), a loss is not settled: what never got its
 * ack is read again by its source after a restart. */
static void msg_settled(struct nats_sink *ns, const struct nats_msg *m, bool delivered)
{
	unsigned src = m->src;

	add_one_writer(&ns->outstanding[src], (uint64_t)-1);
	atomic_fetch_add(delivered ? &ns->base.src_written[src] : &ns->base.src_failed[src], 1);
	if (delivered || !atomic_load(&ns->closing))
		ack_settle_src(src, m->token);
}

/* Counts an entry as lost and says why (rate-limited). */
static void count_lost(struct nats_sink *ns, const struct nats_msg *m, const char *why)
{
	uint64_t now = mono_ns(), last = atomic_load(&ns->last_loss_log);

	atomic_fetch_add(&ns->lost, 1);
	atomic_fetch_add(&ns->failed, 1);
	atomic_fetch_add(&ns->base.failed, 1);
	msg_settled(ns, m, false);
	if (now - last > 1000000000ull &&
	    atomic_compare_exchange_strong(&ns->last_loss_log, &last, now))
		tlog(TLOG_ERR, "nats", "event %.*s lost: %s (lost so far: %" PRIu64 ")",
		     (int)m->id_len, msg_id(m), why, atomic_load(&ns->lost));
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

static void slot_free(struct nats_sink *ns, struct nats_slot *s)
{
	s->reply = 0;
	add_one_writer(&ns->inflight, (uint64_t)-1);
}

void nats_slot_acked(struct nats_sink *ns, struct nats_slot *s, bool duplicate)
{
	/* Counted per batch (nats_fold_acks): a read() brings many. */
	ns->b_acked++;
	ns->b_dup += duplicate;
	ns->b_src[s->m.src]++;
	ack_settle_src(s->m.src, s->m.token);
	s->reply = 0;
}

void nats_fold_acks(struct nats_sink *ns)
{
	if (!ns->b_acked)
		return;
	atomic_fetch_add(&ns->acked, ns->b_acked);
	atomic_fetch_add(&ns->base.acked, ns->b_acked);
	if (ns->b_dup)
		atomic_fetch_add(&ns->duplicates, ns->b_dup);
	atomic_store(&ns->retry_rounds, 0);
	for (unsigned i = 0; i < SINK_SOURCES; i++) {
		if (!ns->b_src[i])
			continue;
		add_one_writer(&ns->outstanding[i], -ns->b_src[i]);
		atomic_fetch_add(&ns->base.src_written[i], ns->b_src[i]);
		ns->b_src[i] = 0;
	}
	add_one_writer(&ns->inflight, -ns->b_acked);
	ns->b_acked = ns->b_dup = 0;
}

/* The entry goes to the retry list (its buffer with it), or is lost. */
static void take_back(struct nats_sink *ns, struct nats_slot *s, const char *why)
{
	if (s->m.attempts >= ns->max_attempts) {
		count_lost(ns, &s->m, "no ack after the last attempt");
	} else if (ns->retry_n == ns->retry_cap) {
		count_lost(ns, &s->m, "retry list full");
	} else {
		(void)why;
		msg_swap(&ns->retry[(ns->retry_head + ns->retry_n) % ns->retry_cap], &s->m);
		ns->retry_n++;
	}
	slot_free(ns, s);
}

void nats_slot_failed(struct nats_sink *ns, struct nats_slot *s, bool transient, const char *why)
{
	if (!transient) {
		count_lost(ns, &s->m, why); /* it would be refused again */
		slot_free(ns, s);
		return;
	}
	retry_backoff(ns);
	take_back(ns, s, why);
}

void nats_take_back_all(struct nats_sink *ns)
{
	for (uint64_t r = ns->oldest; r < ns->next_reply; r++) {
		struct nats_slot *s = &ns->slots[r % ns->max_inflight];

		if (s->reply == r)
			take_back(ns, s, "disconnected");
	}
	ns->oldest = ns->next_reply;
}

void nats_expire(struct nats_sink *ns, uint64_t now)
{
	uint64_t limit = ACK_TIMEOUT_MS * 1000000ull;
	bool expired = false;

	for (; ns->oldest < ns->next_reply; ns->oldest++) {
		struct nats_slot *s = &ns->slots[ns->oldest % ns->max_inflight];

		if (s->reply != ns->oldest)
			continue; /* settled */
		if (now < s->sent_ns + limit)
			break;
		expired = true;
		take_back(ns, s, "ack timeout");
	}
	if (expired)
		retry_backoff(ns);
}

/* ---- publishing (pipeline thread) ---- */

/* Appends the HPUB frame of m with reply number n to the output buffer. */
static void put_frame(struct nats_sink *ns, const struct nats_msg *m, uint64_t n)
{
	struct strbuf *o = &ns->out;
	/* "NATS/1.0\r\nNats-Msg-Id: " id "\r\n\r\n" */
	size_t hl = 10 + 13 + m->id_len + 4;

	if (sb_grow(o, m->subj_len + ns->inbox_len + 96 + hl + m->payload_len))
		return;
	char *p = o->buf + o->len;
	memcpy(p, "HPUB ", 5);
	p += 5;
	memcpy(p, m->buf + m->payload_len, m->subj_len);
	p += m->subj_len;
	*p++ = ' ';
	memcpy(p, ns->inbox, ns->inbox_len);
	p += ns->inbox_len;
	*p++ = '.';
	p += u64_put(p, n);
	*p++ = ' ';
	p += u64_put(p, hl);
	*p++ = ' ';
	p += u64_put(p, hl + m->payload_len);
	memcpy(p, "\r\nNATS/1.0\r\nNats-Msg-Id: ", 25);
	p += 25;
	memcpy(p, msg_id(m), m->id_len);
	p += m->id_len;
	memcpy(p, "\r\n\r\n", 4);
	p += 4;
	memcpy(p, m->buf, m->payload_len);
	p += m->payload_len;
	memcpy(p, "\r\n", 2);
	p += 2;
	o->len = (size_t)(p - o->buf);
	o->buf[o->len] = 0;
}

/* Sends the entry in slot s (its message in place) with reply number n: the
 * frame goes to the output buffer. Lock held, the slot free, the
 * connection up. */
static void slot_commit_locked(struct nats_sink *ns, struct nats_slot *s, uint64_t n)
{
	if (ns->out_gen != ns->gen) {
		sb_reset(&ns->out); /* frames for a connection that is gone */
		ns->out_gen = ns->gen;
	}
	s->m.attempts++;
	s->reply = n;
	s->sent_ns = nats_coarse_ns();
	ns->next_reply++;
	add_one_writer(&ns->inflight, 1);
	if (ns->reader_long) {
		/* The reader sleeps until the next PING: this entry's ack
		 * timeout must be watched from now. */
		uint64_t one = 1;
		ns->reader_long = false;
		if (write(ns->wake_fd, &one, sizeof(one)) < 0) {
			/* saturated: it is awake anyway */
		}
	}
	put_frame(ns, &s->m, n);
}

/* The slot for the next publish, NULL when the window is full there or the
 * connection is down. Lock held. */
static struct nats_slot *next_slot_locked(struct nats_sink *ns)
{
	struct nats_slot *s = &ns->slots[ns->next_reply % ns->max_inflight];

	return ns->up && !s->reply ? s : NULL;
}

static void maybe_flush_out(struct nats_sink *ns)
{
	if (ns->out.len >= OUT_FLUSH_BYTES)
		nats_conn_flush_out(ns);
}

/* Publishes entries from the retry list again (same ids), once its backoff
 * wait is over. 0, or -EAGAIN when some are still waiting. A republish that
 * finds no room is not sent and uses no attempt. */
static int republish(struct nats_sink *ns, size_t batch)
{
	int rc = 0;

	if (!atomic_load_explicit(&ns->retry_n, memory_order_relaxed))
		return 0; /* the common case, without a clock read or the lock */
	if (mono_ns() < atomic_load(&ns->retry_after)) {
		pthread_mutex_lock(&ns->lock);
		bool waiting = ns->retry_n != 0;
		pthread_mutex_unlock(&ns->lock);
		return waiting ? -EAGAIN : 0;
	}
	pthread_mutex_lock(&ns->lock);
	for (size_t i = 0; i < batch && ns->retry_n; i++) {
		struct nats_slot *sl = next_slot_locked(ns);

		if (!sl)
			break;
		msg_swap(&sl->m, &ns->retry[ns->retry_head]);
		slot_commit_locked(ns, sl, ns->next_reply);
		ns->retry_head = (ns->retry_head + 1) % ns->retry_cap;
		ns->retry_n--;
		add_one_writer(&ns->republished, 1);
	}
	if (ns->retry_n)
		rc = -EAGAIN;
	pthread_mutex_unlock(&ns->lock);
	maybe_flush_out(ns);
	return rc;
}

/* The stream connection (libnats) came up late. (With no callback here,
 * natsConnection_Connect would block until it does.) */
static void on_mgmt_connected(natsConnection *nc, void *closure)
{
	(void)nc;
	(void)closure;
}

/* The stream connection (libnats) is closed: see nats_close. */
static void on_closed(natsConnection *nc, void *closure)
{
	struct nats_sink *ns = closure;

	(void)nc;
	pthread_mutex_lock(&ns->lock);
	ns->closed = true;
	pthread_cond_broadcast(&ns->closed_cv);
	pthread_mutex_unlock(&ns->lock);
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

/* Waits (bounded) for a free slot after sending what is buffered. Lock
 * not held. */
static void wait_for_room(struct nats_sink *ns)
{
	struct timespec until;

	nats_conn_flush_out(ns);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += STALL_WAIT_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ns->lock);
	while (ns->up && !next_slot_locked(ns) &&
	       pthread_cond_timedwait(&ns->acked_cv, &ns->lock, &until) == 0)
		;
	pthread_mutex_unlock(&ns->lock);
}

static int nats_write(struct sink *s, const struct tapio_event *ev)
{
	struct nats_sink *ns = to_nats(s);
	char id[200];
	unsigned src = ev->source < SINK_SOURCES ? ev->source : SINK_SOURCES - 1;
	size_t il;
	int rc;

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
		il = sl;
	} else {
		memcpy(id, ns->id_prefix, ns->id_prefix_len);
		il = ns->id_prefix_len + u64_put(id + ns->id_prefix_len, ns->seq + 1);
		id[il] = 0;
	}
	/* The server refuses a message over its max_payload (headers and
	 * payload together) and closes the connection: never send one. */
	if (ns->line.len + il + 27 > atomic_load(&ns->max_payload)) {
		atomic_fetch_add(&ns->too_big, 1);
		tlog(TLOG_WARN, "nats",
		     "%s event of %zu bytes is larger than the server's max_payload; not sent",
		     subject, ns->line.len);
		return write_failed(ns, ev, -EMSGSIZE);
	}
	/* The entry's buffer: payload, subject, id (nats_msg). */
	size_t dl = ns->line.len, subj_len = strlen(subject);
	sb_add(&ns->line, subject, subj_len);
	sb_add(&ns->line, id, il);
	if (ns->line.err) {
		sb_free(&ns->line);
		return -EAGAIN;
	}
	struct nats_slot *slot;
	for (int tries = 0;; tries++) {
		pthread_mutex_lock(&ns->lock);
		slot = next_slot_locked(ns);
		if (slot || tries == 1 || !ns->up)
			break;
		pthread_mutex_unlock(&ns->lock);
		wait_for_room(ns);
	}
	if (!slot) {
		pthread_mutex_unlock(&ns->lock);
		nats_conn_flush_out(ns);
		return -EAGAIN;
	}
	/* The formatted line becomes the entry: its buffer moves into the slot
	 * (the slot's old one is the next line's), no copy. */
	char *b = slot->m.buf;
	size_t cap = slot->m.cap;
	slot->m.buf = ns->line.buf;
	slot->m.cap = ns->line.cap;
	slot->m.payload_len = (uint32_t)dl;
	slot->m.subj_len = (uint32_t)subj_len;
	slot->m.id_len = (uint32_t)il;
	ns->line.buf = b;
	ns->line.cap = cap;
	ns->line.len = 0;
	slot->m.src = (uint8_t)src;
	slot->m.token = ev->ack;
	slot->m.attempts = 0;
	add_one_writer(&ns->outstanding[src], 1);
	slot_commit_locked(ns, slot, ns->next_reply);
	pthread_mutex_unlock(&ns->lock);
	ns->seq++;
	add_one_writer(&ns->published, 1);
	add_one_writer(&ns->base.written, 1);
	if (sid && *sid)
		add_one_writer(&ns->stable_ids, 1);
	maybe_flush_out(ns);
	return 0;
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
	uint64_t left;

	for (;;) {
		if (atomic_load(&ns->connected) && nats_ensure_stream(ns) == 0)
			republish(ns, REPUBLISH_BATCH);
		nats_conn_flush_out(ns);
		pthread_mutex_lock(&ns->lock);
		left = ns->retry_n + atomic_load(&ns->inflight);
		uint64_t now = mono_ns();
		if (left && now < deadline) {
			/* woken by each batch of PubAcks; a retry list waits
			 * for its backoff or the connection */
			uint64_t wait = deadline - now;
			struct timespec until;

			if (ns->retry_n && wait > 20000000ull)
				wait = 20000000ull;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += (time_t)(wait / 1000000000ull);
			until.tv_nsec += (long)(wait % 1000000000ull);
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&ns->acked_cv, &ns->lock, &until);
		}
		pthread_mutex_unlock(&ns->lock);
		if (!left || now >= deadline)
			break;
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
	fn(ctx, "late_acks", "", atomic_load(&ns->late_acks));
	fn(ctx, "protocol_errors", "", atomic_load(&ns->proto_errors));
}

/* Stops the reader thread and closes the publisher's socket. */
static void stop_reader(struct nats_sink *ns)
{
	if (!ns->reader_started)
		return;
	atomic_store(&ns->stop, true);
	/* A reader waiting in recv() (up to a PING interval when idle) wakes
	 * at once: its socket reads as ended. */
	pthread_mutex_lock(&ns->lock);
	if (ns->fd >= 0)
		shutdown(ns->fd, SHUT_RD);
	pthread_mutex_unlock(&ns->lock);
	pthread_join(ns->reader, NULL);
	ns->reader_started = false;
	pthread_mutex_lock(&ns->wlock);
	pthread_mutex_lock(&ns->lock);
	if (ns->fd >= 0)
		close(ns->fd);
	ns->fd = -1;
	ns->up = false;
	pthread_mutex_unlock(&ns->lock);
	pthread_mutex_unlock(&ns->wlock);
	atomic_store(&ns->connected, false);
}

/* Ends delivery: stops the publisher, closes the stream connection (waiting
 * for libnats' last callback), then counts what never got its ack as lost.
 * The counters are final after it. Returns 0, or -ETIMEDOUT when the libnats
 * connection did not close in 5 s (the sink must then be leaked: a late
 * callback may still use it). Idempotent. */
static int nats_close(struct sink *s)
{
	struct nats_sink *ns = to_nats(s);

	if (ns->settled)
		return ns->leak ? -ETIMEDOUT : 0;
	ns->settled = true;
	atomic_store(&ns->closing, true);
	stop_reader(ns);
	/* Close first and wait for the closed callback, the last one libnats
	 * delivers: no callback may run once the sink is freed. */
	if (ns->nc) {
		struct timespec until;
		bool closed;

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
	if (left) {
		atomic_fetch_add(&ns->lost, left);
		atomic_fetch_add(&ns->failed, left);
		atomic_fetch_add(&ns->base.failed, left);
		atomic_store(&ns->inflight, 0);
		tlog(TLOG_ERR, "nats", "%" PRIu64 " events had no ack when the sink closed: lost",
		     left);
	}
	return 0;
}

/* The pipeline ran out of events: send what is buffered and what waits for
 * a retry, if it can, without waiting for acks (flush() waits; this must not
 * stall the queue). */
static int nats_poll(struct sink *s)
{
	struct nats_sink *ns = to_nats(s);

	if (atomic_load(&ns->connected) && nats_ensure_stream(ns) == 0)
		republish(ns, REPUBLISH_BATCH);
	nats_conn_flush_out(ns);
	return 0;
}

/* Timed work exists only while an event is in flight or waits for a
 * republish: both come only from write(), so with neither the pipeline may
 * wait for its next record. */
static unsigned nats_idle_ms(struct sink *s)
{
	struct nats_sink *ns = to_nats(s);

	pthread_mutex_lock(&ns->lock);
	bool busy = ns->retry_n || atomic_load(&ns->inflight);
	pthread_mutex_unlock(&ns->lock);
	return busy ? 200 : SINK_IDLE_FOREVER;
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
		for (size_t i = 0; i < ns->retry_cap; i++)
			msg_free(&ns->retry[i]);
		free(ns->retry);
	}
	if (ns->slots) {
		for (size_t i = 0; i < ns->max_inflight; i++)
			msg_free(&ns->slots[i].m);
		free(ns->slots);
	}
	for (size_t i = 0; i < ns->nservers; i++)
		free(ns->servers[i]);
	free(ns->prefix);
	free(ns->stream);
	sb_free(&ns->line);
	sb_free(&ns->out);
	sb_free(&ns->in);
	pthread_cond_destroy(&ns->closed_cv);
	pthread_cond_destroy(&ns->acked_cv);
	pthread_mutex_destroy(&ns->lock);
	pthread_mutex_destroy(&ns->wlock);
	if (ns->wake_fd >= 0)
		close(ns->wake_fd);
	free(ns);
}

static const struct sink_ops nats_ops = {
    .name = "nats",
    .write = nats_write,
    .flush = nats_flush,
    .poll = nats_poll,
    .idle_ms = nats_idle_ms,
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
	ns->slots = calloc(ns->max_inflight, sizeof(*ns->slots));
	if (!ns->prefix || !ns->stream || !ns->retry || !ns->slots)
		return -ENOMEM;
	ns->next_reply = ns->oldest = 1;
	ns->max_payload = 1048576;
	/* The inbox the PubAcks come to: unique per sink. */
	uint64_t r = now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)ns;
	r ^= r >> 29;
	r *= 0xbf58476d1ce4e5b9ull;
	r ^= r >> 32;
	ns->inbox_len =
	    (size_t)snprintf(ns->inbox, sizeof(ns->inbox), "_INBOX.tapio%016" PRIx64, r);
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

/* The stream connection's options (libnats): servers, reconnects, pings
 * and the closed callback. */
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
		st = natsOptions_SetRetryOnFailedConnect(ns->opts, true, on_mgmt_connected, ns);
	if (st == NATS_OK)
		st = natsOptions_SetClosedCB(ns->opts, on_closed, ns);
	return st;
}

/* Connects the publisher (one round now; the reader thread goes on in the
 * background) and the stream connection (libnats, retrying in the
 * background). 0 or -EIO (err set). */
static int nats_connect_all(struct nats_sink *ns, const char *url, char *err, size_t errlen)
{
	natsStatus st;
	int rc;

	if (nats_conn_connect(ns))
		tlog(TLOG_WARN, "nats", "%s is not reachable yet; retrying in the background", url);
	st = natsConnection_Connect(&ns->nc, ns->opts);
	if (st != NATS_OK && st != NATS_NOT_YET_CONNECTED) {
		err_printf(err, errlen, "nats: connect %s: %s", url, natsStatus_GetText(st));
		return -EIO;
	}
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = API_WAIT_MS;
	st = natsConnection_JetStream(&ns->js, ns->nc, &jo);
	if (st != NATS_OK) {
		err_printf(err, errlen, "nats: JetStream context: %s", natsStatus_GetText(st));
		return -EIO;
	}
	rc = pthread_create(&ns->reader, NULL, nats_conn_reader, ns);
	if (rc) {
		err_printf(err, errlen, "nats: reader thread: %s", strerror(rc));
		return -EIO;
	}
	ns->reader_started = true;
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
		err_printf(err, errlen, "nats: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	ns->base.ops = &nats_ops;
	ns->base.self_counted = true;
	ns->fd = -1;
	ns->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&ns->lock, NULL);
	pthread_mutex_init(&ns->wlock, NULL);
	pthread_cond_init(&ns->closed_cv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ns->acked_cv, &ca);
	pthread_condattr_destroy(&ca);
	rc = ns->wake_fd < 0 ? -errno : nats_init_fields(ns, url, o, node, err, errlen);
	if (rc)
		goto fail;
	st = nats_set_options(ns);
	if (st != NATS_OK) {
		err_printf(err, errlen, "nats: options: %s", natsStatus_GetText(st));
		rc = -EIO;
		goto fail;
	}
	rc = nats_connect_all(ns, url, err, errlen);
	if (rc)
		goto fail;
	if (atomic_load(&ns->connected))
		nats_ensure_stream(ns); /* best effort now; write() retries */
	return &ns->base;
fail:
	if (rc == -ENOMEM)
		err_printf(err, errlen, "nats: out of memory");
	nats_destroy(&ns->base);
	errno = -rc;
	return NULL;
}
