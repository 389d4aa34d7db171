/* SPDX-License-Identifier: Apache-2.0 */
/* A growable byte buffer with JSON helpers. A buffer is reused across events:
 * sb_reset() keeps the allocation, so a steady stream allocates nothing.
 * On allocation failure the buffer is marked failed (sb->err = -ENOMEM) and
 * further appends are ignored; check sb->err once at the end. */
#ifndef TAPIO_STRBUF_H
#define TAPIO_STRBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct strbuf {
	char *buf; /* always NUL-terminated when cap > 0 */
	size_t len;
	size_t cap;
	int err; /* 0 or -ENOMEM */
};

#define STRBUF_INIT                                                                                \
	{                                                                                          \
		0                                                                                  \
	}

void sb_free(struct strbuf *sb);
static inline void sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	sb->err = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}
/* The reallocating part of sb_grow(). */
int sb_grow_slow(struct strbuf *sb, size_t n);
/* Makes room for n more bytes. Returns 0 or -ENOMEM. Inline: the encoders
 * call it for every piece, and it almost always has room already. */
static inline int sb_grow(struct strbuf *sb, size_t n)
{
	if (__builtin_expect(!sb->err && sb->len + n + 1 <= sb->cap, 1))
		return 0;
	return sb_grow_slow(sb, n);
}
static inline void sb_add(struct strbuf *sb, const void *p, size_t n)
{
	if (sb_grow(sb, n))
		return;
	memcpy(sb->buf + sb->len, p, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}
static inline void sb_putc(struct strbuf *sb, char c)
{
	if (sb_grow(sb, 1))
		return;
	sb->buf[sb->len++] = c;
	sb->buf[sb->len] = '\0';
}
static inline void sb_puts(struct strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

/* Unchecked writers for pieces of a known bound: make room once
 * (sb_begin), write with put_*() at the pointer, each returning where it
 * stopped, then sb_end(). */

/* A pointer for n more bytes at the end of sb, or NULL (sb failed). */
static inline char *sb_begin(struct strbuf *sb, size_t n)
{
	return sb_grow(sb, n) ? NULL : sb->buf + sb->len;
}
/* Ends the buffer at p, a pointer from sb_begin() moved by the writers. */
static inline void sb_end(struct strbuf *sb, char *p)
{
	sb->len = (size_t)(p - sb->buf);
	*p = '\0';
}
static inline char *put_mem(char *o, const void *p, size_t n)
{
	memcpy(o, p, n);
	return o + n;
}
/* A string literal, its length known at compile time. */
#define put_lit(o, lit) put_mem((o), (lit), sizeof(lit) - 1)
static inline char *put_u64(char *o, uint64_t v);
/* v as exactly width digits (zero-padded; v < 10^width, width <= 10) at
 * o; returns the end. */
char *put_u32_padded(char *o, uint32_t v, unsigned width);
/* The most bytes put_json_str() writes for n bytes of input. */
#define JSON_STR_MAX(n) (6 * (size_t)(n) + 2)
/* sb_json_str()'s writer: the quoted, escaped string at o (room for
 * JSON_STR_MAX(n) bytes); returns the end. */
char *put_json_str(char *o, const char *s, size_t n);

void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_u64(struct strbuf *sb, uint64_t v);
/* The decimal digits of v at dst (room for 20), without a NUL; returns how
 * many were written. */
size_t u64_put(char *dst, uint64_t v);
/* u64_put() at o, returning the end: one or two digits inline (zeros,
 * CPUs, flags, small ids are common), the rest through u64_put(). */
static inline char *put_u64(char *o, uint64_t v)
{
	if (v < 10) {
		*o = (char)('0' + v);
		return o + 1;
	}
	if (v < 100) {
		o[0] = (char)('0' + v / 10);
		o[1] = (char)('0' + v % 10);
		return o + 2;
	}
	return o + u64_put(o, v);
}
void sb_i64(struct strbuf *sb, int64_t v);

/* A JSON string with quotes. Control characters and `"` `\` are escaped;
 * invalid UTF-8 bytes become U+FFFD, so the output is always valid JSON. */
void sb_json_str(struct strbuf *sb, const char *s, size_t n);
static inline void sb_json_cstr(struct strbuf *sb, const char *s)
{
	sb_json_str(sb, s, s ? __builtin_strlen(s) : 0);
}
/* Standard base64 (RFC 4648, with padding), no quotes. */
void sb_base64(struct strbuf *sb, const void *p, size_t n);
/* ISO 8601 UTC with ns: 2026-11-27T00:10:00.123456789Z, no quotes. */
void sb_time_iso(struct strbuf *sb, uint64_t ns_since_epoch);

/* Decodes standard or URL-safe base64 (padding optional) into out (cap
 * bytes). Returns the decoded length or -EINVAL (bad input) / -ENOSPC. */
long base64_decode(const char *in, size_t n, void *out, size_t cap);

/* Writes a one-line error message into err (errlen bytes; nothing when err
 * is NULL or errlen 0): the err/errlen convention of constructors. */
void err_printf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when the n bytes are valid UTF-8 with no NUL. */
int utf8_valid(const char *s, size_t n);

/* Length of the valid UTF-8 sequence at s (1..4; n >= 1 bytes there), or 0
 * when it is invalid: a bad lead or continuation byte, an overlong form, a
 * surrogate or a code point beyond U+10FFFF. */
size_t utf8_seq(const unsigned char *s, size_t n);

#endif
