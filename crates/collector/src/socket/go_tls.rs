//! Go executables' `crypto/tls`: where the Go TLS uprobes go in one executable.
//!
//! Owns reading one Go executable: its Go version (`.go.buildinfo`), the ELF symbols of
//! `crypto/tls.(*Conn).Read` and `Write`, their RET instructions (disassembled, because
//! uretprobes corrupt Go programs: they rewrite a return address on a goroutine stack that Go
//! moves when it grows; the BPF side uses `Read`'s, `Write` emits at its entry), and the address of the `(*net.TCPConn, net.Conn)` itab the BPF side checks
//! a connection against. Must not attach probes (that is `tls` and `loader`) nor read `/proc`.
//!
//! Covered: Go 1.17 and later (the register ABI) on x86-64, executables with a symbol table.
//! The struct offsets the BPF side follows (`tls.Conn.conn` → `*net.TCPConn` → `netFD` →
//! `poll.FD.Sysfd`) come from the executable's DWARF when it has it (zlib-compressed sections
//! included), else [`GoOffsets::DEFAULT`]: the layout every Go release from 1.9 to 1.27 has (the
//! capture tests build with 1.19 and 1.27 and compare).

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use iced_x86::{Decoder, DecoderOptions, Mnemonic};
use object::read::ReadCache;
use object::{Architecture, CompressionFormat, Object, ObjectKind, ObjectSection, ObjectSymbol, ReadRef};

/// The function whose plaintext comes back in its buffer (read at its RETs).
pub const READ_SYMBOL: &str = "crypto/tls.(*Conn).Read";
/// The function whose buffer holds plaintext to send.
pub const WRITE_SYMBOL: &str = "crypto/tls.(*Conn).Write";
/// The itab of `*net.TCPConn` as a `net.Conn` (Go 1.20 and earlier spell it `go.itab.`, later `go:itab.`;
/// recent releases leave itabs out of the symbol table).
const TCPCONN_ITABS: &[&str] = &["go.itab.*net.TCPConn,net.Conn", "go:itab.*net.TCPConn,net.Conn"];
/// `net.Conn`'s first method by name, as `*net.TCPConn` implements it: the first function of that itab.
const TCPCONN_CLOSE: &str = "net.(*TCPConn).Close";
/// First Go release with the register ABI on x86-64 (arguments in RAX, RBX, RCX, ...).
const FIRST_REGISTER_ABI_MINOR: u32 = 17;
/// Most bytes of a function disassembled: `Read` and `Write` are a few KiB; more means a bad symbol.
const MAX_FUNCTION_BYTES: u64 = 1 << 20;
/// The `.go.buildinfo` magic.
const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// One hooked function, as offsets in the executable file (what uprobes attach to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFunction {
    /// The first instruction.
    pub entry: u64,
    /// Every RET instruction.
    pub returns: Vec<u64>,
}

/// Byte offsets the BPF side follows from a `*tls.Conn` to its socket's fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoOffsets {
    /// `crypto/tls.Conn.conn` (a `net.Conn` interface: itab, data).
    pub conn: u32,
    /// `net.TCPConn.conn.fd` (the `*netFD`).
    pub tcpconn_fd: u32,
    /// `net.netFD.pfd.Sysfd`.
    pub sysfd: u32,
    /// Whether they were read from DWARF (else the defaults).
    pub from_dwarf: bool,
}

impl GoOffsets {
    /// The layout of Go 1.9 to 1.27: `conn` first in `tls.Conn`, `fd` first in `net.conn`, `Sysfd`
    /// after `poll.FD`'s 16-byte `fdMutex`, `pfd` first in `netFD`.
    pub const DEFAULT: GoOffsets = GoOffsets { conn: 0, tcpconn_fd: 0, sysfd: 16, from_dwarf: false };
}

/// Where the Go TLS uprobes go in one executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTlsTarget {
    /// The Go release that built it, e.g. `go1.19.8`.
    pub go_version: String,
    /// `crypto/tls.(*Conn).Read`.
    pub read: GoFunction,
    /// `crypto/tls.(*Conn).Write`.
    pub write: GoFunction,
    /// Run-time address of the `(*net.TCPConn, net.Conn)` itab, or 0 when unknown (a
    /// position-independent executable: its address differs per process; or no symbol names it).
    pub tcpconn_itab: u64,
    /// When the itab has no symbol: run-time address of `net.(*TCPConn).Close`, which the first
    /// function of a `*net.TCPConn`'s `net.Conn` itab must be; 0 when unknown. Both 0 skip the check.
    pub tcpconn_close: u64,
    /// Offsets from the `*tls.Conn` to the fd.
    pub offsets: GoOffsets,
}

/// What one executable is, as far as Go TLS goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    /// Not a Go executable.
    NotGo,
    /// A Go executable that does not link `crypto/tls`.
    NoTls,
    /// Covered: attach here.
    Covered(GoTlsTarget),
    /// Links `crypto/tls` (or may: a stripped one) but is not covered.
    NotCovered {
        /// The Go release, if known.
        go_version: String,
        /// Why not.
        reason: String,
    },
}

/// Why an executable could not be read.
#[derive(thiserror::Error, Debug)]
pub enum GoTlsError {
    /// The file could not be opened.
    #[error("failed to open the executable")]
    Io(#[from] std::io::Error),
    /// Not a readable ELF file.
    #[error("failed to parse the executable")]
    Elf(#[from] object::Error),
}

/// Inspects the executable at `path` (read lazily: only headers unless it is a Go executable).
pub fn inspect(path: &Path) -> Result<Inspection, GoTlsError> {
    let cache = ReadCache::new(File::open(path)?);
    inspect_data(&cache)
}

/// Inspects an executable's bytes.
pub fn inspect_data<'data, R: ReadRef<'data>>(data: R) -> Result<Inspection, GoTlsError> {
    let file = object::File::parse(data)?;
    let Some(buildinfo) = file.section_by_name(".go.buildinfo") else { return Ok(Inspection::NotGo) };
    let go_version = buildinfo.data().ok().and_then(|d| go_version(&file, d)).unwrap_or_default();
    let not_covered = |reason: String| Ok(Inspection::NotCovered { go_version: go_version.clone(), reason });

    let mut read = None;
    let mut write = None;
    let mut itab = None;
    let mut close = None;
    let mut any_symbol = false;
    for symbol in file.symbols() {
        any_symbol = true;
        match symbol.name() {
            Ok(READ_SYMBOL) => read = Some(symbol.index()),
            Ok(WRITE_SYMBOL) => write = Some(symbol.index()),
            Ok(TCPCONN_CLOSE) => close = Some(symbol.address()),
            Ok(name) if TCPCONN_ITABS.contains(&name) => itab = Some(symbol.address()),
            _ => {}
        }
    }
    if !any_symbol {
        // Stripped: the function names survive in the pc-line table only.
        let uses_tls = file
            .section_by_name(".gopclntab")
            .and_then(|s| s.data().ok())
            .is_some_and(|d| d.windows(READ_SYMBOL.len()).any(|w| w == READ_SYMBOL.as_bytes()));
        if !uses_tls {
            return Ok(Inspection::NoTls);
        }
        return not_covered("stripped executable (no ELF symbol table)".into());
    }
    let (Some(read), Some(write)) = (read, write) else { return Ok(Inspection::NoTls) };
    if file.architecture() != Architecture::X86_64 {
        return not_covered(format!("architecture {:?} (covered: x86-64)", file.architecture()));
    }
    match go_minor(&go_version) {
        Some(minor) if minor >= FIRST_REGISTER_ABI_MINOR => {}
        Some(_) => return not_covered("Go before 1.17 (stack-based calling convention)".into()),
        None if go_version.starts_with("devel") => {}
        None => return not_covered("unknown Go version".into()),
    }
    let function = |index| -> Result<GoFunction, String> {
        let symbol = file.symbol_by_index(index).map_err(|e| e.to_string())?;
        function_probes(&file, &symbol)
    };
    let (read, write) = match (function(read), function(write)) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(e), _) | (_, Err(e)) => return not_covered(e),
    };
    // A position-independent executable loads at a different address in each process.
    let fixed = |address: Option<u64>| if file.kind() == ObjectKind::Executable { address.unwrap_or(0) } else { 0 };
    let tcpconn_itab = fixed(itab);
    let tcpconn_close = if tcpconn_itab == 0 { fixed(close) } else { 0 };
    let offsets = dwarf_offsets(&file).unwrap_or(GoOffsets::DEFAULT);
    Ok(Inspection::Covered(GoTlsTarget { go_version, read, write, tcpconn_itab, tcpconn_close, offsets }))
}

/// Most bytes a DWARF section may inflate to: a Go executable's `.debug_info` is a few MiB.
const MAX_DWARF_BYTES: u64 = 256 << 20;

/// A section's bytes, inflated if zlib-compressed; `None` if unreadable or compressed otherwise.
fn section_bytes<'data, R: ReadRef<'data>>(section: &object::Section<'data, '_, R>) -> Option<Cow<'data, [u8]>> {
    let compressed = section.compressed_data().ok()?;
    match compressed.format {
        CompressionFormat::None => Some(Cow::Borrowed(compressed.data)),
        CompressionFormat::Zlib if compressed.uncompressed_size <= MAX_DWARF_BYTES => {
            let mut out = Vec::with_capacity(usize::try_from(compressed.uncompressed_size).ok()?);
            flate2::read::ZlibDecoder::new(compressed.data).take(MAX_DWARF_BYTES).read_to_end(&mut out).ok()?;
            Some(Cow::Owned(out))
        }
        _ => None,
    }
}

/// The fields whose offsets matter: (struct, member).
const FIELDS: [(&str, &str); 5] = [
    ("crypto/tls.Conn", "conn"),
    ("net.TCPConn", "conn"),
    ("net.conn", "fd"),
    ("net.netFD", "pfd"),
    ("internal/poll.FD", "Sysfd"),
];

/// The offsets from the executable's DWARF, if it has every field of [`FIELDS`].
fn dwarf_offsets<'data, R: ReadRef<'data>>(file: &object::File<'data, R>) -> Option<GoOffsets> {
    file.section_by_name(".debug_info")?;
    // Only what units and struct members need (gimli reads each unit's line program header): locations,
    // ranges and frames would be megabytes inflated for nothing (this runs on the collector's socket thread,
    // once per Go executable).
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'data, [u8]>, gimli::Error> {
        use gimli::SectionId::{DebugAbbrev, DebugInfo, DebugLine, DebugLineStr, DebugStr, DebugStrOffsets};
        if !matches!(id, DebugAbbrev | DebugInfo | DebugLine | DebugStr | DebugStrOffsets | DebugLineStr) {
            return Ok(Cow::Borrowed(&[]));
        }
        Ok(file.section_by_name(id.name()).and_then(|s| section_bytes(&s)).unwrap_or(Cow::Borrowed(&[])))
    })
    .ok()?;
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    let mut found: [Option<u64>; FIELDS.len()] = [None; FIELDS.len()];
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else { continue };
        let mut entries = unit.entries();
        // The wanted struct being walked, and its depth.
        let mut inside: Option<(&str, isize)> = None;
        while let Ok(Some(entry)) = entries.next_dfs() {
            let depth = entry.depth();
            if inside.is_some_and(|(_, d)| depth <= d) {
                inside = None;
            }
            let name = || {
                entry
                    .attr_value(gimli::DW_AT_name)
                    .and_then(|v| dwarf.attr_string(&unit, v).ok())
                    .and_then(|s| std::str::from_utf8(s.slice()).ok().map(str::to_owned))
            };
            if entry.tag() == gimli::DW_TAG_structure_type {
                if let Some(n) = name()
                    && let Some(&(s, _)) = FIELDS.iter().find(|(s, _)| *s == n)
                {
                    inside = Some((s, depth));
                }
            } else if entry.tag() == gimli::DW_TAG_member
                && let Some((s, d)) = inside
                && depth == d + 1
                && let Some(member) = name()
                && let Some(i) = FIELDS.iter().position(|&(fs, fm)| fs == s && fm == member)
            {
                found[i] = entry.attr_value(gimli::DW_AT_data_member_location).and_then(|v| v.udata_value());
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    let [conn, tcp_conn, conn_fd, pfd, sysfd] = found;
    let small = |v: u64| u32::try_from(v).ok().filter(|&v| v < 4096);
    Some(GoOffsets {
        conn: small(conn?)?,
        tcpconn_fd: small(tcp_conn? + conn_fd?)?,
        sysfd: small(pfd? + sysfd?)?,
        from_dwarf: true,
    })
}

/// The entry and RET file offsets of one function symbol.
fn function_probes<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    symbol: &object::Symbol<'data, '_, R>,
) -> Result<GoFunction, String> {
    let name = symbol.name().unwrap_or("?");
    let (addr, size) = (symbol.address(), symbol.size());
    if size == 0 || size > MAX_FUNCTION_BYTES {
        return Err(format!("{name}: unusable symbol size {size}"));
    }
    let section = symbol
        .section_index()
        .and_then(|i| file.section_by_index(i).ok())
        .ok_or_else(|| format!("{name}: not in a section"))?;
    let (file_start, _) = section.file_range().ok_or_else(|| format!("{name}: section has no file bytes"))?;
    let code =
        section.data_range(addr, size).ok().flatten().ok_or_else(|| format!("{name}: code outside its section"))?;
    let to_file = |a: u64| a - section.address() + file_start;
    let returns = ret_addresses(code, addr).into_iter().map(to_file).collect::<Vec<_>>();
    if returns.is_empty() {
        return Err(format!("{name}: no RET instruction found"));
    }
    Ok(GoFunction { entry: to_file(addr), returns })
}

/// Addresses of the RET instructions of x86-64 `code` loaded at `addr`.
pub fn ret_addresses(code: &[u8], addr: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        let instruction = decoder.decode();
        if !instruction.is_invalid() && instruction.mnemonic() == Mnemonic::Ret {
            out.push(instruction.ip());
        }
    }
    out
}

/// The minor version of a `go1.N[.P]` string.
fn go_minor(version: &str) -> Option<u32> {
    let rest = version.strip_prefix("go1.")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The Go version recorded in `.go.buildinfo`: inline since Go 1.18, behind two pointers before.
fn go_version<'data, R: ReadRef<'data>>(file: &object::File<'data, R>, info: &[u8]) -> Option<String> {
    if info.len() < 32 || !info.starts_with(BUILDINFO_MAGIC) {
        return None;
    }
    let (ptr_size, flags) = (usize::from(info[14]), info[15]);
    if flags & 2 != 0 {
        let (len, used) = uvarint(info.get(32..)?)?;
        let start = 32 + used;
        let bytes = info.get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
        return String::from_utf8(bytes.to_vec()).ok();
    }
    // Before 1.18: a pointer to a Go string header (data pointer, length).
    if ptr_size != 8 || flags & 1 != 0 {
        return None;
    }
    let word = |bytes: &[u8]| bytes.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let header_addr = word(info.get(16..)?)?;
    let header = read_vaddr(file, header_addr, 16)?;
    let (data, len) = (word(&header)?, word(header.get(8..)?)?);
    if len > 64 {
        return None;
    }
    String::from_utf8(read_vaddr(file, data, len)?).ok()
}

/// `len` bytes at virtual address `addr`, from the section holding them.
fn read_vaddr<'data, R: ReadRef<'data>>(file: &object::File<'data, R>, addr: u64, len: u64) -> Option<Vec<u8>> {
    file.sections().find_map(|s| s.data_range(addr, len).ok().flatten().map(<[u8]>::to_vec))
}

/// A Go `binary.Uvarint`: the value and the bytes it took.
fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rets_are_found_by_instruction_not_by_byte() {
        // mov eax, 0xc3c3c3c3 (C3 bytes inside an immediate); ret; add rsp, 0x10; pop rbp; ret
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0x48, 0x83, 0xc4, 0x10, 0x5d, 0xc3];
        assert_eq!(ret_addresses(&code, 0x1000), vec![0x1005, 0x100b]);
        assert_eq!(ret_addresses(&[], 0), Vec::<u64>::new());
        assert_eq!(ret_addresses(&[0x0f, 0xff, 0xff], 0), Vec::<u64>::new());
    }

    #[test]
    fn go_versions_and_varints() {
        assert_eq!(go_minor("go1.19.8"), Some(19));
        assert_eq!(go_minor("go1.21rc2"), Some(21));
        assert_eq!(go_minor("devel +abc"), None);
        assert_eq!(uvarint(&[0x08]), Some((8, 1)));
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(uvarint(&[0x80; 11]), None);
    }

    #[test]
    fn a_non_go_executable_is_not_go() {
        let exe = std::env::current_exe().expect("test binary");
        assert_eq!(inspect(&exe).expect("readable"), Inspection::NotGo);
        assert!(inspect_data(&b"not an elf file"[..]).is_err());
    }
}
