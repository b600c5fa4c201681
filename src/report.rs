//! The `--report FILE` document: what a build produced, as one JSON
//! document (schema `schema/report-v1.json`). The pipeline notes what only
//! it knows (stage boundaries, each binary, layers taken from the cache)
//! in a [`Recorder`]; [`document`] joins that with the assembled indexes.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::assemble::ImageIndex;
use crate::oci::{BlobSource, sha256_digest};
use crate::publish::{BlobKey, BlobOutcome};

/// The `$schema` id of the document, versioned with its shape.
pub const SCHEMA_ID: &str = "https://cargo-krust.dev/schema/report-v1.json";

/// What the pipeline observed while it ran. Shared by reference across its
/// tasks; every note is cheap unless a report was asked for.
pub struct Recorder {
    enabled: bool,
    notes: Mutex<Notes>,
}

#[derive(Default)]
struct Notes {
    stage_started: Option<Instant>,
    timings: Vec<(&'static str, u128)>,
    /// (image name, platform) → (size, sha256 digest) of the binary.
    binaries: HashMap<(String, String), (u64, String)>,
    /// Layer digests this run took from the local cache.
    cached_layers: BTreeSet<String>,
    /// How each blob got into its registry repository.
    pushed: HashMap<BlobKey, BlobOutcome>,
    /// The pushed manifests were signed (`--sign-key`).
    signed: bool,
}

impl Recorder {
    /// A recorder that starts timing the first stage now; a disabled one
    /// notes nothing (no binary is hashed for a report nobody reads).
    pub fn new(enabled: bool) -> Recorder {
        Recorder {
            enabled,
            notes: Mutex::new(Notes {
                stage_started: Some(Instant::now()),
                ..Notes::default()
            }),
        }
    }

    fn notes(&self) -> std::sync::MutexGuard<'_, Notes> {
        // A panicked holder cannot leave the notes inconsistent: each
        // note is one insertion.
        self.notes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stage `stage` ends now and the next one begins.
    pub fn stage_done(&self, stage: &'static str) {
        let mut notes = self.notes();
        let now = Instant::now();
        let started = notes.stage_started.replace(now).unwrap_or(now);
        notes
            .timings
            .push((stage, now.duration_since(started).as_millis()));
    }

    /// The binary of `image` for `platform` is the file `executable`.
    pub fn binary(&self, image: &str, platform: &str, executable: &Path) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let bytes = std::fs::read(executable)
            .with_context(|| format!("cannot read {} for the report", executable.display()))?;
        let binary = (bytes.len() as u64, sha256_digest(&bytes));
        self.notes()
            .binaries
            .insert((image.to_string(), platform.to_string()), binary);
        Ok(())
    }

    /// The layer `digest` was taken from the local cache, not written.
    pub fn cached_layer(&self, digest: &str) {
        if self.enabled {
            self.notes().cached_layers.insert(digest.to_string());
        }
    }
}

impl Recorder {
    /// How each blob got into its repository (the registry sink's record).
    pub fn pushed_blobs(&self, outcomes: HashMap<BlobKey, BlobOutcome>) {
        if self.enabled {
            self.notes().pushed = outcomes;
        }
    }

    /// Every index and platform manifest pushed was signed.
    pub fn signed(&self) {
        self.notes().signed = true;
    }
}

/// The report of a run that produced `indexes`, printed as `printed`.
pub fn document(indexes: &[ImageIndex], printed: &[String], recorder: &Recorder) -> Value {
    let notes = recorder.notes();
    let images: Vec<Value> = indexes
        .iter()
        .zip(printed)
        .map(|(index, reference)| image(index, reference, &notes))
        .collect();
    let timings: serde_json::Map<String, Value> = notes
        .timings
        .iter()
        .map(|(stage, ms)| ((*stage).to_string(), json!(ms)))
        .collect();
    json!({
        "$schema": SCHEMA_ID,
        "schemaVersion": 1,
        "images": images,
        "timingsMs": timings,
    })
}

fn image(index: &ImageIndex, reference: &str, notes: &Notes) -> Value {
    let name = index.name.to_string();
    let platforms: Vec<Value> = index
        .images
        .iter()
        .map(|image| {
            let platform = image.platform.to_string();
            let binary = notes
                .binaries
                .get(&(name.clone(), platform.clone()))
                .map_or(
                    Value::Null,
                    |(size, digest)| json!({"size": size, "sha256": digest}),
                );
            let layers: Vec<Value> = image
                .layers
                .iter()
                .map(|layer| {
                    let origin = match &layer.source {
                        BlobSource::Remote { .. } => "base",
                        _ if notes.cached_layers.contains(&layer.digest) => "cache",
                        _ => "built",
                    };
                    let mut entry = json!({
                        "digest": layer.digest,
                        "size": layer.size,
                        "mediaType": layer.media_type,
                        "origin": origin,
                    });
                    let key = crate::publish::blob_key(&index.name, &layer.digest);
                    if let Some(outcome) = notes.pushed.get(&key) {
                        entry["registry"] = json!(outcome.name());
                    }
                    entry
                })
                .collect();
            let referrers: Vec<Value> = image
                .referrers
                .iter()
                .map(|referrer| {
                    json!({
                        "artifactType": referrer.artifact_type,
                        "manifestDigest": referrer.manifest.digest,
                        "payloadDigest": referrer.blobs.last().map(|b| b.digest.as_str()),
                    })
                })
                .collect();
            let mut entry = json!({
                "platform": platform,
                "manifestDigest": image.manifest.digest,
                "configDigest": image.config.digest,
                "binary": binary,
                "layers": layers,
                "referrers": referrers,
            });
            if let Some(signature) = signature(notes, &image.manifest.digest) {
                entry["signature"] = signature;
            }
            entry
        })
        .collect();
    let mut entry = json!({
        "reference": reference,
        "repository": name,
        "indexDigest": index.index.digest,
        "tags": index.tags,
        "platforms": platforms,
    });
    if let Some(signature) = signature(notes, &index.index.digest) {
        entry["signature"] = signature;
    }
    entry
}

/// Where the signature of `digest` is, when the run signed.
fn signature(notes: &Notes, digest: &str) -> Option<Value> {
    let tag = crate::supply::cosign::signature_tag(digest).ok()?;
    notes.signed.then(|| json!({ "tag": tag }))
}
