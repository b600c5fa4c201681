//! OCI 1.1 referrers: an artifact manifest whose `subject` is the manifest
//! it describes (an SBOM or a provenance statement of a platform image),
//! with the empty config the image specification prescribes for artifacts
//! and the artefact itself as its one layer.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::oci::{ANNOTATION_CREATED, Blob, MEDIA_TYPE_OCI_MANIFEST};

/// The media type of the empty config of an artifact manifest.
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// An artifact attached to a manifest, ready to publish.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// What the artifact is (its payload's media type, e.g. SPDX JSON).
    pub artifact_type: String,
    /// The artifact manifest; its `subject` names the described manifest.
    pub manifest: Blob,
    /// The empty config then the payload: the blobs the manifest references.
    pub blobs: Vec<Blob>,
}

impl Referrer {
    /// The entry of this referrer in a referrers list (`GET
    /// /v2/<name>/referrers/<digest>` or its fallback tag): its manifest's
    /// descriptor with the artifact type and annotations.
    pub fn descriptor(&self) -> Value {
        let mut descriptor = self.manifest.descriptor();
        descriptor["artifactType"] = json!(self.artifact_type);
        if let Some(annotations) = self
            .manifest
            .bytes()
            .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
            .and_then(|manifest| manifest.get("annotations").cloned())
        {
            descriptor["annotations"] = annotations;
        }
        descriptor
    }
}

/// The config blob of every artifact manifest: `{}`.
pub fn empty_config() -> Blob {
    Blob::from_bytes(MEDIA_TYPE_EMPTY, &b"{}"[..])
}

/// The artifact manifest attaching `payload` (whose media type is the
/// artifact type) to `subject`, annotated with `annotations` and
/// `org.opencontainers.image.created`: `created`, from the build's epoch,
/// never the clock, so that an unchanged rebuild makes the same manifest.
pub fn referrer(
    subject: &Blob,
    payload: Blob,
    created: &str,
    annotations: BTreeMap<String, String>,
) -> Referrer {
    let artifact_type = payload.media_type.clone();
    typed_referrer(
        subject,
        &artifact_type,
        payload,
        BTreeMap::new(),
        created,
        annotations,
    )
}

/// [`referrer`] whose artifact type is not the payload's media type, with
/// annotations on the payload's layer (as cosign puts a signature there).
pub fn typed_referrer(
    subject: &Blob,
    artifact_type: &str,
    payload: Blob,
    layer_annotations: BTreeMap<String, String>,
    created: &str,
    mut annotations: BTreeMap<String, String>,
) -> Referrer {
    annotations.insert(ANNOTATION_CREATED.to_string(), created.to_string());
    let config = empty_config();
    let mut layer = payload.descriptor();
    if !layer_annotations.is_empty() {
        layer["annotations"] = json!(layer_annotations);
    }
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor(),
        "layers": [layer],
        "subject": subject.descriptor(),
    });
    manifest["annotations"] = json!(annotations);
    Referrer {
        artifact_type: artifact_type.to_string(),
        manifest: Blob::from_json(MEDIA_TYPE_OCI_MANIFEST, &manifest),
        blobs: vec![config, payload],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_manifest_names_its_subject_and_type() {
        let subject = Blob::from_bytes(MEDIA_TYPE_OCI_MANIFEST, &b"{\"m\":1}"[..]);
        let payload = Blob::from_bytes("application/spdx+json", &b"{\"spdx\":1}"[..]);
        let made = referrer(
            &subject,
            payload.clone(),
            "1970-01-01T00:00:00Z",
            BTreeMap::new(),
        );
        let manifest: Value = serde_json::from_slice(made.manifest.bytes().unwrap()).unwrap();
        assert_eq!(manifest["subject"]["digest"], json!(subject.digest));
        assert_eq!(manifest["artifactType"], "application/spdx+json");
        assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_EMPTY);
        assert_eq!(
            manifest["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(manifest["layers"][0]["digest"], json!(payload.digest));
        let descriptor = made.descriptor();
        assert_eq!(descriptor["artifactType"], "application/spdx+json");
        assert_eq!(
            descriptor["annotations"]["org.opencontainers.image.created"],
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(made.blobs.len(), 2);
    }
}
