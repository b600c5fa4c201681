//! Finding the C (and other native) code a build compiles for its target:
//! `cargo metadata` with dependencies, resolved for one target triple, walked
//! from each package cargo-krust builds through its target-side dependencies.
//! A package there compiles native code when its build script depends on a
//! C build crate (`cc`, `cmake`, …) or it declares `links` (it links a native
//! library). Build dependencies and proc macros run on the host, so their own
//! dependencies are not followed: the host's C compiler serves them.
//!
//! The answer is remembered under a hash of what decides the graph —
//! Cargo.lock, the manifests involved, the triple and the features — since
//! a resolved `cargo metadata` costs tens of milliseconds per triple.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::Result;
use cargo_metadata::{CargoOpt, DependencyKind, Metadata, MetadataCommand, PackageId, TargetKind};

use sha2::{Digest as _, Sha256};

use crate::plan::{CargoOptions, metadata_error};
use crate::store::BlobStore;

/// Build-script dependencies that compile C, C++ or assembly for the target.
const NATIVE_BUILD_CRATES: &[&str] = &["cc", "cmake", "autotools", "cxx-build", "nasm-rs"];

/// One target-side package of the build graph that compiles native code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct NativeCode {
    pub package: String,
    /// Why, e.g. `build script uses cc` or `links = "zstd"`.
    pub reason: String,
}

impl std::fmt::Display for NativeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.package, self.reason)
    }
}

/// What one `cargo metadata` run for a triple needs.
pub struct Query<'a> {
    /// The manifest cargo builds with (package or workspace root).
    pub manifest_path: &'a Path,
    pub triple: &'a str,
    /// The manifests of the packages built for this triple.
    pub roots: &'a BTreeSet<PathBuf>,
    /// Features exactly as the build passes them (`pkg/feature` included).
    pub features: Vec<String>,
    pub cargo: &'a CargoOptions,
}

/// For each root manifest, the packages of its target-side build graph that
/// compile native code for the triple (sorted, empty for pure Rust).
pub fn native_code(
    query: &Query,
    records: &BlobStore,
) -> Result<HashMap<PathBuf, Vec<NativeCode>>> {
    let key = cache_key(query);
    if let Some(cached) = key
        .as_ref()
        .and_then(|key| records.read_record("native", key))
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    {
        return Ok(cached);
    }
    let metadata = metadata_for(query)?;
    let found: HashMap<PathBuf, Vec<NativeCode>> = query
        .roots
        .iter()
        .map(|root| (root.clone(), native_in_graph(&metadata, root)))
        .collect();
    if let Some(key) = key
        && let Ok(bytes) = serde_json::to_vec(&found)
    {
        records.write_record("native", &key, &bytes)?;
    }
    Ok(found)
}

/// The cache key of a query: `None` without a Cargo.lock (the graph is not
/// pinned yet, so nothing is remembered).
fn cache_key(query: &Query) -> Option<String> {
    let dir = query.manifest_path.parent()?;
    let lock = dir
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|lock| lock.is_file())?;
    let mut hasher = Sha256::new();
    hasher.update(format!("native-v1\n{}\n", query.triple).as_bytes());
    for feature in &query.features {
        hasher.update(format!("feature {feature}\n").as_bytes());
    }
    let options = query.cargo;
    hasher.update(format!("{} {}\n", options.all_features, options.no_default_features).as_bytes());
    let manifests =
        std::iter::once(query.manifest_path).chain(query.roots.iter().map(PathBuf::as_path));
    for file in std::iter::once(lock.as_path()).chain(manifests) {
        hasher.update(file.as_os_str().as_encoded_bytes());
        hasher.update(std::fs::read(file).ok()?);
    }
    Some(hex::encode(hasher.finalize()))
}

fn metadata_for(query: &Query) -> Result<Metadata> {
    let mut command = MetadataCommand::new();
    command.manifest_path(query.manifest_path);
    let options = query.cargo;
    if !query.features.is_empty() {
        command.features(CargoOpt::SomeFeatures(query.features.clone()));
    }
    if options.all_features {
        command.features(CargoOpt::AllFeatures);
    }
    if options.no_default_features {
        command.features(CargoOpt::NoDefaultFeatures);
    }
    let mut other = vec!["--filter-platform".to_string(), query.triple.to_string()];
    for (flag, on) in [
        ("--locked", options.locked),
        ("--frozen", options.frozen),
        ("--offline", options.offline),
    ] {
        if on {
            other.push(flag.to_string());
        }
    }
    command.other_options(other);
    command.exec().map_err(|err| {
        metadata_error(
            err,
            &format!(
                "cannot read the dependency graph of {} for {}",
                query.manifest_path.display(),
                query.triple
            ),
        )
    })
}

/// Breadth-first walk over normal dependencies from the root package.
fn native_in_graph(metadata: &Metadata, root_manifest: &Path) -> Vec<NativeCode> {
    let packages: HashMap<&PackageId, &cargo_metadata::Package> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let Some(resolve) = &metadata.resolve else {
        return Vec::new();
    };
    let nodes: HashMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let Some(root) = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path.as_std_path() == root_manifest)
    else {
        return Vec::new();
    };

    let mut found = BTreeMap::new();
    let mut seen: BTreeSet<&PackageId> = BTreeSet::from([&root.id]);
    let mut queue = VecDeque::from([&root.id]);
    while let Some(id) = queue.pop_front() {
        let (Some(package), Some(node)) = (packages.get(id), nodes.get(id)) else {
            continue;
        };
        if package
            .targets
            .iter()
            .any(|t| t.is_kind(TargetKind::ProcMacro))
        {
            continue;
        }
        if let Some(reason) = native_reason(package, node, &packages) {
            found.entry(package.name.to_string()).or_insert(reason);
        }
        for dep in &node.deps {
            let normal = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Normal);
            if normal && seen.insert(&dep.pkg) {
                queue.push_back(&dep.pkg);
            }
        }
    }
    found
        .into_iter()
        .map(|(package, reason)| NativeCode { package, reason })
        .collect()
}

/// Why this package compiles native code for the target, if it does.
fn native_reason(
    package: &cargo_metadata::Package,
    node: &cargo_metadata::Node,
    packages: &HashMap<&PackageId, &cargo_metadata::Package>,
) -> Option<String> {
    let build_crates: BTreeSet<&str> = node
        .deps
        .iter()
        .filter(|dep| {
            dep.dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Build)
        })
        .filter_map(|dep| packages.get(&dep.pkg))
        .map(|p| p.name.as_str())
        .filter(|name| NATIVE_BUILD_CRATES.contains(name))
        .collect();
    if !build_crates.is_empty() {
        let list: Vec<&str> = build_crates.into_iter().collect();
        return Some(format!("build script uses {}", list.join(", ")));
    }
    package
        .links
        .as_ref()
        .map(|links| format!("links = \"{links}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny metadata document: `app` → `sys` (build-dep `cc`, links),
    /// `app` → `pure`, `app` → proc macro `mac` → `deep-sys` (host side),
    /// `app` build-dep → `host-sys` (host side).
    fn metadata() -> Metadata {
        let package = |name: &str, links: Option<&str>, kind: &str| {
            serde_json::json!({
                "name": name, "version": "1.0.0", "id": format!("{name} 1.0.0"),
                "source": null, "dependencies": [], "features": {},
                "manifest_path": format!("/w/{name}/Cargo.toml"),
                "targets": [{"name": name, "kind": [kind], "crate_types": [kind],
                             "src_path": format!("/w/{name}/src/lib.rs"), "edition": "2021",
                             "doctest": false, "test": false}],
                "links": links, "edition": "2021", "metadata": null, "publish": null,
                "authors": [], "categories": [], "keywords": [], "readme": null,
                "repository": null, "homepage": null, "documentation": null,
                "license": null, "license_file": null, "description": null,
                "default_run": null, "rust_version": null
            })
        };
        let dep = |name: &str, kind: Option<&str>| {
            serde_json::json!({"name": name, "pkg": format!("{name} 1.0.0"),
                               "dep_kinds": [{"kind": kind, "target": null}]})
        };
        let node = |name: &str, deps: Vec<serde_json::Value>| {
            serde_json::json!({"id": format!("{name} 1.0.0"), "deps": deps,
                               "dependencies": [], "features": []})
        };
        serde_json::from_value(serde_json::json!({
            "packages": [
                package("app", None, "bin"),
                package("sys", Some("sys"), "lib"),
                package("cc", None, "lib"),
                package("pure", None, "lib"),
                package("mac", None, "proc-macro"),
                package("deep-sys", Some("deep"), "lib"),
                package("host-sys", Some("host"), "lib"),
            ],
            "workspace_members": ["app 1.0.0"],
            "workspace_default_members": ["app 1.0.0"],
            "resolve": {"root": "app 1.0.0", "nodes": [
                node("app", vec![dep("sys", None), dep("pure", None), dep("mac", None),
                                 dep("host-sys", Some("build"))]),
                node("sys", vec![dep("cc", Some("build"))]),
                node("cc", vec![]),
                node("pure", vec![]),
                node("mac", vec![dep("deep-sys", None)]),
                node("deep-sys", vec![]),
                node("host-sys", vec![]),
            ]},
            "target_directory": "/w/target",
            "version": 1,
            "workspace_root": "/w",
            "metadata": null
        }))
        .expect("test metadata parses")
    }

    #[test]
    fn finds_target_side_native_code_only() {
        let found = native_in_graph(&metadata(), Path::new("/w/app/Cargo.toml"));
        assert_eq!(
            found,
            [NativeCode {
                package: "sys".into(),
                reason: "build script uses cc".into()
            }]
        );
        assert_eq!(found[0].to_string(), "sys: build script uses cc");
    }

    #[test]
    fn links_key_counts_and_pure_roots_have_none() {
        let found = native_in_graph(&metadata(), Path::new("/w/deep-sys/Cargo.toml"));
        assert_eq!(found[0].reason, "links = \"deep\"");
        assert!(native_in_graph(&metadata(), Path::new("/w/pure/Cargo.toml")).is_empty());
        assert!(native_in_graph(&metadata(), Path::new("/w/none/Cargo.toml")).is_empty());
    }
}
