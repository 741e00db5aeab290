//! Names for sampled addresses: user frames from the process's ELF symbols and DWARF (blazesym: Rust
//! and C++ names demangled, JIT code through `/tmp/perf-<pid>.map`), kernel frames from
//! `/proc/kallsyms`.
//!
//! Owns the symbolizer (which keeps each parsed binary, keyed by its file, across processes and windows)
//! and a bounded cache of names per (process, address). Must not unwind or read the BPF maps. An address
//! that cannot be named (stripped code, anonymous JIT memory, an exited process) becomes
//! [`UNKNOWN`]; nothing here panics on what a binary contains.

use std::collections::HashMap;
use std::sync::Arc;

use blazesym::symbolize::source::{Elf, Kernel, Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use blazesym::{MaybeDefault, Pid};

/// The name of a frame that cannot be resolved.
pub const UNKNOWN: &str = "[unknown]";
/// Names cached; past this the cache starts over (a window's working set is far smaller).
const MAX_CACHED: usize = 1 << 18;

/// Resolves addresses to names, caching them per process.
pub struct Symbols {
    symbolizer: Symbolizer,
    kernel_source: Source<'static>,
    user: HashMap<(u32, u64), Arc<str>>,
    /// Names by file and file offset, shared by every process mapping the file.
    files: HashMap<(Arc<std::path::Path>, u64), Arc<str>>,
    kernel: HashMap<u64, Arc<str>>,
    unknown: Arc<str>,
}

impl std::fmt::Debug for Symbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbols").field("user", &self.user.len()).field("kernel", &self.kernel.len()).finish()
    }
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

/// A symbol's demangled name: Rust (legacy and v0, without the hash) or C++ (only names that are Itanium
/// mangled, `_Z…`: a C function called `a` is not the type `signed char`); others as they are.
fn demangle(name: &str) -> std::borrow::Cow<'_, str> {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}").into();
    }
    if name.starts_with("_Z")
        && let Ok(symbol) = cpp_demangle::Symbol::new(name)
        && let Ok(d) = symbol.demangle()
    {
        return d.into();
    }
    name.into()
}

/// A name fit for a folded stack, demangled: `;` separates frames there, and newlines separate stacks.
fn clean(name: &str) -> Arc<str> {
    if name.is_empty() {
        return Arc::from(UNKNOWN);
    }
    let name = demangle(name);
    if name.contains([';', '\n']) { Arc::from(name.replace([';', '\n'], ":")) } else { Arc::from(name) }
}

impl Symbols {
    /// A symbolizer without source lines or inlined frames (names are all a folded stack shows); names are
    /// demangled here, not by blazesym.
    pub fn new() -> Symbols {
        let symbolizer = Symbolizer::builder()
            .enable_code_info(false)
            .enable_inlined_fns(false)
            .enable_demangling(false)
            .enable_auto_reload(true)
            .build();
        let kernel = Kernel {
            kallsyms: MaybeDefault::Default,
            vmlinux: MaybeDefault::None,
            kaslr_offset: None,
            debug_syms: false,
            ..Default::default()
        };
        Symbols {
            symbolizer,
            kernel_source: Source::Kernel(kernel),
            user: HashMap::new(),
            files: HashMap::new(),
            kernel: HashMap::new(),
            unknown: Arc::from(UNKNOWN),
        }
    }

    /// Names the addresses of `tgid` not named yet. Those `locate` places in a file (path, file offset) are
    /// named from the file, so they keep their names after the process exits; the rest (JIT code through
    /// `perf-<pid>.map`, the vDSO) through the live process.
    pub fn resolve_user(
        &mut self,
        tgid: u32,
        addrs: &[u64],
        locate: impl Fn(u64) -> Option<(Arc<std::path::Path>, u64)>,
    ) {
        let missing: Vec<u64> = {
            let mut m: Vec<u64> = addrs.iter().copied().filter(|&a| !self.user.contains_key(&(tgid, a))).collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        if missing.is_empty() {
            return;
        }
        if self.user.len() + missing.len() > MAX_CACHED {
            self.user.clear();
        }
        if self.files.len() + missing.len() > MAX_CACHED {
            self.files.clear();
        }
        let mut by_file: HashMap<Arc<std::path::Path>, Vec<(u64, u64)>> = HashMap::new();
        let mut live = Vec::new();
        for a in missing {
            match locate(a) {
                Some((path, offset)) => by_file.entry(path).or_default().push((a, offset)),
                None => live.push(a),
            }
        }
        for (path, addrs) in by_file {
            let todo: Vec<u64> =
                addrs.iter().map(|&(_, o)| o).filter(|&o| !self.files.contains_key(&(path.clone(), o))).collect();
            if !todo.is_empty() {
                let source = Source::Elf(Elf::new(path.to_path_buf()));
                let names = self.batch(&source, &todo, true);
                for (offset, name) in todo.into_iter().zip(names) {
                    self.files.insert((path.clone(), offset), name);
                }
            }
            for (a, offset) in addrs {
                let name = self.files.get(&(path.clone(), offset)).cloned().unwrap_or_else(|| self.unknown.clone());
                self.user.insert((tgid, a), name);
            }
        }
        if !live.is_empty() {
            let source = Source::Process(Process::new(Pid::from(tgid)));
            let names = self.batch(&source, &live, false);
            for (addr, name) in live.into_iter().zip(names) {
                self.user.insert((tgid, addr), name);
            }
        }
    }

    /// Names `addrs` in one pass; when one unreadable file fails the whole batch, one by one, so only its
    /// frames stay unknown (and all of them when the process is gone).
    fn batch(&self, source: &Source<'_>, addrs: &[u64], file_offsets: bool) -> Vec<Arc<str>> {
        fn input(a: &[u64], file_offsets: bool) -> Input<&[u64]> {
            if file_offsets { Input::FileOffset(a) } else { Input::AbsAddr(a) }
        }
        match self.symbolizer.symbolize(source, input(addrs, file_offsets)) {
            Ok(results) => results.iter().map(|r| self.name_of(r)).collect(),
            Err(_) => addrs
                .iter()
                .map(|a| match self.symbolizer.symbolize(source, input(std::slice::from_ref(a), file_offsets)) {
                    Ok(r) => r.first().map_or_else(|| self.unknown.clone(), |r| self.name_of(r)),
                    Err(_) => self.unknown.clone(),
                })
                .collect(),
        }
    }

    /// Names kernel addresses not named yet.
    pub fn resolve_kernel(&mut self, addrs: &[u64]) {
        let mut missing: Vec<u64> = addrs.iter().copied().filter(|a| !self.kernel.contains_key(a)).collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return;
        }
        if self.kernel.len() + missing.len() > MAX_CACHED {
            self.kernel.clear();
        }
        let names: Vec<Arc<str>> = match self.symbolizer.symbolize(&self.kernel_source, Input::AbsAddr(&missing)) {
            Ok(results) => results.iter().map(|r| self.name_of(r)).collect(),
            Err(_) => vec![self.unknown.clone(); missing.len()],
        };
        for (addr, name) in missing.into_iter().zip(names) {
            self.kernel.insert(addr, name);
        }
    }

    fn name_of(&self, r: &Symbolized<'_>) -> Arc<str> {
        match r {
            Symbolized::Sym(sym) => clean(&sym.name),
            Symbolized::Unknown(_) => self.unknown.clone(),
        }
    }

    /// The name of a user address resolved before ([`UNKNOWN`] if it was not).
    pub fn user(&self, tgid: u32, addr: u64) -> Arc<str> {
        self.user.get(&(tgid, addr)).cloned().unwrap_or_else(|| self.unknown.clone())
    }

    /// The name of a kernel address resolved before ([`UNKNOWN`] if it was not).
    pub fn kernel(&self, addr: u64) -> Arc<str> {
        self.kernel.get(&addr).cloned().unwrap_or_else(|| self.unknown.clone())
    }

    /// Forgets the names of `tgid` (it exited: its addresses may name other code in a new process).
    pub fn forget_process(&mut self, tgid: u32) {
        self.user.retain(|&(t, _), _| t != tgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn named_for_the_symbolizer_test() -> u64 {
        std::hint::black_box(42)
    }

    #[test]
    fn own_functions_are_named_and_garbage_is_unknown() {
        let mut symbols = Symbols::new();
        let tgid = std::process::id();
        let f = named_for_the_symbolizer_test as *const () as u64;
        assert_eq!(named_for_the_symbolizer_test(), 42);
        symbols.resolve_user(tgid, &[f, 8, u64::MAX - 4096], |_| None);
        let name = symbols.user(tgid, f);
        assert!(name.ends_with("named_for_the_symbolizer_test"), "{name}");
        assert!(!name.contains("::h"), "demangled without the hash: {name}");
        assert_eq!(&*symbols.user(tgid, 8), UNKNOWN);
        assert_eq!(&*symbols.user(tgid, u64::MAX - 4096), UNKNOWN);
        // Never resolved, and a process that does not exist.
        assert_eq!(&*symbols.user(tgid, 16), UNKNOWN);
        symbols.resolve_user(u32::MAX - 1, &[f], |_| None);
        assert_eq!(&*symbols.user(u32::MAX - 1, f), UNKNOWN);
    }

    #[test]
    fn rust_and_cpp_names_are_demangled_and_c_names_kept() {
        assert_eq!(&*clean("_ZN4core3fmt5write17h0123456789abcdefE"), "core::fmt::write");
        assert_eq!(&*clean("_RNvCs1234_7mycrate3hot"), "mycrate::hot");
        assert_eq!(&*clean("_ZN3foo3barEi"), "foo::bar(int)");
        // Single letters are Itanium type codes: C functions named so must stay as they are.
        for c in ["a", "b", "main", "hot", "_start"] {
            assert_eq!(&*clean(c), c);
        }
    }

    #[test]
    fn separators_never_reach_a_frame_name() {
        assert_eq!(&*clean("a;b\nc"), "a:b:c");
        assert_eq!(&*clean(""), UNKNOWN);
    }
}
