/* SPDX-License-Identifier: Apache-2.0 */
/* `tapio trace`: the kernel collector into the queue, a consumer that applies
 * the comm filter and -n, and the stream sink on stdout (JSON Lines or the
 * text table). Ends on -d, -n, SIGINT or SIGTERM: stops the collector, drains
 * the queue, flushes, prints totals per type to stderr and exits 0. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/collector.h"
#include "cmd/commands.h"
#include "core/event.h"
#include "kernel/kernel.h"
#include "kernel/kernel_decode.h"
#include "core/queue.h"
#include "sink/sink.h"
#include "util/strbuf.h"

static volatile sig_atomic_t trace_stop;

static void on_signal(int sig)
{
	(void)sig;
	trace_stop = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tapio trace [-e|--events LIST] [-p|--pid PID] [-c|--comm NAME] [--cgroup PATH]\n"
		"                   [--containers] [-o|--output text|json] [-d|--duration SEC] [-n|--count N]\n"
		"                   [--all-threads] [--ringbuf-size BYTES]\n"
		"\n"
		"Traces kernel events on this node (needs root and a kernel with BTF).\n"
		"\n"
		"  -e, --events LIST    types or prefixes, comma-separated (default: all):\n"
		"                       process.exec process.fork process.exit tcp.connect tcp.accept\n"
		"                       tcp.close tcp.retransmit tcp.reset cgroup.mkdir cgroup.rmdir\n"
		"                       cgroup.attach oom.kill; prefixes: process tcp cgroup oom\n"
		"  -p, --pid PID        only this process (tgid), filtered in the kernel\n"
		"  -c, --comm NAME      only tasks whose comm is NAME (filtered here)\n"
		"      --cgroup PATH    only tasks in this cgroup2 subtree (absolute, or below the\n"
		"                       cgroup2 mount), filtered in the kernel\n"
		"      --containers     only tasks in a container (own pid or cgroup namespace)\n"
		"  -o, --output FMT     text (default) or json (JSON Lines)\n"
		"  -d, --duration SEC   stop after SEC seconds\n"
		"  -n, --count N        stop after N events\n"
		"      --all-threads    process.fork/exit for every thread, not just processes\n"
		"      --ringbuf-size B BPF ring buffer bytes (power of two, default 8 MiB)\n"
		"\n"
		"Totals per type (events, drops) go to stderr at the end.\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

struct totals {
	uint64_t written[TYPE__MAX];
	uint64_t kdrops[TYPE__MAX];
	uint64_t qdrops[TYPE__MAX];
	uint64_t failed;
};

static void collect_counter(void *ctx, const char *name, const char *labels, uint64_t v)
{
	struct totals *t = ctx;
	const char *q = strchr(labels, '"');
	char tname[32];
	size_t n;
	int type;

	if (!q || !(labels = strchr(q + 1, '"')))
		return;
	n = (size_t)(labels - (q + 1));
	if (n >= sizeof(tname))
		return;
	memcpy(tname, q + 1, n);
	tname[n] = '\0';
	type = type_parse(tname);
	if (type <= 0 || type > TYPE_KERNEL__LAST)
		return;
	if (!strcmp(name, "kernel_drops"))
		t->kdrops[type] = v;
	else if (!strcmp(name, "kernel_queue_drops"))
		t->qdrops[type] = v;
}

static void print_totals(struct collector *c, struct totals *t, const char *disabled)
{
	struct strbuf sb = STRBUF_INIT;
	uint64_t all_w = 0, all_k = 0, all_q = 0;
	bool first = true;

	if (c->ops->counters)
		c->ops->counters(c, collect_counter, t);
	fprintf(stderr, "%-16s %10s %12s %12s\n", "TYPE", "EVENTS", "KERNEL_DROPS", "QUEUE_DROPS");
	sb_puts(&sb, "{\"summary\":{\"types\":{");
	for (unsigned i = 1; i <= TYPE_KERNEL__LAST; i++) {
		all_w += t->written[i];
		all_k += t->kdrops[i];
		all_q += t->qdrops[i];
		if (!t->written[i] && !t->kdrops[i] && !t->qdrops[i])
			continue;
		fprintf(stderr, "%-16s %10" PRIu64 " %12" PRIu64 " %12" PRIu64 "\n", type_name(i), t->written[i],
			t->kdrops[i], t->qdrops[i]);
		sb_printf(&sb, "%s\"%s\":{\"events\":%" PRIu64 ",\"dropped_kernel\":%" PRIu64 ",\"dropped_queue\":%" PRIu64 "}",
			  first ? "" : ",", type_name(i), t->written[i], t->kdrops[i], t->qdrops[i]);
		first = false;
	}
	fprintf(stderr, "%-16s %10" PRIu64 " %12" PRIu64 " %12" PRIu64 "\n", "total", all_w, all_k, all_q);
	sb_printf(&sb,
		  "},\"events\":%" PRIu64 ",\"dropped_kernel\":%" PRIu64 ",\"dropped_queue\":%" PRIu64
		  ",\"failed\":%" PRIu64 ",\"parse_errors\":%" PRIu64 ",\"disabled\":",
		  all_w, all_k, all_q, t->failed, atomic_load(&c->n.parse_errors));
	sb_json_cstr(&sb, disabled);
	sb_puts(&sb, "}}\n");
	if (!sb.err)
		fputs(sb.buf, stderr);
	sb_free(&sb);
}

enum { OPT_CGROUP = 256, OPT_CONTAINERS, OPT_ALL_THREADS, OPT_RINGBUF };

int cmd_trace(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"events", required_argument, NULL, 'e'},
		{"pid", required_argument, NULL, 'p'},
		{"comm", required_argument, NULL, 'c'},
		{"cgroup", required_argument, NULL, OPT_CGROUP},
		{"containers", no_argument, NULL, OPT_CONTAINERS},
		{"output", required_argument, NULL, 'o'},
		{"duration", required_argument, NULL, 'd'},
		{"count", required_argument, NULL, 'n'},
		{"all-threads", no_argument, NULL, OPT_ALL_THREADS},
		{"ringbuf-size", required_argument, NULL, OPT_RINGBUF},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct kernel_opts ko = {0};
	enum sink_format fmt = SINK_TEXT;
	const char *comm = NULL;
	uint64_t duration_s = 0, count = 0, v;
	struct collector *c = NULL;
	struct queue *q = NULL;
	struct sink *sink = NULL;
	struct totals *t = NULL;
	struct sigaction sa;
	char err[512] = "";
	uint64_t seen = 0, deadline = 0;
	int opt, rc = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "e:p:c:o:d:n:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'e':
			if (kernel_parse_events(optarg, &ko.type_mask, err, sizeof(err))) {
				fprintf(stderr, "tapio trace: %s\n", err);
				return 2;
			}
			break;
		case 'p':
			if (parse_u64(optarg, INT32_MAX, &v) || v == 0) {
				fprintf(stderr, "tapio trace: -p: '%s' is not a process id\n", optarg);
				return 2;
			}
			ko.pid = (int32_t)v;
			break;
		case 'c':
			if (!*optarg || strlen(optarg) > 15) {
				fprintf(stderr, "tapio trace: -c: '%s' is not a comm (1 to 15 bytes)\n", optarg);
				return 2;
			}
			comm = optarg;
			break;
		case OPT_CGROUP:
			ko.cgroup_path = optarg;
			break;
		case OPT_CONTAINERS:
			ko.containers_only = true;
			break;
		case 'o':
			if (!strcmp(optarg, "json")) {
				fmt = SINK_JSON;
			} else if (!strcmp(optarg, "text")) {
				fmt = SINK_TEXT;
			} else {
				fprintf(stderr, "tapio trace: -o: '%s' is not text or json\n", optarg);
				return 2;
			}
			break;
		case 'd':
			if (parse_u64(optarg, 100ull * 365 * 86400, &duration_s) || !duration_s) {
				fprintf(stderr, "tapio trace: -d: '%s' is not a number of seconds\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (parse_u64(optarg, UINT64_MAX, &count) || !count) {
				fprintf(stderr, "tapio trace: -n: '%s' is not a positive count\n", optarg);
				return 2;
			}
			break;
		case OPT_ALL_THREADS:
			ko.all_threads = true;
			break;
		case OPT_RINGBUF:
			if (parse_u64(optarg, 1u << 30, &v) || (v & (v - 1)) || v < 4096) {
				fprintf(stderr, "tapio trace: --ringbuf-size: '%s' is not a power of two of at least 4096\n",
					optarg);
				return 2;
			}
			ko.ringbuf_size = (uint32_t)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tapio trace: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	c = kernel_collector_new(&ko, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "tapio trace: %s\n", err);
		return 1;
	}
	if (*kernel_collector_disabled(c))
		fprintf(stderr, "tapio trace: turned off, cannot load on this kernel: %s (tapio probe explains)\n",
			kernel_collector_disabled(c));
	t = calloc(1, sizeof(*t));
	q = queue_new(QUEUE_DEFAULT_SIZE);
	sink = sink_stream_new(STDOUT_FILENO, false, fmt, true);
	if (!t || !q || !sink) {
		fprintf(stderr, "tapio trace: cannot set up: %s\n", strerror(errno));
		goto out;
	}
	rc = collector_start(c, q);
	if (rc) {
		fprintf(stderr, "tapio trace: cannot start the kernel collector: %s\n", strerror(-rc));
		rc = 1;
		goto out;
	}
	{
		uint64_t m = kernel_collector_types(c);
		size_t used = 0;
		char names[512] = "";

		for (unsigned i = 1; i <= TYPE_KERNEL__LAST && used < sizeof(names); i++)
			if (m & (1ull << i))
				used += snprintf(names + used, sizeof(names) - used, "%s%s", used ? "," : "",
						 type_name(i));
		char filters[512] = "";
		size_t fl = 0;

		if (ko.pid)
			fl += snprintf(filters + fl, sizeof(filters) - fl, "%spid %d", fl ? ", " : "", ko.pid);
		if (ko.cgroup_path && fl < sizeof(filters))
			fl += snprintf(filters + fl, sizeof(filters) - fl, "%scgroup %s", fl ? ", " : "", ko.cgroup_path);
		if (ko.containers_only && fl < sizeof(filters))
			fl += snprintf(filters + fl, sizeof(filters) - fl, "%scontainers only", fl ? ", " : "");
		if (comm && fl < sizeof(filters))
			snprintf(filters + fl, sizeof(filters) - fl, "%scomm %s", fl ? ", " : "", comm);
		fprintf(stderr, "tapio trace: tracing %s%s%s%s (open to attach: %.1f ms)\n", names,
			filters[0] ? " (filters: " : "", filters, filters[0] ? ")" : "",
			kernel_collector_startup_us(c) / 1000.0);
	}
	if (duration_s)
		deadline = mono_ns() + duration_s * 1000000000ull;

	bool stopping = false, writing = true;

	for (;;) {
		size_t len;
		unsigned src;
		void *rec;

		if (!stopping && (trace_stop || (deadline && mono_ns() >= deadline) || !writing)) {
			/* Stop the producer; then drain what it left. */
			collector_stop(c);
			queue_close(q);
			stopping = true;
		}
		rec = queue_peek(q, &len, &src, stopping ? 10 : 100);
		if (!rec) {
			if (errno == ESHUTDOWN)
				break;
			continue;
		}
		const struct tapio_event *ev = rec;

		if (len >= sizeof(*ev) && sizeof(*ev) + ev->meta_len + (size_t)ev->data_len <= len && writing &&
		    ev->type <= TYPE_KERNEL__LAST) {
			uint32_t pid;
			char name[16];
			bool want = true;

			if (comm)
				want = kevent_pid_comm(event_data(ev), ev->data_len, &pid, name) == 0 &&
				       !strcmp(name, comm);
			if (want) {
				int wrc = sink_write(sink, ev);

				if (wrc == 0) {
					t->written[ev->type]++;
					if (count && ++seen >= count)
						writing = false;
				} else {
					t->failed++;
					if (wrc == -EPIPE)
						writing = false;
				}
			}
		}
		queue_release(q, rec);
	}
	sink_flush(sink);
	print_totals(c, t, kernel_collector_disabled(c));
	rc = 0;
out:
	if (c) {
		collector_stop(c);
		collector_destroy(c);
	}
	sink_destroy(sink);
	queue_free(q);
	free(t);
	return rc;
}
