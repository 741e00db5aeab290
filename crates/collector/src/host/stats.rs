//! `process_stats` and `network_stats`: a scan of `/proc` at Pixie's cadence (every second).
//!
//! Owns [`ProcScanner`] (one pass over `/proc/<pid>`: each user process's `stat` and `io`, and
//! each network namespace's `net/dev` read once, through the first process found in it) and
//! [`HostStats`], the [`Source`] that runs it. Must not know the kernel programs or the socket
//! tracer.
//!
//! Kernel threads are left out (no memory or I/O of their own). A process that exits during the
//! scan is skipped. `network_stats` has one row per network namespace, summed over its interfaces
//! except `lo`; `pod_id` is empty on a bare host (no pods) and the namespace's inode is in `netns`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use loupe_common::Upid;
use loupe_schema::TableSpec;
use loupe_schema::host::{NetworkStatsBuilder, ProcessStatsBuilder, network_stats, process_stats};

use crate::source::{Source, Tables};
use loupe_common::procfs;

/// Settings of [`HostStats`].
#[derive(Debug, Clone)]
pub struct HostStatsConfig {
    /// The agent's short id, the high half of every UPID.
    pub asid: u32,
    /// How often `/proc` is scanned (Pixie: every second for both tables).
    pub interval: Duration,
    /// Where procfs is mounted (`/proc`; a host's procfs seen from a container may be elsewhere).
    pub proc_root: PathBuf,
}

impl Default for HostStatsConfig {
    fn default() -> Self {
        HostStatsConfig { asid: 0, interval: Duration::from_secs(1), proc_root: PathBuf::from("/proc") }
    }
}

/// What one scan found, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCounts {
    /// `process_stats` rows.
    pub processes: usize,
    /// `network_stats` rows.
    pub namespaces: usize,
    /// Processes gone before their files were read, or whose files did not parse.
    pub skipped: usize,
}

/// One pass over `/proc`, reusing its buffers from pass to pass.
#[derive(Debug)]
pub struct ProcScanner {
    asid: u32,
    root: PathBuf,
    ns_per_tick: i64,
    page_bytes: i64,
    buf: Vec<u8>,
    path: PathBuf,
    seen_ns: HashSet<u64>,
    /// Processes of the previous scan and this one: a process new to a scan has its namespace looked
    /// up once (a process that moves to another namespace, rare, is counted in its first one), and
    /// its command line reaches `loupe_common::procnames` when first seen or changed.
    known: HashMap<Upid, Known>,
    current: HashMap<Upid, Known>,
}

/// What a scan keeps of a process it has met, to skip rereading what has not changed.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// Inode of its network namespace.
    netns: Option<u64>,
    /// Hash of the `cmdline` file last read (0: unreadable or empty).
    cmdline_hash: u64,
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    if bytes.is_empty() {
        return 0;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish().max(1)
}

impl ProcScanner {
    /// A scanner of the procfs at `root`, naming processes with `asid`.
    pub fn new(asid: u32, root: impl Into<PathBuf>) -> Self {
        // SAFETY: sysconf only reads system constants.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        ProcScanner {
            asid,
            root: root.into(),
            ns_per_tick: if ticks > 0 { 1_000_000_000 / ticks } else { 10_000_000 },
            page_bytes: if page > 0 { page } else { 4096 },
            buf: Vec::with_capacity(4096),
            path: PathBuf::new(),
            seen_ns: HashSet::new(),
            known: HashMap::new(),
            current: HashMap::new(),
        }
    }

    /// Reads `/proc/<pid>/<file>` into the shared buffer; false when the process is gone.
    fn read(&mut self, pid: &str, file: &str) -> bool {
        self.path.clear();
        self.path.push(&self.root);
        self.path.push(pid);
        self.path.push(file);
        self.buf.clear();
        match File::open(&self.path) {
            // procfs files are small; 64 KiB bounds a hostile or broken mount.
            Ok(f) => f.take(64 * 1024).read_to_end(&mut self.buf).is_ok(),
            Err(_) => false,
        }
    }

    /// Scans every process, appending one `process_stats` row per user process and one
    /// `network_stats` row per network namespace, all stamped `time_ns`.
    pub fn scan(
        &mut self,
        time_ns: i64,
        processes: &mut ProcessStatsBuilder,
        networks: &mut NetworkStatsBuilder,
    ) -> ScanCounts {
        let mut counts = ScanCounts::default();
        self.seen_ns.clear();
        let Ok(dir) = std::fs::read_dir(&self.root) else { return counts };
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
            if !self.read(pid, "stat") {
                counts.skipped += 1;
                continue;
            }
            let Some(stat) = procfs::parse_stat(&self.buf) else {
                counts.skipped += 1;
                continue;
            };
            if stat.is_kernel_thread() {
                continue;
            }
            // Not every process lets even root read `io` (a process being torn down); its
            // counters are then 0 rather than the row missing.
            let io =
                if self.read(pid, "io") { procfs::parse_io(&self.buf).unwrap_or_default() } else { Default::default() };
            let upid = Upid { asid: self.asid, pid: stat.pid, start_ticks: stat.start_ticks };
            let upid_text = upid.to_string();
            // The command line is read every scan, not once per process: `exec` keeps the pid and
            // start time (so the UPID) but changes it, and servers such as postgres rewrite their own.
            // Only a change reaches the shared memory of names.
            let cmdline_hash = if self.read(pid, "cmdline") { hash_bytes(&self.buf) } else { 0 };
            let before = self.known.get(&upid).copied();
            if before.map(|k| k.cmdline_hash) != Some(cmdline_hash) && cmdline_hash != 0 {
                let cmdline = String::from_utf8_lossy(&self.buf);
                let args: Vec<&str> = cmdline.split('\0').filter(|a| !a.is_empty()).collect();
                loupe_common::procnames::remember(&upid_text, &args.join(" "));
            }
            let netns = match before {
                Some(known) => known.netns,
                None => self.netns(pid),
            };
            self.current.insert(upid, Known { netns, cmdline_hash });
            processes.time_ns.append_value(time_ns);
            processes.upid.append_value(upid_text);
            processes.major_faults.append_value(as_i64(stat.major_faults));
            processes.minor_faults.append_value(as_i64(stat.minor_faults));
            processes.cpu_utime_ns.append_value(as_i64(stat.utime_ticks).saturating_mul(self.ns_per_tick));
            processes.cpu_ktime_ns.append_value(as_i64(stat.stime_ticks).saturating_mul(self.ns_per_tick));
            processes.num_threads.append_value(as_i64(stat.num_threads));
            processes.vsize_bytes.append_value(as_i64(stat.vsize_bytes));
            processes.rss_bytes.append_value(as_i64(stat.rss_pages).saturating_mul(self.page_bytes));
            processes.rchar_bytes.append_value(as_i64(io.rchar));
            processes.wchar_bytes.append_value(as_i64(io.wchar));
            processes.read_bytes.append_value(as_i64(io.read_bytes));
            processes.write_bytes.append_value(as_i64(io.write_bytes));
            processes.end_row();
            counts.processes += 1;

            if let Some(netns) = netns
                && self.seen_ns.insert(netns)
                && self.read(pid, "net/dev")
            {
                let dev = procfs::parse_net_dev(&self.buf, |name| name != "lo");
                networks.append(&loupe_schema::host::NetworkStatsRow {
                    time_ns,
                    pod_id: String::new(),
                    rx_bytes: as_i64(dev.rx_bytes),
                    rx_packets: as_i64(dev.rx_packets),
                    rx_errors: as_i64(dev.rx_errors),
                    rx_drops: as_i64(dev.rx_drops),
                    tx_bytes: as_i64(dev.tx_bytes),
                    tx_packets: as_i64(dev.tx_packets),
                    tx_errors: as_i64(dev.tx_errors),
                    tx_drops: as_i64(dev.tx_drops),
                    netns: as_i64(netns),
                });
                counts.namespaces += 1;
            }
        }
        std::mem::swap(&mut self.known, &mut self.current);
        self.current.clear();
        counts
    }

    /// The inode of `pid`'s network namespace.
    fn netns(&mut self, pid: &str) -> Option<u64> {
        self.path.clear();
        self.path.push(&self.root);
        self.path.push(pid);
        self.path.push("ns/net");
        let target = std::fs::read_link(&self.path).ok()?;
        procfs::parse_ns_link(target.as_os_str().as_encoded_bytes())
    }

    /// The procfs this scanner reads.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `process_stats` and `network_stats` as a [`Source`].
pub struct HostStats {
    scanner: ProcScanner,
    interval: Duration,
    last_scan: Option<Instant>,
    processes: ProcessStatsBuilder,
    networks: NetworkStatsBuilder,
}

impl HostStats {
    /// A source scanning as `config` says; the first scan runs at the first poll.
    pub fn new(config: HostStatsConfig) -> Self {
        HostStats {
            scanner: ProcScanner::new(config.asid, config.proc_root),
            interval: config.interval,
            last_scan: None,
            processes: ProcessStatsBuilder::new(),
            networks: NetworkStatsBuilder::new(),
        }
    }

    /// The tables it fills.
    pub fn table_specs() -> Vec<TableSpec> {
        vec![process_stats(), network_stats()]
    }

    fn scan_and_push(&mut self, tables: &Tables) {
        self.last_scan = Some(Instant::now());
        let counts = self.scanner.scan(loupe_common::time::now_unix_ns(), &mut self.processes, &mut self.networks);
        tracing::trace!(?counts, "scanned /proc");
        let n = self.processes.len();
        if n > 0 {
            tables.append(loupe_schema::host::PROCESS_STATS, n, self.processes.finish());
        }
        let n = self.networks.len();
        if n > 0 {
            tables.append(loupe_schema::host::NETWORK_STATS, n, self.networks.finish());
        }
    }
}

impl Source for HostStats {
    fn name(&self) -> &'static str {
        "process_stats"
    }

    fn tables(&self) -> Vec<TableSpec> {
        Self::table_specs()
    }

    fn poll(&mut self, tables: &Tables) -> bool {
        if self.last_scan.is_some_and(|t| t.elapsed() < self.interval) {
            return false;
        }
        self.scan_and_push(tables);
        // Not "busy": a scan leaves nothing pending, so the collector may wait after it.
        false
    }

    fn flush(&mut self, _tables: &Tables) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live scan finds this test process with the figures its own `/proc` files give.
    #[test]
    fn a_live_scan_finds_this_process() {
        let mut scanner = ProcScanner::new(7, "/proc");
        let (mut p, mut n) = (ProcessStatsBuilder::new(), NetworkStatsBuilder::new());
        let counts = scanner.scan(123, &mut p, &mut n);
        assert!(counts.processes >= 1 && counts.namespaces >= 1, "{counts:?}");
        let rows = loupe_schema::host::ProcessStatsRow::from_batch(&p.finish().expect("batch"));
        assert_eq!(rows.len(), counts.processes);
        let me = Upid::for_local_pid(7, std::process::id()).expect("upid").to_string();
        let row = rows.iter().find(|r| r.upid == me).expect("own row");
        assert_eq!(row.time_ns, 123);
        assert!(row.rss_bytes > 0 && row.vsize_bytes >= row.rss_bytes && row.num_threads >= 1);
        let status = std::fs::read("/proc/self/status").expect("status");
        let vm_rss = procfs::parse_status_rss(&status).expect("VmRSS") as i64;
        // Both come from the same kernel counters; the test's threads may touch a few pages in between.
        assert!((row.rss_bytes - vm_rss).abs() < 8 << 20, "rss {} vs VmRSS {vm_rss}", row.rss_bytes);
        assert!(row.rchar_bytes > 0);
        let cmdline = loupe_common::procnames::recall(&me).expect("own command line remembered");
        assert!(cmdline.contains("loupe_collector"), "{cmdline}");
        let nets = loupe_schema::host::NetworkStatsRow::from_batch(&n.finish().expect("batch"));
        let own_ns =
            procfs::parse_ns_link(std::fs::read_link("/proc/self/ns/net").expect("ns").as_os_str().as_encoded_bytes())
                .expect("inode") as i64;
        let net = nets.iter().find(|r| r.netns == own_ns).expect("own namespace");
        assert_eq!(net.pod_id, "");
        let dev = procfs::parse_net_dev(&std::fs::read("/proc/self/net/dev").expect("dev"), |n| n != "lo");
        // Counters only grow between the scan and this read.
        assert!(net.rx_bytes <= dev.rx_bytes as i64 && net.tx_packets <= dev.tx_packets as i64);
        // A second scan, which looks namespaces up only for processes new to it, finds the same one.
        let again = scanner.scan(124, &mut p, &mut n);
        assert!(again.processes >= 1, "{again:?}");
        let nets = loupe_schema::host::NetworkStatsRow::from_batch(&n.finish().expect("batch"));
        assert!(nets.iter().any(|r| r.netns == own_ns && r.time_ns == 124), "{nets:?}");
    }

    /// A procfs that is not there, or holds junk, yields no rows and no panic.
    #[test]
    fn a_missing_or_junk_procfs_yields_nothing() {
        let dir = std::env::temp_dir().join(format!("loupe-procfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("12")).expect("mkdir");
        std::fs::write(dir.join("12/stat"), b"12 (junk").expect("write");
        std::fs::create_dir_all(dir.join("self")).expect("mkdir");
        let (mut p, mut n) = (ProcessStatsBuilder::new(), NetworkStatsBuilder::new());
        let counts = ProcScanner::new(0, &dir).scan(1, &mut p, &mut n);
        assert_eq!(counts, ScanCounts { processes: 0, namespaces: 0, skipped: 1 });
        let counts = ProcScanner::new(0, dir.join("absent")).scan(1, &mut p, &mut n);
        assert_eq!(counts, ScanCounts::default());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `exec` keeps a process's UPID but not its command line: the next scan remembers the new one.
    #[test]
    fn a_command_line_changed_by_exec_is_remembered_anew() {
        let dir = std::env::temp_dir().join(format!("loupe-procfs-exec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("4242")).expect("mkdir");
        // Fields after the command: state, then 19 more up to the start time (field 22) = 777.
        let stat = |comm: &str| {
            format!("4242 ({comm}) S 1 4242 4242 0 -1 0 10 0 0 0 5 3 0 0 20 0 1 0 777 1000000 100 0 0 0\n")
        };
        std::fs::write(dir.join("4242/stat"), stat("bash")).expect("stat");
        std::fs::write(dir.join("4242/cmdline"), b"bash\0/usr/bin/shim\0python3\0").expect("cmdline");
        let mut scanner = ProcScanner::new(9, &dir);
        let (mut p, mut n) = (ProcessStatsBuilder::new(), NetworkStatsBuilder::new());
        assert_eq!(scanner.scan(1, &mut p, &mut n).processes, 1);
        let upid = Upid { asid: 9, pid: 4242, start_ticks: 777 }.to_string();
        assert_eq!(loupe_common::procnames::recall(&upid).as_deref(), Some("bash /usr/bin/shim python3"));
        std::fs::write(dir.join("4242/stat"), stat("python3")).expect("stat");
        std::fs::write(dir.join("4242/cmdline"), b"/usr/bin/python3\0-c\0pass\0").expect("cmdline");
        assert_eq!(scanner.scan(2, &mut p, &mut n).processes, 1);
        assert_eq!(loupe_common::procnames::recall(&upid).as_deref(), Some("/usr/bin/python3 -c pass"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
