/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel collector's parts (private to user/kernel/), split as Falco's
 * libpman is:
 * - probe.c: the program table, the BTF checks and `tapio probe`;
 * - loader.c: open, configure and load the skeleton with a per-program
 *   fallback (libbpf's messages name the program that failed), attach;
 * - ringbuf.c: the thread that polls the ring buffer into the queue;
 * - collector.c: the ops, counters, constructors, options and -e lists. */
#ifndef TAPIO_KERNEL_INTERNAL_H
#define TAPIO_KERNEL_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bpf/events.h"
#include "core/collector.h"
#include "kernel/kernel.h"
#include "tapio.skel.h"

#define T(x) (1ull << (x))
#define KERNEL_TYPES_ALL (((1ull << EVENT_MAX) - 1) & ~1ull)
#define TCP_TYPES                                                                                  \
	(T(TYPE_TCP_CONNECT) | T(TYPE_TCP_ACCEPT) | T(TYPE_TCP_CLOSE) | T(TYPE_TCP_RETRANSMIT) |   \
	 T(TYPE_TCP_RESET) | T(TYPE_TCP_LISTEN))

/* The programs, in the order of kernel_progs[]. */
enum {
	P_EXEC,
	P_FORK,
	P_EXIT,
	P_SOCK,
	P_RETRANS,
	P_SEND_RST,
	P_RECV_RST,
	P_MKDIR,
	P_RMDIR,
	P_ATTACH,
	P_OOM,
	P_OOM_SIGNAL,
	P_OOM_ENTER,
	P_OOM_EXIT,
	P_SEED,
	P__N
};

#define META_MAX 16

/* The meta of the last records, laid out as in the queue, by cgroup
 * (reserve_record): a record of a cgroup seen just before copies it instead of
 * formatting the id and asking the pod cache again. */
#define KMETA_SLOTS 16
#define KMETA_MAX 512
struct kmeta_slot {
	uint64_t key;	/* the cgroup id, with CGROUP_KEY_V1 for a v1 memory id */
	uint64_t stamp; /* 1 without a cgroup_meta hook, else its stamp; 0: empty */
	uint32_t len;
	char b[KMETA_MAX];
};

struct kcollector {
	struct collector base; /* first; base.thread is the ring buffer thread */
	struct kernel_opts o;
	char cgroup_path[4096];
	uint64_t cgroup_id;
	struct tapio *skel;
	struct bpf_link *links[P__N];
	struct ring_buffer *rb;
	/* Per-CPU mode: the inner rings of cpu_rings (one per possible CPU);
	 * NULL in shared mode. */
	int *ring_fds;
	int nrings;
	struct queue *q;
	int64_t boot_to_epoch; /* add to CLOCK_BOOTTIME ns for epoch ns */
	uint64_t startup_us;
	int ncpu;
	_Atomic uint64_t events[EVENT_MAX];
	_Atomic uint64_t qdrops[EVENT_MAX];
	char disabled[512];
	uint64_t types; /* produced by a running program */
	/* collector thread only */
	unsigned unwoken; /* records committed since the consumer was last woken */
	/* records committed and not yet added to events[] and base.n.events:
	 * added once per batch (kernel_tally_flush()), not with an atomic
	 * per record */
	uint32_t tally[EVENT_MAX];
	uint32_t tallied;
	struct meta_kv kv[META_MAX];
	char idbuf[24];
	char scratch[2048];
	struct kmeta_slot meta_cache[KMETA_SLOTS];
};

/* What to load. */
struct load_cfg {
	uint64_t types; /* kernel types wanted */
	uint32_t tgid;
	uint64_t cgroup_id;
	uint32_t cgroup_level; /* its depth below the cgroup2 root */
	bool containers_only;
	bool all_threads;
	uint32_t ringbuf_size;
	bool ring_per_cpu;  /* cpu_rings, one ring per possible CPU */
	uint32_t ring_ncpu; /* with ring_per_cpu: the possible CPUs */
	uint32_t ring_size; /* bytes of one ring (the shared one, or each CPU's);
			     * 0: ringbuf_size */
};

struct load_result {
	struct tapio *skel;
	uint64_t off;	     /* programs not loaded: not wanted or failed */
	uint64_t failed;     /* programs that failed */
	char why[P__N][128]; /* for failed ones */
	bool sk_storage;     /* socket owners in socket-local storage (cfg_sk_storage) */
};

/* ---- probe.c ---- */

/* What each program produces, the tracepoint and BTF type it needs. */
extern const struct kernel_prog_info kernel_progs[P__N];
/* BTF and privileges; sets up libbpf's messages. Returns 0 or a negative
 * errno with err set. */
int kernel_check_env(char *err, size_t errlen);
/* Fills r->off and r->failed (with r->why) before any load: programs that
 * are not wanted, and those whose target this kernel lacks. */
void kernel_plan(const struct load_cfg *cfg, struct load_result *r);

/* ---- loader.c ---- */

/* Sends libbpf's messages to tlog. */
void kernel_libbpf_setup(void);
/* kernel_plan(), then loads the wanted programs; one that fails is turned
 * off and the load is tried again without it. Returns 0 (r->skel loaded;
 * r->failed says which were turned off) or a negative errno with err set. */
int kernel_load(const struct load_cfg *cfg, struct load_result *r, char *err, size_t errlen);
/* Attaches the loaded programs, runs the socket seeding and sets kc->links,
 * kc->disabled and kc->types. */
void kernel_attach(struct kcollector *kc, const struct load_result *r, uint64_t types);

/* ---- ringbuf.c ---- */

/* Poll timeout of the ring buffer thread: what a record below the fill
 * threshold waits at most while records keep coming. */
#define KERNEL_POLL_MS 50
/* The timeout while a dense stream runs: a period that brought at least
 * KERNEL_STREAM_RECORDS records (2,000 a second at 50 ms) makes the next
 * period this long, and a period that brought fewer makes it KERNEL_POLL_MS
 * again. Records in a dense stream then wait at most 100 ms and the thread
 * (and the pipeline it wakes) wakes half as often; a sparse stream keeps
 * the 50 ms bound. */
#define KERNEL_STREAM_POLL_MS 100
#define KERNEL_STREAM_RECORDS 100
/* After a poll period that brought nothing the thread sets the programs'
 * reader_asleep flag (the next record wakes it at once), polls one more
 * period (a record whose program read the flag just before it was set is
 * committed by then), and then polls with this timeout: a backstop only,
 * for a program that stayed preempted between its look at the flag and
 * its commit. A stop wakes the thread through its wake fd (k_start adds
 * it to the ring buffer's epoll set). */
#define KERNEL_IDLE_POLL_MS 5000
/* In a long batch, the consumer is woken after this many records. */
#define KERNEL_WAKE_EVERY 256
/* The fill (bytes) at which a BPF program wakes the ring buffer thread. */
uint64_t kernel_ringbuf_wakeup(uint32_t ringbuf_size);
/* The size of each CPU's ring when ringbuf_size bytes are split among ncpu
 * rings: a power of two, at least a page. */
uint32_t kernel_ring_per_cpu_size(uint32_t ringbuf_size, uint32_t ncpu);
/* True when this kernel takes ring buffers as inner maps of an array of
 * maps (5.9+); false with *why set otherwise. */
bool kernel_ring_per_cpu_supported(const char **why);
/* Opens kc->rb: on the events map, or (per-CPU mode, cfg) on a ring per
 * possible CPU, created here and put into cpu_rings. Call before the
 * programs are attached. Returns 0 or a negative errno. */
int kernel_ringbuf_open(struct kcollector *kc, const struct load_cfg *cfg);
/* Closes kc->rb and the per-CPU rings (NULL-safe on each). */
void kernel_ringbuf_close(struct kcollector *kc);
/* The collector's thread (collector_spawn): polls the ring buffer until
 * stopped, then consumes what is left. */
void *kernel_poll_thread(void *arg);
int64_t kernel_clock_ns(clockid_t c);

/* gap.c: emits the noted kernel.gap event, tracked until the sink has it
 * (at start); gives the tracker up (at destroy, after the sink closed). */
void kernel_gap_emit(struct kcollector *kc);
void kernel_gap_release(struct kcollector *kc);

#endif
