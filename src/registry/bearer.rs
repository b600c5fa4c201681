//! Bearer tokens (distribution's token authentication): the scope a request
//! needs, the token request itself (a GET with Basic credentials or none, or
//! an OAuth2 refresh-token POST for an `identitytoken`), and a cache of
//! tokens per (registry, scope), renewed before they expire. A mount asks
//! for push on the target and pull on the source repository in one token
//! (oci-client asks for the target only, which registries answer with 401).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::credentials::{Credential, Secret};
use super::errors::{ErrorKind, RegistryError, body_detail, from_reqwest};

/// The access a request needs, as token-server scopes
/// (`repository:NAME:ACTIONS`), sorted so equal needs share one token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Vec<String>);

impl Scope {
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
fn renew_at(issued: Instant, lifetime: Duration) -> Instant {
    issued + lifetime - (lifetime / 5).min(Duration::from_secs(30))
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

/// What a token server answers.
#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
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

/// Asks the token server for a token. `plain_http_ok` says whether
/// credentials may go to an `http://` realm.
pub async fn fetch_token(
    http: &reqwest::Client,
    wanted: TokenRequest<'_>,
    plain_http_ok: bool,
    no_roots: bool,
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
    let request = format!("the token request to {}", realm_name(realm));
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
            http.post(realm.clone())
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
            let builder = http.get(url);
            match credential {
                Credential::Basic { username, password } => {
                    builder.basic_auth(username, Some(password.expose()))
                }
                _ => builder,
            }
        }
    };
    let issued = Instant::now();
    let response = builder
        .send()
        .await
        .map_err(|err| from_reqwest(registry, &request, &err, no_roots))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|err| from_reqwest(registry, &request, &err, no_roots))?;
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
    let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
        RegistryError::new(
            registry,
            ErrorKind::Protocol(format!("{request} was answered with something not JSON")),
        )
    })?;
    let value = parsed
        .access_token
        .or(parsed.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            RegistryError::new(
                registry,
                ErrorKind::Protocol(format!("{request} was answered without a token")),
            )
        })?;
    // The distribution spec: 60 seconds when not given.
    let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(1));
    Ok(Token::new(Secret::new(value), issued, lifetime))
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
    fn tokens_are_renewed_before_they_expire() {
        let issued = Instant::now();
        let token = Token::new(Secret::new("t"), issued, Duration::from_secs(60));
        assert!(token.is_fresh(issued + Duration::from_secs(47)));
        assert!(!token.is_fresh(issued + Duration::from_secs(49)));
        let long = Token::new(Secret::new("t"), issued, Duration::from_secs(3600));
        assert!(long.is_fresh(issued + Duration::from_secs(3569)));
        assert!(!long.is_fresh(issued + Duration::from_secs(3571)));
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
