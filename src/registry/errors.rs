//! What can go wrong talking to a registry, as one typed error: the retry
//! layer branches on it (transient or not, how long to wait) and its message
//! names the registry, the request and the fix. Messages carry request paths
//! without their query (upload URLs hold session state) and never a header,
//! so no credential or token can reach them.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;

use super::timeouts::SETTING;
use super::tls::TlsFailure;

#[derive(Debug)]
pub struct RegistryError {
    /// `host[:port]` of the registry (or token server) at fault.
    pub registry: String,
    pub kind: ErrorKind,
    /// How many attempts were made before giving up (set by the retry layer).
    pub attempts: u32,
    /// The budget that left no time for another attempt (set by the retry
    /// layer).
    pub out_of_time: Option<Duration>,
}

#[derive(Debug)]
pub enum ErrorKind {
    /// The registry answered with an unexpected status.
    Status {
        request: String,
        status: StatusCode,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// 401/403 even after fresh credentials or tokens were presented.
    Unauthorized {
        request: String,
        status: StatusCode,
        detail: String,
        /// Whether any credentials were configured for the registry.
        had_credentials: bool,
    },
    /// The connection failed or broke before a full answer arrived.
    Connection {
        request: String,
        cause: String,
        /// No connection could be made at all.
        connect: bool,
        /// Worth another try: a refused or timed-out connection (a registry
        /// restarting, a network blip) or one that broke; not a name that
        /// does not resolve.
        retryable: bool,
    },
    /// A wait ran out (see [`super::timeouts`]).
    TimedOut { request: String, wait: Wait },
    /// The certificate of the server is not trusted.
    Certificate { cause: String, no_roots: bool },
    /// HTTPS failed in a way that suggests plain HTTP, which is not allowed
    /// for this host.
    PlainHttpRefused { cause: String },
    /// Credentials would have been sent over plain HTTP to a token server.
    InsecureRealm { realm: String },
    /// The Docker config or a credential helper could not be used.
    Credentials(String),
    /// Downloaded bytes do not hash to the digest they were asked for by.
    Digest { expected: String, actual: String },
    /// The registry broke the protocol (a missing header, bad JSON…).
    Protocol(String),
    /// A local file could not be read or written.
    Local(String),
    /// Not sent: the registry stopped answering earlier in the run (the
    /// error that showed it, as a message).
    GaveUpEarlier(String),
}

/// Which wait of [`ErrorKind::TimedOut`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// No connection was made in time.
    Connect,
    /// The registry went silent (or moved less than
    /// [`super::timeouts::LEAST_RATE`]) this long in the middle of a request.
    Stall(Duration),
    /// The operation with its retries took its whole budget.
    Budget(Duration),
}

impl RegistryError {
    pub fn new(registry: &str, kind: ErrorKind) -> RegistryError {
        RegistryError {
            registry: registry.to_string(),
            kind,
            attempts: 1,
            out_of_time: None,
        }
    }

    /// `request` went silent for `stall`.
    pub fn stalled(registry: &str, request: &str, stall: Duration) -> RegistryError {
        RegistryError::new(
            registry,
            ErrorKind::TimedOut {
                request: request.to_string(),
                wait: Wait::Stall(stall),
            },
        )
    }

    /// `Some(delay)` when the failure is worth another try, with the delay
    /// the registry asked for (429/503 `Retry-After`), if any.
    pub fn retry(&self) -> Option<Option<Duration>> {
        match &self.kind {
            ErrorKind::Status {
                status,
                retry_after,
                ..
            } if is_transient_status(*status) => Some(*retry_after),
            ErrorKind::Connection {
                retryable: true, ..
            } => Some(None),
            ErrorKind::TimedOut {
                wait: Wait::Connect | Wait::Stall(_),
                ..
            } => Some(None),
            _ => None,
        }
    }

    /// Whether this failure shows that the registry stopped answering: an
    /// operation ran out of time, or no connection could be made. Later
    /// operations on it are not tried (see the transport).
    pub fn shows_registry_gone(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::TimedOut { .. }
                | ErrorKind::Connection { connect: true, .. }
                | ErrorKind::GaveUpEarlier(_)
        )
    }

    /// Whether the registry said "no such thing" (404).
    pub fn is_not_found(&self) -> bool {
        matches!(&self.kind, ErrorKind::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// 408, 429 and 5xx are worth retrying (SPEC §7); every other status is an
/// answer.
pub fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = &self.registry;
        match &self.kind {
            ErrorKind::Status {
                request,
                status,
                detail,
                ..
            } => {
                write!(f, "registry {registry} answered {status} to {request}")?;
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
            }
            ErrorKind::Unauthorized {
                request,
                status,
                detail,
                had_credentials,
            } => {
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                };
                if *had_credentials && *status == StatusCode::FORBIDDEN {
                    write!(
                        f,
                        "registry {registry} denied {request} ({status}{detail}); check that your account may access that repository"
                    )?;
                } else if *had_credentials {
                    write!(
                        f,
                        "registry {registry} refused the credentials ({status} to {request}{detail}); check them with `docker login {registry}`"
                    )?;
                } else {
                    write!(
                        f,
                        "registry {registry} requires credentials ({status} to {request}{detail}); log in with `docker login {registry}`"
                    )?;
                }
            }
            ErrorKind::Connection {
                request,
                cause,
                connect: true,
                ..
            } => write!(
                f,
                "registry {registry} is unreachable ({request}: {cause}); check the registry address and that it is running"
            )?,
            ErrorKind::Connection { request, cause, .. } => write!(
                f,
                "connection to registry {registry} failed during {request}: {cause}"
            )?,
            ErrorKind::TimedOut {
                request,
                wait: Wait::Connect,
            } => write!(
                f,
                "registry {registry} did not accept a connection in time ({request}); check the registry address and that it is running, or raise {SETTING}"
            )?,
            ErrorKind::TimedOut {
                request,
                wait: Wait::Stall(silence),
            } => write!(
                f,
                "registry {registry} went silent, or moved less than {} KiB/s, for {} during {request}; if it is only slow, raise {SETTING}",
                super::timeouts::LEAST_RATE / 1024,
                seconds(*silence)
            )?,
            ErrorKind::TimedOut {
                request,
                wait: Wait::Budget(budget),
            } => write!(
                f,
                "registry {registry}: {request} did not finish within {}; if the registry is only slow, raise {SETTING}",
                seconds(*budget)
            )?,
            ErrorKind::Certificate {
                cause,
                no_roots: true,
            } => write!(
                f,
                "cannot verify the TLS certificate of registry {registry} ({cause}): no CA certificates were found on this system; install the ca-certificates package or point SSL_CERT_FILE at a CA bundle"
            )?,
            ErrorKind::Certificate { cause, .. } => write!(
                f,
                "the TLS certificate of registry {registry} is not trusted ({cause}); add the CA that signed it to the bundle named by SSL_CERT_FILE"
            )?,
            ErrorKind::PlainHttpRefused { cause } => write!(
                f,
                "registry {registry} does not answer over HTTPS ({cause}); if it serves plain HTTP, allow that with --insecure-registry {registry}"
            )?,
            ErrorKind::InsecureRealm { realm } => write!(
                f,
                "registry {registry} sends clients to the token server {realm} over plain HTTP; cargo-krust will not send credentials there (allow it with --insecure-registry for that host)"
            )?,
            ErrorKind::Credentials(message) => {
                write!(f, "credentials for registry {registry}: {message}")?
            }
            ErrorKind::Digest { expected, actual } => write!(
                f,
                "registry {registry} sent content with digest {actual} when asked for {expected}"
            )?,
            ErrorKind::Protocol(message) => write!(f, "registry {registry}: {message}")?,
            ErrorKind::Local(message) => f.write_str(message)?,
            ErrorKind::GaveUpEarlier(earlier) => write!(
                f,
                "{earlier}; that was earlier in this run, and registry {registry} is not asked again"
            )?,
        }
        match (self.attempts, self.out_of_time) {
            (1, None) => {}
            (attempts, None) => write!(f, " (gave up after {attempts} attempts)")?,
            // A timeout's message names the setting already.
            (attempts, Some(budget)) if matches!(self.kind, ErrorKind::TimedOut { .. }) => write!(
                f,
                " (gave up after {attempts} attempts in {})",
                seconds(budget)
            )?,
            (attempts, Some(budget)) => write!(
                f,
                " (gave up after {attempts} attempt{} as the {} of {SETTING} ran out)",
                if attempts == 1 { "" } else { "s" },
                seconds(budget)
            )?,
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {}

/// `3s`, `1.5s`: a duration as messages give it.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

/// A request that got no answer, classified: an untrusted certificate, a
/// server that does not speak TLS, a refused connection, or a connection
/// that broke (these last two are retried). reqwest's own message is not
/// used: it carries the whole URL.
pub fn from_reqwest(
    registry: &str,
    request: &str,
    err: &reqwest::Error,
    no_roots: bool,
) -> RegistryError {
    let kind = match super::tls::tls_failure(err) {
        Some(TlsFailure::Untrusted(cause)) => ErrorKind::Certificate { cause, no_roots },
        Some(TlsFailure::NotTls(cause)) => ErrorKind::PlainHttpRefused { cause },
        Some(TlsFailure::Other(cause)) => ErrorKind::Connection {
            request: request.to_string(),
            cause: format!("TLS: {cause}"),
            connect: false,
            retryable: true,
        },
        // The HTTP client's only timeout is the one for connections.
        None if err.is_timeout() => ErrorKind::TimedOut {
            request: request.to_string(),
            wait: Wait::Connect,
        },
        None => ErrorKind::Connection {
            request: request.to_string(),
            cause: root_cause(err),
            connect: err.is_connect(),
            retryable: !err.is_connect() || refused_or_timed_out(err),
        },
    };
    RegistryError::new(registry, kind)
}

/// Whether a failed connection was refused or timed out (as opposed to a
/// host name that does not resolve, or a network that is not there).
fn refused_or_timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    super::tls::error_chain(err).any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut
            )
        })
    })
}

/// The innermost message of an error chain (`Connection refused (os error
/// 111)` rather than reqwest's "error sending request for url …").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    super::tls::error_chain(err)
        .last()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// The human part of an error body: distribution's `{"errors":[{code,
/// message}]}` as `CODE: message`, or the first line of any other text,
/// shortened.
pub fn body_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return printable(&parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(body);
    printable(
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or(""),
    )
}

/// Text from outside (a registry, a document, a helper) as a message may
/// quote it: control characters and the invisible ones that reorder text
/// escaped (`\n`, `\u{1b}`), so that it can neither break the one `error:`
/// line nor drive the terminal, and cut to a line's worth.
pub fn printable(text: &str) -> String {
    const LIMIT: usize = 200;
    let mut shown = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == LIMIT {
            shown.push('…');
            break;
        }
        if c.is_control() || is_invisible_format(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Invisible characters that change how text around them shows: zero-width
/// ones, bidirectional overrides and isolates, the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A status error as the registry would give it (tests).
#[cfg(test)]
pub fn status_for_test(code: u16, retry_after: Option<Duration>) -> RegistryError {
    RegistryError::new(
        "r",
        ErrorKind::Status {
            request: "GET /v2/".into(),
            status: StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT),
            detail: String::new(),
            retry_after,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_error_bodies_are_summarised() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{}}]}"#;
        assert_eq!(body_detail(body), "MANIFEST_INVALID: manifest invalid");
        assert_eq!(
            body_detail(b"\n  upstream timed out\nmore"),
            "upstream timed out"
        );
        assert_eq!(body_detail(b""), "");
        assert!(body_detail("x".repeat(500).as_bytes()).ends_with('…'));
    }

    #[test]
    fn outside_text_is_printed_on_one_line_without_escapes() {
        assert_eq!(printable("linux/amd64"), "linux/amd64");
        assert_eq!(
            printable("amd64\n\u{1b}[31mred\r\t"),
            "amd64\\n\\u{1b}[31mred\\r\\t"
        );
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(printable("déjà vu ✓"), "déjà vu ✓");
        let long = printable(&"\u{1b}".repeat(500));
        assert!(long.ends_with('…') && !long.contains('\u{1b}'), "{long}");
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let status = status_for_test;
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status(code, None).retry().is_some(), "{code}");
        }
        for code in [400, 401, 403, 404, 405, 413] {
            assert!(status(code, None).retry().is_none(), "{code}");
        }
        let wait = Some(Duration::from_secs(3));
        assert_eq!(status(429, wait).retry(), Some(wait));
        let unauthorized = RegistryError::new(
            "r",
            ErrorKind::Unauthorized {
                request: "GET /v2/".into(),
                status: StatusCode::UNAUTHORIZED,
                detail: String::new(),
                had_credentials: true,
            },
        );
        assert!(unauthorized.retry().is_none());
        assert!(unauthorized.to_string().contains("docker login r"));
    }
}
