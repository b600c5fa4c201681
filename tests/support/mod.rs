//! Shared harness for the cargo-krust integration tests.
//!
//! Everything here is real: a Debian `docker-registry` on 127.0.0.1, base images
//! built by this code and pushed with `skopeo`, images inspected with `skopeo`,
//! unpacked with `umoci` and run with `runc`, `chroot` and `qemu-aarch64-static`.
//! Nothing talks to the internet and no Docker daemon is needed.
//!
//! Each test file includes this module with `mod support;`; every test binary uses
//! a different subset, hence the `dead_code` allowance.
//!
//! - [`registry`]: start/stop a registry (plain, TLS, htpasswd, token modes),
//!   read its access log.
//! - [`certs`]: a test CA, server certificates and token signing via `openssl`.
//! - [`token`]: a token server for the registry's Bearer-token mode.
//! - [`referrers_registry`]: a registry with the referrers API (ferro-oci-server).
//! - [`faults`]: a fault-injecting proxy in front of a registry.
//! - [`rogue`]: a registry that misbehaves on purpose (answers chosen per test).
//! - [`serve`]: the tiny HTTP server under the token server, the proxy and the
//!   rogue registry.
//! - [`http`]: a tiny HTTP/1.0 client (readiness checks, blob downloads).
//! - [`base`]: build the distroless-like base images as an OCI layout and push them.
//! - [`krust`]: run the `cargo-krust` binary with a controlled environment.
//! - [`image`]: inspect pushed images (skopeo + blobs), unpack and run them.
//! - [`daemon`]: servers a test starts for itself (redis, sccache), stopped by PID.
//! - [`disk`]: a tmpfs that really fills up.
//! - [`elf`]: read just enough of an ELF header to check architecture and linking.
//! - [`tools`]: fail loudly (never skip) when a required tool is missing.
#![allow(dead_code)]

pub mod base;
pub mod certs;
pub mod daemon;
pub mod disk;
pub mod elf;
pub mod faults;
pub mod http;
pub mod image;
pub mod krust;
pub mod podman;
pub mod process;
pub mod referrers_registry;
pub mod registry;
pub mod rogue;
pub mod serve;
pub mod token;
pub mod tools;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

pub use base::PushedBases;
pub use registry::Registry;

/// Root of the cargo-krust checkout (where its Cargo.toml lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo target dir shared by every example build of every test, so that the
/// musl builds of the example crates are compiled once and then reused.
pub fn shared_target_dir() -> PathBuf {
    repo_root().join("target").join("krust-tests-target")
}

/// Path of an example crate under `examples/`.
pub fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

/// A name that is unique within this test process and valid as an OCI
/// repository path component (lower-case, digits and `-`).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A registry plus the base images pushed into it, shared by all the tests of
/// one test binary. Tests that need isolation use their own repository names
/// (see [`unique_name`]) or their own [`Registry::start`].
pub struct Shared {
    /// The registry every test of this binary may use.
    pub registry: Registry,
    /// The base images in `registry` (`base:latest`, `base-single:latest`).
    pub bases: PushedBases,
}

/// The shared registry with the base images, started on first use.
///
/// It lives until the test process exits; its watchdog then stops it and removes
/// its storage (statics are never dropped).
pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let registry = Registry::start();
        let bases = base::push_bases(&registry);
        Shared { registry, bases }
    })
}

/// Copy a directory tree (files, directories and symlinks as symlinks),
/// leaving out `target` directories.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("dir entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            let target = std::fs::read_link(&src).expect("read link");
            std::os::unix::fs::symlink(target, &dst).expect("create symlink");
        } else if kind.is_dir() {
            if entry.file_name() != "target" {
                copy_tree(&src, &dst);
            }
        } else {
            std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

/// Create a fresh binary package with `cargo new --bin` in `parent/name`.
pub fn cargo_new_bin(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    let output = std::process::Command::new("cargo")
        .args(["new", "--bin", "--vcs", "none", "--name", name])
        .arg(&dir)
        .output()
        .expect("failed to run `cargo new` (is cargo on PATH?)");
    assert!(
        output.status.success(),
        "cargo new {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

/// Create a library-only package with `cargo new --lib` in `parent/name`.
pub fn cargo_new_lib(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    let output = std::process::Command::new("cargo")
        .args(["new", "--lib", "--vcs", "none", "--name", name])
        .arg(&dir)
        .output()
        .expect("failed to run `cargo new --lib`");
    assert!(
        output.status.success(),
        "cargo new --lib {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

/// A registry of the test's own (stopped on drop) with the base images pushed,
/// for tests that count requests or must see no request at all.
pub fn own_registry_with_bases() -> (Registry, PushedBases) {
    let registry = Registry::start();
    let bases = base::push_bases(&registry);
    (registry, bases)
}

/// Writes an executable script (a stand-in tool or credential helper).
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod +x {}: {e}", path.display()));
}

/// A secret nobody else prints (a password, a token): unique per run, so
/// finding it in output can only mean a leak.
pub fn unique_secret(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}
