//! The registry client: the operations the pipeline needs from any registry
//! (pull a manifest or blob, check for a blob, mount, upload, push a
//! manifest), over a transport of our own in the shape of
//! go-containerregistry's `remote/transport`, one concern per file:
//!
//! - `scheme.rs`: HTTPS, or plain HTTP for loopback and `--insecure-registry`;
//! - `tls.rs`: system roots plus `SSL_CERT_FILE`, the HTTP client;
//! - `credentials.rs`: the Docker config, podman's auth file, helpers;
//! - `login.rs`: `login`/`logout`, writing the Docker config or its helper;
//! - `challenge.rs`, `bearer.rs`: Basic and Bearer challenges, tokens per scope;
//! - `transport.rs`: ping, authentication, redirects;
//! - `timeouts.rs`: the budget of an operation, connect and stall limits,
//!   the least pace of a body;
//! - `retry.rs`: backoff, `Retry-After`, within the budget;
//! - `upload.rs`, `download.rs`, `manifest.rs`: the protocol itself;
//! - `errors.rs`: one error type naming registry, request and fix, and
//!   [`printable`], through which anything a registry sends reaches a
//!   message.
//!
//! oci-client's `Reference` names images throughout cargo-krust, but its
//! client is not used for requests: it has no retries, asks mount tokens for
//! the target repository only (a 401 under token auth), reports a declined
//! mount as an error, cannot follow a redirect of a streamed upload, cannot
//! be built on a machine without a CA store and cannot exchange identity
//! tokens; each of those is a request-level concern, so the requests are ours.

mod bearer;
mod challenge;
mod credentials;
mod download;
mod errors;
pub mod login;
mod manifest;
mod retry;
mod scheme;
mod timeouts;
mod tls;
mod transport;
mod upload;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use oci_client::Reference;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use crate::oci::sha256_digest;
use crate::progress;
use bearer::Scope;
use credentials::Credential;
use download::{Wanted, short};
use errors::{ErrorKind, RegistryError};
use transport::{Body, Operation, Transport};
use upload::Source;

pub use credentials::Secret;
pub use upload::StreamedSession;

pub use errors::printable;
pub use scheme::is_loopback;
pub use timeouts::{DEFAULT_BUDGET, Timeouts};

/// A manifest as pulled: its exact bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct PulledManifest {
    pub bytes: Bytes,
    pub digest: String,
    pub media_type: String,
}

/// Configs are small; a "config" larger than this is refused.
const CONFIG_LIMIT: usize = 16 * 1024 * 1024;

pub struct RegistryClient {
    transport: Transport,
}

impl RegistryClient {
    /// A client for the `registries` a run talks to; `insecure` lists the
    /// `HOST[:PORT]` values of `--insecure-registry`, `timeouts` how long
    /// it waits (`--registry-timeout`).
    pub fn new<'r>(
        insecure: &[String],
        registries: impl IntoIterator<Item = &'r str>,
        timeouts: Timeouts,
    ) -> Result<RegistryClient> {
        Ok(RegistryClient {
            transport: Transport::new(insecure, registries, timeouts)
                .context("cannot set up the registry client")?,
        })
    }

    /// Checks that `registry` accepts `username` and `password`, as `docker
    /// login` does: `GET /v2/` with them (Basic, or a token for no
    /// repository). They are used instead of any configured ones.
    pub async fn check_login(
        &self,
        registry: &str,
        username: &str,
        password: Secret,
    ) -> Result<()> {
        let transport = &self.transport;
        transport.use_credential(
            registry,
            Credential::Basic {
                username: username.to_string(),
                password,
            },
        );
        let request = "GET /v2/";
        let outcome = transport
            .retried(Operation::Request, registry, request, || async {
                let response = transport
                    .send_path(
                        registry,
                        &Scope::none(),
                        Method::GET,
                        "/v2/",
                        HeaderMap::new(),
                        Body::Empty,
                    )
                    .await?;
                transport
                    .expect(registry, request, response, &[StatusCode::OK])
                    .await
                    .map(drop)
            })
            .await;
        match outcome {
            Err(RegistryError {
                kind: ErrorKind::Unauthorized { status, detail, .. },
                ..
            }) => {
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                };
                bail!(
                    "registry {registry} refused the password of {} ({status}{detail}); check the user name and password",
                    printable(username)
                )
            }
            other => other.with_context(|| format!("cannot log in to {registry}")),
        }
    }

    /// Pulls a manifest or index by tag or digest.
    pub async fn pull_manifest(&self, reference: &Reference) -> Result<PulledManifest> {
        let (bytes, digest) = self.pull_manifest_bytes(reference).await?;
        pulled(reference, bytes, digest)
    }

    /// Pulls a manifest or index by tag or digest; `None` when the registry
    /// answers 404.
    pub async fn pull_manifest_if_any(
        &self,
        reference: &Reference,
    ) -> Result<Option<PulledManifest>> {
        self.pull_manifest_bytes_if_any(reference)
            .await?
            .map(|(bytes, digest)| pulled(reference, bytes, digest))
            .transpose()
    }

    /// The exact bytes of a manifest by tag or digest, `None` when the
    /// registry has none there (a signature tag not written yet). The
    /// caller checks what they hold.
    pub async fn pull_manifest_bytes_if_present(
        &self,
        reference: &Reference,
    ) -> Result<Option<Bytes>> {
        Ok(self
            .pull_manifest_bytes_if_any(reference)
            .await?
            .map(|(bytes, _)| bytes))
    }

    async fn pull_manifest_bytes(&self, reference: &Reference) -> Result<(Bytes, String)> {
        self.fetch_manifest(reference)
            .await
            .with_context(|| format!("cannot pull manifest of {reference}"))
    }

    /// [`Self::pull_manifest_bytes`], `None` when the registry answers 404.
    async fn pull_manifest_bytes_if_any(
        &self,
        reference: &Reference,
    ) -> Result<Option<(Bytes, String)>> {
        match self.fetch_manifest(reference).await {
            Ok(pulled) => Ok(Some(pulled)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot pull manifest of {reference}")),
        }
    }

    /// A manifest's bytes and digest, with the registry's error as it is.
    async fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> std::result::Result<(Bytes, String), RegistryError> {
        manifest::pull(
            &self.transport,
            reference.resolve_registry(),
            reference.repository(),
            &tag_or_digest(reference),
        )
        .await
    }

    /// Downloads a blob of `size` bytes into memory, checking its size and
    /// digest (for configs).
    pub async fn pull_small_blob(
        &self,
        repository: &Reference,
        digest: &str,
        size: u64,
    ) -> Result<Bytes> {
        download::to_memory(
            &self.transport,
            repository.resolve_registry(),
            repository.repository(),
            Wanted { digest, size },
            CONFIG_LIMIT,
        )
        .await
        .with_context(|| format!("cannot pull blob {digest} from {}", repo_of(repository)))
    }

    /// Streams a blob of `size` bytes to a file, checking its size and
    /// digest on the way.
    pub async fn pull_blob_to_file(
        &self,
        repository: &Reference,
        digest: &str,
        size: u64,
        path: &Path,
    ) -> Result<()> {
        download::to_file(
            &self.transport,
            repository.resolve_registry(),
            repository.repository(),
            Wanted { digest, size },
            path,
        )
        .await
        .with_context(|| format!("cannot pull blob {digest} from {}", repo_of(repository)))
    }

    /// Whether the repository already holds the blob (asked before an
    /// upload, so with push access).
    pub async fn blob_exists(&self, repository: &Reference, digest: &str) -> Result<bool> {
        upload::exists(
            &self.transport,
            repository.resolve_registry(),
            repository.repository(),
            digest,
        )
        .await
        .with_context(|| format!("cannot check for blob {digest} in {}", repo_of(repository)))
    }

    /// Asks the registry to mount a blob from another of its repositories;
    /// `false` when the registry declines (the caller then uploads).
    pub async fn mount_blob(
        &self,
        repository: &Reference,
        from: &Reference,
        digest: &str,
    ) -> Result<bool> {
        upload::mount(
            &self.transport,
            repository.resolve_registry(),
            repository.repository(),
            from.repository(),
            digest,
        )
        .await
        .with_context(|| {
            format!(
                "cannot mount blob {digest} from {} into {}",
                from.repository(),
                repo_of(repository)
            )
        })
    }

    /// Uploads a blob from a file, streamed (and read again on a retry).
    pub async fn push_blob_file(
        &self,
        repository: &Reference,
        digest: &str,
        size: u64,
        path: &Path,
    ) -> Result<()> {
        let transfer = Arc::new(progress::transfer(
            "Uploading",
            &format!("{} to {}", short(digest), repository.repository()),
            Some(size),
        ));
        upload::upload(
            &self.transport,
            repository.resolve_registry(),
            repository.repository(),
            digest,
            size,
            Source::File(path.to_path_buf()),
            Some(transfer),
        )
        .await
        .with_context(|| format!("cannot upload blob {digest} to {}", repo_of(repository)))
    }

    /// Opens an upload session for [`Self::stream_blob`].
    pub async fn open_streamed_blob(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<StreamedSession> {
        upload::open_streamed(&self.transport, registry, repository)
            .await
            .with_context(|| format!("cannot start an upload to {registry}/{repository}"))
    }

    /// Uploads the bytes arriving on `chunks` (`what` names them) into the
    /// session, which stays open for [`Self::commit_streamed_blob`].
    pub async fn stream_blob(
        &self,
        registry: &str,
        repository: &str,
        session: StreamedSession,
        chunks: tokio::sync::mpsc::Receiver<Bytes>,
        what: &str,
    ) -> Result<StreamedSession> {
        let transfer = Arc::new(progress::transfer(
            "Uploading",
            &format!("{what} to {repository}"),
            None,
        ));
        upload::stream(
            &self.transport,
            registry,
            repository,
            session,
            chunks,
            Some(transfer),
        )
        .await
        .with_context(|| format!("cannot stream {what} to {registry}/{repository}"))
    }

    pub async fn commit_streamed_blob(
        &self,
        registry: &str,
        repository: &str,
        session: StreamedSession,
        digest: &str,
    ) -> Result<()> {
        upload::commit_streamed(&self.transport, registry, repository, session, digest)
            .await
            .with_context(|| format!("cannot commit blob {digest} to {registry}/{repository}"))
    }

    pub async fn cancel_streamed_blob(
        &self,
        registry: &str,
        repository: &str,
        session: StreamedSession,
    ) {
        upload::cancel_streamed(&self.transport, registry, repository, session).await;
    }

    /// Uploads a small blob held in memory.
    pub async fn push_blob_bytes(
        &self,
        repository: &Reference,
        digest: &str,
        bytes: Bytes,
    ) -> Result<()> {
        let size = bytes.len() as u64;
        upload::upload(
            &self.transport,
            repository.resolve_registry(),
            repository.repository(),
            digest,
            size,
            Source::Bytes(bytes),
            None,
        )
        .await
        .with_context(|| format!("cannot upload blob {digest} to {}", repo_of(repository)))
    }

    /// PUTs a manifest or index under the reference's tag or digest;
    /// `true` when the registry answered that it implements the referrers
    /// API (`OCI-Subject`, for a manifest with a `subject`).
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<bool> {
        manifest::push(
            &self.transport,
            reference.resolve_registry(),
            reference.repository(),
            &tag_or_digest(reference),
            bytes,
            media_type,
        )
        .await
        .with_context(|| format!("cannot push manifest {reference}"))
    }

    /// The referrers list of the manifest `reference` names by digest
    /// (`GET /v2/NAME/referrers/DIGEST`), as pulled; `None` when the
    /// registry has no referrers API.
    pub async fn referrers(&self, reference: &Reference) -> Result<Option<PulledManifest>> {
        let digest = tag_or_digest(reference);
        let listed = manifest::referrers(
            &self.transport,
            reference.resolve_registry(),
            reference.repository(),
            &digest,
        )
        .await
        .with_context(|| format!("cannot list the referrers of {reference}"))?;
        listed
            .map(|bytes| {
                let digest = sha256_digest(&bytes);
                pulled(reference, bytes, digest)
            })
            .transpose()
    }

    /// The digest a tag points at, or `None` when the tag does not exist.
    pub async fn manifest_digest(&self, reference: &Reference) -> Result<Option<String>> {
        manifest::digest(
            &self.transport,
            reference.resolve_registry(),
            reference.repository(),
            &tag_or_digest(reference),
        )
        .await
        .with_context(|| format!("cannot look up {reference}"))
    }
}

/// A pulled manifest with its media type, read off its bytes.
fn pulled(reference: &Reference, bytes: Bytes, digest: String) -> Result<PulledManifest> {
    let media_type = crate::oci::manifest_media_type(&bytes)
        .with_context(|| format!("cannot read the manifest of {reference}"))?;
    Ok(PulledManifest {
        bytes,
        digest,
        media_type,
    })
}

/// The manifest path component of a reference: its digest when it has one,
/// else its tag (`latest` when it has neither).
fn tag_or_digest(reference: &Reference) -> String {
    reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_string()
}

/// `registry/repository` of a reference, for messages about blobs (whose
/// references carry the blob digest, which is not part of the image name).
fn repo_of(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}

/// Whether `err` comes from a registry that stopped answering (an
/// operation ran out of time, or no connection could be made): the run
/// cannot go on with that registry, which is not asked again.
pub fn stopped_answering(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<errors::RegistryError>()
            .is_some_and(errors::RegistryError::shows_registry_gone)
    })
}

/// Digest check for bytes that will be trusted as a manifest or config.
pub fn verify_digest(bytes: &[u8], expected: &str, what: &str) -> Result<()> {
    let actual = sha256_digest(bytes);
    if actual != expected {
        bail!("{what} has digest {actual}, expected {expected}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_path_components() {
        let tagged: Reference = "127.0.0.1:5000/a/b:v1".parse().unwrap();
        assert_eq!(tag_or_digest(&tagged), "v1");
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = Reference::with_digest("r".into(), "a".into(), digest.clone());
        assert_eq!(tag_or_digest(&pinned), digest);
        let hub: Reference = "busybox".parse().unwrap();
        assert_eq!(hub.resolve_registry(), "index.docker.io");
        assert_eq!(hub.repository(), "library/busybox");
    }
}
