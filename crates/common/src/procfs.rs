//! Parsers for the `/proc` files the host tables read: `/proc/<pid>/stat`, `/proc/<pid>/io` and
//! `/proc/<pid>/net/dev`.
//!
//! Owns turning their text into numbers: bytes in, plain structs out, no I/O, so that recorded
//! file contents test them and the fuzz target (`fuzz/fuzz_targets/procfs.rs`) feeds them
//! arbitrary bytes. Here rather than in the collector (which reads the files) so that the fuzz
//! workspace builds them without the collector's dependencies. A process's files are written by the kernel, but its command name (inside
//! `stat`) is chosen by the process, and a file read while the process exits may be cut short:
//! every parser returns `None` (or skips the line) on anything it does not expect, never panics.

/// The fields of `/proc/<pid>/stat` that `process_stats` and UPIDs need (man 5 proc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 1: the process id.
    pub pid: u32,
    /// Field 9: kernel flags (`PF_*`); [`ProcStat::is_kernel_thread`] reads `PF_KTHREAD`.
    pub flags: u64,
    /// Field 10: minor faults (no disk access).
    pub minor_faults: u64,
    /// Field 12: major faults (a page read from disk).
    pub major_faults: u64,
    /// Field 14: user CPU time, in clock ticks.
    pub utime_ticks: u64,
    /// Field 15: kernel CPU time, in clock ticks.
    pub stime_ticks: u64,
    /// Field 20: threads.
    pub num_threads: u64,
    /// Field 22: start time in clock ticks since boot (the UPID's low half).
    pub start_ticks: u64,
    /// Field 23: virtual memory size in bytes.
    pub vsize_bytes: u64,
    /// Field 24: resident set size in pages.
    pub rss_pages: u64,
}

/// `PF_KTHREAD` in `include/linux/sched.h`.
const PF_KTHREAD: u64 = 0x0020_0000;

impl ProcStat {
    /// True for kernel threads, which have no memory or I/O of their own to report.
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Parses one `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so the fields are counted after the last `)`.
pub fn parse_stat(bytes: &[u8]) -> Option<ProcStat> {
    let open = bytes.iter().position(|&b| b == b'(')?;
    let close = bytes.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = std::str::from_utf8(&bytes[..open]).ok()?.trim().parse().ok()?;
    let rest = std::str::from_utf8(&bytes[close + 1..]).ok()?;
    // Field 3 (state) is index 0 here, so field N is index N - 3.
    let mut fields = rest.split_ascii_whitespace();
    let mut field = |n: usize, after: usize| -> Option<u64> { fields.nth(n - after - 1)?.parse().ok() };
    // Each call consumes up to and including the field asked for; `after` is the last one consumed.
    let flags = field(9, 2)?;
    let minor_faults = field(10, 9)?;
    let major_faults = field(12, 10)?;
    let utime_ticks = field(14, 12)?;
    let stime_ticks = field(15, 14)?;
    let num_threads = field(20, 15)?;
    let start_ticks = field(22, 20)?;
    let vsize_bytes = field(23, 22)?;
    let rss_pages = field(24, 23)?;
    Some(ProcStat {
        pid,
        flags,
        minor_faults,
        major_faults,
        utime_ticks,
        stime_ticks,
        num_threads,
        start_ticks,
        vsize_bytes,
        rss_pages,
    })
}

/// The byte counters of `/proc/<pid>/io`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcIo {
    /// Bytes read by syscalls (`rchar`), from storage or not.
    pub rchar: u64,
    /// Bytes written by syscalls (`wchar`).
    pub wchar: u64,
    /// Bytes fetched from storage (`read_bytes`).
    pub read_bytes: u64,
    /// Bytes sent to storage (`write_bytes`).
    pub write_bytes: u64,
}

/// Parses `/proc/<pid>/io` (`key: value` lines); keys it does not know are skipped and missing
/// ones stay 0. `None` when no known key was found (an empty read: the process exited).
pub fn parse_io(bytes: &[u8]) -> Option<ProcIo> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut io = ProcIo::default();
    let mut found = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let Ok(value) = value.trim().parse::<u64>() else { continue };
        let slot = match key.trim() {
            "rchar" => &mut io.rchar,
            "wchar" => &mut io.wchar,
            "read_bytes" => &mut io.read_bytes,
            "write_bytes" => &mut io.write_bytes,
            _ => continue,
        };
        *slot = value;
        found = true;
    }
    found.then_some(io)
}

/// Interface counters of one network namespace (`/proc/<pid>/net/dev`, summed over interfaces).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetDev {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_drops: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Packets dropped on send.
    pub tx_drops: u64,
}

impl NetDev {
    fn add(&mut self, other: &NetDev) {
        self.rx_bytes = self.rx_bytes.saturating_add(other.rx_bytes);
        self.rx_packets = self.rx_packets.saturating_add(other.rx_packets);
        self.rx_errors = self.rx_errors.saturating_add(other.rx_errors);
        self.rx_drops = self.rx_drops.saturating_add(other.rx_drops);
        self.tx_bytes = self.tx_bytes.saturating_add(other.tx_bytes);
        self.tx_packets = self.tx_packets.saturating_add(other.tx_packets);
        self.tx_errors = self.tx_errors.saturating_add(other.tx_errors);
        self.tx_drops = self.tx_drops.saturating_add(other.tx_drops);
    }
}

/// Parses `/proc/<pid>/net/dev` and sums the interfaces for which `counted(name)` holds (the
/// collector leaves out `lo`: traffic that never leaves the namespace). The two header lines and
/// any line that is not `name: 16 numbers` are skipped.
pub fn parse_net_dev(bytes: &[u8], counted: impl Fn(&str) -> bool) -> NetDev {
    let mut total = NetDev::default();
    let Ok(text) = std::str::from_utf8(bytes) else { return total };
    for line in text.lines() {
        let Some((name, counters)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.is_empty() || name.contains(['|', ' ']) || !counted(name) {
            continue;
        }
        let mut values = [0u64; 16];
        let mut n = 0;
        for (slot, value) in values.iter_mut().zip(counters.split_ascii_whitespace()) {
            let Ok(value) = value.parse() else { break };
            *slot = value;
            n += 1;
        }
        if n < values.len() {
            continue;
        }
        // Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs drop ...
        total.add(&NetDev {
            rx_bytes: values[0],
            rx_packets: values[1],
            rx_errors: values[2],
            rx_drops: values[3],
            tx_bytes: values[8],
            tx_packets: values[9],
            tx_errors: values[10],
            tx_drops: values[11],
        });
    }
    total
}

/// The namespace inode of a `/proc/<pid>/ns/net` link target (`net:[4026531840]`).
pub fn parse_ns_link(target: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(target).ok()?;
    text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The `VmRSS:` line of `/proc/<pid>/status`, in bytes (absent for kernel threads).
pub fn parse_status_rss(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from a Debian 12 host (a python3 holding 200 MiB), 6.18 kernel.
    const STAT: &[u8] = b"4242 (python3) S 4200 4242 4200 34816 4242 4194304 51515 0 3 0 17 42 0 0 20 0 1 0 \
        987654 230055936 52087 18446744073709551615 4194304 7052088 140731 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0 \
        9300000 9330000 9330000 140731 140731 140731 140731 0\n";

    #[test]
    fn stat_fields_land_where_man_5_proc_says() {
        let s = parse_stat(STAT).expect("stat");
        assert_eq!(
            s,
            ProcStat {
                pid: 4242,
                flags: 4194304,
                minor_faults: 51515,
                major_faults: 3,
                utime_ticks: 17,
                stime_ticks: 42,
                num_threads: 1,
                start_ticks: 987654,
                vsize_bytes: 230055936,
                rss_pages: 52087,
            }
        );
        assert!(!s.is_kernel_thread());
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_fields() {
        let line = b"77 (a) b (c)) R 1 77 77 0 -1 2097216 5 0 6 0 7 8 0 0 20 0 3 0 99 0 0 18446744073709551615\n";
        let s = parse_stat(line).expect("stat");
        assert_eq!((s.pid, s.minor_faults, s.major_faults, s.utime_ticks, s.stime_ticks), (77, 5, 6, 7, 8));
        assert_eq!((s.num_threads, s.start_ticks, s.vsize_bytes, s.rss_pages), (3, 99, 0, 0));
        assert!(s.is_kernel_thread());
    }

    #[test]
    fn cut_or_garbled_stat_is_none() {
        for bad in [&b""[..], b"12", b"12 (x", b"x (y) S 1", b") 1 (", &STAT[..60], b"12 (x) S a b c d e f g h i"] {
            assert_eq!(parse_stat(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn io_counters() {
        let io = b"rchar: 6976\nwchar: 12\nsyscr: 10\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 8192\n\
                   cancelled_write_bytes: 0\n";
        assert_eq!(parse_io(io), Some(ProcIo { rchar: 6976, wchar: 12, read_bytes: 4096, write_bytes: 8192 }));
        assert_eq!(parse_io(b""), None);
        assert_eq!(parse_io(b"rchar: x\n"), None);
    }

    const NET_DEV: &[u8] = b"Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 2497144126 8020391    0    0    0     0          0         0 2497144126 8020391    0    0    0     0       0          0
  eth0: 636006501   26890    1    2    0     0          0         0  1883314   20917    3    4    0     0       0          0
  eth1:       10       1    0    0    0     0          0         0        20       2    0    0    0     0       0          0
";

    #[test]
    fn net_dev_sums_every_interface_but_the_ones_left_out() {
        let got = parse_net_dev(NET_DEV, |name| name != "lo");
        assert_eq!(
            got,
            NetDev {
                rx_bytes: 636006511,
                rx_packets: 26891,
                rx_errors: 1,
                rx_drops: 2,
                tx_bytes: 1883334,
                tx_packets: 20919,
                tx_errors: 3,
                tx_drops: 4,
            }
        );
        assert_eq!(parse_net_dev(NET_DEV, |_| true).rx_packets, 8020391 + 26891);
        // A cut line counts nothing rather than half an interface.
        assert_eq!(parse_net_dev(&NET_DEV[..NET_DEV.len() - 30], |n| n == "eth1"), NetDev::default());
    }

    #[test]
    fn links_and_status() {
        assert_eq!(parse_ns_link(b"net:[4026531840]"), Some(4026531840));
        assert_eq!(parse_ns_link(b"mnt:[4026531840]"), None);
        assert_eq!(parse_status_rss(b"Name:\tx\nVmRSS:\t  208348 kB\nThreads:\t1\n"), Some(208348 * 1024));
        assert_eq!(parse_status_rss(b"Name:\tkthreadd\n"), None);
    }

    /// The live host: this test's own process parses, and its figures agree with `status`.
    #[test]
    fn live_proc_self() {
        let pid = std::process::id();
        let stat = parse_stat(&std::fs::read(format!("/proc/{pid}/stat")).expect("stat")).expect("parses");
        assert_eq!(stat.pid, pid);
        assert!(stat.num_threads >= 1 && stat.vsize_bytes > 0 && stat.rss_pages > 0 && stat.start_ticks > 0);
        let upid = crate::Upid::for_local_pid(0, pid).expect("upid");
        assert_eq!(stat.start_ticks, upid.start_ticks);
        let io = parse_io(&std::fs::read("/proc/self/io").expect("io")).expect("parses");
        assert!(io.rchar > 0, "this process has read its own files");
        let dev = std::fs::read("/proc/self/net/dev").expect("net/dev");
        assert!(parse_net_dev(&dev, |_| true).rx_packets > 0 || dev.windows(3).any(|w| w == b"lo:"));
        let ns = std::fs::read_link("/proc/self/ns/net").expect("ns link");
        assert!(parse_ns_link(ns.as_os_str().as_encoded_bytes()).is_some());
    }
}
