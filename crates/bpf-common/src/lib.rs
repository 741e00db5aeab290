//! `#[repr(C)]` mirrors of the records the BPF socket tracer writes to its ring buffer.
//!
//! Owns the user-space view of `crates/bpf/c/socket_trace.h`: event structs, tags, directions,
//! roles, protocols, stats indices and size limits. The C header is the source of truth and both
//! sides assert the same sizes and offsets. Must stay `no_std`, dependency-free and free of
//! decoding logic (that is the collector's loader).
#![no_std]

/// Largest payload one data record carries (`LOUPE_CHUNK_SIZE`).
pub const CHUNK_SIZE: usize = 8192;
/// Most data records emitted for one syscall (`LOUPE_MAX_CHUNKS`).
pub const MAX_CHUNKS: usize = 4;
/// Bytes one syscall may copy while the ring buffer is more than 3/4 full
/// (`LOUPE_PRESSURE_COPY_BYTES`); past 1/2 full, one record of [`CHUNK_SIZE`].
pub const PRESSURE_COPY_BYTES: usize = 2048;
/// Most iovecs walked for the vector I/O syscalls (`LOUPE_MAX_IOV`).
pub const MAX_IOV: usize = 64;
/// Most messages of one `sendmmsg`/`recvmmsg` whose sizes are read (`LOUPE_MAX_MMSG`): the
/// first message is copied, the others are a gap of their summed size.
pub const MAX_MMSG: usize = 64;
/// Most entries of the `excluded_ports` map (`LOUPE_MAX_EXCLUDED_PORTS`).
pub const MAX_EXCLUDED_PORTS: usize = 16;
/// Most entries of the `port_protocols` map (`LOUPE_MAX_PORT_PROTOCOLS`).
pub const MAX_PORT_PROTOCOLS: usize = 64;

/// `EventHeader::kind` of a [`ConnOpenEvent`].
pub const EVENT_CONN_OPEN: u32 = 1;
/// `EventHeader::kind` of a [`DataHeader`] record.
pub const EVENT_DATA: u32 = 2;
/// `EventHeader::kind` of a [`ConnCloseEvent`].
pub const EVENT_CONN_CLOSE: u32 = 3;
/// `EventHeader::kind` of a bare [`EventHeader`]: process `tgid` ended, and its connections with it.
pub const EVENT_PROC_EXIT: u32 = 4;
/// One whole datagram of a UDP socket, with both ends' addresses (`LOUPE_EVENT_DATAGRAM`).
pub const EVENT_DATAGRAM: u32 = 5;
/// Header only: the connection's data records from now on are TLS plaintext (`LOUPE_EVENT_TLS_CONN`).
pub const EVENT_TLS_CONN: u32 = 6;
/// Most datagrams of one `sendmmsg`/`recvmmsg` emitted (`LOUPE_MAX_DGRAMS`).
pub const MAX_DGRAMS: usize = 4;
/// Most bytes of one datagram copied (`LOUPE_DGRAM_COPY`).
pub const DGRAM_COPY: usize = 4096;

/// The process called `connect`.
pub const ROLE_CLIENT: u8 = 1;
/// The process accepted the connection.
pub const ROLE_SERVER: u8 = 2;
/// First seen on data.
pub const ROLE_UNKNOWN: u8 = 4;

/// Bytes written by the traced process.
pub const DIR_EGRESS: u8 = 1;
/// Bytes read by the traced process.
pub const DIR_INGRESS: u8 = 2;

/// No data seen yet on the connection.
pub const PROTO_UNCLASSIFIED: u8 = 0;
/// HTTP/1.x: its payload is exported.
pub const PROTO_HTTP: u8 = 1;
/// HTTP/2 in cleartext (the client preface, or a server's first SETTINGS frame): its payload is exported.
pub const PROTO_HTTP2: u8 = 2;
/// MySQL/MariaDB (the server greeting first): its payload is exported.
pub const PROTO_MYSQL: u8 = 3;
/// Cassandra's native protocol (a v3 to v5 frame header first): its payload is exported.
pub const PROTO_CQL: u8 = 4;
/// PostgreSQL (a startup-phase packet or a simple query first): its payload is exported.
pub const PROTO_PGSQL: u8 = 5;
/// DNS over TCP (a length, then a query header with one question): its payload is exported.
pub const PROTO_DNS: u8 = 6;
/// Redis (a RESP command array or a common inline command first): its payload is exported.
pub const PROTO_REDIS: u8 = 7;
/// NATS (the server's `INFO {` first): its payload is exported.
pub const PROTO_NATS: u8 = 8;
/// MongoDB (a request header with OP_MSG, OP_QUERY or OP_COMPRESSED first): its payload is exported.
pub const PROTO_MONGO: u8 = 9;
/// Kafka (a request header with a known API key and version first): its payload is exported.
pub const PROTO_KAFKA: u8 = 10;
/// AMQP 0-9-1 (the `AMQP` protocol header or a Connection.Start frame first): its payload is exported.
pub const PROTO_AMQP: u8 = 12;
/// MQTT (a CONNECT packet, or its first byte alone, first); not in Pixie's list, so the next free number.
pub const PROTO_MQTT: u8 = 14;
/// Seen, not a known protocol: bytes are counted but not exported.
pub const PROTO_OTHER: u8 = 255;

/// `DataHeader::flags`: the syscall's last record; it accounts for every byte from
/// `chunk_offset` to `msg_size`, captured or not. `sendfile` and `splice` emit one such record
/// with `len` 0: `msg_size` bytes moved that were never in user memory.
pub const DATA_FLAG_LAST: u8 = 1;

/// Linux `AF_INET`.
pub const AF_INET: u16 = 2;
/// Linux `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// Stats index: records written to the ring buffer.
pub const STAT_EVENTS: usize = 0;
/// Stats index: records dropped because the ring buffer was full.
pub const STAT_RINGBUF_FAILURES: usize = 1;
/// Stats index: syscalls that moved more bytes than were captured.
pub const STAT_TRUNCATED: usize = 2;
/// Stats index: `bpf_probe_read_user` failures on payload or iovecs.
pub const STAT_READ_FAILURES: usize = 3;
/// Stats index: failed `conn_map` inserts.
pub const STAT_CONN_MAP_FULL: usize = 4;
/// Stats index: failed `args_map` inserts.
pub const STAT_ARGS_MAP_FULL: usize = 5;
/// Stats index: forced consumer wakeups.
pub const STAT_WAKEUPS: usize = 6;
/// Stats index: `sendfile`/`splice` syscalls on a tracked socket, counted but not copied.
pub const STAT_NOT_COPIED: usize = 7;
/// Stats index: stream bytes the dropped data records accounted for (their payload, and for a
/// syscall's last record the uncaptured rest of its bytes).
pub const STAT_RINGBUF_FAILED_BYTES: usize = 8;
/// Stats index: connections left out because a port is in `excluded_ports` (the agent's own).
pub const STAT_EXCLUDED_CONNS: usize = 9;
/// Index: TLS reads/writes whose socket could not be found.
pub const STAT_TLS_NO_FD: usize = 10;
/// Number of counters in the per-CPU `stats` entry.
pub const STAT_LEN: usize = 11;

/// Name of the ring buffer map.
pub const MAP_EVENTS: &str = "events";
/// Name of the per-CPU counters map (one entry of `[u64; STAT_LEN]`).
pub const MAP_STATS: &str = "stats";
/// Name of the hash map of excluded ports (`u16` → `u8`).
pub const MAP_EXCLUDED_PORTS: &str = "excluded_ports";
/// Name of the hash map of Go executables attached (`u64` attach cookie → `struct go_tls_binary`).
pub const MAP_GO_TLS_BINARIES: &str = "go_tls_binaries";
/// Name of the hash map of per-port protocol overrides (`u16` → `PROTO_*`, `PROTO_OTHER` to disable).
pub const MAP_PORT_PROTOCOLS: &str = "port_protocols";
/// Global: tgid never traced (usually the agent itself).
pub const GLOBAL_EXCLUDE_TGID: &str = "loupe_exclude_tgid";
/// Global: if non-zero, the only tgid traced.
pub const GLOBAL_ONLY_TGID: &str = "loupe_only_tgid";
/// Global: force a consumer wakeup every N records per CPU.
pub const GLOBAL_WAKE_EVERY: &str = "loupe_wake_every";
/// Global: force a consumer wakeup once this many bytes wait in the ring (0: never).
pub const GLOBAL_WAKE_BYTES: &str = "loupe_wake_bytes";
/// Global: most bytes one syscall copies on an HTTP connection, 0 for no HTTP-specific limit
/// (`loupe_http_copy_bytes`).
pub const GLOBAL_HTTP_COPY_BYTES: &str = "loupe_http_copy_bytes";
/// Global: non-zero makes the data syscalls' exit programs read their arguments from the task's saved
/// registers (`bpf_task_pt_regs`), so their enter programs need not run (`loupe_args_at_exit`).
pub const GLOBAL_ARGS_AT_EXIT: &str = "loupe_args_at_exit";

/// Common prefix of every record (`struct loupe_event_header`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    /// One of `EVENT_*`.
    pub kind: u32,
    /// Process id.
    pub tgid: u32,
    /// `bpf_ktime_get_ns()`.
    pub ts_ns: u64,
    /// Distinguishes fd reuse: the time the connection was first seen.
    pub generation: u64,
    /// File descriptor.
    pub fd: i32,
    /// Padding.
    pub _pad0: u32,
}

/// A connection was opened or first seen (`struct loupe_conn_open`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnOpenEvent {
    /// Common header.
    pub hdr: EventHeader,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Local port, host byte order.
    pub local_port: u16,
    /// Remote port, host byte order.
    pub remote_port: u16,
    /// One of `ROLE_*`.
    pub role: u8,
    /// Padding.
    pub _pad0: u8,
    /// Local address, network order; IPv4 uses the first 4 bytes.
    pub local_addr: [u8; 16],
    /// Remote address, network order; IPv4 uses the first 4 bytes.
    pub remote_addr: [u8; 16],
    /// The process's `start_boottime` in ns (the UPID's start time, before conversion to ticks).
    pub proc_start_ns: u64,
}

/// Header of a data record (`struct loupe_data_header`); `len` payload bytes follow it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// Common header.
    pub hdr: EventHeader,
    /// Stream offset (this direction) of the syscall's first byte.
    pub pos: u64,
    /// Bytes the syscall moved (its return value).
    pub msg_size: u64,
    /// Offset of this record's first byte within the syscall's bytes.
    pub chunk_offset: u64,
    /// Payload bytes that follow the header.
    pub len: u32,
    /// `DIR_EGRESS` or `DIR_INGRESS`.
    pub direction: u8,
    /// One of `PROTO_*`.
    pub protocol: u8,
    /// `DATA_FLAG_*` bits.
    pub flags: u8,
    /// Padding.
    pub _pad0: u8,
}

/// A tracked connection was closed (`struct loupe_conn_close`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnCloseEvent {
    /// Common header.
    pub hdr: EventHeader,
    /// Bytes written over the connection's life.
    pub bytes_sent: u64,
    /// Bytes read over the connection's life.
    pub bytes_recv: u64,
    /// One of `ROLE_*`.
    pub role: u8,
    /// One of `PROTO_*`.
    pub protocol: u8,
    /// Padding.
    pub _pad0: [u8; 6],
}

/// Header of a datagram record (`struct loupe_dgram_header`); `h.len` payload bytes follow it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DgramHeader {
    /// The data header: `msg_size` is the datagram's size, `flags` has `DATA_FLAG_LAST`.
    pub h: DataHeader,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Local port, host byte order.
    pub local_port: u16,
    /// The peer's port, host byte order.
    pub remote_port: u16,
    /// Padding.
    pub _pad0: u16,
    /// Local address, network order; IPv4 uses the first 4 bytes.
    pub local_addr: [u8; 16],
    /// The peer's address, network order; IPv4 uses the first 4 bytes.
    pub remote_addr: [u8; 16],
}

/// `LOUPE_SIZE_EVENT_HEADER` in the C header.
pub const SIZE_EVENT_HEADER: usize = 32;
/// `LOUPE_SIZE_CONN_OPEN` in the C header.
pub const SIZE_CONN_OPEN: usize = 80;
/// `LOUPE_SIZE_DATA_HEADER` in the C header.
pub const SIZE_DATA_HEADER: usize = 64;
/// `LOUPE_SIZE_CONN_CLOSE` in the C header.
pub const SIZE_CONN_CLOSE: usize = 56;
/// `LOUPE_SIZE_DGRAM_HEADER` in the C header.
pub const SIZE_DGRAM_HEADER: usize = 104;

// The same numbers are `_Static_assert`ed in socket_trace.h; a mismatch fails the build here.
const _: () = assert!(core::mem::size_of::<EventHeader>() == SIZE_EVENT_HEADER);
const _: () = assert!(core::mem::size_of::<ConnOpenEvent>() == SIZE_CONN_OPEN);
const _: () = assert!(core::mem::size_of::<DataHeader>() == SIZE_DATA_HEADER);
const _: () = assert!(core::mem::size_of::<ConnCloseEvent>() == SIZE_CONN_CLOSE);
const _: () = assert!(core::mem::size_of::<DgramHeader>() == SIZE_DGRAM_HEADER);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    /// Pulls `#define NAME value` out of the C header, so the Rust constants cannot drift.
    fn c_define(name: &str) -> u64 {
        let header = include_str!("../../bpf/c/socket_trace.h");
        let needle = ["#define ", name, " "];
        for line in header.lines() {
            let Some(rest) = line
                .strip_prefix(needle[0])
                .and_then(|r| r.strip_prefix(needle[1]))
                .and_then(|r| r.strip_prefix(needle[2]))
            else {
                continue;
            };
            let value = rest.split_whitespace().next().expect("define without value");
            return value.parse().expect("define is not a number");
        }
        panic!("{name} not defined in socket_trace.h");
    }

    #[test]
    fn sizes_and_offsets_match_the_c_header() {
        assert_eq!(size_of::<EventHeader>() as u64, c_define("LOUPE_SIZE_EVENT_HEADER"));
        assert_eq!(size_of::<ConnOpenEvent>() as u64, c_define("LOUPE_SIZE_CONN_OPEN"));
        assert_eq!(size_of::<DataHeader>() as u64, c_define("LOUPE_SIZE_DATA_HEADER"));
        assert_eq!(size_of::<ConnCloseEvent>() as u64, c_define("LOUPE_SIZE_CONN_CLOSE"));
        assert_eq!(size_of::<DgramHeader>() as u64, c_define("LOUPE_SIZE_DGRAM_HEADER"));
        assert_eq!(offset_of!(DataHeader, len) as u64, c_define("LOUPE_OFFSET_DATA_LEN"));
        assert_eq!(offset_of!(ConnOpenEvent, local_addr) as u64, c_define("LOUPE_OFFSET_OPEN_LOCAL_ADDR"));
        assert_eq!(offset_of!(ConnOpenEvent, remote_addr), 56);
        assert_eq!(offset_of!(ConnCloseEvent, bytes_sent), 32);
    }

    #[test]
    fn constants_match_the_c_header() {
        let pairs: [(&str, u64); 48] = [
            ("LOUPE_EVENT_TLS_CONN", EVENT_TLS_CONN.into()),
            ("LOUPE_STAT_TLS_NO_FD", STAT_TLS_NO_FD as u64),
            ("LOUPE_EVENT_DATAGRAM", EVENT_DATAGRAM.into()),
            ("LOUPE_MAX_DGRAMS", MAX_DGRAMS as u64),
            ("LOUPE_DGRAM_COPY", DGRAM_COPY as u64),
            ("LOUPE_CHUNK_SIZE", CHUNK_SIZE as u64),
            ("LOUPE_MAX_CHUNKS", MAX_CHUNKS as u64),
            ("LOUPE_MAX_IOV", MAX_IOV as u64),
            ("LOUPE_PRESSURE_COPY_BYTES", PRESSURE_COPY_BYTES as u64),
            ("LOUPE_EVENT_CONN_OPEN", EVENT_CONN_OPEN.into()),
            ("LOUPE_EVENT_DATA", EVENT_DATA.into()),
            ("LOUPE_EVENT_CONN_CLOSE", EVENT_CONN_CLOSE.into()),
            ("LOUPE_EVENT_PROC_EXIT", EVENT_PROC_EXIT.into()),
            ("LOUPE_ROLE_CLIENT", ROLE_CLIENT.into()),
            ("LOUPE_ROLE_SERVER", ROLE_SERVER.into()),
            ("LOUPE_ROLE_UNKNOWN", ROLE_UNKNOWN.into()),
            ("LOUPE_DIR_EGRESS", DIR_EGRESS.into()),
            ("LOUPE_DIR_INGRESS", DIR_INGRESS.into()),
            ("LOUPE_PROTO_UNCLASSIFIED", PROTO_UNCLASSIFIED.into()),
            ("LOUPE_PROTO_HTTP", PROTO_HTTP.into()),
            ("LOUPE_PROTO_HTTP2", PROTO_HTTP2.into()),
            ("LOUPE_PROTO_REDIS", PROTO_REDIS.into()),
            ("LOUPE_PROTO_NATS", PROTO_NATS.into()),
            ("LOUPE_PROTO_AMQP", PROTO_AMQP.into()),
            ("LOUPE_PROTO_MQTT", PROTO_MQTT.into()),
            ("LOUPE_PROTO_CQL", PROTO_CQL.into()),
            ("LOUPE_PROTO_MONGO", PROTO_MONGO.into()),
            ("LOUPE_PROTO_KAFKA", PROTO_KAFKA.into()),
            ("LOUPE_PROTO_OTHER", PROTO_OTHER.into()),
            ("LOUPE_DATA_FLAG_LAST", DATA_FLAG_LAST.into()),
            ("LOUPE_AF_INET", AF_INET.into()),
            ("LOUPE_AF_INET6", AF_INET6.into()),
            ("LOUPE_STAT_EVENTS", STAT_EVENTS as u64),
            ("LOUPE_STAT_RINGBUF_FAILURES", STAT_RINGBUF_FAILURES as u64),
            ("LOUPE_STAT_TRUNCATED", STAT_TRUNCATED as u64),
            ("LOUPE_STAT_READ_FAILURES", STAT_READ_FAILURES as u64),
            ("LOUPE_STAT_CONN_MAP_FULL", STAT_CONN_MAP_FULL as u64),
            ("LOUPE_STAT_ARGS_MAP_FULL", STAT_ARGS_MAP_FULL as u64),
            ("LOUPE_STAT_WAKEUPS", STAT_WAKEUPS as u64),
            ("LOUPE_STAT_NOT_COPIED", STAT_NOT_COPIED as u64),
            ("LOUPE_STAT_RINGBUF_FAILED_BYTES", STAT_RINGBUF_FAILED_BYTES as u64),
            ("LOUPE_STAT_EXCLUDED_CONNS", STAT_EXCLUDED_CONNS as u64),
            ("LOUPE_MAX_EXCLUDED_PORTS", MAX_EXCLUDED_PORTS as u64),
            ("LOUPE_MAX_PORT_PROTOCOLS", MAX_PORT_PROTOCOLS as u64),
            ("LOUPE_MAX_MMSG", MAX_MMSG as u64),
            ("LOUPE_STAT_LEN", STAT_LEN as u64),
            ("LOUPE_SIZE_DATA_HEADER", SIZE_DATA_HEADER as u64),
            ("LOUPE_SIZE_CONN_OPEN", SIZE_CONN_OPEN as u64),
        ];
        for (name, value) in pairs {
            assert_eq!(c_define(name), value, "{name} differs between socket_trace.h and bpf-common");
        }
    }
}
