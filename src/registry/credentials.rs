//! Credentials from the Docker config and podman's auth file (SPEC §7),
//! through `docker_credential`, wrapped where it falls short: the files are
//! searched in order (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`, `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`)
//! and the first one with something for the registry wins; Docker Hub's
//! aliases name one registry; `registrytoken` is read; a helper's "not
//! found" means anonymous; every other problem is an error naming the file
//! or helper. Secrets live in [`Secret`], which never prints its value.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};
use serde::Deserialize;

/// A password or token. Its `Debug` hides the value, so it cannot end up in
/// a log or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that puts it in a header or form.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What to authenticate to one registry with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Anonymous,
    Basic {
        username: String,
        password: Secret,
    },
    /// A refresh token (`identitytoken`, or a helper's `<token>` user),
    /// exchanged for access tokens at the registry's token server.
    IdentityToken(Secret),
    /// A bearer token sent to the registry as it is (`registrytoken`).
    RegistryToken(Secret),
}

impl Credential {
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credential::Anonymous)
    }
}

/// The credential files, most important first.
#[derive(Debug, Clone)]
pub struct Keychain {
    files: Vec<PathBuf>,
}

/// Docker Hub's names; any of them names the one registry.
const DOCKER_HUB: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];
/// The key Docker itself stores Docker Hub credentials under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

impl Keychain {
    /// The files the environment points at (SPEC §7).
    pub fn from_env() -> Keychain {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let mut files = Vec::new();
        match (var("DOCKER_CONFIG"), &home) {
            (Some(dir), _) => files.push(PathBuf::from(dir).join("config.json")),
            (None, Some(home)) => files.push(home.join(".docker").join("config.json")),
            (None, None) => {}
        }
        if let Some(file) = var("REGISTRY_AUTH_FILE") {
            files.push(PathBuf::from(file));
        }
        if let Some(dir) = var("XDG_RUNTIME_DIR") {
            files.push(PathBuf::from(dir).join("containers").join("auth.json"));
        }
        let config_home = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".config")));
        if let Some(dir) = config_home {
            files.push(dir.join("containers").join("auth.json"));
        }
        files.dedup();
        Keychain::with_files(files)
    }

    pub fn with_files(files: Vec<PathBuf>) -> Keychain {
        Keychain { files }
    }

    /// The credential for `registry` (`host[:port]`), anonymous when no file
    /// has one. Runs credential helpers, so it blocks. The error is a
    /// sentence naming the file or helper at fault, never a secret.
    pub fn lookup(&self, registry: &str) -> Result<Credential, String> {
        for path in &self.files {
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
            };
            if let Some(credential) = lookup_in_file(path, &bytes, registry)? {
                return Ok(credential);
            }
        }
        Ok(Credential::Anonymous)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConfigFile {
    auths: HashMap<String, AuthEntry>,
    #[serde(rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthEntry {
    registrytoken: Option<String>,
}

/// `docker.io` and its aliases become one name; other hosts are lower-cased.
fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if DOCKER_HUB.contains(&host.as_str()) {
        DOCKER_HUB[1].to_string()
    } else {
        host
    }
}

/// The registry a config key names: keys may be bare hosts or URLs such as
/// `https://index.docker.io/v1/`.
fn key_registry(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    canonical_host(rest.split('/').next().unwrap_or(rest))
}

fn lookup_in_file(path: &Path, bytes: &[u8], registry: &str) -> Result<Option<Credential>, String> {
    // serde_json's message could quote a value (a password of the wrong
    // type), so only the position is reported.
    let config: ConfigFile = serde_json::from_slice(bytes).map_err(|err| {
        format!(
            "{} is not a valid Docker config (JSON error at line {}, column {})",
            path.display(),
            err.line(),
            err.column()
        )
    })?;
    let wanted = canonical_host(registry);
    let is_hub = DOCKER_HUB.contains(&wanted.as_str());
    let matches = |key: &&String| key_registry(key) == wanted;

    // A credential helper configured for this registry decides alone.
    let mut helper_keys: Vec<&String> = config.cred_helpers.keys().filter(matches).collect();
    helper_keys.sort();
    if let Some(key) = helper_keys.first() {
        let helper = &config.cred_helpers[*key];
        return ask(path, bytes, key, Some(helper), registry);
    }

    let mut auth_keys: Vec<&String> = config.auths.keys().filter(matches).collect();
    // Exact keys first, then URLs, so the choice does not depend on map order.
    auth_keys.sort_by_key(|key| (key.as_str() != registry, key.to_string()));
    if let Some(token) = auth_keys
        .iter()
        .find_map(|key| config.auths[*key].registrytoken.as_ref())
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Credential::RegistryToken(Secret::new(token.clone()))));
    }
    let key = match auth_keys.first() {
        Some(key) => key.as_str(),
        None if is_hub => DOCKER_HUB_KEY,
        None => registry,
    };
    ask(path, bytes, key, config.creds_store.as_ref(), registry)
}

/// Asks docker_credential for `key`, and turns its answer into ours.
fn ask(
    path: &Path,
    bytes: &[u8],
    key: &str,
    helper: Option<&String>,
    registry: &str,
) -> Result<Option<Credential>, String> {
    let helper_name = || format!("docker-credential-{}", helper.map_or("?", |h| h.as_str()));
    match docker_credential::get_credential_from_reader(bytes, key) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            if username.is_empty() && password.is_empty() {
                Ok(None)
            } else {
                Ok(Some(Credential::Basic {
                    username,
                    password: Secret::new(password),
                }))
            }
        }
        Ok(DockerCredential::IdentityToken(token)) => {
            Ok(Some(Credential::IdentityToken(Secret::new(token))))
        }
        Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(None),
        Err(CredentialRetrievalError::HelperFailure { stdout, stderr, .. }) => {
            let said = format!("{stdout}\n{stderr}");
            if said.to_ascii_lowercase().contains("credentials not found") {
                Ok(None)
            } else {
                Err(format!(
                    "credential helper {} (named in {}) failed for {registry}: {}",
                    helper_name(),
                    path.display(),
                    said.lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .unwrap_or("no message")
                ))
            }
        }
        Err(CredentialRetrievalError::HelperCommunicationError) => Err(format!(
            "cannot run credential helper {} named in {}; install it on PATH or remove it from that file",
            helper_name(),
            path.display()
        )),
        Err(CredentialRetrievalError::MalformedHelperResponse) => Err(format!(
            "credential helper {} (named in {}) gave an answer that is not JSON with Username and Secret",
            helper_name(),
            path.display()
        )),
        Err(CredentialRetrievalError::CredentialDecodingError) => Err(format!(
            "the `auth` entry for {key} in {} is not base64 of `user:password`; log in again with `docker login {registry}`",
            path.display()
        )),
        Err(CredentialRetrievalError::CredentialMismatchError) => Err(format!(
            "the `auth` and `username`/`password` entries for {key} in {} disagree; log in again with `docker login {registry}`",
            path.display()
        )),
        Err(other) => Err(format!("cannot use {}: {other}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Credential {
        Credential::Basic {
            username: user.into(),
            password: Secret::new(password),
        }
    }

    /// A keychain of the given files' contents (None: the file is missing).
    fn keychain(dir: &Path, contents: &[Option<&str>]) -> Keychain {
        let files = contents
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let path = dir.join(format!("config{i}.json"));
                if let Some(text) = text {
                    std::fs::write(&path, text).unwrap();
                }
                path
            })
            .collect();
        Keychain::with_files(files)
    }

    #[test]
    fn entries_of_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        // "alice:s3cret" and "bob:pw:with:colons"
        let config = r#"{
            "auths": {
                "a.example": {"auth": "YWxpY2U6czNjcmV0"},
                "https://b.example/v1/": {"username": "bob", "password": "pw:with:colons"},
                "c.example:5000": {"identitytoken": "refresh-c"},
                "d.example": {"registrytoken": "bearer-d", "identitytoken": "ignored"},
                "e.example": {}
            },
            "HttpHeaders": {"X-Unknown": "kept out"}
        }"#;
        let keychain = keychain(dir.path(), &[Some(config)]);
        assert_eq!(
            keychain.lookup("a.example").unwrap(),
            basic("alice", "s3cret")
        );
        assert_eq!(
            keychain.lookup("b.example").unwrap(),
            basic("bob", "pw:with:colons")
        );
        assert_eq!(
            keychain.lookup("c.example:5000").unwrap(),
            Credential::IdentityToken(Secret::new("refresh-c"))
        );
        assert_eq!(
            keychain.lookup("d.example").unwrap(),
            Credential::RegistryToken(Secret::new("bearer-d"))
        );
        assert_eq!(keychain.lookup("e.example").unwrap(), Credential::Anonymous);
        assert_eq!(keychain.lookup("c.example").unwrap(), Credential::Anonymous);
        assert_eq!(keychain.lookup("ghcr.io").unwrap(), Credential::Anonymous);
    }

    #[test]
    fn docker_hub_aliases_name_one_registry() {
        let dir = tempfile::tempdir().unwrap();
        for key in [
            "https://index.docker.io/v1/",
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
        ] {
            let config = format!(r#"{{"auths": {{"{key}": {{"auth": "aHViOmh1YnB3"}}}}}}"#);
            let keychain = keychain(dir.path(), &[Some(&config)]);
            for registry in DOCKER_HUB {
                assert_eq!(
                    keychain.lookup(registry).unwrap(),
                    basic("hub", "hubpw"),
                    "{key} for {registry}"
                );
            }
        }
    }

    #[test]
    fn the_first_file_with_an_entry_wins() {
        let dir = tempfile::tempdir().unwrap();
        let keychain = keychain(
            dir.path(),
            &[
                None,
                Some(r#"{"auths": {"other.example": {"auth": "eDp5"}}}"#),
                Some(r#"{"auths": {"r.example": {"auth": "cG9kbWFuOnB3"}}}"#),
                Some(r#"{"auths": {"r.example": {"auth": "bGF0ZTpwdw=="}}}"#),
            ],
        );
        assert_eq!(keychain.lookup("r.example").unwrap(), basic("podman", "pw"));
    }

    #[test]
    fn broken_files_are_errors_naming_the_file_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let keychain = keychain(
            dir.path(),
            &[Some(r#"{"auths": {"r.example": {"auth": 12345678}}}"#)],
        );
        let err = keychain.lookup("r.example").unwrap_err();
        assert!(err.contains("config0.json"), "{err}");
        assert!(!err.contains("12345678"), "{err}");

        let keychain = keychain_with(dir.path(), r#"{"auths": {"r.example": {"auth": "!!"}}}"#);
        let err = keychain.lookup("r.example").unwrap_err();
        assert!(
            err.contains("not base64") && err.contains("docker login"),
            "{err}"
        );

        let keychain = keychain_with(
            dir.path(),
            r#"{"credHelpers": {"r.example": "krust-no-such-helper"}}"#,
        );
        let err = keychain.lookup("r.example").unwrap_err();
        assert!(
            err.contains("docker-credential-krust-no-such-helper") && err.contains("PATH"),
            "{err}"
        );
    }

    fn keychain_with(dir: &Path, text: &str) -> Keychain {
        keychain(dir, &[Some(text)])
    }

    #[test]
    fn secrets_do_not_print() {
        let credential = basic("alice", "hunter2");
        assert!(!format!("{credential:?}").contains("hunter2"));
        let token = Credential::IdentityToken(Secret::new("tok-123"));
        assert!(!format!("{token:?}").contains("tok-123"));
    }
}
