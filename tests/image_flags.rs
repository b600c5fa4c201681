//! The daily image flags, with the real binary, checked with skopeo:
//!
//! - `--image-label`, `--image-annotation` and `--image-user` land in the
//!   config (Labels, User), on the manifest and on the index; they override
//!   the Cargo.toml keys entry by entry and leave the other entries alone;
//!   the same flags (in any order) give the same digest;
//! - bad values (no `=`, an empty KEY, an empty user) are one clean error
//!   naming the flag, before anything is built or written;
//! - `--tag-only` prints `REPO/NAME:TAG` (the first tag) for `build`, in
//!   `--image-refs` and in `resolve`'s YAML, and that tag names the image the
//!   digest reference names.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::image::{inspect_raw, json};
use support::krust::{Krust, build_on_scratch, hello_krust, krust, resolve_on_scratch};
use support::process::run_ok;
use support::{copy_tree, sha256_digest, shared, tools, unique_name};

/// hello-krust copied to `parent/hello-krust`, its Cargo.toml setting
/// labels, annotations and user (the keys the flags override).
fn configured_package(parent: &Path) -> PathBuf {
    let pkg = parent.join("hello-krust");
    copy_tree(&hello_krust(), &pkg);
    let manifest = pkg.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    text.push_str(concat!(
        "\n[package.metadata.krust]\n",
        "user = \"1000:1000\"\n",
        "labels = { \"org.example/keep\" = \"toml\", \"org.example/over\" = \"toml\" }\n",
        "annotations = { \"org.example/keep-note\" = \"toml\", \"org.example/over-note\" = \"toml\" }\n",
    ));
    std::fs::write(&manifest, text).expect("write Cargo.toml");
    pkg
}

/// `--no-push` build of `pkg` on scratch (amd64) into the OCI layout `layout`.
fn build_into(pkg: &Path, layout: &Path) -> Krust {
    build_on_scratch(pkg)
        .arg("--no-push")
        .arg("--oci-layout-path")
        .arg(layout)
}

/// `skopeo inspect ARGS oci:LAYOUT:hello-krust:latest`, raw bytes.
fn skopeo_layout(layout: &Path, args: &[&str]) -> Vec<u8> {
    let skopeo = tools::require("skopeo", "skopeo");
    let output = run_ok(
        Command::new(skopeo)
            .arg("inspect")
            .args(args)
            .arg(format!("oci:{}:hello-krust:latest", layout.display())),
        Duration::from_secs(60),
        "skopeo inspect oci:LAYOUT:hello-krust:latest",
    );
    assert!(!output.stdout.is_empty(), "skopeo printed nothing");
    output.stdout
}

/// What a layout holds for hello-krust: the index (its digest checked
/// against the printed one), the amd64 manifest and config.
struct Written {
    index: Value,
    manifest: Value,
    config: Value,
}

fn read_layout(layout: &Path, printed_digest: &str) -> Written {
    let raw_index = skopeo_layout(layout, &["--raw"]);
    assert_eq!(sha256_digest(&raw_index), printed_digest, "printed digest");
    let index = json(&raw_index);
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("index entry digest");
    let hex = manifest_digest.strip_prefix("sha256:").expect("sha256");
    let raw_manifest = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("manifest blob");
    assert_eq!(
        sha256_digest(&raw_manifest),
        manifest_digest,
        "manifest intact"
    );
    let config = json(&skopeo_layout(layout, &["--config", "--raw"]));
    Written {
        index,
        manifest: json(&raw_manifest),
        config,
    }
}

const FLAGS: [&str; 8] = [
    "--image-label",
    "org.example/over=cli",
    "--image-label",
    "org.example/new=a=b",
    "--image-annotation",
    "org.example/over-note=cli",
    "--image-user",
    "65532:65532",
];

#[test]
fn flags_set_config_and_manifests_over_the_cargo_toml_keys_reproducibly() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = configured_package(tmp.path());

    // Without the flags: the Cargo.toml keys.
    let plain_layout = tmp.path().join("plain");
    let plain = build_into(&pkg, &plain_layout).run().single_ref();
    let written = read_layout(&plain_layout, &plain.digest);
    assert_eq!(written.config["config"]["User"], "1000:1000");
    assert_eq!(
        written.config["config"]["Labels"]["org.example/over"],
        "toml"
    );
    assert_eq!(
        written.index["annotations"]["org.example/over-note"],
        "toml"
    );

    // With them: the flags win entry by entry, the other entries stay.
    let layout = tmp.path().join("flags");
    let flagged = build_into(&pkg, &layout).args(FLAGS).run().single_ref();
    assert_ne!(flagged.digest, plain.digest, "the flags change the image");
    let written = read_layout(&layout, &flagged.digest);
    let config = &written.config["config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["Labels"]["org.example/over"], "cli", "{config}");
    assert_eq!(config["Labels"]["org.example/new"], "a=b", "{config}");
    assert_eq!(config["Labels"]["org.example/keep"], "toml", "{config}");
    assert_eq!(
        config["Labels"]["org.opencontainers.image.title"], "hello-krust",
        "Cargo.toml's own labels stay: {config}"
    );
    for (what, document) in [("index", &written.index), ("manifest", &written.manifest)] {
        let annotations = &document["annotations"];
        assert_eq!(
            annotations["org.example/over-note"], "cli",
            "{what}: {document}"
        );
        assert_eq!(
            annotations["org.example/keep-note"], "toml",
            "{what}: {document}"
        );
    }

    // The same flags, in another order and run again: the same digest.
    let reordered: Vec<&str> = FLAGS.chunks(2).rev().flatten().copied().collect();
    let again = build_on_scratch(&pkg)
        .arg("--no-push")
        .args(&reordered)
        .run()
        .single_ref();
    assert_eq!(again.digest, flagged.digest, "same flags, same digest");
}

#[test]
fn bad_values_are_clean_errors_naming_the_flag_before_anything_is_built() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("target");
    let layout = tmp.path().join("layout");
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--image-label", "novalue"],
            &["--image-label", "`novalue`", "KEY=VALUE"],
        ),
        (
            &["--image-label", "=v"],
            &["--image-label", "`=v`", "non-empty KEY"],
        ),
        (
            &["--image-annotation", "note"],
            &["--image-annotation", "`note`", "KEY=VALUE"],
        ),
        (
            &["--image-user", ""],
            &["--image-user", "must not be empty"],
        ),
        (
            &["--image-user", "  "],
            &["--image-user", "must not be empty"],
        ),
    ];
    for (flags, words) in cases {
        build_on_scratch(&hello_krust())
            .args(["--no-push", "--oci-layout-path"])
            .arg(&layout)
            .args(flags)
            .env("CARGO_TARGET_DIR", &target)
            .run()
            .expect_clean_error(words);
        assert!(!target.exists(), "{flags:?}: nothing built");
        assert!(!layout.exists(), "{flags:?}: nothing written");
    }
}

#[test]
fn tag_only_prints_the_first_tag_for_build_image_refs_and_resolve() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = format!("{}/{}", shared().registry.host(), unique_name("tagonly"));
    let pushing = || {
        krust(["build", "--platform", "linux/amd64", "-t", "v1,v2"])
            .arg(hello_krust())
            .env("KRUST_REPO", &repo)
            .env("KRUST_BASE_IMAGE", &shared().bases.multi_ref)
    };

    let refs_file = tmp.path().join("refs.txt");
    let run = pushing()
        .arg("--tag-only")
        .arg("--image-refs")
        .arg(&refs_file)
        .run();
    run.expect_success();
    let expected = format!("{repo}/hello-krust:v1\n");
    assert_eq!(run.stdout, expected, "{}", run.describe());
    assert_eq!(
        std::fs::read_to_string(&refs_file).expect("refs file"),
        expected,
        "--image-refs gets what stdout got"
    );
    // The tag names the image the digest reference names.
    let by_digest = pushing().run().single_ref();
    assert_eq!(
        sha256_digest(&inspect_raw(expected.trim_end())),
        by_digest.digest
    );

    let yaml = tmp.path().join("pod.yaml");
    std::fs::write(
        &yaml,
        format!(
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: app\n      image: krust://{}\n",
            hello_krust().display()
        ),
    )
    .expect("write pod.yaml");
    let resolved = resolve_on_scratch()
        .args(["--tag-only", "-t", "v3", "-f"])
        .arg(&yaml)
        .run();
    resolved.expect_success();
    assert!(
        resolved
            .stdout
            .contains("      image: krust.local/hello-krust:v3\n"),
        "{}",
        resolved.describe()
    );
    assert!(
        !resolved.stdout.contains("@sha256:"),
        "{}",
        resolved.describe()
    );
}
