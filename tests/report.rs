//! `build --report FILE`: the JSON report of a two-platform push onto the
//! multi-platform base validates against `schema/report-v1.json` with a real
//! JSON Schema validator (check-jsonschema), and every digest, size and
//! binary hash in it is what skopeo reads back from the registry, its SBOM
//! and provenance referrers are those listed in the registry. `--report -`
//! and an unwritable FILE are clean errors before anything is built.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::image::{self, PushedImage, tar_entries};
use support::krust::{build_on_scratch, hello_krust, krust};
use support::process::output_with_timeout;
use support::{repo_root, sha256_digest, shared, tools, unique_name};

/// How long the schema validator may take.
const VALIDATOR_TIMEOUT: Duration = Duration::from_secs(120);

/// The install command of the validator (scripts/test runs it).
const VALIDATOR_SETUP: &str = "pip install check-jsonschema";

/// `check-jsonschema` on PATH, or a failure naming how to install it.
fn check_jsonschema() -> PathBuf {
    tools::find_in_path("check-jsonschema").unwrap_or_else(|| {
        panic!(
            "check-jsonschema is not on PATH; it validates the report against its schema.\n\
             Run `{}` (it installs it), or:\n    {VALIDATOR_SETUP}",
            tools::SETUP
        )
    })
}

/// The string at `key` of a report object.
fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("report: no string {key:?} in {value}"))
}

/// The report's entry for the pushed image of `pushed`'s architecture.
fn report_platform<'a>(platforms: &'a [Value], pushed: &PushedImage) -> &'a Value {
    let prefix = format!("{}/{}", pushed.os, pushed.architecture);
    platforms
        .iter()
        .find(|p| text(p, "platform").starts_with(&prefix))
        .unwrap_or_else(|| panic!("report has no {prefix} platform: {platforms:?}"))
}

#[test]
fn report_of_a_two_platform_push_validates_and_matches_the_registry() {
    tools::require_default_rust_targets();
    let validator = check_jsonschema();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let report_path = tmp.path().join("report.json");
    let repo = format!("{}/{}", shared.registry.host(), unique_name("report"));
    let build = |report: &std::path::Path| {
        krust(["build"])
            .arg(hello_krust())
            .args(["--platform", "linux/amd64,linux/arm64", "--report"])
            .arg(report)
            .env("KRUST_BASE_IMAGE", &shared.bases.multi_ref)
            .env("KRUST_REPO", &repo)
            .run()
    };
    let run = build(&report_path);
    let pushed = run.single_ref();

    let schema = repo_root().join("schema").join("report-v1.json");
    let validated = output_with_timeout(
        Command::new(&validator)
            .arg("--schemafile")
            .arg(&schema)
            .arg(&report_path),
        VALIDATOR_TIMEOUT,
    )
    .expect("run check-jsonschema");
    assert!(
        validated.status.success(),
        "the report does not validate against {}:\n{}{}\nreport: {}",
        schema.display(),
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr),
        std::fs::read_to_string(&report_path).unwrap_or_default()
    );

    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).expect("read report"))
        .expect("report is JSON");
    assert_eq!(report["schemaVersion"], 1, "{report}");
    let images = report["images"].as_array().expect("images array");
    assert_eq!(images.len(), 1, "one image: {report}");
    let entry = &images[0];
    assert_eq!(text(entry, "reference"), run.stdout.trim_end());
    assert_eq!(text(entry, "indexDigest"), pushed.digest);
    assert_eq!(
        text(entry, "repository"),
        format!("{}/{}", pushed.host, pushed.repo)
    );
    assert!(
        entry["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&"latest".into())),
        "the default tag is reported: {entry}"
    );

    let index = image::fetch_index(&shared.registry, &pushed);
    let platforms = entry["platforms"].as_array().expect("platforms array");
    assert_eq!(platforms.len(), 2, "{entry}");
    for pushed_image in &index.images {
        let reported = report_platform(platforms, pushed_image);
        assert_eq!(
            text(reported, "manifestDigest"),
            pushed_image.manifest_digest
        );
        assert_eq!(
            reported["configDigest"], pushed_image.manifest["config"]["digest"],
            "config digest of {}",
            pushed_image.architecture
        );
        let layers = reported["layers"].as_array().expect("layers array");
        assert_eq!(layers.len(), pushed_image.layers.len(), "{reported}");
        for (layer, blob) in layers.iter().zip(&pushed_image.layers) {
            assert_eq!(text(layer, "digest"), blob.descriptor.digest);
            assert_eq!(layer["size"], blob.descriptor.size);
            assert_eq!(text(layer, "mediaType"), blob.descriptor.media_type);
        }
        let (app, base) = layers.split_last().expect("an app layer");
        assert!(
            base.iter().all(|l| text(l, "origin") == "base"),
            "the base's layers are reported as such: {reported}"
        );
        assert!(
            ["built", "cache"].contains(&text(app, "origin")),
            "the app layer is built or cached: {app}"
        );
        // A new repository of the registry that holds the base: the base's
        // layers are mounted, the app layer is sent.
        assert!(
            base.iter().all(|l| text(l, "registry") == "mounted"),
            "base layers mounted: {reported}"
        );
        assert_eq!(text(app, "registry"), "uploaded", "{app}");

        // The SBOM and provenance, as listed under the fallback tag of the
        // platform manifest (distribution has no referrers API).
        let listed: Value = serde_json::from_slice(&image::inspect_raw(&format!(
            "{}/{}:{}",
            pushed.host,
            pushed.repo,
            pushed_image.manifest_digest.replacen(':', "-", 1)
        )))
        .expect("the fallback tag holds JSON");
        let referrers = reported["referrers"].as_array().expect("referrers array");
        let mut types: Vec<&str> = referrers.iter().map(|r| text(r, "artifactType")).collect();
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "application/spdx+json",
                "application/vnd.dsse.envelope.v1+json"
            ],
            "{reported}"
        );
        for referrer in referrers {
            let digest = text(referrer, "manifestDigest");
            assert!(
                listed["manifests"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|e| e["digest"] == digest)),
                "{digest} is not listed under the fallback tag: {listed}"
            );
        }
        assert!(
            reported.get("signature").is_none(),
            "not signed: {reported}"
        );

        let app_tar = &pushed_image.layers.last().expect("app layer").tar;
        let binary = tar_entries(app_tar)
            .into_iter()
            .find(|e| e.path == "app/hello-krust")
            .expect("app/hello-krust in the app layer");
        assert_eq!(reported["binary"]["size"], binary.data.len() as u64);
        assert_eq!(
            text(&reported["binary"], "sha256"),
            sha256_digest(&binary.data)
        );
    }

    // The same build again takes its app layers from the local cache.
    let again_path = tmp.path().join("again.json");
    assert_eq!(
        build(&again_path).single_ref(),
        pushed,
        "same build, same image"
    );
    let again: Value = serde_json::from_slice(&std::fs::read(&again_path).expect("read report"))
        .expect("report is JSON");
    for platform in again["images"][0]["platforms"]
        .as_array()
        .expect("platforms")
    {
        let app = platform["layers"].as_array().and_then(|l| l.last());
        assert_eq!(
            app.map(|l| text(l, "origin")),
            Some("cache"),
            "a rebuild reuses the app layer: {platform}"
        );
        let layers = platform["layers"].as_array().expect("layers");
        assert!(
            layers.iter().all(|l| text(l, "registry") == "present"),
            "an unchanged image sends nothing: {platform}"
        );
    }
    for stage in ["plan", "base", "compile", "assemble", "publish"] {
        assert!(
            report["timingsMs"][stage].is_u64(),
            "timing of {stage}: {report}"
        );
    }
}

#[test]
fn report_to_stdout_or_an_unwritable_path_fails_before_the_build() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let build = || build_on_scratch(&hello_krust()).arg("--no-push");

    let failed = build().args(["--report", "-"]).run();
    failed.expect_clean_error(&["--report", "stdout", "name a file"]);
    assert!(!failed.stderr.contains("Building"), "{}", failed.describe());

    let unwritable = tmp.path().join("no-such-dir").join("report.json");
    let failed = build().arg("--report").arg(&unwritable).run();
    failed.expect_clean_error(&["report", &unwritable.display().to_string()]);
    assert!(!failed.stderr.contains("Building"), "{}", failed.describe());

    let failed = build().arg("--report").arg(tmp.path()).run();
    failed.expect_clean_error(&["report", "is a directory"]);
    assert!(!failed.stderr.contains("Building"), "{}", failed.describe());
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("read tmp").count(),
        0,
        "nothing left behind"
    );
}
