/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel collector's probe: the program table, what this kernel can run
 * (BTF types, privileges) and `tapio probe`. */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernel/internal.h"
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
_Static_assert((int)EVENT_TCP_LISTEN == (int)TYPE_TCP_LISTEN, "tcp.listen");
_Static_assert((int)EVENT_MAX == (int)TYPE_KERNEL__LAST + 1, "kernel type count");

/* .types: what each program produces. inet_sock_set_state also tracks the
 * socket owners that tcp.retransmit and tcp.reset need, so it loads for any
 * tcp type (prog_needed()). */
const struct kernel_prog_info kernel_progs[P__N] = {
    [P_EXEC] = {"tapio_exec", "sched_process_exec", T(TYPE_PROCESS_EXEC),
		"btf_trace_sched_process_exec", BTF_KIND_TYPEDEF},
    [P_FORK] = {"tapio_fork", "sched_process_fork", T(TYPE_PROCESS_FORK),
		"btf_trace_sched_process_fork", BTF_KIND_TYPEDEF},
    [P_EXIT] = {"tapio_exit", "sched_process_exit", T(TYPE_PROCESS_EXIT),
		"btf_trace_sched_process_exit", BTF_KIND_TYPEDEF},
    [P_SOCK] = {"tapio_inet_sock_set_state", "inet_sock_set_state",
		T(TYPE_TCP_CONNECT) | T(TYPE_TCP_ACCEPT) | T(TYPE_TCP_CLOSE) | T(TYPE_TCP_LISTEN),
		"btf_trace_inet_sock_set_state", BTF_KIND_TYPEDEF},
    [P_RETRANS] = {"tapio_tcp_retransmit", "tcp_retransmit_skb", T(TYPE_TCP_RETRANSMIT),
		   "btf_trace_tcp_retransmit_skb", BTF_KIND_TYPEDEF},
    [P_SEND_RST] = {"tapio_tcp_send_reset", "tcp_send_reset", T(TYPE_TCP_RESET),
		    "btf_trace_tcp_send_reset", BTF_KIND_TYPEDEF},
    [P_RECV_RST] = {"tapio_tcp_receive_reset", "tcp_receive_reset", T(TYPE_TCP_RESET),
		    "btf_trace_tcp_receive_reset", BTF_KIND_TYPEDEF},
    [P_MKDIR] = {"tapio_cgroup_mkdir", "cgroup_mkdir", T(TYPE_CGROUP_MKDIR),
		 "btf_trace_cgroup_mkdir", BTF_KIND_TYPEDEF},
    [P_RMDIR] = {"tapio_cgroup_rmdir", "cgroup_rmdir", T(TYPE_CGROUP_RMDIR),
		 "btf_trace_cgroup_rmdir", BTF_KIND_TYPEDEF},
    [P_ATTACH] = {"tapio_cgroup_attach", "cgroup_attach_task", T(TYPE_CGROUP_ATTACH),
		  "btf_trace_cgroup_attach_task", BTF_KIND_TYPEDEF},
    [P_OOM] = {"tapio_mark_victim", "mark_victim", T(TYPE_OOM_KILL), "btf_trace_mark_victim",
	       BTF_KIND_TYPEDEF},
    [P_OOM_SIGNAL] = {"tapio_oom_signal", "signal_generate", T(TYPE_OOM_KILL),
		      "btf_trace_signal_generate", BTF_KIND_TYPEDEF},
    /* Optional: out_of_memory()'s oom_control, for the exact limit of
     * oom.kill (bpf/oom.bpf.c); a pair, used only when both attach. */
    [P_OOM_ENTER] = {"tapio_oom_enter", "fentry/out_of_memory", T(TYPE_OOM_KILL), "out_of_memory",
		     BTF_KIND_FUNC, true},
    [P_OOM_EXIT] = {"tapio_oom_exit", "fexit/out_of_memory", T(TYPE_OOM_KILL), "out_of_memory",
		    BTF_KIND_FUNC, true},
    /* Produces no event: seeds the socket owners of older sockets. */
    [P_SEED] = {"tapio_seed_sockets", "iter/task_file", 0, "bpf_iter__task_file", BTF_KIND_STRUCT},
};

static bool prog_needed(int i, uint64_t types)
{
	return (i == P_SOCK || i == P_SEED ? TCP_TYPES : kernel_progs[i].types) & types;
}

const struct kernel_prog_info *kernel_programs(size_t *n)
{
	*n = P__N;
	return kernel_progs;
}

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
	return btf__find_by_name_kind(vmlinux, p->btf_type, p->btf_kind) >= 0;
}

/* True when tracing programs may use socket-local storage: the kernel has
 * bpf_sk_storage_get for them and bpf_sock_from_file (both 5.11, "bpf: Allow
 * using bpf_sk_storage in FENTRY/FEXIT/RAW_TP"). Otherwise the socks hash
 * (bpf/maps.h). TAPIO_TEST_SOCKS_HASH=1 forces the hash, to test it. */
static bool sk_storage_for_tracing(const struct btf *vmlinux)
{
	const char *force = getenv("TAPIO_TEST_SOCKS_HASH");

	if (force && !strcmp(force, "1"))
		return false;
	return vmlinux &&
	       btf__find_by_name_kind(vmlinux, "bpf_sk_storage_get_tracing", BTF_KIND_FUNC) >= 0 &&
	       btf__find_by_name_kind(vmlinux, "bpf_sock_from_file", BTF_KIND_FUNC) >= 0;
}

void kernel_plan(const struct load_cfg *cfg, struct load_result *r)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	bool old_oom = mark_victim_is_old(vmlinux);

	r->sk_storage = sk_storage_for_tracing(vmlinux);

	for (int i = 0; i < P__N; i++) {
		if (!prog_needed(i, cfg->types) || (i == P_OOM_SIGNAL && !old_oom)) {
			r->off |= 1ull << i;
		} else if (!target_exists(vmlinux, &kernel_progs[i])) {
			r->off |= 1ull << i;
			r->failed |= 1ull << i;
			snprintf(r->why[i], sizeof(r->why[i]),
				 "%s is not in this kernel (no BTF type %s)",
				 kernel_progs[i].tracepoint, kernel_progs[i].btf_type);
		}
	}
	btf__free(vmlinux);
}

int kernel_check_env(char *err, size_t errlen)
{
	if (!kernel_collector_available()) {
		err_printf(err, errlen,
			   "this kernel has no BTF (/sys/kernel/btf/vmlinux): tapio needs 5.8+ "
			   "built with CONFIG_DEBUG_INFO_BTF=y");
		return -ENOTSUP;
	}
	if (!have_bpf_caps()) {
		err_printf(err, errlen,
			   "not allowed to load BPF programs: run as root (needs CAP_BPF and "
			   "CAP_PERFMON, or CAP_SYS_ADMIN)");
		return -EPERM;
	}
	kernel_libbpf_setup();
	return 0;
}

int kernel_probe_programs(bool *ok, char (*why)[128], char *err, size_t errlen)
{
	struct load_cfg cfg = {.types = KERNEL_TYPES_ALL, .ringbuf_size = 4096 * 16};
	struct load_result *r;
	int rc = kernel_check_env(err, errlen);

	if (rc)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	/* Pretend both mark_victim forms are wanted, so the probe reports on
	 * what this kernel would load. */
	rc = kernel_load(&cfg, r, err, errlen);
	if (rc && rc != -ENOENT) {
		free(r);
		return rc;
	}
	for (int i = 0; i < P__N; i++) {
		ok[i] = !(r->off & (1ull << i));
		snprintf(why[i], 128, "%s",
			 r->failed & (1ull << i) ? r->why[i]
			 : ok[i]		 ? ""
						 : "not needed on this kernel");
	}
	tapio__destroy(r->skel);
	free(r);
	return 0;
}
