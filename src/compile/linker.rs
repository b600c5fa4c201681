//! Linker choice for a target triple. Pure-Rust musl binaries link with
//! `rust-lld`, which ships with rustup, so no C cross toolchain is needed.
//! The user's own choice always wins: a `CARGO_TARGET_<TRIPLE>_LINKER`
//! variable, a `target.<triple>.linker` in any `.cargo/config.toml` cargo
//! would read, or `-C linker=` in their RUSTFLAGS leave the linker alone.

use std::path::{Path, PathBuf};

/// The environment variable cargo reads for a target's linker.
pub fn linker_env_var(triple: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// The `(variable, value)` to set so that `triple` links with rust-lld, or
/// `None` when the user configured a linker themselves.
pub fn default_linker_env(triple: &str, cargo_cwd: &Path) -> Option<(String, String)> {
    let var = linker_env_var(triple);
    if std::env::var_os(&var).is_some() || rustflags_set_linker(triple) {
        return None;
    }
    if config_files(cargo_cwd)
        .iter()
        .any(|file| config_sets_linker(file, triple))
    {
        return None;
    }
    Some((var, "rust-lld".to_string()))
}

fn rustflags_set_linker(triple: &str) -> bool {
    let target_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        triple.to_ascii_uppercase().replace(['-', '.'], "_")
    );
    ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", target_var.as_str()]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .any(|flags| flags.contains("linker="))
}

/// The config files cargo reads when run in `cwd`, nearest first.
fn config_files(cwd: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in cwd.ancestors() {
        for name in ["config.toml", "config"] {
            let path = dir.join(".cargo").join(name);
            if path.is_file() {
                files.push(path);
            }
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        for name in ["config.toml", "config"] {
            let path = home.join(name);
            if path.is_file() && !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files
}

fn config_sets_linker(file: &Path, triple: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    let Ok(value) = text.parse::<toml::Table>() else {
        return false;
    };
    value
        .get("target")
        .and_then(|t| t.get(triple))
        .and_then(|t| t.get("linker"))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_name() {
        assert_eq!(
            linker_env_var("aarch64-unknown-linux-musl"),
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER"
        );
    }

    #[test]
    fn config_file_linker_is_respected() {
        let dir = tempfile::tempdir().unwrap();
        let cargo_dir = dir.path().join(".cargo");
        std::fs::create_dir_all(&cargo_dir).unwrap();
        std::fs::write(
            cargo_dir.join("config.toml"),
            "[target.aarch64-unknown-linux-musl]\nlinker = \"my-cc\"\n",
        )
        .unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        assert!(
            config_files(&nested)
                .iter()
                .any(|f| config_sets_linker(f, "aarch64-unknown-linux-musl"))
        );
        assert!(
            !config_files(&nested)
                .iter()
                .any(|f| config_sets_linker(f, "i686-unknown-linux-musl"))
        );
    }
}
