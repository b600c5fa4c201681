//! Path remapping that a compile cache does not see. cargo-krust remaps the
//! checkout, its target directory and the cargo and rustup homes out of
//! every binary (`--remap-path-prefix`), so that images are the same bytes
//! from any checkout. As rustflags those flags would name the checkout's
//! absolute paths in every rustc command line, and sccache (which hashes
//! the command line) would miss for every crate built from another
//! checkout. So cargo runs rustc through a shim at a fixed place (`RUSTC`),
//! and the shim appends the flags as an argument file named by an
//! environment variable that sccache does not hash: the flags still reach
//! every rustc, the command line sccache sees is the same from any
//! checkout, and what it caches is the same too — the remapped paths are.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// The real rustc the shim runs.
const REAL_RUSTC_VAR: &str = "KRUST_RUSTC";
/// The argument file the shim appends.
const ARGFILE_VAR: &str = "KRUST_RUSTC_ARGFILE";

/// The shim: rustc with this build's argument file appended (plain rustc
/// when run outside cargo-krust).
const SHIM: &str = r#"#!/bin/sh
# cargo-krust's rustc: appends this build's --remap-path-prefix flags.
if [ -n "$KRUST_RUSTC_ARGFILE" ]; then
    exec "${KRUST_RUSTC:-rustc}" "$@" "@$KRUST_RUSTC_ARGFILE"
fi
exec "${KRUST_RUSTC:-rustc}" "$@"
"#;

/// Makes `command` (a cargo build) run rustc through the shim with `flags`
/// appended; the argument file goes into `target_dir`.
pub fn apply(command: &mut Command, target_dir: &Path, flags: &[String]) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    let shim = install_shim()?;
    let argfile = target_dir.join("krust-rustc.args");
    let content: String = flags.iter().map(|flag| format!("{flag}\n")).collect();
    crate::fsutil::write_if_changed(&argfile, content.as_bytes())?;
    let real = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    command
        .env("RUSTC", &shim)
        .env(REAL_RUSTC_VAR, real)
        .env(ARGFILE_VAR, &argfile);
    Ok(())
}

/// The shim, written (once, or when cargo-krust's changes) at a place that
/// is the same for every checkout: the path of rustc is part of a compile
/// cache's key.
fn install_shim() -> Result<PathBuf> {
    install_script("rustc", SHIM)
}

/// A script of cargo-krust's named `name` in `$XDG_CACHE_HOME/cargo-krust/bin`
/// (else `~/.cache/cargo-krust/bin`): the same place for every checkout,
/// written only when its content changed, executable from its first byte
/// (another build may run it at once).
pub(super) fn install_script(name: &str, content: &str) -> Result<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context(
            "cannot find a cache directory for cargo-krust's compiler wrappers: set HOME or XDG_CACHE_HOME",
        )?;
    let dir = cache.join("cargo-krust").join("bin");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    crate::fsutil::write_executable_if_changed(&path, content.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_appends_the_argument_file_and_runs_the_real_rustc() {
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("rustc");
        std::fs::write(&shim, SHIM).unwrap();
        let echo = dir.path().join("echo-args");
        std::fs::write(&echo, "#!/bin/sh\nprintf '%s|' \"$@\"\n").unwrap();
        let args = dir.path().join("a.args");
        for file in [&shim, &echo] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let run = |argfile: Option<&Path>| {
            let mut command = Command::new("sh");
            command
                .arg(&shim)
                .args(["-vV", "a b"])
                .env(REAL_RUSTC_VAR, &echo);
            match argfile {
                Some(file) => command.env(ARGFILE_VAR, file),
                None => command.env_remove(ARGFILE_VAR),
            };
            String::from_utf8(command.output().unwrap().stdout).unwrap()
        };
        assert_eq!(run(Some(&args)), format!("-vV|a b|@{}|", args.display()));
        assert_eq!(run(None), "-vV|a b|");
    }
}
