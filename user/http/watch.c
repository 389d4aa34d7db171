// SPDX-License-Identifier: Apache-2.0
/* The shared watch-stream client: framers (pure functions over a byte stream)
 * and one libcurl request whose body is fed through a framer. */
#include "http/watch.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "util/clock.h"

#define FRAMER_DEFAULT_MAX ((size_t)16 << 20)
#define ERR_BODY_MAX ((size_t)64 << 10)

/* ---- framers ---- */

int framer_init(struct framer *f, enum framing mode, size_t max)
{
	if (!f)
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	if (mode != FRAME_LINES && mode != FRAME_JSON_OBJECTS && mode != FRAME_WHOLE)
		return -EINVAL;
	f->mode = mode;
	f->max = max ? max : FRAMER_DEFAULT_MAX;
	return 0;
}

void framer_reset(struct framer *f)
{
	f->len = 0;
	f->depth = 0;
	f->in_str = false;
	f->esc = false;
	f->skipping = false;
}

void framer_free(struct framer *f)
{
	if (!f)
		return;
	free(f->buf);
	f->buf = NULL;
	f->len = f->cap = 0;
	framer_reset(f);
}

/* Appends n bytes to the partial message. The caller has checked that the
 * result stays within f->max. */
static int buf_add(struct framer *f, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (f->len + n > f->cap) {
		size_t cap = f->cap ? f->cap : 4096;
		while (cap < f->len + n)
			cap *= 2;
		char *nb = realloc(f->buf, cap);
		if (!nb)
			return -ENOMEM;
		f->buf = nb;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, p, n);
	f->len += n;
	return 0;
}

/* Adds the tail of a message that is not complete yet; switches to skipping
 * when the message has grown past max. */
static int keep_partial(struct framer *f, const char *p, size_t n)
{
	/* A partial line may hold one more byte: a '\r' dropped at its end. */
	size_t limit = f->mode == FRAME_LINES && f->max < SIZE_MAX ? f->max + 1 : f->max;
	if (f->skipping)
		return 0;
	if (f->len + n > limit) {
		f->oversize++;
		f->skipping = true;
		f->len = 0;
		return 0;
	}
	return buf_add(f, p, n);
}

/* A message ends with p[0..n) (the part not yet in the buffer). Delivers it
 * unless it is oversized or being skipped. */
static int deliver(struct framer *f, const char *p, size_t n, frame_fn cb, void *ctx)
{
	int rc = 0;

	if (f->skipping) {
		f->skipping = false;
		f->len = 0;
		return 0;
	}
	if (f->len + n > f->max) {
		f->oversize++;
		f->len = 0;
		return 0;
	}
	if (f->len == 0) {
		rc = cb(ctx, p, n);
	} else {
		rc = buf_add(f, p, n);
		if (rc == 0)
			rc = cb(ctx, f->buf, f->len);
		f->len = 0;
	}
	return rc;
}

static int feed_lines(struct framer *f, const char *p, size_t n, frame_fn cb, void *ctx)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		if (!nl)
			return keep_partial(f, p, n);
		size_t part = (size_t)(nl - p);
		if (f->skipping) {
			deliver(f, p, part, cb, ctx); /* ends the skip */
		} else {
			/* Drop a trailing '\r' (CRLF streams); skip empty lines. */
			size_t take = part;
			if (take > 0 && p[take - 1] == '\r')
				take--;
			else if (take == 0 && f->len > 0 && f->buf[f->len - 1] == '\r')
				f->len--;
			if (f->len + take > 0) {
				int rc = deliver(f, p, take, cb, ctx);
				if (rc)
					return rc;
			}
		}
		p = nl + 1;
		n -= part + 1;
	}
	return 0;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int feed_json(struct framer *f, const char *p, size_t n, frame_fn cb, void *ctx)
{
	size_t i = 0;
	/* Start of the current object's bytes in p (not yet in the buffer). */
	size_t start = 0;
	bool in_obj = f->depth > 0;

	while (i < n) {
		char c = p[i];
		if (!in_obj) {
			if (c == '{') {
				in_obj = true;
				f->depth = 1;
				f->in_str = f->esc = false;
				start = i;
			} else if (!is_ws(c)) {
				f->junk++;
			}
			i++;
			continue;
		}
		if (f->in_str) {
			/* Fast path: jump to the next quote or backslash. */
			if (f->esc) {
				f->esc = false;
			} else if (c == '\\') {
				f->esc = true;
			} else if (c == '"') {
				f->in_str = false;
			} else {
				const char *q = p + i + 1;
				size_t left = n - i - 1;
				const char *a = memchr(q, '"', left);
				const char *b = memchr(q, '\\', a ? (size_t)(a - q) : left);
				const char *stop = b ? b : a;
				i = stop ? (size_t)(stop - p) : n;
				continue;
			}
			i++;
			continue;
		}
		if (c == '"') {
			f->in_str = true;
		} else if (c == '{') {
			if (f->depth < INT_MAX)
				f->depth++;
		} else if (c == '}') {
			if (--f->depth == 0) {
				in_obj = false;
				int rc = deliver(f, p + start, i + 1 - start, cb, ctx);
				if (rc)
					return rc;
			}
		}
		i++;
	}
	if (in_obj)
		return keep_partial(f, p + start, n - start);
	return 0;
}

static int feed_whole(struct framer *f, const char *p, size_t n)
{
	return keep_partial(f, p, n);
}

int framer_feed(struct framer *f, const char *p, size_t n, frame_fn cb, void *ctx)
{
	if (n == 0)
		return 0;
	switch (f->mode) {
	case FRAME_LINES:
		return feed_lines(f, p, n, cb, ctx);
	case FRAME_JSON_OBJECTS:
		return feed_json(f, p, n, cb, ctx);
	case FRAME_WHOLE:
		return feed_whole(f, p, n);
	}
	return -EINVAL;
}

/* True when the stream has stopped inside a message. */
static bool framer_partial(const struct framer *f)
{
	switch (f->mode) {
	case FRAME_LINES:
		return f->len > 0 || f->skipping;
	case FRAME_JSON_OBJECTS:
		return f->depth > 0;
	case FRAME_WHOLE:
		return false;
	}
	return false;
}

int framer_finish(struct framer *f, frame_fn cb, void *ctx, bool *truncated)
{
	int rc = 0;
	bool trunc = false;

	switch (f->mode) {
	case FRAME_LINES:
		if (!f->skipping && f->len > 0) {
			if (f->buf[f->len - 1] == '\r')
				f->len--;
			if (f->len > f->max)
				f->oversize++;
			else if (f->len > 0)
				rc = cb(ctx, f->buf, f->len);
		}
		break;
	case FRAME_JSON_OBJECTS:
		trunc = f->depth > 0 && !f->skipping;
		break;
	case FRAME_WHOLE:
		if (!f->skipping)
			rc = cb(ctx, f->buf ? f->buf : "", f->len);
		break;
	}
	framer_reset(f);
	if (truncated)
		*truncated = trunc;
	return rc;
}

/* ---- HTTP stream ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int watch_global_init(void)
{
	pthread_once(&curl_once, curl_init_once);
	return curl_init_rc == CURLE_OK ? 0 : -EIO;
}

struct xfer {
	const struct watch_req *req;
	struct watch_result *res;
	CURL *h;
	struct framer f;
	long status;	  /* 0 until the first body byte */
	bool ok_status;	  /* 2xx */
	int err;	  /* framer/ENOMEM error */
	uint64_t rx_mono; /* monotonic ns of the last body byte (or the start) */
};

static int count_msg(void *ctx, const char *msg, size_t len)
{
	struct xfer *x = ctx;
	int rc = x->req->on_msg ? x->req->on_msg(x->req->ctx, msg, len) : 0;
	if (rc == 0)
		x->res->messages++;
	else
		x->res->cb_err = rc;
	return rc;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	if (x->req->stop && atomic_load_explicit(x->req->stop, memory_order_relaxed)) {
		x->res->stopped = true;
		return 0;
	}
	if (x->status == 0) {
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
		x->ok_status = x->status >= 200 && x->status < 300;
	}
	x->res->bytes += n;
	x->rx_mono = mono_ns();
	if (!x->ok_status) {
		size_t room = ERR_BODY_MAX - x->res->err_body_len;
		size_t take = n < room ? n : room;
		if (take > 0) {
			char *nb = realloc(x->res->err_body, x->res->err_body_len + take + 1);
			if (!nb) {
				x->err = -ENOMEM;
				return 0;
			}
			memcpy(nb + x->res->err_body_len, p, take);
			x->res->err_body = nb;
			x->res->err_body_len += take;
			nb[x->res->err_body_len] = '\0';
		}
		return n;
	}
	uint64_t before = x->f.oversize;
	int rc = framer_feed(&x->f, p, n, count_msg, x);
	if (x->f.oversize != before && x->req->on_oversize)
		for (uint64_t i = before; i < x->f.oversize; i++)
			x->req->on_oversize(x->req->ctx, x->f.max);
	if (rc) {
		if (rc == -ENOMEM && !x->res->cb_err)
			x->err = rc;
		return 0;
	}
	return n;
}

static int on_progress(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
	struct xfer *x = ud;
	(void)dlt, (void)dln, (void)ult, (void)uln;
	if (x->req->stop && atomic_load_explicit(x->req->stop, memory_order_relaxed)) {
		x->res->stopped = true;
		return 1;
	}
	return 0;
}

/* Opens curl's sockets with SOCK_CLOEXEC, so that no child inherits them. */
static curl_socket_t open_cloexec(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	(void)ud, (void)purpose;
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
		return -EKEYREJECTED;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
		return -ECONNRESET;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* Sets a blob option from a NUL-terminated PEM string. */
static CURLcode set_blob(CURL *h, CURLoption opt, const char *pem)
{
	struct curl_blob b = {.data = (void *)pem, .len = strlen(pem), .flags = CURL_BLOB_COPY};
	return curl_easy_setopt(h, opt, &b);
}

static int setup_tls(CURL *h, const struct watch_tls *t)
{
	CURLcode c = CURLE_OK;

	if (!t)
		return 0;
	if (t->ca_file && *t->ca_file)
		c = curl_easy_setopt(h, CURLOPT_CAINFO, t->ca_file);
	else if (t->ca_pem && *t->ca_pem)
		c = set_blob(h, CURLOPT_CAINFO_BLOB, t->ca_pem);
	if (c == CURLE_OK && t->cert_file && *t->cert_file)
		c = curl_easy_setopt(h, CURLOPT_SSLCERT, t->cert_file);
	else if (c == CURLE_OK && t->cert_pem && *t->cert_pem)
		c = set_blob(h, CURLOPT_SSLCERT_BLOB, t->cert_pem);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
	if (c == CURLE_OK && t->key_file && *t->key_file)
		c = curl_easy_setopt(h, CURLOPT_SSLKEY, t->key_file);
	else if (c == CURLE_OK && t->key_pem && *t->key_pem)
		c = set_blob(h, CURLOPT_SSLKEY_BLOB, t->key_pem);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	if (c == CURLE_OK && t->insecure) {
		c = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		if (c == CURLE_OK)
			c = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return c == CURLE_OK ? 0 : -ENOTSUP;
}

static void first_line(char *dst, size_t cap, const char *s, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; i < n && j + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n' || c == '\r')
			break;
		dst[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[j] = '\0';
}

/* The request headers: Accept, Content-Type, Authorization, no Expect. NULL
 * when out of memory. */
static struct curl_slist *request_headers(const struct watch_req *req)
{
	struct curl_slist *hdrs = NULL;
	char hbuf[4096];

	snprintf(hbuf, sizeof(hbuf), "Accept: %s", req->accept ? req->accept : "application/json");
	hdrs = curl_slist_append(hdrs, hbuf);
	if (req->body) {
		snprintf(hbuf, sizeof(hbuf), "Content-Type: %s",
			 req->content_type ? req->content_type : "application/json");
		hdrs = curl_slist_append(hdrs, hbuf);
	}
	if (req->bearer_token && *req->bearer_token) {
		size_t tl = strlen(req->bearer_token) + 32;
		char *auth = malloc(tl);
		if (auth) {
			snprintf(auth, tl, "Authorization: Bearer %s", req->bearer_token);
			hdrs = curl_slist_append(hdrs, auth);
			explicit_bzero(auth, tl);
			free(auth);
		}
	}
	return curl_slist_append(hdrs, "Expect:");
}

/* The easy handle's options for req. 0, or setup_tls()'s error. */
static int setup_request(struct xfer *x, struct curl_slist *hdrs, char *errbuf)
{
	const struct watch_req *req = x->req;
	CURL *h = x->h;

	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_cloexec);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	/* req->idle_timeout_s is judged in transfer(), not with curl's low
	 * speed limit: that one wakes the transfer every second. */
	if (req->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	if (req->method && strcmp(req->method, "GET") != 0) {
		if (strcmp(req->method, "POST") == 0)
			curl_easy_setopt(h, CURLOPT_POST, 1L);
		else
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	}
	if (req->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->body));
	}
	return setup_tls(h, req->tls);
}

/* ---- stop notification ----
 *
 * A thread in a transfer or in sleep_or_stop() sleeps until its socket has
 * data, curl's own timers, watch_stop_notify() or WAKE_BACKSTOP_MS, not in
 * 100 ms slices: an idle watch costs no periodic wake-ups (its idle timeout
 * is a deadline of the poll, not curl's once-a-second speed check). A transfer is
 * listed while it runs, so that a notify can wake its multi handle
 * (curl_multi_wakeup, thread-safe); sleepers wait on one condition
 * variable. Whoever sets a stop flag then calls watch_stop_notify(); the
 * sleeper re-checks its own flag. A forgotten notify costs at most
 * WAKE_BACKSTOP_MS of stop latency. */

#define WAKE_BACKSTOP_MS 30000

struct active {
	CURLM *m;
	struct active *next;
};

static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond;
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static struct active *active_head;

static void wake_init(void)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&wake_cond, &a);
	pthread_condattr_destroy(&a);
}

void watch_stop_notify(void)
{
	pthread_once(&wake_once, wake_init);
	pthread_mutex_lock(&wake_lock);
	for (struct active *a = active_head; a; a = a->next)
		curl_multi_wakeup(a->m);
	pthread_cond_broadcast(&wake_cond);
	pthread_mutex_unlock(&wake_lock);
}

static void active_add(struct active *a)
{
	pthread_mutex_lock(&wake_lock);
	a->next = active_head;
	active_head = a;
	pthread_mutex_unlock(&wake_lock);
}

static void active_remove(struct active *a)
{
	pthread_mutex_lock(&wake_lock);
	for (struct active **p = &active_head; *p; p = &(*p)->next) {
		if (*p == a) {
			*p = a->next;
			break;
		}
	}
	pthread_mutex_unlock(&wake_lock);
}

/* One easy handle driven by a multi handle; *stop is seen as soon as
 * watch_stop_notify() is called (within WAKE_BACKSTOP_MS without it), even
 * while the stream is idle. Returns the transfer's result. */
static CURLcode transfer(struct xfer *x, CURLM *m, char *errbuf)
{
	const struct watch_req *req = x->req;
	CURLcode cc = CURLE_OK;
	struct active self = {.m = m};
	uint64_t idle_ns =
	    req->idle_timeout_s > 0 ? (uint64_t)req->idle_timeout_s * 1000000000ull : 0;

	x->rx_mono = mono_ns();
	curl_multi_add_handle(m, x->h);
	active_add(&self); /* before the first look at *stop: no notify is missed */
	for (;;) {
		int running = 0;
		CURLMcode mc = curl_multi_perform(m, &running);
		if (mc != CURLM_OK) {
			cc = CURLE_OUT_OF_MEMORY;
			snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_multi_strerror(mc));
			break;
		}
		if (!running) {
			int left;
			CURLMsg *msg;
			cc = CURLE_GOT_NOTHING;
			while ((msg = curl_multi_info_read(m, &left)))
				if (msg->msg == CURLMSG_DONE)
					cc = msg->data.result;
			break;
		}
		if (req->stop && atomic_load_explicit(req->stop, memory_order_relaxed)) {
			x->res->stopped = true;
			cc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		int wait_ms = WAKE_BACKSTOP_MS;
		if (idle_ns) {
			uint64_t now = mono_ns(), end = x->rx_mono + idle_ns;
			if (now >= end) {
				cc = CURLE_OPERATION_TIMEDOUT;
				snprintf(errbuf, CURL_ERROR_SIZE,
					 "no byte received for %ld s (idle timeout)",
					 req->idle_timeout_s);
				break;
			}
			if (end - now < (uint64_t)wait_ms * 1000000ull)
				wait_ms = (int)((end - now + 999999ull) / 1000000ull);
		}
		mc = curl_multi_poll(m, NULL, 0, wait_ms, NULL);
		if (mc != CURLM_OK) {
			cc = CURLE_OUT_OF_MEMORY;
			snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_multi_strerror(mc));
			break;
		}
	}
	active_remove(&self);
	curl_multi_remove_handle(m, x->h);
	return cc;
}

/* The result of a finished transfer: res filled, 0 or a negative errno. */
static int transfer_result(struct xfer *x, CURLcode cc, const char *errbuf)
{
	struct watch_result *res = x->res;
	int rc;

	res->curl_code = (int)cc;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &res->http_status);
	if (x->status == 0) {
		x->status = res->http_status;
		x->ok_status = x->status >= 200 && x->status < 300;
	}

	if (res->stopped) {
		rc = -ECANCELED;
		snprintf(res->error, sizeof(res->error), "stopped");
	} else if (res->cb_err) {
		rc = res->cb_err;
		snprintf(res->error, sizeof(res->error), "stream handler stopped the stream: %s",
			 strerror(-rc));
	} else if (x->err) {
		rc = x->err;
		snprintf(res->error, sizeof(res->error), "%s", strerror(-rc));
	} else if (res->http_status != 0 && !x->ok_status) {
		char line[160];
		first_line(line, sizeof(line), res->err_body ? res->err_body : "",
			   res->err_body_len);
		rc = -EPROTO;
		snprintf(res->error, sizeof(res->error), "HTTP %ld%s%s", res->http_status,
			 *line ? ": " : "", line);
	} else if (cc != CURLE_OK) {
		rc = curl_errno(cc);
		res->truncated = framer_partial(&x->f);
		snprintf(res->error, sizeof(res->error), "%s",
			 *errbuf ? errbuf : curl_easy_strerror(cc));
	} else {
		rc = framer_finish(&x->f, count_msg, x, &res->truncated);
		if (rc)
			snprintf(res->error, sizeof(res->error),
				 "stream handler stopped the stream: %s", strerror(-rc));
	}
	res->oversize = x->f.oversize;
	res->junk = x->f.junk;
	return rc;
}

int watch_run(const struct watch_req *req, struct watch_result *res)
{
	struct xfer x = {.req = req, .res = res};
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLM *m = NULL;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (!req || !req->url) {
		snprintf(res->error, sizeof(res->error), "no URL");
		return -EINVAL;
	}
	if (req->stop && atomic_load(req->stop)) {
		res->stopped = true;
		snprintf(res->error, sizeof(res->error), "stopped");
		return -ECANCELED;
	}
	rc = watch_global_init();
	if (rc) {
		snprintf(res->error, sizeof(res->error), "curl_global_init failed");
		return rc;
	}
	rc = framer_init(&x.f, req->framing, req->max_msg);
	if (rc) {
		snprintf(res->error, sizeof(res->error), "bad framing %d", (int)req->framing);
		return rc;
	}
	x.h = curl_easy_init();
	m = req->conn && req->conn->multi ? req->conn->multi : curl_multi_init();
	if (req->conn)
		req->conn->multi = m;
	if (!x.h || !m) {
		rc = -ENOMEM;
		snprintf(res->error, sizeof(res->error), "curl init: out of memory");
		goto cleanup;
	}
	hdrs = request_headers(req);
	if (!hdrs) {
		rc = -ENOMEM;
		snprintf(res->error, sizeof(res->error), "headers: out of memory");
		goto cleanup;
	}
	rc = setup_request(&x, hdrs, errbuf);
	if (rc) {
		snprintf(res->error, sizeof(res->error),
			 "TLS options not supported by this libcurl");
		goto cleanup;
	}
	rc = transfer_result(&x, transfer(&x, m, errbuf), errbuf);

cleanup:
	if (m && !req->conn)
		curl_multi_cleanup(m);
	if (x.h)
		curl_easy_cleanup(x.h);
	curl_slist_free_all(hdrs);
	framer_free(&x.f);
	return rc;
}

void watch_conn_close(struct watch_conn *c)
{
	if (!c || !c->multi)
		return;
	curl_multi_cleanup(c->multi);
	c->multi = NULL;
}

void watch_result_free(struct watch_result *res)
{
	if (!res)
		return;
	free(res->err_body);
	res->err_body = NULL;
	res->err_body_len = 0;
}

/* ---- sleeping ---- */

bool sleep_or_stop(unsigned ms, atomic_bool *stop)
{
	struct timespec end;
	pthread_once(&wake_once, wake_init);
	clock_gettime(CLOCK_MONOTONIC, &end);
	uint64_t ns = (uint64_t)end.tv_nsec + (uint64_t)ms * 1000000ULL;
	end.tv_sec += (time_t)(ns / 1000000000ULL);
	end.tv_nsec = (long)(ns % 1000000000ULL);
	pthread_mutex_lock(&wake_lock);
	/* the flag is read under the lock that a notify takes: set before the
	 * notify, it is seen here or the broadcast comes after the wait began */
	while (!(stop && atomic_load(stop))) {
		struct timespec backstop;
		clock_gettime(CLOCK_MONOTONIC, &backstop);
		if (backstop.tv_sec > end.tv_sec ||
		    (backstop.tv_sec == end.tv_sec && backstop.tv_nsec >= end.tv_nsec))
			break;
		backstop.tv_sec += WAKE_BACKSTOP_MS / 1000;
		const struct timespec *until =
		    backstop.tv_sec < end.tv_sec ||
			    (backstop.tv_sec == end.tv_sec && backstop.tv_nsec < end.tv_nsec)
			? &backstop
			: &end;
		pthread_cond_timedwait(&wake_cond, &wake_lock, until);
	}
	pthread_mutex_unlock(&wake_lock);
	return stop && atomic_load(stop);
}
