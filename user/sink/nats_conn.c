// SPDX-License-Identifier: Apache-2.0
/* The NATS sink's publisher connection: a plain TCP socket speaking the NATS
 * client protocol (sink/nats_wire.h). The reader thread connects (the
 * server list in order, 500 ms plus jitter between rounds), reads PubAcks
 * in batches (one wake-up per read(), not per message), answers the
 * server's PINGs, sends its own every 10 s (3 unanswered: the connection is
 * dead) and takes back what waited past the ack timeout. The pipeline
 * thread writes the frames it buffered (nats_conn_flush_out).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sink/nats_internal.h"
#include "util/clock.h"
#include "util/log.h"

void nats_proto_error(struct nats_sink *ns, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	uint64_t now = mono_ns(), last = atomic_load(&ns->last_proto_log);

	atomic_fetch_add(&ns->proto_errors, 1);
	if (atomic_load(&ns->closing))
		return;
	if (now - last < 1000000000ull ||
	    !atomic_compare_exchange_strong(&ns->last_proto_log, &last, now))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tlog(TLOG_ERR, "nats", "%s: %s (protocol errors so far: %" PRIu64 ")", ns->server_name, msg,
	     atomic_load(&ns->proto_errors));
}

/* ---- socket ---- */

/* "nats://HOST:PORT" or "nats://[V6]:PORT" into host and port. */
static int split_url(const char *url, char *host, size_t hl, char *port, size_t pl)
{
	const char *p = url + 7, *colon;

	if (strncmp(url, "nats://", 7))
		return -1;
	if (*p == '[') {
		const char *rb = strchr(p, ']');
		if (!rb || rb[1] != ':')
			return -1;
		snprintf(host, hl, "%.*s", (int)(rb - p - 1), p + 1);
		snprintf(port, pl, "%s", rb + 2);
		return 0;
	}
	colon = strrchr(p, ':');
	if (!colon)
		return -1;
	snprintf(host, hl, "%.*s", (int)(colon - p), p);
	snprintf(port, pl, "%s", colon + 1);
	return 0;
}

/* A connected TCP socket to url within timeout_ms, or -1 with why set. */
static int tcp_connect(const char *url, unsigned timeout_ms, char *why, size_t wl)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
	char host[256], port[16];
	int fd = -1, rc;

	if (split_url(url, host, sizeof(host), port, sizeof(port))) {
		snprintf(why, wl, "bad server address");
		return -1;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		snprintf(why, wl, "%s", gai_strerror(rc));
		return -1;
	}
	snprintf(why, wl, "no address");
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			snprintf(why, wl, "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (poll(&pf, 1, (int)timeout_ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				break;
			snprintf(why, wl, "%s", soerr ? strerror(soerr) : "connect timed out");
		} else {
			snprintf(why, wl, "%s", strerror(errno));
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return -1;
	/* Blocking from here; writes give up after the timeout (a server that
	 * stopped reading), and frames go out as the sink batched them. */
	int one = 1;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* The reader's recv() wakes up this often without data: ack timeouts,
	 * PINGs, the stop flag. */
	struct timeval rtv = {.tv_sec = 0, .tv_usec = READ_WAIT_MS * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof(rtv));
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads more into ns->in: one recv() that waits up to the socket's receive
 * timeout (READ_WAIT_MS). >0 bytes, 0 on timeout, -1 on end of stream or
 * error (why set). */
static ssize_t read_more(struct nats_sink *ns, int fd, int flags, char *why, size_t wl)
{
	if (sb_grow(&ns->in, 65536)) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	ssize_t r = recv(fd, ns->in.buf + ns->in.len, ns->in.cap - ns->in.len - 1, flags);
	if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (r <= 0) {
		snprintf(why, wl, "%s",
			 r == 0 ? "connection closed by the server" : strerror(errno));
		return -1;
	}
	ns->in.len += (size_t)r;
	return r;
}

/* The next frame from ns->in during the handshake, waiting until deadline. */
static int handshake_frame(struct nats_sink *ns, int fd, uint64_t deadline, struct nw_frame *f,
			   size_t *took, char *why, size_t wl)
{
	for (;;) {
		long n = nw_parse(ns->in.buf, ns->in.len, MAX_IN_MSG, f, why, wl);
		if (n > 0) {
			*took = (size_t)n;
			return 0;
		}
		if (n < 0)
			return -1;
		uint64_t now = mono_ns();
		if (now >= deadline) {
			snprintf(why, wl, "no answer within %d ms", CONNECT_TIMEOUT_MS);
			return -1;
		}
		if (read_more(ns, fd, 0, why, wl) < 0)
			return -1;
	}
}

static void in_consume(struct nats_sink *ns, size_t n)
{
	memmove(ns->in.buf, ns->in.buf + n, ns->in.len - n);
	ns->in.len -= n;
}

/* INFO, CONNECT, SUB, PING, and the PONG (or -ERR). 0, or -1 with why. */
static int handshake(struct nats_sink *ns, int fd, char *why, size_t wl)
{
	uint64_t deadline = mono_ns() + CONNECT_TIMEOUT_MS * 1000000ull;
	struct nw_frame f;
	struct nw_info info;
	size_t took;
	char buf[512];

	sb_reset(&ns->in);
	if (handshake_frame(ns, fd, deadline, &f, &took, why, wl))
		return -1;
	if (f.kind != NW_INFO) {
		snprintf(why, wl, "the server did not start with INFO");
		return -1;
	}
	if (nw_parse_info(f.data, f.data_len, &info, why, wl))
		return -1;
	in_consume(ns, took);
	if (info.tls_required || info.auth_required) {
		snprintf(why, wl, "the server requires %s, which the sink does not support",
			 info.tls_required ? "TLS" : "authentication");
		return -1;
	}
	if (!info.headers) {
		snprintf(why, wl, "the server does not support headers (needed for Nats-Msg-Id)");
		return -1;
	}
	atomic_store(&ns->max_payload, info.max_payload ? info.max_payload : 1048576);
	int n = snprintf(buf, sizeof(buf),
			 "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,"
			 "\"no_responders\":true,\"name\":\"tapio\",\"lang\":\"c\","
			 "\"version\":\"%s\",\"protocol\":1}\r\nSUB %s.* 1\r\nPING\r\n",
			 TAPIO_VERSION, ns->inbox);
	if (n < 0 || (size_t)n >= sizeof(buf) || write_all(fd, buf, (size_t)n)) {
		snprintf(why, wl, "could not send CONNECT");
		return -1;
	}
	for (;;) {
		if (handshake_frame(ns, fd, deadline, &f, &took, why, wl))
			return -1;
		if (f.kind == NW_ERR) {
			snprintf(why, wl, "refused: %.*s", (int)f.data_len, f.data);
			return -1;
		}
		enum nw_kind k = f.kind;
		in_consume(ns, took);
		if (k == NW_PONG)
			return 0;
		if (k == NW_PING && write_all(fd, "PONG\r\n", 6)) {
			snprintf(why, wl, "could not send PONG");
			return -1;
		}
		/* +OK, INFO updates: go on */
	}
}

int nats_conn_connect(struct nats_sink *ns)
{
	char why[200];

	for (size_t i = 0; i < ns->nservers && !atomic_load(&ns->stop); i++) {
		size_t k = (ns->server_next + i) % ns->nservers;
		const char *url = ns->servers[k];
		uint64_t now = mono_ns();

		/* A server is tried again 500 ms (plus up to 250 ms of jitter)
		 * after the last try at the earliest, like libnats: a server
		 * that refuses or drops at once is not hammered, another one
		 * in the list is tried without waiting. */
		if (now < ns->next_try[k])
			continue;
		ns->next_try[k] =
		    now +
		    (RECONNECT_WAIT_MS + (uint64_t)(rand() % RECONNECT_JITTER_MS)) * 1000000ull;
		int fd = tcp_connect(url, CONNECT_TIMEOUT_MS, why, sizeof(why));

		snprintf(ns->server_name, sizeof(ns->server_name), "%s", url);
		if (fd >= 0 && handshake(ns, fd, why, sizeof(why)) == 0) {
			bool again = ns->ever_connected;

			/* The next round starts with the next server: a server that
			 * went away is tried last. */
			ns->server_next = (k + 1) % ns->nservers;
			ns->last_ping_ns = mono_ns();
			ns->pings_out = 0;
			ns->lowat = 1;
			ns->in_unread = ns->in.len != 0;
			pthread_mutex_lock(&ns->wlock);
			pthread_mutex_lock(&ns->lock);
			ns->fd = fd;
			ns->gen++;
			ns->up = true;
			pthread_mutex_unlock(&ns->lock);
			pthread_mutex_unlock(&ns->wlock);
			ns->ever_connected = true;
			if (again) {
				atomic_fetch_add(&ns->reconnects, 1);
				/* check it again: the server may be new */
				atomic_store(&ns->stream_ready, false);
			}
			atomic_store(&ns->connected, true);
			tlog(TLOG_INFO, "nats", "%s to %s", again ? "reconnected" : "connected",
			     url);
			return 0;
		}
		if (fd >= 0)
			close(fd);
		tlog(TLOG_DEBUG, "nats", "connect %s: %s", url, why);
	}
	return -1;
}

/* Drops the connection: what is in flight goes to the retry list. */
static void conn_drop(struct nats_sink *ns, const char *why)
{
	pthread_mutex_lock(&ns->wlock);
	pthread_mutex_lock(&ns->lock);
	int fd = ns->fd;
	ns->fd = -1;
	ns->up = false;
	nats_take_back_all(ns);
	pthread_cond_broadcast(&ns->acked_cv);
	pthread_mutex_unlock(&ns->lock);
	pthread_mutex_unlock(&ns->wlock);
	if (fd >= 0)
		close(fd);
	sb_reset(&ns->in);
	if (atomic_exchange(&ns->connected, false) && !atomic_load(&ns->closing))
		tlog(TLOG_WARN, "nats",
		     "disconnected from %s (%s); buffering in the queue while reconnecting",
		     ns->server_name, why);
}

/* Writes a control line (PING, PONG) from the reader thread. */
static int send_ctl(struct nats_sink *ns, const char *s)
{
	int rc = -EPIPE;

	pthread_mutex_lock(&ns->wlock);
	if (ns->fd >= 0)
		rc = write_all(ns->fd, s, strlen(s));
	pthread_mutex_unlock(&ns->wlock);
	return rc;
}

int nats_conn_flush_out(struct nats_sink *ns)
{
	int rc = -EAGAIN;

	if (!ns->out.len)
		return 0;
	pthread_mutex_lock(&ns->wlock);
	if (ns->fd >= 0 && ns->out_gen == ns->gen) {
		rc = write_all(ns->fd, ns->out.buf, ns->out.len);
		if (rc) {
			/* The reader sees the end and takes the entries back. */
			shutdown(ns->fd, SHUT_RDWR);
			rc = -EAGAIN;
		}
	}
	pthread_mutex_unlock(&ns->wlock);
	sb_reset(&ns->out);
	return rc;
}

int nats_conn_frame(struct nats_sink *ns, const struct nw_frame *f, char *why, size_t wl)
{
	uint64_t n;

	switch (f->kind) {
	case NW_PONG:
		ns->pings_out = 0;
		return 0;
	case NW_OK:
	case NW_PING: /* answered by the caller, outside the lock */
		return 0;
	case NW_INFO: {
		struct nw_info info;
		char ierr[200];

		if (nw_parse_info(f->data, f->data_len, &info, ierr, sizeof(ierr))) {
			nats_proto_error(ns, "%s", ierr);
			return 0;
		}
		if (info.max_payload)
			atomic_store(&ns->max_payload, info.max_payload);
		return 0;
	}
	case NW_ERR:
		/* Every -ERR but "Permissions Violation" closes the connection
		 * on the server's side; the permission one has no use here
		 * either (the publishes would be refused): drop and reconnect. */
		snprintf(why, wl, "-ERR '%.*s'", (int)(f->data_len > 200 ? 200 : f->data_len),
			 f->data);
		return -1;
	case NW_MSG:
	case NW_HMSG:
		break;
	}
	if (f->sid != 1 || nw_reply_num(f->subject, f->subject_len, ns->inbox, ns->inbox_len, &n)) {
		nats_proto_error(ns, "message on '%.*s' (sid %" PRIu64 ") that is not a PubAck",
				 (int)(f->subject_len > 100 ? 100 : f->subject_len), f->subject,
				 f->sid);
		return 0;
	}
	struct nats_slot *s = &ns->slots[n % ns->max_inflight];
	if (!n || s->reply != n) {
		if (n && n < ns->next_reply)
			atomic_fetch_add(&ns->late_acks, 1); /* taken back already */
		else
			nats_proto_error(ns, "PubAck for reply %" PRIu64 ", never published", n);
		return 0;
	}
	if (f->kind == NW_HMSG) {
		int st = nw_hdr_status(f->hdr, f->hdr_len);

		if (st == 503) {
			/* no responders: no stream, or no leader yet */
			atomic_store(&ns->stream_ready, false);
			nats_slot_failed(ns, s, true, "no responders");
			return 0;
		}
		if (st != 0 && st != -1) {
			char what[64];

			snprintf(what, sizeof(what), "status %d from the server", st);
			nats_slot_failed(ns, s, st == 408 || st >= 500, what);
			return 0;
		}
		if (st < 0) {
			nats_proto_error(ns, "PubAck with a bad header block");
			nats_slot_failed(ns, s, true, "bad PubAck");
			return 0;
		}
	}
	struct nw_puback pa;
	char what[200];
	if (nw_parse_puback(f->data, f->data_len, &pa, what, sizeof(what))) {
		nats_proto_error(ns, "%s", what);
		nats_slot_failed(ns, s, true, "bad PubAck");
		return 0;
	}
	if (!pa.error) {
		nats_slot_acked(ns, s, pa.duplicate);
		return 0;
	}
	/* JetStream answers that may change by themselves: a cluster without
	 * leader, resources that free up, a stream that is created again. */
	bool transient = false;
	switch (pa.err_code) {
	case 10008: /* JSClusterNotAvailErr */
	case 10009: /* JSClusterNotLeaderErr */
	case 10023: /* JSInsufficientResourcesErr */
	case 10028: /* JSMemoryResourcesExceededErr */
	case 10039: /* JSNotEnabledForAccountErr */
	case 10047: /* JSStorageResourcesExceededErr */
	case 10059: /* JSStreamNotFoundErr */
	case 10076: /* JSNotEnabledErr */
	case 10118: /* JSStreamOfflineErr */
		transient = true;
		break;
	default:
		transient = pa.code == 503;
	}
	if (pa.err_code == 10059)
		atomic_store(&ns->stream_ready, false); /* the stream is gone */
	snprintf(what, sizeof(what), "refused by the server: %s (%d)", pa.desc, pa.err_code);
	nats_slot_failed(ns, s, transient, what);
	return 0;
}

/* Parses what ns->in holds: every complete frame, under one lock. 0, or -1
 * when the connection must be dropped (reason in why). */
static int process_in(struct nats_sink *ns, char *why, size_t wl)
{
	size_t off = 0;
	int rc = 0, pings = 0;

	pthread_mutex_lock(&ns->lock);
	while (off < ns->in.len) {
		struct nw_frame f;
		long n = nw_parse(ns->in.buf + off, ns->in.len - off, MAX_IN_MSG, &f, why, wl);

		if (n == 0)
			break;
		if (n < 0) {
			rc = -1;
			break;
		}
		off += (size_t)n;
		if (f.kind == NW_PING)
			pings++;
		if (nats_conn_frame(ns, &f, why, wl)) {
			rc = -1;
			break;
		}
	}
	nats_fold_acks(ns);
	pthread_cond_broadcast(&ns->acked_cv);
	pthread_mutex_unlock(&ns->lock);
	if (rc == 0)
		in_consume(ns, off);
	while (rc == 0 && pings--)
		if (send_ctl(ns, "PONG\r\n")) {
			snprintf(why, wl, "could not send PONG");
			rc = -1;
		}
	return rc;
}

/* One wake-up per batch of PubAcks, not per few: the receive low-water
 * mark asks for what the acks in flight will at least take (ACK_MIN_BYTES
 * each, up to LOWAT_MAX), so the kernel wakes the reader once that much
 * came, or when the receive timeout passes (100 ms: what a few missing acks
 * or a server PING can wait). With nothing in flight it is one byte. */
static void set_lowat(struct nats_sink *ns, int fd)
{
	uint64_t pending = atomic_load_explicit(&ns->inflight, memory_order_relaxed);
	uint64_t want = pending * ACK_MIN_BYTES;
	int v = 1;

	if (want > LOWAT_MAX)
		want = LOWAT_MAX;
	while ((uint64_t)v * 2 <= want)
		v *= 2; /* a power of two: few changes */
	if (v == ns->lowat)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0)
		ns->lowat = v;
}

/* Waits for PubAcks or a server frame, then reads what came. While acks
 * are in flight the wait is READ_WAIT_MS (their timeouts are checked after
 * each wake-up); with none it lasts until the next PING is due, and a
 * publish into the empty window cuts it short through wake_fd. What came
 * is read without waiting (below the low-water mark too, as after a
 * timeout). >0 bytes, 0 when nothing came, -1 as read_more(). */
static ssize_t wait_and_read(struct nats_sink *ns, int fd, char *why, size_t wl)
{
	uint64_t now = mono_ns();
	int ms = READ_WAIT_MS;

	pthread_mutex_lock(&ns->lock);
	ns->reader_long = !atomic_load_explicit(&ns->inflight, memory_order_relaxed);
	if (ns->reader_long) {
		uint64_t due = ns->last_ping_ns + PING_INTERVAL_MS * 1000000ull;
		uint64_t left = due > now ? (due - now) / 1000000ull : 0;
		if (left > (uint64_t)ms)
			ms = (int)left;
	}
	pthread_mutex_unlock(&ns->lock);
	struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = ns->wake_fd, .events = POLLIN}};
	if (poll(p, 2, ms) < 0 && errno != EINTR) {
		snprintf(why, wl, "poll: %s", strerror(errno));
		return -1;
	}
	if (p[1].revents & POLLIN) {
		uint64_t v;
		if (read(ns->wake_fd, &v, sizeof(v)) < 0) {
			/* another wake-up took it */
		}
	}
	return read_more(ns, fd, MSG_DONTWAIT, why, wl);
}

void *nats_conn_reader(void *arg)
{
	struct nats_sink *ns = arg;
	char why[200];

	while (!atomic_load(&ns->stop)) {
		pthread_mutex_lock(&ns->lock);
		bool up = ns->up;
		int fd = ns->fd;
		pthread_mutex_unlock(&ns->lock);
		if (!up) {
			if (nats_conn_connect(ns) != 0)
				usleep(50000); /* every server waits for its next try */
			continue;
		}
		ssize_t r = 0;
		/* Bytes left from the handshake (a PING after the PONG) are
		 * handled before the first wait, which may last a PING interval. */
		if (ns->in_unread) {
			ns->in_unread = false;
		} else {
			set_lowat(ns, fd);
			r = wait_and_read(ns, fd, why, sizeof(why));
		}
		if (r < 0) {
			conn_drop(ns, why);
			continue;
		}
		if ((r > 0 || ns->in.len) && process_in(ns, why, sizeof(why))) {
			/* The stream cannot be followed any more: at most once
			 * per connection, so not rate-limited. */
			atomic_fetch_add(&ns->proto_errors, 1);
			tlog(TLOG_ERR, "nats", "%s: %s; connecting again", ns->server_name, why);
			conn_drop(ns, why);
			continue;
		}
		uint64_t now = mono_ns();
		pthread_mutex_lock(&ns->lock);
		nats_expire(ns, nats_coarse_ns());
		pthread_mutex_unlock(&ns->lock);
		if (now - ns->last_ping_ns >= PING_INTERVAL_MS * 1000000ull) {
			ns->last_ping_ns = now;
			if (ns->pings_out >= MAX_PINGS_OUT) {
				conn_drop(ns, "no PONG to 3 PINGs");
				continue;
			}
			ns->pings_out++;
			if (send_ctl(ns, "PING\r\n")) {
				conn_drop(ns, "could not send PING");
				continue;
			}
		}
	}
	return NULL;
}
