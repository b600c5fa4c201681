//! The C toolchains this machine offers for cross-compiling, looked for once
//! and only when a build needs one: zig with cargo-zigbuild (see
//! [`super::zig`]; whether zig really runs shows when cargo-zigbuild is first
//! asked for a triple's environment, before anything is built), and Debian's
//! musl-gcc.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::zig::{self, ZigTools};
use crate::store::BlobStore;

/// What the strategy asks about the machine (a trait so tests can fake it).
pub trait Tools {
    /// Where cargo-zigbuild and zig are; otherwise what is missing.
    fn zig(&self) -> Result<ZigTools, String>;
    /// Whether `musl-gcc` is on PATH.
    fn musl_gcc(&self) -> bool;
    /// Whether the triple is for this machine's own architecture.
    fn is_host_arch(&self, triple: &str) -> bool;
}

/// The real machine; `records` remembers where zig is.
#[derive(Debug)]
pub struct Machine {
    records: BlobStore,
    zig: OnceLock<Result<ZigTools, String>>,
}

impl Machine {
    pub fn new(records: BlobStore) -> Machine {
        Machine {
            records,
            zig: OnceLock::new(),
        }
    }
}

impl Tools for Machine {
    fn zig(&self) -> Result<ZigTools, String> {
        self.zig.get_or_init(|| zig::locate(&self.records)).clone()
    }

    fn musl_gcc(&self) -> bool {
        find_in_path("musl-gcc").is_some()
    }

    fn is_host_arch(&self, triple: &str) -> bool {
        triple.split('-').next() == Some(std::env::consts::ARCH)
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
