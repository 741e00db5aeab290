/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Loupe socket tracer: the records the BPF side writes to the `events` ring buffer.
 *
 * Owns the wire layout shared with user space. Every struct here has a `#[repr(C)]` mirror in
 * crates/bpf-common/src/lib.rs; the sizes and offsets asserted at the bottom of this file are
 * asserted again there. Change both sides together, then run `bash crates/bpf/build.sh`.
 *
 * This header must not include kernel headers: it only needs the fixed-width __u8..__u64 types,
 * which the includer provides (vmlinux.h on the BPF side).
 */
#ifndef LOUPE_SOCKET_TRACE_H
#define LOUPE_SOCKET_TRACE_H

/* Largest payload one data record carries. */
#define LOUPE_CHUNK_SIZE 8192
/* Most data records emitted for one syscall; bytes beyond CHUNK_SIZE * MAX_CHUNKS are counted, not copied.
 * Under ring pressure fewer are: one record past 1/2 full, PRESSURE_COPY_BYTES past 3/4. */
#define LOUPE_MAX_CHUNKS 4
/* Bytes one syscall may copy while the ring buffer is more than 3/4 full. */
#define LOUPE_PRESSURE_COPY_BYTES 2048
/* Most iovecs walked for readv/writev/sendmsg/recvmsg (a power of two); their bytes are packed into records. */
#define LOUPE_MAX_IOV 64
/* Most messages of one sendmmsg/recvmmsg whose sizes are read: the first is copied, the rest are a gap. */
#define LOUPE_MAX_MMSG 64
/* Most datagrams of one sendmmsg/recvmmsg emitted on a datagram (DNS) socket. */
#define LOUPE_MAX_DGRAMS 4
/* Most bytes of one datagram copied (DNS over UDP: 512 classic, ~1232 with EDNS, 4096 at most in practice). */
#define LOUPE_DGRAM_COPY 4096
/* Most ports in the `excluded_ports` map (the agent's own listeners). */
#define LOUPE_MAX_EXCLUDED_PORTS 16
/* Most ports in the `port_protocols` map (per-port protocol overrides). */
#define LOUPE_MAX_PORT_PROTOCOLS 64

/* loupe_event_header.kind */
#define LOUPE_EVENT_CONN_OPEN 1
#define LOUPE_EVENT_DATA 2
#define LOUPE_EVENT_CONN_CLOSE 3
#define LOUPE_EVENT_PROC_EXIT 4 /* a traced process ended: its connections end with it (no close syscalls) */
#define LOUPE_EVENT_DATAGRAM 5  /* one whole datagram of a UDP socket, with both ends' addresses */
#define LOUPE_EVENT_TLS_CONN 6  /* header only: the connection's data records from now on are TLS plaintext */

/* Roles, matching Pixie's trace_role column. */
#define LOUPE_ROLE_CLIENT 1
#define LOUPE_ROLE_SERVER 2
#define LOUPE_ROLE_UNKNOWN 4

/* Data directions, seen from the traced process. */
#define LOUPE_DIR_EGRESS 1
#define LOUPE_DIR_INGRESS 2

/* Protocols. 0 means "no data seen yet"; OTHER means "seen, not exported". */
#define LOUPE_PROTO_UNCLASSIFIED 0
#define LOUPE_PROTO_HTTP 1
#define LOUPE_PROTO_HTTP2 2 /* Pixie's number for HTTP/2 (cleartext here) */
#define LOUPE_PROTO_MYSQL 3 /* Pixie's number for MySQL */
#define LOUPE_PROTO_CQL 4   /* Pixie's number for Cassandra's native protocol */
#define LOUPE_PROTO_PGSQL 5 /* Pixie's number for PostgreSQL */
#define LOUPE_PROTO_DNS 6   /* Pixie's number for DNS (over TCP, and over UDP as LOUPE_EVENT_DATAGRAM) */
#define LOUPE_PROTO_REDIS 7 /* Pixie's number for Redis */
#define LOUPE_PROTO_NATS 8  /* Pixie's number for NATS */
#define LOUPE_PROTO_MONGO 9 /* Pixie's number for MongoDB */
#define LOUPE_PROTO_KAFKA 10 /* Pixie's number for Kafka */
#define LOUPE_PROTO_AMQP 12 /* Pixie's number for AMQP */
#define LOUPE_PROTO_MQTT 14 /* not in Pixie's list (it has no MQTT table): the next free number */
#define LOUPE_PROTO_TLS 254 /* kernel-internal: a TLS record layer (its plaintext comes from uprobes) */
#define LOUPE_PROTO_OTHER 255

/* loupe_data_header.flags: this is the syscall's last record; it accounts for every byte from
 * chunk_offset to msg_size, captured or not. sendfile and splice move bytes the tracer cannot
 * copy: they emit one LAST record with len 0, a gap of msg_size bytes in the stream. */
#define LOUPE_DATA_FLAG_LAST 1

/* Address families as stored in loupe_conn_open.family (Linux values). */
#define LOUPE_AF_INET 2
#define LOUPE_AF_INET6 10

/* Indices into the per-CPU `stats` counters. */
#define LOUPE_STAT_EVENTS 0          /* records written to the ring buffer */
#define LOUPE_STAT_RINGBUF_FAILURES 1 /* records dropped: ring buffer full */
#define LOUPE_STAT_TRUNCATED 2       /* syscalls that moved more bytes than were captured */
#define LOUPE_STAT_READ_FAILURES 3   /* bpf_probe_read_user failures on payload or iovecs */
#define LOUPE_STAT_CONN_MAP_FULL 4   /* conn_map inserts that failed */
#define LOUPE_STAT_ARGS_MAP_FULL 5   /* args_map inserts that failed */
#define LOUPE_STAT_WAKEUPS 6         /* forced consumer wakeups */
#define LOUPE_STAT_NOT_COPIED 7      /* sendfile/splice syscalls on a tracked socket: counted, not copied */
#define LOUPE_STAT_RINGBUF_FAILED_BYTES 8 /* stream bytes the dropped data records accounted for */
#define LOUPE_STAT_EXCLUDED_CONNS 9  /* connections left out: the agent's own ports (px, the UI) */
#define LOUPE_STAT_TLS_NO_FD 10      /* TLS reads/writes whose socket was not found (no syscall seen for the SSL*) */
#define LOUPE_STAT_LEN 11

/* Common prefix of every record. 32 bytes. */
struct loupe_event_header {
	__u32 kind;       /* LOUPE_EVENT_* */
	__u32 tgid;       /* process id */
	__u64 ts_ns;      /* bpf_ktime_get_ns() */
	__u64 generation; /* distinguishes fd reuse: bpf_ktime_get_ns() when the connection was first seen */
	__s32 fd;
	__u32 _pad0;
};

/* LOUPE_EVENT_CONN_OPEN. 80 bytes. */
struct loupe_conn_open {
	struct loupe_event_header hdr;
	__u16 family;       /* LOUPE_AF_INET or LOUPE_AF_INET6 */
	__u16 local_port;   /* host byte order */
	__u16 remote_port;  /* host byte order */
	__u8 role;          /* LOUPE_ROLE_* */
	__u8 _pad0;
	__u8 local_addr[16];  /* network order; IPv4 uses the first 4 bytes */
	__u8 remote_addr[16];
	__u64 proc_start_ns;  /* the process's start_boottime: with /proc/<pid>/stat's starttime it makes the UPID */
};

/* LOUPE_EVENT_DATA header, followed by `len` payload bytes. 64 bytes. */
struct loupe_data_header {
	struct loupe_event_header hdr;
	__u64 pos;          /* stream offset (this direction) of the syscall's first byte */
	__u64 msg_size;     /* bytes the syscall moved (its return value) */
	__u64 chunk_offset; /* offset of this record's first byte within the syscall's bytes */
	__u32 len;          /* payload bytes that follow */
	__u8 direction;     /* LOUPE_DIR_* */
	__u8 protocol;      /* LOUPE_PROTO_* */
	__u8 flags;         /* LOUPE_DATA_FLAG_* */
	__u8 _pad0;
};

struct loupe_data_event {
	struct loupe_data_header h;
	__u8 data[LOUPE_CHUNK_SIZE];
};

/*
 * LOUPE_EVENT_DATAGRAM header, followed by `h.len` payload bytes (at most LOUPE_DGRAM_COPY). 104 bytes.
 * `h.msg_size` is the datagram's size, `h.pos` and `h.chunk_offset` are 0, `h.flags` is LAST. UDP
 * sockets get no open record: each datagram names its peer (from the syscall's address, or the
 * connected peer), so user space keys exchanges by (socket, peer).
 */
struct loupe_dgram_header {
	struct loupe_data_header h;
	__u16 family;        /* LOUPE_AF_INET or LOUPE_AF_INET6 */
	__u16 local_port;    /* host byte order */
	__u16 remote_port;   /* host byte order */
	__u16 _pad0;
	__u8 local_addr[16]; /* network order; IPv4 uses the first 4 bytes */
	__u8 remote_addr[16];
};

struct loupe_dgram_event {
	struct loupe_dgram_header d;
	__u8 data[LOUPE_DGRAM_COPY];
};

/* LOUPE_EVENT_CONN_CLOSE. 56 bytes. */
struct loupe_conn_close {
	struct loupe_event_header hdr;
	__u64 bytes_sent;
	__u64 bytes_recv;
	__u8 role;
	__u8 protocol;
	__u8 _pad0[6];
};

/* Value of the single per-CPU `stats` entry. */
struct loupe_stats {
	__u64 counters[LOUPE_STAT_LEN];
};

#define LOUPE_SIZE_EVENT_HEADER 32
#define LOUPE_SIZE_CONN_OPEN 80
#define LOUPE_SIZE_DATA_HEADER 64
#define LOUPE_SIZE_CONN_CLOSE 56
#define LOUPE_SIZE_DGRAM_HEADER 104
#define LOUPE_OFFSET_DATA_LEN 56
#define LOUPE_OFFSET_OPEN_LOCAL_ADDR 40

_Static_assert(sizeof(struct loupe_event_header) == LOUPE_SIZE_EVENT_HEADER, "event header size");
_Static_assert(sizeof(struct loupe_conn_open) == LOUPE_SIZE_CONN_OPEN, "conn open size");
_Static_assert(sizeof(struct loupe_data_header) == LOUPE_SIZE_DATA_HEADER, "data header size");
_Static_assert(sizeof(struct loupe_conn_close) == LOUPE_SIZE_CONN_CLOSE, "conn close size");
_Static_assert(sizeof(struct loupe_dgram_header) == LOUPE_SIZE_DGRAM_HEADER, "datagram header size");
_Static_assert(__builtin_offsetof(struct loupe_data_header, len) == LOUPE_OFFSET_DATA_LEN, "data len offset");
_Static_assert(__builtin_offsetof(struct loupe_conn_open, local_addr) == LOUPE_OFFSET_OPEN_LOCAL_ADDR,
	       "open local_addr offset");
_Static_assert(sizeof(struct loupe_data_event) == LOUPE_SIZE_DATA_HEADER + LOUPE_CHUNK_SIZE, "data event size");

#endif /* LOUPE_SOCKET_TRACE_H */
