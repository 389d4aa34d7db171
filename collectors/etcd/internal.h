/* SPDX-License-Identifier: Apache-2.0 */
/* The etcd collector's private parts, shared by collector.c (ops, options,
 * construction) and stream.c (the thread, the watch stream and the events). */
#ifndef TAPIO_ETCD_INTERNAL_H
#define TAPIO_ETCD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collectors/etcd/etcd.h"
#include "core/ack.h"
#include "core/collector.h"
#include "core/state.h"
#include "http/watch.h"
#include "util/ratelimit.h"
#include "util/strbuf.h"
#include "util/strlist.h"

#define ETCD_BACKOFF_BASE_MS 800
#define ETCD_BACKOFF_CAP_MS 30000
#define ETCD_IDLE_TIMEOUT_S 900 /* etcd sends a progress notification every 10 min */
#define ETCD_MIN_STREAM_NS (1000ull * 1000 * 1000)
#define ETCD_CURSOR_FILE "etcd.revision"
#define ETCD_DEFAULT_MAX_EVENT ((uint64_t)16 << 20)

/* Messages that can repeat once per event. */
enum rl_slot { RL_OVERSIZE, RL_MALFORMED, RL_TOO_BIG, RL_CURSOR, RL__MAX };

/* Why the message callback ended a stream. */
enum stream_end {
	END_NONE,
	END_COMPACTED, /* reconnect at once from compact_revision */
	END_QUEUE,     /* the queue refused an event: back off, fetch it again */
	END_CLOSED,    /* the queue is closed: the agent is stopping */
	END_ERROR,     /* an error response, a cancel, or a malformed response */
};

struct etcd_collector {
	struct collector base;
	struct queue *q;

	struct strlist endpoints; /* base URLs without a trailing '/' */
	bool *beta;		  /* per endpoint: use /v3beta (etcd 3.3) */
	char *prefix;
	size_t prefix_len;
	char *cacert, *cert, *key;
	struct watch_tls tls;
	uint64_t max_event; /* decoded value bytes */
	size_t max_msg;	    /* one watch response */
	struct cursor cur;
	/* The cursor moves on the sink's acknowledgement: events are tracked by
	 * revision, rev_done is handed on as "through" (core/ack.h). */
	struct ack_tracker ack;
	bool ack_ok;	     /* ack initialised */
	uint64_t id_scope;   /* the cluster id, else a hash of the endpoint list */
	char id_scope_s[24]; /* its hex, for event ids */

	/* thread state */
	bool have_rev;
	int64_t rev_done;
	int64_t pend_rev;   /* a revision partly enqueued (0 = none) */
	size_t pend_n;	    /* its events already enqueued */
	int64_t stream_rev; /* the revision of the last event seen on this stream */
	size_t stream_idx;  /* events of stream_rev seen on this stream */
	int64_t requested;  /* start revision of the current stream (0 = now) */
	bool created;
	enum stream_end end;
	char end_reason[512];
	struct strbuf data;
	int64_t skipped_after; /* a response was skipped for size after this revision (-1 = none) */
	struct ratelimit rl[RL__MAX]; /* per-event messages: at most one a second each */
};

static inline struct etcd_collector *to_etcd(struct collector *c)
{
	return (struct etcd_collector *)c;
}

/* 64-bit FNV-1a, for the key part of an event id. */
uint64_t etcd_fnv1a(const void *p, size_t n);

/* Sets the id scope (cluster id; 0 = keep the endpoint hash). */
void etcd_set_scope(struct etcd_collector *e, uint64_t cluster_id);

/* The collector's thread (collector_spawn): watches until asked to stop. */
void *etcd_thread(void *arg);

#endif
