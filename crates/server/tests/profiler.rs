//! End to end: the CPU profiler. A program with a named hot function reached through
//! `main → a → b → hot`, built without frame pointers (C with clang `-O2 -fomit-frame-pointer`, or Rust
//! with `rustc -C opt-level=3`), spins under `loupe up` with a 2 s profiler window. `px run` of
//! `px/perf_flamegraph` (bundled) must give, for each program's process, at least 80% of its samples to
//! stacks that pass through `main;a;b;hot` with `hot` as the leaf and every frame named; and
//! `px run … -o svg` must write an SVG flamegraph that shows the hot function.
//!
//! Owns only this acceptance check; it must not assume it is alone on the host: rows are filtered by
//! the test programs' pids.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::temp_dir;
use crate::e2e::{can_trace, login, px, start_loupe_with};

const C_PROGRAM: &str = r#"
#include <stdlib.h>
#include <time.h>
volatile unsigned long sink;
__attribute__((noinline)) unsigned long hot(unsigned long n) {
    unsigned long x = 0;
    for (unsigned long i = 0; i < n; i++) x = x * 31 + (i ^ (x >> 7));
    return x;
}
__attribute__((noinline)) unsigned long b(unsigned long n) { unsigned long r = hot(n); sink += r; return r + 1; }
__attribute__((noinline)) unsigned long a(unsigned long n) { unsigned long r = b(n); sink += r; return r + 2; }
int main(int argc, char **argv) {
    time_t end = time(NULL) + atoi(argv[1]);
    unsigned long n = strtoul(argv[2], NULL, 10);
    while (time(NULL) < end) sink += a(n);
    return 0;
}
"#;

const RUST_PROGRAM: &str = r#"
use std::hint::black_box;
use std::time::{Duration, Instant};
#[inline(never)]
fn hot(n: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..n { x = x.wrapping_mul(31).wrapping_add(i ^ (x >> 7)); }
    black_box(x)
}
#[inline(never)]
fn b(n: u64) -> u64 { black_box(hot(n)).wrapping_add(1) }
#[inline(never)]
fn a(n: u64) -> u64 { black_box(b(n)).wrapping_add(2) }
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let end = Instant::now() + Duration::from_secs(args[1].parse().expect("seconds"));
    let n: u64 = args[2].parse().expect("n");
    let mut s = 0u64;
    while Instant::now() < end { s = s.wrapping_add(a(black_box(n))); }
    black_box(s);
}
"#;

/// How long each program spins.
const RUN_SECS: &str = "6";

fn build_c(dir: &Path) -> PathBuf {
    let src = dir.join("hot.c");
    std::fs::write(&src, C_PROGRAM).expect("write hot.c");
    let bin = dir.join("hot_c");
    let out = Command::new("clang")
        .args(["-O2", "-fomit-frame-pointer", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("run clang (scripts/test.sh installs it)");
    assert!(out.status.success(), "clang failed: {}", String::from_utf8_lossy(&out.stderr));
    bin
}

fn build_rust(dir: &Path) -> PathBuf {
    let src = dir.join("hot.rs");
    std::fs::write(&src, RUST_PROGRAM).expect("write hot.rs");
    let bin = dir.join("hot_rust");
    // A release build: no frame pointers (rustc's default on x86_64), no debug info.
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["-C", "opt-level=3", "-C", "debuginfo=0", "--edition", "2021", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("run rustc");
    assert!(out.status.success(), "rustc failed: {}", String::from_utf8_lossy(&out.stderr));
    bin
}

fn spawn(bin: &Path) -> Child {
    Command::new(bin).args([RUN_SECS, "200000"]).stdout(Stdio::null()).spawn().expect("spawn test program")
}

/// Whether `frame` names function `f`: exactly (C, or a compiler clone such as `f.constprop.0`) or as the
/// last path segment of a Rust name (`hot_rust::f`).
fn names(frame: &str, f: &str) -> bool {
    frame == f || frame.strip_prefix(f).is_some_and(|r| r.starts_with('.')) || frame.ends_with(&format!("::{f}"))
}

/// The stack passes through `main`, `a`, `b`, `hot` in a row, `hot` is its leaf, and no frame is unknown.
fn is_hot_path(stack: &str) -> bool {
    let frames: Vec<&str> = stack.split(';').collect();
    if frames.iter().any(|f| f.is_empty() || f.contains("[unknown]")) {
        return false;
    }
    let n = frames.len();
    n >= 4
        && names(frames[n - 1], "hot")
        && names(frames[n - 2], "b")
        && names(frames[n - 3], "a")
        && names(frames[n - 4], "main")
}

/// (samples on the hot path, all samples) of `pid` in `rows` of `px/perf_flamegraph`.
fn share(rows: &[Value], pid: u32) -> (i64, i64, Vec<(String, i64)>) {
    let (mut hot, mut total, mut others) = (0, 0, Vec::new());
    for row in rows {
        if row["pid"].as_i64() != Some(i64::from(pid)) {
            continue;
        }
        let stack = row["stack_trace"].as_str().unwrap_or_default();
        let count = row["count"].as_i64().unwrap_or(0);
        total += count;
        if is_hot_path(stack) {
            hot += count;
        } else {
            others.push((stack.to_owned(), count));
        }
    }
    others.sort_by_key(|(_, c)| -c);
    others.truncate(5);
    (hot, total, others)
}

#[test]
fn profiles_name_the_hot_path_of_a_c_program_without_frame_pointers() {
    if !can_trace() {
        return;
    }
    let dir = temp_dir("profiler-c");
    check_hot_path(&[("C -O2 -fomit-frame-pointer", build_c(&dir))]);
}

#[test]
fn profiles_name_the_hot_path_of_a_rust_release_binary() {
    if !can_trace() {
        return;
    }
    let dir = temp_dir("profiler-rust");
    check_hot_path(&[("Rust release", build_rust(&dir))]);
}

/// Runs each program under `loupe up`, then checks its hot path's share and the SVG flamegraph.
fn check_hot_path(programs: &[(&str, PathBuf)]) {
    let (_loupe, _metrics_port, api_port) = start_loupe_with(&["--profiler-window", "2s"]);
    login(api_port);
    let mut children: Vec<(&str, Child)> = programs.iter().map(|(what, bin)| (*what, spawn(bin))).collect();
    let pids: Vec<(&str, u32)> = children.iter().map(|(what, c)| (*what, c.id())).collect();
    for (what, child) in &mut children {
        assert!(child.wait().expect("wait").success(), "{what} failed");
    }
    // The last window ends at most one window later.
    std::thread::sleep(Duration::from_secs(3));

    // Under load the agent may lag a window or two behind: ask again until both processes have rows.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let out = px(api_port, &["run", "px/perf_flamegraph", "-o", "json", "--", "--start_time=-5m"]);
        assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect();
        let enough = pids.iter().all(|&(_, pid)| share(&rows, pid).1 >= 20);
        if enough || std::time::Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    for &(what, pid) in &pids {
        let (hot, total, others) = share(&rows, pid);
        assert!(
            total >= 20,
            "{what}: only {total} samples of pid {pid} (6 s at 99 Hz should give ~590); {} rows, the first: {:?}",
            rows.len(),
            rows.first()
        );
        eprintln!("{what}: main;a;b;hot named in {hot} of {total} samples; others: {others:?}");
        assert!(
            hot * 5 >= total * 4,
            "{what}: main;a;b;hot named in {hot} of {total} samples; the most frequent other stacks: {others:#?}"
        );
    }

    let out = px(api_port, &["run", "px/perf_flamegraph", "-o", "svg", "--", "--start_time=-5m"]);
    assert!(out.status.success(), "px -o svg failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("<?xml") && text.contains("<svg"), "not an SVG: {}", &text[..text.len().min(200)]);
    assert!(text.contains("hot"), "the hot function is not in the flamegraph");
}
