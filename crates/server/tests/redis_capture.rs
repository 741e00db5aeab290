//! End to end: Redis capture. `loupe up` traces a real `redis-server` driven by a raw RESP client
//! (plain, pipelined, an error reply, pub/sub, ACL and AUTH, RESP3 after `HELLO 3 AUTH`) and by
//! `redis-cli`, and by a client library (redis-py); `px run` of
//! `px.DataFrame(table='redis_events')` must return exactly those commands, once per side, with
//! their replies, and with the credentials redacted.
//!
//! Owns only this acceptance check; it must not assume it is alone on the host: its query filters
//! by its own Redis server's port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use loupe_testkit::RedisServer;
use serde_json::Value;

use crate::common::temp_dir;
use crate::e2e::{can_trace, login, poll_keyed_counts, px, start_loupe, write_script};

/// Sends `request` and reads exactly `reply` back (asserting it), so every exchange is complete.
fn exchange(stream: &mut TcpStream, request: &[u8], reply: &[u8]) {
    stream.write_all(request).expect("write to redis");
    let mut got = vec![0u8; reply.len()];
    stream.read_exact(&mut got).expect("read from redis");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(reply));
}

/// A command as client libraries send it.
fn command(words: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

/// Drives the server on `port`; returns the (req_cmd, req_args, resp) rows each side must show.
fn drive(port: u16) -> Vec<(String, String, String)> {
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    let mut subscriber = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    exchange(&mut client, &command(&["SET", "greeting", "hello world"]), b"+OK\r\n");
    exchange(&mut client, &command(&["GET", "greeting"]), b"$11\r\nhello world\r\n");
    exchange(&mut client, &command(&["HSET", "user:1", "name", "alice", "age", "42"]), b":2\r\n");
    // Pipelined: four commands in one write, four replies read back.
    let pipeline = [
        command(&["INCR", "counter"]),
        command(&["INCR", "counter"]),
        command(&["LPUSH", "list", "a", "b"]),
        command(&["LRANGE", "list", "0", "-1"]),
    ]
    .concat();
    exchange(&mut client, &pipeline, b":1\r\n:2\r\n:2\r\n*2\r\n$1\r\nb\r\n$1\r\na\r\n");
    exchange(&mut client, &command(&["INCR", "greeting"]), b"-ERR value is not an integer or out of range\r\n");
    exchange(&mut client, &command(&["ACL", "SETUSER", "alice", "on", ">s3cret", "~*", "&*", "+@all"]), b"+OK\r\n");
    exchange(&mut client, &command(&["AUTH", "alice", "s3cret"]), b"+OK\r\n");
    // RESP3 on a connection of its own, authenticating in HELLO: maps and nulls come back typed.
    let mut resp3 = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    resp3
        .write_all(&[command(&["HELLO", "3", "AUTH", "alice", "s3cret"]), command(&["PING"])].concat())
        .expect("write");
    let mut hello = Vec::new();
    let mut buf = [0u8; 4096];
    while !hello.ends_with(b"+PONG\r\n") {
        let n = resp3.read(&mut buf).expect("read HELLO's map and PONG");
        assert!(n > 0, "redis closed the RESP3 connection: {}", String::from_utf8_lossy(&hello));
        hello.extend_from_slice(&buf[..n]);
    }
    assert!(hello.starts_with(b"%"), "HELLO 3 answers with a map: {}", String::from_utf8_lossy(&hello));
    exchange(
        &mut resp3,
        &command(&["HGETALL", "user:1"]),
        b"%2\r\n$4\r\nname\r\n$5\r\nalice\r\n$3\r\nage\r\n$2\r\n42\r\n",
    );
    exchange(&mut resp3, &command(&["GET", "missing"]), b"_\r\n");
    drop(resp3);
    // Pub/sub: the published message reaches the subscriber as a push that answers no command.
    exchange(&mut subscriber, &command(&["SUBSCRIBE", "news"]), b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    exchange(&mut client, &command(&["PUBLISH", "news", "hi"]), b":1\r\n");
    let mut push = vec![0u8; b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n".len()];
    subscriber.read_exact(&mut push).expect("read the published message");
    drop(subscriber);
    drop(client);
    let cli =
        Command::new("redis-cli").args(["-p", &port.to_string(), "GET", "greeting"]).output().expect("run redis-cli");
    assert!(cli.status.success(), "redis-cli failed: {}", String::from_utf8_lossy(&cli.stderr));
    assert_eq!(String::from_utf8_lossy(&cli.stdout), "hello world\n");

    let row = |cmd: &str, args: &str, resp: &str| (cmd.to_string(), args.to_string(), resp.to_string());
    let mut want = vec![
        row("SET", r#"["greeting","hello world"]"#, "OK"),
        row("GET", r#"["greeting"]"#, "hello world"),
        row("HSET", r#"["user:1","name","alice","age","42"]"#, "2"),
        row("INCR", r#"["counter"]"#, "1"),
        row("INCR", r#"["counter"]"#, "2"),
        row("LPUSH", r#"["list","a","b"]"#, "2"),
        row("LRANGE", r#"["list","0","-1"]"#, r#"["b","a"]"#),
        row("INCR", r#"["greeting"]"#, "-ERR value is not an integer or out of range"),
        row("ACL SETUSER", r#"["alice","on",">[REDACTED]","~*","&*","+@all"]"#, "OK"),
        row("AUTH", r#"["[REDACTED]","[REDACTED]"]"#, "OK"),
        row("HELLO", r#"["3","AUTH","[REDACTED]","[REDACTED]"]"#, HELLO_MAP),
        row("PING", "[]", "PONG"),
        row("HGETALL", r#"["user:1"]"#, r#"{"age":"42","name":"alice"}"#),
        row("GET", r#"["missing"]"#, "<NULL>"),
        row("SUBSCRIBE", r#"["news"]"#, r#"["subscribe","news","1"]"#),
        row("PUBLISH", r#"["news","hi"]"#, "1"),
        row("PUSH PUB", "[]", r#"["message","news","hi"]"#),
        row("GET", r#"["greeting"]"#, "hello world"),
    ];
    want.sort();
    want
}

/// Stands for the `resp` of `HELLO 3`, a map whose client id varies: [`query`] checks its fixed
/// fields and puts this in its place.
const HELLO_MAP: &str = "<HELLO 3 map>";

/// One row as compared: (trace_role, req_cmd, req_args, resp).
type Row = (i64, String, String, String);

/// Every row for `port`, sorted, and the latencies.
fn query(api_port: u16, script: &std::path::Path) -> (Vec<Row>, Vec<i64>) {
    let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect();
    let mut got: Vec<Row> = rows
        .iter()
        .map(|r| {
            let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
            let mut resp = text("resp");
            if text("req_cmd") == "HELLO" {
                for field in [r#""proto":"3""#, r#""server":"redis""#, r#""role":"master""#] {
                    assert!(resp.contains(field), "HELLO's reply lacks {field}: {resp}");
                }
                resp = HELLO_MAP.to_string();
            }
            (r["trace_role"].as_i64().unwrap_or(-1), text("req_cmd"), text("req_args"), resp)
        })
        .collect();
    got.sort();
    (got, rows.iter().map(|r| r["latency"].as_i64().unwrap_or(-1)).collect())
}

/// A private `redis-server`, and its port.
fn start_redis() -> (RedisServer, u16) {
    let redis = RedisServer::start();
    let port = redis.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("redis port");
    (redis, port)
}

#[test]
fn redis_commands_land_in_redis_events_once_per_side() {
    if !can_trace() {
        return;
    }
    // Started before the agent, so its readiness PINGs are not traced.
    let (_redis, port) = start_redis();
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let want_side = drive(port);
    let mut want: Vec<Row> = [1, 2]
        .into_iter()
        .flat_map(|role| want_side.iter().map(move |(c, a, r)| (role, c.clone(), a.clone(), r.clone())))
        .collect();
    want.sort();

    let dir = temp_dir("redis-capture");
    let script = write_script(
        &dir,
        "redis.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='redis_events')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
             px.display(df, 'redis')\n"
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let (got, latencies) = loop {
        let (got, latencies) = query(api_port, &script);
        if got == want || Instant::now() > deadline {
            break (got, latencies);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, want, "every command once per side (1 client, 2 server), with its reply, credentials redacted");
    assert!(latencies.iter().all(|&l| (0..5_000_000_000).contains(&l)), "latencies: {latencies:?}");
}

/// A real client library: redis-py (Debian's `python3-redis`, for `/usr/bin/python3`) on one
/// connection: 20 commands one by one, a pipeline of 50 in one write, a `MULTI`/`EXEC` transaction,
/// one error; and a pub/sub subscriber on a second connection receiving 5 messages.
#[test]
fn a_client_library_pipeline_and_pubsub_land_in_redis_events_counted_per_side() {
    if !can_trace() {
        return;
    }
    let (_redis, port) = start_redis();
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let py = format!(
        "import redis, time\n\
         r = redis.Redis(port={port})\n\
         for i in range(10):\n\
         \x20   r.set('k%d' % i, 'v%d' % i)\n\
         \x20   assert r.get('k%d' % i) == b'v%d' % i\n\
         p = r.pipeline(transaction=False)\n\
         for i in range(50):\n\
         \x20   p.incr('counter')\n\
         assert p.execute()[-1] == 50\n\
         t = r.pipeline(transaction=True)\n\
         t.lpush('l', 'a').lpush('l', 'b').lrange('l', 0, -1)\n\
         assert t.execute()[-1] == [b'b', b'a']\n\
         try:\n\
         \x20   r.incr('k0')\n\
         \x20   raise SystemExit('no error')\n\
         except redis.ResponseError:\n\
         \x20   pass\n\
         s = r.pubsub()\n\
         s.subscribe('news')\n\
         assert s.get_message(timeout=5)['type'] == 'subscribe'\n\
         for i in range(5):\n\
         \x20   assert r.publish('news', 'm%d' % i) == 1\n\
         got = []\n\
         deadline = time.time() + 10\n\
         while len(got) < 5 and time.time() < deadline:\n\
         \x20   m = s.get_message(timeout=1)\n\
         \x20   if m and m['type'] == 'message':\n\
         \x20       got.append(m['data'])\n\
         assert got == [b'm%d' % i for i in range(5)], got\n\
         s.close()\n\
         r.close()\n"
    );
    let out = Command::new("/usr/bin/python3").args(["-c", &py]).output().expect("run /usr/bin/python3");
    assert!(out.status.success(), "redis-py (apt-get install python3-redis): {}", String::from_utf8_lossy(&out.stderr));

    let dir = temp_dir("redis-py-capture");
    // The server's rows have the Redis port as local port, the client's as remote port.
    let script = write_script(
        &dir,
        "redis-py.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='redis_events')\n\
             df = df[((df.trace_role == 2) & (df.local_port == {port})) | ((df.trace_role == 1) & (df.remote_port == {port}))]\n\
             df.err = px.substring(df.resp, 0, 1) == '-'\n\
             s = df.groupby(['trace_role', 'req_cmd', 'err']).agg(n=('latency', px.count), min_latency=('latency', px.min))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let side = [
        ("SET", false, 10),
        ("GET", false, 10),
        // redis-py sends `incr` as INCRBY key 1.
        ("INCRBY", false, 50),
        ("INCRBY", true, 1),
        ("MULTI", false, 1),
        ("LPUSH", false, 2),
        ("LRANGE", false, 1),
        ("EXEC", false, 1),
        ("SUBSCRIBE", false, 1),
        ("PUBLISH", false, 5),
        ("PUSH PUB", false, 5),
    ];
    let mut want: Vec<((i64, String, bool), i64)> = [1, 2]
        .into_iter()
        .flat_map(|role| side.iter().map(move |&(cmd, err, n)| ((role, cmd.to_string(), err), n)))
        .collect();
    want.sort();
    let (got, rows) = poll_keyed_counts(api_port, &script, &want, |r| {
        (
            r["trace_role"].as_i64().unwrap_or(-1),
            r["req_cmd"].as_str().unwrap_or_default().to_string(),
            r["err"].as_bool().unwrap_or(false),
        )
    });
    assert_eq!(got, want, "each command once per side (1 client, 2 server), the error marked");
    for r in &rows {
        // A push answers no command: its latency is 0; every command's is > 0.
        if r["req_cmd"] != "PUSH PUB" {
            assert!(r["min_latency"].as_i64().unwrap_or(0) > 0, "latency must be > 0: {r}");
        }
    }
}
