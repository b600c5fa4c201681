//! The archive outputs, read by skopeo and podman:
//!
//! - a two-platform build written with `--oci-archive` is one OCI index
//!   with both platforms (`oci-archive:FILE` and `oci-archive:FILE:NAME`),
//!   the index the run printed, and `podman load` takes it (the host's
//!   platform); the same run's `--tarball` is a docker-archive of the
//!   host's platform whose config (so its layers' diff_ids) is the OCI
//!   layout's, and whose layers skopeo copies out, digests verified;
//! - a push onto the registry's two-platform base, with both archives in
//!   the same run: the docker-archive holds the base's layers too, and its
//!   config (diff_ids) is the registry's amd64 one;
//! - a workspace run (three images) puts every image in both archives,
//!   each under its name, and `podman load` of the docker-archive loads
//!   all three;
//! - an archive whose directory is missing, or a `--tarball` for images
//!   built without the host's platform, is refused before anything is
//!   built, and nothing is left.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::disk::SmallDisk;
use support::image::json;
use support::krust::{Krust, KrustRun, build_on_scratch, hello_krust, krust};
use support::process::run_ok;
use support::{example, image, sha256_digest, shared, tools};

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// `skopeo inspect ARGS TRANSPORT`'s stdout.
fn skopeo_inspect(args: &[&str], transport: &str) -> Vec<u8> {
    let skopeo = tools::require("skopeo", "skopeo");
    run_ok(
        Command::new(skopeo)
            .arg("inspect")
            .args(args)
            .arg(transport),
        TOOL_TIMEOUT,
        &format!("skopeo inspect {transport}"),
    )
    .stdout
}

/// podman with a containers storage of its own under `dir` (vfs, so that
/// it needs no kernel support), apart from the machine's.
fn podman(dir: &Path, args: &[&str]) -> Vec<u8> {
    let podman = tools::require("podman", "podman");
    run_ok(
        Command::new(podman)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args),
        TOOL_TIMEOUT,
        &format!("podman {}", args.join(" ")),
    )
    .stdout
}

fn at(path: &Path) -> String {
    path.display().to_string()
}

/// Where [`with_outputs`] writes in `dir`: the OCI layout, the OCI
/// archive and the docker-archive.
fn outputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("layout"),
        dir.join("images.oci.tar"),
        dir.join("images.docker.tar"),
    )
}

/// `build` writing an OCI layout and both archives into `dir`.
fn with_outputs(build: Krust, dir: &Path) -> Krust {
    let (layout, oci_archive, tarball) = outputs(dir);
    build
        .arg("--oci-layout-path")
        .arg(layout)
        .arg("--oci-archive")
        .arg(oci_archive)
        .arg("--tarball")
        .arg(tarball)
}

#[test]
fn a_two_platform_build_goes_into_an_oci_archive_and_a_docker_archive() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (layout, oci_archive, tarball) = outputs(tmp.path());
    let build = krust(["build", "--base-image", "scratch", "--no-push"])
        .args(["--platform", "linux/amd64,linux/arm64"])
        .arg(hello_krust());
    let pushed = with_outputs(build, tmp.path()).run().single_ref();

    for transport in [
        format!("oci-archive:{}", at(&oci_archive)),
        format!("oci-archive:{}:hello-krust:latest", at(&oci_archive)),
    ] {
        let raw = skopeo_inspect(&["--raw"], &transport);
        assert_eq!(sha256_digest(&raw), pushed.digest, "{transport}");
        let platforms: Vec<String> = json(&raw)["manifests"]
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
    let podman_dir = tmp.path().join("podman");
    podman(&podman_dir, &["load", "-i", &at(&oci_archive)]);
    let loaded = json(&podman(
        &podman_dir,
        &["image", "inspect", "krust.local/hello-krust:latest"],
    ));
    assert_eq!(loaded[0]["Digest"], pushed.digest.as_str(), "{loaded}");
    assert_eq!(loaded[0]["Architecture"], "amd64", "{loaded}");

    // One platform, the host's: the layout's amd64 config, byte for byte.
    let docker = format!("docker-archive:{}", at(&tarball));
    let config = skopeo_inspect(&["--config", "--raw"], &docker);
    let layout_config = skopeo_inspect(
        &["--config", "--raw", "--override-arch", "amd64"],
        &format!("oci:{}:hello-krust:latest", at(&layout)),
    );
    assert_eq!(json(&config)["architecture"], "amd64");
    let diff_ids = &json(&config)["rootfs"]["diff_ids"];
    assert!(diff_ids.as_array().is_some_and(|ids| !ids.is_empty()));
    assert_eq!(diff_ids, &json(&layout_config)["rootfs"]["diff_ids"]);
    assert_eq!(config, layout_config);
    // Every layer read back, its digest (the diff_id) verified by skopeo.
    assert_eq!(copied_diff_ids(&docker, tmp.path()), *diff_ids);
}

/// The diff_ids of the image at `transport` once skopeo has copied it
/// into an OCI layout under `dir`, every layer read and its digest
/// checked on the way.
fn copied_diff_ids(transport: &str, dir: &Path) -> Value {
    let copied = format!("oci:{}:copied", at(&dir.join("copied")));
    run_ok(
        Command::new(tools::require("skopeo", "skopeo"))
            .arg("copy")
            .arg(transport)
            .arg(&copied),
        TOOL_TIMEOUT,
        &format!("skopeo copy {transport} {copied}"),
    );
    json(&skopeo_inspect(&["--config", "--raw"], &copied))["rootfs"]["diff_ids"].clone()
}

#[test]
fn a_push_onto_a_base_writes_the_base_layers_into_the_archives_too() {
    tools::require_default_rust_targets();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, oci_archive, tarball) = outputs(tmp.path());
    let build = krust(["build"])
        .arg(hello_krust())
        .args(["--base-image", &shared.bases.multi_ref])
        .env("KRUST_REPO", format!("{}/archives", shared.registry.host()));
    let pushed = with_outputs(build, tmp.path()).run().single_ref();

    let index = image::fetch_index(&shared.registry, &pushed);
    let amd64 = index.image("amd64");
    assert!(amd64.layers.len() > 1, "a base layer and the binary's");
    let docker = format!("docker-archive:{}", at(&tarball));
    let config = json(&skopeo_inspect(&["--config", "--raw"], &docker));
    assert_eq!(config, amd64.config);
    assert_eq!(
        copied_diff_ids(&docker, tmp.path()),
        amd64.config["rootfs"]["diff_ids"]
    );
    let raw = skopeo_inspect(&["--raw"], &format!("oci-archive:{}", at(&oci_archive)));
    assert_eq!(sha256_digest(&raw), pushed.digest);
}

#[test]
fn every_image_of_a_workspace_goes_into_both_archives() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (layout, oci_archive, tarball) = outputs(tmp.path());
    let build = build_on_scratch(&example("workspace")).arg("--no-push");
    let run = with_outputs(build, tmp.path()).run();
    let refs = run.refs();
    assert_eq!(refs.len(), 3, "{}", run.describe());

    let podman_dir = tmp.path().join("podman");
    podman(&podman_dir, &["load", "-i", &at(&tarball)]);
    for pushed in &refs {
        let name = format!("{}:latest", pushed.repo);
        let raw = skopeo_inspect(
            &["--raw"],
            &format!("oci-archive:{}:{name}", at(&oci_archive)),
        );
        assert_eq!(sha256_digest(&raw), pushed.digest, "{name}");
        let full_name = format!("{}/{name}", pushed.host);
        let config = skopeo_inspect(
            &["--config", "--raw"],
            &format!("docker-archive:{}:{full_name}", at(&tarball)),
        );
        let layout_config = skopeo_inspect(
            &["--config", "--raw"],
            &format!("oci:{}:{name}", at(&layout)),
        );
        assert_eq!(config, layout_config, "{name}");
        let loaded = json(&podman(&podman_dir, &["image", "inspect", &full_name]));
        assert_eq!(
            loaded[0]["Id"].as_str(),
            sha256_digest(&config).strip_prefix("sha256:"),
            "{full_name}: {loaded}"
        );
    }
}

/// A `--no-push` build of hello-krust (amd64) writing `flag FILE`.
fn hello_into(flag: &str, file: &Path) -> KrustRun {
    build_on_scratch(&hello_krust())
        .arg("--no-push")
        .arg(flag)
        .arg(file)
        .run()
}

/// The names of the entries of `dir`.
fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn an_archive_that_cannot_be_written_is_refused_before_anything_is_built() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("missing").join("images.tar");
    let expect_refused = |run: KrustRun, words: &[&str]| {
        run.expect_clean_error(words);
        assert!(!run.stderr.contains("Building"), "{}", run.describe());
        let left = names_in(tmp.path());
        assert!(left.is_empty(), "{words:?}: left {left:?}");
    };
    for flag in ["--oci-archive", "--tarball"] {
        expect_refused(hello_into(flag, &file), &[&at(&file), flag]);
    }
    // A docker-archive holds one platform: the host's, which these lack.
    let file = tmp.path().join("images.tar");
    let run = krust(["build", "--base-image", "scratch", "--no-push"])
        .args(["--platform", "linux/arm64,linux/arm/v7"])
        .arg(hello_krust())
        .arg("--tarball")
        .arg(&file)
        .run();
    expect_refused(
        run,
        &["--tarball", "linux/arm64, linux/arm/v7", "--platform"],
    );
}

/// An archive that does not fit on its disk (the layer is bigger than the
/// disk): a clean error naming it and the cause, and the disk as it was, an
/// older archive of the same name included, no temporary left.
#[test]
fn an_archive_on_a_full_disk_is_written_whole_or_not_at_all() {
    tools::require_default_rust_targets();
    let disk = SmallDisk::mount("128k");
    let file = disk.mount.join("images.tar");
    std::fs::write(&file, "an older archive").expect("write the older archive");
    for flag in ["--oci-archive", "--tarball"] {
        hello_into(flag, &file).expect_clean_error(&[&at(&file), "no space left"]);
        assert_eq!(names_in(&disk.mount), ["images.tar"], "{flag}");
        assert_eq!(
            std::fs::read_to_string(&file).expect("read the older archive"),
            "an older archive",
            "{flag}"
        );
    }
}
