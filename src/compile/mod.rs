//! Compilation: one cargo invocation per target triple (and toolchain
//! strategy) for every (package, bin) of the plan that needs it, in its own
//! target directory so that several triples can build at once; cargo's
//! stderr handed line by line to the caller, and the executables taken from
//! cargo's JSON messages. `native` finds C code in the build graph,
//! `strategy` picks the linker and C compiler, `tools` probes for them,
//! `linker` reads the user's own linker settings, `toolchain` installs
//! Rust targets or finds the nightly that builds std, `elf` checks that what
//! was built is a static executable for the platform.

pub mod audit_link;
pub mod batch;
pub mod c_wrapper;
pub mod cargo_config;
pub mod elf;
pub mod linker;
pub mod native;
pub mod rustc_shim;
pub mod rustflags;
pub mod strategy;
pub mod toolchain;
pub mod tools;
pub mod zig;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, TryLockError};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use cargo_metadata::{Message, TargetKind};

use crate::plan::CargoOptions;
pub use strategy::Strategy;

/// A triple's target directory, held by this run from its cargo build until
/// its executables are layered. cargo's own lock ends with cargo, and
/// another run building other features or sources into the same directory
/// would replace `release/<bin>` before this run reads it.
pub struct TargetDirLock {
    _file: File,
}

impl TargetDirLock {
    /// Takes the lock, waiting (with a status line) while another run holds it.
    pub fn acquire(target_dir: &Path) -> Result<TargetDirLock> {
        std::fs::create_dir_all(target_dir)
            .with_context(|| format!("cannot create {}", target_dir.display()))?;
        let path = target_dir.join("krust-run.lock");
        let file = crate::fsutil::open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                crate::progress::status(
                    "Blocking",
                    format!(
                        "waiting for another cargo-krust run using {}",
                        target_dir.display()
                    ),
                );
                file.lock()
                    .with_context(|| format!("cannot lock {}", path.display()))?;
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        Ok(TargetDirLock { _file: file })
    }
}

/// One bin of one package, identified by its package's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Unit {
    pub manifest_path: PathBuf,
    pub package: String,
    pub bin: String,
}

/// What to build for one triple.
#[derive(Debug, Clone)]
pub struct TripleBuild<'a> {
    pub triple: &'a str,
    /// The manifest cargo runs with (package or workspace root).
    pub manifest_path: &'a Path,
    /// This triple's own cargo target directory.
    pub target_dir: PathBuf,
    pub units: BTreeSet<Unit>,
    /// Configured `features` per package name.
    pub package_features: HashMap<String, Vec<String>>,
    pub cargo: &'a CargoOptions,
    pub strategy: Strategy,
    /// `Some` with build-std: the rustup toolchain to use (`None` inside
    /// means the active toolchain is already a nightly).
    pub build_std: Option<Option<String>>,
    /// `always` or `never`: cargo's stderr is a pipe, so cargo cannot tell.
    pub color: &'static str,
    /// Shared by every concurrent build so they do not oversubscribe the CPUs.
    pub jobserver: Option<&'a jobserver::Client>,
    /// The dependency-data object of each unit that embeds one
    /// ([`audit_link`]).
    pub audit_objects: BTreeMap<Unit, Vec<u8>>,
    /// With [`Strategy::Zig`]: cargo-zigbuild's environment for the triple.
    pub zig: Option<zig::ZigEnv>,
}

/// A failed `cargo build`, with the units it did not build, so that a caller
/// can name what asked for them (resolve names the YAML references).
#[derive(Debug)]
pub struct BuildFailed {
    pub triple: String,
    pub status: std::process::ExitStatus,
    pub not_built: Vec<Unit>,
}

impl std::fmt::Display for BuildFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cargo build failed for {} ({}); see cargo's messages above",
            self.triple, self.status
        )
    }
}

impl std::error::Error for BuildFailed {}

/// The directory of one triple's cargo build under the target dir.
pub fn triple_target_dir(target_dir: &Path, triple: &str) -> PathBuf {
    target_dir.join("krust").join("build").join(triple)
}

/// The `cargo build` command for the triple.
pub fn command(request: &TripleBuild) -> Result<Command> {
    let cwd = request
        .manifest_path
        .parent()
        .context("manifest path has no directory")?;
    cargo_command(request, cwd)
}

/// Starts a [`command`] as [`build`] reads it: no input, stdout (JSON
/// messages) and stderr piped.
pub fn spawn(command: &mut Command) -> std::io::Result<Child> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Builds every unit for the triple; returns the executable of each. Each
/// line cargo writes on stderr goes to `stderr_line` as it comes.
pub fn build(
    request: &TripleBuild,
    stderr_line: &(dyn Fn(&str) + Sync),
) -> Result<HashMap<Unit, PathBuf>> {
    audit_link::stage(
        &audit_objects_dir(request),
        &request.units,
        &request.audit_objects,
    )?;
    let mut command = command(request)?;
    crate::progress::verbose(format!("running {command:?}"));
    let mut child =
        spawn(&mut command).context("cannot run cargo: is it installed and on PATH?")?;
    let stdout = child
        .stdout
        .take()
        .context("cargo's stdout is not captured")?;
    let stderr = child
        .stderr
        .take()
        .context("cargo's stderr is not captured")?;

    let mut executables = HashMap::new();
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(line) => stderr_line(&line),
                    Err(_) => break,
                }
            }
        });
        for message in Message::parse_stream(BufReader::new(stdout)) {
            let message = message.context("cannot read cargo's JSON messages")?;
            if let Message::CompilerArtifact(artifact) = message {
                let Some(executable) = artifact.executable else {
                    continue;
                };
                if !artifact.target.is_kind(TargetKind::Bin) {
                    continue;
                }
                let manifest_path = artifact.manifest_path.into_std_path_buf();
                if let Some(unit) = request
                    .units
                    .iter()
                    .find(|u| u.manifest_path == manifest_path && u.bin == artifact.target.name)
                {
                    executables.insert(unit.clone(), executable.into_std_path_buf());
                }
            }
        }
        Ok(())
    })?;
    let status = child.wait().context("cannot wait for cargo")?;
    if !status.success() {
        return Err(BuildFailed {
            triple: request.triple.to_string(),
            status,
            not_built: request
                .units
                .iter()
                .filter(|u| !executables.contains_key(*u))
                .cloned()
                .collect(),
        }
        .into());
    }
    for unit in &request.units {
        let Some(executable) = executables.get_mut(unit) else {
            bail!(
                "cargo build for {} reported no executable for bin `{}` of package `{}`",
                request.triple,
                unit.bin,
                unit.package
            );
        };
        *executable = keep_executable(&request.target_dir, unit, executable)?;
    }
    Ok(executables)
}

/// Where the build's dependency-data objects go.
fn audit_objects_dir(request: &TripleBuild) -> PathBuf {
    audit_link::objects_dir(
        &request.target_dir,
        &audit_link::features_key(request.cargo, &request.package_features),
    )
}

/// A path of the unit's own for the executable cargo reported: a hard link
/// to it (the same file, no copy), under `krust-bins/<package>/<bin>`.
/// cargo writes every bin to `release/<bin>`, so the next invocation in the
/// same target dir, building another package's bin of that name, would
/// replace it before it is layered; cargo replaces that path rather than
/// rewrite the file, so the link keeps this build's binary.
fn keep_executable(target_dir: &Path, unit: &Unit, executable: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = target_dir.join("krust-bins").join(&unit.package);
    let kept = dir.join(&unit.bin);
    let same_file =
        |a: &std::fs::Metadata, b: &std::fs::Metadata| (a.dev(), a.ino()) == (b.dev(), b.ino());
    // Linked already: a new link would move the file's ctime, which the
    // layer cache reads as a change.
    if let (Ok(kept_meta), Ok(built)) = (std::fs::metadata(&kept), std::fs::metadata(executable))
        && same_file(&kept_meta, &built)
    {
        return Ok(kept);
    }
    let link = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        match std::fs::remove_file(&kept) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        std::fs::hard_link(executable, &kept)
    };
    link()
        .with_context(|| format!("cannot link {} to {}", executable.display(), kept.display()))?;
    Ok(kept)
}

/// `--config`/env settings that make the strategy happen, leaving every
/// setting of the user's alone.
fn apply_strategy(command: &mut Command, request: &TripleBuild) {
    let triple = request.triple;
    let linker_var = linker::linker_env_var(triple);
    match request.strategy {
        Strategy::RustLld => {
            command.env(linker_var, "rust-lld");
        }
        Strategy::MuslGcc => {
            command.env(linker_var, "rust-lld");
            let cc_var = format!("CC_{}", triple.replace('-', "_"));
            if std::env::var_os(&cc_var).is_none()
                && std::env::var_os(format!("CC_{triple}")).is_none()
            {
                // By path, so that cargo-krust's C compiler wrapper goes in
                // front of it (see `c_wrapper`).
                let musl_gcc = tools::find_in_path("musl-gcc").unwrap_or_else(|| "musl-gcc".into());
                command.env(cc_var, musl_gcc);
            }
        }
        // cargo-zigbuild chose CC, CXX, AR and the linker for the target,
        // each only where the user had not.
        Strategy::Zig => {
            if let Some(zig) = &request.zig {
                command.envs(&zig.vars);
            }
        }
        Strategy::CargoDefaults => {}
    }
}

/// The rustflags cargo-krust adds to a build: what build-std under zig
/// needs. (Path remapping goes through [`rustc_shim`], out of a compile
/// cache's sight.)
fn extra_rustflags(request: &TripleBuild) -> Vec<String> {
    let mut flags = Vec::new();
    if request.build_std.is_some() && request.strategy == Strategy::Zig {
        // Without a prebuilt std there are no self-contained musl startup
        // objects: zig brings its own crt and libc.
        flags.push("-Clink-self-contained=no".into());
    }
    flags
}

fn cargo_command(request: &TripleBuild, cwd: &Path) -> Result<Command> {
    let options = request.cargo;
    let mut command = match (&request.strategy, &request.build_std) {
        // rustup's `cargo` proxy, so that RUSTUP_TOOLCHAIN picks the nightly.
        (_, Some(Some(_))) => {
            let mut command = Command::new("cargo");
            command.arg("build");
            command
        }
        _ => {
            let mut command =
                Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            command.arg("build");
            command
        }
    };
    command.current_dir(cwd);
    command.arg("--manifest-path").arg(request.manifest_path);
    command.args(["--target", request.triple]);
    command.args(["--profile", &options.profile]);
    command.arg("--message-format=json-render-diagnostics");
    command.arg("--target-dir").arg(&request.target_dir);
    command.args(["--color", request.color]);
    if let Some(toolchain) = &request.build_std {
        command.arg("-Zbuild-std=std,panic_abort");
        if let Some(toolchain) = toolchain {
            // `CARGO` names the cargo that ran us (and is what cargo-zigbuild
            // runs): drop it so that rustup's proxy picks the nightly.
            command
                .env("RUSTUP_TOOLCHAIN", toolchain)
                .env_remove("CARGO");
        }
    }
    apply_strategy(&mut command, request);
    audit_link::configure(
        &mut command,
        cwd,
        &request.target_dir,
        &audit_objects_dir(request),
    )?;
    rustflags::add(
        &mut command,
        request.triple,
        cwd,
        request.build_std.as_ref().and_then(Option::as_deref),
        &extra_rustflags(request),
    )?;
    let prefix_map = rustflags::path_prefix_map(cwd, &request.target_dir);
    rustc_shim::apply(
        &mut command,
        &request.target_dir,
        &rustflags::remap_path_prefixes(&prefix_map),
    )?;
    if matches!(request.strategy, Strategy::Zig | Strategy::MuslGcc) {
        c_wrapper::apply(
            &mut command,
            request.triple,
            cwd,
            &request.target_dir,
            &prefix_map,
        )?;
    }
    if let Some(client) = request.jobserver {
        client.configure(&mut command);
    }

    let packages: BTreeSet<&str> = request.units.iter().map(|u| u.package.as_str()).collect();
    for package in &packages {
        command.args(["-p", package]);
    }
    let bins: BTreeSet<&str> = request.units.iter().map(|u| u.bin.as_str()).collect();
    for bin in bins {
        command.args(["--bin", bin]);
    }

    let features = features(options, &packages, &request.package_features);
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    for (flag, on) in [
        ("--all-features", options.all_features),
        ("--no-default-features", options.no_default_features),
        ("--locked", options.locked),
        ("--frozen", options.frozen),
        ("--offline", options.offline),
        ("--quiet", options.quiet),
    ] {
        if on {
            command.arg(flag);
        }
    }
    if options.verbose >= 2 {
        command.arg("--verbose");
    }
    if let Some(jobs) = options.jobs {
        command.args(["--jobs", &jobs.to_string()]);
    }
    if let Some(zig) = &request.zig {
        command.args(&zig.extra_args);
    }
    command.args(&options.extra_args);
    Ok(command)
}

/// The `--features` list of a build: the command line's plus each package's
/// configured ones as `package/feature`.
pub fn features(
    options: &CargoOptions,
    packages: &BTreeSet<&str>,
    package_features: &HashMap<String, Vec<String>>,
) -> Vec<String> {
    let mut features = options.features.clone();
    for package in packages {
        if let Some(list) = package_features.get(*package) {
            features.extend(list.iter().map(|f| format!("{package}/{f}")));
        }
    }
    features
}
