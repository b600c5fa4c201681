//! SLSA v1 provenance: the in-toto statement of how one platform image was
//! built (builder, build type, the parameters that decide the output, the
//! inputs it was built from), in a DSSE envelope, as a referrer of the
//! platform manifest.
//!
//! The statement holds no wall-clock time, no absolute path and no
//! environment value: two checkouts of the same commit give the same bytes.
//! The facts of the machine are probed once per run and workspace, not per
//! image: the toolchain while cargo builds ([`Toolchain::probe`]), git and
//! Cargo.lock once it is done ([`Environment::probe`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::dsse::{IN_TOTO_PAYLOAD_TYPE, MEDIA_TYPE_DSSE_ENVELOPE, envelope};
use super::sign::Signer;
use crate::assemble::referrer::{Referrer, referrer};
use crate::image_name::ImageName;
use crate::oci::{Blob, canonical_json, digest_hex};
use crate::platform::Platform;
use crate::store::BlobStore;

/// `_type` of an in-toto statement.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of SLSA v1 provenance.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The build type: what `externalParameters` and `resolvedDependencies`
/// mean, documented in the README.
pub const BUILD_TYPE: &str =
    "https://github.com/cargo-krust/cargo-krust/blob/main/README.md#provenance-build-type-v1";
/// The builder: cargo-krust itself (its version is in `builder.version`).
pub const BUILDER_ID: &str = "https://github.com/cargo-krust/cargo-krust";
/// The annotation naming the predicate type of an attestation referrer.
pub const ANNOTATION_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

/// What a workspace is built from, besides its sources: probed once per
/// run and workspace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Environment {
    /// `rustc -vV` of the toolchain that builds the workspace.
    pub toolchain: Option<Toolchain>,
    /// The git commit the workspace is checked out at, if it is in a git
    /// repository and git is installed.
    pub git: Option<GitState>,
    /// The sha256 (hex) of the workspace's Cargo.lock.
    pub lock_sha256: Option<String>,
}

/// The Rust toolchain as `rustc -vV` describes it.
pub use crate::compile::toolchain::RustcVersion as Toolchain;

#[derive(Debug, Clone, PartialEq)]
pub struct GitState {
    pub commit: String,
    /// Uncommitted changes or untracked files (not ignored ones).
    pub dirty: bool,
}

impl Environment {
    /// The environment of the workspace whose manifest is in `dir`, built
    /// with `toolchain`: git and Cargo.lock are read now, after the build,
    /// since cargo may have written Cargo.lock.
    pub fn probe(dir: &Path, toolchain: Option<Toolchain>) -> Result<Environment> {
        let lock_sha256 = match crate::plan::graph::lock_file_of_dir(dir) {
            Some(lock) => {
                let bytes = std::fs::read(&lock)
                    .with_context(|| format!("cannot read {}", lock.display()))?;
                Some(hex::encode(Sha256::digest(&bytes)))
            }
            None => None,
        };
        Ok(Environment {
            toolchain,
            git: git_state(dir),
            lock_sha256,
        })
    }
}

impl Toolchain {
    /// `rustc -vV` run in `dir` (so that rust-toolchain.toml counts; cached
    /// in `records`), or with the rustup toolchain `toolchain` (as
    /// build-std uses).
    pub fn probe(
        dir: &Path,
        toolchain: Option<&str>,
        records: &BlobStore,
    ) -> Result<Option<Toolchain>> {
        let printed = crate::compile::toolchain::version(dir, toolchain, records)
            .context("cannot run `rustc -vV` for the provenance")?;
        Ok(Toolchain::parse(&printed))
    }
}

/// HEAD and the dirty state of the repository holding `dir`; `None` when
/// it is in none, git is missing or HEAD has no commit yet.
fn git_state(dir: &Path) -> Option<GitState> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--verify", "HEAD"])?;
    let status = git(&["status", "--porcelain"])?;
    Some(GitState {
        commit,
        dirty: !status.is_empty(),
    })
}

/// What decides one platform image, for its statement.
pub struct Build<'a> {
    pub image: &'a ImageName,
    pub package: &'a str,
    pub bin: &'a str,
    pub platform: &'a Platform,
    pub profile: &'a str,
    /// Every feature asked for (configured and `--features`), sorted.
    pub features: Vec<String>,
    pub all_features: bool,
    pub no_default_features: bool,
    pub build_std: bool,
    /// The base reference as configured and the digest of its manifest for
    /// this platform; `None` on scratch.
    pub base: Option<(&'a str, &'a str)>,
    /// The arguments after `--`, passed to cargo.
    pub cargo_args: &'a [String],
    pub environment: &'a Environment,
}

/// The in-toto statement of `build`, whose platform manifest is `subject`.
pub fn statement(build: &Build, subject: &Blob) -> Value {
    let mut external = json!({
        "package": build.package,
        "bin": build.bin,
        "platform": build.platform.to_string(),
        "profile": build.profile,
        "features": build.features,
        "allFeatures": build.all_features,
        "noDefaultFeatures": build.no_default_features,
        "baseImage": build.base.map_or("scratch", |(name, _)| name),
        "cargoArgs": redacted(build.cargo_args),
    });
    if let Some(target) = build.platform.rust_target() {
        external["target"] = json!(target);
    }
    if build.build_std {
        external["buildStd"] = json!(true);
    }
    let environment = build.environment;
    let mut resolved = Vec::new();
    if let Some(git) = &environment.git {
        resolved.push(json!({
            "name": "source",
            "digest": { "gitCommit": git.commit },
            "annotations": { "dirty": git.dirty },
        }));
    }
    if let Some(lock) = &environment.lock_sha256 {
        resolved.push(json!({ "name": "Cargo.lock", "digest": { "sha256": lock } }));
    }
    if let Some((name, digest)) = build.base
        && let Some(hex) = digest_hex(digest)
    {
        resolved.push(json!({ "name": name, "digest": { "sha256": hex } }));
    }
    if let Some(toolchain) = &environment.toolchain {
        let mut entry = json!({
            "name": "rustc",
            "annotations": { "version": toolchain.version },
        });
        if let Some(release) = &toolchain.release {
            entry["uri"] = json!(format!("pkg:generic/rustc@{release}"));
        }
        if let Some(hash) = &toolchain.commit_hash {
            entry["digest"] = json!({ "gitCommit": hash });
        }
        if let Some(host) = &toolchain.host {
            entry["annotations"]["host"] = json!(host);
        }
        resolved.push(entry);
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": build.image.to_string(),
            "digest": { "sha256": digest_hex(&subject.digest).unwrap_or_default() },
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": { "cargo-krust": env!("CARGO_PKG_VERSION") },
                },
            },
        },
    })
}

/// The arguments passed on to cargo, without what may be a secret (the
/// value of `--config`, which can set a registry token) or depend on the
/// checkout directory (absolute paths).
fn redacted(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut config_value_next = false;
    for arg in args {
        let redacted = if config_value_next {
            "<redacted>".to_string()
        } else if let Some(flag) = ["--config=", "--config"]
            .into_iter()
            .find(|flag| arg.starts_with(flag) && arg.len() > flag.len())
        {
            format!("{flag}<redacted>")
        } else if arg.starts_with('/') || arg.contains("=/") {
            "<path>".to_string()
        } else {
            arg.clone()
        };
        config_value_next = arg == "--config";
        out.push(redacted);
    }
    out
}

/// The statement in a DSSE envelope (signed when `signer` is given), as a
/// referrer of `subject`; `created` is the build's epoch in RFC 3339.
pub fn attach(
    statement: &Value,
    subject: &Blob,
    created: &str,
    signer: Option<&dyn Signer>,
) -> Result<Referrer> {
    let payload = canonical_json(statement);
    let envelope = envelope(IN_TOTO_PAYLOAD_TYPE, &payload, signer)
        .context("cannot sign the provenance statement")?;
    let annotations = BTreeMap::from([(
        ANNOTATION_PREDICATE_TYPE.to_string(),
        PREDICATE_TYPE.to_string(),
    )]);
    Ok(referrer(
        subject,
        Blob::from_json(MEDIA_TYPE_DSSE_ENVELOPE, &envelope),
        created,
        annotations,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::MEDIA_TYPE_OCI_MANIFEST;

    fn environment() -> Environment {
        Environment {
            toolchain: Toolchain::parse(
                "rustc 1.91.0 (f8297e351 2025-10-28)\nbinary: rustc\ncommit-hash: f8297e351a40c1439a467bbbb6879088047f50b3\ncommit-date: 2025-10-28\nhost: x86_64-unknown-linux-gnu\nrelease: 1.91.0\nLLVM version: 21.1.2\n",
            ),
            git: Some(GitState {
                commit: "a".repeat(40),
                dirty: true,
            }),
            lock_sha256: Some("b".repeat(64)),
        }
    }

    #[test]
    fn the_statement_names_its_subject_parameters_and_inputs() {
        let image = ImageName::parse("127.0.0.1:5000/team/hello").unwrap();
        let platform = Platform::new("linux", "arm64", None);
        let environment = environment();
        let base_digest = format!("sha256:{}", "c".repeat(64));
        let args = vec![
            "--config".to_string(),
            "registries.x.token=\"s3cret\"".to_string(),
            "--config=net.retry=2".into(),
            "--target-dir".into(),
            "/home/me/t".into(),
            "-Zunstable".into(),
        ];
        let build = Build {
            image: &image,
            package: "hello",
            bin: "hello",
            platform: &platform,
            profile: "release",
            features: vec!["prod".into()],
            all_features: false,
            no_default_features: true,
            build_std: false,
            base: Some(("127.0.0.1:5000/base:latest", &base_digest)),
            cargo_args: &args,
            environment: &environment,
        };
        let subject = Blob::from_bytes(MEDIA_TYPE_OCI_MANIFEST, &b"{}"[..]);
        let statement = statement(&build, &subject);
        assert_eq!(statement["_type"], STATEMENT_TYPE);
        assert_eq!(statement["predicateType"], PREDICATE_TYPE);
        assert_eq!(statement["subject"][0]["name"], "127.0.0.1:5000/team/hello");
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"],
            digest_hex(&subject.digest).unwrap()
        );
        let definition = &statement["predicate"]["buildDefinition"];
        let external = &definition["externalParameters"];
        assert_eq!(external["target"], "aarch64-unknown-linux-musl");
        assert_eq!(external["platform"], "linux/arm64");
        assert_eq!(
            external["cargoArgs"],
            json!([
                "--config",
                "<redacted>",
                "--config=<redacted>",
                "--target-dir",
                "<path>",
                "-Zunstable"
            ])
        );
        let text = String::from_utf8(canonical_json(&statement)).unwrap();
        assert!(
            !text.contains("s3cret") && !text.contains("/home/me"),
            "{text}"
        );
        let resolved = definition["resolvedDependencies"].as_array().unwrap();
        let names: Vec<&str> = resolved
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "source",
                "Cargo.lock",
                "127.0.0.1:5000/base:latest",
                "rustc"
            ]
        );
        assert_eq!(resolved[0]["annotations"]["dirty"], true);
        assert_eq!(resolved[2]["digest"]["sha256"], "c".repeat(64));
        assert_eq!(resolved[3]["uri"], "pkg:generic/rustc@1.91.0");
        assert_eq!(
            resolved[3]["digest"]["gitCommit"],
            "f8297e351a40c1439a467bbbb6879088047f50b3"
        );
        assert_eq!(
            statement["predicate"]["runDetails"]["builder"]["id"],
            BUILDER_ID
        );
    }

    #[test]
    fn the_referrer_wraps_the_statement_in_an_envelope() {
        let subject = Blob::from_bytes(MEDIA_TYPE_OCI_MANIFEST, &b"{}"[..]);
        let statement = json!({ "_type": STATEMENT_TYPE });
        let attached = attach(&statement, &subject, "1970-01-01T00:00:00Z", None).unwrap();
        assert_eq!(attached.artifact_type, MEDIA_TYPE_DSSE_ENVELOPE);
        let descriptor = attached.descriptor();
        assert_eq!(
            descriptor["annotations"][ANNOTATION_PREDICATE_TYPE],
            PREDICATE_TYPE
        );
        let envelope: Value = serde_json::from_slice(attached.blobs[1].bytes().unwrap()).unwrap();
        assert_eq!(envelope["payloadType"], IN_TOTO_PAYLOAD_TYPE);
        // Same statement, same bytes.
        let again = attach(&statement, &subject, "1970-01-01T00:00:00Z", None).unwrap();
        assert_eq!(again.manifest.digest, attached.manifest.digest);
    }

    #[test]
    fn probing_a_directory_outside_git_records_no_commit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.lock"), "version = 4\n").unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        let toolchain = Toolchain::probe(dir.path(), None, &store).unwrap();
        let probed = Environment::probe(dir.path(), toolchain).unwrap();
        assert_eq!(probed.git, None);
        assert_eq!(
            probed.lock_sha256.as_deref(),
            digest_hex(&crate::oci::sha256_digest(b"version = 4\n"))
        );
        assert!(
            probed
                .toolchain
                .is_some_and(|t| t.version.starts_with("rustc "))
        );
    }
}
