//! A hostile registry, end to end: the real `cargo-krust` against a registry
//! that lies, stalls, truncates and hands out odd tokens (the rogue registry
//! of `support::rogue`), against credential helpers that hang or fail, and a
//! base with Docker media types on the real registry.
//!
//! Every failure must be clean: an exit code from 1 to 99, nothing on
//! stdout, one `error:` line naming the culprit, and within about one
//! registry timeout (see [`within_budget`]).
//! The base is resolved before anything is compiled, so most cases fail
//! before cargo runs; those that need the binary (per-platform documents,
//! downloads, uploads) find hello-krust compiled in the shared target dir.

mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::image;
use support::krust::{Krust, KrustRun, build_on_scratch, hello_krust, krust};
use support::rogue::{Answer, Auth, Delivery, Rogue, RogueBase, Served, ServedBase};
use support::{shared, tools, unique_name};

/// The `--registry-timeout` of runs that are not about hangs: long enough
/// never to fire on a loaded machine, short enough to bound a failure.
const TIMEOUT: u64 = 10;

/// What a failing run may take besides registry time: start-up, `cargo
/// metadata`, a no-op cargo build, on a loaded machine.
const STARTUP: Duration = Duration::from_secs(6);

/// How long a run with a registry timeout of `seconds` may take to fail:
/// one budget and a half (the operation that ran out of it, and what
/// overlapped it), never one budget per operation, plus [`STARTUP`].
fn within_budget(seconds: u64) -> Duration {
    Duration::from_secs(seconds).mul_f64(1.5) + STARTUP
}

/// hello-krust for linux/amd64 on `base`, nothing pushed.
fn build_on(base: &str) -> Krust {
    tools::require_default_rust_targets();
    krust(["build", "--no-push", "--platform", "linux/amd64"])
        .arg(hello_krust())
        .args(["--base-image", base])
        .env("KRUST_REGISTRY_TIMEOUT", TIMEOUT.to_string())
}

/// hello-krust compiled once for linux/amd64 (on scratch), so that timed
/// runs that reach the compile step find nothing to do.
fn warm_up() {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        tools::require_default_rust_targets();
        build_on_scratch(&hello_krust())
            .arg("--no-push")
            .run()
            .expect_success();
    });
}

/// Runs `krust` and says how long it took.
fn timed(krust: Krust) -> (KrustRun, Duration) {
    let started = Instant::now();
    let run = krust.run();
    (run, started.elapsed())
}

/// A clean failure within `bound`: exit code 1–99, empty stdout, no panic,
/// and an `error:` line holding every word of `words`, which it returns.
fn fails_within(krust: Krust, bound: Duration, words: &[&str]) -> String {
    let (run, took) = timed(krust);
    run.expect_clean_error(&["error:"]);
    let code = run.status.code().unwrap_or_default();
    assert!(
        (1..=99).contains(&code),
        "exit code {code} is not 1–99:\n{}",
        run.describe()
    );
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "not one error line:\n{}", run.describe());
    let line = errors[0].to_string();
    let lower = line.to_lowercase();
    for word in words {
        assert!(
            lower.contains(&word.to_lowercase()),
            "the error line does not name {word:?}:\n{}",
            run.describe()
        );
    }
    assert!(
        took <= bound,
        "the failure took {took:?}, more than {bound:?}:\n{}",
        run.describe()
    );
    // Shown with --nocapture, to read the messages.
    println!("{took:.1?}: {line}");
    line
}

/// [`fails_within`] for a run given `seconds` of registry timeout (through
/// `KRUST_REGISTRY_TIMEOUT`): it must give up within about that time.
fn gives_up(krust: Krust, seconds: u64, words: &[&str]) -> String {
    fails_within(
        krust.env("KRUST_REGISTRY_TIMEOUT", seconds.to_string()),
        within_budget(seconds),
        words,
    )
}

/// [`fails_within`] for runs whose registry timeout is [`TIMEOUT`].
fn fails(krust: Krust, words: &[&str]) -> String {
    fails_within(krust, within_budget(TIMEOUT), words)
}

/// A rogue registry serving a good [`RogueBase`] as `base:latest`, with the
/// manifest and index edited first.
fn rogue_base(
    edit_base: impl FnOnce(&mut RogueBase),
    edit_manifest: impl FnOnce(&mut Value),
    edit_index: impl FnOnce(&mut Value),
) -> (Rogue, ServedBase, String) {
    let rogue = Rogue::start();
    let mut base = RogueBase::amd64();
    edit_base(&mut base);
    let served = base.serve(&rogue, "base", "latest", edit_manifest, edit_index);
    let reference = format!("{}/base:latest", rogue.host());
    (rogue, served, reference)
}

/// No request the registry received left `/v2/` or held `..`.
fn assert_no_traversal(rogue: &Rogue) {
    for request in rogue.requests() {
        let path = request.path();
        assert!(
            (path.starts_with("/v2/") || path == "/token")
                && !path.contains("..")
                && !path.contains("etc/passwd")
                && !path.contains("%2e%2e")
                && !path.contains("%2E%2E"),
            "a request left the registry's API: {} {}",
            request.method,
            request.target
        );
    }
}

// ------------------------------------------------------------ the baseline

/// The rogue registry's base is a good one when nothing is changed: the
/// build succeeds, so every failure below is the fault injected.
#[test]
fn a_well_behaved_rogue_base_builds() {
    let (rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    let run = build_on(&reference).run();
    run.single_ref();
    assert!(
        rogue
            .requests()
            .iter()
            .any(|r| r.path().ends_with(&served.config.digest)),
        "the config was never fetched"
    );
}

// ------------------------------------------------------ unchecked digests

const TRAVERSAL: &str = "sha256:../../../../etc/passwd";

/// A JSON edit of a document.
type Edit = fn(&mut Value);

/// A digest that would climb out of the API path, in an index entry, as a
/// config or as a layer (which an OCI layout downloads), is refused before
/// any request is made with it.
#[test]
fn path_traversal_digests_are_never_requested() {
    let cases: [(Edit, Edit); 3] = [
        (
            |_| {},
            |index| index["manifests"][0]["digest"] = json!(TRAVERSAL),
        ),
        (
            |manifest| manifest["config"]["digest"] = json!(TRAVERSAL),
            |_| {},
        ),
        (
            |manifest| manifest["layers"][0]["digest"] = json!("sha256:../../x/blobs/sha256:0"),
            |_| {},
        ),
    ];
    warm_up();
    for (edit_manifest, edit_index) in cases {
        let (rogue, _, reference) = rogue_base(|_| {}, edit_manifest, edit_index);
        let layout = tempfile::tempdir().expect("layout dir");
        fails(
            build_on(&reference)
                .arg("--oci-layout-path")
                .arg(layout.path()),
            &[&reference, "digest"],
        );
        assert_no_traversal(&rogue);
    }
}

/// A `Docker-Content-Digest` header that is no digest is not used as one.
#[test]
fn path_traversal_in_docker_content_digest() {
    let (rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    let index = &served.index;
    // HEAD of the tag answers with a lie; GET of the tag stays true.
    rogue.route(
        "HEAD",
        "/v2/base/manifests/latest",
        Answer::status(200)
            .header("Content-Type", &index.media_type)
            .header("Docker-Content-Digest", TRAVERSAL),
    );
    fails(
        build_on(&reference),
        &[&rogue.host(), "Docker-Content-Digest"],
    );
    assert_no_traversal(&rogue);
}

/// Descriptors whose size or media type has the wrong type, or whose digest
/// is not `sha256:` and 64 hex digits, are errors naming the base.
#[test]
fn malformed_descriptors_in_the_index() {
    let cases: [(&str, Value, &str); 5] = [
        ("size", json!(-1), "size"),
        ("size", json!("123"), "size"),
        ("size", json!(1.5), "size"),
        ("mediaType", json!(7), "mediatype"),
        ("digest", json!("sha256:abc"), "digest"),
    ];
    for (field, value, word) in cases {
        let (_rogue, _, reference) = rogue_base(
            |_| {},
            |_| {},
            |index| index["manifests"][0][field] = value.clone(),
        );
        fails(build_on(&reference), &[&reference, word]);
    }
}

// ---------------------------------------------- documents that lie or break

/// A manifest whose bytes do not hash to the digest it was asked by.
#[test]
fn manifest_bytes_that_do_not_match_their_digest() {
    let (rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    rogue.route(
        "GET",
        &format!("/v2/base/manifests/{}", served.manifest.digest),
        Answer::bytes(
            200,
            &served.manifest.media_type,
            json!({"schemaVersion": 2, "mediaType": served.manifest.media_type,
                   "config": served.config.to_json(), "layers": []})
            .to_string(),
        ),
    );
    warm_up();
    fails(build_on(&reference), &[&reference, "digest"]);
}

/// A tag whose `Docker-Content-Digest` names another document.
#[test]
fn docker_content_digest_that_names_another_document() {
    let (rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    rogue.route(
        "HEAD",
        "/v2/base/manifests/latest",
        Answer::status(200)
            .header("Content-Type", &served.index.media_type)
            .header("Docker-Content-Digest", &served.manifest.digest),
    );
    // The index's bytes answer the GET of the manifest's digest.
    rogue.route(
        "GET",
        &format!("/v2/base/manifests/{}", served.manifest.digest),
        Answer::bytes(200, &served.index.media_type, index_bytes(&rogue, &served)),
    );
    fails(build_on(&reference), &[&reference, "digest"]);
}

/// The bytes the rogue registry serves for the index of `served`.
fn index_bytes(rogue: &Rogue, served: &ServedBase) -> Vec<u8> {
    fetched(
        rogue,
        &format!("/v2/base/manifests/{}", served.index.digest),
    )
}

/// What the rogue registry serves at `path` (as set up, before any fault).
fn fetched(rogue: &Rogue, path: &str) -> Vec<u8> {
    support::http::get(&rogue.host(), path)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .body
}

/// Serves what `path` served, as `content_type`, delivered as `delivery`
/// says given the length of the bytes.
fn redeliver(rogue: &Rogue, path: &str, content_type: &str, delivery: fn(usize) -> Delivery) {
    let bytes = fetched(rogue, path);
    let delivery = delivery(bytes.len());
    rogue.route(
        "GET",
        path,
        Answer::bytes(200, content_type, bytes).delivered(delivery),
    );
}

/// A rogue base whose blob `pick` names is delivered as `delivery` says.
fn base_with_blob(
    pick: fn(&ServedBase) -> &Served,
    delivery: fn(usize) -> Delivery,
) -> (Rogue, ServedBase, String) {
    let (rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    let path = blob_path(&pick(&served).digest);
    redeliver(&rogue, &path, "application/octet-stream", delivery);
    (rogue, served, reference)
}

/// The path of a blob of the rogue base.
fn blob_path(digest: &str) -> String {
    format!("/v2/base/blobs/{digest}")
}

/// A config whose bytes do not hash to their digest.
#[test]
fn config_bytes_that_do_not_match_their_digest() {
    let (rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    let mut other = RogueBase::amd64().config;
    other["os"] = json!("linux ");
    rogue.route(
        "GET",
        &blob_path(&served.config.digest),
        Answer::json(&other),
    );
    warm_up();
    fails(build_on(&reference), &[&served.config.digest]);
}

/// A config cut short: the registry announces more bytes than it sends.
#[test]
fn truncated_config() {
    let (_rogue, served, reference) =
        base_with_blob(|s| &s.config, |len| Delivery::Truncated { sent: len / 2 });
    warm_up();
    fails(build_on(&reference), &[&served.config.digest]);
}

/// A config whose length is not the size its descriptor says.
#[test]
fn config_of_another_size_than_its_descriptor() {
    let (_rogue, served, reference) = rogue_base(
        |_| {},
        |manifest| {
            let size = manifest["config"]["size"].as_u64().expect("config size");
            manifest["config"]["size"] = json!(size + 10);
        },
        |_| {},
    );
    warm_up();
    fails(build_on(&reference), &[&served.config.digest, "size"]);
}

/// A layer download cut short (for an OCI layout) is an error naming the
/// layer, and nothing half-written is kept as the layer.
#[test]
fn truncated_layer_download() {
    let (_rogue, served, reference) =
        base_with_blob(|s| &s.layer, |len| Delivery::Truncated { sent: len - 10 });
    warm_up();
    let layout = tempfile::tempdir().expect("layout dir");
    fails(
        build_on(&reference)
            .arg("--oci-layout-path")
            .arg(layout.path()),
        &[&served.layer.digest],
    );
    let hex = served.layer.digest.trim_start_matches("sha256:");
    assert!(
        !layout.path().join("blobs/sha256").join(hex).exists(),
        "a truncated layer was written into the layout"
    );
}

/// A document that is not JSON.
#[test]
fn manifest_that_is_not_json() {
    let (rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    let garbage = b"\x00\x01 not json at all".to_vec();
    let digest = support::sha256_digest(&garbage);
    rogue.route(
        "GET",
        "/v2/base/manifests/latest",
        Answer::bytes(200, &served.index.media_type, garbage.clone())
            .header("Docker-Content-Digest", &digest),
    );
    rogue.route(
        "GET",
        &format!("/v2/base/manifests/{digest}"),
        Answer::bytes(200, &served.index.media_type, garbage),
    );
    fails(build_on(&reference), &[&reference, "JSON"]);
}

// ------------------------------------------------------- wrong images

/// An index entry that says amd64 for a config that says arm64 would label
/// an amd64 binary arm64 (or worse): an error naming base, platform and
/// both values.
#[test]
fn config_platform_that_contradicts_the_index() {
    let (_rogue, _, reference) = rogue_base(
        |base| base.config["architecture"] = json!("arm64"),
        |_| {},
        |_| {},
    );
    // Found before anything compiles, even with a build to do.
    let dir = tempfile::tempdir().expect("tempdir");
    let failed = build_on(&reference)
        .env("CARGO_TARGET_DIR", dir.path())
        .run();
    failed.expect_clean_error(&[&reference, "linux/amd64", "arm64"]);
    assert!(
        !failed.stderr.contains("Building") && !failed.stderr.contains("Compiling"),
        "{}",
        failed.describe()
    );
}

/// A single-manifest base whose config names a platform other than the one
/// asked for.
#[test]
fn single_manifest_base_of_another_platform() {
    let rogue = Rogue::start();
    let mut base = RogueBase::amd64();
    base.config["architecture"] = json!("arm64");
    let served = base.serve(&rogue, "base", "index", |_| {}, |_| {});
    let manifest = fetched(
        &rogue,
        &format!("/v2/base/manifests/{}", served.manifest.digest),
    );
    let manifest: Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    rogue.manifest("base", Some("single"), &manifest);
    let reference = format!("{}/base:single", rogue.host());
    fails(build_on(&reference), &[&reference, "linux/amd64"]);
}

/// A manifest without `layers`, and one whose config counts other diff_ids:
/// either would give an image with more diff_ids than layers.
#[test]
fn layers_and_diff_ids_that_disagree() {
    let (_rogue, _, reference) = rogue_base(
        |_| {},
        |manifest| {
            manifest.as_object_mut().expect("object").remove("layers");
        },
        |_| {},
    );
    warm_up();
    fails(build_on(&reference), &[&reference, "layers"]);

    let (_rogue, _, reference) = rogue_base(
        |base| {
            let diff_ids = base.config["rootfs"]["diff_ids"].clone();
            base.config["rootfs"]["diff_ids"] = json!([diff_ids[0], diff_ids[0]]);
        },
        |_| {},
        |_| {},
    );
    fails(build_on(&reference), &[&reference, "diff_ids"]);
}

/// Index shapes cargo-krust cannot build on: an index nested for a
/// platform, an index without manifests, a top-level document of an unknown
/// media type, a platform entry of an unknown media type.
#[test]
fn index_shapes_that_cannot_be_built_on() {
    let (_rogue, _, reference) = rogue_base(
        |_| {},
        |_| {},
        |index| index["manifests"][0]["mediaType"] = json!(support::rogue::OCI_INDEX),
    );
    fails(build_on(&reference), &[&reference, "nests an index"]);

    let (_rogue, _, reference) = rogue_base(
        |_| {},
        |_| {},
        |index| {
            index.as_object_mut().expect("object").remove("manifests");
        },
    );
    fails(build_on(&reference), &[&reference, "manifests"]);

    let (_rogue, _, reference) = rogue_base(
        |_| {},
        |_| {},
        |index| index["mediaType"] = json!("application/vnd.example.thing+json"),
    );
    fails(
        build_on(&reference),
        &[&reference, "application/vnd.example.thing+json"],
    );

    let (_rogue, _, reference) = rogue_base(
        |_| {},
        |_| {},
        |index| index["manifests"][0]["mediaType"] = json!("application/vnd.example.odd+json"),
    );
    warm_up();
    fails(
        build_on(&reference),
        &[&reference, "application/vnd.example.odd+json"],
    );
}

// ------------------------------------------------------------ statuses

/// Fixed statuses: a registry that always answers 500 (retried, then named
/// with its status, within the budget), 404 (the base does not exist), 429
/// asking to come back in an hour (the budget wins), 403.
#[test]
fn fixed_statuses() {
    let rogue = Rogue::start();
    let reference = format!("{}/base:latest", rogue.host());
    rogue.fallback(Answer::error(500, "UNKNOWN", "the disk is on fire"));
    rogue.route("GET", "/v2/", Answer::json(&json!({})));
    gives_up(build_on(&reference), 4, &[&rogue.host(), "500"]);

    rogue.fallback(Answer::error(404, "MANIFEST_UNKNOWN", "no such manifest"));
    fails(build_on(&reference), &[&reference, "does not exist"]);

    rogue
        .fallback(Answer::error(429, "TOOMANYREQUESTS", "slow down").header("Retry-After", "3600"));
    gives_up(
        build_on(&reference),
        4,
        &[&rogue.host(), "429", "--registry-timeout"],
    );

    rogue.fallback(Answer::error(403, "DENIED", "go away"));
    fails(build_on(&reference), &[&rogue.host(), "403"]);
}

/// `Location` headers that lead nowhere sane are not followed: a blob
/// redirected to a local file, an upload session on another scheme.
#[test]
fn insane_locations_are_not_followed() {
    let (rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    rogue.route(
        "GET",
        &blob_path(&served.config.digest),
        Answer::status(307).header("Location", "file:///etc/passwd"),
    );
    warm_up();
    fails(
        build_on(&reference),
        &[&rogue.host(), "Location", "scheme file"],
    );

    let rogue = Rogue::start();
    rogue.route(
        "POST",
        "/v2/x/hello-krust/blobs/uploads/",
        Answer::status(202).header("Location", "ftp://storage.example/upload"),
    );
    fails(
        build_on_scratch(&hello_krust()).env("KRUST_REPO", format!("{}/x", rogue.host())),
        &[&rogue.host(), "Location", "scheme ftp"],
    );
}

// ------------------------------------------------------------ hangs

/// A registry that accepts connections and never answers, and a base on it.
fn silent_registry() -> (Rogue, String) {
    let rogue = Rogue::start();
    rogue.fallback(Answer::hang());
    rogue.route("GET", "/v2/", Answer::hang());
    let reference = format!("{}/base:latest", rogue.host());
    (rogue, reference)
}

/// A registry that never answers: the run ends within about its
/// `--registry-timeout` (the flag winning over the environment) and says
/// which setting to raise.
#[test]
fn a_registry_that_never_answers() {
    let (rogue, reference) = silent_registry();
    fails_within(
        build_on(&reference)
            .env("KRUST_REGISTRY_TIMEOUT", "600")
            .args(["--registry-timeout", "3"]),
        within_budget(3),
        &[&rogue.host(), "--registry-timeout"],
    );
}

/// The same through `KRUST_REGISTRY_TIMEOUT` alone.
#[test]
fn registry_timeout_from_the_environment() {
    let (rogue, reference) = silent_registry();
    gives_up(
        build_on(&reference),
        2,
        &[&rogue.host(), "KRUST_REGISTRY_TIMEOUT"],
    );
}

/// A bad value of the setting is refused by name.
#[test]
fn registry_timeout_must_be_a_number_of_seconds() {
    fails(
        build_on("scratch").env("KRUST_REGISTRY_TIMEOUT", "soon"),
        &["--registry-timeout"],
    );
}

/// Headers, then half a document, then nothing.
#[test]
fn a_document_that_stalls_halfway() {
    let (rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    redeliver(
        &rogue,
        &format!("/v2/base/manifests/{}", served.index.digest),
        &served.index.media_type,
        |len| Delivery::StallAfter(len / 2),
    );
    gives_up(
        build_on(&reference),
        3,
        &[&rogue.host(), "--registry-timeout"],
    );
}

/// A layer download that stalls (for an OCI layout).
#[test]
fn a_layer_download_that_stalls() {
    layer_download_gives_up(|len| Delivery::StallAfter(len / 2));
}

/// A base layer downloaded for an OCI layout, delivered as `delivery`
/// says: the run gives up within its budget, naming the layer.
fn layer_download_gives_up(delivery: fn(usize) -> Delivery) {
    let (_rogue, served, reference) = base_with_blob(|s| &s.layer, delivery);
    warm_up();
    let layout = tempfile::tempdir().expect("layout dir");
    gives_up(
        build_on(&reference)
            .arg("--oci-layout-path")
            .arg(layout.path()),
        3,
        &[&served.layer.digest, "--registry-timeout"],
    );
}

/// An upload the registry never reads nor answers: the push gives up.
#[test]
fn an_upload_that_is_never_answered() {
    upload_gives_up(Answer::hang(), "--registry-timeout");
}

/// A push whose uploads open a session, then get `put` as the answer to
/// their PUT: the run gives up within its budget, naming the registry and
/// `word`.
fn upload_gives_up(put: Answer, word: &str) {
    let rogue = Rogue::start();
    rogue.route(
        "POST",
        "/v2/x/hello-krust/blobs/uploads/",
        Answer::status(202).header("Location", "/v2/x/hello-krust/blobs/uploads/u1"),
    );
    rogue.route("PUT", "/v2/x/hello-krust/blobs/uploads/u1", put);
    warm_up();
    gives_up(
        build_on_scratch(&hello_krust()).env("KRUST_REPO", format!("{}/x", rogue.host())),
        3,
        &[&rogue.host(), word],
    );
}

/// A push target that accepts connections and answers its ping, then
/// nothing, while the base registry is fine: the run ends within about one
/// budget, not one per operation. The first operation on it (the streamed
/// upload of a large new layer) spends the budget; the tag lookup and the
/// blob checks that follow are not even sent.
#[test]
fn a_push_target_that_stops_answering() {
    let (_base_registry, _, base) = rogue_base(|_| {}, |_| {}, |_| {});
    let target = Rogue::start();
    target.fallback(Answer::hang());
    // A target dir of its own, compiled first: its lock, held while the
    // layers are written, keeps no other test waiting.
    let target_dir = tempfile::tempdir().expect("target dir");
    build_on(&base)
        .env("CARGO_TARGET_DIR", target_dir.path())
        .run()
        .single_ref();
    // A 9 MiB data layer, through the global config: new to the cache, it
    // is uploaded while it is written.
    let config = tempfile::tempdir().expect("config dir");
    let data = config.path().join("krust").join("static");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("blob.bin"), vec![0; 9 << 20]).expect("data file");
    std::fs::write(
        config.path().join("krust").join("config.toml"),
        "data = \"static\"\n",
    )
    .expect("config.toml");
    gives_up(
        krust(["build", "--platform", "linux/amd64"])
            .arg(hello_krust())
            .args(["--base-image", &base])
            .env("KRUST_REPO", format!("{}/x", target.host()))
            .env("CARGO_TARGET_DIR", target_dir.path())
            .env("XDG_CONFIG_HOME", config.path()),
        6,
        &[&target.host(), "--registry-timeout"],
    );
    let requests = target.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "POST" && r.path() == "/v2/x/hello-krust/blobs/uploads/"),
        "the large layer was not streamed: {requests:#?}"
    );
    assert!(
        requests.iter().all(|r| r.method != "HEAD"),
        "the registry was asked again after it stopped answering: {requests:#?}"
    );
}

/// A byte every half second: never silent for the stall limit (half the
/// budget), yet far below any real link.
const TRICKLE: Delivery = Delivery::Trickle(Duration::from_millis(500));

/// A layer download that trickles (for an OCI layout) is a stall, not a
/// transfer that keeps moving.
#[test]
fn a_layer_download_that_trickles() {
    layer_download_gives_up(|_| TRICKLE);
}

/// An upload answered with an error whose body trickles: the message is
/// not waited for past the stall limit, and the upload gives up within its
/// budget.
#[test]
fn an_upload_error_that_trickles() {
    upload_gives_up(
        Answer::error(500, "UNKNOWN", "the disk is on fire").delivered(TRICKLE),
        "500",
    );
}

// ------------------------------------------------------------ tokens

/// A rogue base behind Bearer tokens whose token endpoint answers `token`.
fn token_base(token: Answer) -> (Rogue, String) {
    let (rogue, _, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    rogue.auth(Auth::Bearer(token));
    (rogue, reference)
}

/// Token answers a real client accepts: a huge, odd or missing
/// `expires_in` is no reason to panic or fail.
#[test]
fn odd_token_lifetimes_are_accepted() {
    for expires_in in [
        json!(9223372036854775807u64),
        json!(18446744073709551615u64),
        json!(1e300),
        json!("300"),
        json!(-5),
        json!(1.5),
        json!(null),
        json!(0),
        json!("soon"),
    ] {
        let (rogue, reference) = token_base(Answer::json(
            &json!({"token": "t0k", "expires_in": expires_in}),
        ));
        let run = build_on(&reference).run();
        assert!(
            run.status.success(),
            "expires_in {expires_in}:\n{}",
            run.describe()
        );
        run.single_ref();
        assert!(rogue.requests().iter().any(|r| r.path() == "/token"));
    }
    let (_rogue, reference) = token_base(Answer::json(&json!({"access_token": "t0k"})));
    build_on(&reference).run().single_ref();
}

/// Token answers that give no token: named as such.
#[test]
fn token_answers_without_a_token() {
    let cases = [
        (Answer::json(&json!({"expires_in": 60})), "without a token"),
        (Answer::json(&json!({"token": 42})), "without a token"),
        (Answer::json(&json!({"token": ""})), "without a token"),
        (
            Answer::bytes(200, "text/html", "<html>login</html>"),
            "not JSON",
        ),
        (Answer::error(500, "UNKNOWN", "token service down"), "500"),
    ];
    for (answer, words) in cases {
        let (rogue, reference) = token_base(answer);
        fails(build_on(&reference), &[&rogue.host(), words]);
    }
}

/// A token endpoint that never answers.
#[test]
fn a_token_endpoint_that_never_answers() {
    let (rogue, reference) = token_base(Answer::hang());
    gives_up(
        build_on(&reference),
        3,
        &[&rogue.host(), "--registry-timeout"],
    );
}

/// A token that cannot go in an HTTP header (a line break in it) blames
/// the token server, not credentials nobody configured.
#[test]
fn a_token_that_cannot_go_in_a_header() {
    let (rogue, reference) = token_base(Answer::json(&json!({"token": "t0k\r\nX-Injected: yes"})));
    let line = fails(
        build_on(&reference),
        &[
            &rogue.host(),
            "the token request",
            "not allowed in an HTTP header",
        ],
    );
    assert!(!line.contains("configured"), "{line}");
}

// -------------------------------------------------- credential helpers

/// A Docker config naming helper `krust-rogue` for the registry, and the
/// helper itself (the shell script `script`) in a directory for PATH.
struct Helper {
    dir: tempfile::TempDir,
}

impl Helper {
    fn new(host: &str, script: &str) -> Helper {
        let dir = tempfile::tempdir().expect("helper dir");
        let helper = dir.path().join("docker-credential-krust-rogue");
        support::write_script(&helper, &format!("#!/bin/sh\n{script}\n"));
        let config = json!({"credHelpers": {host: "krust-rogue"}});
        std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config.json");
        Helper { dir }
    }

    fn config_file(&self) -> String {
        self.dir.path().join("config.json").display().to_string()
    }

    /// `krust` with this Docker config and the helper first on PATH.
    fn apply(&self, krust: Krust) -> Krust {
        let path = format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        krust
            .env("DOCKER_CONFIG", self.dir.path())
            .env("PATH", path)
    }
}

/// A rogue base behind `auth` whose Docker config names a helper running
/// `script`.
struct HelperCase {
    rogue: Rogue,
    helper: Helper,
    reference: String,
}

impl HelperCase {
    fn new(auth: Auth, script: &str) -> HelperCase {
        let (rogue, _, reference) = rogue_base(|_| {}, |_| {}, |_| {});
        rogue.auth(auth);
        let helper = Helper::new(&rogue.host(), script);
        HelperCase {
            rogue,
            helper,
            reference,
        }
    }

    /// Behind Basic authentication, so that credentials are asked for.
    fn basic(script: &str) -> HelperCase {
        HelperCase::new(Auth::Basic, script)
    }

    fn build(&self) -> Krust {
        self.helper.apply(build_on(&self.reference))
    }
}

/// A helper that never answers is stopped, and named with its config file.
#[test]
fn a_credential_helper_that_hangs() {
    let case = HelperCase::basic("exec sleep 60");
    gives_up(
        case.build(),
        3,
        &[
            "docker-credential-krust-rogue",
            &case.helper.config_file(),
            "--registry-timeout",
        ],
    );
}

/// A helper that prints without end is stopped at 1 MiB and named with
/// its config file, long before its time is up.
#[test]
fn a_credential_helper_that_prints_too_much() {
    let case = HelperCase::basic("cat >/dev/null\nexec yes");
    fails(
        case.build(),
        &[
            "docker-credential-krust-rogue",
            &case.helper.config_file(),
            "more than 1024 KiB",
        ],
    );
}

/// A helper that answers, but leaves a process of its own holding its
/// output open, has not finished answering: it times out, and that process
/// is stopped with it.
#[test]
fn a_credential_helper_that_leaves_its_output_open() {
    let dir = tempfile::tempdir().expect("pid dir");
    let pid_file = dir.path().join("pid");
    let case = HelperCase::basic(&format!(
        "sleep 60 &\necho $! > '{}'\nprintf '{{\"Username\":\"u\",\"Secret\":\"p\"}}'",
        pid_file.display()
    ));
    gives_up(
        case.build(),
        3,
        &["docker-credential-krust-rogue", "--registry-timeout"],
    );
    let pid = std::fs::read_to_string(&pid_file).expect("the helper's pid file");
    let pid = pid.trim();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "))
    {
        if Instant::now() > deadline {
            // Not left behind by the test either.
            let _ = std::process::Command::new("kill").arg(pid).status();
            panic!("the helper's background process {pid} is still running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A helper that fails says so with its own message (not "cannot run"),
/// one that answers something other than its JSON is named with its file,
/// and one that is not installed is named with the fix.
#[test]
fn credential_helpers_that_fail() {
    let case = HelperCase::basic("echo 'the keychain is locked' >&2\nexit 1");
    let line = fails(
        case.build(),
        &[
            "credential helper docker-credential-krust-rogue",
            "failed",
            "the keychain is locked",
        ],
    );
    assert!(!line.contains("install"), "{line}");

    let case = HelperCase::basic("cat >/dev/null\necho 'hello there'");
    let config = case.helper.config_file();
    fails(
        case.build(),
        &["docker-credential-krust-rogue", &config, "JSON"],
    );

    let case = HelperCase::basic("exit 0");
    std::fs::remove_file(case.helper.dir.path().join("docker-credential-krust-rogue"))
        .expect("remove helper");
    fails(case.build(), &["docker-credential-krust-rogue", "install"]);
}

/// A good helper's answer is used; its "credentials not found" means
/// anonymous; its `<token>` user is an identity token, exchanged with a
/// POST at the token endpoint.
#[test]
fn credential_helpers_that_answer() {
    let answer = |user: &str| {
        format!(
            "read server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"p\"}}' \"$server\""
        )
    };
    let case = HelperCase::basic(&answer("u"));
    case.build().run().single_ref();
    let authorized = case.rogue.requests().iter().any(|r| {
        support::http::find_header(&r.headers, "authorization")
            .is_some_and(|a| a.starts_with("Basic "))
    });
    assert!(authorized, "no request carried the helper's credentials");

    let case = HelperCase::new(
        Auth::None,
        "echo 'credentials not found in native keychain'\nexit 1",
    );
    case.build().run().single_ref();

    let token = Answer::json(&json!({"access_token": "t0k"}));
    let case = HelperCase::new(Auth::Bearer(token), &answer("<token>"));
    case.build().run().single_ref();
    let exchanged = case
        .rogue
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.path() == "/token");
    assert!(
        exchanged,
        "the identity token was not exchanged: {:?}",
        case.rogue.requests()
    );
}

// ------------------------------------------------------------ the cache

/// Base documents damaged in the cache are never trusted: a config with a
/// bit flipped (it still parses) or a manifest cut short is fetched again,
/// giving the same image as before; offline, the error names the damaged
/// file and the fix.
#[test]
fn damaged_cached_base_documents() {
    let (_rogue, served, reference) = rogue_base(|_| {}, |_| {}, |_| {});
    warm_up();
    let first = build_on(&reference).run().single_ref();
    let cached = |served: &Served| {
        support::shared_target_dir()
            .join("krust/blobs/sha256")
            .join(served.digest.trim_start_matches("sha256:"))
    };

    let config = cached(&served.config);
    let good = std::fs::read(&config).expect("the cached config");
    let text = String::from_utf8(good.clone()).expect("config text");
    // `n` to `m` is one bit.
    let flipped = text.replacen(":/bin\"", ":/bim\"", 1);
    assert_ne!(flipped, text, "no PATH in {text}");
    std::fs::write(&config, flipped).expect("damage the cached config");
    fails(
        build_on(&reference).arg("--offline"),
        &[
            &reference,
            &config.display().to_string(),
            "damaged",
            "without --offline",
        ],
    );
    assert_eq!(build_on(&reference).run().single_ref(), first);
    assert_eq!(
        std::fs::read(&config).expect("the cached config"),
        good,
        "the damaged config was not replaced"
    );

    let manifest = cached(&served.manifest);
    let good = std::fs::read(&manifest).expect("the cached manifest");
    std::fs::write(&manifest, &good[..good.len() / 2]).expect("damage the cached manifest");
    assert_eq!(build_on(&reference).run().single_ref(), first);
    assert_eq!(std::fs::read(&manifest).expect("the manifest"), good);
}

// ------------------------------------------------ what reaches the terminal

/// Strings a registry chose — a platform, a media type — holding a line
/// break and a terminal escape reach the error line escaped: one `error:`
/// line, and no escape sequence for the terminal.
#[test]
fn registry_strings_reach_the_terminal_escaped() {
    const ESCAPED: &str = "\\nerror: all is well\\u{1b}[31m";
    let cases: [(Edit, &str); 2] = [
        (
            |index| {
                index["manifests"][0]["platform"]["architecture"] =
                    json!("amd64\nerror: all is well\u{1b}[31m")
            },
            "it has: linux/amd64",
        ),
        (
            |index| {
                index["manifests"][0]["mediaType"] =
                    json!("application/vnd.x\nerror: all is well\u{1b}[31m")
            },
            "media type application/vnd.x",
        ),
    ];
    for (edit_index, words) in cases {
        let (_rogue, _, reference) = rogue_base(|_| {}, |_| {}, edit_index);
        let line = fails(build_on(&reference), &[&reference, words, ESCAPED]);
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
}

// ---------------------------------------------- Docker media types

/// A base pushed with Docker media types (a manifest list of v2s2
/// manifests, docker layer media types) on the real registry: the image
/// builds, its added layer keeps the Docker media type family (SPEC §5),
/// and it runs.
#[test]
fn docker_media_type_base_builds_and_runs() {
    let shared = shared();
    let dir = tempfile::tempdir().expect("layout dir");
    let layout = support::base::write_base_layout(dir.path(), &unique_name("docker-base"));
    let base_ref = format!(
        "{}/{}:latest",
        shared.registry.host(),
        unique_name("docker-base")
    );
    let skopeo = tools::require("skopeo", "skopeo");
    let output = std::process::Command::new(skopeo)
        .args([
            "copy",
            "--all",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
            "--quiet",
        ])
        .arg(format!("oci:{}:multi", layout.dir.display()))
        .arg(format!("docker://{base_ref}"))
        .output()
        .expect("run skopeo copy");
    assert!(
        output.status.success(),
        "skopeo copy --format v2s2 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: Value = serde_json::from_slice(&image::inspect_raw(&base_ref)).expect("list JSON");
    assert_eq!(
        list["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json",
        "skopeo did not push a Docker manifest list: {list}"
    );

    tools::require_default_rust_targets();
    let run = krust(["build", "--platform", "linux/amd64"])
        .arg(hello_krust())
        .args(["--base-image", &base_ref])
        .env(
            "KRUST_REPO",
            format!("{}/{}", shared.registry.host(), unique_name("on-docker")),
        )
        .run();
    let pushed = run.single_ref();
    let index = image::fetch_index(&shared.registry, &pushed);
    let amd64 = index.image("amd64");
    let media_types: Vec<&str> = amd64
        .layers
        .iter()
        .map(|l| l.descriptor.media_type.as_str())
        .collect();
    assert_eq!(media_types.len(), 3, "{media_types:?}");
    assert!(
        media_types
            .iter()
            .all(|m| *m == "application/vnd.docker.image.rootfs.diff.tar.gzip"),
        "the layers left the Docker media type family: {media_types:?}"
    );
    let diff_ids = amd64.config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids");
    assert_eq!(diff_ids.len(), amd64.layers.len());
    for (layer, diff_id) in amd64.layers.iter().zip(diff_ids) {
        assert_eq!(
            support::sha256_digest(&layer.tar),
            diff_id.as_str().unwrap_or_default()
        );
    }
    // umoci refuses Docker layer media types: the layers are unpacked here.
    let rootfs = tempfile::tempdir().expect("rootfs dir");
    for layer in &amd64.layers {
        tar::Archive::new(&layer.tar[..])
            .unpack(rootfs.path())
            .expect("unpack a layer");
    }
    let argv = image::docker_argv(&amd64.config, &["from", "docker"]);
    let output = image::expect_ran(&image::run_chroot(rootfs.path(), &argv), &pushed.full);
    assert_eq!(
        output,
        "Hello from krust!\narch: x86_64\nargs: from docker\n"
    );
}
