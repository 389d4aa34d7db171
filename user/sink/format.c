// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/event.h"
#include "sink/format.h"
#include "sink/json_embed.h"
#include "util/strbuf.h"

/* The most bytes put_time() writes. */
#define TIME_MAX 48

/* The timestamp at o (room for TIME_MAX), as sb_time_iso() writes it, with
 * the part down to the second ("2026-11-27T00:10:00.") formatted once per
 * second per thread. Returns the end. */
static char *put_time(char *o, uint64_t ns)
{
	static _Thread_local uint64_t cached_sec = UINT64_MAX;
	static _Thread_local char prefix[32];
	static _Thread_local size_t prefix_len;
	uint64_t sec = ns / 1000000000ull;
	uint32_t frac = (uint32_t)(ns % 1000000000ull);

	if (sec != cached_sec) {
		struct strbuf t = STRBUF_INIT;
		sb_time_iso(&t, sec * 1000000000ull);
		/* "...:SS.000000000Z": keep up to the dot */
		if (t.err || t.len < 11 || t.len - 10 >= sizeof(prefix)) {
			sb_reset(&t);
			sb_time_iso(&t, ns);
			size_t n = t.err ? 0 : t.len < TIME_MAX ? t.len : TIME_MAX;
			o = put_mem(o, t.buf, n);
			sb_free(&t);
			return o;
		}
		prefix_len = t.len - 10;
		memcpy(prefix, t.buf, prefix_len);
		sb_free(&t);
		cached_sec = sec;
	}
	o = put_mem(o, prefix, prefix_len);
	o = put_u32_padded(o, frac, 9);
	*o++ = 'Z';
	return o;
}

static int add_data(const struct tapio_event *ev, struct strbuf *out)
{
	const char *d = event_data(ev);
	size_t n = ev->data_len;
	switch (ev->fmt) {
	case FMT_STRUCT: {
		const struct source_desc *sd = source_get(ev->source);
		size_t mark = out->len;
		if (sd && sd->struct_json && sd->struct_json(d, n, out) == 0)
			return 0;
		out->len = mark; /* undecodable: show the bytes */
		sb_putc(out, '"');
		sb_base64(out, d, n);
		sb_putc(out, '"');
		return 0;
	}
	case FMT_JSON:
		if (n == 0) {
			sb_puts(out, "null");
			return 0;
		}
		json_embed(out, d, n);
		return 0;
	case FMT_TEXT:
		sb_json_str(out, d, n);
		return 0;
	case FMT_BINARY:
		sb_putc(out, '"');
		sb_base64(out, d, n);
		sb_putc(out, '"');
		return 0;
	default:
		return -EINVAL;
	}
}

/* The meta's pairs as JSON ("k":"v",...) for the last meta block formatted
 * on this thread: the records of one cgroup or one journal unit in a row
 * carry the same block, and copy its JSON instead of walking and escaping
 * it again. Only blocks and JSON that fit are kept. */
#define META_CACHE_IN 256
#define META_CACHE_OUT 768
static _Thread_local struct {
	uint32_t in_len, out_len; /* in_len 0: empty */
	char in[META_CACHE_IN];
	char out[META_CACHE_OUT];
} meta_json;

static void add_meta_json(const struct tapio_event *ev, struct strbuf *out)
{
	size_t ml = ev->meta_len, start = out->len, pos = 0;
	const char *k, *v;
	bool first = true;
	char *o;

	if (ml && ml == meta_json.in_len && !memcmp(event_meta(ev), meta_json.in, ml)) {
		sb_add(out, meta_json.out, meta_json.out_len);
		return;
	}
	while (event_meta_next(ev, &pos, &k, &v)) {
		/* pos is now past v's NUL: the lengths are known */
		size_t kl = (size_t)(v - k) - 1;
		size_t vl = (size_t)(event_meta(ev) + pos - v) - 1;
		/* a pair: one room check */
		o = sb_begin(out, JSON_STR_MAX(kl) + JSON_STR_MAX(vl) + 2);
		if (!o)
			return;
		if (!first)
			*o++ = ',';
		first = false;
		o = put_json_str(o, k, kl);
		*o++ = ':';
		o = put_json_str(o, v, vl);
		sb_end(out, o);
	}
	/* a block whose pairs were all read (a malformed one is not kept) */
	meta_json.in_len = 0;
	if (ml && pos == ml && ml <= META_CACHE_IN && out->len - start <= META_CACHE_OUT) {
		memcpy(meta_json.in, event_meta(ev), ml);
		meta_json.out_len = (uint32_t)(out->len - start);
		memcpy(meta_json.out, out->buf + start, meta_json.out_len);
		meta_json.in_len = (uint32_t)ml;
	}
}

int format_json(const struct tapio_event *ev, struct strbuf *out)
{
	size_t mark = out->len;
	const char *sn = source_name(ev->source), *tn = type_name(ev->source, ev->type);
	size_t sl = strlen(sn), tl = strlen(tn);
	/* the envelope up to the meta: one room check */
	char *o = sb_begin(out, 64 + TIME_MAX + sl + tl);

	if (!o)
		return out->err;
	o = put_lit(o, "{\"ts\":\"");
	o = put_time(o, ev->ts);
	o = put_lit(o, "\",\"source\":\"");
	o = put_mem(o, sn, sl);
	o = put_lit(o, "\",\"type\":\"");
	o = put_mem(o, tn, tl);
	o = put_lit(o, "\",\"meta\":{");
	sb_end(out, o);
	add_meta_json(ev, out);
	if (out->err)
		return out->err;
	sb_add(out, "},\"data\":", 9);
	if (add_data(ev, out)) {
		out->len = mark;
		if (out->buf)
			out->buf[mark] = '\0';
		return -EINVAL;
	}
	sb_add(out, "}\n", 2);
	return out->err;
}

static void add_clock(struct strbuf *out, uint64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000ull);
	struct tm tm;
	localtime_r(&sec, &tm);
	sb_printf(out, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
		  (unsigned)(ns % 1000000000ull / 1000000));
}

/* Text columns must not break the table: control bytes become '?'. */
static void add_plain(struct strbuf *out, const char *s, size_t n, size_t max)
{
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		sb_putc(out, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
}

void format_text_header(struct strbuf *out)
{
	format_text_header_pods(out, false);
}

void format_text_header_pods(struct strbuf *out, bool pods)
{
	sb_printf(out, "%-12s %-15s %7s %-16s ", "TIME", "TYPE", "PID", "COMM");
	if (pods)
		sb_printf(out, "%-32s %-20s ", "POD", "CONTAINER");
	sb_puts(out, "DETAILS\n");
}

/* The POD and CONTAINER columns. */
static void add_pod_columns(const struct tapio_event *ev, struct strbuf *out)
{
	const char *ns = event_meta_get(ev, "pod_namespace"), *pod = event_meta_get(ev, "pod_name");
	const char *c = event_meta_get(ev, "container_name");
	size_t mark = out->len;
	if (pod) {
		if (ns) {
			add_plain(out, ns, strlen(ns), 63);
			sb_putc(out, '/');
		}
		add_plain(out, pod, strlen(pod), 253);
	} else {
		sb_putc(out, '-');
	}
	for (size_t w = out->len - mark; w < 33; w++)
		sb_putc(out, ' ');
	mark = out->len;
	add_plain(out, c ? c : "-", c ? strlen(c) : 1, 63);
	for (size_t w = out->len - mark; w < 21; w++)
		sb_putc(out, ' ');
}

int format_text(const struct tapio_event *ev, struct strbuf *out)
{
	return format_text_pods(ev, out, false);
}

int format_text_pods(const struct tapio_event *ev, struct strbuf *out, bool pods)
{
	add_clock(out, ev->ts);
	sb_printf(out, " %-15s ", type_name(ev->source, ev->type));
	const struct source_desc *sd = source_get(ev->source);
	if (ev->fmt == FMT_STRUCT) {
		uint32_t pid;
		char comm[16];
		if (sd && sd->struct_pid_comm && sd->struct_text &&
		    sd->struct_pid_comm(event_data(ev), ev->data_len, &pid, comm) == 0) {
			comm[15] = '\0';
			sb_printf(out, "%7u ", pid);
			size_t cl = strlen(comm);
			add_plain(out, comm, cl, 16);
			for (size_t i = cl; i < 16; i++)
				sb_putc(out, ' ');
			sb_putc(out, ' ');
			if (pods)
				add_pod_columns(ev, out);
			size_t mark = out->len;
			if (sd->struct_text(event_data(ev), ev->data_len, out)) {
				out->len = mark;
				sb_puts(out, "(undecodable)");
			}
		} else {
			sb_printf(out, "%7s %-16s (undecodable, %u bytes)", "-", "-", ev->data_len);
		}
	} else {
		sb_printf(out, "%7s %-16s", "-", source_name(ev->source));
		size_t pos = 0;
		const char *k, *v;
		while (event_meta_next(ev, &pos, &k, &v)) {
			if (!strcmp(k, "cursor"))
				continue; /* long and opaque */
			sb_printf(out, " %s=", k);
			add_plain(out, v, strlen(v), 120);
		}
		if (ev->fmt == FMT_TEXT) {
			sb_puts(out, " | ");
			add_plain(out, event_data(ev), ev->data_len, 200);
		}
	}
	sb_putc(out, '\n');
	return out->err;
}
