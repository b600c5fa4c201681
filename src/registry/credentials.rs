//! Credentials from the Docker config and podman's auth file (SPEC §7):
//! the files are searched in order (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`, `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`)
//! and the first one with something for the registry wins; Docker Hub's
//! aliases name one registry. `auths` entries are decoded by
//! `docker_credential`, `registrytoken` is read here, and credential helpers
//! (`credHelpers`, `credsStore`) are run here, with a time limit and a cap
//! on what they print, in a process group of their own that is killed
//! whole when they fail to answer: a helper's "not found" means anonymous,
//! and every other problem is an error naming the helper, the file and the
//! fix. Secrets live in [`Secret`], which never
//! prints its value.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use docker_credential::{CredentialRetrievalError, DockerCredential};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::errors::printable;
use super::timeouts::SETTING;

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
pub(super) const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A non-empty environment variable.
fn env_var(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The Docker config file: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`; `None` when neither variable is set. `docker
/// login` writes it, and it is the first file read.
pub(super) fn docker_config_file() -> Option<PathBuf> {
    match env_var("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => env_var("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json")),
    }
}

impl Keychain {
    /// The files the environment points at (SPEC §7).
    pub fn from_env() -> Keychain {
        let var = env_var;
        let home = var("HOME").map(PathBuf::from);
        let mut files: Vec<PathBuf> = docker_config_file().into_iter().collect();
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
    /// has one; a credential helper gets `helper_timeout` to answer. The
    /// error is a sentence naming the file or helper at fault, never a
    /// secret.
    pub async fn lookup(
        &self,
        registry: &str,
        helper_timeout: Duration,
    ) -> Result<Credential, String> {
        for path in &self.files {
            let bytes = match tokio::fs::read(path).await {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
            };
            let file = ConfigSource {
                path,
                registry,
                helper_timeout,
            };
            if let Some(credential) = file.lookup(&bytes).await? {
                return Ok(credential);
            }
        }
        Ok(Credential::Anonymous)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConfigFile {
    /// Entries kept whole, for `docker_credential` to decode.
    auths: HashMap<String, Value>,
    #[serde(rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
}

/// `docker.io` and its aliases become one name; other hosts are lower-cased.
pub(super) fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if DOCKER_HUB.contains(&host.as_str()) {
        DOCKER_HUB[1].to_string()
    } else {
        host
    }
}

/// The server a credential helper knows `registry` by when no `auths` key
/// names it: Docker Hub's URL for Docker Hub, else the registry itself.
pub(super) fn helper_server(registry: &str) -> &str {
    if DOCKER_HUB.contains(&canonical_host(registry).as_str()) {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

/// The registry a config key names: keys may be bare hosts or URLs such as
/// `https://index.docker.io/v1/`.
pub(super) fn key_registry(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    canonical_host(rest.split('/').next().unwrap_or(rest))
}

/// One credential file, looked into for one registry.
struct ConfigSource<'a> {
    path: &'a Path,
    registry: &'a str,
    helper_timeout: Duration,
}

impl ConfigSource<'_> {
    /// What the file (its contents `bytes`) has for the registry: a
    /// `credHelpers` helper decides alone; else its `auths` entry; else
    /// `credsStore`.
    async fn lookup(&self, bytes: &[u8]) -> Result<Option<Credential>, String> {
        // serde_json's message could quote a value (a password of the wrong
        // type), so only the position is reported.
        let config: ConfigFile = serde_json::from_slice(bytes).map_err(|err| {
            format!(
                "{} is not a valid Docker config (JSON error at line {}, column {})",
                self.path.display(),
                err.line(),
                err.column()
            )
        })?;
        let wanted = canonical_host(self.registry);
        let matches = |key: &&String| key_registry(key) == wanted;

        let mut helper_keys: Vec<&String> = config.cred_helpers.keys().filter(matches).collect();
        helper_keys.sort();
        if let Some(key) = helper_keys.first() {
            return self.ask_helper(&config.cred_helpers[*key], key).await;
        }

        let mut auth_keys: Vec<&String> = config.auths.keys().filter(matches).collect();
        // Exact keys first, then URLs, so the choice does not depend on map order.
        auth_keys.sort_by_key(|key| (key.as_str() != self.registry, key.to_string()));
        if let Some(token) = auth_keys.iter().find_map(|key| {
            config.auths[*key]
                .get("registrytoken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        }) {
            return Ok(Some(Credential::RegistryToken(Secret::new(token))));
        }
        if let Some(key) = auth_keys.first()
            && let Some(credential) = self.decode_entry(key, &config.auths[*key])?
        {
            return Ok(Some(credential));
        }
        let Some(store) = config.creds_store.as_ref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let server = match auth_keys.first() {
            Some(key) => key.as_str(),
            None => helper_server(self.registry),
        };
        self.ask_helper(store, server).await
    }

    /// An `auths` entry (`auth`, `username`/`password`, `identitytoken`),
    /// decoded by docker_credential from a config holding that entry alone
    /// (so that it never runs a helper itself); `None` for an empty entry.
    fn decode_entry(&self, key: &str, entry: &Value) -> Result<Option<Credential>, String> {
        let alone = serde_json::json!({ "auths": { key: entry } }).to_string();
        let (path, registry) = (self.path.display(), self.registry);
        match docker_credential::get_credential_from_reader(alone.as_bytes(), key) {
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
            Err(CredentialRetrievalError::CredentialDecodingError) => Err(format!(
                "the `auth` entry for {key} in {path} is not base64 of `user:password`; log in again with `docker login {registry}`"
            )),
            Err(CredentialRetrievalError::CredentialMismatchError) => Err(format!(
                "the `auth` and `username`/`password` entries for {key} in {path} disagree; log in again with `docker login {registry}`"
            )),
            Err(CredentialRetrievalError::ConfigReadError) => Err(format!(
                "{path} is not a valid Docker config: its `auths` entry for {key} has a field of the wrong type; log in again with `docker login {registry}`"
            )),
            Err(other) => Err(format!("cannot use {path}: {other}")),
        }
    }

    /// Runs `docker-credential-NAME get` for `server` and turns its answer,
    /// or its failure, into ours.
    async fn ask_helper(&self, name: &str, server: &str) -> Result<Option<Credential>, String> {
        let program = helper_program(name);
        run_helper(program.as_ref(), server, self.helper_timeout)
            .await
            .map_err(|err| {
                let call = HelperCall {
                    program: &program,
                    config: self.path,
                    registry: self.registry,
                    check: &format!("echo {server} | {program} get"),
                };
                call.failure(err)
            })
    }
}

/// The program of the credential helper a config names `name`.
pub(super) fn helper_program(name: &str) -> String {
    format!("docker-credential-{name}")
}

/// A helper called for a registry, to name in messages.
pub(super) struct HelperCall<'a> {
    pub program: &'a str,
    /// The config file that names it.
    pub config: &'a Path,
    pub registry: &'a str,
    /// A command the user can run to see the helper fail for themselves.
    pub check: &'a str,
}

impl HelperCall<'_> {
    /// Why the helper failed, as a sentence naming it, its config file and
    /// the fix.
    pub fn failure(&self, err: HelperError) -> String {
        let HelperCall {
            program,
            registry,
            check,
            ..
        } = self;
        let config = self.config.display();
        let named = format!("credential helper {program} (named in {config})");
        match err {
            HelperError::CannotRun(err) => format!(
                "cannot run credential helper {program} named in {config} ({err}); install it on PATH or remove it from that file"
            ),
            HelperError::TimedOut(waited) => format!(
                "{named} did not answer within {}s for {registry}; check it with `{check}`, or raise {SETTING}",
                waited.as_secs_f64()
            ),
            HelperError::Failed(message) => format!("{named} failed for {registry}: {message}"),
            HelperError::Malformed => format!(
                "{named} gave an answer for {registry} that is not JSON with Username and Secret"
            ),
            HelperError::TooLong => format!(
                "{named} printed more than {} KiB for {registry}, which is no credential; check it with `{check}`",
                HELPER_OUTPUT_LIMIT / 1024
            ),
        }
    }
}

/// Why a credential helper gave no credential.
#[derive(Debug)]
pub(super) enum HelperError {
    /// It could not be started (not installed, not executable).
    CannotRun(std::io::Error),
    /// It did not answer within this time, and was stopped.
    TimedOut(Duration),
    /// It exited with an error; its first words about it.
    Failed(String),
    /// It answered something else than `{"Username", "Secret"}`.
    Malformed,
    /// It printed more than [`HELPER_OUTPUT_LIMIT`], and was stopped.
    TooLong,
}

/// A helper's answer is a few hundred bytes; more, on stdout or stderr, is
/// not read.
const HELPER_OUTPUT_LIMIT: u64 = 1024 * 1024;

/// What a helper answers to `get`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// The credential helpers' `get`: the server on stdin,
/// `{"Username","Secret"}` on stdout; `<token>` as the user means an
/// identity token; "credentials not found" means there are none (`None`).
async fn run_helper(
    program: &std::ffi::OsStr,
    server: &str,
    timeout: Duration,
) -> Result<Option<Credential>, HelperError> {
    let Some(stdout) = call_helper(program, "get", server.as_bytes(), timeout).await? else {
        return Ok(None);
    };
    let answer: HelperAnswer =
        serde_json::from_slice(&stdout).map_err(|_| HelperError::Malformed)?;
    Ok(match (answer.username.as_str(), answer.secret) {
        ("", secret) if secret.is_empty() => None,
        ("<token>", secret) => Some(Credential::IdentityToken(Secret::new(secret))),
        (_, secret) => Some(Credential::Basic {
            username: answer.username,
            password: Secret::new(secret),
        }),
    })
}

/// The credential helpers' protocol: `PROGRAM VERB` (`get`, `store`,
/// `erase`), `input` on stdin (never on the command line, where `ps` would
/// show it); its stdout when it succeeds, `None` when it fails saying
/// "credentials not found". A helper still running after `timeout`, or
/// whose output is still open then (something it started holds it), is
/// killed with everything in its process group.
pub(super) async fn call_helper(
    program: &std::ffi::OsStr,
    verb: &str,
    input: &[u8],
    timeout: Duration,
) -> Result<Option<Vec<u8>>, HelperError> {
    let mut child = tokio::process::Command::new(program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(HelperError::CannotRun)?;
    let group = child.id();
    let talked = match tokio::time::timeout(timeout, talk(&mut child, input)).await {
        Ok(talked) => talked,
        Err(_) => Err(HelperError::TimedOut(timeout)),
    };
    let output = match talked {
        Ok(output) => output,
        Err(err) => {
            kill_group(group);
            return Err(err);
        }
    };
    if output.status.success() {
        return Ok(Some(output.stdout));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = format!("{stderr}\n{stdout}");
    if said.to_ascii_lowercase().contains("credentials not found") {
        return Ok(None);
    }
    let first_line = said.lines().map(str::trim).find(|l| !l.is_empty());
    Err(HelperError::Failed(match first_line {
        Some(line) => printable(line),
        None => format!("{} and said nothing", output.status),
    }))
}

/// What a helper said, and how it ended.
struct HelperOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Sends `input` to the helper while reading its output to the end (up to
/// the cap), then waits for it.
async fn talk(
    child: &mut tokio::process::Child,
    input: &[u8],
) -> Result<HelperOutput, HelperError> {
    let stdin = child.stdin.take();
    let write = async {
        if let Some(mut stdin) = stdin {
            // A helper that stops reading (or never starts) makes this fail
            // with a broken pipe; its exit status and words say why.
            let _ = stdin.write_all(input).await;
        }
        Ok(())
    };
    let (_, stdout, stderr) = tokio::try_join!(
        write,
        read_capped(child.stdout.take()),
        read_capped(child.stderr.take())
    )?;
    let status = child
        .wait()
        .await
        .map_err(|err| HelperError::Failed(err.to_string()))?;
    Ok(HelperOutput {
        status,
        stdout,
        stderr,
    })
}

/// All of a pipe, unless it holds more than [`HELPER_OUTPUT_LIMIT`].
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>) -> Result<Vec<u8>, HelperError> {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        pipe.take(HELPER_OUTPUT_LIMIT + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|err| HelperError::Failed(err.to_string()))?;
    }
    if bytes.len() as u64 > HELPER_OUTPUT_LIMIT {
        return Err(HelperError::TooLong);
    }
    Ok(bytes)
}

/// Kills the process group a helper leads: the helper, and whatever it
/// started and left behind.
fn kill_group(leader: Option<u32>) {
    use rustix::process::{Pid, Signal, kill_process_group};
    // Never pid 1: kill(-1) would reach every process.
    let group = leader
        .and_then(|id| i32::try_from(id).ok())
        .filter(|id| *id > 1)
        .and_then(Pid::from_raw);
    if let Some(group) = group {
        let _ = kill_process_group(group, Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long the helpers of these tests may take.
    const WAIT: Duration = Duration::from_secs(10);

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

    #[tokio::test]
    async fn entries_of_every_kind() {
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
            keychain.lookup("a.example", WAIT).await.unwrap(),
            basic("alice", "s3cret")
        );
        assert_eq!(
            keychain.lookup("b.example", WAIT).await.unwrap(),
            basic("bob", "pw:with:colons")
        );
        assert_eq!(
            keychain.lookup("c.example:5000", WAIT).await.unwrap(),
            Credential::IdentityToken(Secret::new("refresh-c"))
        );
        assert_eq!(
            keychain.lookup("d.example", WAIT).await.unwrap(),
            Credential::RegistryToken(Secret::new("bearer-d"))
        );
        assert_eq!(
            keychain.lookup("e.example", WAIT).await.unwrap(),
            Credential::Anonymous
        );
        assert_eq!(
            keychain.lookup("c.example", WAIT).await.unwrap(),
            Credential::Anonymous
        );
        assert_eq!(
            keychain.lookup("ghcr.io", WAIT).await.unwrap(),
            Credential::Anonymous
        );
    }

    #[tokio::test]
    async fn docker_hub_aliases_name_one_registry() {
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
                    keychain.lookup(registry, WAIT).await.unwrap(),
                    basic("hub", "hubpw"),
                    "{key} for {registry}"
                );
            }
        }
    }

    #[tokio::test]
    async fn the_first_file_with_an_entry_wins() {
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
        assert_eq!(
            keychain.lookup("r.example", WAIT).await.unwrap(),
            basic("podman", "pw")
        );
    }

    #[tokio::test]
    async fn broken_files_are_errors_naming_the_file_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let keychain = keychain(
            dir.path(),
            &[Some(r#"{"auths": {"r.example": {"auth": 12345678}}}"#)],
        );
        let err = keychain.lookup("r.example", WAIT).await.unwrap_err();
        assert!(err.contains("config0.json"), "{err}");
        assert!(!err.contains("12345678"), "{err}");

        let keychain = keychain_with(dir.path(), r#"{"auths": {"r.example": {"auth": "!!"}}}"#);
        let err = keychain.lookup("r.example", WAIT).await.unwrap_err();
        assert!(
            err.contains("not base64") && err.contains("docker login"),
            "{err}"
        );

        let keychain = keychain_with(
            dir.path(),
            r#"{"credHelpers": {"r.example": "krust-no-such-helper"}}"#,
        );
        let err = keychain.lookup("r.example", WAIT).await.unwrap_err();
        assert!(
            err.contains("docker-credential-krust-no-such-helper") && err.contains("PATH"),
            "{err}"
        );
    }

    fn keychain_with(dir: &Path, text: &str) -> Keychain {
        keychain(dir, &[Some(text)])
    }

    /// A helper script `body` in `dir`, executable.
    fn helper(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn helpers_answer_with_credentials_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let answers = |user: &str, secret: &str| {
            format!(
                r#"read server; [ "$server" = r.example ] || exit 9; printf '{{"ServerURL":"r.example","Username":"{user}","Secret":"{secret}"}}'"#
            )
        };
        let cases = [
            (answers("u", "p"), Some(basic("u", "p"))),
            (
                answers("<token>", "refresh"),
                Some(Credential::IdentityToken(Secret::new("refresh"))),
            ),
            (answers("", ""), None),
            (
                "echo 'credentials not found in native keychain'; exit 1".to_string(),
                None,
            ),
        ];
        for (i, (body, expected)) in cases.into_iter().enumerate() {
            let program = helper(dir.path(), &format!("h{i}"), &body);
            let got = run_helper(program.as_os_str(), "r.example", WAIT).await;
            assert_eq!(got.unwrap(), expected, "{body}");
        }
    }

    #[tokio::test]
    async fn helpers_that_fail_say_why() {
        let dir = tempfile::tempdir().unwrap();
        // It closes stdin and exits at once: writing a long server name
        // meets a broken pipe, which is not "cannot run".
        let closes = helper(
            dir.path(),
            "closes",
            "exec 0<&-; echo 'the keychain is locked' >&2; exit 1",
        );
        let long_server = "r".repeat(1 << 20);
        let err = run_helper(closes.as_os_str(), &long_server, WAIT).await;
        assert!(
            matches!(&err, Err(HelperError::Failed(m)) if m == "the keychain is locked"),
            "{err:?}"
        );

        let silent = helper(dir.path(), "silent", "cat >/dev/null; exit 3");
        let err = run_helper(silent.as_os_str(), "r.example", WAIT).await;
        assert!(
            matches!(&err, Err(HelperError::Failed(m)) if m.contains("3") && m.contains("said nothing")),
            "{err:?}"
        );

        let garbage = helper(dir.path(), "garbage", "cat >/dev/null; echo 'hello there'");
        let err = run_helper(garbage.as_os_str(), "r.example", WAIT).await;
        assert!(matches!(err, Err(HelperError::Malformed)), "{err:?}");

        let missing = dir.path().join("docker-credential-not-there");
        let err = run_helper(missing.as_os_str(), "r.example", WAIT).await;
        assert!(matches!(err, Err(HelperError::CannotRun(_))), "{err:?}");
    }

    /// Runs the helper `script` (which writes a pid to the file it is
    /// given) with a short time limit: it times out, and that process is
    /// stopped (gone, or a zombie until it is reaped).
    async fn times_out_and_is_stopped(script: impl Fn(&Path) -> String) {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let program = helper(dir.path(), "helper", &script(&pid_file));
        let started = std::time::Instant::now();
        let err = run_helper(program.as_os_str(), "r.example", Duration::from_millis(700)).await;
        assert!(matches!(err, Err(HelperError::TimedOut(_))), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::read_to_string(&stat) {
                Err(_) => return,
                Ok(text) if text.contains(") Z ") => return,
                Ok(_) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{} still running",
                        pid.trim()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    #[tokio::test]
    async fn a_helper_that_hangs_is_stopped() {
        times_out_and_is_stopped(|pid| format!("echo $$ > '{}'; exec sleep 60", pid.display()))
            .await;
    }

    /// A helper that answers and exits, leaving a process of its own
    /// holding its stdout: it times out, as it never finishes answering,
    /// and that process is stopped with it.
    #[tokio::test]
    async fn what_a_helper_leaves_holding_its_output_is_stopped() {
        times_out_and_is_stopped(|pid| {
            format!(
                r#"sleep 60 & echo $! > '{}'; printf '{{"Username":"u","Secret":"p"}}'"#,
                pid.display()
            )
        })
        .await;
    }

    /// A helper printing without end is stopped at the cap, long before its
    /// time is up.
    #[tokio::test]
    async fn a_helper_that_prints_too_much_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [
            ("endless", "cat >/dev/null; yes '{\"Username\":\"u\"}'"),
            (
                "endless-stderr",
                "cat >/dev/null; yes 'a long complaint' >&2",
            ),
            (
                "two-mib",
                "cat >/dev/null; head -c 2097152 /dev/zero | tr '\\0' x",
            ),
        ] {
            let program = helper(dir.path(), name, body);
            let started = std::time::Instant::now();
            let err = run_helper(program.as_os_str(), "r.example", Duration::from_secs(30)).await;
            assert!(matches!(err, Err(HelperError::TooLong)), "{name}: {err:?}");
            assert!(started.elapsed() < Duration::from_secs(10), "{name}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let credential = basic("alice", "hunter2");
        assert!(!format!("{credential:?}").contains("hunter2"));
        let token = Credential::IdentityToken(Secret::new("tok-123"));
        assert!(!format!("{token:?}").contains("tok-123"));
    }
}
