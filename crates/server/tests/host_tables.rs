//! End to end: the host tables (issue 19, parts 1 and 4). `loupe up` runs; this test starts a
//! python3 that holds 200 MiB, a shell that exits with code 3, and a connection refused by a closed
//! loopback port, then `px run`s PxL over `process_stats`, `proc_exit_events`, `network_stats` and
//! `tcp_stats_events`, naming processes with `px.upid_to_pid` and `px.upid_to_cmdline` as a script
//! over the protocol tables would.
//!
//! Owns only these acceptance checks; it must not assume it is alone on the host: every query
//! filters by its own children's pids or its own ports.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, temp_dir};
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

const HOLD_MIB: i64 = 200;

/// `px run -f script -o json`, one JSON object per row.
fn run(api_port: u16, script: &std::path::Path) -> Vec<Value> {
    let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect()
}

/// Runs `script` until `done` accepts its rows or `within` passes; returns the last rows.
fn run_until(api_port: u16, script: &std::path::Path, within: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let rows = run(api_port, script);
        if done(&rows) || Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `VmRSS` of `pid` in bytes, from `/proc/<pid>/status`.
fn vm_rss(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

#[test]
fn host_tables_report_memory_exits_and_resets() {
    if !can_trace() {
        return;
    }
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let dir = temp_dir("host-tables");

    // A process holding 200 MiB it has written (so resident), steady until killed.
    let code =
        format!("import sys, time\nb = b'x' * ({HOLD_MIB} << 20)\nprint('ready', flush=True)\ntime.sleep(120)\n");
    let mut holder = Command::new("python3")
        .args(["-c", &code, "loupe-rss-holder"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let holder_pid = holder.id();
    let mut ready = String::new();
    BufReader::new(holder.stdout.take().expect("stdout")).read_line(&mut ready).expect("read ready");
    assert_eq!(ready.trim(), "ready");
    let ready_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let mut holder = Guard(holder);

    // A process that exits with code 3.
    let status = Command::new("sh").args(["-c", "exit 3"]).spawn().expect("sh");
    let exit_pid = status.id();
    assert_eq!({ status }.wait().expect("wait").code(), Some(3));

    // A connection refused by a closed loopback port: a reset each way.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    assert!(std::net::TcpStream::connect(("127.0.0.1", closed_port)).is_err());

    // process_stats: the holder's newest sample, scanned after it was ready, matches its VmRSS.
    let script = write_script(
        &dir,
        "process_stats.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='process_stats')\ndf.pid = px.upid_to_pid(df.upid)\n\
             df = df[df.pid == {holder_pid}]\ndf.cmdline = px.upid_to_cmdline(df.upid)\n\
             df.t = px.time_to_int64(df.time_)\n\
             df = df[['t', 'pid', 'cmdline', 'rss_bytes', 'vsize_bytes', 'num_threads', 'cpu_utime_ns', 'minor_faults']]\n\
             px.display(df, 'process_stats')\n"
        ),
    );
    let newest = |rows: &[Value]| {
        rows.iter().filter(|r| r["t"].as_i64() >= Some(ready_ns)).max_by_key(|r| r["t"].as_i64()).cloned()
    };
    let rows = run_until(api_port, &script, Duration::from_secs(20), |rows| newest(rows).is_some());
    let row =
        newest(&rows).unwrap_or_else(|| panic!("no process_stats row of the holder after it was ready: {rows:?}"));
    let want = vm_rss(holder_pid);
    let rss = row["rss_bytes"].as_i64().expect("rss_bytes");
    assert!(want >= HOLD_MIB << 20, "VmRSS {want} below what the holder wrote");
    // Nothing changes in the holder once it is ready: the two reads of the kernel's counters agree
    // to within the per-CPU counters' slack.
    assert!((rss - want).abs() <= 1 << 20, "process_stats rss_bytes {rss} vs /proc VmRSS {want}");
    assert!(row["vsize_bytes"].as_i64() >= Some(rss));
    assert_eq!(row["num_threads"].as_i64(), Some(1));
    assert!(row["cpu_utime_ns"].as_i64() > Some(0) && row["minor_faults"].as_i64() > Some(100));
    let cmdline = row["cmdline"].as_str().unwrap_or_default();
    assert!(cmdline.contains("python3") && cmdline.ends_with(" loupe-rss-holder"), "cmdline {cmdline:?}");

    // proc_exit_events: the shell's exit code.
    let script = write_script(
        &dir,
        "proc_exit_events.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='proc_exit_events')\ndf.pid = px.upid_to_pid(df.upid)\n\
             df = df[df.pid == {exit_pid}]\ndf = df[['pid', 'exit_code', 'signal', 'comm']]\n\
             px.display(df, 'exits')\n"
        ),
    );
    let rows = run_until(api_port, &script, Duration::from_secs(10), |rows| !rows.is_empty());
    let got: Vec<(i64, i64, i64, &str)> = rows
        .iter()
        .map(|r| {
            let int = |c: &str| r[c].as_i64().unwrap_or(-1);
            (int("pid"), int("exit_code"), int("signal"), r["comm"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(got, [(i64::from(exit_pid), 3, 0, "sh")]);

    // network_stats: a row for this test's own network namespace.
    let netns: i64 = std::fs::read_link("/proc/self/ns/net")
        .expect("ns link")
        .to_string_lossy()
        .trim_start_matches("net:[")
        .trim_end_matches(']')
        .parse()
        .expect("inode");
    let script = write_script(
        &dir,
        "network_stats.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='network_stats')\ndf = df[df.netns == {netns}]\n\
             df = df.groupby(['netns', 'pod_id']).agg(rows=('rx_bytes', px.count), rx=('rx_bytes', px.max))\n\
             px.display(df, 'net')\n"
        ),
    );
    let rows = run_until(api_port, &script, Duration::from_secs(10), |rows| !rows.is_empty());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pod_id"].as_str(), Some(""), "no pods on a bare host");
    assert!(rows[0]["rows"].as_i64() >= Some(1));

    // A process gone is still named: the holder, killed, is in proc_exit_events with its signal, and
    // px.upid_to_cmdline gives the command line the agent saw while it ran.
    holder.0.kill().expect("kill the holder");
    let _ = holder.0.wait();
    let script = write_script(
        &dir,
        "killed.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='proc_exit_events')\ndf = df[px.upid_to_pid(df.upid) == {holder_pid}]\n\
             df.cmdline = px.upid_to_cmdline(df.upid)\ndf = df[['exit_code', 'signal', 'comm', 'cmdline']]\n\
             px.display(df, 'killed')\n"
        ),
    );
    let rows = run_until(api_port, &script, Duration::from_secs(10), |rows| !rows.is_empty());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["exit_code"].as_i64(), rows[0]["signal"].as_i64()), (Some(0), Some(9)), "{rows:?}");
    assert_eq!(rows[0]["cmdline"].as_str(), Some(cmdline), "the command line outlives the process");

    // tcp_stats_events: the refused connect, where the kernel has the tracepoints.
    if !std::path::Path::new("/sys/kernel/tracing/events/tcp/tcp_receive_reset").exists() {
        eprintln!("skipping the reset check: no tcp:tcp_receive_reset tracepoint on this kernel");
        return;
    }
    let script = write_script(
        &dir,
        "tcp_stats_events.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='tcp_stats_events')\n\
             df = df[(df.remote_port == {closed_port}) | (df.local_port == {closed_port})]\n\
             df = df.groupby(['local_port', 'remote_port']).agg(sent=('resets_sent', px.sum), \
             received=('resets_received', px.sum))\npx.display(df, 'tcp')\n"
        ),
    );
    let port = i64::from(closed_port);
    let totals = |rows: &[Value]| {
        let sum = |c: &str, side: &str| {
            rows.iter().filter(|r| r[side].as_i64() == Some(port)).map(|r| r[c].as_i64().unwrap_or(0)).sum::<i64>()
        };
        (sum("sent", "local_port"), sum("received", "remote_port"))
    };
    let rows = run_until(api_port, &script, Duration::from_secs(10), |rows| totals(rows) == (1, 1));
    assert_eq!(totals(&rows), (1, 1), "(resets sent by the closed port, resets received by the client): {rows:?}");
}
