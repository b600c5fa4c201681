//! Base images: resolving the configured reference to an index (or a single
//! manifest), choosing platforms from it, and fetching the per-platform
//! manifest and config as raw JSON (every field kept). Documents are cached
//! in the blob store by digest, so a tag costs one HEAD request per run (a
//! digest reference none), and `--offline` resolves tags from the last
//! digest seen. Base layers are never downloaded here: they stay remote
//! descriptors until a sink needs their bytes.

use anyhow::{Context, Result, bail};
use oci_client::Reference;
use serde_json::Value;

use crate::image_name::parse_reference;
use crate::oci::{
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};
use crate::platform::Platform;
use crate::registry::{RegistryClient, verify_digest};
use crate::store::BlobStore;

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
}

/// The manifest and config of one platform of a base image.
#[derive(Debug, Clone)]
pub struct BasePlatformImage {
    pub manifest_digest: String,
    pub manifest: Value,
    pub config: Value,
}

impl BasePlatformImage {
    /// The base's layer descriptors, as they appear in its manifest.
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
        let bytes = documents.manifest(&digest, "manifest").await?;
        if reference.digest().is_none() {
            store.write_record("tags", tag_key, digest.as_bytes())?;
        }
        let media_type = crate::oci::manifest_media_type(&bytes)
            .with_context(|| format!("base image {configured}: cannot read its manifest"))?;
        let document: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("base image {configured}: manifest is not JSON"))?;

        let entries = match media_type.as_str() {
            MEDIA_TYPE_OCI_INDEX | MEDIA_TYPE_DOCKER_MANIFEST_LIST => {
                index_entries(&document, configured)?
            }
            MEDIA_TYPE_OCI_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => {
                let config = documents.config(&document).await?;
                let platform = Platform::from_json(&config).with_context(|| {
                    format!("base image {configured}: its config names no os/architecture")
                })?;
                vec![BaseEntry {
                    platform_json: platform.to_json(),
                    platform,
                    manifest_digest: digest.clone(),
                }]
            }
            other => bail!("base image {configured} has unsupported media type {other}"),
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
                    self.entries
                        .iter()
                        .map(|e| e.platform.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// The manifest and config of one platform, from the cache when possible.
    pub async fn platform_image(
        &self,
        client: &RegistryClient,
        store: &BlobStore,
        platform: &Platform,
    ) -> Result<BasePlatformImage> {
        let documents = Documents {
            client,
            store,
            reference: &self.reference,
            configured: &self.configured,
            offline: self.offline,
        };
        let digest = &self.entry(platform)?.manifest_digest;
        let bytes = documents
            .manifest(digest, &format!("{platform} manifest"))
            .await?;
        let manifest: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "base image {}: {platform} manifest is not JSON",
                self.configured
            )
        })?;
        if manifest.get("manifests").is_some() {
            bail!(
                "base image {} nests an index inside its index for {platform}; cargo-krust needs one image manifest per platform",
                self.configured
            );
        }
        let config = documents.config(&manifest).await?;
        Ok(BasePlatformImage {
            manifest_digest: digest.clone(),
            manifest,
            config,
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
    /// A manifest or index by digest.
    async fn manifest(&self, digest: &str, what: &str) -> Result<Vec<u8>> {
        if let Some(bytes) = self.cached(digest, what)? {
            return Ok(bytes);
        }
        let pulled = self
            .client
            .pull_manifest(&self.reference.clone_with_digest(digest.to_string()))
            .await
            .with_context(|| {
                format!("cannot fetch the {what} of base image {}", self.configured)
            })?;
        verify_digest(&pulled.bytes, digest, what)?;
        self.store.write(digest, &pulled.bytes)?;
        Ok(pulled.bytes.to_vec())
    }

    /// The config a manifest names, parsed.
    async fn config(&self, manifest: &Value) -> Result<Value> {
        let configured = self.configured;
        let digest = manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .with_context(|| format!("base image {configured}: manifest has no config"))?;
        let bytes = match self.cached(digest, "config")? {
            Some(bytes) => bytes,
            None => {
                let bytes = self
                    .client
                    .pull_small_blob(self.reference, digest)
                    .await
                    .with_context(|| {
                        format!("cannot fetch the config of base image {configured}")
                    })?;
                self.store.write(digest, &bytes)?;
                bytes.to_vec()
            }
        };
        serde_json::from_slice(&bytes)
            .with_context(|| format!("base image {configured}: config is not JSON"))
    }

    /// The stored bytes, `None` when they must be fetched (an error offline).
    fn cached(&self, digest: &str, what: &str) -> Result<Option<Vec<u8>>> {
        match self.store.read(digest) {
            Some(bytes) => Ok(Some(bytes)),
            None if self.offline => bail!(
                "the {what} of base image {} ({digest}) is not in the cache, and --offline forbids fetching it: run once without --offline",
                self.configured
            ),
            None => Ok(None),
        }
    }
}

/// The platform entries of a base index; attestations (`unknown/unknown`) are
/// skipped, a nested index is an error.
fn index_entries(index: &Value, configured: &str) -> Result<Vec<BaseEntry>> {
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .with_context(|| format!("base image {configured}: index has no manifests"))?;
    let mut entries = Vec::new();
    for entry in manifests {
        let media_type = entry.get("mediaType").and_then(Value::as_str).unwrap_or("");
        let Some(platform_json) = entry.get("platform") else {
            continue;
        };
        let Some(platform) = Platform::from_json(platform_json) else {
            continue;
        };
        if platform.os == "unknown" {
            continue;
        }
        if media_type == MEDIA_TYPE_OCI_INDEX || media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST {
            bail!(
                "base image {configured} nests an index for {platform}; cargo-krust needs one image manifest per platform"
            );
        }
        let digest = entry
            .get("digest")
            .and_then(Value::as_str)
            .with_context(|| format!("base image {configured}: index entry without digest"))?;
        entries.push(BaseEntry {
            platform,
            platform_json: platform_json.clone(),
            manifest_digest: digest.to_string(),
        });
    }
    Ok(entries)
}
