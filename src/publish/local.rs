//! The local engine sink: loads every built platform of every image into
//! podman (`--local`, repository `podman.local`; its containers storage, no
//! daemon needed) or into a Docker engine (repository `docker.local`, with
//! `docker load`). Both keep one platform per name, so an image goes in as:
//!
//! - its host's platform (the first one built when the host's is not) under
//!   `<name>:<tag>` — for podman its index, from which podman takes that
//!   platform, so that the printed `<name>@<index digest>` is what `podman
//!   run` accepts; Docker keeps no digest for a loaded image, so for Docker
//!   the printed reference is `<name>:<tag>`;
//! - each platform's manifest under `<name>:<tag>-<arch>[-<variant>]`.
//!
//! Each goes through an archive of its own in a temporary directory (one
//! image per archive): an OCI archive for podman, a docker-archive for
//! Docker (which every Docker engine loads, with or without the containerd
//! image store); the other tags are added with `tag`. Every engine process
//! is bounded by `--registry-timeout`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::future::LocalBoxFuture;

use super::{Archive, ArchiveFormat, Sink};
use crate::assemble::{ImageIndex, PlatformImage};
use crate::plan::LocalEngine;
use crate::platform::Platform;
use crate::progress;
use crate::registry::RegistryClient;
use crate::store::BlobStore;

/// What installs podman where it is missing.
pub(crate) const INSTALL_PODMAN: &str = "apt-get install podman";

/// Loads the run's images into a local engine.
pub struct LocalSink {
    engine: LocalEngine,
    /// Where blobs not in the local store come from (base layers).
    client: Arc<RegistryClient>,
    store: BlobStore,
    /// The bound on each engine process.
    timeout: Duration,
}

impl LocalEngine {
    fn program(self) -> &'static str {
        match self {
            LocalEngine::Podman => "podman",
            LocalEngine::Docker => "docker",
        }
    }

    /// The command that shows whether the engine works, for error messages.
    fn diagnosis(self) -> &'static str {
        match self {
            LocalEngine::Podman => "podman info",
            LocalEngine::Docker => "docker version",
        }
    }
}

impl LocalSink {
    pub fn new(
        engine: LocalEngine,
        client: Arc<RegistryClient>,
        store: BlobStore,
        timeout: Duration,
    ) -> LocalSink {
        LocalSink {
            engine,
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
        let main = if self.engine == LocalEngine::Podman
            && image.images.iter().any(|i| i.platform == host)
        {
            ImageIndex {
                tags: vec![first_tag.clone()],
                ..image.clone()
            }
        } else {
            // podman would find no platform of its own in the index.
            let chosen = image
                .images
                .iter()
                .find(|i| i.platform == host)
                .or(image.images.first())
                .with_context(|| format!("image {} has no platform", image.name))?;
            single_platform(image, chosen, first_tag.clone())
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
                self.engine_command(&["tag", &from, &to]).await?;
            }
        }
        let engine = self.engine.program();
        progress::status("Loaded", format!("{} into {engine}", image.reference()));
        Ok(())
    }

    /// Writes `image` (one index or manifest, one tag) as an archive the
    /// engine loads, and loads it.
    async fn load(&self, image: &ImageIndex, staging: &Path) -> Result<()> {
        let file = staging.join("image.tar");
        let (format, client, store) = (
            self.archive_format(),
            self.client.clone(),
            self.store.clone(),
        );
        Archive::new(&file, format, client, store)
            .write(std::slice::from_ref(image))
            .await?;
        self.engine_command(&["load", "-i", &file.display().to_string()])
            .await?;
        std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))
    }

    fn archive_format(&self) -> ArchiveFormat {
        match self.engine {
            LocalEngine::Podman => ArchiveFormat::Oci,
            LocalEngine::Docker => ArchiveFormat::Docker,
        }
    }

    /// Runs the engine's command with `args`, within the timeout; its
    /// output goes into the error when it fails.
    async fn engine_command(&self, args: &[&str]) -> Result<String> {
        let program = self.engine.program();
        let diagnosis = self.engine.diagnosis();
        let command = format!("{program} {}", args.join(" "));
        let child = tokio::process::Command::new(engine_path(self.engine)?)
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
                    "`{command}` did not finish within {}s (--registry-timeout); check `{diagnosis}`",
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
                "`{command}` failed ({}): {}; check that `{diagnosis}` works",
                output.status,
                said.replace('\n', " ")
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Docker is a client of an engine that may not answer: asked once,
    /// before anything is built, so a missing engine costs seconds.
    async fn check_engine(&self) -> Result<()> {
        if self.engine == LocalEngine::Docker {
            let version = self
                .engine_command(&["version", "--format", "{{.Server.Version}}"])
                .await
                .context(
                    "repository `docker.local` loads the images into a Docker engine, and none answers: start one (or set DOCKER_HOST), or load into podman with --local",
                )?;
            progress::verbose(format!("Docker engine {} answers", version.trim()));
        }
        Ok(())
    }
}

impl Sink for LocalSink {
    /// The engine's command must be there before anything is built.
    fn check(&self) -> Result<()> {
        engine_path(self.engine).map(drop)
    }

    fn check_reachable<'a>(&'a self) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(self.check_engine())
    }

    fn publish<'a>(&'a self, images: &'a [ImageIndex]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let staging = tempfile::Builder::new()
                .prefix("krust-local")
                .tempdir()
                .context("cannot create a temporary directory for the engine's archives")?;
            for image in images {
                self.load_image(image, staging.path())
                    .await
                    .with_context(|| {
                        format!("cannot load {} into {}", image.name, self.engine.program())
                    })?;
            }
            Ok(())
        })
    }
}

/// podman on PATH, or an error saying how to install it.
pub(crate) fn podman_path() -> Result<PathBuf> {
    engine_path(LocalEngine::Podman)
}

/// The engine's command on PATH, or an error saying how to get it.
fn engine_path(engine: LocalEngine) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(engine.program()))
        .find(|candidate| candidate.is_file())
        .with_context(|| match engine {
            LocalEngine::Podman => format!(
                "--local (or repository `podman.local`) loads the images with podman, which is not on PATH: install it with `{INSTALL_PODMAN}`"
            ),
            LocalEngine::Docker => "repository `docker.local` loads the images with `docker load`, and `docker` is not on PATH: install Docker, or load into podman with --local".to_string(),
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
