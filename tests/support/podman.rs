//! podman for tests: a containers storage of the test's own, so that tests
//! never see each other's images nor the machine's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A containers storage of its own under `dir` (vfs): the storage.conf that
/// points podman (and cargo-krust's podman) at it, for
/// `CONTAINERS_STORAGE_CONF`.
pub fn own_storage(dir: &Path) -> PathBuf {
    let conf = dir.join("storage.conf");
    let text = format!(
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
        dir.join("root").display(),
        dir.join("runroot").display()
    );
    std::fs::write(&conf, text).expect("write storage.conf");
    conf
}

/// This process's PATH without any directory holding a podman (/bin is
/// /usr/bin on Debian, so both go).
pub fn path_without_podman() -> OsString {
    let path: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|dir| !dir.join("podman").exists())
        .collect();
    std::env::join_paths(path).expect("PATH")
}
