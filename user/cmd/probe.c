/* SPDX-License-Identifier: Apache-2.0 */
/* `tapio probe`: what this kernel offers tapio, and which BPF programs would
 * load. Exits 0 when every program this kernel needs loads. */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "core/event.h"
#include "kernel/kernel.h"

static void types_text(uint64_t types, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned t = 1; t <= TYPE_KERNEL__LAST && n < size; t++)
		if (types & (1ull << t))
			n +=
			    snprintf(buf + n, size - n, "%s%s", n ? "," : "", kernel_type_names[t]);
}

static void print_caps(void)
{
	static const struct {
		int cap;
		const char *name;
	} caps[] = {
	    {CAP_BPF, "CAP_BPF"},
	    {CAP_PERFMON, "CAP_PERFMON"},
	    {CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
	    {CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE"},
	};
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2] = {0};

	printf("capabilities:");
	if (syscall(SYS_capget, &hdr, data) != 0) {
		printf(" unknown (capget: %s)\n", strerror(errno));
		return;
	}
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		bool has = data[caps[i].cap / 32].effective & (1u << (caps[i].cap % 32));

		printf(" %s%s", has ? "+" : "-", caps[i].name);
	}
	printf("  (loading needs CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON)\n");
}

/* Which mark_victim tracepoint this kernel has. */
static void print_mark_victim(struct btf *btf)
{
	int id = btf__find_by_name_kind(btf, "trace_event_raw_mark_victim", BTF_KIND_STRUCT);
	bool newer = false;

	if (id >= 0) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_member *m = btf_members(t);

		for (unsigned i = 0; i < btf_vlen(t); i++, m++)
			newer |= !strcmp(btf__name_by_offset(btf, m->name_off), "total_vm");
	}
	printf("mark_victim: %s\n", id < 0  ? "missing"
				    : newer ? "task form: the victim task, RSS and "
					      "oom_score_adj from the tracepoint's task"
					    : "pid form (older kernels): the victim task found "
					      "through its SIGKILL (signal_generate)");
}

/* Kernel, BTF, capabilities, ring buffer, mark_victim, tracepoints. */
static void print_kernel(const struct kernel_prog_info *progs, size_t n)
{
	struct utsname u;
	struct stat st;
	struct btf *btf = NULL;

	if (uname(&u) == 0)
		printf("kernel: %s %s %s\n", u.sysname, u.release, u.machine);
	if (stat("/sys/kernel/btf/vmlinux", &st) == 0) {
		printf("btf: yes (/sys/kernel/btf/vmlinux, %lld bytes)\n", (long long)st.st_size);
		btf = btf__load_vmlinux_btf();
	} else {
		printf("btf: no (/sys/kernel/btf/vmlinux: %s); the kernel needs "
		       "CONFIG_DEBUG_INFO_BTF=y\n",
		       strerror(errno));
	}
	print_caps();
	int rc = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL);
	printf("ringbuf: %s\n", rc == 1	  ? "yes"
				: rc == 0 ? "no (needs 5.8+)"
					  : "unknown (probe failed: not privileged?)");
	if (btf)
		print_mark_victim(btf);
	/* The same test as kernel/probe.c's (bpf/README.md, socket owners). */
	if (btf)
		printf("socket owners: %s\n",
		       btf__find_by_name_kind(btf, "bpf_sk_storage_get_tracing", BTF_KIND_FUNC) >=
				   0 &&
			       btf__find_by_name_kind(btf, "bpf_sock_from_file", BTF_KIND_FUNC) >= 0
			   ? "socket-local storage"
			   : "socks hash (no socket-local storage for tracing programs)");
	printf("tracepoints:\n");
	for (size_t i = 0; i < n; i++) {
		bool have = true;

		if (btf)
			have =
			    btf__find_by_name_kind(btf, progs[i].btf_type, progs[i].btf_kind) >= 0;
		printf("  %-22s %s\n", progs[i].tracepoint,
		       !btf   ? "unknown (no BTF)"
		       : have ? "present"
			      : "missing");
	}
	btf__free(btf);
}

/* Which programs load. Returns the number that fail but are needed. */
static int print_programs(const struct kernel_prog_info *progs, size_t n, const bool *ok,
			  char (*why)[128])
{
	char types[256];
	bool any = false;
	int failed = 0;

	for (size_t i = 0; i < n; i++)
		any |= ok[i];
	/* A tp_btf program that loads is the proof: each one is attached by
	 * BTF id, with no tracefs. */
	printf("tp_btf: %s\n",
	       any ? "yes (the programs below load as tp_btf)" : "no program loads");
	printf("programs:\n");
	for (size_t i = 0; i < n; i++) {
		bool needed = strcmp(why[i], "not needed on this kernel") != 0;

		types_text(progs[i].types, types, sizeof(types));
		if (!types[0])
			snprintf(types, sizeof(types), "-"); /* seeds owners of older sockets */
		printf("  %-26s %-22s %-8s %s%s%s\n", progs[i].prog, progs[i].tracepoint,
		       ok[i]		   ? "loads"
		       : !needed	   ? "unused"
		       : progs[i].optional ? "absent"
					   : "FAILS",
		       types, why[i][0] ? ": " : "", why[i]);
		if (!ok[i] && needed && !progs[i].optional)
			failed++;
	}
	return failed;
}

int cmd_probe(int argc, char **argv)
{
	size_t n;
	const struct kernel_prog_info *progs = kernel_programs(&n);
	bool ok[64] = {0};
	char why[64][128];
	char err[512] = "";

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: tapio probe\n");
		return 2;
	}
	if (n > 64)
		n = 64;
	print_kernel(progs, n);
	if (kernel_probe_programs(ok, why, err, sizeof(err))) {
		printf("programs: cannot check: %s\n", err);
		return 1;
	}
	int failed = print_programs(progs, n, ok, why);
	if (failed)
		printf("result: %d program(s) cannot load; `tapio trace` runs without them and "
		       "names them\n",
		       failed);
	else
		printf("result: every program loads\n");
	return failed ? 1 : 0;
}
