//! `cargo krust login` and `logout`: credentials written the way `docker
//! login` writes them, into the Docker config (`$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`; see [`super::credentials`], which reads
//! them back): `auths.<server>.auth = base64(user:password)`, or, when the
//! config names a credential helper for the registry (`credHelpers`) or a
//! `credsStore`, through that helper's `store`/`erase` (the secret on its
//! stdin, never on a command line). Credentials are checked against the
//! registry before anything is written; the config is replaced whole, keeps
//! every other key, and is readable by its owner only. Docker Hub's names
//! are stored under `https://index.docker.io/v1/`, as Docker does.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Map, Value, json};

use super::credentials::{
    HelperCall, HelperError, Secret, call_helper, canonical_host, docker_config_file,
    helper_program, helper_server, key_registry,
};
use super::errors::printable;
use super::{RegistryClient, Timeouts};
use crate::fsutil::write_atomic_private;
use crate::progress;

/// A password is a few hundred bytes at most (a token); more on stdin is a
/// mistake (a file piped in instead of the password).
const PASSWORD_LIMIT: u64 = 64 * 1024;

/// What `cargo krust login` was asked to do.
pub struct Login {
    /// The registry as the user named it (`host[:port]`, or a URL).
    pub registry: String,
    pub username: String,
    pub password: Secret,
    /// `--insecure-registry` values: hosts that may be asked over plain HTTP.
    pub insecure: Vec<String>,
    pub timeouts: Timeouts,
}

/// The password piped to `--password-stdin`, without the line end `echo`
/// adds (as `docker login` reads it).
pub fn password_from(input: impl Read) -> Result<Secret> {
    let mut bytes = Vec::new();
    input
        .take(PASSWORD_LIMIT + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the password from stdin")?;
    if bytes.len() as u64 > PASSWORD_LIMIT {
        bail!(
            "stdin holds more than {} KiB, which is no password; pipe the password alone to --password-stdin",
            PASSWORD_LIMIT / 1024
        );
    }
    let Ok(mut password) = String::from_utf8(bytes) else {
        bail!(
            "the password on stdin is not UTF-8 text; pipe the password alone to --password-stdin"
        );
    };
    for end in ["\n", "\r"] {
        if password.ends_with(end) {
            password.truncate(password.len() - end.len());
        }
    }
    if password.is_empty() {
        bail!(
            "no password on stdin; pipe it to --password-stdin, e.g. `cat password.txt | cargo krust login REGISTRY -u USER --password-stdin`"
        );
    }
    Ok(Secret::new(password))
}

/// Checks the credentials against the registry, then stores them.
pub fn login(login: &Login) -> Result<()> {
    let host = registry_host(&login.registry)?;
    let username = login.username.as_str();
    if username.is_empty() || username.contains(':') {
        bail!(
            "the user name `{}` cannot be sent to a registry (it is empty or holds a `:`); pass the account name with -u",
            printable(username)
        );
    }
    let mut config = DockerConfig::read()?;
    let helper = config.helper_for(&host)?;
    let client = RegistryClient::new(&login.insecure, [host.as_str()], login.timeouts)?;
    in_runtime(async {
        client
            .check_login(&host, username, login.password.clone())
            .await?;
        let server = helper_server(&host);
        config.remove_entries(&host)?;
        let stored_in = match &helper {
            Some(call) => {
                let input = json!({
                    "ServerURL": call.server,
                    "Username": username,
                    "Secret": login.password.expose(),
                });
                let stored = call_helper(
                    call.program.as_ref(),
                    "store",
                    input.to_string().as_bytes(),
                    login.timeouts.helper(),
                )
                .await;
                if let Err(err) = stored {
                    let message = call.failure(err);
                    bail!("{}", message.replace(login.password.expose(), "<password>"));
                }
                // Docker keeps an empty entry, which says the helper holds it.
                config.auths()?.insert(server.to_string(), json!({}));
                format!("by credential helper {}", call.program)
            }
            None => {
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", login.password.expose()));
                config
                    .auths()?
                    .insert(server.to_string(), json!({ "auth": auth }));
                format!("in {}", config.path.display())
            }
        };
        config.write()?;
        progress::status(
            "Logged in",
            format!(
                "to {host} as {}, credentials stored {stored_in}",
                printable(username)
            ),
        );
        Ok(())
    })
}

/// Removes the stored credentials of `registry`; none is no error.
pub fn logout(registry: &str, timeouts: Timeouts) -> Result<()> {
    let host = registry_host(registry)?;
    let mut config = DockerConfig::read()?;
    let helper = config.helper_for(&host)?;
    let mut erased_by = None;
    if let Some(call) = &helper {
        let erased = in_runtime(async {
            call_helper(
                call.program.as_ref(),
                "erase",
                call.server.as_bytes(),
                timeouts.helper(),
            )
            .await
            .map_err(|err| anyhow::anyhow!(call.failure(err)))
        })?;
        if erased.is_some() {
            erased_by = Some(call.program.clone());
        }
    }
    let removed = config.remove_entries(&host)?;
    if removed > 0 {
        config.write()?;
    }
    match (erased_by, removed) {
        (Some(program), _) => progress::status(
            "Logged out",
            format!("of {host}, credentials erased by credential helper {program}"),
        ),
        (None, 0) => progress::status(
            "Logged out",
            format!("of {host}: it had no credentials stored (not logged in)"),
        ),
        (None, _) => progress::status(
            "Logged out",
            format!(
                "of {host}, credentials removed from {}",
                config.path.display()
            ),
        ),
    }
    Ok(())
}

/// `host[:port]` of the registry the user named (`localhost:5000`,
/// `https://ghcr.io/`, `docker.io`), Docker Hub's aliases made one.
fn registry_host(named: &str) -> Result<String> {
    let host = key_registry(named.trim());
    let valid = !host.is_empty()
        && url::Url::parse(&format!("https://{host}/"))
            .is_ok_and(|url| url.host_str().is_some() && url.path() == "/");
    if !valid {
        bail!(
            "`{}` is no registry; name it as HOST[:PORT], e.g. ghcr.io or localhost:5000",
            printable(named)
        );
    }
    Ok(canonical_host(&host))
}

/// Runs `work` on a runtime of its own.
fn in_runtime<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(work);
    // CA roots still loading for nobody must not delay the exit.
    runtime.shutdown_background();
    result
}

/// The Docker config, read whole so that it is written back whole.
struct DockerConfig {
    path: PathBuf,
    json: Map<String, Value>,
}

impl DockerConfig {
    /// The file docker reads (a missing file is an empty config).
    fn read() -> Result<DockerConfig> {
        let Some(path) = docker_config_file() else {
            bail!("cannot find the Docker config: neither DOCKER_CONFIG nor HOME is set");
        };
        DockerConfig::read_at(path)
    }

    fn read_at(path: PathBuf) -> Result<DockerConfig> {
        // Through a symbolic link, as docker does: the link stays.
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => b"{}".to_vec(),
            Err(err) => bail!("cannot read {}: {err}", path.display()),
        };
        // serde_json's message could quote a value (a password), so only
        // the position is reported.
        let json = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(json)) => json,
            Ok(_) => bail!(
                "{} is not a valid Docker config (not a JSON object); fix or remove it",
                path.display()
            ),
            Err(err) => bail!(
                "{} is not a valid Docker config (JSON error at line {}, column {}); fix or remove it",
                path.display(),
                err.line(),
                err.column()
            ),
        };
        Ok(DockerConfig { path, json })
    }

    /// An error naming `key` of the config, which is not what docker writes.
    fn wrong_type(&self, key: &str, wanted: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{} is not a valid Docker config: its `{key}` is not {wanted}; fix or remove it",
            self.path.display()
        )
    }

    /// The credential helper that holds `host`'s credentials: its
    /// `credHelpers` entry, else `credsStore`, and the server it knows the
    /// registry by, as the reading side decides both.
    fn helper_for(&self, host: &str) -> Result<Option<NamedHelper>> {
        let named = |name: &str, server: &str| NamedHelper {
            program: helper_program(name),
            server: server.to_string(),
            config: self.path.clone(),
            host: host.to_string(),
        };
        if let Some(helpers) = self.json.get("credHelpers") {
            let helpers = helpers
                .as_object()
                .ok_or_else(|| self.wrong_type("credHelpers", "an object"))?;
            let mut keys: Vec<&String> = helpers
                .keys()
                .filter(|key| key_registry(key) == host)
                .collect();
            keys.sort();
            if let Some(key) = keys.first() {
                return match helpers.get(*key).and_then(Value::as_str) {
                    Some(name) if !name.is_empty() => Ok(Some(named(name, key))),
                    _ => Err(self.wrong_type(&format!("credHelpers.{key}"), "a helper name")),
                };
            }
        }
        match self.json.get("credsStore") {
            None => Ok(None),
            Some(Value::String(name)) if name.is_empty() => Ok(None),
            Some(Value::String(name)) => Ok(Some(named(name, helper_server(host)))),
            Some(_) => Err(self.wrong_type("credsStore", "a helper name")),
        }
    }

    /// The `auths` object, created when missing.
    fn auths(&mut self) -> Result<&mut Map<String, Value>> {
        if !self.json.get("auths").is_none_or(Value::is_object) {
            return Err(self.wrong_type("auths", "an object"));
        }
        let auths = self
            .json
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        auths
            .as_object_mut()
            .ok_or_else(|| anyhow::anyhow!("`auths` is not an object"))
    }

    /// Removes every `auths` entry naming `host` (under any of its
    /// spellings); how many there were.
    fn remove_entries(&mut self, host: &str) -> Result<usize> {
        if self.json.get("auths").is_none() {
            return Ok(0);
        }
        let auths = self.auths()?;
        let before = auths.len();
        auths.retain(|key, _| key_registry(key) != host);
        Ok(before - auths.len())
    }

    /// Writes the config whole, for its owner's eyes only, creating its
    /// directory (private too, as docker makes it) when missing.
    fn write(&self) -> Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let mut text = serde_json::to_string_pretty(&self.json)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        text.push('\n');
        write_atomic_private(&self.path, text.as_bytes())
    }
}

/// A directory made 0700 when it does not exist yet.
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// A helper named by the config for a registry.
#[derive(Debug, PartialEq, Eq)]
struct NamedHelper {
    program: String,
    /// What the helper knows the registry by (its `ServerURL`).
    server: String,
    /// The config file that names it.
    config: PathBuf,
    host: String,
}

impl NamedHelper {
    /// Why it failed, naming it, the config and the fix.
    fn failure(&self, err: HelperError) -> String {
        let check = format!("{} list", self.program);
        HelperCall {
            program: &self.program,
            config: &self.config,
            registry: &self.host,
            check: &check,
        }
        .failure(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_lose_the_line_end_echo_adds() {
        for (input, expected) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret", "s3cret"),
            ("two words \n\n", "two words \n"),
        ] {
            let password = password_from(input.as_bytes()).unwrap();
            assert_eq!(password.expose(), expected, "{input:?}");
        }
        for input in [&b"\n"[..], b"", b"\xff\xfe\n"] {
            let err = password_from(input).unwrap_err().to_string();
            assert!(err.contains("--password-stdin"), "{err}");
        }
        let huge = vec![b'x'; 2 * PASSWORD_LIMIT as usize];
        let err = password_from(&huge[..]).unwrap_err().to_string();
        assert!(err.contains("no password"), "{err}");
    }

    #[test]
    fn registries_are_named_as_docker_names_them() {
        for (named, host, server) in [
            ("localhost:5000", "localhost:5000", "localhost:5000"),
            ("https://GHCR.io/", "ghcr.io", "ghcr.io"),
            ("docker.io", "index.docker.io", DOCKER_HUB_SERVER),
            ("registry-1.docker.io", "index.docker.io", DOCKER_HUB_SERVER),
            (
                "https://index.docker.io/v1/",
                "index.docker.io",
                DOCKER_HUB_SERVER,
            ),
        ] {
            let got = registry_host(named).unwrap();
            assert_eq!(got, host, "{named}");
            assert_eq!(helper_server(&got), server, "{named}");
        }
        for bad in ["", "  ", "a b", "host:port", "\u{1b}[31m"] {
            let err = registry_host(bad).unwrap_err().to_string();
            assert!(
                err.contains("HOST[:PORT]") && !err.contains('\u{1b}'),
                "{err}"
            );
        }
    }

    const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

    fn config_with(dir: &Path, text: &str) -> DockerConfig {
        let path = dir.join("config.json");
        std::fs::write(&path, text).unwrap();
        DockerConfig::read_at(path).unwrap()
    }

    #[test]
    fn every_spelling_of_a_registry_is_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_with(
            dir.path(),
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "eDp5"}, "docker.io": {},
                "ghcr.io": {"auth": "eDp5"}}, "psFormat": "table"}"#,
        );
        assert_eq!(config.remove_entries("index.docker.io").unwrap(), 2);
        assert_eq!(config.remove_entries("index.docker.io").unwrap(), 0);
        config.write().unwrap();
        let written: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(
            written,
            json!({"auths": {"ghcr.io": {"auth": "eDp5"}}, "psFormat": "table"})
        );
    }

    #[test]
    fn the_helper_is_chosen_as_the_reading_side_chooses_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(
            dir.path(),
            r#"{"credHelpers": {"https://GHCR.io": "gh"}, "credsStore": "desktop"}"#,
        );
        let helper = |host| {
            config
                .helper_for(host)
                .unwrap()
                .map(|h| (h.program, h.server))
        };
        assert_eq!(
            helper("ghcr.io"),
            Some(("docker-credential-gh".into(), "https://GHCR.io".into()))
        );
        assert_eq!(
            helper("index.docker.io"),
            Some(("docker-credential-desktop".into(), DOCKER_HUB_SERVER.into()))
        );
        let config = config_with(dir.path(), r#"{"credsStore": ""}"#);
        assert_eq!(config.helper_for("quay.io").unwrap(), None);
    }

    #[test]
    fn configs_docker_would_not_write_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for (text, culprit) in [
            (r#"{"credsStore": 3}"#, "credsStore"),
            (r#"{"credHelpers": []}"#, "credHelpers"),
            (r#"{"credHelpers": {"ghcr.io": 1}}"#, "credHelpers.ghcr.io"),
        ] {
            let config = config_with(dir.path(), text);
            let err = config.helper_for("ghcr.io").unwrap_err().to_string();
            assert!(
                err.contains(culprit) && err.contains("config.json"),
                "{err}"
            );
        }
        let mut config = config_with(dir.path(), r#"{"auths": "s3cret"}"#);
        let err = config.remove_entries("ghcr.io").unwrap_err().to_string();
        assert!(err.contains("`auths`") && !err.contains("s3cret"), "{err}");
        for text in ["[]", r#"{"auths": {"x": "s3cret""#] {
            let path = dir.path().join("config.json");
            std::fs::write(&path, text).unwrap();
            let err = DockerConfig::read_at(path).err().unwrap().to_string();
            assert!(
                err.contains("not a valid Docker config") && !err.contains("s3cret"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_linked_config_is_written_through_its_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dotfiles-config.json");
        std::fs::write(&target, r#"{"psFormat": "table"}"#).unwrap();
        let link = dir.path().join("config.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut config = DockerConfig::read_at(link.clone()).unwrap();
        config.auths().unwrap().insert("ghcr.io".into(), json!({}));
        config.write().unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let written: Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
        assert_eq!(
            written,
            json!({"psFormat": "table", "auths": {"ghcr.io": {}}})
        );
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("config.json");
        let mut config = DockerConfig::read_at(path.clone()).unwrap();
        config.auths().unwrap().insert("ghcr.io".into(), json!({}));
        config.write().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
    }
}
