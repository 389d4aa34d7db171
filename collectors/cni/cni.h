/* SPDX-License-Identifier: Apache-2.0 */
/* The CNI collector: one inotify thread that follows
 *   - CNI plugin log files (cfg->cni_log_dirs)          -> cni.log
 *   - the network namespace directory (cfg->netns_dir)  -> cni.netns
 *   - libcni's result cache (cni_state_dir/results)     -> cni.result
 *   - host-local IPAM reservations (cni_state_dir/networks/<net>/<ip>) -> cni.ipam
 * and writes raw events into the shared queue. See collectors/cni/README.md. */
#ifndef TAPIO_CNI_H
#define TAPIO_CNI_H

#include <stdbool.h>
#include <stddef.h>

#include "core/collector.h"
#include "core/config.h"

/* Log lines longer than this (or than cfg->max_event_size when smaller) are
 * skipped and counted as oversize. */
#define CNI_LINE_MAX (64u * 1024)
/* Used when cfg->max_event_size is 0. */
#define CNI_DEFAULT_MAX_EVENT (1u << 20)

/* Creates the collector from cfg (NULL fields take the defaults). Returns NULL
 * with errno and a one-line reason in err for a bad config (EINVAL), or
 * ENOMEM. The caller owns the result (collector_destroy). */
struct collector *cni_collector_new(const struct tapio_config *cfg, char *err, size_t errlen);

/* True when any of the CNI log dirs, the netns dir or cni_state_dir exists. */
bool cni_collector_available(const struct tapio_config *cfg);

#endif
