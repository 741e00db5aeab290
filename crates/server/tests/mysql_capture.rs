//! End to end: MySQL capture. `loupe up` traces a real MariaDB server (`mariadbd`, started by the
//! test on a private port and data dir) driven by the real `mariadb` client over password auth:
//! a select, an insert, an error, SQL-level prepared statements (`PREPARE`/`EXECUTE`) and a
//! password change. `px run` of `mysql_events` must return exactly those commands once per side
//! (client and server), with their status, latencies above zero and no credential; a PxL groupby
//! over them must count the same.
//!
//! Binary prepared statements (`COM_STMT_PREPARE`/`EXECUTE`/`CLOSE`) come from a client library,
//! Perl's DBD::MariaDB with server-side prepare (the `mariadb` client sends SQL text). Owns only
//! these acceptance checks; their queries filter by their own server's port.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, temp_dir, wait_for_port};
use crate::e2e::{can_trace, login, poll_keyed_counts, px, start_loupe, write_script};

/// `mariadbd` on 127.0.0.1:`port` with a fresh data dir under `dir`.
fn start_mariadb(port: u16, dir: &Path) -> Guard {
    let data = dir.join("data");
    let install = Command::new("mariadb-install-db")
        .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
        .arg(format!("--datadir={}", data.display()))
        .output()
        .expect("run mariadb-install-db (Debian package mariadb-server-core)");
    assert!(install.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&install.stderr));
    let child = Command::new("mariadbd")
        .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1", "--skip-log-bin"])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--socket={}", dir.join("sock").display()))
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .arg(format!("--log-error={}", dir.join("err.log").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mariadbd");
    let guard = Guard(child);
    wait_for_port(port, "mariadbd");
    guard
}

/// Before tracing starts: database `shop` with two items, and `alice` (password `s3cret`) who may
/// use it.
fn set_up_shop(port: u16) {
    let setup = Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-P", &port.to_string(), "-u", "root", "-e"])
        .arg(
            "CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name TEXT); \
             INSERT INTO shop.items VALUES (1, 'apple'), (2, 'pear'); \
             CREATE USER 'alice'@'127.0.0.1' IDENTIFIED BY 's3cret'; GRANT ALL ON shop.* TO 'alice'@'127.0.0.1';",
        )
        .output()
        .expect("run mariadb");
    assert!(setup.status.success(), "setup: {}", String::from_utf8_lossy(&setup.stderr));
}

/// The `mariadb` client as `user` against `shop`, running `sql` in batch mode.
fn mariadb(port: u16, user: &str, password: &str, sql: &str) -> Output {
    Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-P", &port.to_string(), "-u", user])
        .arg(format!("-p{password}"))
        .args(["-D", "shop", "-e", sql])
        .output()
        .expect("run mariadb (Debian package mariadb-client-core)")
}

/// One row as compared: (trace_role, req_cmd, req_body, resp_status, resp_body).
type Row = (i64, i64, String, i64, String);

#[test]
fn mysql_commands_land_in_mysql_events_once_per_side() {
    if !can_trace() {
        return;
    }
    let port = free_port();
    let dir = temp_dir("mysql-capture");
    let _mariadb = start_mariadb(port, &dir);
    // Set up before tracing starts.
    set_up_shop(port);
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);

    let first = mariadb(
        port,
        "alice",
        "s3cret",
        "SELECT id, name FROM items ORDER BY id; INSERT INTO items VALUES (3, 'fig'); SELECT * FROM nope;",
    );
    assert!(!first.status.success(), "the last statement must fail");
    let second = mariadb(
        port,
        "alice",
        "s3cret",
        "PREPARE s FROM 'SELECT name FROM items WHERE id = ?'; SET @id = 2; EXECUTE s USING @id; \
         DEALLOCATE PREPARE s; SET PASSWORD = PASSWORD('n3wpass');",
    );
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(String::from_utf8_lossy(&second.stdout), "name\npear\n");

    let row = |body: &str, status: i64, resp: &str| (3i64, body.to_string(), status, resp.to_string());
    let side = [
        row("SELECT id, name FROM items ORDER BY id", 2, "Resultset rows = 2"),
        row("INSERT INTO items VALUES (3, 'fig')", 2, ""),
        row("SELECT * FROM nope", 3, "Table 'shop.nope' doesn't exist"),
        row("PREPARE s FROM 'SELECT name FROM items WHERE id = ?'", 2, ""),
        row("SET @id = 2", 2, ""),
        row("EXECUTE s USING @id", 2, "Resultset rows = 1"),
        row("DEALLOCATE PREPARE s", 2, ""),
        row("SET PASSWORD = PASSWORD('[REDACTED]')", 2, ""),
    ];
    let mut want: Vec<Row> = [1, 2]
        .into_iter()
        .flat_map(|role| side.iter().map(move |(c, b, s, r)| (role, *c, b.clone(), *s, r.clone())))
        .collect();
    want.sort();

    let filter = format!("df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n");
    let script = write_script(
        &dir,
        "mysql.pxl",
        &format!("import px\ndf = px.DataFrame(table='mysql_events')\n{filter}px.display(df, 'mysql')\n"),
    );
    let run = |script: &Path| -> Vec<Value> {
        let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
        assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (got, rows) = loop {
        let rows = run(&script);
        let mut got: Vec<Row> = rows
            .iter()
            .map(|r| {
                let int = |c: &str| r[c].as_i64().unwrap_or(-1);
                let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
                (int("trace_role"), int("req_cmd"), text("req_body"), int("resp_status"), text("resp_body"))
            })
            .collect();
        got.sort();
        if got == want || Instant::now() > deadline {
            break (got, rows);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, want, "every command once per side (1 client, 2 server), credentials redacted");
    for r in &rows {
        let latency = r["latency"].as_i64().unwrap_or(-1);
        assert!((1..5_000_000_000).contains(&latency), "latency {latency} of {r}");
        assert_eq!(
            r["local_port"].as_i64() == Some(i64::from(port)),
            r["trace_role"] == 2,
            "ports match the role: {r}"
        );
    }
    let text = serde_json::to_string(&rows).expect("json");
    for secret in ["s3cret", "n3wpass"] {
        assert!(!text.contains(secret), "{secret} leaked into mysql_events");
    }

    let counts = write_script(
        &dir,
        "mysql_counts.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='mysql_events')\n{filter}\
             s = df.groupby(['trace_role', 'resp_status']).agg(n=('latency', px.count))\npx.display(s, 'counts')\n"
        ),
    );
    let mut counts: Vec<(i64, i64, i64)> = run(&counts)
        .iter()
        .map(|r| {
            (
                r["trace_role"].as_i64().unwrap_or(-1),
                r["resp_status"].as_i64().unwrap_or(-1),
                r["n"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(counts, [(1, 2, 7), (1, 3, 1), (2, 2, 7), (2, 3, 1)]);
}

/// Binary prepared statements (`COM_STMT_PREPARE`, `COM_STMT_EXECUTE`, `COM_STMT_CLOSE`) from a real
/// client library: Perl's DBD::MariaDB (Debian's `libdbd-mariadb-perl`, Connector/C underneath) with
/// `mariadb_server_prepare=1`. A select prepared once and executed twice, an insert, and a prepare
/// that fails: each execute carries its statement's text.
#[test]
fn binary_prepared_statements_of_a_client_library_land_in_mysql_events_once_per_side() {
    if !can_trace() {
        return;
    }
    let port = free_port();
    let dir = temp_dir("mysql-binary-capture");
    let _mariadb = start_mariadb(port, &dir);
    set_up_shop(port);
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);

    let perl = format!(
        "use strict; use DBI;\n\
         my $dbh = DBI->connect('DBI:MariaDB:database=shop;host=127.0.0.1;port={port};mariadb_server_prepare=1',\n\
         \x20   'alice', 's3cret', {{RaiseError => 1, PrintError => 0, AutoCommit => 1}});\n\
         my $sth = $dbh->prepare('SELECT name FROM items WHERE id = ?');\n\
         for my $id (1, 2) {{ $sth->execute($id); my ($name) = $sth->fetchrow_array; print \"$name\\n\"; $sth->finish; }}\n\
         my $ins = $dbh->prepare('INSERT INTO items VALUES (?, ?)');\n\
         $ins->execute(5, 'kiwi');\n\
         eval {{ $dbh->prepare('SELECT * FROM nope WHERE id = ?') }};\n\
         print $@ ? \"refused\\n\" : \"accepted\\n\";\n\
         undef $sth; undef $ins;\n\
         $dbh->disconnect;\n"
    );
    let out = Command::new("perl").args(["-e", &perl]).output().expect("run perl");
    assert!(
        out.status.success(),
        "perl DBD::MariaDB (apt-get install libdbd-mariadb-perl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "apple\npear\nrefused\n");

    let script = write_script(
        &dir,
        "mysql-binary.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='mysql_events')\n\
             df = df[((df.trace_role == 2) & (df.local_port == {port})) | ((df.trace_role == 1) & (df.remote_port == {port}))]\n\
             s = df.groupby(['trace_role', 'req_cmd', 'req_body', 'resp_status']).agg(\n\
             \x20   n=('latency', px.count), min_latency=('latency', px.min))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let select = "SELECT name FROM items WHERE id = ?";
    let insert = "INSERT INTO items VALUES (?, ?)";
    // req_cmd: 3 COM_QUERY, 22 COM_STMT_PREPARE, 23 COM_STMT_EXECUTE, 25 COM_STMT_CLOSE; resp_status: 1 none,
    // 2 OK, 3 error. The driver sets the connection's character set in text first.
    let side = [
        (3, "SET NAMES 'utf8mb4'", 2, 1),
        (3, "SET character_set_server = 'utf8mb4'", 2, 1),
        (3, "SET collation_connection = 'utf8mb4_unicode_ci'", 2, 1),
        (3, "SET collation_server = 'utf8mb4_unicode_ci'", 2, 1),
        (22, select, 2, 1),
        (23, select, 2, 2),
        (22, insert, 2, 1),
        (23, insert, 2, 1),
        (22, "SELECT * FROM nope WHERE id = ?", 3, 1),
        (25, select, 1, 1),
        (25, insert, 1, 1),
    ];
    let mut want: Vec<((i64, i64, String, i64), i64)> = [1, 2]
        .into_iter()
        .flat_map(|role| side.iter().map(move |&(cmd, body, status, n)| ((role, cmd, body.to_string(), status), n)))
        .collect();
    want.sort();
    let (got, rows) = poll_keyed_counts(api_port, &script, &want, |r| {
        let int = |c: &str| r[c].as_i64().unwrap_or(-1);
        (int("trace_role"), int("req_cmd"), r["req_body"].as_str().unwrap_or_default().to_string(), int("resp_status"))
    });
    assert_eq!(got, want, "every binary-protocol command once per side (1 client, 2 server)");
    for r in &rows {
        // COM_STMT_CLOSE has no response: its latency is 0.
        if r["req_cmd"] != 25 {
            assert!(r["min_latency"].as_i64().unwrap_or(0) > 0, "latency must be > 0: {r}");
        }
    }
}
