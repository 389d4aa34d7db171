// SPDX-License-Identifier: Apache-2.0
/* The acknowledgement tracker (core/ack.h) and the stream sink's part in it:
 * a cursor moves only past events the sink has, and a file never gets a line
 * appended after a torn one. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/event.h"
#include "core/queue.h"
#include "sink/sink.h"
#include "tests/lib/tmpdir.h"

struct commits {
	uint64_t latest;
	size_t n;
};

static void on_commit(void *ctx, uint64_t safe)
{
	struct commits *c = ctx;
	cr_assert(c->n == 0 || safe > c->latest, "the safe point only grows");
	c->latest = safe;
	c->n++;
}

static uint64_t last(const struct commits *c)
{
	cr_assert(c->n > 0);
	return c->latest;
}

Test(ack, in_order_and_out_of_order_settles_move_the_safe_point)
{
	struct ack_tracker t;
	struct commits c = {0};
	cr_assert_eq(ack_init(&t, 8, on_commit, &c), 0);
	ack_through(&t, 9); /* stored cursor: 9 */
	cr_assert_eq(last(&c), 9);
	uint32_t a = ack_track(&t, 10), b = ack_track(&t, 10), d = ack_track(&t, 11);
	cr_assert(a && b && d && a != b && b != d);
	ack_through(&t, 11); /* the collector has emitted all of 10 and 11 */
	cr_assert_eq(c.n, 1, "nothing acked yet: the cursor stays at 9");
	ack_settle(&t, b); /* out of order: 10 still has one pending */
	cr_assert_eq(c.n, 1);
	ack_settle(&t, a);
	cr_assert_eq(last(&c), 10);
	cr_assert_eq(ack_pending(&t), 1);
	ack_settle(&t, d);
	cr_assert_eq(last(&c), 11);
	ack_settle(&t, d); /* repeated: ignored */
	cr_assert_eq(atomic_load(&t.stale), 1);
	cr_assert_eq(c.n, 3);
	ack_destroy(&t);
}

Test(ack, a_full_ring_refuses_and_untrack_gives_back)
{
	struct ack_tracker t;
	struct commits c = {0};
	cr_assert_eq(ack_init(&t, 4, on_commit, &c), 0);
	uint32_t tok[4];
	for (int i = 0; i < 4; i++)
		cr_assert_neq(tok[i] = ack_track(&t, (uint64_t)(5 + i)), 0);
	cr_assert_eq(ack_track(&t, 9), 0, "every slot pending: refused");
	cr_assert_eq(atomic_load(&t.full), 1);
	ack_untrack(&t, tok[3]); /* the queue refused the last one */
	ack_through(&t, 7);
	cr_assert_eq(last(&c), 4, "the oldest pending is 5");
	ack_settle(&t, tok[0]);
	ack_settle(&t, tok[1]);
	cr_assert_eq(last(&c), 6, "7 pending: safe is 6");
	ack_settle(&t, tok[2]);
	cr_assert_eq(last(&c), 7);
	/* the slots come back: many rounds keep the tokens right */
	for (uint64_t r = 8; r < 5000; r++) {
		uint32_t x = ack_track(&t, r);
		cr_assert_neq(x, 0);
		ack_through(&t, r);
		ack_settle(&t, x);
	}
	cr_assert_eq(last(&c), 4999);
	ack_destroy(&t);
}

Test(ack, settles_by_source_reach_the_registered_tracker_only)
{
	struct ack_tracker t;
	struct commits c = {0};
	cr_assert_eq(ack_init(&t, 16, on_commit, &c), 0);
	ack_register(3, &t);
	uint32_t x = ack_track(&t, 2);
	ack_through(&t, 2);
	ack_settle_src(2, x); /* another source: nothing */
	ack_settle_src(3, 0); /* no token: nothing */
	cr_assert_eq(c.n, 1);
	cr_assert_eq(last(&c), 1);
	ack_settle_src(3, x);
	cr_assert_eq(last(&c), 2);
	ack_unregister(3, &t);
	ack_settle_src(3, x);
	cr_assert_eq(atomic_load(&t.stale), 0, "unregistered: not reached");
	ack_destroy(&t);
}

static const char *const types[] = {NULL, "t.one"};
static const struct source_desc src = {.name = "acktest", .types = types, .ntypes = 2};

/* One event through a real queue (the sink reads records as the pipeline does). */
static int write_one(struct sink *s, struct queue *q, uint32_t token, const char *text)
{
	cr_assert_eq(event_emit_ack(q, 5, 1, FMT_TEXT, 1, NULL, 0, text, strlen(text), token), 0);
	size_t len;
	unsigned sid;
	void *rec = queue_peek(q, &len, &sid, 0);
	cr_assert_not_null(rec);
	int rc = sink_write(s, rec);
	queue_release(q, rec);
	return rc;
}

Test(ack, the_file_sink_acknowledges_after_the_write_and_ends_a_torn_line)
{
	char dir[64], path[128], spec[140], err[200];
	cr_assert_not_null(tl_mkdtemp(dir, sizeof(dir), "ack"));
	snprintf(path, sizeof(path), "%s/out.jsonl", dir);
	snprintf(spec, sizeof(spec), "file:%s", path);
	source_register(5, &src);
	FILE *f = fopen(path, "w");
	fputs("{\"whole\":1}\n{\"torn\":", f); /* a writer killed inside a write */
	fclose(f);

	struct queue *q = queue_new(1 << 16);
	struct ack_tracker t;
	struct commits c = {0};
	cr_assert_eq(ack_init(&t, 16, on_commit, &c), 0);
	ack_register(5, &t);
	struct sink *s = sink_open(spec, SINK_JSON, NULL, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	sink_stream_set_sync(s, true);
	uint32_t a = ack_track(&t, 1), b = ack_track(&t, 2);
	ack_through(&t, 2);
	cr_assert_eq(last(&c), 0, "1 and 2 pending");
	cr_assert_eq(write_one(s, q, a, "one"), 0);
	cr_assert_eq(write_one(s, q, b, "two"), 0);
	cr_assert_eq(last(&c), 0, "buffered, not in the file: not acknowledged");
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, (off_t)strlen("{\"whole\":1}\n{\"torn\":\n"),
		     "the torn line is ended at open, nothing else written yet");
	cr_assert_eq(sink_flush(s), 0);
	cr_assert_eq(last(&c), 2, "written: acknowledged");
	sink_destroy(s);

	char buf[1024] = {0};
	int fd = open(path, O_RDONLY);
	cr_assert(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	char *second = strchr(buf, '\n') + 1, *third = strchr(second, '\n') + 1;
	cr_assert(!strncmp(second, "{\"torn\":\n", 9), "%s", buf);
	cr_assert(strstr(third, "\"one\"") && strstr(third, "\"two\""), "%s", buf);
	cr_assert_eq(buf[strlen(buf) - 1], '\n');
	ack_unregister(5, &t);
	ack_destroy(&t);
	queue_free(q);
	tl_rmtree(dir);
}

Test(ack, a_failed_file_write_does_not_acknowledge)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	close(p[0]); /* EPIPE on write */
	struct queue *q = queue_new(1 << 16);
	struct ack_tracker t;
	struct commits c = {0};
	source_register(5, &src);
	cr_assert_eq(ack_init(&t, 16, on_commit, &c), 0);
	ack_register(5, &t);
	struct sink *s = sink_stream_new(p[1], true, SINK_JSON, false);
	signal(SIGPIPE, SIG_IGN);
	uint32_t a = ack_track(&t, 1);
	ack_through(&t, 1);
	cr_assert_eq(last(&c), 0);
	cr_assert_eq(write_one(s, q, a, "lost"), 0);
	cr_assert_neq(sink_flush(s), 0);
	cr_assert_eq(c.n, 1, "never written: the cursor stays");
	cr_assert_eq(ack_pending(&t), 1);
	sink_destroy(s);
	ack_unregister(5, &t);
	ack_destroy(&t);
	queue_free(q);
}
