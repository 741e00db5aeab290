//! `RedisServer`: a real `redis-server` (no persistence) on a free loopback port, killed on drop.
//! Owns how to run and ping Redis; process management is the private `daemon` module's.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::daemon::{Daemon, Recipe};

/// A throwaway Redis server in its own temp dir.
pub struct RedisServer(Daemon);

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers `PING`.
    ///
    /// # Panics
    /// When the binary is missing or the server does not come up: the test cannot go on.
    pub fn start() -> Self {
        RedisServer(Daemon::start(Recipe { program: "redis-server", package: "redis-server", args, ready: ping }))
    }

    /// The `redis://` URL of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }

    /// Kills the server and waits for it to exit; the port stays reserved for [`RedisServer::restart`].
    pub fn stop(&mut self) {
        self.0.stop();
    }

    /// Starts a fresh server on the same port (state is gone: no persistence).
    pub fn restart(&mut self) {
        self.0.restart();
    }
}

fn args(port: u16, dir: &Path) -> Vec<String> {
    let port = port.to_string();
    let dir = dir.display().to_string();
    ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", &dir]
        .map(String::from)
        .to_vec()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
