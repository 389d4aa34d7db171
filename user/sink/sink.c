// SPDX-License-Identifier: Apache-2.0
/* The stream sink (JSON Lines or text on a file descriptor) and sink_open(). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/event.h"
#include "core/config.h"
#include "sink/format.h"
#include "sink/sink.h"
#include "sink/otlp.h"
#include "sink/sink_nats.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/vec.h"

#define STREAM_BUF (64 * 1024)

struct stream_sink {
	struct sink base;
	int fd;
	bool own_fd;
	bool flush_each;
	bool header_done;
	enum sink_format fmt;
	int err; /* sticky write error */
	struct strbuf out;
	uint64_t pending[SINK_SOURCES]; /* events in `out`, per source */
	bool sync;			/* fdatasync before an event counts as safe */
	struct pending_ack {
		uint16_t src;
		uint32_t token;
	} * acks; /* tokens of the events in `out` */
	size_t nacks, acks_cap;
};

/* The events in `out` reached the file (ok): their sources may move on.
 * When the write failed they are not settled: their sources read them
 * again after a restart. */
static void settle_acks(struct stream_sink *ss, bool ok)
{
	if (ok)
		for (size_t i = 0; i < ss->nacks; i++)
			ack_settle_src(ss->acks[i].src, ss->acks[i].token);
	ss->nacks = 0;
}

static unsigned src_of(const struct tapio_event *ev)
{
	return ev->source < SINK_SOURCES ? ev->source : SINK_SOURCES - 1;
}

/* Moves the buffered events to written (ok) or failed. */
static void settle_pending(struct stream_sink *ss, bool ok)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < SINK_SOURCES; i++) {
		if (!ss->pending[i])
			continue;
		atomic_fetch_add(ok ? &ss->base.src_written[i] : &ss->base.src_failed[i],
				 ss->pending[i]);
		total += ss->pending[i];
		ss->pending[i] = 0;
	}
	atomic_fetch_add(ok ? &ss->base.written : &ss->base.failed, total);
}

static int fail_one(struct stream_sink *ss, const struct tapio_event *ev, int err)
{
	atomic_fetch_add(&ss->base.src_failed[src_of(ev)], 1);
	atomic_fetch_add(&ss->base.failed, 1);
	return err;
}

static int stream_flush(struct sink *s)
{
	struct stream_sink *ss = (struct stream_sink *)s;
	if (ss->err)
		return ss->err;
	if (ss->out.len) {
		/* Whole records in one write: a line is only torn when the
		 * process dies inside the write (the next open ends it). */
		int err = fd_write_all(ss->fd, ss->out.buf, ss->out.len);
		if (!err && ss->sync && fdatasync(ss->fd) && errno != EINVAL && errno != EROFS)
			err = -errno;
		sb_reset(&ss->out);
		settle_pending(ss, err == 0);
		settle_acks(ss, err == 0);
		if (err) {
			ss->err = err;
			return err;
		}
	}
	return 0;
}

static int stream_write(struct sink *s, const struct tapio_event *ev)
{
	struct stream_sink *ss = (struct stream_sink *)s;
	if (ss->err)
		return fail_one(ss, ev, ss->err);
	bool pods = ss->fmt == SINK_TEXT_PODS;
	if (ss->fmt != SINK_JSON && !ss->header_done) {
		format_text_header_pods(&ss->out, pods);
		ss->header_done = true;
	}
	size_t mark = ss->out.len;
	int err =
	    ss->fmt == SINK_JSON ? format_json(ev, &ss->out) : format_text_pods(ev, &ss->out, pods);
	if (err) {
		ss->out.len = mark;
		if (ss->out.buf)
			ss->out.buf[mark] = '\0';
		ack_settle_src(ev->source, ev->ack); /* it can never be written */
		return fail_one(ss, ev, err);
	}
	ss->pending[src_of(ev)]++;
	if (ev->ack) {
		if (VEC_RESERVE(ss->acks, ss->acks_cap, ss->nacks + 1) == 0) {
			ss->acks[ss->nacks++] = (struct pending_ack){ev->source, ev->ack};
		} else {
			/* No room to remember it: write it now, then settle it. */
			err = stream_flush(s);
			if (!err)
				ack_settle_src(ev->source, ev->ack);
			return err;
		}
	}
	if (ss->flush_each || ss->out.len >= STREAM_BUF)
		return stream_flush(s);
	return 0;
}

static void stream_destroy(struct sink *s)
{
	struct stream_sink *ss = (struct stream_sink *)s;
	stream_flush(s); /* nothing buffered may go uncounted */
	if (ss->own_fd)
		close(ss->fd);
	sb_free(&ss->out);
	free(ss->acks);
	free(ss);
}

/* A file that a killed writer left with a torn last line: end that line, so
 * that what is appended now starts a line of its own. 0 or -errno. */
static int end_torn_line(int fd, const char *path)
{
	struct stat st;
	char last;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size == 0)
		return 0;
	ssize_t r = pread(fd, &last, 1, st.st_size - 1);
	if (r != 1 || last == '\n')
		return r < 0 ? -errno : 0;
	tlog(TLOG_WARN, "sink",
	     "%s ends inside a line (a write was cut short); ending it before appending", path);
	return fd_write_all(fd, "\n", 1);
}

static const struct sink_ops stream_ops = {
    .name = "stream",
    .write = stream_write,
    .flush = stream_flush,
    .destroy = stream_destroy,
};

void sink_stream_set_sync(struct sink *s, bool sync)
{
	if (s && s->ops == &stream_ops)
		((struct stream_sink *)s)->sync = sync;
}

struct sink *sink_stream_new(int fd, bool own_fd, enum sink_format fmt, bool flush_each)
{
	struct stream_sink *ss = calloc(1, sizeof(*ss));
	if (!ss) {
		errno = ENOMEM;
		return NULL;
	}
	ss->base.ops = &stream_ops;
	ss->base.self_counted = true;
	ss->fd = fd;
	ss->own_fd = own_fd;
	ss->fmt = fmt;
	ss->flush_each = flush_each;
	if (sb_grow(&ss->out, STREAM_BUF)) {
		free(ss);
		errno = ENOMEM;
		return NULL;
	}
	return &ss->base;
}

struct sink *sink_open(const char *spec, enum sink_format fmt, const struct tapio_config *cfg,
		       char *err, size_t errlen)
{
	if (!spec || !*spec || !strcmp(spec, "stdout") || !strcmp(spec, "-")) {
		/* Buffered; the pipeline flushes whenever the queue runs empty, so a
		 * reader still sees each event promptly. */
		return sink_stream_new(STDOUT_FILENO, false, fmt, false);
	}
	if (!strncmp(spec, "file:", 5)) {
		const char *path = spec + 5;
		if (!*path) {
			snprintf(err, errlen, "output: 'file:' needs a path");
			errno = EINVAL;
			return NULL;
		}
		int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		int trc = fd >= 0 ? end_torn_line(fd, path) : 0;
		if (trc) {
			close(fd);
			fd = -1;
			errno = -trc;
		}
		if (fd < 0) {
			int e = errno;
			snprintf(err, errlen, "output: cannot open %s: %s", path, strerror(e));
			errno = e;
			return NULL;
		}
		/* fdatasync policy: none (the page cache), batch (each write of
		 * the buffer, before its events are acknowledged), always (each
		 * event written and synced on its own) */
		const char *fs = cfg && cfg->file_sync ? cfg->file_sync : "none";
		bool always = !strcmp(fs, "always");
		struct sink *s = sink_stream_new(fd, true, fmt, always);
		if (s)
			sink_stream_set_sync(s, always || !strcmp(fs, "batch"));
		if (!s) {
			int e = errno;
			close(fd);
			snprintf(err, errlen, "output: %s", strerror(e));
			errno = e;
		}
		return s;
	}
	if (!strncmp(spec, "nats://", 7)) {
		const struct nats_options *no = cfg ? config_group(cfg, &nats_options_group) : NULL;
		if (!no) {
			snprintf(err, errlen, "output: %s: the NATS options were not loaded", spec);
			errno = EINVAL;
			return NULL;
		}
		return sink_nats_new(spec, no, cfg->node_name, err, errlen);
	}
	if (!strncmp(spec, "otlp://", 7) || !strncmp(spec, "otlps://", 8)) {
		const struct otlp_options *oo = cfg ? config_group(cfg, &otlp_options_group) : NULL;
		if (!oo) {
			snprintf(err, errlen, "output: %s: the OTLP options were not loaded", spec);
			errno = EINVAL;
			return NULL;
		}
		return sink_otlp_new(spec, oo, cfg->node_name, err, errlen);
	}
	snprintf(err, errlen,
		 "output: '%s' is not stdout, file:PATH, nats://HOST:PORT or otlp://HOST:PORT",
		 spec);
	errno = EINVAL;
	return NULL;
}

int sink_write(struct sink *s, const struct tapio_event *ev)
{
	return s->ops->write(s, ev);
}

int sink_flush(struct sink *s)
{
	return s->ops->flush ? s->ops->flush(s) : 0;
}

int sink_poll(struct sink *s)
{
	return s->ops->poll ? s->ops->poll(s) : sink_flush(s);
}

unsigned sink_idle_ms(struct sink *s, unsigned dflt)
{
	return s->ops->idle_ms ? s->ops->idle_ms(s) : dflt;
}

int sink_close(struct sink *s)
{
	return s->ops->close ? s->ops->close(s) : 0;
}

bool sink_connected(struct sink *s)
{
	return s->ops->connected ? s->ops->connected(s) : true;
}

void sink_destroy(struct sink *s)
{
	if (s)
		s->ops->destroy(s);
}
