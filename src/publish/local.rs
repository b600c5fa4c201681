//! The podman sink (`--local`, repository `podman.local`): loads every
//! built platform of every image into the local containers storage with
//! `podman load -i`, no daemon needed. podman keeps one platform per name,
//! so an image goes in as:
//!
//! - its index under `<name>:<tag>`, from which podman takes the host's
//!   platform (the first one built when the host's is not), so that the
//!   printed `<name>@<index digest>` is what `podman run` accepts;
//! - each platform's manifest under `<name>:<tag>-<arch>[-<variant>]`.
//!
//! Each goes through an OCI archive of its own in a temporary directory
//! (podman loads one image per OCI archive); the other tags are added with
//! `podman tag`. Every podman process is bounded by `--registry-timeout`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::future::LocalBoxFuture;

use super::{Archive, ArchiveFormat, Sink};
use crate::assemble::{ImageIndex, PlatformImage};
use crate::platform::Platform;
use crate::progress;
use crate::registry::RegistryClient;
use crate::store::BlobStore;

/// What installs podman where it is missing.
pub(crate) const INSTALL_PODMAN: &str = "apt-get install podman";

/// Loads the run's images into podman.
pub struct PodmanSink {
    /// Where blobs not in the local store come from (base layers).
    client: Arc<RegistryClient>,
    store: BlobStore,
    /// The bound on each podman process.
    timeout: Duration,
}

impl PodmanSink {
    pub fn new(client: Arc<RegistryClient>, store: BlobStore, timeout: Duration) -> PodmanSink {
        PodmanSink {
            client,
            store,
            timeout,
        }
    }

    /// Loads one image: its index, then each platform, then the other tags.
    async fn load_image(&self, image: &ImageIndex, staging: &Path) -> Result<()> {
        let Some((first_tag, other_tags)) = image.tags.split_first() else {
            bail!("image {} has no tag to load into podman under", image.name);
        };
        let host = Platform::host();
        let main = if image.images.iter().any(|i| i.platform == host) {
            ImageIndex {
                tags: vec![first_tag.clone()],
                ..image.clone()
            }
        } else {
            // podman would find no platform of its own in the index.
            let first = image
                .images
                .first()
                .with_context(|| format!("image {} has no platform", image.name))?;
            single_platform(image, first, first_tag.clone())
        };
        self.load(&main, staging).await?;
        let mut loaded_tags = vec![first_tag.clone()];
        for platform_image in &image.images {
            let tag = platform_tag(first_tag, &platform_image.platform);
            self.load(
                &single_platform(image, platform_image, tag.clone()),
                staging,
            )
            .await?;
            loaded_tags.push(tag);
        }
        for tag in other_tags {
            for (loaded, suffix) in loaded_tags.iter().zip(tag_suffixes(image)) {
                let from = format!("{}:{loaded}", image.name);
                let to = format!("{}:{tag}{suffix}", image.name);
                self.podman(&["tag", &from, &to]).await?;
            }
        }
        progress::status("Loaded", format!("{} into podman", image.reference()));
        Ok(())
    }

    /// Writes `image` (one index or manifest, one tag) as an OCI archive
    /// and loads it.
    async fn load(&self, image: &ImageIndex, staging: &Path) -> Result<()> {
        let file = staging.join("image.oci.tar");
        Archive::new(
            &file,
            ArchiveFormat::Oci,
            self.client.clone(),
            self.store.clone(),
        )
        .write_oci(std::slice::from_ref(image))
        .await?;
        self.podman(&["load", "-i", &file.display().to_string()])
            .await?;
        std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))
    }

    /// Runs podman with `args`, within the timeout; its output goes into
    /// the error when it fails.
    async fn podman(&self, args: &[&str]) -> Result<()> {
        let command = format!("podman {}", args.join(" "));
        let child = tokio::process::Command::new(podman_path()?)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run `{command}`"))?;
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "`{command}` did not finish within {}s (--registry-timeout); check `podman info`",
                    self.timeout.as_secs()
                )
            })?
            .with_context(|| format!("cannot run `{command}`"))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr);
            let said = match said.trim() {
                "" => String::from_utf8_lossy(&output.stdout).trim().to_string(),
                said => said.to_string(),
            };
            bail!(
                "`{command}` failed ({}): {}; check that `podman info` works",
                output.status,
                said.replace('\n', " ")
            );
        }
        Ok(())
    }
}

impl Sink for PodmanSink {
    /// podman must be there before anything is built.
    fn check(&self) -> Result<()> {
        podman_path().map(drop)
    }

    fn publish<'a>(&'a self, images: &'a [ImageIndex]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let staging = tempfile::Builder::new()
                .prefix("krust-podman")
                .tempdir()
                .context("cannot create a temporary directory for podman's archives")?;
            for image in images {
                self.load_image(image, staging.path())
                    .await
                    .with_context(|| format!("cannot load {} into podman", image.name))?;
            }
            Ok(())
        })
    }
}

/// podman on PATH, or an error saying how to install it.
pub(crate) fn podman_path() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("podman"))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "--local (or repository `podman.local`) loads the images with podman, which is not on PATH: install it with `{INSTALL_PODMAN}`"
            )
        })
}

/// One platform of `image` as an image of its own, tagged `tag`.
fn single_platform(image: &ImageIndex, platform_image: &PlatformImage, tag: String) -> ImageIndex {
    ImageIndex {
        name: image.name.clone(),
        tags: vec![tag],
        index: platform_image.manifest.clone(),
        images: vec![platform_image.clone()],
    }
}

/// `<tag>-<arch>[-<variant>]`, the tag of one platform.
fn platform_tag(tag: &str, platform: &Platform) -> String {
    format!("{tag}{}", platform_suffix(platform))
}

fn platform_suffix(platform: &Platform) -> String {
    match &platform.variant {
        Some(variant) => format!("-{}-{variant}", platform.arch),
        None => format!("-{}", platform.arch),
    }
}

/// The suffix of each loaded tag, in load order: none for the index, then
/// one per platform.
fn tag_suffixes(image: &ImageIndex) -> impl Iterator<Item = String> + '_ {
    std::iter::once(String::new()).chain(
        image
            .images
            .iter()
            .map(|platform_image| platform_suffix(&platform_image.platform)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_tag_names_its_architecture_and_variant() {
        assert_eq!(
            platform_tag("latest", &Platform::new("linux", "amd64", None)),
            "latest-amd64"
        );
        assert_eq!(
            platform_tag("v1", &Platform::new("linux", "arm", Some("v7"))),
            "v1-arm-v7"
        );
    }
}
