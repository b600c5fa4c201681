//! End-to-end acceptance of `cargo krust build`, with the real binary, a real
//! registry and independent tools (skopeo, umoci, runc, qemu):
//!
//! - a fresh `cargo new --bin` package onto a multi-platform base: output line,
//!   index/manifests/config/layers (media types, digests, sizes, diff_ids), base
//!   layers and config kept, Entrypoint, PATH, annotations, ELF arch and static
//!   linking; both platforms run (arm64 under qemu);
//! - examples/hello-krust onto a single-platform base (run with runc, extra
//!   arguments reach the program) and onto `scratch` (both arches);
//! - reproducibility: same digest twice, no blob uploaded the second time, same
//!   digest from another checkout directory;
//! - cross-repository mounts of base layers; `--no-push` (same digest, no registry
//!   write); `--oci-layout-path` (skopeo reads it);
//! - both invocation forms (`cargo-krust build`, `cargo-krust krust build`),
//!   `--repo`, `KRUST_BASE_IMAGE`, `-i`, `-t v1,v2`, `-v`;
//! - a package with two bins: one reference per bin, in a stable order.
//!
//! Every test shares one cargo target dir, so each example compiles once per
//! platform; tests that count registry requests use a registry of their own.

mod support;

use serde_json::Value;
use support::base::{
    BaseImage, CONFIG_MEDIA_TYPE, EXTRA_FIELD, INDEX_MEDIA_TYPE, LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE, PushedBases, SINGLE_PATH,
};
use support::image::{self, PushedImage, PushedIndex, PushedRef, expect_ran, run_platform};
use support::krust::{build_on_scratch, hello_krust, krust};
use support::{Registry, copy_tree, elf, sha256_digest, shared, tools, unique_name};

/// Annotation naming the base image.
const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Annotation with the base image's digest.
const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// `arch:` line hello-krust prints for an OCI architecture.
fn rust_arch(architecture: &str) -> &'static str {
    match architecture {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => panic!("no Rust arch known for {other}"),
    }
}

/// The `PATH` value of a config's `Env`.
fn path_env(config: &Value) -> String {
    config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or_else(|| panic!("config has no PATH in Env: {}", config["config"]))
        .to_string()
}

/// Assert the index itself: OCI index media type, one OCI manifest per
/// expected platform (`os/arch`, arm64 may carry variant v8).
fn assert_index_shape(pushed: &PushedIndex, expected: &[&str]) {
    let index = &pushed.index;
    assert_eq!(index["schemaVersion"], 2, "index: {index}");
    assert_eq!(index["mediaType"], INDEX_MEDIA_TYPE, "index: {index}");
    let platforms: Vec<String> = pushed
        .platforms()
        .into_iter()
        .map(|p| p.replace("linux/arm64/v8", "linux/arm64"))
        .collect();
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        platforms, expected,
        "platforms of {}",
        pushed.reference.full
    );
    for image in &pushed.images {
        assert_eq!(image.descriptor["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(image.manifest["schemaVersion"], 2);
        assert_eq!(image.manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(image.manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        if let Some(variant) = &image.variant {
            assert_eq!(
                (image.architecture.as_str(), variant.as_str()),
                ("arm64", "v8"),
                "unexpected platform variant"
            );
        }
    }
}

/// Assert the image-independent parts of one platform image: config platform,
/// diff_ids = sha256 of every uncompressed layer, Entrypoint, no Cmd, PATH with
/// `/app`, and the app layer (`app/`, `app/<bin>`, 0755, root, mtime 0) holding a
/// static binary for the right machine. Returns the binary.
fn assert_app_image(image: &PushedImage, bin: &str) -> Vec<u8> {
    let what = format!("{}/{}", image.os, image.architecture);
    let config = &image.config;
    assert_eq!(config["os"], "linux", "{what}: config os");
    assert_eq!(
        config["architecture"],
        image.architecture.as_str(),
        "{what}: config arch"
    );
    assert_eq!(config["rootfs"]["type"], "layers", "{what}: rootfs type");
    let diff_ids: Vec<String> = image.layers.iter().map(|l| sha256_digest(&l.tar)).collect();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!(diff_ids),
        "{what}: diff_ids must be the sha256 of each uncompressed layer"
    );
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!([format!("/app/{bin}")]),
        "{what}: Entrypoint"
    );
    assert!(
        config["config"].get("Cmd").is_none_or(Value::is_null),
        "{what}: no Cmd expected, got {}",
        config["config"]["Cmd"]
    );
    let path = path_env(config);
    assert!(
        path.split(':').any(|p| p == "/app"),
        "{what}: PATH {path:?} lacks /app"
    );

    let app = image.layers.last().expect("at least one layer");
    assert_eq!(
        app.descriptor.media_type, LAYER_MEDIA_TYPE,
        "{what}: app layer media type"
    );
    assert_eq!(
        &app.compressed[..2],
        b"\x1f\x8b",
        "{what}: app layer is not gzip"
    );
    let entries = image::tar_entries(&app.tar);
    let shape: Vec<(String, char, u32)> = entries
        .iter()
        .map(|e| (e.path.clone(), e.kind, e.mode & 0o7777))
        .collect();
    assert_eq!(
        shape,
        [
            ("app/".to_string(), 'd', 0o755),
            (format!("app/{bin}"), 'f', 0o755)
        ],
        "{what}: app layer entries (path, kind, mode)"
    );
    for entry in &entries {
        assert_eq!(
            (entry.uid, entry.gid),
            (0, 0),
            "{what}: {} owner",
            entry.path
        );
        assert_eq!(entry.mtime, 0, "{what}: {} mtime", entry.path);
        assert_eq!(
            (entry.uname.as_str(), entry.gname.as_str()),
            ("", ""),
            "{what}: {} user/group names",
            entry.path
        );
    }
    let binary = entries[1].data.clone();
    let info = elf::parse(&binary).unwrap_or_else(|e| panic!("{what}: /app/{bin}: {e}"));
    assert_eq!(
        info.machine,
        elf::machine_of(&image.architecture),
        "{what}: ELF machine"
    );
    assert!(
        info.is_static(),
        "{what}: /app/{bin} is dynamically linked: {info:?}"
    );
    binary
}

/// Assert that `image` is `base` plus exactly one app layer: base layers and
/// diff_ids unchanged, one more history entry, every base config field kept
/// (unknown ones too), base PATH components kept, and the base annotations.
fn assert_on_base(image: &PushedImage, base: &BaseImage, base_ref: &str) {
    let what = format!("{}/{}", image.os, image.architecture);
    let layers: Vec<_> = image.layers.iter().map(|l| l.descriptor.clone()).collect();
    assert_eq!(layers.len(), base.layers.len() + 1, "{what}: layer count");
    assert_eq!(
        &layers[..base.layers.len()],
        &base.layers[..],
        "{what}: base layers must be kept unchanged"
    );
    let diff_ids = image.config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids");
    assert_eq!(
        &diff_ids[..base.diff_ids.len()],
        &base
            .diff_ids
            .iter()
            .map(|d| Value::from(d.as_str()))
            .collect::<Vec<_>>()[..],
        "{what}: base diff_ids kept"
    );
    let base_config = &base.config_json;
    assert_eq!(
        image.config["history"].as_array().map(Vec::len),
        base_config["history"].as_array().map(|h| h.len() + 1),
        "{what}: exactly one history entry added"
    );
    assert_eq!(
        image.config[EXTRA_FIELD], base_config[EXTRA_FIELD],
        "{what}: unknown config field must be kept"
    );
    for (key, value) in base_config.as_object().expect("base config object") {
        if !["config", "rootfs", "history", "created"].contains(&key.as_str()) {
            assert_eq!(
                &image.config[key], value,
                "{what}: config field {key:?} kept"
            );
        }
    }
    for (key, value) in base_config["config"]
        .as_object()
        .expect("base config.config")
    {
        match key.as_str() {
            "Env" => {
                let env = image.config["config"]["Env"].as_array().expect("Env");
                for entry in value.as_array().expect("base Env") {
                    if !entry.as_str().unwrap_or("").starts_with("PATH=") {
                        assert!(env.contains(entry), "{what}: Env lost {entry}");
                    }
                }
            }
            "Labels" => {
                for (label, v) in value.as_object().expect("base labels") {
                    assert_eq!(
                        &image.config["config"]["Labels"][label], v,
                        "{what}: base label {label} kept"
                    );
                }
            }
            _ => assert_eq!(
                &image.config["config"][key], value,
                "{what}: config.{key} kept"
            ),
        }
    }
    let base_path = path_env(base_config);
    let path = path_env(&image.config);
    let components: Vec<&str> = path.split(':').collect();
    let kept: Vec<&str> = components
        .iter()
        .copied()
        .filter(|c| *c != "/app")
        .collect();
    assert_eq!(
        kept,
        base_path.split(':').collect::<Vec<_>>(),
        "{what}: PATH {path:?} must keep the base's {base_path:?} and add /app"
    );
    let annotations = &image.manifest["annotations"];
    assert_eq!(
        annotations[BASE_NAME], base_ref,
        "{what}: manifest {BASE_NAME}"
    );
    assert_eq!(
        annotations[BASE_DIGEST],
        base.manifest.digest.as_str(),
        "{what}: manifest {BASE_DIGEST} = the base's manifest for this platform"
    );
}

/// Assert the index annotations name the base and its (index) digest.
fn assert_index_annotations(pushed: &PushedIndex, base_ref: &str, base_digest: &str) {
    let annotations = &pushed.index["annotations"];
    assert_eq!(annotations[BASE_NAME], base_ref, "index {BASE_NAME}");
    assert_eq!(annotations[BASE_DIGEST], base_digest, "index {BASE_DIGEST}");
}

/// The expected output of hello-krust.
fn hello_output(architecture: &str, args: &str) -> String {
    format!(
        "Hello from krust!\narch: {}\nargs: {args}\n",
        rust_arch(architecture)
    )
}

/// Push hello-krust onto the multi-platform base (named by KRUST_BASE_IMAGE)
/// into `repo` (named by KRUST_REPO), for the platforms of the base.
fn build_hello_on_multi(bases: &PushedBases, repo: &str) -> PushedRef {
    krust(["build"])
        .arg(hello_krust())
        .env("KRUST_BASE_IMAGE", &bases.multi_ref)
        .env("KRUST_REPO", repo)
        .run()
        .single_ref()
}

/// main.rs of the fresh package: cargo's greeting, then the real uid from
/// /proc (or `?` without /proc, e.g. under chroot).
const FRESH_MAIN: &str = r#"fn main() {
    println!("Hello, world!");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?");
    println!("uid: {uid}");
}
"#;

/// A fresh `cargo new --bin` package onto the multi-platform base: everything
/// about the pushed index, and both platforms print `Hello, world!` (amd64
/// under runc as the base's user 65532, arm64 under qemu).
#[test]
fn fresh_package_on_multi_platform_base() {
    tools::require_default_rust_targets();
    let shared = shared();
    let host = shared.registry.host();
    let bases = &shared.bases;
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = support::cargo_new_bin(tmp.path(), "krust-fresh");
    // Keep cargo's greeting, and also report the uid the process runs as.
    std::fs::write(pkg.join("src/main.rs"), FRESH_MAIN).expect("write main.rs");

    let run = krust(["build"])
        .arg(&pkg)
        .args(["--base-image", &bases.multi_ref])
        .env("KRUST_REPO", format!("{host}/x"))
        .run();
    let pushed = run.single_ref();
    assert_eq!(
        pushed.full,
        format!("{host}/x/krust-fresh@{}", pushed.digest),
        "printed reference"
    );

    let index = image::fetch_index(&shared.registry, &pushed);
    assert_index_shape(&index, &["linux/amd64", "linux/arm64"]);
    assert_index_annotations(&index, &bases.multi_ref, &bases.multi_index_digest);
    for image in &index.images {
        assert_app_image(image, "krust-fresh");
        assert_on_base(
            image,
            bases.multi_for(&image.architecture),
            &bases.multi_ref,
        );
    }
    assert_eq!(
        image::inspect_raw(&format!("{host}/x/krust-fresh:latest")),
        image::inspect_raw(&pushed.full),
        "tag latest must point at the printed index"
    );

    // amd64 with runc (as the base's user 65532), arm64 under qemu.
    let amd64 = index.image("amd64");
    let unpacked = image::pull_and_unpack(&pushed.full, "amd64", None);
    let out = image::run_runc(&unpacked, &[]);
    assert_eq!(
        expect_ran(&out, "runc run (amd64)"),
        "Hello, world!\nuid: 65532\n",
        "runs as the base's user"
    );
    assert_eq!(amd64.config["config"]["User"], "65532");
    let arm64 = index.image("arm64");
    // chroot runs as root and has no /proc.
    assert_eq!(run_platform(&pushed, arm64, &[]), "Hello, world!\nuid: ?\n");
}

/// hello-krust for linux/amd64 onto the single-platform base, invoked the way
/// cargo does (`cargo-krust krust build`, in the package dir, `--repo`): runs
/// under runc and extra arguments reach it.
#[test]
fn hello_krust_on_single_platform_base_runs_under_runc() {
    tools::require_default_rust_targets();
    let shared = shared();
    let bases = &shared.bases;
    let repo = format!("{}/{}", shared.registry.host(), unique_name("single"));
    let run = krust(["krust", "build", "--platform", "linux/amd64"])
        .args(["--base-image", &bases.single_ref, "--repo", &repo])
        .current_dir(&hello_krust())
        .run();
    let pushed = run.single_ref();
    assert_eq!(pushed.full, format!("{repo}/hello-krust@{}", pushed.digest));

    let index = image::fetch_index(&shared.registry, &pushed);
    assert_index_shape(&index, &["linux/amd64"]);
    // The single-platform base has no index: its reference resolves to its manifest.
    assert_index_annotations(&index, &bases.single_ref, &bases.single.manifest.digest);
    let image = index.image("amd64");
    assert_app_image(image, "hello-krust");
    assert_on_base(image, &bases.single, &bases.single_ref);
    assert_eq!(
        path_env(&image.config)
            .replace(":/app", "")
            .replace("/app:", ""),
        SINGLE_PATH
    );
    assert!(
        image.config["config"]
            .get("User")
            .is_none_or(Value::is_null)
    );

    let unpacked = image::pull_and_unpack(&pushed.full, "amd64", None);
    let out = image::run_runc(&unpacked, &["a", "b"]);
    assert_eq!(expect_ran(&out, "runc run"), hello_output("amd64", "a b"));
}

/// hello-krust onto `scratch` for both platforms (comma-separated --platform):
/// one layer only, and both binaries run with their arguments.
#[test]
fn hello_krust_on_scratch_for_both_platforms() {
    tools::require_default_rust_targets();
    let shared = shared();
    let repo = format!("{}/{}", shared.registry.host(), unique_name("scratch"));
    let pushed = krust(["build"])
        .arg(hello_krust())
        .args([
            "--base-image",
            "scratch",
            "--platform",
            "linux/amd64,linux/arm64",
        ])
        .env("KRUST_REPO", &repo)
        .run()
        .single_ref();
    let index = image::fetch_index(&shared.registry, &pushed);
    assert_index_shape(&index, &["linux/amd64", "linux/arm64"]);
    for image in &index.images {
        assert_eq!(image.layers.len(), 1, "scratch: only the app layer");
        assert_app_image(image, "hello-krust");
        assert_eq!(
            image.config["history"].as_array().map(Vec::len),
            Some(1),
            "scratch: one history entry"
        );
        assert_eq!(
            run_platform(&pushed, image, &["a", "b"]),
            hello_output(&image.architecture, "a b")
        );
    }
}

/// The base lives in another registry (the shared one) than the target (an
/// empty registry of this test): the first push copies the base layers with
/// their digests unchanged; the same build again gives the same digest and
/// uploads no blob; `--no-push` prints the same digest and sends the target
/// registry no request at all.
#[test]
fn rebuild_is_reproducible_uploads_nothing_and_no_push_matches() {
    tools::require_default_rust_targets();
    let bases = &shared().bases;
    let target = Registry::start();
    let repo = format!("{}/again", target.host());
    let first = build_hello_on_multi(bases, &repo);
    let index = image::fetch_index(&target, &first);
    assert_index_shape(&index, &["linux/amd64", "linux/arm64"]);
    for image in &index.images {
        assert_on_base(
            image,
            bases.multi_for(&image.architecture),
            &bases.multi_ref,
        );
    }

    let mark = target.mark();
    let second = build_hello_on_multi(bases, &repo);
    assert_eq!(second, first, "same sources, same base: same reference");
    let requests = target.requests_since(mark);
    let uploads: Vec<_> = requests
        .iter()
        .filter(|r| r.is_blob_upload() || r.is_mount())
        .collect();
    assert!(
        uploads.is_empty(),
        "second push uploaded blobs: {uploads:#?}"
    );

    let mark = target.mark();
    let no_push = krust(["build", "--no-push"])
        .arg(hello_krust())
        .args(["--base-image", &bases.multi_ref])
        .env("KRUST_REPO", &repo)
        .run()
        .single_ref();
    assert_eq!(
        no_push, first,
        "--no-push prints what a push would have pushed"
    );
    let requests = target.requests_since(mark);
    assert!(
        requests.is_empty(),
        "--no-push sent requests to the target registry: {requests:#?}"
    );
}

/// The base lives in another repository of the same registry: its layers are
/// mounted (cross-repository blob mount), never uploaded.
#[test]
fn base_layers_are_mounted_not_uploaded() {
    tools::require_default_rust_targets();
    let (registry, bases) = support::own_registry_with_bases();
    let mark = registry.mark();
    let pushed = build_hello_on_multi(&bases, &format!("{}/mounted", registry.host()));
    let requests = registry.requests_since(mark);
    let mut base_layers: Vec<&str> = bases
        .multi
        .iter()
        .flat_map(|b| b.layers.iter().map(|l| l.digest.as_str()))
        .collect();
    base_layers.sort();
    base_layers.dedup();
    for digest in &base_layers {
        let hex = digest.trim_start_matches("sha256:");
        let mounted = requests.iter().any(|r| {
            r.is_mount() && r.uri.contains(hex) && r.uri.contains("from=base") && r.status == 201
        });
        let uploaded: Vec<_> = requests
            .iter()
            .filter(|r| r.is_blob_upload() && r.uri.contains(hex))
            .collect();
        assert!(
            mounted,
            "base layer {digest} was not mounted from `base`: {requests:#?}"
        );
        assert!(
            uploaded.is_empty(),
            "base layer {digest} uploaded: {uploaded:#?}"
        );
    }
    let index = image::fetch_index(&registry, &pushed);
    for image in &index.images {
        assert_on_base(
            image,
            bases.multi_for(&image.architecture),
            &bases.multi_ref,
        );
    }
}

/// `--oci-layout-path DIR` (with repeated `--platform`) also writes an OCI
/// layout holding the pushed index: skopeo reads it, both platforms are there,
/// and the entry is named by the repository without the registry
/// (`<path>/hello-krust:latest`).
#[test]
fn oci_layout_path_is_readable_by_skopeo() {
    tools::require_default_rust_targets();
    let shared = shared();
    let bases = &shared.bases;
    let out = tempfile::tempdir().expect("tempdir");
    let layout = out.path().join("layout");
    let path = unique_name("layout");
    let repo = format!("{}/{path}", shared.registry.host());
    let pushed = krust(["build"])
        .arg(hello_krust())
        .args(["--base-image", &bases.multi_ref])
        .args(["--platform", "linux/amd64", "--platform", "linux/arm64"])
        .arg("--oci-layout-path")
        .arg(&layout)
        .env("KRUST_REPO", &repo)
        .run()
        .single_ref();

    let index_json: Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json")).expect("layout has index.json"),
    )
    .expect("index.json is JSON");
    let entries = index_json["manifests"]
        .as_array()
        .expect("index.json manifests");
    let ref_name = format!("{path}/hello-krust:latest");
    let entry = entries
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == ref_name.as_str())
        .unwrap_or_else(|| panic!("no entry named {ref_name} in {index_json}"));
    assert_eq!(
        entry["digest"],
        pushed.digest.as_str(),
        "layout holds the pushed index"
    );
    assert_eq!(entry["mediaType"], INDEX_MEDIA_TYPE);

    let skopeo = tools::require("skopeo", "skopeo");
    let inspect = |args: &[&str], what: &str| -> Value {
        let mut cmd = std::process::Command::new(&skopeo);
        cmd.arg("inspect")
            .args(args)
            // Named: index.json also lists the image's referrers.
            .arg(format!("oci:{}:{ref_name}", layout.display()));
        let output = support::process::run_ok(&mut cmd, std::time::Duration::from_secs(60), what);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{what}: not JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    };
    let raw = inspect(&["--raw"], "skopeo inspect --raw oci:DIR:NAME");
    assert_eq!(raw["mediaType"], INDEX_MEDIA_TYPE);
    let mut platforms: Vec<String> = raw["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or(""),
                m["platform"]["architecture"].as_str().unwrap_or("")
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let info = inspect(&[], "skopeo inspect oci:DIR:NAME");
    assert_eq!(
        info["Architecture"], "amd64",
        "skopeo picks the host platform: {info}"
    );
    assert_eq!(info["Os"], "linux");
}

/// `-i` names the image, `-t v1,v2` pushes both tags pointing at the printed
/// digest, and `-v` keeps stdout to the one reference.
#[test]
fn image_flag_tags_and_verbose() {
    tools::require_default_rust_targets();
    let shared = shared();
    let host = shared.registry.host();
    let name = format!("{host}/{}/custom-name", unique_name("tags"));
    let run = krust(["build", "-v", "--platform", "linux/amd64"])
        .arg(hello_krust())
        .args(["--base-image", &shared.bases.single_ref])
        .args(["-i", &name, "-t", "v1,v2"])
        .run();
    let pushed = run.single_ref();
    assert_eq!(pushed.full, format!("{name}@{}", pushed.digest));
    for tag in ["v1", "v2"] {
        let raw = image::inspect_raw(&format!("{name}:{tag}"));
        assert_eq!(sha256_digest(&raw), pushed.digest, "tag {tag}");
    }
}

/// Same sources in two different directories (no push, scratch, amd64), each
/// with its own target dir, give the same digest: no checkout path leaks into
/// the image (SPEC §5). Own target dirs also keep these copies from rewriting
/// the shared target dir's hello-krust binaries under other tests.
#[test]
fn same_sources_in_another_directory_give_the_same_digest() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let digests: Vec<String> = ["one", "two/deeper"]
        .iter()
        .map(|sub| {
            let dir = tmp.path().join(sub).join("hello-krust");
            copy_tree(&hello_krust(), &dir);
            build_on_scratch(&dir)
                .arg("--no-push")
                .env("KRUST_REPO", "127.0.0.1:1/repro")
                .env("CARGO_TARGET_DIR", tmp.path().join(sub).join("target"))
                .run()
                .single_ref()
                .digest
        })
        .collect();
    assert_eq!(
        digests[0], digests[1],
        "digest depends on the checkout directory"
    );
}

/// A package with two bins prints one reference per bin, in the same order on
/// every run, each an index whose Entrypoint is that bin and which runs.
#[test]
fn package_with_two_bins_prints_one_line_per_bin() {
    tools::require_default_rust_targets();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = support::cargo_new_bin(tmp.path(), "krust-two");
    std::fs::create_dir_all(pkg.join("src/bin")).expect("mkdir src/bin");
    std::fs::write(
        pkg.join("src/bin/second.rs"),
        "fn main() { println!(\"second bin\"); }\n",
    )
    .expect("write second bin");
    let path = unique_name("two");
    let repo = format!("{}/{path}", shared.registry.host());
    let build = || build_on_scratch(&pkg).env("KRUST_REPO", &repo).run();
    let run = build();
    let refs = run.refs();
    let mut names: Vec<String> = refs.iter().map(|r| r.repo.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [format!("{path}/krust-two"), format!("{path}/second")],
        "one reference per bin:\n{}",
        run.describe()
    );
    for reference in &refs {
        let bin = reference.repo.rsplit('/').next().unwrap_or_default();
        let greeting = match bin {
            "second" => "second bin\n",
            _ => "Hello, world!\n",
        };
        let index = image::fetch_index(&shared.registry, reference);
        let image = index.image("amd64");
        assert_app_image(image, bin);
        assert_eq!(run_platform(reference, image, &[]), greeting, "{bin}");
    }
    assert_eq!(
        build().stdout,
        run.stdout,
        "same references in the same order"
    );
}
