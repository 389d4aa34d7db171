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
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_u64(struct strbuf *sb, uint64_t v);
/* The decimal digits of v at dst (room for 20), without a NUL; returns how
 * many were written. */
size_t u64_put(char *dst, uint64_t v);
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
