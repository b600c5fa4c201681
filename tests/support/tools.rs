//! Required external tools. A missing tool is a test failure whose message names
//! the setup command — never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The one command that installs everything the suite needs.
pub const SETUP: &str = "scripts/test";

/// Find `name` on PATH (or as an absolute path).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// True when `path` is a regular file with an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Path of a required tool; panics with the setup command when it is missing.
/// `apt_package` is the Debian package that provides it.
pub fn require(name: &str, apt_package: &str) -> PathBuf {
    find_in_path(name).unwrap_or_else(|| {
        panic!(
            "required tool `{name}` is not installed (PATH and /usr/sbin searched).\n\
             Set up the test machine with `{SETUP}`, or install it with:\n    \
             apt-get install -y {apt_package}"
        )
    })
}

/// `/usr/bin/qemu-aarch64-static`, needed to run arm64 images on x86_64.
pub fn qemu_aarch64() -> PathBuf {
    require("qemu-aarch64-static", "qemu-user-static")
}

/// The install command for zig and cargo-zigbuild (scripts/test runs it).
pub const ZIG_SETUP: &str = "pip install ziglang cargo-zigbuild";

/// Panic with the setup command unless `cargo-zigbuild` is on PATH and can run
/// zig (`cargo-zigbuild zig cc -- --version`), as the C-dependency builds need.
pub fn require_zig() {
    let zigbuild = find_in_path("cargo-zigbuild").unwrap_or_else(|| {
        panic!(
            "cargo-zigbuild is not on PATH; C dependencies are cross-compiled with zig.\n\
             Run `{SETUP}` (it installs them), or:\n    {ZIG_SETUP}"
        )
    });
    let output = Command::new(&zigbuild)
        .args(["zig", "cc", "--", "--version"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", zigbuild.display()));
    assert!(
        output.status.success(),
        "{} cannot run zig: {}\nRun `{SETUP}`, or:\n    {ZIG_SETUP}",
        zigbuild.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Panic with the setup command unless every musl target the suite builds for is
/// installed (`rustup target list --installed`).
pub fn require_rust_targets(targets: &[&str]) {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `rustup` ({e}); install rustup, then run `{SETUP}`")
        });
    let installed = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    assert!(
        missing.is_empty(),
        "missing Rust targets {missing:?}; run `{SETUP}` or:\n    rustup target add {}",
        missing.join(" ")
    );
}

/// The musl targets of linux/amd64 and linux/arm64, the platforms the suite runs.
pub fn require_default_rust_targets() {
    require_rust_targets(&["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]);
}

/// Panic unless running as root (runc, chroot and umoci's ownership-preserving
/// unpack need it).
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .unwrap_or("");
    assert_eq!(
        euid, "0",
        "these tests unpack and run images with umoci, runc and chroot and must run \
         as root; run `sudo -E {SETUP}`"
    );
}
