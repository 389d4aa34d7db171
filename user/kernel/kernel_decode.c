/* SPDX-License-Identifier: Apache-2.0 */
/* Decoding of kernel event records for the sinks (see kernel_decode.h). */
#include "kernel/kernel_decode.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "bpf/events.h"
#include "core/event.h"
#include "kernel/kernel_types.h"
#include "util/strbuf.h"

size_t kevent_min_len(unsigned type)
{
	switch (type) {
	case EVENT_PROCESS_EXEC:
		return offsetof(struct exec_event, args);
	case EVENT_PROCESS_FORK:
		return sizeof(struct fork_event);
	case EVENT_PROCESS_EXIT:
		return sizeof(struct exit_event);
	case EVENT_TCP_CONNECT:
	case EVENT_TCP_ACCEPT:
	case EVENT_TCP_CLOSE:
	case EVENT_TCP_RETRANSMIT:
	case EVENT_TCP_RESET:
	case EVENT_TCP_LISTEN:
		return sizeof(struct tcp_event);
	case EVENT_CGROUP_MKDIR:
	case EVENT_CGROUP_RMDIR:
	case EVENT_CGROUP_ATTACH:
		return offsetof(struct cgroup_event, path);
	case EVENT_OOM_KILL:
		return sizeof(struct oom_event);
	default:
		return 0;
	}
}

/* The record's type when it holds together, else 0. Records are not
 * necessarily aligned in the caller's buffer, so fields are read with memcpy
 * into aligned copies (see the helpers below). */
static unsigned check(const void *data, size_t len)
{
	struct event_header h;
	size_t min;

	if (!data || len < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	min = kevent_min_len(h.type);
	if (!min || len < min)
		return 0;
	if (h.type == EVENT_PROCESS_EXEC) {
		uint32_t args_len;

		memcpy(&args_len, (const char *)data + offsetof(struct exec_event, args_len),
		       sizeof(args_len));
		if (args_len > TAPIO_ARGS_MAX || len < offsetof(struct exec_event, args) + args_len)
			return 0;
	} else if (h.type >= EVENT_CGROUP_MKDIR && h.type <= EVENT_CGROUP_ATTACH) {
		uint32_t path_len;

		memcpy(&path_len, (const char *)data + offsetof(struct cgroup_event, path_len),
		       sizeof(path_len));
		if (path_len >= TAPIO_CGROUP_PATH_MAX ||
		    len < offsetof(struct cgroup_event, path) + path_len)
			return 0;
	}
	return h.type;
}

size_t kevent_used_len(const void *data, size_t len)
{
	unsigned type = check(data, len);
	uint32_t n;

	switch (type) {
	case 0:
		return 0;
	case EVENT_PROCESS_EXEC:
		memcpy(&n, (const char *)data + offsetof(struct exec_event, args_len), sizeof(n));
		return offsetof(struct exec_event, args) + n;
	case EVENT_CGROUP_MKDIR:
	case EVENT_CGROUP_RMDIR:
	case EVENT_CGROUP_ATTACH:
		memcpy(&n, (const char *)data + offsetof(struct cgroup_event, path_len), sizeof(n));
		return offsetof(struct cgroup_event, path) + n;
	default:
		return kevent_min_len(type);
	}
}

/* Copies a record (at most the largest struct) into an aligned buffer. Only
 * the len bytes copied are read: check() saw that len covers the type's
 * fixed part, and args and path are read only up to their checked lengths,
 * so the rest of the buffer (most of its ~1.4 KB) is not zeroed. */
union record {
	struct event_header hdr;
	struct exec_event exec;
	struct fork_event fork;
	struct exit_event exit;
	struct tcp_event tcp;
	struct cgroup_event cg;
	struct oom_event oom;
};

static unsigned load(const void *data, size_t len, union record *r)
{
	unsigned type = check(data, len);

	if (!type)
		return 0;
	/* Fixed-size records are copied with a constant size (a few vector
	 * moves; a variable size becomes `rep movs`, whose start-up cost was
	 * half of the encoding of a tcp record); check() saw len covers it. */
	switch (type) {
	case EVENT_PROCESS_FORK:
		memcpy(r, data, sizeof(struct fork_event));
		break;
	case EVENT_PROCESS_EXIT:
		memcpy(r, data, sizeof(struct exit_event));
		break;
	case EVENT_TCP_CONNECT:
	case EVENT_TCP_ACCEPT:
	case EVENT_TCP_CLOSE:
	case EVENT_TCP_RETRANSMIT:
	case EVENT_TCP_RESET:
	case EVENT_TCP_LISTEN:
		memcpy(r, data, sizeof(struct tcp_event));
		break;
	default:
		memcpy(r, data, len < sizeof(*r) ? len : sizeof(*r));
	}
	return type;
}

static size_t comm_len(const char *c, size_t max)
{
	return strnlen(c, max);
}

/* A name and its length. */
struct name {
	const char *s;
	size_t n;
};
#define NAME(lit)                                                                                  \
	{                                                                                          \
		lit, sizeof(lit) - 1                                                               \
	}

static struct name tcp_state(unsigned s)
{
	static const struct name names[] = {
	    [1] = NAME("ESTABLISHED"), [2] = NAME("SYN_SENT"),	 [3] = NAME("SYN_RECV"),
	    [4] = NAME("FIN_WAIT1"),   [5] = NAME("FIN_WAIT2"),	 [6] = NAME("TIME_WAIT"),
	    [7] = NAME("CLOSE"),       [8] = NAME("CLOSE_WAIT"), [9] = NAME("LAST_ACK"),
	    [10] = NAME("LISTEN"),     [11] = NAME("CLOSING"),	 [12] = NAME("NEW_SYN_RECV"),
	};

	if (s < sizeof(names) / sizeof(names[0]) && names[s].s)
		return names[s];
	return (struct name)NAME("UNKNOWN");
}

static const char *tcp_state_name(unsigned s)
{
	return tcp_state(s).s;
}

/* The symbolic name of a socket error (sk_err), or NULL. */
static const char *errno_name(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return "ECONNREFUSED";
	case ETIMEDOUT:
		return "ETIMEDOUT";
	case ECONNRESET:
		return "ECONNRESET";
	case ECONNABORTED:
		return "ECONNABORTED";
	case EHOSTUNREACH:
		return "EHOSTUNREACH";
	case ENETUNREACH:
		return "ENETUNREACH";
	case EHOSTDOWN:
		return "EHOSTDOWN";
	case ENETDOWN:
		return "ENETDOWN";
	case EPIPE:
		return "EPIPE";
	case EPROTO:
		return "EPROTO";
	case EACCES:
		return "EACCES";
	case EPERM:
		return "EPERM";
	case EMSGSIZE:
		return "EMSGSIZE";
	case ENOBUFS:
		return "ENOBUFS";
	case ENOMEM:
		return "ENOMEM";
	default:
		return NULL;
	}
}

/* Each octet's digits and the dot after them, for put_ipv4(). */
static const char octet_dot[256][5] = {
    "0.",   "1.",   "2.",   "3.",   "4.",   "5.",   "6.",   "7.",   "8.",   "9.",   "10.",  "11.",
    "12.",  "13.",  "14.",  "15.",  "16.",  "17.",  "18.",  "19.",  "20.",  "21.",  "22.",  "23.",
    "24.",  "25.",  "26.",  "27.",  "28.",  "29.",  "30.",  "31.",  "32.",  "33.",  "34.",  "35.",
    "36.",  "37.",  "38.",  "39.",  "40.",  "41.",  "42.",  "43.",  "44.",  "45.",  "46.",  "47.",
    "48.",  "49.",  "50.",  "51.",  "52.",  "53.",  "54.",  "55.",  "56.",  "57.",  "58.",  "59.",
    "60.",  "61.",  "62.",  "63.",  "64.",  "65.",  "66.",  "67.",  "68.",  "69.",  "70.",  "71.",
    "72.",  "73.",  "74.",  "75.",  "76.",  "77.",  "78.",  "79.",  "80.",  "81.",  "82.",  "83.",
    "84.",  "85.",  "86.",  "87.",  "88.",  "89.",  "90.",  "91.",  "92.",  "93.",  "94.",  "95.",
    "96.",  "97.",  "98.",  "99.",  "100.", "101.", "102.", "103.", "104.", "105.", "106.", "107.",
    "108.", "109.", "110.", "111.", "112.", "113.", "114.", "115.", "116.", "117.", "118.", "119.",
    "120.", "121.", "122.", "123.", "124.", "125.", "126.", "127.", "128.", "129.", "130.", "131.",
    "132.", "133.", "134.", "135.", "136.", "137.", "138.", "139.", "140.", "141.", "142.", "143.",
    "144.", "145.", "146.", "147.", "148.", "149.", "150.", "151.", "152.", "153.", "154.", "155.",
    "156.", "157.", "158.", "159.", "160.", "161.", "162.", "163.", "164.", "165.", "166.", "167.",
    "168.", "169.", "170.", "171.", "172.", "173.", "174.", "175.", "176.", "177.", "178.", "179.",
    "180.", "181.", "182.", "183.", "184.", "185.", "186.", "187.", "188.", "189.", "190.", "191.",
    "192.", "193.", "194.", "195.", "196.", "197.", "198.", "199.", "200.", "201.", "202.", "203.",
    "204.", "205.", "206.", "207.", "208.", "209.", "210.", "211.", "212.", "213.", "214.", "215.",
    "216.", "217.", "218.", "219.", "220.", "221.", "222.", "223.", "224.", "225.", "226.", "227.",
    "228.", "229.", "230.", "231.", "232.", "233.", "234.", "235.", "236.", "237.", "238.", "239.",
    "240.", "241.", "242.", "243.", "244.", "245.", "246.", "247.", "248.", "249.", "250.", "251.",
    "252.", "253.", "254.", "255."};

/* An IPv4 address straight into the output, four bytes stored per octet
 * (no divisions, and no copy from a scratch buffer: reading back bytes just
 * stored one at a time stalls on store forwarding). o has room for 16. */
static char *put_ipv4(char *o, const uint8_t a[4])
{
	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];

		memcpy(o, octet_dot[v], 4);
		o += 2 + (v >= 10) + (v >= 100);
	}
	return o - 1;
}

/* An IPv4 address as text in buf (room for INET_ADDRSTRLEN). Returns its
 * length. */
static size_t ipv4_str(const uint8_t a[4], char *buf)
{
	char *e = put_ipv4(buf, a);

	*e = '\0';
	return (size_t)(e - buf);
}

/* Address text for a tcp event end; "?" for an unknown family. Returns its
 * length. */
static size_t addr_str(unsigned family, const uint8_t addr[16], char *buf, size_t size)
{
	if (family == AF_INET && size >= INET_ADDRSTRLEN)
		return ipv4_str(addr, buf);
	int af = family == AF_INET6 ? AF_INET6 : family == AF_INET ? AF_INET : -1;

	if (af < 0 || !inet_ntop(af, addr, buf, size))
		snprintf(buf, size, "?");
	return strlen(buf);
}

/* A tcp event end's address, quoted. */
static char *put_addr(char *o, unsigned family, const uint8_t addr[16])
{
	char a[INET6_ADDRSTRLEN];

	*o++ = '"';
	if (family == AF_INET)
		o = put_ipv4(o, addr);
	else
		o = put_mem(o, a, addr_str(family, addr, a, sizeof(a)));
	*o++ = '"';
	return o;
}

/* ---- JSON ---- */

/* Field names are string literals: each key is written as one precomputed
 * piece, `,"name":`, with its length known at compile time. */
#define json_key(out, key) sb_add((out), ",\"" key "\":", sizeof(",\"" key "\":") - 1)

#define json_u64(out, key, v)                                                                      \
	do {                                                                                       \
		json_key(out, key);                                                                \
		sb_u64((out), (v));                                                                \
	} while (0)

#define json_i64(out, key, v)                                                                      \
	do {                                                                                       \
		json_key(out, key);                                                                \
		sb_i64((out), (v));                                                                \
	} while (0)

#define json_bool(out, key, v)                                                                     \
	do {                                                                                       \
		if (v)                                                                             \
			sb_add((out), ",\"" key "\":true", sizeof(",\"" key "\":true") - 1);       \
		else                                                                               \
			sb_add((out), ",\"" key "\":false", sizeof(",\"" key "\":false") - 1);     \
	} while (0)

#define json_str(out, key, s, n)                                                                   \
	do {                                                                                       \
		json_key(out, key);                                                                \
		sb_json_str((out), (s), (n));                                                      \
	} while (0)

/* The same pieces for the pointer writers (strbuf.h put_*), where one
 * room check covers a whole part of known bound. */
#define jp_key(o, key) put_lit((o), ",\"" key "\":")
#define jp_u64(o, key, v) put_u64(jp_key((o), key), (v))
#define jp_bool(o, key, v)                                                                         \
	((v) ? put_lit((o), ",\"" key "\":true") : put_lit((o), ",\"" key "\":false"))
/* A string of at most max bytes: room for JSON_STR_MAX(max). */
#define jp_str(o, key, s, n) put_json_str(jp_key((o), key), (s), (n))
/* A literal that needs no escaping, quoted. */
#define jp_lit(o, key, lit) put_lit(jp_key((o), key), "\"" lit "\"")

/* What json_header() writes at most: its keys and punctuation, 13 numbers
 * of up to 20 digits and the escaped comm. */
#define JSON_HEADER_MAX (256 + 13 * 20 + JSON_STR_MAX(TAPIO_COMM_LEN))

/* The task part of a header ("pid" to "mntns") as formatted for the last
 * tasks seen, one slot per thread id modulo KEVENT_TASK_SLOTS: a run of records
 * from one task (a storm, a busy process) copies it instead of formatting
 * nine numbers and the comm again. A slot is used only when every field it
 * was made from is equal. Per thread: the pipeline and each tracing thread
 * have their own. */
#define TASK_FRAG_MAX (160 + 2 * 20 + 7 * 10 + JSON_STR_MAX(TAPIO_COMM_LEN))
struct task_frag {
	uint64_t cgroup_id;
	uint32_t ids[7]; /* pid, tgid, ppid, uid, gid, pidns, mntns */
	uint32_t v1;
	char comm[TAPIO_COMM_LEN];
	uint32_t len; /* 0: empty */
	char s[TASK_FRAG_MAX];
};
static _Thread_local struct task_frag task_frags[KEVENT_TASK_SLOTS];

static bool task_frag_same(const struct task_frag *f, const struct event_header *h, uint32_t v1)
{
	return f->len && f->cgroup_id == h->cgroup_id && f->v1 == v1 &&
	       !memcmp(f->ids, &h->pid, sizeof(f->ids)) &&
	       !memcmp(f->comm, h->comm, sizeof(f->comm));
}

static char *put_task_part(char *o, const struct event_header *h)
{
	o = put_u64(put_lit(o, "{\"pid\":"), h->tgid);
	o = jp_u64(o, "tid", h->pid);
	o = jp_u64(o, "tgid", h->tgid);
	o = jp_u64(o, "ppid", h->ppid);
	o = jp_u64(o, "uid", h->uid);
	o = jp_u64(o, "gid", h->gid);
	o = jp_str(o, "comm", h->comm, comm_len(h->comm, sizeof(h->comm)));
	o = jp_u64(o, "cgroup_id", h->cgroup_id);
	if (h->flags & HDR_F_CGROUP_V1)
		o = jp_lit(o, "cgroup_hierarchy", "v1:memory");
	else
		o = jp_lit(o, "cgroup_hierarchy", "v2");
	o = jp_u64(o, "pidns", h->pidns);
	return jp_u64(o, "mntns", h->mntns);
}

static void json_header(struct strbuf *out, const struct event_header *h)
{
	_Static_assert(offsetof(struct event_header, mntns) - offsetof(struct event_header, pid) ==
			   6 * sizeof(uint32_t),
		       "pid to mntns: the seven ids a task_frag compares");
	char *o = sb_begin(out, JSON_HEADER_MAX);
	struct task_frag *f = &task_frags[h->pid % KEVENT_TASK_SLOTS];
	uint32_t v1 = !!(h->flags & HDR_F_CGROUP_V1);

	if (!o)
		return;
	if (task_frag_same(f, h, v1)) {
		o = put_mem(o, f->s, f->len);
	} else {
		char *start = o;

		o = put_task_part(o, h);
		f->len = (uint32_t)(o - start);
		memcpy(f->s, start, f->len);
		f->cgroup_id = h->cgroup_id;
		memcpy(f->ids, &h->pid, sizeof(f->ids));
		f->v1 = v1;
		memcpy(f->comm, h->comm, sizeof(f->comm));
	}
	o = jp_u64(o, "cpu", h->cpu);
	o = jp_u64(o, "boot_ns", h->ts);
	o = jp_bool(o, "task_known", !(h->flags & HDR_F_NO_TASK));
	sb_end(out, o);
}

/* argv: NUL-separated strings; a last piece without its NUL (cut by the
 * bound) is shown as it is. */
static void json_args(struct strbuf *out, const char *args, size_t n)
{
	size_t i = 0;
	bool first = true;

	json_key(out, "args");
	sb_putc(out, '[');
	while (i < n) {
		size_t l = strnlen(args + i, n - i);

		if (!first)
			sb_putc(out, ',');
		first = false;
		sb_json_str(out, args + i, l);
		i += l + 1;
	}
	sb_putc(out, ']');
}

/* Text that needs no escaping (a table's name, an address), quoted. */
static char *put_quoted(char *o, const char *s, size_t n)
{
	*o++ = '"';
	o = put_mem(o, s, n);
	*o++ = '"';
	return o;
}

/* What json_tcp() writes at most: its keys and punctuation, two addresses,
 * names of up to 16 bytes and 12 numbers of up to 20 digits. */
#define JSON_TCP_MAX (512 + 2 * INET6_ADDRSTRLEN + 12 * 20)

static void json_tcp(struct strbuf *out, unsigned type, const struct tcp_event *e)
{
	char *o = sb_begin(out, JSON_TCP_MAX);
	struct name st;

	if (!o)
		return;
	if (e->family == AF_INET6)
		o = jp_lit(o, "family", "ipv6");
	else if (e->family == AF_INET)
		o = jp_lit(o, "family", "ipv4");
	else
		o = jp_lit(o, "family", "unknown");
	o = put_addr(jp_key(o, "saddr"), e->family, e->saddr);
	o = jp_u64(o, "sport", e->sport);
	o = put_addr(jp_key(o, "daddr"), e->family, e->daddr);
	o = jp_u64(o, "dport", e->dport);
	st = tcp_state(e->oldstate);
	o = put_quoted(jp_key(o, "oldstate"), st.s, st.n);
	st = tcp_state(e->state);
	o = put_quoted(jp_key(o, "state"), st.s, st.n);
	o = jp_bool(o, "owner_known", e->flags & TCP_F_OWNER_KNOWN);
	if (type == EVENT_TCP_CONNECT || type == EVENT_TCP_ACCEPT)
		o = jp_u64(o, "handshake_ns", e->handshake_ns);
	if (type == EVENT_TCP_CLOSE) {
		const char *en = errno_name(e->error);

		o = jp_u64(o, "duration_ns", e->duration_ns);
		o = jp_bool(o, "start_seen", e->flags & TCP_F_START_SEEN);
		o = jp_u64(o, "bytes_sent", e->bytes_sent);
		o = jp_u64(o, "bytes_received", e->bytes_received);
		o = jp_u64(o, "tcpi_bytes_acked", e->bytes_acked);
		o = jp_u64(o, "tcpi_bytes_received", e->raw_bytes_received);
		o = jp_u64(o, "srtt_us", e->srtt_us);
		o = jp_u64(o, "total_retrans", e->total_retrans);
		o = jp_key(o, "errno");
		if (e->error < 0)
			*o++ = '-';
		o = put_u64(o, e->error < 0 ? (uint64_t)0 - (uint64_t)(int64_t)e->error
					    : (uint64_t)e->error);
		if (en)
			o = put_quoted(jp_key(o, "error"), en, strlen(en));
		else if (e->error)
			o = jp_lit(o, "error", "unknown");
	}
	if (type == EVENT_TCP_RESET) {
		if (e->flags & TCP_F_RESET_RECEIVED)
			o = jp_lit(o, "direction", "received");
		else
			o = jp_lit(o, "direction", "sent");
		o = jp_u64(o, "reason", e->reason);
	}
	sb_end(out, o);
}

/* oom.kill's constraint: the oom_control's where it was read, else memcg
 * when a memcg at its limit was found, global when none was, unknown
 * without the victim's task. */
static const char *oom_constraint(const struct oom_event *e)
{
	if (e->flags & OOM_F_MEMCG)
		return "memcg";
	if (e->flags & OOM_F_OOM_CONTROL) {
		switch (e->constraint) {
		case OOM_CONSTRAINT_CPUSET:
			return "cpuset";
		case OOM_CONSTRAINT_MEMPOLICY:
			return "mempolicy";
		case OOM_CONSTRAINT_MEMCG:
			return "memcg";
		default:
			return "global";
		}
	}
	return e->flags & OOM_F_MEMCG_KNOWN ? "global" : "unknown";
}

/* exe (what was run), exe_truncated, memfd. */
static void json_exe(struct strbuf *out, const struct exec_event *e)
{
	size_t n = strnlen(e->exe, sizeof(e->exe));

	if (!(e->flags & EXEC_F_EXE_KNOWN))
		n = 0;
	else if (e->exe_len < n)
		n = e->exe_len;
	json_str(out, "exe", e->exe, n);
	json_bool(out, "exe_truncated", e->flags & EXEC_F_EXE_TRUNCATED);
	json_bool(out, "memfd", e->flags & EXEC_F_MEMFD);
}

/* A capability set as /proc/PID/status shows it: 16 hex digits. */
static void caps_hex(struct strbuf *out, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char q[18];

	q[0] = q[17] = '"';
	for (int i = 16; i >= 1; i--, v >>= 4)
		q[i] = hex[v & 15];
	sb_add(out, q, sizeof(q));
}

#define json_caps(out, key, v)                                                                     \
	do {                                                                                       \
		json_key(out, key);                                                                \
		caps_hex((out), (v));                                                              \
	} while (0)

/* oom.kill's memcg fields: the victim's memcg, and which limit was hit. */
static void json_oom_memcg(struct strbuf *out, const struct oom_event *e)
{
	const char *constraint = oom_constraint(e);

	json_key(out, "constraint");
	sb_json_cstr(out, constraint);
	if (strcmp(constraint, "unknown")) {
		json_key(out, "limit_source");
		sb_json_cstr(out, e->flags & OOM_F_OOM_CONTROL ? "oom_control" : "heuristic");
	}
	if (e->flags & OOM_F_MEMCG_KNOWN) {
		json_u64(out, "memcg_id", e->memcg_id);
		json_str(out, "memcg_path", e->memcg_path,
			 strnlen(e->memcg_path, sizeof(e->memcg_path)));
		json_bool(out, "memcg_path_truncated", e->flags & OOM_F_MEMCG_PATH_TRUNCATED);
		json_u64(out, "memcg_level", e->memcg_level);
		json_u64(out, "memcg_hierarchy_id", e->memcg_hierarchy_id);
	}
	if (!(e->flags & OOM_F_MEMCG))
		return;
	json_u64(out, "limit_memcg_id", e->limit_memcg_id);
	json_str(out, "limit_memcg_path", e->limit_memcg_path,
		 strnlen(e->limit_memcg_path, sizeof(e->limit_memcg_path)));
	json_bool(out, "limit_memcg_path_truncated", e->flags & OOM_F_LIMIT_PATH_TRUNCATED);
	json_u64(out, "limit_memcg_level", e->limit_memcg_level);
	json_key(out, "limit");
	sb_json_cstr(out, e->flags & OOM_F_MEMSW ? "memsw" : "memory");
	json_u64(out, "limit_bytes", e->limit_bytes);
	json_u64(out, "usage_bytes", e->usage_bytes);
}

int kevent_json(const void *data, size_t len, struct strbuf *out)
{
	union record r;
	unsigned type = load(data, len, &r);

	if (!type)
		return -EINVAL;
	json_header(out, &r.hdr);
	switch (type) {
	case EVENT_PROCESS_EXEC: {
		size_t fl = strnlen(r.exec.filename, sizeof(r.exec.filename));

		if (r.exec.filename_len < fl)
			fl = r.exec.filename_len;
		json_str(out, "filename", r.exec.filename, fl);
		json_bool(out, "filename_truncated", r.exec.filename_truncated);
		json_u64(out, "argc", r.exec.argc);
		json_args(out, r.exec.args, r.exec.args_len);
		json_bool(out, "args_truncated", r.exec.args_truncated);
		json_bool(out, "args_unread", r.exec.flags & EXEC_F_ARGS_UNREAD);
		json_u64(out, "euid", r.exec.euid);
		json_u64(out, "egid", r.exec.egid);
		json_exe(out, &r.exec);
		json_caps(out, "cap_inheritable", r.exec.cap_inheritable);
		json_caps(out, "cap_permitted", r.exec.cap_permitted);
		json_caps(out, "cap_effective", r.exec.cap_effective);
		json_caps(out, "cap_ambient", r.exec.cap_ambient);
		break;
	}
	case EVENT_PROCESS_FORK:
		json_u64(out, "parent_pid", r.fork.parent_pid);
		json_u64(out, "parent_tgid", r.fork.parent_tgid);
		json_u64(out, "child_pid", r.fork.child_pid);
		json_u64(out, "child_tgid", r.fork.child_tgid);
		break;
	case EVENT_PROCESS_EXIT:
		json_u64(out, "exit_code", (r.exit.status >> 8) & 0xff);
		json_u64(out, "signal", r.exit.status & 0x7f);
		json_bool(out, "core_dumped", r.exit.status & 0x80);
		json_u64(out, "status", r.exit.status);
		json_u64(out, "duration_ns", r.exit.duration_ns);
		break;
	case EVENT_TCP_CONNECT:
	case EVENT_TCP_ACCEPT:
	case EVENT_TCP_CLOSE:
	case EVENT_TCP_RETRANSMIT:
	case EVENT_TCP_RESET:
	case EVENT_TCP_LISTEN:
		json_tcp(out, type, &r.tcp);
		break;
	case EVENT_CGROUP_MKDIR:
	case EVENT_CGROUP_RMDIR:
	case EVENT_CGROUP_ATTACH:
		json_u64(out, "id", r.cg.id);
		json_str(out, "path", r.cg.path, strnlen(r.cg.path, r.cg.path_len));
		json_u64(out, "level", r.cg.level);
		json_u64(out, "hierarchy_id", r.cg.hierarchy_id);
		json_bool(out, "path_truncated", r.cg.flags & CG_F_PATH_TRUNCATED);
		if (type == EVENT_CGROUP_ATTACH) {
			json_u64(out, "task_pid", r.cg.task_pid);
			json_u64(out, "task_tgid", r.cg.task_tgid);
			json_str(out, "task_comm", r.cg.task_comm,
				 comm_len(r.cg.task_comm, sizeof(r.cg.task_comm)));
			json_bool(out, "threadgroup", r.cg.threadgroup);
		}
		break;
	case EVENT_OOM_KILL:
		json_u64(out, "victim_pid", r.oom.victim_pid);
		json_str(out, "victim_comm", r.oom.hdr.comm,
			 comm_len(r.oom.hdr.comm, sizeof(r.oom.hdr.comm)));
		json_bool(out, "victim_task_known", r.oom.flags & OOM_F_VICTIM_TASK);
		json_u64(out, "total_vm", r.oom.total_vm);
		json_u64(out, "anon_rss", r.oom.anon_rss);
		json_u64(out, "file_rss", r.oom.file_rss);
		json_u64(out, "shmem_rss", r.oom.shmem_rss);
		json_i64(out, "oom_score_adj", r.oom.oom_score_adj);
		json_u64(out, "trigger_pid", r.oom.trigger_pid);
		json_u64(out, "trigger_tgid", r.oom.trigger_tgid);
		json_str(out, "trigger_comm", r.oom.trigger_comm,
			 comm_len(r.oom.trigger_comm, sizeof(r.oom.trigger_comm)));
		json_u64(out, "trigger_cgroup_id", r.oom.trigger_cgroup_id);
		json_oom_memcg(out, &r.oom);
		break;
	}
	sb_putc(out, '}');
	return 0;
}

/* ---- text ---- */

/* Bytes for a terminal: printable ASCII and valid UTF-8 as they are, other
 * bytes (and the backslash) as \xNN. */
static void text_bytes(struct strbuf *out, const char *s, size_t n)
{
	bool utf8 = utf8_valid(s, n);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 0x20 && c < 0x7f && c != '\\') || (c >= 0x80 && utf8)) {
			sb_putc(out, (char)c);
		} else {
			char x[4] = {'\\', 'x', "0123456789abcdef"[c >> 4],
				     "0123456789abcdef"[c & 15]};
			sb_add(out, x, sizeof(x));
		}
	}
}

/* A string literal, its length known at compile time. */
#define text_lit(out, lit) sb_add((out), (lit), sizeof(lit) - 1)

/* ns in units (1e6: ms, 1e9: s) with three decimals, as "%.3f" prints
 * ns / unit: rounded to nearest. An exact tie (ns % (unit / 1000) == half)
 * is left to printf, which rounds the double as it is stored. */
static void text_fixed3(struct strbuf *out, uint64_t ns, uint64_t unit)
{
	uint64_t step = unit / 1000, rest = ns % step, q = ns / step;

	if (rest == step / 2) {
		sb_printf(out, "%.3f", (double)ns / (double)unit);
		return;
	}
	if (rest > step / 2)
		q++;
	sb_u64(out, q / 1000);
	sb_putc(out, '.');
	sb_putc(out, (char)('0' + q / 100 % 10));
	sb_putc(out, (char)('0' + q / 10 % 10));
	sb_putc(out, (char)('0' + q % 10));
}

static void text_duration(struct strbuf *out, uint64_t ns)
{
	if (ns >= 1000000000ull) {
		text_fixed3(out, ns, 1000000000ull);
		sb_putc(out, 's');
	} else {
		text_fixed3(out, ns, 1000000ull);
		text_lit(out, "ms");
	}
}

static void text_ends(struct strbuf *out, const struct tcp_event *e)
{
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	bool v6 = e->family == AF_INET6;

	addr_str(e->family, e->saddr, a, sizeof(a));
	addr_str(e->family, e->daddr, b, sizeof(b));
	if (v6)
		sb_putc(out, '[');
	sb_puts(out, a);
	sb_puts(out, v6 ? "]:" : ":");
	sb_u64(out, e->sport);
	sb_puts(out, v6 ? " -> [" : " -> ");
	sb_puts(out, b);
	sb_puts(out, v6 ? "]:" : ":");
	sb_u64(out, e->dport);
}

/* The filename, then argv[1..]. */
static void text_exec(struct strbuf *out, const struct exec_event *e)
{
	size_t i = 0, n = e->args_len;

	text_bytes(out, e->filename, strnlen(e->filename, sizeof(e->filename)));
	/* argv[0] is usually the filename again: show argv[1..]. */
	i = strnlen(e->args, n) + 1;
	while (i < n) {
		size_t l = strnlen(e->args + i, n - i);

		sb_putc(out, ' ');
		text_bytes(out, e->args + i, l);
		i += l + 1;
	}
	if (e->args_truncated)
		sb_puts(out, " ...");
}

static void text_fork(struct strbuf *out, const struct fork_event *e)
{
	text_lit(out, "child=");
	sb_u64(out, e->child_tgid);
	if (e->child_pid != e->child_tgid) {
		text_lit(out, " tid=");
		sb_u64(out, e->child_pid);
	}
}

static void text_exit(struct strbuf *out, const struct exit_event *e)
{
	text_lit(out, "code=");
	sb_u64(out, (e->status >> 8) & 0xff);
	if (e->status & 0x7f) {
		text_lit(out, " signal=");
		sb_u64(out, e->status & 0x7f);
	}
	if (e->status & 0x80)
		text_lit(out, " core");
	text_lit(out, " lifetime=");
	text_duration(out, e->duration_ns);
}

static void text_tcp(struct strbuf *out, unsigned type, const struct tcp_event *e)
{
	text_ends(out, e);
	switch (type) {
	case EVENT_TCP_CONNECT:
	case EVENT_TCP_ACCEPT:
		text_lit(out, " handshake=");
		text_duration(out, e->handshake_ns);
		break;
	case EVENT_TCP_CLOSE:
		text_lit(out, " tx=");
		sb_u64(out, e->bytes_sent);
		text_lit(out, " rx=");
		sb_u64(out, e->bytes_received);
		if (e->flags & TCP_F_START_SEEN) {
			text_lit(out, " dur=");
			text_duration(out, e->duration_ns);
		}
		if (e->error) {
			const char *en = errno_name(e->error);

			text_lit(out, " error=");
			sb_puts(out, en ? en : "unknown");
		}
		break;
	case EVENT_TCP_RETRANSMIT:
		sb_putc(out, ' ');
		sb_puts(out, tcp_state_name(e->state));
		break;
	case EVENT_TCP_RESET:
		sb_puts(out, e->flags & TCP_F_RESET_RECEIVED ? " received" : " sent");
		if (e->state) {
			sb_putc(out, ' ');
			sb_puts(out, tcp_state_name(e->state));
		}
		break;
	}
}

static void text_cgroup(struct strbuf *out, unsigned type, const struct cgroup_event *e)
{
	text_bytes(out, e->path, strnlen(e->path, e->path_len));
	text_lit(out, " id=");
	sb_u64(out, e->id);
	text_lit(out, " level=");
	sb_u64(out, e->level);
	text_lit(out, " hierarchy=");
	sb_u64(out, e->hierarchy_id);
	if (type == EVENT_CGROUP_ATTACH) {
		text_lit(out, " task=");
		sb_u64(out, e->task_pid);
		sb_putc(out, '(');
		text_bytes(out, e->task_comm, comm_len(e->task_comm, sizeof(e->task_comm)));
		sb_putc(out, ')');
	}
}

/* " NAME=<v>kB" */
static void text_kb(struct strbuf *out, const char *name, uint64_t kb)
{
	sb_putc(out, ' ');
	sb_puts(out, name);
	sb_putc(out, '=');
	sb_u64(out, kb);
	text_lit(out, "kB");
}

static void text_oom(struct strbuf *out, const struct oom_event *e)
{
	text_lit(out, "victim=");
	sb_u64(out, e->victim_pid);
	sb_putc(out, '(');
	text_bytes(out, e->hdr.comm, comm_len(e->hdr.comm, sizeof(e->hdr.comm)));
	sb_putc(out, ')');
	text_kb(out, "total_vm", e->total_vm);
	text_kb(out, "anon", e->anon_rss);
	text_kb(out, "file", e->file_rss);
	text_kb(out, "shmem", e->shmem_rss);
	text_lit(out, " adj=");
	sb_i64(out, e->oom_score_adj);
	text_lit(out, " trigger=");
	sb_u64(out, e->trigger_tgid);
	sb_putc(out, '(');
	text_bytes(out, e->trigger_comm, comm_len(e->trigger_comm, sizeof(e->trigger_comm)));
	sb_putc(out, ')');
	if (e->flags & OOM_F_MEMCG) {
		text_lit(out, " limit=");
		text_bytes(out, e->limit_memcg_path,
			   strnlen(e->limit_memcg_path, sizeof(e->limit_memcg_path)));
		sb_puts(out, e->flags & OOM_F_MEMSW ? " memsw=" : " max=");
		sb_u64(out, e->limit_bytes);
		text_lit(out, " usage=");
		sb_u64(out, e->usage_bytes);
	} else if (strcmp(oom_constraint(e), "unknown")) {
		sb_putc(out, ' ');
		sb_puts(out, oom_constraint(e));
	}
}

int kevent_text(const void *data, size_t len, struct strbuf *out)
{
	union record r;
	unsigned type = load(data, len, &r);

	if (!type)
		return -EINVAL;
	switch (type) {
	case EVENT_PROCESS_EXEC:
		text_exec(out, &r.exec);
		break;
	case EVENT_PROCESS_FORK:
		text_fork(out, &r.fork);
		break;
	case EVENT_PROCESS_EXIT:
		text_exit(out, &r.exit);
		break;
	case EVENT_TCP_CONNECT:
	case EVENT_TCP_ACCEPT:
	case EVENT_TCP_LISTEN:
	case EVENT_TCP_CLOSE:
	case EVENT_TCP_RETRANSMIT:
	case EVENT_TCP_RESET:
		text_tcp(out, type, &r.tcp);
		break;
	case EVENT_CGROUP_MKDIR:
	case EVENT_CGROUP_RMDIR:
	case EVENT_CGROUP_ATTACH:
		text_cgroup(out, type, &r.cg);
		break;
	case EVENT_OOM_KILL:
		text_oom(out, &r.oom);
		break;
	}
	return 0;
}

int kevent_pid_comm(const void *data, size_t len, uint32_t *pid, char comm[16])
{
	struct event_header h;

	if (!check(data, len))
		return -EINVAL;
	memcpy(&h, data, sizeof(h));
	*pid = h.tgid;
	memcpy(comm, h.comm, 16);
	comm[15] = '\0';
	return 0;
}

const char *const kernel_type_names[KERNEL_NTYPES] = {
    [TYPE_PROCESS_EXEC] = "process.exec",     [TYPE_PROCESS_FORK] = "process.fork",
    [TYPE_PROCESS_EXIT] = "process.exit",     [TYPE_TCP_CONNECT] = "tcp.connect",
    [TYPE_TCP_ACCEPT] = "tcp.accept",	      [TYPE_TCP_CLOSE] = "tcp.close",
    [TYPE_TCP_RETRANSMIT] = "tcp.retransmit", [TYPE_TCP_RESET] = "tcp.reset",
    [TYPE_CGROUP_MKDIR] = "cgroup.mkdir",     [TYPE_CGROUP_RMDIR] = "cgroup.rmdir",
    [TYPE_CGROUP_ATTACH] = "cgroup.attach",   [TYPE_OOM_KILL] = "oom.kill",
    [TYPE_TCP_LISTEN] = "tcp.listen",	      [TYPE_KERNEL_GAP] = "kernel.gap",
};

const struct source_desc kernel_source = {
    .name = "kernel",
    .types = kernel_type_names,
    .ntypes = KERNEL_NTYPES,
    .struct_json = kevent_json,
    .struct_text = kevent_text,
    .struct_pid_comm = kevent_pid_comm,
};
