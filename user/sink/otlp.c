// SPDX-License-Identifier: Apache-2.0
/* The OTLP/HTTP logs sink (see otlp.h): batching on the pipeline thread,
 * gzip and delivery on a sender thread that drives a curl multi handle. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/ack.h"
#include "core/event.h"
#include "core/options.h"
#include "sink/otlp.h"
#include "sink/otlp_encode.h"
#include "util/backoff.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/ratelimit.h"
#include "util/strbuf.h"
#include "util/vec.h"

#ifndef TAPIO_VERSION
#define TAPIO_VERSION "dev"
#endif

#define RETRY_AFTER_CAP_S 300
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 10000

struct batch {
	struct batch *next;
	struct strbuf recs; /* encoded LogRecords */
	uint64_t n;	    /* events */
	uint64_t src_n[SINK_SOURCES];
	uint64_t first_ns; /* mono, when the first record went in */
	/* acknowledgement tokens of the records (core/ack.h), settled when the
	 * receiver answered for good (accepted, or refused for good) */
	struct batch_ack {
		uint16_t src;
		uint32_t token;
	} * acks;
	size_t nacks, capacks;
	/* sender side */
	struct strbuf body; /* the gzipped (or plain) request */
	struct strbuf resp;
	unsigned attempts;
	uint64_t not_before; /* mono ns */
	CURL *easy;
	struct curl_slist *hdrs;
};

struct otlp_sink {
	struct sink base;
	struct otlp_options o;
	char url[1024];
	struct otlp_resource res;
	char host[256];
	char *node;

	/* pipeline thread */
	struct batch *cur;
	struct strbuf scratch;

	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t idle;		     /* signalled when nothing is waiting or under way */
	struct batch *wait_head, *wait_tail; /* sealed, not under way */
	unsigned nwait, ninflight;
	bool stop;
	bool down;		/* the last attempt got no HTTP answer */
	uint64_t stop_deadline; /* mono ns: after it, give up what is left */

	/* sender thread */
	CURLM *multi;
	pthread_t thread;
	bool started;
	struct strbuf prefix;
	struct ratelimit rl_fail, rl_retry;

	_Atomic uint64_t requests, retried, http_errors, rejected, abandoned, bytes_sent;
};

/* ---- URL and options ---- */

int otlp_parse_url(const char *spec, char *url, size_t urllen, char *err, size_t errlen)
{
	const char *p, *scheme;
	if (!strncmp(spec, "otlp://", 7)) {
		p = spec + 7;
		scheme = "http";
	} else if (!strncmp(spec, "otlps://", 8)) {
		p = spec + 8;
		scheme = "https";
	} else {
		err_printf(err, errlen, "output: '%s' is not otlp://HOST:PORT[/PATH] or otlps://",
			   spec);
		return -EINVAL;
	}
	const char *slash = strchr(p, '/');
	size_t hl = slash ? (size_t)(slash - p) : strlen(p);
	const char *colon = NULL;
	if (hl && p[0] == '[') {
		const char *rb = memchr(p, ']', hl);
		if (rb && rb + 1 < p + hl && rb[1] == ':')
			colon = rb + 1;
	} else {
		colon = memchr(p, ':', hl);
	}
	if (!hl || !colon || colon == p || colon + 1 == p + hl) {
		err_printf(err, errlen, "output: '%s': needs HOST:PORT", spec);
		return -EINVAL;
	}
	unsigned long port = 0;
	for (const char *c = colon + 1; c < p + hl; c++) {
		if (*c < '0' || *c > '9' || port > 65535) {
			err_printf(err, errlen, "output: '%s': bad port", spec);
			return -EINVAL;
		}
		port = port * 10 + (unsigned long)(*c - '0');
	}
	if (port < 1 || port > 65535) {
		err_printf(err, errlen, "output: '%s': port out of range", spec);
		return -EINVAL;
	}
	for (const char *c = p; c < colon; c++)
		if (*c <= ' ' || *c == '@' || *c == '?' || *c == '#' || (unsigned char)*c >= 0x7f) {
			err_printf(err, errlen, "output: '%s': bad character in host", spec);
			return -EINVAL;
		}
	const char *path = slash && slash[1] ? slash : "/v1/logs";
	for (const char *c = path; *c; c++)
		if (*c <= ' ' || (unsigned char)*c >= 0x7f) {
			err_printf(err, errlen, "output: '%s': bad character in path", spec);
			return -EINVAL;
		}
	int n = snprintf(url, urllen, "%s://%.*s%s", scheme, (int)hl, p, path);
	if (n < 0 || (size_t)n >= urllen) {
		err_printf(err, errlen, "output: '%s' is too long", spec);
		return -EINVAL;
	}
	return 0;
}

#define OO(n, t, f, d, h) OPT_ENTRY(struct otlp_options, n, t, f, d, h)

static const struct opt otlp_opt_table[] = {
    OO("otlp-ca", OPT_STR, ca, "", "otlps: PEM CA bundle (default: the system's)"),
    OO("otlp-cert", OPT_STR, cert, "", "otlps: client certificate (PEM)"),
    OO("otlp-key", OPT_STR, key, "", "otlps: the client certificate's key (PEM)"),
    OO("otlp-batch-size", OPT_SIZE, batch_size, "1M", "uncompressed bytes per request at most"),
    OO("otlp-batch-ms", OPT_UINT, batch_ms, "200", "how long a batch may wait to fill"),
    OO("otlp-max-inflight", OPT_UINT, max_inflight, "4", "requests under way at most"),
    OO("otlp-timeout-ms", OPT_UINT, timeout_ms, "10000",
       "per request, and the wait for the last ones at exit"),
    OO("otlp-gzip", OPT_UINT, gzip, "1", "gzip level 1..9, 0 = send uncompressed"),
};

static int otlp_options_check(const void *p, char *err, size_t errlen)
{
	const struct otlp_options *o = p;
	if (o->batch_size < 4096 || o->batch_size > (64ull << 20)) {
		err_printf(err, errlen, "otlp-batch-size: %" PRIu64 " must be from 4K to 64M",
			   o->batch_size);
		return -EINVAL;
	}
	if (o->max_inflight < 1 || o->max_inflight > 256) {
		err_printf(err, errlen, "otlp-max-inflight: %u must be from 1 to 256",
			   o->max_inflight);
		return -EINVAL;
	}
	if (o->timeout_ms < 100) {
		err_printf(err, errlen, "otlp-timeout-ms: %u must be at least 100", o->timeout_ms);
		return -EINVAL;
	}
	if (o->gzip > 9) {
		err_printf(err, errlen, "otlp-gzip: %u must be from 0 to 9", o->gzip);
		return -EINVAL;
	}
	if (!*o->cert != !*o->key) {
		err_printf(err, errlen, "otlp-cert and otlp-key go together");
		return -EINVAL;
	}
	return 0;
}

const struct opt_group otlp_options_group =
    OPT_GROUP("otlp", struct otlp_options, otlp_opt_table, otlp_options_check);

/* ---- batches ---- */

static void batch_free(struct batch *b)
{
	if (!b)
		return;
	sb_free(&b->recs);
	free(b->acks);
	sb_free(&b->body);
	sb_free(&b->resp);
	curl_slist_free_all(b->hdrs);
	free(b);
}

/* The receiver answered for the batch for good (a 200, also with rejected
 * records, or a status that no retry would change): its sources may move
 * their cursors past it. What is given up at a stop is not acknowledged, so
 * it is read again after a restart. */
static void settle_acks(struct batch *b)
{
	for (size_t i = 0; i < b->nacks; i++)
		ack_settle_src(b->acks[i].src, b->acks[i].token);
	b->nacks = 0;
}

/* Counts a batch's events: ok of them written, the rest failed. */
static void settle(struct otlp_sink *os, struct batch *b, uint64_t ok)
{
	if (ok > b->n)
		ok = b->n;
	uint64_t bad = b->n - ok;
	for (unsigned i = 0; i < SINK_SOURCES; i++) {
		uint64_t f = b->src_n[i] < bad ? b->src_n[i] : bad;
		bad -= f;
		if (f)
			atomic_fetch_add(&os->base.src_failed[i], f);
		if (b->src_n[i] - f)
			atomic_fetch_add(&os->base.src_written[i], b->src_n[i] - f);
	}
	atomic_fetch_add(&os->base.written, ok);
	atomic_fetch_add(&os->base.acked, ok);
	atomic_fetch_add(&os->base.failed, b->n - ok);
}

static bool has_room(struct otlp_sink *os)
{
	return os->nwait < os->o.max_inflight;
}

/* Hands the open batch to the sender when there is room. Pipeline thread. */
static int seal(struct otlp_sink *os)
{
	struct batch *b = os->cur;
	if (!b || !b->n)
		return 0;
	pthread_mutex_lock(&os->mu);
	if (!has_room(os)) {
		pthread_mutex_unlock(&os->mu);
		return -EAGAIN;
	}
	b->next = NULL;
	if (os->wait_tail)
		os->wait_tail->next = b;
	else
		os->wait_head = b;
	os->wait_tail = b;
	os->nwait++;
	pthread_mutex_unlock(&os->mu);
	os->cur = NULL;
	curl_multi_wakeup(os->multi);
	return 0;
}

/* A self-counted sink counts what it fails at once too. */
static int fail_one(struct otlp_sink *os, const struct tapio_event *ev, int err)
{
	unsigned src = ev->source < SINK_SOURCES ? ev->source : SINK_SOURCES - 1;
	atomic_fetch_add(&os->base.src_failed[src], 1);
	atomic_fetch_add(&os->base.failed, 1);
	return err;
}

static int otlp_write(struct sink *s, const struct tapio_event *ev)
{
	struct otlp_sink *os = (struct otlp_sink *)s;
	struct batch *b = os->cur;
	if (b && b->recs.len >= os->o.batch_size && seal(os))
		return -EAGAIN;
	if (!os->cur) {
		b = os->cur = calloc(1, sizeof(*b));
		if (!b)
			return fail_one(os, ev, -ENOMEM);
		b->first_ns = mono_ns();
	}
	b = os->cur;
	size_t mark = b->recs.len;
	int rc = otlp_encode_record(ev, now_ns(), &os->scratch, &b->recs);
	if (rc) {
		b->recs.len = mark;
		b->recs.err = 0;
		if (rc != -ENOMEM)
			ack_settle_src(ev->source, ev->ack); /* it can never be sent */
		return fail_one(os, ev, rc);
	}
	unsigned src = ev->source < SINK_SOURCES ? ev->source : SINK_SOURCES - 1;
	if (ev->ack) {
		if (VEC_RESERVE(b->acks, b->capacks, b->nacks + 1)) {
			b->recs.len = mark;
			return fail_one(os, ev, -ENOMEM);
		}
		b->acks[b->nacks++] = (struct batch_ack){(uint16_t)ev->source, ev->ack};
	}
	b->n++;
	b->src_n[src]++;
	if (b->recs.len >= os->o.batch_size)
		seal(os); /* or at the next write */
	return 0;
}

static int otlp_poll(struct sink *s)
{
	struct otlp_sink *os = (struct otlp_sink *)s;
	if (os->cur && mono_ns() - os->cur->first_ns >= (uint64_t)os->o.batch_ms * 1000000ull)
		seal(os);
	return 0;
}

/* Seals and waits up to ms for the sender to finish what it has. */
static int wait_idle(struct otlp_sink *os, unsigned ms)
{
	uint64_t deadline = mono_ns() + (uint64_t)ms * 1000000ull;
	while (os->cur && os->cur->n && seal(os) == -EAGAIN) {
		if (mono_ns() > deadline)
			return -ETIMEDOUT;
		usleep(10000);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t abs = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
		       (deadline > mono_ns() ? deadline - mono_ns() : 0);
	ts.tv_sec = (time_t)(abs / 1000000000ull);
	ts.tv_nsec = (long)(abs % 1000000000ull);
	int rc = 0;
	pthread_mutex_lock(&os->mu);
	while ((os->nwait || os->ninflight) && rc == 0)
		rc = pthread_cond_timedwait(&os->idle, &os->mu, &ts);
	bool done = !os->nwait && !os->ninflight;
	pthread_mutex_unlock(&os->mu);
	return done ? 0 : -ETIMEDOUT;
}

static int otlp_flush(struct sink *s)
{
	struct otlp_sink *os = (struct otlp_sink *)s;
	return wait_idle(os, os->o.timeout_ms);
}

static void stop_sender(struct otlp_sink *os)
{
	if (!os->started)
		return;
	pthread_mutex_lock(&os->mu);
	os->stop = true;
	os->stop_deadline = mono_ns();
	pthread_mutex_unlock(&os->mu);
	curl_multi_wakeup(os->multi);
	pthread_join(os->thread, NULL);
	os->started = false;
}

static int otlp_close(struct sink *s)
{
	struct otlp_sink *os = (struct otlp_sink *)s;
	int rc = wait_idle(os, os->o.timeout_ms);
	stop_sender(os);
	if (os->cur) { /* could not be sealed in time */
		atomic_fetch_add(&os->abandoned, os->cur->n);
		settle(os, os->cur, 0);
		batch_free(os->cur);
		os->cur = NULL;
	}
	return rc;
}

static bool otlp_connected(struct sink *s)
{
	struct otlp_sink *os = (struct otlp_sink *)s;
	pthread_mutex_lock(&os->mu);
	bool ok = !os->down && os->nwait < os->o.max_inflight;
	pthread_mutex_unlock(&os->mu);
	return ok;
}

static void otlp_counters(struct sink *s, counter_fn fn, void *ctx)
{
	struct otlp_sink *os = (struct otlp_sink *)s;
	fn(ctx, "requests", NULL, atomic_load(&os->requests));
	fn(ctx, "retried", NULL, atomic_load(&os->retried));
	fn(ctx, "http_errors", NULL, atomic_load(&os->http_errors));
	fn(ctx, "rejected", NULL, atomic_load(&os->rejected));
	fn(ctx, "abandoned", NULL, atomic_load(&os->abandoned));
	fn(ctx, "bytes_sent", NULL, atomic_load(&os->bytes_sent));
	pthread_mutex_lock(&os->mu);
	uint64_t inflight = os->ninflight, waiting = os->nwait;
	pthread_mutex_unlock(&os->mu);
	fn(ctx, "inflight", NULL, inflight);
	fn(ctx, "batches_pending", NULL, waiting);
}

static void otlp_destroy(struct sink *s)
{
	struct otlp_sink *os = (struct otlp_sink *)s;
	if (os->started)
		otlp_close(s);
	if (os->cur) {
		settle(os, os->cur, 0);
		batch_free(os->cur);
	}
	if (os->multi)
		curl_multi_cleanup(os->multi);
	sb_free(&os->scratch);
	sb_free(&os->prefix);
	free(os->node);
	free(os->o.ca);
	free(os->o.cert);
	free(os->o.key);
	pthread_mutex_destroy(&os->mu);
	pthread_cond_destroy(&os->idle);
	free(os);
}

static const struct sink_ops otlp_ops = {
    .name = "otlp",
    .write = otlp_write,
    .flush = otlp_flush,
    .poll = otlp_poll,
    .close = otlp_close,
    .connected = otlp_connected,
    .counters = otlp_counters,
    .destroy = otlp_destroy,
};

/* ---- the sender thread ---- */

/* The request body: prefix + records, gzipped when asked. */
static int build_body(struct otlp_sink *os, struct batch *b)
{
	if (otlp_request_prefix(&os->res, b->recs.len, &os->prefix))
		return -ENOMEM;
	sb_reset(&b->body);
	if (!os->o.gzip) {
		sb_add(&b->body, os->prefix.buf, os->prefix.len);
		sb_add(&b->body, b->recs.buf, b->recs.len);
		return b->body.err;
	}
	z_stream z = {0};
	if (deflateInit2(&z, (int)os->o.gzip, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	size_t total = os->prefix.len + b->recs.len;
	size_t bound = deflateBound(&z, total) + 64;
	if (sb_grow(&b->body, bound)) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_out = (Bytef *)b->body.buf;
	z.avail_out = (uInt)bound;
	z.next_in = (Bytef *)os->prefix.buf;
	z.avail_in = (uInt)os->prefix.len;
	int zr = deflate(&z, Z_NO_FLUSH);
	if (zr == Z_OK) {
		z.next_in = (Bytef *)b->recs.buf;
		z.avail_in = (uInt)b->recs.len;
		zr = deflate(&z, Z_FINISH);
	}
	b->body.len = z.total_out;
	deflateEnd(&z);
	return zr == Z_STREAM_END ? 0 : -EIO;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct batch *b = ud;
	if (b->resp.len < 64 * 1024)
		sb_add(&b->resp, p, sz * n);
	return sz * n;
}

static int start_request(struct otlp_sink *os, struct batch *b)
{
	if (!b->body.len && build_body(os, b))
		return -ENOMEM;
	CURL *e = curl_easy_init();
	if (!e)
		return -ENOMEM;
	if (!b->hdrs) {
		b->hdrs = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
		if (os->o.gzip)
			b->hdrs = curl_slist_append(b->hdrs, "Content-Encoding: gzip");
		b->hdrs = curl_slist_append(b->hdrs, "Expect:");
	}
	sb_reset(&b->resp);
	curl_easy_setopt(e, CURLOPT_URL, os->url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->body.buf);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->body.len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, b->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(e, CURLOPT_PRIVATE, b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)os->o.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)os->o.timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "tapio/" TAPIO_VERSION);
	if (*os->o.ca)
		curl_easy_setopt(e, CURLOPT_CAINFO, os->o.ca);
	if (*os->o.cert) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, os->o.cert);
		curl_easy_setopt(e, CURLOPT_SSLKEY, os->o.key);
	}
	b->easy = e;
	if (curl_multi_add_handle(os->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		b->easy = NULL;
		return -EIO;
	}
	b->attempts++;
	atomic_fetch_add(&os->requests, 1);
	return 0;
}

/* The server's message: a google.rpc.Status (field 2, message) when the
 * body is protobuf, else its printable text. */
static void server_message(const struct strbuf *r, char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *)r->buf;
	size_t n = r->len, o = 0;
	out[0] = '\0';
	if (!n)
		return;
	/* a Status: optional field 1 varint, then field 2 string */
	size_t i = 0;
	if (p[0] == 0x08) {
		for (i = 1; i < n && (p[i] & 0x80); i++)
			;
		i++;
	}
	if (i + 1 < n && p[i] == 0x12 && p[i + 1] < 0x80 && i + 2 + p[i + 1] <= n) {
		p += i + 2;
		n = r->buf[i + 1];
	}
	for (size_t k = 0; k < n && o + 1 < len && o < 200; k++)
		out[o++] = p[k] >= 0x20 && p[k] < 0x7f ? (char)p[k] : ' ';
	out[o] = '\0';
}

static void requeue_front(struct otlp_sink *os, struct batch *b, uint64_t delay_ns)
{
	b->not_before = mono_ns() + delay_ns;
	b->next = os->wait_head;
	os->wait_head = b;
	if (!os->wait_tail)
		os->wait_tail = b;
	os->nwait++;
}

/* One finished transfer. Called with mu held. */
static void finished(struct otlp_sink *os, CURL *e, CURLcode cc)
{
	struct batch *b = NULL;
	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&b);
	long status = 0;
	curl_off_t retry_after = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry_after);
	curl_multi_remove_handle(os->multi, e);
	curl_easy_cleanup(e);
	b->easy = NULL;
	os->ninflight--;
	os->down = cc != CURLE_OK;
	uint64_t now = mono_ns(), held;
	char msg[256];

	if (cc == CURLE_OK && status >= 200 && status < 300) {
		int64_t rej = 0;
		if (otlp_decode_response(b->resp.buf, b->resp.len, &rej, msg, sizeof(msg)))
			rej = 0;
		if (rej < 0)
			rej = 0;
		if ((uint64_t)rej > b->n)
			rej = (int64_t)b->n;
		if (rej) {
			atomic_fetch_add(&os->rejected, (uint64_t)rej);
			if (ratelimit_allow(&os->rl_fail, now, &held))
				tlog(TLOG_WARN, "otlp",
				     "%s: the receiver rejected %" PRId64 " of %" PRIu64
				     " log records: %s (%" PRIu64 " such messages held back)",
				     os->url, rej, b->n, msg[0] ? msg : "no message", held);
		}
		atomic_fetch_add(&os->bytes_sent, b->body.len);
		settle_acks(b);
		settle(os, b, b->n - (uint64_t)rej);
		batch_free(b);
		return;
	}
	bool retry =
	    cc != CURLE_OK || status == 429 || status == 502 || status == 503 || status == 504;
	if (retry && !os->stop) {
		atomic_fetch_add(&os->retried, 1);
		uint64_t delay_ms = backoff_ms(b->attempts, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
		if (cc == CURLE_OK && retry_after > 0)
			delay_ms = (uint64_t)(retry_after < RETRY_AFTER_CAP_S ? retry_after
									      : RETRY_AFTER_CAP_S) *
				   1000ull;
		if (ratelimit_allow(&os->rl_retry, now, &held))
			tlog(TLOG_WARN, "otlp", "%s: %s; retrying in %" PRIu64 " ms", os->url,
			     cc != CURLE_OK
				 ? curl_easy_strerror(cc)
				 : (status == 429 ? "429 Too Many Requests" : "server unavailable"),
			     delay_ms);
		requeue_front(os, b, delay_ms * 1000000ull);
		return;
	}
	if (retry) { /* stopping: the rest of the wait is given up */
		atomic_fetch_add(&os->abandoned, b->n);
	} else {
		atomic_fetch_add(&os->http_errors, 1);
		settle_acks(b); /* refused for good: a retry would not change it */
		server_message(&b->resp, msg, sizeof(msg));
		if (ratelimit_allow(&os->rl_fail, now, &held))
			tlog(TLOG_ERR, "otlp",
			     "%s: HTTP %ld: %s: %" PRIu64 " events failed (%" PRIu64
			     " such messages held back)",
			     os->url, status, msg[0] ? msg : "no message", b->n, held);
	}
	settle(os, b, 0);
	batch_free(b);
}

/* Starts what is due; returns ms until the next batch is due (or 1000). */
static long start_due(struct otlp_sink *os)
{
	uint64_t now = mono_ns();
	long next = 1000;
	struct batch **pp = &os->wait_head, *prev = NULL;
	while (*pp && os->ninflight < os->o.max_inflight) {
		struct batch *b = *pp;
		if (b->not_before > now) {
			long ms = (long)((b->not_before - now) / 1000000ull) + 1;
			if (ms < next)
				next = ms;
			prev = b;
			pp = &b->next;
			continue;
		}
		*pp = b->next;
		if (os->wait_tail == b)
			os->wait_tail = prev;
		os->nwait--;
		os->ninflight++;
		if (start_request(os, b)) {
			os->ninflight--;
			settle(os, b, 0);
			batch_free(b);
		}
	}
	return next;
}

/* Gives up everything not under way (stop deadline passed). mu held. */
static void abandon_waiting(struct otlp_sink *os)
{
	while (os->wait_head) {
		struct batch *b = os->wait_head;
		os->wait_head = b->next;
		os->nwait--;
		atomic_fetch_add(&os->abandoned, b->n);
		settle(os, b, 0);
		batch_free(b);
	}
	os->wait_tail = NULL;
}

static void *sender_main(void *arg)
{
	struct otlp_sink *os = arg;
	for (;;) {
		pthread_mutex_lock(&os->mu);
		if (os->stop) {
			abandon_waiting(os);
			if (!os->ninflight) {
				pthread_cond_broadcast(&os->idle);
				pthread_mutex_unlock(&os->mu);
				break;
			}
		}
		long wait_ms = start_due(os);
		pthread_mutex_unlock(&os->mu);

		int running = 0;
		curl_multi_perform(os->multi, &running);
		CURLMsg *m;
		int left;
		pthread_mutex_lock(&os->mu);
		while ((m = curl_multi_info_read(os->multi, &left)))
			if (m->msg == CURLMSG_DONE)
				finished(os, m->easy_handle, m->data.result);
		if (!os->nwait && !os->ninflight)
			pthread_cond_broadcast(&os->idle);
		bool due = os->wait_head && os->ninflight < os->o.max_inflight &&
			   os->wait_head->not_before <= mono_ns();
		pthread_mutex_unlock(&os->mu);
		if (!due)
			curl_multi_poll(os->multi, NULL, 0, (int)wait_ms, NULL);
	}
	return NULL;
}

struct sink *sink_otlp_new(const char *spec, const struct otlp_options *o, const char *node,
			   char *err, size_t errlen)
{
	struct otlp_sink *os = calloc(1, sizeof(*os));
	if (!os) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&os->mu, NULL);
	pthread_cond_init(&os->idle, NULL);
	os->base.ops = &otlp_ops;
	os->base.self_counted = true;
	os->o = *o;
	os->o.ca = strdup(o->ca ? o->ca : "");
	os->o.cert = strdup(o->cert ? o->cert : "");
	os->o.key = strdup(o->key ? o->key : "");
	os->node = strdup(node ? node : "");
	if (!os->o.ca || !os->o.cert || !os->o.key || !os->node) {
		otlp_destroy(&os->base);
		errno = ENOMEM;
		return NULL;
	}
	if (otlp_parse_url(spec, os->url, sizeof(os->url), err, errlen)) {
		otlp_destroy(&os->base);
		errno = EINVAL;
		return NULL;
	}
	if (gethostname(os->host, sizeof(os->host) - 1))
		os->host[0] = '\0';
	os->res = (struct otlp_resource){
	    .service_version = TAPIO_VERSION,
	    .host_name = os->host,
	    .node_name = os->node,
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	os->multi = curl_multi_init();
	if (!os->multi) {
		err_printf(err, errlen, "output: %s: libcurl could not be set up", spec);
		otlp_destroy(&os->base);
		errno = EIO;
		return NULL;
	}
	curl_multi_setopt(os->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o->max_inflight);
	int rc = pthread_create(&os->thread, NULL, sender_main, os);
	if (rc) {
		err_printf(err, errlen, "output: %s: %s", spec, strerror(rc));
		otlp_destroy(&os->base);
		errno = rc;
		return NULL;
	}
	os->started = true;
	return &os->base;
}
