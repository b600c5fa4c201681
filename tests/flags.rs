//! The documented flags that shape a build or the run itself, each shown to
//! take effect end to end with the real binary (a flag accepted but ignored
//! fails its test):
//!
//! - `--manifest-path` from an unrelated directory, and its errors;
//! - `--profile`/`--release`, `-F/--features`, `--all-features`,
//!   `--no-default-features`: the image, unpacked with umoci and run under
//!   chroot, prints what the build enabled;
//! - `--locked` and `--frozen` against an outdated Cargo.lock; `-j/--jobs`
//!   reaching cargo; `--package`; `--target-dir` holding cargo's output and
//!   the cache;
//! - `-q` (nothing on stderr but errors, pushing included), `--color`;
//! - `build --image-refs FILE` (resolve's is in tests/resolve.rs);
//! - `version`, `completions` (the bash script run by bash), and a stdout
//!   that cannot be written.
//!
//! Builds are `--no-push` onto scratch for linux/amd64, except the `-q`
//! push. The fixture package `tests/fixtures/flags` builds in a target dir of
//! each test's own: its builds with other features or profiles would
//! otherwise replace one another's `release/krust-flags` under tests running
//! at the same time.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::image::{PushedRef, expect_ran, run_chroot};
use support::krust::{
    Krust, KrustRun, build_on_scratch, build_on_scratch_without_dir, hello_krust, krust,
};
use support::process::{output_with_timeout, run_ok};
use support::{Registry, copy_tree, example, repo_root, tools, unique_name};

/// How long a helper tool (umoci, bash) may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The fixture's one bin, and the image's name.
const BIN: &str = "krust-flags";

/// Rust target of linux/amd64, where cargo's output for it lands.
const AMD64_TRIPLE: &str = "x86_64-unknown-linux-musl";

/// The fixture package: features `greet` (default), `extra` and `loud`, and
/// a `checked` profile (release with debug assertions); its binary prints
/// which of them the build enabled.
fn fixture() -> PathBuf {
    repo_root().join("tests").join("fixtures").join("flags")
}

/// What the fixture's binary prints.
fn printed(features: &str, debug_assertions: bool) -> String {
    format!("features: {features}\ndebug-assertions: {debug_assertions}\n")
}

/// A temp dir of one test: its cargo target dir, copies of the fixture,
/// layouts and bundles.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Workdir {
        tools::require_default_rust_targets();
        Workdir {
            dir: tempfile::Builder::new()
                .prefix("krust-flags-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `build PKG` onto scratch for linux/amd64, in this test's target dir.
    fn build(&self, pkg: &Path) -> Krust {
        build_on_scratch(pkg).env("CARGO_TARGET_DIR", self.path().join("target"))
    }

    /// A copy of the fixture, for tests that change it.
    fn fixture_copy(&self) -> PathBuf {
        let pkg = self.path().join("pkg");
        copy_tree(&fixture(), &pkg);
        pkg
    }

    /// Builds the fixture with `args` (no push) into an OCI layout, unpacks
    /// the image with umoci and runs it under chroot: the printed reference
    /// and what the program printed.
    fn run_image(&self, args: &[&str]) -> (PushedRef, String) {
        let work = tempfile::tempdir_in(self.path()).expect("tempdir");
        let layout = work.path().join("layout");
        let run = self
            .build(&fixture())
            .arg("--no-push")
            .args(args)
            .arg("--oci-layout-path")
            .arg(&layout)
            .run();
        let reference = run.single_ref();
        let bundle = work.path().join("bundle");
        run_ok(
            Command::new(tools::require("umoci", "umoci"))
                .args(["unpack", "--image"])
                .arg(format!("{}:{BIN}:latest", layout.display()))
                .arg(&bundle),
            TOOL_TIMEOUT,
            "umoci unpack",
        );
        let output = run_chroot(&bundle.join("rootfs"), &[format!("/app/{BIN}")]);
        (reference, expect_ran(&output, &run.command))
    }
}

/// `build` onto scratch for linux/amd64 without a directory, no push.
fn build_here() -> Krust {
    build_on_scratch_without_dir().arg("--no-push")
}

#[test]
fn manifest_path_builds_that_package_from_anywhere() {
    let work = Workdir::new();
    let target = work.path().join("target");
    let by_directory = work.build(&fixture()).arg("--no-push").run().single_ref();
    assert_eq!(by_directory.repo, BIN);

    // In another package's directory: that package must not be built.
    let manifest = fixture().join("Cargo.toml");
    let from_elsewhere = build_here()
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&hello_krust())
        .run()
        .single_ref();
    assert_eq!(
        from_elsewhere, by_directory,
        "--manifest-path names the package"
    );

    // Relative to the current directory.
    let relative = build_here()
        .args(["--manifest-path", "flags/Cargo.toml"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&repo_root().join("tests").join("fixtures"))
        .run()
        .single_ref();
    assert_eq!(relative, by_directory);

    let missing = work.path().join("nowhere").join("Cargo.toml");
    build_here()
        .arg("--manifest-path")
        .arg(&missing)
        .run()
        .expect_clean_error(&["--manifest-path", &missing.display().to_string()]);
    // A directory is not a manifest; the error names it, not a guess.
    let dir = fixture().display().to_string();
    build_here()
        .args(["--manifest-path", &dir])
        .run()
        .expect_clean_error(&["--manifest-path", &dir, "Cargo.toml"]);
    // Two packages named at once: neither is silently dropped.
    build_here()
        .arg(hello_krust())
        .arg("--manifest-path")
        .arg(&manifest)
        .run()
        .expect_clean_error(&["--manifest-path", "directory", "cannot be used with"]);
}

#[test]
fn profile_and_release_pick_the_cargo_profile() {
    let work = Workdir::new();
    let (default, output) = work.run_image(&[]);
    assert_eq!(output, printed("greet", false), "release by default");
    let (release, output) = work.run_image(&["--release"]);
    assert_eq!(output, printed("greet", false));
    assert_eq!(release, default, "--release is the default");

    let (checked, output) = work.run_image(&["--profile", "checked"]);
    assert_eq!(output, printed("greet", true), "the fixture's own profile");
    assert_ne!(checked, default);
    // cargo's dev profile writes into `debug/`, not a dir named after it.
    let (_, output) = work.run_image(&["--profile", "dev"]);
    assert_eq!(output, printed("greet", true), "cargo's dev profile");

    work.build(&fixture())
        .args(["--no-push", "--profile", "nope"])
        .run()
        .expect_clean_error(&["profile `nope`", "not defined"]);
    work.build(&fixture())
        .args(["--no-push", "--release", "--profile", "checked"])
        .run()
        .expect_clean_error(&["--profile", "--release", "cannot be used with"]);
}

#[test]
fn feature_flags_change_what_the_image_runs() {
    let work = Workdir::new();
    let cases: &[(&[&str], &str)] = &[
        (&[], "greet"),
        (&["-F", "extra"], "greet,extra"),
        (
            &["--features", "extra", "--features", "loud"],
            "greet,extra,loud",
        ),
        (&["--all-features"], "greet,extra,loud"),
        (&["--no-default-features"], ""),
        (&["--no-default-features", "-F", "loud extra"], "extra,loud"),
    ];
    for (args, features) in cases {
        let (_, output) = work.run_image(args);
        assert_eq!(output, printed(features, false), "build {args:?}");
    }
    work.build(&fixture())
        .args(["--no-push", "-F", "nope"])
        .run()
        .expect_clean_error(&["feature", "nope"]);
}

#[test]
fn locked_refuses_an_outdated_lock_file() {
    let work = Workdir::new();
    let pkg = work.fixture_copy();
    let lock_file = pkg.join("Cargo.lock");
    let read_lock = || std::fs::read_to_string(&lock_file).expect("read Cargo.lock");
    work.build(&pkg)
        .args(["--no-push", "--locked"])
        .run()
        .single_ref();

    let manifest = pkg.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    let bumped = text.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1);
    assert_ne!(bumped, text, "the fixture's version is 0.1.0");
    std::fs::write(&manifest, bumped).expect("write Cargo.toml");
    let before = read_lock();
    work.build(&pkg)
        .args(["--no-push", "--locked"])
        .run()
        .expect_clean_error(&["Cargo.lock", "--locked"]);
    assert_eq!(read_lock(), before, "--locked must leave Cargo.lock alone");
    // --frozen is --locked and --offline: the same refusal.
    work.build(&pkg)
        .args(["--no-push", "--frozen"])
        .run()
        .expect_clean_error(&["Cargo.lock", "--frozen"]);
    assert_eq!(read_lock(), before, "--frozen must leave Cargo.lock alone");

    // Without it cargo brings the lock file up to date; then --locked holds.
    work.build(&pkg).arg("--no-push").run().single_ref();
    assert!(
        read_lock().contains("version = \"0.2.0\""),
        "{}",
        read_lock()
    );
    work.build(&pkg)
        .args(["--no-push", "--locked"])
        .run()
        .single_ref();
}

/// `-j N` reaches cargo as `--jobs N` (shown with `-v`); 0 is refused.
#[test]
fn jobs_reach_cargo() {
    let work = Workdir::new();
    let pkg = work.fixture_copy();
    let run = work.build(&pkg).args(["--no-push", "-v", "-j", "1"]).run();
    run.single_ref();
    assert!(run.stderr.contains(r#""--jobs" "1""#), "{}", run.describe());
    work.build(&pkg)
        .args(["--no-push", "--jobs", "0"])
        .run()
        .expect_clean_error(&["--jobs", "0"]);
}

/// `--package NAME` (the long form of `-p`) selects that workspace member.
#[test]
fn package_long_form_selects_a_member() {
    let run = krust([
        "build",
        "--no-push",
        "--base-image",
        "scratch",
        "--platform",
        "linux/amd64",
        "--package",
        "api",
    ])
    .arg(support::example("workspace"))
    .run();
    let refs = run.refs();
    assert_eq!(refs.len(), 1, "{}", run.describe());
    assert_eq!(refs[0].repo, "api", "{}", run.describe());
}

#[test]
fn target_dir_holds_cargo_output_and_the_cache() {
    let work = Workdir::new();
    let pkg = work.fixture_copy();
    let from_env = work.path().join("from-env");
    // Relative to the current directory, as cargo's; it beats CARGO_TARGET_DIR.
    work.build(Path::new("pkg"))
        .args(["--no-push", "--target-dir", "out"])
        .env("CARGO_TARGET_DIR", &from_env)
        .current_dir(work.path())
        .run()
        .single_ref();
    let krust_dir = work.path().join("out").join("krust");
    let binary = krust_dir
        .join("build")
        .join(AMD64_TRIPLE)
        .join(AMD64_TRIPLE)
        .join("release")
        .join(BIN);
    assert!(binary.is_file(), "cargo's output: no {}", binary.display());
    let blobs = krust_dir.join("blobs");
    let stored = std::fs::read_dir(&blobs)
        .unwrap_or_else(|e| panic!("the store: {}: {e}", blobs.display()))
        .count();
    assert!(stored > 0, "the store at {} is empty", blobs.display());
    for unused in [from_env, pkg.join("target")] {
        assert!(!unused.exists(), "{} was created", unused.display());
    }
}

#[test]
fn quiet_prints_nothing_but_errors() {
    let work = Workdir::new();
    let registry = Registry::start();
    let repo = |name: &str| format!("{}/{}", registry.host(), unique_name(name));
    // A first build in this target dir: cargo compiles, layers are uploaded.
    let quiet = work
        .build(&fixture())
        .arg("-q")
        .env("KRUST_REPO", repo("quiet"))
        .run();
    quiet.single_ref();
    assert_eq!(quiet.stderr, "", "-q: {}", quiet.describe());

    let loud = work.build(&fixture()).env("KRUST_REPO", repo("loud")).run();
    loud.single_ref();
    assert!(
        loud.stderr.contains("Built linux/amd64"),
        "without -q the build reports: {}",
        loud.describe()
    );

    work.build(&fixture())
        .args(["-q", "--no-push", "--platform", "linux/nope"])
        .run()
        .expect_clean_error(&["error:", "linux/nope"]);
}

/// The environment variables that colour output without `--color`.
const COLOR_VARIABLES: [&str; 4] = ["CLICOLOR_FORCE", "CLICOLOR", "NO_COLOR", "CARGO_TERM_COLOR"];

/// Runs the fixture's build (no push) with `args`, no colour variable set
/// but `set`.
fn colored_build(work: &Workdir, args: &[&str], set: &[(&str, &str)]) -> KrustRun {
    let mut build = work.build(&fixture()).arg("--no-push").args(args);
    for variable in COLOR_VARIABLES {
        match set.iter().find(|(name, _)| *name == variable) {
            Some((name, value)) => build = build.env(name, value),
            None => build = build.env_remove(variable),
        }
    }
    build.run()
}

#[test]
fn color_flag_decides_escapes_on_stderr() {
    const ESCAPE: char = '\u{1b}';
    let work = Workdir::new();
    let always = colored_build(&work, &["--color", "always"], &[]);
    always.single_ref();
    // cargo-krust's own status line, not only cargo's.
    let built = always
        .stderr
        .lines()
        .find(|l| l.contains("Built"))
        .unwrap_or_else(|| panic!("no Built line: {}", always.describe()));
    assert!(
        built.contains(ESCAPE),
        "--color always: {}",
        always.describe()
    );

    // `never` beats the variables that force colour.
    let forced = [("CLICOLOR_FORCE", "1"), ("CARGO_TERM_COLOR", "always")];
    let never = colored_build(&work, &["--color", "never"], &forced);
    never.single_ref();
    assert!(never.stderr.contains("Built"), "{}", never.describe());
    assert!(
        !never.stderr.contains(ESCAPE),
        "--color never: {}",
        never.describe()
    );

    // `auto` (the default) on a pipe.
    let auto = colored_build(&work, &[], &[]);
    auto.single_ref();
    assert!(
        !auto.stderr.contains(ESCAPE),
        "not a terminal: {}",
        auto.describe()
    );

    let error = colored_build(
        &work,
        &["--color", "always", "--platform", "linux/nope"],
        &[],
    )
    .expect_clean_error(&["error", "linux/nope"]);
    assert!(
        error.contains(ESCAPE),
        "the error line is coloured too: {error:?}"
    );
}

#[test]
fn image_refs_file_holds_the_printed_references() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let refs_file = tmp.path().join("refs.txt");
    std::fs::write(&refs_file, "left over from a previous run\n").expect("write refs file");
    let build = || build_on_scratch(&example("workspace")).arg("--no-push");
    let run = build().arg("--image-refs").arg(&refs_file).run();
    assert_eq!(run.refs().len(), 3, "{}", run.describe());
    assert_eq!(
        std::fs::read_to_string(&refs_file).expect("read refs file"),
        run.stdout,
        "the file holds exactly what was printed"
    );

    // Found before anything is built (or, with a registry, pushed).
    let unwritable = tmp.path().join("no-such-dir").join("refs.txt");
    let failed = build().arg("--image-refs").arg(&unwritable).run();
    failed.expect_clean_error(&["image references", &unwritable.display().to_string()]);
    assert!(!failed.stderr.contains("Building"), "{}", failed.describe());
    let failed = build().arg("--image-refs").arg(tmp.path()).run();
    failed.expect_clean_error(&["image references", "is a directory"]);
    assert!(!failed.stderr.contains("Building"), "{}", failed.describe());
}

#[test]
fn version_matches_the_package() {
    let expected = format!("cargo-krust {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["version"][..], &["--version"], &["krust", "version"]] {
        let run = krust(args).run();
        run.expect_success();
        assert_eq!(run.stdout, expected, "{}", run.describe());
        assert_eq!(run.stderr, "", "{}", run.describe());
    }
}

/// Sources a bash completion script and completes `words` (the last one
/// being the word under the cursor) the way bash does on TAB: the
/// candidates, one per line.
const BASH_COMPLETE: &str = r#"
script=$1; shift
source "$script" || exit 3
spec=$(complete -p cargo-krust) || exit 4
function=${spec#*-F }; function=${function%% *}
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
"$function" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;

#[test]
fn completion_scripts_complete_the_subcommands_and_their_options() {
    let bash = tools::require("bash", "bash");
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = tmp.path().join("cargo-krust.bash");
    let run = krust(["completions", "bash"]).run();
    run.expect_success();
    std::fs::write(&script, &run.stdout).expect("write the bash script");
    run_ok(
        Command::new(&bash).arg("-n").arg(&script),
        TOOL_TIMEOUT,
        "bash -n (syntax of the completion script)",
    );
    let complete = |words: &[&str]| -> Vec<String> {
        let output = run_ok(
            Command::new(&bash)
                .args(["-c", BASH_COMPLETE, "complete"])
                .arg(&script)
                .args(words),
            TOOL_TIMEOUT,
            "bash completion",
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    assert_eq!(complete(&["cargo-krust", "bu"]), ["build"]);
    assert_eq!(complete(&["cargo-krust", "comp"]), ["completions"]);
    // Past the subcommand (what `cargo krust build --<TAB>` asks for).
    assert_eq!(
        complete(&["cargo-krust", "build", "--feat"]),
        ["--features"]
    );
    assert_eq!(
        complete(&["cargo-krust", "resolve", "--recur"]),
        ["--recursive"]
    );

    for (shell, marker) in [
        ("zsh", "#compdef cargo-krust"),
        ("fish", "complete -c cargo-krust"),
    ] {
        let run = krust(["completions", shell]).run();
        run.expect_success();
        for word in [
            marker,
            "build",
            "resolve",
            "apply",
            "completions",
            "image-refs",
        ] {
            assert!(run.stdout.contains(word), "{shell} script lacks {word:?}");
        }
    }
    let unknown = krust(["completions", "tcsh"]).run();
    unknown.expect_clean_error(&["invalid value 'tcsh'"]);
    assert!(
        unknown.stderr.contains("possible values: bash"),
        "{}",
        unknown.describe()
    );
}

#[test]
fn a_stdout_that_cannot_be_written_is_an_error_not_a_panic() {
    let work = Workdir::new();
    let exe = env!("CARGO_BIN_EXE_cargo-krust");
    // cargo-krust with one of its streams redirected (`> /dev/full`, …).
    let redirected = |redirect: &str, args: &[&str]| {
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!(r#"exec "$0" "$@" {redirect}"#), exe])
            .args(args)
            .env("CARGO_TARGET_DIR", work.path().join("target"))
            .env("RUST_BACKTRACE", "0");
        output_with_timeout(&mut command, TOOL_TIMEOUT)
            .unwrap_or_else(|e| panic!("cargo-krust {args:?} {redirect}: {e}"))
    };
    let full = |args: &[&str]| {
        let output = redirected("> /dev/full", args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "cargo-krust {args:?} > /dev/full: {stderr}"
        );
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("error: cannot write to stdout"))
                && !stderr.contains("panicked"),
            "cargo-krust {args:?} > /dev/full: {stderr}"
        );
    };
    full(&["version"]);
    full(&["completions", "bash"]);
    let pkg = fixture().display().to_string();
    full(&[
        "build",
        "--no-push",
        "--base-image",
        "scratch",
        "--platform",
        "linux/amd64",
        &pkg,
    ]);

    // A stderr that cannot be written loses the progress lines, not the run:
    // the references still reach stdout, and a failure still exits 1.
    let to_full_stderr = |args: &[&str]| redirected("2> /dev/full", args);
    let built = to_full_stderr(&[
        "build",
        "--no-push",
        "--base-image",
        "scratch",
        "--platform",
        "linux/amd64",
        &pkg,
    ]);
    assert_eq!(built.status.code(), Some(0), "{built:?}");
    assert!(
        String::from_utf8_lossy(&built.stdout).starts_with("krust.local/krust-flags@sha256:"),
        "{built:?}"
    );
    let failed = to_full_stderr(&["build", "--no-push", "--platform", "linux/mips", &pkg]);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(failed.stdout.is_empty(), "{failed:?}");
}
