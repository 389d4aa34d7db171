// SPDX-License-Identifier: Apache-2.0
/* Throughput of the NATS JetStream sink against a local `nats-server -js`
 * (file storage, loopback): events formatted, published asynchronously and
 * acked, for a few in-flight windows. Prints events/s and MB/s of payload.
 * Without nats-server it says so and exits 0. */
#include <stdio.h>
#include <string.h>

#include "collectors/table.h"
#include "kernel/kernel_types.h"
#include "core/event.h"
#include "util/clock.h"
#include "util/log.h"
#include "core/queue.h"
#include "sink/sink_nats.h"
#include "util/strbuf.h"
#include "tests/lib/nats_server.h"

#define N_EVENTS 100000

static void quiet(int level, const char *who, const char *msg)
{
	(void)level;
	(void)who;
	(void)msg;
}

static int run(struct nats_srv *srv, unsigned inflight, const char *stream, const char *prefix)
{
	struct nats_options cfg = {0};
	struct queue *q = queue_new(64u << 20);
	struct sink *s;
	char err[200], data[200];
	struct meta_kv kv[] = {{"cgroup_id", "4242"}, {"container_id", "0123456789abcdef"}};
	uint64_t t0, t1, bytes = 0, eagain = 0;
	unsigned done = 0;

	cfg.subject_prefix = (char *)prefix;
	cfg.stream = (char *)stream;
	cfg.retention = "limits";
	cfg.max_inflight = inflight;
	cfg.ack_wait_ms = 30000;
	s = sink_nats_new(srv->url, &cfg, "bench", err, sizeof(err));
	if (!s || !q) {
		fprintf(stderr, "bench_nats: %s\n", s ? "queue" : err);
		return 1;
	}
	memset(data, 'x', sizeof(data));
	/* Warm up: the stream exists and the connection is up. */
	for (int i = 0; i < 50 && !s->ops->connected(s); i++)
		ns_sleep_ms(20);

	t0 = mono_ns();
	for (unsigned i = 0; i < N_EVENTS; i++) {
		size_t len;
		unsigned src;
		void *rec;

		if (event_emit(q, SRC_KERNEL, TYPE_PROCESS_EXEC, FMT_TEXT, now_ns(), kv, 2, data,
			       sizeof(data)))
			return 1;
		rec = queue_peek(q, &len, &src, 0);
		for (;;) {
			int rc = s->ops->write(s, rec);

			if (rc == 0)
				break;
			if (rc != -EAGAIN) {
				fprintf(stderr, "bench_nats: write: %s\n", strerror(-rc));
				return 1;
			}
			eagain++;
			ns_sleep_ms(1);
		}
		bytes += len;
		queue_release(q, rec);
		done++;
	}
	int frc = s->ops->flush(s);
	t1 = mono_ns();
	double secs = (double)(t1 - t0) / 1e9;
	printf("nats sink, max_inflight %5u: %u events acked in %.2f s = %8.0f events/s, %.1f MB/s "
	       "records "
	       "(full-window waits %lu, unacked %lu)\n",
	       inflight, done, secs, done / secs, (double)bytes / secs / 1e6, (unsigned long)eagain,
	       (unsigned long)sink_nats_unacked(s));
	s->ops->destroy(s);
	queue_free(q);
	return frc != 0;
}

int main(void)
{
	struct nats_srv srv = {0};
	int rc = 0;

	if (access(NATS_SERVER_BIN, X_OK) != 0) {
		printf("bench_nats: %s is not installed; skipped\n", NATS_SERVER_BIN);
		return 0;
	}
	log_set_hook(quiet);
	if (ns_start(&srv) != 0) {
		fprintf(stderr, "bench_nats: nats-server did not start\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	rc |= run(&srv, 256, "B1", "bench1");
	rc |= run(&srv, 4096, "B2", "bench2");
	ns_stop(&srv);
	return rc;
}
