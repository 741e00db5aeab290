//! Typed kernel events: what the loader hands to connection tracking.
//!
//! Owns the user-space shape of the six events the BPF side emits (connection open, data chunk,
//! datagram, TLS start, connection close, process exit). Must not know about protocols or the store: it is the seam between
//! `loader` (which decodes raw ring-buffer records into these) and `tracker` (which consumes them).

use std::borrow::Cow;
use std::net::SocketAddr;

/// Which side of a connection the traced process plays.
///
/// Values match Pixie's `trace_role` column: 1 client, 2 server, 4 unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The process called `connect`.
    Client,
    /// The process accepted the connection with `accept`/`accept4`.
    Server,
    /// The connection predates tracing or its origin was not seen.
    Unknown,
}

impl Role {
    /// The `trace_role` column value.
    pub fn as_trace_role(self) -> i64 {
        match self {
            Role::Client => 1,
            Role::Server => 2,
            Role::Unknown => 4,
        }
    }
}

/// Direction of a data chunk, seen from the traced process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Bytes the process wrote to the socket (`write`, `send*`, ...).
    Egress,
    /// Bytes the process read from the socket (`read`, `recv*`, ...).
    Ingress,
}

/// Identifies one socket lifetime: `(tgid, fd, generation)`.
///
/// `generation` distinguishes successive sockets that reuse the same fd number; the BPF side
/// assigns it from the open timestamp (or a per-CPU counter) when it first sees the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    /// Process id (thread-group id).
    pub tgid: u32,
    /// File descriptor in that process.
    pub fd: i32,
    /// Distinguishes fd reuse.
    pub generation: u64,
}

/// One event from the kernel, decoded. A data event borrows its bytes from the ring buffer: they
/// are parsed where the kernel put them, and copied only when reassembly must hold them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent<'a> {
    /// A connection was opened (connect/accept returned) or first seen on data.
    ConnOpen {
        /// `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_ns`).
        ts_ns: u64,
        /// The connection.
        key: ConnKey,
        /// Client (connect) or server (accept); unknown if first seen on data.
        role: Role,
        /// Local address and port, if the socket is AF_INET/AF_INET6.
        local: Option<SocketAddr>,
        /// Remote address and port, if the socket is AF_INET/AF_INET6.
        remote: Option<SocketAddr>,
        /// The owning process's start time (`start_boottime`, ns since boot); 0 if unknown.
        proc_start_ns: u64,
    },
    /// Bytes moved by one syscall, possibly truncated to the chunk limit.
    Data {
        /// `CLOCK_MONOTONIC` nanoseconds at syscall exit.
        ts_ns: u64,
        /// The connection.
        key: ConnKey,
        /// Egress (written) or ingress (read).
        direction: Direction,
        /// Byte offset of `data[0]` within this direction's stream (sum of all earlier `msg_size`s).
        pos: u64,
        /// Bytes the syscall moved in total; `data.len()` may be smaller (truncated capture).
        msg_size: u64,
        /// The captured bytes: borrowed from the ring buffer as the loader hands them over.
        data: Cow<'a, [u8]>,
    },
    /// One whole datagram of a UDP socket (DNS only: the kernel exports no other UDP). `key` is the
    /// socket; its exchanges with each peer are tracked apart.
    Datagram {
        /// `CLOCK_MONOTONIC` nanoseconds at syscall exit.
        ts_ns: u64,
        /// The socket.
        key: ConnKey,
        /// Egress (sent) or ingress (received).
        direction: Direction,
        /// The socket's own address (unspecified if bound to any).
        local: Option<SocketAddr>,
        /// The datagram's peer: the address the syscall named, or the connected peer.
        remote: Option<SocketAddr>,
        /// The datagram's size; `data.len()` is smaller if it was cut.
        msg_size: u64,
        /// The captured bytes.
        data: Cow<'a, [u8]>,
    },
    /// The connection was closed.
    ConnClose {
        /// `CLOCK_MONOTONIC` nanoseconds.
        ts_ns: u64,
        /// The connection.
        key: ConnKey,
        /// Total bytes written over the connection's life, as seen by the tracer.
        bytes_sent: u64,
        /// Total bytes read over the connection's life, as seen by the tracer.
        bytes_recv: u64,
    },
    /// The connection's data from now on is TLS plaintext (from the TLS library's uprobes): its
    /// rows are `encrypted`.
    TlsConn {
        /// `CLOCK_MONOTONIC` nanoseconds.
        ts_ns: u64,
        /// The connection.
        key: ConnKey,
    },
    /// A process ended: its connections ended with it, with no close seen.
    ProcExit {
        /// `CLOCK_MONOTONIC` nanoseconds.
        ts_ns: u64,
        /// The process.
        tgid: u32,
    },
}

impl KernelEvent<'_> {
    /// The event with its bytes copied out of the ring buffer, to keep past the poll.
    pub fn into_owned(self) -> KernelEvent<'static> {
        match self {
            KernelEvent::ConnOpen { ts_ns, key, role, local, remote, proc_start_ns } => {
                KernelEvent::ConnOpen { ts_ns, key, role, local, remote, proc_start_ns }
            }
            KernelEvent::Data { ts_ns, key, direction, pos, msg_size, data } => {
                KernelEvent::Data { ts_ns, key, direction, pos, msg_size, data: Cow::Owned(data.into_owned()) }
            }
            KernelEvent::Datagram { ts_ns, key, direction, local, remote, msg_size, data } => KernelEvent::Datagram {
                ts_ns,
                key,
                direction,
                local,
                remote,
                msg_size,
                data: Cow::Owned(data.into_owned()),
            },
            KernelEvent::ConnClose { ts_ns, key, bytes_sent, bytes_recv } => {
                KernelEvent::ConnClose { ts_ns, key, bytes_sent, bytes_recv }
            }
            KernelEvent::ProcExit { ts_ns, tgid } => KernelEvent::ProcExit { ts_ns, tgid },
            KernelEvent::TlsConn { ts_ns, key } => KernelEvent::TlsConn { ts_ns, key },
        }
    }
}
