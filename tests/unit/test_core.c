// SPDX-License-Identifier: Apache-2.0
/* Unit tests for strbuf (JSON escaping, base64), event records, formatting
 * of collector events, state files and cursors, and the registry. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/collector.h"
#include "tests/lib/test_env.h"
#include "core/event.h"
#include "sink/format.h"
#include "core/queue.h"
#include "core/state.h"
#include "util/strbuf.h"
#include "util/textstate.h"
#include "tests/lib/tmpdir.h"

static char *json(const char *s, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	sb_json_str(&sb, s, n);
	cr_assert_eq(sb.err, 0);
	return sb.buf;
}

/* Every byte on its own, behind a plain one: kept, escaped, or (a lone
 * byte >= 0x80 is not UTF-8) replaced. */
Test(strbuf, json_every_byte)
{
	for (unsigned c = 0; c < 256; c++) {
		char in[2] = {'a', (char)c}, want[16];
		if (c == '"' || c == '\\')
			snprintf(want, sizeof(want), "\"a\\%c\"", c);
		else if (c == '\n')
			snprintf(want, sizeof(want), "\"a\\n\"");
		else if (c == '\r')
			snprintf(want, sizeof(want), "\"a\\r\"");
		else if (c == '\t')
			snprintf(want, sizeof(want), "\"a\\t\"");
		else if (c < 0x20)
			snprintf(want, sizeof(want), "\"a\\u%04x\"", c);
		else if (c >= 0x80)
			snprintf(want, sizeof(want), "\"a\\ufffd\"");
		else
			snprintf(want, sizeof(want), "\"a%c\"", c);
		for (size_t off = 0; off < 2; off++) {
			char *o = json(in + off, 2 - off);
			cr_assert_str_eq(o, want, "byte 0x%02x, offset %zu", c, off);
			free(o);
			if (!off)
				memmove(want + 1, want + 2,
					strlen(want + 2) + 1); /* without the 'a' */
		}
	}
}

Test(strbuf, json_plain_and_escapes)
{
	char *o = json("a\"b\\c\n\t\r", 8);
	cr_assert_str_eq(o, "\"a\\\"b\\\\c\\n\\t\\r\"");
	free(o);
	o = json("\x01\x1f\x7f", 3);
	cr_assert_str_eq(o, "\"\\u0001\\u001f\x7f\"");
	free(o);
	o = json("nul\0x", 5);
	cr_assert_str_eq(o, "\"nul\\u0000x\"");
	free(o);
}

Test(strbuf, json_utf8_kept_invalid_replaced)
{
	char *o = json("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15);
	cr_assert_str_eq(o, "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
	free(o);
	/* lone continuation, truncated sequence, overlong '/', surrogate, > U+10FFFF */
	o = json("\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80", 16);
	cr_assert_str_eq(o, "\"\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|"
			    "\\ufffd\\ufffd\\ufffd\\ufffd\"");
	free(o);
	cr_assert(utf8_valid("h\xc3\xa9", 3));
	cr_assert_not(utf8_valid("h\xc3", 2));
	cr_assert_not(utf8_valid("a\0b", 3));
}

/* A string longer than sb_json_str() escapes in one go (4 KiB) is written
 * piece by piece: the same bytes as the short strings it is made of. */
Test(strbuf, json_long_string_as_its_pieces)
{
	static const char piece[] = "ab\"\\\x01\n\xc3\xa9\xff\xe2\x82\xacz";
	const size_t pl = sizeof(piece) - 1, reps = 1000; /* 13 KB in */
	char *one = json(piece, pl);
	size_t ol = strlen(one) - 2; /* without its quotes */
	char *in = malloc(pl * reps), *want = malloc(ol * reps + 3);
	cr_assert(in && want);
	want[0] = '"';
	for (size_t i = 0; i < reps; i++) {
		memcpy(in + i * pl, piece, pl);
		memcpy(want + 1 + i * ol, one + 1, ol);
	}
	want[1 + ol * reps] = '"';
	want[2 + ol * reps] = '\0';
	for (size_t n = reps - 1; n <= reps; n++) { /* a pad before: unaligned */
		struct strbuf sb = STRBUF_INIT;
		sb_putc(&sb, 'x');
		sb_json_str(&sb, in + (reps - n) * pl, n * pl);
		cr_assert_eq(sb.err, 0);
		cr_assert_eq(sb.len, 1 + 2 + ol * n);
		cr_assert_eq(sb.buf[sb.len], '\0');
		cr_assert(!memcmp(sb.buf + 2, want + 1 + (reps - n) * ol, ol * n));
		cr_assert_eq(sb.buf[1], '"');
		cr_assert_eq(sb.buf[sb.len - 1], '"');
		sb_free(&sb);
	}
	free(one);
	free(in);
	free(want);
}

/* The pointer writers: one room check, then pieces; the padded decimal. */
Test(strbuf, pointer_writers)
{
	struct strbuf sb = STRBUF_INIT;
	char *o = sb_begin(&sb, 64);
	cr_assert_not_null(o);
	o = put_lit(o, "t=");
	o = put_u64(o, 7);
	*o++ = ',';
	o = put_u64(o, 42);
	*o++ = ',';
	o = put_u64(o, 18446744073709551615ull);
	*o++ = ',';
	o = put_u32_padded(o, 0, 9);
	*o++ = ',';
	o = put_u32_padded(o, 7, 9);
	*o++ = ',';
	o = put_u32_padded(o, 123456789, 9);
	*o++ = ',';
	o = put_u32_padded(o, UINT32_MAX, 10);
	*o++ = ',';
	o = put_json_str(o, "a\"b", 3);
	sb_end(&sb, o);
	cr_assert_str_eq(sb.buf,
			 "t=7,42,18446744073709551615,000000000,000000007,123456789,4294967295,"
			 "\"a\\\"b\"");
	cr_assert_eq(sb.len, strlen(sb.buf));
	sb_free(&sb);
}

Test(strbuf, base64_roundtrip_and_bad_input)
{
	const char *cases[][2] = {
	    {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < 5; i++) {
		struct strbuf sb = STRBUF_INIT;
		sb_base64(&sb, cases[i][0], strlen(cases[i][0]));
		cr_assert_str_eq(sb.buf ? sb.buf : "", cases[i][1]);
		char out[16];
		long n = base64_decode(cases[i][1], strlen(cases[i][1]), out, sizeof(out));
		cr_assert_eq(n, (long)strlen(cases[i][0]));
		cr_assert(!memcmp(out, cases[i][0], (size_t)n));
		sb_free(&sb);
	}
	char out[4];
	cr_assert_eq(base64_decode("Zm9v!", 5, out, sizeof(out)), -EINVAL);
	cr_assert_eq(base64_decode("Zg==Zg", 6, out, sizeof(out)), -EINVAL);
	cr_assert_eq(base64_decode("Zm9vYmFy", 8, out, sizeof(out)), -ENOSPC);
	cr_assert_eq(base64_decode("Z", 1, out, sizeof(out)), -EINVAL);
	cr_assert_eq(base64_decode("_-8", 3, out, sizeof(out)), 2); /* URL-safe */
}

Test(strbuf, printf_long_and_numbers)
{
	struct strbuf sb = STRBUF_INIT;
	char big[1000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sb_printf(&sb, "<%s>", big);
	cr_assert_eq(sb.len, 1001);
	sb_reset(&sb);
	sb_u64(&sb, 0);
	sb_putc(&sb, ' ');
	sb_u64(&sb, UINT64_MAX);
	sb_putc(&sb, ' ');
	sb_i64(&sb, INT64_MIN);
	cr_assert_str_eq(sb.buf, "0 18446744073709551615 -9223372036854775808");
	sb_reset(&sb);
	sb_time_iso(&sb, 1795738200123456789ull);
	cr_assert_str_eq(sb.buf, "2026-11-27T00:10:00.123456789Z");
	/* digit pairs and the 32/64-bit split: every length, every boundary */
	uint64_t v = 1;
	for (int i = 0; i < 20; i++, v *= 10) {
		uint64_t around[] = {v - 1, v, v + 1, v * 9 + 8};
		for (int k = 0; k < 4; k++) {
			char ref[32];
			snprintf(ref, sizeof(ref), "%llu", (unsigned long long)around[k]);
			sb_reset(&sb);
			sb_u64(&sb, around[k]);
			cr_assert_str_eq(sb.buf, ref);
		}
	}
	uint64_t edges[] = {UINT32_MAX,
			    (uint64_t)UINT32_MAX + 1,
			    99999999,
			    100000000,
			    9999999999999999ull,
			    10000000000000000ull,
			    1234567890123456789ull};
	for (size_t k = 0; k < sizeof(edges) / sizeof(edges[0]); k++) {
		char ref[32];
		snprintf(ref, sizeof(ref), "%llu", (unsigned long long)edges[k]);
		sb_reset(&sb);
		sb_u64(&sb, edges[k]);
		cr_assert_str_eq(sb.buf, ref);
	}
	/* pseudo-random values of every magnitude (xorshift64, shifted down
	 * by 0..63 bits): every digit group and its zero padding */
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 200000; i++) {
		char ref[32];
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t val = x >> (i % 64);
		snprintf(ref, sizeof(ref), "%llu", (unsigned long long)val);
		sb_reset(&sb);
		sb_u64(&sb, val);
		cr_assert_str_eq(sb.buf, ref);
	}
	sb_free(&sb);
}

/* format_json caches the timestamp's part down to the second: a new second,
 * a new minute and day, an earlier time, and fractions with leading zeros
 * must all come out as sb_time_iso writes them. */
Test(event, format_json_timestamps_match_sb_time_iso)
{
	struct queue *q = queue_new(1 << 16);
	cr_assert_not_null(q);
	uint64_t ts[] = {1795738200123456789ull, 1795738200999999999ull,
			 1795738201000000000ull, 1795738259000000001ull,
			 1795738260000000000ull, 1795823999999999999ull,
			 1795824000000000010ull, 1700000000000000000ull,
			 1795738200123456789ull, 0};
	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
		cr_assert_eq(
		    event_emit(q, SRC_ETCD, TYPE_ETCD_WATCH, FMT_JSON, ts[i], NULL, 0, "1", 1), 0);
		size_t len;
		unsigned src;
		struct tapio_event *ev = queue_peek(q, &len, &src, 1000);
		cr_assert_not_null(ev);
		struct strbuf want = STRBUF_INIT, got = STRBUF_INIT;
		sb_puts(&want, "{\"ts\":\"");
		sb_time_iso(&want, ts[i]);
		sb_puts(&want,
			"\",\"source\":\"etcd\",\"type\":\"etcd.watch\",\"meta\":{},\"data\":1}\n");
		cr_assert_eq(format_json(ev, &got), 0);
		cr_assert_str_eq(got.buf, want.buf);
		queue_release(q, ev);
		sb_free(&want);
		sb_free(&got);
	}
	queue_free(q);
}

Test(event, names_roundtrip)
{
	unsigned ntypes = 0;
	for (unsigned s = 0; s < SRC__COUNT; s++) {
		const struct source_desc *d = source_get(s);
		cr_assert_not_null(d, "source %u is not registered", s);
		cr_assert_str_eq(source_name(s), collector_table[s].name);
		cr_assert_eq(source_parse(source_name(s)), (int)s);
		for (unsigned t = 1; t < d->ntypes; t++) {
			unsigned ps, pt;
			cr_assert_str_neq(type_name(s, t), "unknown", "type %u/%u has no name", s,
					  t);
			cr_assert_eq(type_parse(type_name(s, t), &ps, &pt), 0);
			cr_assert_eq(ps, s);
			cr_assert_eq(pt, t);
			ntypes++;
		}
	}
	cr_assert_eq(ntypes, 22,
		     "14 kernel types (13 from BPF, kernel.gap), k8s 1, systemd 1, cni 4, etcd 2");
	unsigned ps, pt;
	cr_assert_eq(type_parse("process", &ps, &pt), -EINVAL);
	cr_assert_str_eq(type_name(SRC_KERNEL, 999), "unknown");
	cr_assert_str_eq(type_name(SRC_MAX, 1), "unknown");
	cr_assert_str_eq(source_name(SRC_MAX), "unknown");
	cr_assert_eq(type_parse("oom.kill", &ps, &pt), 0);
	cr_assert(ps == SRC_KERNEL && pt == TYPE_OOM_KILL);
	cr_assert_eq(type_parse("etcd.compacted", &ps, &pt), 0);
	cr_assert(ps == SRC_ETCD && pt == TYPE_ETCD_COMPACTED);
	cr_assert_eq(type_parse("cni.ipam", &ps, &pt), 0);
	cr_assert(ps == SRC_CNI && pt == TYPE_CNI_IPAM);
	cr_assert_eq(source_register(SRC_MAX, source_get(0)), -EINVAL);
	cr_assert_eq(source_register(SRC_K8S, source_get(SRC_ETCD)), -EEXIST);
}

Test(event, emit_meta_and_format_json)
{
	struct queue *q = queue_new(1 << 16);
	cr_assert_not_null(q);
	struct meta_kv kv[] = {
	    {"operation", "PUT"}, {"skipped", NULL}, {"key", "/registry/pods/a\"b"}};
	const char *data = "{\"a\":\n1}";
	cr_assert_eq(event_emit(q, SRC_ETCD, TYPE_ETCD_WATCH, FMT_JSON, 1795738200123456789ull, kv,
				3, data, strlen(data)),
		     0);
	size_t len;
	unsigned src;
	struct tapio_event *ev = queue_peek(q, &len, &src, 1000);
	cr_assert_not_null(ev);
	cr_assert_eq(src, SRC_ETCD);
	cr_assert_eq(ev->meta_len, event_meta_size(kv, 3));
	cr_assert_str_eq(event_meta_get(ev, "operation"), "PUT");
	cr_assert_null(event_meta_get(ev, "skipped"));
	struct strbuf sb = STRBUF_INIT;
	cr_assert_eq(format_json(ev, &sb), 0);
	cr_assert_str_eq(sb.buf, "{\"ts\":\"2026-11-27T00:10:00.123456789Z\",\"source\":\"etcd\","
				 "\"type\":\"etcd.watch\",\"meta\":{\"operation\":\"PUT\","
				 "\"key\":\"/registry/pods/a\\\"b\"},\"data\":{\"a\": 1}}\n");
	queue_release(q, ev);
	sb_free(&sb);
	queue_free(q);
}

/* A meta block laid out by event_meta_put() and reserved with
 * event_reserve_block() is the record event_reserve() makes. */
Test(event, reserve_block_matches_reserve)
{
	struct queue *q = queue_new(1 << 16);
	cr_assert_not_null(q);
	struct meta_kv kv[] = {{"cgroup_id", "4242"}, {"gone", NULL}, {"pod_name", "web-1"}};
	char block[64];
	size_t ml = event_meta_put(block, kv, 3);
	cr_assert_eq(ml, event_meta_size(kv, 3));
	cr_assert_eq(ml, sizeof("cgroup_id\0004242\0pod_name\0web-1"));
	cr_assert_eq(memcmp(block, "cgroup_id\0004242\0pod_name\0web-1\0", ml), 0);

	struct tapio_event *a = event_reserve(q, SRC_ETCD, TYPE_ETCD_WATCH, FMT_JSON, 7, kv, 3, 2);
	cr_assert_not_null(a);
	memcpy(event_data(a), "{}", 2);
	event_commit(q, a);
	struct tapio_event *b =
	    event_reserve_block(q, SRC_ETCD, TYPE_ETCD_WATCH, FMT_JSON, 7, block, ml, 2);
	cr_assert_not_null(b);
	memcpy(event_data(b), "{}", 2);
	event_commit(q, b);
	size_t la, lb;
	unsigned src;
	a = queue_peek(q, &la, &src, 1000);
	cr_assert_not_null(a);
	struct strbuf sa = STRBUF_INIT, sbb = STRBUF_INIT;
	cr_assert_eq(format_json(a, &sa), 0);
	struct tapio_event ha = *a;
	queue_release(q, a);
	b = queue_peek(q, &lb, &src, 1000);
	cr_assert_not_null(b);
	cr_assert_eq(format_json(b, &sbb), 0);
	cr_assert_eq(la, lb);
	cr_assert_eq(memcmp(&ha, b, sizeof(ha)), 0, "the event headers differ");
	cr_assert_str_eq(sa.buf, sbb.buf);
	cr_assert_str_eq(event_meta_get(b, "pod_name"), "web-1");
	queue_release(q, b);
	sb_free(&sa);
	sb_free(&sbb);
	queue_free(q);
}

/* Builds an event by hand in a buffer, as a hostile producer could. */
static struct tapio_event *mk(void *buf, unsigned fmt, const char *meta, size_t mlen,
			      const void *data, size_t dlen)
{
	struct tapio_event *ev = buf;
	memset(ev, 0, sizeof(*ev));
	ev->ts = 1;
	ev->source = SRC_CNI;
	ev->type = TYPE_CNI_LOG;
	ev->fmt = (uint8_t)fmt;
	ev->meta_len = (uint32_t)mlen;
	ev->data_len = (uint32_t)dlen;
	memcpy(event_meta(ev), meta, mlen);
	memcpy(event_data(ev), data, dlen);
	return ev;
}

Test(format, text_binary_and_bad_meta)
{
	_Alignas(8) char buf[512];
	struct strbuf sb = STRBUF_INIT;
	struct tapio_event *ev = mk(buf, FMT_TEXT, "file\0/var/log/x\0", 16, "line\x01\xff", 6);
	cr_assert_eq(format_json(ev, &sb), 0);
	cr_assert(strstr(sb.buf, "\"data\":\"line\\u0001\\ufffd\"}\n"), "%s", sb.buf);
	cr_assert(strstr(sb.buf, "\"meta\":{\"file\":\"/var/log/x\"}"), "%s", sb.buf);
	sb_reset(&sb);
	ev = mk(buf, FMT_BINARY, "", 0, "\x00\x01\x02", 3);
	cr_assert_eq(format_json(ev, &sb), 0);
	cr_assert(strstr(sb.buf, "\"data\":\"AAEC\"}"), "%s", sb.buf);
	/* meta without terminators: iteration stops, output is still one valid line */
	sb_reset(&sb);
	ev = mk(buf, FMT_TEXT, "key\0val", 7, "x", 1);
	cr_assert_eq(format_json(ev, &sb), 0);
	cr_assert(strstr(sb.buf, "\"meta\":{}"), "%s", sb.buf);
	sb_reset(&sb);
	ev = mk(buf, 77, "", 0, "x", 1);
	cr_assert_eq(format_json(ev, &sb), -EINVAL);
	cr_assert_eq(sb.len, 0);
	/* text: control bytes never reach the terminal */
	sb_reset(&sb);
	ev = mk(buf, FMT_TEXT, "pod\0a\x1b[2Jb\0", 12, "l\x1b", 2);
	cr_assert_eq(format_text(ev, &sb), 0);
	cr_assert_null(strchr(sb.buf, '\x1b'), "%s", sb.buf);
	cr_assert(strstr(sb.buf, "pod=a?[2Jb | l?"), "%s", sb.buf);
	sb_free(&sb);
}

/* format_json keeps the JSON of the last meta block per thread: a block
 * that differs in one byte, a malformed block of the same length and the
 * first block again each get their own pairs. */
Test(format, meta_json_follows_each_block)
{
	_Alignas(8) char buf[512];
	struct strbuf sb = STRBUF_INIT;
	static const struct {
		const char *meta;
		size_t len;
		const char *want;
	} steps[] = {
	    {"cgroup_id\0004242\0", 15, "\"meta\":{\"cgroup_id\":\"4242\"}"},
	    {"cgroup_id\0004242\0", 15, "\"meta\":{\"cgroup_id\":\"4242\"}"},
	    {"cgroup_id\0004243\0", 15, "\"meta\":{\"cgroup_id\":\"4243\"}"},
	    {"cgroup_id\00042\"3\0", 15, "\"meta\":{\"cgroup_id\":\"42\\\"3\"}"},
	    {"cgroup_id\00042434", 15, "\"meta\":{}"}, /* no final NUL */
	    {"cgroup_id\00042434", 15, "\"meta\":{}"},
	    {"cgroup_id\0004242\0", 15, "\"meta\":{\"cgroup_id\":\"4242\"}"},
	    {"", 0, "\"meta\":{}"},
	    {"a\0b\0cgroup_id\0001\0", 16, "\"meta\":{\"a\":\"b\",\"cgroup_id\":\"1\"}"},
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct tapio_event *ev = mk(buf, FMT_TEXT, steps[i].meta, steps[i].len, "x", 1);
		sb_reset(&sb);
		cr_assert_eq(format_json(ev, &sb), 0);
		cr_assert(strstr(sb.buf, steps[i].want), "step %zu: %s", i, sb.buf);
		cr_assert(strstr(sb.buf, "},\"data\":\"x\"}\n"), "step %zu: %s", i, sb.buf);
	}
	sb_free(&sb);
}

static char tmpl[64];

/* .init makes the directory, .fini removes it; the test asks for its name. */
static void tmp_setup(void)
{
	cr_assert_not_null(tl_mkdtemp(tmpl, sizeof(tmpl), "core"));
}

static void tmp_teardown(void)
{
	if (tl_rmtree(tmpl) != 0)
		fprintf(stderr, "could not remove %s\n", tmpl);
}

static const char *mktmp(void)
{
	return tmpl;
}

Test(state, write_read_atomic, .init = tmp_setup, .fini = tmp_teardown)
{
	const char *d = mktmp();
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/a/b", d);
	cr_assert_eq(state_write(sub, "x", "hello", 5), 0); /* creates the dirs */
	char buf[16];
	cr_assert_eq(state_read(sub, "x", buf, sizeof(buf)), 5);
	cr_assert_str_eq(buf, "hello");
	cr_assert_eq(state_read(sub, "missing", buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(state_write(sub, "x", "0123456789abcdefXYZ", 19), 0);
	cr_assert_eq(state_read(sub, "x", buf, sizeof(buf)), -EFBIG);
	cr_assert_eq(state_write(sub, "../evil", "x", 1), -EINVAL);
	char tmpname[160];
	snprintf(tmpname, sizeof(tmpname), "%s/.x.tmp", sub);
	cr_assert_neq(access(tmpname, F_OK), 0, "temporary file left behind");
}

Test(state, cursor_rate_and_flush, .init = tmp_setup, .fini = tmp_teardown)
{
	const char *d = mktmp();
	struct cursor c;
	cursor_init(&c, d, "cur", 60000);
	cr_assert_eq(cursor_load(&c), 0);
	cr_assert_str_eq(c.val, "");
	cr_assert_eq(cursor_update(&c, "rev-1"), 0); /* first write goes out */
	cr_assert_eq(cursor_update(&c, "rev-2"), 0); /* inside the interval: pending */
	char buf[32];
	cr_assert_eq(state_read(d, "cur", buf, sizeof(buf)), 6);
	cr_assert_str_eq(buf, "rev-1\n");
	cr_assert_eq(cursor_flush(&c), 0);
	cr_assert_eq(state_read(d, "cur", buf, sizeof(buf)), 6);
	cr_assert_str_eq(buf, "rev-2\n");
	struct cursor c2;
	cursor_init(&c2, d, "cur", 0);
	cr_assert_eq(cursor_load(&c2), 5);
	cr_assert_str_eq(c2.val, "rev-2");
	char huge[CURSOR_MAX + 10];
	memset(huge, 'a', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	cr_assert_eq(cursor_update(&c2, huge), -ENAMETOOLONG);
	cursor_destroy(&c);
	cursor_destroy(&c2);
}

static bool whole_digits(const char *v)
{
	return cursor_decimal_whole(v);
}

/* A cursor file without its final newline: refused by cursor_load_checked,
 * taken by cursor_load_legacy only when the source's check accepts it whole. */
Test(state, cursor_without_final_newline, .init = tmp_setup, .fini = tmp_teardown)
{
	const char *d = mktmp();
	struct cursor c;
	bool legacy = true;

	cursor_init(&c, d, "cur", 0);
	/* none stored */
	cr_assert_eq(cursor_load_legacy(&c, whole_digits, &legacy), 0);
	cr_assert_not(legacy);
	/* as tapio writes it */
	cr_assert_eq(state_write(d, "cur", "12345\n", 6), 0);
	cr_assert_eq(cursor_load_legacy(&c, whole_digits, &legacy), 5);
	cr_assert_not(legacy);
	cr_assert_str_eq(c.val, "12345");
	/* from an older writer: no newline, a whole number */
	cr_assert_eq(state_write(d, "cur", "12345", 5), 0);
	cr_assert_eq(cursor_load_checked(&c), -EBADMSG);
	cr_assert_str_eq(c.val, "");
	cr_assert_eq(cursor_load_legacy(&c, whole_digits, &legacy), 5);
	cr_assert(legacy);
	cr_assert_str_eq(c.val, "12345");
	cr_assert_eq(cursor_load_legacy(&c, NULL, &legacy), -EBADMSG, "no check: never trusted");
	cr_assert_not(legacy);
	/* bad input without a newline: refused, the value is "" */
	static const struct {
		const char *v;
		size_t n;
	} bad[] = {{"", 0},	   {"12a", 3},	  {"-1", 2},
		   {"0012", 4},	   {"12 ", 3},	  {" 12", 3},
		   {"12\n\n3", 5}, {"1\0002", 3}, {"12345678901234567890", 20}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(state_write(d, "cur", bad[i].v, bad[i].n), 0);
		legacy = true;
		cr_assert_eq(cursor_load_legacy(&c, whole_digits, &legacy), -EBADMSG,
			     "accepted case %zu", i);
		cr_assert_not(legacy);
		cr_assert_str_eq(c.val, "");
	}
	/* an empty file is refused by both */
	cr_assert_eq(state_write(d, "cur", "", 0), 0);
	cr_assert_eq(cursor_load_checked(&c), -EBADMSG);
	cursor_destroy(&c);

	cr_assert(cursor_decimal_whole("0"));
	cr_assert(cursor_decimal_whole("9223372036854775807"));
	cr_assert_not(cursor_decimal_whole("01"));
	cr_assert_not(cursor_decimal_whole("1e3"));
}

/* A neighbour who could write the state directory planted symlinks: no
 * write goes through them, no read follows them. */
Test(state, planted_symlinks_are_not_followed, .init = tmp_setup, .fini = tmp_teardown)
{
	const char *d = mktmp();
	char victim[160], link[160], buf[64];
	snprintf(victim, sizeof(victim), "%s.victim", d);
	FILE *f = fopen(victim, "w");
	cr_assert_not_null(f);
	fputs("secret-content", f);
	fclose(f);
	chmod(victim, 0600);
	snprintf(link, sizeof(link), "%s/.offsets.tmp", d);
	cr_assert_eq(symlink(victim, link), 0);
	cr_assert_eq(state_write(d, "offsets", "new", 3), 0);
	f = fopen(victim, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_assert_str_eq(buf, "secret-content", "the symlink's target was overwritten");
	cr_assert_eq(state_read(d, "offsets", buf, sizeof(buf)), 3);
	snprintf(link, sizeof(link), "%s/etcd.revision", d);
	cr_assert_eq(symlink(victim, link), 0);
	cr_assert_eq(state_read(d, "etcd.revision", buf, sizeof(buf)), -ELOOP);
	snprintf(link, sizeof(link), "%s/fifo", d);
	cr_assert_eq(mkfifo(link, 0600), 0);
	cr_assert_eq(state_read(d, "fifo", buf, sizeof(buf)), -EINVAL);
	unlink(victim);
}

Test(state, directory_owner_and_mode_are_checked, .init = tmp_setup, .fini = tmp_teardown)
{
	const char *d = mktmp();
	char sub[128], why[160];
	snprintf(sub, sizeof(sub), "%s/s", d);
	int fd = state_dir_open(sub, why, sizeof(why));
	cr_assert_geq(fd, 0, "%s", why);
	close(fd);
	struct stat st;
	cr_assert_eq(stat(sub, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	cr_assert_eq(chmod(sub, 0777), 0);
	cr_assert_eq(state_dir_open(sub, why, sizeof(why)), -EPERM);
	cr_assert(strstr(why, "writable by group or others"), "%s", why);
	cr_assert_eq(state_write(sub, "x", "1", 1), -EPERM);
	cr_assert_eq(chmod(sub, 0700), 0);
	if (geteuid() == 0) {
		cr_assert_eq(chown(sub, 65534, 65534), 0);
		cr_assert_eq(state_dir_open(sub, why, sizeof(why)), -EPERM);
		cr_assert(strstr(why, "owned by uid 65534"), "%s", why);
		cr_assert_eq(chown(sub, 0, 0), 0);
	}
	char link[160];
	snprintf(link, sizeof(link), "%s/l", d);
	cr_assert_eq(symlink(sub, link), 0);
	cr_assert_lt(state_dir_open(link, why, sizeof(why)), 0);
	cr_assert(strstr(why, "symlink"), "%s", why);
}

/* A collector that records its calls; `fail` makes start fail. */
struct fake {
	struct collector base;
	bool fail, started, stopped;
	int *order;
	int id;
};
static int fake_log[16], fake_n;

static int fake_start(struct collector *c, struct queue *q)
{
	(void)q;
	struct fake *f = (struct fake *)c;
	if (f->fail)
		return -EIO;
	f->started = true;
	atomic_store(&c->healthy, true);
	return 0;
}

static void fake_stop(struct collector *c)
{
	struct fake *f = (struct fake *)c;
	f->stopped = true;
	fake_log[fake_n++] = f->id;
}

static void fake_destroy(struct collector *c)
{
	free(c);
}

static const struct collector_ops fake_ops[3] = {
    {.name = "a", .start = fake_start, .stop = fake_stop, .destroy = fake_destroy},
    {.name = "b", .start = fake_start, .stop = fake_stop, .destroy = fake_destroy},
    {.name = "c", .start = fake_start, .stop = fake_stop, .destroy = fake_destroy},
};

static struct fake *mkfake(int i, bool fail)
{
	struct fake *f = calloc(1, sizeof(*f));
	collector_init(&f->base, &fake_ops[i], (unsigned)i);
	f->fail = fail;
	f->id = i;
	return f;
}

Test(registry, start_rollback_and_health)
{
	struct registry *r = registry_new();
	struct fake *a = mkfake(0, false), *b = mkfake(1, false), *c = mkfake(2, true);
	cr_assert_eq(registry_add(r, &a->base), 0);
	cr_assert_eq(registry_add(r, &b->base), 0);
	cr_assert_eq(registry_add(r, &c->base), 0);
	cr_assert_eq(registry_add(r, &mkfake(0, false)->base), -EEXIST);
	cr_assert_eq(registry_count(r), 3);
	const char *failed = NULL;
	fake_n = 0;
	cr_assert_eq(registry_start_all(r, NULL, &failed), -EIO);
	cr_assert_str_eq(failed, "c");
	cr_assert(a->stopped && b->stopped, "started collectors were not stopped");
	cr_assert_not(c->stopped);
	cr_assert_eq(fake_n, 2);
	cr_assert_eq(fake_log[0], 1, "stopped in reverse order");
	cr_assert_eq(fake_log[1], 0);
	cr_assert_not(registry_healthy(r)); /* c never became healthy */
	cr_assert_eq(registry_find(r, "b"), &b->base);
	collector_error(&b->base, "source %s down", "x");
	char buf[64];
	collector_last_error(&b->base, buf, sizeof(buf));
	cr_assert_str_eq(buf, "source x down");
	registry_free(r);
}

Test(textstate, header_roundtrip_and_bad_headers)
{
	struct strbuf sb = STRBUF_INIT;
	unsigned v = 0;
	textstate_header(&sb, "cni-offsets", 3);
	sb_puts(&sb, "body\n");
	cr_assert_str_eq(sb.buf, "tapio-cni-offsets 3\nbody\n");
	cr_assert_eq(textstate_body(sb.buf, sb.len, "cni-offsets", 3, &v), 20);
	cr_assert_eq(v, 3);
	cr_assert_eq(textstate_body(sb.buf, sb.len, "cni-offsets", 2, &v), -EPROTO);
	cr_assert_eq(textstate_body(sb.buf, sb.len, "cni-dirs", 3, &v), -EINVAL);
	cr_assert_eq(textstate_body(sb.buf, sb.len, "cni", 3, &v), -EINVAL);
	static const char *const bad[] = {
	    "",
	    "tapio-cni-offsets",
	    "tapio-cni-offsets \n",
	    "tapio-cni-offsets 0\n",
	    "tapio-cni-offsets 1",
	    "tapio-cni-offsets x\n",
	    "tapio-cni-offsets 1 \n",
	    "tapio-cni-offsets 99999999999\n",
	    "TAPIO-cni-offsets 1\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(textstate_body(bad[i], strlen(bad[i]), "cni-offsets", 9, NULL),
			     -EINVAL, "'%s' was taken", bad[i]);
	sb_free(&sb);
}
