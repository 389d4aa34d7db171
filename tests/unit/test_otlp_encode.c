// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the OTLP encoder (user/sink/otlp_encode.c): exact bytes of
 * small values, long lengths (the widened placeholder), escapes, text that
 * is not JSON, a whole record, the request prefix and the response. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "sink/otlp_encode.h"
#include "tests/lib/pb_walk.h"
#include "util/strbuf.h"

static void expect(const struct strbuf *sb, const char *want, size_t n)
{
	cr_assert_eq(sb->len, n, "length %zu, want %zu", sb->len, n);
	cr_assert(!memcmp(sb->buf, want, n));
}

#define JSON(s, out) otlp_json_anyvalue((s), strlen(s), (out))

Test(otlp_encode, scalars)
{
	struct strbuf sb = STRBUF_INIT;
	cr_assert_eq(JSON("5", &sb), 0);
	expect(&sb, "\x18\x05", 2);
	sb_reset(&sb);
	JSON("-1", &sb);
	expect(&sb, "\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
	sb_reset(&sb);
	JSON("true", &sb);
	expect(&sb, "\x10\x01", 2);
	sb_reset(&sb);
	JSON("null", &sb);
	cr_assert_eq(sb.len, 0);
	sb_reset(&sb);
	JSON("\"a\\n\\u00e9\"", &sb);
	expect(&sb,
	       "\x0a\x04"
	       "a\n\xc3\xa9",
	       6);
	sb_reset(&sb);
	JSON("1.5", &sb);
	double d = 1.5;
	char want[9] = {0x21};
	memcpy(want + 1, &d, 8);
	expect(&sb, want, 9);
	sb_free(&sb);
}

/* The varint of AnyValue.int_value (field 3) that an integer literal gives,
 * or -1 when it became something else (a double). */
static int64_t int_of(const char *js)
{
	struct strbuf sb = STRBUF_INIT;
	cr_assert_eq(otlp_json_anyvalue(js, strlen(js), &sb), 0, "%s", js);
	int64_t v = -1;
	if (sb.len >= 2 && (unsigned char)sb.buf[0] == 0x18) {
		uint64_t u = 0;
		for (size_t i = 1, sh = 0; i < sb.len && sh < 64; i++, sh += 7) {
			u |= (uint64_t)(sb.buf[i] & 0x7f) << sh;
			if (!(sb.buf[i] & 0x80))
				break;
		}
		v = (int64_t)u;
	}
	bool is_double = sb.len == 9 && (unsigned char)sb.buf[0] == 0x21;
	sb_free(&sb);
	return is_double ? -2 : v;
}

Test(otlp_encode, integers_stay_exact_up_to_int64)
{
	/* a 19-digit ns timestamp, the largest and smallest int64 */
	cr_assert_eq(int_of("1796146914441331658"), 1796146914441331658ll);
	cr_assert_eq(int_of("9223372036854775807"), INT64_MAX);
	cr_assert_eq(int_of("-9223372036854775808"), INT64_MIN);
	/* one past: a double, never a wrapped integer */
	cr_assert_eq(int_of("9223372036854775808"), -2);
	cr_assert_eq(int_of("-9223372036854775809"), -2);
	cr_assert_eq(int_of("99999999999999999999"), -2);
}

Test(otlp_encode, object_and_array)
{
	struct strbuf sb = STRBUF_INIT;
	JSON("{\"k\":[1,\"x\"]}", &sb);
	/* kvlist{ values{ key "k", value{ array{ values{int 1}, values{str x} } } } } */
	expect(&sb, "\x32\x12\x0a\x10\x0a\x01k\x12\x0b\x2a\x09\x0a\x02\x18\x01\x0a\x03\x0a\x01x",
	       20);
	sb_free(&sb);
}

Test(otlp_encode, long_lengths_widen)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t n = 100; n < 40000; n = n * 3 + 7) {
		char *js = malloc(n + 20);
		size_t o = 0;
		js[o++] = '{';
		js[o++] = '"';
		js[o++] = 'k';
		js[o++] = '"';
		js[o++] = ':';
		js[o++] = '"';
		memset(js + o, 'z', n);
		o += n;
		js[o++] = '"';
		js[o++] = '}';
		sb_reset(&sb);
		cr_assert_eq(otlp_json_anyvalue(js, o, &sb), 0);
		cr_assert(pb_anyvalue_ok((const uint8_t *)sb.buf, sb.len, 0), "n=%zu", n);
		cr_assert_eq(sb.buf[0], 0x32);
		cr_assert(memmem(sb.buf, sb.len, js + 6, n) != NULL);
		free(js);
	}
	sb_free(&sb);
}

Test(otlp_encode, not_json_is_a_string_or_bytes)
{
	struct strbuf sb = STRBUF_INIT;
	JSON("{\"a\":1,}", &sb);
	expect(&sb, "\x0a\x08{\"a\":1,}", 10);
	sb_reset(&sb);
	otlp_json_anyvalue("\"\xff\"", 3, &sb);
	expect(&sb, "\x3a\x03\"\xff\"", 5);
	sb_reset(&sb);
	JSON("[1] x", &sb);
	expect(&sb, "\x0a\x05[1] x", 7);
	sb_free(&sb);
}

Test(otlp_encode, record_fields)
{
	static const char *types[] = {NULL, "thing.happened"};
	static const struct source_desc d = {.name = "unittest", .types = types, .ntypes = 2};
	source_register(7, &d);
	char buf[256] = {0};
	struct tapio_event *ev = (struct tapio_event *)buf;
	const char meta[] = "pod_name\0web-0\0zone\0a\0pod_label.tier\0front\0type\0ADDED\0";
	ev->ts = 1000;
	ev->source = 7;
	ev->type = 1;
	ev->fmt = FMT_TEXT;
	ev->meta_len = sizeof(meta) - 1;
	ev->data_len = 2;
	memcpy(event_meta(ev), meta, sizeof(meta) - 1);
	memcpy(event_data(ev), "hi", 2);
	struct strbuf out = STRBUF_INIT, scratch = STRBUF_INIT;
	cr_assert_eq(otlp_encode_record(ev, 2000, &scratch, &out), 0);
	const uint8_t *q = (const uint8_t *)out.buf, *end = q + out.len, *sub = NULL;
	size_t sl = 0;
	unsigned f, wt;
	cr_assert(pbw_field(&q, end, &f, &wt, &sub, &sl)); /* ScopeLogs.log_records */
	cr_assert_eq(f, 2);
	cr_assert_eq(sub + sl, end);
	const char *p = (const char *)sub - 2;
	cr_assert(!memcmp(p + 2, "\x09\xe8\x03\0\0\0\0\0\0", 9));  /* time 1000 */
	cr_assert(!memcmp(p + 11, "\x59\xd0\x07\0\0\0\0\0\0", 9)); /* observed 2000 */
	cr_assert(!memcmp(p + 20, "\x62\x0ething.happened", 16));  /* event_name */
	cr_assert(memmem(out.buf, out.len, "\x0a\x0ctapio.source\x12\x0a\x0a\x08unittest", 24));
	cr_assert(memmem(out.buf, out.len, "\x0a\x0ck8s.pod.name\x12\x07\x0a\x05web-0", 23));
	cr_assert(memmem(out.buf, out.len,
			 "\x0a\x0atapio.zone\x12\x03\x0a\x01"
			 "a",
			 17));
	cr_assert(memmem(out.buf, out.len,
			 "\x0a\x12k8s.pod.label.tier\x12\x07\x0a\x05"
			 "front",
			 27));
	cr_assert(memmem(out.buf, out.len,
			 "\x0a\x0ftapio.meta.type\x12\x07\x0a\x05"
			 "ADDED",
			 26));
	cr_assert(memmem(out.buf, out.len, "tapio.type", 10) ==
		  memmem(out.buf, out.len, "\x0a\x0atapio.type", 12) + 2); /* once, ours */
	cr_assert(memmem(out.buf, out.len, "\x2a\x04\x0a\x02hi", 6));	   /* body */
	sb_free(&out);
	sb_free(&scratch);
}

Test(otlp_encode, prefix_wraps_records)
{
	struct otlp_resource r = {.service_version = "1.2", .host_name = "h", .node_name = "n"};
	struct strbuf pre = STRBUF_INIT;
	for (size_t rl = 0; rl < 300000; rl = rl * 5 + 50) {
		cr_assert_eq(otlp_request_prefix(&r, rl, &pre), 0);
		/* field 1 (ResourceLogs) spans exactly prefix + records */
		const uint8_t *p = (const uint8_t *)pre.buf, *end = p + pre.len + rl, *sub = NULL;
		size_t sl = 0;
		unsigned f, wt;
		cr_assert(pbw_field(&p, end, &f, &wt, &sub, &sl));
		cr_assert_eq(f, 1);
		cr_assert_eq(sub + sl, end, "rl=%zu", rl);
		/* inside: Resource (1), then ScopeLogs (2) reaching the end */
		const uint8_t *q = sub;
		cr_assert(pbw_field(&q, end, &f, &wt, &sub, &sl));
		cr_assert_eq(f, 1);
		cr_assert(memmem(sub, sl, "service.name", 12));
		cr_assert(memmem(sub, sl, "k8s.node.name", 13));
		cr_assert(pbw_field(&q, end, &f, &wt, &sub, &sl));
		cr_assert_eq(f, 2);
		cr_assert_eq(sub + sl, end);
	}
	sb_free(&pre);
}

Test(otlp_encode, response)
{
	int64_t rej;
	char msg[32];
	cr_assert_eq(otlp_decode_response("", 0, &rej, msg, sizeof(msg)), 0);
	cr_assert_eq(rej, 0);
	const char r[] = "\x0a\x07\x08\x03\x12\x03"
			 "bad";
	cr_assert_eq(otlp_decode_response(r, sizeof(r) - 1, &rej, msg, sizeof(msg)), 0);
	cr_assert_eq(rej, 3);
	cr_assert_str_eq(msg, "bad");
	cr_assert_eq(otlp_decode_response("\x0a\x09\x08", 3, &rej, msg, sizeof(msg)), -EINVAL);
}

/* The record of a FMT_TEXT event with one meta key image=ref. */
static void image_record(const char *ref, struct strbuf *out)
{
	static const char *types[] = {NULL, "thing.happened"};
	static const struct source_desc d = {.name = "unittest", .types = types, .ntypes = 2};
	source_register(7, &d);
	char buf[1024] = {0};
	struct tapio_event *ev = (struct tapio_event *)buf;
	size_t rl = strlen(ref);
	memcpy(event_meta(ev), "image", 6);
	memcpy(event_meta(ev) + 6, ref, rl + 1);
	ev->ts = 1;
	ev->source = 7;
	ev->type = 1;
	ev->fmt = FMT_TEXT;
	ev->meta_len = (uint16_t)(6 + rl + 1);
	struct strbuf scratch = STRBUF_INIT;
	sb_reset(out);
	cr_assert_eq(otlp_encode_record(ev, 2, &scratch, out), 0);
	sb_free(&scratch);
}

/* The string value of attribute key (short lengths: one-byte varints), or
 * NULL; with array, the one string of its array value. */
static char *attr_value(const struct strbuf *out, const char *key, bool array)
{
	static char val[256];
	size_t kl = strlen(key);
	char pat[128];
	pat[0] = 0x0a;
	pat[1] = (char)kl;
	memcpy(pat + 2, key, kl);
	const char *p = memmem(out->buf, out->len, pat, kl + 2);
	if (!p)
		return NULL;
	cr_assert(memmem(p + 1, out->len - (size_t)(p + 1 - out->buf), pat, kl + 2) == NULL,
		  "%s twice", key);
	const uint8_t *q = (const uint8_t *)p + kl + 2;
	cr_assert_eq(q[0], 0x12); /* KeyValue.value */
	q += 2;
	if (array) {
		cr_assert_eq(q[0], 0x2a); /* array_value */
		cr_assert_eq(q[2], 0x0a); /* one values */
		cr_assert_eq(q[3], q[1] - 2, "one element only");
		q += 4;
	}
	cr_assert_eq(q[0], 0x0a); /* string_value */
	memcpy(val, q + 2, q[1]);
	val[q[1]] = '\0';
	return val;
}

static void expect_image(const char *ref, const char *name, const char *tag, const char *digest)
{
	struct strbuf out = STRBUF_INIT;
	image_record(ref, &out);
	char *v = attr_value(&out, "container.image.name", false);
	cr_assert(v, "%s: no name", ref);
	cr_assert_str_eq(v, name, "%s", ref);
	v = attr_value(&out, "container.image.tags", true);
	if (tag)
		cr_assert(v && !strcmp(v, tag), "%s: tags %s, want %s", ref, v ? v : "-", tag);
	else
		cr_assert_null(v, "%s: tags %s", ref, v);
	v = attr_value(&out, "container.image.repo_digests", true);
	if (digest)
		cr_assert(v && !strcmp(v, digest), "%s: digests %s", ref, v ? v : "-");
	else
		cr_assert_null(v, "%s: digests %s", ref, v);
	cr_assert_null(memmem(out.buf, out.len, "tapio.image", 11));
	const uint8_t *q = (const uint8_t *)out.buf, *sub = NULL;
	size_t sl = 0;
	unsigned f, wt;
	cr_assert(pbw_field(&q, q + out.len, &f, &wt, &sub, &sl));
	cr_assert_eq(sub + sl, (const uint8_t *)out.buf + out.len, "%s: lengths", ref);
	sb_free(&out);
}

#define D "sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac"

Test(otlp_encode, image_reference_split)
{
	expect_image("docker.io/library/nginx:1.25", "docker.io/library/nginx", "1.25", NULL);
	expect_image("nginx", "nginx", NULL, NULL);
	expect_image("busybox:latest", "busybox", "latest", NULL);
	/* a registry port is not a tag */
	expect_image("localhost:5000/app", "localhost:5000/app", NULL, NULL);
	expect_image("localhost:5000/team/app:v2", "localhost:5000/team/app", "v2", NULL);
	expect_image("quay.io/x/y@" D, "quay.io/x/y", NULL, "quay.io/x/y@" D);
	expect_image("quay.io/x/y:1.0@" D, "quay.io/x/y", "1.0", "quay.io/x/y@" D);
	expect_image("localhost:5000/app@" D, "localhost:5000/app", NULL, "localhost:5000/app@" D);
	/* what is not a reference to split stays whole */
	expect_image(D, D, NULL, NULL);
	expect_image("app:", "app:", NULL, NULL);
	expect_image(":v1", ":v1", NULL, NULL);
	expect_image("app@", "app@", NULL, NULL);
	expect_image("@" D, "@" D, NULL, NULL);
}
