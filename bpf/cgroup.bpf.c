// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* cgroup.mkdir, cgroup.rmdir, cgroup.attach on the cgroup tracepoints
 * (tp_btf), for every hierarchy: hierarchy_id 0 is cgroup2, others are v1. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fill.bpf.h"
#include "submit.bpf.h"

/* Does the path start with prefix (a string literal)? */
static __always_inline bool starts_with(const char *p, const char *prefix, int n)
{
	for (int i = 0; i < n && i < 32; i++)
		if (p[i] != prefix[i])
			return false;
	return true;
}

#define path_starts(path, prefix) starts_with((path), (prefix), sizeof(prefix) - 1)

/* A cgroup that container runtimes make for a container or a pod: kubelet's
 * kubepods tree (systemd or cgroupfs driver), docker's and podman's. */
static __always_inline bool container_cgroup_path(const char *p)
{
	return path_starts(p, "/kubepods") || path_starts(p, "/docker/") ||
	       path_starts(p, "/system.slice/docker-") || path_starts(p, "/machine.slice/libpod-");
}

/* Cgroup events are judged by the cgroup they concern, not by their writer
 * (runc, containerd, systemd or kubelet on the host make and fill container
 * cgroups): the --cgroup subtree is the cgroup's (an attach also passes when
 * the moved task is in the subtree; a v1 cgroup is in no cgroup2 subtree);
 * --containers keeps a container runtime's cgroups (by path), cgroups
 * written from a container, and tasks moved that are in one; -p keeps the
 * writer's or the moved task's. */
static __always_inline bool cgroup_wanted(struct cgroup *cg, struct task_struct *writer,
					  struct task_struct *moved)
{
	bool v2 = BPF_CORE_READ(cg, root, hierarchy_id) == 0;

	if (cfg_tgid && BPF_CORE_READ(writer, tgid) != cfg_tgid &&
	    !(moved && BPF_CORE_READ(moved, tgid) == cfg_tgid))
		return false;
	if (cfg_cgroup_id && !(v2 && cgroup_under(cg, cfg_cgroup_id, cfg_cgroup_level)) &&
	    !(moved && cgroup_under(task_dfl_cgroup(moved), cfg_cgroup_id, cfg_cgroup_level)))
		return false;
	return true;
}

static __always_inline struct cgroup_event *
cgroup_reserve(__u32 type, struct cgroup *cg, const char *path, struct task_struct *moved)
{
	struct task_struct *t = current_task();
	struct cgroup_event *e;
	long n;

	if (!type_wanted(type) || !cgroup_wanted(cg, t, moved))
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
	if (cfg_containers_only && !task_in_container(t) && !(moved && task_in_container(moved)) &&
	    !container_cgroup_path(e->path)) {
		discard_event(e);
		return NULL;
	}
	return e;
}

/* cgroup_mkdir(struct cgroup *cgrp, const char *path) */
SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(tapio_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	struct cgroup_event *e = cgroup_reserve(EVENT_CGROUP_MKDIR, cgrp, path, NULL);

	if (e)
		submit_event(e);
	return 0;
}

/* cgroup_rmdir(struct cgroup *cgrp, const char *path) */
SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(tapio_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	struct cgroup_event *e = cgroup_reserve(EVENT_CGROUP_RMDIR, cgrp, path, NULL);

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
	struct cgroup_event *e = cgroup_reserve(EVENT_CGROUP_ATTACH, dst_cgrp, path, task);

	if (!e)
		return 0;
	e->task_pid = BPF_CORE_READ(task, pid);
	e->task_tgid = BPF_CORE_READ(task, tgid);
	BPF_CORE_READ_STR_INTO(&e->task_comm, task, comm);
	e->threadgroup = threadgroup;
	submit_event(e);
	return 0;
}
