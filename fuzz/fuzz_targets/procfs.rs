//! Fuzz target: arbitrary bytes into every `/proc` parser of `loupe_common::procfs` (`stat`, `io`,
//! `net/dev`, the namespace link, `status`). Run with `cargo fuzz run procfs` from `fuzz/`.
//!
//! Owns nothing but this harness. A process names itself (the command name inside `stat`) and a
//! file read while its process exits comes back cut short: the parsers must never panic, whatever
//! the input, and a parsed `stat` must hold only what its fields said.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_common::procfs;

fuzz_target!(|data: &[u8]| {
    if let Some(stat) = procfs::parse_stat(data) {
        let _ = stat.is_kernel_thread();
        assert!(data.contains(&b')'), "a stat line without its command's closing parenthesis parsed");
    }
    let _ = procfs::parse_io(data);
    let all = procfs::parse_net_dev(data, |_| true);
    let some = procfs::parse_net_dev(data, |name| name != "lo");
    assert!(some.rx_bytes <= all.rx_bytes && some.tx_packets <= all.tx_packets, "leaving an interface out added bytes");
    let _ = procfs::parse_ns_link(data);
    let _ = procfs::parse_status_rss(data);
});
