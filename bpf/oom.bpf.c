// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* oom.kill on oom/mark_victim (tp_btf), attributed to the victim.
 *
 * mark_victim runs in the task whose allocation hit the limit, not in the
 * victim, so the header is filled from the victim's task_struct and the
 * allocating task goes into trigger_*.
 *
 * The tracepoint changed: it was mark_victim(int pid) from 4.13 on (Ubuntu's
 * 6.8 still has it), and newer kernels made it mark_victim(struct
 * task_struct *task, uid_t uid), with total_vm, the RSS breakdown and
 * oom_score_adj in its record; stable updates carried that back to older
 * series (Debian 12's 6.1.0-56 has it, and so does 6.18). The record's
 * total_vm field tells which one this kernel has. With the old one, the victim's task comes from
 * the SIGKILL that __oom_kill_process() sends just before mark_oom_victim(), seen on
 * signal/signal_generate in the same task.
 *
 * Which limit was hit comes from out_of_memory()'s struct oom_control where
 * fentry/fexit can attach to it (a BPF trampoline: 5.5+ on x86_64, 6.0+ on
 * arm64): tapio_oom_enter keeps oc per thread from its entry until
 * tapio_oom_exit sees it return; mark_victim, which runs inside it (in
 * oom_kill_process(), or for an exiting current task in out_of_memory()
 * itself), reads oc->memcg and oc->constraint there. The pair is optional:
 * userspace sets oom_ctl_on only once both are attached, and without it the
 * limit is found by memcg_at_limit() (memcg.bpf.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fill.bpf.h"
#include "memcg.bpf.h"
#include "submit.bpf.h"

#define SIGKILL 9
#define SEND_SIG_PRIV 1 /* ((struct kernel_siginfo *) 1) */

/* mm counters (enum mm_counter_type / NR_MM_COUNTERS) */
#define MM_FILEPAGES 0
#define MM_ANONPAGES 1
#define MM_SHMEMPAGES 3

/* Before 6.2 ("mm: convert mm's rss stats into percpu_counter") the
 * counters were atomics in struct mm_rss_stat. */
struct mm_rss_stat___old {
	atomic_long_t count[4];
};

struct mm_struct___old {
	struct mm_rss_stat___old rss_stat;
};

static __always_inline __u64 mm_counter(struct mm_struct *mm, int member)
{
	long v;

	if (bpf_core_type_exists(struct mm_rss_stat___old)) {
		struct mm_struct___old *old = (void *)mm;

		v = BPF_CORE_READ(old, rss_stat.count[member & 3].counter);
	} else {
		/* What get_mm_counter() reads: percpu_counter_read_positive(). */
		v = BPF_CORE_READ(mm, rss_stat[member & 3].count);
	}
	return v > 0 ? (__u64)v : 0;
}

static __always_inline __u64 pages_kb(__u64 pages)
{
	return pages << ((cfg_page_shift - 10) & 31);
}

static __always_inline bool mark_victim_has_task(void)
{
	return bpf_core_field_exists(struct trace_event_raw_mark_victim, total_vm);
}

/* The oom_control of the out_of_memory() running in a thread (struct
 * oom_control *, on that thread's stack), from its entry to its return.
 * out_of_memory() runs under oom_lock: one entry at a time, a few at most. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} oom_ctl SEC(".maps");

/* Set by userspace once tapio_oom_enter and tapio_oom_exit are both
 * attached (an entry is then always removed at the return). */
volatile bool oom_ctl_on = false;

SEC("fentry/out_of_memory")
int BPF_PROG(tapio_oom_enter, struct oom_control *oc)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 v = (__u64)oc;

	if (!oom_ctl_on)
		return 0;
	/* Cannot fill (one OOM at a time); should it fail, the heuristic
	 * names the limit. */
	bpf_map_update_elem(&oom_ctl, &tid, &v, BPF_ANY);
	return 0;
}

SEC("fexit/out_of_memory")
int BPF_PROG(tapio_oom_exit, struct oom_control *oc, bool ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&oom_ctl, &tid);
	return 0;
}

/* The oom_control of the OOM this thread is in, or NULL. */
static __always_inline struct oom_control *current_oom_control(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *v;

	if (!oom_ctl_on)
		return NULL;
	v = bpf_map_lookup_elem(&oom_ctl, &tid);
	return v ? (struct oom_control *)*v : NULL;
}

/* The victim's memcg (memcg.bpf.h). Returns its css, or NULL. */
static __always_inline struct cgroup_subsys_state *fill_victim_memcg(struct oom_event *e,
								     struct task_struct *victim)
{
	struct cgroup_subsys_state *css = task_memcg_css(victim);
	struct cgroup *cg;

	if (!css)
		return NULL;
	cg = BPF_CORE_READ(css, cgroup);
	if (!cg)
		return NULL;
	e->flags |= OOM_F_MEMCG_KNOWN;
	e->memcg_id = cgroup_id_of(cg);
	e->memcg_level = BPF_CORE_READ(cg, level);
	e->memcg_hierarchy_id = BPF_CORE_READ(cg, root, hierarchy_id);
	if (cgroup_path_into(cg, e->memcg_path))
		e->flags |= OOM_F_MEMCG_PATH_TRUNCATED;
	return css;
}

/* The memcg whose limit was hit: oc->memcg where the oom_control is known,
 * else the first memcg at its limit from the victim's up (css). */
static __always_inline void fill_limit(struct oom_event *e, struct oom_control *oc,
				       struct cgroup_subsys_state *css)
{
	struct memcg_hit hit = {};
	struct mem_cgroup *mc;
	struct cgroup *cg;
	bool v1;

	if (oc) {
		e->flags |= OOM_F_OOM_CONTROL;
		e->constraint = BPF_CORE_READ(oc, constraint);
		mc = BPF_CORE_READ(oc, memcg);
		if (!mc)
			return; /* global, cpuset or mempolicy */
		v1 = BPF_CORE_READ(mc, css.cgroup, root, hierarchy_id) != 0;
		memcg_limit(mc, v1, &hit);
	} else {
		if (!css)
			return;
		v1 = e->memcg_hierarchy_id != 0;
		if (!memcg_at_limit(css, v1, &hit))
			return;
	}
	if (!hit.cg)
		return;
	cg = hit.cg;
	e->flags |= OOM_F_MEMCG;
	if (hit.memsw)
		e->flags |= OOM_F_MEMSW;
	e->limit_memcg_id = cgroup_id_of(cg);
	e->limit_memcg_level = BPF_CORE_READ(cg, level);
	e->limit_bytes = hit.max << (cfg_page_shift & 31);
	e->usage_bytes = hit.usage << (cfg_page_shift & 31);
	if (cgroup_path_into(cg, e->limit_memcg_path))
		e->flags |= OOM_F_LIMIT_PATH_TRUNCATED;
}

/* Only loaded on kernels with the old mark_victim (userspace decides). */
SEC("tp_btf/signal_generate")
int BPF_PROG(tapio_oom_signal, int sig, struct kernel_siginfo *info, struct task_struct *task)
{
	struct oom_kill_info k = {};
	__u32 tid;

	if (sig != SIGKILL || (unsigned long)info != SEND_SIG_PRIV)
		return 0;
	tid = (__u32)bpf_get_current_pid_tgid();
	k.task = (__u64)task;
	k.pid = BPF_CORE_READ(task, pid);
	bpf_map_update_elem(&oom_kills, &tid, &k, BPF_ANY);
	return 0;
}

SEC("tp_btf/mark_victim")
int tapio_mark_victim(__u64 *ctx)
{
	struct task_struct *cur = current_task();
	struct task_struct *victim = NULL;
	struct oom_event *e;
	struct mm_struct *mm;
	__u32 victim_pid;

	if (!type_wanted(EVENT_OOM_KILL))
		return 0;
	if (mark_victim_has_task()) {
		victim = (struct task_struct *)ctx[0];
		victim_pid = BPF_CORE_READ(victim, pid);
	} else {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct oom_kill_info *k = bpf_map_lookup_elem(&oom_kills, &tid);

		victim_pid = (__u32)ctx[0];
		if (k && k->pid == victim_pid)
			victim = (struct task_struct *)k->task;
		if (k)
			bpf_map_delete_elem(&oom_kills, &tid);
	}
	if (!task_wanted(victim))
		return 0;
	e = reserve_event(EVENT_OOM_KILL, sizeof(*e));
	if (!e)
		return 0;
	fill_header(&e->hdr, EVENT_OOM_KILL, victim);
	e->victim_pid = victim_pid;
	e->trigger_pid = BPF_CORE_READ(cur, pid);
	e->trigger_tgid = BPF_CORE_READ(cur, tgid);
	e->trigger_cgroup_id = task_cgroup_id(cur);
	BPF_CORE_READ_STR_INTO(&e->trigger_comm, cur, comm);
	if (victim) {
		e->flags |= OOM_F_VICTIM_TASK;
		e->oom_score_adj = BPF_CORE_READ(victim, signal, oom_score_adj);
		mm = BPF_CORE_READ(victim, mm);
		if (mm) {
			e->total_vm = pages_kb(BPF_CORE_READ(mm, total_vm));
			e->anon_rss = pages_kb(mm_counter(mm, MM_ANONPAGES));
			e->file_rss = pages_kb(mm_counter(mm, MM_FILEPAGES));
			e->shmem_rss = pages_kb(mm_counter(mm, MM_SHMEMPAGES));
		}
	}
	fill_limit(e, current_oom_control(), victim ? fill_victim_memcg(e, victim) : NULL);
	submit_event(e);
	return 0;
}
