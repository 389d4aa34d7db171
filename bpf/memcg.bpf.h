/* SPDX-License-Identifier: Apache-2.0 */
/* Layer 1 (reading): a task's memory cgroup, the memcg whose limit an OOM
 * hit, and a cgroup's path built from its kernfs names. For oom.kill.
 *
 * The memcg is the task's css of the memory controller
 * (task->cgroups->subsys[memory_cgrp_id]): a cgroup2 directory, or on
 * v1/hybrid hosts a directory of the v1 memory hierarchy.
 *
 * Which memcg's limit was hit is exact where oom.bpf.c sees out_of_memory()'s
 * struct oom_control (fentry): oc->memcg is the memcg whose charge failed
 * (try_charge_memcg()'s mem_over_limit), read by memcg_limit(). Elsewhere
 * memcg_at_limit() guesses: a cgroup OOM is raised when a charge does not
 * fit under some memcg's max (usage + nr_pages > max) and the OOM killer
 * only runs for charges of at most 8 pages (PAGE_ALLOC_COSTLY_ORDER). The
 * reclaim before the kill drains the per-CPU charge stocks (up to
 * MEMCG_CHARGE_BATCH, 64 pages, each), so by mark_victim that memcg's usage
 * is within 8 + 64 pages of its max (measured on 6.18: 0 most times, 20
 * pages at times), while the others on the way up have more room. A lower
 * memcg that happens to be within that margin of its own max would be
 * named instead. On v1 the memory+swap counter (memsw) can be the one. */
#ifndef TAPIO_BPF_MEMCG_H
#define TAPIO_BPF_MEMCG_H

#include "maps.h"
#include "read.bpf.h"

#define TAPIO_MEMCG_SLACK_PAGES (8 + 64) /* the charge, and one drained stock */
#define TAPIO_PATH_DEPTH 16		 /* path components read; deeper ones are cut */

/* The task's memory css, or NULL (no memory controller). */
static __always_inline struct cgroup_subsys_state *task_memcg_css(struct task_struct *t)
{
	struct cgroup_subsys_state *css = NULL;
	struct css_set *cset;
	int id;

	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		return NULL;
	id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	cset = BPF_CORE_READ(t, cgroups);
	if (!cset)
		return NULL;
	bpf_core_read(&css, sizeof(css), &cset->subsys[id & 15]);
	return css;
}

/* usage, max in pages; false when the counter is unlimited. */
static __always_inline bool counter_at_limit(struct page_counter *pc, __u64 *usage, __u64 *max)
{
	long u = BPF_CORE_READ(pc, usage.counter);
	__u64 m = BPF_CORE_READ(pc, max);
	/* PAGE_COUNTER_MAX is LONG_MAX / PAGE_SIZE: no limit. */
	__u64 unlimited = (~0ull >> 1) >> (cfg_page_shift & 31);

	*usage = u > 0 ? (__u64)u : 0;
	*max = m;
	return m < unlimited && *usage + TAPIO_MEMCG_SLACK_PAGES >= m;
}

struct memcg_hit {
	struct cgroup *cg; /* the memcg's cgroup */
	__u64 usage;	   /* pages */
	__u64 max;	   /* pages */
	bool memsw;
};

/* Walks from css up to the root memcg; the first one at its limit goes into
 * hit. Returns false when none is (a global OOM). */
static __always_inline bool memcg_at_limit(struct cgroup_subsys_state *css, bool v1,
					   struct memcg_hit *hit)
{
	for (int i = 0; i < TAPIO_CGROUP_MAX_DEPTH && css; i++) {
		struct mem_cgroup *mc = (struct mem_cgroup *)css; /* css is its first member */

		/* memsw first: try_charge_memcg() charges it first, so when
		 * both are at their limit it is memsw that failed. */
		if (v1 && counter_at_limit(&mc->memsw, &hit->usage, &hit->max)) {
			hit->cg = BPF_CORE_READ(css, cgroup);
			hit->memsw = true;
			return true;
		}
		if (counter_at_limit(&mc->memory, &hit->usage, &hit->max)) {
			hit->cg = BPF_CORE_READ(css, cgroup);
			hit->memsw = false;
			return true;
		}
		css = BPF_CORE_READ(css, parent);
	}
	return false;
}

/* The limit of the memcg an OOM is for (oc->memcg): its memory counter,
 * or on v1 its memory+swap counter when that one is limited and has no more
 * room than the memory counter (try_charge_memcg() charges memsw first, so
 * on a tie memsw is the one that failed). */
static __always_inline void memcg_limit(struct mem_cgroup *mc, bool v1, struct memcg_hit *hit)
{
	__u64 usage, max;

	counter_at_limit(&mc->memory, &hit->usage, &hit->max);
	hit->cg = BPF_CORE_READ(mc, css.cgroup);
	hit->memsw = false;
	if (!v1)
		return;
	/* counter_at_limit() is true only for a limited counter within the
	 * margin; here any limited memsw with no more room counts. */
	counter_at_limit(&mc->memsw, &usage, &max);
	if (max < ((~0ull >> 1) >> (cfg_page_shift & 31)) &&
	    (max > usage ? max - usage : 0) <=
		(hit->max > hit->usage ? hit->max - hit->usage : 0)) {
		hit->usage = usage;
		hit->max = max;
		hit->memsw = true;
	}
}

struct path_scratch {
	char buf[2 * TAPIO_MEMCG_PATH_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_scratch);
} path_scratch SEC(".maps") __weak;

/* Writes cg's path below its hierarchy root ("/a/b") into out
 * (TAPIO_MEMCG_PATH_MAX bytes, NUL-terminated). Returns true when it was
 * cut (too long or too deep). Reads the kernfs names going up through
 * cgroup->self.parent (kernfs_node.parent was renamed on recent kernels). */
static __noinline bool cgroup_path_into(struct cgroup *cg, char *out)
{
	const char *names[TAPIO_PATH_DEPTH] = {};
	struct path_scratch *s;
	__u32 zero = 0, off = 0;
	bool cut = false;
	int n = 0;

	s = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!s || !out)
		return false;
	for (int i = 0; i < TAPIO_CGROUP_MAX_DEPTH; i++) {
		if (!cg || BPF_CORE_READ(cg, level) <= 0)
			break;
		if (n >= TAPIO_PATH_DEPTH) {
			cut = true;
			break;
		}
		names[n & (TAPIO_PATH_DEPTH - 1)] = BPF_CORE_READ(cg, kn, name);
		n++;
		cg = (struct cgroup *)BPF_CORE_READ(cg, self.parent);
	}
	/* Deeper than TAPIO_PATH_DEPTH: the names are the bottom ones, and
	 * the path is flagged as cut. */
	s->buf[0] = '/';
	s->buf[1] = '\0';
	for (int j = TAPIO_PATH_DEPTH - 1; j >= 0; j--) {
		long r;

		if (j >= n)
			continue;
		if (off >= TAPIO_MEMCG_PATH_MAX - 1) {
			cut = true;
			break;
		}
		barrier_var(off); /* keep the masks: they bound the writes */
		s->buf[off & (TAPIO_MEMCG_PATH_MAX - 1)] = '/';
		off++;
		barrier_var(off);
		r = bpf_probe_read_kernel_str(&s->buf[off & (TAPIO_MEMCG_PATH_MAX - 1)],
					      TAPIO_MEMCG_PATH_MAX, names[j]);
		if (r > 0)
			off += r - 1;
	}
	if (off >= TAPIO_MEMCG_PATH_MAX) {
		cut = true;
		off = TAPIO_MEMCG_PATH_MAX - 1;
	}
	barrier_var(off);
	if (n)
		s->buf[off & (TAPIO_MEMCG_PATH_MAX - 1)] = '\0';
	bpf_probe_read_kernel(out, TAPIO_MEMCG_PATH_MAX, s->buf);
	out[TAPIO_MEMCG_PATH_MAX - 1] = '\0';
	return cut;
}

#endif
