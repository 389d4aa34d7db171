/* SPDX-License-Identifier: Apache-2.0 */
/* The CNI collector: one inotify thread that follows
 *   - CNI plugin log files (--cni-log-dirs)             -> cni.log
 *   - the network namespace directory (--netns-dir)     -> cni.netns
 *   - libcni's result cache (cni_state_dir/results)     -> cni.result
 *   - host-local IPAM reservations (cni_state_dir/networks/<net>/<ip>) -> cni.ipam
 * and writes raw events into the shared queue. See collectors/cni/README.md. */
#ifndef TAPIO_CNI_H
#define TAPIO_CNI_H

#include <stdbool.h>
#include <stddef.h>

struct collector;
struct collector_env;
struct opt_group;
struct source_desc;

enum cni_type { TYPE_CNI_LOG = 1, TYPE_CNI_NETNS, TYPE_CNI_RESULT, TYPE_CNI_IPAM, CNI_NTYPES };

/* The collector's options. */
struct cni_options {
	char *log_dirs;	 /* --cni-log-dirs: comma list */
	char *netns_dir; /* --netns-dir */
	char *state_dir; /* --cni-state-dir: results/ and networks/ below it */
};
extern const struct opt_group cni_options_group;
extern const struct source_desc cni_source;

/* Log lines longer than this (or than cfg->max_event_size when smaller) are
 * skipped and counted as oversize. */
#define CNI_LINE_MAX (64u * 1024)
/* Used when cfg->max_event_size is 0. */
#define CNI_DEFAULT_MAX_EVENT (1u << 20)

/* Creates the collector from env->opts (a struct cni_options; NULL or NULL
 * fields take the defaults) and env->cfg (state_dir, max_event_size; may be
 * NULL). Returns NULL with errno and a one-line reason in err for a bad
 * config (EINVAL), or ENOMEM. The caller owns the result (collector_destroy). */
struct collector *cni_collector_new(const struct collector_env *env, char *err, size_t errlen);

/* True when any of the CNI log dirs, the netns dir or the CNI state dir exists. */
bool cni_collector_available(const struct collector_env *env);

#endif
