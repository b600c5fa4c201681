//! Referrers (issue 12): the SLSA provenance of every platform image,
//! attached as an OCI 1.1 referrer and found with the test's own HTTP
//! calls, the way a policy engine would:
//!
//! - on CNCF distribution 2.8, which has no referrers API, in the index
//!   under the fallback tag `sha256-<hex of the platform manifest digest>`;
//!   a second build uploads nothing and lists nothing twice; an entry
//!   another tool put there stays; a fallback tag holding no index is a
//!   clean error naming it;
//! - on ferro-oci-server, which has the API, from `GET
//!   /v2/<name>/referrers/<digest>`;
//! - in the OCI layout, listed in index.json, identical to the byte from
//!   two copies of the example in two directories;
//! - `--provenance none`: no referrer at all;
//! - a registry refusing the referrers path with a 403 is taken to have no
//!   referrers API.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use support::faults::{Fault, FaultProxy, Rule};
use support::image::json;
use support::krust::{KrustRun, hello_krust, krust};
use support::referrers_registry::ReferrersRegistry;

use support::process::run_ok;
use support::{copy_tree, http, own_registry_with_bases, sha256_digest, tools, unique_name};

const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const SPDX: &str = "application/spdx+json";
const COSIGN_SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `GET path` on `host` accepting `accept`: (status, body).
fn get(host: &str, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let response = http::request(host, "GET", path, &[("Accept", accept)])
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (response.status, response.body)
}

/// A manifest by digest, checked against its digest.
fn manifest(host: &str, repo: &str, digest: &str, accept: &str) -> Value {
    let (status, body) = get(host, &format!("/v2/{repo}/manifests/{digest}"), accept);
    assert_eq!(
        status,
        200,
        "manifest {repo}@{digest}: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(sha256_digest(&body), digest, "manifest {repo}@{digest}");
    json(&body)
}

/// A blob by digest, checked against its digest.
fn blob(host: &str, repo: &str, digest: &str) -> Vec<u8> {
    let (status, body) = get(host, &format!("/v2/{repo}/blobs/{digest}"), "*/*");
    assert_eq!(status, 200, "blob {repo}@{digest}");
    assert_eq!(sha256_digest(&body), digest, "blob {repo}@{digest}");
    body
}

/// `PUT /v2/<repo>/manifests/<reference>` with `body`: the status.
fn put_manifest(host: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(host).expect("connect to the registry");
    let head = format!(
        "PUT /v2/{repo}/manifests/{reference} HTTP/1.0\r\nHost: {host}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the PUT");
    stream.write_all(body).expect("send the body");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in the answer to the PUT: {answer}"))
}

/// The platform manifest digests of the index `digest`.
fn platform_digests(host: &str, repo: &str, digest: &str) -> Vec<String> {
    manifest(host, repo, digest, OCI_INDEX)["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|entry| entry["digest"].as_str().expect("a digest").to_string())
        .collect()
}

/// `sha256-<hex>`: the fallback tag of `digest`.
fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The referrers list of `subject` from the fallback tag (distribution).
fn fallback_referrers(host: &str, repo: &str, subject: &str) -> Vec<Value> {
    let path = format!("/v2/{repo}/manifests/{}", fallback_tag(subject));
    let (status, body) = get(host, &path, OCI_INDEX);
    match status {
        404 => Vec::new(),
        200 => json(&body)["manifests"].as_array().expect("a list").clone(),
        other => panic!("GET {path} answered {other}"),
    }
}

/// The referrers list of `subject` from the referrers API.
fn api_referrers(host: &str, repo: &str, subject: &str) -> Vec<Value> {
    let (status, body) = get(host, &format!("/v2/{repo}/referrers/{subject}"), OCI_INDEX);
    assert_eq!(status, 200, "referrers of {repo}@{subject}");
    let list = json(&body);
    assert_eq!(list["mediaType"], OCI_INDEX, "{list}");
    list["manifests"].as_array().expect("a list").clone()
}

/// Finds the one provenance among `referrers` of `subject`, fetches it and
/// checks it: artifact manifest naming `subject`, DSSE envelope of an
/// in-toto statement whose subject is `subject` in `name`. Returns the
/// envelope's bytes.
fn check_provenance(host: &str, repo: &str, subject: &str, referrers: &[Value]) -> Vec<u8> {
    let found: Vec<&Value> = referrers
        .iter()
        .filter(|entry| entry["artifactType"] == DSSE)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one provenance referrer of {subject}: {referrers:?}"
    );
    let entry = found[0];
    assert_eq!(
        entry["annotations"]["in-toto.io/predicate-type"],
        "https://slsa.dev/provenance/v1"
    );
    let digest = entry["digest"].as_str().expect("digest");
    let artifact = manifest(host, repo, digest, OCI_MANIFEST);
    assert_eq!(artifact["subject"]["digest"], subject, "{artifact}");
    assert_eq!(artifact["artifactType"], DSSE);
    let layer = &artifact["layers"][0];
    let envelope_bytes = blob(host, repo, layer["digest"].as_str().expect("layer digest"));
    check_statement(&envelope_bytes, &format!("{host}/{repo}"), subject);
    envelope_bytes
}

/// Checks that `referrers` of `subject` list its provenance and its SBOM
/// once each, and nothing else; returns the SBOM document.
fn check_artefacts(host: &str, repo: &str, subject: &str, referrers: &[Value]) -> Value {
    check_signed_artefacts(host, repo, subject, referrers, false)
}

/// [`check_artefacts`], and with `signed` one signature of `subject` too
/// (cosign's OCI 1.1 form).
fn check_signed_artefacts(
    host: &str,
    repo: &str,
    subject: &str,
    referrers: &[Value],
    signed: bool,
) -> Value {
    let expected = if signed { 3 } else { 2 };
    assert_eq!(
        referrers.len(),
        expected,
        "provenance, SBOM, signature: {referrers:?}"
    );
    let signatures: Vec<&Value> = referrers
        .iter()
        .filter(|entry| entry["artifactType"] == COSIGN_SIGNATURE)
        .collect();
    assert_eq!(signatures.len(), usize::from(signed), "{referrers:?}");
    for signature in signatures {
        let artifact = manifest(
            host,
            repo,
            signature["digest"].as_str().expect("digest"),
            OCI_MANIFEST,
        );
        assert_eq!(artifact["subject"]["digest"], subject, "{artifact}");
        assert!(
            artifact["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"].is_string(),
            "{artifact}"
        );
    }
    check_provenance(host, repo, subject, referrers);
    let sboms: Vec<&Value> = referrers
        .iter()
        .filter(|entry| entry["artifactType"] == SPDX)
        .collect();
    assert_eq!(
        sboms.len(),
        1,
        "one SBOM referrer of {subject}: {referrers:?}"
    );
    let artifact = manifest(
        host,
        repo,
        sboms[0]["digest"].as_str().expect("digest"),
        OCI_MANIFEST,
    );
    assert_eq!(artifact["subject"]["digest"], subject, "{artifact}");
    let layer = &artifact["layers"][0];
    assert_eq!(layer["mediaType"], SPDX, "{artifact}");
    let sbom = json(&blob(
        host,
        repo,
        layer["digest"].as_str().expect("layer digest"),
    ));
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3", "{sbom}");
    sbom
}

/// Decodes a DSSE envelope and checks its in-toto statement.
fn check_statement(envelope_bytes: &[u8], name: &str, subject: &str) -> Value {
    let envelope = json(envelope_bytes);
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("base64 payload");
    let statement = json(&payload);
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(statement["subject"][0]["name"], name, "{statement}");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        subject.trim_start_matches("sha256:"),
        "{statement}"
    );
    let definition = &statement["predicate"]["buildDefinition"];
    assert_eq!(definition["externalParameters"]["bin"], "hello-krust");
    let text = String::from_utf8_lossy(&payload);
    assert!(
        !text.contains("/work/") && !text.contains("/tmp/"),
        "no absolute path: {text}"
    );
    statement
}

/// hello-krust for amd64 and arm64 pushed to `repo` on `host`.
fn build_two_platforms(host: &str, prefix: &str, base: &str) -> KrustRun {
    tools::require_default_rust_targets();
    krust([
        "build",
        "--base-image",
        base,
        "--platform",
        "linux/amd64,linux/arm64",
    ])
    .env("KRUST_REPO", format!("{host}/{prefix}"))
    .arg(hello_krust())
    .run()
}

#[test]
fn provenance_is_listed_under_the_fallback_tag_on_distribution_once() {
    let (registry, bases) = own_registry_with_bases();
    let host = registry.host();
    let prefix = unique_name("fallback");
    let repo = format!("{prefix}/hello-krust");
    let pushed = build_two_platforms(&host, &prefix, &bases.multi_ref).single_ref();
    let platforms = platform_digests(&host, &repo, &pushed.digest);
    assert_eq!(platforms.len(), 2);
    for platform in &platforms {
        check_provenance(
            &host,
            &repo,
            platform,
            &fallback_referrers(&host, &repo, platform),
        );
    }
    // Referrers first, the index's tag last: a tag naming the index means
    // everything is there.
    let puts: Vec<String> = registry
        .all_requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.uri.starts_with(&format!("/v2/{repo}/manifests/")))
        .map(|r| r.uri)
        .collect();
    let tagged = puts
        .iter()
        .position(|uri| uri.ends_with("/manifests/latest"));
    let listed = puts
        .iter()
        .rposition(|uri| uri.contains("/manifests/sha256-"));
    assert!(
        matches!((listed, tagged), (Some(listed), Some(tagged)) if listed < tagged),
        "{puts:#?}"
    );

    // Unchanged: nothing written, nothing listed twice.
    let mark = registry.mark();
    let again = build_two_platforms(&host, &prefix, &bases.multi_ref).single_ref();
    assert_eq!(again.digest, pushed.digest);
    let writes: Vec<_> = registry
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(writes.is_empty(), "an unchanged rebuild wrote {writes:?}");
    for platform in &platforms {
        check_artefacts(
            &host,
            &repo,
            platform,
            &fallback_referrers(&host, &repo, platform),
        );
    }

    // A machine that has not seen them listed asks the registry, and still
    // writes nothing.
    let records = support::shared_target_dir().join("krust/records/referrers-listed");
    let _ = std::fs::remove_dir_all(&records);
    let mark = registry.mark();
    build_two_platforms(&host, &prefix, &bases.multi_ref).single_ref();
    let requests = registry.requests_since(mark);
    assert!(
        !requests.iter().any(|r| r.is_write()),
        "a rebuild elsewhere wrote {requests:?}"
    );
    for platform in &platforms {
        let tag = format!("/v2/{repo}/manifests/{}", fallback_tag(platform));
        assert!(
            requests.iter().any(|r| r.method == "GET" && r.uri == tag),
            "{tag} was not read: {requests:?}"
        );
    }
}

/// `--provenance none --sbom none` attach nothing; a later build with them adds
/// it to an index that is already tagged, keeps what another tool listed
/// under a fallback tag, and refuses a fallback tag that holds no index.
#[test]
fn fallback_tags_keep_other_entries_and_refuse_what_is_no_index() {
    let (registry, bases) = own_registry_with_bases();
    let host = registry.host();
    let prefix = unique_name("foreign");
    let repo = format!("{prefix}/hello-krust");
    let build = |extra: &[&str]| {
        tools::require_default_rust_targets();
        krust(["build", "--base-image", &bases.multi_ref])
            .args(["--platform", "linux/amd64,linux/arm64"])
            .args(extra)
            .env("KRUST_REPO", format!("{host}/{prefix}"))
            .arg(hello_krust())
            .run()
    };
    let bare = build(&["--provenance", "none", "--sbom", "none"]).single_ref();
    let platforms = platform_digests(&host, &repo, &bare.digest);
    let [amd64, arm64] = [&platforms[0], &platforms[1]];
    for platform in &platforms {
        assert!(
            fallback_referrers(&host, &repo, platform).is_empty(),
            "--provenance none --sbom none listed a referrer of {platform}"
        );
    }

    // Another tool's entry under amd64's tag; an image manifest, no
    // index, under arm64's.
    let arm64_manifest = manifest(&host, &repo, arm64, OCI_MANIFEST);
    let arm64_bytes = serde_json::to_vec(&arm64_manifest).expect("JSON");
    let foreign = json!({
        "mediaType": OCI_MANIFEST,
        "digest": arm64,
        "size": get(&host, &format!("/v2/{repo}/manifests/{arm64}"), OCI_MANIFEST).1.len(),
        "artifactType": "application/x-other-tool",
    });
    let foreign_index =
        json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [foreign] });
    let put = |tag: &str, media_type: &str, body: &[u8]| {
        let status = put_manifest(&host, &repo, tag, media_type, body);
        assert_eq!(status, 201, "PUT {repo}:{tag}");
    };
    put(
        &fallback_tag(amd64),
        OCI_INDEX,
        &serde_json::to_vec(&foreign_index).expect("JSON"),
    );
    put(&fallback_tag(arm64), OCI_MANIFEST, &arm64_bytes);

    let refused = build(&[]);
    refused.expect_clean_error(&[
        "referrers fallback tag",
        &fallback_tag(arm64),
        "delete that tag",
    ]);

    let empty_index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [] });
    put(
        &fallback_tag(arm64),
        OCI_INDEX,
        &serde_json::to_vec(&empty_index).expect("JSON"),
    );
    let pushed = build(&[]).single_ref();
    assert_eq!(
        pushed.digest, bare.digest,
        "provenance is not part of the index"
    );
    let amd64_list = fallback_referrers(&host, &repo, amd64);
    assert_eq!(amd64_list.len(), 3, "{amd64_list:?}");
    assert_eq!(
        amd64_list[0], foreign,
        "the other tool's entry stays as it was"
    );
    check_provenance(&host, &repo, amd64, &amd64_list);
    check_provenance(
        &host,
        &repo,
        arm64,
        &fallback_referrers(&host, &repo, arm64),
    );
}

#[test]
fn sbom_provenance_and_signatures_are_listed_by_the_referrers_api() {
    tools::require_default_rust_targets();
    let registry = ReferrersRegistry::start();
    let host = registry.host();
    // Signed, so that the signatures are listed too.
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, _) = support::certs::p256_key_pair(keys.path(), "api");
    let build = || {
        krust(["build", "--base-image", "scratch"])
            .args(["--platform", "linux/amd64,linux/arm64", "--sign-key"])
            .arg(&key)
            .env("KRUST_REPO", format!("{host}/api"))
            .arg(hello_krust())
            .run()
    };
    let pushed = build().single_ref();
    let repo = "api/hello-krust";
    let platforms = platform_digests(&host, repo, &pushed.digest);
    assert_eq!(platforms.len(), 2);
    for platform in &platforms {
        // The registry lists them itself: no fallback tag was written.
        let (status, _) = get(
            &host,
            &format!("/v2/{repo}/manifests/{}", fallback_tag(platform)),
            OCI_INDEX,
        );
        assert_eq!(
            status, 404,
            "a fallback tag on a registry with the referrers API"
        );
        let listed = api_referrers(&host, repo, platform);
        check_signed_artefacts(&host, repo, platform, &listed, true);
    }

    let writes_before = registry.write_requests();
    assert!(writes_before > 0, "the registry's /metrics counts no write");
    let again = build();
    assert_eq!(again.single_ref().digest, pushed.digest);
    assert!(again.stderr.contains("Unchanged"), "{}", again.describe());
    assert_eq!(
        registry.write_requests(),
        writes_before,
        "an unchanged rebuild wrote to the registry"
    );
    for platform in &platforms {
        let listed = api_referrers(&host, repo, platform);
        check_signed_artefacts(&host, repo, platform, &listed, true);
    }
}

/// The provenance in an OCI layout: listed in index.json, each naming a
/// platform manifest of the image; the same bytes from two copies of the
/// example in two directories.
#[test]
fn two_checkouts_give_the_same_provenance_in_their_layouts() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let envelopes: Vec<Vec<Vec<u8>>> = ["one", "two"]
        .iter()
        .map(|copy| {
            let dir = tmp.path().join(copy);
            copy_tree(&hello_krust(), &dir.join("hello-krust"));
            let layout = dir.join("layout");
            let pushed = krust(["build", "--no-push", "--base-image", "scratch"])
                .args(["--platform", "linux/amd64,linux/arm64"])
                .env("KRUST_REPO", "registry.example/repro")
                .arg("--oci-layout-path")
                .arg(&layout)
                .arg(dir.join("hello-krust"))
                .run()
                .single_ref();
            layout_provenance(&layout, &pushed.digest)
        })
        .collect();
    assert_eq!(envelopes[0].len(), 2);
    assert_eq!(
        envelopes[0], envelopes[1],
        "provenance differs between checkouts"
    );
}

/// The provenance envelopes of the image `index` in `layout`, platform by
/// platform, after checking that skopeo still reads the image by its name.
fn layout_provenance(layout: &Path, index: &str) -> Vec<Vec<u8>> {
    let skopeo = tools::require("skopeo", "skopeo");
    let transport = format!("oci:{}:repro/hello-krust:latest", layout.display());
    let raw = run_ok(
        Command::new(skopeo).args(["inspect", "--raw", &transport]),
        Duration::from_secs(120),
        &format!("skopeo inspect --raw {transport}"),
    )
    .stdout;
    assert_eq!(sha256_digest(&raw), index);
    let read_blob = |digest: &str| {
        let path = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(sha256_digest(&bytes), digest);
        bytes
    };
    let entries = json(&std::fs::read(layout.join("index.json")).expect("index.json"));
    let referrers: Vec<&Value> = entries["manifests"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|entry| entry["artifactType"] == DSSE)
        .collect();
    let platforms: Vec<String> = json(&read_blob(index))["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|entry| entry["digest"].as_str().expect("digest").to_string())
        .collect();
    assert_eq!(referrers.len(), platforms.len(), "{entries}");
    platforms
        .iter()
        .map(|platform| {
            let artifact = referrers
                .iter()
                .map(|entry| json(&read_blob(entry["digest"].as_str().expect("digest"))))
                .find(|artifact| artifact["subject"]["digest"] == platform.as_str())
                .unwrap_or_else(|| panic!("no provenance of {platform} in {entries}"));
            let envelope = read_blob(artifact["layers"][0]["digest"].as_str().expect("digest"));
            check_statement(&envelope, "registry.example/repro/hello-krust", platform);
            envelope
        })
        .collect()
}

/// A registry that refuses the referrers path otherwise than with the
/// specification's 404 (here 403, through a proxy) is taken to have no
/// referrers API: an unchanged rebuild finds the fallback tag and succeeds,
/// writing nothing.
#[test]
fn a_registry_refusing_the_referrers_path_is_asked_for_the_fallback_tag() {
    let (registry, _) = own_registry_with_bases();
    let proxy = FaultProxy::start(
        &registry.host(),
        vec![Rule::new("GET", "/referrers/", Fault::Status(403)).times(usize::MAX)],
    );
    let prefix = unique_name("refusing");
    let pushed = build_two_platforms(&proxy.host(), &prefix, "scratch").single_ref();
    let records = support::shared_target_dir().join("krust/records/referrers-listed");
    let _ = std::fs::remove_dir_all(&records);
    let mark = registry.mark();
    let again = build_two_platforms(&proxy.host(), &prefix, "scratch");
    assert_eq!(
        again.single_ref().digest,
        pushed.digest,
        "{}",
        again.describe()
    );
    assert_eq!(proxy.injected_per_rule(), vec![2], "{:#?}", proxy.events());
    let requests = registry.requests_since(mark);
    assert!(
        !requests.iter().any(|r| r.is_write()),
        "an unchanged rebuild wrote {requests:?}"
    );
}

/// `provenance = "none"` on one bin leaves its images without provenance,
/// while another bin of the same workspace built in the same run keeps its
/// own.
#[test]
fn a_bin_without_provenance_gets_none_beside_one_with_it() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let workspace = tmp.path().join("workspace");
    copy_tree(&support::example("workspace"), &workspace);
    let jobs = workspace.join("jobs/Cargo.toml");
    let manifest = std::fs::read_to_string(&jobs).expect("jobs/Cargo.toml");
    let marked = manifest.replace(
        "[package.metadata.krust.bin.cron]\n",
        "[package.metadata.krust.bin.cron]\nprovenance = \"none\"\n",
    );
    assert_ne!(marked, manifest, "jobs/Cargo.toml has no cron table");
    std::fs::write(&jobs, marked).expect("write jobs/Cargo.toml");
    let layout = tmp.path().join("layout");
    let pushed = krust(["build", "--no-push", "--base-image", "scratch"])
        .args(["--platform", "linux/amd64", "-p", "jobs", "--sbom", "none"])
        .env("KRUST_REPO", "registry.example/mixed")
        .arg("--oci-layout-path")
        .arg(&layout)
        .current_dir(&workspace)
        .run()
        .refs();
    let blob = |digest: &str| {
        json(
            &std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )
            .expect("a blob of the layout"),
        )
    };
    let entries = json(&std::fs::read(layout.join("index.json")).expect("index.json"));
    let provenance_subjects: Vec<String> = entries["manifests"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|entry| entry["artifactType"] == DSSE)
        .map(|entry| {
            let digest = entry["digest"].as_str().expect("digest");
            blob(digest)["subject"]["digest"]
                .as_str()
                .expect("a subject")
                .to_string()
        })
        .collect();
    assert_eq!(pushed.len(), 2, "worker and cron: {pushed:?}");
    for image in &pushed {
        let platform = blob(&image.digest)["manifests"][0]["digest"]
            .as_str()
            .expect("a platform manifest")
            .to_string();
        let listed = provenance_subjects
            .iter()
            .filter(|s| **s == platform)
            .count();
        let wanted = usize::from(!image.repo.ends_with("jobs-cron"));
        assert_eq!(
            listed, wanted,
            "provenance of {} ({platform}) in {entries}",
            image.repo
        );
    }
}
