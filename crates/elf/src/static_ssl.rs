//! OpenSSL or BoringSSL linked into another ELF file: where the `SSL_read`/`SSL_write` uprobes go in
//! an executable (Node.js official builds, Envoy-like binaries, anything built against `libssl.a`)
//! or a shared library that is not `libssl.so`.
//!
//! Owns reading one ELF file's symbol tables (`.symtab`, then `.dynsym`) for the defined functions
//! of [`crate::SSL_FUNCTIONS`], and turning each symbol's address into the file offset a uprobe
//! is attached at. `SSL_read` and `SSL_write` are required; the `_ex` forms are taken when present
//! (BoringSSL has none). A file without a symbol table whose read-only data carries OpenSSL's
//! source file names is reported as [`Scan::Stripped`], so the caller can say why it is skipped.
//! The BPF side maps an `SSL *` to its socket by the syscalls made inside the call, so nothing else
//! (no `SSL_get_fd`/`SSL_set_fd`) is needed. Must not attach probes (the collector's `tls` and `loader`)
//! nor read `/proc`; must never panic, whatever the bytes (fuzzed: `fuzz/fuzz_targets/elf_ssl.rs`).

use std::fs::File;
use std::path::Path;

use object::read::ReadCache;
use object::{BinaryFormat, Object, ObjectSection, ObjectSymbol, ReadRef, SectionIndex, SectionKind, SymbolKind};

use crate::SSL_FUNCTIONS;

/// Functions without which a file is not traced.
const REQUIRED: [&str; 2] = ["SSL_read", "SSL_write"];

/// Source file names OpenSSL (`ssl/ssl_lib.c`) and BoringSSL (`ssl/ssl_lib.cc`) compile into their
/// error reporting: a stripped file holding one links a TLS library whose functions cannot be found.
const OPENSSL_MARKER: &[u8] = b"ssl/ssl_lib.c";

/// Most bytes of read-only data searched for [`OPENSSL_MARKER`] in a stripped file.
const MAX_MARKER_SCAN: u64 = 64 << 20;

/// Which symbol table the functions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolTable {
    /// `.symtab`: the full table, present unless the file was stripped.
    Symtab,
    /// `.dynsym`: exported functions only (Node.js exports OpenSSL's for its addons).
    Dynsym,
}

/// The TLS functions found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslFunctions {
    /// (symbol, file offset) for each function of `SSL_FUNCTIONS` found, in `SSL_FUNCTIONS`' order.
    pub functions: Vec<(&'static str, u64)>,
    /// Where `SSL_read` was found.
    pub table: SymbolTable,
    /// The GNU build-id, hex, when the file has one.
    pub build_id: Option<String>,
}

/// What one file holds, as far as linked-in OpenSSL goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// `SSL_read` and `SSL_write` are defined in the file.
    Found(SslFunctions),
    /// No symbol table, and OpenSSL's or BoringSSL's source file names in the read-only data.
    Stripped,
    /// No TLS library linked in (or none this reader recognizes).
    None,
}

/// Why a file could not be read.
#[derive(thiserror::Error, Debug)]
pub enum StaticSslError {
    /// The file could not be opened.
    #[error("failed to open the file")]
    Io(#[from] std::io::Error),
    /// Not a readable object file.
    #[error("failed to parse the file")]
    Parse(#[from] object::Error),
}

/// Scans the ELF file at `path` (read lazily: headers, symbol tables and the sections they point at).
pub fn scan(path: &Path) -> Result<Scan, StaticSslError> {
    let cache = ReadCache::new(File::open(path)?);
    scan_data(&cache)
}

/// Scans an ELF file's bytes. Anything that is not ELF is [`Scan::None`].
pub fn scan_data<'data, R: ReadRef<'data>>(data: R) -> Result<Scan, StaticSslError> {
    let file = object::File::parse(data)?;
    // Section headers may point past the end: an offset is only kept inside the file.
    let file_len = data.len().unwrap_or(0);
    if file.format() != BinaryFormat::Elf {
        return Ok(Scan::None);
    }
    let build_id = || file.build_id().ok().flatten().map(|id| id.iter().map(|b| format!("{b:02x}")).collect());
    for (table, symbols) in [(SymbolTable::Symtab, file.symbols()), (SymbolTable::Dynsym, file.dynamic_symbols())] {
        // One pass over the table: node's has a few hundred thousand symbols.
        let mut offsets: [Option<u64>; SSL_FUNCTIONS.len()] = [None; SSL_FUNCTIONS.len()];
        for symbol in symbols {
            if !symbol.is_definition() || symbol.kind() != SymbolKind::Text {
                continue;
            }
            let Ok(name) = symbol.name() else { continue };
            let Some(i) = SSL_FUNCTIONS.iter().position(|&probe| probe == name) else { continue };
            if offsets[i].is_none() {
                offsets[i] =
                    symbol.section_index().and_then(|index| file_offset(&file, index, symbol.address(), file_len));
            }
        }
        let functions: Vec<(&'static str, u64)> =
            SSL_FUNCTIONS.iter().zip(offsets).filter_map(|(&name, offset)| Some((name, offset?))).collect();
        if REQUIRED.iter().all(|r| functions.iter().any(|(name, _)| name == r)) {
            return Ok(Scan::Found(SslFunctions { functions, table, build_id: build_id() }));
        }
    }
    if file.section_by_name(".symtab").is_some() {
        return Ok(Scan::None);
    }
    let marked = file
        .sections()
        .filter(|s| s.kind() == SectionKind::ReadOnlyString || s.kind() == SectionKind::ReadOnlyData)
        .any(|s| {
            s.size() <= MAX_MARKER_SCAN && s.data().is_ok_and(|d| memchr::memmem::find(d, OPENSSL_MARKER).is_some())
        });
    Ok(if marked { Scan::Stripped } else { Scan::None })
}

/// The file offset of `address` in section `index`: where a uprobe on it is attached. `None` unless
/// it lies inside the section's bytes and the file's `file_len` bytes.
fn file_offset<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    index: SectionIndex,
    address: u64,
    file_len: u64,
) -> Option<u64> {
    let section = file.section_by_index(index).ok()?;
    let (start, size) = section.file_range()?;
    let within = address.checked_sub(section.address())?;
    let offset = (within < size).then(|| start.checked_add(within)).flatten()?;
    (offset < file_len).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_and_truncated_input_never_panics() {
        assert!(scan_data(&b""[..]).is_err());
        assert!(scan_data(&b"not an elf file at all"[..]).is_err());
        // An ELF header claiming 64-bit little-endian, then junk and cuts at every length.
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0\x01\0\0\0".to_vec();
        elf.extend((0u16..600).map(|i| (i.wrapping_mul(37) >> 1) as u8));
        for len in 0..elf.len() {
            let _ = scan_data(&elf[..len]);
        }
        // This very test binary, truncated: headers pointing past the end must be errors or None.
        let mut me = Vec::new();
        let exe = File::open(std::env::current_exe().expect("test executable")).expect("open test executable");
        std::io::Read::read_to_end(&mut std::io::Read::take(exe, 8 << 20), &mut me).expect("read test executable");
        for len in [64, 1000, 4096, me.len() / 3, me.len() / 2, me.len() - 1] {
            let _ = scan_data(&me[..len]);
        }
        // Junk overwriting the section headers' area of a real header.
        let mut bent = me[..me.len().min(1 << 16)].to_vec();
        for (i, b) in bent.iter_mut().enumerate().skip(64).step_by(7) {
            *b ^= (i as u8).wrapping_mul(31);
        }
        let _ = scan_data(&bent[..]);
    }

    #[test]
    fn a_file_without_elf_format_is_none_or_an_error() {
        // A COFF/PE-ish header is not ELF: never a match, never a panic.
        assert!(!matches!(scan_data(&b"MZ\x90\0\x03\0\0\0"[..]), Ok(Scan::Found(_))));
    }
}
