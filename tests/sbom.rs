//! SBOMs, seen through `--sbom-dir`: the example under
//! `tests/fixtures/sbom` (a crates.io crate, path crates, a windows-only
//! crate, an optional crate behind the `extra` feature and a build
//! dependency) built for linux/amd64 and linux/arm64. The SPDX documents
//! pass `pyspdxtools` (PyPI `spdx-tools`), the CycloneDX ones the CycloneDX
//! 1.6 schema (PyPI `cyclonedx-python-lib`); each lists exactly what its
//! platform's build used and names the pushed image and base manifests;
//! two copies of the example in two directories give the same bytes; bad
//! `--sbom-dir` use is a clean error that leaves nothing behind.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::image::fetch_index;
use support::krust::{build_on_scratch, krust};
use support::process::output_with_timeout;
use support::{copy_tree, repo_root, shared, tools, unique_name};

/// How long one validator run may take.
const VALIDATOR_TIMEOUT: Duration = Duration::from_secs(120);

/// The install command of the validators (scripts/test runs it).
const VALIDATOR_SETUP: &str = "pip install spdx-tools 'cyclonedx-python-lib[json-validation]'";

/// Validates a CycloneDX 1.6 JSON file (argv[1]) against the schema that
/// cyclonedx-python-lib ships; prints the first error.
const CYCLONEDX_CHECK: &str = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
with open(sys.argv[1]) as document:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.read())
if error is not None:
    print(getattr(error.data, "message", error))
    sys.exit(1)
"#;

/// A copy of the example crate in a directory of its own.
fn example_copy(parent: &Path) -> PathBuf {
    let dir = parent.join("krust-sbom");
    copy_tree(&repo_root().join("tests/fixtures/sbom"), &dir);
    dir
}

fn setup_hint(tool: &str) -> String {
    format!(
        "{tool} validates the SBOMs; run `{}` (it installs it), or:\n    {VALIDATOR_SETUP}",
        tools::SETUP
    )
}

/// Runs a validator, failing the test with its output unless it accepts.
fn validate(mut command: Command, what: &str, file: &Path) {
    let output = output_with_timeout(command.arg(file), VALIDATOR_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}\n{}", setup_hint(what)));
    assert!(
        output.status.success(),
        "{what} rejects {}:\n{}{}\n{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

fn validate_spdx(file: &Path) {
    let pyspdxtools = tools::find_in_path("pyspdxtools")
        .unwrap_or_else(|| panic!("pyspdxtools is not on PATH.\n{}", setup_hint("pyspdxtools")));
    let mut command = Command::new(pyspdxtools);
    command.arg("-i");
    validate(command, "pyspdxtools", file);
}

fn validate_cyclonedx(file: &Path) {
    // The python of the virtualenv pyspdxtools came with, else python3.
    let python = tools::find_in_path("pyspdxtools")
        .and_then(|tool| Some(tool.parent()?.join("python3")))
        .filter(|python| python.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"));
    let probe = Command::new(&python)
        .args(["-c", "import cyclonedx.validation.json"])
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "{} cannot import cyclonedx-python-lib.\n{}",
        python.display(),
        setup_hint("cyclonedx-python-lib")
    );
    let mut command = Command::new(python);
    command.args(["-c", CYCLONEDX_CHECK]);
    validate(command, "cyclonedx-python-lib", file);
}

fn read_json(file: &Path) -> Value {
    let text = std::fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{} is no JSON: {e}", file.display()))
}

/// The entries of `document[list]` named `name`.
fn named<'a>(document: &'a Value, list: &str, name: &str) -> Vec<&'a Value> {
    document[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {document}"))
        .iter()
        .filter(|entry| entry["name"] == name)
        .collect()
}

fn one<'a>(document: &'a Value, list: &str, name: &str) -> &'a Value {
    let found = named(document, list, name);
    assert_eq!(found.len(), 1, "one {name} in {list}: {document:#}");
    found[0]
}

/// `(from-name, type, to-name)` of every SPDX relationship.
fn relationships(document: &Value) -> Vec<(String, String, String)> {
    let name_of = |id: &Value| {
        document["packages"]
            .as_array()
            .and_then(|packages| packages.iter().find(|p| &p["SPDXID"] == id))
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| id.as_str().unwrap_or_default().to_string())
    };
    document["relationships"]
        .as_array()
        .expect("relationships")
        .iter()
        .map(|r| {
            (
                name_of(&r["spdxElementId"]),
                r["relationshipType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name_of(&r["relatedSpdxElement"]),
            )
        })
        .collect()
}

fn has(relations: &[(String, String, String)], from: &str, kind: &str, to: &str) -> bool {
    relations
        .iter()
        .any(|(f, k, t)| f == from && k == kind && t == to)
}

#[test]
fn spdx_of_each_linux_platform_validates_and_lists_what_its_build_used() {
    tools::require_default_rust_targets();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let example = example_copy(tmp.path());
    let sboms = tmp.path().join("sboms");
    let repo = format!("{}/{}", shared.registry.host(), unique_name("sbom"));
    let run = krust([
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "--sbom-dir",
    ])
    .arg(&sboms)
    .arg(&example)
    .env("KRUST_BASE_IMAGE", &shared.bases.multi_ref)
    .env("KRUST_REPO", &repo)
    .run();
    let pushed = fetch_index(&shared.registry, &run.single_ref());
    let mut names: Vec<String> = std::fs::read_dir(&sboms)
        .expect("the SBOM dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "krust-sbom-linux-amd64.spdx.json",
            "krust-sbom-linux-arm64.spdx.json"
        ]
    );

    for (arch, triple) in [
        ("amd64", "x86_64-unknown-linux-musl"),
        ("arm64", "aarch64-unknown-linux-musl"),
    ] {
        let file = sboms.join(format!("krust-sbom-linux-{arch}.spdx.json"));
        validate_spdx(&file);
        let document = read_json(&file);
        assert_eq!(document["spdxVersion"], "SPDX-2.3");
        assert_eq!(document["creationInfo"]["created"], "1970-01-01T00:00:00Z");

        // The image it describes is the pushed one, on the base it names.
        let image_name = format!("{repo}/krust-sbom");
        let image = one(&document, "packages", &image_name);
        let manifest_digest = &pushed.image(arch).manifest_digest;
        assert_eq!(&image["versionInfo"], manifest_digest);
        let base_repo = format!("{}/base", shared.registry.host());
        let base = one(&document, "packages", &base_repo);
        let base_digest = &shared.bases.multi_for(arch).manifest.digest;
        assert_eq!(&base["versionInfo"], base_digest);
        let base_purl = base["externalRefs"][0]["referenceLocator"]
            .as_str()
            .expect("base purl");
        assert!(
            base_purl.starts_with(&format!(
                "pkg:oci/base@{}?arch={arch}&repository_url={base_repo}",
                base_digest.replace(':', "%3A")
            )),
            "{base_purl}"
        );
        assert!(
            base["comment"]
                .as_str()
                .unwrap_or_default()
                .contains(&shared.bases.multi_index_digest),
            "the base's index digest: {base}"
        );

        // What the build of that triple used, and nothing else.
        let cfg_if = one(&document, "packages", "cfg-if");
        assert_eq!(
            cfg_if["externalRefs"][0]["referenceLocator"],
            format!(
                "pkg:cargo/cfg-if@{}",
                cfg_if["versionInfo"].as_str().unwrap()
            )
        );
        assert_eq!(cfg_if["checksums"][0]["algorithm"], "SHA256");
        let lock = std::fs::read_to_string(example.join("Cargo.lock")).expect("Cargo.lock");
        let checksum = cfg_if["checksums"][0]["checksumValue"].as_str().unwrap();
        assert!(lock.contains(checksum), "Cargo.lock's checksum {checksum}");
        let runtime = one(&document, "packages", "sbom-runtime");
        assert_eq!(runtime["licenseDeclared"], "MIT OR Apache-2.0");
        assert_eq!(runtime["downloadLocation"], "NOASSERTION");
        assert!(
            runtime["externalRefs"].is_null(),
            "a path crate has no purl"
        );
        assert!(
            runtime["comment"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("runtime: compiled for {triple}")),
            "{runtime}"
        );
        let build = one(&document, "packages", "sbom-build");
        assert_eq!(build["licenseDeclared"], "NOASSERTION", "Made-Up-License");
        assert!(
            build["comment"]
                .as_str()
                .unwrap_or_default()
                .contains("build-time"),
            "{build}"
        );
        assert!(
            named(&document, "packages", "sbom-windows").is_empty(),
            "a windows-only crate in the linux/{arch} SBOM"
        );
        assert!(
            named(&document, "packages", "sbom-optional").is_empty(),
            "the optional crate without its feature"
        );
        assert_eq!(
            one(&document, "packages", "rustc")["primaryPackagePurpose"],
            "APPLICATION"
        );

        let relations = relationships(&document);
        assert!(has(
            &relations,
            "SPDXRef-DOCUMENT",
            "DESCRIBES",
            &image_name
        ));
        assert!(has(&relations, &image_name, "CONTAINS", "krust-sbom"));
        assert!(has(&relations, &image_name, "DESCENDANT_OF", &base_repo));
        assert!(has(&relations, "krust-sbom", "DEPENDS_ON", "cfg-if"));
        assert!(has(&relations, "krust-sbom", "DEPENDS_ON", "sbom-runtime"));
        assert!(has(
            &relations,
            "sbom-build",
            "BUILD_DEPENDENCY_OF",
            "krust-sbom"
        ));
        assert!(has(&relations, "rustc", "BUILD_TOOL_OF", "krust-sbom"));
    }
}

#[test]
fn cyclonedx_with_the_feature_on_validates_and_lists_the_optional_crate() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    // The feature from the command line, then from the `features` key.
    let example = example_copy(&tmp.path().join("flag"));
    let sboms = tmp.path().join("flag/sboms");
    let cyclonedx = ["--no-push", "--sbom", "cyclonedx", "--sbom-dir"];
    build_on_scratch(&example)
        .args(["--features", "extra"])
        .args(cyclonedx)
        .arg(&sboms)
        .run()
        .single_ref();
    let configured = example_copy(&tmp.path().join("key"));
    let manifest = configured.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
    text.push_str("\n[package.metadata.krust]\nfeatures = [\"extra\"]\n");
    std::fs::write(&manifest, text).expect("write Cargo.toml");
    let key_sboms = tmp.path().join("key/sboms");
    build_on_scratch(&configured)
        .args(cyclonedx)
        .arg(&key_sboms)
        .run()
        .single_ref();
    let from_key = read_json(&key_sboms.join("krust-sbom-linux-amd64.cdx.json"));
    one(&from_key, "components", "sbom-optional");

    let file = sboms.join("krust-sbom-linux-amd64.cdx.json");
    validate_cyclonedx(&file);
    let document = read_json(&file);
    assert_eq!(document["specVersion"], "1.6");
    let optional = one(&document, "components", "sbom-optional");
    assert_eq!(optional["scope"], "required");
    assert_eq!(optional["licenses"][0]["expression"], "MIT");
    assert_eq!(
        one(&document, "components", "sbom-build")["scope"],
        "excluded"
    );
    assert!(named(&document, "components", "sbom-windows").is_empty());
    let root = one(&document, "components", "krust-sbom");
    let uses = document["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .find(|d| d["ref"] == root["bom-ref"])
        .expect("the bin's dependencies")["dependsOn"]
        .clone();
    assert!(
        uses.as_array()
            .is_some_and(|uses| uses.contains(&optional["bom-ref"])),
        "{uses}"
    );
    // On scratch there is no base image to list.
    assert!(
        document["components"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c["type"] != "container")),
        "{document:#}"
    );
}

#[test]
fn two_copies_in_two_directories_give_the_same_sbom_bytes() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let sbom_of = |copy: &str| {
        let example = example_copy(&tmp.path().join(copy));
        let sboms = tmp.path().join(copy).join("sboms");
        build_on_scratch(&example)
            .args(["--no-push", "--sbom-dir"])
            .arg(&sboms)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .run()
            .single_ref();
        std::fs::read(sboms.join("krust-sbom-linux-amd64.spdx.json")).expect("the SBOM")
    };
    let first = sbom_of("one");
    let second = sbom_of("two");
    assert!(first == second, "the SBOMs of two checkouts differ");
    let document: Value = serde_json::from_slice(&first).expect("JSON");
    assert_eq!(document["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let text = String::from_utf8_lossy(&first);
    assert!(!text.contains(&tmp.path().display().to_string()), "{text}");
}

#[test]
fn sbom_dir_without_an_sbom_or_onto_a_file_is_refused_before_building() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let example = example_copy(tmp.path());
    let sboms = tmp.path().join("sboms");
    let none = build_on_scratch(&example)
        .args(["--no-push", "--sbom", "none", "--sbom-dir"])
        .arg(&sboms)
        .run();
    none.expect_clean_error(&["--sbom-dir", "--sbom none", "no image gets an sbom"]);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"keep").expect("write");
    let onto_file = build_on_scratch(&example)
        .args(["--no-push", "--sbom-dir"])
        .arg(&file)
        .run();
    onto_file.expect_clean_error(&["--sbom-dir", "a-file", "not a directory"]);
    assert!(
        !onto_file.stderr.contains("Compiling"),
        "refused before building:\n{}",
        onto_file.describe()
    );
    assert_eq!(std::fs::read(&file).expect("read"), b"keep");
    for command in ["dockerfile", "run"] {
        krust([command, "--base-image", "scratch", "--sbom-dir"])
            .arg(&sboms)
            .arg(&example)
            .run()
            .expect_clean_error(&["--sbom-dir", command]);
    }
    assert!(!sboms.exists());
}

#[test]
fn a_failed_push_writes_no_sbom() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let example = example_copy(tmp.path());
    let sboms = tmp.path().join("new/sboms");
    // Nothing listens on port 9 of loopback: the push fails after the build.
    let run = build_on_scratch(&example)
        .args(["--registry-timeout", "5", "--sbom-dir"])
        .arg(&sboms)
        .env("KRUST_REPO", "127.0.0.1:9/sbom")
        .run();
    run.expect_clean_error(&["127.0.0.1:9"]);
    assert!(!tmp.path().join("new").exists(), "{}", run.describe());
}

/// A git repository holding the crate `sbom-git`, committed at a fixed date;
/// returns its directory and commit.
fn git_crate(dir: &Path) -> (PathBuf, String) {
    let git = tools::require("git", "git");
    let repo = dir.join("sbom-git");
    std::fs::create_dir_all(repo.join("src")).expect("create the git crate");
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"sbom-git\"\nversion = \"0.2.0\"\nedition = \"2021\"\nlicense = \"MIT\"\n",
    )
    .expect("write Cargo.toml");
    std::fs::write(repo.join("src/lib.rs"), "pub const NAME: &str = \"git\";\n")
        .expect("write lib.rs");
    let run = |args: &[&str]| {
        let output = Command::new(&git)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
            .output()
            .expect("run git");
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    run(&["init", "-q"]);
    run(&["add", "-A"]);
    run(&["commit", "-q", "-m", "sbom-git"]);
    let commit = run(&["rev-parse", "HEAD"]);
    (repo, commit)
}

#[test]
fn a_git_dependency_is_named_by_its_commit_in_both_formats() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (repo, commit) = git_crate(tmp.path());
    let example = example_copy(tmp.path());
    let manifest = example.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
    let dependency = format!(
        "[dependencies]\nsbom-git = {{ git = \"file://{}\" }}\n",
        repo.display()
    );
    std::fs::write(&manifest, text.replacen("[dependencies]\n", &dependency, 1))
        .expect("write Cargo.toml");
    let purl = format!(
        "pkg:cargo/sbom-git@0.2.0?vcs_url=git%2Bfile://{}%40{commit}",
        repo.display()
    );
    let sboms = tmp.path().join("sboms");
    for format in ["spdx", "cyclonedx"] {
        build_on_scratch(&example)
            .args(["--no-push", "--sbom", format, "--sbom-dir"])
            .arg(&sboms)
            .run()
            .single_ref();
    }

    let spdx = sboms.join("krust-sbom-linux-amd64.spdx.json");
    validate_spdx(&spdx);
    let spdx = read_json(&spdx);
    let package = one(&spdx, "packages", "sbom-git");
    assert_eq!(package["externalRefs"][0]["referenceLocator"], purl);
    // SPDX takes no file:// download location.
    assert_eq!(package["downloadLocation"], "NOASSERTION");
    assert_eq!(package["licenseDeclared"], "MIT");

    let cyclonedx = sboms.join("krust-sbom-linux-amd64.cdx.json");
    validate_cyclonedx(&cyclonedx);
    let cyclonedx = read_json(&cyclonedx);
    assert_eq!(one(&cyclonedx, "components", "sbom-git")["purl"], purl);
}
