//! podman for tests: a containers storage of the test's own, so that tests
//! never see each other's images nor the machine's.

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
