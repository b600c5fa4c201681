//! Registries for real (issue 4): cargo-krust against the real registry in
//! each mode of TESTING.md, one registry per mode shared by the tests of
//! this file:
//!
//! - HTTPS with a test CA (trusted through `SSL_CERT_FILE`) and htpasswd
//!   Basic authentication: credentials from `auths` of a temporary
//!   `DOCKER_CONFIG`, from a credential helper script on PATH (whose "not
//!   found" for another registry means anonymous), from `REGISTRY_AUTH_FILE`;
//!   wrong password, missing credentials, untrusted certificate;
//! - Bearer tokens from a token server run by the tests (relative `Location`
//!   headers on): password, `identitytoken` (refresh-token exchange),
//!   `registrytoken`, an expired token renewed, a base in another repository
//!   mounted rather than uploaded, one token request per scope; wrong and
//!   missing credentials;
//! - plain HTTP: refused for a non-loopback host without
//!   `--insecure-registry`; a fault-injecting proxy (500, 503, 429 with
//!   Retry-After, 301/307 redirects, connections dropped mid-upload); a
//!   registry refusing monolithic uploads (chunked fallback); a push killed
//!   halfway and run again uploads only what is missing; a blob two images
//!   share uploaded once and mounted into the other repository;
//! - progress: plain lines on a pipe, indicatif bars on a terminal.
//!
//! Every failure case checks a clean error naming the registry, an empty
//! stdout, and that the secret in play is nowhere in stderr, even with -vv.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::base::PushedBases;
use support::faults::{Event, Fault, FaultProxy, Outcome, Rule};
use support::image::{self, PushedRef};
use support::krust::{Krust, KrustRun, build_on_scratch, hello_krust, krust};
use support::registry::{Options, TlsWithPassword};
use support::serve::percent_decode;
use support::token::{Grant, TokenServer};
use support::{Registry, certs, sha256_digest, shared, tools, unique_name};

const USER: &str = "alice";

use support::unique_secret as secret;

/// The HTTPS + htpasswd registry.
type TlsMode = TlsWithPassword;

fn tls_mode() -> &'static TlsMode {
    static MODE: OnceLock<TlsMode> = OnceLock::new();
    MODE.get_or_init(|| TlsMode::start(USER))
}

/// The token-authenticated registry, its token server and bases.
struct TokenMode {
    tokens: TokenServer,
    registry: Registry,
    bases: PushedBases,
    password: String,
    /// A password for `expiring-bob`, whose first token per scope is dead.
    expiring_password: String,
    refresh_token: String,
}

fn token_mode() -> &'static TokenMode {
    static MODE: OnceLock<TokenMode> = OnceLock::new();
    MODE.get_or_init(|| {
        let password = secret("token-pw");
        let expiring_password = secret("expiring-pw");
        let refresh_token = secret("refresh");
        let tokens = TokenServer::start(
            &[(USER, &password), ("expiring-bob", &expiring_password)],
            &[(&refresh_token, USER)],
            &["base", "base-single"],
        );
        let registry = Registry::start_with(Options {
            token: Some((tokens.realm(), tokens.cert().to_path_buf())),
            relative_urls: true,
            ..Options::default()
        });
        let bases = support::base::push_bases_as(&registry, Some(&format!("{USER}:{password}")));
        TokenMode {
            tokens,
            registry,
            bases,
            password,
            expiring_password,
            refresh_token,
        }
    })
}

/// A temporary directory holding `config.json` with `config`.
fn docker_config(config: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("docker config dir");
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config.json");
    dir
}

/// `{"auths": {HOST: {"auth": base64(USER:PASSWORD)}}}`.
fn auths(host: &str, user: &str, password: &str) -> Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    json!({"auths": {host: {"auth": auth}}})
}

/// hello-krust on `scratch` for linux/amd64, pushed to `host/name`, with
/// `-vv` so that every request and decision is on stderr.
fn push_scratch(host: &str, name: &str) -> Krust {
    tools::require_default_rust_targets();
    build_on_scratch(&hello_krust())
        .arg("-vv")
        .env("KRUST_REPO", format!("{host}/{name}"))
}

/// Fails when any of `secrets` appears in the output of `run`.
fn assert_no_secret(run: &KrustRun, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !run.stderr.contains(secret) && !run.stdout.contains(secret),
            "a secret leaked into the output:\n{}",
            run.describe()
        );
    }
}

/// The pushed index, read back with skopeo (with credentials), must hash to
/// the printed digest.
fn assert_digest_served(pushed: &PushedRef, creds: &str) {
    let raw = image::inspect_raw_as(&pushed.full, Some(creds));
    assert_eq!(sha256_digest(&raw), pushed.digest, "{}", pushed.full);
}

// ---------------------------------------------------------------- HTTPS

/// Basic credentials from `auths` of a Docker config, over HTTPS verified
/// with the test CA through `SSL_CERT_FILE`; progress as plain lines.
#[test]
fn https_basic_auth_from_docker_config() {
    let mode = tls_mode();
    let host = mode.registry.host();
    let config = docker_config(&auths(&host, USER, &mode.password));
    let run = push_scratch(&host, &unique_name("tls-basic"))
        .env("DOCKER_CONFIG", config.path())
        .env("SSL_CERT_FILE", mode.registry.ca_cert())
        .run();
    let pushed = run.single_ref();
    assert_digest_served(&pushed, &format!("{USER}:{}", mode.password));
    assert_no_secret(&run, &[&mode.password]);
    assert!(
        run.stderr
            .contains(&format!("registry {host}: https, Basic authentication")),
        "{}",
        run.describe()
    );
    // Not a terminal: one plain "Uploading" line per upload, no escapes.
    assert!(
        run.stderr
            .lines()
            .any(|l| l.trim_start().starts_with("Uploading sha256:")),
        "{}",
        run.describe()
    );
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.describe());
}

/// A credential helper on PATH (`credHelpers`) gives the credentials of the
/// HTTPS registry; its "not found" (`credsStore`) for the base's registry (the token one,
/// where anyone may pull the bases) means anonymous; the base's layers are
/// copied across registries.
#[test]
fn https_credential_helper() {
    let mode = tls_mode();
    let host = mode.registry.host();
    let base = &token_mode().bases;
    let dir = tempfile::tempdir().expect("helper dir");
    let log = dir.path().join("asked.log");
    let helper = dir.path().join("docker-credential-krust-test");
    support::write_script(
        &helper,
        &format!(
            "#!/bin/sh\nread server\necho \"$server\" >> '{log}'\n\
             if [ \"$server\" = '{host}' ]; then\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{password}\"}}' \"$server\"\n\
             else\necho 'credentials not found in native keychain'\nexit 1\nfi\n",
            log = log.display(),
            password = mode.password
        ),
    );
    // credHelpers names the helper for the HTTPS registry, credsStore for
    // every other one: the same script answers both ways.
    let config = docker_config(&json!({
        "credHelpers": {&host: "krust-test"},
        "credsStore": "krust-test",
    }));
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = krust(["build", "-v", "--platform", "linux/amd64"])
        .arg(hello_krust())
        .args(["--base-image", &base.single_ref])
        .env(
            "KRUST_REPO",
            format!("{host}/{}", unique_name("tls-helper")),
        )
        .env("DOCKER_CONFIG", config.path())
        .env("SSL_CERT_FILE", mode.registry.ca_cert())
        .env("PATH", path)
        .run();
    let pushed = run.single_ref();
    assert_digest_served(&pushed, &format!("{USER}:{}", mode.password));
    assert_no_secret(&run, &[&mode.password]);
    let asked = std::fs::read_to_string(&log).expect("the helper was never run");
    let base_host = token_mode().registry.host();
    assert!(
        asked.lines().any(|l| l == host) && asked.lines().any(|l| l == base_host),
        "helper asked for: {asked:?}"
    );
}

/// Credentials from podman's auth file named by `REGISTRY_AUTH_FILE`.
#[test]
fn https_registry_auth_file() {
    let mode = tls_mode();
    let host = mode.registry.host();
    let dir = tempfile::tempdir().expect("auth dir");
    let auth_file = dir.path().join("auth.json");
    std::fs::write(&auth_file, auths(&host, USER, &mode.password).to_string()).expect("auth.json");
    let run = push_scratch(&host, &unique_name("tls-podman"))
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .env("SSL_CERT_FILE", mode.registry.ca_cert())
        .run();
    assert_digest_served(&run.single_ref(), &format!("{USER}:{}", mode.password));
    assert_no_secret(&run, &[&mode.password]);
}

/// A wrong password is refused, named, and never printed.
#[test]
fn https_wrong_password() {
    let mode = tls_mode();
    let host = mode.registry.host();
    let wrong = secret("wrong-pw");
    let config = docker_config(&auths(&host, USER, &wrong));
    let run = push_scratch(&host, &unique_name("tls-wrong"))
        .env("DOCKER_CONFIG", config.path())
        .env("SSL_CERT_FILE", mode.registry.ca_cert())
        .run();
    run.expect_clean_error(&[&host, "refused the credentials", "docker login"]);
    assert_no_secret(&run, &[&wrong, &mode.password]);
}

/// No credentials at all: the error says to log in.
#[test]
fn https_missing_credentials() {
    let mode = tls_mode();
    let host = mode.registry.host();
    let run = push_scratch(&host, &unique_name("tls-anon"))
        .env("SSL_CERT_FILE", mode.registry.ca_cert())
        .run();
    run.expect_clean_error(&[&host, "requires credentials", "docker login"]);
}

/// A certificate from a CA that `SSL_CERT_FILE` does not hold is refused
/// (never a fallback to plain HTTP, although the host is loopback).
#[test]
fn https_untrusted_certificate() {
    let mode = tls_mode();
    let host = mode.registry.host();
    let dir = tempfile::tempdir().expect("other CA dir");
    let (other_ca, _) = certs::make_ca(dir.path(), "other-ca");
    let config = docker_config(&auths(&host, USER, &mode.password));
    let run = push_scratch(&host, &unique_name("tls-untrusted"))
        .env("DOCKER_CONFIG", config.path())
        .env("SSL_CERT_FILE", &other_ca)
        .env_remove("SSL_CERT_DIR")
        .run();
    run.expect_clean_error(&[&host, "certificate", "not trusted", "SSL_CERT_FILE"]);
    assert_no_secret(&run, &[&mode.password]);
}

// ---------------------------------------------------------------- tokens

/// The token server's requests that name `repository` (in any scope).
fn token_requests_for(mode: &TokenMode, repository: &str) -> Vec<support::token::TokenRequest> {
    mode.tokens
        .requests()
        .into_iter()
        .filter(|r| r.mentions(repository))
        .collect()
}

/// Pushes hello-krust (scratch) as `name` to the token registry with the
/// Docker config `config`; checks the pushed digest and returns the run and
/// the token requests it made (taken before skopeo makes its own).
fn push_to_token_registry(
    mode: &TokenMode,
    name: &str,
    config: &Value,
) -> (KrustRun, Vec<support::token::TokenRequest>) {
    let config = docker_config(config);
    let run = push_scratch(&mode.registry.host(), name)
        .env("DOCKER_CONFIG", config.path())
        .run();
    let tokens = token_requests_for(mode, &format!("{name}/hello-krust"));
    assert_digest_served(&run.single_ref(), &format!("{USER}:{}", mode.password));
    (run, tokens)
}

/// Bearer tokens for a password, one token request per scope, and the
/// base's layers (another repository of the registry) mounted with a token
/// scoped for push on the target and pull on the base — never uploaded.
#[test]
fn bearer_tokens_and_cross_repository_mounts() {
    let mode = token_mode();
    let host = mode.registry.host();
    let prefix = unique_name("tok-mount");
    let repository = format!("{prefix}/hello-krust");
    let config = docker_config(&auths(&host, USER, &mode.password));
    let mark = mode.registry.mark();
    let run = krust(["build", "-vv"])
        .arg(hello_krust())
        .args(["--base-image", &mode.bases.multi_ref])
        .env("KRUST_REPO", format!("{host}/{prefix}"))
        .env("DOCKER_CONFIG", config.path())
        .run();
    let pushed = run.single_ref();
    let tokens = token_requests_for(mode, &repository);
    assert_digest_served(&pushed, &format!("{USER}:{}", mode.password));
    let issued = mode.tokens.issued();
    let mut secrets: Vec<&str> = issued.iter().map(String::as_str).collect();
    secrets.push(&mode.password);
    assert_no_secret(&run, &secrets);

    let requests = mode.registry.requests_since(mark);
    let base_layers: BTreeSet<String> = mode
        .bases
        .multi
        .iter()
        .flat_map(|b| b.layers.iter().map(|l| l.digest.clone()))
        .collect();
    let mounted: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.is_mount() && r.is_under(&prefix) && r.status == 201)
        .filter_map(|r| query_value(&r.uri, "mount"))
        .collect();
    assert_eq!(mounted, base_layers, "requests: {requests:#?}");
    let uploaded = uploaded_digests(requests.iter().map(|r| (r.uri.as_str(), r.status)));
    assert!(
        uploaded.is_disjoint(&base_layers),
        "base layers were uploaded: {requests:#?}"
    );

    let mut per_scope: HashMap<Vec<String>, usize> = HashMap::new();
    for request in &tokens {
        assert_eq!(request.grant, Grant::Password, "{request:?}");
        assert_eq!(request.user.as_deref(), Some(USER), "{request:?}");
        let mut scopes = request.scopes.clone();
        scopes.sort();
        *per_scope.entry(scopes).or_default() += 1;
    }
    assert!(
        per_scope.values().all(|n| *n == 1),
        "a scope's token was asked for more than once: {per_scope:#?}"
    );
    let mount_scope = vec![
        "repository:base:pull".to_string(),
        format!("repository:{repository}:pull,push"),
    ];
    assert!(
        per_scope.contains_key(&mount_scope),
        "no token for the mount scope {mount_scope:?}: {per_scope:#?}"
    );
}

/// An `identitytoken` is exchanged at the token server (OAuth2 refresh
/// grant) and never printed.
#[test]
fn bearer_identity_token_is_exchanged() {
    let mode = token_mode();
    let host = mode.registry.host();
    let config = json!({"auths": {&host: {"identitytoken": mode.refresh_token}}});
    let (run, tokens) = push_to_token_registry(mode, &unique_name("tok-identity"), &config);
    assert_no_secret(&run, &[&mode.refresh_token]);
    assert!(!tokens.is_empty());
    for request in &tokens {
        assert_eq!(
            (
                request.method.as_str(),
                &request.grant,
                request.user.as_deref()
            ),
            ("POST", &Grant::RefreshToken, Some(USER)),
            "{tokens:#?}"
        );
    }
}

/// A `registrytoken` goes to the registry as it is: no token request.
#[test]
fn bearer_registry_token_is_used_as_is() {
    let mode = token_mode();
    let host = mode.registry.host();
    let name = unique_name("tok-registrytoken");
    let repository = format!("{name}/hello-krust");
    let token = mode.tokens.mint(USER, &[(&repository, "pull,push")]);
    let config = json!({"auths": {&host: {"registrytoken": token}}});
    let (run, tokens) = push_to_token_registry(mode, &name, &config);
    assert_no_secret(&run, &[&token]);
    assert!(tokens.is_empty(), "{tokens:#?}");
}

/// A token the registry refuses (here: expired on arrival) is renewed once
/// and the push goes on.
#[test]
fn bearer_expired_token_is_renewed() {
    let mode = token_mode();
    let host = mode.registry.host();
    let config = auths(&host, "expiring-bob", &mode.expiring_password);
    let (run, tokens) = push_to_token_registry(mode, &unique_name("tok-expiring"), &config);
    assert_no_secret(&run, &[&mode.expiring_password]);
    let mut per_scope: HashMap<Vec<String>, usize> = HashMap::new();
    for request in &tokens {
        *per_scope.entry(request.scopes.clone()).or_default() += 1;
    }
    assert!(
        per_scope.values().all(|n| *n == 2),
        "each scope's expired token should be replaced exactly once: {per_scope:#?}"
    );
}

/// The token server refuses a wrong password: named, never printed.
#[test]
fn bearer_wrong_password() {
    let mode = token_mode();
    let host = mode.registry.host();
    let wrong = secret("wrong-token-pw");
    let config = docker_config(&auths(&host, USER, &wrong));
    let run = push_scratch(&host, &unique_name("tok-wrong"))
        .env("DOCKER_CONFIG", config.path())
        .run();
    run.expect_clean_error(&[&host, "refused the credentials", "docker login"]);
    assert_no_secret(&run, &[&wrong]);
}

/// Anonymous tokens grant nothing here: the error says to log in.
#[test]
fn bearer_missing_credentials() {
    let mode = token_mode();
    let host = mode.registry.host();
    let run = push_scratch(&host, &unique_name("tok-anon")).run();
    run.expect_clean_error(&[&host, "requires credentials", "docker login"]);
}

// ---------------------------------------------------------------- plain HTTP

/// `0.0.0.0:PORT` reaches this machine's registry on Linux but is not a
/// loopback name: it stands for a remote host serving plain HTTP, refused
/// until `--insecure-registry` names it.
#[test]
fn plain_http_needs_insecure_registry_off_loopback() {
    let registry = &shared().registry;
    let host = format!("0.0.0.0:{}", registry.port());
    let name = unique_name("insecure");
    let run = push_scratch(&host, &name).run();
    run.expect_clean_error(&[&host, "HTTPS", &format!("--insecure-registry {host}")]);

    let run = push_scratch(&host, &name)
        .args(["--insecure-registry", &host])
        .run();
    let pushed = run.single_ref();
    let local = PushedRef::parse(&format!(
        "{}/{}@{}",
        registry.host(),
        pushed.repo,
        pushed.digest
    ))
    .expect("reference");
    image::fetch_index(registry, &local);
}

/// The digest of a target (`…?digest=sha256%3A…`), if it has one.
fn query_value(uri: &str, name: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}

/// Digests of completed blob uploads (a `PUT …/blobs/uploads/…?digest=`
/// answered 201) among (target, status) pairs.
fn uploaded_digests<'a>(requests: impl Iterator<Item = (&'a str, u16)>) -> BTreeSet<String> {
    requests
        .filter(|(uri, status)| uri.contains("/blobs/uploads/") && *status == 201)
        .filter_map(|(uri, _)| query_value(uri, "digest"))
        .collect()
}

/// The pushed image as seen through the registry itself (not the proxy),
/// every blob verified.
fn fetch_direct(registry: &Registry, pushed: &PushedRef) -> image::PushedIndex {
    let direct = PushedRef::parse(&format!(
        "{}/{}@{}",
        registry.host(),
        pushed.repo,
        pushed.digest
    ))
    .expect("reference");
    image::fetch_index(registry, &direct)
}

/// Every blob (layers and configs) of a pushed index.
fn all_blobs(index: &image::PushedIndex) -> BTreeSet<String> {
    index
        .images
        .iter()
        .flat_map(|image| {
            image
                .layers
                .iter()
                .map(|l| l.descriptor.digest.clone())
                .chain([image.manifest["config"]["digest"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()])
        })
        .collect()
}

/// Through a proxy that fails the ping (503), the base manifest (502), an
/// upload start (500), a blob HEAD (429 + Retry-After), an upload (dropped
/// halfway), redirects uploads (307, 301, relative Location) and a
/// manifest PUT (503): each fault happens once and the push completes with
/// the right digest.
#[test]
fn faults_are_retried() {
    let registry = &shared().registry;
    let proxy = FaultProxy::start(
        &registry.host(),
        vec![
            Rule::new("GET", "/v2/", Fault::Status(503)),
            Rule::new("GET", "/manifests/", Fault::Status(502)),
            Rule::new("POST", "/blobs/uploads/", Fault::Status(500)),
            Rule::new("HEAD", "/blobs/", Fault::TooManyRequests(1)),
            Rule::new("PUT", "/blobs/uploads/", Fault::DropMidBody).with_body(),
            Rule::new("PUT", "/blobs/uploads/", Fault::Redirect(307)).with_body(),
            Rule::new("PUT", "/blobs/uploads/", Fault::Redirect(301)).with_body(),
            Rule::new("PUT", "/manifests/", Fault::Status(503)),
        ],
    );
    let base = format!("{}/base-single:latest", proxy.host());
    let run = krust(["build", "-vv", "--platform", "linux/amd64"])
        .arg(hello_krust())
        .args(["--base-image", &base])
        .env(
            "KRUST_REPO",
            format!("{}/{}", proxy.host(), unique_name("faults")),
        )
        .run();
    let pushed = run.single_ref();
    assert_eq!(
        proxy.injected_per_rule(),
        vec![1; 8],
        "every fault once: {:#?}\n{}",
        proxy.events(),
        run.describe()
    );
    fetch_direct(registry, &pushed);
    assert!(
        run.stderr.contains("Retrying") && run.stderr.contains("429"),
        "{}",
        run.describe()
    );
    assert!(
        proxy.events().iter().any(|e| e.method == "PUT"
            && e.target.contains("krust-redirected=1")
            && e.outcome == Outcome::Forwarded(201)),
        "a redirected upload was never completed: {:#?}",
        proxy.events()
    );
}

/// A registry (here, the proxy) that refuses monolithic uploads with 413
/// gets the chunked protocol: PATCH, then a PUT without body.
#[test]
fn monolithic_refusal_falls_back_to_chunks() {
    let registry = &shared().registry;
    let proxy = FaultProxy::start(
        &registry.host(),
        vec![
            Rule::new("PUT", "/blobs/uploads/", Fault::Status(413))
                .with_body()
                .times(usize::MAX),
        ],
    );
    let name = unique_name("chunked");
    let mark = registry.mark();
    // One upload at a time, so that exactly one learns of the refusal.
    // No referrers: the uploads compared below are the image's blobs.
    let run = push_scratch(&proxy.host(), &name)
        .args(["-j", "1", "--provenance", "none", "--sbom", "none"])
        .run();
    let pushed = run.single_ref();
    let index = fetch_direct(registry, &pushed);
    let requests = registry.requests_since(mark);
    let patched: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.is_under(&name) && r.status == 202)
        .collect();
    assert!(!patched.is_empty(), "no PATCH: {requests:#?}");
    let uploaded = uploaded_digests(
        requests
            .iter()
            .filter(|r| r.is_under(&name))
            .map(|r| (r.uri.as_str(), r.status)),
    );
    assert_eq!(uploaded, all_blobs(&index), "{requests:#?}");
    // One refusal is enough to go chunked for the rest of the run.
    assert_eq!(proxy.injected_per_rule(), vec![1], "{:#?}", proxy.events());
}

/// A push killed while uploads hang, run again, uploads only the blobs the
/// first run did not finish.
#[test]
fn killed_push_resumes_with_only_missing_blobs() {
    tools::require_default_rust_targets();
    let registry = &shared().registry;
    let proxy = FaultProxy::start(
        &registry.host(),
        vec![
            Rule::new("PUT", "/blobs/uploads/", Fault::Hang)
                .with_body()
                .skip(2)
                .times(usize::MAX),
        ],
    );
    let name = unique_name("killed");
    let build = |host: &str| {
        krust([
            "build",
            "--base-image",
            "scratch",
            "--platform",
            "linux/amd64,linux/arm64",
            // No referrers: the uploads compared below are the image's blobs.
            "--provenance",
            "none",
            "--sbom",
            "none",
        ])
        .arg(hello_krust())
        .env("KRUST_REPO", format!("{host}/{name}"))
    };
    let mut first = build(&proxy.host()).spawn();
    let finished_uploads = |events: &[Event]| {
        uploaded_digests(events.iter().filter_map(|e| match e.outcome {
            Outcome::Forwarded(status) if e.method == "PUT" => Some((e.target.as_str(), status)),
            _ => None,
        }))
    };
    proxy.wait_for(
        Duration::from_secs(300),
        "two uploads and a hang",
        |events| {
            finished_uploads(events).len() == 2
                && events
                    .iter()
                    .any(|e| matches!(e.outcome, Outcome::Injected { .. }))
        },
    );
    first.kill().expect("kill the first run");
    first.wait().expect("reap the first run");
    let done_before = finished_uploads(&proxy.events());

    let mark = registry.mark();
    let run = build(&registry.host()).run();
    let index = image::fetch_index(registry, &run.single_ref());
    let requests = registry.requests_since(mark);
    let uploaded_now = uploaded_digests(
        requests
            .iter()
            .filter(|r| r.is_under(&name))
            .map(|r| (r.uri.as_str(), r.status)),
    );
    assert!(
        uploaded_now.is_disjoint(&done_before),
        "uploaded again: {:?}",
        uploaded_now.intersection(&done_before).collect::<Vec<_>>()
    );
    let all: BTreeSet<String> = done_before.union(&uploaded_now).cloned().collect();
    assert_eq!(all, all_blobs(&index), "{requests:#?}");
}

/// Two bins of one package share their data layer: it is uploaded to the
/// first image's repository once and mounted into the second's.
#[test]
fn identical_blobs_are_uploaded_once_per_run() {
    tools::require_default_rust_targets();
    let registry = &shared().registry;
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = support::cargo_new_bin(tmp.path(), "krust-twins");
    std::fs::create_dir_all(pkg.join("src/bin")).expect("mkdir src/bin");
    std::fs::write(pkg.join("src/bin/twin.rs"), "fn main() {}\n").expect("second bin");
    std::fs::create_dir_all(pkg.join("krust-data")).expect("data dir");
    std::fs::write(pkg.join("krust-data/shared.txt"), "the same for both\n").expect("data");
    let manifest = pkg.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
    text.push_str("\n[package.metadata.krust]\ndata = \"krust-data\"\n");
    std::fs::write(&manifest, text).expect("Cargo.toml");

    let prefix = unique_name("twins");
    let mark = registry.mark();
    let run = build_on_scratch(&pkg)
        .env("KRUST_REPO", format!("{}/{prefix}", registry.host()))
        .run();
    let layers: Vec<BTreeSet<String>> = run
        .refs()
        .iter()
        .map(|pushed| {
            image::fetch_index(registry, pushed).images[0]
                .layers
                .iter()
                .map(|l| l.descriptor.digest.clone())
                .collect()
        })
        .collect();
    assert_eq!(layers.len(), 2, "{}", run.describe());
    let shared_layers: Vec<&String> = layers[0].intersection(&layers[1]).collect();
    assert_eq!(
        shared_layers.len(),
        1,
        "one data layer in common: {layers:?}"
    );
    let data = shared_layers[0];

    let requests = registry.requests_since(mark);
    let under: Vec<_> = requests.iter().filter(|r| r.is_under(&prefix)).collect();
    let uploads = under
        .iter()
        .filter(|r| r.method == "PUT" && r.status == 201)
        .filter(|r| query_value(&r.uri, "digest").as_ref() == Some(data))
        .count();
    let mounts = under
        .iter()
        .filter(|r| r.is_mount() && r.status == 201)
        .filter(|r| query_value(&r.uri, "mount").as_ref() == Some(data))
        .count();
    assert_eq!((uploads, mounts), (1, 1), "{under:#?}");
}

// ---------------------------------------------------------------- streaming

/// A new bin package whose executable holds 9 MiB of data: above the size
/// from which layers are uploaded while they are written.
fn large_bin_package(parent: &Path, name: &str) -> PathBuf {
    let pkg = support::cargo_new_bin(parent, name);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let payload: Vec<u8> = (0..9 << 20)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect();
    std::fs::write(pkg.join("payload.bin"), payload).expect("payload");
    std::fs::write(
        pkg.join("src/main.rs"),
        "static PAYLOAD: &[u8] = include_bytes!(\"../payload.bin\");\n\
         fn main() {\n    println!(\"{}\", std::hint::black_box(PAYLOAD).len());\n}\n",
    )
    .expect("main.rs");
    pkg
}

/// The binary layer of a new image: its last layer.
fn binary_layer(index: &image::PushedIndex) -> String {
    index.images[0]
        .layers
        .last()
        .expect("a binary layer")
        .descriptor
        .digest
        .clone()
}

/// A large layer new to the cache goes up while it is written: one PATCH with the
/// whole body, then a PUT naming its digest (no second copy of the bytes),
/// and the image pulled back verifies. Built again into another target
/// directory (a new file, the same bytes), the identical layer is streamed
/// again, found in the registry, its upload stopped and its session
/// deleted: nothing is committed twice.
#[test]
fn new_layers_are_streamed_and_identical_ones_cancelled() {
    tools::require_default_rust_targets();
    let registry = &shared().registry;
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = large_bin_package(tmp.path(), "krust-streamed");
    let name = unique_name("streamed");
    let push = |target: &str| {
        build_on_scratch(&pkg)
            .arg("-vv")
            .env("KRUST_REPO", format!("{}/{name}", registry.host()))
            .env("CARGO_TARGET_DIR", tmp.path().join(target))
            .run()
    };

    let mark = registry.mark();
    let first = push("one");
    let pushed = first.single_ref();
    let index = fetch_direct(registry, &pushed);
    let layer = binary_layer(&index);
    let requests: Vec<_> = registry
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.is_under(&name))
        .collect();
    let patches: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.status == 202)
        .collect();
    assert_eq!(patches.len(), 1, "one streamed layer: {requests:#?}");
    let commits: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.status == 201)
        .filter(|r| query_value(&r.uri, "digest").as_ref() == Some(&layer))
        .collect();
    assert_eq!(commits.len(), 1, "{requests:#?}");
    let session = |uri: &str| uri.split('?').next().unwrap_or_default().to_string();
    assert_eq!(
        session(&commits[0].uri),
        session(&patches[0].uri),
        "the PUT closes the streamed session"
    );
    assert!(
        first.stderr.contains("as it was made"),
        "{}",
        first.describe()
    );

    let mark = registry.mark();
    let second = push("two");
    assert_eq!(second.single_ref(), pushed, "{}", second.describe());
    let requests: Vec<_> = registry
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.is_under(&name))
        .collect();
    // The PATCH may be cut short once the HEAD finds the blob: it shows in
    // -vv when sent, whatever the registry then logs.
    assert!(
        second
            .stderr
            .lines()
            .any(|l| l.contains("Trace") && l.contains(" PATCH /v2/") && l.contains(&name)),
        "the new file was streamed: {}",
        second.describe()
    );
    assert!(
        requests.iter().any(|r| r.method == "DELETE"),
        "the session was cancelled: {requests:#?}"
    );
    let committed: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.uri.contains("/blobs/uploads/"))
        .collect();
    assert!(committed.is_empty(), "nothing committed: {committed:#?}");
    assert!(second.stderr.contains("Unchanged"), "{}", second.describe());
}

/// Streamed uploads authenticate like the others: over HTTPS with Basic
/// credentials, and with bearer tokens (the session's POST gets the
/// token, the PATCH and the PUT reuse it).
#[test]
fn large_layers_stream_over_https_and_with_tokens() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = large_bin_package(tmp.path(), "krust-streamed-auth");
    let tls = tls_mode();
    let token = token_mode();
    for (registry, password, extra_env, target) in [
        (
            &tls.registry,
            &tls.password,
            Some(tls.registry.ca_cert()),
            "tls",
        ),
        (&token.registry, &token.password, None, "token"),
    ] {
        let host = registry.host();
        let name = unique_name("streamed-auth");
        let config = docker_config(&auths(&host, USER, password));
        let mut build = build_on_scratch(&pkg)
            .arg("-vv")
            .env("KRUST_REPO", format!("{host}/{name}"))
            .env("DOCKER_CONFIG", config.path())
            // A target dir of its own: a layer new to the cache each time.
            .env("CARGO_TARGET_DIR", tmp.path().join(target));
        if let Some(ca) = extra_env {
            build = build.env("SSL_CERT_FILE", ca);
        }
        let run = build.run();
        let pushed = run.single_ref();
        assert_digest_served(&pushed, &format!("{USER}:{password}"));
        assert_no_secret(&run, &[password]);
        // The HTTPS registry's access log cannot be read in step: the
        // requests are taken from -vv.
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains("PATCH /v2/") && l.contains("-> 202")),
            "no streamed PATCH on {host}: {}",
            run.describe()
        );
        assert!(run.stderr.contains("as it was made"), "{}", run.describe());
    }
}

/// A streamed upload the registry fails (here, the PATCH answered 500) is
/// not retried mid-stream: the layer is uploaded from the store once made.
#[test]
fn failed_stream_falls_back_to_an_upload() {
    tools::require_default_rust_targets();
    let registry = &shared().registry;
    let proxy = FaultProxy::start(
        &registry.host(),
        vec![Rule::new("PATCH", "/blobs/uploads/", Fault::Status(500))],
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = large_bin_package(tmp.path(), "krust-refused-stream");
    let name = unique_name("refused-stream");
    let run = build_on_scratch(&pkg)
        .arg("-vv")
        .env("KRUST_REPO", format!("{}/{name}", proxy.host()))
        .env("CARGO_TARGET_DIR", tmp.path().join("target"))
        .run();
    let pushed = run.single_ref();
    let index = fetch_direct(registry, &pushed);
    assert_eq!(proxy.injected_per_rule(), vec![1], "{:#?}", proxy.events());
    let layer = binary_layer(&index);
    let events = proxy.events();
    let uploads = uploaded_digests(events.iter().filter_map(|e| match e.outcome {
        Outcome::Forwarded(status) => Some((e.target.as_str(), status)),
        Outcome::Injected { .. } => None,
    }));
    assert!(uploads.contains(&layer), "{:#?}", proxy.events());
    assert!(run.stderr.contains("sent again"), "{}", run.describe());
}

// ---------------------------------------------------------------- progress

/// On a terminal (a pty from `script`), uploads show indicatif bars.
#[test]
fn progress_bars_on_a_terminal() {
    tools::require_default_rust_targets();
    let script = tools::require("script", "bsdutils");
    let registry = &shared().registry;
    let repo = format!("{}/{}", registry.host(), unique_name("tty"));
    let exe = env!("CARGO_BIN_EXE_cargo-krust");
    let command = format!(
        "'{exe}' build --base-image scratch --platform linux/amd64 --repo '{repo}' '{}'",
        hello_krust().display()
    );
    let output = support::process::output_with_timeout(
        std::process::Command::new(script)
            .args(["-qec", &command, "/dev/null"])
            .env("CARGO_TARGET_DIR", support::shared_target_dir())
            .env("DOCKER_CONFIG", tempfile::tempdir().expect("dir").path())
            .env("TERM", "xterm"),
        Duration::from_secs(600),
    )
    .expect("run cargo-krust under script");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.lines().any(|l| l.contains("Uploading")
            && l.contains("sha256:")
            && l.contains('[')
            && l.contains("B/")),
        "no progress bar on a terminal:\n{text}"
    );
}
