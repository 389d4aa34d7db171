/* SPDX-License-Identifier: Apache-2.0 */
/* The shared watch-stream client for the k8s and etcd collectors: one HTTP
 * request over libcurl whose response body is cut into messages by a framer
 * and handed to a callback as they complete. The framers are separate, pure
 * functions so that they can be unit-tested and fuzzed on their own.
 */
#ifndef TAPIO_WATCH_H
#define TAPIO_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- framers ---- */

enum framing {
	FRAME_LINES,	    /* newline-delimited messages (k8s watch); empty lines skipped */
	FRAME_JSON_OBJECTS, /* top-level JSON objects, found by brace depth outside
			       strings (etcd watch); bytes between objects skipped */
	FRAME_WHOLE,	    /* the whole body is one message (LIST responses) */
};

/* Called with one complete message (not NUL-terminated). Return 0 to go on,
 * or a negative errno to stop the stream (framer_feed returns it). */
typedef int (*frame_fn)(void *ctx, const char *msg, size_t len);

struct framer {
	enum framing mode;
	size_t max; /* a message longer than this is skipped and counted */
	char *buf;
	size_t len, cap;
	int depth; /* FRAME_JSON_OBJECTS state */
	bool in_str, esc;
	bool skipping;	   /* inside an oversized message: drop bytes until its end */
	uint64_t oversize; /* messages skipped for size */
	uint64_t
	    junk; /* FRAME_JSON_OBJECTS: stray bytes outside objects that were not whitespace */
};

/* Returns 0 or -EINVAL. max 0 means 16 MiB. */
int framer_init(struct framer *f, enum framing mode, size_t max);
/* Feeds n bytes; calls cb for each message completed. Returns 0 or the
 * callback's negative value, or -ENOMEM. */
int framer_feed(struct framer *f, const char *p, size_t n, frame_fn cb, void *ctx);
/* End of stream: FRAME_WHOLE delivers the body; FRAME_LINES delivers a last
 * line without a newline. A partial JSON object is dropped and counted in
 * `truncated`. Returns like framer_feed. */
int framer_finish(struct framer *f, frame_fn cb, void *ctx, bool *truncated);
/* Forgets a partial message (for a new connection). */
void framer_reset(struct framer *f);
void framer_free(struct framer *f);

/* ---- HTTP stream ---- */

struct watch_tls {
	const char *ca_file;   /* PEM file; NULL = system CAs */
	const char *ca_pem;    /* or PEM in memory (kubeconfig *-data) */
	const char *cert_file; /* client certificate */
	const char *cert_pem;
	const char *key_file; /* client key */
	const char *key_pem;
	bool insecure; /* no verification: only when asked for explicitly */
};

/* Connections kept between the requests of one thread: give the same
 * watch_conn to its watch_run calls and the TCP (and TLS) connection of one
 * is reused by the next, as HTTP keep-alive allows (no handshake per
 * request). Zero-initialised; used by one thread at a time;
 * watch_conn_close() ends it. */
struct watch_conn {
	void *multi; /* the CURLM that holds the connection cache */
};
void watch_conn_close(struct watch_conn *c); /* accepts NULL and a closed one */

struct watch_req {
	const char *url;
	const char *method;	  /* "GET" (default) or "POST" */
	const char *body;	  /* POST body, NULL for none */
	const char *content_type; /* for the body */
	const char *accept;	  /* Accept header, NULL = application/json */
	const char *bearer_token; /* Authorization: Bearer ..., NULL = none */
	const struct watch_tls *tls;
	enum framing framing;
	size_t max_msg;		 /* 0 = 16 MiB */
	long connect_timeout_ms; /* 0 = 10 s */
	long idle_timeout_s;	 /* abort when no byte arrives this long; 0 = none */
	long timeout_ms;	 /* the whole request at most this long; 0 = none */
	frame_fn on_msg;	 /* called in the calling thread */
	/* Optional: told (with the bytes seen) each time a message is skipped
	 * for size, when it happens; the count is also in watch_result. */
	void (*on_oversize)(void *ctx, size_t len);
	void *ctx;		 /* for on_msg and on_oversize */
	atomic_bool *stop;	 /* when set, the transfer is aborted promptly */
	struct watch_conn *conn; /* NULL: a connection for this request alone */
};

struct watch_result {
	long http_status;  /* 0 when no response */
	int curl_code;	   /* CURLcode, 0 = OK */
	bool truncated;	   /* the body ended inside a message */
	bool stopped;	   /* aborted because *stop was set */
	int cb_err;	   /* a callback's negative return, 0 otherwise */
	uint64_t bytes;	   /* body bytes received */
	uint64_t messages; /* messages delivered */
	uint64_t oversize; /* messages skipped for size */
	uint64_t junk;	   /* FRAME_JSON_OBJECTS: stray bytes skipped between objects */
	char error[256];   /* human-readable reason when it failed */
	char *err_body;	   /* for a non-2xx status: up to 64 KiB of the body, malloc'd
			      (free with watch_result_free); messages are not delivered then */
	size_t err_body_len;
};

/* Runs one request to its end (stream closed, error, or stop). Returns 0 when
 * the transfer completed with a 2xx status, or a negative errno: -ECONNREFUSED
 * etc. for transport failures (res->curl_code), -EPROTO for a non-2xx status
 * (res->http_status, res->err_body), -ECANCELED when stopped, or the callback's
 * error. Thread-safe: each call uses its own curl handle. */
int watch_run(const struct watch_req *req, struct watch_result *res);
void watch_result_free(struct watch_result *res);

/* Sleeps up to ms, waking early when *stop is set and watch_stop_notify() is
 * called (or within a second of the flag without a notify). Returns true if
 * stopped. */
bool sleep_or_stop(unsigned ms, atomic_bool *stop);

/* Wakes every running watch_run() transfer and every sleep_or_stop(), so
 * that each re-checks its stop flag: call it after setting a stop flag that
 * one of them was given. Thread-safe. */
void watch_stop_notify(void);

/* curl_global_init, once per process (pthread_once): called by each user of
 * libcurl when it starts, so that a process that uses none of them does not
 * load OpenSSL's state. Returns 0 or -EIO. */
int watch_global_init(void);

#endif
