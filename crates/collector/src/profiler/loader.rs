//! Loads the profiler's perf_event program and reads what it collected.
//!
//! Owns the user-space half of `loupe_bpf::PROFILER_OBJ`: load-time globals, one software CPU clock
//! perf event per online CPU with the program attached, the window flip, and reading (then clearing) a
//! window's stack maps, counts and sample records. Must not unwind or symbolize (that is `unwind` and
//! `symbolize`).

use std::os::fd::AsRawFd;

use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError, PerCpuArray, RingBuf, StackTraceMap};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{PerfEvent, ProgramError};
use aya::{Ebpf, EbpfError, EbpfLoader};
use tracing::warn;

use crate::loader::ProbeStatus;

/// Bytes of a sample record before its copied stack (`LOUPE_PROFILE_HEADER` in profiler.bpf.c).
pub const SAMPLE_HEADER: usize = 48;
/// Most user stack bytes one sample can carry (`LOUPE_PROFILE_STACK_MAX`).
pub const MAX_STACK_COPY: u32 = 32768;
/// Smallest stack copy the kernel tries (below it, it copies nothing).
pub const MIN_STACK_COPY: u32 = 512;

const PROGRAM: &str = "loupe_profile";
const STAT_LEN: usize = 8;

/// Why the profiler could not start.
#[derive(thiserror::Error, Debug)]
pub enum ProfilerLoadError {
    /// The configuration is unusable.
    #[error("invalid profiler config: {0}")]
    InvalidConfig(String),
    /// The object could not be parsed or its maps created.
    #[error("failed to load the profiler object")]
    Object(#[source] EbpfError),
    /// The object lacks a map or program the loader needs (object and loader out of sync).
    #[error("the profiler object has no `{0}`")]
    Missing(&'static str),
    /// A map could not be opened with the expected type.
    #[error("failed to open the profiler's `{name}` map")]
    Map {
        /// The map's name.
        name: &'static str,
        /// The underlying error.
        #[source]
        source: MapError,
    },
    /// The program did not load (the verifier log is in the source) or attach.
    #[error("the profiler program did not load or attach")]
    Program(#[source] ProgramError),
    /// The online CPUs could not be read.
    #[error("failed to read the online CPUs from {0}")]
    Cpus(&'static str, #[source] std::io::Error),
}

/// Load-time settings of the kernel side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilerLoadConfig {
    /// Samples per second on each CPU.
    pub frequency_hz: u64,
    /// User stack bytes copied per sample for unwinding in user space; 0 counts frame-pointer stacks in
    /// the kernel instead.
    pub copy_stack_bytes: u32,
    /// A process never sampled (0: none).
    pub exclude_tgid: u32,
    /// If non-zero, the only process sampled.
    pub only_tgid: u32,
    /// Ring buffer bytes (a power of two of at least a page); used only when stacks are copied.
    pub ring_bytes: u32,
}

/// The kernel's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelProfileStats {
    /// Samples taken (idle CPUs excluded).
    pub samples: u64,
    /// Sample records lost to a full ring buffer.
    pub ring_full: u64,
    /// Samples whose user stack could not be read at all.
    pub copy_failed: u64,
    /// Samples lost to a full counts map.
    pub counts_full: u64,
    /// User stacks the kernel could not record (stack map full, or none).
    pub user_stack_errors: u64,
    /// Kernel stacks the kernel could not record.
    pub kernel_stack_errors: u64,
}

/// The `counts_<w>` key (`struct loupe_profile_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountKey {
    /// The sampled process.
    pub tgid: u32,
    /// Frame-pointer user stack id, negative if none.
    pub user_stack_id: i32,
    /// Kernel stack id, negative if none.
    pub kernel_stack_id: i32,
    pad: u32,
}

// SAFETY: `CountKey` is `repr(C)`, made of integers only, with no implicit padding.
unsafe impl aya::Pod for CountKey {}

/// One ring-buffer sample: registers and the user stack bytes copied at `sp`.
#[derive(Debug, PartialEq, Eq)]
pub struct Sample<'a> {
    /// The sampled process.
    pub tgid: u32,
    /// The sampled thread.
    pub pid: u32,
    /// Kernel stack id in the sample's window, negative if none.
    pub kernel_stack_id: i32,
    /// Frame-pointer user stack id in the sample's window, negative if none.
    pub user_stack_id: i32,
    /// User registers.
    pub ip: u64,
    /// User stack pointer.
    pub sp: u64,
    /// User frame pointer (rbp).
    pub bp: u64,
    /// The window whose stack map holds the ids.
    pub window: u32,
    /// User stack bytes from `sp` upward.
    pub stack: &'a [u8],
}

impl<'a> Sample<'a> {
    /// Decodes a ring record; `None` if it is shorter than its header or its stack length.
    pub fn decode(record: &'a [u8]) -> Option<Sample<'a>> {
        let u32_at = |o: usize| record.get(o..o + 4).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes);
        let u64_at = |o: usize| record.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes);
        let stack_len = u32_at(44)? as usize;
        let stack = record.get(SAMPLE_HEADER..SAMPLE_HEADER.checked_add(stack_len)?)?;
        Some(Sample {
            tgid: u32_at(0)?,
            pid: u32_at(4)?,
            kernel_stack_id: u32_at(8)? as i32,
            user_stack_id: u32_at(12)? as i32,
            ip: u64_at(16)?,
            sp: u64_at(24)?,
            bp: u64_at(32)?,
            window: u32_at(40)?,
            stack,
        })
    }
}

/// The loaded profiler: perf events attached on every online CPU. Detaches when dropped.
pub struct ProfilerProgram {
    /// Owns the program and its links; dropping it detaches.
    _ebpf: Ebpf,
    control: Array<MapData, u32>,
    stacks: [StackTraceMap<MapData>; 2],
    counts: [BpfHashMap<MapData, CountKey, u64>; 2],
    ring: RingBuf<MapData>,
    stats: PerCpuArray<MapData, [u64; STAT_LEN]>,
    window: u32,
    probes: Vec<ProbeStatus>,
}

impl std::fmt::Debug for ProfilerProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilerProgram").field("window", &self.window).finish_non_exhaustive()
    }
}

fn take<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    open: impl FnOnce(aya::maps::Map) -> Result<T, MapError>,
) -> Result<T, ProfilerLoadError> {
    let map = ebpf.take_map(name).ok_or(ProfilerLoadError::Missing(name))?;
    open(map).map_err(|source| ProfilerLoadError::Map { name, source })
}

impl ProfilerProgram {
    /// Loads the program and attaches a CPU-clock perf event at `frequency_hz` on every online CPU.
    /// A CPU whose event fails is reported in [`ProfilerProgram::probes`]; the error is returned only
    /// if none attached.
    pub fn load(config: &ProfilerLoadConfig) -> Result<ProfilerProgram, ProfilerLoadError> {
        if config.frequency_hz == 0 || config.frequency_hz > 10_000 {
            return Err(ProfilerLoadError::InvalidConfig(format!(
                "frequency must be 1..=10000 Hz, got {}",
                config.frequency_hz
            )));
        }
        if config.copy_stack_bytes > MAX_STACK_COPY {
            return Err(ProfilerLoadError::InvalidConfig(format!(
                "at most {MAX_STACK_COPY} stack bytes per sample, got {}",
                config.copy_stack_bytes
            )));
        }
        if !config.ring_bytes.is_power_of_two() || config.ring_bytes < 4096 {
            return Err(ProfilerLoadError::InvalidConfig(format!(
                "ring_bytes must be a power of two of at least 4096, got {}",
                config.ring_bytes
            )));
        }
        let cpus = aya::util::nr_cpus().map_err(|(path, e)| ProfilerLoadError::Cpus(path, e))?;
        let online = aya::util::online_cpus().map_err(|(path, e)| ProfilerLoadError::Cpus(path, e))?;
        // Copying 0 bytes would send empty records; below the smallest try the kernel copies nothing anyway.
        let copy = if config.copy_stack_bytes > 0 { config.copy_stack_bytes.max(MIN_STACK_COPY) } else { 0 };
        let mut ebpf = EbpfLoader::new()
            .override_global("loupe_profile_exclude_tgid", &config.exclude_tgid, true)
            .override_global("loupe_profile_only_tgid", &config.only_tgid, true)
            .override_global("loupe_copy_stack", &copy, true)
            .map_max_entries("scratch", u32::try_from(cpus).unwrap_or(u32::MAX).max(1))
            .map_max_entries("samples", config.ring_bytes)
            .load(loupe_bpf::PROFILER_OBJ)
            .map_err(ProfilerLoadError::Object)?;

        let program: &mut PerfEvent = ebpf
            .program_mut(PROGRAM)
            .ok_or(ProfilerLoadError::Missing(PROGRAM))?
            .try_into()
            .map_err(ProfilerLoadError::Program)?;
        program.load().map_err(ProfilerLoadError::Program)?;
        let mut probes = Vec::with_capacity(online.len());
        let mut first_error = None;
        for cpu in online {
            let name = format!("perf_event/cpu_clock/cpu{cpu}");
            let attached = program.attach(
                PerfEventConfig::Software(SoftwareEvent::CpuClock),
                PerfEventScope::AllProcessesOneCpu { cpu },
                SamplePolicy::Frequency(config.frequency_hz),
                false,
            );
            match attached {
                Ok(_) => probes.push(ProbeStatus { name, attached: true, error: None }),
                Err(e) => {
                    warn!(cpu, error = %e, "profiler perf event not attached");
                    probes.push(ProbeStatus { name, attached: false, error: Some(e.to_string()) });
                    first_error.get_or_insert(e);
                }
            }
        }
        if !probes.iter().any(|p| p.attached) {
            return Err(ProfilerLoadError::Program(first_error.unwrap_or_else(|| ProgramError::UnexpectedProgramType)));
        }

        let control = take(&mut ebpf, "control", Array::try_from)?;
        let stacks = [
            take(&mut ebpf, "stacks_0", StackTraceMap::try_from)?,
            take(&mut ebpf, "stacks_1", StackTraceMap::try_from)?,
        ];
        let counts =
            [take(&mut ebpf, "counts_0", BpfHashMap::try_from)?, take(&mut ebpf, "counts_1", BpfHashMap::try_from)?];
        let ring = take(&mut ebpf, "samples", RingBuf::try_from)?;
        let stats = take(&mut ebpf, "profile_stats", PerCpuArray::try_from)?;
        Ok(ProfilerProgram { _ebpf: ebpf, control, stacks, counts, ring, stats, window: 0, probes })
    }

    /// One entry per online CPU: whether its perf event attached.
    pub fn probes(&self) -> &[ProbeStatus] {
        &self.probes
    }

    /// The window the kernel writes now.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Makes the kernel write the other window's maps; returns the window it wrote until now, whose
    /// maps are read and then cleared with [`ProfilerProgram::clear`].
    pub fn flip(&mut self) -> Result<u32, MapError> {
        let old = self.window;
        self.control.set(0, old ^ 1, 0)?;
        self.window = old ^ 1;
        Ok(old)
    }

    /// The frames (leaf first) of `id` in `window`'s stack map; empty if unknown.
    pub fn stack(&self, window: u32, id: i32) -> Vec<u64> {
        let Ok(id) = u32::try_from(id) else { return Vec::new() };
        match self.stacks[(window & 1) as usize].get(&id, 0) {
            Ok(trace) => trace.frames().iter().map(|f| f.ip).filter(|&ip| ip != 0).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The frame-pointer counts of `window`: (key, samples).
    pub fn counts(&self, window: u32) -> Vec<(CountKey, u64)> {
        self.counts[(window & 1) as usize].iter().filter_map(Result::ok).collect()
    }

    /// Empties `window`'s counts and stack map (call after reading them, once the kernel writes the other).
    pub fn clear(&mut self, window: u32) {
        let w = (window & 1) as usize;
        let keys: Vec<CountKey> = self.counts[w].keys().filter_map(Result::ok).collect();
        for key in keys {
            let _ = self.counts[w].remove(&key);
        }
        let ids: Vec<u32> = self.stacks[w].stack_ids().filter_map(Result::ok).collect();
        for id in ids {
            let _ = self.stacks[w].remove(&id);
        }
    }

    /// Hands each waiting sample record to `handle`, at most `max` of them; returns how many.
    pub fn drain(&mut self, max: usize, mut handle: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max {
            let Some(record) = self.ring.next() else { break };
            handle(&record);
            n += 1;
        }
        n
    }

    /// Sleeps until the kernel wakes the reader or `timeout` passes.
    pub fn wait(&self, timeout: std::time::Duration) {
        let mut fd = libc::pollfd { fd: self.ring.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fd` is one valid pollfd for the ring buffer's open map fd, and nfds is 1. An error
        // (EINTR) only ends the wait early, which the caller's loop tolerates.
        unsafe { libc::poll(&mut fd, 1, ms) };
    }

    /// The kernel's counters, summed over CPUs.
    pub fn stats(&self) -> KernelProfileStats {
        let mut sum = [0u64; STAT_LEN];
        if let Ok(per_cpu) = self.stats.get(&0, 0) {
            for counters in per_cpu.iter() {
                for (total, value) in sum.iter_mut().zip(counters.iter()) {
                    *total = total.wrapping_add(*value);
                }
            }
        }
        KernelProfileStats {
            samples: sum[0],
            ring_full: sum[1],
            copy_failed: sum[2],
            counts_full: sum[3],
            user_stack_errors: sum[4],
            kernel_stack_errors: sum[5],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_records_decode_and_short_ones_do_not() {
        let mut record = vec![0u8; SAMPLE_HEADER + 16];
        record[0..4].copy_from_slice(&7u32.to_ne_bytes());
        record[4..8].copy_from_slice(&8u32.to_ne_bytes());
        record[8..12].copy_from_slice(&(-14i32).to_ne_bytes());
        record[12..16].copy_from_slice(&3i32.to_ne_bytes());
        record[16..24].copy_from_slice(&0x1000u64.to_ne_bytes());
        record[24..32].copy_from_slice(&0x7ff0u64.to_ne_bytes());
        record[32..40].copy_from_slice(&0x7ff8u64.to_ne_bytes());
        record[40..44].copy_from_slice(&1u32.to_ne_bytes());
        record[44..48].copy_from_slice(&16u32.to_ne_bytes());
        let s = Sample::decode(&record).expect("decodes");
        assert_eq!((s.tgid, s.pid, s.kernel_stack_id, s.user_stack_id), (7, 8, -14, 3));
        assert_eq!((s.ip, s.sp, s.bp, s.window, s.stack.len()), (0x1000, 0x7ff0, 0x7ff8, 1, 16));
        // A stack length past the record's end, and a record shorter than its header.
        record[44..48].copy_from_slice(&17u32.to_ne_bytes());
        assert_eq!(Sample::decode(&record), None);
        assert_eq!(Sample::decode(&record[..20]), None);
    }
}
