//! Image signatures in cosign's key-based scheme, as cosign and
//! containers/image store and read them: for a manifest of digest
//! `sha256:HEX`, an OCI image manifest tagged `sha256-HEX.sig` in the
//! image's repository, one layer per signature. Each layer is a
//! simple-signing payload (`application/vnd.dev.cosign.simplesigning.v1+json`,
//! naming the repository and the signed digest) with its ECDSA signature,
//! base64, in the annotation `dev.cosignproject.cosign/signature`.
//!
//! Adding a signature is a read-modify-write of that manifest: every layer
//! already there (other keys, cosign's own, with their certificates and
//! bundles) is kept as it is, ours is added unless the same layer (payload
//! and signature) is there already. Signatures are deterministic, so an
//! unchanged image signed again changes nothing. Pure functions of bytes: a
//! registry's answer is checked here before anything in it is used.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::sign::Signer;
use crate::base::documents::{Descriptor, is_image_manifest};
use crate::oci::{Blob, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_MANIFEST, canonical_json};
use crate::registry::printable;

/// The media type of a signature layer (the payload it carries).
pub const MEDIA_TYPE_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// The layer annotation holding the base64 signature of the payload.
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";

/// The artifact type of a signature attached as an OCI 1.1 referrer, as
/// cosign's `--registry-referrers-mode=oci-1-1` writes it.
pub const ARTIFACT_TYPE_SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The `type` every cosign image signature payload states.
const SIGNATURE_TYPE: &str = "cosign container image signature";

/// go-containerregistry's zero time, which cosign's signature images carry.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// How a signature names the image it signs: `registry/repository`, as
/// containers/image matches it against the image being pulled.
pub fn docker_reference(name: &crate::image_name::ImageName) -> String {
    format!("{}/{}", name.registry(), name.repository())
}

/// The tag holding the signatures of `digest`: `sha256-HEX.sig`.
pub fn signature_tag(digest: &str) -> Result<String> {
    Ok(format!("{}.sig", crate::oci::fallback_tag(digest)?))
}

/// The simple-signing payload stating that `docker_reference` (a repository,
/// `registry/path`, as containers/image matches it against the image being
/// pulled) at `digest` is signed.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    canonical_json(&json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": digest },
            "type": SIGNATURE_TYPE,
        },
        "optional": null,
    }))
}

/// One signature: the payload blob and its signature, base64.
#[derive(Debug, Clone)]
pub struct SignatureLayer {
    pub payload: Blob,
    pub signature: String,
}

impl SignatureLayer {
    /// `signer`'s signature of `docker_reference` at `digest`.
    pub fn new(
        docker_reference: &str,
        digest: &str,
        signer: &dyn Signer,
    ) -> Result<SignatureLayer> {
        let payload = payload(docker_reference, digest);
        let signature = signer
            .sign(&payload)
            .with_context(|| format!("cannot sign {docker_reference}@{digest}"))?;
        Ok(SignatureLayer {
            payload: Blob::from_bytes(MEDIA_TYPE_SIMPLE_SIGNING, payload),
            signature: STANDARD.encode(&signature.bytes),
        })
    }

    /// This signature as an OCI 1.1 referrer of the manifest it signs
    /// (`subject`), so that a client listing referrers finds it next to the
    /// SBOM and the provenance; `created` from the build's epoch.
    pub fn referrer(&self, subject: &Blob, created: &str) -> crate::assemble::referrer::Referrer {
        crate::assemble::referrer::typed_referrer(
            subject,
            ARTIFACT_TYPE_SIGNATURE,
            self.payload.clone(),
            [(ANNOTATION_SIGNATURE.to_string(), self.signature.clone())].into(),
            created,
            std::collections::BTreeMap::new(),
        )
    }

    /// The layer's descriptor in the signature manifest.
    fn descriptor(&self) -> Value {
        let mut descriptor = self.payload.descriptor();
        descriptor["annotations"] = json!({ ANNOTATION_SIGNATURE: self.signature });
        descriptor
    }

    /// Whether a layer of a signature manifest is this signature.
    fn is(&self, layer: &Descriptor, annotations: Option<&Value>) -> bool {
        layer.digest == self.payload.digest
            && annotations
                .and_then(|a| a.get(ANNOTATION_SIGNATURE))
                .and_then(Value::as_str)
                == Some(self.signature.as_str())
    }
}

/// A signature manifest to push: its config then the manifest itself.
#[derive(Debug, Clone)]
pub struct SignatureManifest {
    pub config: Blob,
    pub manifest: Blob,
}

/// The layers of a signature manifest as a registry sent it (`what` names
/// it in errors), each checked as a descriptor and kept whole.
fn existing_layers(bytes: &[u8]) -> Result<Vec<(Descriptor, Value)>> {
    let document: Value = serde_json::from_slice(bytes).context("it is not JSON")?;
    let media_type = crate::oci::manifest_media_type(bytes)?;
    if !is_image_manifest(&media_type) {
        bail!("it is a {}, not an image manifest", printable(&media_type));
    }
    let Some(layers) = document.get("layers").and_then(Value::as_array) else {
        bail!("it has no layers list");
    };
    layers
        .iter()
        .enumerate()
        .map(|(n, layer)| {
            let descriptor = Descriptor::from_json(layer, &format!("its layer {n}"))?;
            Ok((descriptor, layer.clone()))
        })
        .collect()
}

/// Whether the signature manifest `existing` holds `ours`.
pub fn holds(existing: &[u8], ours: &SignatureLayer) -> Result<bool> {
    Ok(existing_layers(existing)?
        .iter()
        .any(|(layer, value)| ours.is(layer, value.get("annotations"))))
}

/// The signature manifest with `ours` added to `existing` (the manifest the
/// tag holds, if any), or `None` when `existing` holds `ours` already.
pub fn add_signature(
    existing: Option<&[u8]>,
    ours: &SignatureLayer,
) -> Result<Option<SignatureManifest>> {
    let mut layers = Vec::new();
    if let Some(existing) = existing {
        for (layer, value) in existing_layers(existing)? {
            if ours.is(&layer, value.get("annotations")) {
                return Ok(None);
            }
            layers.push((layer.digest, value));
        }
    }
    layers.push((ours.payload.digest.clone(), ours.descriptor()));
    // The config a go-containerregistry image of these layers has: cosign
    // writes it so, though no verifier reads it (the payloads are not
    // compressed, so each diff_id is the layer's digest).
    let config = Blob::from_json(
        MEDIA_TYPE_OCI_CONFIG,
        &json!({
            "architecture": "",
            "os": "",
            "config": {},
            "created": ZERO_TIME,
            "history": layers.iter().map(|_| json!({ "created": ZERO_TIME })).collect::<Vec<_>>(),
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|(digest, _)| digest.clone()).collect::<Vec<_>>(),
            },
        }),
    );
    let manifest = Blob::from_json(
        MEDIA_TYPE_OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": layers.into_iter().map(|(_, value)| value).collect::<Vec<_>>(),
        }),
    );
    Ok(Some(SignatureManifest { config, manifest }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supply::sign::Signature;

    /// Signs with a fixed prefix, so that two "keys" sign differently.
    struct Tagged(&'static [u8]);
    impl Signer for Tagged {
        fn sign(&self, message: &[u8]) -> Result<Signature> {
            Ok(Signature {
                bytes: [self.0, message].concat(),
                key_id: None,
            })
        }
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn layer(key: &'static [u8]) -> SignatureLayer {
        SignatureLayer::new("127.0.0.1:5000/x/hello", DIGEST, &Tagged(key)).unwrap()
    }

    fn manifest_json(manifest: &SignatureManifest) -> Value {
        serde_json::from_slice(manifest.manifest.bytes().unwrap()).unwrap()
    }

    #[test]
    fn tag_and_payload_are_cosigns() {
        assert_eq!(
            signature_tag(DIGEST).unwrap(),
            "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig"
        );
        assert!(signature_tag("latest").is_err());
        assert_eq!(
            String::from_utf8(payload("127.0.0.1:5000/x/hello", DIGEST)).unwrap(),
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"127.0.0.1:5000/x/hello\"}},\"image\":{{\"docker-manifest-digest\":\"{DIGEST}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}"
            )
        );
    }

    #[test]
    fn a_new_tag_gets_one_layer_with_the_signature_annotation() {
        let ours = layer(b"k1");
        let made = add_signature(None, &ours).unwrap().unwrap();
        let manifest = manifest_json(&made);
        assert_eq!(manifest["mediaType"], MEDIA_TYPE_OCI_MANIFEST);
        assert_eq!(manifest["config"]["digest"], json!(made.config.digest));
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], MEDIA_TYPE_SIMPLE_SIGNING);
        assert_eq!(layers[0]["digest"], json!(ours.payload.digest));
        let signature = STANDARD
            .decode(
                layers[0]["annotations"][ANNOTATION_SIGNATURE]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            signature,
            [&b"k1"[..], ours.payload.bytes().unwrap()].concat()
        );
        let config: Value = serde_json::from_slice(made.config.bytes().unwrap()).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"], json!([ours.payload.digest]));
    }

    #[test]
    fn read_modify_write_keeps_others_and_adds_ours_once() {
        let first = add_signature(None, &layer(b"k1")).unwrap().unwrap();
        let first_bytes = first.manifest.bytes().unwrap().clone();
        // The same key again: nothing to write.
        assert!(
            add_signature(Some(&first_bytes), &layer(b"k1"))
                .unwrap()
                .is_none()
        );
        assert!(holds(&first_bytes, &layer(b"k1")).unwrap());
        assert!(!holds(&first_bytes, &layer(b"k2")).unwrap());
        // Another key: both kept, the first unchanged and first.
        let second = add_signature(Some(&first_bytes), &layer(b"k2"))
            .unwrap()
            .unwrap();
        let layers = manifest_json(&second)["layers"].as_array().unwrap().clone();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0], manifest_json(&first)["layers"][0]);
        // A layer of someone else's (a certificate, a bundle) is kept whole.
        let foreign = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": DIGEST, "size": 2},
            "layers": [{"mediaType": MEDIA_TYPE_SIMPLE_SIGNING, "digest": DIGEST, "size": 10,
                        "annotations": {ANNOTATION_SIGNATURE: "c2ln", "dev.sigstore.cosign/certificate": "PEM"}}],
        });
        let merged = add_signature(Some(&serde_json::to_vec(&foreign).unwrap()), &layer(b"k1"))
            .unwrap()
            .unwrap();
        let layers = manifest_json(&merged)["layers"].clone();
        assert_eq!(layers[0], foreign["layers"][0]);
        assert_eq!(layers.as_array().unwrap().len(), 2);
    }

    #[test]
    fn hostile_tags_are_refused_with_what_is_wrong() {
        let cases: [(&[u8], &str); 5] = [
            (b"not json", "not JSON"),
            (
                br#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                "not an image manifest",
            ),
            (
                br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":{}}"#,
                "no layers list",
            ),
            (
                br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"x","digest":"sha256:../../etc","size":1}]}"#,
                "no valid digest",
            ),
            (
                br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"x","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":-1}]}"#,
                "size",
            ),
        ];
        for (bytes, expected) in cases {
            let err = format!(
                "{:#}",
                add_signature(Some(bytes), &layer(b"k1")).unwrap_err()
            );
            assert!(err.contains(expected), "{err} lacks {expected}");
        }
    }
}
