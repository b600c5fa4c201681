//! `cargo krust index create`: one multi-platform index made from images
//! already in registries — typically one per architecture, each built
//! where it is native (`--platform linux/arm64` on an arm64 runner) — with
//! nothing rebuilt and no layer downloaded.
//!
//! Each source is an index (its platform entries are taken as they are) or
//! an image manifest (its platform read from its config). The entries keep
//! their digests: a child in another repository of the same registry is
//! mounted blob by blob and its manifest pushed byte for byte; one in
//! another registry is copied through the local blob store. Referrers of
//! the children (SBOMs, provenance, signatures) stay reachable when the
//! sources are in the target's repository, as in the documented recipe;
//! they are not copied from other repositories. The index lists the entries
//! in the order of the sources, so merging the same sources again gives
//! the same digest.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use oci_client::Reference;
use serde_json::{Value, json};

use crate::base::documents::{self, Top};
use crate::image_name::{ImageName, parse_reference, validate_tag};
use crate::oci::{Blob, BlobSource, MEDIA_TYPE_OCI_INDEX};
use crate::platform::Platform;
use crate::progress;
use crate::publish::download;
use crate::registry::{RegistryClient, Timeouts, printable};
use crate::store::BlobStore;

/// What `index create` was asked for.
pub struct Request {
    /// `REPO/NAME[:TAG]`: where the index goes (tag `latest` by default).
    pub target: String,
    /// Extra tags for the index.
    pub tags: Vec<String>,
    /// The images or indexes to merge, in order.
    pub sources: Vec<String>,
    pub insecure: Vec<String>,
    pub timeouts: Timeouts,
}

/// One platform entry of the new index, and where its manifest is.
struct Entry {
    platform: Platform,
    /// The descriptor as the source gave it (annotations kept), with its
    /// platform.
    descriptor: Value,
    digest: String,
    /// The source reference it came from, for messages.
    from: String,
    repository: Reference,
}

/// Merges the sources into one index under the target's tags; returns
/// `REPO/NAME@sha256:…` of the index.
pub async fn create(request: &Request) -> Result<String> {
    let (target, tags) = target_and_tags(&request.target, &request.tags)?;
    if request.sources.is_empty() {
        bail!(
            "no images to merge: name each one after the target, e.g. `cargo krust index create REPO/app:v1 REPO/app:v1-amd64 REPO/app:v1-arm64`"
        );
    }
    let sources: Vec<Reference> = request
        .sources
        .iter()
        .map(|source| {
            parse_reference(source).with_context(|| format!("invalid source image `{source}`"))
        })
        .collect::<Result<_>>()?;
    let registries: Vec<&str> = std::iter::once(target.registry())
        .chain(sources.iter().map(Reference::resolve_registry))
        .collect();
    let client = Arc::new(RegistryClient::new(
        &request.insecure,
        registries,
        request.timeouts,
    )?);

    let mut entries: Vec<Entry> = Vec::new();
    let mut annotations: Option<BTreeMap<String, String>> = None;
    for (source, text) in sources.iter().zip(&request.sources) {
        let (found, source_annotations) = entries_of(&client, source, text).await?;
        annotations = Some(match annotations {
            None => source_annotations,
            Some(mut common) => {
                common.retain(|key, value| source_annotations.get(key) == Some(value));
                common
            }
        });
        for entry in found {
            if let Some(earlier) = entries.iter().find(|e| e.platform == entry.platform) {
                bail!(
                    "platform {} is given twice: by {} and by {}; name each platform's image once",
                    entry.platform,
                    printable(&earlier.from),
                    printable(&entry.from)
                );
            }
            entries.push(entry);
        }
    }

    // Blobs copied from another registry pass through a store of this run.
    let staging = tempfile::Builder::new()
        .prefix("krust-index")
        .tempdir()
        .context("cannot create a temporary directory for copied blobs")?;
    let store = BlobStore::open(staging.path())?;
    for entry in &entries {
        bring_into(&client, &store, &target, entry).await?;
    }

    let manifests: Vec<Value> = entries
        .iter()
        .map(|entry| entry.descriptor.clone())
        .collect();
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_INDEX,
        "manifests": manifests,
    });
    if let Some(annotations) = annotations.filter(|a| !a.is_empty()) {
        index["annotations"] = json!(annotations);
    }
    let index = Blob::from_json(MEDIA_TYPE_OCI_INDEX, &index);
    let bytes = index
        .bytes()
        .cloned()
        .context("the index bytes are not in memory")?;
    for tag in &tags {
        client
            .push_manifest(&target.with_tag(tag), bytes.clone(), &index.media_type)
            .await
            .with_context(|| format!("cannot push the index to {target}:{tag}"))?;
    }
    let platforms: Vec<String> = entries.iter().map(|e| e.platform.to_string()).collect();
    progress::status(
        "Published",
        format!("{target}@{} ({})", index.digest, platforms.join(", ")),
    );
    Ok(format!("{target}@{}", index.digest))
}

/// The target's name and the tags to push the index under.
fn target_and_tags(target: &str, extra: &[String]) -> Result<(ImageName, Vec<String>)> {
    let reference = parse_reference(target)
        .with_context(|| format!("invalid target `{target}`: use REPO/NAME[:TAG]"))?;
    if reference.digest().is_some() {
        bail!("invalid target `{target}`: a digest cannot be pushed to; use REPO/NAME[:TAG]");
    }
    let name = ImageName::parse(&format!(
        "{}/{}",
        reference.resolve_registry(),
        reference.repository()
    ))?;
    let mut tags = vec![reference.tag().unwrap_or("latest").to_string()];
    for tag in extra.iter().flat_map(|t| t.split(',')).map(str::trim) {
        if tag.is_empty() {
            continue;
        }
        validate_tag(tag).context("--tag")?;
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    Ok((name, tags))
}

/// The platform entries of one source, and its index annotations.
async fn entries_of(
    client: &RegistryClient,
    source: &Reference,
    text: &str,
) -> Result<(Vec<Entry>, BTreeMap<String, String>)> {
    let pulled = client.pull_manifest(source).await?;
    let (_, top) = documents::parse_top(&pulled.bytes)
        .with_context(|| format!("source image {}", printable(text)))?;
    let repository = Reference::with_digest(
        source.resolve_registry().to_string(),
        source.repository().to_string(),
        pulled.digest.clone(),
    );
    match top {
        Top::Index(index_entries) => {
            let entries = index_entries
                .into_iter()
                .map(|entry| Entry {
                    platform: entry.platform,
                    descriptor: entry.listed,
                    digest: entry.manifest.digest,
                    from: text.to_string(),
                    repository: repository.clone(),
                })
                .collect();
            let value: Value = serde_json::from_slice(&pulled.bytes)
                .with_context(|| format!("source image {}: not JSON", printable(text)))?;
            Ok((entries, string_map(value.get("annotations"))))
        }
        Top::Manifest(manifest) => {
            let config = client
                .pull_small_blob(&repository, &manifest.config.digest, manifest.config.size)
                .await?;
            let config = documents::parse_config(&config)
                .with_context(|| format!("source image {}", printable(text)))?;
            let entry = Entry {
                descriptor: json!({
                    "mediaType": pulled.media_type,
                    "digest": pulled.digest,
                    "size": pulled.bytes.len(),
                    "platform": config.platform.to_json(),
                }),
                platform: config.platform,
                digest: pulled.digest.clone(),
                from: text.to_string(),
                repository,
            };
            Ok((vec![entry], BTreeMap::new()))
        }
    }
}

/// A JSON object of strings as a map (anything else: empty).
fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|fields| {
            fields
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Makes sure the target's repository holds the entry's manifest and its
/// blobs, under the same digest.
async fn bring_into(
    client: &RegistryClient,
    store: &BlobStore,
    target: &ImageName,
    entry: &Entry,
) -> Result<()> {
    let source = &entry.repository;
    if source.resolve_registry() == target.registry() && source.repository() == target.repository()
    {
        return Ok(());
    }
    let pulled = client
        .pull_manifest(&Reference::with_digest(
            source.resolve_registry().to_string(),
            source.repository().to_string(),
            entry.digest.clone(),
        ))
        .await?;
    let manifest = documents::parse_manifest(&pulled.bytes)
        .with_context(|| format!("the {} image of {}", entry.platform, printable(&entry.from)))?;
    let same_registry = source.resolve_registry() == target.registry();
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let into = target.with_digest(&blob.digest);
        if client.blob_exists(&into, &blob.digest).await? {
            continue;
        }
        let from = Reference::with_digest(
            source.resolve_registry().to_string(),
            source.repository().to_string(),
            blob.digest.clone(),
        );
        if same_registry && client.mount_blob(&into, &from, &blob.digest).await? {
            continue;
        }
        let remote = Blob {
            media_type: blob.media_type.clone(),
            digest: blob.digest.clone(),
            size: blob.size,
            source: BlobSource::Remote {
                registry: source.resolve_registry().to_string(),
                repository: source.repository().to_string(),
            },
        };
        let path = download(client, store, &remote).await?;
        client
            .push_blob_file(&into, &blob.digest, blob.size, &path)
            .await?;
    }
    client
        .push_manifest(
            &target.with_digest(&entry.digest),
            pulled.bytes.clone(),
            &pulled.media_type,
        )
        .await
        .with_context(|| format!("cannot copy the {} image into {target}", entry.platform))
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_names_its_tags_and_refuses_a_digest() {
        let (name, tags) =
            target_and_tags("localhost:5000/app", &["v1,v2".into(), "v1".into()]).unwrap();
        assert_eq!(name.to_string(), "localhost:5000/app");
        assert_eq!(tags, ["latest", "v1", "v2"]);
        let (_, tags) = target_and_tags("localhost:5000/app:v3", &[]).unwrap();
        assert_eq!(tags, ["v3"]);
        let digest = format!("localhost:5000/app@sha256:{}", "a".repeat(64));
        let err = target_and_tags(&digest, &[]).unwrap_err();
        assert!(format!("{err:#}").contains("a digest cannot be pushed to"));
        assert!(target_and_tags("localhost:5000/app", &["bad tag".into()]).is_err());
    }

    #[test]
    fn annotations_read_only_strings() {
        let map = string_map(Some(&json!({"a": "1", "b": 2})));
        assert_eq!(map, BTreeMap::from([("a".to_string(), "1".to_string())]));
        assert!(string_map(None).is_empty());
    }
}
