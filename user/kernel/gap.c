// SPDX-License-Identifier: Apache-2.0
/* The kernel.gap record (see kernel.h): the window's file format, and the
 * one event, tracked until the sink has it. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/event.h"
#include "kernel/internal.h"
#include "kernel/kernel.h"

int kernel_gap_format(char *buf, size_t cap, uint64_t from_ns, uint64_t to_ns)
{
	int n =
	    snprintf(buf, cap, "tapio-gap 1\nfrom %" PRIu64 "\nto %" PRIu64 "\n", from_ns, to_ns);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

/* "<key> <digits>\n" at *p; advances *p. */
static bool field(const char **p, const char *key, uint64_t *v)
{
	size_t kl = strlen(key);
	const char *s = *p;
	char *end;

	if (strncmp(s, key, kl) || s[kl] != ' ' || s[kl + 1] < '0' || s[kl + 1] > '9')
		return false;
	errno = 0;
	unsigned long long x = strtoull(s + kl + 1, &end, 10);
	if (errno || *end != '\n')
		return false;
	*v = x;
	*p = end + 1;
	return true;
}

int kernel_gap_parse(const char *buf, uint64_t *from_ns, uint64_t *to_ns)
{
	static const char magic[] = "tapio-gap 1\n";
	const char *p = buf;
	uint64_t f, t;

	if (strncmp(p, magic, sizeof(magic) - 1))
		return -EBADMSG;
	p += sizeof(magic) - 1;
	if (!field(&p, "from", &f) || !field(&p, "to", &t) || *p || !f || t < f)
		return -EBADMSG;
	*from_ns = f;
	*to_ns = t;
	return 0;
}

/* The noted window, the file that holds it until the sink has its event,
 * and the tracker that learns it. One kernel collector per process. */
static _Atomic uint64_t gap_from, gap_to;
static char gap_path[4200];
static struct ack_tracker gap_ack;
static bool gap_tracking;

void kernel_note_gap(const char *dir, uint64_t from_ns, uint64_t to_ns)
{
	gap_path[0] = '\0';
	if (dir && *dir)
		snprintf(gap_path, sizeof(gap_path), "%s/%s", dir, KERNEL_GAP_FILE);
	atomic_store(&gap_from, from_ns);
	atomic_store(&gap_to, to_ns);
}

/* The sink has the event (safe 1): the window is reported. */
static void gap_settled(void *ctx, uint64_t safe)
{
	(void)ctx;
	if (safe >= 1 && gap_path[0])
		unlink(gap_path);
}

void kernel_gap_emit(struct kcollector *kc)
{
	uint64_t to = atomic_exchange(&gap_to, 0), from = atomic_load(&gap_from);
	if (!to)
		return;
	char data[160], id[80], fs[32], ts[32];
	snprintf(data, sizeof(data),
		 "{\"reason\":\"unclean stop\",\"from_ns\":%" PRIu64 ",\"to_ns\":%" PRIu64
		 ",\"seconds\":%.3f}",
		 from, to, to > from ? (double)(to - from) / 1e9 : 0.0);
	snprintf(id, sizeof(id), "kernel-gap-%" PRIu64 "-%" PRIu64, from, to);
	snprintf(fs, sizeof(fs), "%" PRIu64, from);
	snprintf(ts, sizeof(ts), "%" PRIu64, to);
	struct meta_kv kv[] = {{"gap_from_ns", fs}, {"gap_to_ns", ts}, {"id", id}};
	uint32_t token = 0;
	if (!gap_tracking && ack_init(&gap_ack, 2, gap_settled, NULL) == 0) {
		gap_tracking = true;
		ack_register(kc->base.source, &gap_ack);
	}
	if (gap_tracking)
		token = ack_track(&gap_ack, 1);
	int rc = event_emit_ack(kc->q, kc->base.source, TYPE_KERNEL_GAP, FMT_JSON, to, kv, 3, data,
				strlen(data), token);
	collector_count_emit(&kc->base, rc); /* produced = committed + dropped holds */
	if (rc) {
		if (token)
			ack_untrack(&gap_ack, token);
		collector_error(&kc->base,
				"the kernel.gap record was not queued: %s (the window is kept in "
				"%s for the next start)",
				strerror(-rc), gap_path[0] ? gap_path : "memory only");
	} else if (token) {
		ack_through(&gap_ack, 1);
	}
}

void kernel_gap_release(struct kcollector *kc)
{
	if (!gap_tracking)
		return;
	ack_unregister(kc->base.source, &gap_ack);
	ack_destroy(&gap_ack);
	gap_tracking = false;
}
