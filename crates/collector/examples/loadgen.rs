//! A bounded HTTP/1.1 load generator for `scripts/bench-agent.sh`: keep-alive connections sending
//! `GET /` either at a fixed total rate (open loop: latency counts from when a request was due, so
//! a stall is not hidden, as wrk2 does) or as fast as possible up to a fixed count. Prints one line:
//! `requests=N seconds=S rate=R p50_us=.. p99_us=.. p999_us=.. errors=E`.
//!
//! `wrk2` is not packaged on Debian and `h2load` reports no percentiles, hence this. Std only.
//!
//! Usage: `loadgen <host:port> <connections> <rate per second, 0 = full speed> <seconds> [max requests]`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One connection's run: latencies in µs, and the requests that failed.
fn run_connection(addr: &str, rate: f64, until: Instant, max_requests: u64) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let Ok(mut stream) = TcpStream::connect(addr) else { return (latencies, 1) };
    let _ = stream.set_nodelay(true);
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let interval = if rate > 0.0 { Some(Duration::from_secs_f64(1.0 / rate)) } else { None };
    let mut sent = 0u64;
    while sent < max_requests {
        let due = match interval {
            Some(every) => {
                let due = start + every.mul_f64(sent as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                due
            }
            None => Instant::now(),
        };
        if due >= until {
            break;
        }
        if stream.write_all(request.as_bytes()).is_err() || !read_response(&mut stream, &mut buf) {
            return (latencies, 1);
        }
        latencies.push(u32::try_from(due.elapsed().as_micros()).unwrap_or(u32::MAX));
        sent += 1;
    }
    (latencies, 0)
}

/// Reads one response (head, then a Content-Length body); false on error or close.
fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> bool {
    let mut have = 0;
    loop {
        let Ok(n) = stream.read(&mut buf[have..]) else { return false };
        if n == 0 {
            return false;
        }
        have += n;
        let data = &buf[..have];
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
        let body: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if have >= end + 4 + body {
            return true;
        }
        if have == buf.len() {
            return false;
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen <host:port> <connections> <rate, 0 = full speed> <seconds> [max requests]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let conns: u64 = args[2].parse().expect("connections");
    let rate: f64 = args[3].parse().expect("rate");
    let secs: f64 = args[4].parse().expect("seconds");
    let max_total: u64 = args.get(5).map_or(u64::MAX, |m| m.parse().expect("max requests"));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..conns)
        .map(|i| {
            let addr = addr.clone();
            // Spread the count over connections exactly.
            let max =
                if max_total == u64::MAX { u64::MAX } else { max_total / conns + u64::from(i < max_total % conns) };
            std::thread::spawn(move || run_connection(&addr, rate / conns as f64, until, max))
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (lat, err) = t.join().unwrap_or_default();
        all.extend(lat);
        errors += err;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "requests={} seconds={elapsed:.3} rate={:.0} p50_us={} p99_us={} p999_us={} errors={errors}",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
    );
}
