// SPDX-License-Identifier: GPL-2.0
/*
 * Loupe socket tracer: TCP connection lifecycle and HTTP/1, HTTP/2 (h2c), Redis, PostgreSQL, MySQL, DNS, NATS,
 * MQTT and AMQP payloads from syscall tracepoints (DNS over UDP as one record per datagram), and TLS plaintext
 * from OpenSSL uprobes.
 *
 * Owns the kernel half of socket tracing: syscall enter/exit handlers, per-connection state
 * (conn_map), the protocol gate and the `events` ring buffer. Must not parse protocols beyond the
 * first-bytes classification: parsing happens in user space (crates/protocols). Record layouts
 * live in socket_trace.h and are mirrored by crates/bpf-common.
 *
 * Only syscall tracepoints and uprobes are used: this kernel has no kprobes and fentry/fexit do not load.
 *
 * Flow: the data syscalls' sys_exit_* read their arguments from the task's saved registers (or, on kernels
 * without bpf_task_pt_regs, from args_map, where sys_enter_* stashed them keyed by pid_tgid), filter by
 * tgid, check the fd is a TCP or UDP socket (cached in conn_map), read the return value, open
 * the connection if needed, classify its first bytes, and for exported protocols copy the
 * payload into the ring buffer in chunks. sendfile and splice move bytes between an fd and a
 * socket inside the kernel, with no user buffer to copy: they advance the stream position and
 * emit a payload-less record, a gap of known length for user space.
 *
 * Rebuild: `bash crates/bpf/build.sh` (the object is committed and checked for freshness).
 */
#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"
#include "bpf_tracing.h"
#include "socket_trace.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load (EbpfLoader::override_global); read-only once loaded. */
const volatile __u32 loupe_exclude_tgid = 0; /* usually the agent itself */
const volatile __u32 loupe_only_tgid = 0;    /* 0 = trace every process */
const volatile __u32 loupe_wake_every = 64;  /* force a consumer wakeup every N records per CPU */
const volatile __u32 loupe_wake_bytes = 0;   /* ...or once this many bytes wait in the ring (0: never) */
/* Set by the loader where bpf_task_pt_regs exists (Linux 5.15+): the data syscalls' exit programs read
 * their arguments from the task's saved user registers, and their enter programs are not attached. The
 * enter program's args_map insert and the exit's lookup and delete were about a third of the kernel-side
 * cost per request (bpf_stats, issue 13). The saved registers still hold the arguments at sys_exit: the
 * kernel writes only the return value register, and a tracer's changes (ptrace) come after the tracepoint. */
const volatile __u32 loupe_args_at_exit = 0;
/* Most bytes one syscall copies on an HTTP connection: the head and the body budget the parser keeps.
 * The rest is accounted for (msg_size), not copied: user space sees a gap of known length, so rows
 * keep the real body size. 0: no HTTP-specific limit (LOUPE_CHUNK_SIZE * LOUPE_MAX_CHUNKS). */
const volatile __u32 loupe_http_copy_bytes = 0;

#define S_IFMT_ 00170000
#define S_IFSOCK_ 0140000
#define SOCK_STREAM_ 1
#define SOCK_DGRAM_ 2
#define DNS_PORT 53
#define EINPROGRESS_ 115

/* What an enter handler stashed for its exit handler. */
#define ARGS_BUF 1     /* buf = user buffer */
#define ARGS_IOV 2     /* buf = user iovec array, count = iovcnt */
#define ARGS_CONNECT 3 /* fd being connected */
#define ARGS_ACCEPT 4  /* new fd is the return value */
#define ARGS_NOCOPY 5  /* sendfile/splice: count = LOUPE_DIR_* of the socket's bytes */
#define ARGS_MMSG 6    /* sendmmsg/recvmmsg: buf = user mmsghdr array, count = vlen */

struct syscall_args {
	__u64 sk;    /* struct sock * when the fd was not yet in conn_map, else 0 */
	__u64 buf;
	__u64 count;
	__u64 addr;  /* datagram sockets: the user sockaddr (sendto/recvfrom) or msghdr.msg_name, or 0 */
	__s32 fd;
	__u32 kind;
	__u32 dgram; /* the fd is a UDP socket: its bytes are datagrams (exit_dgram) */
	__u32 _pad0;
};

/* Per-connection state, keyed by (tgid << 32) | fd. */
struct conn_info {
	__u64 generation;
	__u64 bytes_sent;
	__u64 bytes_recv;
	__u8 role;
	__u8 protocol;
	__u8 excluded; /* one of the agent's own ports: tracked (so the fd check runs once) but never emitted */
	__u8 dgram;    /* a UDP socket: no open record, each datagram names its peer */
	__u8 tls;      /* TLS plaintext seen (uprobes): data records carry it, the raw syscalls are skipped */
	__u8 tls_protocol; /* the plaintext's protocol, classified like `protocol` */
	__u8 port_proto;   /* a port override (port_protocols) of its local or remote port, or 0 */
	__u8 _pad0[1];
	__u64 tls_sent; /* plaintext stream positions */
	__u64 tls_recv;
	__u64 tls_ssl;  /* the SSL * bound to this socket (tls_socket), or 0 */
	__u8 early[2];  /* its first two bytes received, when read one at a time while undecided (dns_tcp_split) */
	__u8 early_len;
	__u8 _pad1[5];
};

struct loupe_iov {
	__u64 base;
	__u64 len;
};

/*
 * Per-CPU scratch: the data record is too big for the 512-byte BPF stack. The iovec walk keeps
 * its loop-carried state here too (see emit_data).
 */
struct scratch {
	struct loupe_iov iov[LOUPE_MAX_IOV];
	__u64 walk_idx;     /* current iovec */
	__u64 walk_iov_off; /* bytes of it already emitted */
	__u64 walk_msg_off; /* bytes of the message already emitted */
	__u64 walk_fill;    /* bytes in the record being filled */
	__u64 walk_chunks;  /* records submitted */
	__u64 walk_last;    /* the LAST record was submitted */
	__u64 walk_n_iov;   /* iovecs in iov[] */
	__u64 walk_limit;   /* bytes to copy at most */
	__u64 walk_ret;     /* bytes the syscall moved */
	__u64 copy_limit;   /* bytes of the syscall to copy at most (see exit_data) */
	struct loupe_data_event ev;
	__u8 ev_slack[LOUPE_CHUNK_SIZE]; /* never written: see emit_data */
	struct loupe_dgram_event dg;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* overridden by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_info);
} conn_map SEC(".maps");

/*
 * A plain (preallocated) hash, not an LRU one: every traced syscall inserts and deletes one entry,
 * and the LRU list's locking on both made up about half of the kernel-side cost per request (perf,
 * issue 13). Entries live from a syscall's enter to its exit only; one whose exit never comes (a
 * thread killed mid-syscall) stays, and a full map is counted (LOUPE_STAT_ARGS_MAP_FULL).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct syscall_args);
} args_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct loupe_stats);
} stats SEC(".maps");

/* Local or remote ports whose connections are left out (the agent's own listeners), filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LOUPE_MAX_EXCLUDED_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} excluded_ports SEC(".maps");

/*
 * TLS library calls in flight, keyed by pid_tgid: set by the SSL_read/SSL_write uprobes, completed
 * with the socket fd by the first read/write syscall the call makes on a TLS socket (note_tls_fd),
 * consumed by the uretprobes. As in Pixie, the socket is the one the same thread touches inside the call.
 */
struct tls_call {
	__u64 ssl;     /* the SSL * */
	__u64 buf;     /* the plaintext buffer */
	__u64 len_ptr; /* _ex forms: size_t * getting the bytes moved; 0 for SSL_read/SSL_write */
	__s32 fd;      /* -1 until a syscall names it */
	__u32 _pad0;
	__u64 ts_ns;   /* when the call began */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

/*
 * The socket each SSL * is bound to, for calls that make no syscall: served from OpenSSL's buffer, or
 * fed through memory BIOs (Node.js). Valid while that connection's conn_info names the same SSL *.
 */
struct tls_ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 _pad0;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tls_ssl_key);
	__type(value, __s32);
} tls_fds SEC(".maps");

/*
 * Per-port protocol overrides, filled by the loader from the agent's `--protocol-port PORT=PROTOCOL`: a
 * connection with that local or remote port is exported as that protocol whatever its first bytes look like
 * (a TLS socket still gives its plaintext, as that protocol), or never exported (LOUPE_PROTO_OTHER).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LOUPE_MAX_PORT_PROTOCOLS);
	__type(key, __u16);
	__type(value, __u8);
} port_protocols SEC(".maps");

/* The classifier's verdict `p` under a port override `o`: undecided and TLS stay as they are. */
static __always_inline __u8 port_override(__u8 p, __u8 o)
{
	if (o == 0 || p == LOUPE_PROTO_UNCLASSIFIED || p == LOUPE_PROTO_TLS)
		return p;
	return o;
}

/*
 * Per thread (pid_tgid): the TLS socket not yet bound to an SSL * that the thread last read outside any SSL
 * call. A library fed through memory BIOs (Node.js) reads the socket itself, then hands the records to
 * OpenSSL on the same thread: the SSL call that comes next is that socket's (tls_socket).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __s32);
} tls_thread_reads SEC(".maps");

static __always_inline void note_tls_fd(__u64 id, __s32 fd)
{
	struct tls_call *t = bpf_map_lookup_elem(&tls_calls, &id);

	if (t && t->fd < 0)
		t->fd = fd;
}

static __always_inline void stat_inc(__u32 idx)
{
	__u32 zero = 0;
	struct loupe_stats *s = bpf_map_lookup_elem(&stats, &zero);

	if (s && idx < LOUPE_STAT_LEN)
		s->counters[idx] += 1;
}

#define WAKE_BYTES_EVERY 256

/*
 * Writes one record. Wake-ups are batched: the consumer is woken every loupe_wake_every records
 * on this CPU, or when loupe_wake_bytes wait in the ring (checked every WAKE_BYTES_EVERY records),
 * and otherwise drains on its own timer.
 * A record that does not fit is counted, with the stream bytes it accounted for (`lost_bytes`),
 * so user space can tell exactly what a gap cost.
 */
static __always_inline void submit(void *data, __u64 size, __u64 lost_bytes)
{
	__u32 zero = 0;
	struct loupe_stats *s = bpf_map_lookup_elem(&stats, &zero);
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 n = 0;

	if (s) {
		n = s->counters[LOUPE_STAT_EVENTS] + 1;
		if (loupe_wake_every <= 1 || n % loupe_wake_every == 0)
			flags = BPF_RB_FORCE_WAKEUP;
	}
	/* Checked every WAKE_BYTES_EVERY records only: once the consumer lags past the threshold,
	 * checking on every record would wake it on every record, at the traced process's cost. */
	if (flags != BPF_RB_FORCE_WAKEUP && loupe_wake_bytes != 0 && n % WAKE_BYTES_EVERY == 0 &&
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= loupe_wake_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, data, size, flags) == 0) {
		if (s) {
			s->counters[LOUPE_STAT_EVENTS] = n;
			if (flags == BPF_RB_FORCE_WAKEUP)
				s->counters[LOUPE_STAT_WAKEUPS] += 1;
		}
	} else if (s) {
		s->counters[LOUPE_STAT_RINGBUF_FAILURES] += 1;
		s->counters[LOUPE_STAT_RINGBUF_FAILED_BYTES] += lost_bytes;
	}
}

static __always_inline bool tgid_wanted(__u32 tgid)
{
	if (loupe_only_tgid != 0 && tgid != loupe_only_tgid)
		return false;
	return tgid != loupe_exclude_tgid;
}

static __always_inline __u64 conn_key(__u32 tgid, __s32 fd)
{
	return ((__u64)tgid << 32) | (__u32)fd;
}

/*
 * The struct sock behind `fd` in the current task if it is an AF_INET/AF_INET6 stream socket, or
 * a datagram socket when `dgram` is given (set to whether it is one), else NULL.
 */
static __always_inline struct sock *sock_of_fd(__s32 fd, __u32 *dgram)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;
	struct sock *sk;
	unsigned int max_fds;
	umode_t mode;
	short type;
	__u16 family;

	if (!fdt || fd < 0)
		return NULL;
	max_fds = BPF_CORE_READ(fdt, max_fds);
	if ((__u32)fd >= max_fds)
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT_) != S_IFSOCK_)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	type = BPF_CORE_READ(sock, type);
	if (type == SOCK_DGRAM_ && dgram)
		*dgram = 1;
	else if (type != SOCK_STREAM_)
		return NULL;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != LOUPE_AF_INET && family != LOUPE_AF_INET6)
		return NULL;
	return sk;
}

static __always_inline struct sock *tcp_sock_of_fd(__s32 fd)
{
	return sock_of_fd(fd, NULL);
}

static __always_inline void emit_close(__u32 tgid, __s32 fd, struct conn_info *c)
{
	struct loupe_conn_close ev = {};

	if (c->excluded)
		return;
	/* A UDP socket had no open record: only one whose datagrams were exported ends. */
	if (c->dgram && c->protocol != LOUPE_PROTO_DNS)
		return;

	ev.hdr.kind = LOUPE_EVENT_CONN_CLOSE;
	ev.hdr.tgid = tgid;
	ev.hdr.ts_ns = bpf_ktime_get_ns();
	ev.hdr.generation = c->generation;
	ev.hdr.fd = fd;
	ev.bytes_sent = c->bytes_sent;
	ev.bytes_recv = c->bytes_recv;
	ev.role = c->role;
	ev.protocol = c->protocol;
	submit(&ev, sizeof(ev), 0);
}

/* Whether a connection with these ports is one of the agent's own (left out unless asked for). */
static __always_inline bool ports_excluded(__u16 local_port, __u16 remote_port)
{
	return bpf_map_lookup_elem(&excluded_ports, &local_port) || bpf_map_lookup_elem(&excluded_ports, &remote_port);
}

/* Starts tracking (tgid, fd) with a fresh generation and emits the open event. */
static __always_inline struct conn_info *open_conn(__u32 tgid, __s32 fd, struct sock *sk, __u8 role)
{
	__u64 key = conn_key(tgid, fd);
	struct conn_info *old = bpf_map_lookup_elem(&conn_map, &key);
	struct conn_info c = {};
	struct loupe_conn_open ev = {};
	__u16 dport;

	/* The fd was reused without a close we saw (dup2, close_range): end the old one first. */
	if (old)
		emit_close(tgid, fd, old);

	c.generation = bpf_ktime_get_ns();
	c.role = role;
	dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	{
		__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		__u16 rport = bpf_ntohs(dport);
		__u8 *o = bpf_map_lookup_elem(&port_protocols, &lport);

		if (!o)
			o = bpf_map_lookup_elem(&port_protocols, &rport);
		if (o) {
			c.port_proto = *o;
			/* Disabled: decided now, so no byte of it is ever looked at. */
			if (*o == LOUPE_PROTO_OTHER)
				c.protocol = LOUPE_PROTO_OTHER;
		}
	}
	if (ports_excluded(BPF_CORE_READ(sk, __sk_common.skc_num), bpf_ntohs(dport))) {
		/* Tracked so later syscalls skip the fd walk, but never exported: no open, data or close. */
		c.excluded = 1;
		c.protocol = LOUPE_PROTO_OTHER;
		stat_inc(LOUPE_STAT_EXCLUDED_CONNS);
	}
	if (bpf_map_update_elem(&conn_map, &key, &c, BPF_ANY)) {
		stat_inc(LOUPE_STAT_CONN_MAP_FULL);
		return NULL;
	}
	if (c.excluded)
		return bpf_map_lookup_elem(&conn_map, &key);

	ev.hdr.kind = LOUPE_EVENT_CONN_OPEN;
	ev.hdr.tgid = tgid;
	ev.hdr.ts_ns = c.generation;
	ev.hdr.generation = c.generation;
	ev.hdr.fd = fd;
	ev.role = role;
	/* Read here, not later from /proc: a short-lived client (curl) is gone by then. Kernels
	 * before 5.5 name the field differently; there 0 makes user space fall back to /proc. */
	if (bpf_core_field_exists(((struct task_struct *)0)->start_boottime))
		ev.proc_start_ns = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), group_leader,
						 start_boottime);
	ev.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev.local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev.remote_port = bpf_ntohs(dport);
	if (ev.family == LOUPE_AF_INET) {
		bpf_core_read(&ev.local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(&ev.remote_addr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(&ev.local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(&ev.remote_addr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	submit(&ev, sizeof(ev), 0);
	return bpf_map_lookup_elem(&conn_map, &key);
}

/* ---- protocol gate ---- */

static __always_inline bool has_prefix(__u64 word, __u64 avail, const char *p, __u64 n)
{
	__u64 want = 0;
	__u64 mask = 0;

	if (avail < n)
		return false;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if (i < n) {
			want |= (__u64)(__u8)p[i] << (8 * i);
			mask |= (__u64)0xff << (8 * i);
		}
	}
	return (word & mask) == want;
}

#define BYTE(word, i) ((__u8)((word) >> (8 * (i))))

static __always_inline bool is_digit(__u8 c)
{
	return c >= '0' && c <= '9';
}

/*
 * A RESP command, as every Redis client library sends it: an array of bulk strings,
 * "*<count>\r\n$". Counts of one to four digits fit the 8 bytes read.
 */
static __always_inline bool is_resp_command(__u64 word, __u64 avail)
{
	__u64 digits = 0;

	if (avail < 5 || BYTE(word, 0) != '*')
		return false;
#pragma unroll
	for (int i = 1; i <= 4; i++) {
		if (digits + 1 != (__u64)i || !is_digit(BYTE(word, i)))
			break;
		digits = i;
	}
	if (digits == 0 || avail < digits + 4)
		return false;
	/* digits is 1..4, so the CRLF and '$' sit within the 8 bytes. */
	return BYTE(word, digits + 1) == '\r' && BYTE(word, digits + 2) == '\n' && BYTE(word, digits + 3) == '$';
}

/* An inline Redis command (typed at telnet, sent by health checks): a few common ones. */
static __always_inline bool is_redis_inline(__u64 word, __u64 avail)
{
	return has_prefix(word, avail, "PING\r\n", 6) || has_prefix(word, avail, "ping\r\n", 6) ||
	       has_prefix(word, avail, "PING ", 5) || has_prefix(word, avail, "AUTH ", 5) ||
	       has_prefix(word, avail, "auth ", 5) || has_prefix(word, avail, "HELLO ", 6) ||
	       has_prefix(word, avail, "HELLO\r\n", 7) || has_prefix(word, avail, "SET ", 4) ||
	       has_prefix(word, avail, "set ", 4) || has_prefix(word, avail, "get ", 4);
}

/*
 * A PostgreSQL client's first message: a startup-phase packet (length below 64 KiB, then the code
 * of protocol 3.0, SSLRequest, GSSENCRequest or CancelRequest), or a simple Query ('Q', a length
 * below 16 MiB, then a letter) when the capture starts mid-connection.
 */
static __always_inline bool is_pgsql_request(__u64 word, __u64 avail)
{
	__u32 code;

	if (avail == 8 && BYTE(word, 0) == 0 && BYTE(word, 1) == 0) {
		code = ((__u32)BYTE(word, 4) << 24) | ((__u32)BYTE(word, 5) << 16) | ((__u32)BYTE(word, 6) << 8) |
		       (__u32)BYTE(word, 7);
		return code == 196608 || code == 80877102 || code == 80877103 || code == 80877104;
	}
	if (avail >= 6 && BYTE(word, 0) == 'Q' && BYTE(word, 1) == 0 && BYTE(word, 2) == 0) {
		__u8 c = BYTE(word, 5) | 0x20;

		return c >= 'a' && c <= 'z';
	}
	return false;
}

/*
 * A DNS query over TCP, as far as 8 bytes tell: a two-byte length of 17 to 255 (one question),
 * an id, flags with QR and the opcode clear, and a question count of one. Resolvers and clients
 * often move the length on its own (dnsmasq reads 2 bytes first; dig writes it as the first
 * iovec), so a first buffer of exactly those 2 bytes counts too; user space checks the message.
 * DNS over UDP never gets here: datagram sockets take exit_dgram (is_dns_udp_query).
 */
static __always_inline bool is_dns_tcp_query(__u64 word, __u64 avail)
{
	if (avail == 2)
		return BYTE(word, 0) == 0 && BYTE(word, 1) >= 17;
	return avail == 8 && BYTE(word, 0) == 0 && BYTE(word, 1) >= 17 && (BYTE(word, 4) & 0xf8) == 0 &&
	       BYTE(word, 6) == 0 && BYTE(word, 7) == 1;
}

/*
 * A MySQL server's greeting (the server speaks first): a packet of 40 to 1023 bytes with sequence
 * 0 whose payload starts with protocol version 10 and a version string starting with a digit.
 */
static __always_inline bool is_mysql_greeting(__u64 word, __u64 avail)
{
	__u64 len = (__u64)BYTE(word, 0) | ((__u64)BYTE(word, 1) << 8);

	return avail >= 6 && BYTE(word, 2) == 0 && BYTE(word, 3) == 0 && BYTE(word, 4) == 10 && len >= 40 &&
	       len < 1024 && BYTE(word, 5) >= '0' && BYTE(word, 5) <= '9';
}

/*
 * NATS: the server speaks first ("INFO {...}"), and a client that is traced from its first write
 * sends "CONNECT {" (which the HTTP test above has already let through as a method).
 */
static __always_inline bool is_nats_info(__u64 word, __u64 avail)
{
	return has_prefix(word, avail, "INFO {", 6) || has_prefix(word, avail, "INFO\t{", 6);
}

/*
 * MQTT: a client's CONNECT (first byte 0x10), then the remaining length (one byte, or two when the
 * packet is 128 bytes or more), then the protocol name "MQTT" (3.1.1 and 5) or "MQIsdp" (3.1)
 * with its two-byte length. Brokers such as mosquitto read the fixed header a byte at a time, so
 * a first read of exactly the byte 0x10 counts too; user space checks the packet.
 */
static __always_inline bool is_mqtt_connect(__u64 word, __u64 avail)
{
	if (BYTE(word, 0) != 0x10)
		return false;
	if (avail == 1)
		return true;
	if (avail < 8)
		return false;
	if (BYTE(word, 1) < 0x80)
		return BYTE(word, 2) == 0 && ((BYTE(word, 3) == 4 && BYTE(word, 4) == 'M' && BYTE(word, 5) == 'Q' &&
					       BYTE(word, 6) == 'T' && BYTE(word, 7) == 'T') ||
					      (BYTE(word, 3) == 6 && BYTE(word, 4) == 'M' && BYTE(word, 5) == 'Q' &&
					       BYTE(word, 6) == 'I' && BYTE(word, 7) == 's'));
	return BYTE(word, 2) != 0 && BYTE(word, 2) < 0x80 && BYTE(word, 3) == 0 &&
	       (BYTE(word, 4) == 4 || BYTE(word, 4) == 6) && BYTE(word, 5) == 'M' && BYTE(word, 6) == 'Q';
}

/*
 * AMQP 0-9-1: the client's protocol header "AMQP\0\0\x09\x01", or the server's first frame,
 * Connection.Start: a method frame (type 1) on channel 0 whose 4-byte size is below 64 KiB and
 * whose class and method are 10, 10 (only the size and the start of the class fit in 8 bytes).
 */
static __always_inline bool is_amqp(__u64 word, __u64 avail)
{
	if (has_prefix(word, avail, "AMQP", 4))
		return true;
	return avail == 8 && BYTE(word, 0) == 1 && BYTE(word, 1) == 0 && BYTE(word, 2) == 0 && BYTE(word, 3) == 0 &&
	       BYTE(word, 4) == 0 && BYTE(word, 7) == 0;
}

/*
 * HTTP/2 in cleartext: the client preface ("PRI * HT"), or a server's first frame, SETTINGS
 * without ACK on stream 0 (8 bytes see 3 of its 4 stream id bytes) with a whole number of
 * settings and at most 64 of them. User space checks the full frame header.
 */
static __always_inline bool is_http2_start(__u64 word, __u64 avail)
{
	__u64 len = ((__u64)BYTE(word, 0) << 16) | ((__u64)BYTE(word, 1) << 8) | (__u64)BYTE(word, 2);

	if (has_prefix(word, avail, "PRI * HT", 8))
		return true;
	return avail == 8 && BYTE(word, 3) == 4 && BYTE(word, 4) == 0 && BYTE(word, 5) == 0 && BYTE(word, 6) == 0 &&
	       BYTE(word, 7) == 0 && len % 6 == 0 && len <= 384;
}

/* The static-table index a header block's first byte names, or 0 (user space: http2's static_name_index). */
static __always_inline __u8 hpack_static_name(__u8 b)
{
	__u8 index;

	if (b & 0x80)
		index = b & 0x7f;
	else if (b & 0x40)
		index = b & 0x3f;
	else if (b & 0x20)
		return 0; /* a dynamic table size update */
	else
		index = b & 0x0f;
	return index >= 1 && index <= 14 ? index : 0;
}

/* What the first bytes of a connection met mid-way say of HTTP/2 (is_http2_midway). */
#define MIDWAY_NO 0    /* not HTTP/2 as far as these bytes go */
#define MIDWAY_YES 1   /* a header block led by pseudo-headers */
#define MIDWAY_WAIT 2  /* an HTTP/2 frame that decides nothing (PING, WINDOW_UPDATE, a block of table entries) */

/*
 * HTTP/2 met mid-connection (the agent started after the preface). YES for a HEADERS frame with END_HEADERS
 * on a client-initiated (odd) stream, of 1 byte to 16 KiB, whose header block starts with a pseudo-header of
 * HPACK's static table (:authority, :method, :path, :scheme or :status), indexed or as a literal's name, after
 * at most a run of dynamic-table entries (gRPC's C core sends :path and :authority from the table first).
 * WAIT for such a frame whose first 16 bytes show only table entries, and for a PING or a WINDOW_UPDATE
 * (keepalives and flow control come between calls): the next data decides. User space checks the same
 * (http2::looks_like).
 */
static __always_inline int is_http2_midway(__u64 word, __u64 word2, __u64 avail16)
{
	__u64 len = ((__u64)BYTE(word, 0) << 16) | ((__u64)BYTE(word, 1) << 8) | (__u64)BYTE(word, 2);
	__u8 flags = BYTE(word, 4);
	__u64 at = 1 + ((flags & 0x8) ? 1 : 0) + ((flags & 0x20) ? 5 : 0); /* in word2: byte 9 is its byte 1 */

	if (avail16 < 9 || (BYTE(word, 5) & 0x80))
		return MIDWAY_NO;
	/* PING (8 bytes, ACK or not, stream 0) and WINDOW_UPDATE (4 bytes): whole 9-byte heads. */
	if (len == 8 && BYTE(word, 3) == 6 && (flags & ~0x1) == 0 && BYTE(word, 5) == 0 && BYTE(word, 6) == 0 &&
	    BYTE(word, 7) == 0 && BYTE(word2, 0) == 0)
		return MIDWAY_WAIT;
	if (len == 4 && BYTE(word, 3) == 8 && flags == 0)
		return MIDWAY_WAIT;
	if (BYTE(word, 3) != 1 || !(flags & 0x4) || (flags & ~0x2d) || len == 0 || len > 16384 || !(BYTE(word2, 0) & 1))
		return MIDWAY_NO;
#pragma unroll
	for (int i = 1; i < 8; i++) {
		__u8 b = BYTE(word2, i);

		if (i < at)
			continue;
		if (8 + i >= avail16 || i > len) /* word2's byte i is payload byte i - 1 */
			return MIDWAY_WAIT;
		if (hpack_static_name(b))
			return MIDWAY_YES;
		if (b < 0xbe) /* neither a static pseudo-header nor a dynamic entry (index 62 and up) */
			return MIDWAY_NO;
	}
	return MIDWAY_WAIT;
}

/*
 * Kafka: a request's size (4 bytes, big-endian, at least the 8-byte header rest and below 16 MiB),
 * then its API key (0..74) and API version (0..20), both big-endian int16. Clients and brokers alike
 * see the request first. Checked after PostgreSQL, whose startup packet has the same shape.
 */
static __always_inline bool is_kafka_request(__u64 word, __u64 avail)
{
	__u64 len = ((__u64)BYTE(word, 1) << 16) | ((__u64)BYTE(word, 2) << 8) | (__u64)BYTE(word, 3);

	return avail == 8 && BYTE(word, 0) == 0 && len >= 8 && BYTE(word, 4) == 0 && BYTE(word, 5) <= 74 &&
	       BYTE(word, 6) == 0 && BYTE(word, 7) <= 20;
}

/*
 * Cassandra's native protocol (v3 to v5 framing of the handshake): a version byte (3, 4 or 5; with
 * the high bit for a response), flags up to 0x1f, a stream id, an opcode up to 0x10, and a body
 * length (the first 3 of its 4 big-endian bytes fit here) below 16 MiB.
 */
static __always_inline bool is_cql_frame(__u64 word, __u64 avail)
{
	__u8 version = BYTE(word, 0) & 0x7f;

	return avail == 8 && version >= 3 && version <= 5 && BYTE(word, 1) <= 0x1f && BYTE(word, 4) <= 0x10 &&
	       BYTE(word, 5) == 0;
}

/*
 * MongoDB: a request header of 16 bytes, little-endian: its length (16 bytes to 16 MiB), a request
 * id, responseTo 0 (a request), and the opcode OP_MSG (2013), OP_QUERY (2004) or OP_COMPRESSED
 * (2012). `word2` holds bytes 8 to 15.
 */
static __always_inline bool is_mongo_request(__u64 word, __u64 word2, __u64 avail)
{
	__u64 len = (__u64)BYTE(word, 0) | ((__u64)BYTE(word, 1) << 8) | ((__u64)BYTE(word, 2) << 16);
	__u64 op = (__u64)BYTE(word2, 4) | ((__u64)BYTE(word2, 5) << 8);

	return avail >= 16 && BYTE(word, 3) == 0 && len >= 16 && (word2 & 0xffffffff) == 0 && BYTE(word2, 6) == 0 &&
	       BYTE(word2, 7) == 0 && (op == 2013 || op == 2004 || op == 2012);
}

/*
 * Classifies a connection from its first bytes, as Pixie does: first match wins, HTTP before Redis
 * (an inline "GET k" is exported as HTTP and user space then finds Redis). Add a protocol: one more
 * LOUPE_PROTO_*, a test here, and protocol_exported. User space infers again on whole lines
 * (crates/collector/src/socket/infer.rs), so this only has to let the right connections through.
 */
static __always_inline __u8 classify(__u64 word, __u64 avail, __u64 word2, __u64 avail16)
{
	/* A TLS record (handshake, application data, alert, change cipher spec) of SSL 3.0 to TLS 1.3:
	 * never exported as such; its plaintext comes from the TLS library's uprobes. */
	if (avail >= 3 && BYTE(word, 0) >= 0x14 && BYTE(word, 0) <= 0x17 && BYTE(word, 1) == 3 && BYTE(word, 2) <= 4)
		return LOUPE_PROTO_TLS;
	/* nginx peeks at one byte (recv MSG_PEEK) to tell TLS from plain HTTP: a lone handshake byte
	 * decides nothing yet, the full read that follows does. */
	if (avail < 3 && avail >= 1 && BYTE(word, 0) == 0x16)
		return LOUPE_PROTO_UNCLASSIFIED;
	if (has_prefix(word, avail, "GET ", 4) || has_prefix(word, avail, "POST ", 5) ||
	    has_prefix(word, avail, "PUT ", 4) || has_prefix(word, avail, "DELETE ", 7) ||
	    has_prefix(word, avail, "HEAD ", 5) || has_prefix(word, avail, "PATCH ", 6) ||
	    has_prefix(word, avail, "OPTIONS ", 8) || has_prefix(word, avail, "CONNECT ", 8) ||
	    has_prefix(word, avail, "TRACE ", 6) || has_prefix(word, avail, "HTTP/1.", 7))
		return LOUPE_PROTO_HTTP;
	if (is_resp_command(word, avail) || is_redis_inline(word, avail))
		return LOUPE_PROTO_REDIS;
	if (is_pgsql_request(word, avail))
		return LOUPE_PROTO_PGSQL;
	if (is_dns_tcp_query(word, avail))
		return LOUPE_PROTO_DNS;
	if (is_mysql_greeting(word, avail))
		return LOUPE_PROTO_MYSQL;
	if (is_nats_info(word, avail))
		return LOUPE_PROTO_NATS;
	if (is_mqtt_connect(word, avail))
		return LOUPE_PROTO_MQTT;
	if (is_amqp(word, avail))
		return LOUPE_PROTO_AMQP;
	if (is_http2_start(word, avail))
		return LOUPE_PROTO_HTTP2;
	/* Binary headers without a magic string: last, so any protocol above wins. */
	if (is_mongo_request(word, word2, avail16))
		return LOUPE_PROTO_MONGO;
	if (is_kafka_request(word, avail))
		return LOUPE_PROTO_KAFKA;
	if (is_cql_frame(word, avail))
		return LOUPE_PROTO_CQL;
	/* The least certain: after every other test. */
	switch (is_http2_midway(word, word2, avail16)) {
	case MIDWAY_YES:
		return LOUPE_PROTO_HTTP2;
	case MIDWAY_WAIT:
		return LOUPE_PROTO_UNCLASSIFIED;
	default:
		return LOUPE_PROTO_OTHER;
	}
}

static __always_inline bool protocol_exported(__u8 protocol)
{
	return protocol == LOUPE_PROTO_HTTP || protocol == LOUPE_PROTO_REDIS || protocol == LOUPE_PROTO_PGSQL ||
	       protocol == LOUPE_PROTO_DNS || protocol == LOUPE_PROTO_MYSQL || protocol == LOUPE_PROTO_NATS ||
	       protocol == LOUPE_PROTO_MQTT || protocol == LOUPE_PROTO_AMQP || protocol == LOUPE_PROTO_HTTP2 ||
	       protocol == LOUPE_PROTO_KAFKA || protocol == LOUPE_PROTO_MONGO || protocol == LOUPE_PROTO_CQL;
}

/*
 * Bytes one syscall may copy. While the consumer keeps up, up to MAX_CHUNKS records; when the
 * ring fills (a burst of large bodies outrunning the consumer), only a prefix of each syscall:
 * message heads sit at the start of a syscall, so they keep getting through while the rest
 * of the bodies become gaps of known length instead of filling the ring and losing whole
 * records (and with them the heads behind them).
 */
static __always_inline __u64 copy_budget(void)
{
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	__u64 used = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	if (used > size / 4 * 3)
		return LOUPE_PRESSURE_COPY_BYTES;
	if (used > size / 2)
		return LOUPE_CHUNK_SIZE;
	return LOUPE_CHUNK_SIZE * LOUPE_MAX_CHUNKS;
}

/* Volatile reload: the verifier then sees an unknown scalar, not a path-specific constant. */
#define RELOAD(x) (*(volatile __u64 *)&(x))

/* Submits the record being filled (s->walk_fill bytes from s->ev.h.chunk_offset); `last` accounts for up to `ret`. */
static __always_inline void submit_fill(struct scratch *s, bool last, __u64 ret)
{
	struct loupe_data_event *ev = &s->ev;
	__u64 fill = RELOAD(s->walk_fill);

	if (fill > LOUPE_CHUNK_SIZE)
		fill = LOUPE_CHUNK_SIZE;
	ev->h.len = fill;
	ev->h.flags = last ? LOUPE_DATA_FLAG_LAST : 0;
	/* A dropped record loses its bytes, and the last one the uncaptured rest too. */
	submit(ev, sizeof(ev->h) + fill, last ? ret - ev->h.chunk_offset : fill);
	s->walk_fill = 0;
	s->walk_chunks = RELOAD(s->walk_chunks) + 1;
	if (last)
		s->walk_last = 1;
}

/*
 * Copies the first s->copy_limit of the syscall's `ret` bytes (spread over s->iov[0..n_iov]) into at most
 * LOUPE_MAX_CHUNKS records, and no more than copy_budget() bytes. Iovecs are packed together into records
 * of up to LOUPE_CHUNK_SIZE bytes: gRPC's C core sends a call as dozens of small iovecs in one sendmsg, so a
 * record per iovec would run out of records after the first few frames. Chunks are contiguous from the
 * message start; the record flagged LAST accounts for everything up to `ret`, so uncaptured bytes show as
 * msg_size - chunk_offset > len.
 *
 * Each iteration copies one piece: the rest of an iovec, the room left in the record, or the bytes left
 * under the limit, whichever is least, so it ends an iovec, fills a record or ends the walk: at most
 * LOUPE_MAX_IOV + LOUPE_MAX_CHUNKS iterations. The walk state lives in the scratch map and is reloaded every
 * iteration: kept in registers, each iteration's exact offsets multiply the verifier's paths past its
 * 1M-instruction limit. The copy goes to ev->data + fill with fill < CHUNK_SIZE and len <= CHUNK_SIZE - fill;
 * the verifier cannot relate the two, so ev_slack behind the record keeps its worst case inside the map value.
 */
/* One step of emit_data's walk (a bpf_loop callback); 1 ends the walk. */
static long emit_step(__u64 k, void *unused)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);
	struct loupe_data_event *ev;
	__u64 idx, iov_off, msg_off, fill, n_iov, limit, ret;
	__u64 len, avail, src, iov_len;
	bool done;

	if (!s)
		return 1;
	ev = &s->ev;
	idx = RELOAD(s->walk_idx);
	iov_off = RELOAD(s->walk_iov_off);
	msg_off = RELOAD(s->walk_msg_off);
	fill = RELOAD(s->walk_fill);
	n_iov = RELOAD(s->walk_n_iov);
	limit = RELOAD(s->walk_limit);
	ret = RELOAD(s->walk_ret);
	if (idx >= n_iov || idx >= LOUPE_MAX_IOV || msg_off >= limit || fill >= LOUPE_CHUNK_SIZE)
		return 1;
	iov_len = s->iov[idx & (LOUPE_MAX_IOV - 1)].len;
	src = s->iov[idx & (LOUPE_MAX_IOV - 1)].base + iov_off;
	if (iov_off >= iov_len) {
		/* An empty iovec: move on. */
		s->walk_idx = idx + 1;
		s->walk_iov_off = 0;
		return 0;
	}
	avail = iov_len - iov_off;
	len = limit - msg_off;
	if (len > avail)
		len = avail;
	if (len > LOUPE_CHUNK_SIZE - fill)
		len = LOUPE_CHUNK_SIZE - fill;
	if (fill == 0)
		ev->h.chunk_offset = msg_off;

	/* Re-bound in 64-bit registers right before the helper (clang-14 verifier quirk). */
	fill &= LOUPE_CHUNK_SIZE - 1;
	if (len > LOUPE_CHUNK_SIZE)
		len = LOUPE_CHUNK_SIZE;
	if (bpf_probe_read_user(ev->data + fill, len, (const void *)src)) {
		stat_inc(LOUPE_STAT_READ_FAILURES);
		/* What the record holds so far is good; the rest of the syscall is a gap. */
		submit_fill(s, true, ret);
		return 1;
	}
	iov_off += len;
	msg_off += len;
	fill += len;
	if (iov_off >= iov_len) {
		idx += 1;
		iov_off = 0;
	}
	s->walk_idx = idx;
	s->walk_iov_off = iov_off;
	s->walk_msg_off = msg_off;
	s->walk_fill = fill;
	done = idx >= n_iov || msg_off >= limit;
	if (fill >= LOUPE_CHUNK_SIZE || done) {
		bool last = done || RELOAD(s->walk_chunks) + 1 >= LOUPE_MAX_CHUNKS;

		submit_fill(s, last, ret);
		if (last)
			return 1;
	}
	return 0;
}

/*
 * Copies the first s->copy_limit of the syscall's `ret` bytes (spread over s->iov[0..n_iov]) into at most
 * LOUPE_MAX_CHUNKS records, and no more than copy_budget() bytes. Iovecs are packed together into records
 * of up to LOUPE_CHUNK_SIZE bytes: gRPC's C core sends a call as dozens of small iovecs in one sendmsg, so a
 * record per iovec would run out of records after the first few frames. Chunks are contiguous from the
 * message start; the record flagged LAST accounts for everything up to `ret`, so uncaptured bytes show as
 * msg_size - chunk_offset > len.
 *
 * Each step (emit_step, run by bpf_loop so the verifier checks it once, not once per iteration) copies one
 * piece: the rest of an iovec, the room left in the record, or the bytes left under the limit, whichever is
 * least, so it ends an iovec, fills a record or ends the walk: at most LOUPE_MAX_IOV + LOUPE_MAX_CHUNKS
 * steps. The copy goes to ev->data + fill with fill < CHUNK_SIZE and len <= CHUNK_SIZE - fill; the verifier
 * cannot relate the two, so ev_slack behind the record keeps its worst case inside the map value.
 */
static __always_inline void emit_data(struct scratch *s, __u64 n_iov, __u64 ret)
{
	struct loupe_data_event *ev = &s->ev;
	__u64 copy = RELOAD(s->copy_limit);
	/* The budget never goes below LOUPE_PRESSURE_COPY_BYTES: a small message need not ask the ring. */
	__u64 budget = copy <= LOUPE_PRESSURE_COPY_BYTES ? copy : copy_budget();
	__u64 limit = copy < budget ? copy : budget;

	/* The common cases, one buffer, or two (a head and a body: nginx's writev), that fit one record: copied
	 * straight, without the walk's loop. */
	if (n_iov <= 2 && limit <= LOUPE_CHUNK_SIZE) {
		__u64 len = s->iov[0].len < limit ? s->iov[0].len : limit;
		__u64 len2 = 0;

		ev->h.chunk_offset = 0;
		if (len > LOUPE_CHUNK_SIZE)
			len = LOUPE_CHUNK_SIZE;
		if (len > 0 && bpf_probe_read_user(ev->data, len, (const void *)s->iov[0].base)) {
			stat_inc(LOUPE_STAT_READ_FAILURES); /* the syscall's bytes become a gap */
			len = 0;
		} else if (n_iov == 2 && len < limit && len == s->iov[0].len) {
			len2 = s->iov[1].len < limit - len ? s->iov[1].len : limit - len;
			/* len < limit <= CHUNK_SIZE: the mask keeps it as it is, for the verifier; len2 may reach
			 * into ev_slack as the verifier sees it, never in fact. */
			if (len2 > LOUPE_CHUNK_SIZE)
				len2 = LOUPE_CHUNK_SIZE;
			if (len2 > 0 && bpf_probe_read_user(ev->data + (len & (LOUPE_CHUNK_SIZE - 1)), len2,
							    (const void *)s->iov[1].base)) {
				stat_inc(LOUPE_STAT_READ_FAILURES);
				len2 = 0;
			}
		}
		s->walk_fill = len + len2;
		submit_fill(s, true, ret);
		if (len + len2 < ret)
			stat_inc(LOUPE_STAT_TRUNCATED);
		return;
	}

	s->walk_limit = limit;
	s->walk_n_iov = n_iov;
	s->walk_ret = ret;
	s->walk_idx = 0;
	s->walk_iov_off = 0;
	s->walk_msg_off = 0;
	s->walk_fill = 0;
	s->walk_chunks = 0;
	s->walk_last = 0;
	ev->h.chunk_offset = 0;

	bpf_loop(LOUPE_MAX_IOV + LOUPE_MAX_CHUNKS, emit_step, NULL, 0);
	/* The walk ended without a LAST record (empty iovecs after a full record, nothing to copy): one
	 * closes the syscall, so user space sees its uncaptured bytes as a gap of known length. */
	if (!RELOAD(s->walk_last)) {
		if (RELOAD(s->walk_fill) == 0)
			ev->h.chunk_offset = RELOAD(s->walk_msg_off);
		submit_fill(s, true, ret);
	}
	if (RELOAD(s->walk_msg_off) < ret)
		stat_inc(LOUPE_STAT_TRUNCATED);
}

/* Most iovecs classify_iov gathers its 16 bytes from. */
#define CLASSIFY_MAX_IOV 16

/*
 * Reads up to 16 bytes from the first iovecs (a message written one small iovec at a time still shows
 * its start), for classification.
 */
static __always_inline __u8 classify_iov(struct scratch *s, __u64 n_iov, __u64 ret)
{
	/* 32 bytes: the copy at `got` (< 16) of at most 16 - got bytes stays inside even as the verifier sees it. */
	__u8 bytes[32] = {};
	__u64 words[2];
	__u64 got = 0;
	__u64 want = ret < 16 ? ret : 16;

	for (int i = 0; i < CLASSIFY_MAX_IOV; i++) {
		__u64 len;

		if (i >= n_iov || i >= LOUPE_MAX_IOV || got >= want)
			break;
		len = s->iov[i & (LOUPE_MAX_IOV - 1)].len;
		if (len > want - got)
			len = want - got;
		if (len == 0)
			continue;
		got &= 15;
		if (len > 16)
			len = 16;
		if (bpf_probe_read_user(bytes + got, len, (const void *)s->iov[i & (LOUPE_MAX_IOV - 1)].base)) {
			stat_inc(LOUPE_STAT_READ_FAILURES);
			return LOUPE_PROTO_UNCLASSIFIED; /* try again on the next data */
		}
		got += len;
	}
	if (got == 0)
		return LOUPE_PROTO_OTHER;
	__builtin_memcpy(words, bytes, sizeof(words));
	/* The tests written for 8 bytes read `avail == 8` as "the whole word": they get at most 8. */
	return classify(words[0], got < 8 ? got : 8, words[1], got);
}

/* ---- enter/exit bodies ---- */

/* What prepare_args found. */
#define ARGS_SKIP 0  /* not a socket to follow */
#define ARGS_READY 1 /* *a holds the arguments */
#define ARGS_DONE 2  /* a tracked UDP socket that showed no DNS: nothing to do (the cheapest way out) */

/*
 * Fills *a with the syscall's arguments if `fd` is a tracked, TCP or UDP socket. `addr` is the user
 * sockaddr a datagram syscall names (kept for UDP sockets only).
 */
static __always_inline int prepare_args(__u64 id, __s64 fd_arg, __u64 buf, __u64 count, __u32 kind, __u64 addr,
					struct syscall_args *a, struct conn_info **found)
{
	__u32 tgid = id >> 32;
	__s32 fd = (__s32)fd_arg;
	struct conn_info *c;
	__u64 key;

	if (!tgid_wanted(tgid) || fd < 0)
		return ARGS_SKIP;
	key = conn_key(tgid, fd);
	c = bpf_map_lookup_elem(&conn_map, &key);
	*found = c;
	a->sk = 0;
	a->dgram = 0;
	if (!c) {
		/* The expensive check runs once per connection: afterwards conn_map answers. */
		a->sk = (__u64)sock_of_fd(fd, &a->dgram);
		if (!a->sk)
			return ARGS_SKIP;
	} else {
		if (c->dgram && c->protocol == LOUPE_PROTO_OTHER)
			return ARGS_DONE;
		a->dgram = c->dgram;
		/* Inside SSL_read/SSL_write on this thread, the socket it moves bytes on is this one. */
		if (c->protocol == LOUPE_PROTO_TLS || c->tls)
			note_tls_fd(id, fd);
	}
	a->addr = a->dgram ? addr : 0;
	a->fd = fd;
	a->buf = buf;
	a->count = count;
	a->kind = kind;
	return ARGS_READY;
}

/*
 * Stashes the syscall's arguments for its exit if `fd` is a tracked, TCP or UDP socket; true if it
 * is. `addr` is the user sockaddr a datagram syscall names (kept for UDP sockets only).
 */
static __always_inline bool stash_addr_args(__s64 fd_arg, __u64 buf, __u64 count, __u32 kind, __u64 addr)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct syscall_args a = {};
	struct conn_info *found;
	int r = prepare_args(id, fd_arg, buf, count, kind, addr, &a, &found);

	if (r != ARGS_READY)
		return r == ARGS_DONE;
	if (bpf_map_update_elem(&args_map, &id, &a, BPF_ANY))
		stat_inc(LOUPE_STAT_ARGS_MAP_FULL);
	return true;
}

static __always_inline bool stash_args(__s64 fd_arg, __u64 buf, __u64 count, __u32 kind)
{
	return stash_addr_args(fd_arg, buf, count, kind, 0);
}

static __always_inline int enter_data(__s64 fd_arg, __u64 buf, __u64 count, __u32 kind)
{
	stash_addr_args(fd_arg, buf, count, kind, 0);
	return 0;
}

/*
 * The connection of a finished syscall (opened now if it was first seen mid-stream), with its stream
 * position in `direction` advanced by `size`; `*pos` gets the position before. NULL when there is
 * none to track: the socket was closed by another thread meanwhile, or conn_map is full.
 */
static __always_inline struct conn_info *advance_conn(__u32 tgid, struct syscall_args *a, __u8 direction,
						      __u64 size, __u64 *pos, struct conn_info *known)
{
	__u64 key = conn_key(tgid, a->fd);
	/* `known`: the caller's lookup of the same key in this run, saving a second one. */
	struct conn_info *c = known ? known : bpf_map_lookup_elem(&conn_map, &key);

	if (!c) {
		if (!a->sk)
			return NULL;
		c = open_conn(tgid, a->fd, (struct sock *)a->sk, LOUPE_ROLE_UNKNOWN);
		if (!c)
			return NULL;
	}
	if (direction == LOUPE_DIR_EGRESS) {
		*pos = c->bytes_sent;
		c->bytes_sent = *pos + size;
	} else {
		*pos = c->bytes_recv;
		c->bytes_recv = *pos + size;
	}
	return c;
}

/*
 * Sizes of a sendmmsg/recvmmsg result: `n` messages of the user mmsghdr array at `vec`; `*first`
 * gets the first one's length, `*total` the sum over the first LOUPE_MAX_MMSG (a larger batch
 * under-counts the stream, which parsing then meets as garbage and resynchronises). Nonzero if
 * a length could not be read.
 */
static __always_inline int mmsg_sizes(__u64 vec, __u64 n, __u64 *first, __u64 *total)
{
	struct mmsghdr *m = (struct mmsghdr *)vec;
	__u64 sum = 0;
	__u32 len = 0;

	for (int i = 0; i < LOUPE_MAX_MMSG; i++) {
		if (i >= n)
			break;
		if (bpf_probe_read_user(&len, sizeof(len), &m[i].msg_len))
			return -1;
		if (i == 0)
			*first = len;
		sum += len;
	}
	*total = sum;
	return 0;
}

/*
 * Fills the data record's header and emits the syscall's (or TLS call's) bytes in s->iov[0..n_iov].
 * `ts_ns` is the record's time, 0 for now.
 */
static __always_inline void emit_conn_data(struct scratch *s, __u32 tgid, __s32 fd, __u64 generation, __u8 protocol,
					   __u8 direction, __u64 pos, __u64 size, __u64 copy, __u64 n_iov, __u64 ts_ns)
{
	s->ev.h.hdr.kind = LOUPE_EVENT_DATA;
	s->ev.h.hdr.tgid = tgid;
	s->ev.h.hdr.ts_ns = ts_ns ? ts_ns : bpf_ktime_get_ns();
	s->ev.h.hdr.generation = generation;
	s->ev.h.hdr.fd = fd;
	s->ev.h.hdr._pad0 = 0;
	s->ev.h.pos = pos;
	s->ev.h.msg_size = size;
	s->ev.h.direction = direction;
	s->ev.h.protocol = protocol;
	s->ev.h._pad0 = 0;
	/* HTTP: the parser keeps the head and a body budget only; the rest is a gap of known size.
	 * Passed through the scratch map, which the verifier does not track: in a register, the two
	 * ranges of `copy` doubled the paths it walks through emit_data (and the load time). */
	s->copy_limit = copy;
	if (protocol == LOUPE_PROTO_HTTP && loupe_http_copy_bytes != 0 && copy > loupe_http_copy_bytes)
		s->copy_limit = loupe_http_copy_bytes;
	emit_data(s, n_iov, size);
}

/* ---- datagram (UDP) sockets ---- */

/*
 * A DNS query as its first 8 bytes tell: QR clear, a standard opcode (QUERY, IQUERY, STATUS), RA,
 * Z and RCODE clear, one question and no answers, in a datagram long enough for a question. The
 * first datagram a UDP socket moves decides for the socket's life: a DNS query (or either end on
 * port 53) exports its datagrams, anything else is never looked at again.
 */
static __always_inline bool is_dns_udp_query(__u64 word, __u64 size)
{
	return size >= 17 && (BYTE(word, 2) & 0x80) == 0 && ((BYTE(word, 2) >> 3) & 0xf) <= 2 &&
	       (BYTE(word, 3) & 0xcf) == 0 && BYTE(word, 4) == 0 && BYTE(word, 5) == 1 && BYTE(word, 6) == 0 &&
	       BYTE(word, 7) == 0;
}

/*
 * DNS over TCP read in pieces: dnsmasq reads a query's 2-byte length one byte at a time, then the query. A
 * connection's first two received bytes, each read alone, are kept while it is undecided; a third read at
 * offset 2 of the size they announce that looks like a DNS query decides DNS, and the two bytes go out first,
 * as the stream's first record, so user space sees the whole stream. OTHER when it is not that.
 */
static __noinline __u8 dns_tcp_split(struct conn_info *c, struct scratch *s, __u64 key, __u64 pos, __u64 size)
{
	struct loupe_data_event *ev = &s->ev;
	const void *buf = (const void *)s->iov[0].base;
	__u64 word = 0;
	__u8 b = 0;

	if (size == 1 && pos < 2 && pos == c->early_len) {
		if (bpf_probe_read_user(&b, 1, buf))
			return LOUPE_PROTO_OTHER;
		c->early[pos & 1] = b;
		c->early_len = pos + 1;
		return LOUPE_PROTO_UNCLASSIFIED;
	}
	if (pos != 2 || c->early_len != 2 || size != (((__u64)c->early[0] << 8) | c->early[1]) ||
	    bpf_probe_read_user(&word, sizeof(word), buf) || !is_dns_udp_query(word, size))
		return LOUPE_PROTO_OTHER;
	ev->h.hdr.kind = LOUPE_EVENT_DATA;
	ev->h.hdr.tgid = key >> 32; /* conn_key(tgid, fd) */
	ev->h.hdr.ts_ns = bpf_ktime_get_ns();
	ev->h.hdr.generation = c->generation;
	ev->h.hdr.fd = (__s32)key;
	ev->h.hdr._pad0 = 0;
	ev->h.pos = 0;
	ev->h.msg_size = 2;
	ev->h.chunk_offset = 0;
	ev->h.len = 2;
	ev->h.direction = LOUPE_DIR_INGRESS;
	ev->h.protocol = LOUPE_PROTO_DNS;
	ev->h.flags = LOUPE_DATA_FLAG_LAST;
	ev->h._pad0 = 0;
	ev->data[0] = c->early[0];
	ev->data[1] = c->early[1];
	/* No wake-up of its own: the query's record follows at once. */
	if (bpf_ringbuf_output(&events, ev, sizeof(ev->h) + 2, BPF_RB_NO_WAKEUP) == 0)
		stat_inc(LOUPE_STAT_EVENTS);
	else
		stat_inc(LOUPE_STAT_RINGBUF_FAILURES);
	return LOUPE_PROTO_DNS;
}

/* Starts tracking a UDP socket. No record: it has no single peer, each datagram names its own. */
static __always_inline struct conn_info *open_dgram(__u32 tgid, __s32 fd)
{
	__u64 key = conn_key(tgid, fd);
	struct conn_info c = {};

	c.generation = bpf_ktime_get_ns();
	c.role = LOUPE_ROLE_UNKNOWN;
	c.dgram = 1;
	if (bpf_map_update_elem(&conn_map, &key, &c, BPF_ANY)) {
		stat_inc(LOUPE_STAT_CONN_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&conn_map, &key);
}

/* Both ends of a datagram: the socket's own address and its connected peer (if any). */
static __always_inline void ends_from_sock(struct loupe_dgram_header *d, struct sock *sk)
{
	d->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	d->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	d->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	d->_pad0 = 0;
	__builtin_memset(d->local_addr, 0, sizeof(d->local_addr));
	__builtin_memset(d->remote_addr, 0, sizeof(d->remote_addr));
	if (d->family == LOUPE_AF_INET) {
		bpf_core_read(&d->local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(&d->remote_addr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(&d->local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(&d->remote_addr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* The datagram's peer from the user sockaddr the syscall named (an unconnected socket), if any. */
static __always_inline void peer_from_user(struct loupe_dgram_header *d, __u64 name)
{
	struct sockaddr_in6 sa = {};

	if (!name || bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), (const void *)name))
		return;
	if (sa.sin6_family == LOUPE_AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;

		d->remote_port = bpf_ntohs(in->sin_port);
		__builtin_memset(d->remote_addr, 0, sizeof(d->remote_addr));
		__builtin_memcpy(d->remote_addr, &in->sin_addr, 4);
	} else if (sa.sin6_family == LOUPE_AF_INET6 && !bpf_probe_read_user(&sa, sizeof(sa), (const void *)name)) {
		d->remote_port = bpf_ntohs(sa.sin6_port);
		__builtin_memcpy(d->remote_addr, &sa.sin6_addr, 16);
	}
}

/*
 * Emits one datagram of `size` bytes whose first `len` sit at user address `base`; classifies the
 * socket on its first. False once the socket is known not to carry DNS.
 */
static __always_inline bool emit_dgram(struct scratch *s, struct conn_info *c, struct sock *sk, __u32 tgid,
				       __s32 fd, __u8 direction, __u64 base, __u64 len, __u64 size, __u64 name)
{
	struct loupe_dgram_event *ev = &s->dg;

	ends_from_sock(&ev->d, sk);
	peer_from_user(&ev->d, name);
	if (c->protocol == LOUPE_PROTO_UNCLASSIFIED) {
		__u64 word = 0;

		if (len >= 8 && bpf_probe_read_user(&word, 8, (const void *)base)) {
			stat_inc(LOUPE_STAT_READ_FAILURES);
			return false;
		}
		if (!is_dns_udp_query(word, len) && ev->d.local_port != DNS_PORT && ev->d.remote_port != DNS_PORT) {
			c->protocol = LOUPE_PROTO_OTHER;
			return false;
		}
		c->protocol = LOUPE_PROTO_DNS;
	}
	ev->d.h.hdr.kind = LOUPE_EVENT_DATAGRAM;
	ev->d.h.hdr.tgid = tgid;
	ev->d.h.hdr.ts_ns = bpf_ktime_get_ns();
	ev->d.h.hdr.generation = c->generation;
	ev->d.h.hdr.fd = fd;
	ev->d.h.hdr._pad0 = 0;
	ev->d.h.pos = 0;
	ev->d.h.msg_size = size;
	ev->d.h.chunk_offset = 0;
	ev->d.h.direction = direction;
	ev->d.h.protocol = c->protocol;
	ev->d.h.flags = LOUPE_DATA_FLAG_LAST;
	ev->d.h._pad0 = 0;
	if (len > LOUPE_DGRAM_COPY)
		len = LOUPE_DGRAM_COPY;
	if (len && bpf_probe_read_user(ev->data, len, (const void *)base)) {
		stat_inc(LOUPE_STAT_READ_FAILURES);
		len = 0;
	}
	if (len > LOUPE_DGRAM_COPY)
		len = LOUPE_DGRAM_COPY;
	ev->d.h.len = len;
	submit(ev, sizeof(ev->d) + len, size);
	return true;
}

/*
 * A finished syscall on a UDP socket: each datagram (up to LOUPE_MAX_DGRAMS of a sendmmsg or
 * recvmmsg) becomes one record with its peer, its first iovec copied. A datagram spread over
 * several iovecs is cut at the first: user space then fails to decode it and counts an error.
 */
static __always_inline int exit_dgram(__u32 tgid, struct syscall_args *a, __u8 direction, __u64 ret)
{
	__u64 key = conn_key(tgid, a->fd);
	struct conn_info *c = bpf_map_lookup_elem(&conn_map, &key);
	struct sock *sk = (struct sock *)a->sk;
	struct scratch *s;
	__u32 zero = 0;
	__u32 dgram = 0;
	__u64 n = 1;

	if (!c) {
		if (!sk)
			return 0;
		c = open_dgram(tgid, a->fd);
		if (!c)
			return 0;
	}
	if (c->protocol == LOUPE_PROTO_OTHER)
		return 0;
	if (!sk)
		sk = sock_of_fd(a->fd, &dgram);
	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!sk || !s)
		return 0;
	if (direction == LOUPE_DIR_EGRESS)
		c->bytes_sent += ret;
	else
		c->bytes_recv += ret;
	if (a->kind == ARGS_MMSG)
		n = ret < LOUPE_MAX_DGRAMS ? ret : LOUPE_MAX_DGRAMS;
	for (int i = 0; i < LOUPE_MAX_DGRAMS; i++) {
		__u64 size = ret;
		__u64 name = a->addr;
		__u64 len;

		if (i >= n)
			break;
		if (a->kind == ARGS_MMSG) {
			struct mmsghdr *m = &((struct mmsghdr *)a->buf)[i];
			struct iovec *iov = NULL;
			void *nm = NULL;
			__u32 mlen = 0;

			if (bpf_probe_read_user(&mlen, sizeof(mlen), &m->msg_len) ||
			    bpf_core_read_user(&iov, sizeof(iov), &m->msg_hdr.msg_iov) ||
			    bpf_core_read_user(&nm, sizeof(nm), &m->msg_hdr.msg_name) ||
			    bpf_probe_read_user(&s->iov[0], sizeof(struct loupe_iov), iov)) {
				stat_inc(LOUPE_STAT_READ_FAILURES);
				return 0;
			}
			size = mlen;
			name = (__u64)nm;
		} else if (a->kind == ARGS_IOV) {
			if (a->count == 0 ||
			    bpf_probe_read_user(&s->iov[0], sizeof(struct loupe_iov), (const void *)a->buf)) {
				stat_inc(LOUPE_STAT_READ_FAILURES);
				return 0;
			}
		} else {
			s->iov[0].base = a->buf;
			s->iov[0].len = ret;
		}
		len = s->iov[0].len;
		if (len > size)
			len = size;
		if (!emit_dgram(s, c, sk, tgid, a->fd, direction, s->iov[0].base, len, size, name))
			return 0;
	}
	return 0;
}

/* Where a data syscall's arguments sit in its saved registers (loupe_args_at_exit). */
#define REGS_BUF 1      /* read/write(fd, buf, len) */
#define REGS_BUF_ADDR 2 /* recvfrom/sendto(fd, buf, len, flags, addr, addrlen) */
#define REGS_IOV 3      /* readv/writev(fd, iov, iovcnt) */
#define REGS_MSG 4      /* recvmsg/sendmsg(fd, msghdr *, flags) */
#define REGS_MMSG 5     /* recvmmsg/sendmmsg(fd, mmsghdr *, vlen, ...) */

/*
 * The finished syscall's arguments, read from the task's saved user registers, as its enter program would
 * have stashed them (ARGS_* of prepare_args). A msghdr is read from user memory only for a socket followed:
 * recvmsg writes back its lengths and flags, never the iovec and name pointers read here.
 */
static __always_inline int args_from_regs(__u64 id, __u32 how, struct syscall_args *a, struct conn_info **found)
{
	/* A BTF pointer: its fields are plain loads (the verifier guards them), not probe-read helper calls. */
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	__u64 fd = PT_REGS_PARM1_SYSCALL(regs);
	__u64 buf = PT_REGS_PARM2_SYSCALL(regs);
	__u64 count = 0;
	__u64 addr = 0;
	__u32 kind = ARGS_BUF;
	int r;

	if (how == REGS_BUF_ADDR) {
		addr = PT_REGS_PARM5_SYSCALL(regs);
	} else if (how == REGS_IOV || how == REGS_MMSG) {
		count = PT_REGS_PARM3_SYSCALL(regs);
		kind = how == REGS_IOV ? ARGS_IOV : ARGS_MMSG;
	}
	if (how != REGS_MSG)
		return prepare_args(id, fd, buf, count, kind, addr, a, found);

	r = prepare_args(id, fd, 0, 0, ARGS_IOV, 0, a, found);
	if (r == ARGS_READY) {
		struct user_msghdr *msg = (struct user_msghdr *)buf;
		struct iovec *iov = NULL;
		void *name = NULL;
		__u64 iovlen = 0;

		if (bpf_core_read_user(&iov, sizeof(iov), &msg->msg_iov) ||
		    bpf_core_read_user(&iovlen, sizeof(iovlen), &msg->msg_iovlen) ||
		    bpf_core_read_user(&name, sizeof(name), &msg->msg_name))
			return ARGS_SKIP;
		a->buf = (__u64)iov;
		a->count = iovlen;
		a->addr = a->dgram ? (__u64)name : 0;
	}
	return r;
}

/*
 * A data syscall's exit. `how` says where its arguments sit in the saved registers when
 * loupe_args_at_exit is set; otherwise its enter program stashed them in args_map.
 */
static __always_inline int exit_data(long ret, __u8 direction, __u32 how)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct syscall_args a = {};
	struct conn_info *found = NULL;
	struct conn_info *c;
	struct scratch *s;
	__u32 zero = 0;
	__u64 n_iov;
	__u64 pos, size, copy;

	if (loupe_args_at_exit) {
		/* Failed and empty calls (EAGAIN on a non-blocking socket) leave at once. */
		if (ret <= 0 || args_from_regs(id, how, &a, &found) != ARGS_READY)
			return 0;
	} else {
		struct syscall_args *ap = bpf_map_lookup_elem(&args_map, &id);

		if (!ap)
			return 0;
		a = *ap;
		bpf_map_delete_elem(&args_map, &id);
		if (ret <= 0)
			return 0;
	}
	if (a.dgram)
		return exit_dgram(tgid, &a, direction, (__u64)ret);
	size = (__u64)ret;
	copy = size;
	if (a.kind == ARGS_MMSG) {
		/* ret counts messages: the stream moved the sum of their msg_len; the first is copied. */
		struct user_msghdr *first = (struct user_msghdr *)a.buf;

		if (mmsg_sizes(a.buf, size, &copy, &size) ||
		    bpf_core_read_user(&a.buf, sizeof(a.buf), &first->msg_iov) ||
		    bpf_core_read_user(&a.count, sizeof(a.count), &first->msg_iovlen)) {
			stat_inc(LOUPE_STAT_READ_FAILURES);
			return 0;
		}
		a.kind = ARGS_IOV;
		if (size == 0)
			return 0;
	}

	c = advance_conn(tgid, &a, direction, size, &pos, found);
	if (!c)
		return 0;
	if (direction == LOUPE_DIR_INGRESS && c->tls_ssl == 0 && (c->protocol == LOUPE_PROTO_TLS || c->tls) &&
	    !bpf_map_lookup_elem(&tls_calls, &id))
		bpf_map_update_elem(&tls_thread_reads, &id, &a.fd, BPF_ANY);
	/* Not exported, or TLS whose plaintext the uprobes send (a STARTTLS protocol's raw records). */
	if ((c->protocol != LOUPE_PROTO_UNCLASSIFIED && !protocol_exported(c->protocol)) || c->tls)
		return 0;

	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		return 0;
	if (a.kind == ARGS_IOV) {
		__u64 cnt = a.count;

		if (cnt > LOUPE_MAX_IOV)
			cnt = LOUPE_MAX_IOV;
		if (cnt == 0)
			return 0;
		if (bpf_probe_read_user(s->iov, cnt * sizeof(struct loupe_iov), (const void *)a.buf)) {
			stat_inc(LOUPE_STAT_READ_FAILURES);
			return 0;
		}
		n_iov = cnt;
	} else {
		s->iov[0].base = a.buf;
		s->iov[0].len = size;
		n_iov = 1;
	}

	if (c->protocol == LOUPE_PROTO_UNCLASSIFIED) {
		__u8 p = classify_iov(s, n_iov, copy);

		if (p == LOUPE_PROTO_OTHER && direction == LOUPE_DIR_INGRESS && n_iov == 1 && pos <= 2)
			p = dns_tcp_split(c, s, conn_key(tgid, a.fd), pos, size);
		c->protocol = port_override(p, c->port_proto);
		if (!protocol_exported(c->protocol))
			return 0;
	}

	emit_conn_data(s, tgid, a.fd, c->generation, c->protocol, direction, pos, size, copy, n_iov, 0);
	return 0;
}

/*
 * sendfile/splice exit: the socket's stream moved `ret` bytes that were never in a user buffer.
 * They advance the position like any I/O; for an exported protocol one payload-less record
 * tells user space to count them as a gap. A connection not yet classified has shown no bytes
 * to classify by, so it is only counted.
 */
static __always_inline int exit_nocopy(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct syscall_args *ap = bpf_map_lookup_elem(&args_map, &id);
	struct loupe_data_header h = {};
	struct syscall_args a;
	struct conn_info *c;
	__u64 pos, size;
	__u8 direction;

	if (!ap)
		return 0;
	a = *ap;
	bpf_map_delete_elem(&args_map, &id);
	if (ret <= 0 || a.kind != ARGS_NOCOPY || a.dgram)
		return 0;
	size = (__u64)ret;
	direction = a.count == LOUPE_DIR_INGRESS ? LOUPE_DIR_INGRESS : LOUPE_DIR_EGRESS;

	c = advance_conn(tgid, &a, direction, size, &pos, NULL);
	if (!c)
		return 0;
	stat_inc(LOUPE_STAT_NOT_COPIED);
	if (!protocol_exported(c->protocol))
		return 0;

	h.hdr.kind = LOUPE_EVENT_DATA;
	h.hdr.tgid = tgid;
	h.hdr.ts_ns = bpf_ktime_get_ns();
	h.hdr.generation = c->generation;
	h.hdr.fd = a.fd;
	h.pos = pos;
	h.msg_size = size;
	h.chunk_offset = 0;
	h.len = 0;
	h.direction = direction;
	h.protocol = c->protocol;
	h.flags = LOUPE_DATA_FLAG_LAST;
	submit(&h, sizeof(h), size);
	return 0;
}

/* sendmsg/recvmsg: stash msg->msg_iov and msg->msg_iovlen as an iovec array (and msg_name for UDP). */
static __always_inline int enter_msg(__s64 fd, __u64 msg_ptr)
{
	struct user_msghdr *msg = (struct user_msghdr *)msg_ptr;
	struct iovec *iov = NULL;
	void *name = NULL;
	__u64 iovlen = 0;

	if (bpf_core_read_user(&iov, sizeof(iov), &msg->msg_iov) ||
	    bpf_core_read_user(&iovlen, sizeof(iovlen), &msg->msg_iovlen) ||
	    bpf_core_read_user(&name, sizeof(name), &msg->msg_name))
		return 0;
	stash_addr_args(fd, (__u64)iov, iovlen, ARGS_IOV, (__u64)name);
	return 0;
}

#define ENTER_ARGS(ctx) ((struct trace_event_raw_sys_enter *)(ctx))->args
#define EXIT_RET(ctx) ((struct trace_event_raw_sys_exit *)(ctx))->ret

SEC("tracepoint/syscalls/sys_enter_read")
int loupe_enter_read(void *ctx)
{
	return enter_data(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1], 0, ARGS_BUF);
}

SEC("tracepoint/syscalls/sys_exit_read")
int loupe_exit_read(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_INGRESS, REGS_BUF);
}

SEC("tracepoint/syscalls/sys_enter_write")
int loupe_enter_write(void *ctx)
{
	return enter_data(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1], 0, ARGS_BUF);
}

SEC("tracepoint/syscalls/sys_exit_write")
int loupe_exit_write(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_EGRESS, REGS_BUF);
}

/* recvfrom/sendto(fd, buf, len, flags, addr, addrlen): addr names a UDP datagram's peer. */
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int loupe_enter_recvfrom(void *ctx)
{
	stash_addr_args(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1], 0, ARGS_BUF, ENTER_ARGS(ctx)[4]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int loupe_exit_recvfrom(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_INGRESS, REGS_BUF_ADDR);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int loupe_enter_sendto(void *ctx)
{
	stash_addr_args(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1], 0, ARGS_BUF, ENTER_ARGS(ctx)[4]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int loupe_exit_sendto(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_EGRESS, REGS_BUF_ADDR);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int loupe_enter_readv(void *ctx)
{
	return enter_data(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1], ENTER_ARGS(ctx)[2], ARGS_IOV);
}

SEC("tracepoint/syscalls/sys_exit_readv")
int loupe_exit_readv(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_INGRESS, REGS_IOV);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int loupe_enter_writev(void *ctx)
{
	return enter_data(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1], ENTER_ARGS(ctx)[2], ARGS_IOV);
}

SEC("tracepoint/syscalls/sys_exit_writev")
int loupe_exit_writev(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_EGRESS, REGS_IOV);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int loupe_enter_recvmsg(void *ctx)
{
	return enter_msg(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1]);
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int loupe_exit_recvmsg(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_INGRESS, REGS_MSG);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int loupe_enter_sendmsg(void *ctx)
{
	return enter_msg(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1]);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int loupe_exit_sendmsg(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_EGRESS, REGS_MSG);
}

/* sendmmsg/recvmmsg(fd, mmsghdr *vec, vlen, ...): several messages in one call (rare on TCP). */
SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int loupe_enter_sendmmsg(void *ctx)
{
	return enter_data(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1], ENTER_ARGS(ctx)[2], ARGS_MMSG);
}

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int loupe_exit_sendmmsg(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_EGRESS, REGS_MMSG);
}

SEC("tracepoint/syscalls/sys_enter_recvmmsg")
int loupe_enter_recvmmsg(void *ctx)
{
	return enter_data(ENTER_ARGS(ctx)[0], ENTER_ARGS(ctx)[1], ENTER_ARGS(ctx)[2], ARGS_MMSG);
}

SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int loupe_exit_recvmmsg(void *ctx)
{
	return exit_data(EXIT_RET(ctx), LOUPE_DIR_INGRESS, REGS_MMSG);
}

/* sendfile(out_fd, in_fd, offset, count): only out_fd can be the socket (in_fd must be mmap-able). */
SEC("tracepoint/syscalls/sys_enter_sendfile64")
int loupe_enter_sendfile64(void *ctx)
{
	return enter_data(ENTER_ARGS(ctx)[0], 0, LOUPE_DIR_EGRESS, ARGS_NOCOPY);
}

SEC("tracepoint/syscalls/sys_exit_sendfile64")
int loupe_exit_sendfile64(void *ctx)
{
	return exit_nocopy(EXIT_RET(ctx));
}

/*
 * splice(fd_in, off_in, fd_out, off_out, len, flags): one end is a pipe. A socket at fd_out is
 * sending (a proxy or file server writing without a copy), a socket at fd_in is receiving.
 */
SEC("tracepoint/syscalls/sys_enter_splice")
int loupe_enter_splice(void *ctx)
{
	if (!stash_args(ENTER_ARGS(ctx)[2], 0, LOUPE_DIR_EGRESS, ARGS_NOCOPY))
		stash_args(ENTER_ARGS(ctx)[0], 0, LOUPE_DIR_INGRESS, ARGS_NOCOPY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_splice")
int loupe_exit_splice(void *ctx)
{
	return exit_nocopy(EXIT_RET(ctx));
}

/* ---- connection lifecycle ---- */

static __always_inline int enter_connect(__s64 fd_arg)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__s32 fd = (__s32)fd_arg;
	struct syscall_args a = {};

	if (!tgid_wanted(tgid) || fd < 0)
		return 0;
	a.sk = (__u64)tcp_sock_of_fd(fd);
	if (!a.sk)
		return 0;
	a.fd = fd;
	a.kind = ARGS_CONNECT;
	if (bpf_map_update_elem(&args_map, &id, &a, BPF_ANY))
		stat_inc(LOUPE_STAT_ARGS_MAP_FULL);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int loupe_enter_connect(void *ctx)
{
	return enter_connect(ENTER_ARGS(ctx)[0]);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int loupe_exit_connect(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct syscall_args *ap = bpf_map_lookup_elem(&args_map, &id);
	long ret = EXIT_RET(ctx);
	struct syscall_args a;

	if (!ap)
		return 0;
	a = *ap;
	bpf_map_delete_elem(&args_map, &id);
	if (ret != 0 && ret != -EINPROGRESS_)
		return 0;
	open_conn(id >> 32, a.fd, (struct sock *)a.sk, LOUPE_ROLE_CLIENT);
	return 0;
}

static __always_inline int enter_accept(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct syscall_args a = {};

	if (!tgid_wanted(id >> 32))
		return 0;
	a.kind = ARGS_ACCEPT;
	if (bpf_map_update_elem(&args_map, &id, &a, BPF_ANY))
		stat_inc(LOUPE_STAT_ARGS_MAP_FULL);
	return 0;
}

static __always_inline int exit_accept(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sock *sk;

	if (!bpf_map_lookup_elem(&args_map, &id))
		return 0;
	bpf_map_delete_elem(&args_map, &id);
	if (ret < 0)
		return 0;
	sk = tcp_sock_of_fd((__s32)ret);
	if (!sk)
		return 0;
	open_conn(id >> 32, (__s32)ret, sk, LOUPE_ROLE_SERVER);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept")
int loupe_enter_accept(void *ctx)
{
	return enter_accept();
}

SEC("tracepoint/syscalls/sys_exit_accept")
int loupe_exit_accept(void *ctx)
{
	return exit_accept(EXIT_RET(ctx));
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int loupe_enter_accept4(void *ctx)
{
	return enter_accept();
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int loupe_exit_accept4(void *ctx)
{
	return exit_accept(EXIT_RET(ctx));
}

/*
 * The agent's own listeners: when the excluded process (the agent) listens, its port joins
 * excluded_ports, so clients talking to it (px, the UI, Prometheus) are left out too. At enter the
 * socket is bound already (a listen() that autobinds a port is missed: the agent binds first).
 */
SEC("tracepoint/syscalls/sys_enter_listen")
int loupe_enter_listen(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct sock *sk;
	__u16 port;
	__u8 one = 1;

	if (loupe_exclude_tgid == 0 || tgid != loupe_exclude_tgid)
		return 0;
	sk = tcp_sock_of_fd((__s32)ENTER_ARGS(ctx)[0]);
	if (!sk)
		return 0;
	port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (port != 0)
		bpf_map_update_elem(&excluded_ports, &port, &one, BPF_ANY);
	return 0;
}

/*
 * close releases the fd even when it returns an error (EINTR, EIO), so the enter side is enough:
 * no exit handler, one tracepoint fewer on a hot path.
 */
static __always_inline int close_fd(__s64 fd_arg)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__s32 fd = (__s32)fd_arg;
	struct conn_info *c;
	__u64 key;

	if (!tgid_wanted(tgid) || fd < 0)
		return 0;
	key = conn_key(tgid, fd);
	c = bpf_map_lookup_elem(&conn_map, &key);
	if (!c)
		return 0;
	emit_close(tgid, fd, c);
	bpf_map_delete_elem(&conn_map, &key);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int loupe_enter_close(void *ctx)
{
	return close_fd(ENTER_ARGS(ctx)[0]);
}

/* dup2/dup3(oldfd, newfd) close newfd first when it is open (unless it is oldfd): the same end. */
SEC("tracepoint/syscalls/sys_enter_dup2")
int loupe_enter_dup2(void *ctx)
{
	if (ENTER_ARGS(ctx)[0] == ENTER_ARGS(ctx)[1])
		return 0;
	return close_fd(ENTER_ARGS(ctx)[1]);
}

SEC("tracepoint/syscalls/sys_enter_dup3")
int loupe_enter_dup3(void *ctx)
{
	if (ENTER_ARGS(ctx)[0] == ENTER_ARGS(ctx)[1])
		return 0;
	return close_fd(ENTER_ARGS(ctx)[1]);
}

/*
 * A process's exit closes its fds without close syscalls: one record tells user space to end
 * every connection of the process. Only the thread-group leader's exit counts. The kernel-side
 * entries are left to conn_map's LRU (walking the map on every exit would cost more).
 */
SEC("tracepoint/sched/sched_process_exit")
int loupe_sched_process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct loupe_event_header ev = {};

	if ((__u32)id != tgid || !tgid_wanted(tgid))
		return 0;
	ev.kind = LOUPE_EVENT_PROC_EXIT;
	ev.tgid = tgid;
	ev.ts_ns = bpf_ktime_get_ns();
	ev.fd = -1;
	submit(&ev, sizeof(ev), 0);
	return 0;
}

/* ---- TLS plaintext: OpenSSL's SSL_read/SSL_write (and _ex) uprobes ---- */

/*
 * Attached by the loader to every libssl it finds mapped (crates/collector/src/socket/tls.rs).
 * Entry stashes the call; the syscalls inside it name the socket (note_tls_fd); the return emits the
 * plaintext as data records of that connection, with their own stream positions and protocol. The
 * raw syscalls of a TLS socket classify as LOUPE_PROTO_TLS and are never exported.
 */
static __always_inline int tls_enter(__u64 ssl, __u64 buf, __u64 len_ptr)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call t = {};

	if (!tgid_wanted(id >> 32))
		return 0;
	t.ssl = ssl;
	t.buf = buf;
	t.len_ptr = len_ptr;
	t.fd = -1;
	t.ts_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&tls_calls, &id, &t, BPF_ANY))
		stat_inc(LOUPE_STAT_ARGS_MAP_FULL);
	return 0;
}

/*
 * Emits `size` bytes of TLS plaintext at user address `buf` as data records of the connection (tgid, fd):
 * shared by the OpenSSL and the Go crypto/tls probes. Plaintext sent is timed at the call's entry:
 * the peer's answer can be read on another thread before the write returns (Go's HTTP/2 client reads
 * in its own goroutine), and a request timed after its response would have no latency.
 */
static __always_inline int tls_plaintext(__u32 tgid, __s32 fd, __u64 buf, __u64 size, __u8 direction,
					 __u64 entry_ns)
{
	struct loupe_event_header mark = {};
	struct conn_info *c;
	struct scratch *s;
	__u32 zero = 0;
	__u64 key, pos;
	__u64 ts_ns = direction == LOUPE_DIR_EGRESS ? entry_ns : 0;

	key = conn_key(tgid, fd);
	c = bpf_map_lookup_elem(&conn_map, &key);
	if (!c) {
		struct sock *sk = tcp_sock_of_fd(fd);

		if (!sk)
			return 0;
		c = open_conn(tgid, fd, sk, LOUPE_ROLE_UNKNOWN);
		if (!c)
			return 0;
	}
	/* Only a connection that is TLS from its first bytes: a STARTTLS protocol (PostgreSQL's
	 * SSLRequest) was exported in the clear and its parser stops at the switch; plaintext positions
	 * starting at 0 would collide with the raw stream it already read. */
	if (c->excluded || (c->protocol != LOUPE_PROTO_TLS && c->protocol != LOUPE_PROTO_UNCLASSIFIED) ||
	    c->port_proto == LOUPE_PROTO_OTHER)
		return 0;
	if (!c->tls) {
		/* Before the first plaintext record: user space marks the connection's rows encrypted. */
		c->tls = 1;
		mark.kind = LOUPE_EVENT_TLS_CONN;
		mark.tgid = tgid;
		mark.ts_ns = bpf_ktime_get_ns();
		mark.generation = c->generation;
		mark.fd = fd;
		submit(&mark, sizeof(mark), 0);
	}
	if (direction == LOUPE_DIR_EGRESS) {
		pos = c->tls_sent;
		c->tls_sent = pos + size;
	} else {
		pos = c->tls_recv;
		c->tls_recv = pos + size;
	}
	if (c->tls_protocol != LOUPE_PROTO_UNCLASSIFIED && !protocol_exported(c->tls_protocol))
		return 0;
	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		return 0;
	s->iov[0].base = buf;
	s->iov[0].len = size;
	if (c->tls_protocol == LOUPE_PROTO_UNCLASSIFIED) {
		c->tls_protocol = port_override(classify_iov(s, 1, size), c->port_proto);
		if (!protocol_exported(c->tls_protocol))
			return 0;
	}
	emit_conn_data(s, tgid, fd, c->generation, c->tls_protocol, direction, pos, size, size, 1, ts_ns);
	return 0;
}

/*
 * The socket of the finished SSL call `t` on thread `id`, binding the SSL * to it: the socket a syscall inside
 * the call named; else the one the SSL * is bound to, while that connection is open and still bound to it;
 * else the unbound TLS socket this thread last read outside any SSL call (tls_thread_reads). -1 if none.
 * Runs whatever the call returned: a handshake's first calls return no data but bind.
 */
static __always_inline __s32 tls_socket(__u64 id, const struct tls_call *t)
{
	struct tls_ssl_key k = {};
	struct conn_info *c;
	__u32 tgid = id >> 32;
	__s32 fd = t->fd;
	__s32 *known;
	__u64 key;

	k.ssl = t->ssl;
	k.tgid = tgid;
	if (fd < 0) {
		known = bpf_map_lookup_elem(&tls_fds, &k);
		if (known) {
			key = conn_key(tgid, *known);
			c = bpf_map_lookup_elem(&conn_map, &key);
			if (c && c->tls_ssl == t->ssl)
				return *known;
		}
		known = bpf_map_lookup_elem(&tls_thread_reads, &id);
		if (!known)
			return -1;
		fd = *known;
		bpf_map_delete_elem(&tls_thread_reads, &id);
		key = conn_key(tgid, fd);
		c = bpf_map_lookup_elem(&conn_map, &key);
		/* A socket bound to another SSL * is that one's: its read was not for this call. */
		if (!c || c->tls_ssl != 0)
			return -1;
	} else {
		key = conn_key(tgid, fd);
		c = bpf_map_lookup_elem(&conn_map, &key);
		if (!c || c->tls_ssl == t->ssl)
			return fd;
	}
	c->tls_ssl = t->ssl;
	bpf_map_update_elem(&tls_fds, &k, &fd, BPF_ANY);
	return fd;
}

static __always_inline int tls_exit(long ret, __u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct tls_call *tp = bpf_map_lookup_elem(&tls_calls, &id);
	struct tls_call t;
	__u64 size = 0;

	if (!tp)
		return 0;
	t = *tp;
	bpf_map_delete_elem(&tls_calls, &id);
	t.fd = tls_socket(id, &t);
	if (t.len_ptr) {
		/* SSL_read_ex/SSL_write_ex return 1 on success, the byte count goes to *len_ptr. */
		if (ret != 1 || bpf_probe_read_user(&size, sizeof(size), (const void *)t.len_ptr))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		size = (__u64)ret;
	}
	if (size == 0)
		return 0;
	if (t.fd < 0) {
		stat_inc(LOUPE_STAT_TLS_NO_FD);
		return 0;
	}
	return tls_plaintext(tgid, t.fd, t.buf, size, direction, t.ts_ns);
}

/* int SSL_write(SSL *ssl, const void *buf, int num) */
SEC("uprobe/loupe_ssl_write")
int loupe_ssl_write(struct pt_regs *ctx)
{
	return tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0);
}

SEC("uretprobe/loupe_ssl_write_ret")
int loupe_ssl_write_ret(struct pt_regs *ctx)
{
	return tls_exit((int)PT_REGS_RC(ctx), LOUPE_DIR_EGRESS);
}

/* int SSL_read(SSL *ssl, void *buf, int num) */
SEC("uprobe/loupe_ssl_read")
int loupe_ssl_read(struct pt_regs *ctx)
{
	return tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0);
}

SEC("uretprobe/loupe_ssl_read_ret")
int loupe_ssl_read_ret(struct pt_regs *ctx)
{
	return tls_exit((int)PT_REGS_RC(ctx), LOUPE_DIR_INGRESS);
}

/* int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written) */
SEC("uprobe/loupe_ssl_write_ex")
int loupe_ssl_write_ex(struct pt_regs *ctx)
{
	return tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx));
}

/* int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes) */
SEC("uprobe/loupe_ssl_read_ex")
int loupe_ssl_read_ex(struct pt_regs *ctx)
{
	return tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx));
}

/* ---- TLS plaintext: Go's crypto/tls.(*Conn).Read and Write ---- */

/*
 * Attached by the loader to Go executables that link crypto/tls (crates/collector/src/socket/go_tls.rs):
 * Write's program at its first instruction (it emits there), Read's entry program at its first instruction
 * and its return program at each of its RET instructions (found by disassembly). No uretprobes: a uretprobe rewrites the return address on the
 * goroutine's stack, and Go moves stacks when they grow, which crashes the program.
 *
 * Go's register ABI (Go 1.17 and later on amd64): arguments in RAX, RBX, RCX, RDI, ..., results in RAX,
 * RBX, ...; R14 always holds the running goroutine's g. A call is keyed by (tgid, g): the goroutine may
 * park inside Read and resume on another thread, so the thread id would not match at the RET.
 *
 * func (c *Conn) Read(b []byte) (int, error): RAX = c, RBX = b.ptr, RCX = b.len; at RET RAX = n.
 * func (c *Conn) Write(b []byte) (int, error): the same registers at entry.
 *
 * The socket is found from the *tls.Conn as Pixie does: tls.Conn's `conn` field is its net.Conn interface
 * (itab, data); data is a *net.TCPConn, whose `conn.fd` is its *netFD; the netFD's `pfd` is a poll.FD with
 * the fd in `Sysfd`. The attach cookie names the executable's entry in go_tls_binaries: those offsets (from
 * its DWARF, else Go 1.9-1.27's layout) and, when the executable is not position independent, the address
 * of the itab of (*net.TCPConn, net.Conn): any other dynamic type (a wrapped connection) is then skipped,
 * not misread. Recent Go releases name no itab in the symbol table: the itab's first function (net.Conn's
 * first method, Close) must then be net.(*TCPConn).Close. No entry: the default offsets, no check.
 */
#define GO_TLS_CONN_NETCONN 0 /* tls.Conn.conn: net.Conn (itab, data) */
#define GO_TCPCONN_FD 0       /* net.TCPConn{conn{fd *netFD}} */
#define GO_NETFD_SYSFD 16     /* netFD.pfd (poll.FD).Sysfd, after fdmu */
#define GO_ITAB_FUN 24        /* itab.fun[0], after inter, _type and hash (padded) */

/* Per Go executable attached (key: its attach cookie), filled by the loader. */
struct go_tls_binary {
	__u64 tcpconn_itab;  /* 0: not checked */
	__u32 conn;          /* offset of tls.Conn.conn */
	__u32 tcpconn_fd;    /* offset of the *netFD in net.TCPConn */
	__u32 sysfd;         /* offset of Sysfd in net.netFD */
	__u32 _pad0;
	__u64 tcpconn_close; /* with no itab address: net.(*TCPConn).Close, the itab's fun[0]; 0: not checked */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct go_tls_binary);
} go_tls_binaries SEC(".maps");

struct go_tls_key {
	__u64 g;
	__u32 tgid;
	__u32 _pad0;
};

struct go_tls_call {
	__u64 conn;  /* the *tls.Conn */
	__u64 buf;   /* b's data pointer */
	__u64 ts_ns; /* when the call began */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct go_tls_key);
	__type(value, struct go_tls_call);
} go_tls_calls SEC(".maps");

static __always_inline int go_tls_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_tls_key k = {};
	struct go_tls_call call = {};

	if (!tgid_wanted(id >> 32))
		return 0;
	k.g = ctx->r14;
	k.tgid = id >> 32;
	call.conn = ctx->ax;
	call.buf = ctx->bx;
	call.ts_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&go_tls_calls, &k, &call, BPF_ANY))
		stat_inc(LOUPE_STAT_ARGS_MAP_FULL);
	return 0;
}

/* The socket fd behind a *tls.Conn, or -1. */
static __always_inline __s32 go_tls_conn_fd(__u64 conn, __u64 cookie)
{
	struct go_tls_binary *bin = bpf_map_lookup_elem(&go_tls_binaries, &cookie);
	struct go_tls_binary b = {0, GO_TLS_CONN_NETCONN, GO_TCPCONN_FD, GO_NETFD_SYSFD, 0, 0};
	__u64 iface[2] = {0, 0};
	__u64 method = 0;
	__u64 netfd = 0;
	__s64 sysfd = -1;

	if (bin)
		b = *bin;
	if (bpf_probe_read_user(iface, sizeof(iface), (const void *)(conn + b.conn)))
		return -1;
	if (b.tcpconn_itab != 0 && iface[0] != b.tcpconn_itab)
		return -1;
	if (b.tcpconn_itab == 0 && b.tcpconn_close != 0 &&
	    (bpf_probe_read_user(&method, sizeof(method), (const void *)(iface[0] + GO_ITAB_FUN)) ||
	     method != b.tcpconn_close))
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (const void *)(iface[1] + b.tcpconn_fd)) ||
	    bpf_probe_read_user(&sysfd, sizeof(sysfd), (const void *)(netfd + b.sysfd)))
		return -1;
	if (sysfd < 0 || sysfd > 0x7fffffff)
		return -1;
	return (__s32)sysfd;
}

static __always_inline int go_tls_ret(struct pt_regs *ctx, __u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct go_tls_key k = {};
	struct go_tls_call *cp;
	struct go_tls_call call;
	long n = (long)ctx->ax;
	__s32 fd;

	k.g = ctx->r14;
	k.tgid = tgid;
	cp = bpf_map_lookup_elem(&go_tls_calls, &k);
	if (!cp)
		return 0;
	call = *cp;
	bpf_map_delete_elem(&go_tls_calls, &k);
	if (n <= 0)
		return 0;
	fd = go_tls_conn_fd(call.conn, bpf_get_attach_cookie(ctx));
	if (fd < 0) {
		stat_inc(LOUPE_STAT_TLS_NO_FD);
		return 0;
	}
	return tls_plaintext(tgid, fd, call.buf, (__u64)n, direction, call.ts_ns);
}

/*
 * Write's plaintext is emitted at its entry, whole (len(b): tls.Conn.Write sends all of b or fails, and a
 * failed write ends the connection anyway). At a RET it could be too late: a goroutine preempted between
 * its last write syscall and the RET may run it after the peer answered, hung up and another goroutine
 * closed the socket, and the connection would then be gone. The entry also times the request right.
 */
SEC("uprobe/loupe_go_tls_write")
int loupe_go_tls_write(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u64 len = ctx->cx;
	__s32 fd;

	if (!tgid_wanted(tgid) || len == 0 || len > 0x7fffffff)
		return 0;
	fd = go_tls_conn_fd(ctx->ax, bpf_get_attach_cookie(ctx));
	if (fd < 0) {
		stat_inc(LOUPE_STAT_TLS_NO_FD);
		return 0;
	}
	return tls_plaintext(tgid, fd, ctx->bx, len, LOUPE_DIR_EGRESS, bpf_ktime_get_ns());
}

SEC("uprobe/loupe_go_tls_read")
int loupe_go_tls_read(struct pt_regs *ctx)
{
	return go_tls_enter(ctx);
}

SEC("uprobe/loupe_go_tls_read_ret")
int loupe_go_tls_read_ret(struct pt_regs *ctx)
{
	return go_tls_ret(ctx, LOUPE_DIR_INGRESS);
}
