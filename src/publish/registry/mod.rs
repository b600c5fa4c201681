//! The registry client: a thin layer over oci-client that adds what
//! cargo-krust needs from every registry: credentials from the Docker config,
//! plain HTTP only for loopback (and `--insecure-registry`) hosts, blobs
//! streamed from and to files, cross-repository mounts that fall back to an
//! upload, and errors that name the registry and what was asked of it.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::TryStreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tokio_util::io::ReaderStream;

use crate::oci::{ACCEPTED_MANIFEST_TYPES, sha256_digest};
use crate::progress;

/// A manifest as pulled: its exact bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct PulledManifest {
    pub bytes: Bytes,
    pub digest: String,
    pub media_type: String,
}

pub struct RegistryClient {
    client: Client,
    /// Registries whose credentials have been handed to the client.
    authenticated: Mutex<HashSet<String>>,
}

/// Whether plain HTTP may be used with this registry without asking (SPEC §7).
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl RegistryClient {
    /// A client for the given registries; `insecure` lists the `HOST[:PORT]`
    /// values of `--insecure-registry`.
    pub fn new<'a>(
        registries: impl IntoIterator<Item = &'a str>,
        insecure: &[String],
    ) -> Result<RegistryClient> {
        let plain_http: Vec<String> = registries
            .into_iter()
            .filter(|r| is_loopback(r) || insecure.iter().any(|i| i == r))
            .map(str::to_string)
            .chain(insecure.iter().cloned())
            .collect();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http),
            use_monolithic_push: true,
            user_agent: concat!("cargo-krust/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).context("cannot set up the registry client")?;
        Ok(RegistryClient {
            client,
            authenticated: Mutex::new(HashSet::new()),
        })
    }

    /// Hands the registry's credentials to the client once.
    async fn authenticate(&self, registry: &str) {
        let mut done = self.authenticated.lock().await;
        if done.insert(registry.to_string()) {
            let auth = credentials_for(registry);
            self.client.store_auth_if_needed(registry, &auth).await;
        }
    }

    /// Pulls a manifest or index by tag or digest.
    pub async fn pull_manifest(&self, reference: &Reference) -> Result<PulledManifest> {
        self.authenticate(reference.resolve_registry()).await;
        let auth = credentials_for(reference.resolve_registry());
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(reference, &auth, ACCEPTED_MANIFEST_TYPES)
            .await
            .map_err(|err| describe(err, reference.resolve_registry()))
            .with_context(|| format!("cannot pull manifest of {reference}"))?;
        let media_type = crate::oci::manifest_media_type(&bytes)
            .with_context(|| format!("cannot read the manifest of {reference}"))?;
        Ok(PulledManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// Downloads a blob into memory, checking its digest (for configs).
    pub async fn pull_small_blob(&self, repository: &Reference, digest: &str) -> Result<Bytes> {
        self.authenticate(repository.resolve_registry()).await;
        let mut out = Vec::new();
        let descriptor = oci_client::manifest::OciDescriptor {
            digest: digest.to_string(),
            ..Default::default()
        };
        self.client
            .pull_blob(repository, &descriptor, &mut out)
            .await
            .map_err(|err| describe(err, repository.resolve_registry()))
            .with_context(|| format!("cannot pull blob {digest} from {}", repo_of(repository)))?;
        Ok(Bytes::from(out))
    }

    /// Streams a blob to a file, checking its digest on the way.
    pub async fn pull_blob_to_file(
        &self,
        repository: &Reference,
        digest: &str,
        path: &Path,
    ) -> Result<()> {
        self.authenticate(repository.resolve_registry()).await;
        let file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = tokio::io::BufWriter::new(file);
        let descriptor = oci_client::manifest::OciDescriptor {
            digest: digest.to_string(),
            ..Default::default()
        };
        self.client
            .pull_blob(repository, &descriptor, &mut writer)
            .await
            .map_err(|err| describe(err, repository.resolve_registry()))
            .with_context(|| format!("cannot pull blob {digest} from {}", repo_of(repository)))?;
        writer
            .flush()
            .await
            .context("cannot write downloaded blob")?;
        Ok(())
    }

    /// Whether the repository already holds the blob.
    pub async fn blob_exists(&self, repository: &Reference, digest: &str) -> Result<bool> {
        self.authenticate(repository.resolve_registry()).await;
        self.client
            .blob_exists(repository, digest)
            .await
            .map_err(|err| describe(err, repository.resolve_registry()))
            .with_context(|| format!("cannot check for blob {digest} in {}", repo_of(repository)))
    }

    /// Asks the registry to mount a blob from another repository; `false`
    /// when the registry declines (the caller then uploads).
    pub async fn mount_blob(
        &self,
        repository: &Reference,
        from: &Reference,
        digest: &str,
    ) -> Result<bool> {
        self.authenticate(repository.resolve_registry()).await;
        match self.client.mount_blob(repository, from, digest).await {
            Ok(()) => Ok(true),
            Err(err) => {
                progress::verbose(format!(
                    "mount of {digest} from {} declined: {err}",
                    from.repository()
                ));
                Ok(false)
            }
        }
    }

    /// Uploads a blob from a file, streamed.
    pub async fn push_blob_file(
        &self,
        repository: &Reference,
        digest: &str,
        size: u64,
        path: &Path,
    ) -> Result<()> {
        self.authenticate(repository.resolve_registry()).await;
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let stream = ReaderStream::with_capacity(file, 256 * 1024)
            .map_ok(Bytes::from)
            .map_err(OciDistributionError::IoError);
        self.client
            .push_blob_stream(repository, stream, digest, Some(size))
            .await
            .map_err(|err| describe(err, repository.resolve_registry()))
            .with_context(|| format!("cannot upload blob {digest} to {}", repo_of(repository)))?;
        Ok(())
    }

    /// Uploads a small blob held in memory.
    pub async fn push_blob_bytes(
        &self,
        repository: &Reference,
        digest: &str,
        bytes: Bytes,
    ) -> Result<()> {
        self.authenticate(repository.resolve_registry()).await;
        self.client
            .push_blob(repository, bytes, digest)
            .await
            .map_err(|err| describe(err, repository.resolve_registry()))
            .with_context(|| format!("cannot upload blob {digest} to {}", repo_of(repository)))?;
        Ok(())
    }

    /// PUTs a manifest or index under the reference's tag or digest.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<()> {
        self.authenticate(reference.resolve_registry()).await;
        let content_type = media_type
            .parse()
            .with_context(|| format!("invalid media type {media_type}"))?;
        self.client
            .push_manifest_raw(reference, bytes, content_type)
            .await
            .map_err(|err| describe(err, reference.resolve_registry()))
            .with_context(|| format!("cannot push manifest {reference}"))?;
        Ok(())
    }

    /// The digest a tag points at, or `None` when the tag does not exist.
    pub async fn manifest_digest(&self, reference: &Reference) -> Result<Option<String>> {
        self.authenticate(reference.resolve_registry()).await;
        let auth = credentials_for(reference.resolve_registry());
        match self.client.fetch_manifest_digest(reference, &auth).await {
            Ok(digest) => Ok(Some(digest)),
            Err(OciDistributionError::ImageManifestNotFoundError(_)) => Ok(None),
            Err(err) => Err(describe(err, reference.resolve_registry()))
                .with_context(|| format!("cannot look up {reference}")),
        }
    }
}

/// `registry/repository` of a reference, for messages about blobs (whose
/// references carry the blob digest, which is not part of the image name).
fn repo_of(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}

/// Credentials from the Docker config (or podman's auth file), anonymous when
/// there are none. Never logged.
fn credentials_for(registry: &str) -> RegistryAuth {
    let lookup = docker_credential::get_credential(registry)
        .or_else(|_| docker_credential::get_podman_credential(registry));
    match lookup {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            RegistryAuth::Bearer(token)
        }
        Err(_) => RegistryAuth::Anonymous,
    }
}

/// Turns an oci-client error into one that names the registry and, for
/// transport failures, says what to check.
fn describe(err: OciDistributionError, registry: &str) -> anyhow::Error {
    match &err {
        OciDistributionError::RequestError(inner) if inner.is_connect() || inner.is_timeout() => {
            anyhow::anyhow!(
                "registry {registry} is unreachable ({}); check the registry address and that it is running",
                root_cause(inner)
            )
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => anyhow::anyhow!(
            "registry {registry} refused the credentials ({err}); log in with `docker login {registry}`"
        ),
        _ => anyhow::anyhow!("registry {registry}: {err}"),
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
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
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "registry.localhost:80",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "ghcr.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
