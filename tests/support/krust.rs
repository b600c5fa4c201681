//! Running the real `cargo-krust` binary the way a user would, with stdout and
//! stderr captured separately and an environment that does not depend on the
//! machine: no `KRUST_*` variables unless a test sets them, an empty global
//! config dir, Docker config and podman auth locations, no backtraces, and one
//! shared cargo target dir.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::image::PushedRef;
use super::process::output_with_input;
use super::{repo_root, shared_target_dir};

/// How long one cargo-krust run may take (it compiles for several targets).
const KRUST_TIMEOUT: Duration = Duration::from_secs(600);

/// A `cargo-krust` invocation being prepared.
#[derive(Debug, Clone, Default)]
pub struct Krust {
    args: Vec<OsString>,
    envs: Vec<(String, OsString)>,
    removed: Vec<String>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

/// Start preparing `cargo-krust ARGS…` (e.g. `krust(["build", "--no-push"])`).
pub fn krust<I, S>(args: I) -> Krust
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    Krust::default().args(args)
}

impl Krust {
    /// Append arguments.
    pub fn args<I, S>(mut self, args: I) -> Krust
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Append one argument.
    pub fn arg(self, arg: impl Into<OsString>) -> Krust {
        self.args([arg])
    }

    /// Set an environment variable for the run.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Krust {
        self.envs.push((key.to_string(), value.into()));
        self
    }

    /// Make sure a variable is unset for the run.
    pub fn env_remove(mut self, key: &str) -> Krust {
        self.removed.push(key.to_string());
        self
    }

    /// Run in `dir` (default: the system temp dir, which is not in a package).
    pub fn current_dir(mut self, dir: &Path) -> Krust {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Feed `input` to its stdin (default: stdin closed).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Krust {
        self.stdin = Some(input.into());
        self
    }

    /// Run it and capture everything.
    pub fn run(self) -> KrustRun {
        let (mut cmd, command) = self.command();
        let output = output_with_input(&mut cmd, self.stdin.as_deref(), KRUST_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        KrustRun {
            command,
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Start it in the background (output discarded), for tests that stop
    /// it halfway; the caller kills it through the returned handle.
    pub fn spawn(self) -> std::process::Child {
        let (mut cmd, command) = self.command();
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"))
    }

    /// Start it in the background with stdout and stderr piped, for tests
    /// that signal it halfway and then read what it printed.
    pub fn spawn_piped(self) -> std::process::Child {
        let (mut cmd, command) = self.command();
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"))
    }

    /// The command, and how to name it in messages.
    fn command(&self) -> (Command, String) {
        let exe = env!("CARGO_BIN_EXE_cargo-krust");
        let mut cmd = Command::new(exe);
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("KRUST_") {
                cmd.env_remove(&*key);
            }
        }
        let home = isolated_home();
        cmd.env("CARGO_TARGET_DIR", shared_target_dir())
            .env("XDG_CONFIG_HOME", home.join("xdg-config"))
            .env("DOCKER_CONFIG", home.join("docker"))
            .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("RUST_BACKTRACE", "0")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET");
        let cwd = self.cwd.clone().unwrap_or_else(std::env::temp_dir);
        cmd.current_dir(&cwd);
        for (key, value) in &self.envs {
            cmd.env(key, value);
        }
        for key in &self.removed {
            cmd.env_remove(key);
        }
        (
            cmd,
            format!("cargo-krust {:?} (in {})", self.args, cwd.display()),
        )
    }
}

/// A directory with empty config dirs for the tool (created once, kept under
/// the shared target dir; it holds nothing but empty directories).
fn isolated_home() -> PathBuf {
    let home = shared_target_dir().join("isolated-home");
    for sub in ["xdg-config", "docker", "run"] {
        std::fs::create_dir_all(home.join(sub))
            .unwrap_or_else(|e| panic!("create {}: {e}", home.join(sub).display()));
    }
    home
}

/// The outcome of one cargo-krust run.
#[derive(Debug, Clone)]
pub struct KrustRun {
    /// What was run, for messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
}

impl KrustRun {
    /// Both streams, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    /// Panic with both streams unless it exited 0.
    pub fn expect_success(&self) -> &KrustRun {
        assert!(
            self.status.success(),
            "cargo-krust failed:\n{}",
            self.describe()
        );
        self
    }

    /// The printed references: every stdout line must be one.
    pub fn refs(&self) -> Vec<PushedRef> {
        self.expect_success();
        self.stdout
            .lines()
            .map(|line| {
                PushedRef::parse(line).unwrap_or_else(|e| {
                    panic!("stdout line is not a reference ({e}):\n{}", self.describe())
                })
            })
            .collect()
    }

    /// The one printed reference; stdout must be exactly one line.
    pub fn single_ref(&self) -> PushedRef {
        let refs = self.refs();
        assert_eq!(
            refs.len(),
            1,
            "expected exactly one reference on stdout:\n{}",
            self.describe()
        );
        assert!(
            self.stdout.ends_with('\n'),
            "stdout should end with a newline:\n{}",
            self.describe()
        );
        refs.into_iter().next().expect("one reference")
    }

    /// Assert a clean failure: an exit code in 1..=99 (101 is a panic), empty
    /// stdout, no panic or backtrace, and an `error:` line containing every
    /// word of `words` (case-insensitive). Returns that line.
    pub fn expect_clean_error(&self, words: &[&str]) -> String {
        assert!(
            self.status
                .code()
                .is_some_and(|code| (1..=99).contains(&code)),
            "expected an exit code in 1..=99:\n{}",
            self.describe()
        );
        assert!(
            self.stderr
                .lines()
                .any(|line| strip_ansi(line).starts_with("error:")),
            "no `error:` line on stderr:\n{}",
            self.describe()
        );
        assert_eq!(
            self.stdout,
            "",
            "stdout must be empty on error:\n{}",
            self.describe()
        );
        let lower = self.stderr.to_lowercase();
        for marker in ["panicked", "stack backtrace", "rust_backtrace"] {
            assert!(
                !lower.contains(marker),
                "stderr contains {marker:?} (a panic or backtrace):\n{}",
                self.describe()
            );
        }
        self.stderr
            .lines()
            .find(|line| {
                let plain = strip_ansi(line).to_lowercase();
                plain.starts_with("error:")
                    && words.iter().all(|w| plain.contains(&w.to_lowercase()))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no `error:` line contains all of {words:?}:\n{}",
                    self.describe()
                )
            })
            .to_string()
    }
}

/// `cargo-krust build DIR` on `scratch` for linux/amd64 only: the cheapest
/// real build, for tests about anything but the base or the platforms.
pub fn build_on_scratch(dir: &Path) -> Krust {
    build_on_scratch_without_dir().arg(dir)
}

/// [`build_on_scratch`] naming no directory (the current one, or
/// `--manifest-path`).
pub fn build_on_scratch_without_dir() -> Krust {
    krust([
        "build",
        "--base-image",
        "scratch",
        "--platform",
        "linux/amd64",
    ])
}

/// `cargo-krust resolve` on `scratch` for linux/amd64, pushing nothing:
/// the cheapest real resolve (add `-f FILE`).
pub fn resolve_on_scratch() -> Krust {
    krust([
        "resolve",
        "--no-push",
        "--base-image",
        "scratch",
        "--platform",
        "linux/amd64",
    ])
}

/// The hello-krust example crate.
pub fn hello_krust() -> PathBuf {
    repo_root().join("examples").join("hello-krust")
}

/// A line without its ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
