// SPDX-License-Identifier: Apache-2.0
/* `tapio agent`: the registry of collectors, the shared queue, one sink, the
 * metrics endpoint, and the consumer loop that moves events from the queue to
 * the sink. On SIGINT/SIGTERM: stop the producers, drain the queue into the
 * sink, flush, print per-source totals as one JSON line on stderr, exit 0. */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/collector.h"
#include "collectors/cni/cni.h"
#include "collectors/etcd/etcd.h"
#include "collectors/k8s/k8s.h"
#include "collectors/systemd/systemd.h"
#include "cmd/commands.h"
#include "core/config.h"
#include "core/event.h"
#include "kernel/kernel.h"
#include "util/log.h"
#include "metrics/metrics.h"
#include "enrich/podmeta.h"
#include "core/queue.h"
#include "sink/sink.h"
#include "util/strbuf.h"
#include "http/watch.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ---- kernel metadata from the cgroup path and the pod cache ---- */

static size_t put_kv(struct meta_kv *kv, size_t n, size_t max, const char *key, const char *val,
		     char **scratch, size_t *left)
{
	size_t len = strlen(val);
	if (n >= max || !len || len + 1 > *left)
		return n;
	memcpy(*scratch, val, len + 1);
	kv[n].key = key;
	kv[n].val = *scratch;
	*scratch += len + 1;
	*left -= len + 1;
	return n + 1;
}

static size_t agent_cgroup_meta(void *ctx, uint64_t cgroup_id, struct meta_kv *kv, size_t max,
				char *scratch, size_t scratch_len)
{
	struct podmeta_entry e;
	if (podmeta_lookup(ctx, cgroup_id, &e))
		return 0;
	size_t n = 0;
	n = put_kv(kv, n, max, "container_id", e.ids.container_id, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "pod_uid", e.ids.pod_uid, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "pod_name", e.pod_name, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "pod_namespace", e.pod_namespace, &scratch, &scratch_len);
	return n;
}

static void agent_cgroup_removed(void *ctx, uint64_t cgroup_id)
{
	podmeta_forget(ctx, cgroup_id);
}

/* ---- collectors ---- */

struct agent {
	struct tapio_config cfg;
	struct queue *q;
	struct sink *sink;
	struct registry *reg;
	struct podmeta *pm;
	struct metrics_server *metrics;
	/* per source: left in the queue when the sink stayed unavailable at shutdown */
	uint64_t unsent[SRC__MAX];
};

static const char *const all_collectors[] = {"kernel", "k8s", "systemd", "cni", "etcd"};

static bool available(const struct tapio_config *cfg, const char *name)
{
	if (!strcmp(name, "kernel"))
		return kernel_collector_available();
	if (!strcmp(name, "k8s"))
		return k8s_collector_available(cfg);
	if (!strcmp(name, "systemd"))
		return systemd_collector_available(cfg);
	if (!strcmp(name, "cni"))
		return cni_collector_available(cfg);
	if (!strcmp(name, "etcd"))
		return etcd_collector_available(cfg);
	return false;
}

static struct collector *make_collector(struct agent *a, const char *name, char *err,
					size_t errlen)
{
	const struct tapio_config *cfg = &a->cfg;
	if (!strcmp(name, "kernel")) {
		struct kernel_opts o = {
			.containers_only = cfg->containers_only,
			.all_threads = cfg->all_threads,
			.ringbuf_size = (uint32_t)cfg->ringbuf_size,
			.cgroup_meta = agent_cgroup_meta,
			.cgroup_removed = agent_cgroup_removed,
			.meta_ctx = a->pm,
		};
		if (!a->pm) {
			o.cgroup_meta = NULL;
			o.cgroup_removed = NULL;
		}
		if (cfg->events[0] && kernel_parse_events(cfg->events, &o.type_mask, err, errlen)) {
			errno = EINVAL;
			return NULL;
		}
		return kernel_collector_new(&o, err, errlen);
	}
	if (!strcmp(name, "k8s"))
		return k8s_collector_new(cfg, err, errlen);
	if (!strcmp(name, "systemd"))
		return systemd_collector_new(cfg, err, errlen);
	if (!strcmp(name, "cni"))
		return cni_collector_new(cfg, err, errlen);
	if (!strcmp(name, "etcd"))
		return etcd_collector_new(cfg, err, errlen);
	snprintf(err, errlen, "unknown collector '%s'", name);
	errno = EINVAL;
	return NULL;
}

/* Builds the registry. Explicitly named collectors must construct; in the
 * default mode, collectors whose source is missing are left out, and a
 * collector that cannot start here is reported and left out. */
static int build_registry(struct agent *a)
{
	struct strlist want;
	if (strlist_split(&want, a->cfg.collectors))
		return -ENOMEM;
	bool explicit = want.n > 0;
	int rc = 0;
	for (size_t i = 0; i < sizeof(all_collectors) / sizeof(all_collectors[0]); i++) {
		const char *name = all_collectors[i];
		if (explicit ? !strlist_has(&want, name) : !available(&a->cfg, name))
			continue;
		char err[512] = "";
		struct collector *c = make_collector(a, name, err, sizeof(err));
		if (!c) {
			tlog(TLOG_ERR, name, "%s", err[0] ? err : strerror(errno));
			if (explicit) {
				rc = -EINVAL;
				break;
			}
			continue;
		}
		rc = registry_add(a->reg, c);
		if (rc)
			break;
	}
	strlist_free(&want);
	if (!rc && registry_count(a->reg) == 0) {
		tlog(TLOG_ERR, NULL, "no collector to run: none named, and no source found on this node");
		rc = -ENOENT;
	}
	return rc;
}

/* ---- the consumer loop ---- */

/* Writes one record; returns false when the sink asked to retry later. */
static bool deliver(struct agent *a, const struct tapio_event *ev, unsigned src)
{
	static bool reported;
	int rc = sink_write(a->sink, ev);
	if (rc == -EAGAIN) {
		atomic_fetch_add(&a->sink->retries, 1);
		return false;
	}
	if (!a->sink->self_counted) {
		atomic_fetch_add(rc == 0 ? &a->sink->src_written[src] : &a->sink->src_failed[src], 1);
		atomic_fetch_add(rc == 0 ? &a->sink->written : &a->sink->failed, 1);
	}
	if (rc == 0)
		return true;
	if (!reported) {
		tlog(TLOG_ERR, "sink", "writing to %s: %s (failures are counted in the summary)",
		     a->cfg.output, strerror(-rc));
		reported = true;
	}
	return true;
}

/* Stops the collectors, then closes the queue. It runs on its own thread so
 * that the consumer keeps draining meanwhile: a producer that waits for space
 * must get it, or stopping it would take its whole wait bound. */
static void *stop_producers(void *arg)
{
	struct agent *a = arg;
	registry_stop_all(a->reg);
	queue_close(a->q);
	return NULL;
}

static void consume(struct agent *a)
{
	bool closing = false;
	pthread_t stopper;
	bool stopper_started = false;
	uint64_t retry_deadline = 0;
	for (;;) {
		if (stop_requested && !closing) {
			closing = true;
			retry_deadline = mono_ns() + (uint64_t)a->cfg.nats_ack_wait_ms * 1000000ull;
			if (pthread_create(&stopper, NULL, stop_producers, a) == 0)
				stopper_started = true;
			else
				stop_producers(a);
		}
		size_t len;
		unsigned src;
		void *rec = queue_peek(a->q, &len, &src, 0);
		if (!rec && errno == EAGAIN) {
			/* Out of events: hand what is buffered on before sleeping. */
			sink_poll(a->sink);
			rec = queue_peek(a->q, &len, &src, closing ? 10 : 200);
		}
		if (!rec) {
			if (errno == ESHUTDOWN)
				break;
			continue; /* timeout, or a producer is still finishing a record */
		}
		const struct tapio_event *ev = rec;
		if (len < sizeof(*ev) || sizeof(*ev) + ev->meta_len + (size_t)ev->data_len > len ||
		    src >= SRC__MAX) {
			queue_release(a->q, rec); /* our producers never write such a record */
			continue;
		}
		if (a->pm)
			podmeta_observe(a->pm, ev);
		bool keep = false;
		while (!deliver(a, ev, src)) {
			if (closing && mono_ns() > retry_deadline) {
				a->unsent[src]++;
				break;
			}
			if (stop_requested && !closing) {
				keep = true; /* still at the head: retried after closing starts */
				break;
			}
			usleep(100 * 1000);
		}
		if (!keep)
			queue_release(a->q, rec);
	}
	if (stopper_started)
		pthread_join(stopper, NULL);
}

/* ---- summary ---- */

struct sum_ctx {
	uint64_t kernel_drops;
};

static void sum_counter(void *ctx, const char *name, const char *labels, uint64_t v)
{
	(void)labels;
	struct sum_ctx *s = ctx;
	if (!strcmp(name, "kernel_drops"))
		s->kernel_drops += v;
}

struct json_obj {
	struct strbuf *sb;
	bool first;
};

/* Adds one unlabelled counter as "name":value to an open JSON object. */
static void counter_json(void *ctx, const char *name, const char *labels, uint64_t v)
{
	struct json_obj *o = ctx;
	if (labels && *labels)
		return;
	if (!o->first)
		sb_putc(o->sb, ',');
	o->first = false;
	sb_json_cstr(o->sb, name);
	sb_printf(o->sb, ":%" PRIu64, v);
}

static void print_summary(struct agent *a, int flush_rc)
{
	uint64_t unsent = 0;
	for (unsigned s = 0; s < SRC__MAX; s++)
		unsent += a->unsent[s];
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "{\"summary\":{");
	bool first = true;
	for (unsigned s = 0; s < SRC__MAX; s++) {
		struct collector *c = registry_find(a->reg, source_name(s));
		struct queue_src_stats qs;
		queue_stats(a->q, s, &qs);
		if (!c && !qs.reserved && !qs.dropped)
			continue;
		struct sum_ctx k = {0};
		if (c && c->ops->counters)
			c->ops->counters(c, sum_counter, &k);
		if (!first)
			sb_putc(&sb, ',');
		first = false;
		sb_printf(&sb,
			  "\"%s\":{\"events\":%" PRIu64 ",\"dropped\":%" PRIu64
			  ",\"queue_refused\":%" PRIu64 ",\"dropped_kernel\":%" PRIu64
			  ",\"failed\":%" PRIu64 ",\"committed\":%" PRIu64,
			  source_name(s), atomic_load(&a->sink->src_written[s]),
			  (c ? atomic_load(&c->n.dropped) : qs.dropped) + k.kernel_drops, qs.dropped,
			  k.kernel_drops, atomic_load(&a->sink->src_failed[s]), qs.committed);
		sb_printf(&sb, ",\"unsent\":%" PRIu64, a->unsent[s]);
		if (c)
			sb_printf(&sb,
				  ",\"produced\":%" PRIu64 ",\"refetched\":%" PRIu64
			  ",\"parse_errors\":%" PRIu64 ",\"oversize\":%" PRIu64
				  ",\"reconnects\":%" PRIu64 ",\"errors\":%" PRIu64,
				  atomic_load(&c->n.events) + atomic_load(&c->n.dropped),
				  atomic_load(&c->n.refetched),
				  atomic_load(&c->n.parse_errors), atomic_load(&c->n.oversize),
				  atomic_load(&c->n.reconnects), atomic_load(&c->n.errors));
		sb_putc(&sb, '}');
	}
	if (!first)
		sb_putc(&sb, ',');
	sb_printf(&sb,
		  "\"sink\":{\"output\":\"%s\",\"written\":%" PRIu64 ",\"acked\":%" PRIu64
		  ",\"failed\":%" PRIu64 ",\"unsent\":%" PRIu64 ",\"flush_error\":%d",
		  strncmp(a->cfg.output, "file:", 5) ? (strncmp(a->cfg.output, "nats", 4) ? "stdout" : "nats")
						      : "file",
		  atomic_load(&a->sink->written), atomic_load(&a->sink->acked),
		  atomic_load(&a->sink->failed), unsent, flush_rc);
	/* The sink's own counters (NATS: lost, unacked_pending, ...). */
	if (a->sink->ops->counters) {
		struct json_obj o = {&sb, true};
		sb_puts(&sb, ",\"counters\":{");
		a->sink->ops->counters(a->sink, counter_json, &o);
		sb_putc(&sb, '}');
	}
	sb_puts(&sb, "}}}\n");
	if (!sb.err)
		fputs(sb.buf, stderr);
	sb_free(&sb);
}

static void agent_free(struct agent *a)
{
	metrics_stop(a->metrics);
	registry_free(a->reg);
	sink_destroy(a->sink);
	podmeta_free(a->pm);
	queue_free(a->q);
	config_free(&a->cfg);
}

int cmd_agent(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			config_usage(stdout);
			return 0;
		}
	}
	static struct agent a;
	memset(&a, 0, sizeof(a));
	char err[512];
	if (config_load(&a.cfg, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "tapio agent: %s\n", err);
		config_free(&a.cfg);
		return 2;
	}
	if (a.cfg.print_config) {
		config_print(&a.cfg, stdout);
		config_free(&a.cfg);
		return 0;
	}

	int ret = 1;
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (watch_global_init()) {
		fprintf(stderr, "tapio agent: cannot initialise libcurl\n");
		goto out;
	}
	a.q = queue_new(a.cfg.queue_size);
	if (!a.q) {
		fprintf(stderr, "tapio agent: queue of %" PRIu64 " bytes: %s\n", a.cfg.queue_size,
			strerror(errno));
		goto out;
	}
	queue_set_wait(a.q, SRC_K8S, a.cfg.queue_wait_ms);
	queue_set_wait(a.q, SRC_ETCD, a.cfg.queue_wait_ms);
	queue_set_wait(a.q, SRC_SYSTEMD, a.cfg.queue_wait_ms);

	a.sink = sink_open(a.cfg.output, SINK_JSON, &a.cfg, err, sizeof(err));
	if (!a.sink) {
		fprintf(stderr, "tapio agent: %s\n", err);
		ret = 2;
		goto out;
	}
	a.reg = registry_new();
	if (!a.reg)
		goto out;
	a.pm = podmeta_new(NULL, 16384);
	if (!a.pm)
		tlog(TLOG_WARN, NULL, "pod metadata off: %s", strerror(errno));
	int rc = build_registry(&a);
	if (rc) {
		ret = rc == -EINVAL ? 2 : 1;
		goto out;
	}
	const char *failed = NULL;
	rc = registry_start_all(a.reg, a.q, &failed);
	if (rc) {
		fprintf(stderr, "tapio agent: starting collector %s: %s\n", failed ? failed : "?",
			strerror(-rc));
		goto out;
	}
	if (a.cfg.metrics_addr[0]) {
		static struct metrics_view view;
		view = (struct metrics_view){
			.reg = a.reg, .q = a.q, .sink = a.sink, .version = TAPIO_VERSION};
		a.metrics = metrics_start(a.cfg.metrics_addr, &view, err, sizeof(err));
		if (!a.metrics)
			tlog(TLOG_WARN, "metrics", "%s (events still flow)", err);
	}
	struct strbuf names = STRBUF_INIT;
	for (size_t i = 0; i < registry_count(a.reg); i++)
		sb_printf(&names, "%s%s", i ? "," : "", collector_name(registry_get(a.reg, i)));
	tlog(TLOG_INFO, NULL, "agent running: collectors %s, output %s", names.buf ? names.buf : "",
	     a.cfg.output);
	sb_free(&names);

	consume(&a);
	metrics_stop(a.metrics);
	a.metrics = NULL;
	int flush_rc = sink_flush(a.sink);
	sink_close(a.sink); /* what is still unconfirmed now counts as failed */
	print_summary(&a, flush_rc);
	ret = 0;
out:
	if (a.reg)
		registry_stop_all(a.reg);
	agent_free(&a);
	return ret;
}
