//! Adding rustflags to a build without replacing the user's, and the flags
//! that make a build reproducible across checkout directories and machines.
//!
//! Cargo takes rustflags from the first source that has any:
//! `CARGO_ENCODED_RUSTFLAGS`, then `RUSTFLAGS`, then every matching
//! `target.<triple>` / `target.<cfg>` `rustflags` (config or environment),
//! then `build.rustflags`. Extra flags therefore go into whichever source is
//! in use — appended to the variable, or merged into the config array with
//! `--config`, which cargo concatenates with the files' arrays. A
//! `target.'cfg(…)'` table counts only when its cfg holds for the triple
//! (otherwise a `target.<triple>.rustflags` of ours would silently replace
//! the user's `build.rustflags`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use super::cargo_config;

/// Appends `flags` to the rustflags the build would use anyway; `toolchain`
/// is the rustup toolchain the build runs with, when not the one of `cwd`.
pub fn add(
    command: &mut Command,
    triple: &str,
    cwd: &Path,
    toolchain: Option<&str>,
    flags: &[String],
) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    let encoded = |existing: Vec<String>| {
        existing
            .into_iter()
            .chain(flags.iter().cloned())
            .collect::<Vec<_>>()
            .join("\x1f")
    };
    if let Some(current) = std::env::var_os("CARGO_ENCODED_RUSTFLAGS") {
        let existing = split_encoded(&current);
        command.env("CARGO_ENCODED_RUSTFLAGS", encoded(existing));
    } else if let Ok(current) = std::env::var("RUSTFLAGS") {
        // Cargo splits RUSTFLAGS on white space; the encoded form carries
        // the same flags plus ours, whose paths may contain spaces.
        let existing = current.split_whitespace().map(String::from).collect();
        command.env("CARGO_ENCODED_RUSTFLAGS", encoded(existing));
    } else {
        let array = toml::Value::Array(
            flags
                .iter()
                .map(|f| toml::Value::String(f.clone()))
                .collect(),
        );
        let key = if target_level_rustflags(triple, cwd, toolchain)? {
            format!("target.{triple}.rustflags")
        } else {
            "build.rustflags".to_string()
        };
        command.arg("--config").arg(format!("{key}={array}"));
    }
    Ok(())
}

fn split_encoded(value: &OsStr) -> Vec<String> {
    let value = value.to_string_lossy();
    if value.is_empty() {
        return Vec::new();
    }
    value.split('\x1f').map(String::from).collect()
}

/// Whether the user's rustflags come from `target.*` settings that apply to
/// `triple` (a `cfg(…)` table only when its cfg holds for the triple, as
/// cargo decides it), which make cargo ignore `build.rustflags`.
fn target_level_rustflags(triple: &str, cwd: &Path, toolchain: Option<&str>) -> Result<bool> {
    if std::env::var_os(cargo_config::target_env_var(triple, "rustflags")).is_some() {
        return Ok(true);
    }
    Ok(cargo_config::target_setting(triple, cwd, toolchain, "rustflags")?.is_some())
}

/// The machine- and checkout-specific path prefixes cargo-krust takes out
/// of what it builds (panic locations, debug info), each with what it
/// becomes: the workspace, its target directory, cargo's home (registry
/// sources) and rustup's home (the standard library's sources with
/// build-std). Later ones win for nested paths (for rustc as for clang),
/// so the most specific come last.
pub fn path_prefix_map(workspace_root: &Path, target_dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut prefixes: Vec<(PathBuf, &str)> = Vec::new();
    if let Some(home) = super::cargo_config::rustup_home() {
        prefixes.push((home, "/rustup"));
    }
    if let Some(home) = cargo_config::cargo_home() {
        prefixes.push((home, "/cargo"));
    }
    prefixes.push((workspace_root.to_path_buf(), "/krust/workspace"));
    prefixes.push((target_dir.to_path_buf(), "/krust/target"));
    prefixes
}

/// A [`path_prefix_map`] as rustc's `--remap-path-prefix` flags.
pub fn remap_path_prefixes(prefix_map: &[(PathBuf, &str)]) -> Vec<String> {
    prefix_map
        .iter()
        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_args(command: &Command) -> Vec<String> {
        command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn build_rustflags_are_extended_unless_targets_set_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("cargo");
        add(
            &mut command,
            "x86_64-unknown-linux-musl",
            dir.path(),
            None,
            &["-Cx=1".into()],
        )
        .unwrap();
        // No user rustflags anywhere (the test environment sets none).
        if std::env::var_os("RUSTFLAGS").is_none()
            && std::env::var_os("CARGO_ENCODED_RUSTFLAGS").is_none()
        {
            assert_eq!(
                config_args(&command),
                ["--config", "build.rustflags=[\"-Cx=1\"]"]
            );
        }

        std::fs::create_dir_all(dir.path().join(".cargo")).unwrap();
        let config = dir.path().join(".cargo/config.toml");
        let applies = |cfg: &str| {
            std::fs::write(
                &config,
                format!("[target.'{cfg}']\nrustflags = [\"--cfg\", \"mine\"]\n"),
            )
            .unwrap();
            target_level_rustflags("x86_64-unknown-linux-musl", dir.path(), None).unwrap()
        };
        assert!(applies("cfg(target_os = \"linux\")"));
        assert!(applies(
            "cfg(all(unix, target_env = \"musl\", target_arch = \"x86_64\"))"
        ));
        assert!(!applies("cfg(windows)"));
        assert!(!applies("cfg(target_arch = \"aarch64\")"));
        assert!(!applies("cfg(not(target_env = \"musl\"))"));
    }

    #[test]
    fn remaps_most_specific_last() {
        let flags = remap_path_prefixes(&path_prefix_map(Path::new("/w"), Path::new("/w/target")));
        let last_two = &flags[flags.len() - 2..];
        assert_eq!(
            last_two,
            [
                "--remap-path-prefix=/w=/krust/workspace",
                "--remap-path-prefix=/w/target=/krust/target"
            ]
        );
    }
}
