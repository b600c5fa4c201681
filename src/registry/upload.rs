//! Blob uploads (the distribution spec's "pushing blobs"): a POST opens a
//! session, then one monolithic PUT streams the whole blob from its file; a
//! registry that refuses that gets the chunked protocol (PATCHes with
//! `Content-Range`, then an empty PUT), and keeps getting it for the rest of
//! the run. The unit of retry is the whole upload: a new session and the
//! file read again, since a broken session cannot be resumed reliably.
//! Also cross-repository mounts, where a refusal is an answer, not an error,
//! and streamed uploads: bytes sent (one PATCH, chunked transfer encoding)
//! while they are still being produced, the session committed once their
//! digest is known — what `docker push` does with the layers it compresses
//! on the fly.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::bearer::Scope;
use super::errors::{ErrorKind, RegistryError, is_transient_status};
use super::transport::{Body, Endpoint, Operation, Transport, checked_digest};
use crate::progress::{self, Transfer};

/// Where the bytes of an upload are read from (again, on each attempt).
#[derive(Clone)]
pub enum Source {
    File(PathBuf),
    Bytes(Bytes),
}

/// Chunk size of the chunked protocol, unless the registry asks for more
/// (`OCI-Chunk-Min-Length`); large enough for the 5 MiB minimum parts of
/// cloud storage back ends.
const CHUNK_SIZE: u64 = 8 * 1024 * 1024;

/// Answers to a monolithic PUT that mean "not like this": try chunks.
const MONOLITHIC_REFUSED: &[StatusCode] = &[
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::LENGTH_REQUIRED,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    StatusCode::RANGE_NOT_SATISFIABLE,
    StatusCode::NOT_IMPLEMENTED,
];

/// Uploads a blob of `size` bytes with `digest` into `repository`.
pub async fn upload(
    transport: &Transport,
    registry: &str,
    repository: &str,
    digest: &str,
    size: u64,
    source: Source,
    transfer: Option<Arc<Transfer>>,
) -> Result<(), RegistryError> {
    let scope = Scope::push(repository);
    let what = format!("upload of {digest} to {registry}/{repository}");
    let upload = Upload {
        transport,
        repository,
        digest,
        size,
        source: &source,
        transfer: &transfer,
        scope: &scope,
    };
    transport
        .retried(Operation::Transfer, registry, &what, || async {
            let endpoint = transport.endpoint(registry).await?;
            if !endpoint.monolithic_refused.load(Ordering::Relaxed) {
                let (session, _) = upload.open_session(&endpoint).await?;
                match upload.put_whole(&endpoint, session).await? {
                    None => return Ok(()),
                    Some(status) => {
                        endpoint.monolithic_refused.store(true, Ordering::Relaxed);
                        progress::verbose(format!(
                            "registry {registry} refused a monolithic upload ({status}); uploading in chunks"
                        ));
                    }
                }
            }
            upload.chunked(&endpoint).await
        })
        .await
}

struct Upload<'a> {
    transport: &'a Transport,
    repository: &'a str,
    digest: &'a str,
    size: u64,
    source: &'a Source,
    transfer: &'a Option<Arc<Transfer>>,
    scope: &'a Scope,
}

impl Upload<'_> {
    /// Sends one request of this upload; also returns how to name it.
    async fn send(
        &self,
        endpoint: &Endpoint,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Body,
    ) -> Result<(reqwest::Response, String), RegistryError> {
        let request = format!("{method} {}", url.path());
        let response = self
            .transport
            .send(endpoint, self.scope, method, url, headers, body)
            .await?;
        Ok((response, request))
    }

    /// The PUT that closes a session, naming the blob's digest.
    async fn close(
        &self,
        endpoint: &Endpoint,
        session: Url,
        headers: HeaderMap,
        body: Body,
    ) -> Result<(reqwest::Response, String), RegistryError> {
        let url = with_digest(session, self.digest);
        self.send(endpoint, Method::PUT, url, headers, body).await
    }

    async fn open_session(&self, endpoint: &Endpoint) -> Result<(Url, Option<u64>), RegistryError> {
        open_session(self.transport, endpoint, self.scope, self.repository).await
    }

    /// The body for `len` bytes from `offset`.
    fn body(&self, offset: u64, len: u64) -> Body {
        match self.source {
            Source::File(path) => Body::File {
                path: path.clone(),
                offset,
                len,
                transfer: self.transfer.clone(),
            },
            Source::Bytes(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = usize::try_from(offset + len)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                Body::Bytes(bytes.slice(start..end))
            }
        }
    }

    /// One PUT with the whole blob. `Some(status)` when the registry
    /// refuses monolithic uploads.
    async fn put_whole(
        &self,
        endpoint: &Endpoint,
        session: Url,
    ) -> Result<Option<StatusCode>, RegistryError> {
        let (response, request) = self
            .close(endpoint, session, octet_stream(), self.body(0, self.size))
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(None);
        }
        if MONOLITHIC_REFUSED.contains(&status) {
            return Ok(Some(status));
        }
        Err(self
            .transport
            .status_error(&endpoint.registry, &request, response)
            .await)
    }

    /// The chunked protocol, on a session of its own.
    async fn chunked(&self, endpoint: &Endpoint) -> Result<(), RegistryError> {
        let registry = &endpoint.registry;
        let (mut session, min_chunk) = self.open_session(endpoint).await?;
        let chunk = min_chunk.unwrap_or(0).max(CHUNK_SIZE);
        let mut offset = 0;
        while offset < self.size {
            let len = chunk.min(self.size - offset);
            let mut headers = octet_stream();
            headers.insert(
                HeaderName::from_static("content-range"),
                HeaderValue::from_str(&format!("{offset}-{}", offset + len - 1))
                    .unwrap_or_else(|_| HeaderValue::from_static("0-0")),
            );
            let body = self.body(offset, len);
            let (response, request) = self
                .send(endpoint, Method::PATCH, session, headers, body)
                .await?;
            let response = self
                .transport
                .expect(registry, &request, response, &[StatusCode::ACCEPTED])
                .await?;
            session = session_location(self.transport, registry, &request, &response)?;
            offset += len;
        }
        let (response, request) = self
            .close(endpoint, session, HeaderMap::new(), Body::Empty)
            .await?;
        self.transport
            .expect(registry, &request, response, &[StatusCode::CREATED])
            .await?;
        Ok(())
    }
}

/// `POST /v2/NAME/blobs/uploads/`: the session's URL and the smallest
/// chunk the registry accepts, if it says.
async fn open_session(
    transport: &Transport,
    endpoint: &Endpoint,
    scope: &Scope,
    repository: &str,
) -> Result<(Url, Option<u64>), RegistryError> {
    let url = endpoint.url(&format!("/v2/{repository}/blobs/uploads/"))?;
    let request = format!("POST {}", url.path());
    let response = transport
        .send(
            endpoint,
            scope,
            Method::POST,
            url,
            HeaderMap::new(),
            Body::Empty,
        )
        .await?;
    let response = transport
        .expect(
            &endpoint.registry,
            &request,
            response,
            &[StatusCode::ACCEPTED],
        )
        .await?;
    let min_chunk = response
        .headers()
        .get(HeaderName::from_static("oci-chunk-min-length"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let session = session_location(transport, &endpoint.registry, &request, &response)?;
    Ok((session, min_chunk))
}

/// An upload session for a streamed blob: [`commit_streamed`] it once
/// every byte is in, or [`cancel_streamed`] it (at any time).
#[derive(Clone)]
pub struct StreamedSession {
    url: Url,
}

/// Opens an upload session for a streamed blob (retried like any request).
pub async fn open_streamed(
    transport: &Transport,
    registry: &str,
    repository: &str,
) -> Result<StreamedSession, RegistryError> {
    let scope = Scope::push(repository);
    transport
        .retried(
            Operation::Request,
            registry,
            &format!("start of an upload to {registry}/{repository}"),
            || async {
                let endpoint = transport.endpoint(registry).await?;
                let (url, _) = open_session(transport, &endpoint, &scope, repository).await?;
                Ok(StreamedSession { url })
            },
        )
        .await
}

/// Sends `chunks`, as they come, as one PATCH into an open session. Not
/// retried: streamed bytes cannot be sent again, so a failure here leaves
/// the caller to upload the finished blob the usual way.
pub async fn stream(
    transport: &Transport,
    registry: &str,
    repository: &str,
    session: StreamedSession,
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    transfer: Option<Arc<Transfer>>,
) -> Result<StreamedSession, RegistryError> {
    let scope = Scope::push(repository);
    let endpoint = transport.endpoint(registry).await?;
    let request = format!("PATCH {}", session.url.path());
    let body = Body::Stream {
        chunks: Arc::new(std::sync::Mutex::new(Some(chunks))),
        transfer,
    };
    let response = transport
        .send(
            &endpoint,
            &scope,
            Method::PATCH,
            session.url,
            octet_stream(),
            body,
        )
        .await?;
    let response = transport
        .expect(registry, &request, response, &[StatusCode::ACCEPTED])
        .await?;
    Ok(StreamedSession {
        url: session_location(transport, registry, &request, &response)?,
    })
}

/// Closes a streamed session with the digest of what was sent; the
/// registry checks it and keeps the blob.
pub async fn commit_streamed(
    transport: &Transport,
    registry: &str,
    repository: &str,
    session: StreamedSession,
    digest: &str,
) -> Result<(), RegistryError> {
    let scope = Scope::push(repository);
    let endpoint = transport.endpoint(registry).await?;
    let url = with_digest(session.url, digest);
    let request = format!("PUT {}", url.path());
    let response = transport
        .send(
            &endpoint,
            &scope,
            Method::PUT,
            url,
            HeaderMap::new(),
            Body::Empty,
        )
        .await?;
    transport
        .expect(registry, &request, response, &[StatusCode::CREATED])
        .await?;
    Ok(())
}

/// Drops a streamed session (the registry had the blob already). A failure
/// only leaves the registry an abandoned session to expire.
pub async fn cancel_streamed(
    transport: &Transport,
    registry: &str,
    repository: &str,
    session: StreamedSession,
) {
    let scope = Scope::push(repository);
    let Ok(endpoint) = transport.endpoint(registry).await else {
        return;
    };
    let _ = transport
        .send(
            &endpoint,
            &scope,
            Method::DELETE,
            session.url,
            HeaderMap::new(),
            Body::Empty,
        )
        .await;
}

/// `HEAD /v2/NAME/blobs/DIGEST` before an upload (so with push access):
/// whether the repository holds the blob already.
pub async fn exists(
    transport: &Transport,
    registry: &str,
    repository: &str,
    digest: &str,
) -> Result<bool, RegistryError> {
    let digest = checked_digest(registry, digest)?;
    let path = format!("/v2/{repository}/blobs/{digest}");
    let request = format!("HEAD {path}");
    let scope = Scope::push(repository);
    transport
        .retried(Operation::Request, registry, &request, || async {
            let response = transport
                .send_path(
                    registry,
                    &scope,
                    Method::HEAD,
                    &path,
                    HeaderMap::new(),
                    Body::Empty,
                )
                .await?;
            match response.status() {
                StatusCode::OK => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(transport.status_error(registry, &request, response).await),
            }
        })
        .await
}

/// Asks the registry to mount `digest` from `from` into `repository`:
/// `true` when mounted, `false` when it declined (the caller uploads).
pub async fn mount(
    transport: &Transport,
    registry: &str,
    repository: &str,
    from: &str,
    digest: &str,
) -> Result<bool, RegistryError> {
    let digest = checked_digest(registry, digest)?;
    let scope = Scope::mount(repository, from);
    let path = format!("/v2/{repository}/blobs/uploads/");
    let what = format!("mount of {digest} from {from} into {registry}/{repository}");
    transport
        .retried(Operation::Request, registry, &what, || async {
            let endpoint = transport.endpoint(registry).await?;
            let mut url = endpoint.url(&path)?;
            url.query_pairs_mut()
                .append_pair("mount", digest)
                .append_pair("from", from);
            let sent = transport
                .send(
                    &endpoint,
                    &scope,
                    Method::POST,
                    url,
                    HeaderMap::new(),
                    Body::Empty,
                )
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(RegistryError {
                    kind: ErrorKind::Unauthorized { status, .. },
                    ..
                }) => {
                    progress::verbose(format!("{what} declined ({status})"));
                    return Ok(false);
                }
                Err(err) => return Err(err),
            };
            let status = response.status();
            if status == StatusCode::CREATED {
                return Ok(true);
            }
            if is_transient_status(status) {
                return Err(transport
                    .status_error(registry, &format!("POST {path}"), response)
                    .await);
            }
            // 202 is the registry opening an upload session instead.
            progress::verbose(format!("{what} declined ({status})"));
            Ok(false)
        })
        .await
}

/// The session URL an upload request was answered with.
fn session_location(
    transport: &Transport,
    registry: &str,
    request: &str,
    response: &reqwest::Response,
) -> Result<Url, RegistryError> {
    transport
        .location(registry, request, response)?
        .ok_or_else(|| {
            RegistryError::new(
                registry,
                ErrorKind::Protocol(format!("{request} was answered without a Location")),
            )
        })
}

/// The session URL with `digest=` added to whatever query it already has.
fn with_digest(mut url: Url, digest: &str) -> Url {
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

fn octet_stream() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_joins_the_session_query() {
        let session =
            Url::parse("https://r.example/v2/a/blobs/uploads/u1?_state=abc%3D%3D").unwrap();
        assert_eq!(
            with_digest(session, "sha256:00").as_str(),
            "https://r.example/v2/a/blobs/uploads/u1?_state=abc%3D%3D&digest=sha256%3A00"
        );
        let bare = Url::parse("https://r.example/v2/a/blobs/uploads/u1").unwrap();
        assert_eq!(
            with_digest(bare, "sha256:00").query(),
            Some("digest=sha256%3A00")
        );
    }
}
