//! Unwinds copied user stacks with the binaries' `.eh_frame` (DWARF CFI), for code built without frame
//! pointers (most distribution and Rust release binaries).
//!
//! Owns the executable mappings of each sampled process (`/proc/<pid>/maps`), the unwind sections of each
//! mapped file, read once per file (keyed by device and inode) and shared by every process mapping it, and
//! the walk itself (`framehop`). Must not symbolize: it yields addresses only.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use object::{Object, ObjectSection, ObjectSegment};

/// Page size mappings are aligned to.
const PAGE: u64 = 4096;
/// Most frames taken from one stack.
pub const MAX_FRAMES: usize = 128;
/// A process's mappings are read again at most this often when an address falls outside them.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Files whose unwind sections are kept; past this the cache starts over.
const MAX_FILES: usize = 1024;
/// Processes whose mappings are kept; past this the least recently sampled are dropped.
const MAX_PROCESSES: usize = 4096;

/// One line of `/proc/<pid>/maps` that maps a file executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecMapping {
    /// Addresses mapped.
    pub range: Range<u64>,
    /// File offset of `range.start`.
    pub offset: u64,
    /// Device and inode of the file: the key of its cached unwind sections.
    pub dev_inode: (String, u64),
    /// The file's path as the process sees it.
    pub path: String,
}

/// The executable, file-backed mappings in the text of `/proc/<pid>/maps`.
pub fn parse_exec_mappings(maps: &str) -> Vec<ExecMapping> {
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(offset), Some(dev), Some(inode)) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = fields.collect::<Vec<_>>().join(" ");
        if perms.as_bytes().get(2).is_none_or(|&c| c != b'x') || !path.starts_with('/') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end), Ok(offset), Ok(inode)) = (
            u64::from_str_radix(start, 16),
            u64::from_str_radix(end, 16),
            u64::from_str_radix(offset, 16),
            inode.parse::<u64>(),
        ) else {
            continue;
        };
        if inode == 0 || start >= end {
            continue;
        }
        out.push(ExecMapping { range: start..end, offset, dev_inode: (dev.to_owned(), inode), path });
    }
    out
}

/// What unwinding needs of one file, read once.
#[derive(Debug, Default)]
struct FileUnwindInfo {
    eh_frame: Option<(Range<u64>, Arc<[u8]>)>,
    eh_frame_hdr: Option<(Range<u64>, Arc<[u8]>)>,
    text_svma: Option<Range<u64>>,
    got_svma: Option<Range<u64>>,
    /// Loadable segments: (vaddr, file offset, file size), to place a mapping.
    segments: Vec<(u64, u64, u64)>,
}

fn section<'d, R: object::ReadRef<'d>>(file: &object::File<'d, R>, name: &str) -> Option<(Range<u64>, Arc<[u8]>)> {
    let s = file.section_by_name(name)?;
    let data = s.data().ok()?;
    Some((s.address()..s.address() + s.size(), Arc::from(data)))
}

fn read_file_info(path: &std::path::Path) -> Option<FileUnwindInfo> {
    let file = std::fs::File::open(path).ok()?;
    let cache = object::ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let range = |name: &str| elf.section_by_name(name).map(|s| s.address()..s.address() + s.size());
    let segments = elf.segments().map(|s| (s.address(), s.file_range().0, s.file_range().1)).collect();
    Some(FileUnwindInfo {
        eh_frame: section(&elf, ".eh_frame"),
        eh_frame_hdr: section(&elf, ".eh_frame_hdr"),
        text_svma: range(".text"),
        got_svma: range(".got"),
        segments,
    })
}

/// Where a file mapped at `start` from file offset `offset` has its address 0 (the module's base), given its
/// loadable segments (vaddr, file offset, file size); `None` if no segment holds the offset.
fn base_avma(segments: &[(u64, u64, u64)], start: u64, offset: u64) -> Option<u64> {
    // A mapping starts on a page boundary, so its offset may lie below its segment's own (page-aligned
    // down), and the previous segment's last page may hold it too: the later segment is the mapped one.
    let &(vaddr, seg_offset, _) = segments
        .iter()
        .filter(|&&(_, off, size)| offset >= off & !(PAGE - 1) && offset < off.saturating_add(size.max(1)))
        .max_by_key(|&&(_, off, _)| off)?;
    // avma(file offset x) = start + (x - offset) and svma(x) = x + (vaddr - seg_offset).
    Some(start.wrapping_sub(offset).wrapping_sub(vaddr.wrapping_sub(seg_offset)))
}

struct ProcessModules {
    unwinder: UnwinderX86_64<Arc<[u8]>>,
    ranges: Vec<Range<u64>>,
    /// Each executable mapping: addresses, file offset of the start, the file as this process reads it.
    files: Vec<(Range<u64>, u64, Arc<std::path::Path>)>,
    refreshed: Instant,
    used: Instant,
    /// The executable it ran when its mappings were read (device, inode): an `exec` changes it.
    exe: Option<(u64, u64)>,
}

/// Counters of the unwinder's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnwindStats {
    /// Stacks walked.
    pub stacks: u64,
    /// Files whose unwind sections were read.
    pub files_read: u64,
    /// Files that could not be read or parsed (their frames end the walk).
    pub files_failed: u64,
}

/// Unwinds copied stacks of any process, caching mappings per process and unwind sections per file.
pub struct DwarfUnwinder {
    proc_root: std::path::PathBuf,
    files: HashMap<(String, u64), Option<Arc<FileUnwindInfo>>>,
    processes: HashMap<u32, ProcessModules>,
    cache: CacheX86_64,
    stats: UnwindStats,
}

impl std::fmt::Debug for DwarfUnwinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DwarfUnwinder").field("processes", &self.processes.len()).field("stats", &self.stats).finish()
    }
}

impl DwarfUnwinder {
    /// An unwinder reading processes under `proc_root` (`/proc`).
    pub fn new(proc_root: impl Into<std::path::PathBuf>) -> DwarfUnwinder {
        DwarfUnwinder {
            proc_root: proc_root.into(),
            files: HashMap::new(),
            processes: HashMap::new(),
            cache: CacheX86_64::new(),
            stats: UnwindStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> UnwindStats {
        self.stats
    }

    /// Forgets processes not sampled for `idle` (they exited, or went quiet).
    pub fn forget_idle(&mut self, idle: Duration) {
        self.processes.retain(|_, p| p.used.elapsed() < idle);
    }

    /// The executable `tgid` runs now, by device and inode.
    fn exe_of(&self, tgid: u32) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(self.proc_root.join(tgid.to_string()).join("exe")).ok()?;
        Some((meta.dev(), meta.ino()))
    }

    fn load_process(&mut self, tgid: u32) -> ProcessModules {
        let exe = self.exe_of(tgid);
        let dir = self.proc_root.join(tgid.to_string());
        let maps = std::fs::read_to_string(dir.join("maps")).unwrap_or_default();
        let mappings = parse_exec_mappings(&maps);
        let mut unwinder = UnwinderX86_64::new();
        let mut ranges = Vec::new();
        // A process in our own root names files as we do; one in a container is read through its root.
        let same_root = std::fs::read_link(dir.join("root")).is_ok_and(|r| r == std::path::Path::new("/"));
        let files = mappings
            .iter()
            .map(|m| {
                let path: Arc<std::path::Path> = if same_root {
                    Arc::from(std::path::Path::new(&m.path))
                } else {
                    Arc::from(dir.join("root").join(m.path.trim_start_matches('/')))
                };
                (m.range.clone(), m.offset, path)
            })
            .collect();
        if self.files.len() > MAX_FILES {
            self.files.clear();
        }
        for m in mappings {
            let info = match self.files.get(&m.dev_inode) {
                Some(info) => info.clone(),
                None => {
                    // Through the process's root, so files in other mount namespaces (containers) resolve.
                    let path = dir.join("root").join(m.path.trim_start_matches('/'));
                    let info = read_file_info(&path).map(Arc::new);
                    match info {
                        Some(_) => self.stats.files_read += 1,
                        None => self.stats.files_failed += 1,
                    }
                    self.files.insert(m.dev_inode.clone(), info.clone());
                    info
                }
            };
            let Some(info) = info else { continue };
            let Some(base_avma) = base_avma(&info.segments, m.range.start, m.offset) else { continue };
            let section_info = ExplicitModuleSectionInfo {
                base_svma: 0,
                text_svma: info.text_svma.clone(),
                got_svma: info.got_svma.clone(),
                eh_frame_svma: info.eh_frame.as_ref().map(|(r, _)| r.clone()),
                eh_frame: info.eh_frame.as_ref().map(|(_, d)| d.clone()),
                eh_frame_hdr_svma: info.eh_frame_hdr.as_ref().map(|(r, _)| r.clone()),
                eh_frame_hdr: info.eh_frame_hdr.as_ref().map(|(_, d)| d.clone()),
                ..Default::default()
            };
            unwinder.add_module(Module::new(m.path.clone(), m.range.clone(), base_avma, section_info));
            ranges.push(m.range);
        }
        ProcessModules { unwinder, ranges, files, refreshed: Instant::now(), used: Instant::now(), exe }
    }

    /// The file and file offset of `addr` in `tgid`, from the mappings read when it was last unwound; they
    /// outlive the process, so its frames can still be named after it exits.
    pub fn locate(&self, tgid: u32, addr: u64) -> Option<(Arc<std::path::Path>, u64)> {
        let p = self.processes.get(&tgid)?;
        let (range, offset, path) = p.files.iter().find(|(r, _, _)| r.contains(&addr))?;
        Some((path.clone(), addr - range.start + offset))
    }

    /// Walks the stack of `tgid` from the registers and the stack bytes copied at `sp`, pushing each
    /// frame's lookup address (the `ip`, then each return address minus one, inside the call) to `out`,
    /// leaf first. Stops at the end of the copy, at code it has no unwind information for, or after
    /// [`MAX_FRAMES`].
    pub fn unwind(&mut self, tgid: u32, ip: u64, sp: u64, bp: u64, stack: &[u8], out: &mut Vec<u64>) {
        self.stats.stacks += 1;
        let stale = match self.processes.get(&tgid) {
            None => true,
            // An address in no known mapping: the mappings are read again at most once a second (code mapped
            // since, or JIT code that no file describes), but at once after an `exec`. A forked child sampled
            // before its `exec` would otherwise leave the new program unwound to its leaf for up to a second.
            Some(p) if !p.ranges.iter().any(|r| r.contains(&ip)) => {
                p.refreshed.elapsed() >= REFRESH_INTERVAL || self.exe_of(tgid) != p.exe
            }
            Some(_) => false,
        };
        if stale {
            if self.processes.len() >= MAX_PROCESSES {
                let oldest = self.processes.iter().min_by_key(|(_, p)| p.used).map(|(&t, _)| t);
                if let Some(t) = oldest {
                    self.processes.remove(&t);
                }
            }
            let modules = self.load_process(tgid);
            self.processes.insert(tgid, modules);
        }
        let Some(process) = self.processes.get_mut(&tgid) else { return };
        process.used = Instant::now();
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let off = usize::try_from(addr.checked_sub(sp).ok_or(())?).map_err(|_| ())?;
            let bytes = stack.get(off..off.checked_add(8).ok_or(())?).ok_or(())?;
            Ok(u64::from_ne_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let regs = UnwindRegsX86_64::new(ip, sp, bp);
        let mut frames = process.unwinder.iter_frames(ip, regs, &mut self.cache, &mut read_stack);
        while out.len() < MAX_FRAMES {
            match frames.next() {
                Ok(Some(FrameAddress::InstructionPointer(a))) => out.push(a),
                Ok(Some(f @ FrameAddress::ReturnAddress(_))) => out.push(f.address_for_lookup()),
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_executable_file_mappings_are_kept() {
        let maps = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234 /usr/bin/prog
55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234 /usr/bin/prog
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 
7f1000000000-7f1000100000 r-xp 00028000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
7f2000000000-7f2000001000 r-xp 00000000 fd:01 77 /tmp/a dir/with space
garbage line
";
        let m = parse_exec_mappings(maps);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[0].range, 0x55d0c0a01000..0x55d0c0a02000);
        assert_eq!(m[0].offset, 0x1000);
        assert_eq!(m[0].dev_inode, ("fd:01".to_owned(), 1234));
        assert_eq!(m[1].path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(m[2].path, "/tmp/a dir/with space");
    }

    /// A process that runs `exec` between two samples has its mappings read again at the second, though a
    /// second has not passed: the new program is unwound with its own files, not the old program's.
    #[test]
    fn an_exec_reloads_the_mappings_at_once() {
        let root = std::env::temp_dir().join(format!("loupe-unwind-exec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("42");
        std::fs::create_dir_all(dir.join("root/bin")).expect("dirs");
        for name in ["old", "new"] {
            std::fs::write(dir.join("root/bin").join(name), b"not an ELF file").expect("program");
        }
        let write_maps = |name: &str, inode: u32| {
            let maps = format!("55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 {inode} /bin/{name}\n");
            std::fs::write(dir.join("maps"), maps).expect("maps");
            let _ = std::fs::remove_file(dir.join("exe"));
            std::os::unix::fs::symlink(dir.join("root/bin").join(name), dir.join("exe")).expect("exe link");
        };
        let mut unwinder = DwarfUnwinder::new(&root);
        let mut out = Vec::new();
        write_maps("old", 1);
        unwinder.unwind(42, 0x1000, 0, 0, &[], &mut out);
        assert_eq!(unwinder.stats().files_failed, 1, "the old program's file was read");
        // Within the second, with the same executable: an unknown address does not read the mappings again.
        unwinder.unwind(42, 0x2000, 0, 0, &[], &mut out);
        assert_eq!(unwinder.stats().files_failed, 1);
        // `exec`: another executable, other mappings.
        write_maps("new", 2);
        unwinder.unwind(42, 0x55d0_c0a0_1800, 0, 0, &[], &mut out);
        assert_eq!(unwinder.stats().files_failed, 2, "the new program's file was read at once");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn mappings_are_placed_by_the_segment_they_map() {
        // clang/ld C binary: text segment at file offset 0x1000, vaddr 0x1000.
        let c = [(0, 0, 0x628), (0x1000, 0x1000, 0x1f5), (0x2000, 0x2000, 0x11c)];
        assert_eq!(base_avma(&c, 0x5555_0000_1000, 0x1000), Some(0x5555_0000_0000));
        // rustc binary: text at file offset 0x136f0, vaddr 0x146f0; its mapping starts at offset 0x13000,
        // which the first segment (0..0x136e4) also covers.
        let rust = [(0, 0, 0x136e4), (0x146f0, 0x136f0, 0x3e013)];
        assert_eq!(base_avma(&rust, 0x55f8_b7f0_4000, 0x13000), Some(0x55f8_b7ef_0000));
        assert_eq!(base_avma(&rust, 0x1000, 0x90000), None);
    }

    /// Unwinds this test's own stack, copied like the kernel copies it: the walk must pass through the
    /// test function into the test harness.
    #[test]
    #[inline(never)]
    fn unwinds_its_own_copied_stack() {
        let (ip, sp, bp): (u64, u64, u64);
        // SAFETY: reads rip, rsp and rbp into registers; no memory is touched.
        unsafe {
            std::arch::asm!("lea {ip}, [rip]", "mov {sp}, rsp", "mov {bp}, rbp", ip = out(reg) ip, sp = out(reg) sp, bp = out(reg) bp);
        }
        // The stack's top may lie less than 16 KiB above this frame, with nothing mapped beyond it
        // (a raw copy crashed there), so the copy goes through /proc/self/mem, which stops at the
        // first unmapped page the way the kernel's copy does.
        let mut copy = vec![0u8; 16384];
        let mem = std::fs::File::open("/proc/self/mem").expect("open /proc/self/mem");
        let mut got = 0;
        while got < copy.len() {
            match std::os::unix::fs::FileExt::read_at(&mem, &mut copy[got..], sp + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        copy.truncate(got);
        assert!(got >= 4096, "only {got} bytes of stack readable above the stack pointer");
        let mut unwinder = DwarfUnwinder::new("/proc");
        let mut frames = Vec::new();
        unwinder.unwind(std::process::id(), ip, sp, bp, &copy, &mut frames);
        assert!(frames.len() >= 3, "only {} frames: {frames:x?}", frames.len());
        assert_eq!(frames[0], ip);
        assert_eq!(unwinder.stats().stacks, 1);
        assert!(unwinder.stats().files_read >= 1);
    }
}
