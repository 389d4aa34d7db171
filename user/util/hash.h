/* SPDX-License-Identifier: Apache-2.0 */
/* FNV-1a, 64 bits: the hash behind stable event ids and file fingerprints. */
#ifndef TAPIO_UTIL_HASH_H
#define TAPIO_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_BASIS 0xcbf29ce484222325ull

/* Continues h (start with FNV1A64_BASIS) over n bytes at p. */
static inline uint64_t fnv1a64_add(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static inline uint64_t fnv1a64(const void *p, size_t n)
{
	return fnv1a64_add(FNV1A64_BASIS, p, n);
}

#endif
