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

/* Fills hdr from task t (NULL: the task fields stay 0 and HDR_F_NO_TASK is set). */
static __always_inline void fill_header(struct event_header *hdr, __u32 type, struct task_struct *t)
{
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
	hdr->cgroup_id = task_cgroup_id(t);
	hdr->pidns = task_pidns(t);
	hdr->mntns = task_mntns(t);
	BPF_CORE_READ_STR_INTO(&hdr->comm, t, comm);
}

#endif
