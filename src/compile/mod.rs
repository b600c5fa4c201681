//! Compilation: one `cargo build --target <triple>` per target triple for
//! every (package, bin) of the plan that needs it, cargo's diagnostics
//! streamed to stderr, and the executables taken from cargo's JSON messages.

pub mod linker;
pub mod toolchain;

use std::collections::{BTreeSet, HashMap};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use cargo_metadata::{Message, TargetKind};

use crate::plan::CargoOptions;
use crate::progress;

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
    pub target_dir: &'a Path,
    pub units: BTreeSet<Unit>,
    /// Configured `features` per package name.
    pub package_features: HashMap<String, Vec<String>>,
    pub cargo: &'a CargoOptions,
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

/// Builds every unit for the triple; returns the executable of each.
pub fn build(request: &TripleBuild) -> Result<HashMap<Unit, PathBuf>> {
    let cwd = request
        .manifest_path
        .parent()
        .context("manifest path has no directory")?;
    toolchain::ensure_target(request.triple, cwd)?;

    let mut command = cargo_command(request, cwd);
    if let Some((var, value)) = linker::default_linker_env(request.triple, cwd) {
        progress::verbose(format!("{}: linking with {value} ({var})", request.triple));
        command.env(var, value);
    }
    progress::verbose(format!("running {command:?}"));

    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo: is it installed and on PATH?")?;
    let stdout = child
        .stdout
        .take()
        .context("cargo's stdout is not captured")?;

    let mut executables = HashMap::new();
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
        if !executables.contains_key(unit) {
            bail!(
                "cargo build for {} reported no executable for bin `{}` of package `{}`",
                request.triple,
                unit.bin,
                unit.package
            );
        }
    }
    Ok(executables)
}

fn cargo_command(request: &TripleBuild, cwd: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let options = request.cargo;
    let mut command = Command::new(cargo);
    command.current_dir(cwd).arg("build");
    command.arg("--manifest-path").arg(request.manifest_path);
    command.args(["--target", request.triple]);
    command.args(["--profile", &options.profile]);
    command.arg("--message-format=json-render-diagnostics");
    command.arg("--target-dir").arg(request.target_dir);
    command.args(["--color", options.color]);

    let packages: BTreeSet<&str> = request.units.iter().map(|u| u.package.as_str()).collect();
    for package in &packages {
        command.args(["-p", package]);
    }
    let bins: BTreeSet<&str> = request.units.iter().map(|u| u.bin.as_str()).collect();
    for bin in bins {
        command.args(["--bin", bin]);
    }

    let mut features: Vec<String> = options.features.clone();
    for package in &packages {
        if let Some(list) = request.package_features.get(*package) {
            features.extend(list.iter().map(|f| format!("{package}/{f}")));
        }
    }
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
    command.args(&options.extra_args);
    command
}
