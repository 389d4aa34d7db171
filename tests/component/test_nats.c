// SPDX-License-Identifier: Apache-2.0
/* The NATS JetStream sink against a real `nats-server -js`: subjects, ids and
 * payloads read back with libnats, a server that starts late, a server killed
 * and restarted mid-run, and dedup of republished ids. Plus the URL and config
 * checks, which need no server. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "core/ack.h"
#include "core/event.h"
#include "util/clock.h"
#include "util/log.h"
#include "core/queue.h"
#include "sink/sink_nats.h"
#include "util/strbuf.h"
#include "tests/lib/nats_server.h"
#include "tests/lib/test_env.h"

static void need_server(void)
{
	if (access(NATS_SERVER_BIN, X_OK) != 0)
		cr_skip_test("%s is not installed (make deps installs nats-server)",
			     NATS_SERVER_BIN);
}

static void test_cfg(struct tcfg *cfg, const char *stream)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->nats.subject_prefix = "tapio.events";
	cfg->nats.stream = (char *)stream;
	cfg->nats.retention = "limits";
	cfg->nats.max_age_s = 3600;
	cfg->nats.max_inflight = 64;
	cfg->nats.ack_wait_ms = 5000;
	cfg->base.node_name = "node-a";
}

struct counters {
	uint64_t published, republished, acked, duplicates, failed, lost, unacked, reconnects,
	    too_big, inflight, stable_ids, late_acks, protocol_errors;
};

static void count_cb(void *ctx, const char *name, const char *labels, uint64_t v)
{
	struct counters *c = ctx;

	cr_assert_str_empty(labels);
	if (!strcmp(name, "published"))
		c->published = v;
	else if (!strcmp(name, "republished"))
		c->republished = v;
	else if (!strcmp(name, "acked"))
		c->acked = v;
	else if (!strcmp(name, "duplicates"))
		c->duplicates = v;
	else if (!strcmp(name, "failed"))
		c->failed = v;
	else if (!strcmp(name, "lost"))
		c->lost = v;
	else if (!strcmp(name, "unacked_pending"))
		c->unacked = v;
	else if (!strcmp(name, "inflight"))
		c->inflight = v;
	else if (!strcmp(name, "reconnects"))
		c->reconnects = v;
	else if (!strcmp(name, "too_big"))
		c->too_big = v;
	else if (!strcmp(name, "stable_ids"))
		c->stable_ids = v;
	else if (!strcmp(name, "late_acks"))
		c->late_acks = v;
	else if (!strcmp(name, "protocol_errors"))
		c->protocol_errors = v;
	else
		cr_assert_fail("unexpected counter %s", name);
}

static struct counters get_counters(struct sink *s)
{
	struct counters c = {0};

	s->ops->counters(s, count_cb, &c);
	return c;
}

/* The pipeline's loop, as agent.c runs it: peek, write, release; -EAGAIN
 * keeps the record and retries after a pause. Stops after `want` records or
 * when the deadline passes. Returns the records written. */
static size_t pump(struct sink *s, struct queue *q, size_t want, double secs, uint64_t *eagain)
{
	uint64_t deadline = mono_ns() + (uint64_t)(secs * 1e9);
	size_t done = 0;

	while (done < want && mono_ns() < deadline) {
		size_t len;
		unsigned src;
		void *rec = queue_peek(q, &len, &src, 50);
		int rc;

		if (!rec)
			continue;
		rc = s->ops->write(s, rec);
		if (rc == -EAGAIN) {
			if (eagain)
				(*eagain)++;
			ns_sleep_ms(10);
			continue;
		}
		cr_assert_eq(rc, 0, "write: %d", rc);
		queue_release(q, rec);
		done++;
	}
	return done;
}

static const struct {
	unsigned src, type;
} types[] = {{SRC_KERNEL, TYPE_PROCESS_EXEC},
	     {SRC_KERNEL, TYPE_TCP_CONNECT},
	     {SRC_K8S, TYPE_K8S_WATCH},
	     {SRC_SYSTEMD, TYPE_SYSTEMD_JOURNAL}};

static int emit_one(struct queue *q, unsigned i)
{
	char data[64], seqs[24];
	unsigned src = types[i % 4].src, t = types[i % 4].type;
	struct meta_kv kv[] = {{"seq", seqs}, {"node", "node-a"}};

	snprintf(seqs, sizeof(seqs), "%u", i);
	snprintf(data, sizeof(data), "payload %u", i);
	return event_emit(q, src, t, FMT_TEXT, now_ns(), kv, 2, data, strlen(data));
}

static unsigned id_seq(const char *id, const char *want_prefix)
{
	size_t pl = strlen(want_prefix);

	cr_assert(!strncmp(id, want_prefix, pl), "id %s does not start with %s", id, want_prefix);
	const char *dash = strrchr(id, '-');
	cr_assert_not_null(dash);
	return (unsigned)strtoul(dash + 1, NULL, 10);
}

/* Every message: subject from its event, an id "node-a-<ns>-<seq>", the JSON
 * line without newline. Returns how many distinct ids there are. */
static size_t check_msgs(struct ns_msg *m, size_t n, size_t published)
{
	char *seen = calloc(published + 1, 1);
	size_t distinct = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned seq = id_seq(m[i].id, "node-a-");
		char want_subj[128], want_meta[64];
		unsigned ev;

		cr_assert(seq >= 1 && seq <= published, "id %s out of range 1..%zu", m[i].id,
			  published);
		if (!seen[seq]++)
			distinct++;
		cr_assert_eq(m[i].data[m[i].len - 1], '}',
			     "payload ends with a newline or junk: %s", m[i].data);
		cr_assert_null(strchr(m[i].data, '\n'));
		cr_assert(!strncmp(m[i].data, "{\"ts\":\"", 7), "payload %s", m[i].data);
		const char *sp = strstr(m[i].data, "\"seq\":\"");
		cr_assert_not_null(sp, "no seq meta in %s", m[i].data);
		ev = (unsigned)strtoul(sp + 7, NULL, 10);
		snprintf(want_subj, sizeof(want_subj), "tapio.events.%s.%s",
			 source_name(types[ev % 4].src),
			 type_name(types[ev % 4].src, types[ev % 4].type));
		cr_assert_str_eq(m[i].subject, want_subj);
		snprintf(want_meta, sizeof(want_meta), "\"data\":\"payload %u\"", ev);
		cr_assert_not_null(strstr(m[i].data, want_meta), "%s lacks %s", m[i].data,
				   want_meta);
	}
	free(seen);
	return distinct;
}

Test(nats_url, parses_lists)
{
	char *out[4], err[200];
	size_t n;

	cr_assert_eq(sink_nats_parse_url("nats://127.0.0.1:4222", out, 4, &n, err, sizeof(err)), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(out[0], "nats://127.0.0.1:4222");
	free(out[0]);
	cr_assert_eq(sink_nats_parse_url("nats://a:1, b.example:4222,[::1]:65535", out, 4, &n, err,
					 sizeof(err)),
		     0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(out[0], "nats://a:1");
	cr_assert_str_eq(out[1], "nats://b.example:4222");
	cr_assert_str_eq(out[2], "nats://[::1]:65535");
	for (size_t i = 0; i < n; i++)
		free(out[i]);
}

Test(nats_url, rejects_bad)
{
	static const char *bad[] = {"",
				    "nats://",
				    "nats://host",
				    "host:",
				    ":4222",
				    "host:0",
				    "host:65536",
				    "host:42x",
				    "http://host:80",
				    "a:1,,b:2",
				    "a:1,",
				    "[::1:4222",
				    "[]:4222",
				    "ho st:1",
				    "a:1,b:2,c:3,d:4,e:5",
				    "host:99999999999999999999"};
	char *out[4], err[200];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(sink_nats_parse_url(bad[i], out, 4, &n, err, sizeof(err)), -EINVAL,
			     "accepted '%s'", bad[i]);
		cr_assert_eq(n, 0);
		cr_assert(!strncmp(err, "nats: ", 6), "reason for '%s': '%s'", bad[i], err);
	}
}

Test(nats_config, bad_config_names_the_key)
{
	struct tcfg cfg;
	char err[200];
	struct {
		const char *field, *val, *key;
	} cases[] = {
	    {"prefix", "tapio..events", "nats-subject-prefix"},
	    {"prefix", "tapio.*", "nats-subject-prefix"},
	    {"prefix", "tapio events", "nats-subject-prefix"},
	    {"stream", "A.B", "nats-stream"},
	    {"retention", "forever", "nats-retention"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_cfg(&cfg, "S");
		if (!strcmp(cases[i].field, "prefix"))
			cfg.nats.subject_prefix = (char *)cases[i].val;
		else if (!strcmp(cases[i].field, "stream"))
			cfg.nats.stream = (char *)cases[i].val;
		else
			cfg.nats.retention = (char *)cases[i].val;
		errno = 0;
		cr_assert_null(sink_nats_new("nats://127.0.0.1:1", &cfg.nats, cfg.base.node_name,
					     err, sizeof(err)));
		cr_assert_eq(errno, EINVAL);
		cr_assert_not_null(strstr(err, cases[i].key), "'%s' does not name %s", err,
				   cases[i].key);
	}
	test_cfg(&cfg, "S");
	cfg.nats.max_inflight = 0;
	cr_assert_null(
	    sink_nats_new("nats://127.0.0.1:1", &cfg.nats, cfg.base.node_name, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "nats-max-inflight"));
	test_cfg(&cfg, "S");
	cfg.nats.max_attempts = 1001;
	cr_assert_null(
	    sink_nats_new("nats://127.0.0.1:1", &cfg.nats, cfg.base.node_name, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "nats-max-attempts: 1001"), "%s", err);
	test_cfg(&cfg, "S");
	cr_assert_null(sink_nats_new("127.0.0.1", &cfg.nats, cfg.base.node_name, err, sizeof(err)));
	cr_assert_eq(errno, EINVAL);
	cr_assert_not_null(strstr(err, "missing :PORT"), "%s", err);
}

Test(nats_sink, publishes_with_subjects_and_ids, .timeout = 60)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct queue *q;
	struct sink *s;
	struct ns_msg *m;
	size_t n;
	char err[200];
	const unsigned N = 500;

	need_server();
	cr_assert_eq(ns_start(&srv), 0, "nats-server did not start");
	test_cfg(&cfg, "T1");
	s = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	cr_assert(s->ops->connected(s));
	q = queue_new(1 << 20);
	for (unsigned i = 0; i < N; i++)
		cr_assert_eq(emit_one(q, i), 0);
	cr_assert_eq(pump(s, q, N, 20, NULL), N);
	cr_assert_eq(s->ops->flush(s), 0);
	struct counters c = get_counters(s);
	cr_assert_eq(c.published, N);
	cr_assert_eq(c.acked, N);
	cr_assert_eq(atomic_load(&s->acked), N);
	cr_assert_eq(c.failed + c.lost + c.unacked, 0);
	cr_assert_eq(sink_nats_unacked(s), 0);

	cr_assert_eq(ns_read_stream(srv.url, "T1", &m, &n), 0);
	cr_assert_eq(n, N, "stream holds %zu, published %u", n, N);
	cr_assert_eq(check_msgs(m, n, N), N);
	/* Published in queue order: ids and events both count up. */
	for (size_t i = 0; i < n; i++) {
		char want[32];

		cr_assert_eq(id_seq(m[i].id, "node-a-"), i + 1);
		snprintf(want, sizeof(want), "\"seq\":\"%zu\"", i);
		cr_assert_not_null(strstr(m[i].data, want));
	}
	ns_free_msgs(m, n);
	s->ops->destroy(s);
	queue_free(q);
	ns_stop(&srv);
}

Test(nats_sink, server_down_at_start_buffers_then_ships, .timeout = 60)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct queue *q;
	struct sink *s;
	struct ns_msg *m;
	size_t n;
	char err[200];
	uint64_t eagain = 0;

	need_server();
	/* Reserve the port and dir, but do not start the server yet. */
	cr_assert_eq(ns_start(&srv), 0);
	ns_kill(&srv, SIGKILL);
	test_cfg(&cfg, "T2");
	s = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "creation must not fail while NATS is down: %s", err);
	cr_assert_not(s->ops->connected(s));
	q = queue_new(1 << 20);
	for (unsigned i = 0; i < 100; i++)
		cr_assert_eq(emit_one(q, i), 0);
	cr_assert_eq(pump(s, q, 100, 1.0, &eagain), 0, "wrote while the server was down");
	cr_assert_gt(eagain, 0);
	cr_assert_gt(queue_used(q), 0, "the queue holds the events meanwhile");

	cr_assert_eq(ns_start(&srv), 0);
	cr_assert_eq(pump(s, q, 100, 20, NULL), 100);
	cr_assert(s->ops->connected(s));
	cr_assert_eq(s->ops->flush(s), 0);
	cr_assert_eq(ns_read_stream(srv.url, "T2", &m, &n), 0);
	cr_assert_eq(n, 100);
	cr_assert_eq(check_msgs(m, n, 100), 100);
	ns_free_msgs(m, n);
	s->ops->destroy(s);
	queue_free(q);
	ns_stop(&srv);
}

struct producer {
	struct queue *q;
	unsigned n, emitted, dropped;
	atomic_bool done;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (unsigned i = 0; i < p->n; i++) {
		if (emit_one(p->q, i) == 0)
			p->emitted++;
		else
			p->dropped++;
		ns_sleep_ms(1);
	}
	atomic_store(&p->done, true);
	return NULL;
}

Test(nats_sink, server_killed_and_restarted_loses_nothing, .timeout = 90)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct producer p = {0};
	struct sink *s;
	struct ns_msg *m;
	size_t n, written = 0;
	char err[200];
	pthread_t t;

	need_server();
	cr_assert_eq(ns_start(&srv), 0);
	test_cfg(&cfg, "T3");
	s = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	p.q = queue_new(1 << 22);
	p.n = 3000;
	pthread_create(&t, NULL, produce, &p);

	written += pump(s, p.q, 600, 20, NULL);
	/* Killed with acks outstanding; restarted on the same store. */
	ns_kill(&srv, SIGKILL);
	uint64_t down_eagain = 0;
	written += pump(s, p.q, 3000, 1.5, &down_eagain);
	cr_assert_gt(down_eagain, 0, "no -EAGAIN while the server was down");
	cr_assert_eq(ns_start(&srv), 0);
	while (!atomic_load(&p.done) || queue_used(p.q) > 0) {
		size_t w = pump(s, p.q, 3000 - written, 1.0, NULL);

		written += w;
		if (written >= 3000)
			break;
		cr_assert(w > 0 || !atomic_load(&p.done) || queue_used(p.q) == 0,
			  "pipeline stuck at %zu", written);
	}
	pthread_join(t, NULL);
	cr_assert_eq(p.dropped, 0, "the queue dropped %u", p.dropped);
	cr_assert_eq(written, 3000);
	cr_assert_eq(s->ops->flush(s), 0, "unacked after flush: %lu",
		     (unsigned long)sink_nats_unacked(s));

	struct counters c = get_counters(s);
	cr_log_info(
	    "restart: published %lu republished %lu acked %lu duplicates %lu reconnects %lu",
	    (unsigned long)c.published, (unsigned long)c.republished, (unsigned long)c.acked,
	    (unsigned long)c.duplicates, (unsigned long)c.reconnects);
	cr_assert_geq(c.reconnects, 1);
	cr_assert_eq(c.lost, 0);
	cr_assert_eq(c.failed, 0);
	cr_assert_eq(c.published, 3000);
	/* Every event acked exactly once: a timed-out publish comes back
	 * through the retry list and its republish is what gets the ack. */
	cr_assert_eq(c.acked, 3000, "acked %lu republished %lu duplicates %lu",
		     (unsigned long)c.acked, (unsigned long)c.republished,
		     (unsigned long)c.duplicates);

	cr_assert_eq(ns_read_stream(srv.url, "T3", &m, &n), 0);
	/* No id stored twice, and every published id is there. */
	cr_assert_eq(check_msgs(m, n, 3000), n, "an id is stored twice");
	cr_assert_eq(n, 3000, "stream holds %zu of 3000 (republished %lu, duplicates %lu)", n,
		     (unsigned long)c.republished, (unsigned long)c.duplicates);
	ns_free_msgs(m, n);
	s->ops->destroy(s);
	queue_free(p.q);
	ns_stop(&srv);
}

Test(nats_sink, republished_ids_are_deduplicated, .timeout = 90)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct queue *q;
	struct sink *s;
	struct ns_msg *m;
	size_t n;
	char err[200];

	need_server();
	cr_assert_eq(ns_start(&srv), 0);
	test_cfg(&cfg, "T4");
	s = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	q = queue_new(1 << 20);
	cr_assert_eq(emit_one(q, 0), 0);
	cr_assert_eq(pump(s, q, 1, 20, NULL), 1);
	cr_assert_eq(s->ops->flush(s), 0);

	/* Frozen server: the next messages reach its socket but their acks do
	 * not come back in time, so the sink publishes them again with the same
	 * ids; once the server runs again it stores the first copy and reports
	 * the second as a duplicate. */
	ns_kill(&srv, SIGSTOP);
	for (unsigned i = 1; i <= 20; i++)
		cr_assert_eq(emit_one(q, i), 0);
	cr_assert_eq(pump(s, q, 20, 5, NULL), 20);
	ns_sleep_ms(6000); /* past the ack timeout */
	cr_assert_eq(emit_one(q, 21), 0);
	cr_assert_eq(pump(s, q, 1, 20, NULL), 1); /* republishes the 20 first */
	ns_kill(&srv, SIGCONT);
	cr_assert_eq(s->ops->flush(s), 0);

	struct counters c = get_counters(s);
	cr_assert_eq(c.published, 22);
	cr_assert_geq(c.republished, 20);
	cr_assert_geq(c.duplicates, 1, "republished %lu, duplicates %lu",
		      (unsigned long)c.republished, (unsigned long)c.duplicates);
	cr_assert_eq(c.lost, 0);

	cr_assert_eq(ns_read_stream(srv.url, "T4", &m, &n), 0);
	cr_assert_eq(check_msgs(m, n, 22), n, "an id is stored twice");
	cr_assert_eq(n, 22);
	ns_free_msgs(m, n);
	s->ops->destroy(s);
	queue_free(q);
	ns_stop(&srv);
}

static char last_log[512];
/* Every message since the last reset: a later one (a disconnect notice from
 * the closing connection) must not hide the one a test looks for. */
static char all_log[16384];
static size_t all_len;
static void capture(int level, const char *who, const char *msg)
{
	if (level > TLOG_WARN)
		return;
	snprintf(last_log, sizeof(last_log), "%s: %s", who ? who : "", msg);
	int n = snprintf(all_log + all_len, sizeof(all_log) - all_len, "%s\n", last_log);
	if (n > 0 && all_len + (size_t)n < sizeof(all_log))
		all_len += (size_t)n;
}

Test(nats_sink, stream_that_cannot_be_created_holds_events_and_says_why, .timeout = 60)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct queue *q;
	struct sink *a, *b;
	struct ns_msg *m;
	size_t n;
	char err[200];
	uint64_t eagain = 0;

	need_server();
	cr_assert_eq(ns_start(&srv), 0);
	log_set_hook(capture);
	test_cfg(&cfg, "FIRST");
	a = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(a, "%s", err);
	/* Same subjects, another stream name: the server refuses to create it. */
	test_cfg(&cfg, "SECOND");
	b = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(b, "%s", err);
	q = queue_new(1 << 20);
	cr_assert_eq(emit_one(q, 0), 0);
	cr_assert_eq(pump(b, q, 1, 1.5, &eagain), 0);
	cr_assert_gt(eagain, 0);
	cr_assert_not_null(strstr(last_log, "stream SECOND: create failed"), "%s", last_log);
	cr_assert_not_null(strstr(last_log, "overlap"), "%s", last_log);
	cr_assert_gt(queue_used(q), 0, "the event waits in the queue");
	/* The first sink's stream takes the events. */
	cr_assert_eq(pump(a, q, 1, 10, NULL), 1);
	cr_assert_eq(a->ops->flush(a), 0);
	cr_assert_eq(ns_read_stream(srv.url, "FIRST", &m, &n), 0);
	cr_assert_eq(n, 1);
	ns_free_msgs(m, n);
	log_set_hook(NULL);
	b->ops->destroy(b);
	a->ops->destroy(a);
	queue_free(q);
	ns_stop(&srv);
}

Test(nats_sink, flush_reports_what_is_left_unacked, .timeout = 60)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct queue *q;
	struct sink *s;
	char err[200];
	uint64_t t0, ms;

	need_server();
	cr_assert_eq(ns_start(&srv), 0);
	log_set_hook(capture);
	test_cfg(&cfg, "T5");
	cfg.nats.ack_wait_ms = 700;
	s = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	/* Nothing published yet: an idle flush returns at once. */
	t0 = mono_ns();
	cr_assert_eq(s->ops->flush(s), 0);
	cr_assert_lt(mono_ns() - t0, 100000000ull);
	q = queue_new(1 << 20);
	cr_assert_eq(emit_one(q, 0), 0);
	cr_assert_eq(pump(s, q, 1, 20, NULL), 1);
	cr_assert_eq(s->ops->flush(s), 0);
	cr_assert_eq(sink_nats_unacked(s), 0);

	/* A frozen server: 30 events go out, no ack comes back. */
	ns_kill(&srv, SIGSTOP);
	for (unsigned i = 1; i <= 30; i++)
		cr_assert_eq(emit_one(q, i), 0);
	cr_assert_eq(pump(s, q, 30, 5, NULL), 30);
	t0 = mono_ns();
	cr_assert_eq(s->ops->flush(s), -ETIMEDOUT);
	ms = (mono_ns() - t0) / 1000000;
	cr_assert(ms >= 650 && ms < 3000, "flush took %lu ms for a 700 ms bound",
		  (unsigned long)ms);
	cr_assert_eq(sink_nats_unacked(s), 30);
	cr_assert_not_null(strstr(last_log, "30 events still without an ack after 700 ms"), "%s",
			   last_log);
	struct counters c = get_counters(s);
	cr_assert_eq(c.unacked, 30);
	cr_assert_eq(c.inflight, 30);
	cr_assert_eq(c.published, 31);
	cr_assert_eq(c.acked, 1);
	cr_assert_eq(c.failed + c.lost, 0, "a flush gives nothing up");

	/* The server wakes up: the same events are acked (no loss). */
	ns_kill(&srv, SIGCONT);
	uint64_t until = mono_ns() + 10000000000ull;
	int rc;
	while ((rc = s->ops->flush(s)) != 0 && mono_ns() < until)
		;
	cr_assert_eq(rc, 0);
	c = get_counters(s);
	cr_assert_eq(c.acked, 31);
	cr_assert_eq(c.unacked + c.inflight + c.lost, 0);

	/* Frozen again, then closed: what has no ack is counted lost, loudly. */
	ns_kill(&srv, SIGSTOP);
	for (unsigned i = 31; i <= 35; i++)
		cr_assert_eq(emit_one(q, i), 0);
	cr_assert_eq(pump(s, q, 5, 5, NULL), 5);
	last_log[0] = all_log[0] = '\0';
	all_len = 0;
	s->ops->destroy(s);
	cr_assert_not_null(strstr(all_log, "5 events had no ack when the sink closed: lost"), "%s",
			   all_log);
	ns_kill(&srv, SIGCONT);
	log_set_hook(NULL);
	queue_free(q);
	ns_stop(&srv);
}

Test(nats_sink, event_over_max_payload_fails_for_good_and_says_so, .timeout = 60)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct queue *q;
	struct sink *s;
	struct ns_msg *m;
	size_t n, len;
	unsigned src;
	char err[200];
	static char big[1200 * 1024];

	need_server();
	cr_assert_eq(ns_start(&srv), 0);
	log_set_hook(capture);
	test_cfg(&cfg, "T6");
	s = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	q = queue_new(4 << 20);
	memset(big, 'b', sizeof(big));
	cr_assert_eq(
	    event_emit(q, SRC_K8S, TYPE_K8S_WATCH, FMT_TEXT, now_ns(), NULL, 0, big, sizeof(big)),
	    0);
	cr_assert_eq(emit_one(q, 1), 0);

	void *rec;
	while (!(rec = queue_peek(q, &len, &src, 100)) || s->ops->write(s, rec) == -EAGAIN)
		ns_sleep_ms(10);
	/* The write above was the big one; ask again to see the answer. */
	cr_assert_eq(s->ops->write(s, rec), -EMSGSIZE);
	queue_release(q, rec);
	cr_assert_eq(pump(s, q, 1, 10, NULL), 1, "the next event still goes out");
	cr_assert_eq(s->ops->flush(s), 0);
	struct counters c = get_counters(s);
	cr_assert_eq(c.too_big, 2);
	cr_assert_eq(c.published, 1);
	cr_assert_not_null(strstr(last_log, "max_payload"), "%s", last_log);
	cr_assert_eq(ns_read_stream(srv.url, "T6", &m, &n), 0);
	cr_assert_eq(n, 1);
	ns_free_msgs(m, n);
	log_set_hook(NULL);
	s->ops->destroy(s);
	queue_free(q);
	ns_stop(&srv);
}

Test(nats_sink, stream_deleted_under_it_is_created_again, .timeout = 60)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct queue *q;
	struct sink *s;
	struct ns_msg *m;
	size_t n;
	char err[200];
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsErrCode jerr = 0;

	need_server();
	cr_assert_eq(ns_start(&srv), 0);
	test_cfg(&cfg, "T7");
	s = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	q = queue_new(1 << 20);
	for (unsigned i = 0; i < 100; i++)
		cr_assert_eq(emit_one(q, i), 0);
	cr_assert_eq(pump(s, q, 100, 20, NULL), 100);
	cr_assert_eq(s->ops->flush(s), 0);

	/* Someone deletes the stream: publishes find no responder until the
	 * sink creates it again, and the ones that failed go out again. */
	cr_assert_eq(natsConnection_ConnectTo(&nc, srv.url), NATS_OK);
	cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
	cr_assert_eq(js_DeleteStream(js, "T7", NULL, &jerr), NATS_OK);
	for (unsigned i = 100; i < 200; i++)
		cr_assert_eq(emit_one(q, i), 0);
	cr_assert_eq(pump(s, q, 100, 30, NULL), 100);
	cr_assert_eq(s->ops->flush(s), 0);
	struct counters c = get_counters(s);
	cr_assert_eq(c.lost, 0);
	cr_assert_eq(c.acked, 200);
	cr_assert_geq(c.republished, 1, "no publish failed after the delete?");

	cr_assert_eq(ns_read_stream(srv.url, "T7", &m, &n), 0);
	cr_assert_eq(n, 100, "the new stream holds %zu", n);
	cr_assert_eq(check_msgs(m, n, 200), 100);
	for (size_t i = 0; i < n; i++)
		cr_assert_geq(id_seq(m[i].id, "node-a-"), 101, "%s was published before the delete",
			      m[i].id);
	ns_free_msgs(m, n);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	s->ops->destroy(s);
	queue_free(q);
	ns_stop(&srv);
}

static void record_safe(void *ctx, uint64_t safe)
{
	atomic_store((_Atomic uint64_t *)ctx, safe);
}

/* A loss inside a running sink (no ack after the last attempt) is settled:
 * counted as failed for its source, and the source's cursor moves past it
 * instead of waiting for a restart. */
Test(nats_sink, loss_while_running_is_settled_and_the_cursor_moves_on, .timeout = 60)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct ack_tracker t;
	struct queue *q;
	struct sink *s;
	struct ns_msg *m;
	size_t n;
	char err[200];
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsErrCode jerr = 0;
	_Atomic uint64_t safe = 0;
	enum { N1 = 100, N = 300 };

	need_server();
	cr_assert_eq(ns_start(&srv), 0);
	test_cfg(&cfg, "T12");
	cfg.nats.max_attempts = 1;
	cr_assert_eq(ack_init(&t, 1024, record_safe, &safe), 0);
	ack_register(SRC_K8S, &t);
	s = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	q = queue_new(1 << 20);
	for (unsigned i = 1; i <= N; i++) {
		char id[32], data[32];
		struct meta_kv kv[] = {{"id", id}};

		snprintf(id, sizeof(id), "ev-%u", i);
		snprintf(data, sizeof(data), "payload %u", i);
		uint32_t tok = ack_track(&t, i);
		cr_assert_neq(tok, 0);
		cr_assert_eq(event_emit_ack(q, SRC_K8S, TYPE_K8S_WATCH, FMT_TEXT, now_ns(), kv, 1,
					    data, strlen(data), tok),
			     0);
		ack_through(&t, i);
		if (i == N1) {
			/* The first events go out and are acked. */
			cr_assert_eq(pump(s, q, N1, 20, NULL), N1);
			cr_assert_eq(s->ops->flush(s), 0);
			cr_assert_eq(atomic_load(&safe), N1);
		}
	}
	cr_assert_eq(atomic_load(&safe), N1, "the cursor ran ahead of the sink");

	/* The stream is deleted: publishes find no responder until the sink
	 * creates it again; with one attempt each, every such event is lost. */
	cr_assert_eq(natsConnection_ConnectTo(&nc, srv.url), NATS_OK);
	cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
	cr_assert_eq(js_DeleteStream(js, "T12", NULL, &jerr), NATS_OK);
	cr_assert_eq(pump(s, q, N - N1, 30, NULL), N - N1);
	cr_assert_eq(s->ops->flush(s), 0);
	struct counters c = get_counters(s);
	cr_assert_geq(c.lost, 1, "no publish failed after the delete?");
	cr_assert_eq(c.republished, 0, "one attempt only");

	cr_assert_eq(ns_read_stream(srv.url, "T12", &m, &n), 0);
	cr_assert_eq(n + c.lost, N - N1, "stored %zu + lost %lu != %d", n, (unsigned long)c.lost,
		     N - N1);
	cr_assert_eq(c.acked, N1 + n);
	cr_assert_eq(atomic_load(&s->src_failed[SRC_K8S]), c.lost);
	cr_assert_eq(atomic_load(&s->src_written[SRC_K8S]), N1 + n);
	/* The lost ones are the first after the delete; every later one is stored. */
	for (size_t i = 0; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "ev-%lu", (unsigned long)(N1 + c.lost + 1 + i));
		cr_assert_str_eq(m[i].id, want);
	}
	ns_free_msgs(m, n);
	/* Nothing waits for the lost events: the cursor is at the last one. */
	cr_assert_eq(ack_pending(&t), 0);
	cr_assert_eq(atomic_load(&safe), N, "the cursor stalled at %lu",
		     (unsigned long)atomic_load(&safe));
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	s->ops->destroy(s);
	ack_unregister(SRC_K8S, &t);
	ack_destroy(&t);
	queue_free(q);
	ns_stop(&srv);
}

Test(nats_sink, in_flight_window_is_bounded, .timeout = 60)
{
	struct nats_srv srv = {0};
	struct tcfg cfg;
	struct queue *q;
	struct sink *s;
	char err[200];
	uint64_t eagain = 0;

	need_server();
	cr_assert_eq(ns_start(&srv), 0);
	test_cfg(&cfg, "T8");
	cfg.nats.max_inflight = 16;
	s = sink_nats_new(srv.url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	q = queue_new(1 << 20);
	cr_assert_eq(emit_one(q, 0), 0);
	cr_assert_eq(pump(s, q, 1, 20, NULL), 1);
	cr_assert_eq(s->ops->flush(s), 0);

	/* No acks while the server is frozen: 16 go out, then "not now". */
	ns_kill(&srv, SIGSTOP);
	for (unsigned i = 1; i <= 40; i++)
		cr_assert_eq(emit_one(q, i), 0);
	cr_assert_eq(pump(s, q, 40, 2.0, &eagain), 16);
	cr_assert_gt(eagain, 0);
	cr_assert_eq(get_counters(s).published, 17);
	ns_kill(&srv, SIGCONT);
	/* Acks come back and the rest follows. */
	cr_assert_eq(pump(s, q, 24, 20, NULL), 24);
	cr_assert_eq(s->ops->flush(s), 0);
	struct counters c = get_counters(s);
	cr_assert_eq(c.published, 41);
	cr_assert_eq(c.acked, 41);
	s->ops->destroy(s);
	queue_free(q);
	ns_stop(&srv);
}

/* ---- a server that breaks the protocol ---- */

/* Accepts connections on loopback. The sink's publisher connection (its
 * SUB is on _INBOX.tapio...) gets INFO, its PONG, then the next line of
 * `script`; the last line is never sent and that connection stays open.
 * Any other connection (libnats, for the stream) is closed after INFO. */
struct bad_server {
	int lfd, port;
	pthread_t th;
	atomic_bool stop;
	atomic_int ours;  /* publisher connections seen */
	atomic_bool pong; /* the last one answered the server's PING */
	const char *const *script;
	size_t nscript;
	int keep[8];
	size_t nkeep;
};

static void *bad_server_run(void *arg)
{
	struct bad_server *b = arg;
	static const char info[] =
	    "INFO {\"server_id\":\"FAKE\",\"version\":\"2.9.10\",\"proto\":1,"
	    "\"headers\":true,\"max_payload\":1048576}\r\n";

	while (!atomic_load(&b->stop)) {
		struct pollfd pf = {.fd = b->lfd, .events = POLLIN};
		if (poll(&pf, 1, 100) != 1)
			continue;
		int fd = accept(b->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		char in[4096];
		size_t have = 0;
		if (write(fd, info, sizeof(info) - 1) < 0) {
			close(fd);
			continue;
		}
		/* up to the PING of the handshake */
		uint64_t until = mono_ns() + 2000000000ull;
		while (have < sizeof(in) - 1 && mono_ns() < until) {
			struct pollfd cf = {.fd = fd, .events = POLLIN};
			if (poll(&cf, 1, 100) != 1)
				continue;
			ssize_t r = read(fd, in + have, sizeof(in) - 1 - have);
			if (r <= 0)
				break;
			have += (size_t)r;
			in[have] = 0;
			if (strstr(in, "PING\r\n"))
				break;
		}
		in[have] = 0;
		if (!strstr(in, "SUB _INBOX.tapio") || !strstr(in, "PING\r\n")) {
			close(fd);
			continue;
		}
		int k = atomic_fetch_add(&b->ours, 1);
		cr_assert_not_null(strstr(in, "\"headers\":true"), "%s", in);
		cr_assert_not_null(strstr(in, "\"no_responders\":true"), "%s", in);
		if ((size_t)k + 1 < b->nscript) {
			const char *l = b->script[k];
			cr_assert_eq(write(fd, "PONG\r\n", 6), 6);
			cr_assert_eq(write(fd, l, strlen(l)), (ssize_t)strlen(l));
		} else {
			/* the last one: a PING in the same write as the PONG of
			 * the handshake, answered although nothing follows */
			cr_assert_eq(write(fd, "PONG\r\nPING\r\n", 12), 12);
			char pong[16] = "";
			size_t got = 0;
			uint64_t by = mono_ns() + 2000000000ull;
			while (got < 6 && mono_ns() < by) {
				struct pollfd cf = {.fd = fd, .events = POLLIN};
				if (poll(&cf, 1, 100) != 1)
					continue;
				ssize_t r = read(fd, pong + got, 6 - got);
				if (r <= 0)
					break;
				got += (size_t)r;
			}
			atomic_store(&b->pong, !strcmp(pong, "PONG\r\n"));
		}
		if (b->nkeep < sizeof(b->keep) / sizeof(b->keep[0]))
			b->keep[b->nkeep++] = fd; /* the sink closes it */
		else
			close(fd);
	}
	return NULL;
}

static void bad_server_start(struct bad_server *b, const char *const *script, size_t n)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	memset(b, 0, sizeof(*b));
	b->script = script;
	b->nscript = n;
	b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(b->lfd, 0);
	cr_assert_eq(bind(b->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(b->lfd, 16), 0);
	cr_assert_eq(getsockname(b->lfd, (struct sockaddr *)&a, &al), 0);
	b->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&b->th, NULL, bad_server_run, b), 0);
}

static void bad_server_stop(struct bad_server *b)
{
	atomic_store(&b->stop, true);
	pthread_join(b->th, NULL);
	for (size_t i = 0; i < b->nkeep; i++)
		close(b->keep[i]);
	close(b->lfd);
}

static uint64_t counter_of(struct sink *s, const char *name)
{
	struct counters c = get_counters(s);

	if (!strcmp(name, "reconnects"))
		return c.reconnects;
	return c.protocol_errors;
}

Test(nats_sink, protocol_errors_name_the_server_and_the_connection_is_made_again, .timeout = 60)
{
	static const char *const script[] = {
	    "GARBAGE LINE\r\n",
	    "MSG x 1 99999999\r\n",
	    "MSG _INBOX.tapio 1 3\r\nabcXY\r\n",
	    "-ERR 'Unknown Protocol Operation'\r\n",
	    "", /* the last connection stays */
	};
	struct bad_server b;
	struct tcfg cfg;
	struct sink *s;
	char err[200], url[64], want[160];

	bad_server_start(&b, script, sizeof(script) / sizeof(script[0]));
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", b.port);
	all_log[0] = '\0';
	all_len = 0;
	log_set_hook(capture);
	test_cfg(&cfg, "TP");
	s = sink_nats_new(url, &cfg.nats, cfg.base.node_name, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	uint64_t t0 = mono_ns(), deadline = t0 + 20000000000ull;
	while (mono_ns() < deadline && counter_of(s, "reconnects") < 4)
		ns_sleep_ms(20);
	/* each reconnect to the one server waits 500 ms or more */
	cr_assert_geq(mono_ns() - t0, 1900000000ull, "%lu ms for 4 reconnects",
		      (unsigned long)((mono_ns() - t0) / 1000000));
	ns_sleep_ms(300); /* the last connection stays up */
	struct counters c = get_counters(s);
	cr_assert_eq(c.reconnects, 4, "reconnects %lu\n%s", (unsigned long)c.reconnects, all_log);
	cr_assert_eq(c.protocol_errors, 4, "protocol errors %lu\n%s",
		     (unsigned long)c.protocol_errors, all_log);
	cr_assert(s->ops->connected(s));
	cr_assert_eq(atomic_load(&b.ours), 5);
	cr_assert(atomic_load(&b.pong), "no PONG to a PING that came with the handshake");
	static const char *const why[] = {"unknown operation: 'GARBAGE LINE'",
					  "message of 99999999 bytes is over the limit of 1048576",
					  "MSG payload of 3 bytes is not followed by CRLF",
					  "-ERR 'Unknown Protocol Operation'"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(want, sizeof(want), "nats: %s: %s; connecting again", url, why[i]);
		cr_assert_not_null(strstr(all_log, want), "no '%s' in\n%s", want, all_log);
	}
	cr_assert_not_null(strstr(all_log, "disconnected from"), "%s", all_log);
	log_set_hook(NULL);
	s->ops->destroy(s);
	bad_server_stop(&b);
}
