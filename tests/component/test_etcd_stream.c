// SPDX-License-Identifier: Apache-2.0
/* The etcd collector's stream handling against a scripted etcd on loopback
 * (the JSON gateway's wire format): a queue that refuses events (nothing lost,
 * nothing repeated, also inside a multi-event revision), the /v3beta fallback,
 * a server that sends garbage, oversized values, and fragments. The real-etcd
 * tests are in tests/integration/test_etcd.py. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/collector.h"
#include "collectors/etcd/etcd.h"
#include "core/config.h"
#include "core/event.h"
#include "core/queue.h"
#include "core/state.h"
#include "util/clock.h"
#include "util/strbuf.h"
#include "tests/lib/loopback.h"
#include "tests/lib/tmpdir.h"
#include "tests/lib/test_env.h"
#include "core/ack.h"

/* ---- the scripted etcd ---- */

struct fake_ev {
	int64_t rev;
	char key[64];
	size_t value_len; /* value: value_len bytes of 'v' */
};

enum fake_mode {
	FAKE_NORMAL,
	FAKE_404_V3,	/* /v3/watch answers 404 (etcd 3.3): only /v3beta/watch works */
	FAKE_GARBAGE,	/* the first connection gets garbage, then closes */
	FAKE_FRAGMENTS, /* every event in its own response, fragment: true inside a revision */
	FAKE_SINGLE,	/* one revision per response (etcd once a watcher is synced) */
};

struct fake {
	int lfd;
	int port;
	pthread_t t;
	atomic_bool done;
	enum fake_mode mode;
	struct fake_ev ev[128];
	size_t nev;
	int64_t revision; /* the store's revision */
	/* what the clients asked for */
	int64_t starts[64];
	char paths[64][32];
	size_t nconn;
};

static void fake_add(struct fake *f, int64_t rev, const char *key, size_t value_len)
{
	struct fake_ev *e = &f->ev[f->nev++];
	e->rev = rev;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->value_len = value_len;
	if (rev > f->revision)
		f->revision = rev;
}

/* The fake's writes to a client that went away (the collector reconnects or
 * stops) must not raise SIGPIPE: MSG_NOSIGNAL, an EPIPE answer instead. */
static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void chunk(int fd, const char *p, size_t n)
{
	char h[32];
	int hl = snprintf(h, sizeof(h), "%zx\r\n", n);
	write_all(fd, h, (size_t)hl);
	write_all(fd, p, n);
	write_all(fd, "\r\n", 2);
}

static void event_json(struct strbuf *sb, const struct fake_ev *e)
{
	char *val = malloc(e->value_len + 1);
	memset(val, 'v', e->value_len);
	sb_puts(sb, "{\"kv\":{\"key\":\"");
	sb_base64(sb, e->key, strlen(e->key));
	sb_printf(sb,
		  "\",\"create_revision\":\"%lld\",\"mod_revision\":\"%lld\",\"version\":\"1\","
		  "\"value\":\"",
		  (long long)e->rev, (long long)e->rev);
	sb_base64(sb, val, e->value_len);
	sb_puts(sb, "\"}}");
	free(val);
}

/* Serves one connection: the request, then the stream. */
static void fake_conn(struct fake *f, int fd)
{
	char req[8192];
	size_t rl = 0;
	char *body = NULL;
	for (;;) {
		ssize_t r = read(fd, req + rl, sizeof(req) - 1 - rl);
		if (r <= 0)
			return;
		rl += (size_t)r;
		req[rl] = '\0';
		char *end = strstr(req, "\r\n\r\n");
		if (!end)
			continue;
		char *cl = strcasestr(req, "content-length:");
		size_t clen = cl ? strtoul(cl + 15, NULL, 10) : 0;
		if (rl >= (size_t)(end + 4 - req) + clen) {
			body = end + 4;
			break;
		}
	}
	char path[32] = "";
	sscanf(req, "POST %31s ", path);
	int64_t start = 0;
	cJSON *j = cJSON_Parse(body);
	const cJSON *sr = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(j, "create_request"), "start_revision");
	if (cJSON_IsString(sr))
		start = strtoll(sr->valuestring, NULL, 10);
	cJSON_Delete(j);
	size_t c = f->nconn++;
	if (c < 64) {
		f->starts[c] = start;
		snprintf(f->paths[c], sizeof(f->paths[c]), "%s", path);
	}

	if (f->mode == FAKE_404_V3 && strcmp(path, "/v3/watch") == 0) {
		const char r404[] = "HTTP/1.1 404 Not Found\r\nContent-Type: "
				    "text/plain\r\nContent-Length: 19\r\n\r\n404 page not found\n";
		write_all(fd, r404, sizeof(r404) - 1);
		return;
	}
	const char hdr[] = "HTTP/1.1 200 OK\r\nContent-Type: "
			   "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
	write_all(fd, hdr, sizeof(hdr) - 1);
	if (f->mode == FAKE_GARBAGE && c == 0) {
		const char g[] = "{\"result\":{\"created\":true}}\n{\"result\":{\"events\":[{"
				 "\"kv\":{\"key\":12}}]}}\n{not json at all}\n";
		chunk(fd, g, sizeof(g) - 1);
		write_all(fd, "0\r\n\r\n", 5);
		return;
	}

	struct strbuf sb = STRBUF_INIT;
	sb_printf(&sb, "{\"result\":{\"header\":{\"revision\":\"%lld\"},\"created\":true}}\n",
		  (long long)f->revision);
	chunk(fd, sb.buf, sb.len);
	/* events from start on, up to 3 revisions per response (or one event per
	 * response with fragment flags) */
	size_t i = 0;
	while (i < f->nev && f->ev[i].rev < start)
		i++;
	while (i < f->nev) {
		sb_reset(&sb);
		sb_printf(&sb, "{\"result\":{\"header\":{\"revision\":\"%lld\"},\"events\":[",
			  (long long)f->revision);
		int64_t first = f->ev[i].rev;
		size_t k = 0;
		if (f->mode == FAKE_FRAGMENTS) {
			event_json(&sb, &f->ev[i]);
			bool more = i + 1 < f->nev && f->ev[i + 1].rev == f->ev[i].rev;
			i++;
			sb_printf(&sb, "]%s}}\n", more ? ",\"fragment\":true" : "");
		} else {
			int64_t span = f->mode == FAKE_SINGLE ? 1 : 3;
			while (i < f->nev && f->ev[i].rev < first + span) {
				if (k++)
					sb_putc(&sb, ',');
				event_json(&sb, &f->ev[i]);
				i++;
			}
			sb_puts(&sb, "]}}\n");
		}
		chunk(fd, sb.buf, sb.len);
	}
	sb_reset(&sb);
	sb_printf(&sb, "{\"result\":{\"header\":{\"revision\":\"%lld\"}}}\n",
		  (long long)f->revision);
	chunk(fd, sb.buf, sb.len);
	sb_free(&sb);
	/* hold the stream open until the client goes away */
	while (!atomic_load(&f->done)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 50) > 0) {
			char b[256];
			if (read(fd, b, sizeof(b)) <= 0)
				break;
		}
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	while (!atomic_load(&f->done)) {
		struct pollfd p = {.fd = f->lfd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		fake_conn(f, fd);
		close(fd);
	}
	return NULL;
}

static void fake_start(struct fake *f)
{
	f->lfd = tl_listen_loopback(8, &f->port);
	cr_assert_geq(f->lfd, 0, "listen on loopback: %s", strerror(errno));
	cr_assert_eq(pthread_create(&f->t, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	atomic_store(&f->done, true);
	pthread_join(f->t, NULL);
	close(f->lfd);
}

/* ---- the collector under test and a consumer ---- */

struct got {
	int64_t rev[256];
	char key[256][64];
	size_t n;
};

/* Takes events off the queue until `want` have arrived or timeout_ms passed. */
static void drain(struct queue *q, struct got *g, size_t want, int timeout_ms)
{
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	while (g->n < want && mono_ns() < deadline) {
		size_t len;
		unsigned src;
		struct tapio_event *ev = queue_peek(q, &len, &src, 50);
		if (!ev)
			continue;
		cr_assert_eq(src, SRC_ETCD);
		cr_assert_eq(ev->type, TYPE_ETCD_WATCH);
		const char *rev = event_meta_get(ev, "revision");
		const char *key = event_meta_get(ev, "key");
		cr_assert_not_null(rev);
		cr_assert_not_null(key);
		cr_assert_lt(g->n, 256);
		g->rev[g->n] = strtoll(rev, NULL, 10);
		snprintf(g->key[g->n], sizeof(g->key[g->n]), "%s", key);
		g->n++;
		ack_settle_src(src, ev->ack); /* as a sink does once the event is safe */
		queue_release(q, ev);
	}
}

struct run {
	char dir[64];
	char endpoints[128];
	struct tcfg cfg;
	struct queue *q;
	struct collector *c;
};

/* Starts the collector on the fake; stored = the revision already in the
 * state dir (NULL: a fresh start, which watches from "now"). */
static void run_start(struct run *r, struct fake *f, size_t queue_size, uint64_t max_event,
		      const char *stored)
{
	memset(r, 0, sizeof(*r));
	cr_assert_not_null(tl_mkdtemp(r->dir, sizeof(r->dir), "etcd-stream"));
	if (stored)
		cr_assert_eq(state_write(r->dir, "etcd.revision", stored, strlen(stored)), 0);
	snprintf(r->endpoints, sizeof(r->endpoints), "http://127.0.0.1:%d", f->port);
	r->cfg.etcd.endpoints = r->endpoints;
	r->cfg.etcd.prefix = "/registry/";
	r->cfg.base.state_dir = r->dir;
	r->cfg.base.max_event_size = max_event;
	char err[256];
	r->c = etcd_collector_new(tenv(&r->cfg, SRC_ETCD), err, sizeof(err));
	cr_assert_not_null(r->c, "%s", err);
	r->q = queue_new(queue_size);
	cr_assert_not_null(r->q);
	cr_assert_eq(collector_start(r->c, r->q), 0);
}

/* Stops the collector; returns the revision it stored. */
static int64_t run_stop(struct run *r)
{
	collector_stop(r->c);
	collector_destroy(r->c); /* writes what is acknowledged */
	char buf[64] = "";
	ssize_t n = state_read(r->dir, "etcd.revision", buf, sizeof(buf));
	cr_assert_gt(n, 0);
	queue_free(r->q);
	char path[128];
	snprintf(path, sizeof(path), "%s/etcd.revision", r->dir);
	unlink(path);
	rmdir(r->dir);
	return strtoll(buf, NULL, 10);
}

/* Every event of the fake, in order, each once. */
static void expect_all(const struct fake *f, const struct got *g)
{
	size_t j = 0;
	for (size_t i = 0; i < f->nev; i++, j++) {
		cr_assert_lt(j, g->n, "event %zu (rev %lld) missing", i, (long long)f->ev[i].rev);
		cr_assert_eq(g->rev[j], f->ev[i].rev, "event %zu: rev %lld, want %lld", j,
			     (long long)g->rev[j], (long long)f->ev[i].rev);
		cr_assert_str_eq(g->key[j], f->ev[i].key);
	}
	cr_assert_eq(j, g->n, "%zu events, want %zu", g->n, j);
}

/* Revisions 2.., every seventh with three events (a transaction). */
static void fill(struct fake *f, int nrev)
{
	for (int r = 2; r < 2 + nrev; r++) {
		int n = r % 7 == 0 ? 3 : 1;
		for (int k = 0; k < n; k++) {
			char key[64];
			snprintf(key, sizeof(key), "/registry/pods/ns/p%d-%d", r, k);
			fake_add(f, r, key, 40);
		}
	}
}

/* Waits (up to 10 s) until the queue has refused an event. */
static void wait_refused(struct run *r)
{
	for (int i = 0; i < 1000 && !atomic_load(&r->c->n.refetched); i++)
		usleep(10000);
}

static struct fake f;
static struct got g;
static struct run r;

static void reset(void)
{
	memset(&f, 0, sizeof(f));
	memset(&g, 0, sizeof(g));
}

Test(etcd_stream, full_queue_loses_nothing_and_repeats_nothing, .timeout = 60)
{
	reset();
	fill(&f, 40);
	fake_start(&f);
	/* Resuming from revision 1 replays the whole history into a 4 KiB queue
	 * that holds about a dozen events; nobody reads it until it refuses. */
	run_start(&r, &f, 4096, 0, "1\n");
	wait_refused(&r);
	drain(r.q, &g, f.nev, 30000);
	collector_stop(r.c); /* the counters are final once the thread has ended */
	uint64_t refetched = atomic_load(&r.c->n.refetched);
	uint64_t lost = atomic_load(&r.c->n.dropped);
	uint64_t events = atomic_load(&r.c->n.events);
	uint64_t reconnects = atomic_load(&r.c->n.reconnects);
	int64_t cur = run_stop(&r);
	fake_stop(&f);
	expect_all(&f, &g);
	cr_assert_gt(refetched, 0, "the queue never refused: the test did not test anything");
	cr_assert_eq(lost, 0, "a refused event was counted as lost");
	cr_assert_geq(reconnects, 1);
	cr_assert_eq(events, f.nev);
	cr_assert_eq(cur, f.revision);
	/* every reconnect resumed after a revision that was fully enqueued */
	cr_assert_eq(f.starts[0], 2);
	for (size_t i = 1; i < f.nconn && i < 64; i++)
		cr_assert_geq(f.starts[i], f.starts[i - 1], "connection %zu went back to %lld", i,
			      (long long)f.starts[i]);
}

Test(etcd_stream, fragments_inside_a_revision_with_a_full_queue, .timeout = 60)
{
	reset();
	f.mode = FAKE_FRAGMENTS;
	fill(&f, 30);
	fake_start(&f);
	run_start(&r, &f, 4096, 0, "1\n");
	wait_refused(&r);
	drain(r.q, &g, f.nev, 30000);
	collector_stop(r.c); /* the counters are final once the thread has ended */
	uint64_t refetched = atomic_load(&r.c->n.refetched);
	uint64_t lost = atomic_load(&r.c->n.dropped);
	int64_t cur = run_stop(&r);
	fake_stop(&f);
	expect_all(&f, &g);
	cr_assert_gt(refetched, 0);
	cr_assert_eq(lost, 0);
	cr_assert_eq(cur, f.revision);
}

Test(etcd_stream, v3beta_fallback_on_404, .timeout = 30)
{
	reset();
	f.mode = FAKE_404_V3;
	fill(&f, 5);
	fake_start(&f);
	/* a fresh start watches from "now": healthy once the watch is created */
	run_start(&r, &f, 1 << 16, 0, NULL);
	for (int i = 0; i < 100 && !collector_healthy(r.c); i++)
		usleep(20000);
	cr_assert(collector_healthy(r.c));
	int64_t cur = run_stop(&r);
	fake_stop(&f);
	cr_assert_geq(f.nconn, 2);
	cr_assert_str_eq(f.paths[0], "/v3/watch");
	cr_assert_str_eq(f.paths[1], "/v3beta/watch");
	cr_assert_eq(f.starts[1], 0);
	cr_assert_eq(cur, f.revision); /* the created response's revision */
}

Test(etcd_stream, garbage_is_counted_and_the_stream_is_fetched_again, .timeout = 30)
{
	reset();
	f.mode = FAKE_GARBAGE;
	fill(&f, 8);
	fake_start(&f);
	run_start(&r, &f, 1 << 16, 0, "1\n");
	drain(r.q, &g, f.nev, 10000);
	collector_stop(r.c);
	uint64_t parse_errors = atomic_load(&r.c->n.parse_errors);
	uint64_t errors = atomic_load(&r.c->n.errors);
	int64_t cur = run_stop(&r);
	fake_stop(&f);
	expect_all(&f, &g);
	/* one malformed event (a numeric key), one response that is not JSON,
	 * which ends the stream */
	cr_assert_eq(parse_errors, 2, "parse_errors %lu", (unsigned long)parse_errors);
	cr_assert_geq(errors, 1);
	cr_assert_eq(f.starts[0], 2);
	cr_assert_eq(f.starts[1], 2, "the garbage must not move the cursor");
	cr_assert_eq(cur, f.revision);
}

Test(etcd_stream, oversized_values_are_skipped_and_counted, .timeout = 30)
{
	reset();
	f.mode = FAKE_SINGLE;
	fake_add(&f, 2, "/registry/a/small", 10);
	fake_add(&f, 3, "/registry/a/big", 3000);     /* over a 1024-byte limit */
	fake_add(&f, 4, "/registry/a/huge", 1000000); /* over the response limit too */
	fake_add(&f, 5, "/registry/a/after", 10);
	fake_start(&f);
	run_start(&r, &f, 1 << 16, 1024, "1\n");
	drain(r.q, &g, 2, 10000);
	usleep(200000);
	drain(r.q, &g, 3, 100);
	collector_stop(r.c);
	uint64_t oversize = atomic_load(&r.c->n.oversize);
	int64_t cur = run_stop(&r);
	fake_stop(&f);
	cr_assert_eq(g.n, 2);
	cr_assert_eq(g.rev[0], 2);
	cr_assert_eq(g.rev[1], 5);
	/* rev 3 for its value, rev 4 for the size of its whole response */
	cr_assert_eq(oversize, 2, "oversize %lu", (unsigned long)oversize);
	cr_assert_eq(cur, 5);
}

Test(etcd_stream, an_oversized_batch_is_counted_and_named, .timeout = 30)
{
	/* Revisions 2..4 come in one response that is over the limit: they are
	 * skipped as one piece, counted, and the missing revisions are named. */
	reset();
	fake_add(&f, 2, "/registry/a/small", 10);
	fake_add(&f, 3, "/registry/a/huge", 1000000);
	fake_add(&f, 4, "/registry/a/small2", 10);
	fake_add(&f, 5, "/registry/a/after", 10);
	fake_start(&f);
	run_start(&r, &f, 1 << 16, 1024, "1\n");
	char last[256] = "";
	drain(r.q, &g, 1, 10000);
	usleep(200000);
	drain(r.q, &g, 2, 100);
	collector_stop(r.c);
	uint64_t oversize = atomic_load(&r.c->n.oversize);
	collector_last_error(r.c, last, sizeof(last));
	int64_t cur = run_stop(&r);
	fake_stop(&f);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.rev[0], 5);
	cr_assert_eq(oversize, 1);
	cr_assert(strstr(last, "revisions 2..4 under the prefix may be missing"), "%s", last);
	cr_assert_eq(cur, 5);
}
