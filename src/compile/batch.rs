//! Turning "these bins for these platforms" into cargo invocations, with every
//! check done before anything is built: the C code of each build graph, the
//! strategy of each (package, target) (explained with `-v`), the Rust target
//! or the nightly toolchain, and one [`Batch`] per (platform, strategy,
//! build-std) — one cargo invocation per triple unless packages disagree, or
//! bins of one package want different features (cargo unifies a package's
//! features within one invocation, so those are built one invocation after
//! the other).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::native::{self, NativeCode};
use super::strategy::{self, Strategy};
use super::tools::Tools;
use super::{TripleBuild, Unit, linker, toolchain, triple_target_dir, zig};
use crate::plan::{CargoOptions, LinkerChoice};
use crate::platform::Platform;
use crate::progress;
use crate::store::BlobStore;

/// One bin wanted for one platform, with its settings.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub unit: Unit,
    pub platform: Platform,
    pub linker: Option<LinkerChoice>,
    pub build_std: bool,
    /// The `features` configured for this bin (its own, or its package's).
    pub features: Vec<String>,
    /// Embed the dependency data in the bin (`auditable`).
    pub auditable: bool,
}

/// The shared inputs of every build of a run.
pub struct Shared<'a> {
    pub manifest_path: &'a Path,
    pub target_dir: &'a Path,
    pub cargo: &'a CargoOptions,
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
    let mut batches: BTreeMap<Key, Vec<&Wanted>> = BTreeMap::new();
    for (platform, wants) in &by_platform {
        let triple = platform
            .rust_target()
            .with_context(|| format!("no Rust target for {platform}"))?;
        let native = native_code(context, triple, wants, &records)?;
        let user_linker = linker::user_linker(triple, cwd)?;
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
                .push(want);
        }
    }

    let mut nightly: Option<Option<String>> = None;
    let mut ensured = BTreeSet::new();
    let mut out = Vec::new();
    let invocations = batches.into_iter().flat_map(|(key, wants)| {
        invocations(&wants)
            .into_iter()
            .map(move |invocation| (key.clone(), invocation))
    });
    for (key, Invocation { units, features }) in invocations {
        let triple = key.platform.rust_target().unwrap_or_default();
        let audit_objects =
            audit_objects(context, &key.platform, wanted, &units, &features, &records)?;
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
        let zig = match key.strategy {
            Strategy::Zig => {
                let tools = tools.zig().map_err(|problem| {
                    anyhow::anyhow!("{problem}: install it with {}", strategy::ZIG_INSTALL_HINT)
                })?;
                let toolchain = build_std.as_ref().and_then(|t| t.as_deref());
                Some(zig::environment(&tools, triple, cwd, toolchain, &records)?)
            }
            _ => None,
        };
        out.push(Batch {
            build: TripleBuild {
                triple,
                manifest_path: context.manifest_path,
                target_dir: triple_target_dir(context.target_dir, triple),
                units,
                package_features: features,
                cargo: context.cargo,
                strategy: key.strategy,
                build_std,
                color: context.color,
                jobserver: None,
                audit_objects,
                zig,
            },
            platform: key.platform,
            installed_target,
        });
    }
    Ok(out)
}

/// The units of one cargo invocation, with each package's features.
#[derive(Debug, PartialEq)]
struct Invocation {
    units: BTreeSet<Unit>,
    features: HashMap<String, Vec<String>>,
}

/// Splits the bins of one batch into cargo invocations such that none holds
/// two feature sets of one package (cargo would give every bin of it their
/// union) or two bins of one name (cargo would write both to
/// `release/<bin>`, one over the other). Each (package, feature set) goes
/// to the first invocation it fits in, so there are as few as that allows:
/// one when every package has one feature set and bin names are unique.
fn invocations(wants: &[&Wanted]) -> Vec<Invocation> {
    let mut groups: BTreeMap<(&str, Vec<String>), BTreeSet<Unit>> = BTreeMap::new();
    for want in wants {
        groups
            .entry((want.unit.package.as_str(), feature_set(&want.features)))
            .or_default()
            .insert(want.unit.clone());
    }
    let mut out: Vec<Invocation> = Vec::new();
    for ((package, features), units) in groups {
        let fits = |invocation: &Invocation| {
            invocation.units.iter().all(|built| {
                let other_features = built.package == package
                    && invocation
                        .features
                        .get(package)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        != features.as_slice();
                let same_name = units
                    .iter()
                    .any(|unit| unit.bin == built.bin && unit.package != built.package);
                !other_features && !same_name
            })
        };
        let n = match out.iter().position(fits) {
            Some(n) => n,
            None => {
                out.push(Invocation {
                    units: BTreeSet::new(),
                    features: HashMap::new(),
                });
                out.len() - 1
            }
        };
        if let Some(invocation) = out.get_mut(n) {
            invocation.units.extend(units);
            if !features.is_empty() {
                invocation.features.insert(package.to_string(), features);
            }
        }
    }
    out
}

/// A feature list as a set: sorted, without duplicates.
fn feature_set(features: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = features.iter().collect();
    set.into_iter().cloned().collect()
}

/// The dependency-data object of each unit of one invocation whose bin
/// wants it (any image asking is enough: the images share the binary).
fn audit_objects(
    context: &Shared,
    platform: &Platform,
    wanted: &[Wanted],
    units: &BTreeSet<Unit>,
    features: &HashMap<String, Vec<String>>,
    records: &BlobStore,
) -> Result<BTreeMap<Unit, Vec<u8>>> {
    let audited: BTreeSet<&Unit> = units
        .iter()
        .filter(|unit| {
            wanted
                .iter()
                .any(|w| w.auditable && &w.unit == *unit && &w.platform == platform)
        })
        .collect();
    let triple = platform.rust_target().unwrap_or_default();
    let roots: BTreeSet<PathBuf> = units.iter().map(|u| u.manifest_path.clone()).collect();
    let packages: BTreeSet<&str> = units.iter().map(|u| u.package.as_str()).collect();
    let query = crate::plan::graph::Query {
        manifest_path: context.manifest_path,
        triple,
        roots: &roots,
        features: qualified_features(
            &super::features(context.cargo, &packages, features),
            &packages,
        ),
        cargo: context.cargo,
    };
    super::audit_link::objects(&query, audited, records)
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
    // Every feature any bin of a package asks for: C code that one of its
    // builds compiles counts for all of them.
    let mut package_features: HashMap<String, Vec<String>> = HashMap::new();
    for want in wants {
        let features = package_features
            .entry(want.unit.package.clone())
            .or_default();
        features.extend(want.features.iter().cloned());
        *features = feature_set(features);
    }
    native::native_code(
        &crate::plan::graph::Query {
            manifest_path: context.manifest_path,
            triple,
            roots: &roots,
            features: qualified_features(
                &super::features(context.cargo, &packages, &package_features),
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
pub fn qualified_features(features: &[String], packages: &BTreeSet<&str>) -> Vec<String> {
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

    /// A bin of `package` for linux/amd64 with its own `features`.
    fn want(package: &str, bin: &str, features: &[&str]) -> Wanted {
        Wanted {
            unit: Unit {
                manifest_path: PathBuf::from(format!("/w/{package}/Cargo.toml")),
                package: package.into(),
                bin: bin.into(),
            },
            platform: Platform::new("linux", "amd64", None),
            linker: None,
            build_std: false,
            features: features.iter().map(|f| f.to_string()).collect(),
            auditable: true,
        }
    }

    #[test]
    fn bins_of_one_package_with_other_features_get_their_own_invocation() {
        let wants = [
            want("api", "api", &["prod"]),
            want("jobs", "cron", &[]),
            want("jobs", "worker", &["fancy", "x"]),
            want("jobs", "admin", &["x", "fancy", "x"]),
        ];
        let split = invocations(&wants.iter().collect::<Vec<_>>());
        let bins = |invocation: &Invocation| -> Vec<String> {
            invocation.units.iter().map(|u| u.bin.clone()).collect()
        };
        assert_eq!(split.len(), 2);
        assert_eq!(bins(&split[0]), ["api", "cron"]);
        assert_eq!(
            split[0].features,
            HashMap::from([("api".to_string(), vec!["prod".to_string()])])
        );
        assert_eq!(bins(&split[1]), ["admin", "worker"]);
        assert_eq!(
            split[1].features,
            HashMap::from([(
                "jobs".to_string(),
                vec!["fancy".to_string(), "x".to_string()]
            )])
        );
        // One feature set per package: one invocation.
        let same = [want("api", "api", &["prod"]), want("jobs", "cron", &["a"])];
        assert_eq!(invocations(&same.iter().collect::<Vec<_>>()).len(), 1);
    }

    #[test]
    fn bins_of_one_name_in_two_packages_get_their_own_invocation() {
        let wants = [
            want("a", "server", &[]),
            want("a", "tool", &[]),
            want("b", "server", &[]),
            want("c", "other", &[]),
        ];
        let split = invocations(&wants.iter().collect::<Vec<_>>());
        let units = |invocation: &Invocation| -> Vec<String> {
            invocation
                .units
                .iter()
                .map(|u| format!("{}/{}", u.package, u.bin))
                .collect()
        };
        assert_eq!(split.len(), 2);
        assert_eq!(units(&split[0]), ["a/server", "a/tool", "c/other"]);
        assert_eq!(units(&split[1]), ["b/server"]);
    }

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
