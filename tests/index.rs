//! `cargo krust index create`: per-architecture builds merged into one
//! index, against the real registry, checked with skopeo and run:
//!
//! - amd64 built in one checkout and arm64 in another (own target dirs),
//!   each pushed under its own tag, then merged: the index holds both
//!   platforms with the original manifest digests, both run (arm64 under
//!   qemu), and merging again gives the same digest;
//! - a source in another repository of the registry is mounted into the
//!   target's, its manifest digest kept;
//! - a platform given twice, and a source that does not exist, are clean
//!   errors with nothing pushed.

mod support;

use std::path::Path;

use support::image::{PushedRef, fetch_index, inspect_raw, run_platform};
use support::krust::{hello_krust, krust};
use support::{copy_tree, shared, tools, unique_name};

/// Builds hello-krust from its own copy in `dir`, for `platform`, tagged
/// `tag`, into `repo`.
fn build_in_checkout(dir: &Path, repo: &str, platform: &str, tag: &str) -> PushedRef {
    copy_tree(&hello_krust(), dir);
    krust(["build", "--platform", platform, "-t", tag])
        .arg(dir)
        .arg("--target-dir")
        .arg(dir.join("target"))
        .env("KRUST_REPO", repo)
        .env("KRUST_BASE_IMAGE", &shared().bases.multi_ref)
        .run()
        .single_ref()
}

/// The manifest digest of the one platform of a single-platform build.
fn only_manifest(pushed: &PushedRef) -> String {
    let index = fetch_index(&shared().registry, pushed);
    assert_eq!(index.images.len(), 1, "{}", index.index);
    index.images[0].manifest_digest.clone()
}

#[test]
fn per_architecture_builds_merge_into_one_index_that_runs() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = format!("{}/{}", shared().registry.host(), unique_name("merge"));
    let amd64 = build_in_checkout(&tmp.path().join("a"), &repo, "linux/amd64", "v1-amd64");
    let arm64 = build_in_checkout(&tmp.path().join("b"), &repo, "linux/arm64", "v1-arm64");
    let name = format!("{repo}/hello-krust");

    let merge = || {
        krust(["index", "create", &format!("{name}:v1")])
            .args([format!("{name}:v1-amd64"), arm64.full.clone()])
            .run()
            .single_ref()
    };
    let merged = merge();
    assert_eq!(merged.repo, amd64.repo);
    let index = fetch_index(&shared().registry, &merged);
    assert_eq!(index.platforms(), ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(index.image("amd64").manifest_digest, only_manifest(&amd64));
    assert_eq!(index.image("arm64").manifest_digest, only_manifest(&arm64));
    // The tag names the merged index.
    let tagged = inspect_raw(&format!("{name}:v1"));
    assert_eq!(support::sha256_digest(&tagged), merged.digest);

    for image in &index.images {
        let said = run_platform(&merged, image, &["x"]);
        assert!(said.contains("Hello from krust!"), "{said}");
    }
    assert_eq!(merge(), merged, "merging again gives the same index");
}

#[test]
fn a_source_in_another_repository_is_mounted_with_its_digest() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = shared().registry.host();
    let elsewhere = format!("{host}/{}", unique_name("from"));
    let arm64 = build_in_checkout(&tmp.path().join("b"), &elsewhere, "linux/arm64", "arm");
    let target = format!("{host}/{}/app:v2", unique_name("into"));
    let merged = krust(["index", "create", &target, &arm64.full])
        .run()
        .single_ref();
    let index = fetch_index(&shared().registry, &merged);
    assert_eq!(index.platforms(), ["linux/arm64/v8"]);
    assert_eq!(index.image("arm64").manifest_digest, only_manifest(&arm64));
}

#[test]
fn a_platform_given_twice_or_a_missing_source_is_a_clean_error() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = format!("{}/{}", shared().registry.host(), unique_name("twice"));
    let amd64 = build_in_checkout(&tmp.path().join("a"), &repo, "linux/amd64", "one");
    let name = format!("{repo}/hello-krust");
    let twice = krust(["index", "create", &format!("{name}:both"), &amd64.full])
        .arg(format!("{name}:one"))
        .run();
    twice.expect_clean_error(&["linux/amd64", "twice", &format!("{name}:one")]);

    let missing = krust(["index", "create", &format!("{name}:m")])
        .arg(format!("{name}:no-such-tag"))
        .run();
    missing.expect_clean_error(&["no-such-tag"]);
    for tag in ["both", "m"] {
        let listed = support::process::output_with_timeout(
            std::process::Command::new(tools::require("skopeo", "skopeo"))
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{name}:{tag}")),
            std::time::Duration::from_secs(120),
        )
        .expect("run skopeo");
        let said = String::from_utf8_lossy(&listed.stderr);
        assert!(
            !listed.status.success() && said.contains("manifest unknown"),
            "{tag} was pushed, or skopeo failed otherwise: {said}"
        );
    }
}
