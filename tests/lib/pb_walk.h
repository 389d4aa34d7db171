/* SPDX-License-Identifier: Apache-2.0 */
/* A strict reader of the OTLP AnyValue wire format for the tests and the fuzz
 * harness, independent of the encoder: pb_anyvalue_ok() checks that bytes
 * are the fields of one AnyValue (string fields UTF-8, nested messages
 * whole, lengths within bounds). Header-only. */
#ifndef TAPIO_TESTS_PB_WALK_H
#define TAPIO_TESTS_PB_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"

static inline bool pbw_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (int s = 0; s < 64 && *p < end; s += 7) {
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << s;
		if (!(b & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

/* One field: *field, *wt, and for length-delimited ones *sub and *sublen. */
static inline bool pbw_field(const uint8_t **p, const uint8_t *end, unsigned *field, unsigned *wt,
			     const uint8_t **sub, size_t *sublen)
{
	uint64_t tag, v;
	if (!pbw_varint(p, end, &tag))
		return false;
	*field = (unsigned)(tag >> 3);
	*wt = (unsigned)(tag & 7);
	switch (*wt) {
	case 0:
		return pbw_varint(p, end, &v);
	case 1:
		if (end - *p < 8)
			return false;
		*sub = *p;
		*p += 8;
		return true;
	case 2:
		if (!pbw_varint(p, end, &v) || v > (uint64_t)(end - *p))
			return false;
		*sub = *p;
		*sublen = (size_t)v;
		*p += v;
		return true;
	default:
		return false;
	}
}

/* UTF-8, where protobuf allows NUL too. */
static inline bool pbw_utf8(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && p[j])
			j++;
		if (j > i && !utf8_valid((const char *)p + i, j - i))
			return false;
		i = j + 1;
	}
	return true;
}

static bool pb_anyvalue_ok(const uint8_t *p, size_t n, int depth);

static inline bool pbw_keyvalue_ok(const uint8_t *p, size_t n, int depth)
{
	const uint8_t *end = p + n, *sub;
	size_t sl = 0;
	unsigned f, wt;
	while (p < end) {
		if (!pbw_field(&p, end, &f, &wt, &sub, &sl) || wt != 2)
			return false;
		if (f == 1 && !pbw_utf8(sub, sl))
			return false;
		if (f == 2 && !pb_anyvalue_ok(sub, sl, depth + 1))
			return false;
	}
	return true;
}

static bool pb_anyvalue_ok(const uint8_t *p, size_t n, int depth)
{
	const uint8_t *end = p + n, *sub;
	size_t sl = 0;
	unsigned f, wt;
	if (depth > 200)
		return false;
	while (p < end) {
		if (!pbw_field(&p, end, &f, &wt, &sub, &sl))
			return false;
		switch (f) {
		case 1:
			if (wt != 2 || !pbw_utf8(sub, sl))
				return false;
			break;
		case 2:
		case 3:
			if (wt != 0)
				return false;
			break;
		case 4:
			if (wt != 1)
				return false;
			break;
		case 5:
		case 6: {
			if (wt != 2)
				return false;
			const uint8_t *q = sub, *qe = sub + sl, *s2;
			size_t l2 = 0;
			unsigned f2, w2;
			while (q < qe) {
				if (!pbw_field(&q, qe, &f2, &w2, &s2, &l2) || f2 != 1 || w2 != 2)
					return false;
				if (f == 5 ? !pb_anyvalue_ok(s2, l2, depth + 1)
					   : !pbw_keyvalue_ok(s2, l2, depth + 1))
					return false;
			}
			break;
		}
		case 7:
			if (wt != 2)
				return false;
			break;
		default:
			return false;
		}
	}
	return true;
}

#endif
