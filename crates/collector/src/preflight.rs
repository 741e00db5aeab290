//! Checks (and where it safely can, fixes) what the socket tracer needs before loading.
//!
//! Owns the environment checks: privileges, kernel BTF, tracefs with syscall tracepoints
//! (mounting tracefs when it is not), and the memlock rlimit. Every error is one line naming
//! what is missing and how to fix it. Must not load BPF programs (that is `loader`).

use std::path::{Path, PathBuf};

use tracing::{debug, info};

/// `CAP_PERFMON` bit in `CapEff`.
const CAP_PERFMON: u32 = 38;
/// `CAP_BPF` bit in `CapEff`.
const CAP_BPF: u32 = 39;

const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// What the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// `uname -r`.
    pub kernel_release: String,
    /// `/sys/kernel/btf/vmlinux` exists (always true when `check` succeeds).
    pub btf: bool,
    /// The tracefs mount in use.
    pub tracefs: PathBuf,
    /// `check` mounted tracefs itself.
    pub mounted_tracefs: bool,
}

/// Why the agent cannot trace on this machine.
#[derive(thiserror::Error, Debug)]
pub enum PreflightError {
    /// Neither root nor holding CAP_BPF and CAP_PERFMON.
    #[error("loupe's agent must run as root or with CAP_BPF and CAP_PERFMON (effective uid {euid})")]
    NotRoot {
        /// The effective uid.
        euid: u32,
    },
    /// The kernel exposes no BTF, so CO-RE relocations cannot be resolved.
    #[error("kernel BTF is missing ({BTF_PATH} not found): use a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    NoBtf,
    /// tracefs is not mounted and mounting it failed.
    #[error("tracefs is not available ({reason}): run `mount -t tracefs tracefs {TRACEFS}` as root")]
    NoTracefs {
        /// What went wrong.
        reason: String,
    },
    /// tracefs is mounted but has no syscall tracepoints.
    #[error("syscall tracepoints are missing ({path} not found): use a kernel built with CONFIG_FTRACE_SYSCALLS=y")]
    NoSyscallTracepoints {
        /// The directory that should exist.
        path: PathBuf,
    },
}

/// Runs every check, mounting tracefs if needed and raising `RLIMIT_MEMLOCK`.
///
/// Call once before `Tracer::load`: aya remembers where tracefs is the first time it looks.
pub fn check() -> Result<Environment, PreflightError> {
    check_privileges()?;
    raise_memlock();
    if !Path::new(BTF_PATH).exists() {
        return Err(PreflightError::NoBtf);
    }
    let (tracefs, mounted_tracefs) = find_or_mount_tracefs()?;
    let syscalls = tracefs.join("events/syscalls");
    if !syscalls.is_dir() {
        return Err(PreflightError::NoSyscallTracepoints { path: syscalls });
    }
    Ok(Environment { kernel_release: kernel_release(), btf: true, tracefs, mounted_tracefs })
}

fn check_privileges() -> Result<(), PreflightError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return Ok(());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match cap_eff(&status) {
        Some(caps) if has_cap(caps, CAP_BPF) && has_cap(caps, CAP_PERFMON) => Ok(()),
        _ => Err(PreflightError::NotRoot { euid }),
    }
}

/// The `CapEff` mask from the text of `/proc/<pid>/status`.
fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

fn has_cap(mask: u64, cap: u32) -> bool {
    mask & (1u64 << cap) != 0
}

/// Raises `RLIMIT_MEMLOCK` to infinity: needed by kernels before 5.11 (which charge BPF maps
/// to it), harmless after. Failure is not fatal.
fn raise_memlock() {
    let limit = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) };
    if ret != 0 {
        debug!(error = %std::io::Error::last_os_error(), "could not raise RLIMIT_MEMLOCK");
    }
}

/// A tracefs mount is usable when its directory is non-empty (it exists empty when unmounted).
fn tracefs_mounted(path: &Path) -> bool {
    std::fs::read_dir(path).map(|mut entries| entries.next().is_some()).unwrap_or(false)
}

fn find_or_mount_tracefs() -> Result<(PathBuf, bool), PreflightError> {
    for candidate in [TRACEFS, DEBUGFS_TRACING] {
        if tracefs_mounted(Path::new(candidate)) {
            return Ok((PathBuf::from(candidate), false));
        }
    }
    if !Path::new(TRACEFS).is_dir() {
        return Err(PreflightError::NoTracefs { reason: format!("{TRACEFS} does not exist") });
    }
    // SAFETY: all pointers are NUL-terminated string literals that outlive the call; a null
    // `data` is allowed for tracefs.
    let ret = unsafe {
        libc::mount(c"tracefs".as_ptr(), c"/sys/kernel/tracing".as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null())
    };
    if ret != 0 {
        return Err(PreflightError::NoTracefs {
            reason: format!("mounting it failed: {}", std::io::Error::last_os_error()),
        });
    }
    info!(path = TRACEFS, "mounted tracefs");
    Ok((PathBuf::from(TRACEFS), true))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000000c000000000\n";
        let caps = cap_eff(status).expect("CapEff present");
        assert!(has_cap(caps, CAP_BPF));
        assert!(has_cap(caps, CAP_PERFMON));
        assert!(!has_cap(caps, 21));
        assert_eq!(cap_eff("Name:\tx\n"), None);
    }

    #[test]
    fn errors_are_one_line() {
        let errors = [
            PreflightError::NotRoot { euid: 1000 },
            PreflightError::NoBtf,
            PreflightError::NoTracefs { reason: "x".into() },
            PreflightError::NoSyscallTracepoints { path: "/sys/kernel/tracing/events/syscalls".into() },
        ];
        for error in errors {
            let message = error.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(message.starts_with(char::is_lowercase), "{message}");
        }
        assert_eq!(
            PreflightError::NotRoot { euid: 1000 }.to_string(),
            "loupe's agent must run as root or with CAP_BPF and CAP_PERFMON (effective uid 1000)"
        );
    }
}
