//! podman for tests: a containers storage of the test's own, so that tests
//! never see each other's images nor the machine's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A containers storage of its own under `dir` (vfs): the storage.conf that
/// points podman (and cargo-krust's podman) at it, for
/// `CONTAINERS_STORAGE_CONF`.
pub fn own_storage(dir: &Path) -> PathBuf {
    let conf = dir.join("storage.conf");
    let text = format!(
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
        dir.join("root").display(),
        dir.join("runroot").display()
    );
    std::fs::write(&conf, text).expect("write storage.conf");
    conf
}

/// This process's PATH without any directory holding a podman (/bin is
/// /usr/bin on Debian, so both go).
pub fn path_without_podman() -> OsString {
    let path: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|dir| !dir.join("podman").exists())
        .collect();
    std::env::join_paths(path).expect("PATH")
}

/// A Docker engine API for tests: podman's Docker-compatible service on a
/// socket of its own, over the storage of `conf` (no Docker engine can run
/// on these machines; the real `docker` client talks to this one). It
/// stops when dropped, and by itself after two idle minutes should the
/// test die first.
pub struct DockerApi {
    child: std::process::Child,
    /// `unix://…`, for DOCKER_HOST.
    pub host: String,
}

impl DockerApi {
    pub fn start(conf: &Path, dir: &Path) -> DockerApi {
        let socket = dir.join("docker.sock");
        let host = format!("unix://{}", socket.display());
        let child = std::process::Command::new(super::tools::require("podman", "podman"))
            .env("CONTAINERS_STORAGE_CONF", conf)
            .args(["system", "service", "--time=120", &host])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start podman system service");
        let api = DockerApi { child, host };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "podman system service did not create {}",
                socket.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        api
    }
}

impl Drop for DockerApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
