// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* cgroup.mkdir, cgroup.rmdir, cgroup.attach on the cgroup tracepoints
 * (tp_btf), for every hierarchy: hierarchy_id 0 is cgroup2, others are v1. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fill.bpf.h"
#include "submit.bpf.h"

static __always_inline struct cgroup_event *cgroup_reserve(__u32 type, struct cgroup *cg,
							   const char *path)
{
	struct task_struct *t = current_task();
	struct cgroup_event *e;
	long n;

	if (!type_wanted(type) || !task_wanted(t))
		return NULL;
	e = reserve_event_z(type, sizeof(*e), offsetof(struct cgroup_event, path));
	if (!e)
		return NULL;
	fill_header(&e->hdr, type, t);
	e->id = cgroup_id_of(cg);
	e->level = BPF_CORE_READ(cg, level);
	e->hierarchy_id = BPF_CORE_READ(cg, root, hierarchy_id);
	/* The tracepoint's path: the kernel formats it into its own buffer. */
	n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), path);
	e->path_len = n > 0 ? n - 1 : 0;
	if (n <= 0)
		e->path[0] = '\0';
	/* The buffer is full: the kernel's path may go on. */
	if (n == sizeof(e->path))
		e->flags |= CG_F_PATH_TRUNCATED;
	return e;
}

/* cgroup_mkdir(struct cgroup *cgrp, const char *path) */
SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(tapio_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	struct cgroup_event *e = cgroup_reserve(EVENT_CGROUP_MKDIR, cgrp, path);

	if (e)
		submit_event(e);
	return 0;
}

/* cgroup_rmdir(struct cgroup *cgrp, const char *path) */
SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(tapio_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	struct cgroup_event *e = cgroup_reserve(EVENT_CGROUP_RMDIR, cgrp, path);

	if (e)
		submit_event(e);
	return 0;
}

/* cgroup_attach_task(struct cgroup *dst_cgrp, const char *path,
 *                    struct task_struct *task, bool threadgroup):
 * after the task has moved; runs in the task that wrote cgroup.procs. */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(tapio_cgroup_attach, struct cgroup *dst_cgrp, const char *path,
	     struct task_struct *task, bool threadgroup)
{
	struct cgroup_event *e = cgroup_reserve(EVENT_CGROUP_ATTACH, dst_cgrp, path);

	if (!e)
		return 0;
	e->task_pid = BPF_CORE_READ(task, pid);
	e->task_tgid = BPF_CORE_READ(task, tgid);
	BPF_CORE_READ_STR_INTO(&e->task_comm, task, comm);
	e->threadgroup = threadgroup;
	submit_event(e);
	return 0;
}
