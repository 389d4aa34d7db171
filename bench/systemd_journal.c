/* SPDX-License-Identifier: Apache-2.0 */
/* systemd collector throughput:
 * 1. journal_entry_json() on a typical kubelet entry (13 fields);
 * 2. the collector reading a journal file written by systemd-journal-remote
 *    into the queue (--journal-since head), entries per second end to end;
 * 3. a walk of the same file alone with sd_journal_next (the corruption walk).
 * Prints one line per measurement. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "collectors/table.h"
#include "core/collector.h"
#include "core/config.h"
#include "core/collector.h"
#include "collectors/systemd/entry.h"
#include "collectors/systemd/systemd.h"
#include "core/config.h"
#include "core/event.h"
#include "core/queue.h"
#include "util/strbuf.h"

#define JOURNAL_REMOTE "/lib/systemd/systemd-journal-remote"

static double secs(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void bench_json(void)
{
	static const char *raw[] = {
	    "__CURSOR=s=5598e81b1f2b4ee18cec5c6cd1f3fcfd;i=82;b=5f0c1a4e2b7d4e10a9c3d2b1e0f9a8b7;m="
	    "4e4710;"
	    "t=64487d2520bd0;x=1a468dd5f5fbd536",
	    "__REALTIME_TIMESTAMP=1764200000004000",
	    "__MONOTONIC_TIMESTAMP=5004000",
	    "_BOOT_ID=5f0c1a4e2b7d4e10a9c3d2b1e0f9a8b7",
	    "_MACHINE_ID=0f1e2d3c4b5a69788796a5b4c3d2e1f0",
	    "_HOSTNAME=node-a",
	    "_SYSTEMD_UNIT=kubelet.service",
	    "_PID=4242",
	    "_COMM=kubelet",
	    "SYSLOG_IDENTIFIER=kubelet",
	    "PRIORITY=6",
	    "_TRANSPORT=stdout",
	    "MESSAGE=I1127 00:00:01.000000    4242 kubelet.go:2437] \"SyncLoop (PLEG): event for "
	    "pod\" "
	    "pod=\"kube-system/coredns-5dd5756b68-abcde\" "
	    "event={\"ID\":\"1234\",\"Type\":\"ContainerStarted\"}",
	};
	enum { N = sizeof(raw) / sizeof(raw[0]), ITER = 500000 };
	struct journal_field f[N];
	struct strbuf sb = STRBUF_INIT;
	struct timespec t0, t1;
	size_t bytes = 0;

	for (size_t i = 0; i < N; i++)
		f[i] = (struct journal_field){raw[i], strlen(raw[i])};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < ITER; i++) {
		sb_reset(&sb);
		if (journal_entry_json(&sb, f, N, 1 << 20, NULL) < 0) {
			fprintf(stderr, "journal_entry_json failed\n");
			exit(1);
		}
		bytes += sb.len;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = secs(&t0, &t1);
	printf("journal_entry_json: %d entries of %d fields in %.3f s: %.0f entries/s, %.1f MB/s "
	       "of JSON\n",
	       ITER, (int)N, s, ITER / s, (double)bytes / s / 1e6);
	sb_free(&sb);
}

static int write_journal(const char *path, int n)
{
	char cmd[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s -o '%s' - 2>/dev/null", JOURNAL_REMOTE, path);
	p = popen(cmd, "w");
	if (!p)
		return -errno;
	for (int i = 1; i <= n; i++)
		fprintf(p,
			"__REALTIME_TIMESTAMP=%llu\n__MONOTONIC_TIMESTAMP=%llu\n"
			"_BOOT_ID=5f0c1a4e2b7d4e10a9c3d2b1e0f9a8b7\n_HOSTNAME=node-a\n"
			"_SYSTEMD_UNIT=%s\n_PID=4242\n_COMM=kubelet\nSYSLOG_IDENTIFIER="
			"kubelet\nPRIORITY=6\n"
			"_TRANSPORT=stdout\nMESSAGE=I1127 kubelet.go:2437] SyncLoop event %d for "
			"pod kube-system/x\n\n",
			1764200000000000ull + (unsigned long long)i * 1000,
			5000000ull + (unsigned long long)i * 1000,
			i % 4 ? "kubelet.service" : "sshd.service", i);
	return pclose(p) == 0 ? 0 : -EIO;
}

static void bench_collector(void)
{
	char dir[] = "/tmp/tapio-bench-journal-XXXXXX", path[128], cmd[160], err[256];
	enum { N = 20000 };
	int want = N - N / 4; /* one in four is sshd.service: filtered out */

	if (access(JOURNAL_REMOTE, X_OK) != 0) {
		printf("collector: skipped, %s is not installed\n", JOURNAL_REMOTE);
		return;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/system.journal", dir);
	if (write_journal(path, N) < 0) {
		fprintf(stderr, "systemd-journal-remote failed\n");
		exit(1);
	}

	struct tapio_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.state_dir = "";
	cfg.max_event_size = 1 << 20;
	struct systemd_options so = {.journal_dir = dir, .journal_since = "head"};
	struct collector_env env = {.cfg = &cfg, .opts = &so, .source = SRC_SYSTEMD};
	struct collector *c = systemd_collector_new(&env, err, sizeof(err));
	struct queue *q = queue_new(16u << 20);
	if (!c || !q) {
		fprintf(stderr, "setup: %s\n", err);
		exit(1);
	}
	queue_set_wait(q, SRC_SYSTEMD, 1000);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (collector_start(c, q)) {
		fprintf(stderr, "start failed\n");
		exit(1);
	}
	int got = 0;
	size_t bytes = 0;
	while (got < want) {
		size_t len;
		unsigned src;
		void *rec = queue_peek(q, &len, &src, 5000);

		if (!rec) {
			fprintf(stderr, "collector: only %d of %d events\n", got, want);
			exit(1);
		}
		bytes += len;
		got++;
		queue_release(q, rec);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	collector_stop(c);
	double s = secs(&t0, &t1);
	printf("collector: %d matching of %d entries read into the queue in %.3f s: %.0f events/s, "
	       "%.1f MB/s\n",
	       got, N, s, got / s, (double)bytes / s / 1e6);
	collector_destroy(c);
	queue_free(q);

	/* the corruption walk over the same file */
	sd_journal *j;
	const char *paths[] = {path, NULL};
	long n = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (sd_journal_open_files(&j, paths, 0) < 0) {
		fprintf(stderr, "sd_journal_open_files failed\n");
		exit(1);
	}
	while (sd_journal_next(j) > 0)
		n++;
	sd_journal_close(j);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = secs(&t0, &t1);
	printf("file walk: %ld entries in %.3f s: %.0f entries/s\n", n, s, n / s);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
}

int main(void)
{
	bench_json();
	bench_collector();
	return 0;
}
