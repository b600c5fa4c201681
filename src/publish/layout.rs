//! The OCI image layout sink (`--oci-layout-path`): blobs under
//! `blobs/sha256/`, `oci-layout`, and `index.json` with one entry per
//! (image, tag). An entry is named `<repository>:<tag>` by
//! `org.opencontainers.image.ref.name`, the repository being the image name
//! without its registry (`team-a/api:latest`), so that two images ending in
//! the same word stay apart; `io.containerd.image.name` carries the full
//! name. Existing entries of other images are kept; an entry with the same
//! name is replaced. The referrers of each platform manifest (provenance,
//! SBOM) are listed too, unnamed, with their `artifactType` and
//! annotations, as ORAS keeps them in a layout: the referrers of a
//! manifest are the listed manifests whose `subject` names it. (Not in an
//! OCI archive: see [`OciLayout::without_referrers`].)
//!
//! A run writes the layout all or nothing: each blob through a temporary
//! file renamed into place, index.json once, last, for every image of the
//! run. On any failure what the run added goes again: the whole directory
//! when the run created it, else the files and directories it added, with
//! index.json untouched.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::assemble::ImageIndex;
use crate::fsutil;
use crate::oci::{ANNOTATION_REF_NAME, Blob, MEDIA_TYPE_OCI_INDEX, canonical_json, digest_hex};
use crate::store::BlobStore;

use super::{Sink, download};
use crate::progress;
use crate::registry::RegistryClient;

pub struct OciLayout {
    dir: PathBuf,
    /// Whether the referrers of each manifest are written and listed.
    with_referrers: bool,
    /// Where blobs not in the local store come from (base layers).
    client: Arc<RegistryClient>,
    store: BlobStore,
}

/// The annotation containerd and others use for the full image name.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// The content of the `oci-layout` file.
const LAYOUT_VERSION: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

impl OciLayout {
    pub fn new(dir: &Path, client: Arc<RegistryClient>, store: BlobStore) -> OciLayout {
        OciLayout {
            dir: dir.to_path_buf(),
            with_referrers: true,
            client,
            store,
        }
    }

    /// The layout without referrers: one index.json entry per (image,
    /// tag), as an OCI archive needs for `podman load` and for `skopeo`
    /// naming no image (both refuse an index.json of several entries).
    pub fn without_referrers(self) -> OciLayout {
        OciLayout {
            with_referrers: false,
            ..self
        }
    }

    /// Checks, before anything is built, that the layout can be written:
    /// the directory is one or does not exist yet, its index.json (if any)
    /// is an index, and the nearest existing directory takes new files.
    pub fn check(&self) -> Result<()> {
        let context = || format!("cannot write the OCI layout {}", self.dir.display());
        if self.dir.exists() && !self.dir.is_dir() {
            bail!(
                "cannot write the OCI layout {}: it is not a directory; pick another --oci-layout-path",
                self.dir.display()
            );
        }
        existing_entries(&self.dir.join("index.json")).with_context(context)?;
        if let Some(existing) = self.dir.ancestors().find(|dir| dir.is_dir()) {
            // Made and dropped at once: only whether it can be made counts.
            fsutil::temp_file_in(existing).with_context(context)?;
        }
        Ok(())
    }

    /// Writes every blob of every image, then index.json; on failure,
    /// removes what it added (see the module documentation).
    pub async fn write(&self, images: &[ImageIndex]) -> Result<()> {
        let mut added = Added::before_writing(&self.dir);
        self.write_all(images, &self.client, &self.store, &mut added)
            .await
            .with_context(|| format!("cannot write the OCI layout {}", self.dir.display()))?;
        added.keep();
        Ok(())
    }

    async fn write_all(
        &self,
        images: &[ImageIndex],
        client: &RegistryClient,
        store: &BlobStore,
        added: &mut Added,
    ) -> Result<()> {
        // Read first: a damaged index.json stops the run before any blob.
        let index_path = self.dir.join("index.json");
        let existing = existing_entries(&index_path)?;

        let blobs_dir = self.dir.join("blobs").join("sha256");
        added.create_dirs(&blobs_dir)?;
        let marker = self.dir.join("oci-layout");
        if !marker.is_file() {
            fsutil::write_atomic(&marker, LAYOUT_VERSION)?;
            added.file(marker);
        }

        let mut written = HashSet::new();
        for image in images {
            let blobs = image
                .images
                .iter()
                .flat_map(|platform| {
                    platform
                        .layers
                        .iter()
                        .chain([&platform.config, &platform.manifest])
                        .chain(
                            platform
                                .referrers
                                .iter()
                                .filter(|_| self.with_referrers)
                                .flat_map(|r| r.blobs.iter().chain([&r.manifest])),
                        )
                })
                .chain([&image.index]);
            for blob in blobs {
                if written.insert(blob.digest.as_str()) {
                    self.put_blob(&blobs_dir, blob, client, store, added)
                        .await?;
                }
            }
        }

        let index = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_INDEX,
            "manifests": merged_entries(existing, images, self.with_referrers),
        });
        fsutil::write_atomic(&index_path, &canonical_json(&index))
    }

    async fn put_blob(
        &self,
        blobs_dir: &Path,
        blob: &Blob,
        client: &RegistryClient,
        store: &BlobStore,
        added: &mut Added,
    ) -> Result<()> {
        let hex = digest_hex(&blob.digest)
            .with_context(|| format!("malformed digest `{}`", blob.digest))?;
        let path = blobs_dir.join(hex);
        let existing = fs::symlink_metadata(&path).ok();
        if existing
            .as_ref()
            .is_some_and(|m| m.is_file() && m.len() == blob.size)
        {
            return Ok(());
        }
        let mut temp = fsutil::temp_file_in(blobs_dir)?;
        let source = blob_content(client, store, blob).await?;
        tokio::task::block_in_place(|| source.copy_to(blob, temp.as_file_mut()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        temp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", path.display()))?;
        // A damaged blob replaced stays replaced: it was no use.
        if existing.is_none() {
            added.file(path);
        }
        Ok(())
    }
}

impl Sink for OciLayout {
    fn check(&self) -> Result<()> {
        OciLayout::check(self)
    }

    fn publish<'a>(&'a self, images: &'a [ImageIndex]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.write(images).await?;
            progress::status("Wrote", format!("OCI layout {}", self.dir.display()));
            Ok(())
        })
    }
}

/// Where a blob's bytes are, once a remote one is downloaded.
pub(super) enum BlobContent<'b> {
    Memory(&'b [u8]),
    File(PathBuf),
}

/// The bytes of `blob`, downloaded into the store first when they are
/// remote and not cached.
pub(super) async fn blob_content<'b>(
    client: &RegistryClient,
    store: &BlobStore,
    blob: &'b Blob,
) -> Result<BlobContent<'b>> {
    Ok(match blob.bytes() {
        Some(bytes) => BlobContent::Memory(bytes),
        None => BlobContent::File(download(client, store, blob).await?),
    })
}

impl BlobContent<'_> {
    /// Writes the bytes to `to` (a file's checked against `blob`).
    pub(super) fn copy_to(&self, blob: &Blob, to: &mut impl Write) -> Result<()> {
        match self {
            BlobContent::Memory(bytes) => Ok(to.write_all(bytes)?),
            BlobContent::File(path) => copy_verified(path, blob, to),
        }
    }
}

/// Copies the blob's bytes from `source`, checking they are what its
/// descriptor says: a damaged cache file must not become a layout or an
/// archive that names one digest and holds other bytes.
fn copy_verified(source: &Path, blob: &Blob, to: &mut impl Write) -> Result<()> {
    let mut from =
        File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = from
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", source.display()))?;
        let Some(chunk) = buffer.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        hasher.update(chunk);
        size += n as u64;
        to.write_all(chunk)?;
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    if digest != blob.digest || size != blob.size {
        bail!(
            "{} is not blob {} ({size} bytes with digest {digest}); delete it and run again",
            source.display(),
            blob.digest
        );
    }
    Ok(())
}

/// The entries of an existing index.json (none when there is no file).
fn existing_entries(index_path: &Path) -> Result<Vec<Value>> {
    let bytes = match fs::read(index_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", index_path.display())),
    };
    let index: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid JSON", index_path.display()))?;
    match index.get("manifests").and_then(Value::as_array) {
        Some(entries) => Ok(entries.clone()),
        None => bail!(
            "{} is not an OCI image index (no `manifests` list); remove it or pick another --oci-layout-path",
            index_path.display()
        ),
    }
}

/// The existing entries without those this run names, then one entry per
/// (image, tag) of this run (a later one replacing an earlier of the same
/// name), then (`with_referrers`) each referrer of this run not listed
/// yet, unnamed.
fn merged_entries(existing: Vec<Value>, images: &[ImageIndex], with_referrers: bool) -> Vec<Value> {
    let ref_name = |entry: &Value| {
        entry
            .get("annotations")
            .and_then(|a| a.get(ANNOTATION_REF_NAME))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let mut entries = existing;
    for image in images {
        for tag in &image.tags {
            let name = format!("{}:{tag}", image.name.repository());
            entries.retain(|entry| ref_name(entry).as_deref() != Some(name.as_str()));
            let mut entry = image.index.descriptor();
            entry["annotations"] = json!({
                ANNOTATION_REF_NAME: name,
                ANNOTATION_IMAGE_NAME: format!("{}:{tag}", image.name),
            });
            entries.push(entry);
        }
    }
    let referrers = images
        .iter()
        .flat_map(|image| &image.images)
        .flat_map(|platform| &platform.referrers)
        .filter(|_| with_referrers);
    for referrer in referrers {
        let digest = Some(&referrer.manifest.digest);
        if !entries
            .iter()
            .any(|entry| entry.get("digest").and_then(Value::as_str) == digest.map(String::as_str))
        {
            entries.push(referrer.descriptor());
        }
    }
    entries
}

/// What a layout write added, removed again on drop unless kept: the
/// directory the run created (the first missing ancestor of the layout
/// directory, with everything in it), or else the files and directories
/// it added to an existing one.
struct Added {
    created_root: Option<PathBuf>,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    kept: bool,
}

impl Added {
    /// Notes, before anything is written, which part of `dir` is missing.
    fn before_writing(dir: &Path) -> Added {
        Added {
            created_root: first_missing(dir),
            files: Vec::new(),
            dirs: Vec::new(),
            kept: false,
        }
    }

    /// Creates `dir` and its missing parents, noting each one.
    fn create_dirs(&mut self, dir: &Path) -> Result<()> {
        let mut missing: Vec<PathBuf> = Vec::new();
        let mut next = first_missing(dir);
        while let Some(path) = next.take() {
            fs::create_dir(&path)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists if path.is_dir() => Ok(()),
                    _ => Err(e),
                })
                .with_context(|| format!("cannot create {}", path.display()))?;
            missing.push(path);
            next = first_missing(dir);
        }
        self.dirs.extend(missing);
        Ok(())
    }

    fn file(&mut self, path: PathBuf) {
        self.files.push(path);
    }

    /// The write succeeded: everything stays.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Added {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Best effort: the error that got us here is what the user sees.
        if let Some(root) = &self.created_root {
            let _ = fs::remove_dir_all(root);
            return;
        }
        for file in &self.files {
            let _ = fs::remove_file(file);
        }
        for dir in self.dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The outermost ancestor of `path` (or `path` itself) that does not exist.
fn first_missing(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && p.symlink_metadata().is_err())
        .last()
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_removes_what_it_added_only() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("layout");
        fs::create_dir_all(existing.join("blobs")).unwrap();
        fs::write(existing.join("index.json"), "{}").unwrap();
        let mut added = Added::before_writing(&existing);
        added
            .create_dirs(&existing.join("blobs").join("sha256"))
            .unwrap();
        fs::write(existing.join("blobs/sha256/new"), "x").unwrap();
        added.file(existing.join("blobs/sha256/new"));
        drop(added);
        assert!(existing.join("index.json").is_file());
        assert!(existing.join("blobs").is_dir());
        assert!(!existing.join("blobs/sha256").exists());

        let fresh = dir.path().join("a/b/layout");
        let mut added = Added::before_writing(&fresh);
        added.create_dirs(&fresh.join("blobs")).unwrap();
        assert!(fresh.join("blobs").is_dir());
        drop(added);
        assert!(!dir.path().join("a").exists(), "created parents go too");

        let mut added = Added::before_writing(&fresh);
        added.create_dirs(&fresh).unwrap();
        added.keep();
        assert!(fresh.is_dir());
    }

    #[test]
    fn a_cache_file_that_is_not_its_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("blob");
        fs::write(&source, b"layer").unwrap();
        let blob = |bytes: &[u8]| Blob {
            media_type: crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP.into(),
            digest: crate::oci::sha256_digest(bytes),
            size: bytes.len() as u64,
            source: crate::oci::BlobSource::File(source.clone()),
        };
        let mut to = tempfile::tempfile().unwrap();
        copy_verified(&source, &blob(b"layer"), &mut to).unwrap();
        let err = copy_verified(&source, &blob(b"other"), &mut to).unwrap_err();
        assert!(err.to_string().contains("delete it"), "{err}");
    }

    #[test]
    fn an_index_json_without_manifests_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        assert!(existing_entries(&path).unwrap().is_empty());
        for text in ["[]", "{}", "not json"] {
            fs::write(&path, text).unwrap();
            let err = format!("{:#}", existing_entries(&path).unwrap_err());
            assert!(err.contains("index.json"), "{err}");
        }
    }
}
