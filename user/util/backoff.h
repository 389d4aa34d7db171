/* SPDX-License-Identifier: Apache-2.0 */
/* Retry delays: exponential backoff with jitter. */
#ifndef TAPIO_BACKOFF_H
#define TAPIO_BACKOFF_H

/* Exponential backoff with full jitter: min(cap, base * 2^attempt) scaled by a
 * random factor in [0.5, 1.0]. Returns ms. Thread-safe (a per-thread RNG). */
unsigned backoff_ms(unsigned attempt, unsigned base_ms, unsigned cap_ms);

#endif
