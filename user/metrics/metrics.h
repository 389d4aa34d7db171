/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus metrics and health probes (libmicrohttpd).
 *
 *   /metrics  text exposition 0.0.4: events and drops per source (queue),
 *             queue bytes, per-collector counters and health, collector extra
 *             counters (kernel drops per type), sink counters, the pod
 *             metadata cache's counters (extra_counters), build info
 *   /healthz  200 while the process runs and, when a collector named "kernel"
 *             is registered, it is healthy (attached); else 503 and the reason
 *   /readyz   200 when every collector is healthy and the sink is connected;
 *             else 503 listing what is not
 *
 * The server only reads counters; the view's objects must outlive it.
 *
 * Hostile clients: a front end accepts every connection (up to 1024 waiting,
 * the oldest dropped when full) and waits at most 5 s for a whole request
 * head without consuming it. /healthz and /readyz are answered there, so no
 * number of idle or slowloris clients keeps a probe out; other requests go
 * to libmicrohttpd, which holds at most 512 connections, 16 per client
 * address, idle for at most 5 s. The DaemonSet binds to the pod IP
 * (deploy/README.md, "The metrics port"); the flag's default is loopback.
 */
#ifndef TAPIO_METRICS_H
#define TAPIO_METRICS_H

#include <stdbool.h>

#include "core/counters.h"

struct registry;
struct queue;
struct sink;
struct strbuf;

struct metrics_view {
	struct registry *reg; /* collectors (user/core/collector.h); may be NULL */
	struct queue *q;      /* queue_stats per source, queue_used, queue_capacity; may be NULL */
	struct sink
	    *sink; /* written, acked, failed, retries, counters op, connected; may be NULL */
	const char *version;
	/* Optional: counters without an owner (the pod metadata cache's,
	 * podmeta_counters), as <extra_prefix><name>_total, or a gauge
	 * <extra_prefix><name> for a level's name (metrics.c, is_gauge_name). */
	void (*extra_counters)(void *obj, counter_fn fn, void *ctx);
	void *extra_obj;
	const char *extra_prefix; /* "tapio_podmeta_" */
};

struct metrics_server;

/* Renders Prometheus text exposition into out (appended). Returns 0 or
 * -ENOMEM. Pure apart from reading counters. */
int metrics_render(const struct metrics_view *v, struct strbuf *out);

/* Liveness: true when alive and the "kernel" collector, if registered, is
 * healthy. Otherwise false with a one-line reason appended to why. */
bool metrics_healthz(const struct metrics_view *v, struct strbuf *why);

/* Readiness: true when every collector is healthy and the sink (if any) is
 * connected. Otherwise false with what is not ready appended to why, one
 * "name: reason" line each. */
bool metrics_readyz(const struct metrics_view *v, struct strbuf *why);

/* Starts libmicrohttpd on addr ("127.0.0.1:9090", "[::1]:9090", ":9090" = all
 * addresses; port 0 picks a free one). The view is copied; what it points to
 * is not. Returns NULL with errno (EINVAL bad address, EADDRINUSE, ...) and a
 * one-line reason in err. */
struct metrics_server *metrics_start(const char *addr, const struct metrics_view *v, char *err,
				     size_t errlen);

/* The TCP port the server listens on (useful with port 0), or 0. */
unsigned metrics_port(const struct metrics_server *m);

/* Stops the server and frees it. Accepts NULL. */
void metrics_stop(struct metrics_server *m);

#endif
