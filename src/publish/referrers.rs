//! Referrers on a registry (OCI distribution 1.1): each artifact manifest
//! is pushed by digest after its blobs and after the manifest it names.
//! A registry that implements the referrers API says so in its answer
//! (`OCI-Subject`) and lists it itself; for any other, the referrer is
//! added to the image index under the fallback tag `sha256-<hex of the
//! subject digest>` (read, add what is missing, write back), keeping every
//! entry already there, whoever wrote it. A fallback tag that holds
//! anything but an image index is an error naming it: never overwritten.

use std::collections::HashSet;

use anyhow::{Context, Result, bail};
use futures_util::future::try_join_all;
use serde_json::Value;

use super::RegistrySink;
use crate::assemble::referrer::Referrer;
use crate::image_name::ImageName;
use crate::oci::{Blob, MEDIA_TYPE_OCI_INDEX, digest_hex, fallback_tag, sha256_digest};
use crate::progress;
use crate::registry::{PulledManifest, printable};

impl RegistrySink {
    /// Pushes `referrers` of `subject` (already pushed): blobs, manifests,
    /// then the fallback tag where the registry has no referrers API. The
    /// caller remembers them listed ([`Self::remember_listed`]) once all of
    /// the subject's are.
    pub(super) async fn push_referrers(
        &self,
        name: &ImageName,
        subject: &Blob,
        referrers: &[&Referrer],
    ) -> Result<()> {
        // All at once: each its blobs (already there when the image's went
        // up with them), then its manifest.
        let pushed = try_join_all(referrers.iter().map(|referrer| async move {
            try_join_all(
                referrer
                    .blobs
                    .iter()
                    .map(|blob| self.ensure_blob(name, blob)),
            )
            .await?;
            let listed = self
                .put_manifest(name, &referrer.manifest, &referrer.manifest.digest)
                .await?;
            anyhow::Ok((!listed).then(|| referrer.descriptor()))
        }))
        .await?;
        let unlisted: Vec<_> = pushed.into_iter().flatten().collect();
        if !unlisted.is_empty() {
            self.add_to_fallback_tag(name, &subject.digest, &unlisted)
                .await?;
        }
        Ok(())
    }

    /// Notes that the registry lists all of `referrers` of `subject` (see
    /// [`listed_record`]).
    pub(super) fn remember_listed<'a>(
        &self,
        name: &ImageName,
        subject: &Blob,
        referrers: impl IntoIterator<Item = &'a Referrer>,
    ) -> Result<()> {
        let record = listed_record(name, subject, referrers);
        self.store.write_record(LISTED, &record, b"listed")
    }

    /// Pushes those referrers of `subject` the registry does not list yet
    /// (by its referrers API, else under the fallback tag): an unchanged
    /// rebuild sends nothing. A referrer manifest the registry holds is not
    /// enough: a run stopped after pushing it may not have listed it.
    ///
    /// What this store saw listed is remembered (see [`listed_record`]): a
    /// rebuild after that asks the registry nothing.
    pub(super) async fn push_missing_referrers(
        &self,
        name: &ImageName,
        subject: &Blob,
        referrers: &[Referrer],
    ) -> Result<()> {
        if referrers.is_empty() {
            return Ok(());
        }
        let record = listed_record(name, subject, referrers.iter());
        if self.store.read_record(LISTED, &record).is_some() {
            return Ok(());
        }
        let listed = self.listed_referrers(name, &subject.digest).await?;
        let missing: Vec<&Referrer> = referrers
            .iter()
            .filter(|referrer| !listed.contains(&referrer.manifest.digest))
            .collect();
        if !missing.is_empty() {
            self.push_referrers(name, subject, &missing).await?;
        }
        self.remember_listed(name, subject, referrers)
    }

    /// The digests the registry lists as referrers of `subject`.
    async fn listed_referrers(&self, name: &ImageName, subject: &str) -> Result<HashSet<String>> {
        // A registry that refuses the referrers path in some other way than
        // the specification's 404 is taken to have no API; only one that
        // stopped answering ends the push.
        let api = match self.client.referrers(&name.with_digest(subject)).await {
            Ok(list) => list,
            Err(err) if crate::registry::stopped_answering(&err) => return Err(err),
            Err(err) => {
                progress::verbose(format!("{err:#}; looking for the fallback tag"));
                None
            }
        };
        let list = match api {
            Some(list) => checked_index(&list, REGISTRY_FIX)
                .with_context(|| format!("the referrers list of {name}@{subject}"))?,
            None => {
                let tag = fallback_tag(subject)?;
                match self
                    .client
                    .pull_manifest_if_any(&name.with_tag(&tag))
                    .await?
                {
                    Some(index) => checked_index(&index, TAG_FIX)
                        .with_context(|| format!("the referrers fallback tag {name}:{tag}"))?,
                    None => return Ok(HashSet::new()),
                }
            }
        };
        Ok(list["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.get("digest").and_then(Value::as_str))
            .map(String::from)
            .collect())
    }

    /// Adds `descriptors` to the index under the fallback tag of `subject`.
    async fn add_to_fallback_tag(
        &self,
        name: &ImageName,
        subject: &str,
        descriptors: &[Value],
    ) -> Result<()> {
        let tag = fallback_tag(subject)?;
        let reference = name.with_tag(&tag);
        let existing = self
            .client
            .pull_manifest_if_any(&reference)
            .await
            .with_context(|| format!("cannot read the referrers of {name}@{subject}"))?;
        let Some(index) = with_referrers(existing.as_ref(), descriptors)
            .with_context(|| format!("the referrers fallback tag {name}:{tag}"))?
        else {
            progress::verbose(format!("{name}:{tag} lists every referrer already"));
            return Ok(());
        };
        let index = Blob::from_json(MEDIA_TYPE_OCI_INDEX, &index);
        self.put_manifest(name, &index, &tag).await?;
        progress::verbose(format!("listed referrers of {subject} under {name}:{tag}"));
        Ok(())
    }
}

/// The kind of record noting referrers a registry was seen to list.
const LISTED: &str = "referrers-listed";

/// The record key of `referrers` listed for `subject` in `name`'s
/// repository: a hash of all of them, so that a new or changed referrer
/// is looked up again.
fn listed_record<'r>(
    name: &ImageName,
    subject: &Blob,
    referrers: impl IntoIterator<Item = &'r Referrer>,
) -> String {
    let mut digests: Vec<&str> = referrers
        .into_iter()
        .map(|r| r.manifest.digest.as_str())
        .collect();
    digests.sort_unstable();
    let key = format!(
        "{}\n{}\n{}\n{}",
        name.registry(),
        name.repository(),
        subject.digest,
        digests.join("\n")
    );
    digest_hex(&sha256_digest(key.as_bytes()))
        .unwrap_or_default()
        .to_string()
}

/// The fallback index `existing` (`None`: no tag yet) with every one of
/// `descriptors` whose digest it does not list yet, or `None` when it lists
/// them all. Every entry already there stays, unknown fields too.
fn with_referrers(
    existing: Option<&PulledManifest>,
    descriptors: &[Value],
) -> Result<Option<Value>> {
    let mut index = match existing {
        None => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_INDEX,
            "manifests": [],
        }),
        Some(pulled) => checked_index(pulled, TAG_FIX)?,
    };
    let Some(entries) = index.get_mut("manifests").and_then(Value::as_array_mut) else {
        bail!("holds an index without a `manifests` list");
    };
    let mut changed = false;
    for descriptor in descriptors {
        let digest = descriptor.get("digest");
        if !entries.iter().any(|entry| entry.get("digest") == digest) {
            entries.push(descriptor.clone());
            changed = true;
        }
    }
    Ok(changed.then_some(index))
}

/// What to do about a fallback tag that holds no referrers index.
const TAG_FIX: &str = "delete that tag or fix what wrote it, then push again";
/// What to do about a registry whose referrers API answers no index.
const REGISTRY_FIX: &str = "the registry's referrers API is broken; report it to its operators";

/// A referrers list (a fallback tag's document or the referrers API's
/// answer), if it is an OCI image index whose entries each name a digest;
/// else an error saying what it holds and what to do (`fix`).
fn checked_index(pulled: &PulledManifest, fix: &str) -> Result<Value> {
    if pulled.media_type != MEDIA_TYPE_OCI_INDEX {
        bail!(
            "holds a document of type {}, not an OCI image index; {fix}",
            printable(&pulled.media_type)
        );
    }
    let index: Value =
        serde_json::from_slice(&pulled.bytes).with_context(|| format!("is not JSON; {fix}"))?;
    let Some(entries) = index.get("manifests").and_then(Value::as_array) else {
        bail!("holds an index without a `manifests` list; {fix}");
    };
    for entry in entries {
        if entry
            .get("digest")
            .and_then(Value::as_str)
            .and_then(digest_hex)
            .is_none()
        {
            bail!("lists an entry without a sha256 digest; {fix}");
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;

    fn pulled(value: &Value) -> PulledManifest {
        let bytes = Bytes::from(serde_json::to_vec(value).unwrap());
        PulledManifest {
            media_type: crate::oci::manifest_media_type(&bytes).unwrap(),
            digest: crate::oci::sha256_digest(&bytes),
            bytes,
        }
    }

    fn descriptor(hex: char) -> Value {
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", hex.to_string().repeat(64)),
            "size": 1,
            "artifactType": "application/vnd.dsse.envelope.v1+json",
        })
    }

    #[test]
    fn the_fallback_tag_is_the_subject_digest_with_a_dash() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            fallback_tag(&digest).unwrap(),
            format!("sha256-{}", "a".repeat(64))
        );
        assert!(fallback_tag("sha256:zz").is_err());
    }

    #[test]
    fn entries_already_there_stay_and_none_is_added_twice() {
        let fresh = with_referrers(None, &[descriptor('a')]).unwrap().unwrap();
        assert_eq!(fresh["manifests"], json!([descriptor('a')]));
        assert_eq!(fresh["mediaType"], MEDIA_TYPE_OCI_INDEX);

        let mut foreign = descriptor('f');
        foreign["annotations"] = json!({ "x.other/tool": "kept" });
        let existing = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_INDEX,
            "manifests": [foreign, descriptor('a')],
            "annotations": { "kept": "too" },
        });
        let merged = with_referrers(
            Some(&pulled(&existing)),
            &[descriptor('a'), descriptor('b')],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            merged["manifests"],
            json!([foreign, descriptor('a'), descriptor('b')])
        );
        assert_eq!(merged["annotations"]["kept"], "too");
        assert_eq!(
            with_referrers(Some(&pulled(&merged)), &[descriptor('b')]).unwrap(),
            None,
            "nothing to add: nothing to write"
        );
    }

    #[test]
    fn a_fallback_tag_that_is_no_index_is_refused() {
        let manifest = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": [] });
        let bad_entry =
            json!({ "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": [{ "digest": "nope" }] });
        let not_a_list = json!({ "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": {} });
        for document in [manifest, bad_entry, not_a_list] {
            let err = with_referrers(Some(&pulled(&document)), &[descriptor('a')]).unwrap_err();
            assert!(format!("{err:#}").contains("delete that tag"), "{err:#}");
        }
        let garbage = PulledManifest {
            bytes: Bytes::from_static(b"\x00\xffgarbage"),
            digest: String::new(),
            media_type: MEDIA_TYPE_OCI_INDEX.into(),
        };
        assert!(with_referrers(Some(&garbage), &[descriptor('a')]).is_err());
    }
}
