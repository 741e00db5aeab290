//! Fuzz target: arbitrary bytes as an ELF file into `loupe_elf::static_ssl::scan_data`, the
//! reader that finds OpenSSL linked into executables by their symbol tables. Run with
//! `cargo fuzz run elf_ssl` from `fuzz/`.
//!
//! Owns nothing but this harness. The agent reads every executable file processes map, any of
//! which may be truncated, corrupt or hostile: the reader must never panic, and every offset it
//! returns must lie inside the bytes it was given.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_elf::static_ssl::{Scan, scan_data};

fuzz_target!(|data: &[u8]| {
    if let Ok(Scan::Found(found)) = scan_data(data) {
        assert!(!found.functions.is_empty(), "found without functions");
        for (name, offset) in &found.functions {
            assert!((*offset as usize) < data.len(), "{name} at {offset} is outside the {} bytes", data.len());
        }
    }
});
