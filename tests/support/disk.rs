//! A small disk that really fills up: a tmpfs mounted for one test (root).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::run_ok;
use super::tools;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop (even
/// when the test fails): a disk that really fills up.
pub struct SmallDisk {
    pub mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> SmallDisk {
        tools::require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).expect("mount point");
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&mount),
            Duration::from_secs(30),
            "mount -t tmpfs (needs root)",
        );
        SmallDisk { mount, _dir: dir }
    }

    /// Writes a file that takes every byte left.
    pub fn fill(&self) {
        let mut filler = File::create(self.mount.join("filler")).expect("create filler");
        let chunk = vec![0xa5u8; 4096];
        loop {
            match filler.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("fill tmpfs: {e}"),
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}
