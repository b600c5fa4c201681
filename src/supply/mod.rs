//! Supply-chain artefacts (issue 12): what an image carries besides its
//! layers, each made from what this run really compiled.
//!
//! - the SBOM of each platform image (SPDX 2.3 or CycloneDX 1.6), from the
//!   dependency graph cargo resolved for that target triple and features;
//! - the same dependency list embedded in each binary, in cargo-auditable's
//!   `.dep-v0` format, for scanners that read binaries;
//! - a SLSA v1 provenance statement per platform image, in a DSSE envelope;
//! - signatures of the index and every platform manifest in cosign's
//!   key-based scheme, made by a [`sign::Signer`].
//!
//! The SBOM and provenance become OCI 1.1 referrers of their platform
//! manifest ([`crate::assemble::referrer`]); the sinks store them where a
//! client finds them (the referrers API or its fallback tag, the layout's
//! index). Everything here is deterministic: same inputs, same bytes.

pub mod attach;
pub mod auditable;
pub mod cosign;
pub mod dsse;
pub mod keys;
pub mod provenance;
pub mod sbom;
pub mod sign;
