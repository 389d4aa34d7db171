/* SPDX-License-Identifier: Apache-2.0 */
/* The `kernel` collector (see kernel.h): its ops, counters, constructors,
 * options and -e lists. The program table and checks are in probe.c, the
 * loading in loader.c, the ring buffer thread in ringbuf.c. */
#include "kernel/kernel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "core/event.h"
#include "core/options.h"
#include "kernel/internal.h"
#include "kernel/kernel_decode.h"
#include "util/cgroupfs.h"
#include "util/log.h"
#include "util/strbuf.h"

/* The cgroup2 mount point (first in mountinfo), or "" when none. */
/* The cgroup2 id of a directory: its kernfs id, which is what the BPF side
 * reads from cgroup->kn->id. Relative paths are taken below the cgroup2
 * mount. Returns 0 or a negative errno with err set. */
static int cgroup_path_id(const char *path, char *resolved, size_t rsize, uint64_t *id, char *err,
			  size_t errlen)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h;
	struct statfs sfs;
	int mount_id, fd;

	if (path[0] == '/') {
		snprintf(resolved, rsize, "%s", path);
	} else {
		char mnt[4096];

		if (cgroup2_find_mount(mnt, sizeof(mnt))) {
			err_printf(err, errlen, "--cgroup %s: no cgroup2 file system is mounted",
				   path);
			return -ENOENT;
		}
		if ((size_t)snprintf(resolved, rsize, "%s/%s", mnt, path) >= rsize) {
			err_printf(err, errlen, "--cgroup %s: path too long", path);
			return -ENAMETOOLONG;
		}
	}
	fd = open(resolved, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		err_printf(err, errlen, "--cgroup %s: %s", resolved, strerror(e));
		return -e;
	}
	if (fstatfs(fd, &sfs) != 0 || sfs.f_type != CGROUP2_SUPER_MAGIC) {
		close(fd);
		err_printf(err, errlen, "--cgroup %s: not a cgroup2 directory", resolved);
		return -EINVAL;
	}
	close(fd);
	h.fh.handle_bytes = sizeof(h.id);
	if (name_to_handle_at(AT_FDCWD, resolved, &h.fh, &mount_id, 0) == 0 &&
	    h.fh.handle_bytes == 8) {
		memcpy(id, h.fh.f_handle, sizeof(*id));
	} else {
		struct stat st;

		if (stat(resolved, &st) != 0) {
			int e = errno;

			err_printf(err, errlen, "--cgroup %s: %s", resolved, strerror(e));
			return -e;
		}
		*id = st.st_ino;
	}
	return 0;
}

/* The depth of a cgroup2 directory below its hierarchy's root: how many of
 * its parents are cgroup2 directories too. */
static uint32_t cgroup_path_level(const char *resolved)
{
	char path[4096], *slash;
	uint32_t level = 0;
	struct statfs sfs;

	if (!realpath(resolved, path))
		return 0;
	while ((slash = strrchr(path, '/')) && slash != path) {
		*slash = '\0';
		if (statfs(path, &sfs) != 0 || sfs.f_type != CGROUP2_SUPER_MAGIC)
			break;
		level++;
	}
	return level;
}

/* Adds the thread's wake fd (readable once a stop is asked) to the ring
 * buffer's epoll set, so that a stop ends the long idle poll at once. Its
 * epoll data is ring 0, which libbpf's ring_buffer__poll() then consumes:
 * harmless. Without it, a stop waits for the poll's timeout. */
static void watch_stop_fd(struct kcollector *kc)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
	int efd = ring_buffer__epoll_fd(kc->rb);
	int wfd = worker_wake_fd(&kc->base.thread);

	if (efd >= 0 && wfd >= 0 && epoll_ctl(efd, EPOLL_CTL_ADD, wfd, &ev))
		tlog(TLOG_WARN, "kernel", "stop wake-up: %s (a stop waits up to %d ms)",
		     strerror(errno), KERNEL_IDLE_POLL_MS);
}

static int k_start(struct collector *c, struct queue *q)
{
	struct kcollector *kc = (struct kcollector *)c;
	int64_t b0, r, b1;
	int rc;

	if (kc->base.thread.started)
		return -EALREADY;
	b0 = kernel_clock_ns(CLOCK_BOOTTIME);
	r = kernel_clock_ns(CLOCK_REALTIME);
	b1 = kernel_clock_ns(CLOCK_BOOTTIME);
	kc->boot_to_epoch = r - (b0 + (b1 - b0) / 2);
	kc->q = q;
	kernel_gap_emit(kc);
	rc = collector_spawn(c, kernel_poll_thread);
	if (rc)
		return rc;
	watch_stop_fd(kc);
	atomic_store(&kc->base.healthy, true);
	return 0;
}

static void k_stop(struct collector *c)
{
	struct kcollector *kc = (struct kcollector *)c;

	if (!kc->base.thread.started)
		return;
	/* Detach first, so the final consume sees everything that was produced. */
	for (int i = 0; i < P__N; i++) {
		bpf_link__destroy(kc->links[i]);
		kc->links[i] = NULL;
	}
	collector_join(c);
	atomic_store(&kc->base.healthy, false);
}

static void k_destroy(struct collector *c)
{
	struct kcollector *kc = (struct kcollector *)c;

	if (!kc)
		return;
	kernel_gap_release(kc); /* the sink is closed: no settle comes any more */
	for (int i = 0; i < P__N; i++)
		bpf_link__destroy(kc->links[i]);
	kernel_ringbuf_close(kc);
	tapio__destroy(kc->skel);
	free(kc);
}

static void k_counters(struct collector *c, counter_fn fn, void *ctx)
{
	struct kcollector *kc = (struct kcollector *)c;
	uint64_t *vals = calloc(kc->ncpu > 0 ? kc->ncpu : 1, sizeof(*vals));
	char labels[64];
	int fd = bpf_map__fd(kc->skel->maps.drops);
	int sfd = bpf_map__fd(kc->skel->maps.sheds);

	for (unsigned t = 1; t < EVENT_MAX; t++) {
		uint64_t sum = 0, shed = 0;
		uint32_t key = t;

		snprintf(labels, sizeof(labels), "type=\"%s\"", kernel_type_names[t]);
		if (vals && fd >= 0 && bpf_map_lookup_elem(fd, &key, vals) == 0)
			for (int i = 0; i < kc->ncpu; i++)
				sum += vals[i];
		if (vals && sfd >= 0 && bpf_map_lookup_elem(sfd, &key, vals) == 0)
			for (int i = 0; i < kc->ncpu; i++)
				shed += vals[i];
		/* kernel_drops is every record the kernel side lost: the ring
		 * was full, or it was shed for headroom (kernel_shed, shed.bpf.h). */
		fn(ctx, "kernel_drops", labels, sum + shed);
		fn(ctx, "kernel_shed", labels, shed);
		fn(ctx, "kernel_queue_drops", labels, atomic_load(&kc->qdrops[t]));
		fn(ctx, "kernel_events", labels, atomic_load(&kc->events[t]));
	}
	/* Map updates that failed in the kernel (a full map), per map. */
	static const char *const map_names[MAP_ERR__N] = {
	    [MAP_ERR_SOCKS] = "socks",
	    [MAP_ERR_LISTENERS] = "listeners",
	    [MAP_ERR_CLOSED_SOCKS] = "closed_socks",
	};
	fd = bpf_map__fd(kc->skel->maps.map_errors);
	for (unsigned m = 0; m < MAP_ERR__N; m++) {
		uint64_t sum = 0;
		uint32_t key = m;

		snprintf(labels, sizeof(labels), "map=\"%s\"", map_names[m]);
		if (vals && fd >= 0 && bpf_map_lookup_elem(fd, &key, vals) == 0)
			for (int i = 0; i < kc->ncpu; i++)
				sum += vals[i];
		fn(ctx, "kernel_map_errors", labels, sum);
	}
	free(vals);
	/* Runs of each program the kernel skipped because another BPF program
	 * was running on that CPU (a tracepoint hit from inside one): events
	 * lost without a drop being counted, and socks entries a skipped CLOSE
	 * leaves behind. */
	for (int i = 0; i < P__N; i++) {
		struct bpf_prog_info info;
		uint32_t len = sizeof(info);
		struct bpf_program *p;
		int pfd;

		if (!kc->links[i])
			continue;
		p = bpf_object__find_program_by_name(kc->skel->obj, kernel_progs[i].prog);
		pfd = p ? bpf_program__fd(p) : -1;
		memset(&info, 0, sizeof(info));
		if (pfd < 0 || bpf_obj_get_info_by_fd(pfd, &info, &len) != 0)
			continue;
		snprintf(labels, sizeof(labels), "prog=\"%s\"", kernel_progs[i].prog);
		fn(ctx, "kernel_recursion_misses", labels, info.recursion_misses);
	}
}

static const struct collector_ops kernel_ops = {
    .name = "kernel",
    .liveness = true,
    .start = k_start,
    .stop = k_stop,
    .destroy = k_destroy,
    .counters = k_counters,
};

/* Fills cfg from the options and resolves the cgroup filter into kc.
 * Returns 0 or a negative errno with err set. */
static int load_cfg_from(struct kcollector *kc, const struct kernel_opts *o, struct load_cfg *cfg,
			 char *err, size_t errlen)
{
	int rc;

	cfg->types = (o->type_mask ? o->type_mask : KERNEL_TYPES_ALL) & KERNEL_TYPES_ALL;
	cfg->tgid = o->pid > 0 ? (uint32_t)o->pid : 0;
	cfg->containers_only = o->containers_only;
	cfg->all_threads = o->all_threads;
	cfg->ringbuf_size = o->ringbuf_size ? o->ringbuf_size : KERNEL_DEFAULT_RINGBUF;
	if (!cfg->types) {
		err_printf(err, errlen, "no kernel event type selected");
		return -EINVAL;
	}
	if (cfg->ringbuf_size & (cfg->ringbuf_size - 1) ||
	    cfg->ringbuf_size < (uint32_t)sysconf(_SC_PAGESIZE)) {
		err_printf(err, errlen,
			   "ring buffer size %u is not a power of two of at least the page size",
			   cfg->ringbuf_size);
		return -EINVAL;
	}
	cfg->ring_size = cfg->ringbuf_size;
	if (o->ring_per_cpu) {
		const char *why = "";
		int ncpu = libbpf_num_possible_cpus();

		if (ncpu <= 0) {
			err_printf(err, errlen, "cannot count the possible CPUs: %s",
				   strerror(-ncpu));
			return ncpu ? ncpu : -EINVAL;
		}
		if (kernel_ring_per_cpu_supported(&why)) {
			cfg->ring_per_cpu = true;
			cfg->ring_ncpu = (uint32_t)ncpu;
			cfg->ring_size =
			    kernel_ring_per_cpu_size(cfg->ringbuf_size, (uint32_t)ncpu);
		} else {
			tlog(TLOG_WARN, "kernel",
			     "per-CPU ring buffers not supported by this kernel (%s): using one "
			     "shared ring",
			     why);
		}
	}
	if (o->cgroup_path && o->cgroup_path[0]) {
		rc = cgroup_path_id(o->cgroup_path, kc->cgroup_path, sizeof(kc->cgroup_path),
				    &kc->cgroup_id, err, errlen);
		if (rc)
			return rc;
		cfg->cgroup_id = kc->cgroup_id;
		cfg->cgroup_level = cgroup_path_level(kc->cgroup_path);
	}
	kc->o.cgroup_path = kc->cgroup_path[0] ? kc->cgroup_path : NULL;
	return 0;
}

/* Loads, attaches and opens the ring buffer. Returns 0 or a negative errno
 * with err set. */
static int kc_setup(struct kcollector *kc, const struct kernel_opts *o, struct load_result *r,
		    char *err, size_t errlen)
{
	struct load_cfg cfg = {0};
	int rc = load_cfg_from(kc, o, &cfg, err, errlen);

	if (rc)
		return rc;
	rc = kernel_load(&cfg, r, err, errlen);
	if (rc)
		return rc;
	kc->skel = r->skel;
	/* Before the programs attach: per-CPU rings must be in place. */
	rc = kernel_ringbuf_open(kc, &cfg);
	if (rc) {
		err_printf(err, errlen, "cannot open the BPF ring buffer: %s", strerror(-rc));
		return rc;
	}
	kernel_attach(kc, r, cfg.types);
	kc->ncpu = libbpf_num_possible_cpus();
	return 0;
}

struct collector *kernel_collector_new(const struct kernel_opts *o, char *err, size_t errlen)
{
	struct load_result *r = NULL;
	struct kcollector *kc;
	int64_t t0 = kernel_clock_ns(CLOCK_MONOTONIC);
	int rc;

	rc = kernel_check_env(err, errlen);
	if (rc) {
		errno = -rc;
		return NULL;
	}
	kc = calloc(1, sizeof(*kc));
	r = calloc(1, sizeof(*r));
	if (!kc || !r) {
		free(kc);
		free(r);
		err_printf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	collector_init(&kc->base, &kernel_ops, o->source);
	kc->o = *o;
	rc = kc_setup(kc, o, r, err, errlen);
	free(r);
	if (rc) {
		k_destroy(&kc->base);
		errno = -rc;
		return NULL;
	}
	kc->startup_us = (uint64_t)(kernel_clock_ns(CLOCK_MONOTONIC) - t0) / 1000;
	return &kc->base;
}

const char *kernel_collector_disabled(struct collector *c)
{
	return c ? ((struct kcollector *)c)->disabled : "";
}

uint64_t kernel_collector_types(struct collector *c)
{
	return c ? ((struct kcollector *)c)->types : 0;
}

uint64_t kernel_collector_startup_us(struct collector *c)
{
	return c ? ((struct kcollector *)c)->startup_us : 0;
}

/* ---- -e lists ---- */

int kernel_parse_events(const char *list, uint64_t *mask, char *err, size_t errlen)
{
	uint64_t m = 0;
	const char *p = list ? list : "";

	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		uint64_t got = 0;
		char item[64];

		while (n && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0 || n >= sizeof(item)) {
			err_printf(err, errlen, "-e: %s item '%.*s'", n ? "bad" : "empty",
				   (int)(n > 60 ? 60 : n), p);
			return -EINVAL;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if (!strcmp(item, "all")) {
			got = KERNEL_TYPES_ALL;
		} else {
			for (unsigned t = 1; t < EVENT_MAX; t++) {
				const char *name = kernel_type_names[t];

				if (!strcmp(name, item) ||
				    (!strncmp(name, item, n) && name[n] == '.'))
					got |= 1ull << t;
			}
			/* "oom" is oom.kill; also accept the type prefix "oom.kill". */
		}
		if (!got) {
			err_printf(
			    err, errlen,
			    "-e: unknown event type '%s' (types: process.exec, process.fork, "
			    "process.exit, tcp.connect, tcp.accept, tcp.close, tcp.retransmit, "
			    "tcp.reset, tcp.listen, cgroup.mkdir, cgroup.rmdir, cgroup.attach, "
			    "oom.kill, or a "
			    "prefix such as tcp)",
			    item);
			return -EINVAL;
		}
		m |= got;
		p += (end ? (size_t)(end - p) + 1 : strlen(p));
		if (end && !*p) {
			err_printf(err, errlen, "-e: empty item at the end of '%s'", list);
			return -EINVAL;
		}
	}
	if (!m) {
		err_printf(err, errlen, "-e: no event types given");
		return -EINVAL;
	}
	*mask = m;
	return 0;
}

/* ---- the agent's options and the table's entry points ---- */

#define KO(n, t, f, d, h) OPT_ENTRY(struct kernel_options, n, t, f, d, h)

static const struct opt kernel_opt_table[] = {
    KO("events", OPT_STR, events, "", "kernel event types or prefixes, empty = all"),
    KO("ringbuf-size", OPT_SIZE, ringbuf_size, "8M", "BPF ring buffer size, a power of two"),
    KO("ringbuf-per-cpu", OPT_BOOL, ringbuf_per_cpu, "false",
       "a ring buffer per CPU, ringbuf-size split among them"),
    KO("containers", OPT_BOOL, containers_only, "false", "kernel events from containers only"),
    KO("all-threads", OPT_BOOL, all_threads, "false", "process.exit for every thread"),
};

static int kernel_options_check(const void *p, char *err, size_t errlen)
{
	const struct kernel_options *o = p;
	uint64_t rb = o->ringbuf_size, mask;
	if (rb < 4096 || rb > (1ull << 30) || (rb & (rb - 1))) {
		snprintf(err, errlen,
			 "ringbuf-size: %" PRIu64 " must be a power of two from 4K to 1G", rb);
		return -EINVAL;
	}
	char why[256];
	if (o->events[0] && kernel_parse_events(o->events, &mask, why, sizeof(why))) {
		snprintf(err, errlen, "events: %s", why);
		return -EINVAL;
	}
	return 0;
}

const struct opt_group kernel_options_group =
    OPT_GROUP("kernel", struct kernel_options, kernel_opt_table, kernel_options_check);

struct collector *kernel_collector_create(const struct collector_env *env, char *err, size_t errlen)
{
	const struct kernel_options *ko = env->opts;
	struct kernel_opts o = {
	    .containers_only = ko->containers_only,
	    .all_threads = ko->all_threads,
	    .ringbuf_size = (uint32_t)ko->ringbuf_size,
	    .ring_per_cpu = ko->ringbuf_per_cpu,
	    .source = env->source,
	    .hooks = env->hooks,
	};
	if (ko->events[0] && kernel_parse_events(ko->events, &o.type_mask, err, errlen)) {
		errno = EINVAL;
		return NULL;
	}
	return kernel_collector_new(&o, err, errlen);
}

bool kernel_collector_present(const struct collector_env *env)
{
	(void)env;
	return kernel_collector_available();
}
