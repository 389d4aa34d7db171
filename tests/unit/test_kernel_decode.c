// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the kernel event decoder (user/kernel/kernel_decode.c): JSON and
 * text for every type, escaping of odd bytes, IPv6, truncated argv, and
 * short, unknown and random records. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "bpf/events.h"
#include "kernel/kernel.h"
#include "kernel/kernel_decode.h"
#include "util/strbuf.h"

static void header(struct event_header *h, unsigned type)
{
	memset(h, 0, sizeof(*h));
	h->ts = 123456789;
	h->cgroup_id = 4242;
	h->type = type;
	h->cpu = 1;
	h->pid = 101;
	h->tgid = 100;
	h->ppid = 1;
	h->uid = 1000;
	h->gid = 1001;
	h->pidns = 4026531836u;
	h->mntns = 4026531840u;
	memcpy(h->comm, "worker", 6);
}

/* Decodes to JSON, checks it parses, and returns the cJSON object. */
static cJSON *decode(const void *rec, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	int rc = kevent_json(rec, len, &sb);

	cr_assert_eq(rc, 0, "kevent_json: %d", rc);
	cr_assert_eq(sb.err, 0);
	cJSON *j = cJSON_Parse(sb.buf);
	cr_assert_not_null(j, "not JSON: %s", sb.buf);
	sb_free(&sb);
	return j;
}

static char *text(const void *rec, size_t len)
{
	struct strbuf sb = STRBUF_INIT;

	cr_assert_eq(kevent_text(rec, len, &sb), 0);
	cr_assert_eq(sb.err, 0);
	return sb.buf ? sb.buf : strdup("");
}

static const char *jstr(cJSON *j, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);

	cr_assert(cJSON_IsString(v), "%s is not a string", k);
	return v->valuestring;
}

static double jnum(cJSON *j, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);

	cr_assert(cJSON_IsNumber(v), "%s is not a number", k);
	return v->valuedouble;
}

static int jbool(cJSON *j, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);

	cr_assert(cJSON_IsBool(v), "%s is not a bool", k);
	return cJSON_IsTrue(v);
}

static size_t exec_set_args(struct exec_event *e, const char *args, size_t n)
{
	memcpy(e->args, args, n);
	e->args_len = n;
	return offsetof(struct exec_event, args) + n;
}

Test(kernel_decode, common_header_fields)
{
	struct fork_event e;

	header(&e.hdr, EVENT_PROCESS_FORK);
	e.parent_pid = 100;
	e.parent_tgid = 100;
	e.child_pid = 200;
	e.child_tgid = 200;
	cJSON *j = decode(&e, sizeof(e));
	cr_assert_eq(jnum(j, "pid"), 100);
	cr_assert_eq(jnum(j, "tid"), 101);
	cr_assert_eq(jnum(j, "tgid"), 100);
	cr_assert_eq(jnum(j, "ppid"), 1);
	cr_assert_eq(jnum(j, "uid"), 1000);
	cr_assert_eq(jnum(j, "gid"), 1001);
	cr_assert_str_eq(jstr(j, "comm"), "worker");
	cr_assert_eq(jnum(j, "cgroup_id"), 4242);
	cr_assert_str_eq(jstr(j, "cgroup_hierarchy"), "v2");
	cr_assert_eq(jnum(j, "pidns"), 4026531836.0);
	cr_assert_eq(jnum(j, "mntns"), 4026531840.0);
	cr_assert_eq(jnum(j, "cpu"), 1);
	cr_assert_eq(jnum(j, "boot_ns"), 123456789);
	cr_assert(jbool(j, "task_known"));
	cr_assert_eq(jnum(j, "child_pid"), 200);
	cr_assert_eq(jnum(j, "child_tgid"), 200);
	cr_assert_eq(jnum(j, "parent_pid"), 100);
	cr_assert_eq(jnum(j, "parent_tgid"), 100);
	cJSON_Delete(j);

	char *t = text(&e, sizeof(e));
	cr_assert_str_eq(t, "child=200");
	free(t);

	/* A v1/hybrid host's task in the v1 memory hierarchy. */
	e.hdr.flags = HDR_F_CGROUP_V1;
	j = decode(&e, sizeof(e));
	cr_assert_eq(jnum(j, "cgroup_id"), 4242);
	cr_assert_str_eq(jstr(j, "cgroup_hierarchy"), "v1:memory");
	cr_assert(jbool(j, "task_known"));
	cJSON_Delete(j);
	e.hdr.flags = 0;

	uint32_t pid;
	char comm[16];
	cr_assert_eq(kevent_pid_comm(&e, sizeof(e), &pid, comm), 0);
	cr_assert_eq(pid, 100);
	cr_assert_str_eq(comm, "worker");
}

/* Changes one field of the header, by step (0 to TASK_STEPS - 1): each of
 * the task part's fields, then the ones outside it. */
#define TASK_STEPS 14
static void change_one(struct event_header *h, int step)
{
	switch (step) {
	case 0: /* same slot, other thread */
		h->pid += KEVENT_TASK_SLOTS;
		break;
	case 1:
		h->tgid++;
		break;
	case 2:
		h->ppid++;
		break;
	case 3:
		h->uid++;
		break;
	case 4:
		h->gid++;
		break;
	case 5:
		h->pidns++;
		break;
	case 6:
		h->mntns++;
		break;
	case 7:
		h->cgroup_id++;
		break;
	case 8: /* 16 bytes, no NUL */
		h->comm[15] = 'x';
		break;
	case 9: /* escaped */
		h->comm[0] = '"';
		break;
	case 10:
		h->flags ^= HDR_F_CGROUP_V1;
		break;
	case 11:
		h->flags ^= HDR_F_NO_TASK;
		break;
	case 12:
		h->cpu++;
		break;
	default:
		h->ts += 1000;
		break;
	}
}

/* Every header field of the JSON json against h. */
static void check_header(const char *json, const struct event_header *h, int step)
{
	cJSON *j = cJSON_Parse(json);
	char comm[17];

	cr_assert_not_null(j, "step %d: not JSON: %s", step, json);
	cr_assert_eq(jnum(j, "tid"), h->pid, "step %d", step);
	cr_assert_eq(jnum(j, "pid"), h->tgid, "step %d", step);
	cr_assert_eq(jnum(j, "ppid"), h->ppid, "step %d", step);
	cr_assert_eq(jnum(j, "uid"), h->uid, "step %d", step);
	cr_assert_eq(jnum(j, "gid"), h->gid, "step %d", step);
	cr_assert_eq(jnum(j, "pidns"), h->pidns, "step %d", step);
	cr_assert_eq(jnum(j, "mntns"), h->mntns, "step %d", step);
	cr_assert_eq(jnum(j, "cgroup_id"), (double)h->cgroup_id, "step %d", step);
	cr_assert_eq(jnum(j, "cpu"), h->cpu, "step %d", step);
	cr_assert_eq(jnum(j, "boot_ns"), (double)h->ts, "step %d", step);
	cr_assert_eq(jbool(j, "task_known"), !(h->flags & HDR_F_NO_TASK), "step %d", step);
	cr_assert_str_eq(jstr(j, "cgroup_hierarchy"),
			 h->flags & HDR_F_CGROUP_V1 ? "v1:memory" : "v2", "step %d", step);
	memcpy(comm, h->comm, 16);
	comm[16] = '\0';
	cr_assert_str_eq(jstr(j, "comm"), comm, "step %d", step);
	cJSON_Delete(j);
}

/* The task part of the header is reused from a per-thread cache when every
 * field it was made from is equal: each field changed alone after a cached
 * record must show in the next record, and the fields outside the task part
 * (cpu, boot_ns, task_known) change with each record. */
Test(kernel_decode, task_part_cache_follows_every_field)
{
	struct fork_event e;
	struct strbuf ref = STRBUF_INIT, got = STRBUF_INIT;

	memset(&e, 0, sizeof(e));
	header(&e.hdr, EVENT_PROCESS_FORK);
	for (int step = 0; step < TASK_STEPS; step++) {
		struct fork_event before = e;

		cr_assert_eq(kevent_json(&e, sizeof(e), &got), 0); /* caches e's task part */
		change_one(&e.hdr, step);
		cr_assert_neq(memcmp(&before, &e, sizeof(e)), 0);
		sb_reset(&got);
		cr_assert_eq(kevent_json(&e, sizeof(e), &got), 0);
		/* the same record formatted in a fresh thread-local cache state:
		 * every slot of this thread holds something else first */
		for (unsigned k = 0; k < KEVENT_TASK_SLOTS; k++) {
			struct fork_event other = e;
			struct strbuf tmp = STRBUF_INIT;

			other.hdr.pid = k;
			other.hdr.uid = e.hdr.uid + 7;
			cr_assert_eq(kevent_json(&other, sizeof(other), &tmp), 0);
			sb_free(&tmp);
		}
		sb_reset(&ref);
		cr_assert_eq(kevent_json(&e, sizeof(e), &ref), 0);
		cr_assert_str_eq(got.buf, ref.buf, "step %d: cached %s, fresh %s", step, got.buf,
				 ref.buf);
		check_header(got.buf, &e.hdr, step);
	}
	sb_free(&ref);
	sb_free(&got);
}

Test(kernel_decode, exec_args_and_escaping)
{
	static struct exec_event e;
	/* argv: a quote, a control byte, an escape sequence, invalid UTF-8, and
	 * valid UTF-8 */
	static const char args[] =
	    "/bin/x\0say \"hi\"\0bell\x07\0\x1b[31mred\0bad\xff\xfe\0caf\xc3\xa9";
	size_t len;

	header(&e.hdr, EVENT_PROCESS_EXEC);
	memcpy(e.hdr.comm, "a\"b\x01\xff", 6);
	strcpy(e.filename, "/bin/x\nnewline");
	e.filename_len = strlen(e.filename);
	e.argc = 6;
	e.euid = 65534;
	e.egid = 65533;
	len = exec_set_args(&e, args, sizeof(args)); /* with the final NUL */

	cJSON *j = decode(&e, len);
	cr_assert_eq(jnum(j, "euid"), 65534);
	cr_assert_eq(jnum(j, "egid"), 65533);
	cr_assert_not(jbool(j, "args_unread"));
	cr_assert_str_eq(jstr(j, "comm"), "a\"b\x01\xef\xbf\xbd"); /* invalid byte -> U+FFFD */
	cr_assert_str_eq(jstr(j, "filename"), "/bin/x\nnewline");
	cr_assert_eq(jnum(j, "argc"), 6);
	cr_assert_not(jbool(j, "args_truncated"));
	cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "args");
	cr_assert(cJSON_IsArray(a));
	cr_assert_eq(cJSON_GetArraySize(a), 6);
	cr_assert_str_eq(cJSON_GetArrayItem(a, 0)->valuestring, "/bin/x");
	cr_assert_str_eq(cJSON_GetArrayItem(a, 1)->valuestring, "say \"hi\"");
	cr_assert_str_eq(cJSON_GetArrayItem(a, 2)->valuestring, "bell\x07");
	cr_assert_str_eq(cJSON_GetArrayItem(a, 3)->valuestring, "\x1b[31mred");
	cr_assert_str_eq(cJSON_GetArrayItem(a, 4)->valuestring, "bad\xef\xbf\xbd\xef\xbf\xbd");
	cr_assert_str_eq(cJSON_GetArrayItem(a, 5)->valuestring, "caf\xc3\xa9");
	cJSON_Delete(j);

	/* Text: argv[1..], odd bytes as \xNN, valid UTF-8 kept, backslash escaped. */
	char *t = text(&e, len);
	cr_assert_str_eq(
	    t, "/bin/x\\x0anewline say \"hi\" bell\\x07 \\x1b[31mred bad\\xff\\xfe caf\xc3\xa9");
	free(t);

	uint32_t pid;
	char comm[16];
	cr_assert_eq(kevent_pid_comm(&e, len, &pid, comm), 0);
	cr_assert_eq(memcmp(comm, "a\"b\x01\xff", 6), 0);
}

Test(kernel_decode, exec_exe_memfd_and_capabilities)
{
	static struct exec_event e;
	size_t len;

	header(&e.hdr, EVENT_PROCESS_EXEC);
	strcpy(e.filename, "/dev/fd/3");
	e.filename_len = strlen(e.filename);
	strcpy(e.exe, "/memfd:payload (deleted)");
	e.exe_len = strlen(e.exe);
	e.flags = EXEC_F_EXE_KNOWN | EXEC_F_MEMFD;
	e.cap_effective = 0x000001fffeffdfffull;
	e.cap_permitted = 0x000001fffeffffffull;
	e.cap_inheritable = 0;
	e.cap_ambient = 0x1000;
	len = exec_set_args(&e, "true", 5);

	cJSON *j = decode(&e, len);
	cr_assert_str_eq(jstr(j, "filename"), "/dev/fd/3");
	cr_assert_str_eq(jstr(j, "exe"), "/memfd:payload (deleted)");
	cr_assert(jbool(j, "memfd"));
	cr_assert_not(jbool(j, "exe_truncated"));
	cr_assert_str_eq(jstr(j, "cap_effective"), "000001fffeffdfff");
	cr_assert_str_eq(jstr(j, "cap_permitted"), "000001fffeffffff");
	cr_assert_str_eq(jstr(j, "cap_inheritable"), "0000000000000000");
	cr_assert_str_eq(jstr(j, "cap_ambient"), "0000000000001000");
	cJSON_Delete(j);

	/* A cut path is flagged; exe_len bounds what is shown. */
	strcpy(e.exe, "/b/c/true");
	e.exe_len = 4;
	e.flags = EXEC_F_EXE_KNOWN | EXEC_F_EXE_TRUNCATED;
	j = decode(&e, len);
	cr_assert_str_eq(jstr(j, "exe"), "/b/c");
	cr_assert(jbool(j, "exe_truncated"));
	cr_assert_not(jbool(j, "memfd"));
	cJSON_Delete(j);

	/* Not read: "" whatever the buffer holds. */
	e.flags = 0;
	j = decode(&e, len);
	cr_assert_str_eq(jstr(j, "exe"), "");
	cJSON_Delete(j);
}

Test(kernel_decode, exec_truncated_argv)
{
	static struct exec_event e;
	char args[TAPIO_ARGS_MAX];
	size_t len;

	header(&e.hdr, EVENT_PROCESS_EXEC);
	strcpy(e.filename, "/bin/true");
	e.filename_len = 9;
	e.argc = 100;
	e.args_truncated = 1;
	/* "/bin/true\0" then "aaaa...a\0" pieces; the last one is cut with no NUL */
	memset(args, 'a', sizeof(args));
	memcpy(args, "/bin/true", 10);
	for (size_t i = 10 + 99; i < sizeof(args); i += 100)
		args[i] = '\0';
	len = exec_set_args(&e, args, sizeof(args));

	cJSON *j = decode(&e, len);
	cr_assert(jbool(j, "args_truncated"));
	cr_assert_eq(jnum(j, "argc"), 100);
	cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "args");
	int n = cJSON_GetArraySize(a);
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += strlen(cJSON_GetArrayItem(a, i)->valuestring) + 1;
	cr_assert_eq(total - 1, TAPIO_ARGS_MAX, "the strings cover the 1024 bytes");
	cr_assert_str_eq(cJSON_GetArrayItem(a, 0)->valuestring, "/bin/true");
	const char *last = cJSON_GetArrayItem(a, n - 1)->valuestring;
	cr_assert_lt(strlen(last), 99);
	cr_assert_gt(strlen(last), 0);
	cJSON_Delete(j);

	char *t = text(&e, len);
	size_t tl = strlen(t);
	cr_assert(tl > 4 && !strcmp(t + tl - 4, " ..."), "%s", t);
	cr_assert_eq(strncmp(t, "/bin/true aaaa", 14), 0);
	free(t);
}

Test(kernel_decode, exec_args_must_fit_the_record)
{
	static struct exec_event e;
	struct strbuf sb = STRBUF_INIT;
	size_t len;

	header(&e.hdr, EVENT_PROCESS_EXEC);
	len = exec_set_args(&e, "a\0b", 4);
	cr_assert_eq(kevent_used_len(&e, len), len);
	cr_assert_eq(kevent_used_len(&e, sizeof(e)), len, "the used part of a full-size record");
	/* args_len says 4 but only 3 bytes arrived */
	cr_assert_eq(kevent_json(&e, len - 1, &sb), -EINVAL);
	cr_assert_eq(kevent_used_len(&e, len - 1), 0);
	/* args_len beyond the bound */
	e.args_len = TAPIO_ARGS_MAX + 1;
	cr_assert_eq(kevent_json(&e, sizeof(e), &sb), -EINVAL);
	cr_assert_eq(kevent_text(&e, sizeof(e), &sb), -EINVAL);
	cr_assert_eq(sb.len, 0, "nothing appended on error");
	sb_free(&sb);
}

Test(kernel_decode, exec_filename_without_nul)
{
	static struct exec_event e;

	header(&e.hdr, EVENT_PROCESS_EXEC);
	memset(e.filename, 'f', sizeof(e.filename));
	e.filename_len = 5000; /* lies: the bound is the array */
	e.filename_truncated = 1;
	cJSON *j = decode(&e, offsetof(struct exec_event, args));
	cr_assert_eq(strlen(jstr(j, "filename")), TAPIO_FILENAME_MAX);
	cr_assert(jbool(j, "filename_truncated"));
	cJSON_Delete(j);
}

Test(kernel_decode, exit_status)
{
	struct exit_event e;
	cJSON *j;
	char *t;

	header(&e.hdr, EVENT_PROCESS_EXIT);
	e.duration_ns = 1500000;
	e.status = 7 << 8;
	j = decode(&e, sizeof(e));
	cr_assert_eq(jnum(j, "exit_code"), 7);
	cr_assert_eq(jnum(j, "signal"), 0);
	cr_assert_not(jbool(j, "core_dumped"));
	cr_assert_eq(jnum(j, "duration_ns"), 1500000);
	cJSON_Delete(j);
	t = text(&e, sizeof(e));
	cr_assert_str_eq(t, "code=7 lifetime=1.500ms");
	free(t);

	e.status = 9;
	e.duration_ns = 2500000000ull;
	j = decode(&e, sizeof(e));
	cr_assert_eq(jnum(j, "exit_code"), 0);
	cr_assert_eq(jnum(j, "signal"), 9);
	cJSON_Delete(j);
	t = text(&e, sizeof(e));
	cr_assert_str_eq(t, "code=0 signal=9 lifetime=2.500s");
	free(t);

	e.status = 0x80 | 11;
	j = decode(&e, sizeof(e));
	cr_assert_eq(jnum(j, "signal"), 11);
	cr_assert(jbool(j, "core_dumped"));
	cJSON_Delete(j);
}

static void tcp_event_v6(struct tcp_event *e, unsigned type)
{
	memset(e, 0, sizeof(*e));
	header(&e->hdr, type);
	e->family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", e->saddr);
	inet_pton(AF_INET6, "::ffff:10.0.0.1", e->daddr);
	e->sport = 443;
	e->dport = 51000;
	e->oldstate = 1;
	e->state = 7;
	e->flags = TCP_F_OWNER_KNOWN | TCP_F_START_SEEN;
}

Test(kernel_decode, tcp_ipv6_close)
{
	struct tcp_event e;

	tcp_event_v6(&e, EVENT_TCP_CLOSE);
	e.duration_ns = 2000000;
	e.bytes_sent = 1000;
	e.bytes_received = 500;
	e.bytes_acked = 1002;
	e.raw_bytes_received = 501;
	e.srtt_us = 123;
	e.total_retrans = 4;
	e.error = ETIMEDOUT;
	cJSON *j = decode(&e, sizeof(e));
	cr_assert_str_eq(jstr(j, "family"), "ipv6");
	cr_assert_str_eq(jstr(j, "saddr"), "2001:db8::1");
	cr_assert_str_eq(jstr(j, "daddr"), "::ffff:10.0.0.1");
	cr_assert_eq(jnum(j, "sport"), 443);
	cr_assert_eq(jnum(j, "dport"), 51000);
	cr_assert_str_eq(jstr(j, "oldstate"), "ESTABLISHED");
	cr_assert_str_eq(jstr(j, "state"), "CLOSE");
	cr_assert(jbool(j, "owner_known"));
	cr_assert(jbool(j, "start_seen"));
	cr_assert_eq(jnum(j, "duration_ns"), 2000000);
	cr_assert_eq(jnum(j, "bytes_sent"), 1000);
	cr_assert_eq(jnum(j, "bytes_received"), 500);
	cr_assert_eq(jnum(j, "tcpi_bytes_acked"), 1002);
	cr_assert_eq(jnum(j, "tcpi_bytes_received"), 501);
	cr_assert_eq(jnum(j, "srtt_us"), 123);
	cr_assert_eq(jnum(j, "total_retrans"), 4);
	cr_assert_eq(jnum(j, "errno"), ETIMEDOUT);
	cr_assert_str_eq(jstr(j, "error"), "ETIMEDOUT");
	cJSON_Delete(j);

	char *t = text(&e, sizeof(e));
	cr_assert_str_eq(t, "[2001:db8::1]:443 -> [::ffff:10.0.0.1]:51000 tx=1000 rx=500 "
			    "dur=2.000ms error=ETIMEDOUT");
	free(t);
}

Test(kernel_decode, tcp_ipv4_connect_and_reset)
{
	struct tcp_event e;
	cJSON *j;
	char *t;

	memset(&e, 0, sizeof(e));
	header(&e.hdr, EVENT_TCP_CONNECT);
	e.family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", e.saddr);
	inet_pton(AF_INET, "192.168.1.20", e.daddr);
	e.sport = 40000;
	e.dport = 80;
	e.oldstate = 2;
	e.state = 1;
	j = decode(&e, sizeof(e));
	cr_assert_str_eq(jstr(j, "family"), "ipv4");
	cr_assert_str_eq(jstr(j, "saddr"), "127.0.0.1");
	cr_assert_str_eq(jstr(j, "daddr"), "192.168.1.20");
	cr_assert_str_eq(jstr(j, "oldstate"), "SYN_SENT");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "bytes_sent"),
		       "only tcp.close has bytes");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "errno"), "only tcp.close has errno");
	cr_assert_eq(jnum(j, "handshake_ns"), 0);
	cJSON_Delete(j);
	e.handshake_ns = 1500000;
	t = text(&e, sizeof(e));
	cr_assert_str_eq(t, "127.0.0.1:40000 -> 192.168.1.20:80 handshake=1.500ms");
	free(t);
	j = decode(&e, sizeof(e));
	cr_assert_eq(jnum(j, "handshake_ns"), 1500000);
	cJSON_Delete(j);

	e.hdr.type = EVENT_TCP_LISTEN;
	e.oldstate = 7;
	e.state = 10;
	j = decode(&e, sizeof(e));
	cr_assert_str_eq(jstr(j, "state"), "LISTEN");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "handshake_ns"));
	cJSON_Delete(j);
	e.hdr.type = EVENT_TCP_CONNECT;
	e.oldstate = 2;
	e.state = 1;
	e.handshake_ns = 0;

	e.hdr.type = EVENT_TCP_RESET;
	e.hdr.flags = HDR_F_NO_TASK;
	e.flags = TCP_F_RESET_RECEIVED;
	e.state = 2;
	e.reason = 0;
	j = decode(&e, sizeof(e));
	cr_assert_str_eq(jstr(j, "direction"), "received");
	cr_assert_not(jbool(j, "task_known"));
	cJSON_Delete(j);
	t = text(&e, sizeof(e));
	cr_assert_str_eq(t, "127.0.0.1:40000 -> 192.168.1.20:80 received SYN_SENT");
	free(t);

	e.flags = 0;
	e.reason = 1;
	e.state = 99; /* no such state */
	j = decode(&e, sizeof(e));
	cr_assert_str_eq(jstr(j, "direction"), "sent");
	cr_assert_eq(jnum(j, "reason"), 1);
	cr_assert_str_eq(jstr(j, "state"), "UNKNOWN");
	cJSON_Delete(j);
}

Test(kernel_decode, tcp_unknown_family)
{
	struct tcp_event e;

	memset(&e, 0, sizeof(e));
	header(&e.hdr, EVENT_TCP_RETRANSMIT);
	e.family = 1; /* AF_UNIX: not ours */
	cJSON *j = decode(&e, sizeof(e));
	cr_assert_str_eq(jstr(j, "family"), "unknown");
	cr_assert_str_eq(jstr(j, "saddr"), "?");
	cJSON_Delete(j);
}

Test(kernel_decode, cgroup_path_and_attach)
{
	static struct cgroup_event e;
	static const char path[] = "/kubepods/pod\x01\xff/\"x\"";
	size_t len;

	header(&e.hdr, EVENT_CGROUP_ATTACH);
	e.id = 9876;
	e.level = 2;
	e.hierarchy_id = 0;
	e.task_pid = 300;
	e.task_tgid = 300;
	memcpy(e.task_comm, "sleep", 5);
	e.threadgroup = 1;
	memcpy(e.path, path, sizeof(path));
	e.path_len = sizeof(path) - 1;
	len = offsetof(struct cgroup_event, path) + e.path_len;
	cr_assert_eq(kevent_used_len(&e, sizeof(e)), len);

	cJSON *j = decode(&e, len); /* no NUL in the record: the length bounds it */
	cr_assert_str_eq(jstr(j, "path"), "/kubepods/pod\x01\xef\xbf\xbd/\"x\"");
	cr_assert_eq(jnum(j, "id"), 9876);
	cr_assert_eq(jnum(j, "level"), 2);
	cr_assert_eq(jnum(j, "hierarchy_id"), 0);
	cr_assert_eq(jnum(j, "task_pid"), 300);
	cr_assert_str_eq(jstr(j, "task_comm"), "sleep");
	cr_assert(jbool(j, "threadgroup"));
	cJSON_Delete(j);

	char *t = text(&e, len);
	cr_assert_str_eq(
	    t, "/kubepods/pod\\x01\\xff/\"x\" id=9876 level=2 hierarchy=0 task=300(sleep)");
	free(t);

	/* path_len past the record, or past the bound */
	struct strbuf sb = STRBUF_INIT;
	cr_assert_eq(kevent_json(&e, len - 1, &sb), -EINVAL);
	e.path_len = TAPIO_CGROUP_PATH_MAX;
	cr_assert_eq(kevent_json(&e, sizeof(e), &sb), -EINVAL);
	sb_free(&sb);
}

Test(kernel_decode, oom_kill)
{
	struct oom_event e;

	memset(&e, 0, sizeof(e));
	header(&e.hdr, EVENT_OOM_KILL);
	memcpy(e.hdr.comm, "hog", 4);
	e.hdr.tgid = 555;
	e.victim_pid = 555;
	e.total_vm = 100000;
	e.anon_rss = 48000;
	e.file_rss = 1200;
	e.shmem_rss = 4;
	e.oom_score_adj = -998;
	e.trigger_pid = 777;
	e.trigger_tgid = 777;
	memcpy(e.trigger_comm, "alloc", 5);
	e.trigger_cgroup_id = 11;
	e.flags = OOM_F_VICTIM_TASK;
	cJSON *j = decode(&e, sizeof(e));
	cr_assert_eq(jnum(j, "victim_pid"), 555);
	cr_assert_str_eq(jstr(j, "victim_comm"), "hog");
	cr_assert(jbool(j, "victim_task_known"));
	cr_assert_eq(jnum(j, "total_vm"), 100000);
	cr_assert_eq(jnum(j, "anon_rss"), 48000);
	cr_assert_eq(jnum(j, "file_rss"), 1200);
	cr_assert_eq(jnum(j, "shmem_rss"), 4);
	cr_assert_eq(jnum(j, "oom_score_adj"), -998);
	cr_assert_eq(jnum(j, "trigger_pid"), 777);
	cr_assert_str_eq(jstr(j, "trigger_comm"), "alloc");
	cr_assert_eq(jnum(j, "trigger_cgroup_id"), 11);
	cr_assert_eq(jnum(j, "cgroup_id"), 4242, "the victim's cgroup");
	cr_assert_str_eq(jstr(j, "constraint"), "unknown");
	cr_assert_null(cJSON_GetObjectItem(j, "limit_source"));
	cr_assert_null(cJSON_GetObjectItem(j, "memcg_id"));
	cJSON_Delete(j);

	/* a cgroup OOM at the parent's memsw limit (v1) */
	e.flags = OOM_F_VICTIM_TASK | OOM_F_MEMCG_KNOWN | OOM_F_MEMCG | OOM_F_MEMSW;
	e.memcg_id = 90;
	e.memcg_level = 2;
	e.memcg_hierarchy_id = 4;
	strcpy(e.memcg_path, "/pod/ctr");
	e.limit_memcg_id = 89;
	e.limit_memcg_level = 1;
	strcpy(e.limit_memcg_path, "/pod");
	e.limit_bytes = 50331648;
	e.usage_bytes = 50327552;
	j = decode(&e, sizeof(e));
	cr_assert_str_eq(jstr(j, "constraint"), "memcg");
	cr_assert_eq(jnum(j, "memcg_id"), 90);
	cr_assert_str_eq(jstr(j, "memcg_path"), "/pod/ctr");
	cr_assert_eq(jnum(j, "memcg_level"), 2);
	cr_assert_eq(jnum(j, "memcg_hierarchy_id"), 4);
	cr_assert_not(jbool(j, "memcg_path_truncated"));
	cr_assert_eq(jnum(j, "limit_memcg_id"), 89);
	cr_assert_str_eq(jstr(j, "limit_memcg_path"), "/pod");
	cr_assert_eq(jnum(j, "limit_memcg_level"), 1);
	cr_assert_str_eq(jstr(j, "limit"), "memsw");
	cr_assert_eq(jnum(j, "limit_bytes"), 50331648);
	cr_assert_eq(jnum(j, "usage_bytes"), 50327552);
	cr_assert_str_eq(jstr(j, "limit_source"), "heuristic");
	cJSON_Delete(j);

	/* the same from the oom_control */
	e.flags |= OOM_F_OOM_CONTROL;
	e.constraint = OOM_CONSTRAINT_MEMCG;
	j = decode(&e, sizeof(e));
	cr_assert_str_eq(jstr(j, "constraint"), "memcg");
	cr_assert_str_eq(jstr(j, "limit_source"), "oom_control");
	cr_assert_str_eq(jstr(j, "limit_memcg_path"), "/pod");
	cJSON_Delete(j);

	/* oom_control constraints without a memcg; the victim's task unknown */
	static const struct {
		unsigned c;
		const char *name;
	} cs[] = {{OOM_CONSTRAINT_NONE, "global"},
		  {OOM_CONSTRAINT_CPUSET, "cpuset"},
		  {OOM_CONSTRAINT_MEMPOLICY, "mempolicy"},
		  {77, "global"}};
	for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		e.flags = OOM_F_OOM_CONTROL;
		e.constraint = cs[i].c;
		j = decode(&e, sizeof(e));
		cr_assert_str_eq(jstr(j, "constraint"), cs[i].name, "%u", cs[i].c);
		cr_assert_str_eq(jstr(j, "limit_source"), "oom_control");
		cr_assert_null(cJSON_GetObjectItem(j, "memcg_id"));
		cr_assert_null(cJSON_GetObjectItem(j, "limit_bytes"));
		cJSON_Delete(j);
		char *t = text(&e, sizeof(e));
		cr_assert(strstr(t, cs[i].name), "%s", t);
		free(t);
	}
	e.constraint = 0;

	/* a global OOM: the victim's memcg, no limit; a path without its NUL */
	e.flags = OOM_F_VICTIM_TASK | OOM_F_MEMCG_KNOWN | OOM_F_MEMCG_PATH_TRUNCATED;
	memset(e.memcg_path, 'a', sizeof(e.memcg_path));
	j = decode(&e, sizeof(e));
	cr_assert_str_eq(jstr(j, "constraint"), "global");
	cr_assert_eq(strlen(jstr(j, "memcg_path")), TAPIO_MEMCG_PATH_MAX);
	cr_assert(jbool(j, "memcg_path_truncated"));
	cr_assert_null(cJSON_GetObjectItem(j, "limit_bytes"));
	cJSON_Delete(j);

	char *t = text(&e, sizeof(e));
	cr_assert_str_eq(t, "victim=555(hog) total_vm=100000kB anon=48000kB file=1200kB shmem=4kB "
			    "adj=-998 trigger=777(alloc) global");
	free(t);
	e.flags = OOM_F_VICTIM_TASK | OOM_F_MEMCG_KNOWN | OOM_F_MEMCG;
	t = text(&e, sizeof(e));
	cr_assert(strstr(t, " limit=/pod max=50331648 usage=50327552"), "%s", t);
	free(t);
}

Test(kernel_decode, comm_of_16_bytes_without_nul)
{
	struct fork_event e;
	uint32_t pid;
	char comm[16];

	memset(&e, 0, sizeof(e));
	header(&e.hdr, EVENT_PROCESS_FORK);
	memset(e.hdr.comm, 'c', 16);
	cJSON *j = decode(&e, sizeof(e));
	cr_assert_eq(strlen(jstr(j, "comm")), 16);
	cJSON_Delete(j);
	cr_assert_eq(kevent_pid_comm(&e, sizeof(e), &pid, comm), 0);
	cr_assert_eq(strlen(comm), 15);
}

Test(kernel_decode, every_short_record_is_refused)
{
	static union {
		struct exec_event exec;
		struct cgroup_event cg;
		char bytes[2048];
	} r;
	struct strbuf sb = STRBUF_INIT;
	uint32_t pid;
	char comm[16];

	for (unsigned type = 1; type < EVENT_MAX; type++) {
		size_t min = kevent_min_len(type);

		cr_assert_gt(min, sizeof(struct event_header));
		memset(&r, 0, sizeof(r));
		header((struct event_header *)&r, type);
		for (size_t len = 0; len < min; len++) {
			cr_assert_eq(kevent_json(&r, len, &sb), -EINVAL, "type %u len %zu", type,
				     len);
			cr_assert_eq(kevent_text(&r, len, &sb), -EINVAL);
			cr_assert_eq(kevent_pid_comm(&r, len, &pid, comm), -EINVAL);
			cr_assert_eq(kevent_used_len(&r, len), 0);
		}
		cr_assert_eq(sb.len, 0);
		cr_assert_eq(kevent_json(&r, min, &sb), 0, "type %u at its minimum", type);
		sb_reset(&sb);
	}
	cr_assert_eq(kevent_json(NULL, 100, &sb), -EINVAL);
	sb_free(&sb);
}

Test(kernel_decode, unknown_types_are_refused)
{
	static const uint32_t bad[] = {0, EVENT_MAX, 100, 0xffffffffu};
	struct event_header h[40];
	struct strbuf sb = STRBUF_INIT;

	memset(h, 0, sizeof(h));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		header(h, 1);
		h->type = bad[i];
		cr_assert_eq(kevent_json(h, sizeof(h), &sb), -EINVAL);
		cr_assert_eq(kevent_text(h, sizeof(h), &sb), -EINVAL);
		cr_assert_eq(kevent_min_len(bad[i]), 0);
	}
	cr_assert_eq(sb.len, 0);
	sb_free(&sb);
}

Test(kernel_decode, unaligned_record)
{
	static char buf[sizeof(struct tcp_event) + 1];
	struct tcp_event e;

	tcp_event_v6(&e, EVENT_TCP_ACCEPT);
	memcpy(buf + 1, &e, sizeof(e));
	cJSON *j = decode(buf + 1, sizeof(e));
	cr_assert_str_eq(jstr(j, "saddr"), "2001:db8::1");
	cJSON_Delete(j);
}

/* Random records (with a valid type most of the time): never a crash or a
 * read past the end (ASan), and what decodes is valid JSON. */
Test(kernel_decode, random_records)
{
	struct strbuf sb = STRBUF_INIT;
	unsigned seed = 12345;
	int decoded = 0;

	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)rand_r(&seed) % (sizeof(struct exec_event) + 64);
		unsigned char *p = malloc(len ? len : 1);

		for (size_t k = 0; k < len; k++)
			p[k] = (unsigned char)rand_r(&seed);
		if (len >= sizeof(struct event_header) && rand_r(&seed) % 4) {
			uint32_t type = 1 + (uint32_t)rand_r(&seed) % (EVENT_MAX - 1);

			memcpy(p + offsetof(struct event_header, type), &type, 4);
			if (type == EVENT_PROCESS_EXEC &&
			    len >= offsetof(struct exec_event, args)) {
				uint32_t al = (uint32_t)rand_r(&seed) % (TAPIO_ARGS_MAX + 1);
				memcpy(p + offsetof(struct exec_event, args_len), &al, 4);
			}
			if (type >= EVENT_CGROUP_MKDIR && type <= EVENT_CGROUP_ATTACH &&
			    len >= offsetof(struct cgroup_event, path)) {
				uint32_t pl = (uint32_t)rand_r(&seed) % TAPIO_CGROUP_PATH_MAX;
				memcpy(p + offsetof(struct cgroup_event, path_len), &pl, 4);
			}
		}
		sb_reset(&sb);
		if (kevent_json(p, len, &sb) == 0) {
			cJSON *j = cJSON_Parse(sb.buf);
			cr_assert_not_null(j, "invalid JSON: %s", sb.buf);
			cJSON_Delete(j);
			decoded++;
		} else {
			cr_assert_eq(sb.len, 0);
		}
		sb_reset(&sb);
		(void)kevent_text(p, len, &sb);
		free(p);
	}
	cr_assert_gt(decoded, 1000);
	sb_free(&sb);
}

Test(kernel_events, parse_event_lists)
{
	uint64_t m = 0;
	char err[256];

	cr_assert_eq(kernel_parse_events("process,tcp.close,oom", &m, err, sizeof(err)), 0);
	cr_assert_eq(m, (1ull << TYPE_PROCESS_EXEC) | (1ull << TYPE_PROCESS_FORK) |
			    (1ull << TYPE_PROCESS_EXIT) | (1ull << TYPE_TCP_CLOSE) |
			    (1ull << TYPE_OOM_KILL));
	cr_assert_eq(kernel_parse_events(" tcp , cgroup.attach ", &m, err, sizeof(err)), 0);
	cr_assert_eq(m, (1ull << TYPE_TCP_CONNECT) | (1ull << TYPE_TCP_ACCEPT) |
			    (1ull << TYPE_TCP_CLOSE) | (1ull << TYPE_TCP_RETRANSMIT) |
			    (1ull << TYPE_TCP_RESET) | (1ull << TYPE_TCP_LISTEN) |
			    (1ull << TYPE_CGROUP_ATTACH));
	cr_assert_eq(kernel_parse_events("all", &m, err, sizeof(err)), 0);
	cr_assert_eq(m, ((1ull << 14) - 1) & ~1ull);

	m = 7;
	cr_assert_eq(kernel_parse_events("process,bogus", &m, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "'bogus'"), "%s", err);
	cr_assert_eq(m, 7, "mask untouched on error");
	cr_assert_eq(kernel_parse_events("proc", &m, err, sizeof(err)), -EINVAL,
		     "prefixes end at a dot");
	cr_assert_eq(kernel_parse_events("k8s.watch", &m, err, sizeof(err)), -EINVAL,
		     "not a kernel type");
	cr_assert_eq(kernel_parse_events("process,", &m, err, sizeof(err)), -EINVAL);
	cr_assert_eq(kernel_parse_events(",", &m, err, sizeof(err)), -EINVAL);
	cr_assert_eq(kernel_parse_events("", &m, err, sizeof(err)), -EINVAL);
	cr_assert_eq(kernel_parse_events(NULL, &m, err, sizeof(err)), -EINVAL);
}

/* IPv4 text is written without inet_ntop: it must match it for every kind of
 * octet (one, two and three digits, 0 and 255). */
Test(kernel_decode, ipv4_text_matches_inet_ntop)
{
	static const char *const addrs[] = {"0.0.0.0",	   "255.255.255.255", "1.2.3.4",
					    "10.99.100.9", "192.168.1.20",    "100.0.10.255"};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		struct tcp_event e;
		memset(&e, 0, sizeof(e));
		header(&e.hdr, EVENT_TCP_CONNECT);
		e.family = AF_INET;
		inet_pton(AF_INET, addrs[i], e.saddr);
		inet_pton(AF_INET, addrs[i], e.daddr);
		cJSON *j = decode(&e, sizeof(e));
		cr_assert_str_eq(jstr(j, "saddr"), addrs[i]);
		cr_assert_str_eq(jstr(j, "daddr"), addrs[i]);
		cJSON_Delete(j);
	}
	/* every octet value in every position, against inet_ntop */
	for (unsigned v = 0; v < 256; v++) {
		struct tcp_event e;
		char want[INET_ADDRSTRLEN], want2[INET_ADDRSTRLEN];
		memset(&e, 0, sizeof(e));
		header(&e.hdr, EVENT_TCP_CONNECT);
		e.family = AF_INET;
		const uint8_t s4[4] = {(uint8_t)v, (uint8_t)(255 - v), (uint8_t)(v / 2),
				       (uint8_t)(v * 7)};
		const uint8_t d4[4] = {(uint8_t)(v * 3), (uint8_t)v, (uint8_t)(v ^ 0x55),
				       (uint8_t)v};
		memcpy(e.saddr, s4, 4);
		memcpy(e.daddr, d4, 4);
		inet_ntop(AF_INET, s4, want, sizeof(want));
		inet_ntop(AF_INET, d4, want2, sizeof(want2));
		cJSON *j = decode(&e, sizeof(e));
		cr_assert_str_eq(jstr(j, "saddr"), want);
		cr_assert_str_eq(jstr(j, "daddr"), want2);
		cJSON_Delete(j);
		char *t = text(&e, sizeof(e));
		cr_assert(strstr(t, want) && strstr(t, want2), "%s: %s, %s", t, want, want2);
		free(t);
	}
}

/* The kernel.gap window file: written and read back, and every other form
 * refused. */
Test(kernel_gap, file_round_trip_and_bad_input)
{
	char buf[128];
	uint64_t f = 0, t = 0;
	int n = kernel_gap_format(buf, sizeof(buf), 1700000000123456789ull, 1700000009000000000ull);

	cr_assert_gt(n, 0);
	cr_assert_eq((size_t)n, strlen(buf));
	cr_assert_str_eq(buf, "tapio-gap 1\nfrom 1700000000123456789\nto 1700000009000000000\n");
	cr_assert_eq(kernel_gap_parse(buf, &f, &t), 0);
	cr_assert_eq(f, 1700000000123456789ull);
	cr_assert_eq(t, 1700000009000000000ull);
	cr_assert_eq(kernel_gap_format(buf, 20, 1, 2), -ENOSPC);

	static const char *const bad[] = {
	    "",
	    "tapio-gap 1\n",
	    "tapio-gap 2\nfrom 1\nto 2\n",
	    "tapio-gap 1\nfrom 1\nto 2",		      /* cut short */
	    "tapio-gap 1\nfrom 1\n",			      /* cut short */
	    "tapio-gap 1\nfrom 1\nto 2\nx",		      /* trailing junk */
	    "tapio-gap 1\nfrom 5\nto 2\n",		      /* ends before it starts */
	    "tapio-gap 1\nfrom 0\nto 2\n",		      /* no start */
	    "tapio-gap 1\nfrom -1\nto 2\n",		      /* not a number */
	    "tapio-gap 1\nfrom 1x\nto 2\n",		      /* not a number */
	    "tapio-gap 1\nto 2\nfrom 1\n",		      /* out of order */
	    "tapio-gap 1\nfrom 99999999999999999999\nto 2\n", /* overflow */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = t = 7;
		cr_assert_eq(kernel_gap_parse(bad[i], &f, &t), -EBADMSG, "accepted %s", bad[i]);
		cr_assert_eq(f, 7);
		cr_assert_eq(t, 7);
	}
}

/* The exact bytes of a fork and a tcp.close record (the encoder's fast paths
 * must not change a byte): large and small numbers, a 64-bit id, ipv6. */
Test(kernel_decode, golden_bytes)
{
	struct fork_event f;
	struct tcp_event e;
	struct strbuf sb = STRBUF_INIT;

	header(&f.hdr, EVENT_PROCESS_FORK);
	f.hdr.ts = 18446744073709551615ull;
	f.hdr.cgroup_id = 10000000000000000ull;
	f.parent_pid = 100;
	f.parent_tgid = 100;
	f.child_pid = 4294967295u;
	f.child_tgid = 9;
	cr_assert_eq(kevent_json(&f, sizeof(f), &sb), 0);
	cr_assert_str_eq(
	    sb.buf, "{\"pid\":100,\"tid\":101,\"tgid\":100,\"ppid\":1,\"uid\":1000,\"gid\":1001,"
		    "\"comm\":\"worker\",\"cgroup_id\":10000000000000000,\"cgroup_hierarchy\":"
		    "\"v2\",\"pidns\":4026531836,"
		    "\"mntns\":4026531840,\"cpu\":1,\"boot_ns\":18446744073709551615,"
		    "\"task_known\":true,\"parent_pid\":100,\"parent_tgid\":100,"
		    "\"child_pid\":4294967295,\"child_tgid\":9}");
	sb_reset(&sb);
	memset(&e, 0, sizeof(e));
	header(&e.hdr, EVENT_TCP_CLOSE);
	e.family = AF_INET6;
	inet_pton(AF_INET6, "fd00::1", e.saddr);
	inet_pton(AF_INET6, "2001:db8::20", e.daddr);
	e.sport = 65535;
	e.dport = 443;
	e.oldstate = 9;
	e.state = 7;
	e.flags = TCP_F_OWNER_KNOWN | TCP_F_START_SEEN;
	e.duration_ns = 99999999;
	e.bytes_sent = 100000000;
	e.bytes_received = 12;
	e.srtt_us = 10;
	e.error = ECONNRESET;
	cr_assert_eq(kevent_json(&e, sizeof(e), &sb), 0);
	cr_assert_str_eq(
	    sb.buf, "{\"pid\":100,\"tid\":101,\"tgid\":100,\"ppid\":1,\"uid\":1000,\"gid\":1001,"
		    "\"comm\":\"worker\",\"cgroup_id\":4242,\"cgroup_hierarchy\":\"v2\",\"pidns\":"
		    "4026531836,"
		    "\"mntns\":4026531840,\"cpu\":1,\"boot_ns\":123456789,\"task_known\":true,"
		    "\"family\":\"ipv6\",\"saddr\":\"fd00::1\",\"sport\":65535,"
		    "\"daddr\":\"2001:db8::20\",\"dport\":443,\"oldstate\":\"LAST_ACK\","
		    "\"state\":\"CLOSE\",\"owner_known\":true,\"duration_ns\":99999999,"
		    "\"start_seen\":true,\"bytes_sent\":100000000,\"bytes_received\":12,"
		    "\"tcpi_bytes_acked\":0,\"tcpi_bytes_received\":0,\"srtt_us\":10,"
		    "\"total_retrans\":0,\"errno\":104,\"error\":\"ECONNRESET\"}");
	sb_free(&sb);
}

/* The text durations as "%.3fms" / "%.3fs" print them: every boundary of
 * the rounding, ties, and values across the ms/s switch. */
Test(kernel_decode, text_durations_match_printf)
{
	struct exit_event e;
	uint64_t base[] = {0,	       1,	   499999,     500000,	   500001,
			   999499,     999500,	   999999,     1000000,	   1499999,
			   1500000,    999999499,  999999500,  999999999,  1000000000,
			   1000499999, 1000500000, 1000500001, 1999999999, 123456789012345ull};
	char want[96];

	header(&e.hdr, EVENT_PROCESS_EXIT);
	e.status = 0;
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
		for (uint64_t d = 0; d < 3; d++) {
			uint64_t ns = base[i] + d * 1000;

			e.duration_ns = ns;
			if (ns >= 1000000000ull)
				snprintf(want, sizeof(want), "code=0 lifetime=%.3fs",
					 (double)ns / 1e9);
			else
				snprintf(want, sizeof(want), "code=0 lifetime=%.3fms",
					 (double)ns / 1e6);
			char *t = text(&e, sizeof(e));
			cr_assert_str_eq(t, want, "%llu ns", (unsigned long long)ns);
			free(t);
		}
	}
	/* pseudo-random values, a fixed sequence */
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t ns = x % (i & 1 ? 1000000000ull : 100000000000ull);

		e.duration_ns = ns;
		if (ns >= 1000000000ull)
			snprintf(want, sizeof(want), "code=0 lifetime=%.3fs", (double)ns / 1e9);
		else
			snprintf(want, sizeof(want), "code=0 lifetime=%.3fms", (double)ns / 1e6);
		char *t = text(&e, sizeof(e));
		cr_assert_str_eq(t, want, "%llu ns", (unsigned long long)ns);
		free(t);
	}
}
