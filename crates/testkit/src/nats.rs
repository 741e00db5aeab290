//! `NatsServer`: a real `nats-server` (Debian's `nats-server`) with JetStream, on a free loopback port and its
//! own store directory, killed on drop. It can be stopped and started again on the same port and store, so
//! tests can show that clients and durable messages survive a restart.
//! Owns how to run and ping NATS; process management is the private `daemon` module's.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::daemon::{Daemon, Recipe};

/// A throwaway NATS server with JetStream in its own temp dir.
pub struct NatsServer(Daemon);

impl NatsServer {
    /// Starts `nats-server -js` on a free port and waits until it answers `PING`.
    ///
    /// # Panics
    /// When the binary is missing or the server does not come up: the test cannot go on.
    pub fn start() -> Self {
        NatsServer(Daemon::start(Recipe { program: "nats-server", package: "nats-server", args, ready: ping }))
    }

    /// The `nats://` URL of this server.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
    }

    /// Kills the server and waits for it to exit; the port and the JetStream store stay for
    /// [`NatsServer::restart`].
    pub fn stop(&mut self) {
        self.0.stop();
    }

    /// Starts the server again on the same port, over the same JetStream store.
    pub fn restart(&mut self) {
        self.0.restart();
    }
}

fn args(port: u16, dir: &Path) -> Vec<String> {
    let store = dir.join("jetstream").display().to_string();
    ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd", &store].map(String::from).to_vec()
}

/// NATS greets with `INFO {...}`; a `PING` after `CONNECT` is answered `PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return false,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || !line.starts_with("INFO ") {
        return false;
    }
    if stream.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n").is_err() {
        return false;
    }
    line.clear();
    reader.read_line(&mut line).is_ok() && line.starts_with("PONG")
}
