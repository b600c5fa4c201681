//! Bearer tokens (distribution's token authentication): the scope a request
//! needs, the token request itself (a GET with Basic credentials or none, or
//! an OAuth2 refresh-token POST for an `identitytoken`), the token server's
//! answer read as leniently as Docker reads it, and a cache of tokens per
//! (registry, scope), renewed before they expire. A mount asks for push on
//! the target and pull on the source repository in one token (oci-client
//! asks for the target only, which registries answer with 401). A token
//! request, answer included, takes at most one budget, whatever operation
//! needs it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::{StatusCode, Url};

use super::credentials::{Credential, Secret};
use super::errors::{ErrorKind, RegistryError, Wait, body_detail};
use super::tls::Http;
use super::transport::read_limited;

/// The access a request needs, as token-server scopes
/// (`repository:NAME:ACTIONS`), sorted so equal needs share one token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Vec<String>);

impl Scope {
    /// No repository at all: a token that only proves who asks (`docker
    /// login`'s check).
    pub fn none() -> Scope {
        Scope(Vec::new())
    }

    /// Reading one repository.
    pub fn pull(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull")])
    }

    /// Writing (and reading) one repository.
    pub fn push(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull,push")])
    }

    /// Mounting a blob of `from` into `repository`.
    pub fn mount(repository: &str, from: &str) -> Scope {
        let mut scopes = vec![
            format!("repository:{repository}:pull,push"),
            format!("repository:{from}:pull"),
        ];
        scopes.sort();
        Scope(scopes)
    }

    /// The scopes, one per `scope` parameter of a token request.
    pub fn items(&self) -> &[String] {
        &self.0
    }

    /// One string for the cache key.
    pub fn key(&self) -> String {
        self.0.join(" ")
    }
}

/// An access token and when to stop using it.
#[derive(Clone)]
pub struct Token {
    pub value: Secret,
    renew_at: Instant,
}

/// How long before its end a token is renewed: a fifth of its life, at most
/// 30 seconds, so that a request never goes out with a token about to die.
/// A lifetime beyond what the clock can count is renewed on first use.
fn renew_at(issued: Instant, lifetime: Duration) -> Instant {
    let early = (lifetime / 5).min(Duration::from_secs(30));
    issued
        .checked_add(lifetime.saturating_sub(early))
        .unwrap_or(issued)
}

impl Token {
    pub fn new(value: Secret, issued: Instant, lifetime: Duration) -> Token {
        Token {
            value,
            renew_at: renew_at(issued, lifetime),
        }
    }

    fn is_fresh(&self, now: Instant) -> bool {
        now < self.renew_at
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

/// Tokens per (registry, scope). Each key has its own lock, so parallel
/// requests needing the same token wait for one token request.
#[derive(Default)]
pub struct TokenCache {
    slots: std::sync::Mutex<HashMap<(String, String), Slot>>,
}

impl TokenCache {
    fn slot(&self, registry: &str, scope: &Scope) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry((registry.to_string(), scope.key()))
            .or_default()
            .clone()
    }

    /// The cached token if still fresh, else a new one from `fetch`.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        registry: &str,
        scope: &Scope,
        fetch: F,
    ) -> Result<Secret, RegistryError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, RegistryError>>,
    {
        let slot = self.slot(registry, scope);
        let mut held = slot.lock().await;
        if let Some(token) = held.as_ref().filter(|t| t.is_fresh(Instant::now())) {
            return Ok(token.value.clone());
        }
        let token = fetch().await?;
        let value = token.value.clone();
        *held = Some(token);
        Ok(value)
    }

    /// Forgets `rejected` (a token the registry refused), unless another
    /// request already replaced it.
    pub async fn invalidate(&self, registry: &str, scope: &Scope, rejected: &Secret) {
        let slot = self.slot(registry, scope);
        let mut held = slot.lock().await;
        if held.as_ref().is_some_and(|t| &t.value == rejected) {
            *held = None;
        }
    }
}

/// A token server's answer, as far as a client uses it.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenAnswer {
    pub token: String,
    pub lifetime: Duration,
}

/// Why a token server's answer cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum BadTokenAnswer {
    NotJson,
    NoToken,
}

/// The lifetime the distribution spec gives a token that states none.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// Stated lifetimes are kept within these bounds: a token is asked for again
/// at least once a day, and never more than once a second.
const LIFETIME_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 60 * 60));

/// Reads a token server's answer: `access_token` (OAuth2) or `token`, a
/// non-empty string; `expires_in` in seconds, as a number or a numeric
/// string, kept within [`LIFETIME_BOUNDS`], and the spec's 60 seconds when it
/// is missing or unusable (zero, which Docker reads as "not given",
/// negative, not a number). Other fields are
/// ignored, as Docker ignores them.
pub fn parse_token_answer(body: &[u8]) -> Result<TokenAnswer, BadTokenAnswer> {
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| BadTokenAnswer::NotJson)?;
    let text = |key: &str| {
        answer
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
    };
    let token = text("access_token")
        .or_else(|| text("token"))
        .ok_or(BadTokenAnswer::NoToken)?;
    let seconds = match answer.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let lifetime = seconds
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_LIFETIME, |s| {
            let (shortest, longest) = LIFETIME_BOUNDS;
            Duration::from_secs_f64(s.min(longest.as_secs_f64())).max(shortest)
        });
    Ok(TokenAnswer {
        token: token.to_string(),
        lifetime,
    })
}

/// A token wanted: for `scope` on `registry`, from the token server at
/// `realm` (with the challenge's `service`), with `credential`.
pub struct TokenRequest<'a> {
    pub registry: &'a str,
    pub realm: &'a Url,
    pub service: Option<&'a str>,
    pub scope: &'a Scope,
    pub credential: &'a Credential,
}

/// Token answers are small; anything larger is refused.
const TOKEN_ANSWER_LIMIT: usize = 1024 * 1024;

/// The `Authorization` value for `token`, kept out of `Debug` output;
/// `None` when the token holds characters a header cannot carry.
pub fn bearer_header(token: &Secret) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// Asks the token server for a token, within one budget (even inside a
/// blob transfer, which is not bound by it). `plain_http_ok` says whether
/// credentials may go to an `http://` realm.
pub async fn fetch_token(
    http: &Http,
    wanted: TokenRequest<'_>,
    plain_http_ok: bool,
) -> Result<Token, RegistryError> {
    let budget = http.timeouts.budget();
    let (registry, request) = (wanted.registry, token_request_name(wanted.realm));
    tokio::time::timeout(budget, ask_token_server(http, wanted, plain_http_ok))
        .await
        .unwrap_or_else(|_| {
            Err(RegistryError::new(
                registry,
                ErrorKind::TimedOut {
                    request,
                    wait: Wait::Budget(budget),
                },
            ))
        })
}

/// How messages name a token request to `realm`.
fn token_request_name(realm: &Url) -> String {
    format!("the token request to {}", realm_name(realm))
}

async fn ask_token_server(
    http: &Http,
    wanted: TokenRequest<'_>,
    plain_http_ok: bool,
) -> Result<Token, RegistryError> {
    let TokenRequest {
        registry,
        realm,
        service,
        scope,
        credential,
    } = wanted;
    if realm.scheme() != "https" && !credential.is_anonymous() && !plain_http_ok {
        return Err(RegistryError::new(
            registry,
            ErrorKind::InsecureRealm {
                realm: realm_name(realm),
            },
        ));
    }
    let request = token_request_name(realm);
    let builder = match credential {
        Credential::IdentityToken(refresh) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", refresh.expose())
                .append_pair("client_id", "cargo-krust")
                .append_pair("scope", &scope.key());
            if let Some(service) = service {
                form.append_pair("service", service);
            }
            http.client
                .post(realm.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form.finish())
        }
        _ => {
            let mut url = realm.clone();
            {
                let mut query = url.query_pairs_mut();
                if let Some(service) = service {
                    query.append_pair("service", service);
                }
                for item in scope.items() {
                    query.append_pair("scope", item);
                }
                if let Credential::Basic { username, .. } = credential {
                    query.append_pair("account", username);
                }
            }
            let builder = http.client.get(url);
            match credential {
                Credential::Basic { username, password } => {
                    builder.basic_auth(username, Some(password.expose()))
                }
                _ => builder,
            }
        }
    };
    let issued = Instant::now();
    let response = http.send_small(registry, &request, builder).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_limited(
        registry,
        &request,
        response,
        TOKEN_ANSWER_LIMIT,
        http.timeouts,
        "a token answer",
    )
    .await?;
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(RegistryError::new(
            registry,
            ErrorKind::Unauthorized {
                request,
                status,
                detail: body_detail(&body),
                had_credentials: !credential.is_anonymous(),
            },
        ));
    }
    if !status.is_success() {
        return Err(RegistryError::new(
            registry,
            ErrorKind::Status {
                request,
                status,
                detail: body_detail(&body),
                retry_after: super::retry::retry_after(&headers),
            },
        ));
    }
    let answer = parse_token_answer(&body).map_err(|bad| {
        let what = match bad {
            BadTokenAnswer::NotJson => "with something not JSON",
            BadTokenAnswer::NoToken => "without a token",
        };
        RegistryError::new(
            registry,
            ErrorKind::Protocol(format!("{request} was answered {what}")),
        )
    })?;
    let token = Secret::new(answer.token);
    if bearer_header(&token).is_none() {
        return Err(RegistryError::new(
            registry,
            ErrorKind::Protocol(format!(
                "{request} was answered with a token holding characters not allowed in an HTTP header"
            )),
        ));
    }
    Ok(Token::new(token, issued, answer.lifetime))
}

/// The realm without its query, for messages.
fn realm_name(realm: &Url) -> String {
    let mut url = realm.clone();
    url.set_query(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(Scope::pull("a/b").key(), "repository:a/b:pull");
        assert_eq!(Scope::push("a/b").key(), "repository:a/b:pull,push");
        assert_eq!(
            Scope::mount("x/app", "base").items(),
            ["repository:base:pull", "repository:x/app:pull,push"]
        );
        assert_eq!(Scope::mount("b", "a"), Scope::mount("b", "a"));
    }

    #[test]
    fn tokens_that_cannot_go_in_a_header() {
        assert!(bearer_header(&Secret::new("eyJ.a-b_c~d+e/f=")).is_some());
        for bad in ["t\nX-Injected: 1", "t\r", "t\u{0}", "t\u{7f}"] {
            assert!(bearer_header(&Secret::new(bad)).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let issued = Instant::now();
        let token = Token::new(Secret::new("t"), issued, Duration::from_secs(60));
        assert!(token.is_fresh(issued + Duration::from_secs(47)));
        assert!(!token.is_fresh(issued + Duration::from_secs(49)));
        let long = Token::new(Secret::new("t"), issued, Duration::from_secs(3600));
        assert!(long.is_fresh(issued + Duration::from_secs(3569)));
        assert!(!long.is_fresh(issued + Duration::from_secs(3571)));
    }

    #[test]
    fn huge_lifetimes_do_not_overflow_the_clock() {
        let issued = Instant::now();
        for lifetime in [Duration::MAX, Duration::from_secs(u64::MAX), Duration::ZERO] {
            let token = Token::new(Secret::new("t"), issued, lifetime);
            assert!(token.renew_at >= issued);
        }
    }

    fn lifetime_of(expires_in: &str) -> Result<Duration, BadTokenAnswer> {
        let body = format!(r#"{{"token": "t", "expires_in": {expires_in}}}"#);
        parse_token_answer(body.as_bytes()).map(|a| a.lifetime)
    }

    #[test]
    fn token_lifetimes_are_read_leniently_and_kept_sane() {
        let secs = Duration::from_secs;
        let day = secs(24 * 60 * 60);
        for (expires_in, lifetime) in [
            ("300", secs(300)),
            ("\"300\"", secs(300)),
            ("\" 45 \"", secs(45)),
            ("300.9", Duration::from_secs_f64(300.9)),
            ("1.5", Duration::from_secs_f64(1.5)),
            ("9223372036854775807", day),
            ("18446744073709551615", day),
            ("1e300", day),
            ("99999999999999999999999999", day),
            ("0", secs(60)),
            ("0.5", secs(1)),
            ("-5", secs(60)),
            ("null", secs(60)),
            ("\"soon\"", secs(60)),
            ("true", secs(60)),
            ("[1]", secs(60)),
            ("{}", secs(60)),
        ] {
            assert_eq!(lifetime_of(expires_in), Ok(lifetime), "{expires_in}");
        }
        let missing = parse_token_answer(br#"{"token": "t"}"#).unwrap();
        assert_eq!(missing.lifetime, secs(60));
    }

    #[test]
    fn token_answers_without_a_usable_token() {
        let parse = |body: &str| parse_token_answer(body.as_bytes());
        assert_eq!(parse("<html>"), Err(BadTokenAnswer::NotJson));
        assert_eq!(parse(""), Err(BadTokenAnswer::NotJson));
        assert_eq!(parse(r#"{"token": "t""#), Err(BadTokenAnswer::NotJson));
        for body in [
            "{}",
            "[]",
            "\"t\"",
            "null",
            r#"{"token": ""}"#,
            r#"{"token": 42}"#,
            r#"{"token": null, "access_token": ["t"]}"#,
        ] {
            assert_eq!(parse(body), Err(BadTokenAnswer::NoToken), "{body}");
        }
        let both = parse(r#"{"token": "old", "access_token": "new", "issued_at": 5}"#).unwrap();
        assert_eq!(both.token, "new");
        let empty_access = parse(r#"{"token": "t", "access_token": ""}"#).unwrap();
        assert_eq!(empty_access.token, "t");
    }

    /// A few hundred token answers, valid ones mangled at random: none may
    /// panic (each parses or is refused).
    #[test]
    fn generated_token_answers_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x70c3);
        let seeds: &[&[u8]] = &[
            br#"{"token":"abc","access_token":"def","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}"#,
            br#"{"token":"abc","expires_in":"60"}"#,
            br#"{"access_token":"x","expires_in":1e308}"#,
        ];
        let values = [
            "null",
            "true",
            "-1",
            "0",
            "1e999",
            "-1e999",
            "18446744073709551616",
            "\"\"",
            "\"NaN\"",
            "\"inf\"",
            "\"-0\"",
            "[]",
            "{}",
            "1.7976931348623157e308",
            "4.9e-324",
            "\"9223372036854775807\"",
        ];
        for round in 0..400 {
            let seed = seeds[round % seeds.len()];
            let body: Vec<u8> = match round % 4 {
                0 => seed[..rng.usize(..=seed.len())].to_vec(),
                1 => {
                    let mut bytes = seed.to_vec();
                    for _ in 0..rng.usize(1..8) {
                        let at = rng.usize(..bytes.len());
                        bytes[at] = rng.u8(..);
                    }
                    bytes
                }
                2 => {
                    let key = ["token", "access_token", "expires_in"][rng.usize(..3)];
                    let value = values[rng.usize(..values.len())];
                    format!(r#"{{"token":"t","{key}":{value}}}"#).into_bytes()
                }
                _ => (0..rng.usize(..64)).map(|_| rng.u8(..)).collect(),
            };
            if let Ok(answer) = parse_token_answer(&body) {
                assert!(!answer.token.is_empty());
                assert!(answer.lifetime >= LIFETIME_BOUNDS.0);
                assert!(answer.lifetime <= LIFETIME_BOUNDS.1);
                let _ = Token::new(Secret::new(answer.token), Instant::now(), answer.lifetime);
            }
        }
    }

    #[tokio::test]
    async fn the_cache_fetches_once_per_scope_and_after_invalidation() {
        let cache = TokenCache::default();
        let fetches = std::sync::atomic::AtomicU32::new(0);
        let fetch = |name: &'static str| {
            let fetches = &fetches;
            move || async move {
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(Token::new(
                    Secret::new(name),
                    Instant::now(),
                    Duration::from_secs(300),
                ))
            }
        };
        let pull = Scope::pull("a");
        let first = cache.get_or_fetch("r", &pull, fetch("one")).await.unwrap();
        let again = cache.get_or_fetch("r", &pull, fetch("two")).await.unwrap();
        assert_eq!((first.expose(), again.expose()), ("one", "one"));
        cache
            .get_or_fetch("r", &Scope::push("a"), fetch("push"))
            .await
            .unwrap();
        cache
            .get_or_fetch("other", &pull, fetch("other"))
            .await
            .unwrap();
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 3);

        cache.invalidate("r", &pull, &Secret::new("stale")).await;
        let kept = cache.get_or_fetch("r", &pull, fetch("x")).await.unwrap();
        assert_eq!(kept.expose(), "one");
        cache.invalidate("r", &pull, &first).await;
        let renewed = cache
            .get_or_fetch("r", &pull, fetch("three"))
            .await
            .unwrap();
        assert_eq!(renewed.expose(), "three");
    }

    #[tokio::test]
    async fn expired_tokens_are_fetched_again() {
        let cache = TokenCache::default();
        let scope = Scope::pull("a");
        let issued = Instant::now() - Duration::from_secs(120);
        cache
            .get_or_fetch("r", &scope, || async {
                Ok(Token::new(
                    Secret::new("old"),
                    issued,
                    Duration::from_secs(60),
                ))
            })
            .await
            .unwrap();
        let value = cache
            .get_or_fetch("r", &scope, || async {
                Ok(Token::new(
                    Secret::new("new"),
                    Instant::now(),
                    Duration::from_secs(60),
                ))
            })
            .await
            .unwrap();
        assert_eq!(value.expose(), "new");
    }
}
