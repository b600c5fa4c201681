//! Cross-compilation that just works (issue 6), with the real binary, a real
//! registry, zig/cargo-zigbuild, musl-gcc and qemu:
//!
//! - examples/c-deps (mimalloc + zstd, both C) for linux/amd64 and linux/arm64
//!   in one run with zig: both images run (arm64 under qemu) and exercise the
//!   C code; `-v` explains the choice; one progress line per platform;
//! - examples/c-deps for linux/386: builds and runs;
//! - without zig on PATH: the C example fails before building with the
//!   install hint, while hello-krust still builds for both platforms, and
//!   musl-gcc builds the C example for linux/amd64;
//! - the user's `.cargo/config.toml` (rustflags, `[env]`, a target linker)
//!   and RUSTFLAGS reach the build, with rust-lld and with `linker = "zig"`;
//! - build-std: armv7 built with nightly `-Zbuild-std` (nightly with rust-src
//!   is required, as scripts/test installs it), and a target without a
//!   prebuilt std names the flag and the command that makes it work.
//!
//! All builds share the suite's target dir (one cargo dir per triple in it),
//! so each example compiles once per platform per machine.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::image::{self, PushedImage, PushedIndex, app_binary, run_platform};
use support::krust::{Krust, hello_krust, krust};
use support::{elf, example, shared, shared_target_dir, tools, unique_name};

/// The pip command in the error when no C cross compiler is found.
const INSTALL_HINT: &str =
    "`pip install ziglang cargo-zigbuild` (or `cargo install cargo-zigbuild` plus zig)";

/// The ELF header of `/app/<bin>` in the app layer.
fn app_elf(image: &PushedImage, bin: &str) -> elf::ElfInfo {
    elf::parse(&app_binary(image, bin)).unwrap_or_else(|e| panic!("/app/{bin}: {e}"))
}

/// Every image of the index is a static binary for its own architecture.
fn assert_static_for_each_arch(index: &PushedIndex, bin: &str) {
    for image in &index.images {
        let info = app_elf(image, bin);
        assert_eq!(
            info.machine,
            elf::machine_of(&image.architecture),
            "{}: ELF machine of /app/{bin}",
            image.architecture
        );
        assert!(info.is_static(), "{}: {info:?}", image.architecture);
    }
}

/// The binaries name no path of this machine: registry sources (cargo's
/// home), the checkout and the target dir are remapped (panic locations of
/// the zstd and mimalloc crates would otherwise carry them).
fn assert_no_local_paths(index: &PushedIndex, bin: &str) {
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    let checkout = support::repo_root().display().to_string();
    for image in &index.images {
        let binary = app_binary(image, bin);
        let text = String::from_utf8_lossy(&binary);
        for path in [&cargo_home, &checkout] {
            assert!(
                !text.contains(path.as_str()),
                "{}: /app/{bin} contains the local path {path}",
                image.architecture
            );
        }
        assert!(
            text.contains("/cargo/registry/src/"),
            "{}: registry sources are named by their remapped path",
            image.architecture
        );
    }
}

/// `os/arch` of each image, `arm64/v8` folded into `arm64`.
fn platforms(index: &PushedIndex) -> Vec<String> {
    index
        .platforms()
        .into_iter()
        .map(|p| p.replace("linux/arm64/v8", "linux/arm64"))
        .collect()
}

/// What examples/c-deps prints when its C code works, for a Rust arch name.
fn assert_c_deps_output(out: &str, rust_arch: &str, args: &str) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "c-deps output:\n{out}");
    assert_eq!(lines[0], "c-deps: C code cross-compiled by cargo-krust");
    assert_eq!(lines[1], format!("arch: {rust_arch}"));
    assert!(
        lines[2].starts_with("allocator: mimalloc ")
            && lines[2].ends_with("(heap allocation owned by mimalloc: true)"),
        "mimalloc is not the allocator in use:\n{out}"
    );
    assert!(
        lines[3].starts_with("zstd 1.") && lines[3].ends_with(", round trip ok"),
        "zstd did not round-trip:\n{out}"
    );
    assert!(
        lines[3].contains(": 10800 bytes -> "),
        "zstd compressed the wrong input:\n{out}"
    );
    assert_eq!(lines[4], format!("args: {args}"));
}

/// A PATH with cargo, rustc and rustup and the system directories, but
/// neither zig nor cargo-zigbuild (they come from pip or cargo install).
fn path_without_zig(tmp: &Path) -> String {
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).expect("create bin dir");
    for tool in ["cargo", "rustc", "rustup"] {
        let real = tools::find_in_path(tool)
            .unwrap_or_else(|| panic!("`{tool}` is not on PATH; install Rust with rustup"));
        std::os::unix::fs::symlink(&real, bin.join(tool)).expect("symlink a Rust tool");
    }
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    for dir in std::env::split_paths(&path) {
        for tool in ["zig", "cargo-zigbuild"] {
            assert!(
                !dir.join(tool).exists(),
                "{} is in {}, a system directory; this test needs a PATH without zig",
                tool,
                dir.display()
            );
        }
    }
    path
}

/// examples/c-deps for linux/amd64 and linux/arm64 in one run onto the
/// multi-platform base: zig is chosen and explained, each platform gets its
/// own progress line, both binaries are static for their arch and both run,
/// using mimalloc and zstd (arm64 under qemu).
#[test]
fn c_example_builds_for_amd64_and_arm64_in_one_run_and_both_run() {
    tools::require_default_rust_targets();
    tools::require_zig();
    let shared = shared();
    let repo = format!("{}/{}", shared.registry.host(), unique_name("cdeps"));
    let run = krust(["build", "-v"])
        .arg(example("c-deps"))
        .args(["--base-image", &shared.bases.multi_ref])
        .env("KRUST_REPO", &repo)
        .run();
    let pushed = run.single_ref();
    for (platform, triple) in [
        ("linux/amd64", "x86_64-unknown-linux-musl"),
        ("linux/arm64", "aarch64-unknown-linux-musl"),
    ] {
        let explained = format!(
            "c-deps for {platform} ({triple}) uses zig (cargo-zigbuild): its build compiles C \
             (libmimalloc-sys: build script uses cc; zstd-sys: build script uses cc)"
        );
        assert!(
            run.stderr.contains(&explained),
            "-v must explain the toolchain choice ({explained:?}):\n{}",
            run.describe()
        );
        let started = format!("Building c-deps for {platform} ({triple}, zig (cargo-zigbuild))");
        let done = format!("Built {platform} in ");
        for line in [&started, &done] {
            assert_eq!(
                run.stderr.matches(line.as_str()).count(),
                1,
                "one `{line}` line per platform:\n{}",
                run.describe()
            );
        }
    }

    let index = image::fetch_index(&shared.registry, &pushed);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_static_for_each_arch(&index, "c-deps");
    assert_no_local_paths(&index, "c-deps");
    for (arch, rust_arch) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let out = run_platform(&pushed, index.image(arch), &["x", "y"]);
        assert_c_deps_output(&out, rust_arch, "x y");
    }
}

/// examples/c-deps for linux/386 (i686 musl, zig): a static 32-bit x86
/// binary that runs and uses its C code.
#[test]
fn c_example_builds_and_runs_on_linux_386() {
    tools::require_rust_targets(&["i686-unknown-linux-musl"]);
    tools::require_zig();
    let shared = shared();
    let repo = format!("{}/{}", shared.registry.host(), unique_name("cdeps-386"));
    let pushed = krust([
        "build",
        "--platform",
        "linux/386",
        "--base-image",
        "scratch",
    ])
    .arg(example("c-deps"))
    .env("KRUST_REPO", &repo)
    .run()
    .single_ref();
    let index = image::fetch_index(&shared.registry, &pushed);
    assert_eq!(platforms(&index), ["linux/386"]);
    assert_static_for_each_arch(&index, "c-deps");
    assert!(!app_elf(index.image("386"), "c-deps").is_64bit);
    let out = run_platform(&pushed, index.image("386"), &[]);
    assert_c_deps_output(&out, "x86", "");
}

/// With no zig on PATH, the C example stops before any cargo build, naming
/// the package, the platform, what compiles C and the install command, while
/// the pure-Rust hello-krust still builds for both platforms.
#[test]
fn without_zig_the_c_example_fails_early_and_pure_rust_still_builds() {
    tools::require_default_rust_targets();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = path_without_zig(tmp.path());
    let repo = format!("{}/{}", shared.registry.host(), unique_name("nozig"));
    let without_zig = |dir: PathBuf| -> Krust {
        krust(["build"])
            .arg(dir)
            .args(["--base-image", &shared.bases.multi_ref])
            .env("KRUST_REPO", &repo)
            .env("PATH", &path)
    };

    let failed = without_zig(example("c-deps")).run();
    let line = failed.expect_clean_error(&["c-deps", "linux/arm64", INSTALL_HINT]);
    assert!(
        line.contains("zstd-sys: build script uses cc") && line.contains("not on PATH"),
        "the error must say what compiles C and what is missing: {line}"
    );
    for sign_of_a_build in ["Building", "Compiling"] {
        assert!(
            !failed.stderr.contains(sign_of_a_build),
            "it must fail before building anything:\n{}",
            failed.describe()
        );
    }

    let pushed = without_zig(hello_krust()).run().single_ref();
    let index = image::fetch_index(&shared.registry, &pushed);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_static_for_each_arch(&index, "hello-krust");
}

/// With no zig but Debian's musl-gcc, the C example builds for linux/amd64
/// (C compiled by musl-gcc, linked by rust-lld) and runs. Its own target dir
/// keeps it from rebuilding the zig-built amd64 objects of the other tests.
#[test]
fn without_zig_musl_gcc_builds_the_c_example_for_amd64() {
    tools::require_default_rust_targets();
    tools::require("musl-gcc", "musl-tools");
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = format!("{}/{}", shared.registry.host(), unique_name("muslgcc"));
    let run = krust(["build", "-v", "--platform", "linux/amd64"])
        .arg(example("c-deps"))
        .args(["--base-image", "scratch"])
        .env("KRUST_REPO", &repo)
        .env("PATH", path_without_zig(tmp.path()))
        .env("CARGO_TARGET_DIR", shared_target_dir().join("musl-gcc"))
        .run();
    let pushed = run.single_ref();
    assert!(
        run.stderr.contains(
            "c-deps for linux/amd64 (x86_64-unknown-linux-musl) uses musl-gcc and rust-lld"
        ),
        "-v must say musl-gcc is used:\n{}",
        run.describe()
    );
    let index = image::fetch_index(&shared.registry, &pushed);
    assert_static_for_each_arch(&index, "c-deps");
    let out = run_platform(&pushed, index.image("amd64"), &[]);
    assert_c_deps_output(&out, "x86_64", "");
}

/// zig only when something is compiled: once cargo-zigbuild has been asked
/// for a triple's environment, an unchanged build of the C example runs
/// plain cargo and never starts cargo-zigbuild (a stand-in first
/// on PATH logs every call and passes it on), with the same digest.
#[test]
fn an_unchanged_c_build_does_not_run_cargo_zigbuild() {
    tools::require_zig();
    let real = tools::find_in_path("cargo-zigbuild").expect("cargo-zigbuild on PATH");
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("calls.log");
    support::write_script(
        &tmp.path().join("cargo-zigbuild"),
        &format!(
            "#!/bin/sh
echo \"$*\" >> '{}'
exec '{}' \"$@\"
",
            log.display(),
            real.display()
        ),
    );
    let path = format!(
        "{}:{}",
        tmp.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let build = || {
        krust(["build", "--no-push", "--platform", "linux/arm64"])
            .arg(example("c-deps"))
            .args(["--base-image", "scratch"])
            .env("PATH", &path)
            .run()
            .single_ref()
    };
    let first = build();
    // The stand-in is on the path cargo-krust takes: the first build asks it
    // for zig's environment (a new cargo-zigbuild path is a new record).
    let setup = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        setup.contains("zigbuild"),
        "the first build never ran the logging cargo-zigbuild: {setup:?}"
    );
    std::fs::write(&log, "").expect("empty the log");
    assert_eq!(build(), first, "an unchanged build, the same image");
    let calls = std::fs::read_to_string(&log).expect("read the log");
    assert_eq!(calls, "", "an unchanged build ran cargo-zigbuild");
}

/// main.rs of the flags package: which of the user's settings reached rustc.
const FLAGS_MAIN: &str = r#"fn main() {
    println!(
        "config rustflag: {}, RUSTFLAGS: {}, config env: {}",
        cfg!(krust_config),
        cfg!(krust_env),
        option_env!("KRUST_FROM_CONFIG").unwrap_or("unset")
    );
}
"#;

/// The package's `.cargo/config.toml`: a custom cfg through rustflags, an
/// `[env]` value and a linker for aarch64.
const FLAGS_CONFIG: &str = r#"[build]
rustflags = ["--cfg", "krust_config"]

[env]
KRUST_FROM_CONFIG = "yes"

[target.aarch64-unknown-linux-musl]
linker = "rust-lld"
"#;

/// The user's `.cargo/config.toml` and RUSTFLAGS reach every build: with the
/// default strategies (rust-lld on amd64, the configured linker on arm64,
/// which `-v` names) and with `linker = "zig"`, for both platforms.
#[test]
fn user_rustflags_and_cargo_config_reach_the_build() {
    tools::require_default_rust_targets();
    tools::require_zig();
    let shared = shared();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = support::cargo_new_bin(tmp.path(), "krust-flags");
    std::fs::write(pkg.join("src/main.rs"), FLAGS_MAIN).expect("write main.rs");
    std::fs::create_dir_all(pkg.join(".cargo")).expect("mkdir .cargo");
    let config = pkg.join(".cargo/config.toml");
    std::fs::write(&config, FLAGS_CONFIG).expect("write config.toml");
    let manifest = pkg.join("Cargo.toml");
    let mut toml = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    toml.push_str(
        "\n[lints.rust]\nunexpected_cfgs = { level = \"warn\", check-cfg = ['cfg(krust_config)', 'cfg(krust_env)'] }\n",
    );
    std::fs::write(&manifest, &toml).expect("write Cargo.toml");
    let repo = format!("{}/{}", shared.registry.host(), unique_name("flags"));
    let build = |extra_env: Option<(&str, &str)>| {
        let mut run = krust([
            "build",
            "-v",
            "--base-image",
            "scratch",
            "--platform",
            "linux/amd64,linux/arm64",
        ])
        .arg(&pkg)
        .env("KRUST_REPO", &repo)
        // Each package has its own target dir: these flags rebuild it.
        .env("CARGO_TARGET_DIR", tmp.path().join("target"));
        if let Some((key, value)) = extra_env {
            run = run.env(key, value);
        }
        run.run()
    };
    let outputs = |run: &support::krust::KrustRun| -> Vec<String> {
        let pushed = run.single_ref();
        let index = image::fetch_index(&shared.registry, &pushed);
        assert_static_for_each_arch(&index, "krust-flags");
        ["amd64", "arm64"]
            .iter()
            .map(|arch| run_platform(&pushed, index.image(arch), &[]))
            .collect()
    };

    let run = build(None);
    for explained in [
        "krust-flags for linux/amd64 (x86_64-unknown-linux-musl) uses rust-lld: it is pure Rust"
            .to_string(),
        format!(
            "krust-flags for linux/arm64 (aarch64-unknown-linux-musl) uses cargo's defaults: \
             you configured a linker for aarch64-unknown-linux-musl \
             (target.aarch64-unknown-linux-musl.linker in {})",
            config.display()
        ),
    ] {
        assert!(
            run.stderr.contains(&explained),
            "expected {explained:?}:\n{}",
            run.describe()
        );
    }
    for out in outputs(&run) {
        assert_eq!(
            out,
            "config rustflag: true, RUSTFLAGS: false, config env: yes\n"
        );
    }

    toml.push_str("\n[package.metadata.krust]\nlinker = \"zig\"\n");
    std::fs::write(&manifest, &toml).expect("write Cargo.toml");
    let run = build(None);
    assert!(
        run.stderr.contains(
            "krust-flags for linux/arm64 (aarch64-unknown-linux-musl) uses zig (cargo-zigbuild): \
             linker = \"zig\" is set in its metadata"
        ),
        "{}",
        run.describe()
    );
    for out in outputs(&run) {
        assert_eq!(
            out,
            "config rustflag: true, RUSTFLAGS: false, config env: yes\n"
        );
    }
    // RUSTFLAGS replaces the config's rustflags (cargo's rule), with zig too.
    for out in outputs(&build(Some(("RUSTFLAGS", "--cfg krust_env")))) {
        assert_eq!(
            out,
            "config rustflag: false, RUSTFLAGS: true, config env: yes\n"
        );
    }
}

/// The command that installs what the build-std test needs.
const NIGHTLY_SETUP: &str =
    "rustup toolchain install nightly --profile minimal --component rust-src";

/// Panics with the setup command unless rustup's nightly toolchain with the
/// rust-src component is installed (build-std compiles std from its sources).
fn require_nightly_with_rust_src() {
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .output();
    let sysroot = match output {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
        _ => panic!(
            "rustup has no nightly toolchain, which --build-std needs.\n\
             Run `{}` (it installs it), or:\n    {NIGHTLY_SETUP}",
            tools::SETUP
        ),
    };
    assert!(
        sysroot.join("lib/rustlib/src/rust/library").is_dir(),
        "the nightly toolchain at {} has no rust-src component, which --build-std needs.\n\
         Run `{}` (it installs it), or:\n    rustup component add rust-src --toolchain nightly",
        sysroot.display(),
        tools::SETUP
    );
}

/// `--build-std` builds hello-krust for linux/arm/v7 (no prebuilt std here)
/// with nightly `-Zbuild-std` and zig: a static 32-bit arm binary that runs
/// under qemu.
#[test]
fn build_std_builds_armv7_with_nightly() {
    require_nightly_with_rust_src();
    tools::require_zig();
    tools::require("qemu-arm-static", "qemu-user-static");
    let shared = shared();
    let repo = format!("{}/{}", shared.registry.host(), unique_name("buildstd"));
    let run = krust([
        "build",
        "-v",
        "--build-std",
        "--platform",
        "linux/arm/v7",
        "--base-image",
        "scratch",
    ])
    .arg(hello_krust())
    .env("KRUST_REPO", &repo)
    .run();
    let pushed = run.single_ref();
    assert!(
        run.stderr.contains(
            "hello-krust for linux/arm/v7 (armv7-unknown-linux-musleabihf) uses zig (cargo-zigbuild): \
             it builds std from source"
        ),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("-Zbuild-std=std,panic_abort"),
        "{}",
        run.describe()
    );
    let index = image::fetch_index(&shared.registry, &pushed);
    assert_eq!(index.platforms(), ["linux/arm/v7"]);
    assert_static_for_each_arch(&index, "hello-krust");
    let out = run_platform(&pushed, index.image("arm"), &["a"]);
    assert_eq!(out, "Hello from krust!\narch: arm\nargs: a\n");
}

/// A target rustup has no standard library for (s390x musl is tier 3) fails
/// before building, naming --build-std and the command that installs what
/// it needs.
#[test]
fn target_without_prebuilt_std_names_build_std() {
    let tmp = tempfile::tempdir().expect("tempdir");
    krust([
        "build",
        "--no-push",
        "--platform",
        "linux/s390x",
        "--base-image",
        "scratch",
    ])
    .arg(hello_krust())
    .env("CARGO_TARGET_DIR", tmp.path())
    .run()
    .expect_clean_error(&[
        "s390x-unknown-linux-musl",
        "--build-std",
        "rustup toolchain install nightly --component rust-src",
    ]);
}
