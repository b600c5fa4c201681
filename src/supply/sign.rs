//! Signing: the [`Signer`] every signature of a run goes through. Key-based
//! signing is one implementation; keyless signing (a Fulcio certificate and
//! a Rekor entry) would be another, adding its certificate and bundle to
//! what [`Signature`] carries.

use anyhow::Result;

/// A signature over some bytes, with what a verifier needs besides the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The raw signature (for ECDSA, ASN.1 DER).
    pub bytes: Vec<u8>,
    /// The key id a verifier looks the key up by, if the signer has one.
    pub key_id: Option<String>,
}

/// Something that signs bytes: a private key on disk today.
pub trait Signer: Send + Sync {
    /// Signs `message` (the signer hashes it as its algorithm requires).
    fn sign(&self, message: &[u8]) -> Result<Signature>;
}
