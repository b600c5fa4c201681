//! Whether the user configured a linker for a target triple themselves: a
//! `CARGO_TARGET_<TRIPLE>_LINKER` variable, a `target.<triple>.linker` in any
//! `.cargo/config.toml` cargo would read, or `-C linker=` in their RUSTFLAGS.
//! Their choice always wins over cargo-krust's (see `strategy`).

use std::path::{Path, PathBuf};

/// The environment variable cargo reads for a target's linker.
pub fn linker_env_var(triple: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// Where the user configured a linker for `triple` (for `-v`), or `None`.
pub fn user_linker(triple: &str, cargo_cwd: &Path) -> Option<String> {
    let var = linker_env_var(triple);
    if std::env::var_os(&var).is_some() {
        return Some(var);
    }
    if let Some(var) = rustflags_setting_linker(triple) {
        return Some(format!("-C linker= in {var}"));
    }
    config_files(cargo_cwd)
        .into_iter()
        .find(|file| config_sets_linker(file, triple))
        .map(|file| format!("target.{triple}.linker in {}", file.display()))
}

fn rustflags_setting_linker(triple: &str) -> Option<String> {
    let target_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        triple.to_ascii_uppercase().replace(['-', '.'], "_")
    );
    [
        "RUSTFLAGS".to_string(),
        "CARGO_ENCODED_RUSTFLAGS".to_string(),
        target_var,
    ]
    .into_iter()
    .find(|var| std::env::var(var).is_ok_and(|flags| flags.contains("linker=")))
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
