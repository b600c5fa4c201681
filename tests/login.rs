//! `cargo krust login` and `logout` (issue 15) against the real registry
//! over HTTPS (a test CA trusted through `SSL_CERT_FILE`) with htpasswd
//! Basic authentication, one registry shared by the tests of this file:
//!
//! - login, then a push with no other credentials works; the Docker config
//!   keeps its other keys and is 0600; logout removes the entry, a later
//!   push asks for credentials, and a second logout says there was nothing;
//! - a wrong password fails cleanly and writes nothing;
//! - a password on the command line is refused, without echoing it;
//! - a credential helper named in `credHelpers` gets `store` (the secret on
//!   its stdin, never in any process's arguments), answers the push's
//!   `get`, and gets `erase` at logout; a helper that hangs is stopped in
//!   time, one that echoes what it got never shows the password;
//! - against a Bearer-token registry, login asks for a token for no
//!   repository, and a refused password writes nothing;
//! - `logout docker.io` removes every spelling of Docker Hub.
//!
//! The password is unique per run and never appears on stdout or stderr.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine;
use serde_json::{Value, json};
use support::krust::{Krust, KrustRun, build_on_scratch, hello_krust, krust};
use support::registry::{Options, TlsWithPassword};
use support::token::{Grant, TokenServer};
use support::{Registry, sha256_digest, tools, unique_name, unique_secret};

const USER: &str = "alice";

/// The HTTPS + htpasswd registry, with the account `alice`.
fn tls_registry() -> &'static TlsWithPassword {
    static REGISTRY: OnceLock<TlsWithPassword> = OnceLock::new();
    REGISTRY.get_or_init(|| TlsWithPassword::start(USER))
}

/// `cargo-krust ARGS` with `DOCKER_CONFIG` at `config_dir`, trusting the
/// registry's CA.
fn with_config(args: &[&str], config_dir: &Path) -> Krust {
    krust(args)
        .env("DOCKER_CONFIG", config_dir)
        .env("SSL_CERT_FILE", tls_registry().registry.ca_cert())
}

/// `login HOST -u alice --password-stdin -vv`, `password` piped in as
/// `echo` would.
fn login(config_dir: &Path, password: &str) -> KrustRun {
    let host = tls_registry().registry.host();
    with_config(
        &["login", &host, "-u", USER, "--password-stdin", "-vv"],
        config_dir,
    )
    .stdin(format!("{password}\n"))
    .run()
}

fn logout(config_dir: &Path) -> KrustRun {
    let host = tls_registry().registry.host();
    with_config(&["logout", &host], config_dir).run()
}

/// hello-krust on scratch pushed to the registry with `-vv`.
fn push(config_dir: &Path) -> KrustRun {
    pushing(config_dir).run()
}

fn pushing(config_dir: &Path) -> Krust {
    tools::require_default_rust_targets();
    let tls = tls_registry();
    let host = tls.registry.host();
    build_on_scratch(&hello_krust())
        .arg("-vv")
        .env("KRUST_REPO", format!("{host}/{}", unique_name("login")))
        .env("DOCKER_CONFIG", config_dir)
        .env("SSL_CERT_FILE", tls.registry.ca_cert())
}

/// Fails when `secret` appears in the output of `run`.
fn assert_no_secret(run: &KrustRun, secret: &str) {
    assert!(
        !run.stderr.contains(secret) && !run.stdout.contains(secret),
        "the password leaked into the output:\n{}",
        run.describe()
    );
}

/// A command that succeeded, printing nothing on stdout (only references go
/// there) and `words` on stderr.
fn expect_quiet_success(run: &KrustRun, words: &[&str]) {
    run.expect_success();
    assert_eq!(
        run.stdout,
        "",
        "stdout must stay empty:\n{}",
        run.describe()
    );
    for word in words {
        assert!(run.stderr.contains(word), "{word:?}:\n{}", run.describe());
    }
}

fn read_config(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
    serde_json::from_str(&text).expect("config.json is JSON")
}

/// Every file name in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Login writes `auths.HOST.auth`, keeping everything else; a push then
/// needs nothing more; logout removes just that entry and the next push
/// asks for credentials; logging out again is no error.
#[test]
fn login_push_logout() {
    let tls = tls_registry();
    let host = tls.registry.host();
    let dir = tempfile::tempdir().expect("config dir");
    let others = json!({
        "auths": {"other.example": {"auth": "eDp5"}},
        "HttpHeaders": {"User-Agent": "kept"},
        "currentContext": "default",
    });
    std::fs::write(dir.path().join("config.json"), others.to_string()).expect("config.json");

    let run = login(dir.path(), &tls.password);
    expect_quiet_success(&run, &["Logged in", &host]);
    assert_no_secret(&run, &tls.password);
    let config = read_config(dir.path());
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", tls.password));
    assert_eq!(config["auths"][&host], json!({"auth": auth}), "{config}");
    assert_eq!(
        config["auths"]["other.example"],
        others["auths"]["other.example"]
    );
    assert_eq!(config["HttpHeaders"], others["HttpHeaders"]);
    assert_eq!(config["currentContext"], "default");
    let mode = std::fs::metadata(dir.path().join("config.json"))
        .expect("config.json")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "config.json mode {mode:o}");
    assert_eq!(names_in(dir.path()), ["config.json"], "no temporary left");

    let pushed = push(dir.path()).single_ref();
    let raw =
        support::image::inspect_raw_as(&pushed.full, Some(&format!("{USER}:{}", tls.password)));
    assert_eq!(sha256_digest(&raw), pushed.digest);

    let run = logout(dir.path());
    expect_quiet_success(&run, &["Logged out", &host]);
    let config = read_config(dir.path());
    assert!(config["auths"].get(&host).is_none(), "{config}");
    assert_eq!(
        config["auths"]["other.example"],
        others["auths"]["other.example"]
    );
    assert_eq!(config["HttpHeaders"], others["HttpHeaders"]);

    push(dir.path()).expect_clean_error(&[&host, "requires credentials"]);

    let run = logout(dir.path());
    expect_quiet_success(&run, &["not logged in", &host]);
}

/// A password the registry refuses: a clean error naming the registry and
/// the user, and neither the config nor its directory changes; without a
/// config, none is created.
#[test]
fn wrong_password_writes_nothing() {
    let host = tls_registry().registry.host();
    let wrong = unique_secret("wrong-pw");
    let dir = tempfile::tempdir().expect("config dir");
    let before = json!({"auths": {"other.example": {"auth": "eDp5"}}}).to_string();
    std::fs::write(dir.path().join("config.json"), &before).expect("config.json");

    let run = login(dir.path(), &wrong);
    run.expect_clean_error(&[&host, "refused", USER]);
    assert_no_secret(&run, &wrong);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config.json")).expect("config.json"),
        before
    );
    assert_eq!(names_in(dir.path()), ["config.json"]);

    let empty = tempfile::tempdir().expect("config dir");
    let missing = empty.path().join("docker");
    let run = login(&missing, &wrong);
    run.expect_clean_error(&[&host, "refused"]);
    assert!(!missing.exists(), "{} was created", missing.display());
}

/// `-p PASSWORD` is refused (it would show in `ps`), without echoing it and
/// without asking the registry; so is a login with no password at all.
#[test]
fn password_on_the_command_line_is_refused() {
    let host = tls_registry().registry.host();
    let password = unique_secret("cli-pw");
    let dir = tempfile::tempdir().expect("config dir");
    for args in [
        vec!["login", &host, "-u", USER, "-p", &password],
        vec!["login", &host, "-u", USER, "--password", &password],
    ] {
        let run = with_config(&args, dir.path()).run();
        run.expect_clean_error(&["--password-stdin", "ps"]);
        assert_no_secret(&run, &password);
    }
    let run = with_config(&["login", &host, "-u", USER], dir.path()).run();
    run.expect_clean_error(&["--password-stdin"]);
    let run = with_config(
        &["login", &host, "-u", USER, "--password-stdin"],
        dir.path(),
    )
    .stdin("\n")
    .run();
    run.expect_clean_error(&["no password", "stdin"]);
    assert!(names_in(dir.path()).is_empty());
}

/// A credential helper that keeps one credential in a file, logging each
/// call (verb, its arguments and those of the process that ran it) to
/// `calls.log` and what `store` got on stdin to `stored.json`.
fn helper_store(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("helper dir");
    let (log, stored) = (dir.join("calls.log"), dir.join("stored.json"));
    support::write_script(
        &bin.join("docker-credential-krust-login"),
        &format!(
            r#"#!/bin/sh
echo "$0 $* | parent: $(tr '\0' ' ' < /proc/$PPID/cmdline)" >> '{log}'
case "$1" in
  store) cat > '{stored}' ;;
  get) read server
       if [ -f '{stored}' ]; then cat '{stored}'; else echo 'credentials not found in native keychain'; exit 1; fi ;;
  erase) read server
         if [ -f '{stored}' ]; then rm '{stored}'; else echo 'credentials not found in native keychain'; exit 1; fi ;;
esac
"#,
            log = log.display(),
            stored = stored.display()
        ),
    );
    bin
}

/// With `credHelpers` naming a helper for the registry, login stores
/// through it (the config gets an empty entry, no secret), the push gets
/// the credential back from it, and logout erases it there.
#[test]
fn credential_helper_stores_and_erases() {
    let tls = tls_registry();
    let host = tls.registry.host();
    let dir = tempfile::tempdir().expect("helper dir");
    let bin = helper_store(dir.path());
    let config_dir = dir.path().join("docker");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    let helpers = json!({"credHelpers": {&host: "krust-login"}});
    std::fs::write(config_dir.join("config.json"), helpers.to_string()).expect("config.json");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let run = with_config(
        &["login", &host, "-u", USER, "--password-stdin", "-vv"],
        &config_dir,
    )
    .env("PATH", &path)
    .stdin(tls.password.clone())
    .run();
    expect_quiet_success(&run, &["Logged in", "docker-credential-krust-login"]);
    assert_no_secret(&run, &tls.password);
    let stored: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("stored.json")).expect("the helper stored nothing"),
    )
    .expect("store got JSON");
    assert_eq!(
        stored,
        json!({"ServerURL": host, "Username": USER, "Secret": tls.password})
    );
    let config = read_config(&config_dir);
    assert_eq!(config["credHelpers"], helpers["credHelpers"]);
    assert_eq!(config["auths"], json!({&host: {}}), "{config}");

    let pushed = pushing(&config_dir).env("PATH", &path).run().single_ref();
    assert!(pushed.full.starts_with(&host), "{}", pushed.full);

    let run = with_config(&["logout", &host], &config_dir)
        .env("PATH", &path)
        .run();
    expect_quiet_success(&run, &["Logged out", "docker-credential-krust-login"]);
    assert!(!dir.path().join("stored.json").exists(), "not erased");
    assert!(read_config(&config_dir)["auths"].get(&host).is_none());

    let calls = std::fs::read_to_string(dir.path().join("calls.log")).expect("calls.log");
    let verbs: Vec<&str> = calls
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(verbs.first(), Some(&"store"), "{calls}");
    assert_eq!(verbs.last(), Some(&"erase"), "{calls}");
    assert!(verbs.contains(&"get"), "{calls}");
    assert!(
        !calls.contains(&tls.password),
        "the password was on a command line: {calls}"
    );
}

/// Docker Hub's names are one registry: `logout docker.io` removes the
/// entry `docker login` writes (`https://index.docker.io/v1/`) and its
/// aliases, and nothing else, without asking any registry.
#[test]
fn docker_hub_names_are_one_registry() {
    let dir = tempfile::tempdir().expect("config dir");
    let config = json!({"auths": {
        "https://index.docker.io/v1/": {"auth": "eDp5"},
        "registry-1.docker.io": {"auth": "eDp5"},
        "ghcr.io": {"auth": "eDp5"},
    }});
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config.json");
    let run = with_config(&["logout", "docker.io"], dir.path()).run();
    expect_quiet_success(&run, &["Logged out", "index.docker.io"]);
    assert_eq!(
        read_config(dir.path()),
        json!({"auths": {"ghcr.io": {"auth": "eDp5"}}})
    );
}

/// A helper that hangs on `store` is stopped within its time (half of
/// --registry-timeout), and one that fails repeating what it got has the
/// password cut out of its words; either way the config stays as it was.
#[test]
fn failing_helpers_are_bounded_and_never_echo_the_password() {
    let tls = tls_registry();
    let host = tls.registry.host();
    let dir = tempfile::tempdir().expect("helper dir");
    support::write_script(
        &dir.path().join("docker-credential-krust-hangs"),
        "#!/bin/sh\nexec sleep 60\n",
    );
    support::write_script(
        &dir.path().join("docker-credential-krust-echoes"),
        "#!/bin/sh\necho \"cannot store $(cat)\" >&2\nexit 1\n",
    );
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (helper, words) in [
        (
            "krust-hangs",
            ["did not answer within 2s", "--registry-timeout"],
        ),
        ("krust-echoes", ["failed for", "cannot store"]),
    ] {
        let config_dir = dir.path().join(helper);
        std::fs::create_dir_all(&config_dir).expect("config dir");
        let before = json!({"credsStore": helper}).to_string();
        std::fs::write(config_dir.join("config.json"), &before).expect("config.json");
        let started = std::time::Instant::now();
        let run = with_config(
            &[
                "login",
                &host,
                "-u",
                USER,
                "--password-stdin",
                "--registry-timeout",
                "4",
            ],
            &config_dir,
        )
        .env("PATH", &path)
        .stdin(tls.password.clone())
        .run();
        let line = run.expect_clean_error(&[&format!("docker-credential-{helper}"), &host]);
        for word in words {
            assert!(line.contains(word), "{word:?}: {line}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert_no_secret(&run, &tls.password);
        assert_eq!(
            std::fs::read_to_string(config_dir.join("config.json")).expect("config.json"),
            before
        );
    }
}

/// Against a registry with Bearer tokens, login asks the token server for a
/// token for no repository with the password (as `docker login` does), and
/// a password the token server refuses is a clean error writing nothing.
#[test]
fn bearer_login_asks_a_token_for_no_repository() {
    let password = unique_secret("token-pw");
    let tokens = TokenServer::start(&[(USER, &password)], &[], &[]);
    let registry = Registry::start_with(Options {
        token: Some((tokens.realm(), tokens.cert().to_path_buf())),
        ..Options::default()
    });
    let host = registry.host();
    let dir = tempfile::tempdir().expect("config dir");
    let login_with = |secret: &str| {
        krust(["login", &host, "-u", USER, "--password-stdin", "-vv"])
            .env("DOCKER_CONFIG", dir.path())
            .stdin(secret)
            .run()
    };

    let wrong = unique_secret("wrong-pw");
    let run = login_with(&wrong);
    run.expect_clean_error(&[&host, "refused", USER]);
    assert_no_secret(&run, &wrong);
    assert!(names_in(dir.path()).is_empty());

    let run = login_with(&password);
    expect_quiet_success(&run, &["Logged in", &host]);
    assert_no_secret(&run, &password);
    assert!(read_config(dir.path())["auths"][&host]["auth"].is_string());
    let asked = tokens.requests();
    assert!(asked.iter().all(|r| r.scopes.is_empty()), "{asked:?}");
    assert!(
        asked.last().is_some_and(|r| r.grant == Grant::Password
            && r.user.as_deref() == Some(USER)
            && r.status == 200),
        "{asked:?}"
    );
}

/// Off loopback, plain HTTP needs --insecure-registry, at login as in a
/// build (a registry without authentication takes any login, as docker's).
#[test]
fn plain_http_login_needs_insecure_registry_off_loopback() {
    let registry = Registry::start();
    let host = format!("0.0.0.0:{}", registry.port());
    let dir = tempfile::tempdir().expect("config dir");
    let login = |extra: &[&str]| {
        krust(["login", &host, "-u", USER, "--password-stdin"])
            .args(extra)
            .env("DOCKER_CONFIG", dir.path())
            .stdin("pw")
            .run()
    };
    login(&[]).expect_clean_error(&[&host, "HTTPS", &format!("--insecure-registry {host}")]);
    assert!(names_in(dir.path()).is_empty());
    expect_quiet_success(&login(&["--insecure-registry", &host]), &["Logged in"]);
    assert!(read_config(dir.path())["auths"][&host]["auth"].is_string());
}
