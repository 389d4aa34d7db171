/* SPDX-License-Identifier: Apache-2.0 */
/* Retry delays (see backoff.h). */
#include "util/backoff.h"

#include <stdint.h>
#include <time.h>

static uint64_t rng_next(void)
{
	static _Thread_local uint64_t s;
	if (s == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&s;
		s |= 1;
	}
	/* xorshift64* */
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	return s * 2685821657736338717ULL;
}

unsigned backoff_ms(unsigned attempt, unsigned base_ms, unsigned cap_ms)
{
	uint64_t d = base_ms;
	for (unsigned i = 0; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	/* A factor in [0.5, 1.0]: at least half the delay, so a flapping source
	 * is never hammered, and spread so that agents do not retry in step. */
	uint64_t half = d / 2;
	uint64_t span = d - half;
	return (unsigned)(half + (span ? rng_next() % (span + 1) : 0));
}
