// SPDX-License-Identifier: Apache-2.0
/* OTLP encoder bench: the pipeline thread's work per event with the OTLP sink
 * (otlp_encode_record: attributes, the JSON body as an AnyValue tree) and the
 * sender's (gzip level 1 of a 1 MiB batch), against format_json for the same
 * event. Prints ns/event for each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "core/event.h"
#include "sink/format.h"
#include "sink/otlp_encode.h"
#include "util/strbuf.h"

static const char body[] =
    "{\"pid\":15048,\"tid\":15048,\"tgid\":15048,\"ppid\":15005,\"uid\":0,\"gid\":0,"
    "\"comm\":\"cat\",\"cgroup_id\":81234,\"pidns\":4026531836,\"mntns\":4026531832,\"cpu\":0,"
    "\"boot_ns\":2519506365402,\"task_known\":true,\"filename\":\"/usr/bin/cat\","
    "\"filename_truncated\":false,\"argc\":2,\"args\":[\"cat\",\"/proc/15006/stat\"],"
    "\"args_truncated\":false}";
static const char meta[] =
    "cgroup_id\0"
    "81234\0container_id\0"
    "4f2a9c0d1e2f4f2a9c0d1e2f4f2a9c0d1e2f4f2a9c0d1e2f4f2a9c0d1e2f4f2a\0"
    "pod_uid\0"
    "0b7e1e48-5d4a-4c3e-9a39-2c8d0a0f5e11\0pod_name\0web-0\0pod_namespace\0shop\0"
    "container_name\0web\0image\0registry.example/shop/web:1.4.2\0";

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: steadier on a shared machine */
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 500000;
	static const char *types[] = {NULL, "process.exec"};
	static const struct source_desc d = {.name = "kernel", .types = types, .ntypes = 2};
	source_register(0, &d);
	size_t ml = sizeof(meta) - 1, dl = sizeof(body) - 1;
	struct tapio_event *ev = calloc(1, sizeof(*ev) + ml + dl);
	ev->ts = 1;
	ev->fmt = FMT_JSON;
	ev->type = 1;
	ev->meta_len = (uint32_t)ml;
	ev->data_len = (uint32_t)dl;
	memcpy(event_meta(ev), meta, ml);
	memcpy(event_data(ev), body, dl);

	struct strbuf out = STRBUF_INIT, scratch = STRBUF_INIT;
	double t0 = now();
	size_t bytes = 0;
	for (long i = 0; i < n; i++) {
		if (out.len > (1u << 20)) {
			bytes += out.len;
			sb_reset(&out);
		}
		otlp_encode_record(ev, 2, &scratch, &out);
	}
	double enc = (now() - t0) / (double)n * 1e9;
	size_t rec = out.len;

	t0 = now();
	for (long i = 0; i < n; i++) {
		if (out.len > (1u << 20))
			sb_reset(&out);
		format_json(ev, &out);
	}
	double js = (now() - t0) / (double)n * 1e9;

	/* gzip: one 1 MiB batch of records, as the sender does */
	sb_reset(&out);
	long per = 0;
	while (out.len < (1u << 20)) {
		otlp_encode_record(ev, 2, &scratch, &out);
		per++;
	}
	uLong bound = compressBound(out.len);
	Bytef *z = malloc(bound);
	int rounds = 20;
	t0 = now();
	for (int r = 0; r < rounds; r++) {
		z_stream s = {0};
		deflateInit2(&s, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
		s.next_in = (Bytef *)out.buf;
		s.avail_in = (uInt)out.len;
		s.next_out = z;
		s.avail_out = (uInt)bound;
		deflate(&s, Z_FINISH);
		if (r == 0)
			printf("gzip: %zu -> %lu bytes\n", out.len, s.total_out);
		deflateEnd(&s);
	}
	double gz = (now() - t0) / rounds / (double)per * 1e9;
	printf("otlp_encode_record: %.0f ns/event (%zu bytes/record)\n", enc,
	       rec / (size_t)1 > 0 ? (size_t)(out.len / (size_t)per) : 0);
	printf("format_json:        %.0f ns/event\n", js);
	printf("gzip level 1:       %.0f ns/event (sender thread)\n", gz);
	(void)bytes;
	free(z);
	free(ev);
	sb_free(&out);
	sb_free(&scratch);
	return 0;
}
