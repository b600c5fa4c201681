//! A registry that implements the OCI distribution 1.1 referrers API
//! (ferro-oci-server, wrapped in tests/registries/referrers and built by
//! `scripts/test` into target/krust-tools/bin/), on a free 127.0.0.1 port
//! with fresh storage. Distribution 2.8 ([`super::registry`]) has no
//! referrers API: the two together cover both ways cargo-krust publishes
//! referrers. Dropping it stops it (by its PID) and removes its storage.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http;
use super::registry::free_port;
use super::tools::SETUP;

/// The command that builds the registry binary (scripts/test runs it).
pub const BUILD: &str = "cargo build --release --locked --manifest-path tests/registries/referrers/Cargo.toml --target-dir target/krust-tools/referrers-registry && install -D target/krust-tools/referrers-registry/release/krust-referrers-registry target/krust-tools/bin/krust-referrers-registry";

/// Where scripts/test puts the binary.
pub fn binary() -> PathBuf {
    super::repo_root().join("target/krust-tools/bin/krust-referrers-registry")
}

pub struct ReferrersRegistry {
    port: u16,
    child: Child,
    _storage: tempfile::TempDir,
}

impl ReferrersRegistry {
    /// Starts it and waits until `GET /v2/` answers 200; panics naming the
    /// setup command when the binary is missing.
    pub fn start() -> ReferrersRegistry {
        let binary = binary();
        assert!(
            binary.is_file(),
            "the referrers-API test registry {} is not built: run `{SETUP}` (it builds it), or:\n    {BUILD}",
            binary.display()
        );
        let storage = tempfile::Builder::new()
            .prefix("krust-referrers-registry-")
            .tempdir()
            .expect("tempdir for the referrers registry");
        let port = free_port().expect("a free port");
        let child = Command::new(&binary)
            .env("FERRO_OCI_LISTEN", format!("127.0.0.1:{port}"))
            .env("FERRO_OCI_STORAGE_DIR", storage.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut registry = ReferrersRegistry {
            port,
            child,
            _storage: storage,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match http::get(&registry.host(), "/v2/") {
                Ok(r) if r.status == 200 => return registry,
                Ok(r) => panic!("{} answered GET /v2/ with {}", binary.display(), r.status),
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "{} never answered on {}: {e}",
                        binary.display(),
                        registry.host()
                    )
                }
                Err(_) => {}
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("{} exited early ({status})", binary.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many PUT, POST, PATCH and DELETE requests it has answered so
    /// far, from its Prometheus counters (`GET /metrics`).
    pub fn write_requests(&self) -> u64 {
        let metrics =
            http::get(&self.host(), "/metrics").unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        assert_eq!(metrics.status, 200, "GET /metrics");
        String::from_utf8_lossy(&metrics.body)
            .lines()
            .filter(|line| line.starts_with("ferrooci_http_requests_total{"))
            .filter(|line| {
                ["PUT", "POST", "PATCH", "DELETE"]
                    .iter()
                    .any(|method| line.contains(&format!("method=\"{method}\"")))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
