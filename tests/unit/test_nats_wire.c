// SPDX-License-Identifier: Apache-2.0
/* The NATS sink's protocol parser (sink/nats_wire.h): every server frame,
 * the same stream split at every byte boundary and read in small pieces,
 * garbage, -ERR, oversized lengths, PubAcks good and malformed; and the
 * publisher's handling of a frame (nats_conn_frame) for a PubAck of an
 * unknown or stale reply number, malformed JSON and -ERR, on a sink state
 * with no connection behind it. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sink/nats_internal.h"
#include "sink/nats_wire.h"
#include "util/log.h"

/* The frames of a session, as nats-server 2.9 writes them (the double
 * space of an absent reply, "seq" after ", "), plus lower case ops. */
static const char STREAM[] =
    "INFO {\"server_id\":\"S1\",\"headers\":true,\"max_payload\":1048576}\r\n"
    "PING\r\n"
    "PONG\r\n"
    "+OK\r\n"
    "MSG _INBOX.t.1 1  23\r\n{\"stream\":\"X\", \"seq\":1}\r\n"
    "MSG _INBOX.t.2 1 reply.to 41\r\n{\"stream\":\"X\", \"seq\":1,\"duplicate\": true}\r\n"
    "HMSG _INBOX.t.3 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    "hmsg a.b 7 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    "msg\tx\t9\t0\r\n\r\n"
    "-ERR 'Authorization Violation'\r\n"
    "ping\r\n";

struct want {
	enum nw_kind kind;
	const char *subject, *reply, *data;
	uint64_t sid;
	int status; /* HMSG */
};

static const struct want WANT[] = {
    {NW_INFO, NULL, NULL, "{\"server_id\":\"S1\",\"headers\":true,\"max_payload\":1048576}", 0, 0},
    {NW_PING, NULL, NULL, NULL, 0, 0},
    {NW_PONG, NULL, NULL, NULL, 0, 0},
    {NW_OK, NULL, NULL, NULL, 0, 0},
    {NW_MSG, "_INBOX.t.1", NULL, "{\"stream\":\"X\", \"seq\":1}", 1, 0},
    {NW_MSG, "_INBOX.t.2", "reply.to", "{\"stream\":\"X\", \"seq\":1,\"duplicate\": true}", 1, 0},
    {NW_HMSG, "_INBOX.t.3", NULL, "", 1, 503},
    {NW_HMSG, "a.b", "r", "hi", 7, 0},
    {NW_MSG, "x", NULL, "", 9, 0},
    {NW_ERR, NULL, NULL, "Authorization Violation", 0, 0},
    {NW_PING, NULL, NULL, NULL, 0, 0},
};
#define NWANT (sizeof(WANT) / sizeof(WANT[0]))

static void check_frame(const struct nw_frame *f, size_t i)
{
	const struct want *w = &WANT[i];

	cr_assert_eq(f->kind, w->kind, "frame %zu: kind %d, want %d", i, f->kind, w->kind);
	if (w->subject) {
		cr_assert_eq(f->subject_len, strlen(w->subject), "frame %zu", i);
		cr_assert(!memcmp(f->subject, w->subject, f->subject_len), "frame %zu", i);
		cr_assert_eq(f->sid, w->sid, "frame %zu", i);
	}
	if (w->reply) {
		cr_assert_not_null(f->reply, "frame %zu", i);
		cr_assert_eq(f->reply_len, strlen(w->reply));
		cr_assert(!memcmp(f->reply, w->reply, f->reply_len));
	} else {
		cr_assert_null(f->reply, "frame %zu", i);
	}
	if (w->data) {
		cr_assert_eq(f->data_len, strlen(w->data), "frame %zu: %zu bytes", i, f->data_len);
		cr_assert(!memcmp(f->data, w->data, f->data_len), "frame %zu", i);
	}
	if (w->kind == NW_HMSG)
		cr_assert_eq(nw_hdr_status(f->hdr, f->hdr_len), w->status, "frame %zu", i);
}

/* Feeds STREAM in pieces: first `split` bytes, then `step` at a time,
 * parsing all that is complete after each piece, like the reader does. */
static void feed(size_t split, size_t step)
{
	size_t total = sizeof(STREAM) - 1, have = 0, off = 0, got = 0;
	char *buf = malloc(total); /* exactly what arrived: ASan sees overreads */

	cr_assert_not_null(buf);
	while (off < total) {
		size_t add = have == 0 && split ? split : step;
		if (have + add > total)
			add = total - have;
		memcpy(buf + have, STREAM + have, add);
		have += add;
		char *view = malloc(have - off ? have - off : 1);
		memcpy(view, buf + off, have - off);
		size_t voff = 0;
		for (;;) {
			struct nw_frame f;
			char err[200] = "";
			long n =
			    nw_parse(view + voff, have - off - voff, 4096, &f, err, sizeof(err));

			cr_assert_geq(n, 0, "split %zu step %zu at %zu: %s", split, step,
				      off + voff, err);
			if (n == 0)
				break;
			cr_assert_lt(got, NWANT);
			check_frame(&f, got++);
			voff += (size_t)n;
		}
		off += voff;
		free(view);
		if (have == total && voff == 0)
			break;
	}
	cr_assert_eq(got, NWANT, "split %zu step %zu: %zu frames", split, step, got);
	cr_assert_eq(off, total);
	free(buf);
}

Test(nats_wire, every_frame_whole)
{
	struct nw_frame f;
	char err[64];

	feed(0, sizeof(STREAM));
	/* nothing read yet (the reader's buffer may not exist) */
	cr_assert_eq(nw_parse(NULL, 0, 4096, &f, err, sizeof(err)), 0);
}

Test(nats_wire, split_at_every_byte_boundary)
{
	for (size_t k = 1; k < sizeof(STREAM) - 1; k++)
		feed(k, sizeof(STREAM));
}

Test(nats_wire, small_pieces)
{
	for (size_t step = 1; step <= 9; step++)
		feed(0, step);
}

static void bad(const char *s, size_t max_msg, const char *why)
{
	struct nw_frame f;
	char err[200] = "";

	cr_assert_eq(nw_parse(s, strlen(s), max_msg, &f, err, sizeof(err)), -1, "'%s' parsed", s);
	cr_assert_not_null(strstr(err, why), "'%s': '%s' lacks '%s'", s, err, why);
}

Test(nats_wire, garbage_is_an_error_with_a_reason)
{
	bad("FOO bar\r\n", 4096, "unknown operation");
	bad("PINGX\r\n", 4096, "unknown operation");
	bad("\r\n", 4096, "unknown operation");
	bad("PING\n", 4096, "without CR");
	bad("\n", 4096, "without CR");
	bad("MSG a\r\n", 4096, "bad MSG line");
	bad("MSG a 1 2 3 4\r\n", 4096, "bad MSG line");
	bad("MSG a b 3\r\nabc\r\n", 4096, "bad sid");
	bad("MSG a 1 x\r\n", 4096, "bad length");
	bad("MSG a 1 -3\r\n", 4096, "bad length");
	bad("MSG a 1 99999999999999999999\r\n", 4096, "bad length");
	bad("HMSG a 1 20 10\r\n", 4096, "bad length");
	bad("HMSG a 1 10\r\n", 4096, "bad HMSG line");
	bad("MSG a 1 3\r\nabcd\r\n", 4096, "not followed by CRLF");
	bad("HMSG a 1 12 14\r\nNATS/1.0\r\n\r\nhiXY", 4096, "not followed by CRLF");
}

Test(nats_wire, oversized_lengths_and_lines)
{
	struct nw_frame f;
	char err[200];

	bad("MSG a 1 5000\r\n", 4096, "over the limit");
	bad("HMSG a 1 10 1048577\r\n", 1048576, "over the limit");
	/* a line that never ends: incomplete up to the limit, an error past it */
	size_t n = NW_MAX_LINE + 2;
	char *big = malloc(n);
	memset(big, 'A', n);
	memcpy(big, "INFO ", 5);
	cr_assert_eq(nw_parse(big, NW_MAX_LINE, 4096, &f, err, sizeof(err)), 0);
	cr_assert_eq(nw_parse(big, n, 4096, &f, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "longer than"), "%s", err);
	free(big);
	/* a complete but incomplete-payload MSG asks for more */
	cr_assert_eq(nw_parse("MSG a 1 10\r\nabc", 15, 4096, &f, err, sizeof(err)), 0);
}

Test(nats_wire, err_text)
{
	struct nw_frame f;
	char err[200];
	const char *s = "-ERR 'Maximum Payload Violation'\r\n";

	cr_assert_eq(nw_parse(s, strlen(s), 4096, &f, err, sizeof(err)), (long)strlen(s));
	cr_assert_eq(f.kind, NW_ERR);
	cr_assert_eq(f.data_len, strlen("Maximum Payload Violation"));
	cr_assert(!memcmp(f.data, "Maximum Payload Violation", f.data_len));
	s = "-ERR\r\n";
	cr_assert_eq(nw_parse(s, strlen(s), 4096, &f, err, sizeof(err)), 6);
	cr_assert_eq(f.kind, NW_ERR);
	cr_assert_eq(f.data_len, 0);
}

Test(nats_wire, header_status_and_reply_numbers)
{
	uint64_t n = 0;

	cr_assert_eq(nw_hdr_status("NATS/1.0 503\r\n\r\n", 16), 503);
	cr_assert_eq(nw_hdr_status("NATS/1.0 408 Request Timeout\r\n\r\n", 32), 408);
	cr_assert_eq(nw_hdr_status("NATS/1.0\r\nA: b\r\n\r\n", 18), 0);
	cr_assert_eq(nw_hdr_status("HTTP/1.1 200\r\n\r\n", 16), -1);
	cr_assert_eq(nw_hdr_status("NATS", 4), -1);
	cr_assert_eq(nw_reply_num("_INBOX.x.42", 11, "_INBOX.x", 8, &n), 0);
	cr_assert_eq(n, 42);
	cr_assert_eq(nw_reply_num("_INBOX.y.42", 11, "_INBOX.x", 8, &n), -1);
	cr_assert_eq(nw_reply_num("_INBOX.x.", 9, "_INBOX.x", 8, &n), -1);
	cr_assert_eq(nw_reply_num("_INBOX.x.4a", 11, "_INBOX.x", 8, &n), -1);
	cr_assert_eq(nw_reply_num("_INBOX.x", 8, "_INBOX.x", 8, &n), -1);
	cr_assert_eq(nw_reply_num("_INBOX.xx1", 10, "_INBOX.x", 8, &n), -1);
	cr_assert_eq(nw_reply_num(NULL, 0, "_INBOX.x", 8, &n), -1);
}

static int pa(const char *s, struct nw_puback *out)
{
	char err[200] = "";
	int rc = nw_parse_puback(s, strlen(s), out, err, sizeof(err));

	if (rc)
		cr_assert(!strncmp(err, "PubAck ", 7), "reason for '%s': '%s'", s, err);
	return rc;
}

Test(nats_wire, pubacks)
{
	struct nw_puback p;

	cr_assert_eq(pa("{\"stream\":\"TAPIO_EVENTS\", \"seq\":12345}", &p), 0);
	cr_assert_str_eq(p.stream, "TAPIO_EVENTS");
	cr_assert_eq(p.seq, 12345);
	cr_assert_not(p.duplicate);
	cr_assert_not(p.error);
	cr_assert_eq(pa("{\"stream\":\"S\",\"seq\":7,\"duplicate\":true}", &p), 0);
	cr_assert(p.duplicate);
	cr_assert_eq(p.seq, 7);
	cr_assert_eq(pa("{\"stream\":\"S\", \"seq\":7,\"duplicate\": true}", &p), 0);
	cr_assert(p.duplicate);
	/* other forms take the general walker */
	cr_assert_eq(pa(" { \"stream\" : \"S\" , \"domain\":\"hub\", \"seq\" : 9 } ", &p), 0);
	cr_assert_eq(p.seq, 9);
	cr_assert_str_eq(p.stream, "S");
	cr_assert_eq(
	    pa("{\"seq\":3,\"stream\":\"S\\\"q\",\"duplicate\":false,\"x\":[1,{\"y\":null}]}", &p),
	    0);
	cr_assert_eq(p.seq, 3);
	cr_assert_not(p.duplicate);
	cr_assert_eq(pa("{\"error\":{\"code\":503,\"err_code\":10077,\"description\":\"maximum "
			"messages exceeded\"},\"type\":\"x\"}",
			&p),
		     0);
	cr_assert(p.error);
	cr_assert_eq(p.code, 503);
	cr_assert_eq(p.err_code, 10077);
	cr_assert_str_eq(p.desc, "maximum messages exceeded");
}

Test(nats_wire, malformed_pubacks_are_errors)
{
	static const char *bad_json[] = {
	    "",
	    "{",
	    "}",
	    "not json",
	    "[1,2]",
	    "{\"stream\":\"S\"}",
	    "{\"seq\":-1}",
	    "{\"seq\":\"1\"}",
	    "{\"seq\":1,}",
	    "{\"seq\":1} trailing",
	    "{\"stream\":\"S, \"seq\":1}",
	    "{\"stream\":\"S\",\"seq\":1,\"duplicate\":tru}",
	    "{\"stream\":\"S\",\"seq\":1,\"duplicate\":1}",
	    "{\"error\":\"no\"}",
	    "{\"error\":{\"code\":\"x\"}}",
	    "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]],\"seq\":1}",
	    "{\"seq\":1\x01}",
	    "{\"stream\":\"a\nb\",\"seq\":1}",
	    "{\"seq\":12345678901234567890}",
	};
	struct nw_puback p;

	for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++)
		cr_assert_eq(pa(bad_json[i], &p), -1, "'%s' accepted", bad_json[i]);
}

Test(nats_wire, info)
{
	struct nw_info in;
	char err[200];
	const char *s =
	    "{\"server_id\":\"NA\",\"version\":\"2.9.10\",\"headers\":true,"
	    "\"max_payload\":4096,\"connect_urls\":[\"a:1\",\"b:2\"],\"tls_required\":true}";

	cr_assert_eq(nw_parse_info(s, strlen(s), &in, err, sizeof(err)), 0);
	cr_assert_eq(in.max_payload, 4096);
	cr_assert(in.headers);
	cr_assert(in.tls_required);
	cr_assert_not(in.auth_required);
	cr_assert_str_eq(in.server_id, "NA");
	cr_assert_eq(nw_parse_info("{\"max_payload\":", 15, &in, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "INFO"));
}

/* ---- the publisher's handling of frames, on a sink with no socket ---- */

static char last_log[512];
static void capture(int level, const char *who, const char *msg)
{
	(void)level;
	snprintf(last_log, sizeof(last_log), "%s: %s", who, msg);
}

static struct nats_sink *fake_sink(void)
{
	struct nats_sink *ns = calloc(1, sizeof(*ns));

	cr_assert_not_null(ns);
	ns->max_inflight = 8;
	ns->max_attempts = 3;
	ns->retry_cap = 16;
	ns->slots = calloc(ns->max_inflight, sizeof(*ns->slots));
	ns->retry = calloc(ns->retry_cap, sizeof(*ns->retry));
	ns->next_reply = ns->oldest = 1;
	strcpy(ns->inbox, "_INBOX.t");
	ns->inbox_len = 8;
	strcpy(ns->server_name, "nats://127.0.0.1:4999");
	pthread_mutex_init(&ns->lock, NULL);
	return ns;
}

static void fake_free(struct nats_sink *ns)
{
	for (size_t i = 0; i < ns->max_inflight; i++)
		free(ns->slots[i].m.buf);
	for (size_t i = 0; i < ns->retry_cap; i++)
		free(ns->retry[i].buf);
	free(ns->slots);
	free(ns->retry);
	pthread_mutex_destroy(&ns->lock);
	free(ns);
}

/* Puts an entry with reply number n in flight. */
static void in_flight(struct nats_sink *ns, uint64_t n)
{
	struct nats_slot *s = &ns->slots[n % ns->max_inflight];

	s->m.buf = realloc(s->m.buf, 16);
	memcpy(s->m.buf, "datasubjid-1", 12);
	s->m.subj_len = 4; /* "data" "subj" "id-1" */
	s->m.id_len = 4;
	s->m.payload_len = 4;
	s->m.attempts = 1;
	s->m.src = 1;
	s->reply = n;
	ns->next_reply = n + 1;
	atomic_fetch_add(&ns->inflight, 1);
	atomic_fetch_add(&ns->outstanding[1], 1);
}

static int frame(struct nats_sink *ns, const char *s)
{
	struct nw_frame f;
	char err[200];

	cr_assert_eq(nw_parse(s, strlen(s), 4096, &f, err, sizeof(err)), (long)strlen(s), "%s: %s",
		     s, err);
	pthread_mutex_lock(&ns->lock);
	int rc = nats_conn_frame(ns, &f, err, sizeof(err));
	if (rc)
		snprintf(last_log, sizeof(last_log), "%s", err);
	nats_fold_acks(ns);
	pthread_mutex_unlock(&ns->lock);
	return rc;
}

/* A MSG frame with payload p on subject subj. */
static int msg(struct nats_sink *ns, const char *subj, const char *p)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "MSG %s 1 %zu\r\n%s\r\n", subj, strlen(p), p);
	return frame(ns, buf);
}

Test(nats_wire, sink_counts_bad_pubacks_and_keeps_going)
{
	struct nats_sink *ns = fake_sink();

	log_set_hook(capture);
	in_flight(ns, 1);
	in_flight(ns, 2);
	/* a good one settles its entry */
	cr_assert_eq(frame(ns, "MSG _INBOX.t.1 1 23\r\n{\"stream\":\"X\", \"seq\":1}\r\n"), 0);
	cr_assert_eq(atomic_load(&ns->acked), 1);
	cr_assert_eq(atomic_load(&ns->inflight), 1);
	cr_assert_eq(ns->slots[1].reply, 0);
	/* the same again: stale (taken back or settled already), counted */
	cr_assert_eq(frame(ns, "MSG _INBOX.t.1 1 23\r\n{\"stream\":\"X\", \"seq\":1}\r\n"), 0);
	cr_assert_eq(atomic_load(&ns->late_acks), 1);
	cr_assert_eq(atomic_load(&ns->acked), 1);
	/* never published: a protocol error naming the server */
	last_log[0] = 0;
	cr_assert_eq(frame(ns, "MSG _INBOX.t.77 1 23\r\n{\"stream\":\"X\", \"seq\":1}\r\n"), 0);
	cr_assert_eq(atomic_load(&ns->proto_errors), 1);
	cr_assert_not_null(strstr(last_log, "nats://127.0.0.1:4999"), "%s", last_log);
	cr_assert_not_null(strstr(last_log, "never published"), "%s", last_log);
	/* not on the inbox */
	cr_assert_eq(frame(ns, "MSG other.1 1 2\r\nhi\r\n"), 0);
	cr_assert_eq(atomic_load(&ns->proto_errors), 2);
	/* malformed JSON for entry 2: counted, the entry goes to the retry list */
	cr_assert_eq(frame(ns, "MSG _INBOX.t.2 1 9\r\n{\"seq\":x}\r\n"), 0);
	cr_assert_eq(atomic_load(&ns->proto_errors), 3);
	cr_assert_eq(atomic_load(&ns->inflight), 0);
	cr_assert_eq(ns->retry_n, 1);
	cr_assert_eq(atomic_load(&ns->lost), 0);
	/* no responders: the stream is checked again, the entry retried */
	atomic_store(&ns->stream_ready, true);
	in_flight(ns, 3);
	cr_assert_eq(frame(ns, "HMSG _INBOX.t.3 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"), 0);
	cr_assert_not(atomic_load(&ns->stream_ready));
	cr_assert_eq(ns->retry_n, 2);
	/* refused for good: lost, counted for its source */
	in_flight(ns, 4);
	cr_assert_eq(msg(ns, "_INBOX.t.4",
			 "{\"error\":{\"code\":400,\"err_code\":10054,"
			 "\"description\":\"maximum payload exceeded\"}}"),
		     0);
	cr_assert_eq(atomic_load(&ns->lost), 1);
	cr_assert_eq(atomic_load(&ns->base.src_failed[1]), 1);
	cr_assert_not_null(strstr(last_log, "maximum payload exceeded"), "%s", last_log);
	/* -ERR: the connection must go */
	cr_assert_eq(frame(ns, "-ERR 'Unknown Protocol Operation'\r\n"), -1);
	cr_assert_str_eq(last_log, "-ERR 'Unknown Protocol Operation'");
	log_set_hook(NULL);
	fake_free(ns);
}
