/* SPDX-License-Identifier: Apache-2.0 */
/* A growable array: one doubling rule for every module.
 *
 *   struct item *v = NULL; size_t n = 0, cap = 0;
 *   if (VEC_RESERVE(v, cap, n + 1)) return -ENOMEM;
 *   v[n++] = x;
 */
#ifndef TAPIO_UTIL_VEC_H
#define TAPIO_UTIL_VEC_H

#include <stddef.h>

/* Makes room for at least `need` elements of `elem` bytes at *v, whose
 * capacity is *cap; grows by doubling (from `min` when empty). Returns 0, or
 * -ENOMEM with *v and *cap unchanged. */
int vec_reserve(void **v, size_t *cap, size_t need, size_t elem, size_t min);

#define VEC_RESERVE(v, cap, need) vec_reserve((void **)&(v), &(cap), (need), sizeof(*(v)), 16)

#endif
