//! The transport every registry request goes through, layered like
//! go-containerregistry's: a ping of `/v2/` per registry picks the scheme
//! (HTTPS, or plain HTTP where allowed) and learns the challenge; each
//! request then gets the `Authorization` the challenge asks for (Basic, or a
//! cached Bearer token for its scope), a 401 renews the challenge and the
//! token once, and redirects are followed by hand so that an upload keeps
//! its method and body (re-read from its file) and credentials never go to
//! another host. Every wait is bounded ([`super::timeouts`]): a request
//! whose registry goes silent (or nearly), while sending or receiving,
//! fails as a stall. Operations run through [`Transport::retried`]: retries
//! are theirs ([`super::retry`]), and a registry that one of them found
//! gone (out of time, or no connection) is not asked again in the run, so
//! that a hung registry costs one budget, not one per operation.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::task::Poll;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::OnceCell;
use tokio_util::io::ReaderStream;

use super::bearer::{Scope, TokenCache, TokenRequest, bearer_header, fetch_token};
use super::challenge::{self, Challenge};
use super::credentials::{Credential, Keychain, Secret};
use super::errors::{ErrorKind, RegistryError, body_detail, from_reqwest};
use super::retry::{RetryPolicy, retry_after};
use super::scheme::SchemePolicy;
use super::timeouts::{Activity, ChunkError, Pace, Timeouts, next_chunk};
use super::tls::{Http, LazyHttp};
use crate::progress::{self, Transfer};

/// What one registry turned out to be at its ping.
pub struct Endpoint {
    pub registry: String,
    /// `https://host[:port]/` or `http://host[:port]/`.
    pub base: Url,
    challenge: RwLock<Challenge>,
    /// Set when the registry refused a monolithic upload: later uploads to
    /// it go chunked straight away.
    pub monolithic_refused: AtomicBool,
}

impl Endpoint {
    /// An absolute URL for a path such as `/v2/NAME/blobs/uploads/`.
    pub fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base.join(path).map_err(|_| {
            RegistryError::new(
                &self.registry,
                ErrorKind::Protocol(format!("cannot form a URL from {path}")),
            )
        })
    }

    fn challenge(&self) -> Challenge {
        self.challenge
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_challenge(&self, challenge: Challenge) {
        *self.challenge.write().unwrap_or_else(|e| e.into_inner()) = challenge;
    }

    /// Whether `url` is on this registry (same scheme, host and port):
    /// only then may it carry the registry's credentials.
    fn owns(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }
}

/// What an operation is, for its retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Stopped, attempt and all, when its budget ends.
    Request,
    /// A blob transfer: an attempt still moving may outlast the budget
    /// (see [`RetryPolicy::for_transfer`]).
    Transfer,
}

/// A request body that can be produced again for a redirect or a retry,
/// except a stream, which is sent once.
#[derive(Clone)]
pub enum Body {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`, streamed; progress is reported
    /// to `transfer` as they are sent.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        transfer: Option<Arc<Transfer>>,
    },
    /// Bytes as they are produced, of a length not known in advance (sent
    /// with chunked transfer encoding); the first attempt takes them.
    Stream {
        chunks: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Bytes>>>>,
        transfer: Option<Arc<Transfer>>,
    },
}

/// What goes into an `Authorization` header.
enum Auth {
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

pub struct Transport {
    /// For `http://` URLs (loopback and `--insecure-registry` hosts).
    plain: Http,
    /// For `https://` URLs, ready once the CA roots are loaded.
    http: LazyHttp,
    schemes: SchemePolicy,
    keychain: Keychain,
    pub timeouts: Timeouts,
    retry: RetryPolicy,
    endpoints: PerRegistry<Arc<Endpoint>>,
    credentials: PerRegistry<Credential>,
    tokens: TokenCache,
    /// Registries found gone in this run, with the message that showed it.
    gone: std::sync::Mutex<HashMap<String, String>>,
}

/// Something worked out once per registry (a ping, a credential lookup).
type PerRegistry<T> = std::sync::Mutex<HashMap<String, Arc<OnceCell<T>>>>;

/// At most this many redirects per request.
const MAX_REDIRECTS: usize = 10;
/// At most this much of an error body is read, for its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

impl Transport {
    /// A transport for `registries`, waiting as `timeouts` allow: the CA
    /// roots start loading at once when one of them may need HTTPS, and only
    /// on first HTTPS use when all of them may use plain HTTP (a loopback
    /// registry, say).
    pub fn new<'r>(
        insecure: &[String],
        registries: impl IntoIterator<Item = &'r str>,
        timeouts: Timeouts,
    ) -> anyhow::Result<Transport> {
        let schemes = SchemePolicy::new(insecure);
        let eager = registries.into_iter().any(|r| !schemes.allows_http(r));
        Ok(Transport {
            plain: Http::plain(timeouts)?,
            http: LazyHttp::start(eager, timeouts),
            schemes,
            keychain: Keychain::from_env(),
            timeouts,
            retry: RetryPolicy {
                budget: timeouts.budget(),
                ..RetryPolicy::default()
            },
            endpoints: Default::default(),
            credentials: Default::default(),
            tokens: TokenCache::default(),
            gone: Default::default(),
        })
    }

    /// Runs an operation on `registry` with the retry policy for its
    /// `kind` (`what` names it), unless the registry was found gone
    /// earlier; a failure that shows it gone is remembered.
    pub async fn retried<T, F, Fut>(
        &self,
        kind: Operation,
        registry: &str,
        what: &str,
        operation: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        self.still_there(registry)?;
        let policy = match kind {
            Operation::Request => self.retry,
            Operation::Transfer => self.retry.for_transfer(),
        };
        let outcome = policy.run(registry, what, operation).await;
        if let Err(err) = &outcome
            && err.shows_registry_gone()
            && !matches!(err.kind, ErrorKind::GaveUpEarlier(_))
        {
            self.gone
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(registry.to_string())
                .or_insert_with(|| err.to_string());
        }
        outcome
    }

    /// An error when `registry` was found gone earlier in this run.
    fn still_there(&self, registry: &str) -> Result<(), RegistryError> {
        let gone = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        match gone.get(registry) {
            Some(earlier) => Err(RegistryError::new(
                registry,
                ErrorKind::GaveUpEarlier(earlier.clone()),
            )),
            None => Ok(()),
        }
    }

    /// The HTTP client for a URL: the plain one for `http://`, which never
    /// waits for the CA roots, else the TLS one once it is built.
    async fn http_for(&self, registry: &str, url: &str) -> Result<&Http, RegistryError> {
        if url.starts_with("http://") {
            return Ok(&self.plain);
        }
        self.http
            .get()
            .await
            .map_err(|err| RegistryError::new(registry, ErrorKind::Local(format!("{err:#}"))))
    }

    /// The registry's endpoint, pinging it on first use.
    pub async fn endpoint(&self, registry: &str) -> Result<Arc<Endpoint>, RegistryError> {
        self.still_there(registry)?;
        once_per(&self.endpoints, registry)
            .get_or_try_init(|| self.probe(registry))
            .await
            .cloned()
    }

    /// HTTPS, or, for a host that allows plain HTTP (loopback,
    /// `--insecure-registry`), plain HTTP when the port speaks it. Plain is
    /// asked first there: it needs no CA roots (reading them costs more than
    /// a whole no-op rebuild), and a TLS port answers a plain request at once
    /// with a 400, after which HTTPS is tried. An untrusted certificate is an
    /// error, never a reason to go plain.
    async fn probe(&self, registry: &str) -> Result<Arc<Endpoint>, RegistryError> {
        let base = |scheme: &str| {
            Url::parse(&format!("{scheme}://{registry}/")).map_err(|_| {
                RegistryError::new(
                    registry,
                    ErrorKind::Protocol("is not a valid host[:port]".to_string()),
                )
            })
        };
        let https = base("https")?;
        let (base, challenge) = if self.schemes.allows_http(registry) {
            let http = base("http")?;
            match self.ping(registry, http.clone()).await {
                Ok(challenge) => (http, challenge),
                // Any other HTTP answer than 400 (which TLS servers give to
                // plain requests) says the port speaks plain HTTP; silence
                // says HTTPS would fare no better (a TLS port answers a
                // plain request at once).
                Err(plain_err) if answered_plain(&plain_err) || timed_out(&plain_err) => {
                    return Err(plain_err);
                }
                Err(plain_err) => match self.ping(registry, https.clone()).await {
                    Ok(challenge) => (https, challenge),
                    Err(err) if falls_back(&err) => return Err(plain_err),
                    Err(err) => return Err(err),
                },
            }
        } else {
            let challenge = self.ping(registry, https.clone()).await?;
            (https, challenge)
        };
        progress::verbose(format!(
            "registry {registry}: {}, {}",
            base.scheme(),
            match &challenge {
                Challenge::None => "no authentication asked".to_string(),
                Challenge::Basic => "Basic authentication".to_string(),
                Challenge::Bearer { .. } => "Bearer tokens".to_string(),
            }
        ));
        Ok(Arc::new(Endpoint {
            registry: registry.to_string(),
            base,
            challenge: RwLock::new(challenge),
            monolithic_refused: AtomicBool::new(false),
        }))
    }

    /// `GET /v2/`: 200 means no authentication, 401 carries the challenge.
    async fn ping(&self, registry: &str, base: Url) -> Result<Challenge, RegistryError> {
        let url = base.join("/v2/").map_err(|_| {
            RegistryError::new(registry, ErrorKind::Protocol("bad /v2/ URL".into()))
        })?;
        let request = format!("GET {url}");
        progress::trace(&request);
        let http = self.http_for(registry, url.as_str()).await?;
        let response = http
            .send_small(registry, &request, http.client.get(url))
            .await?;
        let status = response.status();
        progress::trace(format!("{request} -> {status}"));
        if status.is_success() {
            Ok(Challenge::None)
        } else if status == StatusCode::UNAUTHORIZED {
            Ok(challenge::from_headers(response.headers()).unwrap_or(Challenge::None))
        } else {
            Err(self.status_error(registry, &request, response).await)
        }
    }

    /// The `Location` of a response to `request`, checked by
    /// [`sane_location`]; `None` when there is none.
    pub fn location(
        &self,
        registry: &str,
        request: &str,
        response: &Response,
    ) -> Result<Option<Url>, RegistryError> {
        let Some(value) = response.headers().get(LOCATION) else {
            return Ok(None);
        };
        let value = String::from_utf8_lossy(value.as_bytes());
        sane_location(response.url(), &value, |host| {
            self.schemes.allows_http(host)
        })
        .map(Some)
        .map_err(|why| {
            RegistryError::new(
                registry,
                ErrorKind::Protocol(format!("{request} was answered with a Location {why}")),
            )
        })
    }

    /// An unexpected answer as an error, with the registry's own words.
    pub async fn status_error(
        &self,
        registry: &str,
        request: &str,
        response: Response,
    ) -> RegistryError {
        status_error(registry, request, response, self.timeouts).await
    }

    /// Checks the status of a response, turning anything else into an error.
    pub async fn expect(
        &self,
        registry: &str,
        request: &str,
        response: Response,
        ok: &[StatusCode],
    ) -> Result<Response, RegistryError> {
        if ok.contains(&response.status()) {
            Ok(response)
        } else {
            Err(self.status_error(registry, request, response).await)
        }
    }

    /// Uses `credential` for `registry` instead of looking one up (to check
    /// credentials about to be stored); `false` when one was looked up
    /// already.
    pub fn use_credential(&self, registry: &str, credential: Credential) -> bool {
        once_per(&self.credentials, registry)
            .set(credential)
            .is_ok()
    }

    /// The credential for a registry, looked up once (helpers are programs).
    async fn credential(&self, registry: &str) -> Result<Credential, RegistryError> {
        once_per(&self.credentials, registry)
            .get_or_try_init(|| async {
                match self.keychain.lookup(registry, self.timeouts.helper()).await {
                    Ok(credential) => {
                        progress::verbose(format!(
                            "registry {registry}: {}",
                            match &credential {
                                Credential::Anonymous => "no credentials configured",
                                Credential::Basic { .. } => "using a username and password",
                                Credential::IdentityToken(_) => "using an identity token",
                                Credential::RegistryToken(_) => "using a registry token",
                            }
                        ));
                        Ok(credential)
                    }
                    Err(message) => Err(RegistryError::new(
                        registry,
                        ErrorKind::Credentials(message),
                    )),
                }
            })
            .await
            .cloned()
    }

    /// The `Authorization` for a request with `scope` to `endpoint`.
    async fn authorization(
        &self,
        endpoint: &Endpoint,
        scope: &Scope,
    ) -> Result<Option<Auth>, RegistryError> {
        let registry = &endpoint.registry;
        match endpoint.challenge() {
            Challenge::None => Ok(None),
            Challenge::Basic => match self.credential(registry).await? {
                Credential::Basic { username, password } => {
                    Ok(Some(Auth::Basic { username, password }))
                }
                _ => Ok(None),
            },
            Challenge::Bearer { realm, service } => {
                let credential = self.credential(registry).await?;
                if let Credential::RegistryToken(token) = &credential {
                    return Ok(Some(Auth::Bearer(token.clone())));
                }
                let realm_authority = authority(&realm);
                let http = self.http_for(registry, realm.as_str()).await?;
                let token = self
                    .tokens
                    .get_or_fetch(registry, scope, || {
                        progress::trace(format!(
                            "token for {} from {realm_authority}",
                            scope.key()
                        ));
                        fetch_token(
                            http,
                            TokenRequest {
                                registry,
                                realm: &realm,
                                service: service.as_deref(),
                                scope,
                                credential: &credential,
                            },
                            self.schemes.allows_http(&realm_authority),
                        )
                    })
                    .await?;
                Ok(Some(Auth::Bearer(token)))
            }
        }
    }

    /// Sends one request to `url` (on `endpoint`, or where a redirect led),
    /// authenticated for `scope`, and returns the final response whatever
    /// its status, except a 401/403 that fresh credentials did not cure,
    /// which is an error.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        scope: &Scope,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response, RegistryError> {
        let registry = &endpoint.registry;
        self.still_there(registry)?;
        let mut method = method;
        let mut url = url;
        let mut body = body;
        let mut renewed = false;
        let mut redirects = 0;
        loop {
            let http = self.http_for(registry, url.as_str()).await?;
            let owned = endpoint.owns(&url);
            let auth = if owned {
                self.authorization(endpoint, scope).await?
            } else {
                None
            };
            let request = describe(&method, &url, owned);
            let mut builder = http
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            match &auth {
                // reqwest marks the header sensitive.
                Some(Auth::Basic { username, password }) => {
                    builder = builder.basic_auth(username, Some(password.expose()));
                }
                Some(Auth::Bearer(token)) => {
                    // Tokens from a token server are checked on arrival:
                    // one that cannot go in a header is a configured one.
                    let header = bearer_header(token).ok_or_else(|| {
                        RegistryError::new(
                            registry,
                            ErrorKind::Credentials(
                                "the configured registry token contains characters not allowed in an HTTP header"
                                    .into(),
                            ),
                        )
                    })?;
                    builder = builder.header(AUTHORIZATION, header);
                }
                None => {}
            }
            let activity = Arc::new(Activity::new(self.timeouts));
            builder = attach(builder, &method, &body, registry, &activity).await?;
            progress::trace(&request);
            let response = http.send(registry, &request, builder, &activity).await?;
            let status = response.status();
            progress::trace(format!("{request} -> {status}"));

            if owned && status == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                if let Some(challenge) = challenge::from_headers(response.headers()) {
                    endpoint.set_challenge(challenge);
                }
                if let Some(Auth::Bearer(token)) = &auth {
                    self.tokens.invalidate(registry, scope, token).await;
                }
                continue;
            }
            if owned && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN) {
                let had_credentials = !self.credential(registry).await?.is_anonymous();
                let detail = read_error_body(response, self.timeouts).await;
                return Err(RegistryError::new(
                    registry,
                    ErrorKind::Unauthorized {
                        request,
                        status,
                        detail,
                        had_credentials,
                    },
                ));
            }
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let Some(next) = self.location(registry, &request, &response)? else {
                    return Err(RegistryError::new(
                        registry,
                        ErrorKind::Protocol(format!(
                            "{request} was redirected ({status}) without a Location"
                        )),
                    ));
                };
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(RegistryError::new(
                        registry,
                        ErrorKind::Protocol(format!("{request} was redirected too often")),
                    ));
                }
                // Registries never mean "now GET it" but with 303: an upload
                // redirected by 301/302/307/308 goes again, body and all.
                if status == StatusCode::SEE_OTHER && method != Method::HEAD {
                    method = Method::GET;
                    body = Body::Empty;
                }
                url = next;
                continue;
            }
            return Ok(response);
        }
    }

    /// Pings (if needed) and sends in one call, for a path on the registry.
    pub async fn send_path(
        &self,
        registry: &str,
        scope: &Scope,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response, RegistryError> {
        let endpoint = self.endpoint(registry).await?;
        let url = endpoint.url(path)?;
        self.send(&endpoint, scope, method, url, headers, body)
            .await
    }
}

/// A registry's cell in one of the per-registry maps, so that concurrent
/// requests share one ping or credential lookup.
fn once_per<T>(map: &PerRegistry<T>, registry: &str) -> Arc<OnceCell<T>> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(registry.to_string())
        .or_default()
        .clone()
}

/// Whether an HTTPS failure leaves plain HTTP to try: the connection
/// failed or the server did not speak TLS (not: an untrusted certificate,
/// or an HTTP answer).
fn falls_back(err: &RegistryError) -> bool {
    matches!(
        err.kind,
        ErrorKind::Connection { .. } | ErrorKind::PlainHttpRefused { .. }
    )
}

/// Whether a request ran out of time.
fn timed_out(err: &RegistryError) -> bool {
    matches!(err.kind, ErrorKind::TimedOut { .. })
}

/// Whether a plain-HTTP ping was answered by a plain-HTTP server (with an
/// error status other than the 400 TLS servers send to plain requests).
fn answered_plain(err: &RegistryError) -> bool {
    matches!(&err.kind, ErrorKind::Status { status, .. } if *status != StatusCode::BAD_REQUEST)
}

/// Attaches the body, with its length, built afresh (files re-opened);
/// `activity` hears of each chunk sent, and of the waits for a streamed
/// body's producer.
async fn attach(
    builder: reqwest::RequestBuilder,
    method: &Method,
    body: &Body,
    registry: &str,
    activity: &Arc<Activity>,
) -> Result<reqwest::RequestBuilder, RegistryError> {
    Ok(match body {
        Body::Empty if *method == Method::GET || *method == Method::HEAD => builder,
        Body::Empty => builder.header(CONTENT_LENGTH, 0),
        Body::Bytes(bytes) => builder.body(bytes.clone()),
        Body::File {
            path,
            offset,
            len,
            transfer,
        } => {
            let local = |err: std::io::Error| {
                RegistryError::new(
                    registry,
                    ErrorKind::Local(format!("cannot read {}: {err}", path.display())),
                )
            };
            let mut file = tokio::fs::File::open(path).await.map_err(local)?;
            file.seek(std::io::SeekFrom::Start(*offset))
                .await
                .map_err(local)?;
            if let Some(transfer) = transfer {
                transfer.set_position(*offset);
            }
            let chunks = ReaderStream::with_capacity(file.take(*len), 256 * 1024);
            builder.header(CONTENT_LENGTH, *len).body(watched_body(
                chunks,
                activity.clone(),
                transfer.clone(),
            ))
        }
        Body::Stream { chunks, transfer } => {
            let Some(mut receiver) = chunks.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                return Err(RegistryError::new(
                    registry,
                    ErrorKind::Local("a streamed body cannot be sent twice".into()),
                ));
            };
            let waits = activity.clone();
            let produced = futures_util::stream::poll_fn(move |cx| {
                let polled = receiver.poll_recv(cx);
                waits.waiting_locally(polled.is_pending());
                polled
            })
            .map(Ok::<Bytes, std::io::Error>);
            builder.body(watched_body(produced, activity.clone(), transfer.clone()))
        }
    })
}

/// A request body that tells `activity` (and `transfer`, if any) of every
/// chunk the connection takes, and of its end.
fn watched_body(
    mut chunks: impl Stream<Item = std::io::Result<Bytes>> + Unpin + Send + 'static,
    activity: Arc<Activity>,
    transfer: Option<Arc<Transfer>>,
) -> reqwest::Body {
    reqwest::Body::wrap_stream(futures_util::stream::poll_fn(move |cx| {
        let polled = chunks.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                activity.moved(chunk.len());
                if let Some(transfer) = &transfer {
                    transfer.advance(chunk.len() as u64);
                }
            }
            Poll::Ready(None) => activity.body_sent(),
            _ => {}
        }
        polled
    }))
}

/// `METHOD /path` on the registry, `METHOD https://host/path` elsewhere;
/// never the query (upload state, signatures).
fn describe(method: &Method, url: &Url, on_registry: bool) -> String {
    if on_registry {
        format!("{method} {}", url.path())
    } else {
        format!(
            "{method} {}://{}{}",
            url.scheme(),
            authority(url),
            url.path()
        )
    }
}

/// `digest` when it is one (`sha256:` and 64 hex digits): nothing else a
/// registry or a document sent ever goes into a request path as a digest.
pub fn checked_digest<'d>(registry: &str, digest: &'d str) -> Result<&'d str, RegistryError> {
    match crate::oci::digest_hex(digest) {
        Some(_) => Ok(digest),
        None => Err(RegistryError::new(
            registry,
            ErrorKind::Protocol(format!(
                "`{}` is no sha256 digest and cannot be asked for",
                super::errors::printable(digest)
            )),
        )),
    }
}

/// `host[:port]` of a URL.
pub fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => String::new(),
    }
}

/// A `Location` value, absolute or relative, against the URL of the
/// request it answered, if it is one to follow: `https`, or `http` when the
/// request was plain already or `plain_ok` allows the new host (loopback,
/// `--insecure-registry`), with a host and without user info. The error says
/// what is wrong with it.
fn sane_location(
    request: &Url,
    value: &str,
    plain_ok: impl Fn(&str) -> bool,
) -> Result<Url, String> {
    let shown = || super::errors::printable(value.split('?').next().unwrap_or(value));
    let url = request
        .join(value)
        .map_err(|_| format!("that is no URL: `{}`", shown()))?;
    match url.scheme() {
        "https" => {}
        "http" if request.scheme() == "http" || plain_ok(&authority(&url)) => {}
        "http" => return Err(format!("that leaves HTTPS for plain HTTP: `{}`", shown())),
        other => return Err(format!("of scheme {other}: `{}`", shown())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("without a host: `{}`", shown()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("that carries user info".to_string());
    }
    Ok(url)
}

/// An unexpected answer as an error, with the registry's own words.
pub async fn status_error(
    registry: &str,
    request: &str,
    response: Response,
    timeouts: Timeouts,
) -> RegistryError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let detail = read_error_body(response, timeouts).await;
    RegistryError::new(
        registry,
        ErrorKind::Status {
            request: request.to_string(),
            status,
            detail,
            retry_after,
        },
    )
}

/// The start of an error body, summarised: what came within a stall
/// window (it is only a message), or before the registry stalled.
async fn read_error_body(response: Response, timeouts: Timeouts) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let mut pace = Pace::new(timeouts);
    let reading = async {
        while let Ok(Some(chunk)) = next_chunk(&mut stream, &mut pace).await {
            body.extend_from_slice(&chunk);
            if body.len() >= ERROR_BODY_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeouts.stall(), reading).await;
    body_detail(&body)
}

/// A whole response body, refusing more than `limit` bytes (`what` names
/// the kind of document in that error).
pub async fn read_limited(
    registry: &str,
    request: &str,
    response: Response,
    limit: usize,
    timeouts: Timeouts,
    what: &str,
) -> Result<Bytes, RegistryError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let mut pace = Pace::new(timeouts);
    while let Some(chunk) = next_chunk(&mut stream, &mut pace)
        .await
        .map_err(|err| chunk_error(registry, request, err, timeouts))?
    {
        if body.len() + chunk.len() > limit {
            return Err(RegistryError::new(
                registry,
                ErrorKind::Protocol(format!(
                    "{request} sent more than {limit} bytes, too much for {what}"
                )),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// A body that broke off or went silent, as an error.
pub fn chunk_error(
    registry: &str,
    request: &str,
    err: ChunkError,
    timeouts: Timeouts,
) -> RegistryError {
    match err {
        ChunkError::Broken(err) => from_reqwest(registry, request, &err, false),
        ChunkError::Stalled => RegistryError::stalled(registry, request, timeouts.stall()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_described_without_query() {
        let url = Url::parse("https://r.example:5000/v2/a/blobs/uploads/x?_state=SECRET").unwrap();
        assert_eq!(
            describe(&Method::PUT, &url, true),
            "PUT /v2/a/blobs/uploads/x"
        );
        let url = Url::parse("https://storage.example/bucket/blob?X-Signature=abc").unwrap();
        assert_eq!(
            describe(&Method::GET, &url, false),
            "GET https://storage.example/bucket/blob"
        );
    }

    #[test]
    fn locations_resolve_against_the_request() {
        let request = Url::parse("https://r.example:5000/v2/a/blobs/uploads/").unwrap();
        let cases = [
            (
                "/v2/a/blobs/uploads/u1?_state=x",
                "https://r.example:5000/v2/a/blobs/uploads/u1?_state=x",
            ),
            ("u2", "https://r.example:5000/v2/a/blobs/uploads/u2"),
            (
                "https://storage.example/up?sig=1",
                "https://storage.example/up?sig=1",
            ),
            ("//cdn.example/x", "https://cdn.example/x"),
        ];
        for (location, expected) in cases {
            let followed = sane_location(&request, location, |_| false).unwrap();
            assert_eq!(followed.as_str(), expected);
        }
    }

    #[test]
    fn locations_that_are_not_followed() {
        let https = Url::parse("https://r.example:5000/v2/a/blobs/uploads/").unwrap();
        let refused = |request: &Url, location: &str| {
            sane_location(request, location, |host| host == "127.0.0.1:5000").unwrap_err()
        };
        assert!(refused(&https, "file:///etc/passwd").contains("scheme file"));
        assert!(refused(&https, "javascript:alert(1)").contains("scheme javascript"));
        assert!(refused(&https, "http://storage.example/x?sig=SECRET").contains("plain HTTP"));
        assert!(!refused(&https, "http://storage.example/x?sig=SECRET").contains("SECRET"));
        assert!(refused(&https, "https://user:pw@storage.example/x").contains("user info"));
        assert!(refused(&https, "http://[::1").contains("no URL"));
        // Plain HTTP where it is allowed: a plain registry, a loopback host.
        let plain = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        assert!(sane_location(&plain, "http://other.example/x", |_| false).is_ok());
        assert!(
            sane_location(&https, "http://127.0.0.1:5000/x", |h| h == "127.0.0.1:5000").is_ok()
        );
    }

    #[test]
    fn credentials_go_only_to_the_registry_itself() {
        let endpoint = Endpoint {
            registry: "r.example:5000".into(),
            base: Url::parse("https://r.example:5000/").unwrap(),
            challenge: RwLock::new(Challenge::None),
            monolithic_refused: AtomicBool::new(false),
        };
        assert!(endpoint.owns(&Url::parse("https://r.example:5000/v2/x").unwrap()));
        assert!(!endpoint.owns(&Url::parse("http://r.example:5000/v2/x").unwrap()));
        assert!(!endpoint.owns(&Url::parse("https://r.example/v2/x").unwrap()));
        assert!(!endpoint.owns(&Url::parse("https://s3.example:5000/x").unwrap()));
        let default_port = Endpoint {
            base: Url::parse("https://ghcr.io/").unwrap(),
            ..endpoint
        };
        assert!(default_port.owns(&Url::parse("https://ghcr.io:443/v2/").unwrap()));
    }
}
