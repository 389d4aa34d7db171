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
#include <time.h>

#include "sink/sink_nats.h"
#include "sink/nats_wire.h"
#include "util/strbuf.h"

#define MAX_SERVERS 16
/* How long a publish waits for its PubAck before it is taken back for a
 * republish, and how long JetStream API calls (stream lookup/creation) wait. */
#define ACK_TIMEOUT_MS 5000
#define API_WAIT_MS 2000
/* A full in-flight window waits this long for a PubAck, then write()
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
/* The publisher's connection: buffered frames are written once the
 * pipeline runs out of events or when this much waits. */
#define OUT_FLUSH_BYTES 65536
#define CONNECT_TIMEOUT_MS 2000
#define READ_WAIT_MS 100
/* The least a PubAck takes on the wire: "MSG <inbox>.<n> 1 <len>\r\n" with
 * the 29-byte inbox, and {"stream":"S", "seq":N}\r\n. */
#define ACK_MIN_BYTES 48
#define LOWAT_MAX 16384
#define RECONNECT_WAIT_MS 500
#define RECONNECT_JITTER_MS 250
/* A server that hangs without closing the socket is noticed within about
 * 30 s, so /readyz tells the truth. */
#define PING_INTERVAL_MS 10000
#define MAX_PINGS_OUT 3
/* The largest frame the publisher accepts from the server (PubAcks and
 * status messages are small; this bounds a garbled length). */
#define MAX_IN_MSG (1u << 20)

/* One event on its way: in flight, or waiting in the retry list. The
 * buffer holds payload, subject and id back to back (the formatted line,
 * with subject and id appended: it moves in without a copy); it is kept and
 * reused (entries swap buffers with the window, the retry list and the
 * line). */
struct nats_msg {
	char *buf;
	size_t cap;
	uint32_t subj_len, id_len, payload_len;
	uint32_t token;	   /* the source's ack token */
	uint8_t src;	   /* enum tapio_source */
	unsigned attempts; /* publishes sent */
};

/* The in-flight window: the entry of reply number n is slot[n % max_inflight]. */
struct nats_slot {
	struct nats_msg m;
	uint64_t reply;	  /* its reply number; 0 = free */
	uint64_t sent_ns; /* mono ns of the publish (the ack timeout) */
};

struct nats_sink {
	struct sink base; /* first */
	/* libnats: the stream lookup and creation only (nats_stream.c) */
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

	/* The publisher's connection (nats_conn.c). The reader thread makes,
	 * reads and drops it; the pipeline thread writes frames to it. */
	pthread_t reader;
	bool reader_started;
	atomic_bool stop;
	char inbox[48]; /* "_INBOX.<random>": PubAcks come on <inbox>.<n> */
	size_t inbox_len;
	size_t server_next;		/* the server the next connect tries first (reader) */
	uint64_t next_try[MAX_SERVERS]; /* mono ns: a server's next try at the earliest (reader) */
	_Atomic uint64_t max_payload;	/* the server's, from INFO */
	char server_name[160];		/* "nats://HOST:PORT" of the connection (reader) */
	pthread_mutex_t wlock;		/* writes to fd; fd and gen change under wlock and lock */
	int fd;				/* -1 while down */
	struct strbuf out;		/* frames not written yet (pipeline thread) */
	uint64_t out_gen;		/* the connection they are for */
	_Alignas(64) struct strbuf in;	/* bytes read, not parsed yet (reader) */
	bool ever_connected;		/* reader */
	uint64_t last_ping_ns;		/* reader */
	unsigned pings_out;		/* reader */
	int lowat;			/* SO_RCVLOWAT now (reader) */
	int wake_fd;	  /* eventfd: a publish into an empty window wakes the reader */
	bool reader_long; /* under lock: the reader waits up to a PING interval */
	bool in_unread;	  /* the handshake left bytes in `in` (reader) */

	pthread_mutex_t lock;
	pthread_cond_t closed_cv; /* signalled by on_closed */
	pthread_cond_t acked_cv;  /* a slot was freed (under lock) */
	bool closed;		  /* under lock */
	bool settled;		  /* nats_close() ran (pipeline thread only) */
	bool leak;		  /* the connection never closed: never free */
	/* under lock: */
	bool up;		 /* the connection is made: publishes may go */
	uint64_t gen;		 /* connections made so far */
	struct nats_slot *slots; /* max_inflight */
	uint64_t next_reply;	 /* the next publish's reply number (from 1) */
	uint64_t oldest;	 /* no slot holds a reply number below this */
	struct nats_msg *retry;	 /* waiting for a republish, FIFO ring */
	size_t retry_cap, retry_head;
	_Atomic size_t retry_n; /* written under lock, peeked without */
	/* PubAcks of the batch being read, not counted yet (nats_fold_acks) */
	uint64_t b_acked, b_dup, b_src[SINK_SOURCES];

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
	_Atomic uint64_t published, republished; /* pipeline thread */
	/* the reader's, on lines of their own: the pipeline does not wait
	 * for them per event */
	_Alignas(64) _Atomic uint64_t acked, duplicates, failed, lost, unacked, reconnects;
	_Atomic uint64_t too_big;		    /* larger than the server's max_payload */
	_Atomic uint64_t outstanding[SINK_SOURCES]; /* published, neither acked nor lost */
	_Atomic uint64_t stable_ids;		    /* messages with the source's own id */
	_Atomic uint64_t late_acks;	 /* PubAcks after their ack timeout (already republished) */
	_Atomic uint64_t proto_errors;	 /* bad frames and PubAcks from the server */
	_Atomic uint64_t last_loss_log;	 /* mono ns, rate limit for loss messages */
	_Atomic uint64_t last_proto_log; /* mono ns, rate limit for protocol errors */
};

/* The clock of the ack timeout: coarse (a few ms) and cheap. */
static inline uint64_t nats_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline struct nats_sink *to_nats(struct sink *s)
{
	return (struct nats_sink *)s;
}

/* Checks the options (struct nats_options); 0, or -EINVAL with err set. */
int nats_options_check(const void *p, char *err, size_t errlen);

/* "limits" (or "" / NULL), "interest", "workqueue"; 0 or -EINVAL. */
int nats_parse_retention(const char *r, jsRetentionPolicy *out);

/* The publisher's connection (nats_conn.c). */
/* One connect round over the server list; 0 when connected (reader thread,
 * or sink_nats_new before the reader starts). */
int nats_conn_connect(struct nats_sink *ns);
/* The reader thread: reads PubAcks, answers PINGs, reconnects. */
void *nats_conn_reader(void *arg);
/* Writes the buffered frames (pipeline thread). 0, or -EAGAIN when the
 * connection is down (the frames' entries are taken back by the reader). */
int nats_conn_flush_out(struct nats_sink *ns);
/* Handles one frame from the server (reader thread, lock held). 0, or -1
 * with a reason in why when the connection must be dropped (-ERR). What is
 * wrong but leaves the stream in step (a PubAck for an unknown reply number,
 * malformed PubAck JSON) is counted and logged (rate-limited) here, and the
 * connection kept. Public for the protocol tests. */
int nats_conn_frame(struct nats_sink *ns, const struct nw_frame *f, char *why, size_t wl);
/* Logs a protocol error naming the server (rate-limited) and counts it. */
void nats_proto_error(struct nats_sink *ns, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The publisher (sink_nats.c), lock held. */
/* A PubAck (or a failure) for the entry in slot s: settles it or moves it to
 * the retry list. transient: a failure that may pass (republish). */
void nats_slot_acked(struct nats_sink *ns, struct nats_slot *s, bool duplicate);
void nats_slot_failed(struct nats_sink *ns, struct nats_slot *s, bool transient, const char *why);
/* Counts the batch's PubAcks (after nats_slot_acked calls). */
void nats_fold_acks(struct nats_sink *ns);
/* Moves every entry in flight to the retry list (the connection dropped). */
void nats_take_back_all(struct nats_sink *ns);
/* Takes back what waited longer than the ack timeout (now: nats_coarse_ns). */
void nats_expire(struct nats_sink *ns, uint64_t now);

/* Creates the stream or checks the existing one, at most every 500 ms.
 * Pipeline thread. 0 or -EAGAIN. */
int nats_ensure_stream(struct nats_sink *ns);

#endif
