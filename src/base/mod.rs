//! Base images: resolving the configured reference to an index (or a single
//! manifest), choosing platforms from it, and fetching the per-platform
//! manifest and config as raw JSON (every field kept), each checked by
//! `documents.rs` before it is used (sizes, digests, platforms, layers).
//! Documents are cached in the blob store by digest, so a tag costs one HEAD
//! request per run (a digest reference none), and `--offline` resolves tags
//! from the last digest seen. Cached documents are hashed again when read
//! (they are small): a damaged one is fetched anew, or, offline, an error. Base layers are never downloaded here: they
//! stay remote descriptors until a sink needs their bytes.

pub mod documents;

use anyhow::{Context, Result, bail};
use oci_client::Reference;
use serde_json::Value;

use crate::image_name::parse_reference;
use crate::platform::Platform;
use crate::progress;
use crate::registry::{RegistryClient, printable, verify_digest};
use crate::store::BlobStore;
use documents::{Config, Descriptor, Manifest, Top, shown_platform};

/// A resolved base image.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The reference as configured; it becomes the base.name annotation.
    pub configured: String,
    pub reference: Reference,
    /// Digest of the index, or of the manifest for a single-platform base.
    pub digest: String,
    pub entries: Vec<BaseEntry>,
    /// Only the local cache may be used (`--offline`).
    offline: bool,
}

/// One platform of a base image.
#[derive(Debug, Clone)]
pub struct BaseEntry {
    pub platform: Platform,
    /// The index entry's `platform` object kept whole (os.version, features…).
    pub platform_json: Value,
    pub manifest_digest: String,
    /// The manifest's descriptor, as the index gave it.
    manifest: Descriptor,
}

/// The manifest and config of one platform of a base image.
#[derive(Debug, Clone)]
pub struct BasePlatformImage {
    pub manifest_digest: String,
    pub manifest: Value,
    pub config: Value,
}

impl BasePlatformImage {
    /// The base's layer descriptors, as they appear in its manifest (each
    /// checked when the manifest was read).
    pub fn layers(&self) -> Vec<Value> {
        self.manifest
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

impl BaseImage {
    /// Resolves the configured reference: one HEAD for a tag, nothing for a
    /// digest, and the cache alone when `offline`.
    pub async fn fetch(
        client: &RegistryClient,
        store: &BlobStore,
        configured: &str,
        offline: bool,
    ) -> Result<BaseImage> {
        let reference = parse_reference(configured)?;
        let documents = Documents {
            client,
            store,
            reference: &reference,
            configured,
            offline,
        };
        let tag_key = crate::oci::sha256_digest(reference.whole().as_bytes());
        let tag_key = tag_key.trim_start_matches("sha256:");
        let digest = match reference.digest() {
            Some(digest) => digest.to_string(),
            None if offline => store
                .read_record("tags", tag_key)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .filter(|digest| crate::oci::digest_hex(digest).is_some())
                .with_context(|| {
                    format!(
                        "base image {configured} is not in the cache, and --offline forbids looking it up: run once without --offline"
                    )
                })?,
            None => client
                .manifest_digest(&reference)
                .await
                .with_context(|| format!("cannot resolve base image {configured}"))?
                .with_context(|| format!("base image {configured} does not exist"))?,
        };
        let bytes = documents.manifest(&digest, None, "manifest").await?;
        if reference.digest().is_none() {
            store.write_record("tags", tag_key, digest.as_bytes())?;
        }
        let (media_type, top) =
            documents::parse_top(&bytes).with_context(|| format!("base image {configured}"))?;
        let entries = match top {
            Top::Index(entries) => entries
                .into_iter()
                .map(|entry| BaseEntry {
                    manifest_digest: entry.manifest.digest.clone(),
                    platform: entry.platform,
                    platform_json: entry.platform_json,
                    manifest: entry.manifest,
                })
                .collect(),
            Top::Manifest(manifest) => {
                let config = documents.config(&manifest).await?;
                vec![BaseEntry {
                    platform_json: config.platform.to_json(),
                    platform: config.platform,
                    manifest_digest: digest.clone(),
                    manifest: Descriptor {
                        media_type,
                        digest: digest.clone(),
                        size: bytes.len() as u64,
                    },
                }]
            }
        };
        Ok(BaseImage {
            configured: configured.to_string(),
            reference,
            digest,
            entries,
            offline,
        })
    }

    /// The platforms cargo-krust can build on this base, in index order.
    pub fn platforms(&self) -> Vec<Platform> {
        self.entries
            .iter()
            .map(|e| e.platform.clone())
            .filter(|p| p.rust_target().is_some())
            .collect()
    }

    pub fn entry(&self, platform: &Platform) -> Result<&BaseEntry> {
        self.entries
            .iter()
            .find(|e| &e.platform == platform)
            .with_context(|| {
                format!(
                    "base image {} has no {platform} image (it has: {}); choose platforms it has with --platform, or another base image",
                    self.configured,
                    printable(
                        &self
                            .entries
                            .iter()
                            .map(|e| e.platform.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                )
            })
    }

    /// The manifest and config of one platform, from the cache when
    /// possible, checked to make the image the index promised.
    pub async fn platform_image(
        &self,
        client: &RegistryClient,
        store: &BlobStore,
        platform: &Platform,
    ) -> Result<BasePlatformImage> {
        let configured = &self.configured;
        let documents = Documents {
            client,
            store,
            reference: &self.reference,
            configured,
            offline: self.offline,
        };
        let entry = &self.entry(platform)?.manifest;
        let platform_shown = shown_platform(platform);
        if !documents::is_image_manifest(&entry.media_type) {
            bail!(
                "base image {configured}: its {platform_shown} entry has media type {}, which is no image manifest cargo-krust can build on",
                printable(&entry.media_type)
            );
        }
        let what = format!("{platform_shown} manifest");
        let bytes = documents
            .manifest(&entry.digest, Some(entry.size), &what)
            .await?;
        let manifest = documents::parse_manifest(&bytes)
            .with_context(|| format!("base image {configured} ({platform_shown})"))?;
        let config = documents.config(&manifest).await?;
        documents::check_image(&manifest, &config, platform)
            .with_context(|| format!("base image {configured}"))?;
        Ok(BasePlatformImage {
            manifest_digest: entry.digest.clone(),
            manifest: manifest.value,
            config: config.value,
        })
    }
}

/// Fetches a base image's documents by digest, through the blob store.
struct Documents<'a> {
    client: &'a RegistryClient,
    store: &'a BlobStore,
    reference: &'a Reference,
    configured: &'a str,
    offline: bool,
}

impl Documents<'_> {
    /// A manifest or index by digest, of `size` bytes when its descriptor
    /// says so.
    async fn manifest(&self, digest: &str, size: Option<u64>, what: &str) -> Result<Vec<u8>> {
        let configured = self.configured;
        let bytes = match self.cached(digest, what)? {
            Some(bytes) => bytes,
            None => {
                let pulled = self
                    .client
                    .pull_manifest(&self.reference.clone_with_digest(digest.to_string()))
                    .await
                    .with_context(|| {
                        format!("cannot fetch the {what} of base image {configured}")
                    })?;
                verify_digest(&pulled.bytes, digest, what)?;
                self.store.write(digest, &pulled.bytes)?;
                pulled.bytes.to_vec()
            }
        };
        if let Some(size) = size.filter(|size| *size != bytes.len() as u64) {
            bail!(
                "base image {configured}: its {what} ({digest}) is {} bytes, but its descriptor says {size}",
                bytes.len()
            );
        }
        Ok(bytes)
    }

    /// The config a manifest names, checked against its descriptor.
    async fn config(&self, manifest: &Manifest) -> Result<Config> {
        let configured = self.configured;
        let Descriptor { digest, size, .. } = &manifest.config;
        let bytes = match self.cached(digest, "config")? {
            Some(bytes) => bytes,
            None => {
                let bytes = self
                    .client
                    .pull_small_blob(self.reference, digest, *size)
                    .await
                    .with_context(|| {
                        format!("cannot fetch the config of base image {configured}")
                    })?;
                self.store.write(digest, &bytes)?;
                bytes.to_vec()
            }
        };
        if bytes.len() as u64 != *size {
            bail!(
                "base image {configured}: its config ({digest}) is {} bytes, but its descriptor says {size}",
                bytes.len()
            );
        }
        documents::parse_config(&bytes).with_context(|| format!("base image {configured}"))
    }

    /// The stored bytes if they still hash to `digest`; `None` when they
    /// must be fetched (an error offline). A damaged copy is deleted, so
    /// that the fetched one takes its place.
    fn cached(&self, digest: &str, what: &str) -> Result<Option<Vec<u8>>> {
        let configured = self.configured;
        let Some(bytes) = self.store.read(digest) else {
            if self.offline {
                bail!(
                    "the {what} of base image {configured} ({digest}) is not in the cache, and --offline forbids fetching it: run once without --offline"
                );
            }
            return Ok(None);
        };
        if verify_digest(&bytes, digest, what).is_ok() {
            return Ok(Some(bytes));
        }
        let path = self.store.path(digest)?;
        if self.offline {
            bail!(
                "the cached {what} of base image {configured} ({}) is damaged: its bytes no longer hash to {digest}, and --offline forbids fetching it again; run once without --offline (or `cargo clean`)",
                path.display()
            );
        }
        progress::verbose(format!(
            "the cached {what} of base image {configured} ({}) is damaged; fetching it again",
            path.display()
        ));
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("cannot remove the damaged {}", path.display()))
            }
            _ => Ok(None),
        }
    }
}
