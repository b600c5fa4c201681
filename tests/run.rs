//! `cargo krust run`: the image built for the host, loaded into podman (a
//! containers storage of the test's own) and run with the real podman and
//! runc:
//!
//! - the program's arguments reach it, its output is all of stdout, and its
//!   exit status (3) is cargo-krust's;
//! - stdin reaches the program;
//! - a `--platform` that is not the host's is a clean error;
//! - without podman on PATH, or with several bins selected, nothing is
//!   built.

mod support;

use std::path::{Path, PathBuf};

use support::krust::{KrustRun, krust};
use support::podman::{own_storage, path_without_podman};
use support::{cargo_new_bin, tools};

/// Prints its arguments, then copies stdin to stdout, and exits 3.
const ECHO_MAIN: &str = r#"use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args: {}", args.join("|"));
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input).expect("stdin");
    print!("stdin: {input}");
    std::io::stdout().flush().expect("flush");
    std::process::exit(3);
}
"#;

/// The `echo-krust` package under `dir`.
fn echo_package(dir: &Path) -> PathBuf {
    let package = cargo_new_bin(dir, "echo-krust");
    std::fs::write(package.join("src/main.rs"), ECHO_MAIN).expect("write main.rs");
    package
}

/// `cargo krust run` of the echo package on scratch, in storage of its own
/// (runc cannot raise podman's default nofile/nproc limits here, so they
/// are lowered through --podman-arg), with `input` on stdin.
fn run_echo(program_args: &[&str], input: &str) -> KrustRun {
    tools::require_default_rust_targets();
    tools::require("podman", "podman");
    tools::require("runc", "runc");
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = own_storage(tmp.path());
    // podman run stats the auth file it is pointed at, even for a local image.
    let auth = tmp.path().join("auth.json");
    std::fs::write(&auth, "{}").expect("write auth.json");
    krust(["run", "--base-image", "scratch"])
        .args([
            "--podman-arg=--ulimit=nofile=1024:1024",
            "--podman-arg=--ulimit=nproc=1024:1024",
        ])
        .arg(echo_package(tmp.path()))
        .arg("--")
        .args(program_args)
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .env("REGISTRY_AUTH_FILE", &auth)
        .stdin(input)
        .run()
}

#[test]
fn the_program_gets_its_arguments_and_its_exit_status_is_passed_through() {
    let run = run_echo(&["one", "two words", "--flag"], "");
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    assert_eq!(
        run.stdout,
        "args: one|two words|--flag\nstdin: ",
        "{}",
        run.describe()
    );
}

#[test]
fn stdin_reaches_the_program() {
    let run = run_echo(&[], "hello through podman\n");
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    assert_eq!(
        run.stdout,
        "args: \nstdin: hello through podman\n",
        "{}",
        run.describe()
    );
}

#[test]
fn a_platform_other_than_the_hosts_is_a_clean_error() {
    let other = if std::env::consts::ARCH == "aarch64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let package = echo_package(tmp.path());
    let run = krust(["run", "--base-image", "scratch", "--platform", other])
        .arg(&package)
        .run();
    run.expect_clean_error(&[other, "this machine", "leave --platform out"]);
    assert!(!run.stderr.contains("Building"), "{}", run.describe());
    // Output flags of `build` do nothing here: refused, not ignored.
    for flag in ["--local", "--no-push", "--tag-only"] {
        let run = krust(["run", "--base-image", "scratch", flag])
            .arg(&package)
            .run();
        run.expect_clean_error(&[flag, "`run`"]);
        assert!(!run.stderr.contains("Building"), "{}", run.describe());
    }
}

#[test]
fn without_podman_nothing_is_built() {
    let path = path_without_podman();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = krust(["run", "--base-image", "scratch"])
        .arg(echo_package(tmp.path()))
        .env("PATH", path)
        .run();
    run.expect_clean_error(&["`run`", "podman", "apt-get install podman"]);
    assert!(!run.stderr.contains("Building"), "{}", run.describe());
}

#[test]
fn several_bins_are_refused_before_anything_is_built() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let package = echo_package(tmp.path());
    std::fs::create_dir_all(package.join("src/bin")).expect("mkdir src/bin");
    std::fs::write(package.join("src/bin/other.rs"), "fn main() {}\n").expect("write other.rs");
    let run = krust(["run", "--base-image", "scratch"])
        .arg(&package)
        .run();
    run.expect_clean_error(&["one bin", "2 are selected", "--bin"]);
    assert!(!run.stderr.contains("Building"), "{}", run.describe());
}
