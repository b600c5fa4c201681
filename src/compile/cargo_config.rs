//! What the user's cargo configuration says, read the way cargo finds it:
//! `.cargo/config.toml` (or `.cargo/config`) in the directory cargo runs in
//! and every ancestor, then `$CARGO_HOME/config.toml`. Only the few keys
//! cargo-krust must not override are looked at (linkers, rustflags), in
//! `target.<triple>` and in the `target.'cfg(…)'` tables that hold for the
//! triple. Also where cargo's and rustup's homes are.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use cargo_platform::CfgExpr;

/// `$CARGO_HOME`, or `~/.cargo`.
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// `$RUSTUP_HOME`, or `~/.rustup`.
pub fn rustup_home() -> Option<PathBuf> {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))
}

/// The wrapper cargo runs rustc through for `key` (`rustc-wrapper` or
/// `rustc-workspace-wrapper`), read the way cargo reads it: `RUSTC_WRAPPER`
/// (or `RUSTC_WORKSPACE_WRAPPER`), `CARGO_BUILD_…`, then `build.<key>` in
/// the config files (a value with a `/` relative to the directory holding
/// the file's `.cargo`). Set but empty means none.
pub fn build_wrapper(cwd: &Path, key: &str) -> Option<OsString> {
    let var = key.to_uppercase().replace('-', "_");
    for var in [var.clone(), format!("CARGO_BUILD_{var}")] {
        if let Some(value) = std::env::var_os(var) {
            return (!value.is_empty()).then_some(value);
        }
    }
    tables(cwd)
        .into_iter()
        .find_map(|(file, table)| {
            let value = table.get("build")?.get(key)?.as_str()?;
            if value.is_empty() {
                return Some(OsString::new());
            }
            let relative_to = file.parent()?.parent()?;
            Some(if value.contains('/') {
                relative_to.join(value).into_os_string()
            } else {
                value.into()
            })
        })
        .filter(|value| !value.is_empty())
}

/// The config files cargo reads when run in `cwd`, nearest first.
pub fn files(cwd: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in cwd.ancestors() {
        for name in ["config.toml", "config"] {
            let path = dir.join(".cargo").join(name);
            if path.is_file() {
                files.push(path);
            }
        }
    }
    if let Some(home) = cargo_home() {
        for name in ["config.toml", "config"] {
            let path = home.join(name);
            if path.is_file() && !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files
}

/// The parsed tables of those files (unreadable or invalid ones skipped:
/// cargo itself reports them).
pub fn tables(cwd: &Path) -> Vec<(PathBuf, toml::Table)> {
    files(cwd)
        .into_iter()
        .filter_map(|file| {
            let table = std::fs::read_to_string(&file)
                .ok()?
                .parse::<toml::Table>()
                .ok()?;
            Some((file, table))
        })
        .collect()
}

/// Where the config files set `key` for `triple`, as cargo reads it: in
/// `target.<triple>`, or in a `target.'cfg(…)'` table whose cfg holds for
/// the triple (rustc is asked for its cfg values only when there is one);
/// e.g. `target.x86_64-unknown-linux-musl.linker in /p/.cargo/config.toml`.
/// `toolchain` is the rustup toolchain the build runs with, when not the one
/// of `cwd`.
pub fn target_setting(
    triple: &str,
    cwd: &Path,
    toolchain: Option<&str>,
    key: &str,
) -> Result<Option<String>> {
    let mut cfg_tables = Vec::new();
    for (file, table) in tables(cwd) {
        let Some(toml::Value::Table(targets)) = table.get("target") else {
            continue;
        };
        for (name, settings) in targets {
            if settings.get(key).is_none() {
                continue;
            }
            if name == triple {
                return Ok(Some(format!("target.{triple}.{key} in {}", file.display())));
            }
            if name.starts_with("cfg(") {
                cfg_tables.push((name.clone(), file.clone()));
            }
        }
    }
    if cfg_tables.is_empty() {
        return Ok(None);
    }
    let cfg = super::toolchain::target_cfg(triple, cwd, toolchain)?;
    Ok(cfg_tables
        .into_iter()
        .find(|(name, _)| CfgExpr::matches_key(name, &cfg))
        .map(|(name, file)| format!("target.'{name}'.{key} in {}", file.display())))
}

/// The environment-variable form of a per-target key, e.g.
/// `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER`.
pub fn target_env_var(triple: &str, key: &str) -> String {
    format!(
        "CARGO_TARGET_{}_{}",
        triple.to_ascii_uppercase().replace(['-', '.'], "_"),
        key.to_ascii_uppercase()
    )
}
