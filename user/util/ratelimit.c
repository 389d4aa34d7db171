// SPDX-License-Identifier: Apache-2.0
#include "util/ratelimit.h"

bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ns, uint64_t *held)
{
	uint64_t iv = rl->interval_ns ? rl->interval_ns : RATELIMIT_DEFAULT_NS;
	if (rl->last_ns && now_ns - rl->last_ns < iv) {
		rl->suppressed++;
		return false;
	}
	rl->last_ns = now_ns ? now_ns : 1;
	*held = rl->suppressed;
	rl->suppressed = 0;
	return true;
}
