//! End to end: MQTT capture. `loupe up` traces a real `mosquitto` broker (its own config,
//! password file and port) driven by Debian's `mosquitto_sub` and `mosquitto_pub`: a subscriber at
//! MQTT 3.1.1 and QoS 1, publishers at 3.1.1 QoS 1, at 5 QoS 2 and at 5 QoS 0, and one client
//! refused for a wrong password. `px run` of `px.DataFrame(table='mqtt_events')` must return
//! exactly those packets with their answers once per side (client and server), latencies above
//! zero where an answer came, and no password; a PxL groupby over them must count the same.
//!
//! Owns only this acceptance check and the broker it starts; it must not assume it is alone on
//! the host: its queries filter by its own broker's port.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{free_port, run_counts, temp_dir};
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

/// The broker, killed on drop.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `mosquitto` on `port` with a password file holding alice's password.
fn start_broker(dir: &Path, port: u16) -> Broker {
    let passwd = dir.join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c", passwd.to_str().expect("utf8"), "alice", "s3cret"])
        .output()
        .expect("mosquitto_passwd not found: `apt-get install mosquitto` (scripts/test.sh installs it)");
    assert!(made.status.success(), "mosquitto_passwd: {}", String::from_utf8_lossy(&made.stderr));
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n\
             user root\nlog_dest none\n",
            passwd.display()
        ),
    )
    .expect("write mosquitto.conf");
    let child = Command::new("mosquitto")
        .args(["-c", conf.to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto not found: `apt-get install mosquitto` (scripts/test.sh installs it)");
    let broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    broker
}

fn client_args(port: u16, version: &str, id: &str, password: &str) -> Vec<String> {
    ["-h", "127.0.0.1", "-p", &port.to_string(), "-V", version, "-i", id, "-u", "alice", "-P", password]
        .map(String::from)
        .to_vec()
}

fn publish(port: u16, version: &str, id: &str, password: &str, topic: &str, message: &str, qos: u8) -> Output {
    Command::new("mosquitto_pub")
        .args(client_args(port, version, id, password))
        .args(["-t", topic, "-m", message, "-q", &qos.to_string()])
        .output()
        .expect("mosquitto_pub not found: `apt-get install mosquitto-clients` (scripts/test.sh installs it)")
}

/// One row as compared: (trace_role, req_type, resp_type, req summary, resp summary).
type Row = (i64, i64, i64, String, String);

/// The fields a row is checked by: who connected with what, what was published where.
fn summary(kind: i64, body: &str) -> String {
    if body.is_empty() {
        return String::new();
    }
    let doc: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("body is JSON ({e}): {body}"));
    let s = |k: &str| doc[k].as_str().map_or_else(|| doc[k].to_string(), str::to_string);
    match kind {
        1 => format!("{} v{} {} pw={}", s("client_id"), s("protocol_level"), s("username"), s("password")),
        2 => format!("rc={}", doc.get("return_code").or_else(|| doc.get("reason_code")).unwrap_or(&Value::Null)),
        3 => format!("{} q{} {}", s("topic"), s("qos"), s("payload")),
        8 => doc["topics"].to_string(),
        _ => String::new(),
    }
}

/// Drives the broker on `port`; returns the rows each side must show.
fn drive(port: u16) -> Vec<(i64, i64, String, String)> {
    // Line-buffered (coreutils' stdbuf): piped, its stdio would hold the SUBACK line until exit.
    let mut sub = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub"])
        .args(client_args(port, "mqttv311", "loupe-sub", "s3cret"))
        .args(["-t", "loupe/#", "-q", "1", "-C", "3", "-W", "30", "-d"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub not found: `apt-get install mosquitto-clients` (scripts/test.sh installs it)");
    // -d prints the packets it handles: publish only once the subscription is acknowledged.
    let mut lines = BufReader::new(sub.stdout.take().expect("stdout")).lines();
    loop {
        let line = lines.next().expect("mosquitto_sub ended before its SUBACK").expect("read mosquitto_sub");
        if line.contains("received SUBACK") {
            break;
        }
    }
    let ok = |out: Output| assert!(out.status.success(), "mosquitto_pub: {}", String::from_utf8_lossy(&out.stderr));
    ok(publish(port, "mqttv311", "loupe-pub1", "s3cret", "loupe/a", "hello", 1));
    ok(publish(port, "5", "loupe-pub2", "s3cret", "loupe/b", "two", 2));
    ok(publish(port, "5", "loupe-pub3", "s3cret", "loupe/c", "zero", 0));
    let refused = publish(port, "mqttv311", "loupe-bad", "wrong", "loupe/x", "no", 0);
    assert!(!refused.status.success(), "a wrong password is refused");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let received: Vec<&String> =
        rest.iter().filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed")).collect();
    assert_eq!(received, ["hello", "two", "zero"], "mosquitto_sub printed: {rest:?}");
    assert!(sub.wait().expect("mosquitto_sub").success());

    let connect = |id: &str, v: u8, pw: &str| {
        summary(1, &format!(r#"{{"client_id":"{id}","protocol_level":{v},"username":"alice","password":"{pw}"}}"#))
    };
    let publish = |topic: &str, qos: u8, payload: &str| format!("{topic} q{qos} {payload}");
    let rc = |code: u8| format!("rc={code}");
    let r = "[REDACTED]";
    let mut want = vec![
        // The subscriber.
        (1, 2, connect("loupe-sub", 4, r), rc(0)),
        (8, 9, r#"[{"filter":"loupe/#","qos":1}]"#.to_string(), String::new()),
        (3, 4, publish("loupe/a", 1, "hello"), String::new()),
        (3, 4, publish("loupe/b", 1, "two"), String::new()),
        (3, 0, publish("loupe/c", 0, "zero"), String::new()),
        (14, 0, String::new(), String::new()),
        // QoS 1 at 3.1.1.
        (1, 2, connect("loupe-pub1", 4, r), rc(0)),
        (3, 4, publish("loupe/a", 1, "hello"), String::new()),
        (14, 0, String::new(), String::new()),
        // QoS 2 at 5: PUBLISH/PUBREC, then PUBREL/PUBCOMP.
        (1, 2, connect("loupe-pub2", 5, r), rc(0)),
        (3, 5, publish("loupe/b", 2, "two"), String::new()),
        (6, 7, String::new(), String::new()),
        (14, 0, String::new(), String::new()),
        // QoS 0 at 5: nothing answers the PUBLISH.
        (1, 2, connect("loupe-pub3", 5, r), rc(0)),
        (3, 0, publish("loupe/c", 0, "zero"), String::new()),
        (14, 0, String::new(), String::new()),
        // The wrong password: CONNACK 5, not authorised.
        (1, 2, connect("loupe-bad", 4, r), rc(5)),
    ];
    want.sort();
    want
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
            let (req_type, resp_type) = (int("req_type"), int("resp_type"));
            (
                int("trace_role"),
                req_type,
                resp_type,
                summary(req_type, &text("req_body")),
                summary(resp_type, &text("resp_body")),
            )
        })
        .collect();
    got.sort();
    (got, rows)
}

#[test]
fn mqtt_packets_land_in_mqtt_events_once_per_side() {
    if !can_trace() {
        return;
    }
    let dir = temp_dir("mqtt-capture");
    let port = free_port();
    // Started before the agent, so its readiness probe is not traced.
    let _broker = start_broker(&dir, port);
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let want_side = drive(port);
    let mut want: Vec<Row> = [1, 2]
        .into_iter()
        .flat_map(|role| want_side.iter().map(move |(q, a, s, t)| (role, *q, *a, s.clone(), t.clone())))
        .collect();
    want.sort();

    let filter = format!("df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n");
    let script = write_script(
        &dir,
        "mqtt.pxl",
        &format!("import px\ndf = px.DataFrame(table='mqtt_events')\n{filter}px.display(df, 'mqtt')\n"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let (got, raw) = loop {
        let (got, raw) = query(api_port, &script);
        if got == want || Instant::now() > deadline {
            break (got, raw);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, want, "every packet once per side (1 client, 2 server), answers paired, password redacted");
    for r in &raw {
        let text = r.to_string();
        assert!(!text.contains("s3cret") && !text.contains("wrong"), "a password leaked: {text}");
        let latency = r["latency"].as_i64().unwrap_or(-1);
        if r["resp_type"].as_i64() == Some(0) {
            assert_eq!(latency, 0, "{text}");
        } else {
            assert!((1..5_000_000_000).contains(&latency), "latency: {text}");
        }
    }

    // A PxL groupby over the same rows counts the same.
    let counts_script = write_script(
        &dir,
        "mqtt_counts.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='mqtt_events')\n{filter}\
             s = df.groupby(['trace_role', 'req_type', 'resp_type']).agg(n=('latency', px.count))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let mut counts: Vec<((i64, i64, i64), i64)> = run(api_port, &counts_script)
        .iter()
        .map(|r| {
            let int = |c: &str| r[c].as_i64().unwrap_or(-1);
            ((int("trace_role"), int("req_type"), int("resp_type")), int("n"))
        })
        .collect();
    counts.sort();
    let want_counts = run_counts(want.iter().map(|(role, a, b, ..)| (*role, *a, *b)));
    assert_eq!(counts, want_counts);
}
