//! End to end: AMQP capture. `loupe up` traces a real RabbitMQ (Debian's `rabbitmq-server`, its
//! own node name, ports, epmd port and data dir) driven by Python `pika` (Debian's
//! `python3-pika`): login, a queue declared, three messages published, one fetched with
//! `basic.get` and acked, two consumed and acked, the consumer cancelled, a passive declare of a
//! missing queue that the broker answers by closing the channel (404), and the connection closed.
//! `px run` of `px.DataFrame(table='amqp_events')` must return exactly those methods with their
//! replies once per side (client and server), latencies above zero where a reply came, and the
//! login response redacted; a PxL groupby over them must count the same.
//!
//! Owns only this acceptance check and the broker it starts; it must not assume it is alone on
//! the host: its queries filter by its own broker's port.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{free_port, run_counts, temp_dir};
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

/// The broker (its process group) and its epmd, stopped on drop.
struct Broker {
    child: Child,
    env: Vec<(String, String)>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        // The start script, the Erlang VM and its helpers share the group the child leads.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).status();
        let _ = self.child.wait();
        // epmd detaches into a session of its own; it is ours (its port is private) and stops on
        // request once the killed node's registration is gone.
        for _ in 0..50 {
            let out = Command::new("epmd").arg("-kill").envs(self.env.iter().cloned()).output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Killed")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts RabbitMQ in `dir` on `port`, with a private epmd and distribution port.
fn start_broker(dir: &Path, port: u16) -> Broker {
    let (epmd, dist) = (free_port(), free_port());
    std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("write enabled_plugins");
    std::fs::write(dir.join("rabbitmq.conf"), "loopback_users = none\n").expect("write rabbitmq.conf");
    let d = |p: &str| dir.join(p).display().to_string();
    let env: Vec<(String, String)> = [
        ("RABBITMQ_NODENAME", format!("loupe{port}@localhost")),
        ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
        ("RABBITMQ_NODE_PORT", port.to_string()),
        ("RABBITMQ_DIST_PORT", dist.to_string()),
        ("ERL_EPMD_PORT", epmd.to_string()),
        ("RABBITMQ_MNESIA_BASE", d("mnesia")),
        ("RABBITMQ_LOG_BASE", d("log")),
        ("RABBITMQ_CONFIG_FILE", d("rabbitmq")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins")),
        ("HOME", dir.display().to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    // The script under /usr/lib runs as the caller; /usr/sbin's wrapper would switch to the
    // system's rabbitmq user, which cannot write this dir.
    let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("rabbitmq-server not found: `apt-get install rabbitmq-server` (scripts/test.sh installs it)");
    let mut broker = Broker { child, env };
    let deadline = Instant::now() + Duration::from_secs(90);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = broker.child.try_wait() {
            panic!("rabbitmq-server exited early with {status}; see {}", d("log"));
        }
        assert!(Instant::now() < deadline, "rabbitmq did not listen on {port} within 90 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    broker
}

const CLIENT: &str = r#"
import sys, pika
params = pika.ConnectionParameters(host="127.0.0.1", port=int(sys.argv[1]),
    credentials=pika.PlainCredentials("guest", "guest"), heartbeat=0)
conn = pika.BlockingConnection(params)
ch = conn.channel()
ch.queue_declare(queue="loupe.q", durable=False, auto_delete=True)
for i in range(3):
    ch.basic_publish(exchange="", routing_key="loupe.q", body=b"hello %d" % i)
m, props, body = ch.basic_get(queue="loupe.q", auto_ack=False)
assert body == b"hello 0", body
ch.basic_ack(m.delivery_tag)
got = []
def on(ch_, method, props, body):
    got.append(body)
    ch_.basic_ack(method.delivery_tag)
    if len(got) == 2:
        ch_.stop_consuming()
tag = ch.basic_consume(queue="loupe.q", on_message_callback=on)
ch.start_consuming()
assert got == [b"hello 1", b"hello 2"], got
ch.basic_cancel(tag)
try:
    ch.queue_declare(queue="loupe.missing", passive=True)
    raise SystemExit("the missing queue exists")
except pika.exceptions.ChannelClosedByBroker as e:
    assert e.reply_code == 404, e
conn.close()
"#;

/// (trace_role, req class, req method, resp class, resp method, detail) as compared.
type Row = (i64, i64, i64, i64, i64, String);

/// The detail a row is checked by: the queue, the routing key and body, the close code.
fn detail(msg: &str) -> String {
    if msg.is_empty() {
        return String::new();
    }
    let doc: Value = serde_json::from_str(msg).unwrap_or_else(|e| panic!("msg is JSON ({e}): {msg}"));
    let mut parts = Vec::new();
    for key in ["queue", "routing_key", "body", "reply_code", "mechanism", "response"] {
        if let Some(v) = doc.get(key) {
            parts.push(format!("{key}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)));
        }
    }
    parts.join(" ")
}

fn run(api_port: u16, script: &Path) -> Vec<Value> {
    let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect()
}

fn query(api_port: u16, script: &Path) -> (Vec<Row>, Vec<Value>) {
    let rows = run(api_port, script);
    let mut got: Vec<Row> = rows
        .iter()
        .map(|r| {
            let int = |c: &str| r[c].as_i64().unwrap_or(-1);
            let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
            let d = [detail(&text("req_msg")), detail(&text("resp_msg"))].join(" | ");
            (
                int("trace_role"),
                int("req_class_id"),
                int("req_method_id"),
                int("resp_class_id"),
                int("resp_method_id"),
                d,
            )
        })
        .collect();
    got.sort();
    (got, rows)
}

#[test]
fn amqp_methods_land_in_amqp_events_once_per_side() {
    if !can_trace() {
        return;
    }
    let dir = temp_dir("amqp-capture");
    let port = free_port();
    // Started before the agent, so its boot and readiness probe are not traced.
    let _broker = start_broker(&dir, port);
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let client = dir.join("client.py");
    std::fs::write(&client, CLIENT).expect("write client.py");
    let out = Command::new("/usr/bin/python3")
        .arg(&client)
        .arg(port.to_string())
        .output()
        .expect("/usr/bin/python3 with pika: `apt-get install python3-pika` (scripts/test.sh installs it)");
    assert!(out.status.success(), "pika client: {}", String::from_utf8_lossy(&out.stderr));

    let r = |q: (i64, i64), a: (i64, i64), d: &str| (q.0, q.1, a.0, a.1, d.to_string());
    let hello = |i: u8| format!("routing_key=loupe.q body=hello {i} | ");
    let want_side = vec![
        r((10, 10), (10, 11), " | mechanism=PLAIN response=[REDACTED]"),
        r((10, 30), (10, 31), " | "),
        r((10, 40), (10, 41), " | "),
        r((20, 10), (20, 11), " | "),
        r((50, 10), (50, 11), "queue=loupe.q | queue=loupe.q"),
        r((60, 40), (0, 0), &hello(0)),
        r((60, 40), (0, 0), &hello(1)),
        r((60, 40), (0, 0), &hello(2)),
        r((60, 70), (60, 71), "queue=loupe.q | routing_key=loupe.q body=hello 0"),
        r((60, 80), (0, 0), " | "),
        r((60, 20), (60, 21), "queue=loupe.q | "),
        r((60, 60), (0, 0), &hello(1)),
        r((60, 60), (0, 0), &hello(2)),
        r((60, 80), (0, 0), " | "),
        r((60, 80), (0, 0), " | "),
        r((60, 30), (60, 31), " | "),
        r((50, 10), (0, 0), "queue=loupe.missing | "),
        r((20, 40), (20, 41), "reply_code=404 | "),
        r((10, 50), (10, 51), "reply_code=200 | "),
    ];
    let mut want: Vec<Row> = [1, 2]
        .into_iter()
        .flat_map(|role| want_side.iter().map(move |(a, b, c, d, e)| (role, *a, *b, *c, *d, e.clone())))
        .collect();
    want.sort();

    let filter = format!("df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n");
    let script = write_script(
        &dir,
        "amqp.pxl",
        &format!("import px\ndf = px.DataFrame(table='amqp_events')\n{filter}px.display(df, 'amqp')\n"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let (got, raw) = loop {
        let (got, raw) = query(api_port, &script);
        if got == want || Instant::now() > deadline {
            break (got, raw);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, want, "every method once per side (1 client, 2 server), replies paired, login redacted");
    for row in &raw {
        let text = row.to_string();
        assert!(!text.contains("\\u0000guest"), "the login response leaked: {text}");
        let latency = row["latency"].as_i64().unwrap_or(-1);
        if row["resp_class_id"].as_i64() == Some(0) {
            assert_eq!(latency, 0, "{text}");
        } else {
            assert!((1..5_000_000_000).contains(&latency), "latency: {text}");
        }
    }

    // A PxL groupby over the same rows counts the same.
    let counts_script = write_script(
        &dir,
        "amqp_counts.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='amqp_events')\n{filter}\
             s = df.groupby(['trace_role', 'req_class_id', 'req_method_id']).agg(n=('latency', px.count))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let mut counts: Vec<((i64, i64, i64), i64)> = run(api_port, &counts_script)
        .iter()
        .map(|r| {
            let int = |c: &str| r[c].as_i64().unwrap_or(-1);
            ((int("trace_role"), int("req_class_id"), int("req_method_id")), int("n"))
        })
        .collect();
    counts.sort();
    let want_counts = run_counts(want.iter().map(|(role, a, b, ..)| (*role, *a, *b)));
    assert_eq!(counts, want_counts);
}
