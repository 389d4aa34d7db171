// SPDX-License-Identifier: Apache-2.0
#include "util/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int parse_prefix(const char *s, uint64_t *out, char **end)
{
	if (!s || !*s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, end, 0);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno || *end == s)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	uint64_t v;
	int rc = parse_prefix(s, &v, &end);
	if (rc)
		return rc;
	if (*end)
		return -EINVAL;
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v, mul = 1;
	int rc = parse_prefix(s, &v, &end);
	if (rc)
		return rc;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K':
			mul = 1ull << 10;
			break;
		case 'M':
			mul = 1ull << 20;
			break;
		case 'G':
			mul = 1ull << 30;
			break;
		default:
			return -EINVAL;
		}
		end++;
		if (toupper((unsigned char)*end) == 'I')
			end++;
		if (toupper((unsigned char)*end) == 'B')
			end++;
	}
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

bool parse_u64_field(const char **p, const char *end, int base, uint64_t *out)
{
	const char *s = *p, *q = s;
	uint64_t v = 0;
	if (s >= end || *s == ' ')
		return false;
	for (; q < end && *q != ' '; q++) {
		unsigned d;
		if (*q >= '0' && *q <= '9')
			d = (unsigned)(*q - '0');
		else if (base == 16 && *q >= 'a' && *q <= 'f')
			d = (unsigned)(*q - 'a' + 10);
		else
			return false;
		if (v > (UINT64_MAX - d) / (unsigned)base)
			return false;
		v = v * (unsigned)base + d;
	}
	if (q >= end)
		return false;
	*out = v;
	*p = q + 1;
	return true;
}

bool has_suffixn(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && !memcmp(s + n - k, suffix, k);
}

bool has_suffix(const char *s, const char *suffix)
{
	return has_suffixn(s, strlen(s), suffix);
}

int parse_hostport(const char *addr, char *host, size_t hostlen, unsigned *port)
{
	const char *colon, *h = addr, *hend;
	uint64_t p;

	if (!addr || !*addr)
		return -EINVAL;
	if (*addr == '[') {
		hend = strchr(addr, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		h = addr + 1;
		colon = hend + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
			return -EINVAL; /* bare IPv6 needs brackets */
		hend = colon;
	}
	if ((size_t)(hend - h) >= hostlen)
		return -EINVAL;
	p = 0;
	const char *d = colon + 1;
	if (!*d)
		return -EINVAL;
	for (; *d; d++) {
		if (*d < '0' || *d > '9' || (p = p * 10 + (uint64_t)(*d - '0')) > 65535)
			return -EINVAL;
	}
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	*port = (unsigned)p;
	return 0;
}
