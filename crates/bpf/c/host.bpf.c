// SPDX-License-Identifier: GPL-2.0
/*
 * Loupe host events: process exits (`proc_exit_events`) and TCP retransmits and resets
 * (`tcp_stats_events`).
 *
 * Owns the kernel half of those two tables: one fixed-size record per event into the `host_events`
 * ring buffer, and a per-CPU counter of records the full ring refused. Must not aggregate or name
 * anything: user space (crates/collector/src/host/events.rs) turns records into rows, and decodes
 * `struct loupe_host_event` at the offsets written next to each field.
 *
 * Hooks: the `sched:sched_process_exit` tracepoint (a classic tracepoint: its fields differ across
 * kernels, so the task is read through CO-RE from the current task, which is the one exiting) and the
 * BTF tracepoints `tcp_retransmit_skb`, `tcp_send_reset`, `tcp_receive_reset`, whose first argument
 * has been the socket since they appeared (4.15-4.20). Each program loads alone, so a kernel lacking
 * one loses that count only. No kprobes or fentry (absent or refused on the target kernels).
 *
 * Records are submitted without waking the reader (it drains the ring on its own schedule): a wakeup
 * per exit would cost more than the record.
 *
 * Rebuild: `bash crates/bpf/build.sh` (the object is committed and checked for freshness).
 */
#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"
#include "bpf_tracing.h"

char LICENSE[] SEC("license") = "GPL";

#define LOUPE_HOST_EXIT 1
#define LOUPE_HOST_RETRANSMIT 2
#define LOUPE_HOST_RESET_SENT 3
#define LOUPE_HOST_RESET_RECEIVED 4

#define LOUPE_AF_INET 2
#define LOUPE_AF_INET6 10

/* 88 bytes; user space reads it at these offsets. */
struct loupe_host_event {
	__u32 kind;       /* 0: LOUPE_HOST_* */
	__u32 tgid;       /* 4: process the event ran in (the exiting one for exits) */
	__u64 ts_ns;      /* 8: bpf_ktime_get_ns */
	__u64 start_ns;   /* 16: that process's start_boottime (its UPID), 0 if unknown */
	__s32 exit_code;  /* 24: task->exit_code: (code << 8) | signal, 0x80 = core dumped */
	__u16 family;     /* 28: AF_INET or AF_INET6 (TCP records) */
	__u16 local_port; /* 30: host order */
	__u16 remote_port; /* 32: host order */
	__u16 pad0;       /* 34 */
	__u32 pad1;       /* 36 */
	__u8 local_addr[16];  /* 40: 4 bytes for AF_INET */
	__u8 remote_addr[16]; /* 56 */
	char comm[16];        /* 72: the process's command name (exits) */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} host_events SEC(".maps");

/* [0]: records the full ring refused. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} host_stats SEC(".maps");

static __always_inline struct loupe_host_event *reserve(__u32 kind)
{
	struct loupe_host_event *ev = bpf_ringbuf_reserve(&host_events, sizeof(*ev), 0);
	__u32 zero = 0;

	if (!ev) {
		__u64 *lost = bpf_map_lookup_elem(&host_stats, &zero);
		if (lost)
			__sync_fetch_and_add(lost, 1);
		return NULL;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->tgid = bpf_get_current_pid_tgid() >> 32;
	ev->ts_ns = bpf_ktime_get_ns();
	/* Kernels before 5.5 name the field differently; 0 makes user space read /proc instead. */
	if (bpf_core_field_exists(((struct task_struct *)0)->start_boottime))
		ev->start_ns = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), group_leader, start_boottime);
	return ev;
}

/*
 * Only the last thread of a process reports: by then `signal->live` has dropped to 0 (do_exit
 * decrements it before this tracepoint), and its exit_code is the process's (exit_group gives every
 * thread the group's code).
 */
SEC("tracepoint/sched/sched_process_exit")
int loupe_proc_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct loupe_host_event *ev;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	ev = reserve(LOUPE_HOST_EXIT);
	if (!ev)
		return 0;
	ev->exit_code = BPF_CORE_READ(task, exit_code);
	BPF_CORE_READ_STR_INTO(&ev->comm, task, group_leader, comm);
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	return 0;
}

/* The socket's own address and its peer's. */
static __always_inline void from_sock(struct loupe_host_event *ev, const struct sock *sk)
{
	ev->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (ev->family == LOUPE_AF_INET) {
		bpf_core_read(&ev->local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(&ev->remote_addr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(&ev->local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(&ev->remote_addr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/*
 * The ends of the segment `skb` carries, seen from this host: it came in, so its destination is the
 * local end. Used for a reset answering a segment no socket owns (a closed port), where there is
 * no socket to read.
 */
static __always_inline void from_incoming_skb(struct loupe_host_event *ev, const struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 network = BPF_CORE_READ(skb, network_header);
	__u16 transport = BPF_CORE_READ(skb, transport_header);
	__u8 version = 0;
	__u16 ports[2] = {};

	bpf_probe_read_kernel(&version, 1, head + network);
	bpf_probe_read_kernel(&ports, sizeof(ports), head + transport);
	ev->remote_port = bpf_ntohs(ports[0]);
	ev->local_port = bpf_ntohs(ports[1]);
	if ((version >> 4) == 4) {
		ev->family = LOUPE_AF_INET;
		bpf_probe_read_kernel(&ev->remote_addr, 4, head + network + 12);
		bpf_probe_read_kernel(&ev->local_addr, 4, head + network + 16);
	} else if ((version >> 4) == 6) {
		ev->family = LOUPE_AF_INET6;
		bpf_probe_read_kernel(&ev->remote_addr, 16, head + network + 8);
		bpf_probe_read_kernel(&ev->local_addr, 16, head + network + 24);
	}
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(loupe_tcp_retransmit, const struct sock *sk)
{
	struct loupe_host_event *ev = reserve(LOUPE_HOST_RETRANSMIT);

	if (!ev)
		return 0;
	from_sock(ev, sk);
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	return 0;
}

/*
 * A reset answering an incoming segment has that segment as `skb` (and a socket or none); an
 * active reset (close with SO_LINGER 0, abort) has the socket and no skb.
 */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(loupe_tcp_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	struct loupe_host_event *ev = reserve(LOUPE_HOST_RESET_SENT);

	if (!ev)
		return 0;
	/* The verifier wants each nullable argument checked before use. */
	if (skb)
		from_incoming_skb(ev, skb);
	else if (sk)
		from_sock(ev, sk);
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(loupe_tcp_receive_reset, struct sock *sk)
{
	struct loupe_host_event *ev = reserve(LOUPE_HOST_RESET_RECEIVED);

	if (!ev)
		return 0;
	from_sock(ev, sk);
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	return 0;
}
