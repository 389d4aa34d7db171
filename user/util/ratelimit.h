/* SPDX-License-Identifier: Apache-2.0 */
/* A report limiter: at most one message per interval; the next one that gets
 * through learns how many were held back. Not thread-safe: one per thread or
 * per kind of message. */
#ifndef TAPIO_UTIL_RATELIMIT_H
#define TAPIO_UTIL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_DEFAULT_NS (10ull * 1000000000ull)

struct ratelimit {
	uint64_t interval_ns; /* 0 = RATELIMIT_DEFAULT_NS */
	uint64_t last_ns;     /* monotonic; 0 = never */
	uint64_t suppressed;  /* held back since the last one let through */
};

/* True when a message may go out at now_ns (monotonic). *held gets the number
 * held back before it (and the count restarts). */
bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ns, uint64_t *held);

#endif
