//! The registry sink's image signatures (`--sign-key`): every platform
//! manifest of an image, then its index, signed in cosign's key-based
//! scheme ([`crate::supply::cosign`]) under their `sha256-HEX.sig` tags,
//! after the manifests they sign are in the registry and before the index
//! goes up under its tags. So an index whose signature is there has every
//! platform's signature there too, and an unchanged image is checked with
//! one GET: that of its index's signature tag.

use anyhow::{Context, Result};
use futures_util::future::try_join_all;

use super::RegistrySink;
use crate::assemble::ImageIndex;
use crate::image_name::ImageName;
use crate::progress;
use crate::supply::cosign::{self, SignatureLayer};
use crate::supply::sign::Signer;

impl RegistrySink {
    /// Whether the signature tag of `image`'s index holds `signer`'s
    /// signature (then so do those of its platform manifests).
    pub(super) async fn index_signed(
        &self,
        image: &ImageIndex,
        signer: &dyn Signer,
    ) -> Result<bool> {
        let name = &image.name;
        let ours =
            SignatureLayer::new(&cosign::docker_reference(name), &image.index.digest, signer)?;
        let tag = cosign::signature_tag(&image.index.digest)?;
        match self.signature_manifest(name, &tag).await? {
            Some(existing) => {
                cosign::holds(&existing, &ours).with_context(|| unusable_signature_tag(name, &tag))
            }
            None => Ok(false),
        }
    }

    /// Signs every platform manifest of `image`, then its index (which the
    /// registry holds by digest already).
    pub(super) async fn sign_image(&self, image: &ImageIndex, signer: &dyn Signer) -> Result<()> {
        try_join_all(
            image
                .images
                .iter()
                .map(|platform| self.sign_manifest(&image.name, &platform.manifest.digest, signer)),
        )
        .await?;
        self.sign_manifest(&image.name, &image.index.digest, signer)
            .await
    }

    /// Adds `signer`'s signature of `digest` to its signature tag, keeping
    /// every signature there; nothing is sent when ours is there already.
    async fn sign_manifest(
        &self,
        name: &ImageName,
        digest: &str,
        signer: &dyn Signer,
    ) -> Result<()> {
        let ours = SignatureLayer::new(&cosign::docker_reference(name), digest, signer)?;
        let tag = cosign::signature_tag(digest)?;
        let existing = self.signature_manifest(name, &tag).await?;
        let Some(update) = cosign::add_signature(existing.as_deref(), &ours)
            .with_context(|| unusable_signature_tag(name, &tag))?
        else {
            progress::verbose(format!("{name}@{digest} is signed already"));
            return Ok(());
        };
        self.ensure_blob(name, &ours.payload).await?;
        self.ensure_blob(name, &update.config).await?;
        self.put_manifest(name, &update.manifest, &tag).await?;
        progress::verbose(format!("signed {name}@{digest} ({name}:{tag})"));
        Ok(())
    }

    /// The bytes of the signature manifest under `tag`, if there is one.
    async fn signature_manifest(
        &self,
        name: &ImageName,
        tag: &str,
    ) -> Result<Option<bytes::Bytes>> {
        self.client
            .pull_manifest_bytes_if_present(&name.with_tag(tag))
            .await
    }
}

/// The error context of a signature tag whose manifest cannot take ours.
fn unusable_signature_tag(name: &ImageName, tag: &str) -> String {
    format!(
        "{name}:{tag} holds no signature manifest cargo-krust can add a signature to; delete that tag (its signatures with it) and publish again"
    )
}
