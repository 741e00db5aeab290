//! `Daemon`: one server child process on a free loopback port with a temp dir of its own, started and awaited
//! until it answers, stopped and started again on the same port and dir, killed and cleaned up on drop. The
//! servers of this crate (Redis, NATS) are thin wrappers that say how to run and how to ping theirs.
//! Owns process management only; must not contain assertions about the code under test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How to run one kind of server.
pub(crate) struct Recipe {
    /// The binary, looked up on PATH.
    pub program: &'static str,
    /// The Debian package that has it, for the error when it is missing.
    pub package: &'static str,
    /// Its arguments for a port and a data dir.
    pub args: fn(u16, &Path) -> Vec<String>,
    /// Whether it answers on the port yet.
    pub ready: fn(u16) -> bool,
}

/// A running (or stopped) server.
pub(crate) struct Daemon {
    recipe: Recipe,
    child: Option<Child>,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
}

impl Daemon {
    /// Starts the server in a new temp dir on a free port and waits until it is ready.
    pub(crate) fn start(recipe: Recipe) -> Daemon {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "loupe-test-{}-{}-{}",
            recipe.program,
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let mut daemon = Daemon { recipe, child: None, port: crate::free_port(), dir };
        daemon.spawn();
        daemon
    }

    /// Kills the server and waits for it to exit; port and dir stay for [`Daemon::restart`].
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and dir.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let Recipe { program, package, args, ready } = self.recipe;
        let child = Command::new(program)
            .args(args(self.port, &self.dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => panic!(
                    "{program} not found on PATH; these tests need the real server: `apt-get install {package}` \
                     (scripts/test.sh installs it)"
                ),
                _ => panic!("failed to start {program}: {e}"),
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready(self.port) {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{program} exited early with {status} (port {})", self.port);
            }
            assert!(Instant::now() < deadline, "{program} did not answer on port {} within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
