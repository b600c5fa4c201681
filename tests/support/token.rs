//! A token server for distribution's `auth.token` mode, run by the tests:
//! it answers `GET /token?service=…&scope=…` (anonymous or with Basic
//! credentials) and the OAuth2 refresh-token `POST /token`, and issues RS256
//! JWTs whose `x5c` header carries its self-signed certificate (the
//! registry's `rootcertbundle`). Known users get every action they ask for;
//! anonymous clients get `pull` on the public repositories only (as on
//! Docker Hub). It records every request, and users whose
//! name starts with `expiring` get an already expired token the first time
//! they ask for a scope, to prove that clients renew.

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::certs;
use super::serve::{self, Server};

/// The `service` the registry and tokens agree on.
pub const SERVICE: &str = "krust-test-registry";
/// The `issuer` of the tokens.
pub const ISSUER: &str = "krust-test-token-server";

/// How a token request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// No credentials.
    Anonymous,
    /// `GET` with Basic credentials.
    Password,
    /// `POST` with `grant_type=refresh_token`.
    RefreshToken,
}

/// One request the token server answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The requested scopes, one per entry.
    pub scopes: Vec<String>,
    /// The user it authenticated as, if any.
    pub user: Option<String>,
    /// How.
    pub grant: Grant,
    /// The status it answered.
    pub status: u16,
}

impl TokenRequest {
    /// True when one of the scopes names `repository`.
    pub fn mentions(&self, repository: &str) -> bool {
        self.scopes
            .iter()
            .any(|s| s.split(':').nth(1) == Some(repository))
    }
}

struct State {
    key: PathBuf,
    x5c: String,
    users: Vec<(String, String)>,
    refresh_tokens: Vec<(String, String)>,
    public: Vec<String>,
    requests: Mutex<Vec<TokenRequest>>,
    issued: Mutex<Vec<String>>,
    expired_once: Mutex<HashSet<String>>,
    counter: AtomicUsize,
}

/// A running token server.
pub struct TokenServer {
    server: Server,
    state: Arc<State>,
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    /// Starts a token server that knows `users` (name, password) and
    /// `refresh_tokens` (token, user name), and lets anyone pull the
    /// `public` repositories.
    pub fn start(
        users: &[(&str, &str)],
        refresh_tokens: &[(&str, &str)],
        public: &[&str],
    ) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("krust-token-server-")
            .tempdir()
            .expect("token server tempdir");
        // A token server kept in a static is never dropped.
        super::process::remove_on_exit(dir.path());
        let (key, cert) = certs::make_signing_key(dir.path());
        let owned = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let state = Arc::new(State {
            x5c: certs::der_base64(&cert),
            key,
            users: owned(users),
            refresh_tokens: owned(refresh_tokens),
            public: public.iter().map(|p| p.to_string()).collect(),
            requests: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            expired_once: Mutex::new(HashSet::new()),
            counter: AtomicUsize::new(0),
        });
        let handler_state = state.clone();
        let server = Server::start(move |stream, _stop: &AtomicBool| {
            handle(&handler_state, stream);
        });
        TokenServer {
            server,
            state,
            cert,
            _dir: dir,
        }
    }

    /// The realm URL the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.server.port())
    }

    /// The signing certificate (the registry's `rootcertbundle`).
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().expect("token log").clone()
    }

    /// Every token issued so far (to check none leaks into output).
    pub fn issued(&self) -> Vec<String> {
        self.state.issued.lock().expect("token list").clone()
    }

    /// A token for `user` granting `actions` on each repository, valid for
    /// an hour, without any request (a `registrytoken`).
    pub fn mint(&self, user: &str, access: &[(&str, &str)]) -> String {
        let access: Vec<Value> = access
            .iter()
            .map(|(name, actions)| {
                json!({"type": "repository", "name": name,
                       "actions": actions.split(',').collect::<Vec<_>>()})
            })
            .collect();
        let token = jwt(&self.state, user, access, false);
        self.state
            .issued
            .lock()
            .expect("token list")
            .push(token.clone());
        token
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A signed JWT for `user` with `access`; `expired` makes it dead on
/// arrival.
fn jwt(state: &State, user: &str, access: Vec<Value>, expired: bool) -> String {
    let now = now();
    let (iat, exp) = if expired {
        (now - 900, now - 600)
    } else {
        (now - 5, now + 3600)
    };
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [state.x5c]});
    let claims = json!({
        "iss": ISSUER,
        "sub": user,
        "aud": SERVICE,
        "exp": exp,
        "nbf": iat,
        "iat": iat,
        "jti": format!("krust-{}-{}", std::process::id(),
                       state.counter.fetch_add(1, Ordering::SeqCst)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = certs::sign_rs256(&state.key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `repository:NAME:ACTIONS` scopes as JWT access entries: everything
/// asked for a user, `pull` of public repositories for anonymous clients.
fn access_for(state: &State, scopes: &[String], user: bool) -> Vec<Value> {
    scopes
        .iter()
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| user || (*a == "pull" && state.public.iter().any(|p| p == name)))
                .collect();
            (!actions.is_empty()).then(|| json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect()
}

fn handle(state: &State, mut stream: TcpStream) {
    let Ok(Some(head)) = serve::read_head(&mut stream) else {
        return;
    };
    let Ok(body) = serve::read_body(&mut stream, &head) else {
        return;
    };
    // `who`: Err for refused credentials, Ok(None) for anonymous.
    let (grant, scopes, who) = if head.method == "POST" {
        let form = String::from_utf8_lossy(&body).into_owned();
        let scopes: Vec<String> = serve::form_values(&form, "scope")
            .iter()
            .flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect();
        let grant_ok = serve::form_values(&form, "grant_type") == ["refresh_token"];
        let user = serve::form_values(&form, "refresh_token")
            .first()
            .and_then(|token| {
                state
                    .refresh_tokens
                    .iter()
                    .find(|(known, _)| known == token)
                    .map(|(_, user)| user.clone())
            })
            .filter(|_| grant_ok);
        (Grant::RefreshToken, scopes, user.map(Some).ok_or(()))
    } else {
        let scopes = head.query("scope");
        match head.header("authorization").and_then(basic_credentials) {
            None => (Grant::Anonymous, scopes, Ok(None)),
            Some((user, password)) => {
                let known = state
                    .users
                    .iter()
                    .any(|(u, p)| *u == user && *p == password);
                let who = if known { Ok(Some(user)) } else { Err(()) };
                (Grant::Password, scopes, who)
            }
        }
    };
    let mut record = TokenRequest {
        method: head.method.clone(),
        scopes: scopes.clone(),
        user: None,
        grant,
        status: 200,
    };
    match who {
        Err(()) => {
            record.status = 401;
            state.requests.lock().expect("token log").push(record);
            let _ = serve::respond(
                &mut stream,
                401,
                &[("Content-Type", "application/json")],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication failed"}]}"#,
            );
        }
        Ok(user) => {
            let access = access_for(state, &scopes, user.is_some());
            let name = user.clone().unwrap_or_default();
            let expired = name.starts_with("expiring")
                && state
                    .expired_once
                    .lock()
                    .expect("expired set")
                    .insert(format!("{name} {}", scopes.join(" ")));
            let token = jwt(state, &name, access, expired);
            state.issued.lock().expect("token list").push(token.clone());
            record.user = user;
            state.requests.lock().expect("token log").push(record);
            let body = json!({"token": token, "access_token": token, "expires_in": 3600});
            let _ = serve::respond(
                &mut stream,
                200,
                &[("Content-Type", "application/json")],
                body.to_string().as_bytes(),
            );
        }
    }
}

/// `(user, password)` of a `Basic …` header.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}
