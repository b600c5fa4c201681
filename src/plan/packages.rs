//! Planning from package directories instead of selection flags: `resolve`
//! asks for "the package in this directory, this bin (or its only bin)" once
//! per `krust://` reference, possibly across several workspaces. Each distinct
//! (package, bin) becomes one [`ImageJob`], built in its own workspace; the
//! selection flags (`-p`, `--workspace`, `--bin`, …) are not consulted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cargo_metadata::{Metadata, Package};

use super::Options;
use super::select::{self, EnabledFeatures};
use super::{
    CommonLayers, ImageJob, PackageSettings, Plan, Workspace, finish, image_job, read_metadata,
    target_dir,
};

/// One package, and optionally one of its bins, named by its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRequest {
    /// The package directory (absolute, or relative to the current dir).
    pub dir: PathBuf,
    /// The bin to build; `None` means the package's only bin.
    pub bin: Option<String>,
}

/// Collects the jobs of several [`PackageRequest`]s into one [`Plan`],
/// running `cargo metadata` once per workspace.
pub struct PackagePlanner<'o> {
    options: &'o Options,
    workspaces: Vec<LoadedWorkspace>,
    /// (canonical package manifest, bin) → index in `images`.
    seen: HashMap<(PathBuf, String), usize>,
    images: Vec<ImageJob>,
}

struct LoadedWorkspace {
    metadata: Metadata,
    layers: CommonLayers,
    workspace: Workspace,
}

impl<'o> PackagePlanner<'o> {
    pub fn new(options: &'o Options) -> PackagePlanner<'o> {
        PackagePlanner {
            options,
            workspaces: Vec::new(),
            seen: HashMap::new(),
            images: Vec::new(),
        }
    }

    /// Adds the job of one request (or finds the same package and bin asked
    /// for before) and returns its index in the plan's images.
    pub fn add(&mut self, request: &PackageRequest) -> Result<usize> {
        let manifest = package_manifest(&request.dir)?;
        let loaded = self.workspace_of(&manifest)?;
        let workspace = &self.workspaces[loaded];
        let package = find_package(&workspace.metadata, &manifest)?;
        let bin = choose_bin(package, request.bin.as_deref())?;
        let key = (manifest, bin.clone());
        if let Some(&index) = self.seen.get(&key) {
            return Ok(index);
        }
        let package_settings = PackageSettings::from_metadata(
            &package.metadata,
            package.manifest_path.as_std_path(),
            &select::bin_names(package),
        )?;
        // A bin named by a reference is built even with `skip = true`, as
        // with --bin; its `required-features` must be enabled.
        let merged = workspace.layers.for_bin(&package_settings, &bin);
        let features = |_: &str| {
            EnabledFeatures::new(
                package,
                self.options,
                merged.features.as_deref().unwrap_or_default(),
            )
        };
        select::bins(package, std::slice::from_ref(&bin), features, |_| false)?;
        let job = image_job(package, &bin, merged, self.options, &workspace.workspace)?;
        self.images.push(job);
        self.seen.insert(key, self.images.len() - 1);
        Ok(self.images.len() - 1)
    }

    /// The plan of every job added so far. The blob store lives in
    /// `--target-dir`, else in the first job's target dir.
    pub fn finish(self, cargo_args: &[String]) -> Result<Plan> {
        let Some(first) = self.images.first() else {
            bail!("nothing to build: no package was asked for");
        };
        let target_dir = first.workspace.target_dir.clone();
        finish(self.images, target_dir, self.options, cargo_args)
    }

    /// The index of the loaded workspace that has `manifest` as a member,
    /// running `cargo metadata` for it when none has.
    fn workspace_of(&mut self, manifest: &Path) -> Result<usize> {
        if let Some(index) = self.workspaces.iter().position(|w| {
            w.metadata
                .packages
                .iter()
                .any(|p| p.manifest_path.as_std_path() == manifest)
        }) {
            return Ok(index);
        }
        let metadata = read_metadata(manifest)?;
        let layers = CommonLayers::load(&metadata, self.options)?;
        let workspace = Workspace {
            manifest_path: metadata
                .workspace_root
                .join("Cargo.toml")
                .into_std_path_buf(),
            target_dir: target_dir(&metadata, self.options)?,
        };
        self.workspaces.push(LoadedWorkspace {
            metadata,
            layers,
            workspace,
        });
        Ok(self.workspaces.len() - 1)
    }
}

/// The canonical Cargo.toml of the package directory `dir`.
fn package_manifest(dir: &Path) -> Result<PathBuf> {
    if !dir.exists() {
        bail!("{} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: name the directory of a cargo package",
            dir.display()
        );
    }
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} is not a cargo package: it has no Cargo.toml",
            dir.display()
        );
    }
    manifest
        .canonicalize()
        .with_context(|| format!("cannot resolve path {}", manifest.display()))
}

fn find_package<'m>(metadata: &'m Metadata, manifest: &Path) -> Result<&'m Package> {
    metadata
        .packages
        .iter()
        .find(|p| p.manifest_path.as_std_path() == manifest)
        .with_context(|| {
            let members: Vec<&str> = metadata
                .workspace_packages()
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            format!(
                "{} is a virtual workspace manifest, not a package: name the directory of one of its members ({})",
                manifest.display(),
                members.join(", ")
            )
        })
}

/// The named bin, or the package's only one.
fn choose_bin(package: &Package, wanted: Option<&str>) -> Result<String> {
    let bins = select::bin_names(package);
    match (wanted, bins.as_slice()) {
        (_, []) => bail!("{}", select::no_bin_message(package)),
        (Some(bin), _) if bins.contains(&bin) => Ok(bin.to_string()),
        (Some(bin), _) => bail!(
            "package `{}` has no bin named `{bin}` (its bins: {})",
            package.name,
            bins.join(", ")
        ),
        (None, [only]) => Ok(only.to_string()),
        (None, _) => bail!(
            "package `{}` has several bins ({}): name one with `#<bin>`",
            package.name,
            bins.join(", ")
        ),
    }
}
