//! Manifests and indexes: pulled by tag or digest with the media types
//! cargo-krust understands (bytes kept exactly, digest computed from them and
//! checked when asked for by digest, and against the registry's
//! `Docker-Content-Digest`), looked up by HEAD (a header that is no digest
//! is an error, never a path), and pushed with their media type.

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use super::bearer::Scope;
use super::errors::{ErrorKind, RegistryError, printable};
use super::transport::{Body, Operation, Transport, checked_digest, read_limited};
use crate::oci::{ACCEPTED_MANIFEST_TYPES, digest_hex, sha256_digest};

/// Registries refuse manifests over 4 MiB; twice that is plenty.
const MANIFEST_LIMIT: usize = 8 * 1024 * 1024;

fn accept() -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&ACCEPTED_MANIFEST_TYPES.join(", ")) {
        headers.insert(ACCEPT, value);
    }
    headers
}

/// A GET or HEAD of a manifest path, accepting the types cargo-krust reads.
async fn read(
    transport: &Transport,
    registry: &str,
    repository: &str,
    method: Method,
    path: &str,
) -> Result<reqwest::Response, RegistryError> {
    transport
        .send_path(
            registry,
            &Scope::pull(repository),
            method,
            path,
            accept(),
            Body::Empty,
        )
        .await
}

/// The path of a manifest by tag or digest; a reference with a `:` must be
/// a digest.
fn manifest_path(
    registry: &str,
    repository: &str,
    reference: &str,
) -> Result<String, RegistryError> {
    if reference.contains(':') {
        checked_digest(registry, reference)?;
    }
    Ok(format!("/v2/{repository}/manifests/{reference}"))
}

/// The `Docker-Content-Digest` of a response: `None` when absent, an error
/// when it is no digest.
fn content_digest(
    registry: &str,
    request: &str,
    response: &reqwest::Response,
) -> Result<Option<String>, RegistryError> {
    let Some(value) = response
        .headers()
        .get(HeaderName::from_static("docker-content-digest"))
    else {
        return Ok(None);
    };
    match value.to_str().ok().filter(|v| digest_hex(v).is_some()) {
        Some(digest) => Ok(Some(digest.to_string())),
        None => Err(RegistryError::new(
            registry,
            ErrorKind::Protocol(format!(
                "{request} was answered with a Docker-Content-Digest that is no sha256 digest: `{}`",
                printable(&String::from_utf8_lossy(value.as_bytes()))
            )),
        )),
    }
}

/// `GET /v2/NAME/manifests/REF`: the bytes and their digest.
pub async fn pull(
    transport: &Transport,
    registry: &str,
    repository: &str,
    reference: &str,
) -> Result<(Bytes, String), RegistryError> {
    let path = manifest_path(registry, repository, reference)?;
    let request = format!("GET {path}");
    transport
        .retried(Operation::Request, registry, &request, || async {
            let response = read(transport, registry, repository, Method::GET, &path).await?;
            let response = transport
                .expect(registry, &request, response, &[StatusCode::OK])
                .await?;
            let announced = content_digest(registry, &request, &response)?;
            let bytes = read_limited(
                registry,
                &request,
                response,
                MANIFEST_LIMIT,
                transport.timeouts,
                "a manifest",
            )
            .await?;
            let digest = sha256_digest(&bytes);
            let by_digest = reference.starts_with("sha256:").then_some(reference);
            if let Some(expected) = by_digest.or(announced.as_deref())
                && digest != expected
            {
                return Err(RegistryError::new(
                    registry,
                    ErrorKind::Digest {
                        expected: expected.to_string(),
                        actual: digest,
                    },
                ));
            }
            Ok((bytes, digest))
        })
        .await
}

/// `HEAD /v2/NAME/manifests/TAG`: the digest it points at, `None` for 404.
/// Registries that send no `Docker-Content-Digest` get a GET.
pub async fn digest(
    transport: &Transport,
    registry: &str,
    repository: &str,
    reference: &str,
) -> Result<Option<String>, RegistryError> {
    let path = manifest_path(registry, repository, reference)?;
    let request = format!("HEAD {path}");
    let header = transport
        .retried(Operation::Request, registry, &request, || async {
            let response = read(transport, registry, repository, Method::HEAD, &path).await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let response = transport
                .expect(registry, &request, response, &[StatusCode::OK])
                .await?;
            content_digest(registry, &request, &response).map(Some)
        })
        .await?;
    match header {
        None => Ok(None),
        Some(Some(digest)) => Ok(Some(digest)),
        Some(None) => match pull(transport, registry, repository, reference).await {
            Ok((_, digest)) => Ok(Some(digest)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        },
    }
}

/// `GET /v2/NAME/referrers/DIGEST`: the referrers list (an image index) of
/// a manifest, or `None` from a registry without the referrers API (which
/// answers 404, or 400/405/501 for a path it does not know).
pub async fn referrers(
    transport: &Transport,
    registry: &str,
    repository: &str,
    digest: &str,
) -> Result<Option<Bytes>, RegistryError> {
    checked_digest(registry, digest)?;
    let path = format!("/v2/{repository}/referrers/{digest}");
    let request = format!("GET {path}");
    transport
        .retried(Operation::Request, registry, &request, || async {
            let response = read(transport, registry, repository, Method::GET, &path).await?;
            let unsupported = [
                StatusCode::NOT_FOUND,
                StatusCode::BAD_REQUEST,
                StatusCode::METHOD_NOT_ALLOWED,
                StatusCode::NOT_IMPLEMENTED,
            ];
            if unsupported.contains(&response.status()) {
                return Ok(None);
            }
            let response = transport
                .expect(registry, &request, response, &[StatusCode::OK])
                .await?;
            read_limited(
                registry,
                &request,
                response,
                MANIFEST_LIMIT,
                transport.timeouts,
                "a referrers list",
            )
            .await
            .map(Some)
        })
        .await
}

/// `PUT /v2/NAME/manifests/REF` with the document's media type. `true`
/// when the answer carries `OCI-Subject`: the registry implements the
/// referrers API and lists the manifest as a referrer of its subject.
pub async fn push(
    transport: &Transport,
    registry: &str,
    repository: &str,
    reference: &str,
    bytes: Bytes,
    media_type: &str,
) -> Result<bool, RegistryError> {
    let path = manifest_path(registry, repository, reference)?;
    let request = format!("PUT {path}");
    let mut headers = HeaderMap::new();
    let content_type = HeaderValue::from_str(media_type).map_err(|_| {
        RegistryError::new(
            registry,
            ErrorKind::Protocol(format!("invalid media type {media_type}")),
        )
    })?;
    headers.insert(CONTENT_TYPE, content_type);
    transport
        .retried(Operation::Request, registry, &request, || async {
            let response = transport
                .send_path(
                    registry,
                    &Scope::push(repository),
                    Method::PUT,
                    &path,
                    headers.clone(),
                    Body::Bytes(bytes.clone()),
                )
                .await?;
            if response.status().is_success() {
                Ok(response
                    .headers()
                    .contains_key(HeaderName::from_static("oci-subject")))
            } else {
                Err(transport.status_error(registry, &request, response).await)
            }
        })
        .await
}
