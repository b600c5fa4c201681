//! Files that appear whole or not at all: written to a temporary file in the
//! destination's directory (so on the same file system) and renamed over the
//! destination. Shared by the blob store's caches, the OCI layout, the
//! archives, `--image-refs` and the Docker config `login` writes.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// A temporary file in `dir`, removed on drop unless persisted. It gets the
/// permissions of an ordinary new file (0666 less the umask), not tempfile's
/// private 0600: what is persisted from it is an output others may read.
pub fn temp_file_in(dir: &Path) -> Result<NamedTempFile> {
    temp_file_with_mode(dir, 0o666)
}

/// A temporary file in `dir` created with `mode` (less the umask).
fn temp_file_with_mode(dir: &Path, mode: u32) -> Result<NamedTempFile> {
    tempfile::Builder::new()
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        // tempfile's own message names the temporary's passing name.
        .map_err(|err| {
            // tempfile's message names the temporary's passing name; a
            // missing directory is the common cause, in the OS's words.
            let cause = match std::fs::metadata(dir) {
                Err(missing) => missing.to_string(),
                Ok(_) => err.kind().to_string(),
            };
            anyhow::anyhow!("cannot create a file in {}: {cause}", dir.display())
        })
}

/// The file at `path` opened (created if need be, never truncated) for
/// `flock`: the lock files of the store and of the build directories.
pub fn open_lock_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Writes `bytes` to `path` whole: readers see the old file or the new one,
/// and on failure the temporary file is gone and `path` is as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    PendingFile::create(path)?.commit(bytes)
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// [`write_atomic`] for a file holding secrets: readable by its owner
/// only (0600) from the moment it exists.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> Result<()> {
    PendingFile::create_with_mode(path, 0o600)?.commit(bytes)
}

/// [`write_atomic`] for a script: executable from the moment it exists.
pub fn write_atomic_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    PendingFile::create_with_mode(path, 0o777)?.commit(bytes)
}

/// [`write_atomic`] unless `path` holds `bytes` already: a file that cargo
/// watches keeps its mtime, and one that builds run is never replaced
/// under them, when nothing changed.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    write_atomic(path, bytes)
}

/// [`write_atomic_executable`] unless `path` holds `bytes` already (see
/// [`write_if_changed`]).
pub fn write_executable_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    write_atomic_executable(path, bytes)
}

/// A file to be written whole later, its temporary made now: a destination
/// that cannot be written is found before the work whose result it holds.
/// Dropped uncommitted, it leaves nothing behind.
pub struct PendingFile {
    path: PathBuf,
    temp: NamedTempFile,
}

impl PendingFile {
    pub fn create(path: &Path) -> Result<PendingFile> {
        PendingFile::create_with_mode(path, 0o666)
    }

    fn create_with_mode(path: &Path, mode: u32) -> Result<PendingFile> {
        if path.is_dir() {
            anyhow::bail!(
                "cannot write {}: it is a directory; name a file",
                path.display()
            );
        }
        let temp = temp_file_with_mode(parent_dir(path), mode)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(PendingFile {
            path: path.to_path_buf(),
            temp,
        })
    }

    /// Writes `bytes` and renames the temporary over the destination.
    pub fn commit(self, bytes: &[u8]) -> Result<()> {
        self.commit_with(|file| Ok(file.write_all(bytes)?))
    }

    /// Has `write` fill the file, then renames the temporary over the
    /// destination; when `write` fails, the temporary goes.
    pub fn commit_with(
        mut self,
        write: impl FnOnce(&mut std::fs::File) -> Result<()>,
    ) -> Result<()> {
        let path = &self.path;
        // Through the file itself: the temporary's own errors name its
        // passing name, which means nothing to the user.
        write(self.temp.as_file_mut())
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.temp
            .persist(path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refs.txt");
        write_atomic(&path, b"one\n").unwrap();
        write_atomic(&path, b"two\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_ne!(mode & 0o044, 0, "readable by others under a usual umask");

        // A directory in the way: the rename fails, the temporary goes.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        let err = write_atomic(&blocked, b"x").unwrap_err();
        assert!(format!("{err:#}").contains("blocked"), "{err:#}");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["blocked", "refs.txt"]);
    }

    #[test]
    fn private_files_are_for_their_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        write_atomic(&path, b"{}").unwrap();
        write_atomic_private(&path, b"{\"auths\": {}}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"auths\": {}}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
