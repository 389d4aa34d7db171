/* SPDX-License-Identifier: Apache-2.0 */
/* Integer and suffix parsing, once for every module. */
#ifndef TAPIO_UTIL_PARSE_H
#define TAPIO_UTIL_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses a whole string as an unsigned number (decimal, or hex with 0x) no
 * larger than max. No sign, no space, no trailing bytes. Returns 0, -EINVAL
 * (not a number) or -ERANGE (above max). */
int parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Like parse_u64 with an optional K, M or G suffix (powers of 1024; "Ki",
 * "KiB" and "KB" are accepted too). */
int parse_size(const char *s, uint64_t *out);

/* Parses the digits in [*p, end) up to the next space in the given base (10
 * or 16, lower-case), then steps *p past that space. Returns false when
 * there is no digit, a byte that is not one, an overflow or no space. For
 * space-separated fields of state files. */
bool parse_u64_field(const char **p, const char *end, int base, uint64_t *out);

/* True when s (its first n bytes) ends with suffix. */
bool has_suffix(const char *s, const char *suffix);
bool has_suffixn(const char *s, size_t n, const char *suffix);

/* Splits "HOST:PORT", "[IPV6]:PORT" or ":PORT" (host "") into host (at most
 * hostlen - 1 bytes) and port (0..65535). A bare IPv6 address needs brackets.
 * Returns 0 or -EINVAL. */
int parse_hostport(const char *addr, char *host, size_t hostlen, unsigned *port);

#endif
