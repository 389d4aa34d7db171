/* SPDX-License-Identifier: Apache-2.0 */
/* `tapio trace`: the kernel collector into the queue, a consumer that applies
 * the comm filter and -n, and the stream sink on stdout (JSON Lines or the
 * text table). Ends on -d, -n, SIGINT or SIGTERM: stops the collector, drains
 * the queue, flushes, prints totals per type to stderr and exits 0. */
#include <cjson/cJSON.h>
#include <dirent.h>
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

#include "cmd/commands.h"
#include "collectors/k8s/k8s.h"
#include "collectors/table.h"
#include "core/collector.h"
#include "core/event.h"
#include "core/queue.h"
#include "enrich/cgroup_path.h"
#include "enrich/podmeta.h"
#include "kernel/kernel.h"
#include "kernel/kernel_decode.h"
#include "pipeline/pipeline.h"
#include "sink/sink.h"
#include "util/cgroupfs.h"
#include "util/clock.h"
#include "util/parse.h"
#include "util/strbuf.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: tapio trace [-e|--events LIST] [-p|--pid PID] [-c|--comm NAME] [--cgroup "
	    "PATH]\n"
	    "                   [--containers] [-o|--output text|json] [-d|--duration SEC] "
	    "[-n|--count N]\n"
	    "                   [--all-threads] [--ringbuf-size BYTES] [--ringbuf-per-cpu]\n"
	    "                   [--pod NAME [-N|--namespace NS] | --pod-uid UID] [--kubeconfig "
	    "FILE]\n"
	    "\n"
	    "Traces kernel events on this node (needs root and a kernel with BTF).\n"
	    "\n"
	    "  -e, --events LIST    types or prefixes, comma-separated (default: all):\n"
	    "                       process.exec process.fork process.exit tcp.connect tcp.accept\n"
	    "                       tcp.close tcp.retransmit tcp.reset tcp.listen cgroup.mkdir\n"
	    "                       cgroup.rmdir cgroup.attach oom.kill; prefixes: process tcp "
	    "cgroup\n"
	    "                       oom\n"
	    "  -p, --pid PID        only this process (tgid), filtered in the kernel\n"
	    "  -c, --comm NAME      only tasks whose comm is NAME (filtered here)\n"
	    "      --cgroup PATH    only tasks in this cgroup2 subtree (absolute, or below the\n"
	    "                       cgroup2 mount), filtered in the kernel\n"
	    "      --containers     only tasks in a container (own pid or cgroup namespace)\n"
	    "      --pod NAME       only this pod's tasks: resolved through the API server\n"
	    "                       (--kubeconfig, KUBECONFIG, in-cluster, ~/.kube/config) to its\n"
	    "                       cgroup, filtered in the kernel; adds POD and CONTAINER "
	    "columns\n"
	    "  -N, --namespace NS   the pod's namespace (default: default)\n"
	    "      --pod-uid UID    only the pod with this uid (its cgroup; no API needed)\n"
	    "      --kubeconfig F   the kubeconfig for --pod\n"
	    "  -o, --output FMT     text (default) or json (JSON Lines)\n"
	    "  -d, --duration SEC   stop after SEC seconds\n"
	    "  -n, --count N        stop after N events\n"
	    "      --all-threads    process.fork/exit for every thread, not just processes\n"
	    "      --ringbuf-size B BPF ring buffer bytes (power of two, default 8 MiB)\n"
	    "      --ringbuf-per-cpu a ring buffer per CPU, the size split among them\n"
	    "\n"
	    "Totals per type (events, drops) go to stderr at the end.\n");
}

/* Decimal only, as the usage says: "010" is ten. */
static int parse_dec(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || !*s || s[strspn(s, "0123456789")])
		return -EINVAL;
	while (s[0] == '0' && s[1])
		s++;
	return parse_u64(s, max, out);
}

struct totals {
	uint64_t written[KERNEL_NTYPES];
	uint64_t kdrops[KERNEL_NTYPES];
	uint64_t qdrops[KERNEL_NTYPES];
	uint64_t shed[KERNEL_NTYPES]; /* part of kdrops: shed for headroom */
	uint64_t failed;
	struct {
		char name[32];
		uint64_t n;
	} map_errors[8]; /* kernel_map_errors{map} */
	unsigned nmaps;
};

static void collect_counter(void *ctx, const char *name, const char *labels, uint64_t v)
{
	struct totals *t = ctx;
	const char *q = strchr(labels, '"');
	char tname[32];
	size_t n;
	unsigned src, type;

	if (!q || !(labels = strchr(q + 1, '"')))
		return;
	n = (size_t)(labels - (q + 1));
	if (n >= sizeof(tname))
		return;
	memcpy(tname, q + 1, n);
	tname[n] = '\0';
	if (!strcmp(name, "kernel_map_errors")) {
		if (t->nmaps < sizeof(t->map_errors) / sizeof(t->map_errors[0])) {
			memcpy(t->map_errors[t->nmaps].name, tname, n + 1);
			t->map_errors[t->nmaps++].n = v;
		}
		return;
	}
	if (type_parse(tname, &src, &type) || src != SRC_KERNEL || !type ||
	    type > TYPE_KERNEL__LAST)
		return;
	if (!strcmp(name, "kernel_drops"))
		t->kdrops[type] = v;
	else if (!strcmp(name, "kernel_queue_drops"))
		t->qdrops[type] = v;
	else if (!strcmp(name, "kernel_shed"))
		t->shed[type] = v;
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
		fprintf(stderr, "%-16s %10" PRIu64 " %12" PRIu64 " %12" PRIu64 "\n",
			kernel_type_names[i], t->written[i], t->kdrops[i], t->qdrops[i]);
		sb_printf(&sb,
			  "%s\"%s\":{\"events\":%" PRIu64 ",\"dropped_kernel\":%" PRIu64
			  ",\"dropped_queue\":%" PRIu64 ",\"shed_kernel\":%" PRIu64 "}",
			  first ? "" : ",", kernel_type_names[i], t->written[i], t->kdrops[i],
			  t->qdrops[i], t->shed[i]);
		first = false;
	}
	fprintf(stderr, "%-16s %10" PRIu64 " %12" PRIu64 " %12" PRIu64 "\n", "total", all_w, all_k,
		all_q);
	sb_printf(&sb,
		  "},\"events\":%" PRIu64 ",\"dropped_kernel\":%" PRIu64
		  ",\"dropped_queue\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"parse_errors\":%" PRIu64
		  ",\"disabled\":",
		  all_w, all_k, all_q, t->failed, atomic_load(&c->n.parse_errors));
	sb_json_cstr(&sb, disabled);
	sb_puts(&sb, ",\"map_errors\":{");
	for (unsigned m = 0; m < t->nmaps; m++)
		sb_printf(&sb, "%s\"%s\":%" PRIu64, m ? "," : "", t->map_errors[m].name,
			  t->map_errors[m].n);
	sb_puts(&sb, "}}}\n");
	if (!sb.err)
		fputs(sb.buf, stderr);
	sb_free(&sb);
}

enum {
	OPT_CGROUP = 256,
	OPT_CONTAINERS,
	OPT_ALL_THREADS,
	OPT_RINGBUF,
	OPT_RINGBUF_PER_CPU,
	OPT_POD,
	OPT_POD_UID,
	OPT_KUBECONFIG
};

struct trace {
	struct kernel_opts ko;
	enum sink_format fmt;
	const char *comm;
	uint64_t duration_s, count;
	uint64_t deadline, seen;
	struct totals t;
	struct collector *c;
	/* --pod */
	const char *pod, *pod_ns, *pod_uid, *kubeconfig;
	char uid[40];
	char cgpath[CGROUP_PATH_MAX + 64];
	struct podmeta *pm;
	struct collector_hooks hooks;
};

static int bad(const char *what, const char *val, const char *why)
{
	fprintf(stderr, "tapio trace: %s: '%s' is not %s\n", what, val, why);
	return 2;
}

/* One option. Returns 0, or the exit code (2, or -1 for --help: exit 0). */
static int trace_opt(struct trace *tr, int opt, const char *arg)
{
	char err[512];
	uint64_t v;
	switch (opt) {
	case 'e':
		if (kernel_parse_events(arg, &tr->ko.type_mask, err, sizeof(err))) {
			fprintf(stderr, "tapio trace: %s\n", err);
			return 2;
		}
		return 0;
	case 'p':
		if (parse_dec(arg, INT32_MAX, &v) || v == 0)
			return bad("-p", arg, "a process id");
		tr->ko.pid = (int32_t)v;
		return 0;
	case 'c':
		if (!*arg || strlen(arg) > 15)
			return bad("-c", arg, "a comm (1 to 15 bytes)");
		tr->comm = arg;
		return 0;
	case OPT_CGROUP:
		tr->ko.cgroup_path = arg;
		return 0;
	case OPT_CONTAINERS:
		tr->ko.containers_only = true;
		return 0;
	case 'o':
		if (strcmp(arg, "json") && strcmp(arg, "text"))
			return bad("-o", arg, "text or json");
		tr->fmt = strcmp(arg, "json") ? SINK_TEXT : SINK_JSON;
		return 0;
	case 'd':
		if (parse_dec(arg, 100ull * 365 * 86400, &tr->duration_s) || !tr->duration_s)
			return bad("-d", arg, "a number of seconds");
		return 0;
	case 'n':
		if (parse_dec(arg, UINT64_MAX, &tr->count) || !tr->count)
			return bad("-n", arg, "a positive count");
		return 0;
	case OPT_ALL_THREADS:
		tr->ko.all_threads = true;
		return 0;
	case OPT_RINGBUF:
		if (parse_dec(arg, 1u << 30, &v) || (v & (v - 1)) || v < 4096)
			return bad("--ringbuf-size", arg, "a power of two of at least 4096");
		tr->ko.ringbuf_size = (uint32_t)v;
		return 0;
	case OPT_RINGBUF_PER_CPU:
		tr->ko.ring_per_cpu = true;
		return 0;
	case OPT_POD:
		if (!*arg || strlen(arg) > 253 || strchr(arg, '/'))
			return bad("--pod", arg, "a pod name");
		tr->pod = arg;
		return 0;
	case 'N':
		if (!*arg || strlen(arg) > 63 || strchr(arg, '/'))
			return bad("--namespace", arg, "a namespace");
		tr->pod_ns = arg;
		return 0;
	case OPT_POD_UID:
		if (strlen(arg) != 36 || arg[strspn(arg, "0123456789abcdef-")])
			return bad("--pod-uid", arg, "a pod uid (8-4-4-4-12 hex digits)");
		tr->pod_uid = arg;
		return 0;
	case OPT_KUBECONFIG:
		tr->kubeconfig = arg;
		return 0;
	case 'h':
		usage(stdout);
		return -1;
	default:
		usage(stderr);
		return 2;
	}
}

/* Returns 0, or the exit code (2, or -1 for --help). */
static int trace_args(struct trace *tr, int argc, char **argv)
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
	    {"ringbuf-per-cpu", no_argument, NULL, OPT_RINGBUF_PER_CPU},
	    {"pod", required_argument, NULL, OPT_POD},
	    {"namespace", required_argument, NULL, 'N'},
	    {"pod-uid", required_argument, NULL, OPT_POD_UID},
	    {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "e:p:c:o:d:n:N:h", longopts, NULL)) != -1) {
		int rc = trace_opt(tr, opt, optarg);
		if (rc)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "tapio trace: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (tr->pod && tr->pod_uid) {
		fprintf(stderr, "tapio trace: --pod and --pod-uid go one at a time\n");
		return 2;
	}
	if (tr->pod_ns && !tr->pod) {
		fprintf(stderr, "tapio trace: --namespace goes with --pod\n");
		return 2;
	}
	if ((tr->pod || tr->pod_uid) && tr->ko.cgroup_path) {
		fprintf(stderr, "tapio trace: --pod and --cgroup go one at a time\n");
		return 2;
	}
	return 0;
}

/* ---- --pod: the pod's cgroup ---- */

/* Depth-first below dir (rel: its path below the cgroup2 root) for the pod
 * level directory of uid, as the kubelet lays it out (kubepods[.slice]/...
 * pod<uid>[.slice]). Returns true with the path in out. */
static bool find_pod_dir(const char *root, char *rel, size_t rl, const char *uid, int depth,
			 char *out, size_t outlen)
{
	char dir[CGROUP_PATH_MAX + 64];
	snprintf(dir, sizeof(dir), "%s%s", root, rel);
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		size_t nl = strlen(de->d_name);
		if (rl + 1 + nl >= CGROUP_PATH_MAX)
			continue;
		rel[rl] = '/';
		memcpy(rel + rl + 1, de->d_name, nl + 1);
		struct cgroup_ids ids;
		if (strstr(de->d_name, "pod") && cgroup_path_parse(rel, rl + 1 + nl, &ids) == 0 &&
		    !ids.container_id[0] && !strcmp(ids.pod_uid, uid)) {
			snprintf(out, outlen, "%s%s", root, rel);
			found = true;
		} else if (depth < 6) {
			found = find_pod_dir(root, rel, rl + 1 + nl, uid, depth + 1, out, outlen);
		}
		rel[rl] = '\0';
	}
	closedir(d);
	return found;
}

/* Reads the pod from the API: its uid, and its containers into the pod
 * cache. Returns 0 or 2 after one error line. */
static int pod_from_api(struct trace *tr)
{
	struct k8s_options ko = {.kubeconfig = (char *)tr->kubeconfig};
	char err[512] = "", *json = NULL;
	size_t len = 0;
	const char *ns = tr->pod_ns ? tr->pod_ns : "default";
	if (k8s_pod_get(&ko, ns, tr->pod, &json, &len, err, sizeof(err))) {
		fprintf(stderr, "tapio trace: --pod %s: %s\n", tr->pod, err);
		return 2;
	}
	cJSON *j = cJSON_ParseWithLength(json, len);
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "metadata");
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(md, "uid");
	int rc = 0;
	if (!cJSON_IsString(u) || strlen(u->valuestring) >= sizeof(tr->uid)) {
		fprintf(stderr,
			"tapio trace: --pod %s: the API server's answer has no metadata.uid\n",
			tr->pod);
		rc = 2;
	} else {
		snprintf(tr->uid, sizeof(tr->uid), "%s", u->valuestring);
		podmeta_pod_update(tr->pm, tr->uid, ns, tr->pod, false);
		k8s_pod_containers(&tr->hooks, tr->uid, json, len);
	}
	cJSON_Delete(j);
	free(json);
	return rc;
}

/* Resolves --pod or --pod-uid to a cgroup and sets the kernel filter.
 * Returns 0, or 2 after one error line. */
static int resolve_pod(struct trace *tr)
{
	if (!tr->pod && !tr->pod_uid)
		return 0;
	tr->pm = podmeta_new(NULL, 1024);
	if (!tr->pm) {
		fprintf(stderr, "tapio trace: --pod: no cgroup2 mount: %s\n", strerror(errno));
		return 2;
	}
	podmeta_hooks(tr->pm, &tr->hooks);
	tr->ko.hooks = &tr->hooks;
	if (tr->pod) {
		int rc = pod_from_api(tr);
		if (rc)
			return rc;
	} else {
		snprintf(tr->uid, sizeof(tr->uid), "%s", tr->pod_uid);
	}
	char root[CGROUP_PATH_MAX], rel[CGROUP_PATH_MAX + 1] = "";
	int rc = cgroup2_find_mount(root, sizeof(root));
	if (rc) {
		fprintf(stderr, "tapio trace: --pod: no cgroup2 mount: %s\n", strerror(-rc));
		return 2;
	}
	if (!find_pod_dir(root, rel, 0, tr->uid, 0, tr->cgpath, sizeof(tr->cgpath))) {
		fprintf(stderr,
			"tapio trace: pod %s%s%s (uid %s) has no cgroup below %s: it does not run "
			"on this node\n",
			tr->pod ? (tr->pod_ns ? tr->pod_ns : "default") : "", tr->pod ? "/" : "",
			tr->pod ? tr->pod : "", tr->uid, root);
		return 2;
	}
	tr->ko.cgroup_path = tr->cgpath;
	if (tr->fmt == SINK_TEXT)
		tr->fmt = SINK_TEXT_PODS;
	return 0;
}

/* "tracing process.exec,... (filters: ...) (open to attach: N ms)" */
static void print_start(const struct trace *tr, struct collector *c)
{
	uint64_t m = kernel_collector_types(c);
	struct strbuf names = STRBUF_INIT, filters = STRBUF_INIT;
	for (unsigned i = 1; i <= TYPE_KERNEL__LAST; i++)
		if (m & (1ull << i))
			sb_printf(&names, "%s%s", names.len ? "," : "", kernel_type_names[i]);
	if (tr->ko.pid)
		sb_printf(&filters, "%spid %d", filters.len ? ", " : "", tr->ko.pid);
	if (tr->ko.cgroup_path)
		sb_printf(&filters, "%scgroup %s", filters.len ? ", " : "", tr->ko.cgroup_path);
	if (tr->ko.containers_only)
		sb_printf(&filters, "%scontainers only", filters.len ? ", " : "");
	if (tr->comm)
		sb_printf(&filters, "%scomm %s", filters.len ? ", " : "", tr->comm);
	fprintf(stderr, "tapio trace: tracing %s%s%s%s (open to attach: %.1f ms)\n",
		names.buf ? names.buf : "", filters.len ? " (filters: " : "",
		filters.buf ? filters.buf : "", filters.len ? ")" : "",
		kernel_collector_startup_us(c) / 1000.0);
	sb_free(&names);
	sb_free(&filters);
}

/* ---- pipeline hooks ---- */

static bool trace_want(void *ctx, const struct tapio_event *ev)
{
	const struct trace *tr = ctx;
	uint32_t pid;
	char name[16];
	if (ev->source != SRC_KERNEL || !ev->type || ev->type > TYPE_KERNEL__LAST)
		return false;
	return !tr->comm || (kevent_pid_comm(event_data(ev), ev->data_len, &pid, name) == 0 &&
			     !strcmp(name, tr->comm));
}

static bool trace_written(void *ctx, const struct tapio_event *ev, int rc)
{
	struct trace *tr = ctx;
	if (rc) {
		tr->t.failed++;
		return rc != -EPIPE;
	}
	tr->t.written[ev->type]++;
	return !tr->count || ++tr->seen < tr->count;
}

static bool trace_should_stop(void *ctx)
{
	const struct trace *tr = ctx;
	return tr->deadline && mono_ns() >= tr->deadline;
}

static void trace_stop_producers(void *ctx)
{
	struct trace *tr = ctx;
	collector_stop(tr->c);
}

static void trace_pipeline(struct trace *tr, struct queue *q, struct sink *sink)
{
	struct pipeline_result res;
	struct pipeline_opts po = {
	    .q = q,
	    .sink = sink,
	    .output = "stdout",
	    .idle_ms = 100,
	    .hooks = {.ctx = tr,
		      .want = trace_want,
		      .written = trace_written,
		      .should_stop = trace_should_stop,
		      .stop_producers = trace_stop_producers},
	};
	if (tr->duration_s)
		tr->deadline = mono_ns() + tr->duration_s * 1000000000ull;
	pipeline_run(&po, &res);
}

int cmd_trace(int argc, char **argv)
{
	static struct trace tr;
	memset(&tr, 0, sizeof(tr));
	tr.fmt = SINK_TEXT;
	tr.ko.source = SRC_KERNEL;
	int rc = trace_args(&tr, argc, argv);
	if (rc)
		return rc < 0 ? 0 : rc;
	rc = resolve_pod(&tr);
	if (rc) {
		podmeta_free(tr.pm);
		return rc;
	}
	pipeline_install_signals();

	char err[512] = "";
	struct collector *c = tr.c = kernel_collector_new(&tr.ko, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "tapio trace: %s\n", err);
		return 1;
	}
	if (*kernel_collector_disabled(c))
		fprintf(stderr,
			"tapio trace: turned off, cannot load on this kernel: %s (tapio probe "
			"explains)\n",
			kernel_collector_disabled(c));
	struct queue *q = queue_new(QUEUE_DEFAULT_SIZE);
	struct sink *sink = sink_stream_new(STDOUT_FILENO, false, tr.fmt, true);
	rc = 1;
	if (!q || !sink) {
		fprintf(stderr, "tapio trace: cannot set up: %s\n", strerror(errno));
		goto out;
	}
	int err_start = collector_start(c, q);
	if (err_start) {
		fprintf(stderr, "tapio trace: cannot start the kernel collector: %s\n",
			strerror(-err_start));
		goto out;
	}
	print_start(&tr, c);
	trace_pipeline(&tr, q, sink);
	sink_flush(sink);
	print_totals(c, &tr.t, kernel_collector_disabled(c));
	rc = 0;
out:
	collector_stop(c);
	collector_destroy(c);
	sink_destroy(sink);
	queue_free(q);
	podmeta_free(tr.pm);
	return rc;
}
