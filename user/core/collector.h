/* SPDX-License-Identifier: Apache-2.0 */
/* The collector interface (docs/architecture.md "Adding a collector") and the registry.
 *
 * A collector embeds `struct collector` as its first member and gives an ops
 * table. start() spawns its thread, which writes events into the shared queue;
 * stop() returns when the thread has ended. The queue is the single event
 * stream, so there is no separate events() call.
 *
 * Collectors do not print. They count into `n`, set `healthy`, and report
 * errors with collector_error(), which hands the message to the log hook.
 */
#ifndef TAPIO_COLLECTOR_H
#define TAPIO_COLLECTOR_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/counters.h"
#include "util/ratelimit.h"
#include "util/worker.h"

struct queue;
struct collector;
struct meta_kv;
struct opt_group;
struct source_desc;
struct tapio_config;

struct collector_ops {
	const char *name;
	/* When unhealthy, the agent is not live (/healthz fails: restart it),
	 * not just unready. */
	bool liveness;
	/* Spawns the collector's thread. Returns 0 or a negative errno; on error
	 * nothing is left running. */
	int (*start)(struct collector *c, struct queue *q);
	/* Asks the thread to end and joins it. Safe to call twice or unstarted. */
	void (*stop)(struct collector *c);
	/* Optional; the default reads c->healthy. */
	bool (*healthy)(struct collector *c);
	/* Frees everything. Called only after stop(). */
	void (*destroy)(struct collector *c);
	/* Optional: extra counters (kernel drops per type, ...). */
	void (*counters)(struct collector *c, counter_fn fn, void *ctx);
};

/* Counters every collector keeps (atomics: read from other threads). */
struct collector_counters {
	_Atomic uint64_t events;       /* events committed to the queue */
	_Atomic uint64_t dropped;      /* events lost for good (the queue refused them) */
	_Atomic uint64_t refetched;    /* refused by the queue, but the source still holds
					  them and they are read again (k8s, etcd, systemd) */
	_Atomic uint64_t parse_errors; /* malformed input skipped */
	_Atomic uint64_t oversize;     /* oversized input skipped */
	_Atomic uint64_t reconnects;   /* source reconnects or reopenings */
	_Atomic uint64_t errors;       /* other source errors */
};

struct collector {
	const struct collector_ops *ops;
	struct collector_counters n;
	atomic_bool healthy;
	unsigned source;      /* its source id, for the events it emits */
	struct worker thread; /* the collector's main thread (collector_spawn) */
	pthread_mutex_t err_lock;
	char last_error[256];
};

/* One container of a pod, as the pod's status has it. id: the container id
 * without its runtime scheme ("containerd://"). */
struct pod_container {
	const char *id, *name, *image, *image_id;
};

/* A cgroup id as the hooks take it: a cgroup2 id, or with this bit set the
 * id of a cgroup in the v1 memory hierarchy (kernel events on v1/hybrid
 * hosts; ids are per hierarchy, so the two kinds must not mix). */
#define CGROUP_KEY_V1 (1ull << 63)

/* Hooks that enrichment gives the collectors (all optional, ctx first). */
struct collector_hooks {
	void *ctx;
	/* Kernel events: appends up to max meta pairs for a cgroup id (strings
	 * in scratch); returns the count. Called on the collector's thread. */
	size_t (*cgroup_meta)(void *ctx, uint64_t cgroup_id, struct meta_kv *kv, size_t max,
			      char *scratch, size_t scratch_len);
	/* Optional, with cgroup_meta: a stamp for what cgroup_meta gave last
	 * on this thread for cgroup_id, while that still holds: the same
	 * nonzero stamp means the same pairs. 0 when it may have changed, was
	 * transient or was never asked. The caller may then keep the pairs as
	 * laid out in its records instead of asking again. */
	uint64_t (*cgroup_meta_stamp)(void *ctx, uint64_t cgroup_id);
	/* A cgroup is gone (cgroup.rmdir). */
	void (*cgroup_removed)(void *ctx, uint64_t cgroup_id);
	/* A pod of this node was added, changed (deleted false) or deleted. */
	void (*pod_update)(void *ctx, const char *uid, const char *ns, const char *name,
			   bool deleted);
	/* A pod of this node (already given to pod_update) runs these containers
	 * (from status.containerStatuses and initContainerStatuses). */
	void (*pod_containers)(void *ctx, const char *uid, const struct pod_container *c, size_t n);
	/* Its metadata.labels (given after pod_update). */
	void (*pod_labels)(void *ctx, const char *uid, const struct meta_kv *kv, size_t n);
};

/* What a collector's constructor gets: the agent's options, its own option
 * group's filled and validated struct, its source id and the hooks. */
struct collector_env {
	const struct tapio_config *cfg;
	const void *opts;
	unsigned source;
	const struct collector_hooks *hooks; /* NULL = none */
};

/* One row of the collector table (collectors/table.c). */
struct collector_desc {
	const char *name;
	const struct source_desc *source; /* its name, type names and decoders */
	bool resumable;			  /* its source keeps the data: waits on a full queue */
	const struct opt_group *options;  /* NULL = none */
	/* True when this node has the collector's source. */
	bool (*available)(const struct collector_env *env);
	/* Returns the collector, or NULL with errno and a one-line reason in err. */
	struct collector *(*create)(const struct collector_env *env, char *err, size_t errlen);
};

/* Sets up the base part. */
void collector_init(struct collector *c, const struct collector_ops *ops, unsigned source);

/* Starts fn(c) as the collector's thread (c->thread). Returns 0 or a negative
 * errno. */
int collector_spawn(struct collector *c, void *(*fn)(void *));
/* Asks the thread to stop, wakes it and joins it. Safe to call twice. */
void collector_join(struct collector *c);
/* True once the collector's thread has been asked to stop. */
static inline bool collector_stopping(struct collector *c)
{
	return worker_stopping(&c->thread);
}

static inline const char *collector_name(const struct collector *c)
{
	return c->ops->name;
}

int collector_start(struct collector *c, struct queue *q);
void collector_stop(struct collector *c);
bool collector_healthy(struct collector *c);
/* stop()s nothing: call collector_stop first. Accepts NULL. */
void collector_destroy(struct collector *c);

/* Records the collector's last error and passes it to the log hook as
 * "<name>: <message>". Thread-safe. */
void collector_error(struct collector *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* collector_error() at most once per rl's interval; the message that gets
 * through says how many were held back. Call from one thread per rl. */
void collector_report(struct collector *c, struct ratelimit *rl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies the last error ("" when none). */
void collector_last_error(struct collector *c, char *buf, size_t size);

/* Counts an emit result: 0 -> events, negative -> dropped. */
static inline void collector_count_emit(struct collector *c, int rc)
{
	if (rc == 0)
		atomic_fetch_add_explicit(&c->n.events, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&c->n.dropped, 1, memory_order_relaxed);
}

/* The same for a resumable source, which reads a refused event again from
 * its cursor: a full queue (ENOSPC, ETIMEDOUT) or shutdown (ESHUTDOWN) ->
 * refetched; a record that can never fit (E2BIG, EINVAL) -> dropped. */
static inline void collector_count_emit_resumable(struct collector *c, int rc)
{
	if (rc == 0)
		atomic_fetch_add_explicit(&c->n.events, 1, memory_order_relaxed);
	else if (rc == -ENOSPC || rc == -ETIMEDOUT || rc == -ESHUTDOWN)
		atomic_fetch_add_explicit(&c->n.refetched, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&c->n.dropped, 1, memory_order_relaxed);
}

/* ---- registry ---- */

struct registry;

/* Returns NULL with errno ENOMEM. */
struct registry *registry_new(void);
/* Stops nothing; destroys every registered collector. Accepts NULL. */
void registry_free(struct registry *r);
/* Takes ownership of c (also on error). Returns 0, -EEXIST (same name) or -ENOMEM. */
int registry_add(struct registry *r, struct collector *c);
/* Starts all in order. When one fails, stops those already started and
 * returns its error; *failed (optional) gets its name. */
int registry_start_all(struct registry *r, struct queue *q, const char **failed);
/* Stops all, in reverse order. */
void registry_stop_all(struct registry *r);
size_t registry_count(const struct registry *r);
struct collector *registry_get(const struct registry *r, size_t i);
/* The collector with that name, or NULL. */
struct collector *registry_find(const struct registry *r, const char *name);
/* True when every collector is healthy. */
bool registry_healthy(const struct registry *r);

#endif
