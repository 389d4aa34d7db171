// SPDX-License-Identifier: Apache-2.0
#include <stdatomic.h>
#include <stdio.h>

#include "util/log.h"

static _Atomic(log_fn) hook;
static atomic_int max_level = TLOG_INFO;

void log_set_hook(log_fn fn)
{
	atomic_store(&hook, fn);
}

void log_set_level(int level)
{
	atomic_store(&max_level, level);
}

void vtlog(int level, const char *who, const char *fmt, va_list ap)
{
	if (level > atomic_load(&max_level))
		return;
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_fn fn = atomic_load(&hook);
	if (fn) {
		fn(level, who, msg);
		return;
	}
	/* One write per line so that lines from threads do not interleave. */
	fprintf(stderr, "tapio: %s%s%s\n", who ? who : "", who ? ": " : "", msg);
}

void tlog(int level, const char *who, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vtlog(level, who, fmt, ap);
	va_end(ap);
}
