//! Loupe's small shared vocabulary: process identities (UPID), the clock and its conversion, the Prometheus
//! text writer every `/metrics` uses, the kinds of key (`KeyKind`) auth and the metastore share, and the caret
//! renderer of compile errors (`caret`), cron schedules (`schedule`), and the command lines of processes seen
//! (`procnames`), kept for `px.upid_to_cmdline` after they exit, and the parsers of the `/proc` files the host
//! tables read (`procfs`), and a process's cgroup path → its container and pod (`cgroup`).
//!
//! Owns types every other crate may name. Must stay tiny and dependency-free (only `libc`):
//! no Arrow, no async, no I/O beyond reading the clocks and `/proc/<pid>/stat`.

pub mod caret;
pub mod cgroup;
pub mod keys;
pub mod procfs;
pub mod procnames;
pub mod prometheus;
pub mod schedule;
pub mod time;
pub mod upid;

pub use keys::KeyKind;
pub use time::ClockConverter;
pub use upid::Upid;
