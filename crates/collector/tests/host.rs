//! The host events program on this kernel: exits and TCP resets become rows.
//!
//! Owns checks of `HostEvents` against real processes and sockets; the rows' column logic has unit
//! tests beside the code. Must not assume it is alone on the host: it looks only for its own
//! children and its own ports.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_collector::{CollectorCounters, HostEvents, HostEventsConfig, Source, Tables, preflight};
use loupe_schema::host::{ProcExitEventRow, TcpStatsEventRow};
use loupe_store::{Store, StoreConfig, TimeRange};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn rows<T>(store: &Store, table: &str, from: fn(&arrow::record_batch::RecordBatch) -> Vec<T>) -> Vec<T> {
    store.table(table).map(|t| t.scan(TimeRange::ALL).iter().flat_map(from).collect()).unwrap_or_default()
}

#[test]
fn exits_and_resets_become_rows() {
    if !is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but not root: the eBPF tests would not run");
        eprintln!("skipping: needs root");
        return;
    }
    preflight::check().expect("preflight failed as root");
    let mut events =
        HostEvents::load(HostEventsConfig { asid: 0, push_interval: Duration::ZERO }).expect("host events load");
    let exit_hook = events.probes().iter().find(|p| p.name == "sched/sched_process_exit").expect("exit hook listed");
    assert!(exit_hook.attached, "{:?}", exit_hook.error);
    let store = Store::new(StoreConfig::default());
    let tables =
        Tables::register(&store, &HostEvents::table_specs(), Arc::new(CollectorCounters::default())).expect("tables");

    let three = Command::new("sh").args(["-c", "exit 3"]).spawn().expect("sh");
    let three_pid = i64::from(three.id());
    let mut killed = Command::new("sleep").arg("30").spawn().expect("sleep");
    let killed_pid = i64::from(killed.id());
    let killed_upid = loupe_common::Upid::for_local_pid(0, killed.id()).expect("sleep's upid").to_string();
    let _ = Command::new("kill").args(["-9", &killed_pid.to_string()]).status();
    let _ = killed.wait();
    let status = { three }.wait().expect("wait sh");
    assert_eq!(status.code(), Some(3));
    // A connection refused: the port was just free, nothing listens on it now.
    let closed_port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    assert!(TcpStream::connect(("127.0.0.1", closed_port)).is_err());
    // An abort: close with SO_LINGER 0 sends a reset from a socket (no incoming segment).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let abort_port = listener.local_addr().expect("addr").port();
    let client = TcpStream::connect(("127.0.0.1", abort_port)).expect("connect");
    let (_accepted, _) = listener.accept().expect("accept");
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket fd and a pointer to a linger struct of the size given.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&client),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(client);
    let resets_hooked = events.probes().iter().any(|p| p.name == "tp_btf/tcp_receive_reset" && p.attached);

    let pid_of = |upid: &str| upid.split(':').nth(1).and_then(|p| p.parse::<i64>().ok()).unwrap_or(-1);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        events.poll(&tables);
        let exits = rows(&store, "proc_exit_events", ProcExitEventRow::from_batch);
        let got = |pid| exits.iter().find(|r| pid_of(&r.upid) == pid).map(|r| (r.exit_code, r.signal, r.comm.clone()));
        let tcp = rows(&store, "tcp_stats_events", TcpStatsEventRow::from_batch);
        let received: i64 =
            tcp.iter().filter(|r| r.remote_port == i64::from(closed_port)).map(|r| r.resets_received).sum();
        let sent: i64 = tcp.iter().filter(|r| r.local_port == i64::from(closed_port)).map(|r| r.resets_sent).sum();
        let aborted: (i64, i64) = tcp
            .iter()
            .filter(|r| r.remote_port == i64::from(abort_port) || r.local_port == i64::from(abort_port))
            .fold((0, 0), |(s, r), row| (s + row.resets_sent, r + row.resets_received));
        let done = got(three_pid).is_some()
            && got(killed_pid).is_some()
            && (!resets_hooked || (received > 0 && sent > 0 && aborted.0 > 0 && aborted.1 > 0));
        if done || Instant::now() > deadline {
            assert_eq!(got(three_pid), Some((3, 0, "sh".to_string())), "exit 3");
            assert_eq!(got(killed_pid), Some((0, 9, "sleep".to_string())), "SIGKILL");
            let upid = exits.iter().find(|r| pid_of(&r.upid) == killed_pid).map(|r| r.upid.clone());
            assert_eq!(upid, Some(killed_upid), "the exit names the process as /proc did while it ran");
            if resets_hooked {
                assert_eq!(
                    (received, sent),
                    (1, 1),
                    "the refused connect: one reset each way ({tcp:?}, {:?})",
                    events.probes()
                );
                assert_eq!(aborted, (1, 1), "the SO_LINGER 0 close: one reset each way ({tcp:?})");
                let sender = tcp.iter().find(|r| r.remote_port == i64::from(abort_port) && r.resets_sent == 1);
                let me = loupe_common::Upid::for_local_pid(0, std::process::id()).expect("own upid").to_string();
                assert_eq!(sender.map(|r| r.upid.as_str()), Some(me.as_str()), "an abort runs in the closing process");
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
