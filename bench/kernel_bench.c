// SPDX-License-Identifier: Apache-2.0
/* Kernel tracer numbers: decoding cost per record (JSON and text), and the
 * kernel collector's start-up time (open to attach) when run as root. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bpf/events.h"
#include "core/collector.h"
#include "core/event.h"
#include "core/queue.h"
#include "kernel/kernel.h"
#include "kernel/kernel_decode.h"
#include "sink/format.h"
#include "util/strbuf.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench_decode(const char *what, const void *rec, size_t len,
			 int (*fn)(const void *, size_t, struct strbuf *))
{
	struct strbuf sb = STRBUF_INIT;
	const int n = 500000;
	size_t bytes = 0;
	double t0 = now_s(), dt;

	for (int i = 0; i < n; i++) {
		sb_reset(&sb);
		if (fn(rec, len, &sb) != 0) {
			fprintf(stderr, "decode failed\n");
			exit(1);
		}
		bytes += sb.len;
	}
	dt = now_s() - t0;
	printf("%-24s %8.0f ns/record  %6.2f M records/s  %zu bytes out\n", what, dt / n * 1e9,
	       n / dt / 1e6, bytes / n);
	sb_free(&sb);
}

/* The consumer's hot path for a tcp.connect as bench/overhead/flood.bpf.c
 * writes it, apart from the ring buffer: each record reserved in a queue
 * with its cgroup_id meta, copied, committed, peeked, formatted as a JSON
 * line into a 64 KiB buffer (emptied as the stream sink empties it) and
 * released. */
static void bench_queue_json(void)
{
	struct queue *q = queue_new(1u << 22);
	struct strbuf sb = STRBUF_INIT;
	struct tcp_event e;
	const int n = 1000000;
	size_t bytes = 0;
	double t_prod = 0, t_cons = 0;

	if (!q || source_register(0, &kernel_source)) {
		fprintf(stderr, "queue_json: setup failed\n");
		exit(1);
	}
	memset(&e, 0, sizeof(e));
	e.hdr.type = EVENT_TCP_CONNECT;
	e.hdr.ts = 23465280070016ull;
	e.hdr.pid = e.hdr.tgid = 26453;
	e.hdr.cgroup_id = 1;
	e.hdr.cpu = 1;
	memcpy(e.hdr.comm, "flood", 6);
	e.family = AF_INET;
	e.dport = 8080;
	e.oldstate = 7;
	e.state = 2;
	e.flags = TCP_F_OWNER_KNOWN;
	e.saddr[0] = e.daddr[0] = 127;
	e.saddr[3] = e.daddr[3] = 1;
	for (int done = 0; done < n;) {
		double t0 = now_s();
		int batch = 0;

		for (; batch < 1024 && done + batch < n; batch++) {
			struct meta_kv kv = {"cgroup_id", "1"};
			struct tapio_event *ev;

			e.sport = (uint16_t)(40000 + ((done + batch) & 0x3fff));
			ev = event_reserve(q, 0, EVENT_TCP_CONNECT, FMT_STRUCT,
					   1764627849722599530ull + (uint64_t)(done + batch) * 300,
					   &kv, 1, sizeof(e));
			if (!ev) {
				fprintf(stderr, "queue_json: reserve failed\n");
				exit(1);
			}
			memcpy(event_data(ev), &e, sizeof(e));
			queue_commit_quiet(q, ev);
		}
		double t1 = now_s();
		for (int i = 0; i < batch; i++) {
			size_t len;
			unsigned src;
			void *rec = queue_peek(q, &len, &src, 0);

			if (!rec || format_json(rec, &sb)) {
				fprintf(stderr, "queue_json: peek or format failed\n");
				exit(1);
			}
			if (sb.len >= 64 * 1024) {
				bytes += sb.len;
				sb_reset(&sb);
			}
			queue_release(q, rec);
		}
		t_prod += t1 - t0;
		t_cons += now_s() - t1;
		done += batch;
	}
	bytes += sb.len;
	printf("tcp.connect queue+json    produce %4.0f ns/record  consume+format %4.0f ns/record  "
	       "%zu bytes/line\n",
	       t_prod / n * 1e9, t_cons / n * 1e9, bytes / n);
	sb_free(&sb);
	queue_free(q);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void bench_startup(void)
{
	enum { N = 10 };
	uint64_t us[N];
	char err[512];

	if (geteuid() != 0 || !kernel_collector_available()) {
		printf(
		    "kernel start-up           skipped (needs root and /sys/kernel/btf/vmlinux)\n");
		return;
	}
	for (int i = 0; i < N; i++) {
		struct kernel_opts o = {0};
		struct collector *c = kernel_collector_new(&o, err, sizeof(err));

		if (!c) {
			printf("kernel start-up           failed: %s\n", err);
			return;
		}
		us[i] = kernel_collector_startup_us(c);
		collector_destroy(c);
	}
	qsort(us, N, sizeof(us[0]), cmp_u64);
	printf("kernel start-up (open to attach, every program, %d runs): min %.1f ms  median %.1f "
	       "ms  max %.1f ms\n",
	       N, us[0] / 1000.0, us[N / 2] / 1000.0, us[N - 1] / 1000.0);
}

int main(int argc, char **argv)
{
	static struct exec_event ex;
	static const char args[] =
	    "/usr/bin/python3\0-c\0import sys; print(sys.argv)\0--flag=value\0";
	struct tcp_event tcp;

	memset(&ex, 0, sizeof(ex));
	ex.hdr.type = EVENT_PROCESS_EXEC;
	ex.hdr.tgid = ex.hdr.pid = 4242;
	memcpy(ex.hdr.comm, "python3", 8);
	strcpy(ex.filename, "/usr/bin/python3");
	ex.filename_len = strlen(ex.filename);
	memcpy(ex.args, args, sizeof(args) - 1);
	ex.args_len = sizeof(args) - 1;
	ex.argc = 4;

	memset(&tcp, 0, sizeof(tcp));
	tcp.hdr.type = EVENT_TCP_CLOSE;
	tcp.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", tcp.saddr);
	inet_pton(AF_INET6, "2001:db8::2", tcp.daddr);
	tcp.sport = 443;
	tcp.dport = 50000;
	tcp.state = 7;
	tcp.oldstate = 1;

	if (argc > 1 && !strcmp(argv[1], "queue")) {
		bench_queue_json();
		return 0;
	}
	size_t exlen = offsetof(struct exec_event, args) + ex.args_len;
	bench_decode("process.exec json", &ex, exlen, kevent_json);
	bench_decode("process.exec text", &ex, exlen, kevent_text);
	bench_decode("tcp.close ipv6 json", &tcp, sizeof(tcp), kevent_json);
	bench_decode("tcp.close ipv6 text", &tcp, sizeof(tcp), kevent_text);
	bench_queue_json();
	bench_startup();
	return 0;
}
