//! Blob downloads: `GET /v2/NAME/blobs/DIGEST` (following a redirect to
//! storage without credentials), streamed to a file or, for small blobs,
//! into memory up to a limit, hashed on the way and checked against the
//! digest. A broken download is retried from the start.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::bearer::Scope;
use super::errors::{ErrorKind, RegistryError};
use super::timeouts::next_chunk;
use super::transport::{Body, Transport, chunk_error, read_limited};
use crate::progress;

/// The response to a blob GET, checked for 200.
async fn get(
    transport: &Transport,
    registry: &str,
    repository: &str,
    digest: &str,
) -> Result<(reqwest::Response, String), RegistryError> {
    let path = format!("/v2/{repository}/blobs/{digest}");
    let request = format!("GET {path}");
    let response = transport
        .send_path(
            registry,
            &Scope::pull(repository),
            Method::GET,
            &path,
            HeaderMap::new(),
            Body::Empty,
        )
        .await?;
    let response = transport
        .expect(registry, &request, response, &[StatusCode::OK])
        .await?;
    Ok((response, request))
}

/// Streams a blob into `path` (created or truncated).
pub async fn to_file(
    transport: &Transport,
    registry: &str,
    repository: &str,
    digest: &str,
    path: &Path,
) -> Result<(), RegistryError> {
    let what = format!("download of {digest} from {registry}/{repository}");
    let local = |err: std::io::Error| {
        RegistryError::new(
            registry,
            ErrorKind::Local(format!("cannot write {}: {err}", path.display())),
        )
    };
    transport
        .retry
        .for_transfer()
        .run(registry, &what, || async {
            let (response, request) = get(transport, registry, repository, digest).await?;
            let transfer = response.content_length().map(|size| {
                Arc::new(progress::transfer(
                    "Downloading",
                    &format!("{} from {repository}", short(digest)),
                    Some(size),
                ))
            });
            let file = tokio::fs::File::create(path).await.map_err(local)?;
            let mut writer = tokio::io::BufWriter::with_capacity(256 * 1024, file);
            let mut hasher = Sha256::new();
            let mut stream = response.bytes_stream();
            let stall = transport.timeouts.stall();
            while let Some(chunk) = next_chunk(&mut stream, stall)
                .await
                .map_err(|err| chunk_error(registry, &request, err, transport.timeouts))?
            {
                hasher.update(&chunk);
                writer.write_all(&chunk).await.map_err(local)?;
                if let Some(transfer) = &transfer {
                    transfer.advance(chunk.len() as u64);
                }
            }
            writer.flush().await.map_err(local)?;
            check(registry, digest, hasher)
        })
        .await
}

/// Reads a blob of at most `limit` bytes into memory (configs).
pub async fn to_memory(
    transport: &Transport,
    registry: &str,
    repository: &str,
    digest: &str,
    limit: usize,
) -> Result<Bytes, RegistryError> {
    let what = format!("download of {digest} from {registry}/{repository}");
    transport
        .retry
        .run(registry, &what, || async {
            let (response, request) = get(transport, registry, repository, digest).await?;
            let bytes = read_limited(
                registry,
                &request,
                response,
                limit,
                transport.timeouts,
                "a config",
            )
            .await?;
            let mut hasher = Sha256::new();
            hasher.update(&bytes);
            check(registry, digest, hasher)?;
            Ok(bytes)
        })
        .await
}

fn check(registry: &str, expected: &str, hasher: Sha256) -> Result<(), RegistryError> {
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual == expected {
        Ok(())
    } else {
        Err(RegistryError::new(
            registry,
            ErrorKind::Digest {
                expected: expected.to_string(),
                actual,
            },
        ))
    }
}

/// `sha256:` and the first 12 hex digits, for progress lines.
pub fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
