//! Clocks: the one wall clock every crate reads (nanoseconds or seconds since the Unix epoch), and converting
//! the kernel's monotonic timestamps to wall-clock nanoseconds.
//!
//! BPF programs stamp events with `bpf_ktime_get_ns()` (`CLOCK_MONOTONIC`); every stored row's
//! `time_` is wall-clock nanoseconds since the Unix epoch, as in Pixie.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Whole seconds since the Unix epoch, now (the unit of token time claims). A clock before 1970 gives 0.
pub fn now_unix_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (the clock `bpf_ktime_get_ns` reads).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// Converts monotonic timestamps to wall-clock ones with an offset sampled once.
///
/// The offset is sampled by reading both clocks back to back and keeping the pair with the
/// smallest gap, so the conversion error is well under a microsecond. Wall-clock steps after
/// construction are deliberately not followed: rows keep a consistent ordering.
#[derive(Debug, Clone, Copy)]
pub struct ClockConverter {
    offset_ns: i64,
}

impl ClockConverter {
    /// Samples the offset between the two clocks now.
    pub fn new() -> Self {
        let mut best: Option<(u64, i64)> = None;
        for _ in 0..5 {
            let m0 = monotonic_ns();
            let wall = now_unix_ns();
            let m1 = monotonic_ns();
            let gap = m1.saturating_sub(m0);
            let offset = wall - (m0 + gap / 2) as i64;
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, offset));
            }
        }
        ClockConverter { offset_ns: best.map_or(0, |(_, o)| o) }
    }

    /// Wall-clock nanoseconds for a monotonic timestamp.
    pub fn to_unix_ns(&self, monotonic_ns: u64) -> i64 {
        (monotonic_ns as i64).saturating_add(self.offset_ns)
    }
}

impl Default for ClockConverter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converted_monotonic_now_is_close_to_wall_now() {
        let c = ClockConverter::new();
        let diff = (c.to_unix_ns(monotonic_ns()) - now_unix_ns()).abs();
        assert!(diff < 5_000_000, "clock conversion off by {diff} ns");
    }
}
