//! Assembly: turns a built binary and a base image into the blobs and
//! documents of an image — deterministic layers, the edited config, one
//! manifest per platform and one index per bin (SPEC §5). Every document is
//! serialised once, canonically; its digest is that of those exact bytes.

pub mod config;
pub mod gzip;
pub mod layer;
pub mod referrer;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::base::{BaseImage, BasePlatformImage};
use crate::image_name::ImageName;
use crate::oci::{
    ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, Blob, BlobSource, MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST,
};
use crate::plan::ImageSettings;
use crate::platform::Platform;
use config::AddedLayer;
use layer::LayerBlob;

/// The image of one platform, ready to publish.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub platform: Platform,
    /// The `platform` object of the index entry.
    pub platform_json: Value,
    pub manifest: Blob,
    pub config: Blob,
    /// Base layers (remote) then the added layers (files), in order.
    pub layers: Vec<Blob>,
    /// Artifacts whose subject is this manifest (SBOM, provenance).
    pub referrers: Vec<referrer::Referrer>,
}

/// One image index (one bin, every platform), ready to publish.
#[derive(Debug, Clone)]
pub struct ImageIndex {
    pub name: ImageName,
    pub tags: Vec<String>,
    pub index: Blob,
    pub images: Vec<PlatformImage>,
}

impl ImageIndex {
    /// `REPO/NAME@sha256:…`, the line printed on stdout.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.index.digest)
    }

    /// The line printed for this image: [`reference`](Self::reference), or
    /// with `--tag-only` `REPO/NAME:TAG` naming its first tag (as ko does).
    pub fn printed_reference(&self, tag_only: bool) -> String {
        match self.tags.first() {
            Some(tag) if tag_only => format!("{}:{tag}", self.name),
            _ => self.reference(),
        }
    }
}

/// The base of one platform image, if any.
pub struct PlatformBase<'a> {
    pub image: &'a BaseImage,
    pub platform: &'a BasePlatformImage,
}

/// What one platform image is made of.
pub struct PlatformInput<'a> {
    pub platform: &'a Platform,
    pub base: Option<PlatformBase<'a>>,
    pub bin: &'a str,
    pub settings: &'a ImageSettings,
    /// The data layer (if configured) then the binary layer.
    pub added: Vec<(&'a LayerBlob, String)>,
    /// RFC 3339 timestamp for `created` and history.
    pub created: &'a str,
}

/// Builds config and manifest of one platform.
pub fn platform_image(input: PlatformInput) -> Result<PlatformImage> {
    let mut layers: Vec<Blob> = Vec::new();
    let mut layer_descriptors: Vec<Value> = Vec::new();
    if let Some(base) = &input.base {
        for descriptor in base.platform.layers() {
            layers.push(remote_blob(&descriptor, base.image)?);
            layer_descriptors.push(descriptor);
        }
    }
    for (layer, _) in &input.added {
        layers.push(layer.blob.clone());
        layer_descriptors.push(layer.blob.descriptor());
    }

    let added: Vec<AddedLayer> = input
        .added
        .iter()
        .map(|(layer, created_by)| AddedLayer {
            diff_id: &layer.diff_id,
            created_by: created_by.clone(),
        })
        .collect();
    let config_json = config::image_config(
        input.base.as_ref().map(|b| &b.platform.config),
        input.platform,
        input.bin,
        input.settings,
        &added,
        input.created,
    );
    let config = Blob::from_json(MEDIA_TYPE_OCI_CONFIG, &config_json);

    let annotations = annotations(
        input.settings,
        input.base.as_ref().map(|b| {
            (
                b.image.configured.as_str(),
                b.platform.manifest_digest.as_str(),
            )
        }),
    );
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layer_descriptors,
    });
    if !annotations.is_empty() {
        manifest["annotations"] = json!(annotations);
    }
    let platform_json = match &input.base {
        Some(base) => base.image.entry(input.platform)?.platform_json.clone(),
        None => input.platform.to_json(),
    };
    Ok(PlatformImage {
        platform: input.platform.clone(),
        platform_json,
        manifest: Blob::from_json(MEDIA_TYPE_OCI_MANIFEST, &manifest),
        config,
        layers,
        referrers: Vec::new(),
    })
}

/// Builds the index over the platform images, in the order given.
pub fn image_index(
    name: ImageName,
    tags: Vec<String>,
    base: Option<&BaseImage>,
    settings: &ImageSettings,
    images: Vec<PlatformImage>,
) -> ImageIndex {
    let manifests: Vec<Value> = images
        .iter()
        .map(|image| {
            let mut entry = image.manifest.descriptor();
            entry["platform"] = image.platform_json.clone();
            entry
        })
        .collect();
    let annotations = annotations(
        settings,
        base.map(|b| (b.configured.as_str(), b.digest.as_str())),
    );
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_INDEX,
        "manifests": manifests,
    });
    if !annotations.is_empty() {
        index["annotations"] = json!(annotations);
    }
    ImageIndex {
        name,
        tags,
        index: Blob::from_json(MEDIA_TYPE_OCI_INDEX, &index),
        images,
    }
}

/// Configured annotations plus the base name and digest.
fn annotations(settings: &ImageSettings, base: Option<(&str, &str)>) -> BTreeMap<String, String> {
    let mut annotations = settings.annotations.clone();
    if let Some((name, digest)) = base {
        annotations.insert(ANNOTATION_BASE_NAME.into(), name.to_string());
        annotations.insert(ANNOTATION_BASE_DIGEST.into(), digest.to_string());
    }
    annotations
}

fn remote_blob(descriptor: &Value, base: &BaseImage) -> Result<Blob> {
    let field = |name: &str| {
        descriptor.get(name).with_context(|| {
            format!(
                "base image {}: layer descriptor without {name}",
                base.configured
            )
        })
    };
    Ok(Blob {
        media_type: field("mediaType")?.as_str().unwrap_or_default().to_string(),
        digest: field("digest")?.as_str().unwrap_or_default().to_string(),
        size: field("size")?.as_u64().unwrap_or_default(),
        source: BlobSource::Remote {
            registry: base.reference.registry().to_string(),
            repository: base.reference.repository().to_string(),
        },
    })
}
