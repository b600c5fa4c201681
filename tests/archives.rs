//! The archive outputs, read by skopeo:
//!
//! - a two-platform build written with `--oci-archive` is one OCI index
//!   with both platforms (`oci-archive:FILE` and `oci-archive:FILE:NAME`),
//!   the index the run printed;
//! - the same run's `--tarball` is a docker-archive of the host's platform
//!   whose config (and so its layers' diff_ids) is the OCI layout's;
//! - an archive whose directory is missing is refused before anything is
//!   built, and nothing is left.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::krust::{build_on_scratch, hello_krust, krust};
use support::process::run_ok;
use support::{sha256_digest, tools};

/// `skopeo inspect ARGS TRANSPORT`'s stdout.
fn skopeo_inspect(args: &[&str], transport: String) -> Vec<u8> {
    let skopeo = tools::require("skopeo", "skopeo");
    run_ok(
        Command::new(skopeo)
            .arg("inspect")
            .args(args)
            .arg(&transport),
        Duration::from_secs(60),
        &format!("skopeo inspect {transport}"),
    )
    .stdout
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON from skopeo")
}

fn at(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn a_two_platform_build_goes_into_an_oci_archive_and_a_docker_archive() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (layout, oci_archive, tarball) = (
        tmp.path().join("layout"),
        tmp.path().join("images.oci.tar"),
        tmp.path().join("images.docker.tar"),
    );
    let pushed = krust(["build", "--base-image", "scratch", "--no-push"])
        .args(["--platform", "linux/amd64,linux/arm64"])
        .arg(hello_krust())
        .arg("--oci-layout-path")
        .arg(&layout)
        .arg("--oci-archive")
        .arg(&oci_archive)
        .arg("--tarball")
        .arg(&tarball)
        .run()
        .single_ref();

    for transport in [
        format!("oci-archive:{}", at(&oci_archive)),
        format!("oci-archive:{}:hello-krust:latest", at(&oci_archive)),
    ] {
        let raw = skopeo_inspect(&["--raw"], transport.clone());
        assert_eq!(sha256_digest(&raw), pushed.digest, "{transport}");
        let index = json(&raw);
        let platforms: Vec<String> = index["manifests"]
            .as_array()
            .expect("an index")
            .iter()
            .map(|m| format!("{}/{}", m["platform"]["os"], m["platform"]["architecture"]))
            .collect();
        assert_eq!(
            platforms,
            [r#""linux"/"amd64""#, r#""linux"/"arm64""#],
            "{transport}"
        );
    }

    // One platform, the host's: the layout's amd64 config, byte for byte.
    let docker = format!("docker-archive:{}", at(&tarball));
    let config = skopeo_inspect(&["--config", "--raw"], docker.clone());
    let layout_config = skopeo_inspect(
        &["--config", "--raw", "--override-arch", "amd64"],
        format!("oci:{}:hello-krust:latest", at(&layout)),
    );
    assert_eq!(json(&config)["architecture"], "amd64");
    let diff_ids = &json(&config)["rootfs"]["diff_ids"];
    assert!(diff_ids.as_array().is_some_and(|ids| !ids.is_empty()));
    assert_eq!(diff_ids, &json(&layout_config)["rootfs"]["diff_ids"]);
    assert_eq!(config, layout_config);
    // skopeo reads the image whole, layers included, from the archive.
    let inspected = json(&skopeo_inspect(&[], docker));
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(
        inspected["Layers"].as_array().map(Vec::len),
        diff_ids.as_array().map(Vec::len),
        "{inspected}"
    );
}

#[test]
fn an_archive_in_a_missing_directory_is_refused_before_anything_is_built() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    for flag in ["--oci-archive", "--tarball"] {
        let file = tmp.path().join("missing").join("images.tar");
        let run = build_on_scratch(&hello_krust())
            .arg("--no-push")
            .arg(flag)
            .arg(&file)
            .run();
        run.expect_clean_error(&[&at(&file), flag]);
        assert!(!run.stderr.contains("Building"), "{}", run.describe());
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("read tmp")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert!(left.is_empty(), "{flag} left {left:?}");
    }
}
