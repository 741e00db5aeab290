//! `proc_exit_events` and `tcp_stats_events`: the host events program (`loupe_bpf::HOST_OBJ`) and its
//! rows.
//!
//! Owns loading and attaching that program (each hook alone: a kernel lacking one loses that count
//! and says so in one log line, nothing else), decoding its ring-buffer records ([`decode`]), and
//! [`HostEvents`], the [`Source`] that turns them into rows: one `proc_exit_events` row per process
//! exit, and one `tcp_stats_events` row per connection and report window with the retransmits and
//! resets seen in it. Must not touch the socket tracer's programs or the profiler's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, ProgramError, TracePoint};
use aya::{Btf, Ebpf, EbpfError, EbpfLoader};
use loupe_common::{ClockConverter, Upid};
use loupe_schema::TableSpec;
use loupe_schema::host::{
    PROC_EXIT_EVENTS, ProcExitEventsBuilder, TCP_STATS_EVENTS, TcpStatsEventsBuilder, proc_exit_events,
    tcp_stats_events,
};

use crate::loader::ProbeStatus;
use crate::source::{Source, Tables};

/// Size of `struct loupe_host_event` in `crates/bpf/c/host.bpf.c`.
const RECORD_LEN: usize = 88;
const KIND_EXIT: u32 = 1;
const KIND_RETRANSMIT: u32 = 2;
const KIND_RESET_SENT: u32 = 3;
const KIND_RESET_RECEIVED: u32 = 4;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Most records drained per poll, so a burst cannot pin the collector thread.
const MAX_RECORDS_PER_POLL: usize = 4096;
/// Most connections one `tcp_stats_events` window keeps; events of further ones are counted, not kept.
const MAX_TCP_KEYS: usize = 4096;

/// The hooks: (program, kind, category or BTF tracepoint, name, what is lost without it).
const PROBES: [(&str, Hook, &str, &str); 4] = [
    ("loupe_proc_exit", Hook::TracePoint("sched"), "sched_process_exit", "proc_exit_events"),
    ("loupe_tcp_retransmit", Hook::Btf, "tcp_retransmit_skb", "tcp_stats_events.retransmits"),
    ("loupe_tcp_send_reset", Hook::Btf, "tcp_send_reset", "tcp_stats_events.resets_sent"),
    ("loupe_tcp_receive_reset", Hook::Btf, "tcp_receive_reset", "tcp_stats_events.resets_received"),
];

#[derive(Debug, Clone, Copy)]
enum Hook {
    /// A classic tracepoint in this tracefs category.
    TracePoint(&'static str),
    /// A BTF-typed tracepoint (`tp_btf`).
    Btf,
}

/// Why the host events program could not run at all.
#[derive(thiserror::Error, Debug)]
pub enum HostEventsError {
    /// The object could not be parsed or its maps created.
    #[error("failed to load the host events object")]
    Object(#[source] EbpfError),
    /// The object lacks a map the loader needs (object and loader out of sync).
    #[error("the host events object has no usable `{0}` map")]
    Map(&'static str),
    /// Not one hook attached.
    #[error("no host event hook attached (first failure: {0})")]
    NoProbeAttached(String),
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A process ended.
    Exit {
        /// Its pid.
        tgid: u32,
        /// `bpf_ktime_get_ns` of the exit.
        ts_ns: u64,
        /// Its start time (ns since boot), 0 if unknown.
        start_ns: u64,
        /// The kernel's exit status: `(code << 8) | signal`, `0x80` when it dumped core.
        status: i32,
        /// Its command name.
        comm: String,
    },
    /// A TCP event on one connection.
    Tcp {
        /// Which.
        kind: TcpKind,
        /// The process the kernel ran it in (0: none).
        tgid: u32,
        /// That process's start time (ns since boot), 0 if unknown.
        start_ns: u64,
        /// This host's end.
        local: (IpAddr, u16),
        /// The peer's end.
        remote: (IpAddr, u16),
    },
}

/// What happened on a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpKind {
    /// A segment was sent again.
    Retransmit,
    /// This host sent a reset.
    ResetSent,
    /// The peer sent a reset.
    ResetReceived,
}

/// Why a record did not decode.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the record layout.
    #[error("host record of {0} bytes, expected {RECORD_LEN}")]
    Short(usize),
    /// A kind this loader does not know.
    #[error("unknown host record kind {0}")]
    Kind(u32),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(bytes)
}

fn addr(family: u16, bytes: &[u8]) -> IpAddr {
    let mut v6 = [0u8; 16];
    v6.copy_from_slice(&bytes[..16]);
    match family {
        AF_INET => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        _ => {
            let a = Ipv6Addr::from(v6);
            a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4)
        }
    }
}

/// Decodes one `struct loupe_host_event` (offsets in `host.bpf.c`).
pub fn decode(record: &[u8]) -> Result<HostEvent, DecodeError> {
    if record.len() < RECORD_LEN {
        return Err(DecodeError::Short(record.len()));
    }
    let b = &record[..RECORD_LEN];
    let (kind, tgid, ts_ns, start_ns) = (u32_at(b, 0), u32_at(b, 4), u64_at(b, 8), u64_at(b, 16));
    let tcp = |kind| {
        let family = u16_at(b, 28);
        let family = if family == AF_INET6 { AF_INET6 } else { AF_INET };
        HostEvent::Tcp {
            kind,
            tgid,
            start_ns,
            local: (addr(family, &b[40..56]), u16_at(b, 30)),
            remote: (addr(family, &b[56..72]), u16_at(b, 32)),
        }
    };
    match kind {
        KIND_EXIT => {
            let comm = &b[72..88];
            let len = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
            Ok(HostEvent::Exit {
                tgid,
                ts_ns,
                start_ns,
                status: u32_at(b, 24) as i32,
                comm: String::from_utf8_lossy(&comm[..len]).into_owned(),
            })
        }
        KIND_RETRANSMIT => Ok(tcp(TcpKind::Retransmit)),
        KIND_RESET_SENT => Ok(tcp(TcpKind::ResetSent)),
        KIND_RESET_RECEIVED => Ok(tcp(TcpKind::ResetReceived)),
        other => Err(DecodeError::Kind(other)),
    }
}

/// A connection's counts in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TcpCounts {
    retransmits: i64,
    resets_sent: i64,
    resets_received: i64,
}

type TcpKey = (String, IpAddr, u16, IpAddr, u16);

/// Settings of [`HostEvents`].
#[derive(Debug, Clone)]
pub struct HostEventsConfig {
    /// The agent's short id, the high half of every UPID.
    pub asid: u32,
    /// Rows are pushed this often (Pixie pushes `proc_exit_events` every second); a
    /// `tcp_stats_events` row covers one such window.
    pub push_interval: Duration,
}

impl Default for HostEventsConfig {
    fn default() -> Self {
        HostEventsConfig { asid: 0, push_interval: Duration::from_secs(1) }
    }
}

/// Turns decoded events into rows: exits as they come, TCP events summed per connection per window.
pub struct HostRows {
    asid: u32,
    clock: ClockConverter,
    exits: ProcExitEventsBuilder,
    tcp: HashMap<TcpKey, TcpCounts>,
    /// TCP events left out because the window held `MAX_TCP_KEYS` connections already.
    pub tcp_dropped: u64,
}

impl HostRows {
    /// No rows yet.
    pub fn new(asid: u32, clock: ClockConverter) -> Self {
        HostRows { asid, clock, exits: ProcExitEventsBuilder::new(), tcp: HashMap::new(), tcp_dropped: 0 }
    }

    fn upid(&self, tgid: u32, start_ns: u64) -> String {
        if tgid == 0 {
            // A kernel context (a timer on an idle CPU): no process to name.
            return Upid { asid: self.asid, pid: 0, start_ticks: 0 }.to_string();
        }
        let upid = if start_ns > 0 {
            Upid::from_start_boottime_ns(self.asid, tgid, start_ns)
        } else {
            Upid::for_local_pid(self.asid, tgid).unwrap_or(Upid { asid: self.asid, pid: tgid, start_ticks: 0 })
        };
        upid.to_string()
    }

    /// Adds one event.
    pub fn add(&mut self, event: HostEvent) {
        match event {
            HostEvent::Exit { tgid, ts_ns, start_ns, status, comm } => {
                let upid = self.upid(tgid, start_ns);
                self.exits.append(&loupe_schema::host::ProcExitEventRow {
                    time_ns: self.clock.to_unix_ns(ts_ns),
                    upid,
                    exit_code: i64::from((status >> 8) & 0xff),
                    signal: i64::from(status & 0x7f),
                    comm,
                });
            }
            HostEvent::Tcp { kind, tgid, start_ns, local, remote } => {
                let key = (self.upid(tgid, start_ns), local.0, local.1, remote.0, remote.1);
                let full = self.tcp.len() >= MAX_TCP_KEYS;
                let counts = match self.tcp.get_mut(&key) {
                    Some(c) => c,
                    None if full => {
                        self.tcp_dropped += 1;
                        return;
                    }
                    None => self.tcp.entry(key).or_default(),
                };
                match kind {
                    TcpKind::Retransmit => counts.retransmits += 1,
                    TcpKind::ResetSent => counts.resets_sent += 1,
                    TcpKind::ResetReceived => counts.resets_received += 1,
                }
            }
        }
    }

    /// Rows pending.
    pub fn len(&self) -> usize {
        self.exits.len() + self.tcp.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the pending exits, and one `tcp_stats_events` row per connection of the window
    /// stamped `time_ns`, to `tables`.
    pub fn push(&mut self, tables: &Tables, time_ns: i64) {
        let n = self.exits.len();
        if n > 0 {
            tables.append(PROC_EXIT_EVENTS, n, self.exits.finish());
        }
        if !self.tcp.is_empty() {
            let mut rows: Vec<_> = self.tcp.drain().collect();
            rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut builder = TcpStatsEventsBuilder::new();
            for ((upid, local_addr, local_port, remote_addr, remote_port), c) in rows {
                builder.append(&loupe_schema::host::TcpStatsEventRow {
                    time_ns,
                    upid,
                    local_addr: local_addr.to_string(),
                    local_port: i64::from(local_port),
                    remote_addr: remote_addr.to_string(),
                    remote_port: i64::from(remote_port),
                    tx: 0,
                    rx: 0,
                    retransmits: c.retransmits,
                    resets_sent: c.resets_sent,
                    resets_received: c.resets_received,
                });
            }
            tables.append(TCP_STATS_EVENTS, builder.len(), builder.finish());
        }
    }
}

/// The host events program as a [`Source`]. Detaches everything when dropped.
pub struct HostEvents {
    /// Owns the programs and their links.
    _ebpf: Ebpf,
    ring: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
    lost_seen: u64,
    probes: Vec<ProbeStatus>,
    rows: HostRows,
    push_interval: Duration,
    last_push: Instant,
    decode_errors: u64,
}

impl HostEvents {
    /// Loads the program and attaches every hook this kernel has, logging what was chosen and what
    /// is missing.
    pub fn load(config: HostEventsConfig) -> Result<HostEvents, HostEventsError> {
        let mut ebpf = EbpfLoader::new().load(loupe_bpf::HOST_OBJ).map_err(HostEventsError::Object)?;
        let btf = Btf::from_sys_fs().map_err(|e| e.to_string());
        let mut probes = Vec::new();
        for (program, hook, name, feeds) in PROBES {
            let result = attach(&mut ebpf, program, hook, name, btf.as_ref());
            let shown = match hook {
                Hook::TracePoint(category) => format!("{category}/{name}"),
                Hook::Btf => format!("tp_btf/{name}"),
            };
            match &result {
                Ok(()) => tracing::info!(hook = %shown, feeds, "host event hook attached"),
                Err(error) => tracing::warn!(
                    hook = %shown,
                    %error,
                    "host event hook not attached: {feeds} will have no rows from it on this kernel"
                ),
            }
            probes.push(ProbeStatus { name: shown, attached: result.is_ok(), error: result.err() });
        }
        if !probes.iter().any(|p| p.attached) {
            let first = probes.first().and_then(|p| p.error.clone()).unwrap_or_default();
            return Err(HostEventsError::NoProbeAttached(first));
        }
        let ring = ebpf.take_map("host_events").ok_or(HostEventsError::Map("host_events"))?;
        let ring = RingBuf::try_from(ring).map_err(|_| HostEventsError::Map("host_events"))?;
        let lost = ebpf.take_map("host_stats").ok_or(HostEventsError::Map("host_stats"))?;
        let lost = PerCpuArray::try_from(lost).map_err(|_| HostEventsError::Map("host_stats"))?;
        Ok(HostEvents {
            _ebpf: ebpf,
            ring,
            lost,
            lost_seen: 0,
            probes,
            rows: HostRows::new(config.asid, ClockConverter::new()),
            push_interval: config.push_interval,
            last_push: Instant::now(),
            decode_errors: 0,
        })
    }

    /// The tables it fills.
    pub fn table_specs() -> Vec<TableSpec> {
        vec![proc_exit_events(), tcp_stats_events()]
    }

    /// Every hook, attached or not.
    pub fn probes(&self) -> &[ProbeStatus] {
        &self.probes
    }

    fn push(&mut self, tables: &Tables) {
        self.rows.push(tables, loupe_common::time::now_unix_ns());
        self.last_push = Instant::now();
        let lost: u64 = self.lost.get(&0, 0).map(|per_cpu| per_cpu.iter().sum()).unwrap_or(0);
        if lost > self.lost_seen {
            tracing::warn!(records = lost - self.lost_seen, "host events lost: the ring buffer was full");
            self.lost_seen = lost;
        }
    }
}

fn attach(ebpf: &mut Ebpf, program: &str, hook: Hook, name: &str, btf: Result<&Btf, &String>) -> Result<(), String> {
    let prog = ebpf.program_mut(program).ok_or_else(|| format!("the object has no program `{program}`"))?;
    let result: Result<(), ProgramError> = match hook {
        Hook::TracePoint(category) => (|| {
            let p: &mut TracePoint = prog.try_into()?;
            p.load()?;
            p.attach(category, name).map(|_| ())
        })(),
        Hook::Btf => {
            let btf = btf.map_err(|e| format!("kernel BTF unavailable: {e}"))?;
            (|| {
                let p: &mut BtfTracePoint = prog.try_into()?;
                p.load(name, btf)?;
                p.attach().map(|_| ())
            })()
        }
    };
    result.map_err(|e| {
        use std::error::Error as _;
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        summarize(&message)
    })
}

/// Keeps a verifier log readable: its useful part is the end (the rejected instruction and why).
fn summarize(message: &str) -> String {
    const HEAD: usize = 200;
    const TAIL: usize = 2000;
    let chars: Vec<char> = message.chars().collect();
    if chars.len() <= HEAD + TAIL {
        return message.to_owned();
    }
    let head: String = chars[..HEAD].iter().collect();
    let tail: String = chars[chars.len() - TAIL..].iter().collect();
    format!("{head} [...] {tail}")
}

impl Source for HostEvents {
    fn name(&self) -> &'static str {
        "host_events"
    }

    fn tables(&self) -> Vec<TableSpec> {
        Self::table_specs()
    }

    fn poll(&mut self, tables: &Tables) -> bool {
        let mut n = 0;
        while n < MAX_RECORDS_PER_POLL {
            let Some(record) = self.ring.next() else { break };
            match decode(&record) {
                Ok(event) => self.rows.add(event),
                Err(error) => {
                    self.decode_errors += 1;
                    if self.decode_errors.is_power_of_two() {
                        tracing::warn!(%error, total = self.decode_errors, "undecodable host event record");
                    }
                }
            }
            n += 1;
        }
        if !self.rows.is_empty() && self.last_push.elapsed() >= self.push_interval {
            self.push(tables);
        }
        n > 0
    }

    fn flush(&mut self, tables: &Tables) {
        self.push(tables);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u32, tgid: u32, family: u16, local: &[u8], lport: u16, remote: &[u8], rport: u16) -> Vec<u8> {
        let mut b = vec![0u8; RECORD_LEN];
        b[0..4].copy_from_slice(&kind.to_ne_bytes());
        b[4..8].copy_from_slice(&tgid.to_ne_bytes());
        b[8..16].copy_from_slice(&5_000u64.to_ne_bytes());
        b[16..24].copy_from_slice(&2_000_000_000u64.to_ne_bytes());
        b[24..28].copy_from_slice(&(3i32 << 8).to_ne_bytes());
        b[28..30].copy_from_slice(&family.to_ne_bytes());
        b[30..32].copy_from_slice(&lport.to_ne_bytes());
        b[32..34].copy_from_slice(&rport.to_ne_bytes());
        b[40..40 + local.len()].copy_from_slice(local);
        b[56..56 + remote.len()].copy_from_slice(remote);
        b[72..76].copy_from_slice(b"sh\0x");
        b
    }

    #[test]
    fn records_decode_at_the_c_offsets() {
        let exit = decode(&record(KIND_EXIT, 42, 0, &[], 0, &[], 0)).expect("exit");
        assert_eq!(
            exit,
            HostEvent::Exit { tgid: 42, ts_ns: 5_000, start_ns: 2_000_000_000, status: 3 << 8, comm: "sh".into() }
        );
        let reset = decode(&record(KIND_RESET_RECEIVED, 7, AF_INET, &[127, 0, 0, 1], 40000, &[10, 0, 0, 2], 80));
        assert_eq!(
            reset,
            Ok(HostEvent::Tcp {
                kind: TcpKind::ResetReceived,
                tgid: 7,
                start_ns: 2_000_000_000,
                local: ("127.0.0.1".parse().expect("ip"), 40000),
                remote: ("10.0.0.2".parse().expect("ip"), 80),
            })
        );
        let v6: Ipv6Addr = "::ffff:10.1.2.3".parse().expect("ip");
        let mapped = decode(&record(KIND_RETRANSMIT, 0, AF_INET6, &v6.octets(), 1, &Ipv6Addr::LOCALHOST.octets(), 2));
        let Ok(HostEvent::Tcp { local, remote, .. }) = mapped else { panic!("{mapped:?}") };
        assert_eq!((local.0.to_string(), remote.0.to_string()), ("10.1.2.3".into(), "::1".into()));
        assert_eq!(decode(&[0u8; 10]), Err(DecodeError::Short(10)));
        assert_eq!(decode(&record(9, 0, 0, &[], 0, &[], 0)), Err(DecodeError::Kind(9)));
    }

    #[test]
    fn exits_split_code_and_signal_and_tcp_events_sum_per_connection() {
        let store = loupe_store::Store::new(loupe_store::StoreConfig::default());
        let counters = std::sync::Arc::new(crate::CollectorCounters::default());
        let tables = Tables::register(&store, &HostEvents::table_specs(), counters).expect("register");
        let mut rows = HostRows::new(3, ClockConverter::new());
        let exit = |status| HostEvent::Exit { tgid: 9, ts_ns: 1, start_ns: 1_000_000_000, status, comm: "x".into() };
        rows.add(exit(3 << 8));
        rows.add(exit(9));
        rows.add(exit(0x80 | 11));
        let tcp = |kind, rport| HostEvent::Tcp {
            kind,
            tgid: 0,
            start_ns: 0,
            local: (IpAddr::V4(Ipv4Addr::LOCALHOST), 5000),
            remote: (IpAddr::V4(Ipv4Addr::LOCALHOST), rport),
        };
        rows.add(tcp(TcpKind::Retransmit, 80));
        rows.add(tcp(TcpKind::Retransmit, 80));
        rows.add(tcp(TcpKind::ResetSent, 80));
        rows.add(tcp(TcpKind::ResetReceived, 81));
        assert_eq!(rows.len(), 5);
        rows.push(&tables, 77);
        assert!(rows.is_empty());
        let batches = store.table(PROC_EXIT_EVENTS).expect("table").scan(loupe_store::TimeRange::ALL);
        let exits = loupe_schema::host::ProcExitEventRow::from_batch(&batches[0]);
        let got: Vec<_> = exits.iter().map(|r| (r.upid.as_str(), r.exit_code, r.signal)).collect();
        let upid = Upid::from_start_boottime_ns(3, 9, 1_000_000_000).to_string();
        assert_eq!(got, [(upid.as_str(), 3, 0), (upid.as_str(), 0, 9), (upid.as_str(), 0, 11)]);
        let batches = store.table(TCP_STATS_EVENTS).expect("table").scan(loupe_store::TimeRange::ALL);
        let tcp = loupe_schema::host::TcpStatsEventRow::from_batch(&batches[0]);
        let got: Vec<_> = tcp
            .iter()
            .map(|r| (r.upid.as_str(), r.remote_port, r.retransmits, r.resets_sent, r.resets_received))
            .collect();
        assert_eq!(got, [("3:0:0", 80, 2, 1, 0), ("3:0:0", 81, 0, 0, 1)]);
        assert!(tcp.iter().all(|r| r.time_ns == 77 && r.local_addr == "127.0.0.1"));
    }
}
