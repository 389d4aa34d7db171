// SPDX-License-Identifier: Apache-2.0
/* The NATS client protocol: frames and PubAcks (see nats_wire.h). */
#include <stdio.h>
#include <string.h>

#include "sink/nats_wire.h"
#include "util/strbuf.h"

static bool is_sp(char c)
{
	return c == ' ' || c == '\t';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Whether line[0..n) starts with the operation op (lower case) followed by
 * the end or a separator. */
static bool is_op(const char *line, size_t n, const char *op)
{
	size_t ol = strlen(op);

	if (n < ol)
		return false;
	for (size_t i = 0; i < ol; i++)
		if (lower(line[i]) != op[i])
			return false;
	return n == ol || is_sp(line[ol]);
}

/* Splits the arguments of line[0..n) (after the operation); at most max. */
static size_t split_args(const char *p, const char *end, const char **arg, size_t *alen, size_t max)
{
	size_t k = 0;

	while (p < end) {
		while (p < end && is_sp(*p))
			p++;
		if (p == end)
			break;
		const char *s = p;
		while (p < end && !is_sp(*p))
			p++;
		if (k == max)
			return max + 1;
		arg[k] = s;
		alen[k++] = (size_t)(p - s);
	}
	return k;
}

/* A decimal number, the whole of s[0..n); false for empty, non-digits or
 * more than 18 digits. */
static bool parse_num(const char *s, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (!n || n > 18)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	*v = x;
	return true;
}

static long parse_msg(const char *buf, size_t len, size_t ll, bool hdr, size_t max_msg,
		      struct nw_frame *f, char *err, size_t errlen)
{
	const char *arg[6];
	size_t alen[6], na, skip = hdr ? 4 : 3;
	uint64_t hl = 0, tl = 0;

	na = split_args(buf + skip, buf + ll, arg, alen, 5);
	if (na < (hdr ? 4u : 3u) || na > (hdr ? 5u : 4u)) {
		err_printf(err, errlen, "bad %s line: '%.*s'", hdr ? "HMSG" : "MSG",
			   (int)(ll > 120 ? 120 : ll), buf);
		return -1;
	}
	f->kind = hdr ? NW_HMSG : NW_MSG;
	f->subject = arg[0];
	f->subject_len = alen[0];
	if (!parse_num(arg[1], alen[1], &f->sid)) {
		err_printf(err, errlen, "bad sid in '%.*s'", (int)(ll > 120 ? 120 : ll), buf);
		return -1;
	}
	size_t last = na - 1;
	bool has_reply = na == (hdr ? 5u : 4u);
	f->reply = has_reply ? arg[2] : NULL;
	f->reply_len = has_reply ? alen[2] : 0;
	if (!parse_num(arg[last], alen[last], &tl) ||
	    (hdr && !parse_num(arg[last - 1], alen[last - 1], &hl)) || hl > tl) {
		err_printf(err, errlen, "bad length in '%.*s'", (int)(ll > 120 ? 120 : ll), buf);
		return -1;
	}
	if (tl > max_msg) {
		err_printf(err, errlen, "message of %llu bytes is over the limit of %zu",
			   (unsigned long long)tl, max_msg);
		return -1;
	}
	size_t start = ll + 2, need = start + (size_t)tl + 2;
	if (len < need)
		return 0;
	if (buf[need - 2] != '\r' || buf[need - 1] != '\n') {
		err_printf(err, errlen, "%s payload of %llu bytes is not followed by CRLF",
			   hdr ? "HMSG" : "MSG", (unsigned long long)tl);
		return -1;
	}
	f->hdr = hdr ? buf + start : NULL;
	f->hdr_len = (size_t)hl;
	f->data = buf + start + hl;
	f->data_len = (size_t)(tl - hl);
	return (long)need;
}

long nw_parse(const char *buf, size_t len, size_t max_msg, struct nw_frame *f, char *err,
	      size_t errlen)
{
	const char *nl;
	size_t ll, scan = len < NW_MAX_LINE + 2 ? len : NW_MAX_LINE + 2;

	memset(f, 0, sizeof(*f));
	if (!len)
		return 0;
	nl = memchr(buf, '\n', scan);
	if (!nl) {
		if (len >= NW_MAX_LINE + 2) {
			err_printf(err, errlen, "control line longer than %d bytes", NW_MAX_LINE);
			return -1;
		}
		return 0;
	}
	if (nl == buf || nl[-1] != '\r') {
		err_printf(err, errlen, "line without CR before LF: '%.*s'",
			   (int)((size_t)(nl - buf) > 120 ? 120 : (size_t)(nl - buf)), buf);
		return -1;
	}
	ll = (size_t)(nl - buf) - 1; /* without CRLF */
	if (is_op(buf, ll, "msg"))
		return parse_msg(buf, len, ll, false, max_msg, f, err, errlen);
	if (is_op(buf, ll, "hmsg"))
		return parse_msg(buf, len, ll, true, max_msg, f, err, errlen);
	if (ll == 4 && is_op(buf, ll, "ping")) {
		f->kind = NW_PING;
	} else if (ll == 4 && is_op(buf, ll, "pong")) {
		f->kind = NW_PONG;
	} else if (ll == 3 && is_op(buf, ll, "+ok")) {
		f->kind = NW_OK;
	} else if (is_op(buf, ll, "info")) {
		const char *p = buf + 4, *e = buf + ll;
		while (p < e && is_sp(*p))
			p++;
		f->kind = NW_INFO;
		f->data = p;
		f->data_len = (size_t)(e - p);
	} else if (is_op(buf, ll, "-err")) {
		const char *p = buf + 4, *e = buf + ll;
		while (p < e && is_sp(*p))
			p++;
		while (e > p && is_sp(e[-1]))
			e--;
		if (e - p >= 2 && *p == '\'' && e[-1] == '\'') {
			p++;
			e--;
		}
		f->kind = NW_ERR;
		f->data = p;
		f->data_len = (size_t)(e - p);
	} else {
		err_printf(err, errlen, "unknown operation: '%.*s'", (int)(ll > 60 ? 60 : ll), buf);
		return -1;
	}
	return (long)(ll + 2);
}

int nw_hdr_status(const char *hdr, size_t len)
{
	const char *p = hdr + 8, *e = hdr + len;
	int code = 0, digits = 0;

	if (len < 8 || memcmp(hdr, "NATS/1.0", 8))
		return -1;
	while (p < e && is_sp(*p))
		p++;
	while (p < e && *p >= '0' && *p <= '9' && digits < 3) {
		code = code * 10 + (*p++ - '0');
		digits++;
	}
	return digits == 3 ? code : 0;
}

int nw_reply_num(const char *reply, size_t len, const char *prefix, size_t plen, uint64_t *n)
{
	if (!reply || len <= plen + 1 || memcmp(reply, prefix, plen) || reply[plen] != '.')
		return -1;
	return parse_num(reply + plen + 1, len - plen - 1, n) ? 0 : -1;
}

/* ---- a small JSON object walker: no allocation, nesting bounded ---- */

struct jcur {
	const char *p, *e;
};

enum jtype { J_STR, J_NUM, J_TRUE, J_FALSE, J_NULL, J_OBJ, J_ARR };

static void jws(struct jcur *c)
{
	while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

/* A string at c->p (at its quote): its raw contents [*s, *s + *n). */
static bool jstr(struct jcur *c, const char **s, size_t *n)
{
	if (c->p >= c->e || *c->p != '"')
		return false;
	const char *b = ++c->p;
	while (c->p < c->e && *c->p != '"') {
		if ((unsigned char)*c->p < 0x20)
			return false;
		if (*c->p == '\\') {
			if (++c->p == c->e)
				return false;
		}
		c->p++;
	}
	if (c->p >= c->e)
		return false;
	*s = b;
	*n = (size_t)(c->p - b);
	c->p++;
	return true;
}

static bool jlit(struct jcur *c, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(c->e - c->p) < n || memcmp(c->p, lit, n))
		return false;
	c->p += n;
	return true;
}

static bool jvalue(struct jcur *c, int depth, enum jtype *t, const char **s, size_t *n);

static bool jskip_container(struct jcur *c, int depth, char close)
{
	c->p++;
	jws(c);
	if (c->p < c->e && *c->p == close) {
		c->p++;
		return true;
	}
	for (;;) {
		enum jtype t;
		const char *s;
		size_t n;

		jws(c);
		if (close == '}') {
			if (!jstr(c, &s, &n))
				return false;
			jws(c);
			if (c->p >= c->e || *c->p++ != ':')
				return false;
			jws(c);
		}
		if (!jvalue(c, depth + 1, &t, &s, &n))
			return false;
		jws(c);
		if (c->p >= c->e)
			return false;
		if (*c->p == ',') {
			c->p++;
			continue;
		}
		if (*c->p++ != close)
			return false;
		return true;
	}
}

/* A value: its type and span (strings: the contents). */
static bool jvalue(struct jcur *c, int depth, enum jtype *t, const char **s, size_t *n)
{
	if (depth > 16 || c->p >= c->e)
		return false;
	*s = c->p;
	switch (*c->p) {
	case '"':
		*t = J_STR;
		return jstr(c, s, n);
	case '{':
	case '[':
		*t = *c->p == '{' ? J_OBJ : J_ARR;
		if (!jskip_container(c, depth, *c->p == '{' ? '}' : ']'))
			return false;
		*n = (size_t)(c->p - *s);
		return true;
	case 't':
		*t = J_TRUE;
		return jlit(c, "true");
	case 'f':
		*t = J_FALSE;
		return jlit(c, "false");
	case 'n':
		*t = J_NULL;
		return jlit(c, "null");
	default:
		*t = J_NUM;
		while (c->p < c->e &&
		       ((*c->p >= '0' && *c->p <= '9') || *c->p == '-' || *c->p == '+' ||
			*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
			c->p++;
		*n = (size_t)(c->p - *s);
		return *n > 0;
	}
}

typedef bool (*jkey_fn)(void *ctx, const char *k, size_t kl, enum jtype t, const char *v,
			size_t vl);

/* Walks the members of the object json[0..len), calling fn for each. */
static bool jobject(const char *json, size_t len, jkey_fn fn, void *ctx)
{
	struct jcur c = {json, json + len};

	jws(&c);
	if (c.p >= c.e || *c.p != '{')
		return false;
	c.p++;
	jws(&c);
	if (c.p < c.e && *c.p == '}') {
		c.p++;
		goto end;
	}
	for (;;) {
		const char *k, *v;
		size_t kl, vl;
		enum jtype t;

		jws(&c);
		if (!jstr(&c, &k, &kl))
			return false;
		jws(&c);
		if (c.p >= c.e || *c.p++ != ':')
			return false;
		jws(&c);
		if (!jvalue(&c, 1, &t, &v, &vl))
			return false;
		if (!fn(ctx, k, kl, t, v, vl))
			return false;
		jws(&c);
		if (c.p >= c.e)
			return false;
		if (*c.p == ',') {
			c.p++;
			continue;
		}
		if (*c.p++ != '}')
			return false;
		break;
	}
end:
	jws(&c);
	return c.p == c.e;
}

static bool key_is(const char *k, size_t kl, const char *want)
{
	return kl == strlen(want) && !memcmp(k, want, kl);
}

static bool jnum_u64(const char *v, size_t vl, uint64_t *out)
{
	return parse_num(v, vl, out);
}

static bool jnum_int(const char *v, size_t vl, int *out)
{
	uint64_t x;
	bool neg = vl && *v == '-';

	if (!parse_num(v + neg, vl - neg, &x) || x > 0x7fffffff)
		return false;
	*out = neg ? -(int)x : (int)x;
	return true;
}

/* A JSON string's raw contents into dst (escapes kept as they are: these
 * are for messages), cut to fit. */
static void copy_cut(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, s, n);
	dst[n] = 0;
}

struct pa_ctx {
	struct nw_puback *pa;
	bool seen_seq, seen_err;
};

static bool pa_err_key(void *ctx, const char *k, size_t kl, enum jtype t, const char *v, size_t vl)
{
	struct nw_puback *pa = ctx;

	if (key_is(k, kl, "code"))
		return t == J_NUM && jnum_int(v, vl, &pa->code);
	if (key_is(k, kl, "err_code"))
		return t == J_NUM && jnum_int(v, vl, &pa->err_code);
	if (key_is(k, kl, "description")) {
		if (t != J_STR)
			return false;
		copy_cut(pa->desc, sizeof(pa->desc), v, vl);
	}
	return true;
}

static bool pa_key(void *ctx, const char *k, size_t kl, enum jtype t, const char *v, size_t vl)
{
	struct pa_ctx *c = ctx;

	if (key_is(k, kl, "stream")) {
		if (t != J_STR)
			return false;
		copy_cut(c->pa->stream, sizeof(c->pa->stream), v, vl);
	} else if (key_is(k, kl, "seq")) {
		if (t != J_NUM || !jnum_u64(v, vl, &c->pa->seq))
			return false;
		c->seen_seq = true;
	} else if (key_is(k, kl, "duplicate")) {
		if (t != J_TRUE && t != J_FALSE)
			return false;
		c->pa->duplicate = t == J_TRUE;
	} else if (key_is(k, kl, "error")) {
		if (t != J_OBJ || !jobject(v, vl, pa_err_key, c->pa))
			return false;
		c->seen_err = true;
	}
	return true;
}

/* Consumes lit at *p, allowing spaces before it. */
static bool lit_at(const char **p, const char *e, const char *lit, size_t n)
{
	while (*p < e && **p == ' ')
		(*p)++;
	if ((size_t)(e - *p) < n || memcmp(*p, lit, n))
		return false;
	*p += n;
	return true;
}

/* The form nats-server (2.9, 2.10) writes: {"stream":"S", "seq":N} and
 * {"stream":"S", "seq":N,"duplicate": true}, spaces allowed between the
 * tokens. Anything else goes to the general parser. */
static bool puback_fast(const char *p, size_t len, struct nw_puback *pa)
{
	const char *e = p + len, *q;

	if (!lit_at(&p, e, "{\"stream\":", 10) || !lit_at(&p, e, "\"", 1))
		return false;
	for (q = p; q < e && *q != '"'; q++)
		if (*q == '\\' || (unsigned char)*q < 0x20)
			return false; /* escapes, control bytes: the general parser */
	if (q == e)
		return false;
	copy_cut(pa->stream, sizeof(pa->stream), p, (size_t)(q - p));
	p = q + 1;
	if (!lit_at(&p, e, ",", 1) || !lit_at(&p, e, "\"seq\":", 6))
		return false;
	while (p < e && *p == ' ')
		p++;
	q = p;
	while (q < e && *q >= '0' && *q <= '9')
		q++;
	if (!parse_num(p, (size_t)(q - p), &pa->seq))
		return false;
	p = q;
	if (lit_at(&p, e, ",", 1)) {
		if (!lit_at(&p, e, "\"duplicate\":", 12) || !lit_at(&p, e, "true", 4))
			return false;
		pa->duplicate = true;
	}
	return lit_at(&p, e, "}", 1) && p == e;
}

int nw_parse_puback(const char *json, size_t len, struct nw_puback *pa, char *err, size_t errlen)
{
	struct pa_ctx c = {pa, false, false};

	memset(pa, 0, sizeof(*pa));
	if (puback_fast(json, len, pa))
		return 0;
	memset(pa, 0, sizeof(*pa));
	if (!jobject(json, len, pa_key, &c)) {
		err_printf(err, errlen, "PubAck is not a JSON object: '%.*s'",
			   (int)(len > 120 ? 120 : len), json);
		return -1;
	}
	if (c.seen_err) {
		pa->error = true;
		return 0;
	}
	if (!c.seen_seq) {
		err_printf(err, errlen, "PubAck without seq or error: '%.*s'",
			   (int)(len > 120 ? 120 : len), json);
		return -1;
	}
	return 0;
}

static bool info_key(void *ctx, const char *k, size_t kl, enum jtype t, const char *v, size_t vl)
{
	struct nw_info *in = ctx;

	if (key_is(k, kl, "max_payload"))
		return t == J_NUM && jnum_u64(v, vl, &in->max_payload);
	if (key_is(k, kl, "headers"))
		in->headers = t == J_TRUE;
	else if (key_is(k, kl, "tls_required"))
		in->tls_required = t == J_TRUE;
	else if (key_is(k, kl, "auth_required"))
		in->auth_required = t == J_TRUE;
	else if (key_is(k, kl, "server_id") && t == J_STR)
		copy_cut(in->server_id, sizeof(in->server_id), v, vl);
	return true;
}

int nw_parse_info(const char *json, size_t len, struct nw_info *info, char *err, size_t errlen)
{
	memset(info, 0, sizeof(*info));
	if (!jobject(json, len, info_key, info)) {
		err_printf(err, errlen, "INFO is not a JSON object: '%.*s'",
			   (int)(len > 120 ? 120 : len), json);
		return -1;
	}
	return 0;
}
