// SPDX-License-Identifier: Apache-2.0
/* The OTLP logs encoder (see otlp_encode.h). Protobuf by hand: a nested
 * message is written with a one-byte length placeholder that is widened by
 * a memmove when the message turns out to be 128 bytes or longer. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "sink/otlp_encode.h"
#include "util/strbuf.h"

/* ---- wire primitives ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2 };

#define TAG(field, wt) ((unsigned)((field) << 3 | (wt)))

static inline size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline size_t put_varint_raw(char *o, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		o[n++] = (char)(v | 0x80);
		v >>= 7;
	}
	o[n++] = (char)v;
	return n;
}

static inline void pb_varint(struct strbuf *sb, uint64_t v)
{
	if (sb_grow(sb, 10))
		return;
	sb->len += put_varint_raw(sb->buf + sb->len, v);
}

static inline void pb_fixed64(struct strbuf *sb, unsigned tag, uint64_t v)
{
	if (sb_grow(sb, 10))
		return;
	char *o = sb->buf + sb->len;
	size_t n = put_varint_raw(o, tag);
	for (int i = 0; i < 8; i++)
		o[n + i] = (char)(v >> (8 * i));
	sb->len += n + 8;
}

static inline void pb_bytes(struct strbuf *sb, unsigned field, const void *p, size_t len)
{
	if (sb_grow(sb, len + 16))
		return;
	char *o = sb->buf + sb->len;
	size_t n = put_varint_raw(o, TAG(field, WT_LEN));
	n += put_varint_raw(o + n, len);
	memcpy(o + n, p, len);
	sb->len += n + len;
}

/* Opens a length-delimited field; returns the offset its content starts at
 * (after a one-byte length placeholder). */
static inline size_t pb_open(struct strbuf *sb, unsigned field)
{
	if (sb_grow(sb, 8))
		return sb->len;
	char *o = sb->buf + sb->len;
	size_t n = put_varint_raw(o, TAG(field, WT_LEN));
	o[n] = 0;
	sb->len += n + 1;
	return sb->len;
}

/* Closes what pb_open() opened at start. */
static inline void pb_close(struct strbuf *sb, size_t start)
{
	if (sb->err)
		return;
	size_t len = sb->len - start;
	if (len < 0x80) {
		sb->buf[start - 1] = (char)len;
		return;
	}
	size_t extra = varint_size(len) - 1;
	if (sb_grow(sb, extra))
		return;
	memmove(sb->buf + start + extra, sb->buf + start, len);
	put_varint_raw(sb->buf + start - 1, len);
	sb->len += extra;
}

/* UTF-8 as protobuf takes it: NUL allowed. */
static bool utf8_ok(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *z = memchr(s + i, 0, n - i);
		size_t j = z ? (size_t)(z - s) : n;
		if (j > i && !utf8_valid(s + i, j - i))
			return false;
		i = j + 1;
	}
	return true;
}

/* Appends s, its invalid UTF-8 bytes as '?'. */
static void add_utf8(struct strbuf *sb, const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t j = i + 1;
		while (j < len && ((unsigned char)s[j] & 0xc0) == 0x80 && j - i < 4)
			j++;
		if (utf8_ok(s + i, j - i))
			sb_add(sb, s + i, j - i);
		else
			for (size_t k = i; k < j; k++)
				sb_putc(sb, '?');
		i = j;
	}
}

static bool is_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

/* A protobuf string must be UTF-8: invalid bytes become '?'. */
static void pb_string(struct strbuf *sb, unsigned field, const char *s, size_t len)
{
	if (is_ascii(s, len) || utf8_ok(s, len)) {
		pb_bytes(sb, field, s, len);
		return;
	}
	size_t start = pb_open(sb, field);
	add_utf8(sb, s, len);
	pb_close(sb, start);
}

/* ---- JSON to AnyValue ---- */

/* AnyValue fields. */
enum {
	AV_STRING = 1,
	AV_BOOL = 2,
	AV_INT = 3,
	AV_DOUBLE = 4,
	AV_ARRAY = 5,
	AV_KVLIST = 6,
	AV_BYTES = 7,
};

#define JSON_MAX_DEPTH 64

struct jp {
	const char *p, *end;
	struct strbuf *out;
};

static inline void skip_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int hex4(const char *p, unsigned *v)
{
	unsigned r = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		r <<= 4;
		if (c >= '0' && c <= '9')
			r |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			r |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			r |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*v = r;
	return 0;
}

static void put_utf8(struct strbuf *sb, unsigned cp)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | cp >> 12);
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | cp >> 18);
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	sb_add(sb, b, n);
}

/* A JSON string (j->p at the opening quote) as the content of field. */
static int parse_string(struct jp *j, unsigned field)
{
	j->p++;
	/* the common case: printable ASCII, no escapes */
	const char *q = j->p;
	while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 &&
	       (unsigned char)*q < 0x80)
		q++;
	if (q < j->end && *q == '"') {
		pb_bytes(j->out, field, j->p, (size_t)(q - j->p));
		j->p = q + 1;
		return 0;
	}
	size_t start = pb_open(j->out, field);
	bool high = false;
	for (;;) {
		const char *run = j->p;
		while (j->p < j->end && *j->p != '"' && *j->p != '\\' &&
		       (unsigned char)*j->p >= 0x20) {
			high |= (unsigned char)*j->p >= 0x80;
			j->p++;
		}
		if (j->p > run)
			sb_add(j->out, run, (size_t)(j->p - run));
		if (j->p >= j->end || (unsigned char)*j->p < 0x20)
			return -1;
		if (*j->p == '"') {
			j->p++;
			break;
		}
		/* an escape */
		if (j->end - j->p < 2)
			return -1;
		char c = j->p[1];
		j->p += 2;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			sb_putc(j->out, c);
			break;
		case 'b':
			sb_putc(j->out, '\b');
			break;
		case 'f':
			sb_putc(j->out, '\f');
			break;
		case 'n':
			sb_putc(j->out, '\n');
			break;
		case 'r':
			sb_putc(j->out, '\r');
			break;
		case 't':
			sb_putc(j->out, '\t');
			break;
		case 'u': {
			unsigned cp, lo;
			if (j->end - j->p < 4 || hex4(j->p, &cp))
				return -1;
			j->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' &&
				    !hex4(j->p + 2, &lo) && lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					j->p += 6;
				} else {
					cp = 0xfffd;
				}
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				cp = 0xfffd;
			}
			put_utf8(j->out, cp);
			break;
		}
		default:
			return -1;
		}
	}
	if (high && !j->out->err && !utf8_ok(j->out->buf + start, j->out->len - start))
		return -1;
	pb_close(j->out, start);
	return 0;
}

static int parse_number(struct jp *j)
{
	const char *s = j->p;
	bool integer = true;
	if (j->p < j->end && *j->p == '-')
		j->p++;
	const char *digits = j->p;
	while (j->p < j->end && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.' || *j->p == 'e' ||
				 *j->p == 'E' || *j->p == '+' || *j->p == '-')) {
		if (*j->p < '0' || *j->p > '9')
			integer = false;
		j->p++;
	}
	size_t n = (size_t)(j->p - s);
	if (j->p == digits || n > 64)
		return -1;
	if (integer && j->p - digits <= 19) {
		/* every integer that fits int64 stays exact (ns timestamps have 19
		 * digits); a larger one becomes a double */
		uint64_t v = 0, lim = *s == '-' ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
		bool fits = true;
		for (const char *c = digits; c < j->p && fits; c++) {
			uint64_t d = (uint64_t)(*c - '0');
			fits = v <= (lim - d) / 10;
			v = v * 10 + d;
		}
		if (fits) {
			sb_putc(j->out, (char)TAG(AV_INT, WT_VARINT));
			pb_varint(j->out, *s == '-' ? (uint64_t)0 - v : v);
			return 0;
		}
	}
	char tmp[72];
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	char *endp;
	double d = strtod(tmp, &endp);
	if (endp != tmp + n)
		return -1;
	uint64_t bits;
	memcpy(&bits, &d, sizeof(bits));
	pb_fixed64(j->out, TAG(AV_DOUBLE, WT_I64), bits);
	return 0;
}

static bool literal(struct jp *j, const char *w, size_t n)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
		return false;
	j->p += n;
	return true;
}

static int parse_value(struct jp *j, int depth);

static int parse_object(struct jp *j, int depth)
{
	size_t list = pb_open(j->out, AV_KVLIST);
	j->p++;
	skip_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		pb_close(j->out, list);
		return 0;
	}
	for (;;) {
		skip_ws(j);
		if (j->p >= j->end || *j->p != '"')
			return -1;
		size_t kv = pb_open(j->out, 1); /* KeyValueList.values */
		if (parse_string(j, 1))		/* KeyValue.key */
			return -1;
		skip_ws(j);
		if (j->p >= j->end || *j->p != ':')
			return -1;
		j->p++;
		size_t val = pb_open(j->out, 2); /* KeyValue.value */
		if (parse_value(j, depth + 1))
			return -1;
		pb_close(j->out, val);
		pb_close(j->out, kv);
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			break;
		}
		return -1;
	}
	pb_close(j->out, list);
	return 0;
}

static int parse_array(struct jp *j, int depth)
{
	size_t arr = pb_open(j->out, AV_ARRAY);
	j->p++;
	skip_ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		pb_close(j->out, arr);
		return 0;
	}
	for (;;) {
		size_t val = pb_open(j->out, 1); /* ArrayValue.values */
		if (parse_value(j, depth + 1))
			return -1;
		pb_close(j->out, val);
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			break;
		}
		return -1;
	}
	pb_close(j->out, arr);
	return 0;
}

/* One JSON value as the fields of an AnyValue. */
static int parse_value(struct jp *j, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return -1;
	skip_ws(j);
	if (j->p >= j->end)
		return -1;
	switch (*j->p) {
	case '{':
		return parse_object(j, depth);
	case '[':
		return parse_array(j, depth);
	case '"':
		return parse_string(j, AV_STRING);
	case 't':
		if (!literal(j, "true", 4))
			return -1;
		sb_putc(j->out, (char)TAG(AV_BOOL, WT_VARINT));
		sb_putc(j->out, 1);
		return 0;
	case 'f':
		if (!literal(j, "false", 5))
			return -1;
		sb_putc(j->out, (char)TAG(AV_BOOL, WT_VARINT));
		sb_putc(j->out, 0);
		return 0;
	case 'n':
		return literal(j, "null", 4) ? 0 : -1; /* an empty AnyValue */
	default:
		return parse_number(j);
	}
}

int otlp_json_anyvalue(const char *json, size_t n, struct strbuf *out)
{
	size_t mark = out->len;
	struct jp j = {.p = json, .end = json + n, .out = out};
	int rc = parse_value(&j, 0);
	if (!rc) {
		skip_ws(&j);
		if (j.p != j.end)
			rc = -1;
	}
	if (rc && !out->err) {
		out->len = mark;
		if (utf8_ok(json, n))
			pb_bytes(out, AV_STRING, json, n);
		else
			pb_bytes(out, AV_BYTES, json, n);
	}
	return out->err;
}

/* ---- the LogRecord ---- */

enum {
	LR_TIME = 1,
	LR_BODY = 5,
	LR_ATTRS = 6,
	LR_OBSERVED = 11,
	LR_EVENT_NAME = 12,
};

/* A KeyValue attribute with a string value. */
static void attr_str(struct strbuf *sb, const char *key, size_t klen, const char *prefix,
		     size_t plen, const char *val, size_t vlen)
{
	if (is_ascii(key, klen) && is_ascii(val, vlen)) {
		/* sizes known up front: one write, no placeholder */
		size_t kl = plen + klen;
		size_t av = 1 + varint_size(vlen) + vlen;			  /* AnyValue */
		size_t kvl = 1 + varint_size(kl) + kl + 1 + varint_size(av) + av; /* KeyValue */
		if (sb_grow(sb, kvl + 12))
			return;
		char *o = sb->buf + sb->len;
		size_t n = put_varint_raw(o, TAG(LR_ATTRS, WT_LEN));
		n += put_varint_raw(o + n, kvl);
		o[n++] = (char)TAG(1, WT_LEN);
		n += put_varint_raw(o + n, kl);
		if (plen)
			memcpy(o + n, prefix, plen);
		memcpy(o + n + plen, key, klen);
		n += kl;
		o[n++] = (char)TAG(2, WT_LEN);
		n += put_varint_raw(o + n, av);
		o[n++] = (char)TAG(AV_STRING, WT_LEN);
		n += put_varint_raw(o + n, vlen);
		memcpy(o + n, val, vlen);
		sb->len += n + vlen;
		return;
	}
	size_t kv = pb_open(sb, LR_ATTRS);
	if (plen && is_ascii(key, klen)) {
		pb_varint(sb, TAG(1, WT_LEN));
		pb_varint(sb, plen + klen);
		sb_add(sb, prefix, plen);
		sb_add(sb, key, klen);
	} else if (plen) {
		size_t k = pb_open(sb, 1);
		sb_add(sb, prefix, plen);
		add_utf8(sb, key, klen);
		pb_close(sb, k);
	} else {
		pb_string(sb, 1, key, klen);
	}
	size_t av = pb_open(sb, 2);
	pb_string(sb, AV_STRING, val, vlen);
	pb_close(sb, av);
	pb_close(sb, kv);
}

static void attr_int(struct strbuf *sb, const char *key, int64_t v)
{
	size_t kv = pb_open(sb, LR_ATTRS);
	pb_bytes(sb, 1, key, strlen(key));
	size_t av = pb_open(sb, 2);
	sb_putc(sb, (char)TAG(AV_INT, WT_VARINT));
	pb_varint(sb, (uint64_t)v);
	pb_close(sb, av);
	pb_close(sb, kv);
}

/* tapio meta keys with an OpenTelemetry semantic-convention name. */
static const struct {
	const char *key, *otel;
} meta_map[] = {
    {"pod_name", "k8s.pod.name"},
    {"pod_namespace", "k8s.namespace.name"},
    {"pod_uid", "k8s.pod.uid"},
    {"container_id", "container.id"},
    {"container_name", "k8s.container.name"},
    {"image_id", "container.image.id"},
    {"node", "k8s.node.name"},
    {"pod", "k8s.pod.name"}, /* the cni and k8s collectors' names */
    {"namespace", "k8s.namespace.name"},
};

static const char *otel_key(const char *key)
{
	for (size_t i = 0; i < sizeof(meta_map) / sizeof(meta_map[0]); i++)
		if (key[0] == meta_map[i].key[0] && !strcmp(key, meta_map[i].key))
			return meta_map[i].otel;
	return NULL;
}

/* An attribute whose value is an array of one string, the bytes a then b. */
static void attr_str_array(struct strbuf *sb, const char *key, const char *a, size_t alen,
			   const char *b, size_t blen)
{
	size_t kv = pb_open(sb, LR_ATTRS);
	pb_bytes(sb, 1, key, strlen(key));
	size_t av = pb_open(sb, 2);
	size_t arr = pb_open(sb, AV_ARRAY);
	size_t one = pb_open(sb, 1); /* ArrayValue.values */
	size_t str = pb_open(sb, AV_STRING);
	if (is_ascii(a, alen) && is_ascii(b, blen)) {
		sb_add(sb, a, alen);
		sb_add(sb, b, blen);
	} else {
		add_utf8(sb, a, alen);
		add_utf8(sb, b, blen);
	}
	pb_close(sb, str);
	pb_close(sb, one);
	pb_close(sb, arr);
	pb_close(sb, av);
	pb_close(sb, kv);
}

/* The image reference as the pod status gives it, [host[:port]/]path[:tag]
 * [@digest], split as the semantic conventions have it: container.image.name
 * (the repository, neither tag nor digest), container.image.tags (the tag),
 * container.image.repo_digests (repository@digest). A bare digest or image
 * ID ("sha256:..."), or a reference that would leave an empty part, is the
 * name as it is. */
static void attr_image(struct strbuf *sb, const char *v, size_t vlen)
{
	const char *at = memchr(v, '@', vlen);
	size_t nlen = at ? (size_t)(at - v) : vlen; /* name[:tag] */
	const char *slash = memrchr(v, '/', nlen);
	const char *from = slash ? slash + 1 : v;
	const char *colon = memrchr(from, ':', nlen - (size_t)(from - v));
	size_t rlen = colon ? (size_t)(colon - v) : nlen; /* the repository */
	bool bare = !slash && !at && colon && rlen == 6 && !memcmp(v, "sha256", 6);
	if (bare || rlen == 0 || (colon && colon + 1 == v + nlen) || (at && at + 1 == v + vlen)) {
		attr_str(sb, "container.image.name", 20, NULL, 0, v, vlen);
		return;
	}
	attr_str(sb, "container.image.name", 20, NULL, 0, v, rlen);
	if (colon)
		attr_str_array(sb, "container.image.tags", colon + 1, nlen - rlen - 1, "", 0);
	if (at) /* repository@digest: the tag, when there is one, left out */
		attr_str_array(sb, "container.image.repo_digests", v, rlen, at, vlen - nlen);
}

/* A struct's JSON (decoded into scratch): true when it is there. */
static bool struct_json(const struct tapio_event *ev, struct strbuf *scratch)
{
	const struct source_desc *sd = source_get(ev->source);
	sb_reset(scratch);
	return sd && sd->struct_json &&
	       sd->struct_json(event_data(ev), ev->data_len, scratch) == 0 && !scratch->err;
}

/* process.executable.path: the decoded struct's top-level "filename" when it
 * is a plain string (no escapes), as the kernel's exec events have it. */
static void attr_exe_path(const struct strbuf *js, struct strbuf *out)
{
	static const char k[] = "\"filename\":\"";
	const char *p = memmem(js->buf, js->len, k, sizeof(k) - 1);
	if (!p)
		return;
	p += sizeof(k) - 1;
	const char *e = memchr(p, '"', js->len - (size_t)(p - js->buf));
	if (!e || memchr(p, '\\', (size_t)(e - p)))
		return;
	attr_str(out, "process.executable.path", 23, NULL, 0, p, (size_t)(e - p));
}

static void add_body(const struct tapio_event *ev, bool decoded, struct strbuf *scratch,
		     struct strbuf *out)
{
	const char *d = event_data(ev);
	size_t n = ev->data_len;
	size_t body = pb_open(out, LR_BODY);
	switch (ev->fmt) {
	case FMT_STRUCT:
		if (decoded)
			otlp_json_anyvalue(scratch->buf, scratch->len, out);
		else
			pb_bytes(out, AV_BYTES, d, n);
		break;
	case FMT_JSON:
		if (n)
			otlp_json_anyvalue(d, n, out);
		break;
	case FMT_TEXT:
		pb_string(out, AV_STRING, d, n);
		break;
	default:
		pb_bytes(out, AV_BYTES, d, n);
		break;
	}
	pb_close(out, body);
}

int otlp_encode_record(const struct tapio_event *ev, uint64_t observed_ns, struct strbuf *scratch,
		       struct strbuf *out)
{
	if (ev->fmt > FMT_BINARY)
		return -EINVAL;
	size_t mark = out->len;
	const char *type = type_name(ev->source, ev->type);
	const char *src = source_name(ev->source);
	size_t rec = pb_open(out, 2); /* ScopeLogs.log_records */
	pb_fixed64(out, TAG(LR_TIME, WT_I64), ev->ts);
	pb_fixed64(out, TAG(LR_OBSERVED, WT_I64), observed_ns);
	pb_bytes(out, LR_EVENT_NAME, type, strlen(type));
	attr_str(out, "type", 4, "tapio.", 6, type, strlen(type));
	attr_str(out, "source", 6, "tapio.", 6, src, strlen(src));
	size_t pos = 0;
	const char *k, *v;
	while (event_meta_next(ev, &pos, &k, &v)) {
		const char *ok = otel_key(k);
		if (k[0] == 'i' && !strcmp(k, "image"))
			attr_image(out, v, strlen(v));
		else if (!strncmp(k, "pod_label.", 10))
			attr_str(out, k + 10, strlen(k + 10), "k8s.pod.label.", 14, v, strlen(v));
		else if (ok)
			attr_str(out, ok, strlen(ok), NULL, 0, v, strlen(v));
		else if (!strcmp(k, "type") || !strcmp(k, "source")) /* not our own two */
			attr_str(out, k, strlen(k), "tapio.meta.", 11, v, strlen(v));
		else
			attr_str(out, k, strlen(k), "tapio.", 6, v, strlen(v));
	}
	bool decoded = false;
	if (ev->fmt == FMT_STRUCT) {
		const struct source_desc *sd = source_get(ev->source);
		decoded = struct_json(ev, scratch);
		if (decoded && !strcmp(type, "process.exec"))
			attr_exe_path(scratch, out);
		uint32_t pid;
		char comm[16];
		if (sd && sd->struct_pid_comm &&
		    sd->struct_pid_comm(event_data(ev), ev->data_len, &pid, comm) == 0) {
			comm[15] = '\0';
			attr_int(out, "process.pid", pid);
			attr_str(out, "process.executable.name", 23, NULL, 0, comm, strlen(comm));
		}
	}
	add_body(ev, decoded, scratch, out);
	pb_close(out, rec);
	if (out->err) {
		out->len = mark;
		return out->err;
	}
	return 0;
}

/* ---- the request around the records ---- */

static void res_attr(struct strbuf *sb, const char *key, const char *val)
{
	if (!val || !*val)
		return;
	size_t kv = pb_open(sb, 1); /* Resource.attributes */
	pb_bytes(sb, 1, key, strlen(key));
	size_t av = pb_open(sb, 2);
	pb_string(sb, AV_STRING, val, strlen(val));
	pb_close(sb, av);
	pb_close(sb, kv);
}

int otlp_request_prefix(const struct otlp_resource *r, size_t records_len, struct strbuf *out)
{
	sb_reset(out);
	/* ResourceLogs.resource, complete */
	size_t res = pb_open(out, 1);
	res_attr(out, "service.name", "tapio");
	res_attr(out, "service.version", r->service_version);
	res_attr(out, "host.name", r->host_name);
	res_attr(out, "k8s.node.name", r->node_name);
	pb_close(out, res);
	/* ScopeLogs.scope, complete */
	size_t scope_at = out->len;
	size_t scope = pb_open(out, 1);
	pb_bytes(out, 1, "tapio", 5);
	if (r->service_version)
		pb_bytes(out, 2, r->service_version, strlen(r->service_version));
	pb_close(out, scope);
	if (out->err)
		return out->err;
	size_t scope_len = out->len - scope_at;
	size_t sl_len = scope_len + records_len; /* ScopeLogs content */
	size_t rl_len = scope_at + 1 + varint_size(sl_len) + sl_len;
	/* Now the headers in front: request field 1 (ResourceLogs), and the
	 * ScopeLogs header between the resource and the scope. */
	char head[16], mid[16];
	size_t hn = put_varint_raw(head, TAG(1, WT_LEN));
	hn += put_varint_raw(head + hn, rl_len);
	size_t mn = put_varint_raw(mid, TAG(2, WT_LEN));
	mn += put_varint_raw(mid + mn, sl_len);
	if (sb_grow(out, hn + mn))
		return out->err;
	memmove(out->buf + hn + scope_at + mn, out->buf + scope_at, scope_len);
	memmove(out->buf + hn, out->buf, scope_at);
	memcpy(out->buf, head, hn);
	memcpy(out->buf + hn + scope_at, mid, mn);
	out->len += hn + mn;
	out->buf[out->len] = '\0';
	return 0;
}

/* ---- the response ---- */

static int rd_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	uint64_t r = 0;
	for (int s = 0; s < 64 && *p < end; s += 7) {
		unsigned char b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << s;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

static int skip_field(const unsigned char **p, const unsigned char *end, unsigned wt)
{
	uint64_t v;
	switch (wt) {
	case WT_VARINT:
		return rd_varint(p, end, &v);
	case WT_I64:
		if (end - *p < 8)
			return -1;
		*p += 8;
		return 0;
	case WT_LEN:
		if (rd_varint(p, end, &v) || v > (uint64_t)(end - *p))
			return -1;
		*p += v;
		return 0;
	case 5:
		if (end - *p < 4)
			return -1;
		*p += 4;
		return 0;
	default:
		return -1;
	}
}

int otlp_decode_response(const void *buf, size_t len, int64_t *rejected, char *msg, size_t msglen)
{
	const unsigned char *p = buf, *end = p + len;
	*rejected = 0;
	if (msglen)
		msg[0] = '\0';
	while (p < end) {
		uint64_t tag, l;
		if (rd_varint(&p, end, &tag))
			return -EINVAL;
		if (tag != TAG(1, WT_LEN)) {
			if (skip_field(&p, end, (unsigned)(tag & 7)))
				return -EINVAL;
			continue;
		}
		if (rd_varint(&p, end, &l) || l > (uint64_t)(end - p))
			return -EINVAL;
		const unsigned char *q = p, *qend = p + l;
		p = qend;
		while (q < qend) {
			if (rd_varint(&q, qend, &tag))
				return -EINVAL;
			if (tag == TAG(1, WT_VARINT)) {
				uint64_t v;
				if (rd_varint(&q, qend, &v))
					return -EINVAL;
				*rejected = (int64_t)v;
			} else if (tag == TAG(2, WT_LEN)) {
				if (rd_varint(&q, qend, &l) || l > (uint64_t)(qend - q))
					return -EINVAL;
				if (msglen) {
					size_t n = l < msglen - 1 ? (size_t)l : msglen - 1;
					memcpy(msg, q, n);
					msg[n] = '\0';
				}
				q += l;
			} else if (skip_field(&q, qend, (unsigned)(tag & 7))) {
				return -EINVAL;
			}
		}
	}
	return 0;
}
