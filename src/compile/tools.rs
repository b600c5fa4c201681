//! The C toolchains this machine offers for cross-compiling, probed once and
//! only when a build needs one: zig through cargo-zigbuild (asked to run zig
//! itself, so a cargo-zigbuild that cannot find zig does not count), and
//! Debian's musl-gcc.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// What the strategy asks about the machine (a trait so tests can fake it).
pub trait Tools {
    /// `Ok` when `cargo-zigbuild` runs and finds zig; otherwise what is missing.
    fn zig(&self) -> Result<(), String>;
    /// Whether `musl-gcc` is on PATH.
    fn musl_gcc(&self) -> bool;
    /// Whether the triple is for this machine's own architecture.
    fn is_host_arch(&self, triple: &str) -> bool;
}

/// The real machine.
#[derive(Debug, Default)]
pub struct Machine {
    zig: OnceLock<Result<(), String>>,
}

impl Tools for Machine {
    fn zig(&self) -> Result<(), String> {
        self.zig.get_or_init(probe_zig).clone()
    }

    fn musl_gcc(&self) -> bool {
        find_in_path("musl-gcc").is_some()
    }

    fn is_host_arch(&self, triple: &str) -> bool {
        triple.split('-').next() == Some(std::env::consts::ARCH)
    }
}

fn probe_zig() -> Result<(), String> {
    let Some(zigbuild) = find_in_path("cargo-zigbuild") else {
        return Err(match find_in_path("zig") {
            Some(_) => "cargo-zigbuild is not on PATH (zig is)".into(),
            None => "zig and cargo-zigbuild are not on PATH".into(),
        });
    };
    // `cargo-zigbuild zig cc` is the compiler wrapper builds will use, so this
    // finds zig exactly as the build will (PATH, or Python's ziglang).
    match Command::new(&zigbuild)
        .args(["zig", "cc", "--", "--version"])
        .output()
    {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "cargo-zigbuild cannot run zig ({})",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
        )),
        Err(err) => Err(format!("cannot run {}: {err}", zigbuild.display())),
    }
}

/// `name` on PATH, if it is an executable file there.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
