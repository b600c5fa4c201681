//! The archive sinks, one tar file each: `--oci-archive` (the OCI image
//! layout of every image and platform of the run, as `skopeo`, `podman
//! load` and containerd read it) and `--tarball` (a docker-archive of one
//! platform per image, as `docker save` writes it: `manifest.json`,
//! `repositories`, and the config and layer blobs under `blobs/sha256/`,
//! layers as stored, i.e. compressed, which `docker load` accepts).
//!
//! Neither holds referrers (provenance, SBOM): podman and skopeo refuse an
//! archive whose index.json lists more than the image when no image is
//! named, and a docker-archive has no place for them.
//!
//! An archive is written whole: into a temporary file next to it, renamed
//! over FILE once complete; on any failure nothing is left.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};
use tar::{Builder, Header, HeaderMode};

use super::Sink;
use super::layout::{BlobContent, OciLayout, blob_content};
use crate::assemble::{ImageIndex, PlatformImage};
use crate::fsutil::{PendingFile, parent_dir};
use crate::image_name::ImageName;
use crate::oci::{Blob, digest_hex};
use crate::platform::Platform;
use crate::progress;
use crate::registry::RegistryClient;
use crate::store::BlobStore;

/// The kind of archive a sink writes.
#[derive(Clone, Copy)]
pub enum ArchiveFormat {
    /// `--oci-archive`.
    Oci,
    /// `--tarball`.
    Docker,
}

impl ArchiveFormat {
    /// What it is called, and the flag that asks for it, for messages.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            ArchiveFormat::Oci => ("OCI archive", "--oci-archive"),
            ArchiveFormat::Docker => ("docker archive", "--tarball"),
        }
    }
}

/// An archive file of the run's images.
pub struct Archive {
    path: PathBuf,
    format: ArchiveFormat,
    /// Where blobs not in the local store come from (base layers).
    client: Arc<RegistryClient>,
    store: BlobStore,
}

impl Archive {
    pub fn new(
        path: &Path,
        format: ArchiveFormat,
        client: Arc<RegistryClient>,
        store: BlobStore,
    ) -> Archive {
        Archive {
            path: path.to_path_buf(),
            format,
            client,
            store,
        }
    }

    /// Every image, in the archive's format.
    pub(super) async fn write(&self, images: &[ImageIndex]) -> Result<()> {
        match self.format {
            ArchiveFormat::Oci => self.write_oci(images).await,
            ArchiveFormat::Docker => self.write_docker(images).await,
        }
    }

    /// The OCI layout of every image, as one tar.
    async fn write_oci(&self, images: &[ImageIndex]) -> Result<()> {
        let file = PendingFile::create(&self.path)?;
        // The layout is staged beside the archive and tarred from there;
        // the staging directory goes when this returns, whatever happens.
        let staging = tempfile::Builder::new()
            .prefix(".krust-oci-archive")
            .tempdir_in(parent_dir(&self.path))
            .context("cannot create a staging directory")?;
        let layout = staging.path().join("layout");
        OciLayout::new(&layout, self.client.clone(), self.store.clone())
            .without_referrers()
            .write(images)
            .await?;
        tokio::task::block_in_place(|| {
            file.commit_with(|to| {
                let mut tar = Builder::new(to);
                tar.mode(HeaderMode::Deterministic);
                tar.follow_symlinks(false);
                tar.append_dir_all(".", &layout)?;
                tar.finish()?;
                Ok(())
            })
        })
    }

    /// The docker-archive: per image one platform's config and layers,
    /// each blob once, then `manifest.json` (one entry per image, tagged
    /// `<name>:<tag>`) and the legacy `repositories`.
    async fn write_docker(&self, images: &[ImageIndex]) -> Result<()> {
        let file = PendingFile::create(&self.path)?;
        let mut entries = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut blobs: Vec<(&Blob, BlobContent)> = Vec::new();
        let mut seen = HashSet::new();
        for image in images {
            let chosen = archived_platform(&image.name, &platforms_of(image))?;
            let Some(platform_image) = image.images.iter().find(|i| i.platform == chosen) else {
                bail!("image {} has no {chosen} image", image.name);
            };
            for blob in platform_image.layers.iter().chain([&platform_image.config]) {
                if seen.insert(blob.digest.as_str()) {
                    blobs.push((blob, blob_content(&self.client, &self.store, blob).await?));
                }
            }
            let top_layer = match platform_image.layers.last() {
                Some(layer) => blob_hex(layer)?.to_string(),
                None => String::new(),
            };
            for tag in &image.tags {
                repositories
                    .entry(image.name.to_string())
                    .or_default()
                    .insert(tag.clone(), top_layer.clone());
            }
            entries.push(manifest_entry(image, platform_image)?);
        }
        let manifest = serde_json::to_vec(&entries)?;
        let repositories = serde_json::to_vec(&repositories)?;
        tokio::task::block_in_place(|| {
            file.commit_with(|to| {
                let mut tar = Builder::new(to);
                for (blob, content) in &blobs {
                    let mut header = entry_header(blob.size);
                    let mut entry = tar.append_writer(&mut header, blob_path(blob)?)?;
                    content.copy_to(blob, &mut entry)?;
                    entry.finish()?;
                }
                for (name, bytes) in [
                    ("manifest.json", &manifest),
                    ("repositories", &repositories),
                ] {
                    let mut header = entry_header(bytes.len() as u64);
                    tar.append_data(&mut header, name, bytes.as_slice())?;
                }
                tar.finish()?;
                Ok(())
            })
        })
    }
}

impl Sink for Archive {
    fn check(&self) -> Result<()> {
        let (what, flag) = self.format.names();
        PendingFile::create(&self.path)
            .map(drop)
            .with_context(|| format!("cannot write the {what} ({flag})"))
    }

    fn check_platforms(&self, name: &ImageName, platforms: &[Platform]) -> Result<()> {
        match self.format {
            ArchiveFormat::Oci => Ok(()),
            ArchiveFormat::Docker => archived_platform(name, platforms).map(drop),
        }
    }

    fn publish<'a>(&'a self, images: &'a [ImageIndex]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (what, _) = self.format.names();
            self.write(images)
                .await
                .with_context(|| format!("cannot write the {what} {}", self.path.display()))?;
            progress::status("Wrote", format!("{what} {}", self.path.display()));
            Ok(())
        })
    }
}

fn platforms_of(image: &ImageIndex) -> Vec<Platform> {
    image.images.iter().map(|i| i.platform.clone()).collect()
}

/// The one platform of `name` a docker-archive holds: its only one, else
/// the host's.
fn archived_platform(name: &ImageName, platforms: &[Platform]) -> Result<Platform> {
    if let [only] = platforms {
        return Ok(only.clone());
    }
    let host = Platform::host();
    if platforms.contains(&host) {
        return Ok(host);
    }
    let built: Vec<String> = platforms.iter().map(Platform::to_string).collect();
    bail!(
        "--tarball holds one platform, the host's ({host}) unless the image has only one, but {name} is built for {}: name one with --platform",
        built.join(", ")
    )
}

/// The `manifest.json` entry of one image.
fn manifest_entry(image: &ImageIndex, platform_image: &PlatformImage) -> Result<Value> {
    let layers = platform_image
        .layers
        .iter()
        .map(blob_path)
        .collect::<Result<Vec<_>>>()?;
    let tags: Vec<String> = image
        .tags
        .iter()
        .map(|tag| format!("{}:{tag}", image.name))
        .collect();
    Ok(json!({
        "Config": blob_path(&platform_image.config)?,
        "RepoTags": tags,
        "Layers": layers,
    }))
}

/// Where a blob goes in the archive (as recent `docker save` puts it).
fn blob_path(blob: &Blob) -> Result<String> {
    Ok(format!("blobs/sha256/{}", blob_hex(blob)?))
}

fn blob_hex(blob: &Blob) -> Result<&str> {
    digest_hex(&blob.digest).with_context(|| format!("malformed digest `{}`", blob.digest))
}

/// A regular file's header, the same on every run.
fn entry_header(size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}
