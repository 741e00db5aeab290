//! The socket tracer end to end: real sockets in this process, real BPF programs, decoded events.
//!
//! Owns what the kernel side must report for loopback TCP traffic (opens with roles and ports,
//! exact payload bytes with contiguous positions, gap accounting, the protocol gate, closes) over
//! every hooked syscall family. Must not depend on connection tracking or protocol parsing.
//!
//! Tests run in parallel in one process and each tracer sees the whole process, so every test
//! picks out its own connections by the listener's port.

use std::io::{IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use loupe_collector::events::{ConnKey, Direction, KernelEvent, Role};
use loupe_collector::loader::{Tracer, TracerConfig};
use loupe_collector::preflight::{self, PreflightError};

/// Loads a tracer that sees only this test process, or returns `None` when not root (after
/// checking that preflight says so). Under `CI=true` not being root fails the test: CI must cover the kernel.
fn tracer() -> Option<Tracer> {
    tracer_with(TracerConfig { exclude_tgid: 0, only_tgid: std::process::id(), ..TracerConfig::default() })
}

/// [`tracer`] with another configuration.
fn tracer_with(config: TracerConfig) -> Option<Tracer> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        match preflight::check() {
            Err(PreflightError::NotRoot { .. }) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but not root: the eBPF tests would not run (run CI as root)"
                );
                eprintln!("not root: checked that preflight reports NotRoot, tracer not loaded");
                return None;
            }
            Ok(_) => {} // CAP_BPF + CAP_PERFMON: go on.
            Err(other) => panic!("preflight failed: {other}"),
        }
    } else {
        preflight::check().expect("preflight failed as root");
    }
    let tracer = Tracer::load(&config).expect("tracer failed to load");
    for probe in tracer.probes() {
        assert!(probe.attached, "{} not attached: {:?}", probe.name, probe.error);
    }
    Some(tracer)
}

/// Events gathered from one tracer, with lookups by connection.
struct Capture {
    events: Vec<KernelEvent<'static>>,
}

impl Capture {
    /// Polls until `done` holds or 2 s pass.
    fn until(tracer: &mut Tracer, done: impl Fn(&Capture) -> bool) -> Capture {
        let mut capture = Capture { events: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            tracer.poll(|e| capture.events.push(e.into_owned()));
            if done(&capture) || Instant::now() > deadline {
                return capture;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The open event of the connection whose local (`local == true`) or remote port is `port`.
    fn open(&self, role: Role, port: u16, local: bool) -> Option<(ConnKey, SocketAddr, SocketAddr)> {
        self.events.iter().find_map(|e| match e {
            KernelEvent::ConnOpen { key, role: r, local: Some(l), remote: Some(rem), .. }
                if *r == role && (if local { l.port() } else { rem.port() }) == port =>
            {
                Some((*key, *l, *rem))
            }
            _ => None,
        })
    }

    fn closed(&self, key: ConnKey) -> Option<(u64, u64)> {
        self.events.iter().find_map(|e| match e {
            KernelEvent::ConnClose { key: k, bytes_sent, bytes_recv, .. } if *k == key => {
                Some((*bytes_sent, *bytes_recv))
            }
            _ => None,
        })
    }

    /// `(pos, msg_size, data)` of every data event of `key` in `direction`, sorted by pos.
    fn data(&self, key: ConnKey, direction: Direction) -> Vec<(u64, u64, Vec<u8>)> {
        let mut chunks: Vec<_> = self
            .events
            .iter()
            .filter_map(|e| match e {
                KernelEvent::Data { key: k, direction: d, pos, msg_size, data, .. } if *k == key && *d == direction => {
                    Some((*pos, *msg_size, data.to_vec()))
                }
                _ => None,
            })
            .collect();
        chunks.sort_by_key(|c| c.0);
        chunks
    }

    /// The stream bytes of `key` in `direction`, asserting positions start at 0, are
    /// contiguous and every byte was captured.
    fn stream(&self, key: ConnKey, direction: Direction) -> Vec<u8> {
        let mut out = Vec::new();
        for (pos, msg_size, data) in self.data(key, direction) {
            assert_eq!(pos, out.len() as u64, "gap or overlap before pos {pos}");
            assert_eq!(msg_size, data.len() as u64, "uncaptured bytes at pos {pos}");
            out.extend_from_slice(&data);
        }
        out
    }
}

const REQUEST: &[u8] = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

/// Reads until the end of an HTTP header block (enough for these tests' requests).
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf).expect("server read");
        assert!(n > 0, "client closed early");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn http_roundtrip_reports_opens_data_and_closes_on_both_sides() {
    let Some(mut tracer) = tracer() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let request = read_head(&mut stream);
        stream.write_all(RESPONSE).expect("server write");
        request
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let client_port = client.local_addr().expect("addr").port();
    client.write_all(REQUEST).expect("client write");
    let mut response = vec![0u8; RESPONSE.len()];
    client.read_exact(&mut response).expect("client read");
    drop(client);
    assert_eq!(server.join().expect("server thread"), REQUEST);
    assert_eq!(response, RESPONSE);

    let capture = Capture::until(&mut tracer, |c| {
        let (Some(cl), Some(sv)) = (c.open(Role::Client, port, false), c.open(Role::Server, port, true)) else {
            return false;
        };
        c.closed(cl.0).is_some() && c.closed(sv.0).is_some()
    });
    let (client_key, client_local, client_remote) =
        capture.open(Role::Client, port, false).expect("no client open event");
    let (server_key, server_local, server_remote) =
        capture.open(Role::Server, port, true).expect("no server open event");

    assert_eq!(client_remote, SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(client_local, SocketAddr::from(([127, 0, 0, 1], client_port)));
    assert_eq!(server_local, SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(server_remote, SocketAddr::from(([127, 0, 0, 1], client_port)));
    assert_eq!(client_key.tgid, std::process::id());
    assert_ne!(client_key, server_key);

    assert_eq!(capture.stream(client_key, Direction::Egress), REQUEST);
    assert_eq!(capture.stream(client_key, Direction::Ingress), RESPONSE);
    assert_eq!(capture.stream(server_key, Direction::Ingress), REQUEST);
    assert_eq!(capture.stream(server_key, Direction::Egress), RESPONSE);

    let len = |b: &[u8]| b.len() as u64;
    assert_eq!(capture.closed(client_key), Some((len(REQUEST), len(RESPONSE))));
    assert_eq!(capture.closed(server_key), Some((len(RESPONSE), len(REQUEST))));
}

/// write(2) every byte with the raw syscall (std would use send(2)).
fn libc_write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice of `bytes.len()` readable bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        assert!(n > 0, "write failed: {}", std::io::Error::last_os_error());
        bytes = &bytes[n as usize..];
    }
}

/// read(2) until EOF with the raw syscall, 16 KiB at a time.
fn libc_read_to_end(fd: i32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n >= 0, "read failed: {}", std::io::Error::last_os_error());
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

#[test]
fn large_write_accounts_for_every_byte_and_marks_the_gap() {
    let Some(mut tracer) = tracer() else { return };
    const TOTAL: usize = 100 * 1024;
    let mut body = b"POST /upload HTTP/1.1\r\nContent-Length: 102369\r\n\r\n".to_vec();
    body.extend((0..TOTAL - body.len()).map(|i| b'a' + (i % 26) as u8));
    assert_eq!(body.len(), TOTAL);

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        libc_read_to_end(stream.as_raw_fd())
    });
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    libc_write_all(client.as_raw_fd(), &body);
    drop(client);
    assert_eq!(server.join().expect("server thread"), body);

    let capture = Capture::until(&mut tracer, |c| {
        let (Some(cl), Some(sv)) = (c.open(Role::Client, port, false), c.open(Role::Server, port, true)) else {
            return false;
        };
        c.closed(cl.0).is_some() && c.closed(sv.0).is_some()
    });
    let (client_key, ..) = capture.open(Role::Client, port, false).expect("no client open");
    let (server_key, ..) = capture.open(Role::Server, port, true).expect("no server open");

    // Client side: one big write(2); positions stay contiguous, msg_size covers all bytes and the
    // captured bytes are the right ones, but not all were captured.
    let chunks = capture.data(client_key, Direction::Egress);
    let mut next = 0u64;
    let mut captured = 0usize;
    for (pos, msg_size, data) in &chunks {
        assert_eq!(*pos, next, "positions not contiguous");
        assert!(data.len() as u64 <= *msg_size);
        let at = *pos as usize;
        assert_eq!(data.as_slice(), &body[at..at + data.len()], "wrong bytes at {pos}");
        next += msg_size;
        captured += data.len();
    }
    assert_eq!(next, TOTAL as u64, "sum of msg_size on egress");
    assert!(captured < TOTAL, "a 100 KiB write should exceed the per-syscall capture");
    assert!(tracer.stats().truncated_chunks > 0);

    // Server side: 16 KiB read(2)s, each fully captured.
    assert_eq!(capture.stream(server_key, Direction::Ingress), body);
    assert_eq!(capture.closed(server_key), Some((0, TOTAL as u64)));
    assert_eq!(capture.closed(client_key), Some((TOTAL as u64, 0)));
}

/// Issue 13: on an HTTP connection the kernel copies the head and body budget only
/// (`http_copy_bytes`) and accounts for the rest as a gap of its exact size; other protocols keep
/// the general per-syscall limit.
#[test]
fn http_copies_only_its_budget_and_accounts_for_the_rest() {
    const LIMIT: u32 = 1024;
    let config = TracerConfig {
        exclude_tgid: 0,
        only_tgid: std::process::id(),
        http_copy_bytes: LIMIT,
        ..TracerConfig::default()
    };
    let Some(mut tracer) = tracer_with(config) else { return };
    let mut request = b"POST /big HTTP/1.1\r\nContent-Length: 6000\r\n\r\n".to_vec();
    request.extend((0..6000).map(|i| b'a' + (i % 26) as u8));
    let total = request.len() as u64;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        libc_read_to_end(stream.as_raw_fd())
    });
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    libc_write_all(client.as_raw_fd(), &request);
    drop(client);
    assert_eq!(server.join().expect("server thread"), request);
    let capture = Capture::until(&mut tracer, |c| {
        c.open(Role::Client, port, false).is_some_and(|(key, ..)| c.closed(key).is_some())
    });
    let (client_key, ..) = capture.open(Role::Client, port, false).expect("no client open");
    // One write(2): one record with the first LIMIT bytes, accounting for all of them.
    let chunks = capture.data(client_key, Direction::Egress);
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    let (pos, msg_size, data) = &chunks[0];
    assert_eq!((*pos, *msg_size, data.len()), (0, total, LIMIT as usize));
    assert_eq!(data.as_slice(), &request[..LIMIT as usize]);
    assert!(tracer.stats().truncated_chunks > 0);
}

#[test]
fn non_http_connection_is_counted_but_not_exported() {
    let Some(mut tracer) = tracer() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 6];
        stream.read_exact(&mut buf).expect("server read");
        stream.write_all(b"world\n").expect("server write");
        buf
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client.write_all(b"hello\n").expect("client write");
    let mut reply = [0u8; 6];
    client.read_exact(&mut reply).expect("client read");
    drop(client);
    assert_eq!(&server.join().expect("server thread"), b"hello\n");

    let capture = Capture::until(&mut tracer, |c| {
        let (Some(cl), Some(sv)) = (c.open(Role::Client, port, false), c.open(Role::Server, port, true)) else {
            return false;
        };
        c.closed(cl.0).is_some() && c.closed(sv.0).is_some()
    });
    let (client_key, ..) = capture.open(Role::Client, port, false).expect("no client open");
    let (server_key, ..) = capture.open(Role::Server, port, true).expect("no server open");
    for key in [client_key, server_key] {
        for direction in [Direction::Egress, Direction::Ingress] {
            assert!(capture.data(key, direction).is_empty(), "{key:?} {direction:?} exported data");
        }
    }
    assert_eq!(capture.closed(client_key), Some((6, 6)));
    assert_eq!(capture.closed(server_key), Some((6, 6)));
}

/// recvmsg(2) into two buffers until `want` bytes arrived.
fn recvmsg_exact(fd: i32, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < want {
        let mut a = [0u8; 7];
        let mut b = [0u8; 256];
        let mut iov = [
            libc::iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() },
            libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() },
        ];
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        // SAFETY: `msg` points at two live, writable iovecs for the duration of the call.
        let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
        assert!(n > 0, "recvmsg failed: {}", std::io::Error::last_os_error());
        let n = n as usize;
        let first = n.min(a.len());
        out.extend_from_slice(&a[..first]);
        out.extend_from_slice(&b[..n - first]);
    }
    out
}

/// readv(2) into two buffers until `want` bytes arrived.
fn readv_exact(fd: i32, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < want {
        let mut a = [0u8; 5];
        let mut b = [0u8; 256];
        let iov = [
            libc::iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() },
            libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() },
        ];
        // SAFETY: `iov` describes two live, writable buffers for the duration of the call.
        let n = unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as i32) };
        assert!(n > 0, "readv failed: {}", std::io::Error::last_os_error());
        let n = n as usize;
        let first = n.min(a.len());
        out.extend_from_slice(&a[..first]);
        out.extend_from_slice(&b[..n - first]);
    }
    out
}

#[test]
fn vectored_and_msg_syscalls_are_captured() {
    let Some(mut tracer) = tracer() else { return };
    assert!(tracer.args_at_exit(), "Linux 6.18 has bpf_task_pt_regs: arguments are read at exit");
    vectored_and_msg_exchange(&mut tracer);
}

/// The same with the arguments stashed by enter probes, as on kernels without `bpf_task_pt_regs`.
#[test]
fn vectored_and_msg_syscalls_are_captured_with_arguments_stashed_at_entry() {
    let config =
        TracerConfig { exclude_tgid: 0, only_tgid: std::process::id(), args_at_exit: false, ..TracerConfig::default() };
    let Some(mut tracer) = tracer_with(config) else { return };
    assert!(!tracer.args_at_exit());
    assert_eq!(tracer.probes().len(), 35, "every enter probe attached");
    vectored_and_msg_exchange(&mut tracer);
}

/// writev of 33 iovecs (one empty), recvmsg, sendmsg of 3 iovecs (one empty) and readv between a client
/// and a server thread of this process: each side's streams are captured exactly.
fn vectored_and_msg_exchange(tracer: &mut Tracer) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let fd = stream.as_raw_fd();
        let request = recvmsg_exact(fd, REQUEST.len());
        let (head, body) = RESPONSE.split_at(17);
        let iov = [
            libc::iovec { iov_base: head.as_ptr().cast_mut().cast(), iov_len: head.len() },
            libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
            libc::iovec { iov_base: body.as_ptr().cast_mut().cast(), iov_len: body.len() },
        ];
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr().cast_mut();
        msg.msg_iovlen = iov.len();
        // SAFETY: `msg` points at live iovecs over RESPONSE (read-only use by sendmsg).
        let sent = unsafe { libc::sendmsg(fd, &msg, 0) };
        assert_eq!(sent, RESPONSE.len() as isize);
        request
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // One iovec per byte (32), as gRPC's C core writes a call as dozens of small iovecs, plus an empty one.
    let mut slices: Vec<IoSlice<'_>> = REQUEST.chunks(1).map(IoSlice::new).collect();
    slices.insert(3, IoSlice::new(&[]));
    let written = client.write_vectored(&slices).expect("writev");
    assert_eq!(written, REQUEST.len(), "loopback writev should be complete");
    let response = readv_exact(client.as_raw_fd(), RESPONSE.len());
    drop(client);
    assert_eq!(server.join().expect("server thread"), REQUEST);
    assert_eq!(response, RESPONSE);

    let capture = Capture::until(tracer, |c| {
        let (Some(cl), Some(sv)) = (c.open(Role::Client, port, false), c.open(Role::Server, port, true)) else {
            return false;
        };
        c.closed(cl.0).is_some() && c.closed(sv.0).is_some()
    });
    let (client_key, ..) = capture.open(Role::Client, port, false).expect("no client open");
    let (server_key, ..) = capture.open(Role::Server, port, true).expect("no server open");
    assert_eq!(capture.stream(client_key, Direction::Egress), REQUEST, "writev");
    assert_eq!(capture.stream(server_key, Direction::Ingress), REQUEST, "recvmsg");
    assert_eq!(capture.stream(server_key, Direction::Egress), RESPONSE, "sendmsg");
    assert_eq!(capture.stream(client_key, Direction::Ingress), RESPONSE, "readv");
    // writev's iovecs are packed into one record.
    assert_eq!(capture.data(client_key, Direction::Egress).len(), 1);
}

/// The kernel side of `sendfile` and `splice`: real syscalls on a loopback socket of this process. The
/// bytes they move are not copied, but each is accounted for as a payload-less record (a gap of its size).
#[test]
fn sendfile_and_splice_are_counted_as_gaps_of_their_size() {
    let Some(mut tracer) = tracer() else { return };
    for name in ["sys_enter_sendfile64", "sys_exit_sendfile64", "sys_enter_splice", "sys_exit_splice"] {
        let probe = tracer.probes().iter().find(|p| p.name.ends_with(name)).expect("probe listed");
        assert!(probe.attached, "{name}: {:?}", probe.error);
    }

    const FILE_BYTES: usize = 40_000;
    const SPLICED: usize = 3_000;
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", FILE_BYTES + SPLICED);
    let path = std::env::temp_dir().join(format!("loupe-sendfile-{}", std::process::id()));
    std::fs::write(&path, vec![b'f'; FILE_BYTES]).expect("write file");
    let file = std::fs::File::open(&path).expect("open file");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("read");
        got
    });
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client.write_all(head.as_bytes()).expect("write head");
    let mut left = FILE_BYTES;
    while left > 0 {
        // SAFETY: both fds are open for the whole call; a null offset uses the file's own.
        let n = unsafe { libc::sendfile(client.as_raw_fd(), file.as_raw_fd(), std::ptr::null_mut(), left) };
        assert!(n > 0, "sendfile: {}", std::io::Error::last_os_error());
        left -= n as usize;
    }
    let mut pipe = [0i32; 2];
    // SAFETY: `pipe` has room for the two fds pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let filler = vec![b's'; SPLICED];
    // SAFETY: `filler` is valid for SPLICED bytes; the pipe's write end is open.
    assert_eq!(unsafe { libc::write(pipe[1], filler.as_ptr().cast(), SPLICED) }, SPLICED as isize);
    let mut left = SPLICED;
    while left > 0 {
        // SAFETY: both fds are open; null offsets are required for a pipe and a socket.
        let n =
            unsafe { libc::splice(pipe[0], std::ptr::null_mut(), client.as_raw_fd(), std::ptr::null_mut(), left, 0) };
        assert!(n > 0, "splice: {}", std::io::Error::last_os_error());
        left -= n as usize;
    }
    // SAFETY: closing the pipe fds this test opened, once each.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    drop(client);
    let received = server.join().expect("server");
    let _ = std::fs::remove_file(&path);
    assert_eq!(received.len(), head.len() + FILE_BYTES + SPLICED);

    let total = (head.len() + FILE_BYTES + SPLICED) as u64;
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let client_key = loop {
        tracer.poll(|e| events.push(e.into_owned()));
        let key = events.iter().find_map(|e| match e {
            KernelEvent::ConnOpen { key, role: Role::Client, remote: Some(r), .. } if r.port() == port => Some(*key),
            _ => None,
        });
        let closed =
            key.is_some_and(|k| events.iter().any(|e| matches!(e, KernelEvent::ConnClose { key, .. } if *key == k)));
        if closed || std::time::Instant::now() > deadline {
            break key.expect("no client open event");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut next = 0;
    let mut not_copied = Vec::new();
    for event in &events {
        if let KernelEvent::Data { key, direction: Direction::Egress, pos, msg_size, data, .. } = event
            && *key == client_key
        {
            assert_eq!(*pos, next, "positions are contiguous");
            next += msg_size;
            if data.is_empty() {
                not_copied.push((*pos, *msg_size));
            }
        }
    }
    assert_eq!(next, total, "every byte sent is accounted for");
    let uncopied: u64 = not_copied.iter().map(|(_, n)| n).sum();
    assert_eq!(uncopied, (FILE_BYTES + SPLICED) as u64, "{not_copied:?}");
    assert_eq!(not_copied.first().map(|(pos, _)| *pos), Some(head.len() as u64));
    let closed = events.iter().find_map(|e| match e {
        KernelEvent::ConnClose { key, bytes_sent, .. } if *key == client_key => Some(*bytes_sent),
        _ => None,
    });
    assert_eq!(closed, Some(total));
    assert!(tracer.stats().not_copied >= 2);
}

#[test]
fn tracer_reports_every_probe_and_counts_events() {
    let Some(mut tracer) = tracer() else { return };
    // The ten data syscalls' enter probes are not needed: their exits read the arguments.
    assert!(tracer.args_at_exit());
    assert_eq!(tracer.probes().len(), 25);
    // One real exchange, so the counters have something to count.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        read_head(&mut stream);
        stream.write_all(RESPONSE).expect("respond");
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client.write_all(REQUEST).expect("request");
    let mut response = Vec::new();
    client.read_to_end(&mut response).expect("response");
    server.join().expect("server thread");
    assert_eq!(response, RESPONSE);
    drop(client);
    let capture = Capture::until(&mut tracer, |c| {
        c.open(Role::Client, port, false).is_some_and(|(key, ..)| c.closed(key).is_some())
    });
    let (key, ..) = capture.open(Role::Client, port, false).expect("no client open");
    assert_eq!(capture.closed(key), Some((REQUEST.len() as u64, RESPONSE.len() as u64)));
    let stats = tracer.stats();
    // Every record polled was decoded and counted. Other tests of this process add events of their own, so
    // the kernel's count is at least ours (some may still wait in the ring).
    assert_eq!(stats.decoded, capture.events.len() as u64);
    assert_eq!(stats.decode_errors, 0);
    assert_eq!(stats.ringbuf_reserve_failures, 0);
    assert!(stats.events >= stats.decoded, "{stats:?}");
}

#[test]
fn connection_first_seen_on_data_opens_with_unknown_role() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    // Connected before the tracer exists: neither connect nor accept is seen.
    let Some(mut tracer) = tracer() else { return };
    client.write_all(REQUEST).expect("client write");
    assert_eq!(read_head(&mut server), REQUEST);
    server.write_all(RESPONSE).expect("server write");
    let mut response = vec![0u8; RESPONSE.len()];
    client.read_exact(&mut response).expect("client read");
    drop(client);
    drop(server);

    let capture = Capture::until(&mut tracer, |c| {
        let (Some(cl), Some(sv)) = (c.open(Role::Unknown, port, false), c.open(Role::Unknown, port, true)) else {
            return false;
        };
        c.closed(cl.0).is_some() && c.closed(sv.0).is_some()
    });
    let (client_key, ..) = capture.open(Role::Unknown, port, false).expect("no open for the client side");
    let (server_key, ..) = capture.open(Role::Unknown, port, true).expect("no open for the server side");
    assert_eq!(capture.stream(client_key, Direction::Egress), REQUEST);
    assert_eq!(capture.stream(server_key, Direction::Ingress), REQUEST);
    assert_eq!(capture.stream(server_key, Direction::Egress), RESPONSE);
    assert_eq!(capture.stream(client_key, Direction::Ingress), RESPONSE);
}

#[test]
fn ipv6_connection_reports_v6_addresses() {
    let Some(mut tracer) = tracer() else { return };
    let listener = TcpListener::bind("[::1]:0").expect("bind [::1]");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let request = read_head(&mut stream);
        stream.write_all(RESPONSE).expect("server write");
        request
    });
    let mut client = TcpStream::connect(("::1", port)).expect("connect");
    let client_port = client.local_addr().expect("addr").port();
    client.write_all(REQUEST).expect("client write");
    let mut response = vec![0u8; RESPONSE.len()];
    client.read_exact(&mut response).expect("client read");
    drop(client);
    assert_eq!(server.join().expect("server thread"), REQUEST);

    let capture = Capture::until(&mut tracer, |c| {
        let (Some(cl), Some(sv)) = (c.open(Role::Client, port, false), c.open(Role::Server, port, true)) else {
            return false;
        };
        c.closed(cl.0).is_some() && c.closed(sv.0).is_some()
    });
    let loopback = std::net::Ipv6Addr::LOCALHOST;
    let (client_key, client_local, client_remote) = capture.open(Role::Client, port, false).expect("no client open");
    let (_, server_local, server_remote) = capture.open(Role::Server, port, true).expect("no server open");
    assert_eq!(client_remote, SocketAddr::from((loopback, port)));
    assert_eq!(client_local, SocketAddr::from((loopback, client_port)));
    assert_eq!(server_local, SocketAddr::from((loopback, port)));
    assert_eq!(server_remote, SocketAddr::from((loopback, client_port)));
    assert_eq!(capture.stream(client_key, Direction::Egress), REQUEST);
}

/// The lead polls from a dedicated thread: the tracer must move there.
#[test]
fn tracer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Tracer>();
}

/// One request/reply exchange over loopback; returns the server's port.
fn exchange(request: &'static [u8], reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; request.len()];
        stream.read_exact(&mut buf).expect("server read");
        stream.write_all(reply).expect("server write");
        buf
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client.write_all(request).expect("client write");
    let mut got = vec![0u8; reply.len()];
    client.read_exact(&mut got).expect("client read");
    drop(client);
    assert_eq!(server.join().expect("server thread"), request);
    port
}

#[test]
fn redis_commands_are_exported_and_other_star_lines_are_not() {
    let Some(mut tracer) = tracer() else { return };
    const COMMAND: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    const REPLY: &[u8] = b"$1\r\nv\r\n";
    const INLINE: &[u8] = b"PING\r\n";
    let resp_port = exchange(COMMAND, REPLY);
    let inline_port = exchange(INLINE, b"+PONG\r\n");
    let other_port = exchange(b"*not resp\r\n", b"ok\n");
    let ports = [resp_port, inline_port, other_port];
    let capture = Capture::until(&mut tracer, |c| {
        ports.iter().all(|&port| {
            let (Some(cl), Some(sv)) = (c.open(Role::Client, port, false), c.open(Role::Server, port, true)) else {
                return false;
            };
            c.closed(cl.0).is_some() && c.closed(sv.0).is_some()
        })
    });
    for (port, request, reply) in [(resp_port, COMMAND, REPLY), (inline_port, INLINE, &b"+PONG\r\n"[..])] {
        let (client, ..) = capture.open(Role::Client, port, false).expect("no client open");
        let (server, ..) = capture.open(Role::Server, port, true).expect("no server open");
        assert_eq!(capture.stream(client, Direction::Egress), request);
        assert_eq!(capture.stream(client, Direction::Ingress), reply);
        assert_eq!(capture.stream(server, Direction::Ingress), request);
        assert_eq!(capture.stream(server, Direction::Egress), reply);
    }
    for key in [capture.open(Role::Client, other_port, false), capture.open(Role::Server, other_port, true)] {
        let (key, ..) = key.expect("no open of the other connection");
        for direction in [Direction::Egress, Direction::Ingress] {
            assert!(capture.data(key, direction).is_empty(), "{key:?} {direction:?} exported data");
        }
    }
}

/// Root or not: the kernel tests below need a tracer configured their own way.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A child that, once told to go, sends `n` HTTP requests of `size` bytes each over one loopback
/// connection to itself (one `send` each) and reads them all, then waits to be told to exit. A
/// separate process, so a tracer limited to it sees none of the other tests' traffic.
const DROP_CHILD: &str = r#"
import socket, sys, threading
n, size = int(sys.argv[1]), int(sys.argv[2])
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
print("ready", flush=True); sys.stdin.readline()
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
head = b"GET /"; tail = b" HTTP/1.1\r\nHost: x\r\n\r\n"
msg = head + b"a" * (size - len(head) - len(tail)) + tail
def drain():
    got = 0
    while got < n * size:
        b = s.recv(65536)
        if not b: break
        got += len(b)
t = threading.Thread(target=drain); t.start()
for _ in range(n): c.sendall(msg)
t.join()
print("done", flush=True); sys.stdin.readline()
"#;

/// Issue 13: nothing is lost silently. A one-page ring buffer that nobody drains while 300 requests
/// go out overflows; afterwards every record the kernel submitted was decoded, and the stream bytes
/// the decoded records account for plus the bytes the kernel counted as dropped are exactly the
/// bytes both sides moved.
#[test]
fn a_full_ring_buffer_counts_exactly_what_it_dropped() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    if !is_root() {
        return;
    }
    const N: u64 = 300;
    const SIZE: u64 = 1000;
    preflight::check().expect("preflight failed as root");
    let mut child = Command::new("python3")
        .args(["-c", DROP_CHILD, &N.to_string(), &SIZE.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed (scripts/test.sh installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("child ready");
    assert_eq!(line, "ready\n");
    let page = 4096;
    let config = TracerConfig { exclude_tgid: 0, only_tgid: child.id(), ring_bytes: page, ..TracerConfig::default() };
    let mut tracer = Tracer::load(&config).expect("tracer failed to load");
    stdin.write_all(b"go\n").expect("go");
    line.clear();
    stdout.read_line(&mut line).expect("child done");
    assert_eq!(line, "done\n");

    let (mut records, mut accounted) = (0u64, 0u64);
    for _ in 0..3 {
        tracer.poll(|e| {
            records += 1;
            if let KernelEvent::Data { msg_size, .. } = e {
                accounted += msg_size;
            }
        });
    }
    let stats = tracer.stats();
    stdin.write_all(b"exit\n").expect("exit");
    child.wait().expect("child exits");
    assert!(stats.ringbuf_reserve_failures > 0, "the ring never filled: {stats:?}");
    assert_eq!(stats.events, records, "every submitted record was decoded: {stats:?}");
    assert_eq!(stats.decoded, records);
    assert_eq!(accounted + stats.ringbuf_failed_bytes, 2 * N * SIZE, "{stats:?}");
}

/// Issue 13: the agent does not trace itself. Connections to an excluded port are left out on both
/// ends, and a port the excluded process (the agent) listens on becomes excluded by itself.
#[test]
fn connections_to_excluded_ports_are_left_out() {
    if !is_root() {
        return;
    }
    preflight::check().expect("preflight failed as root");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = TracerConfig {
        exclude_tgid: 0,
        only_tgid: std::process::id(),
        exclude_ports: vec![port],
        ..TracerConfig::default()
    };
    let mut tracer = Tracer::load(&config).expect("tracer failed to load");
    assert_eq!(tracer.excluded_ports(), [port]);
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        read_head(&mut stream);
        stream.write_all(RESPONSE).expect("respond");
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client.write_all(REQUEST).expect("request");
    let mut response = vec![0u8; RESPONSE.len()];
    client.read_exact(&mut response).expect("response");
    server.join().expect("server");
    drop(client);
    // A connection of this process that is not excluded, to know the tracer saw this far.
    let other = exchange(REQUEST, RESPONSE);
    let capture = Capture::until(&mut tracer, |c| c.open(Role::Client, other, false).is_some());
    assert!(capture.open(Role::Client, other, false).is_some(), "the tracer saw nothing at all");
    let touches = |e: &KernelEvent<'_>| match e {
        KernelEvent::ConnOpen { local, remote, .. } => {
            local.is_some_and(|a| a.port() == port) || remote.is_some_and(|a| a.port() == port)
        }
        _ => false,
    };
    assert!(!capture.events.iter().any(touches), "an excluded connection was reported");
    assert_eq!(tracer.stats().excluded_conns, 2, "client and server ends");

    // The agent's own listener: excluded as soon as it listens.
    let agent = TracerConfig { exclude_tgid: std::process::id(), only_tgid: 0, ..TracerConfig::default() };
    let tracer = Tracer::load(&agent).expect("tracer failed to load");
    let own = TcpListener::bind("127.0.0.1:0").expect("bind");
    let own = own.local_addr().expect("addr").port();
    // Other tests of this process listen too meanwhile: their ports join, which is right.
    assert!(tracer.excluded_ports().contains(&own), "{:?} lacks {own}", tracer.excluded_ports());
}

/// Issue 13: connections ended without a close syscall. `dup2` over a socket's fd ends that
/// connection; a process that exits with a connection open reports its exit.
#[test]
fn dup2_and_process_exit_end_connections() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let Some(mut tracer) = tracer() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (_server, _) = listener.accept().expect("accept");
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    // SAFETY: both fds are open and owned here; dup2 replaces the socket's fd with /dev/null's.
    assert_eq!(unsafe { libc::dup2(null.as_raw_fd(), client.as_raw_fd()) }, client.as_raw_fd());
    let capture =
        Capture::until(&mut tracer, |c| c.open(Role::Client, port, false).is_some_and(|(k, ..)| c.closed(k).is_some()));
    let (key, ..) = capture.open(Role::Client, port, false).expect("no client open");
    assert_eq!(capture.closed(key), Some((0, 0)), "dup2 ended the connection");
    drop(client); // closes /dev/null now

    let mut child = Command::new("python3")
        .args(["-c", "import os, socket, sys\nprint('ready', flush=True); sys.stdin.readline()\ns = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\ns.sendall(b'GET / HTTP/1.1\\r\\n\\r\\n')\nos._exit(0)", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed (scripts/test.sh installs it)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready");
    let config = TracerConfig { exclude_tgid: 0, only_tgid: child.id(), ..TracerConfig::default() };
    let mut tracer = Tracer::load(&config).expect("tracer failed to load");
    child.stdin.take().expect("stdin").write_all(b"go\n").expect("go");
    let (_peer, _) = listener.accept().expect("accept the child");
    child.wait().expect("child exits");
    let pid = child.id();
    let exited = |c: &Capture| c.events.iter().any(|e| matches!(e, KernelEvent::ProcExit { tgid, .. } if *tgid == pid));
    let capture = Capture::until(&mut tracer, exited);
    let (key, ..) = capture.open(Role::Client, port, false).expect("no open for the child's connection");
    assert!(exited(&capture), "no exit event for the child");
    assert_eq!(key.tgid, pid);
    assert_eq!(capture.closed(key), None, "no close syscall: the exit ends it");
}

/// Issue 13: `sendmmsg`/`recvmmsg`. The first message is copied; the others are counted in the
/// stream (the last record accounts for them), so positions stay exact.
#[test]
fn mmsg_syscalls_copy_the_first_message_and_count_the_rest() {
    let Some(mut tracer) = tracer() else { return };
    const SECOND: &[u8] = b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n";
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let mut iov = [
        libc::iovec { iov_base: REQUEST.as_ptr() as *mut libc::c_void, iov_len: REQUEST.len() },
        libc::iovec { iov_base: SECOND.as_ptr() as *mut libc::c_void, iov_len: SECOND.len() },
    ];
    // SAFETY: zeroed mmsghdrs are valid (no name, no control); each points at one live iovec.
    let mut msgs: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the fd is open and `msgs` holds two initialised mmsghdrs.
    let sent = unsafe { libc::sendmmsg(client.as_raw_fd(), msgs.as_mut_ptr(), 2, 0) };
    assert_eq!(sent, 2, "sendmmsg: {}", std::io::Error::last_os_error());
    let total = REQUEST.len() + SECOND.len();
    let mut buf = vec![0u8; total];
    let mut recv_iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: total };
    // SAFETY: as above, one message over one iovec of `total` live bytes.
    let mut recv: libc::mmsghdr = unsafe { std::mem::zeroed() };
    recv.msg_hdr.msg_iov = &mut recv_iov;
    recv.msg_hdr.msg_iovlen = 1;
    let mut got = 0;
    while got < total {
        recv_iov = libc::iovec { iov_base: buf[got..].as_mut_ptr().cast(), iov_len: total - got };
        recv.msg_hdr.msg_iov = &mut recv_iov;
        // SAFETY: the fd is open; `recv` points at live memory for `total - got` bytes.
        let n = unsafe { libc::recvmmsg(server.as_raw_fd(), &mut recv, 1, 0, std::ptr::null_mut()) };
        assert_eq!(n, 1, "recvmmsg: {}", std::io::Error::last_os_error());
        got += recv.msg_len as usize;
    }
    assert_eq!(buf, [REQUEST, SECOND].concat());
    drop(client);
    drop(server);
    let capture = Capture::until(&mut tracer, |c| {
        c.open(Role::Server, port, true).is_some_and(|(k, ..)| c.closed(k).is_some())
            && c.open(Role::Client, port, false).is_some_and(|(k, ..)| c.closed(k).is_some())
    });
    let (client_key, ..) = capture.open(Role::Client, port, false).expect("no client open");
    let (server_key, ..) = capture.open(Role::Server, port, true).expect("no server open");
    let sent = capture.data(client_key, Direction::Egress);
    assert_eq!(sent, [(0, total as u64, REQUEST.to_vec())], "first message copied, the second counted");
    assert_eq!(capture.stream(server_key, Direction::Ingress), [REQUEST, SECOND].concat());
    assert_eq!(capture.closed(client_key), Some((total as u64, 0)));
}

/// A DNS query over UDP (`a.test` A), as `dig` sends one.
const DNS_QUERY: &[u8] = b"\x12\x34\x01\x20\0\x01\0\0\0\0\0\0\x01a\x04test\0\0\x01\0\x01";

/// UDP sockets: a socket whose first datagram is a DNS query exports each datagram whole, with
/// both ends' addresses (from `sendto`/`recvfrom`'s address, or the connected peer); a socket whose
/// first datagram is anything else exports nothing. The TLS uprobe programs load.
#[test]
fn dns_datagrams_are_exported_with_their_peer_and_other_udp_is_not() {
    let Some(mut tracer) = tracer() else { return };
    assert_eq!(tracer.tls_error(), None, "TLS uprobe programs must load");
    let server = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (server_addr, client_addr) = (server.local_addr().expect("addr"), client.local_addr().expect("addr"));
    client.send_to(DNS_QUERY, server_addr).expect("send_to");
    let mut buf = [0u8; 512];
    let (n, from) = server.recv_from(&mut buf).expect("recv_from");
    assert_eq!((n, from), (DNS_QUERY.len(), client_addr));
    let mut reply = DNS_QUERY.to_vec();
    reply[2] |= 0x80;
    server.send_to(&reply, client_addr).expect("send_to");
    client.connect(server_addr).expect("connect");
    assert_eq!(client.recv(&mut buf).expect("recv"), reply.len());
    // Another pair whose first datagram is not DNS.
    let other = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let other_addr = other.local_addr().expect("addr");
    let other_client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    other_client.send_to(b"not dns, just bytes", other_addr).expect("send_to");
    other.recv_from(&mut buf).expect("recv_from");

    let dgrams = |c: &Capture| -> Vec<(Direction, SocketAddr, SocketAddr, Vec<u8>)> {
        c.events
            .iter()
            .filter_map(|e| match e {
                KernelEvent::Datagram { direction, local: Some(l), remote: Some(r), msg_size, data, .. }
                    if *msg_size == data.len() as u64
                        && [server_addr, client_addr, other_addr, other_client.local_addr().expect("addr")]
                            .contains(l) =>
                {
                    Some((*direction, *l, *r, data.to_vec()))
                }
                _ => None,
            })
            .collect()
    };
    let capture = Capture::until(&mut tracer, |c| dgrams(c).len() >= 4);
    let mut got = dgrams(&capture);
    got.sort_by_key(|d| format!("{d:?}"));
    let mut want = vec![
        (Direction::Egress, client_addr, server_addr, DNS_QUERY.to_vec()),
        (Direction::Ingress, server_addr, client_addr, DNS_QUERY.to_vec()),
        (Direction::Egress, server_addr, client_addr, reply.clone()),
        (Direction::Ingress, client_addr, server_addr, reply.clone()),
    ];
    want.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(got, want);
}
