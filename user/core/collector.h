/* SPDX-License-Identifier: Apache-2.0 */
/* The collector interface (DESIGN.md "Collector interface") and the registry.
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

struct queue;
struct collector;

/* Callback for extra counters: name is a metric suffix ("drops"), labels is
 * Prometheus label text without braces (`type="process.exec"`) or "". */
typedef void (*counter_fn)(void *ctx, const char *name, const char *labels, uint64_t value);

struct collector_ops {
	const char *name;
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
	pthread_mutex_t err_lock;
	char last_error[256];
};

/* Sets up the base part. */
void collector_init(struct collector *c, const struct collector_ops *ops);

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
void collector_error(struct collector *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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
