//! Package and bin selection with cargo's semantics: `-p` specs,
//! `--workspace` minus `--exclude` and `skip = true`, the package of the
//! manifest, or the default members of a virtual workspace; bins in manifest
//! order, filtered by `--bin`, `skip` and `required-features`. Workspace
//! members keep their declaration order.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use cargo_metadata::{Metadata, Package, Target, TargetKind};

use super::Options;

/// The workspace members in declaration order.
pub fn members(metadata: &Metadata) -> Vec<&Package> {
    metadata
        .workspace_members
        .iter()
        .filter_map(|id| metadata.packages.iter().find(|p| &p.id == id))
        .collect()
}

/// The selected packages; `skipped(package)` says whether its configuration
/// has `skip = true`.
pub fn packages<'m>(
    metadata: &'m Metadata,
    manifest_path: &Path,
    options: &Options,
    skipped: impl Fn(&Package) -> Result<bool>,
) -> Result<Vec<&'m Package>> {
    let members = members(metadata);
    let names = || {
        members
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !options.packages.is_empty() {
        let mut selected: Vec<&Package> = Vec::new();
        for spec in &options.packages {
            let package = members
                .iter()
                .copied()
                .find(|p| matches_spec(p, spec))
                .with_context(|| {
                    format!(
                        "package `{spec}` is not a member of the workspace at {} (members: {})",
                        metadata.workspace_root,
                        names()
                    )
                })?;
            if !has_bins(package) {
                bail!("{}", no_bin_message(package));
            }
            if !selected.iter().any(|p| p.id == package.id) {
                selected.push(package);
            }
        }
        // Workspace member order, whatever order the -p flags came in.
        selected.sort_by_key(|p| members.iter().position(|m| m.id == p.id));
        return Ok(selected);
    }

    let root_package = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path.as_std_path() == manifest_path);
    if let (Some(package), false) = (root_package, options.workspace) {
        if !has_bins(package) {
            bail!("{}", no_bin_message(package));
        }
        return Ok(vec![package]);
    }

    for spec in &options.exclude {
        if !members.iter().any(|p| matches_spec(p, spec)) {
            bail!(
                "--exclude `{spec}` matches no workspace member (members: {})",
                names()
            );
        }
    }
    let candidates: Vec<&Package> = if options.workspace {
        members.clone()
    } else {
        let defaults = metadata.workspace_default_packages();
        members
            .iter()
            .copied()
            .filter(|m| defaults.iter().any(|d| d.id == m.id))
            .collect()
    };
    let mut selected = Vec::new();
    for package in candidates {
        if options.exclude.iter().any(|s| matches_spec(package, s))
            || !has_bins(package)
            || skipped(package)?
        {
            continue;
        }
        selected.push(package);
    }
    if selected.is_empty() {
        bail!(
            "no workspace member of {} has a bin target to build (members: {})",
            metadata.workspace_root,
            names()
        );
    }
    Ok(selected)
}

pub fn no_bin_message(package: &Package) -> String {
    format!(
        "package `{}` has no bin target: cargo-krust builds images of binaries (add src/main.rs or a [[bin]] section to {})",
        package.name, package.manifest_path
    )
}

/// `NAME` or `NAME@VERSION` (a version prefix), as cargo's package specs.
fn matches_spec(package: &Package, spec: &str) -> bool {
    match spec.split_once('@') {
        Some((name, version)) => {
            package.name.as_str() == name && package.version.to_string().starts_with(version)
        }
        None => package.name.as_str() == spec,
    }
}

pub fn has_bins(package: &Package) -> bool {
    package.targets.iter().any(|t| t.is_kind(TargetKind::Bin))
}

/// The names of a package's bin targets, in manifest order.
pub fn bin_names(package: &Package) -> Vec<&str> {
    package
        .targets
        .iter()
        .filter(|t| t.is_kind(TargetKind::Bin))
        .map(|t| t.name.as_str())
        .collect()
}

/// The features cargo will enable for a package, expanded through its
/// `[features]` table (dependency features are not followed: they cannot
/// satisfy a bin's `required-features`).
pub struct EnabledFeatures {
    all: bool,
    enabled: BTreeSet<String>,
}

impl EnabledFeatures {
    pub fn new(package: &Package, options: &Options, configured: &[String]) -> EnabledFeatures {
        let mut queue: Vec<String> = configured.to_vec();
        for flag in &options.features {
            for feature in flag.split([',', ' ']).filter(|f| !f.is_empty()) {
                match feature.split_once('/') {
                    Some((pkg, feature)) if pkg == package.name.as_str() => {
                        queue.push(feature.to_string())
                    }
                    Some(_) => {}
                    None => queue.push(feature.to_string()),
                }
            }
        }
        if !options.no_default_features {
            queue.push("default".into());
        }
        let mut enabled = BTreeSet::new();
        while let Some(feature) = queue.pop() {
            if !enabled.insert(feature.clone()) {
                continue;
            }
            for entry in package.features.get(&feature).into_iter().flatten() {
                if entry.starts_with("dep:") {
                    continue;
                }
                match entry.split_once('/') {
                    // `dep/feature` turns on an optional dependency `dep` too.
                    Some((dep, _)) if !dep.ends_with('?') => queue.push(dep.to_string()),
                    Some(_) => {}
                    None => queue.push(entry.clone()),
                }
            }
        }
        EnabledFeatures {
            all: options.all_features,
            enabled,
        }
    }

    /// The required features of `target` that are not enabled.
    pub fn missing<'t>(&self, target: &'t Target) -> Vec<&'t str> {
        if self.all {
            return Vec::new();
        }
        target
            .required_features
            .iter()
            .filter(|f| !self.enabled.contains(f.as_str()))
            .map(String::as_str)
            .collect()
    }
}

/// The bins of a package to build: every bin (or those named by `--bin`),
/// minus bins with unmet `required-features` (an error when named
/// explicitly) and, unless named, bins configured with `skip = true`.
/// `features(bin)` are the features enabled when that bin is built (its
/// own `features` key may differ from its package's).
pub fn bins<'p>(
    package: &'p Package,
    wanted: &[String],
    features: impl Fn(&str) -> EnabledFeatures,
    skipped: impl Fn(&str) -> bool,
) -> Result<Vec<&'p Target>> {
    let mut bins = Vec::new();
    for target in package
        .targets
        .iter()
        .filter(|t| t.is_kind(TargetKind::Bin))
    {
        let named = wanted.contains(&target.name);
        if !wanted.is_empty() && !named {
            continue;
        }
        let missing = features(&target.name).missing(target);
        if !missing.is_empty() {
            if named {
                bail!(
                    "bin `{}` of package `{}` requires the features {}: enable them with --features or the `features` key",
                    target.name,
                    package.name,
                    missing.join(", ")
                );
            }
            crate::progress::verbose(format!(
                "leaving out bin `{}`: it requires the features {}",
                target.name,
                missing.join(", ")
            ));
            continue;
        }
        if !named && skipped(&target.name) {
            continue;
        }
        bins.push(target);
    }
    Ok(bins)
}
