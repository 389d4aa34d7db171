// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* tcp.connect, tcp.accept, tcp.close, tcp.listen (inet_sock_set_state),
 * tcp.retransmit (tcp_retransmit_skb), tcp.reset (tcp_send_reset,
 * tcp_receive_reset).
 *
 * Most TCP state changes run in softirq, where the current task is whoever
 * happened to be on the CPU. So the header of a tcp event describes the
 * socket's owner instead, remembered in the socks map: the task that called
 * connect() (seen at CLOSE -> SYN_SENT, which runs in that task), or for an
 * accepted socket the task that listened (seen at CLOSE -> LISTEN, kept in
 * the listeners map by netns, port and local address). A socket that was not seen from its
 * start gets HDR_F_NO_TASK, and is left out when a task filter is set.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fill.bpf.h"
#include "shed.bpf.h"
#include "submit.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* include/net/tcp_states.h */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10

/* enum sock_flags: set by tcp_fin() when the peer's FIN arrived. */
#define SOCK_DONE 1

#define TCP_CONN_MASK                                                                              \
	((1ull << EVENT_TCP_CONNECT) | (1ull << EVENT_TCP_ACCEPT) | (1ull << EVENT_TCP_CLOSE) |    \
	 (1ull << EVENT_TCP_RETRANSMIT) | (1ull << EVENT_TCP_RESET) | (1ull << EVENT_TCP_LISTEN))

static __always_inline void count_map_error(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&map_errors, &which);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* bpf_map_update_elem, counting a failure (a full map) in map_errors. */
static __always_inline void map_put(void *map, const void *key, const void *val, __u64 flags,
				    __u32 which)
{
	long err = bpf_map_update_elem(map, key, val, flags);

	if (err && err != -17 /* EEXIST: NOEXIST and an entry is there */)
		count_map_error(which);
}

static __always_inline __u32 sk_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline bool v4_mapped(const __u8 *a)
{
	for (int i = 0; i < 10; i++)
		if (a[i])
			return false;
	return a[10] == 0xff && a[11] == 0xff;
}

static __always_inline bool addr_zero(const __u8 *a)
{
	for (int i = 0; i < 16; i++)
		if (a[i])
			return false;
	return true;
}

/* ::ffff:a.b.c.d -> a.b.c.d in the first 4 bytes, the rest zeroed. */
static __always_inline void unmap_v4(__u8 *a)
{
	__builtin_memcpy(a, a + 12, 4);
	__builtin_memset(a + 4, 0, 12);
}

/* The local port: inet_num, or inet_sport where inet_num is already 0 (a
 * failed connect: the kernel releases the port before the CLOSE). */
static __always_inline __u16 local_port(const struct sock *sk)
{
	__u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);

	if (!port)
		port = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	return port;
}

static __always_inline void read_ends(const struct sock *sk, __u16 *family, __u16 *sport,
				      __u16 *dport, __u8 *saddr, __u8 *daddr)
{
	*family = BPF_CORE_READ(sk, __sk_common.skc_family);
	*sport = local_port(sk);
	*dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (*family == AF_INET6) {
		bpf_core_read(saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(daddr, 16, &sk->__sk_common.skc_v6_daddr);
		/* An IPv4 peer of a dual-stack socket: report it as IPv4. */
		if (v4_mapped(saddr) && (v4_mapped(daddr) || addr_zero(daddr))) {
			*family = AF_INET;
			unmap_v4(saddr);
			if (!addr_zero(daddr))
				unmap_v4(daddr);
		}
	} else {
		bpf_core_read(saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(daddr, 4, &sk->__sk_common.skc_daddr);
	}
}

/* The listeners key of a socket's local end. */
static __always_inline void listen_key_of(const struct sock *sk, struct listen_key *lk)
{
	__u16 sport, dport;
	__u8 daddr[16] = {};

	lk->netns = sk_netns(sk);
	read_ends(sk, &lk->family, &sport, &dport, lk->addr, daddr);
	lk->port = BPF_CORE_READ(sk, __sk_common.skc_num);
}

/* The listener a child socket came from: its exact local address first,
 * then the IPv4 and IPv6 wildcards. */
static __always_inline struct listen_info *listener_of(const struct sock *child)
{
	struct listen_key lk = {};
	struct listen_info *li;

	listen_key_of(child, &lk);
	li = bpf_map_lookup_elem(&listeners, &lk);
	if (li)
		return li;
	__builtin_memset(lk.addr, 0, sizeof(lk.addr));
	lk.family = AF_INET;
	li = bpf_map_lookup_elem(&listeners, &lk);
	if (li)
		return li;
	lk.family = AF_INET6;
	return bpf_map_lookup_elem(&listeners, &lk);
}

static __always_inline void read_sk_addrs(struct tcp_event *e, const struct sock *sk)
{
	read_ends(sk, &e->family, &e->sport, &e->dport, e->saddr, e->daddr);
}

/* Addresses from a received packet, seen from this host: its destination is
 * the local end. For an RST sent with no socket (a port nobody listens on). */
static __always_inline void read_skb_addrs(struct tcp_event *e, const struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	struct tcphdr tcp = {};
	__u8 vers = 0;

	if (!head)
		return;
	bpf_probe_read_kernel(&vers, 1, head + nh);
	vers >>= 4;
	if (vers == 4) {
		struct iphdr ip = {};

		bpf_probe_read_kernel(&ip, sizeof(ip), head + nh);
		e->family = AF_INET;
		__builtin_memcpy(e->saddr, &ip.daddr, 4);
		__builtin_memcpy(e->daddr, &ip.saddr, 4);
	} else if (vers == 6) {
		struct ipv6hdr ip6 = {};

		bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh);
		e->family = AF_INET6;
		__builtin_memcpy(e->saddr, &ip6.daddr, 16);
		__builtin_memcpy(e->daddr, &ip6.saddr, 16);
	} else {
		return;
	}
	bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th);
	e->sport = bpf_ntohs(tcp.dest);
	e->dport = bpf_ntohs(tcp.source);
}

/* Reserves a tcp event for socket sk with the owner from info (or none).
 * Returns NULL when the type is off, filtered, or the buffer is full. */
static __always_inline struct tcp_event *tcp_reserve(__u32 type, const struct sock *sk,
						     struct sock_info *info)
{
	struct tcp_event *e;

	if (!type_wanted(type))
		return NULL;
	if (!info && !no_task_filter())
		return NULL;
	e = reserve_event(type, sizeof(*e));
	if (!e)
		return NULL;
	if (info) {
		e->hdr = info->owner;
		e->hdr.ts = bpf_ktime_get_boot_ns();
		e->hdr.cpu = bpf_get_smp_processor_id();
		e->hdr.type = type;
	} else {
		fill_header(&e->hdr, type, NULL);
	}
	if (sk)
		read_sk_addrs(e, sk);
	/* By CLOSE the kernel may have released the local port (inet_put_port,
	 * or TIME_WAIT took it over): use the ends saved at ESTABLISHED. */
	if (info && info->saved && (!e->sport || !e->dport)) {
		e->family = info->family;
		e->sport = info->sport;
		e->dport = info->dport;
		__builtin_memcpy(e->saddr, info->saddr, 16);
		__builtin_memcpy(e->daddr, info->daddr, 16);
	}
	return e;
}

/* tcp_reserve() for the kinds shed for headroom (shed.bpf.h): after the
 * filters, so that only records that would have been written are counted. */
static __always_inline struct tcp_event *tcp_reserve_shed(__u32 type, const struct sock *sk,
							  struct sock_info *info)
{
	if (!type_wanted(type) || (!info && !no_task_filter()))
		return NULL;
	if (shed_event(type))
		return NULL;
	return tcp_reserve(type, sk, info);
}

/* ---- the socket's entry: socket-local storage (sk_socks), or the socks
 * and closed_socks hashes where the kernel has no storage for tracing ---- */

/* The socket's entry. In the fallback, closed: also one that just closed. */
static __always_inline struct sock_info *sock_get(const struct sock *sk, bool closed)
{
	__u64 key = (__u64)sk;
	struct sock_info *info;

	if (cfg_sk_storage) {
		struct sock_info *seed;

		info = bpf_sk_storage_get(&sk_socks, (struct sock *)sk, NULL, 0);
		if (info)
			return info;
		/* Seeded at start-up: moves into the socket's storage. */
		seed = bpf_map_lookup_elem(&seeds, &key);
		if (!seed)
			return NULL;
		info = bpf_sk_storage_get(&sk_socks, (struct sock *)sk, NULL,
					  BPF_SK_STORAGE_GET_F_CREATE);
		if (!info) {
			count_map_error(MAP_ERR_SOCKS);
			return seed;
		}
		__builtin_memcpy(info, seed, sizeof(*info));
		bpf_map_delete_elem(&seeds, &key);
		return info;
	}
	info = bpf_map_lookup_elem(&socks, &key);
	return info || !closed ? info : bpf_map_lookup_elem(&closed_socks, &key);
}

static __always_inline struct sock_info *sock_lookup(const struct sock *sk)
{
	return sock_get(sk, true);
}

/* Sets the socket's entry to v, counting a failure in map_errors. */
static __always_inline void sock_put(const struct sock *sk, const struct sock_info *v)
{
	__u64 key = (__u64)sk;

	if (cfg_sk_storage) {
		struct sock_info *p = bpf_sk_storage_get(&sk_socks, (struct sock *)sk, NULL,
							 BPF_SK_STORAGE_GET_F_CREATE);

		if (p)
			__builtin_memcpy(p, v, sizeof(*p));
		else
			count_map_error(MAP_ERR_SOCKS);
		bpf_map_delete_elem(&seeds, &key);
		return;
	}
	map_put(&socks, &key, v, BPF_ANY, MAP_ERR_SOCKS);
	bpf_map_delete_elem(&closed_socks, &key);
}

/* Forgets the socket (its new owner is filtered out). */
static __always_inline void sock_forget(const struct sock *sk)
{
	__u64 key = (__u64)sk;

	if (cfg_sk_storage) {
		bpf_sk_storage_delete(&sk_socks, (struct sock *)sk);
		bpf_map_delete_elem(&seeds, &key);
		return;
	}
	bpf_map_delete_elem(&socks, &key);
	bpf_map_delete_elem(&closed_socks, &key);
}

/* The socket reached CLOSE. Socket-local storage stays until the socket is
 * freed; the fallback moves the entry to closed_socks for a moment (a new
 * socket at the same address clears it at SYN_SENT or SYN_RECV). */
static __always_inline void sock_closed(const struct sock *sk, struct sock_info *info)
{
	__u64 key = (__u64)sk;

	if (cfg_sk_storage || !info)
		return;
	map_put(&closed_socks, &key, info, BPF_ANY, MAP_ERR_CLOSED_SOCKS);
	bpf_map_delete_elem(&socks, &key);
}

/* Remembers task t as sk's owner, if it passes the filters. */
static __always_inline void own_socket(const struct sock *sk, struct task_struct *t)
{
	struct sock_info info = {};

	if (!task_wanted(t)) {
		/* Forget an older socket that had this address. */
		sock_forget(sk);
		return;
	}
	info.start_ns = bpf_ktime_get_boot_ns();
	fill_header(&info.owner, 0, t);
	sock_put(sk, &info);
}

#define PF_KTHREAD 0x00200000

/* close() or shutdown() (ESTABLISHED -> FIN_WAIT1, CLOSE_WAIT -> LAST_ACK):
 * runs in the task that holds the socket now, which is not always the one
 * that connected or listened: a prefork server's child accepts what its
 * parent listened for, a socket passed over a unix socket changes hands.
 * That task becomes the owner, as in tcplife. A kernel thread (a deferred
 * fput) leaves the owner as it was. */
static __noinline void reown_at_close(const struct sock *sk, struct sock_info *info)
{
	struct task_struct *t = current_task();

	if (BPF_CORE_READ(t, flags) & PF_KTHREAD) {
		if (info)
			info->fin_sent = 1;
		return;
	}
	if (!task_wanted(t)) {
		sock_forget(sk);
		return;
	}
	/* A socket with no entry (filtered, or its entry could not be made)
	 * stays without one: a second sock_info here would take the combined
	 * stack past 512 bytes on 6.1's verifier. */
	if (info) {
		fill_header(&info->owner, 0, t);
		info->fin_sent = 1;
	}
}

/* listen(): runs in the listening task. */
static __noinline void on_listen(const struct sock *sk)
{
	struct listen_info li = {}, *old;
	struct task_struct *t = current_task();
	struct listen_key lk = {};
	struct tcp_event *e;
	__u64 key = (__u64)sk;
	bool refused = false;

	if (!task_wanted(t))
		return;
	listen_key_of(sk, &lk);
	li.sk = key;
	fill_header(&li.owner, 0, t);
	old = bpf_map_lookup_elem(&listeners, &lk);
	if (old && old->sk != key) {
		const struct sock *psk = (const struct sock *)old->sk;

		/* Another socket listens on this very address and port: unless
		 * both set SO_REUSEPORT, the kernel's port check will refuse
		 * this listen() (EADDRINUSE) right after this tracepoint. */
		refused = BPF_CORE_READ(psk, __sk_common.skc_state) == TCP_LISTEN &&
			  BPF_CORE_READ(psk, __sk_common.skc_num) == lk.port &&
			  !(BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_reuseport) &&
			    BPF_CORE_READ_BITFIELD_PROBED(&psk->__sk_common, skc_reuseport));
		map_put(&listen_shadow, &key, old, BPF_ANY, MAP_ERR_LISTENERS);
	}
	map_put(&listeners, &lk, &li, BPF_ANY, MAP_ERR_LISTENERS);
	if (refused)
		return;

	if (!type_wanted(EVENT_TCP_LISTEN))
		return;
	e = reserve_event(EVENT_TCP_LISTEN, sizeof(*e));
	if (!e)
		return;
	e->hdr = li.owner;
	e->hdr.type = EVENT_TCP_LISTEN;
	read_sk_addrs(e, sk);
	e->flags |= TCP_F_OWNER_KNOWN;
	e->oldstate = TCP_CLOSE;
	e->state = TCP_LISTEN;
	submit_event(e);
}

/* A listener's LISTEN -> CLOSE (close(), or a listen() the port check
 * refused): its entry goes, and the listener it displaced comes back if
 * that one still listens on the same port. */
static __noinline void on_unlisten(const struct sock *sk)
{
	struct listen_info *cur, *prev;
	struct listen_key lk = {};
	__u64 key = (__u64)sk;

	listen_key_of(sk, &lk);
	cur = bpf_map_lookup_elem(&listeners, &lk);
	prev = bpf_map_lookup_elem(&listen_shadow, &key);
	if (cur && cur->sk == key) {
		const struct sock *psk = prev ? (const struct sock *)prev->sk : NULL;

		if (psk && BPF_CORE_READ(psk, __sk_common.skc_state) == TCP_LISTEN &&
		    BPF_CORE_READ(psk, __sk_common.skc_num) == lk.port) {
			map_put(&listeners, &lk, prev, BPF_ANY, MAP_ERR_LISTENERS);
		} else {
			bpf_map_delete_elem(&listeners, &lk);
		}
	}
	if (prev)
		bpf_map_delete_elem(&listen_shadow, &key);
}

/* Payload bytes from the kernel's counters, which count sequence space:
 * less the handshake counted at ESTABLISHED (the connecting side's SYN),
 * our FIN once acknowledged, and the peer's FIN once received. */
static __noinline void close_bytes(struct tcp_event *e, const struct sock *sk,
				   const struct sock_info *info)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 rcvd = BPF_CORE_READ(tp, bytes_received);
	__u64 sent = acked, got = rcvd;
	unsigned long skflags = BPF_CORE_READ(sk, __sk_common.skc_flags);

	e->bytes_acked = acked;
	e->raw_bytes_received = rcvd;
	if (info) {
		sent -= sent >= info->acked_base ? info->acked_base : sent;
		got -= got >= info->received_base ? info->received_base : got;
		if (info->fin_sent && sent &&
		    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq))
			sent--;
	}
	if ((skflags & (1ul << SOCK_DONE)) && got)
		got--;
	e->bytes_sent = sent;
	e->bytes_received = got;
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
	e->error = BPF_CORE_READ(sk, sk_err);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tapio_inet_sock_set_state, const struct sock *sk, const int oldstate,
	     const int newstate)
{
	struct sock_info *info, fresh = {};
	struct tcp_event *e;
	__u32 type;

	if (!(cfg_event_mask & TCP_CONN_MASK))
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;

	if (newstate == TCP_LISTEN) {
		on_listen(sk);
		return 0;
	}
	if (oldstate == TCP_LISTEN) {
		if (newstate == TCP_CLOSE) {
			on_unlisten(sk);
			return 0;
		}
		if (newstate == TCP_SYN_RECV) {
			/* A child socket of a listener, cloned in softirq. */
			struct listen_info *li = listener_of(sk);

			if (li)
				fresh.owner = li->owner;
			else if (no_task_filter())
				fresh.owner.flags = HDR_F_NO_TASK;
			else {
				sock_forget(sk);
				return 0;
			}
			fresh.start_ns = bpf_ktime_get_boot_ns();
			sock_put(sk, &fresh);
			return 0;
		}
	}
	if (newstate == TCP_SYN_SENT) {
		/* connect(): runs in the connecting task. */
		own_socket(sk, current_task());
		return 0;
	}

	info = sock_get(sk, false);
	if (newstate == TCP_ESTABLISHED) {
		const struct tcp_sock *tp = (const struct tcp_sock *)sk;
		__u64 now = bpf_ktime_get_boot_ns();

		if (oldstate == TCP_SYN_SENT)
			type = EVENT_TCP_CONNECT;
		else if (oldstate == TCP_SYN_RECV)
			type = EVENT_TCP_ACCEPT;
		else
			return 0;
		if (info) {
			read_ends(sk, &info->family, &info->sport, &info->dport, info->saddr,
				  info->daddr);
			info->saved = 1;
			info->acked_base = BPF_CORE_READ(tp, bytes_acked);
			info->received_base = BPF_CORE_READ(tp, bytes_received);
		}
		e = tcp_reserve(type, sk, info);
		if (!e)
			return 0;
		if (info && !(info->owner.flags & HDR_F_NO_TASK))
			e->flags |= TCP_F_OWNER_KNOWN;
		if (info && !info->start_unknown && now > info->start_ns)
			e->handshake_ns = now - info->start_ns;
		e->oldstate = oldstate;
		e->state = newstate;
		submit_event(e);
		return 0;
	}
	if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) {
		reown_at_close(sk, info);
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;

	e = tcp_reserve(EVENT_TCP_CLOSE, sk, info);
	if (e) {
		if (info) {
			if (!info->start_unknown) {
				e->duration_ns = e->hdr.ts - info->start_ns;
				e->flags |= TCP_F_START_SEEN;
			}
			if (!(info->owner.flags & HDR_F_NO_TASK))
				e->flags |= TCP_F_OWNER_KNOWN;
		}
		close_bytes(e, sk, info);
		e->oldstate = oldstate;
		e->state = newstate;
		submit_event(e);
	}
	/* Kept a moment longer for an RST that follows the close. */
	sock_closed(sk, info);
	return 0;
}

/* tcp_retransmit_skb(const struct sock *sk, const struct sk_buff *skb[, int err on recent kernels])
 */
/* The tracepoint's record with its newer err field: a flavour of our own, so
 * the check compiles against any vmlinux.h (the arm64 one lacks the type)
 * and relocates against the running kernel's. */
struct trace_event_raw_tcp_retransmit_skb___err {
	int err;
} __attribute__((preserve_access_index));

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tapio_tcp_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	struct sock_info *info;
	struct tcp_event *e;

	if (!type_wanted(EVENT_TCP_RETRANSMIT))
		return 0;
	/* Since the tracepoint gained err ("tcp: add the ability to trace
	 * failed retransmits"; 6.18 has it) it also fires for attempts that
	 * sent nothing (-EBUSY, -ENOMEM ...): those are not retransmits. */
	if (bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb___err, err) &&
	    (int)ctx[2] != 0)
		return 0;
	info = sock_lookup(sk);
	e = tcp_reserve_shed(EVENT_TCP_RETRANSMIT, sk, info);
	if (!e)
		return 0;
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->oldstate = e->state;
	if (info && !(info->owner.flags & HDR_F_NO_TASK))
		e->flags |= TCP_F_OWNER_KNOWN;
	submit_event(e);
	return 0;
}

/* tcp_send_reset(const struct sock *sk, const struct sk_buff *skb
 *                [, const enum sk_rst_reason reason on recent kernels]).
 * Recent kernels ("trace: tcp: fully support trace_tcp_send_reset"; 6.18
 * does) also fire it with sk == NULL, for an RST answering a packet no
 * socket wanted, and for time-wait sockets; with no socket the addresses
 * come from that packet. Older kernels only report resets of full sockets. */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tapio_tcp_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	struct sock_info *info = NULL;
	struct tcp_event *e;

	if (!type_wanted(EVENT_TCP_RESET))
		return 0;
	if (sk)
		info = sock_lookup(sk);
	e = tcp_reserve_shed(EVENT_TCP_RESET, sk, info);
	if (!e)
		return 0;
	if (!sk && skb)
		read_skb_addrs(e, skb);
	if (sk) {
		e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
		e->oldstate = e->state;
	}
	if (info && !(info->owner.flags & HDR_F_NO_TASK))
		e->flags |= TCP_F_OWNER_KNOWN;
	/* Gated on the tracepoint's own field, not on the enum: a kernel can
	 * carry the enum without the tracepoint argument. */
	if (bpf_core_field_exists(struct trace_event_raw_tcp_send_reset, reason))
		e->reason = (__u32)ctx[2];
	submit_event(e);
	return 0;
}

/* tcp_receive_reset(struct sock *sk) */
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tapio_tcp_receive_reset, struct sock *sk)
{
	struct sock_info *info;
	struct tcp_event *e;

	if (!type_wanted(EVENT_TCP_RESET))
		return 0;
	info = sock_lookup(sk);
	e = tcp_reserve_shed(EVENT_TCP_RESET, sk, info);
	if (!e)
		return 0;
	e->flags |= TCP_F_RESET_RECEIVED;
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->oldstate = e->state;
	if (info && !(info->owner.flags & HDR_F_NO_TASK))
		e->flags |= TCP_F_OWNER_KNOWN;
	submit_event(e);
	return 0;
}

/* Start-up seeding: walks every open file of every task once (a task_file
 * iterator, run by userspace right after the tracepoints are attached) and
 * records the owners of TCP sockets that already exist, so that connections
 * accepted on an older listener, and older connections that close, still
 * name their process. Entries the tracepoints wrote meanwhile win (NOEXIST,
 * and socket-local storage is looked up before seeds). */
#define S_IFMT 00170000
#define S_IFSOCK 0140000

SEC("iter/task_file")
int tapio_seed_sockets(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct sock_info info = {};
	struct socket *sock;
	struct sock *sk;
	__u16 family;
	__u8 state;
	__u64 key;

	if (!task || !file || !(cfg_event_mask & TCP_CONN_MASK))
		return 0;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != 1 /* SOCK_STREAM */)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (!task_wanted(task))
		return 0;
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (state == TCP_LISTEN) {
		struct listen_info li = {.sk = (__u64)sk};
		struct listen_key lk = {};

		listen_key_of(sk, &lk);
		fill_header(&li.owner, 0, task);
		map_put(&listeners, &lk, &li, BPF_NOEXIST, MAP_ERR_LISTENERS);
		return 0;
	}
	if (state == TCP_CLOSE)
		return 0;
	key = (__u64)sk;
	fill_header(&info.owner, 0, task);
	info.start_unknown = 1;
	read_ends(sk, &info.family, &info.sport, &info.dport, info.saddr, info.daddr);
	info.saved = 1;
	/* The pointer is not one the verifier lets reach socket-local storage:
	 * the entry waits in seeds until a tracepoint sees the socket. */
	map_put(cfg_sk_storage ? (void *)&seeds : (void *)&socks, &key, &info, BPF_NOEXIST,
		MAP_ERR_SOCKS);
	return 0;
}
