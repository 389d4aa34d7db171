// SPDX-License-Identifier: Apache-2.0
/* Floods a running agent's BPF ring buffer (found through /proc/PID/fdinfo)
 * with records from flood.bpf.c via bpf_prog_test_run, for a given time.
 * Prints one JSON line: records submitted, refused by the full ring, and the
 * wall time. Used by bench/overhead.py (`make bench-overhead`).
 *
 *   flood PID SECONDS [RECORDS_PER_RUN [MAX_RECORDS]]
 *
 * Stops after SECONDS or once MAX_RECORDS were submitted (0 = no bound).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
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

/* The id of the first ring buffer map among pid's descriptors, or 0. */
static unsigned ring_id_of(int pid)
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
		if (type == BPF_MAP_TYPE_RINGBUF && id)
			found = id;
	}
	closedir(d);
	return found;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: flood PID SECONDS [RECORDS_PER_RUN [MAX_RECORDS]]\n");
		return 2;
	}
	int pid = atoi(argv[1]);
	double secs = atof(argv[2]);
	unsigned per_run = argc > 3 ? (unsigned)atoi(argv[3]) : 1024;
	unsigned long long max = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
	unsigned id = ring_id_of(pid);
	if (!id) {
		fprintf(stderr, "flood: no BPF ring buffer among the descriptors of pid %d\n", pid);
		return 1;
	}
	int ring = bpf_map_get_fd_by_id(id);
	struct bpf_map_info info = {0};
	__u32 ilen = sizeof(info);
	if (ring < 0 || bpf_obj_get_info_by_fd(ring, &info, &ilen)) {
		fprintf(stderr, "flood: ring buffer map %u: %s\n", id, strerror(errno));
		return 1;
	}
	struct flood *skel = flood__open();
	if (!skel) {
		fprintf(stderr, "flood: open: %s\n", strerror(errno));
		return 1;
	}
	/* The agent's wake-up threshold (kernel_ringbuf_wakeup(): an eighth of
	 * the ring, at most 256 KiB), so the flood wakes it as its programs do. */
	__u64 t = info.max_entries / 8;
	skel->rodata->cfg_wakeup_bytes = t > (256u << 10) ? (256u << 10) : t;
	int err = bpf_map__set_max_entries(skel->maps.events, info.max_entries);
	if (!err)
		err = bpf_map__reuse_fd(skel->maps.events, ring);
	if (!err)
		err = flood__load(skel);
	if (err) {
		fprintf(stderr, "flood: load: %s\n", strerror(-err));
		return 1;
	}
	int prog = bpf_program__fd(skel->progs.flood);
	unsigned long long written = 0, refused = 0, runs = 0;
	double t0 = now_s(), t1;
	do {
		struct flood_args a = {.n = per_run};
		if (max && max - written < per_run)
			a.n = (__u32)(max - written);
		/* a syscall program's context is copied back into ctx_in */
		LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = &a, .ctx_size_in = sizeof(a));
		if (bpf_prog_test_run_opts(prog, &o)) {
			fprintf(stderr, "flood: test run: %s\n", strerror(errno));
			return 1;
		}
		written += a.written;
		refused += a.refused;
		runs++;
		t1 = now_s();
	} while (t1 - t0 < secs && (!max || written < max));
	printf("{\"written\":%llu,\"refused\":%llu,\"runs\":%llu,\"seconds\":%.3f,\"ring_bytes\":%"
	       "u}\n",
	       written, refused, runs, t1 - t0, info.max_entries);
	flood__destroy(skel);
	return 0;
}
