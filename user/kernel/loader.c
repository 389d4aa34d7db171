/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel collector's loader: open the embedded skeleton, set the options
 * in rodata, load with a per-program fallback (libbpf's messages name the
 * program that failed), attach. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/internal.h"
#include "util/cgroupfs.h"
#include "util/log.h"
#include "util/strbuf.h"

/* ---- libbpf messages ---- */

/* libbpf prints through one global hook. While a load runs, the hook notes
 * the first program a warning names ("prog 'x': ..."), so the loader knows
 * which one to turn off; messages go to tlog at debug level (libbpf's own
 * debug messages only with TAPIO_LIBBPF_DEBUG=1 in the environment). */
struct load_capture {
	char prog[64];
	char why[128];
};
static __thread struct load_capture *capture;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	static int debug = -1;
	char line[512];
	const char *p, *q;
	size_t n;

	/* libbpf's debug level is a line per CO-RE relocation: only on request. */
	if (debug < 0)
		debug = getenv("TAPIO_LIBBPF_DEBUG") != NULL;
	if (level == LIBBPF_DEBUG && !debug)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	if (capture && level == LIBBPF_WARN && !capture->prog[0] && (p = strstr(line, "prog '")) &&
	    (q = strchr(p + 6, '\'')) && (size_t)(q - (p + 6)) < sizeof(capture->prog)) {
		memcpy(capture->prog, p + 6, q - (p + 6));
		capture->prog[q - (p + 6)] = '\0';
		p = q + 1;
		if (*p == ':')
			p++;
		while (*p == ' ')
			p++;
		snprintf(capture->why, sizeof(capture->why), "%s", p);
	}
	tlog(TLOG_DEBUG, "libbpf", "%s", line);
	return 0;
}

void kernel_libbpf_setup(void)
{
	libbpf_set_print(libbpf_print);
}

static unsigned page_shift(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	unsigned s = 0;

	while (ps > 1) {
		ps >>= 1;
		s++;
	}
	return s ? s : 12;
}

/* Test hook for the fallback path: TAPIO_TEST_BREAK_PROG=<program> makes
 * libbpf look that program's target up as a kernel function (fentry) rather
 * than a tracepoint; there is no such function, so its load fails the way it
 * does on a kernel that lacks the tracepoint. An fentry/fexit program is
 * pointed at a function that does not exist. */
static void break_for_test(struct tapio *skel)
{
	const char *name = getenv("TAPIO_TEST_BREAK_PROG");
	struct bpf_program *p;

	if (!name || !*name)
		return;
	p = bpf_object__find_program_by_name(skel->obj, name);
	if (p && (bpf_program__expected_attach_type(p) == BPF_TRACE_FENTRY ||
		  bpf_program__expected_attach_type(p) == BPF_TRACE_FEXIT))
		bpf_program__set_attach_target(p, 0, "tapio_test_no_such_function");
	else if (p)
		bpf_program__set_expected_attach_type(p, BPF_TRACE_FENTRY);
}

/* The v1 memory hierarchy's id on a v1/hybrid host, else 0. */
static unsigned v1_memory_hierarchy(void)
{
	char mount[256];
	unsigned id = 0;

	return cgroup_v1_find("memory", &id, mount, sizeof(mount)) ? 0 : id;
}

static int open_configured(const struct load_cfg *cfg, uint64_t off, bool sk_storage,
			   struct tapio **out)
{
	struct tapio *skel = tapio__open();
	/* the shared ring, or each CPU's (0: ringbuf_size, one shared ring) */
	uint32_t ring = cfg->ring_size ? cfg->ring_size : cfg->ringbuf_size;
	int err;

	if (!skel)
		return -errno;
	skel->rodata->cfg_event_mask = cfg->types;
	skel->rodata->cfg_tgid = cfg->tgid;
	skel->rodata->cfg_cgroup_id = cfg->cgroup_id;
	skel->rodata->cfg_cgroup_level = cfg->cgroup_level;
	skel->rodata->cfg_containers_only = cfg->containers_only;
	skel->rodata->cfg_all_threads = cfg->all_threads;
	skel->rodata->cfg_page_shift = page_shift();
	skel->rodata->cfg_v1_hierarchy = v1_memory_hierarchy();
	skel->rodata->cfg_wakeup_bytes = kernel_ringbuf_wakeup(ring);
	skel->rodata->cfg_sk_storage = sk_storage;
	skel->rodata->cfg_ring_per_cpu = cfg->ring_per_cpu;
	/* Per-CPU mode: the shared ring is not used (a page); the array gets a
	 * slot per possible CPU (kernel_ringbuf_open() creates the rings: the
	 * kernel does not compare a ring's size with the inner map's). */
	err = bpf_map__set_max_entries(skel->maps.events,
				       cfg->ring_per_cpu ? (uint32_t)sysconf(_SC_PAGESIZE) : ring);
	if (!err && cfg->ring_per_cpu)
		err = bpf_map__set_max_entries(skel->maps.cpu_rings, cfg->ring_ncpu);
	/* With socket-local storage the socks hashes are not used: one entry
	 * each (the LRU is preallocated; 65536 entries take ~100 ms). */
	if (!err && sk_storage)
		err = bpf_map__set_max_entries(skel->maps.socks, 1);
	if (!err && sk_storage)
		err = bpf_map__set_max_entries(skel->maps.closed_socks, 1);
	if (err) {
		tapio__destroy(skel);
		return err;
	}
	for (int i = 0; i < P__N; i++) {
		struct bpf_program *p =
		    bpf_object__find_program_by_name(skel->obj, kernel_progs[i].prog);

		if (!p) {
			tapio__destroy(skel);
			return -ENOENT;
		}
		bpf_program__set_autoload(p, !(off & (1ull << i)));
	}
	break_for_test(skel);
	*out = skel;
	return 0;
}

static int prog_index(const char *name)
{
	for (int i = 0; i < P__N; i++)
		if (!strcmp(kernel_progs[i].prog, name))
			return i;
	return -1;
}

/* One load attempt with the programs in r->off turned off. Returns 0 (r->skel
 * loaded), 1 after a failed load (*rc its error, cap naming the program the
 * failure is about, if any), or a negative errno when the object cannot be
 * opened (err set). */
static int load_once(const struct load_cfg *cfg, struct load_result *r, struct load_capture *cap,
		     int *rc, char *err, size_t errlen)
{
	int e = open_configured(cfg, r->off, r->sk_storage, &r->skel);

	if (e) {
		err_printf(err, errlen, "cannot open the BPF object: %s", strerror(-e));
		return e;
	}
	memset(cap, 0, sizeof(*cap));
	capture = cap;
	*rc = tapio__load(r->skel);
	capture = NULL;
	if (!*rc)
		return 0;
	tapio__destroy(r->skel);
	r->skel = NULL;
	return 1;
}

int kernel_load(const struct load_cfg *cfg, struct load_result *r, char *err, size_t errlen)
{
	struct load_capture cap;

	memset(r, 0, sizeof(*r));
	kernel_plan(cfg, r);
	for (int attempt = 0; attempt <= P__N; attempt++) {
		int idx, rc = 0, st;

		if ((r->off & ((1ull << P__N) - 1)) == (1ull << P__N) - 1) {
			err_printf(err, errlen, "no BPF program can load on this kernel%s",
				   r->failed ? " (see tapio probe)" : "");
			return -ENOENT;
		}
		st = load_once(cfg, r, &cap, &rc, err, errlen);
		if (st <= 0)
			return st;
		/* A failure that names a program turns that one off (EPERM and
		 * EACCES included: the verifier and lockdown answer with them);
		 * one that names none is the object's (maps, privileges). */
		idx = cap.prog[0] ? prog_index(cap.prog) : -1;
		if (idx < 0 && (rc == -EPERM || rc == -EACCES)) {
			err_printf(err, errlen,
				   "not allowed to load BPF programs (%s): run as root or with "
				   "CAP_BPF+CAP_PERFMON",
				   strerror(-rc));
			return -EPERM;
		}
		if (idx < 0 || (r->off & (1ull << idx))) {
			err_printf(err, errlen, "loading the BPF object failed: %s%s%s",
				   strerror(-rc), cap.why[0] ? ": " : "", cap.why);
			return rc;
		}
		r->off |= 1ull << idx;
		r->failed |= 1ull << idx;
		snprintf(r->why[idx], sizeof(r->why[idx]), "%s",
			 cap.why[0] ? cap.why : strerror(-rc));
		/* The oom_control pair is used only together: one that fails
		 * takes the other along (one load attempt less). */
		if (idx == P_OOM_ENTER || idx == P_OOM_EXIT) {
			int other = idx == P_OOM_ENTER ? P_OOM_EXIT : P_OOM_ENTER;

			if (!(r->off & (1ull << other))) {
				r->off |= 1ull << other;
				r->failed |= 1ull << other;
				memcpy(r->why[other], r->why[idx], sizeof(r->why[other]));
			}
		}
	}
	err_printf(err, errlen, "loading the BPF object failed");
	return -EINVAL;
}

/* Runs the task_file iterator once (after the tracepoints are attached, so
 * no socket falls between the two): it records the owners of TCP sockets
 * that are older than tapio. Returns 0 or a negative errno. */
static int seed_sockets(struct tapio *skel)
{
	struct bpf_link *link = bpf_program__attach_iter(skel->progs.tapio_seed_sockets, NULL);
	char buf[256];
	ssize_t n;
	int fd, rc = 0;

	if (!link)
		return -errno;
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n < 0)
		rc = -errno;
	close(fd);
out:
	if (rc)
		tlog(TLOG_DEBUG, "kernel", "seeding socket owners: %s", strerror(-rc));
	bpf_link__destroy(link);
	return rc;
}

/* The oom_control pair (bpf/oom.bpf.c) is used only when both attached;
 * a lone one is detached. Otherwise oom.kill finds the limit by the
 * heuristic of bpf/memcg.bpf.h. */
static void oom_control_pair(struct kcollector *kc, const struct load_result *r)
{
	bool on = kc->links[P_OOM_ENTER] && kc->links[P_OOM_EXIT];
	const char *why = r->failed & (1ull << P_OOM_ENTER)  ? r->why[P_OOM_ENTER]
			  : r->failed & (1ull << P_OOM_EXIT) ? r->why[P_OOM_EXIT]
							     : "attach failed";

	if (!on) {
		for (int i = P_OOM_ENTER; i <= P_OOM_EXIT; i++) {
			bpf_link__destroy(kc->links[i]);
			kc->links[i] = NULL;
		}
		if (kc->links[P_OOM])
			tlog(TLOG_INFO, "kernel",
			     "oom.kill: no fentry/fexit on out_of_memory() here (%s); the "
			     "limit hit is found from the memcgs' usage (limit_source heuristic)",
			     why);
	}
	kc->skel->bss->oom_ctl_on = on;
}

/* Appends a program's name to kc->disabled. */
static void note_disabled(struct kcollector *kc, int i)
{
	size_t n = strlen(kc->disabled);

	snprintf(kc->disabled + n, sizeof(kc->disabled) - n, "%s%s", n ? "," : "",
		 kernel_progs[i].prog);
}

void kernel_attach(struct kcollector *kc, const struct load_result *r, uint64_t types)
{
	for (int i = 0; i < P__N; i++) {
		if (r->failed & (1ull << i) && kernel_progs[i].optional) {
			tlog(TLOG_DEBUG, "kernel", "%s (%s) is not available: %s",
			     kernel_progs[i].prog, kernel_progs[i].tracepoint, r->why[i]);
		} else if (r->failed & (1ull << i)) {
			note_disabled(kc, i);
			tlog(TLOG_DEBUG, "kernel", "%s (%s) turned off: %s", kernel_progs[i].prog,
			     kernel_progs[i].tracepoint, r->why[i]);
		}
	}
	for (int i = 0; i < P__N; i++) {
		struct bpf_program *p;

		if (r->off & (1ull << i) || i == P_SEED)
			continue;
		p = bpf_object__find_program_by_name(kc->skel->obj, kernel_progs[i].prog);
		kc->links[i] = bpf_program__attach(p);
		if (!kc->links[i] && kernel_progs[i].optional) {
			tlog(TLOG_DEBUG, "kernel", "%s (%s) is not available: attach failed: %s",
			     kernel_progs[i].prog, kernel_progs[i].tracepoint, strerror(errno));
		} else if (!kc->links[i]) {
			tlog(TLOG_DEBUG, "kernel", "%s: attach failed: %s", kernel_progs[i].prog,
			     strerror(errno));
			kc->links[i] = NULL;
			note_disabled(kc, i);
		}
	}
	oom_control_pair(kc, r);
	if (!(r->off & (1ull << P_SEED)) && seed_sockets(kc->skel) != 0)
		note_disabled(kc, P_SEED);
	for (int i = 0; i < P__N; i++)
		if (kc->links[i])
			kc->types |= kernel_progs[i].types & types;
}
