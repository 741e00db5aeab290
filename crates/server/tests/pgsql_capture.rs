//! End to end: PostgreSQL capture. `loupe up` traces a real PostgreSQL 15 server (started by the
//! test on a private port and data dir) driven by real clients: `psql` over SCRAM (inserts, a
//! select, an error), `psql` over cleartext password auth (an `ALTER ROLE ... PASSWORD`), and
//! `pgbench -M prepared` (the extended protocol with a named prepared statement, executed twice).
//! `px run` of `pgsql_events` must return exactly those requests once per side (client and
//! server), with their responses, latencies above zero and every credential redacted; a PxL
//! groupby over them must count the same.
//!
//! A client library speaking the extended protocol itself (psycopg 3): server-bound parameters
//! (binary ones shown in hex), statements prepared on first use, an error at Parse, a pipeline.
//!
//! Owns only these acceptance checks; they must not assume they are alone on the host: their
//! queries filter by their own server's port.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use loupe_testkit::PgServer;
use serde_json::Value;

use crate::common::{run_counts, temp_dir};
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

/// Runs `psql` as `user` (password `password`, if any) against `db` on `port`, one `-c` per command.
fn psql(port: u16, user: &str, password: Option<&str>, db: &str, commands: &[&str]) -> Output {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-d", db]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    // Never read ~/.pgpass or a service file of the machine; the C locale keeps libpq from
    // sending a client_encoding of the machine's locale in the startup message.
    cmd.env_remove("PGSERVICE").env("PGPASSFILE", "/nonexistent").env("LC_ALL", "C").env_remove("PGCLIENTENCODING");
    match password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD"),
    };
    cmd.output().expect("run psql")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A private PostgreSQL 15 server with a fresh database, and that database's name.
fn start_postgres() -> (PgServer, String) {
    let pg = PgServer::start().unwrap_or_else(|err| panic!("cannot start PostgreSQL 15: {err}"));
    let url = pg.create_database();
    let db = url.rsplit('/').next().expect("database name").to_string();
    (pg, db)
}

/// Before tracing starts: the schema, two roles with passwords, and an hba that makes `alice`
/// authenticate with SCRAM and `bob` with a cleartext password (everyone else is trusted).
fn set_up(pg: &PgServer, db: &str) {
    let port = pg.port();
    ok(
        &psql(
            port,
            "postgres",
            None,
            db,
            &[
                "CREATE TABLE items (id int PRIMARY KEY, name text)",
                "CREATE ROLE alice LOGIN PASSWORD 's3cret'",
                "CREATE ROLE bob LOGIN PASSWORD 'hunter2'",
                "GRANT ALL ON items TO alice, bob",
            ],
        ),
        "schema",
    );
    let out = ok(&psql(port, "postgres", None, db, &["SHOW hba_file"]), "SHOW hba_file");
    let hba = out.lines().map(str::trim).find(|l| l.ends_with("pg_hba.conf")).expect("hba_file path");
    std::fs::write(
        hba,
        "local all all trust\n\
         host all alice 127.0.0.1/32 scram-sha-256\n\
         host all bob 127.0.0.1/32 password\n\
         host all all 127.0.0.1/32 trust\n",
    )
    .expect("write pg_hba.conf");
    ok(&psql(port, "postgres", None, db, &["SELECT pg_reload_conf()"]), "reload");
}

/// Drives the server; returns the (req_cmd, req, resp) rows each side must show.
fn drive(port: u16, db: &str, dir: &Path) -> Vec<(String, String, String)> {
    let alice = psql(
        port,
        "alice",
        Some("s3cret"),
        db,
        &[
            "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')",
            "SELECT id, name FROM items ORDER BY id",
            "SELECT * FROM nope",
        ],
    );
    // psql runs every -c and fails at the end because the last one failed.
    assert!(!alice.status.success(), "the last query must fail");
    assert!(String::from_utf8_lossy(&alice.stdout).contains("pear"), "{}", String::from_utf8_lossy(&alice.stdout));
    ok(&psql(port, "bob", Some("hunter2"), db, &["ALTER ROLE bob PASSWORD 'n3wpass'"]), "psql as bob");
    let script = write_script(dir, "bench.sql", "\\set id 2\nSELECT name FROM items WHERE id = :id;\n");
    let bench = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-t", "2", "-c", "1", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-f", script.to_str().expect("utf8 path"), db])
        .env("PGPASSFILE", "/nonexistent")
        .output()
        .expect("run pgbench");
    ok(&bench, "pgbench");

    let row = |cmd: &str, req: &str, resp: &str| (cmd.to_string(), req.to_string(), resp.to_string());
    let bench_query = "SELECT name FROM items WHERE id = $1; -- params: [\"2\"]";
    let mut want = vec![
        row("STARTUP", &format!("user=alice database={db} application_name=psql"), "AUTHENTICATION SASL SCRAM-SHA-256"),
        row("PASSWORD", "[REDACTED]", "AUTHENTICATION SASL CONTINUE"),
        row("PASSWORD", "[REDACTED]", "AUTHENTICATION SASL FINAL\nAUTHENTICATION OK"),
        row("QUERY", "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')", "INSERT 0 2"),
        row("QUERY", "SELECT id, name FROM items ORDER BY id", "id,name\n1,apple\n2,pear\nSELECT 2"),
        row("QUERY", "SELECT * FROM nope", "ERROR 42P01 relation \"nope\" does not exist"),
        row("STARTUP", &format!("user=bob database={db} application_name=psql"), "AUTHENTICATION CLEARTEXT"),
        row("PASSWORD", "[REDACTED]", "AUTHENTICATION OK"),
        row("QUERY", "ALTER ROLE bob PASSWORD '[REDACTED]'", "ALTER ROLE"),
        // pgbench: its first connection only checks the server; the second runs the script.
        row("STARTUP", &format!("user=postgres database={db} application_name=pgbench"), "AUTHENTICATION OK"),
        row("STARTUP", &format!("user=postgres database={db} application_name=pgbench"), "AUTHENTICATION OK"),
        row("PARSE", "SELECT name FROM items WHERE id = $1;", "PARSE COMPLETE"),
        row("BIND", bench_query, "BIND COMPLETE"),
        row("DESCRIBE", bench_query, "name"),
        row("EXECUTE", bench_query, "pear\nSELECT 1"),
        row("BIND", bench_query, "BIND COMPLETE"),
        row("DESCRIBE", bench_query, "name"),
        row("EXECUTE", bench_query, "pear\nSELECT 1"),
    ];
    want.sort();
    want
}

/// One row as compared: (trace_role, req_cmd, req, resp).
type Row = (i64, String, String, String);

/// Runs `script` until its rows, as [`Row`]s (sorted), equal `want` or 20 s pass; returns them and
/// the rows' JSON.
fn wait_for_rows(api_port: u16, script: &Path, want: &[Row]) -> (Vec<Row>, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = run(api_port, script);
        let mut got: Vec<Row> = rows
            .iter()
            .map(|r| {
                let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
                (r["trace_role"].as_i64().unwrap_or(-1), text("req_cmd"), text("req"), text("resp"))
            })
            .collect();
        got.sort();
        if got == want || Instant::now() > deadline {
            return (got, rows);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn run(api_port: u16, script: &Path) -> Vec<Value> {
    let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect()
}

#[test]
fn postgres_requests_land_in_pgsql_events_once_per_side() {
    if !can_trace() {
        return;
    }
    // Started and set up before the agent, so pg_ctl's readiness checks and the setup are not traced.
    let (pg, db) = start_postgres();
    let port = pg.port();
    set_up(&pg, &db);
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let dir = temp_dir("pgsql-capture");
    let want_side = drive(port, &db, &dir);
    let mut want: Vec<Row> = [1, 2]
        .into_iter()
        .flat_map(|role| want_side.iter().map(move |(c, q, r)| (role, c.clone(), q.clone(), r.clone())))
        .collect();
    want.sort();

    let filter = format!("df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n");
    let rows_script = write_script(
        &dir,
        "pgsql.pxl",
        &format!("import px\ndf = px.DataFrame(table='pgsql_events')\n{filter}px.display(df, 'pgsql')\n"),
    );
    let (got, rows) = wait_for_rows(api_port, &rows_script, &want);
    assert_eq!(got, want, "every request once per side (1 client, 2 server), with its response, credentials redacted");
    for r in &rows {
        let latency = r["latency"].as_i64().unwrap_or(-1);
        assert!((1..5_000_000_000).contains(&latency), "latency {latency} of {r}");
        assert_eq!(r["remote_addr"], "127.0.0.1", "{r}");
        assert_eq!(r["local_addr"], "127.0.0.1", "{r}");
        let server_side = r["trace_role"] == 2;
        assert_eq!(r["local_port"].as_i64() == Some(i64::from(port)), server_side, "ports match the role: {r}");
    }
    let text = serde_json::to_string(&rows).expect("json");
    for secret in ["s3cret", "hunter2", "n3wpass"] {
        assert!(!text.contains(secret), "{secret} leaked into pgsql_events");
    }

    // A PxL groupby over the same rows counts the same.
    let counts_script = write_script(
        &dir,
        "pgsql_counts.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='pgsql_events')\n{filter}\
             s = df.groupby(['trace_role', 'req_cmd']).agg(n=('latency', px.count))\npx.display(s, 'counts')\n"
        ),
    );
    let mut counts: Vec<((i64, String), i64)> = run(api_port, &counts_script)
        .iter()
        .map(|r| {
            let key = (r["trace_role"].as_i64().unwrap_or(-1), r["req_cmd"].as_str().unwrap_or_default().to_string());
            (key, r["n"].as_i64().unwrap_or(-1))
        })
        .collect();
    counts.sort();
    let want_counts = run_counts(want.iter().map(|(role, cmd, ..)| (*role, cmd.clone())));
    assert_eq!(counts, want_counts);
}

/// A client library that speaks the extended protocol itself: psycopg 3 (from PyPI, in the venv
/// `scripts/client-venv.sh` makes). Parameters bound by the server, statements prepared from the
/// first execution, an error in the extended protocol (the server skips to Sync), and a pipeline.
const PSYCOPG: &str = r#"
import sys
import psycopg

with psycopg.connect(sys.argv[1], prepare_threshold=0, autocommit=True) as conn:
    with conn.cursor() as cur:
        for i in (1, 2):
            cur.execute("SELECT name FROM items WHERE id = %s", (i,))
            assert cur.fetchone()[0] == ("apple", "pear")[i - 1]
        cur.execute("INSERT INTO items VALUES (%s, %s)", (3, "fig"))
        try:
            cur.execute("SELECT * FROM nope WHERE id = %s", (1,))
            raise SystemExit("no error")
        except psycopg.errors.UndefinedTable:
            pass
        with conn.pipeline():
            for i in (4, 5, 6):
                cur.execute("INSERT INTO items VALUES (%s, %s)", (i, "kiwi"))
print("done", flush=True)
"#;

#[test]
fn a_client_library_speaking_the_extended_protocol_lands_in_pgsql_events_counted_per_side() {
    if !can_trace() {
        return;
    }
    let python = crate::common::client_python();
    let (pg, db) = start_postgres();
    let port = pg.port();
    let db = db.as_str();
    ok(
        &psql(
            port,
            "postgres",
            None,
            db,
            &[
                "CREATE TABLE items (id int PRIMARY KEY, name text)",
                "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')",
            ],
        ),
        "schema",
    );
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname={db}");
    let out = Command::new(&python)
        .args(["-c", PSYCOPG, &url])
        .env("PGPASSFILE", "/nonexistent")
        .output()
        .expect("run psycopg");
    ok(&out, "psycopg");
    let dir = temp_dir("pgsql-psycopg");
    let script = write_script(
        &dir,
        "psycopg.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='pgsql_events')\n\
             df = df[((df.trace_role == 2) & (df.local_port == {port})) | ((df.trace_role == 1) & (df.remote_port == {port}))]\n\
             df.err = px.substring(df.resp, 0, 5) == 'ERROR'\n\
             s = df.groupby(['trace_role', 'req_cmd', 'err']).agg(n=('latency', px.count), min_latency=('latency', px.min))\n\
             px.display(s, 'counts')\n"
        ),
    );
    // Per side: the statements prepared on first use, executed with server-bound parameters (psycopg
    // sends integers in binary: shown in hex), the error at Parse, the pipeline's three inserts.
    let select = "SELECT name FROM items WHERE id = $1";
    let insert = "INSERT INTO items VALUES ($1, $2)";
    let bound = |query: &str, params: &str| format!("{query} -- params: {params}");
    let mut side: Vec<(String, String, String)> = vec![
        ("STARTUP".into(), format!("user=postgres database={db}"), "AUTHENTICATION OK".into()),
        ("PARSE".into(), select.into(), "PARSE COMPLETE".into()),
        ("PARSE".into(), insert.into(), "PARSE COMPLETE".into()),
        (
            "PARSE".into(),
            "SELECT * FROM nope WHERE id = $1".into(),
            "ERROR 42P01 relation \"nope\" does not exist".into(),
        ),
    ];
    for (params, resp) in [(r#"["\\x0001"]"#, "apple\nSELECT 1"), (r#"["\\x0002"]"#, "pear\nSELECT 1")] {
        side.push(("BIND".into(), bound(select, params), "BIND COMPLETE".into()));
        side.push(("DESCRIBE".into(), bound(select, params), "name".into()));
        side.push(("EXECUTE".into(), bound(select, params), resp.into()));
    }
    for (id, name) in [(3, "fig"), (4, "kiwi"), (5, "kiwi"), (6, "kiwi")] {
        let params = format!(r#"["\\x000{id}","{name}"]"#);
        side.push(("BIND".into(), bound(insert, &params), "BIND COMPLETE".into()));
        side.push(("DESCRIBE".into(), bound(insert, &params), "NO DATA".into()));
        side.push(("EXECUTE".into(), bound(insert, &params), "INSERT 0 1".into()));
    }
    let mut want: Vec<Row> = [1, 2]
        .into_iter()
        .flat_map(|role| side.iter().map(move |(c, q, r)| (role, c.clone(), q.clone(), r.clone())))
        .collect();
    want.sort();
    let rows_script = write_script(
        &dir,
        "psycopg-rows.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='pgsql_events')\n\
             df = df[((df.trace_role == 2) & (df.local_port == {port})) | ((df.trace_role == 1) & (df.remote_port == {port}))]\n\
             px.display(df, 'rows')\n"
        ),
    );
    let (got, rows) = wait_for_rows(api_port, &rows_script, &want);
    assert_eq!(got, want, "every extended-protocol request once per side (1 client, 2 server)");
    for r in &rows {
        assert!(r["latency"].as_i64().is_some_and(|l| l > 0 && l < 5_000_000_000), "latency: {r}");
    }
    // The groupby over the same rows: one error per side, the rest answered.
    let mut counts: Vec<((i64, String, bool), i64)> = run(api_port, &script)
        .iter()
        .map(|r| {
            let key = (
                r["trace_role"].as_i64().unwrap_or(-1),
                r["req_cmd"].as_str().unwrap_or_default().to_string(),
                r["err"].as_bool().unwrap_or(false),
            );
            (key, r["n"].as_i64().unwrap_or(-1))
        })
        .collect();
    counts.sort();
    let mut want_counts: Vec<((i64, String, bool), i64)> = [1, 2]
        .into_iter()
        .flat_map(|role| {
            [
                ("BIND", false, 6),
                ("DESCRIBE", false, 6),
                ("EXECUTE", false, 6),
                ("PARSE", false, 2),
                ("PARSE", true, 1),
                ("STARTUP", false, 1),
            ]
            .map(|(cmd, err, n)| ((role, cmd.to_string(), err), n))
        })
        .collect();
    want_counts.sort();
    assert_eq!(counts, want_counts);
}
