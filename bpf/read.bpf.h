/* SPDX-License-Identifier: Apache-2.0 */
/* Layer 1: reading from the kernel. Small CO-RE readers for task, cgroup and
 * namespace fields. Each returns 0 (or NULL) when the pointer chain cannot be
 * read, e.g. a task that has already dropped its namespaces. */
#ifndef TAPIO_BPF_READ_H
#define TAPIO_BPF_READ_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

/* include/linux/proc_ns.h: the fixed inode of the initial cgroup namespace. */
#define TAPIO_CGROUP_INIT_INO 0xEFFFFFFBu
/* Deepest cgroup nesting the memcg and path walks go. */
#define TAPIO_CGROUP_MAX_DEPTH 32

static __always_inline struct task_struct *current_task(void)
{
	return (struct task_struct *)bpf_get_current_task();
}

/* The task's cgroup in the default (v2) hierarchy. */
static __always_inline struct cgroup *task_dfl_cgroup(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp);
}

/* kernfs_node.id is a u64 since 5.5 ("kernfs: convert kernfs_node->id from
 * union kernfs_node_id to u64"); tapio needs 5.8 anyway. */
static __always_inline __u64 cgroup_id_of(struct cgroup *cg)
{
	return BPF_CORE_READ(cg, kn, id);
}

static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	return cgroup_id_of(task_dfl_cgroup(t));
}

/* The task's cgroup in the v1 memory hierarchy hierarchy_id, or NULL (no
 * memory controller, or it is bound to cgroup2). */
static __always_inline struct cgroup *task_v1_memory_cgroup(struct task_struct *t,
							    __u32 hierarchy_id)
{
	struct cgroup_subsys_state *css = NULL;
	struct css_set *cset = BPF_CORE_READ(t, cgroups);
	struct cgroup *cg;
	int id;

	if (!cset || !bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		return NULL;
	id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	bpf_core_read(&css, sizeof(css), &cset->subsys[id & 15]);
	cg = BPF_CORE_READ(css, cgroup);
	if (!cg || (__u32)BPF_CORE_READ(cg, root, hierarchy_id) != hierarchy_id)
		return NULL;
	return cg;
}

/* The pid namespace the task lives in (task_active_pid_ns()): the namespace
 * of the last level of its struct pid. */
static __always_inline __u32 task_pid_level(struct task_struct *t)
{
	return BPF_CORE_READ(t, thread_pid, level);
}

static __always_inline __u32 task_pidns(struct task_struct *t)
{
	struct pid *pid = BPF_CORE_READ(t, thread_pid);
	struct pid_namespace *ns = NULL;
	__u32 level;

	if (!pid)
		return 0;
	level = BPF_CORE_READ(pid, level);
	bpf_core_read(&ns, sizeof(ns), &pid->numbers[level & 31].ns);
	if (!ns)
		return 0;
	return BPF_CORE_READ(ns, ns.inum);
}

static __always_inline __u32 task_mntns(struct task_struct *t)
{
	return BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
}

static __always_inline __u32 task_cgroupns(struct task_struct *t)
{
	return BPF_CORE_READ(t, nsproxy, cgroup_ns, ns.inum);
}

/* ---- credentials ---- */

/* kernel_cap_t was `struct kernel_cap_struct { __u32 cap[2]; }` before 6.3
 * ("capability: just use a 'u64' instead of a 'u32[2]' array"), a u64
 * since: the old layout as a flavour of our own, so that this builds against
 * any vmlinux.h and relocates against the running kernel's. */
struct kernel_cap_struct___old {
	__u32 cap[2];
};

struct cred___old {
	struct kernel_cap_struct___old cap_inheritable;
	struct kernel_cap_struct___old cap_permitted;
	struct kernel_cap_struct___old cap_effective;
	struct kernel_cap_struct___old cap_ambient;
} __attribute__((preserve_access_index));

/* One capability set of cred as a u64 (bit n = capability n). */
#define cred_caps(cred, set)                                                                       \
	({                                                                                         \
		__u64 __v;                                                                         \
		if (bpf_core_field_exists(struct cred, set.val)) {                                 \
			__v = BPF_CORE_READ((cred), set.val);                                      \
		} else {                                                                           \
			struct cred___old *__o = (void *)(cred);                                   \
			__v = (__u64)BPF_CORE_READ(__o, set.cap[1]) << 32 |                        \
			      BPF_CORE_READ(__o, set.cap[0]);                                      \
		}                                                                                  \
		__v;                                                                               \
	})

/* Before 6.1 ("cgroup: Replace cgroup->ancestor_ids[] with ->ancestors[]")
 * a cgroup kept its ancestors' ids rather than pointers. */
struct cgroup___old {
	int level;
	u64 ancestor_ids[];
};

/* True when cg is the cgroup target_id (at level target_level) or below
 * it: its ancestor at that level is the target (what cgroup_is_descendant()
 * does), one read instead of a walk. */
static __always_inline bool cgroup_under(struct cgroup *cg, __u64 target_id, __u32 target_level)
{
	struct cgroup *anc = NULL;
	int level;

	if (!cg)
		return false;
	level = BPF_CORE_READ(cg, level);
	if (level < 0 || (__u32)level < target_level)
		return false;
	if (bpf_core_field_exists(struct cgroup, ancestors)) {
		bpf_core_read(&anc, sizeof(anc), &cg->ancestors[target_level & 255]);
		return anc && cgroup_id_of(anc) == target_id;
	} else {
		struct cgroup___old *old = (void *)cg;
		__u64 id = 0;

		bpf_core_read(&id, sizeof(id), &old->ancestor_ids[target_level & 255]);
		return id == target_id;
	}
}

/* A task "is in a container" when it lives in a pid namespace other than the
 * initial one, or in a cgroup namespace other than the initial one. Container
 * runtimes give each container its own pid namespace (unless hostPID) and,
 * on cgroup v2, its own cgroup namespace; host daemons and systemd services
 * have neither. */
static __always_inline bool task_in_container(struct task_struct *t)
{
	__u32 cgns;

	if (task_pid_level(t) > 0)
		return true;
	cgns = task_cgroupns(t);
	return cgns && cgns != TAPIO_CGROUP_INIT_INO;
}

#endif
