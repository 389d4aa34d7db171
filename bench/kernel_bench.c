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
#include "kernel/kernel.h"
#include "kernel/kernel_decode.h"
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

int main(void)
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

	size_t exlen = offsetof(struct exec_event, args) + ex.args_len;
	bench_decode("process.exec json", &ex, exlen, kevent_json);
	bench_decode("process.exec text", &ex, exlen, kevent_text);
	bench_decode("tcp.close ipv6 json", &tcp, sizeof(tcp), kevent_json);
	bench_decode("tcp.close ipv6 text", &tcp, sizeof(tcp), kevent_text);
	bench_startup();
	return 0;
}
