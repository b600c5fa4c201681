//! Base images: resolving the configured reference to an index (or a single
//! manifest), choosing platforms from it, and fetching the per-platform
//! manifest and config as raw JSON (every field kept). Documents fetched by
//! digest are cached in the blob store, so only the tag lookup needs the
//! network on later runs. Base layers are never downloaded here: they stay
//! remote descriptors until a sink needs their bytes.

use anyhow::{Context, Result, bail};
use oci_client::Reference;
use serde_json::Value;

use crate::image_name::parse_reference;
use crate::oci::{
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};
use crate::platform::Platform;
use crate::publish::registry::{RegistryClient, verify_digest};
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
    /// Resolves the configured reference (one request for the tag).
    pub async fn fetch(
        client: &RegistryClient,
        store: &BlobStore,
        configured: &str,
    ) -> Result<BaseImage> {
        let reference = parse_reference(configured)?;
        let top = client
            .pull_manifest(&reference)
            .await
            .with_context(|| format!("cannot resolve base image {configured}"))?;
        let document: Value = serde_json::from_slice(&top.bytes)
            .with_context(|| format!("base image {configured}: manifest is not JSON"))?;
        store.write(&top.digest, &top.bytes)?;

        let entries = match top.media_type.as_str() {
            MEDIA_TYPE_OCI_INDEX | MEDIA_TYPE_DOCKER_MANIFEST_LIST => {
                index_entries(&document, configured)?
            }
            MEDIA_TYPE_OCI_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => {
                let config = fetch_config(client, store, &reference, &document, configured).await?;
                let platform = Platform::from_json(&config).with_context(|| {
                    format!("base image {configured}: its config names no os/architecture")
                })?;
                vec![BaseEntry {
                    platform_json: platform.to_json(),
                    platform,
                    manifest_digest: top.digest.clone(),
                }]
            }
            other => bail!("base image {configured} has unsupported media type {other}"),
        };
        Ok(BaseImage {
            configured: configured.to_string(),
            reference,
            digest: top.digest,
            entries,
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
        let entry = self.entry(platform)?;
        let digest = &entry.manifest_digest;
        let bytes = match store.read(digest) {
            Some(bytes) => bytes,
            None => {
                let pulled = client
                    .pull_manifest(&self.reference.clone_with_digest(digest.clone()))
                    .await
                    .with_context(|| {
                        format!(
                            "cannot fetch the {platform} manifest of base image {}",
                            self.configured
                        )
                    })?;
                verify_digest(&pulled.bytes, digest, "base manifest")?;
                store.write(digest, &pulled.bytes)?;
                pulled.bytes.to_vec()
            }
        };
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
        let config =
            fetch_config(client, store, &self.reference, &manifest, &self.configured).await?;
        Ok(BasePlatformImage {
            manifest_digest: digest.clone(),
            manifest,
            config,
        })
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

async fn fetch_config(
    client: &RegistryClient,
    store: &BlobStore,
    reference: &Reference,
    manifest: &Value,
    configured: &str,
) -> Result<Value> {
    let digest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .with_context(|| format!("base image {configured}: manifest has no config"))?;
    let bytes = match store.read(digest) {
        Some(bytes) => bytes,
        None => {
            let bytes = client
                .pull_small_blob(reference, digest)
                .await
                .with_context(|| format!("cannot fetch the config of base image {configured}"))?;
            store.write(digest, &bytes)?;
            bytes.to_vec()
        }
    };
    serde_json::from_slice(&bytes)
        .with_context(|| format!("base image {configured}: config is not JSON"))
}
