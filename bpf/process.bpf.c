// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* process.exec, process.fork, process.exit on the sched tracepoints (tp_btf). */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fill.bpf.h"
#include "path.bpf.h"
#include "submit.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm):
 * runs in the new program's context, after the new mm is set up, so argv is
 * on the current task's stack between mm->arg_start and mm->arg_end. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(tapio_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct task_struct *t = current_task();
	struct exec_event *e;
	unsigned long arg_start, arg_end, len;
	const struct cred *cred;
	const char *filename;
	struct file *file;
	long n;

	if (!type_wanted(EVENT_PROCESS_EXEC) || !task_wanted(t))
		return 0;
	/* Zero the fixed part only; the tails are bounded by their lengths. */
	e = reserve_event_z(EVENT_PROCESS_EXEC, sizeof(*e), offsetof(struct exec_event, filename));
	if (!e)
		return 0;
	fill_header(&e->hdr, EVENT_PROCESS_EXEC, t);

	filename = BPF_CORE_READ(bprm, filename);
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);
	if (n > 0) {
		e->filename_len = n - 1;
		/* A full buffer is a cut name only if the name goes on: one of
		 * exactly TAPIO_FILENAME_MAX - 1 bytes fits. */
		if (n == sizeof(e->filename)) {
			char next = 0;

			bpf_probe_read_kernel(&next, 1, filename + sizeof(e->filename) - 1);
			e->filename_truncated = next != 0;
		}
	} else {
		e->filename[0] = '\0';
	}
	e->argc = BPF_CORE_READ(bprm, argc);
	/* The new credentials: begin_new_exec() has committed them. */
	cred = BPF_CORE_READ(t, cred);
	e->euid = BPF_CORE_READ(cred, euid.val);
	e->egid = BPF_CORE_READ(cred, egid.val);
	e->cap_inheritable = cred_caps(cred, cap_inheritable);
	e->cap_permitted = cred_caps(cred, cap_permitted);
	e->cap_effective = cred_caps(cred, cap_effective);
	e->cap_ambient = cred_caps(cred, cap_ambient);

	/* What was run: for fexecve() and execveat(fd, "", AT_EMPTY_PATH) the
	 * filename is only "/dev/fd/N". */
	file = BPF_CORE_READ(bprm, file);
	if (file) {
		bool cut;

		e->exe_len = file_path_into(t, file, e->exe, &cut);
		e->flags |= EXEC_F_EXE_KNOWN | (cut ? EXEC_F_EXE_TRUNCATED : 0);
		if (dentry_is_memfd(BPF_CORE_READ(file, f_path.dentry)))
			e->flags |= EXEC_F_MEMFD;
	} else {
		e->exe[0] = '\0';
	}

	arg_start = BPF_CORE_READ(t, mm, arg_start);
	arg_end = BPF_CORE_READ(t, mm, arg_end);
	len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (len > TAPIO_ARGS_MAX) {
		len = TAPIO_ARGS_MAX;
		e->args_truncated = 1;
	}
	/* The mask keeps the verifier sure of the bound on every kernel. */
	len &= (TAPIO_ARGS_MAX << 1) - 1;
	if (len > TAPIO_ARGS_MAX)
		len = TAPIO_ARGS_MAX;
	if (len && bpf_probe_read_user(e->args, len, (const void *)arg_start) == 0)
		e->args_len = len;
	else if (len)
		e->flags |= EXEC_F_ARGS_UNREAD;
	submit_event(e);
	return 0;
}

/* sched_process_fork(struct task_struct *parent, struct task_struct *child):
 * runs in the parent. New threads (same tgid) only with cfg_all_threads. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(tapio_fork, struct task_struct *parent, struct task_struct *child)
{
	struct task_struct *t = current_task();
	struct fork_event *e;
	__u32 child_pid, child_tgid;

	if (!type_wanted(EVENT_PROCESS_FORK))
		return 0;
	child_pid = BPF_CORE_READ(child, pid);
	child_tgid = BPF_CORE_READ(child, tgid);
	if (!cfg_all_threads && child_pid != child_tgid)
		return 0;
	if (!task_wanted(t))
		return 0;
	e = reserve_event(EVENT_PROCESS_FORK, sizeof(*e));
	if (!e)
		return 0;
	fill_header(&e->hdr, EVENT_PROCESS_FORK, t);
	e->parent_pid = BPF_CORE_READ(parent, pid);
	e->parent_tgid = BPF_CORE_READ(parent, tgid);
	e->child_pid = child_pid;
	e->child_tgid = child_tgid;
	submit_event(e);
	return 0;
}

/* sched_process_exit(struct task_struct *p[, bool group_dead on recent kernels]):
 * runs in the exiting task, after exit_code is set (do_exit). A process
 * ends when its last thread exits, whichever thread that is (the leader may
 * have left first with pthread_exit(); the threads an exec from a non-leader
 * thread kills do not end the process): only that one reports, unless
 * cfg_all_threads. The tracepoint says so itself where it has group_dead
 * (6.16+; 6.18 has it); before, do_exit() has already decremented
 * signal->live, which is 0 in the last thread. */
/* The tracepoint's record with group_dead (6.18 has it): a flavour of our
 * own, so the check compiles against any vmlinux.h and relocates against the
 * running kernel's. */
struct trace_event_raw_sched_process_exit___gd {
	bool group_dead;
} __attribute__((preserve_access_index));

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tapio_exit, struct task_struct *p)
{
	struct task_struct *t = current_task();
	struct exit_event *e;
	bool group_dead;
	__u64 start;

	if (!type_wanted(EVENT_PROCESS_EXIT))
		return 0;
	if (bpf_core_field_exists(struct trace_event_raw_sched_process_exit___gd, group_dead))
		group_dead = (bool)ctx[1];
	else
		group_dead = BPF_CORE_READ(t, signal, live.counter) == 0;
	if (!cfg_all_threads && !group_dead)
		return 0;
	if (!task_wanted(t))
		return 0;
	e = reserve_event(EVENT_PROCESS_EXIT, sizeof(*e));
	if (!e)
		return 0;
	fill_header(&e->hdr, EVENT_PROCESS_EXIT, t);
	/* start_boottime: since 5.5 ("time: Rename tsk->real_start_time to
	 * ->start_boottime"). The process's start is its leader's. */
	start = BPF_CORE_READ(t, group_leader, start_boottime);
	e->duration_ns = e->hdr.ts > start ? e->hdr.ts - start : 0;
	e->status = BPF_CORE_READ(t, exit_code);
	submit_event(e);
	return 0;
}
