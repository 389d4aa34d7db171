// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the CNI collector as a whole: config checks, the
 * availability probe, and drop counting on a full queue (real inotify, real
 * files, a real queue with no consumer). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collectors/cni/cni.h"
#include "collectors/table.h"
#include "core/ack.h"
#include "core/collector.h"
#include "core/config.h"
#include "core/event.h"
#include "core/queue.h"
#include "tests/lib/tmpdir.h"

struct dirs {
	char root[64];
	char log[128], netns[128], cni[128], state[128];
};

static void mkdirs(struct dirs *d)
{
	cr_assert_not_null(tl_mkdtemp(d->root, sizeof(d->root), "cni-unit"));
	snprintf(d->log, sizeof(d->log), "%s/log", d->root);
	snprintf(d->netns, sizeof(d->netns), "%s/netns", d->root);
	snprintf(d->cni, sizeof(d->cni), "%s/cni", d->root);
	snprintf(d->state, sizeof(d->state), "%s/state", d->root);
	cr_assert_eq(mkdir(d->log, 0700), 0);
}

static void rmdirs(struct dirs *d)
{
	cr_assert_eq(tl_rmtree(d->root), 0, "%s: %s", d->root, strerror(errno));
}

/* The agent's options and the collector's, as a constructor gets them. */
struct tcfg {
	struct tapio_config base;
	struct cni_options o;
	struct collector_env env;
};

static const struct collector_env *env_of(struct tcfg *c)
{
	c->env = (struct collector_env){.cfg = &c->base, .opts = &c->o, .source = SRC_CNI};
	return &c->env;
}

static struct tcfg cfg_for(struct dirs *d)
{
	struct tcfg c;
	memset(&c, 0, sizeof(c));
	c.o.log_dirs = d->log;
	c.o.netns_dir = d->netns;
	c.o.state_dir = d->cni;
	c.base.state_dir = d->state;
	c.base.max_event_size = 1 << 20;
	return c;
}

static void bad_config(struct tcfg *c, const char *want)
{
	char err[256] = "";
	errno = 0;
	struct collector *col = cni_collector_new(env_of(c), err, sizeof(err));
	cr_assert_null(col);
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(err, want), "error '%s' should mention '%s'", err, want);
}

Test(cni_collector, bad_config_names_the_flag)
{
	struct dirs d;
	mkdirs(&d);
	struct tcfg c = cfg_for(&d);
	c.o.log_dirs = "/ok, relative/dir";
	bad_config(&c, "--cni-log-dirs: 'relative/dir' is not an absolute path");
	c.o.log_dirs = "/var/log/../etc";
	bad_config(&c, "--cni-log-dirs");
	c = cfg_for(&d);
	c.o.netns_dir = "netns";
	bad_config(&c, "--netns-dir");
	c = cfg_for(&d);
	c.o.state_dir = "/a//b";
	bad_config(&c, "--cni-state-dir");
	c = cfg_for(&d);
	c.base.max_event_size = 100;
	bad_config(&c, "--max-event-size");
	rmdirs(&d);
}

Test(cni_collector, defaults_and_lists)
{
	struct tcfg c;
	memset(&c, 0, sizeof(c));
	char err[256] = "";
	struct collector *col = cni_collector_new(env_of(&c), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	cr_assert_str_eq(collector_name(col), "cni");
	cr_assert(!collector_healthy(col)); /* not started */
	collector_stop(col);		    /* safe unstarted */
	collector_destroy(col);
	c.o.log_dirs = " /a/ , ,/b,/a "; /* trimmed, empty items and duplicates left out */
	col = cni_collector_new(env_of(&c), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	collector_destroy(col);
	collector_destroy(NULL);
}

Test(cni_collector, available)
{
	struct dirs d;
	mkdirs(&d);
	struct tcfg c = cfg_for(&d);
	c.o.log_dirs = "/nonexistent/tapio/a";
	c.o.netns_dir = "/nonexistent/tapio/b";
	c.o.state_dir = "/nonexistent/tapio/c";
	cr_assert(!cni_collector_available(env_of(&c)));
	c.o.log_dirs = d.log;
	cr_assert(cni_collector_available(env_of(&c)));
	c.o.log_dirs = "/nonexistent/tapio/a";
	c.o.state_dir = d.root;
	cr_assert(cni_collector_available(env_of(&c)));
	rmdirs(&d);
}

static uint64_t counter(_Atomic uint64_t *v)
{
	return atomic_load(v);
}

Test(cni_collector, full_queue_loses_nothing_and_offsets_follow_the_sink)
{
	struct dirs d;
	mkdirs(&d);
	struct tcfg c = cfg_for(&d);
	char err[256] = "";
	struct collector *col = cni_collector_new(env_of(&c), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	struct queue *q = queue_new(4096); /* the smallest queue, no consumer yet */
	cr_assert_not_null(q);
	cr_assert_eq(queue_set_wait(q, SRC_CNI, 0), 0);
	cr_assert_eq(collector_start(col, q), 0);
	/* wait for the collector to have watched the dir */
	for (int i = 0; i < 200 && !collector_healthy(col); i++)
		usleep(10000);
	cr_assert(collector_healthy(col));

	char path[256];
	snprintf(path, sizeof(path), "%s/cni.log", d.log);
	FILE *f = fopen(path, "a");
	cr_assert_not_null(f);
	const int n = 200;
	for (int i = 0; i < n; i++)
		fprintf(
		    f,
		    "line %03d ContainerID=abc padding padding padding padding padding padding\n",
		    i);
	fclose(f);
	/* the queue fills; refused lines are offered again, never dropped */
	for (int i = 0; i < 200 && counter(&col->n.refetched) == 0; i++)
		usleep(10000);
	cr_assert_gt(counter(&col->n.refetched), 0, "the queue never refused a line");
	cr_assert_lt(counter(&col->n.events), (uint64_t)n);
	cr_assert_eq(counter(&col->n.dropped), 0);

	/* a sink that settles what it takes: every line arrives once, in order,
	 * with its stable id (device, inode, offset and hash of the line) */
	struct stat sst;
	cr_assert_eq(stat(path, &sst), 0);
	uint64_t off = 0;
	for (int i = 0; i < n; i++) {
		size_t len;
		unsigned src;
		struct tapio_event *e = queue_peek(q, &len, &src, 3000);
		cr_assert_not_null(e, "line %d never arrived", i);
		cr_assert_eq(src, SRC_CNI);
		cr_assert_eq(e->type, TYPE_CNI_LOG);
		cr_assert_eq(e->fmt, FMT_TEXT);
		char want[80];
		snprintf(want, sizeof(want), "line %03d", i);
		cr_assert_eq(memcmp(event_data(e), want, strlen(want)), 0);
		cr_assert_str_eq(event_meta_get(e, "container_id"), "abc");
		cr_assert_str_eq(event_meta_get(e, "file"), path);
		uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 of the line */
		for (size_t k = 0; k < e->data_len; k++)
			h = (h ^ (unsigned char)((const char *)event_data(e))[k]) *
			    0x100000001b3ull;
		snprintf(want, sizeof(want), "cni-%lu-%lu-%lu-%016llx", (unsigned long)sst.st_dev,
			 (unsigned long)sst.st_ino, (unsigned long)off, (unsigned long long)h);
		cr_assert_str_eq(event_meta_get(e, "id"), want);
		cr_assert_neq(e->ack, 0);
		off += e->data_len + 1;
		if (i < n - 10) /* the last 10 are never acknowledged */
			ack_settle_src(src, e->ack);
		queue_release(q, e);
	}
	/* the collector counts an event just after the queue has it */
	for (int i = 0; i < 200 && counter(&col->n.events) < (uint64_t)n; i++)
		usleep(10000);
	cr_assert_eq(counter(&col->n.events), (uint64_t)n);
	cr_assert_eq(counter(&col->n.dropped), 0);
	collector_stop(col);

	/* the offset saved is the end of the last acknowledged line, not of
	 * the last line read */
	char st_path[256], buf[1024];
	snprintf(st_path, sizeof(st_path), "%s/cni-offsets", d.state);
	f = fopen(st_path, "r");
	cr_assert_not_null(f);
	size_t got = fread(buf, 1, sizeof(buf) - 1, f);
	buf[got] = '\0';
	fclose(f);
	uint64_t line_len = (uint64_t)sst.st_size / (uint64_t)n;
	char want[64];
	snprintf(want, sizeof(want), " %lu %lu ", (unsigned long)sst.st_ino,
		 (unsigned long)(line_len * (uint64_t)(n - 10)));
	cr_assert(strstr(buf, want), "offsets file: %s (want '%s')", buf, want);

	collector_destroy(col);
	queue_free(q);
	rmdirs(&d);
}

Test(cni_collector, unwritable_state_dir_keeps_events_flowing)
{
	struct dirs d;
	mkdirs(&d);
	struct tcfg c = cfg_for(&d);
	c.base.state_dir = "/dev/null/tapio-state"; /* cannot be made */
	char err[256] = "";
	struct collector *col = cni_collector_new(env_of(&c), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	struct queue *q = queue_new(1 << 16);
	cr_assert_eq(collector_start(col, q), 0);
	char last[256] = "";
	for (int i = 0; i < 300 && !strstr(last, "cannot save"); i++) {
		usleep(10000);
		collector_last_error(col, last, sizeof(last));
	}
	cr_assert(strstr(last, "/dev/null/tapio-state: cannot save the resume state"), "%s", last);
	cr_assert(!collector_healthy(col));
	char path[256];
	snprintf(path, sizeof(path), "%s/a.log", d.log);
	FILE *f = fopen(path, "a");
	fputs("still emitted\n", f);
	fclose(f);
	size_t len;
	unsigned src;
	struct tapio_event *e = queue_peek(q, &len, &src, 5000);
	cr_assert_not_null(e);
	cr_assert_eq(e->data_len, 13);
	cr_assert_eq(memcmp(event_data(e), "still emitted", 13), 0);
	queue_release(q, e);
	collector_stop(col);
	collector_destroy(col);
	queue_free(q);
	rmdirs(&d);
}

/* An offsets file that is garbage, empty or cut short is named in the
 * collector's error, and the files it does not vouch for are read from the
 * start: duplicates, never a silent skip. */
static void damaged_offsets(const char *what, const char *content, bool with_entry,
			    const char *want_err)
{
	struct dirs d;
	mkdirs(&d);
	cr_assert_eq(mkdir(d.state, 0700), 0);
	char path[256], st_path[256];
	snprintf(path, sizeof(path), "%s/cni.log", d.log);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("a1\na2\na3\n", f);
	fclose(f);
	struct stat lst;
	cr_assert_eq(stat(path, &lst), 0);
	snprintf(st_path, sizeof(st_path), "%s/cni-offsets", d.state);
	f = fopen(st_path, "w");
	cr_assert_not_null(f);
	fputs(content, f);
	if (with_entry) /* an entry for the log file, cut in the middle */
		fprintf(f, "%lu %lu 6 6 00", (unsigned long)lst.st_dev, (unsigned long)lst.st_ino);
	fclose(f);

	struct tcfg c = cfg_for(&d);
	char err[256] = "";
	struct collector *col = cni_collector_new(env_of(&c), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	struct queue *q = queue_new(1 << 16);
	cr_assert_not_null(q);
	cr_assert_eq(collector_start(col, q), 0);
	for (int i = 0; i < 3; i++) {
		size_t len;
		unsigned src;
		struct tapio_event *e = queue_peek(q, &len, &src, 3000);
		cr_assert_not_null(e, "%s: line %d never arrived", what, i);
		char want[8];
		snprintf(want, sizeof(want), "a%d", i + 1);
		cr_assert_eq(e->data_len, 2, "%s", what);
		cr_assert_eq(memcmp(event_data(e), want, 2), 0, "%s: line %d", what, i);
		ack_settle_src(src, e->ack);
		queue_release(q, e);
	}
	char last[512];
	collector_last_error(col, last, sizeof(last));
	cr_assert(strstr(last, st_path), "%s: error '%s' should name %s", what, last, st_path);
	cr_assert(strstr(last, want_err), "%s: error '%s' should say '%s'", what, last, want_err);
	cr_assert_geq(atomic_load(&col->n.parse_errors), 1, "%s", what);
	collector_stop(col);
	collector_destroy(col);
	queue_free(q);
	rmdirs(&d);
}

Test(cni_collector, damaged_offsets_file_is_named_and_files_read_from_the_start)
{
	damaged_offsets("garbage", "\x01\xff garbage\n1 2 3\n", false,
			"not an offsets file; log files are read from the start");
	damaged_offsets("empty", "", false, "not an offsets file");
	damaged_offsets("cut short", "tapio-cni-offsets 2\n", true, "1 bad lines skipped");
	damaged_offsets("version 1, cut short", "tapio-cni-offsets 1\n", true,
			"1 bad lines skipped");
}
