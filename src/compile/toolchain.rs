//! The Rust toolchain side of cross-compiling: making sure the standard
//! library of a musl target is installed (adding it with rustup when it is
//! missing, as SPEC §6 asks), for the toolchain the package itself selects
//! (rust-toolchain.toml is honoured because commands run in its directory);
//! or, with build-std, finding the nightly toolchain with rust-src that
//! builds the standard library from source; and a target's cfg values, which
//! decide the `target.'cfg(…)'` tables of cargo's configuration that apply.
//!
//! Asking rustc for its sysroot costs ~20 ms, a third of a no-op rebuild, so
//! the answer is remembered under a fingerprint of everything that selects
//! the toolchain (directory, rustup variables, PATH, rust-toolchain files,
//! rustup's settings); the target directory itself is still checked each
//! run, which is a `stat`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, bail};
use cargo_platform::Cfg;
use sha2::{Digest as _, Sha256};

use super::strategy::ZIG_INSTALL_HINT;
use crate::progress;
use crate::store::BlobStore;

/// The command that installs what build-std needs.
const NIGHTLY_HINT: &str = "rustup toolchain install nightly --component rust-src";

/// `rustc` as cargo would run it in `dir`, optionally with a rustup toolchain.
pub fn rustc(dir: &Path, toolchain: Option<&str>) -> Command {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut command = Command::new(rustc);
    command.current_dir(dir);
    if let Some(toolchain) = toolchain {
        command.env("RUSTUP_TOOLCHAIN", toolchain);
    }
    command
}

/// A hash of what decides which toolchain `rustc` in `dir` is.
pub(super) fn selection_fingerprint(dir: &Path) -> String {
    let mut hasher = Sha256::new();
    hasher.update(dir.as_os_str().as_encoded_bytes());
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTUP_HOME",
        "CARGO_HOME",
        "PATH",
        "HOME",
    ] {
        hasher.update(format!("\n{var}=").as_bytes());
        if let Some(value) = std::env::var_os(var) {
            hasher.update(value.as_encoded_bytes());
        }
    }
    let rustup_home = super::cargo_config::rustup_home();
    let toolchain_files = dir
        .ancestors()
        .flat_map(|d| ["rust-toolchain.toml", "rust-toolchain"].map(|name| d.join(name)));
    let settings = rustup_home.map(|home| home.join("settings.toml"));
    for file in toolchain_files.chain(settings) {
        if let Ok(content) = std::fs::read(&file) {
            hasher.update(file.as_os_str().as_encoded_bytes());
            hasher.update(&content);
        }
    }
    hex::encode(hasher.finalize())
}

/// What `rustc ARGS` prints, run as cargo would in `dir`.
fn rustc_output(dir: &Path, toolchain: Option<&str>, args: &[&str]) -> Result<String> {
    let output = rustc(dir, toolchain)
        .args(args)
        .output()
        .context("cannot run rustc: is Rust installed?")?;
    if !output.status.success() {
        bail!(
            "`rustc {}` failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `rustc -vV` of the toolchain that builds in `dir` (or `toolchain`): its
/// release, host and commit, for the SBOM. Asking costs ~20 ms, a fifth of
/// an unchanged rebuild, so the answer is remembered under the toolchain
/// selection and the identity of the sysroot's `bin/rustc` (which an update
/// of the toolchain replaces), once a build has recorded the sysroot.
pub fn version(dir: &Path, toolchain: Option<&str>, records: &BlobStore) -> Result<String> {
    let key = match toolchain {
        None => version_key(dir, records),
        Some(_) => None,
    };
    if let Some(printed) = key
        .as_ref()
        .and_then(|key| records.read_record("rustc-version", key))
    {
        return Ok(String::from_utf8_lossy(&printed).into_owned());
    }
    let printed = rustc_output(dir, toolchain, &["-vV"])?;
    if let Some(key) = key {
        records.write_record("rustc-version", &key, printed.as_bytes())?;
    }
    Ok(printed)
}

/// What `rustc -vV` says of a toolchain (what the SBOM and the provenance
/// record of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustcVersion {
    /// The first line, e.g. `rustc 1.91.0 (f8297e351 2025-10-28)`.
    pub version: String,
    pub release: Option<String>,
    pub commit_hash: Option<String>,
    pub host: Option<String>,
}

impl RustcVersion {
    /// Reads `rustc -vV` output; `None` when it is empty. Fields that are
    /// missing, empty or `unknown` are `None`.
    pub fn parse(text: &str) -> Option<RustcVersion> {
        let version = text.lines().next()?.trim().to_string();
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty() && value != "unknown")
        };
        Some(RustcVersion {
            version,
            release: field("release"),
            commit_hash: field("commit-hash"),
            host: field("host"),
        })
    }
}

/// What [`version`] is remembered under, when the sysroot is known.
fn version_key(dir: &Path, records: &BlobStore) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let fingerprint = selection_fingerprint(dir);
    let root = records.read_record("sysroot", &fingerprint)?;
    let rustc = PathBuf::from(String::from_utf8_lossy(&root).into_owned()).join("bin/rustc");
    let file = std::fs::metadata(&rustc).ok()?;
    let identity = format!(
        "{fingerprint}\n{}\n{} {} {} {}",
        rustc.display(),
        file.ino(),
        file.len(),
        file.mtime(),
        file.mtime_nsec()
    );
    Some(hex::encode(Sha256::digest(identity.as_bytes())))
}

/// The sysroot of the toolchain that builds in `dir`.
fn sysroot(dir: &Path) -> Result<PathBuf> {
    let printed = rustc_output(dir, None, &["--print", "sysroot"])?;
    Ok(PathBuf::from(printed.trim()))
}

/// The cfg values of `triple` (`rustc --print cfg --target TRIPLE`) for the
/// toolchain that builds in `dir` (or `toolchain`), asked once per process:
/// what cargo matches `target.'cfg(…)'` tables against.
pub fn target_cfg(triple: &str, dir: &Path, toolchain: Option<&str>) -> Result<Vec<Cfg>> {
    type Key = (String, PathBuf, Option<String>);
    static ASKED: OnceLock<Mutex<HashMap<Key, Vec<Cfg>>>> = OnceLock::new();
    let key = (
        triple.to_string(),
        dir.to_path_buf(),
        toolchain.map(String::from),
    );
    let asked = ASKED.get_or_init(Mutex::default);
    if let Some(cfg) = asked.lock().ok().and_then(|asked| asked.get(&key).cloned()) {
        return Ok(cfg);
    }
    let printed = rustc_output(dir, toolchain, &["--print", "cfg", "--target", triple])?;
    // Lines rustc may add that are no cfg (none today) are left out, as
    // they cannot match anything.
    let cfg: Vec<Cfg> = printed
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect();
    if let Ok(mut asked) = asked.lock() {
        asked.insert(key, cfg.clone());
    }
    Ok(cfg)
}

/// Ensures the target's standard library is present, installing it with
/// rustup when possible; true when it was installed now.
pub fn ensure_target(triple: &str, dir: &Path, records: &BlobStore) -> Result<bool> {
    let installed = |root: &Path| root.join("lib/rustlib").join(triple).join("lib").is_dir();
    let fingerprint = selection_fingerprint(dir);
    if let Some(root) = records
        .read_record("sysroot", &fingerprint)
        .map(|bytes| PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()))
        && installed(&root)
    {
        return Ok(false);
    }
    let root = sysroot(dir)?;
    if installed(&root) {
        records.write_record("sysroot", &fingerprint, root.as_os_str().as_encoded_bytes())?;
        return Ok(false);
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
            "`rustup target add {triple}` failed ({}). Without a prebuilt standard library, build it from source with --build-std (or build-std = true in [package.metadata.krust]); that needs `{NIGHTLY_HINT}` and zig ({ZIG_INSTALL_HINT})",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or("see rustup's output")
                .trim()
                .trim_start_matches("error: ")
        );
    }
    Ok(true)
}

/// The toolchain that builds std from source for `dir`: `None` when the
/// active one is already a nightly with rust-src, `Some("nightly")` for
/// rustup's nightly, or an error saying how to install it. Asked of rustup
/// once per directory and run: the compile, the SBOM and the provenance all
/// want it.
pub fn build_std_toolchain(dir: &Path) -> Result<Option<String>> {
    static ASKED: OnceLock<Mutex<HashMap<PathBuf, Option<String>>>> = OnceLock::new();
    let asked = ASKED.get_or_init(Mutex::default);
    if let Some(toolchain) = asked.lock().ok().and_then(|asked| asked.get(dir).cloned()) {
        return Ok(toolchain);
    }
    let toolchain = probe_build_std_toolchain(dir)?;
    if let Ok(mut asked) = asked.lock() {
        asked.insert(dir.to_path_buf(), toolchain.clone());
    }
    Ok(toolchain)
}

fn probe_build_std_toolchain(dir: &Path) -> Result<Option<String>> {
    let active = rustc(dir, None)
        .arg("-vV")
        .output()
        .context("cannot run rustc: is Rust installed?")?;
    let is_nightly = String::from_utf8_lossy(&active.stdout)
        .lines()
        .any(|l| l.starts_with("release:") && l.contains("nightly"));
    let toolchain = (!is_nightly).then(|| "nightly".to_string());
    let output = rustc(dir, toolchain.as_deref())
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc: is Rust installed?")?;
    if !output.status.success() {
        bail!(
            "--build-std needs a nightly toolchain, which is not installed: run `{NIGHTLY_HINT}`"
        );
    }
    let root = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !root.join("lib/rustlib/src/rust/library").is_dir() {
        bail!(
            "--build-std needs the rust-src component of the nightly toolchain at {}: run `{NIGHTLY_HINT}`",
            root.display()
        );
    }
    Ok(toolchain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_remembered_per_installed_rustc() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&tmp.path().join("krust")).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(version_key(dir, &store), None, "no sysroot recorded yet");
        assert!(version(dir, None, &store).unwrap().contains("\nrelease: "));

        let fingerprint = selection_fingerprint(dir);
        let root = sysroot(dir).unwrap();
        store
            .write_record("sysroot", &fingerprint, root.as_os_str().as_encoded_bytes())
            .unwrap();
        let key = version_key(dir, &store).unwrap();
        store
            .write_record("rustc-version", &key, b"release: 0.0.0\n")
            .unwrap();
        assert_eq!(version(dir, None, &store).unwrap(), "release: 0.0.0\n");

        // Another rustc (an updated toolchain): another key.
        let other = tmp.path().join("other");
        std::fs::create_dir_all(other.join("bin")).unwrap();
        std::fs::write(other.join("bin/rustc"), b"x").unwrap();
        store
            .write_record(
                "sysroot",
                &fingerprint,
                other.as_os_str().as_encoded_bytes(),
            )
            .unwrap();
        assert_ne!(version_key(dir, &store), Some(key));
    }
}
