//! A real OCI registry (Debian `docker-registry`, CNCF distribution 2.8) on a free
//! 127.0.0.1 port, with fresh storage and an access log the tests can read,
//! in one of the modes of TESTING.md (see [`Options`]): plain HTTP, HTTPS with
//! a certificate from a fresh test CA, Basic authentication from an htpasswd
//! file, Bearer tokens from a token server, relative `Location` headers.
//!
//! The registry runs under a small `sh` watchdog that stops it (by PID) and removes
//! its storage as soon as the test process disappears, so nothing outlives the
//! tests even when a test panics or the shared (static, never dropped) registry is
//! in use. [`Registry`]'s `Drop` stops it immediately for per-test registries.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::certs::{self, ServerPki};
use super::http;
use super::process::run_ok;
use super::tools;

/// How a registry is set up; the default is plain HTTP without
/// authentication.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve HTTPS with a certificate signed by a fresh test CA.
    pub tls: bool,
    /// Require HTTP Basic authentication as this (user, password).
    pub htpasswd: Option<(String, String)>,
    /// Require Bearer tokens from the token server at this realm, signed
    /// with the certificate at this path.
    pub token: Option<(String, PathBuf)>,
    /// Send relative `Location` headers (`http.relativeurls`).
    pub relative_urls: bool,
}

/// Watchdog: start the registry in the background, record its PID, poll until
/// the test process ($5) or the registry exits, then stop the registry and
/// delete the work dir ($6).
const WATCHDOG: &str = r#"
docker-registry serve "$1" >"$2" 2>"$3" </dev/null &
reg=$!
echo "$reg" >"$4.tmp" && mv "$4.tmp" "$4"
while kill -0 "$5" 2>/dev/null && kill -0 "$reg" 2>/dev/null; do sleep 0.2; done
kill "$reg" 2>/dev/null
wait "$reg" 2>/dev/null
rm -rf "$6"
"#;

/// An HTTPS registry (a fresh test CA) with one htpasswd account whose
/// password is unique to the run.
pub struct TlsWithPassword {
    pub registry: Registry,
    pub password: String,
}

impl TlsWithPassword {
    /// Starts it, with the account `user`.
    pub fn start(user: &str) -> TlsWithPassword {
        let password = super::unique_secret("tls-pw");
        let registry = Registry::start_with(Options {
            tls: true,
            htpasswd: Some((user.to_string(), password.clone())),
            ..Options::default()
        });
        TlsWithPassword { registry, password }
    }
}

/// One running registry. Dropping it stops it and removes its storage.
pub struct Registry {
    port: u16,
    work_dir: PathBuf,
    access_log: PathBuf,
    error_log: PathBuf,
    registry_pid: u32,
    watchdog: Child,
    sync_counter: AtomicUsize,
    options: Options,
    pki: Option<ServerPki>,
}

/// One parsed line of the registry's access log (combined log format).
#[derive(Clone)]
pub struct Request {
    /// HTTP method, e.g. `PUT`.
    pub method: String,
    /// Request URI including the query, e.g. `/v2/x/blobs/uploads/?mount=…`.
    pub uri: String,
    /// Response status code.
    pub status: u16,
    /// The whole log line, for assertion messages.
    pub line: String,
}

impl std::fmt::Debug for Request {
    /// Just `METHOD URI STATUS`, so lists of requests in failure messages stay
    /// readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.method, self.uri, self.status)
    }
}

impl Request {
    /// True for requests on `/v2/<repo>/…` (exactly that repository).
    pub fn is_for_repo(&self, repo: &str) -> bool {
        self.uri.starts_with(&format!("/v2/{repo}/blobs/"))
            || self.uri.starts_with(&format!("/v2/{repo}/manifests/"))
            || self.uri.starts_with(&format!("/v2/{repo}/tags/"))
    }

    /// True for requests whose URI starts with `/v2/<prefix>` (any repository
    /// below a name prefix, e.g. a test's unique `KRUST_REPO`).
    pub fn is_under(&self, prefix: &str) -> bool {
        self.uri.starts_with(&format!("/v2/{prefix}/"))
    }

    /// True for a request that writes blob data: starting (`POST` without
    /// `mount=`), continuing (`PATCH`) or finishing (`PUT`) a blob upload.
    pub fn is_blob_upload(&self) -> bool {
        self.uri.contains("/blobs/uploads")
            && match self.method.as_str() {
                "PATCH" | "PUT" => true,
                "POST" => !self.uri.contains("mount="),
                _ => false,
            }
    }

    /// True for a cross-repository mount request (`POST …?mount=…&from=…`).
    pub fn is_mount(&self) -> bool {
        self.method == "POST" && self.uri.contains("/blobs/uploads") && self.uri.contains("mount=")
    }

    /// True for anything but `GET`/`HEAD`.
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// A position in the access log; see [`Registry::mark`].
#[derive(Debug, Clone, Copy)]
pub struct LogMark(usize);

impl Registry {
    /// Start a fresh registry with empty storage and wait until `GET /v2/`
    /// answers 200. Panics with the setup command when `docker-registry` is
    /// missing, and with the registry's own log when it does not come up.
    pub fn start() -> Registry {
        Registry::start_with(Options::default())
    }

    /// Start a fresh registry in the mode `options` describe.
    pub fn start_with(options: Options) -> Registry {
        tools::require("docker-registry", "docker-registry");
        let mut last_error = String::new();
        for _attempt in 0..5 {
            match Self::try_start(&options) {
                Ok(registry) => return registry,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start docker-registry: {last_error}");
    }

    /// One attempt: pick a free port, write the config, start the watchdog and
    /// wait for readiness. A port race makes it fail; the caller retries.
    fn try_start(options: &Options) -> Result<Registry, String> {
        let work_dir = tempfile::Builder::new()
            .prefix("krust-registry-")
            .tempdir()
            .map_err(|e| format!("cannot create registry tempdir: {e}"))?
            .keep();
        let port = free_port()?;
        let storage = work_dir.join("storage");
        let config = work_dir.join("config.yml");
        let access_log = work_dir.join("access.log");
        let error_log = work_dir.join("registry.log");
        let pid_file = work_dir.join("registry.pid");
        fs::create_dir_all(&storage).map_err(|e| format!("mkdir {}: {e}", storage.display()))?;
        let pki = options.tls.then(|| certs::make_server_pki(&work_dir));
        let mut yaml = config_yaml(&storage, port);
        yaml.push_str(&mode_yaml(options, pki.as_ref(), &work_dir));
        fs::write(&config, yaml).map_err(|e| format!("write {}: {e}", config.display()))?;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("krust-registry-watchdog")
            .arg(&config)
            .arg(&access_log)
            .arg(&error_log)
            .arg(&pid_file)
            .arg(std::process::id().to_string())
            .arg(&work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot spawn sh for the registry watchdog: {e}"))?;
        let registry_pid = wait_for_pid_file(&pid_file)?;
        let mut registry = Registry {
            port,
            work_dir,
            access_log,
            error_log,
            registry_pid,
            watchdog,
            sync_counter: AtomicUsize::new(0),
            options: options.clone(),
            pki,
        };
        match registry.wait_ready(Duration::from_secs(30)) {
            Ok(()) => Ok(registry),
            Err(e) => {
                let log = fs::read_to_string(&registry.error_log).unwrap_or_default();
                registry.stop();
                Err(format!("{e}\nregistry log:\n{log}"))
            }
        }
    }

    /// Poll until the registry serves: `GET /v2/` answers 200 (401 when it
    /// wants authentication) or, over TLS, which the tiny client does not
    /// speak, its log says it listens.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let auth = self.options.htpasswd.is_some() || self.options.token.is_some();
        loop {
            if self.options.tls {
                let log = fs::read_to_string(&self.error_log).unwrap_or_default();
                if log.contains("listening on") {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(format!("registry on {} never listened", self.host()));
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            match http::get(&self.host(), "/v2/") {
                Ok(r) if r.status == 200 || (auth && r.status == 401) => return Ok(()),
                Ok(r) => return Err(format!("GET /v2/ answered {}", r.status)),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("registry on {} not ready: {e}", self.host()));
                }
                Err(_) => {}
            }
            if let Ok(Some(status)) = self.watchdog.try_wait() {
                return Err(format!("registry exited early ({status})"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate a client must trust (HTTPS registries).
    pub fn ca_cert(&self) -> &Path {
        &self
            .pki
            .as_ref()
            .expect("ca_cert of a registry started without tls")
            .ca_cert
    }

    /// PID of the `docker-registry` process.
    pub fn pid(&self) -> u32 {
        self.registry_pid
    }

    /// Directory with config, storage and logs (removed when the registry stops).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Wait until every request made so far is in the access log: send a marker
    /// request and wait for its line (the log is written after each response).
    fn sync_log(&self) -> Vec<String> {
        assert!(
            !self.options.tls,
            "the access log of an HTTPS test registry cannot be synchronised (plain HTTP only)"
        );
        let n = self.sync_counter.fetch_add(1, Ordering::SeqCst);
        let marker = format!("krust-sync={n}-{}", std::process::id());
        let path = format!("/v2/?{marker}");
        if let Err(e) = http::get(&self.host(), &path) {
            panic!("registry on {} stopped answering: {e}", self.host());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = fs::read_to_string(&self.access_log).unwrap_or_default();
            if text.contains(&format!("{marker} ")) {
                return text.lines().map(str::to_string).collect();
            }
            assert!(
                Instant::now() < deadline,
                "marker request {marker} never reached the access log {}",
                self.access_log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Current end of the access log; pass it to [`Registry::requests_since`].
    pub fn mark(&self) -> LogMark {
        LogMark(self.sync_log().len())
    }

    /// Every request logged after `mark` (marker requests excluded).
    pub fn requests_since(&self, mark: LogMark) -> Vec<Request> {
        self.sync_log()
            .into_iter()
            .skip(mark.0)
            .filter_map(|line| parse_access_line(&line))
            .filter(|r| !r.uri.contains("krust-sync="))
            .collect()
    }

    /// Every request logged so far.
    pub fn all_requests(&self) -> Vec<Request> {
        self.requests_since(LogMark(0))
    }

    /// Download a blob over plain HTTP and check that its bytes hash to `digest`.
    pub fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let response = http::get(&self.host(), &path)
            .unwrap_or_else(|e| panic!("cannot fetch blob {repo}@{digest}: {e}"));
        assert_eq!(
            response.status,
            200,
            "GET {path} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(
            super::sha256_digest(&response.body),
            digest,
            "blob {repo}@{digest} does not hash to its digest"
        );
        response.body
    }

    /// Stop the registry (SIGTERM to its PID) and wait for the watchdog, which
    /// removes the work dir. Idempotent.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.watchdog.try_wait() {
            return;
        }
        kill(self.registry_pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(self.registry_pid, "KILL");
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        let _ = fs::remove_dir_all(&self.work_dir);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Send a signal to one PID with the shell's `kill` builtin (no libc
/// dependency, and no need for procps on minimal systems).
fn kill(pid: u32, signal: &str) {
    let _ = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\" 2>/dev/null", "kill"])
        .arg(signal)
        .arg(pid.to_string())
        .status();
}

/// Ask the kernel for a free port on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// Wait for the watchdog to write the registry's PID.
fn wait_for_pid_file(path: &Path) -> Result<u32, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(format!("watchdog never wrote {}", path.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The registry configuration: filesystem storage, plain HTTP on 127.0.0.1,
/// access log on (to stdout, which the watchdog sends to `access.log`). The
/// `http` section comes last, so that [`mode_yaml`] can add to it.
fn config_yaml(storage: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n  \
         delete:\n    enabled: true\n\
         health:\n  storagedriver:\n    enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: krust-test-secret\n",
        storage = storage.display()
    )
}

/// The configuration of the registry's mode: TLS, htpasswd or token
/// authentication, relative URLs (appended to [`config_yaml`]).
fn mode_yaml(options: &Options, pki: Option<&ServerPki>, work_dir: &Path) -> String {
    let mut yaml = String::new();
    if let Some(pki) = pki {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            pki.server_cert.display(),
            pki.server_key.display()
        ));
    }
    if options.relative_urls {
        yaml.push_str("  relativeurls: true\n");
    }
    if let Some((user, password)) = &options.htpasswd {
        let htpasswd = tools::require("htpasswd", "apache2-utils");
        let output = run_ok(
            Command::new(htpasswd).args(["-Bbn", user, password]),
            Duration::from_secs(60),
            "htpasswd -Bbn",
        );
        let path = work_dir.join("htpasswd");
        fs::write(&path, output.stdout).expect("write htpasswd file");
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: krust-test\n    path: {}\n",
            path.display()
        ));
    }
    if let Some((realm, cert)) = &options.token {
        yaml.push_str(&format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            super::token::SERVICE,
            super::token::ISSUER,
            cert.display()
        ));
    }
    yaml
}

/// Parse `IP - - [date] "METHOD URI HTTP/1.1" STATUS SIZE "ref" "agent"`.
fn parse_access_line(line: &str) -> Option<Request> {
    let (_, rest) = line.split_once('"')?;
    let (request, rest) = rest.split_once('"')?;
    let mut parts = request.split_whitespace();
    let method = parts.next()?.to_string();
    let uri = parts.next()?.to_string();
    let status = rest.split_whitespace().next()?.parse().ok()?;
    Some(Request {
        method,
        uri,
        status,
        line: line.to_string(),
    })
}
