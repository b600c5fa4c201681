//! Manifests and indexes: pulled by tag or digest with the media types
//! cargo-krust understands (bytes kept exactly, digest computed from them and
//! checked when asked for by digest), looked up by HEAD, and pushed with
//! their media type.

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use super::bearer::Scope;
use super::errors::{ErrorKind, RegistryError};
use super::transport::{Body, Transport, read_limited};
use crate::oci::{ACCEPTED_MANIFEST_TYPES, sha256_digest};

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

/// `GET /v2/NAME/manifests/REF`: the bytes and their digest.
pub async fn pull(
    transport: &Transport,
    registry: &str,
    repository: &str,
    reference: &str,
) -> Result<(Bytes, String), RegistryError> {
    let path = format!("/v2/{repository}/manifests/{reference}");
    let request = format!("GET {path}");
    transport
        .retry
        .run(registry, &request, || async {
            let response = read(transport, registry, repository, Method::GET, &path).await?;
            let response = transport
                .expect(registry, &request, response, &[StatusCode::OK])
                .await?;
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
            if reference.starts_with("sha256:") && digest != reference {
                return Err(RegistryError::new(
                    registry,
                    ErrorKind::Digest {
                        expected: reference.to_string(),
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
    let path = format!("/v2/{repository}/manifests/{reference}");
    let request = format!("HEAD {path}");
    let header = transport
        .retry
        .run(registry, &request, || async {
            let response = read(transport, registry, repository, Method::HEAD, &path).await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let response = transport
                .expect(registry, &request, response, &[StatusCode::OK])
                .await?;
            Ok(Some(
                response
                    .headers()
                    .get(HeaderName::from_static("docker-content-digest"))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            ))
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

/// `PUT /v2/NAME/manifests/REF` with the document's media type.
pub async fn push(
    transport: &Transport,
    registry: &str,
    repository: &str,
    reference: &str,
    bytes: Bytes,
    media_type: &str,
) -> Result<(), RegistryError> {
    let path = format!("/v2/{repository}/manifests/{reference}");
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
        .retry
        .run(registry, &request, || async {
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
                Ok(())
            } else {
                Err(transport.status_error(registry, &request, response).await)
            }
        })
        .await
}
