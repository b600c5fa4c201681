//! The local blob store under `<target-dir>/krust/`: a content-addressed
//! directory (`blobs/sha256/<hex>`, the same shape as an OCI layout) holding
//! the layers cargo-krust writes and the base manifests, configs and layers it
//! has fetched, plus small records under `records/<kind>/<key>` that map
//! inputs to blobs (a binary's hash to its layer, a tag to its digest).
//! Files appear in it only complete: they are written to a temporary file and
//! renamed into place. Blobs a run uses are pinned: nothing deletes them
//! while that run holds the store.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use tempfile::NamedTempFile;

use crate::oci::digest_hex;

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// Digests this run has used or written.
    pinned: Arc<Mutex<HashSet<String>>>,
}

impl BlobStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<BlobStore> {
        let store = BlobStore::at(root);
        for dir in [store.blob_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        }
        Ok(store)
    }

    /// The store at `root` if there is one, creating nothing.
    pub fn existing(root: &Path) -> Option<BlobStore> {
        root.is_dir().then(|| BlobStore::at(root))
    }

    fn at(root: &Path) -> BlobStore {
        BlobStore {
            root: root.to_path_buf(),
            pinned: Arc::default(),
        }
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
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

    /// Moves a complete temporary file to its digest's place.
    pub fn commit(&self, file: NamedTempFile, digest: &str) -> Result<PathBuf> {
        let path = self.path(digest)?;
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

    /// Keeps a blob this run uses from [`Self::remove`].
    pub fn pin(&self, digest: &str) {
        self.pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.to_string());
    }

    /// Deletes a blob, if it is stored and this run has not pinned it. Best
    /// effort: a blob that stays only costs space.
    pub fn remove(&self, digest: &str) {
        let pinned = self
            .pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest);
        if !pinned && let Ok(path) = self.path(digest) {
            let _ = fs::remove_file(path);
        }
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
