// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/collector.h"
#include "util/clock.h"
#include "util/log.h"

void collector_init(struct collector *c, const struct collector_ops *ops, unsigned source)
{
	memset(&c->n, 0, sizeof(c->n));
	c->ops = ops;
	c->source = source;
	worker_init(&c->thread);
	atomic_init(&c->healthy, false);
	pthread_mutex_init(&c->err_lock, NULL);
	c->last_error[0] = '\0';
}

int collector_start(struct collector *c, struct queue *q)
{
	return c->ops->start(c, q);
}

void collector_stop(struct collector *c)
{
	c->ops->stop(c);
}

bool collector_healthy(struct collector *c)
{
	if (c->ops->healthy)
		return c->ops->healthy(c);
	return atomic_load(&c->healthy);
}

void collector_destroy(struct collector *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->err_lock);
	c->ops->destroy(c);
}

void collector_error(struct collector *c, const char *fmt, ...)
{
	char msg[sizeof(c->last_error)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&c->err_lock);
	memcpy(c->last_error, msg, sizeof(msg));
	pthread_mutex_unlock(&c->err_lock);
	tlog(TLOG_WARN, collector_name(c), "%s", msg);
}

void collector_report(struct collector *c, struct ratelimit *rl, const char *fmt, ...)
{
	uint64_t held = 0;
	if (rl && !ratelimit_allow(rl, mono_ns(), &held))
		return;
	char msg[sizeof(c->last_error)];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (held && n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, " (%" PRIu64 " similar held back)",
			 held);
	collector_error(c, "%s", msg);
}

int collector_spawn(struct collector *c, void *(*fn)(void *))
{
	int rc = worker_start(&c->thread, fn, c);
	if (!rc)
		worker_set_name(&c->thread, collector_name(c));
	return rc;
}

void collector_join(struct collector *c)
{
	worker_stop(&c->thread);
}

void collector_last_error(struct collector *c, char *buf, size_t size)
{
	pthread_mutex_lock(&c->err_lock);
	snprintf(buf, size, "%s", c->last_error);
	pthread_mutex_unlock(&c->err_lock);
}

/* ---- registry ---- */

#define REGISTRY_MAX 16

struct registry {
	struct collector *c[REGISTRY_MAX];
	bool started[REGISTRY_MAX];
	size_t n;
};

struct registry *registry_new(void)
{
	struct registry *r = calloc(1, sizeof(*r));
	if (!r)
		errno = ENOMEM;
	return r;
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		collector_destroy(r->c[i]);
	free(r);
}

int registry_add(struct registry *r, struct collector *c)
{
	if (registry_find(r, collector_name(c))) {
		collector_destroy(c);
		return -EEXIST;
	}
	if (r->n == REGISTRY_MAX) {
		collector_destroy(c);
		return -ENOMEM;
	}
	r->c[r->n++] = c;
	return 0;
}

int registry_start_all(struct registry *r, struct queue *q, const char **failed)
{
	for (size_t i = 0; i < r->n; i++) {
		int err = collector_start(r->c[i], q);
		if (err) {
			if (failed)
				*failed = collector_name(r->c[i]);
			registry_stop_all(r);
			return err < 0 ? err : -EIO;
		}
		r->started[i] = true;
	}
	return 0;
}

void registry_stop_all(struct registry *r)
{
	for (size_t i = r->n; i-- > 0;) {
		if (r->started[i]) {
			collector_stop(r->c[i]);
			r->started[i] = false;
		}
	}
}

size_t registry_count(const struct registry *r)
{
	return r->n;
}

struct collector *registry_get(const struct registry *r, size_t i)
{
	return i < r->n ? r->c[i] : NULL;
}

struct collector *registry_find(const struct registry *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(collector_name(r->c[i]), name))
			return r->c[i];
	return NULL;
}

bool registry_healthy(const struct registry *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (!collector_healthy(r->c[i]))
			return false;
	return true;
}
