// SPDX-License-Identifier: Apache-2.0
/* `tapio agent`: the registry of collectors, the shared queue, one sink, the
 * metrics endpoint, and the consumer loop that moves events from the queue to
 * the sink. On SIGINT/SIGTERM: stop the producers, drain the queue into the
 * sink, flush, print per-source totals as one JSON line on stderr, exit 0. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectors/table.h"
#include "cmd/commands.h"
#include "core/collector.h"
#include "core/config.h"
#include "core/event.h"
#include "core/queue.h"
#include "core/state.h"
#include "enrich/podmeta.h"
#include "http/watch.h"
#include "kernel/kernel.h"
#include "metrics/metrics.h"
#include "pipeline/pipeline.h"
#include "sink/sink.h"
#include "sink/otlp.h"
#include "sink/sink_nats.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/clock.h"
#include "util/strlist.h"

/* ---- collectors ---- */

/* The running marker: <state-dir>/running, written at start, refreshed
 * every RUNNING_REFRESH_MS, removed on a graceful stop. Found at start, it
 * says the last run ended uncleanly (a SIGKILL, an OOM kill, a crash, a
 * power cut): the kernel source then reports the window it could not see.
 * The start's write is durable (state_write: fsync, rename, fsync); a
 * refresh rewrites the file in place without a sync: it outlives a crash or
 * a kill of the process (the page cache has it), and a power cut at worst
 * loses refreshes, which only moves the reported gap's start earlier. */
#define RUNNING_FILE "running"
#define RUNNING_REFRESH_MS 5000

struct running {
	char *dir;  /* a copy: it outlives the config */
	int fd;	    /* the marker, for its refreshes; -1 */
	size_t len; /* its length */
	uint64_t start_ns;
	pthread_t thr;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool stop;
};

struct agent {
	struct tapio_config cfg;
	struct running run;
	struct queue *q;
	struct sink *sink;
	struct registry *reg;
	struct podmeta *pm;
	struct collector_hooks hooks;
	struct metrics_server *metrics;
	struct pipeline_result res; /* unsent per source, after the run */
};

/* Every option group: the collectors' (table order), then the sinks'. */
size_t agent_option_groups(const struct opt_group **g, size_t max)
{
	size_t n = collector_table_groups(g, max);
	if (n < max)
		g[n++] = &nats_options_group;
	if (n < max)
		g[n++] = &otlp_options_group;
	return n;
}

static struct collector_env env_for(const struct agent *a, unsigned source)
{
	const struct collector_desc *d = &collector_table[source];
	return (struct collector_env){
	    .cfg = &a->cfg,
	    .opts = d->options ? config_group(&a->cfg, d->options) : NULL,
	    .source = source,
	    .hooks = a->pm ? &a->hooks : NULL,
	};
}

/* Every collector named in --collectors is a row of the table. */
static int check_collectors(const struct tapio_config *cfg, char *err, size_t errlen)
{
	struct strlist l;
	if (strlist_split(&l, cfg->collectors))
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < l.n && !rc; i++) {
		if (!collector_table_find(l.v[i])) {
			snprintf(err, errlen, "collectors: unknown collector '%s' (%s)", l.v[i],
				 collector_table_names());
			rc = -EINVAL;
		}
	}
	strlist_free(&l);
	return rc;
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
	for (unsigned i = 0; i < SRC__COUNT; i++) {
		const struct collector_desc *d = &collector_table[i];
		const char *name = d->name;
		struct collector_env env = env_for(a, i);
		if (explicit ? !strlist_has(&want, name) : !d->available(&env))
			continue;
		char err[512] = "";
		struct collector *c = d->create(&env, err, sizeof(err));
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
		tlog(TLOG_ERR, NULL,
		     "no collector to run: none named, and no source found on this node");
		rc = -ENOENT;
	}
	return rc;
}

/* ---- the running marker ---- */

static int running_format(const struct running *r, char *buf, size_t size)
{
	return snprintf(buf, size,
			"tapio-running 1\nstarted %" PRIu64 "\nalive %" PRIu64 "\npid %d\n",
			r->start_ns, now_ns(), (int)getpid());
}

static int running_write(struct running *r)
{
	char buf[128];
	int n = running_format(r, buf, sizeof(buf));
	int rc = state_write(r->dir, RUNNING_FILE, buf, (size_t)n);
	if (rc)
		return rc;
	r->len = (size_t)n;
	if (r->fd < 0) {
		int dfd = state_dir_open(r->dir, NULL, 0);
		if (dfd >= 0) {
			r->fd = openat(dfd, RUNNING_FILE, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
			close(dfd);
		}
	}
	return 0;
}

/* A refresh: in place, no sync (see above); the durable write when the
 * file cannot be written in place. */
static void running_refresh(struct running *r)
{
	char buf[128];
	int n = running_format(r, buf, sizeof(buf));
	if (r->fd >= 0 && pwrite(r->fd, buf, (size_t)n, 0) == n &&
	    ((size_t)n == r->len || ftruncate(r->fd, n) == 0)) {
		r->len = (size_t)n;
		return;
	}
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	running_write(r);
}

static void *running_main(void *arg)
{
	struct running *r = arg;
	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += RUNNING_REFRESH_MS / 1000;
		pthread_cond_timedwait(&r->cv, &r->lock, &ts);
		if (!r->stop)
			running_refresh(r);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* The kernel.gap window (kernel.h): an unclean stop's, carried back to the
 * oldest window whose event the sink never acknowledged (KERNEL_GAP_FILE);
 * after a graceful stop, that unacknowledged window as it was. Kept in the
 * file until the sink has the event. */
static void gap_begin(struct running *r, bool unclean, uint64_t from)
{
	char buf[256];
	uint64_t pfrom = 0, pto = 0, to = r->start_ns;
	ssize_t n = r->dir[0] ? state_read(r->dir, KERNEL_GAP_FILE, buf, sizeof(buf)) : -ENOENT;
	bool pending = n >= 0 && kernel_gap_parse(buf, &pfrom, &pto) == 0;
	if (n >= 0 && !pending)
		tlog(TLOG_WARN, NULL, "%s/%s: not a tapio-gap file; ignored", r->dir,
		     KERNEL_GAP_FILE);
	else if (n < 0 && n != -ENOENT)
		tlog(TLOG_WARN, NULL, "%s/%s: %s; ignored", r->dir, KERNEL_GAP_FILE,
		     strerror((int)-n));
	if (pending && unclean) {
		if (pfrom < from) {
			tlog(TLOG_WARN, NULL,
			     "the kernel.gap of an earlier run (from %" PRIu64
			     ") never reached the sink: the gap starts there",
			     pfrom);
			from = pfrom;
		}
	} else if (pending) {
		tlog(TLOG_WARN, NULL,
		     "the kernel.gap of an earlier run never reached the sink: sending it again");
		from = pfrom;
		to = pto;
	} else if (!unclean) {
		return;
	}
	int len = kernel_gap_format(buf, sizeof(buf), from, to);
	int rc = len < 0 ? len : state_write(r->dir, KERNEL_GAP_FILE, buf, (size_t)len);
	if (rc)
		tlog(TLOG_WARN, NULL,
		     "%s/%s: cannot write: %s (the gap is lost if this run stops before the sink "
		     "has it)",
		     r->dir, KERNEL_GAP_FILE, strerror(-rc));
	kernel_note_gap(r->dir, from, to);
}

/* Reads the marker a stopped run left (the last time it was known to be
 * running: "alive", else "started"), then writes this run's. */
static void running_begin(struct agent *a)
{
	struct running *r = &a->run;
	if (!a->cfg.state_dir || !*a->cfg.state_dir)
		return;
	r->dir = strdup(a->cfg.state_dir);
	if (!r->dir)
		return;
	r->start_ns = now_ns();
	int rc = state_mkdir(r->dir);
	char buf[256];
	ssize_t n = rc ? rc : state_read(r->dir, RUNNING_FILE, buf, sizeof(buf));
	bool unclean = n >= 0;
	uint64_t from = r->start_ns;
	if (unclean) {
		unsigned long long started = 0, alive = 0;
		const char *p = strstr(buf, "\nstarted ");
		if (p)
			started = strtoull(p + 9, NULL, 10);
		p = strstr(buf, "\nalive ");
		if (p)
			alive = strtoull(p + 7, NULL, 10);
		from = alive ? alive : started;
		if (!from || from > r->start_ns) {
			tlog(TLOG_WARN, NULL,
			     "%s/%s: the last run did not stop cleanly (no time in it)", r->dir,
			     RUNNING_FILE);
			from = r->start_ns;
		} else {
			tlog(TLOG_WARN, NULL,
			     "the last run did not stop cleanly: kernel events of the last %.1f s "
			     "before this start are not seen (kernel.gap)",
			     (double)(r->start_ns - from) / 1e9);
		}
	} else if (n != -ENOENT) {
		tlog(TLOG_WARN, NULL, "%s/%s: %s", r->dir, RUNNING_FILE, strerror((int)-n));
	}
	gap_begin(r, unclean, from);
	if (rc || (rc = running_write(r))) {
		tlog(TLOG_WARN, NULL,
		     "%s/%s: cannot write: %s (an unclean stop will not be noticed)", r->dir,
		     RUNNING_FILE, strerror(-rc));
		return;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->started = pthread_create(&r->thr, NULL, running_main, r) == 0;
}

/* A graceful stop: the marker goes. */
static void running_end(struct agent *a)
{
	struct running *r = &a->run;
	if (r->started) {
		pthread_mutex_lock(&r->lock);
		r->stop = true;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->thr, NULL);
		r->started = false;
	}
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
	if (r->dir) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", r->dir, RUNNING_FILE);
		if (unlink(path) && errno != ENOENT)
			tlog(TLOG_WARN, NULL, "%s: %s", path, strerror(errno));
		free(r->dir);
		r->dir = NULL;
	}
}

/* ---- the pipeline ---- */

static void stop_collectors(void *ctx)
{
	struct agent *a = ctx;
	registry_stop_all(a->reg);
}

static void run_pipeline(struct agent *a)
{
	const struct nats_options *no = config_group(&a->cfg, &nats_options_group);
	struct pipeline_opts po = {
	    .q = a->q,
	    .sink = a->sink,
	    .output = a->cfg.output,
	    .report_failures = true,
	    /* A sink with timed work (a batch's age, a retry) is polled every
	     * 200 ms while the queue is empty, unless it says that nothing is
	     * due (idle_ms: NATS with every event acked); a stream sink is
	     * flushed when the queue runs empty and has nothing to do until the
	     * next record or a stop request, which kicks the wait. */
	    .idle_ms = a->sink->ops->poll ? PIPELINE_IDLE_MS : PIPELINE_IDLE_FOREVER,
	    .retry_ms = no ? no->ack_wait_ms : 5000,
	    .hooks = {.ctx = a, .stop_producers = stop_collectors},
	};
	pipeline_run(&po, &a->res);
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

static const char *output_kind(const char *o)
{
	if (!strncmp(o, "file:", 5))
		return "file";
	if (!strncmp(o, "nats", 4))
		return "nats";
	if (!strncmp(o, "otlp", 4))
		return "otlp";
	return "stdout";
}

static void print_summary(struct agent *a, int flush_rc)
{
	uint64_t unsent = 0;
	for (unsigned s = 0; s < SRC_MAX; s++)
		unsent += a->res.unsent[s];
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "{\"summary\":{");
	bool first = true;
	for (unsigned s = 0; s < SRC_MAX; s++) {
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
			  (c ? atomic_load(&c->n.dropped) : qs.dropped) + k.kernel_drops,
			  qs.dropped, k.kernel_drops, atomic_load(&a->sink->src_failed[s]),
			  qs.committed);
		sb_printf(&sb, ",\"unsent\":%" PRIu64, a->res.unsent[s]);
		if (c)
			sb_printf(&sb,
				  ",\"produced\":%" PRIu64 ",\"refetched\":%" PRIu64
				  ",\"parse_errors\":%" PRIu64 ",\"oversize\":%" PRIu64
				  ",\"reconnects\":%" PRIu64 ",\"errors\":%" PRIu64,
				  atomic_load(&c->n.events) + atomic_load(&c->n.dropped),
				  atomic_load(&c->n.refetched), atomic_load(&c->n.parse_errors),
				  atomic_load(&c->n.oversize), atomic_load(&c->n.reconnects),
				  atomic_load(&c->n.errors));
		sb_putc(&sb, '}');
	}
	if (!first)
		sb_putc(&sb, ',');
	sb_printf(&sb,
		  "\"sink\":{\"output\":\"%s\",\"written\":%" PRIu64 ",\"acked\":%" PRIu64
		  ",\"failed\":%" PRIu64 ",\"unsent\":%" PRIu64 ",\"flush_error\":%d",
		  output_kind(a->cfg.output), atomic_load(&a->sink->written),
		  atomic_load(&a->sink->acked), atomic_load(&a->sink->failed), unsent, flush_rc);
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

int agent_config_load(struct tapio_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	const struct opt_group *groups[CONFIG_GROUPS_MAX];
	size_t ng = agent_option_groups(groups, CONFIG_GROUPS_MAX);
	int rc = config_load(cfg, groups, ng, argc, argv, err, errlen);
	return rc ? rc : check_collectors(cfg, err, errlen);
}

/* Loads and checks the config. Returns 0, 1 (done: --help, --print-config)
 * or 2 (a bad config, reported). */
static int agent_config(struct agent *a, int argc, char **argv)
{
	const struct opt_group *groups[CONFIG_GROUPS_MAX];
	size_t ng = agent_option_groups(groups, CONFIG_GROUPS_MAX);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			config_usage(groups, ng, stdout);
			return 1;
		}
	}
	char err[512];
	if (agent_config_load(&a->cfg, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "tapio agent: %s\n", err);
		return 2;
	}
	if (a->cfg.print_config) {
		config_print(&a->cfg, stdout);
		return 1;
	}
	return 0;
}

/* The queue, the sink, the pod cache and the collectors. Returns 0 or the
 * exit code (1, or 2 for a bad config). */
static int agent_setup(struct agent *a)
{
	char err[512];
	int rc;
	a->q = queue_new(a->cfg.queue_size);
	if (!a->q) {
		fprintf(stderr, "tapio agent: queue of %" PRIu64 " bytes: %s\n", a->cfg.queue_size,
			strerror(errno));
		return 1;
	}
	for (unsigned i = 0; i < SRC__COUNT; i++)
		if (collector_table[i].resumable)
			queue_set_wait(a->q, i, a->cfg.queue_wait_ms);
	a->sink = sink_open(a->cfg.output, SINK_JSON, &a->cfg, err, sizeof(err));
	if (!a->sink) {
		fprintf(stderr, "tapio agent: %s\n", err);
		return 2;
	}
	if (a->cfg.state_dir && *a->cfg.state_dir) {
		int fd = state_dir_open(a->cfg.state_dir, err, sizeof(err));
		if (fd < 0) {
			fprintf(stderr, "tapio agent: state-dir %s: %s\n", a->cfg.state_dir, err);
			return 2;
		}
		close(fd);
	}
	a->reg = registry_new();
	if (!a->reg)
		return 1;
	a->pm = podmeta_new(NULL, 16384);
	if (a->pm && podmeta_set_labels(a->pm, a->cfg.pod_labels)) {
		podmeta_free(a->pm);
		a->pm = NULL;
	}
	/* misses resolve on a thread of their own, not on the ring buffer's */
	if (a->pm && (rc = podmeta_start_resolver(a->pm)))
		tlog(TLOG_WARN, NULL, "pod metadata resolves on the event thread: %s",
		     strerror(-rc));
	if (a->pm)
		podmeta_hooks(a->pm, &a->hooks);
	else
		tlog(TLOG_WARN, NULL, "pod metadata off: %s", strerror(errno));
	rc = build_registry(a);
	return rc ? (rc == -EINVAL ? 2 : 1) : 0;
}

static void podmeta_metrics(void *pm, counter_fn fn, void *ctx)
{
	podmeta_counters(pm, fn, ctx);
}

/* Starts the collectors and the metrics endpoint. Returns 0 or 1. */
static int agent_start(struct agent *a)
{
	char err[512];
	const char *failed = NULL;
	int rc = registry_start_all(a->reg, a->q, &failed);
	if (rc) {
		fprintf(stderr, "tapio agent: starting collector %s: %s\n", failed ? failed : "?",
			strerror(-rc));
		return 1;
	}
	if (a->cfg.metrics_addr[0]) {
		static struct metrics_view view;
		view = (struct metrics_view){.reg = a->reg,
					     .q = a->q,
					     .sink = a->sink,
					     .version = TAPIO_VERSION,
					     .extra_counters = a->pm ? podmeta_metrics : NULL,
					     .extra_obj = a->pm,
					     .extra_prefix = "tapio_podmeta_"};
		a->metrics = metrics_start(a->cfg.metrics_addr, &view, err, sizeof(err));
		if (!a->metrics)
			tlog(TLOG_WARN, "metrics", "%s (events still flow)", err);
	}
	struct strbuf names = STRBUF_INIT;
	for (size_t i = 0; i < registry_count(a->reg); i++)
		sb_printf(&names, "%s%s", i ? "," : "", collector_name(registry_get(a->reg, i)));
	tlog(TLOG_INFO, NULL, "agent running: collectors %s, output %s", names.buf ? names.buf : "",
	     a->cfg.output);
	sb_free(&names);
	return 0;
}

/* The allocator, set before any thread starts. The event path does not
 * allocate, so one arena per thread (glibc's default: up to 8 per core, each
 * keeping its own free pages) buys nothing but resident memory: two arenas.
 * A fixed trim threshold (it also fixes the mmap threshold at its 128 KiB
 * default instead of letting it grow) gives freed start-up memory, such as
 * libbpf's parse of the kernel's BTF, back to the system. */
static void agent_malloc_setup(void)
{
	mallopt(M_ARENA_MAX, 2);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

int cmd_agent(int argc, char **argv)
{
	static struct agent a;
	memset(&a, 0, sizeof(a));
	a.run.fd = -1;
	agent_malloc_setup();
	int ret = agent_config(&a, argc, argv);
	if (ret) {
		config_free(&a.cfg);
		return ret == 1 ? 0 : 2;
	}
	pipeline_install_signals();
	ret = agent_setup(&a);
	if (!ret) {
		running_begin(&a);
		ret = agent_start(&a);
	}
	if (!ret) {
		malloc_trim(0); /* what start-up freed (BTF, config, kubeconfig) */
		run_pipeline(&a);
		metrics_stop(a.metrics);
		a.metrics = NULL;
		int flush_rc = sink_flush(a.sink);
		sink_close(a.sink); /* what is still unconfirmed now counts as failed */
		print_summary(&a, flush_rc);
	}
	if (a.reg)
		registry_stop_all(a.reg);
	agent_free(&a); /* the collectors' last cursors are written */
	running_end(&a);
	return ret;
}
