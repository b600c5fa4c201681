//! Servers a test starts for itself and talks to over a 127.0.0.1 port
//! (redis-server, an sccache server): each runs in the foreground as a
//! child of the test, with its output in a log file. Dropping the
//! [`Daemon`] stops it by its PID; a small `sh` watchdog stops it when the
//! test process disappears without dropping it (a panic in another
//! thread, a kill).

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::registry::free_port;

/// Stops the server ($2) once the test process ($1) is gone, and only then:
/// a server that ended by itself is left alone (its PID may be reused).
const WATCHDOG: &str = r#"
while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 0.5; done
kill -0 "$1" 2>/dev/null || kill "$2" 2>/dev/null
"#;

/// How long a server may take to accept connections on its port.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One running server; see the module comment.
pub struct Daemon {
    name: String,
    port: u16,
    log: PathBuf,
    server: Child,
    watchdog: Child,
}

impl Daemon {
    /// Starts the server `command_for(port)` makes for a free port, its
    /// stdout and stderr into `log`, and waits until the port accepts
    /// connections. Another process may take the port in between: then it
    /// tries again with another. Panics with the log when it does not come up.
    pub fn start(name: &str, log: &Path, command_for: impl Fn(u16) -> Command) -> Daemon {
        let mut failures = Vec::new();
        for _attempt in 0..3 {
            let port = free_port().unwrap_or_else(|e| panic!("no free port for {name}: {e}"));
            match Daemon::try_start(name, command_for(port), port, log) {
                Ok(daemon) => return daemon,
                Err(e) => failures.push(e),
            }
        }
        panic!("could not start {name}:\n{}", failures.join("\n"));
    }

    /// One attempt of [`Daemon::start`] on `port`.
    fn try_start(
        name: &str,
        mut command: Command,
        port: u16,
        log: &Path,
    ) -> Result<Daemon, String> {
        let output = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let errors = output
            .try_clone()
            .unwrap_or_else(|e| panic!("reopen {}: {e}", log.display()));
        let server = command
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "krust-daemon-watchdog"])
            .arg(std::process::id().to_string())
            .arg(server.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let watchdog = match watchdog {
            Ok(watchdog) => watchdog,
            Err(e) => {
                stop(server);
                panic!("cannot start sh to watch {name}: {e}");
            }
        };
        let mut daemon = Daemon {
            name: name.to_string(),
            port,
            log: log.to_path_buf(),
            server,
            watchdog,
        };
        daemon.wait_ready()?;
        Ok(daemon)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything it printed so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls until the port accepts a connection; an error with the log
    /// when the server exits first or the time is up (dropping the daemon
    /// then stops it).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.server.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening on {address}:\n{}",
                    self.name,
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not listen on {address} within {READY_TIMEOUT:?}:\n{}",
                    self.name,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// Kills and reaps a child we started.
fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}
