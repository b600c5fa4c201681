//! Bad input: every case must exit non-zero with an EMPTY stdout, name the
//! problem on one stderr line (the words are checked case-insensitively), and
//! never panic or print a backtrace.
//!
//! Cases: no Cargo.toml, a library-only crate, a compile error, an unknown
//! platform, invalid image references (base and repo), a platform the base lacks,
//! an unreachable registry, and no KRUST_REPO when pushing.

mod support;

use support::krust::{build_on_scratch, hello_krust, krust};
use support::{cargo_new_bin, cargo_new_lib, shared, tools};

/// A closed port: nothing listens on 127.0.0.1:1.
const CLOSED_REPO: &str = "127.0.0.1:1/x";

/// A directory without Cargo.toml is named as such.
#[test]
fn no_cargo_toml() {
    let tmp = tempfile::tempdir().expect("tempdir");
    build_on_scratch(tmp.path())
        .env("KRUST_REPO", CLOSED_REPO)
        .run()
        .expect_clean_error(&["Cargo.toml"]);
}

/// Even with RUST_BACKTRACE=1 (common in developers' shells) bad input gives
/// an error message, not a backtrace.
#[test]
fn no_backtrace_even_with_rust_backtrace_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    build_on_scratch(tmp.path())
        .env("KRUST_REPO", CLOSED_REPO)
        .env("RUST_BACKTRACE", "1")
        .run()
        .expect_clean_error(&["Cargo.toml"]);
}

/// A library-only crate has nothing to put in an image.
#[test]
fn library_only_crate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = cargo_new_lib(tmp.path(), "only-a-lib");
    build_on_scratch(&pkg)
        .env("KRUST_REPO", CLOSED_REPO)
        .run()
        .expect_clean_error(&["no bin target"]);
}

/// A crate that does not compile: cargo's errors may fill stderr, but the tool's
/// own line says the build failed, and stdout stays empty.
#[test]
fn compile_error() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = cargo_new_bin(tmp.path(), "does-not-compile");
    std::fs::write(
        pkg.join("src/main.rs"),
        "fn main() { let x: u32 = \"not a number\"; println!(\"{x}\"); }\n",
    )
    .expect("write broken main.rs");
    build_on_scratch(&pkg)
        .env("KRUST_REPO", CLOSED_REPO)
        .run()
        .expect_clean_error(&["cargo build failed"]);
}

/// An unknown platform is named in the error.
#[test]
fn unknown_platform() {
    krust([
        "build",
        "--base-image",
        "scratch",
        "--platform",
        "linux/mips",
    ])
    .arg(hello_krust())
    .env("KRUST_REPO", CLOSED_REPO)
    .run()
    .expect_clean_error(&["platform", "linux/mips"]);
}

/// An invalid base image reference.
#[test]
fn invalid_base_image_reference() {
    krust([
        "build",
        "--platform",
        "linux/amd64",
        "--base-image",
        "UPPER CASE!!",
    ])
    .arg(hello_krust())
    .env("KRUST_REPO", CLOSED_REPO)
    .run()
    .expect_clean_error(&["invalid"]);
}

/// An invalid repository, as flag and as environment variable.
#[test]
fn invalid_repo() {
    build_on_scratch(&hello_krust())
        .args(["--repo", "bad repo//x"])
        .run()
        .expect_clean_error(&["invalid"]);
    build_on_scratch(&hello_krust())
        .env("KRUST_REPO", "bad repo//x")
        .run()
        .expect_clean_error(&["invalid"]);
}

/// A platform the base image does not have is an error, never a fallback
/// (SPEC §6).
#[test]
fn platform_missing_from_base() {
    let shared = shared();
    let repo = format!("{}/errors", shared.registry.host());
    krust(["build", "--platform", "linux/arm64"])
        .arg(hello_krust())
        .args(["--base-image", &shared.bases.single_ref])
        .env("KRUST_REPO", &repo)
        .run()
        .expect_clean_error(&["linux/arm64"]);
}

/// Pushing to a closed port names the registry.
#[test]
fn unreachable_registry() {
    tools::require_default_rust_targets();
    build_on_scratch(&hello_krust())
        .env("KRUST_REPO", CLOSED_REPO)
        .run()
        .expect_clean_error(&["127.0.0.1:1"]);
}

/// A base image on an unreachable registry names that registry too.
#[test]
fn unreachable_base_registry() {
    let shared = shared();
    krust(["build", "--platform", "linux/amd64"])
        .arg(hello_krust())
        .args(["--base-image", "127.0.0.1:1/base:latest"])
        .env("KRUST_REPO", format!("{}/errors", shared.registry.host()))
        .run()
        .expect_clean_error(&["127.0.0.1:1"]);
}

/// Pushing without KRUST_REPO or --repo says how to fix it.
#[test]
fn missing_krust_repo() {
    build_on_scratch(&hello_krust())
        .env_remove("KRUST_REPO")
        .run()
        .expect_clean_error(&["KRUST_REPO"]);
}
