/* SPDX-License-Identifier: Apache-2.0 */
/* Layer 2: deciding and filling. task_wanted() applies the in-kernel filters
 * (pid, cgroup subtree, containers) to the task an event is about;
 * fill_header() writes the common header from that task. */
#ifndef TAPIO_BPF_FILL_H
#define TAPIO_BPF_FILL_H

#include "maps.h"
#include "read.bpf.h"

static __always_inline bool type_wanted(__u32 type)
{
	return cfg_event_mask & (1ull << type);
}

/* True when no filter is set: events with no task may pass. */
static __always_inline bool no_task_filter(void)
{
	return !cfg_tgid && !cfg_cgroup_id && !cfg_containers_only;
}

static __always_inline bool task_wanted(struct task_struct *t)
{
	if (!t)
		return no_task_filter();
	if (cfg_tgid && BPF_CORE_READ(t, tgid) != cfg_tgid)
		return false;
	if (cfg_cgroup_id && !cgroup_under(task_dfl_cgroup(t), cfg_cgroup_id, cfg_cgroup_level))
		return false;
	if (cfg_containers_only && !task_in_container(t))
		return false;
	return true;
}

/* The cgroup an event's header names: the task's cgroup2 cgroup; on a
 * v1/hybrid host (cfg_v1_hierarchy), where a container's cgroup2 cgroup is
 * often the root, its v1 memory cgroup when that one is not the root. */
static __always_inline __u64 task_header_cgroup_id(struct task_struct *t, __u32 *flags)
{
	struct cgroup *cg = task_dfl_cgroup(t);

	if (cfg_v1_hierarchy && BPF_CORE_READ(cg, level) == 0) {
		struct cgroup *v1 = task_v1_memory_cgroup(t, cfg_v1_hierarchy);

		if (v1 && BPF_CORE_READ(v1, level) > 0) {
			*flags |= HDR_F_CGROUP_V1;
			return cgroup_id_of(v1);
		}
	}
	return cgroup_id_of(cg);
}

/* Fills hdr from task t (NULL: the task fields stay 0 and HDR_F_NO_TASK is set). */
static __always_inline void fill_header(struct event_header *hdr, __u32 type, struct task_struct *t)
{
	__u32 flags;

	hdr->ts = bpf_ktime_get_boot_ns();
	hdr->type = type;
	hdr->cpu = bpf_get_smp_processor_id();
	if (!t) {
		hdr->flags = HDR_F_NO_TASK;
		return;
	}
	hdr->pid = BPF_CORE_READ(t, pid);
	hdr->tgid = BPF_CORE_READ(t, tgid);
	hdr->ppid = BPF_CORE_READ(t, real_parent, tgid);
	hdr->uid = BPF_CORE_READ(t, cred, uid.val);
	hdr->gid = BPF_CORE_READ(t, cred, gid.val);
	flags = 0;
	hdr->cgroup_id = task_header_cgroup_id(t, &flags);
	hdr->flags = flags;
	hdr->pidns = task_pidns(t);
	hdr->mntns = task_mntns(t);
	BPF_CORE_READ_STR_INTO(&hdr->comm, t, comm);
}

#endif
