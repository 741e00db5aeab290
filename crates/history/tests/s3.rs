//! The S3 backend against a real S3 API: `moto_server` (PyPI `moto[server]`) on a loopback port this test
//! picks, a bucket made with boto3, then the same write, read, pruning and retention as on a local disk.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loupe_history::reader::TimeBounds;
use loupe_history::{History, Retention};

use crate::common::{DAY0, HOUR, config, count, rows, runtime, venv_python};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn segments_round_trip_through_a_real_s3_server() {
    let Some(python) = venv_python("the S3 test") else { return };
    let server = python.with_file_name("moto_server");
    let port = free_port();
    let _moto = Kill(
        Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let made = Command::new(&python)
        .args([
            "-c",
            "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='loupe-history')",
            &endpoint,
        ])
        .output()
        .expect("run python");
    assert!(made.status.success(), "create bucket: {}", String::from_utf8_lossy(&made.stderr));

    let mut cfg = config("s3://loupe-history/prod");
    cfg.s3_options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    let h = History::open(&cfg).expect("open");
    let rt = runtime();
    let schema = loupe_schema::http::http_events().arrow_schema();
    for i in 0..4 {
        rt.block_on(h.write_batches("http_events", &[rows(1_500, "/s3", DAY0 + i * HOUR, HOUR)], DAY0 + 5 * HOUR))
            .expect("write");
    }
    let (got, stats) = rt.block_on(h.read("http_events", &schema, None, TimeBounds::default())).expect("read");
    assert_eq!((count(&got), stats.hours, stats.segments), (6_000, 4, 4));
    let one = TimeBounds { start_ns: Some(DAY0 + 2 * HOUR), end_ns: Some(DAY0 + 3 * HOUR - 1), before_ns: None };
    let (got, stats) = rt.block_on(h.read("http_events", &schema, None, one)).expect("read");
    assert_eq!((count(&got), stats.hours_read), (1_500, 1));
    // The keys are the documented layout.
    let listed = Command::new(&python)
        .args([
            "-c",
            "import sys, boto3; c = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1'); \
             print('\\n'.join(o['Key'] for o in c.list_objects_v2(Bucket='loupe-history')['Contents']))",
            &endpoint,
        ])
        .output()
        .expect("run python");
    let keys = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        keys.lines().all(|k| k.starts_with("prod/http_events/org=acme/vizier=vz-1/hour=2026-12-03T0") && k.contains("/node-a-")),
        "{keys}"
    );
    assert_eq!(keys.lines().count(), 4, "{keys}");
    // Retention: two hours past the age go.
    h.set_retention("http_events", Retention { max_age: Duration::from_secs(3 * 3600), max_bytes: 1 << 40 })
        .expect("set");
    let r = rt.block_on(h.sweep(DAY0 + 5 * HOUR)).expect("sweep");
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].1.expired_files, r[0].1.kept_files), (2, 2));
    let (got, _) = rt.block_on(h.read("http_events", &schema, None, TimeBounds::default())).expect("read");
    assert_eq!(count(&got), 3_000);
}
