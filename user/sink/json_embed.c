// SPDX-License-Identifier: Apache-2.0
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "sink/json_embed.h"
#include "util/strbuf.h"

struct emb {
	const unsigned char *p;
	size_t n, i;
	struct strbuf *sb;
};

static const char hexd[] = "0123456789abcdef";

static void skip_ws(struct emb *e)
{
	while (e->i < e->n) {
		unsigned char c = e->p[e->i];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			sb_putc(e->sb, ' '); /* one event, one line, no raw control byte */
		} else {
			return;
		}
		e->i++;
	}
}

static int hex4(const unsigned char *s, size_t avail, unsigned *out)
{
	if (avail < 4)
		return -1;
	unsigned v = 0;
	for (int k = 0; k < 4; k++) {
		unsigned char c = s[k];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

/* At the opening quote. Copies the string, repairing its bytes; -1 on a
 * syntax error (no closing quote, a bad escape). */
static int parse_string(struct emb *e)
{
	e->i++;
	sb_putc(e->sb, '"');
	size_t run = e->i;
	while (e->i < e->n) {
		unsigned char c = e->p[e->i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			e->i++;
			continue;
		}
		if (c >= 0x80) {
			size_t l = utf8_seq(e->p + e->i, e->n - e->i);
			if (l) {
				e->i += l;
				continue;
			}
		}
		sb_add(e->sb, e->p + run, e->i - run);
		if (c == '"') {
			sb_putc(e->sb, '"');
			e->i++;
			return 0;
		}
		if (c == '\\') {
			if (e->i + 1 >= e->n)
				return -1;
			unsigned char x = e->p[e->i + 1];
			if (x && strchr("\"\\/bfnrt", x)) {
				sb_add(e->sb, e->p + e->i, 2);
				e->i += 2;
			} else if (x == 'u') {
				unsigned u;
				if (hex4(e->p + e->i + 2, e->n - e->i - 2, &u))
					return -1;
				size_t len = 6;
				bool ok = u < 0xd800 || u > 0xdfff;
				if (u >= 0xd800 && u <= 0xdbff) {
					unsigned lo;
					const unsigned char *q = e->p + e->i + 6;
					size_t avail = e->n - e->i - 6;
					if (avail >= 6 && q[0] == '\\' && q[1] == 'u' &&
					    !hex4(q + 2, avail - 2, &lo) && lo >= 0xdc00 &&
					    lo <= 0xdfff) {
						ok = true;
						len = 12;
					}
				}
				if (ok)
					sb_add(e->sb, e->p + e->i, len);
				else
					sb_add(e->sb, "\\ufffd", 6); /* a lone surrogate */
				e->i += len;
			} else {
				return -1;
			}
		} else if (c < 0x20) {
			char esc[6] = {'\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15]};
			sb_add(e->sb, esc, 6);
			e->i++;
		} else {
			sb_add(e->sb, "\\ufffd", 6); /* an invalid UTF-8 byte */
			e->i++;
		}
		run = e->i;
	}
	return -1;
}

static size_t digits(struct emb *e)
{
	size_t s = e->i;
	while (e->i < e->n && e->p[e->i] >= '0' && e->p[e->i] <= '9')
		e->i++;
	return e->i - s;
}

static int parse_number(struct emb *e)
{
	size_t s = e->i;
	if (e->p[e->i] == '-')
		e->i++;
	if (e->i < e->n && e->p[e->i] == '0')
		e->i++;
	else if (!digits(e))
		return -1;
	if (e->i < e->n && e->p[e->i] == '.') {
		e->i++;
		if (!digits(e))
			return -1;
	}
	if (e->i < e->n && (e->p[e->i] == 'e' || e->p[e->i] == 'E')) {
		e->i++;
		if (e->i < e->n && (e->p[e->i] == '+' || e->p[e->i] == '-'))
			e->i++;
		if (!digits(e))
			return -1;
	}
	sb_add(e->sb, e->p + s, e->i - s);
	return 0;
}

static int parse_word(struct emb *e, const char *w)
{
	size_t l = strlen(w);
	if (e->n - e->i < l || memcmp(e->p + e->i, w, l))
		return -1;
	sb_add(e->sb, w, l);
	e->i += l;
	return 0;
}

/* One value, iteratively: the stack holds '{' or '[' per open container. */
static int parse_value(struct emb *e)
{
	char stack[JSON_EMBED_MAX_DEPTH];
	size_t depth = 0;
	for (;;) {
		/* expecting a value */
		skip_ws(e);
		if (e->i >= e->n)
			return -1;
		unsigned char c = e->p[e->i];
		int rc = 0;
		if (c == '{' || c == '[') {
			if (depth == sizeof(stack))
				return -1;
			stack[depth++] = (char)c;
			sb_putc(e->sb, (char)c);
			e->i++;
			skip_ws(e);
			if (e->i < e->n && e->p[e->i] == (c == '{' ? '}' : ']')) {
				sb_putc(e->sb, (char)e->p[e->i]);
				e->i++;
				depth--;
				goto after_value;
			}
			if (c == '{')
				goto object_key;
			continue;
		}
		if (c == '"')
			rc = parse_string(e);
		else if (c == '-' || (c >= '0' && c <= '9'))
			rc = parse_number(e);
		else if (c == 't')
			rc = parse_word(e, "true");
		else if (c == 'f')
			rc = parse_word(e, "false");
		else if (c == 'n')
			rc = parse_word(e, "null");
		else
			rc = -1;
		if (rc)
			return -1;
	after_value:
		for (;;) {
			if (depth == 0)
				return 0;
			skip_ws(e);
			if (e->i >= e->n)
				return -1;
			c = e->p[e->i];
			char close = stack[depth - 1] == '{' ? '}' : ']';
			if (c == (unsigned char)close) {
				sb_putc(e->sb, close);
				e->i++;
				depth--;
				continue;
			}
			if (c != ',')
				return -1;
			sb_putc(e->sb, ',');
			e->i++;
			if (stack[depth - 1] == '{')
				goto object_key;
			break; /* the next array element */
		}
		continue;
	object_key:
		skip_ws(e);
		if (e->i >= e->n || e->p[e->i] != '"' || parse_string(e))
			return -1;
		skip_ws(e);
		if (e->i >= e->n || e->p[e->i] != ':')
			return -1;
		sb_putc(e->sb, ':');
		e->i++;
	}
}

int json_embed(struct strbuf *sb, const char *p, size_t n)
{
	size_t mark = sb->len;
	struct emb e = {.p = (const unsigned char *)p, .n = n, .i = 0, .sb = sb};
	if (sb_grow(sb, n + 2))
		return 0;
	if (parse_value(&e) == 0) {
		skip_ws(&e);
		if (e.i == n && !sb->err)
			return 1;
	}
	sb->len = mark;
	if (sb->buf)
		sb->buf[mark] = '\0';
	sb_json_str(sb, p, n);
	return 0;
}
