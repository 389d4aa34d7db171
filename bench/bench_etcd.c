/* SPDX-License-Identifier: Apache-2.0 */
/* The etcd collector's hot path without the network: a stream of watch
 * responses as etcd 3.4's gateway writes them (one event each, a Kubernetes
 * pod-sized value of about 3 KiB in base64, with prev_kv) is
 *   1. cut by the JSON-object framer (user/http/watch.c), fed in 16 KiB pieces as
 *      libcurl hands them over,
 *   2. then also parsed (etcd_watch_parse) and each event encoded
 *      (etcd_event_json), which is what the collector does per message.
 * Prints MB/s and responses/s for each, the median of three runs.
 * TAPIO_BENCH_SCALE (default 1) multiplies the stream length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collectors/etcd/etcd.h"
#include "util/strbuf.h"
#include "http/watch.h"

static uint64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct sink {
	bool parse;
	uint64_t n, bytes, events;
	struct strbuf sb;
};

static int on_msg(void *ctx, const char *msg, size_t len)
{
	struct sink *s = ctx;
	s->n++;
	s->bytes += len;
	if (!s->parse)
		return 0;
	struct etcd_watch_resp r;
	char err[128];
	if (etcd_watch_parse(msg, len, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench: parse failed: %s\n", err);
		exit(1);
	}
	for (size_t i = 0; i < r.nev; i++) {
		sb_reset(&s->sb);
		etcd_event_json(&s->sb, &r.ev[i]);
		s->events++;
	}
	etcd_watch_resp_free(&r);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(void)
{
	const char *sc = getenv("TAPIO_BENCH_SCALE");
	unsigned scale = sc && atoi(sc) > 0 ? (unsigned)atoi(sc) : 1;
	size_t nresp = 20000 * scale;

	/* one response: a pod-like value (2.3 KiB raw), its previous value */
	char value[2400];
	for (size_t i = 0; i < sizeof(value); i++)
		value[i] = (char)("k8s\0pod-spec-"[i % 13] + (i / 13) % 7);
	struct strbuf one = STRBUF_INIT, stream = STRBUF_INIT;
	for (size_t i = 0; i < nresp; i++) {
		char key[96];
		int kl =
		    snprintf(key, sizeof(key), "/registry/pods/namespace-%zu/web-%zu", i % 50, i);
		sb_reset(&one);
		sb_printf(&one,
			  "{\"result\":{\"header\":{\"cluster_id\":\"15118495548433857066\","
			  "\"member_id\":"
			  "\"13668033151171901709\",\"revision\":\"%zu\",\"raft_term\":\"2\"},"
			  "\"events\":[{\"kv\":{\"key\":\"",
			  i + 2);
		sb_base64(&one, key, (size_t)kl);
		sb_printf(&one,
			  "\",\"create_revision\":\"2\",\"mod_revision\":\"%zu\",\"version\":\"%"
			  "zu\",\"value\":\"",
			  i + 2, i + 1);
		sb_base64(&one, value, sizeof(value));
		sb_puts(&one, "\"},\"prev_kv\":{\"key\":\"");
		sb_base64(&one, key, (size_t)kl);
		sb_puts(&one, "\",\"create_revision\":\"2\",\"mod_revision\":\"1\",\"version\":"
			      "\"1\",\"value\":\"");
		sb_base64(&one, value, sizeof(value));
		sb_puts(&one, "\"}}]}}\n");
		sb_add(&stream, one.buf, one.len);
	}
	if (stream.err) {
		fprintf(stderr, "bench: out of memory\n");
		return 1;
	}

	for (int parse = 0; parse <= 1; parse++) {
		uint64_t t[3];
		struct sink s = {.parse = parse};
		for (int run = 0; run < 3; run++) {
			struct framer f;
			s.n = s.bytes = s.events = 0;
			framer_init(&f, FRAME_JSON_OBJECTS, 0);
			uint64_t t0 = mono();
			for (size_t off = 0; off < stream.len; off += 16384) {
				size_t n = stream.len - off < 16384 ? stream.len - off : 16384;
				if (framer_feed(&f, stream.buf + off, n, on_msg, &s) != 0)
					return 1;
			}
			t[run] = mono() - t0;
			framer_free(&f);
			if (s.n != nresp || (parse && s.events != nresp)) {
				fprintf(stderr, "bench: %lu of %zu responses\n", (unsigned long)s.n,
					nresp);
				return 1;
			}
		}
		qsort(t, 3, sizeof(t[0]), cmp_u64);
		double secs = (double)t[1] / 1e9;
		printf(
		    "%-34s %8.1f MB/s %10.0f responses/s  (%zu responses, %.1f MB, median of 3)\n",
		    parse ? "frame + parse + encode (etcd)" : "frame only (JSON objects)",
		    (double)stream.len / 1e6 / secs, (double)nresp / secs, nresp,
		    (double)stream.len / 1e6);
		sb_free(&s.sb);
	}
	sb_free(&one);
	sb_free(&stream);
	return 0;
}
