//! Turning "these bins for these platforms" into cargo invocations, with every
//! check done before anything is built: the C code of each build graph, the
//! strategy of each (package, target) (explained with `-v`), the Rust target
//! or the nightly toolchain, and one [`Batch`] per (platform, strategy,
//! build-std) — one cargo invocation per triple unless packages disagree.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::native::{self, NativeCode};
use super::strategy::{self, Strategy};
use super::tools::Tools;
use super::{TripleBuild, Unit, linker, toolchain, triple_target_dir};
use crate::plan::{CargoOptions, LinkerChoice};
use crate::platform::Platform;
use crate::progress;
use crate::store::BlobStore;

/// One bin wanted for one platform, with its package's settings.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub unit: Unit,
    pub platform: Platform,
    pub linker: Option<LinkerChoice>,
    pub build_std: bool,
}

/// The shared inputs of every build of a run.
pub struct Shared<'a> {
    pub manifest_path: &'a Path,
    pub target_dir: &'a Path,
    pub cargo: &'a CargoOptions,
    /// Configured `features` per package name.
    pub package_features: &'a HashMap<String, Vec<String>>,
    /// `always` or `never`, for cargo's captured stderr.
    pub color: &'static str,
}

/// One cargo invocation and the platform it builds for.
#[derive(Debug)]
pub struct Batch<'a> {
    pub platform: Platform,
    pub build: TripleBuild<'a>,
    /// The triple's standard library was installed while preparing: a
    /// build started before then saw another toolchain.
    pub installed_target: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    platform: Platform,
    strategy: Strategy,
    build_std: bool,
}

/// Plans the cargo invocations for `wanted`, failing before any build when a
/// toolchain is missing.
pub fn prepare<'a>(
    context: &Shared<'a>,
    wanted: &[Wanted],
    tools: &dyn Tools,
) -> Result<Vec<Batch<'a>>> {
    let cwd = context
        .manifest_path
        .parent()
        .context("manifest path has no directory")?;
    let mut by_platform: BTreeMap<&Platform, Vec<&Wanted>> = BTreeMap::new();
    for want in wanted {
        by_platform.entry(&want.platform).or_default().push(want);
    }

    let records = BlobStore::open(&context.target_dir.join("krust"))?;
    let mut batches: BTreeMap<Key, BTreeSet<Unit>> = BTreeMap::new();
    for (platform, wants) in &by_platform {
        let triple = platform
            .rust_target()
            .with_context(|| format!("no Rust target for {platform}"))?;
        let native = native_code(context, triple, wants, &records)?;
        let user_linker = linker::user_linker(triple, cwd);
        let mut explained = BTreeSet::new();
        for want in wants {
            let unit = &want.unit;
            let platform_name = platform.to_string();
            let inputs = strategy::Inputs {
                package: &unit.package,
                platform: &platform_name,
                triple,
                configured: want.linker,
                user_linker: user_linker.clone(),
                native: native.get(&unit.manifest_path).map_or(&[], Vec::as_slice),
                build_std: want.build_std,
            };
            let choice = strategy::choose(&inputs, tools)?;
            if explained.insert((unit.package.clone(), choice.strategy.clone())) {
                progress::verbose(format!(
                    "{} for {platform} ({triple}) uses {}: {}",
                    unit.package, choice.strategy, choice.why
                ));
            }
            batches
                .entry(Key {
                    platform: (*platform).clone(),
                    strategy: choice.strategy,
                    build_std: want.build_std,
                })
                .or_default()
                .insert(unit.clone());
        }
    }

    let mut nightly: Option<Option<String>> = None;
    let mut ensured = BTreeSet::new();
    let mut out = Vec::new();
    for (key, units) in batches {
        let triple = key.platform.rust_target().unwrap_or_default();
        let mut installed_target = false;
        let build_std = if key.build_std {
            if nightly.is_none() {
                nightly = Some(toolchain::build_std_toolchain(cwd)?);
            }
            Some(nightly.clone().unwrap_or_default())
        } else {
            if ensured.insert(triple) {
                installed_target = toolchain::ensure_target(triple, cwd, &records)?;
            }
            None
        };
        out.push(Batch {
            build: TripleBuild {
                triple,
                manifest_path: context.manifest_path,
                target_dir: triple_target_dir(context.target_dir, triple),
                units,
                package_features: context.package_features.clone(),
                cargo: context.cargo,
                strategy: key.strategy,
                build_std,
                color: context.color,
                jobserver: None,
            },
            platform: key.platform,
            installed_target,
        });
    }
    Ok(out)
}

/// The native code of each root's build graph for `triple`.
fn native_code(
    context: &Shared,
    triple: &str,
    wants: &[&Wanted],
    records: &BlobStore,
) -> Result<HashMap<PathBuf, Vec<NativeCode>>> {
    let roots: BTreeSet<PathBuf> = wants.iter().map(|w| w.unit.manifest_path.clone()).collect();
    let packages: BTreeSet<&str> = wants.iter().map(|w| w.unit.package.as_str()).collect();
    native::native_code(
        &native::Query {
            manifest_path: context.manifest_path,
            triple,
            roots: &roots,
            features: qualified_features(
                &super::features(context.cargo, &packages, context.package_features),
                &packages,
            ),
            cargo: context.cargo,
        },
        records,
    )
}

/// Features as `package/feature`: `cargo build -p P --features f` means P's
/// `f`, but `cargo metadata` has no `-p` (and refuses bare features at a
/// virtual workspace root).
fn qualified_features(features: &[String], packages: &BTreeSet<&str>) -> Vec<String> {
    features
        .iter()
        .flat_map(|feature| feature.split([',', ' ']))
        .filter(|feature| !feature.is_empty())
        .flat_map(|feature| {
            if feature.contains('/') {
                vec![feature.to_string()]
            } else {
                packages.iter().map(|p| format!("{p}/{feature}")).collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_qualified_by_package() {
        let packages = BTreeSet::from(["api", "worker"]);
        assert_eq!(
            qualified_features(&["prod,tls".into(), "api/extra".into()], &packages),
            [
                "api/prod",
                "worker/prod",
                "api/tls",
                "worker/tls",
                "api/extra"
            ]
        );
    }
}
