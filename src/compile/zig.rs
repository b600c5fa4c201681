//! zig as the C cross toolchain, with cargo itself running the build.
//!
//! cargo-zigbuild knows how to make zig a target's C compiler and linker:
//! it writes wrapper scripts and sets `CC_<triple>`, `CXX_<triple>`,
//! `AR_<triple>`, `RANLIB_<triple>`, the target's linker, a CMake toolchain
//! file and bindgen's include paths before it runs cargo. Running it for
//! every build costs 0.5–1 s of Python and zig start-ups before cargo can
//! find that nothing changed. So that environment is captured once — by
//! running cargo-zigbuild with a stand-in cargo that records what it is
//! given — remembered in the store under what decides it (the tools, the
//! triple, the toolchain, the variables cargo-zigbuild reads), and handed to
//! plain `cargo build` from then on: an unchanged build costs what cargo's
//! own no-op costs.
//!
//! zig is found once (on PATH, or the binary of pip's `ziglang` package)
//! and given to cargo-zigbuild by path with its Python lookup turned off,
//! so that no compiler or linker call starts Python either.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::strategy::ZIG_INSTALL_HINT;
use super::tools::find_in_path;
use crate::store::BlobStore;

/// Bumped whenever what a record means changes.
const RECORD_VERSION: &str = "zig-env-v2";

/// The variable that tells the stand-in cargo where to write.
const CAPTURE_VAR: &str = "KRUST_ZIG_CAPTURE";

/// What a shell sets by itself, never cargo-zigbuild's doing, and the
/// jobserver of the process that ran the stand-in (its descriptors are not
/// open in any later cargo).
const NOT_CARGO_ZIGBUILDS: &[&str] = &[
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    CAPTURE_VAR,
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
];

/// The environment (and extra cargo arguments) cargo-zigbuild gives cargo
/// for one triple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZigEnv {
    pub vars: BTreeMap<String, String>,
    /// Arguments cargo-zigbuild adds to `cargo build --target TRIPLE`.
    pub extra_args: Vec<String>,
    /// Files the variables name (wrappers): when one is gone, the record
    /// is stale.
    files: Vec<PathBuf>,
}

/// Where zig and cargo-zigbuild are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZigTools {
    pub cargo_zigbuild: PathBuf,
    pub zig: PathBuf,
}

/// Finds cargo-zigbuild and the zig binary (remembered per PATH: asking
/// Python where pip put zig costs a Python start); what is missing otherwise.
pub fn locate(records: &BlobStore) -> std::result::Result<ZigTools, String> {
    let Some(cargo_zigbuild) = find_in_path("cargo-zigbuild") else {
        return Err(match find_in_path("zig") {
            Some(_) => "cargo-zigbuild is not on PATH (zig is)".into(),
            None => "zig and cargo-zigbuild are not on PATH".into(),
        });
    };
    if let Some(zig) = find_in_path("zig") {
        return Ok(ZigTools {
            cargo_zigbuild,
            zig,
        });
    }
    let key = hex::encode(Sha256::digest(
        format!(
            "{RECORD_VERSION} locate\n{}",
            std::env::var("PATH").unwrap_or_default()
        )
        .as_bytes(),
    ));
    if let Some(zig) = records
        .read_record("zig-path", &key)
        .map(|bytes| PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()))
        .filter(|zig| zig.is_file())
    {
        return Ok(ZigTools {
            cargo_zigbuild,
            zig,
        });
    }
    let zig = pip_zig()?;
    // Not remembering it only costs the next run a Python start.
    let _ = records.write_record("zig-path", &key, zig.as_os_str().as_encoded_bytes());
    Ok(ZigTools {
        cargo_zigbuild,
        zig,
    })
}

/// The zig binary of pip's `ziglang` package, asked of python3 on PATH.
fn pip_zig() -> std::result::Result<PathBuf, String> {
    let Some(python) = find_in_path("python3") else {
        return Err("zig is not on PATH, and there is no python3 to find pip's ziglang".into());
    };
    let output = Command::new(&python)
        .args([
            "-c",
            "import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), 'zig'))",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run {}: {err}", python.display()))?;
    let zig = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if output.status.success() && zig.is_file() {
        Ok(zig)
    } else {
        Err("zig is not on PATH, nor installed for python3 (pip's ziglang)".into())
    }
}

/// cargo-zigbuild's environment for `triple`, as cargo run in `cwd` (with
/// `toolchain` under build-std) needs it; from the store unless something
/// that decides it changed.
pub fn environment(
    tools: &ZigTools,
    triple: &str,
    cwd: &Path,
    toolchain: Option<&str>,
    records: &BlobStore,
) -> Result<ZigEnv> {
    let key = record_key(tools, triple, cwd, toolchain);
    if let Some(known) = records
        .read_record("zig-env", &key)
        .and_then(|bytes| serde_json::from_slice::<ZigEnv>(&bytes).ok())
        .filter(|known| known.files.iter().all(|file| file.is_file()))
    {
        return Ok(known);
    }
    let env = capture(tools, triple, cwd, toolchain)?;
    records.write_record(
        "zig-env",
        &key,
        &serde_json::to_vec(&env).context("cannot record zig's environment")?,
    )?;
    Ok(env)
}

/// What the record of a triple's environment depends on.
fn record_key(tools: &ZigTools, triple: &str, cwd: &Path, toolchain: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("{RECORD_VERSION}\n{triple}\n{toolchain:?}\n").as_bytes());
    hasher.update(super::toolchain::selection_fingerprint(cwd).as_bytes());
    for tool in [&tools.cargo_zigbuild, &tools.zig] {
        hasher.update(tool.as_os_str().as_encoded_bytes());
        // A reinstalled tool has another size or modification time.
        if let Ok(meta) = std::fs::metadata(tool) {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            hasher.update(format!("\n{} {modified:?}\n", meta.len()).as_bytes());
        }
    }
    for (name, value) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if read_by_cargo_zigbuild(&name) {
            hasher.update(format!("{name}=").as_bytes());
            hasher.update(value.as_encoded_bytes());
            hasher.update(b"\n");
        }
    }
    hex::encode(hasher.finalize())
}

/// Variables cargo-zigbuild looks at (or leaves alone when the user set
/// them) while it decides cargo's environment.
fn read_by_cargo_zigbuild(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "XDG_CACHE_HOME",
        "SDKROOT",
        "CC",
        "CXX",
        "AR",
        "RANLIB",
        "CFLAGS",
        "CXXFLAGS",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "PKG_CONFIG_SYSROOT_DIR",
        "CMAKE_TOOLCHAIN_FILE",
        "CMAKE_GENERATOR",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_ZIGBUILD_",
        "CC_",
        "CXX_",
        "AR_",
        "RANLIB_",
        "CARGO_TARGET_",
        "CMAKE_TOOLCHAIN_FILE_",
        "BINDGEN_EXTRA_CLANG_ARGS",
        "TARGET_",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Runs cargo-zigbuild with a stand-in cargo that writes down its
/// environment and arguments, and keeps what cargo-zigbuild added.
fn capture(tools: &ZigTools, triple: &str, cwd: &Path, toolchain: Option<&str>) -> Result<ZigEnv> {
    let staging = tempfile::Builder::new()
        .prefix("krust-zig")
        .tempdir()
        .context("cannot create a temporary directory to ask cargo-zigbuild")?;
    let stand_in = staging.path().join("cargo");
    let written = staging.path().join("captured");
    crate::fsutil::write_atomic_executable(
        &stand_in,
        format!(
            "#!/bin/sh\nenv -0 > \"${CAPTURE_VAR}.env\" && printf '%s\\0' \"$@\" > \"${CAPTURE_VAR}.args\"\n"
        )
        .as_bytes(),
    )?;

    let mut command = Command::new(&tools.cargo_zigbuild);
    command
        .args(["zigbuild", "--target", triple])
        .current_dir(cwd)
        .env("CARGO", &stand_in)
        .env(CAPTURE_VAR, &written)
        // zig by path, never through Python.
        .env("CARGO_ZIGBUILD_ZIG_PATH", &tools.zig)
        .env(
            "CARGO_ZIGBUILD_PYTHON_PATH",
            staging.path().join("no-python"),
        )
        .stdin(Stdio::null());
    if let Some(toolchain) = toolchain {
        command.env("RUSTUP_TOOLCHAIN", toolchain);
    }
    let passed: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (lossy(&k), lossy(&v)))
        .chain(
            command
                .get_envs()
                .filter_map(|(k, v)| Some((lossy(k), lossy(v?)))),
        )
        .collect();
    let output = command
        .output()
        .with_context(|| format!("cannot run {}", tools.cargo_zigbuild.display()))?;
    let env_file = PathBuf::from(format!("{}.env", written.display()));
    let args_file = PathBuf::from(format!("{}.args", written.display()));
    let (Ok(env), Ok(args)) = (std::fs::read(&env_file), std::fs::read(&args_file)) else {
        bail!(
            "cargo-zigbuild could not set up zig for {triple}: {}; check the install with {ZIG_INSTALL_HINT}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
        );
    };
    let mut vars = BTreeMap::new();
    for entry in env.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((name, value)) = entry.split_once('=') else {
            continue;
        };
        if NOT_CARGO_ZIGBUILDS.contains(&name) || name == "CARGO" {
            continue;
        }
        if passed.get(name).map(String::as_str) != Some(value) {
            vars.insert(name.to_string(), value.to_string());
        }
    }
    // Our own stand-ins for Python are cargo-zigbuild's wrappers' business
    // only; cargo gets them too, so that a wrapper that asks again finds zig.
    vars.insert(
        "CARGO_ZIGBUILD_ZIG_PATH".into(),
        lossy(tools.zig.as_os_str()),
    );
    let args: Vec<String> = args
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let extra_args = match args.as_slice() {
        [build, flag, target, rest @ ..]
            if build == "build" && flag == "--target" && target == triple =>
        {
            rest.to_vec()
        }
        other => bail!(
            "cargo-zigbuild ran cargo as `cargo {}`, not `cargo build --target {triple}`: this cargo-zigbuild is not supported; report it with its version (`cargo-zigbuild --version`)",
            other.join(" ")
        ),
    };
    let files = vars
        .values()
        .map(PathBuf::from)
        .filter(|path| path.is_absolute() && path.is_file())
        .collect();
    Ok(ZigEnv {
        vars,
        extra_args,
        files,
    })
}

fn lossy(text: &std::ffi::OsStr) -> String {
    text.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_cargo_zigbuild_reads_decide_the_record() {
        for name in [
            "PATH",
            "CC_aarch64_unknown_linux_musl",
            "CARGO_ZIGBUILD_CACHE_DIR",
            "CFLAGS",
        ] {
            assert!(read_by_cargo_zigbuild(name), "{name}");
        }
        for name in ["TERM", "GITHUB_RUN_ID", "PWD", "RUST_LOG"] {
            assert!(!read_by_cargo_zigbuild(name), "{name}");
        }
    }
}
