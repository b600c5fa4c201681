//! Publishing: the sinks an assembled [`ImageIndex`] is handed to. The
//! registry sink pushes blobs (HEAD first, then a cross-repository mount
//! when the registry already holds the blob in another repository — a base
//! image's, or one this run pushed — else an upload; each blob transferred
//! once per run and at most `--jobs` transfers at a time), then manifests,
//! then the index under each tag that does not name it yet. The layout sink
//! writes an OCI image layout, the archive sinks one tar file each, the
//! local sink loads them into podman (`--local`) or Docker (`docker.local`).
//! `--no-push` simply means "no registry sink". Every sink is a [`Sink`]:
//! the pipeline checks each before anything is built and hands each the
//! same assembled indexes.
//!
//! A layer that is new to the local cache (a rebuilt binary) is uploaded
//! while it is being compressed, as `docker push` does: its digest is not
//! known before its last byte, so the HEAD comes after the bytes, before the
//! session is committed, and a registry that holds the blob already sees
//! the session cancelled. Whatever goes wrong with such a stream only sends
//! the blob the usual way, from the store, when the image is published.

pub mod archive;
pub mod layout;
pub mod local;
mod referrers;
mod signatures;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::future::{LocalBoxFuture, try_join_all};
use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::Reference;
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::assemble::ImageIndex;
use crate::image_name::ImageName;
use crate::oci::{Blob, BlobSource};
use crate::platform::Platform;
use crate::progress;
use crate::registry::{RegistryClient, StreamedSession};
use crate::store::BlobStore;
use crate::supply::sign::Signer;

/// Compressed chunks (a gzip member each, up to about 1 MiB) waiting to be
/// sent while a layer is written: enough to keep the connection busy.
const STREAM_CHUNKS_IN_FLIGHT: usize = 8;

/// The producing end of a streamed upload, for the thread writing the blob.
/// Dropping it ends the upload's body.
pub struct BlobFeed {
    chunks: tokio::sync::mpsc::Sender<Bytes>,
    open: bool,
}

impl BlobFeed {
    /// Passes bytes on, waiting while the upload is behind. Called from a
    /// blocking thread, never from async code. Once the upload has stopped
    /// (it failed; the blob is sent again later), bytes are dropped.
    pub fn send(&mut self, bytes: &[u8]) {
        if self.open {
            self.open = self
                .chunks
                .blocking_send(Bytes::copy_from_slice(bytes))
                .is_ok();
        }
    }
}

/// The uploading end of a streamed upload, for [`RegistrySink::finish_stream`].
pub struct StreamedUpload {
    name: ImageName,
    /// The session as opened, to cancel it while the PATCH still runs.
    opened: StreamedSession,
    /// The PATCH; its answer names the session to commit.
    session: tokio::task::JoinHandle<Result<StreamedSession>>,
}

pub use archive::{Archive, ArchiveFormat};
pub use layout::OciLayout;
pub use local::LocalSink;

/// A place the images of a run go (ko's publisher). A sink that writes
/// files writes them all or nothing over the run. Its futures are not
/// `Send`: the pipeline awaits them in its own task.
pub trait Sink {
    /// Checks, before anything is built, that the destination can be
    /// written.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Checks, before anything is built, that what the sink hands images to
    /// answers (a local engine).
    fn check_reachable<'a>(&'a self) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Checks, before anything is built, that the sink can take the image
    /// `name` built for `platforms`.
    fn check_platforms(&self, _name: &ImageName, _platforms: &[Platform]) -> Result<()> {
        Ok(())
    }

    /// Publishes every image of the run.
    fn publish<'a>(&'a self, images: &'a [ImageIndex]) -> LocalBoxFuture<'a, Result<()>>;
}

impl Sink for RegistrySink {
    /// Pushes the images, at most `--jobs` at once.
    fn publish<'a>(&'a self, images: &'a [ImageIndex]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            stream::iter(images)
                .map(|image| self.publish_image(image))
                .buffer_unordered(self.jobs)
                .try_collect::<Vec<()>>()
                .await?;
            Ok(())
        })
    }
}

/// A blob in a repository: (registry, repository, digest).
pub type BlobKey = (String, String, String);

/// How a blob came to be in a repository, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Sent by this run (also while it was being written).
    Uploaded,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// The repository held it already.
    Present,
}

impl BlobOutcome {
    pub fn name(self) -> &'static str {
        match self {
            BlobOutcome::Uploaded => "uploaded",
            BlobOutcome::Mounted => "mounted",
            BlobOutcome::Present => "present",
        }
    }
}
/// A blob in a registry, whatever the repository: (registry, digest).
type RegistryBlob = (String, String);

/// What a blob of `name`'s repository is known by in this run.
pub fn blob_key(name: &ImageName, digest: &str) -> BlobKey {
    (
        name.registry().to_string(),
        name.repository().to_string(),
        digest.to_string(),
    )
}

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
    /// Streamed uploads still finishing: a push of the same blob waits for
    /// them first.
    streams: std::sync::Mutex<HashMap<BlobKey, tokio::task::JoinHandle<()>>>,
    /// What happened to each blob this run made sure of.
    outcomes: std::sync::Mutex<HashMap<BlobKey, BlobOutcome>>,
    /// `--sign-key`: signs every platform manifest and index pushed.
    signer: Option<Arc<dyn Signer>>,
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
            streams: std::sync::Mutex::new(HashMap::new()),
            outcomes: std::sync::Mutex::new(HashMap::new()),
            signer: None,
        }
    }

    /// Signs every image this sink pushes with `signer` (see [`signatures`]).
    pub fn with_signer(mut self, signer: Option<Arc<dyn Signer>>) -> RegistrySink {
        self.signer = signer;
        self
    }

    /// What happened to each blob of the run's images, by repository.
    pub fn outcomes(&self) -> HashMap<BlobKey, BlobOutcome> {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn note(&self, name: &ImageName, digest: &str, outcome: BlobOutcome) {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(blob_key(name, digest), outcome);
    }

    /// Starts uploading a blob of `name`'s repository while it is being
    /// produced (`what` names it for the progress line): feed its bytes to
    /// the [`BlobFeed`], drop that, then [`Self::finish_stream`]. `None`
    /// when no upload session can be opened (the blob is sent later, the
    /// usual way). The session is open before this returns, so that the
    /// bytes flow from the first one.
    pub async fn start_stream(
        &self,
        name: &ImageName,
        what: &str,
    ) -> Option<(BlobFeed, StreamedUpload)> {
        let (registry, repository) = (name.registry().to_string(), name.repository().to_string());
        let session = match self.client.open_streamed_blob(&registry, &repository).await {
            Ok(session) => session,
            // Not lost when the registry stopped answering: the client
            // remembers it, and the publish fails at once with this error
            // instead of waiting for the registry again.
            Err(err) => {
                progress::verbose(format!("{err:#}; the blob is sent once made"));
                return None;
            }
        };
        let (chunks, receiver) = tokio::sync::mpsc::channel(STREAM_CHUNKS_IN_FLIGHT);
        let client = self.client.clone();
        let what = what.to_string();
        let opened = session.clone();
        let session = tokio::spawn(async move {
            client
                .stream_blob(&registry, &repository, session, receiver, &what)
                .await
        });
        Some((
            BlobFeed { chunks, open: true },
            StreamedUpload {
                name: name.clone(),
                opened,
                session,
            },
        ))
    }

    /// Ends a streamed upload once its blob is made (`None`: it could not
    /// be), in the background: the registry may still be taking the last
    /// bytes while the rest of the image is assembled. [`Self::publish_image`]
    /// waits for it before it pushes that blob.
    pub async fn finish_stream(self: &Arc<Self>, upload: StreamedUpload, blob: Option<&Blob>) {
        let Some(blob) = blob else {
            self.stop_stream(upload).await;
            return;
        };
        let key = blob_key(&upload.name, &blob.digest);
        let sink = Arc::clone(self);
        let blob = blob.clone();
        let ending = tokio::spawn(async move { sink.end_stream(upload, &blob).await });
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, ending);
    }

    /// Commits a streamed session unless the repository holds the blob
    /// already, in which case the upload is stopped. Never fails: a blob
    /// not committed here is simply sent by [`Self::publish_image`].
    async fn end_stream(&self, upload: StreamedUpload, blob: &Blob) {
        let name = upload.name.clone();
        let cell = self.done_cell(blob_key(&name, &blob.digest)).await;
        let mut upload = Some(upload);
        let ended = cell
            .get_or_try_init(|| async {
                let Some(upload) = upload.take() else {
                    anyhow::bail!("the streamed upload was already ended");
                };
                // The digest is known as soon as the blob is made: the HEAD
                // runs while the registry may still be taking bytes, and a
                // blob it holds already stops the upload there.
                let target = name.with_digest(&blob.digest);
                if self.client.blob_exists(&target, &blob.digest).await? {
                    self.stop_stream(upload).await;
                    self.note(&name, &blob.digest, BlobOutcome::Present);
                    progress::verbose(format!("{} exists in {name}", blob.digest));
                } else {
                    let StreamedUpload {
                        opened, session, ..
                    } = upload;
                    let sent = match session.await.context("the streamed upload stopped") {
                        Ok(Ok(sent)) => sent,
                        Ok(Err(err)) | Err(err) => {
                            self.client
                                .cancel_streamed_blob(name.registry(), name.repository(), opened)
                                .await;
                            return Err(err);
                        }
                    };
                    self.client
                        .commit_streamed_blob(
                            name.registry(),
                            name.repository(),
                            sent,
                            &blob.digest,
                        )
                        .await?;
                    self.note(&name, &blob.digest, BlobOutcome::Uploaded);
                    progress::verbose(format!("uploaded {} to {name} as it was made", blob.digest));
                }
                *self.holder(&name, &blob.digest).await.lock().await =
                    Some(name.repository().to_string());
                Ok(())
            })
            .await;
        if let Err(err) = ended {
            progress::verbose(format!("{err:#}; the blob is sent again"));
        }
        if let Some(upload) = upload {
            // Another transfer of the same blob came first.
            self.stop_stream(upload).await;
        }
    }

    /// Drops a streamed upload where it is and deletes its session.
    async fn stop_stream(&self, upload: StreamedUpload) {
        let StreamedUpload {
            name,
            opened,
            session,
        } = upload;
        session.abort();
        let _ = session.await;
        self.client
            .cancel_streamed_blob(name.registry(), name.repository(), opened)
            .await;
    }

    /// Pushes one index with everything it references, then its tags.
    async fn publish_image(&self, image: &ImageIndex) -> Result<()> {
        let name = &image.name;
        // One HEAD per tag: when every tag already names this index, the
        // registry holds it and everything below it; nothing is sent.
        let stale_tags = self.stale_tags(image).await?;
        if stale_tags.is_empty() {
            // A rebuilt but identical layer was streamed: its session is
            // cancelled, not left open.
            for platform_image in &image.images {
                for layer in &platform_image.layers {
                    self.wait_for_stream(name, &layer.digest).await;
                    self.note(name, &layer.digest, BlobOutcome::Present);
                }
            }
            // The referrers are not part of the index: they may be missing
            // (a run of a cargo-krust without them, a new artefact).
            try_join_all(image.images.iter().map(|platform_image| {
                self.push_missing_referrers(
                    name,
                    &platform_image.manifest,
                    &platform_image.referrers,
                )
            }))
            .await?;
            // A key given for the first time still signs an unchanged image.
            if let Some(signer) = self.signer.as_deref()
                && !self.index_signed(image, signer).await?
            {
                self.sign_image(image, signer).await?;
                progress::status("Signed", image.reference());
                return Ok(());
            }
            progress::status("Unchanged", image.reference());
            return Ok(());
        }
        try_join_all(image.images.iter().map(|platform_image| async move {
            // The referrers' blobs go up with the image's: only their
            // manifests wait for the platform manifest they name.
            let referrer_blobs = platform_image.referrers.iter().flat_map(|r| &r.blobs);
            stream::iter(
                platform_image
                    .layers
                    .iter()
                    .chain([&platform_image.config])
                    .chain(referrer_blobs),
            )
            .map(|blob| self.ensure_blob(name, blob))
            .buffer_unordered(self.jobs)
            .try_collect::<Vec<()>>()
            .await?;
            self.put_manifest(
                name,
                &platform_image.manifest,
                &platform_image.manifest.digest,
            )
            .await?;
            // Before the index goes up under its tags: a tag naming the
            // index still means everything is there.
            let referrers: Vec<_> = platform_image.referrers.iter().collect();
            self.push_referrers(name, &platform_image.manifest, &referrers)
                .await?;
            self.remember_listed(name, &platform_image.manifest, referrers)
        }))
        .await?;
        // Signatures go up after what they sign, before the tags: a tag
        // naming the index still means that everything is there.
        if let Some(signer) = self.signer.as_deref() {
            self.put_manifest(name, &image.index, &image.index.digest)
                .await?;
            self.sign_image(image, signer).await?;
        }
        // The index goes up under its tags (a PUT by tag stores it by
        // digest too): one request fewer than by digest first.
        for tag in stale_tags {
            self.put_manifest(name, &image.index, tag).await?;
        }
        progress::status("Published", image.reference());
        Ok(())
    }

    /// The tags that do not point at the index yet. A tag that cannot be
    /// looked up counts as stale (the push then finds out what is wrong),
    /// unless the registry stopped answering: that ends the push.
    async fn stale_tags<'i>(&self, image: &'i ImageIndex) -> Result<Vec<&'i String>> {
        let lookups = image.tags.iter().map(|tag| async move {
            let current = self.client.manifest_digest(&image.name.with_tag(tag)).await;
            match current {
                Ok(Some(digest)) if digest == image.index.digest => Ok(None),
                Ok(_) => Ok(Some(tag)),
                Err(err) if crate::registry::stopped_answering(&err) => Err(err),
                Err(err) => {
                    progress::verbose(format!("cannot look up tag {tag}: {err:#}"));
                    Ok(Some(tag))
                }
            }
        });
        let stale = try_join_all(lookups).await?;
        Ok(stale.into_iter().flatten().collect())
    }

    /// PUTs a manifest; `true` when the registry lists it as a referrer of
    /// its subject itself (see [`RegistryClient::push_manifest`]).
    async fn put_manifest(
        &self,
        name: &ImageName,
        blob: &Blob,
        tag_or_digest: &str,
    ) -> Result<bool> {
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
        // A streamed upload leaves its outcome in the cell: committed, or
        // left to the transfer below.
        self.wait_for_stream(name, &blob.digest).await;
        let cell = self.done_cell(blob_key(name, &blob.digest)).await;
        cell.get_or_try_init(|| self.transfer(name, blob)).await?;
        Ok(())
    }

    /// The cell of a blob in a repository, set once it is there.
    async fn done_cell(&self, key: BlobKey) -> Arc<OnceCell<()>> {
        self.done.lock().await.entry(key).or_default().clone()
    }

    async fn transfer(&self, name: &ImageName, blob: &Blob) -> Result<()> {
        // The registry-wide lock first, then a transfer slot: a task holding
        // a slot never waits for a lock, so the two cannot deadlock.
        let holder = self.holder(name, &blob.digest).await;
        let mut holder = holder.lock().await;
        let _slot = self
            .transfers
            .acquire()
            .await
            .context("transfer slots closed")?;

        let target = name.with_digest(&blob.digest);
        let outcome = if self.client.blob_exists(&target, &blob.digest).await? {
            progress::verbose(format!("{} exists in {name}", blob.digest));
            BlobOutcome::Present
        } else if self.mount_known(name, blob, holder.as_deref()).await? {
            BlobOutcome::Mounted
        } else {
            self.upload(name, blob, &target).await?;
            BlobOutcome::Uploaded
        };
        self.note(name, &blob.digest, outcome);
        *holder = Some(name.repository().to_string());
        Ok(())
    }

    /// Waits until a streamed upload of `digest` to `name` has ended, if
    /// there is one.
    async fn wait_for_stream(&self, name: &ImageName, digest: &str) {
        let streaming = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&blob_key(name, digest));
        if let Some(streaming) = streaming {
            let _ = streaming.await;
        }
    }

    /// The registry-wide record of who holds `digest` (see `holders`).
    async fn holder(&self, name: &ImageName, digest: &str) -> Arc<Mutex<Option<String>>> {
        self.holders
            .lock()
            .await
            .entry((name.registry().to_string(), digest.to_string()))
            .or_default()
            .clone()
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
                .pull_blob_to_file(&source, &blob.digest, blob.size, temp.path())
                .await?;
            store.commit(temp, &blob.digest)
        }
    }
}
