//! Build inputs that must never give a wrong image (issue 14), with the real
//! binary and a real registry:
//!
//! - `--platform all` (and `KRUST_PLATFORMS=all`, `platforms = ["all"]`) is
//!   the base image's platforms, as ko's; with a platform the base lacks it
//!   is an error naming it;
//! - two bins (or two `krust://` references) named into one repository are
//!   refused before anything is built, naming both and the fix;
//! - per-bin `features`: bins of one package with different feature sets
//!   each get exactly theirs (the images run and print them), and a bin's
//!   own features satisfy its `required-features`;
//! - a `target.'cfg(…)'` rustflags table that does not hold for the target
//!   leaves the user's `build.rustflags` in force, and a `cfg(…)` linker
//!   that holds for it is used, not replaced;
//! - a binary that is not static (the user's linker and rustflags link it
//!   against this machine's glibc) is refused, naming the bin, the platform,
//!   what it needs and the likely cause;
//! - `SOURCE_DATE_EPOCH`: past 9999-12-31T23:59:59Z it is refused, naming
//!   the variable and the range; the largest accepted value dates the config
//!   and the layer entries (read back with GNU tar).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::image::{PushedRef, expect_ran, fetch_index, pull_and_unpack, run_chroot};
use support::krust::{build_on_scratch, hello_krust, krust, resolve_on_scratch};
use support::{copy_tree, shared, tools, unique_name};

#[test]
fn source_date_epoch_past_year_9999_is_refused() {
    let run = build_on_scratch(&hello_krust())
        .arg("--no-push")
        .env("SOURCE_DATE_EPOCH", "253402300800")
        .run();
    run.expect_clean_error(&[
        "SOURCE_DATE_EPOCH",
        "253402300800",
        "9999-12-31T23:59:59Z",
        "from 0 to 253402300799",
    ]);
}

/// 253402300799 is past what tar's octal mtime field holds (8^11 seconds):
/// the entries still carry it (GNU's base-256 form), as GNU tar reads them.
#[test]
fn largest_source_date_epoch_dates_config_and_layer_entries() {
    tools::require_default_rust_targets();
    let gnu_tar = tools::require("tar", "tar");
    let shared = shared();
    let repo = format!("{}/{}", shared.registry.host(), unique_name("epoch"));
    let pushed = build_on_scratch(&hello_krust())
        .env("KRUST_REPO", &repo)
        .env("SOURCE_DATE_EPOCH", "253402300799")
        .run()
        .single_ref();
    let index = fetch_index(&shared.registry, &pushed);
    let image = index.image("amd64");
    assert_eq!(image.config["created"], "9999-12-31T23:59:59Z");
    let layer = image.layers.last().expect("the binary layer");
    let entries = support::image::tar_entries(&layer.tar);
    assert!(!entries.is_empty());
    for entry in &entries {
        assert_eq!(entry.mtime, 253_402_300_799, "{}", entry.path);
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("layer.tar");
    std::fs::write(&file, &layer.tar).expect("write layer.tar");
    let listing = Command::new(gnu_tar)
        .args(["--list", "--verbose", "--full-time", "--file"])
        .arg(&file)
        .env("TZ", "UTC")
        .output()
        .expect("run tar");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert_eq!(text.lines().count(), entries.len(), "{text}");
    for line in text.lines() {
        assert!(line.contains(" 9999-12-31 23:59:59 "), "{text}");
    }
}

/// Appends `text` to the Cargo.toml of `package`.
fn append_to_manifest(package: &Path, text: &str) {
    let manifest = package.join("Cargo.toml");
    let mut content = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    content.push_str(text);
    std::fs::write(&manifest, content).expect("write Cargo.toml");
}

#[test]
fn platform_all_means_the_base_images_platforms() {
    tools::require_default_rust_targets();
    let shared = shared();
    let repo = format!("{}/{}", shared.registry.host(), unique_name("all"));
    let build = |package: &Path| {
        krust(["build", "--base-image"])
            .arg(&shared.bases.multi_ref)
            .arg(package)
            .env("KRUST_REPO", &repo)
    };
    let pushed = build(&hello_krust())
        .args(["--platform", "all"])
        .run()
        .single_ref();
    let index = fetch_index(&shared.registry, &pushed);
    assert_eq!(index.platforms(), ["linux/amd64", "linux/arm64/v8"]);

    // The environment and the configuration key mean the same: the same image.
    let from_env = build(&hello_krust())
        .arg("--no-push")
        .env("KRUST_PLATFORMS", "all")
        .run()
        .single_ref();
    assert_eq!(from_env, pushed);
    // An empty list sets nothing: the default, never an index of no image.
    let empty = build(&hello_krust())
        .args(["--no-push", "--platform", " ,"])
        .env("KRUST_PLATFORMS", ",")
        .run()
        .single_ref();
    assert_eq!(empty, pushed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let package = tmp.path().join("hello-krust");
    copy_tree(&hello_krust(), &package);
    append_to_manifest(
        &package,
        "\n[package.metadata.krust]\nplatforms = [\"all\"]\n",
    );
    let from_key = build(&package).arg("--no-push").run().single_ref();
    assert_eq!(from_key.digest, pushed.digest);

    // `all` plus a platform the base does not have: that platform is named.
    let run = build(&hello_krust())
        .args(["--no-push", "--platform", "all,linux/386"])
        .run();
    run.expect_clean_error(&["base image", "has no linux/386 image"]);
}

/// A package `name` in `parent` whose bins are `(bin, main.rs)` pairs
/// (`src/bin/<bin>.rs`), with `extra` appended to its Cargo.toml.
fn package_with_bins(parent: &Path, name: &str, bins: &[(&str, &str)], extra: &str) -> PathBuf {
    let package = support::cargo_new_bin(parent, name);
    std::fs::remove_file(package.join("src/main.rs")).expect("remove main.rs");
    std::fs::create_dir_all(package.join("src/bin")).expect("mkdir src/bin");
    for (bin, main) in bins {
        std::fs::write(package.join(format!("src/bin/{bin}.rs")), main).expect("write a bin");
    }
    append_to_manifest(&package, extra);
    package
}

/// Writes `.cargo/config.toml` of `package`; returns its path.
fn write_cargo_config(package: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(package.join(".cargo")).expect("mkdir .cargo");
    let config = package.join(".cargo/config.toml");
    std::fs::write(&config, text).expect("write config.toml");
    config
}

/// What `/app/<bin>` of the pushed image's linux/amd64 image prints.
fn run_amd64(pushed: &PushedRef, bin: &str) -> String {
    let unpacked = pull_and_unpack(&pushed.full, "amd64", None);
    expect_ran(&run_chroot(&unpacked.rootfs, &[format!("/app/{bin}")]), bin)
}

const EMPTY_MAIN: &str = "fn main() {}\n";

#[test]
fn two_bins_named_into_one_repository_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let package = package_with_bins(
        tmp.path(),
        "twins",
        &[("one", EMPTY_MAIN), ("two", EMPTY_MAIN)],
        "\n[package.metadata.krust.bin.two]\nname = \"One\"\n",
    );
    let run = build_on_scratch(&package)
        .args(["--repo", "127.0.0.1:1/never-used"])
        .run();
    let line = run.expect_clean_error(&[
        "bin `one` of package `twins`",
        "bin `two` of package `twins`",
        "127.0.0.1:1/never-used/one",
        "name = ",
        "[package.metadata.krust.bin.two]",
    ]);
    assert!(
        line.contains(&package.join("Cargo.toml").display().to_string()),
        "{line}"
    );
    assert!(!run.stderr.contains("Compiling"), "{}", run.describe());
}

#[test]
fn two_references_resolved_to_one_image_name_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for dir in ["a", "b"] {
        std::fs::create_dir(tmp.path().join(dir)).expect("mkdir");
        support::cargo_new_bin(&tmp.path().join(dir), "app");
    }
    let run = resolve_on_scratch()
        .args(["-f", "-"])
        .current_dir(tmp.path())
        .stdin("a: krust://a/app\nb: krust://b/app\n")
        .run();
    let line =
        run.expect_clean_error(&["bin `app` of package `app`", "krust.local/app", "name = "]);
    for dir in ["a", "b"] {
        let manifest = tmp.path().join(dir).join("app/Cargo.toml");
        assert!(line.contains(&manifest.display().to_string()), "{line}");
    }
}

/// main.rs of the features package: which of its features are on.
const FEATURES_MAIN: &str = r#"fn main() {
    println!("red: {}, blue: {}", cfg!(feature = "red"), cfg!(feature = "blue"));
}
"#;

#[test]
fn per_bin_features_reach_their_own_bin_only() {
    tools::require_default_rust_targets();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let bins = ["one", "two", "plain", "needs-red"];
    let package = package_with_bins(
        tmp.path(),
        "colours",
        &bins.map(|bin| (bin, FEATURES_MAIN)),
        r#"
[features]
red = []
blue = []

[[bin]]
name = "needs-red"
path = "src/bin/needs-red.rs"
required-features = ["red"]

[package.metadata.krust.bin.one]
features = ["red"]

[package.metadata.krust.bin.two]
features = ["blue"]

[package.metadata.krust.bin.needs-red]
features = ["red"]
"#,
    );
    let repo = format!("{}/{}", shared.registry.host(), unique_name("features"));
    let run = build_on_scratch(&package).env("KRUST_REPO", &repo).run();
    let refs = run.refs();
    assert_eq!(refs.len(), bins.len(), "{}", run.describe());
    for (bin, expected) in [
        ("one", "red: true, blue: false"),
        ("two", "red: false, blue: true"),
        ("plain", "red: false, blue: false"),
        ("needs-red", "red: true, blue: false"),
    ] {
        let pushed = refs
            .iter()
            .find(|r| r.repo.ends_with(&format!("/{bin}")))
            .unwrap_or_else(|| panic!("no image for {bin}:\n{}", run.describe()));
        assert_eq!(run_amd64(pushed, bin).trim_end(), expected, "{bin}");
    }
}

/// Two members of a workspace with a bin of one name (`server`), the second
/// given another image name: cargo writes both to `release/server`, so one
/// cargo invocation (or two in a row) would put one package's binary in
/// both images. Each image must run its own package's binary.
#[test]
fn bins_of_one_name_in_two_packages_each_reach_their_image() {
    tools::require_default_rust_targets();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).expect("mkdir ws");
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"a\", \"b\"]\nresolver = \"2\"\n",
    )
    .expect("workspace manifest");
    for (package, extra) in [
        ("a", ""),
        (
            "b",
            "\n[package.metadata.krust.bin.server]\nname = \"b-server\"\n",
        ),
    ] {
        let main = format!("fn main() {{\n    println!(\"server of {package}\");\n}}\n");
        package_with_bins(&root, package, &[("server", main.as_str())], extra);
    }
    let repo = format!("{}/{}", shared.registry.host(), unique_name("same-bin"));
    let run = build_on_scratch(&root)
        .arg("--workspace")
        .env("KRUST_REPO", &repo)
        .run();
    let refs = run.refs();
    assert_eq!(refs.len(), 2, "{}", run.describe());
    for (name, expected) in [("server", "server of a"), ("b-server", "server of b")] {
        let pushed = refs
            .iter()
            .find(|r| r.repo.ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("no image {name}:\n{}", run.describe()));
        assert_eq!(run_amd64(pushed, "server").trim_end(), expected, "{name}");
    }
}

/// main.rs of the cfg package: which rustflags reached rustc.
const CFG_MAIN: &str = r#"fn main() {
    println!("build.rustflags: {}, cfg(windows) table: {}", cfg!(krust_build), cfg!(krust_windows));
}
"#;

/// `build.rustflags` plus rustflags for `cfg(windows)`, which does not hold
/// for any Linux target: cargo uses `build.rustflags`.
const CFG_CONFIG: &str = r#"[build]
rustflags = ["--cfg", "krust_build"]

[target.'cfg(windows)']
rustflags = ["--cfg", "krust_windows"]
"#;

#[test]
fn cfg_rustflags_table_for_another_target_keeps_build_rustflags() {
    tools::require_default_rust_targets();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let package = package_with_bins(
        tmp.path(),
        "cfg-flags",
        &[("cfg-flags", CFG_MAIN)],
        "\n[lints.rust]\nunexpected_cfgs = { level = \"warn\", check-cfg = ['cfg(krust_build)', 'cfg(krust_windows)'] }\n",
    );
    write_cargo_config(&package, CFG_CONFIG);
    let repo = format!("{}/{}", shared.registry.host(), unique_name("cfg"));
    let pushed = build_on_scratch(&package)
        .env("KRUST_REPO", &repo)
        .run()
        .single_ref();
    assert_eq!(
        run_amd64(&pushed, "cfg-flags"),
        "build.rustflags: true, cfg(windows) table: false\n"
    );
}

#[test]
fn cfg_linker_that_holds_for_the_target_is_used() {
    tools::require_default_rust_targets();
    tools::require("cc", "gcc");
    let tmp = tempfile::tempdir().expect("tempdir");
    let package = support::cargo_new_bin(tmp.path(), "cfg-linker");
    let marker = tmp.path().join("linked-by-my-linker");
    let wrapper = tmp.path().join("my-linker");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\ntouch '{}'\nexec cc \"$@\"\n", marker.display()),
    )
    .expect("write the linker");
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&wrapper, executable).expect("make the linker executable");
    let config = write_cargo_config(
        &package,
        &format!(
            "[target.'cfg(target_arch = \"x86_64\")']\nlinker = \"{}\"\n",
            wrapper.display()
        ),
    );
    let run = build_on_scratch(&package)
        .args(["--no-push", "-v"])
        .env("CARGO_TARGET_DIR", tmp.path().join("target"))
        .run();
    run.single_ref();
    let explained = format!(
        "uses cargo's defaults: you configured a linker for x86_64-unknown-linux-musl \
         (target.'cfg(target_arch = \"x86_64\")'.linker in {})",
        config.display()
    );
    assert!(run.stderr.contains(&explained), "{}", run.describe());
    assert!(
        marker.exists(),
        "the configured linker did not run:\n{}",
        run.describe()
    );
}

/// Links dynamically against this machine's glibc: `cc` as the linker and
/// musl's static C runtime turned off.
const DYNAMIC_CONFIG: &str = r#"[target.x86_64-unknown-linux-musl]
linker = "cc"
rustflags = ["-C", "target-feature=-crt-static"]
"#;

#[test]
fn dynamically_linked_binary_is_refused() {
    tools::require_default_rust_targets();
    tools::require("cc", "gcc");
    let tmp = tempfile::tempdir().expect("tempdir");
    let package = support::cargo_new_bin(tmp.path(), "dynamic");
    write_cargo_config(&package, DYNAMIC_CONFIG);
    let layout = tmp.path().join("layout");
    let run = build_on_scratch(&package)
        .arg("--no-push")
        .arg("--oci-layout-path")
        .arg(&layout)
        .run();
    run.expect_clean_error(&[
        "bin `dynamic` for linux/amd64",
        "is dynamically linked",
        "the program interpreter /lib64/ld-linux-x86-64.so.2",
        "libc.so.6",
        "-crt-static",
    ]);
    assert!(!layout.exists(), "nothing is written for a refused binary");
}
