//! Whether the user configured a linker for a target triple themselves: a
//! `CARGO_TARGET_<TRIPLE>_LINKER` variable, a `target.<triple>.linker` in any
//! `.cargo/config.toml` cargo would read, or `-C linker=` in their RUSTFLAGS.
//! Their choice always wins over cargo-krust's (see `strategy`).

use std::path::Path;

use super::cargo_config;

/// The environment variable cargo reads for a target's linker.
pub fn linker_env_var(triple: &str) -> String {
    cargo_config::target_env_var(triple, "linker")
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
    cargo_config::tables(cargo_cwd)
        .into_iter()
        .find(|(_, table)| {
            table
                .get("target")
                .and_then(|t| t.get(triple))
                .and_then(|t| t.get("linker"))
                .is_some()
        })
        .map(|(file, _)| format!("target.{triple}.linker in {}", file.display()))
}

fn rustflags_setting_linker(triple: &str) -> Option<String> {
    let target_var = cargo_config::target_env_var(triple, "rustflags");
    [
        "RUSTFLAGS".to_string(),
        "CARGO_ENCODED_RUSTFLAGS".to_string(),
        target_var,
    ]
    .into_iter()
    .find(|var| std::env::var(var).is_ok_and(|flags| flags.contains("linker=")))
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
        let found = user_linker("aarch64-unknown-linux-musl", &nested).unwrap();
        assert!(
            found.starts_with("target.aarch64-unknown-linux-musl.linker in "),
            "{found}"
        );
        assert_eq!(user_linker("i686-unknown-linux-musl", &nested), None);
    }
}
