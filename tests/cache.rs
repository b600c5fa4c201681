//! Caching and reproducibility (issue "reproducible to the byte"):
//!
//! - a base image tag costs one HEAD per run once its documents are cached,
//!   and `--offline` builds from the cache alone (same digest) while the
//!   registry is down;
//! - an unchanged binary reuses its cached layer (no new blob in the store);
//! - two copies of a package in different directories, with different file
//!   mtimes, give the same index digest; `SOURCE_DATE_EPOCH` sets the image
//!   timestamps and layer mtimes;
//! - `layer-compression = "zstd"` gives OCI zstd layers that run.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use support::image::{PushedRef, expect_ran, fetch_index, run_chroot};
use support::krust::{build_on_scratch, build_on_scratch_without_dir, hello_krust, krust};
use support::{Registry, base, copy_tree, shared, tools, unique_name};

/// `--no-push` build of hello-krust onto the registry's multi-platform base,
/// amd64 only, with its own target dir (so the cache starts empty).
fn build_on(base_ref: &str, target: &Path) -> support::krust::Krust {
    krust([
        "build",
        "--no-push",
        "--platform",
        "linux/amd64",
        "--base-image",
        base_ref,
    ])
    .arg(hello_krust())
    .env("CARGO_TARGET_DIR", target)
}

#[test]
fn base_tag_costs_one_head_and_offline_uses_the_cache() {
    tools::require_default_rust_targets();
    let mut registry = Registry::start();
    let bases = base::push_bases(&registry);
    let target = tempfile::tempdir().expect("tempdir");

    let first = build_on(&bases.multi_ref, target.path()).run().single_ref();

    let mark = registry.mark();
    let second = build_on(&bases.multi_ref, target.path()).run().single_ref();
    assert_eq!(second, first);
    let requests = registry.requests_since(mark);
    let manifest_heads: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "HEAD" && r.uri.contains("/manifests/latest"))
        .collect();
    assert_eq!(manifest_heads.len(), 1, "one HEAD of the tag: {requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.method == "HEAD" || r.uri == "/v2/"),
        "nothing but the tag lookup (and the API check): {requests:?}"
    );

    registry.stop();
    let offline = build_on(&bases.multi_ref, target.path())
        .arg("--offline")
        .run();
    assert_eq!(
        offline.single_ref(),
        first,
        "--offline builds from the cache"
    );
    let online = build_on(&bases.multi_ref, target.path()).run();
    online.expect_clean_error(&[&registry.host()]);

    // Offline without a cached base is a clear error.
    let empty = tempfile::tempdir().expect("tempdir");
    build_on(&bases.multi_ref, empty.path())
        .arg("--offline")
        .run()
        .expect_clean_error(&["not in the cache", "--offline"]);
}

#[test]
fn unchanged_binary_reuses_its_layer() {
    tools::require_default_rust_targets();
    let target = tempfile::tempdir().expect("tempdir");
    let build = || {
        build_on_scratch(&hello_krust())
            .arg("--no-push")
            .env("CARGO_TARGET_DIR", target.path())
            .run()
            .single_ref()
    };
    let blobs = target.path().join("krust/blobs/sha256");
    let stored = || -> Vec<(String, SystemTime)> {
        let mut files: Vec<(String, SystemTime)> = std::fs::read_dir(&blobs)
            .expect("blob store")
            .map(|e| {
                let e = e.expect("entry");
                let mtime = e.metadata().expect("stat").modified().expect("mtime");
                (e.file_name().to_string_lossy().into_owned(), mtime)
            })
            .collect();
        files.sort();
        files
    };
    let first = build();
    let before = stored();
    assert_eq!(build(), first);
    assert_eq!(stored(), before, "no blob was written again");
}

/// Sets the mtime of every file below `dir` to `time`.
fn touch_all(dir: &Path, time: SystemTime) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if path.is_dir() {
            touch_all(&path, time);
        } else {
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open for touch");
            file.set_modified(time).expect("set mtime");
        }
    }
}

#[test]
fn copies_in_other_directories_with_other_mtimes_give_the_same_digest() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let build = |sub: &str, age: Duration, epoch: Option<&str>| -> PushedRef {
        let root = tmp.path().join(sub);
        let pkg = root.join("hello-krust");
        copy_tree(&hello_krust(), &pkg);
        touch_all(&pkg, SystemTime::now() - age);
        let mut run = build_on_scratch(&pkg)
            .args(["--no-push", "--platform", "linux/amd64,linux/arm64"])
            .env("CARGO_TARGET_DIR", root.join("target"));
        if let Some(epoch) = epoch {
            run = run.env("SOURCE_DATE_EPOCH", epoch);
        }
        run.run().single_ref()
    };
    let a = build("a", Duration::from_secs(0), None);
    let b = build("b/deeper/still", Duration::from_secs(86_400 * 400), None);
    assert_eq!(a, b, "same sources, other directory and mtimes");

    let dated = build("c", Duration::from_secs(5), Some("1700000000"));
    assert_ne!(dated, a, "SOURCE_DATE_EPOCH changes the timestamps");
    let layout = tmp.path().join("layout");
    build_on_scratch(&hello_krust())
        .arg("--no-push")
        .arg("--oci-layout-path")
        .arg(&layout)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run()
        .single_ref();
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:hello-krust:latest", layout.display()))
        .output()
        .expect("skopeo");
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).expect("config JSON");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
}

/// `layer-compression = "zstd"`: the added layer is an OCI zstd layer with
/// the same diff_id rules, base layers are untouched, and skopeo (recompressing
/// to gzip for umoci, which predates zstd) gets a runnable image out of it.
#[test]
fn zstd_layers_are_pushed_and_run() {
    tools::require_default_rust_targets();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = tmp.path().join("hello-zstd");
    copy_tree(&hello_krust(), &pkg);
    let manifest = pkg.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    text.push_str("\n[package.metadata.krust]\nlayer-compression = \"zstd\"\n");
    std::fs::write(&manifest, text).expect("write Cargo.toml");

    let repo = format!("{}/{}", shared.registry.host(), unique_name("zstd"));
    let pushed = krust(["build", "--platform", "linux/amd64", "--base-image"])
        .arg(&shared.bases.multi_ref)
        .arg(&pkg)
        .env("KRUST_REPO", &repo)
        .run()
        .single_ref();
    let index = fetch_index(&shared.registry, &pushed);
    let image = index.image("amd64");
    let base = shared.bases.multi_for("amd64");
    let (added, base_layers) = image.layers.split_last().expect("layers");
    assert_eq!(
        base_layers
            .iter()
            .map(|l| &l.descriptor)
            .collect::<Vec<_>>(),
        base.layers.iter().collect::<Vec<_>>(),
        "base layers unchanged"
    );
    assert_eq!(
        added.descriptor.media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let tar = zstd::decode_all(&added.compressed[..]).expect("layer is zstd");
    let diff_ids = image.config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids");
    assert_eq!(
        diff_ids.last().and_then(|d| d.as_str()),
        Some(support::sha256_digest(&tar).as_str())
    );

    let layout = tmp.path().join("gzip-layout");
    let copy = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .args(["--dest-compress", "--dest-compress-format", "gzip"])
        .arg(format!("docker://{}", pushed.full))
        .arg(format!("oci:{}:img", layout.display()))
        .output()
        .expect("run skopeo");
    assert!(
        copy.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let bundle = tmp.path().join("bundle");
    let unpack = std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&bundle)
        .output()
        .expect("run umoci");
    assert!(
        unpack.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    let out = expect_ran(
        &run_chroot(
            &bundle.join("rootfs"),
            &["/app/hello-krust".into(), "z".into()],
        ),
        "zstd image",
    );
    assert!(
        out.contains("Hello from krust!") && out.contains("args: z"),
        "{out}"
    );
}

/// An unchanged rebuild pushes nothing at all: no blob upload, no manifest
/// PUT, when the tag already points at the index (one HEAD per tag).
#[test]
fn unchanged_rebuild_writes_nothing_to_the_registry() {
    tools::require_default_rust_targets();
    let registry = Registry::start();
    let bases = base::push_bases(&registry);
    let repo = format!("{}/unchanged", registry.host());
    let build = || {
        krust([
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "a,b",
        ])
        .args(["--base-image", &bases.multi_ref])
        .arg(hello_krust())
        .env("KRUST_REPO", &repo)
        .run()
    };
    let first = build().single_ref();
    let mark = registry.mark();
    let second = build();
    assert_eq!(second.single_ref(), first);
    let requests = registry.requests_since(mark);
    let writes: Vec<_> = requests.iter().filter(|r| r.is_write()).collect();
    assert!(
        writes.is_empty(),
        "no write on an unchanged rebuild: {writes:?}"
    );
    let on_target: Vec<_> = requests
        .iter()
        .filter(|r| r.is_under("unchanged"))
        .collect();
    assert_eq!(
        on_target.len(),
        2,
        "one HEAD per tag on the target repository: {on_target:?}"
    );
    assert!(second.stderr.contains("Unchanged"), "{}", second.describe());

    // A tag moved elsewhere is put back (and only the index is written).
    let moved = krust(["build", "--platform", "linux/amd64", "-t", "b"])
        .args(["--base-image", &bases.multi_ref])
        .arg(hello_krust())
        .env("KRUST_REPO", &repo)
        .run()
        .single_ref();
    assert_ne!(moved, first);
    let mark = registry.mark();
    assert_eq!(build().single_ref(), first);
    let writes: Vec<_> = registry
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(
        writes
            .iter()
            .all(|r| r.method == "PUT" && r.uri.contains("/manifests/")),
        "only manifests are written back: {writes:?}"
    );
    assert!(
        writes.iter().any(|r| r.uri.ends_with("/manifests/b")),
        "{writes:?}"
    );
    assert!(
        !writes.iter().any(|r| r.uri.ends_with("/manifests/a")),
        "{writes:?}"
    );
}

/// Nothing is compiled before the plan holds: a run whose configuration is
/// invalid (here a bad repository) fails without starting cargo, even when
/// the last run of the same invocation built the package and its source
/// has changed since.
#[test]
fn an_invalid_plan_starts_no_build() {
    tools::require_default_rust_targets();
    let dir = tempfile::tempdir().expect("tempdir");
    let pkg = dir.path().join("hello-krust");
    copy_tree(&hello_krust(), &pkg);
    let target = dir.path().join("target");
    let build = || {
        build_on_scratch(&pkg)
            .args(["--no-push", "-vv"])
            .env("CARGO_TARGET_DIR", &target)
    };
    build().run().expect_success();

    let main_rs = pkg.join("src/main.rs");
    let source = std::fs::read_to_string(&main_rs).expect("main.rs");
    std::fs::write(&main_rs, format!("{source}\n// changed\n")).expect("write main.rs");
    let failed = build().env("KRUST_REPO", "Not A Repo!").run();
    failed.expect_clean_error(&["Not A Repo!"]);
    assert!(
        !failed.stderr.contains("Compiling") && !failed.stderr.contains("Building"),
        "no cargo build may start before the plan holds: {}",
        failed.describe()
    );
    let target_dir = target.to_string_lossy().into_owned();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&target_dir))
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// A run holds each triple's target directory from its cargo build until
/// the executables are layered: another run waits (saying so) instead of
/// building other features or sources into `release/<bin>` in between.
#[test]
fn a_run_waits_for_another_holding_the_target_dir() {
    tools::require_default_rust_targets();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("target");
    let triple_dir = target.join("krust/build/x86_64-unknown-linux-musl");
    std::fs::create_dir_all(&triple_dir).expect("triple dir");
    let held = std::fs::File::create(triple_dir.join("krust-run.lock")).expect("lock file");
    held.lock().expect("lock");

    let run = std::thread::spawn({
        let target = target.clone();
        move || {
            build_on_scratch(&hello_krust())
                .arg("--no-push")
                .env("CARGO_TARGET_DIR", &target)
                .run()
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !triple_dir.join("x86_64-unknown-linux-musl").exists(),
        "cargo ran into a target dir another run holds"
    );
    drop(held);
    let run = run.join().expect("the run's thread");
    run.expect_success();
    let blocking = run
        .stderr
        .find("Blocking waiting for another cargo-krust run using")
        .unwrap_or_else(|| panic!("no Blocking line: {}", run.describe()));
    let finished = run.stderr.find("Finished").unwrap_or(usize::MAX);
    assert!(blocking < finished, "{}", run.describe());
}

/// Two runs building the same two triples into one target dir both finish:
/// a run takes all its triples' directories before building, in one order,
/// so neither can hold one that the other waits for. The test holds both
/// directories while the runs start, then lets them go at once, so that the
/// runs race for them; taken one by one (as they once were), each run got
/// one and waited for the other's in one round of ten or so.
#[test]
fn two_runs_on_two_triples_do_not_deadlock() {
    tools::require_default_rust_targets();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("target");
    let run = || {
        build_on_scratch_without_dir()
            .args(["--no-push", "--platform", "linux/amd64,linux/arm64"])
            .arg(hello_krust())
            .env("CARGO_TARGET_DIR", &target)
    };
    run().run().expect_success();
    let hold = |triple: &str| {
        let lock = target
            .join("krust/build")
            .join(triple)
            .join("krust-run.lock");
        let file = std::fs::File::create(&lock).expect("lock file");
        file.lock().expect("lock");
        file
    };
    for round in 1..=20 {
        let held = [
            hold("aarch64-unknown-linux-musl"),
            hold("x86_64-unknown-linux-musl"),
        ];
        let mut runs = vec![run().spawn(), run().spawn()];
        std::thread::sleep(Duration::from_millis(700));
        drop(held);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        for i in 0..runs.len() {
            let status = loop {
                if let Some(status) = runs[i].try_wait().expect("wait") {
                    break Some(status);
                }
                if std::time::Instant::now() > deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if status.is_none() {
                for child in &mut runs {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                panic!("round {round}: the two runs wait for each other");
            }
            assert!(
                status.is_some_and(|s| s.success()),
                "round {round}: {status:?}"
            );
        }
    }
}
