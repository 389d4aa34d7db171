/* SPDX-License-Identifier: Apache-2.0 */
/* The `kernel` collector (see kernel.h): open the embedded skeleton, set the
 * options in rodata, load with a per-program fallback, attach, then a thread
 * that polls the ring buffer and copies each record once into the queue. */
#include "kernel/kernel.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "bpf/events.h"
#include "core/collector.h"
#include "core/options.h"
#include "kernel/kernel_decode.h"
#include "util/log.h"
#include "tapio.skel.h"
#include "util/cgroupfs.h"
#include "util/strbuf.h"

/* The kernel types are the same numbers on both sides of the ring buffer. */
_Static_assert((int)EVENT_PROCESS_EXEC == (int)TYPE_PROCESS_EXEC, "process.exec");
_Static_assert((int)EVENT_PROCESS_FORK == (int)TYPE_PROCESS_FORK, "process.fork");
_Static_assert((int)EVENT_PROCESS_EXIT == (int)TYPE_PROCESS_EXIT, "process.exit");
_Static_assert((int)EVENT_TCP_CONNECT == (int)TYPE_TCP_CONNECT, "tcp.connect");
_Static_assert((int)EVENT_TCP_ACCEPT == (int)TYPE_TCP_ACCEPT, "tcp.accept");
_Static_assert((int)EVENT_TCP_CLOSE == (int)TYPE_TCP_CLOSE, "tcp.close");
_Static_assert((int)EVENT_TCP_RETRANSMIT == (int)TYPE_TCP_RETRANSMIT, "tcp.retransmit");
_Static_assert((int)EVENT_TCP_RESET == (int)TYPE_TCP_RESET, "tcp.reset");
_Static_assert((int)EVENT_CGROUP_MKDIR == (int)TYPE_CGROUP_MKDIR, "cgroup.mkdir");
_Static_assert((int)EVENT_CGROUP_RMDIR == (int)TYPE_CGROUP_RMDIR, "cgroup.rmdir");
_Static_assert((int)EVENT_CGROUP_ATTACH == (int)TYPE_CGROUP_ATTACH, "cgroup.attach");
_Static_assert((int)EVENT_OOM_KILL == (int)TYPE_OOM_KILL, "oom.kill");
_Static_assert((int)EVENT_MAX == (int)TYPE_KERNEL__LAST + 1, "kernel type count");

#define T(x) (1ull << (x))
#define KERNEL_TYPES_ALL (((1ull << EVENT_MAX) - 1) & ~1ull)
#define TCP_TYPES                                                                                  \
	(T(TYPE_TCP_CONNECT) | T(TYPE_TCP_ACCEPT) | T(TYPE_TCP_CLOSE) | T(TYPE_TCP_RETRANSMIT) |     \
	 T(TYPE_TCP_RESET))

enum { P_EXEC, P_FORK, P_EXIT, P_SOCK, P_RETRANS, P_SEND_RST, P_RECV_RST, P_MKDIR, P_RMDIR, P_ATTACH,
       P_OOM, P_OOM_SIGNAL, P_SEED, P__N };

/* .types: what each program produces. inet_sock_set_state also tracks the
 * socket owners that tcp.retransmit and tcp.reset need, so it loads for any
 * tcp type (prog_needed()). */
static const struct kernel_prog_info progs[P__N] = {
	[P_EXEC] = {"tapio_exec", "sched_process_exec", T(TYPE_PROCESS_EXEC), "btf_trace_sched_process_exec", false},
	[P_FORK] = {"tapio_fork", "sched_process_fork", T(TYPE_PROCESS_FORK), "btf_trace_sched_process_fork", false},
	[P_EXIT] = {"tapio_exit", "sched_process_exit", T(TYPE_PROCESS_EXIT), "btf_trace_sched_process_exit", false},
	[P_SOCK] = {"tapio_inet_sock_set_state", "inet_sock_set_state",
		    T(TYPE_TCP_CONNECT) | T(TYPE_TCP_ACCEPT) | T(TYPE_TCP_CLOSE), "btf_trace_inet_sock_set_state", false},
	[P_RETRANS] = {"tapio_tcp_retransmit", "tcp_retransmit_skb", T(TYPE_TCP_RETRANSMIT),
		       "btf_trace_tcp_retransmit_skb", false},
	[P_SEND_RST] = {"tapio_tcp_send_reset", "tcp_send_reset", T(TYPE_TCP_RESET), "btf_trace_tcp_send_reset", false},
	[P_RECV_RST] = {"tapio_tcp_receive_reset", "tcp_receive_reset", T(TYPE_TCP_RESET),
			"btf_trace_tcp_receive_reset", false},
	[P_MKDIR] = {"tapio_cgroup_mkdir", "cgroup_mkdir", T(TYPE_CGROUP_MKDIR), "btf_trace_cgroup_mkdir", false},
	[P_RMDIR] = {"tapio_cgroup_rmdir", "cgroup_rmdir", T(TYPE_CGROUP_RMDIR), "btf_trace_cgroup_rmdir", false},
	[P_ATTACH] = {"tapio_cgroup_attach", "cgroup_attach_task", T(TYPE_CGROUP_ATTACH), "btf_trace_cgroup_attach_task",
		      false},
	[P_OOM] = {"tapio_mark_victim", "mark_victim", T(TYPE_OOM_KILL), "btf_trace_mark_victim", false},
	[P_OOM_SIGNAL] = {"tapio_oom_signal", "signal_generate", T(TYPE_OOM_KILL), "btf_trace_signal_generate", false},
	/* Produces no event: seeds the socket owners of older sockets. */
	[P_SEED] = {"tapio_seed_sockets", "iter/task_file", 0, "bpf_iter__task_file", true},
};

static bool prog_needed(int i, uint64_t types)
{
	return (i == P_SOCK || i == P_SEED ? TCP_TYPES : progs[i].types) & types;
}

const struct kernel_prog_info *kernel_programs(size_t *n)
{
	*n = P__N;
	return progs;
}

#define META_MAX 16

struct kcollector {
	struct collector base; /* first */
	struct kernel_opts o;
	char cgroup_path[4096];
	uint64_t cgroup_id;
	struct tapio *skel;
	struct bpf_link *links[P__N];
	struct ring_buffer *rb;
	struct queue *q;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	int64_t boot_to_epoch; /* add to CLOCK_BOOTTIME ns for epoch ns */
	uint64_t startup_us;
	int ncpu;
	_Atomic uint64_t events[EVENT_MAX];
	_Atomic uint64_t qdrops[EVENT_MAX];
	char disabled[512];
	uint64_t types; /* produced by a running program */
	/* collector thread only */
	struct meta_kv kv[META_MAX];
	char idbuf[24];
	char scratch[2048];
};

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

static void libbpf_setup(void)
{
	libbpf_set_print(libbpf_print);
}

/* ---- checks ---- */

bool kernel_collector_available(void)
{
	return access("/sys/kernel/btf/vmlinux", R_OK) == 0;
}

/* Either CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON (5.8+). */
static bool have_bpf_caps(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2] = {0};

	if (syscall(SYS_capget, &hdr, data) != 0)
		return geteuid() == 0;
#define HAS(cap) (data[(cap) / 32].effective & (1u << ((cap) % 32)))
	return HAS(CAP_SYS_ADMIN) || (HAS(CAP_BPF) && HAS(CAP_PERFMON));
#undef HAS
}


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
			err_printf(err, errlen, "--cgroup %s: no cgroup2 file system is mounted", path);
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
	if (name_to_handle_at(AT_FDCWD, resolved, &h.fh, &mount_id, 0) == 0 && h.fh.handle_bytes == 8) {
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

/* True when this kernel's mark_victim still has the old (int pid) form, so
 * the signal_generate helper is needed (see bpf/oom.bpf.c). */
static bool mark_victim_is_old(const struct btf *vmlinux)
{
	int id;
	const struct btf_type *t;
	const struct btf_member *m;

	if (!vmlinux)
		return false;
	id = btf__find_by_name_kind(vmlinux, "trace_event_raw_mark_victim", BTF_KIND_STRUCT);
	if (id < 0)
		return false;
	t = btf__type_by_id(vmlinux, id);
	m = btf_members(t);
	for (unsigned i = 0; i < btf_vlen(t); i++, m++)
		if (!strcmp(btf__name_by_offset(vmlinux, m->name_off), "total_vm"))
			return false;
	return true;
}

static bool target_exists(const struct btf *vmlinux, const struct kernel_prog_info *p)
{
	if (!vmlinux)
		return true; /* let the load decide */
	return btf__find_by_name_kind(vmlinux, p->btf_type, p->btf_struct ? BTF_KIND_STRUCT : BTF_KIND_TYPEDEF) >= 0;
}

/* ---- loading ---- */

struct load_cfg {
	uint64_t types; /* kernel types wanted */
	uint32_t tgid;
	uint64_t cgroup_id;
	bool containers_only;
	bool all_threads;
	uint32_t ringbuf_size;
};

struct load_result {
	struct tapio *skel;
	uint64_t off;       /* programs not loaded: not wanted or failed */
	uint64_t failed;    /* programs that failed */
	char why[P__N][128]; /* for failed ones */
};

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
 * does on a kernel that lacks the tracepoint. */
static void break_for_test(struct tapio *skel)
{
	const char *name = getenv("TAPIO_TEST_BREAK_PROG");
	struct bpf_program *p;

	if (!name || !*name)
		return;
	p = bpf_object__find_program_by_name(skel->obj, name);
	if (p)
		bpf_program__set_expected_attach_type(p, BPF_TRACE_FENTRY);
}

static int open_configured(const struct load_cfg *cfg, uint64_t off, struct tapio **out)
{
	struct tapio *skel = tapio__open();
	int err;

	if (!skel)
		return -errno;
	skel->rodata->cfg_event_mask = cfg->types;
	skel->rodata->cfg_tgid = cfg->tgid;
	skel->rodata->cfg_cgroup_id = cfg->cgroup_id;
	skel->rodata->cfg_containers_only = cfg->containers_only;
	skel->rodata->cfg_all_threads = cfg->all_threads;
	skel->rodata->cfg_page_shift = page_shift();
	err = bpf_map__set_max_entries(skel->maps.events, cfg->ringbuf_size);
	if (err) {
		tapio__destroy(skel);
		return err;
	}
	for (int i = 0; i < P__N; i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(skel->obj, progs[i].prog);

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
		if (!strcmp(progs[i].prog, name))
			return i;
	return -1;
}

/* Loads the wanted programs; one that fails is turned off and the load is
 * tried again without it. Returns 0 (r->skel loaded; r->failed says which
 * were turned off) or a negative errno with err set. */
static int load_with_fallback(const struct load_cfg *cfg, struct load_result *r, char *err, size_t errlen)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	bool old_oom = mark_victim_is_old(vmlinux);
	struct load_capture cap;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	for (int i = 0; i < P__N; i++) {
		if (!prog_needed(i, cfg->types) || (i == P_OOM_SIGNAL && !old_oom)) {
			r->off |= 1ull << i;
		} else if (!target_exists(vmlinux, &progs[i])) {
			r->off |= 1ull << i;
			r->failed |= 1ull << i;
			snprintf(r->why[i], sizeof(r->why[i]), "%s is not in this kernel (no BTF type %s)",
				 progs[i].tracepoint, progs[i].btf_type);
		}
	}
	btf__free(vmlinux);

	for (int attempt = 0; attempt <= P__N; attempt++) {
		int idx;

		if ((r->off & ((1ull << P__N) - 1)) == (1ull << P__N) - 1) {
			err_printf(err, errlen, "no BPF program can load on this kernel%s",
				r->failed ? " (see tapio probe)" : "");
			return -ENOENT;
		}
		rc = open_configured(cfg, r->off, &r->skel);
		if (rc) {
			err_printf(err, errlen, "cannot open the BPF object: %s", strerror(-rc));
			return rc;
		}
		memset(&cap, 0, sizeof(cap));
		capture = &cap;
		rc = tapio__load(r->skel);
		capture = NULL;
		if (!rc)
			return 0;
		tapio__destroy(r->skel);
		r->skel = NULL;
		/* A failure that names a program turns that one off (EPERM and
		 * EACCES included: the verifier and lockdown answer with them);
		 * one that names none is the object's (maps, privileges). */
		idx = cap.prog[0] ? prog_index(cap.prog) : -1;
		if (idx < 0 && (rc == -EPERM || rc == -EACCES)) {
			err_printf(err, errlen, "not allowed to load BPF programs (%s): run as root or with CAP_BPF+CAP_PERFMON",
				strerror(-rc));
			return -EPERM;
		}
		if (idx < 0 || (r->off & (1ull << idx))) {
			err_printf(err, errlen, "loading the BPF object failed: %s%s%s", strerror(-rc),
				cap.why[0] ? ": " : "", cap.why);
			return rc;
		}
		r->off |= 1ull << idx;
		r->failed |= 1ull << idx;
		snprintf(r->why[idx], sizeof(r->why[idx]), "%s", cap.why[0] ? cap.why : strerror(-rc));
	}
	err_printf(err, errlen, "loading the BPF object failed");
	return -EINVAL;
}

static int check_env(char *err, size_t errlen)
{
	if (!kernel_collector_available()) {
		err_printf(err, errlen, "this kernel has no BTF (/sys/kernel/btf/vmlinux): tapio needs 5.8+ built with CONFIG_DEBUG_INFO_BTF=y");
		return -ENOTSUP;
	}
	if (!have_bpf_caps()) {
		err_printf(err, errlen, "not allowed to load BPF programs: run as root (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)");
		return -EPERM;
	}
	libbpf_setup();
	return 0;
}

int kernel_probe_programs(bool *ok, char (*why)[128], char *err, size_t errlen)
{
	struct load_cfg cfg = {.types = KERNEL_TYPES_ALL, .ringbuf_size = 4096 * 16};
	struct load_result *r;
	int rc = check_env(err, errlen);

	if (rc)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	/* Pretend both mark_victim forms are wanted, so the probe reports on
	 * what this kernel would load. */
	rc = load_with_fallback(&cfg, r, err, errlen);
	if (rc && rc != -ENOENT) {
		free(r);
		return rc;
	}
	for (int i = 0; i < P__N; i++) {
		ok[i] = !(r->off & (1ull << i));
		snprintf(why[i], 128, "%s",
			 r->failed & (1ull << i) ? r->why[i] : ok[i] ? "" : "not needed on this kernel");
	}
	tapio__destroy(r->skel);
	free(r);
	return 0;
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

/* ---- the ring buffer -> queue path ---- */

static int on_sample(void *ctx, void *data, size_t size)
{
	struct kcollector *kc = ctx;
	const struct event_header *h = data;
	struct tapio_event *ev;
	size_t used, nkv = 0;
	uint64_t cgid;
	unsigned type;

	used = kevent_used_len(data, size);
	if (!used) {
		atomic_fetch_add_explicit(&kc->base.n.parse_errors, 1, memory_order_relaxed);
		return 0;
	}
	type = h->type;
	cgid = h->cgroup_id;
	snprintf(kc->idbuf, sizeof(kc->idbuf), "%llu", (unsigned long long)cgid);
	kc->kv[nkv++] = (struct meta_kv){"cgroup_id", kc->idbuf};
	const struct collector_hooks *hk = kc->o.hooks;
	if (hk && hk->cgroup_meta && cgid)
		nkv += hk->cgroup_meta(hk->ctx, cgid, kc->kv + nkv, META_MAX - nkv, kc->scratch,
					 sizeof(kc->scratch));
	ev = event_reserve(kc->q, kc->o.source, type, FMT_STRUCT, (uint64_t)((int64_t)h->ts + kc->boot_to_epoch),
			   kc->kv, nkv, used);
	if (!ev) {
		atomic_fetch_add_explicit(&kc->qdrops[type], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&kc->base.n.dropped, 1, memory_order_relaxed);
	} else {
		memcpy(event_data(ev), data, used);
		event_commit(kc->q, ev);
		atomic_fetch_add_explicit(&kc->events[type], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&kc->base.n.events, 1, memory_order_relaxed);
	}
	if (type == EVENT_CGROUP_RMDIR && hk && hk->cgroup_removed) {
		const struct cgroup_event *ce = data;

		if (ce->hierarchy_id == 0)
			hk->cgroup_removed(hk->ctx, ce->id);
	}
	return 0;
}

static void *poll_thread(void *arg)
{
	struct kcollector *kc = arg;

	while (!atomic_load(&kc->stop)) {
		int n = ring_buffer__poll(kc->rb, 100);

		if (n < 0 && n != -EINTR) {
			collector_error(&kc->base, "ring buffer poll: %s", strerror(-n));
			atomic_store(&kc->base.healthy, false);
			atomic_fetch_add_explicit(&kc->base.n.errors, 1, memory_order_relaxed);
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	/* What the programs wrote before they were stopped. */
	ring_buffer__consume(kc->rb);
	return NULL;
}

static int64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int k_start(struct collector *c, struct queue *q)
{
	struct kcollector *kc = (struct kcollector *)c;
	int64_t b0, r, b1;
	int rc;

	if (kc->started)
		return -EALREADY;
	b0 = clock_ns(CLOCK_BOOTTIME);
	r = clock_ns(CLOCK_REALTIME);
	b1 = clock_ns(CLOCK_BOOTTIME);
	kc->boot_to_epoch = r - (b0 + (b1 - b0) / 2);
	kc->q = q;
	atomic_store(&kc->stop, false);
	rc = pthread_create(&kc->thread, NULL, poll_thread, kc);
	if (rc)
		return -rc;
	kc->started = true;
	atomic_store(&kc->base.healthy, true);
	return 0;
}

static void k_stop(struct collector *c)
{
	struct kcollector *kc = (struct kcollector *)c;

	if (!kc->started)
		return;
	/* Detach first, so the final consume sees everything that was produced. */
	for (int i = 0; i < P__N; i++) {
		bpf_link__destroy(kc->links[i]);
		kc->links[i] = NULL;
	}
	atomic_store(&kc->stop, true);
	pthread_join(kc->thread, NULL);
	kc->started = false;
	atomic_store(&kc->base.healthy, false);
}

static void k_destroy(struct collector *c)
{
	struct kcollector *kc = (struct kcollector *)c;

	if (!kc)
		return;
	ring_buffer__free(kc->rb);
	for (int i = 0; i < P__N; i++)
		bpf_link__destroy(kc->links[i]);
	tapio__destroy(kc->skel);
	free(kc);
}

static void k_counters(struct collector *c, counter_fn fn, void *ctx)
{
	struct kcollector *kc = (struct kcollector *)c;
	uint64_t *vals = calloc(kc->ncpu > 0 ? kc->ncpu : 1, sizeof(*vals));
	char labels[64];
	int fd = bpf_map__fd(kc->skel->maps.drops);

	for (unsigned t = 1; t < EVENT_MAX; t++) {
		uint64_t sum = 0;
		uint32_t key = t;

		snprintf(labels, sizeof(labels), "type=\"%s\"", kernel_type_names[t]);
		if (vals && fd >= 0 && bpf_map_lookup_elem(fd, &key, vals) == 0)
			for (int i = 0; i < kc->ncpu; i++)
				sum += vals[i];
		fn(ctx, "kernel_drops", labels, sum);
		fn(ctx, "kernel_queue_drops", labels, atomic_load(&kc->qdrops[t]));
		fn(ctx, "kernel_events", labels, atomic_load(&kc->events[t]));
	}
	free(vals);
}

static const struct collector_ops kernel_ops = {
	.name = "kernel",
	.liveness = true,
	.start = k_start,
	.stop = k_stop,
	.destroy = k_destroy,
	.counters = k_counters,
};

struct collector *kernel_collector_new(const struct kernel_opts *o, char *err, size_t errlen)
{
	struct load_cfg cfg = {0};
	struct load_result *r = NULL;
	struct kcollector *kc;
	int64_t t0 = clock_ns(CLOCK_MONOTONIC);
	int rc;

	rc = check_env(err, errlen);
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
	cfg.types = (o->type_mask ? o->type_mask : KERNEL_TYPES_ALL) & KERNEL_TYPES_ALL;
	cfg.tgid = o->pid > 0 ? (uint32_t)o->pid : 0;
	cfg.containers_only = o->containers_only;
	cfg.all_threads = o->all_threads;
	cfg.ringbuf_size = o->ringbuf_size ? o->ringbuf_size : KERNEL_DEFAULT_RINGBUF;
	if (!cfg.types) {
		err_printf(err, errlen, "no kernel event type selected");
		rc = -EINVAL;
		goto fail;
	}
	if (cfg.ringbuf_size & (cfg.ringbuf_size - 1) || cfg.ringbuf_size < (uint32_t)sysconf(_SC_PAGESIZE)) {
		err_printf(err, errlen, "ring buffer size %u is not a power of two of at least the page size",
			cfg.ringbuf_size);
		rc = -EINVAL;
		goto fail;
	}
	if (o->cgroup_path && o->cgroup_path[0]) {
		rc = cgroup_path_id(o->cgroup_path, kc->cgroup_path, sizeof(kc->cgroup_path), &kc->cgroup_id, err,
				    errlen);
		if (rc)
			goto fail;
		cfg.cgroup_id = kc->cgroup_id;
	}
	kc->o.cgroup_path = kc->cgroup_path[0] ? kc->cgroup_path : NULL;

	rc = load_with_fallback(&cfg, r, err, errlen);
	if (rc)
		goto fail;
	kc->skel = r->skel;
	for (int i = 0; i < P__N; i++) {
		if (r->failed & (1ull << i)) {
			size_t n = strlen(kc->disabled);

			snprintf(kc->disabled + n, sizeof(kc->disabled) - n, "%s%s", n ? "," : "", progs[i].prog);
			tlog(TLOG_DEBUG, "kernel", "%s (%s) turned off: %s", progs[i].prog, progs[i].tracepoint, r->why[i]);
		}
	}
	for (int i = 0; i < P__N; i++) {
		struct bpf_program *p;

		if (r->off & (1ull << i) || i == P_SEED)
			continue;
		p = bpf_object__find_program_by_name(kc->skel->obj, progs[i].prog);
		kc->links[i] = bpf_program__attach(p);
		if (!kc->links[i]) {
			size_t n = strlen(kc->disabled);

			tlog(TLOG_DEBUG, "kernel", "%s: attach failed: %s", progs[i].prog, strerror(errno));
			kc->links[i] = NULL;
			snprintf(kc->disabled + n, sizeof(kc->disabled) - n, "%s%s", n ? "," : "", progs[i].prog);
		}
	}
	if (!(r->off & (1ull << P_SEED)) && seed_sockets(kc->skel) != 0) {
		size_t n = strlen(kc->disabled);

		snprintf(kc->disabled + n, sizeof(kc->disabled) - n, "%s%s", n ? "," : "", progs[P_SEED].prog);
	}
	for (int i = 0; i < P__N; i++)
		if (kc->links[i])
			kc->types |= progs[i].types & cfg.types;
	kc->rb = ring_buffer__new(bpf_map__fd(kc->skel->maps.events), on_sample, kc, NULL);
	if (!kc->rb) {
		rc = -errno;
		err_printf(err, errlen, "cannot open the BPF ring buffer: %s", strerror(-rc));
		goto fail;
	}
	kc->ncpu = libbpf_num_possible_cpus();
	kc->startup_us = (uint64_t)(clock_ns(CLOCK_MONOTONIC) - t0) / 1000;
	free(r);
	return &kc->base;
fail:
	free(r);
	k_destroy(&kc->base);
	errno = -rc;
	return NULL;
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
			err_printf(err, errlen, "-e: %s item '%.*s'", n ? "bad" : "empty", (int)(n > 60 ? 60 : n), p);
			return -EINVAL;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if (!strcmp(item, "all")) {
			got = KERNEL_TYPES_ALL;
		} else {
			for (unsigned t = 1; t < EVENT_MAX; t++) {
				const char *name = kernel_type_names[t];

				if (!strcmp(name, item) || (!strncmp(name, item, n) && name[n] == '.'))
					got |= 1ull << t;
			}
			/* "oom" is oom.kill; also accept the type prefix "oom.kill". */
		}
		if (!got) {
			err_printf(err, errlen, "-e: unknown event type '%s' (types: process.exec, process.fork, process.exit, tcp.connect, tcp.accept, tcp.close, tcp.retransmit, tcp.reset, cgroup.mkdir, cgroup.rmdir, cgroup.attach, oom.kill, or a prefix such as tcp)", item);
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
	KO("containers", OPT_BOOL, containers_only, "false", "kernel events from containers only"),
	KO("all-threads", OPT_BOOL, all_threads, "false", "process.exit for every thread"),
};

static int kernel_options_check(const void *p, char *err, size_t errlen)
{
	const struct kernel_options *o = p;
	uint64_t rb = o->ringbuf_size, mask;
	if (rb < 4096 || rb > (1ull << 30) || (rb & (rb - 1))) {
		snprintf(err, errlen, "ringbuf-size: %" PRIu64 " must be a power of two from 4K to 1G",
			 rb);
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
