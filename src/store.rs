//! The local blob store under `<target-dir>/krust/`: a content-addressed
//! directory (`blobs/sha256/<hex>`, the same shape as an OCI layout) holding
//! the layers cargo-krust writes and the base manifests, configs and layers it
//! has fetched, plus small records under `records/<kind>/<key>` that map
//! inputs to blobs (a binary's hash to its layer, a tag to its digest).
//! Files appear in it only complete: they are written to a temporary file in
//! `tmp/` and renamed into place; temporary files a killed run left behind
//! are swept when a later run opens the store.
//!
//! Blobs a run uses are pinned, and pins are seen by every run sharing the
//! store: each run that pins something holds a pin file
//! `pins/<pid>-<random>.pin`, one digest a line, locked (an exclusive
//! `flock`) for as long as it runs. Eviction takes the store-wide lock
//! `lock`, skips every digest a live run pinned, and deletes the pin files
//! whose lock it can take (their run is gone); pinning takes the same lock
//! and checks the blob is still there under it.
use std::collections::HashSet;
use std::fs::{self, File, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use tempfile::NamedTempFile;

use crate::oci::digest_hex;

/// Temporary files untouched for this long belong to runs that were killed.
/// A live run writes a temporary file from its creation to its rename with
/// no pause longer than a network wait (a layer held back by a slow upload,
/// a download waiting for bytes), and every write moves its mtime: six
/// hours cannot catch one.
const ABANDONED_AFTER: Duration = Duration::from_secs(6 * 60 * 60);

/// How long a run waits for the store-wide lock. Runs hold it only to read
/// the pin files and delete a few blobs, milliseconds; a lock held longer
/// belongs to a stopped process.
const LOCK_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    pins: Arc<Mutex<Pins>>,
}

/// This run's pins.
#[derive(Debug, Default)]
struct Pins {
    /// Digests this run has used or written.
    digests: HashSet<String>,
    /// The pin file that shows them to other runs: created on the first pin,
    /// locked while open, removed when the last handle of the store goes
    /// (a killed run's is removed by the next eviction).
    file: Option<NamedTempFile>,
}

impl BlobStore {
    /// Opens (creating if needed) the store at `root`, sweeping old
    /// temporary files.
    pub fn open(root: &Path) -> Result<BlobStore> {
        let store = BlobStore::at(root);
        for dir in [store.blob_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        }
        store.sweep_abandoned_temp_files();
        Ok(store)
    }

    /// The store at `root` if there is one, creating nothing.
    pub fn existing(root: &Path) -> Option<BlobStore> {
        root.is_dir().then(|| BlobStore::at(root))
    }

    fn at(root: &Path) -> BlobStore {
        BlobStore {
            root: root.to_path_buf(),
            pins: Arc::default(),
        }
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn pin_dir(&self) -> PathBuf {
        self.root.join("pins")
    }

    /// Deletes what killed runs left in `tmp/` (see [`ABANDONED_AFTER`]).
    /// Best effort: a leftover only costs space.
    fn sweep_abandoned_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let abandoned = meta
                .modified()
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > ABANDONED_AFTER);
            if abandoned {
                let path = entry.path();
                let _ = if meta.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
    }

    /// Where the blob with this digest lives (whether or not it exists yet).
    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest_hex(digest).with_context(|| format!("malformed digest `{digest}`"))?;
        Ok(self.blob_dir().join(hex))
    }

    /// The blob's path if the store holds it.
    pub fn get(&self, digest: &str) -> Option<PathBuf> {
        self.path(digest).ok().filter(|p| p.is_file())
    }

    /// Reads a small blob (a manifest or config) if it is stored.
    pub fn read(&self, digest: &str) -> Option<Vec<u8>> {
        fs::read(self.get(digest)?).ok()
    }

    /// A new temporary file inside the store, removed on drop unless committed.
    pub fn temp_file(&self) -> Result<NamedTempFile> {
        NamedTempFile::new_in(self.tmp_dir())
            .with_context(|| format!("cannot create a file in {}", self.tmp_dir().display()))
    }

    /// Moves a complete temporary file to its digest's place, pinned: this
    /// run is about to use it.
    pub fn commit(&self, file: NamedTempFile, digest: &str) -> Result<PathBuf> {
        let path = self.path(digest)?;
        // Pinned before it appears, so no other run's eviction can take it
        // between its arrival and its use.
        self.pin(digest)?;
        file.persist(&path)
            .with_context(|| format!("cannot store blob {}", path.display()))?;
        Ok(path)
    }

    /// Stores bytes whose digest the caller has computed.
    pub fn write(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf> {
        if crate::oci::sha256_digest(bytes) != digest {
            bail!("refusing to store bytes under the wrong digest {digest}");
        }
        if let Some(path) = self.get(digest) {
            return Ok(path);
        }
        let mut file = self.temp_file()?;
        file.write_all(bytes)
            .and_then(|()| file.flush())
            .context("cannot write to the blob store")?;
        self.commit(file, digest)
    }

    fn own_pins(&self) -> MutexGuard<'_, Pins> {
        self.pins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a blob from eviction, by this run or any other, for as long as
    /// this store is open. Says whether the blob is stored, as seen under the
    /// store lock: a blob found here stays.
    pub fn pin(&self, digest: &str) -> Result<bool> {
        let path = self.path(digest)?;
        let mut pins = self.own_pins();
        if pins.digests.contains(digest) {
            return Ok(path.is_file());
        }
        let _lock = self.lock_store()?;
        if pins.file.is_none() {
            pins.file = Some(self.new_pin_file()?);
        }
        if let Some(file) = pins.file.as_mut() {
            writeln!(file, "{digest}")
                .and_then(|()| file.flush())
                .with_context(|| format!("cannot write {}", file.path().display()))?;
        }
        pins.digests.insert(digest.to_string());
        Ok(path.is_file())
    }

    /// This run's pin file, locked. Created under the store lock, so no
    /// eviction sees it before it is locked and takes it for a dead run's.
    fn new_pin_file(&self) -> Result<NamedTempFile> {
        let dir = self.pin_dir();
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        let file = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .suffix(".pin")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a pin file in {}", dir.display()))?;
        file.as_file()
            .try_lock()
            .map_err(std::io::Error::from)
            .with_context(|| format!("cannot lock {}", file.path().display()))?;
        Ok(file)
    }

    /// Takes the store-wide lock (released when the file is dropped),
    /// waiting at most [`LOCK_PATIENCE`].
    fn lock_store(&self) -> Result<File> {
        let path = self.root.join("lock");
        let file = crate::fsutil::open_lock_file(&path)?;
        let deadline = Instant::now() + LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => bail!(
                    "the cache lock {} has been held for over {} s by another process (a stopped cargo-krust?); end that process and run again",
                    path.display(),
                    LOCK_PATIENCE.as_secs()
                ),
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        }
    }

    /// The store locked for eviction, with what every live run has pinned.
    pub fn eviction(&self) -> Result<Eviction<'_>> {
        // This run's pins before the store lock, in the order `pin` takes
        // them, so that two threads of one run cannot wait on each other.
        let own = self.own_pins();
        let lock = self.lock_store()?;
        let mut pinned = own.digests.clone();
        drop(own);
        self.read_live_pins(&mut pinned)?;
        Ok(Eviction {
            store: self,
            pinned,
            _lock: lock,
        })
    }

    /// Adds the digests in the pin files of live runs to `pinned`, and
    /// deletes the pin files of runs that are gone (no one holds their
    /// lock). Called under the store lock.
    fn read_live_pins(&self, pinned: &mut HashSet<String>) -> Result<()> {
        let dir = self.pin_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot read {}", dir.display()))?
                .path();
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            };
            if file.try_lock().is_ok() {
                let _ = fs::remove_file(&path);
                continue;
            }
            let mut text = String::new();
            file.read_to_string(&mut text)
                .with_context(|| format!("cannot read {}", path.display()))?;
            pinned.extend(text.lines().map(String::from));
        }
        Ok(())
    }

    /// A directory of the store for a cache of its own kind (created on use).
    pub fn cache_dir(&self, kind: &str) -> PathBuf {
        self.root.join("cache").join(kind)
    }

    /// Reads a record, if there is one.
    pub fn read_record(&self, kind: &str, key: &str) -> Option<Vec<u8>> {
        fs::read(self.root.join("records").join(kind).join(key)).ok()
    }

    /// Writes (or replaces) a record.
    pub fn write_record(&self, kind: &str, key: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.root.join("records").join(kind);
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        let mut file = self.temp_file()?;
        file.write_all(bytes)
            .and_then(|()| file.flush())
            .context("cannot write to the blob store")?;
        file.persist(dir.join(key))
            .with_context(|| format!("cannot write record {kind}/{key}"))?;
        Ok(())
    }
}

/// The store locked against other runs' pins and evictions (until dropped).
pub struct Eviction<'s> {
    store: &'s BlobStore,
    /// What every live run, this one included, has pinned.
    pinned: HashSet<String>,
    _lock: File,
}

impl Eviction<'_> {
    /// Deletes a blob unless a live run pinned it; false when it stays for
    /// that reason. Best effort: a blob that stays only costs space.
    pub fn remove(&self, digest: &str) -> bool {
        if self.pinned.contains(digest) {
            return false;
        }
        if let Ok(path) = self.store.path(digest) {
            let _ = fs::remove_file(path);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_blob(store: &BlobStore, bytes: &[u8]) -> String {
        let digest = crate::oci::sha256_digest(bytes);
        store.write(&digest, bytes).unwrap();
        digest
    }

    #[test]
    fn another_store_handle_cannot_evict_what_a_live_one_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let a = BlobStore::open(dir.path()).unwrap();
        let b = BlobStore::open(dir.path()).unwrap();
        let pinned = stored_blob(&a, b"pinned by a");
        let unpinned = stored_blob(&b, b"written by b");
        drop(b);
        let b = BlobStore::open(dir.path()).unwrap();

        let eviction = b.eviction().unwrap();
        assert!(!eviction.remove(&pinned), "a's pin holds");
        assert!(eviction.remove(&unpinned));
        drop(eviction);
        assert!(b.get(&pinned).is_some());
        assert!(b.get(&unpinned).is_none());
        assert!(!a.pin(&unpinned).unwrap(), "a pin says the blob is gone");

        // A pin file no one holds is a dead run's: it goes, and its pins.
        let dead = dir.path().join("pins/dead.pin");
        fs::write(&dead, format!("{pinned}\n")).unwrap();
        drop(a);
        let eviction = b.eviction().unwrap();
        assert!(eviction.remove(&pinned));
        assert!(!dead.exists());
        assert_eq!(fs::read_dir(dir.path().join("pins")).unwrap().count(), 0);
    }

    #[test]
    fn temporary_files_of_killed_runs_are_swept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let old = store.temp_file().unwrap().keep().unwrap().1;
        let fresh = store.temp_file().unwrap().keep().unwrap().1;
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - ABANDONED_AFTER - Duration::from_secs(60))
            .unwrap();
        BlobStore::open(dir.path()).unwrap();
        assert!(!old.exists());
        assert!(fresh.exists());
    }
}
