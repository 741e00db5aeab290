//! TLS libraries: finds the OpenSSL copies processes map and the Go executables that link
//! `crypto/tls`, and attaches the TLS uprobes to each.
//!
//! Owns the `/proc` scan: every process not yet seen (by pid and executable, so an `exec` is seen
//! again) has its `/proc/<pid>/maps` read once; each `libssl.so*` file found gets the uprobes of
//! [`super::loader::TLS_PROBES`] attached once per file (by device and inode, through
//! `/proc/<pid>/root` so a container's copy is its own file). Its executable is inspected once per
//! file too ([`super::go_tls::inspect`]): a covered Go executable gets the Go TLS uprobes. One attach
//! covers every process mapping that file, including processes started later; the periodic rescan
//! finds new files. A library loaded later (`dlopen`, as Python's `ssl` and Node's addons do) is
//! found too: a process that opens a connection after its scan has its maps read again at the next
//! scan when its address space changed since (its virtual size in `/proc/<pid>/stat`), so TLS it
//! starts from then on is traced. A process whose TLS library is not covered (GnuTLS, NSS, wolfSSL, mbed TLS, or a
//! Go executable that is stripped, older than Go 1.17 or not x86-64) is reported once.
//!
//! OpenSSL (or BoringSSL) linked into another file is found too: the process's executable and every
//! other file it maps executable code from (not `libssl.so*`) are read once per file (by device and
//! inode) with [`super::static_ssl::scan`]; one holding `SSL_read`/`SSL_write` in its symbol table
//! gets the same uprobes at those offsets, and is logged once with its path and build-id. A stripped
//! file that carries OpenSSL's source file names is logged once as skipped. At most
//! [`MAX_TLS_FILES`] files get the OpenSSL uprobes (shared and linked-in alike).
//! Must not decode events or parse protocols.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::go_tls::{self, Inspection};
use super::loader::Tracer;
use super::static_ssl::{self, Scan};

/// How often `/proc` is listed for new processes.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(2);

/// Most processes remembered as having opened a connection since the last scan (the ones checked
/// for libraries loaded since their first scan); past this, more wait for a later scan.
const MAX_ACTIVE: usize = 4096;

/// Most files the OpenSSL uprobes are attached to (8 uprobes each), `libssl` copies and files
/// linking OpenSSL in together: a host running many different builds cannot make the agent hold
/// uprobes without bound.
pub const MAX_TLS_FILES: usize = 256;

/// TLS libraries whose plaintext is not traced, by file name prefix.
const NOT_COVERED: &[&str] = &["libgnutls.so", "libnss3.so", "libwolfssl.so", "libmbedtls.so"];

/// What a process maps, as far as TLS goes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mapped {
    /// OpenSSL's `libssl` files (paths as the process sees them).
    pub openssl: Vec<String>,
    /// TLS libraries that are not covered (file names).
    pub uncovered: Vec<String>,
    /// Other files executable code is mapped from (paths as the process sees them): where OpenSSL
    /// may be linked in.
    pub other_code: Vec<String>,
}

/// Reads the TLS libraries out of one `/proc/<pid>/maps` text.
pub fn mapped_tls_libraries(maps: &str) -> Mapped {
    let mut out = Mapped::default();
    for line in maps.lines() {
        // address perms offset dev inode path: the path is the sixth field and may hold spaces.
        let mut fields = line.splitn(6, ' ');
        let perms = fields.nth(1).unwrap_or_default();
        let Some(path) = fields.nth(3).map(str::trim_start) else { continue };
        if !path.starts_with('/') {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.starts_with("libssl.so") {
            if !out.openssl.iter().any(|p| p == path) {
                out.openssl.push(path.to_owned());
            }
        } else if let Some(lib) = NOT_COVERED.iter().find(|p| name.starts_with(**p))
            && !out.uncovered.iter().any(|u| u == lib)
        {
            out.uncovered.push((*lib).to_owned());
        } else if perms.contains('x') && !out.other_code.iter().any(|p| p == path) {
            out.other_code.push(path.to_owned());
        }
    }
    out
}

/// Finds TLS libraries in processes and attaches the uprobes to them.
pub struct TlsAttacher {
    proc_root: PathBuf,
    /// Library files handled, attached or failed, by (device, inode): each is tried once.
    files: HashSet<(u64, u64)>,
    /// Paths attached, for the log and tests.
    attached: Vec<PathBuf>,
    /// Processes scanned: pid → the executable it ran then and its virtual size (bytes) when its
    /// maps were last read.
    seen: HashMap<u32, (PathBuf, u64)>,
    /// Processes that opened a connection since the last scan.
    active: HashSet<u32>,
    /// Processes already reported as using an uncovered library.
    reported: HashSet<u32>,
    /// Executables inspected for Go TLS, by (device, inode): why one is not covered, or `None`.
    executables: HashMap<(u64, u64), Option<(String, String)>>,
    /// Go executables attached, for the log and tests.
    go_attached: Vec<(PathBuf, String)>,
    /// Files scanned for linked-in OpenSSL, by (device, inode): whether it is stripped OpenSSL.
    linked: HashMap<(u64, u64), bool>,
    /// Files with OpenSSL linked in that the uprobes are attached to, for the log and tests.
    linked_attached: Vec<PathBuf>,
    /// The limit [`MAX_TLS_FILES`] was reported.
    limit_reported: bool,
    last_scan: Option<Instant>,
    own_pid: u32,
}

impl TlsAttacher {
    /// An attacher over `proc_root` (normally `/proc`).
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        TlsAttacher {
            proc_root: proc_root.into(),
            files: HashSet::new(),
            attached: Vec::new(),
            seen: HashMap::new(),
            active: HashSet::new(),
            reported: HashSet::new(),
            executables: HashMap::new(),
            go_attached: Vec::new(),
            linked: HashMap::new(),
            linked_attached: Vec::new(),
            limit_reported: false,
            last_scan: None,
            own_pid: std::process::id(),
        }
    }

    /// Library files the uprobes are attached to.
    pub fn attached(&self) -> &[PathBuf] {
        &self.attached
    }

    /// Go executables the Go TLS uprobes are attached to, with their Go version.
    pub fn go_attached(&self) -> &[(PathBuf, String)] {
        &self.go_attached
    }

    /// Files with OpenSSL linked in (not `libssl`) the uprobes are attached to.
    pub fn linked_attached(&self) -> &[PathBuf] {
        &self.linked_attached
    }

    /// Notes that process `tgid` opened a connection: if it loaded a TLS library since its scan,
    /// the next scan finds it.
    pub fn note_connection(&mut self, tgid: u32) {
        if self.active.len() < MAX_ACTIVE {
            self.active.insert(tgid);
        }
    }

    /// Scans if `SCAN_INTERVAL` passed since the last scan.
    pub fn maybe_scan(&mut self, tracer: &mut Tracer) {
        if self.last_scan.is_none_or(|t| t.elapsed() >= SCAN_INTERVAL) {
            self.scan(tracer);
        }
    }

    /// Lists processes and handles every one not seen before (or that ran `exec` since).
    pub fn scan(&mut self, tracer: &mut Tracer) {
        self.last_scan = Some(Instant::now());
        let (openssl, go) = (tracer.tls_error().is_none(), tracer.go_tls_error().is_none());
        if !openssl && !go {
            return;
        }
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else { return };
        let mut live = HashSet::new();
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if pid == self.own_pid {
                continue;
            }
            live.insert(pid);
            let proc_dir = entry.path();
            // Kernel threads have no executable: nothing to scan.
            let Ok(exe) = std::fs::read_link(proc_dir.join("exe")) else { continue };
            if let Some((seen_exe, size)) = self.seen.get(&pid)
                && *seen_exe == exe
            {
                if openssl && self.active.contains(&pid) {
                    let size = *size;
                    self.rescan_loaded(tracer, pid, &proc_dir, size);
                }
                continue;
            }
            // The size is what a later rescan compares: only read when there are probes to attach.
            self.seen.insert(pid, (exe, if openssl { virtual_size(&proc_dir) } else { 0 }));
            let go_uncovered = if go { self.inspect_executable(tracer, &proc_dir) } else { None };
            let Ok(maps) = std::fs::read_to_string(proc_dir.join("maps")) else { continue };
            let mapped = mapped_tls_libraries(&maps);
            if openssl {
                for path in &mapped.openssl {
                    self.attach_file(tracer, &proc_dir, path);
                }
            }
            let mut stripped = false;
            if openssl {
                let exe_path = proc_dir.join("exe");
                stripped |= self.scan_linked(tracer, &exe_path, &proc_dir);
                for path in &mapped.other_code {
                    let target = proc_dir.join("root").join(path.trim_start_matches('/'));
                    stripped |= self.scan_linked(tracer, &target, &proc_dir);
                }
            }
            let mut uncovered = mapped.uncovered;
            if stripped {
                uncovered.push("OpenSSL linked into a stripped file (no symbols)".into());
            }
            if mapped.openssl.is_empty()
                && let Some((version, reason)) = go_uncovered
            {
                uncovered.push(format!("Go crypto/tls ({version}: {reason})"));
            }
            if mapped.openssl.is_empty() {
                self.report_uncovered(pid, &proc_dir, &uncovered);
            }
        }
        self.seen.retain(|pid, _| live.contains(pid));
        self.reported.retain(|pid| live.contains(pid));
        self.active.clear();
    }

    /// Reads again the maps of a process scanned before, if its address space changed since (a
    /// `dlopen` maps new files), and attaches the uprobes to a `libssl` it loaded since.
    fn rescan_loaded(&mut self, tracer: &mut Tracer, pid: u32, proc_dir: &Path, size: u64) {
        let now = virtual_size(proc_dir);
        if now == size {
            return;
        }
        if let Some(entry) = self.seen.get_mut(&pid) {
            entry.1 = now;
        }
        let Ok(maps) = std::fs::read_to_string(proc_dir.join("maps")) else { return };
        let mapped = mapped_tls_libraries(&maps);
        for path in &mapped.openssl {
            self.attach_file(tracer, proc_dir, path);
        }
        // A first scan that came between exec and the loader mapping the libraries saw none of them.
        if mapped.openssl.is_empty() {
            self.report_uncovered(pid, proc_dir, &mapped.uncovered);
        }
    }

    /// Says once per process that its TLS library is not covered, if it has one.
    fn report_uncovered(&mut self, pid: u32, proc_dir: &Path, uncovered: &[String]) {
        if uncovered.is_empty() || !self.reported.insert(pid) {
            return;
        }
        let comm = std::fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
        warn!(
            pid,
            process = comm.trim(),
            libraries = ?uncovered,
            "TLS library not covered: this process's TLS plaintext is not traced \
             (covered: OpenSSL libssl, OpenSSL or BoringSSL linked in with symbols; Go crypto/tls from Go 1.17 on x86-64 with symbols)"
        );
    }

    /// Inspects the process's executable once per file and attaches the Go TLS uprobes to a covered
    /// Go executable; returns (Go version, reason) when it is a Go executable that is not covered.
    fn inspect_executable(&mut self, tracer: &mut Tracer, proc_dir: &Path) -> Option<(String, String)> {
        // /proc/<pid>/exe opens the very file the process runs, even inside a container.
        let exe = proc_dir.join("exe");
        let meta = std::fs::metadata(&exe).ok()?;
        let key = (meta.dev(), meta.ino());
        if let Some(known) = self.executables.get(&key) {
            return known.clone();
        }
        let verdict = match go_tls::inspect(&exe) {
            Ok(Inspection::Covered(target)) => match tracer.attach_go_tls(&exe, &target) {
                Ok(()) => {
                    let path = std::fs::read_link(&exe).unwrap_or(exe.clone());
                    info!(
                        executable = %path.display(),
                        go = target.go_version,
                        offsets_from_dwarf = target.offsets.from_dwarf,
                        read_returns = target.read.returns.len(),
                        "TLS plaintext: uprobes attached to Go crypto/tls.(*Conn).Read/Write"
                    );
                    self.go_attached.push((path, target.go_version));
                    None
                }
                Err(error) => Some((target.go_version, format!("uprobes not attached: {error}"))),
            },
            Ok(Inspection::NotCovered { go_version, reason }) => Some((go_version, reason)),
            Ok(Inspection::NotGo | Inspection::NoTls) | Err(_) => None,
        };
        self.executables.insert(key, verdict.clone());
        verdict
    }

    /// Whether another file may get the OpenSSL uprobes; reports the limit once.
    fn under_limit(&mut self) -> bool {
        if self.attached.len() + self.linked_attached.len() < MAX_TLS_FILES {
            return true;
        }
        if !std::mem::replace(&mut self.limit_reported, true) {
            warn!(limit = MAX_TLS_FILES, "TLS plaintext: file limit reached, no more files get the OpenSSL uprobes");
        }
        false
    }

    /// Scans `target` (the executable, or a mapped file through the process's root) for OpenSSL
    /// linked in, once per file, and attaches the uprobes where its symbols are. Returns whether it
    /// is a stripped file with OpenSSL in it.
    fn scan_linked(&mut self, tracer: &mut Tracer, target: &Path, proc_dir: &Path) -> bool {
        let Ok(meta) = std::fs::metadata(target) else { return false };
        let key = (meta.dev(), meta.ino());
        if let Some(&stripped) = self.linked.get(&key) {
            return stripped;
        }
        if !self.under_limit() {
            // Not cached: a later scan tries again (the limit does not shrink, so this stays cheap).
            return false;
        }
        // `/proc/<pid>/exe` names the file as the process saw it; a mapped file is named by its path.
        let shown = match target.strip_prefix(proc_dir.join("root")) {
            Ok(inside) => Path::new("/").join(inside),
            Err(_) => std::fs::read_link(target).unwrap_or_else(|_| target.to_owned()),
        };
        let stripped = match static_ssl::scan(target) {
            Ok(Scan::Found(found)) => {
                let names: Vec<&str> = found.functions.iter().map(|(name, _)| *name).collect();
                match tracer.attach_tls_at(target, &found.functions) {
                    Ok(()) => {
                        info!(
                            file = %shown.display(),
                            build_id = found.build_id.as_deref().unwrap_or("none"),
                            device = key.0,
                            inode = key.1,
                            symbols = ?found.table,
                            functions = ?names,
                            "TLS plaintext: uprobes attached to OpenSSL linked into this file"
                        );
                        self.linked_attached.push(shown);
                    }
                    Err(error) => {
                        warn!(file = %shown.display(), %error, "TLS plaintext: uprobes not attached to linked-in OpenSSL")
                    }
                }
                false
            }
            Ok(Scan::Stripped) => {
                info!(
                    file = %shown.display(),
                    device = key.0,
                    inode = key.1,
                    "TLS plaintext: skipped a file with OpenSSL linked in but no symbol table (stripped): \
                     SSL_read/SSL_write cannot be found, its TLS plaintext is not traced"
                );
                true
            }
            // Not ELF, unreadable, or no TLS library in it: nothing to say.
            Ok(Scan::None) | Err(_) => false,
        };
        self.linked.insert(key, stripped);
        stripped
    }

    fn attach_file(&mut self, tracer: &mut Tracer, proc_dir: &Path, path: &str) {
        // Through the process's root: the file it maps, even inside a container.
        let target = proc_dir.join("root").join(path.trim_start_matches('/'));
        let Ok(meta) = std::fs::metadata(&target) else { return };
        if self.files.contains(&(meta.dev(), meta.ino())) || !self.under_limit() {
            return;
        }
        self.files.insert((meta.dev(), meta.ino()));
        match tracer.attach_tls(&target) {
            Ok(()) => {
                info!(library = path, "TLS plaintext: uprobes attached to SSL_read/SSL_write (and _ex)");
                self.attached.push(PathBuf::from(path));
            }
            Err(error) => warn!(library = path, %error, "TLS plaintext: uprobes not attached"),
        }
    }
}

/// A process's virtual memory size in bytes (`/proc/<pid>/stat` field 23), 0 when unreadable: it
/// changes when the process maps or unmaps memory, a loaded library included.
fn virtual_size(proc_dir: &Path) -> u64 {
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else { return 0 };
    stat_virtual_size(&stat)
}

/// Field 23 of a `/proc/<pid>/stat` line; the command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn stat_virtual_size(stat: &str) -> u64 {
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_ascii_whitespace().nth(20).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_size_is_field_23_of_stat_whatever_the_command_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 1234 5678901 300 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(stat_virtual_size(stat), 5_678_901);
        assert_eq!(stat_virtual_size("garbage"), 0);
        let own = std::fs::read_to_string("/proc/self/stat").expect("own stat");
        assert!(stat_virtual_size(&own) > 0);
    }

    #[test]
    fn maps_lines_give_openssl_and_uncovered_libraries() {
        let maps = "\
7f00-7f10 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f10-7f20 r-xp 00010000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f20-7f30 r--p 00000000 08:01 124 /usr/lib/x86_64-linux-gnu/libgnutls.so.30
7f30-7f40 rw-p 00000000 00:00 0 \n\
7f40-7f50 r--p 00000000 08:01 125 /opt/my app/libssl.so.1.1
5600-5700 r-xp 00001000 08:01 126 /usr/bin/node
5700-5800 r--p 00101000 08:01 126 /usr/bin/node
7f50-7f60 r-xp 00001000 08:01 127 /usr/lib/x86_64-linux-gnu/libc.so.6
7f60-7f70 r-xp 00001000 08:01 127 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd-7ffe rw-p 00000000 00:00 0                          [stack]
";
        assert_eq!(
            mapped_tls_libraries(maps),
            Mapped {
                openssl: vec!["/usr/lib/x86_64-linux-gnu/libssl.so.3".into(), "/opt/my app/libssl.so.1.1".into()],
                uncovered: vec!["libgnutls.so".into()],
                other_code: vec!["/usr/bin/node".into(), "/usr/lib/x86_64-linux-gnu/libc.so.6".into()],
            }
        );
        assert_eq!(mapped_tls_libraries("garbage\n\n1 2 3"), Mapped::default());
    }
}
