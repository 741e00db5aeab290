//! UPID: the cluster-unique process id carried by every row (`upid` column).
//!
//! High 64 bits are `asid << 32 | pid`, low 64 bits the process start time in clock ticks
//! (field 22 of `/proc/<pid>/stat`). The text form is `asid:pid:start_ticks`.

use std::fmt;

/// A cluster-unique process identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Upid {
    /// The agent's short id, assigned by the metadata service (0 on a standalone node).
    pub asid: u32,
    /// The process id (tgid).
    pub pid: u32,
    /// Process start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl Upid {
    /// The 128-bit form.
    pub fn as_u128(&self) -> u128 {
        (u128::from((u64::from(self.asid) << 32) | u64::from(self.pid)) << 64) | u128::from(self.start_ticks)
    }

    /// The UPID for a process whose `start_boottime` (ns since boot, as the kernel keeps it) is
    /// known, e.g. read by a BPF program. Converted to clock ticks as `/proc/<pid>/stat` reports it.
    pub fn from_start_boottime_ns(asid: u32, pid: u32, start_ns: u64) -> Upid {
        Upid { asid, pid, start_ticks: start_ns / (1_000_000_000 / clock_ticks_per_second()) }
    }

    /// Reads the start time of `pid` from procfs; `None` if the process is gone.
    pub fn for_local_pid(asid: u32, pid: u32) -> Option<Upid> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Upid { asid, pid, start_ticks: start_ticks_from_stat(&stat)? })
    }
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/<pid>/stat` times (100 on every Linux in use).
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}

/// Field 22 (starttime) of a `/proc/<pid>/stat` line. The comm field may hold spaces and
/// parentheses, so fields are counted after the last `)`.
fn start_ticks_from_stat(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After the comm come fields 3.. ; starttime is field 22, i.e. index 19 here.
    after.split_whitespace().nth(19)?.parse().ok()
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.asid, self.pid, self.start_ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_time_even_with_odd_comm() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 0 0";
        assert_eq!(start_ticks_from_stat(line), Some(123456));
    }

    #[test]
    fn own_process_has_upid() {
        let u = Upid::for_local_pid(0, std::process::id()).expect("own stat");
        assert!(u.start_ticks > 0);
        assert_eq!(u.to_string(), format!("0:{}:{}", std::process::id(), u.start_ticks));
        assert_eq!((u.as_u128() >> 64) as u32, std::process::id());
    }

    #[test]
    fn boottime_ns_converts_to_the_ticks_procfs_reports() {
        let procfs = Upid::for_local_pid(0, std::process::id()).expect("own stat");
        let ns = procfs.start_ticks * (1_000_000_000 / clock_ticks_per_second());
        assert_eq!(Upid::from_start_boottime_ns(0, procfs.pid, ns + 5), procfs);
    }
}
