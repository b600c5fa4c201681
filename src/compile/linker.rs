//! Whether the user configured a linker for a target triple themselves: a
//! `CARGO_TARGET_<TRIPLE>_LINKER` variable, a `target.<triple>.linker` (or a
//! `target.'cfg(…)'.linker` whose cfg holds for the triple) in any
//! `.cargo/config.toml` cargo would read, or `-C linker=` in their RUSTFLAGS.
//! Their choice always wins over cargo-krust's (see `strategy`).

use std::path::Path;

use anyhow::Result;

use super::cargo_config;

/// The environment variable cargo reads for a target's linker.
pub fn linker_env_var(triple: &str) -> String {
    cargo_config::target_env_var(triple, "linker")
}

/// Where the user configured a linker for `triple` (for `-v`), or `None`.
pub fn user_linker(triple: &str, cargo_cwd: &Path) -> Result<Option<String>> {
    let var = linker_env_var(triple);
    if std::env::var_os(&var).is_some() {
        return Ok(Some(var));
    }
    if let Some(var) = rustflags_setting_linker(triple) {
        return Ok(Some(format!("-C linker= in {var}")));
    }
    cargo_config::target_setting(triple, cargo_cwd, None, "linker")
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
        let found = user_linker("aarch64-unknown-linux-musl", &nested)
            .unwrap()
            .unwrap();
        assert!(
            found.starts_with("target.aarch64-unknown-linux-musl.linker in "),
            "{found}"
        );
        assert_eq!(
            user_linker("i686-unknown-linux-musl", &nested).unwrap(),
            None
        );
    }

    #[test]
    fn cfg_linker_counts_only_where_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".cargo")).unwrap();
        std::fs::write(
            dir.path().join(".cargo/config.toml"),
            "[target.'cfg(target_arch = \"x86\")']\nlinker = \"my-cc\"\n",
        )
        .unwrap();
        let found = user_linker("i686-unknown-linux-musl", dir.path())
            .unwrap()
            .unwrap();
        assert!(
            found.starts_with("target.'cfg(target_arch = \"x86\")'.linker in "),
            "{found}"
        );
        assert_eq!(
            user_linker("x86_64-unknown-linux-musl", dir.path()).unwrap(),
            None
        );
    }
}
