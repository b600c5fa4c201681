//! Blob downloads: `GET /v2/NAME/blobs/DIGEST` (following a redirect to
//! storage without credentials), streamed to a file or, for small blobs,
//! into memory up to a limit, counted and hashed on the way and checked
//! against the descriptor: a blob longer or shorter than its size, or whose
//! bytes do not hash to its digest, is an error. A broken download is
//! retried from the start.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use tokio::io::AsyncWriteExt;

use super::bearer::Scope;
use super::errors::{ErrorKind, RegistryError};
use super::timeouts::{Pace, next_chunk};
use super::transport::{Body, Operation, Transport, checked_digest, chunk_error};
use crate::progress;

/// A blob wanted: its digest and its size, as its descriptor says.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub digest: &'a str,
    pub size: u64,
}

/// A blob's body as it arrives, counted and hashed against its
/// descriptor: more bytes than its size stop the download at once.
struct Incoming<'a> {
    transport: &'a Transport,
    registry: &'a str,
    request: String,
    wanted: Wanted<'a>,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    pace: Pace,
    count: u64,
    hasher: Sha256,
}

impl<'a> Incoming<'a> {
    /// `GET` the blob: a 200 whose announced length, if any, is the
    /// descriptor's size.
    async fn open(
        transport: &'a Transport,
        registry: &'a str,
        repository: &str,
        wanted: Wanted<'a>,
    ) -> Result<Incoming<'a>, RegistryError> {
        let digest = checked_digest(registry, wanted.digest)?;
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
        let announced = response.content_length();
        let incoming = Incoming {
            transport,
            registry,
            request,
            wanted,
            body: response.bytes_stream().boxed(),
            pace: Pace::new(transport.timeouts),
            count: 0,
            hasher: Sha256::new(),
        };
        match announced {
            Some(length) if length != wanted.size => {
                Err(incoming.wrong_size(&format!("announced {length} bytes")))
            }
            _ => Ok(incoming),
        }
    }

    /// The next chunk, `None` at the end.
    async fn next(&mut self) -> Result<Option<Bytes>, RegistryError> {
        let timeouts = self.transport.timeouts;
        let chunk = next_chunk(&mut self.body, &mut self.pace)
            .await
            .map_err(|err| chunk_error(self.registry, &self.request, err, timeouts))?;
        if let Some(chunk) = &chunk {
            self.count += chunk.len() as u64;
            if self.count > self.wanted.size {
                return Err(self.wrong_size(&format!("sent more than {} bytes", self.wanted.size)));
            }
            self.hasher.update(chunk);
        }
        Ok(chunk)
    }

    /// All of it came: the size and the digest of the descriptor.
    fn finish(self) -> Result<(), RegistryError> {
        if self.count != self.wanted.size {
            return Err(self.wrong_size(&format!("sent {} bytes", self.count)));
        }
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if actual != self.wanted.digest {
            return Err(RegistryError::new(
                self.registry,
                ErrorKind::Digest {
                    expected: self.wanted.digest.to_string(),
                    actual,
                },
            ));
        }
        Ok(())
    }

    /// A blob whose length is not its descriptor's size.
    fn wrong_size(&self, sent: &str) -> RegistryError {
        RegistryError::new(
            self.registry,
            ErrorKind::Protocol(format!(
                "{} {sent}, but the blob's descriptor gives a size of {} bytes",
                self.request, self.wanted.size
            )),
        )
    }
}

/// Streams a blob into `path` (created or truncated).
pub async fn to_file(
    transport: &Transport,
    registry: &str,
    repository: &str,
    wanted: Wanted<'_>,
    path: &Path,
) -> Result<(), RegistryError> {
    let what = format!("download of {} from {registry}/{repository}", wanted.digest);
    let local = |err: std::io::Error| {
        RegistryError::new(
            registry,
            ErrorKind::Local(format!("cannot write {}: {err}", path.display())),
        )
    };
    transport
        .retried(Operation::Transfer, registry, &what, || async {
            let mut incoming = Incoming::open(transport, registry, repository, wanted).await?;
            let transfer = progress::transfer(
                "Downloading",
                &format!("{} from {repository}", short(wanted.digest)),
                Some(wanted.size),
            );
            let file = tokio::fs::File::create(path).await.map_err(local)?;
            let mut writer = tokio::io::BufWriter::with_capacity(256 * 1024, file);
            while let Some(chunk) = incoming.next().await? {
                writer.write_all(&chunk).await.map_err(local)?;
                transfer.advance(chunk.len() as u64);
            }
            writer.flush().await.map_err(local)?;
            incoming.finish()
        })
        .await
}

/// Reads a blob of at most `limit` bytes into memory (configs).
pub async fn to_memory(
    transport: &Transport,
    registry: &str,
    repository: &str,
    wanted: Wanted<'_>,
    limit: usize,
) -> Result<Bytes, RegistryError> {
    if wanted.size > limit as u64 {
        return Err(RegistryError::new(
            registry,
            ErrorKind::Protocol(format!(
                "the descriptor of {} says {} bytes, more than the {limit} cargo-krust reads into memory",
                wanted.digest, wanted.size
            )),
        ));
    }
    let what = format!("download of {} from {registry}/{repository}", wanted.digest);
    transport
        .retried(Operation::Request, registry, &what, || async {
            let mut incoming = Incoming::open(transport, registry, repository, wanted).await?;
            let mut body = Vec::new();
            while let Some(chunk) = incoming.next().await? {
                body.extend_from_slice(&chunk);
            }
            incoming.finish()?;
            Ok(Bytes::from(body))
        })
        .await
}

/// `sha256:` and the first 12 hex digits, for progress lines.
pub fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
