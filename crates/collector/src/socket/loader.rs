//! Loads the socket tracer into the kernel and decodes its ring-buffer records.
//!
//! Owns the user-space half of `loupe_bpf::SOCKET_TRACE_OBJ`: load-time configuration (globals,
//! ring size), attaching each syscall tracepoint (a probe that fails is reported, the rest keep
//! working), draining the `events` ring buffer into [`KernelEvent`]s and reading the per-CPU
//! counters. Must not track connections or parse protocols (that is `tracker` and
//! `loupe_protocols`), and must not mount or check the environment (that is `preflight`).
//!
//! # Data events and gaps
//!
//! The kernel copies at most `MAX_CHUNKS` records of `CHUNK_SIZE` bytes per syscall. Each record
//! becomes one [`KernelEvent::Data`] with `pos` = the stream offset of its first byte and
//! `msg_size` = the bytes of the stream it accounts for: `data.len()` for every record but the
//! syscall's last, which accounts for everything up to the end of the syscall's bytes. So for
//! one direction of one connection, consecutive `Data` events satisfy
//! `next.pos == prev.pos + prev.msg_size` unless records were lost, and the uncaptured bytes of
//! a syscall are `msg_size - data.len()` of its last event, at offset `pos + data.len()`.
//! `sendfile` and `splice` move socket bytes that were never in user memory: each such syscall
//! is one `Data` event with empty `data` and `msg_size` = the bytes moved, a gap of that length.
//! `sendmmsg`/`recvmmsg` copy their first message; the others are a gap of their summed size.
//!
//! # Datagrams
//!
//! UDP sockets whose first datagram is a DNS query (or that use port 53) give one
//! [`KernelEvent::Datagram`] per datagram (up to `MAX_DGRAMS` of one `sendmmsg`/`recvmmsg`), with
//! both ends' addresses and at most `DGRAM_COPY` bytes; no open event, and a close only for those.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use aya::maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuArray, RingBuf};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
use aya::programs::{ProgramError, TracePoint, UProbe};
use aya::{Ebpf, EbpfError, EbpfLoader};
use loupe_bpf_common as wire;
use tracing::{debug, info, warn};

use super::go_tls::GoTlsTarget;
use super::port_protocols::PortProtocol;
use crate::events::{ConnKey, Direction, KernelEvent, Role};

/// Every program in the object and the tracepoint (category, name) it attaches to.
///
/// `close` has no exit probe on purpose: Linux releases the fd even when `close` fails.
const PROBES: &[(&str, &str, &str)] = &[
    ("loupe_enter_connect", "syscalls", "sys_enter_connect"),
    ("loupe_exit_connect", "syscalls", "sys_exit_connect"),
    ("loupe_enter_accept", "syscalls", "sys_enter_accept"),
    ("loupe_exit_accept", "syscalls", "sys_exit_accept"),
    ("loupe_enter_accept4", "syscalls", "sys_enter_accept4"),
    ("loupe_exit_accept4", "syscalls", "sys_exit_accept4"),
    ("loupe_enter_close", "syscalls", "sys_enter_close"),
    ("loupe_enter_dup2", "syscalls", "sys_enter_dup2"),
    ("loupe_enter_dup3", "syscalls", "sys_enter_dup3"),
    ("loupe_sched_process_exit", "sched", "sched_process_exit"),
    ("loupe_enter_listen", "syscalls", "sys_enter_listen"),
    ("loupe_enter_read", "syscalls", "sys_enter_read"),
    ("loupe_exit_read", "syscalls", "sys_exit_read"),
    ("loupe_enter_write", "syscalls", "sys_enter_write"),
    ("loupe_exit_write", "syscalls", "sys_exit_write"),
    ("loupe_enter_readv", "syscalls", "sys_enter_readv"),
    ("loupe_exit_readv", "syscalls", "sys_exit_readv"),
    ("loupe_enter_writev", "syscalls", "sys_enter_writev"),
    ("loupe_exit_writev", "syscalls", "sys_exit_writev"),
    ("loupe_enter_sendto", "syscalls", "sys_enter_sendto"),
    ("loupe_exit_sendto", "syscalls", "sys_exit_sendto"),
    ("loupe_enter_recvfrom", "syscalls", "sys_enter_recvfrom"),
    ("loupe_exit_recvfrom", "syscalls", "sys_exit_recvfrom"),
    ("loupe_enter_sendmsg", "syscalls", "sys_enter_sendmsg"),
    ("loupe_exit_sendmsg", "syscalls", "sys_exit_sendmsg"),
    ("loupe_enter_recvmsg", "syscalls", "sys_enter_recvmsg"),
    ("loupe_exit_recvmsg", "syscalls", "sys_exit_recvmsg"),
    ("loupe_enter_sendmmsg", "syscalls", "sys_enter_sendmmsg"),
    ("loupe_exit_sendmmsg", "syscalls", "sys_exit_sendmmsg"),
    ("loupe_enter_recvmmsg", "syscalls", "sys_enter_recvmmsg"),
    ("loupe_exit_recvmmsg", "syscalls", "sys_exit_recvmmsg"),
    ("loupe_enter_sendfile64", "syscalls", "sys_enter_sendfile64"),
    ("loupe_exit_sendfile64", "syscalls", "sys_exit_sendfile64"),
    ("loupe_enter_splice", "syscalls", "sys_enter_splice"),
    ("loupe_exit_splice", "syscalls", "sys_exit_splice"),
];

/// The data syscalls' enter probes: they only stash arguments for the exit, which reads them from the
/// saved registers instead where it can ([`TracerConfig::args_at_exit`]). sendfile and splice keep theirs.
const DATA_ENTERS: &[&str] = &[
    "loupe_enter_read",
    "loupe_enter_write",
    "loupe_enter_readv",
    "loupe_enter_writev",
    "loupe_enter_sendto",
    "loupe_enter_recvfrom",
    "loupe_enter_sendmsg",
    "loupe_enter_recvmsg",
    "loupe_enter_sendmmsg",
    "loupe_enter_recvmmsg",
];

/// The exits of [`DATA_ENTERS`]' syscalls: one that does not load in exit mode sends the loader back to
/// entry mode.
const DATA_EXITS: &[&str] = &[
    "loupe_exit_read",
    "loupe_exit_write",
    "loupe_exit_readv",
    "loupe_exit_writev",
    "loupe_exit_sendto",
    "loupe_exit_recvfrom",
    "loupe_exit_sendmsg",
    "loupe_exit_recvmsg",
    "loupe_exit_sendmmsg",
    "loupe_exit_recvmmsg",
];

/// The TLS library functions hooked, as (symbol, entry program, return program). The `_ex` forms
/// share the return programs: the entry program records where their byte count goes.
pub const TLS_PROBES: &[(&str, &str, &str)] = &[
    ("SSL_write", "loupe_ssl_write", "loupe_ssl_write_ret"),
    ("SSL_read", "loupe_ssl_read", "loupe_ssl_read_ret"),
    ("SSL_write_ex", "loupe_ssl_write_ex", "loupe_ssl_write_ret"),
    ("SSL_read_ex", "loupe_ssl_read_ex", "loupe_ssl_read_ret"),
];

// `loupe_elf::static_ssl` reports functions by these names, in this order.
const _: () = {
    assert!(TLS_PROBES.len() == loupe_elf::SSL_FUNCTIONS.len());
    let mut i = 0;
    while i < TLS_PROBES.len() {
        let (a, b) = (TLS_PROBES[i].0.as_bytes(), loupe_elf::SSL_FUNCTIONS[i].as_bytes());
        assert!(a.len() == b.len());
        let mut j = 0;
        while j < a.len() {
            assert!(a[j] == b[j]);
            j += 1;
        }
        i += 1;
    }
};

/// The Go `crypto/tls` programs: (entry program, program attached at each RET) for `(*Conn).Read`;
/// `(*Conn).Write` emits at its entry and has no RET program.
const GO_TLS_READ: (&str, &str) = ("loupe_go_tls_read", "loupe_go_tls_read_ret");
const GO_TLS_WRITE: &str = "loupe_go_tls_write";

/// Value of the `go_tls_binaries` map: `struct go_tls_binary` in `socket_trace.bpf.c`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct GoTlsBinary {
    tcpconn_itab: u64,
    conn: u32,
    tcpconn_fd: u32,
    sysfd: u32,
    _pad0: u32,
    tcpconn_close: u64,
}

// SAFETY: repr(C), integers only, no padding (8 + 4 * 4 + 8 bytes): every bit pattern is valid.
unsafe impl aya::Pod for GoTlsBinary {}

/// Default [`TracerConfig::http_copy_bytes`]: twice the HTTP parser's default head limit (8 KiB), so a
/// head, the default 512-byte body budget and a pipelined next head fit.
pub const DEFAULT_HTTP_COPY_BYTES: u32 = 16 * 1024;

/// Load-time settings of the socket tracer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracerConfig {
    /// A process never traced, usually the agent itself (`std::process::id()`); 0 excludes none.
    pub exclude_tgid: u32,
    /// If non-zero, the only process traced (tests use their own pid); 0 traces all.
    pub only_tgid: u32,
    /// Ring buffer size in bytes: a power of two, at least the page size.
    pub ring_bytes: u32,
    /// Wake a consumer waiting in [`Tracer::wait`] every this many records per CPU (0 and 1 wake
    /// on every record)...
    pub wake_every: u32,
    /// ...or once this many bytes wait in the ring (0: never). Between wake-ups the consumer
    /// drains on its own timer, so wake-ups are batched by count, bytes and time.
    pub wake_bytes: u32,
    /// Connections with one of these local or remote ports are left out (at most
    /// `MAX_EXCLUDED_PORTS`): the agent's own listeners, so `px` and the UI talking to it are not
    /// traced.
    pub exclude_ports: Vec<u16>,
    /// Most bytes one syscall copies on an HTTP connection (0: `MAX_CHUNKS * CHUNK_SIZE`, as for
    /// other protocols). The HTTP parser keeps the head and a body budget only, so the rest of a
    /// large body is accounted for (a gap of known size: rows keep the real body size) but never
    /// copied. Keep it above the head limit plus the body budget, with room for a second message
    /// read in the same syscall.
    pub http_copy_bytes: u32,
    /// Per-port protocol overrides (at most `MAX_PORT_PROTOCOLS`): the classifier exports such a port's
    /// connections as the given protocol whatever their first bytes, or never (`none`).
    pub port_protocols: Vec<PortProtocol>,
    /// Read the data syscalls' arguments at their exit, from the task's saved registers, where the
    /// kernel allows it (`bpf_task_pt_regs`, Linux 5.15+): their enter probes are then not attached,
    /// which saves a map insert, lookup and delete per syscall. Where it does not load, the tracer
    /// falls back to stashing them at entry and says so. `false` forces the entry probes.
    pub args_at_exit: bool,
}

impl Default for TracerConfig {
    /// Excludes the current process, traces all others, 8 MiB ring, wake-up every 4,096 records
    /// per CPU or at 1 MiB waiting.
    fn default() -> Self {
        Self {
            exclude_tgid: std::process::id(),
            only_tgid: 0,
            ring_bytes: 8 * 1024 * 1024,
            wake_every: 4096,
            wake_bytes: 1024 * 1024,
            exclude_ports: Vec::new(),
            http_copy_bytes: DEFAULT_HTTP_COPY_BYTES,
            port_protocols: Vec::new(),
            args_at_exit: true,
        }
    }
}

/// Whether one probe attached, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStatus {
    /// The tracepoint, e.g. `syscalls/sys_enter_read`.
    pub name: String,
    /// The program is loaded and attached.
    pub attached: bool,
    /// Why it is not; for load failures the verifier log, cut to its head and last 4 KiB.
    pub error: Option<String>,
}

/// Counters summed over all CPUs (kernel side) plus the decoder's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TracerStats {
    /// Records the kernel wrote to the ring buffer.
    pub events: u64,
    /// Records the kernel dropped because the ring buffer was full.
    pub ringbuf_reserve_failures: u64,
    /// Stream bytes those dropped data records accounted for (they reach user space as gaps).
    pub ringbuf_failed_bytes: u64,
    /// Connections left out because of an excluded port (the agent's own).
    pub excluded_conns: u64,
    /// Syscalls that moved more bytes than were captured (beyond `MAX_CHUNKS * CHUNK_SIZE` or
    /// `MAX_IOV` iovecs); the gap is visible in the `Data` events.
    pub truncated_chunks: u64,
    /// Failed reads of user memory (payload or iovec arrays).
    pub read_failures: u64,
    /// Connections not tracked because `conn_map` was full.
    pub conn_map_full: u64,
    /// Syscalls not traced because `args_map` was full.
    pub args_map_full: u64,
    /// Forced consumer wakeups.
    pub wakeups: u64,
    /// `sendfile`/`splice` syscalls on a tracked socket: their bytes are counted as a gap in the
    /// stream, never copied.
    pub not_copied: u64,
    /// TLS reads/writes whose socket could not be found (no syscall seen for the `SSL *` yet).
    pub tls_no_fd: u64,
    /// Events `poll` decoded.
    pub decoded: u64,
    /// Records `poll` could not decode (layout mismatch: a bug).
    pub decode_errors: u64,
}

/// Why the tracer could not load.
#[derive(thiserror::Error, Debug)]
pub enum LoadError {
    /// The configuration is unusable.
    #[error("invalid tracer config: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The object could not be parsed or its maps created (BTF, relocations, map limits).
    #[error("failed to load the socket tracer object")]
    Object(#[source] EbpfError),
    /// The object lacks a map the loader needs (object and loader out of sync).
    #[error("the socket tracer object has no `{name}` map")]
    MissingMap {
        /// The map's name.
        name: &'static str,
    },
    /// A map exists but could not be opened with the expected type.
    #[error("failed to open the `{name}` map")]
    Map {
        /// The map's name.
        name: &'static str,
        /// The underlying error.
        #[source]
        source: MapError,
    },
    /// Not a single probe loaded and attached; carries the first failure (with its verifier log).
    #[error("no socket tracer probe attached (first failure: {probe})")]
    NoProbeAttached {
        /// The first probe that failed.
        probe: String,
        /// Why it failed.
        #[source]
        source: ProbeError,
    },
}

/// Why one probe did not load or attach.
#[derive(thiserror::Error, Debug)]
pub enum ProbeError {
    /// The object has no program of that name (object and loader out of sync).
    #[error("the socket tracer object has no program `{0}`")]
    MissingProgram(String),
    /// The verifier rejected the program (the message carries its log) or attaching failed
    /// (e.g. tracefs not mounted, tracepoint absent).
    #[error(transparent)]
    Program(#[from] ProgramError),
}

/// A record that did not match the wire layout.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
enum DecodeError {
    #[error("record of {len} bytes is shorter than its {need}-byte header")]
    Short { len: usize, need: usize },
    #[error("unknown record kind {0}")]
    Kind(u32),
    #[error("unknown direction {0}")]
    Direction(u8),
    #[error("payload length {len} exceeds the record ({avail} bytes) or the chunk size")]
    PayloadLength { len: usize, avail: usize },
}

/// The loaded, attached socket tracer. Detaches everything when dropped.
pub struct Tracer {
    /// Owns the programs and their links; dropping it detaches.
    ebpf: Ebpf,
    /// Whether the TLS uprobe programs loaded (`None`), or why not.
    tls_error: Option<String>,
    /// Whether the Go `crypto/tls` uprobe programs loaded (`None`), or why not.
    go_tls_error: Option<String>,
    /// Go executables attached so far: the next one's attach cookie (its key in `go_tls_binaries`) is this + 1.
    go_binaries: u64,
    ring: RingBuf<MapData>,
    stats: PerCpuArray<MapData, [u64; wire::STAT_LEN]>,
    excluded_ports: BpfHashMap<MapData, u16, u8>,
    probes: Vec<ProbeStatus>,
    /// Upper bound on records drained per `poll`, so a busy producer cannot pin the caller.
    max_records_per_poll: usize,
    decoded: u64,
    decode_errors: u64,
    /// The data syscalls' arguments are read at exit (their enter probes are not attached).
    args_at_exit: bool,
}

/// Why [`Tracer::load_as`] gave up.
enum Fallback {
    /// Reading arguments at exit does not load here (the reason): load again with entry probes.
    Entry(String),
    /// Nothing to retry.
    Fail(LoadError),
}

impl From<LoadError> for Fallback {
    fn from(error: LoadError) -> Self {
        Fallback::Fail(error)
    }
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").field("probes", &self.probes).field("decoded", &self.decoded).finish_non_exhaustive()
    }
}

impl Tracer {
    /// Loads and attaches all programs.
    ///
    /// A program that fails to load or attach is reported in [`Tracer::probes`] and logged with
    /// the reason; the rest keep working. Returns an error only if nothing useful can run: the
    /// config is invalid, the object or its maps fail to load, or no probe attached at all (the
    /// error then carries the first failure, verifier log included).
    ///
    /// Attaching needs tracefs mounted: call `preflight::check` first.
    pub fn load(config: &TracerConfig) -> Result<Tracer, LoadError> {
        validate(config)?;
        if config.args_at_exit {
            match Self::load_as(config, true) {
                Ok(tracer) => {
                    info!("socket tracer reads syscall arguments at exit (task registers)");
                    return Ok(tracer);
                }
                Err(Fallback::Entry(reason)) => {
                    warn!(
                        error = %reason,
                        "syscall arguments cannot be read at exit on this kernel (bpf_task_pt_regs): \
                         stashing them at entry instead, at a higher cost per traced syscall"
                    );
                }
                Err(Fallback::Fail(error)) => return Err(error),
            }
        }
        let tracer = Self::load_as(config, false).map_err(|e| match e {
            Fallback::Fail(e) => e,
            Fallback::Entry(_) => unreachable!("entry mode has no fallback"),
        })?;
        info!("socket tracer stashes syscall arguments at entry");
        Ok(tracer)
    }

    /// Whether the data syscalls' arguments are read at their exit (see [`TracerConfig::args_at_exit`]).
    pub fn args_at_exit(&self) -> bool {
        self.args_at_exit
    }

    /// [`Tracer::load`] in one mode: arguments read at exit (`at_exit`), or stashed by enter probes.
    fn load_as(config: &TracerConfig, at_exit: bool) -> Result<Tracer, Fallback> {
        let at_exit_flag = u32::from(at_exit);
        let mut ebpf = EbpfLoader::new()
            .override_global(wire::GLOBAL_ARGS_AT_EXIT, &at_exit_flag, true)
            .override_global(wire::GLOBAL_EXCLUDE_TGID, &config.exclude_tgid, true)
            .override_global(wire::GLOBAL_ONLY_TGID, &config.only_tgid, true)
            .override_global(wire::GLOBAL_WAKE_EVERY, &config.wake_every, true)
            .override_global(wire::GLOBAL_WAKE_BYTES, &config.wake_bytes, true)
            .override_global(wire::GLOBAL_HTTP_COPY_BYTES, &config.http_copy_bytes, true)
            .map_max_entries(wire::MAP_EVENTS, config.ring_bytes)
            .load(loupe_bpf::SOCKET_TRACE_OBJ)
            .map_err(LoadError::Object)?;

        // Before attaching, so the agent's own connections are never seen, not even briefly.
        let ports = take_map(&mut ebpf, wire::MAP_EXCLUDED_PORTS)?;
        let map_error = |source| LoadError::Map { name: wire::MAP_EXCLUDED_PORTS, source };
        let mut excluded_ports: BpfHashMap<MapData, u16, u8> = BpfHashMap::try_from(ports).map_err(map_error)?;
        for &port in &config.exclude_ports {
            excluded_ports.insert(port, 1, 0).map_err(map_error)?;
        }
        let overrides = take_map(&mut ebpf, wire::MAP_PORT_PROTOCOLS)?;
        let map_error = |source| LoadError::Map { name: wire::MAP_PORT_PROTOCOLS, source };
        let mut overrides: BpfHashMap<MapData, u16, u8> = BpfHashMap::try_from(overrides).map_err(map_error)?;
        for o in &config.port_protocols {
            overrides.insert(o.port, o.kernel, 0).map_err(map_error)?;
        }

        let mut probes = Vec::with_capacity(PROBES.len());
        let mut first_failure: Option<(String, ProbeError)> = None;
        for &(program, category, tracepoint) in PROBES {
            if at_exit && DATA_ENTERS.contains(&program) {
                continue;
            }
            let name = format!("{category}/{tracepoint}");
            match attach(&mut ebpf, program, category, tracepoint) {
                Ok(()) => {
                    debug!(probe = %name, "attached");
                    probes.push(ProbeStatus { name, attached: true, error: None });
                }
                Err(error) if at_exit && DATA_EXITS.contains(&program) => {
                    // Dropping `ebpf` detaches what attached so far; the caller loads again in entry mode.
                    return Err(Fallback::Entry(summarize(&error.to_string())));
                }
                Err(error) => {
                    let reason = summarize(&error.to_string());
                    warn!(probe = %name, error = %reason, "socket tracer probe not attached");
                    probes.push(ProbeStatus { name: name.clone(), attached: false, error: Some(reason) });
                    if first_failure.is_none() {
                        first_failure = Some((name, error));
                    }
                }
            }
        }
        if !probes.iter().any(|p| p.attached)
            && let Some((probe, source)) = first_failure
        {
            return Err(LoadError::NoProbeAttached { probe, source }.into());
        }

        let ring = take_map(&mut ebpf, wire::MAP_EVENTS)?;
        let ring = RingBuf::try_from(ring).map_err(|source| LoadError::Map { name: wire::MAP_EVENTS, source })?;
        let stats = take_map(&mut ebpf, wire::MAP_STATS)?;
        let stats = PerCpuArray::try_from(stats).map_err(|source| LoadError::Map { name: wire::MAP_STATS, source })?;

        Ok(Tracer {
            tls_error: load_tls(&mut ebpf).err().map(|e| summarize(&e.to_string())),
            go_tls_error: load_uprobes(&mut ebpf, &[GO_TLS_READ.0, GO_TLS_READ.1, GO_TLS_WRITE])
                .err()
                .map(|e| summarize(&e.to_string())),
            go_binaries: 0,
            ebpf,
            ring,
            stats,
            excluded_ports,
            probes,
            // Every record is at least 64 bytes with its ring header, so a full ring holds
            // fewer than ring_bytes / 64: twice that drains a full ring plus what arrives meanwhile.
            max_records_per_poll: (config.ring_bytes as usize / 32).max(1024),
            decoded: 0,
            decode_errors: 0,
            args_at_exit: at_exit,
        })
    }

    /// Ports whose connections are left out: the configured ones, and every port the excluded
    /// process (the agent) listened on since the tracer loaded. Sorted.
    pub fn excluded_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.excluded_ports.keys().filter_map(Result::ok).collect();
        ports.sort_unstable();
        ports
    }

    /// Why the TLS uprobe programs did not load, if they did not (TLS plaintext is then not traced).
    pub fn tls_error(&self) -> Option<&str> {
        self.tls_error.as_deref()
    }

    /// Attaches the TLS uprobes to every process mapping the library file `target` (one attach per
    /// file covers processes started later too). Fails on the first function the file lacks or
    /// that does not attach; the links made before stay.
    pub fn attach_tls(&mut self, target: &std::path::Path) -> Result<(), ProbeError> {
        if self.tls_error.is_some() {
            return Err(ProbeError::MissingProgram("loupe_ssl_write (TLS programs did not load)".into()));
        }
        for &(symbol, entry, ret) in TLS_PROBES {
            for program in [entry, ret] {
                let p: &mut UProbe = self
                    .ebpf
                    .program_mut(program)
                    .ok_or_else(|| ProbeError::MissingProgram(program.to_owned()))?
                    .try_into()?;
                p.attach(symbol, target, UProbeScope::AllProcesses)?;
            }
        }
        Ok(())
    }

    /// Attaches the TLS uprobes to OpenSSL linked into another file `target` (an executable, or a
    /// library that is not `libssl`): `functions` are (symbol of [`TLS_PROBES`], file offset), from
    /// [`super::static_ssl::scan`]. Covers every process running or mapping the file, also later
    /// ones. Links made before a failure stay.
    pub fn attach_tls_at(&mut self, target: &std::path::Path, functions: &[(&str, u64)]) -> Result<(), ProbeError> {
        if self.tls_error.is_some() {
            return Err(ProbeError::MissingProgram("loupe_ssl_write (TLS programs did not load)".into()));
        }
        for &(symbol, offset) in functions {
            let Some(&(_, entry, ret)) = TLS_PROBES.iter().find(|(s, _, _)| *s == symbol) else {
                return Err(ProbeError::MissingProgram(format!("no TLS probe for {symbol}")));
            };
            for program in [entry, ret] {
                let p: &mut UProbe = self
                    .ebpf
                    .program_mut(program)
                    .ok_or_else(|| ProbeError::MissingProgram(program.to_owned()))?
                    .try_into()?;
                let point = UProbeAttachPoint { location: UProbeAttachLocation::AbsoluteOffset(offset), cookie: None };
                p.attach(point, target, UProbeScope::AllProcesses)?;
            }
        }
        Ok(())
    }

    /// Why the Go `crypto/tls` uprobe programs did not load, if they did not.
    pub fn go_tls_error(&self) -> Option<&str> {
        self.go_tls_error.as_deref()
    }

    /// Attaches the Go TLS uprobes to the executable file `target` (every process running it, also
    /// later ones): programs at the entries of `(*Conn).Read`/`Write`, and at each RET instruction of
    /// `Read`. The attach cookie keys the executable's entry in the `go_tls_binaries` map (its
    /// struct offsets and `*net.TCPConn` itab address). Links made before a failure stay.
    pub fn attach_go_tls(&mut self, target: &std::path::Path, go: &GoTlsTarget) -> Result<(), ProbeError> {
        if self.go_tls_error.is_some() {
            return Err(ProbeError::MissingProgram("loupe_go_tls_read (Go TLS programs did not load)".into()));
        }
        self.go_binaries += 1;
        let cookie = self.go_binaries;
        let binary = GoTlsBinary {
            tcpconn_itab: go.tcpconn_itab,
            conn: go.offsets.conn,
            tcpconn_fd: go.offsets.tcpconn_fd,
            sysfd: go.offsets.sysfd,
            _pad0: 0,
            tcpconn_close: go.tcpconn_close,
        };
        let map = self
            .ebpf
            .map_mut(wire::MAP_GO_TLS_BINARIES)
            .ok_or_else(|| ProbeError::MissingProgram(wire::MAP_GO_TLS_BINARIES.to_owned()))?;
        let mut map: BpfHashMap<&mut MapData, u64, GoTlsBinary> =
            BpfHashMap::try_from(map).map_err(|e| ProbeError::Program(ProgramError::MapError(e)))?;
        map.insert(cookie, binary, 0).map_err(|e| ProbeError::Program(ProgramError::MapError(e)))?;
        let read = std::iter::once((GO_TLS_READ.0, go.read.entry));
        let points =
            read.chain(go.read.returns.iter().map(|&r| (GO_TLS_READ.1, r))).chain([(GO_TLS_WRITE, go.write.entry)]);
        for (program, offset) in points {
            let p: &mut UProbe = self
                .ebpf
                .program_mut(program)
                .ok_or_else(|| ProbeError::MissingProgram(program.to_owned()))?
                .try_into()?;
            let point =
                UProbeAttachPoint { location: UProbeAttachLocation::AbsoluteOffset(offset), cookie: Some(cookie) };
            p.attach(point, target, UProbeScope::AllProcesses)?;
        }
        Ok(())
    }

    /// Status of every probe, attached or not, in a fixed order.
    pub fn probes(&self) -> &[ProbeStatus] {
        &self.probes
    }

    /// Drains the records currently in the ring buffer without blocking, handing each decoded
    /// event to `handle` while its bytes are still in the ring (no copy). Returns the number of
    /// events handled.
    ///
    /// Stops after a bound proportional to the ring size so a producer faster than the consumer
    /// cannot keep the caller here forever; call it again (the collector thread does, after each wakeup).
    pub fn poll(&mut self, mut handle: impl FnMut(KernelEvent<'_>)) -> usize {
        let mut added = 0usize;
        let mut errors = 0u64;
        for _ in 0..self.max_records_per_poll {
            let Some(record) = self.ring.next() else {
                break;
            };
            match decode(&record) {
                Ok(event) => {
                    handle(event);
                    added += 1;
                }
                Err(error) => {
                    errors += 1;
                    // One log per poll at most: a layout mismatch would repeat for every record.
                    if errors == 1 {
                        warn!(%error, "undecodable socket tracer record");
                    }
                }
            }
        }
        self.decoded += added as u64;
        self.decode_errors += errors;
        added
    }

    /// Sleeps until the kernel wakes the consumer or `timeout` passes, whichever comes first;
    /// returns at once if records are waiting.
    ///
    /// The kernel wakes the consumer every `wake_every` records per CPU, so a burst (large
    /// bodies on loopback move a ring's worth of bytes in milliseconds) is drained as it comes
    /// rather than after a fixed sleep, while a trickle still waits up to `timeout`.
    pub fn wait(&self, timeout: std::time::Duration) {
        let mut fd = libc::pollfd { fd: self.ring.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fd` is one valid pollfd for the ring buffer's open map fd, and nfds is 1.
        // An error (EINTR) only ends the wait early, which the caller's loop tolerates.
        unsafe { libc::poll(&mut fd, 1, ms) };
    }

    /// Kernel counters summed over CPUs, plus the decoder's counters.
    pub fn stats(&self) -> TracerStats {
        let mut sum = [0u64; wire::STAT_LEN];
        match self.stats.get(&0, 0) {
            Ok(per_cpu) => {
                for counters in per_cpu.iter() {
                    for (total, value) in sum.iter_mut().zip(counters.iter()) {
                        *total = total.wrapping_add(*value);
                    }
                }
            }
            Err(error) => warn!(%error, "failed to read socket tracer counters"),
        }
        TracerStats {
            events: sum[wire::STAT_EVENTS],
            ringbuf_reserve_failures: sum[wire::STAT_RINGBUF_FAILURES],
            ringbuf_failed_bytes: sum[wire::STAT_RINGBUF_FAILED_BYTES],
            excluded_conns: sum[wire::STAT_EXCLUDED_CONNS],
            truncated_chunks: sum[wire::STAT_TRUNCATED],
            read_failures: sum[wire::STAT_READ_FAILURES],
            conn_map_full: sum[wire::STAT_CONN_MAP_FULL],
            args_map_full: sum[wire::STAT_ARGS_MAP_FULL],
            wakeups: sum[wire::STAT_WAKEUPS],
            not_copied: sum[wire::STAT_NOT_COPIED],
            tls_no_fd: sum[wire::STAT_TLS_NO_FD],
            decoded: self.decoded,
            decode_errors: self.decode_errors,
        }
    }
}

fn validate(config: &TracerConfig) -> Result<(), LoadError> {
    // SAFETY: sysconf only reads a system constant; no pointers are involved.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u32::try_from(page).unwrap_or(4096);
    if config.exclude_ports.len() > wire::MAX_EXCLUDED_PORTS {
        return Err(LoadError::InvalidConfig {
            reason: format!("at most {} excluded ports, got {}", wire::MAX_EXCLUDED_PORTS, config.exclude_ports.len()),
        });
    }
    if config.port_protocols.len() > wire::MAX_PORT_PROTOCOLS {
        return Err(LoadError::InvalidConfig {
            reason: format!(
                "at most {} port protocol overrides, got {}",
                wire::MAX_PORT_PROTOCOLS,
                config.port_protocols.len()
            ),
        });
    }
    if !config.ring_bytes.is_power_of_two() || config.ring_bytes < page {
        return Err(LoadError::InvalidConfig {
            reason: format!(
                "ring_bytes must be a power of two of at least the page size ({page}), got {}",
                config.ring_bytes
            ),
        });
    }
    Ok(())
}

/// Loads (without attaching) the TLS uprobe programs; the return probes load once for both forms.
fn load_tls(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    let mut names: Vec<&str> = TLS_PROBES.iter().flat_map(|&(_, entry, ret)| [entry, ret]).collect();
    names.sort_unstable();
    names.dedup();
    load_uprobes(ebpf, &names)
}

/// Loads (without attaching) the named uprobe programs.
fn load_uprobes(ebpf: &mut Ebpf, names: &[&str]) -> Result<(), ProbeError> {
    for &name in names {
        let p: &mut UProbe =
            ebpf.program_mut(name).ok_or_else(|| ProbeError::MissingProgram(name.to_owned()))?.try_into()?;
        p.load()?;
    }
    Ok(())
}

fn attach(ebpf: &mut Ebpf, program: &str, category: &str, tracepoint: &str) -> Result<(), ProbeError> {
    let program: &mut TracePoint =
        ebpf.program_mut(program).ok_or_else(|| ProbeError::MissingProgram(program.to_owned()))?.try_into()?;
    program.load()?;
    program.attach(category, tracepoint)?;
    Ok(())
}

/// Keeps an error message readable: verifier logs run to megabytes, and their useful part is the
/// end (the rejected instruction and the reason), so long messages keep their head and tail.
fn summarize(message: &str) -> String {
    const HEAD: usize = 256;
    const TAIL: usize = 4096;
    if message.len() <= HEAD + TAIL {
        return message.to_owned();
    }
    let head_end = (0..=HEAD).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
    let tail_start =
        (message.len() - TAIL..message.len()).find(|&i| message.is_char_boundary(i)).unwrap_or(message.len());
    format!("{} [... {} bytes elided ...] {}", &message[..head_end], tail_start - head_end, &message[tail_start..])
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, LoadError> {
    ebpf.take_map(name).ok_or(LoadError::MissingMap { name })
}

/// Plain-old-data wire structs: every bit pattern is a valid value.
///
/// # Safety
/// Implementors must be `#[repr(C)]` and contain only integers and integer arrays.
unsafe trait Wire: Copy {}
// SAFETY: repr(C) structs of integers and byte arrays (see loupe_bpf_common).
unsafe impl Wire for wire::EventHeader {}
// SAFETY: as above.
unsafe impl Wire for wire::ConnOpenEvent {}
// SAFETY: as above.
unsafe impl Wire for wire::DataHeader {}
// SAFETY: as above.
unsafe impl Wire for wire::ConnCloseEvent {}
// SAFETY: as above.
unsafe impl Wire for wire::DgramHeader {}

/// Reads a `T` from the front of `bytes`, or reports how short it is.
fn read_wire<T: Wire>(bytes: &[u8]) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short { len: bytes.len(), need });
    }
    // SAFETY: `bytes` holds at least size_of::<T>() readable bytes (checked above), `T: Wire`
    // accepts any bit pattern, and read_unaligned has no alignment requirement.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one ring-buffer record.
fn decode(record: &[u8]) -> Result<KernelEvent<'_>, DecodeError> {
    let hdr: wire::EventHeader = read_wire(record)?;
    let key = ConnKey { tgid: hdr.tgid, fd: hdr.fd, generation: hdr.generation };
    match hdr.kind {
        wire::EVENT_CONN_OPEN => {
            let ev: wire::ConnOpenEvent = read_wire(record)?;
            Ok(KernelEvent::ConnOpen {
                ts_ns: hdr.ts_ns,
                key,
                role: role(ev.role),
                local: socket_addr(ev.family, &ev.local_addr, ev.local_port),
                remote: socket_addr(ev.family, &ev.remote_addr, ev.remote_port),
                proc_start_ns: ev.proc_start_ns,
            })
        }
        wire::EVENT_DATA => {
            let h: wire::DataHeader = read_wire(record)?;
            let direction = match h.direction {
                wire::DIR_EGRESS => Direction::Egress,
                wire::DIR_INGRESS => Direction::Ingress,
                other => return Err(DecodeError::Direction(other)),
            };
            let payload = &record[wire::SIZE_DATA_HEADER..];
            let len = h.len as usize;
            if len > payload.len() || len > wire::CHUNK_SIZE {
                return Err(DecodeError::PayloadLength { len, avail: payload.len() });
            }
            let captured = len as u64;
            // The syscall's last record accounts for the uncaptured rest of its bytes.
            let msg_size = if h.flags & wire::DATA_FLAG_LAST != 0 {
                h.msg_size.saturating_sub(h.chunk_offset).max(captured)
            } else {
                captured
            };
            Ok(KernelEvent::Data {
                ts_ns: hdr.ts_ns,
                key,
                direction,
                pos: h.pos.wrapping_add(h.chunk_offset),
                msg_size,
                data: std::borrow::Cow::Borrowed(&payload[..len]),
            })
        }
        wire::EVENT_DATAGRAM => {
            let d: wire::DgramHeader = read_wire(record)?;
            let direction = match d.h.direction {
                wire::DIR_EGRESS => Direction::Egress,
                wire::DIR_INGRESS => Direction::Ingress,
                other => return Err(DecodeError::Direction(other)),
            };
            let payload = &record[wire::SIZE_DGRAM_HEADER..];
            let len = d.h.len as usize;
            if len > payload.len() || len > wire::DGRAM_COPY {
                return Err(DecodeError::PayloadLength { len, avail: payload.len() });
            }
            Ok(KernelEvent::Datagram {
                ts_ns: hdr.ts_ns,
                key,
                direction,
                local: socket_addr(d.family, &d.local_addr, d.local_port),
                remote: socket_addr(d.family, &d.remote_addr, d.remote_port),
                msg_size: d.h.msg_size.max(len as u64),
                data: std::borrow::Cow::Borrowed(&payload[..len]),
            })
        }
        wire::EVENT_CONN_CLOSE => {
            let ev: wire::ConnCloseEvent = read_wire(record)?;
            Ok(KernelEvent::ConnClose { ts_ns: hdr.ts_ns, key, bytes_sent: ev.bytes_sent, bytes_recv: ev.bytes_recv })
        }
        wire::EVENT_PROC_EXIT => Ok(KernelEvent::ProcExit { ts_ns: hdr.ts_ns, tgid: hdr.tgid }),
        wire::EVENT_TLS_CONN => Ok(KernelEvent::TlsConn { ts_ns: hdr.ts_ns, key }),
        other => Err(DecodeError::Kind(other)),
    }
}

fn role(raw: u8) -> Role {
    match raw {
        wire::ROLE_CLIENT => Role::Client,
        wire::ROLE_SERVER => Role::Server,
        _ => Role::Unknown,
    }
}

/// Builds a socket address; IPv4-mapped IPv6 addresses (dual-stack sockets) come out as IPv4.
fn socket_addr(family: u16, addr: &[u8; 16], port: u16) -> Option<SocketAddr> {
    match family {
        wire::AF_INET => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        wire::AF_INET6 => {
            let ip = Ipv6Addr::from(*addr);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32) -> wire::EventHeader {
        wire::EventHeader { kind, tgid: 7, ts_ns: 100, generation: 42, fd: 3, _pad0: 0 }
    }

    fn bytes_of<T: Wire>(value: &T) -> Vec<u8> {
        let size = std::mem::size_of::<T>();
        // SAFETY: `value` is a live reference to `size` bytes of a padding-free repr(C) struct
        // (its padding is explicit `_pad` fields), so every byte is initialised.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size) }.to_vec()
    }

    fn data_record(chunk_offset: u64, payload: &[u8], last: bool) -> Vec<u8> {
        let h = wire::DataHeader {
            hdr: header(wire::EVENT_DATA),
            pos: 1000,
            msg_size: 10_000,
            chunk_offset,
            len: payload.len() as u32,
            direction: wire::DIR_EGRESS,
            protocol: wire::PROTO_HTTP,
            flags: if last { wire::DATA_FLAG_LAST } else { 0 },
            _pad0: 0,
        };
        let mut record = bytes_of(&h);
        record.extend_from_slice(payload);
        record
    }

    #[test]
    fn data_chunks_are_contiguous_and_the_last_covers_the_gap() {
        let (first, last) = (data_record(0, b"abcd", false), data_record(4, b"ef", true));
        let first = decode(&first).expect("decodes");
        let last = decode(&last).expect("decodes");
        let KernelEvent::Data { pos: p1, msg_size: m1, .. } = first else {
            panic!("not data: {first:?}");
        };
        let KernelEvent::Data { pos: p2, msg_size: m2, data, .. } = last else {
            panic!("not data: {last:?}");
        };
        assert_eq!((p1, m1), (1000, 4));
        assert_eq!(p2, p1 + m1);
        assert_eq!(m2, 10_000 - 4);
        assert_eq!(&*data, b"ef");
    }

    #[test]
    fn a_payload_less_record_is_a_gap_of_its_whole_size() {
        // What sendfile and splice emit: nothing copied, msg_size bytes moved.
        let record = data_record(0, b"", true);
        let event = decode(&record).expect("decodes");
        assert_eq!(
            event,
            KernelEvent::Data {
                ts_ns: 100,
                key: ConnKey { tgid: 7, fd: 3, generation: 42 },
                direction: Direction::Egress,
                pos: 1000,
                msg_size: 10_000,
                data: std::borrow::Cow::Borrowed(&[]),
            }
        );
    }

    #[test]
    fn open_decodes_ipv4_and_mapped_ipv6() {
        let mut ev = wire::ConnOpenEvent {
            hdr: header(wire::EVENT_CONN_OPEN),
            family: wire::AF_INET,
            local_port: 8080,
            remote_port: 5555,
            role: wire::ROLE_SERVER,
            _pad0: 0,
            local_addr: [0; 16],
            remote_addr: [0; 16],
            proc_start_ns: 7,
        };
        ev.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        ev.remote_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        let record = bytes_of(&ev);
        let decoded = decode(&record).expect("decodes");
        assert_eq!(
            decoded,
            KernelEvent::ConnOpen {
                ts_ns: 100,
                key: ConnKey { tgid: 7, fd: 3, generation: 42 },
                role: Role::Server,
                local: Some("127.0.0.1:8080".parse().expect("addr")),
                remote: Some("10.0.0.2:5555".parse().expect("addr")),
                proc_start_ns: 7,
            }
        );
        ev.family = wire::AF_INET6;
        ev.local_addr = Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().octets();
        ev.remote_addr = Ipv6Addr::LOCALHOST.octets();
        let KernelEvent::ConnOpen { local, remote, .. } = decode(&bytes_of(&ev)).expect("ok") else {
            panic!("not an open");
        };
        assert_eq!(local, Some("127.0.0.1:8080".parse().expect("addr")));
        assert_eq!(remote, Some("[::1]:5555".parse().expect("addr")));
    }

    #[test]
    fn a_datagram_names_both_ends() {
        let mut d = wire::DgramHeader {
            h: wire::DataHeader {
                hdr: header(wire::EVENT_DATAGRAM),
                pos: 0,
                msg_size: 5,
                chunk_offset: 0,
                len: 3,
                direction: wire::DIR_INGRESS,
                protocol: wire::PROTO_DNS,
                flags: wire::DATA_FLAG_LAST,
                _pad0: 0,
            },
            family: wire::AF_INET,
            local_port: 53,
            remote_port: 4000,
            _pad0: 0,
            local_addr: [0; 16],
            remote_addr: [0; 16],
        };
        d.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        d.remote_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        let mut record = bytes_of(&d);
        record.extend_from_slice(b"abc");
        assert_eq!(
            decode(&record),
            Ok(KernelEvent::Datagram {
                ts_ns: 100,
                key: ConnKey { tgid: 7, fd: 3, generation: 42 },
                direction: Direction::Ingress,
                local: Some("127.0.0.1:53".parse().expect("addr")),
                remote: Some("10.0.0.2:4000".parse().expect("addr")),
                msg_size: 5,
                data: std::borrow::Cow::Borrowed(b"abc"),
            })
        );
        record.truncate(record.len() - 1);
        assert!(matches!(decode(&record), Err(DecodeError::PayloadLength { len: 3, avail: 2 })));
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        assert!(matches!(decode(&[1, 2, 3]), Err(DecodeError::Short { .. })));
        assert_eq!(decode(&bytes_of(&header(99))), Err(DecodeError::Kind(99)));
        assert_eq!(
            decode(&bytes_of(&header(wire::EVENT_PROC_EXIT))),
            Ok(KernelEvent::ProcExit { ts_ns: 100, tgid: 7 })
        );
        let mut record = data_record(0, b"abcd", true);
        record.truncate(record.len() - 1);
        assert!(matches!(decode(&record), Err(DecodeError::PayloadLength { len: 4, avail: 3 })));
        let open = bytes_of(&header(wire::EVENT_CONN_OPEN));
        assert!(matches!(decode(&open), Err(DecodeError::Short { .. })));
    }

    #[test]
    fn long_errors_keep_head_and_tail() {
        let long = format!("start{}end", "x".repeat(10_000));
        let short = summarize(&long);
        assert!(short.len() < 4500, "{}", short.len());
        assert!(short.starts_with("start") && short.ends_with("end"));
        assert_eq!(summarize("short"), "short");
    }

    #[test]
    fn config_validation() {
        let mut config = TracerConfig { ring_bytes: 3 * 4096, ..TracerConfig::default() };
        assert!(matches!(validate(&config), Err(LoadError::InvalidConfig { .. })));
        config.ring_bytes = 1 << 20;
        assert!(validate(&config).is_ok());
        config.exclude_ports = (0..=wire::MAX_EXCLUDED_PORTS as u16).collect();
        assert!(matches!(validate(&config), Err(LoadError::InvalidConfig { .. })));
    }
}
