//! The crate as published to crates.io, checked with the real `cargo`:
//!
//! - `cargo package --list` holds every file that src pulls in at compile time
//!   (`include_str!`/`include_bytes!`, unit tests included, so that `cargo test`
//!   of the .crate builds), the readme and both licenses;
//! - the declared `rust-version` is no older than what the locked dependencies
//!   declare, so `cargo install cargo-krust` on that toolchain does not fail;
//! - the cargo-binstall metadata names a GitHub release tarball per musl target
//!   and the binary inside it.
//!
//! scripts/test also runs `cargo package --locked`, which builds the .crate.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs this toolchain's cargo on this crate, offline, and returns its stdout.
fn cargo(args: &[&str]) -> String {
    let manifest = manifest_dir().join("Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(args)
        .args(["--locked", "--offline", "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo {args:?} failed:\n{stderr}");
    String::from_utf8(out.stdout).expect("cargo's stdout is UTF-8")
}

/// The files of the published crate, relative to the crate root.
fn packaged_files() -> BTreeSet<String> {
    cargo(&["package", "--list", "--allow-dirty"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("read src entry").path();
        if path.is_dir() {
            rust_sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// `dir/relative` with `.` and `..` folded, relative to the crate root and
/// written with `/` as `cargo package --list` does.
fn crate_relative(dir: &Path, relative: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let joined = dir.join(relative);
    let inside = joined
        .strip_prefix(manifest_dir())
        .expect("source file inside the crate");
    for component in inside.components() {
        match component {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// The files src reads at compile time: the literal paths of its
/// `include_str!` and `include_bytes!` calls, relative to the crate root.
fn files_included_by_src() -> BTreeSet<String> {
    let mut sources = Vec::new();
    rust_sources(&manifest_dir().join("src"), &mut sources);
    let mut included = BTreeSet::new();
    for source in sources {
        let text = std::fs::read_to_string(&source).expect("read source");
        let dir = source.parent().expect("source file has a directory");
        for macro_call in ["include_str!(\"", "include_bytes!(\""] {
            for (start, _) in text.match_indices(macro_call) {
                let rest = &text[start + macro_call.len()..];
                let end = rest.find('"').expect("include path is a closed literal");
                included.insert(crate_relative(dir, &rest[..end]));
            }
        }
    }
    included
}

#[test]
fn published_crate_holds_what_src_includes_readme_and_licenses() {
    let packaged = packaged_files();
    let wanted = files_included_by_src()
        .into_iter()
        .chain(["README.md", "LICENSE-MIT", "LICENSE-APACHE", "Cargo.lock"].map(String::from));
    let missing: Vec<String> = wanted.filter(|f| !packaged.contains(f)).collect();
    assert!(
        missing.is_empty(),
        "the published crate lacks {missing:?}: add them to `include` in Cargo.toml \
         (packaged: {packaged:?})"
    );
    assert!(
        packaged.iter().all(|f| !f.starts_with("tests/support/")),
        "the integration-test harness is not published: {packaged:?}"
    );
}

/// `1.91` or `1.91.0` as comparable numbers.
fn version_numbers(version: &str) -> Vec<u64> {
    let mut numbers: Vec<u64> = version
        .split('.')
        .map(|n| n.parse().expect("numeric rust-version"))
        .collect();
    numbers.resize(3, 0);
    numbers
}

#[test]
fn rust_version_covers_every_locked_dependency() {
    // Only what builds on Linux counts: cargo-krust runs nowhere else.
    let metadata: Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--filter-platform",
        "x86_64-unknown-linux-gnu",
    ]))
    .expect("cargo metadata is JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let ours = packages
        .iter()
        .find(|p| p["name"] == "cargo-krust")
        .and_then(|p| p["rust_version"].as_str())
        .expect("cargo-krust declares rust-version");
    let too_new: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            let (name, version) = (p["name"].as_str()?, p["version"].as_str()?);
            (version_numbers(needs) > version_numbers(ours))
                .then(|| format!("{name} {version} needs {needs}"))
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "Cargo.toml's rust-version {ours} is older than the locked dependencies need: {too_new:?}"
    );
}

/// `template` with the cargo-binstall variables it may use filled in for
/// version 1.2.3 of `target`.
fn binstall_expand(template: &str, repository: &str, target: &str) -> String {
    template
        .replace("{ repo }", repository)
        .replace("{ name }", "cargo-krust")
        .replace("{ bin }", "cargo-krust")
        .replace("{ version }", "1.2.3")
        .replace("{ target }", target)
        .replace("{ binary-ext }", "")
}

#[test]
fn binstall_metadata_names_the_release_tarball_of_each_musl_target() {
    let manifest: toml::Table = toml::from_str(
        &std::fs::read_to_string(manifest_dir().join("Cargo.toml")).expect("read Cargo.toml"),
    )
    .expect("Cargo.toml parses");
    let package = &manifest["package"];
    let binstall = &package["metadata"]["binstall"];
    // `{ repo }` expands to package.repository; binstall cannot guess it.
    let repository = package["repository"].as_str().unwrap_or_default();
    assert!(
        repository.starts_with("https://github.com/"),
        "package.repository is the GitHub repository: {repository:?}"
    );
    assert_eq!(binstall["pkg-fmt"].as_str(), Some("tgz"));
    let pkg_url = binstall["pkg-url"].as_str().expect("binstall pkg-url");
    let bin_dir = binstall["bin-dir"].as_str().expect("binstall bin-dir");
    for target in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        assert_eq!(
            binstall_expand(pkg_url, repository, target),
            format!("{repository}/releases/download/v1.2.3/cargo-krust-{target}-v1.2.3.tar.gz"),
        );
        assert_eq!(
            binstall_expand(bin_dir, repository, target),
            format!("cargo-krust-{target}-v1.2.3/cargo-krust"),
        );
    }
}
