//! The Rust toolchain side of cross-compiling: making sure the standard
//! library of a musl target is installed (adding it with rustup when it is
//! missing, as SPEC §6 asks), for the toolchain the package itself selects
//! (rust-toolchain.toml is honoured because commands run in its directory).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::progress;

/// The sysroot of the toolchain that builds in `dir`.
fn sysroot(dir: &Path) -> Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run {}: is Rust installed?", rustc.to_string_lossy()))?;
    if !output.status.success() {
        bail!(
            "`rustc --print sysroot` failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// Ensures the target's standard library is present, installing it with
/// rustup when possible.
pub fn ensure_target(triple: &str, dir: &Path) -> Result<()> {
    let root = sysroot(dir)?;
    if root.join("lib/rustlib").join(triple).join("lib").is_dir() {
        return Ok(());
    }
    let has_rustup = Command::new("rustup")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_rustup {
        bail!(
            "the Rust standard library for {triple} is not installed in {} and rustup is not available: install it (e.g. `rustup target add {triple}`)",
            root.display()
        );
    }
    progress::status(
        "Installing",
        format!("Rust target {triple} (rustup target add)"),
    );
    let output = Command::new("rustup")
        .args(["target", "add", triple])
        .current_dir(dir)
        .output()
        .context("cannot run rustup")?;
    if !output.status.success() {
        bail!(
            "`rustup target add {triple}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or("see rustup's output")
                .trim()
        );
    }
    Ok(())
}
