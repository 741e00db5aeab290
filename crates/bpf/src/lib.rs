//! Prebuilt CO-RE eBPF objects and their C sources.
//!
//! Owns the kernel programs (`c/*.bpf.c`), the committed objects built from them (`obj/`) and
//! `build.sh`, which regenerates the objects. Must not load or attach anything: that is the
//! collector's loader. Cargo never runs clang; the `committed_objects_are_fresh` test checks that
//! every committed object matches its source.

/// Bytes with 8-byte alignment, so ELF parsers may read them in place.
#[repr(C, align(8))]
struct Aligned<B: ?Sized> {
    bytes: B,
}

static SOCKET_TRACE: &Aligned<[u8]> = &Aligned { bytes: *include_bytes!("../obj/socket_trace.bpf.o") };

/// The socket tracer: syscall tracepoints for connect/accept/close and the read/write family,
/// emitting the records described in `loupe_bpf_common` into the `events` ring buffer.
///
/// 8-byte aligned, as aya's `EbpfLoader::load` expects.
pub const SOCKET_TRACE_OBJ: &[u8] = &SOCKET_TRACE.bytes;

static HOST: &Aligned<[u8]> = &Aligned { bytes: *include_bytes!("../obj/host.bpf.o") };

/// Host events: process exits (`sched:sched_process_exit`) and TCP retransmits and resets (the
/// `tcp_retransmit_skb`, `tcp_send_reset` and `tcp_receive_reset` BTF tracepoints), one record each
/// into the `host_events` ring buffer.
///
/// 8-byte aligned, as aya's `EbpfLoader::load` expects.
pub const HOST_OBJ: &[u8] = &HOST.bytes;

static PROFILER: &Aligned<[u8]> = &Aligned { bytes: *include_bytes!("../obj/profiler.bpf.o") };

/// The CPU profiler: a `perf_event` program sampling stacks into double-buffered stack maps and either
/// counting them per window in the kernel (frame pointers) or sending the user registers and stack bytes
/// to the `samples` ring buffer (for unwinding with `.eh_frame` in user space).
///
/// 8-byte aligned, as aya's `EbpfLoader::load` expects.
pub const PROFILER_OBJ: &[u8] = &PROFILER.bytes;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    #[test]
    fn object_is_aligned_elf() {
        assert_eq!(super::SOCKET_TRACE_OBJ.as_ptr() as usize % 8, 0);
        assert_eq!(&super::SOCKET_TRACE_OBJ[..4], b"\x7fELF");
        assert_eq!(super::HOST_OBJ.as_ptr() as usize % 8, 0);
        assert_eq!(&super::HOST_OBJ[..4], b"\x7fELF");
        assert_eq!(super::PROFILER_OBJ.as_ptr() as usize % 8, 0);
        assert_eq!(&super::PROFILER_OBJ[..4], b"\x7fELF");
    }

    #[test]
    fn committed_objects_are_fresh() {
        if Command::new("clang").arg("--version").output().is_err() {
            // CI installs clang (scripts/test.sh), so there a missing clang is a broken setup, not a skip.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but clang is not on PATH: the check cannot run"
            );
            eprintln!("skipping committed_objects_are_fresh: clang is not on PATH");
            return;
        }
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = std::env::temp_dir().join(format!("loupe-bpf-objs-{}", std::process::id()));
        let status = Command::new("bash")
            .arg(crate_dir.join("build.sh"))
            .env("LOUPE_BPF_OUT_DIR", &out)
            .status()
            .expect("failed to run bash crates/bpf/build.sh");
        assert!(status.success(), "crates/bpf/build.sh failed: {status}");
        let mut checked = 0;
        for entry in std::fs::read_dir(crate_dir.join("c")).expect("crates/bpf/c") {
            let name = entry.expect("dir entry").file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".bpf.c") else { continue };
            let obj = format!("{stem}.bpf.o");
            let fresh = std::fs::read(out.join(&obj)).unwrap_or_else(|e| panic!("build.sh wrote no {obj}: {e}"));
            let committed = std::fs::read(crate_dir.join("obj").join(&obj))
                .unwrap_or_else(|e| panic!("crates/bpf/obj/{obj} is missing ({e}): run `bash crates/bpf/build.sh`"));
            assert!(
                fresh == committed,
                "crates/bpf/obj/{obj} is stale (differs from what crates/bpf/c compiles to); \
                 regenerate it with `bash crates/bpf/build.sh` and commit it"
            );
            checked += 1;
        }
        let _ = std::fs::remove_dir_all(&out);
        assert!(checked > 0, "no crates/bpf/c/*.bpf.c found");
    }
}
