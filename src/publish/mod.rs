//! Publishing: the sinks an assembled [`ImageIndex`] is handed to. The
//! registry sink pushes blobs (HEAD first, then a cross-repository mount
//! when the registry already holds the blob in another repository — a base
//! image's, or one this run pushed — else an upload; each blob transferred
//! once per run and at most `--jobs` transfers at a time), then manifests,
//! then the index by digest, then tags. The layout sink writes an OCI image
//! layout. `--no-push` simply means "no registry sink".

pub mod layout;
pub mod registry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use futures_util::future::try_join_all;
use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::Reference;
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::assemble::ImageIndex;
use crate::image_name::ImageName;
use crate::oci::{Blob, BlobSource};
use crate::progress;
use crate::store::BlobStore;
use registry::RegistryClient;

pub use layout::OciLayout;

/// A blob in a repository: (registry, repository, digest).
type BlobKey = (String, String, String);
/// A blob in a registry, whatever the repository: (registry, digest).
type RegistryBlob = (String, String);

/// Pushes images to their registries.
pub struct RegistrySink {
    client: Arc<RegistryClient>,
    store: BlobStore,
    /// `--jobs`: blob transfers running at once, over all images.
    jobs: usize,
    transfers: Semaphore,
    /// One cell per (registry, repository, digest): a blob is transferred at
    /// most once per run, whoever asks for it first.
    done: Mutex<HashMap<BlobKey, Arc<OnceCell<()>>>>,
    /// Per (registry, digest): a lock held while the blob is transferred
    /// anywhere in that registry, and a repository known to hold it, so a
    /// second repository mounts what the first uploaded.
    holders: Mutex<HashMap<RegistryBlob, Arc<Mutex<Option<String>>>>>,
}

impl RegistrySink {
    pub fn new(client: Arc<RegistryClient>, store: BlobStore, jobs: usize) -> RegistrySink {
        RegistrySink {
            client,
            store,
            jobs: jobs.max(1),
            transfers: Semaphore::new(jobs.max(1)),
            done: Mutex::new(HashMap::new()),
            holders: Mutex::new(HashMap::new()),
        }
    }

    /// Pushes one index with everything it references, then its tags.
    pub async fn publish(&self, image: &ImageIndex) -> Result<()> {
        let name = &image.name;
        // One HEAD per tag: when every tag already names this index, the
        // registry holds it and everything below it; nothing is sent.
        let stale_tags = self.stale_tags(image).await;
        if stale_tags.is_empty() {
            progress::status("Unchanged", image.reference());
            return Ok(());
        }
        try_join_all(image.images.iter().map(|platform_image| async move {
            stream::iter(platform_image.layers.iter().chain([&platform_image.config]))
                .map(|blob| self.ensure_blob(name, blob))
                .buffer_unordered(self.jobs)
                .try_collect::<Vec<()>>()
                .await?;
            self.put_manifest(
                name,
                &platform_image.manifest,
                &platform_image.manifest.digest,
            )
            .await
        }))
        .await?;
        self.put_manifest(name, &image.index, &image.index.digest)
            .await?;
        for tag in stale_tags {
            self.put_manifest(name, &image.index, tag).await?;
        }
        progress::status("Published", image.reference());
        Ok(())
    }

    /// The tags that do not point at the index yet. A tag that cannot be
    /// looked up counts as stale: the push then finds out what is wrong.
    async fn stale_tags<'i>(&self, image: &'i ImageIndex) -> Vec<&'i String> {
        let lookups = image.tags.iter().map(|tag| async move {
            let current = self.client.manifest_digest(&image.name.with_tag(tag)).await;
            match current {
                Ok(Some(digest)) if digest == image.index.digest => None,
                Ok(_) => Some(tag),
                Err(err) => {
                    progress::verbose(format!("cannot look up tag {tag}: {err:#}"));
                    Some(tag)
                }
            }
        });
        futures_util::future::join_all(lookups)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn put_manifest(&self, name: &ImageName, blob: &Blob, tag_or_digest: &str) -> Result<()> {
        let reference = if tag_or_digest.starts_with("sha256:") {
            name.with_digest(tag_or_digest)
        } else {
            name.with_tag(tag_or_digest)
        };
        let bytes = blob
            .bytes()
            .cloned()
            .context("manifest bytes are not in memory")?;
        self.client
            .push_manifest(&reference, bytes, &blob.media_type)
            .await
    }

    /// Makes sure the repository holds the blob, transferring it at most once.
    async fn ensure_blob(&self, name: &ImageName, blob: &Blob) -> Result<()> {
        let key = (
            name.registry().to_string(),
            name.repository().to_string(),
            blob.digest.clone(),
        );
        let cell = self.done.lock().await.entry(key).or_default().clone();
        cell.get_or_try_init(|| self.transfer(name, blob)).await?;
        Ok(())
    }

    async fn transfer(&self, name: &ImageName, blob: &Blob) -> Result<()> {
        // The registry-wide lock first, then a transfer slot: a task holding
        // a slot never waits for a lock, so the two cannot deadlock.
        let holder = self
            .holders
            .lock()
            .await
            .entry((name.registry().to_string(), blob.digest.clone()))
            .or_default()
            .clone();
        let mut holder = holder.lock().await;
        let _slot = self
            .transfers
            .acquire()
            .await
            .context("transfer slots closed")?;

        let target = name.with_digest(&blob.digest);
        if self.client.blob_exists(&target, &blob.digest).await? {
            progress::verbose(format!("{} exists in {name}", blob.digest));
        } else if !self.mount_known(name, blob, holder.as_deref()).await? {
            self.upload(name, blob, &target).await?;
        }
        *holder = Some(name.repository().to_string());
        Ok(())
    }

    /// Mounts the blob from a repository of the same registry known to hold
    /// it: the one this run pushed it to, or the base image's.
    async fn mount_known(
        &self,
        name: &ImageName,
        blob: &Blob,
        pushed_to: Option<&str>,
    ) -> Result<bool> {
        let base = match &blob.source {
            BlobSource::Remote {
                registry,
                repository,
            } if registry == name.registry() => Some(repository.as_str()),
            _ => None,
        };
        let target = name.with_digest(&blob.digest);
        for from in pushed_to.into_iter().chain(base) {
            if from == name.repository() {
                continue;
            }
            let source = Reference::with_digest(
                name.registry().to_string(),
                from.to_string(),
                blob.digest.clone(),
            );
            if self
                .client
                .mount_blob(&target, &source, &blob.digest)
                .await?
            {
                progress::verbose(format!("mounted {} from {from}", blob.digest));
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn upload(&self, name: &ImageName, blob: &Blob, target: &Reference) -> Result<()> {
        match &blob.source {
            BlobSource::Memory(bytes) => {
                self.client
                    .push_blob_bytes(target, &blob.digest, bytes.clone())
                    .await
            }
            BlobSource::File(path) => {
                progress::verbose(format!(
                    "uploading {} ({} bytes) to {name}",
                    blob.digest, blob.size
                ));
                self.client
                    .push_blob_file(target, &blob.digest, blob.size, path)
                    .await
            }
            BlobSource::Remote { .. } => {
                let path = download(&self.client, &self.store, blob).await?;
                self.client
                    .push_blob_file(target, &blob.digest, blob.size, &path)
                    .await
            }
        }
    }
}

/// The path of a blob's bytes on disk, downloading a remote blob into the
/// store first when needed.
pub async fn download(client: &RegistryClient, store: &BlobStore, blob: &Blob) -> Result<PathBuf> {
    match &blob.source {
        BlobSource::File(path) => Ok(path.clone()),
        BlobSource::Memory(bytes) => store.write(&blob.digest, bytes),
        BlobSource::Remote {
            registry,
            repository,
        } => {
            if let Some(path) = store.get(&blob.digest) {
                return Ok(path);
            }
            let source =
                Reference::with_digest(registry.clone(), repository.clone(), blob.digest.clone());
            progress::verbose(format!(
                "downloading {} from {registry}/{repository}",
                blob.digest
            ));
            let temp = store.temp_file()?;
            client
                .pull_blob_to_file(&source, &blob.digest, temp.path())
                .await?;
            store.commit(temp, &blob.digest)
        }
    }
}
