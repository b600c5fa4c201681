//! The cache and the outputs (issue "trusted like crane"): no stale layer, no
//! half-written output.
//!
//! - a data file rewritten in place with its old size and mtime gives a new
//!   layer; a binary whose ctime alone moved is re-read, same digest;
//! - a layer pinned by a live run (its pin file locked) survives another
//!   run's eviction, and goes once that run is gone;
//! - leftovers of killed runs in the store's `tmp/` are swept, fresh files
//!   kept;
//! - `--image-refs` and `--oci-layout-path` on a really full disk (a small
//!   tmpfs) fail cleanly and leave what was there before, nothing else;
//! - layout entries are named by the repository path, so `team-a/api` and
//!   `team-b/api` live side by side;
//! - a run stopped by SIGINT or SIGTERM while it writes a layout removes
//!   it, and leaves no `--image-refs` file or temporary.

mod support;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::disk::SmallDisk;
use support::image::{TarEntry, gunzip, tar_entries};
use support::krust::{KrustRun, build_on_scratch, hello_krust};
use support::process::run_ok;
use support::{copy_tree, sha256_digest, tools};

/// hello-krust copied to `parent/hello-krust` with a `data` directory
/// holding `files`.
fn package_with_data(parent: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    let pkg = parent.join("hello-krust");
    copy_tree(&hello_krust(), &pkg);
    let manifest = pkg.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    text.push_str("\n[package.metadata.krust]\ndata = \"data\"\n");
    std::fs::write(&manifest, text).expect("write Cargo.toml");
    std::fs::create_dir_all(pkg.join("data")).expect("create data dir");
    for (name, content) in files {
        std::fs::write(pkg.join("data").join(name), content).expect("write data file");
    }
    pkg
}

/// `--no-push` build of `pkg` on scratch (amd64) with its own target dir,
/// into the OCI layout `layout`.
fn build_into(pkg: &Path, target: &Path, layout: &Path) -> support::krust::Krust {
    build_on_scratch(pkg)
        .arg("--no-push")
        .arg("--oci-layout-path")
        .arg(layout)
        .env("CARGO_TARGET_DIR", target)
}

/// The layers of image `name` (e.g. `hello-krust:latest`) in an OCI layout:
/// the index found by skopeo, the manifest and layers read from the blobs.
fn layout_layers(layout: &Path, name: &str) -> Vec<(String, Vec<TarEntry>)> {
    let skopeo = tools::require("skopeo", "skopeo");
    let raw = run_ok(
        Command::new(skopeo)
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{name}", layout.display())),
        Duration::from_secs(60),
        "skopeo inspect --raw oci:LAYOUT:NAME",
    )
    .stdout;
    let blob = |digest: &str| -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let path = layout.join("blobs/sha256").join(hex);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "blob {} intact",
            path.display()
        );
        bytes
    };
    let json = |bytes: &[u8]| -> Value { serde_json::from_slice(bytes).expect("JSON document") };
    let index = json(&raw);
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("index entry");
    let manifest = json(&blob(manifest_digest));
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|layer| {
            let digest = layer["digest"].as_str().expect("layer digest").to_string();
            let entries = tar_entries(&gunzip(&blob(&digest)));
            (digest, entries)
        })
        .collect()
}

/// The content of `path` in the layer, if the layer holds it.
fn file_in(entries: &[TarEntry], path: &str) -> Option<Vec<u8>> {
    entries
        .iter()
        .find(|e| e.path == path)
        .map(|e| e.data.clone())
}

/// Every file below `dir` with its content, relative paths sorted.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let relative = path
                .strip_prefix(root)
                .expect("below root")
                .display()
                .to_string();
            if path.is_dir() {
                out.push((format!("{relative}/"), Vec::new()));
                walk(root, &path, out);
            } else {
                out.push((relative, std::fs::read(&path).expect("read file")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The names in a snapshot, for readable failures.
fn names(snapshot: &[(String, Vec<u8>)]) -> Vec<&str> {
    snapshot.iter().map(|(name, _)| name.as_str()).collect()
}

/// A failed run as the output contract wants it: exit 1–99, nothing on
/// stdout, an `error:` line with every word of `words`.
fn expect_failure(run: &KrustRun, words: &[&str]) -> String {
    let line = run.expect_clean_error(words);
    let code = run.status.code().unwrap_or_default();
    assert!(
        (1..=99).contains(&code),
        "exit code {code}:\n{}",
        run.describe()
    );
    assert!(line.starts_with("error:"), "{line}");
    line
}

/// Bytes that do not compress (xorshift), so a layer keeps their size.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Sets a file's mtime.
fn set_mtime(path: &Path, time: SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(time))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// `cp -p` and `rsync -a` rewrite a file in place and put its mtime back:
/// same size, same inode, same mtime — only the ctime tells. The image must
/// carry the new content. A binary whose ctime alone moved (cargo may
/// re-link the same bytes) is read again and gives the same image.
#[test]
fn data_rewritten_in_place_with_its_old_mtime_gives_a_new_layer() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = package_with_data(tmp.path(), &[("v.txt", b"first")]);
    let target = tmp.path().join("target");
    let build = |layout: &str| {
        let layout = tmp.path().join(layout);
        let run = build_into(&pkg, &target, &layout).arg("-v").run();
        let layers = layout_layers(&layout, "hello-krust:latest");
        (run, layers)
    };
    let (first, layers) = build("one");
    let first = first.single_ref();
    assert_eq!(
        file_in(&layers[0].1, "var/run/krust/v.txt").as_deref(),
        Some(&b"first"[..])
    );

    let data_file = pkg.join("data/v.txt");
    let mtime = std::fs::metadata(&data_file)
        .and_then(|m| m.modified())
        .expect("mtime");
    let mut file = File::options()
        .write(true)
        .open(&data_file)
        .expect("open data file");
    file.write_all(b"again").expect("rewrite in place");
    file.set_modified(mtime).expect("put the mtime back");
    drop(file);

    let (second, layers) = build("two");
    let second = second.single_ref();
    assert_ne!(second.digest, first.digest, "a new image");
    assert_eq!(
        file_in(&layers[0].1, "var/run/krust/v.txt").as_deref(),
        Some(&b"again"[..]),
        "the image carries the new content"
    );
    let (data_layer, binary_layer) = (layers[0].0.clone(), layers[1].0.clone());

    // chmod to the same mode moves the ctime alone.
    let mut binaries = Vec::new();
    find_files(&target.join("krust/build"), "hello-krust", &mut binaries);
    assert!(
        !binaries.is_empty(),
        "no hello-krust under {}",
        target.display()
    );
    for binary in &binaries {
        let mode = std::fs::metadata(binary).expect("stat").permissions();
        std::fs::set_permissions(binary, mode).expect("chmod");
    }
    let (third, _) = build("three");
    assert_eq!(third.single_ref(), second, "same bytes, same image");
    assert!(
        third
            .stderr
            .contains(&format!("layer {data_layer} reused from the cache")),
        "{}",
        third.describe()
    );
    assert!(
        !third
            .stderr
            .contains(&format!("layer {binary_layer} reused from the cache")),
        "a binary with a new ctime is read again: {}",
        third.describe()
    );
}

/// Every file named `name` below `dir`.
fn find_files(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            find_files(&path, name, out);
        } else if path.file_name().is_some_and(|n| n == name) {
            out.push(path);
        }
    }
}

/// Run A (played by this test process: a pin file in the documented format,
/// held locked) uses a data layer while run B (the real binary) builds four
/// newer versions of it, enough to evict it: A's layer stays, an unpinned
/// one of the same age goes. Once A's lock is released (as when A dies
/// without cleaning up), the next eviction takes the layer and the dead pin
/// file.
#[test]
fn a_layer_pinned_by_a_live_run_survives_eviction_by_another() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = package_with_data(tmp.path(), &[("v.txt", b"version 0")]);
    let target = tmp.path().join("target");
    let store = target.join("krust");
    let build = |version: u32| -> String {
        std::fs::write(pkg.join("data/v.txt"), format!("version {version}")).expect("write data");
        let layout = tmp.path().join(format!("layout-{version}"));
        build_into(&pkg, &target, &layout).run().single_ref();
        let layers = layout_layers(&layout, "hello-krust:latest");
        layers[0].0.clone()
    };
    let stored = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").expect("sha256");
        store.join("blobs/sha256").join(hex).is_file()
    };

    let pinned = build(0);
    std::fs::create_dir_all(store.join("pins")).expect("pins dir");
    let pin_path = store.join("pins/run-a.pin");
    let mut pin = File::create(&pin_path).expect("create pin file");
    writeln!(pin, "{pinned}").expect("write pin");
    pin.lock().expect("lock pin file");

    let newer: Vec<String> = (1..=4).map(build).collect();
    assert!(
        !stored(&newer[0]),
        "the slot keeps three layers: version 1 was evicted"
    );
    assert!(stored(&pinned), "the layer run A pinned survives");
    assert!(pin_path.is_file(), "a live run's pin file stays");

    drop(pin);
    build(5);
    assert!(
        !stored(&pinned),
        "unpinned, it leaves with the next eviction"
    );
    assert!(!pin_path.exists(), "the dead run's pin file is removed");
}

/// A killed run leaves its temporary files in the store's `tmp/`: those
/// untouched for hours are swept when a run opens the store; a fresh one (a
/// live run's file being written) is kept.
#[test]
fn old_leftovers_in_the_store_tmp_are_swept_fresh_ones_kept() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("target");
    let store_tmp = target.join("krust/tmp");
    std::fs::create_dir_all(&store_tmp).expect("store tmp");
    let old = store_tmp.join(".tmpKilled");
    let fresh = store_tmp.join(".tmpLive");
    std::fs::write(&old, vec![0u8; 1 << 20]).expect("write old");
    std::fs::write(&fresh, b"being written").expect("write fresh");
    set_mtime(&old, SystemTime::now() - Duration::from_secs(7 * 3600));

    build_on_scratch(&hello_krust())
        .arg("--no-push")
        .env("CARGO_TARGET_DIR", &target)
        .run()
        .single_ref();
    assert!(!old.exists(), "a leftover of a killed run is swept");
    assert!(fresh.is_file(), "a fresh temporary file is kept");
}

/// `--image-refs FILE` on a full disk: a clean error naming FILE and the
/// cause, and no FILE (not even an empty one) nor a temporary file left.
#[test]
fn image_refs_on_a_full_disk_leave_nothing() {
    tools::require_default_rust_targets();
    let disk = SmallDisk::mount("64k");
    disk.fill();
    let before = snapshot(&disk.mount);
    let refs = disk.mount.join("refs.txt");

    let run = build_on_scratch(&hello_krust())
        .arg("--no-push")
        .arg("--image-refs")
        .arg(&refs)
        .run();
    expect_failure(&run, &[&refs.display().to_string(), "no space left"]);
    assert_eq!(names(&snapshot(&disk.mount)), names(&before));
}

/// `--oci-layout-path` on a full disk (a layer bigger than the disk): a
/// clean error naming the layout and the cause; a layout the run created is
/// gone, an existing one is exactly as it was (no new blob, no `.partial`
/// file, index.json untouched).
#[test]
fn oci_layout_on_a_full_disk_is_all_or_nothing() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let big = incompressible(3 << 20);
    let pkg = package_with_data(tmp.path(), &[("big.bin", &big)]);
    let target = tmp.path().join("target");
    let disk = SmallDisk::mount("2m");

    let created = disk.mount.join("new/layout");
    let run = build_into(&pkg, &target, &created).run();
    let line = expect_failure(&run, &[&created.display().to_string(), "no space left"]);
    assert!(line.contains("OCI layout"), "{line}");
    assert_eq!(names(&snapshot(&disk.mount)), Vec::<&str>::new());

    let existing = disk.mount.join("layout");
    build_into(&hello_krust(), &target, &existing)
        .run()
        .single_ref();
    let before = snapshot(&disk.mount);
    assert!(names(&before).contains(&"layout/index.json"));
    let run = build_into(&pkg, &target, &existing).run();
    expect_failure(&run, &[&existing.display().to_string(), "no space left"]);
    let after = snapshot(&disk.mount);
    assert_eq!(names(&after), names(&before), "no file added or removed");
    assert!(after == before, "every file as it was");
}

/// Two images whose names end in the same word (`team-a/api`,
/// `team-b/api`) written into one layout keep an entry each, named by the
/// repository path and readable with skopeo; `io.containerd.image.name`
/// keeps the full name.
#[test]
fn layout_entries_are_named_by_repository_path() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let build = |team: &str, epoch: &str| {
        build_on_scratch(&hello_krust())
            .args(["--no-push", "-i", &format!("krust.local/{team}/api")])
            .arg("--oci-layout-path")
            .arg(&layout)
            .env("SOURCE_DATE_EPOCH", epoch)
            .run()
            .single_ref()
    };
    let a = build("team-a", "1");
    let b = build("team-b", "2");
    assert_ne!(a.digest, b.digest);

    let skopeo = tools::require("skopeo", "skopeo");
    for (name, pushed) in [("team-a/api:latest", &a), ("team-b/api:latest", &b)] {
        let raw = run_ok(
            Command::new(&skopeo)
                .args(["inspect", "--raw"])
                .arg(format!("oci:{}:{name}", layout.display())),
            Duration::from_secs(60),
            "skopeo inspect --raw",
        )
        .stdout;
        assert_eq!(sha256_digest(&raw), pushed.digest, "{name}");
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("JSON");
    let full_names: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["annotations"]["io.containerd.image.name"].as_str())
        .collect();
    assert_eq!(
        full_names,
        [
            "krust.local/team-a/api:latest",
            "krust.local/team-b/api:latest"
        ]
    );
}

/// An existing layout whose index.json is not an image index (here a JSON
/// list) is refused with its name and the fix, before any blob is written,
/// and left as it was (it used to panic).
#[test]
fn a_layout_with_a_damaged_index_json_is_named_and_left_alone() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    std::fs::create_dir(&layout).expect("layout dir");
    std::fs::write(layout.join("index.json"), "[]").expect("write index.json");
    let before = snapshot(tmp.path());

    let run = build_on_scratch(&hello_krust())
        .arg("--no-push")
        .arg("--oci-layout-path")
        .arg(&layout)
        .run();
    expect_failure(&run, &["index.json", "--oci-layout-path"]);
    assert!(snapshot(tmp.path()) == before, "the layout is untouched");
    // Found before anything is built; as is a layout path that is a file.
    assert!(!run.stderr.contains("Building"), "{}", run.describe());
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").expect("write a file");
    let run = build_on_scratch(&hello_krust())
        .arg("--no-push")
        .arg("--oci-layout-path")
        .arg(&file)
        .run();
    expect_failure(&run, &[&file.display().to_string(), "not a directory"]);
    assert!(!run.stderr.contains("Building"), "{}", run.describe());
}

/// SIGINT (and SIGTERM) in the middle of writing a layout: the run ends with
/// the shell's status for the signal (130, 143), nothing on stdout, one
/// `error:` line, and neither the layout it had begun (its base layer's
/// download hangs on a rogue registry) nor `--image-refs` or a temporary
/// of it is left.
#[test]
fn a_run_stopped_by_a_signal_leaves_nothing_half_written() {
    use support::rogue::{Answer, Rogue, RogueBase};
    tools::require_default_rust_targets();
    let rogue = Rogue::start();
    let served = RogueBase::amd64().serve(&rogue, "base", "latest", |_| {}, |_| {});
    rogue.route(
        "GET",
        &format!("/v2/base/blobs/{}", served.layer.digest),
        Answer::hang(),
    );
    let base = format!("{}/base:latest", rogue.host());
    for (signal, status) in [("INT", 130), ("TERM", 143)] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = tmp.path().join("out/layout");
        let refs_dir = tmp.path().join("refs");
        std::fs::create_dir(&refs_dir).expect("refs dir");
        let mut child = support::krust::krust([
            "build",
            "--no-push",
            "--platform",
            "linux/amd64",
            "--base-image",
            &base,
        ])
        .arg(hello_krust())
        .arg("--oci-layout-path")
        .arg(&layout)
        .arg("--image-refs")
        .arg(refs_dir.join("refs.txt"))
        .spawn_piped();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !layout.join("blobs").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the layout was never begun"
            );
            assert!(child.try_wait().expect("wait").is_none(), "it ended early");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        run_ok(
            Command::new("kill").args([format!("-{signal}"), child.id().to_string()]),
            Duration::from_secs(10),
            "kill",
        );
        let output = child.wait_with_output().expect("wait for it");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "SIG{signal}: {stderr}");
        assert!(output.stdout.is_empty(), "SIG{signal}: stdout");
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("error:") && l.contains(&format!("SIG{signal}"))),
            "SIG{signal}: {stderr}"
        );
        assert!(
            !tmp.path().join("out").exists(),
            "SIG{signal}: the layout stayed"
        );
        assert_eq!(
            names(&snapshot(&refs_dir)),
            Vec::<&str>::new(),
            "SIG{signal}: --image-refs left something"
        );
    }
}
