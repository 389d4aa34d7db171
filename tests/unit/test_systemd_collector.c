/* SPDX-License-Identifier: Apache-2.0 */
/* The systemd collector: config checks, availability, and the full-queue path
 * (retry without loss, cursor not past an entry the queue refused) on a
 * journal file written by systemd-journal-remote. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/collector.h"
#include "collectors/systemd/internal.h"
#include "collectors/systemd/systemd.h"
#include "core/config.h"
#include "core/event.h"
#include "core/queue.h"
#include "tests/lib/tmpdir.h"
#include "tests/lib/test_env.h"

#define JOURNAL_REMOTE "/lib/systemd/systemd-journal-remote"

static char tmp[256];

static void mktmp(void)
{
	cr_assert_not_null(tl_mkdtemp(tmp, sizeof(tmp), "sdunit"));
}

static void rmtmp(void)
{
	if (!tmp[0])
		return;
	cr_assert_eq(tl_rmtree(tmp), 0, "%s: %s", tmp, strerror(errno));
}

static struct tcfg base_cfg(void)
{
	struct tcfg c;

	memset(&c, 0, sizeof(c));
	c.systemd.journal_dir = "";
	c.systemd.journal_units = "kubelet.service";
	c.systemd.journal_since = "now";
	c.base.state_dir = "";
	c.base.max_event_size = 1 << 20;
	return c;
}

Test(systemd_collector, config_errors)
{
	struct tcfg c = base_cfg();
	char err[256];

	c.systemd.journal_since = "yesterday";
	errno = 0;
	cr_assert_null(systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err)));
	cr_assert_eq(errno, EINVAL);
	cr_assert_not_null(strstr(err, "--journal-since"), "%s", err);

	c.systemd.journal_since = "s=abc;i=zz;q=1"; /* q is not a cursor key */
	cr_assert_null(systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err)));
	cr_assert_not_null(strstr(err, "--journal-since"), "%s", err);

	c.systemd.journal_since = "head";
	c.systemd.journal_units = "kubelet.service,bad unit";
	cr_assert_null(systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err)));
	cr_assert_eq(errno, EINVAL);
	cr_assert_not_null(strstr(err, "--journal-units"), "%s", err);
	cr_assert_not_null(strstr(err, "bad unit"), "%s", err);

	c.systemd.journal_units = "a=b.service";
	cr_assert_null(systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err)));
	cr_assert_not_null(strstr(err, "--journal-units"), "%s", err);
}

Test(systemd_collector, journal_dir_is_a_file, .init = mktmp, .fini = rmtmp)
{
	struct tcfg c = base_cfg();
	char err[256], file[300];
	FILE *f;

	snprintf(file, sizeof(file), "%s/system.journal", tmp);
	f = fopen(file, "we");
	cr_assert_not_null(f);
	fclose(f);
	c.systemd.journal_dir = file;
	errno = 0;
	cr_assert_null(systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err)));
	cr_assert_eq(errno, EINVAL);
	cr_assert_not_null(strstr(err, "--journal-dir"), "%s", err);
	cr_assert_not_null(strstr(err, file), "%s", err);
}

Test(systemd_collector, config_accepted)
{
	struct tcfg c = base_cfg();
	char err[256];
	struct collector *col;

	c.systemd.journal_since =
	    "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8d4447ba8b2d1e2e7a2c8f1;"
	    "m=264d3b0;t=5f7a5d1c1c2e5;x=5b3e5f8b1e7f2a9c";
	col = systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	cr_assert_str_eq(collector_name(col), "systemd");
	cr_assert_not(collector_healthy(col)); /* not started */
	collector_stop(col);		       /* unstarted: a no-op */
	collector_destroy(col);

	/* NULL strings take the defaults */
	memset(&c, 0, sizeof(c));
	col = systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	collector_destroy(col);
	collector_destroy(NULL);
}

Test(systemd_collector, available, .init = mktmp, .fini = rmtmp)
{
	struct tcfg c = base_cfg();
	char missing[300];

	c.systemd.journal_dir = tmp;
	cr_assert(systemd_collector_available(tenv(&c, SRC_SYSTEMD)));
	snprintf(missing, sizeof(missing), "%s/nope", tmp);
	c.systemd.journal_dir = missing;
	cr_assert_not(systemd_collector_available(tenv(&c, SRC_SYSTEMD)));
}

/* ---- against a real journal file ---- */

static void write_journal(const char *path, int first, int n)
{
	char cmd[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s -o '%s' - 2>/dev/null", JOURNAL_REMOTE, path);
	p = popen(cmd, "w");
	cr_assert_not_null(p);
	for (int i = first; i < first + n; i++) {
		fprintf(p,
			"__REALTIME_TIMESTAMP=%llu\n__MONOTONIC_TIMESTAMP=%llu\n"
			"_BOOT_ID=5f0c1a4e2b7d4e10a9c3d2b1e0f9a8b7\n_HOSTNAME=node-a\n"
			"_SYSTEMD_UNIT=kubelet.service\nPRIORITY=6\nMESSAGE=entry %d %0200d\n\n",
			1764200000000000ull + (unsigned long long)i * 1000,
			5000000ull + (unsigned long long)i * 1000, i, i);
	}
	cr_assert_eq(pclose(p), 0, "systemd-journal-remote failed");
}

static int entry_number(const struct tapio_event *ev)
{
	cJSON *j = cJSON_ParseWithLength(event_data(ev), ev->data_len);
	int n = -1;

	cr_assert_not_null(j);
	cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "MESSAGE");
	cr_assert(cJSON_IsString(m));
	cr_assert_eq(sscanf(m->valuestring, "entry %d", &n), 1);
	cJSON_Delete(j);
	return n;
}

static void get_counter(void *ctx, const char *name, const char *labels, uint64_t v)
{
	(void)labels;
	if (!strcmp(name, "emit_retries"))
		*(uint64_t *)ctx = v;
}

static uint64_t ms_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void read_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	size_t n;

	cr_assert_not_null(f, "%s", path);
	n = fread(buf, 1, size - 1, f);
	while (n && buf[n - 1] == '\n') /* the cursor file ends with a newline */
		n--;
	buf[n] = '\0';
	fclose(f);
}

Test(systemd_collector, full_queue_retries_without_loss, .init = mktmp, .fini = rmtmp,
     .timeout = 60)
{
	struct tcfg c = base_cfg();
	char jdir[300], state[300], path[400], err[256], acked[4096] = "";
	enum { N = 120 };

	if (access(JOURNAL_REMOTE, X_OK) != 0) {
		const char *ci = getenv("CI");
		if (ci && (!strcmp(ci, "true") || !strcmp(ci, "1")))
			cr_assert_fail("systemd-journal-remote is not installed (CI=true: a skip "
				       "is a failure)");
		cr_skip_test("systemd-journal-remote is not installed (make deps installs it)");
	}
	snprintf(jdir, sizeof(jdir), "%s/journal", tmp);
	snprintf(state, sizeof(state), "%s/state", tmp);
	snprintf(path, sizeof(path), "%s/system.journal", jdir);
	cr_assert_eq(mkdir(jdir, 0700), 0);
	write_journal(path, 1, N);

	c.systemd.journal_dir = jdir;
	c.systemd.journal_since = "head";
	c.base.state_dir = state;
	struct collector *col = systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	/* room for a few events only, dropping at once when full */
	struct queue *q = queue_new(8192);
	cr_assert_not_null(q);
	cr_assert_eq(queue_set_wait(q, SRC_SYSTEMD, 0), 0);
	cr_assert_eq(collector_start(col, q), 0);

	int next = 1;
	struct timespec slow = {0, 2000000};
	time_t deadline = time(NULL) + 40;
	while (next <= N && time(NULL) < deadline) {
		size_t len;
		unsigned src;
		struct tapio_event *ev = queue_peek(q, &len, &src, 200);

		if (!ev)
			continue;
		cr_assert_eq(src, SRC_SYSTEMD);
		cr_assert_eq(ev->type, TYPE_SYSTEMD_JOURNAL);
		cr_assert_eq(ev->fmt, FMT_JSON);
		cr_assert_eq(entry_number(ev), next, "entry %d arrived, %d expected",
			     entry_number(ev), next);
		cr_assert_eq(ev->ts, (1764200000000000ull + (uint64_t)next * 1000) * 1000);
		cr_assert_str_eq(event_meta_get(ev, "unit"), "kubelet.service");
		cr_assert_str_eq(event_meta_get(ev, "id"), event_meta_get(ev, "cursor"));
		cr_assert_neq(ev->ack, 0);
		snprintf(acked, sizeof(acked), "%s", event_meta_get(ev, "cursor"));
		next++;
		ack_settle_src(src, ev->ack); /* the sink has it */
		queue_release(q, ev);
		nanosleep(&slow, NULL); /* a slow sink: the queue fills up */
	}
	cr_assert_eq(next, N + 1, "only %d of %d entries arrived", next - 1, N);
	uint64_t retries = 0;
	col->ops->counters(col, get_counter, &retries);
	cr_assert_gt(retries, 0, "the queue never refused: the test did not fill it");
	cr_assert_eq(atomic_load(&col->n.events), N);
	cr_assert_eq(atomic_load(&col->n.dropped), 0);
	cr_assert(collector_healthy(col));

	/* Now nobody reads: the queue fills, and a stop during the retries
	 * leaves the cursor on the last entry the sink acknowledged, not on
	 * the last one that went in. */
	uint64_t before = atomic_load(&col->n.events);
	uint64_t t_written, t_first;
	write_journal(path, N + 1, 40);
	t_written = ms_now();
	/* inotify wakes the idle reader: its backstop poll is IDLE_POLL_MS */
	while (atomic_load(&col->n.events) == before && ms_now() - t_written < 10000)
		usleep(20000);
	t_first = ms_now();
	collector_last_error(col, err, sizeof(err));
	cr_assert_gt(atomic_load(&col->n.events), before,
		     "no entry taken %llu ms after the journal grew (errors %llu, last: %s)",
		     (unsigned long long)(t_first - t_written),
		     (unsigned long long)atomic_load(&col->n.errors), err);
	/* the queue fills; the reader then only retries */
	uint64_t taken, prev;
	do {
		prev = atomic_load(&col->n.events);
		usleep(300000);
		taken = atomic_load(&col->n.events) - before;
	} while (prev - before != taken && ms_now() - t_first < 10000);
	cr_assert_lt(taken, 40, "the queue took every entry: it never filled");
	uint64_t t0 = ms_now();
	collector_stop(col);
	uint64_t stop_ms = ms_now() - t0;
	cr_assert_lt(stop_ms, 5000, "stop took %llu ms", (unsigned long long)stop_ms);

	/* the stored cursor is the cursor of the last acknowledged event */
	char stored[4096], last[4096] = "";
	char cpath[400];
	snprintf(cpath, sizeof(cpath), "%s/systemd.cursor", state);
	read_file(cpath, stored, sizeof(stored));
	size_t len;
	unsigned src;
	struct tapio_event *ev;
	int queued = 0, n = N;
	while ((ev = queue_peek(q, &len, &src, 0))) {
		n = entry_number(ev);
		snprintf(last, sizeof(last), "%s", event_meta_get(ev, "cursor"));
		queued++;
		queue_release(q, ev);
	}
	cr_assert_eq((uint64_t)queued, taken);
	cr_assert_eq(n, N + (int)taken);
	cr_assert_str_neq(stored, last);
	cr_assert_str_eq(stored, acked);
	collector_destroy(col);

	/* a restart goes on with the entry after the acknowledged one: what was
	 * queued and never acknowledged comes again (with the same ids) */
	col = systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	cr_assert_eq(collector_start(col, q), 0);
	next = N + 1;
	deadline = time(NULL) + 20;
	while (next <= N + 40 && time(NULL) < deadline) {
		ev = queue_peek(q, &len, &src, 200);
		if (!ev)
			continue;
		cr_assert_eq(entry_number(ev), next);
		next++;
		ack_settle_src(src, ev->ack);
		queue_release(q, ev);
	}
	cr_assert_eq(next, N + 41);
	collector_stop(col);
	cr_assert_null(queue_peek(q, &len, &src, 300), "an entry arrived twice");
	collector_destroy(col);
	queue_free(q);
}

Test(systemd_collector, missing_dir_unhealthy_and_stops, .init = mktmp, .fini = rmtmp,
     .timeout = 20)
{
	struct tcfg c = base_cfg();
	char missing[300], err[256], last[256];

	snprintf(missing, sizeof(missing), "%s/nope", tmp);
	c.systemd.journal_dir = missing;
	struct collector *col = systemd_collector_new(tenv(&c, SRC_SYSTEMD), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	struct queue *q = queue_new(65536);
	cr_assert_eq(collector_start(col, q), 0);
	for (int i = 0; i < 100 && atomic_load(&col->n.errors) == 0; i++)
		usleep(20000);
	cr_assert_gt(atomic_load(&col->n.errors), 0);
	cr_assert_not(collector_healthy(col));
	collector_last_error(col, last, sizeof(last));
	cr_assert_not_null(strstr(last, missing), "%s", last);
	collector_stop(col);
	collector_destroy(col);
	queue_free(q);
}

/* A whole journal cursor (a legacy file without its newline is trusted only
 * then): every field, ids of 32 hex digits; any cut-short form but one that
 * lost digits of x= is refused. */
Test(systemd_cursor, complete_cursor_and_every_prefix)
{
	static const char full[] = "s=0123456789abcdef0123456789abcdef;i=1a2b;"
				   "b=fedcba9876543210fedcba9876543210;m=3c4d;t=5e6f7a;x=9b8c7d";
	cr_assert(cursor_complete(full));
	size_t xv = strlen(full) - strlen("9b8c7d");
	for (size_t n = 0; n < sizeof(full) - 1; n++) {
		char cut[sizeof(full)];
		memcpy(cut, full, n);
		cut[n] = '\0';
		if (n > xv)
			cr_assert(cursor_complete(cut), "prefix %zu refused", n);
		else
			cr_assert_not(cursor_complete(cut), "prefix %zu accepted: %s", n, cut);
	}
	static const char *const bad[] = {
	    "s=0123456789ABCDEF0123456789abcdef;i=1;b=fedcba9876543210fedcba9876543210;m=3;t=5;x=9",
	    "s=0123456789abcdef0123456789abcde;i=1;b=fedcba9876543210fedcba9876543210;m=3;t=5;x=9",
	    "i=1;s=0123456789abcdef0123456789abcdef;b=fedcba9876543210fedcba9876543210;m=3;t=5;x=9",
	    "s=0123456789abcdef0123456789abcdef;i=1;b=fedcba9876543210fedcba9876543210;m=3;t=5;x="
	    "9;",
	    "s=0123456789abcdef0123456789abcdef;i=;b=fedcba9876543210fedcba9876543210;m=3;t=5;x=9",
	    "s=0123456789abcdef0123456789abcdef;i=1;b=fedcba9876543210fedcba9876543210;m=3;t=5;x="
	    "9 ",
	    "garbage",
	    "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not(cursor_complete(bad[i]), "accepted %s", bad[i]);
}
