//! Reading the ELF files the agent attaches uprobes to, apart from the agent: the OpenSSL or BoringSSL
//! functions linked into an executable or a library that is not `libssl.so` ([`static_ssl`]).
//!
//! Owns parsing untrusted object files (any file a traced process maps), so it stays small and light enough to
//! fuzz (`fuzz/fuzz_targets/elf_ssl.rs`). Must not attach probes, load BPF or read `/proc`: the collector does.

pub mod static_ssl;

/// The TLS library functions a uprobe is attached at, in the collector's `TLS_PROBES` order.
pub const SSL_FUNCTIONS: [&str; 4] = ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"];
