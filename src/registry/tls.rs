//! Trust and the HTTP client: the system's CA certificates plus the bundle
//! named by `SSL_CERT_FILE` (SPEC §7), loaded by us so that a machine
//! without any CA store still gets a client (and a clear error when HTTPS is
//! actually needed), and a reqwest client on rustls that follows no
//! redirects by itself (the transport does, keeping method and body) and
//! gives up on a connection, or a registry gone silent, in time.
//! Also reads rustls errors out of a failed request, to tell an untrusted
//! certificate from a server that does not speak TLS.

use std::collections::HashSet;

use anyhow::{Context, Result};
use reqwest::{RequestBuilder, Response};
use rustls::pki_types::CertificateDer;

use super::errors::{RegistryError, from_reqwest};
use super::timeouts::{Activity, Stalled, Timeouts, unless_stalled};
use crate::progress;

/// The certificates HTTPS connections are verified against.
pub struct Roots {
    certs: Vec<CertificateDer<'static>>,
}

impl Roots {
    /// The system's roots (OpenSSL's default locations, or `SSL_CERT_DIR`
    /// / `SSL_CERT_FILE` when set, as OpenSSL reads them) and, when those
    /// variables replace the defaults, the default locations as well: a
    /// bundle named by `SSL_CERT_FILE` adds to the system's trust.
    pub fn load() -> Roots {
        let mut certs = Vec::new();
        let mut seen = HashSet::new();
        let mut add = |result: rustls_native_certs::CertificateResult| {
            for error in result.errors {
                progress::verbose(format!("skipping CA certificates: {error}"));
            }
            for cert in result.certs {
                if seen.insert(cert.as_ref().to_vec()) {
                    certs.push(cert);
                }
            }
        };
        add(rustls_native_certs::load_native_certs());
        if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some()
        {
            for dir in openssl_probe::candidate_cert_dirs() {
                add(rustls_native_certs::load_certs_from_paths(None, Some(dir)));
            }
        }
        progress::trace(format!("{} trusted CA certificates loaded", certs.len()));
        Roots { certs }
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// The HTTP client, whether it trusts no root at all (TLS errors say so),
/// and how long it waits.
pub struct Http {
    pub client: reqwest::Client,
    pub no_roots: bool,
    pub timeouts: Timeouts,
}

impl Http {
    /// A client for plain-HTTP registries only: it trusts nothing, so it
    /// costs no loading of roots.
    pub fn plain(timeouts: Timeouts) -> Result<Http> {
        Ok(Http {
            client: http_client(&Roots { certs: Vec::new() }, timeouts)?,
            no_roots: true,
            timeouts,
        })
    }

    /// Loads the roots (tens of milliseconds: every file of the system's CA
    /// directory is read and parsed) and builds the client.
    pub fn load(timeouts: Timeouts) -> Result<Http> {
        let roots = Roots::load();
        Ok(Http {
            client: http_client(&roots, timeouts)?,
            no_roots: roots.is_empty(),
            timeouts,
        })
    }

    /// Sends a request built on this client (`request` names it) and waits
    /// for the head of its answer, unless it stalls; `activity` hears of the
    /// request body's progress.
    pub async fn send(
        &self,
        registry: &str,
        request: &str,
        builder: RequestBuilder,
        activity: &Activity,
    ) -> Result<Response, RegistryError> {
        match unless_stalled(builder.send(), activity).await {
            Ok(sent) => sent.map_err(|err| from_reqwest(registry, request, &err, self.no_roots)),
            Err(Stalled) => Err(RegistryError::stalled(
                registry,
                request,
                self.timeouts.stall(),
            )),
        }
    }

    /// [`Self::send`] for a request whose body, if any, is small.
    pub async fn send_small(
        &self,
        registry: &str,
        request: &str,
        builder: RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let activity = Activity::new(self.timeouts);
        self.send(registry, request, builder, &activity).await
    }
}

/// The [`Http`] client, built on a blocking thread — from the moment the
/// transport exists when HTTPS is expected, so that loading the roots
/// overlaps the cargo builds instead of delaying the first request.
pub struct LazyHttp {
    ready: tokio::sync::OnceCell<Http>,
    loading: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<Http>>>>,
    timeouts: Timeouts,
}

impl LazyHttp {
    pub fn start(eager: bool, timeouts: Timeouts) -> LazyHttp {
        let loading = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|_| eager)
            .map(|runtime| runtime.spawn_blocking(move || Http::load(timeouts)));
        LazyHttp {
            ready: tokio::sync::OnceCell::new(),
            loading: std::sync::Mutex::new(loading),
            timeouts,
        }
    }

    /// The client, waiting for it to be built if need be.
    pub async fn get(&self) -> Result<&Http> {
        self.ready
            .get_or_try_init(|| async {
                let handle = self.loading.lock().ok().and_then(|mut h| h.take());
                match handle {
                    Some(handle) => handle.await.context("the HTTP client could not be built")?,
                    None => tokio::task::spawn_blocking({
                        let timeouts = self.timeouts;
                        move || Http::load(timeouts)
                    })
                    .await
                    .context("the HTTP client could not be built")?,
                }
            })
            .await
    }
}

/// The one HTTP client every registry request goes through. Its only
/// timeout is the connection's: a whole request may take as long as its
/// bytes keep moving, which [`Http::send`] and the body readers watch.
pub fn http_client(roots: &Roots, timeouts: Timeouts) -> Result<reqwest::Client> {
    let certs: Vec<reqwest::Certificate> = roots
        .certs
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok())
        .collect();
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cargo-krust/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeouts.connect())
        .build()
        .context("cannot set up the HTTP client")
}

/// How a TLS handshake failed, when it did.
#[derive(Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate could not be verified.
    Untrusted(String),
    /// The server answered with something that is not TLS (plain HTTP).
    NotTls(String),
    /// Any other TLS failure.
    Other(String),
}

/// The TLS failure inside a request error, if that is what it was.
pub fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let rustls_error = error_chain(err).find_map(|e| e.downcast_ref::<rustls::Error>())?;
    Some(match rustls_error {
        rustls::Error::InvalidCertificate(cert) => TlsFailure::Untrusted(format!("{cert:?}")),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            TlsFailure::NotTls(rustls_error.to_string())
        }
        other => TlsFailure::Other(other.to_string()),
    })
}

/// Every error in a source chain, looking inside `io::Error`s too (whose
/// `source()` skips the error they wrap).
pub fn error_chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static))
                .or_else(|| current.source()),
            None => current.source(),
        };
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_are_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(
            tls_failure(&io),
            Some(TlsFailure::Untrusted("UnknownIssuer".into()))
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert!(matches!(tls_failure(&io), Some(TlsFailure::NotTls(_))));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_failure(&plain), None);
    }

    #[test]
    fn a_client_is_built_without_any_root() {
        let roots = Roots { certs: Vec::new() };
        assert!(roots.is_empty());
        http_client(&roots, Timeouts::default()).expect("client without roots");
    }
}
