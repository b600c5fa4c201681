//! OCI building blocks shared by the pipeline stages: media types, blob
//! descriptors and where their bytes live, canonical JSON and sha256 digests.
//!
//! A [`Blob`] is a descriptor first; its bytes are either in memory (small JSON
//! documents), in a file of the local blob store, or still in a remote
//! repository (base layers, fetched only when a sink needs them).

use std::path::PathBuf;

use bytes::Bytes;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Manifest media types cargo-krust accepts when pulling a base image.
pub const ACCEPTED_MANIFEST_TYPES: &[&str] = &[
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    MEDIA_TYPE_OCI_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST,
];

pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation of a referrer's creation time (from the build's epoch).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// Where the bytes of a blob can be read from.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// Small documents (configs, manifests) held in memory.
    Memory(Bytes),
    /// A file, usually in the local blob store.
    File(PathBuf),
    /// A blob that exists in `repository` of `registry` and is mounted,
    /// copied or downloaded only when a sink needs it.
    Remote {
        registry: String,
        repository: String,
    },
}

/// A content-addressed blob: descriptor plus where its bytes are.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub source: BlobSource,
}

impl Blob {
    /// A blob whose bytes are held in memory; digest and size come from those bytes.
    pub fn from_bytes(media_type: &str, bytes: impl Into<Bytes>) -> Blob {
        let bytes = bytes.into();
        Blob {
            media_type: media_type.to_string(),
            digest: sha256_digest(&bytes),
            size: bytes.len() as u64,
            source: BlobSource::Memory(bytes),
        }
    }

    /// A JSON document serialised canonically, as a blob.
    pub fn from_json(media_type: &str, value: &Value) -> Blob {
        Blob::from_bytes(media_type, canonical_json(value))
    }

    /// The OCI descriptor of this blob.
    pub fn descriptor(&self) -> Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        })
    }

    /// The bytes of an in-memory blob.
    pub fn bytes(&self) -> Option<&Bytes> {
        match &self.source {
            BlobSource::Memory(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest, if the digest is well-formed.
pub fn digest_hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The tag listing the referrers of `subject` where a registry has no
/// referrers API (OCI distribution's fallback): `sha256-<hex>`. cosign's
/// signature tags add `.sig` to it.
pub fn fallback_tag(subject: &str) -> anyhow::Result<String> {
    let hex = digest_hex(subject).ok_or_else(|| anyhow::anyhow!("malformed digest `{subject}`"))?;
    Ok(format!("sha256-{hex}"))
}

/// Serialises JSON canonically: object keys sorted at every depth, no
/// insignificant white space. The same value always gives the same bytes,
/// whatever map ordering serde_json was compiled with.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for key in keys {
                    out.insert(key.clone(), sorted(&map[key]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // Serialising a `Value` cannot fail: its keys are strings.
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

/// The media type of a manifest document: its `mediaType` field, or its
/// shape for the older documents that leave the field out.
pub fn manifest_media_type(bytes: &[u8]) -> anyhow::Result<String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|err| anyhow::anyhow!("it is not JSON ({err})"))?;
    if let Some(media_type) = value.get("mediaType").and_then(Value::as_str) {
        return Ok(media_type.to_string());
    }
    if value.get("manifests").is_some() {
        Ok(MEDIA_TYPE_OCI_INDEX.to_string())
    } else if value.get("layers").is_some() {
        Ok(MEDIA_TYPE_OCI_MANIFEST.to_string())
    } else {
        anyhow::bail!("it is neither an image manifest nor an index")
    }
}

/// How the layers cargo-krust adds are compressed (`layer-compression`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LayerCompression {
    #[default]
    Gzip,
    /// For registries and runtimes that take zstd layers (containerd 1.5+,
    /// CRI-O, podman); always the OCI media type.
    Zstd,
}

impl LayerCompression {
    pub const NAMES: &[&str] = &["gzip", "zstd"];

    pub fn parse(name: &str) -> Option<LayerCompression> {
        match name.trim().to_ascii_lowercase().as_str() {
            "gzip" => Some(LayerCompression::Gzip),
            "zstd" => Some(LayerCompression::Zstd),
            _ => None,
        }
    }

    /// The media type of an added layer: zstd is always OCI; gzip keeps the
    /// media type family of the base's layers (SPEC §5).
    pub fn media_type(self, base_layer_media_type: Option<&str>) -> &'static str {
        match (self, base_layer_media_type) {
            (LayerCompression::Zstd, _) => MEDIA_TYPE_OCI_LAYER_ZSTD,
            (LayerCompression::Gzip, Some(base)) if base.starts_with("application/vnd.docker.") => {
                MEDIA_TYPE_DOCKER_LAYER_GZIP
            }
            (LayerCompression::Gzip, _) => MEDIA_TYPE_OCI_LAYER_GZIP,
        }
    }

    /// The compression a layer media type implies.
    pub fn of_media_type(media_type: &str) -> LayerCompression {
        if media_type.ends_with("zstd") {
            LayerCompression::Zstd
        } else {
            LayerCompression::Gzip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": "x"}});
        assert_eq!(
            String::from_utf8(canonical_json(&value)).unwrap(),
            r#"{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(digest_hex(&sha256_digest(b"x")).is_some());
        assert!(digest_hex("sha256:abc").is_none());
    }
}
