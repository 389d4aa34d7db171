// SPDX-License-Identifier: Apache-2.0
/* Private to the NATS sink (sink_nats.c, nats_config.c, nats_stream.c): the
 * sink's state and the helpers the files share. */
#ifndef TAPIO_NATS_INTERNAL_H
#define TAPIO_NATS_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink/sink_nats.h"
#include "util/strbuf.h"

#define MAX_SERVERS 16
#define ATTEMPT_HDR "Tapio-Attempt"
/* "<source id>/<ack token>": which source to tell when the PubAck comes. */
#define ACK_HDR "Tapio-Ack"
/* How long an async publish waits for its ack before it is taken back for a
 * republish, and how long JetStream API calls (stream lookup/creation) wait. */
#define ACK_TIMEOUT_MS 5000
#define API_WAIT_MS 2000
/* A full in-flight window waits this long in js_PublishMsgAsync, then write()
 * answers -EAGAIN. */
#define STALL_WAIT_MS 100
/* Republishes per write() call, so the pipeline keeps moving. */
#define REPUBLISH_BATCH 256
/* After a round of publishes failed for a passing reason (no responders
 * while a stream has no leader during a leader change), the retry list
 * waits before it is sent again: 100 ms, doubling to 5 s (the ack timeout)
 * while rounds keep failing. The attempts of a message then span about 20 s
 * instead of being used up within a leader election (4 to 6 s of "no
 * responders" measured on a three-node cluster on loopback). */
#define RETRY_BACKOFF_MIN_MS 100
#define RETRY_BACKOFF_MAX_MS 5000
#define SUBJECT_CACHE 64 /* (source, type) pairs whose subject is kept */

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
	int64_t dup_window_ns;
	int replicas;
	unsigned max_inflight;
	unsigned ack_wait_ms;
	unsigned max_attempts;
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
	/* subjects by (source, type), built once each: no printf per event */
	struct {
		uint32_t key; /* source << 16 | type, plus one; 0 = empty */
		char s[256];
	} subj_cache[SUBJECT_CACHE];
	size_t id_prefix_len;

	_Atomic uint64_t retry_after;  /* mono ns: the retry list waits until then */
	_Atomic unsigned retry_rounds; /* failed rounds since the last PubAck */
	_Atomic uint64_t inflight;
	_Atomic uint64_t published, republished, acked, duplicates, failed, lost, unacked,
	    reconnects;
	_Atomic uint64_t too_big;		    /* larger than the server's max_payload */
	_Atomic uint64_t outstanding[SINK_SOURCES]; /* published, neither acked nor lost */
	_Atomic uint64_t stable_ids;		    /* messages with the source's own id */
	_Atomic uint64_t last_loss_log;		    /* mono ns, rate limit for loss messages */
};

static inline struct nats_sink *to_nats(struct sink *s)
{
	return (struct nats_sink *)s;
}

/* Formats into err (when err and errlen). */
void nats_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks the options (struct nats_options); 0, or -EINVAL with err set. */
int nats_options_check(const void *p, char *err, size_t errlen);

/* "limits" (or "" / NULL), "interest", "workqueue"; 0 or -EINVAL. */
int nats_parse_retention(const char *r, jsRetentionPolicy *out);

/* Creates the stream or checks the existing one, at most every 500 ms.
 * Pipeline thread. 0 or -EAGAIN. */
int nats_ensure_stream(struct nats_sink *ns);

#endif
