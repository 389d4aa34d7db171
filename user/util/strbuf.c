// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/strbuf.h"

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
	sb->err = 0;
}

int sb_grow_slow(struct strbuf *sb, size_t n)
{
	if (sb->err)
		return sb->err;
	if (sb->len + n + 1 <= sb->cap)
		return 0;
	size_t cap = sb->cap ? sb->cap : 256;
	while (cap < sb->len + n + 1) {
		if (cap > SIZE_MAX / 2) {
			sb->err = -ENOMEM;
			return sb->err;
		}
		cap *= 2;
	}
	char *p = realloc(sb->buf, cap);
	if (!p) {
		sb->err = -ENOMEM;
		return sb->err;
	}
	sb->buf = p;
	sb->cap = cap;
	return 0;
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char tmp[256];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		sb_add(sb, tmp, (size_t)n);
		return;
	}
	if (sb_grow(sb, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

/* Two digits at a time from a table: half the divisions of one at a time. */
static const char digit_pairs[201] = "00010203040506070809"
				     "10111213141516171819"
				     "20212223242526272829"
				     "30313233343536373839"
				     "40414243444546474849"
				     "50515253545556575859"
				     "60616263646566676869"
				     "70717273747576777879"
				     "80818283848586878889"
				     "90919293949596979899";

/* Four digits of v (< 10000, zero-padded) at p: its two halves do not
 * wait for each other. */
static inline void put4(char *p, uint32_t v)
{
	uint32_t hi = v / 100, lo = v - hi * 100;

	memcpy(p, digit_pairs + hi * 2, 2);
	memcpy(p + 2, digit_pairs + lo * 2, 2);
}

/* Writes v's digits ending at end; returns the first. 32-bit steps: most
 * values (pids, ports, sizes) fit, and a 32-bit division is the cheap one.
 * Four digits per division by 10000, so a 10-digit value (a namespace
 * inode) waits for three divisions in a row, not five. */
static inline char *u32_digits(char *end, uint32_t v)
{
	while (v >= 10000) {
		uint32_t q = v / 10000;

		end -= 4;
		put4(end, v - q * 10000);
		v = q;
	}
	if (v >= 100) {
		uint32_t q = v / 100;

		end -= 2;
		memcpy(end, digit_pairs + (v - q * 100) * 2, 2);
		v = q;
	}
	if (v >= 10) {
		end -= 2;
		memcpy(end, digit_pairs + v * 2, 2);
	} else {
		*--end = (char)('0' + v);
	}
	return end;
}

/* The number of decimal digits of v: from its bit length, an estimate of
 * log10 that is exact or one too high, corrected with one comparison. */
static inline unsigned dec_digits(uint64_t v)
{
	static const uint64_t pow10[20] = {1ull,
					   10ull,
					   100ull,
					   1000ull,
					   10000ull,
					   100000ull,
					   1000000ull,
					   10000000ull,
					   100000000ull,
					   1000000000ull,
					   10000000000ull,
					   100000000000ull,
					   1000000000000ull,
					   10000000000000ull,
					   100000000000000ull,
					   1000000000000000ull,
					   10000000000000000ull,
					   100000000000000000ull,
					   1000000000000000000ull,
					   10000000000000000000ull};
	unsigned t = ((unsigned)(64 - __builtin_clzll(v | 1)) * 1233) >> 12;

	return t + ((v | 1) >= pow10[t]);
}

char *put_u32_padded(char *o, uint32_t v, unsigned width)
{
	char *end = o + width, *p = u32_digits(end, v);

	while (p > o)
		*--p = '0';
	return end;
}

size_t u64_put(char *dst, uint64_t v)
{
	/* The digits go straight to their place, written from the end: no
	 * copy from a scratch buffer (loading 16 bytes just written one at a
	 * time stalls on store forwarding, most of this function's time). */
	unsigned n = dec_digits(v);
	char *end = dst + n;
	if (v <= UINT32_MAX) {
		u32_digits(end, (uint32_t)v);
	} else {
		/* the low 8 digits (zero-padded), then the rest */
		char *p = u32_digits(end, (uint32_t)(v % 100000000u));
		while (p > end - 8)
			*--p = '0';
		uint64_t hi = v / 100000000u;
		if (hi <= UINT32_MAX) {
			u32_digits(p, (uint32_t)hi);
		} else {
			p = u32_digits(p, (uint32_t)(hi % 100000000u));
			while (p > end - 16)
				*--p = '0';
			u32_digits(p, (uint32_t)(hi / 100000000u));
		}
	}
	return n;
}

void sb_u64(struct strbuf *sb, uint64_t v)
{
	char *o = sb_begin(sb, 20);

	if (o)
		sb_end(sb, put_u64(o, v));
}

void sb_i64(struct strbuf *sb, int64_t v)
{
	if (v < 0) {
		sb_putc(sb, '-');
		sb_u64(sb, (uint64_t)0 - (uint64_t)v);
	} else {
		sb_u64(sb, (uint64_t)v);
	}
}

size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	uint32_t cp;
	if ((c & 0xe0) == 0xc0) {
		len = 2;
		cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		if (p[i] == 0)
			return 0;
		size_t l = utf8_seq(p + i, n - i);
		if (!l)
			return 0;
		i += l;
	}
	return 1;
}

/* 1 for the bytes a JSON string holds as they are: printable ASCII but '"'
 * and '\\' (control bytes are escaped, bytes >= 0x80 checked as UTF-8). */
static const unsigned char json_plain[256] = {
    [0x20 ... 0x21] = 1,
    [0x23 ... 0x5b] = 1,
    [0x5d ... 0x7f] = 1,
};

/* The escape of one byte that a JSON string cannot hold as it is (at most
 * 6 bytes at o); returns the end. */
static char *put_esc(char *o, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	switch (c) {
	case '"':
		return put_lit(o, "\\\"");
	case '\\':
		return put_lit(o, "\\\\");
	case '\n':
		return put_lit(o, "\\n");
	case '\r':
		return put_lit(o, "\\r");
	case '\t':
		return put_lit(o, "\\t");
	default:
		if (c < 0x20) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			return put_mem(o, e, 6);
		}
		return put_lit(o, "\\ufffd"); /* invalid UTF-8 byte */
	}
}

/* The length of the run at p (n bytes) that needs no escaping. */
static size_t plain_run(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		if (json_plain[c]) {
			i++;
			continue;
		}
		size_t l = c >= 0x80 ? utf8_seq(p + i, n - i) : 0;
		if (!l)
			break;
		i += l;
	}
	return i;
}

char *put_json_str(char *o, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	*o++ = '"';
	while (i < n) {
		size_t k = plain_run(p + i, n - i);
		o = put_mem(o, p + i, k);
		i += k;
		if (i < n)
			o = put_esc(o, p[i++]);
	}
	*o++ = '"';
	return o;
}

/* Strings up to this long are written with one room check for the worst
 * case (JSON_STR_MAX); longer ones piece by piece, so that a large text
 * does not reserve six times its size. */
#define JSON_STR_ONCE 4096

void sb_json_str(struct strbuf *sb, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	if (n <= JSON_STR_ONCE) {
		if (sb_grow(sb, JSON_STR_MAX(n)))
			return;
		sb_end(sb, put_json_str(sb->buf + sb->len, s, n));
		return;
	}
	sb_putc(sb, '"');
	size_t i = 0;
	while (i < n) {
		size_t k = plain_run(p + i, n - i);
		sb_add(sb, p + i, k);
		i += k;
		if (i < n && !sb_grow(sb, 6))
			sb_end(sb, put_esc(sb->buf + sb->len, p[i]));
		i += i < n;
	}
	sb_putc(sb, '"');
}

void sb_base64(struct strbuf *sb, const void *data, size_t n)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	if (sb_grow(sb, (n + 2) / 3 * 4))
		return;
	char *o = sb->buf + sb->len;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = tbl[(v >> 6) & 63];
		*o++ = tbl[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = tbl[(v >> 6) & 63];
		*o++ = '=';
	}
	sb->len = (size_t)(o - sb->buf);
	sb->buf[sb->len] = '\0';
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

long base64_decode(const char *in, size_t n, void *out, size_t cap)
{
	unsigned char *o = out;
	size_t olen = 0;
	uint32_t acc = 0;
	int bits = 0;
	size_t pad = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad)
			return -EINVAL; /* data after padding */
		int v = b64val(c);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (olen >= cap)
				return -ENOSPC;
			o[olen++] = (unsigned char)(acc >> bits);
		}
	}
	if (pad > 2 || bits >= 6)
		return -EINVAL;
	return (long)olen;
}

void sb_time_iso(struct strbuf *sb, uint64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000ull);
	struct tm tm;
	gmtime_r(&sec, &tm);
	sb_printf(sb, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", tm.tm_year + 1900, tm.tm_mon + 1,
		  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ns % 1000000000ull));
}

void err_printf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
