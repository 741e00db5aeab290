//! `PgServer`: a throwaway PostgreSQL 15 server the tests start themselves, one database per test.
//!
//! Owns initdb/pg_ctl, a temp data dir, a free port, per-test databases, and cleanup (on `Drop`, and by a reaper
//! process for the process-wide shared server, since statics are never dropped). Must not touch: any system
//! PostgreSQL cluster or service; everything lives under a fresh temp dir on 127.0.0.1.
//!
//! Postgres refuses to run as root, so as root every server command runs as the `postgres` user
//! (`runuser -u postgres --`), which the Debian package `postgresql-15` creates. `LOUPE_PG_BIN` overrides the
//! binary directory (default `/usr/lib/postgresql/15/bin`).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";
const INSTALL_HINT: &str = "install PostgreSQL 15 with `apt-get install postgresql-15` (or set LOUPE_PG_BIN)";

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A running PostgreSQL server in its own temp dir; stopped and deleted on drop.
pub struct PgServer {
    base: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl PgServer {
    /// Initialises a new cluster in a temp dir and starts it on a free 127.0.0.1 port.
    pub fn start() -> Result<PgServer, String> {
        let bin = std::env::var_os("LOUPE_PG_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_BIN));
        for tool in ["initdb", "pg_ctl", "postgres"] {
            if !bin.join(tool).exists() {
                return Err(format!("{} not found: {INSTALL_HINT}", bin.join(tool).display()));
            }
        }
        let as_postgres_user = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        if as_postgres_user && !command_ok(Command::new("id").args(["-u", "postgres"])) {
            return Err(format!(
                "running as root but there is no `postgres` user to run the server as: {INSTALL_HINT}"
            ));
        }
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        let base = std::env::temp_dir().join(format!("loupe-metastore-pg-{}-{id}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
        let server = PgServer { base, bin, port: crate::free_port(), as_postgres_user };
        if as_postgres_user {
            run(Command::new("chown").arg("postgres:postgres").arg(&server.base))?;
        }
        server.spawn_reaper();
        let data = server.data_dir();
        server.run_pg("initdb", |c| {
            c.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
        })?;
        server.start_again()?;
        Ok(server)
    }

    /// The process-wide server the shared suite uses (started on first use, reaped when the process exits).
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();
        match SHARED.get_or_init(PgServer::start) {
            Ok(server) => server,
            Err(err) => panic!("cannot start the test PostgreSQL server: {err}"),
        }
    }

    /// Starts the (stopped) server again on the same port and data dir.
    pub fn start_again(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            self.port,
            self.base.display()
        );
        let (data, log) = (self.data_dir(), self.base.join("server.log"));
        self.run_pg("pg_ctl", |c| {
            c.arg("-D").arg(&data).arg("-l").arg(&log).args(["-w", "-t", "30", "-o", &options, "start"]);
        })
        .map_err(|e| format!("{e}\nserver log:\n{}", std::fs::read_to_string(&log).unwrap_or_default()))
    }

    /// Stops the server (`pg_ctl stop -m fast`: open sessions are terminated).
    pub fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run_pg("pg_ctl", |c| {
            c.arg("-D").arg(&data).args(["-w", "-t", "30", "-m", "fast", "stop"]);
        })
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh empty database (with the package's `createdb`) and returns its URL.
    ///
    /// # Panics
    /// When the server refuses: the test cannot go on without its database.
    pub fn create_database(&self) -> String {
        let name = format!("t_{}", NEXT_ID.fetch_add(1, Ordering::SeqCst));
        let created = run(Command::new(self.bin.join("createdb")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            &name,
        ]));
        if let Err(err) = created {
            panic!("cannot create a test database: {err}");
        }
        self.url(&name)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    /// Runs one of the server binaries, as `postgres` when we are root.
    fn run_pg(&self, tool: &str, args: impl FnOnce(&mut Command)) -> Result<(), String> {
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        args(&mut cmd);
        cmd.current_dir(&self.base);
        run(&mut cmd)
    }

    /// A detached shell that stops the server and deletes its dir once this test process has exited.
    fn spawn_reaper(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres_user {
            format!("runuser -u postgres -- {} -D {} stop -m immediate", pg_ctl.display(), self.data_dir().display())
        } else {
            format!("{} -D {} stop -m immediate", pg_ctl.display(), self.data_dir().display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {base}",
            pid = std::process::id(),
            base = self.base.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run_pg("pg_ctl", |c| {
            c.arg("-D").arg(&data).args(["-w", "-m", "immediate", "stop"]);
        });
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn command_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
}
