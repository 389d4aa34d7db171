/* SPDX-License-Identifier: Apache-2.0 */
/* The callback through which collectors and sinks hand out extra counters. */
#ifndef TAPIO_CORE_COUNTERS_H
#define TAPIO_CORE_COUNTERS_H

#include <stdint.h>

/* name is a metric suffix ("drops"), labels is Prometheus label text without
 * braces (`type="process.exec"`) or "". */
typedef void (*counter_fn)(void *ctx, const char *name, const char *labels, uint64_t value);

#endif
