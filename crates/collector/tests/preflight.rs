//! `preflight::check` on this machine: succeeds as root, reports `NotRoot` otherwise.
//!
//! Owns the environment checks' end-to-end behaviour. Must not load BPF programs.

use loupe_collector::preflight::{self, PreflightError};

#[test]
fn check_reports_environment_or_not_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let result = preflight::check();
    if euid != 0 {
        let has_caps = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            })
            .is_some_and(|caps| caps & (1 << 38) != 0 && caps & (1 << 39) != 0);
        if !has_caps {
            match result {
                Err(PreflightError::NotRoot { euid: reported }) => assert_eq!(reported, euid),
                other => panic!("expected NotRoot as uid {euid}, got {other:?}"),
            }
            return;
        }
    }
    let env = result.expect("preflight failed as root");
    assert!(env.btf);
    assert!(env.tracefs.join("events/syscalls/sys_enter_read").is_dir());
    assert!(!env.kernel_release.is_empty());
}
