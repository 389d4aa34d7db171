// SPDX-License-Identifier: Apache-2.0
/* Prometheus metrics and health probes: see metrics.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "core/collector.h"
#include "core/event.h"
#include "util/log.h"
#include "metrics/metrics.h"
#include "util/parse.h"
#include "util/vec.h"
#include "core/queue.h"
#include "sink/sink.h"
#include "util/clock.h"
#include "util/strbuf.h"

static bool sink_is_connected(struct sink *s)
{
	return s->ops->connected ? s->ops->connected(s) : true;
}

/* ---- rendering ---- */

/* A label value with Prometheus escaping (\\, \", \n). */
static void label_val(struct strbuf *sb, const char *s)
{
	sb_putc(sb, '"');
	for (; s && *s; s++) {
		if (*s == '\\')
			sb_puts(sb, "\\\\");
		else if (*s == '"')
			sb_puts(sb, "\\\"");
		else if (*s == '\n')
			sb_puts(sb, "\\n");
		else
			sb_putc(sb, *s);
	}
	sb_putc(sb, '"');
}

static void family(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{key="val"} value */
static void sample1(struct strbuf *sb, const char *name, const char *key, const char *val,
		    uint64_t v)
{
	sb_puts(sb, name);
	if (key) {
		sb_printf(sb, "{%s=", key);
		label_val(sb, val);
		sb_putc(sb, '}');
	}
	sb_putc(sb, ' ');
	sb_u64(sb, v);
	sb_putc(sb, '\n');
}

/* Extra counters from the counters ops arrive in any order; Prometheus wants
 * each family's samples together, so they are gathered and sorted first. */
struct dyn_sample {
	char *family;
	char *labels;
	uint64_t value;
	size_t order;
	bool gauge;
};

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/* Most extra counters are counters. A state or a level is a gauge and gets no
 * _total suffix: "up" (a k8s watch that runs), "*_up", "*_healthy",
 * "inflight"/"*_inflight", "*_pending" (the NATS sink's window, the pod
 * resolver's queue), "*_entries" (a cache's size) and "k8s_leader" (1 while
 * this agent holds the cluster role's lease). */
static bool is_gauge_name(const char *name)
{
	size_t n = strlen(name);

	return !strcmp(name, "up") || !strcmp(name, "inflight") || !strcmp(name, "k8s_leader") ||
	       ends_with(name, n, "_up") || ends_with(name, n, "_healthy") ||
	       ends_with(name, n, "_inflight") || ends_with(name, n, "_pending") ||
	       ends_with(name, n, "_entries");
}

struct dyn {
	struct dyn_sample *v;
	size_t n, cap;
	int err;
	const char *family_prefix; /* "tapio_" or "tapio_sink_nats_" */
	const char *owner_key;	   /* "collector" or "sink"; NULL: no owner label */
	const char *owner;
};

/* A metric name part: [a-zA-Z0-9_], anything else becomes '_'. */
static void name_part(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		char c = *s;

		sb_putc(sb,
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
			    ? c
			    : '_');
	}
}

static void dyn_add(void *ctx, const char *name, const char *labels, uint64_t value)
{
	struct dyn *d = ctx;
	struct strbuf fam = STRBUF_INIT, lab = STRBUF_INIT;

	if (d->err || !name || !*name)
		return;
	if (labels && strchr(labels, '\n'))
		labels = ""; /* would break the exposition */
	if (VEC_RESERVE(d->v, d->cap, d->n + 1)) {
		d->err = -ENOMEM;
		return;
	}
	bool gauge = is_gauge_name(name);

	sb_puts(&fam, d->family_prefix);
	name_part(&fam, name);
	if (!gauge)
		sb_puts(&fam, "_total");
	if (d->owner_key) {
		sb_printf(&lab, "%s=", d->owner_key);
		label_val(&lab, d->owner);
	}
	if (labels && *labels) {
		if (d->owner_key)
			sb_putc(&lab, ',');
		sb_puts(&lab, labels);
	}
	if (!lab.buf)
		sb_puts(&lab, ""); /* no label at all */
	if (fam.err || lab.err) {
		sb_free(&fam);
		sb_free(&lab);
		d->err = -ENOMEM;
		return;
	}
	d->v[d->n] = (struct dyn_sample){fam.buf, lab.buf, value, d->n, gauge};
	d->n++;
}

static int dyn_cmp(const void *a, const void *b)
{
	const struct dyn_sample *x = a, *y = b;
	int c = strcmp(x->family, y->family);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void dyn_emit(struct dyn *d, struct strbuf *sb, const char *help_what)
{
	if (!d->n)
		return; /* qsort wants a non-NULL array even for 0 elements */
	qsort(d->v, d->n, sizeof(*d->v), dyn_cmp);
	for (size_t i = 0; i < d->n; i++) {
		if (i == 0 || strcmp(d->v[i].family, d->v[i - 1].family)) {
			const char *type = d->v[i].gauge ? "gauge" : "counter";
			size_t plen = strlen(d->family_prefix);
			int nlen = (int)(strlen(d->v[i].family) - plen - (d->v[i].gauge ? 0 : 6));

			sb_printf(sb, "# HELP %s %s %s %.*s\n", d->v[i].family, help_what, type,
				  nlen, d->v[i].family + plen);
			sb_printf(sb, "# TYPE %s %s\n", d->v[i].family, type);
		}
		if (d->v[i].labels[0])
			sb_printf(sb, "%s{%s} ", d->v[i].family, d->v[i].labels);
		else
			sb_printf(sb, "%s ", d->v[i].family);
		sb_u64(sb, d->v[i].value);
		sb_putc(sb, '\n');
	}
}

static void dyn_free(struct dyn *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].family);
		free(d->v[i].labels);
	}
	free(d->v);
}

static const struct {
	const char *name, *help;
	size_t off;
} collector_fields[] = {
    {"tapio_collector_events_total", "Events the collector committed to the queue.",
     offsetof(struct collector_counters, events)},
    {"tapio_collector_dropped_total", "Events of the collector that the queue refused.",
     offsetof(struct collector_counters, dropped)},
    {"tapio_collector_parse_errors_total", "Malformed input the collector skipped.",
     offsetof(struct collector_counters, parse_errors)},
    {"tapio_collector_oversize_total", "Oversized input the collector skipped.",
     offsetof(struct collector_counters, oversize)},
    {"tapio_collector_reconnects_total", "Source reconnects or reopenings.",
     offsetof(struct collector_counters, reconnects)},
    {"tapio_collector_errors_total", "Other source errors.",
     offsetof(struct collector_counters, errors)},
};

static void render_queue(const struct metrics_view *v, struct strbuf *sb)
{
	static const char *const reasons[] = {"full", "timeout", "oversize", "closed"};
	struct queue_src_stats st[SRC_MAX];

	for (unsigned s = 0; s < SRC_MAX; s++)
		queue_stats(v->q, s, &st[s]);
	family(sb, "tapio_events_total", "counter", "Events committed to the queue, per source.");
	for (unsigned s = 0; s < SRC_MAX; s++)
		if (source_get(s))
			sample1(sb, "tapio_events_total", "source", source_name(s),
				st[s].committed);
	family(sb, "tapio_event_bytes_total", "counter",
	       "Payload bytes committed to the queue, per source.");
	for (unsigned s = 0; s < SRC_MAX; s++)
		if (source_get(s))
			sample1(sb, "tapio_event_bytes_total", "source", source_name(s),
				st[s].bytes);
	family(sb, "tapio_queue_dropped_total", "counter",
	       "Events the queue refused, per source and reason.");
	for (unsigned s = 0; s < SRC_MAX; s++) {
		const uint64_t n[] = {st[s].dropped_full, st[s].dropped_timeout,
				      st[s].dropped_oversize, st[s].dropped_closed};
		if (!source_get(s))
			continue;

		for (unsigned r = 0; r < 4; r++) {
			sb_puts(sb, "tapio_queue_dropped_total{source=");
			label_val(sb, source_name(s));
			sb_printf(sb, ",reason=\"%s\"} ", reasons[r]);
			sb_u64(sb, n[r]);
			sb_putc(sb, '\n');
		}
	}
	family(sb, "tapio_queue_used_bytes", "gauge", "Bytes held in the queue now.");
	sample1(sb, "tapio_queue_used_bytes", NULL, NULL, queue_used(v->q));
	family(sb, "tapio_queue_capacity_bytes", "gauge", "Size of the queue arena in bytes.");
	sample1(sb, "tapio_queue_capacity_bytes", NULL, NULL, queue_capacity(v->q));
}

static int render_collectors(const struct metrics_view *v, struct strbuf *sb)
{
	size_t n = registry_count(v->reg);
	struct dyn d = {.family_prefix = "tapio_", .owner_key = "collector"};

	for (size_t f = 0; f < sizeof(collector_fields) / sizeof(collector_fields[0]); f++) {
		family(sb, collector_fields[f].name, "counter", collector_fields[f].help);
		for (size_t i = 0; i < n; i++) {
			struct collector *c = registry_get(v->reg, i);
			_Atomic uint64_t *p =
			    (_Atomic uint64_t *)((char *)&c->n + collector_fields[f].off);

			sample1(sb, collector_fields[f].name, "collector", collector_name(c),
				atomic_load(p));
		}
	}
	family(sb, "tapio_collector_healthy", "gauge", "1 when the collector is healthy, else 0.");
	for (size_t i = 0; i < n; i++) {
		struct collector *c = registry_get(v->reg, i);

		sample1(sb, "tapio_collector_healthy", "collector", collector_name(c),
			collector_healthy(c));
	}
	for (size_t i = 0; i < n; i++) {
		struct collector *c = registry_get(v->reg, i);

		if (c->ops->counters) {
			d.owner = collector_name(c);
			c->ops->counters(c, dyn_add, &d);
		}
	}
	if (!d.err)
		dyn_emit(&d, sb, "Collector");
	dyn_free(&d);
	return d.err;
}

static int render_sink(const struct metrics_view *v, struct strbuf *sb)
{
	struct sink *s = v->sink;
	const char *name = s->ops->name ? s->ops->name : "sink";
	struct strbuf prefix = STRBUF_INIT;
	struct dyn d = {.owner_key = "sink", .owner = name};
	int err = 0;

	family(sb, "tapio_sink_written_total", "counter",
	       "Events handed to the sink (published, for NATS).");
	sample1(sb, "tapio_sink_written_total", "sink", name, atomic_load(&s->written));
	family(sb, "tapio_sink_acked_total", "counter",
	       "Events the destination confirmed (NATS acks).");
	sample1(sb, "tapio_sink_acked_total", "sink", name, atomic_load(&s->acked));
	family(sb, "tapio_sink_failed_total", "counter", "Events the sink could not deliver.");
	sample1(sb, "tapio_sink_failed_total", "sink", name, atomic_load(&s->failed));
	family(sb, "tapio_sink_retries_total", "counter",
	       "Writes answered with 'not now' (destination down).");
	sample1(sb, "tapio_sink_retries_total", "sink", name, atomic_load(&s->retries));
	family(sb, "tapio_sink_connected", "gauge",
	       "1 when the sink's destination is reachable, else 0.");
	sample1(sb, "tapio_sink_connected", "sink", name, sink_is_connected(s));
	if (s->ops->counters) {
		sb_puts(&prefix, "tapio_sink_");
		name_part(&prefix, name);
		sb_putc(&prefix, '_');
		if (prefix.err)
			return -ENOMEM;
		d.family_prefix = prefix.buf;
		s->ops->counters(s, dyn_add, &d);
		if (!d.err)
			dyn_emit(&d, sb, "Sink");
		err = d.err;
		dyn_free(&d);
	}
	sb_free(&prefix);
	return err;
}

static int render_extra(const struct metrics_view *v, struct strbuf *sb)
{
	struct dyn d = {.family_prefix = v->extra_prefix ? v->extra_prefix : "tapio_"};

	v->extra_counters(v->extra_obj, dyn_add, &d);
	if (!d.err)
		dyn_emit(&d, sb, "Pod metadata");
	dyn_free(&d);
	return d.err;
}

int metrics_render(const struct metrics_view *v, struct strbuf *out)
{
	int rc = 0;

	family(out, "tapio_build_info", "gauge", "Build information; the value is always 1.");
	sample1(out, "tapio_build_info", "version", v->version ? v->version : "unknown", 1);
	if (v->q)
		render_queue(v, out);
	if (v->reg)
		rc = render_collectors(v, out);
	if (!rc && v->sink)
		rc = render_sink(v, out);
	if (!rc && v->extra_counters)
		rc = render_extra(v, out);
	if (!rc && out->err)
		rc = out->err;
	return rc;
}

/* ---- probes ---- */

static void why_collector(struct strbuf *why, struct collector *c, const char *what)
{
	char last[256];

	collector_last_error(c, last, sizeof(last));
	sb_printf(why, "collector %s: %s%s%s\n", collector_name(c), what, last[0] ? ": " : "",
		  last);
}

bool metrics_healthz(const struct metrics_view *v, struct strbuf *why)
{
	size_t n = v->reg ? registry_count(v->reg) : 0;
	bool ok = true;

	/* Only a collector whose failure needs a restart (the kernel's programs
	 * did not attach) fails liveness; the rest is readiness. */
	for (size_t i = 0; i < n; i++) {
		struct collector *c = registry_get(v->reg, i);
		if (c->ops->liveness && !collector_healthy(c)) {
			why_collector(why, c, "not attached");
			ok = false;
		}
	}
	return ok;
}

bool metrics_readyz(const struct metrics_view *v, struct strbuf *why)
{
	bool ok = true;
	size_t n = v->reg ? registry_count(v->reg) : 0;

	for (size_t i = 0; i < n; i++) {
		struct collector *c = registry_get(v->reg, i);

		if (!collector_healthy(c)) {
			why_collector(why, c, "unhealthy");
			ok = false;
		}
	}
	if (v->sink && !sink_is_connected(v->sink)) {
		sb_printf(why, "sink %s: not connected\n",
			  v->sink->ops->name ? v->sink->ops->name : "?");
		ok = false;
	}
	return ok;
}

/* ---- HTTP ----
 *
 * A front end owns the listening socket. It accepts every connection into a
 * table of its own (FRONT_SLOTS, the oldest evicted when full) and waits,
 * with MSG_PEEK and SO_RCVLOWAT so that nothing is consumed and nothing
 * spins, until the client has sent its whole request head, for at most
 * HEAD_TIMEOUT_MS. /healthz and /readyz are answered right there; anything
 * else is handed to libmicrohttpd (MHD_add_connection), whose pool thus only
 * ever holds clients that sent a request (MHD_CONN_LIMIT, MHD_PER_IP_LIMIT
 * per client address, MHD_TIMEOUT_S idle). So idle or slow clients, however
 * many, cannot keep the liveness probe out. */

#define FRONT_SLOTS 1024
#define HEAD_MAX 4096
#define HEAD_TIMEOUT_MS 5000
#define MHD_CONN_LIMIT 512u
#define MHD_PER_IP_LIMIT 16u
#define MHD_TIMEOUT_S 5u

struct pending {
	int fd;
	uint64_t since_ms; /* accepted at (monotonic) */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct metrics_server {
	struct MHD_Daemon *d;
	struct metrics_view v;
	unsigned port;
	int lfd;
	int wake[2]; /* a pipe: metrics_stop writes to it */
	pthread_t thread;
	struct pending *pend;
	size_t npend;
	struct pollfd *pfd;
};

static uint64_t now_ms(void)
{
	return mono_ns() / 1000000ull;
}

static void pend_close(struct metrics_server *m, size_t i)
{
	close(m->pend[i].fd);
	m->pend[i] = m->pend[--m->npend];
}

static void front_accept(struct metrics_server *m)
{
	for (;;) {
		struct pending p = {.addrlen = sizeof(p.addr)};
		p.fd = accept4(m->lfd, (struct sockaddr *)&p.addr, &p.addrlen,
			       SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (p.fd < 0)
			return; /* EAGAIN, or an error of that one connection */
		if (m->npend == FRONT_SLOTS) {
			size_t old = 0;
			for (size_t i = 1; i < m->npend; i++)
				if (m->pend[i].since_ms < m->pend[old].since_ms)
					old = i;
			pend_close(m, old);
		}
		p.since_ms = now_ms();
		m->pend[m->npend++] = p;
	}
}

/* Answers a probe from the front end: the reply fits in the socket buffer. */
static void front_probe(struct metrics_server *m, int fd, bool health, bool head, size_t len)
{
	char drain[HEAD_MAX];
	struct strbuf body = STRBUF_INIT, out = STRBUF_INIT;
	(void)!recv(fd, drain, len, 0); /* the request head, peeked before */
	bool ok = health ? metrics_healthz(&m->v, &body) : metrics_readyz(&m->v, &body);
	if (ok)
		sb_puts(&body, "ok\n");
	sb_printf(&out,
		  "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		  "Cache-Control: no-store\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		  ok ? "200 OK" : "503 Service Unavailable", body.len);
	if (!head)
		sb_add(&out, body.buf ? body.buf : "", body.len);
	if (!out.err)
		(void)!send(fd, out.buf, out.len, MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	sb_free(&body);
	sb_free(&out);
}

/* Looks at what pending connection i sent so far. Returns true when it is
 * done with (answered, handed over or closed). */
static bool front_peek(struct metrics_server *m, size_t i)
{
	char buf[HEAD_MAX + 1];
	struct pending *p = &m->pend[i];
	ssize_t r = recv(p->fd, buf, HEAD_MAX, MSG_PEEK);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (r <= 0)
		return true; /* closed by the client, or an error */
	buf[r] = '\0';
	char *end = strstr(buf, "\r\n\r\n");
	if (!end) {
		if (r == HEAD_MAX)
			return true;  /* a request head over 4 KiB: not ours */
		int low = (int)r + 1; /* wake when more has come */
		setsockopt(p->fd, SOL_SOCKET, SO_RCVLOWAT, &low, sizeof(low));
		return false;
	}
	size_t hlen = (size_t)(end - buf) + 4;
	bool get = !strncmp(buf, "GET ", 4), head = !strncmp(buf, "HEAD ", 5);
	const char *path = buf + (get ? 4 : 5);
	bool health = !strncmp(path, "/healthz ", 9), ready = !strncmp(path, "/readyz ", 8);
	if ((get || head) && (health || ready)) {
		front_probe(m, p->fd, health, head, hlen);
		return true;
	}
	int one = 1;
	setsockopt(p->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	/* libmicrohttpd reads the request itself (nothing was consumed); it
	 * closes the socket when it refuses it (pool or per-address limit). */
	MHD_add_connection(m->d, p->fd, (struct sockaddr *)&p->addr, p->addrlen);
	p->fd = -1;
	return true;
}

static void *front_main(void *arg)
{
	struct metrics_server *m = arg;
	for (;;) {
		uint64_t now = now_ms();
		int timeout = -1; /* no head pending: a client or the stop wakes it */
		m->pfd[0] = (struct pollfd){.fd = m->wake[0], .events = POLLIN};
		m->pfd[1] = (struct pollfd){.fd = m->lfd, .events = POLLIN};
		for (size_t i = 0; i < m->npend; i++) {
			m->pfd[2 + i] = (struct pollfd){.fd = m->pend[i].fd, .events = POLLIN};
			uint64_t left = m->pend[i].since_ms + HEAD_TIMEOUT_MS;
			left = left > now ? left - now : 0;
			if (timeout < 0 || (int)left < timeout)
				timeout = (int)left;
		}
		size_t n = m->npend;
		int rc = poll(m->pfd, 2 + n, timeout);
		if (rc < 0 && errno != EINTR)
			break;
		if (m->pfd[0].revents)
			break;
		now = now_ms();
		/* from the end: pend_close moves the last entry into i */
		for (size_t i = n; i-- > 0;) {
			bool done = false;
			if (m->pfd[2 + i].revents)
				done = front_peek(m, i);
			if (!done && now - m->pend[i].since_ms >= HEAD_TIMEOUT_MS)
				done = true; /* no whole request head in time */
			if (done) {
				if (m->pend[i].fd >= 0)
					close(m->pend[i].fd);
				m->pend[i] = m->pend[--m->npend];
			}
		}
		if (m->pfd[1].revents)
			front_accept(m);
	}
	return NULL;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *ctype,
			     const char *body, size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct metrics_server *m = cls;
	static const char text[] = "text/plain; charset=utf-8";
	struct strbuf sb = STRBUF_INIT;
	enum MHD_Result ret;
	unsigned code = MHD_HTTP_OK;

	(void)version;
	(void)upload_data;
	if (!*con_cls) {
		/* First call for this request: headers only. */
		*con_cls = (void *)1;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0; /* a body is ignored */
		return MHD_YES;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "only GET\n", 9);
	if (!strcmp(url, "/metrics")) {
		if (metrics_render(&m->v, &sb)) {
			sb_free(&sb);
			return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, text, "out of memory\n",
				     14);
		}
		ret = reply(conn, code, "text/plain; version=0.0.4; charset=utf-8",
			    sb.buf ? sb.buf : "", sb.len);
	} else if (!strcmp(url, "/healthz") || !strcmp(url, "/readyz")) {
		bool ok = url[1] == 'h' ? metrics_healthz(&m->v, &sb) : metrics_readyz(&m->v, &sb);

		if (ok)
			sb_puts(&sb, "ok\n");
		else
			code = MHD_HTTP_SERVICE_UNAVAILABLE;
		if (sb.err) {
			sb_free(&sb);
			return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, text, "out of memory\n",
				     14);
		}
		ret = reply(conn, code, text, sb.buf, sb.len);
	} else {
		ret = reply(conn, MHD_HTTP_NOT_FOUND, text,
			    "not found: try /metrics, /healthz, /readyz\n", 43);
	}
	sb_free(&sb);
	return ret;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[256];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	tlog(TLOG_WARN, "metrics", "%s", buf);
}

/* The listening socket for sa and libmicrohttpd behind it. 0 or -errno. */
static int start_on(struct metrics_server *m, const struct sockaddr *sa, socklen_t salen, bool dual)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &zero : &one, sizeof(one));
	if (bind(fd, sa, salen) || listen(fd, 1024)) {
		int e = -errno;
		close(fd);
		return e;
	}
	m->d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET | MHD_USE_INTERNAL_POLLING_THREAD |
				    MHD_USE_ITC | MHD_USE_ERROR_LOG,
				0, NULL, NULL, handle, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				MHD_OPTION_CONNECTION_LIMIT, MHD_CONN_LIMIT,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, MHD_PER_IP_LIMIT,
				MHD_OPTION_CONNECTION_TIMEOUT, MHD_TIMEOUT_S, MHD_OPTION_END);
	if (!m->d) {
		close(fd);
		return -ENOMEM;
	}
	m->lfd = fd;
	return 0;
}

struct metrics_server *metrics_start(const char *addr, const struct metrics_view *v, char *err,
				     size_t errlen)
{
	struct metrics_server *m;
	char host[256];
	unsigned port;
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	int rc;

	if (parse_hostport(addr, host, sizeof(host), &port)) {
		snprintf(err, errlen, "metrics_addr '%s': expected HOST:PORT, [IPV6]:PORT or :PORT",
			 addr ? addr : "");
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m) {
		m->pend = calloc(FRONT_SLOTS, sizeof(*m->pend));
		m->pfd = calloc(FRONT_SLOTS + 2, sizeof(*m->pfd));
	}
	if (!m || !m->pend || !m->pfd) {
		if (m) {
			free(m->pend);
			free(m->pfd);
		}
		free(m);
		snprintf(err, errlen, "metrics: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	m->lfd = -1;
	m->v = *v;
	a4.sin_port = a6.sin6_port = htons((uint16_t)port);
	if (!host[0]) {
		a6.sin6_addr = in6addr_any;
		rc = start_on(m, (struct sockaddr *)&a6, sizeof(a6), true);
		if (rc) {
			a4.sin_addr.s_addr = htonl(INADDR_ANY);
			rc = start_on(m, (struct sockaddr *)&a4, sizeof(a4), false);
		}
	} else if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
		rc = start_on(m, (struct sockaddr *)&a4, sizeof(a4), false);
	} else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
		rc = start_on(m, (struct sockaddr *)&a6, sizeof(a6), false);
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
		int gai = getaddrinfo(host, NULL, &hints, &res);

		if (gai || !res) {
			snprintf(err, errlen, "metrics_addr '%s': cannot resolve '%s': %s", addr,
				 host, gai_strerror(gai));
			free(m->pend);
			free(m->pfd);
			free(m);
			errno = EINVAL;
			return NULL;
		}
		if (res->ai_family == AF_INET6) {
			memcpy(&a6, res->ai_addr, sizeof(a6));
			a6.sin6_port = htons((uint16_t)port);
			rc = start_on(m, (struct sockaddr *)&a6, sizeof(a6), false);
		} else {
			memcpy(&a4, res->ai_addr, sizeof(a4));
			a4.sin_port = htons((uint16_t)port);
			rc = start_on(m, (struct sockaddr *)&a4, sizeof(a4), false);
		}
		freeaddrinfo(res);
	}
	if (!rc && pipe2(m->wake, O_CLOEXEC | O_NONBLOCK))
		rc = -errno;
	if (!rc && (rc = -pthread_create(&m->thread, NULL, front_main, m))) {
		close(m->wake[0]);
		close(m->wake[1]);
	}
	if (rc) {
		if (m->d)
			MHD_stop_daemon(m->d);
		if (m->lfd >= 0)
			close(m->lfd);
		snprintf(err, errlen, "metrics_addr '%s': cannot listen: %s", addr, strerror(-rc));
		free(m->pend);
		free(m->pfd);
		free(m);
		errno = -rc;
		return NULL;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	m->port = port;
	if (!getsockname(m->lfd, (struct sockaddr *)&ss, &sl))
		m->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	return m;
}

unsigned metrics_port(const struct metrics_server *m)
{
	return m ? m->port : 0;
}

void metrics_stop(struct metrics_server *m)
{
	if (!m)
		return;
	(void)!write(m->wake[1], "x", 1);
	pthread_join(m->thread, NULL);
	for (size_t i = 0; i < m->npend; i++)
		close(m->pend[i].fd);
	close(m->wake[0]);
	close(m->wake[1]);
	close(m->lfd);
	MHD_stop_daemon(m->d);
	free(m->pend);
	free(m->pfd);
	free(m);
}
