// SPDX-License-Identifier: Apache-2.0
/* metrics_render against a registry of fake collectors, a real queue and a
 * fake sink: the text is parsed back and every value checked against what was
 * produced. The probes' logic, and the probes and /metrics over real HTTP
 * (libcurl against the libmicrohttpd server). */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/test_env.h"
#include "core/collector.h"
#include "core/event.h"
#include "metrics/metrics.h"
#include "core/queue.h"
#include "sink/sink.h"
#include "util/strbuf.h"

/* ---- a tiny collector ---- */

struct fake {
	struct collector c;
	uint64_t drops_exec, drops_connect;
};

static int fake_start(struct collector *c, struct queue *q)
{
	(void)q;
	atomic_store(&c->healthy, true);
	return 0;
}

static void fake_stop(struct collector *c)
{
	(void)c;
}

static void fake_destroy(struct collector *c)
{
	free(c);
}

static void fake_counters(struct collector *c, counter_fn fn, void *ctx)
{
	struct fake *f = (struct fake *)c;

	/* Interleaved on purpose: the renderer must group families. */
	fn(ctx, "kernel_drops", "type=\"process.exec\"", f->drops_exec);
	fn(ctx, "programs_off", "", 1);
	fn(ctx, "kernel_drops", "type=\"tcp.connect\"", f->drops_connect);
	fn(ctx, "up", "resource=\"pods\"", 1);
	fn(ctx, "up", "resource=\"nodes\"", 0);
}

static const struct collector_ops kernel_ops = {.name = "kernel",
						.liveness = true,
						.start = fake_start,
						.stop = fake_stop,
						.destroy = fake_destroy,
						.counters = fake_counters};
static const struct collector_ops k8s_ops = {
    .name = "k8s", .start = fake_start, .stop = fake_stop, .destroy = fake_destroy};

static struct fake *fake_new(const struct collector_ops *ops)
{
	struct fake *f = calloc(1, sizeof(*f));

	collector_init(&f->c, ops, 0);
	return f;
}

/* ---- a tiny sink ---- */

struct fsink {
	struct sink s;
	bool up;
};

static bool fs_connected(struct sink *s)
{
	return ((struct fsink *)s)->up;
}

static void fs_counters(struct sink *s, counter_fn fn, void *ctx)
{
	(void)s;
	fn(ctx, "published", "", 42);
	fn(ctx, "reconnects", "", 3);
}

static const struct sink_ops fsink_ops = {
    .name = "nats", .connected = fs_connected, .counters = fs_counters};

/* ---- a parser for the exposition text ---- */

#define MAXS 512
struct parsed {
	char key[MAXS][400]; /* name{labels} */
	double val[MAXS];
	size_t n;
	char fam[64][80];
	char type[64][16];
	size_t nfam;
};

/* Checks the format as it goes: HELP then TYPE before a family's samples,
 * each family once, samples only of the current family. */
static void parse(const char *text, struct parsed *p)
{
	const char *line = text;
	char cur[80] = "";

	memset(p, 0, sizeof(*p));
	while (*line) {
		const char *nl = strchr(line, '\n');
		char l[400];

		cr_assert_not_null(nl, "last line without newline");
		cr_assert_lt((size_t)(nl - line), sizeof(l));
		memcpy(l, line, (size_t)(nl - line));
		l[nl - line] = '\0';
		line = nl + 1;
		if (!strncmp(l, "# HELP ", 7)) {
			char name[80];

			cr_assert_eq(sscanf(l + 7, "%79s", name), 1);
			for (size_t i = 0; i < p->nfam; i++)
				cr_assert_str_neq(p->fam[i], name, "family %s twice", name);
			cr_assert_lt(p->nfam, 64);
			snprintf(p->fam[p->nfam], sizeof(p->fam[0]), "%s", name);
			snprintf(cur, sizeof(cur), "%s", name);
			cr_assert_gt(strlen(l), 8 + strlen(name), "HELP without text: %s", l);
			continue;
		}
		if (!strncmp(l, "# TYPE ", 7)) {
			char name[80], type[16];

			cr_assert_eq(sscanf(l + 7, "%79s %15s", name, type), 2);
			cr_assert_str_eq(name, cur, "TYPE for %s not after its HELP", name);
			cr_assert(!strcmp(type, "counter") || !strcmp(type, "gauge"), "%s", l);
			snprintf(p->type[p->nfam++], sizeof(p->type[0]), "%s", type);
			continue;
		}
		cr_assert_neq(l[0], '#', "unexpected comment %s", l);
		char *sp = strrchr(l, ' ');
		cr_assert_not_null(sp, "sample without value: %s", l);
		*sp = '\0';
		size_t nlen = strcspn(l, "{");
		cr_assert(strlen(cur) == nlen && !strncmp(l, cur, nlen),
			  "sample %s outside its family (%s)", l, cur);
		if (!strcmp(p->type[p->nfam - 1], "counter"))
			cr_assert(nlen > 6 && !strncmp(l + nlen - 6, "_total", 6),
				  "counter %s without _total", l);
		char *end;
		cr_assert_lt(p->n, MAXS);
		p->val[p->n] = strtod(sp + 1, &end);
		cr_assert_eq(*end, '\0', "bad value in %s %s", l, sp + 1);
		for (size_t i = 0; i < p->n; i++)
			cr_assert_str_neq(p->key[i], l, "sample %s twice", l);
		snprintf(p->key[p->n++], sizeof(p->key[0]), "%s", l);
	}
}

static double get(const struct parsed *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->key[i], key))
			return p->val[i];
	cr_assert_fail("no sample %s", key);
	return -1;
}

static bool has(const struct parsed *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->key[i], key))
			return true;
	return false;
}

struct world {
	struct registry *reg;
	struct queue *q;
	struct fake *kernel, *k8s;
	struct fsink sink;
	struct metrics_view v;
};

static void world_init(struct world *w)
{
	char big[8192] = {0};

	memset(w, 0, sizeof(*w));
	w->reg = registry_new();
	w->q = queue_new(16384);
	cr_assert(w->reg && w->q);
	w->kernel = fake_new(&kernel_ops);
	w->k8s = fake_new(&k8s_ops);
	cr_assert_eq(registry_add(w->reg, &w->kernel->c), 0);
	cr_assert_eq(registry_add(w->reg, &w->k8s->c), 0);
	cr_assert_eq(registry_start_all(w->reg, w->q, NULL), 0);
	w->kernel->drops_exec = 7;
	w->kernel->drops_connect = 2;
	atomic_store(&w->kernel->c.n.events, 3);
	atomic_store(&w->k8s->c.n.parse_errors, 5);
	atomic_store(&w->k8s->c.n.reconnects, 4);

	/* Real traffic: 3 kernel events, 2 k8s events, one oversize k8s event
	 * (more than half the arena), then fill the queue until cni drops. */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(event_emit(w->q, SRC_KERNEL, TYPE_PROCESS_EXEC, FMT_TEXT, 1, NULL, 0,
					"abcd", 4),
			     0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(
		    event_emit(w->q, SRC_K8S, TYPE_K8S_WATCH, FMT_JSON, 1, NULL, 0, "{}", 2), 0);
	cr_assert_neq(
	    event_emit(w->q, SRC_K8S, TYPE_K8S_WATCH, FMT_JSON, 1, NULL, 0, big, sizeof(big)), 0);
	int full = 0;
	for (int i = 0; i < 200 && !full; i++)
		full =
		    event_emit(w->q, SRC_CNI, TYPE_CNI_LOG, FMT_TEXT, 1, NULL, 0, big, 1000) != 0;
	cr_assert(full, "the queue never filled");

	w->sink.s.ops = &fsink_ops;
	w->sink.up = true;
	atomic_store(&w->sink.s.written, 40);
	atomic_store(&w->sink.s.acked, 39);
	atomic_store(&w->sink.s.failed, 1);
	atomic_store(&w->sink.s.retries, 6);
	w->v = (struct metrics_view){
	    .reg = w->reg, .q = w->q, .sink = &w->sink.s, .version = "v1.2-\"x\""};
}

static void world_free(struct world *w)
{
	registry_stop_all(w->reg);
	registry_free(w->reg);
	queue_free(w->q);
}

Test(metrics, render_matches_what_was_produced)
{
	struct world w;
	struct strbuf sb = STRBUF_INIT;
	struct parsed *p = malloc(sizeof(*p));
	struct queue_src_stats cni;

	world_init(&w);
	cr_assert_eq(metrics_render(&w.v, &sb), 0);
	parse(sb.buf, p);

	cr_assert_eq(get(p, "tapio_build_info{version=\"v1.2-\\\"x\\\"\"}"), 1);
	cr_assert_eq(get(p, "tapio_events_total{source=\"kernel\"}"), 3);
	cr_assert_eq(get(p, "tapio_events_total{source=\"k8s\"}"), 2);
	cr_assert_eq(get(p, "tapio_events_total{source=\"etcd\"}"), 0);
	queue_stats(w.q, SRC_CNI, &cni);
	cr_assert_gt(cni.committed, 0);
	cr_assert_eq(get(p, "tapio_events_total{source=\"cni\"}"), cni.committed);
	cr_assert_eq(get(p, "tapio_event_bytes_total{source=\"cni\"}"), cni.bytes);
	cr_assert_eq(get(p, "tapio_queue_dropped_total{source=\"cni\",reason=\"full\"}"),
		     cni.dropped_full);
	cr_assert_eq(cni.dropped_full, 1);
	cr_assert_eq(get(p, "tapio_queue_dropped_total{source=\"k8s\",reason=\"oversize\"}"), 1);
	cr_assert_eq(get(p, "tapio_queue_dropped_total{source=\"k8s\",reason=\"full\"}"), 0);
	cr_assert_eq(get(p, "tapio_queue_dropped_total{source=\"kernel\",reason=\"timeout\"}"), 0);
	cr_assert_eq(get(p, "tapio_queue_used_bytes"), queue_used(w.q));
	cr_assert_gt(get(p, "tapio_queue_used_bytes"), 8192);
	cr_assert_eq(get(p, "tapio_queue_capacity_bytes"), 16384);

	cr_assert_eq(get(p, "tapio_collector_events_total{collector=\"kernel\"}"), 3);
	cr_assert_eq(get(p, "tapio_collector_parse_errors_total{collector=\"k8s\"}"), 5);
	cr_assert_eq(get(p, "tapio_collector_reconnects_total{collector=\"k8s\"}"), 4);
	cr_assert_eq(get(p, "tapio_collector_errors_total{collector=\"k8s\"}"), 0);
	cr_assert_eq(get(p, "tapio_collector_oversize_total{collector=\"kernel\"}"), 0);
	cr_assert_eq(get(p, "tapio_collector_dropped_total{collector=\"kernel\"}"), 0);
	cr_assert_eq(get(p, "tapio_collector_healthy{collector=\"kernel\"}"), 1);
	cr_assert_eq(get(p, "tapio_collector_healthy{collector=\"k8s\"}"), 1);
	cr_assert_eq(get(p, "tapio_kernel_drops_total{collector=\"kernel\",type=\"process.exec\"}"),
		     7);
	cr_assert_eq(get(p, "tapio_kernel_drops_total{collector=\"kernel\",type=\"tcp.connect\"}"),
		     2);
	cr_assert_eq(get(p, "tapio_programs_off_total{collector=\"kernel\"}"), 1);
	cr_assert_eq(get(p, "tapio_up{collector=\"kernel\",resource=\"pods\"}"), 1);
	cr_assert_eq(get(p, "tapio_up{collector=\"kernel\",resource=\"nodes\"}"), 0);
	cr_assert_not(has(p, "tapio_up_total{collector=\"kernel\",resource=\"pods\"}"));

	cr_assert_eq(get(p, "tapio_sink_written_total{sink=\"nats\"}"), 40);
	cr_assert_eq(get(p, "tapio_sink_acked_total{sink=\"nats\"}"), 39);
	cr_assert_eq(get(p, "tapio_sink_failed_total{sink=\"nats\"}"), 1);
	cr_assert_eq(get(p, "tapio_sink_retries_total{sink=\"nats\"}"), 6);
	cr_assert_eq(get(p, "tapio_sink_connected{sink=\"nats\"}"), 1);
	cr_assert_eq(get(p, "tapio_sink_nats_published_total{sink=\"nats\"}"), 42);
	cr_assert_eq(get(p, "tapio_sink_nats_reconnects_total{sink=\"nats\"}"), 3);

	/* Health changes show up on the next render. */
	atomic_store(&w.k8s->c.healthy, false);
	w.sink.up = false;
	sb_reset(&sb);
	cr_assert_eq(metrics_render(&w.v, &sb), 0);
	parse(sb.buf, p);
	cr_assert_eq(get(p, "tapio_collector_healthy{collector=\"k8s\"}"), 0);
	cr_assert_eq(get(p, "tapio_sink_connected{sink=\"nats\"}"), 0);

	sb_free(&sb);
	free(p);
	world_free(&w);
}

Test(metrics, render_without_queue_sink_or_registry)
{
	struct metrics_view v = {0};
	struct strbuf sb = STRBUF_INIT;
	struct parsed *p = malloc(sizeof(*p));

	cr_assert_eq(metrics_render(&v, &sb), 0);
	parse(sb.buf, p);
	cr_assert_eq(get(p, "tapio_build_info{version=\"unknown\"}"), 1);
	cr_assert_not(has(p, "tapio_queue_used_bytes"));
	cr_assert_eq(p->n, 1);
	sb_free(&sb);
	free(p);
}

Test(metrics, probes_logic)
{
	struct world w;
	struct strbuf why = STRBUF_INIT;

	world_init(&w);
	cr_assert(metrics_healthz(&w.v, &why));
	cr_assert(metrics_readyz(&w.v, &why));
	cr_assert_eq(why.len, 0);

	/* A non-kernel collector down: alive, not ready. */
	atomic_store(&w.k8s->c.healthy, false);
	collector_error(&w.k8s->c, "API server unreachable");
	cr_assert(metrics_healthz(&w.v, &why));
	cr_assert_not(metrics_readyz(&w.v, &why));
	cr_assert_not_null(strstr(why.buf, "collector k8s: unhealthy: API server unreachable"),
			   "%s", why.buf);
	cr_assert_null(strstr(why.buf, "kernel"));

	/* The sink down as well: both listed. */
	sb_reset(&why);
	w.sink.up = false;
	cr_assert_not(metrics_readyz(&w.v, &why));
	cr_assert_not_null(strstr(why.buf, "collector k8s"));
	cr_assert_not_null(strstr(why.buf, "sink nats: not connected"), "%s", why.buf);

	/* The kernel collector detached: not alive. */
	sb_reset(&why);
	atomic_store(&w.kernel->c.healthy, false);
	cr_assert_not(metrics_healthz(&w.v, &why));
	cr_assert_not_null(strstr(why.buf, "collector kernel: not attached"), "%s", why.buf);

	/* Without a kernel collector, liveness is just the process. */
	struct metrics_view nok = {.version = "x"};
	sb_reset(&why);
	cr_assert(metrics_healthz(&nok, &why));
	cr_assert(metrics_readyz(&nok, &why));
	sb_free(&why);
	world_free(&w);
}

/* ---- over HTTP ---- */

static size_t collect(char *p, size_t sz, size_t n, void *ud)
{
	sb_add(ud, p, sz * n);
	return sz * n;
}

static long http(const char *method, unsigned port, const char *path, struct strbuf *body,
		 char *ctype, size_t ctlen)
{
	CURL *c = curl_easy_init();
	char url[128];
	long code = 0;
	char *ct = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	sb_reset(body);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK, "%s %s", method, url);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (ctype) {
		curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
		snprintf(ctype, ctlen, "%s", ct ? ct : "");
	}
	curl_easy_cleanup(c);
	sb_putc(body, '\0');
	body->len--;
	return code;
}

Test(metrics_http, endpoints)
{
	struct world w;
	struct metrics_server *m;
	struct strbuf body = STRBUF_INIT;
	char err[200], ct[100];
	struct parsed *p = malloc(sizeof(*p));

	world_init(&w);
	m = metrics_start("127.0.0.1:0", &w.v, err, sizeof(err));
	cr_assert_not_null(m, "%s", err);
	unsigned port = metrics_port(m);
	cr_assert_gt(port, 0);

	cr_assert_eq(http("GET", port, "/metrics", &body, ct, sizeof(ct)), 200);
	cr_assert_str_eq(ct, "text/plain; version=0.0.4; charset=utf-8");
	parse(body.buf, p);
	cr_assert_eq(get(p, "tapio_events_total{source=\"kernel\"}"), 3);
	cr_assert_eq(get(p, "tapio_kernel_drops_total{collector=\"kernel\",type=\"process.exec\"}"),
		     7);

	cr_assert_eq(http("GET", port, "/healthz", &body, NULL, 0), 200);
	cr_assert_str_eq(body.buf, "ok\n");
	cr_assert_eq(http("GET", port, "/readyz", &body, NULL, 0), 200);

	/* A collector's source goes away: ready flips, alive stays. */
	atomic_store(&w.k8s->c.healthy, false);
	collector_error(&w.k8s->c, "watch failed");
	cr_assert_eq(http("GET", port, "/readyz", &body, NULL, 0), 503);
	cr_assert_not_null(strstr(body.buf, "collector k8s: unhealthy: watch failed"), "%s",
			   body.buf);
	cr_assert_eq(http("GET", port, "/healthz", &body, NULL, 0), 200);
	atomic_store(&w.k8s->c.healthy, true);
	cr_assert_eq(http("GET", port, "/readyz", &body, NULL, 0), 200);

	w.sink.up = false;
	cr_assert_eq(http("GET", port, "/readyz", &body, NULL, 0), 503);
	cr_assert_not_null(strstr(body.buf, "sink nats: not connected"));

	atomic_store(&w.kernel->c.healthy, false);
	cr_assert_eq(http("GET", port, "/healthz", &body, NULL, 0), 503);
	cr_assert_not_null(strstr(body.buf, "kernel: not attached"));

	cr_assert_eq(http("GET", port, "/nope", &body, NULL, 0), 404);
	cr_assert_eq(http("POST", port, "/metrics", &body, NULL, 0), 405);

	metrics_stop(m);
	sb_free(&body);
	free(p);
	world_free(&w);
}

Test(metrics_http, bad_addresses)
{
	struct metrics_view v = {0};
	char err[200];
	static const char *bad[] = {
	    "",		"9090",	     "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:x",
	    "::1:9090", "[::1]9090", "[::1:9090"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		errno = 0;
		cr_assert_null(metrics_start(bad[i], &v, err, sizeof(err)), "accepted '%s'",
			       bad[i]);
		cr_assert_eq(errno, EINVAL, "'%s'", bad[i]);
		cr_assert_not_null(strstr(err, "metrics_addr"), "'%s': %s", bad[i], err);
	}
	metrics_stop(NULL);
}

Test(metrics_http, port_in_use_and_ipv6)
{
	struct metrics_view v = {.version = "t"};
	char err[200], addr[64];
	struct metrics_server *a, *b;
	struct strbuf body = STRBUF_INIT;

	a = metrics_start("127.0.0.1:0", &v, err, sizeof(err));
	cr_assert_not_null(a, "%s", err);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", metrics_port(a));
	b = metrics_start(addr, &v, err, sizeof(err));
	cr_assert_null(b, "two servers on %s", addr);
	cr_assert_not_null(strstr(err, "cannot listen"), "%s", err);
	cr_assert_eq(http("GET", metrics_port(a), "/healthz", &body, NULL, 0), 200);
	metrics_stop(a);

	/* All addresses (":PORT"), reached over IPv4 loopback. */
	a = metrics_start(":0", &v, err, sizeof(err));
	cr_assert_not_null(a, "%s", err);
	cr_assert_eq(http("GET", metrics_port(a), "/readyz", &body, NULL, 0), 200);
	metrics_stop(a);
	sb_free(&body);
}

Test(metrics, render_collectors_and_sink_without_extra_counters)
{
	struct registry *reg = registry_new();
	struct fake *k8s = fake_new(&k8s_ops);
	static const struct sink_ops plain_ops = {.name = "stream"};
	struct sink plain = {.ops = &plain_ops};
	struct strbuf sb = STRBUF_INIT;
	struct parsed *p = malloc(sizeof(*p));

	cr_assert_eq(registry_add(reg, &k8s->c), 0);
	atomic_store(&plain.written, 5);
	struct metrics_view v = {.reg = reg, .sink = &plain, .version = "x"};
	cr_assert_eq(metrics_render(&v, &sb), 0);
	parse(sb.buf, p);
	cr_assert_eq(get(p, "tapio_collector_healthy{collector=\"k8s\"}"), 0);
	cr_assert_eq(get(p, "tapio_sink_written_total{sink=\"stream\"}"), 5);
	/* No connected op: a stream sink is always connected. */
	cr_assert_eq(get(p, "tapio_sink_connected{sink=\"stream\"}"), 1);
	sb_free(&sb);
	free(p);
	registry_free(reg);
}

static void fake_extra(void *obj, counter_fn fn, void *ctx)
{
	const uint64_t *v = obj;
	fn(ctx, "hits", "", v[0]);
	fn(ctx, "queue_full", "", v[1]);
	fn(ctx, "resolve_errors", "", v[2]);
	fn(ctx, "resolve_pending", "", v[3]);
	fn(ctx, "pod_entries", "", v[4]);
}

/* Counters without an owner (the pod metadata cache's): their own prefix,
 * no labels, counters with _total and levels as gauges. */
Test(metrics, extra_counters_without_an_owner)
{
	uint64_t vals[5] = {7, 2, 1, 3, 4};
	struct strbuf sb = STRBUF_INIT;
	struct parsed *p = malloc(sizeof(*p));
	struct metrics_view v = {.version = "x",
				 .extra_counters = fake_extra,
				 .extra_obj = vals,
				 .extra_prefix = "tapio_podmeta_"};
	cr_assert_eq(metrics_render(&v, &sb), 0);
	parse(sb.buf, p);
	cr_assert_eq(get(p, "tapio_podmeta_hits_total"), 7);
	cr_assert_eq(get(p, "tapio_podmeta_queue_full_total"), 2);
	cr_assert_eq(get(p, "tapio_podmeta_resolve_errors_total"), 1);
	cr_assert_eq(get(p, "tapio_podmeta_resolve_pending"), 3);
	cr_assert_eq(get(p, "tapio_podmeta_pod_entries"), 4);
	cr_assert_not_null(strstr(sb.buf, "# TYPE tapio_podmeta_resolve_pending gauge\n"));
	cr_assert_not_null(strstr(sb.buf, "# TYPE tapio_podmeta_pod_entries gauge\n"));
	cr_assert_not_null(strstr(sb.buf, "# TYPE tapio_podmeta_queue_full_total counter\n"));
	cr_assert_null(strstr(sb.buf, "tapio_podmeta_hits_total{"), "no label set: %s", sb.buf);
	sb_free(&sb);
	free(p);
}
