//! `--local` and repository `podman.local`: the images loaded into podman,
//! in a containers storage of the test's own (CONTAINERS_STORAGE_CONF, vfs):
//!
//! - a two-platform build loads the host's platform under `NAME:TAG` and
//!   each platform under `NAME:TAG-ARCH` (podman reads the architecture of
//!   each), and `podman run` of the printed reference runs hello-krust;
//! - `KRUST_REPO=podman.local/…` loads every tag, pushing nowhere;
//! - `KRUST_REPO=docker.local` loads every platform with the real `docker`
//!   client, through podman's Docker-compatible API (no Docker engine runs
//!   here), and without an engine that answers nothing is built;
//! - without podman on PATH the run stops before anything is built, naming
//!   the install command;
//! - a podman that fails (its message in the error) or hangs (stopped
//!   within `--registry-timeout`) is a clean error: stand-in scripts, as no
//!   real podman misbehaves on cue.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::krust::{Krust, build_on_scratch, hello_krust, krust};
use support::podman::{DockerApi, own_storage, path_without_podman};
use support::process::run_ok;
use support::{tools, write_script};

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// `build` with podman's storage at `conf`.
fn into_storage(build: Krust, conf: &Path) -> Krust {
    build.env("CONTAINERS_STORAGE_CONF", conf)
}

/// podman `args` on the storage of `conf`; its stdout.
fn podman(conf: &Path, args: &[&str]) -> Vec<u8> {
    run_ok(
        Command::new(tools::require("podman", "podman"))
            .env("CONTAINERS_STORAGE_CONF", conf)
            .args(args),
        TOOL_TIMEOUT,
        &format!("podman {}", args.join(" ")),
    )
    .stdout
}

/// What `image` prints when podman runs it.
fn run_in_podman(conf: &Path, image: &str) -> String {
    // crun fails on these machines; runc cannot raise the default
    // nofile/nproc limits podman asks for here, so they are lowered.
    let args = ["run", "--runtime", "runc", "--ulimit", "nofile=1024:1024"];
    let ran = podman(
        conf,
        &[&args[..], &["--ulimit", "nproc=1024:1024", "--rm", image]].concat(),
    );
    String::from_utf8_lossy(&ran).into_owned()
}

/// `podman image inspect IMAGE`'s one image.
fn inspect(conf: &Path, image: &str) -> Value {
    let all: Value = serde_json::from_slice(&podman(conf, &["image", "inspect", image]))
        .expect("podman image inspect prints JSON");
    all[0].clone()
}

#[test]
fn a_two_platform_build_loads_every_platform_into_podman() {
    tools::require_default_rust_targets();
    tools::require("runc", "runc");
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = own_storage(tmp.path());
    let build = krust(["build", "--base-image", "scratch", "--local"])
        .args(["--platform", "linux/amd64,linux/arm64"])
        .arg(hello_krust());
    let loaded = into_storage(build, &conf).run().single_ref();
    assert_eq!(loaded.repo, "hello-krust", "{loaded:?}");
    assert_eq!(loaded.host, "podman.local", "{loaded:?}");

    let main = inspect(&conf, "podman.local/hello-krust:latest");
    assert_eq!(main["Architecture"], "amd64", "{main}");
    assert_eq!(main["Digest"], loaded.digest.as_str(), "{main}");
    for arch in ["amd64", "arm64"] {
        let image = inspect(&conf, &format!("podman.local/hello-krust:latest-{arch}"));
        assert_eq!(image["Architecture"], arch, "{image}");
    }

    let reference = format!("podman.local/hello-krust@{}", loaded.digest);
    let said = run_in_podman(&conf, &reference);
    assert!(said.contains("Hello from krust!"), "{said}");
    assert!(said.contains("arch: x86_64"), "{said}");
}

#[test]
fn the_podman_local_repository_loads_every_tag_and_pushes_nowhere() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = own_storage(tmp.path());
    let build = build_on_scratch(&hello_krust())
        .args(["-t", "v1", "-t", "v2"])
        .env("KRUST_REPO", "podman.local/team");
    let loaded = into_storage(build, &conf).run().single_ref();
    assert_eq!(loaded.host, "podman.local", "{loaded:?}");
    for tag in ["v1", "v2", "v1-amd64", "v2-amd64"] {
        let image = inspect(&conf, &format!("podman.local/team/hello-krust:{tag}"));
        assert_eq!(image["Architecture"], "amd64", "{tag}: {image}");
    }
}

#[test]
fn without_podman_nothing_is_built() {
    let path = path_without_podman();
    let tmp = tempfile::tempdir().expect("tempdir");
    let build = build_on_scratch(&hello_krust())
        .arg("--local")
        .env("PATH", path);
    let run = into_storage(build, &own_storage(tmp.path())).run();
    run.expect_clean_error(&["podman", "apt-get install podman"]);
    assert!(!run.stderr.contains("Building"), "{}", run.describe());
}

/// `--local` with `script` as podman (first on PATH), `--registry-timeout 2`.
fn with_stand_in_podman(script: &str) -> support::krust::KrustRun {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_script(&tmp.path().join("podman"), script);
    let mut path = vec![tmp.path().to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    build_on_scratch(&hello_krust())
        .args(["--local", "--registry-timeout", "2"])
        .env("PATH", std::env::join_paths(path).expect("PATH"))
        .run()
}

#[test]
fn a_podman_that_fails_or_hangs_is_a_clean_error() {
    tools::require_default_rust_targets();
    let failed = with_stand_in_podman("#!/bin/sh\necho 'storage is read-only' >&2\nexit 125\n");
    failed.expect_clean_error(&["podman load", "storage is read-only", "hello-krust"]);

    let started = std::time::Instant::now();
    let hung = with_stand_in_podman("#!/bin/sh\nexec sleep 600\n");
    hung.expect_clean_error(&["podman load", "--registry-timeout"]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// The real `docker` client, talking to `api`; its stdout.
fn docker(api: &DockerApi, args: &[&str]) -> String {
    let out = run_ok(
        Command::new(tools::require("docker", "docker.io"))
            .env("DOCKER_HOST", &api.host)
            .args(args),
        TOOL_TIMEOUT,
        &format!("docker {}", args.join(" ")),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_docker_local_repository_loads_every_platform_with_docker_load() {
    tools::require_default_rust_targets();
    tools::require("runc", "runc");
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = own_storage(tmp.path());
    let api = DockerApi::start(&conf, tmp.path());
    let build = krust(["build", "--base-image", "scratch", "-t", "v1,v2"])
        .args(["--platform", "linux/amd64,linux/arm64"])
        .arg(hello_krust())
        .env("KRUST_REPO", "docker.local")
        .env("DOCKER_HOST", &api.host);
    let run = into_storage(build, &conf).run();
    // Docker keeps no digest for a loaded image: the tag is the reference.
    assert_eq!(
        run.stdout,
        "docker.local/hello-krust:v1\n",
        "{}",
        run.describe()
    );

    for (tag, arch) in [
        ("v1", "amd64"),
        ("v2", "amd64"),
        ("v1-amd64", "amd64"),
        ("v2-arm64", "arm64"),
    ] {
        let image = format!("docker.local/hello-krust:{tag}");
        let inspected = docker(
            &api,
            &["image", "inspect", "--format", "{{.Architecture}}", &image],
        );
        assert_eq!(inspected.trim(), arch, "{image}");
    }
    // The engine's storage is podman's: the image it loaded runs.
    let said = run_in_podman(&conf, "docker.local/hello-krust:v1");
    assert!(said.contains("Hello from krust!"), "{said}");
}

#[test]
fn without_a_docker_engine_nothing_is_built() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = build_on_scratch(&hello_krust())
        .env("KRUST_REPO", "docker.local")
        .env(
            "DOCKER_HOST",
            format!("unix://{}", tmp.path().join("none.sock").display()),
        )
        .run();
    run.expect_clean_error(&["docker.local", "Docker engine", "--local"]);
    assert!(!run.stderr.contains("Building"), "{}", run.describe());
}
