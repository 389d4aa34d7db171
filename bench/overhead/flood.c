// SPDX-License-Identifier: Apache-2.0
/* Floods a running agent's BPF ring buffer (found through /proc/PID/fdinfo)
 * with records from flood.bpf.c via bpf_prog_test_run, for a given time.
 * Prints one JSON line: records submitted, refused by the full ring, the
 * wall time and when the first record went in (CLOCK_MONOTONIC seconds).
 * Used by bench/overhead.py (`make bench-overhead`).
 *
 *   flood PID SECONDS [RECORDS_PER_RUN [MAX_RECORDS [CPU [RATE]]]]
 *
 * Stops after SECONDS or once MAX_RECORDS were submitted (0 = no bound).
 * With CPU (>= 0) it runs pinned to that CPU. With RATE (records a second,
 * > 0) each run of RECORDS_PER_RUN starts when the records offered so far
 * (written and refused) are due at that rate: a steady stream that the agent
 * must keep up with, instead of a backlog as fast as the program goes. An agent with per-CPU rings
 * (--ringbuf-per-cpu: its cpu_rings array holds rings) is flooded through
 * that array, into the ring of the CPU the flood runs on.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flood.skel.h"

struct flood_args {
	__u32 n, written, refused, pad;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sleeps until CLOCK_MONOTONIC reaches t (seconds). */
static void wait_until(double t)
{
	struct timespec ts = {.tv_sec = (time_t)t,
			      .tv_nsec = (long)((t - (double)(time_t)t) * 1e9)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* The id of the first map of this type (and name, if not NULL) among pid's
 * descriptors, or 0. */
static unsigned map_id_of(int pid, unsigned want, const char *name)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", pid);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	unsigned found = 0;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		char path[320], line[256];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		unsigned type = 0, id = 0;
		while (fgets(line, sizeof(line), f)) {
			sscanf(line, "map_type: %u", &type);
			sscanf(line, "map_id: %u", &id);
		}
		fclose(f);
		if (type != want || !id)
			continue;
		if (name) {
			struct bpf_map_info info = {0};
			__u32 ilen = sizeof(info);
			int fd = bpf_map_get_fd_by_id(id);
			bool same = fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &ilen) &&
				    !strcmp(info.name, name);
			if (fd >= 0)
				close(fd);
			if (!same)
				continue;
		}
		found = id;
	}
	closedir(d);
	return found;
}

/* The agent's per-CPU rings: the fd of its cpu_rings array when slot 0 holds
 * a ring (*ring_bytes its size), else -1. */
static int per_cpu_rings(int pid, __u32 *ring_bytes)
{
	unsigned id = map_id_of(pid, BPF_MAP_TYPE_ARRAY_OF_MAPS, "cpu_rings");
	__u32 key = 0, inner_id = 0;
	int outer = id ? bpf_map_get_fd_by_id(id) : -1;
	if (outer < 0)
		return -1;
	if (bpf_map_lookup_elem(outer, &key, &inner_id) || !inner_id) {
		close(outer);
		return -1;
	}
	int inner = bpf_map_get_fd_by_id(inner_id);
	struct bpf_map_info info = {0};
	__u32 ilen = sizeof(info);
	if (inner < 0 || bpf_obj_get_info_by_fd(inner, &info, &ilen)) {
		close(outer);
		return -1;
	}
	close(inner);
	*ring_bytes = info.max_entries;
	return outer;
}

struct tally {
	unsigned long long written, refused, runs;
};

/* Runs the flood program (fd prog) RECORDS_PER_RUN at a time from t0 until
 * secs passed or max records were written (0: no bound), each run at its due
 * time when rate > 0. Counts into *n; *t1 is the time after the last run.
 * Returns 0, or 1 when a run failed (said on stderr). */
static int submit(int prog, unsigned per_run, unsigned long long max, double secs, double rate,
		  double t0, struct tally *n, double *t1)
{
	do {
		struct flood_args a = {.n = per_run};
		if (rate > 0)
			wait_until(t0 + (double)(n->written + n->refused) / rate);
		if (max && max - n->written < per_run)
			a.n = (__u32)(max - n->written);
		/* a syscall program's context is copied back into ctx_in */
		LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = &a, .ctx_size_in = sizeof(a));
		if (bpf_prog_test_run_opts(prog, &o)) {
			fprintf(stderr, "flood: test run: %s\n", strerror(errno));
			return 1;
		}
		n->written += a.written;
		n->refused += a.refused;
		n->runs++;
		*t1 = now_s();
	} while (*t1 - t0 < secs && (!max || n->written < max));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr,
			"usage: flood PID SECONDS [RECORDS_PER_RUN [MAX_RECORDS [CPU [RATE]]]]\n");
		return 2;
	}
	int pid = atoi(argv[1]);
	double secs = atof(argv[2]);
	unsigned per_run = argc > 3 ? (unsigned)atoi(argv[3]) : 1024;
	unsigned long long max = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
	int cpu = argc > 5 ? atoi(argv[5]) : -1;
	double rate = argc > 6 ? atof(argv[6]) : 0;
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			fprintf(stderr, "flood: CPU %d: %s\n", cpu, strerror(errno));
			return 1;
		}
	}
	__u32 ring_bytes = 0;
	int rings = per_cpu_rings(pid, &ring_bytes), ring = -1;
	if (rings < 0) {
		unsigned id = map_id_of(pid, BPF_MAP_TYPE_RINGBUF, NULL);
		struct bpf_map_info info = {0};
		__u32 ilen = sizeof(info);
		if (!id) {
			fprintf(stderr,
				"flood: no BPF ring buffer among the descriptors of pid %d\n", pid);
			return 1;
		}
		ring = bpf_map_get_fd_by_id(id);
		if (ring < 0 || bpf_obj_get_info_by_fd(ring, &info, &ilen)) {
			fprintf(stderr, "flood: ring buffer map %u: %s\n", id, strerror(errno));
			return 1;
		}
		ring_bytes = info.max_entries;
	}
	struct flood *skel = flood__open();
	if (!skel) {
		fprintf(stderr, "flood: open: %s\n", strerror(errno));
		return 1;
	}
	/* The agent's wake-up threshold (kernel_ringbuf_wakeup(): an eighth of
	 * one ring, at most 256 KiB), so the flood wakes it as its programs do. */
	__u64 t = ring_bytes / 8;
	skel->rodata->cfg_wakeup_bytes = t > (256u << 10) ? (256u << 10) : t;
	skel->rodata->cfg_ring_per_cpu = rings >= 0;
	int err = 0;
	if (rings >= 0) {
		err = bpf_map__reuse_fd(skel->maps.cpu_rings, rings);
	} else {
		err = bpf_map__set_max_entries(skel->maps.events, ring_bytes);
		if (!err)
			err = bpf_map__reuse_fd(skel->maps.events, ring);
	}
	if (!err)
		err = flood__load(skel);
	if (err) {
		fprintf(stderr, "flood: load: %s\n", strerror(-err));
		return 1;
	}
	struct tally n = {0};
	double t0 = now_s(), t1 = t0;
	if (submit(bpf_program__fd(skel->progs.flood), per_run, max, secs, rate, t0, &n, &t1))
		return 1;
	/* start: CLOCK_MONOTONIC seconds of the first submission, after the
	 * program was loaded, so that a caller times the flood, not the load */
	printf("{\"written\":%llu,\"refused\":%llu,\"runs\":%llu,\"seconds\":%.3f,\"start\":%.6f,"
	       "\"ring_bytes\":%u,\"per_cpu\":%s,\"rate\":%.0f}\n",
	       n.written, n.refused, n.runs, t1 - t0, t0, ring_bytes, rings >= 0 ? "true" : "false",
	       rate);
	flood__destroy(skel);
	return 0;
}
